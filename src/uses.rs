//! Who used a grant after it was reported, and when: the "uses" link of an
//! incident's chain on the incident page.
//!
//! The pipeline watches the resource of every finding that names a grant
//! ([`Watches`]); an access to it (or to anything under it) by one of the
//! finding's principals at or after the grant's event time is a use. The
//! daemon appends each use to `uses.jsonl` in the state dir ([`UseLog`]) and
//! keeps them in memory for the page, so they survive a restart; lines read
//! again after a crash record nothing twice.
//!
//! Bounded: the latest `keep` findings with a grant are watched, and at most
//! [`PER_FINDING`] uses of each are kept (the rest are counted).

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::event::{AccessRef, Outcome, Ts};
use crate::finding::Finding;

/// Uses kept per finding; later ones are only counted.
pub const PER_FINDING: usize = 100;

/// One access through a reported grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Use {
    /// The finding whose grant it went through.
    pub finding_id: String,
    /// Who.
    pub principal: String,
    /// What, as logged (the grant's resource or something under it).
    pub resource: String,
    /// Event time.
    pub ts: Ts,
    /// Whether it was refused (after the revocation, say).
    #[serde(default, skip_serializing_if = "is_success")]
    pub denied: bool,
    /// The access event's id, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

fn is_success(denied: &bool) -> bool {
    !*denied
}

/// A finding being watched.
#[derive(Debug)]
struct Watch {
    finding_id: String,
    since: Ts,
    principals: Vec<String>,
}

/// The findings whose grants the pipeline watches, by resource.
#[derive(Debug)]
pub struct Watches {
    by_resource: HashMap<String, Vec<Watch>>,
    /// Watched (resource, finding id), oldest first.
    order: VecDeque<(String, String)>,
    keep: usize,
    found: Vec<Use>,
}

impl Watches {
    /// Watches for the latest `keep` findings.
    pub fn new(keep: usize) -> Watches {
        Watches {
            by_resource: HashMap::new(),
            order: VecDeque::new(),
            keep: keep.max(1),
            found: Vec::new(),
        }
    }

    /// Starts watching the grant of `f`, if it names one and a resource.
    pub fn watch(&mut self, f: &Finding) {
        let (Some(_), Some(resource)) = (&f.grant_id, &f.resource) else {
            return;
        };
        let list = self.by_resource.entry(resource.clone()).or_default();
        if list.iter().any(|w| w.finding_id == f.finding_id) {
            return;
        }
        list.push(Watch {
            finding_id: f.finding_id.clone(),
            since: f.ts,
            principals: f.principals.clone(),
        });
        self.order
            .push_back((resource.clone(), f.finding_id.clone()));
        if self.order.len() > self.keep {
            let (resource, id) = self.order.pop_front().expect("not empty");
            if let Some(list) = self.by_resource.get_mut(&resource) {
                list.retain(|w| w.finding_id != id);
                if list.is_empty() {
                    self.by_resource.remove(&resource);
                }
            }
        }
    }

    /// Looks at one access: a use of every watched grant it goes through.
    pub fn access(&mut self, a: &AccessRef<'_>) {
        if self.by_resource.is_empty() {
            return;
        }
        // The resource itself, then each parent (`a/b/c` is under `a/b` and `a`).
        let mut end = a.resource.len();
        loop {
            if let Some(list) = self.by_resource.get(&a.resource[..end]) {
                for w in list {
                    if a.ts >= w.since && w.principals.iter().any(|p| p == a.principal) {
                        self.found.push(Use {
                            finding_id: w.finding_id.clone(),
                            principal: a.principal.to_owned(),
                            resource: a.resource.to_owned(),
                            ts: a.ts,
                            denied: a.outcome == Outcome::Denied,
                            event_id: a.id.map(str::to_owned),
                        });
                    }
                }
            }
            match a.resource[..end].rfind('/') {
                Some(i) => end = i,
                None => break,
            }
        }
    }

    /// The uses seen since the last call.
    pub fn take(&mut self) -> Vec<Use> {
        std::mem::take(&mut self.found)
    }
}

/// The uses of one finding's grant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uses {
    /// In the order they were read, at most [`PER_FINDING`].
    pub list: Vec<Use>,
    /// Uses past those, counted since the daemon started.
    pub more: u64,
}

/// The uses the page shows, by finding id.
pub type Shared = Arc<RwLock<HashMap<String, Uses>>>;

/// `uses.jsonl` and the uses in memory.
#[derive(Debug)]
pub struct UseLog {
    out: BufWriter<File>,
    shared: Shared,
    /// Finding ids in the order their first use arrived, for the bound.
    order: VecDeque<String>,
    keep: usize,
}

