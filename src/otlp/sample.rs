//! Realistic sample traffic for the benchmarks and the load harness.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// `count` distinct requests of `spans` spans, each span with 10 attributes of
/// mixed types (HTTP server spans as an instrumented web service makes them).
pub fn trace_requests(count: usize, spans: usize) -> Vec<ExportTraceServiceRequest> {
    use any_value::Value::*;
    let mut id = 1u64;
    (0..count)
        .map(|r| {
            let spans = (0..spans)
                .map(|s| {
                    id += 1;
                    Span {
                        trace_id: [(r as u64).to_be_bytes(), id.to_be_bytes()].concat(),
                        span_id: id.to_be_bytes().to_vec(),
                        parent_span_id: (id - 1).to_be_bytes().to_vec(),
                        name: format!("GET /api/v1/orders/{}", s % 50),
                        kind: span::SpanKind::Server as i32,
                        start_time_unix_nano: 1_700_000_000_000_000_000 + id * 1000,
                        end_time_unix_nano: 1_700_000_000_000_000_000 + id * 1000 + 250_000,
                        attributes: vec![
                            kv("http.request.method", StringValue("GET".into())),
                            kv("http.route", StringValue("/api/v1/orders/{id}".into())),
                            kv("http.response.status_code", IntValue(200)),
                            kv(
                                "url.full",
                                StringValue(format!("https://shop.example.com/api/v1/orders/{id}")),
                            ),
                            kv("server.address", StringValue("shop.example.com".into())),
                            kv("server.port", IntValue(443)),
                            kv("network.protocol.version", StringValue("1.1".into())),
                            kv(
                                "user_agent.original",
                                StringValue("Mozilla/5.0 (X11; Linux x86_64)".into()),
                            ),
                            kv("app.cache_hit", BoolValue(s % 3 == 0)),
                            kv("app.items", DoubleValue(s as f64 * 1.5)),
                        ],
                        ..Default::default()
                    }
                })
                .collect();
            ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![
                            kv("service.name", StringValue(format!("shop-{}", r % 4))),
                            kv("k8s.pod.name", StringValue(format!("shop-7d9f-{r}"))),
                        ],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "load".into(),
                            ..Default::default()
                        }),
                        spans,
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                }],
            }
        })
        .collect()
}
