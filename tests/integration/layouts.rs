//! The JSON decoders read a record the same whatever its layout: every JSON
//! line of the public log corpus (`tests/corpus`), re-laid out the way other
//! writers emit it (keys in another order, spaces after `:` and `,`, `/`
//! escaped as `\/`), decodes to the same events as the original. The decoder
//! benchmark (`benches/decoders.rs`) measures the same re-laid lines.

use std::path::{Path, PathBuf};

use reachguard::decode::Format;

#[path = "../../benches/decoders/relayout.rs"]
mod relayout;

fn lines(format: Format) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(format.as_str().replace('-', "_"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".jsonl")
                && !name.ends_with(".index.jsonl")
                && !name.ends_with(".labels.jsonl")
        })
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read(f)
                .unwrap()
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn re_laid_out_lines_decode_to_the_same_events() {
    for format in [
        Format::Cloudtrail,
        Format::K8sAudit,
        Format::Okta,
        Format::GcpAudit,
        Format::GithubAudit,
    ] {
        let lines = lines(format);
        assert!(lines.len() > 50, "{format}: only {} lines", lines.len());
        relayout::check_same_events(format, &lines);
    }
}

#[test]
fn a_re_laid_out_line_is_the_same_json_in_another_layout() {
    let line = br#"{"a":"x/y","b":{"c":[1,2.5,"z"],"d":null,"e":true},"f":"q\"r"}"#;
    let original: serde_json::Value = serde_json::from_slice(line).unwrap();
    let mut orders = std::collections::HashSet::new();
    for salt in 0..8 {
        let v = relayout::relayout(line, salt).unwrap();
        let text = String::from_utf8(v.clone()).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&v).unwrap(),
            original,
            "{text}"
        );
        assert!(text.contains("\": "), "{text}");
        assert_eq!(text.contains("\\/"), salt % 2 == 1, "{text}");
        orders.insert(text.replace("\\/", "/"));
    }
    // The key order changes from line to line.
    assert!(orders.len() > 2, "{orders:?}");
    assert!(relayout::relayout(b"not json", 0).is_none());
}
