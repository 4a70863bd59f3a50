//! The daemon as a target: its HTTP surface, its secrets, forged log lines.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use crate::helpers::*;

/// One HTTP/1.0 request with an optional `Authorization` value; returns
/// (status, head, body).
fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    authorization: Option<&str>,
) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    (status, head.to_owned(), body.to_owned())
}

/// One request with the token as a bearer token; returns (status, body).
fn request(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let (status, _, body) = exchange(addr, method, path, auth.as_deref());
    (status, body)
}

/// A GET with the token as the password of Basic authentication; the status.
fn basic(addr: SocketAddr, path: &str, user: &str, password: &str) -> u16 {
    use base64::Engine as _;
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    exchange(addr, "GET", path, Some(&format!("Basic {pair}"))).0
}

/// A GET without a token; returns the status and the response head.
fn request_head(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, head, _) = exchange(addr, "GET", path, None);
    (status, head)
}

const API_TOKEN: &str = "api-token-that-must-not-leak";

#[test]
fn the_api_needs_the_bearer_token_every_route_is_read_only_and_no_secret_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.jsonl");
    let token_file = dir.path().join("api.token");
    std::fs::write(&token_file, format!("{API_TOKEN}\n")).unwrap();
    // A hook that always fails, so errors about it are logged at length.
    let mut cfg = config(
        dir.path(),
        &log.display().to_string(),
        Some("http://127.0.0.1:9/revoke"),
    );
    cfg = cfg.replace(
        "[server]\nlisten = \"127.0.0.1:0\"\n",
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"{}\"\n",
            token_file.display()
        ),
    );
    cfg = cfg.replace("timeout = \"2s\"\n", "timeout = \"2s\"\nmax_attempts = 2\n");
    append(
        &log,
        &[r#"{"ts":"2026-03-18T09:50:00Z","type":"grant","grant_id":"g-1","actor":"agent:ops-bot","grantee":"mallory","resource":"prod/db"}"#.to_owned()],
    );
    let mut daemon = Daemon::start(dir.path(), &cfg);
    let addr = daemon.addr();
    assert!(addr.ip().is_loopback());
    wait_until(Duration::from_secs(20), "the failed revocation", || {
        daemon.metric(r#"reachguard_revocations_total{status="failed"}"#) >= 1.0
    });

    assert_eq!(request(addr, "GET", "/api/findings", None).0, 401);
    assert_eq!(
        request(addr, "GET", "/api/findings", Some("wrong-token")).0,
        401
    );
    let (status, body) = request(addr, "GET", "/api/findings", Some(API_TOKEN));
    assert_eq!(status, 200);
    assert!(body.contains("\"g-1\""), "{body}");
    // The incident page and everything it loads: the same rules.
    let id = body
        .split("\"finding_id\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let finding = format!("/finding?id={id}");
    let page_routes = [
        "/",
        "/?kind=unverified_agent_grant",
        finding.as_str(),
        "/person?name=mallory",
        "/assets/live.js",
        "/assets/style.css",
    ];
    for path in page_routes {
        assert_eq!(request(addr, "GET", path, None).0, 401, "{path}");
        assert_eq!(
            request(addr, "GET", path, Some("wrong-token")).0,
            401,
            "{path}"
        );
        assert_eq!(request(addr, "GET", path, Some(API_TOKEN)).0, 200, "{path}");
        // A browser sends it as the password of Basic authentication.
        assert_eq!(basic(addr, path, "anyone", API_TOKEN), 200, "{path}");
        assert_eq!(basic(addr, path, "anyone", "wrong-token"), 401, "{path}");
    }
    let (status, challenge) = request_head(addr, "/");
    assert_eq!(status, 401);
    assert!(
        challenge
            .to_ascii_lowercase()
            .contains("www-authenticate: basic realm="),
        "a browser is asked for the token: {challenge}"
    );
    // The live updates' stream answers 401 at once without the token.
    assert_eq!(request(addr, "GET", "/events", None).0, 401);
    let (_, page) = request(addr, "GET", &finding, Some(API_TOKEN));
    assert!(page.contains("g-1"), "{page}");
    // Probes and scrapes stay open unless protect_metrics is set.
    assert_eq!(request(addr, "GET", "/healthz", None).0, 200);
    assert_eq!(request(addr, "GET", "/readyz", None).0, 200);
    let (status, metrics) = request(addr, "GET", "/metrics", None);
    assert_eq!(status, 200);
    for path in [
        "/api/findings",
        "/metrics",
        "/healthz",
        "/readyz",
        "/",
        finding.as_str(),
    ] {
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            assert_eq!(
                request(addr, method, path, Some(API_TOKEN)).0,
                405,
                "{method} {path}"
            );
        }
    }

    assert!(daemon.sigterm().success());
    let log_text = daemon.log();
    assert!(
        log_text.contains("revocation hook failed"),
        "the failure is logged"
    );
    for secret in [SECRET, API_TOKEN] {
        assert!(
            !log_text.contains(secret),
            "a secret is in the daemon's log"
        );
        assert!(
            !body.contains(secret) && !metrics.contains(secret),
            "a secret is served over HTTP"
        );
        let state = std::fs::read_dir(dir.path().join("state")).unwrap();
        for f in state {
            let text = std::fs::read(f.unwrap().path()).unwrap();
            assert!(
                !String::from_utf8_lossy(&text).contains(secret),
                "a secret is in the state dir"
            );
        }
    }
}

#[test]
fn an_unreadable_token_stops_the_daemon_at_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.jsonl");
    append(&log, &[]);
    let cfg = config(dir.path(), &log.display().to_string(), None).replace(
        "[server]\nlisten = \"127.0.0.1:0\"\n",
        "[server]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"REACHGUARD_TEST_UNSET_TOKEN\"\n",
    );
    std::fs::write(dir.path().join("reachguard.toml"), cfg).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["run", "--config"])
        .arg(dir.path().join("reachguard.toml"))
        .env_remove("REACHGUARD_TEST_UNSET_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("REACHGUARD_TEST_UNSET_TOKEN"));
}

