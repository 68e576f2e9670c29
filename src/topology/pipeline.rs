//! One pipeline's task: read from the receivers' channel, run the stages in
//! config order, hand the result to the exporters' queues.
//!
//! While a hand-off to a full exporter queue is pending the task reads no new
//! input, so the channel fills and the receivers start refusing: that is the
//! whole of backpressure, with nothing buffered beyond the bounded channel.
//!
//! Once told to close (its receivers have stopped, for a reload or a
//! shutdown), the task stops waiting for room: what it still holds (its
//! channel and the batch stage, bounded) goes into the exporter queues past
//! their bounds, so a reload or a shutdown never waits on a backend that is
//! down, and nothing accepted is dropped for it.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::delivery::{Batch, ExporterInput, deliver_all};
use crate::plan::Stage;
use crate::processors::batch::Batcher;
use crate::processors::{Processor, Processors};
use crate::signal::Fields;
use crate::telemetry::{ComponentLabels, Telemetry};
use prometheus_client::metrics::counter::Counter;

pub struct Pipeline<T> {
    pub name: String,
    pub input: mpsc::Receiver<Batch<T>>,
    /// Processors before the batch stage (all of them if there is none).
    pub before: Vec<Processor>,
    pub batcher: Option<Batcher<T>>,
    /// Processors after the batch stage, run on each batch it sends.
    pub after: Vec<Processor>,
    pub exporters: Vec<ExporterInput<T>>,
    /// Cancelled when the receivers have stopped: close the input and drain
    /// without waiting for room in the exporter queues.
    pub close: CancellationToken,
    /// Items of batches a processor panicked with.
    panicked: Counter,
}

impl<T: Fields> Pipeline<T> {
    pub fn new(
        name: String,
        input: mpsc::Receiver<Batch<T>>,
        stages: &[Stage],
        processors: &mut Processors,
        telemetry: &Telemetry,
        exporters: Vec<ExporterInput<T>>,
        close: CancellationToken,
    ) -> Self {
        let mut batcher = None;
        let mut before = Vec::new();
        let mut after = Vec::new();
        for stage in stages {
            match stage {
                Stage::Batch(config) => batcher = Some(Batcher::new(config.clone())),
                Stage::Process(id, config) => {
                    let side = if batcher.is_some() {
                        &mut after
                    } else {
                        &mut before
                    };
                    side.extend(processors.get(id, config, telemetry));
                }
            }
        }
        // A tenant processor after the batch stage still needs each push's
        // `X-Scope-OrgID` and admission: the batcher keeps them apart.
        if after.iter().any(|p| matches!(p, Processor::Tenant(_))) {
            batcher = batcher.map(Batcher::keeping_origins);
        }
        let labels = ComponentLabels {
            kind: "pipeline",
            component: name.clone(),
            signal: T::SIGNAL.as_str(),
        };
        Self {
            panicked: Telemetry::reason_counter(&telemetry.dropped, &labels, "processor_panic"),
            name,
            input,
            before,
            batcher,
            after,
            exporters,
            close,
        }
    }

    /// Runs `processors` over `batch` as [`Self::process`] does. A processor
    /// that panics (a bug) costs that batch, counted and reported to its
    /// acknowledgement, never the pipeline: the task goes on with the next.
    fn process_guarded(&self, processors: &[Processor], batch: Batch<T>, out: &mut Vec<Batch<T>>) {
        if processors.is_empty() {
            out.push(batch);
            return;
        }
        let items = batch.items() as u64;
        let acknowledgements = batch.acknowledgements();
        let mut produced = Vec::new();
        let run = std::panic::AssertUnwindSafe(|| Self::process(processors, batch, &mut produced));
        match std::panic::catch_unwind(run) {
            Ok(()) => out.append(&mut produced),
            Err(_) => {
                acknowledgements.dropped();
                self.panicked.inc_by(items);
                tracing::error!(
                    pipeline = %self.name,
                    items,
                    "a processor panicked on a batch, which is dropped; this is a bug in ferro, please report it"
                );
            }
        }
    }

