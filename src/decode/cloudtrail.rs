//! The `cloudtrail` decoder: AWS CloudTrail records.
//!
//! Accepts one record per line, `{"Records":[...]}` documents (the shape of the
//! files CloudTrail delivers to S3) on one line, and the `aws cloudtrail
//! lookup-events` shape whose `CloudTrailEvent` field holds the record as a JSON
//! string. Records are read into a struct of only the fields used, borrowed from
//! the line; `requestParameters` parts that only grants need (policy documents,
//! share lists) stay raw and are parsed only for those rare events.
//!
//! Names (`docs/formats.md` has the full tables):
//!
//! - principals: IAM users by user name (`alice`), assumed-role sessions as
//!   `role/ROLE/SESSION`, roles as grantees as `role/ROLE`, the root user as
//!   `root`, federated users as `federated/NAME`, AWS services by their host
//!   (`ec2.amazonaws.com`, declared `actor_type: service`), other accounts as
//!   `account/ID`;
//! - access resources: `aws/<service>/<kind>/<name>` for the target the request
//!   names (`aws/s3/bucket/B`, `aws/iam/role/R`, `aws/secretsmanager/secret/S`,
//!   ...), else `aws/<service>`; `action` is the `eventName`;
//! - grants: the policy ARN (or `inline:<policy name>`) for IAM policy attach/put,
//!   `aws/iam/role/R` for trust changes, `aws/iam/user/U` for access keys and
//!   login profiles made for another user, the shared object for resource-policy
//!   shares; `grant_id` is `ct:<eventID>` (with `:<n>` when one record grants to
//!   several principals). An inline policy that allows every action on every
//!   resource has role `*`. A grantee of another account than the one the
//!   record was made in (`recipientAccountId`, else the caller's) is named
//!   `account/ID` (a bare account id, or its `root`) or `account/ID/<rest>`
//!   (another principal ARN of that account), so a share outside the
//!   organisation's account can be told apart from one inside it.
//!
//! A record with an `errorCode` is never a grant: it is an access, `denied` when
//! the error is an authorisation failure (or the call was a grant attempt).

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::json::{self, Obj, Objs, Str, Strs};
use super::time::{EventClock, parse_datetime};
use super::{DecodeError, Decoder};
use crate::event::{
    Access, ActorType, Body, Event, Events, Grant, GranteeType, Membership, MembershipOp, Outcome,
    Ts,
};
use crate::undo::Target as Undo;

/// Decoder for AWS CloudTrail records.
#[derive(Debug, Default)]
pub struct CloudTrailDecoder {
    clock: EventClock,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Record<'a> {
    #[serde(borrow, rename = "Records")]
    records: Option<Vec<&'a RawValue>>,
    #[serde(borrow, rename = "CloudTrailEvent")]
    embedded: Str<'a>,
    #[serde(borrow, rename = "eventTime")]
    event_time: Str<'a>,
    /// Added by Logstash / Elastic shippers that drop `eventTime`.
    #[serde(borrow, rename = "@timestamp")]
    at_timestamp: Str<'a>,
    /// Added by Panther's data lake.
    #[serde(borrow)]
    p_event_time: Str<'a>,
    #[serde(borrow, rename = "eventSource")]
    event_source: Str<'a>,
    #[serde(borrow, rename = "eventName")]
    event_name: Str<'a>,
    #[serde(borrow, rename = "eventID")]
    event_id: Str<'a>,
    #[serde(borrow, rename = "errorCode")]
    error_code: Str<'a>,
    /// The account the record was delivered to: the one the grant is made in.
    #[serde(borrow, rename = "recipientAccountId")]
    recipient_account: Str<'a>,
    #[serde(borrow, rename = "userIdentity")]
    user_identity: Obj<UserIdentity<'a>>,
    #[serde(borrow, rename = "requestParameters")]
    params: Obj<Params<'a>>,
    #[serde(borrow, rename = "responseElements")]
    response: Obj<Response<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UserIdentity<'a> {
    #[serde(borrow, rename = "type")]
    kind: Str<'a>,
    #[serde(borrow, rename = "userName")]
    user_name: Str<'a>,
    #[serde(borrow)]
    arn: Str<'a>,
    #[serde(borrow, rename = "principalId")]
    principal_id: Str<'a>,
    #[serde(borrow, rename = "accountId")]
    account_id: Str<'a>,
    #[serde(borrow, rename = "invokedBy")]
    invoked_by: Str<'a>,
    #[serde(borrow, rename = "sessionContext")]
    session: Obj<SessionContext<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SessionContext<'a> {
    #[serde(borrow, rename = "sessionIssuer")]
    issuer: Obj<Issuer<'a>>,
    #[serde(borrow, rename = "sourceIdentity")]
    source_identity: Str<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Issuer<'a> {
    #[serde(borrow, rename = "userName")]
    user_name: Str<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Response<'a> {
    #[serde(borrow, rename = "ConsoleLogin")]
    console_login: Str<'a>,
    #[serde(borrow, rename = "accessKey")]
    access_key: Obj<AccessKey<'a>>,
}

/// `responseElements.accessKey` of `CreateAccessKey`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct AccessKey<'a> {
    #[serde(borrow, rename = "accessKeyId")]
    access_key_id: Str<'a>,
}

/// The `requestParameters` fields used for naming and grants.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Params<'a> {
    #[serde(borrow, rename = "userName")]
    user_name: Str<'a>,
    #[serde(borrow, rename = "groupName")]
    group_name: Str<'a>,
    #[serde(borrow, rename = "roleName")]
    role_name: Str<'a>,
    #[serde(borrow, rename = "roleArn")]
    role_arn: Str<'a>,
    #[serde(borrow, rename = "policyArn")]
    policy_arn: Str<'a>,
    #[serde(borrow, rename = "policyName")]
    policy_name: Str<'a>,
    #[serde(borrow, rename = "bucketName")]
    bucket_name: Str<'a>,
    #[serde(borrow, rename = "secretId")]
    secret_id: Str<'a>,
    #[serde(borrow, rename = "functionName")]
    function_name: Str<'a>,
    #[serde(borrow, rename = "keyId")]
    key_id: Str<'a>,
    #[serde(borrow, rename = "snapshotId")]
    snapshot_id: Str<'a>,
    #[serde(borrow, rename = "imageId")]
    image_id: Str<'a>,
    #[serde(borrow, rename = "dBSnapshotIdentifier")]
    db_snapshot: Str<'a>,
    #[serde(borrow, rename = "dBClusterSnapshotIdentifier")]
    db_cluster_snapshot: Str<'a>,
    #[serde(borrow, rename = "attributeName")]
    attribute_name: Str<'a>,
    #[serde(borrow, rename = "resourceArn")]
    resource_arn: Str<'a>,
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow)]
    principal: Str<'a>,
    #[serde(borrow, rename = "statementId")]
    statement_id: Str<'a>,
    #[serde(borrow)]
    action: Str<'a>,
    #[serde(borrow)]
    qualifier: Str<'a>,
    #[serde(borrow, rename = "sourceArn")]
    source_arn: Str<'a>,
    #[serde(borrow, rename = "sourceAccount")]
    source_account: Str<'a>,
    #[serde(borrow, rename = "principalOrgID")]
    principal_org_id: Str<'a>,
    #[serde(borrow, rename = "functionUrlAuthType")]
    function_url_auth_type: Str<'a>,
    #[serde(borrow)]
    description: Str<'a>,
    #[serde(borrow, rename = "valuesToAdd")]
    values_to_add: Strs<'a>,
    #[serde(borrow, rename = "x-amz-acl")]
    canned_acl: Strs<'a>,
    #[serde(borrow, rename = "launchPermission")]
    launch_permission: Obj<Permission<'a>>,
    #[serde(borrow, rename = "createVolumePermission")]
    create_volume_permission: Obj<Permission<'a>>,
    #[serde(borrow, rename = "policyDocument")]
    policy_document: Option<&'a RawValue>,
    #[serde(borrow, rename = "bucketPolicy")]
    bucket_policy: Option<&'a RawValue>,
    #[serde(borrow, rename = "resourcePolicy")]
    resource_policy: Option<&'a RawValue>,
    #[serde(borrow)]
    policy: Option<&'a RawValue>,
    #[serde(borrow, rename = "AccessControlPolicy")]
    access_control_policy: Option<&'a RawValue>,
}

