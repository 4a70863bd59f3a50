//! Prometheus metrics. The names are a contract with the dashboards and alert
//! rules (DESIGN.md, "Metrics"); every label has a bounded set of values
//! (event types, configured sources, finding kinds and severities, statuses).
//! Known label values are pre-created at zero so alerts and rate() work from the
//! first scrape.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::event::EventType;
use crate::finding::ActionStatus;

/// Latency buckets from 1 ms to 10 minutes: sub-second reactions and slow hooks alike.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0,
];

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
    /// `reachguard_findings_total{kind,severity}`.
    pub findings: IntCounterVec,
    /// `reachguard_revocations_total{status}`.
    pub revocations: IntCounterVec,
    /// `reachguard_hook_attempts_total{hook_type,result}`: every hook call attempt.
    pub hook_attempts: IntCounterVec,
    /// `reachguard_detection_latency_seconds`: line read -> finding.
    pub detection_latency: Histogram,
    /// `reachguard_revocation_latency_seconds`: line read -> hook succeeded.
    pub revocation_latency: Histogram,
    /// `reachguard_principals_tracked`.
    pub principals_tracked: IntGauge,
    /// `reachguard_last_event_timestamp_seconds`: event time of the newest event.
    pub last_event_timestamp: Gauge,
    /// `reachguard_untrusted_advice_ignored_total`: advice events from untrusted sources.
    pub untrusted_advice_ignored: IntGauge,
    /// `reachguard_journal_pending`: revocations journaled but not finished.
    pub journal_pending: IntGauge,
    /// `reachguard_build_info{version}`.
    pub build_info: IntGaugeVec,
    /// `reachguard_source_files_deferred`: matching files not open because of
    /// `[limits] max_open_files`.
    pub source_files_deferred: IntGauge,
    /// `reachguard_evictions_total{what}`: entries the memory caps made the
    /// model forget (principal, resource, advice, grant, sighting).
    pub evictions: IntCounterVec,
}

impl Metrics {
    /// Registers every metric; `sources` are the configured source names.
    pub fn new(sources: &[String]) -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let events = counter(
            "reachguard_events_total",
            "Events decoded, by event type.",
            &["type"],
        );
        let lines = counter(
            "reachguard_lines_total",
            "Lines read, by source.",
            &["source"],
        );
        let skipped = counter(
            "reachguard_skipped_total",
            "Lines understood but carrying nothing reachguard uses, by source.",
            &["source"],
        );
        let decode_errors = counter(
            "reachguard_decode_errors_total",
            "Lines that could not be decoded, by source.",
            &["source"],
        );
        let findings = counter(
            "reachguard_findings_total",
            "Findings raised, by kind and severity.",
            &["kind", "severity"],
        );
        let revocations = counter(
            "reachguard_revocations_total",
            "Revocation decisions and outcomes, by status.",
            &["status"],
        );
        let hook_attempts = counter(
            "reachguard_hook_attempts_total",
            "Revocation hook call attempts, by hook type (webhook, exec) and result (success, failure, timeout).",
            &["hook_type", "result"],
        );
        let histogram = |name: &str, help: &str| {
            let h = Histogram::with_opts(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
            )
            .expect("valid histogram");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let detection_latency = histogram(
            "reachguard_detection_latency_seconds",
            "Time from reading a line to raising its finding.",
        );
        let revocation_latency = histogram(
            "reachguard_revocation_latency_seconds",
            "Time from reading a line to its revocation hook succeeding.",
        );
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid gauge");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let principals_tracked = gauge(
            "reachguard_principals_tracked",
            "Distinct principals in the model.",
        );
        let untrusted_advice_ignored = gauge(
            "reachguard_untrusted_advice_ignored_total",
            "Advice, verification and view events ignored because their source is not trusted for advice.",
        );
        let journal_pending = gauge(
            "reachguard_journal_pending",
            "Revocations journaled whose hooks have not finished.",
        );
        let last_event_timestamp = Gauge::new(
            "reachguard_last_event_timestamp_seconds",
            "Event time of the newest event processed, seconds since the epoch.",
        )
        .expect("valid gauge");
        registry
            .register(Box::new(last_event_timestamp.clone()))
            .expect("unique metric");
        let build_info = IntGaugeVec::new(
            Opts::new("reachguard_build_info", "Build information."),
            &["version"],
        )
        .expect("valid gauge");
        registry
            .register(Box::new(build_info.clone()))
            .expect("unique metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let source_files_deferred = gauge(
            "reachguard_source_files_deferred",
            "Matching files waiting for an open-file slot ([limits] max_open_files).",
        );
        let evictions = counter(
            "reachguard_evictions_total",
            "Entries the memory caps made the model forget, by kind.",
            &["what"],
        );
        for what in ["principal", "resource", "advice", "grant", "sighting"] {
            evictions.with_label_values(&[what]);
        }

        for t in EventType::ALL {
            events.with_label_values(&[t.as_str()]);
        }
        for s in [
            ActionStatus::Executed,
            ActionStatus::DryRun,
            ActionStatus::Suppressed,
            ActionStatus::Failed,
        ] {
            revocations.with_label_values(&[s.as_str()]);
        }
        for t in ["webhook", "exec"] {
            for r in ["success", "failure", "timeout"] {
                hook_attempts.with_label_values(&[t, r]);
            }
        }
        for s in sources {
            lines.with_label_values(&[s]);
            skipped.with_label_values(&[s]);
            decode_errors.with_label_values(&[s]);
        }
        Metrics {
            registry,
            events,
            lines,
            skipped,
            decode_errors,
            findings,
            revocations,
            hook_attempts,
            detection_latency,
            revocation_latency,
            principals_tracked,
            last_event_timestamp,
            untrusted_advice_ignored,
            journal_pending,
            build_info,
            evictions,
            source_files_deferred,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("exposition is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_metrics_are_exposed_from_the_start() {
        let m = Metrics::new(&["app".into()]);
        let text = m.render();
        for needle in [
            "reachguard_events_total{type=\"grant\"} 0",
            "reachguard_decode_errors_total{source=\"app\"} 0",
            "reachguard_revocations_total{status=\"executed\"} 0",
            "reachguard_detection_latency_seconds_bucket{le=\"0.1\"} 0",
            "reachguard_revocation_latency_seconds_count 0",
            "reachguard_hook_attempts_total{hook_type=\"webhook\",result=\"timeout\"} 0",
            "reachguard_hook_attempts_total{hook_type=\"exec\",result=\"success\"} 0",
            "reachguard_journal_pending 0",
            "reachguard_principals_tracked 0",
            "reachguard_last_event_timestamp_seconds 0",
            &format!(
                "reachguard_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            ),
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        m.findings
            .with_label_values(&["unverified_agent_grant", "critical"])
            .inc();
        assert!(m.render().contains(
            "reachguard_findings_total{kind=\"unverified_agent_grant\",severity=\"critical\"} 1"
        ));
    }
}