#[test]
fn a_burst_of_forged_agent_grants_hits_the_revocation_budget_not_production() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.jsonl");
    let hook = Webhook::start();
    let cfg = config(dir.path(), &log.display().to_string(), Some(&hook.url()))
        + "\n[response]\nmax_revocations_per_hour = 5\n";
    // Someone who can write log lines claims an agent granted 40 things.
    let forged: Vec<String> = (0..40)
        .map(|i| {
            format!(
                r#"{{"ts":"2026-03-18T10:{:02}:00Z","type":"grant","grant_id":"g-forged-{i}","actor":"agent:x","grantee":"victim-{i}","resource":"prod/db"}}"#,
                i % 60
            )
        })
        .collect();
    append(&log, &forged);
    let mut daemon = Daemon::start(dir.path(), &cfg);
    wait_until(
        Duration::from_secs(30),
        "every forged grant to be judged",
        || {
            daemon.metric(r#"reachguard_revocations_total{status="suppressed"}"#)
                + daemon.metric(r#"reachguard_revocations_total{status="executed"}"#)
                >= 40.0
        },
    );
    assert!(daemon.sigterm().success());
    assert_eq!(
        hook.calls().len(),
        5,
        "only the hourly budget reaches the hooks"
    );
    let suppressed = daemon
        .findings()
        .iter()
        .filter(|f| f["action"]["status"] == "suppressed")
        .filter(|f| f["action"]["reason"].as_str().unwrap().contains("budget"))
        .count();
    assert_eq!(suppressed, 35);
}

#[test]
fn a_flood_of_unique_principals_and_resources_is_held_to_the_caps_and_shows_in_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.jsonl");
    let cfg = config(dir.path(), &log.display().to_string(), None)
        + "\n[limits]\nmax_principals = 200\nmax_resources_per_principal = 20\n";
    let flood: Vec<String> = (0..5000)
        .map(|i| access_line(&format!("flood-{i}"), &format!("junk/{i}"), i))
        .chain((0..500).map(|i| access_line("hoarder", &format!("junk/h{i}"), 6000 + i)))
        .collect();
    append(&log, &flood);
    let mut daemon = Daemon::start(dir.path(), &cfg);
    wait_until(Duration::from_secs(60), "the flood to be read", || {
        daemon.metric(r#"reachguard_lines_total{source="app"}"#) >= 5500.0
    });
    // Model-derived metrics follow the line counters once the daemon is idle.
    wait_until(
        Duration::from_secs(10),
        "the evictions to be counted",
        || {
            daemon.metric(r#"reachguard_evictions_total{what="principal"}"#) >= 4790.0
                && daemon.metric(r#"reachguard_evictions_total{what="resource"}"#) >= 480.0
        },
    );
    assert!(daemon.metric("reachguard_principals_tracked") <= 210.0);
    assert!(daemon.sigterm().success());
    // The checkpoint holds the capped model, not the flood.
    let size = std::fs::metadata(dir.path().join("state/checkpoint.json"))
        .unwrap()
        .len();
    assert!(size < 200_000, "checkpoint is {size} bytes");
}
