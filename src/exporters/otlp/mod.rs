//! The OTLP exporter: traces to Tempo or any OTLP receiver, over gRPC or
//! OTLP/HTTP (protobuf), with compression, headers, TLS and retry rules from
//! the OTLP spec (<https://opentelemetry.io/docs/specs/otlp/#failures>).

mod config;
mod encode;
mod sink;

pub use config::{Compression, OtlpExporterConfig, Protocol, RawOtlpExporterConfig};
pub use sink::*;
