//! The gate's decisions over a real engine fed the incident's events.

use std::time::Duration;

use super::*;
use crate::decode::{Decoder, NativeDecoder};
use crate::detect::{DetectionConfig, EngineConfig, Limits, Reach};
use crate::model::{Identities, Model, Pattern, Sensitivity, Tier};

fn settings() -> EngineConfig {
    EngineConfig {
        identities: Identities::new(vec![Pattern::new("agent:*").unwrap()]),
        sensitivity: Sensitivity::new(vec![
            (Pattern::new("acl/internal-*").unwrap(), Tier::High),
            (Pattern::new("vault/*").unwrap(), Tier::Critical),
            (Pattern::new("prod/*").unwrap(), Tier::High),
        ]),
        trace_window: Duration::from_secs(3600),
        detection: DetectionConfig::default(),
        limits: Limits::default(),
        min_confidence: 0.7,
    }
}

fn feed(e: &mut Engine, lines: &[&str]) {
    let mut d = NativeDecoder;
    for l in lines {
        for ev in d.decode_owned(l.as_bytes()).unwrap() {
            e.observe(&ev, Origin::TRUSTED);
        }
    }
}

/// Twenty engineers in `eng-all`, each using the wiki for a week.
fn org() -> Engine {
    let mut e = Engine::new(Model::default(), Reach::default(), &settings());
    let mut lines = Vec::new();
    for i in 0..20 {
        lines.push(format!(
            r#"{{"ts":"2026-03-10T08:00:00Z","type":"membership","actor":"hr","group":"eng-all","member":"e{i}","op":"add"}}"#
        ));
        for day in 10..17 {
            lines.push(format!(
                r#"{{"ts":"2026-03-{day}T09:{i:02}:00Z","type":"access","principal":"e{i}","resource":"wiki/eng"}}"#
            ));
        }
    }
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    feed(&mut e, &refs);
    e
}

const ADVICE: &str = r#"{"ts":"2026-03-18T09:02:11Z","type":"advice","advice_id":"adv-7731","agent":"agent:forum-helper","requested_by":"bob","channel":"forum/infra-q-4512","published":true,"recommends":[{"resource":"acl/internal-tools","role":"viewer","grantee":"eng-all"}]}"#;
const VIEWED: &str = r#"{"ts":"2026-03-18T09:05:40Z","type":"advice_viewed","advice_id":"adv-7731","principal":"alice"}"#;
const VERIFIED: &str = r#"{"ts":"2026-03-18T09:06:10Z","type":"advice_verified","advice_id":"adv-7731","verifier":"sec-lead"}"#;

/// The incident's binding, proposed two minutes after alice read the advice.
fn incident_binding() -> Proposal {
    Proposal {
        actor: "alice".into(),
        grantee: "eng-all".into(),
        resource: "acl/internal-tools".into(),
        role: Some("viewer".into()),
        reference: Some("per forum/infra-q-4512".into()),
        ts: Some("2026-03-18T09:07:02Z".into()),
        ..Proposal::default()
    }
}

fn now() -> Ts {
    Ts::parse_rfc3339("2026-03-18T09:07:02Z").unwrap()
}

#[test]
fn the_incidents_binding_is_denied_naming_the_advice_and_nothing_changes() {
    let mut e = org();
    feed(&mut e, &[ADVICE, VIEWED]);
    let untraced = e.untraced();
    let out = decide(&mut e, &incident_binding(), now()).unwrap();
    assert_eq!(out.decision, Decision::Deny, "{out:#?}");
    assert!(out.reasons[0].contains("adv-7731"), "{:?}", out.reasons);
    let t = out.trace.as_ref().expect("traced");
    assert!(t.confidence >= 0.7 && t.verified.is_none(), "{t:?}");
    assert_eq!(out.expansion.affected_engineers, 20);
    let f = out.finding.as_ref().expect("a deny is a finding");
    assert_eq!(f.kind, FindingKind::UnverifiedAgentGrant);
    assert_eq!(f.advice_id.as_deref(), Some("adv-7731"));
    assert_eq!(f.evidence["gate"]["decision"], "deny");
    assert_eq!(f.evidence["gate"]["proposed"]["grantee_type"], "group");
    assert!(f.action.is_none(), "nothing exists to revoke");

    // A dry judgement: nobody holds it, nothing is remembered, and asking
    // again gives the same answer and the same finding.
    assert!(e.model().holders("acl/internal-tools").is_empty());
    assert!(!e.model().holds("e3", "acl/internal-tools"));
    assert_eq!(e.untraced(), untraced);
    let again = decide(&mut e, &incident_binding(), now()).unwrap();
    assert_eq!(again.decision, Decision::Deny);
    assert_eq!(again.finding.unwrap().finding_id, f.finding_id);
}

