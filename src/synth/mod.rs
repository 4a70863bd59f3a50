//! Labelled synthetic organisations, for evaluating detection and for benchmarks.
//!
//! [`generate`] builds an organisation's logs as native events: teams with
//! their own resources (skewed popularity), shared tools, production systems
//! touched by a weekly on-call rotation, critical systems used by a few owners,
//! work hours and quiet weekends, cross-team collaboration, occasional
//! legitimate exploration, new hires and team transfers through an HR actor,
//! routine ticketed grants, agent advice that humans verify before it is
//! followed, and advice nobody acts on. Into the evaluation period it injects
//! labelled [`Case`]s: sudden access to many rare or sensitive resources, slow
//! exploration over an hour, group grants opening a sensitive system to
//! everyone, and grants traced to unverified agent advice.
//!
//! Everything is derived from a seed, so a run can be repeated exactly.
//! [`eval`] replays an organisation through the detection engine and scores it.

pub mod eval;
pub mod independent;
pub mod layout;

use std::collections::BTreeSet;

use crate::event::{
    Advice, AdviceVerified, AdviceViewed, Body, Event, Grant, GranteeType, Membership,
    MembershipOp, Recommendation, Ts,
};
use crate::model::{Pattern, Tier};

/// A small, fast, seedable PRNG (SplitMix64); good enough for test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// An index in `0..n` with Zipf-like skew (index 0 most likely).
    pub fn zipf(&mut self, n: usize) -> usize {
        // Inverse of a continuous 1/x distribution over [1, n + 1).
        let x = ((n as f64 + 1.0).ln() * self.unit()).exp() - 1.0;
        (x as usize).min(n - 1)
    }
}

/// How big and long an organisation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrgSpec {
    /// Engineers at the start.
    pub engineers: usize,
    /// Days of history before the evaluation period (for training).
    pub history_days: u32,
    /// Days of the evaluation period.
    pub eval_days: u32,
    /// Seed.
    pub seed: u64,
    /// Whether to inject expansion cases (off for benchmarks of normal load).
    pub inject: bool,
}

/// What an injected case is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CaseKind {
    /// Many rare or sensitive resources within minutes.
    SuddenExpansion,
    /// One new sensitive resource every few minutes for an hour.
    SlowExploration,
    /// A group grant opening a critical system to everyone.
    GroupGrantSensitive,
    /// A grant following published agent advice nobody verified.
    UnverifiedAdviceGrant,
    /// A grant following advice a human verified first: must be left alone.
    VerifiedAdviceGrant,
    /// A routine grant citing its own ticket shortly after its granter viewed
    /// advice recommending something else: must be left alone.
    RoutineGrantNearAdvice,
}

impl CaseKind {
    /// A short name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseKind::SuddenExpansion => "sudden_expansion",
            CaseKind::SlowExploration => "slow_exploration",
            CaseKind::GroupGrantSensitive => "group_grant_sensitive",
            CaseKind::UnverifiedAdviceGrant => "unverified_advice_grant",
            CaseKind::VerifiedAdviceGrant => "verified_advice_grant",
            CaseKind::RoutineGrantNearAdvice => "routine_grant_near_advice",
        }
    }

    /// Whether the case is one detection must leave alone (no finding of
    /// severity medium or above, no revocation) rather than find.
    pub fn must_be_left_alone(self) -> bool {
        matches!(
            self,
            CaseKind::VerifiedAdviceGrant | CaseKind::RoutineGrantNearAdvice
        )
    }
}

/// An injected, labelled case.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// What it is.
    pub kind: CaseKind,
    /// The engineer expanding (reach cases) or the grant's actor.
    pub principal: String,
    /// The grant (grant cases).
    pub grant_id: Option<String>,
    /// Event time of the first injected event.
    pub start: Ts,
    /// Event time of the last injected event.
    pub end: Ts,
}

