//! The exporter delivery queue: bounded in items and in bytes.
//!
//! Producers (pipelines) wait while it is full, which is how a slow exporter
//! slows its pipelines and, through them, the receivers; consumers (the
//! exporter's senders) take batches in order. An empty queue admits a batch of
//! any size so that one oversized batch cannot wedge it.

use prometheus_client::metrics::gauge::Gauge;
use serde::Deserialize;
use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Batch;
use crate::config::{ByteSize, FieldError};
use crate::signal::SignalData;

/// What a pipeline does when an exporter's queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFull {
    /// Wait: the pipeline stops reading and receivers refuse (nothing lost).
    Block,
    /// Drop the newest batch and count it: for data that is worth less than
    /// the sender's time.
    Drop,
}

/// `queue = { ... }` of any exporter.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct QueueConfig {
    /// Most items (spans, samples, records) waiting to be sent.
    pub max_items: usize,
    /// Most encoded bytes waiting to be sent.
    pub max_bytes: ByteSize,
    /// Parallel senders taking batches from the queue.
    pub num_consumers: usize,
    pub on_full: OnFull,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_items: 100_000,
            max_bytes: ByteSize::mib(64),
            num_consumers: 4,
            on_full: OnFull::Block,
        }
    }
}

impl QueueConfig {
    pub fn check(&self, errors: &mut Vec<FieldError>) {
        if self.max_items == 0 {
            errors.push(FieldError::new("queue.max_items", "must be at least 1"));
        }
        if self.max_bytes.get() == 0 {
            errors.push(FieldError::new("queue.max_bytes", "must be more than 0"));
        }
        if self.num_consumers == 0 || self.num_consumers > 256 {
            errors.push(FieldError::new(
                "queue.num_consumers",
                "must be between 1 and 256",
            ));
        }
    }
}

/// A bounded queue of batches between a pipeline and an exporter's senders.
pub struct Queue<T> {
    state: Mutex<State<T>>,
    not_empty: Notify,
    not_full: Notify,
    max_items: usize,
    max_bytes: usize,
    items_gauge: Gauge,
    bytes_gauge: Gauge,
}

struct State<T> {
    batches: VecDeque<Batch<T>>,
    items: usize,
    bytes: usize,
    closed: bool,
}

impl<T: SignalData> Queue<T> {
    pub fn new(max_items: usize, max_bytes: usize, items_gauge: Gauge, bytes_gauge: Gauge) -> Self {
        Self {
            state: Mutex::new(State {
                batches: VecDeque::new(),
                items: 0,
                bytes: 0,
                closed: false,
            }),
            not_empty: Notify::new(),
            not_full: Notify::new(),
            max_items,
            max_bytes,
            items_gauge,
            bytes_gauge,
        }
    }

    /// Adds `batch` once there is room, or at once, past the bounds, when
    /// `force` is cancelled: a pipeline that is draining (a reload, a
    /// shutdown) hands over the little it holds rather than wait on a
    /// backend that may be down. Gives the batch back if the queue is closed.
    pub async fn push(&self, batch: Batch<T>, force: &CancellationToken) -> Result<(), Batch<T>> {
        let items = batch.items();
        let mut batch = Some(batch);
        loop {
            let notified = self.not_full.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let forced = force.is_cancelled();
            match self.push_sized(batch.take().unwrap(), items, forced) {
                Ok(()) => return Ok(()),
                Err(PushError::Closed(b)) => return Err(b),
                Err(PushError::Full(b)) => batch = Some(b),
            }
            tokio::select! {
                _ = notified => {}
                _ = force.cancelled() => {}
            }
        }
    }

    /// Adds `batch` if there is room now.
    // The error hands the batch back: a move of a few words, not worth a box.
    #[allow(clippy::result_large_err)]
    pub fn try_push(&self, batch: Batch<T>) -> Result<(), PushError<T>> {
        let items = batch.items();
        self.push_sized(batch, items, false)
    }

    #[allow(clippy::result_large_err)]
    fn push_sized(&self, batch: Batch<T>, items: usize, forced: bool) -> Result<(), PushError<T>> {
        let mut state = self.state.lock().unwrap();
        if state.closed {
            return Err(PushError::Closed(batch));
        }
        let fits = forced
            || state.batches.is_empty()
            || (state.items + items <= self.max_items
                && state.bytes + batch.bytes <= self.max_bytes);
        if !fits {
            return Err(PushError::Full(batch));
        }
        state.items += items;
        state.bytes += batch.bytes;
        state.batches.push_back(batch);
        self.publish(&state);
        drop(state);
        self.not_empty.notify_one();
        Ok(())
    }

