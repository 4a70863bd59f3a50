//! Reach baselines: what each engineer normally uses, and how much new reach a
//! normal window of their work brings.
//!
//! Owned by the detection engine. Learned online from `access` events (and
//! offline by `reachguard train`, which replays history through the same code),
//! persisted in the checkpoint. Names are interned: principals and resources
//! are `u32` ids, and a baseline is a sorted vector of `(resource, count)`, so
//! memory grows with what engineers actually touch, not with the org's size
//! squared.

use std::collections::VecDeque;

// Fx: fast for the short keys of the hot path; the caps in `[limits]` bound
// what anyone can insert, so hash flooding buys an attacker nothing.
use rustc_hash::FxHashMap as HashMap;

use serde::{Deserialize, Serialize};

use crate::event::{Key, Ts};

/// Serde for maps keyed by interned ids: a list of `[id, value]` pairs sorted
/// by id, so the checkpoint is deterministic and needs no string map keys.
pub mod id_map {
    use std::collections::HashMap;
    use std::hash::BuildHasher;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes the map as sorted pairs.
    pub fn serialize<S: Serializer, V: Serialize, H>(
        m: &HashMap<u32, V, H>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut v: Vec<(&u32, &V)> = m.iter().collect();
        v.sort_unstable_by_key(|e| *e.0);
        v.serialize(s)
    }

    /// Reads sorted pairs back into a map.
    pub fn deserialize<'de, D, V, H>(d: D) -> Result<HashMap<u32, V, H>, D::Error>
    where
        D: Deserializer<'de>,
        V: Deserialize<'de>,
        H: BuildHasher + Default,
    {
        Ok(Vec::<(u32, V)>::deserialize(d)?.into_iter().collect())
    }
}

/// Strings to dense ids and back. Serialised as the list of names.
///
/// The table's entries carry the start of their name, so that finding a
/// name of up to [`HEAD`] bytes (most principals and resources) reads the
/// table and nothing else; with tens of thousands of names, following a
/// pointer to each candidate's name was a cache miss on every lookup.
#[derive(Debug, Clone, Default)]
pub struct Interner {
    /// Entries by [`fx`] hash of their name.
    table: hashbrown::HashTable<Entry>,
    /// Names by id.
    names: Vec<Box<str>>,
    /// [`stable_hash`] of each name (derived), so that what buckets names by
    /// hash (peer features) does not hash them again on every use.
    hashes: Vec<u64>,
}

/// Bytes of a name kept in its table entry.
const HEAD: usize = 24;

/// A name's id, length and first [`HEAD`] bytes (zero-padded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    id: u32,
    len: u32,
    head: [u8; HEAD],
}

impl Entry {
    /// The entry `name` would have (with `id`).
    fn of(name: &str, id: u32) -> Entry {
        let bytes = name.as_bytes();
        let n = bytes.len().min(HEAD);
        let mut head = [0; HEAD];
        head[..n].copy_from_slice(&bytes[..n]);
        Entry {
            id,
            // Longer names only need to differ from shorter ones here.
            len: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
            head,
        }
    }
}

/// The table's hash of a name. Fx: fast for the short keys of the hot path;
/// the caps in `[limits]` bound what anyone can insert, so hash flooding buys
/// an attacker nothing.
fn fx(name: &str) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(name)
}

