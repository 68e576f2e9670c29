//! The batch stage: groups what the receivers accept into batches of a target
//! size, sent when full or when the oldest item has waited `timeout`.
//!
//! It is a stage the pipeline runner owns rather than a function over a batch,
//! because it holds items across calls and has a timer. Larger inputs are cut
//! to `send_batch_max_size` so that no exporter request grows without bound.

mod config;

pub use config::{BatchConfig, RawBatchConfig};

use tokio::time::Instant;

use crate::delivery::Batch;
use crate::signal::SignalData;

pub struct Batcher<T> {
    config: BatchConfig,
    pending: Option<Batch<T>>,
    deadline: Option<Instant>,
}

impl<T: SignalData> Batcher<T> {
    pub fn new(config: BatchConfig) -> Self {
        Self {
            config,
            pending: None,
            deadline: None,
        }
    }

    /// When the pending batch must go out, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Adds `batch`; returns the batches that are ready to send, in order.
    pub fn push(&mut self, batch: Batch<T>, out: &mut Vec<Batch<T>>) {
        match &mut self.pending {
            Some(pending) => pending.merge(batch),
            None => {
                self.pending = Some(batch);
                self.deadline = Some(Instant::now() + self.config.timeout.get());
            }
        }
        let items = self.pending.as_ref().map_or(0, |p| p.items());
        if items >= self.config.send_batch_size {
            self.flush(out);
        }
    }

    /// Emits whatever is pending (on timeout and at shutdown).
    pub fn flush(&mut self, out: &mut Vec<Batch<T>>) {
        self.deadline = None;
        let Some(mut pending) = self.pending.take() else {
            return;
        };
        if let Some(max) = self.config.send_batch_max_size {
            while pending.items() > max {
                out.push(pending.split_to(max));
            }
        }
        if pending.items() > 0 {
            out.push(pending);
        }
    }
}

#[cfg(test)]
mod tests;
