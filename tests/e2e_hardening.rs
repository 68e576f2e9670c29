//! ferro against hostile and unlucky clients, targets and backends, from
//! outside: idle log files, a stop with backends down, bodies that would eat
//! memory, clients that stall or hold connections, reloads under load, bad
//! tenant headers, failing scrape targets, an oversized message from the
//! real OpenTelemetry SDK, a port in use, and huge configs. Each test is one
//! finding of the hardening issue, and failed before its fix.

mod common;

use common::{Ferro, WAIT, eventually, http_get, http_post, metric_value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// One span as OTLP/JSON, numbered.
fn span_json(i: usize) -> Vec<u8> {
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"hardening"}}}}]}},"scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103d269b633{i:08x}","spanId":"eee19b7e{i:08x}","name":"op-{i}","startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000100000000"}}]}}]}}]}}"#
    )
    .into_bytes()
}

const JSON: [(&str, &str); 1] = [("Content-Type", "application/json")];

/// Reads one HTTP/1.1 response (status, body) off `stream`, or `None` if the
/// connection closed or broke first.
fn read_response(stream: &mut TcpStream) -> Option<(u16, String)> {
    common::read_response(stream).map(|(status, _, body)| (status, body))
}

/// A config of one OTLP receiver `otlp.in` (its table's lines in
/// `receiver`, which may add a `[receivers.otlp.in.server]` table) feeding
/// the blackhole exporter; `top` holds top-level settings.
fn otlp_to_blackhole(top: &str, receiver: &str) -> String {
    format!(
        r#"
        {top}
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.otlp.in]
        {receiver}
        [exporters.blackhole.null]
        [pipelines.traces]
        receivers = ["otlp.in"]
        exporters = ["blackhole.null"]
        "#
    )
}

/// Whether the server closes `stream` (within [`WAIT`]).
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

/// A POST of `body` on a kept-alive connection.
fn post_keep_alive(stream: &mut TcpStream, body: &[u8]) -> Option<(u16, String)> {
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: ferro\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    read_response(stream)
}

/// The process's soft descriptor limit raised to its hard one, for tests
/// that open many connections; the limit in force.
fn raise_own_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write only the struct given.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

/// Item 1: with the tailer idle, its own directory reads no longer make
/// inotify ask for rescans (which made ~70 glob passes a second, whatever
/// `rescan_interval` said): an idle second costs no rescan at all, and a new
/// file still costs only a few.
#[test]
fn idle_pod_log_files_cost_no_rescans() {
    let dir = tempfile::tempdir().unwrap();
    let pods = dir.path().join("pods");
    let write_file = |i: usize| {
        let path = pods.join(format!("prod_api-{i}_uid-{i}/api"));
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(
            path.join("0.log"),
            format!("2024-01-01T00:00:00.000000000Z stdout F line of pod {i}\n"),
        )
        .unwrap();
    };
    for i in 0..100 {
        write_file(i);
    }
    let ferro = Ferro::start(&format!(
        r#"
        data_dir = "{data}"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.pod_logs.node]
        include = ["{pods}/*/*/*.log"]
        start_at = "beginning"
        rescan_interval = "1h"
        [exporters.blackhole.null]
        [pipelines.logs]
        receivers = ["pod_logs.node"]
        exporters = ["blackhole.null"]
        "#,
        data = dir.path().join("data").display(),
        pods = pods.display(),
    ));
    ferro.wait_metric("ferro_pod_logs_files_open", &[], |n| n == 100.0);
    ferro.wait_metric(
        "ferro_pod_logs_acknowledged_entries_total",
        &["delivered"],
        |n| n == 100.0,
    );
    let before = ferro.metric("ferro_pod_logs_rescans_total", &[]);
    // An idle second, ended by something that must be noticed.
    std::thread::sleep(Duration::from_secs(1));
    write_file(100);
    ferro.wait_metric("ferro_pod_logs_files_open", &[], |n| n == 101.0);
    let rescans = ferro.metric("ferro_pod_logs_rescans_total", &[]) - before;
    assert!(
        (1.0..=5.0).contains(&rescans),
        "{rescans} rescans for an idle second and one new file"
    );
}