/// `launchPermission` / `createVolumePermission`: `{"add":{"items":[...]}}`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Permission<'a> {
    #[serde(borrow)]
    add: Obj<PermissionItems<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PermissionItems<'a> {
    #[serde(borrow)]
    items: Objs<PermissionItem<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PermissionItem<'a> {
    #[serde(borrow, rename = "userId")]
    user_id: Str<'a>,
    #[serde(borrow)]
    group: Str<'a>,
}

impl Decoder for CloudTrailDecoder {
    fn decode(&mut self, line: &[u8], out: &mut Events) -> Result<(), DecodeError> {
        let Some(text) = json::text(line)? else {
            return Ok(());
        };
        let rec: Record<'_> = json::object(text)?;
        if let Some(records) = &rec.records {
            // A delivery document: decode each record; one bad record does not
            // hide the others, but is reported if nothing else came out.
            let mut first_err = None;
            let before = out.len();
            for raw in records {
                let r = json::object::<Record<'_>>(raw.get())
                    .and_then(|r| self.record(&r, raw.get(), out));
                if let Err(e) = r {
                    first_err.get_or_insert(e);
                }
            }
            return match first_err {
                Some(e) if out.len() == before => Err(e),
                _ => Ok(()),
            };
        }
        if let Some(inner) = rec.embedded.get() {
            if rec.event_name.get().is_none() || rec.user_identity.get().is_none() {
                // `aws cloudtrail lookup-events`: the record is a JSON string.
                let r: Record<'_> = json::object(inner)?;
                return self.record(&r, inner, out);
            }
        }
        self.record(&rec, text, out)
    }
}

const NAME: &str = "CloudTrail";

impl CloudTrailDecoder {
    fn record(&mut self, r: &Record<'_>, raw: &str, out: &mut Events) -> Result<(), DecodeError> {
        let Some(event_name) = r.event_name.get() else {
            return Err(DecodeError::Unrecognized {
                format: NAME,
                reason: "no eventName",
            });
        };
        let own_ts = r
            .event_time
            .get()
            .or(r.at_timestamp.get())
            .or(r.p_event_time.get())
            .and_then(parse_datetime);
        let ts = self
            .clock
            .resolve(own_ts)
            .ok_or(DecodeError::MissingField {
                event_type: NAME,
                field: "eventTime",
            })?;
        let Some(ui) = r.user_identity.get() else {
            return Ok(());
        };
        let Some((actor, is_service)) = principal(ui) else {
            return Ok(());
        };
        let service = r
            .event_source
            .get()
            .map(|s| s.strip_suffix(".amazonaws.com").unwrap_or(s))
            .unwrap_or("unknown");
        let empty = Params::default();
        let params = r.params.get().unwrap_or(&empty);
        let base_id = match r.event_id.get() {
            Some(id) => format!("ct:{id}"),
            None => json::content_id("ct", raw),
        };

        if r.error_code.get().is_none() {
            let ctx = GrantContext {
                ts,
                base_id: &base_id,
                actor: &actor,
                actor_is_user: ui.kind.get() == Some("IAMUser"),
                actor_type: is_service.then_some(ActorType::Service),
                account: r
                    .recipient_account
                    .get()
                    .or(ui.account_id.get())
                    .or_else(|| ui.arn.get().and_then(arn_account)),
                reference: params
                    .description
                    .get()
                    .or_else(|| ui.session.get().and_then(|s| s.source_identity.get())),
                access_key_id: r
                    .response
                    .get()
                    .and_then(|x| x.access_key.get())
                    .and_then(|k| k.access_key_id.get()),
            };
            let before = out.len();
            grants(event_name, service, params, &ctx, out);
            if out.len() > before {
                return Ok(());
            }
        }

        let denied = match r.error_code.get() {
            Some(code) => is_grant_event(event_name) || is_authorisation_error(code),
            None => r.response.get().and_then(|x| x.console_login.get()) == Some("Failure"),
        };
        out.push(Event {
            ts,
            id: Some(base_id),
            body: Body::Access(Access {
                principal: actor,
                resource: access_resource(service, event_name, params),
                action: Some(event_name.to_owned()),
                outcome: if denied {
                    Outcome::Denied
                } else {
                    Outcome::Success
                },
            }),
        });
        Ok(())
    }
}

/// Names the principal of `userIdentity` (see the module doc) and says whether
/// it is an AWS service; `None` when the record names nobody.
fn principal(ui: &UserIdentity<'_>) -> Option<(String, bool)> {
    let arn_tail = |marker: &str| {
        ui.arn
            .get()
            .and_then(|a| a.split_once(marker).map(|(_, t)| t.to_owned()))
    };
    let person = |name: Option<String>| name.map(|n| (n, false));
    match ui.kind.get() {
        Some("IAMUser") => person(
            ui.user_name
                .known()
                .map(str::to_owned)
                .or_else(|| arn_tail(":user/").map(|t| last_segment(&t).to_owned()))
                .or_else(|| ui.principal_id.known().map(str::to_owned)),
        ),
        Some("AssumedRole") => {
            if let Some(t) = arn_tail(":assumed-role/") {
                return Some((format!("role/{t}"), false));
            }
            let role = ui
                .session
                .get()
                .and_then(|s| s.issuer.get())
                .and_then(|i| i.user_name.known())
                .or(ui.user_name.known());
            let session = ui
                .principal_id
                .get()
                .and_then(|p| p.split_once(':'))
                .map(|(_, s)| s);
            person(match (role, session) {
                (Some(r), Some(s)) => Some(format!("role/{r}/{s}")),
                (Some(r), None) => Some(format!("role/{r}")),
                (None, _) => ui.principal_id.known().map(|p| format!("role/{p}")),
            })
        }
        Some("Root") => person(Some("root".to_owned())),
        Some("FederatedUser") => person(
            arn_tail(":federated-user/")
                .or_else(|| {
                    ui.principal_id
                        .get()
                        .and_then(|p| p.split_once(':'))
                        .map(|(_, n)| n.to_owned())
                })
                .map(|n| format!("federated/{n}")),
        ),
        Some("AWSService") => Some((
            ui.invoked_by.known().unwrap_or("aws-service").to_owned(),
            true,
        )),
        Some("AWSAccount") => person(
            ui.account_id
                .known()
                .or(ui.principal_id.known())
                .map(|a| format!("account/{a}")),
        ),
        _ => {
            let named = ui
                .user_name
                .known()
                .or(ui.principal_id.known())
                .map(str::to_owned)
                .or_else(|| ui.arn.known().map(|a| last_segment(a).to_owned()));
            match named {
                Some(n) => Some((n, false)),
                // Service events often carry only the calling service.
                None => ui.invoked_by.known().map(|s| (s.to_owned(), true)),
            }
        }
    }
}

fn last_segment(s: &str) -> &str {
    s.rsplit(['/', ':']).next().unwrap_or(s)
}

