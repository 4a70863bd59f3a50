//! The pipeline core: decode -> detect -> decide, for one line or one event.
//!
//! Synchronous and free of I/O apart from the action journal, so `replay`, the
//! daemon (`daemon`) and the tests all run exactly this code. It counts what it
//! sees (the `replay` summary and the metrics) and logs undecodable lines with
//! their file and line number.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use crate::config::Config;
use crate::decode::{DecodeError, Decoder, Format};
use crate::detect::{Engine, EngineConfig, Origin, Reach};
use crate::event::{Event, EventRef, Events};
use crate::finding::Finding;
use crate::metrics::Metrics;
use crate::model::Model;
use futures_util::FutureExt;

use crate::respond::decide::{Journaled, Response};
use crate::respond::{self, Job, Journal, Policy};

/// Counts over a run; the `replay` summary object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Lines read.
    pub lines: u64,
    /// Events decoded.
    pub events: u64,
    /// Events by type.
    pub by_type: BTreeMap<&'static str, u64>,
    /// Lines understood but of no use.
    pub skipped: u64,
    /// Lines that could not be decoded.
    pub decode_errors: u64,
    /// Findings raised.
    pub findings: u64,
}

/// A line's place, `file:line`, formatted only if it is ever displayed (a
/// decode error is logged): building that string for every line would cost
/// more than decoding many of them.
#[derive(Debug, Clone, Copy)]
pub struct At<'a>(pub &'a std::path::Path, pub u64);

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.0.display(), self.1)
    }
}

/// What became of one finding.
#[derive(Debug)]
pub enum Resolved {
    /// Final as it is (no action, dry run or suppressed): write it out.
    Final(Finding),
    /// A revocation to execute; its intent is already journaled (daemon) or not
    /// (replay, which has no journal).
    Revoke(Job),
    /// The same finding's revocation was journaled before (its line processed
    /// again after a restart): nothing to do, the finding is or will be written
    /// by that job. (Another finding about a journaled grant is `Final`, with
    /// `status: "suppressed"`.)
    AlreadyJournaled,
}

/// A configured input of the pipeline.
#[derive(Debug, Clone)]
pub struct Input {
    /// Name for logs and metric labels.
    pub name: String,
    /// Its format.
    pub format: Format,
    /// Whether its advice events count.
    pub origin: Origin,
}

/// How many decode errors per input are logged one by one before logging
/// switches to one line per thousand (the counters keep counting all of them).
const LOG_EACH_ERROR_UP_TO: u64 = 100;

/// The `what` labels of `reachguard_evictions_total`.
const EVICTED: [&str; 6] = [
    "principal",
    "resource",
    "advice",
    "grant",
    "sighting",
    "untraced_grant",
];

/// The engine's eviction counts, in `EVICTED` order.
fn evictions(e: &Engine) -> [u64; 6] {
    let (r, m) = (e.reach().evicted, e.stats().evicted);
    [
        r.principals,
        r.resources,
        m.advice,
        m.grants,
        m.sightings,
        e.stats().untraced_forgotten,
    ]
}

/// One input's counters, looked up once instead of per line.
struct InputCounters {
    lines: prometheus::IntCounter,
    skipped: prometheus::IntCounter,
    decode_errors: prometheus::IntCounter,
}

/// Lines read, skipped and undecodable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeCounts {
    /// Lines read.
    pub lines: u64,
    /// Lines understood but of no use.
    pub skipped: u64,
    /// Lines that could not be decoded.
    pub decode_errors: u64,
}

/// What decoding a block of lines gave besides its events: for the caller to
/// count and log in order ([`Decoding::account`]), wherever it ran.
#[derive(Debug, Default)]
pub struct BlockOutcome {
    /// Lines in the block.
    pub lines: u64,
    /// Lines understood but of no use.
    pub skipped: u64,
    /// Lines that could not be decoded: index in the block (from 0), and why.
    pub errors: Vec<(u64, DecodeError)>,
}

