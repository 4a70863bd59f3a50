//! The floor of each foreign format: the least work that yields, borrowed, the
//! fields its decoder reads (the bench's module doc defines it). Each floor
//! takes one line and returns how many of the fields it found, plus one; 0
//! means it could not read the line.

// The structs' fields are there to be deserialised, not read.
#![allow(dead_code)]

use std::borrow::Cow;
use std::hint::black_box;

use reachguard::decode::Format;
use serde::Deserialize;
use serde_json::value::RawValue;

/// The floor of `format`, if it is a foreign format.
pub fn of(format: Format) -> Option<fn(&[u8]) -> usize> {
    Some(match format {
        Format::Cloudtrail => cloudtrail,
        Format::K8sAudit => k8s_audit,
        Format::Okta => okta,
        Format::GcpAudit => gcp_audit,
        Format::GithubAudit => github_audit,
        Format::LinuxAuth => linux_auth,
        Format::WebAccess => web_access,
        _ => return None,
    })
}

/// A string field: borrowed from the line unless it holds escapes. (A newtype
/// because `Option<Cow<str>>` would always copy: serde borrows a `Cow` only
/// when it is the field's own type.)
#[derive(Deserialize)]
#[serde(transparent)]
struct S<'a>(#[serde(borrow)] Cow<'a, str>);

type Opt<'a> = Option<S<'a>>;
type Raw<'a> = Option<&'a RawValue>;

/// Parses `line` as `T`. The line is checked as UTF-8 once and then parsed as
/// text: faster than `serde_json::from_slice`, which checks every string it
/// reads, so the floor is the lower of the two.
fn parse<'a, T: Deserialize<'a>>(line: &'a [u8]) -> Option<T> {
    serde_json::from_str(std::str::from_utf8(line).ok()?).ok()
}

/// `raw` parsed as `T` when it is an object (a field of varying type).
fn nested<'a, T: Deserialize<'a>>(raw: Raw<'a>) -> Option<T> {
    let raw = raw?.get();
    raw.starts_with('{')
        .then(|| serde_json::from_str(raw).ok())
        .flatten()
}

fn found<T>(v: Option<T>) -> usize {
    match v {
        Some(v) => {
            black_box(&v);
            1
        }
        None => 0,
    }
}

// ---- CloudTrail ----

#[derive(Deserialize)]
struct CtRecord<'a> {
    #[serde(borrow, rename = "Records")]
    records: Option<Vec<CtRecord<'a>>>,
    #[serde(borrow, rename = "CloudTrailEvent")]
    embedded: Opt<'a>,
    #[serde(borrow, rename = "eventTime")]
    event_time: Opt<'a>,
    #[serde(borrow, rename = "@timestamp")]
    at_timestamp: Opt<'a>,
    #[serde(borrow)]
    p_event_time: Opt<'a>,
    #[serde(borrow, rename = "eventSource")]
    event_source: Opt<'a>,
    #[serde(borrow, rename = "eventName")]
    event_name: Opt<'a>,
    #[serde(borrow, rename = "eventID")]
    event_id: Opt<'a>,
    #[serde(borrow, rename = "errorCode")]
    error_code: Opt<'a>,
    #[serde(borrow, rename = "recipientAccountId")]
    recipient_account: Opt<'a>,
    #[serde(borrow, rename = "userIdentity")]
    user_identity: Option<CtUserIdentity<'a>>,
    #[serde(borrow, rename = "requestParameters")]
    params: Option<CtParams<'a>>,
    #[serde(borrow, rename = "responseElements")]
    response: Option<CtResponse<'a>>,
}

#[derive(Deserialize)]
struct CtUserIdentity<'a> {
    #[serde(borrow, rename = "type")]
    kind: Opt<'a>,
    #[serde(borrow, rename = "userName")]
    user_name: Opt<'a>,
    #[serde(borrow)]
    arn: Opt<'a>,
    #[serde(borrow, rename = "principalId")]
    principal_id: Opt<'a>,
    #[serde(borrow, rename = "accountId")]
    account_id: Opt<'a>,
    #[serde(borrow, rename = "invokedBy")]
    invoked_by: Opt<'a>,
    #[serde(borrow, rename = "sessionContext")]
    session: Option<CtSessionContext<'a>>,
}

