//! Agent telemetry as the source of advice: OTLP records of coding agents and
//! GenAI agents, traced to the grants their commands made in Kubernetes and
//! CloudTrail, with the people behind different names joined by aliases.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::*;

fn fixtures() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/otlp"))
}

#[test]
fn replay_of_agent_telemetry_revokes_unapproved_agent_grants_and_leaves_approved_ones() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixtures();
    let cfg = dir.path().join("reachguard.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[state]
dir = "{state}"

[[sources]]
path = "{f}/agents.jsonl"
format = "otlp"

[[sources]]
path = "{f}/kube-audit.log"
format = "k8s-audit"

[[sources]]
path = "{f}/cloudtrail.json"
format = "cloudtrail"

[identities]
match_local_part = true

[identities.aliases]
"alice@example.com" = ["alice"]
"carol@example.com" = ["role/eng/carol"]
"bob@example.com" = []

[response]
mode = "dry-run"
"#,
            state = dir.path().join("state").display(),
            f = f.display()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["replay", "--dry-run", "--config"])
        .arg(&cfg)
        .arg(f.join("agents.jsonl"))
        .arg(f.join("kube-audit.log"))
        .arg(f.join("cloudtrail.json"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    let s = &summary["summary"];
    assert_eq!(s["decode_errors"], 0, "{s}");
    // Three calls ran a grant command (the rejected one did not); one was
    // approved by a person.
    assert_eq!(s["by_type"]["advice"], 3, "{s}");
    assert_eq!(s["by_type"]["advice_viewed"], 3, "{s}");
    assert_eq!(s["by_type"]["advice_verified"], 1, "{s}");
    assert_eq!(s["by_type"]["grant"], 6, "{s}");

    let findings: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let revoked: BTreeMap<&str, &serde_json::Value> = findings
        .iter()
        .filter(|f| f["action"]["kind"] == "revoke")
        .map(|f| {
            assert_eq!(f["action"]["status"], "dry_run", "{f}");
            (f["grant_id"].as_str().unwrap(), f)
        })
        .collect();
    assert_eq!(
        revoked.keys().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from(["ct:ev-genai", "k8s:aud-rule:0"]),
        "{findings:#?}"
    );

    // The allow-rule call: alice (as Kubernetes names her) made the binding her
    // agent's session ran; the chain names the session, the command and the
    // decision's source.
    let rule = revoked["k8s:aud-rule:0"];
    assert_eq!(rule["kind"], "unverified_agent_grant");
    assert_eq!(rule["advice_id"], "otel:claude-code:sess-rule:toolu_rule");
    let chain = rule["evidence"].to_string();
    for needle in [
        "kubectl create clusterrolebinding ci-admin",
        "source config",
        "sess-rule",
        "alice@example.com",
    ] {
        assert!(chain.contains(needle), "{needle} not in {chain}");
    }
    // The GenAI agent with no approval step, for carol (CloudTrail's role/eng/carol).
    let genai = revoked["ct:ev-genai"];
    assert_eq!(genai["advice_id"], "otel:ops-assistant:conv-77:call_Vq2");
    assert!(
        genai["evidence"]
            .to_string()
            .contains("no approval recorded")
    );

    // Bob approved the same command in the dialog: traced, verified, left alone.
    let agent_grants: BTreeSet<&str> = findings
        .iter()
        .filter(|f| f["kind"] == "unverified_agent_grant")
        .map(|f| f["grant_id"].as_str().unwrap())
        .collect();
    for left_alone in [
        "k8s:aud-human:0",
        "k8s:aud-manual:0",
        "k8s:aud-ordinary:0",
        "ct:ev-ordinary",
    ] {
        assert!(!revoked.contains_key(left_alone), "{left_alone} revoked");
        assert!(
            !agent_grants.contains(left_alone),
            "{left_alone} blamed on an agent"
        );
    }
}

#[test]
fn check_config_rejects_an_alias_given_to_two_people() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[identities.aliases]\n\"a@example.com\" = [\"al\"]\n\"b@example.com\" = [\"al\"]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"al\" is given to both"), "{err}");
}

/// Lines of the fixture: the allow-rule call's decision and result (as two
/// logs requests), and the binding it made.
fn rule_call_requests() -> Vec<String> {
    let agents = std::fs::read_to_string(fixtures().join("agents.jsonl")).unwrap();
    agents
        .lines()
        .filter(|l| l.contains("toolu_rule"))
        .map(str::to_owned)
        .collect()
}

fn rule_binding() -> String {
    let audit = std::fs::read_to_string(fixtures().join("kube-audit.log")).unwrap();
    audit
        .lines()
        .find(|l| l.contains("aud-rule"))
        .unwrap()
        .to_owned()
}

fn otlp_daemon(dir: &std::path::Path, hook: &Webhook, extra: &str) -> (Daemon, std::path::PathBuf) {
    otlp_daemon_with(dir, hook, extra, "")
}

