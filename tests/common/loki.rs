//! A stand-in for Loki in the logs tests. No Loki can be installed from the
//! registries here, so this server speaks Loki's push API on
//! `POST /loki/api/v1/push` (127.0.0.1, a free port) and enforces the rules of
//! Loki's distributor and ingester that a client can break, answering with
//! Loki's status codes and message templates (`pkg/validation/validate.go`,
//! `pkg/ingester/stream.go`; timestamps in messages are shown in nanoseconds):
//!
//! - body: `application/json` is Loki's JSON push body (optionally gzipped);
//!   anything else is snappy-block `logproto.PushRequest` (Content-Encoding
//!   empty or `snappy`). Undecodable → 400.
//! - labels: the string must parse as `{name="value", ...}` (Go string
//!   escapes, names `[a-zA-Z_][a-zA-Z0-9_]*`, `=` only) → else 400 "Error
//!   parsing labels"; at least one pair; no duplicate names. Label order does
//!   not matter: streams are keyed by their sorted pairs, as Loki does.
//! - lines longer than `max_line_size` → 400 "Max entry size ... exceeded".
//! - per stream and tenant, against what it already stored: an entry older
//!   than the last stored one → 400 "entry out of order" (Loki with
//!   `unordered_writes = false`, the strictest setting, so ordering bugs show);
//!   the same timestamp and line as the last stored one → dropped as a
//!   duplicate, as Loki does; the same timestamp with another line → stored.
//! - like Loki, valid entries of a request are stored even when others are
//!   refused, and the answer is 400 with the last error.
//! - with [`Limits::unordered_writes`] (Loki's default), entries may come
//!   in any order within an hour of the stream's newest ("entry too far
//!   behind" past it), and one with the timestamp and line of any stored
//!   entry is dropped as a duplicate.
//! - `X-Scope-OrgID` is recorded per request; with `require_tenant` a request
//!   without it gets 401 "no org id", else it goes to tenant `fake`.
//!
//! [`Mode`] switches it to answer 503 or 429 (with `Retry-After: 1`) without
//! storing anything, or to answer slowly.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use ferro_proto::logproto;
use prost::Message;
use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Accept,
    /// 503 with `Retry-After: 1`, nothing stored.
    Unavailable,
    /// 429 with `Retry-After: 1`, nothing stored.
    TooManyRequests,
    /// Answer after this long. A client that gives up first cancels the
    /// request, which then stores nothing.
    Slow(Duration),
}

#[derive(Clone, Debug)]
pub struct Limits {
    /// Longest line in bytes; 0 for no limit. Loki's default is 256KB.
    pub max_line_size: usize,
    /// Answer 401 to requests without `X-Scope-OrgID` (Loki with `auth_enabled`).
    pub require_tenant: bool,
    /// Loki's `unordered_writes` (its default since 2.4): an entry older
    /// than the stream's newest is stored unless more than an hour older
    /// (`max_chunk_age / 2`, "entry too far behind"); the same timestamp
    /// and line as any stored entry is a duplicate. Off here by default,
    /// so that ordering bugs show.
    pub unordered_writes: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_line_size: 256 * 1024,
            require_tenant: false,
            unordered_writes: false,
        }
    }
}

/// How far behind a stream's newest entry an unordered write may be.
const UNORDERED_WINDOW_NS: i64 = 3600 * 1_000_000_000;

/// A stored entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    pub timestamp_ns: i64,
    pub line: String,
    pub metadata: Vec<(String, String)>,
}

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct Request {
    pub tenant: Option<String>,
    pub content_type: String,
    pub streams: usize,
    pub entries: usize,
    pub status: u16,
}

/// A stream: its tenant and its sorted label pairs.
pub type StreamKey = (String, Vec<(String, String)>);

#[derive(Default, Debug)]
pub struct Received {
    /// Stored entries per stream, in the order stored.
    pub streams: BTreeMap<StreamKey, Vec<Stored>>,
    pub requests: Vec<Request>,
    /// Messages of the 4xx answers, in order.
    pub errors: Vec<String>,
    pub duplicates: usize,
}

impl Received {
    pub fn entry_count(&self) -> usize {
        self.streams.values().map(Vec::len).sum()
    }
}

struct ServerState {
    mode: Mutex<Mode>,
    limits: Limits,
    received: Mutex<Received>,
}

pub struct LokiServer {
    pub addr: SocketAddr,
    state: Arc<ServerState>,
}

impl LokiServer {
    pub async fn start() -> LokiServer {
        Self::start_with(Limits::default()).await
    }

