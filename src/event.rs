//! Event schema v1: the one normalised event every decoder produces.
//!
//! Sits between `decode` (which builds these from raw lines) and `detect`
//! (which observes them). The JSON shape is a contract (DESIGN.md, "Event schema
//! v1"); [`Event::to_native_json`] writes it back out, which the demo and tests use
//! to produce native log lines.

use std::fmt;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// Event time: milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ts(pub i64);

impl Ts {
    /// Parses an RFC 3339 timestamp (`2026-03-18T09:02:11Z`, offsets allowed).
    ///
    /// The shape nearly every log writes (`T`, optional fraction, `Z` or
    /// `±HH:MM`) is read directly; anything else goes to chrono's full parser.
    /// Both give the same answer (tested), the first at a fraction of the cost.
    pub fn parse_rfc3339(s: &str) -> Option<Ts> {
        match parse_common_rfc3339(s.as_bytes()) {
            Some(ts) => Some(ts),
            None => DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| Ts(t.timestamp_millis())),
        }
    }

    /// The wall clock now (before 1970 too, as chrono's `Utc::now()` reads it).
    pub fn now() -> Ts {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(since) => Ts(i64::try_from(since.as_millis()).unwrap_or(i64::MAX)),
            // Milliseconds rounded down, as for any time before the epoch.
            Err(before) => {
                let ms = before.duration().as_nanos().div_ceil(1_000_000);
                Ts(-i64::try_from(ms).unwrap_or(i64::MAX))
            }
        }
    }

    /// Whole seconds since the epoch, as a float (for Prometheus gauges).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// Adds a (possibly negative) number of milliseconds, saturating.
    pub fn add_millis(self, ms: i64) -> Ts {
        Ts(self.0.saturating_add(ms))
    }

    /// The UTC day it falls on, counted from the epoch (negative before it).
    pub fn day(self) -> i64 {
        self.0.div_euclid(DAY_MS)
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` with every field in range,
/// else `None` (which may still be valid RFC 3339: lower-case separators, a
/// leap second; the caller falls back to the full parser).
fn parse_common_rfc3339(b: &[u8]) -> Option<Ts> {
    fn num(b: &[u8]) -> Option<i64> {
        b.iter().try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    }
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    let (hour, minute, second) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    let mut rest = &b[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix(b".") {
        let digits = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        for i in 0..3 {
            millis = millis * 10
                + frac
                    .get(i)
                    .filter(|_| i < digits)
                    .map_or(0, |c| i64::from(c - b'0'));
        }
        rest = &frac[digits..];
    }
    let offset_minutes = match rest {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (num(&[*h1, *h2])?, num(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            if *sign == b'-' {
                -(h * 60 + m)
            } else {
                h * 60 + m
            }
        }
        _ => return None,
    };
    let ms = civil_ms(year, month, day, hour, minute, second)?;
    Some(Ts(ms - offset_minutes * 60_000 + millis))
}

/// Milliseconds since the epoch of a UTC civil time in the proleptic
/// Gregorian calendar, if it exists (no leap second); counted directly
/// (Hinnant's days-from-civil), which gives chrono's answer (tested in
/// `decode::time`).
pub(crate) fn civil_ms(
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
) -> Option<i64> {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > month_days || !(0..=23).contains(&hour) {
        return None;
    }
    if !(0..=59).contains(&minute) || !(0..=59).contains(&second) {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hour * 3600 + minute * 60 + second) * 1000)
}

impl fmt::Display for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Utc.timestamp_millis_opt(self.0).single() {
            Some(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            None => write!(f, "@{}ms", self.0),
        }
    }
}

impl Serialize for Ts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ts::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 timestamp: {s:?}")))
    }
}

/// One normalised event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// When it happened (event time, not read time).
    pub ts: Ts,
    /// Optional id used for de-duplication.
    pub id: Option<String>,
    /// What happened.
    pub body: Body,
}

/// The event types of schema v1.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A principal used a resource.
    Access(Access),
    /// A privilege was granted.
    Grant(Grant),
    /// A grant was taken back.
    Revoke(Revoke),
    /// Group membership changed.
    Membership(Membership),
    /// An AI agent produced advice.
    Advice(Advice),
    /// A principal approved advice (only a human's approval counts).
    AdviceVerified(AdviceVerified),
    /// A principal opened advice.
    AdviceViewed(AdviceViewed),
}

/// The `type` of an event; also the label value of `reachguard_events_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// `access`
    Access,
    /// `grant`
    Grant,
    /// `revoke`
    Revoke,
    /// `membership`
    Membership,
    /// `advice`
    Advice,
    /// `advice_verified`
    AdviceVerified,
    /// `advice_viewed`
    AdviceViewed,
}