    /// The oldest batch, waiting for one; `None` once closed and empty.
    pub async fn pop(&self) -> Option<Batch<T>> {
        loop {
            let notified = self.not_empty.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.state.lock().unwrap();
                if let Some(batch) = state.batches.pop_front() {
                    state.items -= batch.items();
                    state.bytes -= batch.bytes;
                    self.publish(&state);
                    let more = !state.batches.is_empty();
                    drop(state);
                    self.not_full.notify_waiters();
                    if more {
                        // Pass the wake-up on: another sender may be idle.
                        self.not_empty.notify_one();
                    }
                    return Some(batch);
                }
                if state.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// No more pushes; consumers drain what is left and then see `None`.
    pub fn close(&self) {
        self.state.lock().unwrap().closed = true;
        self.not_empty.notify_waiters();
        self.not_full.notify_waiters();
    }

    /// Removes everything still queued (at the end of a shutdown deadline).
    pub fn take_all(&self) -> Vec<Batch<T>> {
        let mut state = self.state.lock().unwrap();
        state.items = 0;
        state.bytes = 0;
        self.publish(&state);
        state.batches.drain(..).collect()
    }

    pub fn len_items(&self) -> usize {
        self.state.lock().unwrap().items
    }

    fn publish(&self, state: &State<T>) {
        self.items_gauge.set(state.items as i64);
        self.bytes_gauge.set(state.bytes as i64);
    }
}

pub enum PushError<T> {
    Full(Batch<T>),
    Closed(Batch<T>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::Ticket;
    use crate::signal::traces::tests::sample;
    use std::sync::Arc;
    use std::time::Duration;

    fn batch(spans: usize) -> Batch<crate::signal::Traces> {
        Batch::new(sample(1, 1, spans), Ticket::untracked())
    }

    fn queue(items: usize, bytes: usize) -> Arc<Queue<crate::signal::Traces>> {
        Arc::new(Queue::new(items, bytes, Gauge::default(), Gauge::default()))
    }

    #[tokio::test]
    async fn bounded_in_items_and_fifo() {
        let q = queue(10, usize::MAX);
        q.try_push(batch(6)).ok().unwrap();
        assert!(matches!(q.try_push(batch(6)), Err(PushError::Full(_))));
        q.try_push(batch(4)).ok().unwrap();
        assert_eq!(q.len_items(), 10);
        assert_eq!(q.pop().await.unwrap().items(), 6);
        assert_eq!(q.pop().await.unwrap().items(), 4);
    }

    #[tokio::test]
    async fn bounded_in_bytes() {
        let one = batch(5).bytes;
        let q = queue(usize::MAX, one * 2);
        q.try_push(batch(5)).ok().unwrap();
        q.try_push(batch(5)).ok().unwrap();
        assert!(matches!(q.try_push(batch(5)), Err(PushError::Full(_))));
    }

    #[tokio::test]
    async fn an_empty_queue_takes_an_oversized_batch() {
        let q = queue(2, 10);
        q.try_push(batch(50)).ok().unwrap();
        assert!(matches!(q.try_push(batch(1)), Err(PushError::Full(_))));
    }

    // On paused time the sleep below returns only once every task is idle:
    // the pusher has run as far as it can, so "it waits" is observed, not
    // guessed from a real 20 ms.
    #[tokio::test(start_paused = true)]
    async fn push_waits_for_room_then_proceeds() {
        let q = queue(5, usize::MAX);
        q.try_push(batch(5)).ok().unwrap();
        let q2 = q.clone();
        let pusher =
            tokio::spawn(async move { q2.push(batch(3), &CancellationToken::new()).await.is_ok() });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!pusher.is_finished(), "push waits while the queue is full");
        assert_eq!(q.pop().await.unwrap().items(), 5);
        assert!(pusher.await.unwrap());
        assert_eq!(q.len_items(), 3);
    }

    #[tokio::test]
    async fn a_forced_push_goes_past_the_bounds_at_once() {
        let q = queue(5, usize::MAX);
        q.try_push(batch(5)).ok().unwrap();
        let force = CancellationToken::new();
        let q2 = q.clone();
        let waiting = force.clone();
        let pusher = tokio::spawn(async move { q2.push(batch(3), &waiting).await.is_ok() });
        tokio::task::yield_now().await;
        assert!(!pusher.is_finished(), "push waits while the queue is full");
        force.cancel();
        assert!(pusher.await.unwrap());
        assert_eq!(q.len_items(), 8, "the draining pipeline's batch is queued");
        assert!(q.push(batch(1), &force).await.is_ok(), "and so is the next");
    }

    #[tokio::test]
    async fn close_drains_then_ends() {
        let q = queue(100, usize::MAX);
        q.try_push(batch(1)).ok().unwrap();
        q.close();
        assert!(matches!(q.try_push(batch(1)), Err(PushError::Closed(_))));
        assert!(q.pop().await.is_some());
        assert!(q.pop().await.is_none());
    }
}
