//! File source: a `tail -F`-like follower of plain paths and glob patterns.
//!
//! [`Tailer`] is the synchronous core. [`Tailer::new`] expands every pattern and
//! opens what matches; each [`Tailer::poll`] re-expands the patterns, stats what it
//! finds and reads the complete lines appended since the previous call. [`run`]
//! (or [`run_events`]) drives it from tokio: it polls whenever inotify reports a
//! change in a watched directory and every `poll_interval` regardless, because
//! inotify is only a wake-up hint: polling alone is correct.
//!
//! # Identity, rotation and truncation
//!
//! * A file is identified by `(source, dev, ino)`, never by its path. A file
//!   renamed to a name that still matches keeps its position; a new file at the old
//!   path is a new file and is read from 0.
//! * Rename rotation, deletion: a file that stops matching stays open and is
//!   drained through its handle, so lines a writer appends to the old inode after
//!   the rename are still delivered. It is closed and reported by
//!   [`Tailer::take_forgotten`] once it has not matched for two consecutive scans,
//!   a read in the current poll reached EOF with no new data, and the close grace
//!   ([`Tailer::with_close_grace`], default 5 s) has passed since it last yielded
//!   data. A partial last line still held at that point is dropped.
//! * Truncation (copytruncate) is detected when the size drops below the read
//!   position, when the fingerprint changed, or (fingerprint still unknown) when
//!   the bytes under the held partial line changed. Reading restarts at 0 and the
//!   file's `epoch` is incremented so that [`Checkpoints`] still only move forward.
//!   Lines appended between the last poll and the truncation exist only in the copy
//!   and are lost: that race is inherent to copytruncate.
//! * Copies (copytruncate under a glob that matches the copy, as
//!   `/var/log/app/access.log*` does): a file is identified by its content as
//!   well. A new file whose first bytes have the fingerprint of a file still
//!   followed, and whose bytes equal that file's up to the shorter length, is a
//!   copy: it waits until the original is truncated or closed. A new file whose
//!   fingerprint is that of content truncated away or closed ([`RetiredHead`],
//!   kept in [`Checkpoints`] so restarts know them too) continues where reading
//!   that content ended, delivering only lines of it not read yet. Compressed
//!   files (`.gz`, `.bz2`, `.xz`, `.zst`, `.zip`, or their magic bytes) are
//!   never read.
//! * Fingerprint ([`fingerprint`]): FNV-1a 64 of the first line including its `\n`
//!   if that line is complete and at most 256 bytes; otherwise of the first 256
//!   bytes if the file has that many; otherwise 0, "unknown yet". A known
//!   fingerprint never changes while a file only grows. Fingerprints are compared
//!   only when both are known, except that known-then-unknown means truncation.
//!   Files whose first lines are identical (fixed headers) are indistinguishable.
//!
//! # Start positions and exactly-once
//!
//! A file with a checkpoint whose fingerprint matches resumes at the checkpoint;
//! otherwise (inode reused, truncated while down) it starts at 0. A file without a
//! checkpoint found by [`Tailer::new`] starts at 0 ([`StartAt::Beginning`]) or just
//! after its last complete line ([`StartAt::End`], counting its lines once so that
//! line numbers stay true); files appearing later always start at 0. A
//! checkpointed file that no longer matches but is found by inode in its old
//! directory (rotated while the daemon was down) is drained, then closed.
//! Checkpoint entries of files not found at all are reported as forgotten.
//!
//! Delivery is exactly-once across restarts when the owner acknowledges lines
//! ([`Checkpoints::ack`]) only after their effects are durable, records the
//! positions of newly opened files ([`Tailer::take_opened`]) so that rotation under
//! back-pressure cannot lose a file that had no acknowledged line yet, and forgets
//! files ([`Tailer::take_forgotten`]) only after acknowledging their lines.
//! [`run_events`] delivers all three in that order on one channel.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

/// Default for [`SourceSpec::max_line_bytes`]: 1 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;
/// How many leading bytes the fingerprint covers at most.
pub const FINGERPRINT_BYTES: usize = 256;
/// Default for [`Tailer::with_close_grace`].
pub const DEFAULT_CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Lines read per poll by [`run`] before handing them to the channel.
const RUN_BATCH: usize = 1024;
const READ_CHUNK: usize = 64 * 1024;

/// Identity of a file independent of its path: survives rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileKey {
    /// Device number (`st_dev`).
    pub dev: u64,
    /// Inode number (`st_ino`).
    pub ino: u64,
}

impl FileKey {
    /// The identity of the file `meta` describes.
    pub fn of(meta: &fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// Where a file has been processed up to. Serializable: stored in the daemon's checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilePosition {
    /// Last path the file was seen at.
    pub path: PathBuf,
    /// Byte offset just after the last acknowledged complete line.
    pub offset: u64,
    /// Number of complete lines acknowledged (the last acknowledged line's 1-based number).
    pub line_no: u64,
    /// [`fingerprint`] of the file's first bytes, 0 if unknown.
    pub fingerprint: u64,
    /// Times the file was found truncated (or its checkpoint invalid) and reread
    /// from 0; orders positions of the same inode across truncations.
    #[serde(default)]
    pub epoch: u64,
}

fn retired_head(source: usize, p: &FilePosition) -> RetiredHead {
    RetiredHead {
        source,
        fingerprint: p.fingerprint,
        offset: p.offset,
        line_no: p.line_no,
    }
}

impl FilePosition {
    fn is_after(&self, other: &FilePosition) -> bool {
        (self.epoch, self.offset) > (other.epoch, other.offset)
    }
}

/// All acknowledged positions, keyed by (source index, [`FileKey`]).
///
/// Serializes as `{"files":[{"source":0,"key":{"dev":..,"ino":..},"position":{..}}]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "CheckpointsRepr", into = "CheckpointsRepr")]
pub struct Checkpoints {
    files: BTreeMap<(usize, FileKey), FilePosition>,
    /// Contents no longer at any file this tailer follows (truncated away,
    /// closed): where their reading ended, so that a copy of one found later
    /// continues there instead of being read again. Oldest first.
    retired: Vec<RetiredHead>,
}

/// How far the content with a given fingerprint was read before its file was
/// truncated or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredHead {
    /// Index of the configured source.
    pub source: usize,
    /// The content's [`fingerprint`].
    pub fingerprint: u64,
    /// Byte offset just after the last line read (acknowledged, in a checkpoint).
    pub offset: u64,
    /// That line's 1-based number.
    pub line_no: u64,
}

/// Most retired heads remembered; the oldest are dropped first.
pub const MAX_RETIRED_HEADS: usize = 256;

/// Remember `head`, replacing an earlier one of the same content; at most
/// [`MAX_RETIRED_HEADS`], oldest dropped.
fn remember_head(heads: &mut Vec<RetiredHead>, head: RetiredHead) {
    if head.fingerprint == 0 || head.offset == 0 {
        return;
    }
    heads.retain(|h| (h.source, h.fingerprint) != (head.source, head.fingerprint));
    if heads.len() >= MAX_RETIRED_HEADS {
        heads.remove(0);
    }
    heads.push(head);
}

#[derive(Serialize, Deserialize)]
struct CheckpointsRepr {
    files: Vec<CheckpointEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    retired: Vec<RetiredHead>,
}

#[derive(Serialize, Deserialize)]
struct CheckpointEntry {
    source: usize,
    key: FileKey,
    position: FilePosition,
}

impl From<CheckpointsRepr> for Checkpoints {
    fn from(repr: CheckpointsRepr) -> Self {
        let entries = repr.files.into_iter();
        let files = entries.map(|e| ((e.source, e.key), e.position)).collect();
        Self {
            files,
            retired: repr.retired,
        }
    }
}

impl From<Checkpoints> for CheckpointsRepr {
    fn from(cp: Checkpoints) -> Self {
        let entries = cp.files.into_iter();
        let files = entries.map(|((source, key), position)| CheckpointEntry {
            source,
            key,
            position,
        });
        Self {
            files: files.collect(),
            retired: cp.retired,
        }
    }
}

impl Checkpoints {
    /// Record that `line` has been fully processed (its effects are durable). Only advances.
    pub fn ack(&mut self, line: &Line) {
        let cur = self
            .files
            .entry((line.source, line.key))
            .or_insert_with(|| FilePosition {
                path: (*line.path).clone(),
                offset: 0,
                line_no: 0,
                fingerprint: 0,
                epoch: 0,
            });
        // Both fingerprints known and different: the entry belongs to an earlier
        // file whose inode number the kernel has given to this one. Its position
        // says nothing about this file.
        let other_file =
            cur.fingerprint != 0 && line.fingerprint != 0 && cur.fingerprint != line.fingerprint;
        if other_file || (line.epoch, line.offset_end) > (cur.epoch, cur.offset) {
            if cur.fingerprint != line.fingerprint {
                let head = retired_head(line.source, cur);
                remember_head(&mut self.retired, head);
            }
            // Updated in place: cloning the path for every acknowledged line is waste.
            if cur.path != *line.path {
                cur.path.clone_from(&line.path);
            }
            cur.offset = line.offset_end;
            cur.line_no = line.line_no;
            cur.fingerprint = line.fingerprint;
            cur.epoch = line.epoch;
        }
    }

    /// Record `position` (e.g. from [`Tailer::take_opened`]) unless a later one is known.
    pub fn advance(&mut self, source: usize, key: FileKey, position: FilePosition) {
        match self.files.get_mut(&(source, key)) {
            Some(cur) if !position.is_after(cur) => {}
            Some(cur) => {
                if cur.fingerprint != position.fingerprint {
                    remember_head(&mut self.retired, retired_head(source, cur));
                }
                *cur = position;
            }
            None => {
                self.files.insert((source, key), position);
            }
        }
    }

    /// Apply one event of [`run_events`]: ack a line, record an opened file, or forget one.
    pub fn apply(&mut self, event: &TailEvent) {
        match event {
            TailEvent::Line(line) => self.ack(line),
            TailEvent::Opened {
                source,
                key,
                position,
            } => self.advance(*source, *key, position.clone()),
            TailEvent::Forgotten { source, key } => self.forget(*source, *key),
        }
    }

    /// The acknowledged position of a file.
    pub fn get(&self, source: usize, key: FileKey) -> Option<&FilePosition> {
        self.files.get(&(source, key))
    }

    /// Drop entries of files that no longer exist / were closed (called by the
    /// tailer's owner with keys it reports as forgotten, after acking their lines).
    pub fn forget(&mut self, source: usize, key: FileKey) {
        if let Some(cur) = self.files.remove(&(source, key)) {
            remember_head(&mut self.retired, retired_head(source, &cur));
        }
    }

    /// Every acknowledged file position, by (source index, file identity).
    pub fn entries(&self) -> impl Iterator<Item = ((usize, FileKey), &FilePosition)> {
        self.files.iter().map(|(k, p)| (*k, p))
    }

    /// Remembers how far a content no longer at a followed file was read
    /// (restoring a checkpoint).
    pub fn retire(&mut self, head: RetiredHead) {
        remember_head(&mut self.retired, head);
    }

    /// Contents no longer at a followed file, and how far each was read.
    pub fn retired(&self) -> &[RetiredHead] {
        &self.retired
    }

