//! The model: who holds what, and which advice exists, as of the latest event.
//!
//! Sits after `decode` and is owned by the detection engine (`detect`), which
//! reads it to judge an event and then applies the event to it. It holds grants
//! (to users and groups), group memberships, the advice registry (published?,
//! verified by a human and when, seen by whom) and the principals tracked. The
//! whole model is serialisable: it is saved in the checkpoint together with the
//! source offsets, so a restart resumes with exactly the state those offsets imply.

pub mod catalogue;
mod identity;
mod sensitivity;

use std::collections::{BTreeSet, HashSet};

use rustc_hash::{FxHashMap as HashMap, FxHashSet};

use serde::{Deserialize, Serialize};

use crate::event::{Advice, Grant, GranteeType, Recommendation, Ts};

pub use identity::{Aliases, Identities, Pattern};
pub use sensitivity::{Sensitivity, Tier};

/// A grant as the model remembers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantRecord {
    /// Who made it.
    pub actor: String,
    /// Who holds it.
    pub grantee: String,
    /// User or group.
    pub grantee_type: GranteeType,
    /// What it opens.
    pub resource: String,
    /// Role, if any.
    pub role: Option<String>,
    /// When it was made.
    pub ts: Ts,
    /// Whether a `revoke` took it back.
    pub revoked: bool,
}

/// Advice as the model remembers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdviceRecord {
    /// Its id.
    pub advice_id: String,
    /// The agent that produced it.
    pub agent: String,
    /// When it was produced.
    pub ts: Ts,
    /// Who asked for it.
    pub requested_by: Option<String>,
    /// Where it was posted.
    pub channel: Option<String>,
    /// Whether others can see it.
    pub published: bool,
    /// What it tells people to grant.
    pub recommends: Vec<Recommendation>,
    /// Its short text.
    pub summary: Option<String>,
    /// The first approval by a human: when, and by whom.
    pub verified: Option<(Ts, String)>,
    /// Approvals by agents, which do not count (kept as evidence).
    pub agent_approvals: Vec<(Ts, String)>,
}

impl AdviceRecord {
    /// Whether a human approved it at or before `ts`.
    pub fn verified_by(&self, ts: Ts) -> Option<&(Ts, String)> {
        self.verified.as_ref().filter(|(at, _)| *at <= ts)
    }
}

/// How a principal came to see a piece of advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SawHow {
    /// They opened it (`advice_viewed`).
    Viewed,
    /// They asked the agent for it (`requested_by`).
    Requested,
}

/// A principal saw a piece of advice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sighting {
    /// Which advice.
    pub advice_id: String,
    /// When.
    pub ts: Ts,
    /// How.
    pub how: SawHow,
}

/// What [`Model::enforce_caps`] forgot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evicted {
    /// Pieces of advice.
    pub advice: u64,
    /// Grants.
    pub grants: u64,
    /// Principals' sightings.
    pub sightings: u64,
}

/// How many sightings are remembered per principal; older ones are dropped first.
const MAX_SIGHTINGS_PER_PRINCIPAL: usize = 256;

/// Who holds what and which advice exists.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Model {
    grants: HashMap<String, GrantRecord>,
    members: HashMap<String, BTreeSet<String>>,
    advice: HashMap<String, AdviceRecord>,
    /// channel -> advice ids posted there, for references that cite a channel.
    channels: HashMap<String, Vec<String>>,
    /// principal -> advice they saw, oldest first.
    sightings: HashMap<String, Vec<Sighting>>,
    latest: Ts,
    /// member -> groups, derived from `members` (rebuilt on load).
    #[serde(skip)]
    groups_of: HashMap<String, BTreeSet<String>>,
    /// Per grantee type (users, groups): grantee -> resource -> number of
    /// active grants, derived from `grants` (rebuilt on load). Separate maps so
    /// a user and a group of the same name never share, and lookups by `&str`
    /// allocate nothing.
    #[serde(skip)]
    held: [HashMap<String, HashMap<String, u32>>; 2],
    /// `held` turned around, per grantee type: resource -> the grantees
    /// holding it. "Who holds r" is then one lookup, and most resources are
    /// held by nobody or by no group, which answers it for everyone at once.
    #[serde(skip)]
    holders: [HashMap<String, FxHashSet<String>>; 2],
    /// Changes to who holds what since [`Model::take_holding_changes`], for
    /// what is derived from the model to follow it.
    #[serde(skip)]
    changes: Vec<HoldingChange>,
}

