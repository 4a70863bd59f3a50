//! The sensitivity catalogue: resource globs to tiers, first match wins.

use serde::{Deserialize, Serialize};

use super::Pattern;

/// How sensitive a resource is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Weight 1 (the default for unmatched resources).
    #[default]
    Low,
    /// Weight 3.
    Medium,
    /// Weight 10.
    High,
    /// Weight 30.
    Critical,
}

impl Tier {
    /// The weight used in scores.
    pub fn weight(self) -> f64 {
        match self {
            Tier::Low => 1.0,
            Tier::Medium => 3.0,
            Tier::High => 10.0,
            Tier::Critical => 30.0,
        }
    }

    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Low => "low",
            Tier::Medium => "medium",
            Tier::High => "high",
            Tier::Critical => "critical",
        }
    }
}

/// Resource -> tier lookup.
#[derive(Debug, Clone, Default)]
pub struct Sensitivity {
    rules: Vec<(Pattern, Tier)>,
}

impl Sensitivity {
    /// Rules are tried in order.
    pub fn new(rules: Vec<(Pattern, Tier)>) -> Self {
        Sensitivity { rules }
    }

    /// The tier of the first matching rule, else `low`.
    pub fn tier_of(&self, resource: &str) -> Tier {
        self.rules
            .iter()
            .find(|(p, _)| p.matches(resource))
            .map(|(_, t)| *t)
            .unwrap_or_default()
    }

    /// The tier of the first matching rule; `None` when no rule matches.
    pub fn rule_for(&self, name: &str) -> Option<Tier> {
        self.rules
            .iter()
            .find(|(p, _)| p.matches(name))
            .map(|(_, t)| *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_match_wins_and_default_is_low() {
        let s = Sensitivity::new(vec![
            (Pattern::new("acl/internal-*").unwrap(), Tier::Critical),
            (Pattern::new("acl/*").unwrap(), Tier::Medium),
        ]);
        assert_eq!(s.tier_of("acl/internal-tools"), Tier::Critical);
        assert_eq!(s.tier_of("acl/wiki"), Tier::Medium);
        assert_eq!(s.tier_of("docs/x"), Tier::Low);
        assert!(Tier::Critical.weight() > Tier::High.weight());
    }
}