    pub async fn start_with(limits: Limits) -> LokiServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, limits)
    }

    /// The stand-in on `listener`: a port the test held down until now.
    pub fn start_on(listener: tokio::net::TcpListener) -> LokiServer {
        Self::serve(listener, Limits::default())
    }

    fn serve(listener: tokio::net::TcpListener, limits: Limits) -> LokiServer {
        let state = Arc::new(ServerState {
            mode: Mutex::new(Mode::Accept),
            limits,
            received: Mutex::default(),
        });
        let app = axum::Router::new()
            .route("/loki/api/v1/push", axum::routing::post(push))
            .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
            .with_state(state.clone());
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        LokiServer { addr, state }
    }

    /// The push URL.
    pub fn url(&self) -> String {
        format!("http://{}/loki/api/v1/push", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn with<R>(&self, f: impl FnOnce(&Received) -> R) -> R {
        f(&self.state.received.lock().unwrap())
    }

    /// The stored entries of one stream.
    pub fn entries(&self, tenant: &str, labels: &[(&str, &str)]) -> Vec<Stored> {
        let mut pairs: Vec<(String, String)> = labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        pairs.sort();
        self.with(|r| {
            r.streams
                .get(&(tenant.to_string(), pairs))
                .cloned()
                .unwrap_or_default()
        })
    }

    /// Waits until at least `n` entries are stored (panics after
    /// `timeout`); returns how many are.
    pub async fn wait_for_entries(&self, n: usize, timeout: Duration) -> usize {
        let count = || self.with(Received::entry_count);
        let what = super::told(|| format!("{n} entries at the Loki stand-in (have {})", count()));
        super::eventually_async(what, timeout, || count() >= n).await;
        count()
    }
}

/// A stream as decoded, before validation.
struct Incoming {
    /// The label string as sent (protobuf) or built from the map (JSON).
    labels: String,
    /// Parsed pairs for JSON, whose labels come as a map.
    pairs: Option<Vec<(String, String)>>,
    entries: Vec<Stored>,
}

async fn push(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, String) {
    let mut out = HeaderMap::new();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let tenant = header("x-scope-orgid");
    let content_type = header("content-type").unwrap_or_default();
    let mode = *state.mode.lock().unwrap();
    match mode {
        Mode::Unavailable | Mode::TooManyRequests => {
            out.insert("retry-after", "1".parse().unwrap());
            let status = if mode == Mode::Unavailable {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::TOO_MANY_REQUESTS
            };
            state.received.lock().unwrap().requests.push(Request {
                tenant,
                content_type,
                streams: 0,
                entries: 0,
                status: status.as_u16(),
            });
            return (status, out, "not now".into());
        }
        Mode::Slow(delay) => tokio::time::sleep(delay).await,
        Mode::Accept => {}
    }
    let decoded = if content_type.starts_with("application/json") {
        decode_json(&body, header("content-encoding").as_deref())
    } else {
        decode_protobuf(&body, header("content-encoding").as_deref())
    };
    let streams = match decoded {
        Ok(streams) => streams,
        Err((status, message)) => return (status, out, message),
    };
    let mut received = state.received.lock().unwrap();
    let mut request = Request {
        tenant: tenant.clone(),
        content_type,
        streams: streams.len(),
        entries: streams.iter().map(|s| s.entries.len()).sum(),
        status: 204,
    };
    if tenant.is_none() && state.limits.require_tenant {
        request.status = 401;
        received.requests.push(request);
        received.errors.push("no org id".into());
        return (StatusCode::UNAUTHORIZED, out, "no org id\n".into());
    }
    let tenant = tenant.unwrap_or_else(|| "fake".to_string());
    let mut last_error = None;
    for stream in streams {
        if let Err(e) = store(&mut received, &state.limits, &tenant, stream) {
            last_error = Some(e);
        }
    }
    match last_error {
        Some(message) => {
            request.status = 400;
            received.requests.push(request);
            received.errors.push(message.clone());
            out.insert("content-type", "text/plain; charset=utf-8".parse().unwrap());
            (StatusCode::BAD_REQUEST, out, message)
        }
        None => {
            received.requests.push(request);
            (StatusCode::NO_CONTENT, out, String::new())
        }
    }
}

/// Validates one stream as the distributor and ingester do and stores what passes.
fn store(
    received: &mut Received,
    limits: &Limits,
    tenant: &str,
    stream: Incoming,
) -> Result<(), String> {
    let pairs = match stream.pairs {
        Some(pairs) => pairs,
        None => parse_labels(&stream.labels)
            .map_err(|e| format!("Error parsing labels '{}' with error: {e}", stream.labels))?,
    };
    if let Some((name, _)) = pairs.iter().find(|(n, _)| !valid_label_name(n)) {
        return Err(format!(
            "Error parsing labels '{}' with error: invalid label name {name:?}",
            stream.labels
        ));
    }
    if pairs.is_empty() {
        return Err("error at least one label pair is required per stream".into());
    }
    let mut sorted = pairs;
    sorted.sort();
    if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!(
            "stream '{}' has duplicate label name: '{}'",
            stream.labels, w[0].0
        ));
    }
    let canonical = render(&sorted);
    let mut last_error = None;
    let mut valid = Vec::new();
    for entry in stream.entries {
        if limits.max_line_size > 0 && entry.line.len() > limits.max_line_size {
            last_error = Some(format!(
                "Max entry size '{}' bytes exceeded for stream '{canonical}' while adding an entry with length '{}' bytes",
                limits.max_line_size,
                entry.line.len()
            ));
            continue;
        }
        valid.push(entry);
    }
    let total = valid.len();
    let stored = received
        .streams
        .entry((tenant.to_string(), sorted))
        .or_default();
    let mut failed = Vec::new();
    let mut duplicates = 0;
    for entry in valid {
        if limits.unordered_writes {
            let newest = stored.iter().map(|e| e.timestamp_ns).max();
            if newest.is_some_and(|n| entry.timestamp_ns < n - UNORDERED_WINDOW_NS) {
                failed.push(entry.timestamp_ns);
            } else if stored
                .iter()
                .any(|e| e.timestamp_ns == entry.timestamp_ns && e.line == entry.line)
            {
                duplicates += 1;
            } else {
                stored.push(entry);
            }
            continue;
        }
        if let Some(last) = stored.last() {
            if entry.timestamp_ns < last.timestamp_ns {
                failed.push(entry.timestamp_ns);
                continue;
            }
            if entry.timestamp_ns == last.timestamp_ns && entry.line == last.line {
                duplicates += 1;
                continue;
            }
        }
        stored.push(entry);
    }
    received.duplicates += duplicates;
    if !failed.is_empty() {
        let mut message = String::new();
        for ts in failed.iter().take(10) {
            message.push_str(&format!(
                "entry with timestamp {ts} ignored, reason: 'entry out of order',\n"
            ));
        }
        message.push_str(&format!(
            "user '{tenant}', total ignored: {} out of {total} for stream: {canonical}",
            failed.len()
        ));
        last_error = Some(message);
    }
    last_error.map_or(Ok(()), Err)
}

