//! `reachguard train`: learn baselines from historical logs into the state dir,
//! so a new deployment is useful minutes after install instead of after weeks
//! of warm-up.
//!
//! Training is the pipeline over the given files, merged in event time (the
//! same code as `replay`), starting from the state dir's checkpoint if there is
//! one; findings are discarded and no hook is called. Afterwards peer groups
//! are refitted, the baselines are marked trained (no warm-up), and the
//! checkpoint is written with its source offsets unchanged. The state dir's
//! owner lock keeps a running daemon and `train` from overwriting each other.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::Config;
use crate::decode::Format;
use crate::event::Ts;
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, Summary};
use crate::replay::{self, Merge};
use crate::state::{StateDir, StateError};

/// Why training failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The state dir.
    #[error(transparent)]
    State(#[from] StateError),
    /// An input.
    #[error(transparent)]
    Input(#[from] replay::Error),
}

/// What training learned.
#[derive(Debug, Clone, Serialize)]
pub struct Learned {
    /// Lines, events and errors read.
    pub input: Summary,
    /// Engineers with a baseline.
    pub engineers: usize,
    /// Distinct resources seen.
    pub resources: usize,
    /// Peer groups fitted, with their sizes (largest first).
    pub peer_groups: Vec<usize>,
    /// Median distinct resources per engineer.
    pub median_resources_per_engineer: usize,
    /// Event time covered.
    pub from: Option<Ts>,
    /// Event time covered.
    pub until: Ts,
    /// Wall time taken.
    #[serde(serialize_with = "secs")]
    pub took: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl fmt::Display for Learned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = self.input.events as f64 / self.took.as_secs_f64().max(1e-9);
        writeln!(
            f,
            "trained on {} events ({} lines, {} decode errors, {} skipped) in {:.2}s ({:.0} events/s)",
            self.input.events,
            self.input.lines,
            self.input.decode_errors,
            self.input.skipped,
            self.took.as_secs_f64(),
            rate
        )?;
        writeln!(
            f,
            "event time {} .. {}",
            self.from.map_or("-".into(), |t| t.to_string()),
            self.until
        )?;
        writeln!(
            f,
            "baselines for {} engineers over {} resources (median {} resources each)",
            self.engineers, self.resources, self.median_resources_per_engineer
        )?;
        let sizes: BTreeMap<usize, usize> =
            self.peer_groups.iter().fold(BTreeMap::new(), |mut m, s| {
                *m.entry(*s).or_default() += 1;
                m
            });
        write!(
            f,
            "{} peer groups (sizes {})",
            self.peer_groups.len(),
            sizes
                .iter()
                .rev()
                .map(|(s, n)| if *n > 1 {
                    format!("{s} x{n}")
                } else {
                    s.to_string()
                })
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Trains from `paths` into the state dir of `cfg`. Each file is read in the
/// format of the configured source that matches it, else in `format`
/// ([`replay::inputs`]).
pub fn train(cfg: &Config, paths: &[PathBuf], format: Format) -> Result<Learned, Error> {
    let started = Instant::now();
    let state = StateDir::open(&cfg.state_dir)?;
    let _owner = state.lock_owner()?;
    let saved = state.load()?.unwrap_or_default();
    let inputs = replay::inputs(cfg, paths, format);
    let names: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
    let mut p = Pipeline::new(
        cfg,
        inputs,
        saved.model,
        saved.reach,
        Metrics::new(&names),
        false,
    );
    let merged = Merge::open(paths, p.inputs(), p.metrics())?.spawn();
    let mut from = None;
    let mut ahead = replay::Ahead::default();
    loop {
        let batch = merged.next_batch()?;
        if batch.is_empty() {
            break;
        }
        for (n, (i, ev)) in batch.iter().enumerate() {
            let ev = ahead.next(&p, &batch, n, ev);
            from = Some(from.map_or(ev.ts(), |f: Ts| f.min(ev.ts())));
            // Learning only: what history would have raised is not news now.
            drop(p.process(i, ev, None));
        }
    }
    p.absorb(merged.finish());
    p.engine_mut().finish_training();
    let engine = p.engine();
    state.save(&saved.cursors, engine.model(), engine.reach())?;
    let reach = engine.reach();
    let mut per: Vec<usize> = reach
        .baselines
        .values()
        .map(|b| b.resources.len())
        .collect();
    per.sort_unstable();
    let mut groups: Vec<usize> = reach
        .peers
        .clusters
        .iter()
        .map(|c| c.members.len())
        .collect();
    groups.sort_unstable_by(|a, b| b.cmp(a));
    Ok(Learned {
        input: p.summary(),
        engineers: reach.baselined(),
        resources: reach.resources.len(),
        peer_groups: groups,
        median_resources_per_engineer: per.get(per.len() / 2).copied().unwrap_or(0),
        from,
        until: engine.model().latest(),
        took: started.elapsed(),
    })
}
