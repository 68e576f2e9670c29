use super::*;
use crate::config::ComponentId;
use crate::config::Validate;
use crate::delivery::Batch;
use crate::delivery::Ticket;
use crate::processors::redact::rules::BUILTINS;
use crate::processors::redact::rules::Matcher;
use crate::signal::fields::FieldVisitor;
use crate::signal::logs::{Entry, Stream};
use crate::signal::metrics::Series;
use crate::signal::{Labels, Logs, Metrics, Traces};
use crate::telemetry::Telemetry;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, KeyValueList, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};
use regex::Regex;

mod families;

fn redactor(toml_text: &str) -> Redactor {
    let raw: RawRedactConfig = toml::from_str(toml_text).unwrap();
    let config = raw.validate().unwrap_or_else(|e| panic!("{e:?}"));
    Redactor::new(
        &ComponentId::new("redact", "test"),
        &config,
        &Telemetry::new(),
    )
}

fn default() -> Redactor {
    redactor("")
}

/// The text after redaction (unchanged text comes back as it was).
fn text(r: &Redactor, input: &str) -> String {
    let mut open_keys = OpenKeys::default();
    let mut pass = Pass::new(r, &mut open_keys);
    if !pass.may_change(input.as_bytes()) {
        return input.to_string();
    }
    pass.text(input).unwrap_or_else(|| input.to_string())
}

fn pair(r: &Redactor, key: &str, value: &str) -> String {
    let mut open_keys = OpenKeys::default();
    let mut pass = Pass::new(r, &mut open_keys);
    pass.pair(key, value).unwrap_or_else(|| value.to_string())
}

/// Real-format secrets (test values, never live ones) in the contexts they
/// turn up in, with what the redacted text must read.
/// Real-format secrets with their redacted form, and look-alikes that must
/// pass unchanged: shared with `tests/e2e_redaction.rs`.
#[derive(serde::Deserialize)]
struct Corpus {
    secrets: Vec<Redacted>,
    look_alikes: Vec<String>,
}

#[derive(serde::Deserialize)]
struct Redacted {
    input: String,
    redacted: String,
}

fn corpus() -> Corpus {
    serde_json::from_str(include_str!("../../../tests/fixtures/redaction.json")).unwrap()
}

#[test]
fn every_secret_in_the_corpus_is_replaced_in_place() {
    let r = default();
    for Redacted { input, redacted } in corpus().secrets {
        assert_eq!(text(&r, &input), redacted, "input: {input}");
    }
}

#[test]
fn look_alikes_pass_unchanged() {
    let r = default();
    for input in corpus().look_alikes {
        assert_eq!(text(&r, &input), input);
    }
}

#[test]
fn deny_listed_keys_keep_the_key_and_lose_the_value() {
    let r = default();
    for key in [
        "password",
        "DB_PASSWORD",
        "db.password",
        "X-Api-Key",
        "apiKey",
        "http.request.header.authorization",
        "set-cookie",
        "aws_secret_access_key",
        "client_secret",
        "ssh_private_key",
        "refresh_token",
        "id_token",
        "Credentials",
        "session",
    ] {
        assert_eq!(pair(&r, key, "some value"), "[REDACTED]", "key {key}");
    }
    for key in [
        "max_tokens",
        "gen_ai.usage.input_tokens",
        "author",
        "http.method",
        "service.name",
        "k8s.pod.name",
        "keyboard",
    ] {
        assert_eq!(pair(&r, key, "some value"), "some value", "key {key}");
    }
    // Values are searched whatever the key.
    assert_eq!(
        pair(&r, "http.url", "https://u:p4ss@host/x"),
        "https://u:[REDACTED]@host/x"
    );
    // Redacting twice changes nothing more.
    assert_eq!(pair(&r, "password", "[REDACTED]"), "[REDACTED]");
}

