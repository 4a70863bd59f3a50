//! `otlp`: agent telemetry (OpenTelemetry logs and traces) as advice.
//!
//! Input: OTLP/JSON as the OpenTelemetry Collector's file exporter writes it,
//! one `ExportLogsServiceRequest` or `ExportTraceServiceRequest` per line (the
//! protobuf JSON mapping: hex ids, 64-bit integers as strings, `AnyValue`s),
//! read with `opentelemetry-proto`'s types. The OTLP receiver
//! (`source::otlp`) hands the requests it is sent to the same [`Mapper`].
//!
//! What becomes an event (`docs/formats.md`, "otlp", is the full table):
//!
//! - An agent's tool call that ran a grant command ([`crate::commands`]) is an
//!   `advice` recommending those grants, `requested_by` the person the agent
//!   worked for, at the time the call started, followed by an `advice_viewed`
//!   by that person (who ran it through the agent).
//! - A person's approval of that very call (Claude Code `accept` from
//!   `user_temporary`, Codex `approved` from `user`; the list is
//!   `[otlp] approval_sources`) is an `advice_verified` at the same time. An
//!   allow rule, classifier, hook or automated reviewer is not a person; a call
//!   with no approval record (GenAI spans) is unverified.
//! - A rejected call never ran: nothing.
//! - A tool call that publishes text (`[otlp] publish_tools`) is an advice with
//!   `published = true`, recommending the grant commands written in the text.
//!
//! Claude Code and Codex send the decision and the result of a call as two
//! records; the decision is remembered (a bounded table) until the result
//! names the command.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::Span;

use super::{DecodeError, Decoder, Rejected};
use crate::commands::{self, Context};
use crate::event::{Advice, AdviceVerified, AdviceViewed, Body, Event, Events, Recommendation, Ts};
use crate::model::Pattern;

/// How agent telemetry is read (`[otlp]` in the config).
#[derive(Debug, Clone)]
pub struct OtlpOptions {
    /// Decision sources meaning a person approved this very call.
    pub approval_sources: Vec<String>,
    /// Tools whose calls publish text where others read it (globs).
    pub publish_tools: Vec<Pattern>,
}

impl Default for OtlpOptions {
    fn default() -> Self {
        OtlpOptions {
            approval_sources: DEFAULT_APPROVAL_SOURCES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            publish_tools: DEFAULT_PUBLISH_TOOLS
                .iter()
                .map(|p| Pattern::new(p).expect("valid default pattern"))
                .collect(),
        }
    }
}

/// Claude Code's "allow once" and Codex's per-call user approval.
pub const DEFAULT_APPROVAL_SOURCES: [&str; 2] = ["user_temporary", "user"];

/// Chat and forum posting tools, as MCP servers commonly name them.
pub const DEFAULT_PUBLISH_TOOLS: [&str; 5] = [
    "*slack_post_message*",
    "*post_message*",
    "*create_comment*",
    "*add_comment*",
    "*forum_post*",
];

static OPTIONS: RwLock<Option<Arc<OtlpOptions>>> = RwLock::new(None);

/// Sets the options every `otlp` decoder made from now on reads (the config
/// does, once loaded).
pub fn set_options(o: OtlpOptions) {
    *OPTIONS.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(o));
}

fn options() -> Arc<OtlpOptions> {
    OPTIONS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_default()
}

/// The `otlp` line decoder.
#[derive(Debug)]
pub struct OtlpDecoder {
    mapper: Mapper,
}

impl Default for OtlpDecoder {
    fn default() -> Self {
        OtlpDecoder {
            mapper: Mapper::new(options()),
        }
    }
}

impl Decoder for OtlpDecoder {
    fn decode(&mut self, line: &[u8], out: &mut Events) -> Result<(), DecodeError> {
        let text = std::str::from_utf8(line).map_err(|_| DecodeError::InvalidUtf8)?;
        let text = text.trim();
        if text.is_empty() {
            return Ok(());
        }
        // The first key tells the signal apart; serde then reads the whole line.
        if text.contains("\"resourceLogs\"") {
            let req: ExportLogsServiceRequest =
                serde_json::from_str(text).map_err(|e| DecodeError::Json(e.to_string()))?;
            self.mapper.logs(&req, out);
            Ok(())
        } else if text.contains("\"resourceSpans\"") {
            let req: ExportTraceServiceRequest =
                serde_json::from_str(text).map_err(|e| DecodeError::Json(e.to_string()))?;
            self.mapper.traces(&req, out);
            Ok(())
        } else if text.contains("\"resourceMetrics\"") {
            // Metrics carry no calls: understood, of no use.
            Ok(())
        } else {
            Err(DecodeError::Unrecognized {
                format: "otlp",
                reason: "neither resourceLogs nor resourceSpans",
            })
        }
    }

