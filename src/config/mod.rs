//! Configuration: the TOML file, its embedded defaults, and validation.
//!
//! Two layers. [`RawConfig`] mirrors the file exactly (`deny_unknown_fields`, every
//! key documented); deserialising it already checks types, enums, globs, durations
//! and addresses, so every error carries the line and column of the offending key.
//! [`Config`] is what the rest of the program uses, built once from the raw layer.
//! With no file, every key takes its default (`Config::default()`).
//!
//! The keys DESIGN.md lists are a contract; the others (marked "extension" below)
//! are reachguard's own and documented in the README.
//!
//! The settings a stage runs on are types of that stage ([`ResponseConfig`],
//! [`EngineConfig`], [`crate::detect::Limits`], ...), built here from the one
//! validated config: the stages never import this module, the entry points
//! (`daemon`, `cluster`, the commands) do. `[cluster]` is the exception: the
//! cluster is an entry point, so its settings live here ([`cluster`]).

pub mod cluster;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer};

use crate::detect::EngineConfig;
use crate::format::Format;
use crate::model::{Identities, Pattern, Sensitivity, Tier};
use crate::respond::{HookSpec, Mode, ResponseConfig, RevokeScope};

/// The config file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// `[state]`: where durable state lives.
    pub state: RawState,
    /// `[[sources]]`: the logs to follow.
    pub sources: Vec<RawSource>,
    /// `[server]`: the HTTP endpoint.
    pub server: RawServer,
    /// `[agents]`: which principals are AI agents.
    pub agents: RawAgents,
    /// `[sensitivity]`: glob -> tier, first match wins.
    pub sensitivity: IndexMap<Pattern, Tier>,
    /// `[provenance]` (extension): how grants are traced to advice.
    pub provenance: RawProvenance,
    /// `[response]`: what to do about findings.
    pub response: RawResponse,
    /// `[log]` (extension): the daemon's own logs.
    pub log: RawLog,
    /// `[detection]` (extension): expansion hyper-parameters; any key of
    /// `models/detection.toml` may be overridden.
    pub detection: Option<toml::Table>,
    /// `[cluster]` (extension): run as one instance of a NATS JetStream cluster
    /// (see `docs/cluster.md`); absent, `run` is the single-node daemon.
    pub cluster: Option<cluster::RawCluster>,
    /// `[limits]` (extension): memory caps.
    pub limits: crate::detect::Limits,
    /// `[identities]`: the names one person goes by in different sources.
    pub identities: RawIdentities,
    /// `[otlp]`: agent telemetry, as a file format and as a receiver.
    pub otlp: RawOtlp,
    /// `[gate]`: the Kubernetes admission webhook (`POST /k8s/validate`).
    pub gate: crate::gate::GateConfig,
}

/// `[identities]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawIdentities {
    /// Canonical person -> the names other sources use for them
    /// (`"alice@example.com" = ["alice", "role/eng/alice"]`).
    pub aliases: IndexMap<String, Vec<String>>,
    /// Extension: a bare user name that is the local part of one canonical
    /// e-mail stands for it (`alice` for `alice@example.com`).
    pub match_local_part: bool,
}

/// `[otlp]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOtlp {
    /// OTLP/HTTP receiver address (`POST /v1/logs`, `/v1/traces`); none by default.
    pub listen: Option<SocketAddr>,
    /// Extension: OTLP/gRPC receiver address; none by default.
    pub grpc_listen: Option<SocketAddr>,
    /// Extension: the largest request body accepted, in bytes (after gzip).
    pub max_body_bytes: usize,
    /// Extension: tool-decision sources meaning a person approved that very
    /// call (default: Claude Code `user_temporary`, Codex `user`).
    pub approval_sources: Vec<String>,
    /// Extension: tools whose calls publish text where others read it (globs).
    pub publish_tools: Vec<Pattern>,
}

impl Default for RawOtlp {
    fn default() -> Self {
        let d = crate::decode::otlp::OtlpOptions::default();
        RawOtlp {
            listen: None,
            grpc_listen: None,
            max_body_bytes: 4 << 20,
            approval_sources: d.approval_sources,
            publish_tools: d.publish_tools,
        }
    }
}

/// The validated `[otlp]`.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// OTLP/HTTP address.
    pub listen: Option<SocketAddr>,
    /// OTLP/gRPC address.
    pub grpc_listen: Option<SocketAddr>,
    /// Largest body.
    pub max_body_bytes: usize,
    /// How records are read.
    pub options: crate::decode::otlp::OtlpOptions,
}

