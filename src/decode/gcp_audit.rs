//! The `gcp-audit` decoder: Google Cloud audit log entries (a `LogEntry` whose
//! `protoPayload` is an `AuditLog`), one per line.
//!
//! - principal: `authenticationInfo.principalEmail`, else `principalSubject`;
//!   entries without one (and non-audit entries: `textPayload`, `jsonPayload`)
//!   are skipped;
//! - access resource: `gcp/<scope>/<service>` where the scope is
//!   `projects/<id>`, `organizations/<id>` or `folders/<id>` (from the
//!   `resourceName`, else the monitored resource's `project_id`, else the
//!   `logName`) and the service is `serviceName` without `.googleapis.com`;
//!   `action` is the `methodName`; status `PERMISSION_DENIED` (7) or
//!   `UNAUTHENTICATED` (16), or an `authorizationInfo` entry with
//!   `granted: false`, is `denied`;
//! - grants: `SetIamPolicy` with binding deltas (`serviceData.policyDelta`, or
//!   `metadata` / `metadata.datasetChange`): one grant per `ADD`, on
//!   `gcp/<resourceName>`, role = the IAM role, grantee = the member without its
//!   `user:` / `serviceAccount:` / `group:` / `domain:` prefix (`group:` and
//!   `domain:` are groups, `allUsers` is `*`);
//!   `CreateServiceAccountKey` (the caller can now act as the service account:
//!   grantee = the caller, on `gcp/<resourceName>`, role `service-account-key`);
//!   GKE `io.k8s.rbac.v1.(cluster)rolebindings.create|update|patch`, named as in
//!   the `k8s-audit` format. `grant_id` is `gcp:<insertId>:<n>`.
//!
//! A `SetIamPolicy` entry without deltas (most services other than Resource
//! Manager log only the whole new policy) is an access: what changed cannot be
//! told without the previous policy.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::json::{self, Obj, Objs, Str};
use super::k8s_audit::Binding;
use super::time::{EventClock, parse_datetime};
use super::{DecodeError, Decoder};
use crate::event::{AccessRef, Body, Event, Events, Grant, GranteeType, Outcome, Ts};
use crate::undo::Target;

/// Decoder for Google Cloud audit log entries.
#[derive(Debug, Default)]
pub struct GcpAuditDecoder {
    clock: EventClock,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LogEntry<'a> {
    #[serde(borrow, rename = "protoPayload")]
    proto: Obj<AuditLog<'a>>,
    #[serde(borrow)]
    timestamp: Str<'a>,
    #[serde(borrow, rename = "receiveTimestamp")]
    receive_timestamp: Str<'a>,
    // Lower-cased keys as some data lakes store them; separate fields, not serde
    // aliases, because a record can hold both spellings.
    #[serde(borrow, rename = "receivetimestamp")]
    receive_timestamp_lc: Str<'a>,
    #[serde(borrow)]
    p_event_time: Str<'a>,
    #[serde(borrow, rename = "insertId")]
    insert_id: Str<'a>,
    #[serde(borrow, rename = "insertid")]
    insert_id_lc: Str<'a>,
    #[serde(borrow, rename = "logName")]
    log_name: Str<'a>,
    #[serde(borrow, rename = "logname")]
    log_name_lc: Str<'a>,
    #[serde(borrow)]
    resource: Obj<MonitoredResource<'a>>,
    #[serde(borrow, rename = "textPayload")]
    text_payload: Str<'a>,
    #[serde(borrow, rename = "jsonPayload")]
    json_payload: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MonitoredResource<'a> {
    #[serde(borrow)]
    labels: Obj<Labels<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Labels<'a> {
    #[serde(borrow)]
    project_id: Str<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AuditLog<'a> {
    #[serde(borrow, rename = "methodName")]
    method_name: Str<'a>,
    #[serde(borrow, rename = "serviceName")]
    service_name: Str<'a>,
    #[serde(borrow, rename = "resourceName")]
    resource_name: Str<'a>,
    #[serde(borrow, rename = "authenticationInfo")]
    authentication: Obj<AuthenticationInfo<'a>>,
    #[serde(borrow, rename = "authorizationInfo")]
    authorization: Objs<AuthorizationInfo<'a>>,
    #[serde(borrow)]
    status: Obj<Status<'a>>,
    #[serde(borrow, rename = "serviceData")]
    service_data: Obj<ServiceData<'a>>,
    #[serde(borrow)]
    metadata: Obj<Metadata<'a>>,
    #[serde(borrow)]
    request: Option<&'a RawValue>,
    #[serde(borrow)]
    response: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AuthenticationInfo<'a> {
    #[serde(borrow, rename = "principalEmail")]
    principal_email: Str<'a>,
    #[serde(borrow, rename = "principalSubject")]
    principal_subject: Str<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AuthorizationInfo<'a> {
    #[serde(borrow)]
    granted: Str<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Status<'a> {
    #[serde(borrow)]
    code: Str<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ServiceData<'a> {
    #[serde(borrow, rename = "policyDelta")]
    policy_delta: Obj<PolicyDelta<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PolicyDelta<'a> {
    #[serde(borrow, rename = "bindingDeltas")]
    binding_deltas: Objs<BindingDelta<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Metadata<'a> {
    #[serde(borrow, rename = "bindingDeltas")]
    binding_deltas: Objs<BindingDelta<'a>>,
    #[serde(borrow, rename = "datasetChange")]
    dataset_change: Obj<PolicyDelta<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BindingDelta<'a> {
    #[serde(borrow)]
    action: Str<'a>,
    #[serde(borrow)]
    role: Str<'a>,
    #[serde(borrow)]
    member: Str<'a>,
}

