//! Detection: the pure core that turns events into findings.
//!
//! Sits after `decode` and before `respond`. [`Engine::observe`] takes one event,
//! judges it against the model *before* applying it (a grant is judged at the
//! moment it happens, before anyone uses it), then applies it to the model. No
//! I/O happens here, so replay, the daemon and the tests all run the same code.
//!
//! Findings produced here:
//! - `unverified_agent_grant`: a privilege-increasing grant or membership add that
//!   traces (see [`provenance`]) to agent advice no human verified before it. It
//!   carries a [`RevocationTarget`] for the response stage.
//! - `unreviewed_agent_publish`: an agent published advice, unverified.
//! - `reach_expansion` and `grant_expansion` ([`expansion`]): new reach far
//!   beyond the engineer's own ([`reach`]) and their peers' ([`peers`]) normal.

pub mod baseline;
pub mod expansion;
pub mod peers;
pub mod provenance;
pub mod reach;

use std::time::Duration;

use serde_json::json;

use crate::event::{
    AccessRef, ActorType, Body, Event, EventRef, Grant, GranteeType, Membership, MembershipOp, Ts,
};
use crate::finding::{Finding, FindingKind, Severity, finding_id};
use crate::model::catalogue::{self, Verdict};
use crate::model::{Identities, Model, SawHow, Sensitivity, Tier};

pub use expansion::{DetectionConfig, Expansion};
pub use provenance::{Trace, trace};
pub use reach::Reach;

/// What the engine needs from the configuration.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Agent recognition.
    pub identities: Identities,
    /// Sensitivity catalogue.
    pub sensitivity: Sensitivity,
    /// Provenance trace window.
    pub trace_window: Duration,
    /// Expansion hyper-parameters.
    pub detection: DetectionConfig,
    /// Memory caps.
    pub limits: Limits,
    /// The least trace confidence that is acted on (`[response]
    /// min_confidence`): a weaker trace is reported at `low` severity only.
    pub min_confidence: f64,
}

/// Caps on what the engine keeps in memory (`[limits]`). Past a cap the least
/// recently active (or oldest) entries are forgotten and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Principals with a baseline.
    pub max_principals: usize,
    /// Resources in one principal's baseline.
    pub max_resources_per_principal: usize,
    /// Pieces of advice remembered.
    pub max_advice: usize,
    /// Grants remembered (revoked ones are forgotten first).
    pub max_grants: usize,
    /// Files the sources keep open at once.
    pub max_open_files: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_principals: 200_000,
            max_resources_per_principal: 2_000,
            max_advice: 100_000,
            max_grants: 1_000_000,
            max_open_files: 1024,
        }
    }
}

/// Where an event came from, as far as detection cares.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    /// Whether advice, verification and view events from this source count.
    pub trust_advice: bool,
    /// The input format the event was read in: a revocation of a grant it
    /// reports is routed to the hooks of this format.
    pub format: crate::decode::Format,
}

impl Origin {
    /// A fully trusted origin of native events.
    pub const TRUSTED: Origin = Origin {
        trust_advice: true,
        format: crate::decode::Format::Native,
    };

    /// A source of `format` whose advice counts if `trust_advice`.
    pub fn new(format: crate::decode::Format, trust_advice: bool) -> Origin {
        Origin {
            trust_advice,
            format,
        }
    }
}

/// What a revocation would take back.
#[derive(Debug, Clone, PartialEq)]
pub struct RevocationTarget {
    /// A grant or a membership.
    pub kind: TargetKind,
    /// The grant id (for a membership without one: `membership:GROUP:MEMBER`).
    pub grant_id: String,
    /// The resource (grants only).
    pub resource: Option<String>,
    /// The grantee (grants only).
    pub grantee: Option<String>,
    /// User or group (grants only).
    pub grantee_type: Option<GranteeType>,
    /// The group (memberships only).
    pub group: Option<String>,
    /// The member (memberships only).
    pub member: Option<String>,
    /// The trace's confidence.
    pub confidence: f64,
    /// Whether the grant expands reach beyond baseline (`grant_expansion`);
    /// `None` when not known, which the policy treats as expanding.
    pub expands: Option<bool>,
    /// What undoing it takes, as the decoder read it (none for native events).
    pub undo: Option<Box<crate::undo::Target>>,
    /// The input format the grant was read in: hooks are routed by it. The
    /// engine does not know it; the pipeline sets it (native until then).
    pub format: crate::decode::Format,
}

/// What kind of privilege a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// A `grant` event.
    Grant,
    /// A `membership` add.
    Membership,
}

impl TargetKind {
    /// The payload's `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Grant => "grant",
            TargetKind::Membership => "membership",
        }
    }
}

/// A finding, and what to revoke if the policy agrees.
#[derive(Debug, Clone)]
pub struct Detection {
    /// The finding (its `action` is filled in by `respond`).
    pub finding: Finding,
    /// Set for findings that call for revoking a grant.
    pub target: Option<RevocationTarget>,
}

/// Counters the engine keeps about what it ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Advice-related events dropped because their source is not trusted for advice.
    pub untrusted_advice_ignored: u64,
    /// Grants, revokes and membership changes that repeated a known state.
    pub duplicates: u64,
    /// Advice, grants and sightings forgotten by the memory caps.
    pub evicted: crate::model::Evicted,
    /// Untraced changes forgotten before their trace window ended
    /// ([`MAX_UNTRACED`]).
    pub untraced_forgotten: u64,
}

/// `ev` with every name of a person acting (not of grantees, which revocation
/// hooks must find as the source wrote them) replaced by its canonical name.
fn canonical_people<'e>(ids: &Identities, ev: &'e Event) -> std::borrow::Cow<'e, Event> {
    use std::borrow::Cow;
    fn swap(ids: &Identities, name: &mut String, changed: &mut bool) {
        if let Cow::Owned(c) = ids.canonical(name) {
            *name = c;
            *changed = true;
        }
    }
    let mut e = ev.clone();
    let mut changed = false;
    match &mut e.body {
        Body::Access(a) => swap(ids, &mut a.principal, &mut changed),
        Body::Grant(g) => swap(ids, &mut g.actor, &mut changed),
        Body::Revoke(r) => swap(ids, &mut r.actor, &mut changed),
        Body::Membership(m) => swap(ids, &mut m.actor, &mut changed),
        Body::Advice(a) => {
            if let Some(r) = &mut a.requested_by {
                swap(ids, r, &mut changed);
            }
        }
        Body::AdviceViewed(v) => swap(ids, &mut v.principal, &mut changed),
        Body::AdviceVerified(v) => swap(ids, &mut v.verifier, &mut changed),
    }
    if changed {
        Cow::Owned(e)
    } else {
        Cow::Borrowed(ev)
    }
}

/// "group eng-all viewer on acl/x": a grant, for summaries.
/// `grantee` is the name to show (a person's canonical name).
fn grant_what(g: &Grant, grantee: &str) -> String {
    format!(
        "{}{} {}{}",
        if g.grantee_type == GranteeType::Group {
            "group "
        } else {
            ""
        },
        grantee,
        g.role
            .as_deref()
            .map(|r| format!("{r} on "))
            .unwrap_or_default(),
        g.resource
    )
}

/// How many grants no advice explained are remembered, in case the agent call
/// behind one is reported late ([`Engine::settle`]); beyond it the oldest are
/// forgotten.
pub const MAX_UNTRACED: usize = 10_000;

/// What the engine made of a privilege change when it saw it, besides its trace.
#[derive(Debug, Clone)]
struct Judged {
    actor_type: ActorType,
    /// Who gains it: a person's canonical name, or the group.
    grantee: String,
    tier: Tier,
    affected: Vec<String>,
    expands: bool,
    format: crate::decode::Format,
}

/// A grant or membership add.
#[derive(Debug, Clone)]
enum Change {
    Grant(Grant),
    /// With the resources the group held.
    Membership(Membership, Vec<String>),
}

/// A privilege change no advice explained when it was seen.
#[derive(Debug, Clone)]
struct Untraced {
    ts: Ts,
    change: Change,
    judged: Judged,
}

impl Change {
    fn as_ref(&self) -> ChangeRef<'_> {
        match self {
            Change::Grant(g) => ChangeRef::Grant(g),
            Change::Membership(m, resources) => ChangeRef::Membership(m, resources),
        }
    }
}

/// A grant or membership add as the event holds it.
#[derive(Debug, Clone, Copy)]
enum ChangeRef<'a> {
    Grant(&'a Grant),
    /// With the resources the group held.
    Membership(&'a Membership, &'a [String]),
}