impl UseLog {
    /// Opens `path`, loading the uses of the latest `keep` findings.
    pub fn open(path: &Path, keep: usize) -> std::io::Result<UseLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let mut log = UseLog {
            out: BufWriter::new(file),
            shared: Shared::default(),
            order: VecDeque::new(),
            keep: keep.max(1),
        };
        for line in BufReader::new(File::open(path)?).split(b'\n') {
            let line = line?;
            match serde_json::from_slice::<Use>(&line) {
                Ok(u) => {
                    log.remember(u);
                }
                Err(_) if line.is_empty() => {}
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "unreadable line in uses file skipped");
                }
            }
        }
        // A line cut short by a crash: the next one starts on a line of its own.
        if ends_mid_line(path)? {
            log.out.write_all(b"\n")?;
        }
        Ok(log)
    }

    /// The uses in memory, shared with the HTTP server.
    pub fn shared(&self) -> Shared {
        Arc::clone(&self.shared)
    }

    /// Keeps `u` in memory unless it is there already; whether it is new
    /// and within the bound (so worth writing).
    fn remember(&mut self, u: Use) -> bool {
        let mut all = self.shared.write().expect("uses lock");
        let uses = match all.get_mut(&u.finding_id) {
            Some(uses) => uses,
            None => {
                self.order.push_back(u.finding_id.clone());
                if self.order.len() > self.keep {
                    let old = self.order.pop_front().expect("not empty");
                    all.remove(&old);
                }
                all.entry(u.finding_id.clone()).or_default()
            }
        };
        if uses.list.contains(&u) {
            return false;
        }
        if uses.list.len() >= PER_FINDING {
            uses.more += 1;
            return false;
        }
        uses.list.push(u);
        true
    }

    /// Records a use once: in memory, and appended to the file.
    pub fn record(&mut self, u: Use) -> std::io::Result<()> {
        let line = serde_json::to_vec(&u).map_err(std::io::Error::other)?;
        if self.remember(u) {
            self.out.write_all(&line)?;
            self.out.write_all(b"\n")?;
            self.out.flush()?;
        }
        Ok(())
    }

    /// Makes everything written durable.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }
}

/// Whether the file's last byte is not a newline.
fn ends_mid_line(path: &Path) -> std::io::Result<bool> {
    let mut f = File::open(path)?;
    if f.metadata()?.len() == 0 {
        return Ok(false);
    }
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    f.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{FindingKind, Severity};

    fn finding(id: &str, resource: &str, ts: i64, principals: &[&str]) -> Finding {
        Finding {
            finding_id: id.into(),
            kind: FindingKind::UnverifiedAgentGrant,
            severity: Severity::Critical,
            ts: Ts(ts),
            principals: principals.iter().map(|p| p.to_string()).collect(),
            grant_id: Some(format!("g-{id}")),
            advice_id: None,
            resource: Some(resource.into()),
            score: 1.0,
            summary: String::new(),
            evidence: serde_json::Value::Null,
            action: None,
        }
    }

    /// Shows `w` a plain access, as the pipeline hands it on.
    fn see(w: &mut Watches, principal: &str, resource: &str, ts: i64) {
        let e = crate::event::Event::access(Ts(ts), principal, resource);
        let crate::event::EventRef::Access(a) = crate::event::EventRef::from(&e) else {
            unreachable!("an access reads as an access")
        };
        w.access(&a);
    }

    #[test]
    fn an_access_by_a_principal_after_the_grant_to_the_resource_or_below_is_a_use() {
        let mut w = Watches::new(10);
        see(&mut w, "carol", "acl/tools", 5);
        assert!(w.take().is_empty(), "nothing watched yet");
        w.watch(&finding("f1", "acl/tools", 100, &["carol", "ivan"]));
        see(&mut w, "carol", "acl/tools", 99); // before the grant
        see(&mut w, "mallory", "acl/tools", 150); // not a grantee
        see(&mut w, "carol", "acl/toolsx", 150); // another resource
        see(&mut w, "carol", "acl", 150); // above it
        see(&mut w, "carol", "acl/tools", 150);
        see(&mut w, "ivan", "acl/tools/admin", 160);
        let got: Vec<(String, i64)> = w
            .take()
            .into_iter()
            .map(|u| (u.principal, u.ts.0))
            .collect();
        assert_eq!(got, [("carol".into(), 150), ("ivan".into(), 160)]);
        assert!(w.take().is_empty(), "taken once");
    }

    #[test]
    fn only_the_latest_findings_are_watched() {
        let mut w = Watches::new(2);
        for (i, r) in ["a", "b", "c"].iter().enumerate() {
            w.watch(&finding(&format!("f{i}"), r, 0, &["p"]));
        }
        for r in ["a", "b", "c"] {
            see(&mut w, "p", r, 1);
        }
        let ids: Vec<String> = w.take().into_iter().map(|u| u.finding_id).collect();
        assert_eq!(ids, ["f1", "f2"]);
    }

    #[test]
    fn uses_survive_reopening_once_each_and_are_bounded_per_finding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("uses.jsonl");
        let u = |ts: i64| Use {
            finding_id: "f1".into(),
            principal: "carol".into(),
            resource: "acl/tools".into(),
            ts: Ts(ts),
            denied: false,
            event_id: None,
        };
        {
            let mut log = UseLog::open(&path, 10).unwrap();
            log.record(u(1)).unwrap();
            log.record(u(1)).unwrap(); // read again after a crash
            log.record(u(2)).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        let mut log = UseLog::open(&path, 10).unwrap();
        assert_eq!(log.shared().read().unwrap()["f1"].list, [u(1), u(2)]);
        for ts in 3..=(PER_FINDING as i64 + 5) {
            log.record(u(ts)).unwrap();
        }
        let shared = log.shared();
        let all = shared.read().unwrap();
        assert_eq!(all["f1"].list.len(), PER_FINDING);
        assert_eq!(all["f1"].more, 5);
    }
}
