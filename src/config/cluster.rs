//! `[cluster]`: the raw keys as written, and the validated settings.
//!
//! Read by [`crate::config`] (which holds `cluster: Option<RawCluster>`) and
//! validated once into [`ClusterConfig`], which [`crate::cluster`] runs on.
//! Kept with the config rather than the cluster because the cluster starts
//! from the whole [`Config`](crate::config::Config): this way the config
//! knows nothing of the cluster's code. Without a `[cluster]` table nothing
//! here is used and `reachguard run` is the single-node daemon.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// `[cluster]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// NATS server URL(s), comma-separated (`nats://host:4222`).
    pub url: String,
    /// This instance's name, unique in the cluster (default: the host name).
    pub instance: Option<String>,
    /// Stem of the JetStream names: streams `<stream>_RAW`, `<stream>_EVENTS`,
    /// `<stream>_FINDINGS`; buckets `<stream>_leases`, `<stream>_members`,
    /// `<stream>_revocations`, `<stream>_progress`, `<stream>_snapshots`.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// First token of every subject: `<prefix>.raw.>`, `<prefix>.ev.>`, `<prefix>.findings.>`.
    #[serde(default = "default_prefix")]
    pub subject_prefix: String,
    /// Number of partitions principals are hashed into; fixed for the cluster's life.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// How long a partition lease lives without renewal (an instance's death is
    /// noticed after at most this long).
    #[serde(default = "default_lease_ttl", deserialize_with = "duration")]
    pub lease_ttl: Duration,
    /// How often each owned partition's state is snapshotted to JetStream.
    #[serde(default = "default_snapshot_interval", deserialize_with = "duration")]
    pub snapshot_interval: Duration,
    /// How long a raw line may stay unacknowledged by an ingesting instance
    /// before JetStream gives it to another.
    #[serde(default = "default_ack_wait", deserialize_with = "duration")]
    pub ingest_ack_wait: Duration,
    /// Raw lines taken per ingest batch.
    #[serde(default = "default_batch")]
    pub ingest_batch: usize,
    /// How long normalised events are kept in the events stream (a snapshot
    /// older than this cannot be replayed).
    #[serde(default = "default_events_max_age", deserialize_with = "duration")]
    pub events_max_age: Duration,
    /// How long revocation records (the cluster's idempotency keys) are kept.
    #[serde(default = "default_revocations_max_age", deserialize_with = "duration")]
    pub revocations_max_age: Duration,
    /// A NATS credentials file (`.creds`: user JWT and NKey seed).
    pub credentials_file: Option<PathBuf>,
    /// An environment variable holding a NATS token.
    pub token_env: Option<String>,
    /// JetStream replicas of every stream and bucket (3 on a clustered NATS
    /// for the cluster's state to survive a NATS server's loss).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// Sources (the last subject tokens, or the `Reachguard-Source` header)
    /// whose advice, verification and view events trace nothing.
    #[serde(default)]
    pub untrusted_sources: Vec<String>,
}

fn default_stream() -> String {
    "REACHGUARD".into()
}
fn default_prefix() -> String {
    "reachguard".into()
}
fn default_partitions() -> u32 {
    12
}
fn default_lease_ttl() -> Duration {
    Duration::from_secs(10)
}
fn default_snapshot_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_ack_wait() -> Duration {
    Duration::from_secs(30)
}
fn default_batch() -> usize {
    256
}
fn default_replicas() -> usize {
    1
}
fn default_events_max_age() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}
fn default_revocations_max_age() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration {s:?} ({e}); use e.g. \"500ms\", \"30s\", \"15m\""
        ))
    })
}

/// How the instance authenticates to NATS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// No credentials.
    None,
    /// A `.creds` file.
    CredentialsFile(PathBuf),
    /// A token read from this environment variable at start.
    TokenEnv(String),
}

