//! A receiver's batches in flight, in the order sent, each with the
//! progress its acknowledgement makes safe to save (a file offset, a
//! journal cursor). Acknowledgements are taken in that order: progress
//! never passes a batch that is still on its way, and after a shutdown
//! interrupts one delivery it moves no more (the next start sends those
//! again).

use std::collections::VecDeque;

use super::{AckWaiter, Outcome};

struct Sent<P> {
    ack: AckWaiter,
    progress: P,
    items: u64,
}

/// Batches in flight, oldest first.
pub struct InFlight<P> {
    sent: VecDeque<Sent<P>>,
    interrupted: bool,
}

/// The oldest batch in flight, finished.
#[derive(Debug, PartialEq, Eq)]
pub struct Acked<P> {
    pub outcome: Outcome,
    pub items: u64,
    /// What may be saved now; `None` once a delivery (this one or an
    /// earlier one) was interrupted by a shutdown.
    pub progress: Option<P>,
}

impl<P> Default for InFlight<P> {
    fn default() -> Self {
        Self {
            sent: VecDeque::new(),
            interrupted: false,
        }
    }
}

impl<P> InFlight<P> {
    /// A batch of `items` sent, whose acknowledgement makes `progress` safe.
    pub fn push(&mut self, ack: AckWaiter, progress: P, items: u64) {
        self.sent.push_back(Sent {
            ack,
            progress,
            items,
        });
    }

    pub fn len(&self) -> usize {
        self.sent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }

    /// Whether a shutdown interrupted a delivery: progress moves no more.
    pub fn interrupted(&self) -> bool {
        self.interrupted
    }

    /// The progress the newest batch will make safe: input read after it
    /// that made no item (a line still being joined, a journal entry
    /// without a message) moves it.
    pub fn newest_progress(&mut self) -> Option<&mut P> {
        self.sent.back_mut().map(|s| &mut s.progress)
    }

    /// The oldest batch, if it is finished already.
    pub fn try_next(&mut self) -> Option<Acked<P>> {
        let outcome = self.sent.front_mut()?.ack.try_outcome()?;
        Some(self.finish(outcome))
    }

    /// Waits for the oldest batch to finish; forever if none is in flight
    /// (for a `select!` branch).
    pub async fn next(&mut self) -> Acked<P> {
        let outcome = match self.sent.front_mut() {
            Some(front) => (&mut front.ack).await,
            None => std::future::pending().await,
        };
        self.finish(outcome)
    }

    /// The oldest batch once it finishes, if that is before `deadline`;
    /// `None` when none is in flight or the deadline passed first (what a
    /// stopping receiver records of what it is owed).
    pub async fn next_until(&mut self, deadline: tokio::time::Instant) -> Option<Acked<P>> {
        if self.is_empty() {
            return None;
        }
        tokio::time::timeout_at(deadline, self.next()).await.ok()
    }

    fn finish(&mut self, outcome: Outcome) -> Acked<P> {
        let done = self
            .sent
            .pop_front()
            .expect("an outcome comes from the front batch");
        self.interrupted |= outcome == Outcome::Interrupted;
        Acked {
            outcome,
            items: done.items,
            progress: (!self.interrupted).then_some(done.progress),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::MemoryLimiter;
    use std::sync::Arc;

    fn waiter(limiter: &Arc<MemoryLimiter>) -> (crate::delivery::Ticket, AckWaiter) {
        limiter.try_acquire(1).unwrap().with_ack()
    }

    #[tokio::test]
    async fn acknowledgements_come_in_order_and_an_interruption_stops_progress() {
        let limiter = Arc::new(MemoryLimiter::new(1 << 20));
        let mut in_flight = InFlight::default();
        let (first, ack) = waiter(&limiter);
        in_flight.push(ack, 10u64, 3);
        let (second, ack) = waiter(&limiter);
        in_flight.push(ack, 20u64, 4);
        let (third, ack) = waiter(&limiter);
        in_flight.push(ack, 30u64, 5);
        *in_flight.newest_progress().unwrap() = 35;
        // The second finishes first: nothing is taken until the first has.
        drop(second);
        assert_eq!(in_flight.try_next(), None);
        drop(first);
        assert_eq!(
            in_flight.next().await,
            Acked {
                outcome: Outcome::Delivered,
                items: 3,
                progress: Some(10)
            }
        );
        assert_eq!(in_flight.try_next().unwrap().progress, Some(20));
        crate::delivery::Batch::new(crate::signal::Logs::default(), third)
            .drop_with(Outcome::Interrupted);
        let last = in_flight.next().await;
        assert_eq!(last.outcome, Outcome::Interrupted);
        assert_eq!(last.progress, None);
        assert!(in_flight.interrupted());
        assert!(in_flight.is_empty());
        let soon = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        assert_eq!(in_flight.next_until(soon).await, None, "none in flight");
        let (_pending, ack) = waiter(&limiter);
        in_flight.push(ack, 40, 1);
        assert_eq!(
            in_flight.next_until(soon).await,
            None,
            "not before the deadline"
        );
    }
}
