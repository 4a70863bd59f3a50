//! Where each source stands: its cursor, saved in the checkpoint under the
//! source's stable id.
//!
//! Every entry point of the daemon hands lines on with something to
//! acknowledge once their effects are durable: a followed file its identity
//! and offset, the OTLP receiver the request it answers. [`Positions`] takes
//! every acknowledgement and gives the checkpoint one [`Cursor`] per source,
//! keyed by an id that survives restarts and a reordered configuration
//! (`files/<name>` for a `[[sources]]` entry, `otlp` for the receiver), so a
//! source resumes from its own cursor whatever its place in the config.
//!
//! Checkpoints of format 1 and 2 knew file sources by their position in the
//! config only; their positions load under the ids `#0`, `#1`, … and are
//! taken by the source at that position ([`Positions::restore`]).
//!
//! The cluster keeps its positions elsewhere: the raw stream's in the
//! JetStream consumer's acknowledgements, each partition's in its snapshot.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::file::{Checkpoints, FileKey, FilePosition, RetiredHead, TailEvent};

/// One source's position, as the checkpoint stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cursor {
    /// A followed path or glob: each file's identity (inode and content
    /// fingerprint) with its acknowledged offset, and how far contents no
    /// longer at any followed file were read (so a copy of one continues
    /// there).
    Files {
        /// The followed files.
        files: Vec<FileCursor>,
        /// Contents truncated away or closed, oldest first.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        retired: Vec<RetiredCursor>,
    },
    /// A receiver of requests (OTLP): how many it answered. There is nothing
    /// to resume from — a sender retries what was not answered — but the
    /// count numbers requests in logs across restarts.
    Requests {
        /// Requests answered.
        answered: u64,
    },
}

/// One followed file's acknowledged position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileCursor {
    /// Its identity on disk.
    pub key: FileKey,
    /// How far it was read and acknowledged.
    pub position: FilePosition,
}

/// How far a content no longer at a followed file was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredCursor {
    /// The content's fingerprint.
    pub fingerprint: u64,
    /// Byte offset just after the last line acknowledged.
    pub offset: u64,
    /// That line's 1-based number.
    pub line_no: u64,
}

/// Every source's cursor by its stable id: the checkpoint's `cursors`.
pub type Cursors = BTreeMap<String, Cursor>;

/// The id of the `[[sources]]` entry named `name`.
pub fn files_id(name: &str) -> String {
    format!("files/{name}")
}

/// The id under which a checkpoint of format 1 or 2 kept the file source at
/// `index` of the config.
pub fn legacy_id(index: usize) -> String {
    format!("#{index}")
}

/// The id of the OTLP receiver (both its HTTP and gRPC listeners).
pub const OTLP_ID: &str = "otlp";

/// Splits index-keyed file positions (the tailer's form, and the checkpoint's
/// before format 3) into one cursor per source index.
pub fn split(checkpoints: &Checkpoints) -> BTreeMap<usize, Cursor> {
    let mut out: BTreeMap<usize, (Vec<FileCursor>, Vec<RetiredCursor>)> = BTreeMap::new();
    for ((source, key), position) in checkpoints.entries() {
        out.entry(source).or_default().0.push(FileCursor {
            key,
            position: position.clone(),
        });
    }
    for h in checkpoints.retired() {
        out.entry(h.source).or_default().1.push(RetiredCursor {
            fingerprint: h.fingerprint,
            offset: h.offset,
            line_no: h.line_no,
        });
    }
    out.into_iter()
        .map(|(i, (files, retired))| (i, Cursor::Files { files, retired }))
        .collect()
}

/// Every source's acknowledged position while the daemon runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Positions {
    /// The file sources' ids, by config index.
    file_ids: Vec<String>,
    /// The file sources' positions, by config index (what the tailer reads).
    files: Checkpoints,
    /// Requests the OTLP receiver answered.
    otlp_answered: u64,
    /// Cursors of sources no longer configured, kept as they were so that a
    /// source commented out for a while resumes where it stopped.
    others: Cursors,
}

impl Positions {
    /// Positions restored from `saved` for the file sources named `names`
    /// (in config order).
    pub fn restore(mut saved: Cursors, names: &[String]) -> Positions {
        let file_ids: Vec<String> = names.iter().map(|n| files_id(n)).collect();
        let mut files = Checkpoints::default();
        for (index, id) in file_ids.iter().enumerate() {
            // Its own cursor; else what an older checkpoint kept at its index.
            let cursor = saved.remove(id).or_else(|| saved.remove(&legacy_id(index)));
            if let Some(Cursor::Files {
                files: followed,
                retired,
            }) = cursor
            {
                for f in followed {
                    files.advance(index, f.key, f.position);
                }
                for r in retired {
                    files.retire(RetiredHead {
                        source: index,
                        fingerprint: r.fingerprint,
                        offset: r.offset,
                        line_no: r.line_no,
                    });
                }
            }
        }
        let otlp_answered = match saved.remove(OTLP_ID) {
            Some(Cursor::Requests { answered }) => answered,
            _ => 0,
        };
        // Older checkpoints' positions of indexes beyond the config: gone with
        // their sources (as before format 3, where nothing could claim them).
        saved.retain(|id, _| !id.starts_with('#'));
        Positions {
            file_ids,
            files,
            otlp_answered,
            others: saved,
        }
    }

