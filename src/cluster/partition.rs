//! A partition worker: one owned partition's detection and response.
//!
//! Started by the coordinator ([`super::lease`]) when this instance wins the
//! partition's lease, stopped when it loses or releases it. It
//!
//! 1. restores the partition's [`snapshot`] (or starts empty), so its engine
//!    holds exactly the state the previous owner had saved;
//! 2. resumes the partition's revocations that never reached the findings
//!    stream ([`revoke`]);
//! 3. reads the control subject and its partition subject from the snapshot's
//!    resume sequences, puts their events back into the cluster's total order
//!    ([`Resequencer`]) and applies each to its engine: control events to keep
//!    its model complete, its own access events to learn and judge its
//!    principals;
//! 4. reports the findings of its access events and of the control events it
//!    is designated for ([`route::designated`]), publishing each to the
//!    findings stream once, and revokes through the hooks when the cluster's
//!    revocation record says it may;
//! 5. snapshots its state every `snapshot_interval`, after the findings the
//!    snapshot covers are stored.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{self, DeliverPolicy};
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::budget;
use super::headers;
use super::nats::Jet;
use super::reseq::{Offer, Resequencer, Src};
use super::revoke::{self, Outcome, Record, Updated};
use super::route::{self, Position, Route};
use super::snapshot::{self, Progress};
use super::wire;
use crate::config::cluster::ClusterConfig;
use crate::detect::{Detection, Engine, EngineConfig, Origin, RevocationTarget};
use crate::event::Events;
use crate::finding::Finding;
use crate::metrics::Metrics;
use crate::respond::decide::{self, Created, Intents, Response, StoreError};
use crate::respond::{self, Decision, Hook, Policy, Suppression};
use crate::sink::FindingsSink;

/// Findings published but not yet confirmed before the worker waits for them.
const MAX_UNCONFIRMED: usize = 512;

/// What the coordinator asks of a running partition worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Keep going.
    Run,
    /// Hand the partition over: snapshot, let running revocations finish, stop.
    Release,
    /// The lease is lost: stop at once, write nothing more.
    Abort,
}

/// What every partition worker of an instance shares.
pub struct Shared {
    /// NATS handles.
    pub jet: Jet,
    /// `[cluster]`.
    pub cluster: ClusterConfig,
    /// Engine settings.
    pub engine: EngineConfig,
    /// The response policy (one per instance), without the hourly budget.
    pub policy: Mutex<Policy>,
    /// The cluster-wide hourly budget ([`super::budget`]).
    pub budget_per_hour: u32,
    /// Revocation hooks.
    pub hooks: Arc<Vec<Hook>>,
    /// Metrics.
    pub metrics: Metrics,
    /// This instance's findings file and the API's recent findings.
    pub sink: Mutex<FindingsSink>,
    /// The cluster's revocation records.
    pub revocations: revoke::Store,
    /// Idempotency keys whose hooks this instance is running.
    pub in_flight: Mutex<HashSet<String>>,
    /// Principals with a baseline, per owned partition (for
    /// `reachguard_principals_tracked`).
    pub tracked: Mutex<BTreeMap<u32, usize>>,
}

impl Shared {
    /// Records how many principals partition `p` tracks (`None`: no longer owned).
    fn set_tracked(&self, p: u32, n: Option<usize>) {
        let mut t = self.tracked.lock().expect("tracked lock");
        match n {
            Some(n) => t.insert(p, n),
            None => t.remove(&p),
        };
        self.metrics
            .principals_tracked
            .set(t.values().sum::<usize>() as i64);
    }
}

