//! `reachguard explain PRINCIPAL`: what reachguard believes about one engineer.
//!
//! Reads the state dir (the checkpoint and the findings file; never writes):
//! their baseline, their peer group and groups, the thresholds they are judged
//! by, what they hold (and through which grant or group), what they exercise,
//! their recent new reach and their recent findings.

use std::fmt;
use std::io::BufRead;

use serde::Serialize;

use crate::config::Config;
use crate::detect::{Engine, EngineConfig};
use crate::finding::Finding;
use crate::state::{StateDir, StateError};

/// Why an explanation could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The state dir or checkpoint.
    #[error(transparent)]
    State(#[from] StateError),
    /// Nothing is known about the principal.
    #[error("{0:?} is unknown: no baseline, grant, group or finding names them")]
    Unknown(String),
}

/// A resource with its tier and a number.
#[derive(Debug, Clone, Serialize)]
pub struct Resource {
    /// Name.
    pub resource: String,
    /// Sensitivity tier.
    pub tier: &'static str,
    /// Accesses (exercised) or how it is held (held).
    pub detail: String,
}

/// One window scale's threshold.
#[derive(Debug, Clone, Serialize)]
pub struct Threshold {
    /// `short` or `long`.
    pub window: String,
    /// The novelty a window must reach to alert.
    pub threshold: f64,
    /// Normal novelty per window.
    pub mean: f64,
    /// Its spread.
    pub std: f64,
    /// Own history, peer group or floor.
    pub from: &'static str,
}

/// Everything `explain` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// Who.
    pub principal: String,
    /// Accesses in the baseline.
    pub events: u64,
    /// Days with activity.
    pub active_days: u32,
    /// First and latest access.
    pub seen: Option<(crate::event::Ts, crate::event::Ts)>,
    /// Peer group (cluster) index.
    pub peer_group: Option<u32>,
    /// Other members of the peer group (up to 20).
    pub peers: Vec<String>,
    /// Size of the peer group.
    pub peer_group_size: usize,
    /// Groups and their sizes.
    pub groups: Vec<(String, usize)>,
    /// Thresholds, short and long window.
    pub thresholds: Vec<Threshold>,
    /// What they hold.
    pub held: Vec<Resource>,
    /// What they use, most used first.
    pub exercised: Vec<Resource>,
    /// New reach in the sliding window.
    pub recent_new: Vec<Resource>,
    /// Their latest findings (up to 10).
    pub findings: Vec<Finding>,
}

/// Builds the explanation of `principal` from the state dir of `cfg`.
///
/// Any name the person goes by (`[identities.aliases]`) is explained as their
/// canonical name; a name the canonical one knows nothing about (a grantee as
/// an audit log spells it) is explained as given.
pub fn explain(cfg: &Config, principal: &str) -> Result<Explanation, Error> {
    let state = StateDir::open(&cfg.state_dir)?;
    let saved = state.load()?.unwrap_or_default();
    let engine = Engine::new(saved.model, saved.reach, &EngineConfig::from_config(cfg));
    explain_on(&engine, cfg, principal, |p| recent_findings(&state, p))
}

/// [`explain`] on a running engine (the daemon's, for the incident page);
/// `findings_of` gives a principal's latest findings.
pub fn explain_on(
    engine: &Engine,
    cfg: &Config,
    principal: &str,
    findings_of: impl Fn(&str) -> Vec<Finding>,
) -> Result<Explanation, Error> {
    let canonical = cfg.identities.canonical(principal);
    match explain_as(engine, cfg, &canonical, &findings_of) {
        Err(Error::Unknown(_)) if canonical != principal => {
            explain_as(engine, cfg, principal, &findings_of)
        }
        r => r,
    }
}

