//! Response: decide what to do about a finding, and do it safely.
//!
//! Sits after `detect`. [`Policy::decide`] applies the guardrails in order —
//! trace confidence, protected patterns, dry-run, the hourly budget — and says
//! whether to execute a revocation. Executed revocations go through the
//! [`journal`] (intent written and fsynced before any hook runs) and the
//! [`Responder`], which calls every configured [`hook`] with retries and records
//! the outcome.

pub mod hook;
pub mod journal;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::detect::RevocationTarget;
use crate::event::GranteeType;
use crate::finding::{Action, ActionKind, ActionStatus, Finding};
use crate::model::Pattern;

pub use hook::{Hook, HookError, HookSpec};
pub use journal::Journal;

/// Whether revocations are carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Call the hooks.
    #[default]
    Enforce,
    /// Decide and report (`status: "dry_run"`), call nothing.
    DryRun,
}

/// The policy's verdict on one revocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Call the hooks.
    Execute,
    /// Report only: dry-run mode or no hooks.
    DryRun,
    /// A guardrail held it back; the reason says which.
    Suppressed(String),
}

/// The guardrails.
#[derive(Debug)]
pub struct Policy {
    mode: Mode,
    min_confidence: f64,
    protected: Vec<Pattern>,
    max_per_hour: u32,
    have_hooks: bool,
    /// Wall-clock instants of recent executions, for the rolling-hour budget.
    recent: VecDeque<Instant>,
}

impl Policy {
    /// A policy from the `[response]` settings.
    pub fn new(
        mode: Mode,
        min_confidence: f64,
        protected: Vec<Pattern>,
        max_per_hour: u32,
        have_hooks: bool,
    ) -> Self {
        Policy {
            mode,
            min_confidence,
            protected,
            max_per_hour,
            have_hooks,
            recent: VecDeque::new(),
        }
    }

    /// Decides about `target` at wall-clock `now`. An `Execute` verdict uses one
    /// unit of the hourly budget.
    pub fn decide(&mut self, target: &RevocationTarget, now: Instant) -> Decision {
        if target.confidence < self.min_confidence {
            return Decision::Suppressed(format!(
                "trace confidence {:.2} is below min_confidence {:.2}",
                target.confidence, self.min_confidence
            ));
        }
        let names = [
            &target.grantee,
            &target.group,
            &target.member,
            &target.resource,
        ];
        for name in names.into_iter().flatten() {
            if let Some(p) = self.protected.iter().find(|p| p.matches(name)) {
                return Decision::Suppressed(format!(
                    "{name} is protected (pattern {:?})",
                    p.as_str()
                ));
            }
        }
        if self.mode == Mode::DryRun || !self.have_hooks {
            return Decision::DryRun;
        }
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= Duration::from_secs(3600))
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.max_per_hour as usize {
            return Decision::Suppressed(format!(
                "revocation budget exhausted ({} in the last hour, max_revocations_per_hour = {})",
                self.recent.len(),
                self.max_per_hour
            ));
        }
        self.recent.push_back(now);
        Decision::Execute
    }
}

/// The stable idempotency key of a revocation: one per grant, whatever finding
/// asks for it and however often.
pub fn idempotency_key(target: &RevocationTarget) -> String {
    format!("reachguard-revoke-{}", target.grant_id)
}

/// The hook payload (DESIGN.md, "Response"); fields that do not apply are omitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// `revoke`.
    pub action: String,
    /// The grant.
    pub grant_id: String,
    /// `grant` or `membership`.
    pub kind: String,
    /// The resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The grantee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grantee: Option<String>,
    /// `user` or `group`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grantee_type: Option<GranteeType>,
    /// The group (memberships).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The member (memberships).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// The finding behind it.
    pub finding_id: String,
    /// The finding's summary.
    pub reason: String,
    /// Same as the `Idempotency-Key` header.
    pub idempotency_key: String,
}

impl Payload {
    /// The revocation payload for a finding's target.
    pub fn revoke(target: &RevocationTarget, finding: &Finding) -> Payload {
        Payload {
            action: "revoke".into(),
            grant_id: target.grant_id.clone(),
            kind: target.kind.as_str().into(),
            resource: target.resource.clone(),
            grantee: target.grantee.clone(),
            grantee_type: target.grantee_type,
            group: target.group.clone(),
            member: target.member.clone(),
            finding_id: finding.finding_id.clone(),
            reason: finding.summary.clone(),
            idempotency_key: idempotency_key(target),
        }
    }
}

/// Sets a finding's `action`.
pub fn set_action(
    finding: &mut Finding,
    grant_id: &str,
    status: ActionStatus,
    reason: Option<String>,
) {
    finding.action = Some(Action {
        kind: ActionKind::Revoke,
        grant_id: grant_id.to_owned(),
        status,
        reason,
    });
}

/// A revocation to carry out.
#[derive(Debug)]
pub struct Job {
    /// Idempotency key.
    pub key: String,
    /// Serialized payload.
    pub body: Vec<u8>,
    /// The finding (its action is set when the job completes).
    pub finding: Finding,
    /// When the triggering line was read, for the latency histogram.
    pub read_at: Option<Instant>,
}

/// A finished revocation.
#[derive(Debug)]
pub struct Completed {
    /// The finding with its final action.
    pub finding: Finding,
    /// When the triggering line was read.
    pub read_at: Option<Instant>,
    /// When the last hook succeeded (or gave up).
    pub finished_at: Instant,
    /// Executed or failed.
    pub status: ActionStatus,
}