fn otlp_daemon_with(
    dir: &std::path::Path,
    hook: &Webhook,
    extra: &str,
    server_extra: &str,
) -> (Daemon, std::path::PathBuf) {
    let audit = dir.join("kube-audit.log");
    std::fs::write(&audit, "").unwrap();
    let daemon = Daemon::start(
        dir,
        &format!(
            r#"[state]
dir = "{state}"
checkpoint_interval = "100ms"

[[sources]]
path = "{audit}"
name = "k8s"
format = "k8s-audit"

[server]
listen = "127.0.0.1:0"
{server_extra}
[otlp]
listen = "127.0.0.1:0"
{extra}
[identities.aliases]
"alice@example.com" = ["alice"]
"carol@example.com" = ["carol"]
"bob@example.com" = ["bob"]

[[response.hooks]]
type = "webhook"
url = "{url}"
secret_env = "REACHGUARD_HOOK_SECRET"
timeout = "2s"
"#,
            state = dir.join("state").display(),
            audit = audit.display(),
            url = hook.url(),
        ),
    );
    (daemon, audit)
}

fn otlp_addr(d: &Daemon, kind: &str) -> std::net::SocketAddr {
    let f = d.state.join(format!("otlp-{kind}.addr"));
    wait_until(Duration::from_secs(10), "the OTLP receiver to bind", || {
        f.exists()
    });
    std::fs::read_to_string(f).unwrap().trim().parse().unwrap()
}

#[test]
fn a_daemon_receiving_agent_telemetry_revokes_the_binding_within_a_second() {
    use std::io::Write;
    let mut latencies = Vec::new();
    for _run in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let hook = Webhook::start();
        let (daemon, audit) = otlp_daemon(dir.path(), &hook, "");
        let otlp = otlp_addr(&daemon, "http");
        for req in rule_call_requests() {
            let (code, body) = http_post(
                otlp,
                "/v1/logs",
                &[("Content-Type", "application/json")],
                req.as_bytes(),
            );
            assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
            assert_eq!(body, b"{}");
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&audit)
            .unwrap();
        let written = Instant::now();
        writeln!(f, "{}", rule_binding()).unwrap();
        drop(f);
        wait_until(Duration::from_secs(5), "the revocation webhook", || {
            !hook.calls().is_empty()
        });
        let calls = hook.calls();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert!(calls[0].signature_valid(SECRET));
        let body = calls[0].json();
        assert_eq!(body["grant_id"], "k8s:aud-rule:0");
        assert_eq!(body["resource"], "k8s/cluster/ClusterRole/cluster-admin");
        assert_eq!(body["grantee"], "ci-runner");
        latencies.push(calls[0].at.duration_since(written));
        assert_eq!(
            daemon.metric(r#"reachguard_events_total{type="advice_verified"}"#),
            0.0
        );
        assert_eq!(
            daemon.metric(r#"reachguard_lines_total{source="otlp"}"#),
            2.0
        );
    }
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "line written -> signed webhook revocation over {} runs: p50 {:.1} ms, p99 (the max of 20) {:.1} ms",
        latencies.len(),
        ms(latencies[latencies.len() / 2]),
        ms(*latencies.last().unwrap())
    );
    assert!(
        *latencies.last().unwrap() < Duration::from_secs(1),
        "{latencies:?}"
    );
}

/// Lines of the fixture about one call (`toolu_rule`, `toolu_human`).
fn call_requests(call: &str) -> Vec<String> {
    let agents = std::fs::read_to_string(fixtures().join("agents.jsonl")).unwrap();
    agents
        .lines()
        .filter(|l| l.contains(call))
        .map(str::to_owned)
        .collect()
}

fn audit_line(id: &str) -> String {
    let audit = std::fs::read_to_string(fixtures().join("kube-audit.log")).unwrap();
    audit.lines().find(|l| l.contains(id)).unwrap().to_owned()
}

