//! The response stage's metrics: revocation decisions and outcomes, what the
//! guardrails held back, hook attempts and the journal's backlog.
//!
//! Registered by [`ResponseMetrics::register`] on the process's one registry
//! ([`crate::metrics::Metrics`] assembles every stage's), so that the labels
//! only this stage knows ([`Suppression`], hook types) are pre-created here,
//! at zero, for alerts and `rate()` to work from the first scrape. The names
//! are a contract (DESIGN.md, "Metrics").

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

use super::Suppression;
use crate::finding::ActionStatus;

/// Buckets of every latency histogram (seconds), the response's and the
/// detection's ([`crate::metrics::Metrics`]): from 100 µs to 10 minutes, the
/// sub-millisecond path from a line to its finding, and slow hooks with
/// retries alike.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Every revocation outcome, for pre-creating `reachguard_revocations_total`.
const STATUSES: [ActionStatus; 6] = [
    ActionStatus::Executed,
    ActionStatus::DryRun,
    ActionStatus::Suppressed,
    ActionStatus::Failed,
    ActionStatus::NoUndo,
    ActionStatus::Unhandled,
];

/// The response stage's metrics (cheap to clone; clones share the series).
#[derive(Debug, Clone)]
pub struct ResponseMetrics {
    /// `reachguard_revocations_total{status}`.
    pub revocations: IntCounterVec,
    /// `reachguard_revocations_suppressed_total{reason}`: revocations a guardrail
    /// held back, by [`Suppression`].
    pub revocations_suppressed: IntCounterVec,
    /// `reachguard_hook_attempts_total{hook_type,result}`: every hook call attempt.
    pub hook_attempts: IntCounterVec,
    /// `reachguard_journal_pending`: revocations journaled but not finished.
    pub journal_pending: IntGauge,
    /// `reachguard_revocation_latency_seconds`: line read -> hook succeeded.
    pub revocation_latency: Histogram,
}

impl ResponseMetrics {
    /// Registers the response metrics on `registry`, every known label value
    /// at zero.
    pub fn register(registry: &Registry) -> ResponseMetrics {
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let revocations = counter_vec(
            "reachguard_revocations_total",
            "Revocation decisions and outcomes, by status.",
            &["status"],
        );
        let revocations_suppressed = counter_vec(
            "reachguard_revocations_suppressed_total",
            "Revocations held back by a guardrail, by reason (confidence, scope, protected, budget, duplicate).",
            &["reason"],
        );
        let hook_attempts = counter_vec(
            "reachguard_hook_attempts_total",
            "Revocation hook call attempts, by hook type (webhook, exec) and result (success, failure, timeout).",
            &["hook_type", "result"],
        );
        let journal_pending = IntGauge::new(
            "reachguard_journal_pending",
            "Revocations journaled whose hooks have not finished.",
        )
        .expect("valid gauge");
        registry
            .register(Box::new(journal_pending.clone()))
            .expect("unique metric");
        let revocation_latency = Histogram::with_opts(
            HistogramOpts::new(
                "reachguard_revocation_latency_seconds",
                "Time from reading a line to its revocation hook succeeding.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid histogram");
        registry
            .register(Box::new(revocation_latency.clone()))
            .expect("unique metric");
        for s in STATUSES {
            revocations.with_label_values(&[s.as_str()]);
        }
        for r in Suppression::ALL {
            revocations_suppressed.with_label_values(&[r.as_str()]);
        }
        for t in ["webhook", "exec"] {
            for r in ["success", "failure", "timeout"] {
                hook_attempts.with_label_values(&[t, r]);
            }
        }
        ResponseMetrics {
            revocations,
            revocations_suppressed,
            hook_attempts,
            journal_pending,
            revocation_latency,
        }
    }
}
