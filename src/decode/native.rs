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
    /// What undoing a grant takes (extension; the cluster's internal lines
    /// carry what a vendor decoder read).
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

/// The fields of a plain access line, and nothing else: most lines of a
/// busy log are exactly this, and this small struct parses faster than
/// [`Raw`] (which is large, and moved around by the parser). A line with any
/// other field fails it and is parsed as [`Raw`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainAccess<'a> {
    #[serde(borrow)]
    ts: Cow<'a, str>,
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    principal: Cow<'a, str>,
    #[serde(borrow)]
    resource: Cow<'a, str>,
    outcome: Option<Outcome>,
}

impl PlainAccess<'_> {
    /// The access, if the line is one with every field valid; `None` sends
    /// it to the full decoder (which then reports what is wrong).
    fn access(&self) -> Option<AccessRef<'_>> {
        if self.kind != "access" {
            return None;
        }
        plain_access(
            &self.ts,
            &self.principal,
            &self.resource,
            self.outcome.unwrap_or_default(),
        )
    }
}

/// A plain access's fields as an access, if every one is valid (both names
/// given, the timestamp RFC 3339), whichever way the line was read.
fn plain_access<'a>(
    ts: &str,
    principal: &'a str,
    resource: &'a str,
    outcome: Outcome,
) -> Option<AccessRef<'a>> {
    if principal.is_empty() || resource.is_empty() {
        return None;
    }
    Some(AccessRef {
        ts: Ts::parse_rfc3339(ts)?,
        principal,
        resource,
        outcome,
        key: None,
    })
}

