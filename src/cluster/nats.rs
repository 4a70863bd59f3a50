//! The connection to NATS and the JetStream resources a cluster uses.
//!
//! Every instance calls [`Jet::open`] at start: it connects (with the
//! configured credentials) and creates whatever stream, consumer or bucket is
//! missing, so the first instance of a new cluster sets it up and the others
//! find it. The layout is in [`super::names`].

use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, object_store, stream};

use super::names::Names;
use crate::config::cluster::{Auth, ClusterConfig};

/// A problem talking to NATS.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// The connection could not be made.
    #[error("cannot connect to NATS at {url}: {message}")]
    Connect {
        /// The configured URL(s).
        url: String,
        /// Why.
        message: String,
    },
    /// A JetStream resource could not be created or opened.
    #[error("JetStream {what}: {message}")]
    Resource {
        /// Which resource.
        what: String,
        /// Why.
        message: String,
    },
    /// The cluster was created with a different partition count.
    #[error(
        "this cluster's state was built with {found} partitions, but [cluster] partitions = {configured}; \
         the count is fixed for a cluster's life (use a new `stream` name to start another)"
    )]
    PartitionsChanged {
        /// In the progress bucket.
        found: u32,
        /// In the config.
        configured: u32,
    },
}

fn resource(what: impl Into<String>) -> impl FnOnce(String) -> NatsError {
    let what = what.into();
    move |message| NatsError::Resource { what, message }
}

/// A connected client and every JetStream handle a cluster instance uses.
#[derive(Clone)]
pub struct Jet {
    /// The core client (markers are published on it).
    pub client: async_nats::Client,
    /// The JetStream context.
    pub js: jetstream::Context,
    /// Subject and resource names.
    pub names: Names,
    /// Raw lines (work queue).
    pub raw: stream::Stream,
    /// Normalised events.
    pub events: stream::Stream,
    /// Findings.
    pub findings: stream::Stream,
    /// Partition leases.
    pub leases: kv::Store,
    /// Instance heartbeats.
    pub members: kv::Store,
    /// Revocation intents and outcomes.
    pub revocations: kv::Store,
    /// Per-partition progress.
    pub progress: kv::Store,
    /// Partition snapshots.
    pub snapshots: object_store::ObjectStore,
}

/// Every key of a bucket whose latest operation is a put, with its value.
///
/// Lists the bucket's subjects from its stream's state and reads each key
/// directly, rather than with the client's key watcher: that watcher relies on
/// a pending count taken when it starts, which goes stale when entries expire
/// or are rewritten meanwhile (leases and heartbeats are, several times per
/// TTL), and then waits for an idle heartbeat of several seconds to finish.
pub async fn live_entries(store: &kv::Store) -> Result<Vec<kv::Entry>, String> {
    use futures_util::StreamExt;
    let prefix = format!("$KV.{}.", store.name);
    let mut subjects = store
        .stream
        .info_with_subjects(format!("{prefix}>"))
        .await
        .map_err(|e| e.to_string())?;
    let mut keys = Vec::new();
    while let Some(s) = subjects.next().await {
        let (subject, _) = s.map_err(|e| e.to_string())?;
        if let Some(k) = subject.strip_prefix(&prefix) {
            keys.push(k.to_owned());
        }
    }
    keys.sort();
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        if let Some(e) = store.entry(&k).await.map_err(|e| e.to_string())? {
            if e.operation == kv::Operation::Put {
                out.push(e);
            }
        }
    }
    Ok(out)
}

/// Connects with the configured credentials.
pub async fn connect(c: &ClusterConfig) -> Result<async_nats::Client, NatsError> {
    let fail = |message: String| NatsError::Connect {
        url: c.url.clone(),
        message,
    };
    let opts = match &c.auth {
        Auth::None => async_nats::ConnectOptions::new(),
        Auth::CredentialsFile(f) => async_nats::ConnectOptions::with_credentials_file(f)
            .await
            .map_err(|e| fail(format!("credentials file {}: {e}", f.display())))?,
        Auth::TokenEnv(v) => {
            let token = std::env::var(v)
                .map_err(|_| fail(format!("token_env: environment variable {v} is not set")))?;
            async_nats::ConnectOptions::new().token(token)
        }
    };
    let urls: Vec<&str> = c
        .url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    opts.name(format!("reachguard/{}", c.instance))
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(10)))
        .connect(urls.as_slice())
        .await
        .map_err(|e| fail(e.to_string()))
}

async fn ensure_stream(
    js: &jetstream::Context,
    cfg: stream::Config,
) -> Result<stream::Stream, NatsError> {
    let name = cfg.name.clone();
    if let Ok(s) = js.get_stream(&name).await {
        return Ok(s);
    }
    match js.create_stream(cfg).await {
        Ok(s) => Ok(s),
        // Another instance created it at the same moment.
        Err(e) => js
            .get_stream(&name)
            .await
            .map_err(|_| resource(format!("stream {name}"))(e.to_string())),
    }
}

/// A key-value bucket's settings.
struct Bucket<'a> {
    name: &'a str,
    description: &'a str,
    max_age: Duration,
    replicas: usize,
}

/// Opens a key-value bucket, creating its stream when missing. The stream is
/// created here, with the settings the client's `create_key_value` would use,
/// because that call first reads the account's JetStream limits in a shape
/// nats-server 2.9 does not answer with.
async fn ensure_kv(js: &jetstream::Context, b: Bucket<'_>) -> Result<kv::Store, NatsError> {
    if let Ok(s) = js.get_key_value(b.name).await {
        return Ok(s);
    }
    ensure_stream(
        js,
        stream::Config {
            name: format!("KV_{}", b.name),
            description: Some(b.description.to_owned()),
            subjects: vec![format!("$KV.{}.>", b.name)],
            max_messages_per_subject: 1,
            max_age: b.max_age,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            num_replicas: b.replicas,
            ..Default::default()
        },
    )
    .await?;
    js.get_key_value(b.name)
        .await
        .map_err(|e| resource(format!("bucket {}", b.name))(e.to_string()))
}

