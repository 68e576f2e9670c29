//! Moving batches between stages: receivers → pipelines and pipelines →
//! exporter queues. Copies are made for all consumers but the last, which
//! gets the original.

use prometheus_client::metrics::counter::Counter;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    AckWaiter, Admission, Batch, MemoryLimiter, OnFull, Outcome, PushError, Queue, Reservation,
};
use crate::config::ComponentId;
use crate::signal::{Fields, SignalData, SignalFamily};

/// What a pipeline asks before one of its receivers accepts a push: a limit
/// that refuses the sender rather than drop its data (a tenant processor
/// with `refuse = true`).
pub trait Admitter<T>: Send + Sync {
    /// Charges the push at once, or says how long its sender should wait.
    fn admit(
        &self,
        org_id: Option<&http::HeaderValue>,
        data: &mut T,
        bytes: usize,
    ) -> Result<Reservation, Duration>;

    /// Gives back what [`Admitter::admit`] charged for a push that was then
    /// not accepted, so that the sender's retry is not charged twice.
    fn release(&self, reservation: Reservation);
}

/// Why a receiver could not hand data to its pipelines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A pipeline stayed full for the whole wait: the sender should retry.
    PipelineFull,
    /// Accepting would pass the process memory limit: retry later.
    MemoryLimit,
    /// ferro is shutting down or reloading: retry later.
    ShuttingDown,
    /// A tenant of the data is over its rate limit (`refuse = true`): retry
    /// after this long.
    TenantLimit(Duration),
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Self::PipelineFull => "pipeline_full",
            Self::MemoryLimit => "memory_limit",
            Self::ShuttingDown => "shutting_down",
            Self::TenantLimit(_) => "tenant_limit",
        }
    }
}

/// The pipelines one receiver feeds with one signal.
pub struct PipelineInputs<T> {
    senders: Vec<mpsc::Sender<Batch<T>>>,
    wait: Duration,
    /// Tenant limiters of these pipelines that refuse pushes over a rate
    /// rather than drop them.
    admission: Vec<Arc<dyn Admitter<T>>>,
    /// Whether a processor of these pipelines reads `X-Scope-OrgID`.
    reads_org_id: bool,
}

impl<T> Clone for PipelineInputs<T> {
    fn clone(&self) -> Self {
        Self {
            senders: self.senders.clone(),
            wait: self.wait,
            admission: self.admission.clone(),
            reads_org_id: self.reads_org_id,
        }
    }
}

impl<T: Fields> PipelineInputs<T> {
    /// Hands a push to the pipelines as [`PipelineInputs::send`] does, once
    /// the tenant limiters that refuse rather than drop have admitted it:
    /// they charge it then and process it as admitted, never dropping it for
    /// rate. A push they refuse, or that the pipelines do not take (or whose
    /// sender goes away while it waits), leaves every limiter as it found it.
    pub async fn admit_and_send(&self, mut batch: Batch<T>) -> Result<(), Refusal> {
        if self.admission.is_empty() {
            return self.send(batch).await;
        }
        let org_id = batch.tenancy.org_id.clone();
        let bytes = batch.bytes;
        let mut pending = PendingCharges(Vec::with_capacity(self.admission.len()));
        let mut wait = Duration::ZERO;
        for limiter in &self.admission {
            match limiter.admit(org_id.as_ref(), &mut batch.data, bytes) {
                Ok(reservation) => pending.0.push((limiter, reservation)),
                Err(w) => wait = wait.max(w),
            }
        }
        if !wait.is_zero() {
            return Err(Refusal::TenantLimit(wait));
        }
        let mut admission = Admission::default();
        for (_, reservation) in &pending.0 {
            reservation.record(&mut admission);
        }
        batch.tenancy.admitted = Some(Arc::new(admission));
        self.send(batch).await?;
        // Taken: the charges stand.
        pending.0.clear();
        Ok(())
    }
}

/// Reservations not yet known to be kept: released when dropped, so that a
/// refusal, or a request dropped while it waits for room, charges nothing.
struct PendingCharges<'a, T>(Vec<(&'a Arc<dyn Admitter<T>>, Reservation)>);

impl<T> Drop for PendingCharges<'_, T> {
    fn drop(&mut self) {
        for (limiter, reservation) in self.0.drain(..) {
            limiter.release(reservation);
        }
    }
}

impl<T> Default for PipelineInputs<T> {
    /// No pipelines yet: see [`PipelineInputs::add`].
    fn default() -> Self {
        Self {
            senders: Vec::new(),
            wait: Duration::ZERO,
            admission: Vec::new(),
            reads_org_id: false,
        }
    }
}

/// [`PipelineInputs`] by signal: what a receiver feeds, where it does.
pub struct ToPipelines;

