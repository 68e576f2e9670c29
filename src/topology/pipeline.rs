//! One pipeline's task: read from the receivers' channel, run the stages in
//! config order, hand the result to the exporters' queues.
//!
//! While a hand-off to a full exporter queue is pending the task reads no new
//! input, so the channel fills and the receivers start refusing: that is the
//! whole of backpressure, with nothing buffered beyond the bounded channel.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::fanout::{ExporterInput, deliver_all};
use crate::config::Stage;
use crate::delivery::Batch;
use crate::processors::batch::Batcher;
use crate::processors::{Built, Processor};
use crate::signal::Fields;
use crate::telemetry::Telemetry;

pub struct Pipeline<T> {
    pub name: String,
    pub input: mpsc::Receiver<Batch<T>>,
    /// Processors before the batch stage (all of them if there is none).
    pub before: Vec<Processor>,
    pub batcher: Option<Batcher<T>>,
    /// Processors after the batch stage, run on each batch it sends.
    pub after: Vec<Processor>,
    pub exporters: Vec<ExporterInput<T>>,
    /// Cancelled when the receivers have stopped: close the input and drain.
    pub close: CancellationToken,
}

impl<T: Fields> Pipeline<T> {
    pub fn new(
        name: String,
        input: mpsc::Receiver<Batch<T>>,
        stages: &[Stage],
        built: &mut Built,
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
                    side.extend(built.get(id, config, telemetry));
                }
            }
        }
        // A tenant processor after the batch stage still needs each push's
        // `X-Scope-OrgID` and admission: the batcher keeps them apart.
        if after.iter().any(|p| matches!(p, Processor::Tenant(_))) {
            batcher = batcher.map(Batcher::keeping_origins);
        }
        Self {
            name,
            input,
            before,
            batcher,
            after,
            exporters,
            close,
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
                        Self::process(&self.before, batch, &mut processed);
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
                            deliver_all(&self.exporters, batch).await;
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
                deliver_all(&self.exporters, batch).await;
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
            Self::process(&self.after, batch, &mut out);
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