    /// Number of files with a position.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True if no file has a position.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// One complete line read from a file.
#[derive(Debug, Clone)]
pub struct Line {
    /// Index of the configured source ([`SourceSpec::index`]).
    pub source: usize,
    /// Identity of the file the line was read from.
    pub key: FileKey,
    /// Path the file had when the line was read.
    pub path: Arc<PathBuf>,
    /// 1-based line number in that file (restarts at 1 after a truncation).
    pub line_no: u64,
    /// Byte offset just after this line's `\n`.
    pub offset_end: u64,
    /// The file's [`fingerprint`] (always known once a complete line exists).
    pub fingerprint: u64,
    /// The file's truncation epoch (see [`FilePosition::epoch`]).
    pub epoch: u64,
    /// The line without the trailing `\n` (and without a trailing `\r`).
    pub bytes: Vec<u8>,
    /// True if the line exceeded `max_line_bytes`: `bytes` holds only the first
    /// `max_line_bytes`, the rest was discarded up to the newline.
    pub oversized: bool,
    /// When the line was read.
    pub read_at: Instant,
}

/// Where to start reading a file that has no checkpoint and exists when the tailer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// From byte 0.
    #[default]
    Beginning,
    /// Just after the last complete line present at startup.
    End,
}

/// One configured source.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// Index of the source; reported in [`Line::source`]. Must be unique.
    pub index: usize,
    /// A plain path or a glob (glob crate syntax).
    pub pattern: String,
    /// For files with no checkpoint that exist at the first scan; files
    /// appearing later always start at 0.
    pub start_at: StartAt,
    /// Longest line kept whole; longer lines are cut (see [`Line::oversized`]).
    pub max_line_bytes: usize,
}

impl SourceSpec {
    /// A spec reading from the beginning with [`DEFAULT_MAX_LINE_BYTES`].
    pub fn new(index: usize, pattern: impl Into<String>) -> Self {
        Self {
            index,
            pattern: pattern.into(),
            start_at: StartAt::Beginning,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

/// What one [`Tailer::poll`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollStats {
    /// Lines appended to `out`.
    pub lines: usize,
    /// Bytes consumed from files (including newlines and discarded bytes).
    pub bytes: u64,
    /// Files open after the poll.
    pub files_open: usize,
    /// True if `max_lines` stopped reading before the end of some file.
    pub more_pending: bool,
    /// I/O errors (each logged with `tracing::warn!` the first time per path).
    pub errors: usize,
}

/// What [`run_events`] sends, in this order per poll: `Opened`, `Line`s, `Forgotten`.
#[derive(Debug, Clone)]
pub enum TailEvent {
    /// A file was opened, or restarted after a truncation, at `position` (see [`Tailer::take_opened`]).
    Opened {
        /// Source index.
        source: usize,
        /// File identity.
        key: FileKey,
        /// Where reading starts.
        position: FilePosition,
    },
    /// A complete line.
    Line(Line),
    /// A file was closed (see [`Tailer::take_forgotten`]).
    Forgotten {
        /// Source index.
        source: usize,
        /// File identity.
        key: FileKey,
    },
}

#[derive(Debug, thiserror::Error)]
enum TailError {
    #[error("invalid pattern {pattern:?}: {source}")]
    Pattern {
        pattern: String,
        source: glob::PatternError,
    },
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_err(op: &'static str, path: &Path, source: io::Error) -> TailError {
    let path = path.to_path_buf();
    TailError::Io { op, path, source }
}

type Id = (usize, FileKey);

struct OpenFile {
    path: Arc<PathBuf>,
    file: File,
    max_line: usize,
    /// Offset just after the last complete line handed out.
    offset: u64,
    /// Offset up to which bytes were consumed (into `pending` or discarded).
    read_pos: u64,
    line_no: u64,
    fingerprint: u64,
    epoch: u64,
    /// Head of the incomplete line at `offset`; at most `max_line + 1` bytes (the
    /// extra byte may be a `\r` that turns out to precede the `\n`).
    pending: Vec<u8>,
    /// The incomplete line outgrew `pending`; bytes are dropped up to its `\n`.
    discarding: bool,
    /// (len, mtime, mtime_nsec, ctime, ctime_nsec) at the last truncation check.
    last_meta: (u64, i64, i64, i64, i64),
    /// Consecutive scans that did not find the file under its pattern.
    unmatched_scans: u32,
    /// Last time data was read, or the file stopped matching.
    last_activity: Instant,
    /// Found new with no complete first line yet (a copy being written, say),
    /// so whether it is a copy of content already read is not known yet: it
    /// is decided before its first line is handed out ([`Tailer::settle`]).
    unsettled: bool,
}

impl OpenFile {
    fn position(&self) -> FilePosition {
        FilePosition {
            path: (*self.path).clone(),
            offset: self.offset,
            line_no: self.line_no,
            fingerprint: self.fingerprint,
            epoch: self.epoch,
        }
    }
}

struct ReadOutcome {
    /// The file was found truncated and reading restarted at 0: where reading
    /// of the content that was there had ended.
    restarted_after: Option<FilePosition>,
    lines: usize,
    bytes: u64,
    at_eof: bool,
}

/// The synchronous core: one scan = re-glob, stat, detect rotation/truncation,
/// read new complete lines. Deterministic and testable without sleeping.
pub struct Tailer {
    specs: Vec<SourceSpec>,
    files: BTreeMap<Id, OpenFile>,
    /// Checkpoint entries whose file was seen but could not be opened yet.
    resume: HashMap<Id, FilePosition>,
    opened: Vec<(usize, FileKey, FilePosition)>,
    forgotten: Vec<(usize, FileKey)>,
    /// Paths whose last attempt failed: warn once, not on every poll.
    failing: HashSet<PathBuf>,
    /// Errors met by `new`, reported by the first poll.
    carried_errors: usize,
    close_grace: Duration,
    /// Rotates which file is read first, so one busy file cannot starve the others.
    next_first: usize,
    buf: Vec<u8>,
    /// Most files open at once; matching files beyond it wait for a slot.
    max_open: usize,
    /// Matching files waiting for a slot at the last scan (shared for metrics).
    deferred: Arc<std::sync::atomic::AtomicUsize>,
    /// Told each source's [`Tailer::lag_bytes`] after every poll.
    lag_report: Option<LagReport>,
    /// Contents no longer at an open file, by (source, fingerprint): where
    /// their reading ended, for copies of them found later.
    retired: Vec<RetiredHead>,
    /// Compressed files matching a pattern (rotated logs): never read.
    compressed: HashSet<Id>,
}

/// Receives `(source index, bytes not yet read)` for every source after each poll.
pub type LagReport = Box<dyn FnMut(&[(usize, u64)]) + Send>;

impl Tailer {
    /// Expand all patterns and open the matching files at their start positions
    /// (no line is read yet). Errors are logged and counted in the first poll.
    pub fn new(specs: Vec<SourceSpec>, checkpoints: &Checkpoints) -> Self {
        Self::new_capped(specs, checkpoints, usize::MAX)
    }

    fn new_capped(specs: Vec<SourceSpec>, checkpoints: &Checkpoints, max_open: usize) -> Self {
        let mut t = Self {
            specs,
            files: BTreeMap::new(),
            resume: checkpoints.files.clone().into_iter().collect(),
            opened: Vec::new(),
            forgotten: Vec::new(),
            failing: HashSet::new(),
            carried_errors: 0,
            close_grace: DEFAULT_CLOSE_GRACE,
            next_first: 0,
            buf: vec![0; READ_CHUNK],
            max_open,
            deferred: Arc::default(),
            lag_report: None,
            retired: checkpoints.retired.clone(),
            compressed: HashSet::new(),
        };
        let now = Instant::now();
        let mut stats = PollStats::default();
        let mut seen = t.scan(true, now, &mut stats);
        t.recover_rotated(&mut seen, now, &mut stats);
        // Entries of files that were neither found nor failed to open are gone.
        let gone: Vec<Id> = t
            .resume
            .keys()
            .filter(|id| !seen.contains(*id))
            .copied()
            .collect();
        for id in gone {
            t.resume.remove(&id);
            t.forgotten.push(id);
        }
        t.carried_errors = stats.errors;
        t
    }

    /// Like [`Tailer::new`], opening at most `max_open` files at once. Matching
    /// files beyond the cap are not opened until rotated files close and free a
    /// slot; they are then read from their start, so nothing is lost, only
    /// delayed ([`Tailer::deferred_files`] counts them).
    pub fn with_max_open_files(
        specs: Vec<SourceSpec>,
        checkpoints: &Checkpoints,
        max_open: usize,
    ) -> Self {
        let mut t = Self::new_capped(specs, checkpoints, max_open.max(1));
        t.max_open = max_open.max(1);
        t
    }

    /// How many matching files wait for a slot (updated by every scan).
    pub fn deferred_files(&self) -> Arc<std::sync::atomic::AtomicUsize> {
        Arc::clone(&self.deferred)
    }

    /// How long a file that stopped matching is kept open after its last data
    /// (a writer may append to the old inode until it reopens its log).
    pub fn with_close_grace(mut self, grace: Duration) -> Self {
        self.close_grace = grace;
        self
    }

    /// Calls `report` after every poll with each source's [`Tailer::lag_bytes`]
    /// (for a metric).
    pub fn with_lag_report(mut self, report: LagReport) -> Self {
        self.lag_report = Some(report);
        self
    }

    /// Per source (every configured index, in order): bytes of its open files
    /// beyond the last complete line handed out, by the sizes seen at the last
    /// poll. An unterminated last line counts until its newline arrives.
    pub fn lag_bytes(&self) -> Vec<(usize, u64)> {
        self.specs
            .iter()
            .map(|spec| {
                let behind = self
                    .files
                    .iter()
                    .filter(|(id, _)| id.0 == spec.index)
                    .map(|(_, of)| of.last_meta.0.saturating_sub(of.offset))
                    .sum();
                (spec.index, behind)
            })
            .collect()
    }

    /// One pass over all sources; appends complete lines to `out` (at most
    /// `max_lines` this call; the rest is read on the next call).
    pub fn poll(&mut self, out: &mut Vec<Line>, max_lines: usize) -> PollStats {
        let now = Instant::now();
        let mut stats = PollStats {
            errors: std::mem::take(&mut self.carried_errors),
            ..PollStats::default()
        };
        self.scan(false, now, &mut stats);
        let mut ids: Vec<Id> = self.files.keys().copied().collect();
        if !ids.is_empty() {
            let first = self.next_first % ids.len();
            ids.rotate_left(first);
            self.next_first = self.next_first.wrapping_add(1);
        }
        let mut buf = std::mem::take(&mut self.buf);
        for id in ids {
            if self.files.get(&id).is_some_and(|of| of.unsettled) {
                match self.settle(id) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        let path = (*self.files[&id].path).clone();
                        self.fail(io_err("read", &path, e), &mut stats);
                        continue;
                    }
                }
            }
            let Some(of) = self.files.get_mut(&id) else {
                continue;
            };
            // Even with the budget spent, every file is checked for truncation, so
            // take_opened reports restarts promptly.
            let budget = max_lines.saturating_sub(stats.lines);
            match read_new_lines(id, of, &mut buf, out, budget, now) {
                Ok(r) => {
                    if let Some(before) = &r.restarted_after {
                        remember_head(&mut self.retired, retired_head(id.0, before));
                        // The old checkpoint would now resume at a wrong offset.
                        let mut pos = of.position();
                        pos.offset = 0;
                        pos.line_no = 0;
                        self.opened.push((id.0, id.1, pos));
                    }
                    stats.lines += r.lines;
                    stats.bytes += r.bytes;
                    if r.bytes > 0 {
                        of.last_activity = now;
                    }
                    stats.more_pending |= !r.at_eof;
                    let idle = now.saturating_duration_since(of.last_activity);
                    if of.unmatched_scans >= 2
                        && r.at_eof
                        && r.bytes == 0
                        && idle >= self.close_grace
                    {
                        if !of.pending.is_empty() || of.discarding {
                            debug!(path = %of.path.display(), "dropping incomplete last line of closed file");
                        }
                        info!(path = %of.path.display(), "closing file that no longer matches");
                        let head = retired_head(id.0, &of.position());
                        remember_head(&mut self.retired, head);
                        self.files.remove(&id);
                        self.forgotten.push(id);
                    } else if !self.failing.is_empty() {
                        self.failing.remove(of.path.as_path());
                    }
                }
                Err(e) => {
                    let path = (*of.path).clone();
                    self.fail(io_err("read", &path, e), &mut stats);
                }
            }
        }
        self.buf = buf;
        stats.files_open = self.files.len();
        if self.lag_report.is_some() {
            let lag = self.lag_bytes();
            if let Some(report) = self.lag_report.as_mut() {
                report(&lag);
            }
        }
        stats
    }

    /// Files closed since the last call (rotated away and drained, or deleted),
    /// plus, after `new`, checkpoint entries whose file was not found, so the owner
    /// can [`Checkpoints::forget`] them once their lines are acknowledged.
    pub fn take_forgotten(&mut self) -> Vec<(usize, FileKey)> {
        std::mem::take(&mut self.forgotten)
    }

    /// Files opened, or restarted at 0 after a truncation, since the last call,
    /// with their start positions, for [`Checkpoints::advance`]: a restart then
    /// finds a file that was rotated away before any of its (new) lines was
    /// acknowledged.
    pub fn take_opened(&mut self) -> Vec<(usize, FileKey, FilePosition)> {
        std::mem::take(&mut self.opened)
    }

    /// Directories to watch for wake-up hints: the parents of the patterns'
    /// literal prefixes, plus the directories of the open files.
    pub fn watch_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: BTreeSet<PathBuf> =
            self.specs.iter().map(|s| literal_dir(&s.pattern)).collect();
        for of in self.files.values() {
            if let Some(parent) = of.path.parent().filter(|p| !p.as_os_str().is_empty()) {
                dirs.insert(parent.to_path_buf());
            }
        }
        dirs.into_iter().collect()
    }

