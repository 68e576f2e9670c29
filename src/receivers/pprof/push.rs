//! The push endpoints the Pyroscope SDKs send to, so that they can send to
//! ferro instead of to Pyroscope:
//!
//! - `POST /push.v1.PusherService/Push`: a connect unary call
//!   (<https://connectrpc.com/docs/protocol/#unary-request>) with a protobuf
//!   `push.v1.PushRequest` body (`Content-Type: application/proto`,
//!   optionally `Content-Encoding: gzip`). Errors are connect's JSON
//!   `{"code", "message"}` with its HTTP status.
//! - `POST /ingest?name=app{k=v}&from=&until=&format=pprof&spyName=&sampleRate=`:
//!   the older API, with the profile as the raw body or as the `profile` part
//!   of a `multipart/form-data` body (with `sample_type_config` beside it).
//!   Only pprof can be carried on: other formats (`folded`, `lines`, `trie`,
//!   `tree`, `jfr`, `speedscope`) get 415 with the reason.
//!
//! A request is taken whole or not at all: one broken profile refuses it
//! with 400 (and counts the profile), a full pipeline with 503, the memory
//! limit with 429, both with `Retry-After`. Both endpoints carry the
//! request's `X-Scope-OrgID` on the batch, as the OTLP receiver does; one
//! that is no tenant ID is refused with 400.

use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use ferro_proto::push::v1::PushRequest;
use prost::Message;
use std::sync::Arc;

use super::Shared;
use super::scrape::now_ns;
use crate::delivery::Refusal;
use crate::delivery::Ticket;
use crate::net::body::{BodyError, content_encoding, decode_capped};
use crate::pprof;
use crate::receivers::tenancy::{self, InvalidOrgId};
use crate::signal::LabelsBuilder;
use crate::signal::profiles::{Profile, Profiles};

/// How long a refused client is asked to wait.
const RETRY_AFTER_SECS: u64 = 1;

/// The push routes.
pub fn routes(shared: Arc<Shared>) -> Router {
    // The size limit is applied while reading and after decompression, below.
    Router::new()
        .route("/push.v1.PusherService/Push", post(push))
        .route("/ingest", post(ingest))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(shared)
}

/// Why a push was not taken, with the answer it gets.
#[derive(Debug)]
pub enum Rejection {
    Refused(Refusal),
    /// The request is wrong; `reason` is the counter label.
    Invalid {
        status: StatusCode,
        reason: &'static str,
        message: String,
    },
}

impl From<InvalidOrgId> for Rejection {
    fn from(e: InvalidOrgId) -> Self {
        Rejection::invalid(tenancy::INVALID_TENANT, e.to_string())
    }
}

impl Rejection {
    fn invalid(reason: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            status: StatusCode::BAD_REQUEST,
            reason,
            message: message.into(),
        }
    }

    /// Connect's error body and status.
    fn into_response(self) -> Response {
        let retry_after = match &self {
            Rejection::Refused(Refusal::TenantLimit(wait)) => wait.as_secs().max(1),
            _ => RETRY_AFTER_SECS,
        };
        let (status, code, message) = match self {
            Rejection::Refused(Refusal::MemoryLimit) => (
                StatusCode::TOO_MANY_REQUESTS,
                "resource_exhausted",
                "ferro is at its memory limit; retry later".to_string(),
            ),
            Rejection::Refused(Refusal::PipelineFull) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the pipeline is full; retry later".to_string(),
            ),
            Rejection::Refused(Refusal::TenantLimit(_)) => (
                StatusCode::TOO_MANY_REQUESTS,
                "resource_exhausted",
                "a tenant of this push is over its rate limit; retry later".to_string(),
            ),
            Rejection::Refused(Refusal::ShuttingDown) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "ferro is shutting down or reloading; retry".to_string(),
            ),
            Rejection::Invalid {
                status, message, ..
            } => {
                let code = match status {
                    StatusCode::PAYLOAD_TOO_LARGE => "resource_exhausted",
                    StatusCode::REQUEST_TIMEOUT => "deadline_exceeded",
                    StatusCode::NOT_FOUND => "unimplemented",
                    _ => "invalid_argument",
                };
                (status, code, message)
            }
        };
        let body = serde_json::json!({"code": code, "message": message}).to_string();
        let mut response =
            (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        if matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        response
    }
}