/// Item 2: a stop with every exporter queue full and every backend down
/// ends within `shutdown_timeout`, counting what it could not send as
/// dropped for `shutdown`, and exits 0; `/-/ready` says "stopping" meanwhile.
#[test]
fn a_stop_with_full_queues_and_backends_down_ends_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pod = dir.path().join("pods/prod_api_uid/api");
    std::fs::create_dir_all(&pod).unwrap();
    let mut lines = String::new();
    for i in 0..20_000 {
        lines.push_str(&format!(
            "2024-01-01T00:00:00.000000000Z stdout F line {i}\n"
        ));
    }
    std::fs::write(pod.join("0.log"), lines).unwrap();
    let mut ferro = Ferro::start(&format!(
        r#"
        data_dir = "{data}"
        shutdown_timeout = "3s"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.otlp.in]
        http = "127.0.0.1:0"
        [receivers.pod_logs.node]
        include = ["{pods}/*/*/*.log"]
        start_at = "beginning"
        [exporters.otlp.down]
        endpoint = "http://127.0.0.1:9"
        [exporters.otlp.down.queue]
        max_items = 10
        [exporters.loki.down]
        endpoint = "http://127.0.0.1:9/loki/api/v1/push"
        [exporters.loki.down.queue]
        max_items = 100
        [pipelines.traces]
        receivers = ["otlp.in"]
        exporters = ["otlp.down"]
        [pipelines.logs]
        receivers = ["pod_logs.node"]
        exporters = ["loki.down"]
        "#,
        data = dir.path().join("data").display(),
        pods = dir.path().join("pods").display(),
    ));
    let http = ferro.http.unwrap();
    let mut i = 0;
    eventually("the traces pipeline to refuse (503)", WAIT, || {
        i += 1;
        http_post(http, "/v1/traces", &JSON, &span_json(i)).0 == 503
    });
    ferro.wait_metric("ferro_exporter_queue_items", &["loki.down"], |n| n >= 100.0);
    ferro.signal("TERM");
    eventually("/-/ready to say stopping", WAIT, || {
        http_get(ferro.telemetry, "/-/ready") == (503, "stopping\n".to_string())
    });
    let status = ferro.wait_exit(Duration::from_secs(3 + 10));
    assert!(status.success(), "{status:?}\n{}", ferro.logs());
    for exporter in ["otlp.down", "loki.down"] {
        assert!(
            ferro.logs().lines().any(|l| l.contains(exporter)
                && l.contains("shutdown deadline reached with data still queued; dropped")),
            "{exporter} counted what it could not send:\n{}",
            ferro.logs()
        );
    }
}

/// Item 2: an exporter looped into ferro's own receiver (a misconfigured
/// chain) stops within the timeout too: its backend goes away as the
/// receivers stop.
#[test]
fn a_stop_with_an_exporter_looped_into_its_own_receiver_ends_within_the_timeout() {
    let config = |grpc: &str, endpoint: &str| {
        format!(
            r#"
            shutdown_timeout = "3s"
            [telemetry]
            listen = "127.0.0.1:0"
            [receivers.otlp.in]
            grpc = "{grpc}"
            http = "127.0.0.1:0"
            [exporters.otlp.self]
            endpoint = "{endpoint}"
            [exporters.otlp.self.queue]
            max_items = 10
            [pipelines.traces]
            receivers = ["otlp.in"]
            exporters = ["otlp.self"]
            "#
        )
    };
    let mut ferro = Ferro::start(&config("127.0.0.1:0", "http://127.0.0.1:9"));
    let grpc = ferro.grpc.unwrap();
    std::fs::write(
        &ferro.config_path,
        config(&grpc.to_string(), &format!("http://{grpc}")),
    )
    .unwrap();
    ferro.signal("HUP");
    ferro.wait_for_logs("reload done", 1, WAIT);
    // http stayed on port 0: the reload gave it a new port.
    let http = ferro.listener("otlp.in", "http");
    let mut i = 0;
    eventually("the looped pipeline to refuse (503)", WAIT, || {
        i += 1;
        http_post(http, "/v1/traces", &JSON, &span_json(i)).0 == 503
    });
    ferro.signal("TERM");
    let status = ferro.wait_exit(Duration::from_secs(3 + 10));
    assert!(status.success(), "{status:?}\n{}", ferro.logs());
}

