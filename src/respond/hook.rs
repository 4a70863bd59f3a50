//! Revocation hooks: how reachguard asks the organisation's systems to take a
//! grant back.
//!
//! - `webhook`: `POST` the JSON payload to a URL with
//!   `X-Reachguard-Signature: sha256=<hex HMAC-SHA256 of the body>` and
//!   `Idempotency-Key`; any 2xx is success.
//! - `exec`: run a command (no shell) with the payload on stdin; exit status 0 is
//!   success. The idempotency key is also in `REACHGUARD_IDEMPOTENCY_KEY`.
//!
//! Each call has a timeout; failed calls are retried with exponential backoff and
//! jitter up to `max_attempts`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Deserializer};
use sha2::Sha256;
use tokio::io::AsyncWriteExt;

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
    /// Checks what serde cannot: returns the offending key and the problem.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        match self {
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
#[derive(Debug, Clone)]
pub struct Hook {
    spec: HookSpec,
    secret: Option<Vec<u8>>,
    client: reqwest::Client,
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
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(Hook {
            spec,
            secret,
            client,
        })
    }

    /// A short description for logs (never includes the secret).
    pub fn describe(&self) -> String {
        match &self.spec {
            HookSpec::Webhook { url, .. } => format!("webhook {url}"),
            HookSpec::Exec { command, .. } => format!("exec {}", command[0]),
        }
    }

    fn max_attempts(&self) -> u32 {
        match &self.spec {
            HookSpec::Webhook { max_attempts, .. } | HookSpec::Exec { max_attempts, .. } => {
                *max_attempts
            }
        }
    }

    /// One attempt.
    pub async fn call_once(&self, body: &[u8], idempotency_key: &str) -> Result<(), HookError> {
        match &self.spec {
            HookSpec::Webhook { url, timeout, .. } => {
                let mut req = self
                    .client
                    .post(url)
                    .timeout(*timeout)
                    .header("Content-Type", "application/json")
                    .header("Idempotency-Key", idempotency_key)
                    .body(body.to_vec());
                if let Some(secret) = &self.secret {
                    req = req.header("X-Reachguard-Signature", signature(secret, body));
                }
                let resp = req.send().await.map_err(|e| {
                    if e.is_timeout() {
                        HookError::Timeout(*timeout)
                    } else {
                        HookError::Transport(e.to_string())
                    }
                })?;
                if resp.status().is_success() {
                    Ok(())
                } else {
                    Err(HookError::Status(resp.status().as_u16()))
                }
            }
            HookSpec::Exec {
                command, timeout, ..
            } => {
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
                let run = async {
                    // A command that does not read its stdin is not an error.
                    let _ = stdin.write_all(body).await;
                    drop(stdin);
                    child.wait().await
                };
                match tokio::time::timeout(*timeout, run).await {
                    Err(_) => Err(HookError::Timeout(*timeout)),
                    Ok(Err(e)) => Err(HookError::Spawn(e.to_string())),
                    Ok(Ok(st)) if st.success() => Ok(()),
                    Ok(Ok(st)) => Err(HookError::Exit(st.to_string())),
                }
            }
        }
    }

    /// Calls the hook, retrying with exponential backoff and jitter. Returns the
    /// number of attempts made and the last error if every attempt failed.
    pub async fn call(&self, body: &[u8], idempotency_key: &str) -> (u32, Result<(), HookError>) {
        let max = self.max_attempts();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.call_once(body, idempotency_key).await {
                Ok(()) => return (attempt, Ok(())),
                Err(e) if attempt >= max => return (attempt, Err(e)),
                Err(e) => {
                    let wait = backoff(attempt);
                    tracing::warn!(hook = %self.describe(), key = idempotency_key, attempt, error = %e, retry_in = ?wait, "revocation hook failed; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
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
        })
        .unwrap();
        let (attempts, res) = fail.call(b"{}", "k").await;
        assert_eq!(attempts, 2);
        assert!(matches!(res, Err(HookError::Exit(_))));
        let slow = Hook::new(HookSpec::Exec {
            command: vec!["sleep".into(), "30".into()],
            timeout: Duration::from_millis(200),
            max_attempts: 1,
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
        })
        .unwrap();
        assert!(matches!(
            missing.call(b"{}", "k").await.1,
            Err(HookError::Spawn(_))
        ));
    }
}
