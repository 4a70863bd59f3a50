//! Response: decide what to do about a finding, and do it safely.
//!
//! Sits after `detect`. [`Policy::decide`] applies the guardrails in order —
//! trace confidence, the revoke scope, protected patterns, whether an undo is
//! known, dry-run, whether a hook handles the grant's format, the hourly
//! budget — and says whether to execute a revocation. Executed revocations go
//! through the [`journal`] (intent written and fsynced before any hook runs) and
//! the [`Responder`], which calls the configured [`hook`]s that handle the
//! grant's input format (`formats`), with retries, and records the outcome. [`restore`] undoes one, through the restore hooks.
//!
//! One grant, one revocation: the idempotency key is `reachguard-revoke-<grant_id>`,
//! the journal accepts it once (across processes and restarts), and the
//! responder never runs two calls for one key at once.

pub mod decide;
pub mod hook;
pub mod journal;
pub mod metrics;
pub mod restore;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::detect::RevocationTarget;
use crate::event::GranteeType;
use crate::finding::{Action, ActionKind, ActionStatus, Finding};
use crate::format::Format;
use crate::model::Pattern;

pub use hook::{Hook, HookError, HookSpec};
pub use journal::Journal;
pub use metrics::ResponseMetrics;

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

/// Which traced grants are revoked (`[response] revoke`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevokeScope {
    /// Every privilege-increasing grant traced to unverified agent advice.
    #[default]
    Traced,
    /// Only those that also expand reach (`grant_expansion`); a grant whose
    /// expansion is not known is treated as expanding.
    TracedAndExpanding,
}

/// The policy's verdict on one revocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Call the hooks.
    Execute,
    /// Report only: dry-run mode or no hooks.
    DryRun,
    /// A guardrail held it back: which one, and a sentence saying why.
    Suppressed(Suppression, String),
    /// Nothing can carry it out: [`ActionStatus::NoUndo`] (the record does not
    /// say how to undo exactly this grant) or [`ActionStatus::Unhandled`] (no
    /// hook handles its format), and a sentence saying why.
    Unhandled(ActionStatus, String),
}

/// Why a revocation was held back: a small fixed set, the `reason` label of
/// `reachguard_revocations_suppressed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suppression {
    /// The trace's confidence is below `min_confidence`.
    Confidence,
    /// `revoke = "traced-and-expanding"` and the grant does not expand reach.
    Scope,
    /// A grantee, group, member or resource matches a protected pattern.
    Protected,
    /// The hourly revocation budget is spent.
    Budget,
    /// The grant already has a revocation journaled (for another finding).
    Duplicate,
}

impl Suppression {
    /// Every reason, for pre-creating metric label values.
    pub const ALL: [Suppression; 5] = [
        Suppression::Confidence,
        Suppression::Scope,
        Suppression::Protected,
        Suppression::Budget,
        Suppression::Duplicate,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Suppression::Confidence => "confidence",
            Suppression::Scope => "scope",
            Suppression::Protected => "protected",
            Suppression::Budget => "budget",
            Suppression::Duplicate => "duplicate",
        }
    }
}

/// The budget's window.
const HOUR: Duration = Duration::from_secs(3600);

/// The validated `[response]` settings (the file's keys are read by
/// [`crate::config`], which builds this).
#[derive(Debug, Clone)]
pub struct ResponseConfig {
    /// Enforce or dry-run.
    pub mode: Mode,
    /// Hourly budget.
    pub max_revocations_per_hour: u32,
    /// Never-touch patterns.
    pub protected: Vec<Pattern>,
    /// Least confidence to act on.
    pub min_confidence: f64,
    /// Hooks.
    pub hooks: Vec<HookSpec>,
    /// Which traced grants are revoked.
    pub revoke: RevokeScope,
    /// Hooks that undo a revocation (`reachguard restore`).
    pub restore_hooks: Vec<HookSpec>,
}

/// The guardrails.
#[derive(Debug)]
pub struct Policy {
    mode: Mode,
    scope: RevokeScope,
    min_confidence: f64,
    protected: Vec<Pattern>,
    max_per_hour: u32,
    have_hooks: bool,
    /// The `formats` of each revocation hook (`None`: every format).
    routes: Vec<Option<Vec<Format>>>,
    /// When each unit of the rolling-hour budget spent in the last hour comes
    /// back (its execution plus an hour), oldest first. Kept as expiries rather
    /// than execution instants so that executions from before a restart can be
    /// loaded even when the monotonic clock started less than an hour ago.
    spent: VecDeque<Instant>,
}

