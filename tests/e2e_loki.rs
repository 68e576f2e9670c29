//! The Loki exporter end to end, in process: batches go into the exporter's
//! queue as a pipeline would put them, and come out over HTTP at the Loki
//! stand-in (`common::loki`), which decodes the real wire formats and
//! enforces Loki's rules. (There is no logs receiver yet to drive a ferro
//! process with.)

mod common;

use common::loki::{Limits, LokiServer, Mode, Stored};
use common::{WAIT, eventually_async, metric_value};
use ferro::config::ComponentId;
use ferro::delivery::ExporterInput;
use ferro::delivery::{AckWaiter, Batch, Outcome, Ticket};
use ferro::exporters::RunningExporter;
use ferro::plan::Config;
use ferro::signal::Labels;
use ferro::signal::logs::{Entry, Logs, Stream};
use ferro::telemetry::Telemetry;
use std::sync::Arc;
use std::time::Duration;

struct Exporter {
    running: RunningExporter,
    input: ExporterInput<Logs>,
    telemetry: Arc<Telemetry>,
}

impl Exporter {
    fn start(url: &str, extra: &str) -> Exporter {
        let text = format!(
            "[exporters.loki.out]\nendpoint = \"{url}\"\nretry = {{ initial_interval = \"50ms\", max_interval = \"1s\" }}\n{extra}"
        );
        let config = Config::from_str(&text, "test.toml").unwrap();
        let id = ComponentId::new("loki", "out");
        let telemetry = Telemetry::new();
        let running =
            RunningExporter::start(&id, &config.exporters[&id], &config.data_dir, &telemetry)
                .unwrap();
        let input = running.outbox::<ferro::signal::Logs>().unwrap().input(&id);
        Exporter {
            running,
            input,
            telemetry,
        }
    }

    /// Queues `streams` as one batch; the waiter says how its delivery ended.
    async fn deliver(&self, streams: Vec<Stream>) -> AckWaiter {
        let (ticket, waiter) = Ticket::untracked().with_ack();
        self.input
            .deliver(
                Batch::new(Logs::new(streams), ticket),
                &tokio_util::sync::CancellationToken::new(),
            )
            .await;
        waiter
    }

    fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        metric_value(&self.telemetry.encode(), name, labels)
    }

    async fn stop(self) {
        self.running
            .shutdown(tokio::time::Instant::now() + Duration::from_secs(10))
            .await;
    }
}

fn stream(labels: &[(&str, &str)], entries: Vec<Entry>) -> Stream {
    Stream {
        labels: Labels::from_pairs(labels.iter().copied()),
        entries,
    }
}

fn entry(ts: i64, line: impl Into<String>) -> Entry {
    Entry::new(ts, line.into())
}

async fn all_delivered(waiters: Vec<AckWaiter>) -> bool {
    let outcomes = tokio::time::timeout(Duration::from_secs(30), async {
        let mut outcomes = Vec::new();
        for waiter in waiters {
            outcomes.push(waiter.wait().await);
        }
        outcomes
    })
    .await
    .expect("every batch finishes within 30s");
    outcomes.iter().all(|o| *o == Outcome::Delivered)
}

/// Waits until the server has answered a request with `status`.
async fn refused_with(loki: &LokiServer, status: u16) {
    eventually_async(format!("a request answered {status}"), WAIT, || {
        loki.with(|r| r.requests.iter().any(|q| q.status == status))
    })
    .await;
}

const APPS: [&str; 3] = ["api", "db", "web \"edge\"\n\\"];

/// 20 batches of 3 streams × 10 entries each; batch k holds timestamps
/// k*100..k*100+9, each stream's entries reversed inside the batch (the
/// exporter sorts them), and the "api" stream appears twice in a batch.
fn batches() -> Vec<Vec<Stream>> {
    (0..20i64)
        .map(|k| {
            let mut streams = Vec::new();
            for app in APPS {
                let entries = (0..10i64)
                    .rev()
                    .map(|i| {
                        let ts = k * 100 + i;
                        let mut e = entry(ts, format!("{app} line {ts} ünï"));
                        e.metadata = vec![("trace_id".into(), format!("t{ts}"))];
                        e
                    })
                    .collect::<Vec<_>>();
                let (first, second) = entries.split_at(4);
                let labels = [("app", app), ("namespace", "prod")];
                streams.push(stream(&labels, second.to_vec()));
                if app == "api" {
                    streams.push(stream(&labels, first.to_vec()));
                } else {
                    streams.last_mut().unwrap().entries.extend_from_slice(first);
                }
            }
            streams
        })
        .collect()
}

