//! Revocation hooks: how reachguard asks the organisation's systems to take a
//! grant back.
//!
//! - `webhook`: `POST` the JSON payload to a URL with
//!   `X-Reachguard-Signature: sha256=<hex HMAC-SHA256 of the body>` and
//!   `Idempotency-Key`; any 2xx is success.
//! - `exec`: run a command (no shell) with the payload on stdin; exit status 0 is
//!   success. The idempotency key is also in `REACHGUARD_IDEMPOTENCY_KEY`.
//!
//! Each attempt has a timeout (`timeout`, enforced around the whole attempt);
//! failed attempts are retried with exponential backoff and jitter up to
//! `max_attempts` ([`retry`]). Every attempt is counted in
//! `reachguard_hook_attempts_total{hook_type,result}` when a counter is attached.
//! Webhooks never follow redirects (a signed revocation goes to the configured
//! URL or nowhere), and logs name a webhook without its query string or
//! credentials.

use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use prometheus::IntCounterVec;
use serde::{Deserialize, Deserializer};
use sha2::Sha256;
use tokio::io::AsyncWriteExt;

use crate::format::Format;

/// One configured hook, as written in `[[response.hooks]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum HookSpec {
    /// An HTTP endpoint.
    Webhook {
        /// Where to POST (http or https).
        url: String,
        /// Environment variable holding the HMAC key.
        secret_env: Option<String>,
        /// File holding the HMAC key (extension; trailing newline ignored).
        secret_file: Option<PathBuf>,
        /// Per-attempt timeout (extension, default 5s).
        #[serde(default = "default_timeout", deserialize_with = "duration")]
        timeout: Duration,
        /// Attempts before giving up (extension, default 5).
        #[serde(default = "default_attempts")]
        max_attempts: u32,
        /// The input formats whose grants it handles (default: all).
        #[serde(default)]
        formats: Option<Vec<Format>>,
    },
    /// A local command.
    Exec {
        /// Program and arguments; run directly, never through a shell.
        command: Vec<String>,
        /// Per-attempt timeout (extension, default 30s).
        #[serde(default = "default_exec_timeout", deserialize_with = "duration")]
        timeout: Duration,
        /// Attempts before giving up (extension, default 5).
        #[serde(default = "default_attempts")]
        max_attempts: u32,
        /// The input formats whose grants it handles (default: all).
        #[serde(default)]
        formats: Option<Vec<Format>>,
    },
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_exec_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_attempts() -> u32 {
    5
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
}

impl HookSpec {
    /// The per-attempt timeout.
    pub fn timeout(&self) -> Duration {
        match self {
            HookSpec::Webhook { timeout, .. } | HookSpec::Exec { timeout, .. } => *timeout,
        }
    }

    /// The formats it handles; `None` is all of them.
    pub fn formats(&self) -> Option<&[Format]> {
        match self {
            HookSpec::Webhook { formats, .. } | HookSpec::Exec { formats, .. } => {
                formats.as_deref()
            }
        }
    }

    /// Whether it handles grants read in `format`.
    pub fn handles(&self, format: Format) -> bool {
        self.formats().is_none_or(|f| f.contains(&format))
    }

