//! Reach baselines: what each engineer normally uses, and how much new reach a
//! normal window of their work brings.
//!
//! Owned by the detection engine. Learned online from `access` events (and
//! offline by `reachguard train`, which replays history through the same code),
//! persisted in the checkpoint. Names are interned: principals and resources
//! are `u32` ids, and a baseline is a sorted vector of `(resource, count)`, so
//! memory grows with what engineers actually touch, not with the org's size
//! squared.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::event::Ts;

/// Serde for maps keyed by interned ids: a list of `[id, value]` pairs sorted
/// by id, so the checkpoint is deterministic and needs no string map keys.
pub mod id_map {
    use std::collections::HashMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes the map as sorted pairs.
    pub fn serialize<S: Serializer, V: Serialize>(
        m: &HashMap<u32, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut v: Vec<(&u32, &V)> = m.iter().collect();
        v.sort_unstable_by_key(|e| *e.0);
        v.serialize(s)
    }

    /// Reads sorted pairs back into a map.
    pub fn deserialize<'de, D: Deserializer<'de>, V: Deserialize<'de>>(
        d: D,
    ) -> Result<HashMap<u32, V>, D::Error> {
        Ok(Vec::<(u32, V)>::deserialize(d)?.into_iter().collect())
    }
}

/// Strings to dense ids and back. Serialised as the list of names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interner {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Interner {
    /// The id of `name`, creating it.
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = u32::try_from(self.names.len()).expect("fewer than 2^32 names");
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    /// The id of `name`, if known.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
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
}

impl Serialize for Interner {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Interner {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<Box<str>>::deserialize(d)?;
        let ids = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
        Ok(Interner { ids, names })
    }
}

/// Running statistics of the novelty a tumbling window of one engineer's work
/// brings (Welford's algorithm).
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
    /// Adds `score` at `ts` to the open window, closing it first if `ts` is
    /// past its end. Only windows with activity count: the question is "how
    /// much new reach does an hour of this person's work normally bring".
    pub fn observe(&mut self, ts: Ts, score: f64, len_ms: i64) {
        if self.n == 0 && self.start == Ts(0) && self.sum == 0.0 {
            self.start = ts;
        } else if ts.0 >= self.start.0.saturating_add(len_ms) {
            self.close();
            self.start = ts;
        }
        self.sum += score;
    }

    fn close(&mut self) {
        self.n += 1;
        let d = self.sum - self.mean;
        self.mean += d / f64::from(self.n);
        self.m2 += d * (self.sum - self.mean);
        self.sum = 0.0;
    }

    /// Standard deviation of closed windows.
    pub fn std(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            (self.m2 / f64::from(self.n - 1)).sqrt()
        }
    }
}

/// What one engineer normally reaches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// `(resource id, accesses)`, sorted by resource id.
    pub resources: Vec<(u32, u32)>,
    /// Accesses seen.
    pub events: u64,
    /// First access.
    pub first: Ts,
    /// Latest access.
    pub last: Ts,
    /// Distinct days with activity.
    pub days: u32,
    /// Day number (UTC) of the latest active day.
    pub last_day: i64,
    /// Novelty per window, short and long scale.
    pub windows: [WindowStats; 2],
}

impl Baseline {
    /// How often the engineer used `resource` (0 if never).
    pub fn count(&self, resource: u32) -> u32 {
        self.resources
            .binary_search_by_key(&resource, |&(r, _)| r)
            .map_or(0, |i| self.resources[i].1)
    }

    /// Records one access; returns true if the resource was new to this baseline.
    pub fn record(&mut self, resource: u32, ts: Ts) -> bool {
        self.events += 1;
        if self.first == Ts(0) || ts < self.first {
            self.first = ts;
        }
        self.last = self.last.max(ts);
        let day = ts.0.div_euclid(86_400_000);
        // Events a little out of order never count a past day twice.
        if self.days == 0 || day > self.last_day {
            self.days += 1;
            self.last_day = day;
        }
        match self.resources.binary_search_by_key(&resource, |&(r, _)| r) {
            Ok(i) => {
                self.resources[i].1 = self.resources[i].1.saturating_add(1);
                false
            }
            Err(i) => {
                self.resources.insert(i, (resource, 1));
                true
            }
        }
    }
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

/// Every engineer's baseline and recent novel reach.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reach {
    /// Principal names.
    pub principals: Interner,
    /// Resource names.
    pub resources: Interner,
    /// Baselines by principal id.
    #[serde(with = "id_map")]
    pub baselines: HashMap<u32, Baseline>,
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
}

impl Reach {
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
        self.first_seen = Some(self.first_seen.map_or(ts, |f| f.min(ts)));
        let new = self
            .baselines
            .entry(principal)
            .or_default()
            .record(resource, ts);
        if new {
            *self.users_of.entry(resource).or_default() += 1;
        }
        new
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
        let mut seen = std::collections::HashSet::new();
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
        assert_eq!(b.resources, vec![(3, 1), (7, 2)]);
        assert_eq!((b.events, b.days), (3, 2));
        assert_eq!((b.first, b.last), (Ts(10 * day), Ts(11 * day)));
    }

    #[test]
    fn window_stats_close_on_expiry_and_track_mean_and_spread() {
        let mut w = WindowStats::default();
        let len = 600_000;
        // Four windows with novelty 0, 2, 4, 6 (the last one still open).
        for (i, s) in [0.0, 2.0, 4.0, 6.0].into_iter().enumerate() {
            w.observe(Ts(1_000_000 + i as i64 * len), s, len);
        }
        assert_eq!(w.n, 3);
        assert!((w.mean - 2.0).abs() < 1e-9);
        assert!((w.std() - 2.0).abs() < 1e-9);
        assert_eq!(w.sum, 6.0, "the open window is not yet counted");
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
