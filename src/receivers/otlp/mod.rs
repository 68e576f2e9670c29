//! The OTLP receiver: OTLP/gRPC and OTLP/HTTP (protobuf and JSON), gzip and
//! zstd bodies, size limits, partial success, and backpressure answers the
//! OTLP clients know to retry (gRPC `UNAVAILABLE`/`RESOURCE_EXHAUSTED` with
//! `RetryInfo`, HTTP 503/429 with `Retry-After`).
//!
//! Spec: <https://opentelemetry.io/docs/specs/otlp/>.

mod config;
mod grpc;
mod http;
pub mod logs;
pub mod metrics;
mod receiver;
mod rejections;
mod values;

pub use config::{OtlpReceiverConfig, RawOtlpReceiverConfig};
pub use receiver::*;

#[cfg(test)]
mod tests;
