//! Zipkin v2 spans as read from a request body: JSON (a list of spans, as
//! `zipkin2-api.yaml` describes them) or protobuf (`zipkin.proto3.
//! ListOfSpans`), checked into one model. A span that breaks the model's
//! rules (ids, endpoints) fails the request with a message naming the span,
//! as Zipkin's own server and the Collector refuse it.

use prost::Message;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Span kinds Zipkin has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Client,
    Server,
    Producer,
    Consumer,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    pub service_name: String,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    pub port: u16,
}

impl Endpoint {
    /// The address to report: IPv6 when both are given (as the Collector).
    pub fn ip(&self) -> Option<IpAddr> {
        self.ipv6.map(IpAddr::V6).or(self.ipv4.map(IpAddr::V4))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub id: [u8; 8],
    pub parent_id: Option<[u8; 8]>,
    /// `None`: not given (or a value Zipkin does not have).
    pub kind: Option<Kind>,
    pub name: String,
    /// Microseconds since the epoch; `None` when absent or 0.
    pub timestamp_us: Option<u64>,
    pub duration_us: u64,
    pub local: Option<Endpoint>,
    pub remote: Option<Endpoint>,
    /// `(timestamp µs, value)`.
    pub annotations: Vec<(u64, String)>,
    pub tags: BTreeMap<String, String>,
}

/// Why a body is not Zipkin v2 spans.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("not a JSON list of Zipkin v2 spans: {0}")]
    Json(String),
    #[error("not a protobuf ListOfSpans: {0}")]
    Protobuf(String),
    #[error("span {index}: {message}")]
    Span { index: usize, message: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonSpan {
    trace_id: Option<String>,
    id: Option<String>,
    parent_id: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    name: Option<String>,
    timestamp: Option<u64>,
    duration: Option<u64>,
    local_endpoint: Option<JsonEndpoint>,
    remote_endpoint: Option<JsonEndpoint>,
    #[serde(default)]
    annotations: Vec<JsonAnnotation>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonEndpoint {
    service_name: Option<String>,
    ipv4: Option<String>,
    ipv6: Option<String>,
    port: Option<u16>,
}

#[derive(Deserialize)]
struct JsonAnnotation {
    timestamp: Option<u64>,
    value: Option<String>,
}

/// The spans of a JSON body.
pub fn from_json(body: &[u8]) -> Result<Vec<Span>, ModelError> {
    let spans: Vec<JsonSpan> =
        serde_json::from_slice(body).map_err(|e| ModelError::Json(e.to_string()))?;
    spans
        .into_iter()
        .enumerate()
        .map(|(index, s)| json_span(s).map_err(|message| ModelError::Span { index, message }))
        .collect()
}

fn json_span(s: JsonSpan) -> Result<Span, String> {
    let trace_id = trace_id_hex(s.trace_id.as_deref().unwrap_or(""))?;
    let id = span_id_hex(s.id.as_deref().unwrap_or(""), "id")?;
    let parent_id = match s.parent_id.as_deref() {
        None | Some("") => None,
        Some(hex) => Some(span_id_hex(hex, "parentId")?),
    };
    let mut annotations = Vec::with_capacity(s.annotations.len());
    for a in s.annotations {
        let timestamp = a
            .timestamp
            .filter(|t| *t > 0)
            .ok_or("an annotation needs a timestamp")?;
        annotations.push((timestamp, a.value.unwrap_or_default()));
    }
    Ok(Span {
        trace_id,
        id,
        parent_id,
        kind: s.kind.as_deref().and_then(kind_of),
        name: s.name.unwrap_or_default(),
        timestamp_us: s.timestamp.filter(|t| *t > 0),
        duration_us: s.duration.unwrap_or(0),
        local: s.local_endpoint.map(json_endpoint).transpose()?.flatten(),
        remote: s.remote_endpoint.map(json_endpoint).transpose()?.flatten(),
        annotations,
        tags: s.tags,
    })
}

fn kind_of(kind: &str) -> Option<Kind> {
    match kind {
        "CLIENT" => Some(Kind::Client),
        "SERVER" => Some(Kind::Server),
        "PRODUCER" => Some(Kind::Producer),
        "CONSUMER" => Some(Kind::Consumer),
        _ => None,
    }
}

/// An endpoint, `None` when it says nothing.
fn json_endpoint(e: JsonEndpoint) -> Result<Option<Endpoint>, String> {
    let ipv4 = match e.ipv4.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            text.parse::<Ipv4Addr>()
                .map_err(|_| format!("{text:?} is not an IPv4 address"))?,
        ),
    };
    let ipv6 = match e.ipv6.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            text.parse::<Ipv6Addr>()
                .map_err(|_| format!("{text:?} is not an IPv6 address"))?,
        ),
    };
    Ok(nonempty(Endpoint {
        service_name: e.service_name.unwrap_or_default(),
        ipv4,
        ipv6,
        port: e.port.unwrap_or(0),
    }))
}

