//! The compact encoding of decoded events on the cluster's event stream.
//!
//! An instance decodes each raw line once and publishes its events in this
//! encoding; a partition worker reads them back into an [`Events`] run
//! without parsing anything. A message's payload is a sequence of frames, each
//! a little-endian `u32` length and then the frame:
//!
//! - `A`, an access (nearly every event): the time (`i64` milliseconds), the
//!   outcome (`0` success, `1` denied), which optional names follow (bit 0
//!   the action, bit 1 the id), then the principal, the resource and those
//!   names, each as a `u32` length and its UTF-8 bytes;
//! - any other event: a letter for its type (`G` grant, `R` revoke, `M`
//!   membership, `V` advice, `Y` advice verified, `W` advice viewed), the
//!   time, then its fields in the order [`crate::event`] declares them:
//!   names as above, an optional one after a byte `0` (absent) or `1`,
//!   enumerations as one byte, the advice's recommendations after their
//!   count (`u32`), and a revocation target as its JSON (the shape hook
//!   payloads give it) in a name.
//!
//! A frame that does not read back is a decode error, counted and skipped by
//! the worker like any other.

use crate::decode::DecodeError;
use crate::event::{
    AccessRef, ActorType, Advice, AdviceVerified, AdviceViewed, Body, Event, EventRef, Events,
    Grant, GranteeType, Membership, MembershipOp, Outcome, Recommendation, Revoke, Ts,
};
use crate::undo::Target;

const ACCESS: u8 = b'A';
const GRANT: u8 = b'G';
const REVOKE: u8 = b'R';
const MEMBERSHIP: u8 = b'M';
const ADVICE: u8 = b'V';
const VERIFIED: u8 = b'Y';
const VIEWED: u8 = b'W';

/// Appends `ev`'s frame, with its length in front, to `out`.
pub fn encode(ev: EventRef<'_>, out: &mut Vec<u8>) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    // An access held whole still gets the access frame.
    let ev = match ev {
        EventRef::Other(e) => EventRef::from(e),
        access => access,
    };
    match ev {
        EventRef::Access(a) => {
            out.push(ACCESS);
            out.extend_from_slice(&a.ts.0.to_le_bytes());
            out.push(match a.outcome {
                Outcome::Success => 0,
                Outcome::Denied => 1,
            });
            out.push(u8::from(a.action.is_some()) | (u8::from(a.id.is_some()) << 1));
            for name in [Some(a.principal), Some(a.resource), a.action, a.id]
                .into_iter()
                .flatten()
            {
                out.extend_from_slice(&len32(name.len()).to_le_bytes());
                out.extend_from_slice(name.as_bytes());
            }
        }
        EventRef::Other(e) => other(e, &mut Put(out)),
    }
    let len = len32(out.len() - at - 4);
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

/// Writes a non-access event's frame (after its length).
fn other(e: &Event, w: &mut Put<'_>) {
    let kind = match &e.body {
        Body::Access(_) => unreachable!("an access has its own frame"),
        Body::Grant(_) => GRANT,
        Body::Revoke(_) => REVOKE,
        Body::Membership(_) => MEMBERSHIP,
        Body::Advice(_) => ADVICE,
        Body::AdviceVerified(_) => VERIFIED,
        Body::AdviceViewed(_) => VIEWED,
    };
    w.byte(kind);
    w.0.extend_from_slice(&e.ts.0.to_le_bytes());
    w.opt(e.id.as_deref());
    match &e.body {
        Body::Access(_) => {}
        Body::Grant(g) => {
            w.name(&g.grant_id);
            w.name(&g.actor);
            w.name(&g.grantee);
            w.byte(u8::from(g.grantee_type == GranteeType::Group));
            w.name(&g.resource);
            w.opt(g.role.as_deref());
            w.opt(g.reference.as_deref());
            w.actor_type(g.actor_type);
            w.target(g.target.as_deref());
        }
        Body::Revoke(r) => {
            w.name(&r.grant_id);
            w.name(&r.actor);
            w.opt(r.reference.as_deref());
        }
        Body::Membership(m) => {
            w.name(&m.actor);
            w.name(&m.group);
            w.name(&m.member);
            w.byte(u8::from(m.op == MembershipOp::Remove));
            w.opt(m.grant_id.as_deref());
            w.opt(m.reference.as_deref());
            w.actor_type(m.actor_type);
            w.target(m.target.as_deref());
        }
        Body::Advice(a) => {
            w.name(&a.advice_id);
            w.name(&a.agent);
            w.opt(a.requested_by.as_deref());
            w.opt(a.channel.as_deref());
            w.byte(u8::from(a.published));
            w.0.extend_from_slice(&len32(a.recommends.len()).to_le_bytes());
            for r in &a.recommends {
                w.name(&r.resource);
                w.opt(r.role.as_deref());
                w.opt(r.grantee.as_deref());
            }
            w.opt(a.summary.as_deref());
        }
        Body::AdviceVerified(v) => {
            w.name(&v.advice_id);
            w.name(&v.verifier);
        }
        Body::AdviceViewed(v) => {
            w.name(&v.advice_id);
            w.name(&v.principal);
        }
    }
}

/// Writes the parts of a frame.
struct Put<'a>(&'a mut Vec<u8>);