async fn push(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    match accept_push(&shared, &headers, body).await {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/proto")],
            // An empty `push.v1.PushResponse`.
            Bytes::new(),
        )
            .into_response(),
        Err(rejection) => shared.rejected(rejection).into_response(),
    }
}

async fn accept_push(shared: &Shared, headers: &HeaderMap, body: Body) -> Result<(), Rejection> {
    let org_id = shared.org_id(headers.get(tenancy::ORG_ID_HEADER))?;
    let media = media_type(headers);
    if !matches!(
        media.as_str(),
        "application/proto" | "application/x-protobuf"
    ) {
        return Err(Rejection::Invalid {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            reason: "unsupported_media_type",
            message: format!(
                "Content-Type {media:?} is not supported: ferro takes the push API as application/proto"
            ),
        });
    }
    let (body, ticket) = read_body(body, headers, shared).await?;
    let request = PushRequest::decode(body).map_err(|e| {
        Rejection::invalid("malformed", format!("invalid push.v1.PushRequest: {e}"))
    })?;
    let mut profiles = Vec::new();
    let mut builder = LabelsBuilder::new();
    let now = now_ns();
    for series in request.series {
        builder.clear();
        for pair in &series.labels {
            if !crate::signal::names::is_dotted_label_name(&pair.name) {
                return Err(Rejection::invalid(
                    "invalid_labels",
                    format!("invalid label name {:?}", pair.name),
                ));
            }
            builder.set(&pair.name, &pair.value);
        }
        if builder.get("service_name").is_none() {
            return Err(Rejection::invalid(
                "missing_service_name",
                "a series has no service_name label",
            ));
        }
        for sample in series.samples {
            let raw = Bytes::from(sample.raw_profile);
            let checked = match pprof::check(&raw, shared.max_profile_size) {
                Ok(checked) => checked,
                Err(e) => {
                    shared.drop_profiles(e.reason(), 1);
                    return Err(Rejection::invalid(e.reason(), e.to_string()));
                }
            };
            let mut labels = builder.clone();
            if labels.get("__name__").is_none() {
                let Some(name) = pprof::type_name(&checked) else {
                    return Err(Rejection::invalid(
                        "invalid_profile_name",
                        "a series has no __name__ and its sample types name no known profile type",
                    ));
                };
                labels.set("__name__", name);
            }
            let (start_ns, end_ns) = time_range(&checked, None, None, now);
            profiles.push(Profile {
                labels: labels.labels(),
                pprof: raw,
                start_ns,
                end_ns,
                sample_types: checked.sample_types,
            });
        }
    }
    shared
        .hand_on_pushed(Profiles::new(profiles), ticket, org_id)
        .await
        .map_err(Rejection::Refused)
}

/// The profile's own times where it has them, else the request's, else now.
fn time_range(
    checked: &pprof::Checked,
    from: Option<i64>,
    until: Option<i64>,
    now: i64,
) -> (i64, i64) {
    let start = from
        .or((checked.time_ns > 0).then_some(checked.time_ns))
        .unwrap_or(now);
    let end = until
        .or((checked.duration_ns > 0).then(|| start.saturating_add(checked.duration_ns)))
        .unwrap_or(now)
        .max(start);
    (start, end)
}

async fn ingest(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match accept_ingest(&shared, query.as_deref().unwrap_or(""), &headers, body).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(rejection) => shared.rejected(rejection).into_response(),
    }
}

/// The query of an `/ingest` request.
#[derive(Debug, Default, PartialEq)]
pub struct IngestQuery {
    pub name: String,
    pub from: Option<i64>,
    pub until: Option<i64>,
    pub format: Option<String>,
    pub spy_name: Option<String>,
}

