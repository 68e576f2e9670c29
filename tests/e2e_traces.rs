//! End to end: real OTLP clients → ferro (a real process on 127.0.0.1:0) →
//! a recording OTLP server; plus the faults ferro must survive.

mod common;

use common::sink::{FlatSpan, Mode, Sink, flatten};
use common::{Ferro, WAIT, http_get, http_post, python, python_script};
use ferro::otlp::codec::RawCodec;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// A request of `n` spans with ids derived from `first`, 10 attributes each.
fn request(first: u64, n: u64) -> ExportTraceServiceRequest {
    let spans = (first..first + n)
        .map(|i| Span {
            trace_id: [[7u8; 8], (i + 1).to_be_bytes()].concat(),
            span_id: (i + 1).to_be_bytes().to_vec(),
            name: format!("op-{i}"),
            start_time_unix_nano: 1_700_000_000_000_000_000 + i,
            end_time_unix_nano: 1_700_000_000_000_100_000 + i,
            attributes: (0..10)
                .map(|a| kv(&format!("attr.{a}"), &format!("value-{i}-{a}")))
                .collect(),
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "load")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

async fn grpc_client(addr: SocketAddr) -> TraceServiceClient<tonic::transport::Channel> {
    TraceServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

fn span_ids(spans: &[FlatSpan]) -> Vec<Vec<u8>> {
    let mut ids: Vec<Vec<u8>> = spans.iter().map(|s| s.span.span_id.clone()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_spans_arrive_unchanged_over_every_protocol() {
    let Some(python) = python() else { return };
    let sink = Sink::start().await;
    // One receiver feeds two pipelines; each exports with another protocol,
    // so every span must arrive exactly twice, value for value.
    let mut ferro = Ferro::start(&format!(
        r#"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.otlp.in]
        grpc = "127.0.0.1:0"
        http = "127.0.0.1:0"
        [processors.batch.small]
        send_batch_size = 50
        send_batch_max_size = 50
        timeout = "100ms"
        [exporters.otlp.grpc_out]
        endpoint = "http://{grpc}"
        compression = "gzip"
        headers = {{ "X-Scope-OrgID" = "tenant-a" }}
        [exporters.otlp.http_out]
        endpoint = "http://{http}"
        protocol = "http"
        compression = "zstd"
        headers = {{ "X-Scope-OrgID" = "tenant-b" }}
        [pipelines.traces]
        receivers = ["otlp.in"]
        processors = ["batch.small"]
        exporters = ["otlp.grpc_out"]
        [pipelines."traces/http"]
        receivers = ["otlp.in"]
        processors = ["batch"]
        exporters = ["otlp.http_out"]
        "#,
        grpc = sink.grpc,
        http = sink.http,
    ));
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    let runs = [
        ("grpc", format!("http://{}", ferro.grpc.unwrap())),
        ("http-protobuf", format!("http://{}", ferro.http.unwrap())),
        ("http-json", format!("http://{}", ferro.http.unwrap())),
    ];
    for (protocol, endpoint) in runs {
        let expected_file = dir.path().join(format!("{protocol}.pb"));
        let output = Command::new(&python)
            .arg(python_script("send_traces.py"))
            .args([
                "--protocol",
                protocol,
                "--endpoint",
                &endpoint,
                "--spans",
                "120",
                "--service",
            ])
            .arg(format!("svc-{protocol}"))
            .arg("--expected")
            .arg(&expected_file)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "python {protocol} client failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            ferro.logs()
        );
        let sent =
            ExportTraceServiceRequest::decode(std::fs::read(&expected_file).unwrap().as_slice())
                .unwrap();
        let spans = flatten(&sent.resource_spans);
        assert_eq!(spans.len(), 120);
        expected.extend(spans);
    }

    let arrived = sink.wait_for_spans(2 * expected.len(), WAIT).await;
    assert_eq!(
        arrived,
        2 * expected.len(),
        "every span arrives once per pipeline"
    );
    let received = sink.spans();
    let mut by_id: HashMap<Vec<u8>, Vec<&FlatSpan>> = HashMap::new();
    for span in &received {
        by_id
            .entry(span.span.span_id.clone())
            .or_default()
            .push(span);
    }
    for want in &expected {
        let got = by_id
            .get(&want.span.span_id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        assert_eq!(got.len(), 2, "span {} arrives twice", want.span.name);
        for span in got {
            assert_eq!(
                *span, want,
                "span {} arrives unchanged with its resource and scope",
                want.span.name
            );
        }
    }
    // Events, links and attributes of every kind made the trip.
    assert!(expected.iter().any(|s| !s.span.links.is_empty()));
    assert!(expected.iter().all(|s| !s.span.events.is_empty()));

    // Headers were sent as configured, per exporter and protocol.
    sink.with(|r| {
        let grpc_orgs: Vec<bool> = r
            .headers
            .iter()
            .map(|h| h.contains(&("x-scope-orgid".into(), "tenant-a".into())))
            .collect();
        let http_orgs: Vec<bool> = r
            .headers
            .iter()
            .map(|h| h.contains(&("x-scope-orgid".into(), "tenant-b".into())))
            .collect();
        assert_eq!(
            grpc_orgs.iter().filter(|&&b| b).count() + http_orgs.iter().filter(|&&b| b).count(),
            r.headers.len()
        );
        assert!(
            r.headers
                .iter()
                .any(|h| h.contains(&("content-encoding".into(), "zstd".into())))
        );
    });
    // Batches of the small pipeline never exceed its max size.
    sink.with(|r| {
        for (req, headers) in r.requests.iter().zip(&r.headers) {
            if headers
                .iter()
                .any(|(k, v)| k == "x-scope-orgid" && v == "tenant-a")
            {
                assert!(flatten(&req.resource_spans).len() <= 50);
            }
        }
    });

    let accepted = ferro.metric("ferro_receiver_accepted_items_total", &["otlp.in"]);
    let sent = ferro.metric("ferro_exporter_sent_items_total", &[]);
    assert_eq!(accepted, expected.len() as f64);
    assert_eq!(sent, 2.0 * expected.len() as f64);
    ferro.signal("TERM");
    assert!(ferro.wait_exit(Duration::from_secs(15)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_and_ferro_keeps_serving() {
    let sink = Sink::start().await;
    let ferro = Ferro::start(&format!(
        r#"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.otlp.in]
        grpc = "127.0.0.1:0"
        http = "127.0.0.1:0"
        max_recv_msg_size = "64KiB"
        [exporters.otlp.out]
        endpoint = "http://{}"
        [pipelines.traces]
        receivers = ["otlp.in"]
        exporters = ["otlp.out"]
        "#,
        sink.grpc
    ));
    let http = ferro.http.unwrap();
    let proto = [("Content-Type", "application/x-protobuf")];

    let (status, _, body) = http_post(http, "/v1/traces", &proto, b"\xff\xff\xff garbage");
    assert_eq!(status, 400);
    let status_msg = ferro_proto::google::rpc::Status::decode(body.as_slice()).unwrap();
    assert!(
        status_msg.message.contains("invalid protobuf"),
        "{}",
        status_msg.message
    );

    let (status, _, _) = http_post(
        http,
        "/v1/traces",
        &[("Content-Type", "text/plain")],
        b"hello",
    );
    assert_eq!(status, 415);

    let big = request(0, 1000).encode_to_vec();
    assert!(big.len() > 64 * 1024);
    let (status, _, _) = http_post(http, "/v1/traces", &proto, &big);
    assert_eq!(status, 413);

    // A gzip bomb: small on the wire, past the limit once inflated.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &vec![0u8; 1 << 20]).unwrap();
    let bomb = gz.finish().unwrap();
    let (status, _, _) = http_post(
        http,
        "/v1/traces",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "gzip"),
        ],
        &bomb,
    );
    assert_eq!(status, 413);

    let (status, _, _) = http_post(
        http,
        "/v1/traces",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "gzip"),
        ],
        b"not gzip at all",
    );
    assert_eq!(status, 400);
    let (status, _, _) = http_post(
        http,
        "/v1/traces",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "br"),
        ],
        b"x",
    );
    assert_eq!(status, 415);
    let (status, _, body) = http_post(
        http,
        "/v1/traces",
        &[("Content-Type", "application/json")],
        b"{\"resourceSpans\": [",
    );
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("invalid JSON"));

    // Signals without a pipeline yet: a clean 404 / UNIMPLEMENTED.
    let (status, _, body) = http_post(
        http,
        "/v1/metrics",
        &[("Content-Type", "application/json")],
        b"{}",
    );
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("no metrics pipeline"));

    // gRPC: garbage, oversized, and an unserved signal.
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", ferro.grpc.unwrap()))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut raw = tonic::client::Grpc::new(channel.clone());
    raw.ready().await.unwrap();
    let garbage = raw
        .unary(
            tonic::Request::new(bytes::Bytes::from_static(b"\x0a\xff\xff\xff\xff\x0f")),
            http::uri::PathAndQuery::from_static(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            ),
            RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(garbage.code(), tonic::Code::InvalidArgument, "{garbage:?}");
    let mut client = TraceServiceClient::new(channel.clone());
    // Too large is the client's error: INVALID_ARGUMENT, which OTLP
    // clients do not retry (OUT_OF_RANGE and RESOURCE_EXHAUSTED they do).
    let oversized = client.export(request(0, 1000)).await.unwrap_err();
    assert_eq!(
        oversized.code(),
        tonic::Code::InvalidArgument,
        "{oversized:?}"
    );
    let mut metrics_client =
        opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient::new(channel);
    let unimplemented = metrics_client.export(opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest::default()).await.unwrap_err();
    assert_eq!(unimplemented.code(), tonic::Code::Unimplemented);

    // Spans with invalid ids are refused one by one, as partial success.
    let mut mixed = request(0, 3);
    mixed.resource_spans[0].scope_spans[0].spans[1].trace_id = vec![0; 16];
    let answer: ExportTraceServiceResponse = client.export(mixed).await.unwrap().into_inner();
    assert_eq!(answer.partial_success.as_ref().unwrap().rejected_spans, 1);

    // And good data still flows.
    client.export(request(100, 5)).await.unwrap();
    assert_eq!(sink.wait_for_spans(7, WAIT).await, 7);

    let page = ferro.metrics();
    for reason in [
        "malformed",
        "unsupported_media_type",
        "too_large",
        "bad_compression",
        "unsupported_encoding",
        "no_pipeline",
    ] {
        let n = common::metric_value(
            &page,
            "ferro_receiver_rejected_requests_total",
            &[&format!("reason=\"{reason}\"")],
        );
        assert!(n >= 1.0, "rejections for {reason} are counted:\n{page}");
    }
    assert_eq!(
        common::metric_value(
            &page,
            "ferro_dropped_items_total",
            &["reason=\"invalid_span\""]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_down_then_up_loses_nothing_accepted() {
    // Held, not listened on: the backend is down until the sink takes it.
    let backend = common::reserved_port();
    let grpc_port = backend.local_addr().unwrap().port();
    let ferro = Ferro::start(&format!(
        r#"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.otlp.in]
        grpc = "127.0.0.1:0"
        [exporters.otlp.out]
        endpoint = "http://127.0.0.1:{grpc_port}"
        retry = {{ initial_interval = "100ms", max_interval = "500ms" }}
        [pipelines.traces]
        receivers = ["otlp.in"]
        processors = ["batch"]
        exporters = ["otlp.out"]
        "#
    ));
    let mut client = grpc_client(ferro.grpc.unwrap()).await;
    for i in 0..20 {
        client
            .export(request(i * 100, 100))
            .await
            .expect("accepted while the backend is down");
    }
    // It retried while down (a retry is the sign that a send failed).
    ferro.wait_metric("ferro_exporter_retries_total", &["otlp.out"], |n| n >= 1.0);
    assert_eq!(
        ferro.metric("ferro_exporter_sent_items_total", &["otlp.out"]),
        0.0
    );

    let sink = Sink::start_on(backend.listen(1024).unwrap()).await;
    assert_eq!(sink.wait_for_spans(2000, WAIT).await, 2000);
    let ids = span_ids(&sink.spans());
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), 2000, "every span, none twice");
    assert_eq!(
        ferro.metric("ferro_dropped_items_total", &["otlp.out"]),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_backend_keeps_memory_bounded_and_refuses_retryably() {
    let sink = Sink::start().await;
    sink.set_mode(Mode::Slow(Duration::from_millis(300)));
    let ferro = Ferro::start(&format!(
        r#"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.otlp.in]
        grpc = "127.0.0.1:0"
        pipeline_wait = "50ms"
        [processors.batch.b]
        send_batch_size = 200
        send_batch_max_size = 200
        [exporters.otlp.out]
        endpoint = "http://{}"
        queue = {{ max_items = 1000, num_consumers = 1 }}
        [pipelines.traces]
        receivers = ["otlp.in"]
        processors = ["batch.b"]
        exporters = ["otlp.out"]
        "#,
        sink.grpc
    ));
    let addr = ferro.grpc.unwrap();
    let mut senders = Vec::new();
    for worker in 0..4u64 {
        senders.push(tokio::spawn(async move {
            let mut client = grpc_client(addr).await;
            let (mut accepted, mut refused) = (Vec::new(), 0u64);
            for i in 0..150u64 {
                let first = (worker * 1000 + i) * 100;
                match client.export(request(first, 100)).await {
                    Ok(_) => accepted.push(first),
                    Err(status) => {
                        assert!(
                            matches!(
                                status.code(),
                                tonic::Code::Unavailable | tonic::Code::ResourceExhausted
                            ),
                            "refusals are retryable: {status:?}"
                        );
                        refused += 1;
                    }
                }
            }
            (accepted, refused)
        }));
    }
    let mut accepted = Vec::new();
    let mut refused = 0;
    for s in senders {
        let (a, r) = s.await.unwrap();
        accepted.extend(a);
        refused += r;
    }
    assert!(refused > 0, "a slow backend makes ferro refuse");
    let rss = ferro.rss_bytes();
    assert!(
        rss < 96 << 20,
        "RSS stays bounded under a slow backend: {} MiB",
        rss >> 20
    );
    assert!(ferro.metric("ferro_exporter_queue_items", &["otlp.out"]) <= 1000.0 + 200.0);

    // Everything that was accepted is delivered once the backend catches up.
    sink.set_mode(Mode::Accept);
    let want = accepted.len() * 100;
    assert_eq!(sink.wait_for_spans(want, WAIT).await, want);
    assert_eq!(
        ferro.metric("ferro_receiver_refused_items_total", &["otlp.in"]),
        (refused * 100) as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_everything_accepted_and_exits_zero() {
    let sink = Sink::start().await;
    sink.set_mode(Mode::Slow(Duration::from_millis(100)));
    let mut ferro = Ferro::start(&format!(
        r#"
        shutdown_timeout = "20s"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.otlp.in]
        grpc = "127.0.0.1:0"
        [processors.batch.b]
        send_batch_size = 100
        timeout = "5s"
        [exporters.otlp.out]
        endpoint = "http://{}"
        queue = {{ num_consumers = 2 }}
        [pipelines.traces]
        receivers = ["otlp.in"]
        processors = ["batch.b"]
        exporters = ["otlp.out"]
        "#,
        sink.grpc
    ));
    let mut client = grpc_client(ferro.grpc.unwrap()).await;
    for i in 0..15 {
        client.export(request(i * 70, 70)).await.unwrap();
    }
    ferro.signal("TERM");
    let status = ferro.wait_exit(Duration::from_secs(25));
    assert!(
        status.success(),
        "exit 0 after a drain: {status:?}\n{}",
        ferro.logs()
    );
    assert_eq!(
        sink.span_count(),
        1050,
        "the batch stage and the queue were flushed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_valid_config_and_keeps_the_old_one_on_error() {
    let sink = Sink::start().await;
    let config = |pipeline_exporter: &str| {
        format!(
            r#"
            [telemetry]
            listen = "127.0.0.1:0"
            [receivers.otlp.in]
            grpc = "127.0.0.1:{port}"
            [exporters.otlp.out]
            endpoint = "http://{sink}"
            [exporters.blackhole.null]
            [pipelines.traces]
            receivers = ["otlp.in"]
            exporters = ["{pipeline_exporter}"]
            "#,
            port = 0,
            sink = sink.grpc,
        )
    };
    let ferro = Ferro::start(&config("blackhole.null"));
    let port = ferro.grpc.unwrap().port();
    // Pin the port so that the reloaded receiver comes back on it.
    let pinned = |exporter: &str| {
        config(exporter).replace(
            "grpc = \"127.0.0.1:0\"",
            &format!("grpc = \"127.0.0.1:{port}\""),
        )
    };
    ferro.reload(&pinned("blackhole.null"), 1);
    assert_eq!(ferro.listener("otlp.in", "grpc").port(), port);

    ferro.reload(&pinned("otlp.out"), 2);
    let mut client = grpc_client(ferro.grpc.unwrap()).await;
    client.export(request(0, 10)).await.unwrap();
    assert_eq!(
        sink.wait_for_spans(10, WAIT).await,
        10,
        "the new pipeline exports to the sink"
    );

    std::fs::write(&ferro.config_path, "[receivers.otlp.in]\ngrpc = 17\n").unwrap();
    ferro.signal("HUP");
    ferro.wait_for_log("reload refused", WAIT);
    let mut client = grpc_client(ferro.grpc.unwrap()).await;
    client.export(request(100, 10)).await.unwrap();
    assert_eq!(
        sink.wait_for_spans(20, WAIT).await,
        20,
        "the old config still runs"
    );
    let (status, _) = http_get(ferro.telemetry, "/-/ready");
    assert_eq!(status, 200);
}

/// A reload replaces the receivers, but not their sockets: a client that
/// connects while it runs waits in the accept queue and is answered by the
/// new receiver; no connection is refused and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_refuses_no_connection() {
    let sink = Sink::start().await;
    let config = |http: &str, wait: &str| {
        format!(
            r#"
            [telemetry]
            listen = "127.0.0.1:0"
            [receivers.otlp.in]
            http = "{http}"
            pipeline_wait = "{wait}"
            [exporters.otlp.out]
            endpoint = "http://{sink}"
            [pipelines.traces]
            receivers = ["otlp.in"]
            exporters = ["otlp.out"]
            "#,
            sink = sink.grpc,
        )
    };
    let ferro = Ferro::start(&config("127.0.0.1:0", "1s"));
    // The port ferro bound, named in the reloaded configs so that the
    // server on it is kept.
    let addr = ferro.http.unwrap();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let (stop, answered) = (stop.clone(), answered.clone());
        std::thread::spawn(move || {
            let proto = [("Content-Type", "application/x-protobuf")];
            let mut answers = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = request(i, 1).encode_to_vec();
                // A refused or reset connection panics in http_post.
                let answer =
                    std::panic::catch_unwind(|| http_post(addr, "/v1/traces", &proto, &body).0);
                answers.push(answer.unwrap_or(0));
                answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                i += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            answers
        })
    };
    // Requests before, between and after the reloads.
    let some_requests = || {
        let before = answered.load(std::sync::atomic::Ordering::Relaxed);
        common::eventually("10 more requests answered", WAIT, || {
            answered.load(std::sync::atomic::Ordering::Relaxed) >= before + 10
        });
    };
    for (n, wait) in ["2s", "3s", "1s"].into_iter().enumerate() {
        some_requests();
        ferro.reload(&config(&addr.to_string(), wait), n + 1);
    }
    some_requests();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answers = client.join().unwrap();
    let failed: Vec<_> = answers.iter().filter(|&&status| status != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests not answered 200 (0: refused or reset): {failed:?}\n{}",
        failed.len(),
        answers.len(),
        ferro.logs()
    );
    assert_eq!(
        sink.wait_for_spans(answers.len(), WAIT).await,
        answers.len(),
        "every span accepted across three reloads arrives"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_self_metrics() {
    let ferro = Ferro::start(
        r#"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.otlp.in]
        http = "127.0.0.1:0"
        [exporters.blackhole.null]
        [pipelines.traces]
        receivers = ["otlp.in"]
        exporters = ["blackhole.null"]
        "#,
    );
    assert_eq!(http_get(ferro.telemetry, "/-/healthy").0, 200);
    assert_eq!(http_get(ferro.telemetry, "/-/ready").0, 200);
    let body = request(0, 25).encode_to_vec();
    let (status, _, _) = http_post(
        ferro.http.unwrap(),
        "/v1/traces",
        &[("Content-Type", "application/x-protobuf")],
        &body,
    );
    assert_eq!(status, 200);
    let sent = ferro.wait_metric(
        "ferro_exporter_sent_items_total",
        &["blackhole.null"],
        |n| n >= 25.0,
    );
    assert_eq!(sent, 25.0);
    let page = ferro.metrics();
    assert_eq!(
        common::metric_value(&page, "ferro_receiver_accepted_items_total", &["otlp.in"]),
        25.0
    );
    assert!(common::metric_value(&page, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(page.contains("process_cpu_seconds_total"));
    assert!(page.contains("ferro_build_info{version=\""));
    assert!(page.contains("ferro_memory_limit_bytes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_ca_file_or_skip_verify_and_never_to_an_unknown_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = common::sink::TestCert::new(dir.path());
    let sink = Sink::start_tls(&cert).await;
    let port = sink.grpc.port();
    let ca = cert.cert_file.display();
    let ferro = Ferro::start(&format!(
        r#"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.otlp.in]
        grpc = "127.0.0.1:0"
        [exporters.otlp.grpc_ca]
        endpoint = "https://localhost:{port}"
        tls = {{ ca_file = "{ca}" }}
        [exporters.otlp.http_ca]
        endpoint = "https://localhost:{port}"
        protocol = "http"
        tls = {{ ca_file = "{ca}" }}
        [exporters.otlp.skip]
        endpoint = "https://127.0.0.1:{port}"
        tls = {{ insecure_skip_verify = true }}
        [exporters.otlp.untrusted]
        endpoint = "https://localhost:{port}"
        retry = {{ initial_interval = "100ms", max_elapsed_time = "1s" }}
        [pipelines."traces/a"]
        receivers = ["otlp.in"]
        exporters = ["otlp.grpc_ca", "otlp.http_ca"]
        [pipelines."traces/b"]
        receivers = ["otlp.in"]
        exporters = ["otlp.skip", "otlp.untrusted"]
        "#
    ));
    let mut client = grpc_client(ferro.grpc.unwrap()).await;
    client.export(request(0, 10)).await.unwrap();
    assert_eq!(sink.wait_for_spans(30, WAIT).await, 30, "{}", ferro.logs());
    let dropped = ferro.wait_metric(
        "ferro_dropped_items_total",
        &["otlp.untrusted", "retries_exhausted"],
        |n| n >= 10.0,
    );
    assert_eq!(dropped, 10.0, "an untrusted certificate is never accepted");
    assert!(
        ferro.metric(
            "ferro_exporter_send_failed_items_total",
            &["otlp.untrusted"]
        ) >= 10.0
    );
    assert!(
        ferro.logs().contains("UnknownIssuer"),
        "the log says why: {}",
        ferro.logs()
    );
    assert_eq!(sink.span_count(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_refusals_are_retried_and_permanent_ones_dropped_and_counted() {
    let sink = Sink::start().await;
    sink.set_mode(Mode::Unavailable);
    let ferro = Ferro::start(&format!(
        r#"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.otlp.in]
        grpc = "127.0.0.1:0"
        [exporters.otlp.grpc]
        endpoint = "http://{grpc}"
        retry = {{ initial_interval = "100ms", max_interval = "200ms" }}
        [exporters.otlp.http]
        endpoint = "http://{http}"
        protocol = "http"
        retry = {{ initial_interval = "100ms", max_interval = "200ms" }}
        [pipelines."traces/grpc"]
        receivers = ["otlp.in"]
        exporters = ["otlp.grpc"]
        [pipelines."traces/http"]
        receivers = ["otlp.in"]
        exporters = ["otlp.http"]
        "#,
        grpc = sink.grpc,
        http = sink.http,
    ));
    let mut client = grpc_client(ferro.grpc.unwrap()).await;
    client.export(request(0, 50)).await.unwrap();
    // HTTP 503 asks for Retry-After: 1, so that exporter waits at least a second.
    ferro.wait_metric(
        "ferro_exporter_send_failed_items_total",
        &["otlp.grpc", "grpc_unavailable"],
        |n| n >= 50.0,
    );
    ferro.wait_metric(
        "ferro_exporter_send_failed_items_total",
        &["otlp.http", "http_503"],
        |n| n >= 50.0,
    );
    assert_eq!(sink.span_count(), 0);
    sink.set_mode(Mode::Accept);
    assert_eq!(sink.wait_for_spans(100, WAIT).await, 100);

    sink.set_mode(Mode::BadRequest);
    let retries_before = ferro.metric("ferro_exporter_retries_total", &[]);
    client.export(request(100, 20)).await.unwrap();
    let dropped = ferro.wait_metric("ferro_dropped_items_total", &["permanent_error"], |n| {
        n >= 40.0
    });
    assert_eq!(dropped, 40.0, "20 spans dropped by each exporter, counted");
    assert_eq!(
        ferro.metric("ferro_exporter_retries_total", &[]),
        retries_before,
        "a 400 is not retried"
    );
    assert!(
        ferro.logs().contains("sink refuses this data"),
        "the server's message is logged"
    );
    assert_eq!(sink.span_count(), 100);
}