/// FNV-1a: a hash of a name that is the same in every process and version,
/// unlike the map hashers.
pub fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Interner {
    /// The id of `name`, creating it.
    pub fn intern(&mut self, name: &str) -> u32 {
        let hash = fx(name);
        if let Some(id) = self.find(hash, name) {
            return id;
        }
        let id = u32::try_from(self.names.len()).expect("fewer than 2^32 names");
        self.names.push(name.into());
        self.hashes.push(stable_hash(name));
        let names = &self.names;
        self.table
            .insert_unique(hash, Entry::of(name, id), |e| fx(&names[e.id as usize]));
        id
    }

    fn find(&self, hash: u64, name: &str) -> Option<u32> {
        let probe = Entry::of(name, 0);
        self.table
            .find(hash, |e| {
                e.len == probe.len
                    && e.head == probe.head
                    && (name.len() <= HEAD || *self.names[e.id as usize] == *name)
            })
            .map(|e| e.id)
    }

    /// The [`stable_hash`] of an id's name.
    pub fn hash(&self, id: u32) -> u64 {
        self.hashes[id as usize]
    }

    /// The id of `name`, if known.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.find(fx(name), name)
    }

    /// The name of an id.
    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// How many names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Every name, in id order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|n| &**n)
    }
}

impl PartialEq for Interner {
    /// The same names with the same ids (the table follows from them).
    fn eq(&self, other: &Self) -> bool {
        self.names == other.names
    }
}

impl Serialize for Interner {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Interner {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<Box<str>>::deserialize(d)?;
        let mut out = Interner::default();
        for n in &names {
            let before = out.len();
            out.intern(n);
            if out.len() == before {
                return Err(serde::de::Error::custom(format!(
                    "name {n:?} is listed twice"
                )));
            }
        }
        Ok(out)
    }
}

/// Running statistics of the novelty a tumbling window of one engineer's work
/// brings (Welford's algorithm), as [`Windows::get`] reads them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    /// Start of the open window (event time).
    pub start: Ts,
    /// Novelty accumulated in the open window.
    pub sum: f64,
    /// Closed windows seen.
    pub n: u32,
    /// Mean novelty of a closed window.
    pub mean: f64,
    /// Sum of squared deviations (Welford).
    pub m2: f64,
}

impl WindowStats {
    /// Standard deviation of closed windows.
    pub fn std(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            (self.m2 / f64::from(self.n - 1)).sqrt()
        }
    }
}

/// The short and long scale's [`WindowStats`], kept field by field: two
/// structs would pad each count to eight bytes, and without that the
/// [`Baseline`] fits two cache lines. Checkpointed as the two structs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "[WindowStats; 2]", into = "[WindowStats; 2]")]
pub struct Windows {
    start: [Ts; 2],
    sum: [f64; 2],
    mean: [f64; 2],
    m2: [f64; 2],
    n: [u32; 2],
}

impl Windows {
    /// The statistics of one scale (0 short, 1 long).
    pub fn get(&self, scale: usize) -> WindowStats {
        WindowStats {
            start: self.start[scale],
            sum: self.sum[scale],
            n: self.n[scale],
            mean: self.mean[scale],
            m2: self.m2[scale],
        }
    }

    fn set(&mut self, scale: usize, w: WindowStats) {
        self.start[scale] = w.start;
        self.sum[scale] = w.sum;
        self.n[scale] = w.n;
        self.mean[scale] = w.mean;
        self.m2[scale] = w.m2;
    }

    /// Adds `score` at `ts` to the open window of one scale (0 short, 1
    /// long, `len_ms` long), closing it first if `ts` is past its end. Only
    /// windows with activity count: the question is "how much new reach does
    /// an hour of this person's work normally bring".
    pub fn observe(&mut self, scale: usize, ts: Ts, score: f64, len_ms: i64) {
        if self.n[scale] == 0 && self.start[scale] == Ts(0) && self.sum[scale] == 0.0 {
            self.start[scale] = ts;
        } else if ts.0 >= self.start[scale].0.saturating_add(len_ms) {
            self.close(scale);
            self.start[scale] = ts;
        }
        self.sum[scale] += score;
    }

    fn close(&mut self, scale: usize) {
        self.n[scale] += 1;
        let sum = self.sum[scale];
        let d = sum - self.mean[scale];
        self.mean[scale] += d / f64::from(self.n[scale]);
        self.m2[scale] += d * (sum - self.mean[scale]);
        self.sum[scale] = 0.0;
    }
}

