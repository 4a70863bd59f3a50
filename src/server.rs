//! The HTTP surface: `/metrics`, `/healthz`, `/readyz`, `/api/findings`.
//!
//! Read-only: every route answers GET only. Binds 127.0.0.1 by default; the
//! address is `[server] listen`. With `[server] token_env` or `token_file`,
//! `/api/*` (and `/metrics` with `protect_metrics`) require
//! `Authorization: Bearer <token>`; health and readiness stay open for probes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::sink::{self, Recent};

/// What the handlers read.
#[derive(Clone)]
pub struct AppState {
    /// The metrics registry.
    pub metrics: Metrics,
    /// Recent findings.
    pub recent: Recent,
    /// True once checkpoints are loaded and sources are being followed.
    pub ready: Arc<AtomicBool>,
    /// Bearer token required on `/api/*` (and `/metrics` if `protect_metrics`).
    pub token: Option<Arc<str>>,
    /// Whether `/metrics` needs the token.
    pub protect_metrics: bool,
}

/// Constant-time comparison, so the time taken says nothing about the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a request carries the configured token (always true without one).
fn authorised(s: &AppState, headers: &axum::http::HeaderMap) -> bool {
    let Some(token) = &s.token else {
        return true;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| same(given.trim().as_bytes(), token.as_bytes()))
}

fn unauthorised() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "a bearer token is required\n",
    )
        .into_response()
}

/// The routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/findings", get(findings))
        .with_state(state)
}

async fn metrics(State(s): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if s.protect_metrics && !authorised(&s, &headers) {
        return unauthorised();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

async fn readyz(State(s): State<AppState>) -> Response {
    if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn findings(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    Query(q): Query<sink::Query>,
) -> Response {
    if !authorised(&s, &headers) {
        return unauthorised();
    }
    match sink::query(&s.recent, &q) {
        Ok(list) => axum::Json(list).into_response(),
        Err(msg) => (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"error": msg})),
        )
            .into_response(),
    }
}

/// Binds `addr`; the caller serves with [`serve`].
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