const NAME: &str = "Google Cloud audit";

impl Decoder for GcpAuditDecoder {
    fn decode(&mut self, line: &[u8], out: &mut Events) -> Result<(), DecodeError> {
        let Some(text) = json::text(line)? else {
            return Ok(());
        };
        let entry: LogEntry<'_> = json::object(text)?;
        let insert_id = entry.insert_id.get().or(entry.insert_id_lc.get());
        let log_name = entry.log_name.get().or(entry.log_name_lc.get());
        let own = entry
            .timestamp
            .get()
            .or(entry.receive_timestamp.get())
            .or(entry.receive_timestamp_lc.get())
            .or(entry.p_event_time.get())
            .and_then(parse_datetime);
        let Some(audit) = entry.proto.get() else {
            let is_log_entry = log_name.is_some()
                || insert_id.is_some()
                || entry.text_payload.get().is_some()
                || entry.json_payload.is_some();
            if is_log_entry {
                // A log entry, just not an audit entry.
                self.clock.resolve(own);
                return Ok(());
            }
            return Err(DecodeError::Unrecognized {
                format: NAME,
                reason: "no protoPayload",
            });
        };
        let ts = self.clock.resolve(own).ok_or(DecodeError::MissingField {
            event_type: NAME,
            field: "timestamp",
        })?;
        let Some(principal) = audit.authentication.get().and_then(|a| {
            a.principal_email
                .known()
                .or_else(|| a.principal_subject.known().map(strip_member_prefix))
        }) else {
            return Ok(());
        };
        let method = audit.method_name.get().unwrap_or("unknown");
        let status = audit.status.get().and_then(|s| s.code.get()).unwrap_or("0");
        let refused = audit
            .authorization
            .0
            .iter()
            .any(|a| a.granted.get() == Some("false"));
        let denied = matches!(status, "7" | "16") || refused;
        let base_id = match insert_id {
            Some(id) => format!("gcp:{id}"),
            None => json::content_id("gcp", text),
        };

        if status == "0" && !refused {
            let before = out.len();
            grants(audit, method, ts, &base_id, principal, out);
            if out.len() > before {
                return Ok(());
            }
        }

        let service = audit
            .service_name
            .get()
            .map(|s| s.strip_suffix(".googleapis.com").unwrap_or(s))
            .unwrap_or("unknown");
        let scope = audit
            .resource_name
            .get()
            .and_then(scope_of)
            .map(str::to_owned)
            .or_else(|| {
                entry
                    .resource
                    .get()
                    .and_then(|r| r.labels.get())
                    .and_then(|l| l.project_id.known())
                    .map(|p| format!("projects/{p}"))
            })
            .or_else(|| log_name.and_then(scope_of).map(str::to_owned));
        let resource = match scope {
            Some(s) => format!("gcp/{s}/{service}"),
            None => format!("gcp/{service}"),
        };
        // Pushed borrowed: `Events` copies the names without an owned event.
        out.push_access(AccessRef {
            ts,
            principal,
            resource: &resource,
            action: Some(method),
            outcome: if denied || (status != "0" && is_grant_method(method)) {
                Outcome::Denied
            } else {
                Outcome::Success
            },
            id: Some(&base_id),
            key: None,
        });
        Ok(())
    }
}

