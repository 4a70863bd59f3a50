//! Privilege expansion: `reach_expansion` and `grant_expansion`.
//!
//! - reach_expansion: every successful access to a resource new to the engineer
//!   scores `(tier weight + rarity weight) x (1 - peer fraction) x (1 - org
//!   fraction / 2)`, cut
//!   by `held_factor` when they hold a grant for it. The distinct new resources
//!   of a sliding event-time window (short and long) are summed; the sum must
//!   reach `max(floor, mean + sigma x std)` of what a normal window of this
//!   engineer's work brings (their peers' when they have little history).
//! - grant_expansion: a grant or membership add, judged before anyone uses it:
//!   over the engineers it affects, the sum of `tier weight x (1 - share of
//!   their peers holding it)` for resources new to them. A group grant opening
//!   a sensitive system to everyone scores its blast radius.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::baseline::{Interner, Novel};
use super::peers::PeerModel;
use super::reach::Reach;
use crate::event::{Key, Ts};
use crate::finding::{Finding, FindingKind, Severity, finding_id};
use crate::model::{Holders, HoldingChange, Model, Pattern, Sensitivity, Tier};

/// The detection hyper-parameters (`models/detection.toml`, `[detection]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionConfig {
    /// Short sliding window.
    #[serde(with = "humantime_serde_compat")]
    pub short_window: Duration,
    /// Long sliding window.
    #[serde(with = "humantime_serde_compat")]
    pub long_window: Duration,
    /// Least novelty of a short window that can alert.
    pub short_floor: f64,
    /// Least novelty of a long window that can alert.
    pub long_floor: f64,
    /// Standard deviations above normal a window must be.
    pub sigma: f64,
    /// Closed windows of their own before an engineer is judged by their own spread.
    pub min_windows: u32,
    /// Added to the tier weight of a new resource, so rarity counts on its own.
    pub rarity_weight: f64,
    /// Novelty multiplier for resources the engineer holds a grant for.
    pub held_factor: f64,
    /// Groups larger than this are not used as peer groups.
    pub max_peer_group: usize,
    /// Least grant-expansion score that alerts.
    pub grant_threshold: f64,
    /// Event time before expansion findings start (unless trained).
    #[serde(with = "humantime_serde_compat")]
    pub warmup: Duration,
    /// Accesses per engineer between peer-group refits.
    pub refit_every: u64,
    /// Most engineers k-means is fitted on (the rest are assigned).
    pub peer_sample: usize,
    /// Accesses an engineer needs before being clustered.
    pub min_events_for_peers: u64,
    /// Actors whose changes are routine provisioning.
    pub provisioners: Vec<Pattern>,
    /// An actor that changed the memberships of at least this many different
    /// people and never accessed a resource itself is a provisioner too.
    pub provisioner_min_people: usize,
    /// A member joining a group gains nothing new in what at least this share
    /// of the group's members use.
    pub group_routine_share: f64,
    /// This many distinct new resources in one short window, each scoring at
    /// least `burst_min_score`, are a sudden expansion even below the threshold.
    pub burst_count: usize,
    /// Least novelty of a resource counted towards `burst_count` and
    /// `long_burst_count`.
    pub burst_min_score: f64,
    /// This many distinct new resources in one long window, each scoring at
    /// least `burst_min_score`, are a slow exploration even below the
    /// threshold. 0 turns it off.
    pub long_burst_count: usize,
}

mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
    }
}

/// The model definition shipped with reachguard.
pub const MODEL_DEFINITION: &str = include_str!("../../models/detection.toml");

impl Default for DetectionConfig {
    fn default() -> Self {
        toml::from_str(MODEL_DEFINITION).expect("models/detection.toml is valid")
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Peer context of one engineer, for evidence.
#[derive(Debug, Clone, Default)]
struct PeerInfo {
    cluster: Option<u32>,
    cluster_size: usize,
    /// The small groups used as peers, by number ([`Groups`]).
    groups: SmallGroups,
}

/// An engineer's small groups, as `(group number, members)` in name order
/// (an engineer is in a few; kept inline).
type SmallGroups = smallvec::SmallVec<[(u32, u32); 4]>;

/// Cluster members a grant's peer share is judged on.
const CLUSTER_SAMPLE: usize = 200;

/// How many of each peer group hold one resource, as `(members, holding)`:
/// counted once per grant judgement, not once per engineer it affects.
#[derive(Debug, Default)]
struct HoldCounts {
    /// By cluster, over its first [`CLUSTER_SAMPLE`] members.
    clusters: rustc_hash::FxHashMap<u32, (usize, usize)>,
    /// By small group number.
    groups: rustc_hash::FxHashMap<u32, (usize, usize)>,
}

/// The expansion detector: baselines, peers, rules.
#[derive(Debug, Clone)]
pub struct Expansion {
    /// Baselines, windows and peer groups (persisted).
    pub reach: Reach,
    cfg: DetectionConfig,
    max_resources: usize,
    /// Engineers' groups, groups' use of resources and resources' holders,
    /// by number.
    groups: Groups,
    /// The people each actor changed memberships of, to recognise
    /// provisioners by behaviour (capped per actor and in actors).
    changed_by: rustc_hash::FxHashMap<String, rustc_hash::FxHashSet<String>>,
}

/// Most actors whose membership changes are remembered.
const MAX_MEMBERSHIP_ACTORS: usize = 10_000;

/// The grant model by number, for the path of a resource new to an engineer
/// (one access in ten): which groups the engineer is in, the small ones'
/// sizes, how many of their members used each resource and who holds the
/// resource are then read by index, not looked up by name in the grant
/// model, whose tables outgrow the cache in a large organisation.
///
/// Kept in step with the grant model by [`Expansion::follow`], which reads
/// the model's own record of its changes, and with baselines by
/// [`Expansion::on_access`]; forgotten whole when principals are evicted or
/// grants forgotten ([`Expansion::forget_remembered`]).
#[derive(Debug, Clone, Default)]
struct Groups {
    /// Names of the groups numbered so far.
    names: Interner,
    /// By group number: its use of resources, once counted.
    usage: Vec<Option<GroupUsage>>,
    /// By principal id: their groups, once looked up.
    of: Vec<Option<Memberships>>,
    /// By resource id: who holds it, once looked up.
    holding: Vec<Option<Holding>>,
    /// The groups of an engineer without an id, looked up each time.
    scratch: Memberships,
}

/// The groups one engineer is in.
#[derive(Debug, Clone, Default)]
struct Memberships {
    /// All of them, by number, sorted.
    all: smallvec::SmallVec<[u32; 4]>,
    /// Those used as peers ([`Expansion::small_groups`]), in name order.
    small: SmallGroups,
}

/// Who holds one resource, by number.
#[derive(Debug, Clone, Default)]
struct Holding {
    /// Principal ids holding it directly, sorted.
    users: smallvec::SmallVec<[u32; 2]>,
    /// Group numbers holding it, sorted.
    groups: smallvec::SmallVec<[u32; 2]>,
    /// Some direct holder had no principal id when this was looked up.
    unresolved: bool,
    /// How many principals had an id then: once more have, an unresolved
    /// holder may be one of them, and it is looked up again.
    principals: usize,
}

/// Whether a group of `n` members is small enough to be peers (at most `max`).
fn is_small(n: usize, max: usize) -> bool {
    (2..=max).contains(&n)
}

/// Stores `value` at `index` of a table that grows as needed.
fn put<T: Clone>(table: &mut Vec<Option<T>>, index: u32, value: T) {
    let i = index as usize;
    if table.len() <= i {
        table.resize(i + 1, None);
    }
    table[i] = Some(value);
}

/// One small group's use of resources, for peer shares.
#[derive(Debug, Clone)]
struct GroupUsage {
    /// Members, with a baseline or not.
    members: usize,
    /// Resource id -> members whose baseline has it.
    usage: rustc_hash::FxHashMap<u32, u32>,
}

impl Expansion {
    /// A detector over `reach` (empty or restored).
    pub fn new(reach: Reach, cfg: DetectionConfig) -> Self {
        Expansion {
            reach,
            cfg,
            max_resources: usize::MAX,
            groups: Groups::default(),
            changed_by: Default::default(),
        }
    }

    /// Notes that `actor` changed `member`'s group memberships.
    pub fn membership_changed_by(&mut self, actor: &str, member: &str) {
        let cap = self.cfg.provisioner_min_people;
        if let Some(people) = self.changed_by.get_mut(actor) {
            if people.len() < cap {
                people.insert(member.to_owned());
            }
        } else if self.changed_by.len() < MAX_MEMBERSHIP_ACTORS {
            self.changed_by.insert(
                actor.to_owned(),
                std::iter::once(member.to_owned()).collect(),
            );
        }
    }

    /// Whether `actor` provisions: named in `provisioners`, or it changed the
    /// memberships of `provisioner_min_people` different people and has never
    /// accessed a resource itself (an HR or IdP sync, whatever its name).
    pub fn is_provisioner(&self, actor: &str) -> bool {
        if self.cfg.provisioners.iter().any(|p| p.matches(actor)) {
            return true;
        }
        let many = self
            .changed_by
            .get(actor)
            .is_some_and(|p| p.len() >= self.cfg.provisioner_min_people.max(1));
        many && self
            .reach
            .principals
            .get(actor)
            .and_then(|id| self.reach.baselines.get(id))
            .is_none_or(|b| b.events == 0)
    }

    /// Of `resources` a member gains by joining `group`, those its current
    /// members do not routinely use (fewer than `group_routine_share` of them
    /// have it in their baseline): only those are new for someone joining it.
    /// A group nobody is in yet keeps them all.
    pub fn unusual_for_group<'r>(
        &self,
        group: &str,
        resources: &[&'r str],
        model: &Model,
    ) -> Vec<&'r str> {
        const SAMPLE: usize = 256;
        let n = model.group_size(group);
        if n == 0 || resources.is_empty() {
            return resources.to_vec();
        }
        let step = n.div_ceil(SAMPLE).max(1);
        let rids: Vec<Option<u32>> = resources
            .iter()
            .map(|r| self.reach.resources.get(r))
            .collect();
        let mut using = vec![0usize; resources.len()];
        let mut sampled = 0usize;
        for m in model.members_of(group).step_by(step) {
            sampled += 1;
            let Some(b) = self
                .reach
                .principals
                .get(m)
                .and_then(|id| self.reach.baselines.get(id))
            else {
                continue;
            };
            for (i, rid) in rids.iter().enumerate() {
                if rid.is_some_and(|r| b.count(r) > 0) {
                    using[i] += 1;
                }
            }
        }
        let least = self.cfg.group_routine_share * sampled as f64;
        resources
            .iter()
            .zip(using)
            .filter(|(_, u)| (*u as f64) < least)
            .map(|(r, _)| *r)
            .collect()
    }

    /// Brings what is remembered by number in step with the changes made to
    /// `model` since the last call: the model is the one record of who holds
    /// what, and this only a cache of it by number.
    pub fn follow(&mut self, model: &mut Model) {
        for c in model.take_holding_changes() {
            match c {
                HoldingChange::Resource(r) => self.holders_changed(&r),
                HoldingChange::Membership { group, member } => {
                    self.membership_changed(&group, &member, model)
                }
                HoldingChange::Forgotten => self.forget_remembered(),
            }
        }
    }

    /// Forgets everything remembered by number: after principals were
    /// evicted (ids may change, baselines went) or the model forgot grants
    /// (holders changed, and the names of groups numbered for them would
    /// otherwise pile up).
    pub fn forget_remembered(&mut self) {
        self.groups = Groups::default();
    }

    /// Follows a change of `group`'s membership (`member` joined or left),
    /// made in `model` already: the group's use of resources is counted
    /// again, and the small groups of the engineers it concerns looked up
    /// again.
    fn membership_changed(&mut self, group: &str, member: &str, model: &Model) {
        let Groups {
            names, usage, of, ..
        } = &mut self.groups;
        if let Some(slot) = names.get(group).and_then(|g| usage.get_mut(g as usize)) {
            *slot = None;
        }
        let mut forget = |who: &str| {
            if let Some(slot) = self
                .reach
                .principals
                .get(who)
                .and_then(|p| of.get_mut(p as usize))
            {
                *slot = None;
            }
        };
        forget(member);
        // Its other members' small groups change only if it is small now or
        // was (one member more or fewer) before.
        if model.group_size(group) <= self.cfg.max_peer_group + 1 {
            model.members_of(group).for_each(forget);
        }
    }

    /// The small groups `principal` is in (those used as peers), with their
    /// sizes, in name order, looked up by name.
    fn small_groups<'m>(
        &self,
        principal: &str,
        model: &'m Model,
    ) -> impl Iterator<Item = (&'m str, usize)> {
        let max = self.cfg.max_peer_group;
        model
            .groups_of(principal)
            .map(|g| (g, model.group_size(g)))
            .filter(move |(_, n)| is_small(*n, max))
    }

