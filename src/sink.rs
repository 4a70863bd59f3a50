//! The findings outputs of the daemon: an append-only JSON Lines file in the
//! state dir, and the recent findings `/api/findings` serves.
//!
//! Owned by the pipeline task. Findings have stable ids, so a finding that is
//! produced again (a line re-processed after a crash) is written once.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, RwLock};

use crate::event::Ts;
use crate::finding::Finding;

/// The recent findings, shared with the HTTP server.
pub type Recent = Arc<RwLock<VecDeque<Finding>>>;

/// Writes findings once each.
#[derive(Debug)]
pub struct FindingsSink {
    out: BufWriter<File>,
    seen: HashSet<String>,
    recent: Recent,
    keep: usize,
}

/// Filters of `GET /api/findings`.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct Query {
    /// Only findings at or after this event time (RFC 3339).
    pub since: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only findings naming this principal.
    pub principal: Option<String>,
    /// At most this many (newest last); default 100.
    pub limit: Option<usize>,
}

/// Applies a query to the recent findings.
pub fn query(recent: &Recent, q: &Query) -> Result<Vec<Finding>, String> {
    let since = match &q.since {
        Some(s) => Some(
            Ts::parse_rfc3339(s)
                .ok_or_else(|| format!("`since` is not an RFC 3339 time: {s:?}"))?,
        ),
        None => None,
    };
    let limit = q.limit.unwrap_or(100);
    let all = recent.read().expect("findings lock");
    let mut hits: Vec<Finding> = all
        .iter()
        .rev()
        .filter(|f| since.is_none_or(|t| f.ts >= t))
        .filter(|f| q.kind.as_deref().is_none_or(|k| f.kind.as_str() == k))
        .filter(|f| {
            q.principal
                .as_deref()
                .is_none_or(|p| f.principals.iter().any(|x| x == p))
        })
        .take(limit)
        .cloned()
        .collect();
    hits.reverse();
    Ok(hits)
}

impl FindingsSink {
    /// Opens `path`, remembering the ids already written and the last `keep` findings.
    pub fn open(path: &Path, keep: usize) -> std::io::Result<FindingsSink> {
        let mut seen = HashSet::new();
        let mut recent = VecDeque::new();
        let mut needs_newline = false;
        if path.exists() {
            for line in BufReader::new(File::open(path)?).split(b'\n') {
                let line = line?;
                match serde_json::from_slice::<Finding>(&line) {
                    Ok(f) => {
                        seen.insert(f.finding_id.clone());
                        recent.push_back(f);
                        if recent.len() > keep {
                            recent.pop_front();
                        }
                    }
                    Err(_) if line.is_empty() => {}
                    Err(e) => {
                        tracing::warn!(file = %path.display(), error = %e, "unreadable line in findings file skipped");
                    }
                }
            }
            let bytes = std::fs::read(path)?;
            needs_newline = bytes.last().is_some_and(|b| *b != b'\n');
        }
        let mut out = BufWriter::new(OpenOptions::new().create(true).append(true).open(path)?);
        if needs_newline {
            out.write_all(b"\n")?;
        }
        Ok(FindingsSink {
            out,
            seen,
            recent: Arc::new(RwLock::new(recent)),
            keep,
        })
    }

    /// The shared recent findings.
    pub fn recent(&self) -> Recent {
        Arc::clone(&self.recent)
    }

    /// Whether a finding id was already written.
    pub fn contains(&self, finding_id: &str) -> bool {
        self.seen.contains(finding_id)
    }

    /// Appends a finding unless its id was written before. Returns whether it was new.
    pub fn write(&mut self, f: &Finding) -> std::io::Result<bool> {
        if !self.seen.insert(f.finding_id.clone()) {
            return Ok(false);
        }
        serde_json::to_writer(&mut self.out, f).map_err(std::io::Error::other)?;
        self.out.write_all(b"\n")?;
        // Flushed per finding so a reader of the file sees it at once; durability
        // (fsync) comes with the next checkpoint.
        self.out.flush()?;
        let mut r = self.recent.write().expect("findings lock");
        r.push_back(f.clone());
        if r.len() > self.keep {
            r.pop_front();
        }
        Ok(true)
    }

    /// Makes everything written durable.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }
}
