//! Micro-benchmarks of profile validation: `pprof::check` on gzip'd CPU and
//! heap profiles shaped like a mid-sized Go service's (the load harness's),
//! its two halves (inflate, walk), and what the check cost before the walk
//! (inflate, then a full prost decode into `perftools.profiles.Profile`).
//!
//! `cargo bench --bench pprof`

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferro::pprof::{self, sample};
use ferro_proto::perftools::profiles::Profile;
use prost::Message;
use std::hint::black_box;
use std::io::Read;

const MAX: usize = 16 << 20;

fn gunzip(data: &[u8], out: &mut Vec<u8>) {
    out.clear();
    flate2::bufread::GzDecoder::new(data)
        .read_to_end(out)
        .unwrap();
}

fn validate(c: &mut Criterion) {
    let now = 1_700_000_000_000_000_000;
    let profiles = [
        ("CPU", sample::profile(sample::Kind::Cpu, 3000, 2000, now)),
        ("heap", sample::profile(sample::Kind::Heap, 3000, 1500, now)),
    ];
    for (name, profile) in profiles {
        let gz: Bytes = pprof::encode_gzip(&profile);
        let plain = profile.encode_to_vec();
        let mut group = c.benchmark_group(format!(
            "{name} profile, {} KB gzip'd, {} KB plain",
            gz.len() / 1000,
            plain.len() / 1000
        ));
        group.throughput(Throughput::Elements(1));
        group.bench_function("ferro check (inflate + walk)", |b| {
            b.iter(|| pprof::check(black_box(&gz), MAX).unwrap())
        });
        group.bench_function("walk only (plain profile)", |b| {
            b.iter(|| pprof::check(black_box(&plain), MAX).unwrap())
        });
        let mut out = Vec::new();
        group.bench_function("inflate only, flate2's gzip reader", |b| {
            b.iter(|| gunzip(black_box(&gz), &mut out))
        });
        group.bench_function("inflate only, ferro's one-shot inflate", |b| {
            b.iter(|| {
                out.clear();
                pprof::gunzip(black_box(&gz), MAX, &mut out).unwrap()
            })
        });
        group.bench_function("inflate + prost decode (the check before the walk)", |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(gz.len() * 4);
                gunzip(black_box(&gz), &mut out);
                Profile::decode(out.as_slice()).unwrap()
            })
        });
        group.finish();
    }
}

criterion_group!(benches, validate);
criterion_main!(benches);