    /// The groups `principal` is in, by number, remembered for `pid`.
    fn memberships(&mut self, principal: &str, pid: Option<u32>, model: &Model) -> &Memberships {
        let known = pid.is_some_and(|p| matches!(self.groups.of.get(p as usize), Some(Some(_))));
        if !known {
            let mut found = Memberships::default();
            for g in model.groups_of(principal) {
                let id = self.groups.names.intern(g);
                found.all.push(id);
                let n = model.group_size(g);
                if is_small(n, self.cfg.max_peer_group) {
                    found.small.push((id, n as u32));
                }
            }
            found.all.sort_unstable();
            match pid {
                Some(p) => put(&mut self.groups.of, p, found),
                None => self.groups.scratch = found,
            }
        }
        match pid {
            Some(p) => self.groups.of[p as usize]
                .as_ref()
                .expect("remembered above"),
            None => &self.groups.scratch,
        }
    }

    /// Who holds `resource` (interned as `rid`), remembered.
    fn holding(&mut self, resource: &str, rid: u32, model: &Model) -> &Holding {
        let principals = self.reach.principals.len();
        let known = match self.groups.holding.get(rid as usize) {
            Some(Some(h)) => !h.unresolved || h.principals == principals,
            _ => false,
        };
        if !known {
            let holders = model.holders(resource);
            let mut h = Holding {
                principals,
                ..Holding::default()
            };
            for u in holders.users() {
                match self.reach.principals.get(u) {
                    Some(p) => h.users.push(p),
                    None => h.unresolved = true,
                }
            }
            h.users.sort_unstable();
            h.groups = holders
                .groups()
                .map(|g| self.groups.names.intern(g))
                .collect();
            h.groups.sort_unstable();
            put(&mut self.groups.holding, rid, h);
        }
        self.groups.holding[rid as usize]
            .as_ref()
            .expect("remembered above")
    }

    /// Whether `principal` (`pid`) holds `resource` (`rid`), directly or
    /// through a group: [`Model::holds`], by number.
    fn holds(
        &mut self,
        principal: &str,
        pid: u32,
        resource: &str,
        rid: u32,
        model: &Model,
    ) -> bool {
        let h = self.holding(resource, rid, model);
        if h.users.binary_search(&pid).is_ok() {
            return true;
        }
        if h.groups.is_empty() {
            return false;
        }
        self.memberships(principal, Some(pid), model);
        let (Some(Some(h)), Some(Some(mine))) = (
            self.groups.holding.get(rid as usize),
            self.groups.of.get(pid as usize),
        ) else {
            unreachable!("both remembered above")
        };
        h.groups.iter().any(|g| mine.all.binary_search(g).is_ok())
    }

    /// Follows a grant or revocation of `resource`, made in the model already.
    fn holders_changed(&mut self, resource: &str) {
        if let Some(slot) = self
            .reach
            .resources
            .get(resource)
            .and_then(|r| self.groups.holding.get_mut(r as usize))
        {
            *slot = None;
        }
    }

    /// A group's counted use of resources.
    fn group_usage(&self, group: u32) -> Option<&GroupUsage> {
        self.groups.usage.get(group as usize)?.as_ref()
    }

    /// A numbered group's name.
    fn group_name(&self, group: u32) -> &str {
        self.groups.names.name(group)
    }

    /// Counts the use of resources of those of `groups` not counted yet.
    fn learn_group_usage(&mut self, groups: &[(u32, u32)], model: &Model) {
        for &(g, _) in groups {
            if self.group_usage(g).is_some() {
                continue;
            }
            let mut e = GroupUsage {
                members: 0,
                usage: Default::default(),
            };
            for m in model.members_of(self.group_name(g)) {
                e.members += 1;
                let b = self
                    .reach
                    .principals
                    .get(m)
                    .and_then(|id| self.reach.baselines.get(id));
                for (r, _) in b.iter().flat_map(|b| b.resources.iter()) {
                    *e.usage.entry(r).or_default() += 1;
                }
            }
            put(&mut self.groups.usage, g, e);
        }
    }

