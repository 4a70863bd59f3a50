//! The native decoder: event schema v1 (DESIGN.md), one JSON object per line.
//!
//! Parses into one flat struct of borrowed optional fields (no intermediate
//! `serde_json::Value`), then checks the fields the `type` requires. Unknown fields
//! are ignored; a wrong type on a known field is a decode error.

use std::borrow::Cow;

use serde::Deserialize;

use super::{DecodeError, Decoder};
use crate::event::{
    Access, AccessRef, ActorType, Advice, AdviceVerified, AdviceViewed, Body, Event, EventType,
    Events, Grant, GranteeType, Membership, MembershipOp, Outcome, Recommendation, Revoke, Ts,
};

/// Decoder for the native format.
#[derive(Debug, Default)]
pub struct NativeDecoder;

type S<'a> = Option<Cow<'a, str>>;

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    ts: S<'a>,
    #[serde(borrow, rename = "type")]
    kind: S<'a>,
    #[serde(borrow)]
    id: S<'a>,
    #[serde(borrow)]
    principal: S<'a>,
    #[serde(borrow)]
    resource: S<'a>,
    #[serde(borrow)]
    action: S<'a>,
    outcome: Option<Outcome>,
    #[serde(borrow)]
    grant_id: S<'a>,
    #[serde(borrow)]
    actor: S<'a>,
    actor_type: Option<ActorType>,
    #[serde(borrow)]
    grantee: S<'a>,
    grantee_type: Option<GranteeType>,
    #[serde(borrow)]
    role: S<'a>,
    #[serde(borrow)]
    reference: S<'a>,
    #[serde(borrow)]
    group: S<'a>,
    #[serde(borrow)]
    member: S<'a>,
    op: Option<MembershipOp>,
    #[serde(borrow)]
    advice_id: S<'a>,
    #[serde(borrow)]
    agent: S<'a>,
    #[serde(borrow)]
    requested_by: S<'a>,
    #[serde(borrow)]
    channel: S<'a>,
    published: Option<bool>,
    recommends: Option<Vec<Recommendation>>,
    #[serde(borrow)]
    summary: S<'a>,
    #[serde(borrow)]
    verifier: S<'a>,
    /// What undoing a grant takes (an extension to schema v1:
    /// `Event::to_native_json` writes it, so a native line keeps what a
    /// vendor decoder read).
    target: Option<Box<crate::undo::Target>>,
}

fn own(s: S<'_>) -> Option<String> {
    s.map(Cow::into_owned)
}

/// A required string field's value, or which field is missing.
fn need(s: S<'_>, event_type: EventType, field: &'static str) -> Result<String, DecodeError> {
    match s {
        Some(v) if !v.is_empty() => Ok(v.into_owned()),
        _ => Err(DecodeError::MissingField {
            event_type: event_type.as_str(),
            field,
        }),
    }
}

impl Decoder for NativeDecoder {
    /// One pass of serde_json over the line into [`Raw`], which borrows
    /// every string it can; an access goes into the run from there without
    /// an owned event, anything else is built as one.
    fn decode(&mut self, line: &[u8], out: &mut Events) -> Result<(), DecodeError> {
        let text = std::str::from_utf8(line).map_err(|_| DecodeError::InvalidUtf8)?;
        if text.trim().is_empty() {
            return Ok(());
        }
        let raw: Raw<'_> =
            serde_json::from_str(text).map_err(|e| DecodeError::Json(e.to_string()))?;
        let (t, ts) = head(&raw)?;
        if t == EventType::Access {
            out.push_access(AccessRef {
                ts,
                principal: need_ref(&raw.principal, t, "principal")?,
                resource: need_ref(&raw.resource, t, "resource")?,
                outcome: raw.outcome.unwrap_or_default(),
                action: raw.action.as_deref(),
                id: raw.id.as_deref(),
                key: None,
            });
        } else {
            out.push(build(raw, t, ts)?);
        }
        Ok(())
    }

    fn independent_lines(&self) -> bool {
        true
    }
}

/// A required string field's value, borrowed, or which field is missing.
fn need_ref<'r>(
    s: &'r S<'_>,
    event_type: EventType,
    field: &'static str,
) -> Result<&'r str, DecodeError> {
    match s.as_deref() {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(DecodeError::MissingField {
            event_type: event_type.as_str(),
            field,
        }),
    }
}

