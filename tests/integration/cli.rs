//! The command line: check-config, replay, demo.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::*;

#[test]
fn check_config_accepts_the_example_and_names_line_and_key_of_a_mistake() {
    let ok = Command::new(BIN)
        .args(["check-config", "--config", "deploy/reachguard.example.toml"])
        .env("REACHGUARD_HOOK_SECRET", "x")
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("config ok: 2 source(s), 3 hook(s)"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[state]\ndir = \"/tmp/x\"\n\n[response]\nmode = \"enforce\"\nmax_revocations_per_hour = \"lots\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 6"), "{err}");
    assert!(err.contains("max_revocations_per_hour"), "{err}");

    // A webhook whose secret is not in the environment is a problem before it bites.
    let no_secret = Command::new(BIN)
        .args(["check-config", "--config", "deploy/reachguard.example.toml"])
        .env_remove("REACHGUARD_HOOK_SECRET")
        .output()
        .unwrap();
    assert!(!no_secret.status.success());
    assert!(String::from_utf8_lossy(&no_secret.stderr).contains("REACHGUARD_HOOK_SECRET"));

    let defaults = Command::new(BIN).arg("check-config").output().unwrap();
    assert!(defaults.status.success());
}

#[test]
fn replay_dry_run_reports_the_incident_revocation_and_counts_malformed_lines() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("incident.jsonl");
    let mut text = std::fs::read_to_string("examples/incident.jsonl").unwrap();
    text.push_str("this is not json\n{\"ts\":\"2026-03-18T10:00:00Z\",\"type\":\"access\"}\n");
    std::fs::write(&input, text).unwrap();
    let out = Command::new(BIN)
        .args(["replay", "--dry-run"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let findings: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every stdout line is a JSON finding"))
        .collect();
    let revoke: Vec<&serde_json::Value> = findings
        .iter()
        .filter(|f| f.get("action").is_some())
        .collect();
    assert_eq!(revoke.len(), 1, "{findings:#?}");
    assert_eq!(revoke[0]["action"]["grant_id"], "g-90211");
    assert_eq!(revoke[0]["action"]["status"], "dry_run");
    assert_eq!(revoke[0]["action"]["kind"], "revoke");
    assert_eq!(revoke[0]["kind"], "unverified_agent_grant");
    for f in &findings {
        for key in [
            "finding_id",
            "kind",
            "severity",
            "ts",
            "principals",
            "score",
            "summary",
            "evidence",
        ] {
            assert!(f.get(key).is_some(), "finding without {key}: {f}");
        }
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    let s = &summary["summary"];
    let lines = std::fs::read_to_string(&input).unwrap().lines().count() as u64;
    assert_eq!(s["lines"], lines);
    assert_eq!(s["decode_errors"], 2);
    assert_eq!(s["findings"], findings.len() as u64);
    assert_eq!(s["by_type"]["grant"], 2);
    assert!(stderr.contains("cannot decode"), "{stderr}");
    // Each is logged with its file and line number (the last two lines).
    for n in [lines - 1, lines] {
        let at = format!("{}:{n}", input.display());
        assert!(stderr.contains(&at), "no {at} in {stderr}");
    }
}

#[test]
fn replay_reads_stdin_and_merges_files_in_event_time() {
    let dir = tempfile::tempdir().unwrap();
    // The view is in one file and the grant in another, earlier on the command line.
    let a = dir.path().join("grants.jsonl");
    let b = dir.path().join("forum.jsonl");
    std::fs::write(&a, "{\"ts\":\"2026-03-18T09:07:02Z\",\"type\":\"grant\",\"grant_id\":\"g-1\",\"actor\":\"alice\",\"grantee\":\"bob\",\"resource\":\"acl/x\"}\n").unwrap();
    std::fs::write(&b, "{\"ts\":\"2026-03-18T09:00:00Z\",\"type\":\"advice\",\"advice_id\":\"adv-1\",\"agent\":\"agent:a\",\"published\":true,\"recommends\":[{\"resource\":\"acl/x\",\"grantee\":\"bob\"}]}\n{\"ts\":\"2026-03-18T09:01:00Z\",\"type\":\"advice_viewed\",\"advice_id\":\"adv-1\",\"principal\":\"alice\"}\n").unwrap();
    let out = Command::new(BIN)
        .args(["replay", "--dry-run"])
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\"grant_id\":\"g-1\""),
        "the grant is judged after the advice it follows:\n{stdout}"
    );

    let mut child = Command::new(BIN)
        .args(["replay", "--dry-run", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &std::fs::read(&b).unwrap()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert_eq!(summary["summary"]["events"], 2);
}

#[test]
fn demo_revokes_the_incident_grant_and_refuses_it_at_admission_within_a_minute() {
    let started = Instant::now();
    let out = Command::new(BIN).arg("demo").output().unwrap();
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < Duration::from_secs(60), "demo took {took:?}");
    assert!(stdout.contains("revoke g-90211 -> executed"), "{stdout}");
    assert!(
        stdout.contains(
            "POST /revoke for grant g-90211 (group eng-all on acl/internal-tools), signature valid"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("ms after the grant line was written"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("revoke g-88120"),
        "verified advice is left alone:\n{stdout}"
    );
    // Act two: the allow-rule call's binding revoked, the approved one left alone.
    assert!(
        stdout.contains(
            "Revoked: grant k8s:a2-rule:0 (ci-runner on k8s/cluster/ClusterRole/cluster-admin), signature valid"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("Left alone: zoe's agent ran the same command"),
        "{stdout}"
    );
    assert!(!stdout.contains("revoke k8s:a2-human"), "{stdout}");
    // Act three: the binding refused at admission naming the advice, then
    // admitted once a person verified it.
    assert!(
        stdout.contains(
            "kubectl prints:\n    reachguard refused this binding: it traces to advice adv-7744 from agent:forum-helper that no person verified"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("sec-lead verifies adv-7744; the same binding is admitted"),
        "{stdout}"
    );
    assert!(!stdout.contains("a bug"), "{stdout}");
}