pub fn parse_query(query: &str) -> Result<IngestQuery, Rejection> {
    let mut out = IngestQuery::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value).ok_or_else(|| {
            Rejection::invalid(
                "malformed",
                format!("query parameter {key} is not valid UTF-8"),
            )
        })?;
        match key {
            "name" => out.name = value,
            "from" => out.from = Some(parse_time(&value, "from")?),
            "until" => out.until = Some(parse_time(&value, "until")?),
            "format" => out.format = Some(value),
            "spyName" => out.spy_name = Some(value),
            _ => {}
        }
    }
    if out.name.is_empty() {
        return Err(Rejection::invalid(
            "malformed",
            "the name parameter is required: name=app{label=value}",
        ));
    }
    Ok(out)
}

/// A Unix time as Pyroscope's ingest takes it (seconds), read as
/// milliseconds, microseconds or nanoseconds when it is too large to be
/// seconds; returned in nanoseconds.
fn parse_time(text: &str, field: &str) -> Result<i64, Rejection> {
    let n: i64 = text.parse().map_err(|_| {
        Rejection::invalid("malformed", format!("{field}={text:?} is not a Unix time"))
    })?;
    Ok(match n {
        n if n < 100_000_000_000 => n.saturating_mul(1_000_000_000),
        n if n < 100_000_000_000_000 => n.saturating_mul(1_000_000),
        n if n < 100_000_000_000_000_000 => n.saturating_mul(1_000),
        n => n,
    })
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// An `/ingest` application key, `app.suffix{k=v,...}`, read.
#[derive(Debug, PartialEq)]
pub struct AppKey {
    pub service: String,
    /// The profile type the suffix names, if it names one.
    pub kind: Option<&'static str>,
    pub labels: Vec<(String, String)>,
}

/// Reads an application key `app.suffix{k=v,...}`.
pub fn parse_key(key: &str) -> Result<AppKey, Rejection> {
    let (app, labels) = match key.split_once('{') {
        Some((app, rest)) => {
            let inner = rest.strip_suffix('}').ok_or_else(|| {
                Rejection::invalid(
                    "invalid_labels",
                    format!("name {key:?}: labels must end with }}"),
                )
            })?;
            (app, inner)
        }
        None => (key, ""),
    };
    let app = app.trim();
    let (service, kind) = match app.rsplit_once('.') {
        Some((service, suffix)) if suffix_type(suffix).is_some() => (service, suffix_type(suffix)),
        _ => (app, None),
    };
    if service.is_empty() {
        return Err(Rejection::invalid(
            "missing_service_name",
            format!("name {key:?} has no application name"),
        ));
    }
    let mut pairs = Vec::new();
    for pair in labels.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').ok_or_else(|| {
            Rejection::invalid(
                "invalid_labels",
                format!("label {pair:?} is not name=value"),
            )
        })?;
        let name = name.trim();
        if !crate::signal::names::is_dotted_label_name(name) {
            return Err(Rejection::invalid(
                "invalid_labels",
                format!("invalid label name {name:?}"),
            ));
        }
        pairs.push((name.to_string(), value.trim().to_string()));
    }
    Ok(AppKey {
        service: service.to_string(),
        kind,
        labels: pairs,
    })
}

/// The profile type an application-name suffix names (`myapp.cpu`).
fn suffix_type(suffix: &str) -> Option<&'static str> {
    Some(match suffix {
        "cpu" | "itimer" => "process_cpu",
        "wall" => "wall",
        "alloc_objects" | "alloc_space" | "inuse_objects" | "inuse_space" => "memory",
        "goroutines" | "goroutine" => "goroutine",
        "mutex_count" | "mutex_duration" => "mutex",
        "block_count" | "block_duration" => "block",
        _ => return None,
    })
}