/// The name inside an ARN or a plain name: `arn:aws:iam::1:role/x/y` -> `y`,
/// `arn:aws:secretsmanager:r:1:secret:db-AbCd` -> `db-AbCd`, `name` -> `name`.
fn name_of(s: &str) -> &str {
    if s.starts_with("arn:") {
        last_segment(s)
    } else {
        s
    }
}

fn access_resource(service: &str, event_name: &str, p: &Params<'_>) -> String {
    let named = |kind: &str, v: &str| format!("aws/{service}/{kind}/{}", name_of(v));
    let target = match service {
        "s3" => p.bucket_name.get().map(|b| named("bucket", b)),
        "iam" => p
            .role_name
            .get()
            .map(|v| named("role", v))
            .or_else(|| p.user_name.get().map(|v| named("user", v)))
            .or_else(|| p.group_name.get().map(|v| named("group", v)))
            .or_else(|| p.policy_arn.get().map(|v| named("policy", v))),
        // Assuming a role reaches the role, not STS.
        "sts" if event_name.starts_with("AssumeRole") => p
            .role_arn
            .get()
            .map(|a| format!("aws/iam/role/{}", name_of(a))),
        "secretsmanager" => p.secret_id.get().map(|v| named("secret", v)),
        "lambda" => p.function_name.get().map(|v| named("function", v)),
        "kms" => p.key_id.get().map(|v| named("key", v)),
        "ssm" => p.name.get().map(|v| named("parameter", v)),
        "ec2" => p
            .snapshot_id
            .get()
            .map(|v| named("snapshot", v))
            .or_else(|| p.image_id.get().map(|v| named("image", v))),
        "rds" => p
            .db_snapshot
            .get()
            .map(|v| named("snapshot", v))
            .or_else(|| {
                p.db_cluster_snapshot
                    .get()
                    .map(|v| named("cluster-snapshot", v))
            }),
        _ => None,
    };
    target.unwrap_or_else(|| format!("aws/{service}"))
}

fn is_authorisation_error(code: &str) -> bool {
    let c = code.to_ascii_lowercase();
    c.contains("denied") || c.contains("unauthorized") || c.contains("forbidden")
}

/// Events that change who may do what; with an `errorCode` they are denied attempts.
fn is_grant_event(event_name: &str) -> bool {
    matches!(
        event_name,
        "AttachUserPolicy"
            | "AttachRolePolicy"
            | "AttachGroupPolicy"
            | "PutUserPolicy"
            | "PutRolePolicy"
            | "PutGroupPolicy"
            | "AddUserToGroup"
            | "UpdateAssumeRolePolicy"
            | "CreateAccessKey"
            | "CreateLoginProfile"
            | "UpdateLoginProfile"
            | "ModifySnapshotAttribute"
            | "ModifyImageAttribute"
            | "ModifyDBSnapshotAttribute"
            | "ModifyDBClusterSnapshotAttribute"
            | "PutBucketPolicy"
            | "PutBucketAcl"
            | "PutKeyPolicy"
            | "PutResourcePolicy"
    ) || event_name.starts_with("AddPermission")
}

struct GrantContext<'c> {
    ts: Ts,
    base_id: &'c str,
    actor: &'c str,
    /// The actor is an IAM user (so "another user" can be told apart).
    actor_is_user: bool,
    actor_type: Option<ActorType>,
    /// The account the change is made in, when the record says.
    account: Option<&'c str>,
    reference: Option<&'c str>,
    /// `responseElements.accessKey.accessKeyId` (`CreateAccessKey`).
    access_key_id: Option<&'c str>,
}

/// One grantee of a multi-target grant.
struct Target {
    grantee: String,
    grantee_type: GranteeType,
    role: Option<String>,
}

impl GrantContext<'_> {
    fn grant(
        &self,
        id: String,
        grantee: String,
        ty: GranteeType,
        resource: String,
        role: Option<String>,
        target: Option<Box<Undo>>,
    ) -> Event {
        Event {
            ts: self.ts,
            id: Some(id.clone()),
            body: Body::Grant(Grant {
                grant_id: id,
                actor: self.actor.to_owned(),
                grantee,
                grantee_type: ty,
                resource,
                role,
                reference: self.reference.map(str::to_owned),
                actor_type: self.actor_type,
                target,
            }),
        }
    }

    fn single(
        &self,
        grantee: &str,
        ty: GranteeType,
        resource: String,
        role: Option<&str>,
        target: Option<Box<Undo>>,
    ) -> Event {
        self.grant(
            self.base_id.to_owned(),
            grantee.to_owned(),
            ty,
            resource,
            role.map(str::to_owned),
            target,
        )
    }

    /// One grant per target; `undo` says how to undo each.
    fn many(
        &self,
        targets: Vec<Target>,
        resource: &str,
        undo: impl Fn(&Target) -> Option<Box<Undo>>,
        out: &mut Events,
    ) {
        for (i, t) in targets.into_iter().enumerate() {
            let target = undo(&t);
            out.push(self.grant(
                format!("{}:{i}", self.base_id),
                foreign_name(&t.grantee, self.account).unwrap_or(t.grantee),
                t.grantee_type,
                resource.to_owned(),
                t.role,
                target,
            ));
        }
    }
}

