//! Timestamps as the supported formats write them, and the time given to
//! records that carry none.
//!
//! Exporters disagree on how to write a time: RFC 3339 (`2024-08-01T13:29:57Z`),
//! the same with a space and no zone (`2022-11-29 00:09:04.38`, as Panther and
//! other data lakes store it), or epoch milliseconds (GitHub). [`parse_datetime`]
//! accepts all of them without allocating; a time without a zone is UTC.
//!
//! [`EventClock`] is the rule for records with no usable time (seen in
//! normalised exports, never in a raw feed): they take the time of the last
//! record of the same source that had one, so event-time order is kept. A source
//! whose first record has no time reports a decode error for it.

use chrono::NaiveDate;

use crate::event::Ts;

/// Parses the timestamp shapes the JSON formats write (see the module doc).
pub(crate) fn parse_datetime(s: &str) -> Option<Ts> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.is_empty() {
        return None;
    }
    if b.iter().all(|c| c.is_ascii_digit() || *c == b'.') {
        return parse_epoch(s);
    }
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = digits(&b[0..4])? as i32;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let min = digits(&b[14..16])?;
    let sec = digits(&b[17..19])?;
    let mut i = 19;
    let mut nanos = 0u32;
    if i < b.len() && (b[i] == b'.' || b[i] == b',') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..9 {
            nanos *= 10;
        }
    }
    let offset_secs = parse_zone(&b[i..])?;
    // A leap second (`:60`) is folded into the next second.
    let (sec, leap) = if sec == 60 { (59, 1) } else { (sec, 0) };
    let ms = civil_ms(year, month, day, hour, min, sec)? + i64::from(nanos / 1_000_000);
    Some(Ts(ms + (leap - offset_secs) * 1000))
}

/// `Z`, `z`, ` UTC`, `+hh:mm`, `+hhmm`, `+hh` or nothing (UTC); seconds east of UTC.
fn parse_zone(z: &[u8]) -> Option<i64> {
    let z = z.trim_ascii();
    match z {
        b"" | b"Z" | b"z" | b"UTC" | b"GMT" => Some(0),
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (h, m) = match rest {
                [h1, h2] => (digits(&[*h1, *h2])?, 0),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => {
                    (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?)
                }
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let secs = i64::from(h * 3600 + m * 60);
            Some(if *sign == b'-' { -secs } else { secs })
        }
        _ => None,
    }
}

/// Epoch seconds or milliseconds (more than 10^11 is taken as milliseconds, i.e.
/// any time after 1973 written in ms), optionally with a fraction.
fn parse_epoch(s: &str) -> Option<Ts> {
    // Up to 15 digits without a fraction are exact as a float and in
    // milliseconds: counted as an integer, with the float's answer.
    if s.len() <= 15 && s.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = s.parse().ok()?;
        let ms = if n >= 100_000_000_000 { n } else { n * 1000 };
        return (ms <= 1_000_000_000_000_000).then_some(Ts(ms));
    }
    let v: f64 = s.parse().ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    let ms = if v >= 1e11 { v } else { v * 1000.0 };
    if ms > 1e15 {
        return None;
    }
    Some(Ts(ms as i64))
}

/// A run of ASCII digits as a number.
#[inline]
pub(crate) fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 9 {
        return None;
    }
    b.iter().try_fold(0u32, |n, c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}

/// `Jan` .. `Dec` (case-sensitive, as syslog and CLF write them) to 1..=12.
#[inline(always)]
pub(crate) fn month_from_abbr(b: &[u8]) -> Option<u32> {
    // Matched as an array, not by comparing slices in a loop (a call each).
    Some(match <[u8; 3]>::try_from(b).ok()? {
        [b'J', b'a', b'n'] => 1,
        [b'F', b'e', b'b'] => 2,
        [b'M', b'a', b'r'] => 3,
        [b'A', b'p', b'r'] => 4,
        [b'M', b'a', b'y'] => 5,
        [b'J', b'u', b'n'] => 6,
        [b'J', b'u', b'l'] => 7,
        [b'A', b'u', b'g'] => 8,
        [b'S', b'e', b'p'] => 9,
        [b'O', b'c', b't'] => 10,
        [b'N', b'o', b'v'] => 11,
        [b'D', b'e', b'c'] => 12,
        _ => return None,
    })
}

