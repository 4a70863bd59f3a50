//! `reachguard demo`: the incident reachguard exists for, end to end, on
//! embedded data, with no set-up.
//!
//! It builds a small organisation's week of history, starts the real daemon
//! ([`crate::daemon`]) tailing a real file in a temporary directory, starts a
//! real webhook receiver on 127.0.0.1 that checks the HMAC signature, then
//! appends the incident line by line: an agent publishes unreviewed advice, an
//! engineer views it and opens a sensitive internal system to everyone, others
//! start using it. It prints what happened, what reachguard found, what it
//! revoked and how many milliseconds after the grant line was written.
//!
//! A second act shows agent telemetry as the source of advice: a coding
//! agent's `kubectl` call that an allow rule approved unseen, the
//! ClusterRoleBinding it made (revoked), and the same call approved by the
//! engineer in the permission dialog (left alone).
//!
//! A third act shows the confirmation gate ([`gate`]): the incident's kind of
//! binding refused at Kubernetes admission, naming the advice, before it
//! exists.

mod gate;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::event::{
    Advice, AdviceVerified, AdviceViewed, Body, Event, Grant, GranteeType, Membership,
    MembershipOp, Recommendation, Ts,
};
use crate::finding::Finding;
use crate::respond::hook::verify_signature;

const TEAMS: [(&str, [&str; 4], [&str; 2]); 3] = [
    (
        "infra",
        ["alice", "bob", "erin", "frank"],
        ["k8s/prod-cluster", "terraform/state"],
    ),
    (
        "web",
        ["carol", "dave", "grace", "heidi"],
        ["repo/web-frontend", "cdn/config"],
    ),
    (
        "data",
        ["ivan", "judy", "niaj", "olivia"],
        ["warehouse/events", "airflow/dags"],
    ),
];
const SHARED: [&str; 3] = ["wiki/home", "chat/general", "ci/build-logs"];
const SECRET: &[u8] = b"demo-secret-not-for-production";

fn at(s: &str) -> Ts {
    Ts::parse_rfc3339(s).expect("valid demo timestamp")
}

fn ev(ts: Ts, body: Body) -> Event {
    Event { ts, id: None, body }
}

#[allow(clippy::too_many_arguments)] // one argument per field of the grant line it builds
fn grant(
    ts: Ts,
    id: &str,
    actor: &str,
    grantee: &str,
    group: bool,
    resource: &str,
    role: &str,
    reference: &str,
) -> Event {
    ev(
        ts,
        Body::Grant(Grant {
            grant_id: id.into(),
            actor: actor.into(),
            grantee: grantee.into(),
            grantee_type: if group {
                GranteeType::Group
            } else {
                GranteeType::User
            },
            resource: resource.into(),
            role: Some(role.into()),
            reference: Some(reference.into()),
            actor_type: None,
            target: None,
        }),
    )
}

fn access(ts: Ts, who: &str, what: &str) -> Event {
    Event::access(ts, who, what)
}

