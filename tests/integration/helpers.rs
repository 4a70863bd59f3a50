//! Shared helpers: a daemon process, a webhook receiver, metric reading.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

pub const BIN: &str = env!("CARGO_BIN_EXE_reachguard");
pub const SECRET: &str = "integration-test-secret";

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

    pub fn sigterm(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
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

pub fn read_json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A blocking HTTP GET over a plain TCP socket (HTTP/1.0, so the server closes).
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
    pub signature: Option<String>,
    pub idempotency_key: Option<String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn signature_valid(&self, secret: &str) -> bool {
        self.signature.as_deref().is_some_and(|s| {
            reachguard::respond::hook::verify_signature(secret.as_bytes(), &self.body, s)
        })
    }
}

/// A real HTTP server on 127.0.0.1 recording every POST /revoke.
pub struct Webhook {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Webhook {
    pub fn start() -> Webhook {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(SocketAddr::from((
                [127, 0, 0, 1],
                0,
            ))))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/revoke", axum::routing::post(record))
            .with_state(Arc::clone(&received));
        rt.spawn(async move { axum::serve(listener, app).await });
        Webhook {
            addr,
            received,
            _runtime: rt,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/revoke", self.addr)
    }

    pub fn calls(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn record(
    State(rec): State<Arc<Mutex<Vec<Received>>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    rec.lock().unwrap().push(Received {
        signature: h("x-reachguard-signature"),
        idempotency_key: h("idempotency-key"),
        body: body.to_vec(),
    });
    StatusCode::OK
}

/// A config following `logs` (a path or glob) with state in `dir/state`.
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
