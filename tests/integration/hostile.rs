//! Hostile input: property tests over arbitrary bytes and malformed documents
//! (stable Rust, proptest), and the classic nasty lines. Every case must end in
//! a counted error or skip: never a panic, never a revocation from nothing.

use proptest::prelude::*;
use reachguard::config::Config;
use reachguard::decode::{Decoder, Format, NativeDecoder};
use reachguard::detect::Origin;
use reachguard::metrics::Metrics;
use reachguard::pipeline::{Input, Pipeline, Resolved};

/// Cases per property: enough to shake out panics, quick enough for CI.
const CASES: u32 = 2000;

fn pipeline() -> Pipeline {
    let cfg = Config::default();
    let inputs = vec![Input {
        name: "fuzz".into(),
        format: reachguard::decode::Format::Native,
        origin: Origin::TRUSTED,
    }];
    Pipeline::new(
        &cfg,
        inputs,
        Default::default(),
        Default::default(),
        Metrics::new(&["fuzz".into()]),
        true,
    )
}

/// A JSON value built from the native schema's own keys and awkward values,
/// so generated documents reach deep into the decoder instead of failing at
/// the first brace.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        "\\PC{0,12}".prop_map(serde_json::Value::String),
        prop_oneof![
            Just("2026-03-18T09:07:02Z"),
            Just("+275760-09-13T00:00:00Z"),
            Just("0000-00-00T00:00:00Z"),
            Just("9999-12-31T23:59:60+14:00"),
            Just("grant"),
            Just("membership"),
            Just("advice"),
            Just("agent:x"),
            Just("group"),
            Just("add"),
        ]
        .prop_map(|s| serde_json::Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("ts".to_owned()),
                    Just("type".to_owned()),
                    Just("grant_id".to_owned()),
                    Just("actor".to_owned()),
                    Just("actor_type".to_owned()),
                    Just("grantee".to_owned()),
                    Just("grantee_type".to_owned()),
                    Just("resource".to_owned()),
                    Just("recommends".to_owned()),
                    Just("published".to_owned()),
                    Just("op".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..8,
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_native_decoder(line in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = NativeDecoder.decode_owned(&line);
    }

    #[test]
    fn schema_shaped_documents_decode_or_fail_cleanly(v in json_value()) {
        let line = serde_json::to_vec(&v).unwrap();
        if let Ok(out) = NativeDecoder.decode_owned(&line) {
            // Whatever decoded writes back out and decodes to the same events.
            for e in &out {
                let again = e.to_native_json();
                let back = NativeDecoder.decode_owned(again.as_bytes()).unwrap();
                prop_assert_eq!(&back[0], e);
            }
        }
    }

    #[test]
    fn lines_that_do_not_decode_never_cause_a_finding_or_a_revocation(line in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut p = pipeline();
        let decodes = NativeDecoder.decode_owned(&line).is_ok_and(|p| !p.is_empty());
        let resolved = p.process_line(0, &line, false, &"fuzz:1", None);
        if !decodes {
            prop_assert!(resolved.is_empty());
            prop_assert_eq!(p.summary().decode_errors + p.summary().skipped, 1);
        }
        for r in &resolved {
            // A revocation needs a decoded privilege change behind it.
            if let Resolved::Revoke(job) = r {
                prop_assert!(decodes, "revocation from an undecodable line: {:?}", job.key);
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics_the_config_parser(text in "\\PC{0,400}") {
        let _ = Config::parse(&text);
    }

    #[test]
    fn mutated_example_configs_fail_with_a_message_or_parse(cut in 0usize..2000, insert in "\\PC{0,6}") {
        let example = include_str!("../../deploy/reachguard.example.toml");
        let at = example.char_indices().map(|(i, _)| i).nth(cut % example.chars().count()).unwrap_or(0);
        let text = format!("{}{insert}{}", &example[..at], &example[at..]);
        if let Err(msg) = Config::parse(&text) {
            prop_assert!(!msg.is_empty());
        }
    }
}

/// A JSON document built from the keys the foreign formats read (CloudTrail,
/// Kubernetes audit, Okta, GCP audit, GitHub audit), nested at random with
/// values of the wrong shape as often as the right one.
fn foreign_json() -> impl Strategy<Value = serde_json::Value> {
    let key = prop_oneof![
        Just("eventName"),
        Just("eventSource"),
        Just("eventTime"),
        Just("eventID"),
        Just("userIdentity"),
        Just("type"),
        Just("arn"),
        Just("userName"),
        Just("sessionContext"),
        Just("requestParameters"),
        Just("policyArn"),
        Just("groupName"),
        Just("errorCode"),
        Just("Records"),
        Just("kind"),
        Just("verb"),
        Just("user"),
        Just("username"),
        Just("objectRef"),
        Just("resource"),
        Just("namespace"),
        Just("requestObject"),
        Just("subjects"),
        Just("roleRef"),
        Just("responseStatus"),
        Just("code"),
        Just("auditID"),
        Just("stageTimestamp"),
        Just("eventType"),
        Just("published"),
        Just("actor"),
        Just("alternateId"),
        Just("target"),
        Just("outcome"),
        Just("result"),
        Just("protoPayload"),
        Just("methodName"),
        Just("authenticationInfo"),
        Just("principalEmail"),
        Just("serviceData"),
        Just("policyDelta"),
        Just("bindingDeltas"),
        Just("action"),
        Just("member"),
        Just("role"),
        Just("timestamp"),
        Just("created_at"),
        Just("@timestamp"),
        Just("org"),
        Just("repo"),
        Just("team"),
        Just("permission"),
    ]
    .prop_map(str::to_owned);
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        "\\PC{0,10}".prop_map(serde_json::Value::String),
        prop_oneof![
            Just("AttachUserPolicy"),
            Just("AddUserToGroup"),
            Just("iam.amazonaws.com"),
            Just("2026-03-18T09:07:02Z"),
            Just("create"),
            Just("rolebindings"),
            Just("ClusterRoleBinding"),
            Just("Group"),
            Just("ADD"),
            Just("SetIamPolicy"),
            Just("group.user_membership.add"),
            Just("org.add_member"),
            Just("SUCCESS"),
            Just("AssumedRole"),
            Just("arn:aws:iam::1:user/x"),
            Just("1700000000000"),
        ]
        .prop_map(|s| serde_json::Value::String(s.into())),
    ];
    leaf.prop_recursive(5, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..8)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Lines shaped like syslog auth and NCSA access logs, with random tails.
fn text_line() -> impl Strategy<Value = String> {
    let head = prop_oneof![
        Just("Mar 18 09:07:02 host sshd[42]: Accepted password for "),
        Just("Mar 18 09:07:02 host sudo: alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND="),
        Just("Mar 18 09:07:02 host usermod[7]: add '"),
        Just("Mar 18 09:07:02 host gpasswd[7]: user "),
        Just("type=USER_CMD msg=audit(1700000000.1:2): "),
        Just("127.0.0.1 - alice [18/Mar/2026:09:07:02 +0000] \""),
        Just("vhost:443 10.0.0.1 - bob [18/Mar/2026:09:07:02 +0000] \"GET "),
        Just(""),
    ];
    (head, "\\PC{0,80}").prop_map(|(h, t)| format!("{h}{t}"))
}

fn assert_no_revocation_without_a_decoded_change(
    format: Format,
    line: &[u8],
) -> Result<(), TestCaseError> {
    let cfg = Config::default();
    let inputs = vec![Input {
        name: "fuzz".into(),
        format,
        origin: Origin::TRUSTED,
    }];
    let mut p = Pipeline::new(
        &cfg,
        inputs,
        Default::default(),
        Default::default(),
        Metrics::new(&["fuzz".into()]),
        true,
    );
    let decodes = format
        .decoder()
        .decode_owned(line)
        .is_ok_and(|p| !p.is_empty());
    for r in p.process_line(0, line, false, &"fuzz:1", None) {
        if let Resolved::Revoke(job) = r {
            prop_assert!(
                decodes,
                "{format}: revocation from an undecodable line: {}",
                job.key
            );
        }
    }
    prop_assert_eq!(p.summary().lines, 1);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES / 2, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_decoder_survives_arbitrary_bytes(line in prop::collection::vec(any::<u8>(), 0..512)) {
        for format in Format::ALL {
            assert_no_revocation_without_a_decoded_change(format, &line)?;
        }
    }

    #[test]
    fn every_decoder_survives_foreign_shaped_json(v in foreign_json()) {
        let line = serde_json::to_vec(&v).unwrap();
        for format in Format::ALL {
            assert_no_revocation_without_a_decoded_change(format, &line)?;
        }
    }

    #[test]
    fn every_decoder_survives_log_shaped_text(line in text_line()) {
        for format in Format::ALL {
            assert_no_revocation_without_a_decoded_change(format, line.as_bytes())?;
        }
    }
}

#[test]
fn the_classic_nasty_lines_are_counted_not_fatal() {
    let mut p = pipeline();
    let deep = "[".repeat(100_000);
    let huge = format!(
        r#"{{"ts":"2026-03-18T09:07:02Z","type":"access","principal":"{}","resource":"r"}}"#,
        "x".repeat(4 << 20)
    );
    let nasty: Vec<Vec<u8>> = vec![
        vec![0xff, 0xfe, 0x00, 0x80],
        b"\x00\x00\x00\x00".to_vec(),
        deep.into_bytes(),
        br#"{"ts":"2026-03-18T09:07:02Z","type":"grant","grant_id":7,"actor":"a","grantee":"b","resource":"r"}"#.to_vec(),
        br#"{"ts":"+275760-09-13T00:00:00Z","type":"access","principal":"a","resource":"r"}"#.to_vec(),
        br#"{"ts":"-000001-01-01T00:00:00Z","type":"access","principal":"a","resource":"r"}"#.to_vec(),
        br#"{"ts":"2026-03-18T09:07:02Z","type":"advice","advice_id":"a","agent":"agent:x","recommends":"everything"}"#.to_vec(),
        br#"{"ts":"2026-03-18T09:07:02Z","type":"membership","actor":"a","group":"g","member":"m","op":"maybe"}"#.to_vec(),
        b"{\"ts\":\"2026-03-18T09:07:02Z\",\"type\":\"access\",\"principal\":\"a\",\"resource\":\"r\"".to_vec(),
    ];
    for line in &nasty {
        let r = p.process_line(0, line, false, &"nasty", None);
        assert!(r.is_empty());
    }
    // A multi-megabyte line that is valid JSON is an event like any other; the
    // file source cuts lines over max_line_bytes before they get here.
    p.process_line(0, huge.as_bytes(), false, &"huge", None);
    let s = p.summary();
    assert_eq!(s.lines, nasty.len() as u64 + 1);
    // Absurd timestamps (extended years, year -1) are not RFC 3339 either.
    assert_eq!(s.decode_errors, nasty.len() as u64);
    assert_eq!(s.events, 1);
    // An oversized line flagged by the source is an error, whatever it holds.
    assert!(p.process_line(0, b"{}", true, &"cut", None).is_empty());
    assert_eq!(p.summary().decode_errors, nasty.len() as u64 + 1);
}
