//! The HTTP/1.1 and HTTP/2 (gRPC) servers of receivers and of the
//! self-telemetry listener: connections accepted under a cap, clients kept
//! to time limits, and servers that outlive a topology.
//!
//! **Limits.** A listener takes at most `max_connections` connections, and
//! all receivers together at most a budget derived from the process's
//! file-descriptor limit (so that they can never take the descriptors the
//! self-telemetry listener, the exporters and the log tailers need); a
//! connection past either is refused at once (an HTTP listener answers 503
//! first). A new connection must send its first request's head within
//! `read_header_timeout`, and a later request's head must be complete within
//! that time of its first byte: a partial header is closed, not kept. A
//! connection with no request in flight for `idle_timeout` is closed
//! gracefully (HTTP/2 with GOAWAY). Bodies are kept to their own rules where
//! they are read (`net::body`, the OTLP gRPC service).
//!
//! **Reloads.** A server is not a receiver's: it belongs to its address and
//! lives in [`Servers`], which outlives topologies. A receiver *attaches*
//! its routes to the server on its address and detaches them when it stops.
//! Between a receiver stopping and its successor attaching, requests wait
//! (up to [`APP_WAIT`]) and are then served by the successor; connections
//! are never closed for a reload, so no client sees a reset or a close
//! without an answer. A server no topology attaches to is closed.
//! Addresses with port 0 get a new server each time: there is nothing to keep.

use prometheus_client::metrics::counter::Counter;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::telemetry::Telemetry;
use conn::accept_loop;

mod config;
mod conn;

pub use config::{RawServerConfig, ServerConfig};

/// How long a request waits for routes while a reload replaces them.
pub const APP_WAIT: Duration = Duration::from_secs(5);

/// What a listener allows its clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once; more are refused.
    pub max_connections: usize,
    /// Time for a request's head: from accepting (the first request) or
    /// from its first byte (later ones).
    pub read_header_timeout: Duration,
    /// Time a connection may stay open with no request in flight.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            read_header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// What a listener speaks: how it refuses a connection or a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 (and HTTP/2) APIs: refused with a 503 and `Retry-After`.
    Http,
    /// gRPC over HTTP/2: refused with `UNAVAILABLE`.
    Grpc,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Grpc => "grpc",
        }
    }
}

/// Connections the receivers may hold together: what is left of the
/// process's descriptor limit once the rest of ferro is provided for.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: AtomicUsize,
}

impl Budget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// A quarter of the descriptors (at least 64) is kept for the rest of
    /// the process (log files, exporters' connections, the telemetry
    /// listener); receivers' connections may take the others.
    pub fn from_fd_limit(fds: u64) -> Arc<Self> {
        let fds = usize::try_from(fds).unwrap_or(usize::MAX);
        let reserve = (fds / 4).max(64);
        Self::new(fds.saturating_sub(reserve).max(16))
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    fn take(self: &Arc<Self>) -> Option<Arc<Self>> {
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |used| {
                (used < self.limit).then_some(used + 1)
            })
            .is_ok();
        taken.then(|| self.clone())
    }

    fn give_back(&self) {
        self.used.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Raises the soft descriptor limit to the hard one, as Go programs do at
/// start (the soft default of 1024 is a relic); returns the limit now in force.
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit write and read only the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    limit.rlim_cur
}

/// Routes attached to a server: what answers its requests now.
#[derive(Clone)]
struct Attachment {
    app: axum::Router,
    protocol: Protocol,
    limits: ConnectionLimits,
    counters: Arc<Counters>,
    requests: Arc<InFlight>,
}

/// A server's current routes.
#[derive(Clone)]
enum Slot {
    /// Between two topologies: requests wait for the next routes.
    Empty,
    Attached(Attachment),
    /// The server is closing: requests are refused.
    Closed,
}

/// One listening socket and everything accepted on it.
struct Server {
    addr: SocketAddr,
    slot: watch::Sender<Slot>,
    stop: CancellationToken,
    /// Requests waiting for routes while a reload replaces them.
    waiting: AtomicUsize,
}

impl Server {
    fn close(&self) {
        self.slot.send_replace(Slot::Closed);
        self.stop.cancel();
    }
}

/// The servers of every address ferro listens on, kept across reloads.
pub struct Servers {
    inner: Mutex<Inner>,
    budget: Arc<Budget>,
    telemetry: Arc<Telemetry>,
}

#[derive(Default)]
struct Inner {
    /// Counts topology starts; a server attached in the current one is in use.
    generation: u64,
    kept: HashMap<SocketAddr, KeptServer>,
}

struct KeptServer {
    server: Arc<Server>,
    claimed: u64,
}

