//! A soak, bounded in time: hostile clients (slowloris heads, stalled
//! bodies, gzip bombs, oversized and garbage requests, silent gRPC
//! connections) beside normal OTLP clients over HTTP and gRPC, with a reload
//! every few seconds, against one ferro with a small memory limit. It
//! asserts that every normal request is served (after the retries an OTLP
//! client makes on 429/503), that RSS stays under `memory_limit` plus a
//! stated overhead, that no descriptor leaks, and that ferro exits 0 within
//! its shutdown timeout at the end.
//!
//! `FERRO_SOAK_SECS` sets how long it runs (60 s by default).

mod common;

use common::{Ferro, WAIT, eventually};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The memory limit, and what the process may hold beyond it: the
/// runtime, buffers of connections and of the exporter, allocator slack.
const LIMIT_MIB: u64 = 64;
const OVERHEAD_MIB: u64 = 96;

fn config(wait: &str, http: &str, grpc: &str) -> String {
    format!(
        r#"
        memory_limit = "{LIMIT_MIB}MiB"
        shutdown_timeout = "5s"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.otlp.in]
        http = "{http}"
        grpc = "{grpc}"
        pipeline_wait = "{wait}"
        [receivers.otlp.in.server]
        max_connections = 300
        read_header_timeout = "2s"
        idle_timeout = "10s"
        read_body_timeout = "2s"
        [exporters.blackhole.null]
        [pipelines.traces]
        receivers = ["otlp.in"]
        processors = ["batch"]
        exporters = ["blackhole.null"]
        "#
    )
}

fn span_json(i: u64) -> Vec<u8> {
    format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103{i:016x}","spanId":"{:016x}","name":"soak","startTimeUnixNano":"1","endTimeUnixNano":"2"}}]}}]}}]}}"#,
        i + 1
    )
    .into_bytes()
}

/// What the normal clients saw.
#[derive(Default)]
struct Tally {
    served: AtomicU64,
    retried: AtomicU64,
    failed: Mutex<Vec<String>>,
}

