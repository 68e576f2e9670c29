//! One collection of every host metrics collector on this machine: reading
//! `/proc` and `/sys`, parsing, and building the batch (label sets reused,
//! as from the second collection on).
//!
//! `cargo bench --bench host_metrics`

use criterion::{Criterion, criterion_group, criterion_main};
use ferro::config::Validate;
use ferro::receivers::host_metrics::{Collection, RawHostMetricsConfig};
use std::hint::black_box;

fn collection(c: &mut Criterion) {
    let raw: RawHostMetricsConfig = toml::from_str("").unwrap();
    let config = raw.validate().unwrap();
    let mut collection = Collection::new(&config);
    // The first collection builds the label sets; the benchmark measures
    // the ones after, as a receiver runs them.
    let (first, failed) = collection.run(&config);
    assert!(failed.is_empty(), "{failed:?}");
    eprintln!("{} series per collection", first.series.len());
    c.bench_function("host_metrics: one collection, every collector", |b| {
        b.iter(|| black_box(collection.run(&config)))
    });
}

criterion_group!(benches, collection);
criterion_main!(benches);