impl EventType {
    /// Every type, in schema order.
    pub const ALL: [EventType; 7] = [
        EventType::Access,
        EventType::Grant,
        EventType::Revoke,
        EventType::Membership,
        EventType::Advice,
        EventType::AdviceVerified,
        EventType::AdviceViewed,
    ];

    /// The wire name (`advice_verified`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Access => "access",
            EventType::Grant => "grant",
            EventType::Revoke => "revoke",
            EventType::Membership => "membership",
            EventType::Advice => "advice",
            EventType::AdviceVerified => "advice_verified",
            EventType::AdviceViewed => "advice_viewed",
        }
    }

    /// Parses a wire name.
    pub fn from_name(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl Body {
    /// The event's type.
    pub fn event_type(&self) -> EventType {
        match self {
            Body::Access(_) => EventType::Access,
            Body::Grant(_) => EventType::Grant,
            Body::Revoke(_) => EventType::Revoke,
            Body::Membership(_) => EventType::Membership,
            Body::Advice(_) => EventType::Advice,
            Body::AdviceVerified(_) => EventType::AdviceVerified,
            Body::AdviceViewed(_) => EventType::AdviceViewed,
        }
    }
}

/// Whether an access succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The default.
    #[default]
    Success,
    /// The attempt was refused.
    Denied,
}

/// Who a grant is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GranteeType {
    /// A single principal (the default).
    #[default]
    User,
    /// A group: every member gains the grant.
    Group,
}

/// What kind of principal acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorType {
    /// A person.
    Human,
    /// An AI agent.
    Agent,
    /// A non-agent automation (CI, HR system, ...).
    Service,
}

/// `membership.op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipOp {
    /// The member joins the group.
    Add,
    /// The member leaves the group.
    Remove,
}

/// `access` fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Access {
    /// Who.
    pub principal: String,
    /// What.
    pub resource: String,
    /// Verb, if the source has one.
    pub action: Option<String>,
    /// Success (default) or denied.
    pub outcome: Outcome,
}

impl Access {
    /// This access at `ts` with the event's `id`, read in place.
    pub fn at<'a>(&'a self, ts: Ts, id: Option<&'a str>) -> AccessRef<'a> {
        AccessRef {
            ts,
            principal: &self.principal,
            resource: &self.resource,
            outcome: self.outcome,
            action: self.action.as_deref(),
            id,
            key: None,
        }
    }
}

/// `grant` fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// Stable id of the grant; revocations name it.
    pub grant_id: String,
    /// Who made the grant.
    pub actor: String,
    /// Who received it.
    pub grantee: String,
    /// User (default) or group.
    pub grantee_type: GranteeType,
    /// What it opens.
    pub resource: String,
    /// Role or permission level, if any.
    pub role: Option<String>,
    /// Free text (ticket, URL, chat link); advice ids found in it link the grant.
    pub reference: Option<String>,
    /// Declared kind of actor; derived from `[agents]` patterns when absent.
    pub actor_type: Option<ActorType>,
    /// What undoing it takes, when the decoder's format says (never for native).
    pub target: Option<Box<crate::undo::Target>>,
}

/// `revoke` fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Revoke {
    /// The grant taken back.
    pub grant_id: String,
    /// Who took it back.
    pub actor: String,
    /// Free text.
    pub reference: Option<String>,
}

/// `membership` fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    /// Who changed the membership.
    pub actor: String,
    /// The group.
    pub group: String,
    /// The principal joining or leaving.
    pub member: String,
    /// Add or remove.
    pub op: MembershipOp,
    /// Id of the membership grant, if the source has one.
    pub grant_id: Option<String>,
    /// Free text; advice ids found in it link the change.
    pub reference: Option<String>,
    /// Declared kind of actor.
    pub actor_type: Option<ActorType>,
    /// What undoing it takes, when the decoder's format says (never for native).
    pub target: Option<Box<crate::undo::Target>>,
}