/// A week of ordinary life: teams and groups set up by HR, team grants, daily
/// work on team and shared resources, one advice a human verified before it
/// was followed, and one advice nobody acted on.
pub fn history() -> Vec<Event> {
    let start = at("2026-03-11T08:00:00Z");
    let mut out = Vec::new();
    let mut n = 0;
    for (team, members, resources) in TEAMS {
        for m in members {
            for group in [team, "eng-all"] {
                n += 1;
                out.push(ev(
                    start,
                    Body::Membership(Membership {
                        actor: "hr-system".into(),
                        group: group.into(),
                        member: m.into(),
                        op: MembershipOp::Add,
                        grant_id: Some(format!("m-{n}")),
                        reference: Some("onboarding".into()),
                        actor_type: Some(crate::event::ActorType::Service),
                        target: None,
                    }),
                ));
            }
        }
        for r in resources {
            n += 1;
            out.push(grant(
                start,
                &format!("g-{n}"),
                "hr-system",
                team,
                true,
                r,
                "editor",
                "team baseline",
            ));
        }
    }
    for r in SHARED {
        n += 1;
        out.push(grant(
            start,
            &format!("g-{n}"),
            "hr-system",
            "eng-all",
            true,
            r,
            "viewer",
            "company baseline",
        ));
    }
    // Deterministic "randomness": a small LCG, so every run shows the same week.
    let mut seed: u64 = 0x5eed_cafe;
    let mut next = move |m: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % m
    };
    for day in 0..5i64 {
        for (_, members, resources) in TEAMS {
            for m in members {
                for _ in 0..12 {
                    let minute = 60 + next(8 * 60) as i64;
                    let ts = start.add_millis((day * 24 * 60 + minute) * 60_000);
                    let r = if next(3) == 0 {
                        SHARED[next(3) as usize]
                    } else {
                        resources[next(2) as usize]
                    };
                    out.push(access(ts, m, r));
                }
            }
        }
    }
    // Advice a human reviewed before anyone acted on it: not revoked.
    let t = at("2026-03-16T10:00:00Z");
    out.push(ev(
        t,
        Body::Advice(Advice {
            advice_id: "adv-7702".into(),
            agent: "agent:kb-helper".into(),
            requested_by: Some("erin".into()),
            channel: Some("chat/dm-erin".into()),
            published: false,
            recommends: vec![Recommendation {
                resource: "terraform/state".into(),
                role: Some("viewer".into()),
                grantee: Some("dave".into()),
            }],
            summary: Some("give dave read access to terraform state for the migration".into()),
        }),
    ));
    out.push(ev(
        t.add_millis(20 * 60_000),
        Body::AdviceVerified(AdviceVerified {
            advice_id: "adv-7702".into(),
            verifier: "bob".into(),
        }),
    ));
    out.push(grant(
        t.add_millis(35 * 60_000),
        "g-88120",
        "erin",
        "dave",
        false,
        "terraform/state",
        "viewer",
        "adv-7702, reviewed by bob",
    ));
    // Advice nobody acted on.
    out.push(ev(
        at("2026-03-17T15:00:00Z"),
        Body::Advice(Advice {
            advice_id: "adv-7650".into(),
            agent: "agent:kb-helper".into(),
            requested_by: Some("frank".into()),
            channel: None,
            published: false,
            recommends: vec![Recommendation {
                resource: "warehouse/events".into(),
                role: Some("viewer".into()),
                grantee: Some("frank".into()),
            }],
            summary: None,
        }),
    ));
    out.sort_by_key(|e| e.ts);
    out
}

/// The incident, with a caption for each line.
pub fn incident() -> Vec<(Event, &'static str)> {
    vec![
        (
            ev(
                at("2026-03-18T09:02:11Z"),
                Body::Advice(Advice {
                    advice_id: "adv-7731".into(),
                    agent: "agent:forum-helper".into(),
                    requested_by: Some("bob".into()),
                    channel: Some("forum/infra-q-4512".into()),
                    published: true,
                    recommends: vec![Recommendation {
                        resource: "acl/internal-tools".into(),
                        role: Some("viewer".into()),
                        grantee: Some("eng-all".into()),
                    }],
                    summary: Some(
                        "To fix the 403, grant eng-all viewer on acl/internal-tools.".into(),
                    ),
                }),
            ),
            "agent:forum-helper answers bob's forum question publicly, unreviewed: \"grant eng-all viewer on acl/internal-tools\"",
        ),
        (
            ev(
                at("2026-03-18T09:05:40Z"),
                Body::AdviceViewed(AdviceViewed {
                    advice_id: "adv-7731".into(),
                    principal: "alice".into(),
                }),
            ),
            "alice reads the answer",
        ),
        (
            grant(
                at("2026-03-18T09:07:02Z"),
                "g-90211",
                "alice",
                "eng-all",
                true,
                "acl/internal-tools",
                "viewer",
                "per forum/infra-q-4512",
            ),
            "alice follows it: group eng-all (12 engineers) gets viewer on acl/internal-tools",
        ),
        (
            access(at("2026-03-18T09:09:15Z"), "carol", "acl/internal-tools"),
            "carol (web team) starts using acl/internal-tools",
        ),
        (
            access(at("2026-03-18T09:11:40Z"), "ivan", "acl/internal-tools"),
            "ivan (data team) too",
        ),
    ]
}