    /// Expand all patterns, open new files, follow renames of open ones and count
    /// scans in which open files were not found. Returns the ids found.
    fn scan(&mut self, first: bool, now: Instant, stats: &mut PollStats) -> HashSet<Id> {
        let mut deferred = 0;
        let mut seen = HashSet::new();
        let mut incomplete = HashSet::new();
        for si in 0..self.specs.len() {
            let index = self.specs[si].index;
            let (paths, complete) = self.expand(si, stats);
            if !complete {
                incomplete.insert(index);
            }
            // Files with a checkpoint first: a copy made while the daemon was
            // down is then judged against its original's content.
            let mut paths = paths;
            paths.sort_by_cached_key(|p| {
                !self
                    .resume
                    .iter()
                    .any(|(id, cp)| id.0 == index && cp.path == *p)
            });
            for path in paths {
                let meta = match fs::metadata(&path) {
                    Ok(m) => m,
                    // Not created yet, or vanished during the listing: not an error.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        incomplete.insert(index);
                        self.fail(io_err("stat", &path, e), stats);
                        continue;
                    }
                };
                if !meta.is_file() {
                    continue;
                }
                let id = (index, FileKey::of(&meta));
                if !seen.insert(id) {
                    continue; // same file through a second path (link)
                }
                if self.compressed.contains(&id) {
                    continue;
                }
                if let Some(of) = self.files.get_mut(&id) {
                    if of.path.as_path() != path {
                        debug!(from = %of.path.display(), to = %path.display(), "file renamed");
                        of.path = Arc::new(path);
                    }
                    of.unmatched_scans = 0;
                    continue;
                }
                if self.files.len() >= self.max_open {
                    deferred += 1;
                    if self.failing.insert(path.clone()) {
                        warn!(path = %path.display(), max_open = self.max_open, "too many open files: this one waits for a slot");
                    }
                    continue;
                }
                let cp = self.resume.get(&id).cloned();
                match self.open_file(si, &path, id.1, first, cp.as_ref()) {
                    Ok(Opened::File(of)) => {
                        if let Some(cp) = cp.filter(|cp| cp.epoch != of.epoch) {
                            // Its content changed while nobody looked: a copy of
                            // the old one continues where it ended.
                            remember_head(&mut self.retired, retired_head(index, &cp));
                        }
                        self.insert_open(id, of);
                    }
                    Ok(Opened::Replaced) => {} // replaced between stat and open: next scan
                    Ok(Opened::CopyOfOpen) => {
                        debug!(path = %path.display(), "copy of a file being followed; waiting for the original to be truncated or closed");
                    }
                    Ok(Opened::Compressed) => {
                        debug!(path = %path.display(), "compressed file: not read");
                        self.never_read(id);
                    }
                    Err(e) => self.fail(io_err("open", &path, e), stats),
                }
            }
        }
        self.deferred
            .store(deferred, std::sync::atomic::Ordering::Relaxed);
        for (id, of) in &mut self.files {
            // An incomplete listing must not close files: after a transient error the
            // file would come back as "new" and be reread from 0.
            if seen.contains(id) || incomplete.contains(&id.0) {
                continue;
            }
            of.unmatched_scans = of.unmatched_scans.saturating_add(1);
            if of.unmatched_scans == 1 {
                of.last_activity = now;
                debug!(path = %of.path.display(), "file no longer matches; draining");
            }
        }
        seen
    }

    fn insert_open(&mut self, id: Id, of: OpenFile) {
        self.resume.remove(&id);
        if !self.failing.is_empty() {
            self.failing.remove(of.path.as_path());
        }
        self.opened.push((id.0, id.1, of.position()));
        self.files.insert(id, of);
    }

    /// The paths a pattern currently names, and whether the listing was complete.
    fn expand(&mut self, si: usize, stats: &mut PollStats) -> (Vec<PathBuf>, bool) {
        let pattern = self.specs[si].pattern.clone();
        if !pattern.contains(['*', '?', '[']) {
            return (vec![PathBuf::from(pattern)], true);
        }
        let entries = match glob::glob(&pattern) {
            Ok(entries) => entries,
            Err(source) => {
                self.fail(TailError::Pattern { pattern, source }, stats);
                return (Vec::new(), false);
            }
        };
        let (mut paths, mut complete) = (Vec::new(), true);
        for entry in entries {
            match entry {
                Ok(p) => paths.push(p),
                Err(e) => {
                    complete = false;
                    let path = e.path().to_path_buf();
                    self.fail(io_err("list", &path, e.into()), stats);
                }
            }
        }
        (paths, complete)
    }

    /// Open `path` and choose its start position (see [`Opened`]).
    fn open_file(
        &self,
        si: usize,
        path: &Path,
        key: FileKey,
        first: bool,
        cp: Option<&FilePosition>,
    ) -> io::Result<Opened> {
        let spec = &self.specs[si];
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if FileKey::of(&meta) != key {
            return Ok(Opened::Replaced);
        }
        let len = meta.len();
        let mut head = [0u8; FINGERPRINT_BYTES];
        let head_len = read_full_at(&file, &mut head, 0)?;
        if cp.is_none() && is_compressed(path, &head[..head_len]) {
            return Ok(Opened::Compressed);
        }
        let fp = fingerprint(&head[..head_len]);
        // Nothing read of it yet and its content unknown when last seen (a
        // checkpoint written while a copy was still empty, say): it may be a
        // copy of content already read.
        let fresh = cp.is_none_or(|c| c.offset == 0 && c.fingerprint == 0);
        let copy_of = if fresh && fp != 0 {
            self.copy_of(spec.index, fp, &file, len)?
        } else {
            None
        };
        let epoch = cp.map_or(0, |c| c.epoch);
        let (offset, line_no, epoch) = match (cp, copy_of) {
            (_, Some(CopyOf::Open)) => return Ok(Opened::CopyOfOpen),
            (_, Some(CopyOf::Retired(h))) => {
                let (offset, line_no) = resume_copy(&h, &file, len, path)?;
                (offset, line_no, epoch)
            }
            // Known-then-unknown also mismatches: a known fingerprint survives growth.
            (Some(cp), _) if cp.offset <= len && (cp.fingerprint == 0 || cp.fingerprint == fp) => {
                (cp.offset, cp.line_no, cp.epoch)
            }
            (Some(cp), _) => {
                info!(path = %path.display(), "checkpoint does not match file (truncated or inode reused); reading from start");
                (0, 0, cp.epoch + 1)
            }
            (None, _) if first && spec.start_at == StartAt::End => {
                let (end, lines) = count_complete_lines(&file, len)?;
                (end, lines, 0)
            }
            (None, _) => (0, 0, 0),
        };
        Ok(Opened::File(OpenFile {
            path: Arc::new(path.to_path_buf()),
            file,
            max_line: spec.max_line_bytes,
            offset,
            read_pos: offset,
            line_no,
            fingerprint: fp,
            epoch,
            pending: Vec::new(),
            discarding: false,
            last_meta: meta_signature(&meta),
            unmatched_scans: 0,
            last_activity: Instant::now(),
            unsettled: fresh && fp == 0,
        }))
    }

    /// Whether a file new to the tailer, whose first bytes have fingerprint
    /// `fp`, is a copy of content already followed: of a file still open with
    /// the same first bytes (copied, not yet truncated: its bytes up to the
    /// shorter length are compared, up to 64 KiB), or of content truncated away
    /// or closed ([`RetiredHead`]).
    fn copy_of(&self, source: usize, fp: u64, file: &File, len: u64) -> io::Result<Option<CopyOf>> {
        for ((s, _), of) in &self.files {
            if *s != source || of.fingerprint != fp {
                continue;
            }
            if file_fingerprint(&of.file)? != fp {
                // Truncated since it was last read (the read that notices comes
                // later in this poll): the copy holds what it had.
                let head = retired_head(source, &of.position());
                return Ok(Some(CopyOf::Retired(head)));
            }
            if same_prefix(file, len, &of.file)? {
                return Ok(Some(CopyOf::Open));
            }
        }
        let retired = self.retired.iter().rev();
        let mut heads = retired.filter(|h| (h.source, h.fingerprint) == (source, fp));
        Ok(heads.next().copied().map(CopyOf::Retired))
    }

    /// Decides what a file found without a complete first line is, once it
    /// has one: a copy of a file still followed is closed (found again by the
    /// next scan, it waits as such a copy does); a copy of content truncated
    /// away or closed continues where reading that content ended; anything
    /// else is new and read from the start. Until then nothing of it can be
    /// handed out, so it is read like any file (its partial line held).
    /// Returns whether the file is still followed.
    fn settle(&mut self, id: Id) -> io::Result<bool> {
        let of = &self.files[&id];
        let len = of.file.metadata()?.len();
        let mut head = [0u8; FINGERPRINT_BYTES];
        let head_len = read_full_at(&of.file, &mut head, 0)?;
        let fp = fingerprint(&head[..head_len]);
        if fp == 0 {
            return Ok(true);
        }
        if is_compressed(&of.path, &head[..head_len]) {
            debug!(path = %of.path.display(), "compressed file: not read");
            self.files.remove(&id);
            self.forgotten.push(id);
            self.never_read(id);
            return Ok(false);
        }
        let copy = self.copy_of(id.0, fp, &of.file, len)?;
        let of = self.files.get_mut(&id).expect("looked up above");
        of.unsettled = false;
        match copy {
            // Its fingerprint is taken by the truncation check, which first
            // compares the partial line held with what is there now.
            None => Ok(true),
            Some(CopyOf::Open) => {
                debug!(path = %of.path.display(), "copy of a file being followed; waiting for the original to be truncated or closed");
                self.files.remove(&id);
                self.forgotten.push(id);
                Ok(false)
            }
            Some(CopyOf::Retired(h)) => {
                let (offset, line_no) = resume_copy(&h, &of.file, len, &of.path)?;
                of.fingerprint = fp;
                of.offset = offset;
                of.read_pos = offset;
                of.line_no = line_no;
                of.pending.clear();
                of.discarding = false;
                self.opened.push((id.0, id.1, of.position()));
                Ok(true)
            }
        }
    }

    /// Remembers a compressed file matching a pattern, so it is never read
    /// (the set is bounded: forgotten whole past 4,096 files).
    fn never_read(&mut self, id: Id) {
        if self.compressed.len() >= 4096 {
            self.compressed.clear();
        }
        self.compressed.insert(id);
    }

    /// At startup, look for checkpointed files that no longer match in the
    /// directory they were last seen in (rotated while the daemon was down).
    fn recover_rotated(&mut self, seen: &mut HashSet<Id>, now: Instant, stats: &mut PollStats) {
        let missing: Vec<(Id, FilePosition)> = self
            .resume
            .iter()
            .filter(|(id, _)| !seen.contains(*id))
            .map(|(id, cp)| (*id, cp.clone()))
            .collect();
        let mut listings: HashMap<PathBuf, HashMap<FileKey, PathBuf>> = HashMap::new();
        for (id, cp) in missing {
            let Some(si) = self.specs.iter().position(|s| s.index == id.0) else {
                continue;
            };
            // Only a resumable match counts: an unrelated file that reuses the inode
            // in that directory must not be read. Without a fingerprint we accept it
            // only if nothing of it was consumed yet (opened, then rotated before its
            // first complete line was read).
            if cp.fingerprint == 0 && cp.offset != 0 {
                continue;
            }
            let dir = match cp.path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let listing = listings
                .entry(dir.clone())
                .or_insert_with(|| list_dir_keys(&dir));
            let Some(path) = listing.get(&id.1).cloned() else {
                continue;
            };
            match self.open_file(si, &path, id.1, true, Some(&cp)) {
                // Same epoch: open_file accepted the checkpoint (fingerprint and size).
                Ok(Opened::File(mut of)) if of.epoch == cp.epoch => {
                    info!(path = %path.display(), "draining file rotated while stopped");
                    of.unmatched_scans = 1;
                    of.last_activity = now;
                    seen.insert(id);
                    self.insert_open(id, of);
                }
                Ok(_) => {}
                Err(e) => self.fail(io_err("open", &path, e), stats),
            }
        }
    }

    fn fail(&mut self, err: TailError, stats: &mut PollStats) {
        stats.errors += 1;
        if self.failing.len() >= 1024 {
            self.failing.clear(); // bound memory if many distinct paths fail once
        }
        let key = match &err {
            TailError::Pattern { pattern, .. } => PathBuf::from(pattern),
            TailError::Io { path, .. } => path.clone(),
        };
        if self.failing.insert(key) {
            warn!(error = %err, "file source error");
        } else {
            debug!(error = %err, "file source error (repeated)");
        }
    }
}