    /// Checks what serde cannot: returns the offending key and the problem.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.formats().is_some_and(<[Format]>::is_empty) {
            return Err((
                "formats",
                "an empty list would route nothing to this hook; leave the key out to handle every format".into(),
            ));
        }
        match self {
            HookSpec::Webhook { .. } if self.timeout().is_zero() => {
                Err(("timeout", "must be more than zero".into()))
            }
            HookSpec::Webhook {
                url,
                secret_env,
                secret_file,
                max_attempts,
                ..
            } => {
                let parsed = reqwest::Url::parse(url)
                    .map_err(|e| ("url", format!("{url:?} is not a URL: {e}")))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(("url", format!("{url:?}: only http and https are supported")));
                }
                if secret_env.is_none() && secret_file.is_none() {
                    return Err((
                        "type",
                        "a webhook needs `secret_env` (or `secret_file`) so its calls can be signed".into(),
                    ));
                }
                if *max_attempts == 0 {
                    return Err(("max_attempts", "must be at least 1".into()));
                }
                Ok(())
            }
            HookSpec::Exec { .. } if self.timeout().is_zero() => {
                Err(("timeout", "must be more than zero".into()))
            }
            HookSpec::Exec {
                command,
                max_attempts,
                ..
            } => {
                if command.is_empty() || command[0].is_empty() {
                    return Err(("command", "needs at least the program to run".into()));
                }
                if *max_attempts == 0 {
                    return Err(("max_attempts", "must be at least 1".into()));
                }
                Ok(())
            }
        }
    }

    /// A problem with the secret that only shows at run time, if any.
    pub fn secret_problem(&self) -> Option<String> {
        match self {
            HookSpec::Webhook { url, .. } => self
                .load_secret()
                .err()
                .map(|e| format!("webhook {url}: {e}")),
            HookSpec::Exec { .. } => None,
        }
    }

    fn load_secret(&self) -> Result<Option<Vec<u8>>, String> {
        let HookSpec::Webhook {
            secret_env,
            secret_file,
            ..
        } = self
        else {
            return Ok(None);
        };
        if let Some(var) = secret_env {
            return match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Some(v.into_bytes())),
                _ => Err(format!(
                    "environment variable {var} (secret_env) is not set"
                )),
            };
        }
        if let Some(path) = secret_file {
            let raw = std::fs::read(path)
                .map_err(|e| format!("cannot read secret_file {}: {e}", path.display()))?;
            let trimmed = raw.strip_suffix(b"\n").unwrap_or(&raw).to_vec();
            if trimmed.is_empty() {
                return Err(format!("secret_file {} is empty", path.display()));
            }
            return Ok(Some(trimmed));
        }
        Ok(None)
    }
}

/// Why a hook call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The endpoint answered with a non-2xx status.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The call did not complete in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The request could not be sent.
    #[error("request failed: {0}")]
    Transport(String),
    /// The command exited non-zero (or by a signal).
    #[error("command exited with {0}")]
    Exit(String),
    /// The command could not be started.
    #[error("cannot run command: {0}")]
    Spawn(String),
}

