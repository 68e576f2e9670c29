use super::*;
use crate::testing::eventually;
use axum::routing::get;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn servers(budget: usize) -> Servers {
    Servers::new(Budget::new(budget), Telemetry::new())
}

fn app(text: &'static str) -> axum::Router {
    axum::Router::new().route("/", get(move || async move { text }))
}

fn limits(max_connections: usize, header: u64, idle: u64) -> ConnectionLimits {
    ConnectionLimits {
        max_connections,
        read_header_timeout: Duration::from_millis(header),
        idle_timeout: Duration::from_millis(idle),
    }
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: ferro\r\n\r\n";

/// A new port on loopback.
fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Attaches `app` to the server on `addr` as an HTTP listener.
async fn attach(
    servers: &Servers,
    addr: SocketAddr,
    limits: ConnectionLimits,
    app: axum::Router,
) -> Attached {
    servers
        .attach(addr, Protocol::Http, limits, "test", app)
        .await
        .unwrap()
}

/// Reads one response with a body of `len` bytes off a kept-alive
/// connection: its status line and body.
async fn response(stream: &mut TcpStream) -> (String, String) {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= len {
                return (
                    head.lines().next().unwrap().to_string(),
                    body[..len].to_string(),
                );
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(
            n > 0,
            "closed without an answer: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

/// Waits until the server closes `stream` (reads to the end).
async fn closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
        .await
        .expect("the server closes the connection")
        .ok();
    rest
}

#[tokio::test]
async fn a_request_made_while_routes_are_replaced_is_answered_by_the_next_on_the_same_connection() {
    let servers = servers(100);
    servers.begin();
    let first = attach(&servers, loopback(), limits(10, 5000, 60_000), app("one")).await;
    let addr = first.local_addr();
    servers.close_unclaimed();

    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(GET).await.unwrap();
    assert_eq!(response(&mut client).await.1, "one");

    // The receiver stops: its routes go, the connection stays.
    assert!(first.detach(Duration::from_secs(1)).await);
    client.write_all(GET).await.unwrap();
    eventually("the request to wait for routes", || {
        servers.waiting(addr) == 1
    })
    .await;

    // The next topology attaches to the same address.
    servers.begin();
    let second = attach(&servers, addr, limits(10, 5000, 60_000), app("two")).await;
    servers.close_unclaimed();
    assert_eq!(second.local_addr(), addr);
    let (status, body) = response(&mut client).await;
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "two"));

    // A topology that does not listen there closes it.
    assert!(second.detach(Duration::from_secs(1)).await);
    servers.begin();
    servers.close_unclaimed();
    closed(&mut client).await;
}

#[tokio::test]
async fn a_detach_waits_for_the_requests_in_flight() {
    let servers = servers(100);
    servers.begin();
    let release = Arc::new(Notify::new());
    let slow = {
        let release = release.clone();
        axum::Router::new().route(
            "/",
            get(move || async move {
                release.notified().await;
                "done"
            }),
        )
    };
    let attached = attach(&servers, loopback(), limits(10, 5000, 60_000), slow).await;
    let addr = attached.local_addr();
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(GET).await.unwrap();
    eventually("the request to be in flight", || {
        attached.requests.count.load(Ordering::Acquire) == 1
    })
    .await;
    assert!(
        !attached.detach(Duration::from_millis(50)).await,
        "not finished within the grace"
    );
    release.notify_one();
    assert!(attached.detach(Duration::from_secs(10)).await);
    assert_eq!(response(&mut client).await.1, "done");
}

#[tokio::test]
async fn a_partial_head_is_cut_off_and_an_idle_connection_closed() {
    let servers = servers(100);
    let telemetry_counters = |servers: &Servers| {
        let text = servers.telemetry.encode();
        let count = |reason: &str| {
            text.lines()
                .filter(|l| {
                    l.starts_with("ferro_listener_connections_closed_total") && l.contains(reason)
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        };
        (count("read_header_timeout"), count("idle_timeout"))
    };
    servers.begin();
    let attached = attach(&servers, loopback(), limits(10, 300, 600), app("ok")).await;
    let addr = attached.local_addr();

    // Half a request line, then nothing.
    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial.write_all(b"POST /v1/traces HT").await.unwrap();
    // A connection that never sends anything (an HTTP/2 client without its preface).
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // A kept-alive connection after one request.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(GET).await.unwrap();
    assert_eq!(response(&mut idle).await.1, "ok");
    // A second request whose head stops halfway.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled.write_all(GET).await.unwrap();
    assert_eq!(response(&mut stalled).await.1, "ok");
    stalled.write_all(b"GET / HTTP/1.1\r\nHost:").await.unwrap();

    assert!(
        closed(&mut partial).await.is_empty(),
        "closed without an answer"
    );
    closed(&mut silent).await;
    closed(&mut idle).await;
    closed(&mut stalled).await;
    eventually("the closes to be counted", || {
        telemetry_counters(&servers) == (3.0, 1.0)
    })
    .await;
}

#[tokio::test]
async fn connections_past_the_cap_or_the_budget_are_refused_with_503() {
    let servers = servers(3);
    servers.begin();
    let attached = attach(&servers, loopback(), limits(2, 5000, 60_000), app("ok")).await;
    let other = attach(&servers, loopback(), limits(10, 5000, 60_000), app("ok")).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(attached.local_addr()).await.unwrap();
        c.write_all(GET).await.unwrap();
        assert_eq!(response(&mut c).await.1, "ok");
        held.push(c);
    }
    // The listener's own cap.
    let mut third = TcpStream::connect(attached.local_addr()).await.unwrap();
    let answer = String::from_utf8(closed(&mut third).await).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable"),
        "{answer}"
    );
    assert!(answer.contains("Retry-After: 1"));
    // The budget all listeners share: one place left, then none.
    let mut b1 = TcpStream::connect(other.local_addr()).await.unwrap();
    b1.write_all(GET).await.unwrap();
    assert_eq!(response(&mut b1).await.1, "ok");
    let mut b2 = TcpStream::connect(other.local_addr()).await.unwrap();
    let answer = String::from_utf8(closed(&mut b2).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    // A place given back is taken again.
    drop(held.pop());
    eventually("the closed connection to give its place back", || {
        servers.budget.used.load(Ordering::Acquire) == 2
    })
    .await;
    let mut again = TcpStream::connect(attached.local_addr()).await.unwrap();
    again.write_all(GET).await.unwrap();
    assert_eq!(response(&mut again).await.1, "ok");
}

#[tokio::test]
async fn an_address_is_attached_once_per_topology_and_overlaps_make_way() {
    let servers = servers(100);
    servers.begin();
    let first = attach(&servers, loopback(), limits(10, 5000, 60_000), app("one")).await;
    let addr = first.local_addr();
    servers.begin();
    let again = attach(&servers, addr, limits(10, 5000, 60_000), app("two")).await;
    let twice = servers
        .attach(
            addr,
            Protocol::Http,
            limits(10, 5000, 60_000),
            "b",
            app("three"),
        )
        .await;
    assert_eq!(
        twice.err().map(|e| e.kind()),
        Some(io::ErrorKind::AddrInUse)
    );
    // The same port on every address: the held server makes way.
    servers.begin();
    let any: SocketAddr = format!("0.0.0.0:{}", addr.port()).parse().unwrap();
    let wide = attach(&servers, any, limits(10, 5000, 60_000), app("four")).await;
    servers.close_unclaimed();
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(GET).await.unwrap();
    assert_eq!(response(&mut client).await.1, "four");
    drop((first, again, wide));
}

#[test]
fn overlapping_addresses() {
    let a = |s: &str| s.parse::<SocketAddr>().unwrap();
    assert!(overlap(a("0.0.0.0:4317"), a("127.0.0.1:4317")));
    assert!(overlap(a("[::]:4317"), a("10.0.0.5:4317")));
    assert!(overlap(a("[::]:4317"), a("0.0.0.0:4317")));
    assert!(!overlap(a("10.0.0.5:4317"), a("127.0.0.1:4317")));
    assert!(!overlap(a("0.0.0.0:4317"), a("[::1]:4317")));
    assert!(!overlap(a("0.0.0.0:4317"), a("0.0.0.0:4318")));
}

#[test]
fn the_budget_leaves_a_quarter_of_the_descriptors() {
    assert_eq!(Budget::from_fd_limit(1024).limit(), 768);
    assert_eq!(Budget::from_fd_limit(100).limit(), 36);
    assert_eq!(Budget::from_fd_limit(1 << 20).limit(), 786_432);
}

/// A server whose routes are taken off before it accepts anything (a reload
/// right after the start) still takes the first connection, which waits for
/// the next routes like any request.
#[tokio::test]
async fn a_first_connection_during_a_reload_is_taken_and_served() {
    let servers = servers(100);
    servers.begin();
    let first = attach(&servers, loopback(), limits(10, 5000, 60_000), app("one")).await;
    let addr = first.local_addr();
    assert!(first.detach(Duration::from_secs(1)).await);
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(GET).await.unwrap();
    eventually("the request to wait for routes", || {
        servers.waiting(addr) == 1
    })
    .await;
    servers.begin();
    let _second = attach(&servers, addr, limits(10, 5000, 60_000), app("two")).await;
    assert_eq!(response(&mut client).await.1, "two");
}
