//! Confirmation gates: a proposed privilege change judged before it exists.
//!
//! Detection judges a grant the moment it is logged; a gate asks the same
//! question one step earlier, where the change is about to be made (the
//! Kubernetes API server's admission, an agent's tool call, a script calling
//! `POST /api/v1/decide`). [`decide`] runs the engine's own judgement of a
//! grant ([`Engine::judge_dry`]: baselines, the catalogue, the provenance
//! trace) without applying it, and turns it into one of three answers:
//!
//! | answer | when |
//! |---|---|
//! | `deny` | the change traces to agent advice no human verified, at or above `[response] min_confidence` (what the response stage would revoke) |
//! | `ask` | a weaker such trace; a `grant_expansion` (a large expansion beyond baseline); a grant critical whatever the baseline (an administrator role, a critical resource); for an agent's call, any expansion of reach beyond baseline; each unless a person verified the advice the change follows (that was the confirmation) |
//! | `allow` | anything else, and anything the grantee holds already |
//!
//! The answer carries its reasons, the trace and the expansion figures, and
//! for `deny` and `ask` the finding the daemon records ([`Outcome::finding`]).
//! The judgement never changes who holds what: the change is only proposed.

pub mod admission;
pub mod claude_code;
pub mod metrics;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::detect::{DryJudgement, Engine, Origin, Trace};
use crate::event::{ActorType, Body, Event, Grant, GranteeType, Ts};
use crate::finding::{Finding, FindingKind, Severity, finding_id};

pub use crate::owner::Unavailable;
pub use admission::{GateConfig, GateMode};
pub use metrics::GateMetrics;

/// The handlers' way to the engine's owner with a proposal.
pub type Asker = crate::owner::Asker<Proposal, Result<Outcome, ProposalError>>;
/// A proposal waiting for the engine's owner.
pub type Request = crate::owner::Request<Proposal, Result<Outcome, ProposalError>>;

/// A new channel for proposals: the handlers' end and the owner's.
pub fn channel() -> (Asker, tokio::sync::mpsc::Receiver<Request>) {
    crate::owner::channel()
}

/// Where a proposed change is judged: a label of
/// `reachguard_gate_decisions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum GateKind {
    /// `POST /api/v1/decide` called directly.
    #[default]
    Api,
    /// The Kubernetes admission webhook.
    K8s,
    /// The Claude Code `PreToolUse` hook.
    ClaudeCode,
}

impl GateKind {
    /// Every gate, for pre-creating metric series.
    pub const ALL: [GateKind; 3] = [GateKind::Api, GateKind::K8s, GateKind::ClaudeCode];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            GateKind::Api => "api",
            GateKind::K8s => "k8s",
            GateKind::ClaudeCode => "claude-code",
        }
    }
}

/// The answer to a proposed change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// A person must confirm first.
    Ask,
    /// Refused.
    Deny,
}

impl Decision {
    /// Every decision, for pre-creating metric series.
    pub const ALL: [Decision; 3] = [Decision::Allow, Decision::Ask, Decision::Deny];

    /// The label value and the API's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Ask => "ask",
            Decision::Deny => "deny",
        }
    }
}

/// A proposed grant, the body of `POST /api/v1/decide`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Proposal {
    /// Which gate asks (`api` when absent).
    pub gate: GateKind,
    /// Who would make the change (for an agent's call, the person the agent
    /// works for). Resolved through `[identities.aliases]`.
    pub actor: String,
    /// `human`, `agent` or `service`; from `[agents] patterns` when absent.
    pub actor_type: Option<ActorType>,
    /// Who would gain it.
    pub grantee: String,
    /// `user` or `group`; when absent, a group if the model knows a group of
    /// that name with members, else a user.
    pub grantee_type: Option<GranteeType>,
    /// What it opens, named as the audit decoders name it
    /// (`k8s/cluster/ClusterRole/cluster-admin`, `acl/internal-tools`).
    pub resource: String,
    /// The role.
    pub role: Option<String>,
    /// The change's reference (a ticket, a link): an advice id in it links
    /// the change to that advice.
    pub reference: Option<String>,
    /// The grant's id, if the caller has one (a binding's name, say).
    pub grant_id: Option<String>,
    /// For an agent's call: the agent.
    pub agent: Option<String>,
    /// For an agent's call: its session.
    pub session: Option<String>,
    /// For an agent's call: the command it would run.
    pub command: Option<String>,
    /// When the change would happen (RFC 3339); now when absent.
    pub ts: Option<String>,
}

/// Why a proposal cannot be judged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProposalError {
    /// A required field is missing or empty.
    #[error("`{0}` is required")]
    Missing(&'static str),
    /// `ts` is not RFC 3339.
    #[error("`ts` is not an RFC 3339 time: {0}")]
    BadTime(String),
}

