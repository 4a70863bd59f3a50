//! The daemon (`reachguard run`): follow sources, detect, respond, serve.
//!
//! One task owns each piece of mutable state: the tailer owns open files, the
//! pipeline task owns the model, the checkpoints and the findings file, the
//! responder owns in-flight hook calls. They talk over bounded channels, so a
//! slow stage slows the ones before it instead of growing memory.
//!
//! Durability order, per line: its revocation intents are journaled (fsync)
//! before the line is acknowledged; findings are flushed and fsynced before each
//! checkpoint; the checkpoint (every source's cursor + model) is written
//! atomically. So after any crash, the lines after the last checkpoint are
//! processed again against the model as of that checkpoint, producing the same
//! findings (same ids, written once) and the same idempotency keys (journaled
//! once).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::detect::Origin;
use crate::instance::{self, Instance};
use crate::metrics::Metrics;
use crate::pipeline::{Input, Pipeline, Resolved};
use crate::respond::{self, Completed, Job, Journal, Responder};
use crate::sink::FindingsSink;
use crate::source::{self, Positions, SourceSpec, TailEvent, Tailer};
use crate::state::StateDir;

/// How often files are polled when no change notification arrives.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long shutdown waits for in-flight hook calls before leaving them to the
/// journal (they resume on the next start).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the daemon could not start or stopped with an error.
pub use crate::instance::Error;

/// A running daemon; `processed` is the number of lines fully processed so
/// far.
pub type Handle = instance::Handle<Error, watch::Receiver<u64>>;

/// Starts the admission webhook when `[gate] listen` is set; it stops with
/// the HTTP server.
async fn start_gate(
    cfg: &Config,
    state: &StateDir,
    asker: &crate::gate::Asker,
    stop: &watch::Receiver<bool>,
) -> Result<(), Error> {
    if let Some((addr, _task)) =
        crate::gate::admission::spawn(&cfg.gate, asker.clone(), stop.clone()).await?
    {
        state.record_gate_addr(addr)?;
        tracing::info!(%addr, mode = ?cfg.gate.mode, "admission webhook on POST /k8s/validate (HTTPS)");
    }
    Ok(())
}

