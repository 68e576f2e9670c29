//! The exporter delivery queue: in memory, bounded in items and in bytes,
//! or on disk ([`super::disk`]), bounded in bytes.
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

use std::sync::Arc;
use std::time::Duration;

use super::disk::{DiskQueue, Fsync};
use super::{Batch, Outcome};
use crate::config::{ByteSize, FieldError, HumanDuration};
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
    /// Drop the oldest data queued to make room, and count it: for data
    /// whose newest is worth the most.
    #[serde(rename = "drop_oldest")]
    DropOldest,
}

/// Where an exporter's queue keeps its batches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    #[default]
    Memory,
    /// A log on disk under `data_dir/queues/`: survives a crash and holds
    /// long outages.
    Disk,
}

/// `queue = { ... }` of any exporter, or `queue = "disk"` / `"memory"` for
/// that type with every other setting at its default.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct QueueConfig {
    #[serde(rename = "type")]
    pub kind: QueueType,
    /// Most items (spans, samples, records) waiting to be sent (memory).
    pub max_items: usize,
    /// Most encoded bytes waiting to be sent (memory).
    pub max_bytes: ByteSize,
    /// Most bytes of files on disk (disk).
    pub max_size: ByteSize,
    /// When the disk queue syncs its writes (disk).
    pub fsync: Fsync,
    /// How often, with `fsync = "interval"`.
    pub fsync_interval: HumanDuration,
    /// Parallel senders taking batches from the queue.
    pub num_consumers: usize,
    pub on_full: OnFull,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            kind: QueueType::Memory,
            max_items: 100_000,
            max_bytes: ByteSize::mib(64),
            max_size: ByteSize::mib(1024),
            fsync: Fsync::Interval,
            fsync_interval: HumanDuration::from_secs(1),
            num_consumers: 4,
            on_full: OnFull::Block,
        }
    }
}

