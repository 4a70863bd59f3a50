//! Observability against the real tools: a `reachguard run` process scraped by a
//! real Prometheus (Debian's `prometheus` package) every second, with the alert
//! rules loaded; every query of the Grafana dashboard run through Prometheus's
//! HTTP API; `promtool check metrics` on the exposition. Also, without those
//! tools: the dashboard and rules name only metrics the daemon exports, and
//! `[log] format = "json"` writes one JSON object per line.
//!
//! Without `prometheus` and `promtool` on PATH the live test prints that it was
//! skipped and passes, unless `REACHGUARD_REQUIRE_PROMETHEUS=1` (set by
//! `.ci/run`, which installs them) makes that a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

const REQUIRE: &str = "REACHGUARD_REQUIRE_PROMETHEUS";
const DASHBOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards/reachguard.json");
const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/prometheus/reachguard-rules.yml"
);

/// `name` on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The Prometheus server and promtool, or `None` (the test is skipped) when
/// they are not installed and nothing requires them.
fn prometheus_tools(test: &str) -> Option<(PathBuf, PathBuf)> {
    match (on_path("prometheus"), on_path("promtool")) {
        (Some(server), Some(promtool)) => Some((server, promtool)),
        _ if std::env::var(REQUIRE).is_ok_and(|v| v == "1") => {
            panic!(
                "{REQUIRE}=1 but prometheus or promtool is not on PATH (apt-get install prometheus)"
            )
        }
        _ => {
            say_skipped(
                test,
                "prometheus or promtool not installed (apt-get install prometheus)",
            );
            None
        }
    }
}

/// A GET over HTTP/1.0: (status, body).
fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

/// Percent-encodes a query parameter value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A free port on 127.0.0.1 right now (it may be taken again before use:
/// [`Prometheus::start`] retries on a conflict).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `prometheus` server process, killed when dropped.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus with `config` on a free port, storage under `dir`,
    /// and waits until it is ready.
    fn start(server: &Path, dir: &Path, config: &str) -> Prometheus {
        let cfg = dir.join("prometheus.yml");
        std::fs::write(&cfg, config).unwrap();
        for attempt in 0..5 {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let log = dir.join(format!("prometheus-{attempt}.log"));
            let child = Command::new(server)
                .arg(format!("--config.file={}", cfg.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join(format!("tsdb-{attempt}")).display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            let mut p = Prometheus { child, addr, log };
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Some(status) = p.child.try_wait().unwrap() {
                    let text = p.log();
                    if text.contains("address already in use") {
                        break; // someone took the port meanwhile: another one
                    }
                    panic!("prometheus exited with {status}:\n{text}");
                }
                if matches!(get(addr, "/-/ready"), Ok((200, _))) {
                    return p;
                }
                assert!(
                    Instant::now() < deadline,
                    "prometheus not ready after 60 s:\n{}",
                    p.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("no free port for prometheus after 5 attempts");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An instant query now: the result list, or Prometheus's error.
    fn query(&self, expr: &str) -> Result<Vec<serde_json::Value>, String> {
        let (status, body) = get(self.addr, &format!("/api/v1/query?query={}", encode(expr)))
            .map_err(|e| e.to_string())?;
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("HTTP {status}: {e}: {body}"))?;
        if v["status"] != "success" {
            return Err(format!("HTTP {status}: {body}"));
        }
        match &v["data"]["result"] {
            serde_json::Value::Array(list) => Ok(list.clone()),
            // A scalar or string result: one value.
            other => Ok(vec![serde_json::json!({"metric": {}, "value": other})]),
        }
    }

    /// Waits until `expr` returns at least one series.
    fn wait_for(&self, timeout: Duration, expr: &str) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.query(expr) {
                Ok(r) if !r.is_empty() => return r,
                Ok(_) => {}
                Err(e) => panic!("{expr}: {e}"),
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {expr} to return data"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sample value of one query result series.
fn value(series: &serde_json::Value) -> f64 {
    let v = &series["value"][1];
    v.as_str()
        .map(|s| s.parse().unwrap_or(f64::NAN))
        .or_else(|| v.as_f64())
        .unwrap_or(f64::NAN)
}

/// Every panel of the dashboard, rows' nested panels included.
fn panels(dashboard: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        out.push(p.clone());
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested.iter().cloned());
        }
    }
    out
}

/// (panel title, expr) of every query target.
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    panels(dashboard)
        .iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or_default().to_owned();
            p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(move |t| t["expr"].as_str().map(|e| (title.clone(), e.to_owned())))
        })
        .collect()
}

