//! Scale-out: several `reachguard run` instances sharing the work through
//! NATS JetStream.
//!
//! With a `[cluster]` table, `run` starts this instead of the single-node
//! daemon (`daemon`). The data flow is the same — decode, detect, respond — but
//! each stage is spread over the instances through JetStream (the layout of
//! subjects, streams and buckets is in [`names`]; the operator's view, with a
//! diagram, in `docs/cluster.md`):
//!
//! - [`ingest`]: every instance pulls raw lines from one work-queue consumer,
//!   decodes each once and republishes the events, partitioned by principal,
//!   with watermarks that let readers restore the lines' order ([`reseq`]).
//! - [`lease`]: instances heartbeat and hold partitions through KV leases;
//!   when one dies its partitions expire and are claimed by the others.
//! - [`partition`]: a worker per owned partition restores the partition's
//!   [`snapshot`], replays its events from there, applies control events to
//!   its copy of the model and its own access events to its principals'
//!   baselines, reports findings once, and revokes through the cluster's
//!   revocation records ([`revoke`]), which let exactly one instance call the
//!   hooks for a grant.
//! - [`route`]: which partition an event belongs to and which partition
//!   reports a control event's findings.
//!
//! Each instance still has a state directory (its findings file, `http.addr`)
//! and serves `/metrics`, `/healthz`, `/readyz` and `/api/findings` (the
//! findings it published); the cluster-wide findings are the findings stream.

pub mod budget;
pub mod ingest;
pub mod lease;
pub mod names;
pub mod nats;
pub mod partition;
pub mod reseq;
pub mod revoke;
pub mod route;
pub mod snapshot;
pub mod wire;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::config::Config;
use crate::detect::EngineConfig;
use crate::instance::{self, Instance};
use crate::metrics::Metrics;
use crate::respond::Policy;

/// Concurrent ingest loops per instance.
const INGEST_WORKERS: usize = 2;

/// Header names on cluster messages.
pub mod headers {
    /// On event messages: the positions (`RAW.IDX`, comma-separated) of the
    /// native JSON lines of the payload, one per line.
    pub const POSITIONS: &str = "Reachguard-Positions";
    /// On findings: `RAW.IDX.J`, the position of the event that raised it
    /// and the finding's index among that event's findings.
    pub const POSITION: &str = "Reachguard-Position";
    /// On watermark markers: the raw stream's first unacknowledged sequence.
    pub const WATERMARK: &str = "Reachguard-Watermark";
    /// On event messages from a source whose advice events do not count.
    pub const UNTRUSTED: &str = "Reachguard-Untrusted";
    /// On event messages: when an instance read the raw lines (Unix
    /// milliseconds), for the latency histograms.
    pub const READ_MS: &str = "Reachguard-Read-Ms";
    /// On raw lines (optional): the format, overriding the subject's.
    pub const FORMAT: &str = "Reachguard-Format";
    /// On raw lines (optional): the source name, overriding the subject's.
    pub const SOURCE: &str = "Reachguard-Source";
}

/// Why a cluster instance could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `run` was started without `[cluster]`.
    #[error("no [cluster] configured")]
    NotConfigured,
    /// The state directory, the findings file, the hooks or the HTTP API
    /// (as for a single node).
    #[error(transparent)]
    Instance(#[from] crate::instance::Error),
    /// NATS could not be reached or set up.
    #[error(transparent)]
    Nats(#[from] nats::NatsError),
    /// The instance could not join, or a stage failed.
    #[error("cluster: {0}")]
    Cluster(String),
}

/// A running cluster instance. Stopping it stops ingestion, and every
/// partition is snapshotted and handed over.
pub type Handle = crate::instance::Handle<Error>;

/// Starts a cluster instance: everything that can fail at start-up (state
/// directory, hooks, NATS, joining) fails here.
pub async fn start(cfg: Config) -> Result<Handle, Error> {
    let cluster = cfg.cluster.clone().ok_or(Error::NotConfigured)?;
    let Instance {
        state,
        owner,
        sink,
        hooks,
        metrics,
    } = Instance::open(&cfg, Metrics::new(&[]))?;
    let jet = nats::Jet::open(&cluster).await?;
    tracing::info!(url = %cluster.url, instance = %cluster.instance, partitions = cluster.partitions, "connected to NATS JetStream");

    let http = instance::bind_http(&cfg, &metrics, &sink).await?;
    let addr = http.addr;
    let shared = Arc::new(partition::Shared {
        revocations: revoke::Store::new(jet.revocations.clone()),
        jet,
        engine: EngineConfig::from_config(&cfg),
        // The hourly budget is the cluster's (`budget`), not each instance's.
        policy: Mutex::new(Policy::from_config(
            &crate::respond::ResponseConfig {
                max_revocations_per_hour: u32::MAX,
                ..cfg.response.clone()
            },
            !hooks.is_empty(),
        )),
        budget_per_hour: cfg.response.max_revocations_per_hour,
        hooks: Arc::new(hooks),
        metrics,
        sink: Mutex::new(sink),
        in_flight: Mutex::new(HashSet::new()),
        tracked: Mutex::new(Default::default()),
        cluster,
    });
    let coordinator = lease::Coordinator::join(Arc::clone(&shared))
        .await
        .map_err(Error::Cluster)?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready, server_task) = http.serve(&state, stop_rx.clone())?;

    // Two pullers, so one decodes and publishes while the other waits on
    // JetStream: a single loop leaves the instance idle between batches.
    let ingest_tasks: Vec<_> = (0..INGEST_WORKERS)
        .map(|_| tokio::spawn(ingest::Ingest::new(Arc::clone(&shared)).run(stop_rx.clone())))
        .collect();
    let coordinator_task = tokio::spawn(coordinator.run(stop_rx.clone()));
    ready.set();
    tracing::info!(instance = %shared.cluster.instance, "reachguard cluster instance running");

    let stop_tx = Arc::new(stop_tx);
    let stop_all = Arc::clone(&stop_tx);
    let task = tokio::spawn(async move {
        let _owner = owner;
        let mut coordinator_task = coordinator_task;
        // A coordinator that fails (its instance name taken, say) stops the
        // whole instance: without it no partition is processed.
        let coordinator = tokio::select! {
            r = &mut coordinator_task => {
                let _ = stop_all.send(true);
                r
            }
            _ = async { let mut s = stop_all.subscribe(); let _ = s.wait_for(|s| *s).await; } => {
                coordinator_task.await
            }
        };
        let mut ingest = Ok(Ok(()));
        for t in ingest_tasks {
            let r = t.await;
            if !matches!(r, Ok(Ok(()))) {
                ingest = r;
            }
        }
        let _ = server_task.await;
        if let Err(e) = shared.sink.lock().expect("sink lock").sync() {
            tracing::error!(error = %e, "cannot sync the findings file");
        }
        shared.jet.client.flush().await.ok();
        tracing::info!("stopped");
        for r in [coordinator, ingest] {
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Error::Cluster(e)),
                Err(e) => return Err(Error::Cluster(format!("a task failed: {e}"))),
            }
        }
        Ok(())
    });
    Ok(Handle::new(addr, (), stop_tx, task))
}