#[derive(Deserialize)]
struct CtSessionContext<'a> {
    #[serde(borrow, rename = "sessionIssuer")]
    issuer: Option<CtIssuer<'a>>,
    #[serde(borrow, rename = "sourceIdentity")]
    source_identity: Opt<'a>,
}

#[derive(Deserialize)]
struct CtIssuer<'a> {
    #[serde(borrow, rename = "userName")]
    user_name: Opt<'a>,
}

#[derive(Deserialize)]
struct CtResponse<'a> {
    #[serde(borrow, rename = "ConsoleLogin")]
    console_login: Opt<'a>,
    #[serde(borrow, rename = "accessKey")]
    access_key: Option<CtAccessKey<'a>>,
}

#[derive(Deserialize)]
struct CtAccessKey<'a> {
    #[serde(borrow, rename = "accessKeyId")]
    access_key_id: Opt<'a>,
}

#[derive(Deserialize)]
struct CtParams<'a> {
    #[serde(borrow, rename = "userName")]
    user_name: Opt<'a>,
    #[serde(borrow, rename = "groupName")]
    group_name: Opt<'a>,
    #[serde(borrow, rename = "roleName")]
    role_name: Opt<'a>,
    #[serde(borrow, rename = "roleArn")]
    role_arn: Opt<'a>,
    #[serde(borrow, rename = "policyArn")]
    policy_arn: Opt<'a>,
    #[serde(borrow, rename = "policyName")]
    policy_name: Opt<'a>,
    #[serde(borrow, rename = "bucketName")]
    bucket_name: Opt<'a>,
    #[serde(borrow, rename = "secretId")]
    secret_id: Opt<'a>,
    #[serde(borrow, rename = "functionName")]
    function_name: Opt<'a>,
    #[serde(borrow, rename = "keyId")]
    key_id: Opt<'a>,
    #[serde(borrow, rename = "snapshotId")]
    snapshot_id: Opt<'a>,
    #[serde(borrow, rename = "imageId")]
    image_id: Opt<'a>,
    #[serde(borrow, rename = "dBSnapshotIdentifier")]
    db_snapshot: Opt<'a>,
    #[serde(borrow, rename = "dBClusterSnapshotIdentifier")]
    db_cluster_snapshot: Opt<'a>,
    #[serde(borrow, rename = "attributeName")]
    attribute_name: Opt<'a>,
    #[serde(borrow, rename = "resourceArn")]
    resource_arn: Opt<'a>,
    #[serde(borrow)]
    name: Opt<'a>,
    #[serde(borrow)]
    principal: Opt<'a>,
    #[serde(borrow, rename = "statementId")]
    statement_id: Opt<'a>,
    #[serde(borrow)]
    action: Opt<'a>,
    #[serde(borrow)]
    qualifier: Opt<'a>,
    #[serde(borrow, rename = "sourceArn")]
    source_arn: Opt<'a>,
    #[serde(borrow, rename = "sourceAccount")]
    source_account: Opt<'a>,
    #[serde(borrow, rename = "principalOrgID")]
    principal_org_id: Opt<'a>,
    #[serde(borrow, rename = "functionUrlAuthType")]
    function_url_auth_type: Opt<'a>,
    #[serde(borrow)]
    description: Opt<'a>,
    #[serde(borrow, rename = "valuesToAdd")]
    values_to_add: Option<Vec<S<'a>>>,
    #[serde(borrow, rename = "x-amz-acl")]
    canned_acl: Option<Vec<S<'a>>>,
    #[serde(borrow, rename = "launchPermission")]
    launch_permission: Option<CtPermission<'a>>,
    #[serde(borrow, rename = "createVolumePermission")]
    create_volume_permission: Option<CtPermission<'a>>,
    #[serde(borrow, rename = "policyDocument")]
    policy_document: Raw<'a>,
    #[serde(borrow, rename = "bucketPolicy")]
    bucket_policy: Raw<'a>,
    #[serde(borrow, rename = "resourcePolicy")]
    resource_policy: Raw<'a>,
    #[serde(borrow)]
    policy: Raw<'a>,
    #[serde(borrow, rename = "AccessControlPolicy")]
    access_control_policy: Raw<'a>,
}