    /// Keeps the counted groups of a member in step with their baseline:
    /// `learned` was added to it, `dropped` removed.
    fn count_group_usage(
        &mut self,
        groups: &[(u32, u32)],
        learned: Option<u32>,
        dropped: Option<u32>,
    ) {
        for &(g, _) in groups {
            let Some(Some(e)) = self.groups.usage.get_mut(g as usize) else {
                continue;
            };
            if let Some(r) = learned {
                *e.usage.entry(r).or_default() += 1;
            }
            if let Some(r) = dropped
                && let Some(n) = e.usage.get_mut(&r)
            {
                *n -= 1;
                if *n == 0 {
                    e.usage.remove(&r);
                }
            }
        }
    }

    /// Caps how many resources one baseline keeps.
    pub fn with_max_resources(mut self, n: usize) -> Self {
        self.max_resources = n;
        self
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &DetectionConfig {
        &self.cfg
    }

    fn warmed_up(&self, ts: Ts) -> bool {
        self.reach.trained_until.is_some()
            || self
                .reach
                .first_seen
                .is_some_and(|f| ts.0 >= f.0.saturating_add(ms(self.cfg.warmup)))
    }

    /// Refits peer groups when due (counted in accesses), deterministically.
    pub fn maybe_refit(&mut self, ts: Ts) {
        let n = self.reach.baselined();
        let p = &self.reach.peers;
        let due = match p.fitted_at {
            None => n >= 8,
            Some(_) => {
                self.reach.accesses.saturating_sub(p.fitted_accesses)
                    >= self.cfg.refit_every.saturating_mul(n as u64)
                    || n >= p.fitted_n * 2
            }
        };
        if due {
            self.refit(ts);
        }
    }

    /// Refits peer groups now.
    pub fn refit(&mut self, ts: Ts) {
        let mut m = PeerModel::fit(
            &self.reach.baselines,
            &self.reach.resources,
            self.reach.accesses,
            self.cfg.min_events_for_peers,
            self.cfg.peer_sample,
        );
        m.fitted_at = Some(ts);
        self.reach.peers = m;
    }

    /// The peer cluster of `pid` and its size.
    fn cluster_of(&self, pid: Option<u32>) -> (Option<u32>, usize) {
        let cluster = pid.and_then(|p| {
            self.reach
                .peers
                .cluster_of(p, &self.reach.baselines, &self.reach.resources)
        });
        let size = cluster.map_or(0, |c| self.reach.peers.clusters[c as usize].members.len());
        (cluster, size)
    }

    fn peer_info(&mut self, principal: &str, pid: Option<u32>, model: &Model) -> PeerInfo {
        let (cluster, cluster_size) = self.cluster_of(pid);
        PeerInfo {
            cluster,
            cluster_size,
            groups: self.memberships(principal, pid, model).small.clone(),
        }
    }

    /// Share of `principal`'s peers (cluster or small groups, best of them):
    /// `cluster_share` of the cluster, `group_share` of each small group.
    fn peer_share(
        &self,
        info: &PeerInfo,
        mut cluster_share: impl FnMut(u32, &super::peers::Cluster) -> Option<f64>,
        mut group_share: impl FnMut(u32) -> Option<f64>,
    ) -> f64 {
        let mut best: f64 = 0.0;
        if let Some(c) = info.cluster {
            let cl = &self.reach.peers.clusters[c as usize];
            if let Some(f) = cluster_share(c, cl) {
                best = best.max(f);
            }
        }
        for &(g, _) in &info.groups {
            if let Some(f) = group_share(g) {
                best = best.max(f);
            }
        }
        best
    }

    /// Share of `group`'s members other than `principal` for whom
    /// `pred(member name)` holds (`None` if it has no others).
    fn group_share_by_name(
        model: &Model,
        group: &str,
        principal: &str,
        pred: impl Fn(&str) -> bool,
    ) -> Option<f64> {
        let (mut others, mut yes) = (0usize, 0usize);
        for m in model.members_of(group).filter(|m| *m != principal) {
            others += 1;
            yes += usize::from(pred(m));
        }
        (others > 0).then(|| yes as f64 / others as f64)
    }

    /// Share of `principal`'s peers who used `resource`.
    fn peer_use(&self, principal: &str, pid: u32, rid: u32, info: &PeerInfo, model: &Model) -> f64 {
        let reach = &self.reach;
        let used = |id: u32| reach.baselines.get(id).is_some_and(|b| b.count(rid) > 0);
        self.peer_share(
            info,
            |c, cl| {
                // A cluster's members are the engineers assigned to it, so
                // this needs no walk over them (hundreds in a large org).
                let me = u32::from(reach.peers.assignment.get(&pid) == Some(&c));
                let others = cl.members.len() as u32 - me;
                (others > 0).then(|| {
                    f64::from(cl.usage.get(&rid).copied().unwrap_or(0)) / f64::from(others)
                })
            },
            |g| match self.group_usage(g) {
                // From the group's counts, less the engineer (`info.groups`
                // are groups they are in).
                Some(e) => {
                    let others = e.members.saturating_sub(1);
                    let all = e.usage.get(&rid).copied().unwrap_or(0);
                    let yes = all.saturating_sub(u32::from(used(pid)));
                    (others > 0).then(|| f64::from(yes) / others as f64)
                }
                None => Self::group_share_by_name(model, self.group_name(g), principal, |m| {
                    reach.principals.get(m).is_some_and(used)
                }),
            },
        )
    }

    /// Share of the peers of `principal` (interned as `pid`), who does not
    /// hold the resource `holders` describes, that hold it. `counts` memoises
    /// each peer group's count for this resource.
    fn peer_hold(
        &self,
        pid: Option<u32>,
        holders: Holders<'_>,
        info: &PeerInfo,
        counts: &mut HoldCounts,
        model: &Model,
    ) -> f64 {
        let reach = &self.reach;
        let HoldCounts { clusters, groups } = counts;
        self.peer_share(
            info,
            |c, cl| {
                let sample = &cl.members[..cl.members.len().min(CLUSTER_SAMPLE)];
                let (n, yes) = *clusters.entry(c).or_insert_with(|| {
                    let yes = sample
                        .iter()
                        .filter(|&&p| holders.held_by(reach.principals.name(p)))
                        .count();
                    (sample.len(), yes)
                });
                // They hold nothing here, so only the count of others changes.
                let n = n - usize::from(pid.is_some_and(|p| sample.contains(&p)));
                (n > 0).then(|| yes as f64 / n as f64)
            },
            |g| {
                let (n, yes) = *groups.entry(g).or_insert_with(|| {
                    let mut n = 0;
                    let yes = model
                        .members_of(self.group_name(g))
                        .inspect(|_| n += 1)
                        .filter(|m| holders.held_by(m))
                        .count();
                    (n, yes)
                });
                // `info.groups` are groups they are in, holding nothing here.
                let others = n.saturating_sub(1);
                (others > 0).then(|| yes as f64 / others as f64)
            },
        )
    }

    /// The thresholds a principal is judged by now, short and long window:
    /// `(threshold, normal mean, normal std, where the normal comes from)`.
    pub fn thresholds(&self, principal: &str) -> [(f64, f64, f64, &'static str); 2] {
        let pid = self.reach.principals.get(principal);
        let (cluster, _) = self.cluster_of(pid);
        let pid = pid.unwrap_or(u32::MAX);
        [
            self.threshold(pid, 0, cluster),
            self.threshold(pid, 1, cluster),
        ]
    }

    /// The peer group (cluster index and other members) and the small groups
    /// used as peers, of a principal.
    pub fn peers_of(
        &self,
        principal: &str,
        model: &Model,
    ) -> (Option<u32>, Vec<String>, Vec<(String, usize)>) {
        let (cluster, _) = self.cluster_of(self.reach.principals.get(principal));
        let members = cluster
            .map(|c| {
                self.reach.peers.clusters[c as usize]
                    .members
                    .iter()
                    .map(|&p| self.reach.principals.name(p).to_owned())
                    .filter(|n| n != principal)
                    .collect()
            })
            .unwrap_or_default();
        let groups = self
            .small_groups(principal, model)
            .map(|(g, n)| (g.to_owned(), n))
            .collect();
        (cluster, members, groups)
    }

    fn threshold(
        &self,
        pid: u32,
        scale: usize,
        cluster: Option<u32>,
    ) -> (f64, f64, f64, &'static str) {
        let floor = [self.cfg.short_floor, self.cfg.long_floor][scale];
        let own = self.reach.baselines.get(pid).map(|b| b.windows.get(scale));
        let (mean, std, from) = match (own, cluster) {
            (Some(w), _) if w.n >= self.cfg.min_windows => (w.mean, w.std(), "own history"),
            (_, Some(c)) => {
                let (m, s) = self.reach.peers.clusters[c as usize].window_mean_std[scale];
                (m, s, "peer group")
            }
            _ => (0.0, 0.0, "floor"),
        };
        ((mean + self.cfg.sigma * std).max(floor), mean, std, from)
    }

    /// Learns from a successful access and judges the engineer's new reach.
    pub fn on_access(
        &mut self,
        principal: &str,
        resource: &str,
        key: Option<Key>,
        ts: Ts,
        model: &Model,
        sensitivity: &Sensitivity,
    ) -> Option<Finding> {
        let (pid, rid) = self.reach.ids(principal, resource, key);
        let slot = self.reach.baselines.get(pid).map(|b| b.slot(rid));
        let known = matches!(slot, Some(Ok(_)));
        // Peers are looked up once per new resource and reused for the
        // threshold below.
        if !known {
            self.reach.place_newcomer(pid);
        }
        let info = (!known).then(|| self.peer_info(principal, Some(pid), model));
        if let Some(info) = &info {
            self.learn_group_usage(&info.groups, model);
        }
        let score = match &info {
            None => 0.0,
            Some(info) => {
                let pf = self.peer_use(principal, pid, rid, info, model);
                let of = self.reach.org_fraction(rid);
                let held = if self.holds(principal, pid, resource, rid, model) {
                    self.cfg.held_factor
                } else {
                    1.0
                };
                (sensitivity.tier_of(resource).weight() + self.cfg.rarity_weight)
                    * (1.0 - pf)
                    * (1.0 - 0.5 * of)
                    * held
            }
        };
        let lens = [ms(self.cfg.short_window), ms(self.cfg.long_window)];
        self.reach.count_access(ts);
        let warmed_up = self.warmed_up(ts);
        let (learned, b) = self
            .reach
            .learn_slotted(pid, rid, ts, self.max_resources, slot);
        // While the model is cold every access is new; those windows say
        // nothing about what is normal for this engineer and are not counted.
        if warmed_up {
            for (scale, len) in lens.iter().enumerate() {
                b.windows.observe(scale, ts, score, *len);
            }
        }
        // A baseline only gains or drops a resource new to them, and then
        // `info` has their groups.
        if let Some(info) = &info {
            self.count_group_usage(&info.groups, learned.new.then_some(rid), learned.dropped);
        }
        if score <= 0.0 {
            return None;
        }
        self.reach.push_novel(
            pid,
            Novel {
                ts,
                resource: rid,
                score,
            },
            lens[1],
        );
        if !warmed_up || self.reach.quiet_until.get(&pid).is_some_and(|q| ts < *q) {
            return None;
        }
        let info = info.expect("a scored access looked its peers up");
        for scale in 0..2 {
            let window = self.reach.window(pid, ts, lens[scale]);
            let sum: f64 = window.iter().map(|n| n.score).sum();
            let (threshold, mean, std, from) = self.threshold(pid, scale, info.cluster);
            // Many resources the peers do not use, within minutes (a burst)
            // or within the hour (an exploration), are an expansion even when
            // each weighs little: it need not wait for the sum.
            let count = [self.cfg.burst_count, self.cfg.long_burst_count][scale];
            let burst = count > 0
                && window
                    .iter()
                    .filter(|n| n.score >= self.cfg.burst_min_score)
                    .count()
                    >= count;
            if sum < threshold && !burst {
                continue;
            }
            self.reach
                .quiet_until
                .insert(pid, Ts(ts.0.saturating_add(lens[1])));
            return Some(self.reach_finding(
                principal,
                pid,
                ts,
                scale,
                &window,
                sum,
                (threshold, mean, std, from),
                &info,
                model,
                sensitivity,
            ));
        }
        None
    }

    #[allow(clippy::too_many_arguments)]
    fn reach_finding(
        &self,
        principal: &str,
        pid: u32,
        ts: Ts,
        scale: usize,
        window: &[Novel],
        sum: f64,
        (threshold, mean, std, from): (f64, f64, f64, &'static str),
        info: &PeerInfo,
        model: &Model,
        sensitivity: &Sensitivity,
    ) -> Finding {
        let len = [self.cfg.short_window, self.cfg.long_window][scale];
        let resources: Vec<serde_json::Value> = window
            .iter()
            .map(|n| {
                let name = self.reach.resources.name(n.resource);
                json!({
                    "resource": name, "tier": sensitivity.tier_of(name).as_str(), "score": round2(n.score),
                    "first_access": n.ts, "peer_fraction": round2(self.peer_use(principal, pid, n.resource, info, model)),
                    "org_fraction": round2(self.reach.org_fraction(n.resource)), "held": model.holds(principal, name),
                })
            })
            .collect();
        let mut tiers = std::collections::BTreeMap::<Tier, usize>::new();
        for n in window {
            *tiers
                .entry(sensitivity.tier_of(self.reach.resources.name(n.resource)))
                .or_default() += 1;
        }
        let tier_text = tiers
            .iter()
            .rev()
            .map(|(t, n)| format!("{n} {}", t.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let span_min = (ts.0 - window.first().map_or(ts.0, |n| n.ts.0)) as f64 / 60_000.0;
        let b = &self.reach.baselines[pid];
        // A finding is raised at the first crossing, so the ratio rarely grows
        // large; what the new reach touched says more about how bad it is.
        let ratio = sum / threshold;
        let critical = tiers.get(&Tier::Critical).copied().unwrap_or(0);
        let high = tiers.get(&Tier::High).copied().unwrap_or(0);
        let severity = if ratio >= 3.0 || critical >= 2 {
            Severity::Critical
        } else if ratio >= 1.5 || critical + high >= 2 {
            Severity::High
        } else {
            Severity::Medium
        };
        let summary = format!(
            "{principal} reached {} resources new to them in {:.0} minutes ({tier_text}), rarely used by their peers: novelty {:.0} against a normal {} window of {:.1} ± {:.1} (threshold {:.0}, from {from}).",
            window.len(),
            span_min.max(1.0),
            sum,
            humantime::format_duration(len),
            mean,
            std,
            threshold
        );
        let first = window.first().map_or(ts, |n| n.ts);
        Finding {
            finding_id: finding_id(
                FindingKind::ReachExpansion,
                &format!("{principal}@{}", first.0),
            ),
            kind: FindingKind::ReachExpansion,
            severity,
            ts,
            principals: vec![principal.to_owned()],
            grant_id: None,
            advice_id: None,
            resource: window
                .last()
                .map(|n| self.reach.resources.name(n.resource).to_owned()),
            score: round2(sum),
            summary,
            evidence: json!({
                "window": {"length": humantime::format_duration(len).to_string(), "from": first, "to": ts},
                "new_resources": resources,
                "novelty": round2(sum), "threshold": round2(threshold), "threshold_from": from,
                "normal_window": {"mean": round2(mean), "std": round2(std)},
                "baseline": {"events": b.events, "active_days": b.days, "distinct_resources": b.resources.len(), "since": b.first},
                "peers": {"cluster": info.cluster, "cluster_size": info.cluster_size,
                          "groups": info.groups.iter().map(|&(g, n)| json!({"group": self.group_name(g), "members": n})).collect::<Vec<_>>()},
            }),
            action: None,
        }
    }

    /// Judges a grant or membership add before it is applied. `affected` are
    /// the engineers gaining `resources`. Returns the finding, if it is one, and
    /// the expansion score (0 when nothing new is opened to anyone).
    #[allow(clippy::too_many_arguments)]
    pub fn on_grant(
        &mut self,
        key: &str,
        actor: &str,
        what: &str,
        affected: &[String],
        resources: &[&str],
        ts: Ts,
        model: &Model,
        sensitivity: &Sensitivity,
    ) -> (Option<Finding>, f64) {
        if affected.is_empty() || resources.is_empty() {
            return (None, 0.0);
        }
        let routine = self.is_provisioner(actor);
        // Large groups are judged on an even sample and scaled up.
        const SAMPLE: usize = 256;
        let step = affected.len().div_ceil(SAMPLE).max(1);
        let sample: Vec<&String> = affected.iter().step_by(step).collect();
        let scale = affected.len() as f64 / sample.len() as f64;
        let mut total = 0.0;
        let mut gained_by = 0usize;
        let mut per_resource: Vec<(String, Tier, usize, f64)> = resources
            .iter()
            .map(|r| (r.to_string(), sensitivity.tier_of(r), 0, 0.0))
            .collect();
        let holders: Vec<Holders<'_>> = resources.iter().map(|r| model.holders(r)).collect();
        let rids: Vec<Option<u32>> = resources
            .iter()
            .map(|r| self.reach.resources.get(r))
            .collect();
        let mut counts: Vec<HoldCounts> = resources.iter().map(|_| Default::default()).collect();
        for a in &sample {
            let pid = self.reach.principals.get(a);
            let info = self.peer_info(a, pid, model);
            let baseline = pid.and_then(|p| self.reach.baselines.get(p));
            let mut gained = false;
            for (i, pr) in per_resource.iter_mut().enumerate() {
                if holders[i].held_by(a) {
                    continue;
                }
                let used = baseline
                    .zip(rids[i])
                    .is_some_and(|(b, rid)| b.count(rid) > 0);
                if used {
                    continue;
                }
                let share = self.peer_hold(pid, holders[i], &info, &mut counts[i], model);
                let gain = pr.1.weight() * (1.0 - share);
                if gain > 0.0 {
                    gained = true;
                    pr.2 += 1;
                    pr.3 += share;
                    total += gain;
                }
            }
            gained_by += usize::from(gained);
        }
        let total = total * scale;
        if routine || !self.warmed_up(ts) || total < self.cfg.grant_threshold {
            return (None, total);
        }
        let ratio = total / self.cfg.grant_threshold;
        let severity = if ratio >= 10.0 {
            Severity::Critical
        } else if ratio >= 3.0 {
            Severity::High
        } else {
            Severity::Medium
        };
        let engineers = (gained_by as f64 * scale).round() as usize;
        let top_tier = per_resource.iter().map(|p| p.1).max().unwrap_or(Tier::Low);
        let summary = format!(
            "{actor} granted {what}: {} new to {engineers} engineer{} whose peers mostly do not hold it (blast radius {:.0}, threshold {:.0}).",
            if per_resource.len() == 1 {
                format!("{} ({})", per_resource[0].0, per_resource[0].1.as_str())
            } else {
                format!(
                    "{} resources (up to {})",
                    per_resource.len(),
                    top_tier.as_str()
                )
            },
            if engineers == 1 { "" } else { "s" },
            total,
            self.cfg.grant_threshold
        );
        let mut principals: Vec<String> = affected.iter().take(100).cloned().collect();
        principals.sort();
        (
            Some(Finding {
                finding_id: finding_id(FindingKind::GrantExpansion, key),
                kind: FindingKind::GrantExpansion,
                severity,
                ts,
                principals,
                grant_id: None,
                advice_id: None,
                resource: resources.first().map(|r| r.to_string()),
                score: round2(total),
                summary,
                evidence: json!({
                    "actor": actor, "affected_engineers": affected.len(), "engineers_gaining": engineers,
                    "sampled": sample.len(), "blast_radius": round2(total), "threshold": self.cfg.grant_threshold,
                    "resources": per_resource.iter().map(|(r, t, n, share)| json!({
                        "resource": r, "tier": t.as_str(), "new_to_sampled": n,
                        "mean_peer_share_holding": if *n > 0 { round2(share / *n as f64) } else { 0.0 },
                    })).collect::<Vec<_>>(),
                }),
                action: None,
            }),
            total,
        )
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{Detection, Engine, EngineConfig, Origin};
    use crate::event::{Body, Event, Grant, GranteeType, Membership, MembershipOp};
    use crate::model::Identities;

    const DAY: i64 = 86_400_000;
    const MIN: i64 = 60_000;

    fn settings() -> EngineConfig {
        EngineConfig {
            identities: Identities::new(vec![Pattern::new("agent:*").unwrap()]),
            sensitivity: Sensitivity::new(vec![
                (Pattern::new("vault/*").unwrap(), Tier::Critical),
                (Pattern::new("prod/*").unwrap(), Tier::High),
            ]),
            trace_window: Duration::from_secs(3600),
            detection: DetectionConfig {
                provisioners: vec![Pattern::new("hr").unwrap()],
                ..DetectionConfig::default()
            },
            limits: crate::detect::Limits::default(),
            min_confidence: 0.7,
        }
    }

    fn access(ts: i64, who: &str, what: &str) -> Event {
        Event::access(Ts(ts), who, what)
    }

    fn grant(ts: i64, id: &str, actor: &str, grantee: &str, group: bool, what: &str) -> Event {
        Event {
            ts: Ts(ts),
            id: None,
            body: Body::Grant(Grant {
                grant_id: id.into(),
                actor: actor.into(),
                grantee: grantee.into(),
                grantee_type: if group {
                    GranteeType::Group
                } else {
                    GranteeType::User
                },
                resource: what.into(),
                role: None,
                reference: None,
                actor_type: None,
                target: None,
            }),
        }
    }

    fn join(ts: i64, group: &str, who: &str) -> Event {
        Event {
            ts: Ts(ts),
            id: None,
            body: Body::Membership(Membership {
                actor: "hr".into(),
                group: group.into(),
                member: who.into(),
                op: MembershipOp::Add,
                grant_id: None,
                reference: None,
                actor_type: None,
                target: None,
            }),
        }
    }

    fn leave(ts: i64, group: &str, who: &str) -> Event {
        let mut ev = join(ts, group, who);
        if let Body::Membership(m) = &mut ev.body {
            m.op = MembershipOp::Remove;
        }
        ev
    }

    /// Two teams of six, each with a group holding its resources, and five
    /// days of each engineer using their team's resources.
    fn org() -> (Engine, i64) {
        let mut e = Engine::new(Model::default(), Reach::default(), &settings());
        let mut all = Vec::new();
        for team in ["a", "b"] {
            for i in 0..6 {
                all.push(join(0, &format!("team-{team}"), &format!("{team}{i}")));
            }
            for r in 0..4 {
                all.push(grant(
                    0,
                    &format!("g-{team}{r}"),
                    "hr",
                    &format!("team-{team}"),
                    true,
                    &format!("{team}/r{r}"),
                ));
            }
        }
        for day in 0..5 {
            for team in ["a", "b"] {
                for i in 0..6 {
                    for k in 0..8 {
                        let ts = day * DAY + 9 * 3_600_000 + (i * 8 + k) * 5 * MIN;
                        all.push(access(
                            ts,
                            &format!("{team}{i}"),
                            &format!("{team}/r{}", (i + k) % 4),
                        ));
                    }
                }
            }
        }
        for ev in &all {
            e.observe(ev, Origin::TRUSTED);
        }
        (e, 5 * DAY)
    }

    fn feed(e: &mut Engine, events: &[Event]) -> Vec<Detection> {
        events
            .iter()
            .flat_map(|ev| e.observe(ev, Origin::TRUSTED))
            .collect()
    }

    /// The share of `who`'s group peers who used `what`, from member names.
    fn group_use_by_name(e: &Engine, who: &str, what: &str) -> f64 {
        let (x, model) = (e.expansion(), e.model());
        let reach = &x.reach;
        let rid = reach.resources.get(what).unwrap();
        x.small_groups(who, model)
            .filter_map(|(g, _)| {
                Expansion::group_share_by_name(model, g, who, |m| {
                    reach
                        .principals
                        .get(m)
                        .and_then(|id| reach.baselines.get(id))
                        .is_some_and(|b| b.count(rid) > 0)
                })
            })
            .fold(0.0, f64::max)
    }

    /// The same share as the detector computes it, from the group's counts.
    fn group_use(e: &mut Engine, who: &str, what: &str) -> f64 {
        let model = e.model().clone();
        let x = &mut e.expansion;
        let pid = x.reach.principals.get(who).unwrap();
        let rid = x.reach.resources.get(what).unwrap();
        let info = x.peer_info(who, Some(pid), &model);
        let info = PeerInfo {
            cluster: None,
            ..info
        };
        x.learn_group_usage(&info.groups, &model);
        x.peer_use(who, pid, rid, &info, &model)
    }

    /// Both ways of counting, which must agree.
    fn shares(e: &mut Engine, who: &str, what: &str) -> (f64, f64) {
        (group_use(e, who, what), group_use_by_name(e, who, what))
    }

    #[test]
    fn counted_group_usage_gives_the_shares_names_give_and_follows_changes() {
        let limits = crate::detect::Limits {
            max_resources_per_principal: 3,
            ..crate::detect::Limits::default()
        };
        let cfg = EngineConfig {
            limits,
            ..settings()
        };
        let mut e = Engine::new(Model::default(), Reach::default(), &cfg);
        feed(
            &mut e,
            &[
                join(0, "team", "ann"),
                join(0, "team", "bob"),
                join(0, "team", "cy"),
            ],
        );
        feed(&mut e, &[access(1, "ann", "wiki"), access(1, "bob", "db")]);
        // cy has no baseline yet: of bob's two peers, ann used wiki.
        assert_eq!(shares(&mut e, "bob", "wiki"), (0.5, 0.5));
        // cy appears (counted as she learns) and uses wiki too.
        feed(&mut e, &[access(2, "cy", "wiki")]);
        assert_eq!(shares(&mut e, "bob", "wiki"), (1.0, 1.0));
        // Bob's own use is not his peers'.
        feed(&mut e, &[access(2, "bob", "wiki")]);
        assert_eq!(shares(&mut e, "bob", "wiki"), (1.0, 1.0));
        assert_eq!(shares(&mut e, "ann", "wiki"), (1.0, 1.0));
        // A membership change is seen at once: dan joins, never used wiki.
        feed(&mut e, &[join(3, "team", "dan"), access(3, "dan", "ci")]);
        assert_eq!(shares(&mut e, "bob", "wiki"), (2.0 / 3.0, 2.0 / 3.0));
        // Ann's baseline is full (three resources): wiki, used least, makes
        // room for two more, and is no longer hers.
        feed(&mut e, &[access(4, "ann", "ci"), access(4, "ann", "ci")]);
        feed(&mut e, &[access(4, "ann", "db"), access(4, "ann", "db")]);
        feed(&mut e, &[access(5, "ann", "repo")]);
        assert_eq!(e.reach().baselines[0].count(0), 0, "wiki dropped");
        assert_eq!(shares(&mut e, "bob", "wiki"), (1.0 / 3.0, 1.0 / 3.0));
        assert_eq!(shares(&mut e, "bob", "ci"), (2.0 / 3.0, 2.0 / 3.0));
        // cy leaves: the group is forgotten and counted again.
        feed(&mut e, &[leave(6, "team", "cy")]);
        let team = e.expansion.groups.names.get("team").unwrap();
        assert!(
            e.expansion.group_usage(team).is_none(),
            "forgotten on the change"
        );
        assert_eq!(shares(&mut e, "bob", "wiki"), (0.0, 0.0));
        assert_eq!(shares(&mut e, "bob", "ci"), (1.0, 1.0));
    }

    /// Groups by name, with their sizes.
    type Named = Vec<(String, usize)>;

    /// Everyone's remembered small groups, by name, and what looking them
    /// up by name gives now.
    fn remembered_groups(e: &Engine) -> Vec<(String, Named, Named)> {
        let x = &e.expansion;
        let reach = &x.reach;
        (0..reach.principals.len() as u32)
            .filter_map(|p| {
                let who = reach.principals.name(p);
                let kept = x.groups.of.get(p as usize)?.as_ref()?;
                let kept = kept
                    .small
                    .iter()
                    .map(|&(g, n)| (x.group_name(g).to_owned(), n as usize))
                    .collect();
                let now = x
                    .small_groups(who, &e.model)
                    .map(|(g, n)| (g.to_owned(), n))
                    .collect();
                Some((who.to_owned(), kept, now))
            })
            .collect()
    }

    #[test]
    fn remembered_small_groups_follow_every_membership_change() {
        let mut cfg = settings();
        cfg.detection.max_peer_group = 3;
        let mut e = Engine::new(Model::default(), Reach::default(), &cfg);
        let mut setup = vec![];
        for who in ["ann", "bob", "cy"] {
            setup.push(join(0, "team", who));
        }
        for who in ["ann", "bob", "cy", "dan"] {
            setup.push(join(0, "floor", who));
        }
        setup.extend([join(0, "pair", "ann"), join(0, "pair", "eve")]);
        feed(&mut e, &setup);
        let people = ["ann", "bob", "cy", "dan", "eve"];
        let changes = [
            // floor shrinks to three: small now, for its remaining members.
            leave(1, "floor", "dan"),
            // team grows to four: no longer small, for all of them.
            join(2, "team", "eve"),
            // pair grows to three, still small; its size changes for both.
            join(3, "pair", "dan"),
            // dan leaves pair: two again.
            leave(4, "pair", "dan"),
            // a leave of someone not in it changes nothing, and is harmless.
            leave(5, "pair", "zed"),
        ];
        for (i, change) in changes.into_iter().enumerate() {
            // Everyone looks their groups up (a new resource each).
            let t = i as i64 * 10 + 6;
            let looks: Vec<Event> = people
                .iter()
                .map(|w| access(t, w, &format!("r{t}")))
                .collect();
            feed(&mut e, &looks);
            let kept = remembered_groups(&e);
            assert_eq!(kept.len(), people.len(), "everyone's groups remembered");
            feed(&mut e, &[change]);
            for (who, kept, now) in remembered_groups(&e) {
                assert_eq!(kept, now, "{who}'s groups after change {i}");
            }
        }
        feed(&mut e, &people.map(|w| access(100, w, "r100")));
        let ann = remembered_groups(&e)
            .into_iter()
            .find(|(w, _, _)| w == "ann")
            .unwrap();
        assert_eq!(
            ann.1,
            [("floor".to_owned(), 3), ("pair".to_owned(), 2)],
            "floor small, team not"
        );
    }

    /// Asserts that whether each engineer holds each resource, as the
    /// detector remembers it, is what the model says by name now.
    fn assert_holders_remembered_right(e: &mut Engine, when: &str) {
        let (x, model) = e.expansion_mut();
        let people: Vec<String> = x.reach.principals.names().map(String::from).collect();
        let resources: Vec<String> = x.reach.resources.names().map(String::from).collect();
        for who in &people {
            let pid = x.reach.principals.get(who).unwrap();
            for what in &resources {
                let rid = x.reach.resources.get(what).unwrap();
                assert_eq!(
                    x.holds(who, pid, what, rid, model),
                    model.holds(who, what),
                    "{who} holding {what} {when}"
                );
            }
        }
    }

    #[test]
    fn remembered_holders_follow_grants_revocations_memberships_and_caps() {
        let mut cfg = settings();
        cfg.limits.max_grants = 4;
        let mut e = Engine::new(Model::default(), Reach::default(), &cfg);
        let revoke = |ts: i64, id: &str| Event {
            ts: Ts(ts),
            id: None,
            body: Body::Revoke(crate::event::Revoke {
                grant_id: id.into(),
                actor: "x".into(),
                reference: None,
            }),
        };
        // Ann is granted vault/a before she has an id.
        let mut evs = vec![
            grant(0, "g1", "x", "ann", false, "vault/a"),
            grant(0, "g2", "x", "team", true, "vault/b"),
            join(0, "team", "bob"),
        ];
        evs.extend(["vault/a", "vault/b", "vault/c"].map(|r| access(1, "dan", r)));
        evs.extend(["ann", "bob", "cy"].map(|w| access(1, w, "wiki")));
        feed(&mut e, &evs);
        assert_holders_remembered_right(&mut e, "at first");
        assert!(e.model().holds("ann", "vault/a") && e.model().holds("bob", "vault/b"));
        let steps = [
            ("cy joins the team", vec![join(2, "team", "cy")]),
            ("the team's grant revoked", vec![revoke(3, "g2")]),
            (
                "a grant to cy",
                vec![grant(4, "g3", "x", "cy", false, "vault/c")],
            ),
            // Eve is granted vault/a with no id yet, then appears.
            (
                "a grant to eve",
                vec![grant(5, "g4", "x", "eve", false, "vault/a")],
            ),
            ("eve appears", vec![access(6, "eve", "wiki")]),
            // Six grants, cap four: the revoked one and the oldest, Ann's, go.
            (
                "grants evicted",
                vec![
                    grant(7, "g5", "x", "dan", false, "wiki"),
                    grant(7, "g6", "x", "dan", false, "ci"),
                ],
            ),
        ];
        for (what, evs) in steps {
            feed(&mut e, &evs);
            assert_holders_remembered_right(&mut e, &format!("after {what}"));
        }
        let m = e.model();
        assert!(m.holds("cy", "vault/c") && m.holds("eve", "vault/a"));
        assert!(!m.holds("bob", "vault/b"), "revoked");
        assert!(!m.holds("ann", "vault/a"), "evicted");
    }

    #[test]
    fn remembered_small_groups_survive_the_renumbering_of_an_eviction() {
        let mut cfg = settings();
        cfg.limits.max_principals = 1;
        let mut e = Engine::new(Model::default(), Reach::default(), &cfg);
        feed(
            &mut e,
            &[
                join(0, "team", "ann"),
                join(0, "team", "cy"),
                join(0, "crew", "bob"),
                join(0, "crew", "dan"),
                access(1, "ann", "wiki"),
            ],
        );
        assert_eq!(remembered_groups(&e)[0].1, [("team".to_owned(), 2)]);
        // Bob's baseline evicts Ann's, and with half the names dead the
        // rest are numbered again: Bob takes Ann's id.
        feed(&mut e, &[access(2, "bob", "ci")]);
        assert_eq!(e.reach().evicted.principals, 1);
        assert_eq!(e.reach().principals.get("bob"), Some(0));
        feed(&mut e, &[access(3, "bob", "db")]);
        let kept = remembered_groups(&e);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].1, [("crew".to_owned(), 2)], "Bob's, not Ann's");
    }

    #[test]
    fn a_sudden_burst_of_sensitive_resources_nobody_nearby_uses_is_a_reach_expansion() {
        let (mut e, t0) = org();
        let burst: Vec<Event> = ["prod/x", "prod/y", "vault/k1", "vault/k2"]
            .iter()
            .enumerate()
            .map(|(i, r)| access(t0 + i as i64 * MIN, "a1", r))
            .collect();
        let d = feed(&mut e, &burst);
        assert_eq!(
            d.len(),
            1,
            "{:#?}",
            d.iter().map(|d| &d.finding.summary).collect::<Vec<_>>()
        );
        let f = &d[0].finding;
        assert_eq!(f.kind, FindingKind::ReachExpansion);
        assert_eq!(f.principals, ["a1"]);
        // Fires as soon as the short window crosses its floor of 40: prod/x and
        // prod/y score 14 each, vault/k1 34, so at the third access.
        assert_eq!(f.ts, Ts(t0 + 2 * MIN));
        assert_eq!(f.evidence["new_resources"].as_array().unwrap().len(), 3);
        assert_eq!(f.evidence["threshold"], 40.0);
        assert_eq!(f.evidence["novelty"], 62.0);
        assert_eq!(
            f.severity,
            Severity::High,
            "two high and one critical resource"
        );
        assert!(
            f.summary.starts_with("a1 reached 3 resources new to them"),
            "{}",
            f.summary
        );
        // The rest of the burst, inside the quiet period, raises nothing more.
        assert!(feed(&mut e, &[access(t0 + 10 * MIN, "a1", "vault/k3")]).is_empty());
    }

    #[test]
    fn resources_the_peers_use_are_not_news_even_for_a_new_hire() {
        let (mut e, t0) = org();
        let mut evs = vec![join(t0, "team-b", "newbie")];
        for (i, r) in ["b/r0", "b/r1", "b/r2", "b/r3"].iter().enumerate() {
            evs.push(access(t0 + (i as i64 + 1) * MIN, "newbie", r));
        }
        // And a veteran of team a trying team b's resources: they are not hers,
        // but held by nobody she works with, and low tier: below the floor.
        for (i, r) in ["b/r0", "b/r1"].iter().enumerate() {
            evs.push(access(t0 + (i as i64 + 10) * MIN, "a2", r));
        }
        assert!(feed(&mut e, &evs).is_empty());
    }

    #[test]
    fn a_flood_of_unique_names_stays_within_the_caps_and_detection_still_works() {
        let limits = crate::detect::Limits {
            max_principals: 100,
            max_resources_per_principal: 50,
            ..crate::detect::Limits::default()
        };
        let (e, t0) = org();
        let mut e = Engine::new(
            e.model().clone(),
            e.reach().clone(),
            &EngineConfig {
                limits,
                ..settings()
            },
        );
        let flood: Vec<Event> = (0..5000)
            .map(|i| access(t0 + i, &format!("flood-{i}"), &format!("junk/{i}")))
            .chain((0..2000).map(|i| access(t0 + 6000 + i, "hoarder", &format!("junk/h{i}"))))
            .collect();
        feed(&mut e, &flood);
        let reach = e.reach();
        assert!(
            reach.baselined() <= 105,
            "{} principals kept",
            reach.baselined()
        );
        assert!(
            reach.principals.len() <= 2 * 105,
            "{} names interned",
            reach.principals.len()
        );
        assert!(reach.baselines.values().all(|b| b.resources.len() <= 50));
        assert!(reach.evicted.principals >= 4900);
        assert!(reach.evicted.resources >= 1950);
        for who in ["a1", "b4"] {
            assert!(
                reach.principals.get(who).is_some(),
                "{who} kept: history outweighs a flood"
            );
        }
        let burst: Vec<Event> = ["prod/x", "prod/y", "vault/k1"]
            .iter()
            .enumerate()
            .map(|(i, r)| access(t0 + DAY + i as i64 * MIN, "a1", r))
            .collect();
        let d = feed(&mut e, &burst);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].finding.kind, FindingKind::ReachExpansion);
    }

    #[test]
    fn nothing_is_flagged_during_warm_up() {
        let mut e = Engine::new(Model::default(), Reach::default(), &settings());
        let burst: Vec<Event> = ["prod/x", "prod/y", "vault/k1", "vault/k2"]
            .iter()
            .enumerate()
            .map(|(i, r)| access(i as i64 * MIN, "a1", r))
            .collect();
        assert!(feed(&mut e, &burst).is_empty());
        assert!(feed(&mut e, &[grant(MIN, "g1", "x", "a1", false, "vault/z")]).is_empty());
    }

    #[test]
    fn a_group_grant_of_a_critical_system_reports_its_blast_radius() {
        let (mut e, t0) = org();
        let d = feed(
            &mut e,
            &[grant(t0, "g-wide", "a0", "team-b", true, "vault/payroll")],
        );
        assert_eq!(d.len(), 1);
        let f = &d[0].finding;
        assert_eq!(f.kind, FindingKind::GrantExpansion);
        assert_eq!(f.grant_id.as_deref(), Some("g-wide"));
        assert_eq!(f.ts, Ts(t0), "judged on the grant event itself");
        assert_eq!(f.evidence["engineers_gaining"], 6);
        assert_eq!(f.score, 180.0, "six engineers x critical weight 30");
        assert_eq!(f.severity, Severity::High);
        assert_eq!(f.principals.len(), 6);
    }

    #[test]
    fn a_cluster_share_is_of_the_engineers_other_members() {
        let (mut e, t0) = org();
        feed(
            &mut e,
            &[
                access(t0 + MIN, "b0", "b/new"),
                access(t0 + 2 * MIN, "b2", "b/new"),
            ],
        );
        // Clusters count their members' resources when fitted.
        e.expansion.refit(Ts(t0 + 3 * MIN));
        let x = e.expansion();
        let reach = &x.reach;
        let rid = reach.resources.get("b/new").unwrap();
        let (a0, b1) = (
            reach.principals.get("a0").unwrap(),
            reach.principals.get("b1").unwrap(),
        );
        let c = reach.peers.assignment[&b1];
        assert_eq!(reach.peers.clusters[c as usize].members.len(), 6);
        assert_ne!(reach.peers.assignment[&a0], c);
        let team_b = PeerInfo {
            cluster: Some(c),
            cluster_size: 6,
            groups: Default::default(),
        };
        // Two of b1's five fellow members use it; all six of the cluster
        // are others to a0, who is not in it.
        assert_eq!(x.peer_use("b1", b1, rid, &team_b, e.model()), 2.0 / 5.0);
        assert_eq!(x.peer_use("a0", a0, rid, &team_b, e.model()), 2.0 / 6.0);
    }

    /// A grant's blast radius over `affected`, each engineer's peer share
    /// counted from member names on its own (what [`HoldCounts`] memoises).
    fn blast_radius_by_name(e: &Engine, affected: &[String], what: &str) -> f64 {
        let (x, model) = (e.expansion(), e.model());
        let reach = &x.reach;
        let holders = model.holders(what);
        let weight = e.sensitivity.tier_of(what).weight();
        let mut total = 0.0;
        for a in affected {
            if holders.held_by(a) {
                continue;
            }
            let cluster = x.cluster_of(reach.principals.get(a)).0.and_then(|c| {
                let others: Vec<&str> = reach.peers.clusters[c as usize]
                    .members
                    .iter()
                    .take(CLUSTER_SAMPLE)
                    .map(|&p| reach.principals.name(p))
                    .filter(|n| n != a)
                    .collect();
                let yes = others.iter().filter(|m| holders.held_by(m)).count();
                (!others.is_empty()).then(|| yes as f64 / others.len() as f64)
            });
            let share = x
                .small_groups(a, model)
                .filter_map(|(g, _)| {
                    Expansion::group_share_by_name(model, g, a, |m| holders.held_by(m))
                })
                .chain(cluster)
                .fold(0.0, f64::max);
            total += weight * (1.0 - share);
        }
        total
    }

    #[test]
    fn peer_counts_shared_across_a_grant_give_each_engineer_their_own_share() {
        let (mut e, t0) = org();
        // Some of team b hold vault/payroll already: b0 directly, b2 and b3
        // (with a1) through on-call; b4 pairs with a1. Two new hires join
        // team b, so its group share differs from its cluster's.
        let mut evs = vec![grant(t0, "g-b0", "x", "b0", false, "vault/payroll")];
        for who in ["b2", "b3", "a1"] {
            evs.push(join(t0, "oncall", who));
        }
        evs.push(grant(t0, "g-oc", "x", "oncall", true, "vault/payroll"));
        evs.extend([join(t0, "pair", "b4"), join(t0, "pair", "a1")]);
        evs.extend([join(t0, "team-b", "c0"), join(t0, "team-b", "c1")]);
        feed(&mut e, &evs);
        // Fitted now, team b is a cluster of its own.
        e.expansion.refit(Ts(t0));
        let b1 = e.reach().principals.get("b1").unwrap();
        let c = e.reach().peers.assignment[&b1] as usize;
        assert_eq!(e.reach().peers.clusters[c].members.len(), 6);
        let team: Vec<String> = e.model().members_of("team-b").map(String::from).collect();
        assert_eq!(team.len(), 8);
        let sens = e.sensitivity.clone();
        let (_, total) = e.expansion.on_grant(
            "g-wide",
            "a0",
            "vault/payroll to team-b",
            &team,
            &["vault/payroll"],
            Ts(t0 + 1),
            &e.model,
            &sens,
        );
        let expected = blast_radius_by_name(&e, &team, "vault/payroll");
        assert_eq!(total, expected);
        // Five gain it, and their peers' holdings lower the score: b4's only
        // other pair member holds it, so b4 adds nothing.
        assert!(total > 0.0 && total < 4.0 * 30.0, "{total}");
    }

    #[test]
    fn routine_grants_and_provisioning_are_not_expansions() {
        let (mut e, t0) = org();
        // A team resource to a team member: their peers hold it.
        assert!(feed(&mut e, &[grant(t0, "g-r", "a0", "a3", false, "a/r2")]).is_empty());
        // HR (a provisioner) opening something sensitive: traced, not judged.
        assert!(
            feed(
                &mut e,
                &[grant(t0, "g-hr", "hr", "team-a", true, "vault/hr")]
            )
            .is_empty()
        );
        // A sensitive grant to one engineer whose peers hold nothing like it is.
        let d = feed(
            &mut e,
            &[grant(t0, "g-one", "a0", "b4", false, "vault/keys")],
        );
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].finding.severity, Severity::Medium);
    }