/// An expression as Grafana would send it: template variables substituted.
fn substitute(expr: &str, job: &str) -> String {
    let e = expr
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "5m")
        .replace("${job}", job)
        .replace("$job", job)
        .replace("${instance}", ".*")
        .replace("$instance", ".*");
    assert!(!e.contains('$'), "unsubstituted variable in {e}");
    e
}

/// The metric names (`reachguard_...`) an expression or rules file mentions.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("reachguard_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        // Not a metric when part of a longer word (an alert name, a path).
        let before = rest[..i].chars().next_back();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '/') {
            names.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

/// Metric families the daemon exports, from `# TYPE` lines: name -> type.
fn exported_families() -> BTreeMap<String, String> {
    let m = reachguard::metrics::Metrics::new(&["app".into()]);
    // The per-engineer gauge has no series (so no `# TYPE`) before a finding.
    m.finding(&reachguard::finding::Finding {
        finding_id: "rg-1".into(),
        kind: reachguard::finding::FindingKind::ReachExpansion,
        severity: reachguard::finding::Severity::High,
        ts: reachguard::event::Ts(0),
        principals: vec!["alice".into()],
        grant_id: None,
        advice_id: None,
        resource: None,
        score: 50.0,
        summary: String::new(),
        evidence: serde_json::Value::Null,
        action: None,
    });
    m.render()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').unwrap();
            (name.to_owned(), kind.to_owned())
        })
        .collect()
}

fn assert_exported(name: &str, families: &BTreeMap<String, String>, from: &str) {
    let base = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .filter(|b| families.get(*b).is_some_and(|k| k == "histogram"));
    assert!(
        families.contains_key(name) || base.is_some(),
        "{from} uses {name}, which the daemon does not export"
    );
}

#[test]
fn dashboard_and_alert_rules_use_only_exported_metrics_and_a_datasource_variable() {
    let families = exported_families();
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap()).unwrap();
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 39);
    let vars = dashboard["templating"]["list"].as_array().unwrap();
    let ds = vars.iter().find(|v| v["name"] == "datasource").unwrap();
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");
    for v in vars.iter().filter(|v| v["type"] == "query") {
        assert_eq!(v["datasource"]["uid"], "${datasource}", "{v}");
    }
    let mut ids = BTreeSet::new();
    let all = panels(&dashboard);
    assert!(all.len() >= 15, "{} panels", all.len());
    for p in &all {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate id {p}");
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{} has no query", p["title"]);
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            let expr = t["expr"].as_str().unwrap();
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{expr}");
            for n in names {
                assert_exported(&n, &families, &format!("panel {:?}", p["title"]));
            }
        }
    }
    let rules = std::fs::read_to_string(RULES).unwrap();
    let used = metric_names(&rules);
    assert!(used.len() >= 8, "{used:?}");
    for n in &used {
        assert_exported(n, &families, "the alert rules");
    }
    // Every alert has a runbook section.
    let runbook =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/runbook.md")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 10, "{alerts:?}");
    for a in alerts {
        assert!(
            runbook.contains(&format!("\n## {a}\n")),
            "no runbook section for {a}"
        );
        assert!(
            rules.contains(&format!("docs/runbook.md#{}\"", a.to_lowercase())),
            "{a} has no runbook_url to its section"
        );
    }
}