fn expected(app: &str) -> Vec<Stored> {
    (0..20i64)
        .flat_map(|k| (0..10i64).map(move |i| k * 100 + i))
        .map(|ts| Stored {
            timestamp_ns: ts,
            line: format!("{app} line {ts} ünï"),
            metadata: vec![("trace_id".into(), format!("t{ts}"))],
        })
        .collect()
}

async fn every_entry_arrives_in_order(encoding: &str, batch_size: &str) {
    let loki = LokiServer::start().await;
    let exporter = Exporter::start(
        &loki.url(),
        &format!("encoding = \"{encoding}\"\nbatch_size = \"{batch_size}\"\nbatch_wait = \"50ms\""),
    );
    let mut waiters = Vec::new();
    for batch in batches() {
        waiters.push(exporter.deliver(batch).await);
    }
    assert!(all_delivered(waiters).await);
    for app in APPS {
        let stored = loki.entries("fake", &[("app", app), ("namespace", "prod")]);
        assert_eq!(stored, expected(app), "{app}");
    }
    let content_type = if encoding == "json" {
        "application/json"
    } else {
        "application/x-protobuf"
    };
    loki.with(|r| {
        assert_eq!(r.errors, Vec::<String>::new());
        assert_eq!(r.duplicates, 0);
        assert_eq!(r.streams.len(), 3);
        assert!(
            r.requests.len() > 3,
            "{batch_size} requests make several: {}",
            r.requests.len()
        );
        assert!(r.requests.iter().all(|q| q.content_type == content_type));
        assert!(r.requests.iter().all(|q| q.tenant.is_none()));
    });
    assert_eq!(
        exporter.metric("ferro_exporter_sent_items_total", &[]),
        600.0
    );
    exporter.stop().await;
}

#[tokio::test]
async fn every_entry_arrives_in_order_with_labels_and_metadata_protobuf() {
    every_entry_arrives_in_order("protobuf", "2KiB").await;
}

/// Requests smaller than a batch: each batch is cut, oldest entries first.
#[tokio::test]
async fn batches_larger_than_batch_size_are_cut_in_timestamp_order() {
    every_entry_arrives_in_order("protobuf", "400B").await;
}

#[tokio::test]
async fn every_entry_arrives_in_order_with_labels_and_metadata_json() {
    every_entry_arrives_in_order("json", "2KiB").await;
}

#[tokio::test]
async fn loki_refusing_then_back_loses_nothing_and_keeps_order() {
    let loki = LokiServer::start().await;
    loki.set_mode(Mode::TooManyRequests);
    let exporter = Exporter::start(&loki.url(), "batch_size = \"2KiB\"\nbatch_wait = \"20ms\"");
    let mut waiters = Vec::new();
    let all = batches();
    for (k, batch) in all.into_iter().enumerate() {
        if k == 5 {
            refused_with(&loki, 429).await;
            loki.set_mode(Mode::Unavailable);
        }
        waiters.push(exporter.deliver(batch).await);
    }
    refused_with(&loki, 503).await;
    assert_eq!(loki.with(|r| r.entry_count()), 0);
    loki.set_mode(Mode::Accept);
    assert!(all_delivered(waiters).await);
    for app in APPS {
        let stored = loki.entries("fake", &[("app", app), ("namespace", "prod")]);
        assert_eq!(stored, expected(app), "{app}");
    }
    loki.with(|r| {
        assert_eq!(r.errors, Vec::<String>::new(), "no entry out of order");
        assert!(r.requests.iter().any(|q| q.status == 429));
        assert!(r.requests.iter().any(|q| q.status == 503));
    });
    assert!(exporter.metric("ferro_exporter_retries_total", &[]) > 0.0);
    assert!(
        exporter.metric(
            "ferro_exporter_send_failed_items_total",
            &["reason=\"http_5xx\""]
        ) > 0.0
    );
    assert!(
        exporter.metric(
            "ferro_exporter_send_failed_items_total",
            &["reason=\"rate_limited\""]
        ) > 0.0
    );
    assert_eq!(exporter.metric("ferro_dropped_items_total", &[]), 0.0);
    assert_eq!(
        exporter.metric("ferro_exporter_sent_items_total", &[]),
        600.0
    );
    exporter.stop().await;
}

