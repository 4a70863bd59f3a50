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
//! - `otlp`: agent telemetry (OpenTelemetry logs and traces) as advice.
//!
//! Two helpers serve them: `json` (lenient borrowed field types for the JSON
//! formats) and `time` (the timestamp shapes these formats write, and the time
//! given to records that carry none).

mod cloudtrail;
mod gcp_audit;
mod github_audit;
mod json;
pub(crate) mod k8s_audit;
mod linux_auth;
mod native;
mod okta;
pub mod otlp;
mod time;
mod web_access;

use std::fmt;

use crate::event::{Event, Events};

pub use crate::format::Format;

pub use cloudtrail::CloudTrailDecoder;
pub use gcp_audit::GcpAuditDecoder;
pub use github_audit::GithubAuditDecoder;
pub use k8s_audit::K8sAuditDecoder;
pub use linux_auth::LinuxAuthDecoder;
pub use native::NativeDecoder;
pub use okta::OktaDecoder;
pub use otlp::OtlpDecoder;
pub use web_access::WebAccessDecoder;

/// Where each format's lines are decoded. ([`Format`] itself, the name a
/// source declares, is in [`crate::format`], which nothing imports back: the
/// names are needed by modules the decoders use, such as [`crate::undo`].)
impl Format {
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
            Format::Otlp => Box::new(OtlpDecoder::default()),
        }
    }
}

/// Turns one line into zero or more events.
pub trait Decoder: Send {
    /// Decodes `line` (without its newline), appending its events to `out`,
    /// the run every consumer reads ([`Events`]: accesses are kept there
    /// without allocating). On an error `out` is left as it was.
    ///
    /// Appending nothing and returning `Ok` means the line was understood but is of
    /// no use (it is counted as skipped).
    fn decode(&mut self, line: &[u8], out: &mut Events) -> Result<(), DecodeError>;

    /// Whether every line decodes on its own, with nothing carried over from
    /// earlier lines (no clock, no pending state). Blocks of such a format's
    /// lines can be decoded on several threads at once.
    fn independent_lines(&self) -> bool {
        false
    }

    /// The events of one line as owned events: for tests and for the rare
    /// caller that keeps events (it goes through [`Decoder::decode`]).
    fn decode_owned(&mut self, line: &[u8]) -> Result<Vec<Event>, DecodeError> {
        let mut run = Events::default();
        self.decode(line, &mut run)?;
        Ok(run.to_vec())
    }

    /// The records of the lines decoded since the last call that were read
    /// but not used because they are malformed (an OTLP request's log
    /// records or spans, say): the line itself decoded.
    fn take_rejected(&mut self) -> Rejected {
        Rejected::default()
    }
}

/// Records of a decoded line that were rejected ([`Decoder::take_rejected`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejected {
    /// Log records.
    pub log_records: u64,
    /// Spans.
    pub spans: u64,
    /// Why the first of them was rejected.
    pub message: Option<String>,
}

impl Rejected {
    /// Whether nothing was rejected.
    pub fn is_empty(&self) -> bool {
        self.log_records == 0 && self.spans == 0
    }
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

