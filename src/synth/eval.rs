//! Scores detection on a generated organisation.
//!
//! The history period is fed to the engine first (as `reachguard train` does)
//! and its findings discarded; then the evaluation period is fed and every
//! finding is matched against the injected cases:
//!
//! - sudden expansion / slow exploration: a `reach_expansion` naming the
//!   engineer between the first injected access and 10 minutes after the last;
//! - group grant / unverified advice grant: a `grant_expansion` /
//!   `unverified_agent_grant` naming the injected grant (necessarily on the
//!   grant event itself).
//!
//! A false alarm is an expansion finding of severity medium or above that no
//! injected case explains. Rates are per 1,000 engineer-days of the evaluation
//! period.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use super::{CaseKind, Org};
use crate::detect::{DetectionConfig, Engine, EngineConfig, Origin, Reach};
use crate::finding::{Finding, FindingKind, Severity};
use crate::model::{Identities, Model, Pattern, Sensitivity};

/// Results for one kind of case.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KindResult {
    /// Cases injected.
    pub cases: usize,
    /// Cases detected.
    pub detected: usize,
    /// Time to detect of each detected case, in event time.
    pub ttd: Vec<Duration>,
}

impl KindResult {
    /// Median time to detect.
    pub fn median_ttd(&self) -> Option<Duration> {
        let mut v = self.ttd.clone();
        v.sort();
        v.get(v.len() / 2).copied()
    }

    /// Longest time to detect.
    pub fn max_ttd(&self) -> Option<Duration> {
        self.ttd.iter().max().copied()
    }
}

/// The evaluation of one organisation.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Engineers.
    pub engineers: usize,
    /// Events fed.
    pub events: usize,
    /// Per case kind.
    pub kinds: BTreeMap<CaseKind, KindResult>,
    /// Expansion findings of severity >= medium that no case explains.
    pub false_alarms: Vec<Finding>,
    /// Engineer-days in the evaluation period.
    pub engineer_days: f64,
    /// False alarms naming engineers hired during the evaluation period.
    pub new_hire_alarms: usize,
    /// False alarms naming engineers while on call.
    pub on_call_alarms: usize,
    /// False alarms naming engineers who changed teams.
    pub transfer_alarms: usize,
    /// Findings by kind in the evaluation period.
    pub findings: BTreeMap<&'static str, usize>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Report {
    /// Detected / injected over every case.
    pub fn recall(&self) -> f64 {
        let (d, c) = self
            .kinds
            .values()
            .fold((0, 0), |(d, c), k| (d + k.detected, c + k.cases));
        if c == 0 { 1.0 } else { d as f64 / c as f64 }
    }

    /// False alarms per 1,000 engineer-days.
    pub fn false_alarm_rate(&self) -> f64 {
        self.false_alarms.len() as f64 * 1000.0 / self.engineer_days.max(1.0)
    }
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.0}s", d.as_secs_f64()))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} engineers, {} events, {:.0} engineer-days evaluated in {:.1}s",
            self.engineers,
            self.events,
            self.engineer_days,
            self.elapsed.as_secs_f64()
        )?;
        for (k, r) in &self.kinds {
            writeln!(
                f,
                "  {:<24} {}/{} detected, time to detect median {} max {}",
                k.as_str(),
                r.detected,
                r.cases,
                secs(r.median_ttd()),
                secs(r.max_ttd())
            )?;
        }
        writeln!(
            f,
            "  recall {:.3}; false alarms {} ({:.2} per 1,000 engineer-days); new hires flagged {}, on-call flagged {}, transfers flagged {}",
            self.recall(),
            self.false_alarms.len(),
            self.false_alarm_rate(),
            self.new_hire_alarms,
            self.on_call_alarms,
            self.transfer_alarms
        )?;
        for fa in self.false_alarms.iter().take(5) {
            writeln!(
                f,
                "    false alarm: [{}] {}",
                fa.severity.as_str(),
                fa.summary
            )?;
        }
        Ok(())
    }
}