/// A plain access in the layout writers give one (reachguard's own output,
/// the generated organisations): `{"ts":"…","type":"access","principal":"…",
/// "resource":"…"}`, maybe with `"outcome"` last, with no whitespace and no
/// string holding an escape or a control character. Such a line is read by
/// finding its quotes, which is several times faster than a JSON parser; any
/// other line (another order, whitespace, escapes, other fields, anything
/// invalid) is `None` and goes to serde_json, which gives the same event for
/// the lines this takes (`the_plain_layout_reads_as_serde_json_does`).
fn plain_layout(line: &str) -> Option<AccessRef<'_>> {
    let rest = line.strip_prefix(r#"{"ts":""#)?;
    let (ts, rest) = plain_string(rest)?;
    let rest = rest.strip_prefix(r#","type":"access","principal":""#)?;
    let (principal, rest) = plain_string(rest)?;
    let rest = rest.strip_prefix(r#","resource":""#)?;
    let (resource, rest) = plain_string(rest)?;
    let (outcome, rest) = match rest.strip_prefix(r#","outcome":""#) {
        None => (Outcome::Success, rest),
        Some(o) => match o.strip_prefix(r#"success""#) {
            Some(rest) => (Outcome::Success, rest),
            None => (Outcome::Denied, o.strip_prefix(r#"denied""#)?),
        },
    };
    // JSON whitespace only may follow the object.
    let rest = rest.strip_prefix('}')?;
    if !rest
        .bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        return None;
    }
    plain_access(ts, principal, resource, outcome)
}

/// The contents of a JSON string up to its closing quote and what follows
/// that, if it holds nothing to unescape or to reject: no backslash and
/// no control character.
fn plain_string(s: &str) -> Option<(&str, &str)> {
    let end = memchr::memchr2(b'"', b'\\', s.as_bytes())?;
    let (value, rest) = s.split_at(end);
    // Not `any`, which stops early: this form is vectorised.
    let control = value.bytes().fold(false, |c, b| c | (b < 0x20));
    (!control && rest.starts_with('"')).then(|| (value, &rest[1..]))
}

/// The line's text, or `None` for a blank line.
fn text(line: &[u8]) -> Result<Option<&str>, DecodeError> {
    let text = std::str::from_utf8(line).map_err(|_| DecodeError::InvalidUtf8)?;
    Ok((!text.trim().is_empty()).then_some(text))
}

/// The event a (non-blank) line holds.
fn parse(text: &str) -> Result<Event, DecodeError> {
    let raw: Raw<'_> = serde_json::from_str(text).map_err(|e| DecodeError::Json(e.to_string()))?;
    build(raw)
}

impl Decoder for NativeDecoder {
    fn decode(&mut self, line: &[u8], out: &mut Vec<Event>) -> Result<(), DecodeError> {
        if let Some(text) = text(line)? {
            out.push(parse(text)?);
        }
        Ok(())
    }

    /// A plain access (no id, no action) goes into the run straight from the
    /// line, with the same checks as [`NativeDecoder::decode`] makes.
    fn decode_to(&mut self, line: &[u8], out: &mut Events) -> Result<(), DecodeError> {
        let Some(text) = text(line)? else {
            return Ok(());
        };
        if let Some(a) = plain_layout(text) {
            out.push_access(a);
            return Ok(());
        }
        if let Ok(plain) = serde_json::from_str::<PlainAccess<'_>>(text)
            && let Some(a) = plain.access()
        {
            out.push_access(a);
            return Ok(());
        }
        // Anything else, a plain access with escapes included: the run keeps
        // plain accesses in place whichever way they come.
        out.push(parse(text)?);
        Ok(())
    }

    fn independent_lines(&self) -> bool {
        true
    }
}

fn build(raw: Raw<'_>) -> Result<Event, DecodeError> {
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
        let mut out = Vec::new();
        NativeDecoder.decode(line.as_bytes(), &mut out)?;
        Ok(out)
    }

    #[test]
    fn decoding_into_a_run_gives_the_same_events_and_errors() {
        let lines: [&[u8]; 13] = [
            br#"{"ts":"2026-03-18T09:09:15Z","type":"access","principal":"carol","resource":"acl/internal-tools"}"#,
            br#"{"ts":"2026-03-18T09:09:15+01:00","type":"access","principal":"car\u006fl","resource":"db","outcome":"denied"}"#,
            br#"{"ts":"2026-03-18T09:09:15Z","type":"access","principal":"carol","resource":"db","action":"read"}"#,
            br#"{"ts":"2026-03-18T09:09:15Z","type":"access","principal":"carol","resource":"db","id":"a-1"}"#,
            br#"{"ts":"2026-03-18T09:09:15Z","type":"access","principal":"","resource":"db"}"#,
            br#"{"ts":"2026-03-18T09:09:15Z","type":"access","principal":"carol"}"#,
            br#"{"ts":"yesterday","type":"access","principal":"carol","resource":"db"}"#,
            br#"{"type":"access","principal":"carol","resource":"db"}"#,
            br#"{"ts":"2026-03-18T09:09:15Z","type":"login"}"#,
            br#"{"ts":"2026-03-18T09:07:02Z","type":"revoke","grant_id":"g-1","actor":"alice"}"#,
            br#"{"ts":1,"type":"access"}"#,
            b"   ",
            b"\xff",
        ];
        for line in lines {
            let mut owned = Vec::new();
            let one = NativeDecoder.decode(line, &mut owned);
            let mut run = Events::default();
            let two = NativeDecoder.decode_to(line, &mut run);
            let shown = String::from_utf8_lossy(line);
            assert_eq!(one, two, "{shown}");
            let back: Vec<Event> = run.iter().map(|e| e.to_event()).collect();
            assert_eq!(back, owned, "{shown}");
        }
    }

    /// Lines in and around the plain layout: valid or not, with escapes,
    /// control characters, quotes, other outcomes and whatever may follow.
    fn near_plain_lines() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let ts = prop_oneof![
            Just("2026-03-18T09:09:15Z".to_owned()),
            Just("2026-03-18T09:09:15.123+01:00".to_owned()),
            Just("2026-03-18 09:09:15".to_owned()),
            "[0-9T:Z.+-]{0,30}",
        ];
        let name = prop_oneof![
            "[a-z0-9/._-]{0,12}",
            "[a-z\\\\\"\\x00-\\x1f\\u{e9}\\u{1F600} ]{0,6}",
            Just("u\\u0041".to_owned()),
        ];
        let outcome = prop_oneof![
            Just(String::new()),
            Just(r#","outcome":"success""#.to_owned()),
            Just(r#","outcome":"denied""#.to_owned()),
            Just(r#","outcome":"Denied""#.to_owned()),
            Just(r#","outcome":"denied","action":"read""#.to_owned()),
        ];
        let end = prop_oneof![
            Just("}".to_owned()),
            Just("}\r".to_owned()),
            Just("} \t".to_owned()),
            Just("}x".to_owned()),
            Just("},".to_owned()),
            Just(String::new()),
        ];
        (ts, name.clone(), name, outcome, end).prop_map(|(ts, p, r, o, end)| {
            format!(r#"{{"ts":"{ts}","type":"access","principal":"{p}","resource":"{r}"{o}{end}"#)
        })
    }

    proptest::proptest! {
        #[test]
        fn the_plain_layout_reads_as_serde_json_does(line in near_plain_lines()) {
            let parsed = serde_json::from_str::<PlainAccess<'_>>(&line);
            match plain_layout(&line) {
                // Read here: serde_json reads the same access.
                Some(a) => {
                    let plain = parsed.expect("valid JSON");
                    proptest::prop_assert_eq!(plain.access(), Some(a));
                }
                // Left to serde_json: nothing is lost, the line decodes as before.
                None => {
                    let mut run = Events::default();
                    let mut owned = Vec::new();
                    proptest::prop_assert_eq!(
                        NativeDecoder.decode_to(line.as_bytes(), &mut run),
                        NativeDecoder.decode(line.as_bytes(), &mut owned)
                    );
                    let back: Vec<Event> = run.iter().map(|e| e.to_event()).collect();
                    proptest::prop_assert_eq!(back, owned);
                }
            }
        }
    }

    #[test]
    fn plain_lines_are_read_without_a_parser_and_the_rest_with_one() {
        let at = Ts::parse_rfc3339("2026-03-18T09:09:15Z").unwrap();
        let plain = |principal, resource, outcome| {
            Some(AccessRef {
                ts: at,
                principal,
                resource,
                outcome,
                key: None,
            })
        };
        for (line, want) in [
            (
                r#"{"ts":"2026-03-18T09:09:15Z","type":"access","principal":"carol","resource":"db/a"}"#,
                plain("carol", "db/a", Outcome::Success),
            ),
            (
                r#"{"ts":"2026-03-18T09:09:15Z","type":"access","principal":"carol","resource":"db/a","outcome":"denied"}"#,
                plain("carol", "db/a", Outcome::Denied),
            ),
            (
                "{\"ts\":\"2026-03-18T09:09:15Z\",\"type\":\"access\",\"principal\":\"j\u{e9}r\u{f4}me\",\"resource\":\"db/a\"}\r\n",
                plain("j\u{e9}r\u{f4}me", "db/a", Outcome::Success),
            ),
            // Escapes, spaces, other orders and fields: serde_json's.
            (
                r#"{"ts":"2026-03-18T09:09:15Z","type":"access","principal":"car\u006fl","resource":"db/a"}"#,
                None,
            ),
            (
                r#"{"ts":"2026-03-18T09:09:15Z","type":"access","principal":"a\"b","resource":"db/a"}"#,
                None,
            ),
            (
                r#"{"ts": "2026-03-18T09:09:15Z","type":"access","principal":"carol","resource":"db/a"}"#,
                None,
            ),
            (
                r#"{"type":"access","ts":"2026-03-18T09:09:15Z","principal":"carol","resource":"db/a"}"#,
                None,
            ),
            (
                r#"{"ts":"2026-03-18T09:09:15Z","type":"access","principal":"carol","resource":"db/a","action":"read"}"#,
                None,
            ),
            (
                r#"{"ts":"2026-03-18T09:09:15Z","type":"access","principal":"","resource":"db/a"}"#,
                None,
            ),
            (
                r#"{"ts":"2026-03-18T09:09:15Z","type":"access","principal":"carol","resource":"db/a"}}"#,
                None,
            ),
        ] {
            assert_eq!(plain_layout(line), want, "{line}");
        }
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
            NativeDecoder.decode(&[0xff, 0xfe], &mut Vec::new()),
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