fn decode_protobuf(
    body: &[u8],
    encoding: Option<&str>,
) -> Result<Vec<Incoming>, (StatusCode, String)> {
    if !matches!(encoding, None | Some("") | Some("snappy")) {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Encoding {encoding:?} not supported"),
        ));
    }
    let bad = |e: String| (StatusCode::BAD_REQUEST, e);
    let len = snap::raw::decompress_len(body).map_err(|e| bad(format!("snappy: {e}")))?;
    if len > 100 << 20 {
        return Err(bad(format!("request body too large: {len} bytes")));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| bad(format!("snappy: {e}")))?;
    let request =
        logproto::PushRequest::decode(raw.as_slice()).map_err(|e| bad(format!("proto: {e}")))?;
    Ok(request
        .streams
        .into_iter()
        .map(|s| Incoming {
            labels: s.labels,
            pairs: None,
            entries: s
                .entries
                .into_iter()
                .map(|e| {
                    let ts = e.timestamp.unwrap_or_default();
                    Stored {
                        timestamp_ns: ts.seconds * 1_000_000_000 + i64::from(ts.nanos),
                        line: e.line,
                        metadata: e
                            .structured_metadata
                            .into_iter()
                            .map(|p| (p.name, p.value))
                            .collect(),
                    }
                })
                .collect(),
        })
        .collect())
}

