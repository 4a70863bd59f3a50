//! Decoders: raw log lines in, normalised [`Event`]s out.
//!
//! The first stage after a source. Each supported `format` has a decoder; all of
//! them produce schema v1 events. A line that cannot be understood is a
//! [`DecodeError`] (counted and logged by the caller, never fatal); a line that is
//! understood but carries nothing reachguard uses produces no event and is counted
//! as skipped.
//!
//! One module per format (`docs/formats.md` documents every mapping):
//!
//! - `native`: event schema v1.
//! - `cloudtrail`: AWS CloudTrail records.
//! - `k8s_audit`: Kubernetes `audit.k8s.io` events.
//! - `okta`: Okta System Log events.
//! - `gcp_audit`: Google Cloud audit log entries.
//! - `github_audit`: GitHub audit log events.
//! - `linux_auth`: syslog `auth.log` / `secure` lines (and auditd records).
//! - `web_access`: NCSA common / combined access logs.
//!
//! Two helpers serve them: `json` (lenient borrowed field types for the JSON
//! formats) and `time` (the timestamp shapes these formats write, and the time
//! given to records that carry none).

mod cloudtrail;
mod gcp_audit;
mod github_audit;
mod json;
mod k8s_audit;
mod linux_auth;
mod native;
mod okta;
mod time;
mod web_access;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::event::Event;

pub use cloudtrail::CloudTrailDecoder;
pub use gcp_audit::GcpAuditDecoder;
pub use github_audit::GithubAuditDecoder;
pub use k8s_audit::K8sAuditDecoder;
pub use linux_auth::LinuxAuthDecoder;
pub use native::NativeDecoder;
pub use okta::OktaDecoder;
pub use web_access::WebAccessDecoder;

/// The input formats a source can declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Format {
    /// Event schema v1, one JSON object per line.
    #[default]
    Native,
    /// AWS CloudTrail records, one per line or `{"Records":[...]}` documents.
    Cloudtrail,
    /// Kubernetes `audit.k8s.io` events, one per line.
    K8sAudit,
    /// Okta System Log events, one per line.
    Okta,
    /// Google Cloud audit log entries (`LogEntry` with an `AuditLog` payload).
    GcpAudit,
    /// GitHub organisation / enterprise audit log events.
    GithubAudit,
    /// syslog `auth.log` / `secure` lines (and auditd records).
    LinuxAuth,
    /// NCSA common / combined access logs, with or without a vhost prefix.
    WebAccess,
}

impl Format {
    /// Every format, in documentation order.
    pub const ALL: [Format; 8] = [
        Format::Native,
        Format::Cloudtrail,
        Format::K8sAudit,
        Format::Okta,
        Format::GcpAudit,
        Format::GithubAudit,
        Format::LinuxAuth,
        Format::WebAccess,
    ];

    /// The config / CLI name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Native => "native",
            Format::Cloudtrail => "cloudtrail",
            Format::K8sAudit => "k8s-audit",
            Format::Okta => "okta",
            Format::GcpAudit => "gcp-audit",
            Format::GithubAudit => "github-audit",
            Format::LinuxAuth => "linux-auth",
            Format::WebAccess => "web-access",
        }
    }

    /// A fresh decoder for this format.
    pub fn decoder(self) -> Box<dyn Decoder> {
        match self {
            Format::Native => Box::new(NativeDecoder),
            Format::Cloudtrail => Box::new(CloudTrailDecoder::default()),
            Format::K8sAudit => Box::new(K8sAuditDecoder::default()),
            Format::Okta => Box::new(OktaDecoder::default()),
            Format::GcpAudit => Box::new(GcpAuditDecoder::default()),
            Format::GithubAudit => Box::new(GithubAuditDecoder::default()),
            Format::LinuxAuth => Box::new(LinuxAuthDecoder::default()),
            Format::WebAccess => Box::new(WebAccessDecoder),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Format::ALL.iter().map(|f| f.as_str()).collect();
                format!("unknown format {s:?} (supported: {})", names.join(", "))
            })
    }
}

/// Turns one line into zero or more events.
pub trait Decoder: Send {
    /// Decodes `line` (without its newline), appending events to `out`.
    ///
    /// Appending nothing and returning `Ok` means the line was understood but is of
    /// no use (it is counted as skipped).
    fn decode(&mut self, line: &[u8], out: &mut Vec<Event>) -> Result<(), DecodeError>;
}

/// Why a line could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The line is not valid UTF-8.
    InvalidUtf8,
    /// The line is not the JSON the format expects.
    Json(String),
    /// A required field is absent.
    MissingField {
        /// The event type being decoded.
        event_type: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// `type` names no known event type.
    UnknownType(String),
    /// `ts` is not an RFC 3339 timestamp.
    InvalidTimestamp(String),
    /// A field holds a value outside its domain.
    InvalidValue {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The line is longer than the source's limit and was cut.
    Oversized,
    /// The line is well-formed text or JSON but not a record of the source's format.
    Unrecognized {
        /// The format the source declares.
        format: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::InvalidUtf8 => f.write_str("line is not valid UTF-8"),
            DecodeError::Json(e) => write!(f, "invalid JSON: {e}"),
            DecodeError::MissingField { event_type, field } => {
                write!(f, "{event_type} event without required field `{field}`")
            }
            DecodeError::UnknownType(t) => write!(f, "unknown event type {t:?}"),
            DecodeError::InvalidTimestamp(t) => write!(f, "`ts` is not RFC 3339: {t:?}"),
            DecodeError::InvalidValue { field, reason } => write!(f, "`{field}`: {reason}"),
            DecodeError::Oversized => f.write_str("line exceeds the maximum line length"),
            DecodeError::Unrecognized { format, reason } => {
                write!(f, "not a {format} record: {reason}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip_through_cli_and_config_spellings() {
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>(), Ok(f));
            // The config deserialises the same kebab-case names.
            let toml_value: Format =
                serde_json::from_value(serde_json::Value::String(f.as_str().into())).unwrap();
            assert_eq!(toml_value, f);
            assert_eq!(
                serde_json::to_value(f).unwrap(),
                serde_json::Value::String(f.as_str().into())
            );
        }
        let names: Vec<&str> = Format::ALL.iter().map(|f| f.as_str()).collect();
        assert_eq!(
            names,
            [
                "native",
                "cloudtrail",
                "k8s-audit",
                "okta",
                "gcp-audit",
                "github-audit",
                "linux-auth",
                "web-access"
            ]
        );
        let err = "syslog".parse::<Format>().unwrap_err();
        assert!(err.contains("web-access"), "{err}");
    }
}