/// Appends `line` to the tailed audit log and waits until the daemon holds it
/// as a grant no advice explains yet.
fn grant_logged_first(daemon: &Daemon, audit: &std::path::Path, line: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(audit)
        .unwrap();
    writeln!(f, "{line}").unwrap();
    drop(f);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let grants = daemon.metric(r#"reachguard_events_total{type="grant"}"#);
        let untraced = daemon.metric("reachguard_untraced_grants");
        if (grants, untraced) == (1.0, 1.0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after 10s waiting for the grant, untraced: {grants} grants, \
             {untraced} untraced, lines {}; daemon log:\n{}",
            daemon.metric(r#"reachguard_lines_total{source="k8s"}"#),
            std::fs::read_to_string(&daemon.stderr).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Exporters batch: the binding an agent's call made is often logged before
/// the call is exported. The call, when it comes, still revokes the binding.
#[test]
fn telemetry_arriving_after_the_grant_still_revokes_it() {
    let mut latencies = Vec::new();
    for _run in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let hook = Webhook::start();
        let (daemon, audit) = otlp_daemon(dir.path(), &hook, "");
        let otlp = otlp_addr(&daemon, "http");
        grant_logged_first(&daemon, &audit, &audit_line("aud-rule"));
        assert!(hook.calls().is_empty());
        let (decision, result) = match &call_requests("toolu_rule")[..] {
            [d, r] => (d.clone(), r.clone()),
            other => panic!("{other:?}"),
        };
        let (code, _) = http_post(
            otlp,
            "/v1/logs",
            &[("Content-Type", "application/json")],
            decision.as_bytes(),
        );
        assert_eq!(code, 200);
        // The decision names no command: nothing yet.
        assert_eq!(
            daemon.metric(
                r#"reachguard_findings_total{kind="unverified_agent_grant",severity="critical"}"#
            ),
            0.0
        );
        let sent = Instant::now();
        let (code, body) = http_post(
            otlp,
            "/v1/logs",
            &[("Content-Type", "application/json")],
            result.as_bytes(),
        );
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
        wait_until(Duration::from_secs(5), "the revocation webhook", || {
            !hook.calls().is_empty()
        });
        let calls = hook.calls();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert!(calls[0].signature_valid(SECRET));
        let body = calls[0].json();
        assert_eq!(body["grant_id"], "k8s:aud-rule:0");
        assert_eq!(body["grantee"], "ci-runner");
        latencies.push(calls[0].at.duration_since(sent));
        assert_eq!(daemon.metric("reachguard_untraced_grants"), 0.0);
        // The finding, written once the hook answered, says how it was traced.
        wait_until(Duration::from_secs(5), "the executed finding", || {
            daemon
                .findings()
                .iter()
                .any(|f| f["action"]["status"] == "executed")
        });
        let findings = daemon.findings();
        let f = findings
            .iter()
            .find(|f| f["kind"] == "unverified_agent_grant")
            .unwrap();
        assert_eq!(f["advice_id"], "otel:claude-code:sess-rule:toolu_rule");
        assert!(
            f["evidence"]["trace"]["chain"]
                .to_string()
                .contains("advice_reported_after_change"),
            "{f}"
        );
    }
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "grant logged first; OTLP POST -> signed webhook revocation over {} runs: p50 {:.1} ms, p99 (the max of 20) {:.1} ms",
        latencies.len(),
        ms(latencies[latencies.len() / 2]),
        ms(*latencies.last().unwrap())
    );
    assert!(
        *latencies.last().unwrap() < Duration::from_secs(1),
        "{latencies:?}"
    );
}

/// The same late telemetry, but the engineer approved the call in the
/// permission dialog: the approval comes with the call, and the binding is
/// left alone.
#[test]
fn late_telemetry_of_a_call_the_engineer_approved_revokes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Webhook::start();
    let (daemon, audit) = otlp_daemon(dir.path(), &hook, "");
    let otlp = otlp_addr(&daemon, "http");
    grant_logged_first(&daemon, &audit, &audit_line("aud-human"));
    let requests = call_requests("toolu_human");
    assert_eq!(requests.len(), 2);
    for req in requests {
        let (code, _) = http_post(
            otlp,
            "/v1/logs",
            &[("Content-Type", "application/json")],
            req.as_bytes(),
        );
        assert_eq!(code, 200);
    }
    // Answered once processed: the call traced to the binding, approved, and
    // the binding is no longer waiting for an explanation.
    assert_eq!(
        daemon.metric(r#"reachguard_events_total{type="advice_verified"}"#),
        1.0
    );
    assert_eq!(daemon.metric("reachguard_untraced_grants"), 0.0);
    let findings: f64 = ["low", "medium", "high", "critical"]
        .iter()
        .map(|s| {
            daemon.metric(&format!(
                r#"reachguard_findings_total{{kind="unverified_agent_grant",severity="{s}"}}"#
            ))
        })
        .sum();
    assert_eq!(findings, 0.0);
    assert_eq!(
        daemon.metric(r#"reachguard_journal_pending"#)
            + daemon.metric(r#"reachguard_revocations_total{status="executed"}"#),
        0.0
    );
    assert!(hook.calls().is_empty());
}

/// The receiver's cursor (requests answered) is saved with the model and
/// taken up again after a SIGKILL: nothing to resume from (a sender retries
/// what was not answered), but request numbers go on.
#[test]
fn the_receivers_cursor_survives_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Webhook::start();
    let (mut daemon, _audit) = otlp_daemon(dir.path(), &hook, "");
    let post_all = |d: &Daemon| {
        let otlp = otlp_addr(d, "http");
        for req in rule_call_requests() {
            let (code, _) = http_post(
                otlp,
                "/v1/logs",
                &[("Content-Type", "application/json")],
                req.as_bytes(),
            );
            assert_eq!(code, 200);
        }
    };
    let n = rule_call_requests().len() as u64;
    assert!(n > 0);
    post_all(&daemon);
    let answered = |d: &Daemon| saved_cursors(&d.state)["otlp"]["answered"].as_u64();
    wait_until(
        Duration::from_secs(10),
        "a checkpoint with the requests",
        || answered(&daemon) == Some(n),
    );
    daemon.kill_9();
    std::fs::remove_file(daemon.state.join("otlp-http.addr")).unwrap();
    let (daemon, _audit) = otlp_daemon(dir.path(), &hook, "");
    post_all(&daemon);
    wait_until(Duration::from_secs(10), "a checkpoint counting on", || {
        answered(&daemon) == Some(2 * n)
    });
}

#[test]
fn the_otlp_receiver_answers_as_the_specification_says() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Webhook::start();
    let (daemon, _audit) = otlp_daemon(dir.path(), &hook, "max_body_bytes = 4096\n");
    let otlp = otlp_addr(&daemon, "http");
    let json = [("Content-Type", "application/json")];
    let (code, body) = http_post(otlp, "/v1/logs", &json, b"{\"resourceLogs\":7}");
    assert_eq!(code, 400);
    let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status["code"], 3, "{status}");
    let (code, _) = http_post(otlp, "/v1/traces", &[("Content-Type", "text/plain")], b"x");
    assert_eq!(code, 415);
    let big = format!("{{\"resourceLogs\":[],\"pad\":\"{}\"}}", "x".repeat(8192));
    let (code, _) = http_post(otlp, "/v1/logs", &json, big.as_bytes());
    assert_eq!(code, 413);
    // gzip, and a gzip bomb over the limit.
    let gz = |b: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut e, b).unwrap();
        e.finish().unwrap()
    };
    let req = rule_call_requests().remove(0);
    let headers = [
        ("Content-Type", "application/json"),
        ("Content-Encoding", "gzip"),
    ];
    let (code, _) = http_post(otlp, "/v1/logs", &headers, &gz(req.as_bytes()));
    assert_eq!(code, 200);
    let bomb = gz(&vec![b' '; 1 << 20]);
    assert!(bomb.len() < 4096);
    let (code, _) = http_post(otlp, "/v1/logs", &headers, &bomb);
    assert_eq!(code, 413);
    // Protobuf in, protobuf out (an empty ExportLogsServiceResponse).
    let (code, body) = http_post(
        otlp,
        "/v1/logs",
        &[("Content-Type", "application/x-protobuf")],
        &[],
    );
    assert_eq!((code, body.len()), (200, 0));
    let (code, _) = http_post(
        otlp,
        "/v1/logs",
        &[("Content-Type", "application/x-protobuf")],
        b"\xff\xff\xff",
    );
    assert_eq!(code, 400);
    assert_eq!(
        daemon.metric(r#"reachguard_lines_total{source="otlp"}"#),
        2.0
    );
}

