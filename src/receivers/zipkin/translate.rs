//! Zipkin v2 spans → OTLP, by the OpenTelemetry Collector's rules
//! (`pkg/translator/zipkin/zipkinv2`, its default settings):
//!
//! - Spans are grouped by `localEndpoint.serviceName` (the resource's
//!   `service.name`; no attribute without one), then by the
//!   `otel.library.name` / `otel.library.version` tags (the scope). Tags that
//!   are resource attributes by the semantic conventions (`host.name`,
//!   `k8s.pod.name`, …) go to the resource from the group's first span and
//!   are never span attributes. Unlike the Collector, groups keep the order
//!   of the request.
//! - Ids as they are (a 64-bit trace id padded with zeros in front); a
//!   `parentId` equal to the span's own id is no parent; `w3c.tracestate` is
//!   the trace state.
//! - Kind: `CLIENT`, `SERVER`, `PRODUCER`, `CONSUMER`; otherwise a
//!   `span.kind` tag of `internal` is INTERNAL (the tag is removed).
//! - Status: `otel.status_code` (`STATUS_CODE_OK`, `Ok`, …) with
//!   `otel.status_description`; any `error` tag makes it ERROR (the tag is
//!   removed when it is `"true"`).
//! - Endpoints: `net.host.ip`, `net.host.port`; `peer.service`,
//!   `net.peer.ip`, `net.peer.port`.
//! - Times: `timestamp` and `duration` (µs); without a timestamp the span
//!   starts at 0 and gets `otel.zipkin.absentField.startTime = true`.
//! - Annotations are events: the name is the value up to the first `|`.
//! - Tags are string attributes, or typed (`-?\d+` int, `-?\d+\.\d+`
//!   double, `true`/`false` bool) with `parse_string_tags`.

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span as OtlpSpan, Status, span,
};

use super::model::{Kind, Span};

/// Tags that are resource attributes by the semantic conventions: moved to
/// the resource, never span attributes (the Collector's list).
const RESOURCE_TAGS: &[&str] = &[
    "cloud.provider",
    "cloud.account.id",
    "cloud.region",
    "cloud.availability_zone",
    "cloud.platform",
    "container.name",
    "container.id",
    "container.runtime",
    "container.image.name",
    "container.image.tag",
    "deployment.environment",
    "device.id",
    "device.model.identifier",
    "device.model.name",
    "device.manufacturer",
    "faas.name",
    "faas.id",
    "faas.version",
    "faas.instance",
    "faas.max_memory",
    "host.id",
    "host.name",
    "host.type",
    "host.arch",
    "host.image.name",
    "host.image.id",
    "host.image.version",
    "k8s.cluster.name",
    "k8s.node.name",
    "k8s.node.uid",
    "k8s.namespace.name",
    "k8s.pod.uid",
    "k8s.pod.name",
    "k8s.container.name",
    "k8s.container.restart_count",
    "k8s.replicaset.uid",
    "k8s.replicaset.name",
    "k8s.deployment.uid",
    "k8s.deployment.name",
    "k8s.statefulset.uid",
    "k8s.statefulset.name",
    "k8s.daemonset.uid",
    "k8s.daemonset.name",
    "k8s.job.uid",
    "k8s.job.name",
    "k8s.cronjob.uid",
    "k8s.cronjob.name",
    "os.type",
    "os.description",
    "os.name",
    "os.version",
    "process.pid",
    "process.executable.name",
    "process.executable.path",
    "process.command",
    "process.command_line",
    "process.command_args",
    "process.owner",
    "process.runtime.name",
    "process.runtime.version",
    "process.runtime.description",
    "service.name",
    "service.namespace",
    "service.instance.id",
    "service.version",
    "telemetry.sdk.name",
    "telemetry.sdk.language",
    "telemetry.sdk.version",
    "telemetry.auto.version",
    "webengine.name",
    "webengine.version",
    "webengine.description",
];

const LIBRARY_NAME: &str = "otel.library.name";
const LIBRARY_VERSION: &str = "otel.library.version";

/// The OTLP resource spans of `spans`.
pub fn to_otlp(spans: Vec<Span>, parse_string_tags: bool) -> Vec<ResourceSpans> {
    let mut out: Vec<ResourceSpans> = Vec::new();
    // (service, library) of each resource and scope, in first-seen order.
    let mut services: Vec<Option<String>> = Vec::new();
    let mut libraries: Vec<Vec<String>> = Vec::new();
    for mut span in spans {
        let service = span
            .local
            .as_ref()
            .map(|e| e.service_name.clone())
            .filter(|s| !s.is_empty());
        let library = span.tags.get(LIBRARY_NAME).cloned().unwrap_or_default();
        let r = match services.iter().position(|s| *s == service) {
            Some(r) => r,
            None => {
                services.push(service.clone());
                libraries.push(Vec::new());
                out.push(ResourceSpans {
                    resource: Some(resource(service.as_deref(), &span)),
                    ..Default::default()
                });
                out.len() - 1
            }
        };
        let s = match libraries[r].iter().position(|l| *l == library) {
            Some(s) => s,
            None => {
                libraries[r].push(library.clone());
                let scope = (!library.is_empty()).then(|| InstrumentationScope {
                    name: library.clone(),
                    version: span.tags.get(LIBRARY_VERSION).cloned().unwrap_or_default(),
                    ..Default::default()
                });
                out[r].scope_spans.push(ScopeSpans {
                    scope,
                    ..Default::default()
                });
                libraries[r].len() - 1
            }
        };
        span.tags.remove(LIBRARY_NAME);
        span.tags.remove(LIBRARY_VERSION);
        out[r].scope_spans[s]
            .spans
            .push(otlp_span(span, parse_string_tags));
    }
    out
}

