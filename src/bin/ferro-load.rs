//! The load harness: OTLP/gRPC load generator → ferro → sink, with ferro's CPU
//! and memory read from `/proc`.
//!
//! ```text
//! cargo build --release
//! target/release/ferro-load --mode otlp --duration 20s      # pass-through to a gRPC sink
//! target/release/ferro-load --mode blackhole                # ferro's blackhole exporter
//! target/release/ferro-load --mode otlp --rate 10000        # RSS at a steady 10k spans/s
//! target/release/ferro-load --mode pprof --targets 100 --duration 60s   # pprof scrape → Pyroscope
//! target/release/ferro-load --mode zipkin --duration 20s    # Zipkin v2 JSON in → OTLP out to a gRPC sink
//! ```
//!
//! It starts the `ferro` binary next to itself on 127.0.0.1 ports, sends
//! pre-encoded requests of spans with 10 attributes each from several
//! connections as fast as ferro accepts them (or at `--rate`), and prints
//! spans/s, spans per ferro CPU-second (= per core), idle and peak RSS and
//! start-up time. Everything stays on loopback and stops by itself.

#[path = "../../benches/pages/cadvisor.rs"]
mod cadvisor;
use bytes::Bytes;
use ferro::otlp::codec::RawCodec;
use ferro::telemetry::process;
use prost::Message;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

struct Args {
    ferro: PathBuf,
    mode: String,
    duration: Duration,
    connections: usize,
    spans_per_request: usize,
    rate: u64,
    /// `--mode scrape`: series on the synthetic target, and how often it is scraped.
    series: usize,
    /// `--mode scrape`: the target's page is shaped like the kubelet's
    /// cAdvisor page (`--shape cadvisor`) rather than minimal series.
    cadvisor: bool,
    scrape_interval: Duration,
    /// `--mode pprof`: Go-style pprof targets served in process.
    targets: usize,
    /// `--mode otlp`: the exporter's queue: `memory`, or `disk` with an
    /// fsync policy (`disk` = `disk-interval`, `disk-batch`, `disk-never`).
    queue: String,
}

fn parse_args() -> Args {
    let mut args = Args {
        ferro: std::env::current_exe().unwrap().with_file_name("ferro"),
        mode: "otlp".into(),
        duration: Duration::from_secs(15),
        connections: 4,
        spans_per_request: 200,
        rate: 0,
        series: 1_000_000,
        cadvisor: false,
        scrape_interval: Duration::from_secs(10),
        targets: 100,
        queue: "memory".into(),
    };
    let mut interval_set = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--ferro" => args.ferro = value().into(),
            "--mode" => args.mode = value(),
            "--duration" => {
                args.duration =
                    ferro::config::units::parse_duration(&value()).unwrap_or_else(|e| usage(&e))
            }
            "--connections" => {
                args.connections = value().parse().unwrap_or_else(|_| usage("--connections N"))
            }
            "--spans-per-request" => {
                args.spans_per_request = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--spans-per-request N"))
            }
            "--rate" => {
                args.rate = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--rate SPANS_PER_SECOND"))
            }
            "--series" => args.series = value().parse().unwrap_or_else(|_| usage("--series N")),
            "--shape" => match value().as_str() {
                "cadvisor" => args.cadvisor = true,
                "minimal" => args.cadvisor = false,
                _ => usage("--shape minimal|cadvisor"),
            },
            "--scrape-interval" => {
                args.scrape_interval =
                    ferro::config::units::parse_duration(&value()).unwrap_or_else(|e| usage(&e));
                interval_set = true;
            }
            "--targets" => args.targets = value().parse().unwrap_or_else(|_| usage("--targets N")),
            "--queue" => args.queue = value(),
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown flag {other}")),
        }
    }
    if !matches!(
        args.mode.as_str(),
        "otlp" | "blackhole" | "scrape" | "pprof" | "zipkin"
    ) {
        usage("--mode is otlp, blackhole, scrape, pprof or zipkin");
    }
    if !matches!(
        args.queue.as_str(),
        "memory" | "disk" | "disk-interval" | "disk-batch" | "disk-never"
    ) {
        usage("--queue is memory, disk, disk-interval, disk-batch or disk-never");
    }
    if args.mode == "pprof" && !interval_set {
        args.scrape_interval = Duration::from_secs(15);
    }
    args
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("ferro-load: {problem}");
    }
    eprintln!(
        "usage: ferro-load [--mode otlp|blackhole|zipkin] [--duration 15s] [--connections 4] \
         [--spans-per-request 200] [--rate SPANS_PER_SECOND (0 = as fast as accepted)] \
         [--queue memory|disk|disk-batch|disk-never] [--ferro PATH]\n       \
         ferro-load --mode scrape [--series 1000000] [--shape minimal|cadvisor] [--scrape-interval 10s] [--duration 60s]\n       \
         ferro-load --mode pprof [--targets 100] [--scrape-interval 15s] [--duration 60s]"
    );
    std::process::exit(2)
}

