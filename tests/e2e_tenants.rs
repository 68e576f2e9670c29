//! Per-tenant limits end to end: OTLP pushes of two tenants (named by
//! `X-Scope-OrgID`, over HTTP and gRPC) → ferro's tenant processor → the OTLP
//! sink standing in for Tempo, the Loki stand-in (which requires a tenant)
//! and a remote-write 2.0 server. The quiet tenant's data all arrives, value
//! for value, under its own `X-Scope-OrgID`; the noisy one is throttled, and
//! what it loses is exactly what the counters say.

mod common;

use common::loki::{Limits, LokiServer};
use common::prom::Rw2Server;
use common::sink::Sink;
use common::{Ferro, WAIT, http_post};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

const REQUESTS: usize = 20;
const QUIET_PER_REQUEST: usize = 10;
const NOISY_PER_REQUEST: usize = 50;

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Request `r` of `tenant`: `n` spans named `{tenant}-{r}-{i}`.
fn traces(tenant: &str, r: usize, n: usize) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", tenant)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (0..n)
                    .map(|i| Span {
                        trace_id: [7; 16].to_vec(),
                        span_id: ((r * 1000 + i + 1) as u64).to_be_bytes().to_vec(),
                        name: format!("{tenant}-{r}-{i}"),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

/// Request `r` of `tenant`: `n` log lines `{tenant} line {r}-{i}`.
fn logs(tenant: &str, r: usize, n: usize) -> ExportLogsServiceRequest {
    let base = now_ns();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![text("service.name", tenant)],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: (0..n)
                    .map(|i| LogRecord {
                        time_unix_nano: base + i as u64,
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(format!(
                                "{tenant} line {r}-{i}"
                            ))),
                        }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

/// Request `r` of `tenant`: `n` gauge series `{tenant}_gauge{n="{r}-{i}"}`
/// with value `r * 1000 + i`.
fn metrics(tenant: &str, r: usize, n: usize) -> ExportMetricsServiceRequest {
    let ts = now_ns();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource::default()),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: format!("{tenant}_gauge"),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: (0..n)
                            .map(|i| NumberDataPoint {
                                attributes: vec![text("n", &format!("{r}-{i}"))],
                                time_unix_nano: ts,
                                value: Some(number_data_point::Value::AsDouble(
                                    (r * 1000 + i) as f64,
                                )),
                                ..Default::default()
                            })
                            .collect(),
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

/// POSTs an OTLP/HTTP protobuf body under `tenant`: (status, headers).
async fn post(
    addr: SocketAddr,
    path: &'static str,
    tenant: &str,
    body: Vec<u8>,
) -> (u16, Vec<(String, String)>) {
    let tenant = tenant.to_string();
    tokio::task::spawn_blocking(move || {
        let (status, headers, _) = http_post(
            addr,
            path,
            &[
                ("Content-Type", "application/x-protobuf"),
                ("X-Scope-OrgID", &tenant),
            ],
            &body,
        );
        (status, headers)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_quiet_tenant_gets_everything_and_the_noisy_one_is_throttled_and_counted() {
    let sink = Sink::start().await;
    let loki = LokiServer::start_with(Limits {
        require_tenant: true,
        ..Limits::default()
    })
    .await;
    let rw = Rw2Server::start().await;
    let ferro = Ferro::start(&format!(
        r#"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.otlp.in]
        grpc = "127.0.0.1:0"
        http = "127.0.0.1:0"

        [processors.tenant.by_org]
        source = "header"
        [processors.tenant.by_org.overrides.noisy]
        records_per_second = 50
        records_burst = 100
        max_active_series = 10
        [processors.batch.b]
        timeout = "100ms"

        [exporters.otlp.tempo]
        endpoint = "http://{tempo}"
        [exporters.loki.logs]
        endpoint = "{loki}"
        [exporters.remote_write.mimir]
        endpoint = "http://{mimir}/api/v1/write"
        protocol_version = "2.0"
        batch_send_deadline = "100ms"
        # The fallback for data no tenant processor claimed.
        headers = {{ "X-Scope-OrgID" = "fallback" }}

        [pipelines.traces]
        receivers = ["otlp.in"]
        processors = ["tenant.by_org", "batch.b"]
        exporters = ["otlp.tempo"]
        [pipelines.logs]
        receivers = ["otlp.in"]
        processors = ["tenant.by_org", "batch.b"]
        exporters = ["loki.logs"]
        [pipelines.metrics]
        receivers = ["otlp.in"]
        processors = ["tenant.by_org", "batch.b"]
        exporters = ["remote_write.mimir"]
        "#,
        tempo = sink.grpc,
        loki = loki.url(),
        mimir = rw.addr,
    ));
    let http = ferro.http.unwrap();
    let grpc = format!("http://{}", ferro.grpc.unwrap());
    let started = std::time::Instant::now();
    // What a tenant at 50/s with a burst of 100 can have had through by now:
    // plus one request, which may pass from a full bucket and leave debt.
    let noisy_allowance =
        || 100.0 + 50.0 * started.elapsed().as_secs_f64() + NOISY_PER_REQUEST as f64;

    // The quiet tenant's traces over gRPC (the tenant in the metadata), all
    // else over HTTP; the two tenants interleaved.
    let mut traces_client = TraceServiceClient::connect(grpc.clone()).await.unwrap();
    for r in 0..REQUESTS {
        let mut request = tonic::Request::new(traces("quiet", r, QUIET_PER_REQUEST));
        request
            .metadata_mut()
            .insert("x-scope-orgid", "quiet".parse().unwrap());
        traces_client.export(request).await.unwrap();
        for (path, tenant, body) in [
            (
                "/v1/traces",
                "noisy",
                traces("noisy", r, NOISY_PER_REQUEST).encode_to_vec(),
            ),
            (
                "/v1/logs",
                "noisy",
                logs("noisy", r, NOISY_PER_REQUEST).encode_to_vec(),
            ),
            (
                "/v1/logs",
                "quiet",
                logs("quiet", r, QUIET_PER_REQUEST).encode_to_vec(),
            ),
        ] {
            let (status, _) = post(http, path, tenant, body).await;
            assert_eq!(status, 200, "{}", ferro.logs());
        }
    }
    // Metrics: one request each, the noisy one with more series than its limit.
    for (tenant, n) in [("quiet", 20), ("noisy", NOISY_PER_REQUEST)] {
        let (status, _) = post(
            http,
            "/v1/metrics",
            tenant,
            metrics(tenant, 0, n).encode_to_vec(),
        )
        .await;
        assert_eq!(status, 200);
    }

    let quiet_sent = REQUESTS * QUIET_PER_REQUEST;
    let noisy_sent = (REQUESTS * NOISY_PER_REQUEST) as f64;
    let dropped = |signal: &str, reason: &str| {
        ferro.metric(
            "ferro_tenant_dropped_items_total",
            &[
                r#"processor="tenant.by_org""#,
                &format!(r#"signal="{signal}""#),
                r#"tenant="noisy""#,
                &format!(r#"reason="{reason}""#),
            ],
        )
    };

    // Traces: every quiet span, by name and id, under its own tenant.
    let noisy_spans = || {
        sink.spans()
            .iter()
            .filter(|s| s.span.name.starts_with("noisy-"))
            .count() as f64
    };
    common::eventually_async(
        common::told(|| {
            format!(
                "quiet spans: {}, noisy spans {} + dropped {} of {noisy_sent}",
                sink.span_count(),
                noisy_spans(),
                dropped("traces", "rate_limited")
            )
        }),
        WAIT,
        || {
            sink.spans()
                .iter()
                .filter(|s| s.span.name.starts_with("quiet-"))
                .count()
                == quiet_sent
                && noisy_spans() + dropped("traces", "rate_limited") == noisy_sent
        },
    )
    .await;
    let expected: BTreeSet<(String, Vec<u8>)> = (0..REQUESTS)
        .flat_map(|r| {
            traces("quiet", r, QUIET_PER_REQUEST).resource_spans[0].scope_spans[0]
                .spans
                .iter()
                .map(|s| (s.name.clone(), s.span_id.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let arrived: BTreeSet<(String, Vec<u8>)> = sink
        .spans()
        .iter()
        .filter(|s| s.span.name.starts_with("quiet-"))
        .map(|s| (s.span.name.clone(), s.span.span_id.clone()))
        .collect();
    assert_eq!(arrived, expected, "value for value");
    assert!(
        noisy_spans() <= noisy_allowance(),
        "{} noisy spans passed in {:?}",
        noisy_spans(),
        started.elapsed()
    );
    assert!(noisy_spans() >= 100.0, "its burst got through");
    // Each request carries one tenant, and it is the right one.
    sink.with(|recorded| {
        for (request, headers) in recorded.requests.iter().zip(&recorded.headers) {
            let org: Vec<&str> = headers
                .iter()
                .filter(|(k, _)| k == "x-scope-orgid")
                .map(|(_, v)| v.as_str())
                .collect();
            let names: BTreeSet<&str> = request
                .resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .flat_map(|ss| &ss.spans)
                .map(|s| s.name.split('-').next().unwrap())
                .collect();
            assert_eq!(names.len(), 1, "one tenant a request");
            assert_eq!(org, vec![*names.first().unwrap()]);
        }
    });

    // Logs: Loki (which requires a tenant) stores every quiet line under
    // `quiet`, in order; none of the noisy tenant's lines under another.
    let quiet_lines = || {
        loki.entries("quiet", &[("service_name", "quiet")])
            .into_iter()
            .map(|e| e.line)
            .collect::<Vec<_>>()
    };
    let noisy_lines = || loki.entries("noisy", &[("service_name", "noisy")]).len() as f64;
    common::eventually_async(
        common::told(|| {
            format!(
                "quiet lines {}, noisy lines {} + dropped {}",
                quiet_lines().len(),
                noisy_lines(),
                dropped("logs", "rate_limited")
            )
        }),
        WAIT,
        || {
            quiet_lines().len() == quiet_sent
                && noisy_lines() + dropped("logs", "rate_limited") == noisy_sent
        },
    )
    .await;
    let expected: Vec<String> = (0..REQUESTS)
        .flat_map(|r| (0..QUIET_PER_REQUEST).map(move |i| format!("quiet line {r}-{i}")))
        .collect();
    assert_eq!(quiet_lines(), expected);
    loki.with(|received| {
        assert!(received.errors.is_empty(), "{:?}", received.errors);
        assert!(
            received.requests.iter().all(|r| r.tenant.is_some()),
            "every push names its tenant"
        );
        assert_eq!(
            received.streams.len(),
            2,
            "two streams, each under its own tenant"
        );
    });
    assert!(noisy_lines() <= noisy_allowance() && noisy_lines() >= 100.0);

    // Metrics: all 20 quiet series; the noisy tenant's first 10 series only.
    let series = |tenant: &str| -> Vec<(String, f64)> {
        let received = rw.received.lock().unwrap();
        received
            .series
            .iter()
            .zip(&received.series_tenants)
            .filter(|(_, t)| t.as_deref() == Some(tenant))
            .map(|(s, _)| {
                let name = s.labels.iter().find(|(k, _)| k == "__name__").unwrap();
                let n = s.labels.iter().find(|(k, _)| k == "n").unwrap();
                (format!("{}{{n={}}}", name.1, n.1), s.samples[0].1)
            })
            .collect()
    };
    common::eventually_async(
        common::told(|| format!("quiet {:?}, noisy {:?}", series("quiet"), series("noisy"))),
        WAIT,
        || series("quiet").len() == 20 && series("noisy").len() == 10,
    )
    .await;
    let mut quiet = series("quiet");
    quiet.sort_by(|a, b| a.1.total_cmp(&b.1));
    assert_eq!(
        quiet,
        (0..20)
            .map(|i| (format!("quiet_gauge{{n=0-{i}}}"), i as f64))
            .collect::<Vec<_>>()
    );
    assert!(
        series("noisy")
            .iter()
            .all(|(name, _)| name.starts_with("noisy_gauge"))
    );
    assert_eq!(dropped("metrics", "series_limit"), 40.0);
    assert!(
        rw.received
            .lock()
            .unwrap()
            .series_tenants
            .iter()
            .all(|t| t.as_deref() != Some("fallback")),
        "the batch's tenant replaces the configured header"
    );
    assert_eq!(
        ferro.metric(
            "ferro_tenant_active_series",
            &[r#"signal="metrics""#, r#"tenant="noisy""#]
        ),
        10.0
    );
    // Nothing of the quiet tenant was dropped anywhere.
    assert_eq!(
        ferro.metric("ferro_tenant_dropped_items_total", &[r#"tenant="quiet""#]),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_refuse_the_noisy_sender_is_told_to_retry_and_nothing_admitted_is_lost() {
    let loki = LokiServer::start_with(Limits {
        require_tenant: true,
        ..Limits::default()
    })
    .await;
    let ferro = Ferro::start(&format!(
        r#"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.otlp.in]
        grpc = "127.0.0.1:0"
        http = "127.0.0.1:0"
        [processors.tenant.by_org]
        source = "header"
        refuse = true
        [processors.tenant.by_org.overrides.noisy]
        records_per_second = 20
        records_burst = 100
        [exporters.loki.logs]
        endpoint = "{loki}"
        [pipelines.logs]
        receivers = ["otlp.in"]
        processors = ["tenant.by_org"]
        exporters = ["loki.logs"]
        "#,
        loki = loki.url(),
    ));
    let http = ferro.http.unwrap();
    let mut noisy_accepted = 0;
    let mut retry_after = None;
    for r in 0..REQUESTS {
        let (status, headers) = post(
            http,
            "/v1/logs",
            "noisy",
            logs("noisy", r, NOISY_PER_REQUEST).encode_to_vec(),
        )
        .await;
        match status {
            200 => noisy_accepted += NOISY_PER_REQUEST,
            429 => {
                retry_after = headers
                    .iter()
                    .find(|(k, _)| k == "retry-after")
                    .map(|(_, v)| v.parse::<u64>().unwrap());
            }
            other => panic!("HTTP {other}"),
        }
        let (status, _) = post(
            http,
            "/v1/logs",
            "quiet",
            logs("quiet", r, QUIET_PER_REQUEST).encode_to_vec(),
        )
        .await;
        assert_eq!(status, 200, "the quiet tenant is never refused");
    }
    let retry_after = retry_after.expect("the noisy tenant was refused at least once");
    assert!((1..=3).contains(&retry_after), "Retry-After: {retry_after}");
    assert!((100..REQUESTS * NOISY_PER_REQUEST).contains(&noisy_accepted));

    // gRPC says so with RESOURCE_EXHAUSTED (and RetryInfo) while the noisy
    // tenant still owes.
    let mut client = LogsServiceClient::connect(format!("http://{}", ferro.grpc.unwrap()))
        .await
        .unwrap();
    let mut request = tonic::Request::new(logs("noisy", 99, NOISY_PER_REQUEST));
    request
        .metadata_mut()
        .insert("x-scope-orgid", "noisy".parse().unwrap());
    match client.export(request).await {
        Err(status) => assert_eq!(status.code(), tonic::Code::ResourceExhausted),
        Ok(_) => noisy_accepted += NOISY_PER_REQUEST,
    }

    let quiet_sent = REQUESTS * QUIET_PER_REQUEST;
    common::eventually_async(
        common::told(|| {
            format!(
                "quiet {} of {quiet_sent}, noisy {} of {noisy_accepted} accepted",
                loki.entries("quiet", &[("service_name", "quiet")]).len(),
                loki.entries("noisy", &[("service_name", "noisy")]).len()
            )
        }),
        WAIT,
        || {
            loki.entries("quiet", &[("service_name", "quiet")]).len() == quiet_sent
                && loki.entries("noisy", &[("service_name", "noisy")]).len() == noisy_accepted
        },
    )
    .await;
    assert_eq!(
        ferro.metric("ferro_tenant_dropped_items_total", &[]),
        0.0,
        "what was admitted was never dropped"
    );
    assert!(
        ferro.metric(
            "ferro_receiver_refused_items_total",
            &[r#"signal="logs""#, r#"reason="tenant_limit""#]
        ) >= NOISY_PER_REQUEST as f64
    );
}
