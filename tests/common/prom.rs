//! Real Prometheus peers for the metrics tests: Debian's `prometheus` (with
//! its remote-write receiver on) and `prometheus-node-exporter`, started on
//! 127.0.0.1:0 (the port they bound read from their log) in a temp dir and
//! stopped when dropped.

use super::http_get;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

pub struct Process {
    child: Child,
    pub addr: SocketAddr,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `binary` is installed; if not, the test is skipped (see
/// [`super::have`]).
pub fn installed(binary: &str) -> bool {
    let found = Command::new("which")
        .arg(binary)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    super::have(
        binary,
        found,
        "scripts/test installs Debian's prometheus and prometheus-node-exporter",
    )
}

/// Starts `command` (a Prometheus program told to listen on
/// `127.0.0.1:0`) and reads the address it bound from its log line
/// `msg="Listening on" address=…`; waits until `path` answers 200.
fn spawn(mut command: Command, path: &str, dir: Option<tempfile::TempDir>) -> Process {
    let name = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{name} starts: {e}"));
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        // Read to the end, or the program would block on a full pipe.
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let addr = line
                .contains("msg=\"Listening on\"")
                .then(|| {
                    line.split("address=")
                        .nth(1)?
                        .split(' ')
                        .next()?
                        .parse()
                        .ok()
                })
                .flatten();
            if let Some(addr) = addr {
                let _ = tx.send(addr);
            }
        }
    });
    let addr: SocketAddr = rx
        .recv_timeout(super::WAIT)
        .unwrap_or_else(|_| panic!("{name} did not say where it listens"));
    super::eventually(
        format!("{name} to answer {path} on {addr}"),
        super::WAIT,
        || std::net::TcpStream::connect(addr).is_ok() && http_get(addr, path).0 == 200,
    );
    Process {
        child,
        addr,
        _dir: dir,
    }
}

/// Prometheus with `--web.enable-remote-write-receiver`, scraping nothing,
/// or `None` (skipped) where it is not installed.
pub fn prometheus() -> Option<Process> {
    if !installed("prometheus") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1h\n").unwrap();
    let mut command = Command::new("prometheus");
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg("--web.listen-address=127.0.0.1:0")
        .arg("--web.enable-remote-write-receiver")
        .arg("--enable-feature=native-histograms");
    Some(spawn(command, "/-/ready", Some(dir)))
}