fn decode_json(body: &[u8], encoding: Option<&str>) -> Result<Vec<Incoming>, (StatusCode, String)> {
    let bad = |e: String| (StatusCode::BAD_REQUEST, e);
    let body = match encoding {
        None | Some("") => body.to_vec(),
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .take(100 << 20)
                .read_to_end(&mut out)
                .map_err(|e| bad(format!("gzip: {e}")))?;
            out
        }
        Some(other) => {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Encoding {other:?} not supported"),
            ));
        }
    };
    let json: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| bad(format!("json: {e}")))?;
    let streams = json["streams"]
        .as_array()
        .ok_or_else(|| bad("json: streams must be an array".into()))?;
    let text = |v: &serde_json::Value, what: &str| {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| bad(format!("json: {what} must be a string")))
    };
    let mut out = Vec::new();
    for stream in streams {
        let map = stream["stream"]
            .as_object()
            .ok_or_else(|| bad("json: stream must be an object".into()))?;
        let mut pairs = Vec::new();
        for (name, value) in map {
            pairs.push((name.clone(), text(value, "a label value")?));
        }
        pairs.sort();
        let mut entries = Vec::new();
        for value in stream["values"]
            .as_array()
            .ok_or_else(|| bad("json: values must be an array".into()))?
        {
            let parts = value
                .as_array()
                .filter(|p| p.len() == 2 || p.len() == 3)
                .ok_or_else(|| {
                    bad("json: a value is [ts, line] or [ts, line, {metadata}]".into())
                })?;
            let timestamp_ns = text(&parts[0], "a timestamp")?
                .parse::<i64>()
                .map_err(|e| bad(format!("json: timestamp: {e}")))?;
            let mut metadata = Vec::new();
            if let Some(object) = parts.get(2) {
                let object = object
                    .as_object()
                    .ok_or_else(|| bad("json: structured metadata must be an object".into()))?;
                for (name, value) in object {
                    metadata.push((name.clone(), text(value, "a metadata value")?));
                }
            }
            entries.push(Stored {
                timestamp_ns,
                line: text(&parts[1], "a line")?,
                metadata,
            });
        }
        out.push(Incoming {
            labels: render(&pairs),
            pairs: Some(pairs),
            entries,
        });
    }
    Ok(out)
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Prometheus' notation of sorted pairs, as Loki shows a stream in messages.
fn render(pairs: &[(String, String)]) -> String {
    let body: Vec<String> = pairs
        .iter()
        .map(|(n, v)| format!("{n}={}", serde_json::to_string(v).unwrap()))
        .collect();
    format!("{{{}}}", body.join(", "))
}

/// Parses a label string `{a="1", b="2"}` the way Loki's label parser takes
/// it: names are identifiers, only `=`, values double-quoted Go strings.
pub fn parse_labels(text: &str) -> Result<Vec<(String, String)>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut at = 0;
    let skip_space = |at: &mut usize| {
        while *at < chars.len() && chars[*at].is_whitespace() {
            *at += 1;
        }
    };
    let expect = |at: &mut usize, c: char| -> Result<(), String> {
        if chars.get(*at) == Some(&c) {
            *at += 1;
            Ok(())
        } else {
            Err(format!(
                "1:{}: parse error: unexpected {}, expected {c:?}",
                *at + 1,
                chars
                    .get(*at)
                    .map_or("end of input".into(), |c| format!("{c:?}"))
            ))
        }
    };
    let mut pairs = Vec::new();
    skip_space(&mut at);
    expect(&mut at, '{')?;
    loop {
        skip_space(&mut at);
        if chars.get(at) == Some(&'}') {
            at += 1;
            break;
        }
        let start = at;
        while at < chars.len() && (chars[at].is_ascii_alphanumeric() || chars[at] == '_') {
            at += 1;
        }
        let name: String = chars[start..at].iter().collect();
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("1:{}: parse error: expected label name", start + 1));
        }
        skip_space(&mut at);
        expect(&mut at, '=')?;
        if matches!(chars.get(at), Some('~' | '=')) {
            return Err(format!("1:{}: parse error: only = is allowed", at + 1));
        }
        skip_space(&mut at);
        expect(&mut at, '"')?;
        let mut value = String::new();
        loop {
            let Some(&c) = chars.get(at) else {
                return Err("parse error: unterminated quoted string".into());
            };
            at += 1;
            match c {
                '"' => break,
                '\n' => return Err("parse error: newline in string".into()),
                '\\' => {
                    let Some(&e) = chars.get(at) else {
                        return Err("parse error: unterminated quoted string".into());
                    };
                    at += 1;
                    match e {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        '\'' => value.push('\''),
                        'n' => value.push('\n'),
                        't' => value.push('\t'),
                        'r' => value.push('\r'),
                        'a' => value.push('\x07'),
                        'b' => value.push('\x08'),
                        'f' => value.push('\x0c'),
                        'v' => value.push('\x0b'),
                        'x' | 'u' | 'U' => {
                            let digits = match e {
                                'x' => 2,
                                'u' => 4,
                                _ => 8,
                            };
                            let hex: String = chars.iter().skip(at).take(digits).collect();
                            let code = u32::from_str_radix(&hex, 16)
                                .ok()
                                .filter(|_| hex.len() == digits)
                                .and_then(char::from_u32)
                                .ok_or_else(|| format!("parse error: invalid escape \\{e}{hex}"))?;
                            value.push(code);
                            at += digits;
                        }
                        other => {
                            return Err(format!("parse error: unknown escape sequence \\{other}"));
                        }
                    }
                }
                c => value.push(c),
            }
        }
        pairs.push((name, value));
        skip_space(&mut at);
        match chars.get(at) {
            Some(',') => at += 1,
            Some('}') => {}
            _ => expect(&mut at, '}')?,
        }
    }
    skip_space(&mut at);
    if at != chars.len() {
        return Err(format!(
            "1:{}: parse error: unexpected text after }}",
            at + 1
        ));
    }
    Ok(pairs)
}