/// The Python OpenTelemetry SDK, when installed (`.ci/run` puts it in
/// `target/otel-venv`); the test fails rather than skips without it when
/// `REACHGUARD_REQUIRE_OTEL_SDK=1`.
fn otel_python() -> Option<PathBuf> {
    let path = std::env::var_os("REACHGUARD_OTEL_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/target/otel-venv/bin/python"
            ))
        });
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("REACHGUARD_REQUIRE_OTEL_SDK").is_none(),
        "REACHGUARD_REQUIRE_OTEL_SDK is set but {} does not exist",
        path.display()
    );
    eprintln!("skipped: no OpenTelemetry Python SDK at {}", path.display());
    None
}

/// A Claude Code session's logs over OTLP/HTTP (protobuf) and a GenAI agent's
/// spans over OTLP/gRPC, both from the real SDK.
const SDK_CLIENT: &str = r#"
import json, sys
from opentelemetry._logs import LogRecord
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

http, grpc, t0 = sys.argv[1], sys.argv[2], int(sys.argv[3])
lp = LoggerProvider(resource=Resource.create({"service.name": "claude-code", "host.name": "dev-7"}))
lp.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"http://{http}/v1/logs")))
log = lp.get_logger("com.anthropic.claude_code.events")
common = {"session.id": "py-1", "user.email": "alice@example.com", "tool_use_id": "toolu_py", "tool_name": "Bash"}
log.emit(LogRecord(timestamp=t0, body="claude_code.tool_decision",
    attributes={**common, "event.name": "tool_decision", "decision": "accept", "source": "config"}))
cmd = "kubectl create clusterrolebinding py-admin --clusterrole=cluster-admin --user=py-runner"
log.emit(LogRecord(timestamp=t0 + 2_000_000_000, body="claude_code.tool_result",
    attributes={**common, "event.name": "tool_result", "duration_ms": "500",
                "tool_parameters": json.dumps({"full_command": cmd})}))
lp.shutdown()

tp = TracerProvider(resource=Resource.create({"service.name": "ops-assistant"}))
tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"http://{grpc}", insecure=True)))
tr = tp.get_tracer("ops_assistant.agent")
with tr.start_as_current_span("invoke_agent ops-assistant", start_time=t0 + 10_000_000_000, attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "ops-assistant",
        "gen_ai.conversation.id": "conv-py", "user.email": "carol@example.com"}):
    args = {"command": "kubectl create rolebinding py-edit --clusterrole=edit --user=py-deployer -n web"}
    with tr.start_as_current_span("execute_tool run_shell", start_time=t0 + 11_000_000_000, attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "run_shell",
            "gen_ai.tool.call.id": "call_py", "gen_ai.tool.call.arguments": json.dumps(args)}):
        pass
