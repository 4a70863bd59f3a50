//! `reachguard replay`: the pipeline over files, in event time, then exit.
//!
//! Several inputs are merged by event time (each file's own order is kept).
//! Each input is read in the format of the configured source whose path or glob
//! matches it (and with that source's `trust_advice`), else in `--format`, so one
//! replay can mix formats ([`inputs`]). Findings go to the given writer (stdout)
//! as JSON lines; the caller prints the [`Summary`]. Revocations are executed through the configured hooks unless
//! `--dry-run` is given or no hook is configured (then `status: "dry_run"`).
//! Replay keeps no state: it neither reads nor writes the state directory.
//!
//! Work is spread over the cores: a merge thread reads and decodes each
//! input in blocks of whole lines while the model consumes the merged events
//! on the calling thread. With cores to spare (three or more), blocks of
//! formats whose lines decode independently go to a pool of decoding threads
//! and come back in order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use crate::config::{Config, SourceConfig};
use crate::decode::Format;
use crate::detect::Origin;
use crate::detect::reach::Keyer;
use crate::event::{AccessRef, EventRef, Events, Key, Ts};
use crate::metrics::Metrics;
use crate::pipeline::{
    BlockOutcome, DecodeCounts, Decoding, Input, Pipeline, Resolved, Summary, decode_block,
};
use crate::respond::{self, Hook};

/// Replay options from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Decide but call no hook.
    pub dry_run: bool,
    /// The format of inputs that no configured source matches.
    pub format: Format,
}

/// Why a replay failed (bad lines never fail it; they are counted).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An input could not be opened or read.
    #[error("{path}: {source}")]
    Input {
        /// The input.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Findings could not be written.
    #[error("cannot write findings: {0}")]
    Output(std::io::Error),
    /// A hook could not be set up.
    #[error("{0}")]
    Hook(String),
}

/// Bytes read from an input per block: whole lines, decoded together.
const BLOCK: usize = 256 * 1024;

/// Blocks of a parallel input being decoded ahead of the merge.
const AHEAD: usize = 4;

/// Batches the merge thread may have ready ahead of the model (at most 8 MiB
/// of input, decoded), so decoding goes on while the model stops to refit
/// its peer groups (milliseconds at a time) instead of waiting for it.
const BATCHES_AHEAD: usize = 32;

/// Batches waiting for the model from which on the merge thread keys the
/// next ([`Merge::spawn`]): the model is behind, not between two batches.
const KEY_BEHIND: usize = 2;

/// A decoded block of lines.
struct Decoded {
    events: Events,
    outcome: BlockOutcome,
    /// The block's bytes, for reuse.
    bytes: Vec<u8>,
}

/// A block handed to the decoding workers, and where its result goes.
struct Job {
    format: Format,
    bytes: Vec<u8>,
    reply: mpsc::SyncSender<Decoded>,
}

/// Threads decoding blocks of inputs whose lines decode independently.
struct Pool {
    jobs: Option<mpsc::Sender<Job>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Pool {
    fn start(n: usize) -> Pool {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let threads = (0..n)
            .map(|k| {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("reachguard-decode-{k}"))
                    .spawn(move || {
                        loop {
                            let job = rx.lock().expect("job queue lock").recv();
                            let Ok(job) = job else { return };
                            // Sized for lines of about 100 bytes, a quarter of them names.
                            let mut events =
                                Events::with_capacity(job.bytes.len() / 100, job.bytes.len() / 4);
                            let mut decoder = job.format.decoder();
                            let outcome = decode_block(&mut *decoder, &job.bytes, &mut events);
                            // The merge may have stopped (an error elsewhere).
                            let _ = job.reply.send(Decoded {
                                events,
                                outcome,
                                bytes: job.bytes,
                            });
                        }
                    })
                    .expect("a thread can be started")
            })
            .collect();
        Pool {
            jobs: Some(tx),
            threads,
        }
    }

