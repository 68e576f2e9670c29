//! Listening sockets that outlive a topology.
//!
//! A reload stops the old receivers (and drains their pipelines) before the
//! new ones start. Were their sockets closed in between, a client that
//! connects then would be refused. So every socket bound on a fixed port is
//! also held here, and the next topology's receiver on the same address
//! takes it over: connections made in between wait in the kernel's accept
//! queue and are served by the new receiver. Sockets the new topology does
//! not listen on are closed once it has started. An address with port 0
//! gets a new socket each time: there is nothing to keep.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;

#[derive(Default)]
pub struct Listeners {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Counts topology starts; a socket claimed in the current one is in use.
    generation: u64,
    held: HashMap<SocketAddr, Held>,
}

struct Held {
    socket: std::net::TcpListener,
    claimed: u64,
}

impl Listeners {
    /// Marks the start of a topology: sockets it does not claim are closed
    /// by [`Self::close_unclaimed`].
    pub fn begin(&self) {
        self.lock().generation += 1;
    }

    /// A listener on `addr`: the socket held for it if there is one, else a
    /// new one. An address claimed twice in one topology is in use.
    pub async fn bind(&self, addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
        if addr.port() != 0 {
            let mut inner = self.lock();
            let generation = inner.generation;
            if let Some(held) = inner.held.get_mut(&addr) {
                if held.claimed == generation {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("{addr} is listened on twice"),
                    ));
                }
                held.claimed = generation;
                return tokio::net::TcpListener::from_std(held.socket.try_clone()?);
            }
            // A held socket that overlaps this address (`0.0.0.0:4317`
            // becoming `127.0.0.1:4317`) would make this bind fail: close
            // it first, as a restart would.
            inner
                .held
                .retain(|held_addr, held| held.claimed == generation || !overlap(*held_addr, addr));
        }
        let listener = match tokio::net::TcpListener::bind(addr).await {
            // An overlap this module does not foresee (a platform's own
            // rules): make way for the new address and try once more.
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && addr.port() != 0 => {
                let released = {
                    let mut inner = self.lock();
                    let generation = inner.generation;
                    let before = inner.held.len();
                    inner.held.retain(|held_addr, held| {
                        held.claimed == generation || held_addr.port() != addr.port()
                    });
                    inner.held.len() < before
                };
                if !released {
                    return Err(e);
                }
                tokio::net::TcpListener::bind(addr).await?
            }
            other => other?,
        };
        if addr.port() == 0 {
            return Ok(listener);
        }
        // The held copy shares the socket (and its non-blocking flag).
        let socket = listener.into_std()?;
        let held = socket.try_clone()?;
        let mut inner = self.lock();
        let claimed = inner.generation;
        inner.held.insert(
            addr,
            Held {
                socket: held,
                claimed,
            },
        );
        tokio::net::TcpListener::from_std(socket)
    }

    /// Closes the held sockets the current topology did not claim: their
    /// queued connections are reset, new ones refused.
    pub fn close_unclaimed(&self) {
        let mut inner = self.lock();
        let generation = inner.generation;
        inner.held.retain(|_, held| held.claimed == generation);
    }

    /// Lets go of every socket, for a final stop: once the receivers have
    /// stopped, connections are refused rather than queued.
    pub fn close_all(&self) {
        self.lock().held.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map is consistent after any panic: take it as it is.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_connection_made_between_two_topologies_is_served_by_the_second() {
        let listeners = Listeners::default();
        // A fixed port: take one, free it, listen on it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        listeners.begin();
        let first = listeners.bind(addr).await.unwrap();
        assert!(listeners.bind(addr).await.is_err(), "claimed twice");
        drop(first); // the first topology stops

        // A client connects while no receiver runs.
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client.write_all(b"ping").await.unwrap();

        listeners.begin();
        let second = listeners.bind(addr).await.unwrap();
        listeners.close_unclaimed();
        let (mut served, _) = tokio::time::timeout(Duration::from_secs(5), second.accept())
            .await
            .unwrap()
            .unwrap();
        let mut buf = [0u8; 4];
        served.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");

        // The same port under another address: the held socket makes way.
        drop(second);
        listeners.begin();
        let any: SocketAddr = format!("0.0.0.0:{port}").parse().unwrap();
        let third = listeners.bind(any).await.unwrap();
        listeners.close_unclaimed();
        drop(third);

        // A topology without this address closes it.
        listeners.begin();
        listeners.close_unclaimed();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
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

    #[tokio::test]
    async fn port_zero_is_never_held() {
        let listeners = Listeners::default();
        listeners.begin();
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let a = listeners.bind(addr).await.unwrap();
        let b = listeners.bind(addr).await.unwrap();
        assert_ne!(a.local_addr().unwrap(), b.local_addr().unwrap());
        let bound = a.local_addr().unwrap();
        drop(a);
        assert!(tokio::net::TcpStream::connect(bound).await.is_err());
    }
}