impl Policy {
    /// A policy from the validated `[response]` settings.
    pub fn from_config(r: &ResponseConfig, have_hooks: bool) -> Self {
        let mut p = Policy::new(
            r.mode,
            r.min_confidence,
            r.protected.clone(),
            r.max_revocations_per_hour,
            have_hooks,
        );
        p.scope = r.revoke;
        p.routes = r
            .hooks
            .iter()
            .map(|h| h.formats().map(<[Format]>::to_vec))
            .collect();
        p
    }

    /// Routes revocations by input format: one entry per hook, its `formats`
    /// (`None`: every format). Without routes every hook handles everything.
    pub fn with_routes(mut self, routes: Vec<Option<Vec<Format>>>) -> Self {
        self.routes = routes;
        self
    }

    /// Whether some hook handles grants read in `format`.
    fn routed(&self, format: Format) -> bool {
        self.routes.is_empty()
            || self
                .routes
                .iter()
                .any(|r| r.as_ref().is_none_or(|f| f.contains(&format)))
    }

    /// Sets which traced grants are revoked.
    pub fn with_scope(mut self, scope: RevokeScope) -> Self {
        self.scope = scope;
        self
    }

    /// Charges the budget with executions that happened `ages` ago (from the
    /// journal, on start), so a restart does not refill it. Ages of an hour or
    /// more are ignored.
    pub fn charge_past(&mut self, ages: impl IntoIterator<Item = Duration>, now: Instant) {
        let mut all: Vec<Instant> = self.spent.drain(..).collect();
        all.extend(
            ages.into_iter()
                .filter(|a| *a < HOUR)
                .map(|a| now + (HOUR - a)),
        );
        all.sort();
        self.spent = all.into();
    }

    /// Charges the budget with the revocations `journal` shows were decided
    /// in the last hour (by wall-clock time).
    pub fn charge_from_journal(&mut self, journal: &Journal) {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let hour_ms = HOUR.as_millis() as i64;
        let ages = journal
            .intents_since(now_ms - hour_ms)
            .into_iter()
            .map(|at| Duration::from_millis(now_ms.saturating_sub(at).max(0) as u64));
        self.charge_past(ages, Instant::now());
    }

    /// Units of the hourly budget spent as of `now`.
    pub fn spent(&mut self, now: Instant) -> usize {
        while self.spent.front().is_some_and(|t| *t <= now) {
            self.spent.pop_front();
        }
        self.spent.len()
    }

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
            scope: RevokeScope::Traced,
            min_confidence,
            protected,
            max_per_hour,
            have_hooks,
            routes: Vec::new(),
            spent: VecDeque::new(),
        }
    }

    /// Decides about `target` at wall-clock `now`. An `Execute` verdict uses one
    /// unit of the hourly budget.
    pub fn decide(&mut self, target: &RevocationTarget, now: Instant) -> Decision {
        if target.confidence < self.min_confidence {
            return Decision::Suppressed(
                Suppression::Confidence,
                format!(
                    "trace confidence {:.2} is below min_confidence {:.2}",
                    target.confidence, self.min_confidence
                ),
            );
        }
        if self.scope == RevokeScope::TracedAndExpanding && target.expands == Some(false) {
            return Decision::Suppressed(
                Suppression::Scope,
                "the grant does not expand reach (revoke = \"traced-and-expanding\")".into(),
            );
        }
        let names = [
            &target.grantee,
            &target.group,
            &target.member,
            &target.resource,
        ];
        for name in names.into_iter().flatten() {
            if let Some(p) = self.protected.iter().find(|p| p.matches(name)) {
                return Decision::Suppressed(
                    Suppression::Protected,
                    format!("{name} is protected (pattern {:?})", p.as_str()),
                );
            }
        }
        if let Some(why) = target.undo.as_ref().and_then(|u| u.no_undo_reason()) {
            return Decision::Unhandled(ActionStatus::NoUndo, format!("no undo known: {why}"));
        }
        if self.mode == Mode::DryRun || !self.have_hooks {
            return Decision::DryRun;
        }
        if !self.routed(target.format) {
            return Decision::Unhandled(
                ActionStatus::Unhandled,
                format!(
                    "no [[response.hooks]] entry handles format {:?} (see its `formats`)",
                    target.format.as_str()
                ),
            );
        }
        let spent = self.spent(now);
        if spent >= self.max_per_hour as usize {
            return Decision::Suppressed(
                Suppression::Budget,
                format!(
                    "revocation budget exhausted ({spent} in the last hour, max_revocations_per_hour = {})",
                    self.max_per_hour
                ),
            );
        }
        self.spent.push_back(now + HOUR);
        Decision::Execute
    }
}

