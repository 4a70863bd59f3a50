//! The `web-access` decoder: NCSA common and combined access logs (Apache
//! `%h %l %u %t "%r" %>s %b ["%{Referer}i" "%{User-agent}i"]`, nginx
//! `combined`), with or without a leading virtual host (`%v` / `%v:%p`), with
//! X-Forwarded-For client lists, and with a syslog prefix when nginx logs
//! through syslog.
//!
//! - a request with an authenticated user (`%u` not `-`) is access by that user
//!   on `web/<vhost>/<path prefix>`: the vhost without its port, or `-` when the
//!   line has none; the path without query, cut after its second segment
//!   (`/api/users/42?x=1` -> `/api/users`) so resources stay few; `action` is
//!   the method; 401 and 403 are `denied`;
//! - a request without a user is skipped (nothing says who made it);
//! - basic-auth failures that the servers write to their error logs (nginx
//!   `user "x" was not found in ...` / `password mismatch`, Apache `AH01618` /
//!   `AH01617`) are denied access by that user, when such lines share the file;
//!   other error-log lines are skipped.
//!
//! The timestamp carries its own zone; error-log times (which have none) are UTC.

use std::borrow::Cow;
use std::net::IpAddr;

use super::time::{civil_ms, digits, month_from_abbr};
use super::{DecodeError, Decoder};
use smallvec::SmallVec;

use crate::event::{Access, AccessRef, Body, Event, Events, Outcome, Ts};

/// Decoder for NCSA access logs.
#[derive(Debug, Default)]
pub struct WebAccessDecoder;

const NAME: &str = "web access log";

impl Decoder for WebAccessDecoder {
    fn decode(&mut self, line: &[u8], out: &mut Events) -> Result<(), DecodeError> {
        // Request lines may hold escaped binary; only the parts used must be text.
        // Checked with `from_utf8` first: `from_utf8_lossy` gives the same text
        // for a valid line but walks it in chunks at several times the cost.
        let text = match std::str::from_utf8(line) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(line),
        };
        let text = text.trim();
        if text.is_empty() {
            return Ok(());
        }
        let b = text.as_bytes();
        if b.len() > 19 && b[4] == b'/' && b[7] == b'/' && b[..4].iter().all(u8::is_ascii_digit) {
            return nginx_error(text, out);
        }
        if text.starts_with('[') {
            if let Some(r) = apache_error(text, out) {
                return r;
            }
        }
        access_line(text, out)
    }

    fn independent_lines(&self) -> bool {
        true
    }
}

fn unrecognized(reason: &'static str) -> DecodeError {
    DecodeError::Unrecognized {
        format: NAME,
        reason,
    }
}

