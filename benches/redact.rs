//! Cost of the default redaction on log lines, in MiB of lines per second:
//! 10,000 lines of about 200 bytes (logfmt words, trace ids, durations; each
//! with a `filename` structured-metadata pair as the pod log tailer adds)
//! across 20 streams, either clean or with a secret (password=…, a bearer
//! token, a JWT, an AWS key) in one line of ten. The batch is cloned into
//! each iteration, as a pipeline hands it on, so the figure includes that.
//!
//! `cargo bench --bench redact`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferro::config::ComponentId;
use ferro::delivery::{Batch, Ticket};
use ferro::processors::redact::{RedactConfig, Redactor};
use ferro::signal::logs::{Entry, Stream};
use ferro::signal::{Labels, Logs};
use ferro::telemetry::Telemetry;
use std::time::Duration;

const STREAMS: usize = 20;
const LINES: usize = 10_000;

const WORDS: &[&str] = &[
    "GET",
    "POST",
    "/api/v1/orders",
    "user=alice",
    "status=200",
    "latency_ms=12",
    "trace_id=4bf92f3577b34da6a3ce929d0e0e4736",
    "msg=request",
    "completed",
    "upstream=payments",
    "bytes=5123",
    "region=eu-west-1",
];

const SECRETS: &[&str] = &[
    "password=hunter2",
    "Authorization: Bearer 8f14e45fceea167a5a36dedd4bea2543",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlX2hlcmU",
    "key=AKIAIOSFODNN7EXAMPLE",
];

fn logs(with_secrets: bool) -> (Logs, u64) {
    let mut rng = fastrand::Rng::with_seed(1);
    let mut bytes = 0;
    let per_stream = LINES / STREAMS;
    let streams = (0..STREAMS)
        .map(|s| {
            let pod = format!("api-7d9f8b6c5-{s:05}");
            let filename = format!("/var/log/pods/prod_{pod}_0b3c/api/0.log");
            let entries = (0..per_stream)
                .map(|i| {
                    let mut line = format!("ts=2024-01-01T00:00:00.{i:09}Z level=info");
                    for _ in 0..14 {
                        line.push(' ');
                        line.push_str(WORDS[rng.usize(..WORDS.len())]);
                    }
                    if with_secrets && i % 10 == 0 {
                        line.push(' ');
                        line.push_str(SECRETS[rng.usize(..SECRETS.len())]);
                    }
                    bytes += line.len() as u64;
                    let mut entry = Entry::new(i as i64, line);
                    entry.metadata = vec![("filename".into(), filename.clone())];
                    entry
                })
                .collect();
            Stream {
                labels: Labels::from_pairs([
                    ("namespace", "prod"),
                    ("pod", pod.as_str()),
                    ("container", "api"),
                ]),
                entries,
            }
        })
        .collect();
    (Logs::new(streams), bytes)
}

fn redact(c: &mut Criterion) {
    let telemetry = Telemetry::new();
    let redactor = Redactor::new(
        &ComponentId::new("redact", "default"),
        &RedactConfig::default(),
        &telemetry,
    );
    let mut group = c.benchmark_group("redact logs");
    group.measurement_time(Duration::from_secs(5));
    for (name, with_secrets) in [("clean", false), ("1 in 10 with a secret", true)] {
        let (logs, bytes) = logs(with_secrets);
        group.throughput(Throughput::Bytes(bytes));
        group.bench_function(format!("clone only, {name}"), |b| {
            b.iter(|| Batch::new(logs.clone(), Ticket::untracked()))
        });
        group.bench_function(format!("default rules, {name}"), |b| {
            b.iter(|| {
                let mut batch = Batch::new(logs.clone(), Ticket::untracked());
                redactor.process(&mut batch);
                batch
            })
        });
    }
    group.finish();
}

/// The load harness's requests (200 HTTP server spans of 10 attributes,
/// `src/otlp/sample.rs`): every span has a URL, whose `://` is an anchor,
/// so every span is decoded and each of its fields looked at.
fn redact_traces(c: &mut Criterion) {
    use prost::Message;
    let telemetry = Telemetry::new();
    let redactor = Redactor::new(
        &ComponentId::new("redact", "default"),
        &RedactConfig::default(),
        &telemetry,
    );
    let body = bytes::Bytes::from(ferro::otlp::sample::trace_requests(1, 200)[0].encode_to_vec());
    let infos = ferro::otlp::scan::trace_request(&body).unwrap();
    let (traces, _) = ferro::signal::Traces::from_scanned(&body, infos);
    let mut group = c.benchmark_group("redact traces");
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(200));
    group.bench_function("default rules, 200 spans with URLs", |b| {
        b.iter(|| {
            let mut batch = Batch::new(traces.clone(), Ticket::untracked());
            redactor.process(&mut batch);
            batch
        })
    });
    group.finish();
}

criterion_group!(benches, redact, redact_traces);
criterion_main!(benches);
