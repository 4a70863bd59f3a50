//! The hourly revocation budget (`max_revocations_per_hour`), shared by every
//! instance of a cluster.
//!
//! Kept under the key `budget` of the progress bucket: the wall-clock expiry
//! times (Unix milliseconds, an hour after each execution) of the revocations
//! executed in the last hour. Spending a unit is a compare-and-set on the
//! key's revision, retried on conflict, so concurrent instances never spend
//! more than the budget between them. The rest of the policy (confidence,
//! scope, protected names, dry-run) is decided locally first, exactly as on a
//! single node.

use serde::{Deserialize, Serialize};

const KEY: &str = "budget";
const HOUR_MS: i64 = 3_600_000;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Spent {
    /// When each unit spent in the last hour comes back.
    expiries: Vec<i64>,
}

/// What the budget allows.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A unit was spent: go ahead.
    Spent,
    /// The budget is exhausted: this many were executed in the last hour.
    Exhausted(usize),
}

/// Removes expired units and, if one is left, spends it at `now_ms`.
fn spend(spent: &mut Spent, max: u32, now_ms: i64) -> Verdict {
    spent.expiries.retain(|e| *e > now_ms);
    if spent.expiries.len() >= max as usize {
        return Verdict::Exhausted(spent.expiries.len());
    }
    spent.expiries.push(now_ms + HOUR_MS);
    Verdict::Spent
}

/// Spends one unit of the cluster's budget of `max` per rolling hour.
pub async fn try_spend(kv: &async_nats::jetstream::kv::Store, max: u32) -> Result<Verdict, String> {
    use async_nats::jetstream::kv::{CreateErrorKind, Operation, UpdateErrorKind};
    for _ in 0..20 {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let entry = kv.entry(KEY).await.map_err(|e| e.to_string())?;
        let (mut spent, revision) = match &entry {
            Some(e) if e.operation == Operation::Put => (
                serde_json::from_slice(&e.value).map_err(|e| e.to_string())?,
                Some(e.revision),
            ),
            _ => (Spent::default(), None),
        };
        let verdict = spend(&mut spent, max, now_ms);
        if verdict != Verdict::Spent {
            return Ok(verdict);
        }
        let value = serde_json::to_vec(&spent).expect("budget serialises");
        let written = match revision {
            Some(r) => match kv.update(KEY, value.into(), r).await {
                Ok(_) => true,
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => false,
                Err(e) => return Err(e.to_string()),
            },
            None => match kv.create(KEY, value.into()).await {
                Ok(_) => true,
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => false,
                Err(e) => return Err(e.to_string()),
            },
        };
        if written {
            return Ok(Verdict::Spent);
        }
        // Another instance spent a unit meanwhile: read again.
    }
    Err("the budget key is contended; try again".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_come_back_an_hour_after_they_were_spent() {
        let mut s = Spent::default();
        assert_eq!(spend(&mut s, 2, 0), Verdict::Spent);
        assert_eq!(spend(&mut s, 2, 1_000), Verdict::Spent);
        assert_eq!(spend(&mut s, 2, 2_000), Verdict::Exhausted(2));
        assert_eq!(
            spend(&mut s, 2, HOUR_MS),
            Verdict::Spent,
            "the first came back"
        );
        assert_eq!(spend(&mut s, 2, HOUR_MS + 999), Verdict::Exhausted(2));
        assert_eq!(s.expiries, vec![HOUR_MS + 1_000, 2 * HOUR_MS]);
    }
}
