//! Provenance: does a privilege-increasing change trace back to agent advice?
//!
//! Given a grant (or membership add) and the model, find the advice that most
//! plausibly led to it, with a confidence and the chain of evidence:
//!
//! | signal | confidence |
//! |---|---|
//! | the actor is itself an agent | 1.0 |
//! | the reference names the advice id | 1.0 |
//! | the reference cites the channel the advice was posted in | 0.9 if the advice recommends this resource (or resource and grantee), 0.8 if only this grantee, 0.6 otherwise |
//! | the actor viewed published advice (or asked for it) within the trace window before the change | 0.9 if the advice recommends this resource and grantee, 0.8 resource only, 0.6 grantee only; no link if it recommends neither |
//!
//! A trace whose only link is a view of advice that shares just the grantee
//! (another resource) while the change cites a reference of its own is marked
//! [`Trace::grantee_only_own_reference`]: detection notes it and never pages.
//!
//! Advice read from agent telemetry (an agent's call that ran a command) links
//! only to the grants the command names: resource and grantee, or the resource
//! alone where the command leaves the grantee open.
//!
//! Two or more signals for the same advice add 0.05 (capped at 1.0). The best
//! candidate wins; at equal confidence a verified one wins, so a change that cites
//! advice a human approved beforehand is not blamed on some other advice.

use serde::Serialize;

use crate::event::{ActorType, Recommendation, Ts};
use crate::model::{AdviceRecord, Model, SawHow};

/// The privilege-increasing change being traced.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Who made the change.
    pub actor: &'a str,
    /// What kind of principal the actor is.
    pub actor_type: ActorType,
    /// The resource opened (for a membership, the group joined).
    pub resource: &'a str,
    /// Who gains it (for a membership, the member).
    pub grantee: &'a str,
    /// The free-text reference.
    pub reference: Option<&'a str>,
    /// When.
    pub ts: Ts,
}

/// One link in the evidence chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link {
    /// Event time of the step.
    pub ts: Ts,
    /// Machine-readable step name.
    pub step: &'static str,
    /// A person-readable description.
    pub detail: String,
}

/// Whether the trace rests on something written down or on inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// The reference names the advice, or the actor is an agent.
    Explicit,
    /// Built from views, channels and recommendations.
    Inferred,
}

/// The best explanation of a change in terms of agent advice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    /// The advice, when the trace goes through one.
    pub advice_id: Option<String>,
    /// The agent behind it.
    pub agent: String,
    /// 0..=1.
    pub confidence: f64,
    /// Explicit or inferred.
    pub link: LinkKind,
    /// A human's approval before the change, if there was one: then the trace is benign.
    pub verified: Option<(Ts, String)>,
    /// What happened, in order.
    pub chain: Vec<Link>,
    /// The advice shares only the grantee with the change (it recommends
    /// other resources) and the change cites a reference of its own: a weak
    /// coincidence, noted but never paged on.
    pub grantee_only_own_reference: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Match {
    Both,
    Resource,
    Grantee,
    Neither,
}

fn recommendation_match(recs: &[Recommendation], resource: &str, grantee: &str) -> Match {
    let mut best = Match::Neither;
    for r in recs {
        let res = r.resource == resource;
        let gr = r.grantee.as_deref() == Some(grantee);
        match (res, gr) {
            (true, true) => return Match::Both,
            (true, false) => best = Match::Resource,
            (false, true) if best == Match::Neither => best = Match::Grantee,
            _ => {}
        }
    }
    best
}

/// Whether the advice is an agent's tool call read from telemetry
/// (`decode::otlp` names those `otel:...`).
fn from_telemetry(a: &AdviceRecord) -> bool {
    a.advice_id.starts_with("otel:")
}

/// Whether a recommendation of `resource` leaves the grantee open (a command
/// whose grantee is the caller or is in a document, say).
fn names_no_grantee(a: &AdviceRecord, resource: &str) -> bool {
    a.recommends
        .iter()
        .any(|r| r.resource == resource && r.grantee.is_none())
}

