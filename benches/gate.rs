//! Confirmation gates: how long a decision takes with a 1,500-engineer
//! organisation loaded (two weeks of history learned), and what the Claude
//! Code hook costs for a command that grants nothing.
//!
//! - `decide`: [`reachguard::gate::decide`] on the engine, as the daemon's
//!   engine owner runs it for `POST /api/v1/decide` and the admission
//!   webhook: a grant to a person, to a team's group and to the whole
//!   engineering group, in turn; p50 / p99 / max over every decision.
//! - `hook`: the `reachguard gate claude-code` process for `ls -la` (start,
//!   read stdin, parse, exit), spawned from this bench's own build of the
//!   binary; p50 / p99 over runs.
//!
//! `cargo bench --bench gate`. Targets (issue "Confirmation gates"): decide
//! p99 <= 10 ms, hook <= 20 ms.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reachguard::detect::{Engine, EngineConfig, Origin};
use reachguard::event::{Body, Event, GranteeType, Ts};
use reachguard::gate::{GateKind, Proposal, decide};
use reachguard::synth::{OrgSpec, generate};

const ENGINEERS: usize = 1500;
const DECISIONS: usize = 3000;
const HOOK_RUNS: usize = 200;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn report(name: &str, mut d: Vec<Duration>) -> Duration {
    d.sort();
    let p99 = percentile(&d, 0.99);
    println!(
        "{name}: n={} p50={:?} p99={p99:?} max={:?}",
        d.len(),
        percentile(&d, 0.50),
        d[d.len() - 1]
    );
    p99
}

fn main() {
    let cfg = reachguard::config::Config::parse(
        "[sensitivity]\n\"internal/*\" = \"critical\"\n\"vault/*\" = \"critical\"\n\"prod/*\" = \"high\"\n\
         [detection]\nprovisioners = [\"hr-system\"]\n",
    )
    .expect("the bench's config is valid");
    let org = generate(OrgSpec {
        engineers: ENGINEERS,
        history_days: 14,
        eval_days: 0,
        seed: 1,
        inject: false,
    });
    let mut engine = Engine::new(
        Default::default(),
        Default::default(),
        &EngineConfig::from_config(&cfg),
    );
    for ev in &org.events {
        engine.observe(ev, Origin::TRUSTED);
    }
    engine.finish_training();
    // One group every engineer is in, as in the incident.
    let end = org.events.last().map_or(0, |e| e.ts.0);
    let people: Vec<String> = engine
        .reach()
        .principals
        .names()
        .map(String::from)
        .collect();
    let mut ts = end;
    for (i, p) in people.iter().enumerate() {
        ts += 1;
        engine.observe(
            &Event {
                ts: Ts(ts),
                id: None,
                body: Body::Membership(reachguard::event::Membership {
                    actor: "hr-system".into(),
                    group: "eng-all".into(),
                    member: p.clone(),
                    op: reachguard::event::MembershipOp::Add,
                    grant_id: Some(format!("m-{i}")),
                    reference: None,
                    actor_type: None,
                    target: None,
                }),
            },
            Origin::TRUSTED,
        );
    }
    println!(
        "model: {} engineers, eng-all has {} members",
        people.len(),
        engine.model().group_size("eng-all")
    );

    let now = Ts(ts + 60_000);
    let mut took = Vec::with_capacity(DECISIONS);
    for i in 0..DECISIONS {
        let p = match i % 3 {
            0 => Proposal {
                actor: people[i % people.len()].clone(),
                grantee: people[(i * 7) % people.len()].clone(),
                resource: format!("prod/t{:03}/svc1", i % 180),
                ..Proposal::default()
            },
            1 => Proposal {
                actor: people[i % people.len()].clone(),
                grantee: format!("grp/t{:03}", i % 180),
                grantee_type: Some(GranteeType::Group),
                resource: format!("vault/t{:03}/k0", (i + 1) % 180),
                ..Proposal::default()
            },
            _ => Proposal {
                gate: GateKind::K8s,
                actor: people[i % people.len()].clone(),
                grantee: "eng-all".into(),
                grantee_type: Some(GranteeType::Group),
                resource: "internal/tools".into(),
                role: Some("viewer".into()),
                ..Proposal::default()
            },
        };
        let started = Instant::now();
        let out = decide(&mut engine, &p, now).expect("a complete proposal");
        took.push(started.elapsed());
        std::hint::black_box(out);
    }
    let p99 = report("decide (1,500 engineers)", took);
    assert!(
        p99 <= Duration::from_millis(10),
        "decide p99 {p99:?} > 10 ms"
    );

    let bin = env!("CARGO_BIN_EXE_reachguard");
    let input = r#"{"session_id":"s","hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"ls -la"},"tool_use_id":"t"}"#;
    let mut took = Vec::with_capacity(HOOK_RUNS);
    for _ in 0..HOOK_RUNS {
        let started = Instant::now();
        let mut child = Command::new(bin)
            .args(["gate", "claude-code", "--server", "http://127.0.0.1:1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("stdin takes the input");
        let out = child.wait_with_output().expect("the hook exits");
        took.push(started.elapsed());
        assert!(out.status.success() && out.stdout.is_empty());
    }
    let p99 = report("hook, unrelated command (process start to exit)", took);
    assert!(p99 <= Duration::from_millis(20), "hook p99 {p99:?} > 20 ms");
}
