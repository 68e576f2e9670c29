//! OTLP logs end to end: the OpenTelemetry Python SDK (and hand-made
//! requests) → ferro's OTLP receiver over gRPC and HTTP → a detailed debug
//! exporter, read back from ferro's stdout. Every record must arrive once, in
//! its resource's stream, with its line and the structured metadata Loki's
//! own OTLP endpoint would give it.

mod common;

use common::{Ferro, WAIT, http_post, python, python_script};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use std::process::Command;

fn ferro_printing_logs() -> Ferro {
    Ferro::start(
        r#"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.otlp.in]
        grpc = "127.0.0.1:0"
        http = "127.0.0.1:0"
        [exporters.debug.x]
        verbosity = "detailed"
        [pipelines.logs]
        receivers = ["otlp.in"]
        exporters = ["debug.x"]
        "#,
    )
}

/// One entry as the debug exporter printed it.
#[derive(Debug)]
struct Printed {
    labels: String,
    line: String,
    metadata: String,
}

/// The entries in ferro's stdout (`  {labels}`, `    <ts> <line>`,
/// `      metadata: {…}`).
fn printed(ferro: &Ferro) -> Vec<Printed> {
    let mut labels = String::new();
    let mut entries: Vec<Printed> = Vec::new();
    for text in ferro.stdout() {
        if let Some(metadata) = text.strip_prefix("      metadata: ") {
            if let Some(last) = entries.last_mut() {
                last.metadata = metadata.to_string();
            }
        } else if let Some(entry) = text.strip_prefix("    ") {
            let line = entry.split_once(' ').map_or("", |(_, line)| line);
            entries.push(Printed {
                labels: labels.clone(),
                line: line.to_string(),
                metadata: String::new(),
            });
        } else if let Some(stream) = text.strip_prefix("  ") {
            labels = stream.to_string();
        }
    }
    entries
}

/// Waits until the debug exporter printed at least `count` entries (panics
/// after [`WAIT`]); returns them.
fn wait_for_entries(ferro: &Ferro, count: usize) -> Vec<Printed> {
    let what = common::told(|| format!("{count} printed entries (have {})", printed(ferro).len()));
    common::eventually(what, WAIT, || printed(ferro).len() >= count);
    printed(ferro)
}

