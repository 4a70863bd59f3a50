//! Scale-out on NATS JetStream: a real `nats-server -js`, three real
//! `reachguard run` instances with `[cluster]`, a real webhook; one instance
//! killed with SIGKILL while it is calling the webhook, mid-stream.
//!
//! Compared with single-node `reachguard replay` runs of the same events:
//! - the revocations (webhook calls by grant) of a whole-organisation replay,
//!   each made by the cluster exactly once;
//! - the findings that depend only on who holds what and on advice
//!   (`unverified_agent_grant`, `unreviewed_agent_publish`) of the same replay;
//! - every finding of one single-node replay per partition (the control events
//!   plus that partition's access events): the detection semantics the
//!   cluster promises (docs/cluster.md), each published exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures_util::StreamExt;
use reachguard::cluster::nats::live_entries;
use reachguard::cluster::revoke::Record;
use reachguard::cluster::route::{designated, partition_of};
use reachguard::cluster::snapshot::Progress;
use reachguard::event::{Body, Event, Ts};
use reachguard::synth::{OrgSpec, generate};

use crate::helpers::*;

const PARTITIONS: u32 = 6;
/// Webhook calls held unanswered until the victim is dead (more than the
/// scenario makes).
const HELD: usize = 64;
const PREFIX: &str = "reachguard";