/// Runs partition `p` until `stop` says otherwise. `lease` carries the
/// instant until which this instance may act for the partition.
pub async fn run(
    shared: Arc<Shared>,
    p: u32,
    lease: watch::Receiver<Instant>,
    stop: watch::Receiver<Stop>,
) -> Result<(), String> {
    let c = &shared.cluster;
    let saved = snapshot::load(&shared.jet, p)
        .await
        .map_err(|e| e.to_string())?;
    let (engine, reseq) = match saved {
        Some(s) if s.partitions != c.partitions || s.partition != p => {
            return Err(format!(
                "snapshot of partition {p} is for partition {} of {}",
                s.partition, s.partitions
            ));
        }
        Some(s) => {
            tracing::info!(partition = p, from = %s.instance, position = ?s.reseq.done, "restoring partition snapshot");
            (
                Engine::new(s.model, s.reach, &shared.engine),
                Resequencer::new(s.reseq),
            )
        }
        None => (
            Engine::new(Default::default(), Default::default(), &shared.engine),
            Resequencer::new(super::reseq::ReseqState {
                resume: [1, 1],
                ..Default::default()
            }),
        ),
    };
    let published_upto = last_published(&shared.jet, p).await?;
    let resume = reseq.state().resume;
    let mut w = Worker {
        p,
        engine,
        reseq,
        published_upto,
        unconfirmed: Vec::new(),
        jobs: JoinSet::new(),
        lease,
        dirty: false,
        scratch: Events::default(),
        shared,
    };
    w.resume_revocations().await?;
    let shared = Arc::clone(&w.shared);
    shared.set_tracked(p, Some(w.engine.reach().baselined()));
    let result = w.run(resume, stop).await;
    shared.set_tracked(p, None);
    result
}

/// The position of the last finding partition `p` published as it processed
/// events, and its index among that event's findings.
async fn last_published(jet: &Jet, p: u32) -> Result<Option<(Position, u32)>, String> {
    use async_nats::jetstream::stream::LastRawMessageErrorKind;
    match jet
        .findings
        .get_last_raw_message_by_subject(&jet.names.findings(p))
        .await
    {
        Ok(m) => Ok(m
            .headers
            .get(headers::POSITION)
            .and_then(|v| parse_finding_position(v.as_str()))),
        Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => Ok(None),
        Err(e) => Err(format!("findings stream: {e}")),
    }
}

/// `RAW.IDX.J`: the event's position and the finding's index among its findings.
fn parse_finding_position(s: &str) -> Option<(Position, u32)> {
    let (pos, j) = s.rsplit_once('.')?;
    Some((pos.parse().ok()?, j.parse().ok()?))
}

/// One event waiting for its turn.
struct Item {
    /// Its frame ([`super::wire`]).
    frame: bytes::Bytes,
    /// From a source whose advice events do not count.
    untrusted: bool,
    /// When an instance read its raw line (Unix milliseconds).
    read_ms: Option<i64>,
}

struct Worker {
    shared: Arc<Shared>,
    p: u32,
    engine: Engine,
    reseq: Resequencer<Item>,
    /// Findings up to here were published by an earlier owner.
    published_upto: Option<(Position, u32)>,
    /// Findings sent to the findings stream, not yet confirmed stored.
    unconfirmed: Vec<PublishAckFuture>,
    /// Running revocations.
    jobs: JoinSet<()>,
    lease: watch::Receiver<Instant>,
    /// Applied something since the last snapshot.
    dirty: bool,
    scratch: Events,
}

impl Worker {
    fn lease_valid(&self) -> bool {
        *self.lease.borrow() > Instant::now()
    }