/// `projects/P`, `organizations/O` or `folders/F` at the start of a resource or
/// log name (`projects/_` and `projects/-` are wildcards, not a project).
fn scope_of(name: &str) -> Option<&str> {
    let mut parts = name.splitn(3, '/');
    let kind = parts.next()?;
    let id = parts.next()?;
    if !matches!(kind, "projects" | "organizations" | "folders") || matches!(id, "" | "_" | "-") {
        return None;
    }
    Some(&name[..kind.len() + 1 + id.len()])
}

fn strip_member_prefix(m: &str) -> &str {
    for p in ["user:", "serviceAccount:", "group:", "domain:"] {
        if let Some(rest) = m.strip_prefix(p) {
            return rest;
        }
    }
    m
}

fn is_grant_method(method: &str) -> bool {
    method.to_ascii_lowercase().ends_with("setiampolicy")
        || method.ends_with("CreateServiceAccountKey")
        || is_binding_change(method).is_some()
}

/// For a GKE RBAC binding change, whether it is namespaced.
fn is_binding_change(method: &str) -> Option<bool> {
    let rest = method
        .strip_prefix("io.k8s.authorization.rbac.v1.")
        .or_else(|| method.strip_prefix("io.k8s.rbac.v1."))?;
    let (resource, verb) = rest.split_once('.')?;
    if !matches!(verb, "create" | "update" | "patch") {
        return None;
    }
    match resource {
        "rolebindings" => Some(true),
        "clusterrolebindings" => Some(false),
        _ => None,
    }
}

fn grants(a: &AuditLog<'_>, method: &str, ts: Ts, base_id: &str, actor: &str, out: &mut Events) {
    let grant = |id: String,
                 grantee: String,
                 ty: GranteeType,
                 resource: String,
                 role: Option<String>,
                 target: Option<Box<Target>>| {
        Event {
            ts,
            id: Some(id.clone()),
            body: Body::Grant(Grant {
                grant_id: id,
                actor: actor.to_owned(),
                grantee,
                grantee_type: ty,
                resource,
                role,
                reference: None,
                actor_type: None,
                target,
            }),
        }
    };
    let Some(resource_name) = a.resource_name.get() else {
        return;
    };
    if method.to_ascii_lowercase().ends_with("setiampolicy") {
        let deltas = a
            .service_data
            .get()
            .and_then(|s| s.policy_delta.get())
            .map(|d| &d.binding_deltas.0[..])
            .filter(|d| !d.is_empty())
            .or_else(|| {
                let m = a.metadata.get()?;
                if m.binding_deltas.0.is_empty() {
                    m.dataset_change.get().map(|d| &d.binding_deltas.0[..])
                } else {
                    Some(&m.binding_deltas.0[..])
                }
            })
            .unwrap_or_default();
        let adds = deltas.iter().filter(|d| d.action.get() == Some("ADD"));
        for (i, d) in adds.enumerate() {
            let Some((grantee, ty)) = d.member.get().and_then(member) else {
                continue;
            };
            let target = match (d.role.get(), d.member.get()) {
                (Some(role), Some(m)) if binding_resource(resource_name) => Target::GcpBinding {
                    resource: resource_name.to_owned(),
                    role: role.to_owned(),
                    member: m.to_owned(),
                }
                .boxed(),
                (None, _) | (_, None) => Target::no_undo("the binding delta names no role"),
                _ => Target::no_undo(
                    "bindings are removed here only from projects, folders, organizations, buckets and service accounts",
                ),
            };
            out.push(grant(
                format!("{base_id}:{i}"),
                grantee,
                ty,
                format!("gcp/{resource_name}"),
                d.role.get().map(str::to_owned),
                target,
            ));
        }
    } else if method.ends_with("CreateServiceAccountKey") {
        let target = match a.response.and_then(created_key) {
            Some((service_account, key_id)) => Target::GcpServiceAccountKey {
                service_account,
                key_id,
            }
            .boxed(),
            None => Target::no_undo("the record's response does not name the new key"),
        };
        out.push(grant(
            format!("{base_id}:0"),
            actor.to_owned(),
            GranteeType::User,
            format!("gcp/{resource_name}"),
            Some("service-account-key".to_owned()),
            target,
        ));
    } else if let Some(namespaced) = is_binding_change(method) {
        let binding = a
            .response
            .and_then(Binding::parse)
            .or_else(|| a.request.and_then(Binding::parse));
        let Some(b) = binding else { return };
        let namespace = namespaced
            .then(|| {
                resource_name
                    .split_once("/namespaces/")
                    .and_then(|(_, rest)| rest.split('/').next())
            })
            .flatten();
        // `.../namespaces/NS/rolebindings/NAME` or `.../clusterrolebindings/NAME`.
        let name = resource_name
            .rsplit_once("rolebindings/")
            .map(|(_, n)| n)
            .filter(|n| !n.is_empty() && !n.contains('/'));
        for (i, g) in b
            .grants(namespace, namespaced, name)
            .into_iter()
            .enumerate()
        {
            out.push(grant(
                format!("{base_id}:{i}"),
                g.grantee,
                g.grantee_type,
                g.resource,
                Some(g.role),
                g.target,
            ));
        }
    }
}

