//! Response you can trust, against a running `reachguard run`: retries and
//! timeouts with a scripted webhook, SIGKILL while a hook is in flight and
//! after it completed, the guardrails (budget across a restart, protected
//! patterns, untrusted advice), `reachguard restore`, and the example exec hooks
//! in `deploy/hooks/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::helpers::*;

const WAIT: Duration = Duration::from_secs(30);

/// A grant made directly by an AI agent: traced with confidence 1.0.
fn agent_grant(grant_id: &str, grantee: &str, resource: &str, second: u64) -> String {
    format!(
        r#"{{"ts":"2026-03-18T10:{:02}:{:02}Z","type":"grant","grant_id":"{grant_id}","actor":"agent:ops-bot","grantee":"{grantee}","resource":"{resource}","role":"admin"}}"#,
        (second / 60) % 60,
        second % 60
    )
}

/// A config following `app.jsonl` in `dir`, with `response` appended verbatim.
fn config_with(dir: &Path, response: &str) -> String {
    format!(
        "[state]\ndir = \"{}\"\ncheckpoint_interval = \"100ms\"\n\n[[sources]]\npath = \"{}\"\nname = \"app\"\n\n[server]\nlisten = \"127.0.0.1:0\"\n\n{response}",
        dir.join("state").display(),
        dir.join("app.jsonl").display(),
    )
}

fn webhook_hook(url: &str, timeout: &str, max_attempts: u32) -> String {
    format!(
        "[[response.hooks]]\ntype = \"webhook\"\nurl = \"{url}\"\nsecret_env = \"REACHGUARD_HOOK_SECRET\"\ntimeout = \"{timeout}\"\nmax_attempts = {max_attempts}\n"
    )
}

/// The findings about `grant_id` in the findings file.
fn findings_for(d: &Daemon, grant_id: &str) -> Vec<serde_json::Value> {
    d.findings()
        .into_iter()
        .filter(|f| f["grant_id"] == grant_id)
        .collect()
}

fn status_of(d: &Daemon, grant_id: &str) -> Option<String> {
    findings_for(d, grant_id)
        .iter()
        .find_map(|f| f["action"]["status"].as_str().map(str::to_owned))
}

fn wait_for_status(d: &Daemon, grant_id: &str, status: &str) {
    wait_until(WAIT, &format!("{grant_id} to be {status}"), || {
        status_of(d, grant_id).as_deref() == Some(status)
    });
}

fn calls_for(hook: &Webhook, grant_id: &str) -> Vec<Received> {
    hook.calls()
        .into_iter()
        .filter(|c| c.grant_id() == grant_id)
        .collect()
}