impl Inner {
    /// Closes the kept servers this topology has not claimed whose address
    /// `clashes`; whether there were any.
    fn release(&mut self, generation: u64, clashes: impl Fn(SocketAddr) -> bool) -> bool {
        let before = self.kept.len();
        self.kept.retain(|kept_addr, kept| {
            let keep = kept.claimed == generation || !clashes(*kept_addr);
            if !keep {
                kept.server.close();
            }
            keep
        });
        self.kept.len() < before
    }
}

/// What [`Servers::claim`] found for an address.
enum Claim {
    Kept(Arc<Server>),
    New { made_way: bool },
}

/// Routes attached to a server, until [`Attached::detach`].
pub struct Attached {
    server: Arc<Server>,
    requests: Arc<InFlight>,
}

impl Attached {
    /// The address the server listens on (the port bound for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Takes the routes off the server and waits, up to `grace`, for the
    /// requests they are answering: new requests wait for the next routes.
    /// Returns whether every request finished in time.
    pub async fn detach(&self, grace: Duration) -> bool {
        self.server.slot.send_if_modified(|slot| match slot {
            Slot::Attached(a) if Arc::ptr_eq(&a.requests, &self.requests) => {
                *slot = Slot::Empty;
                true
            }
            _ => false,
        });
        tokio::time::timeout(grace, self.requests.drained())
            .await
            .is_ok()
    }
}

