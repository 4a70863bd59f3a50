//! Reach baselines: what each engineer normally uses, and how much new reach a
//! normal window of their work brings.
//!
//! Owned by the detection engine. Learned online from `access` events (and
//! offline by `reachguard train`, which replays history through the same code),
//! persisted in the checkpoint. Names are interned: principals and resources
//! are `u32` ids, and a baseline is a sorted vector of `(resource, count)`, so
//! memory grows with what engineers actually touch, not with the org's size
//! squared.
//!
//! The baselines and the interned names are [`super::baseline`]'s, shared
//! with the peer groups ([`super::peers`]) that this model holds and refits.

use std::collections::VecDeque;

// Fx: fast for the short keys of the hot path; the caps in `[limits]` bound
// what anyone can insert, so hash flooding buys an attacker nothing.
use rustc_hash::FxHashMap as HashMap;

use serde::{Deserialize, Serialize};

use super::baseline::{Baseline, Baselines, Interner, Learned, Novel, id_map};
use super::peers::PeerModel;
use crate::event::{Key, Ts};

/// Every engineer's baseline and recent novel reach.
///
/// A checkpoint is read through [`ReachFile`], which refuses ids beyond the
/// names it lists: they would index past them later, and a baseline id
/// sizes the vector of baselines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ReachFile")]
pub struct Reach {
    /// Principal names.
    pub principals: Interner,
    /// Resource names.
    pub resources: Interner,
    /// Baselines by principal id.
    pub baselines: Baselines,
    /// Resource id -> how many principals have it in their baseline.
    #[serde(with = "id_map")]
    pub users_of: HashMap<u32, u32>,
    /// Principal id -> novel accesses within the long window, oldest first.
    #[serde(with = "id_map")]
    pub recent: HashMap<u32, VecDeque<Novel>>,
    /// Principal id -> event time until which a reach finding is not repeated.
    #[serde(with = "id_map")]
    pub quiet_until: HashMap<u32, Ts>,
    /// Event time of the first access seen (start of warm-up).
    pub first_seen: Option<Ts>,
    /// Set by `train`: baselines were learned from history up to this time.
    pub trained_until: Option<Ts>,
    /// Peer groups.
    pub peers: PeerModel,
    /// What the caps have forgotten so far.
    #[serde(default)]
    pub evicted: Evicted,
    /// Accesses learned in all (paces peer-group refits).
    #[serde(default)]
    pub accesses: u64,
    /// The ids of names a [`Keyer`] has keyed.
    #[serde(skip)]
    keys: Keys,
}

/// Names resolved to ids ahead of the model, on the thread that decodes the
/// events: each access gets a [`Key`], and the model finds its own ids for
/// a key's in a small dense table ([`Reach::ids`]) instead of hashing both
/// names and probing its name tables, which outgrow the cache in a large
/// organisation. The decoding thread has time to spare where the model has
/// least: in a large organisation.
///
/// A keyer holds every name it has keyed, up to [`KEYER_NAMES`] of each
/// kind; then it starts an empty table, so a flood of unique names cannot
/// grow it without bound (the model then misses its cache once per name,
/// as it would without a keyer).
#[derive(Debug, Default)]
pub struct Keyer {
    principals: Interner,
    resources: Interner,
    /// 0 until the first key.
    table: u32,
}

/// Names of each kind a [`Keyer`] table holds before it starts another.
pub const KEYER_NAMES: usize = 1 << 19;

/// Table numbers, unique in the process, so that a model fed by two keyers
/// in turn never takes one's ids for the other's (0: no table).
static TABLES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

