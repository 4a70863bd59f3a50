//! Prometheus metrics. The names are a contract with the dashboards and alert
//! rules (DESIGN.md, "Metrics"; `dashboards/`, `deploy/prometheus/`); every
//! label has a bounded set of values (event types, configured sources, finding
//! kinds and severities, statuses, suppression reasons, and at most
//! `[server] top_engineers` principals). Known label values are pre-created at
//! zero so alerts and `rate()` work from the first scrape.
//!
//! Every stage reports through this one [`Metrics`] handle (cheap to clone; all
//! clones share the registry): the pipeline counts lines, events, findings and
//! decisions; the daemon reports tail lag, checkpoints and readiness. A stage
//! whose metrics carry labels only it knows defines and registers them itself
//! on the shared registry, and this module assembles them: the response
//! stage's are [`ResponseMetrics`] (revocations, suppressions, hook attempts),
//! so nothing here depends back on the stage; the gates' are
//! [`GateMetrics`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::event::{EventType, Ts};
use crate::finding::{Finding, FindingKind, Severity};
use crate::gate::GateMetrics;
use crate::respond::ResponseMetrics;
use crate::respond::metrics::LATENCY_BUCKETS;

/// Every finding kind, for pre-creating `reachguard_findings_total` series.
const KINDS: [FindingKind; 4] = [
    FindingKind::UnverifiedAgentGrant,
    FindingKind::UnreviewedAgentPublish,
    FindingKind::ReachExpansion,
    FindingKind::GrantExpansion,
];

/// Every severity, for pre-creating `reachguard_findings_total` series.
const SEVERITIES: [Severity; 4] = [
    Severity::Low,
    Severity::Medium,
    Severity::High,
    Severity::Critical,
];

/// The default of `[server] top_engineers`.
pub const DEFAULT_TOP_ENGINEERS: usize = 10;

/// How long (event time) an expansion score counts for the top-engineers gauge.
const TOP_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// Every metric the daemon exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `reachguard_events_total{type}`: decoded events.
    pub events: IntCounterVec,
    /// `reachguard_lines_total{source}`: lines read.
    pub lines: IntCounterVec,
    /// `reachguard_skipped_total{source}`: lines understood but of no use.
    pub skipped: IntCounterVec,
    /// `reachguard_decode_errors_total{source}`: lines that could not be decoded.
    pub decode_errors: IntCounterVec,
    /// `reachguard_findings_total{kind,severity}`; count through [`Metrics::finding`].
    pub findings: IntCounterVec,
    /// The response stage's: revocations, suppressions, hook attempts, the
    /// journal's backlog.
    pub response: ResponseMetrics,
    /// The gates': `reachguard_gate_decisions_total{gate,decision}`.
    pub gate: GateMetrics,
    /// `reachguard_detection_latency_seconds`: line read -> finding.
    pub detection_latency: Histogram,
    /// `reachguard_principals_tracked`.
    pub principals_tracked: IntGauge,
    /// `reachguard_last_event_timestamp_seconds`: event time of the newest event;
    /// set through [`Metrics::set_last_event_time`].
    pub last_event_timestamp: Gauge,
    /// `reachguard_untrusted_advice_ignored_total`: advice events from untrusted
    /// sources; set through [`Metrics::set_untrusted_advice_ignored`].
    pub untrusted_advice_ignored: IntCounter,
    /// `reachguard_agent_commands_unparsed_total`: grant commands in agent
    /// telemetry that could not be read (synced from
    /// [`crate::commands::UNPARSED`] when rendered).
    pub agent_commands_unparsed: IntCounter,
    /// `reachguard_otlp_rejected_total{kind}`: OTLP log records and spans of
    /// agent events rejected as malformed (reported in the sender's partial
    /// success).
    pub otlp_rejected: IntCounterVec,
    /// `reachguard_source_lag_bytes{source}`: bytes in followed files not yet read
    /// as complete lines.
    pub source_lag_bytes: IntGaugeVec,
    /// `reachguard_baseline_principals`: engineers with a reach baseline.
    pub baseline_principals: IntGauge,
    /// `reachguard_untraced_grants`: grants and membership adds no advice
    /// explained yet, remembered in case the agent call behind one is
    /// reported late.
    pub untraced_grants: IntGauge,
    /// `reachguard_peer_groups`: peer groups of the last fit.
    pub peer_groups: IntGauge,
    /// `reachguard_peer_groups_fitted_timestamp_seconds`: event time of the last
    /// peer-group fit (0: never fitted).
    pub peer_groups_fitted_timestamp: Gauge,
    /// `reachguard_last_checkpoint_timestamp_seconds`: wall-clock time this
    /// process last wrote a checkpoint (0: not yet).
    pub last_checkpoint_timestamp: Gauge,
    /// `reachguard_checkpoint_errors_total`: checkpoints that could not be written.
    pub checkpoint_errors: IntCounter,
    /// `reachguard_ready`: 1 while `/readyz` answers 200.
    pub ready: IntGauge,
    /// `reachguard_build_info{version}`.
    pub build_info: IntGaugeVec,
    /// `reachguard_source_files_deferred`: matching files not open because of
    /// `[limits] max_open_files`.
    pub source_files_deferred: IntGauge,
    /// `reachguard_evictions_total{what}`: entries the memory caps made the
    /// model forget (principal, resource, advice, grant, sighting).
    pub evictions: IntCounterVec,
    /// `reachguard_top_expansion_score{principal}`: see [`Metrics::finding`].
    top_expansion: Arc<Mutex<TopExpansion>>,
}

