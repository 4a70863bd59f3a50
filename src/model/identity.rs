//! Who is who: glob patterns and the recognition of AI agents.

use std::fmt;

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

/// Decides whether a principal is a human, an agent or a service.
#[derive(Debug, Clone)]
pub struct Identities {
    agents: Vec<Pattern>,
}

impl Identities {
    /// Agents are the principals matching any of `agent_patterns`.
    pub fn new(agent_patterns: Vec<Pattern>) -> Self {
        Identities {
            agents: agent_patterns,
        }
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
    fn star_crosses_slashes() {
        assert!(Pattern::new("prod/*").unwrap().matches("prod/db/main"));
        assert!(!Pattern::new("prod/*").unwrap().matches("staging/db"));
        assert!(Pattern::new("[").is_err());
    }
}