/// The engine settings used for an organisation.
pub fn engine_config(org: &Org) -> EngineConfig {
    let detection = DetectionConfig {
        provisioners: vec![Pattern::new("hr-system").expect("valid")],
        ..DetectionConfig::default()
    };
    EngineConfig {
        identities: Identities::new(vec![Pattern::new("agent:*").expect("valid")]),
        sensitivity: Sensitivity::new(org.sensitivity.clone()),
        trace_window: Duration::from_secs(24 * 3600),
        detection,
        limits: crate::detect::Limits::default(),
        min_confidence: 0.7,
    }
}

/// Feeds `org` through a fresh engine and scores it.
pub fn evaluate(org: &Org) -> Report {
    evaluate_with(org, &engine_config(org))
}

/// Feeds `org` through a fresh engine with `cfg` and scores it.
pub fn evaluate_with(org: &Org, cfg: &EngineConfig) -> Report {
    let started = Instant::now();
    let mut engine = Engine::new(Model::default(), Reach::default(), cfg);
    let split = org.events.partition_point(|e| e.ts < org.eval_start);
    for e in &org.events[..split] {
        engine.observe(e, Origin::TRUSTED);
    }
    engine.finish_training();
    let mut findings = Vec::new();
    for e in &org.events[split..] {
        findings.extend(
            engine
                .observe(e, Origin::TRUSTED)
                .into_iter()
                .map(|d| d.finding),
        );
    }
    score(org, &findings, started.elapsed())
}

/// Matches findings against the cases.
pub fn score(org: &Org, findings: &[Finding], elapsed: Duration) -> Report {
    let mut r = Report {
        engineers: org.engineers,
        events: org.events.len(),
        engineer_days: (org.engineers + org.new_hires.len()) as f64
            * (org.eval_end.0 - org.eval_start.0) as f64
            / 86_400_000.0,
        elapsed,
        ..Report::default()
    };
    for f in findings {
        *r.findings.entry(f.kind.as_str()).or_default() += 1;
    }
    const GRACE: i64 = 10 * 60_000;
    let mut explained = vec![false; findings.len()];
    for c in &org.cases {
        let k = r.kinds.entry(c.kind).or_default();
        k.cases += 1;
        let hit = findings.iter().enumerate().find(|(_, f)| match c.kind {
            CaseKind::SuddenExpansion | CaseKind::SlowExploration => {
                f.kind == FindingKind::ReachExpansion
                    && f.principals.contains(&c.principal)
                    && f.ts >= c.start
                    && f.ts.0 <= c.end.0 + GRACE
            }
            CaseKind::GroupGrantSensitive => {
                f.kind == FindingKind::GrantExpansion && f.grant_id == c.grant_id
            }
            CaseKind::UnverifiedAdviceGrant => {
                f.kind == FindingKind::UnverifiedAgentGrant && f.grant_id == c.grant_id
            }
        });
        if let Some((_, f)) = hit {
            k.detected += 1;
            k.ttd
                .push(Duration::from_millis((f.ts.0 - c.start.0).max(0) as u64));
        }
        // Everything else a case causes is explained by it, not a false alarm.
        for (i, f) in findings.iter().enumerate() {
            let same_grant = c.grant_id.is_some() && f.grant_id == c.grant_id;
            let same_burst = f.principals.contains(&c.principal)
                && f.ts >= c.start
                && f.ts.0 <= c.end.0 + 2 * 3_600_000;
            if same_grant || same_burst {
                explained[i] = true;
            }
        }
    }
    for (i, f) in findings.iter().enumerate() {
        let expansion = matches!(
            f.kind,
            FindingKind::ReachExpansion | FindingKind::GrantExpansion
        );
        if expansion && f.severity >= Severity::Medium && !explained[i] {
            let names = |set: &std::collections::BTreeSet<String>| {
                f.principals.iter().any(|p| set.contains(p))
            };
            r.new_hire_alarms += usize::from(names(&org.new_hires));
            r.on_call_alarms += usize::from(names(&org.on_call));
            r.transfer_alarms += usize::from(names(&org.transfers));
            r.false_alarms.push(f.clone());
        }
    }
    r
}