impl SignalFamily for ToPipelines {
    type Of<T> = Option<PipelineInputs<T>>;
}

impl<T: SignalData> PipelineInputs<T> {
    /// One more pipeline, with its refusing admitters and whether a
    /// processor of it reads `X-Scope-OrgID`. An admitter shared by two
    /// pipelines is asked once: asked twice, it would refuse its own first
    /// charge.
    pub fn add(
        &mut self,
        sender: mpsc::Sender<Batch<T>>,
        admission: &[Arc<dyn Admitter<T>>],
        reads_org_id: bool,
    ) {
        self.senders.push(sender);
        self.reads_org_id |= reads_org_id;
        for admitter in admission {
            let known = self
                .admission
                .iter()
                .any(|a| std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(admitter)));
            if !known {
                self.admission.push(admitter.clone());
            }
        }
    }

    /// These inputs, waiting up to `wait` for room in a full pipeline.
    pub fn waiting(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    pub fn new(senders: Vec<mpsc::Sender<Batch<T>>>, wait: Duration) -> Self {
        Self {
            senders,
            wait,
            admission: Vec::new(),
            reads_org_id: false,
        }
    }

    /// These inputs, telling receivers that a processor reads the pushes'
    /// `X-Scope-OrgID`.
    pub fn reading_org_id(mut self, reads: bool) -> Self {
        self.reads_org_id = reads;
        self
    }

    /// Whether a processor of these pipelines reads `X-Scope-OrgID`: if
    /// none does, a receiver ignores the header.
    pub fn reads_org_id(&self) -> bool {
        self.reads_org_id
    }

    /// These inputs with the refusing tenant limiters of their pipelines.
    pub fn with_admission(mut self, admission: Vec<Arc<dyn Admitter<T>>>) -> Self {
        self.admission = admission;
        self
    }

    /// Hands `batch` to every pipeline, or to none: room is reserved in all of
    /// them first (waiting up to the receiver's patience), so a full pipeline
    /// never causes a partial delivery that the client's retry would duplicate.
    pub async fn send(&self, batch: Batch<T>) -> Result<(), Refusal> {
        self.send_or_return(batch)
            .await
            .map_err(|(refusal, _)| refusal)
    }

    /// As [`PipelineInputs::send`], but a refused batch comes back, for a
    /// sender that retries the same data (a log tailer: the file is its buffer).
    pub async fn send_or_return(&self, batch: Batch<T>) -> Result<(), (Refusal, Batch<T>)> {
        let deadline = tokio::time::Instant::now() + self.wait;
        let mut permits = Vec::with_capacity(self.senders.len());
        for sender in &self.senders {
            let permit = match sender.try_reserve() {
                Ok(permit) => permit,
                Err(mpsc::error::TrySendError::Closed(())) => {
                    return Err((Refusal::ShuttingDown, batch));
                }
                Err(mpsc::error::TrySendError::Full(())) => {
                    match tokio::time::timeout_at(deadline, sender.reserve()).await {
                        Ok(Ok(permit)) => permit,
                        Ok(Err(_)) => return Err((Refusal::ShuttingDown, batch)),
                        Err(_) => return Err((Refusal::PipelineFull, batch)),
                    }
                }
            };
            permits.push(permit);
        }
        let Some(last) = permits.pop() else {
            return Ok(());
        };
        for permit in permits {
            permit.send(batch.clone());
        }
        last.send(batch);
        Ok(())
    }

    /// Offers `data` (`bytes` as the memory limiter counts them) until the
    /// pipelines take it, for a receiver whose source is its buffer (a log
    /// file, the journal): it waits while memory or the pipelines are full,
    /// telling `refused` of each refusal, and never drops. Returns the
    /// batch's acknowledgement, or `None` if `stop` came (or the pipelines
    /// closed) first.
    pub async fn send_patiently(
        &self,
        limiter: &Arc<MemoryLimiter>,
        data: T,
        bytes: usize,
        stop: &CancellationToken,
        mut refused: impl FnMut(Refusal),
    ) -> Option<AckWaiter> {
        let mut backoff = Duration::from_millis(10);
        let ticket = loop {
            // A batch larger than the whole limit takes all of it.
            if let Some(ticket) = limiter.try_acquire(bytes.min(limiter.limit())) {
                break ticket;
            }
            refused(Refusal::MemoryLimit);
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
        };
        let (ticket, ack) = ticket.with_ack();
        let mut batch = Batch::with_size(data, bytes, ticket);
        loop {
            match self.send_or_return(batch).await {
                Ok(()) => return Some(ack),
                Err((Refusal::ShuttingDown, _)) => return None,
                Err((refusal, back)) => {
                    refused(refusal);
                    if stop.is_cancelled() {
                        return None;
                    }
                    batch = back;
                }
            }
        }
    }
}

