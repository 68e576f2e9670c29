//! Disk queues end to end: the real binary, its backend down, `kill -9`,
//! a restart, then the backend up. Everything a sender was told was
//! accepted (an OTLP export that succeeded, a log line whose position
//! moved on, a scrape written to the queue) must arrive.
//!
//! The backends: a real Prometheus (remote-write receiver) fed by scrapes
//! of a real node-exporter; the OTLP sink stand-in fed by the OpenTelemetry
//! Python SDK; the Loki stand-in fed by pod log files. A backend that is
//! "down" is a port held bound but not listening, so nothing else takes it;
//! it comes up by listening (a stand-in) or forwarding (Prometheus).

mod common;

use common::prom::{installed, node_exporter, prometheus, query_at, samples_at};
use common::{Ferro, WAIT, eventually, eventually_async, python, python_script};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Kills ferro with SIGKILL and waits for it to be gone.
fn kill_9(mut ferro: Ferro) {
    ferro.signal("KILL");
    ferro.wait_exit(WAIT);
}

#[test]
fn scrapes_queued_during_an_outage_survive_kill_9_and_reach_prometheus() {
    let Some(node) = node_exporter() else { return };
    if !installed("prometheus") {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let held = common::reserved_port();
    let prom_addr = held.local_addr().unwrap();
    let data = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
        data_dir = "{data}"
        [telemetry]
        listen = "127.0.0.1:0"
        [[receivers.prometheus.in.scrape_configs]]
        job_name = "node"
        scrape_interval = "1s"
        scrape_timeout = "900ms"
        static_configs = [{{ targets = ["{node}"] }}]
        [exporters.remote_write.prom]
        endpoint = "http://{prom_addr}/api/v1/write"
        batch_send_deadline = "100ms"
        retry = {{ initial_interval = "100ms", max_interval = "500ms" }}
        queue = "disk"
        [pipelines.metrics]
        receivers = ["prometheus.in"]
        exporters = ["remote_write.prom"]
        "#,
        data = data.path().display(),
        node = node.addr,
    );
    let ferro = Ferro::start(&config);
    ferro.wait_metric(
        "ferro_exporter_disk_queue_records",
        &["component=\"remote_write.prom\""],
        |records| records >= 30.0,
    );
    let killed_at = now_s();
    kill_9(ferro);

    let ferro = Ferro::start(&config);
    // What the queue held at the kill, as the restarted ferro found it.
    let queued = queued_items(&ferro);
    assert!(queued > 0.0, "{queued}");
    let prometheus = prometheus().unwrap();
    common::forward(held.listen(64).unwrap(), prometheus.addr);
    // Every sample written before the kill: scrapes are a few records each.
    let before_kill = || samples_at(prometheus.addr, "{job=\"node\"}[10m]", killed_at);
    let what = common::told(|| {
        format!(
            "{queued} samples from before the kill in Prometheus (has {})",
            before_kill()
        )
    });
    eventually(what, WAIT, || before_kill() >= queued);
    assert_eq!(before_kill(), queued, "each sample once");
    // The scrapes before the kill, one `up` sample each, a second apart.
    let ups = query_at(
        prometheus.addr,
        "count_over_time(up{job=\"node\"}[10m])",
        killed_at,
    )
    .unwrap();
    assert!(ups >= 3.0, "{ups} scrapes");
    // And the series goes on after the restart.
    let now = || {
        query_at(
            prometheus.addr,
            "count_over_time(up{job=\"node\"}[10m])",
            now_s(),
        )
        .unwrap_or(0.0)
    };
    eventually("scrapes after the restart", WAIT, || now() >= ups + 3.0);
}

/// The items the restarted `ferro` found in its disk queue, from its log.
fn queued_items(ferro: &Ferro) -> f64 {
    ferro.wait_for_log("records from an earlier run", WAIT);
    let line = ferro
        .logs()
        .lines()
        .find(|l| l.contains("records from an earlier run"))
        .unwrap()
        .to_string();
    let json: serde_json::Value = serde_json::from_str(&line).unwrap();
    json["items"].as_f64().unwrap()
}

