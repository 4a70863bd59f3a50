//! Detection end to end on a generated organisation, through the real binary:
//! `train` on its history, `run` on its evaluation period with a real webhook,
//! then score the findings file against the injected cases.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use reachguard::synth::{CaseKind, OrgSpec, eval, generate, independent};

use crate::helpers::*;

fn write_events(path: &std::path::Path, events: &[reachguard::event::Event]) {
    let mut text = String::new();
    for e in events {
        text.push_str(&e.to_native_json());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_trained_daemon_finds_every_injected_expansion_without_false_alarms_and_revokes_only_unverified_advice_grants()
 {
    let org = generate(OrgSpec {
        engineers: 64,
        history_days: 10,
        eval_days: 6,
        seed: 7,
        inject: true,
    });
    let dir = tempfile::tempdir().unwrap();
    let split = org.events.partition_point(|e| e.ts < org.eval_start);
    let history = dir.path().join("history.jsonl");
    let live = dir.path().join("live.jsonl");
    write_events(&history, &org.events[..split]);
    write_events(&live, &org.events[split..]);

    let hook = Webhook::start();
    let mut cfg = config(dir.path(), &live.display().to_string(), Some(&hook.url()));
    let catalogue: String = org
        .sensitivity
        .iter()
        .map(|(p, t)| format!("\"{}\" = \"{}\"\n", p.as_str(), t.as_str()))
        .collect();
    cfg = cfg.replace(
        "[sensitivity]\n\"acl/internal-*\" = \"critical\"\n",
        &format!("[sensitivity]\n{catalogue}"),
    );
    cfg.push_str("\n[detection]\nprovisioners = [\"hr-system\"]\n\n[response]\nmax_revocations_per_hour = 1000\n");
    let cfg_path = dir.path().join("reachguard.toml");
    std::fs::write(&cfg_path, &cfg).unwrap();

    let out = Command::new(BIN)
        .args(["train", "--json", "--config"])
        .arg(&cfg_path)
        .arg(&history)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let learned: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(learned["input"]["events"], split as u64);
    assert_eq!(
        learned["engineers"], 64,
        "every engineer of the history has a baseline"
    );
    assert!(learned["peer_groups"].as_array().unwrap().len() >= 2);

    let mut daemon = Daemon::start(dir.path(), &cfg);
    let lines = (org.events.len() - split) as f64;
    wait_until(
        Duration::from_secs(120),
        "the evaluation period to be processed",
        || daemon.metric(r#"reachguard_lines_total{source="app"}"#) >= lines,
    );
    let advice_grants: BTreeSet<String> = org
        .cases
        .iter()
        .filter(|c| c.kind == CaseKind::UnverifiedAdviceGrant)
        .filter_map(|c| c.grant_id.clone())
        .collect();
    wait_until(Duration::from_secs(30), "the revocations", || {
        hook.calls().len() >= advice_grants.len()
    });
    assert!(daemon.sigterm().success());

    let revoked: BTreeSet<String> = hook
        .calls()
        .iter()
        .map(|c| c.json()["grant_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        revoked, advice_grants,
        "exactly the grants traced to unverified advice are revoked"
    );
    assert_eq!(hook.calls().len(), advice_grants.len());

    let findings: Vec<reachguard::finding::Finding> = daemon
        .findings()
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    let report = eval::score(&org, &findings, Duration::ZERO);
    assert_eq!(report.recall(), 1.0, "{report}");
    assert!(report.false_alarms.is_empty(), "{report}");
    assert_eq!(
        (
            report.new_hire_alarms,
            report.on_call_alarms,
            report.transfer_alarms
        ),
        (0, 0, 0)
    );
    let sudden = &report.kinds[&CaseKind::SuddenExpansion];
    assert!(
        sudden.max_ttd().unwrap() <= Duration::from_secs(600),
        "{report}"
    );
    for k in [
        CaseKind::GroupGrantSensitive,
        CaseKind::UnverifiedAdviceGrant,
    ] {
        assert!(
            report.kinds[&k].ttd.iter().all(|t| t.is_zero()),
            "flagged on the grant event itself: {report}"
        );
    }

    // What reachguard believes about one of the engineers who expanded.
    let case = org
        .cases
        .iter()
        .find(|c| c.kind == CaseKind::SuddenExpansion)
        .unwrap();
    let out = Command::new(BIN)
        .args(["explain", "--json", "--config"])
        .arg(&cfg_path)
        .arg(&case.principal)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["principal"], case.principal.as_str());
    assert!(e["events"].as_u64().unwrap() > 50);
    assert!(e["peer_group"].is_u64());
    assert!(e["held"].as_array().unwrap().iter().any(|r| {
        r["detail"]
            .as_str()
            .unwrap()
            .starts_with("through group grp/")
    }));
    assert!(
        e["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "reach_expansion")
    );
    let text = Command::new(BIN)
        .args(["explain", "--config"])
        .arg(&cfg_path)
        .arg(&case.principal)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("window: alerts at novelty"));
    let unknown = Command::new(BIN)
        .args(["explain", "--config"])
        .arg(&cfg_path)
        .arg("nobody-at-all")
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown"));
}

/// The targets of the model card, on organisations from the generator the
/// defaults were not tuned on (its own naming, HR actor, layouts, precision).
#[test]
fn detection_meets_its_targets_on_independently_generated_organisations() {
    for seed in [1, 2] {
        let g = independent::generate(independent::Spec {
            engineers: 150,
            history_days: 10,
            eval_days: 5,
            seed,
            keep_lines: false,
        });
        assert_eq!(g.decode_errors, 0);
        let r = eval::evaluate(&g.org);
        let c = &g.conventions;
        let context = format!("seed {seed} ({c:?}): {r}");
        for k in [
            CaseKind::UnverifiedAdviceGrant,
            CaseKind::SuddenExpansion,
            CaseKind::SlowExploration,
        ] {
            assert!(r.kinds[&k].cases > 0, "{k:?} injected: {context}");
        }
        assert_eq!(r.recall(), 1.0, "{context}");
        assert_eq!(r.revocation_recall(), 1.0, "{context}");
        assert!(r.wrong_revocations.is_empty(), "{context}");
        for (k, la) in &r.left_alone {
            assert!(la.cases > 0 && la.disturbed == 0, "{k:?}: {context}");
        }
        assert!(r.false_alarm_rate() <= 0.1, "{context}");
        assert_eq!(
            (r.transfer_alarms, r.new_hire_alarms, r.on_call_alarms),
            (0, 0, 0),
            "{context}"
        );
        assert!(
            r.max_ttd(CaseKind::SuddenExpansion).unwrap() <= Duration::from_secs(180),
            "{context}"
        );
        assert!(
            r.max_ttd(CaseKind::SlowExploration).unwrap() <= Duration::from_secs(3600),
            "{context}"
        );
    }
}

#[test]
fn train_refuses_while_a_daemon_owns_the_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.jsonl");
    append(&log, &[access_line("alice", "wiki/home", 1)]);
    let cfg = config(dir.path(), &log.display().to_string(), None);
    let mut daemon = Daemon::start(dir.path(), &cfg);
    let out = Command::new(BIN)
        .args(["train", "--config"])
        .arg(dir.path().join("reachguard.toml"))
        .arg(&log)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by another reachguard process"));
    assert!(daemon.sigterm().success());
    let out = Command::new(BIN)
        .args(["train", "--config"])
        .arg(dir.path().join("reachguard.toml"))
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("baselines for 1 engineers"));
}

/// The Stratus Red Team detonation logs hold seven well-known dangerous grants.
/// With no config file and no history at all, each must raise a finding of at
/// least medium that says why: an administrator policy, a foreign account, the
/// public. Nothing else in the file may page.
#[test]
fn stratus_red_team_grants_are_flagged_on_a_fresh_install_with_the_reason() {
    let corpus = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/corpus/cloudtrail/stratus_red_team_detonation_logs.jsonl"
    );
    let out = Command::new(BIN)
        .args(["replay", "--format", "cloudtrail", corpus])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let findings: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let at_least_medium = |f: &&serde_json::Value| f["severity"] != "low";
    // (resource, grantee, why) of each grant the logs hold.
    let expected = [
        (
            "arn:aws:iam::aws:policy/AdministratorAccess",
            "malicious-iam-user",
            "admin policy",
        ),
        (
            "arn:aws:iam::aws:policy/AdministratorAccess",
            "role/stratus-red-team-malicious-iam-role",
            "admin policy",
        ),
        (
            "aws/iam/role/stratus-red-team-backdoor-r-role",
            "account/193672423079",
            "foreign account",
        ),
        (
            "aws/ec2/image/ami-de1fbCab6ccB03e6D",
            "account/846424999548",
            "foreign account",
        ),
        (
            "aws/ec2/snapshot/snap-041993b54a9b3af6f",
            "account/098797384747",
            "foreign account",
        ),
        (
            "aws/rds/snapshot/exfiltration",
            "account/503161813013",
            "foreign account",
        ),
        (
            "aws/lambda/function/stratus-red-team-backdoor-f-func",
            "*",
            "public",
        ),
    ];
    for (resource, grantee, why) in expected {
        let f = findings
            .iter()
            .filter(at_least_medium)
            .find(|f| f["resource"] == resource && f["evidence"]["grantee"] == grantee)
            .unwrap_or_else(|| panic!("no finding for {grantee} on {resource}: {findings:#?}"));
        assert_eq!(f["kind"], "grant_expansion");
        let whys: Vec<&str> = f["evidence"]["why"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|w| w.as_str())
            .collect();
        assert_eq!(whys, [why], "{f:#}");
        assert!(f["summary"].as_str().unwrap().contains(why), "{f:#}");
    }
    let paging: Vec<_> = findings.iter().filter(at_least_medium).collect();
    assert_eq!(
        paging.len(),
        expected.len(),
        "the EC2 service trusted with a role, access keys and login profiles are not in the catalogue: {paging:#?}"
    );
}
