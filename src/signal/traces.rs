//! Traces as OTLP `ResourceSpans`, exactly as received.

use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;

use super::{Signal, SignalData};

/// A batch of spans grouped by resource and instrumentation scope.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Traces {
    pub resource_spans: Vec<ResourceSpans>,
}

impl Traces {
    pub fn new(resource_spans: Vec<ResourceSpans>) -> Self {
        Self { resource_spans }
    }
}

impl SignalData for Traces {
    const SIGNAL: Signal = Signal::Traces;

    fn item_count(&self) -> usize {
        self.resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum()
    }

    fn encoded_len(&self) -> usize {
        // Each ResourceSpans is field 1 of ExportTraceServiceRequest.
        self.resource_spans
            .iter()
            .map(|rs| {
                let len = rs.encoded_len();
                1 + prost::encoding::encoded_len_varint(len as u64) + len
            })
            .sum()
    }

    fn merge(&mut self, other: Self) {
        self.resource_spans.extend(other.resource_spans);
    }

    fn split_to(&mut self, n: usize) -> Self {
        let mut taken = Vec::new();
        let mut remaining = n;
        while remaining > 0 && !self.resource_spans.is_empty() {
            let count: usize = self.resource_spans[0]
                .scope_spans
                .iter()
                .map(|s| s.spans.len())
                .sum();
            if count <= remaining {
                remaining -= count;
                taken.push(self.resource_spans.remove(0));
                continue;
            }
            // Split inside this resource: the taken part keeps a copy of the
            // resource and of each scope it draws spans from.
            let rs = &mut self.resource_spans[0];
            let mut part = ResourceSpans {
                resource: rs.resource.clone(),
                scope_spans: Vec::new(),
                schema_url: rs.schema_url.clone(),
            };
            while remaining > 0 {
                let ss = &mut rs.scope_spans[0];
                if ss.spans.len() <= remaining {
                    remaining -= ss.spans.len();
                    part.scope_spans.push(rs.scope_spans.remove(0));
                } else {
                    let rest = ss.spans.split_off(remaining);
                    let head = std::mem::replace(&mut ss.spans, rest);
                    part.scope_spans.push(ScopeSpans {
                        scope: ss.scope.clone(),
                        spans: head,
                        schema_url: ss.schema_url.clone(),
                    });
                    remaining = 0;
                }
            }
            taken.push(part);
        }
        Traces {
            resource_spans: taken,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, InstrumentationScope, KeyValue, any_value,
    };
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
    pub fn sample(resources: usize, scopes: usize, spans: usize) -> Traces {
        let mut next = 0u64;
        let resource_spans = (0..resources)
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
            .collect();
        Traces { resource_spans }
    }

    fn span_names(t: &Traces) -> Vec<String> {
        t.resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .map(|s| s.name.clone())
            .collect()
    }

    #[test]
    fn counts_and_sizes_match_the_wire() {
        let t = sample(2, 3, 4);
        assert_eq!(t.item_count(), 24);
        let request = ExportTraceServiceRequest {
            resource_spans: t.resource_spans.clone(),
        };
        assert_eq!(t.encoded_len(), request.encoded_len());
    }

    #[test]
    fn split_keeps_order_resources_and_scopes() {
        let mut t = sample(2, 2, 3); // 12 spans
        let all = span_names(&t);
        let head = t.split_to(5);
        assert_eq!(head.item_count(), 5);
        assert_eq!(t.item_count(), 7);
        let mut rejoined = span_names(&head);
        rejoined.extend(span_names(&t));
        assert_eq!(rejoined, all);
        // The split resource appears on both sides with its attributes intact.
        assert_eq!(head.resource_spans.len(), 1);
        assert_eq!(
            t.resource_spans[0].resource,
            head.resource_spans[0].resource
        );
        assert_eq!(
            head.resource_spans[0].scope_spans[1]
                .scope
                .as_ref()
                .unwrap()
                .name,
            "scope-1"
        );
        assert_eq!(
            t.resource_spans[0].scope_spans[0]
                .scope
                .as_ref()
                .unwrap()
                .name,
            "scope-1"
        );
    }

    #[test]
    fn split_beyond_length_takes_everything() {
        let mut t = sample(1, 1, 3);
        let head = t.split_to(10);
        assert_eq!(head.item_count(), 3);
        assert_eq!(t.item_count(), 0);
        assert!(t.resource_spans.is_empty());
    }

    #[test]
    fn merge_appends() {
        let mut a = sample(1, 1, 2);
        a.merge(sample(1, 1, 3));
        assert_eq!(a.item_count(), 5);
        assert_eq!(a.resource_spans.len(), 2);
    }
}