/// Decodes every line of `block` (whole lines; the last one's newline is
/// optional; a `\r` before a newline is dropped) onto the end of `out`.
/// Counts and logs nothing, so it can run on any thread.
pub fn decode_block(decoder: &mut dyn Decoder, block: &[u8], out: &mut Events) -> BlockOutcome {
    let mut outcome = BlockOutcome::default();
    let mut rest = block;
    while !rest.is_empty() {
        let (mut line, next) = match memchr::memchr(b'\n', rest) {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        line = line.strip_suffix(b"\r").unwrap_or(line);
        let before = out.len();
        match decoder.decode(line, out) {
            Err(e) => outcome.errors.push((outcome.lines, e)),
            Ok(()) if out.len() == before => outcome.skipped += 1,
            Ok(()) => {}
        }
        outcome.lines += 1;
    }
    outcome
}

/// The decode stage: each input's decoder, its counters, and the logging of
/// lines that cannot be decoded. Separate from [`Pipeline`] so that replay can
/// decode on one core while the model runs on the other.
pub struct Decoding {
    names: Vec<String>,
    decoders: Vec<Box<dyn Decoder>>,
    errors_per_input: Vec<u64>,
    counters: Vec<InputCounters>,
    counts: DecodeCounts,
    /// Records rejected in the last line decoded ([`Decoding::decode_into`]).
    rejected: crate::decode::Rejected,
    rejected_counters: [prometheus::IntCounter; 2],
}

impl Decoding {
    /// A decoder per input, counting into `metrics`.
    pub fn new(inputs: &[Input], metrics: &Metrics) -> Decoding {
        Decoding {
            names: inputs.iter().map(|i| i.name.clone()).collect(),
            decoders: inputs.iter().map(|i| i.format.decoder()).collect(),
            errors_per_input: vec![0; inputs.len()],
            counters: inputs
                .iter()
                .map(|i| InputCounters {
                    lines: metrics.lines.with_label_values(&[&i.name]),
                    skipped: metrics.skipped.with_label_values(&[&i.name]),
                    decode_errors: metrics.decode_errors.with_label_values(&[&i.name]),
                })
                .collect(),
            counts: DecodeCounts::default(),
            rejected: Default::default(),
            rejected_counters: [
                metrics.otlp_rejected.with_label_values(&["log_record"]),
                metrics.otlp_rejected.with_label_values(&["span"]),
            ],
        }
    }

    /// The records the last line decoded held but could not use (OTLP's
    /// partial success); taken, so asked once per line.
    pub fn take_rejected(&mut self) -> crate::decode::Rejected {
        std::mem::take(&mut self.rejected)
    }

    /// What was decoded so far.
    pub fn counts(&self) -> DecodeCounts {
        self.counts
    }

    /// Decodes a block of input `input`'s lines with its own decoder (see
    /// [`decode_block`]); account for it with [`Decoding::account`].
    pub fn decode_block_for(
        &mut self,
        input: usize,
        block: &[u8],
        out: &mut Events,
    ) -> BlockOutcome {
        decode_block(&mut *self.decoders[input], block, out)
    }

    /// Counts a decoded block of input `input` whose first line follows line
    /// `lines_before` of `path`, and logs its errors with their line numbers.
    pub fn account(
        &mut self,
        input: usize,
        outcome: &BlockOutcome,
        path: &std::path::Path,
        lines_before: u64,
    ) {
        self.counts.lines += outcome.lines;
        self.counters[input].lines.inc_by(outcome.lines);
        self.counts.skipped += outcome.skipped;
        self.counters[input].skipped.inc_by(outcome.skipped);
        for (k, e) in &outcome.errors {
            self.error(input, &At(path, lines_before + k + 1), e);
        }
    }

    fn error(&mut self, input: usize, location: &dyn std::fmt::Display, e: &DecodeError) {
        self.counts.decode_errors += 1;
        self.counters[input].decode_errors.inc();
        let name = &self.names[input];
        let n = &mut self.errors_per_input[input];
        *n += 1;
        if *n <= LOG_EACH_ERROR_UP_TO {
            tracing::warn!(source = %name, at = %location, error = %e, "line skipped: cannot decode");
        } else if *n % 1000 == 0 {
            tracing::warn!(source = %name, at = %location, error = %e, errors = *n, "line skipped: cannot decode (logging 1 in 1000 from here)");
        }
    }

    /// Decodes one line of input `input` into `out` (cleared first). Counts the
    /// line, and logs and counts a decode error with `location` (file:line).
    pub fn decode_into(
        &mut self,
        input: usize,
        line: &[u8],
        oversized: bool,
        location: &dyn std::fmt::Display,
        out: &mut Events,
    ) -> Result<(), DecodeError> {
        out.clear();
        self.counts.lines += 1;
        self.counters[input].lines.inc();
        let res = if oversized {
            Err(DecodeError::Oversized)
        } else {
            self.decoders[input].decode(line, out)
        };
        self.rejected = self.decoders[input].take_rejected();
        if !self.rejected.is_empty() {
            self.rejected_counters[0].inc_by(self.rejected.log_records);
            self.rejected_counters[1].inc_by(self.rejected.spans);
            if let Some(m) = &self.rejected.message {
                tracing::warn!(source = %self.names[input], at = %location, log_records = self.rejected.log_records, spans = self.rejected.spans, "records rejected: {m}");
            }
        }
        match &res {
            Err(e) => self.error(input, location, e),
            Ok(()) if out.is_empty() => {
                self.counts.skipped += 1;
                self.counters[input].skipped.inc();
            }
            Ok(()) => {}
        }
        res
    }
}

/// Decode, detect and decide.
pub struct Pipeline {
    decoding: Decoding,
    /// Decode counts of stages run elsewhere (replay's decoding thread).
    absorbed: DecodeCounts,
    events_by_type: Vec<prometheus::IntCounter>,
    /// Events by type, in `EventType::ALL` order (the summary's map is made
    /// from it when asked for: a map update per event costs more than a line).
    by_type: [u64; crate::event::EventType::ALL.len()],
    /// How many of those `events_by_type` shows: it is brought up to date
    /// with the other model metrics, not with an atomic add per event.
    by_type_shown: [u64; crate::event::EventType::ALL.len()],
    /// Eviction counts already added to the metric (the persisted counts at
    /// start, so a restart does not count old evictions again).
    evicted: [u64; 6],
    inputs: Vec<Input>,
    engine: Engine,
    policy: Policy,
    journal: Option<Arc<Mutex<Journal>>>,
    /// The grants of findings whose uses are recorded (the daemon's).
    watches: Option<crate::uses::Watches>,
    metrics: Metrics,
    summary: Summary,
    scratch: Events,
}

impl Pipeline {
    /// A pipeline over `inputs`, starting from `model`.
    pub fn new(
        cfg: &Config,
        inputs: Vec<Input>,
        model: Model,
        reach: Reach,
        metrics: Metrics,
        have_hooks: bool,
    ) -> Pipeline {
        let r = &cfg.response;
        // A revocation is routed by the format its grant was read in.
        let inputs: Vec<Input> = inputs
            .into_iter()
            .map(|mut i| {
                i.origin.format = i.format;
                i
            })
            .collect();
        let engine = Engine::new(model, reach, &EngineConfig::from_config(cfg));
        let decoding = Decoding::new(&inputs, &metrics);
        let events_by_type = crate::event::EventType::ALL
            .iter()
            .map(|t| metrics.events.with_label_values(&[t.as_str()]))
            .collect();
        Pipeline {
            decoding,
            absorbed: DecodeCounts::default(),
            events_by_type,
            by_type: [0; crate::event::EventType::ALL.len()],
            by_type_shown: [0; crate::event::EventType::ALL.len()],
            inputs,
            evicted: evictions(&engine),
            engine,
            policy: Policy::from_config(r, have_hooks),
            journal: None,
            watches: None,
            metrics,
            summary: Summary::default(),
            scratch: Events::default(),
        }
    }

    /// Journals every executed revocation's intent before it is handed out, and
    /// charges the hourly budget with what the journal shows was executed in
    /// the last hour, so a restart does not refill it.
    pub fn with_journal(mut self, journal: Arc<Mutex<Journal>>) -> Pipeline {
        self.policy
            .charge_from_journal(&journal.lock().expect("journal lock"));
        self.journal = Some(journal);
        self
    }

    /// Records the uses of the grants of the latest `keep` findings
    /// ([`crate::uses`]), starting with those of `findings`.
    pub fn with_uses<'a>(
        mut self,
        keep: usize,
        findings: impl IntoIterator<Item = &'a crate::finding::Finding>,
    ) -> Pipeline {
        let mut w = crate::uses::Watches::new(keep);
        for f in findings {
            w.watch(f);
        }
        self.watches = Some(w);
        self
    }

    /// The uses of watched grants seen since the last call.
    pub fn take_uses(&mut self) -> Vec<crate::uses::Use> {
        self.watches
            .as_mut()
            .map(crate::uses::Watches::take)
            .unwrap_or_default()
    }

    /// The counts so far.
    pub fn summary(&self) -> Summary {
        let d = self.decoding.counts();
        let mut s = self.summary.clone();
        s.by_type = crate::event::EventType::ALL
            .iter()
            .zip(self.by_type)
            .filter(|(_, n)| *n > 0)
            .map(|(t, n)| (t.as_str(), n))
            .collect();
        s.lines = d.lines + self.absorbed.lines;
        s.skipped = d.skipped + self.absorbed.skipped;
        s.decode_errors = d.decode_errors + self.absorbed.decode_errors;
        s
    }

    /// The detection engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Looks an access up ahead of the model: the key it is to be processed
    /// with ([`Reach::resolve`](crate::detect::Reach::resolve)).
    #[inline]
    pub fn resolve(&self, a: &crate::event::AccessRef<'_>) -> Option<crate::event::Key> {
        self.engine.reach().resolve(a.principal, a.resource, a.key)
    }

    /// Reads ahead what the model will read first for accesses with these
    /// keys ([`Reach::warm`](crate::detect::Reach::warm)).
    #[inline]
    pub fn warm<'a>(&self, keys: impl Iterator<Item = &'a Option<crate::event::Key>>) {
        let reach = self.engine.reach();
        std::hint::black_box(keys.flatten().fold(0u32, |acc, &k| acc ^ reach.warm(k)));
    }

    /// The detection engine, to finish training.
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The configured inputs.
    pub fn inputs(&self) -> &[Input] {
        &self.inputs
    }

    /// Decodes one line of input `input` into `out` (cleared first); see
    /// [`Decoding::decode_into`].
    pub fn decode_into(
        &mut self,
        input: usize,
        line: &[u8],
        oversized: bool,
        location: &dyn std::fmt::Display,
        out: &mut Events,
    ) -> Result<(), DecodeError> {
        self.decoding
            .decode_into(input, line, oversized, location, out)
    }

    /// The records the last line processed held but could not use.
    pub fn take_rejected(&mut self) -> crate::decode::Rejected {
        self.decoding.take_rejected()
    }

    /// Adds the counts of a decode stage that ran outside this pipeline.
    pub fn absorb(&mut self, counts: DecodeCounts) {
        self.absorbed.lines += counts.lines;
        self.absorbed.skipped += counts.skipped;
        self.absorbed.decode_errors += counts.decode_errors;
    }

    /// Decodes and processes one line; the daemon's per-line step.
    pub fn process_line(
        &mut self,
        input: usize,
        line: &[u8],
        oversized: bool,
        location: &dyn std::fmt::Display,
        read_at: Option<Instant>,
    ) -> Vec<Resolved> {
        let mut events = std::mem::take(&mut self.scratch);
        let mut out = Vec::new();
        if self
            .decode_into(input, line, oversized, location, &mut events)
            .is_ok()
        {
            for ev in events.iter() {
                out.extend(self.process(input, ev, read_at));
            }
        }
        self.scratch = events;
        out.extend(self.settle(read_at));
        out
    }

    /// Traces the changes no advice explained against the advice reported
    /// since ([`Engine::settle`]): the end of a batch of events (a line, an
    /// OTLP request), once the approvals that came with the advice are in.
    pub fn settle(&mut self, read_at: Option<Instant>) -> Vec<Resolved> {
        let detections = self.engine.settle();
        self.decide(detections, read_at)
    }

    /// Brings the model's metrics up to date (events by type, principals,
    /// newest event time, baselines, peer groups, evictions): every 256
    /// events and on every finding, by the daemon whenever it has caught up
    /// and on its tick, and once at start so a restored checkpoint shows
    /// before the first new event.
    pub fn update_model_gauges(&mut self) {
        for (i, counter) in self.events_by_type.iter().enumerate() {
            counter.inc_by(self.by_type[i] - self.by_type_shown[i]);
        }
        self.by_type_shown = self.by_type;
        let model = self.engine.model();
        self.metrics
            .principals_tracked
            .set(self.engine.reach().baselined() as i64);
        let now = evictions(&self.engine);
        for (i, what) in EVICTED.iter().enumerate() {
            if now[i] > self.evicted[i] {
                self.metrics
                    .evictions
                    .with_label_values(&[what])
                    .inc_by(now[i] - self.evicted[i]);
            }
        }
        self.evicted = now;
        self.metrics.set_last_event_time(model.latest());
        self.metrics
            .set_untrusted_advice_ignored(self.engine.stats().untrusted_advice_ignored);
        let reach = self.engine.reach();
        self.metrics
            .baseline_principals
            .set(reach.baselined() as i64);
        self.metrics
            .untraced_grants
            .set(self.engine.untraced() as i64);
        self.metrics
            .peer_groups
            .set(reach.peers.clusters.len() as i64);
        self.metrics
            .peer_groups_fitted_timestamp
            .set(reach.peers.fitted_at.map_or(0.0, |t| t.as_secs_f64()));
    }

    /// Runs one decoded event through detection and the policy.
    pub fn process_event(
        &mut self,
        input: usize,
        ev: &Event,
        read_at: Option<Instant>,
    ) -> Vec<Resolved> {
        self.process(input, EventRef::from(ev), read_at)
    }

    /// [`Pipeline::process_event`] for an event read in place.
    pub fn process(
        &mut self,
        input: usize,
        ev: EventRef<'_>,
        read_at: Option<Instant>,
    ) -> Vec<Resolved> {
        let t = ev.event_type();
        self.summary.events += 1;
        self.by_type[t as usize] += 1;
        let origin = self.inputs[input].origin;
        if let (Some(w), EventRef::Access(a)) = (&mut self.watches, &ev) {
            w.access(a);
        }
        let detections = self.engine.observe_ref(ev, origin);
        // The gauges describe the whole model; refreshing them on every event
        // would cost more than most events. The daemon also refreshes them on
        // every checkpoint tick, so they are never stale for long.
        if detections.is_empty() && self.summary.events % 256 == 0 {
            self.update_model_gauges();
        }
        self.decide(detections, read_at)
    }

    /// Findings and the policy's decisions on their revocations.
    fn decide(
        &mut self,
        detections: Vec<crate::detect::Detection>,
        read_at: Option<Instant>,
    ) -> Vec<Resolved> {
        if !detections.is_empty() {
            self.update_model_gauges();
        }
        let mut out = Vec::with_capacity(detections.len());
        for d in detections {
            let finding = d.finding;
            if let Some(w) = &mut self.watches {
                w.watch(&finding);
            }
            self.summary.findings += 1;
            self.metrics.finding(&finding);
            if let Some(at) = read_at {
                self.metrics
                    .detection_latency
                    .observe(at.elapsed().as_secs_f64());
            }
            let Some(target) = d.target else {
                out.push(Resolved::Final(finding));
                continue;
            };
            let mut store = Journaled {
                journal: self.journal.as_deref(),
                policy: &mut self.policy,
                read_at,
            };
            // The journal answers at once: its futures never wait.
            let response =
                respond::decide::respond(&mut store, finding, &target, &self.metrics.response)
                    .now_or_never()
                    .expect("the journal never waits");
            out.push(match response {
                Ok(Response::Final(f)) => Resolved::Final(f),
                Ok(Response::Execute(job)) => Resolved::Revoke(job),
                Ok(Response::Recorded(_)) => Resolved::AlreadyJournaled,
                Err(e) => unreachable!("the journal store reports no fatal error: {e}"),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::ActionStatus;

    fn pipeline(cfg: &Config, journal: &std::path::Path, metrics: &Metrics) -> Pipeline {
        let input = Input {
            name: "app".into(),
            format: Format::Native,
            origin: Origin::TRUSTED,
        };
        Pipeline::new(
            cfg,
            vec![input],
            Model::default(),
            Reach::default(),
            metrics.clone(),
            true,
        )
        .with_journal(Arc::new(Mutex::new(Journal::open(journal).unwrap())))
    }

    fn run(p: &mut Pipeline, line: &str) -> Vec<Resolved> {
        p.process_line(0, line.as_bytes(), false, &"test:1", None)
    }

    fn series(m: &Metrics, s: &str) -> bool {
        m.render().lines().any(|l| l == s)
    }

    #[test]
    fn events_by_type_reach_the_summary_at_once_and_the_metric_with_the_model_gauges() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::parse("").unwrap();
        let metrics = Metrics::new(&["app".to_owned()]);
        let mut p = pipeline(&cfg, &dir.path().join("journal"), &metrics);
        for i in 0..300 {
            run(
                &mut p,
                &format!(
                    r#"{{"ts":"2026-03-18T09:00:00Z","type":"access","principal":"p{i}","resource":"wiki"}}"#
                ),
            );
        }
        run(
            &mut p,
            r#"{"ts":"2026-03-18T09:00:01Z","type":"revoke","grant_id":"g1","actor":"alice"}"#,
        );
        let s = p.summary();
        assert_eq!(s.by_type.get("access"), Some(&300));
        assert_eq!(s.by_type.get("revoke"), Some(&1));
        assert_eq!(s.by_type.len(), 2);
        // Brought up to date every 256 events: 256 so far.
        assert!(series(
            &metrics,
            r#"reachguard_events_total{type="access"} 256"#
        ));
        p.update_model_gauges();
        assert!(series(
            &metrics,
            r#"reachguard_events_total{type="access"} 300"#
        ));
        assert!(series(
            &metrics,
            r#"reachguard_events_total{type="revoke"} 1"#
        ));
        p.update_model_gauges();
        assert!(
            series(&metrics, r#"reachguard_events_total{type="access"} 300"#),
            "not counted twice"
        );
    }

    #[test]
    fn a_second_finding_for_a_journaled_grant_counts_as_a_duplicate_suppression() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Metrics::new(&["app".into()]);
        let mut p = pipeline(
            &Config::default(),
            &dir.path().join("actions.jsonl"),
            &metrics,
        );
        run(
            &mut p,
            r#"{"ts":"2026-03-18T08:00:00Z","type":"grant","grant_id":"g-sre","actor":"erin","grantee":"sre","grantee_type":"group","resource":"prod/db"}"#,
        );
        let add = |ts: &str| {
            format!(
                r#"{{"ts":"2026-03-18T09:{ts}Z","type":"membership","actor":"agent:ops-bot","group":"sre","member":"u1","op":"add"}}"#
            )
        };
        let first = run(&mut p, &add("00:00"));
        assert!(
            matches!(first.as_slice(), [Resolved::Revoke(_)]),
            "{first:?}"
        );
        // Removed in the log, then added again: a new finding about the same
        // membership, whose one revocation is already journaled.
        run(
            &mut p,
            r#"{"ts":"2026-03-18T09:01:00Z","type":"membership","actor":"admin","group":"sre","member":"u1","op":"remove"}"#,
        );
        let again = run(&mut p, &add("02:00"));
        let [Resolved::Final(f)] = again.as_slice() else {
            panic!("{again:?}");
        };
        let action = f.action.as_ref().unwrap();
        assert_eq!(action.status, ActionStatus::Suppressed);
        assert!(
            action.reason.as_deref().unwrap().contains("already"),
            "{action:?}"
        );
        assert!(series(
            &metrics,
            r#"reachguard_revocations_suppressed_total{reason="duplicate"} 1"#
        ));
        assert!(series(
            &metrics,
            r#"reachguard_revocations_suppressed_total{reason="budget"} 0"#
        ));
        let findings: f64 = metrics
            .render()
            .lines()
            .filter(|l| l.starts_with(r#"reachguard_findings_total{kind="unverified_agent_grant""#))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum();
        assert_eq!(findings, 2.0, "both findings are counted");
    }

    #[test]
    fn policy_suppressions_are_counted_by_reason() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Metrics::new(&["app".into()]);
        let mut cfg = Config::default();
        cfg.response.protected = vec![crate::model::Pattern::new("breakglass-*").unwrap()];
        cfg.response.max_revocations_per_hour = 1;
        let mut p = pipeline(&cfg, &dir.path().join("actions.jsonl"), &metrics);
        for (i, grantee) in ["breakglass-ops", "u1", "u2"].iter().enumerate() {
            run(
                &mut p,
                &format!(
                    r#"{{"ts":"2026-03-18T09:0{i}:00Z","type":"grant","grant_id":"g{i}","actor":"agent:ops-bot","grantee":"{grantee}","resource":"prod/db"}}"#
                ),
            );
        }
        for (reason, n) in [("protected", 1), ("budget", 1), ("confidence", 0)] {
            let s = format!(r#"reachguard_revocations_suppressed_total{{reason="{reason}"}} {n}"#);
            assert!(series(&metrics, &s), "missing {s}");
        }
        assert!(series(
            &metrics,
            r#"reachguard_revocations_total{status="suppressed"} 2"#
        ));
    }
}
