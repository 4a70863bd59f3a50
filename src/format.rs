//! The log formats a source can declare, by name (`format = "cloudtrail"` in
//! the config, `--format` on the command line).
//!
//! A leaf: the name of a format is needed where lines are decoded
//! ([`crate::decode`], which makes each format's decoder), where a revocation
//! is routed to the hooks of the format that reported the grant
//! ([`crate::respond`], [`crate::undo`]) and in the config, and none of those
//! may depend on the others through it.

use std::fmt;

use serde::{Deserialize, Serialize};

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
    /// OTLP/JSON agent telemetry, one export request per line.
    Otlp,
}

impl Format {
    /// Every format, in documentation order.
    pub const ALL: [Format; 9] = [
        Format::Native,
        Format::Cloudtrail,
        Format::K8sAudit,
        Format::Okta,
        Format::GcpAudit,
        Format::GithubAudit,
        Format::LinuxAuth,
        Format::WebAccess,
        Format::Otlp,
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
            Format::Otlp => "otlp",
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
                "web-access",
                "otlp"
            ]
        );
        let err = "syslog".parse::<Format>().unwrap_err();
        assert!(err.contains("web-access"), "{err}");
    }
}