impl Metrics {
    /// Registers every metric; `sources` are the configured source names. The
    /// top-engineers gauge keeps [`DEFAULT_TOP_ENGINEERS`] series unless
    /// [`Metrics::with_top_engineers`] says otherwise.
    pub fn new(sources: &[String]) -> Metrics {
        let registry = Registry::new();
        let register = |c: Box<dyn Collector>| registry.register(c).expect("unique metric");
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            register(Box::new(c.clone()));
            c
        };
        let events = counter_vec(
            "reachguard_events_total",
            "Events decoded, by event type.",
            &["type"],
        );
        let lines = counter_vec(
            "reachguard_lines_total",
            "Lines read, by source.",
            &["source"],
        );
        let skipped = counter_vec(
            "reachguard_skipped_total",
            "Lines understood but carrying nothing reachguard uses, by source.",
            &["source"],
        );
        let decode_errors = counter_vec(
            "reachguard_decode_errors_total",
            "Lines that could not be decoded, by source.",
            &["source"],
        );
        let findings = counter_vec(
            "reachguard_findings_total",
            "Findings raised, by kind and severity.",
            &["kind", "severity"],
        );
        let histogram = |name: &str, help: &str| {
            let h = Histogram::with_opts(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
            )
            .expect("valid histogram");
            register(Box::new(h.clone()));
            h
        };
        let detection_latency = histogram(
            "reachguard_detection_latency_seconds",
            "Time from reading a line to raising its finding.",
        );
        let int_gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid gauge");
            register(Box::new(g.clone()));
            g
        };
        let gauge = |name: &str, help: &str| {
            let g = Gauge::new(name, help).expect("valid gauge");
            register(Box::new(g.clone()));
            g
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid counter");
            register(Box::new(c.clone()));
            c
        };
        let principals_tracked = int_gauge(
            "reachguard_principals_tracked",
            "Distinct principals in the model.",
        );
        let untrusted_advice_ignored = counter(
            "reachguard_untrusted_advice_ignored_total",
            "Advice, verification and view events ignored because their source is not trusted for advice.",
        );
        let agent_commands_unparsed = counter(
            "reachguard_agent_commands_unparsed_total",
            "Grant commands run by agents that could not be read (never guessed).",
        );
        let otlp_rejected = counter_vec(
            "reachguard_otlp_rejected_total",
            "Agent telemetry records rejected as malformed, by kind (log_record, span).",
            &["kind"],
        );
        for kind in ["log_record", "span"] {
            otlp_rejected.with_label_values(&[kind]);
        }
        let last_event_timestamp = gauge(
            "reachguard_last_event_timestamp_seconds",
            "Event time of the newest event processed, seconds since the epoch.",
        );
        let source_lag_bytes = IntGaugeVec::new(
            Opts::new(
                "reachguard_source_lag_bytes",
                "Bytes in the followed files of a source not yet read as complete lines.",
            ),
            &["source"],
        )
        .expect("valid gauge");
        register(Box::new(source_lag_bytes.clone()));
        let baseline_principals = int_gauge(
            "reachguard_baseline_principals",
            "Engineers with a reach baseline.",
        );
        let untraced_grants = int_gauge(
            "reachguard_untraced_grants",
            "Grants and membership adds no advice explained yet, kept for the trace window in case the agent call behind one is reported late.",
        );
        let peer_groups = int_gauge(
            "reachguard_peer_groups",
            "Peer groups of the last fit (0 until enough engineers have baselines).",
        );
        let peer_groups_fitted_timestamp = gauge(
            "reachguard_peer_groups_fitted_timestamp_seconds",
            "Event time of the last peer-group fit, seconds since the epoch (0: never fitted).",
        );
        let last_checkpoint_timestamp = gauge(
            "reachguard_last_checkpoint_timestamp_seconds",
            "When this process last wrote a checkpoint, seconds since the epoch (0: not yet).",
        );
        let checkpoint_errors = counter(
            "reachguard_checkpoint_errors_total",
            "Checkpoints that could not be written.",
        );
        let ready = int_gauge(
            "reachguard_ready",
            "1 when the checkpoint and baselines are loaded and sources are followed (/readyz answers 200).",
        );
        let top_gauge = GaugeVec::new(
            Opts::new(
                "reachguard_top_expansion_score",
                "Highest expansion finding score of each of the top engineers over the last 24 h of event time.",
            ),
            &["principal"],
        )
        .expect("valid gauge");
        register(Box::new(top_gauge.clone()));
        let build_info = IntGaugeVec::new(
            Opts::new("reachguard_build_info", "Build information."),
            &["version"],
        )
        .expect("valid gauge");
        register(Box::new(build_info.clone()));
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let source_files_deferred = int_gauge(
            "reachguard_source_files_deferred",
            "Matching files waiting for an open-file slot ([limits] max_open_files).",
        );
        let evictions = counter_vec(
            "reachguard_evictions_total",
            "Entries the memory caps made the model forget, by kind.",
            &["what"],
        );
        for what in [
            "principal",
            "resource",
            "advice",
            "grant",
            "sighting",
            "untraced_grant",
        ] {
            evictions.with_label_values(&[what]);
        }

        for t in EventType::ALL {
            events.with_label_values(&[t.as_str()]);
        }
        for k in KINDS {
            for s in SEVERITIES {
                findings.with_label_values(&[k.as_str(), s.as_str()]);
            }
        }
        let response = ResponseMetrics::register(&registry);
        let gate = GateMetrics::register(&registry);
        for s in sources {
            lines.with_label_values(&[s]);
            skipped.with_label_values(&[s]);
            decode_errors.with_label_values(&[s]);
            source_lag_bytes.with_label_values(&[s]);
        }
        Metrics {
            registry,
            events,
            lines,
            skipped,
            decode_errors,
            findings,
            response,
            gate,
            detection_latency,
            principals_tracked,
            last_event_timestamp,
            untrusted_advice_ignored,
            agent_commands_unparsed,
            otlp_rejected,
            source_lag_bytes,
            baseline_principals,
            untraced_grants,
            peer_groups,
            peer_groups_fitted_timestamp,
            last_checkpoint_timestamp,
            checkpoint_errors,
            ready,
            build_info,
            evictions,
            source_files_deferred,
            top_expansion: Arc::new(Mutex::new(TopExpansion::new(
                top_gauge,
                DEFAULT_TOP_ENGINEERS,
            ))),
        }
    }

    /// Keeps at most `k` series of `reachguard_top_expansion_score` (0: none).
    pub fn with_top_engineers(self, k: usize) -> Metrics {
        self.top().set_k(k);
        self
    }

    fn top(&self) -> std::sync::MutexGuard<'_, TopExpansion> {
        // The top-K state is a cache of findings; a panic elsewhere while it was
        // held leaves nothing inconsistent that matters.
        self.top_expansion
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a finding in `reachguard_findings_total{kind,severity}`, and feeds
    /// `reach_expansion` / `grant_expansion` findings to the top-engineers gauge.
    pub fn finding(&self, f: &Finding) {
        self.findings
            .with_label_values(&[f.kind.as_str(), f.severity.as_str()])
            .inc();
        self.remember_expansion(f);
    }

    /// Feeds an expansion finding to the top-engineers gauge without counting
    /// it (findings from before a restart). Other kinds are ignored.
    pub fn remember_expansion(&self, f: &Finding) {
        if matches!(
            f.kind,
            FindingKind::ReachExpansion | FindingKind::GrantExpansion
        ) {
            self.top().observe(&f.principals, f.score, f.ts);
        }
    }

    /// Sets `reachguard_last_event_timestamp_seconds` and lets expansion scores
    /// older than 24 h of event time leave the top-engineers gauge.
    pub fn set_last_event_time(&self, ts: Ts) {
        self.last_event_timestamp.set(ts.as_secs_f64());
        self.top().advance(ts);
    }

    /// Brings `reachguard_untrusted_advice_ignored_total` up to `total` (the
    /// engine keeps the running count).
    pub fn set_untrusted_advice_ignored(&self, total: u64) {
        let now = self.untrusted_advice_ignored.get();
        if total > now {
            self.untrusted_advice_ignored.inc_by(total - now);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let total = crate::commands::UNPARSED.load(std::sync::atomic::Ordering::Relaxed);
        let now = self.agent_commands_unparsed.get();
        if total > now {
            self.agent_commands_unparsed.inc_by(total - now);
        }
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("exposition is UTF-8")
    }
}