/// Reads `queue` as a table of settings or as the name of a queue type
/// (`queue = "disk"`). A table is read by the derived reader, so a key it
/// does not know is reported as for any other table.
pub fn queue_setting<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<QueueConfig, D::Error> {
    struct Setting;
    impl<'de> serde::de::Visitor<'de> for Setting {
        type Value = QueueConfig;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("\"memory\", \"disk\", or a table of queue settings")
        }

        fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<QueueConfig, E> {
            let kind = QueueType::deserialize(serde::de::value::StrDeserializer::<E>::new(name))?;
            Ok(QueueConfig {
                kind,
                ..QueueConfig::default()
            })
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<QueueConfig, A::Error> {
            QueueConfig::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }
    // As a struct, so that readers that list keys see the table's fields;
    // TOML hands a struct request a string as a string.
    deserializer.deserialize_struct("QueueConfig", QUEUE_FIELDS, Setting)
}

/// The keys of a `queue` table (checked against the derived reader in a test).
const QUEUE_FIELDS: &[&str] = &[
    "type",
    "max_items",
    "max_bytes",
    "max_size",
    "fsync",
    "fsync_interval",
    "num_consumers",
    "on_full",
];

impl QueueConfig {
    /// The disk queue's settings.
    pub fn disk(&self) -> super::disk::DiskSettings {
        super::disk::DiskSettings {
            max_size: self.max_size.get(),
            fsync: self.fsync,
            fsync_interval: self.fsync_interval.get(),
            drop_oldest: self.on_full == OnFull::DropOldest,
        }
    }

    pub fn check(&self, errors: &mut Vec<FieldError>) {
        if self.kind == QueueType::Disk {
            if self.max_size.get() < 1 << 20 {
                errors.push(FieldError::new("queue.max_size", "must be at least 1MiB"));
            }
            if self.fsync_interval.get() < Duration::from_millis(10) {
                errors.push(FieldError::new(
                    "queue.fsync_interval",
                    "must be at least 10ms",
                ));
            }
        }
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

/// A bounded queue of batches between a pipeline and an exporter's senders:
/// in memory, or on disk.
pub enum Queue<T> {
    Memory(MemoryQueue<T>),
    Disk(Arc<DiskQueue<T>>),
}

impl<T: SignalData> Queue<T> {
    /// A queue in memory.
    pub fn new(max_items: usize, max_bytes: usize, items_gauge: Gauge, bytes_gauge: Gauge) -> Self {
        Self::Memory(MemoryQueue::new(
            max_items,
            max_bytes,
            items_gauge,
            bytes_gauge,
        ))
    }

    /// Adds `batch` once there is room, or at once, past the bounds, when
    /// `force` is cancelled: a pipeline that is draining (a reload, a
    /// shutdown) hands over the little it holds rather than wait on a
    /// backend that may be down. Gives the batch back if the queue is closed.
    pub async fn push(&self, batch: Batch<T>, force: &CancellationToken) -> Result<(), Batch<T>> {
        match self {
            Self::Memory(q) => q.push(batch, force).await,
            Self::Disk(q) => q.push(batch, force).await,
        }
    }

    /// Adds `batch` if there is room now.
    #[allow(clippy::result_large_err)]
    pub async fn try_push(&self, batch: Batch<T>) -> Result<(), PushError<T>> {
        match self {
            Self::Memory(q) => q.try_push(batch),
            Self::Disk(q) => q.try_push(batch).await,
        }
    }

    /// Adds `batch`, making room by dropping the oldest batches (reported
    /// as dropped); returns the items dropped. A disk queue drops whole
    /// segments and counts them itself.
    #[allow(clippy::result_large_err)]
    pub async fn push_evicting(
        &self,
        batch: Batch<T>,
        force: &CancellationToken,
    ) -> Result<usize, Batch<T>> {
        match self {
            Self::Memory(q) => q.push_evicting(batch),
            Self::Disk(q) => q.push(batch, force).await.map(|()| 0),
        }
    }

    /// The oldest batch, waiting for one; `None` once closed (and, in
    /// memory, empty: a disk queue keeps the rest for the next start).
    pub async fn pop(&self) -> Option<Batch<T>> {
        match self {
            Self::Memory(q) => q.pop().await,
            Self::Disk(q) => q.pop().await,
        }
    }

    /// No more pushes; consumers drain what is left (in memory) and then see `None`.
    pub fn close(&self) {
        match self {
            Self::Memory(q) => q.close(),
            Self::Disk(q) => q.close(),
        }
    }

    /// At the end of a shutdown: a memory queue's batches, reported as
    /// interrupted; a disk queue's stay on disk, its cursor saved. Returns
    /// the items given up.
    pub async fn finish(&self) -> usize {
        match self {
            Self::Memory(q) => {
                let left = q.take_all();
                let items = left.iter().map(|b| b.items()).sum();
                for batch in left {
                    batch.drop_with(Outcome::Interrupted);
                }
                items
            }
            Self::Disk(q) => {
                q.finish().await;
                0
            }
        }
    }

    /// Items waiting (in a disk queue: written and not yet read).
    pub fn len_items(&self) -> usize {
        match self {
            Self::Memory(q) => q.len_items(),
            Self::Disk(q) => q.len_items(),
        }
    }
}

/// A queue of batches in memory, bounded in items and bytes.
pub struct MemoryQueue<T> {
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

impl<T: SignalData> MemoryQueue<T> {
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

    /// See [`Queue::push`].
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

    /// Adds `batch` at once, dropping the oldest batches until it fits.
    #[allow(clippy::result_large_err)]
    fn push_evicting(&self, batch: Batch<T>) -> Result<usize, Batch<T>> {
        let items = batch.items();
        let mut evicted = Vec::new();
        let mut state = self.state.lock().unwrap();
        if state.closed {
            return Err(batch);
        }
        while !state.batches.is_empty()
            && (state.items + items > self.max_items || state.bytes + batch.bytes > self.max_bytes)
        {
            let oldest = state.batches.pop_front().expect("not empty");
            state.items -= oldest.items();
            state.bytes -= oldest.bytes;
            evicted.push(oldest);
        }
        self.enqueue(state, batch, items);
        let dropped = evicted.iter().map(|b| b.items()).sum();
        for batch in evicted {
            batch.drop_with(Outcome::Dropped);
        }
        Ok(dropped)
    }

    #[allow(clippy::result_large_err)]
    fn push_sized(&self, batch: Batch<T>, items: usize, forced: bool) -> Result<(), PushError<T>> {
        let state = self.state.lock().unwrap();
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
        self.enqueue(state, batch, items);
        Ok(())
    }

    /// Adds `batch` of `items` to the queue `state` holds, then wakes a sender.
    fn enqueue(
        &self,
        mut state: std::sync::MutexGuard<'_, State<T>>,
        batch: Batch<T>,
        items: usize,
    ) {
        state.items += items;
        state.bytes += batch.bytes;
        state.batches.push_back(batch);
        self.publish(&state);
        drop(state);
        self.not_empty.notify_one();
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

    fn queue(items: usize, bytes: usize) -> Arc<MemoryQueue<crate::signal::Traces>> {
        Arc::new(MemoryQueue::new(
            items,
            bytes,
            Gauge::default(),
            Gauge::default(),
        ))
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
    async fn drop_oldest_makes_room_by_dropping_the_oldest() {
        let q = queue(10, usize::MAX);
        let (ticket, ack) = Ticket::untracked().with_ack();
        q.try_push(Batch::new(sample(1, 1, 6), ticket))
            .ok()
            .unwrap();
        q.try_push(batch(3)).ok().unwrap();
        assert_eq!(q.push_evicting(batch(4)).ok(), Some(6));
        assert_eq!(ack.wait().await, Outcome::Dropped);
        assert_eq!(q.len_items(), 7);
        assert_eq!(q.pop().await.unwrap().items(), 3);
    }

    #[test]
    fn queue_is_a_table_or_a_type_name() {
        #[derive(Deserialize)]
        struct Exporter {
            #[serde(default, deserialize_with = "queue_setting")]
            queue: QueueConfig,
        }
        let read = |text: &str| toml::from_str::<Exporter>(text).map(|e| e.queue);
        assert_eq!(read("").unwrap(), QueueConfig::default());
        assert_eq!(read("queue = \"disk\"").unwrap().kind, QueueType::Disk);
        let table = read("queue = { type = \"disk\", max_size = \"2GiB\", fsync = \"batch\", on_full = \"drop_oldest\" }").unwrap();
        assert_eq!(table.kind, QueueType::Disk);
        assert_eq!(table.max_size, ByteSize::mib(2048));
        assert_eq!(table.fsync, Fsync::Batch);
        assert_eq!(table.on_full, OnFull::DropOldest);
        assert!(read("queue = \"tape\"").is_err());
        let listed: std::collections::BTreeSet<String> =
            QUEUE_FIELDS.iter().map(|f| f.to_string()).collect();
        assert_eq!(crate::config::keys::keys::<QueueConfig>(), listed);
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