#[tokio::test]
async fn a_slow_loki_times_out_and_the_request_is_retried() {
    let loki = LokiServer::start().await;
    loki.set_mode(Mode::Slow(Duration::from_millis(800)));
    let exporter = Exporter::start(&loki.url(), "timeout = \"200ms\"\nbatch_wait = \"10ms\"");
    let waiter = exporter
        .deliver(vec![stream(&[("app", "a")], vec![entry(1, "patient")])])
        .await;
    let timed_out = || {
        exporter.metric(
            "ferro_exporter_send_failed_items_total",
            &["reason=\"timeout\""],
        )
    };
    eventually_async("the attempt to time out", WAIT, || timed_out() >= 1.0).await;
    loki.set_mode(Mode::Accept);
    assert_eq!(waiter.wait().await, Outcome::Delivered);
    assert_eq!(loki.entries("fake", &[("app", "a")]).len(), 1);
    exporter.stop().await;
}

#[tokio::test]
async fn refused_entries_are_dropped_and_counted_with_lokis_reason() {
    let loki = LokiServer::start_with(Limits {
        max_line_size: 100,
        ..Limits::default()
    })
    .await;
    let exporter = Exporter::start(&loki.url(), "batch_wait = \"10ms\"");

    // A line past Loki's limit: Loki stores the rest and answers 400.
    let long = "x".repeat(200);
    let waiter = exporter
        .deliver(vec![
            stream(&[("app", "a")], vec![entry(1, "short"), entry(2, long)]),
            stream(&[("app", "b")], vec![entry(3, "fine")]),
        ])
        .await;
    assert_eq!(waiter.wait().await, Outcome::Dropped);
    assert_eq!(loki.entries("fake", &[("app", "a")]).len(), 1);
    assert_eq!(loki.entries("fake", &[("app", "b")]).len(), 1);
    assert!(loki.with(|r| r.errors[0].starts_with("Max entry size '100' bytes exceeded")));
    assert_eq!(
        exporter.metric(
            "ferro_exporter_send_failed_items_total",
            &["reason=\"line_too_long\""]
        ),
        3.0
    );
    assert_eq!(
        exporter.metric("ferro_dropped_items_total", &["reason=\"permanent_error\""]),
        3.0
    );

    // Older than what Loki already has for the stream: out of order.
    assert!(
        all_delivered(vec![
            exporter
                .deliver(vec![stream(&[("app", "c")], vec![entry(1000, "new")])])
                .await
        ])
        .await
    );
    let waiter = exporter
        .deliver(vec![stream(&[("app", "c")], vec![entry(500, "old")])])
        .await;
    assert_eq!(waiter.wait().await, Outcome::Dropped);
    assert!(loki.with(|r| r.errors[1].contains("entry out of order")));
    assert_eq!(
        exporter.metric(
            "ferro_exporter_send_failed_items_total",
            &["reason=\"out_of_order\""]
        ),
        1.0
    );

    // Labels Loki cannot parse never leave: dropped and counted here.
    let waiter = exporter
        .deliver(vec![
            stream(&[("app.kubernetes.io/name", "q")], vec![entry(1, "dotted")]),
            stream(&[("app", "d")], vec![entry(1, "kept")]),
        ])
        .await;
    assert_eq!(waiter.wait().await, Outcome::Dropped);
    assert_eq!(loki.entries("fake", &[("app", "d")]).len(), 1);
    assert_eq!(
        exporter.metric("ferro_dropped_items_total", &["reason=\"invalid_labels\""]),
        1.0
    );
    assert_eq!(loki.with(|r| r.errors.len()), 2);
    exporter.stop().await;
}

#[tokio::test]
async fn streams_reach_the_tenant_their_label_names() {
    let loki = LokiServer::start_with(Limits {
        require_tenant: true,
        ..Limits::default()
    })
    .await;
    let exporter = Exporter::start(
        &loki.url(),
        "tenant_id = \"ops\"\ntenant_label = \"tenant\"\nbatch_wait = \"20ms\"",
    );
    let waiter = exporter
        .deliver(vec![
            stream(&[("app", "x"), ("tenant", "team-a")], vec![entry(1, "a1")]),
            stream(&[("app", "x"), ("tenant", "team-b")], vec![entry(1, "b1")]),
            stream(&[("app", "x")], vec![entry(1, "ops1")]),
            stream(&[("app", "y"), ("tenant", "team-a")], vec![entry(2, "a2")]),
        ])
        .await;
    assert_eq!(waiter.wait().await, Outcome::Delivered);
    let lines = |tenant: &str, app: &str| -> Vec<String> {
        loki.entries(tenant, &[("app", app)])
            .into_iter()
            .map(|e| e.line)
            .collect()
    };
    assert_eq!(lines("team-a", "x"), ["a1"]);
    assert_eq!(lines("team-a", "y"), ["a2"]);
    assert_eq!(lines("team-b", "x"), ["b1"]);
    assert_eq!(lines("ops", "x"), ["ops1"]);
    loki.with(|r| {
        assert_eq!(r.streams.len(), 4, "the tenant label is not a stream label");
        let mut tenants: Vec<_> = r
            .requests
            .iter()
            .map(|q| q.tenant.clone().unwrap())
            .collect();
        tenants.sort();
        assert_eq!(
            tenants,
            ["ops", "team-a", "team-b"],
            "one request per tenant"
        );
    });
    exporter.stop().await;
}