#[derive(Deserialize)]
struct CtPermission<'a> {
    #[serde(borrow)]
    add: Option<CtPermissionItems<'a>>,
}

#[derive(Deserialize)]
struct CtPermissionItems<'a> {
    #[serde(borrow)]
    items: Option<Vec<CtPermissionItem<'a>>>,
}

#[derive(Deserialize)]
struct CtPermissionItem<'a> {
    #[serde(borrow, rename = "userId")]
    user_id: Opt<'a>,
    #[serde(borrow)]
    group: Opt<'a>,
}

fn cloudtrail(line: &[u8]) -> usize {
    let Some(r) = parse::<CtRecord<'_>>(line) else {
        return 0;
    };
    // `aws cloudtrail lookup-events`: the record is a JSON string.
    let inner = match &r.embedded {
        Some(S(e)) if r.event_name.is_none() => found(parse::<CtRecord<'_>>(e.as_bytes())),
        _ => 0,
    };
    found(Some(r)) + inner
}

// ---- Kubernetes audit ----

#[derive(Deserialize)]
struct K8sEvent<'a> {
    #[serde(borrow)]
    kind: Opt<'a>,
    #[serde(borrow)]
    items: Option<Vec<K8sEvent<'a>>>,
    #[serde(borrow, rename = "auditID")]
    audit_id: Opt<'a>,
    #[serde(borrow)]
    stage: Opt<'a>,
    #[serde(borrow)]
    verb: Opt<'a>,
    #[serde(borrow, rename = "requestURI")]
    request_uri: Opt<'a>,
    #[serde(borrow)]
    user: Option<K8sUser<'a>>,
    #[serde(borrow, rename = "objectRef")]
    object_ref: Option<K8sObjectRef<'a>>,
    #[serde(rename = "responseStatus")]
    response_status: Option<K8sStatus>,
    #[serde(borrow, rename = "requestObject")]
    request_object: Raw<'a>,
    #[serde(borrow, rename = "responseObject")]
    response_object: Raw<'a>,
    #[serde(borrow)]
    annotations: Option<K8sAnnotations<'a>>,
    #[serde(borrow, rename = "stageTimestamp")]
    stage_timestamp: Opt<'a>,
    #[serde(borrow, rename = "requestReceivedTimestamp")]
    received_timestamp: Opt<'a>,
    #[serde(borrow)]
    timestamp: Opt<'a>,
    #[serde(borrow)]
    metadata: Option<K8sMeta<'a>>,
    #[serde(borrow)]
    p_event_time: Opt<'a>,
}

#[derive(Deserialize)]
struct K8sUser<'a> {
    #[serde(borrow)]
    username: Opt<'a>,
}

#[derive(Deserialize)]
struct K8sObjectRef<'a> {
    #[serde(borrow)]
    resource: Opt<'a>,
    #[serde(borrow)]
    name: Opt<'a>,
    #[serde(borrow)]
    namespace: Opt<'a>,
    #[serde(borrow)]
    subresource: Opt<'a>,
    #[serde(borrow, rename = "apiGroup")]
    api_group: Opt<'a>,
}

#[derive(Deserialize)]
struct K8sStatus {
    code: Option<i64>,
}

#[derive(Deserialize)]
struct K8sAnnotations<'a> {
    #[serde(borrow, rename = "authorization.k8s.io/decision")]
    decision: Opt<'a>,
    #[serde(borrow, rename = "reachguard.io/reference")]
    reference: Opt<'a>,
    #[serde(borrow, rename = "kubernetes.io/change-cause")]
    change_cause: Opt<'a>,
}