/// Starts the daemon: everything that can fail at start-up fails here.
pub async fn start(cfg: Config) -> Result<Handle, Error> {
    let receiving = cfg.otlp.listen.is_some() || cfg.otlp.grpc_listen.is_some();
    if cfg.sources.is_empty() && !receiving {
        return Err(Error::NoSources);
    }
    let mut names: Vec<String> = cfg.sources.iter().map(|s| s.name.clone()).collect();
    let mut inputs: Vec<Input> = cfg
        .sources
        .iter()
        .map(|s| Input {
            name: s.name.clone(),
            format: s.format,
            origin: Origin::new(s.format, s.trust_advice),
        })
        .collect();
    // The OTLP receiver is one more source, after the files.
    let otlp_input = receiving.then(|| {
        names.push(source::otlp::SOURCE_NAME.to_owned());
        inputs.push(Input {
            name: source::otlp::SOURCE_NAME.to_owned(),
            format: crate::decode::Format::Otlp,
            origin: Origin::new(crate::decode::Format::Otlp, true),
        });
        inputs.len() - 1
    });
    let metrics = Metrics::new(&names).with_top_engineers(cfg.top_engineers);
    let Instance {
        state,
        owner,
        mut sink,
        hooks,
        metrics,
    } = Instance::open(&cfg, metrics)?;
    let findings_path = state.findings_path();
    let saved = state.load()?.unwrap_or_default();
    let (model, reach) = (saved.model, saved.reach);
    let file_names: Vec<String> = cfg.sources.iter().map(|s| s.name.clone()).collect();
    let mut positions = Positions::restore(saved.cursors, &file_names);
    let journal_path = state.journal_path();
    let journal = Journal::open(&journal_path).map_err(|source| Error::Open {
        path: journal_path,
        source,
    })?;
    let journal = Arc::new(Mutex::new(journal));
    let mut pipeline = Pipeline::new(
        &cfg,
        inputs,
        model,
        reach,
        metrics.clone(),
        !hooks.is_empty(),
    )
    .with_journal(Arc::clone(&journal))
    .with_uses(
        cfg.findings_in_memory,
        sink.recent().read().expect("findings lock").iter(),
    );
    let uses_path = state.uses_path();
    let uses = crate::uses::UseLog::open(&uses_path, cfg.findings_in_memory).map_err(|source| {
        Error::Open {
            path: uses_path,
            source,
        }
    })?;
    // What the checkpoint and findings file restored, visible from the first scrape.
    for f in sink.recent().read().expect("findings lock").iter() {
        metrics.remember_expansion(f);
    }
    pipeline.update_model_gauges();

    // Outcomes journaled before a crash whose finding never reached the file.
    let pending = {
        let j = journal.lock().expect("journal lock");
        for (_, e) in j.entries() {
            if let Some(status) = e.outcome {
                if !sink.contains(&e.finding.finding_id) {
                    let mut f = e.finding.clone();
                    let grant_id = f.grant_id.clone().unwrap_or_default();
                    respond::set_action(&mut f, &grant_id, status, None);
                    sink.write(&f).map_err(|source| Error::Open {
                        path: findings_path.clone(),
                        source,
                    })?;
                }
            }
        }
        j.pending()
    };
    metrics.response.journal_pending.set(pending.len() as i64);

    let http = instance::bind_http(&cfg, &metrics, &sink).await?;
    let addr = http.addr;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (gate_asker, gate_requests) = crate::gate::channel();
    let (people, people_requests) = crate::page::channel();
    let http =
        http.with_gate(gate_asker.clone())
            .with_page(Arc::clone(&journal), uses.shared(), people);
    let otlp_settings = source::otlp::Settings {
        max_body_bytes: cfg.otlp.max_body_bytes,
        token: http.token(),
    };
    let (ready, server_task) = http.serve(&state, stop_rx.clone())?;
    start_gate(&cfg, &state, &gate_asker, &stop_rx).await?;

    let (otlp_tx, otlp_rx) = mpsc::channel::<source::otlp::Received>(64);
    let mut receiver_tasks = Vec::new();
    let mut otlp_addrs = Vec::new();
    if let Some(listen) = cfg.otlp.listen {
        let (l, a) = instance::bind(listen).await?;
        tracing::info!(addr = %a, "receiving OTLP/HTTP on /v1/logs and /v1/traces");
        otlp_addrs.push(("http", a));
        receiver_tasks.push(source::otlp::spawn_http(
            l,
            otlp_settings.clone(),
            otlp_tx.clone(),
            stop_rx.clone(),
        ));
    }
    if let Some(listen) = cfg.otlp.grpc_listen {
        let (l, a) = instance::bind(listen).await?;
        tracing::info!(addr = %a, "receiving OTLP/gRPC");
        otlp_addrs.push(("grpc", a));
        receiver_tasks.push(source::otlp::spawn_grpc(
            l,
            otlp_settings,
            otlp_tx.clone(),
            stop_rx.clone(),
        ));
    }
    drop(otlp_tx);
    state.record_otlp_addrs(&otlp_addrs)?;

    let specs = cfg
        .sources
        .iter()
        .map(|s| SourceSpec {
            index: s.index,
            pattern: s.path.clone(),
            start_at: s.start_at,
            max_line_bytes: s.max_line_bytes,
        })
        .collect();
    let lag = metrics.source_lag_bytes.clone();
    let mut tailer =
        Tailer::with_max_open_files(specs, positions.files(), cfg.limits.max_open_files)
            .with_lag_report(Box::new(move |behind| {
                for (index, bytes) in behind {
                    lag.with_label_values(&[&names[*index]])
                        .set(i64::try_from(*bytes).unwrap_or(i64::MAX));
                }
            }));
    let deferred_files = tailer.deferred_files();
    // Checkpointed files that exist no more.
    for (source, key) in tailer.take_forgotten() {
        positions.forget_file(source, key);
    }
    let (line_tx, line_rx) = mpsc::channel::<TailEvent>(1024);
    let (tailer_stop_tx, tailer_stop_rx) = watch::channel(false);
    let tailer_task = tokio::spawn(source::run_events(
        tailer,
        line_tx,
        POLL_INTERVAL,
        tailer_stop_rx,
    ));

    let (job_tx, job_rx) = mpsc::channel::<Job>(256);
    let (done_tx, done_rx) = mpsc::channel::<Completed>(256);
    let responder_task =
        tokio::spawn(Responder::new(hooks, Arc::clone(&journal)).run(job_rx, done_tx));
    for (key, e) in pending {
        tracing::info!(key = %key, "resuming a journaled revocation");
        let body = serde_json::to_vec(&e.payload).expect("payload serialises");
        let _ = job_tx
            .send(Job {
                key,
                body,
                finding: e.finding,
                read_at: None,
            })
            .await;
    }

    let (processed_tx, processed_rx) = watch::channel(0u64);
    ready.set();
    tracing::info!(sources = cfg.sources.len(), state = %state.path().display(), "reachguard running");

    let worker = Worker {
        deferred_files,
        pipeline,
        sink,
        uses,
        cfg: cfg.clone(),
        state,
        _owner: owner,
        positions,
        metrics,
        processed: processed_tx,
        dirty: false,
        otlp_input,
    };
    let task = tokio::spawn(worker.run(
        cfg.checkpoint_interval,
        line_rx,
        otlp_rx,
        gate_requests,
        people_requests,
        receiver_tasks,
        job_tx,
        done_rx,
        stop_rx,
        tailer_stop_tx,
        tailer_task,
        responder_task,
        server_task,
    ));
    Ok(Handle::new(addr, processed_rx, Arc::new(stop_tx), task))
}

