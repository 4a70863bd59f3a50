//! A second evaluation organisation, written from its own specification.
//!
//! The detection model's defaults were tuned on [`super::generate`]. This
//! generator exists to check that what was tuned holds on an organisation it
//! was not tuned on: it is written from the specification below, shares no
//! code, names or layout with that generator, and its output reaches the
//! engine only through the real native decoder. Defaults are never tuned on
//! it specially, and detection never special-cases any name it produces.
//!
//! # Specification
//!
//! Every choice below is drawn from the seed, so two seeds give two
//! organisations that differ in how they write things, not only in who does
//! what.
//!
//! - **Conventions.** People are named one way per organisation: `jdoe`,
//!   `john.doe`, `u12345`, `john.doe@domain` or `doe_j`. The HR system and
//!   the identity provider are actors with arbitrary names (`svc-workday-sync`,
//!   `okta-scim`, `hrbot`, ...); which of the two moves people between teams
//!   and onboards them differs per organisation. Groups (`team-x`,
//!   `grp_x_eng`, `cn=x,ou=groups,...`), resources (`prod/x/db`,
//!   `arn:aws:s3:::x-db-prd`, `db.x.live.internal`, ...), agents and their
//!   advice ids and channels, and change references (tickets `OPS-123`,
//!   `CHG0012345`, URLs, free text) each follow one of several styles. The
//!   organisation's `[sensitivity]` marks its production resources `high`,
//!   written for its own resource style, as an operator would.
//! - **Lines.** Native JSON lines: key order either fixed per organisation or
//!   shuffled per line, compact or spaced, optional `id`, `action`,
//!   `outcome`, `role`, `actor_type` and `grantee_type`, unknown extra fields
//!   (ignored by contract), and timestamps with second, millisecond or
//!   microsecond precision, in UTC or a fixed local offset. A few accesses
//!   are denied.
//! - **Teams and work.** Team sizes are drawn around a mean that itself
//!   varies per organisation; each team has its own resources, some used by
//!   everyone in it and a long tail used rarely, and production resources
//!   its production engineers use. Teams work shifts that start at their own
//!   hour (time zones), a few people work weekends, engineers collaborate
//!   with one or two partner teams and now and then look at another team's
//!   popular resource.
//! - **On call.** Each team rotates on call (daily or weekly, per team); the
//!   engineer on call reaches the team's production resources day and night.
//! - **People changes.** New hires and transfers go through whichever actor
//!   the organisation uses (HR system or identity provider): a membership add
//!   to the team's group (and for a transfer a removal from the old one),
//!   after which the person works on the new team's resources.
//! - **Grants.** Team groups hold their resources from the first day. Team
//!   leads make routine grants within their team, each citing a ticket.
//!   Agents publish advice; some is verified, some viewed, most never acted
//!   on. A routine grant never follows the granter's view of advice that
//!   recommends the resource it grants (that would be a real trace).
//! - **Labelled cases**, injected into the evaluation period:
//!   - incident: published advice nobody verified recommends opening a
//!     production resource to another team's engineer or to everyone; a lead
//!     views it and grants exactly that, citing the advice, its channel or
//!     nothing. Must be revoked.
//!   - verified advice grant: the same chain with a human verifying the
//!     advice before the grant. Must be left alone.
//!   - sudden expansion: an engineer reaches at least ten production
//!     resources of other teams, about one every 45 seconds.
//!   - slow exploration: an engineer reaches five to seven rarely used
//!     resources of one other team over 25 to 60 minutes.
//!   - routine ticketed grant near unrelated advice: a lead grants a teammate
//!     a team resource citing a ticket shortly after viewing advice that
//!     recommends something else (for the same teammate, or someone else).
//!     Must be left alone.
//!
//! Transfers, new hires and the engineers on call during the evaluation
//! period are listed, so findings naming them are counted.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, FixedOffset};
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use serde_json::{Value, json};

use super::{Case, CaseKind, Org};
use crate::decode::{Decoder, NativeDecoder};
use crate::event::Ts;
use crate::model::{Pattern, Tier};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Engineers at the start.
    pub engineers: usize,
    /// Days of history before the evaluation period.
    pub history_days: u32,
    /// Days of the evaluation period.
    pub eval_days: u32,
    /// Everything derives from it.
    pub seed: u64,
    /// Keep the generated lines (for tests of the layout).
    pub keep_lines: bool,
}

/// How an organisation writes things: drawn from the seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conventions {
    /// How people are named (`initial-surname`, `first.last`, `employee-id`,
    /// `email`, `surname-initial`).
    pub people: &'static str,
    /// The HR system's actor name.
    pub hr_actor: String,
    /// The identity provider's actor name.
    pub idp_actor: String,
    /// The actor that onboards and transfers people (one of the two above).
    pub people_changes_by: String,
    /// Resource naming style.
    pub resources: &'static str,
    /// Timestamp style (`seconds`, `millis`, `micros-offset`, `local-offset`).
    pub timestamps: &'static str,
    /// Whether key order is shuffled per line (else fixed per organisation).
    pub shuffled_keys: bool,
    /// Whether lines are written with spaces after separators.
    pub spaced: bool,
    /// The reference style of routine grants.
    pub tickets: &'static str,
}

/// A generated organisation.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The labelled organisation, as the native decoder read its lines.
    pub org: Org,
    /// The native lines in time order (when `keep_lines`).
    pub lines: Vec<String>,
    /// The conventions drawn.
    pub conventions: Conventions,
    /// Lines the decoder rejected (a generator bug if not zero).
    pub decode_errors: usize,
}

struct Rand(Xoshiro256PlusPlus);