/// Milliseconds since the epoch for a UTC civil time, if it exists.
///
/// The text decoders call this for every line: years 0 to 9999 are counted
/// directly ([`crate::event::civil_ms`]), which gives chrono's answer (tested)
/// at a fraction of its cost; other years go to chrono.
pub(crate) fn civil_ms(year: i32, month: u32, day: u32, h: u32, m: u32, s: u32) -> Option<i64> {
    if !(0..=9999).contains(&year) {
        return chrono_civil_ms(year, month, day, h, m, s);
    }
    crate::event::civil_ms(
        year.into(),
        month.into(),
        day.into(),
        h.into(),
        m.into(),
        s.into(),
    )
}

/// [`civil_ms`] by chrono, for any year it knows.
fn chrono_civil_ms(year: i32, month: u32, day: u32, h: u32, m: u32, s: u32) -> Option<i64> {
    let t = NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(h, m, s)?;
    Some(t.and_utc().timestamp_millis())
}

/// Event time for a stream of records: a record without a usable time takes the
/// time of the last one that had it (see the module doc).
#[derive(Debug, Default, Clone)]
pub(crate) struct EventClock {
    last: Option<Ts>,
}

impl EventClock {
    /// The record's own time if it has one (remembered), else the last known time.
    pub(crate) fn resolve(&mut self, own: Option<Ts>) -> Option<Ts> {
        match own {
            Some(t) => {
                self.last = Some(t);
                Some(t)
            }
            None => self.last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<String> {
        parse_datetime(s).map(|t| t.to_string())
    }

    #[test]
    fn the_shapes_exporters_write_all_parse() {
        assert_eq!(p("2024-08-01T13:29:57Z").unwrap(), "2024-08-01T13:29:57Z");
        assert_eq!(
            p("2026-03-18T10:02:11.25+01:00").unwrap(),
            "2026-03-18T09:02:11.250Z"
        );
        assert_eq!(
            p("2022-11-29 00:09:04.38").unwrap(),
            "2022-11-29T00:09:04.380Z"
        );
        assert_eq!(
            p("2024-06-03 15:23:22.000000000").unwrap(),
            "2024-06-03T15:23:22Z"
        );
        assert_eq!(p("2021-05-20 15:53:47Z").unwrap(), "2021-05-20T15:53:47Z");
        assert_eq!(
            p("2021-05-20T15:53:47-0230").unwrap(),
            "2021-05-20T18:23:47Z"
        );
        assert_eq!(p("1621305118553").unwrap(), "2021-05-18T02:31:58.553Z");
        assert_eq!(p("1621305118553.0").unwrap(), "2021-05-18T02:31:58.553Z");
        assert_eq!(p("1783414573.076").unwrap(), "2026-07-07T08:56:13.076Z");
    }

    /// `parse_datetime` as it was, through chrono and a float: the direct
    /// reading must agree with it.
    fn parse_datetime_by_chrono(s: &str) -> Option<Ts> {
        let s = s.trim();
        let b = s.as_bytes();
        if b.is_empty() {
            return None;
        }
        if b.iter().all(|c| c.is_ascii_digit() || *c == b'.') {
            let v: f64 = s.parse().ok()?;
            if !v.is_finite() || v < 0.0 {
                return None;
            }
            let ms = if v >= 1e11 { v } else { v * 1000.0 };
            if ms > 1e15 {
                return None;
            }
            return Some(Ts(ms as i64));
        }
        if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        if !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        let year = digits(&b[0..4])? as i32;
        let (month, day) = (digits(&b[5..7])?, digits(&b[8..10])?);
        let (hour, min, sec) = (
            digits(&b[11..13])?,
            digits(&b[14..16])?,
            digits(&b[17..19])?,
        );
        let mut i = 19;
        let mut nanos = 0u32;
        if i < b.len() && (b[i] == b'.' || b[i] == b',') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                if i - start < 9 {
                    nanos = nanos * 10 + u32::from(b[i] - b'0');
                }
                i += 1;
            }
            if i == start {
                return None;
            }
            for _ in (i - start)..9 {
                nanos *= 10;
            }
        }
        let offset_secs = parse_zone(&b[i..])?;
        let (sec, leap) = if sec == 60 { (59, 1) } else { (sec, 0) };
        let t =
            NaiveDate::from_ymd_opt(year, month, day)?.and_hms_nano_opt(hour, min, sec, nanos)?;
        Some(Ts(
            t.and_utc().timestamp_millis() + (leap - offset_secs) * 1000
        ))
    }