/// One recommendation inside advice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The resource (or group) the advice says to open.
    pub resource: String,
    /// The role it suggests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Who it suggests granting to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grantee: Option<String>,
}

/// `advice` fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Advice {
    /// Id of the advice.
    pub advice_id: String,
    /// The agent that produced it.
    pub agent: String,
    /// Who asked the agent.
    pub requested_by: Option<String>,
    /// Where it was posted (forum thread, chat channel).
    pub channel: Option<String>,
    /// Whether others can see it.
    pub published: bool,
    /// What it tells people to grant.
    pub recommends: Vec<Recommendation>,
    /// Short text.
    pub summary: Option<String>,
}

/// `advice_verified` fields.
#[derive(Debug, Clone, PartialEq)]
pub struct AdviceVerified {
    /// The advice.
    pub advice_id: String,
    /// Who approved it.
    pub verifier: String,
}

/// `advice_viewed` fields.
#[derive(Debug, Clone, PartialEq)]
pub struct AdviceViewed {
    /// The advice.
    pub advice_id: String,
    /// Who opened it.
    pub principal: String,
}

/// The flat wire form, used to write native lines.
#[derive(Serialize)]
struct NativeOut<'a> {
    ts: Ts,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    principal: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    grant_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor_type: Option<ActorType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    grantee: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    grantee_type: Option<GranteeType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    member: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    op: Option<MembershipOp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    advice_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    requested_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    published: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recommends: Option<&'a [Recommendation]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verifier: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a crate::undo::Target>,
}

impl Event {
    /// A successful access by `principal` to `resource` at `ts`, with no id
    /// or action.
    pub fn access(ts: Ts, principal: &str, resource: &str) -> Event {
        AccessRef {
            ts,
            principal,
            resource,
            outcome: Outcome::Success,
            action: None,
            id: None,
            key: None,
        }
        .to_event()
    }

    /// Writes the event as one native (schema v1) JSON line, without the newline.
    pub fn to_native_json(&self) -> String {
        let mut o = NativeOut {
            ts: self.ts,
            kind: self.body.event_type().as_str(),
            id: self.id.as_deref(),
            principal: None,
            resource: None,
            action: None,
            outcome: None,
            grant_id: None,
            actor: None,
            actor_type: None,
            grantee: None,
            grantee_type: None,
            role: None,
            reference: None,
            group: None,
            member: None,
            op: None,
            advice_id: None,
            agent: None,
            requested_by: None,
            channel: None,
            published: None,
            recommends: None,
            summary: None,
            verifier: None,
            target: None,
        };
        match &self.body {
            Body::Access(a) => {
                o.principal = Some(&a.principal);
                o.resource = Some(&a.resource);
                o.action = a.action.as_deref();
                o.outcome = (a.outcome == Outcome::Denied).then_some(Outcome::Denied);
            }
            Body::Grant(g) => {
                o.grant_id = Some(&g.grant_id);
                o.actor = Some(&g.actor);
                o.grantee = Some(&g.grantee);
                o.grantee_type =
                    (g.grantee_type == GranteeType::Group).then_some(GranteeType::Group);
                o.resource = Some(&g.resource);
                o.role = g.role.as_deref();
                o.reference = g.reference.as_deref();
                o.actor_type = g.actor_type;
                o.target = g.target.as_deref();
            }
            Body::Revoke(r) => {
                o.grant_id = Some(&r.grant_id);
                o.actor = Some(&r.actor);
                o.reference = r.reference.as_deref();
            }
            Body::Membership(m) => {
                o.actor = Some(&m.actor);
                o.group = Some(&m.group);
                o.member = Some(&m.member);
                o.op = Some(m.op);
                o.grant_id = m.grant_id.as_deref();
                o.reference = m.reference.as_deref();
                o.actor_type = m.actor_type;
                o.target = m.target.as_deref();
            }
            Body::Advice(a) => {
                o.advice_id = Some(&a.advice_id);
                o.agent = Some(&a.agent);
                o.requested_by = a.requested_by.as_deref();
                o.channel = a.channel.as_deref();
                o.published = Some(a.published);
                o.recommends = (!a.recommends.is_empty()).then_some(&a.recommends[..]);
                o.summary = a.summary.as_deref();
            }
            Body::AdviceVerified(v) => {
                o.advice_id = Some(&v.advice_id);
                o.verifier = Some(&v.verifier);
            }
            Body::AdviceViewed(v) => {
                o.advice_id = Some(&v.advice_id);
                o.principal = Some(&v.principal);
            }
        }
        serde_json::to_string(&o).expect("serialising plain strings cannot fail")
    }
}

