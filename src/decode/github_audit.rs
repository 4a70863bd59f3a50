//! The `github-audit` decoder: GitHub organisation / enterprise audit log
//! events (the REST / streaming JSON shape), one per line.
//!
//! - principal: `actor` as GitHub writes it (`alice`, `agent-bot[bot]`);
//!   events without one are skipped;
//! - access resource: `github/<owner>/<repo>` when the event names a repository,
//!   else `github/<org>`, else `github/enterprise/<business>`; `action` is the
//!   audit `action`;
//! - memberships: `org.add_member` (group `<org>`), `team.add_member` (group
//!   `<org>/<team>`), and their `remove_member` counterparts;
//! - grants: `repo.add_member` (the user on the repository, role = the
//!   permission if logged), `team.add_repository` (the team, as a group, on the
//!   repository), `org.update_member` to `admin`, `business.add_admin`
//!   (`github/enterprise/<business>`, role `admin`), `team.promote_maintainer`
//!   (`github/<org>/teams/<team>`, role `maintainer`),
//!   `organization_moderators.add_user` (role `moderator`),
//!   `integration_installation.create` (the app, on the organisation);
//!   `grant_id` is `gh:<_document_id>`.
//!
//! Invitations (`org.invite_member`, `business.invite_admin`, ...) are access:
//! nothing is granted until the invitee accepts, and the acceptance is logged as
//! its own `add_member` / `add_admin` event. Events that name no organisation,
//! repository or enterprise have no resource and are skipped.

use serde::Deserialize;

use super::json::{self, Obj, Str};
use super::time::{EventClock, parse_datetime};
use super::{DecodeError, Decoder};
use crate::event::{
    AccessRef, Body, Event, Events, Grant, GranteeType, Membership, MembershipOp, Outcome,
};
use crate::undo::Target;

/// Decoder for GitHub audit log events.
#[derive(Debug, Default)]
pub struct GithubAuditDecoder {
    clock: EventClock,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AuditEvent<'a> {
    #[serde(borrow)]
    action: Str<'a>,
    #[serde(borrow)]
    actor: Str<'a>,
    #[serde(borrow)]
    created_at: Str<'a>,
    #[serde(borrow, rename = "@timestamp")]
    at_timestamp: Str<'a>,
    #[serde(borrow)]
    at_sign_timestamp: Str<'a>,
    #[serde(borrow)]
    p_event_time: Str<'a>,
    #[serde(borrow)]
    _document_id: Str<'a>,
    #[serde(borrow)]
    org: Str<'a>,
    #[serde(borrow)]
    repo: Str<'a>,
    #[serde(borrow)]
    repository: Str<'a>,
    #[serde(borrow)]
    business: Str<'a>,
    #[serde(borrow)]
    user: Str<'a>,
    #[serde(borrow)]
    team: Str<'a>,
    #[serde(borrow)]
    permission: Str<'a>,
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow)]
    integration: Str<'a>,
    #[serde(borrow)]
    data: Obj<Data<'a>>,
    /// Whether the actor is an AI agent (acting for `user`); any type is read.
    actor_is_agent: Option<serde_json::Value>,
    #[serde(borrow)]
    agent_session_id: Str<'a>,
}

/// Older events keep some fields under `data`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Data<'a> {
    #[serde(borrow)]
    team: Str<'a>,
    #[serde(borrow)]
    permission: Str<'a>,
}

const NAME: &str = "GitHub audit";

