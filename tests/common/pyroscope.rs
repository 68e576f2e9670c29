//! A stand-in for Pyroscope in the profiles tests. No Pyroscope server can be
//! installed from the registries here, so this server speaks Pyroscope's
//! push API as its distributor does and enforces what a Pyroscope server
//! checks before storing a profile:
//!
//! - `POST /push.v1.PusherService/Push` is a connect unary call: the
//!   `Content-Type` must be `application/proto` (else 415), the body a
//!   `push.v1.PushRequest` (field numbers from Pyroscope's
//!   `api/push/v1/push.proto`), optionally `Content-Encoding: gzip`;
//!   errors are connect's JSON `{"code", "message"}`.
//! - labels, as `pkg/validation/validate.go` `ValidateLabels` with
//!   Pyroscope's default limits: at least one pair; at most 30 names;
//!   `__name__` a valid metric name; `service_name` present; names valid
//!   Prometheus label names of at most 1024 bytes, values at most 2048; no
//!   duplicate names → else 400 `invalid_argument`. Names may hold dots
//!   (`[a-zA-Z_][a-zA-Z0-9_.]*`): Pyroscope takes the `otel.scope.name` and
//!   `process.runtime.name` labels its own SDKs send.
//! - every `raw_profile` must be pprof (gzip'd or plain) that decodes as
//!   `perftools.profiles.Profile`, at most 4MiB decompressed
//!   (`max_profile_size_bytes`), with non-zero location and function ids,
//!   string-table indices in range and no `-` in a sample type, as
//!   `ValidateProfile` and its parser require → else 400.
//! - `POST /ingest?name=...&from=&until=&format=pprof&spyName=` (the older
//!   API), as Pyroscope 1.x's `pkg/og/convert/pprof` takes it: the body is
//!   the profile, or a `multipart/form-data` form with a `profile` part, an
//!   optional `sample_type_config` part (JSON) and no `prev_profile` part;
//!   the stored labels are the key's (reserved `__` ones left out),
//!   `service_name`, `__name__` from the sample types and their display
//!   names (`metricName`), `__delta__="false"` and `pyroscope_spy`, with
//!   no name twice.
//! - `X-Scope-OrgID` is recorded per request.
//!
//! A request with any invalid part stores nothing, as Pyroscope refuses the
//! whole push. [`Mode`] switches it to answer 503 or 429 without storing.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ferro_proto::perftools::profiles::Profile as Pprof;
use ferro_proto::push::v1::PushRequest;
use prost::Message;
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
}

/// A stored profile, decoded.
#[derive(Clone, Debug)]
pub struct Stored {
    pub tenant: Option<String>,
    /// Sorted label pairs.
    pub labels: Vec<(String, String)>,
    pub profile: Pprof,
    pub id: String,
    /// `from`/`until` of an `/ingest` request, seconds.
    pub range: Option<(i64, i64)>,
    /// The `sample_type_config` of a multipart `/ingest` request.
    pub sample_type_config: Option<serde_json::Value>,
}