/// What opening a matching file found.
enum Opened {
    File(OpenFile),
    /// The path names another file than the one stat saw (replaced meanwhile).
    Replaced,
    /// A copy of a file being followed (copytruncate before the truncation):
    /// opened once the original is truncated or closed.
    CopyOfOpen,
    /// A compressed rotation.
    Compressed,
}

enum CopyOf {
    Open,
    Retired(RetiredHead),
}

/// Where a copy of content already read (`h`) continues, as (offset, line
/// number): where reading that content ended, or, if the copy is shorter
/// than that, after its last complete line.
fn resume_copy(h: &RetiredHead, file: &File, len: u64, path: &Path) -> io::Result<(u64, u64)> {
    if h.offset <= len {
        info!(path = %path.display(), offset = h.offset, "copy of a file already read; continuing where its reading ended");
        Ok((h.offset, h.line_no))
    } else {
        info!(path = %path.display(), "copy of a file already read past its end; reading only what is added");
        count_complete_lines(file, len)
    }
}

/// A compressed file: by name (`.gz`, `.bz2`, `.xz`, `.zst`, `.zip`) or by the
/// magic bytes of gzip, bzip2, xz or zstd.
fn is_compressed(path: &Path, head: &[u8]) -> bool {
    let by_name = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["gz", "bz2", "xz", "zst", "zip"].contains(&e));
    const MAGIC: [&[u8]; 4] = [
        &[0x1f, 0x8b],
        b"BZh",
        &[0xfd, b'7', b'z', b'X', b'Z', 0],
        &[0x28, 0xb5, 0x2f, 0xfd],
    ];
    by_name || MAGIC.iter().any(|m| head.starts_with(m))
}

/// Whether two files hold the same bytes up to the shorter one's length
/// (compared up to 64 KiB).
fn same_prefix(a: &File, a_len: u64, b: &File) -> io::Result<bool> {
    let n = a_len.min(b.metadata()?.len()).min(64 * 1024) as usize;
    let (mut x, mut y) = (vec![0u8; n], vec![0u8; n]);
    let (nx, ny) = (read_full_at(a, &mut x, 0)?, read_full_at(b, &mut y, 0)?);
    Ok(nx == ny && x[..nx] == y[..ny])
}

/// FNV-1a 64: tiny, and stable across Rust releases (unlike `DefaultHasher`).
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Fingerprint of a file given its first bytes (`head`, up to 256 used):
/// FNV-1a 64 of the first line including its `\n` if that line is complete and
/// at most 256 bytes; else of the first 256 bytes if there are that many; else 0
/// ("unknown yet"). Appending to a file never changes a known fingerprint.
pub fn fingerprint(head: &[u8]) -> u64 {
    let head = &head[..head.len().min(FINGERPRINT_BYTES)];
    let covered = match head.iter().position(|&b| b == b'\n') {
        Some(nl) => &head[..=nl],
        None if head.len() == FINGERPRINT_BYTES => head,
        None => return 0,
    };
    // 0 means "unknown", so a hash that happens to be 0 is mapped to 1.
    fnv1a64(covered).max(1)
}

fn file_fingerprint(file: &File) -> io::Result<u64> {
    let mut head = [0u8; FINGERPRINT_BYTES];
    let n = read_full_at(file, &mut head, 0)?;
    Ok(fingerprint(&head[..n]))
}

/// Read until `buf` is full or EOF.
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// (offset after the last `\n` before `len`, number of `\n`s) for StartAt::End.
fn count_complete_lines(file: &File, len: u64) -> io::Result<(u64, u64)> {
    let mut buf = vec![0u8; READ_CHUNK];
    let (mut pos, mut end, mut lines) = (0u64, 0u64, 0u64);
    while pos < len {
        let want = (len - pos).min(READ_CHUNK as u64) as usize;
        let n = read_full_at(file, &mut buf[..want], pos)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            end = pos + i as u64 + 1;
        }
        pos += n as u64;
    }
    Ok((end, lines))
}

fn meta_signature(m: &fs::Metadata) -> (u64, i64, i64, i64, i64) {
    (
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    )
}

fn list_dir_keys(dir: &Path) -> HashMap<FileKey, PathBuf> {
    let mut keys = HashMap::new();
    match fs::read_dir(dir) {
        Ok(entries) => {
            // No let-chains: the main crate declares rust-version 1.85.
            for entry in entries.flatten() {
                match entry.metadata() {
                    Ok(meta) if meta.is_file() => {
                        keys.insert(FileKey::of(&meta), entry.path());
                    }
                    _ => {}
                }
            }
        }
        Err(e) => debug!(dir = %dir.display(), error = %e, "cannot list directory"),
    }
    keys
}

/// The directory holding the literal (glob-free) prefix of `pattern`.
fn literal_dir(pattern: &str) -> PathBuf {
    let comps: Vec<_> = Path::new(pattern).components().collect();
    let mut dir = PathBuf::new();
    for (i, c) in comps.iter().enumerate() {
        if i + 1 == comps.len() || c.as_os_str().to_string_lossy().contains(['*', '?', '[']) {
            break;
        }
        dir.push(c);
    }
    if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    }
}

/// Detect truncation (see the module doc); returns the current length and,
/// if reading restarted at 0, the position it had reached before.
fn check_truncation(of: &mut OpenFile) -> io::Result<(u64, Option<FilePosition>)> {
    let meta = of.file.metadata()?;
    let sig = meta_signature(&meta);
    if sig == of.last_meta && of.read_pos >= sig.0 {
        // Unchanged size and times and nothing left to read: skip the head read.
        // With data left we always check, so a rewrite within one timestamp tick
        // to the same size cannot make us read from a stale offset.
        return Ok((sig.0, None));
    }
    of.last_meta = sig;
    let len = sig.0;
    let fp = file_fingerprint(&of.file)?;
    let truncated = len < of.read_pos
        || (of.fingerprint != 0 && fp != of.fingerprint)
        || (of.fingerprint == 0 && !of.pending.is_empty() && {
            // An unknown fingerprint means a file under 256 bytes without `\n`: the
            // held partial line is small, so compare it with what is there now.
            let mut now = vec![0u8; of.pending.len()];
            read_full_at(&of.file, &mut now, of.offset)? != now.len() || now != of.pending
        });
    let mut before = None;
    if truncated {
        info!(path = %of.path.display(), len, read_pos = of.read_pos, "file truncated; reading from start");
        before = Some(of.position());
        of.offset = 0;
        of.read_pos = 0;
        of.line_no = 0;
        of.epoch += 1;
        of.pending.clear();
        of.discarding = false;
    }
    if truncated || of.fingerprint == 0 {
        of.fingerprint = fp;
    }
    Ok((len, before))
}

/// Read complete lines of one file into `out`, at most `budget`, up to the size
/// it had at the start of the call (so a fast writer cannot keep us here).
fn read_new_lines(
    id: Id,
    of: &mut OpenFile,
    buf: &mut [u8],
    out: &mut Vec<Line>,
    budget: usize,
    now: Instant,
) -> io::Result<ReadOutcome> {
    let (len, restarted_after) = check_truncation(of)?;
    let start = of.read_pos;
    let (mut lines, mut hit_end) = (0, false);
    while of.read_pos < len && lines < budget {
        let want = (len - of.read_pos).min(buf.len() as u64) as usize;
        let n = read_full_at(&of.file, &mut buf[..want], of.read_pos)?;
        if n == 0 {
            // Shrank since the stat (the next poll sees the truncation), or a file
            // that reports more than it yields: not "more pending", or run would spin.
            hit_end = true;
            break;
        }
        let chunk = &buf[..n];
        let mut pos = 0;
        while pos < n {
            let Some(nl) = chunk[pos..].iter().position(|&b| b == b'\n') else {
                hold(of, &chunk[pos..]);
                pos = n;
                break;
            };
            hold(of, &chunk[pos..pos + nl]);
            pos += nl + 1;
            out.push(finish_line(id, of, of.read_pos + pos as u64, now));
            lines += 1;
            if lines == budget {
                break;
            }
        }
        // When the budget stops us mid-chunk, the rest is reread next time;
        // nothing is held then because a line just ended.
        of.read_pos += pos as u64;
    }
    Ok(ReadOutcome {
        restarted_after,
        lines,
        bytes: of.read_pos - start,
        at_eof: hit_end || of.read_pos >= len,
    })
}

/// Append part of an incomplete line, keeping at most `max_line + 1` bytes.
fn hold(of: &mut OpenFile, part: &[u8]) {
    if of.discarding {
        return;
    }
    let room = of.max_line + 1 - of.pending.len();
    if part.len() > room {
        of.pending.extend_from_slice(&part[..room]);
        of.discarding = true;
    } else {
        of.pending.extend_from_slice(part);
    }
}

