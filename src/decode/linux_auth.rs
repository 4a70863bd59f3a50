//! The `linux-auth` decoder: syslog `auth.log` / `secure` lines, and auditd
//! records (`type=... msg=audit(...)`) when they share the source.
//!
//! Syslog lines are `Mmm dd HH:MM:SS host program[pid]: message` (or with an
//! RFC 3339 timestamp, as rsyslog's high-precision format writes). The classic
//! timestamp has no year and no zone: the time is taken as UTC, and the year is
//! that of the reference time (the current time, or the one given to
//! [`LinuxAuthDecoder::with_reference`]) unless that would put the line more
//! than a day after the reference, in which case it is the year before (a log
//! read in January that was written in December).
//!
//! - access (resource `host/<host>/<service>`, principal = the account):
//!   `sshd` `Accepted ...` (`ssh`), `sudo` `COMMAND=` (`sudo`, principal = the
//!   invoking user), `su` sessions (`su`, principal = the invoking user), console
//!   `login` sessions (`login`); the old `sshd(pam_unix)` session lines count as
//!   `ssh` since that sshd wrote no `Accepted` line;
//! - denied access: `Failed password|publickey|...`, `user NOT in sudoers`,
//!   `command not allowed`, sudo authentication failures, `FAILED SU`,
//!   `FAILED LOGIN`, and the old `sshd(pam_unix)` authentication failures that
//!   name a user;
//! - memberships (group `host/<host>/group/<group>`): `usermod -aG` /
//!   `-G`, `gpasswd -a` and `adduser USER GROUP` run through `sudo` (actor = the
//!   sudo user), and the confirmations `usermod[..]: add 'u' to group 'g'` and
//!   `gpasswd[..]: user u added by a to group g` (actor `root` for usermod, which
//!   does not log its caller). A confirmation that follows a sudo command
//!   announcing the same change on the same host within 10 minutes is skipped,
//!   so each change counts once; removals (`delete ... from group`, `removed
//!   by`) are membership removes;
//! - auditd: `USER_CMD` (sudo access; a `usermod`/`gpasswd` command is a
//!   membership), `USER_LOGIN` (ssh or console login), failed `USER_AUTH`
//!   (denied), `USER_MGMT op=add-user-to-group` (membership); the host is the
//!   `node=` field, else `localhost`.
//!
//! Everything else that parses as syslog (`useradd`, `groupadd`, ftpd, kernel,
//! disconnects, `Invalid user` lines that a `Failed` line repeats, ...) is
//! skipped; a line without a syslog or auditd header is a decode error.

use std::collections::VecDeque;
use std::sync::LazyLock;

use chrono::{Datelike, TimeZone, Utc};

use super::time::{civil_ms, digits, month_from_abbr, parse_datetime};
use super::{DecodeError, Decoder};
use memchr::memmem::Finder;
use smallvec::SmallVec;

use crate::event::{AccessRef, Body, DAY_MS, Event, Events, Membership, MembershipOp, Outcome, Ts};

/// Decoder for Linux authentication logs.
#[derive(Debug, Default)]
pub struct LinuxAuthDecoder {
    /// Fixed reference time for year inference; `None`: the current time.
    reference: Option<Ts>,
    /// Membership adds announced by a sudo / auditd command, awaiting their
    /// usermod / gpasswd confirmation line.
    pending: VecDeque<Pending>,
    /// The UTC year last found for a reference time, with the span of
    /// milliseconds it covers: finding the year anew for every line costs as
    /// much as the rest of the header.
    year: Option<YearSpan>,
    /// The day the last classic timestamp fell on in the reference year:
    /// lines come in time order, so most fall on the day of the line before.
    day: Option<DayStart>,
}

#[derive(Debug, Clone, Copy)]
struct YearSpan {
    year: i32,
    /// First millisecond of the year.
    from: i64,
    /// First millisecond of the next year.
    to: i64,
}

#[derive(Debug, Clone, Copy)]
struct DayStart {
    /// Year, month and day.
    date: (i32, u32, u32),
    /// Its first millisecond; `None` if the year has no such day.
    ms: Option<i64>,
}

/// A classic timestamp (`Mmm dd HH:MM:SS`): a date and time without a year.
#[derive(Debug, Clone, Copy)]
struct Classic {
    month: u32,
    day: u32,
    h: u32,
    m: u32,
    s: u32,
}

#[derive(Debug)]
struct Pending {
    host: String,
    group: String,
    member: String,
    ts: Ts,
}

const NAME: &str = "syslog";
/// How long after a sudo command its usermod / gpasswd line is taken as the same change.
const CONFIRM_WINDOW_MS: i64 = 10 * 60 * 1000;
const PENDING_MAX: usize = 256;

impl LinuxAuthDecoder {
    /// A decoder that infers years relative to `reference` instead of the
    /// current time (for tests and for replaying old logs).
    pub fn with_reference(reference: Ts) -> Self {
        LinuxAuthDecoder {
            reference: Some(reference),
            pending: VecDeque::new(),
            year: None,
            day: None,
        }
    }

    /// The UTC year of a reference time.
    fn year_of(&mut self, reference: Ts) -> Option<i32> {
        if let Some(y) = self.year {
            if (y.from..y.to).contains(&reference.0) {
                return Some(y.year);
            }
        }
        let year = Utc.timestamp_millis_opt(reference.0).single()?.year();
        self.year = Some(YearSpan {
            year,
            from: civil_ms(year, 1, 1, 0, 0, 0)?,
            to: civil_ms(year + 1, 1, 1, 0, 0, 0)?,
        });
        Some(year)
    }

    /// The time of a classic timestamp, its year inferred from the reference
    /// time (see the module doc).
    fn classic_time(&mut self, c: Classic) -> Option<Ts> {
        match self.reference {
            Some(reference) => self.classic_time_at(reference, c),
            None => self.classic_time_now(c, coarse_now(), Ts::now),
        }
    }

    /// [`Self::classic_time_at`] the current time, given as `coarse`, the
    /// time at the last clock tick, and `precise`, the clock itself.
    ///
    /// The precise clock costs as much to read as the rest of a line; the
    /// coarse one, behind it by at most a tick (far less than a second), a
    /// fraction of that. As the reference time grows, the answer changes
    /// only to a time then at most a day ahead of it (the date in a later
    /// year, or in the new year), which a second earlier was not an answer:
    /// where the coarse time and a second after it give the same answer,
    /// every time between them does, the precise time included. Only a line
    /// within a second of where its answer changes reads the precise clock.
    fn classic_time_now(
        &mut self,
        c: Classic,
        coarse: Ts,
        precise: impl FnOnce() -> Ts,
    ) -> Option<Ts> {
        let answer = self.classic_time_at(coarse, c);
        if answer == self.classic_time_at(coarse.add_millis(1000), c) {
            return answer;
        }
        self.classic_time_at(precise(), c)
    }

    /// The time of a classic timestamp for the reference time `reference`:
    /// in the latest year (at most the reference's) in which the date exists
    /// and is not more than a day after the reference; Feb 29 may go back a
    /// few years.
    fn classic_time_at(&mut self, reference: Ts, c: Classic) -> Option<Ts> {
        let year = self.year_of(reference)?;
        if c.h > 23 || c.m > 59 || c.s > 59 {
            return None;
        }
        let latest = reference.0 + DAY_MS;
        let date = (year, c.month, c.day);
        let day = match self.day {
            Some(d) if d.date == date => d.ms,
            _ => {
                let ms = civil_ms(year, c.month, c.day, 0, 0, 0);
                self.day = Some(DayStart { date, ms });
                ms
            }
        };
        let clock = i64::from(c.h * 3600 + c.m * 60 + c.s) * 1000;
        if let Some(ms) = day.map(|day| day + clock).filter(|ms| *ms <= latest) {
            return Some(Ts(ms));
        }
        (1..8).find_map(|back| {
            let ms = civil_ms(year - back, c.month, c.day, c.h, c.m, c.s)?;
            (ms <= latest).then_some(Ts(ms))
        })
    }
}

