//! The names of every subject, stream and bucket a cluster uses, derived once
//! from `[cluster] stream` and `subject_prefix`.
//!
//! ```text
//! <prefix>.raw.<format>[.<source>...]   shippers publish raw lines   stream <stream>_RAW (work queue)
//! <prefix>.ev.p.<n>                     access events of partition n stream <stream>_EVENTS
//! <prefix>.ev.ctl                       every other event            stream <stream>_EVENTS
//! <prefix>.findings.<n>                 findings of partition n      stream <stream>_FINDINGS
//! <prefix>.findings.<n>.action          findings with a revocation   stream <stream>_FINDINGS
//! KV <stream>_leases       p.<n> -> owning instance (max_age = lease_ttl)
//! KV <stream>_members      <instance> -> heartbeat (max_age = lease_ttl)
//! KV <stream>_revocations  revoke.<sha256 of the idempotency key> -> intent, outcome
//! KV <stream>_progress     p.<n> -> last snapshot's position; `partitions` -> the count;
//!                          `budget` -> the hourly revocation budget spent
//! Object store <stream>_snapshots  partition-<n> -> partition state
//! ```

use crate::config::cluster::ClusterConfig;

/// Subjects, streams and buckets of one cluster.
#[derive(Debug, Clone)]
pub struct Names {
    prefix: String,
    /// The raw lines' stream.
    pub raw_stream: String,
    /// The normalised events' stream.
    pub events_stream: String,
    /// The findings' stream.
    pub findings_stream: String,
    /// Partition leases.
    pub leases_bucket: String,
    /// Instance heartbeats.
    pub members_bucket: String,
    /// Revocation intents and outcomes.
    pub revocations_bucket: String,
    /// Per-partition progress.
    pub progress_bucket: String,
    /// Partition snapshots (object store).
    pub snapshots_bucket: String,
    /// The durable consumer the instances share to ingest raw lines.
    pub ingest_consumer: String,
}

impl Names {
    /// The names for a validated `[cluster]`.
    pub fn new(c: &ClusterConfig) -> Names {
        let s = &c.stream;
        Names {
            prefix: c.subject_prefix.clone(),
            raw_stream: format!("{s}_RAW"),
            events_stream: format!("{s}_EVENTS"),
            findings_stream: format!("{s}_FINDINGS"),
            leases_bucket: format!("{s}_leases"),
            members_bucket: format!("{s}_members"),
            revocations_bucket: format!("{s}_revocations"),
            progress_bucket: format!("{s}_progress"),
            snapshots_bucket: format!("{s}_snapshots"),
            ingest_consumer: "ingest".into(),
        }
    }

    /// Every raw subject (`<prefix>.raw.>`).
    pub fn raw_all(&self) -> String {
        format!("{}.raw.>", self.prefix)
    }

    /// The raw subject for lines of `format` from `source`.
    pub fn raw(&self, format: &str, source: &str) -> String {
        format!("{}.raw.{format}.{source}", self.prefix)
    }

    /// Format and source named by a raw subject: the token after `raw`, and
    /// the rest (or `default`).
    pub fn parse_raw<'a>(&self, subject: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = subject
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(".raw.")?;
        Some(match rest.split_once('.') {
            Some((format, source)) => (format, source),
            None => (rest, "default"),
        })
    }

    /// Every event subject (`<prefix>.ev.>`).
    pub fn events_all(&self) -> String {
        format!("{}.ev.>", self.prefix)
    }

    /// The subject of partition `p`'s events.
    pub fn partition(&self, p: u32) -> String {
        format!("{}.ev.p.{p}", self.prefix)
    }

    /// The control subject.
    pub fn control(&self) -> String {
        format!("{}.ev.ctl", self.prefix)
    }

    /// Every findings subject (`<prefix>.findings.>`).
    pub fn findings_all(&self) -> String {
        format!("{}.findings.>", self.prefix)
    }

    /// Findings reported by partition `p` as it processes events.
    pub fn findings(&self, p: u32) -> String {
        format!("{}.findings.{p}", self.prefix)
    }

    /// Findings of partition `p` whose revocation ran (published when its outcome is known).
    pub fn findings_action(&self, p: u32) -> String {
        format!("{}.findings.{p}.action", self.prefix)
    }

    /// The lease key of partition `p`.
    pub fn lease_key(p: u32) -> String {
        format!("p.{p}")
    }

    /// The snapshot object of partition `p`.
    pub fn snapshot_object(p: u32) -> String {
        format!("partition-{p}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn names_follow_the_stem_and_prefix() {
        let c = Config::parse(
            "[cluster]\nurl = \"nats://x\"\ninstance = \"a\"\nstream = \"RG\"\nsubject_prefix = \"acme.rg\"\n",
        )
        .unwrap()
        .cluster
        .unwrap();
        let n = Names::new(&c);
        assert_eq!(n.raw_stream, "RG_RAW");
        assert_eq!(n.leases_bucket, "RG_leases");
        assert_eq!(n.partition(3), "acme.rg.ev.p.3");
        assert_eq!(n.control(), "acme.rg.ev.ctl");
        assert_eq!(n.findings_action(3), "acme.rg.findings.3.action");
        assert_eq!(n.raw("native", "web-1"), "acme.rg.raw.native.web-1");
        assert_eq!(
            n.parse_raw("acme.rg.raw.native.web-1.eu"),
            Some(("native", "web-1.eu"))
        );
        assert_eq!(n.parse_raw("acme.rg.raw.okta"), Some(("okta", "default")));
        assert_eq!(n.parse_raw("other.raw.okta"), None);
    }
}
