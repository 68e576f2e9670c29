//! A [`Batch`]: data of one signal with the tickets of everything merged
//! into it, whom it belongs to ([`Tenancy`]), and the [`Ticket`] that
//! accounts its memory and carries its acknowledgement.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use tokio::sync::oneshot;

use crate::signal::{Signal, SignalData};

/// How a batch's journey ended. Ordered from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Outcome {
    /// Every exporter accepted it.
    Delivered = 0,
    /// An exporter gave up on it for good (a permanent error, retries
    /// exhausted, a full queue with `on_full = "drop"`): sending it again
    /// would fail again.
    Dropped = 1,
    /// A shutdown stopped its delivery: its sender may offer it again after
    /// a restart (a log tailer does not move its position past it).
    Interrupted = 2,
}

/// Bytes in flight across the process, and the ceiling beyond which receivers refuse.
#[derive(Debug)]
pub struct MemoryLimiter {
    limit: AtomicUsize,
    used: AtomicUsize,
}

impl MemoryLimiter {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit: AtomicUsize::new(limit),
            used: AtomicUsize::new(0),
        })
    }

    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Reserves `bytes`, or refuses when that would pass the limit.
    pub fn try_acquire(self: &Arc<Self>, bytes: usize) -> Option<Ticket> {
        self.reserve(bytes).then(|| Ticket {
            bytes,
            limiter: Some(self.clone()),
            ack: None,
        })
    }

    /// Adds `bytes` to what is in use unless that passes the limit.
    fn reserve(&self, bytes: usize) -> bool {
        let limit = self.limit();
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let Some(next) = used.checked_add(bytes) else {
                return false;
            };
            if next > limit {
                return false;
            }
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => used = actual,
            }
        }
    }
}

/// A reservation of memory for accepted data, and optionally an acknowledgement.
#[derive(Debug)]
pub struct Ticket {
    bytes: usize,
    limiter: Option<Arc<MemoryLimiter>>,
    ack: Option<AckSender>,
}

impl Ticket {
    /// A ticket that counts nothing: for data made inside ferro.
    pub fn untracked() -> Self {
        Self {
            bytes: 0,
            limiter: None,
            ack: None,
        }
    }

    /// Attaches an acknowledgement; the returned waiter resolves when every
    /// copy of the data carrying this ticket is finished.
    pub fn with_ack(mut self) -> (Self, AckWaiter) {
        let (tx, rx) = oneshot::channel();
        self.ack = Some(AckSender {
            worst: AtomicU8::new(Outcome::Delivered as u8),
            tx: Some(tx),
        });
        (self, AckWaiter(rx))
    }

    /// Bytes this ticket holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Makes this ticket hold `bytes`: what a reader does as a body arrives
    /// (growing) and once it knows what it keeps (shrinking). Growing fails,
    /// changing nothing, when it would pass the limit.
    pub fn try_resize(&mut self, bytes: usize) -> bool {
        let Some(limiter) = &self.limiter else {
            return true;
        };
        if bytes > self.bytes {
            if !limiter.reserve(bytes - self.bytes) {
                return false;
            }
        } else {
            limiter.used.fetch_sub(self.bytes - bytes, Ordering::AcqRel);
        }
        self.bytes = bytes;
        true
    }

    fn record(&self, outcome: Outcome) {
        if let Some(ack) = &self.ack {
            ack.worst.fetch_max(outcome as u8, Ordering::Relaxed);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(limiter) = &self.limiter {
            limiter.used.fetch_sub(self.bytes, Ordering::AcqRel);
        }
        if let Some(ack) = &mut self.ack
            && let Some(tx) = ack.tx.take()
        {
            let outcome = match ack.worst.load(Ordering::Relaxed) {
                0 => Outcome::Delivered,
                1 => Outcome::Dropped,
                _ => Outcome::Interrupted,
            };
            let _ = tx.send(outcome);
        }
    }
}

#[derive(Debug)]
struct AckSender {
    worst: AtomicU8,
    tx: Option<oneshot::Sender<Outcome>>,
}

/// Resolves with the outcome once all copies of the acknowledged data are finished.
pub struct AckWaiter(oneshot::Receiver<Outcome>);

impl AckWaiter {
    pub async fn wait(self) -> Outcome {
        self.0.await.unwrap_or(Outcome::Dropped)
    }