async fn accept_ingest(
    shared: &Shared,
    query: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<(), Rejection> {
    let org_id = shared.org_id(headers.get(tenancy::ORG_ID_HEADER))?;
    let query = parse_query(query)?;
    let media = media_type(headers);
    let multipart = media == "multipart/form-data";
    // As Pyroscope: a multipart body is pprof, an unnamed format is folded.
    let format = query.format.clone().unwrap_or_else(|| {
        if multipart {
            "pprof".into()
        } else {
            "folded".into()
        }
    });
    if format != "pprof" {
        return Err(Rejection::Invalid {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            reason: "unsupported_format",
            message: format!(
                "format={format} cannot be turned into pprof by ferro; send format=pprof (raw body, or multipart with a `profile` part)"
            ),
        });
    }
    let AppKey {
        service,
        kind: suffix_kind,
        labels: pairs,
    } = parse_key(&query.name)?;
    let (body, ticket) = read_body(body, headers, shared).await?;
    let (profile, config) = if multipart {
        let boundary = boundary(headers).ok_or_else(|| {
            Rejection::invalid("malformed", "multipart/form-data without a boundary")
        })?;
        let parts = multipart_parts(&body, &boundary)
            .ok_or_else(|| Rejection::invalid("malformed", "the multipart body is malformed"))?;
        if parts.iter().any(|(name, _)| name == "prev_profile") {
            // Old Go clients sent cumulative profiles with their predecessor
            // for the server to subtract; Pyroscope refuses them too.
            return Err(Rejection::invalid(
                "unsupported_client",
                "a prev_profile part (a cumulative profile with its predecessor) is not supported: update the client (pyroscope-go sends deltas itself)",
            ));
        }
        let config = match parts.iter().find(|(name, _)| name == "sample_type_config") {
            Some((_, config)) => Some(serde_json::from_slice::<SampleTypeConfig>(config).map_err(
                |e| {
                    Rejection::invalid(
                        "malformed",
                        format!("sample_type_config is not a JSON object of sample types: {e}"),
                    )
                },
            )?),
            None => None,
        };
        let (_, profile) = parts
            .into_iter()
            .find(|(name, _)| name == "profile")
            .ok_or_else(|| {
                Rejection::invalid("malformed", "the multipart body has no `profile` part")
            })?;
        (profile, config)
    } else {
        (body, None)
    };
    let checked = match pprof::check(&profile, shared.max_profile_size) {
        Ok(checked) => checked,
        Err(e) => {
            shared.drop_profiles(e.reason(), 1);
            return Err(Rejection::invalid(e.reason(), e.to_string()));
        }
    };
    let name = suffix_kind
        .or_else(|| {
            pprof::type_name_displayed(&checked, |st| match &config {
                Some(config) => config.display_name(st),
                None => pprof::DEFAULT_DISPLAY_NAMES
                    .iter()
                    .find(|(sample_type, _)| *sample_type == st)
                    .map(|(_, shown)| *shown),
            })
        })
        .or_else(|| pprof::type_name(&checked))
        .ok_or_else(|| {
        Rejection::invalid(
            "invalid_profile_name",
            "neither the name's suffix nor the profile's sample types name a known profile type",
        )
    })?;
    let mut labels = LabelsBuilder::new();
    for (n, v) in &pairs {
        labels.set(n, v);
    }
    labels.set("service_name", &service);
    labels.set("__name__", name);
    // As Pyroscope's own /ingest: what an SDK sends there is a delta
    // already (or an instant), never to be differenced again.
    labels.set("__delta__", "false");
    if let Some(spy) = &query.spy_name {
        labels.set("pyroscope_spy", spy);
    }
    let (start_ns, end_ns) = time_range(&checked, query.from, query.until, now_ns());
    let profile = Profile {
        labels: labels.labels(),
        pprof: profile,
        start_ns,
        end_ns,
        sample_types: checked.sample_types,
    };
    shared
        .hand_on_pushed(Profiles::new(vec![profile]), ticket, org_id)
        .await
        .map_err(Rejection::Refused)
}

/// A multipart `/ingest`'s `sample_type_config`: per sample type, how the
/// SDK wants it shown (`{"contentions": {"display-name": "mutex_count",
/// "units": "lock_samples", "cumulative": true}}`). Only the display name
/// matters once profiles are pprof: it picks the profile type.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct SampleTypeConfig(std::collections::HashMap<String, Option<SampleTypeEntry>>);

#[derive(Debug, Default, serde::Deserialize)]
pub struct SampleTypeEntry {
    #[serde(rename = "display-name", default)]
    display_name: String,
}

impl SampleTypeConfig {
    fn display_name(&self, sample_type: &str) -> Option<&str> {
        let entry = self.0.get(sample_type)?.as_ref()?;
        (!entry.display_name.is_empty()).then_some(entry.display_name.as_str())
    }
}

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

fn boundary(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    value.split(';').skip(1).find_map(|param| {
        let (k, v) = param.trim().split_once('=')?;
        k.eq_ignore_ascii_case("boundary")
            .then(|| v.trim_matches('"').to_string())
            .filter(|b| !b.is_empty())
    })
}

/// The named parts of a `multipart/form-data` body (RFC 7578); `None` when
/// it is not well formed.
pub fn multipart_parts(body: &Bytes, boundary: &str) -> Option<Vec<(String, Bytes)>> {
    let delimiter = format!("--{boundary}");
    let finder = memchr::memmem::Finder::new(delimiter.as_bytes());
    let mut parts = Vec::new();
    let mut at = finder.find(body)? + delimiter.len();
    loop {
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return Some(parts);
        }
        if !rest.starts_with(b"\r\n") {
            return None;
        }
        let rest_start = at + 2;
        let next = rest_start + finder.find(&body[rest_start..])?;
        // The part ends with CRLF before the next delimiter.
        let part = body.slice(rest_start..next.checked_sub(2)?.max(rest_start));
        let head_end = memchr::memmem::find(&part, b"\r\n\r\n")?;
        let head = std::str::from_utf8(&part[..head_end]).ok()?;
        let name = head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            if !k.trim().eq_ignore_ascii_case("content-disposition") {
                return None;
            }
            v.split(';').find_map(|p| {
                let (k, v) = p.trim().split_once('=')?;
                (k == "name").then(|| v.trim_matches('"').to_string())
            })
        })?;
        parts.push((name, part.slice(head_end + 4..)));
        at = next + delimiter.len();
    }
}