/// Distinct encoded requests of `spans` spans each.
fn requests(count: usize, spans: usize) -> Vec<Bytes> {
    ferro::otlp::sample::trace_requests(count, spans)
        .iter()
        .map(|r| r.encode_to_vec().into())
        .collect()
}

/// Zipkin v2 JSON bodies of `spans` spans each, 10 tags per span (as the
/// OTLP requests have 10 attributes).
fn zipkin_requests(count: usize, spans: usize) -> Vec<Bytes> {
    use std::fmt::Write as _;
    (0..count)
        .map(|r| {
            let mut body = String::from("[");
            for s in 0..spans {
                if s > 0 {
                    body.push(',');
                }
                let _ = write!(
                    body,
                    r#"{{"traceId":"{:032x}","id":"{:016x}","parentId":"{:016x}","kind":"SERVER","name":"GET /api/orders/{s}","timestamp":1700000000{:06},"duration":1250,"localEndpoint":{{"serviceName":"orders","ipv4":"10.0.0.{}","port":8080}},"remoteEndpoint":{{"serviceName":"frontend","ipv4":"10.0.1.7"}},"tags":{{"http.method":"GET","http.route":"/api/orders/:id","http.status_code":"200","net.peer.name":"frontend","component":"http","user.tier":"gold","region":"eu-west-1","az":"eu-west-1a","retry":"0","cache":"miss"}}}}"#,
                    (r * spans + s + 1) as u128 * 0x9e37_79b9_7f4a_7c15,
                    (r * spans + s + 1) as u64 * 0x2545_f491,
                    (r * spans + s + 7) as u64 * 0x2545_f491,
                    s % 1_000_000,
                    s % 250 + 1,
                );
            }
            body.push(']');
            Bytes::from(body)
        })
        .collect()
}

type Counters = (Arc<AtomicU64>, Arc<AtomicU64>, Arc<AtomicBool>);

/// One connection POSTing `bodies` to ferro's Zipkin receiver as fast as it
/// answers.
async fn zipkin_client(
    url: String,
    bodies: Arc<Vec<Bytes>>,
    first: usize,
    spans: u64,
    (accepted, refused, stop): Counters,
) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(1)
        .build_http::<http_body_util::Full<Bytes>>();
    let mut i = first;
    while !stop.load(Ordering::Relaxed) {
        let request = http::Request::post(&url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(bodies[i % bodies.len()].clone()))
            .unwrap();
        i += 1;
        match client.request(request).await {
            Ok(response) if response.status() == http::StatusCode::ACCEPTED => {
                accepted.fetch_add(spans, Ordering::Relaxed)
            }
            _ => refused.fetch_add(spans, Ordering::Relaxed),
        };
    }
}

