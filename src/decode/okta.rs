//! The `okta` decoder: Okta System Log events (`/api/v1/logs`), one per line.
//!
//! Keys are read as Okta writes them (`eventType`, `alternateId`, ...) and also
//! all lower-case (`eventtype`, `alternateid`, ...), as some data lakes store
//! them.
//!
//! - principal: `actor.alternateId` (the login, e.g. `alice@example.com`), else
//!   `actor.displayName`; actors that are IP addresses or `unknown` name nobody
//!   and the event is skipped;
//! - access resource: `okta/app/<app name>` when a target is an `AppInstance`,
//!   else `okta/<eventType without its last part>` (`okta/user.session`,
//!   `okta/system.api_token`, ...); `action` is the `eventType`; outcome
//!   `FAILURE` or `DENY` is `denied`;
//! - grants: `user.account.privilege.grant` / `group.privilege.grant` (admin
//!   roles to a user / group: one grant per role in
//!   `debugContext.debugData.privilegeGranted`, on `okta/role/<role>`),
//!   `application.user_membership.add` / `group.application_assignment.add`
//!   (`okta/app/<app>`), `user.session.impersonation.grant` (Okta Support may
//!   impersonate users: grantee `okta-support` on `okta/org`);
//!   `group.user_membership.add` / `.remove` are memberships of the group's
//!   display name. `grant_id` is `okta:<uuid>` (with `:<n>` for several roles).
//!
//! A grant event whose outcome is not `SUCCESS`/`ALLOW` is a denied access.

use serde::Deserialize;

use super::json::{self, Obj, Objs, Str};
use super::time::{EventClock, parse_datetime};
use super::{DecodeError, Decoder};
use crate::event::{
    Access, Body, Event, Events, Grant, GranteeType, Membership, MembershipOp, Outcome, Ts,
};
use crate::undo::Target;

/// Decoder for Okta System Log events.
#[derive(Debug, Default)]
pub struct OktaDecoder {
    clock: EventClock,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LogEvent<'a> {
    #[serde(borrow)]
    uuid: Str<'a>,
    #[serde(borrow)]
    published: Str<'a>,
    #[serde(borrow)]
    p_event_time: Str<'a>,
    #[serde(borrow, rename = "eventType")]
    event_type: Str<'a>,
    // Lower-cased keys are separate fields, not serde aliases: a record holding
    // both spellings must not be rejected as a duplicate.
    #[serde(borrow, rename = "eventtype")]
    event_type_lc: Str<'a>,
    #[serde(borrow)]
    actor: Obj<Party<'a>>,
    #[serde(borrow)]
    outcome: Obj<OktaOutcome<'a>>,
    #[serde(borrow)]
    target: Objs<Party<'a>>,
    #[serde(borrow, rename = "debugContext")]
    debug_context: Obj<DebugContext<'a>>,
    #[serde(borrow, rename = "debugcontext")]
    debug_context_lc: Obj<DebugContext<'a>>,
}

/// An actor or a target.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Party<'a> {
    #[serde(borrow, rename = "type")]
    kind: Str<'a>,
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(borrow, rename = "alternateId")]
    alternate_id: Str<'a>,
    #[serde(borrow, rename = "alternateid")]
    alternate_id_lc: Str<'a>,
    #[serde(borrow, rename = "displayName")]
    display_name: Str<'a>,
    #[serde(borrow, rename = "displayname")]
    display_name_lc: Str<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OktaOutcome<'a> {
    #[serde(borrow)]
    result: Str<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DebugContext<'a> {
    #[serde(borrow, rename = "debugData")]
    debug_data: Obj<DebugData<'a>>,
    #[serde(borrow, rename = "debugdata")]
    debug_data_lc: Obj<DebugData<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DebugData<'a> {
    #[serde(borrow, rename = "privilegeGranted")]
    privilege_granted: Str<'a>,
    #[serde(borrow, rename = "privilegegranted")]
    privilege_granted_lc: Str<'a>,
}