    /// Lines of every format, cut at every byte and with bytes replaced: no
    /// decoder may panic, whatever it makes of them.
    #[test]
    fn no_decoder_panics_on_cut_or_corrupted_lines() {
        let samples: &[(Format, &str)] = &[
            (
                Format::Native,
                r#"{"ts":"2026-03-18T09:07:02Z","type":"grant","grant_id":"g","actor":"a","grantee":"b","resource":"r"}"#,
            ),
            (
                Format::Cloudtrail,
                r#"{"Records":[{"eventTime":"2024-08-01T13:29:57Z","eventSource":"iam.amazonaws.com","eventName":"UpdateAssumeRolePolicy","userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/r/s"},"requestParameters":{"roleName":"x","policyDocument":"%7B%22Statement%22%3A%5B%5D%7D"},"eventID":"e"}]}"#,
            ),
            (
                Format::Cloudtrail,
                r#"{"eventTime":"2024-08-01T13:29:57Z","eventSource":"s3.amazonaws.com","eventName":"PutBucketAcl","userIdentity":{"type":"IAMUser","userName":"a"},"requestParameters":{"bucketName":"b","AccessControlPolicy":{"AccessControlList":{"Grant":{"Grantee":{"URI":"http://acs.amazonaws.com/groups/global/AllUsers"},"Permission":"READ"}}}}}"#,
            ),
            (
                Format::K8sAudit,
                r#"{"kind":"Event","auditID":"a","stage":"ResponseComplete","verb":"patch","user":{"username":"u"},"objectRef":{"resource":"rolebindings","namespace":"n"},"responseStatus":{"code":200},"responseObject":{"roleRef":{"kind":"Role","name":"r"},"subjects":[{"kind":"ServiceAccount","name":"s"}]},"stageTimestamp":"2026-03-18T09:08:00Z"}"#,
            ),
            (
                Format::Okta,
                r#"{"uuid":"u","published":"2021-06-26T21:27:03.490Z","eventType":"user.account.privilege.grant","actor":{"type":"User","alternateId":"a@b"},"outcome":{"result":"SUCCESS"},"target":[{"type":"User","alternateId":"c@d"}],"debugContext":{"debugData":{"privilegeGranted":"Org admin, App admin"}}}"#,
            ),
            (
                Format::GcpAudit,
                r#"{"insertId":"i","timestamp":"2024-02-02T09:44:26Z","protoPayload":{"authenticationInfo":{"principalEmail":"a@b"},"methodName":"SetIamPolicy","serviceName":"cloudresourcemanager.googleapis.com","resourceName":"projects/p","serviceData":{"policyDelta":{"bindingDeltas":[{"action":"ADD","role":"roles/owner","member":"group:g@b"}]}}}}"#,
            ),
            (
                Format::GithubAudit,
                r#"{"_document_id":"d","actor":"a","action":"team.add_repository","created_at":1621305118553,"data":{"team":"o/t"},"org":"o","repo":"o/r"}"#,
            ),
            (
                Format::LinuxAuth,
                "Mar 18 09:07:02 web-1 sudo:    alice : TTY=pts/0 ; PWD=/h ; USER=root ; COMMAND=/usr/sbin/usermod -aG sudo,adm bob",
            ),
            (
                Format::LinuxAuth,
                "node=h type=USER_CMD msg=audit(1783414573.687:424): auid=1000 msg='cwd=\"/\" cmd=7573657264656C exe=\"/usr/bin/sudo\" res=success'AUID=\"alice\"",
            ),
            (
                Format::WebAccess,
                r#"v.example:443 "10.0.0.1, 10.0.0.2" 10.0.0.3 - bob [16/Nov/2019:09:46:42 +0200] "GET http://h/a/b?c HTTP/1.1" 401 1 "-" "ua""#,
            ),
            (
                Format::WebAccess,
                r#"2021/09/30 09:23:53 [error] 1#1: *1 user "foo": password mismatch, client: 1.2.3.4, server: s, request: "GET /x HTTP/1.1", host: "h""#,
            ),
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (format, line) in samples {
            let mut d = format.decoder();
            let mut out = Events::default();
            let bytes = line.as_bytes();
            for cut in 0..=bytes.len() {
                let _ = d.decode(&bytes[..cut], &mut out);
                let _ = d.decode(&bytes[cut..], &mut out);
            }
            for _ in 0..2000 {
                let mut b = bytes.to_vec();
                for _ in 0..1 + next() % 4 {
                    let i = (next() % b.len() as u64) as usize;
                    b[i] = match next() % 4 {
                        0 => b'"',
                        1 => b' ',
                        2 => next() as u8,
                        _ => b"{}[]:,/'\\"[(next() % 9) as usize],
                    };
                }
                out.clear();
                let _ = d.decode(&b, &mut out);
            }
        }
    }
}