/// "viewer on acl/x for eng-all; ...": what advice recommends, for summaries.
pub(crate) fn describe_recs(recs: &[Recommendation]) -> String {
    if recs.is_empty() {
        return "no specific grant".into();
    }
    recs.iter()
        .map(|r| {
            let role = r
                .role
                .as_deref()
                .map(|x| format!("{x} on "))
                .unwrap_or_default();
            match &r.grantee {
                Some(g) => format!("{role}{} for {g}", r.resource),
                None => format!("{role}{}", r.resource),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

struct Candidate<'m> {
    advice: &'m AdviceRecord,
    /// Some signal names the advice or matches the resource, not only the grantee.
    beyond_grantee: bool,
    confidence: f64,
    signals: u32,
    link: LinkKind,
    chain: Vec<Link>,
}

fn add<'m>(
    cands: &mut Vec<Candidate<'m>>,
    advice: &'m AdviceRecord,
    (conf, beyond_grantee): (f64, bool),
    link: LinkKind,
    step: Link,
) {
    if let Some(c) = cands
        .iter_mut()
        .find(|c| c.advice.advice_id == advice.advice_id)
    {
        c.beyond_grantee |= beyond_grantee;
        c.confidence = c.confidence.max(conf);
        c.signals += 1;
        if link == LinkKind::Explicit {
            c.link = LinkKind::Explicit;
        }
        c.chain.push(step);
    } else {
        cands.push(Candidate {
            advice,
            beyond_grantee,
            confidence: conf,
            signals: 1,
            link,
            chain: vec![step],
        });
    }
}

/// Traces `s` to agent advice. `window_ms` bounds how long after seeing advice a
/// change can be inferred to follow it. Returns `None` when nothing links it.
pub fn trace(model: &Model, s: &Subject<'_>, window_ms: i64) -> Option<Trace> {
    let mut cands: Vec<Candidate<'_>> = Vec::new();
    if let Some(reference) = s.reference {
        for a in model.advice_cited_by_id(reference) {
            add(
                &mut cands,
                a,
                (1.0, true),
                LinkKind::Explicit,
                Link {
                    ts: s.ts,
                    step: "reference_cites_advice",
                    detail: format!(
                        "the change's reference {reference:?} names advice {}",
                        a.advice_id
                    ),
                },
            );
        }
        for a in model.advice_cited_by_channel(reference) {
            let conf = match recommendation_match(&a.recommends, s.resource, s.grantee) {
                Match::Both | Match::Resource => 0.9,
                Match::Grantee => 0.8,
                Match::Neither => 0.6,
            };
            let ch = a.channel.as_deref().unwrap_or_default();
            add(
                &mut cands,
                a,
                (conf, true),
                LinkKind::Inferred,
                Link {
                    ts: s.ts,
                    step: "reference_cites_channel",
                    detail: format!(
                        "the change's reference {reference:?} cites {ch}, where advice {} was posted",
                        a.advice_id
                    ),
                },
            );
        }
    }

    let horizon = s.ts.add_millis(-window_ms);
    for seen in model.sightings(s.actor).iter().rev() {
        if seen.ts > s.ts || seen.ts < horizon {
            continue;
        }
        let Some(a) = model.advice(&seen.advice_id) else {
            continue;
        };
        if !a.published && seen.how == SawHow::Viewed {
            continue;
        }
        let m = recommendation_match(&a.recommends, s.resource, s.grantee);
        let conf = match m {
            Match::Both => 0.9,
            // A command names its grants exactly: the same role for someone
            // else is another change, not this call's.
            Match::Resource if from_telemetry(a) && !names_no_grantee(a, s.resource) => continue,
            Match::Resource => 0.8,
            Match::Grantee if from_telemetry(a) => continue,
            Match::Grantee => 0.6,
            Match::Neither => continue,
        };
        let verb = match seen.how {
            SawHow::Viewed => "viewed",
            SawHow::Requested => "asked for",
        };
        add(
            &mut cands,
            a,
            (conf, m != Match::Grantee),
            LinkKind::Inferred,
            Link {
                ts: seen.ts,
                step: match seen.how {
                    SawHow::Viewed => "actor_viewed_advice",
                    SawHow::Requested => "actor_requested_advice",
                },
                detail: format!(
                    "{} {verb} advice {} ({}s before the change), which recommends {}",
                    s.actor,
                    a.advice_id,
                    (s.ts.0 - seen.ts.0) / 1000,
                    describe_recs(&a.recommends)
                ),
            },
        );
    }

    let best = cands
        .into_iter()
        .map(|mut c| {
            if c.signals > 1 {
                c.confidence = (c.confidence + 0.05).min(1.0);
            }
            c
        })
        .max_by(|a, b| {
            a.confidence.total_cmp(&b.confidence).then_with(|| {
                a.advice
                    .verified_by(s.ts)
                    .is_some()
                    .cmp(&b.advice.verified_by(s.ts).is_some())
            })
        });

    if s.actor_type == ActorType::Agent {
        // An agent changing privileges is agent advice acted on with no human in
        // between, unless it executes advice a human approved and names it.
        let verified = best
            .as_ref()
            .filter(|c| c.link == LinkKind::Explicit)
            .and_then(|c| c.advice.verified_by(s.ts).cloned());
        let mut chain = vec![Link {
            ts: s.ts,
            step: "actor_is_agent",
            detail: format!("{} is an AI agent and made the change itself", s.actor),
        }];
        let advice_id = best.as_ref().map(|c| c.advice.advice_id.clone());
        if let Some(c) = best {
            chain.extend(c.chain);
        }
        return Some(Trace {
            advice_id,
            agent: s.actor.to_owned(),
            confidence: 1.0,
            link: LinkKind::Explicit,
            verified,
            chain,
            grantee_only_own_reference: false,
        });
    }

    let c = best?;
    let a = c.advice;
    // Only views link it, the advice recommends the grantee something else, and
    // the change cites a reference that is not the advice's.
    let own_reference = s
        .reference
        .map(str::trim)
        .filter(|r| !r.is_empty() && !c.beyond_grantee);
    let mut chain = vec![Link {
        ts: a.ts,
        step: if a.published {
            "agent_published_advice"
        } else {
            "agent_produced_advice"
        },
        detail: format!(
            "{} {} advice {}{} recommending {}{}",
            a.agent,
            if a.published { "published" } else { "produced" },
            a.advice_id,
            a.channel
                .as_deref()
                .map(|ch| format!(" in {ch}"))
                .unwrap_or_default(),
            describe_recs(&a.recommends),
            // Agent telemetry's advice is a call: its command, decision and source.
            a.summary
                .as_deref()
                .filter(|_| a.advice_id.starts_with("otel:"))
                .map(|s| format!(": {s}"))
                .unwrap_or_default()
        ),
    }];
    let mut rest = c.chain;
    rest.sort_by_key(|l| l.ts);
    chain.extend(rest);
    for (at, who) in &a.agent_approvals {
        if *at <= s.ts {
            chain.push(Link {
                ts: *at,
                step: "agent_approval_ignored",
                detail: format!(
                    "{who} approved the advice, but it is an agent: that is not human review"
                ),
            });
        }
    }
    let verified = a.verified_by(s.ts).cloned();
    if let Some((at, who)) = &verified {
        chain.push(Link {
            ts: *at,
            step: "human_verified_advice",
            detail: format!("{who} verified the advice before the change"),
        });
    }
    if let Some(r) = own_reference {
        chain.push(Link {
            ts: s.ts,
            step: "change_cites_own_reference",
            detail: format!(
                "the change cites its own reference {r:?}, and advice {} shares only its grantee {}, not its resource",
                a.advice_id, s.grantee
            ),
        });
    }
    chain.sort_by_key(|l| l.ts);
    Some(Trace {
        advice_id: Some(a.advice_id.clone()),
        agent: a.agent.clone(),
        confidence: c.confidence,
        link: c.link,
        verified,
        chain,
        grantee_only_own_reference: own_reference.is_some(),
    })
}