/// Reads the body under the receiver's limits, undoes `Content-Encoding:
/// gzip`, and enforces `max_profile_size` on both the compressed and the
/// decompressed size; the ticket holds the memory of what is returned.
async fn read_body(
    body: Body,
    headers: &HeaderMap,
    shared: &Shared,
) -> Result<(Bytes, Ticket), Rejection> {
    let max = shared.body.max;
    let rejection = |e: BodyError, failed: &'static str, what: &str| match e {
        BodyError::TooLarge => Rejection::Invalid {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            reason: "too_large",
            message: format!("request body is larger than max_profile_size ({max} bytes)"),
        },
        BodyError::MemoryLimit => Rejection::Refused(Refusal::MemoryLimit),
        BodyError::TooSlow => Rejection::Invalid {
            status: StatusCode::REQUEST_TIMEOUT,
            reason: "too_slow",
            message: "the request body arrived too slowly".into(),
        },
        BodyError::Failed(e) => Rejection::invalid(failed, format!("{what}: {e}")),
    };
    let (raw, mut ticket) =
        crate::net::body::read_body(body, headers, &shared.body, &shared.limiter)
            .await
            .map_err(|e| rejection(e, "truncated", "reading the body failed"))?;
    match content_encoding(headers).as_str() {
        "" | "identity" => Ok((raw, ticket)),
        "gzip" => {
            let plain = decode_capped(flate2::read::GzDecoder::new(raw.as_ref()), max, &mut ticket)
                .map_err(|e| rejection(e, "bad_compression", "the body is not valid gzip"))?;
            ticket.try_resize(plain.len());
            Ok((plain, ticket))
        }
        other => Err(Rejection::Invalid {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            reason: "unsupported_encoding",
            message: format!("Content-Encoding {other:?} is not supported (use gzip or none)"),
        }),
    }
}