/// The resource of a group, from its first span.
fn resource(service: Option<&str>, first: &Span) -> Resource {
    let mut attributes = Vec::new();
    if let Some(service) = service {
        attributes.push(string("service.name", service));
        for key in RESOURCE_TAGS.iter().filter(|k| **k != "service.name") {
            if let Some(value) = first.tags.get(*key) {
                attributes.push(string(key, value));
            }
        }
    }
    Resource {
        attributes,
        ..Default::default()
    }
}

fn string(key: &str, value: &str) -> KeyValue {
    typed(key, Value::StringValue(value.to_string()))
}

fn typed(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn otlp_span(mut z: Span, parse_string_tags: bool) -> OtlpSpan {
    let trace_state = z.tags.remove("w3c.tracestate").unwrap_or_default();
    let kind = match z.kind {
        Some(Kind::Client) => span::SpanKind::Client,
        Some(Kind::Server) => span::SpanKind::Server,
        Some(Kind::Producer) => span::SpanKind::Producer,
        Some(Kind::Consumer) => span::SpanKind::Consumer,
        None => match z.tags.remove("span.kind").as_deref() {
            Some("internal") => span::SpanKind::Internal,
            _ => span::SpanKind::Unspecified,
        },
    };
    let mut status = Status::default();
    if let Some(code) = z.tags.remove("otel.status_code") {
        status.code = match code.as_str() {
            "STATUS_CODE_OK" | "Ok" => 1,
            "STATUS_CODE_ERROR" | "Error" => 2,
            _ => 0,
        };
        if let Some(message) = z.tags.remove("otel.status_description") {
            status.message = message;
        }
    }
    if let Some(error) = z.tags.get("error") {
        status.code = 2;
        if error == "true" {
            z.tags.remove("error");
        }
    }
    let mut attributes: Vec<KeyValue> = z
        .tags
        .iter()
        .filter(|(k, _)| !RESOURCE_TAGS.contains(&k.as_str()))
        .map(|(k, v)| {
            if parse_string_tags {
                typed(k, typed_value(v))
            } else {
                string(k, v)
            }
        })
        .collect();
    let mut set = |key: &str, value: Value| {
        attributes.retain(|a| a.key != key);
        attributes.push(typed(key, value));
    };
    if let Some(local) = &z.local {
        if let Some(ip) = local.ip() {
            set("net.host.ip", Value::StringValue(ip.to_string()));
        }
        if local.port > 0 {
            set("net.host.port", Value::IntValue(i64::from(local.port)));
        }
    }
    if let Some(remote) = &z.remote {
        if !remote.service_name.is_empty() {
            set(
                "peer.service",
                Value::StringValue(remote.service_name.clone()),
            );
        }
        if let Some(ip) = remote.ip() {
            set("net.peer.ip", Value::StringValue(ip.to_string()));
        }
        if remote.port > 0 {
            set("net.peer.port", Value::IntValue(i64::from(remote.port)));
        }
    }
    let start = match z.timestamp_us {
        Some(us) => us.saturating_mul(1000),
        None => {
            set("otel.zipkin.absentField.startTime", Value::BoolValue(true));
            0
        }
    };
    let end = start.saturating_add(z.duration_us.saturating_mul(1000));
    let events = z
        .annotations
        .iter()
        .map(|(us, value)| span::Event {
            time_unix_nano: us.saturating_mul(1000),
            name: value.split('|').next().unwrap_or_default().to_string(),
            ..Default::default()
        })
        .collect();
    let parent_span_id = match z.parent_id {
        Some(parent) if parent != z.id => parent.to_vec(),
        _ => Vec::new(),
    };
    OtlpSpan {
        trace_id: z.trace_id.to_vec(),
        span_id: z.id.to_vec(),
        trace_state,
        parent_span_id,
        name: z.name,
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes,
        events,
        status: Some(status),
        ..Default::default()
    }
}

/// A tag's value typed as the Collector's `parse_string_tags` types it.
fn typed_value(text: &str) -> Value {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    if digits(unsigned) {
        let value = text.parse::<i64>().unwrap_or(if text.starts_with('-') {
            i64::MIN
        } else {
            i64::MAX
        });
        return Value::IntValue(value);
    }
    if let Some((whole, fraction)) = unsigned.split_once('.')
        && digits(whole)
        && digits(fraction)
        && let Ok(value) = text.parse::<f64>()
    {
        return Value::DoubleValue(value);
    }
    match text {
        "true" => Value::BoolValue(true),
        "false" => Value::BoolValue(false),
        _ => Value::StringValue(text.to_string()),
    }
}