/// Item 2: a second signal while stopping exits at once.
#[test]
fn a_second_signal_while_stopping_exits_at_once() {
    let mut ferro = Ferro::start(
        r#"
        shutdown_timeout = "5m"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.otlp.in]
        http = "127.0.0.1:0"
        [exporters.otlp.down]
        endpoint = "http://127.0.0.1:9"
        [exporters.otlp.down.queue]
        max_items = 10
        [pipelines.traces]
        receivers = ["otlp.in"]
        exporters = ["otlp.down"]
        "#,
    );
    let http = ferro.http.unwrap();
    let mut i = 0;
    eventually("the pipeline to refuse (503)", WAIT, || {
        i += 1;
        http_post(http, "/v1/traces", &JSON, &span_json(i)).0 == 503
    });
    ferro.signal("TERM");
    eventually("/-/ready to say stopping", WAIT, || {
        http_get(ferro.telemetry, "/-/ready").1 == "stopping\n"
    });
    ferro.signal("INT");
    let status = ferro.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "{}", ferro.logs());
    ferro.wait_for_log("second signal while stopping", WAIT);
}

/// Item 3: bodies being read count against `memory_limit`: 200 clients
/// each sending 3.9 MB of a declared 4 MB body and pausing take at most the
/// limit; the rest are refused (429) before their bodies are read, and the
/// memory comes back when they leave.
#[test]
fn http_bodies_being_read_count_against_the_memory_limit() {
    raise_own_fd_limit();
    let ferro = Ferro::start(&otlp_to_blackhole(
        "memory_limit = \"64MiB\"",
        "http = \"127.0.0.1:0\"",
    ));
    let http = ferro.http.unwrap();
    let release = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..200)
        .map(|_| {
            let (release, written) = (release.clone(), written.clone());
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(http).unwrap();
                let head = "POST /v1/traces HTTP/1.1\r\nHost: ferro\r\nContent-Type: application/x-protobuf\r\nContent-Length: 4000000\r\n\r\n";
                let sent = stream
                    .write_all(head.as_bytes())
                    .and_then(|()| stream.write_all(&vec![0u8; 3_900_000]));
                written.fetch_add(1, Ordering::AcqRel);
                while sent.is_ok() && !release.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect();
    eventually("every client to have sent or been refused", WAIT, || {
        written.load(Ordering::Acquire) == 200
    });
    let limit = 64.0 * 1024.0 * 1024.0;
    let refused = ferro.wait_metric(
        "ferro_receiver_rejected_requests_total",
        &["reason=\"memory_limit\""],
        |n| n >= 180.0,
    );
    let held = ferro.metric("ferro_memory_in_flight_bytes", &[]);
    assert!(held <= limit, "{held} bytes in flight, limit {limit}");
    assert!(
        held >= 12.0 * 4e6,
        "the first clients' bodies are held: {held}"
    );
    let rss = ferro.rss_bytes() as f64;
    assert!(
        rss < limit + 96.0 * 1024.0 * 1024.0,
        "RSS {} MiB with {refused} refused",
        rss / 1048576.0
    );
    release.store(true, Ordering::Release);
    for client in clients {
        client.join().unwrap();
    }
    ferro.wait_metric("ferro_memory_in_flight_bytes", &[], |n| n == 0.0);
}

/// Item 3: gRPC messages being assembled count against `memory_limit` too:
/// streams that stall inside a 4 MB message hold at most the limit, the rest
/// get `RESOURCE_EXHAUSTED`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_messages_being_assembled_count_against_the_memory_limit() {
    use http_body_util::StreamBody;
    use hyper::body::Frame;
    let ferro = Ferro::start(&otlp_to_blackhole(
        "memory_limit = \"64MiB\"",
        "grpc = \"127.0.0.1:0\"",
    ));
    let grpc = ferro.grpc.unwrap();
    let mut held = Vec::new();
    let mut answers = Vec::new();
    for _ in 0..4 {
        let stream = tokio::net::TcpStream::connect(grpc).await.unwrap();
        let (sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        for _ in 0..10 {
            let (tx, rx) =
                tokio::sync::mpsc::channel::<Result<Frame<bytes::Bytes>, std::io::Error>>(4);
            let body = StreamBody::new(Box::pin(futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|frame| (frame, rx)) },
            )));
            let request = http::Request::post(
                "http://ferro/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            )
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(body)
            .unwrap();
            let mut frame = vec![0u8, 0, 0x3d, 0x09, 0x00]; // a message of 4,000,000 bytes
            frame.extend(std::iter::repeat_n(0u8, 3_900_000));
            tx.send(Ok(Frame::data(frame.into()))).await.unwrap();
            held.push(tx);
            let mut sender = sender.clone();
            answers.push(tokio::spawn(async move {
                sender.ready().await.ok()?;
                let response = sender.send_request(request).await.ok()?;
                response
                    .headers()
                    .get("grpc-status")
                    .map(|v| v.to_str().unwrap().to_string())
            }));
        }
    }
    // Every stream is either held (its 3,900,005 bytes in flight) or refused.
    let (mut count, mut in_flight) = (0.0, 0.0);
    tokio::task::block_in_place(|| {
        eventually("every stream to be held or refused", WAIT, || {
            let page = ferro.metrics();
            count = metric_value(
                &page,
                "ferro_receiver_rejected_requests_total",
                &["reason=\"memory_limit\""],
            );
            in_flight = metric_value(&page, "ferro_memory_in_flight_bytes", &[]);
            count + (in_flight / 3_900_005.0).floor() == 40.0
        })
    });
    let limit = 64.0 * 1024.0 * 1024.0;
    assert!(in_flight <= limit, "{in_flight} bytes in flight");
    assert!(
        in_flight >= 12.0 * 3.9e6,
        "stalled messages are held: {in_flight}"
    );
    tokio::task::block_in_place(|| {
        eventually("the refused streams' answers", WAIT, || {
            answers.iter().filter(|a| a.is_finished()).count() as f64 >= count
        })
    });
    let mut exhausted = 0;
    for answer in answers {
        if answer.is_finished() && answer.await.unwrap().as_deref() == Some("8") {
            exhausted += 1;
        }
    }
    assert_eq!(
        exhausted as f64, count,
        "each refusal is a RESOURCE_EXHAUSTED answer"
    );
    drop(held);
    tokio::task::block_in_place(|| {
        ferro.wait_metric("ferro_memory_in_flight_bytes", &[], |n| n == 0.0)
    });
}

