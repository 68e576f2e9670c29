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
use crate::signal::SignalData;

pub struct Pipeline<T> {
    pub name: String,
    pub input: mpsc::Receiver<Batch<T>>,
    pub batcher: Option<Batcher<T>>,
    pub exporters: Vec<ExporterInput<T>>,
    /// Cancelled when the receivers have stopped: close the input and drain.
    pub close: CancellationToken,
}

impl<T: SignalData> Pipeline<T> {
    pub fn new(
        name: String,
        input: mpsc::Receiver<Batch<T>>,
        stages: &[Stage],
        exporters: Vec<ExporterInput<T>>,
        close: CancellationToken,
    ) -> Self {
        let mut batcher = None;
        for stage in stages {
            match stage {
                Stage::Batch(config) => batcher = Some(Batcher::new(config.clone())),
            }
        }
        Self {
            name,
            input,
            batcher,
            exporters,
            close,
        }
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
                    Some(batch) => match &mut self.batcher {
                        Some(batcher) => batcher.push(batch, &mut ready),
                        None => ready.push(batch),
                    },
                    None => {
                        if let Some(batcher) = &mut self.batcher {
                            batcher.flush(&mut ready);
                        }
                        for batch in ready.drain(..) {
                            deliver_all(&self.exporters, batch).await;
                        }
                        tracing::debug!(pipeline = %self.name, "pipeline drained");
                        return;
                    }
                },
                _ = sleep_until(deadline), if deadline.is_some() => {
                    if let Some(batcher) = &mut self.batcher {
                        batcher.flush(&mut ready);
                    }
                }
            }
            for batch in ready.drain(..) {
                deliver_all(&self.exporters, batch).await;
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