    /// Runs `processors` in order over `batch`, appending the results to `out`.
    fn process(processors: &[Processor], batch: Batch<T>, out: &mut Vec<Batch<T>>) {
        let Some((first, rest)) = processors.split_first() else {
            out.push(batch);
            return;
        };
        let mut current = Vec::with_capacity(1);
        first.process(batch, &mut current);
        for processor in rest {
            let mut next = Vec::with_capacity(current.len());
            for batch in current {
                processor.process(batch, &mut next);
            }
            current = next;
        }
        out.extend(current);
    }

    pub async fn run(mut self) {
        let mut ready = Vec::new();
        let mut closing = false;
        loop {
            let deadline = self.batcher.as_ref().and_then(|b| b.deadline());
            tokio::select! {
                biased;
                _ = self.close.cancelled(), if !closing => {
                    // Refuse new sends; what is already queued is still read.
                    self.input.close();
                    closing = true;
                }
                item = self.input.recv() => match item {
                    Some(batch) => {
                        let mut processed = Vec::with_capacity(1);
                        self.process_guarded(&self.before, batch, &mut processed);
                        for batch in processed {
                            match &mut self.batcher {
                                Some(batcher) => batcher.push(batch, &mut ready),
                                None => ready.push(batch),
                            }
                        }
                    }
                    None => {
                        if let Some(batcher) = &mut self.batcher {
                            batcher.flush(&mut ready);
                        }
                        for batch in self.after_batching(&mut ready) {
                            deliver_all(&self.exporters, batch, &self.close).await;
                        }
                        tracing::debug!(pipeline = %self.name, "pipeline drained");
                        return;
                    }
                },
                _ = sleep_until(deadline), if deadline.is_some() => {
                    if let Some(batcher) = &mut self.batcher {
                        batcher.flush_due(tokio::time::Instant::now(), &mut ready);
                    }
                }
            }
            for batch in self.after_batching(&mut ready) {
                deliver_all(&self.exporters, batch, &self.close).await;
            }
        }
    }

    /// What the batch stage let out, through the processors after it.
    fn after_batching(&self, ready: &mut Vec<Batch<T>>) -> Vec<Batch<T>> {
        if self.batcher.is_none() || self.after.is_empty() {
            return std::mem::take(ready);
        }
        let mut out = Vec::with_capacity(ready.len());
        for batch in ready.drain(..) {
            self.process_guarded(&self.after, batch, &mut out);
        }
        out
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::{MemoryLimiter, Outcome};
    use crate::signal::Traces;
    use crate::signal::traces::tests::sample;

    #[tokio::test]
    async fn a_processor_that_panics_costs_its_batch_not_the_pipeline() {
        let telemetry = Telemetry::new();
        let (_tx, rx) = mpsc::channel(1);
        let pipeline: Pipeline<Traces> = Pipeline::new(
            "traces".into(),
            rx,
            &[],
            &mut Processors::default(),
            &telemetry,
            Vec::new(),
            CancellationToken::new(),
        );
        let limiter = MemoryLimiter::new(1 << 20);
        let stages = [Processor::PanicOnMany];
        let (ticket, waiter) = limiter.try_acquire(10).unwrap().with_ack();
        let mut out = Vec::new();
        pipeline.process_guarded(&stages, Batch::new(sample(1, 1, 3), ticket), &mut out);
        assert!(out.is_empty());
        assert_eq!(
            waiter.wait().await,
            Outcome::Dropped,
            "the loss is reported"
        );
        assert_eq!(limiter.used(), 0, "and its memory released");
        assert_eq!(pipeline.panicked.get(), 3);
        // The next batch goes through.
        pipeline.process_guarded(
            &stages,
            Batch::new(sample(1, 1, 1), limiter.try_acquire(10).unwrap()),
            &mut out,
        );
        assert_eq!(out.len(), 1);
    }
}