/// Item 4: a partial head, a partial body, an idle kept-alive connection
/// and a gRPC connection that never sends its preface are all cut off by
/// the listener's timeouts, and counted.
#[test]
fn stalled_and_idle_clients_are_cut_off() {
    let ferro = Ferro::start(&otlp_to_blackhole(
        "",
        "grpc = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\n[receivers.otlp.in.server]\nread_header_timeout = \"1s\"\nidle_timeout = \"2s\"\nread_body_timeout = \"1s\"\nmin_body_rate = \"1KiB\"",
    ));
    let (http, grpc) = (ferro.http.unwrap(), ferro.grpc.unwrap());

    let mut partial_head = TcpStream::connect(http).unwrap();
    partial_head.write_all(b"POST /v1/traces HT").unwrap();
    let mut partial_body = TcpStream::connect(http).unwrap();
    partial_body
        .write_all(b"POST /v1/traces HTTP/1.1\r\nHost: ferro\r\nContent-Type: application/json\r\nContent-Length: 3000000\r\n\r\n0123456789")
        .unwrap();
    let mut idle = TcpStream::connect(http).unwrap();
    assert_eq!(post_keep_alive(&mut idle, &span_json(1)).unwrap().0, 200);
    let mut no_preface = TcpStream::connect(grpc).unwrap();

    assert!(
        closed_by_server(&mut partial_head),
        "a partial head is cut off"
    );
    let answer = read_response(&mut partial_body);
    assert_eq!(
        answer.map(|a| a.0),
        Some(408),
        "a stalled body is answered 408"
    );
    assert!(closed_by_server(&mut idle), "an idle connection is closed");
    assert!(
        closed_by_server(&mut no_preface),
        "a silent gRPC connection is closed"
    );

    let page = ferro.metrics();
    let closed = |reason: &str| {
        metric_value(
            &page,
            "ferro_listener_connections_closed_total",
            &["otlp.in", &format!("reason=\"{reason}\"")],
        )
    };
    assert!(closed("read_header_timeout") >= 2.0, "{page}");
    assert!(closed("idle_timeout") >= 1.0, "{page}");
    assert_eq!(
        metric_value(
            &page,
            "ferro_receiver_rejected_requests_total",
            &["reason=\"too_slow\""]
        ),
        1.0
    );
    // And the listener still serves.
    assert_eq!(http_post(http, "/v1/traces", &JSON, &span_json(2)).0, 200);
}

