//! What one engineer normally reaches, and the interned names it is kept in:
//! the vocabulary that the reach model ([`super::reach`]) and the peer groups
//! ([`super::peers`]) share.
//!
//! Names are interned ([`Interner`]): principals and resources are `u32` ids.
//! A [`Baseline`] counts one engineer's accesses per resource ([`Uses`]) and
//! how much novelty a normal window of their work brings ([`Windows`]);
//! [`Baselines`] holds them by principal id. The reach model owns them and
//! the peer groups are fitted over them; kept apart from both so that neither
//! of those two needs the other to name them.

use serde::{Deserialize, Serialize};

use crate::event::Ts;

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
    pub(super) n: [u32; 2],
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
    pub(super) fn record_at(&mut self, resource: u32, slot: Result<usize, usize>, ts: Ts) -> bool {
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
    pub(super) fn peek(&self, resource: u32) -> u32 {
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
    pub(super) fn remap(&mut self, map: impl Fn(u32) -> u32) {
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
    pub(super) by_id: Vec<Option<Baseline>>,
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
}
