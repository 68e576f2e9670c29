use super::*;
use crate::config::Validate;
use crate::exporters::ExportError;
use crate::exporters::Sent;
use crate::signal::Labels;
use crate::signal::Logs;
use crate::signal::logs::Entry;
use crate::signal::logs::Stream;
use ferro_proto::logproto;
use prost::Message;
use std::time::Duration;

fn entry(ts: i64, line: &str) -> Entry {
    Entry::new(ts, line.to_string())
}

fn stream(labels: &[(&str, &str)], entries: Vec<Entry>) -> Stream {
    Stream {
        labels: Labels::from_pairs(labels.iter().copied()),
        entries,
    }
}

fn config(text: &str) -> Result<LokiConfig, Vec<crate::config::FieldError>> {
    let raw: RawLokiConfig = toml::from_str(text).unwrap();
    raw.validate()
}

fn labels_text(labels: &Labels) -> String {
    let mut out = String::new();
    encode::render_labels(labels, &mut out);
    out
}

#[test]
fn labels_render_as_loki_parses_them() {
    let labels = Labels::from_pairs([
        ("b", "two"),
        ("a", "1"),
        ("quote", "say \"hi\""),
        ("path", "C:\\logs\\app"),
        ("multi", "one\ntwo"),
        ("text", "tab\there ünï ✓"),
    ]);
    assert_eq!(
        labels_text(&labels),
        r#"{a="1", b="two", multi="one\ntwo", path="C:\\logs\\app", quote="say \"hi\"", text="tab	here ünï ✓"}"#
    );
    assert_eq!(labels_text(&Labels::from_pairs([("a", "")])), "{}");
}

#[test]
fn grouping_merges_label_sets_and_sorts_stably() {
    let a = [("app", "a")];
    let streams = vec![
        stream(&a, vec![entry(30, "a30"), entry(10, "a10-first")]),
        stream(&[("app", "b")], vec![entry(5, "b5")]),
        // The same label set from a later batch.
        stream(&a, vec![entry(10, "a10-second"), entry(20, "a20")]),
    ];
    let grouped = encode::group(streams);
    assert_eq!(grouped.len(), 2);
    assert_eq!(grouped[0].labels, Labels::from_pairs(a));
    let lines: Vec<_> = grouped[0].entries.iter().map(Entry::line_str).collect();
    assert_eq!(lines, ["a10-first", "a10-second", "a20", "a30"]);
    assert_eq!(grouped[1].entries[0].line_str(), "b5");
}

fn sample_streams() -> Vec<Stream> {
    let mut with_metadata = entry(1_700_000_000_123_456_789, "GET /health 200");
    with_metadata.metadata = vec![
        ("trace_id".into(), "0242ac120002".into()),
        ("user".into(), "ünï \"q\"".into()),
    ];
    vec![
        stream(
            &[("app", "api"), ("namespace", "prod")],
            vec![with_metadata, entry(1_700_000_001_000_000_000, "")],
        ),
        stream(
            &[("app", "db \"main\"")],
            vec![entry(0, "epoch"), entry(-1, "before epoch")],
        ),
    ]
}

/// What prost writes for the same streams: the reference the hand-written
/// encoder must match byte for byte.
fn prost_request(streams: &[Stream]) -> logproto::PushRequest {
    logproto::PushRequest {
        streams: streams
            .iter()
            .map(|s| logproto::StreamAdapter {
                labels: labels_text(&s.labels),
                entries: s
                    .entries
                    .iter()
                    .map(|e| logproto::EntryAdapter {
                        timestamp: Some(ferro_proto::prost_types::Timestamp {
                            seconds: e.timestamp_ns.div_euclid(1_000_000_000),
                            nanos: e.timestamp_ns.rem_euclid(1_000_000_000) as i32,
                        }),
                        line: e.line_str().to_string(),
                        structured_metadata: e
                            .metadata
                            .iter()
                            .map(|(n, v)| logproto::LabelPairAdapter {
                                name: n.clone(),
                                value: v.clone(),
                            })
                            .collect(),
                    })
                    .collect(),
                hash: 0,
            })
            .collect(),
    }
}

#[test]
fn protobuf_decodes_back_to_the_same_streams() {
    let streams = sample_streams();
    let body = encode::body(&streams, Encoding::Protobuf, &mut Vec::new()).unwrap();
    let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
    let expected = prost_request(&streams);
    assert_eq!(raw, expected.encode_to_vec(), "byte-identical to prost");
    let decoded = logproto::PushRequest::decode(raw.as_slice()).unwrap();
    assert_eq!(decoded, expected);
    assert_eq!(
        decoded.streams[0].labels,
        r#"{app="api", namespace="prod"}"#
    );
    let first = &decoded.streams[0].entries[0];
    let ts = first.timestamp.unwrap();
    assert_eq!((ts.seconds, ts.nanos), (1_700_000_000, 123_456_789));
    assert_eq!(first.structured_metadata[1].value, "ünï \"q\"");
    let before_epoch = decoded.streams[1].entries[1].timestamp.unwrap();
    assert_eq!(
        (before_epoch.seconds, before_epoch.nanos),
        (-1, 999_999_999)
    );
    assert!(
        decoded.streams[1].entries[0].timestamp.is_some(),
        "a zero timestamp is still sent"
    );
}

