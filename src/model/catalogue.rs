//! The built-in catalogue of privileges that are critical in any organisation.
//!
//! A baseline needs history; an administrator policy, a share with everyone or
//! a share with another AWS account is dangerous on the first day. The
//! catalogue names them per format, as the decoders name grants, so they are
//! flagged from the first event, warm-up or not (see `detect`):
//!
//! | why | format | grant |
//! |---|---|---|
//! | `admin policy` | cloudtrail | `AdministratorAccess`, `IAMFullAccess`, `PowerUserAccess` (AWS managed); an inline policy allowing `*` on `*` (role `*`) |
//! | `admin policy` | k8s-audit, gcp-audit (GKE) | the `cluster-admin` or `admin` ClusterRole bound |
//! | `admin policy` | gcp-audit | `roles/owner`, `roles/editor`, `roles/iam.*Admin`, `roles/resourcemanager.*Admin` |
//! | `admin policy` | okta | the Super, Organization (org) administrator roles |
//! | `admin policy` | github-audit | organisation owner (`github/<org>` role `admin`), enterprise admin |
//! | `public` | all | grantee `*` (AWS `*`, the EC2 `all` group, S3 AllUsers, GCP `allUsers`), `allAuthenticatedUsers`, `aws:authenticated-users`, Kubernetes `system:anonymous` / `system:unauthenticated` / `system:authenticated` |
//! | `foreign account` | cloudtrail | grantee `account/ID...`: an AWS account other than the one the change was made in |
//!
//! `[sensitivity]` overrides it: a rule matching the grant's resource decides
//! its tier, else a rule matching `builtin:admin-policy`, `builtin:public` or
//! `builtin:foreign-account`; a tier of `low` turns the entry off. Without a
//! rule, admin policies are `critical`, public and foreign shares `high`.

use serde::Serialize;

use super::{Sensitivity, Tier};
use crate::event::GranteeType;

/// Why a grant is critical whatever the baseline says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Why {
    /// An administrator role or policy.
    #[serde(rename = "admin policy")]
    AdminPolicy,
    /// Granted to everyone (or every authenticated principal).
    #[serde(rename = "public")]
    Public,
    /// Granted to an AWS account other than the organisation's.
    #[serde(rename = "foreign account")]
    ForeignAccount,
}

impl Why {
    /// How evidence and summaries name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Why::AdminPolicy => "admin policy",
            Why::Public => "public",
            Why::ForeignAccount => "foreign account",
        }
    }

    /// The name a `[sensitivity]` rule matches to override this entry.
    pub fn override_name(self) -> &'static str {
        match self {
            Why::AdminPolicy => "builtin:admin-policy",
            Why::Public => "builtin:public",
            Why::ForeignAccount => "builtin:foreign-account",
        }
    }

    fn default_tier(self) -> Tier {
        match self {
            Why::AdminPolicy => Tier::Critical,
            Why::Public | Why::ForeignAccount => Tier::High,
        }
    }
}

/// The catalogue's judgement of one grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Every reason that applies, most severe first.
    pub why: Vec<Why>,
    /// The highest tier among them (after `[sensitivity]` overrides).
    pub tier: Tier,
}

/// Whether `resource` (with `role`) is an administrator privilege.
pub fn is_admin(resource: &str, role: Option<&str>) -> bool {
    let role = role.unwrap_or_default();
    let lower = |s: &str| s.to_ascii_lowercase();
    // AWS managed policies, in every partition (aws, aws-cn, aws-us-gov).
    if let Some(rest) = resource.strip_prefix("arn:aws") {
        if let Some((_, policy)) = rest.split_once(":iam::aws:policy/") {
            return matches!(
                policy,
                "AdministratorAccess" | "IAMFullAccess" | "PowerUserAccess"
            );
        }
        return false;
    }
    if resource.starts_with("inline:") {
        return role == "*";
    }
    if resource.starts_with("k8s/") {
        return resource.ends_with("/ClusterRole/cluster-admin")
            || resource.ends_with("/ClusterRole/admin");
    }
    if resource.starts_with("gcp/") {
        let r = role.strip_prefix("roles/").unwrap_or("");
        return matches!(r, "owner" | "editor")
            || (r.starts_with("iam.") && r.ends_with("Admin"))
            || (r.starts_with("resourcemanager.") && r.ends_with("Admin"));
    }
    if let Some(r) = resource.strip_prefix("okta/role/") {
        let r = lower(r).replace(['_', '-'], " ");
        return matches!(
            r.as_str(),
            "super administrator"
                | "super admin"
                | "organization administrator"
                | "org administrator"
                | "org admin"
                | "organisation administrator"
        );
    }
    if let Some(rest) = resource.strip_prefix("github/") {
        // `github/<org>` or `github/enterprise/<business>` with role admin: an
        // owner of the organisation or an enterprise admin (a repository is
        // `github/<org>/<repo>`).
        let org_level = !rest.contains('/')
            || rest
                .strip_prefix("enterprise/")
                .is_some_and(|b| !b.contains('/'));
        return org_level && lower(role) == "admin";
    }
    false
}

/// Whether a grantee is everyone (or every authenticated principal).
pub fn is_public(grantee: &str) -> bool {
    matches!(
        grantee,
        "*" | "allUsers"
            | "allAuthenticatedUsers"
            | "aws:authenticated-users"
            | "system:anonymous"
            | "system:unauthenticated"
            | "system:authenticated"
    )
}

/// Whether a grantee is an AWS account other than the organisation's (named
/// so by the `cloudtrail` decoder).
pub fn is_foreign_account(grantee: &str) -> bool {
    grantee
        .strip_prefix("account/")
        .is_some_and(|a| a.len() >= 12 && a.as_bytes()[..12].iter().all(u8::is_ascii_digit))
}