#[derive(Deserialize)]
struct K8sMeta<'a> {
    #[serde(borrow)]
    name: Opt<'a>,
    #[serde(borrow)]
    namespace: Opt<'a>,
    #[serde(borrow, rename = "creationTimestamp")]
    creation_timestamp: Opt<'a>,
    #[serde(borrow)]
    annotations: Option<K8sAnnotations<'a>>,
}

fn k8s_audit(line: &[u8]) -> usize {
    found(parse::<K8sEvent<'_>>(line))
}

// ---- Okta ----

#[derive(Deserialize)]
struct OktaEvent<'a> {
    #[serde(borrow)]
    uuid: Opt<'a>,
    #[serde(borrow)]
    published: Opt<'a>,
    #[serde(borrow)]
    p_event_time: Opt<'a>,
    #[serde(borrow, rename = "eventType")]
    event_type: Opt<'a>,
    #[serde(borrow, rename = "eventtype")]
    event_type_lc: Opt<'a>,
    #[serde(borrow)]
    actor: Option<OktaParty<'a>>,
    #[serde(borrow)]
    outcome: Option<OktaOutcome<'a>>,
    #[serde(borrow)]
    target: Option<Vec<OktaParty<'a>>>,
    #[serde(borrow, rename = "debugContext")]
    debug_context: Option<OktaDebugContext<'a>>,
    #[serde(borrow, rename = "debugcontext")]
    debug_context_lc: Option<OktaDebugContext<'a>>,
}

#[derive(Deserialize)]
struct OktaParty<'a> {
    #[serde(borrow, rename = "type")]
    kind: Opt<'a>,
    #[serde(borrow)]
    id: Opt<'a>,
    #[serde(borrow, rename = "alternateId")]
    alternate_id: Opt<'a>,
    #[serde(borrow, rename = "alternateid")]
    alternate_id_lc: Opt<'a>,
    #[serde(borrow, rename = "displayName")]
    display_name: Opt<'a>,
    #[serde(borrow, rename = "displayname")]
    display_name_lc: Opt<'a>,
}

#[derive(Deserialize)]
struct OktaOutcome<'a> {
    #[serde(borrow)]
    result: Opt<'a>,
}

#[derive(Deserialize)]
struct OktaDebugContext<'a> {
    // An object, or in a few exports a string.
    #[serde(borrow, rename = "debugData")]
    debug_data: Raw<'a>,
    #[serde(borrow, rename = "debugdata")]
    debug_data_lc: Raw<'a>,
}

#[derive(Deserialize)]
struct OktaDebugData<'a> {
    #[serde(borrow, rename = "privilegeGranted")]
    privilege_granted: Opt<'a>,
    #[serde(borrow, rename = "privilegegranted")]
    privilege_granted_lc: Opt<'a>,
}

fn okta(line: &[u8]) -> usize {
    let Some(e) = parse::<OktaEvent<'_>>(line) else {
        return 0;
    };
    let mut n = 1;
    for d in [&e.debug_context, &e.debug_context_lc]
        .into_iter()
        .flatten()
    {
        for raw in [d.debug_data, d.debug_data_lc] {
            n += found(nested::<OktaDebugData<'_>>(raw));
        }
    }
    black_box(&e);
    n
}

// ---- GCP audit ----