#[test]
fn spans_the_sdk_was_told_were_accepted_survive_kill_9() {
    let Some(python) = python() else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let held = common::reserved_port();
    let data = tempfile::tempdir().unwrap();
    let config = otlp_to(
        data.path(),
        held.local_addr().unwrap(),
        r#"{ type = "disk", fsync = "batch" }"#,
        "",
    );
    let ferro = Ferro::start(&config);
    send_spans(&python, &ferro, 300, "outage", data.path());
    kill_9(ferro);

    let _ferro = Ferro::start(&config);
    sink_gets(&runtime, held, 300);
}

/// A config whose OTLP receiver feeds an OTLP exporter to `sink` with a
/// disk queue (`queue`, and `exporter` for more of the exporter's keys).
fn otlp_to(data: &Path, sink: SocketAddr, queue: &str, exporter: &str) -> String {
    format!(
        r#"
        data_dir = "{data}"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.otlp.in]
        grpc = "127.0.0.1:0"
        [exporters.otlp.tempo]
        endpoint = "http://{sink}"
        retry = {{ initial_interval = "100ms", max_interval = "500ms" }}
        queue = {queue}
        {exporter}
        [pipelines.traces]
        receivers = ["otlp.in"]
        exporters = ["otlp.tempo"]
        "#,
        data = data.display(),
    )
}

/// Sends `spans` spans with the OpenTelemetry SDK to ferro's OTLP receiver;
/// every export must succeed.
fn send_spans(python: &str, ferro: &Ferro, spans: usize, service: &str, dir: &Path) {
    let output = Command::new(python)
        .arg(python_script("send_traces.py"))
        .args(["--protocol", "grpc", "--endpoint"])
        .arg(format!(
            "http://{}",
            ferro.ready().receiver("otlp.in", "grpc")
        ))
        .args(["--spans", &spans.to_string(), "--service", service])
        .arg("--expected")
        .arg(dir.join(format!("{service}.pb")))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "every export succeeds while the backend is down: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Brings the sink up on the port `held` kept down, and waits until it has
/// `n` distinct spans (by span id) and no others.
fn sink_gets(runtime: &tokio::runtime::Runtime, held: tokio::net::TcpSocket, n: usize) {
    let sink =
        runtime.block_on(async { common::sink::Sink::start_on(held.listen(64).unwrap()).await });
    runtime.block_on(async {
        let what = common::told(|| format!("{n} spans at the sink (have {})", sink.span_count()));
        eventually_async(what, WAIT, || sink.span_count() >= n).await;
    });
    let mut ids: Vec<Vec<u8>> = sink.spans().into_iter().map(|s| s.span.span_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "each span, by span id");
}

fn pod_log(root: &Path) -> std::path::PathBuf {
    let dir = root.join("shop_web_uid-web/app");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("0.log")
}

#[test]
fn log_lines_whose_positions_moved_on_survive_kill_9() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let held = common::reserved_port();
    let loki_addr = held.local_addr().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("pods");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let path = pod_log(&root);
    let lines: String = (0..5000)
        .map(|i| format!("2024-01-01T00:00:00.123456789Z stdout F line {i}\n"))
        .collect();
    std::fs::write(&path, &lines).unwrap();
    let config = format!(
        r#"
        data_dir = "{data}"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.pod_logs.node]
        include = ["{root}/*/*/*.log"]
        rescan_interval = "100ms"
        start_at = "beginning"
        [exporters.loki.out]
        endpoint = "http://{loki_addr}/loki/api/v1/push"
        batch_wait = "100ms"
        retry = {{ initial_interval = "100ms", max_interval = "500ms" }}
        queue = "disk"
        [pipelines.logs]
        receivers = ["pod_logs.node"]
        exporters = ["loki.out"]
        "#,
        data = data.display(),
        root = root.display(),
    );
    let ferro = Ferro::start(&config);
    // The positions reach the end of the file with Loki down: the lines
    // are on disk, so the tailer may move on.
    let size = std::fs::metadata(&path).unwrap().len();
    let positions = data.join("pod_logs/node.positions.json");
    eventually("positions at the end of the file", WAIT, || {
        std::fs::read(&positions)
            .ok()
            .and_then(|t| serde_json::from_slice::<serde_json::Value>(&t).ok())
            .is_some_and(|v| v["files"][0]["offset"] == size)
    });
    kill_9(ferro);

    let _ferro = Ferro::start(&config);
    let loki = common::loki::LokiServer::start_on(held.listen(64).unwrap());
    runtime.block_on(loki.wait_for_entries(5000, WAIT));
    let mut got: Vec<String> = loki.with(|r| {
        r.streams
            .values()
            .flatten()
            .map(|e| e.line.clone())
            .collect()
    });
    got.sort_by_key(|l| l[5..].parse::<usize>().unwrap());
    got.dedup();
    let want: Vec<String> = (0..5000).map(|i| format!("line {i}")).collect();
    assert_eq!(got, want);
}