/// node-exporter on a port of its own, or `None` (skipped) where it is not
/// installed.
pub fn node_exporter() -> Option<Process> {
    if !installed("prometheus-node-exporter") {
        return None;
    }
    let mut command = Command::new("prometheus-node-exporter");
    command.arg("--web.listen-address=127.0.0.1:0");
    Some(spawn(command, "/metrics", None))
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The samples of a text-format page (node-exporter's) as Prometheus
/// stores them: each series' sorted label pairs, `__name__` among them and
/// labels with an empty value left out (an empty value is an absent
/// label), with its value.
pub fn page_samples(page: &str) -> Vec<(Vec<(String, String)>, f64)> {
    use ferro::prom::parse::{Entry, Format, Parser};
    let mut out = Vec::new();
    let mut parser = Parser::new(page.as_bytes(), Format::Text004);
    while let Some(entry) = parser.next() {
        let entry = entry.unwrap_or_else(|e| panic!("the page parses: {e}"));
        if let Entry::Sample(sample) = entry {
            let mut pairs: Vec<(String, String)> = sample
                .labels
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            pairs.push(("__name__".into(), sample.name.to_string()));
            pairs.sort();
            out.push((pairs, sample.value));
        }
    }
    out
}

/// `GET path` of Prometheus' HTTP API, which must answer 200: its `data`.
fn api(prometheus: SocketAddr, path: &str) -> serde_json::Value {
    let (status, body) = http_get(prometheus, path);
    assert_eq!(status, 200, "{body}");
    let mut json: serde_json::Value = serde_json::from_str(&body).unwrap();
    json["data"].take()
}

/// The result of the instant query `promql`, now or at `time` (Unix seconds).
fn query_result(prometheus: SocketAddr, promql: &str, time: Option<f64>) -> serde_json::Value {
    let at = time.map_or(String::new(), |t| format!("&time={t:.3}"));
    api(
        prometheus,
        &format!("/api/v1/query?query={}{at}", encode(promql)),
    )["result"]
        .take()
}

/// An instant PromQL query evaluated at `time` (Unix seconds): the first
/// result's value, if there is one.
pub fn query_at(prometheus: SocketAddr, promql: &str, time: f64) -> Option<f64> {
    query_result(prometheus, promql, Some(time))[0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
}

/// How many samples the range selector `selector` (`{job="x"}[10m]`)
/// holds, evaluated at `time`, over all its series.
pub fn samples_at(prometheus: SocketAddr, selector: &str, time: f64) -> f64 {
    query_result(prometheus, selector, Some(time))
        .as_array()
        .unwrap()
        .iter()
        .map(|series| series["values"].as_array().unwrap().len() as f64)
        .sum()
}

/// Runs a PromQL instant query; returns the result vector as (labels, value).
pub fn query(
    prometheus: SocketAddr,
    promql: &str,
) -> Vec<(serde_json::Map<String, serde_json::Value>, f64)> {
    query_result(prometheus, promql, None)
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let labels = r["metric"].as_object().unwrap().clone();
            let value = r["value"][1]
                .as_str()
                .unwrap()
                .parse::<f64>()
                .unwrap_or(f64::NAN);
            (labels, value)
        })
        .collect()
}

/// Every series Prometheus has for `selector`, as sorted `name=value` lists.
pub fn series(prometheus: SocketAddr, selector: &str) -> Vec<Vec<(String, String)>> {
    let data = api(
        prometheus,
        &format!("/api/v1/series?match[]={}", encode(selector)),
    );
    let mut out: Vec<Vec<(String, String)>> = data
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let mut pairs: Vec<(String, String)> = s
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            pairs.sort();
            pairs
        })
        .collect();
    out.sort();
    out
}

