//! Decoder throughput, one benchmark per format, each foreign format beside
//! its floor.
//!
//! Each format decodes the lines of its files in the public log corpus
//! (`tests/corpus`, or `REACHGUARD_CORPUS`), repeated to about 4 MB; the
//! native format decodes `examples/incident.jsonl`. For the JSON formats every
//! corpus line is followed by the same record laid out the way another writer
//! would emit it ([`relayout`]: keys in another order, a space after every `:`
//! and `,`, and on every other line `/` written as `\/`), so that nothing is
//! measured only on the corpus' own layout; setting up, the bench checks that
//! each re-laid line decodes to the same events as its original.
//!
//! The floor of a format is the least work that yields, borrowed, the fields
//! its decoder reads, over exactly the same bytes:
//!
//! - JSON formats: each line checked as UTF-8 and parsed by
//!   `serde_json::from_str` (faster than `from_slice`, which checks every
//!   string it reads) into a
//!   `#[derive(Deserialize)]` struct holding exactly the fields the decoder's
//!   first pass reads, nested as in the record, strings as borrowed
//!   `Cow<str>` (owned only when escaped), numbers as numbers, nested JSON the
//!   decoder keeps raw as `&RawValue`, and a field the corpus holds with more
//!   than one JSON type as `&RawValue` (parsed into its struct when the
//!   decoder reads inside it). A CloudTrail `CloudTrailEvent` string is parsed
//!   as the record it holds, as the decoder does.
//! - `linux-auth` (syslog): the line split at ASCII spaces by position into
//!   timestamp (one RFC 3339 token or `Mmm dd HH:MM:SS`), host and program tag,
//!   the rest being the message, all `&str`; an auditd line (`type=` /
//!   `node=`) split into its `key=value` tokens. The floor neither converts
//!   the timestamp nor reads the message.
//! - `web-access` (NCSA): `memchr` for the `[` of the time and the `]` after
//!   it, the tokens before it split at spaces (host, ident and user by
//!   position from the end, a virtual host before them), the request between
//!   the next two quotes split into method and path, and the status token
//!   after it, all `&str`; the timestamp is not converted.
//!
//! After criterion's report two tables follow: MB/s and lines/s of every
//! decoder (criterion's means), and per foreign format its ns per line, its
//! floor's and the ratio (`x floor`). The second table comes from rounds that
//! alternate decoder and floor over the input, keeping the fastest of each:
//! on a shared machine the other load slows some rounds and never speeds one
//! up, and alternating exposes both sides to the same load, where criterion
//! measures one benchmark after the other.
//!
//! `cargo bench --bench decoders -- --warm-up-time 1 --measurement-time 3`

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use reachguard::decode::Format;

#[path = "decoders/floor.rs"]
mod floor;
#[path = "decoders/relayout.rs"]
mod relayout;

/// Repeat the sample until the input is at least this large.
const TARGET_BYTES: usize = 4 << 20;

/// The formats measured against a floor.
const FOREIGN: [Format; 7] = [
    Format::Cloudtrail,
    Format::K8sAudit,
    Format::Okta,
    Format::GcpAudit,
    Format::GithubAudit,
    Format::LinuxAuth,
    Format::WebAccess,
];

struct Input {
    format: Format,
    /// The lines, newline-separated, repeated.
    data: Vec<u8>,
    lines: usize,
}

fn corpus_dir() -> PathBuf {
    std::env::var_os("REACHGUARD_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus"))
}

/// The corpus directory and files of each format (sidecars and notices left out).
fn sample(format: Format) -> Vec<PathBuf> {
    if format == Format::Native {
        return vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/incident.jsonl")];
    }
    let dir = corpus_dir().join(format.as_str().replace('-', "_"));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            !(name.ends_with(".index.jsonl")
                || name.ends_with(".labels.jsonl")
                || name.ends_with(".txt")
                || name.contains("malformed"))
        })
        .collect();
    files.sort();
    files
}

/// Whether the format's lines are JSON (and are re-laid out).
fn is_json(format: Format) -> bool {
    !matches!(format, Format::LinuxAuth | Format::WebAccess)
}

fn input(format: Format) -> Option<Input> {
    let mut originals = Vec::new();
    for f in sample(format) {
        let text = std::fs::read(&f).ok()?;
        originals.extend(
            text.split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec),
        );
    }
    if originals.is_empty() {
        return None;
    }
    let mut lines = Vec::with_capacity(originals.len() * 2);
    if is_json(format) && FOREIGN.contains(&format) {
        for (i, line) in originals.iter().enumerate() {
            lines.push(line.clone());
            if let Some(v) = relayout::relayout(line, i as u64) {
                lines.push(v);
            }
        }
        relayout::check_same_events(format, &originals);
    } else {
        lines = originals;
    }
    let mut one = Vec::new();
    for l in &lines {
        one.extend_from_slice(l);
        one.push(b'\n');
    }
    let copies = TARGET_BYTES.div_ceil(one.len());
    Some(Input {
        format,
        data: one.repeat(copies),
        lines: lines.len() * copies,
    })
}

