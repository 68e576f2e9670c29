use super::*;
use crate::otlp::scan;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;

pub fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// `resources` resources, each with `scopes` scopes of `spans` spans.
pub fn sample_resource_spans(resources: usize, scopes: usize, spans: usize) -> Vec<ResourceSpans> {
    let mut next = 0u64;
    (0..resources)
        .map(|r| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", &format!("svc-{r}"))],
                ..Default::default()
            }),
            scope_spans: (0..scopes)
                .map(|s| ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: format!("scope-{s}"),
                        ..Default::default()
                    }),
                    spans: (0..spans)
                        .map(|_| {
                            next += 1;
                            Span {
                                trace_id: [1; 16].to_vec(),
                                span_id: next.to_be_bytes().to_vec(),
                                name: format!("span-{next}"),
                                attributes: vec![kv("k", "v")],
                                ..Default::default()
                            }
                        })
                        .collect(),
                    schema_url: String::new(),
                })
                .collect(),
            schema_url: String::new(),
        })
        .collect()
}

/// Decoded sample traces.
pub fn sample(resources: usize, scopes: usize, spans: usize) -> Traces {
    Traces::new(sample_resource_spans(resources, scopes, spans))
}

/// The same sample as it arrives on the wire: encoded parts.
pub fn sample_encoded(resources: usize, scopes: usize, spans: usize) -> Traces {
    let body: Bytes = ExportTraceServiceRequest {
        resource_spans: sample_resource_spans(resources, scopes, spans),
    }
    .encode_to_vec()
    .into();
    let infos = scan::trace_request(&body).unwrap();
    let (traces, removed) = Traces::from_scanned(&body, infos);
    assert_eq!(removed, 0);
    traces
}

fn span_names(t: &Traces) -> Vec<String> {
    t.resource_spans()
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| s.name.clone())
        .collect()
}

fn request_bytes(t: &Traces) -> Vec<u8> {
    let mut buf = Vec::new();
    t.encode_request(&mut buf);
    buf
}

#[test]
fn counts_and_sizes_match_the_wire_in_both_forms() {
    for t in [sample(2, 3, 4), sample_encoded(2, 3, 4)] {
        assert_eq!(t.item_count(), 24);
        let request = ExportTraceServiceRequest {
            resource_spans: t.resource_spans(),
        };
        assert_eq!(t.encoded_len(), request.encoded_len());
        assert_eq!(
            request_bytes(&t),
            request.encode_to_vec(),
            "encoded parts are written back byte for byte"
        );
    }
}

#[test]
fn split_keeps_order_resources_and_scopes() {
    for mut t in [sample(2, 2, 3), sample_encoded(2, 2, 3)] {
        let all = span_names(&t);
        let head = t.split_to(5);
        assert_eq!(head.item_count(), 5);
        assert_eq!(t.item_count(), 7);
        let mut rejoined = span_names(&head);
        rejoined.extend(span_names(&t));
        assert_eq!(rejoined, all);
        // The split resource appears on both sides with its attributes intact.
        let (head_rs, tail_rs) = (head.resource_spans(), t.resource_spans());
        assert_eq!(head_rs.len(), 1);
        assert_eq!(tail_rs[0].resource, head_rs[0].resource);
        assert_eq!(
            head_rs[0].scope_spans[1].scope.as_ref().unwrap().name,
            "scope-1"
        );
        assert_eq!(
            tail_rs[0].scope_spans[0].scope.as_ref().unwrap().name,
            "scope-1"
        );
    }
}

#[test]
fn split_on_resource_boundaries_keeps_parts_encoded() {
    let mut t = sample_encoded(3, 1, 4);
    let head = t.split_to(8);
    assert_eq!((head.item_count(), t.item_count()), (8, 4));
    assert!(
        head.parts
            .iter()
            .chain(&t.parts)
            .all(|p| matches!(p, Part::Encoded { .. }))
    );
}

#[test]
fn split_beyond_length_takes_everything() {
    let mut t = sample(1, 1, 3);
    let head = t.split_to(10);
    assert_eq!(head.item_count(), 3);
    assert_eq!(t.item_count(), 0);
    assert_eq!(t.resource_count(), 0);
}

#[test]
fn merge_appends() {
    let mut a = sample(1, 1, 2);
    a.merge(sample_encoded(1, 1, 3));
    assert_eq!(a.item_count(), 5);
    assert_eq!(a.resource_count(), 2);
}

#[test]
fn invalid_spans_are_removed_and_counted() {
    let mut rs = sample_resource_spans(2, 1, 3);
    rs[1].scope_spans[0].spans[1].span_id = vec![0; 8];
    let body: Bytes = ExportTraceServiceRequest { resource_spans: rs }
        .encode_to_vec()
        .into();
    let (t, removed) = Traces::from_scanned(&body, scan::trace_request(&body).unwrap());
    assert_eq!(removed, 1);
    assert_eq!(t.item_count(), 5);
    assert!(
        matches!(t.parts[0], Part::Encoded { .. }),
        "the clean resource stays encoded"
    );
}

#[test]
fn changes_through_the_mutable_view_are_exported() {
    let mut t = sample_encoded(1, 1, 2);
    t.for_each_resource_spans_mut(|rs| rs.scope_spans[0].spans[0].name = "renamed".into());
    let decoded = ExportTraceServiceRequest::decode(request_bytes(&t).as_slice()).unwrap();
    assert_eq!(
        decoded.resource_spans[0].scope_spans[0].spans[0].name,
        "renamed"
    );
    assert_eq!(t.item_count(), 2);
}