/// Counts the spans in an encoded ExportTraceServiceRequest without decoding
/// it: resource_spans (1) → scope_spans (2) → spans (2).
fn count_spans(mut buf: &[u8], depth: u8) -> u64 {
    let mut count = 0;
    while !buf.is_empty() {
        let Ok(key) = prost::encoding::decode_varint(&mut buf) else {
            return count;
        };
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                let _ = prost::encoding::decode_varint(&mut buf);
            }
            1 => buf = &buf[8.min(buf.len())..],
            5 => buf = &buf[4.min(buf.len())..],
            2 => {
                let Ok(len) = prost::encoding::decode_varint(&mut buf) else {
                    return count;
                };
                let len = (len as usize).min(buf.len());
                let (inner, rest) = buf.split_at(len);
                match (depth, field) {
                    (0, 1) | (1, 2) => count += count_spans(inner, depth + 1),
                    (2, 2) => count += 1,
                    _ => {}
                }
                buf = rest;
            }
            _ => return count,
        }
    }
    count
}

/// The gRPC sink: answers every Export at once and counts spans.
#[derive(Clone)]
struct SinkService(Arc<AtomicU64>);

impl tonic::server::NamedService for SinkService {
    const NAME: &'static str = ferro::otlp::TRACE_SERVICE;
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for SinkService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let counter = self.0.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                .accept_compressed(tonic::codec::CompressionEncoding::Zstd)
                .max_decoding_message_size(256 << 20);
            Ok(grpc.unary(Export(counter), request).await)
        })
    }
}

struct Export(Arc<AtomicU64>);

impl tonic::server::UnaryService<Bytes> for Export {
    type Response = Bytes;
    type Future = BoxFuture<Result<tonic::Response<Bytes>, tonic::Status>>;
    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        self.0
            .fetch_add(count_spans(request.get_ref(), 0), Ordering::Relaxed);
        Box::pin(async { Ok(tonic::Response::new(Bytes::new())) })
    }
}

struct Started {
    child: std::process::Child,
    /// Where load goes: the OTLP receiver's gRPC address, or the Zipkin
    /// receiver's HTTP address with `--mode zipkin`.
    grpc: SocketAddr,
    telemetry: SocketAddr,
    startup: Duration,
}

/// The exporter's `queue = …` for `--queue`.
fn queue_setting(queue: &str) -> String {
    match queue.strip_prefix("disk") {
        None => "{ max_items = 100000, num_consumers = 4 }".into(),
        Some(policy) => {
            let fsync = policy.strip_prefix('-').unwrap_or("interval");
            format!(
                "{{ type = \"disk\", fsync = \"{fsync}\", max_size = \"16GiB\", num_consumers = 4 }}"
            )
        }
    }
}

