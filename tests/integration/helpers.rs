//! Shared helpers: a daemon process, a webhook receiver, metric reading.

use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};

pub const BIN: &str = env!("CARGO_BIN_EXE_reachguard");
pub const SECRET: &str = "integration-test-secret";

/// Says on the terminal that `test` was skipped and why. Written to the
/// process's standard error directly, past the test harness's capture, so that
/// a plain `cargo test` shows it.
pub fn say_skipped(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{test}: skipped: {why}");
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes. This waits for
/// an observable outcome; it is not a sleep that hides a race.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `reachguard run` process.
pub struct Daemon {
    child: Child,
    pub state: PathBuf,
    pub stderr: PathBuf,
}

impl Daemon {
    /// Starts `reachguard run --config <dir>/reachguard.toml` with `config`.
    pub fn start(dir: &Path, config: &str) -> Daemon {
        let cfg = dir.join("reachguard.toml");
        std::fs::write(&cfg, config).unwrap();
        let state = dir.join("state");
        let _ = std::fs::remove_file(state.join("http.addr"));
        let runs = std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("daemon-")
            })
            .count();
        let stderr = dir.join(format!("daemon-{runs}.log"));
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&cfg)
            .env("REACHGUARD_HOOK_SECRET", SECRET)
            .env("RUST_LOG", "reachguard=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let d = Daemon {
            child,
            state,
            stderr,
        };
        let addr_file = d.state.join("http.addr");
        wait_until(
            Duration::from_secs(20),
            "the daemon to bind its HTTP address",
            || addr_file.exists(),
        );
        d
    }

    pub fn addr(&self) -> SocketAddr {
        std::fs::read_to_string(self.state.join("http.addr"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// The value of one metric series, e.g. `reachguard_lines_total{source="app"}`.
    pub fn metric(&self, series: &str) -> f64 {
        let text = http_get(self.addr(), "/metrics");
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
    }

    /// SIGKILL: no shutdown code runs, as in a crash or an OOM kill.
    pub fn kill_9(&mut self) -> ExitStatus {
        self.child.kill().unwrap();
        self.child.wait().unwrap()
    }

    pub fn sigterm(&mut self) -> ExitStatus {
        sigterm(&self.child);
        self.wait()
    }

    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not exit; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Findings written to the state dir.
    pub fn findings(&self) -> Vec<serde_json::Value> {
        read_json_lines(&self.state.join("findings.jsonl"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends SIGTERM to `child`.
pub fn sigterm(child: &Child) {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
}

pub fn read_json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A blocking HTTP GET over a plain TCP socket (HTTP/1.0, so the server closes).
/// POSTs `body` with `headers`; returns the status code and the body.
pub fn http_post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP response");
    let head = String::from_utf8_lossy(&resp[..split]);
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (code, resp[split + 4..].to_vec())
}

pub fn http_get(addr: SocketAddr, path: &str) -> String {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    body.to_owned()
}

/// Appends lines (each gets a newline) and flushes.
pub fn append(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        f.write_all(l.as_bytes()).unwrap();
        f.write_all(b"\n").unwrap();
    }
    f.flush().unwrap();
}

/// One request the webhook received.
#[derive(Debug, Clone)]
pub struct Received {
    /// When the request arrived.
    pub at: Instant,
    pub path: String,
    pub signature: Option<String>,
    pub idempotency_key: Option<String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn grant_id(&self) -> String {
        self.json()["grant_id"].as_str().unwrap().to_owned()
    }

    pub fn action(&self) -> String {
        self.json()["action"].as_str().unwrap().to_owned()
    }

    pub fn signature_valid(&self, secret: &str) -> bool {
        self.signature.as_deref().is_some_and(|s| {
            reachguard::respond::hook::verify_signature(secret.as_bytes(), &self.body, s)
        })
    }
}

/// How the webhook answers one request; a script is consumed in arrival order,
/// and requests beyond it get 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Answer with this status.
    Status(u16),
    /// Never answer (until the client gives up and closes the connection).
    Hang,
    /// Answer 200 once the test calls [`Webhook::release`].
    Hold,
}

struct Shared {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Reply>>,
    release: tokio::sync::Semaphore,
}

/// A real HTTP server on 127.0.0.1 recording every POST (any path), in arrival
/// order, and answering as scripted.
pub struct Webhook {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _runtime: tokio::runtime::Runtime,
}

impl Webhook {
    pub fn start() -> Webhook {
        Webhook::scripted(&[])
    }

    pub fn scripted(script: &[Reply]) -> Webhook {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            script: Mutex::new(script.iter().copied().collect()),
            release: tokio::sync::Semaphore::new(0),
        });
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(SocketAddr::from((
                [127, 0, 0, 1],
                0,
            ))))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(axum::routing::post(record))
            .with_state(Arc::clone(&shared));
        rt.spawn(async move { axum::serve(listener, app).await });
        Webhook {
            addr,
            shared,
            _runtime: rt,
        }
    }

    pub fn url(&self) -> String {
        self.url_for("/revoke")
    }

    pub fn url_for(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn calls(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Lets one held request answer.
    pub fn release(&self) {
        self.shared.release.add_permits(1);
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    shared.received.lock().unwrap().push(Received {
        at: Instant::now(),
        path: uri.path().to_owned(),
        signature: h("x-reachguard-signature"),
        idempotency_key: h("idempotency-key"),
        body: body.to_vec(),
    });
    let reply = shared.script.lock().unwrap().pop_front();
    match reply {
        None => StatusCode::OK,
        Some(Reply::Status(code)) => StatusCode::from_u16(code).unwrap(),
        Some(Reply::Hang) => std::future::pending().await,
        Some(Reply::Hold) => {
            shared.release.acquire().await.unwrap().forget();
            StatusCode::OK
        }
    }
}

/// A config following `logs` (a path or glob) with state in `dir/state`.
/// `cfg` with another file source, `name` following `path`, listed before
/// the others: every configured source moves one place down.
pub fn with_source_first(cfg: &str, name: &str, path: &Path) -> String {
    let at = cfg.find("[[sources]]").expect("a config with sources");
    format!(
        "{}[[sources]]\npath = \"{}\"\nname = \"{name}\"\n\n{}",
        &cfg[..at],
        path.display(),
        &cfg[at..]
    )
}

/// The state dir's saved cursors (`{}` before the first checkpoint).
pub fn saved_cursors(state: &Path) -> serde_json::Value {
    match std::fs::read(state.join("checkpoint.json")) {
        Ok(b) => serde_json::from_slice::<serde_json::Value>(&b).unwrap()["cursors"].clone(),
        Err(_) => serde_json::json!({}),
    }
}

pub fn config(dir: &Path, logs: &str, hook_url: Option<&str>) -> String {
    let mut c = format!(
        "[state]\ndir = \"{}\"\ncheckpoint_interval = \"100ms\"\n\n[[sources]]\npath = \"{logs}\"\nname = \"app\"\n\n[server]\nlisten = \"127.0.0.1:0\"\n\n[sensitivity]\n\"acl/internal-*\" = \"critical\"\n",
        dir.join("state").display()
    );
    if let Some(url) = hook_url {
        c.push_str(&format!(
            "\n[[response.hooks]]\ntype = \"webhook\"\nurl = \"{url}\"\nsecret_env = \"REACHGUARD_HOOK_SECRET\"\ntimeout = \"2s\"\n"
        ));
    }
    c
}

/// An access line for `principal` at second `n` of the day.
pub fn access_line(principal: &str, resource: &str, n: u64) -> String {
    format!(
        r#"{{"ts":"2026-03-18T{:02}:{:02}:{:02}Z","type":"access","principal":"{principal}","resource":"{resource}"}}"#,
        (n / 3600) % 24,
        (n / 60) % 60,
        n % 60
    )
}
