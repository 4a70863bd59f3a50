//! The `k8s-audit` decoder: Kubernetes `audit.k8s.io` events (v1, v1beta1 and
//! the older unversioned shape), one per line, or an `EventList` on one line.
//!
//! - principal: `user.username` as the API server wrote it, so service accounts
//!   are `system:serviceaccount:NAMESPACE:NAME`;
//! - access resource: `k8s/<namespace>/<resource>[/<subresource>]`, with
//!   `cluster` for cluster-scoped objects and `k8s/cluster/url<path>` for
//!   non-resource URLs; `action` is the verb; 401/403 or an authorizer `forbid`
//!   is `denied`;
//! - grants: a RoleBinding / ClusterRoleBinding `create`, `update` or `patch`
//!   that succeeded is one grant per subject, on
//!   `k8s/<namespace or cluster>/<roleRef kind>/<roleRef name>` with the role
//!   name as `role`; `grant_id` is `k8s:<auditID>:<subject index>`. The binding
//!   comes from `responseObject` (the state after the change) or else
//!   `requestObject`; an audit policy at `Metadata` level logs neither, and then
//!   the change is recorded as access and counted
//!   ([`K8sAuditDecoder::bindings_without_subjects`]);
//! - `reference`: the object's `reachguard.io/reference` or
//!   `kubernetes.io/change-cause` annotation, else the audit event's
//!   `reachguard.io/reference` annotation.
//!
//! Stages: `RequestReceived` is always followed by a later stage of the same
//! request and is skipped. `ResponseStarted` is only written for long-running
//! requests (exec, attach, watch, logs) whose `ResponseComplete` may come hours
//! later, so it is the access; the `ResponseComplete` of such a request is then
//! skipped (the decoder remembers the last few thousand started `auditID`s).

use std::collections::{HashSet, VecDeque};

use serde::Deserialize;
use serde_json::value::RawValue;

use super::json::{self, Obj, Objs, Str};
use super::time::{EventClock, parse_datetime};
use super::{DecodeError, Decoder};
use crate::event::{Access, Body, Event, Events, Grant, GranteeType, Outcome, Ts};
use crate::undo::Target;

/// Decoder for Kubernetes audit events.
#[derive(Debug, Default)]
pub struct K8sAuditDecoder {
    clock: EventClock,
    bindings_without_subjects: u64,
    started: Started,
}

/// `auditID`s seen at `ResponseStarted`, bounded (oldest forgotten first).
#[derive(Debug, Default)]
struct Started {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Started {
    const CAPACITY: usize = 4096;

    fn insert(&mut self, id: &str) {
        if self.ids.insert(id.to_owned()) {
            self.order.push_back(id.to_owned());
            if self.order.len() > Self::CAPACITY {
                if let Some(old) = self.order.pop_front() {
                    self.ids.remove(&old);
                }
            }
        }
    }

    fn take(&mut self, id: &str) -> bool {
        self.ids.remove(id)
    }
}

impl K8sAuditDecoder {
    /// Successful binding changes whose audit event carried no binding object
    /// (recorded as access, not as grants).
    pub fn bindings_without_subjects(&self) -> u64 {
        self.bindings_without_subjects
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AuditEvent<'a> {
    #[serde(borrow)]
    kind: Str<'a>,
    #[serde(borrow)]
    items: Option<Vec<&'a RawValue>>,
    #[serde(borrow, rename = "auditID")]
    audit_id: Str<'a>,
    #[serde(borrow)]
    stage: Str<'a>,
    #[serde(borrow)]
    verb: Str<'a>,
    #[serde(borrow, rename = "requestURI")]
    request_uri: Str<'a>,
    #[serde(borrow)]
    user: Obj<UserInfo<'a>>,
    #[serde(borrow, rename = "objectRef")]
    object_ref: Obj<ObjectRef<'a>>,
    #[serde(borrow, rename = "responseStatus")]
    response_status: Obj<Status<'a>>,
    #[serde(borrow, rename = "requestObject")]
    request_object: Option<&'a RawValue>,
    #[serde(borrow, rename = "responseObject")]
    response_object: Option<&'a RawValue>,
    #[serde(borrow)]
    annotations: Obj<Annotations<'a>>,
    #[serde(borrow, rename = "stageTimestamp")]
    stage_timestamp: Str<'a>,
    #[serde(borrow, rename = "requestReceivedTimestamp")]
    received_timestamp: Str<'a>,
    #[serde(borrow)]
    timestamp: Str<'a>,
    #[serde(borrow)]
    metadata: Obj<ObjectMeta<'a>>,
    #[serde(borrow)]
    p_event_time: Str<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UserInfo<'a> {
    #[serde(borrow)]
    username: Str<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ObjectRef<'a> {
    #[serde(borrow)]
    resource: Str<'a>,
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow)]
    namespace: Str<'a>,
    #[serde(borrow)]
    subresource: Str<'a>,
    #[serde(borrow, rename = "apiGroup")]
    api_group: Str<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Status<'a> {
    #[serde(borrow)]
    code: Str<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Annotations<'a> {
    #[serde(borrow, rename = "authorization.k8s.io/decision")]
    decision: Str<'a>,
    #[serde(borrow, rename = "reachguard.io/reference")]
    reference: Str<'a>,
    #[serde(borrow, rename = "kubernetes.io/change-cause")]
    change_cause: Str<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct ObjectMeta<'a> {
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow)]
    namespace: Str<'a>,
    #[serde(borrow, rename = "creationTimestamp")]
    creation_timestamp: Str<'a>,
    #[serde(borrow)]
    annotations: Obj<Annotations<'a>>,
}