impl Put<'_> {
    fn byte(&mut self, b: u8) {
        self.0.push(b);
    }

    fn name(&mut self, s: &str) {
        self.0.extend_from_slice(&len32(s.len()).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }

    fn opt(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.byte(1);
                self.name(s);
            }
            None => self.byte(0),
        }
    }

    fn actor_type(&mut self, t: Option<ActorType>) {
        self.byte(match t {
            None => 0,
            Some(ActorType::Human) => 1,
            Some(ActorType::Agent) => 2,
            Some(ActorType::Service) => 3,
        });
    }

    fn target(&mut self, t: Option<&Target>) {
        let json = t.map(|t| serde_json::to_string(t).expect("a target serialises"));
        self.opt(json.as_deref());
    }
}

/// Reads the parts of a frame, in the order [`Put`] wrote them.
struct Get<'a>(&'a [u8]);

impl<'a> Get<'a> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let (&b, rest) = self.0.split_first().ok_or_else(|| bad("cut frame"))?;
        self.0 = rest;
        Ok(b)
    }

    fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(bad("not a flag")),
        }
    }

    fn ts(&mut self) -> Result<Ts, DecodeError> {
        let (ts, rest) = self
            .0
            .split_first_chunk::<8>()
            .ok_or_else(|| bad("cut time"))?;
        self.0 = rest;
        Ok(Ts(i64::from_le_bytes(*ts)))
    }

    fn str(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(take(&mut self.0)?).map_err(|_| DecodeError::InvalidUtf8)
    }

    fn name(&mut self) -> Result<String, DecodeError> {
        self.str().map(str::to_owned)
    }

    fn opt(&mut self) -> Result<Option<String>, DecodeError> {
        Ok(if self.flag()? {
            Some(self.name()?)
        } else {
            None
        })
    }

    fn actor_type(&mut self) -> Result<Option<ActorType>, DecodeError> {
        Ok(match self.byte()? {
            0 => None,
            1 => Some(ActorType::Human),
            2 => Some(ActorType::Agent),
            3 => Some(ActorType::Service),
            _ => return Err(bad("unknown actor type")),
        })
    }

    fn target(&mut self) -> Result<Option<Box<Target>>, DecodeError> {
        if !self.flag()? {
            return Ok(None);
        }
        let json = self.str()?;
        let t: Target = serde_json::from_str(json).map_err(|_| bad("unreadable target"))?;
        Ok(Some(Box::new(t)))
    }

    fn end(&self) -> Result<(), DecodeError> {
        match self.0.is_empty() {
            true => Ok(()),
            false => Err(bad("trailing bytes")),
        }
    }
}

/// Reads a non-access event's frame after its kind letter.
fn read_other(kind: u8, r: &mut Get<'_>) -> Result<Event, DecodeError> {
    let ts = r.ts()?;
    let id = r.opt()?;
    let body = match kind {
        GRANT => Body::Grant(Grant {
            grant_id: r.name()?,
            actor: r.name()?,
            grantee: r.name()?,
            grantee_type: if r.flag()? {
                GranteeType::Group
            } else {
                GranteeType::User
            },
            resource: r.name()?,
            role: r.opt()?,
            reference: r.opt()?,
            actor_type: r.actor_type()?,
            target: r.target()?,
        }),
        REVOKE => Body::Revoke(Revoke {
            grant_id: r.name()?,
            actor: r.name()?,
            reference: r.opt()?,
        }),
        MEMBERSHIP => Body::Membership(Membership {
            actor: r.name()?,
            group: r.name()?,
            member: r.name()?,
            op: if r.flag()? {
                MembershipOp::Remove
            } else {
                MembershipOp::Add
            },
            grant_id: r.opt()?,
            reference: r.opt()?,
            actor_type: r.actor_type()?,
            target: r.target()?,
        }),
        ADVICE => {
            let advice_id = r.name()?;
            let agent = r.name()?;
            let requested_by = r.opt()?;
            let channel = r.opt()?;
            let published = r.flag()?;
            let (n, rest) =
                r.0.split_first_chunk::<4>()
                    .ok_or_else(|| bad("cut count"))?;
            r.0 = rest;
            let n = u32::from_le_bytes(*n) as usize;
            // Each recommendation takes at least six bytes: a damaged count
            // cannot make us reserve more than the frame could hold.
            let mut recommends = Vec::with_capacity(n.min(r.0.len() / 6));
            for _ in 0..n {
                recommends.push(Recommendation {
                    resource: r.name()?,
                    role: r.opt()?,
                    grantee: r.opt()?,
                });
            }
            Body::Advice(Advice {
                advice_id,
                agent,
                requested_by,
                channel,
                published,
                recommends,
                summary: r.opt()?,
            })
        }
        VERIFIED => Body::AdviceVerified(AdviceVerified {
            advice_id: r.name()?,
            verifier: r.name()?,
        }),
        VIEWED => Body::AdviceViewed(AdviceViewed {
            advice_id: r.name()?,
            principal: r.name()?,
        }),
        _ => return Err(bad("unknown kind")),
    };
    r.end()?;
    Ok(Event { ts, id, body })
}

