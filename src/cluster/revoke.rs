//! One revocation per grant across the cluster: the single-node action
//! journal's guarantees, kept in a JetStream key-value bucket.
//!
//! The record of a revocation lives under `revoke.<sha256 of its idempotency
//! key>` (the key, `reachguard-revoke-<grant_id>`, is inside). Its life:
//!
//! 1. **intent**: written with `create`, which succeeds for exactly one
//!    writer. Only the instance whose `create` succeeded calls the hooks, and
//!    it calls them only after the intent is stored, so a crash never loses a
//!    revocation (the intent is found and resumed) and no two instances both
//!    start one.
//! 2. **outcome**: written with `update` on the record's revision once the
//!    hooks have answered (executed or failed).
//! 3. **published**: the finding with its action is in the findings stream.
//!
//! An instance that takes a partition over resumes that partition's records
//! that stopped before 3 (calling the hooks again only when no outcome was
//! recorded, with the same `Idempotency-Key`, exactly as a restarted
//! single-node daemon resumes its journal).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::finding::{ActionStatus, Finding};
use crate::respond;

/// A revocation's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The idempotency key (`reachguard-revoke-<grant_id>`).
    pub key: String,
    /// The partition that decided it (its owner resumes it).
    pub partition: u32,
    /// The instance that wrote the intent.
    pub instance: String,
    /// When the intent was written (Unix milliseconds).
    pub intent_at_ms: i64,
    /// The hook payload.
    pub payload: serde_json::Value,
    /// The finding that asked for it (without its action).
    pub finding: Finding,
    /// The hooks' answer, once known.
    pub outcome: Option<Outcome>,
    /// Whether the finding with its action is in the findings stream.
    pub published: bool,
}

/// How the hooks answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Executed or failed.
    pub status: ActionStatus,
    /// Hook attempts made.
    pub attempts: u32,
    /// Why it failed.
    pub error: Option<String>,
    /// When (Unix milliseconds).
    pub at_ms: i64,
    /// The instance that called the hooks.
    pub instance: String,
}

/// The bucket key of an idempotency key (bucket keys allow few characters;
/// grant ids may hold any).
pub fn kv_key(idempotency_key: &str) -> String {
    format!("revoke.{}", hex::encode(Sha256::digest(idempotency_key)))
}

impl Record {
    /// A new intent.
    pub fn intent(
        key: String,
        partition: u32,
        instance: &str,
        payload: serde_json::Value,
        finding: Finding,
    ) -> Record {
        Record {
            key,
            partition,
            instance: instance.to_owned(),
            intent_at_ms: chrono::Utc::now().timestamp_millis(),
            payload,
            finding,
            outcome: None,
            published: false,
        }
    }

    /// The grant it revokes.
    pub fn grant_id(&self) -> String {
        self.finding.grant_id.clone().unwrap_or_default()
    }

    /// The finding with its action, once the outcome is known.
    pub fn finding_with_action(&self) -> Option<Finding> {
        let o = self.outcome.as_ref()?;
        let mut f = self.finding.clone();
        respond::set_action(&mut f, &self.grant_id(), o.status, o.error.clone());
        Some(f)
    }

    /// Another finding about the same grant: reported with `status:
    /// "suppressed"`, since a grant gets one revocation however many findings
    /// point at it (as `respond::already_journaled` does on a single node).
    pub fn suppress(&self, finding: Finding) -> Finding {
        respond::decide::suppress_duplicate(finding, &self.finding.finding_id, &self.state())
    }

    /// Where the revocation stands, as the end of "grant already …".
    pub fn state(&self) -> String {
        match &self.outcome {
            Some(o) => format!("revoked ({})", o.status.as_str()),
            None => "being revoked".to_owned(),
        }
    }
}

/// What `create` found.
#[derive(Debug)]
pub enum Created {
    /// This instance owns the intent; its revision.
    Mine(u64),
    /// Somebody wrote it first.
    Exists,
}

/// What `update` found.
#[derive(Debug)]
pub enum Updated {
    /// Written; the new revision.
    Done(u64),
    /// The record changed meanwhile.
    Conflict,
}

