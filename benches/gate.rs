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
//! - as a user meets them: the daemon (`reachguard run`) started over the
//!   same organisation's log, then `POST /api/v1/decide` over HTTP, a new
//!   connection per request as the hook makes it, and the hook process for a
//!   `kubectl create clusterrolebinding … --group=eng-all` command against
//!   that daemon (start to answer).
//!
//! `cargo bench --bench gate`. Targets (issue "Confirmation gates"): decide
//! p99 <= 10 ms, hook <= 20 ms.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reachguard::detect::{Engine, EngineConfig, Origin};
use reachguard::event::{Body, Event, GranteeType, Ts};
use reachguard::gate::{GateKind, Proposal, decide};
use reachguard::synth::{OrgSpec, generate};

#[path = "support/mod.rs"]
mod support;

use support::{exchange, report};

const ENGINEERS: usize = 1500;
const DECISIONS: usize = 3000;
const HOOK_RUNS: usize = 200;

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

    let mut lines: Vec<String> = org.events.iter().map(|e| e.to_native_json()).collect();
    lines.extend(people.iter().enumerate().map(|(i, p)| {
        format!(
            r#"{{"ts":"{}","type":"membership","actor":"hr-system","group":"eng-all","member":"{p}","op":"add","grant_id":"m-{i}"}}"#,
            Ts(end + 1 + i as i64)
        )
    }));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let daemon = Daemonised::start(dir.path(), &lines);
    let addr = daemon.addr;
    let mut took = Vec::with_capacity(DECISIONS);
    for i in 0..DECISIONS {
        let body = match i % 2 {
            0 => format!(
                r#"{{"actor":"{}","grantee":"{}","resource":"prod/t{:03}/svc1"}}"#,
                people[i % people.len()],
                people[(i * 7) % people.len()],
                i % 180
            ),
            _ => format!(
                r#"{{"actor":"{}","grantee":"eng-all","grantee_type":"group","resource":"internal/tools","role":"viewer"}}"#,
                people[i % people.len()]
            ),
        };
        let started = Instant::now();
        let (code, answer) = post(addr, "/api/v1/decide", &body);
        took.push(started.elapsed());
        assert_eq!(code, 200, "{answer}");
    }
    let p99 = report(
        "decide over HTTP against the daemon (1,500 engineers)",
        took,
    );
    assert!(
        p99 <= Duration::from_millis(10),
        "decide over HTTP p99 {p99:?} > 10 ms"
    );

    let server = format!("http://{addr}");
    let input = r#"{"session_id":"s","hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"kubectl create clusterrolebinding tools --clusterrole=cluster-admin --group=eng-all"},"tool_use_id":"t"}"#;
    let mut took = Vec::with_capacity(HOOK_RUNS);
    for _ in 0..HOOK_RUNS {
        let started = Instant::now();
        let mut child = Command::new(bin)
            .args(["gate", "claude-code", "--server", &server, "--principal"])
            .arg(&people[0])
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
        assert!(out.status.success(), "the hook answers");
    }
    report(
        "hook, grant command against the daemon (process start to answer)",
        took,
    );
    drop(daemon);
}

/// `reachguard run` over a log of `lines`, caught up; killed when dropped.
struct Daemonised {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Daemonised {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemonised {
    fn start(dir: &Path, lines: &[String]) -> Daemonised {
        let log = dir.join("org.jsonl");
        std::fs::write(&log, lines.join("\n") + "\n").expect("the log is written");
        let state = dir.join("state");
        let cfg = dir.join("reachguard.toml");
        std::fs::write(
            &cfg,
            format!(
                "[state]\ndir = \"{}\"\n[[sources]]\npath = \"{}\"\nname = \"org\"\n[server]\nlisten = \"127.0.0.1:0\"\n\
                 [sensitivity]\n\"internal/*\" = \"critical\"\n\"vault/*\" = \"critical\"\n\"prod/*\" = \"high\"\n\
                 [detection]\nprovisioners = [\"hr-system\"]\n",
                state.display(),
                log.display()
            ),
        )
        .expect("the config is written");
        let child = Command::new(env!("CARGO_BIN_EXE_reachguard"))
            .args(["run", "--config"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the daemon starts");
        // Killed on any way out, the panics below included.
        let mut daemon = Daemonised {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let started = Instant::now();
        let addr_file = state.join("http.addr");
        let read = format!("reachguard_lines_total{{source=\"org\"}} {}", lines.len());
        loop {
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "the daemon did not read the log within 5 minutes"
            );
            std::thread::sleep(Duration::from_millis(200));
            let Some(addr) = std::fs::read_to_string(&addr_file)
                .ok()
                .and_then(|a| a.trim().parse().ok())
            else {
                continue;
            };
            if get(addr, "/metrics").lines().any(|l| l == read) {
                println!(
                    "daemon: read {} lines in {:.1} s",
                    lines.len(),
                    started.elapsed().as_secs_f64()
                );
                daemon.addr = addr;
                return daemon;
            }
        }
    }
}

fn get(addr: SocketAddr, path: &str) -> String {
    support::get(addr, path).1
}

fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    exchange(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}
