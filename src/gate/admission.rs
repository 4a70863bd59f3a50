//! The Kubernetes admission gate: a `ValidatingAdmissionWebhook` for
//! RoleBindings and ClusterRoleBindings, on `[gate] listen` over HTTPS.
//!
//! `POST /k8s/validate` takes an `admission.k8s.io/v1` `AdmissionReview`
//! (the types are `kube-core`'s; `k8s-openapi` has no admission types, as the
//! API server's OpenAPI document does not describe them). Each subject of a
//! binding being created or updated (a `patch` reaches admission as an
//! `UPDATE`) is one proposed grant, named as the `k8s-audit` decoder names the
//! grant the API server will log, and judged by [`super::decide`] on the
//! daemon's engine. The worst answer wins:
//!
//! - `deny`: `allowed: false`, the message naming the advice and what to do
//!   (have a person verify it); in `mode = "warn"`, allowed with a warning.
//! - `ask`: allowed, with the reasons as admission `warnings` (`kubectl`
//!   prints them): a large expansion is worth a second look, but the API
//!   server cannot ask a person.
//! - `allow`: allowed.
//!
//! Every other resource or operation is allowed untouched. The `uid` of the
//! request is echoed, as the API server requires. A body that is not an
//! `AdmissionReview` with a request is answered `400`; when the engine
//! cannot answer the response is a `500`, and the webhook's `failurePolicy`
//! decides (see `deploy/k8s/validating-webhook.yaml`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use kube_core::DynamicObject;
use kube_core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::{Asker, Decision, GateKind, Outcome, Proposal};

/// `[gate]`: the admission webhook's listener and how it answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GateConfig {
    /// HTTPS address of `POST /k8s/validate`; no webhook when absent.
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain the API server verifies (its `caBundle` signs it).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate.
    pub tls_key: Option<PathBuf>,
    /// `enforce` refuses bindings that trace to unverified advice; `warn`
    /// only warns.
    pub mode: GateMode,
}

/// `[gate] mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GateMode {
    /// Deny what the gate denies.
    #[default]
    Enforce,
    /// Never deny; say what would have been denied in a warning.
    Warn,
}

impl GateConfig {
    /// Checks that a listener has its certificate and key (the API server
    /// calls webhooks over HTTPS only).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.listen.is_some() {
            if self.tls_cert.is_none() {
                return Err(("tls_cert", "[gate] listen needs tls_cert".into()));
            }
            if self.tls_key.is_none() {
                return Err(("tls_key", "[gate] listen needs tls_key".into()));
            }
        }
        Ok(())
    }
}

