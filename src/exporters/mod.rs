//! Exporters: each owns a bounded delivery queue and `num_consumers` senders
//! that send with retries, and says per failure whether it may be retried.

pub mod blackhole;
pub mod debug;
mod error;
pub mod http;
pub mod loki;
pub mod otlp;
mod outbox;
pub mod pyroscope;
mod registry;
pub mod remote_write;
mod retry;
mod running;
mod sink;

pub use error::{ExportError, Sent};
pub use http::{
    ORG_ID, check_header, check_headers_without_tenant, check_timeout, check_url,
    headers_with_tenant, post_request,
};
pub use outbox::{Delivery, Outbox};
pub use registry::ExporterConfig;
pub use retry::{Backoff, RawRetryConfig, RetryConfig};
pub use running::{ExporterStartError, RunningExporter};
pub use sink::{LocalSink, Sink};