    fn take_rejected(&mut self) -> Rejected {
        std::mem::take(&mut self.mapper.rejected)
    }
}

/// How many decisions (and agent spans) are remembered while their calls'
/// results are awaited; beyond it the table starts afresh.
const MAX_PENDING: usize = 10_000;

/// A tool decision awaiting its result.
#[derive(Debug, Clone)]
struct Decision {
    ts: Ts,
    accepted: bool,
    source: String,
}

/// What an `invoke_agent` span says about the calls of its trace.
#[derive(Debug, Clone, Default)]
struct AgentInfo {
    agent: Option<String>,
    session: Option<String>,
    person: Option<String>,
}

/// Turns OTLP requests into events; remembers decisions across requests.
#[derive(Debug)]
pub struct Mapper {
    options: Arc<OtlpOptions>,
    decisions: HashMap<String, Decision>,
    agents: HashMap<Vec<u8>, AgentInfo>,
    /// Tool spans naming no person whose agent span has not arrived yet (an
    /// exporter sends a trace's children before the span that encloses them,
    /// often in an earlier batch), with their resource's attributes.
    held: HashMap<Vec<u8>, Vec<(Span, Vec<KeyValue>)>>,
    /// Agent records read since [`Mapper::take_rejected`] that lack what
    /// they need (a time, a tool, a call id, a decision, JSON arguments).
    rejected: Rejected,
}

/// Attributes looked up by key: a record's (or span's) first, then its resource's.
struct Attrs<'a> {
    own: &'a [KeyValue],
    resource: &'a [KeyValue],
}

impl<'a> Attrs<'a> {
    fn get(&self, key: &str) -> Option<Cow<'a, str>> {
        find(self.own, key).or_else(|| find(self.resource, key))
    }

    fn first(&self, keys: &[&str]) -> Option<String> {
        keys.iter()
            .find_map(|k| self.get(k))
            .map(Cow::into_owned)
            .filter(|v| !v.is_empty())
    }
}

fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<Cow<'a, str>> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(any_str)
}

fn any_str(v: &AnyValue) -> Option<Cow<'_, str>> {
    match v.value.as_ref()? {
        Value::StringValue(s) => Some(Cow::Borrowed(s)),
        Value::IntValue(i) => Some(Cow::Owned(i.to_string())),
        Value::BoolValue(b) => Some(Cow::Owned(b.to_string())),
        Value::DoubleValue(d) => Some(Cow::Owned(d.to_string())),
        _ => None,
    }
}

const PERSON_KEYS: [&str; 4] = ["user.email", "enduser.id", "user.id", "user.name"];

/// The shell command of a GitHub Copilot `execute_tool` span (VS Code Copilot
/// Chat and the Copilot CLI; recorded only with content capture on).
const COPILOT_COMMAND: &str = "github.copilot.tool.parameters.command";

fn nanos_to_ts(n: u64) -> Option<Ts> {
    (n > 0).then(|| Ts(i64::try_from(n / 1_000_000).unwrap_or(i64::MAX)))
}

/// The command a tool's arguments hold: the JSON keys shells take.
fn command_of(args: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(args).ok()?;
    for key in ["full_command", "command", "bash_command", "cmd", "script"] {
        match v.get(key) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => return Some(s.clone()),
            Some(serde_json::Value::Array(words)) => {
                let words: Vec<&str> = words.iter().filter_map(|w| w.as_str()).collect();
                // `["bash", "-lc", "script"]`: the script.
                if let [sh, flag, script] = words[..] {
                    if matches!(sh.rsplit('/').next(), Some("sh" | "bash" | "zsh"))
                        && flag.starts_with('-')
                        && flag.ends_with('c')
                    {
                        return Some(script.to_owned());
                    }
                }
                if !words.is_empty() {
                    return Some(
                        words
                            .iter()
                            .map(|w| {
                                if w.chars()
                                    .any(|c| c.is_whitespace() || "'\"\\$;&|<>".contains(c))
                                {
                                    format!("'{}'", w.replace('\'', r"'\''"))
                                } else {
                                    (*w).to_owned()
                                }
                            })
                            .collect::<Vec<_>>()
                            .join(" "),
                    );
                }
            }
            _ => {}
        }
    }
    None
}

