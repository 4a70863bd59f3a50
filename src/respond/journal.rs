//! The action journal: every revocation is written down before its hook is
//! called and again after, so a crash never loses one and never runs one twice.
//! Restores are written down the same way, with who asked and why.
//!
//! An append-only JSON Lines file (`actions.jsonl` in the state dir), fsynced
//! after every record. Each record carries a format version. On open the file is
//! folded into one entry per idempotency key; an intent with no outcome is
//! pending and is resumed by the responder. A torn last line (a crash in the
//! middle of a write) is ignored: its intent was never acknowledged, so the line
//! that caused it is processed again and the intent written again.
//!
//! # Two processes, one file
//!
//! `reachguard restore` runs as its own process and appends to the same file
//! while the daemon may be running. Every append (and the fold on open) happens
//! under an exclusive advisory lock (`flock(2)`, through `rustix`, so no
//! `unsafe` here) on the journal file itself, and starts by catching up with whatever the other
//! process appended since this one last looked. So "is this key journaled?" and
//! "journal it" are one atomic step across processes, records never interleave,
//! and the torn-line repair never writes into a record another process is in
//! the middle of. The lock is held for one fsynced write, never across a hook
//! call. Locking the journal itself (not a separate lock file) means a restore
//! run as another user (root) never creates a file the daemon cannot open.
//!
//! # Growth
//!
//! The journal is not compacted: it is the audit trail of every automatic
//! revocation and every restore. Each revocation adds two lines (the intent
//! carries its finding, about 2 KiB), bounded by `max_revocations_per_hour`;
//! at the default 20 an hour that is under 2 MiB a day in the worst case, and
//! reading it on start takes milliseconds.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::finding::{ActionStatus, Finding};

/// The journal's format version, written in every record.
const VERSION: u32 = 1;

/// One journal line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Record {
    /// About to call the revocation hooks.
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
        /// When the line that triggered it was read (wall clock, ms since
        /// the epoch), when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        read_at: Option<i64>,
    },
    /// The revocation hooks finished.
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
    /// About to call the restore hooks for a revoked grant.
    RestoreIntent {
        /// Format version (1).
        v: u32,
        /// The restore's idempotency key.
        key: String,
        /// The idempotency key of the revocation it undoes.
        revoke_key: String,
        /// Wall-clock time, ms since the epoch.
        at: i64,
        /// The exact payload the restore hooks receive.
        payload: serde_json::Value,
        /// Who asked.
        requester: Requester,
        /// Why, if they said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The restore hooks finished.
    RestoreDone {
        /// Format version (1).
        v: u32,
        /// The restore's idempotency key.
        key: String,
        /// The idempotency key of the revocation it undoes.
        revoke_key: String,
        /// Wall-clock time, ms since the epoch.
        at: i64,
        /// `executed` or `failed`.
        status: ActionStatus,
        /// Hook attempts made.
        attempts: u32,
    },
}

/// Who asked for a restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requester {
    /// The operating-system user that ran `reachguard restore`.
    pub os_user: String,
    /// Its numeric uid, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// The person it was done for (`--by`), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

impl Requester {
    /// The person to name: `--by` if given, else the OS user.
    pub fn name(&self) -> &str {
        self.by.as_deref().unwrap_or(&self.os_user)
    }
}

/// What the journal knows about one revocation key.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The payload.
    pub payload: serde_json::Value,
    /// The finding that asked for it.
    pub finding: Finding,
    /// When the intent was written (ms since the epoch).
    pub intent_at: i64,
    /// When the triggering line was read (ms since the epoch), when known.
    pub read_at: Option<i64>,
    /// `None` while pending.
    pub outcome: Option<ActionStatus>,
    /// When the hooks finished (ms since the epoch) and after how many
    /// attempts, once they have.
    pub done: Option<(i64, u32)>,
    /// The restore of this revocation, if one was asked for.
    pub restore: Option<Restore>,
}

/// A restore as the journal knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Restore {
    /// Its idempotency key.
    pub key: String,
    /// The payload the restore hooks receive.
    pub payload: serde_json::Value,
    /// Who asked.
    pub requester: Requester,
    /// Why.
    pub reason: Option<String>,
    /// When it was asked for (ms since the epoch).
    pub at: i64,
    /// `None` while pending (or interrupted).
    pub outcome: Option<ActionStatus>,
}

/// The journal file and its folded contents.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    /// Opened for reading and appending; also the file the lock is taken on.
    file: File,
    /// Bytes of the file folded so far.
    read_upto: u64,
    /// Lines folded so far (for log messages).
    lines: u64,
    entries: HashMap<String, Entry>,
}