#[test]
fn json_log_format_writes_one_json_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.jsonl");
    append(&log, &[access_line("alice", "wiki/home", 1)]);
    let cfg = format!(
        "{}\n[log]\nformat = \"json\"\n",
        config(dir.path(), &log.display().to_string(), None)
    );
    let mut daemon = Daemon::start(dir.path(), &cfg);
    wait_until(Duration::from_secs(20), "the line to be processed", || {
        daemon.metric(r#"reachguard_lines_total{source="app"}"#) >= 1.0
    });
    assert!(daemon.sigterm().success(), "{}", daemon.log());
    let text = daemon.log();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    assert!(lines.len() >= 3, "{text}");
    for l in &lines {
        assert!(l["timestamp"].is_string(), "{l}");
        assert!(l["level"].is_string(), "{l}");
        assert!(l["fields"]["message"].is_string(), "{l}");
    }
    let running = lines
        .iter()
        .find(|l| l["fields"]["message"] == "reachguard running")
        .unwrap_or_else(|| panic!("no start line in {text}"));
    assert_eq!(running["level"], "INFO");
    assert_eq!(running["fields"]["sources"], 1);
}

/// The scenario: an organisation whose engineers use a few everyday
/// resources; the incident (unreviewed published agent advice, followed with a
/// group grant of a critical resource, revoked); an agent granting directly
/// three times against a budget of three revocations an hour (one suppressed);
/// an engineer suddenly reaching several critical resources; a malformed line.
fn scenario() -> Vec<String> {
    let team: Vec<String> = (0..10)
        .map(|i| format!("e{i}"))
        .chain(["carol".into(), "ivan".into()])
        .collect();
    let mut lines = Vec::new();
    for m in &team {
        lines.push(format!(
            r#"{{"ts":"2026-03-18T08:00:00Z","type":"membership","actor":"hr","actor_type":"service","group":"eng-all","member":"{m}","op":"add"}}"#
        ));
    }
    let mut n = 8 * 3600 + 60;
    for m in &team {
        for _ in 0..2 {
            for r in ["wiki/home", "ci/logs", "docs/eng"] {
                lines.push(access_line(m, r, n));
                n += 1;
            }
        }
    }
    lines.extend(
        [
            r#"{"ts":"2026-03-18T09:02:11Z","type":"advice","advice_id":"adv-7731","agent":"agent:forum-helper","requested_by":"bob","channel":"forum/infra-q-4512","published":true,"recommends":[{"resource":"acl/internal-tools","role":"viewer","grantee":"eng-all"}]}"#,
            r#"{"ts":"2026-03-18T09:05:40Z","type":"advice_viewed","advice_id":"adv-7731","principal":"alice"}"#,
            r#"{"ts":"2026-03-18T09:07:02Z","type":"grant","grant_id":"g-90211","actor":"alice","grantee":"eng-all","grantee_type":"group","resource":"acl/internal-tools","role":"viewer","reference":"per forum/infra-q-4512"}"#,
            r#"{"ts":"2026-03-18T09:10:00Z","type":"grant","grant_id":"g-bot-1","actor":"agent:ops-bot","grantee":"u1","resource":"prod/db","role":"admin"}"#,
            r#"{"ts":"2026-03-18T09:10:01Z","type":"grant","grant_id":"g-bot-2","actor":"agent:ops-bot","grantee":"u2","resource":"prod/db","role":"admin"}"#,
            r#"{"ts":"2026-03-18T09:10:02Z","type":"grant","grant_id":"g-bot-3","actor":"agent:ops-bot","grantee":"u3","resource":"prod/db","role":"admin"}"#,
            r#"{"ts":"2026-03-18T09:20:00Z","type":"grant","grant_id":"g-broken"}"#,
        ]
        .map(str::to_owned),
    );
    for (i, r) in ["a", "b", "c", "d"].iter().enumerate() {
        lines.push(access_line(
            "mallory",
            &format!("acl/internal-{r}"),
            9 * 3600 + 1800 + i as u64,
        ));
    }
    lines
}

