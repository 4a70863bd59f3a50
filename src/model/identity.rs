//! Who is who: glob patterns, the recognition of AI agents, and the names
//! one person goes by in different sources (`[identities.aliases]`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::event::ActorType;

/// A glob pattern (`*`, `?`, `[...]`) over principal, group or resource names.
/// `*` also matches `/`, so `prod/*` covers `prod/db/main`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    glob: glob::Pattern,
    /// The same match without the glob machinery, for the common shapes.
    shape: Shape,
}

/// How a pattern is matched: most are a name or a prefix and a final `*`,
/// matched on every new resource and every actor.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Shape {
    /// No wildcard: the name itself.
    Literal(Box<str>),
    /// Text then one final `*`: any name starting with the text.
    Prefix(Box<str>),
    /// Anything else.
    Glob,
}

impl Shape {
    fn of(s: &str) -> Shape {
        let plain = |t: &str| !t.contains(['*', '?', '[', ']']);
        match s.strip_suffix('*') {
            Some(prefix) if plain(prefix) => Shape::Prefix(prefix.into()),
            None if plain(s) => Shape::Literal(s.into()),
            _ => Shape::Glob,
        }
    }
}

impl Pattern {
    /// Compiles a pattern.
    pub fn new(s: &str) -> Result<Pattern, String> {
        let glob = glob::Pattern::new(s).map_err(|e| format!("invalid pattern {s:?}: {e}"))?;
        Ok(Pattern {
            glob,
            shape: Shape::of(s),
        })
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match &self.shape {
            Shape::Literal(l) => name == &**l,
            Shape::Prefix(p) => name.starts_with(&**p),
            Shape::Glob => self.glob.matches(name),
        }
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        self.glob.as_str()
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.as_str())
    }
}

impl TryFrom<String> for Pattern {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Pattern::new(&s)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Pattern::new(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Decides whether a principal is a human, an agent or a service, and which
/// person a name stands for.
#[derive(Debug, Clone)]
pub struct Identities {
    agents: Vec<Pattern>,
    aliases: Arc<Aliases>,
}

/// The names people go by: alias -> canonical name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Aliases {
    by_alias: HashMap<String, String>,
    /// Local part -> canonical e-mail, when bare user names are matched to
    /// e-mail local parts (`None` when that rule is off).
    by_local_part: Option<HashMap<String, String>>,
}

impl Aliases {
    /// Builds the table from `canonical -> [aliases]`; with `match_local_part`,
    /// a bare user name (no `@`, `/` or `:`) that is the local part of exactly
    /// one canonical e-mail stands for it too. An alias given to two people is
    /// an error (it names the alias).
    pub fn new<'a>(
        table: impl IntoIterator<Item = (&'a str, &'a [String])>,
        match_local_part: bool,
    ) -> Result<Aliases, String> {
        let mut by_alias: HashMap<String, String> = HashMap::new();
        let mut canonicals = Vec::new();
        for (canonical, aliases) in table {
            if canonical.trim().is_empty() {
                return Err("a canonical name is empty".into());
            }
            canonicals.push(canonical.to_owned());
            for a in aliases {
                if a.trim().is_empty() {
                    return Err(format!("{canonical:?} has an empty alias"));
                }
                if a == canonical {
                    continue;
                }
                if let Some(other) = by_alias.insert(a.clone(), canonical.to_owned()) {
                    if other != canonical {
                        return Err(format!(
                            "alias {a:?} is given to both {other:?} and {canonical:?}"
                        ));
                    }
                }
            }
        }
        for c in &canonicals {
            if let Some(other) = by_alias.get(c) {
                return Err(format!(
                    "{c:?} is a canonical name and also an alias of {other:?}"
                ));
            }
        }
        let by_local_part = match_local_part.then(|| {
            let mut seen: HashMap<String, Option<String>> = HashMap::new();
            for c in &canonicals {
                if let Some((local, _)) = c.split_once('@') {
                    seen.entry(local.to_owned())
                        .and_modify(|v| *v = None)
                        .or_insert_with(|| Some(c.clone()));
                }
            }
            // A local part two people share names neither.
            seen.into_iter()
                .filter_map(|(l, c)| c.map(|c| (l, c)))
                .collect()
        });
        Ok(Aliases {
            by_alias,
            by_local_part,
        })
    }

    fn is_empty(&self) -> bool {
        self.by_alias.is_empty() && self.by_local_part.as_ref().is_none_or(|m| m.is_empty())
    }
}

impl Identities {
    /// Agents are the principals matching any of `agent_patterns`.
    pub fn new(agent_patterns: Vec<Pattern>) -> Self {
        Identities {
            agents: agent_patterns,
            aliases: Arc::new(Aliases::default()),
        }
    }

    /// The same, knowing who goes by which names.
    pub fn with_aliases(mut self, aliases: Aliases) -> Self {
        self.aliases = Arc::new(aliases);
        self
    }

    /// Whether any name stands for another.
    pub fn has_aliases(&self) -> bool {
        !self.aliases.is_empty()
    }

