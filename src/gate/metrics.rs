//! The gates' metric: `reachguard_gate_decisions_total{gate,decision}`, every
//! answer a gate gave (a contract with dashboards and alert rules).
//!
//! Registered by [`GateMetrics::register`] on the process's one registry, like
//! the response stage's ([`crate::respond::ResponseMetrics`]), with every
//! gate and decision pre-created at zero so alerts and `rate()` work from the
//! first scrape.

use prometheus::{IntCounterVec, Opts, Registry};

use super::{Decision, GateKind};

/// The gates' metrics (cheap to clone; clones share the series).
#[derive(Debug, Clone)]
pub struct GateMetrics {
    /// `reachguard_gate_decisions_total{gate,decision}`.
    pub decisions: IntCounterVec,
}

impl GateMetrics {
    /// Registers the gates' metrics on `registry`, every label pair at zero.
    pub fn register(registry: &Registry) -> GateMetrics {
        let decisions = IntCounterVec::new(
            Opts::new(
                "reachguard_gate_decisions_total",
                "Answers to proposed privilege changes, by gate (api, k8s, claude-code) and decision (allow, ask, deny).",
            ),
            &["gate", "decision"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(decisions.clone()))
            .expect("unique metric");
        for g in GateKind::ALL {
            for d in Decision::ALL {
                decisions.with_label_values(&[g.as_str(), d.as_str()]);
            }
        }
        GateMetrics { decisions }
    }

    /// Counts one answer.
    pub fn count(&self, gate: GateKind, decision: Decision) {
        self.decisions
            .with_label_values(&[gate.as_str(), decision.as_str()])
            .inc();
    }
}