#[test]
fn a_long_outage_fills_the_disk_not_the_memory() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let page: String = (0..20_000)
        .map(|i| format!("outage_series{{shard=\"{}\",i=\"{i}\"}} {i}\n", i % 16))
        .collect();
    let target = runtime.block_on(common::prom::PageServer::start(
        "text/plain; version=0.0.4",
        &page,
    ));
    let held = common::reserved_port();
    let data = tempfile::tempdir().unwrap();
    let ferro = Ferro::start(&format!(
        r#"
        data_dir = "{data}"
        [telemetry]
        listen = "127.0.0.1:0"
        [[receivers.prometheus.in.scrape_configs]]
        job_name = "outage"
        scrape_interval = "1s"
        static_configs = [{{ targets = ["{target}"] }}]
        [exporters.remote_write.down]
        endpoint = "http://{down}/api/v1/write"
        retry = {{ initial_interval = "100ms", max_interval = "500ms" }}
        queue = {{ type = "disk", max_size = "4GiB" }}
        [pipelines.metrics]
        receivers = ["prometheus.in"]
        exporters = ["remote_write.down"]
        "#,
        data = data.path().display(),
        target = target.addr,
        down = held.local_addr().unwrap(),
    ));
    let scrapes = || target.scrapes.load(std::sync::atomic::Ordering::Relaxed);
    let queue_bytes = || {
        ferro.metric(
            "ferro_exporter_disk_queue_bytes",
            &["component=\"remote_write.down\""],
        )
    };
    // Warm: the process has scraped, parsed and written a few pages.
    eventually("5 scrapes", WAIT, || scrapes() >= 5);
    let (rss_warm, bytes_warm) = (ferro.rss_bytes(), queue_bytes());
    let mut rss_max = rss_warm;
    eventually(
        "20 more scrapes, RSS sampled",
        Duration::from_secs(60),
        || {
            rss_max = rss_max.max(ferro.rss_bytes());
            scrapes() >= 25
        },
    );
    let grown = queue_bytes() - bytes_warm;
    assert!(grown > 30e6, "the queue grew by {grown} bytes");
    // Bounded: what the queue holds is on disk; memory holds one page and
    // the records in flight.
    let rss_growth = rss_max.saturating_sub(rss_warm);
    assert!(
        rss_growth < 16 << 20,
        "RSS grew by {} MiB while the queue grew by {} MiB",
        rss_growth >> 20,
        grown as u64 >> 20
    );
}

#[test]
fn a_reload_hands_a_changed_exporters_queue_to_its_successor() {
    let Some(python) = python() else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let held = common::reserved_port();
    let data = tempfile::tempdir().unwrap();
    let config = |timeout: &str| {
        otlp_to(
            data.path(),
            held.local_addr().unwrap(),
            r#""disk""#,
            &format!("timeout = \"{timeout}\""),
        )
    };
    let ferro = Ferro::start(&config("5s"));
    send_spans(&python, &ferro, 100, "before", data.path());
    // A changed exporter: the old one is closed first (its directory is
    // locked while open), the new one sends what it left.
    ferro.reload(&config("6s"), 1);
    send_spans(&python, &ferro, 100, "after", data.path());
    sink_gets(&runtime, held, 200);
}
