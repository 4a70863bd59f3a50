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

/// The Kubernetes admission webhook over real TLS, with a certificate made
/// for this test, and `AdmissionReview` documents as the API server sends them.
mod admission {
    use std::io::{Read, Write};
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::helpers::*;

    /// An RFC 3339 time `secs` seconds before now: the webhook judges at
    /// the wall clock, so the advice must be recent.
    fn ago(secs: i64) -> String {
        (chrono::Utc::now() - chrono::Duration::seconds(secs))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    struct Webhook {
        daemon: Daemon,
        addr: SocketAddr,
        cert_der: Vec<u8>,
        log: std::path::PathBuf,
        _dir: tempfile::TempDir,
    }

    /// A daemon with `[gate]` in `mode`, over a log of the incident up to the
    /// moment before the binding: advice published five minutes ago, read
    /// by alice two minutes ago.
    fn start(mode: &str) -> Webhook {
        let dir = tempfile::tempdir().unwrap();
        let ck = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        let log = dir.path().join("app.jsonl");
        let mut lines: Vec<String> = (0..5)
            .map(|i| format!(r#"{{"ts":"{}","type":"membership","actor":"hr","group":"eng-all","member":"e{i}","op":"add"}}"#, ago(3600)))
            .collect();
        lines.push(format!(r#"{{"ts":"{}","type":"advice","advice_id":"adv-7731","agent":"agent:forum-helper","requested_by":"bob","channel":"forum/infra-q-4512","published":true,"recommends":[{{"resource":"k8s/cluster/ClusterRole/internal-tools-viewer","role":"internal-tools-viewer","grantee":"eng-all"}}]}}"#, ago(300)));
        lines.push(format!(
            r#"{{"ts":"{}","type":"advice_viewed","advice_id":"adv-7731","principal":"alice"}}"#,
            ago(120)
        ));
        append(&log, &lines);
        let cfg = format!(
            "{}\n[gate]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\nmode = \"{mode}\"\n",
            config(dir.path(), &log.display().to_string(), None),
            cert.display(),
            key.display()
        );
        let daemon = Daemon::start(dir.path(), &cfg);
        let n = lines.len() as f64;
        wait_until(Duration::from_secs(20), "the log to be read", || {
            daemon.metric(r#"reachguard_lines_total{source="app"}"#) >= n
        });
        let addr_file = dir.path().join("state").join("gate.addr");
        wait_until(Duration::from_secs(20), "the webhook's address", || {
            addr_file.exists()
        });
        let addr = std::fs::read_to_string(&addr_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        Webhook {
            daemon,
            addr,
            cert_der: ck.cert.der().to_vec(),
            log,
            _dir: dir,
        }
    }

    /// POSTs `body` to `/k8s/validate` over TLS, trusting only the test's
    /// certificate; returns the status and the body.
    fn post(w: &Webhook, body: &str) -> (u16, String) {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(w.cert_der.clone()))
            .unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = std::net::TcpStream::connect(w.addr).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        write!(
            tls,
            "POST /k8s/validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut resp = Vec::new();
        // A peer closing without close_notify ends the read with an error
        // after the whole response: what was read is what counts.
        let _ = tls.read_to_end(&mut resp);
        let resp = String::from_utf8(resp).unwrap();
        let (head, body) = resp.split_once("\r\n\r\n").expect("an HTTP response");
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_owned()
        };
        (status, body)
    }

    fn dechunk(mut s: &str) -> String {
        let mut out = String::new();
        while let Some((size, rest)) = s.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            out.push_str(&rest[..n]);
            s = &rest[n + 2..];
        }
        out
    }

    /// An AdmissionReview of `user` creating a ClusterRoleBinding of
    /// `role` for the group `group`, as the API server sends it.
    fn review(uid: &str, user: &str, role: &str, group: &str) -> String {
        format!(
            r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"{uid}","kind":{{"group":"rbac.authorization.k8s.io","version":"v1","kind":"ClusterRoleBinding"}},"resource":{{"group":"rbac.authorization.k8s.io","version":"v1","resource":"clusterrolebindings"}},"requestKind":{{"group":"rbac.authorization.k8s.io","version":"v1","kind":"ClusterRoleBinding"}},"requestResource":{{"group":"rbac.authorization.k8s.io","version":"v1","resource":"clusterrolebindings"}},"name":"{group}-{role}","operation":"CREATE","userInfo":{{"username":"{user}","uid":"4f1a","groups":["system:authenticated"]}},"object":{{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding","metadata":{{"name":"{group}-{role}","creationTimestamp":null}},"roleRef":{{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"{role}"}},"subjects":[{{"kind":"Group","apiGroup":"rbac.authorization.k8s.io","name":"{group}"}}]}},"oldObject":null,"dryRun":false,"options":{{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1"}}}}}}"#
        )
    }

    fn response(body: &str) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["apiVersion"], "admission.k8s.io/v1", "{v:#}");
        assert_eq!(v["kind"], "AdmissionReview");
        v["response"].clone()
    }

    #[test]
    fn the_incidents_binding_is_refused_at_admission_naming_the_advice_until_a_person_verifies_it()
    {
        let w = start("enforce");
        let (code, body) = post(
            &w,
            &review("uid-incident", "alice", "internal-tools-viewer", "eng-all"),
        );
        assert_eq!(code, 200, "{body}");
        let r = response(&body);
        assert_eq!(r["uid"], "uid-incident");
        assert_eq!(r["allowed"], false, "{r:#}");
        let msg = r["status"]["message"].as_str().unwrap();
        assert!(msg.contains("adv-7731") && msg.contains("verify"), "{msg}");

        // Another binding, unrelated to the advice: allowed.
        let (code, body) = post(&w, &review("uid-other", "carol", "view", "sre"));
        assert_eq!(code, 200);
        let r = response(&body);
        assert_eq!(r["uid"], "uid-other");
        assert_eq!(r["allowed"], true, "{r:#}");

        // Malformed reviews: 400, and the webhook carries on.
        for bad in [
            "not json",
            "{}",
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":7}}"#,
        ] {
            assert_eq!(post(&w, bad).0, 400, "{bad}");
        }
        assert_eq!(
            w.daemon
                .metric(r#"reachguard_gate_decisions_total{decision="deny",gate="k8s"}"#),
            1.0
        );

        // A person verifies the advice: the same binding is admitted.
        append(
            &w.log,
            &[format!(
                r#"{{"ts":"{}","type":"advice_verified","advice_id":"adv-7731","verifier":"sec-lead"}}"#,
                ago(60)
            )],
        );
        wait_until(
            Duration::from_secs(20),
            "the verification to be read",
            || w.daemon.metric(r#"reachguard_lines_total{source="app"}"#) >= 8.0,
        );
        let (code, body) = post(
            &w,
            &review("uid-verified", "alice", "internal-tools-viewer", "eng-all"),
        );
        assert_eq!(code, 200);
        let r = response(&body);
        assert_eq!(r["uid"], "uid-verified");
        assert_eq!(r["allowed"], true, "{r:#}");
        drop(w);
    }

    #[test]
    fn warn_mode_admits_the_incidents_binding_with_a_warning_naming_the_advice() {
        let w = start("warn");
        let (code, body) = post(
            &w,
            &review("uid-warn", "alice", "internal-tools-viewer", "eng-all"),
        );
        assert_eq!(code, 200, "{body}");
        let r = response(&body);
        assert_eq!(r["uid"], "uid-warn");
        assert_eq!(r["allowed"], true, "{r:#}");
        let warnings = r["warnings"].as_array().expect("warnings");
        assert!(
            warnings[0].as_str().unwrap().contains("adv-7731"),
            "{warnings:?}"
        );
        // Counted as the deny it would have been.
        assert_eq!(
            w.daemon
                .metric(r#"reachguard_gate_decisions_total{decision="deny",gate="k8s"}"#),
            1.0
        );
    }
}

/// `reachguard gate claude-code`, the real binary with the tool call on its
/// stdin, as Claude Code runs a `PreToolUse` hook.
mod claude_code {
    use std::io::Write;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use crate::helpers::*;

    const TOKEN: &str = "hook-token";

    fn ago(secs: i64) -> String {
        (chrono::Utc::now() - chrono::Duration::seconds(secs))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    /// The hook input Claude Code writes for a Bash call.
    fn bash_call(command: &str) -> String {
        serde_json::json!({
            "session_id": "sess-42",
            "transcript_path": "/tmp/transcript.jsonl",
            "cwd": "/tmp",
            "permission_mode": "default",
            "hook_event_name": "PreToolUse",
            "tool_name": "Bash",
            "tool_input": {"command": command, "description": "run it"},
            "tool_use_id": "toolu_01",
        })
        .to_string()
    }

    /// Runs the hook with `input` on stdin; returns (exit code, stdout).
    fn hook(args: &[&str], env: &[(&str, &str)], input: &str) -> (i32, String) {
        let mut cmd = Command::new(BIN);
        cmd.args(["gate", "claude-code"]).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
        )
    }

    fn decision(stdout: &str) -> (String, String) {
        let v: serde_json::Value =
            serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout:?}"));
        let h = &v["hookSpecificOutput"];
        assert_eq!(h["hookEventName"], "PreToolUse", "{v}");
        (
            h["permissionDecision"].as_str().unwrap().to_owned(),
            h["permissionDecisionReason"].as_str().unwrap().to_owned(),
        )
    }

    const ADMIN: &str =
        "kubectl create clusterrolebinding eng-admin --clusterrole=cluster-admin --group=eng-all";
    const TOOLS: &str = "kubectl create clusterrolebinding eng-tools --clusterrole=internal-tools-viewer --group=eng-all";

    #[test]
    fn with_the_daemon_down_only_grant_commands_are_asked_about() {
        // Nothing listens on port 1.
        let down = ["--server", "http://127.0.0.1:1", "--principal", "alice"];
        let (code, out) = hook(&down, &[], &bash_call("ls -la"));
        assert_eq!((code, out.as_str()), (0, ""));
        let (code, out) = hook(&down, &[], &bash_call(ADMIN));
        assert_eq!(code, 0);
        let (d, why) = decision(&out);
        assert_eq!(d, "ask");
        assert!(why.contains("could not be asked"), "{why}");
        // Other tools, and input that is not a tool call, pass silently.
        let read = r#"{"hook_event_name":"PreToolUse","tool_name":"Read","tool_input":{"file_path":"/etc/hosts"}}"#;
        assert_eq!(hook(&down, &[], read), (0, String::new()));
        assert_eq!(hook(&down, &[], "\u{0}not json"), (0, String::new()));
    }

    #[test]
    fn grant_commands_are_asked_about_or_denied_as_the_daemon_judges_them() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.jsonl");
        let token_file = dir.path().join("api.token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        let mut lines: Vec<String> = (0..5)
            .map(|i| format!(r#"{{"ts":"{}","type":"membership","actor":"hr","group":"eng-all","member":"e{i}","op":"add"}}"#, ago(3600)))
            .collect();
        lines.push(format!(r#"{{"ts":"{}","type":"advice","advice_id":"adv-7731","agent":"agent:forum-helper","requested_by":"bob","channel":"forum/infra-q-4512","published":true,"recommends":[{{"resource":"k8s/cluster/ClusterRole/internal-tools-viewer","grantee":"eng-all"}}]}}"#, ago(300)));
        lines.push(format!(
            r#"{{"ts":"{}","type":"advice_viewed","advice_id":"adv-7731","principal":"alice"}}"#,
            ago(120)
        ));
        append(&log, &lines);
        let cfg = config(dir.path(), &log.display().to_string(), None).replace(
            "[server]\nlisten = \"127.0.0.1:0\"\n",
            &format!(
                "[server]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"{}\"\n",
                token_file.display()
            ),
        );
        let daemon = Daemon::start(dir.path(), &cfg);
        let n = lines.len() as f64;
        wait_until(Duration::from_secs(20), "the log to be read", || {
            daemon.metric(r#"reachguard_lines_total{source="app"}"#) >= n
        });
        let server = format!("http://{}", daemon.addr());
        let token = token_file.display().to_string();
        let up = ["--server", server.as_str(), "--token-file", token.as_str()];

        // cluster-admin for everyone in eng-all: critical whatever the baseline.
        let args: Vec<&str> = up.iter().copied().chain(["--principal", "carol"]).collect();
        let (code, out) = hook(&args, &[], &bash_call(ADMIN));
        assert_eq!(code, 0);
        let (d, why) = decision(&out);
        assert_eq!(d, "ask", "{why}");
        assert!(why.contains("cluster-admin"), "{why}");

        // The binding the advice alice read recommends: denied by policy.
        // The principal comes from $USER when git has no e-mail.
        let home = dir.path().display().to_string();
        let env = [
            ("USER", "alice"),
            ("HOME", home.as_str()),
            ("GIT_CONFIG_GLOBAL", "/dev/null"),
            ("GIT_CONFIG_NOSYSTEM", "1"),
        ];
        let (code, out) = hook(&up, &env, &bash_call(&format!("cd /srv && {TOOLS}")));
        assert_eq!(code, 0);
        let (d, why) = decision(&out);
        assert_eq!(d, "deny", "{why}");
        assert!(why.contains("adv-7731"), "{why}");

        // Unrelated commands never reach the daemon, and cost little.
        let started = Instant::now();
        let (code, out) = hook(&up, &env, &bash_call("ls -la"));
        assert_eq!((code, out.as_str()), (0, ""));
        assert!(started.elapsed() < Duration::from_secs(5));

        // The wrong token is a daemon that cannot be asked: ask.
        std::fs::write(&token_file, "wrong\n").unwrap();
        let (_, out) = hook(&up, &env, &bash_call(TOOLS));
        assert_eq!(decision(&out).0, "ask");

        assert_eq!(
            daemon.metric(r#"reachguard_gate_decisions_total{decision="ask",gate="claude-code"}"#),
            1.0
        );
        assert_eq!(
            daemon.metric(r#"reachguard_gate_decisions_total{decision="deny",gate="claude-code"}"#),
            1.0
        );
    }
}