#[test]
fn pii_rules_are_off_by_default_and_on_when_listed() {
    let input = "user bob@example.com from 10.1.2.3 and 2001:db8::ff00:42:8329 called +14155552671";
    assert_eq!(text(&default(), input), input);
    let r = redactor(r#"pii = ["email", "ipv4", "ipv6", "phone"]"#);
    assert_eq!(
        text(&r, input),
        "user [REDACTED] from [REDACTED] and [REDACTED] called [REDACTED]"
    );
    // Not addresses: versions, times.
    assert_eq!(
        text(&r, "version 1.2.3 at 12:30:45"),
        "version 1.2.3 at 12:30:45"
    );
    assert_eq!(
        text(&r, "999.1.1.1 is no address"),
        "999.1.1.1 is no address"
    );
}

#[test]
fn operator_rules_allow_list_and_disabled_rules() {
    let r = redactor(
        r##"
        deny_keys = ["x-internal-sig"]
        replacement = "***"
        disable = ["credit_card"]
        [[rules]]
        name = "ticket"
        value = 'TICKET-(?P<secret>[0-9]+)'
        replacement = "#"
        [[rules]]
        name = "customer"
        key = '^customer\.'
        "##,
    );
    assert_eq!(pair(&r, "X_Internal_Sig", "abc"), "***");
    assert_eq!(pair(&r, "customer.name", "Ada"), "***");
    assert_eq!(text(&r, "see TICKET-4242 now"), "see TICKET-# now");
    assert_eq!(
        text(&r, "card 4111 1111 1111 1111"),
        "card 4111 1111 1111 1111"
    );

    let r = redactor(r#"allow_keys = ["service.name", "http.method"]"#);
    assert_eq!(pair(&r, "service.name", "api"), "api");
    assert_eq!(pair(&r, "user.id", "42"), "[REDACTED]");
    assert_eq!(pair(&r, "__name__", "up"), "up");
}

#[test]
fn invalid_configs_are_refused() {
    for (text, field) in [
        (r#"replacement = """#, "replacement"),
        (r#"allow_keys = []"#, "allow_keys"),
        (r#"disable = ["nope"]"#, "disable"),
        ("[[rules]]\nname = \"x\"", "rules[0]"),
        ("[[rules]]\nname = \"x\"\nvalue = \"a*\"", "rules[0].value"),
    ] {
        let raw: RawRedactConfig = toml::from_str(text).unwrap();
        let errors = raw.validate().expect_err(text);
        assert!(
            errors.iter().any(|e| e.field == field),
            "{text}: {errors:?}"
        );
    }
}

#[test]
fn every_builtin_pattern_compiles() {
    for builtin in BUILTINS.iter() {
        if let Matcher::Regex { pattern, .. } = builtin.matcher {
            assert!(Regex::new(pattern).is_ok(), "{}", builtin.name);
        }
    }
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn string_of(value: &Option<AnyValue>) -> &str {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s,
        _ => "",
    }
}

#[test]
fn spans_are_redacted_in_names_attributes_events_and_status() {
    let span = Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "GET /login?password=hunter2".into(),
        attributes: vec![
            kv("http.request.header.authorization", "Basic dXNlcjpwYXNz"),
            kv("http.url", "https://example.com/?token=abcdef123"),
            kv("user.name", "bob"),
            KeyValue {
                key: "headers".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::KvlistValue(KeyValueList {
                        values: vec![kv("cookie", "sid=1"), kv("accept", "*/*")],
                    })),
                }),
                ..Default::default()
            },
        ],
        events: vec![span::Event {
            name: "retry with ghp_16C7e42F292c6912E7710c838347Ae178B4a".into(),
            ..Default::default()
        }],
        status: Some(opentelemetry_proto::tonic::trace::v1::Status {
            message: "auth failed for Bearer 8f14e45fceea167a5a36dedd4bea2543".into(),
            code: 2,
        }),
        ..Default::default()
    };
    let rs = ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("service.name", "api"), kv("db.password", "x")],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: vec![span],
            ..Default::default()
        }],
        ..Default::default()
    };
    // Encoded, as the OTLP receiver hands it on.
    let mut request = Vec::new();
    prost::encoding::message::encode(1, &rs, &mut request);
    let body = bytes::Bytes::from(request);
    let infos = crate::otlp::scan::trace_request(&body).unwrap();
    let (traces, _) = Traces::from_scanned(&body, infos);
    let mut batch = Batch::new(traces, Ticket::untracked());
    default().process(&mut batch);
    let out = &batch.data.resource_spans()[0];
    let attributes = &out.resource.as_ref().unwrap().attributes;
    assert_eq!(string_of(&attributes[0].value), "api");
    assert_eq!(string_of(&attributes[1].value), "[REDACTED]");
    let span = &out.scope_spans[0].spans[0];
    assert_eq!(span.name, "GET /login?password=[REDACTED]");
    assert_eq!(string_of(&span.attributes[0].value), "[REDACTED]");
    assert_eq!(
        string_of(&span.attributes[1].value),
        "https://example.com/?token=[REDACTED]"
    );
    assert_eq!(string_of(&span.attributes[2].value), "bob");
    let Some(any_value::Value::KvlistValue(headers)) =
        span.attributes[3].value.as_ref().unwrap().value.as_ref()
    else {
        panic!("kvlist kept");
    };
    assert_eq!(string_of(&headers.values[0].value), "[REDACTED]");
    assert_eq!(string_of(&headers.values[1].value), "*/*");
    assert_eq!(span.events[0].name, "retry with [REDACTED]");
    assert_eq!(
        span.status.as_ref().unwrap().message,
        "auth failed for Bearer [REDACTED]"
    );
}

