use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use prost::Message;

use super::model::{self, ModelError};
use super::translate::to_otlp;

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
}

fn text(value: Option<&Value>) -> Option<&str> {
    match value {
        Some(Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

fn convert(json: &str) -> Vec<ResourceSpans> {
    to_otlp(model::from_json(json.as_bytes()).unwrap(), false)
}

const FRONTEND: &str = r#"[{
  "traceId": "5af7183fb1d4cf5f",
  "parentId": "6b221d5bc9e6496c",
  "id": "352bff9a74ca9ad2",
  "kind": "CLIENT",
  "name": "get /api",
  "timestamp": 1556604172355737,
  "duration": 1431,
  "localEndpoint": {"serviceName": "frontend", "ipv4": "192.168.99.1", "port": 8080},
  "remoteEndpoint": {"serviceName": "backend", "ipv6": "2001:db8::c001", "port": 9000},
  "annotations": [{"timestamp": 1556604172355800, "value": "ws|{\"a\":1}|0"}],
  "tags": {"http.method": "GET", "http.path": "/api", "error": "true",
           "otel.library.name": "requests", "otel.library.version": "2.1",
           "host.name": "node-7", "w3c.tracestate": "vendor=1"}
}]"#;

#[test]
fn a_zipkin_span_becomes_otlp_by_the_collectors_rules() {
    let out = convert(FRONTEND);
    assert_eq!(out.len(), 1);
    let resource = out[0].resource.as_ref().unwrap();
    let keys: Vec<(&str, &str)> = resource
        .attributes
        .iter()
        .map(|a| {
            (
                a.key.as_str(),
                text(a.value.as_ref().and_then(|v| v.value.as_ref())).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [("service.name", "frontend"), ("host.name", "node-7")]
    );
    let scope = &out[0].scope_spans[0];
    let library = scope.scope.as_ref().unwrap();
    assert_eq!(
        (library.name.as_str(), library.version.as_str()),
        ("requests", "2.1")
    );
    let span = &scope.spans[0];
    let mut trace_id = vec![0u8; 8];
    trace_id.extend_from_slice(&[0x5a, 0xf7, 0x18, 0x3f, 0xb1, 0xd4, 0xcf, 0x5f]);
    assert_eq!(span.trace_id, trace_id, "a 64-bit trace id, zeros in front");
    assert_eq!(
        span.span_id,
        [0x35, 0x2b, 0xff, 0x9a, 0x74, 0xca, 0x9a, 0xd2]
    );
    assert_eq!(
        span.parent_span_id,
        [0x6b, 0x22, 0x1d, 0x5b, 0xc9, 0xe6, 0x49, 0x6c]
    );
    assert_eq!(span.trace_state, "vendor=1");
    assert_eq!(span.kind, 3, "CLIENT");
    assert_eq!(span.start_time_unix_nano, 1_556_604_172_355_737_000);
    assert_eq!(
        span.end_time_unix_nano,
        1_556_604_172_355_737_000 + 1_431_000
    );
    assert_eq!(span.status.as_ref().unwrap().code, 2, "error=true is ERROR");
    assert_eq!(attr(span, "error"), None, "error=true is consumed");
    assert_eq!(text(attr(span, "http.method")), Some("GET"));
    assert_eq!(text(attr(span, "net.host.ip")), Some("192.168.99.1"));
    assert_eq!(attr(span, "net.host.port"), Some(&Value::IntValue(8080)));
    assert_eq!(text(attr(span, "peer.service")), Some("backend"));
    assert_eq!(text(attr(span, "net.peer.ip")), Some("2001:db8::c001"));
    assert_eq!(attr(span, "net.peer.port"), Some(&Value::IntValue(9000)));
    for gone in ["host.name", "otel.library.name", "w3c.tracestate"] {
        assert_eq!(attr(span, gone), None, "{gone}");
    }
    assert_eq!(span.events.len(), 1);
    assert_eq!(span.events[0].name, "ws");
    assert_eq!(span.events[0].time_unix_nano, 1_556_604_172_355_800_000);
}

#[test]
fn kinds_status_and_missing_fields() {
    let out = convert(
        r#"[
      {"traceId": "463ac35c9f6413ad48485a3953bb6124", "id": "a2fb4a1d1a96d312", "name": "work",
       "tags": {"span.kind": "internal", "otel.status_code": "STATUS_CODE_OK", "otel.status_description": "fine"}},
      {"traceId": "463ac35c9f6413ad48485a3953bb6124", "id": "a2fb4a1d1a96d313", "parentId": "a2fb4a1d1a96d313",
       "kind": "SERVER", "timestamp": 5, "tags": {"error": "timeout"}}
    ]"#,
    );
    assert_eq!(out.len(), 1, "one resource: no service name");
    assert!(out[0].resource.as_ref().unwrap().attributes.is_empty());
    let spans = &out[0].scope_spans[0].spans;
    assert_eq!(spans[0].kind, 1, "INTERNAL from span.kind");
    assert_eq!(attr(&spans[0], "span.kind"), None);
    let status = spans[0].status.as_ref().unwrap();
    assert_eq!((status.code, status.message.as_str()), (1, "fine"));
    assert_eq!(spans[0].start_time_unix_nano, 0);
    assert_eq!(
        attr(&spans[0], "otel.zipkin.absentField.startTime"),
        Some(&Value::BoolValue(true))
    );
    assert_eq!(spans[1].kind, 2);
    assert!(
        spans[1].parent_span_id.is_empty(),
        "its own id is no parent"
    );
    assert_eq!(spans[1].status.as_ref().unwrap().code, 2);
    assert_eq!(
        text(attr(&spans[1], "error")),
        Some("timeout"),
        "kept unless \"true\""
    );
}

#[test]
fn typed_tags_when_asked() {
    let spans = model::from_json(
        br#"[{"traceId": "5af7183fb1d4cf5f", "id": "352bff9a74ca9ad2",
              "tags": {"i": "-42", "d": "1.5", "b": "true", "s": "1e5", "big": "99999999999999999999"}}]"#,
    )
    .unwrap();
    let out = to_otlp(spans, true);
    let span = &out[0].scope_spans[0].spans[0];
    assert_eq!(attr(span, "i"), Some(&Value::IntValue(-42)));
    assert_eq!(attr(span, "d"), Some(&Value::DoubleValue(1.5)));
    assert_eq!(attr(span, "b"), Some(&Value::BoolValue(true)));
    assert_eq!(text(attr(span, "s")), Some("1e5"));
    assert_eq!(attr(span, "big"), Some(&Value::IntValue(i64::MAX)));
}

