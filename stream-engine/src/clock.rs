//! The engine's clock: wall-clock milliseconds that never go backwards and can be advanced by
//! tests (to expire iterators or retention without waiting), or a manual clock that moves only
//! when a test advances it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Monotonic wall clock in epoch milliseconds, with a test offset.
#[derive(Debug)]
pub struct Clock {
    manual: bool,
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
            manual: false,
            start: Instant::now(),
            start_epoch_ms,
            offset_ms: AtomicU64::new(0),
        }
    }

    /// A manual clock: it starts at the current time and moves only by [`Clock::advance`].
    pub fn manual() -> Self {
        Clock {
            manual: true,
            ..Self::new()
        }
    }

    /// Whether this clock moves only when advanced.
    pub fn is_manual(&self) -> bool {
        self.manual
    }

    /// Now, in milliseconds since the Unix epoch (plus any test advance).
    pub fn now_ms(&self) -> u64 {
        let elapsed = if self.manual {
            0
        } else {
            self.start.elapsed().as_millis() as u64
        };
        self.start_epoch_ms + elapsed + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Moves the clock forward by `by` (for tests of expiry and retention).
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as u64, Ordering::Relaxed);
    }
}