/// A generated organisation.
#[derive(Debug, Clone)]
pub struct Org {
    /// All events, sorted by time.
    pub events: Vec<Event>,
    /// History ends (evaluation starts) here.
    pub eval_start: Ts,
    /// The evaluation period ends here.
    pub eval_end: Ts,
    /// Injected cases.
    pub cases: Vec<Case>,
    /// Engineers hired during the evaluation period.
    pub new_hires: BTreeSet<String>,
    /// Engineers on call at some point of the evaluation period.
    pub on_call: BTreeSet<String>,
    /// Engineers moved to another team during the evaluation period.
    pub transfers: BTreeSet<String>,
    /// Engineers present during the evaluation period (for engineer-days).
    pub engineers: usize,
    /// The sensitivity catalogue this organisation uses.
    pub sensitivity: Vec<(Pattern, Tier)>,
    /// The `[agents]` patterns naming this organisation's AI agents.
    pub agents: Vec<Pattern>,
}

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;
const MIN: i64 = 60_000;
/// Monday 2026-01-05 00:00:00 UTC.
const EPOCH: i64 = 1_767_571_200_000;

fn access(ts: i64, who: &str, what: &str) -> Event {
    Event::access(Ts(ts), who, what)
}

fn membership(ts: i64, group: &str, member: &str, op: MembershipOp) -> Event {
    Event {
        ts: Ts(ts),
        id: None,
        body: Body::Membership(Membership {
            actor: "hr-system".into(),
            group: group.into(),
            member: member.into(),
            op,
            grant_id: None,
            reference: Some("HR-onboarding".into()),
            actor_type: Some(crate::event::ActorType::Service),
            target: None,
        }),
    }
}

#[allow(clippy::too_many_arguments)] // one argument per field of the grant it builds
fn grant(
    ts: i64,
    id: String,
    actor: &str,
    grantee: &str,
    group: bool,
    resource: &str,
    reference: &str,
    actor_type: Option<crate::event::ActorType>,
) -> Event {
    Event {
        ts: Ts(ts),
        id: None,
        body: Body::Grant(Grant {
            grant_id: id,
            actor: actor.into(),
            grantee: grantee.into(),
            grantee_type: if group {
                GranteeType::Group
            } else {
                GranteeType::User
            },
            resource: resource.into(),
            role: Some("viewer".into()),
            reference: Some(reference.into()),
            actor_type,
            target: None,
        }),
    }
}

struct Team {
    name: String,
    members: Vec<String>,
    resources: Vec<String>,
    prod: Vec<String>,
    vault: Vec<String>,
    vault_owners: Vec<String>,
    partner: usize,
}