impl From<[WindowStats; 2]> for Windows {
    fn from(pair: [WindowStats; 2]) -> Windows {
        let mut out = Windows::default();
        for (scale, w) in pair.into_iter().enumerate() {
            out.set(scale, w);
        }
        out
    }
}

impl From<Windows> for [WindowStats; 2] {
    fn from(w: Windows) -> [WindowStats; 2] {
        [w.get(0), w.get(1)]
    }
}

/// What one engineer normally reaches.
///
/// Every access reads or writes nearly all of it, so it is laid out to fill
/// exactly two cache lines (a baseline of 152 bytes spanned three or four).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[repr(align(64))]
pub struct Baseline {
    /// Resource id -> accesses.
    pub resources: Uses,
    /// Accesses seen.
    pub events: u64,
    /// First access.
    pub first: Ts,
    /// Latest access. Its day is the latest active day.
    pub last: Ts,
    /// Distinct days with activity.
    pub days: u32,
    /// Novelty per window, short and long scale.
    pub windows: Windows,
}

const _: () = assert!(std::mem::size_of::<Option<Baseline>>() == 128);

impl Baseline {
    /// How often the engineer used `resource` (0 if never).
    pub fn count(&self, resource: u32) -> u32 {
        self.resources.count(resource)
    }

    /// Where `resource` is in [`Baseline::resources`] ([`Uses::slot`]).
    pub fn slot(&self, resource: u32) -> Result<usize, usize> {
        self.resources.slot(resource)
    }

    /// Records one access; returns true if the resource was new to this baseline.
    pub fn record(&mut self, resource: u32, ts: Ts) -> bool {
        self.record_at(resource, self.slot(resource), ts)
    }

    /// [`Baseline::record`] with the resource's [`Baseline::slot`] known.
    fn record_at(&mut self, resource: u32, slot: Result<usize, usize>, ts: Ts) -> bool {
        debug_assert_eq!(slot, self.slot(resource));
        self.events += 1;
        if self.first == Ts(0) || ts < self.first {
            self.first = ts;
        }
        // Events a little out of order never count a past day twice.
        if self.days == 0 || ts.day() > self.last.day() {
            self.days += 1;
        }
        self.last = self.last.max(ts);
        self.resources.add_at(resource, slot)
    }
}

/// The resources of one baseline and how often each was used.
///
/// An open-addressing table keyed by resource id (linear probing, at most
/// three quarters full): finding a resource reads one cache line or two. A
/// sorted list read one per step of its binary search, and with thousands of
/// engineers those were cache misses on nearly every access. Iteration is in
/// table order, which depends on the order resources came in;
/// [`Uses::sorted`] gives resource order, for sums and the checkpoint
/// (a list of `[resource, count]` pairs sorted by resource).
#[derive(Clone, Default)]
pub struct Uses {
    /// `(resource, count)`, a power of two long (or empty); a count of 0
    /// marks a free slot (every stored resource was used at least once).
    slots: Box<[(u32, u32)]>,
    /// Resources stored.
    len: u32,
}

