//! `reachguard gate claude-code`: a Claude Code `PreToolUse` hook.
//!
//! Claude Code runs the hook before each tool call, with the call as JSON on
//! stdin (`hook_event_name`, `session_id`, `tool_name`, `tool_input` with the
//! Bash `command`, ...). For a Bash command that grants privileges, read by
//! the same parser as agent telemetry ([`crate::commands`]), the hook asks
//! the daemon (`POST /api/v1/decide`, gate `claude-code`) about each grant
//! and prints
//!
//! ```json
//! {"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"ask","permissionDecisionReason":"..."}}
//! ```
//!
//! with `ask` (Claude Code then asks the person, whose approval is the
//! verification) or `deny`. It never prints `allow`: that would skip Claude
//! Code's own permission rules, which are not the hook's to waive. For every
//! other command, and every other tool, it prints nothing and exits 0, before
//! any network or configuration is touched. A grant command it cannot read,
//! or a daemon it cannot reach, is answered `ask`.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::{Decision, GateKind, Proposal};

/// The daemon's address when `--server` is not given: `[server] listen`'s
/// default.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:9464";

/// How long the hook waits for the daemon before answering `ask`.
const TIMEOUT: Duration = Duration::from_secs(3);

/// The hook's options.
#[derive(Debug, Clone, Default)]
pub struct HookArgs {
    /// The daemon's base URL.
    pub server: Option<String>,
    /// A file holding the API's bearer token.
    pub token_file: Option<PathBuf>,
    /// The person the agent works for; `git config user.email`, else `$USER`.
    pub principal: Option<String>,
}

/// The part of the hook input the gate reads.
#[derive(Debug, Deserialize)]
struct HookInput {
    #[serde(default)]
    tool_name: String,
    #[serde(default)]
    tool_input: serde_json::Value,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    cwd: Option<PathBuf>,
}

/// Runs the hook on `input` (stdin); returns what to print, if anything.
/// The exit status is always 0: the answer is in the output.
pub fn run(args: &HookArgs, mut input: impl Read) -> Option<String> {
    let mut text = String::new();
    // Input that is not text is not a call the gate can read.
    input.read_to_string(&mut text).ok()?;
    let call: HookInput = serde_json::from_str(&text).ok()?;
    if call.tool_name != "Bash" {
        return None;
    }
    let command = call.tool_input.get("command")?.as_str()?;
    let parsed = crate::commands::parse(command, &crate::commands::Context::default());
    if parsed.grants.is_empty() && parsed.unparsed.is_empty() {
        return None;
    }
    // A grant command from here on: only now is anything else looked up.
    let principal = args
        .principal
        .clone()
        .or_else(|| git_email(call.cwd.as_deref()))
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned());
    let mut decision = Decision::Allow;
    let mut reasons: Vec<String> = Vec::new();
    for u in &parsed.unparsed {
        decision = Decision::Ask;
        reasons.push(format!("a grant command reachguard cannot read ({u})"));
    }
    let proposals: Vec<Proposal> = parsed
        .grants
        .iter()
        .map(|g| Proposal {
            gate: GateKind::ClaudeCode,
            actor: principal.clone(),
            // A command that leaves the grantee open grants to its caller.
            grantee: g.grantee.clone().unwrap_or_else(|| principal.clone()),
            resource: g.resource.clone(),
            role: g.role.clone(),
            agent: Some("claude-code".to_owned()),
            session: call.session_id.clone(),
            command: Some(command.to_owned()),
            ..Proposal::default()
        })
        .collect();
    if !proposals.is_empty() {
        match ask_daemon(args, &proposals) {
            Ok(outcomes) => {
                for o in outcomes {
                    if o.decision != Decision::Allow {
                        reasons.extend(o.reasons);
                    }
                    decision = decision.max(o.decision);
                }
            }
            Err(why) => {
                decision = Decision::Ask;
                reasons.push(format!(
                    "this command grants privileges and reachguard could not be asked ({why})"
                ));
            }
        }
    }
    if decision == Decision::Allow {
        return None;
    }
    let reason = format!("reachguard: {}", reasons.join("; "));
    Some(
        json!({
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": decision.as_str(),
                "permissionDecisionReason": reason,
            }
        })
        .to_string(),
    )
}

/// `git config user.email` in `cwd`, if git knows one.
fn git_email(cwd: Option<&std::path::Path>) -> Option<String> {
    let mut cmd = std::process::Command::new("git");
    cmd.args(["config", "user.email"]);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let out = cmd.stderr(std::process::Stdio::null()).output().ok()?;
    let email = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !email.is_empty()).then_some(email)
}

/// Asks the daemon about each proposal, in order.
fn ask_daemon(args: &HookArgs, proposals: &[Proposal]) -> Result<Vec<Answer>, String> {
    let token = match &args.token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read {}: {e}", f.display()))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let base = args.server.as_deref().unwrap_or(DEFAULT_SERVER);
    let url = format!("{}/api/v1/decide", base.trim_end_matches('/'));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(proposals.len());
        for p in proposals {
            let mut req = client.post(&url).json(p);
            if let Some(t) = &token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.map_err(|e| e.to_string())?;
            let status = resp.status();
            if !status.is_success() {
                return Err(format!("{url} answered {status}"));
            }
            out.push(resp.json::<Answer>().await.map_err(|e| e.to_string())?);
        }
        Ok(out)
    })
}

/// The daemon's answer, as far as the hook reads it.
#[derive(Debug, Deserialize)]
struct Answer {
    decision: Decision,
    #[serde(default)]
    reasons: Vec<String>,
}
