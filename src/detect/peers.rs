//! Peer groups: engineers clustered by what they access (k-means, linfa).
//!
//! Features: each engineer's baseline hashed into a fixed number of dimensions
//! (resource name -> bucket, value `ln(1 + accesses)`), L2-normalised, so two
//! engineers who use the same resources in similar proportions are close
//! whatever their volume. The number of clusters grows with the org
//! (`sqrt(n / 4)`, clamped). Refitted periodically in event time; between fits,
//! a newcomer with a baseline is placed at the nearest centroid. Per cluster we
//! keep who is in it, which resources its members use, and how much novelty a
//! normal window of its members brings, so an engineer with little history of
//! their own is judged against their peers from their first event.

use rustc_hash::FxHashMap as HashMap;

use linfa::prelude::*;
use linfa_clustering::KMeans;
use ndarray::{Array1, Array2};
use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

use super::baseline::{Baseline, Baselines, Interner};

/// Feature dimensions (hashed resource buckets).
pub const DIMS: usize = 64;

/// One cluster of engineers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// Member principal ids.
    pub members: Vec<u32>,
    /// Resource id -> members that used it.
    #[serde(with = "super::baseline::id_map")]
    pub usage: HashMap<u32, u32>,
    /// Pooled novelty-per-window mean and standard deviation, short and long scale.
    pub window_mean_std: [(f64, f64); 2],
    /// Centroid in feature space.
    pub centroid: Vec<f64>,
}

/// The fitted peer groups.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerModel {
    /// Principal id -> cluster index.
    #[serde(with = "super::baseline::id_map")]
    pub assignment: HashMap<u32, u32>,
    /// The clusters.
    pub clusters: Vec<Cluster>,
    /// Event time of the last fit.
    pub fitted_at: Option<crate::event::Ts>,
    /// Baselined principals at the last fit.
    pub fitted_n: usize,
    /// Accesses the reach model had learned at the last fit (its
    /// `accesses`, which paces refits).
    #[serde(default)]
    pub fitted_accesses: u64,
    /// Engineers not in `assignment` (new since the fit) placed at their
    /// nearest centroid, with their access count then. They are placed again
    /// once that count has doubled (the reach model's `place_newcomer`): a few times
    /// per fit, not on every new resource, while their place still settles.
    #[serde(default, with = "super::baseline::id_map")]
    pub placed: HashMap<u32, (u32, u64)>,
}

