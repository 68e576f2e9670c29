//! The batcher: one batch filling per tenant, sent when full or when its
//! oldest item has waited `timeout`.

use super::config::BatchConfig;
use tokio::time::Instant;

use crate::delivery::Batch;
use crate::signal::SignalData;

pub struct Batcher<T> {
    config: BatchConfig,
    /// One batch filling per tenant, oldest first: batches of two tenants
    /// are never merged, since each goes out under its own `X-Scope-OrgID`.
    pending: Vec<Pending<T>>,
    /// A tenant processor comes after this stage: batches are also kept
    /// apart by the `X-Scope-OrgID` they came with and their admission
    /// ([`Batch::same_tenancy`]), which it still needs.
    origins: bool,
}

pub(super) struct Pending<T> {
    batch: Batch<T>,
    deadline: Instant,
}

/// Tenants with a batch filling at once; past this the oldest is sent early,
/// so that many quiet tenants cannot hold data outside the queues.
pub(super) const MAX_PENDING_TENANTS: usize = 64;

impl<T: SignalData> Batcher<T> {
    pub fn new(config: BatchConfig) -> Self {
        Self {
            config,
            pending: Vec::new(),
            origins: false,
        }
    }

    /// This batcher, for a pipeline with a tenant processor after it.
    pub fn keeping_origins(mut self) -> Self {
        self.origins = true;
        self
    }

    /// When the oldest pending batch must go out, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.deadline).min()
    }

    /// Adds `batch`; returns the batches that are ready to send, in order.
    pub fn push(&mut self, batch: Batch<T>, out: &mut Vec<Batch<T>>) {
        let at = match self.pending.iter().position(|p| {
            if self.origins {
                p.batch.same_tenancy(&batch)
            } else {
                p.batch.same_tenant(&batch)
            }
        }) {
            Some(i) => {
                self.pending[i].batch.merge(batch);
                i
            }
            None => {
                if self.pending.len() >= MAX_PENDING_TENANTS {
                    let oldest = self.pending.remove(0);
                    self.emit(oldest.batch, out);
                }
                self.pending.push(Pending {
                    batch,
                    deadline: Instant::now() + self.config.timeout.get(),
                });
                self.pending.len() - 1
            }
        };
        if self.pending[at].batch.items() >= self.config.send_batch_size {
            let full = self.pending.remove(at);
            self.emit(full.batch, out);
        }
    }

    /// Emits every pending batch whose deadline has passed.
    pub fn flush_due(&mut self, now: Instant, out: &mut Vec<Batch<T>>) {
        while let Some(i) = self.pending.iter().position(|p| p.deadline <= now) {
            let due = self.pending.remove(i);
            self.emit(due.batch, out);
        }
    }

    /// Emits whatever is pending (at shutdown).
    pub fn flush(&mut self, out: &mut Vec<Batch<T>>) {
        for pending in std::mem::take(&mut self.pending) {
            self.emit(pending.batch, out);
        }
    }

    /// Cuts `batch` to `send_batch_max_size` and hands it out.
    fn emit(&self, mut batch: Batch<T>, out: &mut Vec<Batch<T>>) {
        if let Some(max) = self.config.send_batch_max_size {
            while batch.items() > max {
                out.push(batch.split_to(max));
            }
        }
        if batch.items() > 0 {
            out.push(batch);
        }
    }
}