#[test]
fn a_clean_encoded_resource_is_not_decoded_or_copied() {
    let rs = ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("service.name", "api")],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: vec![Span {
                trace_id: vec![1; 16],
                span_id: vec![2; 8],
                name: "GET /".into(),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut request = Vec::new();
    prost::encoding::message::encode(1, &rs, &mut request);
    let body = bytes::Bytes::from(request);
    let infos = crate::otlp::scan::trace_request(&body).unwrap();
    let (traces, _) = Traces::from_scanned(&body, infos);
    let mut batch = Batch::new(traces, Ticket::untracked());
    default().process(&mut batch);
    let mut out = Vec::new();
    batch.data.encode_request(&mut out);
    assert_eq!(out, body.to_vec());
}

#[test]
fn logs_and_metrics_are_redacted_in_lines_labels_and_metadata() {
    let mut entry = Entry::new(1, "user=bob password=hunter2");
    entry.metadata = vec![
        ("trace_id".into(), "4bf92f3577b34da6a3ce929d0e0e4736".into()),
        ("api_key".into(), "abc".into()),
    ];
    let clean = Entry::new(2, "nothing to see");
    let logs = Logs::new(vec![Stream {
        labels: Labels::from_pairs([("app", "api"), ("token", "t0k3n")]),
        entries: vec![entry, clean.clone()],
    }]);
    let mut batch = Batch::new(logs, Ticket::untracked());
    let r = default();
    r.process(&mut batch);
    let stream = &batch.data.streams[0];
    assert_eq!(stream.labels.get("token"), Some("[REDACTED]"));
    assert_eq!(stream.labels.get("app"), Some("api"));
    assert_eq!(stream.entries[0].line_str(), "user=bob password=[REDACTED]");
    assert_eq!(
        stream.entries[0].metadata[0].1,
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(stream.entries[0].metadata[1].1, "[REDACTED]");
    // An untouched line is the same buffer, not a copy.
    assert_eq!(stream.entries[1].line.as_ptr(), clean.line.as_ptr());

    let metrics = Metrics::new(vec![Series::sample(
        Labels::from_pairs([
            ("__name__", "http_requests_total"),
            ("url", "/cb?access_token=abc123"),
        ]),
        1.0,
        1,
    )]);
    let mut batch = Batch::new(metrics, Ticket::untracked());
    r.process(&mut batch);
    assert_eq!(
        batch.data.series[0].labels.get("url"),
        Some("/cb?access_token=[REDACTED]")
    );
    let counted: u64 = r.counters.iter().map(|c| c[1].get()).sum();
    assert_eq!(counted, 1);
}

/// A private key a container logged one line per record, as it reaches
/// ferro from a CRI log file: split over two batches of the same stream,
/// with another stream in between and a stream of its own going on.
#[test]
fn a_private_key_logged_a_line_at_a_time_is_redacted_across_batches() {
    let key = "-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAv0Nf5hHn1cJcLQ8Ak0Ty9VQf2nZ3vXo2eW1yJm0kYl7n3KZp
q9kW3gYV5hPmR8sT0uLx2w4bN6cD8eF1gH3iJ5kL7mN9oP1qR3sT5uV7wX9yZ1aB
Proc-Type: 4,ENCRYPTED

2024-05-01T10:00:00Z app key: 3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5zA7bC9dE1fG3hI5jK7==
-----END RSA PRIVATE KEY-----
listening on :8080";
    let lines: Vec<&str> = key.lines().collect();
    fn stream(name: &str, lines: &[&str]) -> Stream {
        Stream {
            labels: Labels::from_pairs([("app", name)]),
            entries: lines
                .iter()
                .enumerate()
                .map(|(i, line)| Entry::new(i as i64, line.to_string()))
                .collect(),
        }
    }
    let r = default();
    let mut open_keys = OpenKeys::default();
    let mut out: Vec<String> = Vec::new();
    let mut other: Vec<String> = Vec::new();
    for part in [&lines[..2], &lines[2..]] {
        let mut batch = Batch::new(
            Logs::new(vec![
                stream("api", part),
                stream(
                    "web",
                    &["MIIEowIBAAKCAQEAv0Nf5hHn1cJcLQ8Ak0Ty9VQf2nZ3vXo2eW1yJm0kYl7n3KZp"],
                ),
            ]),
            Ticket::untracked(),
        );
        r.process_stream(&mut batch, &mut open_keys);
        out.extend(
            batch.data.streams[0]
                .entries
                .iter()
                .map(|e| e.line_str().to_string()),
        );
        other.extend(
            batch.data.streams[1]
                .entries
                .iter()
                .map(|e| e.line_str().to_string()),
        );
    }
    assert_eq!(
        out,
        [
            "[REDACTED]",
            "[REDACTED]",
            "[REDACTED]",
            "[REDACTED]",
            "",
            "2024-05-01T10:00:00Z app key: [REDACTED]",
            "[REDACTED]",
            "listening on :8080",
        ]
    );
    assert_eq!(
        other, ["MIIEowIBAAKCAQEAv0Nf5hHn1cJcLQ8Ak0Ty9VQf2nZ3vXo2eW1yJm0kYl7n3KZp"; 2],
        "another stream is not in the key"
    );
    assert!(open_keys.streams.is_empty(), "the END line closed it");
    let counted: u64 = r.counters.iter().map(|c| c[2].get()).sum();
    assert_eq!(counted, 6);
}

#[test]
fn a_key_cut_short_ends_at_the_first_line_that_is_not_key_material() {
    let r = default();
    let mut open_keys = OpenKeys::default();
    let lines = [
        "-----BEGIN PRIVATE KEY-----",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7",
        "GET /healthz 200 1.2ms",
        "c2hvdWxkIG5vdCBiZSByZWRhY3RlZA==",
    ];
    let mut batch = Batch::new(
        Logs::new(vec![Stream {
            labels: Labels::from_pairs([("app", "api")]),
            entries: lines.iter().map(|l| Entry::new(0, *l)).collect(),
        }]),
        Ticket::untracked(),
    );
    r.process_stream(&mut batch, &mut open_keys);
    let out: Vec<&str> = batch.data.streams[0]
        .entries
        .iter()
        .map(|e| e.line_str())
        .collect();
    assert_eq!(
        out,
        [
            "[REDACTED]",
            "[REDACTED]",
            "GET /healthz 200 1.2ms",
            "c2hvdWxkIG5vdCBiZSByZWRhY3RlZA=="
        ]
    );
    assert!(open_keys.streams.is_empty());
}

#[test]
fn key_lines_are_classified() {
    use super::rules::{KeyLine, key_continues, opens_private_key};
    assert!(opens_private_key("-----BEGIN EC PRIVATE KEY-----"));
    assert!(opens_private_key(
        "key: -----BEGIN OPENSSH PRIVATE KEY-----"
    ));
    assert!(!opens_private_key(
        "-----BEGIN PRIVATE KEY----- abc -----END PRIVATE KEY-----"
    ));
    assert!(!opens_private_key("-----BEGIN CERTIFICATE-----"));
    assert_eq!(key_continues("  "), KeyLine::Blank);
    assert_eq!(key_continues("abc+/="), KeyLine::Body(0, 6));
    assert_eq!(key_continues("\tabc=\r"), KeyLine::Body(1, 5));
    assert_eq!(
        key_continues("INFO short"),
        KeyLine::Other,
        "a short last word is not enough"
    );
    assert_eq!(
        key_continues("INFO ab=="),
        KeyLine::Body(5, 9),
        "but a padded last line is"
    );
    // Multi-byte whitespace before the last word (no-break space, U+3000).
    assert_eq!(
        key_continues("INFO\u{a0}c2hvdWxkIG5vdCBiZSBz"),
        KeyLine::Body(6, 26)
    );
    assert_eq!(key_continues("x\u{3000}abc"), KeyLine::Other);
    // Whatever a line holds, classifying it never panics and every range
    // it gives lies on character boundaries.
    let pieces = [
        "a",
        "Z9",
        "+/",
        "=",
        " ",
        "\t",
        "\u{a0}",
        "\u{3000}",
        "\u{2028}",
        "é",
        "日本",
        "-----END",
        "PRIVATE KEY",
        "-----",
        "Proc-Type:",
        "DEK-Info:",
        "\r",
    ];
    let mut rng = fastrand::Rng::with_seed(11);
    for _ in 0..20_000 {
        let line: String = (0..rng.usize(0..12))
            .map(|_| pieces[rng.usize(..pieces.len())])
            .collect();
        if let KeyLine::Body(a, b) | KeyLine::End(a, b) = key_continues(&line) {
            assert!(
                a <= b && line.is_char_boundary(a) && line.is_char_boundary(b),
                "{line:?}"
            );
        }
    }
    assert_eq!(
        key_continues("-----END PRIVATE KEY----- done"),
        KeyLine::End(0, 25)
    );
    assert_eq!(key_continues("-----END CERTIFICATE-----"), KeyLine::Other);
    assert_eq!(
        key_continues("DEK-Info: AES-128-CBC,5A3B"),
        KeyLine::Body(0, 26)
    );
}

/// The digit-run test on candidate bitmasks agrees with a byte-by-byte
/// scan.
#[test]
fn bitmask_digit_run_test_agrees_with_a_full_scan() {
    fn full_scan(bytes: &[u8]) -> bool {
        let mut digits = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if b.is_ascii_digit() {
                digits += 1;
                if digits >= 13 {
                    return true;
                }
            } else if (b == b' ' || b == b'-')
                && i > 0
                && bytes[i - 1].is_ascii_digit()
                && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
            {
            } else {
                digits = 0;
            }
        }
        false
    }
    let mut rng = fastrand::Rng::with_seed(7);
    // Bytes on both sides of the ranges the bit tricks test, and one that
    // is not ASCII.
    let alphabet = b"0123456789 -x/:,.\xb0\xff";
    for _ in 0..50_000 {
        // Across 8-byte words and 64-byte blocks.
        let len = rng.usize(0..200);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                // Mostly digits, so that long runs happen.
                if rng.u8(..4) == 0 {
                    alphabet[rng.usize(10..alphabet.len())]
                } else {
                    alphabet[rng.usize(..10)]
                }
            })
            .collect();
        assert_eq!(
            rules::has_digit_run(&bytes),
            full_scan(&bytes),
            "{:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

/// The SIMD prefilter on lower-cased chunks finds every anchor a
/// case-insensitive automaton finds, across chunk boundaries too.
#[test]
fn prefilter_agrees_with_a_case_insensitive_automaton() {
    let r = default();
    let Some(prefilter) = &r.prefilter else {
        // No SIMD on this machine: the automaton is used, nothing to compare.
        return;
    };
    let anchors = r.anchors.as_ref().unwrap();
    let mut rng = fastrand::Rng::with_seed(11);
    // Anchors searched plain (under four bytes) and pair-hashed.
    let anchor_words = [
        "Password",
        "TOKEN",
        "a.eyJ",
        "akia",
        "-----BEGIN",
        "Bearer",
        "sig=",
        "pwd",
        "hf_",
        "7Q~",
        "npm_",
        "xoxb",
        "dop_v1_",
        "pypi-AgEIcHlwaS5vcmc",
    ];
    // A narrow alphabet, and one wide enough for pairs that hash like an
    // anchor's (found by the hashed search, refused by the check).
    let alphabets: [&[u8]; 2] = [
        b"abcdefghij klm",
        b"abcdefghijklmnopqrstuvwxyz0123456789_-.~$ ",
    ];
    for round in 0..4_000 {
        let alphabet = alphabets[round % 2];
        let len = rng.usize(0..6000);
        let mut text: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.usize(..alphabet.len())])
            .collect();
        if rng.bool() && len > 20 {
            let word = anchor_words[rng.usize(..anchor_words.len())].as_bytes();
            let at = rng.usize(..len - word.len());
            text[at..at + word.len()].copy_from_slice(word);
        }
        assert_eq!(
            prefilter.is_match_any(&mut std::iter::once(&text[..]), false),
            anchors.is_match(&text)
        );
        // Split into lines searched together: the same answer.
        let mut lines = text.split(|&b| b == b' ');
        // (No anchor holds a space.)
        let whole = text.split(|&b| b == b' ').any(|l| anchors.is_match(l));
        assert_eq!(prefilter.is_match_any(&mut lines, false), whole);
    }
}