/// `[state]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawState {
    /// Directory for checkpoints, the model snapshot, findings and the action journal.
    pub dir: PathBuf,
    /// Extension: how often the checkpoint is written while lines flow (e.g. "1s").
    #[serde(deserialize_with = "duration")]
    pub checkpoint_interval: Duration,
}

impl Default for RawState {
    fn default() -> Self {
        RawState {
            dir: PathBuf::from("/var/lib/reachguard"),
            checkpoint_interval: Duration::from_secs(1),
        }
    }
}

/// One `[[sources]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// A file or a glob, followed like `tail -F`.
    pub path: String,
    /// The input format (default `native`).
    #[serde(default)]
    pub format: Format,
    /// Whether advice and verification events from here count for tracing (default true).
    #[serde(default = "yes")]
    pub trust_advice: bool,
    /// Extension: `beginning` (default) or `end`, for files already there at first start.
    #[serde(default)]
    pub start_at: crate::source::StartAt,
    /// Extension: the name used in logs and the `source` metric label (default: `path`).
    pub name: Option<String>,
    /// Extension: the longest line accepted, in bytes (default 1 MiB).
    pub max_line_bytes: Option<usize>,
}

fn yes() -> bool {
    true
}

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    /// Address for `/metrics`, `/healthz`, `/readyz`, `/api/findings`.
    pub listen: SocketAddr,
    /// Extension: how many recent findings `/api/findings` keeps in memory.
    pub findings_in_memory: usize,
    /// Extension: environment variable holding a bearer token required on `/api/*`.
    pub token_env: Option<String>,
    /// Extension: file holding that token (trailing newline ignored).
    pub token_file: Option<PathBuf>,
    /// Extension: also require the token on `/metrics`.
    pub protect_metrics: bool,
    /// Extension: how many engineers `reachguard_top_expansion_score` exports
    /// (the top K by recent expansion score; bounds that metric's series).
    pub top_engineers: usize,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            findings_in_memory: 10_000,
            token_env: None,
            token_file: None,
            protect_metrics: false,
            top_engineers: crate::metrics::DEFAULT_TOP_ENGINEERS,
        }
    }
}

/// The most `[server] top_engineers` may ask for: each is a metric series.
const MAX_TOP_ENGINEERS: usize = 1000;

/// `[agents]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAgents {
    /// Principals that are AI agents (globs).
    pub patterns: Vec<Pattern>,
}

impl Default for RawAgents {
    fn default() -> Self {
        RawAgents {
            patterns: vec![Pattern::new("agent:*").expect("valid default pattern")],
        }
    }
}

/// `[provenance]` (extension).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawProvenance {
    /// How long after a principal saw advice a grant of theirs can be inferred to follow it.
    #[serde(deserialize_with = "duration")]
    pub window: Duration,
}

impl Default for RawProvenance {
    fn default() -> Self {
        RawProvenance {
            window: Duration::from_secs(24 * 3600),
        }
    }
}

/// `[response]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawResponse {
    /// `enforce` (call hooks) or `dry-run` (decide, report, call nothing).
    pub mode: Mode,
    /// Revocations allowed per rolling hour; beyond it findings are raised but not acted on.
    pub max_revocations_per_hour: u32,
    /// Principals, groups or resources never revoked (globs).
    pub protected: Vec<Pattern>,
    /// Extension: the least trace confidence (0..=1) that triggers a revocation.
    pub min_confidence: f64,
    /// The revocation hooks, each called for every revocation.
    pub hooks: Vec<HookSpec>,
    /// Extension: `traced` (every grant traced to unverified advice) or
    /// `traced-and-expanding` (only those that also expand reach).
    pub revoke: RevokeScope,
    /// Extension: the hooks `reachguard restore` calls (`"action":"restore"`),
    /// same keys as `hooks`.
    pub restore_hooks: Vec<HookSpec>,
}

impl Default for RawResponse {
    fn default() -> Self {
        RawResponse {
            mode: Mode::Enforce,
            max_revocations_per_hour: 20,
            protected: Vec::new(),
            min_confidence: 0.7,
            hooks: Vec::new(),
            revoke: RevokeScope::Traced,
            restore_hooks: Vec::new(),
        }
    }
}

