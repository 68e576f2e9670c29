//! The Loki exporter: log streams to Loki's push API (`POST /loki/api/v1/push`),
//! as snappy-compressed `logproto.PushRequest` or as JSON.
//!
//! API: <https://grafana.com/docs/loki/latest/reference/loki-http-api/#ingest-logs>.
//!
//! Each stream is routed to its tenant (`tenant_label`, else `tenant_id`) and
//! to a shard by the hash of its labels. A shard keeps one request per tenant
//! filling until it reaches `batch_size` or its oldest entry has waited
//! `batch_wait`, and sends one request at a time, retrying it until it
//! succeeds or fails for good: so a stream's entries reach Loki in the order
//! they came, and a retry never lets a later request overtake it.

mod config;
pub mod encode;
mod sink;

pub use config::{Encoding, LokiConfig, RawLokiConfig, valid_tenant};
pub use sink::*;

#[cfg(test)]
mod tests;
