//! Findings: what detection reports, in the JSON shape DESIGN.md fixes.
//!
//! Produced by `detect`, completed by `respond` (which fills in `action`), and
//! written by the outputs (stdout of `replay`, the findings file and
//! `/api/findings` of `run`).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::Ts;

/// The kinds of finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A privilege-increasing grant traced to agent advice no human verified first.
    UnverifiedAgentGrant,
    /// An agent published advice where others can see it, unverified.
    UnreviewedAgentPublish,
    /// An engineer's exercised reach grew far beyond their own and their peers' normal.
    ReachExpansion,
    /// A grant or membership add opened resources new to the engineers it affects.
    GrantExpansion,
}

impl FindingKind {
    /// The wire name, also the `kind` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::UnverifiedAgentGrant => "unverified_agent_grant",
            FindingKind::UnreviewedAgentPublish => "unreviewed_agent_publish",
            FindingKind::ReachExpansion => "reach_expansion",
            FindingKind::GrantExpansion => "grant_expansion",
        }
    }
}

/// How bad it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Worth a look today.
    Medium,
    /// Worth a look now.
    High,
    /// Page someone.
    Critical,
}

impl Severity {
    /// The wire name, also the `severity` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// What was done about a finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// Always `revoke` for now.
    pub kind: ActionKind,
    /// The grant acted on.
    pub grant_id: String,
    /// The outcome.
    pub status: ActionStatus,
    /// Why it was not executed, when it was not (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The kinds of action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Take the grant back.
    Revoke,
}

/// The outcome of an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Every hook succeeded.
    Executed,
    /// Decided, but dry-run mode (or no hook) meant nothing was called.
    DryRun,
    /// Decided, but a guardrail (budget, protected pattern, confidence) held it back.
    Suppressed,
    /// A hook kept failing.
    Failed,
    /// Not attempted: the grant's record does not say how to undo exactly it
    /// (the reason says why).
    NoUndo,
    /// Not attempted: hooks are configured, but none handles the grant's
    /// input format (`formats` of `[[response.hooks]]`).
    Unhandled,
}

impl ActionStatus {
    /// The wire name, also the `status` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Executed => "executed",
            ActionStatus::DryRun => "dry_run",
            ActionStatus::Suppressed => "suppressed",
            ActionStatus::Failed => "failed",
            ActionStatus::NoUndo => "no_undo",
            ActionStatus::Unhandled => "unhandled",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable id: the same trigger always yields the same id, so re-processing a
    /// line after a crash cannot report it twice.
    pub finding_id: String,
    /// What was found.
    pub kind: FindingKind,
    /// How bad.
    pub severity: Severity,
    /// Event time of the triggering event.
    pub ts: Ts,
    /// The engineers affected.
    pub principals: Vec<String>,
    /// The grant involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    /// The advice involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice_id: Option<String>,
    /// The resource involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Higher is worse; comparable within a kind.
    pub score: f64,
    /// One sentence a person understands.
    pub summary: String,
    /// The events, numbers and chain behind it.
    pub evidence: serde_json::Value,
    /// What was done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
}

/// A stable id from the finding's kind and what triggered it.
pub fn finding_id(kind: FindingKind, key: &str) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_str().as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    format!("rg-{}", hex::encode(&digest[..8]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct_per_kind_and_key() {
        let a = finding_id(FindingKind::UnverifiedAgentGrant, "g-1");
        assert_eq!(a, finding_id(FindingKind::UnverifiedAgentGrant, "g-1"));
        assert_ne!(a, finding_id(FindingKind::UnreviewedAgentPublish, "g-1"));
        assert_ne!(a, finding_id(FindingKind::UnverifiedAgentGrant, "g-2"));
        assert_eq!(a.len(), 3 + 16);
    }

    #[test]
    fn action_status_serialises_as_the_contract_says() {
        let a = Action {
            kind: ActionKind::Revoke,
            grant_id: "g".into(),
            status: ActionStatus::DryRun,
            reason: None,
        };
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"kind":"revoke","grant_id":"g","status":"dry_run"}"#
        );
    }
}
