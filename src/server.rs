//! The HTTP surface: `/metrics`, `/healthz`, `/readyz`, `/api/findings`,
//! `POST /api/v1/decide`, and the incident page at `/` ([`crate::page`]).
//!
//! Read-only: every route but `/api/v1/decide` answers GET only, and that one
//! judges a proposed change without applying it ([`crate::gate`]). Binds 127.0.0.1 by default; the
//! address is `[server] listen`. With `[server] token_env` or `token_file`,
//! `/api/*`, the page (and `/metrics` with `protect_metrics`) require
//! `Authorization: Bearer <token>` (or the token as the password of Basic
//! authentication, which a browser asks for); health and readiness stay open
//! for probes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
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
    /// The engine's owner, for `POST /api/v1/decide` (503 without one).
    pub gate: Option<crate::gate::Asker>,
    /// What the incident page reads beyond the findings.
    pub page: crate::page::PageState,
}

/// Whether a request carries the configured token (always true without one).
fn authorised(s: &AppState, headers: &axum::http::HeaderMap) -> bool {
    crate::access::authorised(s.token.as_deref(), headers)
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
        .route("/api/v1/decide", post(decide))
        .merge(crate::page::routes(state.page.clone()))
        .with_state(state)
}

async fn metrics(State(s): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if s.protect_metrics && !authorised(&s, &headers) {
        return unauthorised();
    }
    // The flag is the one source of truth; the gauge mirrors it at each scrape.
    s.metrics
        .ready
        .set(i64::from(s.ready.load(Ordering::Acquire)));
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

/// `POST /api/v1/decide`: a proposed grant ([`crate::gate::Proposal`]) in,
/// `allow`, `ask` or `deny` with reasons, trace and expansion figures out.
async fn decide(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authorised(&s, &headers) {
        return unauthorised();
    }
    let bad = |msg: String| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({ "error": msg })),
        )
            .into_response()
    };
    let proposal: crate::gate::Proposal = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return bad(format!("not a proposal: {e}")),
    };
    let Some(gate) = &s.gate else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no engine to judge with\n").into_response();
    };
    match gate.ask(proposal).await {
        Ok(Ok(outcome)) => axum::Json(outcome).into_response(),
        Ok(Err(e)) => bad(e.to_string()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

/// Binds `addr`; returns the listener and the address it got (the port
/// chosen when `addr` asked for port 0). Serve it with [`serve`] or [`spawn`].
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// Serves on a task of its own until `stop` turns true; a failure is logged.
pub fn spawn(
    listener: TcpListener,
    state: AppState,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = serve(listener, state, stopped).await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn status(resp: &str) -> &str {
        resp.split_whitespace().nth(1).unwrap_or_default()
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).await.unwrap();
        resp
    }

    #[tokio::test]
    async fn readyz_and_the_ready_gauge_follow_the_flag() {
        let state = AppState {
            metrics: Metrics::new(&[]),
            recent: Recent::default(),
            ready: Arc::new(AtomicBool::new(false)),
            token: None,
            protect_metrics: false,
            gate: None,
            page: crate::page::PageState::new(
                Recent::default(),
                None,
                tokio::sync::broadcast::channel(1).0,
                None,
            ),
        };
        let ready = Arc::clone(&state.ready);
        let (listener, addr) = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, state, async {
            let _ = stopped.await;
        }));

        let resp = get(addr, "/readyz").await;
        assert_eq!(status(&resp), "503", "{resp}");
        assert!(
            get(addr, "/metrics")
                .await
                .contains("\nreachguard_ready 0\n")
        );
        assert_eq!(status(&get(addr, "/healthz").await), "200");

        ready.store(true, Ordering::Release);
        let resp = get(addr, "/readyz").await;
        assert_eq!(status(&resp), "200", "{resp}");
        assert!(
            get(addr, "/metrics")
                .await
                .contains("\nreachguard_ready 1\n")
        );

        let resp = get(addr, "/api/findings?severity=urgent").await;
        assert_eq!(status(&resp), "400", "{resp}");
        assert!(resp.contains("`severity` must be one of"), "{resp}");

        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