/// The event's type and time, which every type requires.
fn head(raw: &Raw<'_>) -> Result<(EventType, Ts), DecodeError> {
    let kind = raw.kind.as_deref().ok_or(DecodeError::MissingField {
        event_type: "event",
        field: "type",
    })?;
    let t = EventType::from_name(kind).ok_or_else(|| DecodeError::UnknownType(kind.to_owned()))?;
    let ts_text = raw.ts.as_deref().ok_or(DecodeError::MissingField {
        event_type: t.as_str(),
        field: "ts",
    })?;
    let ts = Ts::parse_rfc3339(ts_text)
        .ok_or_else(|| DecodeError::InvalidTimestamp(ts_text.to_owned()))?;
    Ok((t, ts))
}

/// Any event but an access, owned.
fn build(raw: Raw<'_>, t: EventType, ts: Ts) -> Result<Event, DecodeError> {
    let body = match t {
        EventType::Access => Body::Access(Access {
            principal: need(raw.principal, t, "principal")?,
            resource: need(raw.resource, t, "resource")?,
            action: own(raw.action),
            outcome: raw.outcome.unwrap_or_default(),
        }),
        EventType::Grant => Body::Grant(Grant {
            grant_id: need(raw.grant_id, t, "grant_id")?,
            actor: need(raw.actor, t, "actor")?,
            grantee: need(raw.grantee, t, "grantee")?,
            grantee_type: raw.grantee_type.unwrap_or_default(),
            resource: need(raw.resource, t, "resource")?,
            role: own(raw.role),
            reference: own(raw.reference),
            actor_type: raw.actor_type,
            target: raw.target,
        }),
        EventType::Revoke => Body::Revoke(Revoke {
            grant_id: need(raw.grant_id, t, "grant_id")?,
            actor: need(raw.actor, t, "actor")?,
            reference: own(raw.reference),
        }),
        EventType::Membership => Body::Membership(Membership {
            actor: need(raw.actor, t, "actor")?,
            group: need(raw.group, t, "group")?,
            member: need(raw.member, t, "member")?,
            op: raw.op.ok_or(DecodeError::MissingField {
                event_type: t.as_str(),
                field: "op",
            })?,
            grant_id: own(raw.grant_id),
            reference: own(raw.reference),
            actor_type: raw.actor_type,
            target: raw.target,
        }),
        EventType::Advice => {
            let recommends = raw.recommends.unwrap_or_default();
            if let Some(r) = recommends.iter().find(|r| r.resource.is_empty()) {
                return Err(DecodeError::InvalidValue {
                    field: "recommends",
                    reason: format!("recommendation without a resource: {r:?}"),
                });
            }
            Body::Advice(Advice {
                advice_id: need(raw.advice_id, t, "advice_id")?,
                agent: need(raw.agent, t, "agent")?,
                requested_by: own(raw.requested_by),
                channel: own(raw.channel),
                published: raw.published.unwrap_or(false),
                recommends,
                summary: own(raw.summary),
            })
        }
        EventType::AdviceVerified => Body::AdviceVerified(AdviceVerified {
            advice_id: need(raw.advice_id, t, "advice_id")?,
            verifier: need(raw.verifier, t, "verifier")?,
        }),
        EventType::AdviceViewed => Body::AdviceViewed(AdviceViewed {
            advice_id: need(raw.advice_id, t, "advice_id")?,
            principal: need(raw.principal, t, "principal")?,
        }),
    };
    Ok(Event {
        ts,
        id: own(raw.id),
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(line: &str) -> Result<Vec<Event>, DecodeError> {
        NativeDecoder.decode_owned(line.as_bytes())
    }

    #[test]
    fn design_example_lines_decode_to_their_types() {
        let lines = [
            r#"{"ts":"2026-03-18T09:02:11Z","type":"advice","advice_id":"adv-7731","agent":"agent:forum-helper","requested_by":"bob","channel":"forum/infra-q-4512","published":true,"recommends":[{"resource":"acl/internal-tools","role":"viewer","grantee":"eng-all"}]}"#,
            r#"{"ts":"2026-03-18T09:05:40Z","type":"advice_viewed","advice_id":"adv-7731","principal":"alice"}"#,
            r#"{"ts":"2026-03-18T09:07:02Z","type":"grant","grant_id":"g-90211","actor":"alice","grantee":"eng-all","grantee_type":"group","resource":"acl/internal-tools","role":"viewer","reference":"per forum/infra-q-4512"}"#,
            r#"{"ts":"2026-03-18T09:09:15Z","type":"access","principal":"carol","resource":"acl/internal-tools"}"#,
        ];
        let types: Vec<EventType> = lines
            .iter()
            .map(|l| decode(l).unwrap()[0].body.event_type())
            .collect();
        assert_eq!(
            types,
            [
                EventType::Advice,
                EventType::AdviceViewed,
                EventType::Grant,
                EventType::Access
            ]
        );
        let Body::Grant(g) = &decode(lines[2]).unwrap()[0].body else {
            panic!("not a grant")
        };
        assert_eq!(g.grantee_type, GranteeType::Group);
        assert_eq!(g.reference.as_deref(), Some("per forum/infra-q-4512"));
        let Body::Advice(a) = &decode(lines[0]).unwrap()[0].body else {
            panic!("not advice")
        };
        assert!(a.published);
        assert_eq!(a.recommends[0].grantee.as_deref(), Some("eng-all"));
    }

    /// A grant's undo target is kept through a native line, as the cluster
    /// republishes events.
    #[test]
    fn a_grants_undo_target_survives_a_native_line() {
        let target = crate::undo::Target::K8sBinding {
            kind: "ClusterRoleBinding".into(),
            namespace: None,
            name: "ops-admin".into(),
            subject_kind: "User".into(),
            subject_name: "mallory".into(),
            subject_namespace: None,
            subject_index: None,
        };
        let ev = Event {
            ts: Ts(0),
            id: None,
            body: Body::Grant(Grant {
                grant_id: "k8s:1:0".into(),
                actor: "agent".into(),
                grantee: "mallory".into(),
                grantee_type: GranteeType::User,
                resource: "k8s/cluster/ClusterRole/cluster-admin".into(),
                role: None,
                reference: None,
                actor_type: None,
                target: target.boxed(),
            }),
        };
        assert_eq!(decode(&ev.to_native_json()).unwrap(), [ev]);
    }

    #[test]
    fn native_lines_round_trip_through_to_native_json() {
        let line = r#"{"ts":"2026-03-18T09:07:02Z","type":"membership","actor":"hr-bot","group":"sre","member":"dave","op":"add","grant_id":"m-1","actor_type":"service"}"#;
        let ev = decode(line).unwrap().remove(0);
        let again = decode(&ev.to_native_json()).unwrap().remove(0);
        assert_eq!(ev, again);
    }

    #[test]
    fn missing_required_fields_name_the_field() {
        assert_eq!(
            decode(
                r#"{"ts":"2026-03-18T09:07:02Z","type":"grant","grant_id":"g","actor":"a","resource":"r"}"#
            ),
            Err(DecodeError::MissingField {
                event_type: "grant",
                field: "grantee"
            })
        );
        assert_eq!(
            decode(r#"{"type":"access","principal":"a","resource":"r"}"#),
            Err(DecodeError::MissingField {
                event_type: "access",
                field: "ts"
            })
        );
        assert_eq!(
            decode(r#"{"ts":"2026-03-18T09:07:02Z","principal":"a"}"#),
            Err(DecodeError::MissingField {
                event_type: "event",
                field: "type"
            })
        );
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        assert!(matches!(
            decode(r#"{"ts":"soon","type":"access","principal":"a","resource":"r"}"#),
            Err(DecodeError::InvalidTimestamp(_))
        ));
        assert!(matches!(
            decode(r#"{"ts":"2026-03-18T09:07:02Z","type":"login","principal":"a"}"#),
            Err(DecodeError::UnknownType(t)) if t == "login"
        ));
        assert!(matches!(
            decode(r#"{"ts":"2026-03-18T09:07:02Z","type":"access","principal":7,"resource":"r"}"#),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(decode("not json"), Err(DecodeError::Json(_))));
        assert_eq!(
            NativeDecoder.decode_owned(&[0xff, 0xfe]),
            Err(DecodeError::InvalidUtf8)
        );
    }

    #[test]
    fn escaped_strings_and_unknown_fields_are_fine() {
        let ev = decode(r#"{"ts":"2026-03-18T09:07:02Z","type":"access","principal":"a\"b","resource":"r\\s","extra":{"x":[1,2]}}"#)
            .unwrap()
            .remove(0);
        let Body::Access(a) = ev.body else { panic!() };
        assert_eq!(a.principal, "a\"b");
        assert_eq!(a.resource, "r\\s");
    }

    #[test]
    fn blank_lines_produce_nothing() {
        assert_eq!(decode("   ").unwrap(), vec![]);
    }
}