#[test]
fn bad_spans_are_refused_with_their_index_and_reason() {
    let error = |json: &str| model::from_json(json.as_bytes()).unwrap_err().to_string();
    assert!(error("{").contains("not a JSON list"));
    assert!(error(r#"{"traceId": "1"}"#).contains("not a JSON list"));
    assert_eq!(
        error(
            r#"[{"traceId": "5af7183fb1d4cf5f", "id": "352bff9a74ca9ad2"}, {"traceId": "abc", "id": "352bff9a74ca9ad2"}]"#
        ),
        "span 1: traceId \"abc\" must be 16 or 32 hex characters"
    );
    assert!(
        error(r#"[{"traceId": "zzzzzzzzzzzzzzzz", "id": "352bff9a74ca9ad2"}]"#)
            .contains("is not hex")
    );
    assert!(
        error(r#"[{"traceId": "0000000000000000", "id": "352bff9a74ca9ad2"}]"#)
            .contains("must not be zero")
    );
    assert!(error(r#"[{"traceId": "5af7183fb1d4cf5f"}]"#).contains("id \"\" must be 16 hex"));
    assert!(error(r#"[{"traceId": "5af7183fb1d4cf5f", "id": "352bff9a74ca9ad2", "localEndpoint": {"ipv4": "300.1.1.1"}}]"#).contains("IPv4"));
    assert!(error(r#"[{"traceId": "5af7183fb1d4cf5f", "id": "352bff9a74ca9ad2", "annotations": [{"value": "x"}]}]"#).contains("annotation needs a timestamp"));
    assert!(matches!(
        model::from_protobuf(b"\xff\xff"),
        Err(ModelError::Protobuf(_))
    ));
}

#[test]
fn protobuf_spans_read_as_json_ones() {
    use ferro_proto::zipkin::{Endpoint, ListOfSpans, Span as ZSpan};
    let list = ListOfSpans {
        spans: vec![ZSpan {
            trace_id: vec![0x5a, 0xf7, 0x18, 0x3f, 0xb1, 0xd4, 0xcf, 0x5f],
            id: vec![0x35, 0x2b, 0xff, 0x9a, 0x74, 0xca, 0x9a, 0xd2],
            kind: 2,
            name: "get".into(),
            timestamp: 1_556_604_172_355_737,
            duration: 10,
            local_endpoint: Some(Endpoint {
                service_name: "backend".into(),
                ipv4: vec![10, 0, 0, 1],
                ..Default::default()
            }),
            tags: [("a".to_string(), "b".to_string())].into(),
            ..Default::default()
        }],
    };
    let spans = model::from_protobuf(&list.encode_to_vec()).unwrap();
    let out = to_otlp(spans, false);
    let span = &out[0].scope_spans[0].spans[0];
    assert_eq!(span.kind, 2);
    assert_eq!(
        &span.trace_id[8..],
        [0x5a, 0xf7, 0x18, 0x3f, 0xb1, 0xd4, 0xcf, 0x5f]
    );
    assert_eq!(text(attr(span, "net.host.ip")), Some("10.0.0.1"));
    let bad = ListOfSpans {
        spans: vec![ZSpan {
            trace_id: vec![1; 5],
            id: vec![1; 8],
            ..Default::default()
        }],
    };
    let error = model::from_protobuf(&bad.encode_to_vec())
        .unwrap_err()
        .to_string();
    assert_eq!(error, "span 0: trace_id has 5 bytes, not 8 or 16");
}
