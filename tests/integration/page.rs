//! The incident page in a real browser: Debian's Chromium, headless, driven
//! over WebDriver by chromedriver, against the real daemon on the incident.
//!
//! Skipped without `chromium` and `chromedriver` unless
//! `REACHGUARD_REQUIRE_CHROMIUM` is set (CI sets it). The finding page's
//! screenshot is written to `REACHGUARD_ARTEFACTS` (else cargo's target tmp
//! dir) as `incident-page.png`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

const HOSTILE: &str = "<img src=x onerror=alert(1)>";

/// The element key of the W3C WebDriver protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium and chromedriver, or why the test cannot run.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let find = |name: &str| {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    };
    match (find("chromium"), find("chromedriver")) {
        (Some(c), Some(d)) => Some((c, d)),
        _ => {
            assert!(
                std::env::var_os("REACHGUARD_REQUIRE_CHROMIUM").is_none(),
                "REACHGUARD_REQUIRE_CHROMIUM is set but chromium or chromedriver is not on PATH"
            );
            None
        }
    }
}

/// A chromedriver process and one headless Chromium session.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::blocking::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start(chromium: &Path, chromedriver: &Path, javascript: bool) -> Browser {
        // chromedriver takes no port 0: ask the kernel for a free port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // "ChromeDriver was started successfully on port N."
        let mut lines = BufReader::new(driver.stdout.take().unwrap()).lines();
        loop {
            let line = lines.next().expect("chromedriver said it started").unwrap();
            if line.contains("started successfully") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        let base = format!("http://127.0.0.1:{port}");
        reachguard::respond::hook::init_tls();
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let mut prefs = json!({});
        if !javascript {
            prefs = json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,1100",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": prefs,
            }
        }}});
        let mut b = Browser {
            driver,
            base,
            session: String::new(),
            http,
            _profile: profile,
        };
        let v = b.call(reqwest::Method::POST, "/session", Some(caps));
        b.session = v["sessionId"].as_str().unwrap().to_owned();
        b
    }

    /// One WebDriver command; its `value`, or the error's.
    fn raw(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (bool, Value) {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().unwrap();
        let ok = resp.status().is_success();
        let v: Value = resp.json().unwrap();
        (ok, v["value"].clone())
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (ok, v) = self.raw(method, path, body);
        assert!(ok, "WebDriver {path}: {v}");
        v
    }

    fn at(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    fn go(&self, url: &str) {
        self.call(
            reqwest::Method::POST,
            &self.at("/url"),
            Some(json!({ "url": url })),
        );
    }

    /// Runs `script` in the page (WebDriver's own channel, not the page's).
    fn eval(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            &self.at("/execute/sync"),
            Some(json!({ "script": script, "args": [] })),
        )
    }

    fn texts(&self, css: &str) -> Vec<String> {
        let found = self.call(
            reqwest::Method::POST,
            &self.at("/elements"),
            Some(json!({ "using": "css selector", "value": css })),
        );
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let id = e[ELEMENT].as_str().unwrap();
                self.call(
                    reqwest::Method::GET,
                    &self.at(&format!("/element/{id}/text")),
                    None,
                )
                .as_str()
                .unwrap()
                .to_owned()
            })
            .collect()
    }

    /// The text of an open alert, if the page opened one.
    fn alert(&self) -> Option<String> {
        let (ok, v) = self.raw(reqwest::Method::GET, &self.at("/alert/text"), None);
        if ok {
            return Some(v.as_str().unwrap_or_default().to_owned());
        }
        assert_eq!(v["error"], "no such alert", "{v}");
        None
    }

    fn screenshot(&self, to: &Path) {
        use base64::Engine as _;
        let v = self.call(reqwest::Method::GET, &self.at("/screenshot"), None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(to, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.raw(reqwest::Method::DELETE, &self.at(""), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn artefacts() -> PathBuf {
    let dir = std::env::var_os("REACHGUARD_ARTEFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn lines(raw: &[&str]) -> Vec<String> {
    raw.iter().map(|s| (*s).to_owned()).collect()
}

/// The daemon on the incident: history, then the incident appended live,
/// then a grant by an agent to a resource named with markup.
fn incident_daemon(dir: &Path, hook: &Webhook) -> (Daemon, PathBuf) {
    let log = dir.join("app.jsonl");
    append(
        &log,
        &lines(&[
            r#"{"ts":"2026-03-18T08:00:00Z","type":"membership","actor":"hr","actor_type":"service","group":"eng-all","member":"carol","op":"add"}"#,
            r#"{"ts":"2026-03-18T08:00:00Z","type":"membership","actor":"hr","actor_type":"service","group":"eng-all","member":"ivan","op":"add"}"#,
            r#"{"ts":"2026-03-18T08:30:00Z","type":"grant","grant_id":"g-routine","actor":"erin","grantee":"dave","resource":"ci/logs","reference":"OPS-1234"}"#,
        ]),
    );
    let daemon = Daemon::start(
        dir,
        &config(dir, &log.display().to_string(), Some(&hook.url())),
    );
    append(
        &log,
        &lines(&[
            r#"{"ts":"2026-03-18T09:02:11Z","type":"advice","advice_id":"adv-7731","agent":"agent:forum-helper","requested_by":"bob","channel":"forum/infra-q-4512","published":true,"recommends":[{"resource":"acl/internal-tools","role":"viewer","grantee":"eng-all"}]}"#,
            r#"{"ts":"2026-03-18T09:05:40Z","type":"advice_viewed","advice_id":"adv-7731","principal":"alice"}"#,
            r#"{"ts":"2026-03-18T09:07:02Z","type":"grant","grant_id":"g-90211","actor":"alice","grantee":"eng-all","grantee_type":"group","resource":"acl/internal-tools","role":"viewer","reference":"per forum/infra-q-4512"}"#,
            r#"{"ts":"2026-03-18T09:09:15Z","type":"access","id":"acc-1","principal":"carol","resource":"acl/internal-tools"}"#,
            r#"{"ts":"2026-03-18T09:11:40Z","type":"access","id":"acc-2","principal":"ivan","resource":"acl/internal-tools"}"#,
            r#"{"ts":"2026-03-18T09:50:00Z","type":"grant","grant_id":"g-markup","actor":"agent:ops-bot","grantee":"mallory","resource":"<img src=x onerror=alert(1)>"}"#,
        ]),
    );
    wait_until(
        Duration::from_secs(30),
        "every line to be processed",
        || daemon.metric(r#"reachguard_lines_total{source="app"}"#) >= 9.0,
    );
    wait_until(
        Duration::from_secs(30),
        "both revocations to finish",
        || {
            daemon
                .findings()
                .iter()
                .filter(|f| f["action"]["status"] == "executed")
                .count()
                >= 2
        },
    );
    (daemon, log)
}

fn finding_id(daemon: &Daemon, kind: &str, grant: &str) -> String {
    daemon
        .findings()
        .iter()
        .find(|f| f["kind"] == kind && f["grant_id"] == grant)
        .unwrap_or_else(|| panic!("a {kind} finding for {grant}"))["finding_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn the_finding_page_shows_the_chain_in_order_with_ids_and_runs_nothing_from_a_log() {
    let Some((chromium, chromedriver)) = browser() else {
        say_skipped("page", "chromium or chromedriver is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let hook = Webhook::start();
    let (daemon, log) = incident_daemon(dir.path(), &hook);
    let addr: SocketAddr = daemon.addr();
    let base = format!("http://{addr}");
    let browser = Browser::start(&chromium, &chromedriver, true);

    // The incident's finding: advice -> view -> grant -> uses -> revocation.
    let id = finding_id(&daemon, "unverified_agent_grant", "g-90211");
    browser.go(&format!("{base}/finding?id={id}"));
    let steps: Vec<String> = browser
        .eval("return Array.from(document.querySelectorAll('#timeline li')).map(li => li.dataset.step)")
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let order: Vec<&str> = steps
        .iter()
        .map(String::as_str)
        .filter(|s| ["advice", "view", "grant", "use", "revocation"].contains(s))
        .collect();
    assert_eq!(
        order,
        ["advice", "view", "grant", "use", "use", "revocation"],
        "{steps:?}"
    );
    let timeline = browser.texts("#timeline li");
    let step = |name: &str| {
        timeline
            .iter()
            .zip(&steps)
            .filter(|(_, s)| *s == name)
            .map(|(t, _)| t.clone())
            .collect::<Vec<_>>()
    };
    assert!(step("advice")[0].contains("adv-7731"), "{timeline:?}");
    assert!(step("view")[0].contains("alice") && step("view")[0].contains("adv-7731"));
    assert!(step("grant")[0].contains("g-90211"), "{timeline:?}");
    let uses = step("use");
    assert!(
        uses[0].contains("carol") && uses[0].contains("acc-1"),
        "{uses:?}"
    );
    assert!(
        uses[1].contains("ivan") && uses[1].contains("acc-2"),
        "{uses:?}"
    );
    let revocation = &step("revocation")[0];
    assert!(
        revocation.contains("executed") && revocation.contains("reachguard-revoke-g-90211"),
        "{revocation}"
    );
    // The milliseconds from grant to revocation, as the journal measured them.
    let ms = browser.texts("#grant-to-revocation")[0].clone();
    let ms: i64 = ms.trim_end_matches(" ms").parse().unwrap();
    assert!((0..10_000).contains(&ms), "{ms}");
    assert!(
        browser.texts("#restore-cmd")[0].starts_with("reachguard restore --config "),
        "a command to copy"
    );
    assert!(browser.texts("table.journal td")[0].contains("reachguard-revoke-g-90211"));
    browser.screenshot(&artefacts().join("incident-page.png"));

    // A resource named with markup is text, and nothing runs.
    let id = finding_id(&daemon, "unverified_agent_grant", "g-markup");
    browser.go(&format!("{base}/finding?id={id}"));
    assert_eq!(browser.texts("dd.resource"), [HOSTILE]);
    assert_eq!(browser.eval("return document.images.length"), json!(0));
    assert_eq!(browser.alert(), None, "the page opened an alert");
    browser.go(&format!("{base}/"));
    assert!(
        browser
            .texts("td.summary")
            .iter()
            .any(|t| t.contains(HOSTILE))
    );
    assert_eq!(browser.eval("return document.images.length"), json!(0));
    assert_eq!(browser.alert(), None, "the list opened an alert");

    // A person's page from a link on the finding.
    browser.go(&format!("{base}/person?name=carol"));
    let held = browser.texts("table.held td.resource");
    assert!(held.iter().any(|r| r == "acl/internal-tools"), "{held:?}");

    // Live: the list gains a finding written after it loaded, without a reload.
    browser.go(&format!("{base}/?kind=unverified_agent_grant"));
    wait_until(
        Duration::from_secs(20),
        "the live stream to connect",
        || {
            browser.eval("return document.getElementById('findings').dataset.live || ''")
                == json!("connected")
        },
    );
    browser.eval("window.loadedOnce = true; return null");
    let rows_before = browser.texts("#findings tbody tr").len();
    append(
        &log,
        &lines(&[
            r#"{"ts":"2026-03-18T10:00:00Z","type":"grant","grant_id":"g-live","actor":"agent:ops-bot","grantee":"trent","resource":"prod/db"}"#,
        ]),
    );
    wait_until(Duration::from_secs(20), "the new finding to appear", || {
        browser
            .texts("#findings tbody tr")
            .first()
            .is_some_and(|r| r.contains("agent:ops-bot") && r.contains("trent"))
    });
    assert_eq!(browser.texts("#findings tbody tr").len(), rows_before + 1);
    assert_eq!(
        browser.eval("return window.loadedOnce === true"),
        json!(true),
        "no reload"
    );
    drop(browser);

    // JavaScript off: the list and a finding are complete without it.
    let browser = Browser::start(&chromium, &chromedriver, false);
    browser.go(&format!("{base}/"));
    assert!(browser.texts("#findings tbody tr").len() >= 3);
    let id = finding_id(&daemon, "unverified_agent_grant", "g-90211");
    browser.go(&format!("{base}/finding?id={id}"));
    assert_eq!(browser.texts("#timeline li").len(), timeline.len());
    assert_eq!(
        browser.eval("return 1"),
        json!(1),
        "WebDriver still evaluates"
    );
}

#[test]
fn demo_serve_keeps_the_page_up_and_prints_its_address() {
    let mut child = Command::new(BIN)
        .args(["demo", "--serve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the demo printed the page's address")
            .unwrap();
        if let Some(url) = line.strip_prefix("The revoked grant's chain: ") {
            break url.to_owned();
        }
    };
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_at(rest.find('/').unwrap());
    let page = http_get(addr.parse().unwrap(), path);
    assert!(
        page.contains("g-90211") && page.contains("data-step=\"revocation\""),
        "{page}"
    );
    assert!(http_get(addr.parse().unwrap(), "/").contains("unverified_agent_grant"));
    sigterm(&child);
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_page_left_open_does_not_hold_up_shutdown() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.jsonl");
    append(&log, &[access_line("alice", "wiki/home", 1)]);
    let mut daemon = Daemon::start(
        dir.path(),
        &config(dir.path(), &log.display().to_string(), None),
    );
    let addr = daemon.addr();
    // A live stream, open and answered.
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET /events HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    assert!(daemon.sigterm().success(), "{}", daemon.log());
    // The stream ended with the daemon.
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
}
