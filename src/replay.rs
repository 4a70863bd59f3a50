//! `reachguard replay`: the pipeline over files, in event time, then exit.
//!
//! Several inputs are merged by event time (each file's own order is kept).
//! Each input is read in the format of the configured source whose path or glob
//! matches it (and with that source's `trust_advice`), else in `--format`, so one
//! replay can mix formats ([`inputs`]). Findings go to the given writer (stdout)
//! as JSON lines; the caller prints the [`Summary`]. Revocations are executed through the configured hooks unless
//! `--dry-run` is given or no hook is configured (then `status: "dry_run"`).
//! Replay keeps no state: it neither reads nor writes the state directory.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crate::config::{Config, SourceConfig};
use crate::decode::Format;
use crate::detect::Origin;
use crate::event::{Event, Ts};
use crate::metrics::Metrics;
use crate::pipeline::{DecodeCounts, Decoding, Input, Pipeline, Resolved, Summary};
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

struct Reader {
    path: PathBuf,
    lines: Box<dyn BufRead + Send>,
    line_no: u64,
    pending: VecDeque<Event>,
    eof: bool,
    buf: Vec<u8>,
    bytes: u64,
}

impl Reader {
    fn open(path: &Path) -> Result<Reader, Error> {
        let lines: Box<dyn BufRead + Send> = if path == Path::new("-") {
            Box::new(BufReader::new(std::io::stdin()))
        } else {
            Box::new(BufReader::with_capacity(
                256 * 1024,
                File::open(path).map_err(|source| Error::Input {
                    path: path.to_owned(),
                    source,
                })?,
            ))
        };
        Ok(Reader {
            path: path.to_owned(),
            lines,
            line_no: 0,
            pending: VecDeque::new(),
            eof: false,
            buf: Vec::new(),
            bytes: 0,
        })
    }

    /// Reads until at least one event is pending or the input ends.
    fn fill(
        &mut self,
        idx: usize,
        d: &mut Decoding,
        scratch: &mut Vec<Event>,
    ) -> Result<(), Error> {
        while self.pending.is_empty() && !self.eof {
            self.buf.clear();
            let n = self
                .lines
                .read_until(b'\n', &mut self.buf)
                .map_err(|source| Error::Input {
                    path: self.path.clone(),
                    source,
                })?;
            if n == 0 {
                self.eof = true;
                break;
            }
            self.bytes += n as u64;
            self.line_no += 1;
            let mut line = self.buf.as_slice();
            line = line.strip_suffix(b"\n").unwrap_or(line);
            line = line.strip_suffix(b"\r").unwrap_or(line);
            let loc = crate::pipeline::At(&self.path, self.line_no);
            if d.decode_into(idx, line, false, &loc, scratch).is_ok() {
                self.pending.extend(scratch.drain(..));
            }
        }
        Ok(())
    }

    fn head_ts(&self) -> Option<Ts> {
        self.pending.front().map(|e| e.ts)
    }
}

/// Inputs read, decoded and merged in event time: always the earliest
/// pending event of any input next, each input's own order kept. Shows
/// progress on a terminal. [`Merge::spawn`] runs it on a thread of its own.
pub struct Merge {
    readers: Vec<Reader>,
    decoding: Decoding,
    heap: BinaryHeap<Reverse<(Ts, usize)>>,
    scratch: Vec<Event>,
    started: bool,
    progress: indicatif::ProgressBar,
    unreported: u64,
}

/// Events in event time, in batches, from a [`Merge`] running on its own thread.
pub struct Merged {
    rx: std::sync::mpsc::Receiver<Result<Vec<(usize, Event)>, Error>>,
    thread: std::thread::JoinHandle<DecodeCounts>,
}

