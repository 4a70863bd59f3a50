//! The demo's third act: the confirmation gate stops the incident's binding
//! before it exists.
//!
//! The daemon's admission webhook (`[gate]`) listens on 127.0.0.1 over HTTPS
//! with a certificate made for the run. The forum agent answers again,
//! unreviewed: "bind ClusterRole internal-tools-viewer to eng-all"; alice
//! reads it and creates the ClusterRoleBinding. The API server's
//! `AdmissionReview` is refused, naming the advice; once a person verifies the
//! advice, the same review is admitted.
//!
//! The webhook judges at the wall clock (an API server sends no time), so
//! this act's lines are dated minutes before now, after the week the earlier
//! acts replay.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::other;
use crate::event::Ts;

/// The advice the act is about.
const ADVICE: &str = "adv-7744";

/// The webhook's certificate and key, made for this run and trusted only by
/// the demo's own client.
pub(super) struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pem: String,
}

/// Makes a self-signed certificate for `localhost` and 127.0.0.1 in `dir`.
pub(super) fn certificate(dir: &Path) -> io::Result<Tls> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .map_err(other)?;
    let (cert, key) = (dir.join("gate.crt"), dir.join("gate.key"));
    let pem = ck.cert.pem();
    std::fs::write(&cert, &pem)?;
    std::fs::write(&key, ck.signing_key.serialize_pem())?;
    Ok(Tls { cert, key, pem })
}

/// The `[gate]` section for `tls`.
pub(super) fn config(tls: &Tls) -> String {
    format!(
        "[gate]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\nmode = \"enforce\"\n",
        tls.cert.display(),
        tls.key.display()
    )
}

/// What the third act showed.
pub(super) struct ActThree {
    refused: Answer,
    admitted: Answer,
}

/// The webhook's answer to one review.
struct Answer {
    allowed: bool,
    message: Option<String>,
    uid_echoed: bool,
    ms: f64,
}

/// Appends the act's lines to `log`, then sends alice's binding to the
/// webhook before and after a person verifies the advice.
pub(super) async fn run(
    log: &Path,
    state_dir: &Path,
    tls: &Tls,
    processed: &mut watch::Receiver<u64>,
    lines_before: u64,
) -> io::Result<ActThree> {
    let now = Ts::now();
    let advice = serde_json::json!({
        "ts": now.add_millis(-240_000).to_string(), "type": "advice", "advice_id": ADVICE,
        "agent": "agent:forum-helper", "requested_by": "heidi", "channel": "forum/infra-q-4630",
        "published": true,
        "recommends": [{"resource": "k8s/cluster/ClusterRole/internal-tools-viewer",
                        "role": "internal-tools-viewer", "grantee": "eng-all"}],
        "summary": "Bind ClusterRole internal-tools-viewer to eng-all."
    });
    let viewed = serde_json::json!({
        "ts": now.add_millis(-60_000).to_string(), "type": "advice_viewed",
        "advice_id": ADVICE, "principal": "alice"
    });
    append(log, &[advice, viewed])?;
    processed
        .wait_for(|n| *n >= lines_before + 2)
        .await
        .map_err(other)?;

    let addr = std::fs::read_to_string(state_dir.join("gate.addr"))?;
    let url = format!("https://localhost:{}/k8s/validate", port(&addr)?);
    crate::respond::hook::init_tls();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(tls.pem.as_bytes()).map_err(other)?])
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(other)?;
    let refused = review(&client, &url, "demo-7744-1").await?;

    let verified = serde_json::json!({
        "ts": now.add_millis(-30_000).to_string(), "type": "advice_verified",
        "advice_id": ADVICE, "verifier": "sec-lead"
    });
    append(log, &[verified])?;
    processed
        .wait_for(|n| *n >= lines_before + 3)
        .await
        .map_err(other)?;
    let admitted = review(&client, &url, "demo-7744-2").await?;
    Ok(ActThree { refused, admitted })
}

/// The port of an address as the state directory records it.
fn port(addr: &str) -> io::Result<u16> {
    addr.trim()
        .parse::<std::net::SocketAddr>()
        .map(|a| a.port())
        .map_err(other)
}

fn append(log: &Path, events: &[serde_json::Value]) -> io::Result<()> {
    let mut file = std::fs::OpenOptions::new().append(true).open(log)?;
    let mut text = String::new();
    for e in events {
        text.push_str(&e.to_string());
        text.push('\n');
    }
    file.write_all(text.as_bytes())?;
    file.flush()
}

/// alice's ClusterRoleBinding as the API server sends it for admission.
async fn review(client: &reqwest::Client, url: &str, uid: &str) -> io::Result<Answer> {
    let body = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "rbac.authorization.k8s.io", "version": "v1", "kind": "ClusterRoleBinding"},
            "resource": {"group": "rbac.authorization.k8s.io", "version": "v1", "resource": "clusterrolebindings"},
            "name": "eng-all-internal-tools", "operation": "CREATE",
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": {
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "eng-all-internal-tools"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "internal-tools-viewer"},
                "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "eng-all"}]
            },
            "oldObject": null, "dryRun": false
        }
    });
    let sent = Instant::now();
    let resp = client.post(url).json(&body).send().await.map_err(other)?;
    let status = resp.status();
    let answer: serde_json::Value = resp.json().await.map_err(other)?;
    let ms = sent.elapsed().as_secs_f64() * 1000.0;
    if !status.is_success() {
        return Err(other(format!("the admission webhook answered {status}")));
    }
    let r = &answer["response"];
    Ok(Answer {
        allowed: r["allowed"].as_bool().unwrap_or(false),
        message: r["status"]["message"].as_str().map(str::to_owned),
        uid_echoed: r["uid"] == uid,
        ms,
    })
}

impl ActThree {
    pub(super) fn print(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "\nAct three: the gate, before the grant exists")?;
        writeln!(
            out,
            "  agent:forum-helper answers again, unreviewed: \"bind ClusterRole internal-tools-viewer to eng-all\" ({ADVICE});\n  \
             alice reads it and creates the ClusterRoleBinding. The API server asks reachguard's admission webhook (HTTPS)."
        )?;
        let Answer {
            allowed,
            message,
            uid_echoed,
            ms,
        } = &self.refused;
        if *allowed {
            writeln!(out, "  NOT refused: the binding was admitted (a bug).")?;
        } else {
            writeln!(
                out,
                "  Refused in {ms:.1} ms{}; kubectl prints:\n    {}",
                if *uid_echoed {
                    ""
                } else {
                    " (uid not echoed: a bug)"
                },
                printable(message.as_deref().unwrap_or("(no message)"))
            )?;
        }
        if self.admitted.allowed {
            writeln!(
                out,
                "  sec-lead verifies {ADVICE}; the same binding is admitted ({:.1} ms).",
                self.admitted.ms
            )?;
        } else {
            writeln!(
                out,
                "  NOT admitted after sec-lead verified {ADVICE} (a bug)."
            )?;
        }
        Ok(())
    }
}

/// `s` with control characters escaped, safe to print on a terminal.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| match c.is_control() {
            true => c.escape_default().to_string(),
            false => c.to_string(),
        })
        .collect()
}