impl Jet {
    /// Connects and opens (creating when missing) every resource.
    pub async fn open(c: &ClusterConfig) -> Result<Jet, NatsError> {
        let client = connect(c).await?;
        let js = jetstream::new(client.clone());
        let names = Names::new(c);
        let raw = ensure_stream(
            &js,
            stream::Config {
                name: names.raw_stream.clone(),
                description: Some("reachguard: raw log lines from shippers".into()),
                subjects: vec![names.raw_all()],
                retention: stream::RetentionPolicy::WorkQueue,
                // A full stream refuses new lines (the shipper retries) rather
                // than dropping unread ones.
                discard: stream::DiscardPolicy::New,
                duplicate_window: Duration::from_secs(120),
                num_replicas: c.replicas,
                ..Default::default()
            },
        )
        .await?;
        // Duplicates of a republished line are dropped within this window;
        // later ones are dropped by position by the partition workers.
        let events = ensure_stream(
            &js,
            stream::Config {
                name: names.events_stream.clone(),
                description: Some("reachguard: normalised events by partition".into()),
                subjects: vec![names.events_all()],
                max_age: c.events_max_age,
                duplicate_window: Duration::from_secs(120),
                allow_direct: true,
                num_replicas: c.replicas,
                ..Default::default()
            },
        )
        .await?;
        let findings = ensure_stream(
            &js,
            stream::Config {
                name: names.findings_stream.clone(),
                description: Some("reachguard: findings, each published once".into()),
                subjects: vec![names.findings_all()],
                max_age: c.revocations_max_age,
                duplicate_window: (c.lease_ttl + c.snapshot_interval)
                    .mul_f64(4.0)
                    .max(Duration::from_secs(600)),
                allow_direct: true,
                num_replicas: c.replicas,
                ..Default::default()
            },
        )
        .await?;
        let leases = ensure_kv(
            &js,
            Bucket {
                name: &names.leases_bucket,
                description: "reachguard: partition leases",
                max_age: c.lease_ttl,
                replicas: c.replicas,
            },
        )
        .await?;
        let members = ensure_kv(
            &js,
            Bucket {
                name: &names.members_bucket,
                description: "reachguard: live instances",
                max_age: c.lease_ttl,
                replicas: c.replicas,
            },
        )
        .await?;
        let revocations = ensure_kv(
            &js,
            Bucket {
                name: &names.revocations_bucket,
                description: "reachguard: revocation intents and outcomes",
                max_age: c.revocations_max_age,
                replicas: c.replicas,
            },
        )
        .await?;
        let progress = ensure_kv(
            &js,
            Bucket {
                name: &names.progress_bucket,
                description: "reachguard: partition progress",
                max_age: Duration::ZERO,
                replicas: c.replicas,
            },
        )
        .await?;
        let snapshots = match js.get_object_store(&names.snapshots_bucket).await {
            Ok(s) => s,
            Err(_) => match js
                .create_object_store(object_store::Config {
                    bucket: names.snapshots_bucket.clone(),
                    description: Some("reachguard: partition snapshots".into()),
                    num_replicas: c.replicas,
                    ..Default::default()
                })
                .await
            {
                Ok(s) => s,
                Err(e) => js
                    .get_object_store(&names.snapshots_bucket)
                    .await
                    .map_err(|_| resource("snapshot store")(e.to_string()))?,
            },
        };
        let jet = Jet {
            client,
            js,
            names,
            raw,
            events,
            findings,
            leases,
            members,
            revocations,
            progress,
            snapshots,
        };
        jet.check_partitions(c.partitions).await?;
        Ok(jet)
    }

    /// Records the partition count on first start and refuses a different one
    /// later: state is partitioned by it.
    async fn check_partitions(&self, configured: u32) -> Result<(), NatsError> {
        let value = configured.to_string();
        if self
            .progress
            .create("partitions", value.clone().into())
            .await
            .is_ok()
        {
            return Ok(());
        }
        let found = self
            .progress
            .get("partitions")
            .await
            .map_err(|e| resource("progress bucket")(e.to_string()))?
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u32>().ok());
        match found {
            Some(found) if found != configured => {
                Err(NatsError::PartitionsChanged { found, configured })
            }
            Some(_) => Ok(()),
            None => Err(resource("progress bucket")(
                "cannot read the recorded partition count".into(),
            )),
        }
    }

    /// The shared durable consumer of the raw stream.
    pub async fn ingest_consumer(
        &self,
        c: &ClusterConfig,
    ) -> Result<consumer::Consumer<consumer::pull::Config>, NatsError> {
        let name = self.names.ingest_consumer.clone();
        self.raw
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    description: Some("reachguard: shared ingestion".into()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: c.ingest_ack_wait,
                    max_ack_pending: (c.ingest_batch as i64 * 64).max(4096),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| resource("ingest consumer")(e.to_string()))
    }

    /// The raw stream's first unacknowledged sequence: every line below it has
    /// been decoded and its events stored.
    pub async fn raw_watermark(&self) -> Result<u64, NatsError> {
        let info = self
            .raw
            .get_info()
            .await
            .map_err(|e| resource("raw stream info")(e.to_string()))?;
        let s = info.state;
        // An empty stream reports last + 1 (or 0 when it never held anything).
        Ok(if s.messages == 0 {
            s.last_sequence + 1
        } else {
            s.first_sequence
        })
    }
}