#[test]
fn the_same_binding_after_a_person_verified_the_advice_is_allowed() {
    let mut e = org();
    feed(&mut e, &[ADVICE, VIEWED, VERIFIED]);
    let out = decide(&mut e, &incident_binding(), now()).unwrap();
    assert_eq!(out.decision, Decision::Allow, "{out:#?}");
    assert!(out.trace.unwrap().verified.is_some());
    assert!(out.finding.is_none());
    // The expansion is still reported, as confirmed by the verification.
    assert!(out.expansion.score >= 30.0, "{:?}", out.expansion);
    assert!(
        out.reasons[0].contains("sec-lead verified advice adv-7731"),
        "{:?}",
        out.reasons
    );
}

#[test]
fn an_unrelated_binding_is_allowed() {
    let mut e = org();
    feed(&mut e, &[ADVICE, VIEWED]);
    let p = Proposal {
        actor: "carol".into(),
        grantee: "dave".into(),
        resource: "wiki/eng".into(),
        role: Some("editor".into()),
        ts: Some("2026-03-18T09:07:02Z".into()),
        ..Proposal::default()
    };
    let out = decide(&mut e, &p, now()).unwrap();
    assert_eq!(out.decision, Decision::Allow, "{out:#?}");
    assert!(out.trace.is_none());
    assert!(out.finding.is_none());
}

#[test]
fn a_large_expansion_is_asked_about_with_its_figures() {
    let mut e = org();
    e.finish_training();
    let p = Proposal {
        actor: "carol".into(),
        grantee: "eng-all".into(),
        resource: "prod/payments-db".into(),
        role: Some("admin".into()),
        ts: Some("2026-03-18T09:07:02Z".into()),
        ..Proposal::default()
    };
    let out = decide(&mut e, &p, now()).unwrap();
    assert_eq!(out.decision, Decision::Ask, "{out:#?}");
    assert!(out.expansion.score >= 30.0, "{:?}", out.expansion);
    assert_eq!(out.expansion.tier, "high");
    let f = out.finding.unwrap();
    assert_eq!(f.kind, FindingKind::GrantExpansion);
    assert_eq!(f.evidence["gate"]["decision"], "ask");
    assert!(e.model().holders("prod/payments-db").is_empty());
}

#[test]
fn an_agents_call_is_asked_about_for_any_new_reach_and_a_critical_resource_always() {
    let mut e = org();
    // One engineer gaining a high-tier resource: below the grant threshold
    // (10 < 30), so only an agent's call is held for it.
    let p = Proposal {
        gate: GateKind::ClaudeCode,
        actor: "e1".into(),
        grantee: "e1".into(),
        resource: "prod/logs".into(),
        agent: Some("claude-code".into()),
        command: Some("kubectl ...".into()),
        ts: Some("2026-03-18T09:07:02Z".into()),
        ..Proposal::default()
    };
    assert_eq!(decide(&mut e, &p, now()).unwrap().decision, Decision::Ask);
    let api = Proposal {
        gate: GateKind::Api,
        ..p.clone()
    };
    assert_eq!(
        decide(&mut e, &api, now()).unwrap().decision,
        Decision::Allow
    );
    let vault = Proposal {
        resource: "vault/root".into(),
        ..api
    };
    let out = decide(&mut e, &vault, now()).unwrap();
    assert_eq!(out.decision, Decision::Ask, "{out:#?}");
    assert!(out.reasons.iter().any(|r| r.contains("critical")));
}

#[test]
fn a_grant_held_already_opens_nothing_and_is_allowed() {
    let mut e = org();
    feed(
        &mut e,
        &[
            ADVICE,
            VIEWED,
            r#"{"ts":"2026-03-18T09:06:00Z","type":"grant","grant_id":"g-1","actor":"hr","grantee":"eng-all","grantee_type":"group","resource":"acl/internal-tools","role":"viewer"}"#,
        ],
    );
    let out = decide(&mut e, &incident_binding(), now()).unwrap();
    assert_eq!(out.decision, Decision::Allow, "{out:#?}");
    assert!(out.expansion.already_held);
}

#[test]
fn an_incomplete_proposal_is_an_error_not_a_judgement() {
    let mut e = org();
    let p = Proposal {
        actor: "alice".into(),
        ..Proposal::default()
    };
    assert_eq!(
        decide(&mut e, &p, now()).unwrap_err(),
        ProposalError::Missing("grantee")
    );
    let p = Proposal {
        ts: Some("yesterday".into()),
        ..incident_binding()
    };
    assert!(matches!(
        decide(&mut e, &p, now()),
        Err(ProposalError::BadTime(_))
    ));
}
