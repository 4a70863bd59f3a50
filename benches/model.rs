//! The model update and detection, alone, on a 1,500-engineer organisation
//! with two weeks of history already learned:
//!
//! - `model/known_access`: an access to something the engineer uses (the
//!   baseline update, nothing to judge), the bulk of any log;
//! - `detect/new_resource`: an access to a resource new to the engineer, judged
//!   against their peers and their normal window;
//! - `detect/group_grant`: a grant of a critical system to a team, judged
//!   over everyone it affects before it is applied.
//!
//! `cargo bench --bench model` (Criterion options after `--`).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::fmt::Write;
use std::time::{Duration, Instant};

use criterion::Criterion;
use reachguard::detect::{Engine, EngineConfig, Origin};
use reachguard::event::{Body, Event, Ts};
use reachguard::synth::{OrgSpec, generate};

const ENGINEERS: usize = 1500;
const DAY: i64 = 86_400_000;

fn config() -> reachguard::config::Config {
    reachguard::config::Config::parse(
        "[sensitivity]\n\"internal/*\" = \"critical\"\n\"vault/*\" = \"critical\"\n\"prod/*\" = \"high\"\n\
         [detection]\nprovisioners = [\"hr-system\"]\n",
    )
    .expect("the bench's config is valid")
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let org = generate(OrgSpec {
        engineers: ENGINEERS,
        history_days: 14,
        eval_days: 0,
        seed: 1,
        inject: false,
    });
    let cfg = EngineConfig::from_config(&config());
    let mut engine = Engine::new(Default::default(), Default::default(), &cfg);
    for ev in &org.events {
        engine.observe(ev, Origin::TRUSTED);
    }
    let end = org.events.last().map_or(0, |e| e.ts.0);
    let mut accesses: Vec<Event> = org
        .events
        .iter()
        .filter(|e| matches!(e.body, Body::Access(_)))
        .cloned()
        .collect();
    let engineers: Vec<String> = engine
        .reach()
        .principals
        .names()
        .map(String::from)
        .collect();

    // The history's accesses again, a millisecond apart from its end on.
    let mut i = 0usize;
    c.bench_function("model/known_access", |b| {
        b.iter(|| {
            let n = accesses.len();
            let ev = &mut accesses[i % n];
            i += 1;
            ev.ts = Ts(end + i as i64);
            engine.observe(ev, Origin::TRUSTED)
        })
    });

    // A resource nobody used before, by each engineer in turn, a minute apart
    // (so that most are judged without a finding's quiet period). The model
    // is restored after each round of the organisation, so that engineers do
    // not pile up new resources over millions of iterations.
    let mut ev = Event::access(Ts(0), "", "");
    c.bench_function("detect/new_resource", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let mut e = engine.clone();
                let round = (iters - done).min(engineers.len() as u64);
                let started = Instant::now();
                for (k, who) in engineers.iter().take(round as usize).enumerate() {
                    ev.ts = Ts(end + DAY + k as i64 * 60_000);
                    if let Body::Access(a) = &mut ev.body {
                        a.principal.clone_from(who);
                        a.resource.clear();
                        write!(a.resource, "svc/new-{k}").expect("writing to a string");
                    }
                    std::hint::black_box(e.observe(&ev, Origin::TRUSTED));
                }
                spent += started.elapsed();
                done += round;
            }
            spent
        })
    });

    let team: Vec<String> = engine
        .model()
        .members_of("grp/t000")
        .map(String::from)
        .collect();
    assert!(!team.is_empty(), "the generated organisation has team t000");
    c.bench_function("detect/group_grant", |b| {
        b.iter(|| {
            let (expansion, model) = engine.expansion_mut();
            expansion.on_grant(
                "bench-grant",
                "someone",
                "vault/payroll to grp/t000",
                &team,
                &["vault/payroll"],
                Ts(end + 2 * DAY),
                model,
                &cfg.sensitivity,
            )
        })
    });
    c.final_summary();
}