/// Models are equal when they record the same things; what is derived from
/// that (indexes, changes not yet taken) is left out.
impl PartialEq for Model {
    fn eq(&self, other: &Model) -> bool {
        self.grants == other.grants
            && self.members == other.members
            && self.advice == other.advice
            && self.channels == other.channels
            && self.sightings == other.sightings
            && self.latest == other.latest
    }
}

/// A change to who holds what ([`Model::take_holding_changes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldingChange {
    /// A grant of this resource was made or taken back.
    Resource(String),
    /// `member` joined or left `group`.
    Membership {
        /// The group.
        group: String,
        /// Who joined or left.
        member: String,
    },
    /// Grants were forgotten (or too many changes piled up untaken): anything
    /// derived from holdings may be stale.
    Forgotten,
}

/// Most changes kept untaken; beyond it they collapse into one
/// [`HoldingChange::Forgotten`], so a model nobody follows stays bounded.
const MAX_HOLDING_CHANGES: usize = 4096;

/// Who holds one resource ([`Model::holders`]).
#[derive(Debug, Clone, Copy)]
pub struct Holders<'m> {
    model: &'m Model,
    users: Option<&'m FxHashSet<String>>,
    groups: Option<&'m FxHashSet<String>>,
}

impl<'m> Holders<'m> {
    /// Whether nobody holds it.
    pub fn is_empty(&self) -> bool {
        self.users.is_none() && self.groups.is_none()
    }

    /// How `principal` holds it: `Some(None)` directly, `Some(Some(group))`
    /// through a group, `None` not at all.
    pub fn how(&self, principal: &str) -> Option<Option<&'m str>> {
        if self.is_empty() {
            return None;
        }
        if self.users.is_some_and(|u| u.contains(principal)) {
            return Some(None);
        }
        let groups = self.groups?;
        self.model
            .groups_of(principal)
            .find(|g| groups.contains(*g))
            .map(Some)
    }

    /// Whether `principal` holds it, directly or through a group.
    pub fn held_by(&self, principal: &str) -> bool {
        self.how(principal).is_some()
    }

    /// The users holding it directly, in no order.
    pub fn users(&self) -> impl Iterator<Item = &'m str> {
        self.users.into_iter().flatten().map(String::as_str)
    }

    /// The groups holding it, in no order.
    pub fn groups(&self) -> impl Iterator<Item = &'m str> {
        self.groups.into_iter().flatten().map(String::as_str)
    }
}

fn slot(t: GranteeType) -> usize {
    match t {
        GranteeType::User => 0,
        GranteeType::Group => 1,
    }
}

impl Model {
    /// Rebuilds the derived indexes after deserialising.
    pub fn rebuild_indexes(&mut self) {
        self.groups_of.clear();
        for (g, ms) in &self.members {
            for m in ms {
                self.groups_of
                    .entry(m.clone())
                    .or_default()
                    .insert(g.clone());
            }
        }
        self.held = Default::default();
        self.holders = Default::default();
        let active: Vec<(GranteeType, String, String)> = self
            .grants
            .values()
            .filter(|g| !g.revoked)
            .map(|g| (g.grantee_type, g.grantee.clone(), g.resource.clone()))
            .collect();
        for (t, grantee, resource) in active {
            self.hold(t, &grantee, &resource, 1);
        }
    }

    fn hold(&mut self, grantee_type: GranteeType, grantee: &str, resource: &str, delta: i32) {
        let held = &mut self.held[slot(grantee_type)];
        let holders = &mut self.holders[slot(grantee_type)];
        let map = held.entry(grantee.to_owned()).or_default();
        let n = map.entry(resource.to_owned()).or_default();
        let was = *n;
        *n = n.saturating_add_signed(delta);
        if was == 0 && *n > 0 {
            holders
                .entry(resource.to_owned())
                .or_default()
                .insert(grantee.to_owned());
        }
        if *n == 0 {
            map.remove(resource);
            if map.is_empty() {
                held.remove(grantee);
            }
            if let Some(h) = holders.get_mut(resource) {
                h.remove(grantee);
                if h.is_empty() {
                    holders.remove(resource);
                }
            }
        }
    }

