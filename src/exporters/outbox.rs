//! An exporter's outbox for one signal: its bounded queue (in memory or on
//! disk), the senders that take from it with retries, their counters, and
//! an orderly shutdown.

use prometheus_client::metrics::counter::Counter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Backoff, RetryConfig, Sink};
use crate::config::ComponentId;
use crate::delivery::disk::{DamageCounters, DiskMetrics, DiskQueue, OpenError};
use crate::delivery::{Batch, ExporterInput, OnFull, Outcome, Queue, QueueConfig, QueueType};
use crate::signal::SignalData;
use crate::telemetry::{ComponentLabels, Telemetry};

/// One signal's outgoing queue inside an exporter, and the senders that
/// take from it.
pub struct Outbox<T> {
    pub queue: Arc<Queue<T>>,
    consumers: Vec<JoinHandle<()>>,
    abort: CancellationToken,
    labels: ComponentLabels,
    telemetry: Arc<Telemetry>,
    on_full: OnFull,
}

impl<T: SignalData> Outbox<T> {
    /// An outbox whose `num_consumers` senders each take a batch and send it with `sink`.
    pub fn start<S: Sink<T>>(
        id: &ComponentId,
        site: &Site<'_>,
        sink: S,
        retry: &RetryConfig,
    ) -> Result<Self, OpenError> {
        let consumers = site.queue.num_consumers;
        let sink = Arc::new(sink);
        let retry = retry.clone();
        Self::start_with(id, site, move |queue, delivery| {
            let delivery = Arc::new(delivery.with_retry(retry));
            (0..consumers)
                .map(|_| {
                    let (queue, sink, delivery) = (queue.clone(), sink.clone(), delivery.clone());
                    tokio::spawn(async move {
                        while let Some(batch) = queue.pop().await {
                            if !delivery.deliver(&*sink, batch).await {
                                return;
                            }
                        }
                    })
                })
                .collect()
        })
    }

    /// An outbox whose consumers `spawn` starts: exporters that need their own
    /// scheduling (remote-write's per-series shards, Loki's per-stream shards
    /// and per-tenant requests) take batches themselves.
    pub fn start_with(
        id: &ComponentId,
        site: &Site<'_>,
        spawn: impl FnOnce(Arc<Queue<T>>, Delivery) -> Vec<JoinHandle<()>>,
    ) -> Result<Self, OpenError> {
        let (queue_config, telemetry) = (site.queue, site.telemetry);
        let labels = Telemetry::labels("exporter", id, T::SIGNAL);
        let queue = Arc::new(match queue_config.kind {
            QueueType::Memory => Queue::new(
                queue_config.max_items,
                queue_config.max_bytes.as_usize(),
                telemetry.queue_items.get_or_create(&labels).clone(),
                telemetry.queue_bytes.get_or_create(&labels).clone(),
            ),
            QueueType::Disk => Queue::Disk(DiskQueue::open(
                site.data_dir,
                queue_dir(site.data_dir, id, T::SIGNAL.as_str()),
                queue_config.disk(),
                disk_metrics(telemetry, &labels),
            )?),
        });
        let abort = CancellationToken::new();
        let delivery = Delivery {
            id: id.clone(),
            retry: RetryConfig::default(),
            abort: abort.clone(),
            sent: Telemetry::counter(&telemetry.sent, &labels),
            retries: Telemetry::counter(&telemetry.retries, &labels),
            labels: labels.clone(),
            telemetry: telemetry.clone(),
        };
        let consumers = spawn(queue.clone(), delivery);
        Ok(Self {
            queue,
            consumers,
            abort,
            labels,
            telemetry: telemetry.clone(),
            on_full: queue_config.on_full,
        })
    }

    pub fn input(&self, id: &ComponentId) -> ExporterInput<T> {
        ExporterInput {
            id: id.clone(),
            queue: self.queue.clone(),
            on_full: self.on_full,
            dropped_full: Telemetry::reason_counter(
                &self.telemetry.dropped,
                &self.labels,
                "queue_full",
            ),
            dropped_closed: Telemetry::reason_counter(
                &self.telemetry.dropped,
                &self.labels,
                "shutdown",
            ),
        }
    }