/// The time at the last clock tick (`CLOCK_REALTIME_COARSE`): behind the
/// system clock by at most a tick, and read without the hardware counter.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn coarse_now() -> Ts {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    Ts(t.tv_sec.saturating_mul(1000) + t.tv_nsec / 1_000_000)
}

/// Where there is no coarse clock: the system clock.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn coarse_now() -> Ts {
    Ts::now()
}

/// A parsed syslog line.
struct Line<'a> {
    ts: Ts,
    host: &'a str,
    /// The program without `[pid]` and without an old-style `(pam_unix)` suffix.
    program: &'a str,
    /// The program was written `name(pam_unix)` (old PAM logging).
    old_pam: bool,
    message: &'a str,
}

impl Decoder for LinuxAuthDecoder {
    fn decode(&mut self, line: &[u8], out: &mut Events) -> Result<(), DecodeError> {
        let text = std::str::from_utf8(line).map_err(|_| DecodeError::InvalidUtf8)?;
        let text = trim_end(text);
        if text.is_empty() {
            return Ok(());
        }
        if text.starts_with("type=") || text.starts_with("node=") {
            return self.auditd(text, out);
        }
        // The reference time is only read for a timestamp without a year.
        let l = parse_syslog(text, |c| self.classic_time(c)).ok_or(DecodeError::Unrecognized {
            format: NAME,
            reason: "no syslog timestamp and host",
        })?;
        self.syslog(&l, out);
        Ok(())
    }
}

/// Parses the header: timestamp, host, program; `None` if it is not syslog.
fn parse_syslog(text: &str, classic: impl FnOnce(Classic) -> Option<Ts>) -> Option<Line<'_>> {
    let text = strip_priority(text);
    let (ts, rest) = if text.as_bytes().first()?.is_ascii_digit() {
        let (stamp, rest) = split_at_byte(text, b' ')?;
        (parse_datetime(stamp)?, rest)
    } else {
        bsd_timestamp(text, classic)?
    };
    let rest = trim_start(rest);
    let (host, rest) = split_at_byte(rest, b' ').unwrap_or((rest, ""));
    if host.is_empty() {
        return None;
    }
    let rest = trim_start(rest);
    let (program, old_pam, message) = match program_tag(rest) {
        Some((tag, msg)) => {
            let name = split_at_byte(tag, b'[').map_or(tag, |(name, _)| name);
            let (name, old_pam) = match name.strip_suffix("(pam_unix)") {
                Some(n) => (n, true),
                None => (name, false),
            };
            (name, old_pam, trim_end(trim_start(msg)))
        }
        None => ("", false, rest),
    };
    Some(Line {
        ts,
        host,
        program,
        old_pam,
        message,
    })
}

/// `program[pid]: message` -> (`program[pid]`, `message`): split at the
/// first `": "` when no space comes before it. (That `": "` ends the first
/// word, so only the first word is read.)
fn program_tag(rest: &str) -> Option<(&str, &str)> {
    let space = rest.bytes().position(|b| b == b' ')?;
    let colon = space.checked_sub(1)?;
    (rest.as_bytes()[colon] == b':').then(|| (&rest[..colon], &rest[space + 1..]))
}

/// `text` split at the first `byte` (ASCII): `split_once(char)` without a
/// char searcher, which costs more than the rest of a header. (A byte loop:
/// the fields split this way are a few bytes long.)
fn split_at_byte(text: &str, byte: u8) -> Option<(&str, &str)> {
    debug_assert!(byte.is_ascii());
    let i = text.bytes().position(|b| b == byte)?;
    Some((&text[..i], &text[i + 1..]))
}

/// Whether `b` is an ASCII byte that `char::is_whitespace` holds to be
/// whitespace.
fn is_ascii_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t'..=b'\r')
}

/// `text.trim_start()`, reading ASCII bytes as bytes (the whole Unicode test
/// only from the first non-ASCII character on).
fn trim_start(text: &str) -> &str {
    let n = text.bytes().take_while(|b| is_ascii_space(*b)).count();
    let rest = &text[n..];
    if rest.as_bytes().first().is_some_and(|b| !b.is_ascii()) {
        rest.trim_start()
    } else {
        rest
    }
}

/// `text.trim_end()`, as [`trim_start`] does it.
fn trim_end(text: &str) -> &str {
    let n = text
        .bytes()
        .rev()
        .take_while(|b| is_ascii_space(*b))
        .count();
    let rest = &text[..text.len() - n];
    if rest.as_bytes().last().is_some_and(|b| !b.is_ascii()) {
        rest.trim_end()
    } else {
        rest
    }
}

fn strip_priority(text: &str) -> &str {
    if let Some(rest) = text.strip_prefix('<') {
        if let Some((pri, after)) = split_at_byte(rest, b'>') {
            if !pri.is_empty() && pri.len() <= 3 && pri.bytes().all(|b| b.is_ascii_digit()) {
                return after;
            }
        }
    }
    text
}

/// `Mmm dd HH:MM:SS` (day padded with a space or not), the time given by
/// `classic` (which infers the year).
fn bsd_timestamp(text: &str, classic: impl FnOnce(Classic) -> Option<Ts>) -> Option<(Ts, &str)> {
    let b = text.as_bytes();
    let month = month_from_abbr(b.get(..3)?)?;
    let rest = trim_start(text.get(3..)?);
    let (day, rest) = split_at_byte(rest, b' ')?;
    let day = digits(day.as_bytes())?;
    let rest = trim_start(rest);
    let (clock, rest) = split_at_byte(rest, b' ').unwrap_or((rest, ""));
    let c = clock.as_bytes();
    if c.len() != 8 || c[2] != b':' || c[5] != b':' {
        return None;
    }
    let (h, m, s) = (digits(&c[0..2])?, digits(&c[3..5])?, digits(&c[6..8])?);
    let ts = classic(Classic {
        month,
        day,
        h,
        m,
        s,
    })?;
    Some((ts, rest))
}