    /// The outcome if it is known already, without waiting.
    pub fn try_outcome(&mut self) -> Option<Outcome> {
        match self.0.try_recv() {
            Ok(outcome) => Some(outcome),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Outcome::Dropped),
        }
    }
}

/// Waiting in place (`&mut waiter` in a `select!`), for a sender that keeps
/// several waiters in order.
impl Future for AckWaiter {
    type Output = Outcome;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Outcome> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Outcome::Dropped))
    }
}

/// What [`valid_tenant`] accepts, as config errors say it.
pub const TENANT_RULE: &str = "at most 150 of a-z A-Z 0-9 ! - _ . * ' ( ), not `.` or `..`";

/// A tenant ID as Grafana's backends accept it in `X-Scope-OrgID` (dskit's
/// `ValidTenantID`: 1–150 of `a-z A-Z 0-9 ! - _ . * ' ( )`, not `.` or `..`).
pub fn valid_tenant(tenant: &str) -> Option<http::HeaderValue> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "!-_.*'()".contains(c);
    if tenant.is_empty()
        || tenant.len() > 150
        || tenant == "."
        || tenant == ".."
        || !tenant.chars().all(allowed)
    {
        return None;
    }
    http::HeaderValue::from_str(tenant).ok()
}

/// Whom a batch belongs to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tenancy {
    /// The `X-Scope-OrgID` the push request came with (checked by the receiver).
    pub org_id: Option<http::HeaderValue>,
    /// The tenant a tenant processor resolved: what exporters send as
    /// `X-Scope-OrgID`, in place of their static one.
    pub tenant: Option<http::HeaderValue>,
    /// The tenant limiters that refuse rather than drop admitted this push
    /// (and would have refused the sender): they drop nothing of it for
    /// rate, and do not charge again the tenants they charged then.
    pub admitted: Option<Arc<Admission>>,
}

/// What admitted a push: the tenant processors that did, and the tenants
/// each charged (a processor before the tenant one may yet change a
/// record's tenant, which is then charged when the batch is processed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Admission {
    /// The processors that admitted the push.
    pub by: Vec<Arc<str>>,
    /// `(processor, tenant)` pairs charged at admission.
    pub charged: Vec<(Arc<str>, Box<str>)>,
}

impl Admission {
    /// Whether `processor` admitted the push.
    pub fn admitted_by(&self, processor: &str) -> bool {
        self.by.iter().any(|p| **p == *processor)
    }

    /// Whether `processor` charged `tenant` at admission.
    pub fn charged(&self, processor: &str, tenant: &str) -> bool {
        self.charged
            .iter()
            .any(|(p, t)| **p == *processor && **t == *tenant)
    }
}

/// What an [`Admitter`](crate::delivery::Admitter) charged for a push: each
/// tenant by name (and whether it was charged to the overflow account)
/// with its records and bytes.
#[derive(Debug)]
#[must_use = "a reservation of a push that is not accepted must be released"]
pub struct Reservation {
    /// The processor that charged it.
    pub processor: Arc<str>,
    pub signal: Signal,
    /// `(tenant, overflow, records, bytes)`.
    pub charges: Vec<(Box<str>, bool, usize, usize)>,
}

impl Reservation {
    /// Notes in `admission` that this processor admitted the push and which
    /// tenants it charged.
    pub fn record(&self, admission: &mut Admission) {
        admission.by.push(self.processor.clone());
        admission.charged.extend(
            self.charges
                .iter()
                .map(|(name, ..)| (self.processor.clone(), name.clone())),
        );
    }
}

/// Data of one signal plus the tickets of everything merged into it.
#[derive(Debug)]
pub struct Batch<T> {
    pub data: T,
    /// Encoded size of `data`, kept up to date by merge and split.
    pub bytes: usize,
    pub tenancy: Tenancy,
    tickets: Vec<Arc<Ticket>>,
    /// The address of the client that sent the data, where the receiver
    /// knows it (OTLP): a processor can find the sending pod by it. A
    /// batch merged from different clients has none, so that data is never
    /// attributed to the wrong sender.
    pub peer: Option<IpAddr>,
}