/// An access event read in place, its names borrowed from where it is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessRef<'a> {
    /// When it happened.
    pub ts: Ts,
    /// Who.
    pub principal: &'a str,
    /// What.
    pub resource: &'a str,
    /// Success or denied.
    pub outcome: Outcome,
    /// The verb, if the source has one.
    pub action: Option<&'a str>,
    /// The event's id, if it has one.
    pub id: Option<&'a str>,
    /// The ids a decoding thread gave its names, if it did.
    pub key: Option<Key>,
}

/// The ids a [`Keyer`](crate::detect::reach::Keyer) on a decoding thread
/// gave an access event's names, so that the model can find its own ids for
/// them without hashing the names again (and without the cache misses of a
/// name table as large as the organisation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// Which of the keyer's tables the ids are from (it starts a new one
    /// when one is full).
    pub table: u32,
    /// The principal's id in that table.
    pub principal: u32,
    /// The resource's id in that table.
    pub resource: u32,
}

impl AccessRef<'_> {
    /// The owned event.
    pub fn to_event(&self) -> Event {
        Event {
            ts: self.ts,
            id: self.id.map(str::to_owned),
            body: Body::Access(Access {
                principal: self.principal.to_owned(),
                resource: self.resource.to_owned(),
                action: self.action.map(str::to_owned),
                outcome: self.outcome,
            }),
        }
    }
}

/// An event read from an [`Events`] run: an access in place, or any other
/// event.
#[derive(Debug, Clone, Copy)]
pub enum EventRef<'a> {
    /// An access event.
    Access(AccessRef<'a>),
    /// Any other event.
    Other(&'a Event),
}

impl EventRef<'_> {
    /// When it happened.
    pub fn ts(&self) -> Ts {
        match self {
            EventRef::Access(a) => a.ts,
            EventRef::Other(e) => e.ts,
        }
    }

    /// Its type.
    pub fn event_type(&self) -> EventType {
        match self {
            EventRef::Access(_) => EventType::Access,
            EventRef::Other(e) => e.body.event_type(),
        }
    }

    /// An owned copy.
    pub fn to_event(&self) -> Event {
        match self {
            EventRef::Access(a) => a.to_event(),
            EventRef::Other(e) => (*e).clone(),
        }
    }
}

impl<'a> From<&'a Event> for EventRef<'a> {
    /// An access reads as [`EventRef::Access`], as it would from an
    /// [`Events`] run.
    fn from(e: &'a Event) -> EventRef<'a> {
        match &e.body {
            Body::Access(a) => EventRef::Access(a.at(e.ts, e.id.as_deref())),
            _ => EventRef::Other(e),
        }
    }
}

/// A run of decoded events in order, kept compactly: the one hand-off between
/// a decoder and whatever consumes its events (replay, the daemon, `train`, the
/// cluster). Access events, nearly all of a busy log, are kept as offsets into
/// one shared text buffer, so that decoding one allocates nothing and handing
/// a run to another thread moves a few buffers, not every name; any other
/// event as itself.
#[derive(Debug, Default)]
pub struct Events {
    text: String,
    items: Vec<Item>,
    /// Keys of the accesses by index, once [`Events::key`] gave them.
    keys: Vec<Option<Key>>,
}

/// Where an access's names are in the run's text: `text[start..principal]`
/// is the principal, then the resource, the action and the id, each ending
/// where the next begins. A run's text stays far below 4 GiB: runs are
/// blocks of lines of bounded length.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    principal: u32,
    resource: u32,
    action: u32,
    id: u32,
}

#[derive(Debug)]
enum Item {
    Access {
        ts: Ts,
        at: Span,
        outcome: Outcome,
        has_action: bool,
        has_id: bool,
    },
    Other(Box<Event>),
    /// Moved out by [`Events::move_to`].
    Moved,
}