/// Item 4: 1,100 connections that send half a request line, against a
/// 1,024-descriptor limit: the receivers take what their budget allows and
/// refuse the rest cleanly (503), the self-telemetry listener keeps
/// answering, and once the stalled ones are gone the port serves again.
/// (That the head timeout cuts them off is `stalled_and_idle_clients_are_cut_off`.)
#[test]
fn connections_past_the_descriptor_budget_are_refused_and_metrics_still_answer() {
    use std::os::unix::process::CommandExt;
    let own = raise_own_fd_limit();
    if !common::have(
        "2,400 file descriptors",
        own >= 2400,
        &format!("this process may open only {own}"),
    ) {
        return;
    }
    let ferro = Ferro::start_with(
        &otlp_to_blackhole(
            "",
            "http = \"127.0.0.1:0\"\n[receivers.otlp.in.server]\nread_header_timeout = \"60s\"",
        ),
        |command| {
            // SAFETY: setrlimit is async-signal-safe.
            unsafe {
                command.pre_exec(|| {
                    let limit = libc::rlimit {
                        rlim_cur: 1024,
                        rlim_max: 1024,
                    };
                    libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
                    Ok(())
                });
            }
        },
    );
    let http = ferro.http.unwrap();
    let mut stalled = Vec::new();
    let mut refused = 0.0;
    for _ in 0..1100 {
        let mut stream = TcpStream::connect(http).unwrap();
        stream.write_all(b"POST /v1/traces HT").unwrap();
        stalled.push(stream);
    }
    // Those past the budget were answered 503 and closed at once.
    for stream in &mut stalled {
        stream.set_nonblocking(true).unwrap();
    }
    eventually("every connection to be taken or refused", WAIT, || {
        let (status, page) = http_get(ferro.telemetry, "/metrics");
        assert_eq!(status, 200, "the self-telemetry listener answers");
        refused = metric_value(
            &page,
            "ferro_listener_connections_refused_total",
            &["otlp.in", "reason=\"connection_budget\""],
        );
        refused + metric_value(&page, "ferro_listener_connections", &["otlp.in"]) == 1100.0
    });
    let budget = 1024 - 256;
    assert_eq!(refused, 1100.0 - budget as f64, "the budget takes {budget}");
    // The refused were answered and closed; the taken have heard nothing.
    let mut answers = vec![Vec::new(); stalled.len()];
    eventually("a 503 on every refused connection", WAIT, || {
        for (stream, answer) in stalled.iter_mut().zip(&mut answers) {
            let mut buf = [0u8; 512];
            while let Ok(n @ 1..) = stream.read(&mut buf) {
                answer.extend_from_slice(&buf[..n]);
            }
        }
        let answered = answers
            .iter()
            .filter(|a| a.starts_with(b"HTTP/1.1 503 Service Unavailable\r\n"))
            .count();
        answered as f64 == refused
    });
    assert!(
        answers
            .iter()
            .all(|a| a.is_empty() || a.starts_with(b"HTTP/1.1 503")),
        "nothing but 503s was answered"
    );
    drop(stalled);
    ferro.wait_metric("ferro_listener_connections", &["otlp.in"], |n| n == 0.0);
    assert_eq!(http_post(http, "/v1/traces", &JSON, &span_json(1)).0, 200);
}

