use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::*;
use crate::signal::SignalData;

const T: u64 = 1_700_000_000_000_000_000;
const NOW: u64 = 1_800_000_000_000_000_000;

fn string(s: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s.into())),
    }
}

fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(value),
        ..Default::default()
    }
}

fn attrs(pairs: &[(&str, &str)]) -> Vec<KeyValue> {
    pairs.iter().map(|(k, v)| kv(k, string(v))).collect()
}

fn record(line: &str) -> LogRecord {
    LogRecord {
        time_unix_nano: T,
        body: Some(string(line)),
        ..Default::default()
    }
}

fn resource(attributes: Vec<KeyValue>, records: Vec<LogRecord>) -> ResourceLogs {
    ResourceLogs {
        resource: Some(Resource {
            attributes,
            ..Default::default()
        }),
        scope_logs: vec![ScopeLogs {
            log_records: records,
            ..Default::default()
        }],
        schema_url: String::new(),
    }
}

fn convert(resources: Vec<ResourceLogs>) -> ConvertedLogs {
    convert_with(resources, &LogsConversion::default())
}

fn convert_with(resources: Vec<ResourceLogs>, config: &LogsConversion) -> ConvertedLogs {
    let request = ExportLogsServiceRequest {
        resource_logs: resources,
    };
    convert_at(request, config, NOW)
}

/// The only entry of a conversion, with its stream's labels.
fn only_entry(converted: &ConvertedLogs) -> (&Labels, &Entry) {
    assert_eq!(converted.logs.streams.len(), 1, "{:?}", converted.logs);
    let stream = &converted.logs.streams[0];
    assert_eq!(stream.entries.len(), 1, "{stream:?}");
    (&stream.labels, &stream.entries[0])
}

fn meta<'e>(entry: &'e Entry, name: &str) -> Option<&'e str> {
    entry
        .metadata
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn default_resource_attributes_become_labels_and_the_rest_metadata() {
    let converted = convert(vec![resource(
        attrs(&[
            ("service.name", "checkout"),
            ("service.namespace", "shop"),
            ("deployment.environment.name", "prod"),
            ("k8s.pod.name", "checkout-7d9f"),
            ("host.name", "node-a"),
            ("process.pid", "42"),
        ]),
        vec![record("hello")],
    )]);
    let (labels, entry) = only_entry(&converted);
    assert_eq!(
        labels.to_string(),
        r#"{deployment_environment_name="prod", k8s_pod_name="checkout-7d9f", service_name="checkout", service_namespace="shop"}"#
    );
    assert_eq!(
        entry.metadata,
        pairs(&[("host_name", "node-a"), ("process_pid", "42")])
    );
    assert_eq!(entry.line_str(), "hello");
    assert_eq!(converted.rejected_records, 0);
}

#[test]
fn every_default_label_is_lokis() {
    let all: Vec<(&str, &str)> = DEFAULT_RESOURCE_LABELS.iter().map(|k| (*k, "v")).collect();
    let converted = convert(vec![resource(attrs(&all), vec![record("x")])]);
    let (labels, entry) = only_entry(&converted);
    assert_eq!(labels.len(), 18);
    for key in DEFAULT_RESOURCE_LABELS {
        assert_eq!(labels.get(&key.replace('.', "_")), Some("v"), "{key}");
    }
    assert!(entry.metadata.is_empty());
}

#[test]
fn configured_resource_labels_replace_the_defaults() {
    let config = LogsConversion::with_resource_labels(vec!["host.name".into(), "team-name".into()]);
    let converted = convert_with(
        vec![resource(
            attrs(&[
                ("service.name", "checkout"),
                ("host.name", "node-a"),
                ("team-name", "payments"),
            ]),
            vec![record("x")],
        )],
        &config,
    );
    let (labels, entry) = only_entry(&converted);
    // service.name is set, so Loki adds no service_name label of its own.
    assert_eq!(
        labels.to_string(),
        r#"{host_name="node-a", team_name="payments"}"#
    );
    assert_eq!(entry.metadata, pairs(&[("service_name", "checkout")]));
}