#[derive(Deserialize)]
struct GcpEntry<'a> {
    #[serde(borrow, rename = "protoPayload")]
    proto: Option<GcpAuditLog<'a>>,
    #[serde(borrow)]
    timestamp: Opt<'a>,
    #[serde(borrow, rename = "receiveTimestamp")]
    receive_timestamp: Opt<'a>,
    #[serde(borrow, rename = "receivetimestamp")]
    receive_timestamp_lc: Opt<'a>,
    #[serde(borrow)]
    p_event_time: Opt<'a>,
    #[serde(borrow, rename = "insertId")]
    insert_id: Opt<'a>,
    #[serde(borrow, rename = "insertid")]
    insert_id_lc: Opt<'a>,
    #[serde(borrow, rename = "logName")]
    log_name: Opt<'a>,
    #[serde(borrow, rename = "logname")]
    log_name_lc: Opt<'a>,
    // An object, or in a few exports a string.
    #[serde(borrow)]
    resource: Raw<'a>,
    #[serde(borrow, rename = "textPayload")]
    text_payload: Opt<'a>,
    #[serde(borrow, rename = "jsonPayload")]
    json_payload: Raw<'a>,
}

#[derive(Deserialize)]
struct GcpResource<'a> {
    #[serde(borrow)]
    labels: Option<GcpLabels<'a>>,
}

#[derive(Deserialize)]
struct GcpLabels<'a> {
    #[serde(borrow)]
    project_id: Opt<'a>,
}

#[derive(Deserialize)]
struct GcpAuditLog<'a> {
    #[serde(borrow, rename = "methodName")]
    method_name: Opt<'a>,
    #[serde(borrow, rename = "serviceName")]
    service_name: Opt<'a>,
    #[serde(borrow, rename = "resourceName")]
    resource_name: Opt<'a>,
    #[serde(borrow, rename = "authenticationInfo")]
    authentication: Option<GcpAuthentication<'a>>,
    #[serde(borrow, rename = "authorizationInfo")]
    authorization: Option<Vec<GcpAuthorization<'a>>>,
    #[serde(rename = "status")]
    status: Option<GcpStatus>,
    #[serde(borrow, rename = "serviceData")]
    service_data: Option<GcpServiceData<'a>>,
    #[serde(borrow)]
    metadata: Option<GcpMetadata<'a>>,
    #[serde(borrow)]
    request: Raw<'a>,
    #[serde(borrow)]
    response: Raw<'a>,
}

#[derive(Deserialize)]
struct GcpAuthentication<'a> {
    #[serde(borrow, rename = "principalEmail")]
    principal_email: Opt<'a>,
    #[serde(borrow, rename = "principalSubject")]
    principal_subject: Opt<'a>,
}

#[derive(Deserialize)]
struct GcpAuthorization<'a> {
    // A boolean, or in a few exports a string.
    #[serde(borrow)]
    granted: Raw<'a>,
}

#[derive(Deserialize)]
struct GcpStatus {
    code: Option<i64>,
}

#[derive(Deserialize)]
struct GcpServiceData<'a> {
    #[serde(borrow, rename = "policyDelta")]
    policy_delta: Option<GcpPolicyDelta<'a>>,
}

#[derive(Deserialize)]
struct GcpPolicyDelta<'a> {
    #[serde(borrow, rename = "bindingDeltas")]
    binding_deltas: Option<Vec<GcpBindingDelta<'a>>>,
}

#[derive(Deserialize)]
struct GcpMetadata<'a> {
    #[serde(borrow, rename = "bindingDeltas")]
    binding_deltas: Option<Vec<GcpBindingDelta<'a>>>,
    #[serde(borrow, rename = "datasetChange")]
    dataset_change: Option<GcpPolicyDelta<'a>>,
}

#[derive(Deserialize)]
struct GcpBindingDelta<'a> {
    #[serde(borrow)]
    action: Opt<'a>,
    #[serde(borrow)]
    role: Opt<'a>,
    #[serde(borrow)]
    member: Opt<'a>,
}

fn gcp_audit(line: &[u8]) -> usize {
    let Some(e) = parse::<GcpEntry<'_>>(line) else {
        return 0;
    };
    let n = 1 + found(nested::<GcpResource<'_>>(e.resource));
    black_box(&e);
    n
}

// ---- GitHub audit ----

