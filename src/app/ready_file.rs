//! `ferro run --ready-file PATH`: where ferro listens, once it does.
//!
//! A supervisor or a test that starts ferro on port 0 learns the ports from
//! this file instead of probing for a free port (which another process may
//! take before ferro binds it). The file is a JSON object:
//!
//! ```json
//! {"telemetry": "127.0.0.1:34567",
//!  "receivers": {"otlp.default": {"grpc": "127.0.0.1:4317", "http": "127.0.0.1:4318"}}}
//! ```
//!
//! It is written once ferro is ready, and again after every reload that
//! replaced the topology (the ports of port-0 listeners may change then).
//! It is replaced atomically (a temp file beside it, renamed over it), so a
//! reader sees the previous or the next version, never half of one.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;

use crate::topology::Topology;

/// Writes where `telemetry` (the self-telemetry listener, if enabled) and
/// `topology`'s receivers listen to `path`, atomically.
pub fn write(path: &Path, telemetry: Option<SocketAddr>, topology: &Topology) -> io::Result<()> {
    let mut receivers: BTreeMap<String, BTreeMap<&str, String>> = BTreeMap::new();
    for (id, protocol, addr) in topology.listen_addrs() {
        receivers
            .entry(id.to_string())
            .or_default()
            .insert(protocol, addr.to_string());
    }
    let text = serde_json::json!({
        "telemetry": telemetry.map(|a| a.to_string()),
        "receivers": receivers,
    })
    .to_string();
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    std::fs::write(&temp, text + "\n")?;
    std::fs::rename(&temp, path)
}
