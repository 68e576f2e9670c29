//! The kinds of telemetry ferro carries and their in-memory models.
//!
//! Each signal keeps the model its main destination speaks, so the hot paths
//! convert nothing: traces stay OTLP `ResourceSpans` from receipt to export.
//! Metrics are Prometheus series, logs Loki streams, profiles pprof bytes with
//! Pyroscope's series labels.

pub mod fields;
pub mod labels;
pub mod logs;
pub mod metrics;
pub mod names;
pub mod per_signal;
pub mod persist;
pub mod profiles;
pub mod traces;

use std::fmt;

pub use fields::{FieldVisitor, Fields, Group, Naming};
pub use labels::{Labels, LabelsBuilder};
pub use logs::Logs;
pub use metrics::Metrics;
pub use per_signal::{PerSignal, Pick, SignalFamily};
pub use persist::{Persist, RestoreError};
pub use profiles::Profiles;
pub use traces::Traces;

/// A kind of telemetry; each pipeline carries exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Signal {
    Traces,
    Metrics,
    Logs,
    Profiles,
}

impl Signal {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "traces" => Some(Self::Traces),
            "metrics" => Some(Self::Metrics),
            "logs" => Some(Self::Logs),
            "profiles" => Some(Self::Profiles),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Traces => "traces",
            Self::Metrics => "metrics",
            Self::Logs => "logs",
            Self::Profiles => "profiles",
        }
    }

    /// What one item of this signal is called in counters and logs.
    pub fn item_name(self) -> &'static str {
        match self {
            Self::Traces => "spans",
            Self::Metrics => "samples",
            Self::Logs => "log records",
            Self::Profiles => "profiles",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the pipeline runtime needs from a signal's data: counting, sizing,
/// merging and splitting, and a stored form for disk queues. Everything
/// else is the components' business.
pub trait SignalData: Clone + Send + Sync + Pick + Persist + 'static {
    const SIGNAL: Signal;

    /// Items (spans, samples, log records, profiles): what batch sizes count.
    fn item_count(&self) -> usize;

    /// Bytes this data takes on the wire; what queues and the memory limit count.
    fn encoded_len(&self) -> usize;

    /// Appends `other` to `self`.
    fn merge(&mut self, other: Self);

    /// Removes and returns the first `n` items (fewer if there are fewer).
    fn split_to(&mut self, n: usize) -> Self;
}