impl Keyer {
    /// The key of an access by `principal` to `resource`.
    pub fn key(&mut self, principal: &str, resource: &str) -> Key {
        if self.table == 0
            || self.principals.len() >= KEYER_NAMES
            || self.resources.len() >= KEYER_NAMES
        {
            self.principals = Interner::default();
            self.resources = Interner::default();
            self.table = TABLES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Key {
            table: self.table,
            principal: self.principals.intern(principal),
            resource: self.resources.intern(resource),
        }
    }
}

/// The model's ids for one [`Keyer`] table's, [`UNKNOWN`] where not looked
/// up yet: a cache of the interners, emptied whenever their ids change. And
/// the table number under which the model hands out its own ids as keys
/// ([`Reach::resolve`]), a new one whenever they change.
#[derive(Debug)]
struct Keys {
    own: u32,
    table: u32,
    principals: Vec<u32>,
    resources: Vec<u32>,
}

impl Default for Keys {
    fn default() -> Keys {
        Keys {
            own: TABLES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            table: 0,
            principals: Vec::new(),
            resources: Vec::new(),
        }
    }
}

impl Clone for Keys {
    /// An empty cache with a table of its own: a copy of the model goes its
    /// own way, and must not take the original's ids for its own.
    fn clone(&self) -> Keys {
        Keys::default()
    }
}

const UNKNOWN: u32 = u32::MAX;

impl PartialEq for Keys {
    /// Always: what is cached follows from the names.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// `ids[at]`, if looked up.
fn known(ids: &[u32], at: u32) -> Option<u32> {
    ids.get(at as usize).copied().filter(|&id| id != UNKNOWN)
}

/// `ids[at]`, from `id` the first time.
fn cached(ids: &mut Vec<u32>, at: u32, id: impl FnOnce() -> u32) -> u32 {
    known(ids, at).unwrap_or_else(|| {
        let at = at as usize;
        if ids.len() <= at {
            ids.resize(at + 1, UNKNOWN);
        }
        ids[at] = id();
        ids[at]
    })
}

/// Counts of what the memory caps made the model forget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evicted {
    /// Principals forgotten (least recently active first).
    pub principals: u64,
    /// Resources dropped from a full baseline (least used first).
    pub resources: u64,
}

/// [`Reach`] as a checkpoint holds it, before its ids are checked.
#[derive(Deserialize)]
struct ReachFile {
    principals: Interner,
    resources: Interner,
    baselines: Vec<(u32, Baseline)>,
    #[serde(with = "id_map")]
    users_of: HashMap<u32, u32>,
    #[serde(with = "id_map")]
    recent: HashMap<u32, VecDeque<Novel>>,
    #[serde(with = "id_map")]
    quiet_until: HashMap<u32, Ts>,
    first_seen: Option<Ts>,
    trained_until: Option<Ts>,
    peers: PeerModel,
    #[serde(default)]
    evicted: Evicted,
    #[serde(default)]
    accesses: u64,
}

/// `Ok` if `id` is one of the `n` listed names of `kind`; else says that
/// `what` names it.
fn listed(what: &str, kind: &str, id: u32, n: usize) -> Result<(), String> {
    if (id as usize) < n {
        Ok(())
    } else {
        Err(format!(
            "{what} names {kind} id {id}, but only {n} {kind}s are listed"
        ))
    }
}

impl TryFrom<ReachFile> for Reach {
    type Error = String;

    fn try_from(f: ReachFile) -> Result<Reach, String> {
        let (np, nr) = (f.principals.len(), f.resources.len());
        let principal = |what: &str, id: u32| listed(what, "principal", id, np);
        let resource = |what: &str, id: u32| listed(what, "resource", id, nr);
        let mut baselines = Baselines::default();
        for (p, b) in f.baselines {
            principal("a baseline", p)?;
            b.resources
                .iter()
                .try_for_each(|(r, _)| resource("a baseline", r))?;
            if baselines.contains(p) {
                return Err(format!("principal id {p} has two baselines"));
            }
            *baselines.get_or_default(p) = b;
        }
        f.users_of
            .keys()
            .try_for_each(|&r| resource("users_of", r))?;
        for (&p, q) in &f.recent {
            principal("recent", p)?;
            q.iter().try_for_each(|n| resource("recent", n.resource))?;
        }
        f.quiet_until
            .keys()
            .try_for_each(|&p| principal("quiet_until", p))?;
        let peers = &f.peers;
        peers
            .assignment
            .keys()
            .try_for_each(|&p| principal("a peer assignment", p))?;
        peers
            .placed
            .keys()
            .try_for_each(|&p| principal("a peer placement", p))?;
        for c in &peers.clusters {
            c.members
                .iter()
                .try_for_each(|&p| principal("a peer group", p))?;
            c.usage
                .keys()
                .try_for_each(|&r| resource("a peer group", r))?;
        }
        Ok(Reach {
            principals: f.principals,
            resources: f.resources,
            baselines,
            users_of: f.users_of,
            recent: f.recent,
            quiet_until: f.quiet_until,
            first_seen: f.first_seen,
            trained_until: f.trained_until,
            peers: f.peers,
            evicted: f.evicted,
            accesses: f.accesses,
            keys: Keys::default(),
        })
    }
}

fn release(users_of: &mut HashMap<u32, u32>, resource: u32) {
    if let Some(n) = users_of.get_mut(&resource) {
        *n -= 1;
        if *n == 0 {
            users_of.remove(&resource);
        }
    }
}

/// A new interner holding only `live` ids, and the old -> new id map.
fn remap(old: &Interner, live: &std::collections::BTreeSet<u32>) -> (Interner, HashMap<u32, u32>) {
    let mut fresh = Interner::default();
    let map = live
        .iter()
        .map(|&id| (id, fresh.intern(old.name(id))))
        .collect();
    (fresh, map)
}

impl Reach {
    /// Places an engineer who joined after the last fit at their nearest
    /// centroid, if not placed yet or if their accesses have doubled since.
    pub fn place_newcomer(&mut self, principal: u32) {
        if self.peers.assignment.contains_key(&principal) {
            return;
        }
        let Some(b) = self.baselines.get(principal) else {
            return;
        };
        let due = self
            .peers
            .placed
            .get(&principal)
            .is_none_or(|&(_, at)| b.events >= at.saturating_mul(2));
        if due && let Some(c) = self.peers.nearest(b, &self.resources) {
            self.peers.placed.insert(principal, (c, b.events));
        }
    }

