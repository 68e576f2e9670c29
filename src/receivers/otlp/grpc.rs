//! OTLP/gRPC: the three `Export` services, served by tonic with a codec that
//! hands the raw message to [`Shared`] so that it decodes, counts and accounts
//! memory itself.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::server::{NamedService, UnaryService};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Status};

use super::{RETRY_AFTER, Rejection, Shared};
use crate::otlp::codec::RawCodec;
use crate::otlp::{self as wire, status};
use crate::receivers::tenancy;
use crate::signal::Signal;
use crate::topology::fanout::Refusal;

pub fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let bound = listener.local_addr()?;
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let router = Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(60)))
        .max_concurrent_streams(Some(128))
        .add_service(OtlpService::<TraceExport>::new(shared.clone()))
        .add_service(OtlpService::<MetricsExport>::new(shared.clone()))
        .add_service(OtlpService::<LogsExport>::new(shared));
    let task = tokio::spawn(async move {
        if let Err(e) = router
            .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "OTLP gRPC server failed");
        }
    });
    Ok((bound, task))
}

/// Which OTLP service a [`OtlpService`] answers for.
pub trait Export: Send + Sync + 'static {
    const SERVICE: &'static str;
    const SIGNAL: Signal;
}

pub struct TraceExport;
pub struct MetricsExport;
pub struct LogsExport;

impl Export for TraceExport {
    const SERVICE: &'static str = wire::TRACE_SERVICE;
    const SIGNAL: Signal = Signal::Traces;
}
impl Export for MetricsExport {
    const SERVICE: &'static str = wire::METRICS_SERVICE;
    const SIGNAL: Signal = Signal::Metrics;
}
impl Export for LogsExport {
    const SERVICE: &'static str = wire::LOGS_SERVICE;
    const SIGNAL: Signal = Signal::Logs;
}

pub struct OtlpService<E> {
    shared: Arc<Shared>,
    _export: PhantomData<fn() -> E>,
}

impl<E> Clone for OtlpService<E> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            _export: PhantomData,
        }
    }
}

impl<E: Export> OtlpService<E> {
    fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            _export: PhantomData,
        }
    }
}

impl<E: Export> NamedService for OtlpService<E> {
    const NAME: &'static str = E::SERVICE;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<E: Export> tower::Service<http::Request<tonic::body::Body>> for OtlpService<E> {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move {
            let is_export = request
                .uri()
                .path()
                .strip_prefix('/')
                .and_then(|p| p.strip_prefix(E::SERVICE))
                == Some("/Export");
            if !is_export {
                let mut response = http::Response::new(tonic::body::Body::default());
                let headers = response.headers_mut();
                headers.insert(Status::GRPC_STATUS, (Code::Unimplemented as i32).into());
                headers.insert(
                    http::header::CONTENT_TYPE,
                    tonic::metadata::GRPC_CONTENT_TYPE,
                );
                return Ok(response);
            }
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(shared.config.max_recv_msg_size);
            let reached = Arc::new(AtomicBool::new(false));
            let method = ExportMethod::<E> {
                shared: shared.clone(),
                reached: reached.clone(),
                _export: PhantomData,
            };
            let response = grpc.unary(method, request).await;
            // Failures before the handler ran (size limit, bad compression)
            // show only in the status tonic wrote: count them here.
            if !reached.load(Ordering::Relaxed)
                && let Some(code) = response.headers().get(Status::GRPC_STATUS)
                && let Ok(code) = code.to_str().unwrap_or("").parse::<i32>()
            {
                match Code::from(code) {
                    Code::ResourceExhausted | Code::OutOfRange => {
                        shared.count_rejected(E::SIGNAL, "too_large")
                    }
                    Code::Internal | Code::Unimplemented => {
                        shared.count_rejected(E::SIGNAL, "undecodable")
                    }
                    _ => {}
                }
            }
            Ok(response)
        })
    }
}

struct ExportMethod<E> {
    shared: Arc<Shared>,
    /// Set once the request was decoded from the frame and handed over.
    reached: Arc<AtomicBool>,
    _export: PhantomData<fn() -> E>,
}

impl<E: Export> UnaryService<Bytes> for ExportMethod<E> {
    type Response = Bytes;
    type Future = BoxFuture<Result<tonic::Response<Bytes>, Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let shared = self.shared.clone();
        self.reached.store(true, Ordering::Relaxed);
        // The client's address, for association with the sending pod.
        let peer = request.remote_addr().map(|a| a.ip());
        Box::pin(async move {
            let org_id = request
                .metadata()
                .get(tenancy::ORG_ID_HEADER)
                .map(|v| v.as_bytes());
            let org_id = match tenancy::org_id(org_id) {
                Ok(org_id) => org_id,
                Err(invalid) => {
                    let rejection = Rejection::from(invalid);
                    return Err(to_status(shared.rejected(E::SIGNAL, rejection), &shared));
                }
            };
            let origin = super::Origin { peer, org_id };
            let body = request.into_inner();
            let result = match E::SIGNAL {
                Signal::Traces => shared.accept_traces_protobuf(body, origin).await,
                Signal::Metrics => shared.accept_metrics_protobuf(body, origin).await,
                Signal::Logs => shared.accept_logs_protobuf(body, origin).await,
                signal => Err(shared.rejected(signal, Rejection::NoPipeline(signal))),
            }
            .map(response_bytes);
            match result {
                Ok(response) => Ok(tonic::Response::new(Bytes::from(response))),
                Err(rejection) => Err(to_status(rejection, &shared)),
            }
        })
    }
}

/// An export response: the three OTLP responses share one wire layout
/// (`partial_success` = 1 holding `rejected_*` = 1 and `error_message` = 2).
fn response_bytes(partial: Option<super::Partial>) -> Vec<u8> {
    ExportTraceServiceResponse {
        partial_success: partial.map(|p| ExportTracePartialSuccess {
            rejected_spans: p.rejected,
            error_message: p.message,
        }),
    }
    .encode_to_vec()
}

fn to_status(rejection: Rejection, shared: &Shared) -> Status {
    match rejection {
        Rejection::Refused(Refusal::MemoryLimit) => status::grpc_status(
            Code::ResourceExhausted,
            "ferro is at its memory limit; retry later",
            Some(RETRY_AFTER),
        ),
        Rejection::Refused(Refusal::PipelineFull) => status::grpc_status(
            Code::Unavailable,
            "the pipeline is full; retry later",
            Some(RETRY_AFTER),
        ),
        Rejection::Refused(Refusal::ShuttingDown) => status::grpc_status(
            Code::Unavailable,
            "ferro is shutting down or reloading; retry",
            Some(RETRY_AFTER),
        ),
        // RESOURCE_EXHAUSTED with RetryInfo: what OTLP clients retry, after
        // the delay given.
        Rejection::Refused(Refusal::TenantLimit(wait)) => status::grpc_status(
            Code::ResourceExhausted,
            "the tenant is over its rate limit; retry later",
            Some(Duration::from_secs(super::retry_after_secs(wait))),
        ),
        Rejection::Invalid { message, .. } => Status::invalid_argument(message),
        Rejection::NoPipeline(signal) => {
            Status::unimplemented(format!("receiver {} feeds no {signal} pipeline", shared.id))
        }
    }
}
