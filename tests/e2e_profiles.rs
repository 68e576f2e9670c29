//! Profiles end to end: real producers into ferro's pprof receiver, out of
//! the Pyroscope exporter into the Pyroscope stand-in (`common::pyroscope`,
//! which decodes the real connect + protobuf wire format and checks what a
//! Pyroscope server checks).
//!
//! Producers: a Go program serving `net/http/pprof` (tests/go/pprof_target,
//! built here with Debian's golang-go), and the Python `pyroscope-io` SDK
//! pushing to ferro. Misbehaving targets (hanging, HTML, garbage, truncated,
//! oversized) are small servers in this file.

mod common;

use common::pyroscope::{Mode, PyroscopeServer};
use common::{Ferro, WAIT, http_post};
use ferro::pprof::sample::{Kind, profile};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

/// The Go pprof target, built once into the test target dir; `None`
/// (skipped) where Go is not installed.
fn go_target() -> Option<PathBuf> {
    let found = common::runs("go", &["version"]);
    if !common::have("go", found, "scripts/test installs Debian's golang-go") {
        return None;
    }
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/go/pprof_target");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pprof_target");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(&source)
        // Standard library only: nothing to download, and nothing may be.
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env(
            "GOCACHE",
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gocache"),
        )
        .status();
    match status {
        Ok(s) if s.success() => Some(out),
        other => panic!(
            "building tests/go/pprof_target failed ({other:?}): install Go (Debian's golang-go; scripts/test does)"
        ),
    }
}

struct GoTarget {
    child: Child,
    addr: SocketAddr,
}

impl GoTarget {
    /// The Go target, or `None` (skipped) where Go is not installed.
    fn start() -> Option<GoTarget> {
        let mut child = Command::new(go_target()?)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the Go target starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("the Go target said {line:?}"));
        Some(GoTarget { child, addr })
    }
}