    /// How many principals have a baseline.
    pub fn baselined(&self) -> usize {
        self.baselines.len()
    }

    /// Fraction of baselined principals that used `resource`.
    pub fn org_fraction(&self, resource: u32) -> f64 {
        let n = self.baselines.len();
        if n == 0 {
            return 0.0;
        }
        f64::from(self.users_of.get(&resource).copied().unwrap_or(0)) / n as f64
    }

    /// Records an access in `principal`'s baseline; returns whether it was new.
    pub fn learn(&mut self, principal: u32, resource: u32, ts: Ts) -> bool {
        self.learn_capped(principal, resource, ts, usize::MAX)
    }

    /// [`Reach::learn`] keeping at most `max_resources` resources in the
    /// baseline: a new one then replaces the least used (an engineer touching
    /// thousands of distinct resources is anomalous already; what is dropped
    /// is what they barely used).
    pub fn learn_capped(
        &mut self,
        principal: u32,
        resource: u32,
        ts: Ts,
        max_resources: usize,
    ) -> bool {
        self.count_access(ts);
        self.learn_slotted(principal, resource, ts, max_resources, None)
            .0
            .new
    }

    /// Counts an access at `ts` (the start of warm-up, the refit pace).
    pub(super) fn count_access(&mut self, ts: Ts) {
        self.first_seen = Some(self.first_seen.map_or(ts, |f| f.min(ts)));
        self.accesses += 1;
    }

    /// [`Reach::learn_capped`], for a caller that counted the access already
    /// ([`Reach::count_access`]) and looked the resource up in the principal's
    /// baseline (`slot`: [`Baseline::slot`], `None` if it has no baseline
    /// yet). Returns the baseline too.
    pub(super) fn learn_slotted(
        &mut self,
        principal: u32,
        resource: u32,
        ts: Ts,
        max_resources: usize,
        slot: Option<Result<usize, usize>>,
    ) -> (Learned, &mut Baseline) {
        let b = self.baselines.get_or_default(principal);
        let mut slot = slot.unwrap_or_else(|| b.slot(resource));
        let mut out = Learned::default();
        if b.resources.len() >= max_resources.max(1) && slot.is_err() {
            let dropped = b
                .resources
                .least_used()
                .expect("a full baseline is not empty");
            b.resources.remove(dropped);
            self.evicted.resources += 1;
            release(&mut self.users_of, dropped);
            out.dropped = Some(dropped);
            slot = b.slot(resource);
        }
        out.new = b.record_at(resource, slot, ts);
        if out.new {
            *self.users_of.entry(resource).or_default() += 1;
        }
        (out, b)
    }

    /// Keeps the `keep` principals with the most recent activity (history
    /// counting as recency) and forgets the rest (baseline, windows, peer
    /// assignment), then compacts the interned names.
    /// Returns how many were forgotten.
    pub fn evict_principals(&mut self, keep: usize) -> usize {
        if self.baselines.len() <= keep {
            return 0;
        }
        // Recency, plus an hour of credit per access up to a thousand: a flood of
        // fresh one-access names is forgotten before any engineer with history.
        let mut by_age: Vec<(i64, u32)> = self
            .baselines
            .iter()
            .map(|(p, b)| {
                (
                    b.last
                        .0
                        .saturating_add(b.events.min(1000) as i64 * 3_600_000),
                    p,
                )
            })
            .collect();
        by_age.sort_unstable();
        let n = by_age.len() - keep;
        for &(_, p) in &by_age[..n] {
            if let Some(b) = self.baselines.remove(p) {
                for (r, _) in b.resources.iter() {
                    release(&mut self.users_of, r);
                }
            }
            self.recent.remove(&p);
            self.quiet_until.remove(&p);
            self.peers.assignment.remove(&p);
            self.peers.placed.remove(&p);
        }
        for cl in &mut self.peers.clusters {
            cl.members.retain(|&m| self.baselines.contains(m));
        }
        self.evicted.principals += n as u64;
        self.compact();
        n
    }