pub(crate) use rustix::fs::FlockOperation;

/// `flock(2)` on `file`: an advisory lock the kernel drops when the holder dies.
pub(crate) fn flock(file: &File, op: FlockOperation) -> std::io::Result<()> {
    rustix::fs::flock(file, op).map_err(std::io::Error::from)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Journal {
    /// Opens (or creates) the journal at `path` and folds its records.
    pub fn open(path: &Path) -> std::io::Result<Journal> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        Journal::from_file(path, file)
    }

    /// Opens an existing journal; `NotFound` if there is none. Creates nothing,
    /// so a tool run as another user leaves no file the daemon cannot open.
    pub fn open_existing(path: &Path) -> std::io::Result<Journal> {
        let file = OpenOptions::new().read(true).append(true).open(path)?;
        Journal::from_file(path, file)
    }

    fn from_file(path: &Path, file: File) -> std::io::Result<Journal> {
        let mut j = Journal {
            path: path.to_owned(),
            file,
            read_upto: 0,
            lines: 0,
            entries: HashMap::new(),
        };
        j.locked(|j| j.catch_up())?;
        Ok(j)
    }

    /// Runs `f` holding the exclusive lock on the journal file.
    fn locked<T>(&mut self, f: impl FnOnce(&mut Self) -> std::io::Result<T>) -> std::io::Result<T> {
        flock(&self.file, FlockOperation::LockExclusive)?;
        let result = f(self);
        let unlocked = flock(&self.file, FlockOperation::Unlock);
        let value = result?;
        unlocked?;
        Ok(value)
    }

    /// Folds whatever was appended since the last look (by this process or
    /// another). Call with the lock held.
    fn catch_up(&mut self) -> std::io::Result<()> {
        let len = self.file.metadata()?.len();
        if len < self.read_upto {
            return Err(std::io::Error::other(format!(
                "{} shrank from {} to {len} bytes while open; refusing to guess what was lost",
                self.path.display(),
                self.read_upto
            )));
        }
        if len == self.read_upto {
            return Ok(());
        }
        let mut buf = vec![0u8; (len - self.read_upto) as usize];
        self.file.read_exact_at(&mut buf, self.read_upto)?;
        let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        for line in buf[..complete].split(|b| *b == b'\n') {
            if line.is_empty() {
                continue;
            }
            self.lines += 1;
            match serde_json::from_slice::<Record>(line) {
                Ok(rec) => self.fold(rec),
                Err(e) => {
                    tracing::warn!(journal = %self.path.display(), line = self.lines, error = %e, "unreadable journal record skipped (torn write?)")
                }
            }
        }
        self.read_upto = len;
        if complete < buf.len() {
            // Writers hold the lock while they write, so an unterminated last
            // record is one whose writer died mid-write. End it so the next
            // record starts on a line of its own instead of being glued to it.
            self.lines += 1;
            tracing::warn!(journal = %self.path.display(), line = self.lines, "torn journal record skipped (a crash during a write)");
            self.file.write_all(b"\n")?;
            self.file.sync_data()?;
            self.read_upto += 1;
        }
        Ok(())
    }

    fn fold(&mut self, rec: Record) {
        match rec {
            Record::Intent {
                key,
                at,
                payload,
                finding,
                read_at,
                ..
            } => {
                self.entries.entry(key).or_insert(Entry {
                    payload,
                    finding: *finding,
                    intent_at: at,
                    read_at,
                    outcome: None,
                    done: None,
                    restore: None,
                });
            }
            Record::Done {
                key,
                status,
                at,
                attempts,
                ..
            } => {
                if let Some(e) = self.entries.get_mut(&key) {
                    e.outcome = Some(status);
                    e.done = Some((at, attempts));
                }
            }
            Record::RestoreIntent {
                key,
                revoke_key,
                at,
                payload,
                requester,
                reason,
                ..
            } => {
                if let Some(e) = self.entries.get_mut(&revoke_key) {
                    // A retried restore (the earlier one failed or was
                    // interrupted) is the same restore asked for again: the
                    // latest request names who asked this time.
                    e.restore = Some(Restore {
                        key,
                        payload,
                        requester,
                        reason,
                        at,
                        outcome: None,
                    });
                }
            }
            Record::RestoreDone {
                key,
                revoke_key,
                status,
                ..
            } => {
                if let Some(r) = self
                    .entries
                    .get_mut(&revoke_key)
                    .and_then(|e| e.restore.as_mut())
                    .filter(|r| r.key == key)
                {
                    r.outcome = Some(status);
                }
            }
        }
    }

    /// Appends and fsyncs one record. Call with the lock held, after `catch_up`.
    fn append(&mut self, rec: &Record) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(rec).expect("journal records serialise");
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()?;
        self.read_upto += line.len() as u64;
        self.lines += 1;
        Ok(())
    }

    /// The journal's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Catches up with records other processes appended (a restore, say).
    pub fn refresh(&mut self) -> std::io::Result<()> {
        self.locked(|j| j.catch_up())
    }

    /// The entry for a revocation key.
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

    /// When each revocation the policy decided to execute at or after
    /// `since_ms` was journaled (ms since the epoch): what the hourly budget
    /// has already spent.
    pub fn intents_since(&self, since_ms: i64) -> Vec<i64> {
        let mut v: Vec<i64> = self
            .entries
            .values()
            .map(|e| e.intent_at)
            .filter(|at| *at >= since_ms)
            .collect();
        v.sort_unstable();
        v
    }

    /// Durably records the intent to revoke. Returns false (and writes nothing)
    /// when the key is already journaled, by this process or another.
    pub fn record_intent(
        &mut self,
        key: &str,
        payload: serde_json::Value,
        finding: &Finding,
    ) -> std::io::Result<bool> {
        self.record_intent_read_at(key, payload, finding, None)
    }

    /// [`Journal::record_intent`] with when the triggering line was read
    /// (ms since the epoch), for the time from a grant to its revocation.
    pub fn record_intent_read_at(
        &mut self,
        key: &str,
        payload: serde_json::Value,
        finding: &Finding,
        read_at: Option<i64>,
    ) -> std::io::Result<bool> {
        self.locked(|j| {
            j.catch_up()?;
            if j.entries.contains_key(key) {
                return Ok(false);
            }
            let at = now_ms();
            j.append(&Record::Intent {
                v: VERSION,
                key: key.to_owned(),
                at,
                payload: payload.clone(),
                finding: Box::new(finding.clone()),
                read_at,
            })?;
            j.entries.insert(
                key.to_owned(),
                Entry {
                    payload,
                    finding: finding.clone(),
                    intent_at: at,
                    read_at,
                    outcome: None,
                    done: None,
                    restore: None,
                },
            );
            Ok(true)
        })
    }

    /// Durably records the outcome.
    pub fn record_done(
        &mut self,
        key: &str,
        status: ActionStatus,
        attempts: u32,
    ) -> std::io::Result<()> {
        self.locked(|j| {
            j.catch_up()?;
            let at = now_ms();
            j.append(&Record::Done {
                v: VERSION,
                key: key.to_owned(),
                at,
                status,
                attempts,
            })?;
            if let Some(e) = j.entries.get_mut(key) {
                e.outcome = Some(status);
                e.done = Some((at, attempts));
            }
            Ok(())
        })
    }

    /// Checks that the revocation under `revoke_key` can be undone and durably
    /// records the intent to restore it, in one step under the lock. `payload`
    /// builds the restore payload from the revocation's.
    pub fn begin_restore(
        &mut self,
        revoke_key: &str,
        restore_key: &str,
        requester: &Requester,
        reason: Option<&str>,
        payload: impl FnOnce(&serde_json::Value) -> serde_json::Value,
    ) -> Result<serde_json::Value, RestoreRefused> {
        let mut refused = None;
        let res = self.locked(|j| {
            j.catch_up()?;
            let Some(e) = j.entries.get(revoke_key) else {
                refused = Some(RestoreRefused::NeverRevoked(
                    "no revocation of it is in the action journal".into(),
                ));
                return Ok(None);
            };
            match e.outcome {
                None => {
                    refused = Some(RestoreRefused::NeverRevoked(
                        "its revocation is still in progress; try again once it has finished"
                            .into(),
                    ));
                    return Ok(None);
                }
                Some(ActionStatus::Executed) => {}
                Some(other) => {
                    refused = Some(RestoreRefused::NeverRevoked(format!(
                        "its revocation ended {}; there is nothing to undo",
                        other.as_str()
                    )));
                    return Ok(None);
                }
            }
            if let Some(r) = &e.restore {
                if r.outcome == Some(ActionStatus::Executed) {
                    refused = Some(RestoreRefused::AlreadyRestored {
                        by: r.requester.name().to_owned(),
                        at: chrono::DateTime::from_timestamp_millis(r.at)
                            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                            .unwrap_or_else(|| r.at.to_string()),
                    });
                    return Ok(None);
                }
            }
            let body = payload(&e.payload);
            let at = now_ms();
            j.append(&Record::RestoreIntent {
                v: VERSION,
                key: restore_key.to_owned(),
                revoke_key: revoke_key.to_owned(),
                at,
                payload: body.clone(),
                requester: requester.clone(),
                reason: reason.map(str::to_owned),
            })?;
            if let Some(e) = j.entries.get_mut(revoke_key) {
                e.restore = Some(Restore {
                    key: restore_key.to_owned(),
                    payload: body.clone(),
                    requester: requester.clone(),
                    reason: reason.map(str::to_owned),
                    at,
                    outcome: None,
                });
            }
            Ok(Some(body))
        });
        match res {
            Err(e) => Err(RestoreRefused::Io(e)),
            Ok(Some(body)) => Ok(body),
            Ok(None) => Err(refused.expect("a refusal is set whenever no body is")),
        }
    }

    /// Durably records a restore's outcome.
    pub fn finish_restore(
        &mut self,
        revoke_key: &str,
        restore_key: &str,
        status: ActionStatus,
        attempts: u32,
    ) -> std::io::Result<()> {
        self.locked(|j| {
            j.catch_up()?;
            j.append(&Record::RestoreDone {
                v: VERSION,
                key: restore_key.to_owned(),
                revoke_key: revoke_key.to_owned(),
                at: now_ms(),
                status,
                attempts,
            })?;
            if let Some(r) = j
                .entries
                .get_mut(revoke_key)
                .and_then(|e| e.restore.as_mut())
            {
                r.outcome = Some(status);
            }
            Ok(())
        })
    }
}