    pub async fn shutdown(self, deadline: Instant) {
        let shutdown_drops =
            Telemetry::reason_counter(&self.telemetry.dropped, &self.labels, "shutdown");
        let dropped_before = shutdown_drops.get();
        self.queue.close();
        let mut consumers = self.consumers;
        // A consumer that has ended is let go at once: after the deadline,
        // only those still running are awaited (a JoinHandle awaited again
        // after it completed panics).
        let finished = tokio::time::timeout_at(deadline, async {
            while let Some(consumer) = consumers.last_mut() {
                let _ = consumer.await;
                consumers.pop();
            }
        })
        .await;
        if finished.is_err() {
            // Senders give up on what they hold, counting it.
            self.abort.cancel();
            for consumer in consumers {
                let _ = consumer.await;
            }
        }
        let queued = self.queue.finish().await;
        shutdown_drops.inc_by(queued as u64);
        let items = shutdown_drops.get() - dropped_before;
        if items > 0 {
            tracing::warn!(
                exporter = %self.labels.component,
                items,
                "shutdown deadline reached with data still queued; dropped"
            );
        }
    }
}

/// Where an exporter's outboxes are set up: its queue settings, the
/// process's `data_dir` (for disk queues) and its telemetry.
pub struct Site<'a> {
    pub queue: &'a QueueConfig,
    pub data_dir: &'a Path,
    pub telemetry: &'a Arc<Telemetry>,
}

/// `data_dir/queues/<exporter>/<signal>`; characters of the exporter's
/// name that do not belong in a file name become `_`.
pub fn queue_dir(data_dir: &Path, id: &ComponentId, signal: &str) -> PathBuf {
    let name: String = id
        .to_string()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    data_dir.join("queues").join(name).join(signal)
}

/// A disk queue's figures, as handles of the exporter's telemetry.
fn disk_metrics(telemetry: &Telemetry, labels: &ComponentLabels) -> DiskMetrics {
    let d = &telemetry.disk_queues;
    let damaged = |reason| Telemetry::reason_counter(&d.damaged, labels, reason);
    DiskMetrics {
        bytes: d.bytes.get_or_create(labels).clone(),
        records: d.records.get_or_create(labels).clone(),
        written_bytes: Telemetry::counter(&d.written_bytes, labels),
        oldest_age: d.oldest_age.get_or_create(labels).clone(),
        replayed: Telemetry::counter(&d.replayed, labels),
        damaged: DamageCounters {
            checksum: damaged("checksum"),
            truncated: damaged("truncated"),
            unreadable_segment: damaged("unreadable_segment"),
            undecodable: damaged("undecodable"),
            cursor: damaged("cursor"),
        },
        damaged_bytes: Telemetry::counter(&d.damaged_bytes, labels),
        fsyncs: Telemetry::counter(&d.fsyncs, labels),
        fsync_seconds: d.fsync_seconds.get_or_create(labels).clone(),
        disk_full: Telemetry::reason_counter(&d.write_errors, labels, "disk_full"),
        write_errors: Telemetry::reason_counter(&d.write_errors, labels, "io_error"),
        dropped_oldest: Telemetry::reason_counter(&telemetry.dropped, labels, "queue_full"),
    }
}

/// Sending with retries, and the counting that goes with it: shared by every
/// consumer of one exporter outbox.
#[derive(Clone)]
pub struct Delivery {
    pub id: ComponentId,
    pub retry: RetryConfig,
    /// Cancelled when the shutdown deadline passes.
    pub abort: CancellationToken,
    sent: Counter,
    retries: Counter,
    labels: ComponentLabels,
    telemetry: Arc<Telemetry>,
}

impl Delivery {
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Counts items dropped for `reason`.
    pub fn count_dropped(&self, reason: &'static str, items: u64) {
        Telemetry::reason_counter(&self.telemetry.dropped, &self.labels, reason).inc_by(items);
    }