/// `[log]` (extension).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    /// `text` (default) or `json`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `reachguard=debug` (`RUST_LOG` overrides it).
    pub level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Where a secret token is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// An environment variable.
    Env(String),
    /// A file.
    File(PathBuf),
}

/// How the daemon's own log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration {s:?} ({e}); use e.g. \"500ms\", \"30s\", \"15m\""
        ))
    })
}

/// A validated source.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Its position in the file; lines carry it.
    pub index: usize,
    /// Name for logs and the `source` metric label.
    pub name: String,
    /// Path or glob.
    pub path: String,
    /// Input format.
    pub format: Format,
    /// Whether its advice events count.
    pub trust_advice: bool,
    /// Where to start in files present at first start.
    pub start_at: crate::source::StartAt,
    /// Longest accepted line.
    pub max_line_bytes: usize,
}

/// The validated configuration the program runs on.
#[derive(Debug, Clone)]
pub struct Config {
    /// State directory.
    pub state_dir: PathBuf,
    /// How often checkpoints are written.
    pub checkpoint_interval: Duration,
    /// Log sources.
    pub sources: Vec<SourceConfig>,
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// Findings kept for the API.
    pub findings_in_memory: usize,
    /// Where the API bearer token comes from, if one is required.
    pub api_token: Option<TokenSource>,
    /// Whether `/metrics` needs the token too.
    pub protect_metrics: bool,
    /// Series of `reachguard_top_expansion_score`.
    pub top_engineers: usize,
    /// Agent recognition.
    pub identities: Identities,
    /// Sensitivity catalogue.
    pub sensitivity: Sensitivity,
    /// Provenance trace window.
    pub trace_window: Duration,
    /// Response policy inputs.
    pub response: ResponseConfig,
    /// Own logs.
    pub log_format: LogFormat,
    /// Own log filter.
    pub log_level: String,
    /// Expansion hyper-parameters.
    pub detection: crate::detect::DetectionConfig,
    /// Scale-out settings, when this instance is part of a cluster.
    pub cluster: Option<cluster::ClusterConfig>,
    /// Memory caps.
    pub limits: crate::detect::Limits,
    /// Agent telemetry.
    pub otlp: OtlpConfig,
    /// The admission webhook.
    pub gate: crate::gate::GateConfig,
    /// The file it was loaded from (`None`: the embedded defaults), for the
    /// commands the incident page suggests.
    pub path: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config::from_raw(RawConfig::default()).expect("embedded defaults are valid")
    }
}

/// A config that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed or a key is wrong; the message names the line and key.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The parser's or validator's message, with line and column.
        message: String,
    },
}