/// The revocations bucket.
#[derive(Clone)]
pub struct Store {
    kv: async_nats::jetstream::kv::Store,
}

impl Store {
    /// Over the cluster's revocations bucket.
    pub fn new(kv: async_nats::jetstream::kv::Store) -> Store {
        Store { kv }
    }

    /// The record of `idempotency_key` and its revision.
    pub async fn get(&self, idempotency_key: &str) -> Result<Option<(Record, u64)>, String> {
        self.get_kv(&kv_key(idempotency_key)).await
    }

    async fn get_kv(&self, k: &str) -> Result<Option<(Record, u64)>, String> {
        use async_nats::jetstream::kv::Operation;
        match self.kv.entry(k).await.map_err(|e| e.to_string())? {
            Some(e) if e.operation == Operation::Put => serde_json::from_slice(&e.value)
                .map(|r| Some((r, e.revision)))
                .map_err(|e| format!("unreadable revocation record {k}: {e}")),
            _ => Ok(None),
        }
    }

    /// Writes an intent unless the key already has a record.
    pub async fn create(&self, rec: &Record) -> Result<Created, String> {
        use async_nats::jetstream::kv::CreateErrorKind;
        let value = serde_json::to_vec(rec).expect("record serialises");
        match self.kv.create(kv_key(&rec.key), value.into()).await {
            Ok(rev) => Ok(Created::Mine(rev)),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(Created::Exists),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Replaces the record if it is still at `revision`.
    pub async fn update(&self, rec: &Record, revision: u64) -> Result<Updated, String> {
        use async_nats::jetstream::kv::UpdateErrorKind;
        let value = serde_json::to_vec(rec).expect("record serialises");
        match self
            .kv
            .update(kv_key(&rec.key), value.into(), revision)
            .await
        {
            Ok(rev) => Ok(Updated::Done(rev)),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(Updated::Conflict),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Records of `partition` that have not reached the findings stream.
    pub async fn unfinished(&self, partition: u32) -> Result<Vec<(Record, u64)>, String> {
        let mut out = Vec::new();
        for e in super::nats::live_entries(&self.kv).await? {
            let r: Record = serde_json::from_slice(&e.value)
                .map_err(|err| format!("unreadable revocation record {}: {err}", e.key))?;
            if r.partition == partition && !r.published {
                out.push((r, e.revision));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{FindingKind, Severity, finding_id};

    fn finding(id_key: &str) -> Finding {
        Finding {
            finding_id: finding_id(FindingKind::UnverifiedAgentGrant, id_key),
            kind: FindingKind::UnverifiedAgentGrant,
            severity: Severity::Critical,
            ts: crate::event::Ts(0),
            principals: vec!["carol".into()],
            grant_id: Some("g-1".into()),
            advice_id: None,
            resource: None,
            score: 1.0,
            summary: "s".into(),
            evidence: serde_json::json!({}),
            action: None,
        }
    }

    #[test]
    fn keys_are_valid_bucket_keys_whatever_the_grant_id() {
        let k = kv_key("reachguard-revoke-membership:sre oncall:dave/ü");
        assert!(k.starts_with("revoke."));
        assert!(k[7..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(k.len(), 7 + 64);
        assert_ne!(k, kv_key("reachguard-revoke-g-2"));
    }

    #[test]
    fn a_record_reports_its_outcome_and_suppresses_other_findings() {
        let mut r = Record::intent(
            "reachguard-revoke-g-1".into(),
            3,
            "rg-1",
            serde_json::json!({}),
            finding("g-1"),
        );
        assert!(r.finding_with_action().is_none());
        let other = r.suppress(finding("g-1@2"));
        let a = other.action.unwrap();
        assert_eq!(a.status, ActionStatus::Suppressed);
        assert!(a.reason.unwrap().contains("being revoked"));
        r.outcome = Some(Outcome {
            status: ActionStatus::Executed,
            attempts: 1,
            error: None,
            at_ms: 0,
            instance: "rg-1".into(),
        });
        let f = r.finding_with_action().unwrap();
        assert_eq!(f.action.unwrap().status, ActionStatus::Executed);
        let back: Record = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