/// A hook ready to call.
#[derive(Clone)]
pub struct Hook {
    spec: HookSpec,
    secret: Option<Vec<u8>>,
    client: reqwest::Client,
    attempts: Option<IntCounterVec>,
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hook")
            .field("spec", &self.spec)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// The HMAC-SHA256 signature header value for `body`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a signature header against `body` in constant time.
pub fn verify_signature(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// Installs the TLS crypto provider reqwest needs; safe to call more than once.
pub fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Hook {
    /// Resolves the secret and builds the HTTP client.
    pub fn new(spec: HookSpec) -> Result<Hook, String> {
        init_tls();
        let secret = spec.load_secret()?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(Hook {
            spec,
            secret,
            client,
            attempts: None,
        })
    }

    /// Counts every attempt in `counter` (labels `hook_type`, `result`).
    pub fn with_attempts_metric(mut self, counter: IntCounterVec) -> Hook {
        self.attempts = Some(counter);
        self
    }

    /// A short description for logs. Never includes the secret, nor a URL's
    /// credentials or query string (where tokens tend to hide).
    pub fn describe(&self) -> String {
        match &self.spec {
            HookSpec::Webhook { url, .. } => match reqwest::Url::parse(url) {
                Ok(mut u) => {
                    let _ = u.set_username("");
                    let _ = u.set_password(None);
                    u.set_query(None);
                    u.set_fragment(None);
                    format!("webhook {u}")
                }
                Err(_) => "webhook (unparsable URL)".to_owned(),
            },
            HookSpec::Exec { command, .. } => format!("exec {}", command[0]),
        }
    }

    /// Whether it handles grants read in `format` (`formats` in its config).
    pub fn handles(&self, format: Format) -> bool {
        self.spec.handles(format)
    }

    /// `webhook` or `exec`: the `hook_type` metric label.
    pub fn hook_type(&self) -> &'static str {
        match &self.spec {
            HookSpec::Webhook { .. } => "webhook",
            HookSpec::Exec { .. } => "exec",
        }
    }

    fn max_attempts(&self) -> u32 {
        match &self.spec {
            HookSpec::Webhook { max_attempts, .. } | HookSpec::Exec { max_attempts, .. } => {
                *max_attempts
            }
        }
    }

    fn timeout(&self) -> Duration {
        self.spec.timeout()
    }

    /// One attempt, without its timeout (see [`Hook::call`]).
    pub async fn call_once(&self, body: &[u8], idempotency_key: &str) -> Result<(), HookError> {
        match &self.spec {
            HookSpec::Webhook { url, .. } => {
                let mut req = self
                    .client
                    .post(url)
                    .header("Content-Type", "application/json")
                    .header("Idempotency-Key", idempotency_key)
                    .body(body.to_vec());
                if let Some(secret) = &self.secret {
                    req = req.header("X-Reachguard-Signature", signature(secret, body));
                }
                // `without_url`: the URL may carry a token; errors end up in logs.
                let resp = req
                    .send()
                    .await
                    .map_err(|e| HookError::Transport(e.without_url().to_string()))?;
                if resp.status().is_success() {
                    Ok(())
                } else {
                    Err(HookError::Status(resp.status().as_u16()))
                }
            }
            HookSpec::Exec { command, .. } => {
                let mut child = tokio::process::Command::new(&command[0])
                    .args(&command[1..])
                    .env("REACHGUARD_IDEMPOTENCY_KEY", idempotency_key)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|e| HookError::Spawn(format!("{}: {e}", command[0])))?;
                let mut stdin = child.stdin.take().expect("stdin is piped");
                // A command that does not read its stdin is not an error.
                let _ = stdin.write_all(body).await;
                drop(stdin);
                // If the attempt times out this future is dropped, and
                // `kill_on_drop` ends the command.
                match child.wait().await {
                    Err(e) => Err(HookError::Spawn(e.to_string())),
                    Ok(st) if st.success() => Ok(()),
                    Ok(st) => Err(HookError::Exit(st.to_string())),
                }
            }
        }
    }

    /// Calls the hook, each attempt bounded by its timeout, retrying with
    /// exponential backoff and jitter. Returns the number of attempts made and
    /// the last error if every attempt failed.
    pub async fn call(&self, body: &[u8], idempotency_key: &str) -> (u32, Result<(), HookError>) {
        let describe = self.describe();
        retry(
            self.max_attempts(),
            self.timeout(),
            |_| self.call_once(body, idempotency_key),
            |attempt, res, retry_in| {
                if let Some(c) = &self.attempts {
                    let result = match res {
                        Ok(()) => "success",
                        Err(HookError::Timeout(_)) => "timeout",
                        Err(_) => "failure",
                    };
                    c.with_label_values(&[self.hook_type(), result]).inc();
                }
                if let (Err(e), Some(wait)) = (res, retry_in) {
                    tracing::warn!(hook = %describe, key = idempotency_key, attempt, error = %e, retry_in = ?wait, "hook attempt failed; retrying");
                }
            },
        )
        .await
    }
}

