//! The keeper of a disk queue: a task that learns which records are
//! done, moves the cursor over them, deletes what is behind it, saves it,
//! syncs on `fsync = "interval"` and keeps the age of the oldest record.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;

use super::queue::DiskQueue;
use super::record::now_ms;
use super::{Fsync, cursor};
use crate::delivery::{AckWaiter, Outcome};
use crate::signal::SignalData;

/// How often the cursor is saved, the age updated and, with
/// `fsync = "interval"`, at most how often the log is synced.
const TICK: Duration = Duration::from_millis(200);
/// How long a closing queue waits for the outcomes of records in flight.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// A step of the reader, in order, for the keeper: a record whose delivery
/// is pending (or already done), or a move over damage or to a segment.
pub(super) struct Read {
    pub(super) seq: u64,
    /// Where reading stands after this step.
    pub(super) segment: u64,
    pub(super) offset: u64,
    pub(super) enqueued_ms: i64,
    pub(super) ack: Option<AckWaiter>,
}

/// The keeper: learns which records are done, moves the cursor over them,
/// deletes segments behind it, saves it, syncs on `fsync = "interval"`, and
/// updates the age of the oldest record.
///
/// It holds the queue weakly: once every handle is gone (an exporter that
/// never started), it ends and the directory's lock goes with the queue.
pub(super) async fn keep<T: SignalData>(
    weak: std::sync::Weak<DiskQueue<T>>,
    mut reads: mpsc::UnboundedReceiver<Read>,
    mut cursor: (u64, u64),
    mut oldest_ms: Option<i64>,
) {
    let Some(queue) = weak.upgrade() else { return };
    let (dir, settings, stop) = (
        queue.dir.clone(),
        queue.settings.clone(),
        queue.keeper_stop.clone(),
    );
    drop(queue);
    let mut pending: BTreeMap<u64, (u64, u64, i64, bool)> = BTreeMap::new();
    let mut acks = FuturesUnordered::new();
    let mut saved = cursor;
    let mut tick = tokio::time::interval(TICK.min(settings.fsync_interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sync = tokio::time::Instant::now();
    let mut stopping: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            read = reads.recv() => {
                let Some(read) = read else { break };
                let done = read.ack.is_none();
                pending.insert(read.seq, (read.segment, read.offset, read.enqueued_ms, done));
                if let Some(ack) = read.ack {
                    let seq = read.seq;
                    acks.push(async move { (seq, ack.await) });
                }
            }
            Some((seq, outcome)) = acks.next() => {
                if outcome != Outcome::Interrupted
                    && let Some(entry) = pending.get_mut(&seq)
                {
                    entry.3 = true;
                }
            }
            _ = tick.tick() => {
                let Some(queue) = weak.upgrade() else { break };
                if settings.fsync == Fsync::Interval
                    && last_sync.elapsed() >= settings.fsync_interval
                    && queue.written.load(Ordering::Acquire) > queue.synced.load(Ordering::Acquire)
                {
                    queue.sync_now().await;
                    last_sync = tokio::time::Instant::now();
                }
                if cursor != saved && cursor::save(&dir, cursor).is_ok() {
                    saved = cursor;
                }
                let age = oldest_ms.map_or(0.0, |ms| (now_ms() - ms).max(0) as f64 / 1000.0);
                queue.metrics.oldest_age.set(age);
                // Stopping: wait for the senders' last outcomes, a little.
                if stopping.is_some_and(|at| acks.is_empty() || at.elapsed() > STOP_WAIT) {
                    break;
                }
            }
            _ = stop.cancelled(), if stopping.is_none() => {
                stopping = Some(tokio::time::Instant::now());
            }
        }
        let Some(queue) = weak.upgrade() else { break };
        // Move the cursor over every leading record that is done.
        let mut moved = false;
        while let Some(entry) = pending.first_entry() {
            let (segment, offset, enqueued_ms, done) = *entry.get();
            if !done {
                oldest_ms = Some(if enqueued_ms > 0 {
                    enqueued_ms
                } else {
                    now_ms()
                });
                break;
            }
            entry.remove();
            if enqueued_ms > 0 {
                queue.records.fetch_sub(1, Ordering::Relaxed);
            }
            cursor = (segment, offset);
            moved = true;
        }
        if moved {
            if pending.is_empty() && queue.len_items() == 0 {
                oldest_ms = None;
            }
            let records = queue.records.load(Ordering::Relaxed).max(0);
            queue.metrics.records.set(records);
            queue.release_behind(cursor);
            // A push waiting for an empty queue (a record larger than
            // `max_size`) may go on now.
            if records == 0 {
                queue.not_full.notify_waiters();
            }
        }
    }
    let _ = cursor::save(&dir, cursor);
}