impl Uses {
    /// Where `resource` would first be looked for.
    fn home(&self, resource: u32) -> usize {
        let bits = self.slots.len().trailing_zeros();
        // Fibonacci hashing: ids are dense and sequential, the top bits of
        // their product with 2^64 / phi are spread over the table.
        (u64::from(resource).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
    }

    /// `Ok(slot)` of `resource` if stored, else `Err(free slot)` where it
    /// would be added (`Err(0)` while the table is empty).
    pub fn slot(&self, resource: u32) -> Result<usize, usize> {
        if self.slots.is_empty() {
            return Err(0);
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(resource);
        loop {
            let (r, n) = self.slots[i];
            if n == 0 {
                return Err(i);
            }
            if r == resource {
                return Ok(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The resource in the slot `resource` is first looked for in (0 when
    /// the table is empty).
    fn peek(&self, resource: u32) -> u32 {
        if self.slots.is_empty() {
            return 0;
        }
        self.slots[self.home(resource)].0
    }

    /// How often `resource` was used (0 if never).
    pub fn count(&self, resource: u32) -> u32 {
        self.slot(resource).map_or(0, |i| self.slots[i].1)
    }

    /// Counts one use of `resource`, whose [`Uses::slot`] is `slot`; returns
    /// whether it was new.
    fn add_at(&mut self, resource: u32, slot: Result<usize, usize>) -> bool {
        match slot {
            Ok(i) => {
                self.slots[i].1 = self.slots[i].1.saturating_add(1);
                false
            }
            Err(i) => {
                self.put(resource, 1, Some(i));
                true
            }
        }
    }

    /// Stores `resource`, which is not stored yet, with `count` (at least
    /// 1) uses, at `free` (its free slot) unless the table must grow first.
    fn put(&mut self, resource: u32, count: u32, free: Option<usize>) {
        debug_assert!(count > 0);
        let free = if (self.len as usize + 1) * 4 > self.slots.len() * 3 {
            let old = std::mem::take(&mut self.slots);
            self.slots = vec![(0, 0); (old.len() * 2).max(8)].into_boxed_slice();
            for &(r, n) in old.iter().filter(|e| e.1 > 0) {
                let i = self.slot(r).expect_err("stored once");
                self.slots[i] = (r, n);
            }
            None
        } else {
            free
        };
        let i = free.unwrap_or_else(|| self.slot(resource).expect_err("not stored yet"));
        self.slots[i] = (resource, count);
        self.len += 1;
    }

    /// Forgets `resource`; returns its count if it was stored.
    pub fn remove(&mut self, resource: u32) -> Option<u32> {
        let mut hole = self.slot(resource).ok()?;
        let count = self.slots[hole].1;
        let mask = self.slots.len() - 1;
        // Backward-shift deletion: every later entry of the same run that
        // may live in the hole moves back into it, so no search stops early.
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let (r, n) = self.slots[j];
            if n == 0 {
                break;
            }
            // The hole is between r's home and j (cyclically, home included).
            if j.wrapping_sub(self.home(r)) & mask >= j.wrapping_sub(hole) & mask {
                self.slots[hole] = self.slots[j];
                hole = j;
            }
        }
        self.slots[hole] = (0, 0);
        self.len -= 1;
        Some(count)
    }

    /// How many resources.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `(resource, count)` in table order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.slots.iter().copied().filter(|e| e.1 > 0)
    }

    /// `(resource, count)` sorted by resource.
    pub fn sorted(&self) -> Vec<(u32, u32)> {
        let mut v: Vec<(u32, u32)> = self.iter().collect();
        v.sort_unstable_by_key(|e| e.0);
        v
    }

    /// The least used resource, the lowest id among equals.
    pub fn least_used(&self) -> Option<u32> {
        self.iter().min_by_key(|&(r, n)| (n, r)).map(|(r, _)| r)
    }

    /// Renames every resource (`map` is one-to-one on the stored ones).
    fn remap(&mut self, map: impl Fn(u32) -> u32) {
        let old = std::mem::take(self);
        for (r, n) in old.iter() {
            self.put(map(r), n, None);
        }
    }
}

impl PartialEq for Uses {
    /// The same resources with the same counts, in whatever table order.
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().all(|(r, n)| other.count(r) == n)
    }
}

impl std::fmt::Debug for Uses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.sorted()).finish()
    }
}

impl Serialize for Uses {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.sorted().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Uses {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pairs = Vec::<(u32, u32)>::deserialize(d)?;
        let mut out = Uses::default();
        for (r, n) in pairs {
            match out.slot(r) {
                _ if n == 0 => {
                    return Err(serde::de::Error::custom(format!(
                        "resource {r} is listed with no uses"
                    )));
                }
                Ok(_) => {
                    return Err(serde::de::Error::custom(format!(
                        "resource {r} is listed twice"
                    )));
                }
                Err(i) => out.put(r, n, Some(i)),
            }
        }
        Ok(out)
    }
}

/// What learning one access changed in a baseline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Learned {
    /// The resource was new to it.
    pub new: bool,
    /// The resource dropped to make room for it (the baseline was full).
    pub dropped: Option<u32>,
}

