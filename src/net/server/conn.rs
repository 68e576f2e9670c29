//! Accepting connections within the limits, serving each under a watchdog
//! that closes what overstays, and answering each request with the routes
//! attached at the time.

use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::ServiceExt;

use super::{APP_WAIT, Attachment, Budget, ConnectionLimits, Permit, Protocol, Server, Slot};

/// How long a connection closed gracefully (idle, shutdown) may take to
/// finish what it is doing before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// How long the accept loop rests when the process is out of descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The answer to a connection past the limits on an HTTP listener.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 21\r\n\r\ntoo many connections\n";

/// Accepts connections on `listener` until the server stops; `first` is
/// the attachment the server started with.
pub(super) async fn accept_loop(
    listener: TcpListener,
    server: Arc<Server>,
    budget: Arc<Budget>,
    first: Attachment,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Head timeouts are this module's own (see `Conn`): hyper's would
        // also close idle connections at the same deadline.
        .header_read_timeout(None)
        .max_headers(128);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(128)
        .keep_alive_interval(Duration::from_secs(60))
        .keep_alive_timeout(Duration::from_secs(20));
    let mut slot = server.slot.subscribe();
    // The limits and counters of the last routes attached: they hold while
    // a reload replaces the routes (a connection accepted then waits for
    // the next routes like any request).
    let mut current = first;
    let mut out_of_fds_logged: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = server.stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        if let Slot::Attached(a) = &*slot.borrow_and_update() {
            current = a.clone();
        }
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors (EMFILE/ENFILE), or a connection reset
                // before it was taken: rest, so the loop does not spin.
                if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
                    && out_of_fds_logged.is_none_or(|at| at.elapsed() > Duration::from_secs(60))
                {
                    out_of_fds_logged = Some(Instant::now());
                    tracing::warn!(addr = %server.addr, error = %e, "cannot accept: out of file descriptors");
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let attachment = current.clone();
        let counters = &attachment.counters;
        let refused = if open.load(Ordering::Acquire) >= attachment.limits.max_connections {
            Some(&counters.refused_max)
        } else {
            None
        };
        let budget_taken = refused.is_none().then(|| budget.take()).flatten();
        let Some(budget) = budget_taken else {
            refused.unwrap_or(&counters.refused_budget).inc();
            if attachment.protocol == Protocol::Http {
                let _ = stream.try_write(REFUSED);
            }
            continue;
        };
        open.fetch_add(1, Ordering::AcqRel);
        counters.open.inc();
        let permit = Permit {
            budget,
            open: open.clone(),
            gauge: counters.open.clone(),
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            stream,
            peer,
            server.clone(),
            attachment,
            builder.clone(),
            permit,
        ));
    }
}

/// What the watchdog of one connection knows of it.
struct ConnState {
    started: Instant,
    /// Requests being answered.
    in_flight: AtomicUsize,
    /// Requests taken so far.
    served: AtomicU64,
    /// Milliseconds since `started` when the connection last had no request
    /// in flight.
    idle_since_ms: AtomicU64,
    /// Milliseconds since `started` (plus one; 0 = none) when bytes of a new
    /// request head arrived: HTTP/1 only.
    head_since_ms: AtomicU64,
    /// Whether the client speaks HTTP/2 (told by its first request).
    h2: AtomicBool,
}

impl ConnState {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
            head_since_ms: AtomicU64::new(0),
            h2: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.started + Duration::from_millis(ms)
    }

    /// Bytes arrived: on HTTP/1, after the first request and with nothing
    /// in flight, they begin the next request's head. (On HTTP/2 they may be
    /// pings or window updates of an idle connection.)
    fn on_read(&self) {
        if self.served.load(Ordering::Acquire) > 0
            && !self.h2.load(Ordering::Relaxed)
            && self.in_flight.load(Ordering::Acquire) == 0
            && self.head_since_ms.load(Ordering::Acquire) == 0
        {
            self.head_since_ms
                .store(self.now_ms() + 1, Ordering::Release);
        }
    }

    fn request_started(&self, h2: bool) {
        if h2 {
            self.h2.store(true, Ordering::Relaxed);
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.served.fetch_add(1, Ordering::Relaxed);
        self.head_since_ms.store(0, Ordering::Release);
    }

    fn request_done(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle_since_ms.store(self.now_ms(), Ordering::Release);
        }
    }

    /// What the connection has overstayed, or when to look again.
    fn verdict(&self, limits: &ConnectionLimits, now: Instant) -> Verdict {
        let head = self.head_since_ms.load(Ordering::Acquire);
        let first = self.served.load(Ordering::Relaxed) == 0;
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Verdict::Wait(now + limits.idle_timeout.min(limits.read_header_timeout));
        }
        if head > 0 || first {
            // A head is due: since its first byte, or since the connection
            // opened for the first request.
            let since = if head > 0 {
                self.at(head - 1)
            } else {
                self.started
            };
            let due = since + limits.read_header_timeout;
            return if now >= due {
                Verdict::HeaderTimeout
            } else {
                Verdict::Wait(due)
            };
        }
        let due = self.at(self.idle_since_ms.load(Ordering::Acquire)) + limits.idle_timeout;
        if now >= due {
            Verdict::Idle
        } else {
            Verdict::Wait(due)
        }
    }
}