/// Generates an organisation.
pub fn generate(spec: OrgSpec) -> Org {
    let mut rng = Rng::new(spec.seed);
    let n_teams = spec.engineers.div_ceil(8).max(2);
    let mut teams: Vec<Team> = (0..n_teams)
        .map(|t| Team {
            name: format!("t{t:03}"),
            members: Vec::new(),
            resources: (0..12).map(|i| format!("team/t{t:03}/r{i:02}")).collect(),
            prod: (0..3).map(|i| format!("prod/t{t:03}/svc{i}")).collect(),
            vault: (0..2).map(|i| format!("vault/t{t:03}/k{i}")).collect(),
            vault_owners: Vec::new(),
            partner: (t + 1) % n_teams,
        })
        .collect();
    for e in 0..spec.engineers {
        teams[e % n_teams].members.push(format!("e{e:05}"));
    }
    for t in &mut teams {
        t.vault_owners = t.members.iter().take(2).cloned().collect();
    }
    let shared: Vec<String> = (0..10).map(|i| format!("shared/tool{i:02}")).collect();
    // One internal system per injected group grant, so no case re-opens a
    // system an earlier case already opened to everyone.
    let internal: Vec<String> = (0..(spec.engineers / 100).max(2))
        .map(|i| format!("internal/system{i:03}"))
        .collect();

    let total_days = i64::from(spec.history_days + spec.eval_days);
    let eval_start = EPOCH + i64::from(spec.history_days) * DAY;
    let eval_end = EPOCH + total_days * DAY;
    let mut ev: Vec<Event> = Vec::new();
    let mut gid = 0u64;
    let mut next_gid = |prefix: &str| {
        gid += 1;
        format!("{prefix}-{gid}")
    };

    // Day zero: HR sets up teams; team groups hold their resources.
    for t in &teams {
        for m in &t.members {
            ev.push(membership(
                EPOCH,
                &format!("grp/{}", t.name),
                m,
                MembershipOp::Add,
            ));
            ev.push(membership(EPOCH, "eng-all", m, MembershipOp::Add));
        }
        for r in t.resources.iter().chain(&t.prod) {
            ev.push(grant(
                EPOCH,
                next_gid("g"),
                "hr-system",
                &format!("grp/{}", t.name),
                true,
                r,
                "HR-baseline",
                Some(crate::event::ActorType::Service),
            ));
        }
        for (v, o) in t.vault.iter().zip(t.vault_owners.iter().cycle()) {
            ev.push(grant(
                EPOCH,
                next_gid("g"),
                "hr-system",
                o,
                false,
                v,
                "HR-baseline",
                Some(crate::event::ActorType::Service),
            ));
        }
    }
    for r in &shared {
        ev.push(grant(
            EPOCH,
            next_gid("g"),
            "hr-system",
            "eng-all",
            true,
            r,
            "HR-baseline",
            Some(crate::event::ActorType::Service),
        ));
    }

    // Who is in which team over time: new hires and transfers in the evaluation period.
    let mut new_hires = BTreeSet::new();
    let mut transfers = BTreeSet::new();
    let mut on_call = BTreeSet::new();
    // (engineer, team index, from, until)
    let mut tenure: Vec<(String, usize, i64, i64)> = Vec::new();
    for (ti, t) in teams.iter().enumerate() {
        for m in &t.members {
            tenure.push((m.clone(), ti, EPOCH, eval_end));
        }
    }
    let hires = (spec.engineers / 33).max(2);
    for h in 0..hires {
        let name = format!("n{h:04}");
        let ti = rng.below(n_teams);
        let day = eval_start
            + (1 + rng.below(spec.eval_days.saturating_sub(2).max(1) as usize) as i64) * DAY
            + 8 * HOUR;
        ev.push(membership(
            day,
            &format!("grp/{}", teams[ti].name),
            &name,
            MembershipOp::Add,
        ));
        ev.push(membership(day, "eng-all", &name, MembershipOp::Add));
        tenure.push((name.clone(), ti, day + 30 * MIN, eval_end));
        new_hires.insert(name);
    }
    let moves = (spec.engineers / 50).max(1);
    for _ in 0..moves {
        let idx = rng.below(spec.engineers);
        let (name, from_team) = (tenure[idx].0.clone(), tenure[idx].1);
        if transfers.contains(&name) || teams[from_team].vault_owners.contains(&name) {
            continue;
        }
        let to_team = (from_team + 1 + rng.below(n_teams - 1)) % n_teams;
        let day = eval_start
            + (1 + rng.below(spec.eval_days.saturating_sub(2).max(1) as usize) as i64) * DAY
            + 8 * HOUR;
        ev.push(membership(
            day,
            &format!("grp/{}", teams[from_team].name),
            &name,
            MembershipOp::Remove,
        ));
        ev.push(membership(
            day,
            &format!("grp/{}", teams[to_team].name),
            &name,
            MembershipOp::Add,
        ));
        tenure[idx].3 = day;
        tenure.push((name.clone(), to_team, day + 30 * MIN, eval_end));
        transfers.insert(name);
    }

    // Daily work.
    for (name, ti, from, until) in &tenure {
        let t = &teams[*ti];
        let team_members = t.members.len().max(1);
        let pos = t.members.iter().position(|m| m == name).unwrap_or(0);
        let start_hour = 8 + rng.below(3) as i64;
        for day in 0..total_days {
            let d0 = EPOCH + day * DAY;
            if d0 + DAY <= *from || d0 >= *until {
                continue;
            }
            let weekday = day % 7 < 5;
            let week = day / 7;
            let on_call_now =
                (week as usize + *ti) % team_members == pos && !new_hires.contains(name);
            if on_call_now && d0 >= eval_start {
                on_call.insert(name.clone());
            }
            let n = if weekday {
                15 + rng.below(15)
            } else if rng.chance(0.1) {
                1 + rng.below(4)
            } else {
                0
            };
            for _ in 0..n {
                let ts = d0
                    + start_hour * HOUR
                    + rng.below(9 * 60) as i64 * MIN
                    + rng.below(60_000) as i64;
                if ts < *from || ts >= *until {
                    continue;
                }
                let roll = rng.unit();
                let r = if roll < 0.70 {
                    &t.resources[rng.zipf(t.resources.len())]
                } else if roll < 0.90 {
                    &shared[rng.zipf(shared.len())]
                } else if roll < 0.96 {
                    &teams[t.partner].resources[rng.zipf(3)]
                } else if t.vault_owners.contains(name) {
                    &t.vault[rng.below(t.vault.len())]
                } else {
                    &t.resources[rng.zipf(4)]
                };
                ev.push(access(ts, name, r));
            }
            if on_call_now {
                // On call: production at any hour, every day of the week.
                for _ in 0..(3 + rng.below(5)) {
                    let ts = d0 + rng.below(24 * 60) as i64 * MIN;
                    if ts >= *from && ts < *until {
                        ev.push(access(ts, name, &t.prod[rng.below(t.prod.len())]));
                    }
                }
            }
            // Occasional legitimate exploration: one less-used resource of another team.
            if weekday && rng.chance(0.02) {
                let other = &teams[rng.below(n_teams)];
                let ts = d0 + 11 * HOUR + rng.below(6 * 60) as i64 * MIN;
                if ts >= *from && ts < *until {
                    ev.push(access(ts, name, &other.resources[4 + rng.below(8)]));
                }
            }
        }
    }

    // Routine ticketed grants, verified agent advice, advice nobody acts on.
    for day in 0..total_days {
        if day % 7 >= 5 {
            continue;
        }
        let d0 = EPOCH + day * DAY;
        for _ in 0..(1 + spec.engineers / 200) {
            let t = &teams[rng.below(n_teams)];
            let who = &t.members[rng.below(t.members.len())];
            let r = &t.resources[rng.below(t.resources.len())];
            ev.push(grant(
                d0 + 10 * HOUR,
                next_gid("g"),
                &t.members[0],
                who,
                false,
                r,
                &format!("TICKET-{}", rng.below(90_000) + 10_000),
                None,
            ));
        }
        if rng.chance(0.5) {
            let t = &teams[rng.below(n_teams)];
            let who = t.members[rng.below(t.members.len())].clone();
            let lead = t.members[0].clone();
            let r = t.resources[rng.below(t.resources.len())].clone();
            let aid = next_gid("adv");
            let at = d0 + 13 * HOUR;
            ev.push(Event {
                ts: Ts(at),
                id: None,
                body: Body::Advice(Advice {
                    advice_id: aid.clone(),
                    agent: "agent:kb-helper".into(),
                    requested_by: Some(lead.clone()),
                    channel: Some(format!("chat/dm-{lead}")),
                    published: false,
                    recommends: vec![Recommendation {
                        resource: r.clone(),
                        role: Some("viewer".into()),
                        grantee: Some(who.clone()),
                    }],
                    summary: None,
                }),
            });
            let reviewer = t.members[1 % t.members.len()].clone();
            ev.push(Event {
                ts: Ts(at + 20 * MIN),
                id: None,
                body: Body::AdviceVerified(AdviceVerified {
                    advice_id: aid.clone(),
                    verifier: reviewer,
                }),
            });
            ev.push(grant(
                at + 40 * MIN,
                next_gid("g"),
                &lead,
                &who,
                false,
                &r,
                &format!("{aid} reviewed"),
                None,
            ));
        }
        if rng.chance(0.3) {
            let t = &teams[rng.below(n_teams)];
            let who = t.members[rng.below(t.members.len())].clone();
            ev.push(Event {
                ts: Ts(d0 + 15 * HOUR),
                id: None,
                body: Body::Advice(Advice {
                    advice_id: next_gid("adv"),
                    agent: "agent:kb-helper".into(),
                    requested_by: Some(who.clone()),
                    channel: None,
                    published: false,
                    recommends: vec![Recommendation {
                        resource: teams[t.partner].resources[0].clone(),
                        role: None,
                        grantee: Some(who),
                    }],
                    summary: None,
                }),
            });
        }
    }

    let mut cases = Vec::new();
    if spec.inject {
        inject(
            &mut rng,
            spec,
            &teams,
            &internal,
            &new_hires,
            &transfers,
            eval_start,
            &mut ev,
            &mut cases,
            &mut next_gid,
        );
    }

    ev.sort_by_key(|e| e.ts);
    let sensitivity = vec![
        (Pattern::new("internal/*").expect("valid"), Tier::Critical),
        (Pattern::new("vault/*").expect("valid"), Tier::Critical),
        (Pattern::new("prod/*").expect("valid"), Tier::High),
        (Pattern::new("team/*/r0[0-3]").expect("valid"), Tier::Medium),
    ];
    Org {
        events: ev,
        eval_start: Ts(eval_start),
        eval_end: Ts(eval_end),
        cases,
        new_hires,
        on_call,
        transfers,
        engineers: spec.engineers,
        sensitivity,
        agents: vec![Pattern::new("agent:*").expect("valid")],
    }
}