/// A length as written in a frame. Events come from lines of bounded
/// length, far below 4 GiB.
fn len32(n: usize) -> u32 {
    u32::try_from(n).expect("an event's frame stays below 4 GiB")
}

/// The frames of `payload` in order; an `Err` ends it where a length runs
/// past the end.
pub fn frames(payload: &[u8]) -> impl Iterator<Item = Result<&[u8], DecodeError>> {
    let mut rest = payload;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let frame = take(&mut rest);
        if frame.is_err() {
            rest = &[];
        }
        Some(frame)
    })
}

/// Takes one length-prefixed slice off the front of `rest`.
fn take<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], DecodeError> {
    let (len, tail) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| bad("cut length"))?;
    let len = u32::from_le_bytes(*len) as usize;
    if tail.len() < len {
        return Err(bad("length past the end"));
    }
    let (frame, tail) = tail.split_at(len);
    *rest = tail;
    Ok(frame)
}

fn bad(reason: &'static str) -> DecodeError {
    DecodeError::Unrecognized {
        format: "event frame",
        reason,
    }
}

/// Appends the event of one frame (without its length) to `out`.
pub fn decode(frame: &[u8], out: &mut Events) -> Result<(), DecodeError> {
    match frame.split_first() {
        Some((&ACCESS, rest)) => {
            let (ts, rest) = rest
                .split_first_chunk::<8>()
                .ok_or_else(|| bad("cut time"))?;
            let [outcome, optional, names @ ..] = rest else {
                return Err(bad("cut access"));
            };
            let optional = *optional;
            let outcome = match outcome {
                0 => Outcome::Success,
                1 => Outcome::Denied,
                _ => return Err(bad("unknown outcome")),
            };
            let mut names = names;
            let mut name =
                || std::str::from_utf8(take(&mut names)?).map_err(|_| DecodeError::InvalidUtf8);
            let principal = name()?;
            let resource = name()?;
            let action = if optional & 1 != 0 {
                Some(name()?)
            } else {
                None
            };
            let id = if optional & 2 != 0 {
                Some(name()?)
            } else {
                None
            };
            if !names.is_empty() || optional > 3 {
                return Err(bad("trailing bytes"));
            }
            out.push_access(AccessRef {
                ts: Ts(i64::from_le_bytes(*ts)),
                principal,
                resource,
                outcome,
                action,
                id,
                key: None,
            });
            Ok(())
        }
        Some((&kind, rest)) => {
            let e = read_other(kind, &mut Get(rest))?;
            out.push(e);
            Ok(())
        }
        None => Err(bad("empty frame")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn events() -> Vec<Event> {
        let mut with_both = Event::access(Ts(-5), "j\u{e9}r\u{f4}me\n\t\"", "db/a");
        with_both.id = Some(String::new());
        if let Body::Access(a) = &mut with_both.body {
            a.action = Some("read".into());
            a.outcome = Outcome::Denied;
        }
        vec![
            Event::access(Ts(1_773_824_955_000), "carol", "acl/internal-tools"),
            with_both,
            Event {
                ts: Ts(9),
                id: Some("r-1".into()),
                body: Body::Revoke(Revoke {
                    grant_id: "g-1".into(),
                    actor: "alice".into(),
                    reference: Some("OPS-1".into()),
                }),
            },
            Event {
                ts: Ts(1_773_824_822_000),
                id: Some("gh:h1f".into()),
                body: Body::Grant(Grant {
                    grant_id: "gh:h1f".into(),
                    actor: "alice".into(),
                    grantee: "eng-all".into(),
                    grantee_type: GranteeType::Group,
                    resource: "acme/internal-tools".into(),
                    role: Some("read".into()),
                    reference: None,
                    actor_type: Some(ActorType::Agent),
                    target: Target::GithubTeamMember {
                        org: "acme".into(),
                        team: "eng-all".into(),
                        user: "bob".into(),
                    }
                    .boxed(),
                }),
            },
            Event {
                ts: Ts(10),
                id: None,
                body: Body::Membership(Membership {
                    actor: "hr".into(),
                    group: "eng-all".into(),
                    member: "carol".into(),
                    op: MembershipOp::Remove,
                    grant_id: None,
                    reference: Some("leaver".into()),
                    actor_type: None,
                    target: None,
                }),
            },
            Event {
                ts: Ts(11),
                id: None,
                body: Body::Advice(Advice {
                    advice_id: "adv-7731".into(),
                    agent: "agent:forum-helper".into(),
                    requested_by: Some("bob".into()),
                    channel: None,
                    published: true,
                    recommends: vec![
                        Recommendation {
                            resource: "acl/internal-tools".into(),
                            role: Some("viewer".into()),
                            grantee: Some("eng-all".into()),
                        },
                        Recommendation {
                            resource: "wiki".into(),
                            role: None,
                            grantee: None,
                        },
                    ],
                    summary: Some("grant eng-all viewer".into()),
                }),
            },
            Event {
                ts: Ts(12),
                id: None,
                body: Body::AdviceVerified(AdviceVerified {
                    advice_id: "adv-7731".into(),
                    verifier: "sec-lead".into(),
                }),
            },
            Event {
                ts: Ts(13),
                id: Some("v".into()),
                body: Body::AdviceViewed(AdviceViewed {
                    advice_id: "adv-7731".into(),
                    principal: "alice".into(),
                }),
            },
        ]
    }

    proptest! {
        /// Any grant, with any text in its fields, reads back as it was.
        #[test]
        fn any_grant_reads_back(
            ts in any::<i64>(),
            names in proptest::collection::vec(".*", 4),
            optional in proptest::collection::vec(proptest::option::of(".*"), 3),
            group in any::<bool>(),
            actor_type in 0u8..4,
        ) {
            let e = Event {
                ts: Ts(ts),
                id: optional[0].clone(),
                body: Body::Grant(Grant {
                    grant_id: names[0].clone(),
                    actor: names[1].clone(),
                    grantee: names[2].clone(),
                    grantee_type: if group { GranteeType::Group } else { GranteeType::User },
                    resource: names[3].clone(),
                    role: optional[1].clone(),
                    reference: optional[2].clone(),
                    actor_type: [None, Some(ActorType::Human), Some(ActorType::Agent), Some(ActorType::Service)][actor_type as usize],
                    target: None,
                }),
            };
            let mut payload = Vec::new();
            encode(EventRef::from(&e), &mut payload);
            let mut back = Events::default();
            for f in frames(&payload) {
                decode(f.unwrap(), &mut back).unwrap();
            }
            prop_assert_eq!(back.to_vec(), vec![e]);
        }
    }

    #[test]
    fn an_access_held_whole_gets_the_access_frame() {
        let e = Event::access(Ts(5), "carol", "wiki");
        let (mut whole, mut borrowed) = (Vec::new(), Vec::new());
        encode(EventRef::Other(&e), &mut whole);
        encode(EventRef::from(&e), &mut borrowed);
        assert_eq!(whole, borrowed);
        assert_eq!(whole[4], ACCESS);
    }

    #[test]
    fn events_read_back_as_they_were_written() {
        let all = events();
        let mut payload = Vec::new();
        for e in &all {
            encode(EventRef::from(e), &mut payload);
        }
        let mut back = Events::default();
        for f in frames(&payload) {
            decode(f.unwrap(), &mut back).unwrap();
        }
        assert_eq!(back.to_vec(), all);
    }

    #[test]
    fn damaged_frames_are_errors_and_leave_the_run_as_it_was() {
        let mut payload = Vec::new();
        for e in &events() {
            encode(EventRef::from(e), &mut payload);
        }
        // Every cut of the payload: whole frames read, the cut one is an error.
        for cut in 0..payload.len() {
            let mut run = Events::default();
            let mut whole = 0;
            for f in frames(&payload[..cut]) {
                let Ok(f) = f else { break };
                let before = run.len();
                if decode(f, &mut run).is_ok() {
                    whole += 1;
                } else {
                    assert_eq!(run.len(), before);
                }
            }
            assert!(whole <= events().len());
        }
        // Every byte of every frame changed: no panic, and an error leaves
        // nothing behind.
        for i in 0..payload.len() {
            for b in [0u8, 1, 2, 3, 0x7f, 0xff, b'A', b'G', b'V'] {
                let mut p = payload.clone();
                p[i] = b;
                let mut run = Events::default();
                for f in frames(&p) {
                    let Ok(f) = f else { break };
                    let before = run.len();
                    if decode(f, &mut run).is_err() {
                        assert_eq!(run.len(), before);
                    }
                }
            }
        }
    }
}