impl Drop for GoTarget {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn exporter(pyroscope: &PyroscopeServer, name: &str, extra: &str) -> String {
    format!(
        "[exporters.pyroscope.{name}]\nendpoint = \"{}\"\ntenant_id = \"team-a\"\nretry = {{ initial_interval = \"100ms\", max_interval = \"500ms\" }}\n{extra}\n",
        pyroscope.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_program_is_scraped_into_pyroscope_with_every_profile_type() {
    let pyroscope = PyroscopeServer::start().await;
    let Some(go) = GoTarget::start() else { return };
    let started = now_ns();
    let config = format!(
        r#"
[telemetry]
listen = "127.0.0.1:0"

[receivers.pprof.go]
scrape_interval = "3s"

[[receivers.pprof.go.scrape_configs]]
job_name = "go-apps"
static_configs = [{{ targets = ["{addr}"], labels = {{ service_name = "checkout", env = "test" }} }}]
# The pprof index is an HTML page: it must be refused, not passed on.
profiles.index = {{ path = "/debug/pprof/" }}

{exporter}
[pipelines.profiles]
receivers = ["pprof.go"]
processors = ["batch"]
exporters = ["pyroscope.out"]
"#,
        addr = go.addr,
        exporter = exporter(&pyroscope, "out", ""),
    );
    let ferro = Ferro::start(&config);
    let types = ["process_cpu", "memory", "goroutine", "mutex", "block"];
    for name in types {
        let found = pyroscope
            .wait_for(1, WAIT, |s| s.label("__name__") == Some(name))
            .await;
        assert!(
            !found.is_empty(),
            "no {name} profile arrived; ferro logs:\n{}",
            ferro.logs()
        );
    }
    let stored = pyroscope.stored();
    for s in &stored {
        assert_eq!(s.tenant.as_deref(), Some("team-a"));
        assert_eq!(s.label("service_name"), Some("checkout"));
        assert_eq!(s.label("env"), Some("test"));
        assert_eq!(s.label("job"), Some("go-apps"));
        assert_eq!(s.label("instance"), Some(go.addr.to_string().as_str()));
        assert_eq!(s.id.len(), 36, "every sample has an id");
        // Go stamps every profile with when it was taken.
        assert!(
            s.profile.time_nanos >= started - 5_000_000_000 && s.profile.time_nanos <= now_ns(),
            "time_nanos {} outside the test",
            s.profile.time_nanos
        );
    }
    let of = |name: &str| {
        stored
            .iter()
            .find(|s| s.label("__name__") == Some(name))
            .unwrap()
    };
    let cpu = of("process_cpu");
    assert_eq!(cpu.sample_types(), ["samples/count", "cpu/nanoseconds"]);
    // CPU is profiled over the interval less a second.
    assert!(
        (1_900_000_000..=2_500_000_000).contains(&cpu.profile.duration_nanos),
        "CPU profile lasted {} ns",
        cpu.profile.duration_nanos
    );
    assert!(!cpu.profile.sample.is_empty(), "the CPU burner shows up");
    assert_eq!(
        of("memory").sample_types(),
        [
            "alloc_objects/count",
            "alloc_space/bytes",
            "inuse_objects/count",
            "inuse_space/bytes"
        ]
    );
    assert_eq!(of("goroutine").sample_types(), ["goroutine/count"]);
    for name in ["mutex", "block"] {
        assert_eq!(
            of(name).sample_types(),
            ["contentions/count", "delay/nanoseconds"]
        );
    }
    assert!(stored.iter().all(|s| s.label("__name__") != Some("index")));
    assert!(
        ferro.metric(
            "ferro_dropped_items_total",
            &["pprof.go", "malformed_profile"]
        ) >= 1.0,
        "the HTML index page is counted as a malformed profile"
    );
    assert_eq!(pyroscope.with(|r| r.refused.clone()), Vec::new());
    assert!(ferro.metric("ferro_exporter_sent_items_total", &["pyroscope.out"]) >= 5.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_pyroscope_sdk_pushes_through_ferro() {
    let pyroscope = PyroscopeServer::start().await;
    let config = format!(
        r#"
[telemetry]
listen = "127.0.0.1:0"

[receivers.pprof.push]
listen = "127.0.0.1:0"

{exporter}
[pipelines.profiles]
receivers = ["pprof.push"]
exporters = ["pyroscope.out"]
"#,
        exporter = exporter(&pyroscope, "out", ""),
    );
    let Some(python) = common::python_with(&["pyroscope"]) else {
        return;
    };
    let ferro = Ferro::start(&config);
    let addr = ferro.listener("pprof.push", "http");
    let started = now_ns();
    let output = Command::new(&python)
        .arg(common::python_script("push_profiles.py"))
        .args([&format!("http://{addr}"), "pyapp", "3"])
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "push_profiles.py failed (pip install -r tests/python/requirements.txt; scripts/test does): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stored = pyroscope
        .wait_for(2, WAIT, |s| s.label("service_name") == Some("pyapp"))
        .await;
    assert!(
        stored.len() >= 2,
        "profiles from the SDK arrive; ferro logs:\n{}",
        ferro.logs()
    );
    for s in &stored {
        assert_eq!(s.label("__name__"), Some("process_cpu"));
        assert_eq!(s.label("env"), Some("test"));
        assert_eq!(s.label("region"), Some("eu-1"));
        assert_eq!(s.tenant.as_deref(), Some("team-a"));
        assert_eq!(s.sample_types(), ["cpu/nanoseconds"]);
        assert!(
            s.profile.time_nanos >= started - 2_000_000_000 && s.profile.time_nanos <= now_ns()
        );
    }
    assert!(
        stored.iter().any(|s| !s.profile.sample.is_empty()),
        "the SDK sampled the busy loop"
    );
    let accepted = ferro.metric("ferro_receiver_accepted_items_total", &["pprof.push"]);
    assert!(accepted >= stored.len() as f64, "{accepted}");
}

/// A gzip'd synthetic Go CPU profile taken now.
fn cpu_profile() -> Vec<u8> {
    ferro::pprof::encode_gzip(&profile(Kind::Cpu, 40, 100, now_ns())).to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_ingest_refusals_and_retries() {
    let pyroscope = PyroscopeServer::start().await;
    let config = format!(
        r#"
[telemetry]
listen = "127.0.0.1:0"

[receivers.pprof.push]
listen = "127.0.0.1:0"
max_profile_size = "256KiB"

{push}
{ingest}
[pipelines.profiles]
receivers = ["pprof.push"]
exporters = ["pyroscope.push", "pyroscope.ingest"]
"#,
        push = exporter(&pyroscope, "push", ""),
        ingest = exporter(&pyroscope, "ingest", "api = \"ingest\""),
    );
    let ferro = Ferro::start(&config);
    let addr: SocketAddr = ferro.listener("pprof.push", "http");
    let pprof = cpu_profile();

    // The older ingest API, raw body: key labels, suffix type, time range.
    let path = "/ingest?name=shop.cpu%7Benv%3Dprod%7D&from=1700000000&until=1700000010&format=pprof&spyName=gospy";
    let (status, _, body) = http_post(
        addr,
        path,
        &[("Content-Type", "binary/octet-stream")],
        &pprof,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let found = pyroscope
        .wait_for(2, WAIT, |s| s.label("service_name") == Some("shop"))
        .await;
    assert_eq!(
        found.len(),
        2,
        "once through each exporter; refused: {:?}\n{}",
        pyroscope.with(|r| r.refused.clone()),
        ferro.logs()
    );
    let pushed = found.iter().find(|s| s.range.is_none()).unwrap();
    assert_eq!(pushed.label("__name__"), Some("process_cpu"));
    assert_eq!(pushed.label("env"), Some("prod"));
    assert_eq!(pushed.label("pyroscope_spy"), Some("gospy"));
    assert_eq!(
        pushed.label("__delta__"),
        Some("false"),
        "what comes to /ingest is never differenced again, as in Pyroscope"
    );
    let ingested = found.iter().find(|s| s.range.is_some()).unwrap();
    assert_eq!(ingested.range, Some((1_700_000_000, 1_700_000_010)));
    assert_eq!(ingested.label("env"), Some("prod"));
    assert_eq!(ingested.label("__name__"), Some("process_cpu"));
    assert_eq!(ingested.label("pyroscope_spy"), Some("gospy"));
    assert_eq!(
        ingested.sample_types(),
        ["samples/count", "cpu/nanoseconds"]
    );

    // Multipart, as the older SDKs send it.
    let mut form = Vec::new();
    form.extend_from_slice(b"--B0undary\r\nContent-Disposition: form-data; name=\"profile\"; filename=\"profile.pprof\"\r\nContent-Type: application/octet-stream\r\n\r\n");
    form.extend_from_slice(&ferro::pprof::encode_gzip(&profile(
        Kind::Heap,
        30,
        50,
        now_ns(),
    )));
    form.extend_from_slice(b"\r\n--B0undary\r\nContent-Disposition: form-data; name=\"sample_type_config\"; filename=\"sample_type_config.json\"\r\n\r\n{\"inuse_space\":{\"units\":\"bytes\",\"aggregation\":\"average\"}}\r\n--B0undary--\r\n");
    let (status, _, body) = http_post(
        addr,
        "/ingest?name=shop%7B%7D&format=pprof",
        &[("Content-Type", "multipart/form-data; boundary=B0undary")],
        &form,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let memory = pyroscope
        .wait_for(2, WAIT, |s| {
            s.sample_types().contains(&"inuse_space/bytes".to_string())
        })
        .await;
    assert_eq!(memory.len(), 2, "once through each exporter");
    let pushed = memory.iter().find(|s| s.range.is_none()).unwrap();
    assert_eq!(pushed.label("__name__"), Some("memory"));
    assert_eq!(pushed.label("service_name"), Some("shop"));

    // pyroscope-go's mutex profile: its sample types are a block profile's
    // too; only the form's display names say which it is.
    let multipart = |parts: &[(&str, &[u8])]| {
        let mut form = Vec::new();
        for (name, data) in parts {
            form.extend_from_slice(format!("--B0undary\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\n\r\n").as_bytes());
            form.extend_from_slice(data);
            form.extend_from_slice(b"\r\n");
        }
        form.extend_from_slice(b"--B0undary--\r\n");
        form
    };
    let contention = ferro::pprof::encode_gzip(&profile(Kind::Contention, 10, 20, now_ns()));
    let config = br#"{"contentions":{"display-name":"mutex_count","units":"lock_samples","cumulative":true},"delay":{"display-name":"mutex_duration","units":"lock_nanoseconds","cumulative":true}}"#;
    let form_type = [("Content-Type", "multipart/form-data; boundary=B0undary")];
    let (status, _, body) = http_post(
        addr,
        "/ingest?name=locks&format=pprof&spyName=gospy",
        &form_type,
        &multipart(&[("profile", &contention), ("sample_type_config", config)]),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let mutex = pyroscope
        .wait_for(2, WAIT, |s| s.label("service_name") == Some("locks"))
        .await;
    assert_eq!(mutex.len(), 2, "once through each exporter");
    for stored in &mutex {
        assert_eq!(stored.label("__name__"), Some("mutex"), "{stored:?}");
    }
    let ingested = mutex.iter().find(|s| s.range.is_some()).unwrap();
    let sent_config = ingested.sample_type_config.as_ref().unwrap();
    assert_eq!(sent_config["delay"]["display-name"], "mutex_duration");
    // The same from a form another encoder writes (Python's `requests`,
    // as pyroscope-go lays it out): pyroscope-go's block profile config.
    let tmp = tempfile::tempdir().unwrap();
    let profile_file = tmp.path().join("block.pb.gz");
    std::fs::write(&profile_file, &contention).unwrap();
    let Some(python) = common::python_with(&["requests"]) else {
        return;
    };
    let output = Command::new(&python)
        .arg(common::python_script("ingest_form.py"))
        .arg(format!("http://{addr}"))
        .arg("waits{env=prod}")
        .arg(&profile_file)
        .arg(r#"{"contentions":{"display-name":"block_count","units":"lock_samples","cumulative":true},"delay":{"display-name":"block_duration","units":"lock_nanoseconds","cumulative":true}}"#)
        .output()
        .expect("python runs");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "200",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let block = pyroscope
        .wait_for(2, WAIT, |s| s.label("service_name") == Some("waits"))
        .await;
    assert_eq!(block.len(), 2, "once through each exporter");
    for stored in &block {
        assert_eq!(stored.label("__name__"), Some("block"), "{stored:?}");
        assert_eq!(stored.label("env"), Some("prod"));
        assert_eq!(stored.label("pyroscope_spy"), Some("gospy"));
    }

    // An old Go client's cumulative pair, a config that is no object.
    let (status, _, body) = http_post(
        addr,
        "/ingest?name=locks&format=pprof",
        &form_type,
        &multipart(&[("profile", &contention), ("prev_profile", &contention)]),
    );
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("prev_profile"));
    let (status, _, _) = http_post(
        addr,
        "/ingest?name=locks&format=pprof",
        &form_type,
        &multipart(&[("profile", &contention), ("sample_type_config", b"[1]")]),
    );
    assert_eq!(status, 400);

    // What ferro cannot carry gets a clear 4xx and nothing passes.
    let before = pyroscope.stored().len();
    let (status, _, body) = http_post(
        addr,
        "/ingest?name=shop&format=folded",
        &[],
        b"main;work 100\n",
    );
    assert_eq!(status, 415);
    assert!(String::from_utf8_lossy(&body).contains("format=folded cannot be turned into pprof"));
    let (status, _, _) = http_post(addr, "/ingest?name=shop", &[], b"main;work 100\n");
    assert_eq!(
        status, 415,
        "no format and no multipart means folded, as in Pyroscope"
    );
    let html = b"<html><body>502 Bad Gateway</body></html>";
    let (status, _, body) = http_post(addr, "/ingest?name=shop.cpu&format=pprof", &[], html);
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&body).contains("not a pprof profile"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let big = vec![7u8; 300 * 1024];
    let (status, _, _) = http_post(addr, "/ingest?name=shop.cpu&format=pprof", &[], &big);
    assert_eq!(status, 413);

    // The push API with a broken profile: the whole request is refused.
    use prost::Message;
    let request = |raw: Vec<Vec<u8>>| {
        ferro_proto::push::v1::PushRequest {
            series: vec![ferro_proto::push::v1::RawProfileSeries {
                labels: vec![
                    ferro_proto::types::v1::LabelPair {
                        name: "__name__".into(),
                        value: "process_cpu".into(),
                    },
                    ferro_proto::types::v1::LabelPair {
                        name: "service_name".into(),
                        value: "api".into(),
                    },
                ],
                samples: raw
                    .into_iter()
                    .map(|raw_profile| ferro_proto::push::v1::RawSample {
                        raw_profile,
                        id: String::new(),
                    })
                    .collect(),
                annotations: Vec::new(),
            }],
        }
        .encode_to_vec()
    };
    let proto = [("Content-Type", "application/proto")];
    let truncated = pprof[..pprof.len() / 2].to_vec();
    let (status, _, body) = http_post(
        addr,
        "/push.v1.PusherService/Push",
        &proto,
        &request(vec![pprof.clone(), truncated]),
    );
    assert_eq!(status, 400);
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["code"], "invalid_argument");
    let (status, _, _) = http_post(
        addr,
        "/push.v1.PusherService/Push",
        &[("Content-Type", "application/json")],
        b"{}",
    );
    assert_eq!(status, 415);
    let (status, _, _) = http_post(addr, "/push.v1.PusherService/Push", &proto, b"\xff\xff\xff");
    assert_eq!(status, 400);
    // A later marker: a good profile sent after them arrives (once
    // through each exporter), and nothing before it did.
    let (status, _, _) = http_post(
        addr,
        "/ingest?name=marker.cpu&format=pprof",
        &[("Content-Type", "binary/octet-stream")],
        &pprof,
    );
    assert_eq!(status, 200);
    pyroscope
        .wait_for(2, WAIT, |s| s.label("service_name") == Some("marker"))
        .await;
    assert_eq!(
        pyroscope.stored().len(),
        before + 2,
        "nothing refused was passed on"
    );
    assert!(
        ferro.metric(
            "ferro_dropped_items_total",
            &["pprof.push", "malformed_profile"]
        ) >= 1.0
    );
    assert!(
        ferro.metric(
            "ferro_dropped_items_total",
            &["pprof.push", "bad_compression"]
        ) >= 1.0
    );
    assert!(
        ferro.metric(
            "ferro_receiver_rejected_requests_total",
            &["pprof.push", "unsupported_format"]
        ) >= 2.0
    );
    assert!(
        ferro.metric(
            "ferro_receiver_rejected_requests_total",
            &["pprof.push", "too_large"]
        ) >= 1.0
    );

    // Pyroscope unavailable: ferro retries until it is back.
    pyroscope.set_mode(Mode::Unavailable);
    let (status, _, _) = http_post(
        addr,
        "/push.v1.PusherService/Push",
        &proto,
        &request(vec![pprof.clone()]),
    );
    assert_eq!(status, 200);
    ferro.wait_metric("ferro_exporter_retries_total", &["pyroscope.push"], |n| {
        n >= 1.0
    });
    pyroscope.set_mode(Mode::Accept);
    let api = pyroscope
        .wait_for(2, WAIT, |s| s.label("service_name") == Some("api"))
        .await;
    assert_eq!(
        api.len(),
        2,
        "delivered once the server is back, by both exporters"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_profiles_go_to_pyroscope_as_the_tenant_their_request_named() {
    let pyroscope = PyroscopeServer::start().await;
    let config = format!(
        r#"
[telemetry]
listen = "127.0.0.1:0"

[receivers.pprof.push]
listen = "127.0.0.1:0"

[processors.tenant.by_org]
source = "header"
default_tenant = "platform"

{exporter}
[pipelines.profiles]
receivers = ["pprof.push"]
processors = ["tenant.by_org", "batch"]
exporters = ["pyroscope.out"]
"#,
        exporter = exporter(&pyroscope, "out", ""),
    );
    let ferro = Ferro::start(&config);
    let addr: SocketAddr = ferro.listener("pprof.push", "http");
    let pprof = cpu_profile();
    let ingest = |service: &str, headers: &[(&str, &str)]| {
        let path = format!("/ingest?name={service}.cpu&format=pprof");
        http_post(addr, &path, headers, &pprof).0
    };
    assert_eq!(ingest("billing", &[("X-Scope-OrgID", "team-b")]), 200);
    assert_eq!(ingest("shared", &[]), 200);
    assert_eq!(ingest("bad", &[("X-Scope-OrgID", "team b")]), 400);
    let stored = pyroscope.wait_for(2, WAIT, |_| true).await;
    let tenant_of = |service: &str| {
        stored
            .iter()
            .find(|s| s.label("service_name") == Some(service))
            .unwrap_or_else(|| panic!("no {service} profile in {stored:?}\n{}", ferro.logs()))
            .tenant
            .clone()
    };
    // The header, not the exporter's tenant_id; no header: default_tenant.
    assert_eq!(tenant_of("billing").as_deref(), Some("team-b"));
    assert_eq!(tenant_of("shared").as_deref(), Some("platform"));
    assert!(
        stored
            .iter()
            .all(|s| s.label("service_name") != Some("bad"))
    );
    assert_eq!(
        ferro.metric(
            "ferro_receiver_rejected_requests_total",
            &["pprof.push", "invalid_tenant"]
        ),
        1.0
    );
}

/// A scrape target that misbehaves in one way on every path.
#[derive(Clone, Copy)]
enum Misbehaviour {
    /// Accepts the connection and never answers.
    Hang,
    /// 200 with an HTML page.
    Html,
    /// 200 with bytes that are not a profile.
    Garbage,
    /// 200 with a gzip'd profile cut in half.
    Truncated,
    /// 200 with 2 MiB.
    Oversized,
}

fn misbehaving_target(how: Misbehaviour) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let (content_type, body): (&str, Vec<u8>) = match how {
                Misbehaviour::Hang => {
                    held.push(stream);
                    continue;
                }
                Misbehaviour::Html => (
                    "text/html",
                    b"<!DOCTYPE html><html><body>Login required</body></html>".to_vec(),
                ),
                Misbehaviour::Garbage => ("application/octet-stream", vec![0xff; 512]),
                Misbehaviour::Truncated => {
                    let whole = cpu_profile();
                    (
                        "application/octet-stream",
                        whole[..whole.len() / 2].to_vec(),
                    )
                }
                Misbehaviour::Oversized => ("application/octet-stream", vec![0x0a; 2 << 20]),
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_targets_are_counted_and_never_passed_on() {
    let pyroscope = PyroscopeServer::start().await;
    let targets: Vec<String> = [
        Misbehaviour::Hang,
        Misbehaviour::Html,
        Misbehaviour::Garbage,
        Misbehaviour::Truncated,
        Misbehaviour::Oversized,
    ]
    .into_iter()
    .map(|how| format!("\"{}\"", misbehaving_target(how)))
    .collect();
    let config = format!(
        r#"
[telemetry]
listen = "127.0.0.1:0"

[receivers.pprof.bad]
scrape_interval = "2s"
scrape_timeout = "1500ms"

[[receivers.pprof.bad.scrape_configs]]
job_name = "bad"
body_size_limit = "1MiB"
static_configs = [{{ targets = [{targets}] }}]
profiles.memory = {{ enabled = false }}
profiles.mutex = {{ enabled = false }}
profiles.block = {{ enabled = false }}

{exporter}
[pipelines.profiles]
receivers = ["pprof.bad"]
exporters = ["pyroscope.out"]
"#,
        targets = targets.join(", "),
        exporter = exporter(&pyroscope, "out", ""),
    );
    let ferro = Ferro::start(&config);
    let counted = |reason: &str| ferro.metric("ferro_dropped_items_total", &["pprof.bad", reason]);
    let rejected = |reason: &str| {
        ferro.metric(
            "ferro_receiver_rejected_requests_total",
            &["pprof.bad", reason],
        )
    };
    let what = common::told(|| {
        format!(
            "every fault to be counted: malformed {} bad_compression {} too_large {} timeout {}",
            counted("malformed_profile"),
            counted("bad_compression"),
            rejected("body_too_large"),
            rejected("timeout"),
        )
    });
    common::eventually_async(what, WAIT, || {
        counted("malformed_profile") >= 4.0
            && counted("bad_compression") >= 2.0
            && rejected("body_too_large") >= 2.0
            && rejected("timeout") >= 2.0
    })
    .await;
    assert!(pyroscope.stored().is_empty());
    assert_eq!(pyroscope.with(|r| r.requests), 0, "nothing was sent at all");
    assert_eq!(
        ferro.metric("ferro_receiver_accepted_items_total", &["pprof.bad"]),
        0.0
    );
    assert!(
        ferro.rss_bytes() < 64 << 20,
        "RSS {} after oversized bodies",
        ferro.rss_bytes()
    );
}
