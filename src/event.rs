//! Event schema v1: the one normalised event every decoder produces.
//!
//! Sits between `decode` (which builds these from raw lines) and `detect`
//! (which observes them). The JSON shape is a contract (DESIGN.md, "Event schema
//! v1"); [`Event::to_native_json`] writes it back out, which the demo and tests use
//! to produce native log lines.

use std::fmt;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// Event time: milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ts(pub i64);

impl Ts {
    /// Parses an RFC 3339 timestamp (`2026-03-18T09:02:11Z`, offsets allowed).
    pub fn parse_rfc3339(s: &str) -> Option<Ts> {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| Ts(t.timestamp_millis()))
    }

    /// Whole seconds since the epoch, as a float (for Prometheus gauges).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// Adds a (possibly negative) number of milliseconds, saturating.
    pub fn add_millis(self, ms: i64) -> Ts {
        Ts(self.0.saturating_add(ms))
    }
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
}

impl Event {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_with_offsets_and_print_in_utc() {
        let t = Ts::parse_rfc3339("2026-03-18T10:02:11+01:00").unwrap();
        assert_eq!(t.to_string(), "2026-03-18T09:02:11Z");
        let ms = Ts::parse_rfc3339("2026-03-18T09:02:11.250Z").unwrap();
        assert_eq!(ms.0 - t.0, 250);
        assert_eq!(Ts::parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn event_type_names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::from_name(t.as_str()), Some(t));
        }
        assert_eq!(EventType::from_name("login"), None);
    }
}