impl Stored {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `type/unit` of each sample type.
    pub fn sample_types(&self) -> Vec<String> {
        let s = &self.profile.string_table;
        self.profile
            .sample_type
            .iter()
            .map(|t| format!("{}/{}", s[t.r#type as usize], s[t.unit as usize]))
            .collect()
    }
}

#[derive(Default)]
pub struct Received {
    pub stored: Vec<Stored>,
    /// Requests answered with an error, with the answer.
    pub refused: Vec<(u16, String)>,
    pub requests: usize,
}

pub struct PyroscopeServer {
    pub addr: SocketAddr,
    state: Arc<(Mutex<Received>, Mutex<Mode>)>,
}

impl PyroscopeServer {
    pub async fn start() -> PyroscopeServer {
        let state = Arc::new((Mutex::new(Received::default()), Mutex::new(Mode::Accept)));
        let app = axum::Router::new()
            .route("/push.v1.PusherService/Push", axum::routing::post(push))
            .route("/ingest", axum::routing::post(ingest))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        PyroscopeServer { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.1.lock().unwrap() = mode;
    }

    pub fn with<R>(&self, f: impl FnOnce(&Received) -> R) -> R {
        f(&self.state.0.lock().unwrap())
    }

    pub fn stored(&self) -> Vec<Stored> {
        self.with(|r| r.stored.clone())
    }

    /// Waits until at least `n` profiles are stored that satisfy `pred`
    /// (panics after `timeout`); returns them.
    pub async fn wait_for(
        &self,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&Stored) -> bool,
    ) -> Vec<Stored> {
        let found = || -> Vec<Stored> { self.stored().into_iter().filter(|s| pred(s)).collect() };
        let what = super::told(|| {
            format!(
                "{n} matching profiles at the Pyroscope stand-in (have {} of {} stored)",
                found().len(),
                self.stored().len()
            )
        });
        super::eventually_async(what, timeout, || found().len() >= n).await;
        found()
    }
}

type AppState = Arc<(Mutex<Received>, Mutex<Mode>)>;

fn connect_error(status: StatusCode, code: &str, message: String) -> Response {
    let body = serde_json::json!({"code": code, "message": message}).to_string();
    (status, [("content-type", "application/json")], body).into_response()
}

fn refused_by_mode(state: &AppState) -> Option<Response> {
    let mode = *state.1.lock().unwrap();
    let (status, code) = match mode {
        Mode::Accept => return None,
        Mode::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        Mode::TooManyRequests => (StatusCode::TOO_MANY_REQUESTS, "resource_exhausted"),
    };
    let mut response = connect_error(status, code, format!("{mode:?}"));
    response
        .headers_mut()
        .insert("retry-after", "1".parse().unwrap());
    Some(response)
}

async fn push(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    state.0.lock().unwrap().requests += 1;
    if let Some(response) = refused_by_mode(&state) {
        return response;
    }
    let result = check_push(&headers, &body);
    let mut received = state.0.lock().unwrap();
    match result {
        Ok(stored) => {
            received.stored.extend(stored);
            (
                StatusCode::OK,
                [("content-type", "application/proto")],
                Vec::new(),
            )
                .into_response()
        }
        Err((status, message)) => {
            received.refused.push((status.as_u16(), message.clone()));
            let code = if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
                "unknown"
            } else {
                "invalid_argument"
            };
            connect_error(status, code, message)
        }
    }
}

fn tenant(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-scope-orgid")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn check_push(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Stored>, (StatusCode, String)> {
    let bad = |m: String| (StatusCode::BAD_REQUEST, m);
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type != "application/proto" {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("invalid content-type {content_type:?}"),
        ));
    }
    let gzip = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    let body = if gzip {
        gunzip(body).map_err(bad)?
    } else {
        body.to_vec()
    };
    let request = PushRequest::decode(body.as_slice()).map_err(|e| bad(format!("decode: {e}")))?;
    let mut stored = Vec::new();
    for series in request.series {
        let mut labels: Vec<(String, String)> = series
            .labels
            .into_iter()
            .map(|l| (l.name, l.value))
            .collect();
        validate_labels(&mut labels).map_err(bad)?;
        for sample in series.samples {
            let profile = decode_profile(&sample.raw_profile).map_err(bad)?;
            stored.push(Stored {
                tenant: tenant(headers),
                labels: labels.clone(),
                profile,
                id: sample.id,
                range: None,
                sample_type_config: None,
            });
        }
    }
    Ok(stored)
}

/// Pyroscope's `ValidateLabels` with its default limits.
pub fn validate_labels(labels: &mut [(String, String)]) -> Result<(), String> {
    if labels.is_empty() {
        return Err("error at least one label pair is required per profile".into());
    }
    labels.sort();
    if labels.len() > 30 {
        return Err(format!(
            "profile series has {} label names; limit 30",
            labels.len()
        ));
    }
    let get = |name: &str| {
        labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let metric_name = get("__name__").unwrap_or("");
    let valid_metric = !metric_name.is_empty()
        && metric_name.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
        });
    if !valid_metric {
        return Err("invalid labels: invalid metric name".into());
    }
    if get("service_name").is_none_or(str::is_empty) {
        return Err("invalid labels: service name is not provided".into());
    }
    let mut last = "";
    for (name, value) in labels.iter() {
        let valid_name = !name.is_empty()
            && name.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || (i > 0 && (c.is_ascii_digit() || c == '.'))
            });
        if name.len() > 1024 || value.len() > 2048 || !valid_name {
            return Err(format!("invalid label {name:?}={value:?}"));
        }
        if name == last {
            return Err(format!("duplicate label name {name:?}"));
        }
        last = name;
    }
    Ok(())
}

