//! The response path of one detection, shared by the single-node pipeline
//! and the cluster's partition workers.
//!
//! Both do the same thing in the same order: look the grant's idempotency key
//! up among the revocations already recorded; ask the [`Policy`] (and, in a
//! cluster, the cluster-wide budget); record the intent durably before any
//! hook may run; and settle every other finding with its action set and
//! counted. Only where the records live differs — the action journal on a
//! single node, the revocations bucket in a cluster — and that is what an
//! [`Intents`] store supplies. The outcome of the hooks is counted by
//! [`count_outcome`], also for both.
//!
//! [`Policy`]: super::Policy

use super::ResponseMetrics;
use crate::detect::RevocationTarget;
use crate::finding::{ActionStatus, Finding};

use super::{Decision, Payload, Suppression, idempotency_key, set_action};

/// Why a store could not record or read an intent.
#[derive(Debug)]
pub(crate) enum StoreError {
    /// The records cannot be reached or written: the finding is reported as
    /// failed, and no hook runs (a crash could otherwise repeat or lose the
    /// revocation).
    Unavailable(String),
    /// The records contradict themselves; the caller stops.
    Fatal(String),
}

/// What recording an intent found.
pub(crate) enum Created<I, R> {
    /// This call recorded it: run the hooks.
    Mine(I),
    /// Somebody recorded the key first (another process or instance).
    Exists(R),
}

/// Where revocation intents are recorded: one record per idempotency key.
///
/// The single node's journal answers at once (its futures never wait); the
/// cluster's bucket is across the network.
pub(crate) trait Intents {
    /// An intent this store just recorded, as the caller hands it to the hooks.
    type Intent;
    /// A record found already there.
    type Record;
    /// What a failure to reach the records is reported as in findings.
    const UNAVAILABLE: &'static str;

    /// The record of `key`, if any.
    async fn get(&mut self, key: &str) -> Result<Option<Self::Record>, StoreError>;
    /// The response policy's decision on a target with no record yet.
    fn decide(&mut self, target: &RevocationTarget) -> Decision;
    /// Spends from a budget kept outside the policy (the cluster's); a
    /// decision replaces `Execute` when there is none left.
    async fn spend(&mut self) -> Result<Option<Decision>, StoreError> {
        Ok(None)
    }
    /// Records the intent to revoke under `key` unless the key already has
    /// a record.
    async fn create(
        &mut self,
        key: &str,
        payload: serde_json::Value,
        finding: &Finding,
    ) -> Result<Created<Self::Intent, Self::Record>, StoreError>;
    /// The finding a record was made for.
    fn finding_id(record: &Self::Record) -> &str;
    /// Where a record stands, as the end of "grant already …".
    fn state(record: &Self::Record) -> String;
}

/// What becomes of a finding that names a revocation target.
// Built once per finding and taken apart at once: boxing the finding would
// cost an allocation for nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Response<I, R> {
    /// Final as it is (dry run, suppressed, unhandled, or its intent could
    /// not be recorded): write it out.
    Final(Finding),
    /// Its intent is recorded by this call: run the hooks.
    Execute(I),
    /// The same finding's intent was recorded before (its event processed
    /// again after a restart or a takeover): whoever finishes that record
    /// writes the finding.
    Recorded(R),
}

/// Decides and records the response to `finding` about `target`.
/// `Err` only for [`StoreError::Fatal`].
pub(crate) async fn respond<S: Intents>(
    store: &mut S,
    mut finding: Finding,
    target: &RevocationTarget,
    metrics: &ResponseMetrics,
) -> Result<Response<S::Intent, S::Record>, String> {
    let key = idempotency_key(target);
    let unavailable = |f: Finding, e: String| -> Result<Response<S::Intent, S::Record>, String> {
        Ok(Response::Final(unrecorded::<S>(
            f, target, &key, e, metrics,
        )))
    };
    match store.get(&key).await {
        Ok(Some(r)) => return Ok(existing::<S>(r, finding, metrics)),
        Ok(None) => {}
        Err(StoreError::Unavailable(e)) => return unavailable(finding, e),
        Err(StoreError::Fatal(e)) => return Err(e),
    }
    let mut decision = store.decide(target);
    if decision == Decision::Execute {
        match store.spend().await {
            Ok(None) => {}
            Ok(Some(d)) => decision = d,
            Err(StoreError::Unavailable(e)) => {
                return unavailable(finding, format!("revocation budget: {e}"));
            }
            Err(StoreError::Fatal(e)) => return Err(e),
        }
    }
    tracing::info!(finding = %finding.finding_id, grant = %target.grant_id, ?decision, "{}", finding.summary);
    let status = match decision {
        Decision::Execute => {
            let payload = Payload::revoke(target, &finding);
            let value = serde_json::to_value(&payload).expect("payload serialises");
            return match store.create(&key, value, &finding).await {
                Ok(Created::Mine(i)) => Ok(Response::Execute(i)),
                Ok(Created::Exists(r)) => Ok(existing::<S>(r, finding, metrics)),
                Err(StoreError::Unavailable(e)) => unavailable(finding, e),
                Err(StoreError::Fatal(e)) => Err(e),
            };
        }
        Decision::DryRun => {
            set_action(&mut finding, &target.grant_id, ActionStatus::DryRun, None);
            ActionStatus::DryRun
        }
        Decision::Suppressed(why, reason) => {
            tracing::warn!(grant = %target.grant_id, %reason, "revocation suppressed");
            count_suppressed(metrics, why);
            set_action(
                &mut finding,
                &target.grant_id,
                ActionStatus::Suppressed,
                Some(reason),
            );
            ActionStatus::Suppressed
        }
        Decision::Unhandled(status, reason) => {
            tracing::warn!(grant = %target.grant_id, %reason, "revocation not attempted");
            set_action(&mut finding, &target.grant_id, status, Some(reason));
            status
        }
    };
    count(metrics, status);
    Ok(Response::Final(finding))
}