/// The feature vector of one baseline.
pub fn features(b: &Baseline, resources: &Interner) -> [f64; DIMS] {
    let mut v = [0.0; DIMS];
    // In resource order: a bucket's sum is then the same however the
    // baseline's table is laid out (live, or loaded from a checkpoint).
    for (r, n) in b.resources.sorted() {
        v[(resources.hash(r) % DIMS as u64) as usize] += (1.0 + f64::from(n)).ln();
    }
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Dimensions summed between checks of whether a centroid can still be
/// the nearest ([`PeerModel::nearest`]).
const PART: usize = 16;
const _: () = assert!(DIMS % PART == 0);

/// Squared Euclidean distance (over the dimensions both have).
fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// How many clusters for `n` engineers.
pub fn cluster_count(n: usize) -> usize {
    ((n as f64 / 4.0).sqrt().round() as usize)
        .clamp(1, 32)
        .min(n.max(1))
}

impl PeerModel {
    /// Fits peer groups over the baselined engineers with at least
    /// `min_events` accesses: k-means on an even sample of at most `sample` of
    /// them, then every one of them placed at the nearest centroid.
    /// `accesses` is how many the reach model has learned in all.
    /// Deterministic for a given input (seeded).
    pub fn fit(
        baselines: &Baselines,
        resources: &Interner,
        accesses: u64,
        min_events: u64,
        sample: usize,
    ) -> PeerModel {
        let ids: Vec<u32> = baselines
            .iter()
            .filter(|(_, b)| b.events >= min_events)
            .map(|(p, _)| p)
            .collect();
        let n = ids.len();
        if n == 0 {
            return PeerModel::default();
        }
        let mut data = Array2::<f64>::zeros((n, DIMS));
        for (i, p) in ids.iter().enumerate() {
            let f = features(&baselines[*p], resources);
            data.row_mut(i).assign(&Array1::from(f.to_vec()));
        }
        let k = cluster_count(n);
        let (labels, centroids): (Vec<usize>, Array2<f64>) = if k < 2 {
            let c = data
                .mean_axis(ndarray::Axis(0))
                .expect("n > 0")
                .insert_axis(ndarray::Axis(0));
            (vec![0; n], c)
        } else {
            // Fitting costs n x k; placing everyone only n. An even sample keeps
            // a refit's cost bounded however large the organisation grows.
            let step = n.div_ceil(sample.max(k)).max(1);
            let fit_rows: Vec<usize> = (0..n).step_by(step).collect();
            let ds = DatasetBase::from(data.select(ndarray::Axis(0), &fit_rows));
            let rng = Xoshiro256Plus::seed_from_u64(0x7265_6163_6867_7264);
            match KMeans::params_with_rng(k, rng)
                .n_runs(1)
                .max_n_iterations(20)
                .tolerance(1e-3)
                .fit(&ds)
            {
                Ok(model) => (model.predict(&data).to_vec(), model.centroids().clone()),
                Err(e) => {
                    tracing::warn!(error = %e, engineers = n, "peer clustering failed; using one peer group");
                    let c = data
                        .mean_axis(ndarray::Axis(0))
                        .expect("n > 0")
                        .insert_axis(ndarray::Axis(0));
                    (vec![0; n], c)
                }
            }
        };
        let mut clusters: Vec<Cluster> = centroids
            .rows()
            .into_iter()
            .map(|c| Cluster {
                centroid: c.to_vec(),
                ..Cluster::default()
            })
            .collect();
        let mut assignment = HashMap::with_capacity_and_hasher(n, Default::default());
        for (p, &c) in ids.iter().zip(&labels) {
            assignment.insert(*p, c as u32);
            let cl = &mut clusters[c];
            cl.members.push(*p);
            for (r, _) in baselines[*p].resources.iter() {
                *cl.usage.entry(r).or_default() += 1;
            }
        }
        for cl in &mut clusters {
            for scale in 0..2 {
                let stats: Vec<(f64, f64)> = cl
                    .members
                    .iter()
                    .map(|&p| baselines[p].windows.get(scale))
                    .filter(|w| w.n >= 2)
                    .map(|w| (w.mean, w.std()))
                    .collect();
                if !stats.is_empty() {
                    let m = stats.iter().map(|s| s.0).sum::<f64>() / stats.len() as f64;
                    let sd = stats.iter().map(|s| s.1).sum::<f64>() / stats.len() as f64;
                    cl.window_mean_std[scale] = (m, sd);
                }
            }
        }
        PeerModel {
            assignment,
            clusters,
            fitted_at: None,
            fitted_n: baselines.len(),
            fitted_accesses: accesses,
            placed: HashMap::default(),
        }
    }

    /// The cluster of `principal`: fitted, or the nearest centroid for a newcomer
    /// with a baseline, or none.
    pub fn cluster_of(
        &self,
        principal: u32,
        baselines: &Baselines,
        resources: &Interner,
    ) -> Option<u32> {
        if let Some(&c) = self.assignment.get(&principal) {
            return Some(c);
        }
        if let Some(&(c, _)) = self.placed.get(&principal) {
            return Some(c);
        }
        self.nearest(baselines.get(principal)?, resources)
    }

    /// The centroid nearest to a baseline's features.
    pub fn nearest(&self, b: &Baseline, resources: &Interner) -> Option<u32> {
        if self.clusters.is_empty() || b.resources.is_empty() {
            return None;
        }
        self.nearest_to(&features(b, resources))
    }

    /// The centroid nearest to features `f` (the first of equally near ones).
    fn nearest_to(&self, f: &[f64; DIMS]) -> Option<u32> {
        let mut best: Option<(usize, f64)> = None;
        let consider = |best: &mut Option<(usize, f64)>, i: usize, d: f64| {
            if best.is_none_or(|(_, b)| d.total_cmp(&b).is_lt()) {
                *best = Some((i, d));
            }
        };
        // Four centroids at a time: each distance still sums its terms in
        // dimension order (the same result as one at a time), but four
        // independent sums keep the floating-point unit busy. A sum of
        // squares only grows, term by term, so four whose partial sums are
        // all already no nearer than the nearest so far are left there: the
        // answer is the same, for much less work once a near one is found.
        let mut chunks = self.clusters.chunks_exact(4);
        for (n, four) in chunks.by_ref().enumerate() {
            let full = |k: usize| <&[f64; DIMS]>::try_from(four[k].centroid.as_slice()).ok();
            match (full(0), full(1), full(2), full(3)) {
                (Some(c0), Some(c1), Some(c2), Some(c3)) => {
                    let cs = [c0, c1, c2, c3];
                    let mut acc = [0.0f64; 4];
                    for part in 0..DIMS / PART {
                        for j in part * PART..(part + 1) * PART {
                            let x = f[j];
                            for k in 0..4 {
                                acc[k] += (cs[k][j] - x) * (cs[k][j] - x);
                            }
                        }
                        let beaten = |d: &f64| best.is_some_and(|(_, b)| d.total_cmp(&b).is_ge());
                        if acc.iter().all(beaten) {
                            break;
                        }
                    }
                    acc.iter()
                        .enumerate()
                        .for_each(|(k, d)| consider(&mut best, n * 4 + k, *d));
                }
                _ => four
                    .iter()
                    .enumerate()
                    .for_each(|(k, c)| consider(&mut best, n * 4 + k, sq_dist(&c.centroid, f))),
            }
        }
        let done = self.clusters.len() - chunks.remainder().len();
        for (k, c) in chunks.remainder().iter().enumerate() {
            consider(&mut best, done + k, sq_dist(&c.centroid, f));
        }
        best.map(|(i, _)| i as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Four at a time and leaving hopeless ones early, the nearest
        /// centroid is the one a plain scan finds, ties to the first.
        #[test]
        fn the_nearest_centroid_is_the_first_of_the_least_distant(
            centroids in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(vec![0.0, 0.1, 0.25, 0.5, 1.0]), DIMS),
                1..40,
            ),
            f in proptest::collection::vec(proptest::sample::select(vec![0.0, 0.1, 0.25, 0.5]), DIMS),
            copy in proptest::option::of((0usize..40, 0usize..40)),
        ) {
            let mut centroids = centroids;
            // Equally near centroids, at times.
            if let Some((from, to)) = copy {
                let (from, to) = (from % centroids.len(), to % centroids.len());
                centroids[to] = centroids[from].clone();
            }
            let f: [f64; DIMS] = f.try_into().unwrap();
            let m = PeerModel {
                clusters: centroids
                    .iter()
                    .map(|c| Cluster { centroid: c.clone(), ..Cluster::default() })
                    .collect(),
                ..PeerModel::default()
            };
            let mut plain: Option<(usize, f64)> = None;
            for (i, c) in centroids.iter().enumerate() {
                let d = sq_dist(c, &f);
                if plain.is_none_or(|(_, b)| d < b) {
                    plain = Some((i, d));
                }
            }
            proptest::prop_assert_eq!(m.nearest_to(&f), plain.map(|(i, _)| i as u32));
        }
    }
}
