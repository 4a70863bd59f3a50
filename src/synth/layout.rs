//! Native lines in the layouts real writers give them.
//!
//! Event schema v1 fixes fields, not layout: a logging library may write the
//! fields in any order, with spaces, escaped strings (`\/`, `\u00e9`),
//! timestamps in whole seconds or with milliseconds or microseconds, `Z` or an
//! offset, and the optional fields (`id`, `action`, an explicit `outcome`)
//! there or not. [`vary`] gives an event the optional parts a writer may add
//! and [`native_line`] writes it in a random one of those layouts; the decoder
//! must read every one of them as the same event, and the benchmarks measure
//! it on them.

use serde_json::Value;

use super::Rng;
use crate::event::{Body, Event};

/// Gives `ev` what writers add to it: sometimes an `id`, an access's
/// `action`, a time with milliseconds.
pub fn vary(ev: &mut Event, rng: &mut Rng) {
    if rng.chance(0.5) {
        ev.ts.0 += rng.below(1000) as i64;
    }
    if rng.chance(0.3) {
        ev.id = Some(format!("{:016x}", rng.next_u64()));
    }
    if let Body::Access(a) = &mut ev.body
        && rng.chance(0.5)
    {
        const ACTIONS: [&str; 5] = ["read", "write", "GetObject", "list", "exec"];
        a.action = Some(ACTIONS[rng.below(ACTIONS.len())].to_owned());
    }
}

/// `ev` as one native JSON line (no newline) in a random layout.
pub fn native_line(ev: &Event, rng: &mut Rng) -> String {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&ev.to_native_json()) else {
        unreachable!("a native line is a JSON object");
    };
    let mut fields: Vec<(String, Value)> = map.into_iter().collect();
    if matches!(ev.body, Body::Access(_))
        && !fields.iter().any(|(k, _)| k == "outcome")
        && rng.chance(0.3)
    {
        fields.push(("outcome".into(), Value::String("success".into())));
    }
    // Any order.
    for i in (1..fields.len()).rev() {
        fields.swap(i, rng.below(i + 1));
    }
    let spaced = rng.chance(0.3);
    let escaping = rng.chance(0.2);
    let gap = |rng: &mut Rng| if spaced && rng.chance(0.7) { " " } else { "" };
    let mut out = String::from("{");
    out.push_str(gap(rng));
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
            out.push_str(gap(rng));
        }
        string(key, false, rng, &mut out);
        out.push_str(gap(rng));
        out.push(':');
        out.push_str(gap(rng));
        match value {
            Value::String(_) if key == "ts" => string(&timestamp(ev, rng), escaping, rng, &mut out),
            Value::String(s) => string(s, escaping, rng, &mut out),
            other => out.push_str(&other.to_string()),
        }
    }
    out.push_str(gap(rng));
    out.push('}');
    out
}

/// The event's time as RFC 3339 in one of the shapes writers use, naming
/// the same instant.
fn timestamp(ev: &Event, rng: &mut Rng) -> String {
    use chrono::{DateTime, FixedOffset};
    let utc = DateTime::from_timestamp_millis(ev.ts.0).expect("event times are in range");
    let offset = match rng.below(3) {
        0 => None,
        1 => Some(0),
        _ => Some((rng.below(26 * 4) as i32 - 12 * 4) * 15 * 60),
    };
    let fraction = match (ev.ts.0.rem_euclid(1000), rng.below(3)) {
        (0, 0) => "",
        (_, 2) => "%.6f",
        _ => "%.3f",
    };
    match offset {
        None => utc
            .format(&format!("%Y-%m-%dT%H:%M:%S{fraction}Z"))
            .to_string(),
        Some(secs) => {
            let zone = FixedOffset::east_opt(secs).expect("offsets within a day");
            utc.with_timezone(&zone)
                .format(&format!("%Y-%m-%dT%H:%M:%S{fraction}%:z"))
                .to_string()
        }
    }
}

/// A JSON string; with `escaping`, some characters that need no escape are
/// escaped anyway, as some writers do.
fn string(s: &str, escaping: bool, rng: &mut Rng, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            '/' if escaping && rng.chance(0.5) => out.push_str("\\/"),
            c if escaping && rng.chance(0.05) => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Decoder, NativeDecoder};
    use crate::synth::{OrgSpec, generate};

    /// Every event of a generated organisation, varied and written in
    /// random layouts, decodes to itself.
    #[test]
    fn every_layout_decodes_to_the_same_event() {
        let org = generate(OrgSpec {
            engineers: 40,
            history_days: 2,
            eval_days: 1,
            seed: 3,
            inject: true,
        });
        let mut rng = Rng::new(11);
        let mut layouts = std::collections::BTreeSet::new();
        let mut kinds = std::collections::BTreeSet::new();
        for ev in &org.events {
            let mut ev = ev.clone();
            vary(&mut ev, &mut rng);
            for _ in 0..3 {
                let line = native_line(&ev, &mut rng);
                let back = NativeDecoder.decode_owned(line.as_bytes());
                assert_eq!(back, Ok(vec![ev.clone()]), "{line}");
                layouts.insert(line.starts_with("{\"ts\"") as u8 + 2 * line.contains(' ') as u8);
            }
            kinds.insert(ev.body.event_type());
        }
        assert_eq!(layouts.len(), 4, "field orders and spacing both vary");
        assert!(kinds.len() >= 4, "{kinds:?}");
    }
}