impl Events {
    /// Room for `events` events and `text` bytes of their names.
    pub fn with_capacity(events: usize, text: usize) -> Events {
        Events {
            text: String::with_capacity(text),
            items: Vec::with_capacity(events),
            keys: Vec::new(),
        }
    }

    /// How many events.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Forgets every event, keeping the buffers for reuse.
    pub fn clear(&mut self) {
        self.text.clear();
        self.items.clear();
        self.keys.clear();
    }

    /// Keeps the first `len` events and forgets the rest (a decoder undoing
    /// what it appended for a line it then rejects).
    pub fn truncate(&mut self, len: usize) {
        if len >= self.items.len() {
            return;
        }
        let text = self.items[len..].iter().find_map(|item| match item {
            Item::Access { at, .. } => Some(at.start as usize),
            _ => None,
        });
        if let Some(text) = text {
            self.text.truncate(text);
        }
        self.items.truncate(len);
        self.keys.truncate(len);
    }

    /// Gives every access the key `f` makes of its principal and resource
    /// (events appended afterwards have none).
    pub fn key(&mut self, mut f: impl FnMut(&str, &str) -> Key) {
        self.keys.clear();
        self.keys.extend(self.items.iter().map(|item| match item {
            Item::Access { at, .. } => Some(f(
                &self.text[at.start as usize..at.principal as usize],
                &self.text[at.principal as usize..at.resource as usize],
            )),
            _ => None,
        }));
    }

    /// The text's length as an offset.
    fn offset(&self) -> u32 {
        u32::try_from(self.text.len()).expect("a run's text stays below 4 GiB")
    }

    /// Appends an access event, copying its names.
    pub fn push_access(&mut self, a: AccessRef<'_>) {
        let start = self.offset();
        self.text.push_str(a.principal);
        let principal = self.offset();
        self.text.push_str(a.resource);
        let resource = self.offset();
        self.text.push_str(a.action.unwrap_or(""));
        let action = self.offset();
        self.text.push_str(a.id.unwrap_or(""));
        let id = self.offset();
        self.items.push(Item::Access {
            ts: a.ts,
            at: Span {
                start,
                principal,
                resource,
                action,
                id,
            },
            outcome: a.outcome,
            has_action: a.action.is_some(),
            has_id: a.id.is_some(),
        });
    }

    /// Appends any event (an access is kept compactly).
    pub fn push(&mut self, e: Event) {
        match EventRef::from(&e) {
            EventRef::Access(a) => self.push_access(a),
            EventRef::Other(_) => self.items.push(Item::Other(Box::new(e))),
        }
    }