impl<'a> ChangeRef<'a> {
    fn to_owned(self) -> Change {
        match self {
            ChangeRef::Grant(g) => Change::Grant(g.clone()),
            ChangeRef::Membership(m, resources) => {
                Change::Membership(m.clone(), resources.to_vec())
            }
        }
    }

    /// What provenance traces: who made the change, to what, for whom.
    fn subject(self, actor_type: ActorType, ts: Ts) -> provenance::Subject<'a> {
        let (actor, resource, grantee, reference) = match self {
            ChangeRef::Grant(g) => (&g.actor, &g.resource, &g.grantee, &g.reference),
            ChangeRef::Membership(m, _) => (&m.actor, &m.group, &m.member, &m.reference),
        };
        provenance::Subject {
            actor,
            actor_type,
            resource,
            grantee,
            reference: reference.as_deref(),
            ts,
        }
    }
}

/// What the grant and membership paths hand the shared "judge, then trace"
/// step ([`Engine::judge_then_trace`]).
struct Judging<'a> {
    actor_type: ActorType,
    tier: Tier,
    /// Key of the findings about this change.
    key: String,
    /// The grant id the expansion finding names.
    grant_id: String,
    /// The change in words, for summaries.
    what: String,
    /// Who gains it: a person's canonical name, or the group.
    grantee: String,
    /// The people gaining it, by their canonical names.
    affected: Vec<String>,
    /// The resources the baselines judge.
    resources: Vec<&'a str>,
    /// The built-in catalogue's verdict.
    builtin: Option<Verdict>,
}

/// What [`Engine::assess`] made of a change.
struct Assessed {
    /// The `grant_expansion` finding, if the change is one.
    expansion: Option<Finding>,
    /// The expansion score (0 when nothing new is opened to anyone).
    expansion_score: f64,
    /// The built-in catalogue's verdict (an administrator policy, say).
    critical: Option<Verdict>,
    judged: Judged,
    trace: Option<Trace>,
}

/// A proposed change judged without applying it ([`Engine::judge_dry`]).
#[derive(Debug, Clone)]
pub struct DryJudgement {
    /// The time it was judged at.
    pub ts: Ts,
    /// The grantee already holds it (or the member is in the group).
    pub already_held: bool,
    /// Human, agent or service, as the identities classify the actor.
    pub actor_type: ActorType,
    /// The sensitivity tier of what it opens.
    pub tier: Tier,
    /// Who would gain it: a person's canonical name, or the group.
    pub grantee: String,
    /// The people who would gain it, by their canonical names.
    pub affected: Vec<String>,
    /// The expansion score (0 when nothing new would open to anyone).
    pub expansion_score: f64,
    /// The `grant_expansion` finding it would raise.
    pub expansion: Option<Finding>,
    /// The built-in catalogue's verdict, when the grant is critical whatever
    /// the baseline (an administrator policy, a public share).
    pub critical: Option<Verdict>,
    /// Its trace to agent advice, verified or not.
    pub trace: Option<Trace>,
    /// The `unverified_agent_grant` it would raise, with its revocation target.
    pub unverified: Option<Detection>,
    /// `[response] min_confidence`.
    pub min_confidence: f64,
}

/// The detection engine: the model plus the rules.
#[derive(Debug, Clone)]
pub struct Engine {
    model: Model,
    expansion: Expansion,
    limits: Limits,
    identities: Identities,
    sensitivity: Sensitivity,
    window_ms: i64,
    min_confidence: f64,
    last_expiry: Ts,
    stats: EngineStats,
    /// Grants and membership adds no advice explained when they were seen,
    /// within the trace window of the latest event, in event-time order
    /// (then in the order seen).
    untraced: std::collections::BTreeMap<(Ts, u64), Untraced>,
    /// The number the next remembered change is ordered by after its time.
    untraced_seq: u64,
    /// Advice reported (or seen) since the last [`Engine::settle`], with the
    /// time it links from: it may explain an untraced change.
    late: Vec<(String, Ts)>,
}

impl Engine {
    /// A new engine over `model` and `reach` (empty, or restored from a checkpoint).
    pub fn new(model: Model, reach: Reach, cfg: &EngineConfig) -> Self {
        Engine {
            model,
            expansion: Expansion::new(reach, cfg.detection.clone())
                .with_max_resources(cfg.limits.max_resources_per_principal),
            limits: cfg.limits,
            identities: cfg.identities.clone(),
            sensitivity: cfg.sensitivity.clone(),
            window_ms: i64::try_from(cfg.trace_window.as_millis()).unwrap_or(i64::MAX),
            min_confidence: cfg.min_confidence,
            last_expiry: Ts(i64::MIN),
            stats: EngineStats::default(),
            untraced: std::collections::BTreeMap::new(),
            untraced_seq: 0,
            late: Vec::new(),
        }
    }

    /// The model, for checkpoints and explanations.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Baselines and peer groups, for checkpoints and explanations.
    pub fn reach(&self) -> &Reach {
        &self.expansion.reach
    }

    /// The expansion detector.
    pub fn expansion(&self) -> &Expansion {
        &self.expansion
    }

    /// The expansion detector, to judge with directly (it remembers what it
    /// looked up), and the model it judges against.
    pub fn expansion_mut(&mut self) -> (&mut Expansion, &Model) {
        (&mut self.expansion, &self.model)
    }

    /// Marks the baselines as trained from history up to the latest event, so
    /// expansion findings start without a warm-up, and refits peer groups.
    pub fn finish_training(&mut self) {
        let latest = self.model.latest();
        self.expansion.refit(latest);
        self.expansion.reach.trained_until = Some(latest);
    }

    /// What the engine has ignored so far.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Judges one event, then applies it to the model.
    pub fn observe(&mut self, ev: &Event, origin: Origin) -> Vec<Detection> {
        self.observe_ref(EventRef::from(ev), origin)
    }

    /// [`Engine::observe`] for an event read in place (a plain access from
    /// a run of events, say).
    pub fn observe_ref(&mut self, ev: EventRef<'_>, origin: Origin) -> Vec<Detection> {
        let ts = ev.ts();
        self.model.advance(ts);
        // Advice reported late is traced once its approval, which follows it,
        // is in: before anything else happens.
        let follows_advice = matches!(
            ev,
            EventRef::Other(Event {
                body: Body::AdviceViewed(_) | Body::AdviceVerified(_),
                ..
            })
        );
        let mut out = if self.late.is_empty() || follows_advice {
            Vec::new()
        } else {
            self.settle()
        };
        self.expansion.maybe_refit(ts);
        // An access only adds to the baselines; other events may add advice,
        // grants and sightings too.
        let model_grew = match ev {
            EventRef::Access(mut a) => {
                // The person behind an alias: their canonical name (the
                // decoding thread's key was for the alias, so it is dropped).
                let canonical;
                if self.identities.has_aliases() {
                    if let std::borrow::Cow::Owned(c) = self.identities.canonical(a.principal) {
                        canonical = c;
                        a.principal = &canonical;
                        a.key = None;
                    }
                }
                self.access(a, &mut out);
                false
            }
            EventRef::Other(ev) => {
                if self.identities.has_aliases() {
                    let ev = canonical_people(&self.identities, ev);
                    self.other(&ev, origin, &mut out);
                } else {
                    self.other(ev, origin, &mut out);
                }
                true
            }
        };
        self.expire();
        self.enforce_caps(model_grew);
        // What the detector remembers by number follows the model, the one
        // record of who holds what.
        if self.model.holdings_changed() {
            self.expansion.follow(&mut self.model);
        }
        out
    }

    #[inline]
    fn access(&mut self, a: AccessRef<'_>, out: &mut Vec<Detection>) {
        if a.outcome == crate::event::Outcome::Success {
            if let Some(f) = self.expansion.on_access(
                a.principal,
                a.resource,
                a.key,
                a.ts,
                &self.model,
                &self.sensitivity,
            ) {
                out.push(Detection {
                    finding: f,
                    target: None,
                });
            }
        }
    }

    /// Every event but a plain access, by kind.
    fn other(&mut self, ev: &Event, origin: Origin, out: &mut Vec<Detection>) {
        let ts = ev.ts;
        match &ev.body {
            Body::Access(a) => self.access(a.at(ts, ev.id.as_deref()), out),
            Body::Grant(g) => self.grant(ts, g, origin, out),
            Body::Revoke(r) => self.revoke(r),
            Body::Membership(m) => match m.op {
                MembershipOp::Add => self.join(ts, m, origin, out),
                MembershipOp::Remove => self.leave(m),
            },
            Body::Advice(a) if origin.trust_advice => self.advice(ts, a, out),
            Body::AdviceVerified(v) if origin.trust_advice => {
                let human = self.identities.counts_as_human_reviewer(&v.verifier);
                self.model
                    .record_verification(&v.advice_id, &v.verifier, ts, human);
            }
            Body::AdviceViewed(v) if origin.trust_advice => {
                self.model
                    .record_sighting(&v.principal, &v.advice_id, ts, SawHow::Viewed);
                if !self.untraced.is_empty() {
                    self.late.push((v.advice_id.clone(), ts));
                }
            }
            Body::Advice(_) | Body::AdviceVerified(_) | Body::AdviceViewed(_) => {
                self.stats.untrusted_advice_ignored += 1;
            }
        }
    }