    fn join_by(ts: i64, actor: &str, group: &str, who: &str) -> Event {
        let mut ev = join(ts, group, who);
        if let Body::Membership(m) = &mut ev.body {
            m.actor = actor.into();
        }
        ev
    }

    fn leave_by(ts: i64, actor: &str, group: &str, who: &str) -> Event {
        let mut ev = leave(ts, group, who);
        if let Body::Membership(m) = &mut ev.body {
            m.actor = actor.into();
        }
        ev
    }

    /// team-a holds a critical vault its members use daily; break-glass holds
    /// two its three members (from team-a) never use.
    fn org_with_vaults() -> (Engine, i64) {
        let (mut e, t0) = org();
        let mut setup = vec![
            grant(t0, "g-va", "a5", "team-a", true, "vault/a-keys"),
            grant(t0, "g-bg", "a5", "break-glass", true, "vault/root"),
            grant(t0, "g-bg2", "a5", "break-glass", true, "vault/hsm"),
        ];
        for i in 0..3 {
            setup.push(join_by(t0, "a5", "break-glass", &format!("a{i}")));
        }
        for i in 0..6 {
            setup.push(access(t0 + (i + 1) * MIN, &format!("a{i}"), "vault/a-keys"));
        }
        feed(&mut e, &setup);
        (e, t0 + 10 * MIN)
    }