fn gunzip(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .take(64 << 20)
        .read_to_end(&mut out)
        .map_err(|e| format!("gzip: {e}"))?;
    Ok(out)
}

/// Decodes a raw profile as Pyroscope does and checks it as `ValidateProfile` does.
pub fn decode_profile(raw: &[u8]) -> Result<Pprof, String> {
    let plain = if raw.starts_with(&[0x1f, 0x8b]) {
        gunzip(raw)?
    } else {
        raw.to_vec()
    };
    if plain.len() > 4 << 20 {
        return Err(format!(
            "the profile exceeds the size limit ({} bytes)",
            plain.len()
        ));
    }
    let profile = Pprof::decode(plain.as_slice()).map_err(|e| format!("malformed profile: {e}"))?;
    let strings = &profile.string_table;
    let string = |i: i64| {
        strings
            .get(i as usize)
            .ok_or_else(|| format!("string index {i} out of range"))
    };
    if strings.first().is_none_or(|s| !s.is_empty()) {
        return Err("string_table[0] is not empty".into());
    }
    for t in &profile.sample_type {
        if string(t.r#type)?.contains('-') {
            return Err("sample type contains -".into());
        }
        string(t.unit)?;
    }
    if profile.location.iter().any(|l| l.id == 0) {
        return Err("location id is 0".into());
    }
    if profile.function.iter().any(|f| f.id == 0) {
        return Err("function id is 0".into());
    }
    for f in &profile.function {
        string(f.name)?;
    }
    Ok(profile)
}

async fn ingest(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.0.lock().unwrap().requests += 1;
    if let Some(response) = refused_by_mode(&state) {
        return response;
    }
    let query = query.unwrap_or_default();
    let param = |key: &str| {
        query.split('&').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k == key).then(|| percent_decode(v))
        })
    };
    let parts = ingest_parts(&headers, body).await;
    let result = (|| -> Result<Stored, String> {
        if param("format").as_deref() != Some("pprof") {
            return Err("only format=pprof is checked here".into());
        }
        let (raw, config) = parts?;
        let profile = decode_profile(&raw)?;
        let name = param("name").ok_or("name is required")?;
        let (app, rest) = name.split_once('{').unwrap_or((&name, "}"));
        // The client's display names, else Pyroscope's default mapping
        // (`pkg/og/storage/tree/pprof.go` DefaultSampleTypeMapping).
        let display = |st: &str| match &config {
            Some(c) => c[st]["display-name"].as_str().map(str::to_string),
            None => match st {
                "samples" => Some("cpu".to_string()),
                "goroutine" => Some("goroutines".to_string()),
                "contentions" => Some("mutex_count".to_string()),
                "delay" => Some("mutex_duration".to_string()),
                _ => None,
            },
        };
        let mut labels = vec![
            ("__name__".to_string(), metric_name(&profile, display)),
            ("__delta__".to_string(), "false".to_string()),
            ("service_name".to_string(), app.to_string()),
            (
                "pyroscope_spy".to_string(),
                param("spyName").unwrap_or_default(),
            ),
        ];
        for pair in rest
            .trim_end_matches('}')
            .split(',')
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair.split_once('=').ok_or("bad key")?;
            if k.starts_with("__") {
                continue;
            }
            if labels.iter().any(|(n, _)| n == k) {
                return Err(format!("duplicate label name {k:?}"));
            }
            labels.push((k.to_string(), v.to_string()));
        }
        let from: i64 = param("from").ok_or("from")?.parse().map_err(|_| "from")?;
        let until: i64 = param("until")
            .ok_or("until")?
            .parse()
            .map_err(|_| "until")?;
        labels.sort();
        Ok(Stored {
            tenant: tenant(&headers),
            labels,
            profile,
            id: String::new(),
            range: Some((from, until)),
            sample_type_config: config,
        })
    })();
    let mut received = state.0.lock().unwrap();
    match result {
        Ok(stored) => {
            received.stored.push(stored);
            StatusCode::OK.into_response()
        }
        Err(message) => {
            received.refused.push((400, message.clone()));
            (StatusCode::BAD_REQUEST, message).into_response()
        }
    }
}