#[test]
fn service_name_is_discovered_or_unknown() {
    // Without service.name, the first label Loki's discovery list names.
    let converted = convert(vec![resource(
        attrs(&[
            ("k8s.namespace.name", "shop"),
            ("k8s.container.name", "api"),
            ("k8s.job.name", "migrate"),
        ]),
        vec![record("x")],
    )]);
    let (labels, _) = only_entry(&converted);
    assert_eq!(labels.get("service_name"), Some("api"));
    assert_eq!(labels.get("k8s_container_name"), Some("api"));

    // Nothing to discover (app is metadata, not a label): unknown_service.
    for attributes in [
        attrs(&[("app", "api")]),
        attrs(&[("service.name", "")]),
        vec![],
    ] {
        let converted = convert(vec![resource(attributes, vec![record("x")])]);
        let (labels, _) = only_entry(&converted);
        assert_eq!(labels.to_string(), r#"{service_name="unknown_service"}"#);
    }

    // No resource at all.
    let converted = convert(vec![ResourceLogs {
        resource: None,
        scope_logs: vec![ScopeLogs {
            log_records: vec![record("x")],
            ..Default::default()
        }],
        schema_url: String::new(),
    }]);
    assert_eq!(
        only_entry(&converted).0.get("service_name"),
        Some("unknown_service")
    );
}

#[test]
fn names_are_normalized_as_loki_does() {
    for (key, name) in [
        ("service.name", Some("service_name")),
        ("http.status-code", Some("http_status_code")),
        ("plain", Some("plain")),
        ("1st", Some("key_1st")),
        ("_private", Some("key_private")),
        ("__reserved", Some("__reserved")),
        ("__", Some("__")),
        ("_", Some("key_")),
        ("ünï", Some("key_n_")),
        ("a/b c", Some("a_b_c")),
        ("..", None),
        ("", None),
    ] {
        assert_eq!(label_name(key).as_deref(), name, "{key:?}");
    }
}

#[test]
fn record_fields_become_metadata_in_lokis_order() {
    let mut log = record("payment failed");
    log.observed_time_unix_nano = T + 5;
    log.severity_number = SeverityNumber::Error as i32;
    log.severity_text = "ERROR".into();
    log.attributes = attrs(&[("user.id", "u-1"), ("retry", "2")]);
    log.dropped_attributes_count = 3;
    log.flags = 1;
    log.trace_id = hex::decode("5b8efff798038103d269b633813fc60c").unwrap();
    log.span_id = hex::decode("eee19b7ec3c1b174").unwrap();
    log.event_name = "payment.failed".into();
    let mut resource_logs = resource(
        attrs(&[("service.name", "checkout"), ("host.name", "node-a")]),
        vec![log],
    );
    resource_logs.scope_logs[0].scope = Some(InstrumentationScope {
        name: "checkout.payments".into(),
        version: "1.4.0".into(),
        attributes: attrs(&[("library.language", "python")]),
        dropped_attributes_count: 1,
    });
    let converted = convert(vec![resource_logs]);
    let (_, entry) = only_entry(&converted);
    assert_eq!(entry.timestamp_ns, T as i64);
    assert_eq!(
        entry.metadata,
        pairs(&[
            ("user_id", "u-1"),
            ("retry", "2"),
            ("observed_timestamp", &(T + 5).to_string()),
            ("severity_number", "17"),
            ("severity_text", "ERROR"),
            ("dropped_attributes_count", "3"),
            ("flags", "1"),
            ("trace_id", "5b8efff798038103d269b633813fc60c"),
            ("span_id", "eee19b7ec3c1b174"),
            ("host_name", "node-a"),
            ("library_language", "python"),
            ("scope_name", "checkout.payments"),
            ("scope_version", "1.4.0"),
            ("scope_dropped_attributes_count", "1"),
            ("detected_level", "error"),
        ])
    );
}

#[test]
fn attribute_values_are_flattened_and_rendered_as_strings() {
    let map = |pairs: Vec<KeyValue>| AnyValue {
        value: Some(any_value::Value::KvlistValue(KeyValueList {
            values: pairs,
        })),
    };
    let value = |v: any_value::Value| AnyValue { value: Some(v) };
    let mut log = record("x");
    log.attributes = vec![
        kv(
            "http",
            map(vec![
                kv("method", string("GET")),
                kv(
                    "response",
                    map(vec![kv(
                        "status.code",
                        value(any_value::Value::IntValue(503)),
                    )]),
                ),
            ]),
        ),
        kv("empty.map", map(vec![])),
        kv("ok", value(any_value::Value::BoolValue(true))),
        kv("ratio", value(any_value::Value::DoubleValue(0.5))),
        kv("huge", value(any_value::Value::DoubleValue(1e21))),
        kv("raw", value(any_value::Value::BytesValue(vec![1, 2, 3]))),
        kv(
            "tags",
            value(any_value::Value::ArrayValue(ArrayValue {
                values: vec![string("a<b"), value(any_value::Value::IntValue(1))],
            })),
        ),
        KeyValue {
            key: "unset".into(),
            value: None,
            ..Default::default()
        },
    ];
    let converted = convert(vec![resource(attrs(&[("service.name", "s")]), vec![log])]);
    let (_, entry) = only_entry(&converted);
    assert_eq!(
        entry.metadata,
        pairs(&[
            ("http_method", "GET"),
            ("http_response_status_code", "503"),
            ("ok", "true"),
            ("ratio", "0.5"),
            ("huge", "1e+21"),
            ("raw", "AQID"),
            ("tags", r#"["a\u003cb",1]"#),
            ("unset", ""),
        ])
    );
}

#[test]
fn bodies_of_every_kind_become_lines() {
    let value = |v: any_value::Value| Some(AnyValue { value: Some(v) });
    let cases = [
        (
            value(any_value::Value::StringValue("plain \"text\"\n".into())),
            "plain \"text\"\n",
        ),
        (value(any_value::Value::IntValue(-7)), "-7"),
        (value(any_value::Value::DoubleValue(2.5)), "2.5"),
        (value(any_value::Value::BoolValue(false)), "false"),
        (value(any_value::Value::BytesValue(b"hi".to_vec())), "aGk="),
        (
            value(any_value::Value::KvlistValue(KeyValueList {
                values: vec![
                    kv("msg", string("a & b")),
                    kv(
                        "count",
                        AnyValue {
                            value: Some(any_value::Value::IntValue(2)),
                        },
                    ),
                ],
            })),
            r#"{"count":2,"msg":"a \u0026 b"}"#,
        ),
        (
            value(any_value::Value::ArrayValue(ArrayValue {
                values: vec![string("x"), AnyValue { value: None }],
            })),
            r#"["x",null]"#,
        ),
        (Some(AnyValue { value: None }), ""),
        (None, ""),
    ];
    for (body, line) in cases {
        let mut log = record("");
        log.body = body.clone();
        let converted = convert(vec![resource(vec![], vec![log])]);
        assert_eq!(only_entry(&converted).1.line_str(), line, "{body:?}");
    }
}

#[test]
fn detected_level_follows_lokis_distributor() {
    fn level(
        severity_number: i32,
        severity_text: &str,
        attributes: &[(&str, &str)],
    ) -> Option<String> {
        let mut log = record("no level words here");
        log.severity_number = severity_number;
        log.severity_text = severity_text.into();
        log.attributes = attrs(attributes);
        let converted = convert(vec![resource(vec![], vec![log])]);
        meta(only_entry(&converted).1, "detected_level").map(str::to_string)
    }
    // Severity numbers by the OTel data model's ranges.
    for (number, expected) in [
        (1, "trace"),
        (4, "trace"),
        (5, "debug"),
        (9, "info"),
        (12, "info"),
        (13, "warn"),
        (17, "error"),
        (21, "fatal"),
        (24, "fatal"),
        (25, "unknown"),
    ] {
        assert_eq!(
            level(number, "", &[]).as_deref(),
            Some(expected),
            "{number}"
        );
    }
    // A level field wins over the number, normalized where Loki knows the word.
    assert_eq!(
        level(9, "INFO", &[("level", "WARNING")]).as_deref(),
        Some("warn")
    );
    assert_eq!(
        level(9, "", &[("severity", "Notice")]).as_deref(),
        Some("Notice")
    );
    assert_eq!(level(0, "", &[("lvl", "dbg")]).as_deref(), Some("debug"));
    // An empty level field gives none, as in Loki.
    assert_eq!(level(9, "", &[("level", "")]), None);
    // One already there is normalized and not repeated.
    let mut log = record("x");
    log.severity_number = 9;
    log.attributes = attrs(&[("detected_level", "ERR")]);
    let converted = convert(vec![resource(vec![], vec![log])]);
    let (_, entry) = only_entry(&converted);
    assert_eq!(meta(entry, "detected_level"), Some("error"));
    assert_eq!(
        entry
            .metadata
            .iter()
            .filter(|(n, _)| n == "detected_level")
            .count(),
        1
    );
    // Severity text alone is not among Loki's level fields, and ferro does
    // not guess from the line: Loki does that on ingestion.
    assert_eq!(level(0, "ERROR", &[]), None);
    assert_eq!(level(0, "", &[]), None);
}

#[test]
fn a_level_stream_label_comes_first() {
    let config = LogsConversion::with_resource_labels(vec!["service.name".into(), "level".into()]);
    let mut log = record("x");
    log.severity_number = SeverityNumber::Error as i32;
    let converted = convert_with(
        vec![resource(
            attrs(&[("service.name", "s"), ("level", "debug")]),
            vec![log],
        )],
        &config,
    );
    assert_eq!(
        meta(only_entry(&converted).1, "detected_level"),
        Some("debug")
    );
}

#[test]
fn timestamps_fall_back_to_observed_then_arrival() {
    let mut observed_only = record("observed");
    observed_only.time_unix_nano = 0;
    observed_only.observed_time_unix_nano = T + 1;
    let mut neither = record("neither");
    neither.time_unix_nano = 0;
    let mut both = record("both");
    both.observed_time_unix_nano = T + 2;
    let converted = convert(vec![resource(vec![], vec![observed_only, neither, both])]);
    let entries = &converted.logs.streams[0].entries;
    let got: Vec<(&str, i64, Option<&str>)> = entries
        .iter()
        .map(|e| (e.line_str(), e.timestamp_ns, meta(e, "observed_timestamp")))
        .collect();
    let both_observed = (T + 2).to_string();
    assert_eq!(
        got,
        vec![
            ("both", T as i64, Some(both_observed.as_str())),
            ("observed", (T + 1) as i64, None),
            ("neither", NOW as i64, None),
        ]
    );

    let mut far = record("far future");
    far.time_unix_nano = u64::MAX;
    let converted = convert(vec![resource(vec![], vec![far, record("ok")])]);
    assert_eq!(converted.rejected_records, 1);
    assert_eq!(converted.rejections, vec![(REASON_INVALID_TIMESTAMP, 1)]);
    assert_eq!(converted.logs.streams[0].entries.len(), 1);
}

#[test]
fn entries_group_into_streams_in_order() {
    let at = |line: &str, t: u64| LogRecord {
        time_unix_nano: t,
        ..record(line)
    };
    let a = attrs(&[("service.name", "a")]);
    let b = attrs(&[("service.name", "b")]);
    let converted = convert(vec![
        resource(
            a.clone(),
            vec![at("a1", T + 10), at("a2", T + 5), at("a3", T + 5)],
        ),
        resource(b, vec![at("b1", T)]),
        // Another resource with the same labels: the same stream. Its other
        // attributes are metadata of its own entries.
        resource(
            [a, attrs(&[("host.name", "h2")])].concat(),
            vec![at("a4", T + 7)],
        ),
    ]);
    let streams: Vec<(String, Vec<&str>)> = converted
        .logs
        .streams
        .iter()
        .map(|s| {
            (
                s.labels.get("service_name").unwrap().to_string(),
                s.entries.iter().map(Entry::line_str).collect(),
            )
        })
        .collect();
    // Oldest first; equal timestamps keep the request's order.
    assert_eq!(
        streams,
        vec![
            ("a".to_string(), vec!["a2", "a3", "a4", "a1"]),
            ("b".to_string(), vec!["b1"]),
        ]
    );
    let a4 = &converted.logs.streams[0].entries[2];
    assert_eq!(a4.metadata, pairs(&[("host_name", "h2")]));
    assert_eq!(converted.logs.item_count(), 5);
}

#[test]
fn unrepresentable_records_are_rejected_and_counted() {
    let bad_log_key = LogRecord {
        attributes: attrs(&[("ok", "1"), ("..", "x")]),
        ..record("bad log key")
    };
    let short_trace = LogRecord {
        trace_id: vec![1, 2, 3],
        ..record("short trace id")
    };
    let long_span = LogRecord {
        span_id: vec![1; 9],
        ..record("long span id")
    };
    // All-zero ids are OTLP's "no id": kept, without metadata.
    let zero_ids = LogRecord {
        trace_id: vec![0; 16],
        span_id: vec![0; 8],
        ..record("zero ids")
    };
    let mut bad_scope = resource(
        attrs(&[("service.name", "s")]),
        vec![record("s1"), record("s2")],
    );
    bad_scope.scope_logs[0].scope = Some(InstrumentationScope {
        attributes: attrs(&[("", "empty key")]),
        ..Default::default()
    });
    let converted = convert(vec![
        resource(
            attrs(&[("service.name", "s")]),
            vec![
                bad_log_key,
                short_trace,
                long_span,
                zero_ids,
                record("fine"),
            ],
        ),
        resource(
            attrs(&[("a.", "x"), ("-.", "y")]),
            vec![record("r1"), record("r2"), record("r3")],
        ),
        bad_scope,
    ]);
    assert_eq!(converted.rejected_records, 8);
    assert_eq!(
        converted.rejections,
        vec![(REASON_INVALID_ATTRIBUTE, 6), (REASON_INVALID_ID, 2)]
    );
    let lines: Vec<&str> = converted.logs.streams[0]
        .entries
        .iter()
        .map(Entry::line_str)
        .collect();
    assert_eq!(lines, vec!["zero ids", "fine"]);
    assert!(converted.logs.streams[0].entries[0].metadata.is_empty());
    assert_eq!(converted.logs.streams.len(), 1, "no empty streams");
    assert_eq!(
        converted.error_message,
        "8 log records rejected: log attribute key \"..\" has no valid label name (1 record); \
         trace_id has 3 bytes, not 16 (1 record); span_id has 9 bytes, not 8 (1 record); \
         resource attribute key \"-.\" has no valid label name (3 records); \
         scope attribute key \"\" has no valid label name (2 records)"
    );
}

#[test]
fn nothing_in_nothing_out() {
    let converted = convert(vec![]);
    assert!(converted.logs.streams.is_empty());
    assert_eq!(converted.error_message, "");
    let converted = convert(vec![resource(attrs(&[("service.name", "s")]), vec![])]);
    assert!(converted.logs.streams.is_empty());
}
