use super::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue as ArrayMsg, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message;

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// A request using every field the walker knows.
fn rich_request() -> ExportTraceServiceRequest {
    use any_value::Value::*;
    let nested = KvlistValue(KeyValueList {
        values: vec![kv(
            "inner",
            ArrayValue(ArrayMsg {
                values: vec![
                    AnyValue {
                        value: Some(IntValue(1)),
                    },
                    AnyValue {
                        value: Some(BytesValue(vec![0, 1, 2])),
                    },
                ],
            }),
        )],
    });
    let span = |i: u8| Span {
        trace_id: vec![i; 16],
        span_id: vec![i; 8],
        trace_state: "k=v".into(),
        parent_span_id: vec![9; 8],
        flags: 0x301,
        name: format!("span-{i}"),
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: 10,
        end_time_unix_nano: 20,
        attributes: vec![
            kv("s", StringValue("x".into())),
            kv("b", BoolValue(true)),
            kv("d", DoubleValue(1.5)),
            kv("n", nested.clone()),
        ],
        dropped_attributes_count: 1,
        events: vec![span::Event {
            time_unix_nano: 15,
            name: "e".into(),
            attributes: vec![kv("k", IntValue(-5))],
            dropped_attributes_count: 2,
        }],
        dropped_events_count: 3,
        links: vec![span::Link {
            trace_id: vec![7; 16],
            span_id: vec![7; 8],
            trace_state: "a=b".into(),
            attributes: vec![kv("l", StringValue("y".into()))],
            dropped_attributes_count: 0,
            flags: 1,
        }],
        dropped_links_count: 4,
        status: Some(Status {
            message: "oops".into(),
            code: 2,
        }),
    };
    ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", StringValue("a".into()))],
                    dropped_attributes_count: 1,
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "lib".into(),
                        version: "1".into(),
                        attributes: vec![kv("scope.attr", BoolValue(false))],
                        dropped_attributes_count: 0,
                    }),
                    spans: vec![span(1), span(2)],
                    schema_url: "https://x/1".into(),
                }],
                schema_url: "https://x/2".into(),
            },
            ResourceSpans {
                resource: None,
                scope_spans: vec![ScopeSpans {
                    scope: None,
                    spans: vec![span(3)],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            },
        ],
    }
}

#[test]
fn finds_each_resource_spans_and_counts_spans() {
    let request = rich_request();
    let bytes = request.encode_to_vec();
    let infos = trace_request(&bytes).unwrap();
    assert_eq!(infos.len(), 2);
    assert_eq!((infos[0].spans, infos[0].invalid_spans), (2, 0));
    assert_eq!((infos[1].spans, infos[1].invalid_spans), (1, 0));
    for (info, original) in infos.iter().zip(&request.resource_spans) {
        let decoded = ResourceSpans::decode(&bytes[info.range.clone()]).unwrap();
        assert_eq!(
            &decoded, original,
            "the range is exactly that ResourceSpans"
        );
    }
}

#[test]
fn counts_spans_with_invalid_ids() {
    let mut request = rich_request();
    let spans = &mut request.resource_spans[0].scope_spans[0].spans;
    spans[0].trace_id = vec![0; 16];
    spans[1].span_id = vec![1; 7];
    request.resource_spans[1].scope_spans[0].spans[0]
        .trace_id
        .clear();
    let infos = trace_request(&request.encode_to_vec()).unwrap();
    assert_eq!(infos[0].invalid_spans, 2);
    assert_eq!(infos[1].invalid_spans, 1);
}

#[test]
fn refuses_what_prost_refuses() {
    let bytes = rich_request().encode_to_vec();
    assert!(
        trace_request(&bytes[..bytes.len() - 1]).is_err(),
        "truncated"
    );
    assert!(
        trace_request(b"\x0a\xff\xff\xff\xff\x0f").is_err(),
        "length past the end"
    );
    assert!(
        trace_request(b"\x08\x01").is_err(),
        "resource_spans as a varint"
    );
    // A span name that is not UTF-8.
    let mut request = rich_request();
    request.resource_spans[0].scope_spans[0].spans[0].name = "\u{1}".into();
    let mut bytes = request.encode_to_vec();
    let at = bytes
        .windows(3)
        .position(|w| w == [0x2a, 0x01, 0x01])
        .unwrap();
    bytes[at + 2] = 0xff;
    assert!(ExportTraceServiceRequest::decode(bytes.as_slice()).is_err());
    assert!(trace_request(&bytes).is_err());
}

/// `bytes` as length-delimited field `field`.
fn wrap(field: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_key(field, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(bytes.len() as u64, &mut out);
    out.extend_from_slice(bytes);
    out
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    // Built by hand: prost's own encoder and destructor recurse too.
    let mut any = vec![0x18, 0x01]; // AnyValue { int_value: 1 }
    for _ in 0..10_000 {
        any = wrap(5, &wrap(1, &any)); // AnyValue { array_value: ArrayValue { values: [any] } }
    }
    let key_value = [wrap(1, b"deep"), wrap(2, &any)].concat();
    let request = wrap(1, &wrap(1, &wrap(1, &key_value)));
    assert_eq!(
        trace_request(&request).unwrap_err(),
        ScanError("attribute values are nested too deeply")
    );
}

/// Random corruptions of a valid request: whatever the walker accepts, prost
/// decodes, so nothing it passes on can be undecodable downstream.
#[test]
fn accepts_nothing_prost_cannot_decode() {
    let original = rich_request().encode_to_vec();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..20_000 {
        let mut bytes = original.clone();
        for _ in 0..(1 + next() % 3) {
            let at = (next() as usize) % bytes.len();
            match next() % 3 {
                0 => bytes[at] = next() as u8,
                1 => bytes.truncate(at.max(1)),
                _ => bytes.insert(at, next() as u8),
            }
        }
        match trace_request(&bytes) {
            Ok(infos) => {
                accepted += 1;
                let decoded =
                    ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap_or_else(|e| {
                        panic!("walker accepted what prost refuses ({e}): {bytes:02x?}")
                    });
                let spans: usize = decoded
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .map(|s| s.spans.len())
                    .sum();
                assert_eq!(infos.iter().map(|i| i.spans).sum::<usize>(), spans);
            }
            Err(_) => refused += 1,
        }
    }
    assert!(
        accepted > 100 && refused > 100,
        "both outcomes were exercised: {accepted} / {refused}"
    );
}