    #[test]
    fn transfers_and_new_hires_by_an_hr_actor_of_any_name_raise_nothing() {
        let (mut e, t) = org_with_vaults();
        // Not in `provisioners`, and too new to be known as one: the joins are
        // judged, against the group joined, whose members all use its vault.
        let moves = [
            leave_by(t, "people-sync", "team-b", "b0"),
            join_by(t, "people-sync", "team-a", "b0"),
            join_by(t + MIN, "people-sync", "team-a", "new-hire-1"),
        ];
        let d = feed(&mut e, &moves);
        assert!(
            d.is_empty(),
            "{:#?}",
            d.iter().map(|d| &d.finding.summary).collect::<Vec<_>>()
        );
        assert!(!e.expansion().is_provisioner("people-sync"));
        // A sync that moves many people and never uses anything itself is a
        // provisioner, whatever its name; an engineer doing the same is not.
        let many: Vec<Event> = (0..10)
            .flat_map(|i| {
                [
                    join_by(t + 2 * MIN, "people-sync", "team-b", &format!("hire-{i}")),
                    join_by(t + 2 * MIN, "a4", "team-b", &format!("hire-{i}x")),
                ]
            })
            .collect();
        feed(&mut e, &many);
        assert!(e.expansion().is_provisioner("people-sync"));
        assert!(!e.expansion().is_provisioner("a4"), "a4 uses resources");
        let d = feed(
            &mut e,
            &[join_by(t + 3 * MIN, "people-sync", "break-glass", "b2")],
        );
        assert!(d.is_empty(), "provisioning is routine");
    }