tp.shutdown()
"#;

#[test]
fn the_opentelemetry_python_sdk_sends_agent_telemetry_over_http_and_grpc() {
    let Some(python) = otel_python() else { return };
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let hook = Webhook::start();
    let (daemon, audit) = otlp_daemon(dir.path(), &hook, "grpc_listen = \"127.0.0.1:0\"\n");
    let http = otlp_addr(&daemon, "http");
    let grpc = otlp_addr(&daemon, "grpc");
    let t0_ms: i64 = 1_773_824_400_000; // 2026-03-18T09:00:00Z
    let out = Command::new(python)
        .args(["-c", SDK_CLIENT])
        .arg(http.to_string())
        .arg(grpc.to_string())
        .arg((t0_ms as i128 * 1_000_000).to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Both exporters finished: their requests were answered after processing,
    // metrics included.
    assert_eq!(
        daemon.metric(r#"reachguard_events_total{type="advice"}"#),
        2.0,
        "the SDK said: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let binding = |id: &str,
                   user: &str,
                   kind: &str,
                   ns: Option<&str>,
                   role: &str,
                   subject: &str| {
        let (res, meta) = match ns {
            Some(n) => ("rolebindings", format!(r#","namespace":"{n}""#)),
            None => ("clusterrolebindings", String::new()),
        };
        format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"{id}","stage":"ResponseComplete","verb":"create","user":{{"username":"{user}"}},"objectRef":{{"resource":"{res}"{meta},"name":"b"}},"responseStatus":{{"code":201}},"requestObject":{{"kind":"{kind}","metadata":{{"name":"b"{meta}}},"subjects":[{{"kind":"User","name":"{subject}"}}],"roleRef":{{"kind":"ClusterRole","name":"{role}"}}}},"stageTimestamp":"2026-03-18T09:00:30Z"}}"#
        )
    };
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&audit)
        .unwrap();
    writeln!(
        f,
        "{}",
        binding(
            "py-1",
            "alice",
            "ClusterRoleBinding",
            None,
            "cluster-admin",
            "py-runner"
        )
    )
    .unwrap();
    writeln!(
        f,
        "{}",
        binding(
            "py-2",
            "carol",
            "RoleBinding",
            Some("web"),
            "edit",
            "py-deployer"
        )
    )
    .unwrap();
    drop(f);
    wait_until(Duration::from_secs(10), "two revocations", || {
        hook.calls().len() >= 2
    });
    let ids: BTreeSet<String> = hook.calls().iter().map(|c| c.grant_id()).collect();
    assert_eq!(
        ids,
        BTreeSet::from(["k8s:py-1:0".to_owned(), "k8s:py-2:0".to_owned()])
    );
}

/// The grants of GCP and GitHub commands are named as their audit logs name
/// the grants, so calls that ran them trace there too.
#[test]
fn agent_commands_trace_to_gcp_and_github_audit_grants() {
    use reachguard::config::Config;
    use reachguard::decode::Format;
    use reachguard::detect::{Engine, EngineConfig, Origin};

    let cfg =
        Config::parse("[identities.aliases]\n\"carol@example.com\" = [\"carol-gh\"]\n").unwrap();
    let mut engine = Engine::new(
        Default::default(),
        Default::default(),
        &EngineConfig::from_config(&cfg),
    );
    let call = |id: &str, cmd: &str, ts: &str| {
        let args = serde_json::json!({ "command": cmd }).to_string();
        serde_json::json!({"resourceSpans": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "ops-assistant"}},
            {"key": "user.email", "value": {"stringValue": "carol@example.com"}}]},
          "scopeSpans": [{"spans": [{"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "00f067aa0ba902b8",
            "name": "execute_tool run_shell", "startTimeUnixNano": ts, "endTimeUnixNano": ts,
            "attributes": [
              {"key": "gen_ai.tool.name", "value": {"stringValue": "run_shell"}},
              {"key": "gen_ai.tool.call.id", "value": {"stringValue": id}},
              {"key": "gen_ai.tool.call.arguments", "value": {"stringValue": args}}]}]}]}]})
        .to_string()
    };
    let lines: Vec<(Format, String)> = vec![
        (
            Format::Otlp,
            call(
                "c1",
                "gcloud projects add-iam-policy-binding prod-1 --member=user:dave@example.com --role=roles/owner",
                "1773824400000000000",
            ),
        ),
        (
            Format::Otlp,
            call(
                "c2",
                "gh api --method PUT repos/acme/infra/collaborators/mallory -f permission=admin",
                "1773824410000000000",
            ),
        ),
        (
            Format::GcpAudit,
            r#"{"insertId":"gcp-1","timestamp":"2026-03-18T09:01:00Z","protoPayload":{"@type":"type.googleapis.com/google.cloud.audit.AuditLog","status":{},"authenticationInfo":{"principalEmail":"carol@example.com"},"serviceName":"cloudresourcemanager.googleapis.com","methodName":"SetIamPolicy","resourceName":"projects/prod-1","serviceData":{"@type":"type.googleapis.com/google.iam.v1.logging.AuditData","policyDelta":{"bindingDeltas":[{"action":"ADD","role":"roles/owner","member":"user:dave@example.com"}]}}}}"#.to_owned(),
        ),
        (
            Format::GithubAudit,
            r#"{"_document_id":"gh-1","action":"repo.add_member","actor":"carol-gh","created_at":1773824470000,"org":"acme","repo":"acme/infra","user":"mallory","permission":"admin"}"#.to_owned(),
        ),
    ];
    let mut traced = BTreeMap::new();
    for (format, line) in lines {
        let out = format.decoder().decode_owned(line.as_bytes()).unwrap();
        assert!(!out.is_empty(), "{format}: {line}");
        for ev in out {
            for d in engine.observe(&ev, Origin::TRUSTED) {
                if d.finding.kind.as_str() == "unverified_agent_grant" {
                    traced.insert(
                        d.finding.grant_id.clone().unwrap(),
                        d.finding.advice_id.clone().unwrap(),
                    );
                    assert!(d.target.is_some(), "a revocation is called for");
                }
            }
        }
    }
    assert_eq!(
        traced,
        BTreeMap::from([
            (
                "gcp:gcp-1:0".to_owned(),
                "otel:ops-assistant:4bf92f3577b34da6a3ce929d0e0e4736:c1".to_owned()
            ),
            (
                "gh:gh-1".to_owned(),
                "otel:ops-assistant:4bf92f3577b34da6a3ce929d0e0e4736:c2".to_owned()
            ),
        ])
    );
}