    /// Rebuilds the interners with only the names still referenced, remapping
    /// every id, when at least half the names are dead: a flood of unique
    /// names must not grow memory after its principals are evicted.
    pub fn compact(&mut self) {
        let live_p: std::collections::BTreeSet<u32> = self
            .baselines
            .ids()
            .chain(self.recent.keys().copied())
            .chain(self.quiet_until.keys().copied())
            .chain(self.peers.assignment.keys().copied())
            .chain(
                self.peers
                    .clusters
                    .iter()
                    .flat_map(|c| c.members.iter().copied()),
            )
            .collect();
        let live_r: std::collections::BTreeSet<u32> = self
            .users_of
            .keys()
            .copied()
            .chain(self.recent.values().flatten().map(|n| n.resource))
            .chain(
                self.peers
                    .clusters
                    .iter()
                    .flat_map(|c| c.usage.keys().copied()),
            )
            .collect();
        if live_p.len() * 2 > self.principals.len() && live_r.len() * 2 > self.resources.len() {
            return;
        }
        let (principals, pmap) = remap(&self.principals, &live_p);
        let (resources, rmap) = remap(&self.resources, &live_r);
        let p = |id: &u32| pmap[id];
        let r = |id: &u32| rmap[id];
        self.baselines = std::mem::take(&mut self.baselines)
            .by_id
            .into_iter()
            .zip(0u32..)
            .filter_map(|(b, k)| Some((k, b?)))
            .map(|(k, mut b)| {
                b.resources.remap(|id| r(&id));
                (p(&k), b)
            })
            .collect();
        self.users_of = std::mem::take(&mut self.users_of)
            .into_iter()
            .map(|(k, v)| (r(&k), v))
            .collect();
        self.recent = std::mem::take(&mut self.recent)
            .into_iter()
            .map(|(k, mut q)| {
                for n in &mut q {
                    n.resource = r(&n.resource);
                }
                (p(&k), q)
            })
            .collect();
        self.quiet_until = std::mem::take(&mut self.quiet_until)
            .into_iter()
            .map(|(k, v)| (p(&k), v))
            .collect();
        self.peers.assignment = std::mem::take(&mut self.peers.assignment)
            .into_iter()
            .map(|(k, v)| (p(&k), v))
            .collect();
        self.peers.placed = std::mem::take(&mut self.peers.placed)
            .into_iter()
            .map(|(k, v)| (p(&k), v))
            .collect();
        for cl in &mut self.peers.clusters {
            for m in &mut cl.members {
                *m = p(m);
            }
            cl.usage = std::mem::take(&mut cl.usage)
                .into_iter()
                .map(|(k, v)| (r(&k), v))
                .collect();
        }
        self.principals = principals;
        self.resources = resources;
        self.keys = Keys::default();
    }

    /// The ids of an access's principal and resource, interning them; by
    /// its key when it has one.
    #[inline]
    pub fn ids(&mut self, principal: &str, resource: &str, key: Option<Key>) -> (u32, u32) {
        let Some(k) = key else {
            return (
                self.principals.intern(principal),
                self.resources.intern(resource),
            );
        };
        if k.table == self.keys.own {
            debug_assert_eq!(self.principals.name(k.principal), principal);
            debug_assert_eq!(self.resources.name(k.resource), resource);
            return (k.principal, k.resource);
        }
        if k.table != self.keys.table {
            self.keys.table = k.table;
            self.keys.principals.clear();
            self.keys.resources.clear();
        }
        let p = cached(&mut self.keys.principals, k.principal, || {
            self.principals.intern(principal)
        });
        let r = cached(&mut self.keys.resources, k.resource, || {
            self.resources.intern(resource)
        });
        debug_assert_eq!(self.principals.name(p), principal);
        debug_assert_eq!(self.resources.name(r), resource);
        (p, r)
    }

    /// Looks an access up ahead of the model: its key made of the model's
    /// own ids for both names when it knows them (by `key` or by name), so
    /// that [`Reach::ids`] takes them as they are; else `key`.
    ///
    /// Called a few events ahead of the model, so that the cache misses of
    /// the lookups overlap instead of following one another. The ids stay
    /// good until the model renumbers its names ([`Reach::compact`]), which
    /// retires the keys made before.
    #[inline]
    pub fn resolve(&self, principal: &str, resource: &str, key: Option<Key>) -> Option<Key> {
        let (p, r) = match key {
            Some(k) if k.table == self.keys.own => return key,
            Some(k) if k.table == self.keys.table => (
                known(&self.keys.principals, k.principal),
                known(&self.keys.resources, k.resource),
            ),
            Some(_) => (None, None),
            None => (self.principals.get(principal), self.resources.get(resource)),
        };
        let own = p.zip(r).map(|(principal, resource)| Key {
            table: self.keys.own,
            principal,
            resource,
        });
        own.or(key)
    }