impl Rand {
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.0.next_u64() % n as u64) as usize
        }
    }
    fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo).max(0) as usize + 1) as i64
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
    fn word(&mut self, v: &[&'static str]) -> &'static str {
        v[self.below(v.len())]
    }
    /// An index in `0..n` skewed towards 0 (a few popular, a long tail).
    fn skewed(&mut self, n: usize) -> usize {
        let u = self.unit();
        ((u * u * u) * n as f64) as usize % n.max(1)
    }
}

const FIRST: &[&str] = &[
    "ada", "bjorn", "chen", "dmitri", "elena", "farah", "goran", "hana", "ines", "jonas", "kofi",
    "lena", "mateo", "nadia", "oscar", "priya", "quinn", "rosa", "sven", "tariq", "uma", "viktor",
    "wen", "ximena", "yusuf", "zoe", "amara", "bruno", "carla", "dario", "emeka", "fiona",
];
const LAST: &[&str] = &[
    "okafor",
    "lindqvist",
    "moreau",
    "tanaka",
    "haddad",
    "kowalski",
    "nguyen",
    "brennan",
    "ferreira",
    "ivanova",
    "mensah",
    "schulz",
    "rossi",
    "park",
    "alvarez",
    "novak",
    "dubois",
    "sato",
    "khan",
    "berg",
    "costa",
    "weber",
    "quist",
    "oyelaran",
    "hughes",
    "varga",
];
const TEAM_WORDS: &[&str] = &[
    "payments",
    "ledger",
    "atlas",
    "hermes",
    "billing",
    "identity",
    "growth",
    "mobile",
    "checkout",
    "risk",
    "fraud",
    "maps",
    "ads",
    "lakehouse",
    "search",
    "notify",
    "catalog",
    "pricing",
    "orbit",
    "kepler",
    "tundra",
    "harbor",
    "relay",
    "quartz",
    "sentry",
    "beacon",
];
const THINGS: &[&str] = &[
    "api",
    "db",
    "queue",
    "cache",
    "dashboard",
    "repo",
    "bucket",
    "config",
    "logs",
    "jobs",
    "cron",
    "etl",
    "metrics",
    "console",
    "index",
    "reports",
    "ingest",
    "worker",
    "gateway",
    "ledgerdb",
    "exports",
    "backfill",
    "flags",
    "schemas",
    "archive",
    "replica",
    "notebooks",
    "streams",
];
const HR_NAMES: &[&str] = &[
    "svc-workday-sync",
    "hrbot",
    "people-ops-automation",
    "bamboo-connector",
    "svc_hris",
    "personio-bridge",
];
const IDP_NAMES: &[&str] = &[
    "okta-scim",
    "azuread-provisioning",
    "idm-provisioner",
    "jumpcloud-sync",
    "keycloak-admin-client",
];
const DOMAINS: &[&str] = &["example.com", "corp.example", "acme.io", "initech.net"];

/// One organisation's writing habits.
struct Style {
    people: usize,
    domain: &'static str,
    group: usize,
    resource: usize,
    prod_word: &'static str,
    dev_word: &'static str,
    ts: usize,
    offset_minutes: i32,
    key_order: Vec<&'static str>,
    shuffle: bool,
    spaced: bool,
    p_id: f64,
    p_action: f64,
    p_outcome: f64,
    p_extra: f64,
    p_optional: f64,
    ticket: usize,
    agent: usize,
    advice_id: usize,
    channel: usize,
    everyone: &'static str,
}

const KEYS: &[&str] = &[
    "ts",
    "type",
    "id",
    "principal",
    "resource",
    "action",
    "outcome",
    "grant_id",
    "actor",
    "actor_type",
    "grantee",
    "grantee_type",
    "role",
    "reference",
    "group",
    "member",
    "op",
    "advice_id",
    "agent",
    "requested_by",
    "channel",
    "published",
    "recommends",
    "summary",
    "verifier",
    "host",
    "src_ip",
];

impl Style {
    fn draw(r: &mut Rand) -> Style {
        let mut key_order: Vec<&'static str> = KEYS.to_vec();
        for i in (1..key_order.len()).rev() {
            let j = r.below(i + 1);
            key_order.swap(i, j);
        }
        Style {
            people: r.below(5),
            domain: r.word(DOMAINS),
            group: r.below(5),
            resource: r.below(4),
            prod_word: r.word(&["prod", "prd", "production", "live"]),
            dev_word: r.word(&["dev", "staging", "nonprod", "int"]),
            ts: r.below(4),
            offset_minutes: *r.pick(&[-420, -300, 60, 120, 330, 540]),
            key_order,
            shuffle: r.chance(0.5),
            spaced: r.chance(0.5),
            p_id: *r.pick(&[0.0, 0.5, 1.0]),
            p_action: *r.pick(&[0.0, 0.3, 0.9]),
            p_outcome: *r.pick(&[0.0, 0.2, 1.0]),
            p_extra: *r.pick(&[0.0, 0.1, 0.6]),
            p_optional: *r.pick(&[0.2, 0.6, 1.0]),
            ticket: r.below(5),
            agent: r.below(4),
            advice_id: r.below(4),
            channel: r.below(4),
            everyone: r.word(&["everyone", "all-engineering", "staff", "eng-all-users"]),
        }
    }

    fn person(&self, r: &mut Rand, taken: &mut BTreeSet<String>) -> String {
        let (f, l) = (*r.pick(FIRST), *r.pick(LAST));
        let base = match self.people {
            0 => format!("{}{l}", &f[..1]),
            1 => format!("{f}.{l}"),
            2 => format!("u{}", r.range(10_000, 99_999)),
            3 => format!("{f}.{l}@{}", self.domain),
            _ => format!("{l}_{}", &f[..1]),
        };
        let mut name = base.clone();
        let mut n = 1;
        while taken.contains(&name) {
            n += 1;
            name = match self.people {
                3 => format!("{f}.{l}{n}@{}", self.domain),
                2 => format!("u{}", r.range(10_000, 99_999)),
                _ => format!("{base}{n}"),
            };
        }
        taken.insert(name.clone());
        name
    }

    fn group(&self, team: &str) -> String {
        match self.group {
            0 => format!("team-{team}"),
            1 => format!("grp_{team}_eng"),
            2 => format!("{team}-devs"),
            3 => format!("cn={team},ou=groups,dc=corp"),
            _ => format!("/org/eng/{team}"),
        }
    }

    fn resource(&self, team: &str, thing: &str, prod: bool) -> String {
        let env = if prod { self.prod_word } else { self.dev_word };
        match self.resource {
            0 => format!("{env}/{team}/{thing}"),
            1 => format!("arn:aws:s3:::{team}-{thing}-{env}"),
            2 => format!("{thing}.{team}.{env}.internal"),
            _ => format!("svc://{env}-{team}/{thing}"),
        }
    }

    /// The `[sensitivity]` an operator of this organisation would write.
    fn sensitivity(&self) -> Vec<(Pattern, Tier)> {
        let p = self.prod_word;
        let glob = match self.resource {
            0 => format!("{p}/*"),
            1 => format!("arn:aws:s3:::*-{p}"),
            2 => format!("*.{p}.internal"),
            _ => format!("svc://{p}-*"),
        };
        vec![(Pattern::new(&glob).expect("valid glob"), Tier::High)]
    }

    fn agent(&self, name: &str) -> String {
        match self.agent {
            0 => format!("agent:{name}"),
            1 => format!("bot:{name}"),
            2 => format!("ai-{name}"),
            _ => format!("{name}@agents.{}", self.domain),
        }
    }

    fn agent_pattern(&self) -> Pattern {
        let glob = match self.agent {
            0 => "agent:*".to_owned(),
            1 => "bot:*".to_owned(),
            2 => "ai-*".to_owned(),
            _ => format!("*@agents.{}", self.domain),
        };
        Pattern::new(&glob).expect("valid glob")
    }

    fn advice_id(&self, n: u64) -> String {
        match self.advice_id {
            0 => format!("adv-{n}"),
            1 => format!("ans_{:08x}", n.wrapping_mul(2_654_435_761) & 0xffff_ffff),
            2 => format!(
                "{:08x}-{:04x}-4{:03x}",
                n.wrapping_mul(40_503),
                n % 65_536,
                n % 4096
            ),
            _ => format!("Q{}-A{}", n / 7 + 100, n % 7 + 1),
        }
    }

    fn channel(&self, n: u64) -> String {
        let board = ["infra-help", "ask-platform", "access-requests", "devex"][(n % 4) as usize];
        match self.channel {
            0 => format!("forum/{board}-t{n}"),
            1 => format!("slack:#{board}/p{n}"),
            2 => format!("https://forum.{}/t/{board}/{n}", self.domain),
            _ => format!("teams:{board}/thread-{n}"),
        }
    }

    fn ticket(&self, r: &mut Rand, lead: &str) -> String {
        let n = r.range(100, 99_999);
        match self.ticket {
            0 => format!("OPS-{n}"),
            1 => format!("CHG{n:07}"),
            2 => format!("access request #{n}"),
            3 => format!("https://tracker.{}/browse/ACC-{n}", self.domain),
            _ => format!("approved by {lead} in the weekly access review"),
        }
    }

    fn quantise(&self, ms: i64) -> i64 {
        match self.ts {
            0 | 3 => ms - ms.rem_euclid(1000),
            _ => ms,
        }
    }

    fn timestamp(&self, ms: i64) -> String {
        let utc = DateTime::from_timestamp_millis(ms).expect("in range");
        match self.ts {
            0 => utc.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            1 => utc.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            2 => utc.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string(),
            _ => {
                let off = FixedOffset::east_opt(self.offset_minutes * 60).expect("valid offset");
                utc.with_timezone(&off)
                    .format("%Y-%m-%dT%H:%M:%S%:z")
                    .to_string()
            }
        }
    }
}

struct Team {
    group: String,
    dev: Vec<String>,
    prod: Vec<String>,
    members: Vec<usize>,
    start_hour: i64,
    shift_hours: i64,
    rotation_days: i64,
}

struct Person {
    name: String,
    team: usize,
    prod_user: bool,
    partners: Vec<usize>,
    favourites: Vec<usize>,
    rate: i64,
    weekend: bool,
    /// Present from this time (new hires).
    joined: i64,
}

/// A view of advice, to keep routine grants from tracing to it by chance.
struct View {
    at: i64,
    resources: Vec<String>,
}

struct Gen {
    r: Rand,
    style: Style,
    lines: Vec<(i64, u64, String)>,
    seq: u64,
    ids: u64,
    teams: Vec<Team>,
    people: Vec<Person>,
    shared: Vec<String>,
    taken: BTreeSet<String>,
    views: BTreeMap<usize, Vec<View>>,
    hr_actor: String,
    idp_actor: String,
    mover: String,
    agents: Vec<String>,
}

impl Gen {
    fn id(&mut self, prefix: &str) -> String {
        self.ids += 1;
        format!("{prefix}{}", self.ids)
    }

    /// Writes one native line at `ms` (quantised to the organisation's
    /// precision, which is returned).
    fn emit(&mut self, ms: i64, ty: &str, mut fields: Vec<(&'static str, Value)>) -> i64 {
        let ms = self.style.quantise(ms);
        fields.push(("ts", Value::String(self.style.timestamp(ms))));
        fields.push(("type", Value::String(ty.into())));
        if self.r.chance(self.style.p_id) {
            let id = self.id("e");
            fields.push(("id", Value::String(id)));
        }
        if self.r.chance(self.style.p_extra) {
            fields.push(("host", Value::String(format!("node-{}", self.r.below(40)))));
        }
        if self.r.chance(self.style.p_extra / 2.0) {
            let ip = format!(
                "10.{}.{}.{}",
                self.r.below(255),
                self.r.below(255),
                self.r.below(255)
            );
            fields.push(("src_ip", Value::String(ip)));
        }
        if self.style.shuffle {
            for i in (1..fields.len()).rev() {
                let j = self.r.below(i + 1);
                fields.swap(i, j);
            }
        } else {
            let order = &self.style.key_order;
            fields.sort_by_key(|(k, _)| order.iter().position(|o| o == k));
        }
        let (colon, comma) = if self.style.spaced {
            (": ", ", ")
        } else {
            (":", ",")
        };
        let mut line = String::from("{");
        for (i, (k, v)) in fields.iter().enumerate() {
            if i > 0 {
                line.push_str(comma);
            }
            line.push_str(&Value::String((*k).into()).to_string());
            line.push_str(colon);
            line.push_str(&v.to_string());
        }
        line.push('}');
        self.seq += 1;
        self.lines.push((ms, self.seq, line));
        ms
    }

    fn access(&mut self, ms: i64, who: usize, resource: &str) -> i64 {
        let mut f = vec![
            ("principal", json!(self.people[who].name)),
            ("resource", json!(resource)),
        ];
        if self.r.chance(self.style.p_action) {
            f.push((
                "action",
                json!(self.r.pick(&["read", "GET", "query", "ssh", "list"])),
            ));
        }
        if self.r.chance(self.style.p_outcome) {
            f.push(("outcome", json!("success")));
        }
        self.emit(ms, "access", f)
    }

    fn denied(&mut self, ms: i64, who: usize, resource: &str) {
        let f = vec![
            ("principal", json!(self.people[who].name)),
            ("resource", json!(resource)),
            ("outcome", json!("denied")),
        ];
        self.emit(ms, "access", f);
    }

    fn membership(&mut self, ms: i64, actor: &str, group: &str, member: &str, add: bool) {
        let mut f = vec![
            ("actor", json!(actor)),
            ("group", json!(group)),
            ("member", json!(member)),
            ("op", json!(if add { "add" } else { "remove" })),
        ];
        if self.r.chance(self.style.p_optional) {
            f.push(("actor_type", json!("service")));
        }
        if self.r.chance(self.style.p_optional) {
            let id = self.id("m-");
            f.push(("grant_id", json!(id)));
        }
        self.emit(ms, "membership", f);
    }

    /// A grant; returns its id and its (quantised) time.
    fn grant(
        &mut self,
        ms: i64,
        actor: &str,
        grantee: &str,
        group: bool,
        resource: &str,
        reference: Option<String>,
    ) -> (String, i64) {
        let gid = self.id(match self.style.ticket {
            0 | 1 => "gr-",
            _ => "G",
        });
        let mut f = vec![
            ("grant_id", json!(gid)),
            ("actor", json!(actor)),
            ("grantee", json!(grantee)),
            ("resource", json!(resource)),
        ];
        if group {
            f.push(("grantee_type", json!("group")));
        } else if self.r.chance(self.style.p_optional) {
            f.push(("grantee_type", json!("user")));
        }
        if self.r.chance(self.style.p_optional) {
            f.push((
                "role",
                json!(self.r.pick(&["viewer", "reader", "editor", "operator"])),
            ));
        }
        if let Some(reference) = reference {
            f.push(("reference", json!(reference)));
        }
        let at = self.emit(ms, "grant", f);
        (gid, at)
    }

    /// Publishes advice recommending `resource` for `grantee`; returns its
    /// id and channel.
    fn advice(&mut self, ms: i64, asker: usize, resource: &str, grantee: &str) -> (String, String) {
        self.ids += 1;
        let n = self.ids;
        let id = self.style.advice_id(n);
        let channel = self.style.channel(n);
        let agent = self.r.pick(&self.agents).clone();
        let f = vec![
            ("advice_id", json!(id)),
            ("agent", json!(agent)),
            ("requested_by", json!(self.people[asker].name)),
            ("channel", json!(channel)),
            ("published", json!(true)),
            (
                "recommends",
                json!([{"resource": resource, "grantee": grantee, "role": "viewer"}]),
            ),
            ("summary", json!("suggested access change")),
        ];
        self.emit(ms, "advice", f);
        (id, channel)
    }

    fn viewed(&mut self, ms: i64, who: usize, advice_id: &str, resources: Vec<String>) {
        let f = vec![
            ("advice_id", json!(advice_id)),
            ("principal", json!(self.people[who].name)),
        ];
        let at = self.emit(ms, "advice_viewed", f);
        self.views
            .entry(who)
            .or_default()
            .push(View { at, resources });
    }

    fn verified(&mut self, ms: i64, who: usize, advice_id: &str) {
        let f = vec![
            ("advice_id", json!(advice_id)),
            ("verifier", json!(self.people[who].name)),
        ];
        self.emit(ms, "advice_verified", f);
    }

    /// Whether `who` viewed advice recommending `resource` in the day before `ms`.
    fn saw_advice_for(&self, who: usize, resource: &str, ms: i64) -> bool {
        self.views.get(&who).is_some_and(|v| {
            v.iter().any(|v| {
                v.at <= ms && ms - v.at <= 2 * DAY && v.resources.iter().any(|r| r == resource)
            })
        })
    }

    fn lead(&self, team: usize) -> usize {
        self.teams[team].members[0]
    }

    /// The team `who` works in on day `d` (transfers change it).
    fn team_of(&self, who: usize) -> usize {
        self.people[who].team
    }

    /// Someone of `team` on call on day `d`.
    fn on_call(&self, team: usize, d: i64) -> Option<usize> {
        let t = &self.teams[team];
        let m = &t.members;
        if m.len() < 3 {
            return None;
        }
        let slot = d / t.rotation_days;
        let who = m[(slot as usize + team) % m.len()];
        (self.people[who].team == team).then_some(who)
    }

    fn pick_favourites(&mut self, team: usize) -> Vec<usize> {
        // From the first two thirds: the last third is the rarely used tail.
        let n = self.teams[team].dev.len() * 2 / 3;
        let k = self.r.range(3, 7).min(n as i64) as usize;
        let mut fav = BTreeSet::new();
        while fav.len() < k {
            fav.insert(self.r.skewed(n));
        }
        fav.into_iter().collect()
    }

    /// One ordinary working day of `who` starting at `day`.
    fn workday(&mut self, who: usize, day: i64, weekend: bool) {
        let team = self.team_of(who);
        let (start, len) = {
            let t = &self.teams[team];
            (t.start_hour, t.shift_hours)
        };
        let p = &self.people[who];
        if p.joined > day + start * HOUR {
            return;
        }
        let mut n = self.r.range(p.rate / 2, p.rate * 3 / 2);
        let span = if weekend {
            n /= 4;
            2 * HOUR
        } else {
            len * HOUR
        };
        let begin = day + start * HOUR + self.r.range(-30, 45) * MINUTE;
        for _ in 0..n {
            let at = begin + self.r.range(0, span);
            let roll = self.r.unit();
            let p = &self.people[who];
            let t = &self.teams[team];
            let resource = if roll < 0.6 {
                let f = p.favourites[self.r.below(p.favourites.len())];
                t.dev[f.min(t.dev.len() - 1)].clone()
            } else if roll < 0.68 {
                t.dev[self.r.skewed(t.dev.len())].clone()
            } else if roll < 0.88 {
                self.shared[self.r.skewed(self.shared.len())].clone()
            } else if roll < 0.94 && p.prod_user {
                t.prod[self.r.skewed(t.prod.len())].clone()
            } else if roll < 0.99 && !p.partners.is_empty() {
                let pt = &self.teams[p.partners[self.r.below(p.partners.len())]];
                pt.dev[self.r.below(pt.dev.len().min(3))].clone()
            } else {
                t.dev[self.r.skewed(t.dev.len())].clone()
            };
            self.access(at, who, &resource);
        }
        // Now and then a look at another team's popular resource.
        if !weekend && self.r.chance(0.04) {
            let other = self.r.below(self.teams.len());
            let t = &self.teams[other];
            let res = t.dev[self.r.below(t.dev.len().min(4))].clone();
            let at = begin + self.r.range(0, span);
            self.access(at, who, &res);
        }
        if !weekend && self.r.chance(0.01) {
            let other = self.r.below(self.teams.len());
            let t = &self.teams[other];
            let res = t.prod[self.r.below(t.prod.len())].clone();
            let at = begin + self.r.range(0, span);
            self.denied(at, who, &res);
        }
    }

    /// The engineer on call reaches the team's production day and night.
    fn on_call_day(&mut self, who: usize, team: usize, day: i64) {
        let pages = self.r.range(4, 14);
        for _ in 0..pages {
            let at = day + self.r.range(0, DAY - 1);
            let n_prod = self.teams[team].prod.len();
            let res = self.teams[team].prod[self.r.below(n_prod)].clone();
            self.access(at, who, &res);
            if self.r.chance(0.5) {
                let n_dev = self.teams[team].dev.len();
                let res = self.teams[team].dev[self.r.skewed(n_dev)].clone();
                let dt = self.r.range(10_000, 300_000);
                self.access(at + dt, who, &res);
            }
        }
    }

    /// A work-hour time for `team` on a weekday in `days` (any day of them
    /// if they hold no weekday).
    fn work_time(&mut self, team: usize, days: (i64, i64), base: i64) -> i64 {
        let mut d = self.r.range(days.0, days.1 - 1);
        for _ in 0..50 {
            if d % 7 < 5 {
                break;
            }
            d = self.r.range(days.0, days.1 - 1);
        }
        let t = &self.teams[team];
        base + d * DAY + t.start_hour * HOUR + self.r.range(HOUR, (t.shift_hours - 2).max(2) * HOUR)
    }
}

/// Generates an organisation from `spec`.
pub fn generate(spec: Spec) -> Generated {
    let mut r = Rand(Xoshiro256PlusPlus::seed_from_u64(
        spec.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x1d8e_4e27_c47d_124f,
    ));
    let style = Style::draw(&mut r);
    let hr_actor = r.pick(HR_NAMES).to_string();
    let idp_actor = r.pick(IDP_NAMES).to_string();
    let mover = if r.chance(0.5) {
        hr_actor.clone()
    } else {
        idp_actor.clone()
    };
    let agents = [
        "forum-helper",
        "askops",
        "infra-copilot",
        "helpdesk-assistant",
    ]
    .iter()
    .map(|a| style.agent(a))
    .collect();
    let mut g = Gen {
        r,
        style,
        lines: Vec::new(),
        seq: 0,
        ids: 0,
        teams: Vec::new(),
        people: Vec::new(),
        shared: Vec::new(),
        taken: BTreeSet::new(),
        views: BTreeMap::new(),
        hr_actor,
        idp_actor,
        mover,
        agents,
    };
    // A Monday between September 2025 and June 2026.
    let base = 1_756_684_800_000 + g.r.range(0, 40) * 7 * DAY;
    let total_days = i64::from(spec.history_days + spec.eval_days);
    let eval_start = base + i64::from(spec.history_days) * DAY;
    let eval_end = base + total_days * DAY;

    // Teams, their resources and people.
    let mean_size = g.r.range(5, 22) as f64;
    let mut left = spec.engineers.max(3);
    let mut ti = 0;
    while left > 0 {
        let size = ((mean_size * (0.4 + 1.2 * g.r.unit())).round() as usize)
            .clamp(3, 60)
            .min(left);
        let size = if left - size < 3 { left } else { size };
        let word = TEAM_WORDS[ti % TEAM_WORDS.len()];
        let name = if ti < TEAM_WORDS.len() {
            word.to_owned()
        } else {
            format!("{word}{}", ti / TEAM_WORDS.len() + 1)
        };
        let mut things: Vec<&str> = THINGS.to_vec();
        for i in (1..things.len()).rev() {
            let j = g.r.below(i + 1);
            things.swap(i, j);
        }
        let n_dev = g.r.range(15, 24) as usize;
        let n_prod = g.r.range(3, 8) as usize;
        let dev = things[..n_dev]
            .iter()
            .map(|t| g.style.resource(&name, t, false))
            .collect();
        let prod = things[..n_prod]
            .iter()
            .map(|t| g.style.resource(&name, t, true))
            .collect();
        let start_hour = g.r.range(0, 16);
        let shift_hours = g.r.range(7, 10);
        let rotation_days = if g.r.chance(0.5) { 1 } else { 7 };
        g.teams.push(Team {
            group: g.style.group(&name),
            dev,
            prod,
            members: Vec::new(),
            start_hour,
            shift_hours,
            rotation_days,
        });
        for _ in 0..size {
            let name = g.style.person(&mut g.r, &mut g.taken);
            let idx = g.people.len();
            g.teams[ti].members.push(idx);
            g.people.push(Person {
                name,
                team: ti,
                prod_user: false,
                partners: Vec::new(),
                favourites: Vec::new(),
                rate: 0,
                weekend: false,
                joined: i64::MIN,
            });
        }
        left -= size;
        ti += 1;
    }
    let n_teams = g.teams.len();
    g.shared = [
        "wiki",
        "chat",
        "ci",
        "tickets",
        "docs",
        "status",
        "calendar",
        "sso-portal",
    ]
    .iter()
    .map(|t| g.style.resource("shared", t, false))
    .collect();
    for p in 0..g.people.len() {
        let team = g.people[p].team;
        let lead = g.teams[team].members[0] == p;
        let prod_user = lead || g.r.chance(0.35);
        let partners: Vec<usize> = (0..g.r.below(3))
            .map(|_| g.r.below(n_teams))
            .filter(|&t| t != team)
            .collect();
        let favourites = g.pick_favourites(team);
        let rate = g.r.range(8, 45);
        let weekend = g.r.chance(0.08);
        let person = &mut g.people[p];
        person.prod_user = prod_user;
        person.partners = partners;
        person.favourites = favourites;
        person.rate = rate;
        person.weekend = weekend;
    }

    // Day 0: the identity provider sets up groups, memberships and grants.
    let setup = base - 2 * HOUR;
    let idp = g.idp_actor.clone();
    let everyone = g.style.everyone;
    for t in 0..n_teams {
        let group = g.teams[t].group.clone();
        let resources: Vec<String> = g.teams[t]
            .dev
            .iter()
            .chain(&g.teams[t].prod)
            .cloned()
            .collect();
        for res in resources {
            let at = setup + g.r.range(0, 600_000);
            g.grant(at, &idp, &group, true, &res, None);
        }
        for m in g.teams[t].members.clone() {
            let at = setup + g.r.range(600_000, 3_000_000);
            let name = g.people[m].name.clone();
            g.membership(at, &idp, &group, &name, true);
            g.membership(at + 1000, &idp, everyone, &name, true);
        }
    }
    for res in g.shared.clone() {
        g.grant(setup, &idp, everyone, true, &res, None);
    }

    let mut cases = Vec::new();
    let mut new_hires = BTreeSet::new();
    let mut transfers = BTreeSet::new();
    let mut on_call = BTreeSet::new();
    let n = g.people.len();
    let per_period = |k: usize| (n / k).max(1);

    // People changes: new hires and transfers, in history and evaluation.
    let mut moves: BTreeMap<i64, Vec<(usize, usize)>> = BTreeMap::new();
    for (i, days) in [(0, spec.history_days), (1, spec.eval_days)] {
        let first = if i == 0 {
            1
        } else {
            i64::from(spec.history_days)
        };
        let last = first + i64::from(days) - 1;
        for _ in 0..per_period(80) {
            let who = g.r.below(n);
            let from = g.people[who].team;
            let to = g.r.below(n_teams);
            if to != from && g.teams[from].members[0] != who && g.people[who].joined == i64::MIN {
                let d = g.r.range(first, last);
                moves.entry(d).or_default().push((who, to));
                if i == 1 {
                    transfers.insert(g.people[who].name.clone());
                }
            }
        }
        for _ in 0..per_period(60) {
            let team = g.r.below(n_teams);
            let name = g.style.person(&mut g.r, &mut g.taken);
            let d = g.r.range(first, last);
            let joined = base + d * DAY + g.teams[team].start_hour * HOUR - 3 * HOUR;
            let favourites = g.pick_favourites(team);
            let idx = g.people.len();
            let rate = g.r.range(8, 30);
            g.people.push(Person {
                name: name.clone(),
                team,
                prod_user: false,
                partners: Vec::new(),
                favourites,
                rate,
                weekend: false,
                joined,
            });
            g.teams[team].members.push(idx);
            let mover = g.mover.clone();
            let group = g.teams[team].group.clone();
            g.membership(joined, &mover, &group, &name, true);
            g.membership(joined + 2000, &mover, everyone, &name, true);
            if i == 1 {
                new_hires.insert(name);
            }
        }
    }

    // Labelled cases in the evaluation period, first: the day-to-day grants
    // below then know which advice each lead has seen.
    let eval_days = (
        i64::from(spec.history_days),
        i64::from(spec.history_days + spec.eval_days),
    );
    let busy: BTreeSet<String> = transfers.union(&new_hires).cloned().collect();
    // Someone neither moving nor new (anyone, in an organisation too small
    // to have such a person).
    let regular = |g: &mut Gen| {
        for _ in 0..1000 {
            let who = g.r.below(n);
            if !busy.contains(&g.people[who].name) && g.people[who].joined == i64::MIN {
                return who;
            }
        }
        g.r.below(n)
    };
    let count = if spec.eval_days == 0 {
        0
    } else {
        (n / 100).max(2)
    };
    for _ in 0..count {
        // Incident: unverified advice, followed.
        let t = g.r.below(n_teams);
        let lead = g.lead(t);
        let res = g.teams[t].prod[g.r.below(g.teams[t].prod.len())].clone();
        // Another team's engineer (if one turns up), else everyone.
        let mut other = None;
        for _ in 0..100 {
            let o = regular(&mut g);
            if g.people[o].team != t {
                other = Some(o);
                break;
            }
        }
        if g.r.chance(0.3) {
            other = None;
        }
        let (grantee, group) = match other {
            Some(o) => (g.people[o].name.clone(), false),
            None => (everyone.to_owned(), true),
        };
        let at = g.work_time(t, eval_days, base);
        let asker = regular(&mut g);
        let (id, channel) = g.advice(at, asker, &res, &grantee);
        let dt = g.r.range(MINUTE, 20 * MINUTE);
        g.viewed(at + dt, lead, &id, vec![res.clone()]);
        let reference = match g.r.below(4) {
            0 => Some(format!("per {channel}")),
            1 => Some(id.clone()),
            2 => Some(format!("as suggested in {id}")),
            _ => None,
        };
        let lead_name = g.people[lead].name.clone();
        let when = at + g.r.range(25 * MINUTE, 90 * MINUTE);
        let (gid, ts) = g.grant(when, &lead_name, &grantee, group, &res, reference);
        cases.push(Case {
            kind: CaseKind::UnverifiedAdviceGrant,
            principal: lead_name,
            grant_id: Some(gid),
            start: Ts(ts),
            end: Ts(ts),
        });

        // Verified advice, followed: left alone.
        let t = g.r.below(n_teams);
        let lead = g.lead(t);
        let members = g.teams[t].members.clone();
        let mate = *g.r.pick(&members);
        if mate != lead && g.people[mate].team == t {
            let res = g.teams[t].prod[g.r.below(g.teams[t].prod.len())].clone();
            let mate_name = g.people[mate].name.clone();
            let at = g.work_time(t, eval_days, base);
            let (id, channel) = g.advice(at, mate, &res, &mate_name);
            let verifier = loop {
                let v = regular(&mut g);
                if v != lead {
                    break v;
                }
            };
            let dt = g.r.range(2 * MINUTE, 20 * MINUTE);
            g.verified(at + dt, verifier, &id);
            let dt = g.r.range(21 * MINUTE, 30 * MINUTE);
            g.viewed(at + dt, lead, &id, vec![res.clone()]);
            let reference = if g.r.chance(0.5) {
                id.clone()
            } else {
                format!("see {channel}")
            };
            let lead_name = g.people[lead].name.clone();
            let when = at + g.r.range(35 * MINUTE, 60 * MINUTE);
            let (gid, ts) = g.grant(when, &lead_name, &mate_name, false, &res, Some(reference));
            cases.push(Case {
                kind: CaseKind::VerifiedAdviceGrant,
                principal: lead_name,
                grant_id: Some(gid),
                start: Ts(ts),
                end: Ts(ts),
            });
        }

        // Routine ticketed grant shortly after unrelated advice.
        let t = g.r.below(n_teams);
        let lead = g.lead(t);
        let members = g.teams[t].members.clone();
        let mate = *g.r.pick(&members);
        if mate != lead && g.people[mate].team == t && g.teams[t].dev.len() > 1 {
            let mate_name = g.people[mate].name.clone();
            let res = g.teams[t].dev[0].clone();
            let other_res = g.teams[t].dev[1].clone();
            let advised = if g.r.chance(0.5) {
                mate_name.clone()
            } else {
                let other = regular(&mut g);
                g.people[other].name.clone()
            };
            let at = g.work_time(t, eval_days, base);
            let asker = regular(&mut g);
            let (id, _) = g.advice(at, asker, &other_res, &advised);
            let dt = g.r.range(MINUTE, 10 * MINUTE);
            g.viewed(at + dt, lead, &id, vec![other_res]);
            let lead_name = g.people[lead].name.clone();
            let reference = g.style.ticket(&mut g.r, &lead_name);
            let when = at + g.r.range(15 * MINUTE, 3 * HOUR);
            let (gid, ts) = g.grant(when, &lead_name, &mate_name, false, &res, Some(reference));
            cases.push(Case {
                kind: CaseKind::RoutineGrantNearAdvice,
                principal: lead_name,
                grant_id: Some(gid),
                start: Ts(ts),
                end: Ts(ts),
            });
        }

        // Sudden expansion: production of other teams, one about every 45 s.
        let who = regular(&mut g);
        let home = g.people[who].team;
        let mut targets: Vec<String> = Vec::new();
        let wanted = g.r.range(10, 14) as usize;
        for _ in 0..wanted * 20 {
            if targets.len() >= wanted {
                break;
            }
            let o = g.r.below(n_teams);
            if o == home {
                continue;
            }
            let res = g.teams[o].prod[g.r.below(g.teams[o].prod.len())].clone();
            if !targets.contains(&res) {
                targets.push(res);
            }
        }
        if targets.len() >= 10 {
            let mut at = g.work_time(home, eval_days, base);
            let (mut first, mut last) = (None, 0);
            for res in targets {
                let ts = g.access(at, who, &res);
                first.get_or_insert(ts);
                last = ts;
                at += g.r.range(30_000, 60_000);
            }
            cases.push(Case {
                kind: CaseKind::SuddenExpansion,
                principal: g.people[who].name.clone(),
                grant_id: None,
                start: Ts(first.expect("ten accesses")),
                end: Ts(last),
            });
        }

        // Slow exploration: the rarely used tail of one other team.
        let who = regular(&mut g);
        let home = g.people[who].team;
        let other = loop {
            let o = g.r.below(n_teams);
            if o != home || n_teams == 1 {
                break o;
            }
        };
        let tail: Vec<String> = {
            let dev = &g.teams[other].dev;
            dev[dev.len() * 2 / 3..].to_vec()
        };
        let k = (g.r.range(5, 7) as usize).min(tail.len());
        if other != home && k >= 5 {
            let duration = g.r.range(25 * MINUTE, 60 * MINUTE);
            let start = g.work_time(home, eval_days, base);
            let mut offsets: Vec<i64> = (0..k - 2).map(|_| g.r.range(0, duration)).collect();
            offsets.push(0);
            offsets.push(duration);
            offsets.sort_unstable();
            let (mut first, mut last) = (None, 0);
            for (res, off) in tail[tail.len() - k..].iter().zip(offsets) {
                let ts = g.access(start + off, who, res);
                first.get_or_insert(ts);
                last = ts;
            }
            cases.push(Case {
                kind: CaseKind::SlowExploration,
                principal: g.people[who].name.clone(),
                grant_id: None,
                start: Ts(first.expect("five accesses")),
                end: Ts(last),
            });
        }
    }

    // Daily work.
    for d in 0..total_days {
        let day = base + d * DAY;
        for (who, to) in moves.remove(&d).unwrap_or_default() {
            let from = g.people[who].team;
            let at = day + g.teams[to].start_hour * HOUR - HOUR;
            let mover = g.mover.clone();
            let name = g.people[who].name.clone();
            let (old, new) = (g.teams[from].group.clone(), g.teams[to].group.clone());
            if g.r.chance(0.5) {
                g.membership(at, &mover, &new, &name, true);
                g.membership(at + 5000, &mover, &old, &name, false);
            } else {
                g.membership(at, &mover, &old, &name, false);
                g.membership(at + 5000, &mover, &new, &name, true);
            }
            g.people[who].team = to;
            g.teams[to].members.push(who);
            g.people[who].favourites = g.pick_favourites(to);
            g.people[who].prod_user = false;
        }
        let weekend = d % 7 >= 5;
        for who in 0..g.people.len() {
            if !weekend || g.people[who].weekend {
                g.workday(who, day, weekend);
            }
        }
        for t in 0..n_teams {
            if let Some(who) = g.on_call(t, d) {
                if g.people[who].joined <= day {
                    g.on_call_day(who, t, day);
                    if day >= eval_start {
                        on_call.insert(g.people[who].name.clone());
                    }
                }
            }
        }
        // Advice nobody acts on; some verified, some viewed.
        for _ in 0..per_period(40) {
            let at = day + g.r.range(6 * HOUR, 20 * HOUR);
            let t = g.r.below(n_teams);
            let res = g.teams[t].prod[g.r.below(g.teams[t].prod.len())].clone();
            let asker = g.r.below(g.people.len());
            let grantee = g.people[g.r.below(g.people.len())].name.clone();
            let (id, _) = g.advice(at, asker, &res, &grantee);
            if g.r.chance(0.4) {
                let v = g.r.below(g.people.len());
                let dt = g.r.range(MINUTE, HOUR);
                g.verified(at + dt, v, &id);
            }
            for _ in 0..g.r.below(4) {
                let v = g.r.below(g.people.len());
                let dt = g.r.range(MINUTE, 6 * HOUR);
                g.viewed(at + dt, v, &id, vec![res.clone()]);
            }
        }
        // Routine ticketed grants within a team.
        if !weekend {
            for _ in 0..per_period(50) {
                let t = g.r.below(n_teams);
                let lead = g.lead(t);
                let members = g.teams[t].members.clone();
                let mate = *g.r.pick(&members);
                if mate == lead || g.people[mate].team != t {
                    continue;
                }
                let res = if g.r.chance(0.5) {
                    g.teams[t].prod[g.r.below(g.teams[t].prod.len())].clone()
                } else {
                    g.teams[t].dev[g.r.below(g.teams[t].dev.len())].clone()
                };
                let at = g.work_time(t, (d, d + 1), base);
                if g.saw_advice_for(lead, &res, at) {
                    continue;
                }
                let lead_name = g.people[lead].name.clone();
                let mate_name = g.people[mate].name.clone();
                let reference = g.style.ticket(&mut g.r, &lead_name);
                g.grant(at, &lead_name, &mate_name, false, &res, Some(reference));
            }
        }
    }

    // Into the decoder, in time order.
    let mut lines = std::mem::take(&mut g.lines);
    lines.sort_unstable_by_key(|(ms, seq, _)| (*ms, *seq));
    let mut decoder = NativeDecoder;
    let mut events = Vec::with_capacity(lines.len());
    let mut decode_errors = 0;
    for (_, _, line) in &lines {
        match decoder.decode_owned(line.as_bytes()) {
            Ok(evs) => events.extend(evs),
            Err(_) => decode_errors += 1,
        }
    }
    // Timestamps written with a local offset decode to the same instant.
    events.sort_by_key(|e| e.ts);
    let engineers = g
        .people
        .iter()
        .filter(|p| p.joined == i64::MIN || p.joined < eval_start)
        .count();
    let conventions = Conventions {
        people: [
            "initial-surname",
            "first.last",
            "employee-id",
            "email",
            "surname-initial",
        ][g.style.people],
        hr_actor: g.hr_actor.clone(),
        idp_actor: g.idp_actor.clone(),
        people_changes_by: g.mover.clone(),
        resources: ["env/team/thing", "s3-arn", "dns-name", "svc-url"][g.style.resource],
        timestamps: ["seconds", "millis", "micros-offset", "local-offset"][g.style.ts],
        shuffled_keys: g.style.shuffle,
        spaced: g.style.spaced,
        tickets: ["OPS-n", "CHGn", "request #n", "tracker URL", "free text"][g.style.ticket],
    };
    let org = Org {
        events,
        eval_start: Ts(eval_start),
        eval_end: Ts(eval_end),
        cases,
        new_hires,
        on_call,
        transfers,
        engineers,
        sensitivity: g.style.sensitivity(),
        agents: vec![g.style.agent_pattern()],
    };
    Generated {
        org,
        lines: if spec.keep_lines {
            lines.into_iter().map(|(_, _, l)| l).collect()
        } else {
            Vec::new()
        },
        conventions,
        decode_errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Body;

    fn small(seed: u64) -> Generated {
        generate(Spec {
            engineers: 40,
            history_days: 3,
            eval_days: 2,
            seed,
            keep_lines: true,
        })
    }

    /// How a person's name is written, read off the name itself.
    fn name_shape(name: &str) -> &'static str {
        if name.contains('@') {
            "email"
        } else if name.starts_with('u') && name[1..].bytes().all(|b| b.is_ascii_digit()) {
            "employee-id"
        } else if name.contains('.') {
            "dotted"
        } else if name.contains('_') {
            "underscore"
        } else {
            "plain"
        }
    }

    /// The shape of a line's timestamp: digits replaced, so precision and
    /// offset show.
    fn ts_shape(line: &str) -> String {
        let v: Value = serde_json::from_str(line).expect("a JSON line");
        v["ts"]
            .as_str()
            .expect("a ts")
            .chars()
            .map(|c| if c.is_ascii_digit() { '9' } else { c })
            .collect()
    }

    fn key_order(line: &str) -> Vec<String> {
        // serde_json keeps no order without a feature, so read the keys off
        // the text: every `"key":` at the top level.
        let v: Value = serde_json::from_str(line).expect("a JSON line");
        let mut keys: Vec<(usize, String)> = v
            .as_object()
            .expect("an object")
            .keys()
            .map(|k| {
                let pos = line.find(&format!("\"{k}\"")).expect("key in line");
                (pos, k.clone())
            })
            .collect();
        keys.sort();
        keys.into_iter().map(|(_, k)| k).collect()
    }

    #[test]
    fn every_line_goes_through_the_native_decoder() {
        for seed in 1..=4 {
            let g = small(seed);
            assert_eq!(g.decode_errors, 0, "seed {seed}");
            assert_eq!(g.lines.len(), g.org.events.len(), "one event per line");
            assert!(g.org.events.windows(2).all(|w| w[0].ts <= w[1].ts));
        }
    }

    #[test]
    fn seeds_vary_naming_layout_and_precision() {
        let mut people = BTreeSet::new();
        let mut movers = BTreeSet::new();
        let mut stamps = BTreeSet::new();
        let mut orders = BTreeSet::new();
        let mut resources = BTreeSet::new();
        for seed in 1..=8 {
            let g = small(seed);
            for e in &g.org.events {
                match &e.body {
                    Body::Access(a) => {
                        people.insert(name_shape(&a.principal));
                    }
                    Body::Membership(m) if g.org.events[0].ts < e.ts => {
                        movers.insert(m.actor.clone());
                    }
                    _ => {}
                }
            }
            stamps.insert(ts_shape(&g.lines[0]));
            let first_access = g
                .lines
                .iter()
                .find(|l| l.contains("\"access\""))
                .expect("accesses");
            orders.insert(key_order(first_access));
            // The resource style: what a production resource looks like
            // once its team and thing are blanked out.
            let (pattern, _) = &g.org.sensitivity[0];
            resources.insert(pattern.as_str().to_owned());
        }
        assert!(people.len() >= 3, "people naming varies: {people:?}");
        assert!(movers.len() >= 3, "HR and IdP actors vary: {movers:?}");
        assert!(stamps.len() >= 2, "timestamp precision varies: {stamps:?}");
        assert!(orders.len() >= 3, "field order varies: {orders:?}");
        assert!(
            resources.len() >= 3,
            "resource naming varies: {resources:?}"
        );
    }

    #[test]
    fn the_smallest_organisations_are_generated_too() {
        for (engineers, history_days, eval_days) in
            [(0, 1, 1), (1, 5, 2), (3, 0, 0), (4, 2, 1), (7, 1, 3)]
        {
            let g = generate(Spec {
                engineers,
                history_days,
                eval_days,
                seed: 9,
                keep_lines: false,
            });
            assert_eq!(g.decode_errors, 0);
            assert!(g.org.engineers >= 3, "at least one team of three");
            assert!(!g.org.events.is_empty());
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_organisation() {
        let (a, b) = (small(5), small(5));
        assert_eq!(a.lines, b.lines);
        assert_eq!(a.conventions, b.conventions);
        assert_ne!(small(6).lines, a.lines);
    }

    #[test]
    fn every_case_kind_is_injected_with_its_labels() {
        let g = generate(Spec {
            engineers: 300,
            history_days: 2,
            eval_days: 3,
            seed: 3,
            keep_lines: false,
        });
        let org = &g.org;
        let kinds: BTreeSet<CaseKind> = org.cases.iter().map(|c| c.kind).collect();
        for k in [
            CaseKind::UnverifiedAdviceGrant,
            CaseKind::VerifiedAdviceGrant,
            CaseKind::RoutineGrantNearAdvice,
            CaseKind::SuddenExpansion,
            CaseKind::SlowExploration,
        ] {
            assert!(kinds.contains(&k), "{k:?} injected");
        }
        for c in &org.cases {
            assert!(c.start >= org.eval_start && c.end < org.eval_end, "{c:?}");
            let span = c.end.0 - c.start.0;
            match c.kind {
                CaseKind::SuddenExpansion => {
                    let n = org
                        .events
                        .iter()
                        .filter(|e| e.ts >= c.start && e.ts <= c.end)
                        .filter(
                            |e| matches!(&e.body, Body::Access(a) if a.principal == c.principal),
                        )
                        .count();
                    assert!(n >= 10, "{n} accesses");
                    assert!(span <= 14 * 60_000, "{span} ms");
                }
                CaseKind::SlowExploration => assert!(span <= 60 * MINUTE, "{span} ms"),
                _ => assert!(c.grant_id.is_some()),
            }
        }
        assert!(!org.transfers.is_empty() && !org.new_hires.is_empty());
        assert!(!org.on_call.is_empty());
    }
}