impl Servers {
    pub fn new(budget: Arc<Budget>, telemetry: Arc<Telemetry>) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            budget,
            telemetry,
        }
    }

    /// Marks the start of a topology: servers it does not attach to are
    /// closed by [`Self::close_unclaimed`].
    pub fn begin(&self) {
        self.lock().generation += 1;
    }

    /// Attaches `app` to the server on `addr`, starting one if there is
    /// none. `component` names the listener in ferro's own metrics.
    pub async fn attach(
        &self,
        addr: SocketAddr,
        protocol: Protocol,
        limits: ConnectionLimits,
        component: &str,
        app: axum::Router,
    ) -> io::Result<Attached> {
        let attachment = Attachment {
            app,
            protocol,
            limits,
            counters: Arc::new(Counters::new(&self.telemetry, component, protocol)),
            requests: Arc::new(InFlight::default()),
        };
        let requests = attachment.requests.clone();
        let server = match self.claim(addr)? {
            Claim::Kept(server) => {
                server.slot.send_replace(Slot::Attached(attachment));
                server
            }
            Claim::New { made_way } => {
                let server = self.start(addr, attachment, made_way).await.map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot listen for {} on {addr}: {e}", protocol.as_str()),
                    )
                })?;
                let mut inner = self.lock();
                let claimed = inner.generation;
                inner.kept.insert(
                    if addr.port() == 0 { server.addr } else { addr },
                    KeptServer {
                        server: server.clone(),
                        claimed,
                    },
                );
                server
            }
        };
        Ok(Attached { server, requests })
    }

    /// The server kept for `addr`, marked as claimed by this topology; or
    /// none, after closing the kept servers that overlap `addr`.
    fn claim(&self, addr: SocketAddr) -> io::Result<Claim> {
        let mut inner = self.lock();
        let generation = inner.generation;
        if addr.port() == 0 {
            return Ok(Claim::New { made_way: false });
        }
        if let Some(kept) = inner.kept.get_mut(&addr) {
            if kept.claimed == generation {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{addr} is listened on twice"),
                ));
            }
            kept.claimed = generation;
            return Ok(Claim::Kept(kept.server.clone()));
        }
        // A kept server that overlaps this address (`0.0.0.0:4317`
        // becoming `127.0.0.1:4317`) would make the bind fail: close it
        // first, as a restart would.
        let made_way = inner.release(generation, |kept| overlap(kept, addr));
        Ok(Claim::New { made_way })
    }

    /// Binds `addr` and starts accepting with `attachment`'s routes.
    /// `made_way`: a server on an overlapping address was just closed, and
    /// its socket may take a moment to go.
    async fn start(
        &self,
        addr: SocketAddr,
        attachment: Attachment,
        mut made_way: bool,
    ) -> io::Result<Arc<Server>> {
        let mut attempts = 0;
        let listener = loop {
            match TcpListener::bind(addr).await {
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && addr.port() != 0 => {
                    // An overlap `overlap` does not foresee (a platform's
                    // own rules): make way for the new address too.
                    made_way |= {
                        let mut inner = self.lock();
                        let generation = inner.generation;
                        inner.release(generation, |kept| kept.port() == addr.port())
                    };
                    // A closed server's accept loop lets go of its socket
                    // as it ends.
                    if !made_way || attempts == 50 {
                        return Err(e);
                    }
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                other => break other?,
            }
        };
        let bound = listener.local_addr()?;
        let (slot, _) = watch::channel(Slot::Attached(attachment.clone()));
        let server = Arc::new(Server {
            addr: bound,
            slot,
            stop: CancellationToken::new(),
            waiting: AtomicUsize::new(0),
        });
        tokio::spawn(accept_loop(
            listener,
            server.clone(),
            self.budget.clone(),
            attachment,
        ));
        Ok(server)
    }

    /// Closes the servers the current topology did not attach to: their
    /// connections finish what is in flight and close, new ones are refused.
    pub fn close_unclaimed(&self) {
        let mut inner = self.lock();
        let generation = inner.generation;
        inner.release(generation, |_| true);
    }

    /// Requests on the server of `addr` waiting for routes.
    #[cfg(test)]
    fn waiting(&self, addr: SocketAddr) -> usize {
        self.lock()
            .kept
            .get(&addr)
            .map_or(0, |kept| kept.server.waiting.load(Ordering::Acquire))
    }

    /// Closes every server, for a final stop: requests in flight finish,
    /// new requests and connections are refused.
    pub fn close_all(&self) {
        for (_, kept) in self.lock().kept.drain() {
            kept.server.close();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map is consistent after any panic: take it as it is.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Serves `app` on `listener` on its own, outside [`Servers`] and the
/// receivers' budget: the self-telemetry listener, which receivers can
/// therefore never starve. Runs until `stop`.
pub fn serve_alone(
    listener: TcpListener,
    app: axum::Router,
    limits: ConnectionLimits,
    component: &str,
    telemetry: &Telemetry,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let addr = listener
        .local_addr()
        .unwrap_or(SocketAddr::from(([0; 4], 0)));
    let attachment = Attachment {
        app,
        protocol: Protocol::Http,
        limits,
        counters: Arc::new(Counters::new(telemetry, component, Protocol::Http)),
        requests: Arc::new(InFlight::default()),
    };
    let (slot, _) = watch::channel(Slot::Attached(attachment.clone()));
    let server = Arc::new(Server {
        addr,
        slot,
        stop,
        waiting: AtomicUsize::new(0),
    });
    let budget = Budget::new(limits.max_connections);
    tokio::spawn(accept_loop(listener, server, budget, attachment))
}

/// Whether sockets on `a` and `b` cannot both listen: the same port, and
/// one address takes the other's (the same address, or an unspecified one
/// of its family; a dual-stack `[::]` takes IPv4 too).
fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    let takes = |wide: std::net::IpAddr, other: std::net::IpAddr| match wide {
        std::net::IpAddr::V6(w) => w.is_unspecified(),
        std::net::IpAddr::V4(w) => w.is_unspecified() && other.is_ipv4(),
    };
    a.port() == b.port() && (a.ip() == b.ip() || takes(a.ip(), b.ip()) || takes(b.ip(), a.ip()))
}

/// A listener's figures (`ferro_listener_*`).
struct Counters {
    open: prometheus_client::metrics::gauge::Gauge,
    refused_max: Counter,
    refused_budget: Counter,
    closed_header: Counter,
    closed_idle: Counter,
    requests_refused: Counter,
}

impl Counters {
    fn new(telemetry: &Telemetry, component: &str, protocol: Protocol) -> Self {
        let listener = &telemetry.listeners;
        let labels = crate::telemetry::ListenerLabels {
            component: component.to_string(),
            protocol: protocol.as_str(),
        };
        let reason = |family: &prometheus_client::metrics::family::Family<
            crate::telemetry::ListenerReasonLabels,
            Counter,
        >,
                      reason: &'static str| {
            family
                .get_or_create(&crate::telemetry::ListenerReasonLabels {
                    component: labels.component.clone(),
                    protocol: labels.protocol,
                    reason,
                })
                .clone()
        };
        Self {
            open: listener.connections.get_or_create(&labels).clone(),
            refused_max: reason(&listener.refused, "max_connections"),
            refused_budget: reason(&listener.refused, "connection_budget"),
            closed_header: reason(&listener.closed, "read_header_timeout"),
            closed_idle: reason(&listener.closed, "idle_timeout"),
            requests_refused: reason(&listener.requests_refused, "no_receiver"),
        }
    }
}

/// Requests in flight on one attachment.
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    done: Notify,
}

impl InFlight {
    fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self.clone())
    }

    async fn drained(&self) {
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.done.notify_waiters();
        }
    }
}

/// A connection accepted within the limits; gives its place back when dropped.
struct Permit {
    budget: Arc<Budget>,
    open: Arc<AtomicUsize>,
    gauge: prometheus_client::metrics::gauge::Gauge,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.budget.give_back();
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests;
