//! Where each event goes: its partition, the control subject, and which
//! partition speaks for a control event.
//!
//! Used by the ingest stage (to choose a subject) and by the partition workers
//! (to decide whether a finding raised by a control event is theirs to report).
//!
//! - `access` events are partitioned by `principal`: only the partition that
//!   owns the engineer learns their baseline and judges their reach.
//! - every other event type (`grant`, `revoke`, `membership`, `advice`,
//!   `advice_verified`, `advice_viewed`) changes who holds what or what advice
//!   exists, which matters to every engineer: it goes to the control subject,
//!   which every partition applies, in order, to its copy of the model.
//! - a control event's findings (and its revocation) are reported by exactly
//!   one partition, its *designated* partition: the partition of the grantee
//!   (grant), the member (membership), the agent (advice), the grant id
//!   (revoke), the verifier or viewer. Every partition computes the same
//!   model-driven findings; only that one publishes them.

use std::fmt;
use std::str::FromStr;

use crate::event::{Body, Event, EventRef};

/// Where an event is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The partition subject of this partition.
    Partition(u32),
    /// The control subject, read by every partition.
    Control,
}

/// A stable 64-bit hash of a name (FNV-1a followed by the SplitMix64
/// finaliser, so nearby names spread over all partitions). Stable across
/// versions and platforms: it decides where state lives.
pub fn hash(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The partition (of `partitions`) a name belongs to.
pub fn partition_of(name: &str, partitions: u32) -> u32 {
    (hash(name) % u64::from(partitions.max(1))) as u32
}

/// The name an event is keyed by (see the module documentation).
pub fn key_of(ev: &Event) -> &str {
    match &ev.body {
        Body::Access(a) => &a.principal,
        Body::Grant(g) => &g.grantee,
        Body::Revoke(r) => &r.grant_id,
        Body::Membership(m) => &m.member,
        Body::Advice(a) => &a.agent,
        Body::AdviceVerified(v) => &v.verifier,
        Body::AdviceViewed(v) => &v.principal,
    }
}

/// Where `ev` is published.
pub fn route(ev: EventRef<'_>, partitions: u32) -> Route {
    match ev {
        EventRef::Access(a) => Route::Partition(partition_of(a.principal, partitions)),
        EventRef::Other(e) => match &e.body {
            Body::Access(a) => Route::Partition(partition_of(&a.principal, partitions)),
            _ => Route::Control,
        },
    }
}

/// The partition that reports `ev`'s findings and carries out its revocation.
pub fn designated(ev: EventRef<'_>, partitions: u32) -> u32 {
    match ev {
        EventRef::Access(a) => partition_of(a.principal, partitions),
        EventRef::Other(e) => partition_of(key_of(e), partitions),
    }
}

/// An event's place in the cluster's total order: the raw stream sequence of
/// the line it came from, and its index among that line's events. Events are
/// applied in this order everywhere, so every partition sees its events in the
/// order the shippers' lines were stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// Raw stream sequence of the line.
    pub raw: u64,
    /// Index of the event among the line's events.
    pub idx: u32,
}

impl Position {
    /// Position `idx` of raw line `raw`.
    pub fn new(raw: u64, idx: u32) -> Self {
        Position { raw, idx }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.raw, self.idx)
    }
}

impl FromStr for Position {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (raw, idx) = s
            .split_once('.')
            .ok_or_else(|| format!("position {s:?} is not RAW.IDX"))?;
        Ok(Position {
            raw: raw
                .parse()
                .map_err(|_| format!("position {s:?}: bad RAW"))?,
            idx: idx
                .parse()
                .map_err(|_| format!("position {s:?}: bad IDX"))?,
        })
    }
}

impl serde::Serialize for Position {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Position {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Decoder, NativeDecoder};

    fn event(line: &str) -> Event {
        NativeDecoder
            .decode_owned(line.as_bytes())
            .unwrap()
            .remove(0)
    }

    #[test]
    fn the_hash_is_stable() {
        // Where state lives must not move between versions: these values are fixed.
        let fixed: Vec<u32> = ["alice", "bob", "carol", "eng-all", "agent:forum-helper"]
            .iter()
            .map(|n| partition_of(n, 12))
            .collect();
        assert_eq!(fixed, FIXED_PARTITIONS);
    }

    const FIXED_PARTITIONS: [u32; 5] = [0, 0, 5, 3, 0];

    #[test]
    fn names_spread_over_every_partition() {
        let mut counts = [0u32; 12];
        for i in 0..12_000 {
            counts[partition_of(&format!("user-{i}"), 12) as usize] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn access_is_partitioned_and_everything_else_is_control() {
        let access = event(
            r#"{"ts":"2026-03-18T09:09:15Z","type":"access","principal":"carol","resource":"acl/internal-tools"}"#,
        );
        assert_eq!(
            route((&access).into(), 12),
            Route::Partition(partition_of("carol", 12))
        );
        let grant = event(
            r#"{"ts":"2026-03-18T09:07:02Z","type":"grant","grant_id":"g-1","actor":"alice","grantee":"eng-all","grantee_type":"group","resource":"acl/internal-tools"}"#,
        );
        assert_eq!(route((&grant).into(), 12), Route::Control);
        assert_eq!(designated((&grant).into(), 12), partition_of("eng-all", 12));
        let member = event(
            r#"{"ts":"2026-03-18T09:07:02Z","type":"membership","actor":"hr","group":"eng-all","member":"dave","op":"add"}"#,
        );
        assert_eq!(route((&member).into(), 12), Route::Control);
        assert_eq!(designated((&member).into(), 12), partition_of("dave", 12));
    }

    #[test]
    fn positions_order_by_line_then_index_and_round_trip() {
        assert!(Position::new(3, 9) < Position::new(4, 0));
        assert!(Position::new(4, 0) < Position::new(4, 1));
        let p: Position = "17.2".parse().unwrap();
        assert_eq!(p, Position::new(17, 2));
        assert_eq!(p.to_string(), "17.2");
        assert!("17".parse::<Position>().is_err());
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            "\"17.2\"",
            "written as a string"
        );
    }
}