impl Config {
    /// Loads `path`, or the embedded defaults when `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg = Config::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        cfg.path = Some(std::path::absolute(path).unwrap_or_else(|_| path.to_owned()));
        Ok(cfg)
    }

    /// Parses TOML text. The error message names the line and the key.
    pub fn parse(text: &str) -> Result<Config, String> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
        Config::from_raw(raw).map_err(|e| {
            // Validation errors name a key; find its line so the operator can go there.
            match line_of_key(text, &e.key) {
                Some(line) => format!("line {line}, key `{}`: {}", e.key, e.message),
                None => format!("key `{}`: {}", e.key, e.message),
            }
        })
    }

    fn from_raw(raw: RawConfig) -> Result<Config, ValidationError> {
        let r = &raw.response;
        if !(0.0..=1.0).contains(&r.min_confidence) {
            return Err(ValidationError::new(
                "min_confidence",
                format!("must be between 0 and 1, not {}", r.min_confidence),
            ));
        }
        let cluster = match raw.cluster {
            Some(c) => Some(
                cluster::ClusterConfig::from_raw(c, raw.sources.len())
                    .map_err(|(key, msg)| ValidationError::new(&key, msg))?,
            ),
            None => None,
        };
        if raw.server.top_engineers > MAX_TOP_ENGINEERS {
            return Err(ValidationError::new(
                "top_engineers",
                format!(
                    "must be at most {MAX_TOP_ENGINEERS} (each engineer is one metric series), not {}",
                    raw.server.top_engineers
                ),
            ));
        }
        let mut names = BTreeSet::new();
        let mut sources = Vec::with_capacity(raw.sources.len());
        for (index, s) in raw.sources.into_iter().enumerate() {
            if s.path.trim().is_empty() {
                return Err(ValidationError::new(
                    "path",
                    "a source needs a non-empty path",
                ));
            }
            glob::Pattern::new(&s.path).map_err(|e| {
                ValidationError::new("path", format!("{:?} is not a valid glob: {e}", s.path))
            })?;
            let name = s.name.unwrap_or_else(|| s.path.clone());
            if !names.insert(name.clone()) {
                return Err(ValidationError::new(
                    "path",
                    format!("two sources are named {name:?}; give each a distinct `name`"),
                ));
            }
            let max_line_bytes = s.max_line_bytes.unwrap_or(1 << 20);
            if max_line_bytes < 1024 {
                return Err(ValidationError::new(
                    "max_line_bytes",
                    "must be at least 1024",
                ));
            }
            sources.push(SourceConfig {
                index,
                name,
                path: s.path,
                format: s.format,
                trust_advice: s.trust_advice,
                start_at: s.start_at,
                max_line_bytes,
            });
        }
        for h in raw.response.hooks.iter().chain(&raw.response.restore_hooks) {
            h.validate()
                .map_err(|(key, msg)| ValidationError::new(key, msg))?;
        }
        let detection = match raw.detection {
            None => crate::detect::DetectionConfig::default(),
            Some(overrides) => {
                // The model definition's defaults, overridden key by key.
                let mut table: toml::Table =
                    toml::from_str(crate::detect::expansion::MODEL_DEFINITION)
                        .expect("model definition parses");
                for (k, v) in overrides {
                    if !table.contains_key(&k) {
                        return Err(ValidationError::new(
                            &k,
                            "unknown [detection] key (see models/detection.toml)",
                        ));
                    }
                    table.insert(k, v);
                }
                table.try_into().map_err(|e: toml::de::Error| {
                    ValidationError::new("detection", e.message().to_owned())
                })?
            }
        };
        let aliases = crate::model::Aliases::new(
            raw.identities
                .aliases
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice())),
            raw.identities.match_local_part,
        )
        .map_err(|m| ValidationError::new("aliases", m))?;
        if raw.otlp.max_body_bytes < 1024 {
            return Err(ValidationError::new(
                "max_body_bytes",
                "must be at least 1024",
            ));
        }
        if let Some(s) = raw
            .otlp
            .approval_sources
            .iter()
            .find(|s| s.trim().is_empty())
        {
            return Err(ValidationError::new(
                "approval_sources",
                format!("{s:?} is not a decision source"),
            ));
        }
        raw.gate
            .validate()
            .map_err(|(key, m)| ValidationError::new(key, m))?;
        let options = crate::decode::otlp::OtlpOptions {
            approval_sources: raw.otlp.approval_sources,
            publish_tools: raw.otlp.publish_tools,
        };
        // Decoders of the `otlp` format made from now on read these.
        crate::decode::otlp::set_options(options.clone());
        Ok(Config {
            path: None,
            gate: raw.gate,
            otlp: OtlpConfig {
                listen: raw.otlp.listen,
                grpc_listen: raw.otlp.grpc_listen,
                max_body_bytes: raw.otlp.max_body_bytes,
                options,
            },
            cluster,
            detection,
            limits: raw.limits,
            state_dir: raw.state.dir,
            checkpoint_interval: raw.state.checkpoint_interval,
            sources,
            listen: raw.server.listen,
            findings_in_memory: raw.server.findings_in_memory.max(1),
            api_token: match (raw.server.token_env, raw.server.token_file) {
                (Some(_), Some(_)) => {
                    return Err(ValidationError::new(
                        "token_env",
                        "set token_env or token_file, not both",
                    ));
                }
                (Some(var), None) => Some(TokenSource::Env(var)),
                (None, Some(path)) => Some(TokenSource::File(path)),
                (None, None) => None,
            },
            protect_metrics: raw.server.protect_metrics,
            top_engineers: raw.server.top_engineers,
            identities: Identities::new(raw.agents.patterns).with_aliases(aliases),
            sensitivity: Sensitivity::new(raw.sensitivity.into_iter().collect()),
            trace_window: raw.provenance.window,
            response: ResponseConfig {
                mode: raw.response.mode,
                max_revocations_per_hour: raw.response.max_revocations_per_hour,
                protected: raw.response.protected,
                min_confidence: raw.response.min_confidence,
                hooks: raw.response.hooks,
                revoke: raw.response.revoke,
                restore_hooks: raw.response.restore_hooks,
            },
            log_format: raw.log.format,
            log_level: raw.log.level,
        })
    }

    /// The API bearer token, read from its environment variable or file.
    pub fn api_token(&self) -> Result<Option<String>, String> {
        match &self.api_token {
            None => Ok(None),
            Some(TokenSource::Env(var)) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(Some(v.trim().to_owned())),
                _ => Err(format!(
                    "environment variable {var} ([server] token_env) is not set"
                )),
            },
            Some(TokenSource::File(path)) => {
                let v = std::fs::read_to_string(path).map_err(|e| {
                    format!("cannot read {} ([server] token_file): {e}", path.display())
                })?;
                let v = v.trim();
                if v.is_empty() {
                    return Err(format!("{} ([server] token_file) is empty", path.display()));
                }
                Ok(Some(v.to_owned()))
            }
        }
    }

    /// Problems only visible at run time (a hook secret missing from the environment).
    pub fn runtime_problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = self
            .response
            .hooks
            .iter()
            .chain(&self.response.restore_hooks)
            .filter_map(|h| h.secret_problem())
            .collect();
        if let Some(c) = &self.cluster {
            problems.extend(c.runtime_problems());
        }
        problems.extend(self.api_token().err());
        problems
    }
}

