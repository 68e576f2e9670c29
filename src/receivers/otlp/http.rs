//! OTLP/HTTP: `POST /v1/traces` (and `/v1/metrics`, `/v1/logs`) with protobuf
//! or JSON bodies, optionally gzip or zstd compressed. Answers are encoded in
//! the request's content type, errors as `google.rpc.Status`.

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use std::net::SocketAddr;
use std::sync::Arc;

use super::{Partial, Rejection, Shared, retry_after_secs};
use crate::delivery::Ticket;
use crate::otlp::{self as wire, status};
use crate::receivers::intake::{Answer, Compression};
use crate::receivers::tenancy;
use crate::signal::Signal;

/// The routes of OTLP/HTTP.
pub fn routes(shared: Arc<Shared>) -> Router {
    // The size limit is applied while reading and after decompression, below.
    Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/metrics", post(metrics))
        .route("/v1/logs", post(logs))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(shared)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

fn format_of(headers: &HeaderMap) -> Option<Format> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let media = value.split(';').next()?.trim().to_ascii_lowercase();
    match media.as_str() {
        wire::CONTENT_TYPE_PROTOBUF => Some(Format::Protobuf),
        wire::CONTENT_TYPE_JSON => Some(Format::Json),
        _ => None,
    }
}

async fn traces(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    export(&shared, &headers, body, Signal::Traces, peer).await
}

async fn metrics(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    export(&shared, &headers, body, Signal::Metrics, peer).await
}

async fn logs(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    export(&shared, &headers, body, Signal::Logs, peer).await
}

/// `peer` is the client's address, for association with the sending pod.
async fn export(
    shared: &Shared,
    headers: &HeaderMap,
    body: Body,
    signal: Signal,
    peer: SocketAddr,
) -> Response {
    let format = format_of(headers);
    let answer = format.unwrap_or(Format::Json);
    let taken = async {
        if !shared.feeds(signal) {
            return Err(shared.rejected(signal, Rejection::NoPipeline(signal)));
        }
        let org_id = shared.org_id(
            signal,
            headers.get(tenancy::ORG_ID_HEADER).map(|v| v.as_bytes()),
        )?;
        let Some(format) = format else {
            let rejection = Rejection::Invalid {
                reason: "unsupported_media_type",
                message: "Content-Type must be application/x-protobuf or application/json".into(),
            };
            return Err(shared.rejected(signal, rejection));
        };
        let (body, ticket) = read_body(body, headers, shared)
            .await
            .map_err(|rejection| shared.rejected(signal, rejection))?;
        let origin = super::Origin {
            peer: Some(peer.ip()),
            org_id,
        };
        match (signal, format) {
            (Signal::Traces, Format::Protobuf) => {
                shared.accept_traces_protobuf(body, ticket, origin).await
            }
            (Signal::Traces, Format::Json) => shared.accept_traces_json(body, ticket, origin).await,
            (Signal::Metrics, Format::Protobuf) => {
                shared.accept_metrics_protobuf(body, ticket, origin).await
            }
            (Signal::Metrics, Format::Json) => {
                shared.accept_metrics_json(body, ticket, origin).await
            }
            (Signal::Logs, Format::Protobuf) => {
                shared.accept_logs_protobuf(body, ticket, origin).await
            }
            (Signal::Logs, Format::Json) => shared.accept_logs_json(body, ticket, origin).await,
            (other, _) => Err(shared.rejected(other, Rejection::NoPipeline(other))),
        }
    };
    match taken.await {
        Ok(partial) => success(answer, signal, partial),
        Err(rejection) => error_response(answer, rejection, shared),
    }
}

/// Reads the body under the receiver's limits and undoes gzip or zstd.
async fn read_body(
    body: Body,
    headers: &HeaderMap,
    shared: &Shared,
) -> Result<(Bytes, Ticket), Rejection> {
    let accepted = [("gzip", Compression::Gzip), ("zstd", Compression::Zstd)];
    shared
        .read_body(body, headers, &accepted, "use gzip, zstd or none")
        .await
}

fn success(format: Format, signal: Signal, partial: Option<Partial>) -> Response {
    let body: Vec<u8> = match format {
        Format::Protobuf => ExportTraceServiceResponse {
            // Every OTLP export response has this wire layout.
            partial_success: partial.map(|p| ExportTracePartialSuccess {
                rejected_spans: p.rejected,
                error_message: p.message,
            }),
        }
        .encode_to_vec(),
        Format::Json => {
            let rejected_key = match signal {
                Signal::Metrics => "rejectedDataPoints",
                Signal::Logs => "rejectedLogRecords",
                Signal::Profiles => "rejectedProfiles",
                Signal::Traces => "rejectedSpans",
            };
            let value = match partial {
                Some(p) => serde_json::json!({
                    "partialSuccess": {rejected_key: p.rejected.to_string(), "errorMessage": p.message}
                }),
                None => serde_json::json!({}),
            };
            value.to_string().into_bytes()
        }
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type(format))],
        body,
    )
        .into_response()
}

fn content_type(format: Format) -> &'static str {
    match format {
        Format::Protobuf => wire::CONTENT_TYPE_PROTOBUF,
        Format::Json => wire::CONTENT_TYPE_JSON,
    }
}

fn error_response(format: Format, rejection: Rejection, shared: &Shared) -> Response {
    let Answer {
        http: code,
        grpc: grpc_code,
        message,
        retry,
    } = rejection.answer(&shared.id);
    let body: Vec<u8> = match format {
        Format::Protobuf => status::encode_status(grpc_code, &message, None).to_vec(),
        Format::Json => serde_json::json!({"code": grpc_code, "message": message})
            .to_string()
            .into_bytes(),
    };
    let mut response = (code, [(header::CONTENT_TYPE, content_type(format))], body).into_response();
    if code == StatusCode::REQUEST_TIMEOUT {
        // The rest of the body is not worth waiting for.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some(wait) = retry {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(retry_after_secs(wait)),
        );
    }
    response
}