/// Appends the grants / memberships a successful record makes (nothing if it
/// makes none or names no target).
fn grants(event_name: &str, service: &str, p: &Params<'_>, c: &GrantContext<'_>, out: &mut Events) {
    let user = || p.user_name.get();
    let role = || p.role_name.get();
    let group = || p.group_name.get();
    match event_name {
        "AttachUserPolicy" | "AttachRolePolicy" | "AttachGroupPolicy" => {
            let Some(arn) = p.policy_arn.get() else {
                return;
            };
            if let Some((grantee, ty)) = policy_holder(event_name, user(), role(), group()) {
                let (principal_type, principal) = holder(event_name, user(), role(), group());
                let target = Undo::IamPolicyAttachment {
                    principal_type: principal_type.to_owned(),
                    principal: principal.to_owned(),
                    policy_arn: arn.to_owned(),
                };
                out.push(c.single(&grantee, ty, arn.to_owned(), None, target.boxed()));
            }
        }
        "PutUserPolicy" | "PutRolePolicy" | "PutGroupPolicy" => {
            let Some(name) = p.policy_name.get() else {
                return;
            };
            let doc = p.policy_document.and_then(policy_value);
            // An inline policy that only denies takes privilege away.
            if doc.as_ref().is_some_and(|doc| !allows_anything(doc)) {
                return;
            }
            // Role `*`: the policy allows every action on every resource.
            let everything = doc.as_ref().filter(|d| allows_everything(d)).map(|_| "*");
            if let Some((grantee, ty)) = policy_holder(event_name, user(), role(), group()) {
                let (principal_type, principal) = holder(event_name, user(), role(), group());
                let target = Undo::IamInlinePolicy {
                    principal_type: principal_type.to_owned(),
                    principal: principal.to_owned(),
                    policy_name: name.to_owned(),
                    policy_document: doc.clone(),
                };
                out.push(c.single(
                    &grantee,
                    ty,
                    format!("inline:{name}"),
                    everything,
                    target.boxed(),
                ));
            }
        }
        "AddUserToGroup" => {
            let (Some(u), Some(g)) = (user(), group()) else {
                return;
            };
            out.push(Event {
                ts: c.ts,
                id: Some(c.base_id.to_owned()),
                body: Body::Membership(Membership {
                    actor: c.actor.to_owned(),
                    group: g.to_owned(),
                    member: u.to_owned(),
                    op: MembershipOp::Add,
                    grant_id: Some(c.base_id.to_owned()),
                    reference: c.reference.map(str::to_owned),
                    actor_type: c.actor_type,
                    target: Undo::IamGroupMembership {
                        group: g.to_owned(),
                        user: u.to_owned(),
                    }
                    .boxed(),
                }),
            });
        }
        "UpdateAssumeRolePolicy" => {
            let Some(r) = role() else { return };
            let Some(doc) = p.policy_document.and_then(policy_value) else {
                return;
            };
            let trust = |t: &Target| {
                Undo::IamTrust {
                    role: r.to_owned(),
                    principal: t.grantee.clone(),
                    policy_document: Some(doc.clone()),
                }
                .boxed()
            };
            c.many(
                policy_targets(&doc),
                &format!("aws/iam/role/{r}"),
                trust,
                out,
            );
        }
        "CreateAccessKey" | "CreateLoginProfile" | "UpdateLoginProfile" => {
            // Only for another user: the actor can then act as that user. An IAM
            // user on itself gains nothing; a role session is never the user.
            let Some(u) = user() else { return };
            if c.actor_is_user && c.actor == u {
                return;
            }
            let (what, target) = match (event_name, c.access_key_id) {
                ("CreateAccessKey", Some(key))
                    if !is_id(key, "AKIA", 16) && !is_id(key, "ASIA", 16) =>
                {
                    (
                        "access-key",
                        Undo::no_undo("the record's access key id is not an AWS access key id"),
                    )
                }
                ("CreateAccessKey", Some(key)) => (
                    "access-key",
                    Undo::IamAccessKey {
                        user: u.to_owned(),
                        access_key_id: key.to_owned(),
                    }
                    .boxed(),
                ),
                ("CreateAccessKey", None) => (
                    "access-key",
                    Undo::no_undo("the record's responseElements do not give the new key's id"),
                ),
                ("CreateLoginProfile", _) => (
                    "login-profile",
                    Undo::IamLoginProfile { user: u.to_owned() }.boxed(),
                ),
                _ => (
                    "login-profile",
                    Undo::no_undo(
                        "a changed console password cannot be changed back; reset it or delete the login profile by hand",
                    ),
                ),
            };
            out.push(c.single(
                c.actor,
                GranteeType::User,
                format!("aws/iam/user/{u}"),
                Some(what),
                target,
            ));
        }
        "ModifySnapshotAttribute" | "ModifyImageAttribute" => {
            let (perm, kind, id, role_name) = if event_name == "ModifySnapshotAttribute" {
                (
                    &p.create_volume_permission,
                    "snapshot",
                    p.snapshot_id.get(),
                    "createVolumePermission",
                )
            } else {
                (
                    &p.launch_permission,
                    "image",
                    p.image_id.get(),
                    "launchPermission",
                )
            };
            let Some(id) = id else { return };
            let items = perm
                .get()
                .and_then(|x| x.add.get())
                .map(|a| &a.items.0[..])
                .unwrap_or_default();
            let targets = items
                .iter()
                .filter_map(|it| {
                    if let Some(account) = it.user_id.get() {
                        Some(account_target(account, role_name))
                    } else if it.group.get() == Some("all") {
                        // `all` is the only group EC2 accepts: everyone.
                        Some(public_target(role_name))
                    } else {
                        None
                    }
                })
                .collect();
            let id_ok = is_id(id, if kind == "snapshot" { "snap-" } else { "ami-" }, 8);
            let share = |t: &Target| {
                if !id_ok || !is_account(&t.grantee) {
                    return Undo::no_undo(
                        "the record's snapshot / image id or account id is malformed",
                    );
                }
                Undo::Ec2Share {
                    resource_type: kind.to_owned(),
                    id: id.to_owned(),
                    account: shared_with(&t.grantee),
                }
                .boxed()
            };
            c.many(dedup(targets), &format!("aws/ec2/{kind}/{id}"), share, out);
        }
        "ModifyDBSnapshotAttribute" | "ModifyDBClusterSnapshotAttribute" => {
            if p.attribute_name.get() != Some("restore") {
                return;
            }
            let (resource, resource_type, id) =
                match (p.db_snapshot.get(), p.db_cluster_snapshot.get()) {
                    (Some(s), _) => (format!("aws/rds/snapshot/{s}"), "db-snapshot", s),
                    (None, Some(s)) => (
                        format!("aws/rds/cluster-snapshot/{s}"),
                        "db-cluster-snapshot",
                        s,
                    ),
                    (None, None) => return,
                };
            let targets = p
                .values_to_add
                .0
                .iter()
                .map(|v| {
                    if v == "all" {
                        public_target("restore")
                    } else {
                        account_target(v, "restore")
                    }
                })
                .collect();
            let share = |t: &Target| {
                if !is_account(&t.grantee) {
                    return Undo::no_undo("the record's account id is malformed");
                }
                Undo::RdsShare {
                    resource_type: resource_type.to_owned(),
                    id: id.to_owned(),
                    account: shared_with(&t.grantee),
                }
                .boxed()
            };
            c.many(dedup(targets), &resource, share, out);
        }
        "PutBucketPolicy" => {
            let Some(b) = p.bucket_name.get() else { return };
            let Some(doc) = p.bucket_policy.and_then(policy_value) else {
                return;
            };
            c.many(
                policy_targets(&doc),
                &format!("aws/s3/bucket/{b}"),
                |_| Undo::no_undo(WHOLE_POLICY),
                out,
            );
        }
        "PutBucketAcl" => {
            let Some(b) = p.bucket_name.get() else { return };
            c.many(
                acl_targets(p),
                &format!("aws/s3/bucket/{b}"),
                |_| Undo::no_undo(WHOLE_POLICY),
                out,
            );
        }
        "PutKeyPolicy" => {
            let Some(k) = p.key_id.get() else { return };
            let Some(doc) = p.policy.and_then(policy_value) else {
                return;
            };
            c.many(
                policy_targets(&doc),
                &format!("aws/kms/key/{}", name_of(k)),
                |_| Undo::no_undo(WHOLE_POLICY),
                out,
            );
        }
        "PutResourcePolicy" => {
            let resource = match (p.secret_id.get(), p.resource_arn.get(), p.policy_name.get()) {
                (Some(s), _, _) => format!("aws/{service}/secret/{}", name_of(s)),
                (None, Some(a), _) => format!("aws/{service}/{}", name_of(a)),
                (None, None, Some(n)) => format!("aws/{service}/resource-policy/{n}"),
                (None, None, None) => return,
            };
            let Some(doc) = p
                .resource_policy
                .or(p.policy_document)
                .or(p.policy)
                .and_then(policy_value)
            else {
                return;
            };
            c.many(
                policy_targets(&doc),
                &resource,
                |_| Undo::no_undo(WHOLE_POLICY),
                out,
            );
        }
        e if e.starts_with("AddPermission") && service == "lambda" => {
            let (Some(f), Some(who)) = (p.function_name.get(), p.principal.get()) else {
                return;
            };
            let role_name = p.action.get().unwrap_or("lambda:InvokeFunction");
            let t = if who == "*" {
                public_target(role_name)
            } else {
                account_target(who, role_name)
            };
            let undo = |_: &Target| match p.statement_id.get() {
                Some(sid) => Undo::LambdaPermission {
                    function: f.to_owned(),
                    statement_id: sid.to_owned(),
                    qualifier: p.qualifier.get().map(str::to_owned),
                    permission: p.action.get().map(|action| crate::undo::LambdaStatement {
                        principal: who.to_owned(),
                        action: action.to_owned(),
                        source_arn: p.source_arn.get().map(str::to_owned),
                        source_account: p.source_account.get().map(str::to_owned),
                        principal_org_id: p.principal_org_id.get().map(str::to_owned),
                        function_url_auth_type: p.function_url_auth_type.get().map(str::to_owned),
                    }),
                }
                .boxed(),
                None => Undo::no_undo("the record does not give the permission's statement id"),
            };
            c.many(
                vec![t],
                &format!("aws/lambda/function/{}", name_of(f)),
                undo,
                out,
            );
        }
        _ => {}
    }
}

