//! The incident page as an on-call engineer meets it: the daemon
//! (`reachguard run`, this bench's own build, default config but for its
//! paths) started over a state dir holding 10,000 findings (the default
//! `findings_in_memory`), a revocation journal with an executed revocation
//! for each unverified agent grant among them and the uses of their grants;
//! then pages fetched over HTTP, a new connection per request:
//!
//! - `finding`: `/finding?id=…` of findings spread over the whole memory
//!   (the oldest are the slowest to find);
//! - `list`: `/`, the newest 200;
//! - `list filtered`: `/?principal=…`, which reads all 10,000;
//! - `person`: `/person?name=…`, answered by the engine's owner.
//!
//! p50 / p99 / max of each, from the request written to the last byte read.
//! Target (issue "An incident page"): a finding's page under 100 ms with
//! 10,000 findings in memory.
//!
//! `cargo bench --bench page`

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reachguard::event::Ts;
use reachguard::finding::{Action, ActionKind, ActionStatus, Finding, FindingKind, Severity};
use reachguard::respond::Journal;
use reachguard::uses::{Use, UseLog};

#[path = "support/mod.rs"]
mod support;

use support::report;

const FINDINGS: usize = 10_000;
const ENGINEERS: usize = 1500;
const REQUESTS: usize = 500;

/// One GET; the status and the body's length.
fn get(addr: SocketAddr, path: &str) -> (u16, usize) {
    let (status, body) = support::get(addr, path);
    (status, body.len())
}

fn engineer(i: usize) -> String {
    format!("eng-{:04}", i % ENGINEERS)
}

/// The i-th finding: the four kinds in turn, an unverified agent grant with
/// the incident's chain and an executed revocation.
fn finding(i: usize) -> Finding {
    let ts = Ts(1_773_824_400_000 + i as i64 * 60_000);
    let kind = [
        FindingKind::UnverifiedAgentGrant,
        FindingKind::GrantExpansion,
        FindingKind::ReachExpansion,
        FindingKind::UnreviewedAgentPublish,
    ][i % 4];
    let grant = format!("g-{i}");
    let resource = format!("acl/internal-tools-{}", i % 97);
    let principals: Vec<String> = (0..4).map(|k| engineer(i * 7 + k)).collect();
    let advice = format!("adv-{i}");
    let evidence = serde_json::json!({
        "affected_engineers": 4,
        "change": {"actor": principals[0], "grant_id": grant, "grantee": "eng-all", "grantee_type": "group",
                   "resource": resource, "role": "viewer", "tier": "critical"},
        "min_confidence": 0.7,
        "trace": {"advice_id": advice, "agent": "agent:forum-helper", "confidence": 0.95, "link": "inferred",
            "chain": [
                {"step": "agent_published_advice", "ts": Ts(ts.0 - 300_000).to_string(),
                 "detail": format!("agent:forum-helper published advice {advice} recommending viewer on {resource} for eng-all")},
                {"step": "actor_viewed_advice", "ts": Ts(ts.0 - 82_000).to_string(),
                 "detail": format!("{} viewed advice {advice}", principals[0])},
            ]},
    });
    Finding {
        finding_id: format!("rg-{i:016x}"),
        kind,
        severity: Severity::Critical,
        ts,
        principals,
        grant_id: (kind != FindingKind::UnreviewedAgentPublish).then(|| grant.clone()),
        advice_id: Some(advice),
        resource: Some(resource),
        score: 3.8,
        summary: format!("finding {i}: a grant traced to advice no human verified"),
        evidence,
        action: (kind == FindingKind::UnverifiedAgentGrant).then_some(Action {
            kind: ActionKind::Revoke,
            grant_id: grant,
            status: ActionStatus::Executed,
            reason: None,
        }),
    }
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();

    let findings: Vec<Finding> = (0..FINDINGS).map(finding).collect();
    let mut text = String::new();
    for f in &findings {
        text.push_str(&serde_json::to_string(f).unwrap());
        text.push('\n');
    }
    std::fs::write(state.join("findings.jsonl"), text).unwrap();
    let mut journal = Journal::open(&state.join("actions.jsonl")).unwrap();
    let mut uses = UseLog::open(&state.join("uses.jsonl"), FINDINGS).unwrap();
    for f in findings.iter().filter(|f| f.action.is_some()) {
        let grant = f.grant_id.as_deref().unwrap();
        let key = format!("reachguard-revoke-{grant}");
        journal
            .record_intent_read_at(
                &key,
                serde_json::json!({"grant_id": grant}),
                f,
                Some(f.ts.0),
            )
            .unwrap();
        journal
            .record_done(&key, ActionStatus::Executed, 1)
            .unwrap();
        for (k, p) in f.principals.iter().enumerate() {
            uses.record(Use {
                finding_id: f.finding_id.clone(),
                principal: p.clone(),
                resource: f.resource.clone().unwrap(),
                ts: Ts(f.ts.0 + 1000 * (k as i64 + 1)),
                denied: false,
                event_id: None,
            })
            .unwrap();
        }
    }
    drop((journal, uses));

    let log = dir.path().join("app.jsonl");
    std::fs::write(&log, "").unwrap();
    let cfg = dir.path().join("reachguard.toml");
    std::fs::write(
        &cfg,
        format!(
            "[state]\ndir = \"{}\"\n[[sources]]\npath = \"{}\"\n[server]\nlisten = \"127.0.0.1:0\"\n",
            state.display(),
            log.display()
        ),
    )
    .unwrap();
    let started = Instant::now();
    let _daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_reachguard"))
            .args(["run", "--config"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr_file = state.join("http.addr");
    let addr: SocketAddr = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the daemon did not start"
        );
        if let Ok(a) = std::fs::read_to_string(&addr_file) {
            if let Ok(a) = a.trim().parse() {
                if get(a, "/readyz").0 == 200 {
                    break a;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    println!(
        "daemon ready over {FINDINGS} findings in {:?}",
        started.elapsed()
    );

    let (status, len) = get(addr, &format!("/finding?id={}", findings[0].finding_id));
    assert_eq!(status, 200);
    println!("a finding's page: {len} bytes");
    let time = |paths: &mut dyn Iterator<Item = String>| -> Vec<Duration> {
        paths
            .map(|p| {
                let t = Instant::now();
                let (status, _) = get(addr, &p);
                let took = t.elapsed();
                assert_eq!(status, 200, "{p}");
                took
            })
            .collect()
    };
    let step = FINDINGS / REQUESTS;
    let finding_p99 = report(
        "finding",
        time(&mut (0..REQUESTS).map(|i| format!("/finding?id={}", findings[i * step].finding_id))),
    );
    report("list", time(&mut (0..REQUESTS).map(|_| "/".to_owned())));
    report(
        "list filtered",
        time(&mut (0..REQUESTS).map(|i| format!("/?principal={}", engineer(i * 13)))),
    );
    report(
        "person",
        time(&mut (0..REQUESTS).map(|i| format!("/person?name={}", engineer(i * 7)))),
    );
    println!(
        "finding page p99 {finding_p99:?}: {} the 100 ms target",
        if finding_p99 < Duration::from_millis(100) {
            "within"
        } else {
            "OVER"
        }
    );
}
