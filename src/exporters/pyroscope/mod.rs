//! The Pyroscope exporter: profiles to Pyroscope's push API
//! (`POST /push.v1.PusherService/Push`, connect protocol, protobuf
//! `push.v1.PushRequest`, <https://connectrpc.com/docs/protocol/#unary-request>),
//! or to the older `POST /ingest?name=...&format=pprof` as a fallback.
//!
//! API: <https://grafana.com/docs/pyroscope/latest/reference-server-api/>.
//!
//! Each sender takes a batch from the queue, drops (and counts) profiles
//! whose labels Pyroscope would refuse, packs the rest into push requests of
//! at most `max_request_size` bytes (one profile per request for `/ingest`)
//! and sends them one at a time with the runner's retries: a request is
//! encoded once, so a retry sends the same bytes and the same profile ids.
//! A request goes as the tenant a tenant processor gave its batch, else as
//! `tenant_id`.

mod config;
pub mod encode;
mod sink;

pub use config::{Api, Compression, PyroscopeConfig, RawPyroscopeConfig};
pub use sink::*;

#[cfg(test)]
mod tests;