    /// A grant: judged and traced, then applied to the model.
    fn grant(&mut self, ts: Ts, g: &Grant, origin: Origin, out: &mut Vec<Detection>) {
        if self.model.grant(&g.grant_id).is_some_and(|r| !r.revoked) {
            self.stats.duplicates += 1;
            return;
        }
        let judging = self.grant_judging(g);
        self.judge_then_trace(ts, ChangeRef::Grant(g), judging, origin, out);
        self.model.record_grant(g, ts);
    }

    /// What the baselines and the catalogue judge of a grant.
    fn grant_judging<'g>(&self, g: &'g Grant) -> Judging<'g> {
        // The people gaining it, by their canonical names; the revocation
        // keeps the grantee as the source logged it.
        let grantee = match g.grantee_type {
            GranteeType::User => self.identities.canonical(&g.grantee).into_owned(),
            GranteeType::Group => g.grantee.clone(),
        };
        let affected: Vec<String> = match g.grantee_type {
            GranteeType::User => vec![grantee.clone()],
            GranteeType::Group => self
                .model
                .members_of(&g.grantee)
                .map(|m| self.identities.canonical(m).into_owned())
                .collect(),
        };
        Judging {
            actor_type: self.identities.classify(&g.actor, g.actor_type),
            tier: self.sensitivity.tier_of(&g.resource),
            key: g.grant_id.clone(),
            grant_id: g.grant_id.clone(),
            what: grant_what(g, &grantee),
            builtin: catalogue::judge(
                &g.resource,
                g.role.as_deref(),
                &g.grantee,
                g.grantee_type,
                &self.sensitivity,
            ),
            grantee,
            affected,
            resources: vec![g.resource.as_str()],
        }
    }

    fn revoke(&mut self, r: &crate::event::Revoke) {
        if !self.model.record_revoke(&r.grant_id) {
            self.stats.duplicates += 1;
        }
    }

    /// A membership add: judged against the group joined and traced like a
    /// grant of what the group holds, then applied to the model.
    fn join(&mut self, ts: Ts, m: &Membership, origin: Origin, out: &mut Vec<Detection>) {
        if self.model.is_member(&m.group, &m.member) {
            self.stats.duplicates += 1;
            return;
        }
        let held: Vec<String> = self
            .model
            .group_resources(&m.group)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let judging = self.join_judging(ts, m, &held);
        self.judge_then_trace(ts, ChangeRef::Membership(m, &held), judging, origin, out);
        self.expansion.membership_changed_by(&m.actor, &m.member);
        self.model.add_member(&m.group, &m.member);
    }

    /// What the baselines and the catalogue judge of `m` joining a group
    /// that holds `held`.
    fn join_judging<'h>(&self, ts: Ts, m: &Membership, held: &'h [String]) -> Judging<'h> {
        let held_refs: Vec<&str> = held.iter().map(String::as_str).collect();
        // What its members routinely use is no news for a new member.
        let unusual = self
            .expansion
            .unusual_for_group(&m.group, &held_refs, &self.model);
        let grant_id = m
            .grant_id
            .clone()
            .unwrap_or_else(|| format!("membership:{}:{}", m.group, m.member));
        let member = self.identities.canonical(&m.member).into_owned();
        Judging {
            actor_type: self.identities.classify(&m.actor, m.actor_type),
            tier: held_refs
                .iter()
                .map(|r| self.sensitivity.tier_of(r))
                .max()
                .unwrap_or(Tier::Low),
            key: format!("{grant_id}@{}", ts.0),
            what: format!("{member} membership of group {}", m.group),
            // Joining a group that holds an administrator policy is being
            // granted it.
            builtin: held_refs
                .iter()
                .filter_map(|r| {
                    catalogue::judge(r, None, &m.member, GranteeType::User, &self.sensitivity)
                })
                .max_by_key(|v| v.tier),
            grant_id,
            affected: vec![member.clone()],
            grantee: member,
            resources: unusual,
        }
    }

    fn leave(&mut self, m: &Membership) {
        self.expansion.membership_changed_by(&m.actor, &m.member);
        if !self.model.remove_member(&m.group, &m.member) {
            self.stats.duplicates += 1;
        }
    }

    /// Advice from a trusted source.
    fn advice(&mut self, ts: Ts, a: &crate::event::Advice, out: &mut Vec<Detection>) {
        if self.model.advice(&a.advice_id).is_some() {
            return;
        }
        self.model.record_advice(a, ts);
        if !self.untraced.is_empty() {
            self.late.push((a.advice_id.clone(), ts));
        }
        if a.published {
            out.push(self.unreviewed_publish(ts, &a.advice_id));
        }
    }

    /// The step grants and membership adds share: the baselines and the
    /// built-in catalogue judge the change (a `grant_expansion`), then
    /// provenance traces it to advice: traced to advice no human verified, it
    /// is an `unverified_agent_grant`; traced to nothing yet, it is remembered
    /// for advice reported late ([`Engine::settle`]).
    fn judge_then_trace(
        &mut self,
        ts: Ts,
        change: ChangeRef<'_>,
        j: Judging<'_>,
        origin: Origin,
        out: &mut Vec<Detection>,
    ) {
        let a = self.assess(ts, change, j, origin);
        if let Some(f) = a.expansion {
            out.push(Detection {
                finding: f,
                target: None,
            });
        }
        match a.trace {
            Some(t) if t.verified.is_none() => {
                out.push(self.detection(ts, change, &a.judged, t));
            }
            Some(_) => {}
            None => self.remember_untraced(Untraced {
                ts,
                change: change.to_owned(),
                judged: a.judged,
            }),
        }
    }

    /// The judgement [`Engine::judge_then_trace`] acts on, made without
    /// touching the model: the expansion finding (if any), what was judged,
    /// the trace. Only the detector's caches of the model by number change.
    fn assess(
        &mut self,
        ts: Ts,
        change: ChangeRef<'_>,
        j: Judging<'_>,
        origin: Origin,
    ) -> Assessed {
        let subject = change.subject(j.actor_type, ts);
        let (expansion, expansion_score) = self.expansion.on_grant(
            &j.key,
            subject.actor,
            &j.what,
            &j.affected,
            &j.resources,
            ts,
            &self.model,
            &self.sensitivity,
        );
        let critical = j.builtin.clone();
        let mut expansion = critical_grant(
            expansion,
            j.builtin,
            CriticalGrant {
                key: &j.key,
                actor: subject.actor,
                what: &j.what,
                grantee: &j.grantee,
                affected: &j.affected,
                resource: subject.resource,
                ts,
            },
        );
        if let Some(f) = &mut expansion {
            f.grant_id = Some(j.grant_id);
        }
        let trace = trace(&self.model, &subject, self.window_ms);
        Assessed {
            expansion,
            expansion_score,
            critical,
            judged: Judged {
                actor_type: j.actor_type,
                tier: j.tier,
                grantee: j.grantee,
                affected: j.affected,
                expands: expansion_score > 0.0,
                format: origin.format,
            },
            trace,
        }
    }

    /// Judges a proposed grant or membership add as [`Engine::observe`]
    /// would judge it if it happened at `ev.ts`, without applying it: the
    /// model, the remembered untraced changes and the statistics stay as
    /// they were (the expansion detector may fill its caches of the model).
    /// `None` for any other event (a revoke, a membership removal, an
    /// access), which opens nothing.
    pub fn judge_dry(&mut self, ev: &Event, origin: Origin) -> Option<DryJudgement> {
        let ev = if self.identities.has_aliases() {
            canonical_people(&self.identities, ev)
        } else {
            std::borrow::Cow::Borrowed(ev)
        };
        let ts = ev.ts;
        let (change, judging, already_held) = match &ev.body {
            Body::Grant(g) => {
                let held = self.model.grant(&g.grant_id).is_some_and(|r| !r.revoked)
                    || match g.grantee_type {
                        GranteeType::User => self.model.holds(&g.grantee, &g.resource),
                        GranteeType::Group => self
                            .model
                            .holders(&g.resource)
                            .groups()
                            .any(|h| h == g.grantee),
                    };
                (Change::Grant(g.clone()), Some(self.grant_judging(g)), held)
            }
            Body::Membership(m) if m.op == MembershipOp::Add => {
                let held: Vec<String> = self
                    .model
                    .group_resources(&m.group)
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                let is_member = self.model.is_member(&m.group, &m.member);
                (Change::Membership(m.clone(), held), None, is_member)
            }
            _ => return None,
        };
        let judging = match (&change, judging) {
            (_, Some(j)) => j,
            (Change::Membership(m, held), None) => self.join_judging(ts, m, held),
            (Change::Grant(_), None) => unreachable!("grants are judged above"),
        };
        let a = self.assess(ts, change.as_ref(), judging, origin);
        let unverified = match &a.trace {
            Some(t) if t.verified.is_none() => {
                Some(self.detection(ts, change.as_ref(), &a.judged, t.clone()))
            }
            _ => None,
        };
        Some(DryJudgement {
            ts,
            already_held,
            actor_type: a.judged.actor_type,
            tier: a.judged.tier,
            grantee: a.judged.grantee,
            affected: a.judged.affected,
            expansion_score: a.expansion_score,
            expansion: a.expansion,
            critical: a.critical,
            trace: a.trace,
            unverified,
            min_confidence: self.min_confidence,
        })
    }

    /// The `unverified_agent_grant` of a change traced to unverified advice.
    fn detection(&self, ts: Ts, change: ChangeRef<'_>, j: &Judged, t: Trace) -> Detection {
        match change {
            ChangeRef::Grant(g) => self.grant_detection(ts, g, j, t),
            ChangeRef::Membership(m, resources) => {
                self.membership_detection(ts, m, resources, j, t)
            }
        }
    }

    /// Remembers a change no advice explains yet, in event-time order.
    fn remember_untraced(&mut self, u: Untraced) {
        if u.judged.actor_type == ActorType::Agent {
            // Traced whatever advice is reported.
            return;
        }
        self.untraced.insert((u.ts, self.untraced_seq), u);
        self.untraced_seq += 1;
        while self.untraced.len() > MAX_UNTRACED {
            self.untraced.pop_first();
            self.stats.untraced_forgotten += 1;
        }
    }

    /// How many changes no advice explained are remembered.
    pub fn untraced(&self) -> usize {
        self.untraced.len()
    }

    /// Traces the remembered untraced changes again against the advice
    /// reported since the last call (an agent's call exported after the grant
    /// it made was logged, say): a change within the trace window after that
    /// advice, which it now traces to and no human approved before the change,
    /// is an `unverified_agent_grant` now. A change that traces to approved
    /// advice is forgotten; one still untraced stays remembered.
    ///
    /// [`Engine::observe`] settles before any event other than the sightings
    /// and approvals that follow advice, so an approval reported with the
    /// call always counts; callers settle at the end of a batch of events
    /// (one OTLP request, one line).
    pub fn settle(&mut self) -> Vec<Detection> {
        let late = std::mem::take(&mut self.late);
        let Some(since) = late.iter().map(|(_, at)| *at).min() else {
            return Vec::new();
        };
        let window = self.window_ms;
        let mut out = Vec::new();
        let tail = self.untraced.split_off(&(since, 0));
        for (key, u) in tail {
            let s = u.change.as_ref().subject(u.judged.actor_type, u.ts);
            let relevant = late.iter().any(|(id, at)| {
                *at <= u.ts
                    && u.ts.0.saturating_sub(at.0) <= window
                    && self.model.advice(id).is_some_and(|a| {
                        a.recommends.iter().any(|r| {
                            r.resource == s.resource || r.grantee.as_deref() == Some(s.grantee)
                        }) || s.reference.is_some()
                    })
            });
            let held = match &u.change {
                Change::Grant(g) => self
                    .model
                    .grant(&g.grant_id)
                    .is_some_and(|r| !r.revoked && r.ts == u.ts),
                Change::Membership(m, _) => self.model.is_member(&m.group, &m.member),
            };
            if !held {
                // Taken back meanwhile: nothing left to revoke.
                continue;
            }
            let traced = if relevant {
                trace(&self.model, &s, window)
            } else {
                None
            };
            match traced {
                None => {
                    self.untraced.insert(key, u);
                }
                Some(t) if t.verified.is_some() => {}
                Some(mut t) => {
                    t.chain.push(provenance::Link {
                        ts: u.ts,
                        step: "advice_reported_after_change",
                        detail: "the agent's call was reported after the change was logged; traced when it arrived".into(),
                    });
                    out.push(self.detection(u.ts, u.change.as_ref(), &u.judged, t));
                }
            }
        }
        out
    }

    /// Forgets what exceeds the memory caps (amortised: only once a cap is
    /// exceeded by a twentieth): the baselines' cap always, the model's if
    /// `model_grew`.
    fn enforce_caps(&mut self, model_grew: bool) {
        let l = self.limits;
        if model_grew {
            let e = self
                .model
                .enforce_caps(l.max_advice, l.max_grants, l.max_principals);
            self.stats.evicted.advice += e.advice;
            self.stats.evicted.grants += e.grants;
            self.stats.evicted.sightings += e.sightings;
        }
        let reach = &mut self.expansion.reach;
        if reach.baselined() > l.max_principals + l.max_principals / 20 {
            reach.evict_principals(l.max_principals);
            self.expansion.forget_remembered();
        }
    }

    /// Forgets sightings that fell out of the trace window; runs at most once a
    /// minute of event time, since it walks every principal.
    fn expire(&mut self) {
        let now = self.model.latest();
        let horizon = now.add_millis(-self.window_ms);
        while self
            .untraced
            .first_key_value()
            .is_some_and(|(_, u)| u.ts < horizon)
        {
            self.untraced.pop_first();
        }
        if now.0.saturating_sub(self.last_expiry.0) >= 60_000 {
            self.model.expire_sightings(now.add_millis(-self.window_ms));
            self.last_expiry = now;
        }
    }

    /// The `unverified_agent_grant` of a grant traced to unverified advice.
    fn grant_detection(&self, ts: Ts, g: &Grant, j: &Judged, t: Trace) -> Detection {
        let target = RevocationTarget {
            kind: TargetKind::Grant,
            grant_id: g.grant_id.clone(),
            resource: Some(g.resource.clone()),
            grantee: Some(g.grantee.clone()),
            grantee_type: Some(g.grantee_type),
            group: None,
            member: None,
            confidence: t.confidence,
            expands: Some(j.expands),
            undo: g.target.clone(),
            format: j.format,
        };
        let mut grant_evidence = json!({
            "grant_id": g.grant_id, "actor": g.actor, "actor_type": j.actor_type,
            "grantee": j.grantee, "grantee_type": g.grantee_type,
            "resource": g.resource, "role": g.role, "reference": g.reference,
            "tier": j.tier.as_str(),
        });
        if j.grantee != g.grantee {
            grant_evidence["grantee_as_logged"] = json!(g.grantee);
        }
        self.unverified_grant(
            ts,
            &g.actor,
            &grant_what(g, &j.grantee),
            j.tier,
            g.grantee_type == GranteeType::Group,
            j.affected.clone(),
            grant_evidence,
            t,
            target,
            &g.grant_id,
        )
    }

    /// The `unverified_agent_grant` of a membership add traced to unverified
    /// advice; `resources` are what the group holds.
    fn membership_detection(
        &self,
        ts: Ts,
        m: &Membership,
        resources: &[String],
        j: &Judged,
        t: Trace,
    ) -> Detection {
        let grant_id = m
            .grant_id
            .clone()
            .unwrap_or_else(|| format!("membership:{}:{}", m.group, m.member));
        let target = RevocationTarget {
            kind: TargetKind::Membership,
            grant_id: grant_id.clone(),
            resource: None,
            grantee: None,
            grantee_type: None,
            group: Some(m.group.clone()),
            member: Some(m.member.clone()),
            confidence: t.confidence,
            expands: Some(j.expands),
            undo: m.target.clone(),
            format: j.format,
        };
        let mut evidence = json!({
            "grant_id": grant_id, "actor": m.actor, "actor_type": j.actor_type,
            "group": m.group, "member": j.grantee, "reference": m.reference,
            "group_resources": resources, "tier": j.tier.as_str(),
        });
        if j.grantee != m.member {
            evidence["member_as_logged"] = json!(m.member);
        }
        let what = format!("{} to group {}", j.grantee, m.group);
        let key = format!("{grant_id}@{}", ts.0);
        self.unverified_grant(
            ts,
            &m.actor,
            &what,
            j.tier,
            false,
            j.affected.clone(),
            evidence,
            t,
            target,
            &key,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn unverified_grant(
        &self,
        ts: Ts,
        actor: &str,
        what: &str,
        tier: Tier,
        group_grant: bool,
        mut affected: Vec<String>,
        change: serde_json::Value,
        t: Trace,
        target: RevocationTarget,
        key: &str,
    ) -> Detection {
        let n_affected = affected.len();
        if affected.is_empty() {
            affected.push(
                target
                    .grantee
                    .clone()
                    .or(target.member.clone())
                    .unwrap_or_default(),
            );
        }
        // A trace too weak to act on, or a coincidence of grantee beside the
        // change's own ticket, is noted, never paged on.
        let weak = t.confidence < self.min_confidence;
        let severity = if weak || t.grantee_only_own_reference {
            Severity::Low
        } else if tier >= Tier::High || group_grant {
            Severity::Critical
        } else {
            Severity::High
        };
        let score = t.confidence * tier.weight() * (n_affected.max(1) as f64);
        let summary = match t.advice_id.as_deref() {
            None => format!(
                "{actor} (agent) granted {what} ({} sensitivity) directly; no human verified it.",
                tier.as_str()
            ),
            Some(advice) => {
                let via = match t.chain.iter().find(|l| {
                    matches!(
                        l.step,
                        "actor_viewed_advice"
                            | "actor_requested_advice"
                            | "reference_cites_advice"
                            | "reference_cites_channel"
                    )
                }) {
                    Some(l) if l.step == "actor_viewed_advice" => {
                        format!("{}s after viewing", (ts.0 - l.ts.0) / 1000)
                    }
                    Some(l) if l.step == "actor_requested_advice" => {
                        format!("{}s after asking for", (ts.0 - l.ts.0) / 1000)
                    }
                    Some(l) if l.step == "reference_cites_advice" => "citing".to_owned(),
                    _ => "citing the channel of".to_owned(),
                };
                format!(
                    "{actor} granted {what} ({} sensitivity) {via} advice {advice} from {}; no human verified it (trace confidence {:.2}).",
                    tier.as_str(),
                    t.agent,
                    t.confidence
                )
            }
        };
        let finding = Finding {
            finding_id: finding_id(FindingKind::UnverifiedAgentGrant, key),
            kind: FindingKind::UnverifiedAgentGrant,
            severity,
            ts,
            principals: affected,
            grant_id: Some(target.grant_id.clone()),
            advice_id: t.advice_id.clone(),
            resource: target.resource.clone(),
            score,
            summary,
            evidence: json!({
                "change": change,
                "affected_engineers": n_affected,
                "below_min_confidence": weak,
                "min_confidence": self.min_confidence,
                "trace": t,
            }),
            action: None,
        };
        Detection {
            finding,
            target: Some(target),
        }
    }

    fn unreviewed_publish(&self, ts: Ts, advice_id: &str) -> Detection {
        let a = self.model.advice(advice_id).expect("just recorded");
        let tier = a
            .recommends
            .iter()
            .map(|r| self.sensitivity.tier_of(&r.resource))
            .max()
            .unwrap_or(Tier::Low);
        let severity = if tier >= Tier::High {
            Severity::High
        } else {
            Severity::Medium
        };
        let where_ = a
            .channel
            .as_deref()
            .map(|c| format!(" in {c}"))
            .unwrap_or_default();
        let summary = if a.recommends.is_empty() {
            format!(
                "{} published advice {}{where_} that no human has verified.",
                a.agent, a.advice_id
            )
        } else {
            format!(
                "{} published advice {}{where_} recommending {}, and no human has verified it.",
                a.agent,
                a.advice_id,
                provenance::describe_recs(&a.recommends)
            )
        };
        let mut principals = vec![a.agent.clone()];
        principals.extend(a.requested_by.clone());
        Detection {
            finding: Finding {
                finding_id: finding_id(FindingKind::UnreviewedAgentPublish, advice_id),
                kind: FindingKind::UnreviewedAgentPublish,
                severity,
                ts,
                principals,
                grant_id: None,
                advice_id: Some(a.advice_id.clone()),
                resource: a.recommends.first().map(|r| r.resource.clone()),
                score: tier.weight(),
                summary,
                evidence: json!({
                    "agent": a.agent, "channel": a.channel, "requested_by": a.requested_by,
                    "recommends": a.recommends, "highest_tier": tier.as_str(), "agent_type": ActorType::Agent,
                }),
                action: None,
            },
            target: None,
        }
    }
}

/// A grant the built-in catalogue may call critical.
struct CriticalGrant<'a> {
    key: &'a str,
    actor: &'a str,
    what: &'a str,
    grantee: &'a str,
    affected: &'a [String],
    resource: &'a str,
    ts: Ts,
}