    fn submit(&self, format: Format, bytes: Vec<u8>) -> mpsc::Receiver<Decoded> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.jobs
            .as_ref()
            .expect("the pool runs until dropped")
            .send(Job {
                format,
                bytes,
                reply,
            })
            .expect("decoding workers run while the pool does");
        rx
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        drop(self.jobs.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

struct Reader {
    path: PathBuf,
    src: Box<dyn Read + Send>,
    /// The start of a line whose end is not read yet.
    carry: Vec<u8>,
    eof: bool,
    /// Lines before the next block to be accounted.
    line_no: u64,
    bytes: u64,
    /// Decoded on the pool (lines independent) or here.
    format: Format,
    parallel: bool,
    in_flight: VecDeque<mpsc::Receiver<Decoded>>,
    /// Decoded events not yet merged, from `next` on.
    pending: Events,
    next: usize,
    spare: Vec<u8>,
}

impl Reader {
    fn open(path: &Path, format: Format, parallel: bool) -> Result<Reader, Error> {
        let src: Box<dyn Read + Send> = if path == Path::new("-") {
            Box::new(std::io::stdin())
        } else {
            Box::new(File::open(path).map_err(|source| Error::Input {
                path: path.to_owned(),
                source,
            })?)
        };
        Ok(Reader {
            path: path.to_owned(),
            src,
            carry: Vec::new(),
            eof: false,
            line_no: 0,
            bytes: 0,
            format,
            parallel,
            in_flight: VecDeque::new(),
            pending: Events::default(),
            next: 0,
            spare: Vec::new(),
        })
    }

    /// The next block of whole lines (the last line of the input may lack
    /// its newline), or `None` at the end.
    fn read_block(&mut self) -> Result<Option<Vec<u8>>, Error> {
        if self.eof {
            return Ok(None);
        }
        let mut buf = std::mem::take(&mut self.spare);
        buf.clear();
        buf.append(&mut self.carry);
        loop {
            let old = buf.len();
            buf.resize(old + BLOCK, 0);
            let n = loop {
                match self.src.read(&mut buf[old..]) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    r => break r,
                }
            }
            .map_err(|source| Error::Input {
                path: self.path.clone(),
                source,
            })?;
            buf.truncate(old + n);
            self.bytes += n as u64;
            if n == 0 {
                self.eof = true;
                return Ok((!buf.is_empty()).then_some(buf));
            }
            if let Some(last) = memchr::memrchr(b'\n', &buf[old..]) {
                self.carry.extend_from_slice(&buf[old + last + 1..]);
                buf.truncate(old + last + 1);
                return Ok(Some(buf));
            }
        }
    }

    /// Keeps up to [`AHEAD`] blocks of a parallel input on the pool.
    fn dispatch(&mut self, pool: &Pool) -> Result<(), Error> {
        while self.in_flight.len() < AHEAD {
            match self.read_block()? {
                Some(bytes) => self.in_flight.push_back(pool.submit(self.format, bytes)),
                None => break,
            }
        }
        Ok(())
    }

    /// Decodes blocks until at least one event is pending or the input ends.
    fn fill(&mut self, idx: usize, d: &mut Decoding, pool: Option<&Pool>) -> Result<(), Error> {
        while self.next >= self.pending.len() {
            let decoded = match pool.filter(|_| self.parallel) {
                Some(pool) => {
                    self.dispatch(pool)?;
                    let Some(rx) = self.in_flight.pop_front() else {
                        return Ok(());
                    };
                    let decoded = rx.recv().expect("decoding workers do not panic");
                    self.dispatch(pool)?;
                    decoded
                }
                None => {
                    let Some(bytes) = self.read_block()? else {
                        return Ok(());
                    };
                    let mut events = std::mem::take(&mut self.pending);
                    events.clear();
                    let outcome = d.decode_block_for(idx, &bytes, &mut events);
                    Decoded {
                        events,
                        outcome,
                        bytes,
                    }
                }
            };
            d.account(idx, &decoded.outcome, &self.path, self.line_no);
            self.line_no += decoded.outcome.lines;
            self.pending = decoded.events;
            self.next = 0;
            self.spare = decoded.bytes;
        }
        Ok(())
    }

    fn head_ts(&self) -> Option<Ts> {
        (self.next < self.pending.len()).then(|| self.pending.get(self.next).ts())
    }
}

/// Decoded events in order, in runs of one input each.
#[derive(Debug, Default)]
pub struct Batch {
    events: Events,
    /// `(input, how many)`, covering `events` in order.
    runs: Vec<(usize, usize)>,
}

impl Batch {
    /// How many events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Every event with the index of its input, in order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, EventRef<'_>)> {
        self.runs
            .iter()
            .flat_map(|&(input, n)| std::iter::repeat_n(input, n))
            .zip(self.events.iter())
    }