/// Item 5: a reload closes no connection: kept-alive HTTP clients and gRPC
/// clients sending without pause across 30 reloads, 0.2 s apart, get an
/// answer to every request, and every span is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_drop_no_request() {
    let config = |wait: &str, http: &str, grpc: &str| {
        format!(
            r#"
            [telemetry]
            listen = "127.0.0.1:0"
            [receivers.otlp.in]
            http = "{http}"
            grpc = "{grpc}"
            pipeline_wait = "{wait}"
            [exporters.blackhole.null]
            [pipelines.traces]
            receivers = ["otlp.in"]
            exporters = ["blackhole.null"]
            "#
        )
    };
    let ferro = Ferro::start(&config("1s", "127.0.0.1:0", "127.0.0.1:0"));
    let (http, grpc) = (ferro.http.unwrap(), ferro.grpc.unwrap());
    let pinned = |wait: &str| config(wait, &http.to_string(), &grpc.to_string());
    std::fs::write(&ferro.config_path, pinned("1s")).unwrap();
    ferro.signal("HUP");
    ferro.wait_for_logs("reload done", 1, WAIT);

    let stop = Arc::new(AtomicBool::new(false));
    let http_clients: Vec<_> = (0..4)
        .map(|c| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(http).unwrap();
                let (mut ok, mut failed) = (0usize, Vec::new());
                let mut i = c * 1_000_000;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    match post_keep_alive(&mut stream, &span_json(i)) {
                        Some((200, _)) => ok += 1,
                        other => {
                            failed.push(other.map(|a| a.0));
                            stream = TcpStream::connect(http).unwrap();
                        }
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let grpc_client = {
        let stop = stop.clone();
        tokio::spawn(async move {
            use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
            let mut client = TraceServiceClient::connect(format!("http://{grpc}"))
                .await
                .unwrap();
            let (mut ok, mut failed) = (0usize, Vec::new());
            let started = std::time::Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let request: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest =
                    serde_json::from_slice(&span_json(ok + 7_000_000)).unwrap();
                match client.export(request).await {
                    Ok(_) => ok += 1,
                    Err(status) => failed.push(format!(
                        "after {:?} and {ok} answered: {status:?}",
                        started.elapsed()
                    )),
                }
            }
            (ok, failed)
        })
    };
    for n in 0..30 {
        std::fs::write(
            &ferro.config_path,
            pinned(if n % 2 == 0 { "2s" } else { "1s" }),
        )
        .unwrap();
        ferro.signal("HUP");
        tokio::task::block_in_place(|| ferro.wait_for_logs("reload done", n + 2, WAIT));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut answered = 0;
    for client in http_clients {
        let (ok, failed) = client.join().unwrap();
        assert!(failed.is_empty(), "HTTP: {ok} answered, failed: {failed:?}");
        answered += ok;
    }
    let (ok, failed) = grpc_client.await.unwrap();
    assert!(
        failed.is_empty(),
        "gRPC: {ok} answered, failed: {:?}\n{}\n{}",
        &failed[..failed.len().min(5)],
        ferro
            .metrics()
            .lines()
            .filter(|l| l.starts_with("ferro_listener") || l.contains("rejected"))
            .collect::<Vec<_>>()
            .join("\n"),
        ferro.logs()
    );
    answered += ok;
    assert!(answered > 100, "{answered} requests");
    let accepted = tokio::task::block_in_place(|| {
        ferro.wait_metric("ferro_receiver_accepted_items_total", &["otlp.in"], |n| {
            n >= answered as f64
        })
    });
    assert_eq!(accepted, answered as f64, "every answered span was taken");
}

/// Item 6: `X-Scope-OrgID` means something only to a tenant processor with
/// `source = "header"`: without one, a value that is no tenant ID is
/// ignored (the request is taken); with one, it is refused as a client error.
#[test]
fn x_scope_orgid_is_checked_only_where_a_tenant_processor_reads_it() {
    let config = |tenant: &str| {
        format!(
            r#"
            [telemetry]
            listen = "127.0.0.1:0"
            [receivers.otlp.in]
            http = "127.0.0.1:0"
            {tenant}
            [exporters.blackhole.null]
            [pipelines.traces]
            receivers = ["otlp.in"]
            processors = [{processors}]
            exporters = ["blackhole.null"]
            "#,
            processors = if tenant.is_empty() {
                ""
            } else {
                "\"tenant.t\""
            },
        )
    };
    let headers = [
        ("Content-Type", "application/json"),
        ("X-Scope-OrgID", "../../etc"),
    ];
    let plain = Ferro::start(&config(""));
    let (status, _, _) = http_post(plain.http.unwrap(), "/v1/traces", &headers, &span_json(1));
    assert_eq!(status, 200);
    let tenanted = Ferro::start(&config(
        "[processors.tenant.t]\nsource = \"header\"\ndefault_tenant = \"anonymous\"",
    ));
    let (status, _, body) = http_post(
        tenanted.http.unwrap(),
        "/v1/traces",
        &headers,
        &span_json(1),
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("is not a tenant ID"));
}

/// Item 9 (and item 3 for scrapes): a failing target says why, as
/// Prometheus tells failures apart: in `ferro_scrape_target_last_error`,
/// in the rejected-requests counter by reason, and in one log line naming
/// the target. A page larger than the memory limit allows fails its scrape
/// instead of growing the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_failures_say_why() {
    use axum::routing::get;
    let huge_label = "x".repeat(40 << 20);
    let app = axum::Router::new()
        .route("/ok", get(|| async { "up_metric 1\n" }))
        .route(
            "/fail",
            get(|| async { (http::StatusCode::INTERNAL_SERVER_ERROR, "broken") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(120)).await;
                "late 1\n"
            }),
        )
        .route("/garbage", get(|| async { "this is { not a page\n" }))
        .route(
            "/many",
            get(|| async {
                (0..10)
                    .map(|i| format!("m{{i=\"{i}\"}} 1\n"))
                    .collect::<String>()
            }),
        )
        .route("/big", get(|| async { "big 1\n".repeat(2000) }))
        .route(
            "/huge",
            get(move || {
                let page = format!("huge{{v=\"{huge_label}\"}} 1\n");
                async move { page }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let job = |name: &str, path: &str, extra: &str| {
        format!(
            r#"
            [[receivers.prometheus.scrape.scrape_configs]]
            job_name = "{name}"
            metrics_path = "{path}"
            {extra}
            static_configs = [{{ targets = ["{target}"] }}]
            "#
        )
    };
    let mut config = String::from(
        r#"
        memory_limit = "24MiB"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.prometheus.scrape]
        # Room for a loaded machine: only /slow may time out (with 500 ms
        # another job's first scrape could, and its failure be logged
        # twice, for two reasons).
        scrape_interval = "2s"
        scrape_timeout = "1500ms"
        "#,
    );
    for (name, path, extra) in [
        ("ok", "/ok", ""),
        ("fail", "/fail", ""),
        ("slow", "/slow", ""),
        ("garbage", "/garbage", ""),
        ("many", "/many", "sample_limit = 5"),
        ("big", "/big", "body_size_limit = \"1KiB\""),
        ("huge", "/huge", ""),
    ] {
        config.push_str(&job(name, path, extra));
    }
    config.push_str(
        r#"
        [[receivers.prometheus.scrape.scrape_configs]]
        job_name = "refused"
        static_configs = [{ targets = ["127.0.0.1:9"] }]
        # Two targets over a limit of one: both fail unscraped.
        [[receivers.prometheus.scrape.scrape_configs]]
        job_name = "crowded"
        target_limit = 1
        static_configs = [{ targets = ["127.0.0.1:9", "127.0.0.2:9"] }]
        [exporters.blackhole.null]
        [pipelines.metrics]
        receivers = ["prometheus.scrape"]
        exporters = ["blackhole.null"]
        "#,
    );
    let ferro = Ferro::start(&config);
    let expected = [
        ("fail", "http_status"),
        ("slow", "timeout"),
        ("garbage", "parse_error"),
        ("many", "sample_limit"),
        ("big", "body_too_large"),
        ("huge", "memory_limit"),
        ("refused", "connection_refused"),
        ("crowded", "target_limit"),
    ];
    tokio::task::block_in_place(|| {
        for (job, reason) in expected {
            let labels = [format!("job=\"{job}\""), format!("reason=\"{reason}\"")];
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            // One per target (two for the crowded job).
            ferro.wait_metric("ferro_scrape_target_last_error", &labels, |n| n >= 1.0);
            assert_eq!(
                ferro.metric("ferro_scrape_target_up", &[&format!("job=\"{job}\"")]),
                0.0
            );
            // The job is logged with its reason.
            ferro.wait_for_log(&format!("\"reason\":\"{reason}\""), WAIT);
            ferro.wait_metric(
                "ferro_receiver_rejected_requests_total",
                &["prometheus.scrape", &format!("reason=\"{reason}\"")],
                |n| n >= 1.0,
            );
        }
        ferro.wait_metric("ferro_scrape_target_up", &["job=\"ok\""], |n| n == 1.0);
        // One line when a target starts failing, not one per scrape.
        let logged = ferro
            .logs()
            .lines()
            .filter(|l| l.contains("scrape failed") && l.contains("/fail"))
            .count();
        assert_eq!(logged, 1, "{}", ferro.logs());
        let rss = ferro.rss_bytes() as f64 / 1048576.0;
        assert!(
            rss < 24.0 + 96.0,
            "RSS {rss} MiB with a 40 MiB page refused"
        );
    });
}

/// Item 10: an oversized message is the client's error, answered
/// INVALID_ARGUMENT, which the OpenTelemetry SDK does not retry: it sends
/// the 5 MiB request once (OUT_OF_RANGE made it send it again and again).
#[test]
fn the_python_sdk_sends_an_oversized_request_once() {
    let Some(python) = common::python() else {
        return;
    };
    let ferro = Ferro::start(&otlp_to_blackhole("", "grpc = \"127.0.0.1:0\""));
    let output = Command::new(&python)
        .arg(common::python_script("send_oversized.py"))
        .args(["--endpoint", &format!("http://{}", ferro.grpc.unwrap())])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "FAILURE");
    assert_eq!(
        ferro.metric(
            "ferro_receiver_rejected_requests_total",
            &["reason=\"too_large\""]
        ),
        1.0,
        "one attempt"
    );
}

