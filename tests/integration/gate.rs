//! Confirmation gates: `POST /api/v1/decide` on the running daemon, over its
//! real HTTP listener, judged against the model its log built.

use std::time::Duration;

use crate::helpers::*;

const TOKEN: &str = "gate-api-token";

/// The incident up to the moment before the binding: the agent's published
/// advice and alice reading it, with the group it names.
fn incident_lines() -> Vec<String> {
    let mut lines: Vec<String> = (0..5)
        .map(|i| format!(r#"{{"ts":"2026-03-18T08:00:00Z","type":"membership","actor":"hr","group":"eng-all","member":"e{i}","op":"add"}}"#))
        .collect();
    lines.push(r#"{"ts":"2026-03-18T09:02:11Z","type":"advice","advice_id":"adv-7731","agent":"agent:forum-helper","requested_by":"bob","channel":"forum/infra-q-4512","published":true,"recommends":[{"resource":"acl/internal-tools","role":"viewer","grantee":"eng-all"}]}"#.to_owned());
    lines.push(r#"{"ts":"2026-03-18T09:05:40Z","type":"advice_viewed","advice_id":"adv-7731","principal":"alice"}"#.to_owned());
    lines
}

const BINDING: &str = r#"{"actor":"alice","grantee":"eng-all","grantee_type":"group","resource":"acl/internal-tools","role":"viewer","reference":"per forum/infra-q-4512","ts":"2026-03-18T09:07:02Z"}"#;

fn decide(daemon: &Daemon, body: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    let (code, body) = http_post(daemon.addr(), "/api/v1/decide", &headers, body.as_bytes());
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    (code, json)
}

#[test]
fn decide_denies_the_incidents_binding_counts_and_records_it_then_allows_it_once_verified() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.jsonl");
    let token_file = dir.path().join("api.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let cfg = config(dir.path(), &log.display().to_string(), None).replace(
        "[server]\nlisten = \"127.0.0.1:0\"\n",
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"{}\"\n",
            token_file.display()
        ),
    );
    let lines = incident_lines();
    append(&log, &lines);
    let daemon = Daemon::start(dir.path(), &cfg);
    let n = lines.len() as f64;
    wait_until(Duration::from_secs(20), "the log to be read", || {
        daemon.metric(r#"reachguard_lines_total{source="app"}"#) >= n
    });
    // The series exist from the first scrape.
    assert_eq!(
        daemon.metric(r#"reachguard_gate_decisions_total{decision="deny",gate="api"}"#),
        0.0
    );

    // Same bearer token as the rest of /api.
    assert_eq!(decide(&daemon, BINDING, None).0, 401);
    assert_eq!(decide(&daemon, BINDING, Some("wrong")).0, 401);
    // Bad proposals are answered 400, and the daemon carries on.
    let (code, err) = decide(&daemon, "{\"actor\":", Some(TOKEN));
    assert_eq!(code, 400, "{err}");
    let (code, err) = decide(&daemon, r#"{"actor":"alice"}"#, Some(TOKEN));
    assert_eq!(code, 400);
    assert!(err["error"].as_str().unwrap().contains("grantee"), "{err}");

    let (code, out) = decide(&daemon, BINDING, Some(TOKEN));
    assert_eq!(code, 200, "{out}");
    assert_eq!(out["decision"], "deny", "{out:#}");
    assert!(
        out["reasons"][0].as_str().unwrap().contains("adv-7731"),
        "{out:#}"
    );
    assert_eq!(out["trace"]["advice_id"], "adv-7731");
    assert_eq!(out["expansion"]["affected_engineers"], 5);
    let finding_id = out["finding"]["finding_id"].as_str().unwrap().to_owned();

    let unrelated =
        r#"{"actor":"carol","grantee":"dave","resource":"wiki/eng","ts":"2026-03-18T09:07:02Z"}"#;
    let (code, out) = decide(&daemon, unrelated, Some(TOKEN));
    assert_eq!(code, 200);
    assert_eq!(out["decision"], "allow", "{out:#}");
    assert!(out["finding"].is_null());

    assert_eq!(
        daemon.metric(r#"reachguard_gate_decisions_total{decision="deny",gate="api"}"#),
        1.0
    );
    assert_eq!(
        daemon.metric(r#"reachguard_gate_decisions_total{decision="allow",gate="api"}"#),
        1.0
    );
    // The deny is a finding with its evidence, served by the API.
    let findings = http_get_auth(&daemon, "/api/findings");
    let f = findings
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["finding_id"] == finding_id.as_str())
        .unwrap_or_else(|| panic!("the gate's finding is served: {findings:#}"));
    assert_eq!(f["kind"], "unverified_agent_grant");
    assert_eq!(f["evidence"]["gate"]["decision"], "deny");
    assert_eq!(
        f["evidence"]["gate"]["proposed"]["resource"],
        "acl/internal-tools"
    );
    // Judged, not applied: no grant reached the model, so nothing to revoke.
    assert!(f.get("action").is_none(), "{f:#}");

    // A person verifies the advice; the same binding is allowed.
    append(
        &log,
        &[r#"{"ts":"2026-03-18T09:06:30Z","type":"advice_verified","advice_id":"adv-7731","verifier":"sec-lead"}"#.to_owned()],
    );
    wait_until(
        Duration::from_secs(20),
        "the verification to be read",
        || daemon.metric(r#"reachguard_lines_total{source="app"}"#) > n,
    );
    let (code, out) = decide(&daemon, BINDING, Some(TOKEN));
    assert_eq!(code, 200);
    assert_eq!(out["decision"], "allow", "{out:#}");
    assert_eq!(out["trace"]["verified"][1], "sec-lead");
}

fn http_get_auth(daemon: &Daemon, path: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let addr = daemon.addr();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.contains(" 200 "), "{head}");
    serde_json::from_str(body).unwrap()
}