/// Whether `text` is a JSON value.
fn is_json(text: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

/// The text a publishing tool's arguments post, and where.
fn published_text(args: &str) -> Option<(String, Option<String>)> {
    let v: serde_json::Value = serde_json::from_str(args).ok()?;
    let text = ["text", "message", "body", "content", "markdown"]
        .iter()
        .find_map(|k| v.get(k).and_then(|t| t.as_str()))?;
    let channel = ["channel", "channel_id", "thread", "topic", "issue", "url"]
        .iter()
        .find_map(|k| match v.get(k) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        });
    Some((text.to_owned(), channel))
}

/// The grant commands written in prose: lines, code blocks and inline code
/// that start with a granting program (after an optional `$ ` prompt).
fn commands_in_text(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut candidates: Vec<&str> = text.lines().collect();
    candidates.extend(text.split('`').skip(1).step_by(2));
    for c in candidates {
        let c = c.trim().trim_start_matches("$ ").trim();
        let first = c.split_whitespace().next().unwrap_or_default();
        let first = if first == "sudo" {
            c.split_whitespace().nth(1).unwrap_or_default()
        } else {
            first
        };
        if matches!(
            first,
            "kubectl" | "aws" | "gcloud" | "gh" | "usermod" | "gpasswd" | "adduser"
        ) {
            out.push(c.to_owned());
        }
    }
    out
}

/// One agent tool call, as the records about it describe it.
struct Call<'a> {
    ts: Ts,
    agent: String,
    session: String,
    call_id: String,
    person: Option<String>,
    tool: &'a str,
    /// The command it ran, if it is a shell call.
    command: Option<String>,
    /// The tool's arguments (JSON), for publishing tools.
    arguments: Option<String>,
    host: Option<String>,
    /// The decision, when one was recorded.
    decision: Option<Decision>,
}

impl Mapper {
    /// A mapper with these options.
    pub fn new(options: Arc<OtlpOptions>) -> Mapper {
        Mapper {
            options,
            decisions: HashMap::new(),
            agents: HashMap::new(),
            held: HashMap::new(),
            rejected: Rejected::default(),
        }
    }

    /// The records rejected since the last call (OTLP's partial success).
    pub fn take_rejected(&mut self) -> Rejected {
        std::mem::take(&mut self.rejected)
    }

    fn reject(&mut self, span: bool, why: impl FnOnce() -> String) {
        if span {
            self.rejected.spans += 1;
        } else {
            self.rejected.log_records += 1;
        }
        if self.rejected.message.is_none() {
            self.rejected.message = Some(why());
        }
    }

    /// The events of one logs request.
    pub fn logs(&mut self, req: &ExportLogsServiceRequest, out: &mut Events) {
        for rl in &req.resource_logs {
            let resource = rl.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
            for sl in &rl.scope_logs {
                for r in &sl.log_records {
                    self.log_record(r, resource, out);
                }
            }
        }
    }