/// Calls every hook for a payload; executed only if all succeed.
pub async fn run_hooks(
    hooks: &[Hook],
    body: &[u8],
    key: &str,
) -> (ActionStatus, u32, Option<String>) {
    let mut attempts = 0;
    let mut errors = Vec::new();
    for h in hooks {
        let (n, res) = h.call(body, key).await;
        attempts += n;
        if let Err(e) = res {
            tracing::error!(hook = %h.describe(), key, attempts = n, error = %e, "revocation hook failed for good");
            errors.push(format!("{}: {e}", h.describe()));
        }
    }
    if errors.is_empty() {
        (ActionStatus::Executed, attempts, None)
    } else {
        (ActionStatus::Failed, attempts, Some(errors.join("; ")))
    }
}

/// Carries out journaled revocations concurrently and reports each outcome.
pub struct Responder {
    hooks: Arc<Vec<Hook>>,
    journal: Arc<Mutex<Journal>>,
}

impl Responder {
    /// A responder over the hooks and the shared journal.
    pub fn new(hooks: Vec<Hook>, journal: Arc<Mutex<Journal>>) -> Self {
        Responder {
            hooks: Arc::new(hooks),
            journal,
        }
    }

    /// Runs until `jobs` closes and every started job has finished. Each job is
    /// its own task; the pipeline sends a key at most once (the journal refuses
    /// a second intent), so no grant has two calls in flight.
    pub async fn run(self, mut jobs: mpsc::Receiver<Job>, done: mpsc::Sender<Completed>) {
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                job = jobs.recv() => {
                    let Some(job) = job else { break };
                    let hooks = Arc::clone(&self.hooks);
                    let journal = Arc::clone(&self.journal);
                    let done = done.clone();
                    tasks.spawn(async move {
                        let (status, attempts, err) = run_hooks(&hooks, &job.body, &job.key).await;
                        let finished_at = Instant::now();
                        if let Err(e) = journal.lock().expect("journal lock").record_done(&job.key, status, attempts) {
                            // The intent stays pending and is retried on the next start;
                            // the receiver deduplicates on the idempotency key.
                            tracing::error!(key = %job.key, error = %e, "cannot journal a revocation outcome");
                        }
                        let mut finding = job.finding;
                        let grant_id = finding.grant_id.clone().unwrap_or_default();
                        set_action(&mut finding, &grant_id, status, err);
                        let _ = done.send(Completed { finding, read_at: job.read_at, finished_at, status }).await;
                    });
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        while tasks.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::TargetKind;

    fn target(grantee: &str, confidence: f64) -> RevocationTarget {
        RevocationTarget {
            kind: TargetKind::Grant,
            grant_id: "g1".into(),
            resource: Some("acl/tools".into()),
            grantee: Some(grantee.into()),
            grantee_type: Some(GranteeType::User),
            group: None,
            member: None,
            confidence,
        }
    }

    #[test]
    fn guardrails_apply_in_order() {
        let mut p = Policy::new(
            Mode::Enforce,
            0.7,
            vec![Pattern::new("breakglass-*").unwrap()],
            2,
            true,
        );
        let now = Instant::now();
        assert!(
            matches!(p.decide(&target("bob", 0.6), now), Decision::Suppressed(r) if r.contains("min_confidence"))
        );
        assert!(
            matches!(p.decide(&target("breakglass-1", 1.0), now), Decision::Suppressed(r) if r.contains("protected"))
        );
        assert_eq!(p.decide(&target("bob", 0.9), now), Decision::Execute);
        assert_eq!(p.decide(&target("bob", 0.9), now), Decision::Execute);
        assert!(
            matches!(p.decide(&target("bob", 0.9), now), Decision::Suppressed(r) if r.contains("budget"))
        );
        assert_eq!(
            p.decide(&target("bob", 0.9), now + Duration::from_secs(3600)),
            Decision::Execute
        );
    }

    #[test]
    fn dry_run_and_no_hooks_never_execute() {
        let now = Instant::now();
        assert_eq!(
            Policy::new(Mode::DryRun, 0.0, vec![], 5, true).decide(&target("bob", 1.0), now),
            Decision::DryRun
        );
        assert_eq!(
            Policy::new(Mode::Enforce, 0.0, vec![], 5, false).decide(&target("bob", 1.0), now),
            Decision::DryRun
        );
    }

    #[test]
    fn payload_omits_fields_that_do_not_apply() {
        let t = RevocationTarget {
            kind: TargetKind::Membership,
            grant_id: "membership:sre:dave".into(),
            resource: None,
            grantee: None,
            grantee_type: None,
            group: Some("sre".into()),
            member: Some("dave".into()),
            confidence: 1.0,
        };
        let f = Finding {
            finding_id: "rg-1".into(),
            kind: crate::finding::FindingKind::UnverifiedAgentGrant,
            severity: crate::finding::Severity::High,
            ts: crate::event::Ts(0),
            principals: vec!["dave".into()],
            grant_id: Some("membership:sre:dave".into()),
            advice_id: None,
            resource: None,
            score: 1.0,
            summary: "why".into(),
            evidence: serde_json::Value::Null,
            action: None,
        };
        let v = serde_json::to_value(Payload::revoke(&t, &f)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"action":"revoke","grant_id":"membership:sre:dave","kind":"membership",
                "group":"sre","member":"dave","finding_id":"rg-1","reason":"why",
                "idempotency_key":"reachguard-revoke-membership:sre:dave"})
        );
    }
}