enum Verdict {
    Wait(Instant),
    HeaderTimeout,
    Idle,
}

/// The socket, telling the watchdog when bytes arrive.
struct Watched {
    stream: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.on_read();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    server: Arc<Server>,
    attachment: Attachment,
    builder: auto::Builder<TokioExecutor>,
    permit: Permit,
) {
    let state = Arc::new(ConnState::new());
    let io = TokioIo::new(Watched {
        stream,
        state: state.clone(),
    });
    let slot = server.slot.subscribe();
    let service = {
        let state = state.clone();
        let fallback = attachment.clone();
        let server = server.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            dispatch(
                request,
                peer,
                server.clone(),
                slot.clone(),
                fallback.clone(),
                state.clone(),
            )
        })
    };
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let limits = attachment.limits;
    let mut closing: Option<Instant> = None;
    loop {
        let check = match state.verdict(&limits, Instant::now()) {
            Verdict::Wait(at) => at,
            Verdict::HeaderTimeout => {
                attachment.counters.closed_header.inc();
                break;
            }
            Verdict::Idle if closing.is_none() => {
                attachment.counters.closed_idle.inc();
                connection.as_mut().graceful_shutdown();
                closing = Some(Instant::now() + CLOSE_GRACE);
                continue;
            }
            Verdict::Idle => Instant::now() + limits.idle_timeout,
        };
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(error) = ended {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                break;
            }
            _ = tokio::time::sleep_until(check), if closing.is_none() => {}
            _ = server.stop.cancelled(), if closing.is_none() => {
                connection.as_mut().graceful_shutdown();
                closing = Some(Instant::now() + CLOSE_GRACE);
            }
            _ = tokio::time::sleep_until(closing.unwrap_or(check)), if closing.is_some() => break,
        }
    }
    drop(permit);
}

/// Answers one request with the routes attached now, waiting for them
/// while a reload replaces them.
async fn dispatch(
    mut request: Request<Incoming>,
    peer: SocketAddr,
    server: Arc<Server>,
    mut slot: watch::Receiver<Slot>,
    fallback: Attachment,
    state: Arc<ConnState>,
) -> Result<Response<Body>, Infallible> {
    state.request_started(request.version() == http::Version::HTTP_2);
    let _done = RequestDone(state);
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    // The guard is taken under the slot's lock: a detach that replaces the
    // routes after it waits for this request.
    let taken = tokio::time::timeout(APP_WAIT, async {
        let mut waiting = None;
        loop {
            {
                let current = slot.borrow_and_update();
                match &*current {
                    Slot::Attached(a) => return Some((a.app.clone(), a.requests.enter())),
                    Slot::Closed => return None,
                    Slot::Empty => {}
                }
            }
            waiting.get_or_insert_with(|| Waiting::new(&server));
            if slot.changed().await.is_err() {
                return None;
            }
        }
    })
    .await;
    let Ok(Some((app, _in_flight))) = taken else {
        fallback.counters.requests_refused.inc();
        return Ok(unavailable(grpc));
    };
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = app.oneshot(request.map(Body::new)).await;
    Ok(response.unwrap_or_else(|never| match never {}))
}

/// A request counted among those waiting for routes.
struct Waiting(Arc<Server>);

impl Waiting {
    fn new(server: &Arc<Server>) -> Self {
        server.waiting.fetch_add(1, Ordering::AcqRel);
        Self(server.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

struct RequestDone(Arc<ConnState>);

impl Drop for RequestDone {
    fn drop(&mut self) {
        self.0.request_done();
    }
}

/// The retryable answer to a request nothing can take now.
fn unavailable(grpc: bool) -> Response<Body> {
    let message = "ferro is reloading or stopping; retry";
    if grpc {
        let mut response = Response::new(Body::empty());
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert("grpc-status", HeaderValue::from(14));
        headers.insert("grpc-message", HeaderValue::from_static(message));
        response
    } else {
        let mut response = Response::new(Body::from(Bytes::from_static(message.as_bytes())));
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(1));
        response
    }
}