#[test]
fn json_matches_lokis_push_format() {
    let streams = sample_streams();
    let body = encode::body(&streams, Encoding::Json, &mut Vec::new()).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"streams": [
            {
                "stream": {"app": "api", "namespace": "prod"},
                "values": [
                    ["1700000000123456789", "GET /health 200",
                        {"trace_id": "0242ac120002", "user": "ünï \"q\""}],
                    ["1700000001000000000", ""],
                ]
            },
            {
                "stream": {"app": "db \"main\""},
                "values": [["0", "epoch"], ["-1", "before epoch"]]
            }
        ]})
    );
    let small = encode::body(
        &[stream(&[("a", "1")], vec![entry(5, "x")])],
        Encoding::Json,
        &mut Vec::new(),
    )
    .unwrap();
    assert_eq!(
        std::str::from_utf8(&small).unwrap(),
        r#"{"streams":[{"stream":{"a":"1"},"values":[["5","x"]]}]}"#
    );
}

fn routing(tenant_label: Option<&str>, tenant_id: Option<&str>, shards: usize) -> Routing {
    Routing {
        tenant_label: tenant_label.map(str::to_string),
        tenant_id: tenant_id.map(|t| config::valid_tenant(t).unwrap()),
        shards,
    }
}

#[test]
fn streams_split_by_tenant_label_which_is_removed() {
    let logs = Logs::new(vec![
        stream(&[("app", "x"), ("tenant", "team-a")], vec![entry(1, "a1")]),
        stream(&[("app", "y")], vec![entry(2, "default")]),
        stream(&[("app", "z"), ("tenant", "team-b")], vec![entry(3, "b")]),
        stream(&[("app", "x"), ("tenant", "team-a")], vec![entry(4, "a2")]),
        stream(
            &[("app", "w"), ("tenant", "no/slash")],
            vec![entry(5, "bad")],
        ),
        stream(&[("tenant", "team-a")], vec![entry(6, "only a tenant")]),
        stream(&[("app.kubernetes.io/name", "q")], vec![entry(7, "dotted")]),
    ]);
    let mut keys = Vec::new();
    let mut refused = Vec::new();
    let (parts, rejected) =
        routing(Some("tenant"), Some("fallback"), 1).split(logs, None, &mut keys, &mut refused);
    let tenants: Vec<_> = keys
        .iter()
        .map(|(shard, t)| {
            assert_eq!(*shard, 0);
            t.as_ref().unwrap().to_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(tenants, ["team-a", "fallback", "team-b"]);
    assert_eq!(parts[0].streams.len(), 2, "both team-a streams, in order");
    assert_eq!(parts[0].streams[1].entries[0].line_str(), "a2");
    for part in &parts {
        for s in &part.streams {
            assert_eq!(s.labels.get("tenant"), None, "{:?}", s.labels);
        }
    }
    assert_eq!(
        refused,
        [
            ("invalid_tenant", 1),
            ("missing_labels", 1),
            ("invalid_labels", 1)
        ]
    );
    assert_eq!(rejected.streams.len(), 3);
}

#[test]
fn without_tenant_label_every_stream_has_the_default_tenant_and_a_stable_shard() {
    let logs = Logs::new(
        (0..50)
            .map(|i| stream(&[("app", &i.to_string())], vec![entry(i, "x")]))
            .collect(),
    );
    let mut keys = Vec::new();
    let (parts, rejected) =
        routing(None, None, 4).split(logs.clone(), None, &mut keys, &mut Vec::new());
    assert!(rejected.streams.is_empty());
    assert_eq!(parts.iter().map(|p| p.streams.len()).sum::<usize>(), 50);
    assert!(
        keys.iter()
            .all(|(shard, tenant)| *shard < 4 && tenant.is_none())
    );
    assert!(keys.len() > 1, "streams spread over shards");
    let mut again = Vec::new();
    routing(None, None, 4).split(logs, None, &mut again, &mut Vec::new());
    assert_eq!(keys, again);
}

fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Result<Sent, ExportError> {
    let headers: http::HeaderMap = headers
        .iter()
        .map(|(k, v)| {
            (
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            )
        })
        .collect();
    classify(
        http::StatusCode::from_u16(status).unwrap(),
        &headers,
        body.as_bytes(),
        10,
    )
}

#[test]
fn answers_are_classified_as_loki_means_them() {
    assert_eq!(answer(204, &[], "").unwrap().rejected_items, 0);
    let blocked = answer(
        260,
        &[],
        "ingestion blocked for user t until '2030-01-01T00:00:00Z' with status code '260'",
    )
    .unwrap();
    assert_eq!(blocked.rejected_items, 10);
    let e = answer(
        429,
        &[("Retry-After", "7")],
        "Ingestion rate limit exceeded for user t (limit: 4194304 bytes/sec)",
    )
    .unwrap_err();
    assert!(e.retryable);
    assert_eq!(e.reason, "rate_limited");
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
    let e = answer(503, &[("Retry-After", "2")], "").unwrap_err();
    assert!(e.retryable);
    assert_eq!(e.retry_after, Some(Duration::from_secs(2)));
    assert!(answer(500, &[], "").unwrap_err().retryable);
    // Loki's own messages (pkg/validation/validate.go, pkg/ingester/stream.go).
    let cases = [
        (
            "entry with timestamp 2024-01-01 00:00:00 +0000 UTC ignored, reason: 'entry out of order',\nuser 'fake', total ignored: 1 out of 3 for stream: {app=\"x\"}",
            "out_of_order",
        ),
        (
            "entry with timestamp 2024-01-01 00:00:00 +0000 UTC ignored, reason: 'entry too far behind, entry timestamp is: 2024-01-01T00:00:00Z, oldest acceptable timestamp is: 2024-01-01T01:00:00Z',",
            "too_old",
        ),
        (
            "entry for stream '{app=\"x\"}' has timestamp too old: 2020-01-01T00:00:00Z, oldest acceptable timestamp is: 2024-01-01T00:00:00Z",
            "too_old",
        ),
        (
            "entry for stream '{app=\"x\"}' has timestamp too new: 2099-01-01T00:00:00Z",
            "too_new",
        ),
        (
            "Max entry size '262144' bytes exceeded for stream '{app=\"x\"}' while adding an entry with length '300000' bytes",
            "line_too_long",
        ),
        (
            "Per stream rate limit exceeded (limit: 3MB/sec) while attempting to ingest for stream '{app=\"x\"}' totaling 5MB",
            "rate_limited",
        ),
        (
            "Error parsing labels '{app=x}' with error: 1:6: parse error: unexpected identifier \"x\"",
            "invalid_labels",
        ),
        (
            "error at least one label pair is required per stream",
            "invalid_labels",
        ),
        (
            "stream '{app=\"x\"}' has label value too long: 'xxxx'",
            "invalid_labels",
        ),
        (
            "stream '{app=\"x\"}' has structured metadata too large: '70000' bytes, limit: '65536' bytes.",
            "structured_metadata",
        ),
        ("something else entirely", "http_4xx"),
    ];
    for (body, reason) in cases {
        let e = answer(400, &[], body).unwrap_err();
        assert!(!e.retryable, "{body}");
        assert_eq!(e.reason, reason, "{body}");
        assert!(
            e.message.starts_with("HTTP 400: "),
            "Loki's message is kept"
        );
    }
    assert_eq!(
        answer(401, &[], "no org id").unwrap_err().reason,
        "http_4xx"
    );
}

#[test]
fn config_defaults_and_checks() {
    let c = config(r#"endpoint = "http://loki:3100/loki/api/v1/push""#).unwrap();
    assert_eq!(c.encoding, Encoding::Protobuf);
    assert_eq!(c.batch_size, 1 << 20);
    assert_eq!(c.batch_wait, Duration::from_secs(1));
    assert_eq!(c.http.timeout, Duration::from_secs(10));
    assert_eq!(c.http.tenant_id, None);

    let c = config(
        r#"endpoint = "https://logs.example/loki/api/v1/push"
tenant_id = "team-a"
tenant_label = "tenant"
encoding = "json"
batch_size = "256KiB"
batch_wait = "250ms"
headers = { "X-Env" = "prod" }
bearer_token = "t0k""#,
    )
    .unwrap();
    assert_eq!(c.http.tenant_id.unwrap(), "team-a");
    assert_eq!(c.tenant_label.as_deref(), Some("tenant"));
    assert_eq!(c.encoding, Encoding::Json);
    assert_eq!(c.batch_size, 256 << 10);
    assert_eq!(c.http.credentials.header().unwrap().unwrap(), "Bearer t0k");
    assert!(
        c.http
            .headers
            .iter()
            .any(|(n, v)| n == "x-env" && v == "prod")
    );

    let errors = config(
        r#"endpoint = "loki:3100"
tenant_id = "a/b"
tenant_label = "not-a-label"
batch_size = 0
batch_wait = "0s"
headers = { "X-Scope-OrgID" = "x" }"#,
    )
    .unwrap_err();
    // Which fields, not in which order: `ferro validate` sorts them by line.
    let mut fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "batch_size",
            "batch_wait",
            "endpoint",
            "headers.X-Scope-OrgID",
            "tenant_id",
            "tenant_label"
        ]
    );
}
