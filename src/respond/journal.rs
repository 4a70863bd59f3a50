//! The action journal: every revocation is written down before its hook is
//! called and again after, so a crash never loses one and never runs one twice.
//!
//! An append-only JSON Lines file (`actions.jsonl` in the state dir), fsynced
//! after every record. Each record carries a format version. On open the file is
//! folded into one entry per idempotency key; an intent with no outcome is
//! pending and is resumed by the responder. A torn last line (a crash in the
//! middle of a write) is ignored: its intent was never acknowledged, so the line
//! that caused it is processed again and the intent written again.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::finding::{ActionStatus, Finding};

/// One journal line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Record {
    /// About to call the hooks.
    Intent {
        /// Format version (1).
        v: u32,
        /// The idempotency key.
        key: String,
        /// Wall-clock time, ms since the epoch.
        at: i64,
        /// The exact payload the hooks receive.
        payload: serde_json::Value,
        /// The finding, written out once the outcome is known.
        finding: Box<Finding>,
    },
    /// The hooks finished.
    Done {
        /// Format version (1).
        v: u32,
        /// The idempotency key.
        key: String,
        /// Wall-clock time, ms since the epoch.
        at: i64,
        /// `executed` or `failed`.
        status: ActionStatus,
        /// Hook attempts made.
        attempts: u32,
    },
}

/// What the journal knows about one key.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The payload.
    pub payload: serde_json::Value,
    /// The finding that asked for it.
    pub finding: Finding,
    /// When the intent was written.
    pub intent_at: i64,
    /// `None` while pending.
    pub outcome: Option<ActionStatus>,
}

/// The journal file and its folded contents.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    entries: HashMap<String, Entry>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Journal {
    /// Opens (or creates) the journal at `path` and folds its records.
    pub fn open(path: &Path) -> std::io::Result<Journal> {
        let mut entries: HashMap<String, Entry> = HashMap::new();
        if path.exists() {
            let reader = BufReader::new(File::open(path)?);
            for (n, line) in reader.split(b'\n').enumerate() {
                let line = line?;
                if line.is_empty() {
                    continue;
                }
                match serde_json::from_slice::<Record>(&line) {
                    Ok(Record::Intent {
                        key,
                        at,
                        payload,
                        finding,
                        ..
                    }) => {
                        entries.entry(key).or_insert(Entry {
                            payload,
                            finding: *finding,
                            intent_at: at,
                            outcome: None,
                        });
                    }
                    Ok(Record::Done { key, status, .. }) => {
                        if let Some(e) = entries.get_mut(&key) {
                            e.outcome = Some(status);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(journal = %path.display(), line = n + 1, error = %e, "unreadable journal record skipped (torn write?)")
                    }
                }
            }
        }
        let mut file = OpenOptions::new().create(true).append(true).open(path)?;
        // A torn last record has no newline; end it so the next record starts on
        // a line of its own instead of being glued to the fragment.
        let len = file.metadata()?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            use std::io::{Read, Seek, SeekFrom};
            let mut r = File::open(path)?;
            r.seek(SeekFrom::Start(len - 1))?;
            r.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
                file.sync_data()?;
            }
        }
        Ok(Journal {
            path: path.to_owned(),
            file,
            entries,
        })
    }

    /// The journal's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entry for a key.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Keys whose hooks have not finished, oldest first.
    pub fn pending(&self) -> Vec<(String, Entry)> {
        let mut v: Vec<_> = self
            .entries
            .iter()
            .filter(|(_, e)| e.outcome.is_none())
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        v.sort_by_key(|(_, e)| e.intent_at);
        v
    }

    /// Every entry.
    pub fn entries(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter()
    }

    fn append(&mut self, rec: &Record) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(rec).expect("journal records serialise");
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()
    }

    /// Durably records the intent to revoke. Returns false (and writes nothing)
    /// when the key is already journaled.
    pub fn record_intent(
        &mut self,
        key: &str,
        payload: serde_json::Value,
        finding: &Finding,
    ) -> std::io::Result<bool> {
        if self.entries.contains_key(key) {
            return Ok(false);
        }
        let at = now_ms();
        self.append(&Record::Intent {
            v: 1,
            key: key.to_owned(),
            at,
            payload: payload.clone(),
            finding: Box::new(finding.clone()),
        })?;
        self.entries.insert(
            key.to_owned(),
            Entry {
                payload,
                finding: finding.clone(),
                intent_at: at,
                outcome: None,
            },
        );
        Ok(true)
    }

    /// Durably records the outcome.
    pub fn record_done(
        &mut self,
        key: &str,
        status: ActionStatus,
        attempts: u32,
    ) -> std::io::Result<()> {
        self.append(&Record::Done {
            v: 1,
            key: key.to_owned(),
            at: now_ms(),
            status,
            attempts,
        })?;
        if let Some(e) = self.entries.get_mut(key) {
            e.outcome = Some(status);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Ts;
    use crate::finding::{FindingKind, Severity};

    fn finding(id: &str) -> Finding {
        Finding {
            finding_id: id.into(),
            kind: FindingKind::UnverifiedAgentGrant,
            severity: Severity::Critical,
            ts: Ts(0),
            principals: vec![],
            grant_id: Some("g".into()),
            advice_id: None,
            resource: None,
            score: 1.0,
            summary: String::new(),
            evidence: serde_json::Value::Null,
            action: None,
        }
    }

    #[test]
    fn intents_survive_reopen_and_outcomes_fold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("actions.jsonl");
        {
            let mut j = Journal::open(&path).unwrap();
            assert!(
                j.record_intent("k1", serde_json::json!({"a":1}), &finding("f1"))
                    .unwrap()
            );
            assert!(
                !j.record_intent("k1", serde_json::json!({"a":2}), &finding("f1"))
                    .unwrap()
            );
            assert!(
                j.record_intent("k2", serde_json::json!({"a":3}), &finding("f2"))
                    .unwrap()
            );
            j.record_done("k1", ActionStatus::Executed, 2).unwrap();
        }
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.get("k1").unwrap().outcome, Some(ActionStatus::Executed));
        assert_eq!(j.get("k1").unwrap().payload, serde_json::json!({"a":1}));
        let pending = j.pending();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].0, "k2");
        assert_eq!(pending[0].1.finding.finding_id, "f2");
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("actions.jsonl");
        {
            let mut j = Journal::open(&path).unwrap();
            j.record_intent("k1", serde_json::json!({}), &finding("f1"))
                .unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"op":"done","v":1,"key":"k1","at":1,"sta"#)
            .unwrap();
        drop(f);
        let mut j = Journal::open(&path).unwrap();
        assert_eq!(j.pending().len(), 1, "the torn outcome does not count");
        j.record_done("k1", ActionStatus::Failed, 5).unwrap();
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.get("k1").unwrap().outcome, Some(ActionStatus::Failed));
    }
}