#[allow(clippy::too_many_arguments)]
fn inject(
    rng: &mut Rng,
    spec: OrgSpec,
    teams: &[Team],
    internal: &[String],
    new_hires: &BTreeSet<String>,
    transfers: &BTreeSet<String>,
    eval_start: i64,
    ev: &mut Vec<Event>,
    cases: &mut Vec<Case>,
    next_gid: &mut impl FnMut(&str) -> String,
) {
    let per_kind = (spec.engineers / 100).max(2);
    let n_teams = teams.len();
    let mut used = BTreeSet::new();
    let mut pick_engineer = |rng: &mut Rng| loop {
        let ti = rng.below(n_teams);
        let t = &teams[ti];
        let m = t.members[rng.below(t.members.len())].clone();
        if !new_hires.contains(&m) && !transfers.contains(&m) && used.insert(m.clone()) {
            return (ti, m);
        }
    };
    // Working hours of a weekday in the evaluation period.
    let when = |rng: &mut Rng| {
        let days = i64::from(spec.eval_days);
        loop {
            let d = rng.below(days as usize) as i64;
            let day = eval_start + d * DAY;
            if ((day - EPOCH) / DAY) % 7 < 5 {
                return day + 10 * HOUR + rng.below(6 * 60) as i64 * MIN;
            }
        }
    };
    let foreign_sensitive = |rng: &mut Rng, own: usize, n: usize| -> Vec<String> {
        let mut out = BTreeSet::new();
        while out.len() < n {
            let t = &teams[(own + 1 + rng.below(n_teams - 1)) % n_teams];
            let r = match rng.below(3) {
                0 => t.prod[rng.below(t.prod.len())].clone(),
                1 => t.vault[rng.below(t.vault.len())].clone(),
                _ => t.resources[4 + rng.below(8)].clone(),
            };
            out.insert(r);
        }
        out.into_iter().collect::<Vec<_>>()
    };
    for _ in 0..per_kind {
        // Sudden: 6 to 10 rare or sensitive resources in a few minutes.
        let (ti, p) = pick_engineer(rng);
        let start = when(rng);
        let count = 6 + rng.below(5);
        let rs = foreign_sensitive(rng, ti, count);
        let mut t = start;
        for (i, r) in rs.iter().enumerate() {
            if i > 0 {
                t += 20_000 + rng.below(40_000) as i64;
            }
            ev.push(access(t, &p, r));
        }
        cases.push(Case {
            kind: CaseKind::SuddenExpansion,
            principal: p,
            grant_id: None,
            start: Ts(start),
            end: Ts(t),
        });

        // Slow: one new sensitive resource every 6 to 9 minutes for about an hour.
        let (ti, p) = pick_engineer(rng);
        let start = when(rng);
        let rs = foreign_sensitive(rng, ti, 9);
        let mut t = start;
        for (i, r) in rs.iter().enumerate() {
            if i > 0 {
                t += (6 + rng.below(4) as i64) * MIN;
            }
            ev.push(access(t, &p, r));
        }
        cases.push(Case {
            kind: CaseKind::SlowExploration,
            principal: p,
            grant_id: None,
            start: Ts(start),
            end: Ts(t),
        });

        // A group grant opening a critical system to everyone.
        let (_, actor) = pick_engineer(rng);
        let start = when(rng);
        let g = next_gid("g");
        let system = &internal[cases
            .iter()
            .filter(|c| c.kind == CaseKind::GroupGrantSensitive)
            .count()];
        ev.push(grant(
            start,
            g.clone(),
            &actor,
            "eng-all",
            true,
            system,
            "quick fix",
            None,
        ));
        cases.push(Case {
            kind: CaseKind::GroupGrantSensitive,
            principal: actor,
            grant_id: Some(g),
            start: Ts(start),
            end: Ts(start),
        });

        // Published advice nobody verified, viewed, then followed.
        let (ti, actor) = pick_engineer(rng);
        let start = when(rng);
        let grantee = teams[ti].members[rng.below(teams[ti].members.len())].clone();
        let r = foreign_sensitive(rng, ti, 1).remove(0);
        let aid = next_gid("adv");
        ev.push(Event {
            ts: Ts(start),
            id: None,
            body: Body::Advice(Advice {
                advice_id: aid.clone(),
                agent: "agent:forum-helper".into(),
                requested_by: Some(grantee.clone()),
                channel: Some(format!("forum/q-{aid}")),
                published: true,
                recommends: vec![Recommendation {
                    resource: r.clone(),
                    role: Some("viewer".into()),
                    grantee: Some(grantee.clone()),
                }],
                summary: None,
            }),
        });
        ev.push(Event {
            ts: Ts(start + 3 * MIN),
            id: None,
            body: Body::AdviceViewed(AdviceViewed {
                advice_id: aid.clone(),
                principal: actor.clone(),
            }),
        });
        let g = next_gid("g");
        ev.push(grant(
            start + 6 * MIN,
            g.clone(),
            &actor,
            &grantee,
            false,
            &r,
            "as the forum said",
            None,
        ));
        cases.push(Case {
            kind: CaseKind::UnverifiedAdviceGrant,
            principal: actor,
            grant_id: Some(g),
            start: Ts(start + 6 * MIN),
            end: Ts(start + 6 * MIN),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_sorted_and_labelled() {
        let spec = OrgSpec {
            engineers: 40,
            history_days: 7,
            eval_days: 7,
            seed: 3,
            inject: true,
        };
        let a = generate(spec);
        let b = generate(spec);
        assert_eq!(a.events, b.events);
        assert!(a.events.windows(2).all(|w| w[0].ts <= w[1].ts));
        assert_eq!(a.cases.len(), 8, "two of each kind for a small org");
        assert!(
            a.cases
                .iter()
                .all(|c| c.start >= a.eval_start && c.end <= a.eval_end)
        );
        assert!(!a.new_hires.is_empty());
        assert!(!a.on_call.is_empty());
        let c = generate(OrgSpec { seed: 4, ..spec });
        assert_ne!(a.events, c.events, "another seed, another organisation");
    }

    #[test]
    fn zipf_prefers_low_indexes() {
        let mut r = Rng::new(1);
        let mut counts = [0usize; 10];
        for _ in 0..10_000 {
            counts[r.zipf(10)] += 1;
        }
        assert!(counts[0] > counts[3] && counts[3] > counts[9], "{counts:?}");
    }
}
