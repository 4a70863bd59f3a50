//! Partition ownership: JetStream KV leases, heartbeats and rebalancing.
//!
//! - Each instance keeps a heartbeat key `<instance>` in the members bucket;
//!   the bucket's `max_age` is the lease TTL, so a dead instance's key
//!   disappears after at most one TTL. The live keys say how many instances
//!   share the partitions: each aims at `ceil(partitions / live)`.
//! - Partition `n` is owned through key `p.<n>` in the leases bucket, whose
//!   `max_age` is also the TTL. An instance claims a free partition with
//!   `create` (which exactly one claimant wins) and keeps it with `update` on
//!   the revision it holds, several times per TTL. An `update` that fails on
//!   the revision means another instance owns it now: the partition stops at
//!   once ([`Stop::Abort`]). When an instance dies its keys expire and the
//!   others claim its partitions, restoring each from its snapshot.
//! - An instance holding more than its share releases the excess: the
//!   partition snapshots, lets its running revocations finish, and the lease
//!   is deleted so that another instance can claim it at once.
//! - An instance acts for a partition (calls hooks, writes snapshots) only
//!   until three quarters of a TTL after the start of its last successful
//!   renewal, which is before the server can let the lease expire, so two
//!   instances never both act for a partition unless an instance is paused
//!   longer than its own check (see docs/cluster.md, "Limits").

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::names::Names;
use super::partition::{self, Shared, Stop};
use super::route::partition_of;

/// What each instance should own with `live` instances sharing `partitions`.
pub fn share(partitions: u32, live: usize) -> usize {
    (partitions as usize).div_ceil(live.max(1))
}

/// What to change this round.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Free partitions to try to claim.
    pub claim: Vec<u32>,
    /// Owned partitions to hand over.
    pub release: Vec<u32>,
}

/// Decides what instance `me` claims or releases, given the live instance
/// count, the partitions it runs (not counting those being released) and
/// every partition currently leased by anyone. Claims start at a point that
/// depends on the instance's name, so instances starting together mostly try
/// different partitions.
pub fn plan(
    me: &str,
    partitions: u32,
    live: usize,
    mine: &BTreeSet<u32>,
    leased: &BTreeSet<u32>,
) -> Plan {
    let want = share(partitions, live);
    if mine.len() > want {
        return Plan {
            claim: Vec::new(),
            release: mine.iter().rev().take(mine.len() - want).copied().collect(),
        };
    }
    let start = partition_of(me, partitions);
    let claim = (0..partitions)
        .map(|i| (start + i) % partitions)
        .filter(|p| !leased.contains(p))
        .take(want - mine.len())
        .collect();
    Plan {
        claim,
        release: Vec::new(),
    }
}

struct Owned {
    revision: u64,
    valid: watch::Sender<Instant>,
    stop: watch::Sender<Stop>,
    task: JoinHandle<Result<(), String>>,
    releasing: bool,
}

/// The coordinator task of an instance.
pub struct Coordinator {
    shared: Arc<Shared>,
    owned: BTreeMap<u32, Owned>,
    member_revision: u64,
    /// Partitions whose worker failed, not claimed again before this instant.
    backoff: BTreeMap<u32, Instant>,
}

fn ttl_part(ttl: Duration, num: u32, den: u32) -> Duration {
    ttl * num / den
}

