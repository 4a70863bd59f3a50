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
//! - `E`, any other event, as its native (schema v1) JSON line: grants,
//!   memberships and advice are rare, and their fields (a revocation target
//!   among them) are what the native decoder reads.
//!
//! A frame that does not read back is a decode error, counted and skipped by
//! the worker like any other.

use crate::decode::{DecodeError, Decoder, NativeDecoder};
use crate::event::{AccessRef, EventRef, Events, Outcome, Ts};

const ACCESS: u8 = b'A';
const OTHER: u8 = b'E';

/// Appends `ev`'s frame, with its length in front, to `out`.
pub fn encode(ev: EventRef<'_>, out: &mut Vec<u8>) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
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
        EventRef::Other(e) => {
            out.push(OTHER);
            out.extend_from_slice(e.to_native_json().as_bytes());
        }
    }
    let len = len32(out.len() - at - 4);
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
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
        Some((&OTHER, json)) => {
            let before = out.len();
            NativeDecoder.decode(json, out)?;
            if out.len() == before + 1 {
                Ok(())
            } else {
                out.truncate(before);
                Err(bad("not one event"))
            }
        }
        _ => Err(bad("unknown kind")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Body, Event, Revoke};

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
        ]
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
            assert!(whole <= 3);
        }
        // Every byte of every frame changed: no panic, and an error leaves
        // nothing behind.
        for i in 0..payload.len() {
            for b in [0u8, 1, 2, 3, 0x7f, 0xff, b'A', b'E'] {
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