fn explain_as(
    engine: &Engine,
    cfg: &Config,
    principal: &str,
    findings_of: &dyn Fn(&str) -> Vec<Finding>,
) -> Result<Explanation, Error> {
    let (model, reach, exp) = (engine.model(), engine.reach(), engine.expansion());
    let tier = |r: &str| cfg.sensitivity.tier_of(r).as_str();
    let pid = reach.principals.get(principal);
    let b = pid.and_then(|p| reach.baselines.get(p));
    let (cluster, mut peers, groups) = exp.peers_of(principal, model);
    let peer_group_size = peers.len() + usize::from(cluster.is_some());
    peers.truncate(20);
    let names = ["short", "long"];
    let lens = [exp.config().short_window, exp.config().long_window];
    let thresholds = exp
        .thresholds(principal)
        .iter()
        .zip(names.iter().zip(lens))
        .map(|(&(threshold, mean, std, from), (n, len))| Threshold {
            window: format!("{n} ({})", humantime::format_duration(len)),
            threshold: round2(threshold),
            mean: round2(mean),
            std: round2(std),
            from,
        })
        .collect();
    let held = model
        .held_reach(principal)
        .into_iter()
        .map(|r| Resource {
            resource: r.to_owned(),
            tier: tier(r),
            detail: match model.how_held(principal, r) {
                Some(Some(g)) => format!("through group {g}"),
                _ => "directly".into(),
            },
        })
        .collect();
    let mut exercised: Vec<(u32, u32)> = b.map(|b| b.resources.sorted()).unwrap_or_default();
    exercised.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let exercised = exercised
        .iter()
        .map(|&(r, n)| {
            let name = reach.resources.name(r);
            Resource {
                resource: name.to_owned(),
                tier: tier(name),
                detail: format!("{n} accesses"),
            }
        })
        .collect();
    let recent_new = pid
        .and_then(|p| reach.recent.get(&p))
        .into_iter()
        .flatten()
        .map(|n| {
            let name = reach.resources.name(n.resource);
            Resource {
                resource: name.to_owned(),
                tier: tier(name),
                detail: format!("first used {} (novelty {:.1})", n.ts, n.score),
            }
        })
        .collect();
    let findings = findings_of(principal);
    if b.is_none()
        && model.groups_of(principal).next().is_none()
        && findings.is_empty()
        && model.held_reach(principal).is_empty()
    {
        return Err(Error::Unknown(principal.to_owned()));
    }
    Ok(Explanation {
        principal: principal.to_owned(),
        events: b.map_or(0, |b| b.events),
        active_days: b.map_or(0, |b| b.days),
        seen: b.map(|b| (b.first, b.last)),
        peer_group: cluster,
        peers,
        peer_group_size,
        groups,
        thresholds,
        held,
        exercised,
        recent_new,
        findings,
    })
}

fn recent_findings(state: &StateDir, principal: &str) -> Vec<Finding> {
    let Ok(file) = std::fs::File::open(state.findings_path()) else {
        return Vec::new();
    };
    let mut out: Vec<Finding> = std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<Finding>(&l).ok())
        .filter(|f| f.principals.iter().any(|p| p == principal))
        .collect();
    let n = out.len();
    out.drain(..n.saturating_sub(10));
    out
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.principal)?;
        match self.seen {
            Some((a, b)) => writeln!(
                f,
                "  baseline: {} accesses on {} days, {} .. {}, {} distinct resources",
                self.events,
                self.active_days,
                a,
                b,
                self.exercised.len()
            )?,
            None => writeln!(f, "  baseline: none yet (judged against peers)")?,
        }
        match self.peer_group {
            Some(c) => writeln!(
                f,
                "  peer group {c} ({} engineers){}{}",
                self.peer_group_size,
                if self.peers.is_empty() { "" } else { ": " },
                self.peers.join(", ")
            )?,
            None => writeln!(f, "  peer group: none")?,
        }
        if !self.groups.is_empty() {
            let g: Vec<String> = self
                .groups
                .iter()
                .map(|(g, n)| format!("{g} ({n})"))
                .collect();
            writeln!(f, "  groups used as peers: {}", g.join(", "))?;
        }
        for t in &self.thresholds {
            writeln!(
                f,
                "  {} window: alerts at novelty {:.1} (normal {:.1} ± {:.1}, from {})",
                t.window, t.threshold, t.mean, t.std, t.from
            )?;
        }
        writeln!(f, "  holds {} resources:", self.held.len())?;
        for r in self.held.iter().take(20) {
            writeln!(f, "    {:<40} {:<8} {}", r.resource, r.tier, r.detail)?;
        }
        writeln!(
            f,
            "  uses {} resources (most used first):",
            self.exercised.len()
        )?;
        for r in self.exercised.iter().take(20) {
            writeln!(f, "    {:<40} {:<8} {}", r.resource, r.tier, r.detail)?;
        }
        if !self.recent_new.is_empty() {
            writeln!(f, "  new reach in the last window:")?;
            for r in &self.recent_new {
                writeln!(f, "    {:<40} {:<8} {}", r.resource, r.tier, r.detail)?;
            }
        }
        writeln!(f, "  recent findings: {}", self.findings.len())?;
        for x in &self.findings {
            writeln!(
                f,
                "    {} [{}] {}: {}",
                x.ts,
                x.severity.as_str(),
                x.kind.as_str(),
                x.summary
            )?;
        }
        Ok(())
    }
}