/// `prefix` followed by at least `min` characters of the id alphabet AWS uses
/// (lower-case hex for EC2 ids, upper-case letters and digits for keys).
fn is_id(s: &str, prefix: &str, min: usize) -> bool {
    s.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() >= min
            && rest.len() <= 128
            && rest.bytes().all(|b| {
                if prefix.ends_with('-') {
                    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
                } else {
                    b.is_ascii_digit() || b.is_ascii_uppercase()
                }
            })
    })
}

/// A 12-digit account id, or `*` (everyone).
fn is_account(s: &str) -> bool {
    s == "*" || (s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()))
}

/// Why a resource-policy or ACL grant has no known undo.
const WHOLE_POLICY: &str = "the record holds the whole new policy or ACL, not the one before it: removing only this principal needs the policy edited by hand";

/// The IAM principal type and name a `*UserPolicy` / `*RolePolicy` /
/// `*GroupPolicy` call names (the caller has checked that it names one).
fn holder<'p>(
    event_name: &str,
    user: Option<&'p str>,
    role: Option<&'p str>,
    group: Option<&'p str>,
) -> (&'static str, &'p str) {
    if event_name.ends_with("UserPolicy") {
        ("user", user.unwrap_or_default())
    } else if event_name.ends_with("RolePolicy") {
        ("role", role.unwrap_or_default())
    } else {
        ("group", group.unwrap_or_default())
    }
}

fn policy_holder(
    event_name: &str,
    user: Option<&str>,
    role: Option<&str>,
    group: Option<&str>,
) -> Option<(String, GranteeType)> {
    if event_name.ends_with("UserPolicy") {
        user.map(|u| (u.to_owned(), GranteeType::User))
    } else if event_name.ends_with("RolePolicy") {
        role.map(|r| (format!("role/{r}"), GranteeType::User))
    } else {
        group.map(|g| (g.to_owned(), GranteeType::Group))
    }
}

fn account_target(principal: &str, role: &str) -> Target {
    Target {
        grantee: principal.to_owned(),
        grantee_type: GranteeType::User,
        role: Some(role.to_owned()),
    }
}

/// Everyone: the grantee `*`, as a group.
fn public_target(role: &str) -> Target {
    Target {
        grantee: "*".to_owned(),
        grantee_type: GranteeType::Group,
        role: Some(role.to_owned()),
    }
}

/// The account a snapshot / image / DB snapshot share names in its undo: the
/// grantee's account id, or `all` for a public share (grantee `*`).
fn shared_with(grantee: &str) -> String {
    if grantee == "*" { "all" } else { grantee }.to_owned()
}

fn dedup(mut targets: Vec<Target>) -> Vec<Target> {
    let mut seen = std::collections::HashSet::new();
    targets.retain(|t| seen.insert(t.grantee.clone()));
    targets
}

