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
use crate::finding::{Finding, Severity};

/// The recent findings, shared with the HTTP server.
pub type Recent = Arc<RwLock<VecDeque<Finding>>>;

/// Writes findings once each.
#[derive(Debug)]
pub struct FindingsSink {
    out: BufWriter<File>,
    seen: HashSet<String>,
    recent: Recent,
    keep: usize,
    /// Each new finding, for the incident page's live updates.
    live: tokio::sync::broadcast::Sender<Finding>,
}

/// New findings a live page has not read yet, at most; one that falls
/// further behind is told to reload.
const LIVE_BACKLOG: usize = 256;

/// Filters of `GET /api/findings`.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct Query {
    /// Only findings at or after this event time (RFC 3339).
    pub since: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only findings naming this principal.
    pub principal: Option<String>,
    /// Only findings of this severity or worse (`low`, `medium`, `high`, `critical`).
    pub severity: Option<String>,
    /// At most this many (newest last); default 100.
    pub limit: Option<usize>,
}

/// A [`Query`]'s conditions, checked.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    since: Option<Ts>,
    kind: Option<String>,
    principal: Option<String>,
    min_severity: Option<Severity>,
}

impl Filter {
    /// Checks the query's values; the message says which one is wrong.
    pub fn parse(q: &Query) -> Result<Filter, String> {
        let since = match &q.since {
            Some(s) => Some(
                Ts::parse_rfc3339(s)
                    .ok_or_else(|| format!("`since` is not an RFC 3339 time: {s:?}"))?,
            ),
            None => None,
        };
        let min_severity = match &q.severity {
            Some(s) => Some(parse_severity(s).ok_or_else(|| {
                format!("`severity` must be one of low, medium, high, critical, not {s:?}")
            })?),
            None => None,
        };
        Ok(Filter {
            since,
            kind: q.kind.clone(),
            principal: q.principal.clone(),
            min_severity,
        })
    }

    /// Whether `f` meets every condition.
    pub fn matches(&self, f: &Finding) -> bool {
        self.since.is_none_or(|t| f.ts >= t)
            && self.kind.as_deref().is_none_or(|k| f.kind.as_str() == k)
            && self.min_severity.is_none_or(|s| f.severity >= s)
            && self
                .principal
                .as_deref()
                .is_none_or(|p| f.principals.iter().any(|x| x == p))
    }
}

/// Applies a query to the recent findings.
pub fn query(recent: &Recent, q: &Query) -> Result<Vec<Finding>, String> {
    let filter = Filter::parse(q)?;
    let limit = q.limit.unwrap_or(100);
    let all = recent.read().expect("findings lock");
    let mut hits: Vec<Finding> = all
        .iter()
        .rev()
        .filter(|f| filter.matches(f))
        .take(limit)
        .cloned()
        .collect();
    hits.reverse();
    Ok(hits)
}

fn parse_severity(s: &str) -> Option<Severity> {
    [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ]
    .into_iter()
    .find(|v| v.as_str() == s)
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
            live: tokio::sync::broadcast::channel(LIVE_BACKLOG).0,
        })
    }

    /// The shared recent findings.
    pub fn recent(&self) -> Recent {
        Arc::clone(&self.recent)
    }

    /// New findings as they are written (a receiver per subscriber).
    pub fn live(&self) -> tokio::sync::broadcast::Sender<Finding> {
        self.live.clone()
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
        drop(r);
        // Nobody listening is no error.
        let _ = self.live.send(f.clone());
        Ok(true)
    }

    /// Makes everything written durable.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::FindingKind;

    fn finding(id: &str, kind: FindingKind, severity: Severity, ts_s: i64, who: &str) -> Finding {
        Finding {
            finding_id: id.into(),
            kind,
            severity,
            ts: Ts(ts_s * 1000),
            principals: vec![who.into()],
            grant_id: None,
            advice_id: None,
            resource: None,
            score: 1.0,
            summary: String::new(),
            evidence: serde_json::Value::Null,
            action: None,
        }
    }

    fn ids(r: Result<Vec<Finding>, String>) -> Vec<String> {
        r.unwrap().into_iter().map(|f| f.finding_id).collect()
    }

    fn recent() -> Recent {
        Arc::new(RwLock::new(VecDeque::from([
            finding("a", FindingKind::ReachExpansion, Severity::Low, 10, "alice"),
            finding(
                "b",
                FindingKind::GrantExpansion,
                Severity::Medium,
                20,
                "bob",
            ),
            finding(
                "c",
                FindingKind::UnverifiedAgentGrant,
                Severity::High,
                30,
                "alice",
            ),
            finding(
                "d",
                FindingKind::ReachExpansion,
                Severity::Critical,
                40,
                "carol",
            ),
        ])))
    }

    #[test]
    fn severity_is_a_minimum_and_combines_with_the_other_filters() {
        let r = recent();
        let q = |severity: &str| Query {
            severity: Some(severity.into()),
            ..Query::default()
        };
        assert_eq!(ids(query(&r, &q("low"))), ["a", "b", "c", "d"]);
        assert_eq!(ids(query(&r, &q("medium"))), ["b", "c", "d"]);
        assert_eq!(ids(query(&r, &q("high"))), ["c", "d"]);
        assert_eq!(ids(query(&r, &q("critical"))), ["d"]);
        let both = Query {
            severity: Some("high".into()),
            kind: Some("reach_expansion".into()),
            ..Query::default()
        };
        assert_eq!(ids(query(&r, &both)), ["d"]);
        let alice = Query {
            severity: Some("medium".into()),
            principal: Some("alice".into()),
            ..Query::default()
        };
        assert_eq!(ids(query(&r, &alice)), ["c"]);
        let err = query(&r, &q("severe")).unwrap_err();
        assert!(err.contains("`severity` must be one of"), "{err}");
    }

    #[test]
    fn since_kind_principal_and_limit_keep_the_newest() {
        let r = recent();
        let since = Query {
            since: Some("1970-01-01T00:00:20Z".into()),
            ..Query::default()
        };
        assert_eq!(ids(query(&r, &since)), ["b", "c", "d"]);
        let limited = Query {
            limit: Some(2),
            ..Query::default()
        };
        assert_eq!(ids(query(&r, &limited)), ["c", "d"], "newest last");
        let kind = Query {
            kind: Some("reach_expansion".into()),
            principal: Some("alice".into()),
            ..Query::default()
        };
        assert_eq!(ids(query(&r, &kind)), ["a"]);
        assert!(
            query(
                &r,
                &Query {
                    since: Some("yesterday".into()),
                    ..Query::default()
                }
            )
            .is_err()
        );
    }
}