/// The top K engineers by expansion score: per engineer, the highest score of
/// their `reach_expansion` / `grant_expansion` findings in the last 24 h of
/// event time. Only the top K are exported; an engineer who falls out of them
/// (or whose scores all age out) has their series removed, so the gauge never
/// has more than K series.
#[derive(Debug)]
struct TopExpansion {
    gauge: GaugeVec,
    k: usize,
    /// Per engineer, a sliding-window maximum: (event time, score) with times
    /// increasing and scores strictly decreasing, so the front is the maximum.
    scores: HashMap<String, VecDeque<(Ts, f64)>>,
    /// The principals that have a series now.
    exported: HashSet<String>,
    /// The newest event time seen.
    latest: Ts,
    /// When the oldest front entry ages out (nothing to do before then).
    next_expiry: Option<Ts>,
}

impl TopExpansion {
    fn new(gauge: GaugeVec, k: usize) -> Self {
        TopExpansion {
            gauge,
            k,
            scores: HashMap::new(),
            exported: HashSet::new(),
            latest: Ts(i64::MIN),
            next_expiry: None,
        }
    }

    fn set_k(&mut self, k: usize) {
        self.k = k;
        self.publish();
    }

    fn observe(&mut self, principals: &[String], score: f64, ts: Ts) {
        if !score.is_finite() {
            return;
        }
        self.latest = self.latest.max(ts);
        for p in principals {
            let q = self.scores.entry(p.clone()).or_default();
            // Older, lower scores can never be the maximum again.
            while q.back().is_some_and(|(_, s)| *s <= score) {
                q.pop_back();
            }
            q.push_back((ts, score));
        }
        self.expire();
        self.publish();
    }