/// The expansion figures of a judgement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// The sensitivity tier of the resource.
    pub tier: &'static str,
    /// People who would gain it.
    pub affected_engineers: usize,
    /// The expansion score (blast radius: engineers x sensitivity, less what
    /// their peers already hold); 0 when nothing new opens to anyone.
    pub score: f64,
    /// The grantee holds it already.
    pub already_held: bool,
    /// Why the built-in catalogue calls it critical (`admin_policy`, ...).
    pub critical: Vec<&'static str>,
}

/// What a gate answers.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Allow, ask or deny.
    pub decision: Decision,
    /// Why, one sentence each, the weightiest first.
    pub reasons: Vec<String>,
    /// The trace to agent advice, if the change has one.
    pub trace: Option<Trace>,
    /// The expansion figures.
    pub expansion: Figures,
    /// The finding recorded for a `deny` or `ask` (none for `allow`).
    pub finding: Option<Finding>,
}

/// The grant event a proposal describes, as of `now` unless it names a time.
pub fn proposed_grant(p: &Proposal, engine: &Engine, now: Ts) -> Result<Event, ProposalError> {
    for (name, v) in [
        ("actor", &p.actor),
        ("grantee", &p.grantee),
        ("resource", &p.resource),
    ] {
        if v.trim().is_empty() {
            return Err(ProposalError::Missing(name));
        }
    }
    let ts = match &p.ts {
        Some(s) => Ts::parse_rfc3339(s).ok_or_else(|| ProposalError::BadTime(s.clone()))?,
        // A model replayed ahead of the wall clock judges in its own time.
        None => now.max(engine.model().latest()),
    };
    let grantee_type = p.grantee_type.unwrap_or_else(|| {
        if engine.model().group_size(&p.grantee) > 0 {
            GranteeType::Group
        } else {
            GranteeType::User
        }
    });
    let grant_id = p.grant_id.clone().unwrap_or_else(|| {
        format!(
            "proposed:{}:{}:{}:{}:{}",
            p.actor,
            match grantee_type {
                GranteeType::User => "user",
                GranteeType::Group => "group",
            },
            p.grantee,
            p.role.as_deref().unwrap_or_default(),
            p.resource
        )
    });
    Ok(Event {
        ts,
        id: None,
        body: Body::Grant(Grant {
            grant_id,
            actor: p.actor.clone(),
            grantee: p.grantee.clone(),
            grantee_type,
            resource: p.resource.clone(),
            role: p.role.clone(),
            reference: p.reference.clone(),
            actor_type: p.actor_type,
            target: None,
        }),
    })
}

/// Judges `p` against the engine's current state, without applying it.
pub fn decide(engine: &mut Engine, p: &Proposal, now: Ts) -> Result<Outcome, ProposalError> {
    let ev = proposed_grant(p, engine, now)?;
    let grantee_type = match &ev.body {
        Body::Grant(g) => g.grantee_type,
        _ => GranteeType::User,
    };
    let j = engine
        .judge_dry(&ev, Origin::TRUSTED)
        .expect("a grant is always judged");
    Ok(outcome(p, grantee_type, j))
}