/// Why the journal will not start a restore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreRefused {
    /// There is no executed revocation to undo; the text says what there is.
    #[error("it was never revoked: {0}")]
    NeverRevoked(String),
    /// It was restored before.
    #[error("it was already restored (by {by} at {at})")]
    AlreadyRestored {
        /// Who asked that time.
        by: String,
        /// When (RFC 3339).
        at: String,
    },
    /// The journal could not be read or written.
    #[error("action journal: {0}")]
    Io(std::io::Error),
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

    fn alice() -> Requester {
        Requester {
            os_user: "alice".into(),
            uid: Some(1000),
            by: None,
        }
    }

    fn restore_payload(revoke: &serde_json::Value) -> serde_json::Value {
        let mut p = revoke.clone();
        p["action"] = "restore".into();
        p
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
                j.record_intent_read_at("k2", serde_json::json!({"a":3}), &finding("f2"), Some(7))
                    .unwrap()
            );
            j.record_done("k1", ActionStatus::Executed, 2).unwrap();
        }
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.get("k1").unwrap().outcome, Some(ActionStatus::Executed));
        // When and after how many attempts, and when the line was read.
        let (done_at, attempts) = j.get("k1").unwrap().done.unwrap();
        assert!(done_at >= j.get("k1").unwrap().intent_at);
        assert_eq!(attempts, 2);
        assert_eq!(j.get("k1").unwrap().read_at, None);
        assert_eq!(j.get("k2").unwrap().read_at, Some(7));
        assert_eq!(j.get("k2").unwrap().done, None);
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

    #[test]
    fn version_1_records_written_before_restores_existed_still_fold() {
        // Exactly what the first release wrote: intent and done records, v 1.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("actions.jsonl");
        let intent = serde_json::json!({"op":"intent","v":1,"key":"reachguard-revoke-g-1","at":1_700_000_000_000i64,
            "payload":{"action":"revoke","grant_id":"g-1","kind":"grant","finding_id":"rg-1","reason":"r","idempotency_key":"reachguard-revoke-g-1"},
            "finding":{"finding_id":"rg-1","kind":"unverified_agent_grant","severity":"critical","ts":"2026-03-18T09:07:02Z","principals":["carol"],"grant_id":"g-1","score":1.0,"summary":"s","evidence":null}});
        let done = r#"{"op":"done","v":1,"key":"reachguard-revoke-g-1","at":1700000000100,"status":"executed","attempts":1}"#;
        std::fs::write(&path, format!("{intent}\n{done}\n")).unwrap();
        let j = Journal::open(&path).unwrap();
        let e = j.get("reachguard-revoke-g-1").unwrap();
        assert_eq!(e.outcome, Some(ActionStatus::Executed));
        assert_eq!(e.intent_at, 1_700_000_000_000);
        assert_eq!(e.finding.finding_id, "rg-1");
        assert_eq!(e.payload["grant_id"], "g-1");
        assert!(e.restore.is_none());
    }

    #[test]
    fn a_second_handle_sees_the_first_ones_records_before_it_appends() {
        // Two open file descriptions, as the daemon and `reachguard restore` have.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("actions.jsonl");
        let mut daemon = Journal::open(&path).unwrap();
        let mut other = Journal::open(&path).unwrap();
        assert!(
            daemon
                .record_intent("k1", serde_json::json!({"n":1}), &finding("f1"))
                .unwrap()
        );
        assert!(
            !other
                .record_intent("k1", serde_json::json!({"n":2}), &finding("f1"))
                .unwrap(),
            "the key journaled by the other handle is seen under the lock"
        );
        daemon.record_done("k1", ActionStatus::Executed, 1).unwrap();
        other
            .begin_restore("k1", "r1", &alice(), Some("approved"), restore_payload)
            .unwrap();
        daemon.refresh().unwrap();
        let r = daemon.get("k1").unwrap().restore.clone().unwrap();
        assert_eq!(r.requester, alice());
        assert_eq!(r.outcome, None);
        // Whole lines only, in order, nothing interleaved.
        let text = std::fs::read_to_string(&path).unwrap();
        let ops: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["op"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(ops, ["intent", "done", "restore_intent"]);
    }

    #[test]
    fn restore_is_refused_unless_the_revocation_was_executed_and_not_yet_restored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("actions.jsonl");
        let mut j = Journal::open(&path).unwrap();
        let begin = |j: &mut Journal, key: &str| {
            j.begin_restore(key, &format!("restore-{key}"), &alice(), None, |p| {
                restore_payload(p)
            })
        };
        assert!(
            matches!(begin(&mut j, "nope"), Err(RestoreRefused::NeverRevoked(m)) if m.contains("no revocation"))
        );
        j.record_intent("pending", serde_json::json!({}), &finding("f1"))
            .unwrap();
        assert!(
            matches!(begin(&mut j, "pending"), Err(RestoreRefused::NeverRevoked(m)) if m.contains("in progress"))
        );
        j.record_intent("failed", serde_json::json!({}), &finding("f2"))
            .unwrap();
        j.record_done("failed", ActionStatus::Failed, 5).unwrap();
        assert!(
            matches!(begin(&mut j, "failed"), Err(RestoreRefused::NeverRevoked(m)) if m.contains("ended failed"))
        );

        j.record_intent(
            "ok",
            serde_json::json!({"action":"revoke","grant_id":"g"}),
            &finding("f3"),
        )
        .unwrap();
        j.record_done("ok", ActionStatus::Executed, 1).unwrap();
        let body = begin(&mut j, "ok").unwrap();
        assert_eq!(body, serde_json::json!({"action":"restore","grant_id":"g"}));
        // A restore whose hooks failed may be tried again; one that executed may not.
        j.finish_restore("ok", "restore-ok", ActionStatus::Failed, 3)
            .unwrap();
        begin(&mut j, "ok").unwrap();
        j.finish_restore("ok", "restore-ok", ActionStatus::Executed, 1)
            .unwrap();
        let j2 = Journal::open(&path).unwrap();
        let again = |j: &mut Journal| begin(j, "ok");
        let mut j2 = j2;
        assert!(
            matches!(again(&mut j2), Err(RestoreRefused::AlreadyRestored { by, .. }) if by == "alice")
        );
        assert_eq!(
            j2.get("ok").unwrap().outcome,
            Some(ActionStatus::Executed),
            "a restore leaves the revocation journaled, so the grant is not revoked again"
        );
    }

    #[test]
    fn a_torn_record_left_by_a_dead_writer_is_ended_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("actions.jsonl");
        let mut j = Journal::open(&path).unwrap();
        // Another process died half-way through a record.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"op":"intent","v":1,"key":"kx""#).unwrap();
        drop(f);
        assert!(
            j.record_intent("k1", serde_json::json!({}), &finding("f1"))
                .unwrap()
        );
        let j2 = Journal::open(&path).unwrap();
        assert!(
            j2.get("k1").is_some(),
            "the new record is on a line of its own"
        );
        assert!(j2.get("kx").is_none());
    }

    #[test]
    fn intents_since_lists_what_the_budget_spent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("actions.jsonl");
        let old = serde_json::json!({"op":"intent","v":1,"key":"old","at":1000,"payload":{},
            "finding":{"finding_id":"f0","kind":"unverified_agent_grant","severity":"high","ts":"2026-03-18T09:00:00Z","principals":[],"score":1.0,"summary":"","evidence":null}});
        std::fs::write(&path, format!("{old}\n")).unwrap();
        let mut j = Journal::open(&path).unwrap();
        let before = now_ms();
        j.record_intent("new", serde_json::json!({}), &finding("f1"))
            .unwrap();
        let spent = j.intents_since(before - 1);
        assert_eq!(spent.len(), 1);
        assert!(spent[0] >= before);
        assert_eq!(j.intents_since(0).len(), 2);
    }
}