/// The pipeline task's state.
struct Worker {
    /// Matching files waiting for an open-file slot (set by the tailer).
    deferred_files: Arc<std::sync::atomic::AtomicUsize>,
    pipeline: Pipeline,
    sink: FindingsSink,
    /// Uses of reported grants, for the incident page.
    uses: crate::uses::UseLog,
    /// For person pages (sensitivity tiers, aliases).
    cfg: Config,
    state: StateDir,
    /// Held for the daemon's life: no `train` rewrites the checkpoint under it.
    _owner: crate::state::OwnerLock,
    /// Every source's acknowledged position.
    positions: Positions,
    metrics: Metrics,
    processed: watch::Sender<u64>,
    dirty: bool,
    /// The pipeline input of the OTLP receiver, when one runs.
    otlp_input: Option<usize>,
}

impl Worker {
    #[allow(clippy::too_many_arguments)]
    async fn run(
        mut self,
        checkpoint_every: Duration,
        mut lines: mpsc::Receiver<TailEvent>,
        mut otlp: mpsc::Receiver<source::otlp::Received>,
        mut gate_requests: mpsc::Receiver<crate::gate::Request>,
        mut people_requests: mpsc::Receiver<crate::page::Request>,
        receiver_tasks: Vec<JoinHandle<()>>,
        jobs: mpsc::Sender<Job>,
        mut done: mpsc::Receiver<Completed>,
        mut stop: watch::Receiver<bool>,
        tailer_stop: watch::Sender<bool>,
        tailer_task: JoinHandle<()>,
        responder_task: JoinHandle<()>,
        server_task: JoinHandle<()>,
    ) -> Result<(), Error> {
        let mut tick = tokio::time::interval(checkpoint_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut result = Ok(());
        loop {
            tokio::select! {
                // The guard `wait_for` returns is not Send; drop it inside.
                _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
                Some(c) = done.recv() => self.completed(c),
                Some(r) = gate_requests.recv() => self.decide(r),
                Some(r) = people_requests.recv() => self.explain(r),
                Some(r) = otlp.recv() => {
                    self.received(r, &jobs).await;
                    self.dirty = true;
                }
                event = lines.recv() => {
                    // With no files to follow, only the receiver feeds the pipeline.
                    let Some(event) = event else {
                        if self.otlp_input.is_some() {
                            let _ = stop.wait_for(|s| *s).await;
                        }
                        break;
                    };
                    if let TailEvent::Line(line) = &event {
                        self.line(line, &jobs).await;
                        // Caught up: make the model's metrics exact now rather
                        // than at the next tick.
                        if lines.is_empty() {
                            self.pipeline.update_model_gauges();
                        }
                    }
                    // Lines are acknowledged only now, after their effects are
                    // recorded; opened and forgotten files arrive in order with them.
                    self.positions.ack_file(&event);
                    self.dirty = true;
                }
                _ = tick.tick() => {
                    self.pipeline.update_model_gauges();
                    self.metrics
                        .source_files_deferred
                        .set(self.deferred_files.load(Ordering::Relaxed) as i64);
                    if let Err(e) = self.checkpoint() {
                        tracing::error!(error = %e, "checkpoint failed; will retry");
                    }
                }
            }
        }
        tracing::info!("shutting down");
        let _ = tailer_stop.send(true);
        let _ = tailer_task.await;
        drop(lines);
        // Requests already handed on are processed; later ones are refused.
        otlp.close();
        while let Some(r) = otlp.recv().await {
            self.received(r, &jobs).await;
        }
        for t in receiver_tasks {
            let _ = t.await;
        }
        drop(jobs);
        // Let in-flight revocations finish (their outcomes are findings to write);
        // whatever is still running after the grace period resumes from the
        // journal on the next start.
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        loop {
            tokio::select! {
                c = done.recv() => match c {
                    Some(c) => self.completed(c),
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!("in-flight revocations still running; they resume from the journal on restart");
                    responder_task.abort();
                    break;
                }
            }
        }
        if let Err(e) = self.checkpoint_now() {
            tracing::error!(error = %e, "final checkpoint failed");
            result = Err(e);
        }
        let _ = server_task.await;
        tracing::info!("stopped");
        result
    }

    async fn line(&mut self, line: &source::Line, jobs: &mpsc::Sender<Job>) {
        let location = crate::pipeline::At(&line.path, line.line_no);
        let resolved = self.pipeline.process_line(
            line.source,
            &line.bytes,
            line.oversized,
            &location,
            Some(line.read_at),
        );
        self.resolve(resolved, jobs).await;
    }

    /// One request of the OTLP receiver, through the same door as a line.
    async fn received(&mut self, r: source::otlp::Received, jobs: &mpsc::Sender<Job>) {
        let Some(input) = self.otlp_input else { return };
        let location = format!("otlp request {}", self.positions.next_request());
        let resolved =
            self.pipeline
                .process_line(input, &r.line, false, &location, Some(r.read_at));
        let rejected = self.pipeline.take_rejected();
        self.resolve(resolved, jobs).await;
        // The sender hears back once the request's effects are recorded, its
        // events in the metrics included (a request is a batch, not a line:
        // refreshing them per request costs little).
        self.pipeline.update_model_gauges();
        self.positions.ack_request();
        let _ = r.done.send(rejected);
    }

    async fn resolve(&mut self, resolved: Vec<Resolved>, jobs: &mpsc::Sender<Job>) {
        self.record_uses();
        for r in resolved {
            match r {
                Resolved::Final(f) => {
                    if let Err(e) = self.sink.write(&f) {
                        tracing::error!(error = %e, finding = %f.finding_id, "cannot write finding");
                    }
                }
                Resolved::Revoke(job) => {
                    self.metrics.response.journal_pending.inc();
                    // Awaiting here is the back-pressure: a burst of revocations
                    // slows ingestion rather than queueing without bound.
                    if jobs.send(job).await.is_err() {
                        tracing::error!(
                            "responder stopped; the intent stays journaled and resumes on restart"
                        );
                    }
                }
                Resolved::AlreadyJournaled => {}
            }
        }
        self.processed.send_modify(|n| *n += 1);
    }

    /// Judges a proposal for a gate against the model as it stands, without
    /// applying it; counts the answer and records a `deny` or `ask` as a
    /// finding.
    fn decide(&mut self, r: crate::gate::Request) {
        let now = crate::event::Ts::now();
        let outcome = crate::gate::decide(self.pipeline.engine_mut(), &r.query, now);
        if let Ok(o) = &outcome {
            self.metrics.gate.count(r.query.gate, o.decision);
            if let Some(f) = &o.finding {
                match self.sink.write(f) {
                    Ok(true) => {
                        self.metrics
                            .findings
                            .with_label_values(&[f.kind.as_str(), f.severity.as_str()])
                            .inc();
                        // Synced to disk with the next checkpoint.
                        self.dirty = true;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(error = %e, finding = %f.finding_id, "cannot write finding")
                    }
                }
            }
        }
        let _ = r.reply.send(outcome);
    }

    /// A person's page: what `explain` shows, from the running engine.
    fn explain(&self, r: crate::page::Request) {
        let recent = self.sink.recent();
        // Their latest ten, as `/api/findings?principal=P&limit=10` gives them.
        let findings_of = |p: &str| {
            let q = crate::sink::Query {
                principal: Some(p.to_owned()),
                limit: Some(10),
                ..Default::default()
            };
            crate::sink::query(&recent, &q).expect("a query without times or severities is valid")
        };
        let answer =
            crate::explain::explain_on(self.pipeline.engine(), &self.cfg, &r.query, findings_of);
        let _ = r.reply.send(answer);
    }

    /// Records the uses of reported grants the last events made.
    fn record_uses(&mut self) {
        for u in self.pipeline.take_uses() {
            if let Err(e) = self.uses.record(u) {
                tracing::error!(error = %e, "cannot record a use of a reported grant");
            }
        }
    }

    fn completed(&mut self, c: Completed) {
        self.metrics.response.journal_pending.dec();
        let latency = c
            .read_at
            .map(|at| c.finished_at.saturating_duration_since(at).as_secs_f64());
        respond::decide::count_outcome(&self.metrics.response, &c.finding, c.status, latency);
        if let Err(e) = self.sink.write(&c.finding) {
            tracing::error!(error = %e, finding = %c.finding.finding_id, "cannot write finding");
        }
    }

    fn checkpoint(&mut self) -> Result<(), Error> {
        if self.dirty {
            self.checkpoint_now()?;
        }
        Ok(())
    }

    fn checkpoint_now(&mut self) -> Result<(), Error> {
        let res = self.write_checkpoint();
        match &res {
            Ok(()) => self.metrics.last_checkpoint_timestamp.set(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64()),
            ),
            Err(_) => self.metrics.checkpoint_errors.inc(),
        }
        res
    }

    fn write_checkpoint(&mut self) -> Result<(), Error> {
        let started = Instant::now();
        // Findings first: a checkpoint must never get ahead of what it implies.
        self.sink.sync().map_err(|source| Error::Open {
            path: self.state.findings_path(),
            source,
        })?;
        self.uses.sync().map_err(|source| Error::Open {
            path: self.state.uses_path(),
            source,
        })?;
        let engine = self.pipeline.engine();
        self.state
            .save(&self.positions.cursors(), engine.model(), engine.reach())?;
        self.dirty = false;
        tracing::debug!(took = ?started.elapsed(), "checkpoint written");
        Ok(())
    }
}
