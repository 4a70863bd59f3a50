//! JSON lines laid out the way other writers emit them, and the check that a
//! decoder makes the same events of them.
//!
//! A record is re-emitted with its keys (at every depth) in another order,
//! chosen by a hash of the key and the line's number so that it differs from
//! line to line and from the original; a space after every `:` and `,`; and
//! on every other line `/` escaped as `\/` (as PHP's `json_encode` and some
//! Java writers do), which makes those strings escaped text that cannot be
//! borrowed. Values are unchanged.

use std::fmt::Write;

use reachguard::decode::Format;
use serde_json::Value;

/// `line` re-laid out, or `None` if it is not JSON.
pub fn relayout(line: &[u8], salt: u64) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_slice(line).ok()?;
    let mut out = String::with_capacity(line.len() + line.len() / 8);
    write(&v, salt, &mut out);
    Some(out.into_bytes())
}

/// FNV-1a of `key` mixed with `salt`: the order keys are written in.
fn rank(key: &str, salt: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325 ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn write(v: &Value, salt: u64, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by_key(|k| rank(k, salt));
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                string(k, salt, out);
                out.push_str(": ");
                write(&map[k.as_str()], salt, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write(item, salt, out);
            }
            out.push(']');
        }
        Value::String(s) => string(s, salt, out),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Null => out.push_str("null"),
    }
}

fn string(s: &str, salt: u64, out: &mut String) {
    let quoted = serde_json::to_string(s).expect("a string serialises");
    if salt % 2 == 1 {
        // Inside a JSON string a `/` is never part of an escape.
        out.push_str(&quoted.replace('/', "\\/"));
    } else {
        out.push_str(&quoted);
    }
}

/// Decodes `originals` and their re-laid copies with two decoders of
/// `format`, line by line, and panics unless each pair gives the same events
/// (or both fail). Ids that a decoder makes from a hash of the line's text
/// (`<prefix>:h<16 hex digits>`, for records that carry no id) differ with
/// the layout by design and are compared as placeholders.
pub fn check_same_events(format: Format, originals: &[Vec<u8>]) {
    let mut a = format.decoder();
    let mut b = format.decoder();
    let mut checked = 0;
    for (i, line) in originals.iter().enumerate() {
        let Some(varied) = relayout(line, i as u64) else {
            continue;
        };
        let left = a
            .decode_owned(line)
            .map(|e| without_content_ids(&format!("{e:?}")));
        let right = b
            .decode_owned(&varied)
            .map(|e| without_content_ids(&format!("{e:?}")));
        match (&left, &right) {
            (Ok(l), Ok(r)) => assert_eq!(
                l,
                r,
                "{format}: line {i} re-laid out decodes differently:\n{}\n{}",
                String::from_utf8_lossy(line),
                String::from_utf8_lossy(&varied)
            ),
            (Err(_), Err(_)) => {}
            _ => panic!(
                "{format}: line {i} decodes {} but re-laid out {}:\n{}\n{}",
                if left.is_ok() { "ok" } else { "with an error" },
                if right.is_ok() { "ok" } else { "with an error" },
                String::from_utf8_lossy(line),
                String::from_utf8_lossy(&varied)
            ),
        }
        checked += 1;
    }
    assert!(checked > 0, "{format}: no JSON lines to re-lay out");
}

/// `text` with every `:h` followed by 16 hex digits replaced by `:h#`.
fn without_content_ids(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(":h") {
        let (head, tail) = rest.split_at(i + 2);
        out.push_str(head);
        let hex = tail
            .bytes()
            .take(16)
            .take_while(u8::is_ascii_hexdigit)
            .count();
        if hex == 16 {
            out.push('#');
            rest = &tail[16..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}