    /// Reads what the model reads first for an access with a key from
    /// [`Reach::resolve`], its baseline and where its resource sits there,
    /// and returns what it read (to be discarded); nothing for another key.
    /// Called ahead of the model, like `resolve`.
    #[inline]
    pub fn warm(&self, key: Key) -> u32 {
        if key.table != self.keys.own {
            return 0;
        }
        self.baselines.get(key.principal).map_or(0, |b| {
            // Both of the baseline's cache lines: the windows are in the second.
            b.resources.peek(key.resource) ^ b.windows.n[1]
        })
    }

    /// Adds a novel access to the sliding window and drops what fell out of it.
    pub fn push_novel(&mut self, principal: u32, n: Novel, keep_ms: i64) {
        let q = self.recent.entry(principal).or_default();
        q.push_back(n);
        while q
            .front()
            .is_some_and(|x| x.ts.0 < n.ts.0.saturating_sub(keep_ms))
        {
            q.pop_front();
        }
    }

    /// Distinct novel resources of `principal` in `[until - len, until]` and their summed score.
    pub fn window(&self, principal: u32, until: Ts, len_ms: i64) -> Vec<Novel> {
        let mut seen = rustc_hash::FxHashSet::default();
        let mut out: Vec<Novel> = self
            .recent
            .get(&principal)
            .into_iter()
            .flatten()
            .filter(|n| n.ts.0 >= until.0.saturating_sub(len_ms) && n.ts <= until)
            .filter(|n| seen.insert(n.resource))
            .copied()
            .collect();
        out.sort_by_key(|n| n.ts);
        out
    }

    /// Drops sliding-window entries older than `horizon` for every principal
    /// (bounded memory for engineers who went quiet).
    pub fn expire(&mut self, horizon: Ts) {
        self.recent.retain(|_, q| {
            while q.front().is_some_and(|x| x.ts < horizon) {
                q.pop_front();
            }
            !q.is_empty()
        });
        self.quiet_until.retain(|_, t| *t > horizon);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::peers::cluster_count;

    /// A reach with baselines for principals 0 and 2 (1 was forgotten).
    fn reach_with_a_hole() -> Reach {
        let mut r = Reach::default();
        let ids: Vec<u32> = ["a", "b", "c"].map(|n| r.principals.intern(n)).into();
        let wiki = r.resources.intern("wiki");
        let db = r.resources.intern("db");
        for &p in &ids {
            r.learn(p, wiki, Ts(1));
        }
        r.learn(ids[2], db, Ts(2));
        r.baselines.remove(ids[1]).unwrap();
        r
    }

    #[test]
    fn baselines_are_checkpointed_as_sorted_pairs_and_read_back() {
        let r = reach_with_a_hole();
        assert_eq!(r.baselines.len(), 2);
        assert_eq!(r.baselines.ids().collect::<Vec<_>>(), vec![0, 2]);
        let json = serde_json::to_value(&r).unwrap();
        let pairs = json["baselines"].as_array().unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(
            (pairs[0][0].as_u64(), pairs[1][0].as_u64()),
            (Some(0), Some(2))
        );
        assert_eq!(
            pairs[1][1]["resources"],
            serde_json::json!([[0, 1], [1, 1]])
        );
        let back: Reach = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
        assert!(back.baselines.get(1).is_none());
        assert_eq!(back.baselines[2].count(1), 1);
    }

    #[test]
    fn a_checkpoint_naming_ids_beyond_its_names_is_refused() {
        let json = serde_json::to_value(reach_with_a_hole()).unwrap();
        let refused = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut j = json.clone();
            edit(&mut j);
            serde_json::from_value::<Reach>(j).unwrap_err().to_string()
        };
        // Would size the vector of baselines at four billion entries.
        let e = refused(&|j| j["baselines"][1][0] = 4_000_000_000u32.into());
        assert!(
            e.contains(
                "a baseline names principal id 4000000000, but only 3 principals are listed"
            ),
            "{e}"
        );
        let e = refused(&|j| j["baselines"][1][1]["resources"][1][0] = 7.into());
        assert!(
            e.contains("a baseline names resource id 7, but only 2"),
            "{e}"
        );
        let e = refused(&|j| j["baselines"][1][0] = 0.into());
        assert!(e.contains("principal id 0 has two baselines"), "{e}");
        let e = refused(&|j| j["quiet_until"] = serde_json::json!([[3, "2026-01-01T00:00:00Z"]]));
        assert!(e.contains("quiet_until names principal id 3"), "{e}");
        let e = refused(&|j| j["users_of"] = serde_json::json!([[2, 1]]));
        assert!(e.contains("users_of names resource id 2"), "{e}");
    }