impl Party<'_> {
    /// A user is named by login, anything else (groups, apps) by display name.
    fn name(&self) -> Option<&str> {
        let login = self.alternate_id.known().or(self.alternate_id_lc.known());
        let display = self.display_name.known().or(self.display_name_lc.known());
        if self.kind.get() == Some("User") {
            login.or(display)
        } else {
            display.or(login)
        }
    }
}

impl LogEvent<'_> {
    fn privilege_granted(&self) -> Option<&str> {
        let ctx = self.debug_context.get().or(self.debug_context_lc.get())?;
        let data = ctx.debug_data.get().or(ctx.debug_data_lc.get())?;
        data.privilege_granted
            .get()
            .or(data.privilege_granted_lc.get())
    }
}

const NAME: &str = "Okta System Log";

impl Decoder for OktaDecoder {
    fn decode(&mut self, line: &[u8], out: &mut Events) -> Result<(), DecodeError> {
        let Some(text) = json::text(line)? else {
            return Ok(());
        };
        let ev: LogEvent<'_> = json::object(text)?;
        let Some(event_type) = ev.event_type.get().or(ev.event_type_lc.get()) else {
            return Err(DecodeError::Unrecognized {
                format: NAME,
                reason: "no eventType",
            });
        };
        let own = ev
            .published
            .get()
            .or(ev.p_event_time.get())
            .and_then(parse_datetime);
        let ts = self.clock.resolve(own).ok_or(DecodeError::MissingField {
            event_type: NAME,
            field: "published",
        })?;
        let Some(actor) = ev
            .actor
            .get()
            .filter(|a| is_principal(a))
            .and_then(Party::name)
        else {
            return Ok(());
        };
        let result = ev.outcome.get().and_then(|o| o.result.get());
        let succeeded = matches!(result, None | Some("SUCCESS" | "ALLOW"));
        let base_id = match ev.uuid.get() {
            Some(id) => format!("okta:{id}"),
            None => json::content_id("okta", text),
        };
        if succeeded {
            let before = out.len();
            grants(&ev, event_type, ts, &base_id, actor, out);
            if out.len() > before {
                return Ok(());
            }
        }
        let resource = match target(&ev, "AppInstance") {
            Some(app) => format!("okta/app/{app}"),
            None => format!(
                "okta/{}",
                event_type.rsplit_once('.').map_or(event_type, |(p, _)| p)
            ),
        };
        out.push(Event {
            ts,
            id: Some(base_id),
            body: Body::Access(Access {
                principal: actor.to_owned(),
                resource,
                action: Some(event_type.to_owned()),
                outcome: if matches!(result, Some("FAILURE" | "DENY"))
                    || (!succeeded && is_grant(event_type))
                {
                    Outcome::Denied
                } else {
                    Outcome::Success
                },
            }),
        });
        Ok(())
    }
}

fn is_principal(a: &Party<'_>) -> bool {
    !matches!(a.kind.get(), Some("IP address" | "IpAddress" | "IP"))
}

fn is_grant(event_type: &str) -> bool {
    matches!(
        event_type,
        "user.account.privilege.grant"
            | "group.privilege.grant"
            | "application.user_membership.add"
            | "group.application_assignment.add"
            | "user.session.impersonation.grant"
            | "group.user_membership.add"
    )
}

/// The Okta id of the first target of `kind`.
fn target_id<'e>(ev: &'e LogEvent<'_>, kind: &str) -> Option<&'e str> {
    ev.target
        .0
        .iter()
        .find(|t| t.kind.get() == Some(kind))
        .and_then(|t| t.id.get())
}

const NO_IDS: &str = "the record does not give the Okta ids of the targets";

/// The API role type of a standard admin role as the System Log names it
/// (`Super administrator`, `Application administrator (all)`).
fn role_type(role: &str) -> Option<&'static str> {
    let name = role
        .split_once(" (")
        .map_or(role, |(n, _)| n)
        .trim()
        .to_ascii_lowercase();
    Some(match name.as_str() {
        "super administrator" | "super admin" => "SUPER_ADMIN",
        "organization administrator" | "org admin" | "organizational administrator" => "ORG_ADMIN",
        "application administrator" | "app admin" => "APP_ADMIN",
        "user administrator" | "group administrator" => "USER_ADMIN",
        "help desk administrator" => "HELP_DESK_ADMIN",
        "read only administrator" | "read-only administrator" => "READ_ONLY_ADMIN",
        "mobile administrator" => "MOBILE_ADMIN",
        "api access management administrator" => "API_ACCESS_MANAGEMENT_ADMIN",
        "report administrator" => "REPORT_ADMIN",
        "group membership administrator" => "GROUP_MEMBERSHIP_ADMIN",
        _ => return None,
    })
}

