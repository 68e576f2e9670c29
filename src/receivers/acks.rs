//! What a receiver that keeps its own buffer (a log file, the journal)
//! counts as it hands entries to its pipelines and hears back: entries
//! accepted, refused and offered again (by reason), and acknowledged (by
//! outcome). Shared by the pod log tailer and the journald receiver.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::delivery::{Outcome, Refusal};
use crate::telemetry::{ComponentLabels, ReasonLabels, Telemetry};

/// The counters, resolved once.
pub struct AckCounters {
    accepted: Counter,
    refused_pipeline: Counter,
    refused_memory: Counter,
    delivered: Counter,
    dropped: Counter,
}

impl AckCounters {
    /// The component's counters; `acknowledged` is its own family of
    /// acknowledgements by outcome (`ferro_<receiver>_acknowledged_entries`).
    pub fn new(
        telemetry: &Telemetry,
        labels: &ComponentLabels,
        acknowledged: &Family<ReasonLabels, Counter>,
    ) -> Self {
        let refused = |refusal: Refusal| {
            Telemetry::reason_counter(&telemetry.refused, labels, refusal.reason())
        };
        Self {
            accepted: Telemetry::counter(&telemetry.accepted, labels),
            refused_pipeline: refused(Refusal::PipelineFull),
            refused_memory: refused(Refusal::MemoryLimit),
            delivered: Telemetry::reason_counter(acknowledged, labels, "delivered"),
            dropped: Telemetry::reason_counter(acknowledged, labels, "dropped"),
        }
    }

    /// `items` handed to the pipelines.
    pub fn accepted(&self, items: u64) {
        self.accepted.inc_by(items);
    }

    /// `items` refused (they are offered again): by the memory limit, or
    /// by a full pipeline.
    pub fn refused(&self, refusal: Refusal, items: u64) {
        match refusal {
            Refusal::MemoryLimit => self.refused_memory.inc_by(items),
            _ => self.refused_pipeline.inc_by(items),
        };
    }

    /// A batch of `items` finished: delivered, or dropped by an exporter
    /// (which counted why). An interrupted delivery counts nothing here:
    /// the next start sends those again.
    pub fn acknowledged(&self, outcome: Outcome, items: u64) {
        match outcome {
            Outcome::Delivered => self.delivered.inc_by(items),
            Outcome::Dropped => self.dropped.inc_by(items),
            Outcome::Interrupted => 0,
        };
    }
}