fn finish_line(id: Id, of: &mut OpenFile, offset_end: u64, now: Instant) -> Line {
    let mut bytes = std::mem::take(&mut of.pending);
    if !of.discarding && bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    let oversized = of.discarding || bytes.len() > of.max_line;
    if oversized {
        bytes.truncate(of.max_line);
        debug!(path = %of.path.display(), line_no = of.line_no + 1, "oversized line cut");
    }
    of.discarding = false;
    of.offset = offset_end;
    of.line_no += 1;
    Line {
        source: id.0,
        key: id.1,
        path: of.path.clone(),
        line_no: of.line_no,
        offset_end,
        fingerprint: of.fingerprint,
        epoch: of.epoch,
        bytes,
        oversized,
        read_at: now,
    }
}

enum Sink {
    Lines(mpsc::Sender<Line>),
    Events(mpsc::Sender<TailEvent>),
}

impl Sink {
    /// False once the receiver is gone.
    async fn send(&self, event: TailEvent) -> bool {
        match (self, event) {
            (Sink::Lines(tx), TailEvent::Line(line)) => tx.send(line).await.is_ok(),
            (Sink::Lines(_), _) => true,
            (Sink::Events(tx), event) => tx.send(event).await.is_ok(),
        }
    }

    async fn closed(&self) {
        match self {
            Sink::Lines(tx) => tx.closed().await,
            Sink::Events(tx) => tx.closed().await,
        }
    }
}

/// The async driver: polls whenever notify reports a change in a watched
/// directory, and every `poll_interval` as a fallback. Sends lines into the
/// bounded channel (a full channel is back-pressure). Returns when `shutdown`
/// becomes true or the channel closes. Lines not yet sent are dropped: they were
/// not acknowledged, so a restart reads them again. Opened/forgotten notices are
/// not delivered; use [`run_events`] to keep [`Checkpoints`] complete.
pub async fn run(
    tailer: Tailer,
    tx: mpsc::Sender<Line>,
    poll_interval: Duration,
    shutdown: watch::Receiver<bool>,
) {
    drive(tailer, Sink::Lines(tx), poll_interval, shutdown).await;
}

/// Like [`run`], but also sends [`TailEvent::Opened`] and
/// [`TailEvent::Forgotten`] so the receiver can keep [`Checkpoints`] complete
/// ([`Checkpoints::apply`]).
pub async fn run_events(
    tailer: Tailer,
    tx: mpsc::Sender<TailEvent>,
    poll_interval: Duration,
    shutdown: watch::Receiver<bool>,
) {
    drive(tailer, Sink::Events(tx), poll_interval, shutdown).await;
}