/// Waits until no revocation is in flight and at least `executed` ran in this
/// process: everything dispatched before has completed and been counted.
fn wait_settled(d: &Daemon, executed: f64) {
    wait_until(WAIT, "revocations to settle", || {
        d.metric(r#"reachguard_revocations_total{status="executed"}"#) >= executed
            && d.metric("reachguard_journal_pending") == 0.0
    });
}

fn journal(d: &Daemon) -> Vec<serde_json::Value> {
    read_json_lines(&d.state.join("actions.jsonl"))
}

#[test]
fn a_hook_that_fails_twice_is_retried_and_the_grant_revoked_once() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Webhook::scripted(&[Reply::Status(500), Reply::Status(503)]);
    append(&dir.path().join("app.jsonl"), &[]);
    let mut daemon = Daemon::start(
        dir.path(),
        &config_with(dir.path(), &webhook_hook(&hook.url(), "2s", 5)),
    );
    append(
        &dir.path().join("app.jsonl"),
        &[agent_grant("g-retry", "mallory", "prod/db", 1)],
    );
    wait_for_status(&daemon, "g-retry", "executed");

    let calls = hook.calls();
    assert_eq!(calls.len(), 3, "two failures, then the success: {calls:?}");
    for c in &calls {
        assert_eq!(c.grant_id(), "g-retry");
        assert_eq!(c.action(), "revoke");
        assert_eq!(
            c.idempotency_key.as_deref(),
            Some("reachguard-revoke-g-retry")
        );
        assert!(c.signature_valid(SECRET));
        assert_eq!(
            c.body, calls[0].body,
            "every attempt sends the same payload"
        );
    }
    let m = |s: &str| daemon.metric(s);
    assert_eq!(
        m(r#"reachguard_hook_attempts_total{hook_type="webhook",result="failure"}"#),
        2.0
    );
    assert_eq!(
        m(r#"reachguard_hook_attempts_total{hook_type="webhook",result="success"}"#),
        1.0
    );
    assert_eq!(m(r#"reachguard_revocations_total{status="executed"}"#), 1.0);
    assert_eq!(m("reachguard_journal_pending"), 0.0);
    assert_eq!(findings_for(&daemon, "g-retry").len(), 1);
    assert!(daemon.sigterm().success(), "{}", daemon.log());
    assert_eq!(hook.calls().len(), 3);
}

#[test]
fn a_hook_that_hangs_times_out_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Webhook::scripted(&[Reply::Hang]);
    append(&dir.path().join("app.jsonl"), &[]);
    let mut daemon = Daemon::start(
        dir.path(),
        &config_with(dir.path(), &webhook_hook(&hook.url(), "1s", 3)),
    );
    append(
        &dir.path().join("app.jsonl"),
        &[agent_grant("g-hang", "mallory", "prod/db", 1)],
    );
    wait_for_status(&daemon, "g-hang", "executed");
    let calls = hook.calls();
    assert_eq!(
        calls.len(),
        2,
        "the hung attempt, then the retry: {calls:?}"
    );
    assert!(calls.iter().all(|c| c.grant_id() == "g-hang"
        && c.idempotency_key.as_deref() == Some("reachguard-revoke-g-hang")));
    assert_eq!(
        daemon.metric(r#"reachguard_hook_attempts_total{hook_type="webhook",result="timeout"}"#),
        1.0
    );
    assert_eq!(
        daemon.metric(r#"reachguard_hook_attempts_total{hook_type="webhook",result="success"}"#),
        1.0
    );
    assert!(daemon.sigterm().success(), "{}", daemon.log());
}

#[test]
fn a_hook_that_keeps_failing_ends_failed_with_a_metric_and_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Webhook::scripted(&[Reply::Status(500); 3]);
    append(&dir.path().join("app.jsonl"), &[]);
    let mut daemon = Daemon::start(
        dir.path(),
        &config_with(dir.path(), &webhook_hook(&hook.url(), "2s", 3)),
    );
    append(
        &dir.path().join("app.jsonl"),
        &[agent_grant("g-down", "mallory", "prod/db", 1)],
    );
    wait_for_status(&daemon, "g-down", "failed");
    assert_eq!(hook.calls().len(), 3, "max_attempts = 3");
    assert_eq!(
        daemon.metric(r#"reachguard_revocations_total{status="failed"}"#),
        1.0
    );
    assert_eq!(
        daemon.metric(r#"reachguard_hook_attempts_total{hook_type="webhook",result="failure"}"#),
        3.0
    );
    let f = &findings_for(&daemon, "g-down")[0];
    assert!(
        f["action"]["reason"]
            .as_str()
            .unwrap()
            .contains("HTTP status 500"),
        "{f}"
    );
    let log = daemon.log();
    assert!(
        log.contains("revocation hook failed for good") && log.contains("reachguard-revoke-g-down"),
        "{log}"
    );
    assert!(!log.contains(SECRET), "the hook secret is never logged");
    assert!(daemon.sigterm().success());
}

#[test]
fn sigkill_in_flight_resumes_the_same_call_once_and_a_confirmed_revocation_is_never_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.jsonl");
    let hook = Webhook::scripted(&[Reply::Hold]);
    append(&log, &[]);
    let cfg = config_with(dir.path(), &webhook_hook(&hook.url(), "10s", 5));

    // 1. Killed while the hook call is in flight.
    let mut daemon = Daemon::start(dir.path(), &cfg);
    append(&log, &[agent_grant("g-inflight", "mallory", "prod/db", 1)]);
    wait_until(WAIT, "the revocation to reach the webhook", || {
        hook.calls().len() == 1
    });
    assert!(!daemon.kill_9().success());
    // The webhook answers only now, to a daemon that no longer exists.
    hook.release();
    let intents: Vec<_> = journal(&daemon)
        .into_iter()
        .filter(|r| r["key"] == "reachguard-revoke-g-inflight")
        .collect();
    assert_eq!(
        intents.len(),
        1,
        "intent journaled, outcome not: {intents:?}"
    );
    assert_eq!(intents[0]["op"], "intent");

    let mut daemon = Daemon::start(dir.path(), &cfg);
    wait_for_status(&daemon, "g-inflight", "executed");
    let calls = calls_for(&hook, "g-inflight");
    assert_eq!(calls.len(), 2, "called again after the restart: {calls:?}");
    assert_eq!(calls[1].idempotency_key, calls[0].idempotency_key);
    assert_eq!(
        calls[1].idempotency_key.as_deref(),
        Some("reachguard-revoke-g-inflight")
    );
    assert_eq!(calls[1].body, calls[0].body);

    // 2. Killed after a revocation was confirmed.
    append(&log, &[agent_grant("g-confirmed", "trudy", "prod/db", 2)]);
    wait_for_status(&daemon, "g-confirmed", "executed");
    assert!(!daemon.kill_9().success());
    let mut daemon = Daemon::start(dir.path(), &cfg);
    append(&log, &[agent_grant("g-after", "oscar", "prod/db", 3)]);
    wait_for_status(&daemon, "g-after", "executed");
    wait_settled(&daemon, 1.0);
    assert_eq!(
        daemon.metric(r#"reachguard_revocations_total{status="executed"}"#),
        1.0,
        "only g-after was executed after the second restart"
    );
    assert_eq!(calls_for(&hook, "g-confirmed").len(), 1);
    assert_eq!(calls_for(&hook, "g-inflight").len(), 2);
    assert_eq!(calls_for(&hook, "g-after").len(), 1);

    assert!(daemon.sigterm().success(), "{}", daemon.log());
    for g in ["g-inflight", "g-confirmed", "g-after"] {
        let f = findings_for(&daemon, g);
        assert_eq!(f.len(), 1, "one finding for {g}: {f:?}");
        assert_eq!(f[0]["action"]["status"], "executed");
    }
    let done: Vec<_> = journal(&daemon)
        .into_iter()
        .filter(|r| r["op"] == "done")
        .map(|r| r["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        done,
        [
            "reachguard-revoke-g-inflight",
            "reachguard-revoke-g-confirmed",
            "reachguard-revoke-g-after"
        ]
    );
}

#[test]
fn the_hourly_budget_suppresses_beyond_the_limit_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.jsonl");
    let hook = Webhook::start();
    append(&log, &[]);
    let cfg = config_with(
        dir.path(),
        &format!(
            "[response]\nmax_revocations_per_hour = 2\n\n{}",
            webhook_hook(&hook.url(), "2s", 3)
        ),
    );
    let mut daemon = Daemon::start(dir.path(), &cfg);
    append(
        &log,
        &[
            agent_grant("g-b1", "u1", "prod/db", 1),
            agent_grant("g-b2", "u2", "prod/db", 2),
            agent_grant("g-b3", "u3", "prod/db", 3),
        ],
    );
    wait_for_status(&daemon, "g-b3", "suppressed");
    wait_for_status(&daemon, "g-b1", "executed");
    wait_for_status(&daemon, "g-b2", "executed");
    let reason = findings_for(&daemon, "g-b3")[0]["action"]["reason"].clone();
    assert!(
        reason.as_str().unwrap().contains("budget exhausted"),
        "{reason}"
    );
    assert_eq!(
        daemon.metric(r#"reachguard_revocations_total{status="suppressed"}"#),
        1.0
    );
    assert!(daemon.sigterm().success());

    // A restart does not refill the budget: the journal says two ran this hour.
    let mut daemon = Daemon::start(dir.path(), &cfg);
    append(&log, &[agent_grant("g-b4", "u4", "prod/db", 4)]);
    wait_for_status(&daemon, "g-b4", "suppressed");
    let reason = findings_for(&daemon, "g-b4")[0]["action"]["reason"].clone();
    assert!(
        reason.as_str().unwrap().contains("2 in the last hour"),
        "{reason}"
    );
    assert!(daemon.sigterm().success());

    let calls = hook.calls();
    let granted: BTreeSet<String> = calls.iter().map(|c| c.grant_id()).collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(granted, BTreeSet::from(["g-b1".into(), "g-b2".into()]));
    assert!(calls.iter().all(|c| c.action() == "revoke"));
}

#[test]
fn protected_principals_groups_and_resources_are_never_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.jsonl");
    let hook = Webhook::start();
    append(&log, &[]);
    let cfg = config_with(
        dir.path(),
        &format!(
            "[response]\nprotected = [\"breakglass-*\", \"acl/payroll*\", \"sre-core\"]\n\n{}",
            webhook_hook(&hook.url(), "2s", 3)
        ),
    );
    let mut daemon = Daemon::start(dir.path(), &cfg);
    append(
        &log,
        &[
            agent_grant("g-principal", "breakglass-admin", "prod/db", 1),
            agent_grant("g-resource", "mallory", "acl/payroll-db", 2),
            r#"{"ts":"2026-03-18T10:00:03Z","type":"membership","actor":"agent:ops-bot","group":"sre-core","member":"dave","op":"add"}"#.into(),
            agent_grant("g-ok", "mallory", "prod/db", 4),
        ],
    );
    wait_for_status(&daemon, "g-ok", "executed");
    for (g, name) in [
        ("g-principal", "breakglass-admin"),
        ("g-resource", "acl/payroll-db"),
        ("membership:sre-core:dave", "sre-core"),
    ] {
        wait_for_status(&daemon, g, "suppressed");
        let reason = findings_for(&daemon, g)[0]["action"]["reason"].clone();
        assert!(
            reason
                .as_str()
                .unwrap()
                .contains(&format!("{name} is protected")),
            "{g}: {reason}"
        );
    }
    wait_settled(&daemon, 1.0);
    let calls = hook.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].grant_id(), "g-ok");
    assert_eq!(calls[0].action(), "revoke");
    assert!(daemon.sigterm().success());
}

#[test]
fn forged_advice_from_an_untrusted_source_causes_no_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.jsonl");
    let forum = dir.path().join("forum.jsonl");
    let hook = Webhook::start();
    append(&app, &[]);
    append(&forum, &[]);
    let cfg = format!(
        "{}\n[[sources]]\npath = \"{}\"\nname = \"forum\"\ntrust_advice = false\n",
        config_with(dir.path(), &webhook_hook(&hook.url(), "2s", 3)),
        forum.display()
    );
    let mut daemon = Daemon::start(dir.path(), &cfg);

    // Someone forges advice, and a view of it, into a log that is not trusted for advice.
    append(
        &forum,
        &[
            r#"{"ts":"2026-03-18T09:00:00Z","type":"advice","advice_id":"adv-forged","agent":"agent:forum-helper","published":true,"recommends":[{"resource":"prod/billing","grantee":"eve"}]}"#.into(),
            r#"{"ts":"2026-03-18T09:01:00Z","type":"advice_viewed","advice_id":"adv-forged","principal":"alice"}"#.into(),
        ],
    );
    wait_until(WAIT, "the forum lines to be read", || {
        daemon.metric(r#"reachguard_lines_total{source="forum"}"#) == 2.0
    });
    // Model-derived metrics follow the line counters once the daemon is idle.
    wait_until(WAIT, "both forged events to be counted as ignored", || {
        daemon.metric("reachguard_untrusted_advice_ignored_total") >= 2.0
    });
    assert_eq!(
        daemon.metric("reachguard_untrusted_advice_ignored_total"),
        2.0
    );
    append(
        &app,
        &[
            // A grant citing the forged advice: it traces to nothing.
            r#"{"ts":"2026-03-18T09:05:00Z","type":"grant","grant_id":"g-forged","actor":"alice","grantee":"eve","resource":"prod/billing","reference":"as adv-forged says"}"#.into(),
            // The same shape from the trusted source: revoked.
            r#"{"ts":"2026-03-18T09:06:00Z","type":"advice","advice_id":"adv-real","agent":"agent:kb","recommends":[{"resource":"prod/db","grantee":"frank"}]}"#.into(),
            r#"{"ts":"2026-03-18T09:07:00Z","type":"grant","grant_id":"g-real","actor":"frank","grantee":"frank","resource":"prod/db","reference":"adv-real"}"#.into(),
        ],
    );
    wait_for_status(&daemon, "g-real", "executed");
    wait_until(WAIT, "every app line to be read", || {
        daemon.metric(r#"reachguard_lines_total{source="app"}"#) == 3.0
    });
    wait_settled(&daemon, 1.0);
    assert!(findings_for(&daemon, "g-forged").is_empty());
    let calls = hook.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].grant_id(), "g-real");
    assert_eq!(calls[0].action(), "revoke");
    assert!(daemon.sigterm().success());
}

fn restore_cmd(cfg: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["restore", "--config"])
        .arg(cfg)
        .args(args)
        .env("REACHGUARD_HOOK_SECRET", SECRET)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn restore_undoes_a_revocation_through_the_restore_hook_and_journals_who_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.jsonl");
    let hook = Webhook::start();
    append(&log, &[]);
    let cfg = config_with(
        dir.path(),
        &format!(
            "{}\n[[response.restore_hooks]]\ntype = \"webhook\"\nurl = \"{}\"\nsecret_env = \"REACHGUARD_HOOK_SECRET\"\ntimeout = \"2s\"\n",
            webhook_hook(&hook.url(), "2s", 3),
            hook.url_for("/restore")
        ),
    );
    let cfg_path: PathBuf = dir.path().join("reachguard.toml");
    let mut daemon = Daemon::start(dir.path(), &cfg);
    append(&log, &[agent_grant("g-r1", "mallory", "prod/db", 1)]);
    wait_for_status(&daemon, "g-r1", "executed");

    // While the daemon runs.
    let out = restore_cmd(
        &cfg_path,
        &[
            "g-r1",
            "--reason",
            "approved by security, INC-42",
            "--by",
            "alice",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("restored grant g-r1 for alice"));
    let calls = hook.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let restore = &calls[1];
    assert_eq!(restore.path, "/restore");
    assert!(restore.signature_valid(SECRET));
    assert_eq!(
        restore.idempotency_key.as_deref(),
        Some("reachguard-restore-g-r1")
    );
    let body = restore.json();
    assert_eq!(body["action"], "restore");
    assert_eq!(body["grant_id"], "g-r1");
    assert_eq!(body["grantee"], "mallory");
    assert_eq!(body["resource"], "prod/db");
    assert_eq!(body["reason"], "approved by security, INC-42");
    assert_eq!(body["requested_by"], "alice");
    assert_eq!(body["idempotency_key"], "reachguard-restore-g-r1");

    let records = journal(&daemon);
    let intent = records
        .iter()
        .find(|r| r["op"] == "restore_intent")
        .unwrap();
    assert_eq!(intent["key"], "reachguard-restore-g-r1");
    assert_eq!(intent["revoke_key"], "reachguard-revoke-g-r1");
    assert_eq!(intent["requester"]["by"], "alice");
    assert!(!intent["requester"]["os_user"].as_str().unwrap().is_empty());
    assert!(intent["requester"]["uid"].is_u64());
    assert_eq!(intent["reason"], "approved by security, INC-42");
    let done = records.iter().find(|r| r["op"] == "restore_done").unwrap();
    assert_eq!(done["status"], "executed");

    // Twice, or a grant never revoked: a clear error and a non-zero exit.
    let again = restore_cmd(&cfg_path, &["g-r1"]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("already restored by alice"), "{err}");
    let never = restore_cmd(&cfg_path, &["g-never"]);
    assert!(!never.status.success());
    let err = String::from_utf8_lossy(&never.stderr);
    assert!(
        err.contains("cannot restore grant g-never: it was never revoked"),
        "{err}"
    );

    // The grant given back under the same id is not revoked again; given
    // again under a new id, it is judged afresh.
    append(
        &log,
        &[
            r#"{"ts":"2026-03-18T10:05:00Z","type":"revoke","grant_id":"g-r1","actor":"iam-sync"}"#
                .into(),
            agent_grant("g-r1", "mallory", "prod/db", 301),
            agent_grant("g-r2", "mallory", "prod/db", 302),
        ],
    );
    wait_for_status(&daemon, "g-r2", "executed");
    wait_until(WAIT, "every line to be read", || {
        daemon.metric(r#"reachguard_lines_total{source="app"}"#) == 4.0
    });
    wait_settled(&daemon, 2.0);
    assert_eq!(findings_for(&daemon, "g-r1").len(), 1);
    assert!(daemon.sigterm().success());

    // With the daemon stopped.
    let out = restore_cmd(&cfg_path, &["g-r2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Vec<(String, String, String)> = hook
        .calls()
        .iter()
        .map(|c| (c.path.clone(), c.action(), c.grant_id()))
        .collect();
    let s = |p: &str, a: &str, g: &str| (p.to_owned(), a.to_owned(), g.to_owned());
    assert_eq!(
        seen,
        [
            s("/revoke", "revoke", "g-r1"),
            s("/restore", "restore", "g-r1"),
            s("/revoke", "revoke", "g-r2"),
            s("/restore", "restore", "g-r2"),
        ]
    );

    // Without a restore hook there is nothing that could undo it.
    let bare = dir.path().join("bare.toml");
    std::fs::write(
        &bare,
        config_with(dir.path(), &webhook_hook(&hook.url(), "2s", 3)),
    )
    .unwrap();
    let out = restore_cmd(&bare, &["g-r2"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no restore hook is configured"));
    assert_eq!(hook.calls().len(), 4);
}

// ---- The example exec hooks in deploy/hooks/ ----

fn hook_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/hooks")
        .join(name)
}

/// Runs an example hook with `payload` on stdin; returns (exit code, stdout, stderr).
fn run_hook(
    name: &str,
    args: &[&str],
    env: &[(&str, &str)],
    payload: &str,
) -> (i32, String, String) {
    let mut cmd = Command::new(hook_script(name));
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), payload.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn aws_hook_runs_the_cli_and_takes_an_already_detached_policy_as_done() {
    // No AWS account here: a stand-in `aws` that records its arguments and
    // answers as the real CLI does for a policy that is no longer attached.
    let dir = tempfile::tempdir().unwrap();
    let args = dir.path().join("args");
    let fake = dir.path().join("aws");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {}\necho 'An error occurred (NoSuchEntity) when calling the DetachUserPolicy operation: Policy is not attached.' >&2\nexit 254\n",
            args.display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&fake).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&fake, perms).unwrap();
    let fake_env = fake.display().to_string();
    let revoke = r#"{"action":"revoke","grant_id":"a1","kind":"grant","resource":"arn:aws:iam::aws:policy/ReadOnlyAccess","grantee":"mallory","target":{"type":"iam_policy_attachment","principal_type":"user","principal":"mallory","policy_arn":"arn:aws:iam::aws:policy/ReadOnlyAccess"}}"#;
    let (code, _, err) = run_hook("cloudtrail", &[], &[("AWS_CLI", &fake_env)], revoke);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("already gone"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&args).unwrap(),
        "iam\ndetach-user-policy\n--user-name\nmallory\n--policy-arn\narn:aws:iam::aws:policy/ReadOnlyAccess\n"
    );
    // The same error on a restore is a failure.
    let restore = revoke.replace("\"revoke\"", "\"restore\"");
    let (code, _, _) = run_hook("cloudtrail", &[], &[("AWS_CLI", &fake_env)], &restore);
    assert_eq!(code, 1);
}

#[test]
fn okta_hook_passes_the_token_on_stdin_never_on_the_command_line() {
    let env = [
        ("OKTA_ORG_URL", "https://example.okta.com/"),
        ("OKTA_API_TOKEN", "00s3cr3t-token"),
    ];
    let revoke = r#"{"action":"revoke","grant_id":"okta:1","kind":"membership","group":"eng-all","member":"mallory","target":{"type":"okta_group_membership","group_id":"00g1a2b3c4D5e6F7g8h9","user_id":"00u9z8y7x6W5v4U3t2s1"}}"#;
    let (code, out, err) = run_hook("okta", &["--dry-run"], &env, revoke);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "curl --silent --show-error --fail --request DELETE --header @- --header 'Accept: application/json' https://example.okta.com/api/v1/groups/00g1a2b3c4D5e6F7g8h9/users/00u9z8y7x6W5v4U3t2s1\n"
    );
    assert!(!out.contains("00s3cr3t"));
    let (code, _, err) = run_hook("okta", &["--dry-run"], &[("OKTA_ORG_URL", "")], revoke);
    assert_eq!(code, 2);
    assert!(err.contains("OKTA_ORG_URL must be set"), "{err}");
}
