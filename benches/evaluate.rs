//! Detection quality on labelled synthetic organisations.
//!
//! `cargo bench --bench evaluate` prints recall, false alarms per 1,000
//! engineer-days and time to detect for several organisation sizes and seeds.
//! Sizes and seeds can be given: `cargo bench --bench evaluate -- 300,1500 1,2,3`.

use reachguard::synth::{OrgSpec, eval, generate};

fn list(arg: Option<String>, default: &[u64]) -> Vec<u64> {
    arg.filter(|a| !a.starts_with('-'))
        .map(|a| {
            a.split(',')
                .map(|x| x.trim().parse().expect("a number"))
                .collect()
        })
        .unwrap_or_else(|| default.to_vec())
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let sizes = list(args.next(), &[300, 1500]);
    let seeds = list(args.next(), &[1, 2, 3]);
    let (mut detected, mut cases, mut alarms, mut days) = (0usize, 0usize, 0usize, 0.0f64);
    let mut worst_sudden = std::time::Duration::ZERO;
    for &engineers in &sizes {
        for &seed in &seeds {
            let org = generate(OrgSpec {
                engineers: engineers as usize,
                history_days: 14,
                eval_days: 14,
                seed,
                inject: true,
            });
            let r = eval::evaluate(&org);
            println!("seed {seed}: {r}");
            for k in r.kinds.values() {
                detected += k.detected;
                cases += k.cases;
            }
            if let Some(t) = r
                .kinds
                .get(&reachguard::synth::CaseKind::SuddenExpansion)
                .and_then(|k| k.max_ttd())
            {
                worst_sudden = worst_sudden.max(t);
            }
            alarms += r.false_alarms.len();
            days += r.engineer_days;
        }
    }
    println!(
        "overall: recall {:.3} ({detected}/{cases}), false alarms {alarms} = {:.2} per 1,000 engineer-days, worst time to detect a sudden expansion {:.0}s",
        detected as f64 / cases.max(1) as f64,
        alarms as f64 * 1000.0 / days.max(1.0),
        worst_sudden.as_secs_f64()
    );
}