/// Random text built from pieces of secrets, JSON and noise: redaction never
/// panics, never grows a line beyond its replacements, and a second pass
/// changes nothing more.
#[test]
fn random_text_never_panics_and_redaction_is_idempotent() {
    let r = redactor(r#"pii = ["email", "ipv4", "ipv6", "phone"]"#);
    let corpus = corpus();
    let mut pieces: Vec<String> = corpus.secrets.iter().map(|s| s.input.clone()).collect();
    pieces.extend(corpus.look_alikes);
    pieces.extend(
        [
            "{",
            "}",
            "[",
            "]",
            "\"",
            "\\",
            ":",
            ",",
            "=",
            "&",
            "?",
            " ",
            "\n",
            "\"password\":",
            "4111",
            "-",
            "é",
            "✓",
            "eyJ",
            "Bearer ",
            "Basic ",
            "://",
            "@",
            "0",
            "9",
        ]
        .map(String::from),
    );
    let mut rng = fastrand::Rng::with_seed(3);
    for _ in 0..30_000 {
        let mut text = String::new();
        for _ in 0..rng.usize(1..8) {
            let piece = &pieces[rng.usize(..pieces.len())];
            // A random cut of the piece, on a character boundary.
            let cut: usize = piece
                .char_indices()
                .map(|(i, _)| i)
                .nth(rng.usize(..=piece.chars().count().max(1) - 1))
                .unwrap_or(0);
            text.push_str(if rng.bool() { &piece[cut..] } else { piece });
        }
        let once = self::text(&r, &text);
        let twice = self::text(&r, &once);
        assert_eq!(once, twice, "input: {text:?}");
    }
}
