//! Live revocation latency: from a grant line being appended to a followed log
//! file to the webhook receiving the signed revocation.
//!
//! Starts the daemon in-process (`reachguard::daemon::start`) on a temporary
//! state dir, a webhook receiver on 127.0.0.1:0, and appends grant lines made
//! by an AI agent (each traced with full confidence) one at a time, waiting for
//! each revocation before the next. Prints p50/p90/p99/max.
//!
//! `cargo bench --bench revocation_latency` (optionally `-- RUNS ENGINEERS`,
//! default 200 runs on an empty model). With ENGINEERS, a generated
//! organisation's two weeks of history is in the log first, so the model,
//! baselines and peer groups are at that size while the lines are judged. It
//! also reports append -> finding: the line read, decoded, judged and its
//! revocation journaled (fsync), which is when the daemon counts it processed.

/// The allocator the `reachguard` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use tokio::sync::mpsc;

const SECRET: &str = "bench-secret";

async fn receive(
    State(tx): State<mpsc::UnboundedSender<(Instant, Vec<u8>)>>,
    body: Bytes,
) -> StatusCode {
    let _ = tx.send((Instant::now(), body.to_vec()));
    StatusCode::OK
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    let nums: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let runs = nums.first().copied().unwrap_or(200);
    let engineers = nums.get(1).copied().unwrap_or(0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(bench(runs, engineers));
}

async fn bench(runs: usize, engineers: usize) {
    reachguard::respond::hook::init_tls();
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("audit.jsonl");
    let mut history = 0u64;
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&log).expect("log file"));
        if engineers > 0 {
            let org = reachguard::synth::generate(reachguard::synth::OrgSpec {
                engineers,
                history_days: 14,
                eval_days: 0,
                seed: 1,
                inject: false,
            });
            for e in &org.events {
                writeln!(f, "{}", e.to_native_json()).expect("write history");
            }
            history = org.events.len() as u64;
        }
        f.flush().expect("flush history");
    }
    let secret_file = dir.path().join("hook.key");
    std::fs::write(&secret_file, SECRET).expect("secret file");

    let (tx, mut rx) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind webhook");
    let hook_addr = listener.local_addr().expect("webhook address");
    let app = axum::Router::new()
        .route("/revoke", axum::routing::post(receive))
        .with_state(tx);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let cfg = reachguard::config::Config::parse(&format!(
        r#"
[state]
dir = "{state}"
checkpoint_interval = "1s"

[[sources]]
path = "{log}"
name = "bench"

[server]
listen = "127.0.0.1:0"

[response]
max_revocations_per_hour = 1000000

[[response.hooks]]
type = "webhook"
url = "http://{hook_addr}/revoke"
secret_file = "{secret}"
timeout = "5s"

[log]
level = "error"
"#,
        state = dir.path().join("state").display(),
        log = log.display(),
        secret = secret_file.display(),
    ))
    .expect("bench config");
    let loading = Instant::now();
    let handle = reachguard::daemon::start(cfg).await.expect("daemon starts");
    let mut processed = handle.processed.clone();
    processed
        .wait_for(|n| *n >= history)
        .await
        .expect("daemon running");
    if engineers > 0 {
        println!(
            "{engineers} engineers: {history} lines of history followed in {:.1} s",
            loading.elapsed().as_secs_f64()
        );
    }

    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("open log");
    let mut latencies = Vec::with_capacity(runs);
    let mut detections = Vec::with_capacity(runs);
    for i in 0..runs {
        let grant_id = format!("g-bench-{i}");
        let line = format!(
            r#"{{"ts":"2026-01-19T10:{:02}:{:02}Z","type":"grant","grant_id":"{grant_id}","actor":"agent:ops-bot","grantee":"user-{i}","resource":"prod/db-{i}","role":"admin"}}"#,
            (i / 60) % 60,
            i % 60
        );
        let appended = {
            file.write_all(format!("{line}\n").as_bytes())
                .expect("append");
            file.flush().expect("flush");
            Instant::now()
        };
        let target = history + i as u64 + 1;
        processed
            .wait_for(|n| *n >= target)
            .await
            .expect("daemon running");
        detections.push(appended.elapsed());
        let received = loop {
            let (at, body) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no revocation of {grant_id} within 30 s"))
                .expect("webhook running");
            let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON payload");
            if v["grant_id"] == grant_id.as_str() {
                break at;
            }
        };
        latencies.push(received.saturating_duration_since(appended));
    }
    handle.shutdown();
    handle.wait().await.expect("clean shutdown");

    latencies.sort();
    detections.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "append -> finding (detected, revocation journaled), {runs} runs: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(percentile(&detections, 50.0)),
        ms(percentile(&detections, 90.0)),
        ms(percentile(&detections, 99.0)),
        ms(*detections.last().expect("at least one run")),
    );
    println!(
        "revocation latency, grant line appended -> webhook received, {runs} runs: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 90.0)),
        ms(percentile(&latencies, 99.0)),
        ms(*latencies.last().expect("at least one run")),
    );
}