    fn push_from(&mut self, input: usize, from: &mut Events, i: usize) {
        from.move_to(i, &mut self.events);
        match self.runs.last_mut() {
            Some((last, n)) if *last == input => *n += 1,
            _ => self.runs.push((input, 1)),
        }
    }
}

/// Inputs read, decoded and merged in event time: always the earliest
/// pending event of any input next, each input's own order kept. Inputs whose
/// lines decode independently are decoded in blocks on a pool of threads,
/// the others in blocks here. Shows progress on a terminal. [`Merge::spawn`]
/// runs it on a thread of its own.
pub struct Merge {
    readers: Vec<Reader>,
    decoding: Decoding,
    pool: Option<Pool>,
    heap: BinaryHeap<Reverse<(Ts, usize)>>,
    started: bool,
    progress: indicatif::ProgressBar,
    /// Bytes read and not yet shown on the progress bar.
    unreported: u64,
    keyer: Keyer,
}

/// Events in event time, in batches, from a [`Merge`] running on its own thread.
pub struct Merged {
    rx: mpsc::Receiver<Result<Batch, Error>>,
    /// Batches sent and not yet taken.
    queued: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<DecodeCounts>,
}

impl Merged {
    /// The next batch (empty at the end).
    pub fn next_batch(&self) -> Result<Batch, Error> {
        match self.rx.recv() {
            Ok(batch) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                batch
            }
            Err(_) => Ok(Batch::default()),
        }
    }

    /// Waits for the thread and returns its decode counts.
    pub fn finish(self) -> DecodeCounts {
        drop(self.rx);
        self.thread
            .join()
            .expect("the decoding thread does not panic")
    }
}

/// Events the model looks up at a time, this many events ahead ([`Ahead`]).
const WARM: usize = 32;

/// A batch's accesses looked up ahead of the model: every [`WARM`] events,
/// the accesses [`WARM`] to `2 * WARM` events on are resolved to the model's
/// ids ([`Pipeline::resolve`]) and what the model reads first for them is
/// read ([`Pipeline::warm`]), so that those cache misses overlap instead of
/// following one another, and the model does not look the names up again.
#[derive(Debug)]
pub struct Ahead {
    /// The keys of events `n..n + 2 * WARM`, at `n % (2 * WARM)`.
    keys: [Option<Key>; 2 * WARM],
}

impl Default for Ahead {
    fn default() -> Ahead {
        Ahead {
            keys: [None; 2 * WARM],
        }
    }
}

impl Ahead {
    /// Event `n` of `batch`, `ev`, with the key it was looked up ahead
    /// with; looks up later events first when due. Called for each event
    /// of a batch in turn from the first.
    #[inline]
    pub fn next<'a>(
        &mut self,
        p: &Pipeline,
        batch: &Batch,
        n: usize,
        ev: EventRef<'a>,
    ) -> EventRef<'a> {
        if n % WARM == 0 {
            let from = if n == 0 { 0 } else { n + WARM };
            let to = (n + 2 * WARM).min(batch.len());
            for i in from..to {
                self.keys[i % (2 * WARM)] = match batch.events.get(i) {
                    EventRef::Access(a) => p.resolve(&a),
                    EventRef::Other(_) => None,
                };
            }
            // Apart, so that many reads are under way at once. `from..to`
            // is all of the ring or one half of it, so its slots are in a row.
            let at = from % (2 * WARM);
            p.warm(self.keys[at..at + to.saturating_sub(from)].iter());
        }
        match ev {
            EventRef::Access(a) => EventRef::Access(AccessRef {
                key: self.keys[n % (2 * WARM)],
                ..a
            }),
            other => other,
        }
    }
}

/// Events per batch handed to the model when inputs are merged (a single
/// input's decoded blocks are handed over whole).
const BATCH: usize = 1024;