    #[test]
    fn joining_a_group_whose_members_do_not_use_what_it_holds_is_an_expansion() {
        let (mut e, t) = org_with_vaults();
        let d = feed(&mut e, &[join_by(t, "a5", "break-glass", "b1")]);
        assert_eq!(d.len(), 1);
        let f = &d[0].finding;
        assert_eq!(f.kind, FindingKind::GrantExpansion);
        assert!(
            f.summary.contains("b1 membership of group break-glass"),
            "{}",
            f.summary
        );
        assert!(f.severity >= Severity::Medium);
    }

    #[test]
    fn a_burst_of_resources_nobody_nearby_uses_is_sudden_before_its_sum_is() {
        let (mut e, t0) = org();
        // Four unknown, low-tier resources 45 s apart: each scores
        // (1 + rarity 4) = 5, far below the floor of 40 together.
        let burst: Vec<Event> = (0..4)
            .map(|i| access(t0 + i * 45_000, "a0", &format!("c/x{i}")))
            .collect();
        let d = feed(&mut e, &burst[..3]);
        assert!(d.is_empty(), "three are not yet a burst");
        let d = feed(&mut e, &burst[3..]);
        assert_eq!(d.len(), 1, "the fourth, 135 s after the first");
        assert_eq!(d[0].finding.kind, FindingKind::ReachExpansion);
        // Turned off, the same accesses wait for the sum.
        let (e2, t0) = org();
        let cfg = EngineConfig {
            detection: DetectionConfig {
                burst_count: 0,
                long_burst_count: 0,
                ..settings().detection
            },
            ..settings()
        };
        let mut e2 = Engine::new(e2.model().clone(), e2.reach().clone(), &cfg);
        let burst: Vec<Event> = (0..4)
            .map(|i| access(t0 + i * 45_000, "a0", &format!("c/x{i}")))
            .collect();
        assert!(feed(&mut e2, &burst).is_empty());
    }