impl<T: SignalData> Batch<T> {
    pub fn new(data: T, ticket: Ticket) -> Self {
        let bytes = data.encoded_len();
        Self {
            data,
            bytes,
            tenancy: Tenancy::default(),
            tickets: vec![Arc::new(ticket)],
            peer: None,
        }
    }

    /// A batch whose encoded size the caller already knows.
    pub fn with_size(data: T, bytes: usize, ticket: Ticket) -> Self {
        Self {
            data,
            bytes,
            tenancy: Tenancy::default(),
            tickets: vec![Arc::new(ticket)],
            peer: None,
        }
    }

    /// The batch, marked as sent by `peer`.
    pub fn with_peer(mut self, peer: Option<IpAddr>) -> Self {
        self.peer = peer.map(|ip| ip.to_canonical());
        self
    }

    /// Whether `other` may be merged into this batch after the processors
    /// (in an exporter): the same tenant.
    pub fn same_tenant(&self, other: &Batch<T>) -> bool {
        self.tenancy.tenant == other.tenancy.tenant
    }

    /// Whether `other` may be merged into this batch before the processors
    /// have run (the batch stage): the same tenant, and, for a tenant
    /// processor still to come, the same `X-Scope-OrgID` and admission.
    /// Merging pushes of two org IDs would send one's data under the
    /// other's; merging an admitted push with pulled data would hold the push
    /// to a limit it was already let past.
    pub fn same_tenancy(&self, other: &Batch<T>) -> bool {
        self.tenancy == other.tenancy
    }

    pub fn items(&self) -> usize {
        self.data.item_count()
    }

    /// Appends `other`; callers merge only batches of the same tenant
    /// ([`Batch::same_tenant`]), the tenancy of `self` is kept.
    pub fn merge(&mut self, other: Batch<T>) {
        debug_assert!(self.same_tenant(&other), "merging batches of two tenants");
        if self.tenancy.admitted != other.tenancy.admitted {
            self.tenancy.admitted = None;
        }
        if self.tenancy.org_id != other.tenancy.org_id {
            self.tenancy.org_id = None;
        }
        self.data.merge(other.data);
        self.bytes += other.bytes;
        self.tickets.extend(other.tickets);
        if self.peer != other.peer {
            self.peer = None;
        }
    }

    /// Splits off the first `n` items; both halves keep the tickets, so memory
    /// is released and acknowledgements fire only once both are finished.
    pub fn split_to(&mut self, n: usize) -> Batch<T> {
        let data = self.data.split_to(n);
        let bytes = data.encoded_len();
        self.bytes = self.bytes.saturating_sub(bytes);
        Batch {
            data,
            bytes,
            tenancy: self.tenancy.clone(),
            tickets: self.tickets.clone(),
            peer: self.peer,
        }
    }

    /// Cuts the data into parts with `split`; every part keeps the tickets, so
    /// memory and acknowledgements wait for all of them.
    pub fn map_parts(self, split: impl FnOnce(T) -> Vec<T>) -> Vec<Batch<T>> {
        let tickets = self.tickets;
        let peer = self.peer;
        let tenancy = self.tenancy;
        split(self.data)
            .into_iter()
            .map(|data| {
                let bytes = data.encoded_len();
                Batch {
                    data,
                    bytes,
                    tenancy: tenancy.clone(),
                    tickets: tickets.clone(),
                    peer,
                }
            })
            .collect()
    }

    /// Marks this copy as given up on; the acknowledgement reports it.
    pub fn drop_with(self, outcome: Outcome) {
        self.record(outcome);
    }

    /// A hold on the acknowledgements of this batch's data, to report its
    /// loss once the batch itself is gone (a processor panicked with it).
    pub fn acknowledgements(&self) -> Acknowledgements {
        Acknowledgements(self.tickets.clone())
    }

    /// Records `outcome` for the data this batch carries without giving the
    /// batch up: for a processor that removed part of it (counted), so that
    /// the acknowledgement reports the loss once the rest is finished.
    pub fn record(&self, outcome: Outcome) {
        for ticket in &self.tickets {
            ticket.record(outcome);
        }
    }
}

