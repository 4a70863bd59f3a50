//! Start-up shared by the single-node daemon (`daemon`) and a cluster
//! instance (`cluster`).
//!
//! Whichever runs, an instance of `reachguard run` owns a state directory
//! (its owner lock held for life), writes its findings file, calls the
//! configured hooks (each attempt counted), and serves `/metrics`,
//! `/healthz`, `/readyz` and `/api/findings` on `listen`, recording the bound
//! address in `http.addr`. [`Instance::open`] and [`bind_http`] do
//! that once for both; what differs (the checkpoint and journal of a single
//! node, NATS for a cluster) is the caller's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::respond::Hook;
use crate::server::{self, AppState};
use crate::sink::FindingsSink;
use crate::state::{OwnerLock, StateDir, StateError};

/// Why an instance could not start, or lost its local state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The state directory or checkpoint.
    #[error(transparent)]
    State(#[from] StateError),
    /// A state file could not be opened or written.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An address to listen on is taken or not allowed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A hook could not be set up (e.g. its secret is missing).
    #[error("{0}")]
    Hook(String),
    /// The API token is configured but cannot be read.
    #[error("{0}")]
    Token(String),
    /// Nothing to follow.
    #[error(
        "no [[sources]] and no [otlp] receiver configured: nothing to follow (see `reachguard check-config`)"
    )]
    NoSources,
    /// The admission webhook could not start (its certificate, its address).
    #[error("[gate]: {0}")]
    Gate(#[from] crate::gate::admission::TlsError),
}

/// What every instance holds from start to stop.
pub struct Instance {
    /// The state directory.
    pub state: StateDir,
    /// Held for the instance's life: no `train` rewrites the state under it.
    pub owner: OwnerLock,
    /// The findings file and the API's recent findings.
    pub sink: FindingsSink,
    /// The revocation hooks, each attempt counted in `metrics`.
    pub hooks: Vec<Hook>,
    /// The metrics.
    pub metrics: Metrics,
}

impl Instance {
    /// Opens the state directory and takes its owner lock, opens the findings
    /// file and sets up the hooks.
    pub fn open(cfg: &Config, metrics: Metrics) -> Result<Instance, Error> {
        let state = StateDir::open(&cfg.state_dir)?;
        let owner = state.lock_owner()?;
        let path = state.findings_path();
        let sink = FindingsSink::open(&path, cfg.findings_in_memory)
            .map_err(|source| Error::Open { path, source })?;
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
        Ok(Instance {
            state,
            owner,
            sink,
            hooks,
            metrics,
        })
    }
}

/// Binds `listen` for the HTTP API over `metrics` and the findings of
/// `sink`; it serves once [`Http::serve`] is called.
pub async fn bind_http(
    cfg: &Config,
    metrics: &Metrics,
    sink: &FindingsSink,
) -> Result<Http, Error> {
    let (listener, addr) = bind(cfg.listen).await?;
    let ready = Arc::new(AtomicBool::new(false));
    let token: Option<Arc<str>> = cfg.api_token().map_err(Error::Token)?.map(Arc::from);
    let app = AppState {
        metrics: metrics.clone(),
        recent: sink.recent(),
        ready: Arc::clone(&ready),
        token: token.clone(),
        protect_metrics: cfg.protect_metrics,
        gate: None,
        page: crate::page::PageState::new(sink.recent(), token, sink.live(), cfg.path.clone()),
    };
    Ok(Http {
        listener,
        addr,
        ready,
        app,
    })
}

/// The HTTP API, bound but not yet serving.
pub struct Http {
    listener: tokio::net::TcpListener,
    /// The bound address.
    pub addr: SocketAddr,
    ready: Arc<AtomicBool>,
    app: AppState,
}

impl Http {
    /// Serves `/api/v1/decide` through `asker` (the single node, whose one
    /// engine can judge a proposal; a cluster instance answers 503).
    pub fn with_gate(mut self, asker: crate::gate::Asker) -> Http {
        self.app.gate = Some(asker);
        self
    }

    /// Gives the incident page the single node's journal, the uses of
    /// reported grants and its engine for person pages.
    pub fn with_page(
        mut self,
        journal: std::sync::Arc<std::sync::Mutex<crate::respond::Journal>>,
        uses: crate::uses::Shared,
        people: crate::page::Asker,
    ) -> Http {
        self.app.page.journal = Some(journal);
        self.app.page.uses = Some(uses);
        self.app.page.people = Some(people);
        self
    }

    /// The API token, for the other listeners that check it.
    pub fn token(&self) -> Option<Arc<str>> {
        self.app.token.clone()
    }

    /// Records the address in `http.addr` and serves until `stop` turns true.
    /// `/readyz` says not ready until the returned flag is set.
    pub fn serve(
        mut self,
        state: &StateDir,
        stop: watch::Receiver<bool>,
    ) -> Result<(Ready, JoinHandle<()>), Error> {
        state.record_http_addr(self.addr)?;
        // Live streams of the page end when the server stops.
        self.app.page.stopping = Some(stop.clone());
        let gate = self.app.gate.is_some();
        let task = server::spawn(self.listener, self.app, stop);
        if gate {
            tracing::info!(addr = %self.addr, "serving the incident page at /, /metrics, /healthz, /readyz, /api/findings, /api/v1/decide");
        } else {
            tracing::info!(addr = %self.addr, "serving the incident page at /, /metrics, /healthz, /readyz, /api/findings");
        }
        Ok((Ready(self.ready), task))
    }
}

/// Sets `/readyz` to ready.
pub struct Ready(Arc<AtomicBool>);

impl Ready {
    /// The instance follows its sources from now on.
    pub fn set(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Binds a listener of the instance's (HTTP, OTLP/HTTP, OTLP/gRPC).
pub async fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), Error> {
    server::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// A running instance, single node or cluster.
pub struct Handle<E, P = ()> {
    /// The bound HTTP address.
    pub addr: SocketAddr,
    /// What this kind of instance reports of its progress (the daemon: the
    /// number of lines fully processed so far; a cluster instance: nothing).
    pub processed: P,
    stop: Arc<watch::Sender<bool>>,
    task: JoinHandle<Result<(), E>>,
}

impl<E, P> Handle<E, P> {
    /// A handle over the instance's main task, stopped through `stop`.
    pub fn new(
        addr: SocketAddr,
        processed: P,
        stop: Arc<watch::Sender<bool>>,
        task: JoinHandle<Result<(), E>>,
    ) -> Self {
        Handle {
            addr,
            processed,
            stop,
            task,
        }
    }

    /// Asks the instance to stop (as SIGTERM does).
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// Waits for it to stop.
    pub async fn wait(self) -> Result<(), E> {
        self.task
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// Runs until `signal` completes (then stops gracefully) or the instance
    /// stops by itself with an error.
    pub async fn run_until(
        mut self,
        signal: impl std::future::Future<Output = ()>,
    ) -> Result<(), E> {
        tokio::select! {
            _ = signal => self.shutdown(),
            r = &mut self.task => {
                return r.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            }
        }
        self.wait().await
    }
}