/// Joins the baseline's judgement of a grant (`expansion`) with the built-in
/// catalogue's (`builtin`, see [`catalogue`]): a grant the catalogue names is a
/// `grant_expansion` from the first event, warm-up or not, at least `medium`
/// (`high` for a `high` or `critical` tier), with `why` in its evidence. When
/// the baseline flagged it too, that finding is kept and made at least as severe.
fn critical_grant(
    expansion: Option<Finding>,
    builtin: Option<Verdict>,
    g: CriticalGrant<'_>,
) -> Option<Finding> {
    let Some(v) = builtin else {
        return expansion;
    };
    let severity = if v.tier >= Tier::High {
        Severity::High
    } else {
        Severity::Medium
    };
    let why: Vec<&str> = v.why.iter().map(|w| w.as_str()).collect();
    if let Some(mut f) = expansion {
        f.severity = f.severity.max(severity);
        if let Some(e) = f.evidence.as_object_mut() {
            e.insert("why".into(), json!(why));
        }
        return Some(f);
    }
    let mut principals: Vec<String> = g.affected.iter().take(100).cloned().collect();
    if principals.is_empty() {
        principals.push(g.grantee.to_owned());
    }
    principals.sort();
    Some(Finding {
        finding_id: finding_id(FindingKind::GrantExpansion, g.key),
        kind: FindingKind::GrantExpansion,
        severity,
        ts: g.ts,
        principals,
        grant_id: None,
        advice_id: None,
        resource: Some(g.resource.to_owned()),
        score: v.tier.weight(),
        summary: format!(
            "{} granted {}: {} ({} sensitivity), critical whatever the baseline.",
            g.actor,
            g.what,
            why.join(", "),
            v.tier.as_str()
        ),
        evidence: json!({
            "actor": g.actor, "grantee": g.grantee, "resource": g.resource,
            "why": why, "tier": v.tier.as_str(), "source": "builtin catalogue",
            "affected_engineers": g.affected.len(),
        }),
        action: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Decoder, NativeDecoder};
    use crate::model::Pattern;

    fn settings() -> EngineConfig {
        EngineConfig {
            identities: Identities::new(vec![Pattern::new("agent:*").unwrap()]),
            sensitivity: Sensitivity::new(vec![(
                Pattern::new("acl/internal-*").unwrap(),
                Tier::Critical,
            )]),
            trace_window: Duration::from_secs(3600),
            detection: DetectionConfig::default(),
            limits: Limits::default(),
            min_confidence: 0.7,
        }
    }

    fn engine() -> Engine {
        Engine::new(Model::default(), Reach::default(), &settings())
    }

    /// Feeds native lines (trusted) and returns every detection.
    fn feed(e: &mut Engine, lines: &[&str]) -> Vec<Detection> {
        feed_from(e, lines, Origin::TRUSTED)
    }

    fn feed_from(e: &mut Engine, lines: &[&str], origin: Origin) -> Vec<Detection> {
        let mut out = Vec::new();
        for l in lines {
            for ev in &NativeDecoder.decode_owned(l.as_bytes()).unwrap() {
                out.extend(e.observe(ev, origin));
            }
        }
        out
    }

    fn grants(d: &[Detection]) -> Vec<&Detection> {
        d.iter()
            .filter(|d| d.finding.kind == FindingKind::UnverifiedAgentGrant)
            .collect()
    }

    const ADVICE: &str = r#"{"ts":"2026-03-18T09:02:11Z","type":"advice","advice_id":"adv-7731","agent":"agent:forum-helper","requested_by":"bob","channel":"forum/infra-q-4512","published":true,"recommends":[{"resource":"acl/internal-tools","role":"viewer","grantee":"eng-all"}]}"#;
    const VIEW: &str = r#"{"ts":"2026-03-18T09:05:40Z","type":"advice_viewed","advice_id":"adv-7731","principal":"alice"}"#;
    const GRANT: &str = r#"{"ts":"2026-03-18T09:07:02Z","type":"grant","grant_id":"g-90211","actor":"alice","grantee":"eng-all","grantee_type":"group","resource":"acl/internal-tools","role":"viewer","reference":"per forum/infra-q-4512"}"#;
    const MEMBERS: [&str; 2] = [
        r#"{"ts":"2026-03-01T00:00:00Z","type":"membership","actor":"hr","group":"eng-all","member":"carol","op":"add","actor_type":"service"}"#,
        r#"{"ts":"2026-03-01T00:00:00Z","type":"membership","actor":"hr","group":"eng-all","member":"ivan","op":"add","actor_type":"service"}"#,
    ];

    #[test]
    fn an_agent_call_links_only_to_the_grants_its_command_names() {
        let mut e = engine();
        let call = r#"{"ts":"2026-03-18T09:00:00Z","type":"advice","advice_id":"otel:claude-code:s:t1","agent":"claude-code","requested_by":"alice","recommends":[{"resource":"k8s/cluster/ClusterRole/cluster-admin","role":"cluster-admin","grantee":"ci-runner"},{"resource":"aws/iam/role/deploy"}]}"#;
        let grant = |id: &str, grantee: &str, resource: &str| {
            format!(
                r#"{{"ts":"2026-03-18T09:05:00Z","type":"grant","grant_id":"{id}","actor":"alice","grantee":"{grantee}","resource":"{resource}"}}"#
            )
        };
        feed(&mut e, &[call]);
        let same = grant("g1", "ci-runner", "k8s/cluster/ClusterRole/cluster-admin");
        let other = grant("g2", "bob", "k8s/cluster/ClusterRole/cluster-admin");
        let trust = grant("g3", "arn:aws:iam::1:root", "aws/iam/role/deploy");
        let traced: Vec<Option<String>> = [same, other, trust]
            .iter()
            .map(|l| {
                grants(&feed(&mut e, &[l.as_str()]))
                    .first()
                    .and_then(|d| d.finding.grant_id.clone())
            })
            .collect();
        assert_eq!(traced, [Some("g1".to_owned()), None, Some("g3".to_owned())]);
    }

    const LATE_CALL: &str = r#"{"ts":"2026-03-18T09:00:00Z","type":"advice","advice_id":"otel:claude-code:s:t1","agent":"claude-code","requested_by":"alice","recommends":[{"resource":"k8s/cluster/ClusterRole/cluster-admin","role":"cluster-admin","grantee":"ci-runner"}]}"#;
    const LATE_VIEW: &str = r#"{"ts":"2026-03-18T09:00:00Z","type":"advice_viewed","advice_id":"otel:claude-code:s:t1","principal":"alice"}"#;
    const LATE_APPROVAL: &str = r#"{"ts":"2026-03-18T09:00:00Z","type":"advice_verified","advice_id":"otel:claude-code:s:t1","verifier":"alice"}"#;

    fn late_grant(id: &str, grantee: &str) -> String {
        format!(
            r#"{{"ts":"2026-03-18T09:00:02Z","type":"grant","grant_id":"{id}","actor":"alice","grantee":"{grantee}","resource":"k8s/cluster/ClusterRole/cluster-admin","role":"cluster-admin"}}"#
        )
    }

    #[test]
    fn a_call_reported_after_its_grant_traces_to_it_once_settled() {
        let mut e = engine();
        let g = late_grant("g1", "ci-runner");
        let other = late_grant("g2", "bob");
        assert!(grants(&feed(&mut e, &[&g, &other])).is_empty());
        assert_eq!(e.untraced(), 2);
        // The call, its sighting: nothing until the batch is settled (its
        // approval could still follow).
        assert!(feed(&mut e, &[LATE_CALL, LATE_VIEW]).is_empty());
        let d = e.settle();
        let g = grants(&d);
        assert_eq!(g.len(), 1, "only the grant the command names: {d:?}");
        let f = &g[0].finding;
        assert_eq!(f.grant_id.as_deref(), Some("g1"));
        assert_eq!(f.advice_id.as_deref(), Some("otel:claude-code:s:t1"));
        assert_eq!(f.ts, Ts(1_773_824_402_000), "the grant's time");
        assert!(
            f.evidence["trace"]["chain"]
                .to_string()
                .contains("advice_reported_after_change")
        );
        assert_eq!(e.untraced(), 1, "g2 is still unexplained");
        assert!(e.settle().is_empty(), "raised once");
    }

    #[test]
    fn published_advice_reported_after_the_grant_citing_it_traces_to_it() {
        let mut e = engine();
        feed(&mut e, &MEMBERS);
        // The grant cites the forum thread before the forum's record of the
        // agent's post (and alice's view of it) is read.
        assert!(grants(&feed(&mut e, &[GRANT])).is_empty());
        let d = feed(&mut e, &[ADVICE, VIEW]);
        assert!(grants(&d).is_empty(), "settled with the batch");
        let d = e.settle();
        let g = grants(&d);
        assert_eq!(g.len(), 1, "{d:#?}");
        assert_eq!(g[0].finding.grant_id.as_deref(), Some("g-90211"));
        assert_eq!(g[0].finding.advice_id.as_deref(), Some("adv-7731"));
        assert_eq!(g[0].finding.principals, ["carol", "ivan"]);
    }

    #[test]
    fn a_late_call_the_person_approved_raises_nothing() {
        let mut e = engine();
        feed(&mut e, &[&late_grant("g1", "ci-runner")]);
        assert!(feed(&mut e, &[LATE_CALL, LATE_VIEW, LATE_APPROVAL]).is_empty());
        assert!(grants(&e.settle()).is_empty());
        assert_eq!(e.untraced(), 0, "explained: forgotten");
    }

    #[test]
    fn the_next_event_settles_late_advice_after_its_approval() {
        let mut e = engine();
        feed(&mut e, &[&late_grant("g1", "ci-runner")]);
        let next =
            r#"{"ts":"2026-03-18T09:00:03Z","type":"access","principal":"bob","resource":"wiki"}"#;
        assert!(grants(&feed(&mut e, &[LATE_CALL, LATE_VIEW, LATE_APPROVAL, next])).is_empty());
        feed(
            &mut e,
            &[&late_grant("g2", "ci-runner-2").replace("09:00:02", "09:00:04")],
        );
        let call2 = LATE_CALL
            .replace("t1", "t2")
            .replace("09:00:00", "09:00:03")
            .replace("ci-runner", "ci-runner-2");
        let view2 = LATE_VIEW
            .replace("t1", "t2")
            .replace("09:00:00", "09:00:03");
        let d = feed(&mut e, &[&call2, &view2, next]);
        assert_eq!(
            grants(&d)
                .iter()
                .map(|d| d.finding.grant_id.clone().unwrap())
                .collect::<Vec<_>>(),
            ["g2"]
        );
    }

    #[test]
    fn late_advice_links_no_grant_taken_back_or_outside_the_window() {
        let mut e = engine();
        let revoke =
            r#"{"ts":"2026-03-18T09:00:05Z","type":"revoke","grant_id":"g1","actor":"alice"}"#;
        feed(&mut e, &[&late_grant("g1", "ci-runner"), revoke]);
        feed(&mut e, &[LATE_CALL, LATE_VIEW]);
        assert!(grants(&e.settle()).is_empty(), "already taken back");
        // A grant before the call, and one more than the window after it.
        let mut e = engine();
        let before = late_grant("g3", "ci-runner").replace("09:00:02", "08:59:00");
        let after = late_grant("g4", "ci-runner").replace("09:00:02", "10:00:01");
        feed(&mut e, &[&before, &after]);
        feed(&mut e, &[LATE_CALL, LATE_VIEW]);
        assert!(grants(&e.settle()).is_empty());
    }

    #[test]
    fn untraced_grants_are_remembered_within_bounds() {
        let mut e = engine();
        for i in 0..MAX_UNTRACED + 10 {
            feed(&mut e, &[&late_grant(&format!("g{i}"), &format!("u{i}"))]);
        }
        assert_eq!(e.untraced(), MAX_UNTRACED);
        assert_eq!(e.stats().untraced_forgotten, 10);
        // An hour and more later they are out of every window.
        feed(
            &mut e,
            &[
                r#"{"ts":"2026-03-18T10:00:03Z","type":"access","principal":"bob","resource":"wiki"}"#,
            ],
        );
        assert_eq!(e.untraced(), 0);
    }

    #[test]
    fn findings_name_the_canonical_people_and_revocations_the_logged_names() {
        let mut cfg = settings();
        let table = [
            ("alice@example.com", vec!["alice".to_owned()]),
            (
                "bob@example.com",
                vec!["bob".to_owned(), "role/eng/bob".to_owned()],
            ),
        ];
        let aliases =
            crate::model::Aliases::new(table.iter().map(|(c, a)| (*c, a.as_slice())), false)
                .unwrap();
        cfg.identities = cfg.identities.clone().with_aliases(aliases);
        let mut e = Engine::new(Model::default(), Reach::default(), &cfg);
        let call = r#"{"ts":"2026-03-18T09:00:00Z","type":"advice","advice_id":"otel:claude-code:s:t9","agent":"claude-code","requested_by":"alice@example.com","recommends":[{"resource":"aws/iam/role/deploy","grantee":"role/eng/bob"}]}"#;
        let grant = r#"{"ts":"2026-03-18T09:00:05Z","type":"grant","grant_id":"g1","actor":"alice","grantee":"role/eng/bob","resource":"aws/iam/role/deploy"}"#;
        let join = r#"{"ts":"2026-03-18T09:01:00Z","type":"membership","actor":"agent:ops-bot","group":"admins","member":"bob","op":"add"}"#;
        let d = feed(&mut e, &[call, grant, join]);
        let g = grants(&d);
        assert_eq!(g.len(), 2, "{d:#?}");
        let (f, t) = (&g[0].finding, g[0].target.as_ref().unwrap());
        assert_eq!(f.principals, ["bob@example.com"]);
        assert!(
            f.summary
                .starts_with("alice@example.com granted bob@example.com aws/iam/role/deploy"),
            "{}",
            f.summary
        );
        let change = &f.evidence["change"];
        assert_eq!(change["actor"], "alice@example.com");
        assert_eq!(change["grantee"], "bob@example.com");
        assert_eq!(change["grantee_as_logged"], "role/eng/bob");
        assert_eq!(
            t.grantee.as_deref(),
            Some("role/eng/bob"),
            "hooks need the logged name"
        );
        let (f, t) = (&g[1].finding, g[1].target.as_ref().unwrap());
        assert_eq!(f.principals, ["bob@example.com"]);
        assert_eq!(f.evidence["change"]["member"], "bob@example.com");
        assert_eq!(f.evidence["change"]["member_as_logged"], "bob");
        assert_eq!(t.member.as_deref(), Some("bob"));
    }

    #[test]
    fn the_incident_is_traced_through_view_and_channel() {
        let mut e = engine();
        assert!(
            feed(&mut e, &MEMBERS).is_empty(),
            "HR adding members traces to no advice"
        );
        let published = feed(&mut e, &[ADVICE]);
        assert_eq!(published.len(), 1);
        assert_eq!(
            published[0].finding.kind,
            FindingKind::UnreviewedAgentPublish
        );
        assert_eq!(
            published[0].finding.severity,
            Severity::High,
            "recommends a critical resource"
        );
        assert!(published[0].target.is_none());
        assert!(feed(&mut e, &[VIEW]).is_empty());
        let d = feed(&mut e, &[GRANT]);
        let g = grants(&d);
        assert_eq!(g.len(), 1);
        let f = &g[0].finding;
        assert_eq!(f.grant_id.as_deref(), Some("g-90211"));
        assert_eq!(f.advice_id.as_deref(), Some("adv-7731"));
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(f.principals, ["carol", "ivan"]);
        assert!(
            f.summary
                .contains("alice granted group eng-all viewer on acl/internal-tools"),
            "{}",
            f.summary
        );
        assert!(
            f.summary.contains("82s after viewing advice adv-7731"),
            "{}",
            f.summary
        );
        let t = g[0].target.as_ref().unwrap();
        assert_eq!(t.kind, TargetKind::Grant);
        assert_eq!(t.grantee_type, Some(GranteeType::Group));
        assert!(
            (t.confidence - 0.95).abs() < 1e-9,
            "view + channel citation: {}",
            t.confidence
        );
        let steps: Vec<&str> = f.evidence["trace"]["chain"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["step"].as_str().unwrap())
            .collect();
        assert_eq!(
            steps,
            [
                "agent_published_advice",
                "actor_viewed_advice",
                "reference_cites_channel"
            ]
        );
        assert_eq!(f.evidence["trace"]["link"], "inferred");
        assert_eq!(f.evidence["affected_engineers"], 2);
    }

    #[test]
    fn advice_a_human_verified_before_the_grant_is_not_flagged() {
        let mut e = engine();
        let verified = r#"{"ts":"2026-03-18T09:06:00Z","type":"advice_verified","advice_id":"adv-7731","verifier":"dave"}"#;
        let d = feed(&mut e, &[ADVICE, VIEW, verified, GRANT]);
        assert!(grants(&d).is_empty());
    }

    #[test]
    fn verification_after_the_grant_is_too_late() {
        let mut e = engine();
        let late = r#"{"ts":"2026-03-18T09:08:00Z","type":"advice_verified","advice_id":"adv-7731","verifier":"dave"}"#;
        let d = feed(&mut e, &[ADVICE, VIEW, GRANT, late]);
        assert_eq!(grants(&d).len(), 1);
    }

    #[test]
    fn an_agent_verifying_advice_does_not_count() {
        let mut e = engine();
        let by_agent = r#"{"ts":"2026-03-18T09:06:00Z","type":"advice_verified","advice_id":"adv-7731","verifier":"agent:reviewer"}"#;
        let d = feed(&mut e, &[ADVICE, VIEW, by_agent, GRANT]);
        let g = grants(&d);
        assert_eq!(g.len(), 1);
        let chain = g[0].finding.evidence["trace"]["chain"].to_string();
        assert!(chain.contains("agent_approval_ignored"), "{chain}");
    }

    #[test]
    fn an_agent_granting_directly_is_traced_with_full_confidence() {
        let mut e = engine();
        let d = feed(
            &mut e,
            &[
                r#"{"ts":"2026-03-18T10:00:00Z","type":"grant","grant_id":"g-5","actor":"agent:ops-bot","grantee":"mallory","resource":"prod/db","role":"admin"}"#,
            ],
        );
        let g = grants(&d);
        assert_eq!(g.len(), 1);
        let t = g[0].target.as_ref().unwrap();
        assert_eq!(t.confidence, 1.0);
        assert_eq!(g[0].finding.advice_id, None);
        assert!(
            g[0].finding
                .summary
                .contains("agent:ops-bot (agent) granted mallory admin on prod/db"),
            "{}",
            g[0].finding.summary
        );
        // A declared agent is an agent whatever its name.
        let d = feed(
            &mut e,
            &[
                r#"{"ts":"2026-03-18T10:01:00Z","type":"grant","grant_id":"g-6","actor":"deploy","actor_type":"agent","grantee":"mallory","resource":"prod/db"}"#,
            ],
        );
        assert_eq!(grants(&d).len(), 1);
    }

    #[test]
    fn an_agent_executing_advice_a_human_verified_and_cited_is_not_flagged() {
        let mut e = engine();
        let lines = [
            r#"{"ts":"2026-03-18T09:00:00Z","type":"advice","advice_id":"adv-1","agent":"agent:kb","recommends":[{"resource":"ci/logs","grantee":"dave"}]}"#,
            r#"{"ts":"2026-03-18T09:10:00Z","type":"advice_verified","advice_id":"adv-1","verifier":"bob"}"#,
            r#"{"ts":"2026-03-18T09:20:00Z","type":"grant","grant_id":"g-7","actor":"agent:ops-bot","grantee":"dave","resource":"ci/logs","reference":"executing adv-1"}"#,
        ];
        assert!(grants(&feed(&mut e, &lines)).is_empty());
    }

    #[test]
    fn a_view_outside_the_trace_window_links_nothing() {
        let mut e = engine();
        let late_grant = GRANT
            .replace("2026-03-18T09:07:02Z", "2026-03-18T11:07:02Z")
            .replace("per forum/infra-q-4512", "ticket OPS-1");
        assert!(grants(&feed(&mut e, &[ADVICE, VIEW, &late_grant])).is_empty());
    }

    #[test]
    fn advice_from_an_untrusted_source_traces_nothing() {
        let mut e = engine();
        let untrusted = Origin::new(crate::decode::Format::Native, false);
        assert!(feed_from(&mut e, &[ADVICE, VIEW], untrusted).is_empty());
        assert_eq!(e.stats().untrusted_advice_ignored, 2);
        let grant = GRANT.replace("per forum/infra-q-4512", "adv-7731");
        assert!(grants(&feed(&mut e, &[&grant])).is_empty());
    }

    #[test]
    fn a_membership_add_citing_advice_is_a_revocable_membership() {
        let mut e = engine();
        let lines = [
            r#"{"ts":"2026-03-18T09:00:00Z","type":"advice","advice_id":"adv-9","agent":"agent:helper","recommends":[{"resource":"sre-oncall","grantee":"dave"}]}"#,
            r#"{"ts":"2026-03-18T09:01:00Z","type":"membership","actor":"erin","group":"sre-oncall","member":"dave","op":"add","reference":"as adv-9 says"}"#,
        ];
        let d = feed(&mut e, &lines);
        let g = grants(&d);
        assert_eq!(g.len(), 1);
        let t = g[0].target.as_ref().unwrap();
        assert_eq!(t.kind, TargetKind::Membership);
        assert_eq!(t.grant_id, "membership:sre-oncall:dave");
        assert_eq!(
            (t.group.as_deref(), t.member.as_deref()),
            (Some("sre-oncall"), Some("dave"))
        );
        assert_eq!(t.confidence, 1.0);
        assert_eq!(g[0].finding.evidence["trace"]["link"], "explicit");
    }

    #[test]
    fn replayed_grants_and_existing_members_raise_nothing_new() {
        let mut e = engine();
        assert_eq!(grants(&feed(&mut e, &[ADVICE, VIEW, GRANT])).len(), 1);
        assert!(grants(&feed(&mut e, &[GRANT])).is_empty());
        assert_eq!(e.stats().duplicates, 1);
    }

    #[test]
    fn unpublished_advice_links_only_the_person_who_asked_for_it() {
        let mut e = engine();
        let private = ADVICE.replace("\"published\":true", "\"published\":false");
        let by_viewer = GRANT.replace("per forum/infra-q-4512", "ticket OPS-2");
        assert!(grants(&feed(&mut e, &[&private, VIEW, &by_viewer])).is_empty());
        let by_requester = by_viewer
            .replace("\"actor\":\"alice\"", "\"actor\":\"bob\"")
            .replace("g-90211", "g-2");
        let d = feed(&mut e, &[&by_requester]);
        let g = grants(&d);
        assert_eq!(g.len(), 1);
        assert!(
            g[0].finding
                .summary
                .contains("after asking for advice adv-7731"),
            "{}",
            g[0].finding.summary
        );
    }

    #[test]
    fn a_grantee_only_match_is_low_confidence() {
        let mut e = engine();
        let other_resource = GRANT
            .replace("acl/internal-tools", "wiki/edit")
            .replace("per forum/infra-q-4512", "ticket OPS-3");
        let d = feed(&mut e, &[ADVICE, VIEW, &other_resource]);
        let g = grants(&d);
        assert_eq!(g.len(), 1);
        assert!((g[0].target.as_ref().unwrap().confidence - 0.6).abs() < 1e-9);
    }

    #[test]
    fn targets_say_whether_the_grant_expands_reach() {
        let mut e = engine();
        let d = feed(&mut e, &MEMBERS);
        assert!(d.is_empty());
        let d = feed(&mut e, &[ADVICE, VIEW, GRANT]);
        let g = grants(&d);
        assert_eq!(
            g[0].target.as_ref().unwrap().expands,
            Some(true),
            "a critical system new to everyone"
        );
        // Re-granting what the group already holds opens nothing new.
        let again = GRANT
            .replace("g-90211", "g-again")
            .replace("per forum/infra-q-4512", "adv-7731");
        let d = feed(&mut e, &[&again]);
        let g = grants(&d);
        assert_eq!(g[0].target.as_ref().unwrap().expands, Some(false));
    }

    #[test]
    fn a_catalogued_grant_is_flagged_from_the_first_event_and_sensitivity_overrides_it() {
        let admin = r#"{"ts":"2026-03-18T10:00:00Z","type":"grant","grant_id":"g-adm","actor":"erin","grantee":"mallory","resource":"arn:aws:iam::aws:policy/AdministratorAccess"}"#;
        let public = r#"{"ts":"2026-03-18T10:01:00Z","type":"grant","grant_id":"g-pub","actor":"erin","grantee":"allUsers","grantee_type":"group","resource":"gcp/projects/p/buckets/site","role":"roles/storage.objectViewer"}"#;
        let d = feed(&mut engine(), &[admin, public]);
        let f: Vec<&Finding> = d.iter().map(|d| &d.finding).collect();
        assert_eq!(f.len(), 2, "{f:#?}");
        assert!(f.iter().all(|f| f.kind == FindingKind::GrantExpansion));
        assert_eq!(f[0].severity, Severity::High);
        assert_eq!(f[0].evidence["why"], json!(["admin policy"]));
        assert_eq!(f[0].grant_id.as_deref(), Some("g-adm"));
        assert_eq!(f[1].evidence["why"], json!(["public"]));
        assert_eq!(f[1].principals, ["allUsers"]);
        assert!(f[1].summary.contains("public"), "{}", f[1].summary);

        let mut cfg = settings();
        cfg.sensitivity = Sensitivity::new(vec![
            (Pattern::new("builtin:public").unwrap(), Tier::Low),
            (Pattern::new("builtin:admin-policy").unwrap(), Tier::Medium),
        ]);
        let mut e = Engine::new(Model::default(), Reach::default(), &cfg);
        let d = feed(&mut e, &[admin, public]);
        assert_eq!(d.len(), 1, "public shares turned off");
        assert_eq!(d[0].finding.severity, Severity::Medium);
    }

    #[test]
    fn joining_a_group_that_holds_an_admin_policy_is_flagged() {
        let mut e = engine();
        let lines = [
            r#"{"ts":"2026-03-18T10:00:00Z","type":"grant","grant_id":"g-1","actor":"erin","grantee":"Admins","grantee_type":"group","resource":"arn:aws:iam::aws:policy/AdministratorAccess"}"#,
            r#"{"ts":"2026-03-18T10:05:00Z","type":"membership","actor":"erin","group":"Admins","member":"mallory","op":"add"}"#,
        ];
        let d = feed(&mut e, &lines);
        assert_eq!(d.len(), 2, "{d:#?}");
        assert!(
            d[1].finding
                .summary
                .contains("mallory membership of group Admins")
        );
        assert_eq!(d[1].finding.evidence["why"], json!(["admin policy"]));
    }

    #[test]
    fn a_trace_below_min_confidence_never_pages() {
        // Viewed published advice that recommends this resource for someone
        // else: 0.8, above 0.7 -- paged.
        let other_grantee = GRANT
            .replace("\"eng-all\",\"grantee_type\":\"group\"", "\"dave\"")
            .replace("per forum/infra-q-4512", "");
        let d = feed(&mut engine(), &[ADVICE, VIEW, &other_grantee]);
        let g = grants(&d);
        assert_eq!(g[0].target.as_ref().unwrap().confidence, 0.8);
        assert_eq!(g[0].finding.severity, Severity::Critical);
        // The same with min_confidence 0.85: reported, low, never paged.
        let mut cfg = settings();
        cfg.min_confidence = 0.85;
        let mut e = Engine::new(Model::default(), Reach::default(), &cfg);
        let d = feed(&mut e, &[ADVICE, VIEW, &other_grantee]);
        let g = grants(&d);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].finding.severity, Severity::Low);
        assert_eq!(g[0].finding.evidence["below_min_confidence"], true);
    }

    #[test]
    fn a_shared_grantee_beside_the_grants_own_ticket_is_noted_not_paged() {
        let mut cfg = settings();
        // Even where the operator acts on weak traces.
        cfg.min_confidence = 0.5;
        let mut e = Engine::new(Model::default(), Reach::default(), &cfg);
        let ticketed = GRANT
            .replace("acl/internal-tools", "wiki/edit")
            .replace("per forum/infra-q-4512", "OPS-4411");
        let d = feed(&mut e, &[ADVICE, VIEW, &ticketed]);
        let g = grants(&d);
        assert_eq!(g.len(), 1);
        let f = &g[0].finding;
        assert_eq!(f.severity, Severity::Low);
        assert_eq!(f.evidence["trace"]["grantee_only_own_reference"], true);
        let chain = f.evidence["trace"]["chain"].to_string();
        assert!(chain.contains("change_cites_own_reference"), "{chain}");
        assert!(chain.contains("OPS-4411"), "{chain}");
        // Without a reference of its own the same coincidence is a trace at 0.6.
        let mut e = Engine::new(Model::default(), Reach::default(), &cfg);
        let bare = ticketed.replace(",\"reference\":\"OPS-4411\"", "");
        let d = feed(&mut e, &[ADVICE, VIEW, &bare]);
        let g = grants(&d);
        assert_eq!(
            g[0].finding.evidence["trace"]["grantee_only_own_reference"],
            false
        );
        assert_eq!(g[0].finding.severity, Severity::Critical);
    }
}