/// One exporter's queue as a pipeline sees it.
pub struct ExporterInput<T> {
    pub id: ComponentId,
    pub queue: Arc<Queue<T>>,
    pub on_full: OnFull,
    /// Items dropped because the queue was full and `on_full = "drop"`.
    pub dropped_full: Counter,
    /// Items that arrived after the exporter closed: a pipeline still
    /// draining when the shutdown deadline passed.
    pub dropped_closed: Counter,
}

impl<T: SignalData> ExporterInput<T> {
    /// Queues `batch`, waiting while the queue is full until `draining`
    /// is cancelled (see [`Queue::push`]).
    pub async fn deliver(&self, batch: Batch<T>, draining: &CancellationToken) {
        let items = batch.items() as u64;
        match self.on_full {
            OnFull::Block => {
                if let Err(batch) = self.queue.push(batch, draining).await {
                    self.dropped_closed.inc_by(items);
                    batch.drop_with(Outcome::Interrupted);
                }
            }
            OnFull::DropOldest => match self.queue.push_evicting(batch, draining).await {
                Ok(dropped) => {
                    self.dropped_full.inc_by(dropped as u64);
                }
                Err(batch) => {
                    self.dropped_closed.inc_by(items);
                    batch.drop_with(Outcome::Interrupted);
                }
            },
            OnFull::Drop => match self.queue.try_push(batch).await {
                Ok(()) => {}
                Err(PushError::Full(batch)) => {
                    self.dropped_full.inc_by(items);
                    batch.drop_with(Outcome::Dropped);
                }
                Err(PushError::Closed(batch)) => {
                    self.dropped_closed.inc_by(items);
                    batch.drop_with(Outcome::Interrupted);
                }
            },
        }
    }
}

/// Delivers `batch` to every exporter, in order; waits while a queue is
/// full, until `draining` is cancelled.
pub async fn deliver_all<T: SignalData>(
    exporters: &[ExporterInput<T>],
    batch: Batch<T>,
    draining: &CancellationToken,
) {
    let Some((last, rest)) = exporters.split_last() else {
        batch.drop_with(Outcome::Dropped);
        return;
    };
    for exporter in rest {
        exporter.deliver(batch.clone(), draining).await;
    }
    last.deliver(batch, draining).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::{MemoryLimiter, Ticket};
    use crate::signal::Traces;
    use crate::signal::traces::tests::sample;
    use prometheus_client::metrics::gauge::Gauge;

    fn input(on_full: OnFull, max_items: usize) -> ExporterInput<Traces> {
        ExporterInput {
            id: ComponentId::new("otlp", "out"),
            queue: Arc::new(Queue::new(
                max_items,
                usize::MAX,
                Gauge::default(),
                Gauge::default(),
            )),
            on_full,
            dropped_full: Counter::default(),
            dropped_closed: Counter::default(),
        }
    }

    #[tokio::test]
    async fn on_full_drop_drops_the_newest_batch_and_counts_it() {
        let limiter = MemoryLimiter::new(1 << 20);
        let exporter = input(OnFull::Drop, 10);
        let (ticket, ack) = limiter.try_acquire(100).unwrap().with_ack();
        let draining = CancellationToken::new();
        exporter
            .deliver(Batch::new(sample(1, 1, 8), Ticket::untracked()), &draining)
            .await;
        exporter
            .deliver(Batch::new(sample(1, 1, 5), ticket), &draining)
            .await;
        assert_eq!(exporter.dropped_full.get(), 5);
        assert_eq!(exporter.queue.len_items(), 8, "the queued batch stays");
        assert_eq!(
            ack.wait().await,
            Outcome::Dropped,
            "the sender of the dropped batch learns of it"
        );
        assert_eq!(limiter.used(), 0, "its memory is released");
    }

    // The 20 ms a send waits for room runs on paused time.
    #[tokio::test(start_paused = true)]
    async fn fan_out_copies_to_every_pipeline_or_none() {
        let (a_tx, mut a_rx) = mpsc::channel(1);
        let (b_tx, mut b_rx) = mpsc::channel(1);
        let inputs = PipelineInputs::new(vec![a_tx, b_tx], Duration::from_millis(20));
        inputs
            .send(Batch::new(sample(1, 1, 2), Ticket::untracked()))
            .await
            .unwrap();
        // b is now full: the next send reserves nothing and refuses.
        assert_eq!(a_rx.recv().await.unwrap().items(), 2);
        let refused = inputs
            .send(Batch::new(sample(1, 1, 3), Ticket::untracked()))
            .await;
        assert_eq!(refused, Err(Refusal::PipelineFull));
        assert!(a_rx.try_recv().is_err(), "no partial delivery to a");
        assert_eq!(b_rx.recv().await.unwrap().items(), 2);
    }
}
