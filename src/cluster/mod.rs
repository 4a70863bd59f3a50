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
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::detect::EngineConfig;
use crate::metrics::Metrics;
use crate::respond::{Hook, Policy};
use crate::server::{self, AppState};
use crate::sink::FindingsSink;
use crate::state::{StateDir, StateError};

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
    /// The state directory.
    #[error(transparent)]
    State(#[from] StateError),
    /// The local findings file could not be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP address is taken or not allowed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A hook could not be set up.
    #[error("{0}")]
    Hook(String),
    /// The API token could not be read.
    #[error("{0}")]
    Token(String),
    /// NATS could not be reached or set up.
    #[error(transparent)]
    Nats(#[from] nats::NatsError),
    /// The instance could not join, or a stage failed.
    #[error("cluster: {0}")]
    Cluster(String),
}

/// A running cluster instance.
pub struct Handle {
    /// The bound HTTP address.
    pub addr: SocketAddr,
    stop: Arc<watch::Sender<bool>>,
    task: JoinHandle<Result<(), Error>>,
}

impl Handle {
    /// Asks the instance to stop (as SIGTERM does): ingestion stops, every
    /// partition is snapshotted and handed over.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// Waits for it to stop.
    pub async fn wait(self) -> Result<(), Error> {
        self.task
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// Runs until `signal` completes (then stops gracefully) or the instance
    /// stops by itself with an error.
    pub async fn run_until(
        mut self,
        signal: impl std::future::Future<Output = ()>,
    ) -> Result<(), Error> {
        tokio::select! {
            _ = signal => self.shutdown(),
            r = &mut self.task => {
                return r.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            }
        }
        self.wait().await
    }
}

/// Starts a cluster instance: everything that can fail at start-up (state
/// directory, hooks, NATS, joining) fails here.
pub async fn start(cfg: Config) -> Result<Handle, Error> {
    let cluster = cfg.cluster.clone().ok_or(Error::NotConfigured)?;
    let state = StateDir::open(&cfg.state_dir)?;
    let owner = state.lock_owner()?;
    let findings_path = state.findings_path();
    let sink = FindingsSink::open(&findings_path, cfg.findings_in_memory).map_err(|source| {
        Error::Open {
            path: findings_path.clone(),
            source,
        }
    })?;
    let metrics = Metrics::new(&[]);
    let hooks = cfg
        .response
        .hooks
        .iter()
        .cloned()
        .map(|s| {
            Hook::new(s).map(|h| h.with_attempts_metric(metrics.response.hook_attempts.clone()))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::Hook)?;
    let jet = nats::Jet::open(&cluster).await?;
    tracing::info!(url = %cluster.url, instance = %cluster.instance, partitions = cluster.partitions, "connected to NATS JetStream");

    let (listener, addr) = server::bind(cfg.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: cfg.listen,
            source,
        })?;
    let ready = Arc::new(AtomicBool::new(false));
    let app = AppState {
        metrics: metrics.clone(),
        recent: sink.recent(),
        ready: Arc::clone(&ready),
        token: cfg.api_token().map_err(Error::Token)?.map(Arc::from),
        protect_metrics: cfg.protect_metrics,
        // Each instance holds only its partitions' engines: no one of them
        // can judge a proposal alone yet, so the gate answers 503 here.
        gate: None,
    };
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
    let server_task = server::spawn(listener, app, stop_rx.clone());
    state.record_http_addr(addr)?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz, /api/findings");

    // Two pullers, so one decodes and publishes while the other waits on
    // JetStream: a single loop leaves the instance idle between batches.
    let ingest_tasks: Vec<_> = (0..INGEST_WORKERS)
        .map(|_| tokio::spawn(ingest::Ingest::new(Arc::clone(&shared)).run(stop_rx.clone())))
        .collect();
    let coordinator_task = tokio::spawn(coordinator.run(stop_rx.clone()));
    ready.store(true, Ordering::Release);
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
    Ok(Handle {
        addr,
        stop: stop_tx,
        task,
    })
}
