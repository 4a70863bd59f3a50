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

use std::borrow::Cow;

use serde::Deserialize;

use super::json::{self, Obj, Scanned, Str, Unusual};
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
    /// Where an access's resource is put together (`Events` copies it).
    resource: String,
}

#[derive(Deserialize, Default, Debug, PartialEq)]
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
#[derive(Deserialize, Default, Debug, PartialEq)]
#[serde(default)]
struct Data<'a> {
    #[serde(borrow)]
    team: Str<'a>,
    #[serde(borrow)]
    permission: Str<'a>,
}

impl<'a> AuditEvent<'a> {
    /// Reads the event with [`json::scan_object`] into `self`, a default
    /// event; `false` for a line left to serde, which reads every line the
    /// scanner reads into the same event (tested). (Filled in place: the
    /// event is a few hundred bytes, copied at every return.)
    fn scan(&mut self, text: &'a str) -> bool {
        let ev = self;
        let mut seen = 0;
        json::scan_object(text, |key, value| {
            let (bit, field) = match key {
                Some("action") => (0, &mut ev.action),
                Some("actor") => (1, &mut ev.actor),
                Some("created_at") => (2, &mut ev.created_at),
                Some("@timestamp") => (3, &mut ev.at_timestamp),
                Some("at_sign_timestamp") => (4, &mut ev.at_sign_timestamp),
                Some("p_event_time") => (5, &mut ev.p_event_time),
                Some("_document_id") => (6, &mut ev._document_id),
                Some("org") => (7, &mut ev.org),
                Some("repo") => (8, &mut ev.repo),
                Some("repository") => (9, &mut ev.repository),
                Some("business") => (10, &mut ev.business),
                Some("user") => (11, &mut ev.user),
                Some("team") => (12, &mut ev.team),
                Some("permission") => (13, &mut ev.permission),
                Some("name") => (14, &mut ev.name),
                Some("integration") => (15, &mut ev.integration),
                Some("agent_session_id") => (16, &mut ev.agent_session_id),
                Some("data") => {
                    first(&mut seen, 17)?;
                    ev.data = value.into_obj(Data::scan)?;
                    return Ok(());
                }
                Some("actor_is_agent") => {
                    first(&mut seen, 18)?;
                    ev.actor_is_agent = scan_any(value)?;
                    return Ok(());
                }
                _ => return Ok(()),
            };
            first(&mut seen, bit)?;
            *field = value.into_str()?;
            Ok(())
        })
        .is_ok()
    }
}