/// `dd/Mon/yyyy:HH:MM:SS +zzzz` (26 bytes) -> time.
fn clf_time(t: &[u8]) -> Option<Ts> {
    if t.len() != 26 || t[2] != b'/' || t[6] != b'/' || t[11] != b':' || t[20] != b' ' {
        return None;
    }
    let day = digits(&t[0..2])?;
    let month = month_from_abbr(&t[3..6])?;
    let year = digits(&t[7..11])? as i32;
    let (h, m, s) = (
        digits(&t[12..14])?,
        digits(&t[15..17])?,
        digits(&t[18..20])?,
    );
    let sign = match t[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (oh, om) = (digits(&t[22..24])?, digits(&t[24..26])?);
    if oh > 23 || om > 59 {
        return None;
    }
    let ms = civil_ms(year, month, day, h, m, s)?;
    Some(Ts(ms - sign * i64::from(oh * 3600 + om * 60) * 1000))
}

fn access_line(text: &str, out: &mut Events) -> Result<(), DecodeError> {
    // The `[time]` field anchors the line: what precedes it is host, ident and
    // user; what follows is request, status and the rest.
    let b = text.as_bytes();
    let (open, ts) = memchr::memchr_iter(b'[', b)
        .find_map(|i| {
            let t = b.get(i + 1..i + 27)?;
            (b.get(i + 27) == Some(&b']')).then_some(())?;
            clf_time(t).map(|ts| (i, ts))
        })
        .ok_or_else(|| unrecognized("no [dd/Mon/yyyy:HH:MM:SS +zzzz] time"))?;
    let mut before = &text[..open];
    if let Some(after) = after_last_colon_space(before) {
        // A syslog prefix (`Sep 15 16:13:46 host nginx[2869]: `).
        before = after;
    }
    let tokens = tokens(before);
    let [prefix @ .., _client, _ident, user] = &tokens[..] else {
        return Err(unrecognized(
            "fewer than host, ident and user before the time",
        ));
    };
    let after = &text[open + 28..];
    let (request, status) =
        request_and_status(after).ok_or_else(|| unrecognized("no \"request\" and status"))?;
    if *user == "-" || user.is_empty() || *user == "\"\"" {
        return Ok(());
    }
    let vhost = match prefix {
        [v] => vhost(v),
        _ => None,
    };
    let mut parts = request.split(' ');
    let method = parts.next().filter(|m| !m.is_empty() && *m != "-");
    let path = parts.next().unwrap_or("/");
    out.push_access(AccessRef {
        ts,
        principal: user.trim_matches('"'),
        resource: &resource(vhost.unwrap_or("-"), path),
        action: method,
        outcome: if matches!(status, 401 | 403) {
            Outcome::Denied
        } else {
            Outcome::Success
        },
        id: None,
        key: None,
    });
    Ok(())
}

/// What follows the last `": "` of `s`, if it has one (`rsplit_once(": ")`
/// without setting up a substring searcher for every line).
fn after_last_colon_space(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let mut end = b.len();
    while let Some(i) = memchr::memrchr(b':', &b[..end]) {
        if b.get(i + 1) == Some(&b' ') {
            return Some(&s[i + 2..]);
        }
        end = i;
    }
    None
}

/// Space-separated fields; a quoted field is one token, and a field ending in
/// `,` continues into the next (`10.0.0.2, 10.0.0.1, 127.0.0.1`).
fn tokens(s: &str) -> SmallVec<[&str; 8]> {
    let s = s.trim();
    let b = s.as_bytes();
    let mut out = SmallVec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += 1;
            }
            i = (i + 1).min(b.len());
        } else {
            loop {
                while i < b.len() && b[i] != b' ' {
                    i += 1;
                }
                if i > start && b[i - 1] == b',' && i < b.len() {
                    i += 1;
                    continue;
                }
                break;
            }
        }
        out.push(&s[start..i]);
    }
    out
}

/// A leading field is a virtual host if it is one name (not an address, not a
/// quoted or comma list); the port is dropped.
fn vhost(field: &str) -> Option<&str> {
    if field.starts_with('"') || field.contains(',') || field.parse::<IpAddr>().is_ok() {
        return None;
    }
    let host = match field.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => field,
    };
    (!host.is_empty() && host.parse::<IpAddr>().is_err()).then_some(host)
}

/// ` "GET /x HTTP/1.1" 200 ...` -> (`GET /x HTTP/1.1`, 200). The request ends at
/// the first `" NNN` (quotes inside an unescaped request do not end it early).
fn request_and_status(after: &str) -> Option<(&str, u32)> {
    let rest = after.trim_start().strip_prefix('"')?;
    let b = rest.as_bytes();
    let mut from = 0;
    while let Some(q) = memchr::memchr(b'"', &b[from..]) {
        let i = from + q;
        let tail = &b[i + 1..];
        if tail.len() >= 4
            && tail[0] == b' '
            && tail[1..4].iter().all(u8::is_ascii_digit)
            && tail.get(4).is_none_or(|c| *c == b' ')
        {
            return Some((&rest[..i], digits(&tail[1..4])?));
        }
        from = i + 1;
    }
    None
}

/// `web/<host><path prefix>`, built in one allocation.
fn resource(host: &str, target: &str) -> String {
    let mut out = String::with_capacity(4 + host.len() + target.len().min(64));
    out.push_str("web/");
    out.push_str(host);
    push_path_prefix(&mut out, target);
    out
}