    async fn consumer(&self, src: Src, start: u64) -> Result<consumer::pull::Ordered, String> {
        let names = &self.shared.jet.names;
        let subject = match src {
            Src::Control => names.control(),
            Src::Partition => names.partition(self.p),
        };
        let c = self
            .shared
            .jet
            .events
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: subject.clone(),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: start.max(1),
                },
                ..Default::default()
            })
            .await
            .map_err(|e| format!("consumer of {subject}: {e}"))?;
        c.messages()
            .await
            .map_err(|e| format!("consumer of {subject}: {e}"))
    }

    async fn run(
        mut self,
        resume: [u64; 2],
        mut stop: watch::Receiver<Stop>,
    ) -> Result<(), String> {
        let first = self
            .shared
            .jet
            .events
            .get_info()
            .await
            .map_err(|e| format!("events stream: {e}"))?
            .state
            .first_sequence;
        if resume.iter().any(|r| *r > 1 && *r < first) {
            tracing::error!(
                partition = self.p,
                ?resume,
                first,
                "the partition snapshot is older than the events stream keeps (events_max_age): events were lost"
            );
        }
        let mut control = self.consumer(Src::Control, resume[0]).await?;
        let mut own = self.consumer(Src::Partition, resume[1]).await?;
        let mut tick = tokio::time::interval(self.shared.cluster.snapshot_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        tracing::info!(partition = self.p, ?resume, "partition running");
        loop {
            tokio::select! {
                biased;
                changed = stop.changed() => {
                    let what = if changed.is_err() { Stop::Abort } else { *stop.borrow() };
                    match what {
                        Stop::Run => continue,
                        Stop::Abort => {
                            tracing::warn!(partition = self.p, "partition lease lost; stopping without writing");
                            self.jobs.abort_all();
                            return Ok(());
                        }
                        Stop::Release => return self.release(stop).await,
                    }
                }
                Some(_) = self.jobs.join_next(), if !self.jobs.is_empty() => {}
                m = control.next() => self.message(Src::Control, m).await?,
                m = own.next() => self.message(Src::Partition, m).await?,
                _ = tick.tick() => {
                    if self.dirty {
                        self.snapshot().await?;
                    }
                }
            }
        }
    }

    /// Hands the partition over: a last snapshot, then the running
    /// revocations finish here (their outcomes are recorded by this instance,
    /// not repeated by the next owner); the lease is kept meanwhile. Only a
    /// lost lease, or the coordinator giving up at exit, cuts that short.
    async fn release(mut self, mut stop: watch::Receiver<Stop>) -> Result<(), String> {
        if self.lease_valid() {
            self.snapshot().await?;
        }
        if !self.jobs.is_empty() {
            tracing::info!(
                partition = self.p,
                running = self.jobs.len(),
                "waiting for running revocations before handing the partition over"
            );
        }
        while !self.jobs.is_empty() {
            tokio::select! {
                _ = self.jobs.join_next() => {}
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() == Stop::Abort {
                        tracing::warn!(partition = self.p, "revocations still running at hand-over; the next owner resumes them");
                        self.jobs.abort_all();
                        break;
                    }
                }
            }
        }
        tracing::info!(partition = self.p, "partition released");
        Ok(())
    }

    async fn message(
        &mut self,
        src: Src,
        m: Option<Result<async_nats::jetstream::Message, consumer::pull::OrderedError>>,
    ) -> Result<(), String> {
        let m = match m {
            None => return Err(format!("partition {}: event consumer ended", self.p)),
            Some(Err(e)) => {
                // The ordered consumer recreates itself after gaps and missed
                // heartbeats; what it reports here is worth a line, not a stop.
                tracing::warn!(partition = self.p, error = %e, "event consumer");
                return Ok(());
            }
            Some(Ok(m)) => m,
        };
        let seq = m.info().map_err(|e| e.to_string())?.stream_sequence;
        let message = m.message;
        let header = |name: &str| {
            message
                .headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_owned())
        };
        if let Some(w) = header(headers::WATERMARK).and_then(|w| w.parse::<u64>().ok()) {
            let before = self.reseq.bound();
            self.reseq.watermark(src, seq, w);
            self.dirty |= self.reseq.bound() != before;
        } else if let Some(positions) = header(headers::POSITIONS) {
            let untrusted = header(headers::UNTRUSTED).is_some();
            let read_ms = header(headers::READ_MS).and_then(|v| v.parse().ok());
            let payload = &message.payload;
            let mut frames = wire::frames(payload);
            for pos in positions.split(',') {
                let (Ok(pos), Some(Ok(frame))) = (pos.parse::<Position>(), frames.next()) else {
                    tracing::error!(
                        partition = self.p,
                        seq,
                        "event message with unreadable positions; skipped"
                    );
                    break;
                };
                let item = Item {
                    frame: payload.slice_ref(frame),
                    untrusted,
                    read_ms,
                };
                if self.reseq.offer(src, seq, pos, item) == Offer::Duplicate {
                    tracing::trace!(partition = self.p, %pos, "duplicate event dropped");
                }
            }
        } else {
            tracing::warn!(
                partition = self.p,
                seq,
                "event message without positions ignored"
            );
            return Ok(());
        }
        let mut applied = 0u32;
        while let Some((pos, item)) = self.reseq.pop() {
            self.apply(pos, &item).await?;
            self.dirty = true;
            applied += 1;
            if applied % 256 == 0 {
                tokio::task::yield_now().await;
            }
        }
        Ok(())
    }

    /// Applies one event to the engine and reports what is this partition's to report.
    async fn apply(&mut self, pos: Position, item: &Item) -> Result<(), String> {
        self.scratch.clear();
        if let Err(e) = wire::decode(&item.frame, &mut self.scratch) {
            tracing::error!(partition = self.p, %pos, error = %e, "normalised event unreadable; skipped");
            return Ok(());
        }
        let ev = self.scratch.get(0);
        let (untrusted, read_ms) = (item.untrusted, item.read_ms);
        let detections = self
            .engine
            .observe_ref(ev, Origin::new(crate::decode::Format::Native, !untrusted));
        let partitions = self.shared.cluster.partitions;
        let speaks = match route::route(ev, partitions) {
            Route::Partition(q) => q == self.p,
            Route::Control => route::designated(ev, partitions) == self.p,
        };
        if !speaks {
            return Ok(());
        }
        let m = &self.shared.metrics;
        m.events
            .with_label_values(&[ev.event_type().as_str()])
            .inc();
        let latest = self.engine.model().latest().as_secs_f64();
        if latest > m.last_event_timestamp.get() {
            m.last_event_timestamp.set(latest);
        }
        for (j, d) in detections.into_iter().enumerate() {
            self.detection(pos, j as u32, d, read_ms).await?;
        }
        Ok(())
    }

    async fn detection(
        &mut self,
        pos: Position,
        j: u32,
        d: Detection,
        read_ms: Option<i64>,
    ) -> Result<(), String> {
        if let Some(at) = read_ms {
            let now = chrono::Utc::now().timestamp_millis();
            self.shared
                .metrics
                .detection_latency
                .observe((now - at).max(0) as f64 / 1000.0);
        }
        match d.target {
            None => self.publish(pos, j, d.finding).await,
            Some(t) => self.revocation(pos, j, d.finding, t, read_ms).await,
        }
    }

    /// A finding that calls for a revocation: the cluster's record decides
    /// whether this instance runs it.
    async fn revocation(
        &mut self,
        pos: Position,
        j: u32,
        finding: Finding,
        mut target: RevocationTarget,
        read_ms: Option<i64>,
    ) -> Result<(), String> {
        // Partitions read native lines: the vendor the target names stands in
        // for the input format the ingesting instance decoded.
        if let Some(f) = target.undo.as_ref().and_then(|u| u.vendor_format()) {
            target.format = f;
        }
        let mut store = Recorded {
            shared: &self.shared,
            p: self.p,
        };
        let metrics = &self.shared.metrics;
        // The response path's log lines name the partition through the span.
        let span = tracing::info_span!("partition", partition = self.p);
        let response = decide::respond(&mut store, finding, &target, &metrics.response)
            .instrument(span)
            .await?;
        match response {
            Response::Final(f) => self.publish(pos, j, f).await,
            Response::Execute((rec, rev)) => {
                self.spawn_job(rec, rev, read_ms);
                Ok(())
            }
            Response::Recorded((rec, rev)) => {
                // The same finding again: this partition's events replayed
                // after a takeover. Finish the record if nobody is finishing it.
                if !rec.published && !self.running(&rec.key) {
                    self.spawn_job(rec, rev, read_ms);
                }
                Ok(())
            }
        }
    }

    /// Whether this instance is running the hooks of `key` already.
    fn running(&self, key: &str) -> bool {
        self.shared
            .in_flight
            .lock()
            .expect("in-flight lock")
            .contains(key)
    }

    /// Finishes every record of this partition an earlier owner left unfinished.
    async fn resume_revocations(&mut self) -> Result<(), String> {
        for (rec, rev) in self.shared.revocations.unfinished(self.p).await? {
            if !self.running(&rec.key) {
                tracing::info!(key = %rec.key, partition = self.p, hooks_answered = rec.outcome.is_some(), "resuming a revocation");
                self.spawn_job(rec, rev, None);
            }
        }
        Ok(())
    }

    fn spawn_job(&mut self, rec: Record, rev: u64, read_ms: Option<i64>) {
        let guard = InFlight::enter(Arc::clone(&self.shared), rec.key.clone());
        let (p, lease) = (self.p, self.lease.clone());
        self.jobs.spawn(async move {
            finish(&guard.shared, p, rec, rev, lease, read_ms).await;
            drop(guard);
        });
    }

    /// Publishes a finding of an event once, skipping what an earlier owner
    /// already published.
    async fn publish(&mut self, pos: Position, j: u32, f: Finding) -> Result<(), String> {
        if self.published_upto.is_some_and(|u| (pos, j) <= u) {
            return Ok(());
        }
        let body = serde_json::to_vec(&f).expect("finding serialises");
        let msg = PublishMessage::build()
            .payload(body.into())
            .message_id(&f.finding_id)
            .header(headers::POSITION, format!("{pos}.{j}"));
        let ack = self
            .shared
            .jet
            .js
            .send_publish(self.shared.jet.names.findings(self.p), msg)
            .await
            .map_err(|e| format!("publishing a finding: {e}"))?;
        self.unconfirmed.push(ack);
        record_locally(&self.shared, &f);
        if self.unconfirmed.len() >= MAX_UNCONFIRMED {
            self.confirm().await?;
        }
        Ok(())
    }

    /// Waits until every published finding is stored.
    async fn confirm(&mut self) -> Result<(), String> {
        for ack in self.unconfirmed.drain(..) {
            ack.await.map_err(|e| format!("finding not stored: {e}"))?;
        }
        Ok(())
    }

    /// Saves the partition's state; the findings it covers are stored first.
    async fn snapshot(&mut self) -> Result<(), String> {
        self.confirm().await?;
        if !self.lease_valid() {
            // Not provably the owner any more: a stale write could only cost
            // replay time, but there is no reason to make it.
            return Ok(());
        }
        let started = Instant::now();
        let c = &self.shared.cluster;
        let now = chrono::Utc::now().timestamp_millis();
        let state = self.reseq.state();
        let bytes = snapshot::encode(
            self.p,
            c.partitions,
            state,
            &c.instance,
            now,
            self.engine.model(),
            self.engine.reach(),
        );
        let progress = Progress {
            instance: c.instance.clone(),
            complete_below: self.reseq.bound(),
            reseq: state,
            taken_at_ms: now,
            bytes: bytes.len(),
        };
        snapshot::store(&self.shared.jet, self.p, &bytes, &progress)
            .await
            .map_err(|e| e.to_string())?;
        self.dirty = false;
        self.shared
            .set_tracked(self.p, Some(self.engine.reach().baselined()));
        tracing::debug!(partition = self.p, bytes = bytes.len(), took = ?started.elapsed(), position = ?state.done, "partition snapshot written");
        Ok(())
    }
}