impl Merge {
    /// Opens every input (`-` is stdin), each decoded as `inputs` says.
    ///
    /// One core is the model's and one the merge thread's. Blocks go to a
    /// pool only when it can have two threads or more: with one, the merge
    /// thread decodes them itself at the same pace, with one thread less to
    /// schedule.
    pub fn open(paths: &[PathBuf], inputs: &[Input], metrics: &Metrics) -> Result<Merge, Error> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = cores.saturating_sub(1);
        Merge::with_decoding_threads(
            paths,
            inputs,
            metrics,
            if threads >= 2 { threads } else { 0 },
        )
    }

    /// [`Merge::open`] with `threads` decoding threads for the inputs whose
    /// lines decode independently (0: the merge thread decodes every input).
    pub fn with_decoding_threads(
        paths: &[PathBuf],
        inputs: &[Input],
        metrics: &Metrics,
        threads: usize,
    ) -> Result<Merge, Error> {
        let decoding = Decoding::new(inputs, metrics);
        let readers = paths
            .iter()
            .zip(inputs)
            .map(|(x, input)| {
                Reader::open(x, input.format, input.format.decoder().independent_lines())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let pool =
            (threads > 0 && readers.iter().any(|r| r.parallel)).then(|| Pool::start(threads));
        let total: u64 = paths
            .iter()
            .filter(|p| p.as_path() != Path::new("-"))
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        Ok(Merge {
            readers,
            decoding,
            pool,
            heap: BinaryHeap::new(),
            started: false,
            progress: progress_bar(total),
            unreported: 0,
            keyer: Keyer::default(),
        })
    }

    /// Runs on a thread of its own, so that reading, decoding and merging
    /// overlap with the model; batches keep the hand-over cheap.
    ///
    /// When the model is behind (batches wait for it), the thread keys each
    /// batch before sending it ([`Merge::key`]), which takes the name
    /// lookups off the model; when the model waits for batches, it does not,
    /// and decoding stays as fast as it can be.
    pub fn spawn(mut self) -> Merged {
        let (tx, rx) = mpsc::sync_channel(BATCHES_AHEAD);
        let queued = Arc::new(AtomicUsize::new(0));
        let waiting = queued.clone();
        let thread = std::thread::Builder::new()
            .name("reachguard-merge".into())
            .spawn(move || {
                loop {
                    let mut next = self.next_batch();
                    let last = next.as_ref().is_ok_and(Batch::is_empty) || next.is_err();
                    if waiting.fetch_add(1, Ordering::Relaxed) >= KEY_BEHIND
                        && let Ok(batch) = &mut next
                    {
                        self.key(batch);
                    }
                    if tx.send(next).is_err() || last {
                        return self.finish();
                    }
                }
            })
            .expect("a thread can be started");
        Merged { rx, queued, thread }
    }

    /// Gives the batch's accesses their [`Key`](crate::event::Key)s.
    pub fn key(&mut self, batch: &mut Batch) {
        let keyer = &mut self.keyer;
        batch.events.key(|p, r| keyer.key(p, r));
    }

    /// The next events in event time (empty at the end).
    pub fn next_batch(&mut self) -> Result<Batch, Error> {
        if !self.started {
            self.started = true;
            for i in 0..self.readers.len() {
                self.refill(i)?;
            }
        }
        let mut batch = Batch::default();
        // One input: its decoded blocks are already in order, and go whole.
        if self.readers.len() == 1 {
            if let Some(Reverse((_, i))) = self.heap.pop() {
                let r = &mut self.readers[i];
                debug_assert_eq!(r.next, 0, "a single input's blocks go whole");
                batch.events = std::mem::take(&mut r.pending);
                batch.runs.push((i, batch.events.len()));
                self.refill(i)?;
            }
            return Ok(batch);
        }
        while batch.len() < BATCH {
            let Some(Reverse((_, i))) = self.heap.pop() else {
                break;
            };
            let r = &mut self.readers[i];
            batch.push_from(i, &mut r.pending, r.next);
            r.next += 1;
            self.refill(i)?;
        }
        Ok(batch)
    }

    fn refill(&mut self, i: usize) -> Result<(), Error> {
        let r = &mut self.readers[i];
        let before = r.bytes;
        r.fill(i, &mut self.decoding, self.pool.as_ref())?;
        self.unreported += r.bytes - before;
        // Even a hidden bar reads the clock on every update: report in steps.
        if self.unreported >= 1 << 20 {
            self.progress.inc(std::mem::take(&mut self.unreported));
            let c = self.decoding.counts();
            self.progress.set_message(format!(
                "{} lines, {} decode errors",
                c.lines, c.decode_errors
            ));
        }
        if let Some(ts) = self.readers[i].head_ts() {
            self.heap.push(Reverse((ts, i)));
        }
        Ok(())
    }

    /// Clears the progress display and returns the decode counts.
    pub fn finish(self) -> DecodeCounts {
        self.progress.finish_and_clear();
        self.decoding.counts()
    }
}

/// A byte progress bar on stderr when it is a terminal; hidden otherwise, so
/// scripts and pipes see only findings and the summary.
fn progress_bar(total: u64) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
        )
        .expect("valid template"),
    );
    bar
}