#[test]
fn every_dashboard_query_returns_data_from_a_live_prometheus_and_metrics_pass_promtool() {
    let Some((server, promtool)) = prometheus_tools(
        "every_dashboard_query_returns_data_from_a_live_prometheus_and_metrics_pass_promtool",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.jsonl");
    append(&log, &[]);
    let hook = Webhook::start();
    let cfg = format!(
        r#"[state]
dir = "{state}"
checkpoint_interval = "100ms"

[[sources]]
path = "{log}"
name = "app"

[server]
listen = "127.0.0.1:0"
top_engineers = 3

[sensitivity]
"acl/internal-*" = "critical"
"prod/*" = "high"

[detection]
warmup = "0s"

[response]
max_revocations_per_hour = 3

[[response.hooks]]
type = "webhook"
url = "{url}"
secret_env = "REACHGUARD_HOOK_SECRET"
timeout = "2s"
"#,
        state = dir.path().join("state").display(),
        log = log.display(),
        url = hook.url()
    );
    let daemon = Daemon::start(dir.path(), &cfg);
    let prom = Prometheus::start(
        &server,
        dir.path(),
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {RULES}\nscrape_configs:\n  - job_name: reachguard\n    static_configs:\n      - targets: ['{}']\n",
            daemon.addr()
        ),
    );
    // Two scrapes before anything happens, so rate() and increase() see the
    // counters rise rather than start.
    prom.wait_for(
        Duration::from_secs(30),
        r#"count_over_time(up{job="reachguard"}[1m]) >= 2 and up{job="reachguard"} == 1"#,
    );

    let lines = scenario();
    append(&log, &lines);
    let total = lines.len() as f64;
    wait_until(
        Duration::from_secs(30),
        "every line to be processed",
        || daemon.metric(r#"reachguard_lines_total{source="app"}"#) >= total,
    );
    wait_until(
        Duration::from_secs(30),
        "three executed revocations",
        || daemon.metric(r#"reachguard_revocations_total{status="executed"}"#) >= 3.0,
    );
    assert_eq!(hook.calls().len(), 3, "{:?}", hook.calls());
    assert_eq!(
        daemon.metric(r#"reachguard_revocations_suppressed_total{reason="budget"}"#),
        1.0
    );
    assert_eq!(
        daemon.metric(r#"reachguard_decode_errors_total{source="app"}"#),
        1.0
    );
    assert_eq!(
        daemon.metric(r#"reachguard_findings_total{kind="grant_expansion",severity="critical"}"#),
        1.0,
        "the group grant opens a critical resource to 12 engineers"
    );
    assert!(
        daemon.metric("reachguard_peer_groups") >= 1.0,
        "{}",
        daemon.log()
    );
    let exposition = http_get(daemon.addr(), "/metrics");
    let top: Vec<&str> = exposition
        .lines()
        .filter(|l| l.starts_with("reachguard_top_expansion_score{"))
        .collect();
    // The group grant's blast radius (12 engineers x critical tier 30) is the
    // top score of each of its 12 engineers; mallory's reach expansion scores
    // less; top_engineers = 3 keeps three series (ties broken by name).
    assert_eq!(
        top,
        [
            "reachguard_top_expansion_score{principal=\"carol\"} 360",
            "reachguard_top_expansion_score{principal=\"e0\"} 360",
            "reachguard_top_expansion_score{principal=\"e1\"} 360",
        ]
    );
    let mallory: Vec<serde_json::Value> = serde_json::from_str(&http_get(
        daemon.addr(),
        "/api/findings?kind=reach_expansion&principal=mallory",
    ))
    .unwrap();
    assert_eq!(mallory.len(), 1, "{mallory:?}");
    // A proposed change the decision API allows, for the gate panel.
    let (code, _) = http_post(
        daemon.addr(),
        "/api/v1/decide",
        &[("Content-Type", "application/json")],
        br#"{"actor":"carol","grantee":"ivan","resource":"docs/eng","ts":"2026-03-18T09:40:00Z"}"#,
    );
    assert_eq!(code, 200);

    // Prometheus has scraped the end state.
    prom.wait_for(
        Duration::from_secs(30),
        &format!(
            r#"reachguard_lines_total{{job="reachguard",source="app"}} == {total} and on() reachguard_revocations_total{{job="reachguard",status="executed"}} == 3 and on() reachguard_journal_pending{{job="reachguard"}} == 0 and on() reachguard_gate_decisions_total{{job="reachguard",gate="api",decision="allow"}} == 1"#
        ),
    );

    // Every dashboard query parses and returns data, with a number in it.
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap()).unwrap();
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 20, "{} queries", queries.len());
    let mut empty = Vec::new();
    for (title, expr) in &queries {
        let sent = substitute(expr, "reachguard");
        let result = prom
            .query(&sent)
            .unwrap_or_else(|e| panic!("panel {title:?}: {sent}: {e}"));
        let finite = result.iter().filter(|s| value(s).is_finite()).count();
        eprintln!(
            "panel {title:?}: {} series ({finite} finite): {sent}",
            result.len()
        );
        if finite == 0 {
            empty.push(format!("{title:?}: {sent} -> {result:?}"));
        }
    }
    assert!(
        empty.is_empty(),
        "dashboard queries without data:\n{}",
        empty.join("\n")
    );
    // The template variables' queries find this daemon.
    for (label, want) in [
        ("job", "reachguard".to_owned()),
        ("instance", daemon.addr().to_string()),
    ] {
        let (status, body) = get(
            prom.addr,
            &format!(
                "/api/v1/label/{label}/values?match[]={}",
                encode("reachguard_build_info")
            ),
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["data"], serde_json::json!([want]), "{label}");
    }

    // The loaded rules fire for what happened, and only for that.
    for alert in [
        "ReachguardUnverifiedAgentGrant",
        "ReachguardGrantRevoked",
        "ReachguardRevocationBudgetExhausted",
        "ReachguardCriticalReachExpansion",
    ] {
        let firing = prom.wait_for(
            Duration::from_secs(30),
            &format!(r#"ALERTS{{alertname="{alert}",alertstate="firing"}}"#),
        );
        assert_eq!(firing[0]["metric"]["job"], "reachguard", "{firing:?}");
    }
    for quiet in [
        "ReachguardDown",
        "ReachguardRevocationFailed",
        "ReachguardRevocationUnhandled",
        "ReachguardCheckpointFailing",
    ] {
        let r = prom
            .query(&format!(r#"ALERTS{{alertname="{quiet}"}}"#))
            .unwrap();
        assert!(r.is_empty(), "{quiet} should not be active: {r:?}");
    }

    // promtool finds nothing to complain about in the exposition.
    let exposition = http_get(daemon.addr(), "/metrics");
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}\n{exposition}"
    );

    // The findings API's minimum severity, on the same findings.
    let critical: Vec<serde_json::Value> =
        serde_json::from_str(&http_get(daemon.addr(), "/api/findings?severity=critical")).unwrap();
    let kinds: BTreeSet<&str> = critical
        .iter()
        .map(|f| {
            assert_eq!(f["severity"], "critical", "{f}");
            f["kind"].as_str().unwrap()
        })
        .collect();
    assert!(kinds.contains("grant_expansion"), "{critical:?}");
    let all: Vec<serde_json::Value> =
        serde_json::from_str(&http_get(daemon.addr(), "/api/findings?limit=1000")).unwrap();
    assert!(all.len() > critical.len());
    assert!(
        prom.log()
            .contains("Server is ready to receive web requests")
    );
}