/// A novel access waiting in the sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Novel {
    /// When.
    pub ts: Ts,
    /// Which resource.
    pub resource: u32,
    /// Its novelty score.
    pub score: f64,
}

/// Baselines by principal id, in a vector indexed by the id.
///
/// Principal ids are dense (interned), so an access finds its engineer's
/// baseline in one read rather than a hash probe. Serialised as `[id,
/// baseline]` pairs sorted by id, the form a map of them had.
#[derive(Debug, Clone, Default)]
pub struct Baselines {
    by_id: Vec<Option<Baseline>>,
    len: usize,
}

impl Baselines {
    /// The baseline of `principal`, if any.
    pub fn get(&self, principal: u32) -> Option<&Baseline> {
        self.by_id.get(principal as usize)?.as_ref()
    }

    /// The baseline of `principal`, created empty if it has none.
    pub fn get_or_default(&mut self, principal: u32) -> &mut Baseline {
        let i = principal as usize;
        if i >= self.by_id.len() {
            self.by_id.resize_with(i + 1, || None);
        }
        let slot = &mut self.by_id[i];
        if slot.is_none() {
            self.len += 1;
        }
        slot.get_or_insert_with(Baseline::default)
    }

    /// Forgets the baseline of `principal`, returning it.
    pub fn remove(&mut self, principal: u32) -> Option<Baseline> {
        let b = self.by_id.get_mut(principal as usize)?.take();
        self.len -= usize::from(b.is_some());
        b
    }

    /// Whether `principal` has a baseline.
    pub fn contains(&self, principal: u32) -> bool {
        self.get(principal).is_some()
    }

    /// How many principals have a baseline.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none has.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `(principal, baseline)` in principal id order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Baseline)> {
        (0u32..)
            .zip(&self.by_id)
            .filter_map(|(p, b)| Some((p, b.as_ref()?)))
    }

    /// Principals with a baseline, in id order.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.iter().map(|(p, _)| p)
    }

    /// Every baseline, in principal id order.
    pub fn values(&self) -> impl Iterator<Item = &Baseline> {
        self.by_id.iter().flatten()
    }
}

impl std::ops::Index<u32> for Baselines {
    type Output = Baseline;

    fn index(&self, principal: u32) -> &Baseline {
        self.get(principal)
            .unwrap_or_else(|| panic!("principal {principal} has no baseline"))
    }
}

impl FromIterator<(u32, Baseline)> for Baselines {
    fn from_iter<I: IntoIterator<Item = (u32, Baseline)>>(iter: I) -> Baselines {
        let mut out = Baselines::default();
        for (p, b) in iter {
            *out.get_or_default(p) = b;
        }
        out
    }
}