    proptest::proptest! {
        /// Keyed accesses get the ids the names have, through the model
        /// forgetting principals and renumbering the rest, a keyer starting
        /// a new table, and unkeyed accesses in between; and so do accesses
        /// looked up a few steps ahead of the model, by name or by key.
        #[test]
        fn keyed_names_resolve_to_their_ids(
            steps in proptest::collection::vec((0..40u32, 0..30u32, 0..6u8), 0..400)
        ) {
            const LAG: usize = 3;
            let mut r = Reach::default();
            let mut keyer = Keyer::default();
            let names: Vec<(String, String)> = steps
                .iter()
                .map(|&(p, res, _)| (format!("eng-{p}"), format!("res/{res}")))
                .collect();
            let mut keys: Vec<Option<Key>> = steps
                .iter()
                .zip(&names)
                .map(|(&(_, _, how), (p, res))| match how % 3 {
                    0 => None,
                    1 => Some(Keyer::default().key(p, res)),
                    _ => Some(keyer.key(p, res)),
                })
                .collect();
            let ahead = |i: usize| steps[i].2 >= 3;
            for i in (0..LAG.min(steps.len())).filter(|&i| ahead(i)) {
                keys[i] = r.resolve(&names[i].0, &names[i].1, keys[i]);
            }
            for (i, (p, res)) in names.iter().enumerate() {
                if i + LAG < steps.len() && ahead(i + LAG) {
                    let (p, res) = &names[i + LAG];
                    keys[i + LAG] = r.resolve(p, res, keys[i + LAG]);
                }
                let (pid, rid) = r.ids(p, res, keys[i]);
                proptest::prop_assert_eq!(r.principals.name(pid), &p[..]);
                proptest::prop_assert_eq!(r.resources.name(rid), &res[..]);
                r.learn(pid, rid, Ts(i as i64));
                if i % 50 == 49 {
                    // Keeps few enough that the names are compacted.
                    r.evict_principals(5);
                }
            }
        }
    }

    #[test]
    fn looking_ahead_resolves_known_names_and_reads_where_the_resource_sits() {
        let mut r = Reach::default();
        let mut keyer = Keyer::default();
        let key = keyer.key("alice", "db/a");
        assert_eq!(r.resolve("alice", "db/a", None), None, "unknown names");
        assert_eq!(
            r.resolve("alice", "db/a", Some(key)),
            Some(key),
            "a key the model has not looked up stays as it is"
        );
        assert_eq!(r.warm(key), 0, "not the model's own ids");
        let (alice, a) = r.ids("alice", "db/a", Some(key));
        let own = r.resolve("alice", "db/a", Some(key)).unwrap();
        assert_ne!(own.table, key.table, "the model's own ids");
        assert_eq!((own.principal, own.resource), (alice, a));
        assert_eq!(r.resolve("alice", "db/a", None), Some(own), "by name");
        assert_eq!(r.resolve("alice", "db/a", Some(own)), Some(own));
        assert_eq!(r.ids("alice", "db/a", Some(own)), (alice, a));
        assert_eq!(r.warm(own), 0, "no baseline yet");
        r.learn(alice, a, Ts(1));
        // The id is its own, so reading 0 would mean reading nothing.
        let (_, b) = r.ids("bob", "db/b", Some(keyer.key("bob", "db/b")));
        r.learn(alice, b, Ts(2));
        let by_key = r.resolve("alice", "db/b", Some(keyer.key("alice", "db/b")));
        assert_eq!(by_key.map(|k| r.warm(k)), Some(b));
        assert_eq!(r.resolve("alice", "db/b", None), by_key);
        assert_eq!(r.warm(own), a);
        let elsewhere = Keyer::default().key("alice", "db/a");
        assert_eq!(
            r.resolve("alice", "db/a", Some(elsewhere)),
            Some(elsewhere),
            "a table the model has not seen"
        );
        let carol = keyer.key("carol", "db/a");
        assert_eq!(
            r.resolve("carol", "db/a", Some(carol)),
            Some(carol),
            "a principal the model has not looked up"
        );
    }

