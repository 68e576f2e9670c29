//! Sanitize-first redaction end to end, with the real binary and no
//! redaction configured: every pipeline runs the default one.
//!
//! The corpus (`tests/fixtures/redaction.json`) holds real-format secrets
//! with the text they must arrive as, and look-alikes (UUIDs, hashes, trace
//! ids, timestamps, ordinary numbers) that must arrive unchanged. It goes in
//! three ways: as pod log lines (CRI files → Loki stand-in), as span names,
//! attributes and log bodies from the OpenTelemetry Python SDK (→ OTLP sink
//! and Loki stand-in), and as metric label values on a scraped page (→ the
//! remote-write 2.0 stand-in). No secret may reach a test server; every one
//! shows `[REDACTED]` in its place.

mod common;

use common::loki::LokiServer;
use common::prom::{PageServer, Rw2Server};
use common::sink::{Sink, flatten};
use common::{Ferro, WAIT, python, python_script};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use std::path::Path;
use std::process::Command;

#[derive(serde::Deserialize)]
struct Corpus {
    secrets: Vec<Redacted>,
    look_alikes: Vec<String>,
}

#[derive(serde::Deserialize)]
struct Redacted {
    input: String,
    redacted: String,
}

fn corpus_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/redaction.json")
}

/// `(input, what must arrive)` for every text of the corpus.
fn cases() -> Vec<(String, String)> {
    let corpus: Corpus =
        serde_json::from_str(&std::fs::read_to_string(corpus_path()).unwrap()).unwrap();
    corpus
        .secrets
        .into_iter()
        .map(|s| (s.input, s.redacted))
        .chain(corpus.look_alikes.into_iter().map(|l| (l.clone(), l)))
        .collect()
}

/// The secret parts of the corpus: text the inputs have and the redacted
/// forms lost. None of these may arrive anywhere.
fn leaked_secrets() -> Vec<&'static str> {
    vec![
        "hunter2",
        "s3cr3t",
        "ya29A0ARrdaM",
        "dozjgNryP4J3",
        "8f14e45fceea167a5a36dedd4bea2543",
        "dXNlcjpwYXNzd29yZA",
        "Tr0ub4dor",
        "AKIAIOSFODNN7EXAMPLE",
        "AIzaSyA1234567890",
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1",
        "Zm9vYmFyYmF6cXV4",
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        "glpat-xxxxxxxxxxxxxxxxxxxx1234",
        "xoxb-123456789012",
        "T00000000/B00000000",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "MIIEowIBAAKCAQEA7bq",
        "4111 1111 1111 1111",
        "378282246310005",
        "5555-5555-5555-4444",
        "38afes7a8",
        "abc123def",
        "resource-secret",
        "9jYg7SjjPvttfbfMLZuPjII4",
        "AgEIcHlwaS5vcmc8_HZqJLGg",
        "JQTdJV1tX5heQwepFLG8Z",
        "ezYfV6xe3NjIjyVAAtf_",
        "nQEGxGdhDxtvWzk8o3vY",
        "4724eae7fe68e67ac9bf",
        "yB1PkNyg7nwDkQuyAegOBj",
        "etAtPQfEQsRjyNIZgSAO",
        "qazCIMSe-LWGzRBkSs5y",
        "2f36402af5ed7edf1c2a",
        "b8ymEB0BwSsXgMq3rFrD",
        "cr81SNGU4fEhFNJhs",
    ]
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in leaked_secrets() {
        assert!(
            !text.contains(secret),
            "{what}: `{secret}` leaked in {text:?}"
        );
    }
}

fn string_value(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        _ => String::new(),
    }
}

fn attribute(attributes: &[KeyValue], key: &str) -> String {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| string_value(&kv.value))
        .unwrap_or_default()
}

