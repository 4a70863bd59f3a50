//! Cluster throughput: events per second end to end with 1, 2 and 3
//! instances on this machine.
//!
//! For each instance count: a fresh `nats-server -js` on a free 127.0.0.1 port
//! with a temporary store, that many `reachguard run` processes with
//! `[cluster]` (6 partitions, no hooks), and a generated organisation's lines
//! (native format) published to the raw stream as fast as the client can. The
//! clock runs from the first publish until the instances' `/metrics` count
//! every event as processed (`reachguard_events_total`, summed; each event is
//! counted once, by the partition that reports it), with the CPU seconds
//! nats-server, the instances and the publisher spent. It runs twice: with
//! one line per raw message, and with shippers batching 100 lines per message.
//! For comparison it also times a single-node `reachguard replay` of the same
//! file, which has no NATS in the way.
//!
//! `cargo bench --bench cluster_throughput` (optionally `-- LINES`, default
//! 100000). Skips with a message when nats-server is not installed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reachguard::event::Event;
use reachguard::synth::{OrgSpec, generate};

const BIN: &str = env!("CARGO_BIN_EXE_reachguard");
const PARTITIONS: u32 = 6;

/// A child process killed when dropped.
struct Proc(Child);

/// CPU seconds (user + system) a process has used so far, from /proc.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at state.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / clock_ticks()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The nats-server program: on the PATH, or where Debian puts it.
fn nats_server() -> Option<&'static str> {
    ["nats-server", "/usr/sbin/nats-server"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// Starts nats-server with JetStream on a free port; retries on a port clash.
fn start_nats(dir: &Path) -> (Proc, String) {
    for attempt in 0..5 {
        let port = free_port();
        let log = dir.join(format!("nats-{attempt}.log"));
        let mut child = Proc(
            Command::new(nats_server().expect("nats-server installed"))
                .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
                .arg(dir.join("store"))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("log"))
                .spawn()
                .expect("nats-server starts"),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if child.0.try_wait().expect("status").is_some() {
                break;
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Server is ready") && TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (child, format!("nats://127.0.0.1:{port}"));
            }
            assert!(Instant::now() < deadline, "nats-server not ready:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("nats-server could not start on a free port");
}

fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
}

/// Sum of `reachguard_events_total` over every type.
fn events_processed(addr: SocketAddr) -> u64 {
    http_get(addr, "/metrics")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("reachguard_events_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .sum::<f64>() as u64
}

struct Instance {
    proc: Proc,
    addr: SocketAddr,
}

fn start_instance(dir: &Path, url: &str, name: &str) -> Instance {
    let state = dir.join(name);
    std::fs::create_dir_all(&state).expect("state dir");
    let cfg = state.join("reachguard.toml");
    std::fs::write(
        &cfg,
        format!(
            "[state]\ndir = \"{}\"\n\n[server]\nlisten = \"127.0.0.1:0\"\n\n[log]\nlevel = \"warn\"\n\n[detection]\nprovisioners = [\"hr-system\"]\n\n[cluster]\nurl = \"{url}\"\ninstance = \"{name}\"\npartitions = {PARTITIONS}\nlease_ttl = \"2s\"\nsnapshot_interval = \"2s\"\n",
            state.display()
        ),
    )
    .expect("config");
    let proc = Proc(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(state.join("run.log")).expect("log"))
            .spawn()
            .expect("reachguard starts"),
    );
    let addr_file = state.join("http.addr");
    wait_until(Duration::from_secs(30), "the instance to start", || {
        addr_file.exists()
    });
    let addr = std::fs::read_to_string(&addr_file)
        .expect("address")
        .trim()
        .parse()
        .expect("socket address");
    Instance { proc, addr }
}

/// Owners of the partition leases.
async fn leases(js: &async_nats::jetstream::Context) -> Vec<String> {
    let Ok(kv) = js.get_key_value("REACHGUARD_leases").await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let Ok(mut keys) = kv.keys().await else {
        return out;
    };
    while let Some(Ok(k)) = keys.next().await {
        if let Ok(Some(v)) = kv.get(&k).await {
            out.push(String::from_utf8_lossy(&v).into_owned());
        }
    }
    out
}

/// One measurement: events/s end to end, lines/s published, and the CPU
/// seconds nats-server, the instances and the publisher spent meanwhile.
struct Measured {
    rate: f64,
    publish_rate: f64,
    cpu_nats: f64,
    cpu_instances: f64,
    cpu_publisher: f64,
}

/// Runs `instances` instances over `lines`, published `per_message` lines to
/// a raw message (shippers may batch lines, newline-separated).
fn run(
    rt: &tokio::runtime::Runtime,
    lines: &[String],
    instances: usize,
    per_message: usize,
) -> Measured {
    let dir = tempfile::tempdir().expect("temp dir");
    let (nats, url) = start_nats(dir.path());
    let started: Vec<Instance> = (1..=instances)
        .map(|i| start_instance(dir.path(), &url, &format!("rg-{i}")))
        .collect();
    let js = rt.block_on(async {
        async_nats::jetstream::new(async_nats::connect(&url).await.expect("connect"))
    });
    let share = PARTITIONS as usize / instances;
    wait_until(
        Duration::from_secs(60),
        "the partitions to be shared evenly",
        || {
            let l = rt.block_on(leases(&js));
            l.len() == PARTITIONS as usize
                && (1..=instances)
                    .all(|i| l.iter().filter(|o| **o == format!("rg-{i}")).count() == share)
        },
    );
    let pids: Vec<String> = started.iter().map(|i| i.proc.0.id().to_string()).collect();
    let nats_pid = nats.0.id().to_string();
    let cpu = || {
        (
            cpu_seconds(&nats_pid),
            pids.iter().map(|p| cpu_seconds(p)).sum::<f64>(),
            cpu_seconds("self"),
        )
    };
    let before = cpu();
    let t0 = Instant::now();
    rt.block_on(async {
        let mut acks = Vec::with_capacity(4096);
        for chunk in lines.chunks(per_message) {
            acks.push(
                js.publish(
                    "reachguard.raw.native.bench",
                    chunk.join("\n").into_bytes().into(),
                )
                .await
                .expect("publish"),
            );
            if acks.len() == 4096 {
                for a in acks.drain(..) {
                    a.await.expect("stored");
                }
            }
        }
        for a in acks {
            a.await.expect("stored");
        }
    });
    let published = t0.elapsed();
    let total = lines.len() as u64;
    wait_until(
        Duration::from_secs(600),
        "every event to be processed",
        || {
            let n = started
                .iter()
                .map(|i| events_processed(i.addr))
                .sum::<u64>();
            if std::env::var_os("BENCH_TRACE").is_some() {
                eprintln!("{:?} {n}", t0.elapsed());
            }
            n >= total
        },
    );
    let elapsed = t0.elapsed();
    let after = cpu();
    Measured {
        rate: total as f64 / elapsed.as_secs_f64(),
        publish_rate: total as f64 / published.as_secs_f64(),
        cpu_nats: after.0 - before.0,
        cpu_instances: after.1 - before.1,
        cpu_publisher: after.2 - before.2,
    }
}

fn replay_rate(file: &PathBuf, n: usize) -> f64 {
    let t0 = Instant::now();
    let out = Command::new(BIN)
        .args(["replay", "--dry-run"])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("replay runs");
    assert!(out.success());
    n as f64 / t0.elapsed().as_secs_f64()
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    if nats_server().is_none() {
        println!("skipped: nats-server not installed");
        return;
    }
    // An organisation big enough for `n` events; no injected cases (normal load).
    let days = 14;
    let org = generate(OrgSpec {
        engineers: (n / (days as usize * 16)).max(16),
        history_days: days,
        eval_days: 0,
        seed: 5,
        inject: false,
    });
    let lines: Vec<String> = org
        .events
        .iter()
        .take(n)
        .map(Event::to_native_json)
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").expect("events file");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "cluster throughput, {} events ({} engineers), {PARTITIONS} partitions, {cores} cores, nats-server and every instance on this machine",
        lines.len(),
        org.engineers
    );
    println!(
        "  single-node replay (no NATS): {:>9.0} events/s",
        replay_rate(&file, lines.len())
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let counts: Vec<usize> = std::env::var("BENCH_INSTANCES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2, 3]);
    for per_message in [1, 100] {
        println!("  shippers publishing {per_message} line(s) per message:");
        for &instances in &counts {
            let m = run(&rt, &lines, instances, per_message);
            println!(
                "    {instances} instance(s): {:>9.0} events/s end to end (publishing ran at {:.0} lines/s); CPU seconds: nats-server {:.1}, instances {:.1}, publisher {:.1}",
                m.rate, m.publish_rate, m.cpu_nats, m.cpu_instances, m.cpu_publisher
            );
        }
    }
}