#[derive(Deserialize)]
struct GithubEvent<'a> {
    #[serde(borrow)]
    action: Opt<'a>,
    #[serde(borrow)]
    actor: Opt<'a>,
    // Milliseconds or text.
    #[serde(borrow)]
    created_at: Raw<'a>,
    #[serde(borrow, rename = "@timestamp")]
    at_timestamp: Raw<'a>,
    #[serde(borrow)]
    at_sign_timestamp: Raw<'a>,
    #[serde(borrow)]
    p_event_time: Opt<'a>,
    #[serde(borrow)]
    _document_id: Opt<'a>,
    #[serde(borrow)]
    org: Opt<'a>,
    #[serde(borrow)]
    repo: Opt<'a>,
    #[serde(borrow)]
    repository: Opt<'a>,
    #[serde(borrow)]
    business: Opt<'a>,
    #[serde(borrow)]
    user: Opt<'a>,
    #[serde(borrow)]
    team: Opt<'a>,
    #[serde(borrow)]
    permission: Opt<'a>,
    #[serde(borrow)]
    name: Opt<'a>,
    #[serde(borrow)]
    integration: Opt<'a>,
    #[serde(borrow)]
    data: Option<GithubData<'a>>,
    #[serde(borrow)]
    actor_is_agent: Raw<'a>,
    #[serde(borrow)]
    agent_session_id: Opt<'a>,
}

#[derive(Deserialize)]
struct GithubData<'a> {
    #[serde(borrow)]
    team: Opt<'a>,
    #[serde(borrow)]
    permission: Opt<'a>,
}

fn github_audit(line: &[u8]) -> usize {
    found(parse::<GithubEvent<'_>>(line))
}

// ---- text formats ----

/// The next space-separated token of `s` and what follows it.
fn token(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches(' ');
    match memchr::memchr(b' ', s.as_bytes()) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    }
}

fn linux_auth(line: &[u8]) -> usize {
    let Ok(text) = std::str::from_utf8(line) else {
        return 0;
    };
    if text.starts_with("type=") || text.starts_with("node=") {
        let mut fields = 0;
        for kv in text.split(' ').filter_map(|t| t.split_once('=')) {
            black_box(kv);
            fields += 1;
        }
        return 1 + fields;
    }
    let (ts, rest) = if text.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        token(text)
    } else {
        // `Mmm dd HH:MM:SS`: three tokens, the day padded with a space or not.
        let (_, r) = token(text);
        let (_, r) = token(r);
        let (_, r) = token(r);
        let end = text.len() - r.len();
        (text[..end].trim_end(), r)
    };
    let (host, rest) = token(rest);
    let (tag, message) = token(rest);
    let program = tag.trim_end_matches(':');
    let program = program.split('[').next().unwrap_or(program);
    if host.is_empty() {
        return 0;
    }
    black_box((ts, host, program, message));
    1
}

fn web_access(line: &[u8]) -> usize {
    let Ok(text) = std::str::from_utf8(line) else {
        return 0;
    };
    let b = text.as_bytes();
    let Some(open) = memchr::memchr(b'[', b) else {
        return 0;
    };
    let Some(close) = memchr::memchr(b']', &b[open..]).map(|i| open + i) else {
        return 0;
    };
    let time = &text[open + 1..close];
    // host, ident and user are the last three tokens before the time.
    let mut before = text[..open].rsplit(' ').filter(|t| !t.is_empty());
    let user = before.next();
    let ident = before.next();
    let host = before.next();
    let vhost = before.next();
    let after = &text[close + 1..];
    let Some(q1) = memchr::memchr(b'"', after.as_bytes()) else {
        black_box((time, user, ident, host, vhost));
        return 1;
    };
    let request = &after[q1 + 1..];
    let Some(q2) = memchr::memchr(b'"', request.as_bytes()) else {
        return 1;
    };
    let (request, rest) = (&request[..q2], &request[q2 + 1..]);
    let (method, path) = token(request);
    let (path, _) = token(path);
    let (status, _) = token(rest);
    black_box((time, user, ident, host, vhost, method, path, status));
    1
}