/// The validated `[cluster]`.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// NATS server URL(s), comma-separated.
    pub url: String,
    /// This instance's unique name.
    pub instance: String,
    /// Stem of stream and bucket names.
    pub stream: String,
    /// First subject token.
    pub subject_prefix: String,
    /// Number of partitions.
    pub partitions: u32,
    /// Lease time to live.
    pub lease_ttl: Duration,
    /// Snapshot period.
    pub snapshot_interval: Duration,
    /// Ingest acknowledgement deadline.
    pub ingest_ack_wait: Duration,
    /// Raw lines per ingest batch.
    pub ingest_batch: usize,
    /// Retention of normalised events.
    pub events_max_age: Duration,
    /// Retention of revocation records.
    pub revocations_max_age: Duration,
    /// Credentials.
    pub auth: Auth,
    /// JetStream replicas.
    pub replicas: usize,
    /// Sources whose advice events do not count.
    pub untrusted_sources: Vec<String>,
}

fn valid_token(s: &str, extra: &[char]) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || extra.contains(&c))
}

/// The host name, made into a valid instance name.
fn host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name.is_empty() {
        "reachguard".into()
    } else {
        name
    }
}

impl ClusterConfig {
    /// Validates the raw table. `sources` is the number of `[[sources]]`
    /// configured: a cluster instance takes its input from the raw stream, so
    /// it must be zero. Errors name the offending key.
    pub fn from_raw(raw: RawCluster, sources: usize) -> Result<ClusterConfig, (String, String)> {
        let err = |k: &str, m: String| Err((k.to_owned(), m));
        if sources > 0 {
            return err(
                "path",
                "[[sources]] cannot be combined with [cluster]: in a cluster, log shippers publish lines to the raw stream (see docs/cluster.md)".into(),
            );
        }
        if raw.url.trim().is_empty() {
            return err("url", "must name at least one NATS server".into());
        }
        let instance = raw.instance.unwrap_or_else(host_name);
        if !valid_token(&instance, &[]) || instance.len() > 64 {
            return err(
                "instance",
                format!(
                    "{instance:?} is not a valid instance name (letters, digits, '-' and '_', at most 64)"
                ),
            );
        }
        if !valid_token(&raw.stream, &[]) || raw.stream.len() > 32 {
            return err(
                "stream",
                format!(
                    "{:?} is not a valid name stem (letters, digits, '-' and '_', at most 32)",
                    raw.stream
                ),
            );
        }
        if raw.subject_prefix.split('.').any(|t| !valid_token(t, &[])) {
            return err(
                "subject_prefix",
                format!(
                    "{:?} is not a valid subject prefix (dot-separated tokens of letters, digits, '-' and '_')",
                    raw.subject_prefix
                ),
            );
        }
        if !(1..=1024).contains(&raw.partitions) {
            return err(
                "partitions",
                format!("must be between 1 and 1024, not {}", raw.partitions),
            );
        }
        if raw.lease_ttl < Duration::from_millis(500) {
            return err("lease_ttl", "must be at least 500ms".into());
        }
        if raw.snapshot_interval.is_zero() {
            return err("snapshot_interval", "must be more than zero".into());
        }
        if raw.ingest_ack_wait < Duration::from_secs(1) {
            return err("ingest_ack_wait", "must be at least 1s".into());
        }
        if !(1..=10_000).contains(&raw.ingest_batch) {
            return err(
                "ingest_batch",
                format!("must be between 1 and 10000, not {}", raw.ingest_batch),
            );
        }
        if raw.events_max_age < raw.snapshot_interval * 10 {
            return err(
                "events_max_age",
                "must be at least ten snapshot intervals, or snapshots could not be replayed"
                    .into(),
            );
        }
        if raw.revocations_max_age < raw.events_max_age {
            return err(
                "revocations_max_age",
                "must be at least events_max_age, or a replayed grant could be revoked twice"
                    .into(),
            );
        }
        if !(1..=5).contains(&raw.replicas) {
            return err(
                "replicas",
                format!("must be between 1 and 5, not {}", raw.replicas),
            );
        }
        let auth = match (raw.credentials_file, raw.token_env) {
            (Some(_), Some(_)) => {
                return err(
                    "token_env",
                    "give either credentials_file or token_env, not both".into(),
                );
            }
            (Some(f), None) => Auth::CredentialsFile(f),
            (None, Some(e)) if e.trim().is_empty() => {
                return err("token_env", "must name an environment variable".into());
            }
            (None, Some(e)) => Auth::TokenEnv(e),
            (None, None) => Auth::None,
        };
        Ok(ClusterConfig {
            url: raw.url,
            instance,
            stream: raw.stream,
            subject_prefix: raw.subject_prefix,
            partitions: raw.partitions,
            lease_ttl: raw.lease_ttl,
            snapshot_interval: raw.snapshot_interval,
            ingest_ack_wait: raw.ingest_ack_wait,
            ingest_batch: raw.ingest_batch,
            events_max_age: raw.events_max_age,
            revocations_max_age: raw.revocations_max_age,
            auth,
            replicas: raw.replicas,
            untrusted_sources: raw.untrusted_sources,
        })
    }