/// The answer a judgement calls for.
fn outcome(p: &Proposal, grantee_type: GranteeType, j: DryJudgement) -> Outcome {
    let mut decision = Decision::Allow;
    let mut reasons = Vec::new();
    let mut finding: Option<Finding> = None;
    // Held already (an update that keeps a binding's subjects, a repeated
    // grant): nothing new would open, whatever led to it; the response stage
    // deals with the grant that exists.
    let unverified = if j.already_held {
        None
    } else {
        j.unverified.as_ref()
    };
    if let (Some(d), Some(t)) = (unverified, &j.trace) {
        let strong = t.confidence >= j.min_confidence && !t.grantee_only_own_reference;
        let advice = t.advice_id.as_deref().unwrap_or("its own call");
        if strong {
            decision = Decision::Deny;
            reasons.push(format!(
                "traces to advice {advice} from {} that no person verified (confidence {:.2}, at or above {:.2}); have a person verify the advice, then make the change",
                t.agent, t.confidence, j.min_confidence
            ));
        } else {
            decision = Decision::Ask;
            reasons.push(format!(
                "may trace to advice {advice} from {} that no person verified (confidence {:.2}, below {:.2}); confirm it was not taken from that advice",
                t.agent, t.confidence, j.min_confidence
            ));
        }
        finding = Some(d.finding.clone());
    }
    // A person approved the very advice this change follows: that was the
    // confirmation an expansion asks for.
    let confirmed = j
        .trace
        .as_ref()
        .filter(|t| t.confidence >= j.min_confidence)
        .and_then(|t| Some((t.advice_id.as_deref()?, t.verified.as_ref()?)));
    if let Some(f) = &j.expansion {
        if let Some((advice, (_, verifier))) = confirmed {
            reasons.push(format!(
                "{verifier} verified advice {advice}, which recommends it, before the change: {}",
                f.summary
            ));
        } else if !j.already_held {
            decision = decision.max(Decision::Ask);
            reasons.push(f.summary.clone());
            finding.get_or_insert_with(|| f.clone());
        }
    } else if p.gate == GateKind::ClaudeCode
        && j.expansion_score > 0.0
        && !j.already_held
        && confirmed.is_none()
    {
        // An agent's call is asked about for any new reach, not only a large one.
        decision = decision.max(Decision::Ask);
        reasons.push(format!(
            "opens {} to {} beyond their baseline (expansion score {:.1})",
            p.resource,
            plural(j.affected.len(), "engineer"),
            j.expansion_score
        ));
    }
    if j.tier == crate::model::Tier::Critical
        && decision == Decision::Allow
        && !j.already_held
        && confirmed.is_none()
    {
        decision = Decision::Ask;
        reasons.push(format!("{} is a critical resource", p.resource));
    }
    if decision == Decision::Allow && reasons.is_empty() {
        reasons.push(if j.already_held {
            "the grantee already holds it".to_owned()
        } else {
            "no unverified advice behind it and no large expansion".to_owned()
        });
    }
    let figures = Figures {
        tier: j.tier.as_str(),
        affected_engineers: j.affected.len(),
        score: (j.expansion_score * 100.0).round() / 100.0,
        already_held: j.already_held,
        critical: j
            .critical
            .as_ref()
            .map(|v| v.why.iter().map(|w| w.as_str()).collect())
            .unwrap_or_default(),
    };
    let finding = (decision != Decision::Allow).then(|| {
        gate_finding(
            p,
            grantee_type,
            &j,
            decision,
            &reasons,
            finding.unwrap_or_else(|| plain(p, &j)),
        )
    });
    Outcome {
        decision,
        reasons,
        trace: j.trace,
        expansion: figures,
        finding,
    }
}

/// "3 engineers".
fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// The finding of an `ask` that no detection finding explains (a critical
/// resource, an agent's small expansion): a `grant_expansion` of its own.
fn plain(p: &Proposal, j: &DryJudgement) -> Finding {
    let mut principals: Vec<String> = j.affected.iter().take(100).cloned().collect();
    if principals.is_empty() {
        principals.push(j.grantee.clone());
    }
    Finding {
        finding_id: String::new(),
        kind: FindingKind::GrantExpansion,
        severity: if j.tier >= crate::model::Tier::High {
            Severity::High
        } else {
            Severity::Medium
        },
        ts: j.ts,
        principals,
        grant_id: None,
        advice_id: None,
        resource: Some(p.resource.clone()),
        score: j.expansion_score,
        summary: String::new(),
        evidence: json!({}),
        action: None,
    }
}

/// `f` as the gate records it: its id keyed by the proposal (a repeated
/// proposal is one finding), its summary saying the change was stopped
/// before it existed, and the gate's answer in its evidence.
fn gate_finding(
    p: &Proposal,
    grantee_type: GranteeType,
    j: &DryJudgement,
    decision: Decision,
    reasons: &[String],
    mut f: Finding,
) -> Finding {
    let grant_id = f.grant_id.clone().unwrap_or_default();
    let key = format!(
        "gate:{}:{}:{}:{}",
        p.gate.as_str(),
        decision.as_str(),
        grant_id,
        j.ts.0
    );
    f.finding_id = finding_id(f.kind, &key);
    let verb = match decision {
        Decision::Deny => "refused",
        _ => "held for a person to confirm",
    };
    f.summary = format!(
        "Proposed grant {verb} at the {} gate: {}",
        p.gate.as_str(),
        reasons.first().map(String::as_str).unwrap_or_default()
    );
    let gate = json!({
        "gate": p.gate.as_str(),
        "decision": decision.as_str(),
        "reasons": reasons,
        "proposed": {
            "actor": p.actor, "grantee": p.grantee, "grantee_type": grantee_type,
            "resource": p.resource, "role": p.role, "reference": p.reference,
            "agent": p.agent, "session": p.session, "command": p.command,
        },
    });
    match f.evidence.as_object_mut() {
        Some(e) => {
            e.insert("gate".into(), gate);
        }
        None => f.evidence = json!({ "gate": gate }),
    }
    f
}

#[cfg(test)]
mod tests;
