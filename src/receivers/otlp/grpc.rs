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
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::codec::CompressionEncoding;
use tonic::server::UnaryService;
use tonic::{Code, Status};

use super::{RETRY_AFTER, Rejection, Shared};
use crate::delivery::Refusal;
use crate::delivery::{MemoryLimiter, Ticket};
use crate::net::body::BodyRules;
use crate::otlp::codec::RawCodec;
use crate::otlp::{self as wire, status};
use crate::receivers::tenancy;
use crate::signal::Signal;

/// The routes of OTLP/gRPC: the three `Export` services, and
/// `UNIMPLEMENTED` for anything else.
pub fn routes(shared: Arc<Shared>) -> axum::Router {
    let path = |service: &str| format!("/{service}/Export");
    axum::Router::new()
        .route_service(
            &path(TraceExport::SERVICE),
            OtlpService::<TraceExport>::new(shared.clone()),
        )
        .route_service(
            &path(MetricsExport::SERVICE),
            OtlpService::<MetricsExport>::new(shared.clone()),
        )
        .route_service(
            &path(LogsExport::SERVICE),
            OtlpService::<LogsExport>::new(shared),
        )
        .fallback(|| async { grpc_error(Code::Unimplemented) })
}

/// A trailers-only gRPC answer with `code`.
fn grpc_error(code: Code) -> http::Response<axum::body::Body> {
    let mut response = http::Response::new(axum::body::Body::empty());
    let headers = response.headers_mut();
    headers.insert(Status::GRPC_STATUS, (code as i32).into());
    headers.insert(
        http::header::CONTENT_TYPE,
        tonic::metadata::GRPC_CONTENT_TYPE,
    );
    response
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

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<E: Export> tower::Service<http::Request<axum::body::Body>> for OtlpService<E> {
    type Response = http::Response<axum::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<axum::body::Body>) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move {
            let peer = request
                .extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip());
            // The message is counted against the memory limit and held to
            // the body rules as it arrives.
            let account = Arc::new(Account::default());
            let rules = shared.config.server.body;
            let request = request.map(|body| {
                tonic::body::Body::new(AccountedBody::new(
                    body,
                    shared.limiter.clone(),
                    rules,
                    account.clone(),
                ))
            });
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(rules.max);
            let method = ExportMethod::<E> {
                shared: shared.clone(),
                account: account.clone(),
                peer,
                _export: PhantomData,
            };
            let mut response = grpc.unary(method, request).await;
            // Failures before the handler ran (the body rules, the size
            // limit, bad compression) show only in the status tonic wrote:
            // count them here.
            if !account.reached.load(Ordering::Relaxed) {
                let failure = *account.failure.lock().unwrap_or_else(|e| e.into_inner());
                let code = response
                    .headers()
                    .get(Status::GRPC_STATUS)
                    .and_then(|code| code.to_str().ok()?.parse::<i32>().ok())
                    .map(Code::from);
                match (failure, code) {
                    (Some(reason), _) => shared.count_rejected(E::SIGNAL, reason),
                    // tonic's size limits answer OUT_OF_RANGE or
                    // RESOURCE_EXHAUSTED, which OTLP clients retry: an
                    // oversized message is the client's error, not worth
                    // sending again.
                    (None, Some(Code::ResourceExhausted | Code::OutOfRange)) => {
                        shared.count_rejected(E::SIGNAL, "too_large");
                        response
                            .headers_mut()
                            .insert(Status::GRPC_STATUS, (Code::InvalidArgument as i32).into());
                    }
                    (None, Some(Code::Internal | Code::Unimplemented)) => {
                        shared.count_rejected(E::SIGNAL, "undecodable")
                    }
                    _ => {}
                }
            }
            Ok(response.map(axum::body::Body::new))
        })
    }
}

/// What the body of one request holds and how reading it ended.
#[derive(Default)]
struct Account {
    /// The memory of the bytes received, for the handler to take.
    ticket: Mutex<Option<Ticket>>,
    /// Why the body was given up on, as a counter reason.
    failure: Mutex<Option<&'static str>>,
    /// Set once the request was decoded from the frame and handed over.
    reached: AtomicBool,
}

impl Account {
    fn fail(&self, reason: &'static str, status: Status) -> Status {
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
        status
    }
}

pin_project_lite::pin_project! {
    /// A gRPC request body read under the receiver's body rules, its bytes
    /// held in a ticket of the memory limiter as they arrive.
    struct AccountedBody {
        #[pin]
        inner: axum::body::Body,
        #[pin]
        deadline: tokio::time::Sleep,
        limiter: Arc<MemoryLimiter>,
        rules: BodyRules,
        account: Arc<Account>,
        started: tokio::time::Instant,
        received: usize,
        ended: bool,
    }
}

