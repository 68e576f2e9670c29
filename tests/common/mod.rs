//! Test support: the one way tests wait ([`eventually`]: a condition, a
//! deadline, a message), a ferro process started from a config whose
//! listeners are all on port 0 (the ports it bound read from its
//! `--ready-file`), tests that say "skipped" when a tool is missing
//! ([`have`]), a recording OTLP server (gRPC and HTTP) that can be told to
//! refuse or to be slow, and stand-ins for Prometheus remote-write 2.0, Loki
//! the Kubernetes API server and the kubelet.
#![allow(dead_code)]

pub mod kube_api;
pub mod kubelet;
pub mod loki;
pub mod prom;
pub mod pyroscope;
pub mod sink;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for something a healthy ferro does at once
/// (start, a reload, a request through a pipeline), with room for a loaded
/// two-core machine.
pub const WAIT: Duration = Duration::from_secs(30);

/// Waits until `check` holds, looking again and again (every 10 ms at
/// first, then less often, at most every 250 ms) for at most `timeout`.
/// Panics with `what` and how long it waited if it never holds. The one way
/// tests wait: never a fixed sleep before an assertion.
pub fn eventually(what: impl Display, timeout: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    let mut interval = FIRST_INTERVAL;
    while !check() {
        let waited = started.elapsed();
        assert!(
            waited < timeout,
            "timed out after {waited:.1?} (limit {timeout:?}) waiting for {what}"
        );
        std::thread::sleep(interval.min(timeout - waited));
        interval = (interval * 2).min(LAST_INTERVAL);
    }
}

/// [`eventually`] for async tests: waits on tokio's timer, so that tasks on
/// the test's own runtime (the stand-in servers) run meanwhile. `check`
/// itself is quick and synchronous (a look under a lock, at `/metrics`).
pub async fn eventually_async(
    what: impl Display,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
) {
    let started = Instant::now();
    let mut interval = FIRST_INTERVAL;
    while !check() {
        let waited = started.elapsed();
        assert!(
            waited < timeout,
            "timed out after {waited:.1?} (limit {timeout:?}) waiting for {what}"
        );
        tokio::time::sleep(interval.min(timeout - waited)).await;
        interval = (interval * 2).min(LAST_INTERVAL);
    }
}

/// A message made only when it is told: what a wait is for, with what
/// it saw last (`told(|| format!("10 spans (have {})", count()))`).
pub fn told<F: Fn() -> String>(message: F) -> impl Display {
    struct Told<F>(F);
    impl<F: Fn() -> String> Display for Told<F> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&(self.0)())
        }
    }
    Told(message)
}

const FIRST_INTERVAL: Duration = Duration::from_millis(10);
const LAST_INTERVAL: Duration = Duration::from_millis(250);

/// Whether a test that needs `tool` may run. When it is missing, prints
/// "skipped: …" with `why` and returns false; with
/// `FERRO_TESTS_REQUIRE_ALL=1` (as `scripts/test` sets) it fails instead,
/// so that nothing is skipped where everything should be installed.
pub fn have(tool: &str, found: bool, why: &str) -> bool {
    if found {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string();
    assert!(
        std::env::var("FERRO_TESTS_REQUIRE_ALL").as_deref() != Ok("1"),
        "{test} needs {tool}, which is missing ({why}), and FERRO_TESTS_REQUIRE_ALL=1"
    );
    // Straight to stderr, past the test harness's capture: a skip is said
    // even when the test "passes".
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {test} needs {tool}, which is missing ({why})"
    );
    false
}

/// Whether `program` runs here (`program args` exits 0).
pub fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What `ferro run --ready-file` wrote: the addresses it bound.
#[derive(Clone, Debug, Default)]
pub struct Ready {
    pub telemetry: Option<SocketAddr>,
    /// Receiver → protocol → address.
    pub receivers: BTreeMap<String, BTreeMap<String, SocketAddr>>,
}

impl Ready {
    fn read(path: &Path) -> Option<Ready> {
        let text = std::fs::read(path).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&text)
            .unwrap_or_else(|e| panic!("a torn or invalid ready file {path:?}: {e}"));
        let addr = |v: &serde_json::Value| v.as_str().map(|a| a.parse().unwrap());
        let receivers = v["receivers"]
            .as_object()
            .expect("the ready file lists receivers")
            .iter()
            .map(|(id, protocols)| {
                let protocols = protocols
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(p, a)| (p.clone(), addr(a).unwrap()))
                    .collect();
                (id.clone(), protocols)
            })
            .collect();
        Some(Ready {
            telemetry: addr(&v["telemetry"]),
            receivers,
        })
    }

    /// Where `receiver` listens for `protocol`.
    pub fn receiver(&self, receiver: &str, protocol: &str) -> SocketAddr {
        *self
            .receivers
            .get(receiver)
            .and_then(|p| p.get(protocol))
            .unwrap_or_else(|| panic!("no {protocol} listener of {receiver} in {self:?}"))
    }

    /// The one receiver address for `protocol`, if any receiver has one.
    fn only(&self, protocol: &str) -> Option<SocketAddr> {
        let mut found = self.receivers.values().filter_map(|p| p.get(protocol));
        let first = found.next().copied();
        assert!(
            found.next().is_none(),
            "several receivers listen for {protocol}: use Ferro::listener"
        );
        first
    }
}