impl LinuxAuthDecoder {
    fn syslog(&mut self, l: &Line<'_>, out: &mut Events) {
        let msg = l.message;
        match l.program {
            "sshd" | "sshd-session" => {
                if let Some(rest) = msg.strip_prefix("Accepted ") {
                    if let Some(user) = after_for(rest) {
                        push_access(out, l.ts, user, l.host, "ssh", Outcome::Success);
                    }
                } else if let Some(rest) = msg.strip_prefix("Failed ") {
                    if let Some(user) = after_for(rest) {
                        push_access(out, l.ts, user, l.host, "ssh", Outcome::Denied);
                    }
                } else if l.old_pam {
                    // Old sshd logged through pam_unix only: these lines are the
                    // only record of logins and failures.
                    if let Some(user) = session_opened_for(msg) {
                        push_access(out, l.ts, user, l.host, "ssh", Outcome::Success);
                    } else if msg.starts_with("authentication failure;") {
                        if let Some(user) = kv(msg, &USER) {
                            push_access(out, l.ts, user, l.host, "ssh", Outcome::Denied);
                        }
                    }
                }
            }
            "sudo" => self.sudo(l, out),
            "su" => {
                let opened = if l.old_pam {
                    msg.starts_with("session opened")
                } else {
                    msg.starts_with("pam_unix(su:session): session opened")
                        || msg.starts_with("pam_unix(su-l:session): session opened")
                };
                if opened {
                    if let Some(by) = opened_by(msg) {
                        push_access(out, l.ts, &by, l.host, "su", Outcome::Success);
                    }
                } else if let Some(rest) = msg.strip_prefix("FAILED SU (to ") {
                    // `FAILED SU (to root) alice on pts/0`
                    if let Some(who) = rest.split_once(") ").and_then(|(_, r)| r.split(' ').next())
                    {
                        push_access(out, l.ts, who, l.host, "su", Outcome::Denied);
                    }
                }
            }
            "login" => {
                let opened = if l.old_pam {
                    msg.starts_with("session opened")
                } else {
                    msg.starts_with("pam_unix(login:session): session opened")
                };
                if opened {
                    if let Some(user) = session_opened_for(msg) {
                        push_access(out, l.ts, user, l.host, "login", Outcome::Success);
                    }
                } else if msg.starts_with("FAILED LOGIN") {
                    // `FAILED LOGIN 1 FROM tty1 FOR alice, Authentication failure`
                    if let Some(user) = msg
                        .split_once(" FOR ")
                        .map(|(_, r)| r.split([',', ' ']).next().unwrap_or(r))
                    {
                        push_access(out, l.ts, user, l.host, "login", Outcome::Denied);
                    }
                }
            }
            "usermod" => {
                // `add 'alice' to group 'sudo'`; the shadow-group line repeats it.
                if msg.contains("shadow group") {
                    return;
                }
                if let Some((member, group)) = quoted_pair(msg, "add '", "' to group '") {
                    self.confirmed(l.ts, l.host, "root", group, member, MembershipOp::Add, out);
                } else if let Some((member, group)) = quoted_pair(msg, "delete '", "' from group '")
                {
                    self.confirmed(
                        l.ts,
                        l.host,
                        "root",
                        group,
                        member,
                        MembershipOp::Remove,
                        out,
                    );
                }
            }
            "gpasswd" => {
                // `user alice added by root to group sudo`
                let Some(rest) = msg.strip_prefix("user ") else {
                    return;
                };
                let (member, rest) = rest.split_once(' ').unwrap_or((rest, ""));
                let (op, rest) = if let Some(r) = rest.strip_prefix("added by ") {
                    (MembershipOp::Add, r.split_once(" to group "))
                } else if let Some(r) = rest.strip_prefix("removed by ") {
                    (MembershipOp::Remove, r.split_once(" from group "))
                } else {
                    return;
                };
                if let Some((actor, group)) = rest {
                    self.confirmed(l.ts, l.host, actor, group.trim(), member, op, out);
                }
            }
            _ => {}
        }
    }

    fn sudo(&mut self, l: &Line<'_>, out: &mut Events) {
        let msg = l.message;
        if let Some(rest) = msg.strip_prefix("pam_unix(sudo:auth): authentication failure;") {
            if let Some(user) = kv(rest, &RUSER)
                .or_else(|| kv(rest, &LOGNAME))
                .or_else(|| kv(rest, &USER))
            {
                push_access(out, l.ts, user, l.host, "sudo", Outcome::Denied);
            }
            return;
        }
        // `alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/ls`
        let Some((user, rest)) = msg.split_once(" : ") else {
            return;
        };
        let user = user.trim();
        if user.is_empty() || user.contains(' ') {
            return;
        }
        let first = rest.split(" ; ").next().unwrap_or(rest);
        let refused = first.contains("NOT in sudoers")
            || first.contains("command not allowed")
            || first.contains("incorrect password attempt")
            || first.contains("NOT authorized");
        let Some(command) = rest.split_once("COMMAND=").map(|(_, c)| c.trim()) else {
            return;
        };
        if refused {
            push_access(out, l.ts, user, l.host, "sudo", Outcome::Denied);
            return;
        }
        push_access(out, l.ts, user, l.host, "sudo", Outcome::Success);
        self.announced(l.ts, l.host, user, command, out);
    }

    /// Memberships a command line (`usermod -aG g u`, `gpasswd -a u g`,
    /// `adduser u g`) makes, remembered so their confirmation is not counted again.
    fn announced(&mut self, ts: Ts, host: &str, actor: &str, command: &str, out: &mut Events) {
        for (group, member) in command_memberships(command) {
            out.push(membership(
                ts,
                host,
                actor,
                &group,
                &member,
                MembershipOp::Add,
            ));
            if self.pending.len() == PENDING_MAX {
                self.pending.pop_front();
            }
            self.pending.push_back(Pending {
                host: host.to_owned(),
                group,
                member,
                ts,
            });
        }
    }

    /// A usermod / gpasswd / auditd confirmation of a membership change.
    #[allow(clippy::too_many_arguments)]
    fn confirmed(
        &mut self,
        ts: Ts,
        host: &str,
        actor: &str,
        group: &str,
        member: &str,
        op: MembershipOp,
        out: &mut Events,
    ) {
        if op == MembershipOp::Add {
            if let Some(i) = self.pending.iter().position(|p| {
                p.host == host
                    && p.group == group
                    && p.member == member
                    && ts.0 >= p.ts.0
                    && ts.0 - p.ts.0 <= CONFIRM_WINDOW_MS
            }) {
                self.pending.remove(i);
                return;
            }
        }
        out.push(membership(ts, host, actor, group, member, op));
    }