#[tokio::test]
async fn batch_wait_gathers_small_batches_and_shutdown_sends_what_waits() {
    let loki = LokiServer::start().await;
    let exporter = Exporter::start(
        &loki.url(),
        "batch_wait = \"500ms\"\nqueue = { num_consumers = 1 }",
    );
    let mut waiters = Vec::new();
    for i in 0..10 {
        waiters.push(
            exporter
                .deliver(vec![stream(&[("app", "a")], vec![entry(i, "x")])])
                .await,
        );
    }
    assert!(all_delivered(waiters).await);
    assert_eq!(
        loki.with(|r| r.requests.len()),
        1,
        "one request for ten batches"
    );

    let exporter = Exporter::start(&loki.url(), "batch_wait = \"1h\"");
    let waiter = exporter
        .deliver(vec![stream(&[("app", "b")], vec![entry(1, "waiting")])])
        .await;
    // The exporter took the batch from its queue, and holds it.
    eventually_async("the exporter to take the batch", WAIT, || {
        exporter.metric("ferro_exporter_queue_items", &[]) == 0.0
    })
    .await;
    assert!(loki.entries("fake", &[("app", "b")]).is_empty());
    exporter.stop().await;
    assert_eq!(waiter.wait().await, Outcome::Delivered);
    assert_eq!(loki.entries("fake", &[("app", "b")]).len(), 1);
}

#[tokio::test]
async fn the_stand_in_enforces_lokis_label_syntax() {
    use common::loki::parse_labels;
    assert_eq!(
        parse_labels(r#"{a="1", b="x\"y\\z\nw"}"#).unwrap(),
        vec![
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "x\"y\\z\nw".to_string())
        ]
    );
    assert_eq!(parse_labels("{}").unwrap(), vec![]);
    for bad in [
        r#"{a=1}"#,
        r#"{a="1""#,
        r#"{1a="x"}"#,
        r#"{a.b="x"}"#,
        r#"{a=~"x"}"#,
        "{a=\"new\nline\"}",
        r#"{a="\q"}"#,
        r#"a="1""#,
    ] {
        assert!(parse_labels(bad).is_err(), "{bad}");
    }
    // The server answers as Loki does to what a careless client sends.
    let loki = LokiServer::start().await;
    let post = |labels: &'static str| {
        let addr = loki.addr;
        async move {
            let request = ferro_proto::logproto::PushRequest {
                streams: vec![ferro_proto::logproto::StreamAdapter {
                    labels: labels.into(),
                    entries: vec![ferro_proto::logproto::EntryAdapter {
                        timestamp: Some(Default::default()),
                        line: "x".into(),
                        structured_metadata: vec![],
                    }],
                    hash: 0,
                }],
            };
            let body = snap::raw::Encoder::new()
                .compress_vec(&prost::Message::encode_to_vec(&request))
                .unwrap();
            tokio::task::spawn_blocking(move || {
                let (status, _, body) = common::http_post(
                    addr,
                    "/loki/api/v1/push",
                    &[("Content-Type", "application/x-protobuf")],
                    &body,
                );
                (status, String::from_utf8_lossy(&body).to_string())
            })
            .await
            .unwrap()
        }
    };
    assert_eq!(post(r#"{a="1"}"#).await.0, 204);
    let (status, message) = post("{a=1}").await;
    assert_eq!(status, 400);
    assert!(
        message.starts_with("Error parsing labels '{a=1}'"),
        "{message}"
    );
    let (status, message) = post("{}").await;
    assert_eq!(status, 400);
    assert_eq!(
        message,
        "error at least one label pair is required per stream"
    );
    assert_eq!(
        post(r#"{a="1"}"#).await.0,
        204,
        "a duplicate is dropped quietly"
    );
    assert_eq!(loki.with(|r| r.duplicates), 1);
}