/// The pipeline inputs for `paths`: each file takes the format and trust of the
/// first configured source whose path or glob matches it (as written or made
/// absolute); any other file, and stdin (`-`), takes `fallback` and is trusted.
pub fn inputs(cfg: &Config, paths: &[PathBuf], fallback: Format) -> Vec<Input> {
    paths
        .iter()
        .map(|p| {
            let (format, origin) = match matching_source(cfg, p) {
                Some(s) => (s.format, Origin::new(s.format, s.trust_advice)),
                None => (fallback, Origin::new(fallback, true)),
            };
            Input {
                name: p.display().to_string(),
                format,
                origin,
            }
        })
        .collect()
}

fn matching_source<'c>(cfg: &'c Config, path: &Path) -> Option<&'c SourceConfig> {
    if path == Path::new("-") {
        return None;
    }
    let mut forms = vec![path.to_path_buf()];
    forms.extend(std::path::absolute(path).ok());
    forms.extend(path.canonicalize().ok());
    cfg.sources.iter().find(|s| {
        glob::Pattern::new(&s.path).is_ok_and(|pattern| {
            forms
                .iter()
                .any(|f| pattern.matches_path(f) || Path::new(&s.path) == f)
        })
    })
}

/// Writes one finding to `out`, running its revocation's hooks first.
async fn emit(r: Resolved, hooks: &[Hook], out: &mut dyn Write) -> Result<(), Error> {
    let finding = match r {
        Resolved::Final(f) => f,
        Resolved::Revoke(job) => {
            let (status, _, err) = respond::run_hooks(hooks, &job.body, &job.key).await;
            let mut f = job.finding;
            let grant_id = f.grant_id.clone().unwrap_or_default();
            respond::set_action(&mut f, &grant_id, status, err);
            f
        }
        Resolved::AlreadyJournaled => return Ok(()),
    };
    serde_json::to_writer(&mut *out, &finding).map_err(|e| Error::Output(e.into()))?;
    out.write_all(b"\n").map_err(Error::Output)
}