    fn auditd(&mut self, text: &str, out: &mut Events) -> Result<(), DecodeError> {
        let unrecognized = DecodeError::Unrecognized {
            format: "auditd",
            reason: "no msg=audit(TIME:SERIAL)",
        };
        let (head, rest) = MSG_AUDIT
            .split_once(text)
            .ok_or_else(|| unrecognized.clone())?;
        let (stamp, body) = STAMP_END
            .split_once(rest)
            .ok_or_else(|| unrecognized.clone())?;
        let secs = split_at_byte(stamp, b':').map_or(stamp, |(secs, _)| secs);
        let ts =
            parse_datetime(secs).ok_or_else(|| DecodeError::InvalidTimestamp(secs.to_owned()))?;
        let host = kv(head, &NODE).unwrap_or("localhost");
        let kind = kv(head, &TYPE).ok_or(unrecognized)?;
        // The account that logged in (`auid`, or its enriched name `AUID`).
        let login_user = || -> Option<String> {
            if let Some(name) = kv(body, &AUID_NAME).filter(|n| *n != "unset") {
                return Some(name.to_owned());
            }
            match kv(body, &AUID)? {
                "4294967295" | "-1" => None,
                "0" => Some("root".to_owned()),
                n => Some(format!("uid:{n}")),
            }
        };
        // Most auditd records (SYSCALL, PATH, EXECVE, ...) say nothing of
        // access: they end here, before their fields are looked up.
        if !matches!(kind, "USER_CMD" | "USER_LOGIN" | "USER_AUTH" | "USER_MGMT") {
            return Ok(());
        }
        let exe = kv(body, &EXE).unwrap_or_default();
        let failed = kv(body, &RES) == Some("failed");
        let service = if exe.contains("sshd") || kv(body, &TERMINAL) == Some("ssh") {
            "ssh"
        } else if exe.ends_with("/sudo") {
            "sudo"
        } else if exe.ends_with("/su") {
            "su"
        } else {
            "login"
        };
        match kind {
            "USER_CMD" => {
                let Some(user) = login_user() else {
                    return Ok(());
                };
                let outcome = if failed {
                    Outcome::Denied
                } else {
                    Outcome::Success
                };
                push_access(out, ts, &user, host, "sudo", outcome);
                if !failed {
                    if let Some(cmd) = kv(body, &CMD).and_then(audit_text) {
                        self.announced(ts, host, &user, &cmd, out);
                    }
                }
            }
            "USER_LOGIN" => {
                // `acct="alice"`, or `id=UID` with its enriched name `ID="alice"`.
                let acct = kv(body, &ACCT)
                    .or_else(|| kv(body, &ID_NAME))
                    .map(str::to_owned)
                    .or_else(|| match kv(body, &ID)? {
                        "0" => Some("root".to_owned()),
                        "4294967295" | "-1" => None,
                        n => Some(format!("uid:{n}")),
                    });
                if let Some(acct) = acct {
                    let outcome = if failed {
                        Outcome::Denied
                    } else {
                        Outcome::Success
                    };
                    push_access(out, ts, &acct, host, service, outcome);
                }
            }
            "USER_AUTH" if failed => {
                if let Some(acct) = kv(body, &ACCT) {
                    push_access(out, ts, acct, host, service, Outcome::Denied);
                }
            }
            "USER_MGMT" if !failed => {
                let op = kv(body, &OP).unwrap_or_default();
                let (Some(group), Some(member)) = (kv(body, &GRP), kv(body, &ACCT)) else {
                    return Ok(());
                };
                let actor = login_user().unwrap_or_else(|| "root".to_owned());
                if op.contains("shadow") {
                    return Ok(());
                }
                if op.starts_with("add-user-to-group") || op.starts_with("add-to-group") {
                    self.confirmed(ts, host, &actor, group, member, MembershipOp::Add, out);
                } else if op.starts_with("delete-user-from-group") {
                    self.confirmed(ts, host, &actor, group, member, MembershipOp::Remove, out);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Appends the access of `principal` to `service` on `host` (resource
/// `host/<host>/<service>`, action the service).
fn push_access(
    out: &mut Events,
    ts: Ts,
    principal: &str,
    host: &str,
    service: &str,
    outcome: Outcome,
) {
    // `Events` copies the names: the resource is put together on the stack.
    let mut resource = SmallVec::<[u8; 128]>::new();
    for part in [
        b"host/".as_slice(),
        host.as_bytes(),
        b"/",
        service.as_bytes(),
    ] {
        resource.extend_from_slice(part);
    }
    let resource = std::str::from_utf8(&resource).expect("joined from text at char boundaries");
    out.push_access(AccessRef {
        ts,
        principal,
        resource,
        outcome,
        action: Some(service),
        id: None,
        key: None,
    });
}

fn membership(
    ts: Ts,
    host: &str,
    actor: &str,
    group: &str,
    member: &str,
    op: MembershipOp,
) -> Event {
    let grant_id = format!("linux:{host}:{}:{group}:{member}", ts.0);
    Event {
        ts,
        id: Some(grant_id.clone()),
        body: Body::Membership(Membership {
            actor: actor.to_owned(),
            group: format!("host/{host}/group/{group}"),
            member: member.to_owned(),
            op,
            grant_id: Some(grant_id),
            reference: None,
            actor_type: None,
            target: crate::undo::Target::LinuxGroupMembership {
                host: host.to_owned(),
                group: group.to_owned(),
                user: member.to_owned(),
            }
            .boxed(),
        }),
    }
}

/// `password for [invalid user ]alice from ...` -> `alice`.
fn after_for(rest: &str) -> Option<&str> {
    let (_, rest) = FOR.split_once(rest)?;
    let rest = rest.strip_prefix("invalid user ").unwrap_or(rest);
    let user = rest.split(' ').next()?;
    // `Failed password for  from` (an empty user name) names nobody.
    (!user.is_empty() && user != "from").then_some(user)
}

/// `session opened for user alice by ...` -> `alice` (a `(uid=N)` suffix removed).
fn session_opened_for(msg: &str) -> Option<&str> {
    let (_, rest) = SESSION_OPENED_FOR.split_once(msg)?;
    let user = rest.split(' ').next()?;
    let user = user.split('(').next().unwrap_or(user);
    (!user.is_empty()).then_some(user)
}

/// `... by alice(uid=1000)` -> `alice`; `by (uid=0)` -> `root`; `by (uid=500)` -> `uid:500`.
fn opened_by(msg: &str) -> Option<String> {
    let (_, rest) = msg.rsplit_once(" by ")?;
    let rest = rest.trim();
    let (name, uid) = match rest.split_once("(uid=") {
        Some((n, u)) => (n, u.trim_end_matches(')')),
        None => (rest, ""),
    };
    if !name.is_empty() {
        return Some(name.to_owned());
    }
    match uid {
        "0" => Some("root".to_owned()),
        "" => None,
        n => Some(format!("uid:{n}")),
    }
}

/// A text searched for in every line, its searcher built once: setting one
/// up for each search, as `str::find` does, costs more than searching a line.
struct Needle(LazyLock<Finder<'static>>);

impl Needle {
    /// Where `hay` first holds the text.
    fn find(&self, hay: &str) -> Option<usize> {
        self.0.find(hay.as_bytes())
    }

    /// `hay.split_once(text)`.
    fn split_once<'a>(&self, hay: &'a str) -> Option<(&'a str, &'a str)> {
        let i = self.find(hay)?;
        Some((&hay[..i], &hay[i + self.0.needle().len()..]))
    }
}

macro_rules! needles {
    ($($name:ident = $text:literal;)*) => {
        $(static $name: Needle = Needle(LazyLock::new(|| Finder::new($text)));)*
    };
}

needles! {
    FOR = " for ";
    SESSION_OPENED_FOR = "session opened for user ";
    MSG_AUDIT = "msg=audit(";
    STAMP_END = "):";
    // Keys of `key=value` fields.
    ACCT = "acct";
    AUID = "auid";
    AUID_NAME = "AUID";
    CMD = "cmd";
    EXE = "exe";
    GRP = "grp";
    ID = "id";
    ID_NAME = "ID";
    LOGNAME = "logname";
    NODE = "node";
    OP = "op";
    RES = "res";
    RUSER = "ruser";
    TERMINAL = "terminal";
    TYPE = "type";
    USER = "user";
}

/// The value of `key=value` in a `;`- or space-separated list (quotes removed).
fn kv<'a>(text: &'a str, key: &Needle) -> Option<&'a str> {
    let len = key.0.needle().len();
    let mut search = text;
    while let Some(i) = key.find(search) {
        let before_ok = i == 0 || matches!(search.as_bytes()[i - 1], b' ' | b';' | b'\'' | b'\t');
        let after = &search[i + len..];
        if before_ok {
            if let Some(v) = after.strip_prefix('=') {
                let v = match v.strip_prefix('"') {
                    Some(q) => &q[..q.bytes().position(|b| b == b'"').unwrap_or(q.len())],
                    None => {
                        let end = v.bytes().position(|b| matches!(b, b' ' | b';' | b'\''));
                        &v[..end.unwrap_or(v.len())]
                    }
                };
                return (!v.is_empty()).then_some(v);
            }
        }
        search = after;
    }
    None
}

/// auditd writes `cmd` quoted, or hex-encoded when it has spaces or odd bytes.
fn audit_text(v: &str) -> Option<String> {
    if v.len() % 2 == 0 && v.len() >= 2 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        let bytes: Option<Vec<u8>> = (0..v.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&v[i..i + 2], 16).ok())
            .collect();
        return String::from_utf8(bytes?).ok();
    }
    Some(v.to_owned())
}

/// `<open>a<mid>b'` -> (a, b).
fn quoted_pair<'a>(msg: &'a str, open: &str, mid: &str) -> Option<(&'a str, &'a str)> {
    let rest = msg.strip_prefix(open)?;
    let (a, rest) = rest.split_once(mid)?;
    let b = rest
        .strip_suffix('\'')
        .or_else(|| rest.split('\'').next())?;
    Some((a, b))
}

/// (group, member) pairs a command adds: `usermod -aG g1,g2 u` (also `-a -G`,
/// `--append --groups`, and `-G` alone, which sets the list and so adds each),
/// `gpasswd -a u g` / `--add`, `adduser u g`.
fn command_memberships(command: &str) -> Vec<(String, String)> {
    let args: Vec<&str> = command.split_whitespace().collect();
    let Some(program) = args.first().map(|p| p.rsplit('/').next().unwrap_or(p)) else {
        return Vec::new();
    };
    let args = &args[1..];
    match program {
        "usermod" => {
            let mut groups = None;
            let mut i = 0;
            while i < args.len() {
                let a = args[i];
                if a == "-G" || a == "--groups" {
                    groups = args.get(i + 1).copied();
                    i += 2;
                    continue;
                }
                if let Some(g) = a.strip_prefix("--groups=") {
                    groups = Some(g);
                } else if a.starts_with('-') && !a.starts_with("--") && a.contains('G') {
                    // Bundled short options: `-aG sudo` or `-aGsudo`.
                    let after = &a[a.find('G').unwrap_or(0) + 1..];
                    if after.is_empty() {
                        groups = args.get(i + 1).copied();
                        i += 2;
                        continue;
                    }
                    groups = Some(after);
                }
                i += 1;
            }
            let user = args.last().filter(|u| !u.starts_with('-'));
            match (groups, user) {
                (Some(gs), Some(u)) if Some(u) != groups.as_ref() => gs
                    .split(',')
                    .filter(|g| !g.is_empty())
                    .map(|g| (g.to_owned(), (*u).to_owned()))
                    .collect(),
                _ => Vec::new(),
            }
        }
        "gpasswd" => match args {
            [flag, user, group, ..] if *flag == "-a" || *flag == "--add" => {
                vec![((*group).to_owned(), (*user).to_owned())]
            }
            _ => Vec::new(),
        },
        "adduser" => match args {
            [user, group] if !user.starts_with('-') && !group.starts_with('-') => {
                vec![((*group).to_owned(), (*user).to_owned())]
            }
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-03-18T12:00:00Z
    const REF: Ts = Ts(1_773_835_200_000);

    fn decode_with(d: &mut LinuxAuthDecoder, line: &str) -> Result<Vec<Event>, DecodeError> {
        d.decode_owned(line.as_bytes())
    }

    fn decode(line: &str) -> Result<Vec<Event>, DecodeError> {
        decode_with(&mut LinuxAuthDecoder::with_reference(REF), line)
    }

    fn one(line: &str) -> Body {
        let mut v = decode(line).unwrap();
        assert_eq!(v.len(), 1, "{line}: {v:?}");
        v.remove(0).body
    }

    fn access_of(line: &str) -> (String, String, Outcome) {
        match one(line) {
            Body::Access(a) => (a.principal, a.resource, a.outcome),
            b => panic!("{b:?}"),
        }
    }

    #[test]
    fn the_year_comes_from_the_reference_time() {
        assert_eq!(REF.to_string(), "2026-03-18T12:00:00Z");
        let t = |line: &str| decode(line).unwrap()[0].ts.to_string();
        let ssh = "sshd[1]: Accepted password for a from 1.2.3.4 port 1 ssh2";
        assert_eq!(
            t(&format!("Mar 18 09:00:00 h {ssh}")),
            "2026-03-18T09:00:00Z"
        );
        // Up to a day ahead is clock skew; beyond, the line is from last year.
        assert_eq!(
            t(&format!("Mar 19 11:00:00 h {ssh}")),
            "2026-03-19T11:00:00Z"
        );
        assert_eq!(
            t(&format!("Mar 19 13:00:00 h {ssh}")),
            "2025-03-19T13:00:00Z"
        );
        assert_eq!(
            t(&format!("Dec 31 23:59:59 h {ssh}")),
            "2025-12-31T23:59:59Z"
        );
        assert_eq!(
            t(&format!("Mar  1 00:00:01 h {ssh}")),
            "2026-03-01T00:00:01Z"
        );
        assert_eq!(
            t(&format!("Nov 2 15:40:14 h {ssh}")),
            "2025-11-02T15:40:14Z"
        );
        // Feb 29 only exists in leap years.
        assert_eq!(
            t(&format!("Feb 29 10:00:00 h {ssh}")),
            "2024-02-29T10:00:00Z"
        );
        // RFC 3339 timestamps carry their year.
        assert_eq!(
            t(&format!("2023-11-14T00:20:42.738197+01:00 h {ssh}")),
            "2023-11-13T23:20:42.738Z"
        );
    }

    #[test]
    fn ssh_logins_and_failures() {
        assert_eq!(
            access_of(
                "Feb 21 21:54:44 localhost sshd[3402]: Accepted publickey for vagrant from 10.0.2.2 port 63673 ssh2: RSA 39:33"
            ),
            (
                "vagrant".into(),
                "host/localhost/ssh".into(),
                Outcome::Success
            )
        );
        assert_eq!(
            access_of(
                "Mar 11 22:55:32 ubuntu2015 sshd[3]:  Failed password for root from 188.124.3.41 port 32889 ssh2"
            ),
            ("root".into(), "host/ubuntu2015/ssh".into(), Outcome::Denied)
        );
        assert_eq!(
            access_of(
                "Dec 10 09:11:40 LabSZ sshd[24200]: Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2"
            ),
            ("webmaster".into(), "host/LabSZ/ssh".into(), Outcome::Denied)
        );
        // Repeats of the Failed line, and noise: skipped.
        for skip in [
            "Feb 21 21:56:12 localhost sshd[3430]: Invalid user test from 10.0.2.2",
            "Dec 10 06:55:48 LabSZ sshd[24200]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4  user=root",
            "Dec 10 06:55:48 LabSZ sshd[24200]: Received disconnect from 1.2.3.4: 11: Bye Bye [preauth]",
            "Mar 11 00:00:00 ubuntu2015 sshd[3]:  Server listening on 0.0.0.0 port 22.",
        ] {
            assert_eq!(decode(skip).unwrap(), vec![], "{skip}");
        }
    }

    #[test]
    fn old_pam_sshd_lines_are_the_login_record() {
        assert_eq!(
            access_of(
                "Jun 15 02:04:59 combo sshd(pam_unix)[20882]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=220-135-151-1.hinet-ip.hinet.net  user=root"
            ),
            ("root".into(), "host/combo/ssh".into(), Outcome::Denied)
        );
        assert_eq!(
            access_of(
                "Jul 27 14:42:00 combo sshd(pam_unix)[1234]: session opened for user test by (uid=509)"
            ),
            ("test".into(), "host/combo/ssh".into(), Outcome::Success)
        );
        assert_eq!(
            decode("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=218.188.2.4 ").unwrap(),
            vec![],
            "no user named"
        );
    }

    #[test]
    fn sudo_and_su() {
        assert_eq!(
            access_of(
                "Feb 21 23:35:33 localhost sudo: vagrant : TTY=pts/0 ; PWD=/home/vagrant ; USER=root ; COMMAND=/bin/ls"
            ),
            (
                "vagrant".into(),
                "host/localhost/sudo".into(),
                Outcome::Success
            )
        );
        assert_eq!(
            access_of(
                "Feb 24 00:13:02 precise32 sudo:      tsg : user NOT in sudoers ; TTY=pts/1 ; PWD=/home/vagrant ; USER=root ; COMMAND=/bin/ls"
            ),
            ("tsg".into(), "host/precise32/sudo".into(), Outcome::Denied)
        );
        assert_eq!(
            access_of(
                "Jan 8 14:41:08 vskub1master01p sudo: pam_unix(sudo:auth): authentication failure; logname=zbadguy uid=4001 euid=0 tty=/dev/pts/12 ruser=zbadguy rhost= user=zbadguy"
            ),
            (
                "zbadguy".into(),
                "host/vskub1master01p/sudo".into(),
                Outcome::Denied
            )
        );
        assert_eq!(
            access_of(
                "Jun 15 04:06:18 combo su(pam_unix)[21416]: session opened for user cyrus by (uid=0)"
            ),
            ("root".into(), "host/combo/su".into(), Outcome::Success)
        );
        assert_eq!(
            access_of(
                "Mar 18 10:00:00 web-1 su: pam_unix(su-l:session): session opened for user root(uid=0) by alice(uid=1000)"
            ),
            ("alice".into(), "host/web-1/su".into(), Outcome::Success)
        );
        assert_eq!(
            access_of("Mar 18 10:00:00 web-1 su: FAILED SU (to root) mallory on pts/0"),
            ("mallory".into(), "host/web-1/su".into(), Outcome::Denied)
        );
        assert_eq!(
            access_of(
                "Jul  7 08:06:15 combo login(pam_unix)[2421]: session opened for user root by LOGIN(uid=0)"
            ),
            ("root".into(), "host/combo/login".into(), Outcome::Success)
        );
    }

    fn memberships(events: &[Event]) -> Vec<(String, String, String, MembershipOp)> {
        events
            .iter()
            .filter_map(|e| match &e.body {
                Body::Membership(m) => {
                    Some((m.actor.clone(), m.group.clone(), m.member.clone(), m.op))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn usermod_through_sudo_is_one_membership_by_the_sudo_user() {
        let mut d = LinuxAuthDecoder::with_reference(REF);
        let sudo = "Mar 18 09:07:02 web-1 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/sbin/usermod -aG sudo,docker bob";
        let ev = decode_with(&mut d, sudo).unwrap();
        assert!(matches!(&ev[0].body, Body::Access(a) if a.resource == "host/web-1/sudo"));
        assert_eq!(
            memberships(&ev),
            [
                (
                    "alice".into(),
                    "host/web-1/group/sudo".into(),
                    "bob".into(),
                    MembershipOp::Add
                ),
                (
                    "alice".into(),
                    "host/web-1/group/docker".into(),
                    "bob".into(),
                    MembershipOp::Add
                ),
            ]
        );
        let Body::Membership(m) = &ev[1].body else {
            panic!()
        };
        assert_eq!(
            m.grant_id.as_deref(),
            Some(format!("linux:web-1:{}:sudo:bob", ev[1].ts.0).as_str())
        );
        // usermod's own lines confirm the same change: not counted again.
        for confirm in [
            "Mar 18 09:07:02 web-1 usermod[4242]: add 'bob' to group 'sudo'",
            "Mar 18 09:07:02 web-1 usermod[4242]: add 'bob' to shadow group 'sudo'",
            "Mar 18 09:07:02 web-1 usermod[4242]: add 'bob' to group 'docker'",
        ] {
            assert_eq!(decode_with(&mut d, confirm).unwrap(), vec![], "{confirm}");
        }
        // Without a sudo line before it, the confirmation is the record (actor root).
        let ev = decode_with(
            &mut d,
            "Mar 18 09:30:00 web-1 usermod[4250]: add 'carol' to group 'wheel'",
        )
        .unwrap();
        assert_eq!(
            memberships(&ev),
            [(
                "root".into(),
                "host/web-1/group/wheel".into(),
                "carol".into(),
                MembershipOp::Add
            )]
        );
        let ev = decode_with(
            &mut d,
            "Mar 18 09:31:00 web-1 usermod[4251]: delete 'carol' from group 'wheel'",
        )
        .unwrap();
        assert_eq!(memberships(&ev)[0].3, MembershipOp::Remove);
    }

    #[test]
    fn gpasswd_and_adduser() {
        let mut d = LinuxAuthDecoder::with_reference(REF);
        let ev = decode_with(
            &mut d,
            "Mar 18 09:00:00 db-2 gpasswd[77]: user dave added by erin to group adm",
        )
        .unwrap();
        assert_eq!(
            memberships(&ev),
            [(
                "erin".into(),
                "host/db-2/group/adm".into(),
                "dave".into(),
                MembershipOp::Add
            )]
        );
        let ev = decode_with(
            &mut d,
            "Mar 18 09:01:00 db-2 gpasswd[78]: user dave removed by erin from group adm",
        )
        .unwrap();
        assert_eq!(memberships(&ev)[0].3, MembershipOp::Remove);
        let ev = decode_with(&mut d, "Mar 18 09:02:00 db-2 sudo: erin : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/gpasswd -a frank sudo").unwrap();
        assert_eq!(
            memberships(&ev),
            [(
                "erin".into(),
                "host/db-2/group/sudo".into(),
                "frank".into(),
                MembershipOp::Add
            )]
        );
        assert_eq!(
            decode_with(
                &mut d,
                "Mar 18 09:02:00 db-2 gpasswd[79]: user frank added by erin to group sudo"
            )
            .unwrap(),
            vec![]
        );
        let ev = decode_with(&mut d, "Mar 18 09:03:00 db-2 sudo: erin : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/sbin/adduser gina docker").unwrap();
        assert_eq!(memberships(&ev)[0].1, "host/db-2/group/docker");
    }

    #[test]
    fn command_lines_that_add_groups() {
        let c = |s: &str| command_memberships(s);
        let pair = |g: &str, u: &str| (g.to_owned(), u.to_owned());
        assert_eq!(c("/usr/sbin/usermod -aG sudo bob"), [pair("sudo", "bob")]);
        assert_eq!(
            c("usermod -a -G wheel,adm bob"),
            [pair("wheel", "bob"), pair("adm", "bob")]
        );
        assert_eq!(
            c("usermod --append --groups docker bob"),
            [pair("docker", "bob")]
        );
        assert_eq!(c("usermod -aGsudo bob"), [pair("sudo", "bob")]);
        assert_eq!(c("usermod -G sudo bob"), [pair("sudo", "bob")]);
        assert!(c("usermod -s /bin/zsh bob").is_empty());
        assert!(c("usermod -aG sudo").is_empty());
        assert!(c("gpasswd -d bob sudo").is_empty());
        assert!(c("adduser --system svc").is_empty());
        assert!(c("/bin/ls -la").is_empty());
    }

    #[test]
    fn auditd_records() {
        let mut d = LinuxAuthDecoder::with_reference(REF);
        let cmd = r#"type=USER_CMD msg=audit(1783414573.687:423): pid=2100 uid=0 auid=0 ses=6 subj=unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023 msg='cwd="/root" cmd="true" exe="/usr/bin/sudo" terminal=? res=success'UID="root" AUID="root""#;
        let ev = decode_with(&mut d, cmd).unwrap();
        assert!(
            matches!(&ev[0].body, Body::Access(a) if a.principal == "root" && a.resource == "host/localhost/sudo")
        );
        assert_eq!(ev[0].ts, Ts(1_783_414_573_687));
        // A hex-encoded usermod command is a membership.
        let hex: String = "usermod -aG wheel bob"
            .bytes()
            .map(|b| format!("{b:02X}"))
            .collect();
        let line = format!(
            "node=db-1 type=USER_CMD msg=audit(1783414573.687:424): pid=1 uid=1000 auid=1000 ses=6 msg='cwd=\"/\" cmd={hex} exe=\"/usr/bin/sudo\" terminal=pts/0 res=success'AUID=\"alice\""
        );
        let ev = decode_with(&mut d, &line).unwrap();
        assert_eq!(
            memberships(&ev),
            [(
                "alice".into(),
                "host/db-1/group/wheel".into(),
                "bob".into(),
                MembershipOp::Add
            )]
        );
        let login = r#"type=USER_LOGIN msg=audit(1783414613.2:450): pid=2124 uid=0 auid=0 ses=7 msg='op=login id=0 exe="/usr/libexec/openssh/sshd-session" hostname=172.23.112.1 addr=172.23.112.1 terminal=ssh res=success'UID="root" AUID="root" ID="root""#;
        let ev = decode_with(&mut d, login).unwrap();
        assert!(
            matches!(&ev[0].body, Body::Access(a) if a.principal == "root" && a.resource == "host/localhost/ssh")
        );
        let by_uid = login
            .replace(r#" ID="root""#, "")
            .replace("id=0", "id=1001");
        let ev = decode_with(&mut d, &by_uid).unwrap();
        assert!(matches!(&ev[0].body, Body::Access(a) if a.principal == "uid:1001"));
        let failed = r#"type=USER_AUTH msg=audit(1783414613.119:441): pid=2124 uid=0 auid=4294967295 ses=4294967295 msg='op=pubkey acct="root" exe="/usr/libexec/openssh/sshd-session" hostname=? addr=172.23.112.1 terminal=ssh res=failed'UID="root" AUID="unset""#;
        let ev = decode_with(&mut d, failed).unwrap();
        assert!(
            matches!(&ev[0].body, Body::Access(a) if a.principal == "root" && a.outcome == Outcome::Denied)
        );
        let add_user = r#"type=ADD_USER msg=audit(1783414573.160:408): pid=2062 uid=0 auid=0 ses=6 msg='op=add-user acct="specimenuser" exe="/usr/sbin/useradd" hostname=? addr=? terminal=? res=success'UID="root" AUID="root""#;
        assert_eq!(decode_with(&mut d, add_user).unwrap(), vec![]);
        assert!(decode_with(&mut d, "type=USER_CMD pid=1").is_err());
    }

    #[test]
    fn syslog_noise_is_skipped_and_non_syslog_is_an_error() {
        for skip in [
            "Jun 14 15:16:02 combo ftpd[23587]: connection from 24.54.76.216 (24-54-76-216.bflony.adelphia.net) at Sat Jun 14 15:16:02 2005",
            "Jul  7 08:06:15 combo  -- root[2421]: ROOT LOGIN ON tty2",
            "Jun 19 04:09:11 combo syslogd 1.4.1: restart.",
            "Jun  9 06:06:20 combo kernel: Linux version 2.6.5-1.358",
            "Feb 22 11:47:05 localhost useradd[6995]: new user: name=apache, UID=48, GID=48, home=/usr/share/httpd, shell=/sbin/nologin",
            "<38>Feb 22 11:47:05 localhost groupadd[6991]: new group: name=apache, GID=48",
            "Feb 22 11:47:05 localhost last message repeated 3 times",
            "",
        ] {
            assert_eq!(decode(skip).unwrap(), vec![], "{skip}");
        }
        for bad in [
            "hello world",
            "Foo 12 10:00:00 host x: y",
            "Mar 18 25:00:00 host sshd[1]: x",
            "Mar 18 10:00:00",
            "2021/09/30 09:23:53 [error] x",
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
        assert_eq!(
            LinuxAuthDecoder::default().decode_owned(&[0xff]),
            Err(DecodeError::InvalidUtf8)
        );
    }

    /// The header as it was read with `str` patterns before the byte-level
    /// reading: [`parse_syslog`] must agree with it on every line.
    fn parse_syslog_by_str(
        text: &str,
        reference: impl FnOnce() -> Option<(Ts, i32)>,
    ) -> Option<(Ts, &str, &str, bool, &str)> {
        let text = match text.strip_prefix('<').and_then(|r| r.split_once('>')) {
            Some((pri, after))
                if !pri.is_empty() && pri.len() <= 3 && pri.bytes().all(|b| b.is_ascii_digit()) =>
            {
                after
            }
            _ => text,
        };
        let (ts, rest) = if text.as_bytes().first()?.is_ascii_digit() {
            let (stamp, rest) = text.split_once(' ')?;
            (parse_datetime(stamp)?, rest)
        } else {
            let b = text.as_bytes();
            let month = month_from_abbr(b.get(..3)?)?;
            let rest = text.get(3..)?.trim_start();
            let (day, rest) = rest.split_once(' ')?;
            let day = digits(day.as_bytes())?;
            let rest = rest.trim_start();
            let (clock, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            let c = clock.as_bytes();
            if c.len() != 8 || c[2] != b':' || c[5] != b':' {
                return None;
            }
            let (h, m, s) = (digits(&c[0..2])?, digits(&c[3..5])?, digits(&c[6..8])?);
            let (reference, ref_year) = reference()?;
            let ts = (0..8).find_map(|back| {
                let ms = civil_ms(ref_year - back, month, day, h, m, s)?;
                (ms <= reference.0 + DAY_MS).then_some(ms)
            })?;
            (Ts(ts), rest)
        };
        let rest = rest.trim_start();
        let (host, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if host.is_empty() {
            return None;
        }
        let rest = rest.trim_start();
        let (program, old_pam, message) = match rest.split_once(": ") {
            Some((tag, msg)) if !tag.contains(' ') => {
                let name = tag.split('[').next().unwrap_or(tag);
                let (name, old_pam) = match name.strip_suffix("(pam_unix)") {
                    Some(n) => (n, true),
                    None => (name, false),
                };
                (name, old_pam, msg.trim())
            }
            _ => ("", false, rest),
        };
        Some((ts, host, program, old_pam, message))
    }

    /// Text made of what syslog headers are made of, ASCII and Unicode
    /// whitespace included.
    const HEADERISH: &str = "[ \t\u{b}\u{c}\r\u{a0}\u{3000}\u{85}a-zA-Z0-9:<>\\[\\]()._é-]{0,12}";

    /// A line shaped like a syslog line, with its parts varied.
    fn syslog_like() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let stamp = prop_oneof![
            (
                prop::sample::select(vec!["Jan", "Feb", "Mar", "Dec", "Foo", "mar"]),
                prop::sample::select(vec![" ", "  ", " \t", "\u{a0}", ""]),
                // Days around the reference's (2026-03-18) and Feb 29 often.
                prop_oneof![Just(29), 17..21u32, 0..33u32],
                0..25u32,
                0..61u32,
                prop::sample::select(vec![" ", "  ", "", "\u{3000}"]),
            )
                .prop_map(|(m, sp, d, h, s, sp2)| format!("{m}{sp}{d}{sp2}{h:02}:{s:02}:{s:02}")),
            Just("2023-11-14T00:20:42.738197+01:00".to_owned()),
            Just("2023-11-14T00:20:42".to_owned()),
            HEADERISH.prop_map(|s| s),
        ];
        let tag = prop_oneof![
            Just("sshd[12]:".to_owned()),
            Just("su(pam_unix)[3]:".to_owned()),
            Just("sudo:".to_owned()),
            Just("kernel".to_owned()),
            Just(":".to_owned()),
            HEADERISH.prop_map(|s| s),
        ];
        (
            prop::sample::select(vec!["", "<38>", "<1234>", "<>", "<x>"]),
            stamp,
            prop::sample::select(vec![" ", "  ", "\t", " \u{a0}", ""]),
            HEADERISH,
            prop::sample::select(vec![" ", "  ", "\u{2003}", ""]),
            tag,
            prop::sample::select(vec![" ", "  ", "", ": "]),
            HEADERISH,
        )
            .prop_map(|(pri, stamp, sp1, host, sp2, tag, sp3, msg)| {
                format!("{pri}{stamp}{sp1}{host}{sp2}{tag}{sp3}{msg}")
            })
    }

    /// Classic timestamps around the reference's day and Feb 29, repeating.
    fn classics() -> impl proptest::strategy::Strategy<Value = Vec<Classic>> {
        use proptest::prelude::*;
        let one = (
            prop::sample::select(vec![1, 2, 3, 12, 0, 13]),
            prop_oneof![Just(29), Just(18), 17..21u32, 0..33u32],
            prop_oneof![Just(12), 0..25u32],
            0..61u32,
            0..61u32,
        )
            .prop_map(|(month, day, h, m, s)| Classic {
                month,
                day,
                h,
                m,
                s,
            });
        prop::collection::vec(one, 1..10)
    }

    proptest::proptest! {
        #[test]
        fn the_coarse_clock_gives_the_precise_clocks_answer(
            stamps in classics(),
            // Near a new year, near where a stamp turns a day ahead, or anywhere.
            near in proptest::prop_oneof![
                proptest::strategy::Just(civil_ms(2026, 1, 1, 0, 0, 0).unwrap()),
                proptest::strategy::Just(civil_ms(2026, 3, 19, 12, 0, 0).unwrap() - DAY_MS),
                proptest::strategy::Just(civil_ms(2024, 2, 29, 0, 0, 0).unwrap() - DAY_MS),
                proptest::strategy::Just(REF.0),
            ],
            offset in -3000..3000i64,
            lag in 0..1000i64,
            edge in -3000..3000i64,
        ) {
            use chrono::Timelike;
            let coarse = Ts(near + offset);
            let precise = Ts(coarse.0 + lag);
            let mut d = LinuxAuthDecoder::default();
            let mut by_precise = LinuxAuthDecoder::default();
            // A stamp within seconds of a day after the reference time too.
            let t = Utc.timestamp_millis_opt(near + DAY_MS + edge).unwrap();
            let at_edge = Classic {
                month: t.month(),
                day: t.day(),
                h: t.hour(),
                m: t.minute(),
                s: t.second(),
            };
            for c in stamps.into_iter().chain([at_edge]) {
                proptest::prop_assert_eq!(
                    d.classic_time_now(c, coarse, || precise),
                    by_precise.classic_time_at(precise, c),
                    "{:?} at {} (coarse {})", c, precise, coarse
                );
            }
        }

        #[test]
        fn classic_times_keep_the_year_rule(stamps in classics()) {
            let mut d = LinuxAuthDecoder::with_reference(REF);
            for c in stamps {
                // The rule as it was written before the day was kept.
                let rule = (0..8).find_map(|back| {
                    let ms = civil_ms(2026 - back, c.month, c.day, c.h, c.m, c.s)?;
                    (ms <= REF.0 + DAY_MS).then_some(Ts(ms))
                });
                proptest::prop_assert_eq!(d.classic_time(c), rule, "{:?}", c);
                proptest::prop_assert_eq!(d.classic_time_at(REF, c), rule, "{:?}", c);
            }
        }

        #[test]
        fn headers_read_by_bytes_as_by_str_patterns(
            lines in proptest::collection::vec(
                proptest::prop_oneof![syslog_like(), HEADERISH],
                1..4,
            ),
        ) {
            // One decoder for the lines: the day each falls on is kept.
            let mut d = LinuxAuthDecoder::with_reference(REF);
            for line in &lines {
                let new = parse_syslog(line, |c| d.classic_time(c))
                    .map(|l| (l.ts, l.host, l.program, l.old_pam, l.message));
                let old = parse_syslog_by_str(line, || Some((REF, 2026)));
                proptest::prop_assert_eq!(new, old, "{}", line);
            }
        }

        #[test]
        fn ascii_trimming_trims_as_str_does(text in HEADERISH) {
            proptest::prop_assert_eq!(trim_start(&text), text.trim_start());
            proptest::prop_assert_eq!(trim_end(&text), text.trim_end());
        }
    }

    /// `kv` as it was with `str::find`: the `Needle` version must agree.
    fn kv_by_str<'a>(text: &'a str, key: &str) -> Option<&'a str> {
        let mut search = text;
        while let Some(i) = search.find(key) {
            let before_ok =
                i == 0 || matches!(search.as_bytes()[i - 1], b' ' | b';' | b'\'' | b'\t');
            let after = &search[i + key.len()..];
            if before_ok {
                if let Some(v) = after.strip_prefix('=') {
                    let v = if let Some(q) = v.strip_prefix('"') {
                        q.split('"').next().unwrap_or(q)
                    } else {
                        v.split([' ', ';', '\'']).next().unwrap_or(v)
                    };
                    return (!v.is_empty()).then_some(v);
                }
            }
            search = after;
        }
        None
    }

    /// Text of auditd-like fields, keys overlapping and repeated.
    fn fields_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let part = prop_oneof![
            prop::sample::select(vec![
                "exe",
                "ex",
                "e",
                "ruser",
                "ruse",
                "r",
                "user",
                "id",
                "ID",
                "auid",
                "AUID",
                "acct",
                "=",
                "=\"",
                "\"",
                " ",
                ";",
                "'",
                "\t",
                "x",
                "é",
                "/usr/bin/sudo",
            ])
            .prop_map(str::to_owned),
            "[a-z=\" ;']{0,4}",
        ];
        prop::collection::vec(part, 0..16).prop_map(|parts| parts.concat())
    }

    proptest::proptest! {
        #[test]
        fn fields_are_found_as_str_find_found_them(text in fields_text()) {
            for (key, name) in [
                (&EXE, "exe"),
                (&RUSER, "ruser"),
                (&USER, "user"),
                (&ID, "id"),
                (&ID_NAME, "ID"),
                (&AUID, "auid"),
                (&AUID_NAME, "AUID"),
                (&ACCT, "acct"),
            ] {
                proptest::prop_assert_eq!(kv(&text, key), kv_by_str(&text, name), "{}", name);
            }
        }
    }
}