/// A scrape target serving whatever page the test sets, with a content type.
pub struct PageServer {
    pub addr: SocketAddr,
    page: std::sync::Arc<std::sync::Mutex<(String, Vec<u8>)>>,
    pub scrapes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl PageServer {
    pub async fn start(content_type: &str, page: &str) -> PageServer {
        use std::sync::atomic::Ordering;
        let state = std::sync::Arc::new(std::sync::Mutex::new((
            content_type.to_string(),
            page.as_bytes().to_vec(),
        )));
        let scrapes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (s, c) = (state.clone(), scrapes.clone());
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let (s, c) = (s.clone(), c.clone());
                async move {
                    c.fetch_add(1, Ordering::Relaxed);
                    let (content_type, body) = s.lock().unwrap().clone();
                    ([(axum::http::header::CONTENT_TYPE, content_type)], body)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        PageServer {
            addr,
            page: state,
            scrapes,
        }
    }

    pub fn set(&self, content_type: &str, body: impl Into<Vec<u8>>) {
        *self.page.lock().unwrap() = (content_type.to_string(), body.into());
    }
}

/// A remote-write 2.0 receiver for tests. No Prometheus from the registries
/// here speaks 2.0 (Debian's is 2.42), so this server decodes the real wire
/// format (snappy block + `io.prometheus.write.v2.Request`) and enforces the
/// spec's receiver rules: the 2.0 content type (else 415), `symbols[0] == ""`,
/// `labels_refs` in pairs, in range and sorted by name, `__name__` present,
/// samples of a series never older than the last one written (else 400 "out of
/// order sample"); and answers with the `X-Prometheus-Remote-Write-*-Written`
/// headers.
pub struct Rw2Server {
    pub addr: SocketAddr,
    pub received: std::sync::Arc<std::sync::Mutex<Rw2Received>>,
}

/// One time series as the server resolved it from the symbol table.
#[derive(Debug)]
pub struct Rw2Series {
    pub labels: Vec<(String, String)>,
    /// (timestamp ms, value)
    pub samples: Vec<(i64, f64)>,
    /// The metadata's metric type number.
    pub kind: i32,
    pub help: String,
}

#[derive(Default, Debug)]
pub struct Rw2Received {
    pub series: Vec<Rw2Series>,
    /// The `X-Scope-OrgID` of the request each of `series` came in.
    pub series_tenants: Vec<Option<String>>,
    pub requests: usize,
    pub rejected: usize,
    last: std::collections::HashMap<Vec<(String, String)>, i64>,
}

impl Rw2Server {
    pub async fn start() -> Rw2Server {
        use axum::http::{HeaderMap, StatusCode};
        use prost::Message;
        let received = std::sync::Arc::new(std::sync::Mutex::new(Rw2Received::default()));
        let state = received.clone();
        let app = axum::Router::new().route(
            "/api/v1/write",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let state = state.clone();
                async move {
                    let mut out = HeaderMap::new();
                    let content_type = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    if content_type != "application/x-protobuf;proto=io.prometheus.write.v2.Request"
                    {
                        return (
                            StatusCode::UNSUPPORTED_MEDIA_TYPE,
                            out,
                            format!("unsupported content type {content_type}"),
                        );
                    }
                    if headers
                        .get("content-encoding")
                        .and_then(|v| v.to_str().ok())
                        != Some("snappy")
                    {
                        return (
                            StatusCode::BAD_REQUEST,
                            out,
                            "content-encoding must be snappy".into(),
                        );
                    }
                    let Ok(raw) = snap::raw::Decoder::new().decompress_vec(&body) else {
                        return (StatusCode::BAD_REQUEST, out, "bad snappy".into());
                    };
                    let Ok(request) = ferro_proto::write_v2::Request::decode(raw.as_slice()) else {
                        return (StatusCode::BAD_REQUEST, out, "bad protobuf".into());
                    };
                    if request.symbols.first().map(String::as_str) != Some("") {
                        return (
                            StatusCode::BAD_REQUEST,
                            out,
                            "symbols[0] must be empty".into(),
                        );
                    }
                    let tenant = headers
                        .get("x-scope-orgid")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let mut received = state.lock().unwrap();
                    received.requests += 1;
                    let mut written = 0;
                    for ts in &request.timeseries {
                        let refs = &ts.labels_refs;
                        if refs.len() % 2 != 0
                            || refs.iter().any(|&r| r as usize >= request.symbols.len())
                        {
                            return (StatusCode::BAD_REQUEST, out, "bad labels_refs".into());
                        }
                        let labels: Vec<(String, String)> = refs
                            .chunks(2)
                            .map(|p| {
                                (
                                    request.symbols[p[0] as usize].clone(),
                                    request.symbols[p[1] as usize].clone(),
                                )
                            })
                            .collect();
                        if labels.windows(2).any(|w| w[0].0 >= w[1].0)
                            || !labels.iter().any(|(n, _)| n == "__name__")
                        {
                            return (
                                StatusCode::BAD_REQUEST,
                                out,
                                "labels must be sorted, unique and have __name__".into(),
                            );
                        }
                        let mut samples = Vec::new();
                        for sample in &ts.samples {
                            let last = received.last.get(&labels).copied().unwrap_or(i64::MIN);
                            if sample.timestamp < last {
                                received.rejected += 1;
                                return (
                                    StatusCode::BAD_REQUEST,
                                    out,
                                    "out of order sample".into(),
                                );
                            }
                            received.last.insert(labels.clone(), sample.timestamp);
                            samples.push((sample.timestamp, sample.value));
                            written += 1;
                        }
                        let meta = ts.metadata.unwrap_or_default();
                        let help = request
                            .symbols
                            .get(meta.help_ref as usize)
                            .cloned()
                            .unwrap_or_default();
                        received.series_tenants.push(tenant.clone());
                        received.series.push(Rw2Series {
                            labels,
                            samples,
                            kind: meta.r#type,
                            help,
                        });
                    }
                    out.insert("X-Prometheus-Remote-Write-Samples-Written", written.into());
                    out.insert("X-Prometheus-Remote-Write-Histograms-Written", 0.into());
                    out.insert("X-Prometheus-Remote-Write-Exemplars-Written", 0.into());
                    (StatusCode::NO_CONTENT, out, String::new())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Rw2Server { addr, received }
    }
}