impl Merged {
    /// The next batch (empty at the end).
    pub fn next_batch(&self) -> Result<Vec<(usize, Event)>, Error> {
        match self.rx.recv() {
            Ok(batch) => batch,
            Err(_) => Ok(Vec::new()),
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

/// Events per batch handed from the decoding thread to the model.
const BATCH: usize = 1024;

impl Merge {
    /// Opens every input (`-` is stdin), each decoded as `inputs` says.
    pub fn open(paths: &[PathBuf], inputs: &[Input], metrics: &Metrics) -> Result<Merge, Error> {
        let readers = paths
            .iter()
            .map(|x| Reader::open(x))
            .collect::<Result<Vec<_>, _>>()?;
        let total: u64 = paths
            .iter()
            .filter(|p| p.as_path() != Path::new("-"))
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        Ok(Merge {
            readers,
            decoding: Decoding::new(inputs, metrics),
            heap: BinaryHeap::new(),
            scratch: Vec::new(),
            started: false,
            progress: progress_bar(total),
            unreported: 0,
        })
    }

    /// Runs on a thread of its own, so that reading and decoding use one core
    /// while the model uses the other; batches keep the hand-over cheap.
    pub fn spawn(mut self) -> Merged {
        let (tx, rx) = std::sync::mpsc::sync_channel(8);
        let thread = std::thread::Builder::new()
            .name("reachguard-decode".into())
            .spawn(move || {
                loop {
                    let mut batch = Vec::with_capacity(BATCH);
                    while batch.len() < BATCH {
                        match self.next_event() {
                            Ok(Some(x)) => batch.push(x),
                            Ok(None) => break,
                            Err(e) => {
                                let _ = tx.send(Err(e));
                                return self.finish();
                            }
                        }
                    }
                    let last = batch.len() < BATCH;
                    if tx.send(Ok(batch)).is_err() || last {
                        return self.finish();
                    }
                }
            })
            .expect("a thread can be started");
        Merged { rx, thread }
    }

    /// The next event in event time, with the index of its input.
    pub fn next_event(&mut self) -> Result<Option<(usize, Event)>, Error> {
        if !self.started {
            self.started = true;
            for i in 0..self.readers.len() {
                self.refill(i)?;
            }
        }
        let Some(Reverse((_, i))) = self.heap.pop() else {
            return Ok(None);
        };
        let ev = self.readers[i]
            .pending
            .pop_front()
            .expect("heap entries have an event");
        self.refill(i)?;
        Ok(Some((i, ev)))
    }

    fn refill(&mut self, i: usize) -> Result<(), Error> {
        let r = &mut self.readers[i];
        if r.pending.is_empty() {
            let before = r.bytes;
            r.fill(i, &mut self.decoding, &mut self.scratch)?;
            // Even a hidden bar reads the clock on every update: report in steps.
            self.unreported += r.bytes - before;
            if self.unreported >= 1 << 20 {
                self.progress.inc(std::mem::take(&mut self.unreported));
                let c = self.decoding.counts();
                self.progress.set_message(format!(
                    "{} lines, {} decode errors",
                    c.lines, c.decode_errors
                ));
            }
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
                Some(s) => (
                    s.format,
                    Origin {
                        trust_advice: s.trust_advice,
                    },
                ),
                None => (fallback, Origin::TRUSTED),
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
    loop {
        let batch = merged.next_batch()?;
        if batch.is_empty() {
            break;
        }
        for (i, ev) in batch {
            for r in p.process_event(i, &ev, None) {
                let finding = match r {
                    Resolved::Final(f) => f,
                    Resolved::Revoke(job) => {
                        let (status, _, err) =
                            respond::run_hooks(&hooks, &job.body, &job.key).await;
                        let mut f = job.finding;
                        let grant_id = f.grant_id.clone().unwrap_or_default();
                        respond::set_action(&mut f, &grant_id, status, err);
                        f
                    }
                    Resolved::AlreadyJournaled => continue,
                };
                serde_json::to_writer(&mut *out, &finding).map_err(|e| Error::Output(e.into()))?;
                out.write_all(b"\n").map_err(Error::Output)?;
            }
        }
    }
    p.absorb(merged.finish());
    out.flush().map_err(Error::Output)?;
    Ok(p.summary())
}

#[cfg(test)]
mod tests {
    use super::*;

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