/// Smaller: a port in use is named with its address and protocol.
#[test]
fn a_port_in_use_is_named_with_its_protocol() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferro.toml");
    std::fs::write(
        &path,
        format!(
            r#"
            [telemetry]
            listen = "127.0.0.1:0"
            [receivers.otlp.in]
            grpc = "{addr}"
            [exporters.blackhole.null]
            [pipelines.traces]
            receivers = ["otlp.in"]
            exporters = ["blackhole.null"]
            "#
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_ferro"))
        .args(["run", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "receiver otlp.in: cannot listen for grpc on {addr}"
        )),
        "{stderr}"
    );
}

/// Item 7: a stop during the reload of a huge config does not wait for
/// the config to be checked.
#[test]
fn a_stop_during_the_reload_of_a_huge_config_does_not_wait_for_it() {
    let mut ferro = Ferro::start(&otlp_to_blackhole("", "http = \"127.0.0.1:0\""));
    let keys: String = (0..400_000)
        .map(|i| format!("unknown_key_number_{i:07} = 1\n"))
        .collect();
    std::fs::write(&ferro.config_path, keys).unwrap();
    ferro.signal("HUP");
    ferro.wait_for_log("reload requested", WAIT);
    ferro.signal("TERM");
    let status = ferro.wait_exit(WAIT);
    assert!(status.success(), "{}", ferro.logs());
}

/// Items 7 and 8: `ferro validate` on 40,000 unknown keys answers with the
/// first hundred and a count of the rest; a variable repeated to expand to
/// gigabytes is refused with the cap it passed.
#[test]
fn validate_caps_what_it_reports_and_what_it_expands() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferro.toml");
    let keys: String = (0..40_000).map(|i| format!("unknown_{i} = 1\n")).collect();
    std::fs::write(&path, keys).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_ferro"))
        .args(["validate", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 102, "{}", &stderr[..500]);
    assert!(stderr.contains(": 40000 errors"));
    assert!(stderr.trim_end().ends_with("… and 39900 more"));

    std::fs::write(
        &path,
        format!("data_dir = \"{}\"\n", "${Z}".repeat(200_000)),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_ferro"))
        .args(["validate", "-c"])
        .arg(&path)
        .env("Z", "z".repeat(100 * 1024))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("larger than 1024 KiB"), "{stderr}");
}