/// The lines of `data`, found with `memchr` so that splitting costs both sides
/// of a comparison little.
fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let line = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or_default();
        Some(line)
    })
}

fn decode_all(format: Format, data: &[u8]) -> usize {
    let mut d = format.decoder();
    let mut out = reachguard::event::Events::default();
    let mut n = 0;
    for line in lines(data) {
        out.clear();
        let _ = d.decode(line, &mut out);
        n += out.len();
    }
    n
}

fn floor_all(format: Format, data: &[u8]) -> usize {
    let f = floor::of(format).expect("a floor for every foreign format");
    lines(data).map(f).sum()
}

/// Rounds of decoder and floor in the `x floor` table.
const ROUNDS: usize = 30;

/// The fastest of [`ROUNDS`] alternating rounds of the decoder and of the
/// floor over the input, in nanoseconds.
fn fastest(i: &Input) -> (f64, f64) {
    let mut best = (f64::MAX, f64::MAX);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        black_box(decode_all(i.format, black_box(&i.data)));
        best.0 = best.0.min(t.elapsed().as_secs_f64() * 1e9);
        let t = Instant::now();
        black_box(floor_all(i.format, black_box(&i.data)));
        best.1 = best.1.min(t.elapsed().as_secs_f64() * 1e9);
    }
    best
}

/// Criterion's mean time per iteration, in nanoseconds, from its estimates file.
fn mean_ns(group: &str, format: Format) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = target
        .join("criterion")
        .join(group)
        .join(format.as_str())
        .join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let inputs: Vec<Input> = Format::ALL.into_iter().filter_map(input).collect();
    if inputs.len() < Format::ALL.len() {
        eprintln!(
            "corpus not found at {} (set REACHGUARD_CORPUS): only {} format(s) benchmarked",
            corpus_dir().display(),
            inputs.len()
        );
    }
    for i in inputs.iter().filter(|i| FOREIGN.contains(&i.format)) {
        // A floor that rejects lines would be cheaper than reading them.
        let failed = lines(&i.data)
            .filter(|l| floor::of(i.format).is_some_and(|f| f(l) == 0))
            .count();
        assert_eq!(
            failed, 0,
            "{}: the floor read nothing of {failed} lines",
            i.format
        );
    }

    let mut group = c.benchmark_group("decoders");
    // Each iteration decodes megabytes: a few flat samples say enough.
    group.sampling_mode(SamplingMode::Flat).sample_size(20);
    for i in &inputs {
        group.throughput(Throughput::Bytes(i.data.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(i.format.as_str()),
            &i.data,
            |b, data| b.iter(|| decode_all(i.format, black_box(data))),
        );
    }
    group.finish();
    let mut group = c.benchmark_group("floors");
    group.sampling_mode(SamplingMode::Flat).sample_size(20);
    for i in inputs.iter().filter(|i| FOREIGN.contains(&i.format)) {
        group.throughput(Throughput::Bytes(i.data.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(i.format.as_str()),
            &i.data,
            |b, data| b.iter(|| floor_all(i.format, black_box(data))),
        );
    }
    group.finish();
    c.final_summary();

    println!("\n| format | input | MB/s | lines/s |");
    println!("|---|---|---:|---:|");
    for i in &inputs {
        let Some(ns) = mean_ns("decoders", i.format) else {
            continue;
        };
        let secs = ns / 1e9;
        println!(
            "| `{}` | {:.1} MB, {} lines | {:.0} | {:.0} |",
            i.format,
            i.data.len() as f64 / 1e6,
            i.lines,
            i.data.len() as f64 / 1e6 / secs,
            i.lines as f64 / secs
        );
    }

    println!("\n| format | lines | decode ns/line | floor ns/line | x floor |");
    println!("|---|---:|---:|---:|---:|");
    for i in inputs.iter().filter(|i| FOREIGN.contains(&i.format)) {
        let (d, f) = fastest(i);
        let per = |ns: f64| ns / i.lines as f64;
        println!(
            "| `{}` | {} | {:.0} | {:.0} | {:.2} |",
            i.format,
            i.lines,
            per(d),
            per(f),
            d / f
        );
    }
}
