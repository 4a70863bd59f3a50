//! The response stage's metrics: revocation decisions and outcomes, what the
//! guardrails held back, hook attempts and the journal's backlog.
//!
//! Registered by [`ResponseMetrics::register`] on the process's one registry
//! ([`crate::metrics::Metrics`] assembles every stage's), so that the labels
//! only this stage knows ([`Suppression`], hook types) are pre-created here,
//! at zero, for alerts and `rate()` to work from the first scrape. The names
//! are a contract (DESIGN.md, "Metrics").

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

use super::Suppression;
use crate::finding::ActionStatus;

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
        }
    }
}