/// The cluster's revocation records as the response path's store
/// ([`decide::Intents`]), with the cluster-wide hourly budget.
struct Recorded<'a> {
    shared: &'a Shared,
    p: u32,
}

impl Intents for Recorded<'_> {
    type Intent = (Record, u64);
    type Record = (Record, u64);
    const UNAVAILABLE: &'static str = "cluster revocation state unavailable";

    async fn get(&mut self, key: &str) -> Result<Option<Self::Record>, StoreError> {
        self.shared
            .revocations
            .get(key)
            .await
            .map_err(StoreError::Unavailable)
    }

    fn decide(&mut self, target: &RevocationTarget) -> Decision {
        self.shared
            .policy
            .lock()
            .expect("policy lock")
            .decide(target, Instant::now())
    }

    async fn spend(&mut self) -> Result<Option<Decision>, StoreError> {
        let max = self.shared.budget_per_hour;
        match budget::try_spend(&self.shared.jet.progress, max).await {
            Ok(budget::Verdict::Spent) => Ok(None),
            Ok(budget::Verdict::Exhausted(spent)) => Ok(Some(Decision::Suppressed(
                Suppression::Budget,
                format!(
                    "revocation budget exhausted ({spent} in the last hour across the cluster, max_revocations_per_hour = {max})"
                ),
            ))),
            Err(e) => Err(StoreError::Unavailable(e.to_string())),
        }
    }

    async fn create(
        &mut self,
        key: &str,
        payload: serde_json::Value,
        finding: &Finding,
    ) -> Result<Created<Self::Intent, Self::Record>, StoreError> {
        let rec = Record::intent(
            key.to_owned(),
            self.p,
            &self.shared.cluster.instance,
            payload,
            finding.clone(),
        );
        match self.shared.revocations.create(&rec).await {
            Ok(revoke::Created::Mine(rev)) => Ok(Created::Mine((rec, rev))),
            Ok(revoke::Created::Exists) => match self.shared.revocations.get(key).await {
                Ok(Some(existing)) => Ok(Created::Exists(existing)),
                Ok(None) => Err(StoreError::Fatal(format!(
                    "revocation record {key} vanished"
                ))),
                Err(e) => Err(StoreError::Unavailable(e)),
            },
            Err(e) => Err(StoreError::Unavailable(e)),
        }
    }

    fn finding_id(record: &Self::Record) -> &str {
        &record.0.finding.finding_id
    }

    fn state(record: &Self::Record) -> String {
        record.0.state()
    }
}