impl Decoder for GithubAuditDecoder {
    fn decode(&mut self, line: &[u8], out: &mut Events) -> Result<(), DecodeError> {
        let Some(text) = json::text(line)? else {
            return Ok(());
        };
        let ev: AuditEvent<'_> = json::object(text)?;
        let Some(action) = ev.action.get() else {
            return Err(DecodeError::Unrecognized {
                format: NAME,
                reason: "no action",
            });
        };
        let own = ev
            .created_at
            .get()
            .or(ev.at_timestamp.get())
            .or(ev.at_sign_timestamp.get())
            .or(ev.p_event_time.get())
            .and_then(parse_datetime);
        let ts = self.clock.resolve(own).ok_or(DecodeError::MissingField {
            event_type: NAME,
            field: "created_at",
        })?;
        let Some(actor) = ev.actor.known() else {
            return Ok(());
        };
        let org = ev.org.get();
        let repo = ev
            .repo
            .get()
            .or(ev.repository.get())
            .map(|r| match (r.contains('/'), org) {
                (false, Some(o)) => format!("{o}/{r}"),
                _ => r.to_owned(),
            });
        let team = ev
            .team
            .get()
            .or_else(|| ev.data.get().and_then(|d| d.team.get()))
            .map(|t| match (t.contains('/'), org) {
                (false, Some(o)) => format!("{o}/{t}"),
                _ => t.to_owned(),
            });
        let permission = ev
            .permission
            .get()
            .or_else(|| ev.data.get().and_then(|d| d.permission.get()));
        let user = ev.user.known();
        let id = match ev._document_id.get() {
            Some(id) => format!("gh:{id}"),
            None => json::content_id("gh", text),
        };

        // An agent's change names the agent's session, so that the finding does.
        let agent = matches!(&ev.actor_is_agent, Some(serde_json::Value::Bool(true)))
            || matches!(&ev.actor_is_agent, Some(serde_json::Value::String(s)) if s == "true");
        let actor_type = agent.then_some(crate::event::ActorType::Agent);
        let reference = agent.then(|| match ev.agent_session_id.get() {
            Some(s) => format!("agent session {s}"),
            None => "agent session".to_owned(),
        });
        let grant = |grantee: &str,
                     ty: GranteeType,
                     resource: String,
                     role: Option<&str>,
                     target: Option<Box<Target>>| Event {
            ts,
            id: Some(id.clone()),
            body: Body::Grant(Grant {
                grant_id: id.clone(),
                actor: actor.to_owned(),
                grantee: grantee.to_owned(),
                grantee_type: ty,
                resource,
                role: role.map(str::to_owned),
                reference: reference.clone(),
                actor_type,
                target,
            }),
        };
        let membership = |group: &str, member: &str, op: MembershipOp| Event {
            ts,
            id: Some(id.clone()),
            body: Body::Membership(Membership {
                actor: actor.to_owned(),
                group: group.to_owned(),
                member: member.to_owned(),
                op,
                grant_id: Some(id.clone()),
                reference: reference.clone(),
                actor_type,
                target: match group.split_once('/') {
                    Some((org, team)) => Target::GithubTeamMember {
                        org: org.to_owned(),
                        team: team.to_owned(),
                        user: member.to_owned(),
                    },
                    None => Target::GithubOrgMember {
                        org: group.to_owned(),
                        user: member.to_owned(),
                    },
                }
                .boxed(),
            }),
        };
        // `owner/name` (repositories) or `org/slug` (teams).
        let split = |s: &str| -> Option<(String, String)> {
            s.split_once('/').map(|(a, b)| (a.to_owned(), b.to_owned()))
        };
        const NO_OWNER: &str =
            "the record does not name the repository's owner or the team's organisation";
        let change = match action {
            "org.add_member" | "org.remove_member" => org.zip(user).map(|(o, u)| {
                membership(
                    o,
                    u,
                    if action == "org.add_member" {
                        MembershipOp::Add
                    } else {
                        MembershipOp::Remove
                    },
                )
            }),
            "team.add_member" | "team.remove_member" => team.as_deref().zip(user).map(|(t, u)| {
                membership(
                    t,
                    u,
                    if action == "team.add_member" {
                        MembershipOp::Add
                    } else {
                        MembershipOp::Remove
                    },
                )
            }),
            "repo.add_member" => repo
                .as_deref()
                .zip(user)
                .map(|(r, u)| {
                    let target = match split(r) {
                        Some((owner, repo)) => Target::GithubRepoCollaborator {
                            owner,
                            repo,
                            user: u.to_owned(),
                        }
                        .boxed(),
                        None => Target::no_undo(NO_OWNER),
                    };
                    grant(u, GranteeType::User, format!("github/{r}"), permission, target)
                }),
            "team.add_repository" => team.as_deref().zip(repo.as_deref()).map(|(t, r)| {
                let target = match (split(t), split(r)) {
                    (Some((org, team)), Some((owner, repo))) => Target::GithubTeamRepo {
                        org,
                        team,
                        owner,
                        repo,
                    }
                    .boxed(),
                    _ => Target::no_undo(NO_OWNER),
                };
                grant(t, GranteeType::Group, format!("github/{r}"), permission, target)
            }),
            "org.update_member" if permission == Some("admin") => org.zip(user).map(|(o, u)| {
                let target = Target::GithubOrgAdmin {
                    org: o.to_owned(),
                    user: u.to_owned(),
                };
                grant(
                    u,
                    GranteeType::User,
                    format!("github/{o}"),
                    Some("admin"),
                    target.boxed(),
                )
            }),
            "business.add_admin" => ev.business.get().zip(user).map(|(b, u)| {
                grant(
                    u,
                    GranteeType::User,
                    format!("github/enterprise/{b}"),
                    Some("admin"),
                    Target::no_undo(
                        "GitHub's REST API cannot remove an enterprise owner; use the enterprise settings",
                    ),
                )
            }),
            "team.promote_maintainer" => team.as_deref().zip(user).map(|(t, u)| {
                let (o, slug) = t.split_once('/').unwrap_or(("", t));
                let target = if o.is_empty() {
                    Target::no_undo(NO_OWNER)
                } else {
                    Target::GithubTeamMaintainer {
                        org: o.to_owned(),
                        team: slug.to_owned(),
                        user: u.to_owned(),
                    }
                    .boxed()
                };
                grant(
                    u,
                    GranteeType::User,
                    format!("github/{o}/teams/{slug}"),
                    Some("maintainer"),
                    target,
                )
            }),
            "organization_moderators.add_user" => org.zip(user).map(|(o, u)| {
                grant(
                    u,
                    GranteeType::User,
                    format!("github/{o}"),
                    Some("moderator"),
                    Target::no_undo(
                        "GitHub's REST API has no call that removes one moderator; use the organisation settings",
                    ),
                )
            }),
            "integration_installation.create" => org
                .zip(ev.name.get().or(ev.integration.get()))
                .map(|(o, app)| {
                    grant(
                        app,
                        GranteeType::User,
                        format!("github/{o}"),
                        Some("app-installation"),
                        Target::no_undo(
                            "the record does not give the installation id, and only the app itself can delete an installation",
                        ),
                    )
                }),
            _ => None,
        };
        if let Some(e) = change {
            out.push(e);
            return Ok(());
        }

        let resource = match (repo, org, ev.business.get()) {
            (Some(r), _, _) => format!("github/{r}"),
            (None, Some(o), _) => format!("github/{o}"),
            (None, None, Some(b)) => format!("github/enterprise/{b}"),
            (None, None, None) => return Ok(()),
        };
        // Pushed borrowed: `Events` copies the names without an owned event.
        out.push_access(AccessRef {
            ts,
            principal: actor,
            resource: &resource,
            action: Some(action),
            outcome: Outcome::Success,
            id: Some(&id),
            key: None,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(line: &str) -> Result<Vec<Event>, DecodeError> {
        GithubAuditDecoder::default().decode_owned(line.as_bytes())
    }

    fn body(line: &str) -> Body {
        let mut v = decode(line).unwrap();
        assert_eq!(v.len(), 1, "{v:?}");
        v.remove(0).body
    }

    #[test]
    fn member_adds_are_memberships_of_org_and_team() {
        let Body::Membership(m) = body(
            r#"{"_document_id":"d1","actor":"cat","action":"org.add_member","created_at":1621305118553,"org":"my-org","user":"bob"}"#,
        ) else {
            panic!()
        };
        assert_eq!(
            (m.group.as_str(), m.member.as_str(), m.op),
            ("my-org", "bob", MembershipOp::Add)
        );
        assert_eq!(m.grant_id.as_deref(), Some("gh:d1"));
        let Body::Membership(m) = body(
            r#"{"actor":"cat","action":"team.add_member","created_at":1621305118553,"org":"my-org","team":"my-org/sre","user":"bob"}"#,
        ) else {
            panic!()
        };
        assert_eq!(m.group, "my-org/sre");
        let Body::Membership(m) = body(
            r#"{"actor":"cat","action":"team.remove_member","created_at":1621305118553,"org":"my-org","team":"sre","user":"bob"}"#,
        ) else {
            panic!()
        };
        assert_eq!(
            (m.group.as_str(), m.op),
            ("my-org/sre", MembershipOp::Remove)
        );
    }

    #[test]
    fn permission_adds_are_grants() {
        let Body::Grant(g) = body(
            r#"{"actor":"agent-bot[bot]","action":"repo.add_member","created_at":"2022-12-11 05:17:28.078","org":"my-org","repo":"my-org/api","user":"cat","permission":"write"}"#,
        ) else {
            panic!()
        };
        assert_eq!(
            (g.actor.as_str(), g.grantee.as_str(), g.resource.as_str()),
            ("agent-bot[bot]", "cat", "github/my-org/api")
        );
        assert_eq!(g.role.as_deref(), Some("write"));
        assert_eq!(g.actor_type, None, "bots are left to the agent patterns");
        let Body::Grant(g) = body(
            r#"{"actor":"Copilot","actor_is_agent":true,"agent_session_id":"as-42","action":"repo.add_member","created_at":1621305118553,"org":"my-org","repo":"my-org/api","user":"cat","permission":"admin"}"#,
        ) else {
            panic!()
        };
        assert_eq!(g.actor_type, Some(crate::event::ActorType::Agent));
        assert_eq!(g.reference.as_deref(), Some("agent session as-42"));
        let Body::Grant(g) = body(
            r#"{"actor":"cat","action":"team.add_repository","created_at":1621305118553,"data":{"team":"my-org/my-team"},"org":"my-org","repo":"my-org/my-repo"}"#,
        ) else {
            panic!()
        };
        assert_eq!(
            (g.grantee.as_str(), g.grantee_type),
            ("my-org/my-team", GranteeType::Group)
        );
        let Body::Grant(g) = body(
            r#"{"actor":"cat","action":"business.add_admin","created_at":1621305118553,"business":"acme","user":"bob"}"#,
        ) else {
            panic!()
        };
        assert_eq!(g.resource, "github/enterprise/acme");
        let Body::Grant(g) = body(
            r#"{"actor":"cat","action":"team.promote_maintainer","created_at":1621305118553,"org":"o","team":"o/t","user":"bob"}"#,
        ) else {
            panic!()
        };
        assert_eq!(
            (g.resource.as_str(), g.role.as_deref()),
            ("github/o/teams/t", Some("maintainer"))
        );
        let Body::Grant(g) = body(
            r#"{"actor":"cat","action":"org.update_member","created_at":1621305118553,"org":"o","user":"bob","permission":"admin"}"#,
        ) else {
            panic!()
        };
        assert_eq!(
            (g.resource.as_str(), g.role.as_deref()),
            ("github/o", Some("admin"))
        );
    }

    #[test]
    fn invitations_demotions_and_unknown_role_changes_are_access() {
        for line in [
            r#"{"actor":"cat","action":"org.invite_member","created_at":1621305118553,"org":"o","user":"bob"}"#,
            r#"{"actor":"cat","action":"org.update_member","created_at":1621305118553,"org":"o","user":"bob","permission":"read"}"#,
            r#"{"actor":"cat","action":"org.update_member","created_at":1621305118553,"org":"o","user":"bob"}"#,
        ] {
            let Body::Access(a) = body(line) else {
                panic!("{line}")
            };
            assert_eq!(a.resource, "github/o");
        }
    }

    #[test]
    fn access_is_named_by_repository_org_or_enterprise() {
        let Body::Access(a) = body(
            r#"{"actor":"dev","action":"git.clone","@timestamp":1623971719091,"repo":"acme/app","org":"acme"}"#,
        ) else {
            panic!()
        };
        assert_eq!(
            (a.resource.as_str(), a.action.as_deref()),
            ("github/acme/app", Some("git.clone"))
        );
        let Body::Access(a) = body(
            r#"{"actor":"dev","action":"business_advanced_security.disabled","created_at":1671111111111,"business":"acme"}"#,
        ) else {
            panic!()
        };
        assert_eq!(a.resource, "github/enterprise/acme");
        // No actor, or nothing to name: skipped.
        assert_eq!(
            decode(r#"{"actor":"","action":"git.push","created_at":1623971719091,"repo":"a/b"}"#)
                .unwrap(),
            vec![]
        );
        assert_eq!(
            decode(
                r#"{"actor":"cat","action":"team.promote_maintainer","created_at":1,"user":"bob"}"#
            )
            .unwrap(),
            vec![]
        );
    }

    #[test]
    fn malformed_events_are_errors() {
        assert!(matches!(
            decode(r#"{"actor":"x"}"#),
            Err(DecodeError::Unrecognized { .. })
        ));
        assert!(matches!(
            decode(r#"{"action":"git.push","actor":"x","repo":"a/b"}"#),
            Err(DecodeError::MissingField { .. })
        ));
        assert!(matches!(decode("{"), Err(DecodeError::Json(_))));
    }
}