#[test]
fn python_sdk_logs_arrive_as_loki_streams_over_grpc_and_http() {
    let Some(python) = python() else { return };
    let ferro = ferro_printing_logs();
    let mut expected = Vec::new();
    for (protocol, endpoint, service) in [
        (
            "grpc",
            format!("http://{}", ferro.grpc.unwrap()),
            "svc-grpc",
        ),
        (
            "http-protobuf",
            format!("http://{}", ferro.http.unwrap()),
            "svc-http",
        ),
    ] {
        let output = Command::new(&python)
            .arg(python_script("send_logs.py"))
            .args(["--protocol", protocol, "--endpoint", &endpoint])
            .args(["--service", service, "--records", "20"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "python {protocol} client failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            ferro.logs()
        );
        let sent: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(sent.len(), 21);
        expected.extend(sent.into_iter().map(|record| (service, record)));
    }

    let entries = wait_for_entries(&ferro, expected.len());
    assert_eq!(
        entries.len(),
        expected.len(),
        "every record arrives once; stdout:\n{}",
        ferro.stdout().join("\n")
    );
    for (service, record) in &expected {
        let line = record["line"].as_str().unwrap();
        let matching: Vec<&Printed> = entries.iter().filter(|e| e.line == line).collect();
        assert_eq!(matching.len(), 1, "{line:?} arrives once: {entries:#?}");
        let entry = matching[0];
        assert_eq!(
            entry.labels,
            format!(
                r#"{{deployment_environment="e2e", k8s_pod_name="{service}-7d9f", service_instance_id="{service}-1", service_name="{service}", service_namespace="shop"}}"#
            ),
            "{line:?} is in its resource's stream"
        );
        let mut wanted = vec![
            r#"host_name="node-a""#.to_string(),
            format!(
                r#"detected_level="{}""#,
                record["detected_level"].as_str().unwrap()
            ),
            r#"telemetry_sdk_language="python""#.to_string(),
        ];
        if let Some(text) = record["severity_text"].as_str() {
            wanted.push(format!(r#"severity_text="{text}""#));
            wanted.push(r#"scope_name="ferro.e2e""#.to_string());
            wanted.push(r#"code_function_name="main""#.to_string());
        }
        for key in ["trace_id", "span_id"] {
            if let Some(id) = record[key].as_str() {
                wanted.push(format!(r#"{key}="{id}""#));
            } else {
                assert!(!entry.metadata.contains(key), "{line:?} has no {key}");
            }
        }
        for (name, value) in record["attributes"].as_object().unwrap() {
            wanted.push(format!(r#"{name}="{}""#, value.as_str().unwrap()));
        }
        for pair in wanted {
            assert!(
                entry.metadata.contains(&pair),
                "{line:?} carries {pair} in {}",
                entry.metadata
            );
        }
    }

    // The counters move just after the data does: wait for them.
    let total = expected.len() as f64;
    let counted = |name: &str, component: &str| {
        ferro.wait_metric(name, &[component, r#"signal="logs""#], |n| n >= total)
    };
    assert_eq!(
        counted(
            "ferro_receiver_accepted_items_total",
            r#"component="otlp.in""#
        ),
        total
    );
    assert_eq!(
        counted("ferro_exporter_sent_items_total", r#"component="debug.x""#),
        total
    );
    assert_eq!(
        ferro.metric("ferro_dropped_items_total", &[r#"signal="logs""#]),
        0.0
    );
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

fn logs_request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "hand-made")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

fn line(text: &str) -> LogRecord {
    LogRecord {
        time_unix_nano: 1_700_000_000_000_000_000,
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(text.into())),
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrepresentable_records_are_refused_alone_as_partial_success() {
    let ferro = ferro_printing_logs();

    // gRPC: the answer's layout is ExportLogsServiceResponse's.
    let mut client = LogsServiceClient::connect(format!("http://{}", ferro.grpc.unwrap()))
        .await
        .unwrap();
    let answer = client
        .export(logs_request(vec![
            line("grpc ok"),
            LogRecord {
                trace_id: vec![1, 2, 3],
                ..line("grpc short trace id")
            },
            LogRecord {
                attributes: vec![kv("..", "x")],
                ..line("grpc bad key")
            },
        ]))
        .await
        .unwrap()
        .into_inner();
    let partial = answer.partial_success.unwrap();
    assert_eq!(partial.rejected_log_records, 2);
    assert!(
        partial
            .error_message
            .contains("trace_id has 3 bytes, not 16"),
        "{}",
        partial.error_message
    );

    // HTTP with protobuf.
    let body = logs_request(vec![
        line("http ok"),
        LogRecord {
            attributes: vec![kv("", "x")],
            ..line("http bad key")
        },
    ])
    .encode_to_vec();
    let http = ferro.http.unwrap();
    let (status, _, answer) = http_post(
        http,
        "/v1/logs",
        &[("Content-Type", "application/x-protobuf")],
        &body,
    );
    assert_eq!(status, 200);
    let answer = ExportLogsServiceResponse::decode(answer.as_slice()).unwrap();
    assert_eq!(answer.partial_success.unwrap().rejected_log_records, 1);

    // HTTP with JSON: a severity by enum name, a bad key.
    let body = br#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"hand-made"}}]},
      "scopeLogs":[{"logRecords":[
        {"timeUnixNano":"1700000000000000000","severityNumber":"SEVERITY_NUMBER_INFO","body":{"stringValue":"json ok"}},
        {"body":{"stringValue":"json bad key"},"attributes":[{"key":"-.","value":{"intValue":"1"}}]}
      ]}]}]}"#;
    let (status, _, answer) = http_post(
        http,
        "/v1/logs",
        &[("Content-Type", "application/json")],
        body,
    );
    assert_eq!(status, 200);
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["partialSuccess"]["rejectedLogRecords"], "1");

    let entries = wait_for_entries(&ferro, 3);
    let mut lines: Vec<&str> = entries.iter().map(|e| e.line.as_str()).collect();
    lines.sort();
    assert_eq!(lines, vec!["grpc ok", "http ok", "json ok"]);
    let json = entries.iter().find(|e| e.line == "json ok").unwrap();
    assert_eq!(json.labels, r#"{service_name="hand-made"}"#);
    assert_eq!(
        json.metadata,
        r#"{severity_number="9", detected_level="info"}"#
    );

    let dropped = |reason: &str| {
        ferro.metric(
            "ferro_dropped_items_total",
            &[
                r#"component="otlp.in""#,
                r#"signal="logs""#,
                &format!(r#"reason="{reason}""#),
            ],
        )
    };
    assert_eq!(dropped("invalid_id"), 1.0);
    assert_eq!(dropped("invalid_attribute"), 3.0);
    assert_eq!(
        ferro.metric(
            "ferro_receiver_accepted_items_total",
            &[r#"component="otlp.in""#, r#"signal="logs""#]
        ),
        3.0
    );
}

/// The whole logs path: the Python SDK → ferro's OTLP receiver → the Loki
/// exporter (protobuf + snappy) → the Loki stand-in, which enforces Loki's
/// label and ordering rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_logs_reach_loki_with_labels_metadata_and_tenant() {
    let Some(python) = python() else { return };
    let loki = common::loki::LokiServer::start().await;
    let ferro = Ferro::start(&format!(
        r#"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.otlp.in]
        grpc = "127.0.0.1:0"
        [exporters.loki.out]
        endpoint = "{}"
        tenant_id = "team-a"
        batch_wait = "100ms"
        [pipelines.logs]
        receivers = ["otlp.in"]
        exporters = ["loki.out"]
        "#,
        loki.url()
    ));
    let output = Command::new(&python)
        .arg(python_script("send_logs.py"))
        .args([
            "--protocol",
            "grpc",
            "--endpoint",
            &format!("http://{}", ferro.grpc.unwrap()),
        ])
        .args(["--service", "checkout", "--records", "30"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let sent: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        loki.wait_for_entries(sent.len(), WAIT).await,
        sent.len(),
        "{}",
        ferro.logs()
    );
    loki.with(|received| {
        assert!(
            received.errors.is_empty(),
            "Loki refused nothing: {:?}",
            received.errors
        );
        assert!(
            received
                .requests
                .iter()
                .all(|r| r.tenant.as_deref() == Some("team-a"))
        );
        let (key, entries) = received.streams.iter().next().unwrap();
        assert!(
            key.1
                .contains(&("service_name".to_string(), "checkout".to_string())),
            "{key:?}"
        );
        assert!(
            entries
                .windows(2)
                .all(|w| w[0].timestamp_ns <= w[1].timestamp_ns),
            "in order"
        );
        let lines: Vec<&str> = received
            .streams
            .values()
            .flatten()
            .map(|e| e.line.as_str())
            .collect();
        for record in &sent {
            assert!(
                lines.contains(&record["line"].as_str().unwrap()),
                "{record}"
            );
        }
        assert!(
            received
                .streams
                .values()
                .flatten()
                .any(|e| e.metadata.iter().any(|(k, _)| k == "trace_id")),
            "trace ids ride as structured metadata"
        );
    });
    // Loki has the entries before ferro hears back and counts them sent.
    ferro.wait_metric("ferro_exporter_sent_items_total", &["loki.out"], |n| {
        n == sent.len() as f64
    });
}