/// The grant already has a record: nothing to do for the same finding, a
/// duplicate suppression for another one.
fn existing<S: Intents>(
    record: S::Record,
    finding: Finding,
    metrics: &ResponseMetrics,
) -> Response<S::Intent, S::Record> {
    if S::finding_id(&record) == finding.finding_id {
        return Response::Recorded(record);
    }
    count_suppressed(metrics, Suppression::Duplicate);
    count(metrics, ActionStatus::Suppressed);
    Response::Final(suppress_duplicate(
        finding,
        S::finding_id(&record),
        &S::state(&record),
    ))
}

/// A finding whose intent could not be recorded: failed, and counted so.
fn unrecorded<S: Intents>(
    mut finding: Finding,
    target: &RevocationTarget,
    key: &str,
    e: String,
    metrics: &ResponseMetrics,
) -> Finding {
    tracing::error!(key = %key, error = %e, "{}; not executing the revocation", S::UNAVAILABLE);
    set_action(
        &mut finding,
        &target.grant_id,
        ActionStatus::Failed,
        Some(format!("{}: {e}", S::UNAVAILABLE)),
    );
    count(metrics, ActionStatus::Failed);
    finding
}

/// Another finding about a grant whose revocation is recorded for finding
/// `first`, which stands at `state`: written with `status: "suppressed"`
/// and saying why. The grant gets one revocation, however many findings
/// point at it, and a restored grant is not revoked again.
pub fn suppress_duplicate(mut finding: Finding, first: &str, state: &str) -> Finding {
    let grant_id = finding.grant_id.clone().unwrap_or_default();
    set_action(
        &mut finding,
        &grant_id,
        ActionStatus::Suppressed,
        Some(format!(
            "grant already {state} for finding {first}; one revocation per grant"
        )),
    );
    finding
}

fn count(metrics: &ResponseMetrics, status: ActionStatus) {
    metrics
        .revocations
        .with_label_values(&[status.as_str()])
        .inc();
}

fn count_suppressed(metrics: &ResponseMetrics, why: Suppression) {
    metrics
        .revocations_suppressed
        .with_label_values(&[why.as_str()])
        .inc();
}

/// Counts the outcome of a revocation's hooks, with the time since its line
/// was read (`latency`, seconds) when it was executed.
pub fn count_outcome(
    metrics: &ResponseMetrics,
    finding: &Finding,
    status: ActionStatus,
    latency: Option<f64>,
) {
    count(metrics, status);
    if status == ActionStatus::Executed {
        if let Some(secs) = latency {
            metrics.revocation_latency.observe(secs);
        }
        tracing::info!(grant = ?finding.grant_id, finding = %finding.finding_id, "revoked");
    }
}

/// The single node's store: the action journal (none in `replay`, which
/// records nothing) and the instance's policy, budget included.
pub(crate) struct Journaled<'a> {
    /// The journal, if any.
    pub journal: Option<&'a std::sync::Mutex<super::Journal>>,
    /// The policy.
    pub policy: &'a mut super::Policy,
    /// When the triggering line was read, carried to the job.
    pub read_at: Option<std::time::Instant>,
}

impl Intents for Journaled<'_> {
    type Intent = super::Job;
    type Record = super::journal::Entry;
    const UNAVAILABLE: &'static str = "action journal unwritable";

    async fn get(&mut self, key: &str) -> Result<Option<Self::Record>, StoreError> {
        Ok(self
            .journal
            .and_then(|j| j.lock().expect("journal lock").get(key).cloned()))
    }

    fn decide(&mut self, target: &RevocationTarget) -> Decision {
        self.policy.decide(target, std::time::Instant::now())
    }

    async fn create(
        &mut self,
        key: &str,
        payload: serde_json::Value,
        finding: &Finding,
    ) -> Result<Created<Self::Intent, Self::Record>, StoreError> {
        let body = serde_json::to_vec(&payload).expect("payload serialises");
        if let Some(j) = self.journal {
            let mut j = j.lock().expect("journal lock");
            // The read time on the wall clock, for the time from a grant to
            // its revocation on the incident page.
            let read_at = self.read_at.map(|at| {
                chrono::Utc::now().timestamp_millis()
                    - i64::try_from(at.elapsed().as_millis()).unwrap_or(i64::MAX)
            });
            match j.record_intent_read_at(key, payload, finding, read_at) {
                Ok(true) => {}
                // Journaled meanwhile by another process (the look-up saw
                // the journal as this process last read it).
                Ok(false) => {
                    let entry = j.get(key).cloned().ok_or_else(|| {
                        StoreError::Unavailable(format!("journal refused {key} but has no entry"))
                    })?;
                    return Ok(Created::Exists(entry));
                }
                Err(e) => return Err(StoreError::Unavailable(e.to_string())),
            }
        }
        Ok(Created::Mine(super::Job {
            key: key.to_owned(),
            body,
            finding: finding.clone(),
            read_at: self.read_at,
        }))
    }

    fn finding_id(record: &Self::Record) -> &str {
        &record.finding.finding_id
    }

    fn state(record: &Self::Record) -> String {
        match (&record.restore, record.outcome) {
            (Some(r), _) if r.outcome == Some(ActionStatus::Executed) => {
                format!("revoked and since restored by {}", r.requester.name())
            }
            (_, Some(s)) => format!("revoked ({})", s.as_str()),
            (_, None) => "being revoked".to_owned(),
        }
    }
}
