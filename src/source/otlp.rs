//! The OTLP receiver: agent telemetry sent to reachguard rather than written
//! to a file.
//!
//! A source like the file tailer: `[otlp] listen` serves OTLP/HTTP (`POST
//! /v1/logs`, `POST /v1/traces`; `application/x-protobuf` or
//! `application/json`; gzip accepted) and `[otlp] grpc_listen` OTLP/gRPC (the
//! `LogsService` and `TraceService` of `opentelemetry-proto`). Each accepted
//! request becomes one OTLP/JSON line, exactly what the Collector's file
//! exporter would have written, handed to the pipeline as a line of the
//! source named `otlp` (so the `otlp` decoder reads it, and its lines, events
//! and errors are counted under that name). The sender is answered once the
//! pipeline has processed the line: a slow pipeline slows senders down.
//!
//! Answers follow the OTLP specification: success, with a `partial_success`
//! counting the agent records (log records, spans) rejected as malformed and
//! why the first was (`rejected_log_records` / `rejected_spans`,
//! `error_message`) when there are any; 400 / `InvalidArgument` for a
//! payload that does not decode, 413 / `ResourceExhausted` over
//! `[otlp] max_body_bytes` (gRPC: `OutOfRange` from twice that, where tonic
//! refuses the message before decoding it), 415 for other content types, 401 /
//! `Unauthenticated` without the `[server]` bearer token when one is set.

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use crate::decode::Rejected;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
    logs_service_server::{LogsService, LogsServiceServer},
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

/// The name of the receiver's source in logs and metric labels.
pub const SOURCE_NAME: &str = "otlp";

/// One request, as a line for the pipeline.
#[derive(Debug)]
pub struct Received {
    /// The request as one OTLP/JSON line (no newline).
    pub line: Vec<u8>,
    /// When it arrived.
    pub read_at: Instant,
    /// Told when the pipeline has processed it, with the records it rejected.
    pub done: oneshot::Sender<Rejected>,
}

/// What the receiver needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Largest body, in bytes, after decompression.
    pub max_body_bytes: usize,
    /// The bearer token required, if any.
    pub token: Option<Arc<str>>,
}

#[derive(Clone)]
struct Shared {
    settings: Settings,
    tx: mpsc::Sender<Received>,
}

#[derive(Clone, Copy, PartialEq)]
enum Signal {
    Logs,
    Traces,
}

/// A `google.rpc.Status`, the body of an OTLP error answer.
#[derive(Clone, PartialEq, prost::Message)]
struct Status {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// Serves OTLP/HTTP on `listener` until `stop` turns true.
pub fn spawn_http(
    listener: TcpListener,
    settings: Settings,
    tx: mpsc::Sender<Received>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let limit = settings.max_body_bytes;
    let shared = Shared { settings, tx };
    let app = Router::new()
        .route(
            "/v1/logs",
            post(|s: State<Shared>, h: HeaderMap, b: Bytes| export(s, h, b, Signal::Logs)),
        )
        .route(
            "/v1/traces",
            post(|s: State<Shared>, h: HeaderMap, b: Bytes| export(s, h, b, Signal::Traces)),
        )
        // A gzip body may be smaller than what it holds; both are limited.
        .layer(DefaultBodyLimit::max(limit))
        .with_state(shared);
    tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!(error = %e, "OTLP/HTTP receiver failed");
        }
    })
}

fn authorised(token: &Option<Arc<str>>, given: Option<&str>) -> bool {
    crate::access::allows(token.as_deref(), given)
}