#[test]
fn the_otlp_receiver_requires_the_api_token_when_one_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "otlp-s3cret\n").unwrap();
    let hook = Webhook::start();
    let (daemon, _audit) = otlp_daemon_with(
        dir.path(),
        &hook,
        "",
        &format!("token_file = \"{}\"\n", token.display()),
    );
    let otlp = otlp_addr(&daemon, "http");
    let req = rule_call_requests().remove(0);
    let (code, _) = http_post(
        otlp,
        "/v1/logs",
        &[("Content-Type", "application/json")],
        req.as_bytes(),
    );
    assert_eq!(code, 401);
    let (code, _) = http_post(
        otlp,
        "/v1/logs",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer wrong"),
        ],
        req.as_bytes(),
    );
    assert_eq!(code, 401);
    let (code, _) = http_post(
        otlp,
        "/v1/logs",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer otlp-s3cret"),
        ],
        req.as_bytes(),
    );
    assert_eq!(code, 200);
}

#[test]
fn explain_takes_any_name_the_person_goes_by() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let hook = Webhook::start();
    let (mut daemon, audit) = otlp_daemon(dir.path(), &hook, "");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&audit)
        .unwrap();
    writeln!(
        f,
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"get-1","stage":"ResponseComplete","verb":"get","user":{{"username":"alice"}},"objectRef":{{"resource":"pods","namespace":"web"}},"responseStatus":{{"code":200}},"stageTimestamp":"2026-03-18T09:00:00Z"}}"#
    )
    .unwrap();
    drop(f);
    wait_until(Duration::from_secs(10), "the access line", || {
        daemon.metric(r#"reachguard_events_total{type="access"}"#) == 1.0
    });
    assert!(daemon.sigterm().success());
    for name in ["alice", "alice@example.com"] {
        let out = Command::new(BIN)
            .args(["explain", "--json", "--config"])
            .arg(dir.path().join("reachguard.toml"))
            .arg(name)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(e["principal"], "alice@example.com", "{name}");
        assert_eq!(e["events"], 1, "{name}");
    }
}

/// A logs request of three Claude Code records: a well-formed decision, a
/// result that names no tool and a decision that names no decision.
fn logs_with_two_malformed_records() -> String {
    let rec = |body: &str, attrs: &[(&str, &str)]| {
        let attrs: Vec<String> = attrs
            .iter()
            .map(|(k, v)| format!(r#"{{"key":"{k}","value":{{"stringValue":"{v}"}}}}"#))
            .collect();
        format!(
            r#"{{"timeUnixNano":"1773824400000000000","body":{{"stringValue":"{body}"}},"attributes":[{}]}}"#,
            attrs.join(",")
        )
    };
    let good = rec(
        "claude_code.tool_decision",
        &[
            ("session.id", "s-1"),
            ("tool_use_id", "t-1"),
            ("tool_name", "Bash"),
            ("decision", "accept"),
            ("source", "config"),
        ],
    );
    let no_tool = rec(
        "claude_code.tool_result",
        &[("session.id", "s-1"), ("tool_use_id", "t-2")],
    );
    let no_decision = rec(
        "claude_code.tool_decision",
        &[
            ("session.id", "s-1"),
            ("tool_use_id", "t-3"),
            ("tool_name", "Bash"),
        ],
    );
    format!(
        r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"claude-code"}}}}]}},"scopeLogs":[{{"logRecords":[{good},{no_tool},{no_decision}]}}]}}]}}"#
    )
}