/// The stable idempotency key of a revocation: one per grant, whatever finding
/// asks for it and however often.
pub fn idempotency_key(target: &RevocationTarget) -> String {
    revoke_key(&target.grant_id)
}

/// The journal key of the revocation of `grant_id`.
pub fn revoke_key(grant_id: &str) -> String {
    format!("reachguard-revoke-{grant_id}")
}

/// What becomes of a finding whose revocation key is already journaled under
/// `entry`. The same finding again (its line processed again after a restart)
/// is `None`: the journaled job writes it. Another finding about the same grant
/// is written with `status: "suppressed"` and says why: the grant gets one
/// revocation, however many findings point at it, and a restored grant is not
/// revoked again.
pub fn already_journaled(entry: &journal::Entry, finding: Finding) -> Option<Finding> {
    use decide::Intents;
    if entry.finding.finding_id == finding.finding_id {
        return None;
    }
    Some(decide::suppress_duplicate(
        finding,
        &entry.finding.finding_id,
        &decide::Journaled::state(entry),
    ))
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
    /// Who asked (restores only, extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// The input format the grant was read in (hooks are routed by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// Exactly what to undo, per vendor (README, "Hooks"); absent for native
    /// events, whose hooks work from the fields above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<crate::undo::Target>,
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
            requested_by: None,
            format: Some(target.format),
            target: target.undo.as_deref().cloned(),
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

/// The `format` of a serialized payload; `None` for payloads journaled before
/// payloads named it (every hook handles those).
pub fn payload_format(body: &[u8]) -> Option<Format> {
    #[derive(Deserialize)]
    struct Routed {
        format: Option<Format>,
    }
    serde_json::from_slice::<Routed>(body).ok()?.format
}

/// Calls every hook that handles the payload's format; executed only if all
/// succeed, unhandled if none handles it.
pub async fn run_hooks(
    hooks: &[Hook],
    body: &[u8],
    key: &str,
) -> (ActionStatus, u32, Option<String>) {
    let mut attempts = 0;
    let mut errors = Vec::new();
    let format = payload_format(body);
    let routed: Vec<&Hook> = hooks
        .iter()
        .filter(|h| format.is_none_or(|f| h.handles(f)))
        .collect();
    if routed.is_empty() {
        let f = format.map_or("unknown", Format::as_str);
        return (
            ActionStatus::Unhandled,
            0,
            Some(format!("no configured hook handles format {f:?}")),
        );
    }
    for h in routed {
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

/// At most this many revocations run their hooks at once; more wait in the
/// job channel (and so slow ingestion rather than grow memory).
const MAX_CONCURRENT: usize = 32;

/// Carries out journaled revocations concurrently and reports each outcome.
pub struct Responder {
    hooks: Arc<Vec<Hook>>,
    journal: Arc<Mutex<Journal>>,
}

impl Responder {
    /// A responder over the hooks (each counting its attempts: see
    /// [`Hook::with_attempts_metric`]) and the shared journal.
    pub fn new(hooks: Vec<Hook>, journal: Arc<Mutex<Journal>>) -> Self {
        Responder {
            hooks: Arc::new(hooks),
            journal,
        }
    }

    /// Runs until `jobs` closes and every started job has finished. Each job is
    /// its own task, so different grants are revoked concurrently. The pipeline
    /// sends a key at most once (the journal refuses a second intent); should a
    /// key arrive while its hooks are still running, it is dropped, so no grant
    /// ever has two calls in flight.
    pub async fn run(self, mut jobs: mpsc::Receiver<Job>, done: mpsc::Sender<Completed>) {
        let mut tasks = tokio::task::JoinSet::new();
        let mut in_flight: HashSet<String> = HashSet::new();
        let mut keys: HashMap<tokio::task::Id, String> = HashMap::new();
        loop {
            tokio::select! {
                job = jobs.recv(), if tasks.len() < MAX_CONCURRENT => {
                    let Some(job) = job else { break };
                    if !in_flight.insert(job.key.clone()) {
                        tracing::error!(key = %job.key, "revocation already in flight; not calling its hooks twice at once");
                        continue;
                    }
                    let hooks = Arc::clone(&self.hooks);
                    let journal = Arc::clone(&self.journal);
                    let done = done.clone();
                    let key = job.key.clone();
                    let task = tasks.spawn(async move {
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
                    keys.insert(task.id(), key);
                }
                Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let id = match joined {
                        Ok((id, ())) => id,
                        Err(e) => {
                            tracing::error!(error = %e, "a revocation task failed; its intent stays journaled and resumes on restart");
                            e.id()
                        }
                    };
                    if let Some(key) = keys.remove(&id) {
                        in_flight.remove(&key);
                    }
                }
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
            expands: None,
            undo: None,
            format: Format::Native,
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
            matches!(p.decide(&target("bob", 0.6), now), Decision::Suppressed(Suppression::Confidence, r) if r.contains("min_confidence"))
        );
        assert!(
            matches!(p.decide(&target("breakglass-1", 1.0), now), Decision::Suppressed(Suppression::Protected, r) if r.contains("protected"))
        );
        assert_eq!(p.decide(&target("bob", 0.9), now), Decision::Execute);
        assert_eq!(p.decide(&target("bob", 0.9), now), Decision::Execute);
        assert!(
            matches!(p.decide(&target("bob", 0.9), now), Decision::Suppressed(Suppression::Budget, r) if r.contains("budget"))
        );
        assert_eq!(
            p.decide(&target("bob", 0.9), now + Duration::from_secs(3600)),
            Decision::Execute
        );
    }

    #[test]
    fn the_budget_is_charged_with_executions_from_before_a_restart() {
        let now = Instant::now();
        let mut p = Policy::new(Mode::Enforce, 0.0, vec![], 3, true);
        // Two in the last hour (one 59 minutes ago), one older than an hour.
        p.charge_past(
            [
                Duration::from_secs(59 * 60),
                Duration::from_secs(10),
                Duration::from_secs(3600),
            ],
            now,
        );
        assert_eq!(p.spent(now), 2);
        assert_eq!(p.decide(&target("bob", 1.0), now), Decision::Execute);
        assert!(
            matches!(p.decide(&target("bob", 1.0), now), Decision::Suppressed(Suppression::Budget, r) if r.contains("3 in the last hour"))
        );
        // The one from 59 minutes ago comes back a minute later.
        let later = now + Duration::from_secs(60);
        assert_eq!(p.spent(later), 2);
        assert_eq!(p.decide(&target("bob", 1.0), later), Decision::Execute);
    }

    #[test]
    fn traced_and_expanding_spares_only_grants_known_not_to_expand() {
        let now = Instant::now();
        let mut p = Policy::new(Mode::Enforce, 0.0, vec![], 10, true)
            .with_scope(RevokeScope::TracedAndExpanding);
        let mut t = target("bob", 1.0);
        t.expands = Some(false);
        assert!(
            matches!(p.decide(&t, now), Decision::Suppressed(Suppression::Scope, r) if r.contains("does not expand"))
        );
        t.expands = None;
        assert_eq!(
            p.decide(&t, now),
            Decision::Execute,
            "unknown counts as expanding"
        );
        t.expands = Some(true);
        assert_eq!(p.decide(&t, now), Decision::Execute);
        let mut traced = Policy::new(Mode::Enforce, 0.0, vec![], 10, true);
        t.expands = Some(false);
        assert_eq!(
            traced.decide(&t, now),
            Decision::Execute,
            "the default revokes every traced grant"
        );
    }

    #[test]
    fn protected_patterns_cover_grantees_groups_members_and_resources() {
        let now = Instant::now();
        let mut p = Policy::new(
            Mode::Enforce,
            0.0,
            vec![
                Pattern::new("breakglass-*").unwrap(),
                Pattern::new("sre-core").unwrap(),
                Pattern::new("acl/payroll*").unwrap(),
            ],
            10,
            true,
        );
        let mut t = target("alice", 1.0);
        t.resource = Some("acl/payroll-db".into());
        assert!(
            matches!(p.decide(&t, now), Decision::Suppressed(Suppression::Protected, r) if r.contains("acl/payroll-db is protected"))
        );
        let m = RevocationTarget {
            kind: TargetKind::Membership,
            grant_id: "m".into(),
            resource: None,
            grantee: None,
            grantee_type: None,
            group: Some("sre-core".into()),
            member: Some("dave".into()),
            confidence: 1.0,
            expands: None,
            undo: None,
            format: Format::Native,
        };
        assert!(
            matches!(p.decide(&m, now), Decision::Suppressed(Suppression::Protected, r) if r.contains("sre-core is protected"))
        );
        let mut m2 = m.clone();
        m2.group = Some("sre".into());
        m2.member = Some("breakglass-ops".into());
        assert!(
            matches!(p.decide(&m2, now), Decision::Suppressed(Suppression::Protected, r) if r.contains("breakglass-ops"))
        );
        assert_eq!(p.spent(now), 0, "suppressed decisions spend no budget");
    }

    #[test]
    fn a_second_finding_for_a_journaled_grant_is_suppressed_and_the_same_one_dropped() {
        let f = |id: &str| Finding {
            finding_id: id.into(),
            kind: crate::finding::FindingKind::UnverifiedAgentGrant,
            severity: crate::finding::Severity::High,
            ts: crate::event::Ts(0),
            principals: vec![],
            grant_id: Some("g1".into()),
            advice_id: None,
            resource: None,
            score: 1.0,
            summary: "s".into(),
            evidence: serde_json::Value::Null,
            action: None,
        };
        let mut entry = journal::Entry {
            payload: serde_json::json!({}),
            finding: f("rg-first"),
            intent_at: 0,
            read_at: None,
            outcome: Some(ActionStatus::Executed),
            done: Some((1, 1)),
            restore: None,
        };
        assert_eq!(already_journaled(&entry, f("rg-first")), None);
        let other = already_journaled(&entry, f("rg-second")).unwrap();
        let a = other.action.unwrap();
        assert_eq!(a.status, ActionStatus::Suppressed);
        assert_eq!(a.grant_id, "g1");
        assert!(
            a.reason
                .as_deref()
                .unwrap()
                .contains("already revoked (executed) for finding rg-first")
        );
        entry.restore = Some(journal::Restore {
            key: "r".into(),
            payload: serde_json::json!({}),
            requester: journal::Requester {
                os_user: "root".into(),
                uid: Some(0),
                by: Some("alice".into()),
            },
            reason: None,
            at: 0,
            outcome: Some(ActionStatus::Executed),
        });
        let after_restore = already_journaled(&entry, f("rg-third")).unwrap();
        assert!(
            after_restore
                .action
                .unwrap()
                .reason
                .unwrap()
                .contains("since restored by alice")
        );
    }

    #[tokio::test]
    async fn different_grants_run_concurrently_and_one_key_never_twice_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let calls = dir.path().join("calls");
        // Each call records its key, then waits until two calls have started:
        // run one after the other, the first would wait forever (and time out).
        let script = format!(
            "echo \"$REACHGUARD_IDEMPOTENCY_KEY\" >> {c}; while [ \"$(wc -l < {c})\" -lt 2 ]; do sleep 0.01; done",
            c = calls.display()
        );
        let hook = Hook::new(HookSpec::Exec {
            command: vec!["sh".into(), "-c".into(), script],
            timeout: Duration::from_secs(20),
            max_attempts: 1,
            formats: None,
        })
        .unwrap();
        let metrics = crate::metrics::Metrics::new(&[]);
        let hook = hook.with_attempts_metric(metrics.response.hook_attempts.clone());
        let journal = Arc::new(Mutex::new(
            Journal::open(&dir.path().join("actions.jsonl")).unwrap(),
        ));
        let responder = Responder::new(vec![hook], Arc::clone(&journal));
        let (job_tx, job_rx) = mpsc::channel(8);
        let (done_tx, mut done_rx) = mpsc::channel(8);
        let run = tokio::spawn(responder.run(job_rx, done_tx));
        let job = |key: &str| Job {
            key: key.into(),
            body: b"{}".to_vec(),
            finding: Finding {
                finding_id: format!("f-{key}"),
                kind: crate::finding::FindingKind::UnverifiedAgentGrant,
                severity: crate::finding::Severity::High,
                ts: crate::event::Ts(0),
                principals: vec![],
                grant_id: Some(key.into()),
                advice_id: None,
                resource: None,
                score: 1.0,
                summary: String::new(),
                evidence: serde_json::Value::Null,
                action: None,
            },
            read_at: None,
        };
        for key in ["k1", "k1", "k2"] {
            job_tx.send(job(key)).await.unwrap();
        }
        drop(job_tx);
        let mut finished = Vec::new();
        while let Some(c) = done_rx.recv().await {
            assert_eq!(c.status, ActionStatus::Executed, "{:?}", c.finding.action);
            finished.push(c.finding.finding_id);
        }
        run.await.unwrap();
        finished.sort();
        assert_eq!(finished, ["f-k1", "f-k2"]);
        let mut started: Vec<String> = std::fs::read_to_string(&calls)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        started.sort();
        assert_eq!(started, ["k1", "k2"], "k1 was not called a second time");
        assert_eq!(
            metrics
                .response
                .hook_attempts
                .with_label_values(&["exec", "success"])
                .get(),
            2
        );
    }

    #[test]
    fn no_undo_and_unhandled_spend_no_budget_and_come_after_the_guardrails() {
        let now = Instant::now();
        let mut p = Policy::new(
            Mode::Enforce,
            0.5,
            vec![Pattern::new("breakglass-*").unwrap()],
            1,
            true,
        )
        .with_routes(vec![Some(vec![Format::K8sAudit])]);
        let mut t = target("bob", 1.0);
        t.format = Format::Cloudtrail;
        t.undo = crate::undo::Target::no_undo("logged whole");
        assert!(
            matches!(p.decide(&t, now), Decision::Unhandled(ActionStatus::NoUndo, r) if r == "no undo known: logged whole")
        );
        let mut low = t.clone();
        low.confidence = 0.1;
        assert!(matches!(
            p.decide(&low, now),
            Decision::Suppressed(Suppression::Confidence, _)
        ));
        t.undo = None;
        assert!(
            matches!(p.decide(&t, now), Decision::Unhandled(ActionStatus::Unhandled, r) if r.contains("\"cloudtrail\""))
        );
        assert_eq!(p.spent(now), 0);
        t.format = Format::K8sAudit;
        assert_eq!(p.decide(&t, now), Decision::Execute);
        let mut dry = Policy::new(Mode::DryRun, 0.0, vec![], 1, true)
            .with_routes(vec![Some(vec![Format::K8sAudit])]);
        t.format = Format::Cloudtrail;
        assert_eq!(
            dry.decide(&t, now),
            Decision::DryRun,
            "dry-run reports what would be decided, whatever the routes"
        );
    }

    #[tokio::test]
    async fn hooks_are_called_for_the_formats_they_handle_and_old_payloads_go_to_all() {
        let dir = tempfile::tempdir().unwrap();
        let calls = dir.path().join("calls");
        let hook = |name: &str, formats: Option<Vec<Format>>| {
            Hook::new(HookSpec::Exec {
                command: vec![
                    "sh".into(),
                    "-c".into(),
                    format!("echo {name} >> {}", calls.display()),
                ],
                timeout: Duration::from_secs(10),
                max_attempts: 1,
                formats,
            })
            .unwrap()
        };
        let hooks = [
            hook("aws", Some(vec![Format::Cloudtrail])),
            hook("k8s", Some(vec![Format::K8sAudit, Format::GcpAudit])),
        ];
        let called = || std::fs::read_to_string(&calls).unwrap_or_default();
        let (status, attempts, _) =
            run_hooks(&hooks, br#"{"action":"restore","format":"gcp-audit"}"#, "k").await;
        assert_eq!((status, attempts), (ActionStatus::Executed, 1));
        assert_eq!(called(), "k8s\n");
        let (status, attempts, reason) =
            run_hooks(&hooks, br#"{"action":"revoke","format":"okta"}"#, "k").await;
        assert_eq!((status, attempts), (ActionStatus::Unhandled, 0));
        assert!(reason.unwrap().contains("\"okta\""));
        // Journaled before payloads named their format: every hook.
        std::fs::remove_file(&calls).unwrap();
        let (status, _, _) = run_hooks(&hooks, br#"{"action":"restore"}"#, "k").await;
        assert_eq!(status, ActionStatus::Executed);
        assert_eq!(called(), "aws\nk8s\n");
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
            expands: None,
            undo: None,
            format: Format::Native,
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
                "idempotency_key":"reachguard-revoke-membership:sre:dave","format":"native"})
        );
    }
}
