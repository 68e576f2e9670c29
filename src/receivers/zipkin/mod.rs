//! `receivers.zipkin`: Zipkin's span API, `POST /api/v2/spans` with a JSON
//! list of spans or a protobuf `ListOfSpans` (`Content-Type:
//! application/x-protobuf`), gzip or deflate/zlib bodies; the spans become
//! OTLP by the Collector's rules ([`translate`]) and enter the pipelines
//! through the OTLP receiver's intake: the same body limits, memory limit,
//! backpressure answers (503/429 with `Retry-After`), tenancy
//! (`X-Scope-OrgID`) and counters.
//!
//! - [`config`]: the `receivers.zipkin.NAME` table.
//! - [`model`]: the request body as checked Zipkin spans.
//! - [`translate`]: Zipkin spans → OTLP resource spans.
//!
//! API: <https://zipkin.io/zipkin-api/#/default/post_spans>.

pub mod config;
pub mod model;
pub mod translate;

pub use config::{RawZipkinConfig, ZipkinConfig};

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::config::ComponentId;
use crate::delivery::{MemoryLimiter, Ticket};
use crate::net::server::{Protocol, Servers};
use crate::receivers::intake::{Answer, Compression, Intake, Origin, Rejection, retry_after_secs};
use crate::receivers::{Inputs, RunningReceiver, tenancy};
use crate::signal::Signal;
use crate::telemetry::Telemetry;

struct Receiver {
    intake: Intake,
    parse_string_tags: bool,
}

pub async fn start(
    id: &ComponentId,
    config: &ZipkinConfig,
    inputs: Inputs,
    limiter: Arc<MemoryLimiter>,
    telemetry: &Arc<Telemetry>,
    servers: &Servers,
) -> std::io::Result<RunningReceiver> {
    let receiver = Arc::new(Receiver {
        intake: Intake::new(id, config.body, inputs, limiter, telemetry),
        parse_string_tags: config.parse_string_tags,
    });
    let routes = axum::Router::new()
        .route("/api/v2/spans", axum::routing::post(spans))
        .route("/api/v1/spans", axum::routing::post(v1))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(receiver);
    let attached = servers
        .attach(
            config.http,
            Protocol::Http,
            config.server.limits,
            &id.to_string(),
            routes,
        )
        .await?;
    tracing::info!(receiver = %id, addr = %attached.local_addr(), "Zipkin receiver listening");
    Ok(
        RunningReceiver::new(id.clone(), CancellationToken::new(), Vec::new())
            .listening(vec![("http", attached)]),
    )
}

/// Zipkin's v1 API is not served: said plainly, and counted.
async fn v1(State(receiver): State<Arc<Receiver>>) -> Response {
    let rejection = Rejection::Invalid {
        reason: "unsupported_api",
        message: "Zipkin's v1 span API is not supported; send v2 spans to /api/v2/spans".into(),
    };
    answer(
        receiver.intake.rejected(Signal::Traces, rejection),
        &receiver.intake.id,
    )
}

async fn spans(
    State(receiver): State<Arc<Receiver>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let intake = &receiver.intake;
    let taken = async {
        if !intake.feeds(Signal::Traces) {
            return Err(intake.rejected(Signal::Traces, Rejection::NoPipeline(Signal::Traces)));
        }
        let org_id = intake.org_id(
            Signal::Traces,
            headers.get(tenancy::ORG_ID_HEADER).map(|v| v.as_bytes()),
        )?;
        let (body, ticket) = read_body(body, &headers, intake)
            .await
            .map_err(|rejection| intake.rejected(Signal::Traces, rejection))?;
        let protobuf = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/x-protobuf"));
        let decoded = if protobuf {
            model::from_protobuf(&body)
        } else {
            model::from_json(&body)
        };
        let spans = decoded.map_err(|e| {
            let rejection = Rejection::Invalid {
                reason: "malformed",
                message: e.to_string(),
            };
            intake.rejected(Signal::Traces, rejection)
        })?;
        let resource_spans = translate::to_otlp(spans, receiver.parse_string_tags);
        // The converted spans replace the body in memory.
        drop(body);
        let origin = Origin {
            peer: Some(peer.ip()),
            org_id,
        };
        intake
            .accept_resource_spans(resource_spans, ticket, origin)
            .await
    };
    match taken.await {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(rejection) => answer(rejection, &receiver.intake.id),
    }
}

/// Reads the body under the receiver's limits and undoes gzip, or deflate
/// and zlib (both zlib, as Zipkin clients send them).
async fn read_body(
    body: Body,
    headers: &HeaderMap,
    intake: &Intake,
) -> Result<(Bytes, Ticket), Rejection> {
    let accepted = [
        ("gzip", Compression::Gzip),
        ("deflate", Compression::Zlib),
        ("zlib", Compression::Zlib),
    ];
    intake
        .read_body(body, headers, &accepted, "use gzip, deflate or none")
        .await
}

/// A refusal as Zipkin clients read it: the status (retryable ones with
/// `Retry-After`) and the reason as text.
fn answer(rejection: Rejection, id: &ComponentId) -> Response {
    let Answer {
        http: code,
        message,
        retry,
        ..
    } = rejection.answer(id);
    let mut response = (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message + "\n",
    )
        .into_response();
    if let Some(wait) = retry {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(retry_after_secs(wait)),
        );
    }
    response
}

#[cfg(test)]
mod tests;