impl AccountedBody {
    fn new(
        inner: axum::body::Body,
        limiter: Arc<MemoryLimiter>,
        rules: BodyRules,
        account: Arc<Account>,
    ) -> Self {
        let started = tokio::time::Instant::now();
        Self {
            inner,
            deadline: tokio::time::sleep_until(rules.deadline(started, 0)),
            limiter,
            rules,
            account,
            started,
            received: 0,
            ended: false,
        }
    }
}

impl http_body::Body for AccountedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Status>>> {
        let mut this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        let frame = match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => {
                *this.ended = true;
                return Poll::Ready(Some(Err(Status::from_error(Box::new(e)))));
            }
            Poll::Ready(None) => {
                *this.ended = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {
                // The timer is armed once; when it fires, the deadline the
                // bytes received since have earned is checked, and the
                // timer armed again if it lies ahead (a frame does not
                // touch the timer).
                while this.deadline.as_mut().poll(cx).is_ready() {
                    let earned = this.rules.deadline(*this.started, *this.received);
                    if earned <= tokio::time::Instant::now() {
                        *this.ended = true;
                        let status = Status::deadline_exceeded("the request arrived too slowly");
                        return Poll::Ready(Some(Err(this.account.fail("too_slow", status))));
                    }
                    this.deadline.as_mut().reset(earned);
                }
                return Poll::Pending;
            }
        };
        if let Some(data) = frame.data_ref() {
            *this.received += data.len();
            // One message and its 5-byte frame header, at most.
            if *this.received > this.rules.max + 5 {
                *this.ended = true;
                let status = Status::invalid_argument(format!(
                    "the request is larger than max_recv_msg_size ({} bytes)",
                    this.rules.max
                ));
                return Poll::Ready(Some(Err(this.account.fail("too_large", status))));
            }
            let held = {
                let mut ticket = this
                    .account
                    .ticket
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                match ticket.as_mut() {
                    Some(ticket) => ticket.try_resize(*this.received),
                    None => {
                        *ticket = this.limiter.try_acquire(*this.received);
                        ticket.is_some()
                    }
                }
            };
            if !held {
                *this.ended = true;
                let status = to_status_refusal(Refusal::MemoryLimit);
                return Poll::Ready(Some(Err(this.account.fail("memory_limit", status))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

struct ExportMethod<E> {
    shared: Arc<Shared>,
    account: Arc<Account>,
    /// The client's address, for association with the sending pod.
    peer: Option<std::net::IpAddr>,
    _export: PhantomData<fn() -> E>,
}

impl<E: Export> UnaryService<Bytes> for ExportMethod<E> {
    type Response = Bytes;
    type Future = BoxFuture<Result<tonic::Response<Bytes>, Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let shared = self.shared.clone();
        let account = self.account.clone();
        let peer = self.peer;
        account.reached.store(true, Ordering::Relaxed);
        Box::pin(async move {
            let org_id = shared
                .org_id(
                    E::SIGNAL,
                    request
                        .metadata()
                        .get(tenancy::ORG_ID_HEADER)
                        .map(|v| v.as_bytes()),
                )
                .map_err(|rejection| to_status(rejection, &shared))?;
            let origin = super::Origin { peer, org_id };
            let body = request.into_inner();
            // The ticket held the message as sent; it now holds it decoded.
            let ticket = account
                .ticket
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            let ticket = match ticket {
                Some(mut ticket) => ticket.try_resize(body.len()).then_some(ticket),
                None => shared.limiter.try_acquire(body.len()),
            };
            let Some(ticket) = ticket else {
                let rejection =
                    shared.rejected(E::SIGNAL, Rejection::Refused(Refusal::MemoryLimit));
                return Err(to_status(rejection, &shared));
            };
            let result = match E::SIGNAL {
                Signal::Traces => shared.accept_traces_protobuf(body, ticket, origin).await,
                Signal::Metrics => shared.accept_metrics_protobuf(body, ticket, origin).await,
                Signal::Logs => shared.accept_logs_protobuf(body, ticket, origin).await,
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
        Rejection::Refused(refusal @ Refusal::MemoryLimit) => to_status_refusal(refusal),
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

/// The answer to a push refused for memory: `RESOURCE_EXHAUSTED` with
/// `RetryInfo`, which OTLP clients retry after the delay given.
fn to_status_refusal(_refusal: Refusal) -> Status {
    status::grpc_status(
        Code::ResourceExhausted,
        "ferro is at its memory limit; retry later",
        Some(RETRY_AFTER),
    )
}