impl PartialEq for Baselines {
    /// The same principals with the same baselines (however long the vector).
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl Serialize for Baselines {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

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
    pub peers: super::peers::PeerModel,
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
    peers: super::peers::PeerModel,
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

    #[test]
    fn interner_round_trips_through_json() {
        let mut i = Interner::default();
        assert_eq!(i.intern("a"), 0);
        assert_eq!(i.intern("b"), 1);
        assert_eq!(i.intern("a"), 0);
        let back: Interner = serde_json::from_str(&serde_json::to_string(&i).unwrap()).unwrap();
        assert_eq!(back, i);
        assert_eq!(back.get("b"), Some(1));
        assert_eq!(back.name(1), "b");
    }

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
        /// Ids are dense, stable and found again by name, through the
        /// table's growth, for names that are prefixes of one another too,
        /// and long ones alike in the part their table entry keeps.
        #[test]
        fn interned_names_keep_their_ids(
            names in proptest::collection::vec(
                proptest::strategy::Strategy::prop_map(
                    ("(|.{20}|.{24}|same-first-twenty-four-bytes-)", "[ab/]{0,4}"),
                    |(head, tail)| head + &tail,
                ),
                0..300,
            )
        ) {
            let mut i = Interner::default();
            let mut want = std::collections::HashMap::new();
            for n in &names {
                let next = want.len() as u32;
                let id = *want.entry(n.clone()).or_insert(next);
                proptest::prop_assert_eq!(i.intern(n), id);
            }
            proptest::prop_assert_eq!(i.len(), want.len());
            for (n, &id) in &want {
                proptest::prop_assert_eq!(i.get(n), Some(id));
                proptest::prop_assert_eq!(i.name(id), &n[..]);
                proptest::prop_assert_eq!(i.hash(id), stable_hash(n));
            }
            proptest::prop_assert_eq!(i.get("not interned"), None);
        }
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

    /// One step on a baseline's resources.
    #[derive(Debug, Clone)]
    enum UsesOp {
        Add(u32),
        Remove(u32),
        DropLeastUsed,
        Remap(u32),
    }

    fn uses_op() -> impl proptest::strategy::Strategy<Value = UsesOp> {
        use proptest::prelude::*;
        // Few distinct ids, so that adds repeat and removes find something;
        // sometimes far apart ones, so that homes spread over the table.
        let id = prop_oneof![0u32..40, any::<u32>()];
        prop_oneof![
            6 => id.clone().prop_map(UsesOp::Add),
            2 => id.prop_map(UsesOp::Remove),
            1 => Just(UsesOp::DropLeastUsed),
            1 => (1u32..1000).prop_map(UsesOp::Remap),
        ]
    }

    proptest::proptest! {
        /// The table answers as a sorted map would, through growth, removal
        /// (shifting later entries back), eviction of the least used, and
        /// renaming; and its checkpoint form is the sorted map's.
        #[test]
        fn uses_answer_as_a_sorted_map(ops in proptest::collection::vec(uses_op(), 0..400)) {
            use proptest::prop_assert_eq;
            let mut u = Uses::default();
            let mut want = std::collections::BTreeMap::<u32, u32>::new();
            for op in ops {
                match op {
                    UsesOp::Add(r) => {
                        let new = u.add_at(r, u.slot(r));
                        prop_assert_eq!(new, !want.contains_key(&r));
                        *want.entry(r).or_default() += 1;
                    }
                    UsesOp::Remove(r) => prop_assert_eq!(u.remove(r), want.remove(&r)),
                    UsesOp::DropLeastUsed => {
                        let least = want.iter().min_by_key(|&(r, n)| (*n, *r)).map(|(r, _)| *r);
                        prop_assert_eq!(u.least_used(), least);
                        if let Some(r) = least {
                            prop_assert_eq!(u.remove(r), want.remove(&r));
                        }
                    }
                    UsesOp::Remap(k) => {
                        let f = |r: u32| r.rotate_left(1) ^ k;
                        u.remap(f);
                        want = want.into_iter().map(|(r, n)| (f(r), n)).collect();
                    }
                }
                prop_assert_eq!(u.len(), want.len());
                for (&r, &n) in &want {
                    prop_assert_eq!(u.count(r), n);
                }
            }
            let sorted: Vec<(u32, u32)> = want.into_iter().collect();
            prop_assert_eq!(u.sorted(), sorted.clone());
            let json = serde_json::to_string(&u).unwrap();
            prop_assert_eq!(&json, &serde_json::to_string(&sorted).unwrap());
            prop_assert_eq!(serde_json::from_str::<Uses>(&json).unwrap(), u);
        }
    }

    #[test]
    fn resources_listed_twice_or_unused_are_refused() {
        let e = serde_json::from_str::<Uses>("[[1,2],[5,1],[1,3]]").unwrap_err();
        assert!(e.to_string().contains("resource 1 is listed twice"), "{e}");
        let e = serde_json::from_str::<Uses>("[[1,2],[5,0]]").unwrap_err();
        assert!(
            e.to_string().contains("resource 5 is listed with no uses"),
            "{e}"
        );
    }

    #[test]
    fn a_name_listed_twice_is_refused() {
        let e = serde_json::from_str::<Interner>(r#"["a","b","a"]"#).unwrap_err();
        assert!(e.to_string().contains("\"a\" is listed twice"), "{e}");
    }

    #[test]
    fn baseline_update_counts_and_days() {
        let mut b = Baseline::default();
        let day = 86_400_000;
        assert!(b.record(7, Ts(10 * day)));
        assert!(!b.record(7, Ts(10 * day + 5)));
        assert!(b.record(3, Ts(11 * day)));
        assert_eq!(b.count(7), 2);
        assert_eq!(b.count(3), 1);
        assert_eq!(b.count(9), 0);
        assert_eq!(b.resources.sorted(), vec![(3, 1), (7, 2)]);
        assert_eq!((b.events, b.days), (3, 2));
        assert_eq!((b.first, b.last), (Ts(10 * day), Ts(11 * day)));
        // A late event from a past day, then one more on the latest day,
        // count no day; the next day does.
        b.record(3, Ts(10 * day + 7));
        b.record(3, Ts(11 * day + 9));
        assert_eq!((b.events, b.days), (5, 2));
        assert_eq!((b.first, b.last), (Ts(10 * day), Ts(11 * day + 9)));
        b.record(3, Ts(12 * day));
        assert_eq!(b.days, 3);
    }

    #[test]
    fn a_baseline_reads_from_and_writes_the_checkpoint_form() {
        // As checkpoints have written it: each window a struct, and the
        // latest active day, which is now the day of `last` and is ignored.
        let t = |ms| serde_json::to_value(Ts(ms)).unwrap();
        let old = serde_json::json!({
            "resources": [[4, 2]], "events": 2, "first": t(1000), "last": t(90_000_000),
            "days": 2, "last_day": 1,
            "windows": [
                {"start": t(1000), "sum": 0.5, "n": 3, "mean": 0.25, "m2": 0.125},
                {"start": t(2000), "sum": 1.5, "n": 4, "mean": 0.75, "m2": 0.375},
            ],
        });
        let b: Baseline = serde_json::from_value(old.clone()).unwrap();
        let long = b.windows.get(1);
        assert_eq!((long.start, long.n, long.mean), (Ts(2000), 4, 0.75));
        assert_eq!(b.windows.get(0).m2, 0.125);
        let mut written = old;
        written.as_object_mut().unwrap().remove("last_day");
        assert_eq!(serde_json::to_value(&b).unwrap(), written);
        // The next access on day 1 is not a new day.
        let mut b = b;
        b.record(4, Ts(90_000_001));
        assert_eq!(b.days, 2);
    }

    #[test]
    fn window_stats_close_on_expiry_and_track_mean_and_spread() {
        let mut both = Windows::default();
        let len = 600_000;
        // Four windows with novelty 0, 2, 4, 6 (the last one still open) on
        // the long scale; the short one sees nothing.
        for (i, s) in [0.0, 2.0, 4.0, 6.0].into_iter().enumerate() {
            both.observe(1, Ts(1_000_000 + i as i64 * len), s, len);
        }
        assert_eq!(both.get(0), WindowStats::default());
        let w = both.get(1);
        assert_eq!(w.n, 3);
        assert!((w.mean - 2.0).abs() < 1e-9);
        assert!((w.std() - 2.0).abs() < 1e-9);
        assert_eq!(w.sum, 6.0, "the open window is not yet counted");
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
}