    #[test]
    fn a_model_takes_no_other_models_ids_for_its_own() {
        let mut r = Reach::default();
        r.ids("alice", "db/a", None);
        let (bob, b) = r.ids("bob", "db/b", None);
        let mut copy = r.clone();
        let mut other = Reach::default();
        other.ids("bob", "db/b", None);
        let own = r.resolve("bob", "db/b", None);
        assert_eq!(r.ids("bob", "db/b", own), (bob, b));
        // In `other`, bob's ids are (0, 0), so the key's (1, 1) would be wrong.
        assert_eq!(other.ids("bob", "db/b", own), (0, 0));
        assert_eq!(copy.ids("bob", "db/b", own), (bob, b));
        let copy_own = copy.resolve("bob", "db/b", None);
        assert_ne!(copy_own.map(|k| k.table), own.map(|k| k.table));
    }

    #[test]
    fn a_full_keyer_starts_a_new_table() {
        let mut keyer = Keyer::default();
        let first = keyer.key("eng-0", "res");
        assert_eq!(
            keyer.key("eng-0", "res"),
            first,
            "the same names, the same key"
        );
        for i in 1..KEYER_NAMES {
            assert_eq!(keyer.key(&format!("eng-{i}"), "res").table, first.table);
        }
        let next = keyer.key("eng-0", "res");
        assert_ne!(next.table, first.table);
        assert_eq!((next.principal, next.resource), (0, 0));
        assert_ne!(
            Keyer::default().key("eng-0", "res").table,
            next.table,
            "every keyer's tables are its own"
        );
    }

    #[test]
    fn a_full_baseline_drops_its_least_used_resource() {
        let mut r = Reach::default();
        let p = r.principals.intern("p");
        let (a, b, c) = (
            r.resources.intern("a"),
            r.resources.intern("b"),
            r.resources.intern("c"),
        );
        r.learn_capped(p, a, Ts(1), 2);
        r.learn_capped(p, a, Ts(2), 2);
        r.learn_capped(p, b, Ts(3), 2);
        r.learn_capped(p, c, Ts(4), 2);
        assert_eq!(r.baselines[p].resources.sorted(), vec![(a, 2), (c, 1)]);
        assert_eq!(r.users_of.get(&b), None);
        assert_eq!(r.evicted.resources, 1);
    }

    #[test]
    fn evicting_principals_keeps_the_recent_ones_and_compacts_names() {
        let mut r = Reach::default();
        for i in 0..1000 {
            let p = r.principals.intern(&format!("flood-{i}"));
            let res = r.resources.intern(&format!("res-{i}"));
            r.learn(p, res, Ts(i));
            r.push_novel(
                p,
                Novel {
                    ts: Ts(i),
                    resource: res,
                    score: 1.0,
                },
                1_000_000,
            );
            // A placement remembered for every one (cluster = its number).
            r.peers.placed.insert(p, (i as u32, 1));
        }
        assert_eq!(r.evict_principals(10), 990);
        assert_eq!(r.baselined(), 10);
        assert_eq!(r.principals.len(), 10, "dead names are compacted away");
        assert_eq!(r.resources.len(), 10);
        let last = r
            .principals
            .get("flood-999")
            .expect("the most recent stays");
        let res = r.resources.get("res-999").unwrap();
        assert_eq!(r.baselines[last].resources.sorted(), vec![(res, 1)]);
        assert_eq!(r.recent[&last][0].resource, res);
        assert_eq!(r.peers.placed.len(), 10);
        assert_eq!(
            r.peers.placed[&last],
            (999, 1),
            "placements follow the new ids"
        );
        assert_eq!(r.users_of[&res], 1);
        assert_eq!(r.evicted.principals, 990);
        assert!(r.principals.get("flood-0").is_none());
    }

    #[test]
    fn sliding_window_expires_and_counts_each_resource_once() {
        let mut r = Reach::default();
        let p = r.principals.intern("carol");
        let keep = 3_600_000;
        for (t, res) in [(0, 1), (60_000, 2), (120_000, 1), (4_000_000, 3)] {
            r.push_novel(
                p,
                Novel {
                    ts: Ts(t),
                    resource: res,
                    score: 10.0,
                },
                keep,
            );
        }
        // The first three fell out of the hour before t = 4,000,000.
        assert_eq!(r.recent[&p].len(), 1);
        let mut r2 = Reach::default();
        for (t, res) in [(0, 1), (60_000, 2), (120_000, 1)] {
            r2.push_novel(
                p,
                Novel {
                    ts: Ts(t),
                    resource: res,
                    score: 10.0,
                },
                keep,
            );
        }
        let w = r2.window(p, Ts(120_000), 600_000);
        assert_eq!(w.iter().map(|n| n.resource).collect::<Vec<_>>(), [1, 2]);
        assert!(r2.window(p, Ts(2_000_000), 600_000).is_empty());
        r2.expire(Ts(100_000));
        assert_eq!(r2.recent[&p].len(), 1);
    }

