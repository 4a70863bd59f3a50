//! reachguard: flags sudden privilege expansions in access and audit logs within
//! seconds, and revokes grants that trace back to AI-agent advice no human
//! verified.
//!
//! # Layout
//!
//! The modules follow the data flow, each with one job; data moves forward only.
//! Imports point one way too: each module below uses only modules listed above
//! it (`grep -rn "crate::" src` shows every edge), so there is no cycle
//! between them.
//!
//! - [`format`](mod@format): the names of the log formats a source can declare (a leaf).
//! - [`undo`]: what undoing a grant takes, per vendor (the payload's `target`),
//!   as the decoders read it from the record.
//! - [`event`]: event schema v1, the one shape every decoder produces, and
//!   [`event::Events`], a compact run of decoded events (plain accesses kept
//!   as offsets into one buffer) that replay hands from decoding to the model.
//! - [`finding`]: the finding shape every output writes.
//! - [`commands`]: the grants a shell command makes (the commands agents run),
//!   named as the audit decoders name them.
//! - [`model`]: who holds what, group memberships, the advice registry, identities
//!   and the sensitivity catalogue.
//! - [`decode`]: raw lines to normalised [`event::Event`]s, one decoder per format.
//! - [`source`]: follows log files like `tail -F` (rotation-safe, checkpointed).
//! - [`detect`]: the pure detection core (`observe(event) -> findings`) and
//!   [`detect::provenance`], which traces grants to agent advice; reach
//!   baselines ([`detect::baseline`], [`detect::reach`]) and the peer groups
//!   fitted over them ([`detect::peers`]).
//! - [`gate`]: confirmation gates: a proposed grant judged before it exists
//!   (allow, ask or deny), for `POST /api/v1/decide` and the gates built on it.
//! - [`state`]: the state directory (checkpoint with the model, versioned).
//! - [`respond`]: policy and guardrails, revocation hooks, the action journal,
//!   and the response stage's own settings and metrics.
//! - [`sink`]: the findings file and the recent findings the API serves.
//! - [`metrics`]: the Prometheus metrics (names are a contract); a stage with
//!   labels of its own registers its metrics itself ([`respond::ResponseMetrics`])
//!   and this module assembles them on one registry.
//! - [`server`]: `/metrics`, `/healthz`, `/readyz`, `/api/findings`.
//! - [`synth`]: labelled synthetic organisations and the detection evaluation.
//! - [`config`]: the TOML config, its defaults and validation. It builds each
//!   stage's settings from the types the stages define (`[response]` into
//!   [`respond::ResponseConfig`], the engine's [`detect::EngineConfig`]); the
//!   `[cluster]` settings are its own ([`config::cluster`]), since the cluster
//!   starts from the whole config. No stage below it imports it.
//! - [`pipeline`]: decode -> detect -> decide for one line, shared by every mode.
//! - [`instance`]: start-up shared by the daemon and a cluster instance (state
//!   dir, findings file, hooks, the HTTP API).
//! - [`daemon`]: `reachguard run`, wiring the stages as tasks.
//! - [`cluster`]: scale-out over NATS JetStream (`run` with `[cluster]`):
//!   shared ingestion, partitions by principal with leases and snapshots,
//!   one revocation per grant across instances.
//! - [`replay`]: `reachguard replay`, the same pipeline over files in event time;
//!   blocks of lines are decoded on other threads while the model runs.
//! - [`train`]: `reachguard train`, baselines learned from history.
//! - [`explain`]: `reachguard explain`, one engineer's baseline, peers and reach.
//! - [`demo`]: `reachguard demo`, the incident end to end on embedded data.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod decode;
pub mod demo;
pub mod detect;
pub mod event;
pub mod explain;
pub mod finding;
pub mod format;
pub mod gate;
pub mod instance;
pub mod metrics;
pub mod model;
pub mod owner;
pub mod page;
pub mod pipeline;
pub mod replay;
pub mod respond;
pub mod server;
pub mod sink;
pub mod source;
pub mod state;
pub mod synth;
pub mod train;
pub mod undo;
pub mod uses;