/// Resolves when shutdown is requested. A dropped sender is not a request: the
/// driver then runs until its channel closes.
async fn shutdown_requested(mut rx: watch::Receiver<bool>) {
    if rx.wait_for(|&stop| stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn drive(
    mut tailer: Tailer,
    sink: Sink,
    poll_interval: Duration,
    shutdown: watch::Receiver<bool>,
) {
    let flag = shutdown.clone();
    let stop = shutdown_requested(shutdown);
    tokio::pin!(stop);
    // Capacity 1: wake-ups coalesce; the poll re-reads everything anyway.
    let (wake_tx, mut wake_rx) = mpsc::channel::<()>(1);
    let handler = move |res: notify::Result<notify::Event>| {
        // Our own opens show up as Access events; they must not trigger polls.
        if !matches!(res, Ok(ref ev) if matches!(ev.kind, EventKind::Access(_))) {
            let _ = wake_tx.try_send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => Some(w),
        Err(e) => {
            warn!(error = %e, "cannot create file watcher; relying on polling");
            None
        }
    };
    let mut watching = watcher.is_some();
    let mut watched: BTreeSet<PathBuf> = BTreeSet::new();
    loop {
        if *flag.borrow() {
            return;
        }
        // Watch before polling: a write landing after this poll's read then always
        // leaves a wake-up behind, so no wake-up is lost.
        if let Some(w) = watcher.as_mut() {
            sync_watches(w, &mut watched, tailer.watch_dirs());
        }
        // File I/O blocks: run it on the blocking pool, moving the tailer there and back.
        let polled = tokio::task::spawn_blocking(move || {
            let mut lines = Vec::new();
            let stats = tailer.poll(&mut lines, RUN_BATCH);
            let (opened, forgotten) = (tailer.take_opened(), tailer.take_forgotten());
            (tailer, lines, stats, opened, forgotten)
        })
        .await;
        let (t, lines, stats, opened, forgotten) = match polled {
            Ok(v) => v,
            Err(e) => {
                error!(error = %e, "file tailer poll failed; file source stopped");
                return;
            }
        };
        tailer = t;
        let events = opened
            .into_iter()
            .map(|(source, key, position)| TailEvent::Opened {
                source,
                key,
                position,
            })
            .chain(lines.into_iter().map(TailEvent::Line))
            .chain(
                forgotten
                    .into_iter()
                    .map(|(source, key)| TailEvent::Forgotten { source, key }),
            );
        for event in events {
            tokio::select! {
                biased;
                _ = &mut stop => return,
                ok = sink.send(event) => if !ok { return; },
            }
        }
        if stats.more_pending {
            continue;
        }
        tokio::select! {
            biased;
            _ = &mut stop => return,
            _ = sink.closed() => return,
            woke = wake_rx.recv(), if watching => watching = woke.is_some(),
            _ = tokio::time::sleep(poll_interval) => {}
        }
    }
}

/// Watch the wanted directories; those that do not exist yet are retried after each poll.
fn sync_watches(w: &mut impl Watcher, watched: &mut BTreeSet<PathBuf>, wanted: Vec<PathBuf>) {
    let wanted: BTreeSet<PathBuf> = wanted.into_iter().collect();
    for dir in watched.difference(&wanted).cloned().collect::<Vec<_>>() {
        let _ = w.unwatch(&dir);
        watched.remove(&dir);
    }
    for dir in wanted {
        if !watched.contains(&dir) {
            match w.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    watched.insert(dir);
                }
                Err(e) => debug!(dir = %dir.display(), error = %e, "cannot watch directory yet"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, data: &str) {
        let mut f = File::options()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(data.as_bytes()).unwrap();
    }

    /// Truncate in place, as copytruncate does after the copy.
    fn truncate(path: &Path) {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(0)
            .unwrap();
    }

    fn spec(pattern: &Path) -> SourceSpec {
        SourceSpec::new(0, pattern.to_str().unwrap())
    }

    fn tailer(specs: Vec<SourceSpec>, cps: &Checkpoints) -> Tailer {
        Tailer::new(specs, cps).with_close_grace(Duration::ZERO)
    }

    fn key_of(path: &Path) -> FileKey {
        FileKey::of(&fs::metadata(path).unwrap())
    }

    fn text(line: &Line) -> String {
        String::from_utf8(line.bytes.clone()).unwrap()
    }

    /// Poll until nothing is pending; assert no error.
    fn drain(t: &mut Tailer) -> Vec<Line> {
        let mut out = Vec::new();
        loop {
            let stats = t.poll(&mut out, 1000);
            assert_eq!(stats.errors, 0);
            if !stats.more_pending {
                return out;
            }
        }
    }

    fn texts<'a>(lines: impl IntoIterator<Item = &'a Line>) -> Vec<String> {
        lines.into_iter().map(text).collect()
    }

    fn read(t: &mut Tailer) -> Vec<String> {
        texts(&drain(t))
    }

    /// A temporary directory holding `app.log` with `content`.
    fn log(content: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        append(&p, content);
        (dir, p)
    }

    #[test]
    fn partial_lines_are_held_crlf_stripped_empty_lines_kept() {
        let (_dir, p) = log("a\n\r\nb\r\npar");
        let mut t = tailer(vec![spec(&p)], &Checkpoints::default());
        let lines = drain(&mut t);
        assert_eq!(texts(&lines), ["a", "", "b"]);
        let ends: Vec<_> = lines.iter().map(|l| (l.line_no, l.offset_end)).collect();
        assert_eq!(ends, [(1, 2), (2, 4), (3, 7)]);
        append(&p, "ti");
        assert!(read(&mut t).is_empty());
        append(&p, "al\r");
        assert!(read(&mut t).is_empty());
        append(&p, "\nnext");
        let lines = drain(&mut t);
        assert_eq!(lines.len(), 1);
        assert_eq!((text(&lines[0]).as_str(), lines[0].line_no), ("partial", 4));
        assert_eq!(lines[0].offset_end, 16);
        assert!(!lines[0].oversized);
        assert!(read(&mut t).is_empty(), "delivered once");
    }

    #[test]
    fn lag_is_the_bytes_not_yet_read_as_lines_per_source() {
        let (dir, p) = log("aaaa\nbbbb\n");
        let other = dir.path().join("other.log");
        let reported = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Arc::clone(&reported);
        let mut t = tailer(
            vec![spec(&p), SourceSpec::new(1, other.to_str().unwrap())],
            &Checkpoints::default(),
        )
        .with_lag_report(Box::new(move |lag| {
            *sink.lock().unwrap() = lag.to_vec();
        }));
        let mut out = Vec::new();
        t.poll(&mut out, 1);
        assert_eq!(out.len(), 1);
        // One line of two read; the other source has no file yet.
        assert_eq!(t.lag_bytes(), [(0, 5), (1, 0)]);
        assert_eq!(*reported.lock().unwrap(), [(0, 5), (1, 0)]);
        append(&p, "cc");
        append(&other, "x\ny");
        drain(&mut t);
        // What is left is the unterminated tails, until their newlines arrive.
        assert_eq!(*reported.lock().unwrap(), [(0, 2), (1, 1)]);
        append(&p, "\n");
        append(&other, "\n");
        drain(&mut t);
        assert_eq!(*reported.lock().unwrap(), [(0, 0), (1, 0)]);
    }

    #[test]
    fn glob_start_at_end_and_new_files_from_zero() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.jsonl");
        append(&old, "x\ny\npart");
        append(&dir.path().join("skip.txt"), "nope\n");
        fs::create_dir(dir.path().join("sub.jsonl")).unwrap();
        let mut s = spec(&dir.path().join("*.jsonl"));
        s.start_at = StartAt::End;
        let mut t = tailer(vec![s], &Checkpoints::default());
        assert!(read(&mut t).is_empty());
        append(&old, "ial\n");
        let lines = drain(&mut t);
        assert_eq!((text(&lines[0]).as_str(), lines[0].line_no), ("partial", 3));
        assert_eq!(lines.len(), 1);
        append(&dir.path().join("new.jsonl"), "n1\nn2\n");
        assert_eq!(read(&mut t), ["n1", "n2"]);
        let mut out = Vec::new();
        assert_eq!(t.poll(&mut out, 10).files_open, 2);
    }

    #[test]
    fn rename_rotation_drains_old_inode_then_forgets_it() {
        let (dir, p) = log("1\n2\n");
        let mut t = tailer(vec![spec(&p)], &Checkpoints::default());
        assert_eq!(read(&mut t), ["1", "2"]);
        let old_key = key_of(&p);
        let mut writer = File::options().append(true).open(&p).unwrap();
        writer.write_all(b"3\n").unwrap();
        fs::rename(&p, dir.path().join("app.log.1")).unwrap();
        writer.write_all(b"4\npar").unwrap(); // the writer has not reopened yet
        append(&p, "n1\n");
        let lines = drain(&mut t);
        let (old, new): (Vec<&Line>, _) = lines.iter().partition(|l| l.key == old_key);
        assert_eq!(
            (texts(old), texts(new)),
            (vec!["3".into(), "4".into()], vec!["n1".into()])
        );
        assert!(t.take_forgotten().is_empty());
        writer.write_all(b"tial\n").unwrap();
        let lines = drain(&mut t);
        assert_eq!(texts(&lines), ["partial"]);
        // The path is where the file last matched: its new name is never looked up.
        assert_eq!(
            (lines[0].line_no, lines[0].path.as_path()),
            (5, p.as_path())
        );
        assert!(t.take_forgotten().is_empty(), "data arrived: kept open");
        let mut out = Vec::new();
        assert_eq!(t.poll(&mut out, 10).files_open, 1);
        assert!(out.is_empty());
        assert_eq!(t.take_forgotten(), [(0, old_key)]);
        // The first poll after a rename finds nothing; the writer's last line comes later.
        let mut writer = File::options().append(true).open(&p).unwrap();
        fs::rename(&p, dir.path().join("app.log.2")).unwrap();
        assert!(read(&mut t).is_empty());
        writer.write_all(b"late\n").unwrap();
        assert_eq!(read(&mut t), ["late"]);
        assert!(read(&mut t).is_empty());
        assert_eq!(t.take_forgotten().len(), 1);
    }

    #[test]
    fn close_grace_keeps_rotated_file_open() {
        let (dir, p) = log("1\n");
        let mut t = Tailer::new(vec![spec(&p)], &Checkpoints::default());
        assert_eq!(read(&mut t), ["1"]);
        fs::rename(&p, dir.path().join("app.log.1")).unwrap();
        let mut out = Vec::new();
        for _ in 0..3 {
            assert_eq!(t.poll(&mut out, 10).files_open, 1);
        }
        assert!(t.take_forgotten().is_empty());
    }

    #[test]
    fn rename_within_glob_keeps_position() {
        let (dir, p) = log("1\n2\n");
        let mut t = tailer(
            vec![spec(&dir.path().join("app.log*"))],
            &Checkpoints::default(),
        );
        assert_eq!(read(&mut t), ["1", "2"]);
        let rotated = dir.path().join("app.log.1");
        fs::rename(&p, &rotated).unwrap();
        append(&rotated, "3\n");
        append(&p, "n1\n");
        let mut lines = drain(&mut t);
        lines.sort_by_key(|l| l.path.clone());
        let got: Vec<_> = lines
            .iter()
            .map(|l| (text(l), l.line_no, (*l.path).clone()))
            .collect();
        assert_eq!(got, [("n1".into(), 1, p.clone()), ("3".into(), 3, rotated)]);
        assert!(read(&mut t).is_empty());
        assert!(t.take_forgotten().is_empty(), "still matches: stays open");
    }

    #[test]
    fn a_copytruncate_copy_under_the_glob_is_not_read_again_even_after_a_restart() {
        let (dir, p) = log("l1\nl2\nl3\n");
        let pattern = dir.path().join("app.log*");
        let mut cps = Checkpoints::default();
        let mut t = tailer(vec![spec(&pattern)], &cps);
        let lines = drain(&mut t);
        assert_eq!(texts(&lines), ["l1", "l2", "l3"]);
        lines.iter().for_each(|l| cps.ack(l));
        // Copied while the writer adds a line the tailer has not read yet; a
        // scan between the copy and the truncation waits for the truncation.
        append(&p, "l4\n");
        fs::copy(&p, dir.path().join("app.log.1")).unwrap();
        let between = drain(&mut t);
        assert_eq!(texts(&between), ["l4"], "the original, not the copy");
        between.iter().for_each(|l| cps.ack(l));
        truncate(&p);
        append(&p, "n1\n");
        let after = drain(&mut t);
        assert_eq!(texts(&after), ["n1"], "the copy's lines were read already");
        after.iter().for_each(|l| cps.ack(l));
        for (s, k, pos) in t.take_opened() {
            cps.advance(s, k, pos);
        }

        // The next rotation happens while the daemon is down: copy, truncate.
        append(&p, "n2\n");
        fs::rename(dir.path().join("app.log.1"), dir.path().join("app.log.2")).unwrap();
        fs::copy(&p, dir.path().join("app.log.1")).unwrap();
        truncate(&p);
        append(&p, "m1\n");
        let json = serde_json::to_string(&cps).unwrap();
        let cps: Checkpoints = serde_json::from_str(&json).unwrap();
        let mut t = tailer(vec![spec(&pattern)], &cps);
        let mut got = texts(&drain(&mut t));
        got.sort();
        // n2 was never acknowledged: the copy delivers it; nothing else repeats.
        assert_eq!(got, ["m1", "n2"]);
    }

    #[test]
    fn a_copy_seen_before_its_first_line_is_written_is_still_known_as_a_copy() {
        let (dir, p) = log("l1\nl2\n");
        let pattern = dir.path().join("app.log*");
        let mut cps = Checkpoints::default();
        let mut t = tailer(vec![spec(&pattern)], &cps);
        drain(&mut t).iter().for_each(|l| cps.ack(l));
        // The copy is created empty, then filled, as `cp` and logrotate do; a
        // scan comes between, and another while only part of a line is in.
        let copy = dir.path().join("app.log.1");
        fs::write(&copy, "").unwrap();
        assert!(read(&mut t).is_empty());
        fs::write(&copy, "l1").unwrap();
        assert!(read(&mut t).is_empty());
        fs::write(&copy, "l1\nl2\n").unwrap();
        // Not yet truncated: the copy waits, whatever it held when first seen.
        assert!(read(&mut t).is_empty());
        truncate(&p);
        append(&p, "n1\n");
        let after = drain(&mut t);
        assert_eq!(texts(&after), ["n1"], "the copy's lines were read already");
        after.iter().for_each(|l| cps.ack(l));
        for (s, k, pos) in t.take_opened() {
            cps.advance(s, k, pos);
        }
        for (s, k) in t.take_forgotten() {
            cps.forget(s, k);
        }

        // A second copy, still empty at a restart, filled and its original
        // truncated while the daemon is down: it continues where reading of
        // that content ended, delivering only the line never read.
        append(&p, "n2\n");
        let two = dir.path().join("app.log.2");
        fs::write(&two, "").unwrap();
        let more = drain(&mut t);
        assert_eq!(texts(&more), ["n2"]);
        more.iter().for_each(|l| cps.ack(l));
        for (s, k, pos) in t.take_opened() {
            cps.advance(s, k, pos);
        }
        append(&p, "n3\n");
        fs::copy(&p, &two).unwrap();
        truncate(&p);
        append(&p, "m1\n");
        let mut t = tailer(vec![spec(&pattern)], &cps);
        let mut got = read(&mut t);
        got.sort();
        assert_eq!(got, ["m1", "n3"]);
    }

    #[test]
    fn compressed_rotations_under_the_glob_are_not_read() {
        let (dir, p) = log("l1\n");
        fs::write(
            dir.path().join("app.log.2.gz"),
            [0x1f, 0x8b, 8, 0, b'x', b'\n'],
        )
        .unwrap();
        fs::write(
            dir.path().join("app.log.3"),
            [0x28, 0xb5, 0x2f, 0xfd, b'\n'],
        )
        .unwrap();
        let pattern = dir.path().join("app.log*");
        let mut t = tailer(vec![spec(&pattern)], &Checkpoints::default());
        assert_eq!(texts(&drain(&mut t)), ["l1"]);
        append(&p, "l2\n");
        assert_eq!(texts(&drain(&mut t)), ["l2"]);
    }

    #[test]
    fn retired_heads_are_checkpointed_and_bounded() {
        let mut cps = Checkpoints::default();
        for i in 0..(MAX_RETIRED_HEADS as u64 + 10) {
            let key = FileKey { dev: 1, ino: i };
            let pos = FilePosition {
                path: PathBuf::from("/logs/app.log"),
                offset: 100 + i,
                line_no: 3,
                fingerprint: 1000 + i,
                epoch: 0,
            };
            cps.advance(0, key, pos);
            cps.forget(0, key);
        }
        assert_eq!(cps.retired().len(), MAX_RETIRED_HEADS);
        assert_eq!(cps.retired()[0].fingerprint, 1010, "the oldest went first");
        let json = serde_json::to_string(&cps).unwrap();
        let back: Checkpoints = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cps);
        // A checkpoint written before retired heads existed still reads.
        let old: Checkpoints = serde_json::from_str(r#"{"files":[]}"#).unwrap();
        assert!(old.retired().is_empty());
    }

    #[test]
    fn copytruncate_restarts_at_zero() {
        let (dir, p) = log("l1\nl2\nl3\n");
        let mut t = tailer(vec![spec(&p)], &Checkpoints::default());
        assert_eq!(read(&mut t), ["l1", "l2", "l3"]);
        // Shorter than our offset.
        fs::copy(&p, dir.path().join("app.log.1")).unwrap();
        truncate(&p);
        append(&p, "n1\n");
        let lines = drain(&mut t);
        assert_eq!(texts(&lines), ["n1"]);
        assert_eq!(
            (lines[0].line_no, lines[0].epoch, lines[0].offset_end),
            (1, 1, 3)
        );
        // Rewritten past the old offset before we looked: the fingerprint tells.
        truncate(&p);
        append(&p, "cc\ndd\neeeeeeee\n");
        let lines = drain(&mut t);
        assert_eq!(texts(&lines), ["cc", "dd", "eeeeeeee"]);
        assert_eq!(lines[0].epoch, 2);
        // Fingerprint still unknown: the held partial line's bytes tell.
        truncate(&p);
        append(&p, "abc");
        assert!(read(&mut t).is_empty());
        truncate(&p);
        append(&p, "xyz\n");
        assert_eq!(read(&mut t), ["xyz"]);
    }

    #[test]
    fn fingerprint_rule() {
        // FNV-1a 64 reference vectors: stable across Rust releases.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fingerprint(b""), 0);
        assert_eq!(fingerprint(b"abc"), 0, "incomplete short first line");
        assert_eq!(fingerprint(b"abc\n"), fnv1a64(b"abc\n"));
        assert_eq!(fingerprint(b"abc\nmore"), fingerprint(b"abc\n"), "append");
        let long = [b'x'; 300];
        assert_eq!(fingerprint(&long[..255]), 0);
        assert_eq!(fingerprint(&long[..256]), fnv1a64(&long[..256]));
        assert_eq!(fingerprint(&long), fingerprint(&long[..256]));
        let mut first_line_256 = vec![b'y'; 255];
        first_line_256.push(b'\n');
        assert_eq!(fingerprint(&first_line_256), fnv1a64(&first_line_256));
    }

    #[test]
    fn checkpoint_with_other_fingerprint_rereads_from_zero() {
        let (_dir, p) = log("a\nb\n");
        let mut t = tailer(vec![spec(&p)], &Checkpoints::default());
        let mut cps = Checkpoints::default();
        drain(&mut t).iter().for_each(|l| cps.ack(l));
        // Same (dev, ino) but another file's checkpoint, as after inode reuse.
        let key = key_of(&p);
        let mut stale = cps.get(0, key).unwrap().clone();
        stale.fingerprint ^= 1;
        cps.advance(0, key, FilePosition { epoch: 1, ..stale });
        let mut t = tailer(vec![spec(&p)], &cps);
        let lines = drain(&mut t);
        assert_eq!(texts(&lines), ["a", "b"]);
        assert_eq!((lines[1].epoch, lines[1].line_no), (2, 2));
        cps.ack(&lines[1]);
        // A matching checkpoint resumes: nothing is read again.
        let mut t = tailer(vec![spec(&p)], &cps);
        append(&p, "c\n");
        let lines = drain(&mut t);
        assert_eq!(
            lines
                .iter()
                .map(|l| (text(l), l.line_no))
                .collect::<Vec<_>>(),
            [("c".into(), 3)]
        );
    }

    #[test]
    fn deleted_file_is_drained_then_forgotten() {
        let (_dir, p) = log("1\n");
        let mut t = tailer(vec![spec(&p)], &Checkpoints::default());
        assert_eq!(read(&mut t), ["1"]);
        let key = key_of(&p);
        let mut writer = File::options().append(true).open(&p).unwrap();
        writer.write_all(b"2\n").unwrap();
        fs::remove_file(&p).unwrap();
        writer.write_all(b"3\n").unwrap();
        assert_eq!(read(&mut t), ["2", "3"]);
        let mut out = Vec::new();
        assert_eq!(t.poll(&mut out, 10).files_open, 0);
        assert_eq!(t.take_forgotten(), [(0, key)]);
    }

    #[test]
    fn oversized_lines_are_cut_and_memory_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        let mut s = spec(&p);
        s.max_line_bytes = 8;
        let mut t = tailer(vec![s], &Checkpoints::default());
        append(&p, "0123456789abcdef");
        assert!(read(&mut t).is_empty());
        append(&p, "ghijklmnopqrstuvwxyz");
        assert!(read(&mut t).is_empty());
        assert!(
            t.files.values().all(|f| f.pending.len() <= 9),
            "bounded buffer"
        );
        append(&p, "!\n12345678\r\n123456789\nok\n");
        let lines = drain(&mut t);
        let got: Vec<_> = lines
            .iter()
            .map(|l| (text(l), l.oversized, l.line_no))
            .collect();
        let want = [
            ("01234567", true, 1),
            ("12345678", false, 2),
            ("12345678", true, 3),
            ("ok", false, 4),
        ];
        assert_eq!(got, want.map(|(s, o, n)| (s.to_string(), o, n)));
        assert_eq!(lines[0].offset_end, 38);
        assert_eq!(lines[3].offset_end, fs::metadata(&p).unwrap().len());
    }

    #[test]
    fn io_errors_are_counted_and_other_files_continue() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
        std::os::unix::fs::symlink(&b, &a).unwrap(); // a loop: stat fails with ELOOP
        std::os::unix::fs::symlink(&a, &b).unwrap();
        append(&dir.path().join("good.log"), "ok\n");
        let specs = vec![
            spec(&dir.path().join("*.log")),
            SourceSpec::new(1, dir.path().join("missing.log").to_str().unwrap()),
            SourceSpec::new(2, "[invalid"),
        ];
        let mut t = tailer(specs, &Checkpoints::default());
        let mut out = Vec::new();
        let stats = t.poll(&mut out, 10);
        // Both poll errors and those of `new` (carried): 2 loops + 1 pattern, twice.
        assert_eq!((stats.errors, stats.lines), (6, 1));
        assert_eq!(text(&out[0]), "ok");
        append(&dir.path().join("good.log"), "again\n");
        let stats = t.poll(&mut out, 10);
        assert_eq!((stats.errors, stats.lines), (3, 1));
    }

    #[test]
    fn exactly_once_across_restart_via_json() {
        let (_dir, p) = log("1\n2\n3\n4\n");
        let mut t = tailer(vec![spec(&p)], &Checkpoints::default());
        let mut out = Vec::new();
        let stats = t.poll(&mut out, 2);
        assert_eq!((stats.lines, stats.more_pending), (2, true));
        let mut cps = Checkpoints::default();
        out.iter().for_each(|l| cps.ack(l));
        drop(t);
        let json = serde_json::to_string(&cps).unwrap();
        let restored: Checkpoints = serde_json::from_str(&json).unwrap();
        assert_eq!(restored, cps);
        append(&p, "5\n");
        let mut t = tailer(vec![spec(&p)], &restored);
        let lines = drain(&mut t);
        let got: Vec<_> = lines.iter().map(|l| (text(l), l.line_no)).collect();
        assert_eq!(got, [("3".into(), 3), ("4".into(), 4), ("5".into(), 5)]);
    }

    #[test]
    fn rotated_while_stopped_is_drained_and_stale_entries_forgotten() {
        let (dir, p) = log("1\n2\n");
        let mut t = tailer(vec![spec(&p)], &Checkpoints::default());
        let mut cps = Checkpoints::default();
        drain(&mut t).iter().for_each(|l| cps.ack(l));
        drop(t);
        let old_key = key_of(&p);
        let gone = FileKey {
            ino: u64::MAX,
            ..old_key
        };
        cps.advance(0, gone, cps.get(0, old_key).unwrap().clone());
        append(&p, "3\n");
        fs::rename(&p, dir.path().join("app.log.1")).unwrap();
        append(&p, "n1\n");
        let mut t = tailer(vec![spec(&p)], &cps);
        assert_eq!(t.take_forgotten(), [(0, gone)]);
        let lines = drain(&mut t);
        let old = lines.iter().find(|l| l.key == old_key).unwrap();
        assert_eq!((text(old).as_str(), old.line_no), ("3", 3));
        assert_eq!(lines.len(), 2);
        assert!(read(&mut t).is_empty());
        assert_eq!(t.take_forgotten(), [(0, old_key)]);
    }

    #[test]
    fn max_lines_applies_back_pressure() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        append(&p, &(1..=10).map(|i| format!("{i}\n")).collect::<String>());
        let mut t = tailer(vec![spec(&p)], &Checkpoints::default());
        let mut out = Vec::new();
        let mut polls = 0;
        loop {
            let before = out.len();
            let stats = t.poll(&mut out, 3);
            polls += 1;
            assert!(out.len() - before <= 3);
            if !stats.more_pending {
                break;
            }
        }
        let want: Vec<String> = (1..=10).map(|i| i.to_string()).collect();
        assert_eq!(out.iter().map(text).collect::<Vec<_>>(), want);
        assert_eq!(polls, 4);
    }

    #[test]
    fn checkpoints_only_advance_and_serialize_as_json_object() {
        let (_dir, p) = log("a\nb\n");
        let mut t = tailer(vec![spec(&p)], &Checkpoints::default());
        let lines = drain(&mut t);
        let mut cps = Checkpoints::default();
        cps.ack(&lines[1]);
        cps.ack(&lines[0]);
        let key = lines[0].key;
        assert_eq!(cps.get(0, key).map(|c| (c.offset, c.line_no)), Some((4, 2)));
        let after_truncation = Line {
            epoch: 1,
            offset_end: 2,
            line_no: 1,
            ..lines[0].clone()
        };
        cps.ack(&after_truncation);
        assert_eq!(cps.get(0, key).map(|c| (c.offset, c.epoch)), Some((2, 1)));
        let v = serde_json::to_value(&cps).unwrap();
        assert_eq!(v["files"][0]["source"], 0);
        assert_eq!(v["files"][0]["key"]["ino"], key.ino);
        assert_eq!(v["files"][0]["position"]["offset"], 2);
        cps.forget(0, key);
        assert!(cps.is_empty());
    }

    #[test]
    fn watch_dirs_are_literal_prefix_parents() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let specs = vec![
            SourceSpec::new(0, d.join("a/*.log").to_str().unwrap()),
            SourceSpec::new(1, d.join("b/app.log").to_str().unwrap()),
            SourceSpec::new(2, d.join("c/*/x.log").to_str().unwrap()),
        ];
        let t = tailer(specs, &Checkpoints::default());
        assert_eq!(t.watch_dirs(), [d.join("a"), d.join("b"), d.join("c")]);
        assert_eq!(literal_dir("app.log"), PathBuf::from("."));
        assert_eq!(literal_dir("/app.log"), PathBuf::from("/"));
    }

    /// splitmix64: deterministic randomness without a dependency.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) % n as u64) as usize
        }
    }

    const MODEL_MAX_LINE: usize = 64;

    /// A writer of `app.log` with rotations, and the tailer's owner, against a
    /// record of every complete line written to each file.
    struct Model {
        rng: Rng,
        dir: tempfile::TempDir,
        live: PathBuf,
        /// Append handle of the file at `live` (None after a rename until the next write).
        writer: Option<File>,
        /// File id of `writer`.
        fid: usize,
        /// Line being written (with its terminator) and how much of it is written.
        cur: Option<(Vec<u8>, usize)>,
        /// Per file id: the lines the tailer must deliver, in order.
        expected: Vec<Vec<(String, bool)>>,
        fids: HashMap<FileKey, usize>,
        /// A scan happened since `live` was created (precondition of rename rotation).
        seen_current: bool,
        seq: usize,
        rotations: usize,
        tailer: Tailer,
        cps: Checkpoints,
        /// The pattern matches rotated files and copies too: a copy must not
        /// be read again.
        glob: bool,
        /// What the owner has yet to record, in the order it happened: acks
        /// and forgets interleave exactly as `run_events` delivers them.
        pending: Vec<Owed>,
        delivered: Vec<Line>,
        /// Descriptors of deleted files the writer still holds.
        deleted: Vec<File>,
    }

    enum Owed {
        Ack(Line),
        Forget(usize, FileKey),
    }

    /// The live file alone, or (`glob`) a pattern that also matches every
    /// rotated file and copy (`app.log*`).
    fn model_specs(live: &Path, glob: bool) -> Vec<SourceSpec> {
        let mut s = if glob {
            spec(&live.with_file_name("app.log*"))
        } else {
            spec(live)
        };
        s.max_line_bytes = MODEL_MAX_LINE;
        vec![s]
    }

    /// What the tailer must deliver for a written line (terminator included).
    fn expect(line: &[u8]) -> (String, bool) {
        let mut l = line.strip_suffix(b"\n").unwrap();
        l = l.strip_suffix(b"\r").unwrap_or(l);
        let kept = String::from_utf8(l[..l.len().min(MODEL_MAX_LINE)].to_vec()).unwrap();
        (kept, l.len() > MODEL_MAX_LINE)
    }

    impl Model {
        fn new(seed: u64) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let live = dir.path().join("app.log");
            let cps = Checkpoints::default();
            Self {
                rng: Rng(seed),
                tailer: tailer(model_specs(&live, seed % 2 == 1), &cps),
                glob: seed % 2 == 1,
                dir,
                live,
                writer: None,
                fid: 0,
                cur: None,
                expected: Vec::new(),
                fids: HashMap::new(),
                seen_current: false,
                seq: 0,
                rotations: 0,
                cps,
                pending: Vec::new(),
                delivered: Vec::new(),
                deleted: Vec::new(),
            }
        }

        fn ensure_writer(&mut self) {
            if self.writer.is_none() {
                let f = File::options()
                    .create(true)
                    .append(true)
                    .open(&self.live)
                    .unwrap();
                self.fid = self.expected.len();
                self.expected.push(Vec::new());
                self.fids
                    .insert(FileKey::of(&f.metadata().unwrap()), self.fid);
                self.writer = Some(f);
                self.seen_current = false;
            }
        }

        fn write(&mut self, bytes: &[u8]) {
            self.writer.as_mut().unwrap().write_all(bytes).unwrap();
        }

        /// A unique line ("f{fid}-n{seq}-" head), maybe longer than the limit, maybe CRLF.
        fn new_line(&mut self) -> Vec<u8> {
            self.seq += 1;
            let mut l = format!("f{}-n{}-", self.fid, self.seq).into_bytes();
            for _ in 0..self.rng.below(81) {
                l.push(b'a' + self.rng.below(26) as u8);
            }
            l.extend_from_slice(if self.rng.below(4) == 0 {
                b"\r\n"
            } else {
                b"\n"
            });
            l
        }

        fn write_line(&mut self, line: &[u8]) {
            self.write(line);
            self.expected[self.fid].push(expect(line));
        }

        fn finish_current(&mut self) {
            if let Some((line, written)) = self.cur.take() {
                self.write(&line[written..]);
                self.expected[self.fid].push(expect(&line));
            }
        }

        fn append_lines(&mut self) {
            self.ensure_writer();
            self.finish_current();
            for _ in 0..1 + self.rng.below(3) {
                let l = self.new_line();
                self.write_line(&l);
            }
        }

        fn append_partial(&mut self) {
            self.ensure_writer();
            let (line, written) = match self.cur.take() {
                Some(cur) => cur,
                None => (self.new_line(), 0),
            };
            // Always leave at least the final '\n' unwritten.
            let n = match line.len() - written {
                left if left >= 2 => 1 + self.rng.below(left - 1),
                _ => 0,
            };
            self.write(&line[written..written + n]);
            self.cur = Some((line, written + n));
        }

        fn poll(&mut self, max_lines: usize) -> PollStats {
            let mut out = Vec::new();
            let stats = self.tailer.poll(&mut out, max_lines);
            assert_eq!(stats.errors, 0);
            // Lines of this poll come before the files it closed, as in run_events.
            self.pending.extend(out.iter().cloned().map(Owed::Ack));
            self.sync();
            self.delivered.extend(out);
            self.seen_current = self.writer.is_some();
            stats
        }

        /// What an owner does after each poll.
        fn sync(&mut self) {
            for (source, key, position) in self.tailer.take_opened() {
                self.cps.advance(source, key, position);
            }
            let forgotten = self.tailer.take_forgotten();
            self.pending
                .extend(forgotten.into_iter().map(|(s, k)| Owed::Forget(s, k)));
        }

        fn drain(&mut self) {
            loop {
                let max_lines = 1 + self.rng.below(6);
                if !self.poll(max_lines).more_pending {
                    return;
                }
            }
        }

        fn restart(&mut self) {
            self.sync();
            for owed in self.pending.drain(..) {
                match owed {
                    Owed::Ack(l) => self.cps.ack(&l),
                    Owed::Forget(s, k) => self.cps.forget(s, k),
                }
            }
            let json = serde_json::to_string(&self.cps).unwrap();
            self.cps = serde_json::from_str(&json).unwrap();
            self.tailer = tailer(model_specs(&self.live, self.glob), &self.cps);
            self.seen_current = self.writer.is_some();
        }

        fn rename_rotate(&mut self) {
            if self.writer.is_none() {
                return;
            }
            if !self.seen_current {
                // Precondition: a file rotated away before any scan saw it is unknown to
                // every path-based tailer.
                self.poll(1);
            }
            self.rotations += 1;
            let to = self.dir.path().join(format!("app.log.{}", self.rotations));
            fs::rename(&self.live, to).unwrap();
            if self.rng.below(2) == 0 {
                // The writer appends to the old inode until it reopens.
                self.finish_current();
                for _ in 0..self.rng.below(3) {
                    let l = self.new_line();
                    self.write_line(&l);
                }
            }
            // A partial line left in the old file is never completed.
            self.cur = None;
            self.writer = None;
        }

        fn delete_rotate(&mut self) {
            if self.writer.is_none() {
                return;
            }
            if self.cur.is_some() {
                self.finish_current();
            }
            // Precondition: a deleted file's lines exist only behind the open
            // handle, and a restart before they are read loses them, so they are
            // read first. The writer keeps its descriptor until it reopens, as a
            // logger does, so the next file at the path gets another inode (the
            // reuse of a freed inode number is tested on its own).
            self.drain();
            fs::remove_file(&self.live).unwrap();
            self.cur = None;
            self.deleted.extend(self.writer.take());
        }

        fn copytruncate(&mut self) {
            if self.writer.is_none() {
                return;
            }
            // The rest of a partial line becomes the first line of the truncated file.
            // Keep that rest unique (it must hold "n{seq}") so that the fingerprint
            // differs, as it would with real log lines; otherwise finish the line.
            let cut_past_head = |(line, written): &(Vec<u8>, usize)| {
                *written > line.iter().position(|&b| b == b'n').unwrap()
            };
            if self.cur.as_ref().is_some_and(cut_past_head) {
                self.finish_current();
            }
            // Precondition: lines written after the last poll would only be in the copy.
            self.drain();
            self.rotations += 1;
            fs::copy(
                &self.live,
                self.dir.path().join(format!("app.log.c{}", self.rotations)),
            )
            .unwrap();
            self.writer.as_ref().unwrap().set_len(0).unwrap();
            // Precondition of a later rename: a scan saw the truncation. A truncation no
            // scan saw, then a rename and a restart, looks like inode reuse and the
            // file is not resumed.
            self.seen_current = false;
            if let Some((line, written)) = self.cur.take() {
                self.cur = Some((line[written..].to_vec(), 0));
            }
        }

        fn check(mut self, seed: u64) {
            loop {
                let stats = self.poll(1000);
                if stats.lines == 0 && !stats.more_pending {
                    break;
                }
            }
            let mut got: Vec<Vec<(String, bool)>> = vec![Vec::new(); self.expected.len()];
            let mut last: HashMap<FileKey, (u64, u64, u64)> = HashMap::new();
            for l in &self.delivered {
                let Some(&fid) = self.fids.get(&l.key) else {
                    panic!("seed {seed}: a line of a copy was delivered: {}", text(l));
                };
                match last.get(&l.key) {
                    Some(&(epoch, no, end)) if epoch == l.epoch => {
                        assert_eq!(l.line_no, no + 1, "seed {seed}");
                        assert!(l.offset_end > end, "seed {seed}");
                    }
                    prev => {
                        assert!(prev.is_none_or(|p| p.0 < l.epoch), "seed {seed}");
                        assert_eq!(l.line_no, 1, "seed {seed}");
                    }
                }
                last.insert(l.key, (l.epoch, l.line_no, l.offset_end));
                got[fid].push((text(l), l.oversized));
            }
            for (fid, (got, want)) in got.iter().zip(&self.expected).enumerate() {
                let same = got.iter().zip(want).take_while(|(g, w)| g == w).count();
                let (g, w) = (
                    &got[same..got.len().min(same + 3)],
                    &want[same..want.len().min(same + 3)],
                );
                assert_eq!(g, w, "seed {seed}: file {fid} differs after {same} lines");
                assert_eq!(got.len(), want.len(), "seed {seed}: file {fid}");
            }
        }
    }

    #[test]
    fn an_ack_from_a_new_file_on_a_reused_inode_replaces_the_old_position() {
        let key = FileKey { dev: 1, ino: 42 };
        let line = |offset_end: u64, line_no: u64, fingerprint: u64| Line {
            source: 0,
            key,
            path: Arc::new(PathBuf::from("/logs/app.log")),
            line_no,
            offset_end,
            fingerprint,
            epoch: 0,
            bytes: Vec::new(),
            oversized: false,
            read_at: Instant::now(),
        };
        let mut cps = Checkpoints::default();
        cps.ack(&line(5000, 50, 0xaaaa));
        // The old file is gone; a new one got inode 42 and its first line was read.
        cps.ack(&line(100, 1, 0xbbbb));
        let p = cps.get(0, key).unwrap();
        assert_eq!((p.offset, p.line_no, p.fingerprint), (100, 1, 0xbbbb));
        // Lines of the same file still only move forward.
        cps.ack(&line(50, 1, 0xbbbb));
        assert_eq!(cps.get(0, key).unwrap().offset, 100);
    }

    #[test]
    fn files_beyond_the_open_cap_wait_for_a_slot_and_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            append(
                &dir.path().join(format!("f{i}.log")),
                &format!("f{i}-a\nf{i}-b\n"),
            );
        }
        let pattern = dir.path().join("*.log");
        let t = Tailer::with_max_open_files(vec![spec(&pattern)], &Checkpoints::default(), 2);
        let mut t = t.with_close_grace(Duration::ZERO);
        let deferred = t.deferred_files();
        let first = read(&mut t);
        assert_eq!(first.len(), 4, "two files of two lines: {first:?}");
        assert_eq!(deferred.load(std::sync::atomic::Ordering::Relaxed), 3);
        // Rotating the read files away frees their slots.
        for f in ["f0.log", "f1.log"] {
            fs::rename(dir.path().join(f), dir.path().join(format!("{f}.old"))).unwrap();
        }
        let mut all = first;
        for _ in 0..3 {
            all.extend(read(&mut t));
        }
        // f2 and f3 took the slots; f4 waits while they are live.
        assert_eq!(all.len(), 8);
        assert_eq!(deferred.load(std::sync::atomic::Ordering::Relaxed), 1);
        for f in ["f2.log", "f3.log"] {
            fs::rename(dir.path().join(f), dir.path().join(format!("{f}.old"))).unwrap();
        }
        for _ in 0..3 {
            all.extend(read(&mut t));
        }
        all.sort();
        let want: Vec<String> = (0..5)
            .flat_map(|i| [format!("f{i}-a"), format!("f{i}-b")])
            .collect();
        assert_eq!(all, want);
        assert_eq!(deferred.load(std::sync::atomic::Ordering::Relaxed), 0);
    }

    /// Random writes, partial writes, rotations (rename, copytruncate, delete)
    /// and restarts against an in-memory model: every complete line exactly once.
    #[test]
    fn model_random_rotations_truncations_restarts() {
        let mut lines = 0;
        for seed in 0..200 {
            let mut m = Model::new(seed);
            for _ in 0..50 {
                let op = m.rng.below(100);
                match op {
                    0..30 => m.append_lines(),
                    30..45 => m.append_partial(),
                    45..70 => {
                        let max_lines = 1 + m.rng.below(6);
                        m.poll(max_lines);
                    }
                    70..76 => m.rename_rotate(),
                    76..82 => m.copytruncate(),
                    82..88 => m.delete_rotate(),
                    _ => m.restart(),
                }
            }
            lines += m.expected.iter().map(Vec::len).sum::<usize>();
            m.check(seed);
        }
        assert!(lines > 5000, "the model wrote too little: {lines}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_delivers_appended_line_and_stops() {
        let (_dir, p) = log("old\n");
        let mut s = spec(&p);
        s.start_at = StartAt::End;
        let t = Tailer::new(vec![s], &Checkpoints::default());
        let (tx, mut rx) = mpsc::channel(16);
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(t, tx, Duration::from_millis(500), stop_rx));
        append(&p, "hello\n");
        let line = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((text(&line).as_str(), line.line_no), ("hello", 2));
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_events_wakes_on_inotify_and_stops_when_channel_closes() {
        let (_dir, p) = log("a\n");
        let t = Tailer::new(vec![spec(&p)], &Checkpoints::default());
        let (tx, mut rx) = mpsc::channel(16);
        let (_stop_tx, stop_rx) = watch::channel(false);
        // An hour between fallback polls: "b" can only come through an inotify wake-up.
        let hour = Duration::from_secs(3600);
        let task = tokio::spawn(run_events(t, tx, hour, stop_rx));
        let mut cps = Checkpoints::default();
        for want in ["opened", "a", "b"] {
            let ev = tokio::time::timeout(Duration::from_secs(5), rx.recv());
            let ev = ev.await.unwrap().unwrap();
            let got = match &ev {
                TailEvent::Opened { .. } => "opened".to_string(),
                TailEvent::Line(l) => text(l),
                TailEvent::Forgotten { .. } => "forgotten".to_string(),
            };
            assert_eq!(got, want);
            cps.apply(&ev);
            if want == "a" {
                append(&p, "b\n"); // after the first poll has read everything
            }
        }
        assert_eq!(cps.get(0, key_of(&p)).map(|c| c.offset), Some(4));
        drop(rx);
        let done = tokio::time::timeout(Duration::from_secs(5), task).await;
        done.unwrap().unwrap();
    }
}