/// See [`Batch::acknowledgements`].
pub struct Acknowledgements(Vec<Arc<Ticket>>);

impl Acknowledgements {
    /// The data was lost: its acknowledgement says so.
    pub fn dropped(self) {
        for ticket in &self.0 {
            ticket.record(Outcome::Dropped);
        }
    }
}

impl<T: Clone> Clone for Batch<T> {
    fn clone(&self) -> Self {
        Self {
            data: self.data.clone(),
            bytes: self.bytes,
            tenancy: self.tenancy.clone(),
            tickets: self.tickets.clone(),
            peer: self.peer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::traces::tests::sample;

    #[test]
    fn limiter_refuses_past_the_limit_and_releases_on_drop() {
        let limiter = MemoryLimiter::new(100);
        let a = limiter.try_acquire(60).unwrap();
        assert!(limiter.try_acquire(41).is_none());
        let b = limiter.try_acquire(40).unwrap();
        assert_eq!(limiter.used(), 100);
        drop(a);
        assert_eq!(limiter.used(), 40);
        drop(b);
        assert_eq!(limiter.used(), 0);
    }

    #[test]
    fn a_ticket_grows_within_the_limit_and_shrinks() {
        let limiter = MemoryLimiter::new(100);
        let mut ticket = limiter.try_acquire(10).unwrap();
        assert!(ticket.try_resize(60));
        assert_eq!(limiter.used(), 60);
        let other = limiter.try_acquire(30).unwrap();
        assert!(!ticket.try_resize(71), "past the limit");
        assert_eq!((ticket.bytes(), limiter.used()), (60, 90), "unchanged");
        assert!(ticket.try_resize(5));
        assert_eq!(limiter.used(), 35);
        drop((ticket, other));
        assert_eq!(limiter.used(), 0);
        assert!(
            Ticket::untracked().try_resize(1 << 40),
            "untracked data is not counted"
        );
    }

    #[tokio::test]
    async fn ack_waits_for_every_copy_and_reports_the_worst() {
        let limiter = MemoryLimiter::new(1 << 20);
        let (ticket, waiter) = limiter.try_acquire(10).unwrap().with_ack();
        let mut batch = Batch::new(sample(1, 1, 4), ticket);
        let head = batch.split_to(2);
        let copy = batch.clone();
        drop(head);
        drop(batch);
        assert_eq!(limiter.used(), 10, "one copy is still in flight");
        copy.drop_with(Outcome::Dropped);
        assert_eq!(waiter.wait().await, Outcome::Dropped);
        assert_eq!(limiter.used(), 0);
    }

    #[test]
    fn merging_batches_from_different_peers_forgets_the_peer() {
        let a: IpAddr = "10.1.0.5".parse().unwrap();
        let b: IpAddr = "10.1.0.6".parse().unwrap();
        let batch = |peer| Batch::new(sample(1, 1, 1), Ticket::untracked()).with_peer(peer);
        let mut same = batch(Some(a));
        same.merge(batch(Some(a)));
        assert_eq!(same.peer, Some(a));
        assert_eq!(same.split_to(1).peer, Some(a));
        assert_eq!(same.clone().peer, Some(a));
        let mut mixed = batch(Some(a));
        mixed.merge(batch(Some(b)));
        assert_eq!(mixed.peer, None);
        let mut unknown = batch(None);
        unknown.merge(batch(Some(a)));
        assert_eq!(unknown.peer, None);
        let mapped: IpAddr = "::ffff:10.1.0.5".parse().unwrap();
        assert_eq!(
            batch(Some(mapped)).peer,
            Some(a),
            "IPv4-mapped peers are plain IPv4"
        );
    }

    #[tokio::test]
    async fn ack_reports_delivered_when_all_copies_succeed() {
        let limiter = MemoryLimiter::new(1 << 20);
        let (ticket, waiter) = limiter.try_acquire(10).unwrap().with_ack();
        let mut a = Batch::new(sample(1, 1, 1), ticket);
        let (t2, _w2) = limiter.try_acquire(5).unwrap().with_ack();
        a.merge(Batch::new(sample(1, 1, 1), t2));
        drop(a);
        assert_eq!(waiter.wait().await, Outcome::Delivered);
    }
}