/// A RoleBinding or ClusterRoleBinding, as far as grants need it.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Binding<'a> {
    #[serde(borrow)]
    metadata: Obj<ObjectMeta<'a>>,
    #[serde(borrow, rename = "roleRef")]
    role_ref: Obj<RoleRef<'a>>,
    #[serde(borrow)]
    subjects: Objs<Subject<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RoleRef<'a> {
    #[serde(borrow)]
    kind: Str<'a>,
    #[serde(borrow)]
    name: Str<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Subject<'a> {
    #[serde(borrow)]
    kind: Str<'a>,
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow)]
    namespace: Str<'a>,
}

/// One grant a binding makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BindingGrant {
    /// The subject.
    pub(crate) grantee: String,
    /// Group subjects are groups.
    pub(crate) grantee_type: GranteeType,
    /// `k8s/<namespace or cluster>/<roleRef kind>/<roleRef name>`.
    pub(crate) resource: String,
    /// The role name.
    pub(crate) role: String,
    /// The binding and the one subject to remove from it.
    pub(crate) target: Option<Box<Target>>,
}

impl<'a> Binding<'a> {
    /// Parses a binding object; `None` unless it names a role and subjects.
    pub(crate) fn parse(raw: &'a RawValue) -> Option<Binding<'a>> {
        let b: Binding<'a> = serde_json::from_str(raw.get()).ok()?;
        (b.role_ref.get().is_some_and(|r| r.name.get().is_some()) && !b.subjects.0.is_empty())
            .then_some(b)
    }

    /// The object's own reference annotation, if any.
    pub(crate) fn reference(&self) -> Option<&str> {
        let a = self.metadata.get()?.annotations.get()?;
        a.reference.get().or(a.change_cause.get())
    }

    /// One grant per subject. `namespace` is the binding's namespace (`None` for a
    /// ClusterRoleBinding); it also completes service-account subjects without one.
    /// `namespaced` says which of the two the request changed, `name` is the
    /// binding's name from the request's object reference (the object's own
    /// `metadata.name` wins).
    pub(crate) fn grants(
        &self,
        namespace: Option<&str>,
        namespaced: bool,
        name: Option<&str>,
    ) -> Vec<BindingGrant> {
        let Some(role_ref) = self.role_ref.get() else {
            return Vec::new();
        };
        let Some(role) = role_ref.name.get() else {
            return Vec::new();
        };
        let namespace = namespace.or_else(|| self.metadata.get().and_then(|m| m.namespace.get()));
        let kind = role_ref.kind.get().unwrap_or(if namespace.is_some() {
            "Role"
        } else {
            "ClusterRole"
        });
        let resource = format!("k8s/{}/{kind}/{role}", namespace.unwrap_or("cluster"));
        let binding_name = self.metadata.get().and_then(|m| m.name.get()).or(name);
        self.subjects
            .0
            .iter()
            .enumerate()
            .filter_map(|(index, s)| {
                let name = s.name.get()?;
                let mut subject_namespace = None;
                let (grantee, grantee_type) = match s.kind.get() {
                    Some("Group") => (name.to_owned(), GranteeType::Group),
                    Some("ServiceAccount") => {
                        let ns = s.namespace.get().or(namespace).unwrap_or("default");
                        subject_namespace = Some(ns.to_owned());
                        (
                            format!("system:serviceaccount:{ns}:{name}"),
                            GranteeType::User,
                        )
                    }
                    _ => (name.to_owned(), GranteeType::User),
                };
                let target = match (binding_name, namespaced, namespace) {
                    (None, ..) => Target::no_undo("the record does not name the binding"),
                    (Some(_), true, None) => {
                        Target::no_undo("the record does not name the RoleBinding's namespace")
                    }
                    (Some(b), _, _) => Target::K8sBinding {
                        kind: if namespaced {
                            "RoleBinding"
                        } else {
                            "ClusterRoleBinding"
                        }
                        .to_owned(),
                        namespace: namespaced.then(|| namespace.unwrap_or_default().to_owned()),
                        name: b.to_owned(),
                        subject_kind: s.kind.get().unwrap_or("User").to_owned(),
                        subject_name: name.to_owned(),
                        subject_namespace,
                        subject_index: Some(index),
                    }
                    .boxed(),
                };
                Some(BindingGrant {
                    grantee,
                    grantee_type,
                    resource: resource.clone(),
                    role: role.to_owned(),
                    target,
                })
            })
            .collect()
    }
}

const NAME: &str = "Kubernetes audit";

impl Decoder for K8sAuditDecoder {
    fn decode(&mut self, line: &[u8], out: &mut Events) -> Result<(), DecodeError> {
        let Some(text) = json::text(line)? else {
            return Ok(());
        };
        let ev: AuditEvent<'_> = json::object(text)?;
        if ev.kind.get() == Some("EventList") {
            for raw in ev.items.as_deref().unwrap_or_default() {
                let item: AuditEvent<'_> = json::object(raw.get())?;
                self.event(&item, raw.get(), out)?;
            }
            return Ok(());
        }
        self.event(&ev, text, out)
    }
}

impl K8sAuditDecoder {
    fn event(
        &mut self,
        ev: &AuditEvent<'_>,
        raw: &str,
        out: &mut Events,
    ) -> Result<(), DecodeError> {
        match ev.kind.get() {
            Some("Event") => {}
            Some(_) => {
                return Err(DecodeError::Unrecognized {
                    format: NAME,
                    reason: "`kind` is not Event",
                });
            }
            None if ev.verb.get().is_none() => {
                return Err(DecodeError::Unrecognized {
                    format: NAME,
                    reason: "neither `kind` nor `verb`",
                });
            }
            None => {}
        }
        let own = ev
            .stage_timestamp
            .get()
            .or(ev.received_timestamp.get())
            .or(ev.timestamp.get())
            .or_else(|| ev.metadata.get().and_then(|m| m.creation_timestamp.get()))
            .or(ev.p_event_time.get())
            .and_then(parse_datetime);
        let ts = self.clock.resolve(own).ok_or(DecodeError::MissingField {
            event_type: NAME,
            field: "stageTimestamp",
        })?;
        match (ev.stage.get(), ev.audit_id.get()) {
            (Some("RequestReceived"), _) => return Ok(()),
            (Some("ResponseStarted"), Some(id)) => self.started.insert(id),
            (Some("ResponseComplete"), Some(id)) if self.started.take(id) => return Ok(()),
            _ => {}
        }
        let Some(user) = ev.user.get().and_then(|u| u.username.get()) else {
            return Ok(());
        };
        let verb = ev.verb.get().unwrap_or("unknown");
        let code = ev
            .response_status
            .get()
            .and_then(|s| s.code.get())
            .and_then(|c| c.parse::<u32>().ok());
        let annotations = ev.annotations.get();
        let denied = matches!(code, Some(401 | 403))
            || annotations.and_then(|a| a.decision.get()) == Some("forbid");
        let obj = ev.object_ref.get();
        let namespace = obj.and_then(|o| o.namespace.get());
        let resource = obj.and_then(|o| o.resource.get());

        let is_binding = matches!(resource, Some("rolebindings" | "clusterrolebindings"))
            && obj
                .and_then(|o| o.api_group.get())
                .is_none_or(|g| g == "rbac.authorization.k8s.io");
        let changed = matches!(verb, "create" | "update" | "patch")
            && code.is_some_and(|c| (200..300).contains(&c));
        if is_binding && changed {
            let binding = ev
                .response_object
                .and_then(Binding::parse)
                .or_else(|| ev.request_object.and_then(Binding::parse));
            if let Some(b) = binding {
                let scope = if resource == Some("rolebindings") {
                    namespace
                } else {
                    None
                };
                let grants = b.grants(
                    scope,
                    resource == Some("rolebindings"),
                    obj.and_then(|o| o.name.get()),
                );
                let base = match ev.audit_id.get() {
                    Some(id) => format!("k8s:{id}"),
                    None => json::content_id("k8s", raw),
                };
                let reference = b
                    .reference()
                    .or_else(|| annotations.and_then(|a| a.reference.get()));
                for (i, g) in grants.into_iter().enumerate() {
                    out.push(grant_event(ts, format!("{base}:{i}"), user, g, reference));
                }
                return Ok(());
            }
            self.bindings_without_subjects += 1;
            let n = self.bindings_without_subjects;
            if n == 1 || n % 100 == 0 {
                tracing::warn!(
                    count = n,
                    "a {} {verb} succeeded but its audit event carries no binding object \
                     (audit policy at Metadata level?): recorded as access, not as a grant",
                    resource.unwrap_or_default()
                );
            }
        }

        let resource = match (resource, obj.and_then(|o| o.subresource.get())) {
            (Some(r), Some(sub)) => format!("k8s/{}/{r}/{sub}", namespace.unwrap_or("cluster")),
            (Some(r), None) => format!("k8s/{}/{r}", namespace.unwrap_or("cluster")),
            (None, _) => match ev.request_uri.get() {
                Some(uri) => {
                    let path = uri.split(['?', '#']).next().unwrap_or(uri);
                    format!("k8s/cluster/url{path}")
                }
                None => return Ok(()),
            },
        };
        out.push(Event {
            ts,
            id: ev.audit_id.get().map(|id| format!("k8s:{id}")),
            body: Body::Access(Access {
                principal: user.to_owned(),
                resource,
                action: Some(verb.to_owned()),
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

fn grant_event(
    ts: Ts,
    grant_id: String,
    actor: &str,
    g: BindingGrant,
    reference: Option<&str>,
) -> Event {
    Event {
        ts,
        id: Some(grant_id.clone()),
        body: Body::Grant(Grant {
            grant_id,
            actor: actor.to_owned(),
            grantee: g.grantee,
            grantee_type: g.grantee_type,
            resource: g.resource,
            role: Some(g.role),
            reference: reference.map(str::to_owned),
            actor_type: None,
            target: g.target,
        }),
    }
}

/// A RoleBinding / ClusterRoleBinding create by `actor`, for other modules' tests.
#[cfg(test)]
pub(crate) fn sample_binding_create(audit_id: &str, actor: &str, subject: &str) -> String {
    format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"{audit_id}","stage":"ResponseComplete","requestURI":"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings","verb":"create","user":{{"username":"{actor}","groups":["system:authenticated"]}},"objectRef":{{"resource":"clusterrolebindings","name":"ops-admin","apiGroup":"rbac.authorization.k8s.io","apiVersion":"v1"}},"responseStatus":{{"metadata":{{}},"code":201}},"requestObject":{{"kind":"ClusterRoleBinding","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{{"name":"ops-admin"}},"subjects":[{{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"{subject}"}}],"roleRef":{{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"cluster-admin"}}}},"requestReceivedTimestamp":"2026-03-18T09:08:00.000000Z","stageTimestamp":"2026-03-18T09:08:00.010000Z"}}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_with(d: &mut K8sAuditDecoder, line: &str) -> Result<Vec<Event>, DecodeError> {
        d.decode_owned(line.as_bytes())
    }

    fn decode(line: &str) -> Result<Vec<Event>, DecodeError> {
        decode_with(&mut K8sAuditDecoder::default(), line)
    }

    fn event(verb: &str, object_ref: &str, code: u32, extra: &str) -> String {
        format!(
            r#"{{"kind":"Event","auditID":"a-1","stage":"ResponseComplete","verb":"{verb}","user":{{"username":"alice"}},"objectRef":{object_ref},"responseStatus":{{"code":{code}}},"stageTimestamp":"2026-03-18T09:08:00Z"{extra}}}"#
        )
    }

    #[test]
    fn a_cluster_role_binding_create_grants_each_subject() {
        let ev = decode(&sample_binding_create("x1", "alice", "mallory")).unwrap();
        assert_eq!(ev.len(), 1);
        let Body::Grant(g) = &ev[0].body else {
            panic!("{ev:?}")
        };
        assert_eq!(g.grant_id, "k8s:x1:0");
        assert_eq!(g.actor, "alice");
        assert_eq!(g.grantee, "mallory");
        assert_eq!(g.resource, "k8s/cluster/ClusterRole/cluster-admin");
        assert_eq!(g.role.as_deref(), Some("cluster-admin"));
        assert_eq!(ev[0].ts.to_string(), "2026-03-18T09:08:00.010Z");
    }

    #[test]
    fn namespaced_bindings_name_groups_and_service_accounts() {
        let line = event(
            "create",
            r#"{"resource":"rolebindings","namespace":"prod","name":"b","apiGroup":"rbac.authorization.k8s.io"}"#,
            201,
            r#","requestObject":{"metadata":{"name":"b","namespace":"prod","annotations":{"reachguard.io/reference":"per adv-12"}},"roleRef":{"kind":"ClusterRole","name":"edit"},"subjects":[{"kind":"Group","name":"devs"},{"kind":"ServiceAccount","name":"agent-x"},{"kind":"ServiceAccount","name":"ci","namespace":"tools"}]}"#,
        );
        let grants: Vec<(String, GranteeType, String, Option<String>)> = decode(&line)
            .unwrap()
            .into_iter()
            .map(|e| match e.body {
                Body::Grant(g) => (g.grantee, g.grantee_type, g.resource, g.reference),
                b => panic!("{b:?}"),
            })
            .collect();
        let r = Some("per adv-12".to_owned());
        assert_eq!(
            grants,
            [
                (
                    "devs".into(),
                    GranteeType::Group,
                    "k8s/prod/ClusterRole/edit".into(),
                    r.clone()
                ),
                (
                    "system:serviceaccount:prod:agent-x".into(),
                    GranteeType::User,
                    "k8s/prod/ClusterRole/edit".into(),
                    r.clone()
                ),
                (
                    "system:serviceaccount:tools:ci".into(),
                    GranteeType::User,
                    "k8s/prod/ClusterRole/edit".into(),
                    r
                ),
            ]
        );
    }

    #[test]
    fn the_response_object_wins_for_patches() {
        let line = event(
            "patch",
            r#"{"resource":"clusterrolebindings","name":"b"}"#,
            200,
            r#","requestObject":[{"op":"add","path":"/subjects/-","value":{"kind":"User","name":"eve"}}],"responseObject":{"roleRef":{"kind":"ClusterRole","name":"view"},"subjects":[{"kind":"User","name":"dan"},{"kind":"User","name":"eve"}]}"#,
        );
        let ev = decode(&line).unwrap();
        assert_eq!(ev.len(), 2);
        assert!(
            matches!(&ev[1].body, Body::Grant(g) if g.grantee == "eve" && g.grant_id == "k8s:a-1:1")
        );
    }

    #[test]
    fn refused_or_incomplete_binding_changes_are_not_grants() {
        let refused = event(
            "create",
            r#"{"resource":"clusterrolebindings","name":"b"}"#,
            403,
            r#","requestObject":{"roleRef":{"kind":"ClusterRole","name":"cluster-admin"},"subjects":[{"kind":"User","name":"eve"}]}"#,
        );
        let Body::Access(a) = &decode(&refused).unwrap()[0].body else {
            panic!()
        };
        assert_eq!(a.outcome, Outcome::Denied);
        assert_eq!(a.resource, "k8s/cluster/clusterrolebindings");
        assert_eq!(a.action.as_deref(), Some("create"));

        let mut d = K8sAuditDecoder::default();
        let metadata_only = event(
            "create",
            r#"{"resource":"rolebindings","namespace":"default"}"#,
            201,
            "",
        );
        let ev = decode_with(&mut d, &metadata_only).unwrap();
        assert!(matches!(&ev[0].body, Body::Access(a) if a.resource == "k8s/default/rolebindings"));
        assert_eq!(d.bindings_without_subjects(), 1);
        // Deleting a binding takes access away: access, and not counted as missing.
        let delete = event("delete", r#"{"resource":"clusterrolebindings"}"#, 200, "");
        assert!(matches!(
            &decode_with(&mut d, &delete).unwrap()[0].body,
            Body::Access(_)
        ));
        assert_eq!(d.bindings_without_subjects(), 1);
    }

    #[test]
    fn other_requests_are_access_named_by_namespace_and_resource() {
        let cases = [
            (
                r#"{"resource":"pods","namespace":"default","subresource":"exec"}"#,
                200,
                "k8s/default/pods/exec",
                Outcome::Success,
            ),
            (
                r#"{"resource":"secrets","namespace":"kube-system"}"#,
                403,
                "k8s/kube-system/secrets",
                Outcome::Denied,
            ),
            (
                r#"{"resource":"nodes"}"#,
                200,
                "k8s/cluster/nodes",
                Outcome::Success,
            ),
        ];
        for (obj, code, want, outcome) in cases {
            let Body::Access(a) = &decode(&event("get", obj, code, "")).unwrap()[0].body else {
                panic!()
            };
            assert_eq!((a.resource.as_str(), a.outcome), (want, outcome));
        }
        let url = r#"{"kind":"Event","verb":"get","requestURI":"/version?timeout=32s","user":{"username":"system:anonymous"},"responseStatus":{"code":200},"stageTimestamp":"2024-11-13 18:34:10.595494000"}"#;
        let Body::Access(a) = &decode(url).unwrap()[0].body else {
            panic!()
        };
        assert_eq!(a.resource, "k8s/cluster/url/version");
        assert_eq!(a.principal, "system:anonymous");
    }

    #[test]
    fn each_request_counts_once_across_its_stages() {
        let received = sample_binding_create("x", "alice", "bob")
            .replace("ResponseComplete", "RequestReceived");
        assert_eq!(decode(&received).unwrap(), vec![]);
        // A long-running exec is seen when it starts, not again when it ends.
        let mut d = K8sAuditDecoder::default();
        let exec = event(
            "create",
            r#"{"resource":"pods","namespace":"default","subresource":"exec"}"#,
            101,
            "",
        );
        let started = exec.replace("ResponseComplete", "ResponseStarted");
        assert_eq!(decode_with(&mut d, &started).unwrap().len(), 1);
        assert_eq!(decode_with(&mut d, &exec).unwrap(), vec![]);
        assert_eq!(
            decode_with(&mut d, &exec).unwrap().len(),
            1,
            "a new request with the same id"
        );
    }

    #[test]
    fn userless_events_are_skipped() {
        let no_user = r#"{"kind":"Event","verb":"get","objectRef":{"resource":"pods"},"stageTimestamp":"2026-03-18T09:08:00Z"}"#;
        assert_eq!(decode(no_user).unwrap(), vec![]);
    }

    #[test]
    fn event_lists_are_unwrapped() {
        let a = sample_binding_create("l1", "alice", "bob");
        let b = event("get", r#"{"resource":"pods","namespace":"x"}"#, 200, "");
        let ev = decode(&format!(r#"{{"kind":"EventList","items":[{a},{b}]}}"#)).unwrap();
        assert_eq!(ev.len(), 2);
    }

    #[test]
    fn malformed_events_are_errors() {
        assert_eq!(
            decode(r#"{"kind": 0}"#),
            Err(DecodeError::Unrecognized {
                format: "Kubernetes audit",
                reason: "`kind` is not Event"
            })
        );
        assert!(decode(r#"{"hello":"world"}"#).is_err());
        assert!(matches!(decode("{"), Err(DecodeError::Json(_))));
        let no_time = r#"{"kind":"Event","verb":"get","user":{"username":"a"},"objectRef":{"resource":"pods"}}"#;
        assert!(matches!(
            decode(no_time),
            Err(DecodeError::MissingField { .. })
        ));
    }
}