/// Judges one grant against the catalogue; `None` when nothing in it applies
/// (or `[sensitivity]` turned what applies down to `low`).
pub fn judge(
    resource: &str,
    role: Option<&str>,
    grantee: &str,
    _grantee_type: GranteeType,
    sensitivity: &Sensitivity,
) -> Option<Verdict> {
    let mut why = Vec::new();
    if is_admin(resource, role) {
        why.push(Why::AdminPolicy);
    }
    if is_public(grantee) {
        why.push(Why::Public);
    }
    if is_foreign_account(grantee) {
        why.push(Why::ForeignAccount);
    }
    let explicit = sensitivity.rule_for(resource);
    let mut kept = Vec::new();
    let mut tier = Tier::Low;
    for w in why {
        let t = explicit
            .or_else(|| sensitivity.rule_for(w.override_name()))
            .unwrap_or(w.default_tier());
        if t > Tier::Low {
            kept.push(w);
            tier = tier.max(t);
        }
    }
    (!kept.is_empty()).then_some(Verdict { why: kept, tier })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Pattern;

    fn none() -> Sensitivity {
        Sensitivity::default()
    }

    fn whys(resource: &str, role: Option<&str>, grantee: &str) -> Vec<&'static str> {
        judge(resource, role, grantee, GranteeType::User, &none())
            .map(|v| v.why.iter().map(|w| w.as_str()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn admin_roles_of_every_format_are_recognised() {
        for (resource, role) in [
            ("arn:aws:iam::aws:policy/AdministratorAccess", None),
            ("arn:aws-us-gov:iam::aws:policy/IAMFullAccess", None),
            ("arn:aws:iam::aws:policy/PowerUserAccess", None),
            ("inline:backdoor", Some("*")),
            (
                "k8s/cluster/ClusterRole/cluster-admin",
                Some("cluster-admin"),
            ),
            ("k8s/team-a/ClusterRole/admin", Some("admin")),
            ("gcp/projects/p1", Some("roles/owner")),
            ("gcp/projects/p1", Some("roles/editor")),
            ("gcp/organizations/1", Some("roles/iam.securityAdmin")),
            ("okta/role/Super administrator", None),
            ("okta/role/Organization administrator", None),
            ("okta/role/ORG_ADMIN", None),
            ("github/acme", Some("admin")),
            ("github/enterprise/acme-corp", Some("admin")),
        ] {
            assert_eq!(
                whys(resource, role, "bob"),
                ["admin policy"],
                "{resource} {role:?}"
            );
        }
        for (resource, role) in [
            ("arn:aws:iam::aws:policy/ReadOnlyAccess", None),
            ("arn:aws:iam::123456789012:policy/AdministratorAccess", None),
            ("inline:read-logs", None),
            ("k8s/team-a/ClusterRole/view", Some("view")),
            ("k8s/team-a/Role/admin", Some("admin")),
            ("gcp/projects/p1", Some("roles/viewer")),
            ("okta/role/Read only admin", None),
            ("github/acme/api", Some("admin")),
            ("github/acme", Some("member")),
            ("prod/db", Some("admin")),
        ] {
            assert!(
                whys(resource, role, "bob").is_empty(),
                "{resource} {role:?}"
            );
        }
    }

    #[test]
    fn public_and_foreign_grantees_are_recognised() {
        assert_eq!(whys("aws/lambda/function/f", None, "*"), ["public"]);
        assert_eq!(whys("gcp/projects/p", None, "allUsers"), ["public"]);
        assert_eq!(
            whys("aws/ec2/snapshot/s", None, "account/123456789012"),
            ["foreign account"]
        );
        assert_eq!(
            whys("aws/iam/role/r", None, "account/123456789012/role/x"),
            ["foreign account"]
        );
        assert!(whys("aws/ec2/snapshot/s", None, "account/x").is_empty());
        assert!(whys("aws/ec2/snapshot/s", None, "ec2.amazonaws.com").is_empty());
        let v = judge("inline:all", Some("*"), "*", GranteeType::Group, &none()).unwrap();
        assert_eq!(v.why, [Why::AdminPolicy, Why::Public]);
        assert_eq!(v.tier, Tier::Critical);
    }

    #[test]
    fn sensitivity_rules_override_the_catalogue() {
        let rules = |r: &[(&str, Tier)]| {
            Sensitivity::new(
                r.iter()
                    .map(|(p, t)| (Pattern::new(p).unwrap(), *t))
                    .collect(),
            )
        };
        let admin = "arn:aws:iam::aws:policy/PowerUserAccess";
        let off = rules(&[("arn:aws:iam::aws:policy/PowerUserAccess", Tier::Low)]);
        assert_eq!(judge(admin, None, "bob", GranteeType::User, &off), None);
        let medium = rules(&[("builtin:admin-policy", Tier::Medium)]);
        assert_eq!(
            judge(admin, None, "bob", GranteeType::User, &medium).map(|v| v.tier),
            Some(Tier::Medium)
        );
        let no_public = rules(&[("builtin:public", Tier::Low)]);
        assert_eq!(
            judge(
                "aws/s3/bucket/site",
                None,
                "*",
                GranteeType::Group,
                &no_public
            ),
            None
        );
        // A rule for the resource itself wins over the builtin: names.
        let site = rules(&[
            ("aws/s3/bucket/site", Tier::Critical),
            ("builtin:public", Tier::Low),
        ]);
        assert_eq!(
            judge("aws/s3/bucket/site", None, "*", GranteeType::Group, &site).map(|v| v.tier),
            Some(Tier::Critical)
        );
    }
}