fn error(status: StatusCode, code: i32, message: String, protobuf: bool) -> Response {
    if protobuf {
        let body = Status { code, message }.encode_to_vec();
        (
            status,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            body,
        )
            .into_response()
    } else {
        let body = serde_json::json!({ "code": code, "message": message }).to_string();
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// gRPC codes used in the answers' `Status`.
const INVALID_ARGUMENT: i32 = 3;
const RESOURCE_EXHAUSTED: i32 = 8;
const UNAUTHENTICATED: i32 = 16;
const UNAVAILABLE: i32 = 14;

async fn export(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
    signal: Signal,
) -> Response {
    let read_at = Instant::now();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let protobuf = match content_type.as_str() {
        "application/x-protobuf" => true,
        "application/json" => false,
        _ => {
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "use application/x-protobuf or application/json\n",
            )
                .into_response();
        }
    };
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !authorised(&s.settings.token, auth) {
        return error(
            StatusCode::UNAUTHORIZED,
            UNAUTHENTICATED,
            "a bearer token is required".into(),
            protobuf,
        );
    }
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let limit = s.settings.max_body_bytes;
    let body: Vec<u8> = if gzip {
        let mut out = Vec::new();
        let read = flate2::read::GzDecoder::new(&body[..])
            .take(limit as u64 + 1)
            .read_to_end(&mut out);
        if let Err(e) = read {
            return error(
                StatusCode::BAD_REQUEST,
                INVALID_ARGUMENT,
                format!("bad gzip body: {e}"),
                protobuf,
            );
        }
        out
    } else {
        body.to_vec()
    };
    if body.len() > limit {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            RESOURCE_EXHAUSTED,
            format!("the request exceeds {limit} bytes"),
            protobuf,
        );
    }
    let line = match to_line(&body, protobuf, signal) {
        Ok(line) => line,
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, INVALID_ARGUMENT, e, protobuf);
        }
    };
    let Ok(rejected) = deliver(&s.tx, line, read_at).await else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            UNAVAILABLE,
            "shutting down".into(),
            protobuf,
        );
    };
    let ok: Vec<u8> = match (protobuf, signal) {
        (false, _) if rejected.is_empty() => b"{}".to_vec(),
        (true, Signal::Logs) => logs_response(rejected).encode_to_vec(),
        (true, Signal::Traces) => traces_response(rejected).encode_to_vec(),
        (false, Signal::Logs) => json_response(&logs_response(rejected)),
        (false, Signal::Traces) => json_response(&traces_response(rejected)),
    };
    let ct = if protobuf {
        "application/x-protobuf"
    } else {
        "application/json"
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, ct)], ok).into_response()
}

/// The request as the OTLP/JSON line the file exporter writes.
fn to_line(body: &[u8], protobuf: bool, signal: Signal) -> Result<Vec<u8>, String> {
    let bad = |e: &dyn std::fmt::Display| format!("the body is not an OTLP export request: {e}");
    match (signal, protobuf) {
        (Signal::Logs, true) => {
            let r = ExportLogsServiceRequest::decode(body).map_err(|e| bad(&e))?;
            serde_json::to_vec(&r).map_err(|e| bad(&e))
        }
        (Signal::Traces, true) => {
            let r = ExportTraceServiceRequest::decode(body).map_err(|e| bad(&e))?;
            serde_json::to_vec(&r).map_err(|e| bad(&e))
        }
        (Signal::Logs, false) => {
            let r: ExportLogsServiceRequest = serde_json::from_slice(body).map_err(|e| bad(&e))?;
            serde_json::to_vec(&r).map_err(|e| bad(&e))
        }
        (Signal::Traces, false) => {
            let r: ExportTraceServiceRequest = serde_json::from_slice(body).map_err(|e| bad(&e))?;
            serde_json::to_vec(&r).map_err(|e| bad(&e))
        }
    }
}

/// The answer to a logs request: a partial success when records were rejected.
fn logs_response(r: Rejected) -> ExportLogsServiceResponse {
    ExportLogsServiceResponse {
        partial_success: (!r.is_empty()).then(|| ExportLogsPartialSuccess {
            rejected_log_records: i64::try_from(r.log_records).unwrap_or(i64::MAX),
            error_message: r.message.unwrap_or_default(),
        }),
    }
}

/// The answer to a traces request: a partial success when spans were rejected.
fn traces_response(r: Rejected) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: (!r.is_empty()).then(|| ExportTracePartialSuccess {
            rejected_spans: i64::try_from(r.spans).unwrap_or(i64::MAX),
            error_message: r.message.unwrap_or_default(),
        }),
    }
}

/// A response in the OTLP/JSON mapping (`{}` when it is empty).
fn json_response<T: serde::Serialize>(r: &T) -> Vec<u8> {
    serde_json::to_vec(r).unwrap_or_else(|_| b"{}".to_vec())
}