fn nonempty(e: Endpoint) -> Option<Endpoint> {
    (!e.service_name.is_empty() || e.ipv4.is_some() || e.ipv6.is_some() || e.port != 0).then_some(e)
}

/// A trace id: 16 or 32 hex characters (a 64-bit id is padded with zeros
/// in front, as the Collector pads it), not all zero.
fn trace_id_hex(hex: &str) -> Result<[u8; 16], String> {
    if hex.len() != 16 && hex.len() != 32 {
        return Err(format!("traceId {hex:?} must be 16 or 32 hex characters"));
    }
    let mut id = [0u8; 16];
    decode_hex(hex, &mut id[16 - hex.len() / 2..])
        .ok_or_else(|| format!("traceId {hex:?} is not hex"))?;
    if id == [0; 16] {
        return Err("traceId must not be zero".into());
    }
    Ok(id)
}

fn span_id_hex(hex: &str, what: &str) -> Result<[u8; 8], String> {
    if hex.len() != 16 {
        return Err(format!("{what} {hex:?} must be 16 hex characters"));
    }
    let mut id = [0u8; 8];
    decode_hex(hex, &mut id).ok_or_else(|| format!("{what} {hex:?} is not hex"))?;
    if id == [0; 8] {
        return Err(format!("{what} must not be zero"));
    }
    Ok(id)
}

fn decode_hex(hex: &str, out: &mut [u8]) -> Option<()> {
    let bytes = hex.as_bytes();
    for (i, pair) in bytes.chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(())
}

/// The spans of a protobuf body.
pub fn from_protobuf(body: &[u8]) -> Result<Vec<Span>, ModelError> {
    use ferro_proto::zipkin::{ListOfSpans, span};
    let list = ListOfSpans::decode(body).map_err(|e| ModelError::Protobuf(e.to_string()))?;
    list.spans
        .into_iter()
        .enumerate()
        .map(|(index, s)| {
            let fail = |message: String| ModelError::Span { index, message };
            let trace_id = match s.trace_id.len() {
                16 => s.trace_id[..].try_into().expect("16 bytes"),
                8 => {
                    let mut id = [0u8; 16];
                    id[8..].copy_from_slice(&s.trace_id);
                    id
                }
                n => return Err(fail(format!("trace_id has {n} bytes, not 8 or 16"))),
            };
            if trace_id == [0; 16] {
                return Err(fail("trace_id must not be zero".into()));
            }
            let id: [u8; 8] =
                s.id.as_slice()
                    .try_into()
                    .map_err(|_| fail(format!("id has {} bytes, not 8", s.id.len())))?;
            if id == [0; 8] {
                return Err(fail("id must not be zero".into()));
            }
            let parent_id = match s.parent_id.len() {
                0 => None,
                8 => Some(s.parent_id[..].try_into().expect("8 bytes")),
                n => return Err(fail(format!("parent_id has {n} bytes, not 8"))),
            };
            let kind = match span::Kind::try_from(s.kind) {
                Ok(span::Kind::Client) => Some(Kind::Client),
                Ok(span::Kind::Server) => Some(Kind::Server),
                Ok(span::Kind::Producer) => Some(Kind::Producer),
                Ok(span::Kind::Consumer) => Some(Kind::Consumer),
                _ => None,
            };
            let endpoint =
                |e: Option<ferro_proto::zipkin::Endpoint>| -> Result<Option<Endpoint>, ModelError> {
                    let Some(e) = e else { return Ok(None) };
                    let ipv4 = match e.ipv4.len() {
                        0 => None,
                        4 => Some(Ipv4Addr::from(
                            <[u8; 4]>::try_from(&e.ipv4[..]).expect("4 bytes"),
                        )),
                        n => return Err(fail(format!("ipv4 has {n} bytes, not 4"))),
                    };
                    let ipv6 = match e.ipv6.len() {
                        0 => None,
                        16 => Some(Ipv6Addr::from(
                            <[u8; 16]>::try_from(&e.ipv6[..]).expect("16 bytes"),
                        )),
                        n => return Err(fail(format!("ipv6 has {n} bytes, not 16"))),
                    };
                    let port = u16::try_from(e.port)
                        .map_err(|_| fail(format!("port {} is out of range", e.port)))?;
                    Ok(nonempty(Endpoint {
                        service_name: e.service_name,
                        ipv4,
                        ipv6,
                        port,
                    }))
                };
            Ok(Span {
                trace_id,
                id,
                parent_id,
                kind,
                name: s.name,
                timestamp_us: Some(s.timestamp).filter(|t| *t > 0),
                duration_us: s.duration,
                local: endpoint(s.local_endpoint)?,
                remote: endpoint(s.remote_endpoint)?,
                annotations: s
                    .annotations
                    .into_iter()
                    .map(|a| (a.timestamp, a.value))
                    .collect(),
                tags: s.tags.into_iter().collect(),
            })
        })
        .collect()
}
