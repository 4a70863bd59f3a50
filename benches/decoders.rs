//! Decoder throughput, one benchmark per format.
//!
//! Each format decodes the lines of its files in the public log corpus
//! (`tests/corpus`, or `REACHGUARD_CORPUS`), repeated to about 4 MB; the
//! native format decodes `examples/incident.jsonl`. After criterion's report a
//! table gives MB/s and lines/s from its mean estimates.
//!
//! `cargo bench --bench decoders -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use reachguard::decode::Format;

/// Repeat the sample until the input is at least this large.
const TARGET_BYTES: usize = 4 << 20;

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

fn input(format: Format) -> Option<Input> {
    let mut one = Vec::new();
    let mut lines = 0;
    for f in sample(format) {
        let text = std::fs::read(&f).ok()?;
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            one.extend_from_slice(line);
            one.push(b'\n');
            lines += 1;
        }
    }
    if one.is_empty() {
        return None;
    }
    let copies = TARGET_BYTES.div_ceil(one.len());
    Some(Input {
        format,
        data: one.repeat(copies),
        lines: lines * copies,
    })
}

fn decode_all(format: Format, data: &[u8]) -> usize {
    let mut d = format.decoder();
    let mut out = reachguard::event::Events::default();
    let mut n = 0;
    for line in data.split(|b| *b == b'\n') {
        out.clear();
        let _ = d.decode(line, &mut out);
        n += out.len();
    }
    n
}

/// Criterion's mean time per iteration, in nanoseconds, from its estimates file.
fn mean_ns(format: Format) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = target
        .join("criterion/decoders")
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
    c.final_summary();

    println!("\n| format | input | MB/s | lines/s |");
    println!("|---|---|---:|---:|");
    for i in &inputs {
        let Some(ns) = mean_ns(i.format) else {
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
}