impl Coordinator {
    /// Joins the members bucket. Fails when a live instance already uses this
    /// instance's name (after waiting out a crashed predecessor's heartbeat).
    pub async fn join(shared: Arc<Shared>) -> Result<Coordinator, String> {
        let c = &shared.cluster;
        let value = heartbeat_value(c, 0);
        let deadline = Instant::now() + c.lease_ttl * 2 + Duration::from_secs(1);
        let member_revision = loop {
            match shared
                .jet
                .members
                .create(&c.instance, value.clone().into())
                .await
            {
                Ok(rev) => break rev,
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    if Instant::now() > deadline {
                        return Err(format!(
                            "another live instance is named {:?}; give each instance a unique [cluster] instance",
                            c.instance
                        ));
                    }
                    tracing::info!(instance = %c.instance, "waiting for a previous heartbeat of this instance name to expire");
                    tokio::time::sleep(ttl_part(c.lease_ttl, 1, 4)).await;
                }
                Err(e) => return Err(format!("members bucket: {e}")),
            }
        };
        Ok(Coordinator {
            shared,
            owned: BTreeMap::new(),
            member_revision,
            backoff: BTreeMap::new(),
        })
    }

    /// Runs until `stop`, then hands every partition over and leaves.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), String> {
        let ttl = self.shared.cluster.lease_ttl;
        let mut tick = tokio::time::interval(ttl_part(ttl, 1, 4));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result = loop {
            tokio::select! {
                _ = async { let _ = stop.wait_for(|s| *s).await; } => break Ok(()),
                _ = tick.tick() => {}
            }
            if let Err(e) = self.round().await {
                break Err(e);
            }
        };
        self.leave().await;
        result
    }

    async fn round(&mut self) -> Result<(), String> {
        self.heartbeat().await?;
        self.renew().await;
        self.reap().await;
        let (live, leased) = match self.view().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read leases; trying again next round");
                return Ok(());
            }
        };
        let c = &self.shared.cluster;
        let mine: BTreeSet<u32> = self
            .owned
            .iter()
            .filter(|(_, o)| !o.releasing)
            .map(|(p, _)| *p)
            .collect();
        let now = Instant::now();
        self.backoff.retain(|_, until| *until > now);
        let mut blocked = leased.clone();
        blocked.extend(self.backoff.keys());
        let plan = plan(&c.instance, c.partitions, live, &mine, &blocked);
        for p in plan.release {
            if let Some(o) = self.owned.get_mut(&p) {
                tracing::info!(partition = p, live, "releasing a partition to rebalance");
                o.releasing = true;
                let _ = o.stop.send(Stop::Release);
            }
        }
        for p in plan.claim {
            self.claim(p).await;
        }
        Ok(())
    }

    async fn heartbeat(&mut self) -> Result<(), String> {
        let c = &self.shared.cluster;
        let value = heartbeat_value(c, self.owned.len());
        match self
            .shared
            .jet
            .members
            .update(&c.instance, value.clone().into(), self.member_revision)
            .await
        {
            Ok(rev) => self.member_revision = rev,
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                // Expired (this instance stalled longer than a TTL) or taken.
                match self
                    .shared
                    .jet
                    .members
                    .create(&c.instance, value.into())
                    .await
                {
                    Ok(rev) => self.member_revision = rev,
                    Err(_) => {
                        return Err(format!(
                            "instance name {:?} was taken by another instance",
                            c.instance
                        ));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
        Ok(())
    }

    /// Renews every lease; a lease another instance took, or one not renewed
    /// in time, stops its partition at once.
    async fn renew(&mut self) {
        let ttl = self.shared.cluster.lease_ttl;
        let me = self.shared.cluster.instance.clone();
        let mut lost = Vec::new();
        for (p, o) in &mut self.owned {
            let sent = Instant::now();
            match self
                .shared
                .jet
                .leases
                .update(Names::lease_key(*p), me.clone().into(), o.revision)
                .await
            {
                Ok(rev) => {
                    o.revision = rev;
                    let _ = o.valid.send(sent + ttl_part(ttl, 3, 4));
                }
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    tracing::warn!(partition = p, "partition lease taken by another instance");
                    lost.push(*p);
                }
                Err(e) => {
                    if *o.valid.borrow() <= Instant::now() {
                        tracing::warn!(partition = p, error = %e, "partition lease not renewed in time");
                        lost.push(*p);
                    } else {
                        tracing::warn!(partition = p, error = %e, "lease renewal failed; retrying");
                    }
                }
            }
        }
        for p in lost {
            if let Some(o) = self.owned.remove(&p) {
                let _ = o.valid.send(Instant::now());
                let _ = o.stop.send(Stop::Abort);
            }
        }
    }

    /// Handles partition workers that ended: a released one gives its lease
    /// back; a failed one too, and is not claimed again for a while.
    async fn reap(&mut self) {
        let done: Vec<u32> = self
            .owned
            .iter()
            .filter(|(_, o)| o.task.is_finished())
            .map(|(p, _)| *p)
            .collect();
        for p in done {
            let o = self.owned.remove(&p).expect("listed");
            let result = o
                .task
                .await
                .unwrap_or_else(|e| Err(format!("partition task panicked: {e}")));
            if let Err(e) = &result {
                tracing::error!(partition = p, error = %e, "partition worker failed; releasing it");
                self.backoff
                    .insert(p, Instant::now() + self.shared.cluster.lease_ttl * 2);
            }
            let _ = o.valid.send(Instant::now());
            if let Err(e) = self
                .shared
                .jet
                .leases
                .delete_expect_revision(Names::lease_key(p), Some(o.revision))
                .await
            {
                tracing::warn!(partition = p, error = %e, "cannot delete the lease; it expires by itself");
            }
        }
    }

    async fn view(&self) -> Result<(usize, BTreeSet<u32>), String> {
        let jet = &self.shared.jet;
        let live = super::nats::live_entries(&jet.members).await?.len();
        let leased = super::nats::live_entries(&jet.leases)
            .await?
            .iter()
            .filter_map(|e| e.key.strip_prefix("p.")?.parse().ok())
            .collect();
        Ok((live.max(1), leased))
    }

    async fn claim(&mut self, p: u32) {
        let me = self.shared.cluster.instance.clone();
        let sent = Instant::now();
        match self
            .shared
            .jet
            .leases
            .create(Names::lease_key(p), me.into())
            .await
        {
            Ok(revision) => {
                let ttl = self.shared.cluster.lease_ttl;
                let (valid, valid_rx) = watch::channel(sent + ttl_part(ttl, 3, 4));
                let (stop, stop_rx) = watch::channel(Stop::Run);
                tracing::info!(partition = p, "claimed partition");
                let task = tokio::spawn(partition::run(
                    Arc::clone(&self.shared),
                    p,
                    valid_rx,
                    stop_rx,
                ));
                self.owned.insert(
                    p,
                    Owned {
                        revision,
                        valid,
                        stop,
                        task,
                        releasing: false,
                    },
                );
            }
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => tracing::warn!(partition = p, error = %e, "cannot claim partition"),
        }
    }

    /// Hands every partition over (snapshot, running revocations finish, lease
    /// deleted), renewing the leases meanwhile, then leaves the members bucket.
    async fn leave(&mut self) {
        for o in self.owned.values_mut() {
            o.releasing = true;
            let _ = o.stop.send(Stop::Release);
        }
        let ttl = self.shared.cluster.lease_ttl;
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.owned.is_empty() && Instant::now() < deadline {
            self.renew().await;
            self.reap().await;
            tokio::time::sleep(ttl_part(ttl, 1, 8).min(Duration::from_millis(100))).await;
        }
        for (p, o) in std::mem::take(&mut self.owned) {
            tracing::warn!(
                partition = p,
                "partition still busy at exit; its lease expires by itself"
            );
            let _ = o.stop.send(Stop::Abort);
        }
        let _ = self
            .shared
            .jet
            .members
            .delete(&self.shared.cluster.instance)
            .await;
    }
}

fn heartbeat_value(c: &crate::config::cluster::ClusterConfig, owned: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "instance": c.instance,
        "pid": std::process::id(),
        "partitions_owned": owned,
        "at_ms": chrono::Utc::now().timestamp_millis(),
    }))
    .expect("heartbeat serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u32]) -> BTreeSet<u32> {
        v.iter().copied().collect()
    }

    #[test]
    fn each_instance_aims_at_an_even_share() {
        assert_eq!(share(12, 1), 12);
        assert_eq!(share(12, 3), 4);
        assert_eq!(share(12, 5), 3);
        assert_eq!(share(12, 0), 12);
    }

    #[test]
    fn a_lone_instance_claims_every_free_partition() {
        let p = plan("a", 4, 1, &set(&[]), &set(&[2]));
        assert_eq!(p.release, Vec::<u32>::new());
        assert_eq!(set(&p.claim), set(&[0, 1, 3]));
    }

    #[test]
    fn an_instance_above_its_share_releases_the_excess() {
        let p = plan("a", 12, 3, &set(&(0..12).collect::<Vec<_>>()), &set(&[]));
        assert_eq!(p.release, vec![11, 10, 9, 8, 7, 6, 5, 4]);
        assert!(p.claim.is_empty());
    }

    #[test]
    fn three_instances_converge_on_four_partitions_each() {
        // Simulated rounds: every instance plans against the same lease view.
        let names = ["rg-1", "rg-2", "rg-3"];
        let mut owned: Vec<BTreeSet<u32>> = vec![(0..12).collect(), set(&[]), set(&[])];
        for _ in 0..4 {
            for i in 0..3 {
                let leased: BTreeSet<u32> = owned.iter().flatten().copied().collect();
                let p = plan(names[i], 12, 3, &owned[i], &leased);
                for r in p.release {
                    owned[i].remove(&r);
                }
                owned[i].extend(p.claim);
            }
        }
        assert!(owned.iter().all(|o| o.len() == 4), "{owned:?}");
        let all: BTreeSet<u32> = owned.iter().flatten().copied().collect();
        assert_eq!(all.len(), 12);
    }
}