/// The value of `name` on ferro's `/metrics` (summed over its series).
fn ferro_metric(telemetry: SocketAddr, name: &str) -> f64 {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(telemetry) else {
        return 0.0;
    };
    let _ = write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: ferro\r\nConnection: close\r\n\r\n"
    );
    let mut page = String::new();
    let _ = stream.read_to_string(&mut page);
    page.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn start_ferro(args: &Args, sink: Option<SocketAddr>, dir: &std::path::Path) -> Started {
    let exporter = match sink {
        Some(addr) => format!(
            "[exporters.otlp.out]\nendpoint = \"http://{addr}\"\ncompression = \"none\"\n\
             queue = {}\n",
            queue_setting(&args.queue)
        ),
        None => "[exporters.blackhole.out]\n".into(),
    };
    let (receiver, listening) = if args.mode == "zipkin" {
        (
            "[receivers.zipkin.in]\nhttp = \"127.0.0.1:0\"\nmax_recv_msg_size = \"16MiB\"\n",
            "Zipkin receiver listening",
        )
    } else {
        (
            "[receivers.otlp.in]\ngrpc = \"127.0.0.1:0\"\nmax_recv_msg_size = \"16MiB\"\n",
            "OTLP receiver listening",
        )
    };
    let config = format!(
        "data_dir = \"{}\"\nmemory_limit = \"128MiB\"\n[telemetry]\nlisten = \"127.0.0.1:0\"\n\
         {receiver}\
         [processors.batch.b]\nsend_batch_size = 8192\nsend_batch_max_size = 8192\ntimeout = \"200ms\"\n{exporter}\
         [pipelines.traces]\nreceivers = [\"{}.in\"]\nprocessors = [\"batch.b\"]\nexporters = [\"{}.out\"]\n",
        dir.display(),
        if args.mode == "zipkin" {
            "zipkin"
        } else {
            "otlp"
        },
        if sink.is_some() { "otlp" } else { "blackhole" }
    );
    let path = dir.join("load.toml");
    std::fs::write(&path, config).unwrap();
    let began = Instant::now();
    let mut child = Command::new(&args.ferro)
        .args(["run", "--log-format", "json", "-c"])
        .arg(&path)
        .env("RUST_LOG", "warn,ferro::receivers=info,ferro::app=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e} (build it: cargo build --release)",
                args.ferro.display()
            )
        });
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut grpc, mut telemetry) = (None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"] == listening {
            grpc = v["addr"].as_str().and_then(|a| a.parse().ok());
        }
        if v["message"] == "self-telemetry listening" {
            telemetry = v["addr"].as_str().and_then(|a| a.parse().ok());
        }
        if v["message"] == "ferro started" {
            break;
        }
    }
    let startup = began.elapsed();
    std::thread::spawn(move || for _ in lines {});
    Started {
        child,
        grpc: grpc.expect("ferro printed its gRPC address"),
        telemetry: telemetry.expect("ferro printed its telemetry address"),
        startup,
    }
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    if args.mode == "scrape" {
        return scrape_load(&args).await;
    }
    if args.mode == "pprof" {
        return pprof_load(&args).await;
    }
    let dir = std::env::temp_dir().join(format!("ferro-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let delivered = Arc::new(AtomicU64::new(0));
    let sink = if matches!(args.mode.as_str(), "otlp" | "zipkin") {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = SinkService(delivered.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        Some(addr)
    } else {
        None
    };

    let mut ferro = start_ferro(&args, sink, &dir);
    let pid = ferro.child.id().to_string();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = process::read_pid(&pid).map(|s| s.rss_bytes).unwrap_or(0);

    let bodies = Arc::new(if args.mode == "zipkin" {
        zipkin_requests(64, args.spans_per_request)
    } else {
        requests(64, args.spans_per_request)
    });
    let request_bytes: usize = bodies.iter().map(|b| b.len()).sum::<usize>() / bodies.len();
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let cpu_before = process::read_pid(&pid)
        .map(|s| s.cpu_seconds)
        .unwrap_or(0.0);
    let began = Instant::now();

    let mut clients = Vec::new();
    for c in 0..args.connections {
        let (bodies, accepted, refused, stop) = (
            bodies.clone(),
            accepted.clone(),
            refused.clone(),
            stop.clone(),
        );
        let endpoint = format!("http://{}", ferro.grpc);
        let per_connection_rate = args.rate as f64 / args.connections as f64;
        let spans_per_request = args.spans_per_request as f64;
        if args.mode == "zipkin" {
            let url = format!("{endpoint}/api/v2/spans");
            clients.push(tokio::spawn(zipkin_client(
                url,
                bodies,
                c,
                args.spans_per_request as u64,
                (accepted, refused, stop),
            )));
            continue;
        }
        clients.push(tokio::spawn(async move {
            let channel = tonic::transport::Endpoint::from_shared(endpoint)
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut grpc = tonic::client::Grpc::new(channel);
            let path = http::uri::PathAndQuery::from_static(ferro::otlp::TRACE_EXPORT_PATH);
            let interval = (per_connection_rate > 0.0)
                .then(|| Duration::from_secs_f64(spans_per_request / per_connection_rate));
            let mut next = tokio::time::Instant::now();
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                if let Some(interval) = interval {
                    tokio::time::sleep_until(next).await;
                    next += interval;
                }
                grpc.ready().await.unwrap();
                let body = bodies[i % bodies.len()].clone();
                i += 1;
                match grpc
                    .unary(tonic::Request::new(body), path.clone(), RawCodec)
                    .await
                {
                    Ok(_) => accepted.fetch_add(spans_per_request as u64, Ordering::Relaxed),
                    Err(_) => refused.fetch_add(spans_per_request as u64, Ordering::Relaxed),
                };
            }
        }));
    }

    let mut peak_rss = 0;
    while began.elapsed() < args.duration {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak_rss = peak_rss.max(process::read_pid(&pid).map(|s| s.rss_bytes).unwrap_or(0));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }
    let elapsed = began.elapsed().as_secs_f64();
    let cpu = process::read_pid(&pid)
        .map(|s| s.cpu_seconds)
        .unwrap_or(0.0)
        - cpu_before;
    let accepted = accepted.load(Ordering::Relaxed);
    // Let the exporter finish what was accepted, then count what arrived.
    if sink.is_some() {
        let wait_until = Instant::now() + Duration::from_secs(30);
        while delivered.load(Ordering::Relaxed) < accepted && Instant::now() < wait_until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let hwm = process::peak_rss(&pid).unwrap_or(peak_rss);
    let written = ferro_metric(
        ferro.telemetry,
        "ferro_exporter_disk_queue_written_bytes_total",
    );
    let _ = Command::new("kill").arg("-TERM").arg(&pid).status();
    let _ = ferro.child.wait();
    let _ = std::fs::remove_dir_all(&dir);

    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!("mode                      {}", args.mode);
    println!("connections               {}", args.connections);
    println!(
        "spans per request         {} (10 attributes or tags each, {} bytes per request)",
        args.spans_per_request, request_bytes
    );
    println!(
        "target rate               {}",
        if args.rate == 0 {
            "as fast as accepted".into()
        } else {
            format!("{} spans/s", args.rate)
        }
    );
    println!("exporter queue            {}", args.queue);
    println!("duration                  {elapsed:.1} s");
    println!(
        "spans accepted            {accepted} ({:.0} spans/s)",
        accepted as f64 / elapsed
    );
    println!(
        "spans refused             {}",
        refused.load(Ordering::Relaxed)
    );
    if sink.is_some() {
        println!(
            "spans delivered to sink   {}",
            delivered.load(Ordering::Relaxed)
        );
    }
    println!(
        "ferro CPU                 {cpu:.2} s ({:.2} cores)",
        cpu / elapsed
    );
    println!(
        "spans per ferro CPU-second {:.0}",
        accepted as f64 / cpu.max(1e-9)
    );
    if written > 0.0 {
        println!(
            "disk queue written        {:.1} MiB ({:.0} bytes per span)",
            written / (1024.0 * 1024.0),
            written / accepted.max(1) as f64
        );
    }
    println!("ferro idle RSS            {:.1} MiB", mib(idle_rss));
    println!("ferro peak RSS            {:.1} MiB (VmHWM)", mib(hwm));
    println!(
        "ferro start-up            {:.1} ms (spawn to ready)",
        ferro.startup.as_secs_f64() * 1000.0
    );
}

/// `--mode scrape`: a synthetic target with `--series` series → ferro's
/// Prometheus receiver → remote-write → a sink that counts series. Prints
/// ferro's peak RSS per active series.
async fn scrape_load(args: &Args) {
    use std::fmt::Write as _;
    let (page, series) = if args.cadvisor {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        cadvisor::page(args.series, now_ms)
    } else {
        let mut page = String::with_capacity(args.series * 80);
        for i in 0..args.series {
            let _ = writeln!(
                page,
                "load_metric_{}{{pod=\"pod-{}\",container=\"app\",id=\"{i}\"}} {}",
                i % 20,
                i % 5000,
                i as f64 * 0.5
            );
        }
        (page, args.series)
    };
    let page = Bytes::from(page);
    let page_len = page.len();
    let scrapes = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let (p, s) = (page.clone(), scrapes.clone());
    let r = received.clone();
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let (p, s) = (p.clone(), s.clone());
                async move {
                    s.fetch_add(1, Ordering::Relaxed);
                    (
                        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        p,
                    )
                }
            }),
        )
        .route(
            "/api/v1/write",
            axum::routing::post(move |body: Bytes| {
                let r = r.clone();
                async move {
                    if let Ok(raw) = snap::raw::Decoder::new().decompress_vec(&body) {
                        r.fetch_add(count_timeseries(&raw), Ordering::Relaxed);
                    }
                    http::StatusCode::NO_CONTENT
                }
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(256 << 20));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = std::env::temp_dir().join(format!("ferro-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!(
        "memory_limit = \"512MiB\"\n[telemetry]\nlisten = \"127.0.0.1:0\"\n\
         [receivers.prometheus.load]\n[[receivers.prometheus.load.scrape_configs]]\n\
         job_name = \"load\"\nscrape_interval = \"{}s\"\nscrape_timeout = \"{}s\"\nbody_size_limit = \"512MiB\"\n\
         honor_timestamps = {}\n\
         static_configs = [{{ targets = [\"{addr}\"] }}]\n\
         [exporters.remote_write.sink]\nendpoint = \"http://{addr}/api/v1/write\"\nmax_shards = 4\n\
         [pipelines.metrics]\nreceivers = [\"prometheus.load\"]\nexporters = [\"remote_write.sink\"]\n",
        args.scrape_interval.as_secs(),
        args.scrape_interval.as_secs().saturating_sub(1).max(1),
        // As the kubelet job has it: cAdvisor's own timestamps are not used.
        !args.cadvisor,
    );
    let path = dir.join("scrape.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(&args.ferro)
        .args(["run", "--log-format", "json", "-c"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ferro starts (cargo build --release)");
    let pid = child.id().to_string();
    let began = Instant::now();
    let mut peak = 0;
    let cpu_before = process::read_pid(&pid)
        .map(|s| s.cpu_seconds)
        .unwrap_or(0.0);
    while began.elapsed() < args.duration {
        tokio::time::sleep(Duration::from_millis(200)).await;
        peak = peak.max(process::read_pid(&pid).map(|s| s.rss_bytes).unwrap_or(0));
    }
    let cpu = process::read_pid(&pid)
        .map(|s| s.cpu_seconds)
        .unwrap_or(0.0)
        - cpu_before;
    let hwm = process::peak_rss(&pid).unwrap_or(peak);
    let _ = Command::new("kill").arg("-TERM").arg(&pid).status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let done = scrapes.load(Ordering::Relaxed);
    let written = received.load(Ordering::Relaxed);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!("mode                      scrape → remote-write");
    println!(
        "series on the target      {series} ({:.1} MiB page{})",
        mib(page_len as u64),
        if args.cadvisor {
            ", cAdvisor-shaped"
        } else {
            ""
        }
    );
    println!("scrape interval           {:?}", args.scrape_interval);
    println!(
        "duration                  {:.1} s",
        began.elapsed().as_secs_f64()
    );
    println!("scrapes served            {done}");
    println!("series written            {written} (incl. 5 synthetic a scrape)");
    println!(
        "ferro CPU                 {cpu:.2} s ({:.0} samples per CPU-second)",
        written as f64 / cpu.max(1e-9)
    );
    println!("ferro peak RSS            {:.1} MiB (VmHWM)", mib(hwm));
    println!(
        "peak RSS per series       {:.3} KiB",
        hwm as f64 / 1024.0 / series as f64
    );
    println!(
        "ferro CPU per scrape      {:.0} ms (parse, relabel, staleness, remote-write encode)",
        cpu * 1000.0 / done.max(1) as f64
    );
}

/// Time series in an encoded `prometheus.WriteRequest` (top-level field 1).
fn count_timeseries(mut buf: &[u8]) -> u64 {
    let mut count = 0;
    while !buf.is_empty() {
        let Ok(key) = prost::encoding::decode_varint(&mut buf) else {
            return count;
        };
        match key & 7 {
            0 => {
                let _ = prost::encoding::decode_varint(&mut buf);
            }
            1 => buf = &buf[8.min(buf.len())..],
            5 => buf = &buf[4.min(buf.len())..],
            2 => {
                let Ok(len) = prost::encoding::decode_varint(&mut buf) else {
                    return count;
                };
                let len = (len as usize).min(buf.len());
                if key >> 3 == 1 {
                    count += 1;
                }
                buf = &buf[len..];
            }
            _ => return count,
        }
    }
    count
}

/// `--mode pprof`: `--targets` Go-style pprof endpoints (one listener each,
/// serving synthetic profiles of the sizes a busy Go service produces; the
/// CPU endpoint holds the request for `seconds` as Go's does) → ferro's
/// pprof receiver, all five profile types → batch → the Pyroscope exporter →
/// a push API sink that counts profiles. Prints profiles per ferro
/// CPU-second and peak RSS.
async fn pprof_load(args: &Args) {
    use ferro::pprof::sample::{Kind, profile};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    // Sizes of a mid-sized Go service: a few thousand functions, CPU and
    // heap profiles of 30–80 KB gzip'd.
    let bodies: Arc<Vec<(&str, Bytes)>> = Arc::new(vec![
        (
            "profile",
            ferro::pprof::encode_gzip(&profile(Kind::Cpu, 3000, 2000, now)),
        ),
        (
            "allocs",
            ferro::pprof::encode_gzip(&profile(Kind::Heap, 3000, 1500, now)),
        ),
        (
            "goroutine",
            ferro::pprof::encode_gzip(&profile(Kind::Goroutine, 600, 200, now)),
        ),
        (
            "mutex",
            ferro::pprof::encode_gzip(&profile(Kind::Contention, 400, 100, now)),
        ),
        (
            "block",
            ferro::pprof::encode_gzip(&profile(Kind::Contention, 400, 150, now)),
        ),
    ]);
    let served = Arc::new(AtomicU64::new(0));
    let mut targets = Vec::with_capacity(args.targets);
    for _ in 0..args.targets {
        let (bodies, served) = (bodies.clone(), served.clone());
        let app = axum::Router::new().route(
            "/debug/pprof/{kind}",
            axum::routing::get(
                move |axum::extract::Path(kind): axum::extract::Path<String>,
                      axum::extract::RawQuery(query): axum::extract::RawQuery| {
                    let (bodies, served) = (bodies.clone(), served.clone());
                    async move {
                        let seconds: u64 = query
                            .as_deref()
                            .and_then(|q| q.strip_prefix("seconds="))
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0);
                        tokio::time::sleep(Duration::from_secs(seconds)).await;
                        served.fetch_add(1, Ordering::Relaxed);
                        let body = bodies
                            .iter()
                            .find(|(k, _)| *k == kind)
                            .map(|(_, b)| b.clone())
                            .unwrap_or_default();
                        (
                            [(http::header::CONTENT_TYPE, "application/octet-stream")],
                            body,
                        )
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        targets.push(format!("\"{}\"", listener.local_addr().unwrap()));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    }
    let received = Arc::new(AtomicU64::new(0));
    let r = received.clone();
    let sink = axum::Router::new()
        .route(
            "/push.v1.PusherService/Push",
            axum::routing::post(move |headers: http::HeaderMap, body: Bytes| {
                let r = r.clone();
                async move {
                    let gzip = headers
                        .get(http::header::CONTENT_ENCODING)
                        .is_some_and(|v| v == "gzip");
                    let mut plain = Vec::new();
                    let body: &[u8] = if gzip {
                        use std::io::Read;
                        let _ = flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain);
                        &plain
                    } else {
                        &body
                    };
                    let request =
                        ferro_proto::push::v1::PushRequest::decode(body).unwrap_or_default();
                    let profiles: usize = request.series.iter().map(|s| s.samples.len()).sum();
                    r.fetch_add(profiles as u64, Ordering::Relaxed);
                    http::StatusCode::OK
                }
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, sink).await.unwrap() });

    let dir = std::env::temp_dir().join(format!("ferro-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!(
        "memory_limit = \"256MiB\"\n[telemetry]\nlisten = \"127.0.0.1:0\"\n\
         [receivers.pprof.load]\nscrape_interval = \"{}s\"\n\
         [[receivers.pprof.load.scrape_configs]]\njob_name = \"load\"\n\
         static_configs = [{{ targets = [{}] }}]\n\
         [processors.batch.b]\nsend_batch_size = 64\ntimeout = \"1s\"\n\
         [exporters.pyroscope.sink]\nendpoint = \"http://{sink_addr}\"\n\
         [pipelines.profiles]\nreceivers = [\"pprof.load\"]\nprocessors = [\"batch.b\"]\nexporters = [\"pyroscope.sink\"]\n",
        args.scrape_interval.as_secs(),
        targets.join(", "),
    );
    let path = dir.join("pprof.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(&args.ferro)
        .args(["run", "--log-format", "json", "-c"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("ferro starts (cargo build --release)");
    let pid = child.id().to_string();
    let began = Instant::now();
    let mut peak = 0;
    // Wait for one interval before measuring: the first interval spreads
    // the targets' start.
    tokio::time::sleep(args.scrape_interval).await;
    let cpu_before = process::read_pid(&pid)
        .map(|s| s.cpu_seconds)
        .unwrap_or(0.0);
    let received_before = received.load(Ordering::Relaxed);
    let measured = Instant::now();
    while measured.elapsed() < args.duration {
        tokio::time::sleep(Duration::from_millis(200)).await;
        peak = peak.max(process::read_pid(&pid).map(|s| s.rss_bytes).unwrap_or(0));
    }
    let cpu = process::read_pid(&pid)
        .map(|s| s.cpu_seconds)
        .unwrap_or(0.0)
        - cpu_before;
    let delivered = received.load(Ordering::Relaxed) - received_before;
    let wall = measured.elapsed().as_secs_f64();
    let hwm = process::peak_rss(&pid).unwrap_or(peak);
    let _ = Command::new("kill").arg("-TERM").arg(&pid).status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let sizes: Vec<String> = bodies
        .iter()
        .map(|(k, b)| format!("{k} {} KB", b.len() / 1000))
        .collect();
    println!("mode                      pprof scrape → Pyroscope push");
    println!(
        "targets                   {} × 5 profile types ({})",
        args.targets,
        sizes.join(", ")
    );
    println!("scrape interval           {:?}", args.scrape_interval);
    println!(
        "measured                  {wall:.1} s (after {:.0} s of warm-up)",
        (measured - began).as_secs_f64()
    );
    println!(
        "profiles served (total)   {}",
        served.load(Ordering::Relaxed)
    );
    println!(
        "profiles delivered        {delivered} ({:.1}/s)",
        delivered as f64 / wall
    );
    println!(
        "ferro CPU                 {cpu:.2} s = {:.3} cores ({:.0} profiles per CPU-second)",
        cpu / wall,
        delivered as f64 / cpu.max(1e-9)
    );
    println!("ferro peak RSS            {:.1} MiB (VmHWM)", mib(hwm));
}