/// Appends to `out` the path of `target` without query or fragment, cut
/// after its second segment; an absolute-form target (`http://host/path`)
/// keeps its path.
fn push_path_prefix(out: &mut String, target: &str) {
    let target = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    let path = target.split(['?', '#']).next().unwrap_or(target);
    if !path.starts_with('/') {
        out.push('/');
        return;
    }
    let start = out.len();
    for seg in path.split('/').filter(|s| !s.is_empty()).take(2) {
        out.push('/');
        out.push_str(seg);
    }
    if out.len() == start {
        out.push('/');
    }
}

/// nginx error log: `2021/09/30 09:23:53 [error] 1#1: *17 user "foo" was not
/// found in "/etc/htpasswd", client: 1.2.3.4, server: _, request: "GET / HTTP/1.1", host: "h"`.
fn nginx_error(text: &str, out: &mut Events) -> Result<(), DecodeError> {
    let b = text.as_bytes();
    let bad = || unrecognized("not an nginx error-log time");
    if b.len() < 20 || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    let n = |r: std::ops::Range<usize>| digits(&b[r]);
    let ms = (|| {
        civil_ms(
            n(0..4)? as i32,
            n(5..7)?,
            n(8..10)?,
            n(11..13)?,
            n(14..16)?,
            n(17..19)?,
        )
    })()
    .ok_or_else(bad)?;
    let Some((_, rest)) = text.split_once(" user \"") else {
        return Ok(());
    };
    let Some((user, rest)) = rest.split_once('"') else {
        return Ok(());
    };
    if !(rest.starts_with(" was not found in") || rest.starts_with(": password mismatch")) {
        return Ok(());
    }
    let field = |key: &str| {
        text.split_once(key)
            .and_then(|(_, r)| r.strip_prefix('"'))
            .and_then(|r| r.split('"').next())
    };
    let server = text
        .split_once(", server: ")
        .and_then(|(_, r)| r.split(',').next())
        .filter(|s| *s != "_" && !s.is_empty());
    let host = field(", host: ").or(server);
    let request = field(", request: ").unwrap_or_default();
    let mut parts = request.split(' ');
    let method = parts.next().filter(|m| !m.is_empty());
    let path = parts.next().unwrap_or("/");
    out.push(Event {
        ts: Ts(ms),
        id: None,
        body: Body::Access(Access {
            principal: user.to_owned(),
            resource: resource(host.unwrap_or("-"), path),
            action: method.map(str::to_owned),
            outcome: Outcome::Denied,
        }),
    });
    Ok(())
}