/// ferro with no redaction configured, tailing `dir/pods` from the start of
/// every file into `loki`.
fn tail_pods_to_loki(dir: &Path, loki: &LokiServer) -> Ferro {
    Ferro::start(&format!(
        r#"
        data_dir = "{data}"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.pod_logs.node]
        include = ["{pods}/*/*/*.log"]
        start_at = "beginning"
        [exporters.loki.out]
        endpoint = "{url}"
        tenant_id = "e2e"
        batch_wait = "100ms"
        [pipelines.logs]
        receivers = ["pod_logs.node"]
        exporters = ["loki.out"]
        "#,
        data = dir.join("data").display(),
        pods = dir.join("pods").display(),
        url = loki.url(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_log_lines_reach_loki_redacted_and_look_alikes_unchanged() {
    let cases: Vec<(String, String)> = cases()
        .into_iter()
        .filter(|(input, _)| !input.contains('\n'))
        .collect();
    let loki = LokiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let pod_dir = dir.path().join("pods/prod_api-0_0b3c/api");
    std::fs::create_dir_all(&pod_dir).unwrap();
    let mut file = String::new();
    for (i, (input, _)) in cases.iter().enumerate() {
        file.push_str(&format!("2024-01-01T00:00:00.{i:09}Z stdout F {input}\n"));
    }
    std::fs::write(pod_dir.join("0.log"), file).unwrap();
    let ferro = tail_pods_to_loki(dir.path(), &loki);
    loki.wait_for_entries(cases.len(), WAIT).await;
    let lines: Vec<String> = loki.with(|r| {
        r.streams
            .values()
            .flatten()
            .map(|e| e.line.clone())
            .collect()
    });
    let expected: Vec<&String> = cases.iter().map(|(_, out)| out).collect();
    assert_eq!(lines.iter().collect::<Vec<_>>(), expected);
    for line in &lines {
        assert_no_secret("pod log line", line);
    }
    // Counted by rule, the secrets themselves nowhere in ferro's own logs.
    assert!(
        ferro.metric(
            "ferro_redactions_total",
            &["rule=\"secret_pairs\"", "signal=\"logs\""]
        ) >= 3.0
    );
    assert!(ferro.metric("ferro_redactions_total", &["rule=\"credit_card\""]) >= 3.0);
    assert_no_secret("ferro's own logs", &ferro.logs());
}

/// A private key a program printed, which the container runtime wrote one
/// line per CRI record: the file is written in two parts, so that the key
/// spans two batches, with another container's lines in between. Not one of
/// the key's lines reaches Loki; the lines around it arrive unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_key_logged_line_by_line_never_reaches_loki() {
    // 25 lines of 64 base64 characters, as a 2048-bit RSA key's body.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let body: Vec<String> = (0..25)
        .map(|i| {
            (0..64)
                .map(|j| alphabet[(i * 7 + j * 13 + i * j) % 64] as char)
                .collect()
        })
        .collect();
    let mut key = vec!["loading key: -----BEGIN PRIVATE KEY-----".to_string()];
    key.extend(body.iter().cloned());
    key.push("-----END PRIVATE KEY-----".to_string());
    key.push("server listening on :8443".to_string());
    let expected: Vec<String> = key
        .iter()
        .enumerate()
        .map(|(i, line)| match i {
            0 => "loading key: [REDACTED]".to_string(),
            i if i + 1 == key.len() => line.clone(),
            _ => "[REDACTED]".to_string(),
        })
        .collect();

    let loki = LokiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let api = dir.path().join("pods/prod_api-0_0b3c/api");
    let web = dir.path().join("pods/prod_web-0_9f1e/web");
    std::fs::create_dir_all(&api).unwrap();
    std::fs::create_dir_all(&web).unwrap();
    let cri = |lines: &[String], from: usize| -> String {
        lines
            .iter()
            .enumerate()
            .map(|(i, line)| format!("2024-01-01T00:00:00.{:09}Z stdout F {line}\n", from + i))
            .collect()
    };
    let half = 10;
    std::fs::write(api.join("0.log"), cri(&key[..half], 0)).unwrap();
    // Another container prints base64 of its own: not part of any key.
    let web_line = body[0].clone();
    std::fs::write(web.join("0.log"), cri(std::slice::from_ref(&web_line), 0)).unwrap();
    let ferro = tail_pods_to_loki(dir.path(), &loki);
    loki.wait_for_entries(half + 1, WAIT).await;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(api.join("0.log"))
        .unwrap();
    std::io::Write::write_all(&mut file, cri(&key[half..], half).as_bytes()).unwrap();
    drop(file);
    let all = key.len() + 1;
    loki.wait_for_entries(all, WAIT).await;
    let (api_lines, web_lines) = loki.with(|r| {
        let mut api = Vec::new();
        let mut web = Vec::new();
        for (stream, entries) in &r.streams {
            let lines = entries.iter().map(|e| e.line.clone());
            if format!("{stream:?}").contains("web") {
                web.extend(lines);
            } else {
                api.extend(lines);
            }
        }
        (api, web)
    });
    assert_eq!(api_lines, expected);
    assert_eq!(web_lines, [web_line], "another container's line is its own");
    for line in &api_lines {
        for part in &body {
            assert!(!line.contains(&part[..16]), "key material leaked: {line}");
        }
    }
    assert_eq!(
        ferro.metric("ferro_redactions_total", &["rule=\"private_key\""]),
        27.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_otlp_logs_from_the_python_sdk_arrive_redacted() {
    let cases = cases();
    let sink = Sink::start().await;
    let loki = LokiServer::start().await;
    let ferro = Ferro::start(&format!(
        r#"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.otlp.in]
        grpc = "127.0.0.1:0"
        [exporters.otlp.sink]
        endpoint = "http://{sink}"
        [exporters.loki.out]
        endpoint = "{url}"
        tenant_id = "e2e"
        batch_wait = "100ms"
        [pipelines.traces]
        receivers = ["otlp.in"]
        exporters = ["otlp.sink"]
        [pipelines.logs]
        receivers = ["otlp.in"]
        exporters = ["loki.out"]
        "#,
        sink = sink.grpc,
        url = loki.url(),
    ));
    let Some(python) = python() else { return };
    let output = Command::new(python)
        .arg(python_script("send_secrets.py"))
        .args(["--endpoint", &format!("http://{}", ferro.grpc.unwrap())])
        .arg("--corpus")
        .arg(corpus_path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(sink.wait_for_spans(cases.len(), WAIT).await, cases.len());
    loki.wait_for_entries(cases.len(), WAIT).await;

    let spans = sink.with(|r| {
        r.requests
            .iter()
            .flat_map(|req| flatten(&req.resource_spans))
            .collect::<Vec<_>>()
    });
    for flat in &spans {
        let case: usize = attribute(&flat.span.attributes, "case").parse().unwrap();
        let (_, expected) = &cases[case];
        assert_eq!(&attribute(&flat.span.attributes, "msg"), expected);
        assert_eq!(&flat.span.name, expected);
        assert_eq!(
            attribute(&flat.span.attributes, "db.password"),
            "[REDACTED]"
        );
        assert_eq!(
            attribute(&flat.span.attributes, "http.request.header.authorization"),
            "[REDACTED]"
        );
        assert_eq!(attribute(&flat.span.attributes, "user.id"), "42");
        let resource = &flat.resource.as_ref().unwrap().attributes;
        assert_eq!(attribute(resource, "db.password"), "[REDACTED]");
        assert_eq!(attribute(resource, "service.name"), "redaction-e2e");
        assert_no_secret("span", &format!("{:?}", flat.span));
    }

    let entries = loki.with(|r| r.streams.values().flatten().cloned().collect::<Vec<_>>());
    assert_eq!(entries.len(), cases.len());
    let mut lines: Vec<&str> = entries.iter().map(|e| e.line.as_str()).collect();
    let mut expected: Vec<&str> = cases.iter().map(|(_, out)| out.as_str()).collect();
    lines.sort_unstable();
    expected.sort_unstable();
    assert_eq!(lines, expected);
    for entry in &entries {
        // A secret-named attribute becomes structured metadata, redacted.
        let api_key = entry.metadata.iter().find(|(k, _)| k == "api_key");
        assert_eq!(api_key.map(|(_, v)| v.as_str()), Some("[REDACTED]"));
        assert_no_secret("OTLP log entry", &format!("{entry:?}"));
    }
    assert_no_secret("ferro's own logs", &ferro.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scraped_label_values_are_redacted_and_series_names_kept() {
    let page = "# TYPE app_info gauge\n\
        app_info{callback=\"https://x.example/cb?access_token=abc123def\",password=\"hunter2\",version=\"1.2.3\",trace=\"4bf92f3577b34da6a3ce929d0e0e4736\"} 1\n\
        # TYPE app_requests_total counter\n\
        app_requests_total{path=\"/api/v1/orders\"} 7\n";
    let target = PageServer::start("text/plain; version=0.0.4", page).await;
    let rw = Rw2Server::start().await;
    let _ferro = Ferro::start(&format!(
        r#"
        [telemetry]
        listen = "127.0.0.1:0"
        [[receivers.prometheus.in.scrape_configs]]
        job_name = "app"
        scrape_interval = "1s"
        scrape_timeout = "900ms"
        static_configs = [{{ targets = ["{target}"] }}]
        [exporters.remote_write.out]
        endpoint = "http://{rw}/api/v1/write"
        protocol_version = "2.0"
        batch_send_deadline = "100ms"
        [pipelines.metrics]
        receivers = ["prometheus.in"]
        exporters = ["remote_write.out"]
        "#,
        target = target.addr,
        rw = rw.addr,
    ));
    common::eventually_async("app_info at the remote-write server", WAIT, || {
        rw.received.lock().unwrap().series.iter().any(|s| {
            s.labels
                .iter()
                .any(|(n, v)| n == "__name__" && v == "app_info")
        })
    })
    .await;
    let received = rw.received.lock().unwrap();
    let info = received
        .series
        .iter()
        .find(|s| {
            s.labels
                .iter()
                .any(|(n, v)| n == "__name__" && v == "app_info")
        })
        .unwrap();
    let label = |name: &str| {
        info.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(label("password"), "[REDACTED]");
    assert_eq!(
        label("callback"),
        "https://x.example/cb?access_token=[REDACTED]"
    );
    assert_eq!(label("version"), "1.2.3");
    assert_eq!(label("trace"), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(label("job"), "app");
    for series in &received.series {
        assert_no_secret("series", &format!("{:?}", series.labels));
    }
}

#[test]
fn validate_says_which_pipelines_are_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferro.toml");
    std::fs::write(
        &path,
        r#"
        [receivers.otlp.in]
        grpc = "127.0.0.1:4317"
        [exporters.debug.out]
        [pipelines.traces]
        receivers = ["otlp.in"]
        exporters = ["debug.out"]
        [pipelines.logs]
        receivers = ["otlp.in"]
        exporters = ["debug.out"]
        redact = false
        "#,
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_ferro"))
        .args(["validate", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("pipeline traces: redacted by redact.default"),
        "{stdout}"
    );
    assert!(
        stdout.contains("pipeline logs: redaction is OFF (redact = false)"),
        "{stdout}"
    );
}