    /// The events of one traces request.
    pub fn traces(&mut self, req: &ExportTraceServiceRequest, out: &mut Events) {
        // Agent spans first: a batch holds a trace's tool spans before the
        // agent span that encloses them (children end first).
        for rs in &req.resource_spans {
            let resource = rs.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    if operation(s) == Some("invoke_agent") {
                        let a = Attrs {
                            own: &s.attributes,
                            resource,
                        };
                        let info = AgentInfo {
                            agent: a.first(&[
                                "gen_ai.agent.name",
                                "gen_ai.agent.id",
                                "service.name",
                            ]),
                            session: a.first(&["gen_ai.conversation.id"]),
                            person: a.first(&PERSON_KEYS),
                        };
                        if self.agents.len() >= MAX_PENDING {
                            self.agents.clear();
                        }
                        self.agents.insert(s.trace_id.clone(), info);
                        // Its tool spans that came first.
                        for (held, res) in self.held.remove(&s.trace_id).unwrap_or_default() {
                            self.tool_span(&held, &res, out);
                        }
                    }
                }
            }
        }
        for rs in &req.resource_spans {
            let resource = rs.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    if operation(s) == Some("execute_tool") {
                        self.tool_span(s, resource, out);
                    }
                }
            }
        }
    }

    fn tool_span(&mut self, s: &Span, resource: &[KeyValue], out: &mut Events) {
        let a = Attrs {
            own: &s.attributes,
            resource,
        };
        let Some(tool) = a.get("gen_ai.tool.name").filter(|t| !t.is_empty()) else {
            self.reject(true, || {
                format!(
                    "execute_tool span {} has no gen_ai.tool.name",
                    hex::encode(&s.span_id)
                )
            });
            return;
        };
        let parent = match self.agents.get(&s.trace_id) {
            Some(p) => p.clone(),
            None if a.first(&PERSON_KEYS).is_none() => {
                // Who asked is on the agent span, still to come.
                if self.held.values().map(Vec::len).sum::<usize>() >= MAX_PENDING {
                    self.held.clear();
                }
                self.held
                    .entry(s.trace_id.clone())
                    .or_default()
                    .push((s.clone(), resource.to_vec()));
                return;
            }
            None => AgentInfo::default(),
        };
        let Some(ts) = nanos_to_ts(s.start_time_unix_nano) else {
            self.reject(true, || {
                format!(
                    "execute_tool span {} has no start time",
                    hex::encode(&s.span_id)
                )
            });
            return;
        };
        let arguments = a.first(&["gen_ai.tool.call.arguments"]);
        if arguments.as_deref().is_some_and(|x| !is_json(x)) {
            self.reject(true, || {
                format!(
                    "execute_tool span {}: gen_ai.tool.call.arguments is not JSON",
                    hex::encode(&s.span_id)
                )
            });
            return;
        }
        let call = Call {
            ts,
            agent: a
                .first(&["gen_ai.agent.name", "gen_ai.agent.id"])
                .or(parent.agent)
                .or_else(|| a.first(&["service.name"]))
                .unwrap_or_else(|| "unknown-agent".into()),
            session: a
                .first(&["gen_ai.conversation.id", "copilot_chat.chat_session_id"])
                .or(parent.session)
                .unwrap_or_else(|| hex::encode(&s.trace_id)),
            call_id: a
                .first(&["gen_ai.tool.call.id"])
                .unwrap_or_else(|| hex::encode(&s.span_id)),
            person: a.first(&PERSON_KEYS).or(parent.person),
            tool: &tool,
            // Copilot lifts a shell tool's command into its own attribute.
            command: arguments
                .as_deref()
                .and_then(command_of)
                .or_else(|| a.first(&[COPILOT_COMMAND])),
            arguments: arguments.clone(),
            host: a.first(&["host.name"]),
            decision: None,
        };
        self.call(call, out);
    }

    fn log_record(&mut self, r: &LogRecord, resource: &[KeyValue], out: &mut Events) {
        let a = Attrs {
            own: &r.attributes,
            resource,
        };
        // Claude Code names the event in the body (`event.name` holds it
        // without the prefix); Codex in `event.name`; newer SDKs in `event_name`.
        let body = r.body.as_ref().and_then(any_str);
        let attr = a.get("event.name");
        let candidates = [
            Some(r.event_name.as_str()),
            body.as_deref(),
            attr.as_deref(),
        ];
        let Some((name, vendor, kind)) = candidates.into_iter().flatten().find_map(|n| {
            let (vendor, kind) = match n {
                "claude_code.tool_decision" => ("claude-code", "decision"),
                "claude_code.tool_result" => ("claude-code", "result"),
                "codex.tool_decision" => ("codex", "decision"),
                "codex.tool_result" => ("codex", "result"),
                _ => return None,
            };
            Some((n.to_owned(), vendor, kind))
        }) else {
            return;
        };
        let Some(ts) =
            nanos_to_ts(r.time_unix_nano).or_else(|| nanos_to_ts(r.observed_time_unix_nano))
        else {
            self.reject(false, || format!("a {name} record has no time"));
            return;
        };
        let session = a
            .first(&["session.id", "conversation.id", "thread.id"])
            .unwrap_or_else(|| "unknown-session".into());
        let call_id = a.first(&["tool_use_id", "call_id", "tool.call.id"]);
        let key = |call_id: &str| format!("{vendor}\u{0}{session}\u{0}{call_id}");
        let decision_of = |a: &Attrs<'_>| -> Option<Decision> {
            let d = a
                .first(&["decision", "decision_type"])?
                .to_ascii_lowercase();
            let source = a
                .first(&["source", "decision_source"])
                .unwrap_or_default()
                .to_ascii_lowercase();
            Some(Decision {
                ts,
                accepted: matches!(d.as_str(), "accept" | "approved" | "approved_for_session"),
                source: if d == "approved_for_session" {
                    format!("{source}:for_session")
                } else {
                    source
                },
            })
        };
        match kind {
            "decision" => {
                let (Some(id), Some(d)) = (call_id, decision_of(&a)) else {
                    self.reject(false, || {
                        format!("a {name} record names no call id or no decision")
                    });
                    return;
                };
                if self.decisions.len() >= MAX_PENDING {
                    self.decisions.clear();
                }
                self.decisions.insert(key(&id), d);
            }
            _ => {
                let remembered = call_id
                    .as_deref()
                    .and_then(|id| self.decisions.remove(&key(id)));
                let decision = remembered.or_else(|| decision_of(&a));
                let params = a.first(&["tool_parameters", "tool_input", "arguments"]);
                let Some(tool) = a.first(&["tool_name", "tool.name"]) else {
                    self.reject(false, || format!("a {name} record names no tool"));
                    return;
                };
                if params.as_deref().is_some_and(|p| !is_json(p)) {
                    self.reject(false, || {
                        format!("a {name} record's tool parameters are not JSON")
                    });
                    return;
                }
                let started = a
                    .first(&["duration_ms"])
                    .and_then(|d| d.parse::<f64>().ok())
                    .filter(|d| d.is_finite() && *d >= 0.0)
                    .map_or(ts, |d| ts.add_millis(-(d as i64)));
                let call = Call {
                    ts: decision.as_ref().map_or(started, |d| d.ts.min(started)),
                    agent: a
                        .first(&["service.name"])
                        .unwrap_or_else(|| vendor.to_owned()),
                    session: session.clone(),
                    call_id: call_id.unwrap_or_else(|| format!("{}", ts.0)),
                    person: a.first(&PERSON_KEYS),
                    tool: &tool,
                    command: params.as_deref().and_then(command_of),
                    arguments: params,
                    host: a.first(&["host.name"]),
                    decision,
                };
                self.call(call, out);
            }
        }
    }

    /// The advice (and its sighting and approval) of one call that ran.
    fn call(&mut self, c: Call<'_>, out: &mut Events) {
        if c.decision.as_ref().is_some_and(|d| !d.accepted) {
            // Rejected: it never ran.
            return;
        }
        let ctx = Context {
            host: c.host.as_deref(),
        };
        let publishes = self.options.publish_tools.iter().any(|p| p.matches(c.tool));
        let (recommends, channel, summary): (Vec<Recommendation>, Option<String>, String) =
            if publishes {
                let Some((text, channel)) = c.arguments.as_deref().and_then(published_text) else {
                    return;
                };
                let recs = commands_in_text(&text)
                    .iter()
                    .flat_map(|cmd| commands::parse(cmd, &ctx).grants)
                    .collect();
                (
                    recs,
                    Some(channel.unwrap_or_else(|| c.tool.to_owned())),
                    text,
                )
            } else {
                let Some(cmd) = &c.command else { return };
                let parsed = commands::parse(cmd, &ctx);
                if parsed.grants.is_empty() {
                    return;
                }
                (parsed.grants, None, cmd.clone())
            };
        let advice_id = format!("otel:{}:{}:{}", c.agent, c.session, c.call_id);
        let mut summary: String = summary.chars().take(300).collect();
        if let Some(d) = &c.decision {
            summary = format!(
                "{summary} [decision accept, source {}]",
                if d.source.is_empty() {
                    "unknown"
                } else {
                    &d.source
                }
            );
        } else {
            summary = format!("{summary} [no approval recorded]");
        }
        out.push(Event {
            ts: c.ts,
            id: Some(advice_id.clone()),
            body: Body::Advice(Advice {
                advice_id: advice_id.clone(),
                agent: c.agent.clone(),
                requested_by: c.person.clone(),
                channel: channel.or_else(|| Some(format!("session/{}", c.session))),
                published: publishes,
                recommends,
                summary: Some(summary),
            }),
        });
        let Some(person) = c.person else { return };
        if !publishes {
            out.push(Event {
                ts: c.ts,
                id: None,
                body: Body::AdviceViewed(AdviceViewed {
                    advice_id: advice_id.clone(),
                    principal: person.clone(),
                }),
            });
        }
        let approved_by_person = c.decision.as_ref().is_some_and(|d| {
            self.options
                .approval_sources
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&d.source))
        });
        if approved_by_person {
            out.push(Event {
                ts: c.ts,
                id: None,
                body: Body::AdviceVerified(AdviceVerified {
                    advice_id,
                    verifier: person,
                }),
            });
        }
    }
}