/// A ferro process running a config written to a temp dir.
pub struct Ferro {
    child: Child,
    /// The gRPC and HTTP addresses of the receiver that listens for them
    /// (there is one in most tests), as first bound.
    pub grpc: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub telemetry: SocketAddr,
    pub config_path: PathBuf,
    ready_path: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
    /// What ferro printed on stdout (the debug exporter's output).
    stdout: Arc<Mutex<Vec<String>>>,
    /// Whether stdout and stderr have been read to their end.
    read_to_the_end: [Arc<AtomicBool>; 2],
    _dir: tempfile::TempDir,
}

impl Ferro {
    /// Starts `ferro run -c` on `config` and waits until it is ready, as
    /// its ready file says. Give every listener in `config` port 0: the
    /// ready file says which ports ferro bound. What ferro prints on stdout
    /// is kept for [`Ferro::stdout`].
    pub fn start(config: &str) -> Ferro {
        Self::start_with(config, |_| {})
    }

    /// [`Ferro::start`], with `configure` setting up the command first.
    pub fn start_with(config: &str, configure: impl FnOnce(&mut Command)) -> Ferro {
        assert!(
            config.contains("[telemetry]"),
            "give the telemetry listener port 0 ([telemetry] listen = \"127.0.0.1:0\"): the default port is shared by every test"
        );
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("ferro.toml");
        let ready_path = dir.path().join("ready.json");
        std::fs::write(&config_path, config).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_ferro"));
        command
            .args(["run", "--log-format", "json", "-c"])
            .arg(&config_path)
            .arg("--ready-file")
            .arg(&ready_path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        configure(&mut command);
        let mut child = command.spawn().expect("ferro starts");
        let (stdout, stdout_read) = keep_lines(child.stdout.take().unwrap());
        let (logs, logs_read) = keep_lines(child.stderr.take().unwrap());
        let mut ready = None;
        let waiting = told(|| {
            let logs = logs.lock().unwrap().join("\n");
            format!("ferro to write its ready file; its logs:\n{logs}")
        });
        eventually(waiting, WAIT, || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "ferro exited ({status}) before it was ready; logs:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
            ready = Ready::read(&ready_path);
            ready.is_some()
        });
        let ready = ready.unwrap();
        Ferro {
            child,
            grpc: ready.only("grpc"),
            http: ready.only("http"),
            telemetry: ready.telemetry.expect("the telemetry listener's address"),
            config_path,
            ready_path,
            logs,
            stdout,
            read_to_the_end: [stdout_read, logs_read],
            _dir: dir,
        }
    }

    /// What the ready file says now (it is rewritten after each reload).
    pub fn ready(&self) -> Ready {
        Ready::read(&self.ready_path).expect("the ready file")
    }

    /// Where `receiver` listens for `protocol` now.
    pub fn listener(&self, receiver: &str, protocol: &str) -> SocketAddr {
        self.ready().receiver(receiver, protocol)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// The lines printed on stdout so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits until a log line contains `needle`; panics with the logs if none does in `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        self.wait_for_logs(needle, 1, timeout);
    }

    /// Waits until `count` log lines contain `needle`; panics with the logs
    /// if they do not in `timeout`.
    pub fn wait_for_logs(&self, needle: &str, count: usize, timeout: Duration) {
        let what = format!("{count} log lines with {needle:?}");
        eventually(what, timeout, || self.log_count(needle) >= count);
    }

    /// How many log lines contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Sends a signal (`TERM`, `HUP`, `KILL`, …).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Writes `config` and has ferro reload it (SIGHUP); waits until it
    /// says the reload is done, the `n`th since it started, and its ready
    /// file has been rewritten.
    pub fn reload(&self, config: &str, n: usize) {
        std::fs::write(&self.config_path, config).unwrap();
        self.signal("HUP");
        self.wait_for_logs("reload done", n, WAIT);
    }

    /// Waits until ferro exits and all it printed has been read (what was
    /// still in the pipes when it died is in [`Ferro::stdout`] and
    /// [`Ferro::logs`] then); its exit status. (On a timeout the panic kills
    /// it, as it drops.)
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut status = None;
        eventually("ferro to exit", timeout, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        eventually("ferro's output to be read to its end", WAIT, || {
            self.read_to_the_end
                .iter()
                .all(|read| read.load(Ordering::Acquire))
        });
        status.unwrap()
    }