    #[test]
    fn an_exploration_of_rare_resources_within_the_hour_is_found_at_its_fifth() {
        let (mut e, t0) = org();
        // Five resources nobody in team a uses, ten minutes
        // apart: never four within the short window, and (1 + rarity 4) x 5
        // = 25 together, below the long floor of 60.
        let slow: Vec<Event> = (0..5)
            .map(|i| access(t0 + i * 10 * MIN, "a0", &format!("b/x{i}")))
            .collect();
        let d = feed(&mut e, &slow[..4]);
        assert!(d.is_empty(), "four are not yet an exploration");
        let d = feed(&mut e, &slow[4..]);
        assert_eq!(d.len(), 1, "the fifth, 40 minutes after the first");
        assert_eq!(d[0].finding.kind, FindingKind::ReachExpansion);
        assert!(
            d[0].finding.summary.contains("5 resources"),
            "{}",
            d[0].finding.summary
        );
        // The same five spread over more than the long window are not.
        let (mut e, t0) = org();
        let spread: Vec<Event> = (0..5)
            .map(|i| access(t0 + i * 20 * MIN, "a0", &format!("b/x{i}")))
            .collect();
        assert!(feed(&mut e, &spread).is_empty());
        // Turned off, they wait for the sum.
        let (e2, t0) = org();
        let cfg = EngineConfig {
            detection: DetectionConfig {
                long_burst_count: 0,
                ..settings().detection
            },
            ..settings()
        };
        let mut e2 = Engine::new(e2.model().clone(), e2.reach().clone(), &cfg);
        let slow: Vec<Event> = (0..5)
            .map(|i| access(t0 + i * 10 * MIN, "a0", &format!("b/x{i}")))
            .collect();
        assert!(feed(&mut e2, &slow).is_empty());
    }
}