impl<'a> Data<'a> {
    /// `data` as [`AuditEvent::scan`] reads it.
    fn scan(text: &'a str) -> Result<Data<'a>, Unusual> {
        let mut data = Data::default();
        let mut seen = 0;
        json::scan_object(text, |key, value| {
            let (bit, field) = match key {
                Some("team") => (0, &mut data.team),
                Some("permission") => (1, &mut data.permission),
                _ => return Ok(()),
            };
            first(&mut seen, bit)?;
            *field = value.into_str()?;
            Ok(())
        })?;
        Ok(data)
    }
}

/// Notes field number `bit` as read in `seen`; `Unusual` if it was read
/// before (serde rejects a record that gives a field twice).
fn first(seen: &mut u32, bit: u32) -> Result<(), Unusual> {
    if *seen & (1 << bit) != 0 {
        return Err(Unusual);
    }
    *seen |= 1 << bit;
    Ok(())
}

/// `actor_is_agent` (any JSON value) as serde reads it; the scanner reads
/// scalars only.
fn scan_any(value: Scanned<'_>) -> Result<Option<serde_json::Value>, Unusual> {
    use serde_json::Value;
    Ok(match value {
        Scanned::Null => None,
        Scanned::Bool(b) => Some(Value::Bool(b)),
        Scanned::Str { .. } => value.into_str()?.0.map(|s| Value::String(s.into_owned())),
        Scanned::Number(n) => Some(json::number(n)?),
        Scanned::Object(_) | Scanned::Array(_) => return Err(Unusual),
    })
}

const NAME: &str = "GitHub audit";

impl Decoder for GithubAuditDecoder {
    fn decode(&mut self, line: &[u8], out: &mut Events) -> Result<(), DecodeError> {
        let Some(text) = json::text(line)? else {
            return Ok(());
        };
        let mut ev = AuditEvent::default();
        if !ev.scan(text) {
            ev = json::object(text)?;
        }
        self.event(text, &ev, out)
    }
}

impl GithubAuditDecoder {
    /// The events of the record `ev`, read from the line `text`.
    fn event(
        &mut self,
        text: &str,
        ev: &AuditEvent<'_>,
        out: &mut Events,
    ) -> Result<(), DecodeError> {
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
                (false, Some(o)) => Cow::Owned(format!("{o}/{r}")),
                _ => Cow::Borrowed(r),
            });
        let team = ev
            .team
            .get()
            .or_else(|| ev.data.get().and_then(|d| d.team.get()))
            .map(|t| match (t.contains('/'), org) {
                (false, Some(o)) => Cow::Owned(format!("{o}/{t}")),
                _ => Cow::Borrowed(t),
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

        let (kind, name) = match (repo.as_deref(), org, ev.business.get()) {
            (Some(r), _, _) => ("github/", r),
            (None, Some(o), _) => ("github/", o),
            (None, None, Some(b)) => ("github/enterprise/", b),
            (None, None, None) => return Ok(()),
        };
        let resource = &mut self.resource;
        resource.clear();
        resource.push_str(kind);
        resource.push_str(name);
        // Pushed borrowed: `Events` copies the names without an owned event.
        out.push_access(AccessRef {
            ts,
            principal: actor,
            resource,
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

    /// The event the scanner reads, if it reads the line.
    fn scanned(text: &str) -> Option<AuditEvent<'_>> {
        let mut ev = AuditEvent::default();
        ev.scan(text).then_some(ev)
    }

    /// The events of each line as the decoder makes them (the scanner
    /// first), and as serde alone reads them: each decoder sees the lines
    /// in order, as its clock does. Errors are compared by their text.
    #[allow(clippy::type_complexity)]
    fn both_ways(
        lines: &[String],
    ) -> (
        Vec<Result<Vec<Event>, String>>,
        Vec<Result<Vec<Event>, String>>,
    ) {
        let mut decoder = GithubAuditDecoder::default();
        let mut by_serde = GithubAuditDecoder::default();
        let decoded = lines
            .iter()
            .map(|line| {
                decoder
                    .decode_owned(line.as_bytes())
                    .map_err(|e| e.to_string())
            })
            .collect();
        let read = lines
            .iter()
            .map(|line| {
                let Some(text) = json::text(line.as_bytes()).map_err(|e| e.to_string())? else {
                    return Ok(Vec::new());
                };
                let ev: AuditEvent<'_> = json::object(text).map_err(|e| e.to_string())?;
                let mut out = Events::default();
                by_serde
                    .event(text, &ev, &mut out)
                    .map_err(|e| e.to_string())?;
                Ok(out.to_vec())
            })
            .collect();
        (decoded, read)
    }

    /// `v` written as another writer would: keys in reverse order, a space
    /// after every `:` and `,`, and `/` escaped as `\/`.
    fn relaid(v: &serde_json::Value) -> String {
        use serde_json::Value;
        match v {
            Value::Object(map) => {
                let members: Vec<String> = map
                    .iter()
                    .rev()
                    .map(|(k, v)| format!("{}: {}", relaid(&Value::from(k.as_str())), relaid(v)))
                    .collect();
                format!("{{{}}}", members.join(", "))
            }
            Value::Array(items) => {
                let items: Vec<String> = items.iter().map(relaid).collect();
                format!("[{}]", items.join(", "))
            }
            Value::String(s) => serde_json::to_string(s).unwrap().replace('/', "\\/"),
            v => v.to_string(),
        }
    }

    #[test]
    fn the_scanner_reads_the_corpus_in_both_layouts_as_serde_does() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/github_audit");
        let mut lines = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".index.jsonl") || !name.ends_with(".jsonl") {
                continue;
            }
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let Some(text) = json::text(line.as_bytes()).unwrap() else {
                    continue;
                };
                let value: serde_json::Value = serde_json::from_str(text).unwrap();
                for text in [text.to_owned(), relaid(&value)] {
                    let serde: AuditEvent<'_> = json::object(&text).unwrap();
                    assert_eq!(scanned(&text), Some(serde), "{text}");
                    lines.push(text);
                }
            }
        }
        assert!(lines.len() > 100, "{} lines read", lines.len());
        let (decoded, read) = both_ways(&lines);
        assert_eq!(decoded, read);
        assert!(decoded.iter().flatten().flatten().count() > 50);
    }

    #[test]
    fn the_scanner_leaves_what_it_does_not_read_to_serde() {
        for line in [
            r#"{"action":"a","action":"b"}"#,
            r#"{"actor":"\u0061lice"}"#,
            r#"{"actor":"a","created_at":1e400}"#,
            r#"{"actor_is_agent":1e400}"#,
            r#"{"data":1e400}"#,
            r#"{"data":{"team":"a","team":"b"}}"#,
            r#"{"actor_is_agent":{"x":1}}"#,
            "{\"actor\":\"a\",\t\"action\":\"b\"}",
            r#"{"actor":"a",}"#,
            r#"{"actor":"a"} x"#,
            r#"{"x":[1,2,]}"#,
            r#"{"x":01}"#,
            r#"{"x":"bad \q escape"}"#,
            r#" {"actor":"a"}"#,
        ] {
            assert_eq!(scanned(line), None, "{line}");
        }
        let deep = format!(r#"{{"x":{}1{}}}"#, "[".repeat(100), "]".repeat(100));
        assert_eq!(scanned(&deep), None);
        assert!(json::object::<AuditEvent<'_>>(&deep).is_ok());
    }

    /// A JSON value's text, valid or nearly so, of the kinds a record holds.
    fn json_value() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let scalar = prop_oneof![
            4 => "[a-z0-9 ./:@é-]{0,12}".prop_map(|s| format!("\"{s}\"")),
            1 => "[0-9]{1,21}",
            4 => prop::sample::select(vec![
                r#""my-org\/my-repo""#,
                r#""a\"b\\c\bd\fe\nf\rg\th""#,
                r#""\u00e9""#,
                r#""\ud800""#,
                r#""bad\x""#,
                "\"tab\there\"",
                r#""true""#,
                r#""""#,
                r#""2022-08-16 16:56:49.309""#,
                r#""unterminated"#,
                "0",
                "7",
                "1621305118553",
                "1234567890123456789",
                "12345678901234567890",
                "99999999999999999999999",
                "01",
                "-0",
                "-5",
                "1.5",
                "1.",
                "1e3",
                "1E+2",
                "1e400",
                "-",
                "true",
                "false",
                "null",
                "tru",
                "nul",
            ])
            .prop_map(str::to_owned),
        ];
        scalar.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec((key(), inner.clone()), 0..4).prop_map(|members| {
                    let members: Vec<String> = members
                        .into_iter()
                        .map(|(k, v)| format!("{k}:{v}"))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }),
                prop::collection::vec(inner, 0..4)
                    .prop_map(|items| format!("[{}]", items.join(", "))),
            ]
        })
    }

    /// A key: one the decoder reads, or another.
    fn key() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop::sample::select(vec![
            "action",
            "actor",
            "created_at",
            "@timestamp",
            "at_timestamp",
            "at_sign_timestamp",
            "p_event_time",
            "_document_id",
            "org",
            "repo",
            "repository",
            "business",
            "user",
            "team",
            "permission",
            "name",
            "integration",
            "data",
            "actor_is_agent",
            "agent_session_id",
            "actor_location",
            "x",
            r"act\u0069on",
            r"a\/b",
            r"te\am",
        ])
        .prop_map(|k| format!("\"{k}\""))
    }

    /// A string value as written, in one of the ways writers escape it:
    /// plainly, `/` as `\/`, or (now and then) non-ASCII characters and the
    /// letters `a` and `o` as `\uXXXX`.
    fn written(s: &str, how: u8) -> String {
        let plain = serde_json::to_string(s).unwrap();
        let plain = if how & 1 == 1 {
            plain.replace('/', "\\/")
        } else {
            plain
        };
        if how % 8 != 7 {
            return plain;
        }
        // The text holds no control characters: no `\u` escape in `plain`
        // whose hex digits these would change.
        let mut out = String::new();
        for c in plain.chars() {
            if c.is_ascii() && !matches!(c, 'a' | 'o') {
                out.push(c);
            } else {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
        out
    }

    /// The members of a record of the kind the decoder makes events of: a
    /// known action, and each field it reads present or absent, with names
    /// that may hold `/`, escapes or placeholders; keys in any order, among
    /// other members.
    fn record_members() -> impl proptest::strategy::Strategy<Value = Vec<(String, String)>> {
        use proptest::prelude::*;
        let text = prop_oneof![
            4 => "[a-z]{1,6}",
            2 => "[a-z]{1,4}/[a-z]{1,4}",
            1 => "[a-zé]{1,4} [a-z\"\\\\]{1,3}",
            1 => prop::sample::select(vec!["unknown", "-", "", "true"]).prop_map(str::to_owned),
        ];
        let string = (text, any::<u8>()).prop_map(|(s, how)| written(&s, how));
        let value = prop_oneof![
            8 => string.clone(),
            1 => prop::sample::select(vec!["null", "7", "true", "[]", "{}"]).prop_map(str::to_owned),
        ];
        let action = prop_oneof![
            8 => (prop::sample::select(vec![
                "org.add_member", "org.remove_member", "org.update_member", "org.invite_member",
                "team.add_member", "team.remove_member", "team.promote_maintainer",
                "team.add_repository", "repo.add_member", "business.add_admin",
                "organization_moderators.add_user", "integration_installation.create",
                "git.clone", "git.push",
            ]), any::<u8>()).prop_map(|(a, how)| written(a, how)),
            1 => value.clone(),
        ];
        let time = prop::sample::select(vec![
            "1621305118553",
            "1621305118",
            "\"2022-08-16 16:56:49.309\"",
            "\"2024-02-29T23:59:59.5+01:00\"",
            "\"2024\\/01\\/01\"",
            "1.6e12",
            "\"soon\"",
            "null",
        ])
        .prop_map(str::to_owned);
        let opt = |v: BoxedStrategy<String>| prop::option::weighted(0.7, v);
        let value = value.boxed();
        let time = time.boxed();
        let data = (opt(value.clone()), opt(value.clone())).prop_map(|(team, permission)| {
            let mut members = Vec::new();
            if let Some(t) = team {
                members.push(format!("\"team\": {t}"));
            }
            if let Some(p) = permission {
                members.push(format!("\"permission\":{p}"));
            }
            format!("{{{}}}", members.join(","))
        });
        let agent = prop::sample::select(vec!["true", "false", "\"true\"", "null", "1"])
            .prop_map(str::to_owned);
        (
            action,
            (
                opt(value.clone()),
                opt(time.clone()),
                opt(time.clone()),
                opt(time),
                opt(value.clone()),
            ),
            (
                opt(value.clone()),
                opt(value.clone()),
                opt(value.clone()),
                opt(value.clone()),
                opt(value.clone()),
            ),
            (
                opt(value.clone()),
                opt(value.clone()),
                opt(value.clone()),
                opt(data.boxed()),
            ),
            (
                opt(agent.boxed()),
                opt(value),
                prop::collection::vec((key(), json_value()), 0..2),
            ),
        )
            .prop_map(
                |(
                    action,
                    (actor, created, at, at_sign, doc),
                    (org, repo, repository, business, user),
                    (team, permission, name, data),
                    (agent, session, extra),
                )| {
                    let mut members = vec![("\"action\"".to_owned(), action)];
                    for (key, value) in [
                        ("actor", actor),
                        ("created_at", created),
                        ("@timestamp", at),
                        ("at_sign_timestamp", at_sign),
                        ("_document_id", doc),
                        ("org", org),
                        ("repo", repo),
                        ("repository", repository),
                        ("business", business),
                        ("user", user),
                        ("team", team),
                        ("permission", permission),
                        ("name", name),
                        ("data", data),
                        ("actor_is_agent", agent),
                        ("agent_session_id", session),
                    ] {
                        if let Some(value) = value {
                            members.push((format!("\"{key}\""), value));
                        }
                    }
                    members.extend(extra);
                    members
                },
            )
            .prop_shuffle()
    }

    /// A record's line: members joined in one of several layouts, sometimes
    /// cut short or with a stray byte.
    fn json_line() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        // Mostly valid: a wrong byte anywhere sends the line to serde.
        let colon = prop_oneof![16 => Just(":"), 16 => Just(": "), 4 => Just(" : "), 1 => Just("::"), 1 => Just("")];
        let comma = prop_oneof![16 => Just(","), 16 => Just(", "), 4 => Just(" ,"), 1 => Just(",,"), 1 => Just("")];
        let end = prop_oneof![
            24 => Just(""),
            8 => Just("  "),
            1 => prop::sample::select(vec!["\t", "x", "}", ","]),
        ];
        let stray = prop_oneof![
            30 => Just(None),
            1 => prop::sample::select(vec![Some("\""), Some("{"), Some("\\"), Some("]")]),
        ];
        (
            prop_oneof![
                1 => prop::collection::vec((key(), json_value()), 0..8),
                3 => record_members(),
            ],
            colon,
            comma,
            end,
            any::<prop::sample::Index>(),
            stray,
        )
            .prop_map(|(members, colon, comma, end, cut, stray)| {
                let members: Vec<String> = members
                    .into_iter()
                    .map(|(k, v)| format!("{k}{colon}{v}"))
                    .collect();
                let mut line = format!("{{{}}}{end}", members.join(comma));
                if let Some(stray) = stray {
                    let at = cut.index(line.len() + 1);
                    if line.is_char_boundary(at) {
                        line.insert_str(at, stray);
                    }
                }
                line
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        #[test]
        fn whatever_the_scanner_reads_serde_reads_the_same(line in json_line()) {
            if let Some(scanned) = scanned(&line) {
                let serde: AuditEvent<'_> = json::object(&line)
                    .map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{e}: {line}")))?;
                proptest::prop_assert_eq!(scanned, serde, "{}", line);
            }
        }

        #[test]
        fn lines_decode_to_the_events_serde_reads(
            lines in proptest::collection::vec(json_line(), 1..4),
        ) {
            let (decoded, read) = both_ways(&lines);
            proptest::prop_assert_eq!(decoded, read, "{:?}", lines);
        }
    }
}
