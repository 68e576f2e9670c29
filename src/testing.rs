//! The polling helper of the unit tests (the end-to-end tests have theirs
//! in `tests/common`): wait for a condition with a deadline, never for a
//! fixed time, and say on timeout what was awaited and what was seen.

use std::time::Duration;

/// How long a unit test waits for a condition: generous, so that a loaded
/// 2-core machine passes too.
pub const WAIT: Duration = Duration::from_secs(30);

/// Polls `check` until it holds; panics after [`WAIT`] saying `what` was
/// awaited.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    eventually_with(what, || if check() { Ok(()) } else { Err(String::new()) }).await
}

/// Polls `check` until it is `Ok`; panics after [`WAIT`] saying `what` was
/// awaited and what the last `Err` said was seen instead.
pub async fn eventually_with(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let started = tokio::time::Instant::now();
    let mut interval = Duration::from_millis(5);
    loop {
        let seen = match check() {
            Ok(()) => return,
            Err(seen) => seen,
        };
        let waited = started.elapsed();
        assert!(
            waited < WAIT,
            "timed out after {waited:?} waiting for {what}{}{seen}",
            if seen.is_empty() { "" } else { ": " }
        );
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(Duration::from_millis(100));
    }
}
