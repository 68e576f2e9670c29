//! Cost of the tenant processor per record, on batches as pipelines see
//! them:
//!
//! - logs, `source = "label"`: 100 streams of 20 entries over 10 namespaces,
//!   with rate, stream and label limits: every stream is looked up, checked
//!   and tracked, and the batch is cut into 10;
//! - metrics, `source = "label"`: 2,000 series of one sample over 10
//!   namespaces, with a series limit: the active-series table on the hot path;
//! - logs, `source = "header"` with only a rate limit: one decision a batch.
//!
//! Budgets are high enough that nothing is dropped, so every iteration does
//! the full work. `cargo bench --bench tenant`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ferro::config::{ComponentId, Validate};
use ferro::delivery::{Batch, Ticket};
use ferro::processors::tenant::{RawTenantConfig, TenantLimiter};
use ferro::signal::logs::{Entry, Stream};
use ferro::signal::metrics::Series;
use ferro::signal::{Labels, Logs, Metrics};
use ferro::telemetry::Telemetry;
use std::hint::black_box;
use std::time::Duration;

fn limiter(toml_text: &str) -> TenantLimiter {
    let raw: RawTenantConfig = toml::from_str(toml_text).unwrap();
    let config = raw.validate().unwrap_or_else(|e| panic!("{e:?}"));
    TenantLimiter::new(
        &ComponentId::new("tenant", "bench"),
        &config,
        &Telemetry::new(),
    )
}

const LIMITS: &str = r#"
[limits]
records_per_second = 1000000000
bytes_per_second = "1000GiB"
max_active_series = 1000000
max_active_streams = 1000000
max_labels_per_series = 30
max_label_value_length = 2048
"#;

fn logs() -> Logs {
    Logs::new(
        (0..100)
            .map(|s| {
                let ns = format!("team-{}", s % 10);
                let pod = format!("api-7d9f8b6c5-{s:05}");
                Stream {
                    labels: Labels::from_pairs([
                        ("namespace", ns.as_str()),
                        ("pod", pod.as_str()),
                        ("container", "api"),
                        ("job", "prod/api"),
                    ]),
                    entries: (0..20)
                        .map(|i| {
                            Entry::new(
                                1_700_000_000_000_000_000 + i,
                                format!("level=info caller=handler.go:{i} msg=\"request served\" path=/api/v1/items status=200"),
                            )
                        })
                        .collect(),
                }
            })
            .collect(),
    )
}

fn metrics() -> Metrics {
    Metrics::new(
        (0..2000)
            .map(|s| {
                let ns = format!("team-{}", s % 10);
                let instance = format!("10.0.{}.{}:9100", s / 250, s % 250);
                Series::sample(
                    Labels::from_pairs([
                        ("__name__", "node_cpu_seconds_total"),
                        ("namespace", ns.as_str()),
                        ("instance", instance.as_str()),
                        ("cpu", "0"),
                        ("mode", "idle"),
                    ]),
                    s as f64,
                    1_700_000_000_000,
                )
            })
            .collect(),
    )
}

fn bench<T: ferro::signal::Fields>(
    c: &mut Criterion,
    name: &str,
    limiter: &TenantLimiter,
    data: T,
) {
    let mut group = c.benchmark_group("tenant processor");
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(data.item_count() as u64));
    group.bench_function(name, |b| {
        b.iter_batched(
            || Batch::new(data.clone(), Ticket::untracked()),
            // The output is returned so that criterion drops it untimed.
            |batch| {
                let mut out = Vec::with_capacity(16);
                limiter.process(batch, &mut out);
                black_box(out)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn tenant(c: &mut Criterion) {
    let by_label = limiter(&format!(
        "source = \"label\"\nlabel = \"namespace\"\n{LIMITS}"
    ));
    bench(c, "logs, label source, all limits", &by_label, logs());
    bench(c, "metrics, label source, all limits", &by_label, metrics());
    let rates_only = limiter(
        "source = \"label\"\nlabel = \"namespace\"\n[limits]\nrecords_per_second = 1000000000",
    );
    bench(
        c,
        "metrics, label source, rate only",
        &rates_only,
        metrics(),
    );
    let by_header = limiter("source = \"header\"\n[limits]\nrecords_per_second = 1000000000");
    bench(c, "logs, header source, rate only", &by_header, logs());
}

criterion_group!(benches, tenant);
criterion_main!(benches);
