//! The Zipkin receiver end to end: the OpenTelemetry Python SDK's Zipkin
//! exporter (v2 JSON) sends spans to ferro, which converts them to OTLP and
//! exports them to the recording OTLP sink; every span arrives with what the
//! Collector's translation makes of the Zipkin JSON the client sent, value
//! for value. Protobuf, compressed and bad bodies are sent by hand.

mod common;

use common::sink::{FlatSpan, Sink};
use common::{Ferro, WAIT, http_post, python_script, python_with};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use std::process::Command;

fn config(sink: &Sink, extra: &str) -> String {
    format!(
        r#"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.zipkin.in]
        http = "127.0.0.1:0"
        {extra}
        [processors.batch.b]
        timeout = "50ms"
        [exporters.otlp.out]
        endpoint = "http://{grpc}"
        [pipelines.traces]
        receivers = ["zipkin.in"]
        processors = ["batch.b"]
        exporters = ["otlp.out"]
        "#,
        grpc = sink.grpc,
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attr<'a>(span: &'a FlatSpan, key: &str) -> Option<&'a Value> {
    span.span
        .attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
}

/// Runs the SDK's Zipkin exporter (`protocol` `json` or `proto`) from
/// `python` against a fresh ferro; what it sent and what arrived.
async fn send(python: &str, protocol: &str) -> (Vec<serde_json::Value>, Vec<FlatSpan>, Ferro) {
    let sink = Sink::start().await;
    let ferro = Ferro::start(&config(&sink, ""));
    let url = format!(
        "http://{}/api/v2/spans",
        ferro.listener("zipkin.in", "http")
    );
    let output = Command::new(python)
        .arg(python_script("send_zipkin.py"))
        .args([&url, "checkout", protocol])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the Zipkin client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let sent: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    sink.wait_for_spans(sent.len(), WAIT).await;
    (sent, sink.spans(), ferro)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_zipkin_json_spans_arrive_as_the_collector_converts_them() {
    let Some(python) = python_with(&["opentelemetry.sdk", "opentelemetry.exporter.zipkin.json"])
    else {
        return;
    };
    let (sent, arrived, ferro) = send(&python, "json").await;
    check(&sent, &arrived);
    assert_eq!(
        ferro.metric("ferro_receiver_accepted_items_total", &["zipkin.in"]),
        3.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_zipkin_protobuf_spans_arrive_as_the_collector_converts_them() {
    // The protobuf exporter pins protobuf 3.x: scripts/test gives it a venv.
    let python = std::env::var("FERRO_ZIPKIN_PROTO_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/target/venvs/zipkin-proto/bin/python",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let installed = std::path::Path::new(&python).exists();
    if !common::have(
        "the Zipkin protobuf exporter's venv",
        installed,
        "scripts/test creates it",
    ) {
        return;
    }
    let (sent, arrived, _ferro) = send(&python, "proto").await;
    check(&sent, &arrived);
}

/// Each span `sent` (as Zipkin v2 JSON) arrived as the Collector's rules
/// convert it.
fn check(sent: &[serde_json::Value], arrived: &[FlatSpan]) {
    assert_eq!(sent.len(), 3);
    assert_eq!(arrived.len(), 3);
    for z in sent {
        let id = z["id"].as_str().unwrap();
        let span = arrived
            .iter()
            .find(|s| hex(&s.span.span_id) == id)
            .unwrap_or_else(|| panic!("span {id} arrived"));
        let what = format!("{z}");
        assert_eq!(
            hex(&span.span.trace_id),
            z["traceId"].as_str().unwrap(),
            "{what}"
        );
        assert_eq!(
            hex(&span.span.parent_span_id),
            z["parentId"].as_str().unwrap_or(""),
            "{what}"
        );
        assert_eq!(span.span.name, z["name"].as_str().unwrap());
        let start = z["timestamp"].as_u64().unwrap() * 1000;
        assert_eq!(span.span.start_time_unix_nano, start);
        assert_eq!(
            span.span.end_time_unix_nano,
            start + z["duration"].as_u64().unwrap() * 1000
        );
        let kind = match z["kind"].as_str() {
            Some("SERVER") => 2,
            Some("CLIENT") => 3,
            _ => 0,
        };
        assert_eq!(span.span.kind, kind, "{what}");
        // The resource: the local endpoint's service.
        let resource = span.resource.as_ref().unwrap();
        assert_eq!(resource.attributes[0].key, "service.name");
        assert_eq!(
            resource.attributes[0].value.as_ref().unwrap().value,
            Some(Value::StringValue("checkout".into()))
        );
        // The scope: otel.library.name and version.
        let scope = span.scope.as_ref().unwrap();
        assert_eq!(scope.name, z["tags"]["otel.library.name"].as_str().unwrap());
        assert_eq!(
            scope.version,
            z["tags"]["otel.library.version"].as_str().unwrap()
        );
        // Every other tag a string attribute, the local endpoint's address.
        let consumed = [
            "otel.library.name",
            "otel.library.version",
            "otel.status_code",
        ];
        let resource_keys = [
            "service.name",
            "service.instance.id",
            "telemetry.sdk.language",
            "telemetry.sdk.name",
            "telemetry.sdk.version",
        ];
        for (key, value) in z["tags"].as_object().unwrap() {
            if consumed.contains(&key.as_str()) {
                assert_eq!(attr(span, key), None, "{key} consumed");
                continue;
            }
            // Resource attributes by the semantic conventions go to the
            // resource, never to the span.
            if resource_keys.contains(&key.as_str()) {
                assert_eq!(attr(span, key), None, "{key} is the resource's");
                let on_resource = resource
                    .attributes
                    .iter()
                    .find(|a| a.key == *key)
                    .and_then(|a| a.value.as_ref()?.value.clone());
                assert_eq!(
                    on_resource,
                    Some(Value::StringValue(value.as_str().unwrap().into())),
                    "{key}"
                );
                continue;
            }
            assert_eq!(
                attr(span, key),
                Some(&Value::StringValue(value.as_str().unwrap().into())),
                "{key} in {what}"
            );
        }
        assert_eq!(
            attr(span, "net.host.ip"),
            Some(&Value::StringValue("10.1.2.3".into()))
        );
        assert_eq!(attr(span, "net.host.port"), Some(&Value::IntValue(8080)));
        // An error tag: ERROR.
        let status = span.span.status.as_ref().unwrap();
        let error = z["tags"].get("error").is_some();
        assert_eq!(status.code, if error { 2 } else { 0 }, "{what}");
        // Annotations: events.
        let annotations = z["annotations"].as_array().cloned().unwrap_or_default();
        assert_eq!(span.span.events.len(), annotations.len());
        for (event, a) in span.span.events.iter().zip(&annotations) {
            assert_eq!(event.name, a["value"].as_str().unwrap());
            assert_eq!(
                event.time_unix_nano,
                a["timestamp"].as_u64().unwrap() * 1000
            );
        }
    }
}

/// A bad request: its content type and encoding, body, and the status and
/// reason it must get.
type BadCase = (
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    u16,
    &'static str,
);

/// A protobuf `ListOfSpans`, gzip and deflate bodies, and bad input: each
/// refused with a 4xx and its reason, counted, never a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_compression_and_bad_bodies() {
    use ferro_proto::zipkin::{ListOfSpans, Span};
    let sink = Sink::start().await;
    let ferro = Ferro::start(&config(&sink, ""));
    let addr = ferro.listener("zipkin.in", "http");
    let post = |content_type: &str, encoding: Option<&str>, body: Vec<u8>| {
        let mut headers = vec![("Content-Type", content_type.to_string())];
        if let Some(encoding) = encoding {
            headers.push(("Content-Encoding", encoding.to_string()));
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, _, body) = http_post(addr, "/api/v2/spans", &headers, &body);
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    let span = |id: u8| Span {
        trace_id: vec![7; 16],
        id: vec![id; 8],
        kind: 1,
        name: format!("call-{id}"),
        timestamp: 1_700_000_000_000_000,
        duration: 5,
        ..Default::default()
    };
    let list = ListOfSpans {
        spans: vec![span(1), span(2)],
    };
    let (status, _) = post("application/x-protobuf", None, list.encode_to_vec());
    assert_eq!(status, 202);
    let json = br#"[{"traceId":"0707070707070707","id":"0303030303030303","name":"gz"}]"#;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, json).unwrap();
    assert_eq!(
        post("application/json", Some("gzip"), gz.finish().unwrap()).0,
        202
    );
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut zlib, &json[..]).unwrap();
    assert_eq!(
        post("application/json", Some("deflate"), zlib.finish().unwrap()).0,
        202
    );
    sink.wait_for_spans(4, WAIT).await;
    let names: Vec<String> = sink.spans().iter().map(|s| s.span.name.clone()).collect();
    assert!(names.contains(&"call-1".to_string()) && names.contains(&"gz".to_string()));

    // Bad input: the reason in the answer, counted by reason.
    let truncated = list.encode_to_vec();
    // 10 MB of well-formed spans, over the default 4 MiB.
    let one = r#"{"traceId":"0707070707070707","id":"0303030303030303","name":"bulk"}"#;
    let mut huge = String::from("[");
    while huge.len() < 10_000_000 {
        huge.push_str(one);
        huge.push(',');
    }
    huge.push_str(one);
    huge.push(']');
    let cases: Vec<BadCase> = vec![
        (
            "application/x-protobuf",
            None,
            truncated[..truncated.len() - 3].to_vec(),
            400,
            "not a protobuf ListOfSpans",
        ),
        (
            "application/json",
            None,
            b"[{\"traceId\":\"xyz\",\"id\":\"0303030303030303\"}]".to_vec(),
            400,
            "span 0: traceId",
        ),
        (
            "application/json",
            None,
            b"{\"not\":\"a list\"}".to_vec(),
            400,
            "not a JSON list",
        ),
        (
            "application/json",
            Some("gzip"),
            b"not gzip".to_vec(),
            400,
            "not valid gzip",
        ),
        (
            "application/json",
            Some("br"),
            b"x".to_vec(),
            415,
            "not supported",
        ),
        (
            "application/json",
            None,
            huge.into_bytes(),
            413,
            "larger than max_recv_msg_size",
        ),
    ];
    for (content_type, encoding, body, code, reason) in cases {
        let (status, text) = post(content_type, encoding, body);
        assert_eq!(status, code, "{reason}: {text}");
        assert!(text.contains(reason), "{reason} in {text}");
    }
    let (status, _, text) = http_post(
        addr,
        "/api/v1/spans",
        &[("Content-Type", "application/json")],
        b"[]",
    );
    let text = String::from_utf8_lossy(&text);
    assert_eq!(status, 404);
    assert!(text.contains("v1"), "{text}");
    assert!(
        ferro.metric(
            "ferro_receiver_rejected_requests_total",
            &["zipkin.in", "reason=\"malformed\""]
        ) >= 3.0
    );
    // Still serving.
    assert_eq!(
        post("application/x-protobuf", None, list.encode_to_vec()).0,
        202
    );
}