/// Hands a line to the pipeline and waits until it is processed; the
/// records it rejected.
async fn deliver(
    tx: &mpsc::Sender<Received>,
    line: Vec<u8>,
    read_at: Instant,
) -> Result<Rejected, ()> {
    let (done, processed) = oneshot::channel();
    tx.send(Received {
        line,
        read_at,
        done,
    })
    .await
    .map_err(|_| ())?;
    processed.await.map_err(|_| ())
}

/// The OTLP/gRPC services.
#[derive(Clone)]
struct Grpc {
    shared: Shared,
}

impl Grpc {
    fn check<T>(&self, req: &tonic::Request<T>) -> Result<(), tonic::Status> {
        let given = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if authorised(&self.shared.settings.token, given) {
            Ok(())
        } else {
            Err(tonic::Status::unauthenticated("a bearer token is required"))
        }
    }

    async fn deliver<T: serde::Serialize + Message>(
        &self,
        r: &T,
    ) -> Result<Rejected, tonic::Status> {
        let limit = self.shared.settings.max_body_bytes;
        if r.encoded_len() > limit {
            return Err(tonic::Status::resource_exhausted(format!(
                "the request exceeds {limit} bytes"
            )));
        }
        let line =
            serde_json::to_vec(r).map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
        deliver(&self.shared.tx, line, Instant::now())
            .await
            .map_err(|_| tonic::Status::unavailable("shutting down"))
    }
}

#[tonic::async_trait]
impl LogsService for Grpc {
    async fn export(
        &self,
        req: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.check(&req)?;
        let rejected = self.deliver(req.get_ref()).await?;
        Ok(tonic::Response::new(logs_response(rejected)))
    }
}

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.check(&req)?;
        let rejected = self.deliver(req.get_ref()).await?;
        Ok(tonic::Response::new(traces_response(rejected)))
    }
}

/// Serves OTLP/gRPC on `listener` until `stop` turns true.
pub fn spawn_grpc(
    listener: TcpListener,
    settings: Settings,
    tx: mpsc::Sender<Received>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    // tonic refuses larger messages itself, before they are decoded, with
    // `OutOfRange`; up to twice the limit they are decoded and refused with
    // `ResourceExhausted`, as OTLP asks.
    let limit = settings.max_body_bytes.saturating_mul(2);
    let svc = Grpc {
        shared: Shared { settings, tx },
    };
    tokio::spawn(async move {
        let incoming = tokio_stream_listener(listener);
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let res = tonic::transport::Server::builder()
            .add_service(
                LogsServiceServer::new(svc.clone())
                    .max_decoding_message_size(limit)
                    .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
            )
            .add_service(
                TraceServiceServer::new(svc)
                    .max_decoding_message_size(limit)
                    .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
            )
            .serve_with_incoming_shutdown(incoming, stopped)
            .await;
        if let Err(e) = res {
            tracing::error!(error = %e, "OTLP/gRPC receiver failed");
        }
    })
}

fn tokio_stream_listener(
    listener: TcpListener,
) -> impl futures_util::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |l| async move {
        let r = l.accept().await.map(|(s, _)| s);
        Some((r, l))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_become_the_file_exporters_lines() {
        let json = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"1773824400000000000","body":{"stringValue":"claude_code.tool_result"}}]}]}]}"#;
        let line = to_line(json, false, Signal::Logs).unwrap();
        let back: ExportLogsServiceRequest = serde_json::from_slice(&line).unwrap();
        let pb = back.encode_to_vec();
        assert_eq!(to_line(&pb, true, Signal::Logs).unwrap(), line);
        assert!(to_line(b"\xff\x00garbage", true, Signal::Logs).is_err());
        assert!(to_line(b"{\"resourceSpans\":7}", false, Signal::Traces).is_err());
    }

    #[test]
    fn the_token_is_compared_whole() {
        let t = Some(Arc::from("s3cret"));
        assert!(authorised(&t, Some("Bearer s3cret")));
        assert!(!authorised(&t, Some("Bearer s3cre")));
        assert!(!authorised(&t, None));
        assert!(authorised(&None, None));
    }
}