/// Whether hooks can remove one member of one binding of this resource's
/// policy: a project, folder or organization, a bucket, a service account.
fn binding_resource(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    matches!(
        parts[..],
        ["projects" | "folders" | "organizations", id] if !id.is_empty() && id != "_" && id != "-"
    ) || matches!(parts[..], ["projects", _, "buckets", b] if !b.is_empty())
        || matches!(parts[..], ["projects", _, "serviceAccounts", sa] if sa.contains('@'))
}

/// The service account and key id of a created key, from the response's
/// `name` (`projects/P/serviceAccounts/SA/keys/KEY`).
fn created_key(raw: &RawValue) -> Option<(String, String)> {
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Created<'a> {
        #[serde(borrow)]
        name: Str<'a>,
    }
    let c: Created<'_> = serde_json::from_str(raw.get()).ok()?;
    let (_, rest) = c.name.get()?.split_once("/serviceAccounts/")?;
    let (sa, key) = rest.split_once("/keys/")?;
    (!sa.is_empty() && !key.is_empty() && !key.contains('/'))
        .then(|| (sa.to_owned(), key.to_owned()))
}

/// An IAM member as grantee: `user:x` -> x, `group:g` -> group g, `allUsers` ->
/// everyone (`*`); deleted principals grant nothing.
fn member(m: &str) -> Option<(String, GranteeType)> {
    if m.starts_with("deleted:") {
        return None;
    }
    let group = |g: &str| Some((g.to_owned(), GranteeType::Group));
    match m {
        "allUsers" => group("*"),
        "allAuthenticatedUsers" => group("allAuthenticatedUsers"),
        _ => {
            if let Some(g) = m
                .strip_prefix("group:")
                .or_else(|| m.strip_prefix("domain:"))
            {
                group(g)
            } else if m.starts_with("principalSet:") {
                group(m)
            } else {
                Some((strip_member_prefix(m).to_owned(), GranteeType::User))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(line: &str) -> Result<Vec<Event>, DecodeError> {
        GcpAuditDecoder::default().decode_owned(line.as_bytes())
    }

    fn entry(method: &str, resource_name: &str, extra: &str) -> String {
        format!(
            r#"{{"insertId":"i-1","logName":"projects/p1/logs/cloudaudit.googleapis.com%2Factivity","timestamp":"2024-02-02T09:44:26.029835Z","protoPayload":{{"@type":"type.googleapis.com/google.cloud.audit.AuditLog","authenticationInfo":{{"principalEmail":"alice@example.com"}},"serviceName":"cloudresourcemanager.googleapis.com","methodName":"{method}","resourceName":"{resource_name}"{extra}}}}}"#
        )
    }

    #[test]
    fn set_iam_policy_adds_are_one_grant_per_member() {
        let line = entry(
            "SetIamPolicy",
            "projects/p1",
            r#","serviceData":{"policyDelta":{"bindingDeltas":[{"action":"ADD","role":"roles/owner","member":"user:bob@example.com"},{"action":"REMOVE","role":"roles/viewer","member":"user:carol@example.com"},{"action":"ADD","role":"roles/viewer","member":"group:eng@example.com"},{"action":"ADD","role":"roles/viewer","member":"allUsers"},{"action":"ADD","role":"roles/editor","member":"serviceAccount:ci@p1.iam.gserviceaccount.com"}]}}"#,
        );
        let got: Vec<(String, String, GranteeType, String, String)> = decode(&line)
            .unwrap()
            .into_iter()
            .map(|e| match e.body {
                Body::Grant(g) => (
                    g.grant_id,
                    g.grantee,
                    g.grantee_type,
                    g.resource,
                    g.role.unwrap(),
                ),
                b => panic!("{b:?}"),
            })
            .collect();
        let r = "gcp/projects/p1".to_owned();
        assert_eq!(
            got,
            [
                (
                    "gcp:i-1:0".into(),
                    "bob@example.com".into(),
                    GranteeType::User,
                    r.clone(),
                    "roles/owner".into()
                ),
                (
                    "gcp:i-1:1".into(),
                    "eng@example.com".into(),
                    GranteeType::Group,
                    r.clone(),
                    "roles/viewer".into()
                ),
                (
                    "gcp:i-1:2".into(),
                    "*".into(),
                    GranteeType::Group,
                    r.clone(),
                    "roles/viewer".into()
                ),
                (
                    "gcp:i-1:3".into(),
                    "ci@p1.iam.gserviceaccount.com".into(),
                    GranteeType::User,
                    r,
                    "roles/editor".into()
                ),
            ]
        );
    }

    #[test]
    fn bigquery_metadata_deltas_count_too() {
        let line = entry(
            "google.iam.v1.IAMPolicy.SetIamPolicy",
            "projects/p1/datasets/d",
            r#","metadata":{"datasetChange":{"bindingDeltas":[{"action":"ADD","role":"roles/bigquery.dataViewer","member":"user:bob@example.com"}]}}"#,
        );
        let Body::Grant(g) = decode(&line).unwrap().remove(0).body else {
            panic!()
        };
        assert_eq!(g.resource, "gcp/projects/p1/datasets/d");
    }

    #[test]
    fn a_policy_without_deltas_or_a_failed_call_is_access() {
        let full_policy = entry(
            "google.cloud.run.v1.Services.SetIamPolicy",
            "projects/p1/locations/us/services/s",
            r#","request":{"policy":{"bindings":[{"members":["user:x@example.com"],"role":"roles/run.invoker"}]}}"#,
        );
        let Body::Access(a) = decode(&full_policy).unwrap().remove(0).body else {
            panic!()
        };
        assert_eq!(a.resource, "gcp/projects/p1/cloudresourcemanager");
        assert_eq!(a.outcome, Outcome::Success);
        let denied = entry(
            "SetIamPolicy",
            "projects/p1",
            r#","status":{"code":7,"message":"PERMISSION_DENIED"},"serviceData":{"policyDelta":{"bindingDeltas":[{"action":"ADD","role":"roles/owner","member":"user:bob@example.com"}]}}"#,
        );
        let Body::Access(a) = decode(&denied).unwrap().remove(0).body else {
            panic!()
        };
        assert_eq!(a.outcome, Outcome::Denied);
    }

    #[test]
    fn service_account_keys_and_gke_bindings_are_grants() {
        let key = entry(
            "google.iam.admin.v1.CreateServiceAccountKey",
            "projects/-/serviceAccounts/123",
            "",
        );
        let Body::Grant(g) = decode(&key).unwrap().remove(0).body else {
            panic!()
        };
        assert_eq!(
            (g.grantee.as_str(), g.resource.as_str()),
            ("alice@example.com", "gcp/projects/-/serviceAccounts/123")
        );
        let gke = entry(
            "io.k8s.authorization.rbac.v1.rolebindings.create",
            "rbac.authorization.k8s.io/v1/namespaces/prod/rolebindings/b",
            r#","request":{"roleRef":{"kind":"ClusterRole","name":"admin"},"subjects":[{"kind":"User","name":"bob@example.com"}]}"#,
        );
        let Body::Grant(g) = decode(&gke).unwrap().remove(0).body else {
            panic!()
        };
        assert_eq!(g.resource, "k8s/prod/ClusterRole/admin");
        assert_eq!(g.grant_id, "gcp:i-1:0");
    }

    #[test]
    fn scopes_come_from_resource_labels_or_log_name_when_the_resource_has_none() {
        let line = r#"{"timestamp":"2021-10-19T02:57:47.339377Z","resource":{"labels":{"project_id":"fake-project"}},"protoPayload":{"authenticationInfo":{"principalEmail":"a@b.c"},"methodName":"beta.compute.networks.insert","serviceName":"compute.googleapis.com","resourceName":"projects/_/buckets/x"}}"#;
        let Body::Access(a) = decode(line).unwrap().remove(0).body else {
            panic!()
        };
        assert_eq!(a.resource, "gcp/projects/fake-project/compute");
        assert_eq!(a.action.as_deref(), Some("beta.compute.networks.insert"));
    }

    #[test]
    fn non_audit_entries_are_skipped_and_garbage_is_an_error() {
        let text = r#"{"insertId":"1io3","logName":"projects/p/logs/testlog","textPayload":"hello","timestamp":"2021-10-19T02:04:00.272384509Z"}"#;
        assert_eq!(decode(text).unwrap(), vec![]);
        assert!(matches!(
            decode(r#"{"a":1}"#),
            Err(DecodeError::Unrecognized { .. })
        ));
        let no_principal = entry("x", "projects/p", "").replace("principalEmail", "other");
        assert_eq!(decode(&no_principal).unwrap(), vec![]);
    }
}