    /// The file sources' positions, for the tailer to resume from.
    pub fn files(&self) -> &Checkpoints {
        &self.files
    }

    /// Acknowledges an event of the tailer (see [`Checkpoints::apply`]).
    pub fn ack_file(&mut self, event: &TailEvent) {
        self.files.apply(event);
    }

    /// Forgets a file the tailer no longer finds.
    pub fn forget_file(&mut self, source: usize, key: FileKey) {
        self.files.forget(source, key);
    }

    /// The number of the next OTLP request (from 1, counted across
    /// restarts), for its location in logs.
    pub fn next_request(&self) -> u64 {
        self.otlp_answered + 1
    }

    /// Acknowledges one OTLP request, answered once its effects are recorded.
    pub fn ack_request(&mut self) {
        self.otlp_answered += 1;
    }

    /// Every source's cursor, for the checkpoint.
    pub fn cursors(&self) -> Cursors {
        let mut out = self.others.clone();
        for (index, cursor) in split(&self.files) {
            if let Some(id) = self.file_ids.get(index) {
                out.insert(id.clone(), cursor);
            }
        }
        if self.otlp_answered > 0 {
            out.insert(
                OTLP_ID.to_owned(),
                Cursor::Requests {
                    answered: self.otlp_answered,
                },
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::file::Line;
    use std::path::PathBuf;
    use std::sync::Arc;

    fn line(source: usize, ino: u64, offset_end: u64, line_no: u64) -> TailEvent {
        TailEvent::Line(Line {
            source,
            key: FileKey { dev: 1, ino },
            path: Arc::new(PathBuf::from(format!("/logs/{ino}.log"))),
            bytes: Vec::new(),
            oversized: false,
            offset_end,
            line_no,
            fingerprint: 1000 + ino,
            epoch: 0,
            read_at: std::time::Instant::now(),
        })
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_file_source_resumes_from_its_own_cursor_when_the_config_is_reordered() {
        let mut p = Positions::restore(Cursors::new(), &names(&["app", "audit"]));
        p.ack_file(&line(0, 10, 300, 3));
        p.ack_file(&line(1, 11, 50, 1));
        let saved = p.cursors();
        assert_eq!(
            saved.keys().collect::<Vec<_>>(),
            ["files/app", "files/audit"]
        );
        // A new source listed first: "app" is now at index 2, "audit" at 0.
        let p = Positions::restore(saved, &names(&["audit", "new", "app"]));
        let app = p.files().get(2, FileKey { dev: 1, ino: 10 }).unwrap();
        assert_eq!((app.offset, app.line_no), (300, 3));
        let audit = p.files().get(0, FileKey { dev: 1, ino: 11 }).unwrap();
        assert_eq!(audit.offset, 50);
        assert!(p.files().get(1, FileKey { dev: 1, ino: 10 }).is_none());
    }

    #[test]
    fn a_source_left_out_of_the_config_keeps_its_cursor_for_when_it_returns() {
        let mut p = Positions::restore(Cursors::new(), &names(&["app", "audit"]));
        p.ack_file(&line(1, 11, 50, 1));
        let without = Positions::restore(p.cursors(), &names(&["app"]));
        assert!(without.cursors().contains_key("files/audit"));
        let back = Positions::restore(without.cursors(), &names(&["app", "audit"]));
        let audit = back.files().get(1, FileKey { dev: 1, ino: 11 }).unwrap();
        assert_eq!(audit.offset, 50);
    }

    #[test]
    fn the_receivers_count_of_answered_requests_survives_a_restart() {
        let mut p = Positions::restore(Cursors::new(), &[]);
        assert!(!p.cursors().contains_key(OTLP_ID), "nothing to save yet");
        assert_eq!(p.next_request(), 1);
        p.ack_request();
        p.ack_request();
        let json = serde_json::to_string(&p.cursors()).unwrap();
        assert_eq!(json, r#"{"otlp":{"kind":"requests","answered":2}}"#);
        let p = Positions::restore(serde_json::from_str(&json).unwrap(), &[]);
        assert_eq!(p.next_request(), 3);
    }

    #[test]
    fn retired_contents_keep_their_source_through_a_restart() {
        let mut p = Positions::restore(Cursors::new(), &names(&["app", "audit"]));
        p.ack_file(&line(1, 11, 50, 1));
        p.forget_file(1, FileKey { dev: 1, ino: 11 });
        let p = Positions::restore(p.cursors(), &names(&["audit", "app"]));
        let retired = p.files().retired();
        assert_eq!(retired.len(), 1);
        assert_eq!((retired[0].source, retired[0].offset), (0, 50));
    }
}