#[derive(Clone)]
struct Receiver {
    tx: mpsc::UnboundedSender<(Instant, bool, Option<String>, serde_json::Value)>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let now = Instant::now();
    let sig = headers
        .get("x-reachguard-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let valid = verify_signature(SECRET, &body, sig);
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let payload = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let _ = r.tx.send((now, valid, key, payload));
    if valid {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    }
}

fn hhmmss(ts: Ts) -> String {
    let s = ts.to_string();
    s.get(11..19).unwrap_or(&s).to_owned()
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Runs the demo, writing the story to `out`. With `serve`, the daemon and
/// its incident page stay up afterwards until SIGINT or SIGTERM.
pub async fn run(out: &mut dyn Write, serve: bool) -> io::Result<()> {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("logs").join("access.jsonl");
    std::fs::create_dir_all(log.parent().expect("has a parent"))?;
    let secret_file = dir.path().join("hook.secret");
    std::fs::write(&secret_file, SECRET)?;
    let tls = gate::certificate(dir.path())?;

    // The organisation's revocation endpoint: a real HTTP server on 127.0.0.1.
    let (tx, mut calls) = mpsc::unbounded_channel();
    let hook_listener =
        tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let hook_addr = hook_listener.local_addr()?;
    let app = axum::Router::new()
        .route("/revoke", post(receive))
        .with_state(Receiver { tx });
    let hook_server = tokio::spawn(async move { axum::serve(hook_listener, app).await });

    let history = history();
    let mut text = String::new();
    for e in &history {
        text.push_str(&e.to_native_json());
        text.push('\n');
    }
    std::fs::write(&log, text)?;

    let cfg_text = format!(
        r#"
[state]
dir = "{state}"
checkpoint_interval = "200ms"
[[sources]]
path = "{logs}/*.jsonl"
[[sources]]
path = "{logs}/agents.otlp"
format = "otlp"
[[sources]]
path = "{logs}/kube-audit.log"
format = "k8s-audit"
[identities.aliases]
"yusuf@example.com" = ["yusuf"]
"zoe@example.com" = ["zoe"]
[server]
listen = "127.0.0.1:0"
[sensitivity]
"acl/internal-*" = "critical"
"k8s/prod-*" = "high"
"terraform/*" = "high"
"warehouse/*" = "medium"
[response]
mode = "enforce"
[[response.hooks]]
type = "webhook"
url = "http://{hook_addr}/revoke"
secret_file = "{secret}"
{gate}"#,
        state = dir.path().join("state").display(),
        logs = log.parent().expect("has a parent").display(),
        secret = secret_file.display(),
        gate = gate::config(&tls),
    );
    // Written to a file, so that the commands the incident page suggests
    // (`reachguard restore --config ...`) work against this run.
    let cfg_path = dir.path().join("reachguard.toml");
    std::fs::write(&cfg_path, &cfg_text)?;
    let cfg = Config::load(Some(&cfg_path)).map_err(other)?;
    let loaded = Instant::now();
    let daemon = crate::daemon::start(cfg).await.map_err(other)?;
    let mut processed = daemon.processed.clone();
    let n_history = history.len() as u64;
    processed
        .wait_for(|n| *n >= n_history)
        .await
        .map_err(other)?;
    let engineers: std::collections::BTreeSet<&str> = TEAMS.iter().flat_map(|t| t.1).collect();

    writeln!(
        out,
        "reachguard demo: the incident, live, against the real daemon\n"
    )?;
    writeln!(
        out,
        "The daemon follows {} and signs revocations to a webhook on {hook_addr}.",
        log.display()
    )?;
    writeln!(
        out,
        "History: {} events from {} engineers over a week, read in {} ms from start: team grants, daily work,\n\
         advice adv-7702 that bob reviewed before erin acted on it, advice adv-7650 nobody acted on.\n",
        history.len(),
        engineers.len(),
        loaded.elapsed().as_millis()
    )?;
    writeln!(out, "Live (event time, then what was appended to the log):")?;

    let mut file = std::fs::OpenOptions::new().append(true).open(&log)?;
    let incident = incident();
    let mut grant_written = None;
    for (e, caption) in &incident {
        writeln!(out, "  {}  {caption}", hhmmss(e.ts))?;
        let line = format!("{}\n", e.to_native_json());
        if matches!(e.body, Body::Grant(_)) {
            grant_written = Some(Instant::now());
        }
        file.write_all(line.as_bytes())?;
        file.flush()?;
        // Paced like people, so the output reads as it happens.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let total = n_history + incident.len() as u64;
    processed.wait_for(|n| *n >= total).await.map_err(other)?;

    let call = tokio::time::timeout(Duration::from_secs(10), calls.recv())
        .await
        .map_err(|_| other("no revocation reached the webhook within 10 s"))?
        .ok_or_else(|| other("webhook receiver stopped"))?;

    // The findings as the daemon's own API serves them.
    crate::respond::hook::init_tls();
    let url = format!("http://{}/api/findings", daemon.addr);
    let mut findings: Vec<Finding> = Vec::new();
    for _ in 0..50 {
        findings = reqwest::get(&url)
            .await
            .map_err(other)?
            .json()
            .await
            .map_err(other)?;
        if findings
            .iter()
            .any(|f| f.action.as_ref().is_some_and(|a| a.grant_id == "g-90211"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let act_two = act_two(out, dir.path(), &mut calls, &mut processed, total).await?;
    let state_dir = dir.path().join("state");
    let act_three = gate::run(&log, &state_dir, &tls, &mut processed, total + 6).await?;

    writeln!(out, "\nWhat reachguard found:")?;
    for f in &findings {
        writeln!(
            out,
            "  [{}] {}: {}",
            f.severity.as_str().to_uppercase(),
            f.kind.as_str(),
            f.summary
        )?;
        if let Some(a) = &f.action {
            writeln!(
                out,
                "      action: revoke {} -> {}",
                a.grant_id,
                a.status.as_str()
            )?;
        }
    }
    let (received, valid, key, payload) = call;
    writeln!(out, "\nWhat it revoked:")?;
    writeln!(
        out,
        "  POST /revoke for grant {} ({} {} on {}), signature {}, Idempotency-Key {}",
        payload["grant_id"].as_str().unwrap_or("?"),
        payload["grantee_type"].as_str().unwrap_or("user"),
        payload["grantee"].as_str().unwrap_or("?"),
        payload["resource"].as_str().unwrap_or("?"),
        if valid { "valid" } else { "INVALID" },
        key.as_deref().unwrap_or("-"),
    )?;
    if let Some(w) = grant_written {
        let ms = received.saturating_duration_since(w).as_secs_f64() * 1000.0;
        writeln!(
            out,
            "  received {ms:.1} ms after the grant line was written (in the real incident: about two hours)."
        )?;
    }
    writeln!(out, "\nWhat it left alone:")?;
    let flagged = |grant: &str| {
        findings
            .iter()
            .any(|f| f.grant_id.as_deref() == Some(grant))
    };
    if flagged("g-88120") {
        writeln!(
            out,
            "  NOT g-88120: it was flagged although bob verified adv-7702 first (a bug)."
        )?;
    } else {
        writeln!(
            out,
            "  g-88120 (dave viewer on terraform/state): it followed advice adv-7702, which bob verified first."
        )?;
    }
    let routine = history
        .iter()
        .filter_map(|e| match &e.body {
            Body::Grant(g) => Some(g.grant_id.as_str()),
            _ => None,
        })
        .filter(|g| *g != "g-88120" && !flagged(g))
        .count();
    writeln!(
        out,
        "  {routine} routine team grants, {} memberships and the {} ordinary accesses of the week raised nothing.",
        history
            .iter()
            .filter(|e| matches!(e.body, Body::Membership(_)))
            .count(),
        history
            .iter()
            .filter(|e| matches!(e.body, Body::Access(_)))
            .count()
    )?;
    act_two.print(out)?;
    act_three.print(out)?;
    writeln!(out, "\nDone in {:.1} s.", started.elapsed().as_secs_f64())?;
    if serve {
        let revoked = findings
            .iter()
            .find(|f| f.action.as_ref().is_some_and(|a| a.grant_id == "g-90211"));
        writeln!(
            out,
            "\nThe incident page: http://{}/\nThe revoked grant's chain: http://{}/finding?id={}\n\
             (the daemon keeps running on {}; Ctrl-C stops it)",
            daemon.addr,
            daemon.addr,
            revoked.map_or("", |f| f.finding_id.as_str()),
            dir.path().display()
        )?;
        out.flush()?;
        stopped().await?;
    }
    daemon.shutdown();
    daemon.wait().await.map_err(other)?;
    hook_server.abort();
    Ok(())
}

/// Waits for SIGINT or SIGTERM.
async fn stopped() -> io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

/// One Claude Code log event as the Collector's file exporter writes it.
fn claude_code_event(ts: Ts, event: &str, attrs: &[(&str, &str)]) -> String {
    let kv = |k: &str, v: &str| serde_json::json!({"key": k, "value": {"stringValue": v}});
    let mut attributes = vec![kv("event.name", event)];
    attributes.extend(attrs.iter().map(|(k, v)| kv(k, v)));
    let nanos = (ts.0 as i128 * 1_000_000).to_string();
    serde_json::json!({"resourceLogs": [{
        "resource": {"attributes": [kv("service.name", "claude-code"), kv("host.name", "dev-3")]},
        "scopeLogs": [{"scope": {"name": "com.anthropic.claude_code.events"}, "logRecords": [{
            "timeUnixNano": nanos,
            "body": {"stringValue": format!("claude_code.{event}")},
            "attributes": attributes,
        }]}],
    }]})
    .to_string()
}

/// A ClusterRoleBinding's creation as the Kubernetes API server audits it.
fn binding_audit(ts: Ts, audit_id: &str, user: &str, name: &str, subject: &str) -> String {
    serde_json::json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
        "auditID": audit_id, "stage": "ResponseComplete", "verb": "create",
        "requestURI": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        "user": {"username": user, "groups": ["system:authenticated"]},
        "objectRef": {"resource": "clusterrolebindings", "name": name, "apiGroup": "rbac.authorization.k8s.io", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 201},
        "requestObject": {"kind": "ClusterRoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": name},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": subject}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"}},
        "requestReceivedTimestamp": ts.to_string(), "stageTimestamp": ts.to_string(),
    })
    .to_string()
}

/// What the second act showed.
struct ActTwo {
    revoked: serde_json::Value,
    valid: bool,
    ms: f64,
    extra_calls: usize,
}

impl ActTwo {
    fn print(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "\nAct two: agent telemetry")?;
        writeln!(
            out,
            "  yusuf's coding agent ran `kubectl create clusterrolebinding ci-admin --clusterrole=cluster-admin --user=ci-runner`;\n  \
             an allow rule approved the call (decision accept, source config): nobody saw it."
        )?;
        writeln!(
            out,
            "  Revoked: grant {} ({} on {}), signature {}, {:.1} ms after the audit line was written.",
            self.revoked["grant_id"].as_str().unwrap_or("?"),
            self.revoked["grantee"].as_str().unwrap_or("?"),
            self.revoked["resource"].as_str().unwrap_or("?"),
            if self.valid { "valid" } else { "INVALID" },
            self.ms
        )?;
        if self.extra_calls == 0 {
            writeln!(
                out,
                "  Left alone: zoe's agent ran the same command and zoe approved that call in the dialog (user_temporary)."
            )?;
        } else {
            writeln!(
                out,
                "  NOT left alone: zoe's approved call was revoked too ({} more calls; a bug).",
                self.extra_calls
            )?;
        }
        Ok(())
    }
}

type Call = (Instant, bool, Option<String>, serde_json::Value);

async fn act_two(
    out: &mut dyn Write,
    dir: &std::path::Path,
    calls: &mut mpsc::UnboundedReceiver<Call>,
    processed: &mut tokio::sync::watch::Receiver<u64>,
    lines_before: u64,
) -> io::Result<ActTwo> {
    let logs = dir.join("logs");
    let agents = logs.join("agents.otlp");
    let audit = logs.join("kube-audit.log");
    let t0 = at("2026-03-18T10:00:00Z");
    let cmd = r#"{"bash_command":"kubectl","full_command":"kubectl create clusterrolebinding NAME --clusterrole=cluster-admin --user=ci-runner"}"#;
    let mut lines = String::new();
    for (who, session, tool_use, source, name, dt) in [
        (
            "yusuf@example.com",
            "s-101",
            "toolu_a1",
            "config",
            "ci-admin",
            0,
        ),
        (
            "zoe@example.com",
            "s-202",
            "toolu_b2",
            "user_temporary",
            "ci-admin-zoe",
            60_000,
        ),
    ] {
        let common = [
            ("session.id", session),
            ("user.email", who),
            ("tool_use_id", tool_use),
            ("tool_name", "Bash"),
        ];
        let mut decision = common.to_vec();
        decision.extend([("decision", "accept"), ("source", source)]);
        let params = cmd.replace("NAME", name);
        let mut result = common.to_vec();
        result.extend([
            ("success", "true"),
            ("duration_ms", "800"),
            ("tool_parameters", params.as_str()),
        ]);
        lines.push_str(&claude_code_event(
            t0.add_millis(dt),
            "tool_decision",
            &decision,
        ));
        lines.push('\n');
        lines.push_str(&claude_code_event(
            t0.add_millis(dt + 2_000),
            "tool_result",
            &result,
        ));
        lines.push('\n');
    }
    std::fs::write(&agents, lines)?;
    // The agent's records reach reachguard before the audit log does.
    processed
        .wait_for(|n| *n >= lines_before + 4)
        .await
        .map_err(other)?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&audit)?;
    let written = Instant::now();
    writeln!(
        file,
        "{}",
        binding_audit(
            t0.add_millis(1_500),
            "a2-rule",
            "yusuf",
            "ci-admin",
            "ci-runner"
        )
    )?;
    writeln!(
        file,
        "{}",
        binding_audit(
            t0.add_millis(61_500),
            "a2-human",
            "zoe",
            "ci-admin-zoe",
            "ci-runner"
        )
    )?;
    file.flush()?;
    writeln!(
        out,
        "\n(act two written: agent telemetry and two audit lines)"
    )?;
    let (received, valid, _key, revoked) =
        tokio::time::timeout(Duration::from_secs(10), calls.recv())
            .await
            .map_err(|_| other("no act-two revocation within 10 s"))?
            .ok_or_else(|| other("webhook receiver stopped"))?;
    // Both audit lines processed; a revocation of the second would have been
    // handed to the hooks by now and reach the webhook as fast as the first.
    processed
        .wait_for(|n| *n >= lines_before + 6)
        .await
        .map_err(other)?;
    let waited = received.saturating_duration_since(written);
    tokio::time::sleep(waited + Duration::from_millis(200)).await;
    let mut extra_calls = 0;
    while calls.try_recv().is_ok() {
        extra_calls += 1;
    }
    Ok(ActTwo {
        revoked,
        valid,
        ms: waited.as_secs_f64() * 1000.0,
        extra_calls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_ordered_and_deterministic() {
        let a = history();
        assert!(a.windows(2).all(|w| w[0].ts <= w[1].ts));
        assert_eq!(a, history());
        assert!(a.len() > 700);
    }
}
