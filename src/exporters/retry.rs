//! Jittered exponential backoff between send attempts.

use serde::Deserialize;
use std::time::Duration as StdDuration;

use crate::config::{FieldError, HumanDuration};

/// `retry = { ... }` of a network exporter.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct RawRetryConfig {
    /// Wait after the first failure.
    pub initial_interval: HumanDuration,
    /// The longest wait between two attempts.
    pub max_interval: HumanDuration,
    /// Give up on a batch after this long; `"0s"` (the default) retries until
    /// shutdown, since the queue bound already keeps memory in check.
    pub max_elapsed_time: HumanDuration,
}

impl Default for RawRetryConfig {
    fn default() -> Self {
        Self {
            initial_interval: HumanDuration::from_millis(500),
            max_interval: HumanDuration::from_secs(30),
            max_elapsed_time: HumanDuration::from_secs(0),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RetryConfig {
    pub initial_interval: StdDuration,
    pub max_interval: StdDuration,
    pub max_elapsed_time: Option<StdDuration>,
}

impl RawRetryConfig {
    pub fn check(self, errors: &mut Vec<FieldError>) -> RetryConfig {
        if self.initial_interval.get().is_zero() {
            errors.push(FieldError::new(
                "retry.initial_interval",
                "must be more than 0",
            ));
        }
        if self.max_interval < self.initial_interval {
            errors.push(FieldError::new(
                "retry.max_interval",
                "must be at least retry.initial_interval",
            ));
        }
        let elapsed = self.max_elapsed_time.get();
        RetryConfig {
            initial_interval: self.initial_interval.get(),
            max_interval: self.max_interval.get(),
            max_elapsed_time: (!elapsed.is_zero()).then_some(elapsed),
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RawRetryConfig::default().check(&mut Vec::new())
    }
}

/// The longest wait a server's `Retry-After` or `RetryInfo` is honoured
/// for: a proxy that asks for hours must not park an exporter (and fill its
/// queue) for hours.
pub const MAX_SERVER_WAIT: StdDuration = StdDuration::from_secs(300);

/// The waits of one batch's retries: doubling from `initial_interval` up to
/// `max_interval`, each drawn uniformly from 50 %–150 % of the nominal value so
/// that many agents recovering together do not retry in lock-step.
pub struct Backoff {
    next: StdDuration,
    max: StdDuration,
}

impl Backoff {
    pub fn new(config: &RetryConfig) -> Self {
        Self {
            next: config.initial_interval,
            max: config.max_interval,
        }
    }

    /// The next wait; at least `server_asked` when the server said how long,
    /// up to [`MAX_SERVER_WAIT`].
    pub fn next_wait(&mut self, server_asked: Option<StdDuration>) -> StdDuration {
        let nominal = self.next;
        self.next = (self.next * 2).min(self.max);
        let jittered = nominal.mul_f64(0.5 + fastrand::f64());
        match server_asked {
            Some(asked) => jittered.max(asked.min(MAX_SERVER_WAIT)),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_the_max() {
        let config = RetryConfig {
            initial_interval: StdDuration::from_millis(100),
            max_interval: StdDuration::from_millis(400),
            max_elapsed_time: None,
        };
        let mut backoff = Backoff::new(&config);
        let nominal = [100u64, 200, 400, 400, 400];
        for n in nominal {
            let wait = backoff.next_wait(None).as_millis() as u64;
            assert!(
                wait >= n / 2 && wait <= n * 3 / 2,
                "wait {wait} for nominal {n}"
            );
        }
    }

    #[test]
    fn honours_the_server_wait() {
        let mut backoff = Backoff::new(&RetryConfig::default());
        let wait = backoff.next_wait(Some(StdDuration::from_secs(7)));
        assert!(wait >= StdDuration::from_secs(7));
        let wait = backoff.next_wait(Some(StdDuration::from_secs(86_400)));
        assert_eq!(
            wait, MAX_SERVER_WAIT,
            "a day is too long to park an exporter"
        );
    }
}