/// The profile and the `sample_type_config` of an `/ingest` body, a form
/// read by `multer`.
async fn ingest_parts(
    headers: &HeaderMap,
    body: Bytes,
) -> Result<(Bytes, Option<serde_json::Value>), String> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("multipart/form-data") {
        return Ok((body, None));
    }
    let boundary = multer::parse_boundary(content_type).map_err(|e| e.to_string())?;
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut form = multer::Multipart::new(stream, boundary);
    let (mut profile, mut config) = (None, None);
    while let Some(field) = form.next_field().await.map_err(|e| e.to_string())? {
        let name = field.name().unwrap_or("").to_string();
        let data = field.bytes().await.map_err(|e| e.to_string())?;
        match name.as_str() {
            "profile" => profile = Some(data),
            "prev_profile" => return Err("unsupported client version".into()),
            "sample_type_config" => {
                let value: serde_json::Value =
                    serde_json::from_slice(&data).map_err(|e| e.to_string())?;
                if !value.is_object() {
                    return Err("sample_type_config is not an object".into());
                }
                config = Some(value);
            }
            _ => {}
        }
    }
    Ok((profile.ok_or("no profile part")?, config))
}

/// `__name__` as Pyroscope's `/ingest` derives it for a pprof: `wall` if
/// a sample type is, else by what the first telling display name contains,
/// else the last sample type's name.
fn metric_name(profile: &Pprof, display: impl Fn(&str) -> Option<String>) -> String {
    let strings = &profile.string_table;
    let types: Vec<&str> = profile
        .sample_type
        .iter()
        .map(|t| strings[t.r#type as usize].as_str())
        .collect();
    if types.contains(&"wall") {
        return "wall".into();
    }
    let mut last = String::new();
    for st in types {
        let shown = display(st).unwrap_or_else(|| st.to_string());
        let name = match () {
            _ if shown.contains("cpu") => "process_cpu",
            _ if shown.contains("alloc_") || shown.contains("inuse_") => "memory",
            _ if shown == "space" || shown == "objects" => "memory",
            _ if shown.contains("mutex_") => "mutex",
            _ if shown.contains("block_") => "block",
            _ if shown.contains("goroutines") => "goroutines",
            _ => {
                last = shown;
                continue;
            }
        };
        return name.into();
    }
    last
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A Go-style pprof endpoint (`/debug/pprof/<name>`) serving synthetic
/// profiles of the right kind (`ferro::pprof::sample`), gzip'd as Go serves
/// them, and recording every path and query it is asked for.
pub struct PprofTarget {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
}

impl PprofTarget {
    pub async fn start() -> PprofTarget {
        use ferro::pprof::sample::{Kind, profile};
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let app = axum::Router::new().route(
            "/debug/pprof/{name}",
            axum::routing::get(
                move |axum::extract::Path(name): axum::extract::Path<String>,
                      RawQuery(query): RawQuery| {
                    let seen = seen.clone();
                    async move {
                        let asked = match &query {
                            Some(q) => format!("/debug/pprof/{name}?{q}"),
                            None => format!("/debug/pprof/{name}"),
                        };
                        seen.lock().unwrap().push(asked);
                        let kind = match name.as_str() {
                            "profile" => Kind::Cpu,
                            "allocs" | "heap" => Kind::Heap,
                            "goroutine" => Kind::Goroutine,
                            "mutex" | "block" => Kind::Contention,
                            _ => return StatusCode::NOT_FOUND.into_response(),
                        };
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_nanos() as i64;
                        let body = ferro::pprof::encode_gzip(&profile(kind, 20, 40, now));
                        (
                            [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
                            body,
                        )
                            .into_response()
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        PprofTarget { addr, requests }
    }

    /// Every path (with its query) asked for so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}
