//! Receivers: where telemetry enters ferro. Each hands what it accepts to its
//! pipelines through [`Inputs`], and refuses with its protocol's retryable
//! answer when they are full.

pub mod acks;
pub mod host_metrics;
pub(crate) mod intake;
pub mod journald;
pub mod kubernetes_events;
pub mod log_batch;
pub mod otlp;
pub mod pod_logs;
pub mod pprof;
pub mod prometheus;
mod registry;
mod running;
pub mod tenancy;
pub mod zipkin;

pub use registry::{Context, ReceiverConfig};
pub use running::{ReloadHook, RunningReceiver};

use crate::delivery::ToPipelines;
use crate::signal::PerSignal;

/// The pipelines a receiver feeds, per signal; `None` where no pipeline of
/// that signal lists the receiver.
pub type Inputs = PerSignal<ToPipelines>;
