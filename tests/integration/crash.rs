//! Crash safety: the daemon killed with SIGKILL at random points while a
//! scenario streams in ends with exactly the findings and revocations of an
//! uninterrupted run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reachguard::synth::{OrgSpec, Rng, generate};

use crate::helpers::*;

/// The scenario as native lines, plus a last line whose event time marks the end.
fn scenario(seed: u64) -> (Vec<String>, f64) {
    let org = generate(OrgSpec {
        engineers: 60,
        history_days: 4,
        eval_days: 3,
        seed,
        inject: true,
    });
    let mut lines: Vec<String> = org.events.iter().map(|e| e.to_native_json()).collect();
    let end = org.eval_end.0 + 3_600_000;
    lines.push(format!(
        r#"{{"ts":"{}","type":"access","principal":"sentinel","resource":"wiki/home"}}"#,
        reachguard::event::Ts(end)
    ));
    (lines, end as f64 / 1000.0)
}

fn daemon_config(dir: &std::path::Path, log: &std::path::Path, hook: &Webhook) -> String {
    let mut c = config(dir, &log.display().to_string(), Some(&hook.url()));
    c = c.replace(
        "[sensitivity]\n\"acl/internal-*\" = \"critical\"\n",
        "[sensitivity]\n\"internal/*\" = \"critical\"\n\"vault/*\" = \"critical\"\n\"prod/*\" = \"high\"\n",
    );
    c.push_str("\n[detection]\nwarmup = \"1d\"\nprovisioners = [\"hr-system\"]\n\n[response]\nmax_revocations_per_hour = 10000\n");
    c
}

/// The event time of a native line, in seconds.
fn line_time(line: &str) -> f64 {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let ts = reachguard::event::Ts::parse_rfc3339(v["ts"].as_str().unwrap()).unwrap();
    ts.as_secs_f64()
}

fn wait_done(d: &Daemon, end: f64) {
    wait_until(Duration::from_secs(120), "the last line", || {
        d.metric("reachguard_last_event_timestamp_seconds") >= end
    });
}

/// Findings by id; each id must appear once in the file.
fn findings_by_id(d: &Daemon) -> BTreeMap<String, serde_json::Value> {
    let all = d.findings();
    let by_id: BTreeMap<String, serde_json::Value> = all
        .iter()
        .map(|f| (f["finding_id"].as_str().unwrap().to_owned(), f.clone()))
        .collect();
    assert_eq!(by_id.len(), all.len(), "a finding was written twice");
    by_id
}

#[test]
fn sigkill_at_random_points_loses_and_doubles_nothing() {
    for seed in [11, 12] {
        crash_loop(seed);
    }
}

fn crash_loop(seed: u64) {
    let (lines, end) = scenario(seed);

    // The reference: one uninterrupted run.
    let ref_dir = tempfile::tempdir().unwrap();
    let ref_hook = Webhook::start();
    let ref_log = ref_dir.path().join("app.jsonl");
    append(&ref_log, &lines);
    let mut reference = Daemon::start(
        ref_dir.path(),
        &daemon_config(ref_dir.path(), &ref_log, &ref_hook),
    );
    wait_done(&reference, end);
    assert!(reference.sigterm().success());
    let want_findings = findings_by_id(&reference);
    let want_revoked: BTreeSet<String> = ref_hook
        .calls()
        .iter()
        .map(|c| c.json()["grant_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ref_hook.calls().len(), want_revoked.len());
    assert!(want_revoked.len() >= 2, "the scenario revokes something");
    assert!(
        want_findings
            .values()
            .any(|f| f["kind"] == "reach_expansion")
    );

    // The same lines streamed in while the daemon is killed again and again.
    let dir = tempfile::tempdir().unwrap();
    let hook = Webhook::start();
    let log = dir.path().join("app.jsonl");
    let cfg = daemon_config(dir.path(), &log, &hook);
    // Restarts alternate at random with a config that lists another source
    // first: each source's cursor is saved under its name, not its place.
    let other = dir.path().join("other.jsonl");
    let reordered = with_source_first(&cfg, "other", &other);
    append(&other, &[]);
    append(&log, &[]);
    let mut rng = Rng::new(0x6b11 ^ seed);
    let mut daemon = Daemon::start(dir.path(), &cfg);
    let mut written = 0;
    let mut kills = 0;
    while written < lines.len() {
        let n = (10 + rng.below(250)).min(lines.len() - written);
        append(&log, &lines[written..written + n]);
        written += n;
        // Kill at a random point: now, or after the daemon has read some of it.
        if rng.chance(0.6) {
            let wait = rng.below(3);
            let seen = daemon.metric(r#"reachguard_lines_total{source="app"}"#);
            // The daemon may have read everything written before `seen` was
            // taken; then there is no more progress to wait for.
            let written_until = line_time(&lines[written - 1]);
            if wait > 0 {
                wait_until(Duration::from_secs(30), "some progress", || {
                    daemon.metric(r#"reachguard_lines_total{source="app"}"#) >= seen + wait as f64
                        || daemon.metric("reachguard_last_event_timestamp_seconds") >= written_until
                });
            }
            daemon.kill_9();
            kills += 1;
            let cfg = if rng.chance(0.5) { &reordered } else { &cfg };
            daemon = Daemon::start(dir.path(), cfg);
        }
    }
    wait_done(&daemon, end);
    assert!(daemon.sigterm().success());
    assert!(kills >= 10, "only {kills} kills");

    let got_findings = findings_by_id(&daemon);
    let missing: Vec<&String> = want_findings
        .keys()
        .filter(|k| !got_findings.contains_key(*k))
        .collect();
    let extra: Vec<&String> = got_findings
        .keys()
        .filter(|k| !want_findings.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "after {kills} kills: missing {missing:?}, extra {extra:?}"
    );
    for (id, want) in &want_findings {
        assert_eq!(
            &got_findings[id], want,
            "finding {id} differs after {kills} kills"
        );
    }

    let calls = hook.calls();
    let got_revoked: BTreeSet<String> = calls
        .iter()
        .map(|c| c.json()["grant_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got_revoked, want_revoked, "after {kills} kills");
    // A kill between a hook's answer and the journal's outcome record makes the
    // resumed call a second delivery; it carries the same Idempotency-Key, so
    // the receiver sees one revocation.
    let mut keys_per_grant: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in &calls {
        keys_per_grant
            .entry(c.json()["grant_id"].as_str().unwrap().to_owned())
            .or_default()
            .insert(c.idempotency_key.clone().unwrap());
    }
    assert!(keys_per_grant.values().all(|k| k.len() == 1));
    assert!(
        calls.len() - got_revoked.len() <= kills,
        "more repeated deliveries than kills"
    );
    eprintln!(
        "{kills} SIGKILLs over {} lines: {} findings and {} revocations as uninterrupted, {} repeated deliveries (same key)",
        lines.len(),
        got_findings.len(),
        got_revoked.len(),
        calls.len() - got_revoked.len()
    );
}