    /// The `i`-th event.
    ///
    /// # Panics
    ///
    /// If `i` is out of range or the event was moved out.
    pub fn get(&self, i: usize) -> EventRef<'_> {
        match &self.items[i] {
            Item::Access {
                ts,
                at,
                outcome,
                has_action,
                has_id,
            } => {
                let text = |from: u32, to: u32| &self.text[from as usize..to as usize];
                EventRef::Access(AccessRef {
                    ts: *ts,
                    principal: text(at.start, at.principal),
                    resource: text(at.principal, at.resource),
                    outcome: *outcome,
                    action: has_action.then(|| text(at.resource, at.action)),
                    id: has_id.then(|| text(at.action, at.id)),
                    key: self.keys.get(i).copied().flatten(),
                })
            }
            Item::Other(e) => EventRef::Other(e),
            Item::Moved => panic!("event {i} was moved out"),
        }
    }

    /// Every event, in order.
    pub fn iter(&self) -> impl Iterator<Item = EventRef<'_>> {
        (0..self.items.len()).map(|i| self.get(i))
    }

    /// Owned copies of every event, in order.
    pub fn to_vec(&self) -> Vec<Event> {
        self.iter().map(|e| e.to_event()).collect()
    }

    /// Moves the `i`-th event to the end of `out` (an access is copied; any
    /// other event is taken and reads as moved here afterwards).
    pub fn move_to(&mut self, i: usize, out: &mut Events) {
        match std::mem::replace(&mut self.items[i], Item::Moved) {
            Item::Other(e) => out.items.push(Item::Other(e)),
            Item::Moved => panic!("event {i} was moved out"),
            access => {
                self.items[i] = access;
                if let EventRef::Access(a) = self.get(i) {
                    out.push_access(a);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_go_to_accesses_until_the_events_are_cleared() {
        let mut events = Events::default();
        events.push(Event::access(Ts(1), "alice", "db/a"));
        events.push(Event {
            ts: Ts(2),
            id: None,
            body: Body::Revoke(Revoke {
                grant_id: "g".into(),
                actor: "bob".into(),
                reference: None,
            }),
        });
        events.push(Event::access(Ts(3), "carol", "db/c"));
        let mut seen = Vec::new();
        events.key(|p, r| {
            seen.push(format!("{p} {r}"));
            Key {
                table: 7,
                principal: seen.len() as u32,
                resource: 0,
            }
        });
        assert_eq!(seen, ["alice db/a", "carol db/c"]);
        let keys: Vec<Option<u32>> = events
            .iter()
            .map(|e| match e {
                EventRef::Access(a) => a.key.map(|k| k.principal),
                EventRef::Other(_) => None,
            })
            .collect();
        assert_eq!(keys, [Some(1), None, Some(2)]);
        events.push(Event::access(Ts(4), "dave", "db/d"));
        assert!(matches!(events.get(3), EventRef::Access(a) if a.key.is_none()));
        events.clear();
        events.push(Event::access(Ts(5), "erin", "db/e"));
        assert!(matches!(events.get(0), EventRef::Access(a) if a.key.is_none()));
    }

    #[test]
    fn truncating_a_run_forgets_the_events_and_their_text() {
        let mut run = Events::default();
        run.push(Event::access(Ts(1), "alice", "db/a"));
        let mut with_id = Event::access(Ts(2), "bob", "db/b");
        with_id.id = Some("e-2".into());
        run.push(with_id);
        let before = run.text.len();
        run.push(Event::access(Ts(3), "carol", "db/c"));
        run.push(Event {
            ts: Ts(4),
            id: None,
            body: Body::Revoke(Revoke {
                grant_id: "g".into(),
                actor: "dave".into(),
                reference: None,
            }),
        });
        run.truncate(2);
        assert_eq!(run.len(), 2);
        assert_eq!(run.text.len(), before, "the cut accesses' names are gone");
        run.push(Event::access(Ts(5), "erin", "db/e"));
        let names: Vec<String> = run
            .iter()
            .map(|e| match e {
                EventRef::Access(a) => format!("{} {} {:?}", a.principal, a.resource, a.id),
                EventRef::Other(_) => "other".into(),
            })
            .collect();
        assert_eq!(
            names,
            [
                "alice db/a None",
                "bob db/b Some(\"e-2\")",
                "erin db/e None"
            ]
        );
        run.truncate(5);
        assert_eq!(run.len(), 3);
    }

    #[test]
    fn timestamps_parse_with_offsets_and_print_in_utc() {
        let t = Ts::parse_rfc3339("2026-03-18T10:02:11+01:00").unwrap();
        assert_eq!(t.to_string(), "2026-03-18T09:02:11Z");
        let ms = Ts::parse_rfc3339("2026-03-18T09:02:11.250Z").unwrap();
        assert_eq!(ms.0 - t.0, 250);
        assert_eq!(Ts::parse_rfc3339("yesterday"), None);
    }

    fn chrono_millis(s: &str) -> Option<Ts> {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| Ts(t.timestamp_millis()))
    }

    #[test]
    fn a_timestamp_falls_on_its_utc_day_before_the_epoch_too() {
        let day = |s| Ts::parse_rfc3339(s).unwrap().day();
        assert_eq!(day("1970-01-01T00:00:00Z"), 0);
        assert_eq!(day("1970-01-01T23:59:59.999Z"), 0);
        assert_eq!(day("1969-12-31T23:59:59.999Z"), -1);
        assert_eq!(
            day("2026-03-18T00:30:00+01:00"),
            day("2026-03-17T12:00:00Z")
        );
        assert_eq!(
            day("2026-03-18T00:00:00Z") - day("1970-01-01T00:00:00Z"),
            20_530
        );
    }

    #[test]
    fn the_direct_timestamp_reader_agrees_with_chrono_on_edge_cases() {
        for s in [
            "2026-03-18T09:02:11Z",
            "2024-02-29T23:59:59.999999999Z",
            "2023-02-29T00:00:00Z",
            "2026-12-31T23:59:59-00:00",
            "1969-12-31T23:59:59.5Z",
            "0001-01-01T00:00:00+23:59",
            "9999-12-31T23:59:59.1234567891234Z",
            "2026-03-18T09:02:60Z",
            "2026-03-18t09:02:11z",
            "2026-03-18 09:02:11Z",
            "2026-03-18T09:02:11.Z",
            "2026-03-18T09:02:11+0100",
            "2026-03-18T09:02:11+24:00",
            "2026-13-01T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-03-18T24:00:00Z",
            "2026-03-18T09:02:11",
            "+2026-03-18T09:02:11Z",
            "2026-03-18T09:02:11Z ",
            "2026-03-18T09:02:1xZ",
        ] {
            assert_eq!(Ts::parse_rfc3339(s), chrono_millis(s), "{s}");
        }
        // The usual shapes take the direct path.
        for s in [
            "2026-03-18T09:02:11Z",
            "2024-02-29T23:59:59.999999999Z",
            "1969-12-31T23:59:59.5Z",
            "2026-12-31T23:59:59-00:00",
            "0001-01-01T00:00:00+23:59",
        ] {
            assert_eq!(parse_common_rfc3339(s.as_bytes()), chrono_millis(s), "{s}");
        }
    }

    proptest::proptest! {
        #[test]
        fn the_direct_timestamp_reader_agrees_with_chrono(
            y in 0u32..10_000, mo in 0u32..14, d in 0u32..33, h in 0u32..25,
            mi in 0u32..61, se in 0u32..62, frac in proptest::option::of("[0-9]{0,12}"),
            zone in proptest::sample::select(vec!["Z", "z", "+01:00", "-05:30", "+23:59", "-00:00", "+24:00", "+01:60", ""]),
            sep in proptest::sample::select(vec!["T", "t", " "]),
        ) {
            let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
            let s = format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{se:02}{frac}{zone}");
            let fast = parse_common_rfc3339(s.as_bytes());
            if fast.is_some() {
                proptest::prop_assert_eq!(fast, chrono_millis(&s), "{}", s);
            }
            proptest::prop_assert_eq!(Ts::parse_rfc3339(&s), chrono_millis(&s), "{}", s);
        }
    }

    #[test]
    fn a_run_of_events_keeps_plain_accesses_in_place_and_gives_back_the_same_events() {
        let access = |who: &str, what: &str, action: Option<&str>, id: Option<&str>| Event {
            ts: Ts(7),
            id: id.map(str::to_owned),
            body: Body::Access(Access {
                principal: who.into(),
                resource: what.into(),
                action: action.map(str::to_owned),
                outcome: Outcome::Denied,
            }),
        };
        let revoke = Event {
            ts: Ts(9),
            id: None,
            body: Body::Revoke(Revoke {
                grant_id: "g1".into(),
                actor: "alice".into(),
                reference: None,
            }),
        };
        let all = vec![
            access("carol", "db/prod", None, None),
            revoke,
            access("dave", "wiki", Some("read"), None),
            access("erin", "ci", None, Some("e-1")),
            access("", "", None, None),
        ];
        let mut run = Events::default();
        for e in all.clone() {
            run.push(e);
        }
        assert_eq!(run.len(), 5);
        let back: Vec<Event> = run.iter().map(|e| e.to_event()).collect();
        assert_eq!(back, all);
        // Every access reads in place, with its id and action.
        let kinds: Vec<bool> = run
            .iter()
            .map(|e| matches!(e, EventRef::Access(_)))
            .collect();
        assert_eq!(kinds, [true, false, true, true, true]);

        let mut out = Events::default();
        for i in [1, 0, 2] {
            run.move_to(i, &mut out);
        }
        let moved: Vec<Event> = out.iter().map(|e| e.to_event()).collect();
        assert_eq!(moved, [all[1].clone(), all[0].clone(), all[2].clone()]);
        // A copied access still reads in the source; a taken event does not.
        assert_eq!(run.get(0).to_event(), all[0]);
        let taken = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run.get(1).ts()));
        assert!(taken.is_err());
        run.clear();
        assert!(run.is_empty());
    }

    #[test]
    fn event_type_names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::from_name(t.as_str()), Some(t));
        }
        assert_eq!(EventType::from_name("login"), None);
    }
}