    /// Sends one batch until it succeeds, fails for good, or the shutdown
    /// deadline aborts it. Returns false on abort.
    pub async fn deliver<T: SignalData, S: Sink<T>>(&self, sink: &S, batch: Batch<T>) -> bool {
        let items = batch.items() as u64;
        let started = Instant::now();
        let mut backoff = Backoff::new(&self.retry);
        loop {
            let result = tokio::select! {
                result = sink.send(&batch) => result,
                _ = self.abort.cancelled() => {
                    self.abandon(batch);
                    return false;
                }
            };
            let error = match result {
                Ok(sent) => {
                    self.sent.inc_by(items.saturating_sub(sent.rejected_items));
                    if sent.rejected_items > 0 {
                        Telemetry::reason_counter(
                            &self.telemetry.dropped,
                            &self.labels,
                            "rejected_by_backend",
                        )
                        .inc_by(sent.rejected_items);
                        tracing::warn!(
                            exporter = %self.id,
                            rejected = sent.rejected_items,
                            message = %sent.rejected_message,
                            "the backend accepted the request but rejected part of it"
                        );
                    }
                    return true;
                }
                Err(error) => error,
            };
            Telemetry::reason_counter(&self.telemetry.send_failed, &self.labels, error.reason)
                .inc_by(items);
            let out_of_time = self
                .retry
                .max_elapsed_time
                .is_some_and(|max| started.elapsed() >= max);
            if !error.retryable || out_of_time {
                let reason = if error.retryable {
                    "retries_exhausted"
                } else {
                    "permanent_error"
                };
                tracing::warn!(exporter = %self.id, items, error = %error.message, reason, "dropping batch");
                self.drop_batch(batch, reason);
                return true;
            }
            let wait = backoff.next_wait(error.retry_after);
            tracing::debug!(exporter = %self.id, error = %error.message, ?wait, "send failed; will retry");
            self.retries.inc();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.abort.cancelled() => {
                    self.abandon(batch);
                    return false;
                }
            }
        }
    }

    fn drop_batch<T: SignalData>(&self, batch: Batch<T>, reason: &'static str) {
        Telemetry::reason_counter(&self.telemetry.dropped, &self.labels, reason)
            .inc_by(batch.items() as u64);
        batch.drop_with(Outcome::Dropped);
    }

    /// Gives up on `batch` because the shutdown deadline passed: counted
    /// as dropped for `shutdown`, and reported to its sender as
    /// interrupted, so a log tailer reads it again after the restart.
    pub fn abandon<T: SignalData>(&self, batch: Batch<T>) {
        let items = batch.items() as u64;
        if items > 0 {
            self.count_dropped("shutdown", items);
        }
        batch.drop_with(Outcome::Interrupted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::Logs;
    use std::time::Duration;

    /// One sender has ended, another is still at work when the deadline
    /// passes: the shutdown stops the one at work and finishes, without
    /// awaiting the ended one twice (which panics).
    #[tokio::test]
    async fn a_shutdown_past_its_deadline_awaits_only_the_senders_still_running() {
        let telemetry = Telemetry::new();
        let dir = tempfile::tempdir().unwrap();
        let queue = QueueConfig::default();
        let site = Site {
            queue: &queue,
            data_dir: dir.path(),
            telemetry: &telemetry,
        };
        let id = ComponentId::new("debug", "test");
        let outbox = Outbox::<Logs>::start_with(&id, &site, |_, delivery| {
            let abort = delivery.abort.clone();
            vec![
                tokio::spawn(async {}),
                tokio::spawn(async move { abort.cancelled().await }),
            ]
        })
        .unwrap();
        tokio::task::yield_now().await;
        let deadline = Instant::now() + Duration::from_millis(50);
        tokio::time::timeout(Duration::from_secs(10), outbox.shutdown(deadline))
            .await
            .expect("the shutdown ends once the deadline stopped the sender at work");
    }
}