// Each module's settings are built here, from the one validated config, so
// that no module below this one needs to know the config's shape.
impl EngineConfig {
    /// The engine settings of a validated config.
    pub fn from_config(c: &Config) -> Self {
        EngineConfig {
            identities: c.identities.clone(),
            sensitivity: c.sensitivity.clone(),
            trace_window: c.trace_window,
            detection: c.detection.clone(),
            limits: c.limits,
            min_confidence: c.response.min_confidence,
        }
    }
}

#[derive(Debug)]
struct ValidationError {
    key: String,
    message: String,
}

impl ValidationError {
    fn new(key: &str, message: impl Into<String>) -> Self {
        ValidationError {
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

/// The 1-based line of the first `key = ...` assignment in `text`.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_file_means_embedded_defaults() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/reachguard"));
        assert_eq!(c.listen.to_string(), "127.0.0.1:9464");
        assert!(c.identities.is_agent_name("agent:forum-helper"));
        assert!(!c.identities.is_agent_name("alice"));
        assert_eq!(c.response.mode, Mode::Enforce);
        assert_eq!(c.response.max_revocations_per_hour, 20);
        assert!(c.sources.is_empty());
        assert_eq!(c.top_engineers, 10);
        let c = Config::parse("[server]\ntop_engineers = 3\n").unwrap();
        assert_eq!(c.top_engineers, 3);
        let err = Config::parse("[server]\ntop_engineers = 5000\n").unwrap_err();
        assert!(err.starts_with("line 2, key `top_engineers`"), "{err}");
    }

    #[test]
    fn gate_keys_parse_and_a_listener_needs_its_certificate_and_key() {
        let c = Config::parse("[gate]\nlisten = \"127.0.0.1:8443\"\ntls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"\nmode = \"warn\"\n").unwrap();
        assert_eq!(c.gate.mode, crate::gate::GateMode::Warn);
        assert_eq!(
            c.gate.tls_key.as_deref(),
            Some(std::path::Path::new("/k.pem"))
        );
        let err = Config::parse("[gate]\nlisten = \"127.0.0.1:8443\"\n").unwrap_err();
        assert!(err.contains("tls_cert"), "{err}");
        let err = Config::parse("[gate]\nmode = \"audit\"\n").unwrap_err();
        assert!(err.contains("mode"), "{err}");
        let err = Config::parse("[gate]\nport = 8443\n").unwrap_err();
        assert!(err.contains("port"), "{err}");
        assert!(
            Config::default().gate.listen.is_none(),
            "no webhook by default"
        );
    }

    #[test]
    fn the_design_example_config_parses() {
        let text = include_str!("../../deploy/reachguard.example.toml");
        let c = Config::parse(text).unwrap();
        assert_eq!(c.sources.len(), 2);
        assert_eq!(c.response.hooks.len(), 3);
        assert_eq!(c.response.hooks[0].formats(), None, "default: every format");
        assert_eq!(
            c.response.hooks[2].formats(),
            Some(&[crate::decode::Format::Cloudtrail][..])
        );
        assert_eq!(c.sensitivity.tier_of("prod/db"), Tier::High);
        assert_eq!(c.sensitivity.tier_of("wiki/home"), Tier::Low);
        assert!(!c.sources[1].trust_advice);
        assert_eq!(c.gate.listen.unwrap().port(), 8443);
        assert_eq!(c.gate.mode, crate::gate::GateMode::Enforce);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_line() {
        let err = Config::parse("[state]\ndir = \"/tmp/x\"\n\n[response]\nmdoe = \"enforce\"\n")
            .unwrap_err();
        assert!(err.contains("line 5"), "{err}");
        assert!(err.contains("mdoe"), "{err}");
    }

    #[test]
    fn bad_values_name_line_and_expected_values() {
        let err = Config::parse("[response]\nmode = \"enforced\"\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("dry-run"), "{err}");
        let err = Config::parse("[sensitivity]\n\"prod/*\" = \"hihg\"\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        let err = Config::parse("[server]\nlisten = \"localhost\"\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        let err = Config::parse("[state]\ncheckpoint_interval = \"soon\"\n").unwrap_err();
        assert!(err.contains("invalid duration"), "{err}");
    }

    #[test]
    fn validation_errors_point_at_the_key() {
        let err =
            Config::parse("[response]\nmode = \"enforce\"\nmin_confidence = 1.5\n").unwrap_err();
        assert_eq!(
            err,
            "line 3, key `min_confidence`: must be between 0 and 1, not 1.5"
        );
        let err = Config::parse("[[response.hooks]]\ntype = \"exec\"\ncommand = []\n").unwrap_err();
        assert!(err.starts_with("line 3, key `command`"), "{err}");
    }

    #[test]
    fn revoke_scope_and_restore_hooks_parse_and_are_validated() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.response.revoke, RevokeScope::Traced);
        assert!(c.response.restore_hooks.is_empty());
        let c = Config::parse(
            "[response]\nrevoke = \"traced-and-expanding\"\n\n[[response.restore_hooks]]\ntype = \"exec\"\ncommand = [\"/usr/local/bin/restore-grant\"]\n",
        )
        .unwrap();
        assert_eq!(c.response.revoke, RevokeScope::TracedAndExpanding);
        assert_eq!(c.response.restore_hooks.len(), 1);
        let err = Config::parse("[response]\nrevoke = \"everything\"\n").unwrap_err();
        assert!(
            err.contains("line 2") && err.contains("traced-and-expanding"),
            "{err}"
        );
        let err = Config::parse(
            "[[response.restore_hooks]]\ntype = \"webhook\"\nurl = \"ftp://x/restore\"\nsecret_env = \"S\"\n",
        )
        .unwrap_err();
        assert!(err.starts_with("line 3, key `url`"), "{err}");
    }

    #[test]
    fn identities_and_otlp_keys_parse_and_are_validated() {
        let c = Config::parse(
            "[identities]\nmatch_local_part = true\n[identities.aliases]\n\"alice@example.com\" = [\"alice\", \"role/eng/alice\"]\n\n[otlp]\nlisten = \"127.0.0.1:4318\"\napproval_sources = [\"user_temporary\"]\n",
        )
        .unwrap();
        assert_eq!(
            c.identities.canonical("role/eng/alice"),
            "alice@example.com"
        );
        assert_eq!(c.otlp.listen.unwrap().port(), 4318);
        assert_eq!(c.otlp.options.approval_sources, ["user_temporary"]);
        let err = Config::parse("[identities.aliases]\n\"a@x\" = [\"al\"]\n\"b@x\" = [\"al\"]\n")
            .unwrap_err();
        assert!(
            err.contains("key `aliases`") && err.contains("\"al\""),
            "{err}"
        );
        let err = Config::parse("[otlp]\nlisten = \"nowhere\"\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        let err = Config::parse("[otlp]\nmax_body_bytes = 10\n").unwrap_err();
        assert!(err.starts_with("line 2, key `max_body_bytes`"), "{err}");
        let c = Config::parse("").unwrap();
        assert!(c.otlp.listen.is_none() && !c.identities.has_aliases());
    }

    #[test]
    fn sensitivity_keeps_file_order_first_match_wins() {
        let c =
            Config::parse("[sensitivity]\n\"prod/db/*\" = \"critical\"\n\"prod/*\" = \"high\"\n")
                .unwrap();
        assert_eq!(c.sensitivity.tier_of("prod/db/main"), Tier::Critical);
        assert_eq!(c.sensitivity.tier_of("prod/web"), Tier::High);
    }
}
