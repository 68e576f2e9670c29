//! A token bucket: `rate` tokens a second, at most `burst` held.
//!
//! A group of records passes when the bucket holds as many tokens as it has
//! records (or bytes). A group larger than the burst could then never pass,
//! which would make a tenant's fate depend on how its sender batches: such a
//! group passes from a full bucket instead and leaves it in debt, which the
//! refill pays off before anything else passes. Over time the tenant gets its
//! rate exactly, whatever the batch sizes.

use std::time::{Duration, Instant};

use super::config::Rate;

#[derive(Clone, Debug)]
pub struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: rate.burst,
            rate: rate.per_second,
            burst: rate.burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        if elapsed > 0.0 {
            self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
            self.last = now;
        }
    }

    /// Whether `n` may pass now (without taking it).
    pub fn allows(&mut self, n: f64, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= n.min(self.burst)
    }

    /// Takes `n`; the bucket may go into debt (see the module doc).
    pub fn take(&mut self, n: f64) {
        self.tokens -= n;
    }

    /// Gives back `n` taken earlier, up to the burst.
    pub fn give(&mut self, n: f64) {
        self.tokens = (self.tokens + n).min(self.burst);
    }

    /// How long until the bucket holds a token again; zero if it does.
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }

    /// Whether the bucket has refilled completely: nothing is owed.
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }
}