/// A policy document given as an object, a JSON string, or a URL-encoded JSON
/// string (IAM writes the latter in some records).
fn policy_value(raw: &RawValue) -> Option<Value> {
    let v: Value = serde_json::from_str(raw.get()).ok()?;
    match v {
        Value::Object(_) => Some(v),
        Value::String(s) => {
            let s = if s.trim_start().starts_with('%') {
                percent_decode(&s)?
            } else {
                s
            };
            serde_json::from_str::<Value>(&s)
                .ok()
                .filter(Value::is_object)
        }
        _ => None,
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn statements(doc: &Value) -> impl Iterator<Item = &Value> {
    let st = doc.get("Statement");
    let list: &[Value] = match st {
        Some(Value::Array(a)) => a,
        Some(v @ Value::Object(_)) => std::slice::from_ref(v),
        _ => &[],
    };
    list.iter()
}

fn is_allow(st: &Value) -> bool {
    st.get("Effect").and_then(Value::as_str) == Some("Allow")
}

fn allows_anything(doc: &Value) -> bool {
    statements(doc).any(is_allow)
}

/// An `Allow` of action `*` (or `*:*`) on resource `*`: administrator access.
fn allows_everything(doc: &Value) -> bool {
    statements(doc).filter(|s| is_allow(s)).any(|st| {
        strings(st.get("Action"))
            .iter()
            .any(|a| matches!(*a, "*" | "*:*"))
            && strings(st.get("Resource")).contains(&"*")
    })
}

/// The account of an ARN: `arn:aws:iam::111122223333:user/x` -> `111122223333`.
fn arn_account(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// Whether `s` is an AWS account id (twelve digits).
fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The name of a grantee in another account than `own`: a bare account id or
/// `arn:...:ACCOUNT:root` becomes `account/ACCOUNT`, any other principal ARN
/// of another account `account/ACCOUNT/<rest>`; `None` for everything else
/// (the own account, services, `*`). With the own account unknown, only a
/// bare account id is named so: sharing with an account is sharing outside.
fn foreign_name(grantee: &str, own: Option<&str>) -> Option<String> {
    let (account, rest) = if is_account_id(grantee) {
        (grantee, "root")
    } else if grantee.starts_with("arn:") {
        let account = arn_account(grantee)?;
        own?;
        (account, grantee.splitn(6, ':').nth(5).unwrap_or("root"))
    } else {
        return None;
    };
    if own == Some(account) || !is_account_id(account) {
        return None;
    }
    Some(if rest == "root" {
        format!("account/{account}")
    } else {
        format!("account/{account}/{rest}")
    })
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The principals the `Allow` statements of a policy name, each with the actions
/// it is allowed (`*` is everyone, as a group).
fn policy_targets(doc: &Value) -> Vec<Target> {
    let mut out = Vec::new();
    for st in statements(doc).filter(|s| is_allow(s)) {
        let actions = strings(st.get("Action")).join(",");
        let role = (!actions.is_empty()).then_some(actions);
        let principals: Vec<&str> = match st.get("Principal") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Object(m)) => m.values().flat_map(|v| strings(Some(v))).collect(),
            _ => Vec::new(),
        };
        for p in principals {
            out.push(Target {
                grantee: p.to_owned(),
                grantee_type: if p == "*" {
                    GranteeType::Group
                } else {
                    GranteeType::User
                },
                role: role.clone(),
            });
        }
    }
    dedup(out)
}

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// Grantees of a bucket ACL: canned ACLs that open the bucket, and the explicit
/// grants of an `AccessControlPolicy` other than the owner's own.
fn acl_targets(p: &Params<'_>) -> Vec<Target> {
    let mut out = Vec::new();
    for canned in &p.canned_acl.0 {
        match canned.as_ref() {
            "public-read" | "public-read-write" => out.push(public_target(canned)),
            "authenticated-read" => out.push(Target {
                grantee: "aws:authenticated-users".to_owned(),
                grantee_type: GranteeType::Group,
                role: Some(canned.to_string()),
            }),
            _ => {}
        }
    }
    let Some(acp) = p
        .access_control_policy
        .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok())
    else {
        return dedup(out);
    };
    let owner = acp.pointer("/Owner/ID").and_then(Value::as_str);
    let grants = match acp.pointer("/AccessControlList/Grant") {
        Some(Value::Array(a)) => a.clone(),
        Some(v @ Value::Object(_)) => vec![v.clone()],
        _ => Vec::new(),
    };
    for g in &grants {
        let perm = g
            .get("Permission")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let grantee = g.get("Grantee");
        let field = |k: &str| grantee.and_then(|x| x.get(k)).and_then(Value::as_str);
        let t = match (field("URI"), field("ID"), field("EmailAddress")) {
            (Some(ALL_USERS), _, _) => Some(("*".to_owned(), GranteeType::Group)),
            (Some(AUTHENTICATED_USERS), _, _) => {
                Some(("aws:authenticated-users".to_owned(), GranteeType::Group))
            }
            (Some(uri), _, _) => Some((uri.to_owned(), GranteeType::Group)),
            (None, Some(id), _) if Some(id) != owner => Some((id.to_owned(), GranteeType::User)),
            (None, None, Some(email)) => Some((email.to_owned(), GranteeType::User)),
            _ => None,
        };
        if let Some((grantee, grantee_type)) = t {
            out.push(Target {
                grantee,
                grantee_type,
                role: perm,
            });
        }
    }
    dedup(out)
}

/// Used by the tests of other modules that need a CloudTrail line.
#[cfg(test)]
pub(crate) fn sample_attach_user_policy(event_id: &str, actor: &str, user: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.09","userIdentity":{{"type":"IAMUser","userName":"{actor}","arn":"arn:aws:iam::111122223333:user/{actor}","accountId":"111122223333"}},"eventTime":"2026-03-18T09:07:02Z","eventSource":"iam.amazonaws.com","eventName":"AttachUserPolicy","requestParameters":{{"userName":"{user}","policyArn":"arn:aws:iam::aws:policy/AdministratorAccess"}},"responseElements":null,"eventID":"{event_id}"}}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(line: &str) -> Result<Vec<Event>, DecodeError> {
        CloudTrailDecoder::default().decode_owned(line.as_bytes())
    }

    fn one(line: &str) -> Body {
        let mut v = decode(line).unwrap();
        assert_eq!(v.len(), 1, "{v:?}");
        v.remove(0).body
    }

    fn record(identity: &str, name: &str, params: &str, extra: &str) -> String {
        format!(
            r#"{{"eventTime":"2024-08-01T13:29:57Z","eventSource":"{src}.amazonaws.com","eventName":"{name}","eventID":"e-1","userIdentity":{identity},"requestParameters":{params}{extra}}}"#,
            src = if name.contains("Bucket") {
                "s3"
            } else if name.contains("Snapshot") || name.contains("Image") {
                "ec2"
            } else if name.starts_with("AddPermission") {
                "lambda"
            } else if name == "PutKeyPolicy" {
                "kms"
            } else if name == "PutResourcePolicy" {
                "secretsmanager"
            } else {
                "iam"
            }
        )
    }

    const ALICE: &str =
        r#"{"type":"IAMUser","userName":"alice","arn":"arn:aws:iam::1:user/alice"}"#;
    const SESSION: &str = r#"{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/ops/agent-7","sessionContext":{"sourceIdentity":"adv-7731"}}"#;

    #[test]
    fn targets_keep_the_documents_and_statement_a_restore_or_exact_undo_needs() {
        let target = |line: &str| match one(line) {
            Body::Grant(g) => *g.target.unwrap(),
            b => panic!("{b:?}"),
        };
        let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
        let params = format!(
            r#"{{"userName":"bob","policyName":"p","policyDocument":{}}}"#,
            serde_json::to_string(doc).unwrap()
        );
        let Undo::IamInlinePolicy {
            policy_document, ..
        } = target(&record(ALICE, "PutUserPolicy", &params, ""))
        else {
            panic!()
        };
        assert_eq!(
            policy_document,
            Some(serde_json::from_str::<Value>(doc).unwrap())
        );
        let trust = r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"sts:AssumeRole"}]}"#;
        let params = format!(r#"{{"roleName":"r","policyDocument":{trust}}}"#);
        let Undo::IamTrust {
            policy_document, ..
        } = target(&record(ALICE, "UpdateAssumeRolePolicy", &params, ""))
        else {
            panic!()
        };
        assert_eq!(
            policy_document,
            Some(serde_json::from_str::<Value>(trust).unwrap())
        );
        let params = r#"{"functionName":"f","statementId":"s3-invoke","action":"lambda:InvokeFunction","principal":"s3.amazonaws.com","sourceArn":"arn:aws:s3:::b","sourceAccount":"111122223333","qualifier":"prod"}"#;
        assert_eq!(
            target(&record(ALICE, "AddPermission20150331v2", params, "")),
            Undo::LambdaPermission {
                function: "f".into(),
                statement_id: "s3-invoke".into(),
                qualifier: Some("prod".into()),
                permission: Some(crate::undo::LambdaStatement {
                    principal: "s3.amazonaws.com".into(),
                    action: "lambda:InvokeFunction".into(),
                    source_arn: Some("arn:aws:s3:::b".into()),
                    source_account: Some("111122223333".into()),
                    principal_org_id: None,
                    function_url_auth_type: None,
                }),
            }
        );
    }

    #[test]
    fn policy_attach_is_a_grant_named_after_the_event() {
        let b = one(&sample_attach_user_policy("abc", "alice", "bob"));
        let Body::Grant(g) = b else { panic!("{b:?}") };
        assert_eq!(g.grant_id, "ct:abc");
        assert_eq!(g.actor, "alice");
        assert_eq!(g.grantee, "bob");
        assert_eq!(g.grantee_type, GranteeType::User);
        assert_eq!(g.resource, "arn:aws:iam::aws:policy/AdministratorAccess");
        assert_eq!(g.actor_type, None);

        let b = one(&record(
            SESSION,
            "AttachRolePolicy",
            r#"{"roleName":"deploy","policyArn":"arn:aws:iam::1:policy/p"}"#,
            "",
        ));
        let Body::Grant(g) = b else { panic!("{b:?}") };
        assert_eq!(g.actor, "role/ops/agent-7");
        assert_eq!(g.grantee, "role/deploy");
        assert_eq!(g.reference.as_deref(), Some("adv-7731"));

        let b = one(&record(
            ALICE,
            "AttachGroupPolicy",
            r#"{"groupName":"devs","policyArn":"arn:aws:iam::1:policy/p"}"#,
            "",
        ));
        let Body::Grant(g) = b else { panic!("{b:?}") };
        assert_eq!(
            (g.grantee.as_str(), g.grantee_type),
            ("devs", GranteeType::Group)
        );
    }

    #[test]
    fn a_failed_grant_is_a_denied_access_not_a_grant() {
        let b = one(&record(
            ALICE,
            "AttachUserPolicy",
            r#"{"userName":"bob","policyArn":"arn:aws:iam::aws:policy/AdministratorAccess"}"#,
            r#","errorCode":"NoSuchEntity""#,
        ));
        let Body::Access(a) = b else { panic!("{b:?}") };
        assert_eq!(a.outcome, Outcome::Denied);
        assert_eq!(a.resource, "aws/iam/user/bob");
        assert_eq!(a.action.as_deref(), Some("AttachUserPolicy"));
    }

    #[test]
    fn inline_policies_grant_unless_they_only_deny() {
        let allow = r#"{"userName":"bob","policyName":"ops","policyDocument":"{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}]}"}"#;
        let Body::Grant(g) = one(&record(ALICE, "PutUserPolicy", allow, "")) else {
            panic!()
        };
        assert_eq!(g.resource, "inline:ops");
        let deny = r#"{"userName":"bob","policyName":"quarantine","policyDocument":"{\"Statement\":[{\"Effect\":\"Deny\",\"Action\":\"*\",\"Resource\":\"*\"}]}"}"#;
        assert!(matches!(
            one(&record(ALICE, "PutUserPolicy", deny, "")),
            Body::Access(_)
        ));
        let encoded = r#"{"roleName":"r","policyName":"p","policyDocument":"%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3A*%22%7D%5D%7D"}"#;
        let Body::Grant(g) = one(&record(ALICE, "PutRolePolicy", encoded, "")) else {
            panic!()
        };
        assert_eq!(g.grantee, "role/r");
    }

    #[test]
    fn group_add_is_a_membership() {
        let Body::Membership(m) = one(&record(
            ALICE,
            "AddUserToGroup",
            r#"{"userName":"Bob","groupName":"admin"}"#,
            "",
        )) else {
            panic!()
        };
        assert_eq!((m.group.as_str(), m.member.as_str()), ("admin", "Bob"));
        assert_eq!(m.op, MembershipOp::Add);
        assert_eq!(m.grant_id.as_deref(), Some("ct:e-1"));
    }

    #[test]
    fn trust_policy_change_grants_each_trusted_principal_the_role() {
        let params = r#"{"roleName":"backdoor","policyDocument":"{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"Service\":\"ec2.amazonaws.com\"},\"Action\":\"sts:AssumeRole\"},{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":[\"arn:aws:iam::193672423079:root\"]},\"Action\":\"sts:AssumeRole\"}]}"}"#;
        let ev = decode(&record(ALICE, "UpdateAssumeRolePolicy", params, "")).unwrap();
        let grants: Vec<(String, String, String)> = ev
            .into_iter()
            .map(|e| match e.body {
                Body::Grant(g) => (g.grant_id, g.grantee, g.resource),
                b => panic!("{b:?}"),
            })
            .collect();
        assert_eq!(
            grants,
            [
                (
                    "ct:e-1:0".into(),
                    "ec2.amazonaws.com".into(),
                    "aws/iam/role/backdoor".into()
                ),
                (
                    "ct:e-1:1".into(),
                    "account/193672423079".into(),
                    "aws/iam/role/backdoor".into()
                ),
            ]
        );
    }

    #[test]
    fn grantees_of_another_account_are_named_as_foreign_accounts() {
        let grantees = |identity: &str, extra: &str, principals: &str| -> Vec<String> {
            let doc = format!(
                r#"{{\"Statement\":[{{\"Effect\":\"Allow\",\"Principal\":{{\"AWS\":{principals}}},\"Action\":\"sts:AssumeRole\"}}]}}"#
            );
            let params = format!(r#"{{"roleName":"r","policyDocument":"{doc}"}}"#);
            decode(&record(identity, "UpdateAssumeRolePolicy", &params, extra))
                .unwrap()
                .into_iter()
                .map(|e| match e.body {
                    Body::Grant(g) => g.grantee,
                    b => panic!("{b:?}"),
                })
                .collect()
        };
        let own = r#"{"type":"IAMUser","userName":"alice","accountId":"111122223333"}"#;
        let principals = r#"[\"arn:aws:iam::111122223333:root\",\"arn:aws:iam::444455556666:role/ci\",\"777788889999\",\"111122223333\"]"#;
        assert_eq!(
            grantees(own, "", principals),
            [
                "arn:aws:iam::111122223333:root",
                "account/444455556666/role/ci",
                "account/777788889999",
                "111122223333"
            ]
        );
        // The account the record was delivered to wins over the caller's.
        let delivered = r#","recipientAccountId":"444455556666""#;
        assert_eq!(
            grantees(own, delivered, principals),
            [
                "account/111122223333",
                "arn:aws:iam::444455556666:role/ci",
                "account/777788889999",
                "account/111122223333"
            ]
        );
        // With no account known, only bare account ids are foreign.
        let nobody = r#"{"type":"IAMUser","userName":"alice"}"#;
        assert_eq!(
            grantees(nobody, "", principals),
            [
                "arn:aws:iam::111122223333:root",
                "arn:aws:iam::444455556666:role/ci",
                "account/777788889999",
                "account/111122223333"
            ]
        );
    }

    #[test]
    fn an_inline_policy_allowing_everything_has_role_star() {
        let all = r#"{"userName":"bob","policyName":"p","policyDocument":"{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}}"}"#;
        let Body::Grant(g) = one(&record(ALICE, "PutUserPolicy", all, "")) else {
            panic!()
        };
        assert_eq!(
            (g.resource.as_str(), g.role.as_deref()),
            ("inline:p", Some("*"))
        );
        let some = all.replace(r#"\"Action\":\"*\""#, r#"\"Action\":\"s3:GetObject\""#);
        let Body::Grant(g) = one(&record(ALICE, "PutUserPolicy", &some, "")) else {
            panic!()
        };
        assert_eq!(g.role, None);
    }

    #[test]
    fn access_keys_count_only_for_another_user() {
        let own = record(ALICE, "CreateAccessKey", r#"{"userName":"alice"}"#, "");
        assert!(matches!(one(&own), Body::Access(_)));
        let none = record(ALICE, "CreateAccessKey", "null", "");
        assert!(matches!(one(&none), Body::Access(_)));
        let Body::Grant(g) = one(&record(
            ALICE,
            "CreateAccessKey",
            r#"{"userName":"admin"}"#,
            "",
        )) else {
            panic!()
        };
        assert_eq!(g.grantee, "alice");
        assert_eq!(g.resource, "aws/iam/user/admin");
        assert_eq!(g.role.as_deref(), Some("access-key"));
        // A role session named like the user is still not that user.
        let Body::Grant(g) = one(&record(
            r#"{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/IAM/alice"}"#,
            "UpdateLoginProfile",
            r#"{"userName":"alice"}"#,
            "",
        )) else {
            panic!()
        };
        assert_eq!(g.role.as_deref(), Some("login-profile"));
    }

    #[test]
    fn resource_shares_grant_each_account_or_everyone() {
        let ev = decode(&record(
            ALICE,
            "ModifySnapshotAttribute",
            r#"{"snapshotId":"snap-1","createVolumePermission":{"add":{"items":[{"userId":"111"},{"group":"all"},{"group":"none"}]}}}"#,
            "",
        ))
        .unwrap();
        let got: Vec<(String, GranteeType)> = ev
            .iter()
            .map(|e| match &e.body {
                Body::Grant(g) => {
                    assert_eq!(g.resource, "aws/ec2/snapshot/snap-1");
                    (g.grantee.clone(), g.grantee_type)
                }
                b => panic!("{b:?}"),
            })
            .collect();
        assert_eq!(
            got,
            [
                ("111".to_owned(), GranteeType::User),
                ("*".to_owned(), GranteeType::Group)
            ]
        );
        let Body::Grant(g) = one(&record(
            ALICE,
            "PutBucketPolicy",
            r#"{"bucketName":"b","bucketPolicy":{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:GetObject"}]}}"#,
            "",
        )) else {
            panic!()
        };
        assert_eq!(
            (g.grantee.as_str(), g.resource.as_str()),
            ("*", "aws/s3/bucket/b")
        );
        assert_eq!(g.role.as_deref(), Some("s3:GetObject"));
        // A private ACL opens nothing.
        assert!(matches!(
            one(&record(
                ALICE,
                "PutBucketAcl",
                r#"{"bucketName":"b","x-amz-acl":["private"]}"#,
                ""
            )),
            Body::Access(_)
        ));
        let Body::Grant(g) = one(&record(
            ALICE,
            "PutBucketAcl",
            r#"{"bucketName":"b","AccessControlPolicy":{"Owner":{"ID":"o"},"AccessControlList":{"Grant":[{"Grantee":{"ID":"o"},"Permission":"FULL_CONTROL"},{"Grantee":{"URI":"http://acs.amazonaws.com/groups/global/AllUsers"},"Permission":"READ"}]}}}"#,
            "",
        )) else {
            panic!()
        };
        assert_eq!((g.grantee.as_str(), g.role.as_deref()), ("*", Some("READ")));
        let Body::Grant(g) = one(&record(
            ALICE,
            "AddPermission20150331v2",
            r#"{"action":"lambda:InvokeFunction","functionName":"f","principal":"*","statementId":"s"}"#,
            "",
        )) else {
            panic!()
        };
        assert_eq!(g.resource, "aws/lambda/function/f");
        let Body::Grant(g) = one(&record(
            ALICE,
            "PutResourcePolicy",
            r#"{"secretId":"arn:aws:secretsmanager:us-east-1:1:secret:db","resourcePolicy":"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"secretsmanager:GetSecretValue\"}}"}"#,
            "",
        )) else {
            panic!()
        };
        assert_eq!(g.resource, "aws/secretsmanager/secret/db");
    }

    #[test]
    fn principals_are_named_so_patterns_can_match_them() {
        let cases = [
            (ALICE, "alice"),
            (SESSION, "role/ops/agent-7"),
            (
                r#"{"type":"AssumedRole","principalId":"AROA1:bot","sessionContext":{"sessionIssuer":{"userName":"ci"}}}"#,
                "role/ci/bot",
            ),
            (r#"{"type":"Root","arn":"arn:aws:iam::1:root"}"#, "root"),
            (
                r#"{"type":"FederatedUser","arn":"arn:aws:sts::1:federated-user/carol"}"#,
                "federated/carol",
            ),
            (
                r#"{"type":"AWSService","invokedBy":"ec2.amazonaws.com"}"#,
                "ec2.amazonaws.com",
            ),
            (
                r#"{"type":"AWSAccount","accountId":"222","principalId":"AROA:x"}"#,
                "account/222",
            ),
            (
                r#"{"accountId":"1","invokedBy":"cloudtrail.amazonaws.com"}"#,
                "cloudtrail.amazonaws.com",
            ),
            (
                r#"{"type":"AssumedRole","userName":"TestRole"}"#,
                "role/TestRole",
            ),
        ];
        for (identity, want) in cases {
            let Body::Access(a) = one(&record(
                identity,
                "GetSecretValue",
                r#"{"secretId":"s"}"#,
                "",
            )) else {
                panic!()
            };
            assert_eq!(a.principal, want, "{identity}");
        }
        // Nobody named: skipped.
        assert_eq!(
            decode(&record("{}", "GetObject", "null", "")).unwrap(),
            vec![]
        );
    }

    #[test]
    fn access_resources_name_the_target() {
        let cases = [
            (
                "s3",
                "GetObject",
                r#"{"bucketName":"data","key":"k"}"#,
                "aws/s3/bucket/data",
            ),
            (
                "sts",
                "AssumeRole",
                r#"{"roleArn":"arn:aws:iam::1:role/admin","roleSessionName":"x"}"#,
                "aws/iam/role/admin",
            ),
            ("ec2", "DescribeInstances", "null", "aws/ec2"),
            (
                "secretsmanager",
                "GetSecretValue",
                r#"{"secretId":"arn:aws:secretsmanager:r:1:secret:db-AbC"}"#,
                "aws/secretsmanager/secret/db-AbC",
            ),
        ];
        for (src, name, params, want) in cases {
            let line = format!(
                r#"{{"eventTime":"2024-08-01T13:29:57Z","eventSource":"{src}.amazonaws.com","eventName":"{name}","userIdentity":{ALICE},"requestParameters":{params}}}"#
            );
            let Body::Access(a) = one(&line) else {
                panic!()
            };
            assert_eq!(a.resource, want);
            assert_eq!(a.outcome, Outcome::Success);
        }
    }

    #[test]
    fn console_login_failures_and_access_denied_are_denied() {
        let line = format!(
            r#"{{"eventTime":"2024-08-01T13:29:57Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","userIdentity":{ALICE},"responseElements":{{"ConsoleLogin":"Failure"}}}}"#
        );
        let Body::Access(a) = one(&line) else {
            panic!()
        };
        assert_eq!(
            (a.resource.as_str(), a.outcome),
            ("aws/signin", Outcome::Denied)
        );
        let line = record(
            ALICE,
            "GetSecretValue",
            "null",
            r#","errorCode":"AccessDenied""#,
        );
        let Body::Access(a) = one(&line) else {
            panic!()
        };
        assert_eq!(a.outcome, Outcome::Denied);
        // A failure after authorisation still reached the resource.
        let line = record(
            ALICE,
            "GetSecretValue",
            "null",
            r#","errorCode":"ResourceNotFoundException""#,
        );
        let Body::Access(a) = one(&line) else {
            panic!()
        };
        assert_eq!(a.outcome, Outcome::Success);
    }

    #[test]
    fn delivery_documents_and_lookup_events_are_unwrapped() {
        let a = sample_attach_user_policy("one", "alice", "bob");
        let b = record(ALICE, "GetSecretValue", r#"{"secretId":"s"}"#, "");
        let doc = format!(r#"{{"Records":[{a},{b}]}}"#);
        let ev = decode(&doc).unwrap();
        assert_eq!(ev.len(), 2);
        assert!(matches!(ev[0].body, Body::Grant(_)));
        assert!(matches!(ev[1].body, Body::Access(_)));
        assert_eq!(decode(r#"{"Records":[]}"#).unwrap(), vec![]);

        let lookup =
            serde_json::json!({"EventId":"x","EventName":"AttachUserPolicy","CloudTrailEvent": a})
                .to_string();
        let ev = decode(&lookup).unwrap();
        assert!(matches!(&ev[0].body, Body::Grant(g) if g.grant_id == "ct:one"));
    }

    #[test]
    fn records_without_time_take_the_previous_time_and_without_ids_get_a_content_id() {
        let mut d = CloudTrailDecoder::default();
        let mut run = Events::default();
        let no_time = r#"{"eventSource":"iam.amazonaws.com","eventName":"AddUserToGroup","userIdentity":{"type":"IAMUser","userName":"a"},"requestParameters":{"userName":"b","groupName":"g"}}"#;
        assert_eq!(
            d.decode(no_time.as_bytes(), &mut run),
            Err(DecodeError::MissingField {
                event_type: "CloudTrail",
                field: "eventTime"
            })
        );
        d.decode(
            sample_attach_user_policy("1", "a", "b").as_bytes(),
            &mut run,
        )
        .unwrap();
        d.decode(no_time.as_bytes(), &mut run).unwrap();
        let out = run.to_vec();
        assert_eq!(out[1].ts, out[0].ts);
        let Body::Membership(m) = &out[1].body else {
            panic!()
        };
        let id = m.grant_id.clone().unwrap();
        assert!(id.starts_with("ct:h"), "{id}");
        let again = d.decode_owned(no_time.as_bytes()).unwrap();
        assert!(
            matches!(&again[0].body, Body::Membership(m) if m.grant_id.as_deref() == Some(id.as_str()))
        );
    }

    #[test]
    fn malformed_lines_are_errors_not_panics() {
        assert!(matches!(decode("not json"), Err(DecodeError::Json(_))));
        assert!(matches!(decode("[1,2]"), Err(DecodeError::Json(_))));
        assert_eq!(
            decode(r#"{"kind":0}"#),
            Err(DecodeError::Unrecognized {
                format: "CloudTrail",
                reason: "no eventName"
            })
        );
        assert_eq!(decode("").unwrap(), vec![]);
        // Wrong types in fields the decoder reads degrade, they do not fail the record.
        let odd = r#"{"eventTime":"2024-08-01T13:29:57Z","eventName":"X","eventSource":7,"userIdentity":{"type":"IAMUser","userName":["x"],"arn":"arn:aws:iam::1:user/path/eve"},"requestParameters":"text"}"#;
        let Body::Access(a) = one(odd) else { panic!() };
        assert_eq!(
            (a.principal.as_str(), a.resource.as_str()),
            ("eve", "aws/7")
        );
    }
}