    /// Who holds `resource`, directly or through groups.
    pub fn holders(&self, resource: &str) -> Holders<'_> {
        Holders {
            model: self,
            users: self.holders[0].get(resource),
            groups: self.holders[1].get(resource),
        }
    }

    /// The groups `member` is in.
    pub fn groups_of(&self, member: &str) -> impl Iterator<Item = &str> {
        self.groups_of
            .get(member)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// How many members a group has.
    pub fn group_size(&self, group: &str) -> usize {
        self.members.get(group).map_or(0, BTreeSet::len)
    }

    /// Whether `principal` holds `resource`, directly or through a group.
    pub fn holds(&self, principal: &str, resource: &str) -> bool {
        self.how_held(principal, resource).is_some()
    }

    /// How `principal` holds `resource`: `Some(None)` directly, `Some(Some(group))`
    /// through a group, `None` not at all.
    pub fn how_held(&self, principal: &str, resource: &str) -> Option<Option<&str>> {
        self.holders(resource).how(principal)
    }

    /// Every resource `principal` holds, directly or through groups, sorted.
    pub fn held_reach(&self, principal: &str) -> BTreeSet<&str> {
        let mut out: BTreeSet<&str> = self.held[0]
            .get(principal)
            .into_iter()
            .flat_map(|m| m.keys().map(String::as_str))
            .collect();
        for g in self.groups_of(principal) {
            if let Some(m) = self.held[1].get(g) {
                out.extend(m.keys().map(String::as_str));
            }
        }
        out
    }

    /// The latest event time applied.
    pub fn latest(&self) -> Ts {
        self.latest
    }

    /// Notes that an event of time `ts` was applied.
    pub fn advance(&mut self, ts: Ts) {
        self.latest = self.latest.max(ts);
    }

    /// Enforces the caps on advice, grants and sightings, forgetting the
    /// oldest first (revoked grants before active ones). Runs only once a cap
    /// is exceeded by a twentieth, so its sorting is amortised.
    pub fn enforce_caps(
        &mut self,
        max_advice: usize,
        max_grants: usize,
        max_principals: usize,
    ) -> Evicted {
        let mut out = Evicted::default();
        let over = |n: usize, cap: usize| n > cap + cap / 20;
        if over(self.advice.len(), max_advice) {
            let mut by_age: Vec<(Ts, String)> = self
                .advice
                .values()
                .map(|a| (a.ts, a.advice_id.clone()))
                .collect();
            by_age.sort_unstable();
            for (_, id) in by_age.into_iter().take(self.advice.len() - max_advice) {
                if let Some(a) = self.advice.remove(&id) {
                    if let Some(ch) = a.channel {
                        if let Some(ids) = self.channels.get_mut(&ch) {
                            ids.retain(|x| *x != id);
                            if ids.is_empty() {
                                self.channels.remove(&ch);
                            }
                        }
                    }
                }
                out.advice += 1;
            }
        }
        if over(self.grants.len(), max_grants) {
            let mut by_age: Vec<(bool, Ts, String)> = self
                .grants
                .iter()
                .map(|(id, g)| (!g.revoked, g.ts, id.clone()))
                .collect();
            by_age.sort_unstable();
            for (active, _, id) in by_age.into_iter().take(self.grants.len() - max_grants) {
                if let Some(g) = self.grants.remove(&id) {
                    if active {
                        self.hold(g.grantee_type, &g.grantee, &g.resource, -1);
                    }
                }
                out.grants += 1;
            }
            self.changed(HoldingChange::Forgotten);
        }
        if over(self.sightings.len(), max_principals) {
            let mut by_age: Vec<(Ts, String)> = self
                .sightings
                .iter()
                .map(|(p, l)| (l.last().map_or(Ts(i64::MIN), |s| s.ts), p.clone()))
                .collect();
            by_age.sort_unstable();
            for (_, p) in by_age
                .into_iter()
                .take(self.sightings.len() - max_principals)
            {
                self.sightings.remove(&p);
                out.sightings += 1;
            }
        }
        out
    }

    /// How many pieces of advice, grants and principals with sightings are kept.
    pub fn sizes(&self) -> (usize, usize, usize) {
        (self.advice.len(), self.grants.len(), self.sightings.len())
    }

    /// A grant by id.
    pub fn grant(&self, grant_id: &str) -> Option<&GrantRecord> {
        self.grants.get(grant_id)
    }

    /// The changes to who holds what since the last call, oldest first.
    pub fn take_holding_changes(&mut self) -> Vec<HoldingChange> {
        std::mem::take(&mut self.changes)
    }

    /// Whether anything changed who holds what since the last
    /// [`Model::take_holding_changes`].
    #[inline]
    pub fn holdings_changed(&self) -> bool {
        !self.changes.is_empty()
    }

    fn changed(&mut self, c: HoldingChange) {
        if self.changes.len() >= MAX_HOLDING_CHANGES {
            self.changes.clear();
            self.changes.push(HoldingChange::Forgotten);
        }
        if self.changes.last() != Some(&HoldingChange::Forgotten) {
            self.changes.push(c);
        }
    }

    /// Records a grant. Returns false if the same grant id is already active
    /// (a replayed line), in which case nothing changes.
    pub fn record_grant(&mut self, g: &Grant, ts: Ts) -> bool {
        if self.grants.get(&g.grant_id).is_some_and(|r| !r.revoked) {
            return false;
        }
        self.hold(g.grantee_type, &g.grantee, &g.resource, 1);
        self.changed(HoldingChange::Resource(g.resource.clone()));
        self.grants.insert(
            g.grant_id.clone(),
            GrantRecord {
                actor: g.actor.clone(),
                grantee: g.grantee.clone(),
                grantee_type: g.grantee_type,
                resource: g.resource.clone(),
                role: g.role.clone(),
                ts,
                revoked: false,
            },
        );
        true
    }

    /// Marks a grant revoked. Returns false if it was unknown or already revoked.
    pub fn record_revoke(&mut self, grant_id: &str) -> bool {
        match self.grants.get_mut(grant_id) {
            Some(g) if !g.revoked => {
                g.revoked = true;
                let (t, who, what) = (g.grantee_type, g.grantee.clone(), g.resource.clone());
                self.hold(t, &who, &what, -1);
                self.changed(HoldingChange::Resource(what));
                true
            }
            _ => false,
        }
    }

    /// Whether `member` is in `group`.
    pub fn is_member(&self, group: &str, member: &str) -> bool {
        self.members.get(group).is_some_and(|m| m.contains(member))
    }

    /// Adds a member. Returns false if they were already in the group.
    pub fn add_member(&mut self, group: &str, member: &str) -> bool {
        let added = self
            .members
            .entry(group.to_owned())
            .or_default()
            .insert(member.to_owned());
        if added {
            self.groups_of
                .entry(member.to_owned())
                .or_default()
                .insert(group.to_owned());
            self.changed(HoldingChange::Membership {
                group: group.to_owned(),
                member: member.to_owned(),
            });
        }
        added
    }

    /// Removes a member. Returns false if they were not in the group.
    pub fn remove_member(&mut self, group: &str, member: &str) -> bool {
        let removed = self
            .members
            .get_mut(group)
            .is_some_and(|m| m.remove(member));
        if removed {
            if let Some(gs) = self.groups_of.get_mut(member) {
                gs.remove(group);
                if gs.is_empty() {
                    self.groups_of.remove(member);
                }
            }
            self.changed(HoldingChange::Membership {
                group: group.to_owned(),
                member: member.to_owned(),
            });
        }
        removed
    }

    /// The known members of a group, sorted.
    pub fn members_of(&self, group: &str) -> impl Iterator<Item = &str> {
        self.members
            .get(group)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// The resources a group holds through active grants, sorted.
    pub fn group_resources(&self, group: &str) -> BTreeSet<&str> {
        self.held[1]
            .get(group)
            .into_iter()
            .flat_map(|m| m.keys().map(String::as_str))
            .collect()
    }

    /// Registers advice. A repeated id keeps its first record.
    pub fn record_advice(&mut self, a: &Advice, ts: Ts) {
        if self.advice.contains_key(&a.advice_id) {
            return;
        }
        if let Some(ch) = &a.channel {
            self.channels
                .entry(ch.clone())
                .or_default()
                .push(a.advice_id.clone());
        }
        if let Some(who) = &a.requested_by {
            self.record_sighting(who, &a.advice_id, ts, SawHow::Requested);
        }
        self.advice.insert(
            a.advice_id.clone(),
            AdviceRecord {
                advice_id: a.advice_id.clone(),
                agent: a.agent.clone(),
                ts,
                requested_by: a.requested_by.clone(),
                channel: a.channel.clone(),
                published: a.published,
                recommends: a.recommends.clone(),
                summary: a.summary.clone(),
                verified: None,
                agent_approvals: Vec::new(),
            },
        );
    }

    /// Records an approval. `human` says whether the verifier counts as a human
    /// reviewer; only the earliest human approval is kept. Approvals of unknown
    /// advice are dropped (the advice is what we trace to).
    pub fn record_verification(&mut self, advice_id: &str, verifier: &str, ts: Ts, human: bool) {
        let Some(a) = self.advice.get_mut(advice_id) else {
            return;
        };
        if human {
            if a.verified.as_ref().is_none_or(|(at, _)| ts < *at) {
                a.verified = Some((ts, verifier.to_owned()));
            }
        } else {
            a.agent_approvals.push((ts, verifier.to_owned()));
        }
    }

    /// Records that `principal` saw `advice_id`.
    pub fn record_sighting(&mut self, principal: &str, advice_id: &str, ts: Ts, how: SawHow) {
        let list = self.sightings.entry(principal.to_owned()).or_default();
        if list.iter().any(|s| s.advice_id == advice_id && s.ts == ts) {
            return;
        }
        list.push(Sighting {
            advice_id: advice_id.to_owned(),
            ts,
            how,
        });
        list.sort_by_key(|s| s.ts);
        if list.len() > MAX_SIGHTINGS_PER_PRINCIPAL {
            let excess = list.len() - MAX_SIGHTINGS_PER_PRINCIPAL;
            list.drain(..excess);
        }
    }

    /// Drops sightings older than `horizon`; they can no longer explain a grant.
    pub fn expire_sightings(&mut self, horizon: Ts) {
        self.sightings.retain(|_, list| {
            list.retain(|s| s.ts >= horizon);
            !list.is_empty()
        });
    }

    /// A piece of advice by id.
    pub fn advice(&self, advice_id: &str) -> Option<&AdviceRecord> {
        self.advice.get(advice_id)
    }

    /// What `principal` saw, oldest first.
    pub fn sightings(&self, principal: &str) -> &[Sighting] {
        self.sightings
            .get(principal)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Advice whose id appears as a token in `text` (a grant's reference).
    pub fn advice_cited_by_id<'a>(
        &'a self,
        text: &'a str,
    ) -> impl Iterator<Item = &'a AdviceRecord> + 'a {
        let mut seen = HashSet::new();
        text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
            .map(|t| t.trim_end_matches(['.', ':']))
            .filter(|t| !t.is_empty())
            .filter_map(|t| self.advice.get(t))
            .filter(move |a| seen.insert(a.advice_id.as_str()))
    }

    /// Advice posted in a channel that `text` mentions.
    pub fn advice_cited_by_channel<'a>(
        &'a self,
        text: &'a str,
    ) -> impl Iterator<Item = &'a AdviceRecord> + 'a {
        self.channels
            .iter()
            .filter(move |(ch, _)| !ch.is_empty() && text.contains(ch.as_str()))
            .flat_map(|(_, ids)| ids.iter())
            .filter_map(|id| self.advice.get(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advice(id: &str, channel: Option<&str>) -> Advice {
        Advice {
            advice_id: id.into(),
            agent: "agent:helper".into(),
            requested_by: Some("bob".into()),
            channel: channel.map(Into::into),
            published: true,
            recommends: vec![],
            summary: None,
        }
    }

    #[test]
    fn references_cite_advice_by_id_token_not_substring() {
        let mut m = Model::default();
        m.record_advice(&advice("adv-7731", Some("forum/infra-q-4512")), Ts(0));
        m.record_advice(&advice("adv-77", None), Ts(0));
        let ids: Vec<_> = m
            .advice_cited_by_id("see https://kb/x?advice=adv-7731.")
            .map(|a| a.advice_id.clone())
            .collect();
        assert_eq!(ids, ["adv-7731"]);
        let by_channel: Vec<_> = m
            .advice_cited_by_channel("per forum/infra-q-4512")
            .map(|a| a.advice_id.clone())
            .collect();
        assert_eq!(by_channel, ["adv-7731"]);
        assert_eq!(m.sightings("bob")[0].how, SawHow::Requested);
    }

    #[test]
    fn only_the_earliest_human_verification_is_kept_and_agents_do_not_count() {
        let mut m = Model::default();
        m.record_advice(&advice("a1", None), Ts(0));
        m.record_verification("a1", "agent:reviewer", Ts(5), false);
        assert!(m.advice("a1").unwrap().verified.is_none());
        m.record_verification("a1", "carol", Ts(20), true);
        m.record_verification("a1", "dave", Ts(10), true);
        let a = m.advice("a1").unwrap();
        assert_eq!(a.verified, Some((Ts(10), "dave".into())));
        assert!(a.verified_by(Ts(9)).is_none());
        assert!(a.verified_by(Ts(10)).is_some());
        assert_eq!(a.agent_approvals.len(), 1);
    }

    #[test]
    fn duplicate_grants_and_memberships_are_idempotent() {
        let mut m = Model::default();
        let g = Grant {
            grant_id: "g1".into(),
            actor: "alice".into(),
            grantee: "eng".into(),
            grantee_type: GranteeType::Group,
            resource: "r".into(),
            role: None,
            reference: None,
            actor_type: None,
            target: None,
        };
        assert!(m.record_grant(&g, Ts(1)));
        assert!(!m.record_grant(&g, Ts(1)));
        assert_eq!(
            m.group_resources("eng").into_iter().collect::<Vec<_>>(),
            ["r"]
        );
        assert!(m.record_revoke("g1"));
        assert!(!m.record_revoke("g1"));
        assert!(m.group_resources("eng").is_empty());
        assert!(m.add_member("eng", "carol"));
        assert!(!m.add_member("eng", "carol"));
        assert!(m.remove_member("eng", "carol"));
        assert!(!m.is_member("eng", "carol"));
    }

    #[test]
    fn every_change_of_holdings_is_recorded_once_and_the_record_stays_bounded() {
        let mut m = Model::default();
        let g = Grant {
            grant_id: "g1".into(),
            actor: "hr".into(),
            grantee: "eng".into(),
            grantee_type: GranteeType::Group,
            resource: "r".into(),
            role: None,
            reference: None,
            actor_type: None,
            target: None,
        };
        m.record_grant(&g, Ts(1));
        m.record_grant(&g, Ts(1));
        m.add_member("eng", "carol");
        m.add_member("eng", "carol");
        m.record_revoke("g1");
        m.record_revoke("g1");
        m.remove_member("eng", "carol");
        m.remove_member("eng", "carol");
        let member = || HoldingChange::Membership {
            group: "eng".into(),
            member: "carol".into(),
        };
        assert_eq!(
            m.take_holding_changes(),
            [
                HoldingChange::Resource("r".into()),
                member(),
                HoldingChange::Resource("r".into()),
                member(),
            ],
            "only what changed, in order"
        );
        assert!(!m.holdings_changed());
        for i in 0..MAX_HOLDING_CHANGES + 10 {
            m.add_member("eng", &format!("p{i}"));
        }
        assert_eq!(m.take_holding_changes(), [HoldingChange::Forgotten]);
    }

    #[test]
    fn held_reach_follows_grants_groups_and_revokes_and_survives_a_round_trip() {
        let mut m = Model::default();
        let grant = |id: &str, grantee: &str, t: GranteeType, r: &str| Grant {
            grant_id: id.into(),
            actor: "hr".into(),
            grantee: grantee.into(),
            grantee_type: t,
            resource: r.into(),
            role: None,
            reference: None,
            actor_type: None,
            target: None,
        };
        m.record_grant(&grant("g1", "infra", GranteeType::Group, "k8s/prod"), Ts(1));
        m.record_grant(&grant("g2", "alice", GranteeType::User, "wiki"), Ts(1));
        // A user and a group of the same name do not share grants.
        m.record_grant(&grant("g3", "alice", GranteeType::Group, "secret"), Ts(1));
        m.add_member("infra", "alice");
        assert_eq!(
            m.held_reach("alice").into_iter().collect::<Vec<_>>(),
            ["k8s/prod", "wiki"]
        );
        assert_eq!(m.how_held("alice", "k8s/prod"), Some(Some("infra")));
        assert_eq!(m.how_held("alice", "wiki"), Some(None));
        assert!(!m.holds("bob", "k8s/prod"));
        let json = serde_json::to_string(&m).unwrap();
        let mut back: Model = serde_json::from_str(&json).unwrap();
        back.rebuild_indexes();
        assert_eq!(back.held_reach("alice"), m.held_reach("alice"));
        assert_eq!(back.holders("k8s/prod").how("alice"), Some(Some("infra")));
        m.record_revoke("g1");
        assert!(!m.holds("alice", "k8s/prod"));
        assert!(m.holders("k8s/prod").is_empty());
        // Two grants of one resource to one grantee: it stays held until both go.
        m.record_grant(&grant("g4", "bob", GranteeType::User, "db"), Ts(2));
        m.record_grant(&grant("g5", "bob", GranteeType::User, "db"), Ts(2));
        m.record_revoke("g4");
        assert_eq!(m.holders("db").how("bob"), Some(None));
        m.record_revoke("g5");
        assert!(m.holders("db").is_empty());
        m.remove_member("infra", "alice");
        assert_eq!(m.groups_of("alice").count(), 0);
    }

    #[test]
    fn caps_forget_the_oldest_advice_revoked_grants_first_and_idle_sightings() {
        let mut m = Model::default();
        for i in 0..100 {
            m.record_advice(&advice(&format!("a{i}"), Some(&format!("ch{i}"))), Ts(i));
            let g = Grant {
                grant_id: format!("g{i}"),
                actor: "x".into(),
                grantee: format!("u{i}"),
                grantee_type: GranteeType::User,
                resource: "r".into(),
                role: None,
                reference: None,
                actor_type: None,
                target: None,
            };
            m.record_grant(&g, Ts(i));
            m.record_sighting(&format!("p{i}"), "a0", Ts(i), SawHow::Viewed);
        }
        m.record_revoke("g99");
        let e = m.enforce_caps(10, 10, 10);
        // Each cap forgets down to itself; sightings of the 100 requesters too.
        assert_eq!((e.advice, e.grants), (90, 90));
        assert_eq!(m.sizes().0, 10);
        assert!(m.advice("a99").is_some() && m.advice("a0").is_none());
        assert_eq!(
            m.advice_cited_by_channel("see ch0").count(),
            0,
            "the channel index forgets too"
        );
        assert!(
            m.grant("g99").is_none(),
            "a revoked grant goes before any active one"
        );
        assert!(m.holds("u98", "r") && !m.holds("u5", "r"));
        assert!(m.sightings("p99").len() == 1 && m.sightings("p0").is_empty());
        assert_eq!(
            m.enforce_caps(10, 10, 10),
            Evicted::default(),
            "nothing more once within the caps"
        );
    }

    #[test]
    fn sightings_expire_and_stay_bounded() {
        let mut m = Model::default();
        for i in 0..(MAX_SIGHTINGS_PER_PRINCIPAL as i64 + 10) {
            m.record_sighting("alice", &format!("a{i}"), Ts(i), SawHow::Viewed);
        }
        assert_eq!(m.sightings("alice").len(), MAX_SIGHTINGS_PER_PRINCIPAL);
        m.expire_sightings(Ts(1_000_000));
        assert!(m.sightings("alice").is_empty());
    }
}
