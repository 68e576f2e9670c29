//! The remote-write exporter: metrics to Prometheus, Mimir, Thanos receive,
//! VictoriaMetrics — remote-write 1.0 (`prometheus.WriteRequest`) or 2.0
//! (`io.prometheus.write.v2.Request`), protobuf + snappy.
//!
//! Specs: <https://prometheus.io/docs/specs/prw/remote_write_spec/> and
//! <https://prometheus.io/docs/specs/prw/remote_write_spec_2_0/>.
//!
//! Series are spread over shards by the hash of their labels, and each shard
//! sends one request at a time, retrying it until it succeeds or fails for
//! good: so every series' samples arrive in order, which receivers require.
//! The shard count follows the backlog between `min_shards` and `max_shards`;
//! a reshard lets the old shards finish before the new ones start.

mod config;
mod encode;
mod sink;

pub use config::{ProtocolVersion, RawRemoteWriteConfig, RemoteWriteConfig};
pub use sink::*;

#[cfg(test)]
mod tests;
