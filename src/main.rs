//! The `reachguard` command: parse arguments, load config, set up logging, call
//! the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use reachguard::config::{Config, LogFormat};
use reachguard::decode::Format;

/// mimalloc: events are decoded on one thread and freed on another, which the
/// system allocator handles slowly; measured in `benches/pipeline.rs`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "reachguard",
    version,
    about = "Flags sudden privilege expansions and revokes grants traced to unverified AI-agent advice."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The daemon: follow sources, detect, respond, serve /metrics.
    Run {
        /// Config file (TOML); embedded defaults when omitted.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The same pipeline over files in event time, then exit. Findings on stdout,
    /// a JSON summary as the last line of stderr.
    Replay {
        /// Config file (TOML); embedded defaults when omitted.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Decide revocations but call no hook.
        #[arg(long)]
        dry_run: bool,
        /// Format of files that match no `[[sources]]` path of the config.
        #[arg(long, default_value = "native")]
        format: Format,
        /// Files to replay; `-` reads stdin.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Learn baselines from historical logs into the state dir.
    Train {
        /// Config file (TOML); embedded defaults when omitted.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Format of files that match no `[[sources]]` path of the config.
        #[arg(long, default_value = "native")]
        format: Format,
        /// Print what was learned as JSON.
        #[arg(long)]
        json: bool,
        /// History files; `-` reads stdin.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// One engineer's baseline, peer group, held and exercised reach, findings.
    Explain {
        /// Config file (TOML); embedded defaults when omitted.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// The engineer.
        principal: String,
    },
    /// A self-contained run of the incident reachguard exists for; no set-up.
    Demo {
        /// Keep the daemon and its incident page up afterwards and print the
        /// page's address; Ctrl-C stops it.
        #[arg(long)]
        serve: bool,
    },
    /// Validate a config file and report the exact problem.
    CheckConfig {
        /// Config file (TOML); checks the embedded defaults when omitted.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Confirmation gates run outside the daemon.
    Gate {
        #[command(subcommand)]
        gate: GateCommand,
    },
    /// Undo a revocation through the restore hooks; journaled with who and why.
    Restore {
        /// Config file (TOML); embedded defaults when omitted.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The grant whose revocation to undo.
        grant_id: String,
        /// Why (recorded in the journal and sent to the hooks).
        #[arg(long)]
        reason: Option<String>,
        /// The person it is done for, if not the OS user running this.
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Subcommand)]
enum GateCommand {
    /// A Claude Code PreToolUse hook: reads the tool call on stdin and, for a
    /// command that grants privileges, answers ask or deny as the daemon
    /// judges it; prints nothing for anything else.
    ClaudeCode {
        /// The daemon's base URL.
        #[arg(long, default_value = reachguard::gate::claude_code::DEFAULT_SERVER)]
        server: String,
        /// A file holding the API's bearer token.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// The person the agent works for (default: `git config user.email`,
        /// else `$USER`); the daemon resolves it through `[identities.aliases]`.
        #[arg(long)]
        principal: Option<String>,
    },
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { config } => {
            let cfg = Config::load(config.as_deref())?;
            init_logging(cfg.log_format, &cfg.log_level);
            runtime()?.block_on(async {
                if cfg.cluster.is_some() {
                    let handle = reachguard::cluster::start(cfg).await?;
                    handle.run_until(shutdown_signal()).await?;
                    return Ok(ExitCode::SUCCESS);
                }
                let handle = reachguard::daemon::start(cfg).await?;
                shutdown_signal().await;
                handle.shutdown();
                handle.wait().await?;
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Replay {
            config,
            dry_run,
            format,
            files,
        } => {
            let cfg = Config::load(config.as_deref())?;
            // Replay keeps stderr for warnings and the final summary line.
            init_logging(
                cfg.log_format,
                if cfg.log_level == "info" {
                    "warn"
                } else {
                    &cfg.log_level
                },
            );
            let opts = reachguard::replay::Options { dry_run, format };
            let summary = runtime()?.block_on(async {
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::new(stdout.lock());
                reachguard::replay::replay(&cfg, &files, &opts, &mut out).await
            })?;
            eprintln!("{}", serde_json::json!({ "summary": summary }));
            Ok(ExitCode::SUCCESS)
        }
        Command::Train {
            config,
            format,
            json,
            files,
        } => {
            let cfg = Config::load(config.as_deref())?;
            init_logging(
                cfg.log_format,
                if cfg.log_level == "info" {
                    "warn"
                } else {
                    &cfg.log_level
                },
            );
            let learned = reachguard::train::train(&cfg, &files, format)?;
            if json {
                println!("{}", serde_json::to_string(&learned)?);
            } else {
                println!("{learned}");
                println!("saved to {}", cfg.state_dir.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain {
            config,
            json,
            principal,
        } => {
            let cfg = Config::load(config.as_deref())?;
            init_logging(cfg.log_format, "warn");
            let e = reachguard::explain::explain(&cfg, &principal)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&e)?);
            } else {
                print!("{e}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Gate {
            gate:
                GateCommand::ClaudeCode {
                    server,
                    token_file,
                    principal,
                },
        } => {
            let args = reachguard::gate::claude_code::HookArgs {
                server: Some(server),
                token_file,
                principal,
            };
            if let Some(out) = reachguard::gate::claude_code::run(&args, std::io::stdin().lock()) {
                println!("{out}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { serve } => {
            init_logging(LogFormat::Text, "warn");
            runtime()?.block_on(reachguard::demo::run(&mut std::io::stdout(), serve))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { config } => {
            let cfg = match Config::load(config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let problems = cfg.runtime_problems();
            for p in &problems {
                eprintln!("error: {p}");
            }
            if !problems.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
            println!(
                "config ok: {} source(s), {} hook(s), mode {:?}, state dir {}, listening on {}",
                cfg.sources.len(),
                cfg.response.hooks.len(),
                cfg.response.mode,
                cfg.state_dir.display(),
                cfg.listen
            );
            if let Some(a) = cfg.otlp.listen {
                println!("otlp: OTLP/HTTP on {a}");
            }
            if let Some(a) = cfg.otlp.grpc_listen {
                println!("otlp: OTLP/gRPC on {a}");
            }
            if cfg.identities.has_aliases() {
                println!("identities: aliases set");
            }
            if let Some(c) = &cfg.cluster {
                println!(
                    "cluster: instance {}, {} partitions, NATS {} (input from the raw stream, see docs/cluster.md)",
                    c.instance, c.partitions, c.url
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore {
            config,
            grant_id,
            reason,
            by,
        } => {
            let cfg = Config::load(config.as_deref())?;
            init_logging(cfg.log_format, "warn");
            let requester = reachguard::respond::restore::Requester::current(by);
            let done = runtime()?.block_on(reachguard::respond::restore::restore(
                &cfg.response.restore_hooks,
                &cfg.state_dir,
                &grant_id,
                &requester,
                reason.as_deref(),
            ))?;
            println!(
                "restored grant {} for {} ({} hook attempt(s), idempotency key {})",
                done.grant_id, done.requester, done.attempts, done.key
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