/// The name of the first target of `kind`.
fn target<'e>(ev: &'e LogEvent<'_>, kind: &str) -> Option<&'e str> {
    ev.target
        .0
        .iter()
        .find(|t| t.kind.get() == Some(kind))
        .and_then(Party::name)
}

fn grants(
    ev: &LogEvent<'_>,
    event_type: &str,
    ts: Ts,
    base_id: &str,
    actor: &str,
    out: &mut Events,
) {
    let grant = |id: String,
                 grantee: &str,
                 ty: GranteeType,
                 resource: String,
                 role: Option<&str>,
                 target: Option<Box<Target>>| Event {
        ts,
        id: Some(id.clone()),
        body: Body::Grant(Grant {
            grant_id: id,
            actor: actor.to_owned(),
            grantee: grantee.to_owned(),
            grantee_type: ty,
            resource,
            role: role.map(str::to_owned),
            reference: None,
            actor_type: None,
            target,
        }),
    };
    let kind_of = |ty: GranteeType| match ty {
        GranteeType::Group => ("UserGroup", "group"),
        GranteeType::User => ("User", "user"),
    };
    match event_type {
        "user.account.privilege.grant" | "group.privilege.grant" => {
            let (grantee, ty) = if event_type == "group.privilege.grant" {
                (target(ev, "UserGroup"), GranteeType::Group)
            } else {
                (target(ev, "User"), GranteeType::User)
            };
            let Some(grantee) = grantee else { return };
            let (kind, principal_type) = kind_of(ty);
            let principal_id = target_id(ev, kind);
            let roles: Vec<&str> = ev
                .privilege_granted()
                .map(|p| {
                    p.split(", ")
                        .map(str::trim)
                        .filter(|r| !r.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            if roles.is_empty() {
                // The event itself says an admin role was granted, not which.
                out.push(grant(
                    format!("{base_id}:0"),
                    grantee,
                    ty,
                    "okta/admin".to_owned(),
                    None,
                    Target::no_undo("the record does not say which admin role was granted"),
                ));
            }
            for (i, role) in roles.into_iter().enumerate() {
                let target = match (principal_id, role_type(role)) {
                    (Some(id), Some(role_type)) => Target::OktaRole {
                        principal_type: principal_type.to_owned(),
                        principal_id: id.to_owned(),
                        role_type: role_type.to_owned(),
                    }
                    .boxed(),
                    (None, _) => Target::no_undo(NO_IDS),
                    (_, None) => Target::no_undo(
                        "the role is not one of Okta's standard admin roles (a custom role is removed by its assignment in the admin console)",
                    ),
                };
                out.push(grant(
                    format!("{base_id}:{i}"),
                    grantee,
                    ty,
                    format!("okta/role/{role}"),
                    Some(role),
                    target,
                ));
            }
        }
        "application.user_membership.add" | "group.application_assignment.add" => {
            let (grantee, ty) = if event_type == "group.application_assignment.add" {
                (target(ev, "UserGroup"), GranteeType::Group)
            } else {
                (target(ev, "User"), GranteeType::User)
            };
            let (Some(grantee), Some(app)) = (grantee, target(ev, "AppInstance")) else {
                return;
            };
            let (kind, principal_type) = kind_of(ty);
            let target = match (target_id(ev, kind), target_id(ev, "AppInstance")) {
                (Some(p), Some(a)) => Target::OktaApp {
                    principal_type: principal_type.to_owned(),
                    principal_id: p.to_owned(),
                    app_id: a.to_owned(),
                }
                .boxed(),
                _ => Target::no_undo(NO_IDS),
            };
            out.push(grant(
                base_id.to_owned(),
                grantee,
                ty,
                format!("okta/app/{app}"),
                None,
                target,
            ));
        }
        "user.session.impersonation.grant" => {
            out.push(grant(
                base_id.to_owned(),
                "okta-support",
                GranteeType::User,
                "okta/org".to_owned(),
                Some("impersonation"),
                Target::OktaSupportAccess {}.boxed(),
            ));
        }
        "group.user_membership.add" | "group.user_membership.remove" => {
            let (Some(member), Some(group)) = (target(ev, "User"), target(ev, "UserGroup")) else {
                return;
            };
            out.push(Event {
                ts,
                id: Some(base_id.to_owned()),
                body: Body::Membership(Membership {
                    actor: actor.to_owned(),
                    group: group.to_owned(),
                    member: member.to_owned(),
                    op: if event_type.ends_with(".add") {
                        MembershipOp::Add
                    } else {
                        MembershipOp::Remove
                    },
                    grant_id: Some(base_id.to_owned()),
                    reference: None,
                    actor_type: None,
                    target: match (target_id(ev, "UserGroup"), target_id(ev, "User")) {
                        (Some(g), Some(u)) => Target::OktaGroupMembership {
                            group_id: g.to_owned(),
                            user_id: u.to_owned(),
                        }
                        .boxed(),
                        _ => Target::no_undo(NO_IDS),
                    },
                }),
            });
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(line: &str) -> Result<Vec<Event>, DecodeError> {
        OktaDecoder::default().decode_owned(line.as_bytes())
    }

    fn event(event_type: &str, result: &str, targets: &str, extra: &str) -> String {
        format!(
            r#"{{"uuid":"u-1","published":"2021-06-26T21:27:03.490Z","eventType":"{event_type}","actor":{{"id":"00u1","type":"User","alternateId":"jack@acme.io","displayName":"Jack"}},"outcome":{{"result":"{result}"}},"target":{targets}{extra}}}"#
        )
    }

    const USER: &str =
        r#"{"type":"User","alternateId":"thomas@example.com","displayName":"Thomas"}"#;

    #[test]
    fn admin_role_grants_are_one_grant_per_role() {
        let line = event(
            "user.account.privilege.grant",
            "SUCCESS",
            &format!("[{USER}]"),
            r#","debugContext":{"debugData":{"privilegeGranted":"Organization administrator, Application administrator (all)"}}"#,
        );
        let got: Vec<(String, String, String)> = decode(&line)
            .unwrap()
            .into_iter()
            .map(|e| match e.body {
                Body::Grant(g) => {
                    assert_eq!(g.actor, "jack@acme.io");
                    (g.grant_id, g.grantee, g.resource)
                }
                b => panic!("{b:?}"),
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "okta:u-1:0".into(),
                    "thomas@example.com".into(),
                    "okta/role/Organization administrator".into()
                ),
                (
                    "okta:u-1:1".into(),
                    "thomas@example.com".into(),
                    "okta/role/Application administrator (all)".into()
                ),
            ]
        );
    }

    #[test]
    fn group_membership_adds_and_removes_are_memberships() {
        let targets = format!(
            r#"[{USER},{{"type":"UserGroup","alternateId":"unknown","displayName":"admins"}}]"#
        );
        let Body::Membership(m) =
            decode(&event("group.user_membership.add", "SUCCESS", &targets, ""))
                .unwrap()
                .remove(0)
                .body
        else {
            panic!()
        };
        assert_eq!(
            (m.group.as_str(), m.member.as_str(), m.op),
            ("admins", "thomas@example.com", MembershipOp::Add)
        );
        assert_eq!(m.grant_id.as_deref(), Some("okta:u-1"));
        let Body::Membership(m) = decode(&event(
            "group.user_membership.remove",
            "SUCCESS",
            &targets,
            "",
        ))
        .unwrap()
        .remove(0)
        .body
        else {
            panic!()
        };
        assert_eq!(m.op, MembershipOp::Remove);
    }

    #[test]
    fn app_assignments_grant_the_app() {
        let targets = format!(
            r#"[{USER},{{"type":"AppInstance","alternateId":"Salesforce","displayName":"Salesforce"}}]"#
        );
        let Body::Grant(g) = decode(&event(
            "application.user_membership.add",
            "SUCCESS",
            &targets,
            "",
        ))
        .unwrap()
        .remove(0)
        .body
        else {
            panic!()
        };
        assert_eq!(
            (g.grantee.as_str(), g.resource.as_str()),
            ("thomas@example.com", "okta/app/Salesforce")
        );
    }

    #[test]
    fn failed_grants_and_failed_logins_are_denied_access() {
        let line = event(
            "group.privilege.grant",
            "FAILURE",
            r#"[{"type":"UserGroup","displayName":"ops"}]"#,
            "",
        );
        let Body::Access(a) = decode(&line).unwrap().remove(0).body else {
            panic!()
        };
        assert_eq!(a.outcome, Outcome::Denied);
        assert_eq!(a.resource, "okta/group.privilege");
        let line = event(
            "user.session.start",
            "FAILURE",
            r#"[{"type":"AppInstance","displayName":"Okta Dashboard"}]"#,
            "",
        );
        let Body::Access(a) = decode(&line).unwrap().remove(0).body else {
            panic!()
        };
        assert_eq!(
            (a.resource.as_str(), a.outcome),
            ("okta/app/Okta Dashboard", Outcome::Denied)
        );
        let challenge = event("policy.evaluate_sign_on", "CHALLENGE", "[]", "");
        let Body::Access(a) = decode(&challenge).unwrap().remove(0).body else {
            panic!()
        };
        assert_eq!(
            (a.resource.as_str(), a.outcome),
            ("okta/policy", Outcome::Success)
        );
    }

    #[test]
    fn both_spellings_in_one_record_are_fine() {
        let line = r#"{"published":"2022-12-13 00:58:19.811","eventType":"user.session.start","eventtype":"user.session.start","actor":{"alternateId":"a@b.c","alternateid":"a@b.c","type":"User"}}"#;
        assert_eq!(decode(line).unwrap().len(), 1);
    }

    #[test]
    fn lower_cased_keys_are_read_too() {
        let line = r#"{"uuid":"x","published":"2022-12-13 00:58:19.811","eventtype":"user.session.start","actor":{"alternateid":"homer@duff.com","displayname":"Homer","type":"User"},"outcome":{"result":"SUCCESS"}}"#;
        let Body::Access(a) = decode(line).unwrap().remove(0).body else {
            panic!()
        };
        assert_eq!(a.principal, "homer@duff.com");
        assert_eq!(a.resource, "okta/user.session");
    }

    #[test]
    fn actors_that_are_not_principals_are_skipped() {
        let ip = r#"{"published":"2022-12-14 19:16:32.015","eventType":"security.threat.detected","actor":{"alternateId":"unknown","displayName":"1.2.3.4","type":"IP address"}}"#;
        assert_eq!(decode(ip).unwrap(), vec![]);
        let nobody = r#"{"published":"2022-12-14 19:16:32.015","eventType":"user.session.start","actor":{"alternateId":"unknown","displayName":"unknown","type":"User"}}"#;
        assert_eq!(decode(nobody).unwrap(), vec![]);
        // An app actor is named by its display name.
        let app = r#"{"published":"2022-12-13 15:22:58.759","eventType":"app.oauth2.authorize.code","actor":{"alternateId":"123456","displayName":"agent-helper","type":"PublicClientApp"}}"#;
        let Body::Access(a) = decode(app).unwrap().remove(0).body else {
            panic!()
        };
        assert_eq!(a.principal, "agent-helper");
    }

    #[test]
    fn malformed_events_are_errors() {
        assert!(matches!(
            decode(r#"{"actor":{}}"#),
            Err(DecodeError::Unrecognized { .. })
        ));
        assert!(matches!(decode("nope"), Err(DecodeError::Json(_))));
        let no_time = r#"{"eventType":"user.session.start","published":"redacted","actor":{"alternateId":"a","type":"User"}}"#;
        assert!(matches!(
            decode(no_time),
            Err(DecodeError::MissingField { .. })
        ));
    }
}
