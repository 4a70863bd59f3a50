//! Partition snapshots: a partition's whole state, saved to the JetStream
//! object store so that whichever instance owns the partition next resumes
//! from it.
//!
//! A snapshot holds the partition's copy of the model (who holds what, the
//! advice registry), the baselines and peer groups of its principals, and its
//! [`ReseqState`]: the last applied position and where to resume reading the
//! two subjects. Everything before the position is in the snapshot; the new
//! owner replays the subjects from the resume sequences and drops what the
//! position already covers, so it rebuilds exactly the state the previous
//! owner had when it stopped.
//!
//! The format is versioned (`"version": "1"`), read version first, as the
//! single-node checkpoint is (`state`).

use serde::{Deserialize, Serialize};

use super::names::Names;
use super::nats::{Jet, NatsError};
use super::reseq::ReseqState;
use crate::detect::Reach;
use crate::model::Model;

/// A partition's state.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Which partition.
    pub partition: u32,
    /// Out of how many.
    pub partitions: u32,
    /// Position and resume sequences.
    pub reseq: ReseqState,
    /// The instance that wrote it.
    pub instance: String,
    /// When (Unix milliseconds).
    pub taken_at_ms: i64,
    /// The partition's copy of the model.
    pub model: Model,
    /// Baselines and peer groups of the partition's principals.
    pub reach: Reach,
}

#[derive(Deserialize)]
struct Version {
    version: String,
}

#[derive(Serialize)]
struct V1Out<'a> {
    version: &'static str,
    partition: u32,
    partitions: u32,
    reseq: ReseqState,
    instance: &'a str,
    taken_at_ms: i64,
    model: &'a Model,
    reach: &'a Reach,
}

#[derive(Deserialize)]
struct V1In {
    partition: u32,
    partitions: u32,
    reseq: ReseqState,
    instance: String,
    taken_at_ms: i64,
    model: Model,
    reach: Reach,
}

/// What the progress bucket says about a partition (for operators and tests:
/// `nats kv get <stream>_progress p.3`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The instance that wrote the latest snapshot.
    pub instance: String,
    /// Every raw line below this has been applied by the partition.
    pub complete_below: u64,
    /// Position and resume sequences of the snapshot.
    pub reseq: ReseqState,
    /// When (Unix milliseconds).
    pub taken_at_ms: i64,
    /// Snapshot size in bytes.
    pub bytes: usize,
}

/// Serialises the state of a partition (version 1).
pub fn encode(
    partition: u32,
    partitions: u32,
    reseq: ReseqState,
    instance: &str,
    taken_at_ms: i64,
    model: &Model,
    reach: &Reach,
) -> Vec<u8> {
    serde_json::to_vec(&V1Out {
        version: "1",
        partition,
        partitions,
        reseq,
        instance,
        taken_at_ms,
        model,
        reach,
    })
    .expect("a snapshot serialises")
}

/// Reads a snapshot of any known version.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, String> {
    let version = serde_json::from_slice::<Version>(bytes)
        .map_err(|e| e.to_string())?
        .version;
    match version.as_str() {
        "1" => {
            let v: V1In = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
            let mut model = v.model;
            model.rebuild_indexes();
            Ok(Snapshot {
                partition: v.partition,
                partitions: v.partitions,
                reseq: v.reseq,
                instance: v.instance,
                taken_at_ms: v.taken_at_ms,
                model,
                reach: v.reach,
            })
        }
        other => Err(format!(
            "unknown snapshot format version {other:?} (written by a newer reachguard?)"
        )),
    }
}

/// Loads partition `p`'s snapshot, if one was ever written.
pub async fn load(jet: &Jet, p: u32) -> Result<Option<Snapshot>, NatsError> {
    use tokio::io::AsyncReadExt;
    let name = Names::snapshot_object(p);
    let err = |m: String| NatsError::Resource {
        what: format!("snapshot {name}"),
        message: m,
    };
    let mut object = match jet.snapshots.get(&name).await {
        Ok(o) => o,
        Err(e) if e.kind() == async_nats::jetstream::object_store::GetErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(err(e.to_string())),
    };
    let mut bytes = Vec::with_capacity(object.info().size);
    object
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| err(e.to_string()))?;
    decode(&bytes).map(Some).map_err(err)
}

/// Stores a serialised snapshot and records its progress.
pub async fn store(jet: &Jet, p: u32, bytes: &[u8], progress: &Progress) -> Result<(), NatsError> {
    let name = Names::snapshot_object(p);
    let err = |m: String| NatsError::Resource {
        what: format!("snapshot {name}"),
        message: m,
    };
    let mut reader = bytes;
    jet.snapshots
        .put(name.as_str(), &mut reader)
        .await
        .map_err(|e| err(e.to_string()))?;
    let value = serde_json::to_vec(progress).expect("progress serialises");
    jet.progress
        .put(Names::lease_key(p), value.into())
        .await
        .map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// Reads the progress record of partition `p`.
pub async fn progress(jet: &Jet, p: u32) -> Result<Option<Progress>, NatsError> {
    let v = jet
        .progress
        .get(Names::lease_key(p))
        .await
        .map_err(|e| NatsError::Resource {
            what: "progress bucket".into(),
            message: e.to_string(),
        })?;
    Ok(v.and_then(|v| serde_json::from_slice(&v).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::route::Position;
    use crate::decode::{Decoder, NativeDecoder};
    use crate::detect::{Engine, EngineConfig, Origin};

    #[test]
    fn a_snapshot_round_trips_the_engine_state() {
        let cfg = EngineConfig::from_config(&crate::config::Config::default());
        let mut e = Engine::new(Model::default(), Reach::default(), &cfg);
        for l in [
            r#"{"ts":"2026-03-01T00:00:00Z","type":"membership","actor":"hr","group":"eng","member":"carol","op":"add"}"#,
            r#"{"ts":"2026-03-18T09:07:02Z","type":"grant","grant_id":"g-1","actor":"alice","grantee":"eng","grantee_type":"group","resource":"acl/tools"}"#,
            r#"{"ts":"2026-03-18T09:09:15Z","type":"access","principal":"carol","resource":"acl/tools"}"#,
        ] {
            let evs = NativeDecoder.decode_owned(l.as_bytes()).unwrap();
            e.observe(&evs[0], Origin::TRUSTED);
        }
        let reseq = ReseqState {
            done: Some(Position::new(3, 0)),
            watermark: [4, 4],
            resume: [9, 7],
        };
        let bytes = encode(5, 12, reseq, "rg-1", 1_000, e.model(), e.reach());
        let back = decode(&bytes).unwrap();
        assert_eq!((back.partition, back.partitions), (5, 12));
        assert_eq!(back.reseq, reseq);
        assert_eq!(back.instance, "rg-1");
        assert_eq!(&back.model, e.model());
        assert_eq!(&back.reach, e.reach());
        assert!(
            back.model.holds("carol", "acl/tools"),
            "derived indexes are rebuilt"
        );
        let err = decode(br#"{"version":"9"}"#).unwrap_err();
        assert!(err.contains("unknown snapshot format"), "{err}");
    }
}