/// The retry loop of every hook: up to `max_attempts` calls of `attempt`
/// (given the 1-based attempt number), each cut off after `timeout`, with
/// [`backoff`] between them. `observe` sees each attempt's result and the wait
/// before the next one (`None` after the last). Returns the attempts made and
/// the last result.
pub async fn retry<F, Fut>(
    max_attempts: u32,
    timeout: Duration,
    mut attempt: F,
    mut observe: impl FnMut(u32, &Result<(), HookError>, Option<Duration>),
) -> (u32, Result<(), HookError>)
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<(), HookError>>,
{
    let max = max_attempts.max(1);
    let mut n = 0;
    loop {
        n += 1;
        let res = match tokio::time::timeout(timeout, attempt(n)).await {
            Ok(r) => r,
            Err(_) => Err(HookError::Timeout(timeout)),
        };
        if res.is_ok() || n >= max {
            observe(n, &res, None);
            return (n, res);
        }
        let wait = backoff(n);
        observe(n, &res, Some(wait));
        tokio::time::sleep(wait).await;
    }
}

/// Backoff before attempt `n + 1`: 100 ms doubling per attempt, capped at 10 s,
/// with up to +/-25 % jitter so retries from many revocations do not align.
pub fn backoff(attempt: u32) -> Duration {
    let base = 100u64
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(16))
        .min(10_000);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0) as u64;
    let jitter = (nanos % (base / 2 + 1)) as i64 - (base / 4) as i64;
    Duration::from_millis((base as i64 + jitter).max(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex_and_verifies() {
        // RFC 4231 test case 2.
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify_signature(
            b"Jefe",
            b"what do ya want for nothing?",
            &sig
        ));
        assert!(!verify_signature(
            b"Jefe",
            b"what do ya want for nothing!",
            &sig
        ));
        assert!(!verify_signature(
            b"other",
            b"what do ya want for nothing?",
            &sig
        ));
        assert!(!verify_signature(b"Jefe", b"x", "md5=00"));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..=20 {
            let b = backoff(attempt).as_millis() as u64;
            let base = (100u64 << (attempt - 1).min(16)).min(10_000);
            assert!(
                b >= base * 3 / 4 && b <= base * 5 / 4 + 1,
                "attempt {attempt}: {b}ms vs {base}ms"
            );
        }
    }

    /// Attempt start times relative to the first, in paused (virtual) time.
    async fn attempt_times(
        max: u32,
        timeout: Duration,
        outcome: impl Fn(u32) -> Option<Result<(), HookError>>,
    ) -> (
        u32,
        Result<(), HookError>,
        Vec<Duration>,
        Vec<Option<Duration>>,
    ) {
        let start = tokio::time::Instant::now();
        let mut starts = Vec::new();
        let mut waits = Vec::new();
        let (n, res) = retry(
            max,
            timeout,
            |n| {
                starts.push(start.elapsed());
                let o = outcome(n);
                async move {
                    match o {
                        Some(r) => r,
                        // Never answers: only the timeout ends it.
                        None => std::future::pending().await,
                    }
                }
            },
            |_, _, wait| waits.push(wait),
        )
        .await;
        (n, res, starts, waits)
    }

    #[tokio::test(start_paused = true)]
    async fn retries_back_off_exponentially_and_a_hanging_attempt_is_cut_off_by_its_timeout() {
        let timeout = Duration::from_secs(2);
        let (n, res, starts, waits) = attempt_times(5, timeout, |n| match n {
            1 => None,
            2 | 3 => Some(Err(HookError::Status(500))),
            _ => Some(Ok(())),
        })
        .await;
        assert_eq!(n, 4);
        assert!(res.is_ok());
        assert_eq!(starts[0], Duration::ZERO);
        // Attempt 1 hung: it ends exactly at its timeout, then the first backoff.
        let w: Vec<Duration> = waits.iter().map(|w| w.unwrap_or_default()).collect();
        assert_eq!(starts[1], timeout + w[0]);
        assert_eq!(starts[2], starts[1] + w[1]);
        assert_eq!(starts[3], starts[2] + w[2]);
        assert_eq!(waits[3], None, "no wait after the success");
        for (i, base_ms) in [100u64, 200, 400].into_iter().enumerate() {
            let ms = w[i].as_millis() as u64;
            assert!(
                (base_ms * 3 / 4..=base_ms * 5 / 4 + 1).contains(&ms),
                "wait {i} is {ms} ms, base {base_ms} ms"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_at_max_attempts_with_the_last_error() {
        let (n, res, starts, waits) = attempt_times(3, Duration::from_secs(1), |_| {
            Some(Err(HookError::Status(503)))
        })
        .await;
        assert_eq!(n, 3);
        assert!(matches!(res, Err(HookError::Status(503))));
        assert_eq!(starts.len(), 3);
        assert_eq!(waits.len(), 3);
        assert_eq!(waits[2], None);
        let (n, res, _, _) = attempt_times(2, Duration::from_millis(300), |_| None).await;
        assert_eq!(n, 2);
        assert!(matches!(res, Err(HookError::Timeout(t)) if t == Duration::from_millis(300)));
    }

    #[test]
    fn webhook_descriptions_and_debug_output_hide_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "s3cret\n").unwrap();
        let h = Hook::new(HookSpec::Webhook {
            url: "https://user:pw@iam.example/revoke?token=abc#x".into(),
            secret_env: None,
            secret_file: Some(key),
            timeout: Duration::from_secs(1),
            max_attempts: 1,
            formats: None,
        })
        .unwrap();
        assert_eq!(h.describe(), "webhook https://iam.example/revoke");
        assert_eq!(h.hook_type(), "webhook");
        let debug = format!("{h:?}");
        assert!(debug.contains("secret: Some(\"<redacted>\")"), "{debug}");
        let bytes = format!("{:?}", b"s3cret".to_vec());
        assert!(!debug.contains(&bytes[1..bytes.len() - 1]), "{debug}");
    }

    #[test]
    fn a_zero_timeout_is_rejected() {
        let spec = HookSpec::Exec {
            command: vec!["true".into()],
            timeout: Duration::ZERO,
            max_attempts: 1,
            formats: None,
        };
        assert_eq!(spec.validate().unwrap_err().0, "timeout");
    }

    #[tokio::test]
    async fn exec_hook_gets_the_payload_on_stdin_without_a_shell() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("got");
        // `sh -c` here is the test's own program; the hook itself runs it as argv,
        // so the `;` inside the argument below is never interpreted by a shell.
        let spec = HookSpec::Exec {
            command: vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "cat > {}; echo \"$REACHGUARD_IDEMPOTENCY_KEY\" >> {}",
                    out.display(),
                    out.display()
                ),
            ],
            timeout: Duration::from_secs(10),
            max_attempts: 1,
            formats: None,
        };
        let hook = Hook::new(spec).unwrap();
        let (attempts, res) = hook.call(br#"{"action":"revoke"}"#, "key-1").await;
        assert!(res.is_ok());
        assert_eq!(attempts, 1);
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "{\"action\":\"revoke\"}key-1\n"
        );
    }

    #[tokio::test]
    async fn exec_hook_failure_and_timeout_are_reported() {
        let fail = Hook::new(HookSpec::Exec {
            command: vec!["false".into()],
            timeout: Duration::from_secs(10),
            max_attempts: 2,
            formats: None,
        })
        .unwrap();
        let (attempts, res) = fail.call(b"{}", "k").await;
        assert_eq!(attempts, 2);
        assert!(matches!(res, Err(HookError::Exit(_))));
        let slow = Hook::new(HookSpec::Exec {
            command: vec!["sleep".into(), "30".into()],
            timeout: Duration::from_millis(200),
            max_attempts: 1,
            formats: None,
        })
        .unwrap();
        assert!(matches!(
            slow.call(b"{}", "k").await.1,
            Err(HookError::Timeout(_))
        ));
        let missing = Hook::new(HookSpec::Exec {
            command: vec!["/nonexistent/revoke".into()],
            timeout: Duration::from_secs(1),
            max_attempts: 1,
            formats: None,
        })
        .unwrap();
        assert!(matches!(
            missing.call(b"{}", "k").await.1,
            Err(HookError::Spawn(_))
        ));
    }
}