/// A `nats-server -js` on a free 127.0.0.1 port with a temporary store,
/// killed when dropped.
pub struct Nats {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

/// The nats-server program: `REACHGUARD_NATS_SERVER` when set, else on the
/// PATH or where Debian puts it.
pub fn nats_server() -> Option<String> {
    let candidates = match std::env::var("REACHGUARD_NATS_SERVER") {
        Ok(p) => vec![p],
        Err(_) => vec!["nats-server".into(), "/usr/sbin/nats-server".into()],
    };
    candidates.into_iter().find(|p| {
        Command::new(p)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Whether the test can run: prints the skip line and returns false when
/// nats-server is missing, unless `REACHGUARD_REQUIRE_NATS=1` makes that a
/// failure.
pub fn nats_available(test: &str) -> bool {
    let found = nats_server().is_some();
    if !found {
        assert!(
            std::env::var("REACHGUARD_REQUIRE_NATS").as_deref() != Ok("1"),
            "nats-server is not installed and REACHGUARD_REQUIRE_NATS=1"
        );
        say_skipped(
            test,
            "nats-server not installed (apt-get install nats-server)",
        );
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Nats {
    pub fn start() -> Nats {
        Nats::start_with(&[])
    }

    /// With extra server arguments (e.g. `--auth TOKEN`).
    pub fn start_with(extra: &[&str]) -> Nats {
        let dir = tempfile::tempdir().unwrap();
        for attempt in 0..5 {
            let port = free_port();
            let log = dir.path().join(format!("nats-{attempt}.log"));
            let mut child = Command::new(nats_server().expect("nats-server installed"))
                .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
                .arg(dir.path().join("store"))
                .args(extra)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    // Most likely the port was taken between probe and start.
                    eprintln!(
                        "nats-server exited ({status}); retrying on another port:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                    break;
                }
                let log_text = std::fs::read_to_string(&log).unwrap_or_default();
                if TcpStream::connect(addr).is_ok() && log_text.contains("Server is ready") {
                    return Nats {
                        child,
                        url: format!("nats://127.0.0.1:{port}"),
                        _dir: dir,
                    };
                }
                assert!(
                    Instant::now() < deadline,
                    "nats-server did not become ready:\n{log_text}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("nats-server could not start on a free port");
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A NATS client for the test's own publishing and reading.
pub struct Client {
    pub rt: tokio::runtime::Runtime,
    pub js: jetstream::Context,
}

impl Client {
    pub fn connect(url: &str) -> Client {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let js = rt.block_on(async {
            let c = async_nats::connect(url).await.unwrap();
            jetstream::new(c)
        });
        Client { rt, js }
    }

    /// Publishes native lines to the raw stream; returns the last sequence.
    /// The stream is created by the instances, so it must exist first.
    pub fn publish_lines(&self, lines: &[String]) -> u64 {
        self.rt.block_on(async {
            let mut acks = Vec::with_capacity(lines.len());
            for l in lines {
                acks.push(
                    self.js
                        .publish(
                            format!("{PREFIX}.raw.native.test"),
                            l.clone().into_bytes().into(),
                        )
                        .await
                        .unwrap(),
                );
            }
            let mut last = 0;
            for a in acks {
                last = a.await.unwrap().sequence;
            }
            last
        })
    }

    fn kv(&self, bucket: &str) -> jetstream::kv::Store {
        self.rt
            .block_on(self.js.get_key_value(bucket))
            .unwrap_or_else(|e| panic!("bucket {bucket}: {e}"))
    }

    /// The raw stream's last sequence.
    pub fn raw_last(&self) -> u64 {
        self.rt.block_on(async {
            let s = self.js.get_stream("REACHGUARD_RAW").await.unwrap();
            s.get_info().await.unwrap().state.last_sequence
        })
    }

    /// Key -> value of every live key of a bucket.
    pub fn kv_all(&self, bucket: &str) -> BTreeMap<String, Vec<u8>> {
        let kv = self.kv(bucket);
        self.rt
            .block_on(live_entries(&kv))
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.value.to_vec()))
            .collect()
    }

    /// Owner of each partition lease.
    pub fn leases(&self) -> BTreeMap<u32, String> {
        self.kv_all("REACHGUARD_leases")
            .into_iter()
            .filter_map(|(k, v)| {
                Some((
                    k.strip_prefix("p.")?.parse().ok()?,
                    String::from_utf8(v).ok()?,
                ))
            })
            .collect()
    }

    /// Every partition's recorded progress.
    pub fn progress(&self) -> BTreeMap<u32, Progress> {
        self.kv_all("REACHGUARD_progress")
            .into_iter()
            .filter_map(|(k, v)| {
                Some((
                    k.strip_prefix("p.")?.parse().ok()?,
                    serde_json::from_slice(&v).ok()?,
                ))
            })
            .collect()
    }

    /// Every revocation record, by grant.
    pub fn revocations(&self) -> BTreeMap<String, Record> {
        self.kv_all("REACHGUARD_revocations")
            .into_values()
            .map(|v| serde_json::from_slice::<Record>(&v).unwrap())
            .map(|r| (r.grant_id(), r))
            .collect()
    }

    /// Every message of the findings stream: (subject, finding).
    pub fn findings(&self) -> Vec<(String, serde_json::Value)> {
        self.rt.block_on(async {
            let stream = self.js.get_stream("REACHGUARD_FINDINGS").await.unwrap();
            let last = stream.get_info().await.unwrap().state.last_sequence;
            let mut out = Vec::new();
            if last == 0 {
                return out;
            }
            let consumer = stream
                .create_consumer(jetstream::consumer::pull::OrderedConfig::default())
                .await
                .unwrap();
            let mut msgs = consumer.messages().await.unwrap();
            while let Some(m) = msgs.next().await {
                let m = m.unwrap();
                out.push((
                    m.subject.to_string(),
                    serde_json::from_slice(&m.payload).unwrap(),
                ));
                if m.info().unwrap().stream_sequence >= last {
                    break;
                }
            }
            out
        })
    }
}

pub fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

/// `reachguard replay` of `file` with `config`; its findings.
pub fn replay(config: &Path, file: &Path, dry_run: bool) -> Vec<serde_json::Value> {
    let mut cmd = Command::new(BIN);
    cmd.args(["replay", "--config"]).arg(config);
    if dry_run {
        cmd.arg("--dry-run");
    }
    let out = cmd
        .arg(file)
        .env("REACHGUARD_HOOK_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The organisation: a small synthetic one, plus agents making grants and
/// memberships that cite unverified advice, spread over the evaluation period
/// and over every partition. Also returns the middle of the evaluation period.
pub fn scenario() -> (Vec<Event>, String, Ts) {
    let org = generate(OrgSpec {
        engineers: 24,
        history_days: 4,
        eval_days: 2,
        seed: 11,
        inject: true,
    });
    let mut events = org.events.clone();
    let span = org.eval_end.0 - org.eval_start.0;
    let line = |s: String| {
        use reachguard::decode::Decoder;
        reachguard::decode::NativeDecoder
            .decode_owned(s.as_bytes())
            .unwrap()
            .remove(0)
    };
    for i in 0..12i64 {
        let ts = Ts(org.eval_start.0 + span * (i + 1) / 14);
        events.push(line(format!(
            r#"{{"ts":"{ts}","type":"grant","grant_id":"g-agent-{i}","actor":"agent:ops-bot","grantee":"contractor-{i}","resource":"vault/secrets-{i}","role":"admin"}}"#
        )));
    }
    for i in 0..3i64 {
        let ts = Ts(org.eval_start.0 + span * (2 * i + 1) / 7);
        events.push(line(format!(
            r#"{{"ts":"{ts}","type":"advice","advice_id":"adv-m{i}","agent":"agent:kb","published":true,"recommends":[{{"resource":"sre-{i}","grantee":"intern-{i}"}}]}}"#
        )));
        events.push(line(format!(
            r#"{{"ts":"{}","type":"membership","actor":"erin","group":"sre-{i}","member":"intern-{i}","op":"add","reference":"as adv-m{i} says"}}"#,
            Ts(ts.0 + 60_000)
        )));
    }
    events.sort_by_key(|e| e.ts);
    let catalogue: String = org
        .sensitivity
        .iter()
        .map(|(p, t)| format!("\"{}\" = \"{}\"\n", p.as_str(), t.as_str()))
        .collect();
    (events, catalogue, Ts(org.eval_start.0 + span / 2))
}

fn base_config(dir: &Path, catalogue: &str, hook_url: &str) -> String {
    format!(
        "[state]\ndir = \"{}\"\n\n[server]\nlisten = \"127.0.0.1:0\"\n\n[sensitivity]\n{catalogue}\n[detection]\nprovisioners = [\"hr-system\"]\n\n[response]\nmax_revocations_per_hour = 1000\n\n[[response.hooks]]\ntype = \"webhook\"\nurl = \"{hook_url}\"\nsecret_env = \"REACHGUARD_HOOK_SECRET\"\ntimeout = \"30s\"\n",
        dir.join("state").display()
    )
}

pub fn cluster_config(
    dir: &Path,
    catalogue: &str,
    hook_url: &str,
    url: &str,
    name: &str,
) -> String {
    format!(
        "{}\n[cluster]\nurl = \"{url}\"\ninstance = \"{name}\"\npartitions = {PARTITIONS}\nlease_ttl = \"4s\"\nsnapshot_interval = \"500ms\"\ningest_ack_wait = \"3s\"\n",
        base_config(dir, catalogue, hook_url)
    )
}

/// Who reports the findings of a control event, by the grant or advice id they carry.
fn designations(events: &[Event]) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for e in events {
        let id = match &e.body {
            Body::Grant(g) => g.grant_id.clone(),
            Body::Membership(m) => m
                .grant_id
                .clone()
                .unwrap_or_else(|| format!("membership:{}:{}", m.group, m.member)),
            Body::Advice(a) => a.advice_id.clone(),
            _ => continue,
        };
        out.insert(id, designated(e.into(), PARTITIONS));
    }
    out
}

fn key(f: &serde_json::Value) -> (String, String) {
    (
        f["finding_id"].as_str().unwrap().to_owned(),
        f["kind"].as_str().unwrap().to_owned(),
    )
}

fn is_model_driven(kind: &str) -> bool {
    kind == "unverified_agent_grant" || kind == "unreviewed_agent_publish"
}

#[test]
fn three_instances_find_and_revoke_what_single_node_replays_do_and_a_killed_one_loses_and_doubles_nothing()
 {
    if !nats_available("three_instances_find_and_revoke_what_single_node_replays_do") {
        return;
    }
    let started = Instant::now();
    let (events, catalogue, middle) = scenario();
    let lines: Vec<String> = events.iter().map(Event::to_native_json).collect();
    let dir = tempfile::tempdir().unwrap();

    // --- The references: single-node replays of the same events.
    let ref_hook = Webhook::start();
    let ref_dir = dir.path().join("reference");
    std::fs::create_dir_all(&ref_dir).unwrap();
    let ref_cfg = ref_dir.join("reachguard.toml");
    std::fs::write(&ref_cfg, base_config(&ref_dir, &catalogue, &ref_hook.url())).unwrap();
    let all = ref_dir.join("all.jsonl");
    write_lines(&all, &lines);
    let whole = replay(&ref_cfg, &all, false);
    let revoked: BTreeSet<String> = ref_hook.calls().iter().map(Received::grant_id).collect();
    assert_eq!(
        ref_hook.calls().len(),
        revoked.len(),
        "the reference revokes each grant once"
    );
    assert!(
        revoked.len() >= 15,
        "the scenario revokes many grants: {revoked:?}"
    );
    let designated_to = designations(&events);
    let mut expected: BTreeSet<(String, String)> = BTreeSet::new();
    for p in 0..PARTITIONS {
        let own: Vec<String> = events
            .iter()
            .zip(&lines)
            .filter(|(e, _)| match &e.body {
                Body::Access(a) => partition_of(&a.principal, PARTITIONS) == p,
                _ => true,
            })
            .map(|(_, l)| l.clone())
            .collect();
        let file = ref_dir.join(format!("partition-{p}.jsonl"));
        write_lines(&file, &own);
        for f in replay(&ref_cfg, &file, true) {
            let id = f["grant_id"].as_str().or(f["advice_id"].as_str());
            let mine = f["kind"] == "reach_expansion"
                || id.is_some_and(|id| designated_to.get(id) == Some(&p));
            if mine {
                expected.insert(key(&f));
            }
        }
    }
    let whole_model: BTreeSet<(String, String)> = whole
        .iter()
        .map(key)
        .filter(|(_, k)| is_model_driven(k))
        .collect();
    assert_eq!(
        expected
            .iter()
            .filter(|(_, k)| is_model_driven(k))
            .cloned()
            .collect::<BTreeSet<_>>(),
        whole_model,
        "model-driven findings do not depend on partitioning"
    );
    assert!(
        expected.iter().any(|(_, k)| k == "reach_expansion"),
        "the scenario has reach expansions: {expected:?}"
    );

    // --- The cluster.
    let nats = Nats::start();
    // Every call is held unanswered until the victim is dead, so that none
    // of its revocations can have been answered but not recorded: each of
    // them must be resumed by another instance, and the calls each instance
    // makes are told apart by the path of its hook URL.
    let hook = Webhook::scripted(&[Reply::Hold; HELD]);
    let mut instances: Vec<Daemon> = (1..=3)
        .map(|i| {
            let d = dir.path().join(format!("rg-{i}"));
            std::fs::create_dir_all(&d).unwrap();
            let url = hook.url_for(&format!("/revoke/rg-{i}"));
            Daemon::start(
                &d,
                &cluster_config(&d, &catalogue, &url, &nats.url, &format!("rg-{i}")),
            )
        })
        .collect();
    let client = Client::connect(&nats.url);
    let phase = |what: &str| eprintln!("{:>8.2?} {what}", started.elapsed());
    phase("instances started");
    wait_until(
        Duration::from_secs(60),
        "three instances to own two partitions each",
        || {
            let l = client.leases();
            l.len() == PARTITIONS as usize
                && (1..=3).all(|i| l.values().filter(|o| **o == format!("rg-{i}")).count() == 2)
        },
    );
    phase("partitions balanced");

    // The first half runs to the middle of the evaluation period, far enough
    // for revocations to be under way; the kill comes while the second half
    // is being published and ingested.
    let half = events.partition_point(|e| e.ts < middle);
    let last_first = client.publish_lines(&lines[..half]);
    wait_until(Duration::from_secs(60), "the first revocation call", || {
        !hook.calls().is_empty()
    });
    let victim = hook.calls()[0].path.clone();
    let victim_name = victim.strip_prefix("/revoke/").unwrap().to_owned();
    let victim_idx: usize = victim_name.strip_prefix("rg-").unwrap().parse().unwrap();
    phase("first revocation call held");
    let last = std::thread::scope(|scope| {
        let publisher = scope.spawn(|| client.publish_lines(&lines[half..]));
        wait_until(
            Duration::from_secs(30),
            "the second half to start arriving",
            || client.raw_last() > last_first,
        );
        // SIGKILL: no shutdown code runs; its leases and heartbeat expire.
        instances[victim_idx - 1].kill_9();
        phase("victim killed mid-stream");
        for _ in 0..HELD {
            hook.release();
        }
        publisher.join().unwrap()
    });
    let complete = |below: u64| {
        let p = client.progress();
        p.len() == PARTITIONS as usize && p.values().all(|x| x.complete_below > below)
    };
    wait_until(
        Duration::from_secs(90),
        "every line to be applied by every partition and every revocation to finish",
        || {
            let recs = client.revocations();
            complete(last)
                && revoked
                    .iter()
                    .all(|g| recs.get(g).is_some_and(|r| r.published))
        },
    );
    phase("everything applied after the kill");
    let leases = client.leases();
    assert!(
        leases.values().all(|o| *o != victim_name),
        "the victim's partitions were taken over: {leases:?}"
    );

    // --- Revocations: the reference's set, each called successfully once.
    let calls = hook.calls();
    assert!(
        calls.len() < HELD,
        "no call beyond the held ones was scripted"
    );
    for c in &calls {
        assert!(c.signature_valid(SECRET), "signed");
        assert_eq!(
            c.idempotency_key.as_deref(),
            Some(format!("reachguard-revoke-{}", c.grant_id()).as_str())
        );
    }
    // The victim's calls were never answered while it lived; every other
    // instance's call was answered 200 once released.
    let (lost, answered): (Vec<&Received>, Vec<&Received>) =
        calls.iter().partition(|c| c.path == victim);
    let mut successful: BTreeMap<String, usize> = BTreeMap::new();
    for c in &answered {
        *successful.entry(c.grant_id()).or_default() += 1;
    }
    assert_eq!(
        successful.keys().cloned().collect::<BTreeSet<_>>(),
        revoked,
        "the cluster revoked exactly what the single node revoked"
    );
    assert!(
        successful.values().all(|n| *n == 1),
        "each grant exactly one successful call: {successful:?}"
    );
    assert!(!lost.is_empty());
    let recs = client.revocations();
    for c in &lost {
        let g = c.grant_id();
        let resumed: Vec<&&Received> = answered.iter().filter(|a| a.grant_id() == g).collect();
        assert_eq!(resumed.len(), 1, "{g}, cut off by the kill, resumed once");
        assert_eq!(resumed[0].idempotency_key, c.idempotency_key);
        let outcome = recs[&g].outcome.as_ref().unwrap();
        assert_ne!(outcome.instance, victim_name, "{g} resumed by a new owner");
        assert_eq!(
            recs[&g].instance, victim_name,
            "{g}'s intent was the victim's"
        );
    }
    assert!(recs.values().all(|r| {
        r.outcome
            .as_ref()
            .is_some_and(|o| o.status == reachguard::finding::ActionStatus::Executed)
    }));
    assert_eq!(
        recs.keys().cloned().collect::<BTreeSet<_>>(),
        revoked,
        "no record for anything else"
    );

    // --- Findings: each published once, the per-partition replays' set.
    let published = client.findings();
    let mut seen = BTreeMap::new();
    for (subject, f) in &published {
        let k = key(f);
        assert!(
            seen.insert(k.clone(), subject.clone()).is_none(),
            "finding {k:?} published twice"
        );
    }
    let got: BTreeSet<(String, String)> = seen.keys().cloned().collect();
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "findings differ from the per-partition replays: missing {missing:?}, extra {extra:?}"
    );
    for (_, f) in &published {
        if f["kind"] == "unverified_agent_grant" {
            let g = f["grant_id"].as_str().unwrap();
            if revoked.contains(g) {
                assert_eq!(f["action"]["status"], "executed", "{f}");
            }
        }
    }
    // The cluster judges each engineer's reach against the population of
    // their partition (docs/cluster.md); for this organisation that changes
    // no verdict, so its findings are also exactly the whole-organisation
    // replay's.
    let whole_all: BTreeSet<(String, String)> = whole.iter().map(key).collect();
    assert_eq!(
        got, whole_all,
        "findings differ from the whole-organisation replay"
    );
    println!(
        "{} lines, {} findings ({} model-driven, {} expansion), {} revocations ({} cut off by the kill and resumed), {:?}",
        lines.len(),
        got.len(),
        whole_model.len(),
        got.len() - whole_model.len(),
        revoked.len(),
        lost.len(),
        started.elapsed()
    );
    for (i, d) in instances.iter_mut().enumerate() {
        if i + 1 != victim_idx {
            assert!(d.sigterm().success(), "{}", d.log());
        }
    }
}

#[test]
fn an_instance_authenticates_with_the_token_its_config_names_and_refuses_to_start_without_it() {
    if !nats_available("an_instance_authenticates_with_the_token_its_config_names") {
        return;
    }
    let nats = Nats::start_with(&["--auth", "s3cret-token"]);
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, token: Option<&str>| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        let cfg = d.join("reachguard.toml");
        std::fs::write(
            &cfg,
            format!(
                "[state]\ndir = \"{}\"\n\n[server]\nlisten = \"127.0.0.1:0\"\n\n[cluster]\nurl = \"{}\"\ninstance = \"{name}\"\ntoken_env = \"RG_TEST_NATS_TOKEN\"\nlease_ttl = \"2s\"\n",
                d.join("state").display(),
                nats.url
            ),
        )
        .unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["run", "--config"])
            .arg(&cfg)
            .env_remove("RG_TEST_NATS_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(t) = token {
            cmd.env("RG_TEST_NATS_TOKEN", t);
        }
        (cmd.spawn().unwrap(), d.join("state").join("http.addr"))
    };

    let (mut good, addr) = run("rg-good", Some("s3cret-token"));
    wait_until(Duration::from_secs(20), "the instance to start", || {
        addr.exists() || good.try_wait().unwrap().is_some()
    });
    assert!(good.try_wait().unwrap().is_none(), "it runs");
    let client = async_nats_client_with_token(&nats.url, "s3cret-token");
    wait_until(
        Duration::from_secs(20),
        "the instance to take every partition",
        || client.leases().len() == 12,
    );
    good.kill().unwrap();
    good.wait().unwrap();

    for (name, token) in [("rg-wrong", Some("guess")), ("rg-none", None)] {
        let (child, _) = run(name, token);
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "{name} must not start");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("cannot connect to NATS") || err.contains("RG_TEST_NATS_TOKEN"),
            "{name}: {err}"
        );
    }
}

fn async_nats_client_with_token(url: &str, token: &str) -> Client {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let js = rt.block_on(async {
        let c = async_nats::ConnectOptions::new()
            .token(token.to_owned())
            .connect(url)
            .await
            .unwrap();
        jetstream::new(c)
    });
    Client { rt, js }
}
