//! The engine's clock: wall-clock milliseconds that never go backwards and can be advanced by
//! tests (to expire iterators or retention without waiting).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Monotonic wall clock in epoch milliseconds, with a test offset.
#[derive(Debug)]
pub struct Clock {
    start: Instant,
    start_epoch_ms: u64,
    offset_ms: AtomicU64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock reading the current time.
    pub fn new() -> Self {
        let start_epoch_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Clock {
            start: Instant::now(),
            start_epoch_ms,
            offset_ms: AtomicU64::new(0),
        }
    }

    /// Now, in milliseconds since the Unix epoch (plus any test advance).
    pub fn now_ms(&self) -> u64 {
        self.start_epoch_ms
            + self.start.elapsed().as_millis() as u64
            + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Moves the clock forward by `by` (for tests of expiry and retention).
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as u64, Ordering::Relaxed);
    }
}
