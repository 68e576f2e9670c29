//! OTLP wire details shared by the receiver and the exporter: the gRPC
//! method paths, a pass-through gRPC codec, OTLP/JSON, and the `google.rpc`
//! error model.
//!
//! Spec: <https://opentelemetry.io/docs/specs/otlp/>.

pub mod codec;
pub mod json;
pub mod sample;
pub mod scan;
pub mod status;

/// gRPC service and method names of OTLP export.
pub const TRACE_SERVICE: &str = "opentelemetry.proto.collector.trace.v1.TraceService";
pub const METRICS_SERVICE: &str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
pub const LOGS_SERVICE: &str = "opentelemetry.proto.collector.logs.v1.LogsService";
pub const TRACE_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Content types of OTLP/HTTP.
pub const CONTENT_TYPE_PROTOBUF: &str = "application/x-protobuf";
pub const CONTENT_TYPE_JSON: &str = "application/json";