    /// Timestamps as exporters write them, some out of range.
    fn stamp() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            (
                0..10_000u32,
                0..14u32,
                0..33u32,
                prop::sample::select(vec!["T", " ", "t", "x"]),
                0..25u32,
                0..61u32,
                0..62u32,
                prop::sample::select(vec!["", ".", ".5", ".38", ".999999999", ",123456789012"]),
                prop::sample::select(vec![
                    "", "Z", " UTC", "+01:00", "-0230", "+05", "+24:00", "?"
                ]),
            )
                .prop_map(|(y, mo, d, sep, h, mi, s, frac, zone)| {
                    format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{frac}{zone}")
                }),
            "[0-9]{1,20}",
            "[0-9]{1,14}\\.[0-9]{0,4}",
            "[0-9. ]{0,20}",
        ]
    }

    proptest::proptest! {
        #[test]
        fn timestamps_read_directly_as_chrono_read_them(s in stamp()) {
            proptest::prop_assert_eq!(parse_datetime(&s), parse_datetime_by_chrono(&s));
        }
    }

    #[test]
    fn placeholders_and_nonsense_are_not_times() {
        for s in [
            "",
            "...",
            "redacted",
            "2024-12-17 00:00:00000000",
            "2024-13-01T00:00:00Z",
            "2024-02-30T00:00:00Z",
            "2024-01-01T00:00:00+25",
            "2024-01-01T00:00:00 later",
            "-5",
            "1e400",
        ] {
            assert_eq!(parse_datetime(s), None, "{s:?}");
        }
    }

    #[test]
    fn the_clock_carries_the_last_known_time_forward() {
        let mut c = EventClock::default();
        assert_eq!(c.resolve(None), None);
        assert_eq!(c.resolve(Some(Ts(5))), Some(Ts(5)));
        assert_eq!(c.resolve(None), Some(Ts(5)));
        assert_eq!(c.resolve(Some(Ts(3))), Some(Ts(3)));
    }

    proptest::proptest! {
        #[test]
        fn civil_times_count_as_chrono_counts_them(
            year in proptest::prop_oneof![-2..10_002i32, proptest::num::i32::ANY],
            month in 0..14u32,
            day in 0..33u32,
            h in 0..26u32,
            m in 0..62u32,
            s in 0..62u32,
        ) {
            proptest::prop_assert_eq!(
                civil_ms(year, month, day, h, m, s),
                chrono_civil_ms(year, month, day, h, m, s)
            );
        }
    }

    #[test]
    fn civil_times_at_the_edges_of_months_and_years() {
        for (y, mo, d) in [
            (1970, 1, 1),
            (1969, 12, 31),
            (0, 1, 1),
            (0, 2, 29),
            (1900, 2, 29),
            (2000, 2, 29),
            (2024, 2, 29),
            (2023, 2, 29),
            (9999, 12, 31),
            (2026, 4, 31),
            (2026, 13, 1),
            (2026, 1, 0),
        ] {
            assert_eq!(
                civil_ms(y, mo, d, 23, 59, 59),
                chrono_civil_ms(y, mo, d, 23, 59, 59),
                "{y}-{mo}-{d}"
            );
        }
        assert_eq!(civil_ms(1970, 1, 1, 0, 0, 1), Some(1000));
        assert_eq!(civil_ms(2026, 3, 18, 24, 0, 0), None);
        assert_eq!(civil_ms(2026, 3, 18, 0, 0, 60), None);
    }

    #[test]
    fn month_abbreviations() {
        assert_eq!(month_from_abbr(b"Jan"), Some(1));
        assert_eq!(month_from_abbr(b"Dec"), Some(12));
        assert_eq!(month_from_abbr(b"dec"), None);
        assert_eq!(month_from_abbr(b"Ju"), None);
        assert_eq!(month_from_abbr(b"June"), None);
        let names = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        for (i, name) in names.iter().enumerate() {
            assert_eq!(month_from_abbr(name.as_bytes()), Some(i as u32 + 1));
        }
    }
}