/// A normal OTLP/HTTP client on a kept-alive connection: retries 429 and
/// 503 after `Retry-After`, as OTLP exporters do, and reconnects only when
/// ferro closed an idle connection between its requests.
fn http_client(addr: SocketAddr, stop: Arc<AtomicBool>, tally: Arc<Tally>, first: u64) {
    let mut stream: Option<TcpStream> = None;
    let mut i = first;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let body = span_json(i);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let fresh = stream.is_none();
            let conn = stream.get_or_insert_with(|| TcpStream::connect(addr).unwrap());
            match post(conn, &body) {
                Some(200) => {
                    tally.served.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Some(429 | 503) if attempt < 20 => {
                    tally.retried.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(250));
                }
                // An idle connection ferro closed: a client reconnects.
                None if !fresh => stream = None,
                other => {
                    tally.failed.lock().unwrap().push(format!(
                        "HTTP request {i}: {other:?} after {attempt} attempts"
                    ));
                    stream = None;
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A POST on a kept-alive connection: its status, or `None` when the
/// connection closed or ferro said it closes it after this answer.
fn post(stream: &mut TcpStream, body: &[u8]) -> Option<u16> {
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: ferro\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    match common::read_response(stream)? {
        (_, true, _) => None,
        (status, false, _) => Some(status),
    }
}

/// Hostile clients, one kind per thread, until `stop`.
fn hostile(kind: usize, http: SocketAddr, grpc: SocketAddr, stop: Arc<AtomicBool>) {
    let mut rng = fastrand::Rng::with_seed(kind as u64);
    let bomb = {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![0u8; 64 << 20]).unwrap();
        gz.finish().unwrap()
    };
    while !stop.load(Ordering::Relaxed) {
        match kind {
            // Slowloris: heads dripped a byte at a time.
            0 => {
                let mut held: Vec<TcpStream> = (0..40)
                    .filter_map(|_| TcpStream::connect(http).ok())
                    .collect();
                for _ in 0..8 {
                    for s in &mut held {
                        let _ = s.write_all(b"P");
                    }
                    std::thread::sleep(Duration::from_millis(400));
                }
            }
            // Stalled bodies: a quarter of a declared 4 MB, then nothing.
            1 => {
                let mut held = Vec::new();
                for _ in 0..10 {
                    if let Ok(mut s) = TcpStream::connect(http) {
                        let head = "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 4000000\r\n\r\n";
                        let _ = s.write_all(head.as_bytes());
                        let _ = s.write_all(&vec![7u8; 1 << 20]);
                        held.push(s);
                    }
                }
                std::thread::sleep(Duration::from_secs(3));
            }
            // Bombs, oversized bodies and garbage.
            2 => {
                let requests: [(&str, Vec<u8>); 3] = [
                    ("gzip", bomb.clone()),
                    ("", vec![0u8; 5 << 20]),
                    ("", (0..4096).map(|_| rng.u8(..)).collect()),
                ];
                for (encoding, body) in requests {
                    if let Ok(mut s) = TcpStream::connect(http) {
                        let head = format!(
                            "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            if encoding.is_empty() {
                                "identity"
                            } else {
                                encoding
                            },
                            body.len()
                        );
                        let _ = s.write_all(head.as_bytes());
                        let _ = s.write_all(&body);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                        let _ = s.read_to_end(&mut Vec::new());
                    }
                }
            }
            // Garbage and silence on the gRPC port.
            _ => {
                let mut held = Vec::new();
                for _ in 0..10 {
                    if let Ok(mut s) = TcpStream::connect(grpc) {
                        if rng.bool() {
                            let noise: Vec<u8> = (0..512).map(|_| rng.u8(..)).collect();
                            let _ = s.write_all(&noise);
                        }
                        held.push(s);
                    }
                }
                std::thread::sleep(Duration::from_secs(3));
            }
        }
    }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_hostile_and_normal_clients_with_reloads() {
    let secs: u64 = std::env::var("FERRO_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let ferro = Ferro::start(&config("1s", "127.0.0.1:0", "127.0.0.1:0"));
    let (http, grpc) = (ferro.http.unwrap(), ferro.grpc.unwrap());
    let pinned = |wait: &str| config(wait, &http.to_string(), &grpc.to_string());
    std::fs::write(&ferro.config_path, pinned("1s")).unwrap();
    ferro.signal("HUP");
    ferro.wait_for_logs("reload done", 1, WAIT);
    let fds_before = open_fds(ferro.pid());

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut threads = Vec::new();
    for c in 0..2 {
        let (stop, tally) = (stop.clone(), tally.clone());
        threads.push(std::thread::spawn(move || {
            http_client(http, stop, tally, c * 1_000_000_000)
        }));
    }
    for kind in 0..4 {
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || hostile(kind, http, grpc, stop)));
    }
    let grpc_client = {
        let (stop, tally) = (stop.clone(), tally.clone());
        tokio::spawn(async move {
            use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
            use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
            let mut client = TraceServiceClient::connect(format!("http://{grpc}"))
                .await
                .unwrap();
            let mut i = 5_000_000_000u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let request: ExportTraceServiceRequest =
                    serde_json::from_slice(&span_json(i)).unwrap();
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    match client.export(request.clone()).await {
                        Ok(_) => {
                            tally.served.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        Err(status)
                            if attempt < 20
                                && matches!(
                                    status.code(),
                                    tonic::Code::Unavailable | tonic::Code::ResourceExhausted
                                ) =>
                        {
                            tally.retried.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                        Err(status) => {
                            tally
                                .failed
                                .lock()
                                .unwrap()
                                .push(format!("gRPC request {i}: {status:?}"));
                            break;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let started = Instant::now();
    let mut max_rss = 0u64;
    let mut reloads = 1;
    let mut next_reload = Instant::now() + Duration::from_secs(3);
    while started.elapsed() < Duration::from_secs(secs) {
        max_rss = max_rss.max(ferro.rss_bytes());
        if Instant::now() >= next_reload {
            std::fs::write(
                &ferro.config_path,
                pinned(if reloads % 2 == 0 { "1s" } else { "2s" }),
            )
            .unwrap();
            ferro.signal("HUP");
            reloads += 1;
            tokio::task::block_in_place(|| ferro.wait_for_logs("reload done", reloads, WAIT));
            next_reload = Instant::now() + Duration::from_secs(3);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().unwrap();
    }
    grpc_client.await.unwrap();

    let failed = tally.failed.lock().unwrap().clone();
    let served = tally.served.load(Ordering::Relaxed);
    eprintln!(
        "soak: {secs} s, {served} normal requests served ({} retried), {reloads} reloads, peak RSS {} MiB",
        tally.retried.load(Ordering::Relaxed),
        max_rss >> 20
    );
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(20)]
    );
    assert!(served > 100, "{served} served");
    assert!(
        max_rss < (LIMIT_MIB + OVERHEAD_MIB) << 20,
        "peak RSS {} MiB, limit {LIMIT_MIB} MiB + {OVERHEAD_MIB} MiB",
        max_rss >> 20
    );
    // Every connection the clients opened is closed again.
    tokio::task::block_in_place(|| {
        eventually("the descriptors to come back", WAIT, || {
            open_fds(ferro.pid()) <= fds_before + 4
        })
    });
    let mut ferro = ferro;
    ferro.signal("TERM");
    let status = ferro.wait_exit(Duration::from_secs(5 + 10));
    assert!(status.success(), "{status:?}");
}
