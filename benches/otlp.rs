//! Micro-benchmarks of the OTLP trace hot path: validating a request in wire
//! form (what ferro does) against decoding it with prost (what a collector
//! that converts would do), and writing a batch back out.
//!
//! `cargo bench --bench otlp`

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferro::otlp::{json, sample, scan};
use ferro::signal::{SignalData, Traces};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::hint::black_box;

fn request_200_spans() -> Bytes {
    sample::trace_requests(1, 200)
        .remove(0)
        .encode_to_vec()
        .into()
}

fn receive(c: &mut Criterion) {
    let body = request_200_spans();
    let mut group = c.benchmark_group("receive 200 spans, 10 attributes each");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("ferro scan (wire form kept)", |b| {
        b.iter(|| {
            let infos = scan::trace_request(black_box(&body)).unwrap();
            Traces::from_scanned(&body, infos)
        })
    });
    group.bench_function("prost decode (for comparison)", |b| {
        b.iter(|| ExportTraceServiceRequest::decode(black_box(body.clone())).unwrap())
    });
    let json_body =
        serde_json::to_vec(&ExportTraceServiceRequest::decode(body.clone()).unwrap()).unwrap();
    group.throughput(Throughput::Bytes(json_body.len() as u64));
    group.bench_function("OTLP/JSON decode", |b| {
        b.iter(|| json::decode_traces(black_box(&json_body)).unwrap())
    });
    group.finish();
}

fn export(c: &mut Criterion) {
    let body = request_200_spans();
    let (mut batch, _) = Traces::from_scanned(&body, scan::trace_request(&body).unwrap());
    for _ in 0..40 {
        let (more, _) = Traces::from_scanned(&body, scan::trace_request(&body).unwrap());
        batch.merge(more);
    }
    let decoded = ExportTraceServiceRequest {
        resource_spans: batch.resource_spans(),
    };
    let mut group = c.benchmark_group("export a batch of 8200 spans");
    group.throughput(Throughput::Bytes(batch.encoded_len() as u64));
    group.bench_function("ferro encode (wire form copied)", |b| {
        b.iter(|| {
            let mut buf = Vec::with_capacity(batch.encoded_len());
            black_box(&batch).encode_request(&mut buf);
            buf
        })
    });
    group.bench_function("prost encode (for comparison)", |b| {
        b.iter(|| black_box(&decoded).encode_to_vec())
    });
    group.finish();
}

criterion_group!(benches, receive, export);
criterion_main!(benches);
