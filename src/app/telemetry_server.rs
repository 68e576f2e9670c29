//! The self-telemetry HTTP server: `/metrics`, `/-/healthy`, `/-/ready`.
//!
//! It runs on a listener of its own, outside the connection budget the
//! receivers share, with a small cap and the same timeouts: however many
//! clients hold the receivers' ports, `/metrics` and the probes answer.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::net::server::{ConnectionLimits, serve_alone};
use crate::telemetry::{Phase, Telemetry};

/// What the telemetry listener allows: a few scrapers and probes.
const LIMITS: ConnectionLimits = ConnectionLimits {
    max_connections: 64,
    read_header_timeout: Duration::from_secs(10),
    idle_timeout: Duration::from_secs(120),
};

/// Binds `listen` and serves until `stop` is cancelled. Returns the bound address.
pub async fn serve(
    listen: SocketAddr,
    telemetry: Arc<Telemetry>,
    stop: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(listen).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen for self-telemetry (http) on {listen}: {e}"),
        )
    })?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "ok\n" }))
        .route("/-/ready", get(ready))
        .with_state(telemetry.clone());
    let task = serve_alone(listener, app, LIMITS, "telemetry", &telemetry, stop);
    Ok((addr, task))
}

async fn metrics(State(telemetry): State<Arc<Telemetry>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        telemetry.encode(),
    )
}

async fn ready(State(telemetry): State<Arc<Telemetry>>) -> impl IntoResponse {
    let phase = telemetry.phase();
    let status = if phase == Phase::Ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, format!("{}\n", phase.as_str()))
}