    fn advance(&mut self, ts: Ts) {
        self.latest = self.latest.max(ts);
        if self.next_expiry.is_some_and(|at| self.latest >= at) {
            self.expire();
            self.publish();
        }
    }

    fn expire(&mut self) {
        let horizon = Ts(self.latest.0.saturating_sub(TOP_WINDOW_MS));
        self.scores.retain(|_, q| {
            while q.front().is_some_and(|(t, _)| *t < horizon) {
                q.pop_front();
            }
            !q.is_empty()
        });
        self.next_expiry = self
            .scores
            .values()
            .filter_map(|q| q.front())
            .map(|(t, _)| Ts(t.0.saturating_add(TOP_WINDOW_MS).saturating_add(1)))
            .min();
    }

    fn publish(&mut self) {
        let mut ranked: Vec<(&String, f64)> = self
            .scores
            .iter()
            .filter_map(|(p, q)| q.front().map(|(_, s)| (p, *s)))
            .collect();
        // Highest first; ties by name, so the exported set is deterministic.
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        ranked.truncate(self.k);
        let keep: HashSet<String> = ranked.iter().map(|(p, _)| (*p).clone()).collect();
        for gone in self.exported.difference(&keep) {
            let _ = self.gauge.remove_label_values(&[gone]);
        }
        for (p, s) in ranked {
            self.gauge.with_label_values(&[p]).set(s);
        }
        self.exported = keep;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expansion(principals: &[&str], score: f64, ts_s: i64) -> Finding {
        Finding {
            finding_id: format!("rg-{ts_s}"),
            kind: FindingKind::ReachExpansion,
            severity: Severity::High,
            ts: Ts(ts_s * 1000),
            principals: principals.iter().map(|p| p.to_string()).collect(),
            grant_id: None,
            advice_id: None,
            resource: None,
            score,
            summary: String::new(),
            evidence: serde_json::Value::Null,
            action: None,
        }
    }

    /// The `reachguard_top_expansion_score` series, sorted by principal.
    fn top_series(m: &Metrics) -> Vec<(String, f64)> {
        let mut out: Vec<(String, f64)> = m
            .render()
            .lines()
            .filter_map(|l| l.strip_prefix("reachguard_top_expansion_score{principal=\""))
            .map(|rest| {
                let (p, v) = rest.split_once("\"} ").unwrap();
                (p.to_owned(), v.parse().unwrap())
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn contract_metrics_are_exposed_from_the_start() {
        let m = Metrics::new(&["app".into()]);
        let text = m.render();
        for needle in [
            "reachguard_events_total{type=\"grant\"} 0",
            "reachguard_decode_errors_total{source=\"app\"} 0",
            "reachguard_revocations_total{status=\"executed\"} 0",
            "reachguard_revocations_suppressed_total{reason=\"budget\"} 0",
            "reachguard_revocations_suppressed_total{reason=\"duplicate\"} 0",
            "reachguard_detection_latency_seconds_bucket{le=\"0.1\"} 0",
            "reachguard_detection_latency_seconds_bucket{le=\"0.0001\"} 0",
            "reachguard_detection_latency_seconds_bucket{le=\"600\"} 0",
            "reachguard_revocation_latency_seconds_count 0",
            "reachguard_hook_attempts_total{hook_type=\"webhook\",result=\"timeout\"} 0",
            "reachguard_hook_attempts_total{hook_type=\"exec\",result=\"success\"} 0",
            "reachguard_journal_pending 0",
            "reachguard_principals_tracked 0",
            "reachguard_last_event_timestamp_seconds 0",
            "reachguard_source_lag_bytes{source=\"app\"} 0",
            "reachguard_baseline_principals 0",
            "reachguard_untraced_grants 0",
            "reachguard_peer_groups 0",
            "reachguard_peer_groups_fitted_timestamp_seconds 0",
            "reachguard_last_checkpoint_timestamp_seconds 0",
            "reachguard_checkpoint_errors_total 0",
            "reachguard_ready 0",
            "# TYPE reachguard_untrusted_advice_ignored_total counter",
            &format!(
                "reachguard_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            ),
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        // Every kind x severity exists at zero, so alerts on any of them work
        // before the first finding.
        for k in KINDS {
            for s in SEVERITIES {
                let series = format!(
                    "reachguard_findings_total{{kind=\"{}\",severity=\"{}\"}} 0",
                    k.as_str(),
                    s.as_str()
                );
                assert!(text.contains(&series), "missing {series}");
            }
        }
        assert!(
            !text.contains("reachguard_top_expansion_score{"),
            "no engineer series before any expansion finding"
        );
        let mut f = expansion(&[], 1.0, 0);
        f.kind = FindingKind::UnverifiedAgentGrant;
        f.severity = Severity::Critical;
        m.finding(&f);
        assert!(m.render().contains(
            "reachguard_findings_total{kind=\"unverified_agent_grant\",severity=\"critical\"} 1"
        ));
    }

    /// The whole exposition of a fresh registry, against the copy kept in
    /// `tests/fixtures/metrics/exposition.prom`: every name, label, help text
    /// and pre-created series is the contract, so any change to one of them
    /// (moving where a metric is registered included) shows here. The version
    /// label is written `VERSION` there. On a difference the exposition is
    /// written to `target/metrics-exposition.prom` to compare with.
    #[test]
    fn the_exposition_matches_the_contract() {
        let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
        let text = Metrics::new(&["app".into()])
            .render()
            .replace(&version, "version=\"VERSION\"")
            .lines()
            // The count of unreadable agent commands is process-wide
            // (`commands::UNPARSED`): other tests in this process add to it.
            .map(
                |l| match l.strip_prefix("reachguard_agent_commands_unparsed_total ") {
                    Some(_) => "reachguard_agent_commands_unparsed_total 0\n".to_owned(),
                    None => format!("{l}\n"),
                },
            )
            .collect::<String>();
        let expected = include_str!("../tests/fixtures/metrics/exposition.prom");
        if text != expected {
            let out = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/target/metrics-exposition.prom"
            );
            std::fs::write(out, &text).expect("write the exposition");
            panic!("the exposition differs from the contract; see {out}");
        }
    }

    #[test]
    fn untrusted_advice_counter_follows_the_engines_total() {
        let m = Metrics::new(&[]);
        m.set_untrusted_advice_ignored(3);
        m.set_untrusted_advice_ignored(3);
        m.set_untrusted_advice_ignored(5);
        assert!(
            m.render()
                .contains("reachguard_untrusted_advice_ignored_total 5")
        );
    }

    #[test]
    fn top_engineers_are_bounded_by_k_and_keep_each_ones_highest_score() {
        let m = Metrics::new(&[]).with_top_engineers(2);
        m.finding(&expansion(&["alice"], 50.0, 0));
        m.finding(&expansion(&["alice"], 20.0, 10));
        m.finding(&expansion(&["bob", "carol"], 30.0, 20));
        assert_eq!(
            top_series(&m),
            [("alice".into(), 50.0), ("bob".into(), 30.0)],
            "carol ties bob and loses on name; alice keeps her highest"
        );
        m.finding(&expansion(&["dave"], 90.0, 30));
        assert_eq!(
            top_series(&m),
            [("alice".into(), 50.0), ("dave".into(), 90.0)],
            "bob fell out of the top 2: his series is gone"
        );
        // Other kinds do not count.
        let mut grant = expansion(&["erin"], 500.0, 40);
        grant.kind = FindingKind::UnverifiedAgentGrant;
        m.finding(&grant);
        assert!(!top_series(&m).iter().any(|(p, _)| p == "erin"));
        let m0 = Metrics::new(&[]).with_top_engineers(0);
        m0.finding(&expansion(&["alice"], 50.0, 0));
        assert!(top_series(&m0).is_empty(), "k = 0 exports nothing");
    }

    #[test]
    fn top_engineer_scores_age_out_after_24h_of_event_time() {
        let m = Metrics::new(&[]).with_top_engineers(10);
        let h = 3600;
        m.finding(&expansion(&["alice"], 80.0, 0));
        m.finding(&expansion(&["alice"], 40.0, 2 * h));
        m.finding(&expansion(&["bob"], 10.0, 3 * h));
        m.set_last_event_time(Ts(24 * h * 1000));
        assert_eq!(
            top_series(&m),
            [("alice".into(), 80.0), ("bob".into(), 10.0)]
        );
        // Alice's 80 is now more than 24 h old; her 40 from 2 h later is the max.
        m.set_last_event_time(Ts((24 * h + 1) * 1000));
        assert_eq!(
            top_series(&m),
            [("alice".into(), 40.0), ("bob".into(), 10.0)]
        );
        m.set_last_event_time(Ts((26 * h + 1) * 1000));
        assert_eq!(top_series(&m), [("bob".into(), 10.0)]);
        m.set_last_event_time(Ts((27 * h + 1) * 1000));
        assert!(top_series(&m).is_empty(), "every series aged out");
        assert!(m.render().contains(&format!(
            "reachguard_last_event_timestamp_seconds {}",
            27 * h + 1
        )));
    }
}