/// Why the webhook could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("cannot read {path}: {why}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The certificate and key do not make a server configuration.
    #[error("the certificate and key in [gate] do not go together: {0}")]
    Config(String),
    /// The address is taken or not allowed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A TLS acceptor for `cert` and `key` (PEM files), over ring.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let pem = |path: &Path, why: String| TlsError::Pem {
        path: path.to_owned(),
        why,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem(cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(pem(cert, "no certificate in it".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP listener whose connections are handed on once their TLS handshake
/// is done. Handshakes run on tasks of their own, so one slow client does not
/// hold up the others.
struct TlsListener {
    addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<TlsListener> {
        let addr = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of descriptors, say: wait rather than spin.
                        tracing::warn!(error = %e, "gate: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, handoff) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = handoff.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "gate: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "gate: TLS handshake timed out"),
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(TlsListener { addr, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accepting task ended (it never does while the listener
            // lives): no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

/// What the handler reads.
#[derive(Clone)]
struct Webhook {
    gate: Asker,
    mode: GateMode,
}

/// Binds `[gate] listen` with its certificate and serves `POST /k8s/validate`
/// until `stop` turns true. Returns the bound address (the port chosen when
/// the address asked for port 0). `None` when no listener is configured.
pub async fn spawn(
    cfg: &GateConfig,
    gate: Asker,
    mut stop: watch::Receiver<bool>,
) -> Result<Option<(SocketAddr, tokio::task::JoinHandle<()>)>, TlsError> {
    let (Some(addr), Some(cert), Some(key)) = (cfg.listen, &cfg.tls_cert, &cfg.tls_key) else {
        return Ok(None);
    };
    let acceptor = acceptor(cert, key)?;
    let tcp = TcpListener::bind(addr)
        .await
        .map_err(|source| TlsError::Bind { addr, source })?;
    let listener =
        TlsListener::new(tcp, acceptor).map_err(|source| TlsError::Bind { addr, source })?;
    let bound = listener.addr;
    let app = router(gate, cfg.mode);
    let task = tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!(error = %e, "gate: HTTPS server failed");
        }
    });
    Ok(Some((bound, task)))
}

/// The webhook's routes.
fn router(gate: Asker, mode: GateMode) -> Router {
    Router::new()
        .route("/k8s/validate", post(validate))
        .with_state(Webhook { gate, mode })
}

fn bad_request(msg: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(serde_json::json!({ "error": msg })),
    )
        .into_response()
}

async fn validate(State(w): State<Webhook>, body: axum::body::Bytes) -> Response {
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(format!("not an AdmissionReview: {e}")),
    };
    let req: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(_) => return bad_request("the AdmissionReview has no request".into()),
    };
    let proposals = match proposals(&req) {
        Ok(p) => p,
        Err(msg) => return bad_request(msg),
    };
    let mut outcomes = Vec::with_capacity(proposals.len());
    for p in proposals {
        match w.gate.ask(p).await {
            Ok(Ok(o)) => outcomes.push(o),
            Ok(Err(e)) => return bad_request(e.to_string()),
            Err(e) => {
                // The failure policy decides what the API server does.
                return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response();
            }
        }
    }
    let resp = answer(&req, &outcomes, w.mode);
    (
        [(header::CONTENT_TYPE, "application/json")],
        axum::Json(resp.into_review()),
    )
        .into_response()
}

/// The grants a binding request proposes: one per subject of a
/// RoleBinding or ClusterRoleBinding created or updated; none for anything
/// else (which is allowed untouched).
fn proposals(req: &AdmissionRequest<DynamicObject>) -> Result<Vec<Proposal>, String> {
    let namespaced = match (req.resource.group.as_str(), req.resource.resource.as_str()) {
        ("rbac.authorization.k8s.io", "rolebindings") => true,
        ("rbac.authorization.k8s.io", "clusterrolebindings") => false,
        _ => return Ok(Vec::new()),
    };
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Ok(Vec::new());
    }
    let Some(object) = &req.object else {
        return Err("a binding create or update without its object".into());
    };
    let raw = serde_json::value::to_raw_value(object).map_err(|e| e.to_string())?;
    let Some(binding) = crate::decode::k8s_audit::Binding::parse(&raw) else {
        // No role or no subjects: it grants nothing.
        return Ok(Vec::new());
    };
    let actor = req.user_info.username.clone().unwrap_or_default();
    if actor.is_empty() {
        return Err("the request names no user".into());
    }
    let name = (!req.name.is_empty()).then_some(req.name.as_str());
    let reference = binding.reference().map(str::to_owned);
    // An update proposes only the subjects it adds: the others hold the
    // role already (the audit log may not have shown reachguard them).
    let before: Vec<(String, String)> = req
        .old_object
        .as_ref()
        .and_then(|o| serde_json::value::to_raw_value(o).ok())
        .map(|raw| {
            crate::decode::k8s_audit::Binding::parse(&raw)
                .map(|b| {
                    b.grants(req.namespace.as_deref(), namespaced, name)
                        .into_iter()
                        .map(|g| (g.grantee, g.resource))
                        .collect()
                })
                .unwrap_or_default()
        })
        .unwrap_or_default();
    Ok(binding
        .grants(req.namespace.as_deref(), namespaced, name)
        .into_iter()
        .filter(|g| {
            !before
                .iter()
                .any(|(grantee, resource)| *grantee == g.grantee && *resource == g.resource)
        })
        .map(|g| Proposal {
            gate: GateKind::K8s,
            actor: actor.clone(),
            grantee: g.grantee,
            grantee_type: Some(g.grantee_type),
            resource: g.resource,
            role: Some(g.role),
            reference: reference.clone(),
            ..Proposal::default()
        })
        .collect())
}

/// The admission response for the answers to a request's grants.
fn answer(
    req: &AdmissionRequest<DynamicObject>,
    outcomes: &[Outcome],
    mode: GateMode,
) -> AdmissionResponse {
    let mut resp = AdmissionResponse::from(req);
    let worst = outcomes
        .iter()
        .map(|o| o.decision)
        .max()
        .unwrap_or(Decision::Allow);
    let mut warnings: Vec<String> = Vec::new();
    for o in outcomes.iter().filter(|o| o.decision != Decision::Allow) {
        warnings.extend(o.reasons.iter().map(|r| format!("reachguard: {r}")));
    }
    if worst == Decision::Deny {
        let denied = outcomes
            .iter()
            .find(|o| o.decision == Decision::Deny)
            .expect("the worst is a deny");
        // The first reason names the advice and what to do.
        let message = match denied.reasons.first() {
            Some(reason) => format!("reachguard refused this binding: it {reason}"),
            None => "reachguard refused this binding: it traces to agent advice no person verified"
                .to_owned(),
        };
        match mode {
            GateMode::Enforce => {
                resp = resp.deny(message);
            }
            GateMode::Warn => warnings.insert(0, format!("{message} (warn mode: not refused)")),
        }
    }
    if !warnings.is_empty() {
        resp.warnings = Some(warnings);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::GranteeType;

    const REVIEW: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"705ab4f5-6393-11e8-b7cc-42010a800002","kind":{"group":"rbac.authorization.k8s.io","version":"v1","kind":"ClusterRoleBinding"},"resource":{"group":"rbac.authorization.k8s.io","version":"v1","resource":"clusterrolebindings"},"name":"eng-all-tools","operation":"CREATE","userInfo":{"username":"alice","groups":["system:authenticated"]},"object":{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding","metadata":{"name":"eng-all-tools"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"internal-tools-viewer"},"subjects":[{"kind":"Group","apiGroup":"rbac.authorization.k8s.io","name":"eng-all"},{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"bob"}]},"oldObject":null,"dryRun":false}}"#;

    #[test]
    fn a_binding_is_one_proposal_per_subject_named_as_the_audit_log_names_it() {
        let review: AdmissionReview<DynamicObject> = serde_json::from_str(REVIEW).unwrap();
        let req: AdmissionRequest<DynamicObject> = review.try_into().unwrap();
        let ps = proposals(&req).unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].actor, "alice");
        assert_eq!(ps[0].grantee, "eng-all");
        assert_eq!(ps[0].grantee_type, Some(GranteeType::Group));
        assert_eq!(
            ps[0].resource,
            "k8s/cluster/ClusterRole/internal-tools-viewer"
        );
        assert_eq!(ps[1].grantee, "bob");
        assert_eq!(ps[1].grantee_type, Some(GranteeType::User));
        assert!(ps.iter().all(|p| p.gate == GateKind::K8s));
    }

    #[test]
    fn an_update_proposes_only_the_subjects_it_adds() {
        let object = r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding","metadata":{"name":"eng-all-tools"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"internal-tools-viewer"},"subjects":[{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"bob"}]}"#;
        let update = REVIEW
            .replace("\"CREATE\"", "\"UPDATE\"")
            .replace("\"oldObject\":null", &format!("\"oldObject\":{object}"));
        let review: AdmissionReview<DynamicObject> = serde_json::from_str(&update).unwrap();
        let req: AdmissionRequest<DynamicObject> = review.try_into().unwrap();
        let ps = proposals(&req).unwrap();
        assert_eq!(ps.len(), 1, "{ps:?}");
        assert_eq!(ps[0].grantee, "eng-all");
    }

    #[test]
    fn other_resources_and_deletes_propose_nothing() {
        let pods = REVIEW.replace("clusterrolebindings", "pods");
        let review: AdmissionReview<DynamicObject> = serde_json::from_str(&pods).unwrap();
        let req: AdmissionRequest<DynamicObject> = review.try_into().unwrap();
        assert!(proposals(&req).unwrap().is_empty());
        let delete = REVIEW.replace("\"CREATE\"", "\"DELETE\"");
        let review: AdmissionReview<DynamicObject> = serde_json::from_str(&delete).unwrap();
        let req: AdmissionRequest<DynamicObject> = review.try_into().unwrap();
        assert!(proposals(&req).unwrap().is_empty());
    }
}