/// Replays `paths` (`-` is stdin) and writes findings to `out`.
pub async fn replay(
    cfg: &Config,
    paths: &[PathBuf],
    opts: &Options,
    out: &mut dyn Write,
) -> Result<Summary, Error> {
    let hooks = if opts.dry_run {
        Vec::new()
    } else {
        cfg.response
            .hooks
            .iter()
            .cloned()
            .map(Hook::new)
            .collect::<Result<Vec<_>, _>>()
            .map_err(Error::Hook)?
    };
    let inputs = inputs(cfg, paths, opts.format);
    let names: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
    let mut p = Pipeline::new(
        cfg,
        inputs,
        Default::default(),
        Default::default(),
        Metrics::new(&names),
        !hooks.is_empty(),
    );
    let merged = Merge::open(paths, p.inputs(), p.metrics())?.spawn();
    let mut ahead = Ahead::default();
    loop {
        let batch = merged.next_batch()?;
        if batch.is_empty() {
            break;
        }
        for (n, (i, ev)) in batch.iter().enumerate() {
            let ev = ahead.next(&p, &batch, n, ev);
            for r in p.process(i, ev, None) {
                emit(r, &hooks, &mut *out).await?;
            }
        }
    }
    // Advice at the very end may still explain a change before it.
    for r in p.settle(None) {
        emit(r, &hooks, &mut *out).await?;
    }
    p.absorb(merged.finish());
    out.flush().map_err(Error::Output)?;
    Ok(p.summary())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Decoder;
    use crate::event::Event;

    /// A native log of `n` lines in time order from `t0`, with the awkward
    /// cases in it: CRLF endings, a line longer than a block, a blank line,
    /// an undecodable line, and no newline after the last line.
    fn awkward_log(n: usize, t0: i64, who: &str) -> String {
        let mut text = String::new();
        for i in 0..n {
            let ts = Ts(t0 + (i as i64) * 1000);
            let line = match i % 500 {
                7 => format!(
                    "{{\"ts\":\"{ts}\",\"type\":\"access\",\"principal\":\"{who}\",\"resource\":\"{}\"}}",
                    "r".repeat(BLOCK + 1000)
                ),
                11 => "not json".to_owned(),
                13 => String::new(),
                17 => format!(
                    "{{\"ts\":\"{ts}\",\"type\":\"revoke\",\"grant_id\":\"g{i}\",\"actor\":\"{who}\"}}"
                ),
                _ => format!(
                    "{{\"ts\":\"{ts}\",\"type\":\"access\",\"principal\":\"{who}\",\"resource\":\"res/{i}\"}}"
                ),
            };
            text.push_str(&line);
            if i + 1 < n {
                text.push_str(if i % 3 == 0 { "\r\n" } else { "\n" });
            }
        }
        text
    }

    /// Line-by-line decoding of `text`, as events.
    fn line_by_line(text: &str) -> Vec<Event> {
        let mut out = Events::default();
        for line in text.lines() {
            let _ = crate::decode::NativeDecoder.decode(line.as_bytes(), &mut out);
        }
        out.to_vec()
    }

    fn merged(paths: &[PathBuf], parallel: bool) -> (Vec<(usize, Event)>, DecodeCounts) {
        let inputs: Vec<Input> = paths
            .iter()
            .map(|p| Input {
                name: p.display().to_string(),
                format: Format::Native,
                origin: Origin::TRUSTED,
            })
            .collect();
        let names: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
        let threads = if parallel { 2 } else { 0 };
        let mut m =
            Merge::with_decoding_threads(paths, &inputs, &Metrics::new(&names), threads).unwrap();
        assert_eq!(m.pool.is_some(), parallel);
        let mut got = Vec::new();
        loop {
            let batch = m.next_batch().unwrap();
            if batch.is_empty() {
                break;
            }
            got.extend(batch.iter().map(|(i, e)| (i, e.to_event())));
        }
        (got, m.finish())
    }

    /// Findings (as JSON) and the model's reach after feeding `path` to a
    /// pipeline batch by batch, every batch keyed or none, looked up
    /// [`Ahead`] or not; and how many accesses were keyed and how many had
    /// their key made (or remade) ahead.
    fn observed(
        cfg: &Config,
        path: &Path,
        keyed: bool,
        look_ahead: bool,
    ) -> (Vec<String>, crate::detect::Reach, usize, usize) {
        let inputs = inputs(cfg, &[path.to_owned()], Format::Native);
        let mut p = Pipeline::new(
            cfg,
            inputs,
            Default::default(),
            Default::default(),
            Metrics::new(&[path.display().to_string()]),
            false,
        );
        let mut m =
            Merge::with_decoding_threads(&[path.to_owned()], p.inputs(), p.metrics(), 0).unwrap();
        let (mut findings, mut with_keys, mut resolved) = (Vec::new(), 0, 0);
        let mut ahead = Ahead::default();
        let key = |ev: &EventRef<'_>| match ev {
            EventRef::Access(a) => a.key,
            EventRef::Other(_) => None,
        };
        loop {
            let mut batch = m.next_batch().unwrap();
            if batch.is_empty() {
                break;
            }
            if keyed {
                m.key(&mut batch);
            }
            for (n, (i, ev)) in batch.iter().enumerate() {
                let given = key(&ev);
                let ev = if look_ahead {
                    ahead.next(&p, &batch, n, ev)
                } else {
                    ev
                };
                with_keys += usize::from(given.is_some());
                resolved += usize::from(key(&ev) != given);
                for r in p.process(i, ev, None) {
                    if let Resolved::Final(f) = r {
                        findings.push(serde_json::to_string(&f).unwrap());
                    }
                }
            }
        }
        (findings, p.engine().reach().clone(), with_keys, resolved)
    }

    #[test]
    fn keyed_batches_and_lookups_ahead_give_the_findings_and_model_plain_ones_do() {
        let org = crate::synth::generate(crate::synth::OrgSpec {
            engineers: 80,
            history_days: 4,
            eval_days: 3,
            seed: 11,
            inject: true,
        });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("org.jsonl");
        let text: Vec<String> = org.events.iter().map(Event::to_native_json).collect();
        std::fs::write(&path, text.join("\n")).unwrap();
        let accesses = org
            .events
            .iter()
            .filter(|e| matches!(EventRef::from(*e), EventRef::Access(_)))
            .count();
        // Fewer principals kept than there are engineers: the model forgets
        // some and renumbers the rest while keyed accesses keep coming.
        let cfg = Config::parse(
            "[sensitivity]\n\"internal/*\" = \"critical\"\n\"vault/*\" = \"critical\"\n\
             \"prod/*\" = \"high\"\n[detection]\nprovisioners = [\"hr-system\"]\n\
             [limits]\nmax_principals = 40\n",
        )
        .unwrap();
        let (plain, plain_reach, keys, resolved) = observed(&cfg, &path, false, false);
        assert_eq!((keys, resolved), (0, 0));
        assert!(
            plain_reach.evicted.principals > 0,
            "principals were forgotten"
        );
        assert!(!plain.is_empty(), "the injected cases are found");
        for (keyed, look_ahead) in [(true, false), (false, true), (true, true)] {
            let (got, reach, keys, resolved) = observed(&cfg, &path, keyed, look_ahead);
            if keyed {
                assert_eq!(keys, accesses, "every access keyed");
            }
            if look_ahead {
                // Not those whose names are new to the model, nor those
                // looked up before a renumbering, frequent here.
                assert!(
                    resolved > accesses / 3,
                    "{resolved} of {accesses} accesses looked up ahead"
                );
            }
            assert_eq!(got, plain, "keyed {keyed}, ahead {look_ahead}");
            assert_eq!(reach, plain_reach, "keyed {keyed}, ahead {look_ahead}");
        }
    }

    #[test]
    fn blocks_decode_every_line_once_and_inputs_merge_in_event_time() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.jsonl");
        let b = dir.path().join("b.jsonl");
        let (text_a, text_b) = (awkward_log(6000, 0, "ann"), awkward_log(2500, 1500, "bob"));
        std::fs::write(&a, &text_a).unwrap();
        std::fs::write(&b, &text_b).unwrap();
        assert!(text_a.len() > 3 * BLOCK, "several blocks");
        let (ev_a, ev_b) = (line_by_line(&text_a), line_by_line(&text_b));

        // One input: exactly its events, in order, on the pool or not.
        for parallel in [true, false] {
            let (got, counts) = merged(std::slice::from_ref(&a), parallel);
            let want: Vec<(usize, Event)> = ev_a.iter().cloned().map(|e| (0, e)).collect();
            assert_eq!(got, want, "parallel {parallel}");
            assert_eq!(counts.lines, 6000);
            assert_eq!(counts.decode_errors, 12, "one undecodable line per 500");
            assert_eq!(counts.skipped, 12, "one blank line per 500");
        }

        // Two inputs: the earliest head next, the first input on a tie.
        let mut want = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < ev_a.len() || j < ev_b.len() {
            let take_a = j == ev_b.len() || (i < ev_a.len() && ev_a[i].ts <= ev_b[j].ts);
            if take_a {
                want.push((0, ev_a[i].clone()));
                i += 1;
            } else {
                want.push((1, ev_b[j].clone()));
                j += 1;
            }
        }
        for parallel in [true, false] {
            let (got, counts) = merged(&[a.clone(), b.clone()], parallel);
            assert_eq!(got.len(), want.len());
            assert!(got == want, "parallel {parallel}: merge order differs");
            assert_eq!(counts.lines, 8500);
        }
    }

    #[test]
    fn inputs_take_the_format_and_trust_of_the_source_that_matches_them() {
        let dir = tempfile::tempdir().unwrap();
        let ct = dir.path().join("trail").join("2026.json");
        let cfg = Config::parse(&format!(
            "[[sources]]\npath = \"{}/trail/*.json\"\nformat = \"cloudtrail\"\n\n[[sources]]\npath = \"forum.jsonl\"\ntrust_advice = false\n",
            dir.path().display()
        ))
        .unwrap();
        let paths = [
            ct,
            PathBuf::from("forum.jsonl"),
            dir.path().join("other.log"),
            PathBuf::from("-"),
        ];
        let got: Vec<(Format, bool)> = inputs(&cfg, &paths, Format::Okta)
            .into_iter()
            .map(|i| (i.format, i.origin.trust_advice))
            .collect();
        assert_eq!(
            got,
            [
                (Format::Cloudtrail, true),
                // A relative path matches a relative source path as written.
                (Format::Native, false),
                (Format::Okta, true),
                (Format::Okta, true),
            ]
        );
    }
}
