//! Sending one batch once: the [`Sink`] an exporter's senders call (retries
//! are the outbox's job), and the one sink that sends nowhere but this
//! process, for `debug` and `blackhole`.

use std::future::Future;
use std::io::Write as _;

use super::debug::{Render, Verbosity};
use super::{ExportError, Sent};
use crate::delivery::Batch;
use crate::signal::SignalData;

/// Sends one batch of `T` once. Retrying is the outbox's job.
pub trait Sink<T>: Send + Sync + 'static {
    fn send(&self, batch: &Batch<T>) -> impl Future<Output = Result<Sent, ExportError>> + Send;
}

/// A sink inside the process, for every signal.
#[derive(Clone, Copy, Debug)]
pub enum LocalSink {
    /// Prints each batch to stdout (`debug`).
    Print(Verbosity),
    /// Accepts everything; the outbox's `sent` counter is the record
    /// (`blackhole`).
    Discard,
}

impl<T: SignalData + Render> Sink<T> for LocalSink {
    async fn send(&self, batch: &Batch<T>) -> Result<Sent, ExportError> {
        if let Self::Print(verbosity) = self {
            let text = batch.data.render(*verbosity);
            let mut stdout = std::io::stdout().lock();
            // A closed stdout must not stop the pipeline: the debug output is a courtesy.
            let _ = stdout.write_all(text.as_bytes());
            let _ = stdout.flush();
        }
        Ok(Sent::default())
    }
}