    /// Problems only visible at run time (the token variable unset).
    pub fn runtime_problems(&self) -> Vec<String> {
        match &self.auth {
            Auth::TokenEnv(v) if std::env::var_os(v).is_none() => vec![format!(
                "[cluster] token_env: environment variable {v} is not set"
            )],
            Auth::CredentialsFile(f) if !f.exists() => vec![format!(
                "[cluster] credentials_file: {} does not exist",
                f.display()
            )],
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    use super::*;

    #[test]
    fn a_minimal_cluster_table_takes_the_documented_defaults() {
        let c = Config::parse("[cluster]\nurl = \"nats://127.0.0.1:4222\"\ninstance = \"rg-1\"\n")
            .unwrap();
        let k = c.cluster.expect("cluster configured");
        assert_eq!(k.instance, "rg-1");
        assert_eq!(k.stream, "REACHGUARD");
        assert_eq!(k.subject_prefix, "reachguard");
        assert_eq!(k.partitions, 12);
        assert_eq!(k.lease_ttl, Duration::from_secs(10));
        assert_eq!(k.auth, Auth::None);
        assert!(Config::parse("").unwrap().cluster.is_none());
    }

    #[test]
    fn cluster_keys_are_validated_with_their_line() {
        let err = Config::parse("[cluster]\nurl = \"nats://x\"\npartitions = 0\n").unwrap_err();
        assert!(err.starts_with("line 3, key `partitions`"), "{err}");
        let err = Config::parse("[cluster]\nurl = \"nats://x\"\ninstance = \"a b\"\n").unwrap_err();
        assert!(err.starts_with("line 3, key `instance`"), "{err}");
        let err = Config::parse("[cluster]\nurl = \"nats://x\"\nreplicas = 0\n").unwrap_err();
        assert!(err.starts_with("line 3, key `replicas`"), "{err}");
        let err = Config::parse("[cluster]\nurl = \"nats://x\"\nleases = 3\n").unwrap_err();
        assert!(err.contains("leases"), "{err}");
        let err = Config::parse(
            "[cluster]\nurl = \"nats://x\"\ncredentials_file = \"/a\"\ntoken_env = \"T\"\n",
        )
        .unwrap_err();
        assert!(err.contains("token_env"), "{err}");
    }

    #[test]
    fn file_sources_cannot_be_combined_with_a_cluster() {
        let err = Config::parse(
            "[[sources]]\npath = \"/var/log/a.jsonl\"\n\n[cluster]\nurl = \"nats://x\"\ninstance = \"a\"\n",
        )
        .unwrap_err();
        assert!(err.contains("cannot be combined with [cluster]"), "{err}");
    }
}