/// Apache error log: `[Thu Oct 13 12:24:49.880562 2022] [auth_basic:error] ...
/// AH01618: user sss not found: /`. `None` if the line is not one.
fn apache_error(text: &str, out: &mut Events) -> Option<Result<(), DecodeError>> {
    let (stamp, rest) = text.strip_prefix('[')?.split_once(']')?;
    // `Www Mmm dd HH:MM:SS[.ffffff] YYYY`
    let f: Vec<&str> = stamp.split_whitespace().collect();
    let [_, month, day, clock, year] = f[..] else {
        return None;
    };
    let c = clock.as_bytes();
    if c.len() < 8 || c[2] != b':' || c[5] != b':' {
        return None;
    }
    let ms = civil_ms(
        digits(year.as_bytes())? as i32,
        month_from_abbr(month.as_bytes())?,
        digits(day.as_bytes())?,
        digits(&c[0..2])?,
        digits(&c[3..5])?,
        digits(&c[6..8])?,
    )?;
    let failure = rest
        .split_once("AH01618: user ")
        .and_then(|(_, r)| r.split_once(" not found: "))
        .or_else(|| {
            rest.split_once("AH01617: user ")
                .and_then(|(_, r)| r.split_once(": authentication failure for \""))
                .map(|(user, r)| (user, r.split('"').next().unwrap_or("/")))
        });
    if let Some((user, path)) = failure {
        out.push(Event {
            ts: Ts(ms),
            id: None,
            body: Body::Access(Access {
                principal: user.to_owned(),
                resource: resource("-", path.trim()),
                action: None,
                outcome: Outcome::Denied,
            }),
        });
    }
    Some(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(line: &str) -> Result<Vec<Event>, DecodeError> {
        WebAccessDecoder.decode_owned(line.as_bytes())
    }

    fn access(line: &str) -> (Access, Ts) {
        let mut v = decode(line).unwrap();
        assert_eq!(v.len(), 1, "{line}");
        let e = v.remove(0);
        match e.body {
            Body::Access(a) => (a, e.ts),
            b => panic!("{b:?}"),
        }
    }

    #[test]
    fn an_authenticated_request_is_access_on_vhost_and_path_prefix() {
        let (a, ts) = access(
            r#"192.168.0.64 - pyllyukko@EXAMPLE.COM [16/Nov/2019:09:46:42 +0200] "GET / HTTP/1.1" 200 8264"#,
        );
        assert_eq!(a.principal, "pyllyukko@EXAMPLE.COM");
        assert_eq!(a.resource, "web/-/");
        assert_eq!(a.action.as_deref(), Some("GET"));
        assert_eq!(a.outcome, Outcome::Success);
        assert_eq!(ts.to_string(), "2019-11-16T07:46:42Z");
        let (a, _) = access(
            r#"intranet.example.com:443 10.1.1.2 - carol [13/Jan/2018:19:31:17 +0000] "POST /api/users/42/keys?x=1 HTTP/1.1" 201 12 "-" "curl/8""#,
        );
        assert_eq!(a.resource, "web/intranet.example.com/api/users");
        assert_eq!(a.action.as_deref(), Some("POST"));
    }

    #[test]
    fn unauthorised_and_forbidden_are_denied() {
        let (a, _) = access(
            r#"127.0.0.1 - test [06/Mar/2022:16:14:13 +0000] "POST /client HTTP/1.1" 401 141 "http://127.0.0.1/" "Mozilla/5.0" "-""#,
        );
        assert_eq!(
            (a.principal.as_str(), a.resource.as_str(), a.outcome),
            ("test", "web/-/client", Outcome::Denied)
        );
        let (a, _) =
            access(r#"10.0.0.1 - bob [06/Mar/2022:16:14:13 +0000] "GET /admin HTTP/1.1" 403 1"#);
        assert_eq!(a.outcome, Outcome::Denied);
    }

    #[test]
    fn requests_without_a_user_are_skipped_whatever_the_layout() {
        for line in [
            r#"83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /presentations/logstash-monitorama-2013/images/kibana-search.png HTTP/1.1" 200 203023 "http://semicomplete.com/" "Mozilla/5.0""#,
            r#"::1 - - [26/Dec/2016:16:16:48 +0200] "-" 408 -"#,
            r#"127.0.0.1 - - [12/Apr/2018:09:48:40 +0200] "" 400 0 "-" "-""#,
            r#"10.0.0.2, 10.0.0.1, 127.0.0.1 - - [07/Dec/2016:11:05:07 +0100] "GET /ocelot HTTP/1.1" 200 571 "-" "Mozilla/5.0""#,
            r#""10.5.102.222, 199.96.1.1, 204.246.1.1" 10.2.1.185 - - [22/Jan/2016:13:18:29 +0000] "GET /assets/xxxx?q=100 HTTP/1.1" 200 25507 "-" "Amazon CloudFront""#,
            r#"1.2.3.4 - - [25/Apr/2021:06:15:33 +0000] "GET /aaaa.xxxx/SomeText?action=edit&template=<script>alert("text")</script> HTTP/1.0" 404 1164"#,
            r#"1.2.3.4 - - [17/Oct/2023:05:57:49 +1100] "\x16\x03\x01\x01 \x02" 400 226 "-" "-""#,
            r#"Sep 15 16:13:46 ip-172-31-43-28 nginx[2869]: 81.150.104.130 - - [15/Sep/2021:16:13:46 +0000] "POST /wp-login.php HTTP/1.1" 200 5364 "-" "Mozilla/5.0""#,
            r#"monitoring-server - - [29/May/2017:19:02:48 +0000] "GET /status HTTP/1.1" 200 612 "-" "Mozilla/5.0" "-""#,
        ] {
            assert_eq!(decode(line).unwrap(), vec![], "{line}");
        }
    }

    #[test]
    fn client_lists_and_syslog_prefixes_do_not_hide_the_user() {
        let (a, _) = access(
            r#"2a03:0000:10ff:f00f:0000:0000:0:8000, 10.225.192.17 10.2.2.121 - dan [30/Dec/2016:06:47:09 +0000] "GET /test.html HTTP/1.1" 404 8571"#,
        );
        assert_eq!(
            (a.principal.as_str(), a.resource.as_str()),
            ("dan", "web/-/test.html")
        );
        let (a, _) = access(
            r#"Sep 15 16:13:46 web-1 nginx[2869]: 10.0.0.9 - erin [15/Sep/2021:16:13:46 +0000] "GET http://intranet/wiki/page?x HTTP/1.1" 200 1"#,
        );
        assert_eq!(
            (a.principal.as_str(), a.resource.as_str()),
            ("erin", "web/-/wiki/page")
        );
    }

    #[test]
    fn basic_auth_failures_in_error_logs_are_denied_access() {
        let (a, ts) = access(
            r#"2021/09/30 09:23:53 [error] 1925800#1925800: *18 user "foo" was not found in "/tmp/a.htpasswd", client: 127.0.0.1, server: foo.com, request: "GET /admin/x HTTP/1.1", host: "localhost""#,
        );
        assert_eq!(
            (a.principal.as_str(), a.resource.as_str(), a.outcome),
            ("foo", "web/localhost/admin/x", Outcome::Denied)
        );
        assert_eq!(ts.to_string(), "2021-09-30T09:23:53Z");
        let (a, _) = access(
            "[Thu Oct 13 12:24:49.880562 2022] [auth_basic:error] [pid 10:tid 140120579262208] [client 31.33.58.75:50229] AH01618: user sss not found: /",
        );
        assert_eq!(
            (a.principal.as_str(), a.resource.as_str(), a.outcome),
            ("sss", "web/-/", Outcome::Denied)
        );
        for skip in [
            r#"2021/12/01 13:53:33 [error] 31#31: *46 "/usr/share/nginx/html/market/index.html" is not found (2: No such file or directory), client: 172.17.0.1, server: localhost, request: "GET /market/ HTTP/1.1", host: "localhost""#,
            "[Wed Apr 16 16:09:40.056610 2025] [ssl:info] [pid 120974:tid 120974] (70014)End of file found: [client 192.168.1.1:17036] AH02006: SSL handshake stopped: connection was closed",
        ] {
            assert_eq!(decode(skip).unwrap(), vec![], "{skip}");
        }
    }

    #[test]
    fn malformed_lines_are_errors() {
        for bad in [
            "hello",
            r#"192.168.1.1 - [08/Jun/2020:08:04:43 +0000] "GET /api/test HTTP/1.1" 200 100 "-" "curl/7.68.0""#,
            r#"1.2.3.4 - bob [08/Jun/2020:08:04:43 +0000] GET / 200"#,
            r#"1.2.3.4 - bob [32/Jun/2020:08:04:43 +0000] "GET / HTTP/1.1" 200 1"#,
            "2021/99/30 09:23:53 [error] x",
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
        assert_eq!(decode("  ").unwrap(), vec![]);
    }

    fn path_prefix(target: &str) -> String {
        let mut out = String::new();
        push_path_prefix(&mut out, target);
        out
    }

    #[test]
    fn path_prefixes() {
        assert_eq!(path_prefix("/"), "/");
        assert_eq!(path_prefix("/a"), "/a");
        assert_eq!(path_prefix("/a/"), "/a");
        assert_eq!(path_prefix("/a/b/c?d=/e"), "/a/b");
        assert_eq!(path_prefix("*"), "/");
        assert_eq!(path_prefix("https://h:8443"), "/");
    }

    proptest::proptest! {
        #[test]
        fn the_last_colon_space_is_found_as_rsplit_once_finds_it(
            text in "[ :a-z0-9\\[\\]é\u{3000}-]{0,40}",
        ) {
            proptest::prop_assert_eq!(
                after_last_colon_space(&text),
                text.rsplit_once(": ").map(|(_, after)| after)
            );
        }
    }
}