/// Marks an idempotency key as being finished by this instance, until dropped
/// (also when its task is aborted because the lease was lost).
struct InFlight {
    shared: Arc<Shared>,
    key: String,
}

impl InFlight {
    fn enter(shared: Arc<Shared>, key: String) -> InFlight {
        shared
            .in_flight
            .lock()
            .expect("in-flight lock")
            .insert(key.clone());
        InFlight { shared, key }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut set) = self.shared.in_flight.lock() {
            set.remove(&self.key);
        }
    }
}

/// Writes a finding to this instance's findings file and counts it.
fn record_locally(shared: &Shared, f: &Finding) {
    shared
        .metrics
        .findings
        .with_label_values(&[f.kind.as_str(), f.severity.as_str()])
        .inc();
    if let Err(e) = shared.sink.lock().expect("sink lock").write(f) {
        tracing::error!(error = %e, finding = %f.finding_id, "cannot write finding");
    }
}

/// Carries a revocation record to its end: hooks (when no outcome is recorded
/// yet), outcome, the finding in the findings stream, `published`.
async fn finish(
    shared: &Shared,
    p: u32,
    mut rec: Record,
    mut rev: u64,
    lease: watch::Receiver<Instant>,
    read_ms: Option<i64>,
) {
    if rec.outcome.is_none() {
        if *lease.borrow() <= Instant::now() {
            tracing::warn!(key = %rec.key, "partition lease lapsed; the revocation is left to the next owner");
            return;
        }
        let body = serde_json::to_vec(&rec.payload).expect("payload serialises");
        let (status, attempts, error) = respond::run_hooks(&shared.hooks, &body, &rec.key).await;
        let outcome = Outcome {
            status,
            attempts,
            error,
            at_ms: chrono::Utc::now().timestamp_millis(),
            instance: shared.cluster.instance.clone(),
        };
        rec.outcome = Some(outcome);
        match write(shared, &rec, rev).await {
            Some(r) => rev = r,
            None => return,
        }
        let latency = read_ms.map(|at| {
            let now = chrono::Utc::now().timestamp_millis();
            (now - at).max(0) as f64 / 1000.0
        });
        decide::count_outcome(&shared.metrics.response, &rec.finding, status, latency);
    }
    let Some(f) = rec.finding_with_action() else {
        return;
    };
    let body = serde_json::to_vec(&f).expect("finding serialises");
    let mut stored = false;
    for attempt in 0..5u32 {
        let msg = PublishMessage::build()
            .payload(body.clone().into())
            .message_id(&f.finding_id);
        let res = match shared
            .jet
            .js
            .send_publish(shared.jet.names.findings_action(p), msg)
            .await
        {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match res {
            Ok(()) => {
                stored = true;
                break;
            }
            Err(e) => {
                tracing::warn!(finding = %f.finding_id, attempt, error = %e, "publishing a revocation finding");
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
        }
    }
    if !stored {
        tracing::error!(finding = %f.finding_id, "revocation finding not published; the partition's next owner publishes it");
        return;
    }
    record_locally(shared, &f);
    rec.published = true;
    write(shared, &rec, rev).await;
}

/// Updates a record, retrying transient errors; on a conflict the record was
/// finished elsewhere (after a lease was lost) and is left alone.
async fn write(shared: &Shared, rec: &Record, rev: u64) -> Option<u64> {
    for attempt in 0..5u32 {
        match shared.revocations.update(rec, rev).await {
            Ok(Updated::Done(r)) => return Some(r),
            Ok(Updated::Conflict) => {
                tracing::warn!(key = %rec.key, "revocation record changed by another instance; leaving it");
                return None;
            }
            Err(e) => {
                tracing::warn!(key = %rec.key, attempt, error = %e, "cannot update a revocation record");
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
        }
    }
    tracing::error!(key = %rec.key, "revocation record not updated; the partition's next owner finishes it");
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finding_positions_parse() {
        assert_eq!(
            parse_finding_position("17.2.0"),
            Some((Position::new(17, 2), 0))
        );
        assert_eq!(
            parse_finding_position("17.2.3"),
            Some((Position::new(17, 2), 3))
        );
        assert_eq!(parse_finding_position("17.2"), None);
        assert!((Position::new(17, 2), 3) > (Position::new(17, 2), 0));
        assert!((Position::new(17, 2), 3) < (Position::new(17, 3), 0));
    }
}