/// A traces request of two execute_tool spans, one naming no tool.
fn traces_with_one_malformed_span() -> String {
    let span = |id: &str, tool: Option<&str>| {
        let tool = tool
            .map(|t| format!(r#",{{"key":"gen_ai.tool.name","value":{{"stringValue":"{t}"}}}}"#))
            .unwrap_or_default();
        format!(
            r#"{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"{id}","name":"execute_tool","startTimeUnixNano":"1773824400000000000","endTimeUnixNano":"1773824401000000000","attributes":[{{"key":"gen_ai.operation.name","value":{{"stringValue":"execute_tool"}}}},{{"key":"user.email","value":{{"stringValue":"carol@example.com"}}}}{tool}]}}"#
        )
    };
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[]}},"scopeSpans":[{{"spans":[{},{}]}}]}}]}}"#,
        span("eee19b7ec3c1b174", Some("run_shell")),
        span("eee19b7ec3c1b175", None)
    )
}

#[test]
fn malformed_agent_records_are_reported_as_a_partial_success_over_http() {
    use opentelemetry_proto::tonic::collector::logs::v1::{
        ExportLogsServiceRequest, ExportLogsServiceResponse,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let hook = Webhook::start();
    let (daemon, _audit) = otlp_daemon(dir.path(), &hook, "");
    let otlp = otlp_addr(&daemon, "http");
    let json = [("Content-Type", "application/json")];
    let pb = [("Content-Type", "application/x-protobuf")];
    let logs = logs_with_two_malformed_records();
    let traces = traces_with_one_malformed_span();

    // OTLP/JSON: the partial success in the JSON mapping.
    let (code, body) = http_post(otlp, "/v1/logs", &json, logs.as_bytes());
    assert_eq!(code, 200);
    let r: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let ps = &r["partialSuccess"];
    assert_eq!(
        ps["rejectedLogRecords"].to_string().trim_matches('"'),
        "2",
        "{r}"
    );
    assert!(
        ps["errorMessage"]
            .as_str()
            .unwrap()
            .contains("claude_code.tool_result"),
        "{r}"
    );
    let (code, body) = http_post(otlp, "/v1/traces", &json, traces.as_bytes());
    assert_eq!(code, 200);
    let r: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        r["partialSuccess"]["rejectedSpans"]
            .to_string()
            .trim_matches('"'),
        "1",
        "{r}"
    );
    assert!(
        r["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("gen_ai.tool.name"),
        "{r}"
    );

    // Protobuf: the same, as an ExportLogsServiceResponse message.
    let req: ExportLogsServiceRequest = serde_json::from_str(&logs).unwrap();
    let (code, body) = http_post(otlp, "/v1/logs", &pb, &req.encode_to_vec());
    assert_eq!(code, 200);
    let r = ExportLogsServiceResponse::decode(&body[..]).unwrap();
    let ps = r.partial_success.unwrap();
    assert_eq!(ps.rejected_log_records, 2);
    assert!(ps.error_message.contains("names no tool"), "{ps:?}");
    let req: ExportTraceServiceRequest = serde_json::from_str(&traces).unwrap();
    let (code, body) = http_post(otlp, "/v1/traces", &pb, &req.encode_to_vec());
    assert_eq!(code, 200);
    let r = ExportTraceServiceResponse::decode(&body[..]).unwrap();
    assert_eq!(r.partial_success.unwrap().rejected_spans, 1);

    // A request with nothing wrong: a plain success, no partial success.
    let (code, body) = http_post(
        otlp,
        "/v1/logs",
        &pb,
        &ExportLogsServiceRequest::decode(&b""[..])
            .unwrap()
            .encode_to_vec(),
    );
    assert_eq!(code, 200);
    assert!(
        ExportLogsServiceResponse::decode(&body[..])
            .unwrap()
            .partial_success
            .is_none()
    );

    assert_eq!(
        daemon.metric(r#"reachguard_otlp_rejected_total{kind="log_record"}"#),
        4.0
    );
    assert_eq!(
        daemon.metric(r#"reachguard_otlp_rejected_total{kind="span"}"#),
        2.0
    );
}

#[test]
fn malformed_agent_records_are_reported_as_a_partial_success_over_grpc() {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    let dir = tempfile::tempdir().unwrap();
    let hook = Webhook::start();
    let (daemon, _audit) = otlp_daemon(dir.path(), &hook, "grpc_listen = \"127.0.0.1:0\"\n");
    let grpc = otlp_addr(&daemon, "grpc");
    let logs: ExportLogsServiceRequest =
        serde_json::from_str(&logs_with_two_malformed_records()).unwrap();
    let traces: ExportTraceServiceRequest =
        serde_json::from_str(&traces_with_one_malformed_span()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (l, t, clean) = rt.block_on(async {
        let mut lc = LogsServiceClient::connect(format!("http://{grpc}"))
            .await
            .unwrap();
        let mut tc = TraceServiceClient::connect(format!("http://{grpc}"))
            .await
            .unwrap();
        let l = lc.export(logs).await.unwrap().into_inner();
        let t = tc.export(traces).await.unwrap().into_inner();
        let clean = lc
            .export(ExportLogsServiceRequest::default())
            .await
            .unwrap()
            .into_inner();
        (l, t, clean)
    });
    let l = l.partial_success.unwrap();
    assert_eq!(l.rejected_log_records, 2);
    assert!(l.error_message.contains("names no tool"), "{l:?}");
    let t = t.partial_success.unwrap();
    assert_eq!(t.rejected_spans, 1);
    assert!(t.error_message.contains("gen_ai.tool.name"), "{t:?}");
    assert!(clean.partial_success.is_none());
    assert_eq!(
        daemon.metric(r#"reachguard_otlp_rejected_total{kind="log_record"}"#),
        2.0
    );
}

/// The binding names its subject by a name of bob's: the finding names bob
/// by his canonical name, the revocation the subject exactly as logged, and
/// `explain` finds the finding under either name.
#[test]
fn findings_name_the_canonical_person_and_revocations_the_logged_name() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let hook = Webhook::start();
    let (mut daemon, audit) = otlp_daemon(dir.path(), &hook, "");
    let otlp = otlp_addr(&daemon, "http");
    for req in rule_call_requests() {
        let req = req.replace("--user=ci-runner", "--user=bob");
        let (code, _) = http_post(
            otlp,
            "/v1/logs",
            &[("Content-Type", "application/json")],
            req.as_bytes(),
        );
        assert_eq!(code, 200);
    }
    let binding = rule_binding().replace(r#""name":"ci-runner""#, r#""name":"bob""#);
    assert!(binding.contains(r#""name":"bob""#));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&audit)
        .unwrap();
    writeln!(f, "{binding}").unwrap();
    drop(f);
    wait_until(Duration::from_secs(10), "the revocation webhook", || {
        !hook.calls().is_empty()
    });
    let body = hook.calls()[0].json();
    assert_eq!(body["grantee"], "bob", "{body}");
    assert_eq!(body["target"]["subject_name"], "bob", "{body}");
    wait_until(Duration::from_secs(10), "the executed finding", || {
        daemon
            .findings()
            .iter()
            .any(|f| f["action"]["status"] == "executed")
    });
    let findings = daemon.findings();
    let finding = findings
        .iter()
        .find(|f| f["kind"] == "unverified_agent_grant")
        .unwrap();
    assert_eq!(
        finding["principals"],
        serde_json::json!(["bob@example.com"])
    );
    let change = &finding["evidence"]["change"];
    assert_eq!(change["actor"], "alice@example.com");
    assert_eq!(change["grantee"], "bob@example.com");
    assert_eq!(change["grantee_as_logged"], "bob");
    assert!(daemon.sigterm().success());
    for name in ["bob", "bob@example.com"] {
        let out = Command::new(BIN)
            .args(["explain", "--json", "--config"])
            .arg(dir.path().join("reachguard.toml"))
            .arg(name)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(e["principal"], "bob@example.com", "{name}");
        let kinds: Vec<&str> = e["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["kind"].as_str().unwrap())
            .collect();
        assert!(kinds.contains(&"unverified_agent_grant"), "{name}: {e}");
    }
}

#[test]
fn the_grpc_receiver_answers_with_grpc_codes() {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "grpc-s3cret\n").unwrap();
    let hook = Webhook::start();
    let (daemon, _audit) = otlp_daemon_with(
        dir.path(),
        &hook,
        "grpc_listen = \"127.0.0.1:0\"\nmax_body_bytes = 4096\n",
        &format!("token_file = \"{}\"\n", token.display()),
    );
    let grpc = otlp_addr(&daemon, "grpc");
    let small: ExportLogsServiceRequest =
        serde_json::from_str(&rule_call_requests().remove(0)).unwrap();
    let big = |n: usize| {
        let mut r = small.clone();
        r.resource_logs[0].scope_logs[0].log_records[0].severity_text = "x".repeat(n);
        r
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let codes = rt.block_on(async {
        let mut client = LogsServiceClient::connect(format!("http://{grpc}"))
            .await
            .unwrap();
        let with_token = |r: ExportLogsServiceRequest| {
            let mut req = tonic::Request::new(r);
            req.metadata_mut()
                .insert("authorization", "Bearer grpc-s3cret".parse().unwrap());
            req
        };
        let mut codes = Vec::new();
        for req in [
            tonic::Request::new(small.clone()),
            with_token(big(5000)),
            with_token(big(10_000)),
            with_token(small.clone()),
        ] {
            codes.push(match client.export(req).await {
                Ok(_) => tonic::Code::Ok,
                Err(s) => s.code(),
            });
        }
        codes
    });
    assert_eq!(
        codes,
        [
            tonic::Code::Unauthenticated,
            tonic::Code::ResourceExhausted,
            tonic::Code::OutOfRange,
            tonic::Code::Ok
        ]
    );
    assert_eq!(
        daemon.metric(r#"reachguard_lines_total{source="otlp"}"#),
        1.0
    );
}