    /// The `/metrics` page.
    pub fn metrics(&self) -> String {
        http_get(self.telemetry, "/metrics").1
    }

    /// Sum of the series of `name` whose label text contains every one of `labels`.
    pub fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        metric_value(&self.metrics(), name, labels)
    }

    /// Waits until the sum of `name`'s series with `labels` passes `check`;
    /// returns it.
    pub fn wait_metric(&self, name: &str, labels: &[&str], check: impl Fn(f64) -> bool) -> f64 {
        let value = std::cell::Cell::new(0.0);
        let what = told(|| format!("{name}{labels:?} to pass the check (last {})", value.get()));
        eventually(what, WAIT, || {
            value.set(self.metric(name, labels));
            check(value.get())
        });
        value.get()
    }

    pub fn rss_bytes(&self) -> u64 {
        ferro::telemetry::process::read_pid(&self.pid().to_string())
            .map(|s| s.rss_bytes)
            .unwrap_or(0)
    }
}

impl Drop for Ferro {
    /// Stops ferro; when the test failed, prints its logs (a failed test's
    /// output is shown), so that no assertion needs to carry them.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("ferro (pid {}) logged:\n{}", self.pid(), self.logs());
        }
    }
}

/// Reads `stream` line by line to its end on a thread of its own (or the
/// process would block on a full pipe), keeping every line; returns the
/// lines and whether the stream has been read to its end.
fn keep_lines(stream: impl Read + Send + 'static) -> (Arc<Mutex<Vec<String>>>, Arc<AtomicBool>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let ended = Arc::new(AtomicBool::new(false));
    let (kept, end) = (lines.clone(), ended.clone());
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            // What a killed ferro printed half of is no line.
            let Some(whole) = line.strip_suffix(b"\n") else {
                break;
            };
            let whole = String::from_utf8_lossy(whole).into_owned();
            kept.lock().unwrap().push(whole);
            line.clear();
        }
        end.store(true, Ordering::Release);
    });
    (lines, ended)
}

/// Sum of the samples of `name` whose labels contain all of `labels`.
pub fn metric_value(page: &str, name: &str, labels: &[&str]) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A minimal HTTP/1.1 GET: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    parse_response(&text)
}

fn parse_response(text: &str) -> (u16, String) {
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        String::from_utf8_lossy(&dechunk(body.as_bytes())).to_string()
    } else {
        body.to_string()
    };
    (status, body)
}

/// A port of 127.0.0.1 bound but not listened on, for a stand-in server
/// that comes up later: until the test calls `listen`, connections to it
/// are refused, as to a server that is down, and no other process can take
/// the port meanwhile.
pub fn reserved_port() -> tokio::net::TcpSocket {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    socket
}

/// The python3 that has the OpenTelemetry SDK (`scripts/test` installs
/// it), or `None` when it lacks it: the test is skipped (see [`have`]).
pub fn python() -> Option<String> {
    python_with(&[
        "opentelemetry.sdk",
        "opentelemetry.exporter.otlp.proto.grpc",
        "opentelemetry.exporter.otlp.proto.http",
    ])
}

/// The python3 (`FERRO_TEST_PYTHON`, else `python3`) if it can import every
/// one of `modules`; else `None`, the test skipped (see [`have`]).
pub fn python_with(modules: &[&str]) -> Option<String> {
    let python = std::env::var("FERRO_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let found = runs(&python, &["-c", &format!("import {}", modules.join(", "))]);
    let why = "`pip install -r tests/python/requirements.txt`; scripts/test does";
    have(&format!("{python} with {}", modules.join(", ")), found, why).then_some(python)
}

pub fn python_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

/// One HTTP/1.1 response read off a kept-alive `stream` (its body by
/// `Content-Length`): status, whether the server said `Connection: close`,
/// and body; `None` if the connection closed or broke first.
pub fn read_response(stream: &mut TcpStream) -> Option<(u16, bool, String)> {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(split) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..split]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:")?.trim().parse().ok())
                .unwrap_or(0);
            let body = &got[split + 4..];
            if body.len() >= len {
                let status = head.split(' ').nth(1)?.parse().ok()?;
                let close = head.lines().any(|l| l == "connection: close");
                return Some((status, close, String::from_utf8_lossy(&body[..len]).into()));
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// A minimal HTTP/1.1 POST: (status, headers lower-cased, body bytes).
pub fn http_post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) before reading the whole body.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16)
                .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
    out
}

/// Forwards every connection `listener` accepts to `target`: a port a test
/// held down (see [`reserved_port`]) becomes a real server that started
/// elsewhere, on a port it chose itself.
pub fn forward(listener: tokio::net::TcpListener, target: SocketAddr) {
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
}
