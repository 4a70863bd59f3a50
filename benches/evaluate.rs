//! Detection quality on labelled organisations from two generators.
//!
//! `cargo bench --bench evaluate` prints, per generator, a table of recall,
//! revocation recall and wrong revocations, false alarms per 1,000
//! engineer-days, the worst time to detect a sudden expansion and a slow
//! exploration, and findings naming transfers, new hires and engineers on
//! call, for several organisation sizes and seeds. `synth` is the generator
//! the defaults were tuned on; `independent` one written from its own
//! specification. Arguments:
//! `cargo bench --bench evaluate -- [--generator synth|independent|both] [SIZES] [SEEDS]`,
//! e.g. `-- --generator both 300,1500,3000 1,2,3`.

use std::time::Duration;

use reachguard::synth::{CaseKind, Org, OrgSpec, eval, generate, independent};

fn list(arg: Option<&String>, default: &[u64]) -> Vec<u64> {
    arg.map(|a| {
        a.split(',')
            .map(|x| x.trim().parse().expect("a comma-separated list of numbers"))
            .collect()
    })
    .unwrap_or_else(|| default.to_vec())
}

fn org(generator: &str, engineers: usize, seed: u64) -> Org {
    match generator {
        "synth" => generate(OrgSpec {
            engineers,
            history_days: 14,
            eval_days: 14,
            seed,
            inject: true,
        }),
        _ => {
            let g = independent::generate(independent::Spec {
                engineers,
                history_days: 14,
                eval_days: 14,
                seed,
                keep_lines: false,
            });
            assert_eq!(g.decode_errors, 0, "every generated line decodes");
            g.org
        }
    }
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.0}s", d.as_secs_f64()))
}

fn run(generator: &str, sizes: &[u64], seeds: &[u64]) {
    println!("\n## generator: {generator}\n");
    println!(
        "| engineers | seed | engineer-days | recall | revoked | wrong revocations | left alone | false alarms (>= medium) | per 1,000 engineer-days | worst sudden expansion | worst slow exploration | transfers / new hires / on call flagged |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let (mut detected, mut cases, mut alarms, mut days) = (0usize, 0usize, 0usize, 0.0f64);
    let (mut revoked, mut incidents, mut wrong, mut disturbed, mut controls) = (0, 0, 0, 0, 0);
    let (mut sudden, mut slow) = (Duration::ZERO, Duration::ZERO);
    let mut people = (0, 0, 0);
    for &engineers in sizes {
        for &seed in seeds {
            let o = org(generator, engineers as usize, seed);
            let r = eval::evaluate(&o);
            eprintln!("{generator} seed {seed}: {r}");
            let (d, c) = r
                .kinds
                .values()
                .fold((0, 0), |(d, c), k| (d + k.detected, c + k.cases));
            let (la_ok, la) = r
                .left_alone
                .values()
                .fold((0, 0), |(o, n), k| (o + k.cases - k.disturbed, n + k.cases));
            let s = r.max_ttd(CaseKind::SuddenExpansion);
            let x = r.max_ttd(CaseKind::SlowExploration);
            println!(
                "| {engineers} | {seed} | {:.0} | {d}/{c} | {}/{} | {} | {la_ok}/{la} | {} | {:.2} | {} | {} | {} / {} / {} |",
                r.engineer_days,
                r.incidents_revoked,
                r.incidents,
                r.wrong_revocations.len(),
                r.false_alarms.len(),
                r.false_alarm_rate(),
                secs(s),
                secs(x),
                r.transfer_alarms,
                r.new_hire_alarms,
                r.on_call_alarms
            );
            detected += d;
            cases += c;
            revoked += r.incidents_revoked;
            incidents += r.incidents;
            wrong += r.wrong_revocations.len();
            disturbed += la - la_ok;
            controls += la;
            alarms += r.false_alarms.len();
            days += r.engineer_days;
            sudden = sudden.max(s.unwrap_or_default());
            slow = slow.max(x.unwrap_or_default());
            people.0 += r.transfer_alarms;
            people.1 += r.new_hire_alarms;
            people.2 += r.on_call_alarms;
        }
    }
    println!(
        "| all | | {days:.0} | {detected}/{cases} | {revoked}/{incidents} | {wrong} | {}/{controls} | {alarms} | {:.3} | {} | {} | {} / {} / {} |",
        controls - disturbed,
        alarms as f64 * 1000.0 / days.max(1.0),
        secs(Some(sudden)),
        secs(Some(slow)),
        people.0,
        people.1,
        people.2
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut generator = "both".to_owned();
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--generator" {
            generator = it.next().expect("--generator takes a name").clone();
        } else if let Some(g) = a.strip_prefix("--generator=") {
            generator = g.to_owned();
        } else if !a.starts_with('-') {
            rest.push(a.clone());
        }
    }
    let sizes = list(rest.first(), &[300, 1500, 3000]);
    let seeds = list(rest.get(1), &[1, 2, 3]);
    let generators: &[&str] = match generator.as_str() {
        "synth" => &["synth"],
        "independent" => &["independent"],
        "both" => &["synth", "independent"],
        other => panic!("unknown generator {other:?} (synth, independent or both)"),
    };
    for g in generators {
        run(g, &sizes, &seeds);
    }
}