    /// The person `name` stands for: its canonical name, or itself.
    pub fn canonical<'a>(&self, name: &'a str) -> Cow<'a, str> {
        if let Some(c) = self.aliases.by_alias.get(name) {
            return Cow::Owned(c.clone());
        }
        if let Some(locals) = &self.aliases.by_local_part {
            if !name.contains(['@', '/', ':']) {
                if let Some(c) = locals.get(name) {
                    return Cow::Owned(c.clone());
                }
            }
        }
        Cow::Borrowed(name)
    }

    /// Whether the name matches an agent pattern.
    pub fn is_agent_name(&self, principal: &str) -> bool {
        self.agents.iter().any(|p| p.matches(principal))
    }

    /// The actor type: the declared one when the event has it, else from the patterns.
    pub fn classify(&self, principal: &str, declared: Option<ActorType>) -> ActorType {
        match declared {
            Some(t) => t,
            None if self.is_agent_name(principal) => ActorType::Agent,
            None => ActorType::Human,
        }
    }

    /// Whether this principal's approval of advice counts as human review. Agents
    /// never count, whatever an event declares elsewhere.
    pub fn counts_as_human_reviewer(&self, principal: &str) -> bool {
        !self.is_agent_name(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Names and prefixes are matched without glob, with glob's answers.
        #[test]
        fn shapes_match_as_glob_does(
            pattern in "[ab/.*?\\[\\]!-]{0,6}",
            name in "[ab/.*?\\[\\]!-]{0,8}",
        ) {
            if let Ok(glob) = glob::Pattern::new(&pattern) {
                let p = Pattern::new(&pattern).unwrap();
                // A random name, and one starting with the pattern's text.
                let near = format!("{}{name}", pattern.trim_end_matches('*'));
                for n in [&name, &near] {
                    proptest::prop_assert_eq!(p.matches(n), glob.matches(n), "{:?} on {:?}", pattern, n);
                }
            }
        }
    }

    #[test]
    fn common_patterns_take_the_short_way() {
        for (p, shape) in [
            ("prod/*", Shape::Prefix("prod/".into())),
            ("*", Shape::Prefix("".into())),
            ("hr-system", Shape::Literal("hr-system".into())),
            ("agent:*-bot", Shape::Glob),
            ("vault/[ab]*", Shape::Glob),
            ("team/?/x*", Shape::Glob),
        ] {
            assert!(Pattern::new(p).unwrap().shape == shape, "{p}");
        }
        let p = Pattern::new("prod/*").unwrap();
        assert!(p.matches("prod/db/main") && p.matches("prod/") && !p.matches("prod"));
    }

    #[test]
    fn declared_type_wins_over_patterns() {
        let ids = Identities::new(vec![Pattern::new("agent:*").unwrap()]);
        assert_eq!(ids.classify("agent:x", None), ActorType::Agent);
        assert_eq!(ids.classify("alice", None), ActorType::Human);
        assert_eq!(
            ids.classify("alice", Some(ActorType::Agent)),
            ActorType::Agent
        );
        assert_eq!(
            ids.classify("ci-bot", Some(ActorType::Service)),
            ActorType::Service
        );
        assert!(!ids.counts_as_human_reviewer("agent:reviewer"));
    }

    #[test]
    fn aliases_and_local_parts_name_the_canonical_person() {
        let alice = ["alice".to_owned(), "role/eng/alice".to_owned()];
        let bob: Vec<String> = Vec::new();
        let table = [
            ("alice@example.com", &alice[..]),
            ("bob@example.com", &bob[..]),
        ];
        let ids = Identities::new(Vec::new()).with_aliases(Aliases::new(table, false).unwrap());
        assert!(ids.has_aliases());
        assert_eq!(ids.canonical("role/eng/alice"), "alice@example.com");
        assert_eq!(ids.canonical("alice"), "alice@example.com");
        assert_eq!(ids.canonical("bob"), "bob");
        let ids = ids.with_aliases(Aliases::new(table, true).unwrap());
        assert_eq!(ids.canonical("bob"), "bob@example.com");
        assert_eq!(ids.canonical("team/bob"), "team/bob");
        assert_eq!(ids.canonical("carol"), "carol");
        assert!(!Identities::new(Vec::new()).has_aliases());

        let twice = ["al".to_owned()];
        let err = Aliases::new([("a@x", &twice[..]), ("b@x", &twice[..])], false).unwrap_err();
        assert!(err.contains("\"al\""), "{err}");
        let chained = ["b@x".to_owned()];
        assert!(Aliases::new([("a@x", &chained[..]), ("b@x", &bob[..])], false).is_err());
        // A local part two people share names neither.
        let ids = Identities::new(Vec::new()).with_aliases(
            Aliases::new([("bob@a.com", &bob[..]), ("bob@b.com", &bob[..])], true).unwrap(),
        );
        assert_eq!(ids.canonical("bob"), "bob");
    }

    #[test]
    fn star_crosses_slashes() {
        assert!(Pattern::new("prod/*").unwrap().matches("prod/db/main"));
        assert!(!Pattern::new("prod/*").unwrap().matches("staging/db"));
        assert!(Pattern::new("[").is_err());
    }
}