/// `gen_ai.operation.name`, else the span name's first word.
fn operation(s: &Span) -> Option<&str> {
    s.attributes
        .iter()
        .find(|kv| kv.key == "gen_ai.operation.name")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(v) => Some(v.as_str()),
            _ => None,
        })
        .or_else(|| s.name.split_whitespace().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copilot_turn_is_read_from_its_documented_attributes() {
        let fixture = include_str!("../../tests/fixtures/otlp/copilot.jsonl");
        let evs = decode(&fixture.lines().collect::<Vec<_>>());
        // One call ran a grant command (the file read did not); the hook's
        // approval is no person's, and Copilot records none.
        let [advice, viewed] = &evs[..] else {
            panic!("{evs:#?}")
        };
        let Body::Advice(a) = &advice.body else {
            panic!("{advice:?}")
        };
        assert_eq!(a.advice_id, "otel:GitHub Copilot Chat:chat-41:call_cp7");
        assert_eq!(a.requested_by.as_deref(), Some("dave@example.com"));
        assert_eq!(advice.ts, Ts(1_773_825_604_000), "the call's start");
        assert_eq!(
            a.recommends,
            [Recommendation {
                resource: "k8s/web/ClusterRole/admin".into(),
                role: Some("admin".into()),
                grantee: Some("deploy-bot".into()),
            }]
        );
        assert!(
            a.summary
                .as_deref()
                .unwrap()
                .ends_with("[no approval recorded]"),
            "{a:?}"
        );
        assert!(matches!(&viewed.body, Body::AdviceViewed(v) if v.principal == "dave@example.com"));
    }

    fn decode(lines: &[&str]) -> Vec<Event> {
        let mut d = OtlpDecoder {
            mapper: Mapper::new(Arc::new(OtlpOptions::default())),
        };
        let mut out = Events::default();
        for l in lines {
            d.decode(l.as_bytes(), &mut out).unwrap();
        }
        out.to_vec()
    }

    fn kv(k: &str, v: &str) -> String {
        format!(
            r#"{{"key":"{k}","value":{{"stringValue":{}}}}}"#,
            serde_json::to_string(v).unwrap()
        )
    }

    fn claude(event: &str, ts_nanos: &str, attrs: &[(&str, &str)]) -> String {
        let attrs: Vec<String> = attrs.iter().map(|(k, v)| kv(k, v)).collect();
        format!(
            r#"{{"resourceLogs":[{{"resource":{{"attributes":[{},{}]}},"scopeLogs":[{{"scope":{{"name":"com.anthropic.claude_code.events"}},"logRecords":[{{"timeUnixNano":"{ts_nanos}","body":{{"stringValue":"{event}"}},"attributes":[{}]}}]}}]}}]}}"#,
            kv("service.name", "claude-code"),
            kv("host.name", "dev-7"),
            attrs.join(",")
        )
    }

    const CMD: &str = r#"{"bash_command":"kubectl","full_command":"kubectl create clusterrolebinding ops-admin --clusterrole=cluster-admin --user=alice"}"#;

    fn call(source: &str, decision: &str) -> Vec<Event> {
        let common = [
            ("session.id", "s-1"),
            ("user.email", "alice@example.com"),
            ("tool_use_id", "toolu_01"),
            ("tool_name", "Bash"),
        ];
        let mut dec = common.to_vec();
        dec.extend([("decision", decision), ("source", source)]);
        let mut res = common.to_vec();
        res.extend([
            ("success", "true"),
            ("duration_ms", "1500"),
            ("tool_parameters", CMD),
        ]);
        decode(&[
            &claude("claude_code.tool_decision", "1773824880000000000", &dec),
            &claude("claude_code.tool_result", "1773824882000000000", &res),
        ])
    }

    #[test]
    fn a_claude_code_call_allowed_by_a_rule_is_unverified_advice() {
        let ev = call("config", "accept");
        assert_eq!(ev.len(), 2, "{ev:?}");
        let Body::Advice(a) = &ev[0].body else {
            panic!("{ev:?}")
        };
        assert_eq!(ev[0].ts, Ts(1_773_824_880_000));
        assert_eq!(a.advice_id, "otel:claude-code:s-1:toolu_01");
        assert_eq!(a.requested_by.as_deref(), Some("alice@example.com"));
        assert_eq!(
            a.recommends,
            [Recommendation {
                resource: "k8s/cluster/ClusterRole/cluster-admin".into(),
                role: Some("cluster-admin".into()),
                grantee: Some("alice".into()),
            }]
        );
        assert!(a.summary.as_deref().unwrap().contains("source config"));
        assert!(matches!(&ev[1].body, Body::AdviceViewed(v) if v.principal == "alice@example.com"));
        for source in ["classifier", "hook", "user_permanent"] {
            assert!(
                !call(source, "accept")
                    .iter()
                    .any(|e| matches!(e.body, Body::AdviceVerified(_))),
                "{source}"
            );
        }
    }

    #[test]
    fn the_engineer_approving_the_call_verifies_it_and_a_rejected_call_never_ran() {
        let ev = call("user_temporary", "accept");
        assert_eq!(ev.len(), 3);
        assert!(
            matches!(&ev[2].body, Body::AdviceVerified(v) if v.verifier == "alice@example.com" && v.advice_id == "otel:claude-code:s-1:toolu_01")
        );
        assert_eq!(ev[2].ts, ev[0].ts);
        assert!(call("user_reject", "reject").is_empty());
    }

    #[test]
    fn codex_decisions_by_the_user_verify() {
        let line = |event: &str, attrs: &[(&str, &str)]| {
            let mut a = vec![
                ("event.name", event),
                ("conversation.id", "c-9"),
                ("call_id", "call_1"),
                ("user.email", "bob@example.com"),
            ];
            a.extend_from_slice(attrs);
            claude("", "1773824880000000000", &a).replace("\"body\":{\"stringValue\":\"\"},", "")
        };
        let args = r#"{"command":["bash","-lc","aws iam attach-user-policy --user-name bob --policy-arn arn:aws:iam::aws:policy/AdministratorAccess"]}"#;
        for (source, decision, verified) in [
            ("User", "approved", true),
            ("Config", "approved", false),
            ("AutomatedReviewer", "approved", false),
            ("User", "approved_for_session", false),
        ] {
            let ev = decode(&[
                &line(
                    "codex.tool_decision",
                    &[
                        ("tool_name", "shell"),
                        ("decision", decision),
                        ("source", source),
                    ],
                ),
                &line(
                    "codex.tool_result",
                    &[
                        ("tool_name", "shell"),
                        ("arguments", args),
                        ("duration_ms", "20"),
                    ],
                ),
            ]);
            let Body::Advice(a) = &ev[0].body else {
                panic!("{ev:?}")
            };
            assert_eq!(a.agent, "claude-code");
            assert_eq!(a.recommends[0].grantee.as_deref(), Some("bob"));
            assert_eq!(
                ev.iter().any(|e| matches!(e.body, Body::AdviceVerified(_))),
                verified,
                "{source} {decision}"
            );
        }
    }

    #[test]
    fn genai_tool_spans_take_the_agent_and_person_from_the_agent_span() {
        let line = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"ops-assistant"}}]},"scopeSpans":[{"spans":[
            {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","parentSpanId":"eee19b7ec3c1b173","name":"execute_tool run_shell","kind":1,"startTimeUnixNano":"1773824890000000000","endTimeUnixNano":"1773824891000000000","attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"execute_tool"}},{"key":"gen_ai.tool.name","value":{"stringValue":"run_shell"}},{"key":"gen_ai.tool.call.id","value":{"stringValue":"call_7"}},{"key":"gen_ai.tool.call.arguments","value":{"stringValue":"{\"command\":\"gcloud projects add-iam-policy-binding prod-1 --member=user:carol@example.com --role=roles/owner\"}"}}]},
            {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b173","name":"invoke_agent OpsBot","kind":1,"startTimeUnixNano":"1773824880000000000","endTimeUnixNano":"1773824899000000000","attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"invoke_agent"}},{"key":"gen_ai.agent.name","value":{"stringValue":"OpsBot"}},{"key":"gen_ai.conversation.id","value":{"stringValue":"conv-3"}},{"key":"enduser.id","value":{"stringValue":"carol"}}]}
        ]}]}]}"#.replace('\n', "");
        let ev = decode(&[&line]);
        assert_eq!(ev.len(), 2, "{ev:?}");
        let Body::Advice(a) = &ev[0].body else {
            panic!()
        };
        assert_eq!(
            (a.agent.as_str(), a.advice_id.as_str()),
            ("OpsBot", "otel:OpsBot:conv-3:call_7")
        );
        assert_eq!(a.requested_by.as_deref(), Some("carol"));
        assert_eq!(a.recommends[0].resource, "gcp/projects/prod-1");
        assert_eq!(ev[0].ts, Ts(1_773_824_890_000));
    }

    #[test]
    fn a_tool_span_waits_for_its_agent_span_from_a_later_batch() {
        let span = |name: &str, op: &str, attrs: &str| {
            format!(
                r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"{name}","startTimeUnixNano":"1773824890000000000","attributes":[{{"key":"gen_ai.operation.name","value":{{"stringValue":"{op}"}}}}{attrs}]}}]}}]}}]}}"#
            )
        };
        let tool = span(
            "execute_tool",
            "execute_tool",
            r#",{"key":"gen_ai.tool.name","value":{"stringValue":"shell"}},{"key":"gen_ai.tool.call.arguments","value":{"stringValue":"{\"command\":\"kubectl create clusterrolebinding x --clusterrole=admin --user=eve\"}"}}"#,
        );
        let agent = span(
            "invoke_agent",
            "invoke_agent",
            r#",{"key":"gen_ai.agent.name","value":{"stringValue":"OpsBot"}},{"key":"user.id","value":{"stringValue":"dana"}}"#,
        );
        let mut d = OtlpDecoder {
            mapper: Mapper::new(Arc::new(OtlpOptions::default())),
        };
        let out = d.decode_owned(tool.as_bytes()).unwrap();
        assert!(out.is_empty(), "held until the agent span: {out:?}");
        let out = d.decode_owned(agent.as_bytes()).unwrap();
        let Body::Advice(a) = &out[0].body else {
            panic!("{out:?}")
        };
        assert_eq!(
            (a.agent.as_str(), a.requested_by.as_deref()),
            ("OpsBot", Some("dana"))
        );
    }

    #[test]
    fn a_published_post_is_published_advice_recommending_the_commands_in_it() {
        let args = r##"{"channel":"#infra-help","text":"To fix it, run:\n```\nkubectl create rolebinding view-all --clusterrole=view --group=eng-all -n prod\n```\nThat's all."}"##;
        let ev = decode(&[&claude(
            "claude_code.tool_result",
            "1773824880000000000",
            &[
                ("session.id", "s-2"),
                ("user.email", "bob@example.com"),
                ("tool_use_id", "t2"),
                ("tool_name", "mcp__slack__slack_post_message"),
                ("decision", "accept"),
                ("source", "config"),
                ("tool_parameters", args),
            ],
        )]);
        assert_eq!(ev.len(), 1, "{ev:?}");
        let Body::Advice(a) = &ev[0].body else {
            panic!()
        };
        assert!(a.published);
        assert_eq!(a.channel.as_deref(), Some("#infra-help"));
        assert_eq!(a.recommends[0].resource, "k8s/prod/ClusterRole/view");
        assert_eq!(a.recommends[0].grantee.as_deref(), Some("eng-all"));
    }

    #[test]
    fn other_records_are_skipped_and_non_otlp_is_an_error() {
        assert!(
            decode(&[&claude(
                "claude_code.user_prompt",
                "1773824880000000000",
                &[("prompt", "hi")]
            )])
            .is_empty()
        );
        // A call that grants nothing is no advice.
        let ls = r#"{"full_command":"ls -la"}"#;
        assert!(
            decode(&[&claude(
                "claude_code.tool_result",
                "1773824880000000000",
                &[("tool_name", "Bash"), ("tool_parameters", ls)]
            )])
            .is_empty()
        );
        let mut d = OtlpDecoder::default();
        let mut out = Events::default();
        assert!(matches!(
            d.decode(br#"{"a":1}"#, &mut out),
            Err(DecodeError::Unrecognized { .. })
        ));
        assert!(matches!(
            d.decode(br#"{"resourceLogs":[{"scopeLogs":5}]}"#, &mut out),
            Err(DecodeError::Json(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn no_input_panics_the_decoder(s in "\\PC{0,300}") {
            let mut d = OtlpDecoder::default();
            let _ = d.decode(s.as_bytes(), &mut crate::event::Events::default());
            let wrapped = format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"timeUnixNano":"1","body":{{"stringValue":"claude_code.tool_result"}},"attributes":[{{"key":"tool_parameters","value":{{"stringValue":{}}}}}]}}]}}]}}]}}"#, serde_json::to_string(&s).unwrap());
            let _ = d.decode(wrapped.as_bytes(), &mut crate::event::Events::default());
        }
    }
}
