//! Throughput of building Loki push bodies, in log entries per second: one
//! request of 10,000 entries (lines of about 120 bytes, half with structured
//! metadata) over 50 streams, arriving in two batches per stream that must be
//! merged and sorted, as the exporter does before each send.
//!
//! `cargo bench --bench loki`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferro::exporters::loki::Encoding;
use ferro::exporters::loki::encode::{body, group};
use ferro::signal::Labels;
use ferro::signal::logs::{Entry, Stream};
use std::hint::black_box;
use std::time::Duration;

const STREAMS: usize = 50;
const ENTRIES: usize = 10_000;

fn request() -> Vec<Stream> {
    let per_half = ENTRIES / STREAMS / 2;
    let mut streams = Vec::new();
    for half in 0..2 {
        for s in 0..STREAMS {
            let pod = format!("api-7d9f8b6c5-{s:05}");
            let labels = Labels::from_pairs([
                ("namespace", "prod"),
                ("pod", pod.as_str()),
                ("container", "api"),
                ("job", "prod/api"),
            ]);
            let entries = (0..per_half)
                .map(|i| {
                    // The second half interleaves with the first: merging sorts.
                    let ts = 1_700_000_000_000_000_000 + (i * 2 + half) as i64 * 1_000;
                    let mut e = Entry::new(
                        ts,
                        format!(
                            "level=info ts={ts} caller=handler.go:{i} msg=\"request served\" path=/api/v1/items status=200 duration_ms={}",
                            i % 97
                        ),
                    );
                    if i % 2 == 0 {
                        e.metadata = vec![("trace_id".into(), format!("{ts:032x}"))];
                    }
                    e
                })
                .collect();
            streams.push(Stream { labels, entries });
        }
    }
    streams
}

fn encode(c: &mut Criterion) {
    let streams = request();
    let mut group_ = c.benchmark_group("loki push body");
    group_.measurement_time(Duration::from_secs(5));
    group_.throughput(Throughput::Elements(ENTRIES as u64));
    for (name, encoding) in [
        ("protobuf+snappy", Encoding::Protobuf),
        ("json", Encoding::Json),
    ] {
        let mut scratch = Vec::new();
        group_.bench_function(name, |b| {
            b.iter_batched(
                || streams.clone(),
                |streams| {
                    let grouped = group(black_box(streams));
                    body(&grouped, encoding, &mut scratch).unwrap()
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    group_.finish();
    let grouped = group(streams);
    for encoding in [Encoding::Protobuf, Encoding::Json] {
        let size = body(&grouped, encoding, &mut Vec::new()).unwrap().len();
        println!("{encoding:?}: {ENTRIES} entries → {size} bytes");
    }
}

criterion_group!(benches, encode);
criterion_main!(benches);
