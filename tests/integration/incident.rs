//! The incident end to end against a running `reachguard run`: a real file
//! being appended, a real signed webhook on 127.0.0.1.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::helpers::*;

fn lines(raw: &[&str]) -> Vec<String> {
    raw.iter().map(|s| s.to_string()).collect()
}

#[test]
fn only_grants_traced_to_unverified_agent_advice_are_revoked_once_each_with_a_valid_signature() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.jsonl");
    let hook = Webhook::start();

    // Present before the daemon starts: the organisation.
    let history = lines(&[
        r#"{"ts":"2026-03-18T08:00:00Z","type":"membership","actor":"hr","actor_type":"service","group":"eng-all","member":"carol","op":"add"}"#,
        r#"{"ts":"2026-03-18T08:00:00Z","type":"membership","actor":"hr","actor_type":"service","group":"eng-all","member":"ivan","op":"add"}"#,
        r#"{"ts":"2026-03-18T08:30:00Z","type":"grant","grant_id":"g-routine","actor":"erin","grantee":"dave","resource":"ci/logs","reference":"OPS-1234"}"#,
    ]);
    append(&log, &history);
    let mut daemon = Daemon::start(
        dir.path(),
        &config(dir.path(), &log.display().to_string(), Some(&hook.url())),
    );

    // Appended while it runs.
    let live = lines(&[
        // 1. The incident: published unreviewed advice, viewed, followed.
        r#"{"ts":"2026-03-18T09:02:11Z","type":"advice","advice_id":"adv-7731","agent":"agent:forum-helper","requested_by":"bob","channel":"forum/infra-q-4512","published":true,"recommends":[{"resource":"acl/internal-tools","role":"viewer","grantee":"eng-all"}]}"#,
        r#"{"ts":"2026-03-18T09:05:40Z","type":"advice_viewed","advice_id":"adv-7731","principal":"alice"}"#,
        r#"{"ts":"2026-03-18T09:07:02Z","type":"grant","grant_id":"g-90211","actor":"alice","grantee":"eng-all","grantee_type":"group","resource":"acl/internal-tools","role":"viewer","reference":"per forum/infra-q-4512"}"#,
        r#"{"ts":"2026-03-18T09:09:15Z","type":"access","principal":"carol","resource":"acl/internal-tools"}"#,
        // 2. Advice a human verified before it was followed: left alone.
        r#"{"ts":"2026-03-18T09:20:00Z","type":"advice","advice_id":"adv-8001","agent":"agent:kb","requested_by":"erin","recommends":[{"resource":"terraform/state","grantee":"dave"}]}"#,
        r#"{"ts":"2026-03-18T09:25:00Z","type":"advice_verified","advice_id":"adv-8001","verifier":"bob"}"#,
        r#"{"ts":"2026-03-18T09:30:00Z","type":"grant","grant_id":"g-verified","actor":"erin","grantee":"dave","resource":"terraform/state","reference":"adv-8001"}"#,
        // 3. Advice "verified" by an agent: that is no review, so it is revoked.
        r#"{"ts":"2026-03-18T09:40:00Z","type":"advice","advice_id":"adv-8002","agent":"agent:kb","requested_by":"frank","recommends":[{"resource":"prod/db","grantee":"frank"}]}"#,
        r#"{"ts":"2026-03-18T09:41:00Z","type":"advice_verified","advice_id":"adv-8002","verifier":"agent:reviewer"}"#,
        r#"{"ts":"2026-03-18T09:45:00Z","type":"grant","grant_id":"g-agent-verified","actor":"frank","grantee":"frank","resource":"prod/db","reference":"adv-8002"}"#,
        // 4. An agent granting directly: revoked.
        r#"{"ts":"2026-03-18T09:50:00Z","type":"grant","grant_id":"g-by-agent","actor":"agent:ops-bot","grantee":"mallory","resource":"prod/db","role":"admin"}"#,
        // 5. A malformed line: counted, skipped, nothing stops.
        r#"{"ts":"2026-03-18T09:51:00Z","type":"grant","grant_id":"g-broken"}"#,
    ]);
    append(&log, &live);
    let total = (history.len() + live.len()) as f64;
    wait_until(
        Duration::from_secs(20),
        "every line to be processed",
        || daemon.metric(r#"reachguard_lines_total{source="app"}"#) >= total,
    );
    wait_until(Duration::from_secs(20), "three revocations", || {
        hook.calls().len() >= 3
    });
    wait_until(
        Duration::from_secs(20),
        "executed revocations to be counted",
        || daemon.metric(r#"reachguard_revocations_total{status="executed"}"#) >= 3.0,
    );

    let calls = hook.calls();
    let revoked: BTreeSet<String> = calls
        .iter()
        .map(|c| c.json()["grant_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        calls.len(),
        3,
        "exactly one call per revoked grant: {calls:?}"
    );
    assert_eq!(
        revoked,
        BTreeSet::from([
            "g-90211".into(),
            "g-agent-verified".into(),
            "g-by-agent".into()
        ])
    );
    for c in &calls {
        assert!(c.signature_valid(SECRET), "bad signature on {c:?}");
        assert!(!c.signature_valid("another-secret"));
        let body = c.json();
        assert_eq!(body["action"], "revoke");
        assert_eq!(
            c.idempotency_key.as_deref(),
            body["idempotency_key"].as_str()
        );
    }
    let incident = calls
        .iter()
        .find(|c| c.json()["grant_id"] == "g-90211")
        .unwrap()
        .json();
    assert_eq!(incident["kind"], "grant");
    assert_eq!(incident["grantee"], "eng-all");
    assert_eq!(incident["grantee_type"], "group");
    assert_eq!(incident["resource"], "acl/internal-tools");

    assert_eq!(
        daemon.metric(r#"reachguard_decode_errors_total{source="app"}"#),
        1.0
    );
    assert_eq!(
        daemon.metric(r#"reachguard_events_total{type="grant"}"#),
        5.0
    );
    assert_eq!(
        daemon.metric(
            r#"reachguard_findings_total{kind="unreviewed_agent_publish",severity="high"}"#
        ),
        1.0
    );
    let api: Vec<serde_json::Value> = serde_json::from_str(&http_get(
        daemon.addr(),
        "/api/findings?kind=unverified_agent_grant",
    ))
    .unwrap();
    assert_eq!(api.len(), 3);
    assert!(api.iter().all(|f| f["action"]["status"] == "executed"));

    assert!(
        daemon.sigterm().success(),
        "SIGTERM must exit 0; log:\n{}",
        daemon.log()
    );
    let findings = daemon.findings();
    let executed: BTreeSet<&str> = findings
        .iter()
        .filter(|f| f["action"]["status"] == "executed")
        .map(|f| f["grant_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        executed,
        BTreeSet::from(["g-90211", "g-agent-verified", "g-by-agent"])
    );
    assert!(
        !findings
            .iter()
            .any(|f| f["grant_id"] == "g-verified" || f["grant_id"] == "g-routine"),
        "verified and routine grants raise nothing"
    );
    assert_eq!(hook.calls().len(), 3, "nothing more after shutdown");
}

#[test]
fn health_and_readiness_answer_and_findings_filters_reject_bad_times() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.jsonl");
    append(&log, &[]);
    let mut daemon = Daemon::start(
        dir.path(),
        &config(dir.path(), &log.display().to_string(), None),
    );
    assert_eq!(http_get(daemon.addr(), "/healthz"), "ok\n");
    wait_until(Duration::from_secs(10), "readiness", || {
        std::panic::catch_unwind(|| http_get(daemon.addr(), "/readyz")).is_ok()
    });
    assert_eq!(http_get(daemon.addr(), "/api/findings"), "[]");
    let resp =
        std::panic::catch_unwind(|| http_get(daemon.addr(), "/api/findings?since=yesterday"));
    assert!(resp.is_err(), "a bad `since` is a 400, not an empty list");
    assert!(daemon.sigterm().success());
}
