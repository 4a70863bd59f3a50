//! Scores detection on a labelled organisation, whichever generator made it
//! ([`super::generate`] or [`super::independent`]): the scoring is the same.
//!
//! The history period is fed to the engine first (as `reachguard train` does)
//! and its findings discarded; then the evaluation period is fed, every
//! revocation target goes through the default response policy (dry run), and
//! every finding is matched against the injected cases:
//!
//! - sudden expansion / slow exploration: a `reach_expansion` naming the
//!   engineer between the first injected access and 10 minutes after the last;
//! - group grant / unverified advice grant: a `grant_expansion` /
//!   `unverified_agent_grant` naming the injected grant (necessarily on the
//!   grant event itself);
//! - cases to leave alone (a grant after verified advice, a routine grant near
//!   unrelated advice) are disturbed by a finding of severity medium or above
//!   on their grant, or by a revocation of it.
//!
//! Revocation recall is the share of unverified advice grants the policy
//! revokes; a wrong revocation is one of any other grant. A false alarm is an
//! expansion or `unverified_agent_grant` finding of severity medium or above
//! that no case to find explains. Rates are per 1,000 engineer-days of the
//! evaluation period.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use super::{CaseKind, Org};
use crate::detect::{DetectionConfig, Engine, EngineConfig, Origin, Reach};
use crate::finding::{Action, ActionKind, ActionStatus, Finding, FindingKind, Severity};
use crate::model::{Identities, Model, Sensitivity};
use crate::respond::{Decision, Mode, Policy};

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

/// Results for one kind of case that must be left alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeftAlone {
    /// Cases injected.
    pub cases: usize,
    /// Cases with a finding of severity medium or above, or a revocation.
    pub disturbed: usize,
}

/// The evaluation of one organisation.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Engineers.
    pub engineers: usize,
    /// Events fed.
    pub events: usize,
    /// Per kind of case to find.
    pub kinds: BTreeMap<CaseKind, KindResult>,
    /// Per kind of case to leave alone.
    pub left_alone: BTreeMap<CaseKind, LeftAlone>,
    /// Grants traced to unverified advice (cases).
    pub incidents: usize,
    /// Of those, how many the policy revoked.
    pub incidents_revoked: usize,
    /// Grants revoked that no unverified advice case names.
    pub wrong_revocations: Vec<String>,
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

    /// Revoked / injected grants traced to unverified advice.
    pub fn revocation_recall(&self) -> f64 {
        if self.incidents == 0 {
            1.0
        } else {
            self.incidents_revoked as f64 / self.incidents as f64
        }
    }

    /// Longest time to detect a case of `kind`, if any was detected.
    pub fn max_ttd(&self, kind: CaseKind) -> Option<Duration> {
        self.kinds.get(&kind).and_then(KindResult::max_ttd)
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
        for (k, r) in &self.left_alone {
            writeln!(
                f,
                "  {:<24} {}/{} left alone",
                k.as_str(),
                r.cases - r.disturbed,
                r.cases
            )?;
        }
        writeln!(
            f,
            "  revocation recall {:.3} ({}/{}), wrong revocations {}",
            self.revocation_recall(),
            self.incidents_revoked,
            self.incidents,
            self.wrong_revocations.len()
        )?;
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

/// The engine settings used for an organisation: the shipped defaults, with
/// the organisation's own `[agents]` and `[sensitivity]` (what its operator
/// writes) and no `provisioners` named: HR and identity-sync actors are
/// recognised by behaviour.
pub fn engine_config(org: &Org) -> EngineConfig {
    EngineConfig {
        identities: Identities::new(org.agents.clone()),
        sensitivity: Sensitivity::new(org.sensitivity.clone()),
        trace_window: Duration::from_secs(24 * 3600),
        detection: DetectionConfig::default(),
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
    let mut policy = Policy::new(
        Mode::DryRun,
        cfg.min_confidence,
        Vec::new(),
        u32::MAX,
        false,
    );
    for e in &org.events[split..] {
        for d in engine.observe(e, Origin::TRUSTED) {
            let mut f = d.finding;
            if let Some(t) = &d.target {
                let status = match policy.decide(t, Instant::now()) {
                    Decision::Execute | Decision::DryRun => ActionStatus::DryRun,
                    Decision::Suppressed(..) => ActionStatus::Suppressed,
                    Decision::Unhandled(status, _) => status,
                };
                f.action = Some(Action {
                    kind: ActionKind::Revoke,
                    grant_id: t.grant_id.clone(),
                    status,
                    reason: None,
                });
            }
            findings.push(f);
        }
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
    // A revocation decided (executed, or reported in dry run) per grant.
    let revoked: BTreeSet<&str> = findings
        .iter()
        .filter_map(|f| f.action.as_ref())
        .filter(|a| matches!(a.status, ActionStatus::Executed | ActionStatus::DryRun))
        .map(|a| a.grant_id.as_str())
        .collect();
    let mut explained = vec![false; findings.len()];
    for c in &org.cases {
        let on_grant = |f: &Finding| c.grant_id.is_some() && f.grant_id == c.grant_id;
        if c.kind.must_be_left_alone() {
            let e = r.left_alone.entry(c.kind).or_default();
            e.cases += 1;
            let flagged = findings
                .iter()
                .any(|f| on_grant(f) && f.severity >= Severity::Medium);
            let was_revoked = c.grant_id.as_deref().is_some_and(|g| revoked.contains(g));
            e.disturbed += usize::from(flagged || was_revoked);
            continue;
        }
        if c.kind == CaseKind::UnverifiedAdviceGrant {
            r.incidents += 1;
            let g = c.grant_id.as_deref().unwrap_or_default();
            r.incidents_revoked += usize::from(revoked.contains(g));
        }
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
            CaseKind::VerifiedAdviceGrant | CaseKind::RoutineGrantNearAdvice => false,
        });
        if let Some((_, f)) = hit {
            k.detected += 1;
            k.ttd
                .push(Duration::from_millis((f.ts.0 - c.start.0).max(0) as u64));
        }
        // Everything else a case causes is explained by it, not a false alarm.
        for (i, f) in findings.iter().enumerate() {
            let same_burst = f.principals.contains(&c.principal)
                && f.ts >= c.start
                && f.ts.0 <= c.end.0 + 2 * 3_600_000;
            if on_grant(f) || same_burst {
                explained[i] = true;
            }
        }
    }
    let cases: BTreeSet<&str> = org
        .cases
        .iter()
        .filter(|c| c.kind == CaseKind::UnverifiedAdviceGrant)
        .filter_map(|c| c.grant_id.as_deref())
        .collect();
    r.wrong_revocations = revoked
        .iter()
        .filter(|g| !cases.contains(*g))
        .map(|g| (*g).to_owned())
        .collect();
    for (i, f) in findings.iter().enumerate() {
        let alarm = matches!(
            f.kind,
            FindingKind::ReachExpansion
                | FindingKind::GrantExpansion
                | FindingKind::UnverifiedAgentGrant
        );
        if alarm && f.severity >= Severity::Medium && !explained[i] {
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