    /// Two teams of eight with disjoint resources, for the peer groups.
    fn org() -> Reach {
        let mut r = Reach::default();
        for (team, res) in [
            ("infra", ["k8s", "tf", "vault"]),
            ("web", ["cdn", "repo", "css"]),
        ] {
            for i in 0..8 {
                let p = r.principals.intern(&format!("{team}-{i}"));
                for (j, name) in res.iter().enumerate() {
                    let rid = r.resources.intern(name);
                    for _ in 0..(3 + j + i % 2) {
                        r.learn(p, rid, Ts(1));
                    }
                }
            }
        }
        r
    }

    #[test]
    fn teams_with_disjoint_work_become_separate_peer_groups() {
        let r = org();
        let m = PeerModel::fit(&r.baselines, &r.resources, r.accesses, 1, 2048);
        assert_eq!(m.clusters.len(), cluster_count(16));
        let infra: Vec<u32> = (0..8)
            .map(|i| m.assignment[&r.principals.get(&format!("infra-{i}")).unwrap()])
            .collect();
        let web: Vec<u32> = (0..8)
            .map(|i| m.assignment[&r.principals.get(&format!("web-{i}")).unwrap()])
            .collect();
        assert!(infra.iter().all(|c| *c == infra[0]), "{infra:?}");
        assert!(web.iter().all(|c| *c == web[0]), "{web:?}");
        assert_ne!(infra[0], web[0]);
        let k8s = r.resources.get("k8s").unwrap();
        assert_eq!(m.clusters[infra[0] as usize].usage[&k8s], 8);
        assert!(!m.clusters[web[0] as usize].usage.contains_key(&k8s));
    }

    #[test]
    fn a_newcomer_is_placed_with_the_team_whose_resources_they_use() {
        let mut r = org();
        let m = PeerModel::fit(&r.baselines, &r.resources, r.accesses, 1, 2048);
        let newbie = r.principals.intern("new-hire");
        let cdn = r.resources.intern("cdn");
        r.learn(newbie, cdn, Ts(2));
        let web0 = m.assignment[&r.principals.get("web-0").unwrap()];
        assert_eq!(m.cluster_of(newbie, &r.baselines, &r.resources), Some(web0));
        let nobody = r.principals.intern("nobody");
        assert_eq!(m.cluster_of(nobody, &r.baselines, &r.resources), None);
    }

    #[test]
    fn a_newcomer_is_placed_again_only_once_their_accesses_have_doubled() {
        let mut r = org();
        r.peers = PeerModel::fit(&r.baselines, &r.resources, r.accesses, 1, 2048);
        let team = |r: &Reach, name: &str| r.peers.assignment[&r.principals.get(name).unwrap()];
        let (web, infra) = (team(&r, "web-0"), team(&r, "infra-0"));
        let newbie = r.principals.intern("new-hire");
        let (cdn, k8s, tf) = (
            r.resources.intern("cdn"),
            r.resources.intern("k8s"),
            r.resources.intern("tf"),
        );
        r.learn(newbie, cdn, Ts(2));
        r.learn(newbie, cdn, Ts(2));
        r.place_newcomer(newbie);
        assert_eq!(r.peers.placed[&newbie], (web, 2));
        // One more access, of the other team's work: not yet due.
        r.learn(newbie, k8s, Ts(3));
        r.place_newcomer(newbie);
        assert_eq!(
            r.peers.cluster_of(newbie, &r.baselines, &r.resources),
            Some(web)
        );
        // Twice the accesses, most of them now infra's: placed again, there.
        for _ in 0..6 {
            r.learn(newbie, k8s, Ts(4));
            r.learn(newbie, tf, Ts(4));
        }
        r.place_newcomer(newbie);
        assert_eq!(r.peers.placed[&newbie], (infra, 15));
        assert_eq!(
            r.peers.cluster_of(newbie, &r.baselines, &r.resources),
            Some(infra)
        );
        // Fitted engineers keep their fitted cluster.
        let web0 = r.principals.get("web-0").unwrap();
        r.place_newcomer(web0);
        assert!(!r.peers.placed.contains_key(&web0));
    }

    #[test]
    fn fitting_is_deterministic() {
        let r = org();
        assert_eq!(
            PeerModel::fit(&r.baselines, &r.resources, r.accesses, 1, 2048),
            PeerModel::fit(&r.baselines, &r.resources, r.accesses, 1, 2048)
        );
    }
}
