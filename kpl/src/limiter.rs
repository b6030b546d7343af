//! Per-shard token buckets (records and bytes) with AIMD on throttling: a throttled response
//! multiplies the rate by 0.7 (once per response, however many of its records were
//! throttled), each successful response adds 2 % of the base rate back, up to the base.

use std::time::Duration;
use tokio::time::Instant;

/// Lowest fraction of the configured rate AIMD goes down to.
const MIN_FACTOR: f64 = 0.05;

/// One shard's rate limiter.
#[derive(Debug, Clone)]
pub(crate) struct Limiter {
    records: f64,
    bytes: f64,
    factor: f64,
    last: Instant,
    base_records: f64,
    base_bytes: f64,
}

impl Limiter {
    /// A limiter at `percent` of the shard write limits, full at `now`.
    pub fn new(percent: u32, now: Instant) -> Self {
        let p = f64::from(percent) / 100.0;
        let base_records = shared_proto::limits::SHARD_WRITE_RECORDS_PER_SEC as f64 * p;
        let base_bytes = shared_proto::limits::SHARD_WRITE_BYTES_PER_SEC as f64 * p;
        Limiter {
            records: base_records,
            bytes: base_bytes,
            factor: 1.0,
            last: now,
            base_records,
            base_bytes,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        let (r, b) = (
            self.base_records * self.factor,
            self.base_bytes * self.factor,
        );
        self.records = (self.records + dt * r).min(r);
        self.bytes = (self.bytes + dt * b).min(b);
    }

    /// `None` when a record may go now, else how long until one may.
    pub fn wait(&mut self, now: Instant) -> Option<Duration> {
        self.refill(now);
        if self.records >= 1.0 && self.bytes > 0.0 {
            return None;
        }
        let r = self.base_records * self.factor;
        let b = self.base_bytes * self.factor;
        let need_r = if self.records >= 1.0 {
            0.0
        } else {
            (1.0 - self.records) / r
        };
        let need_b = if self.bytes > 0.0 {
            0.0
        } else {
            (1.0 - self.bytes) / b
        };
        Some(Duration::from_secs_f64(
            need_r.max(need_b).clamp(0.001, 60.0),
        ))
    }

    /// Takes one record of `size` bytes.
    pub fn take(&mut self, size: usize) {
        self.records -= 1.0;
        self.bytes -= size as f64;
    }

    /// A response with throttled records: multiplicative decrease, and no burst right after.
    pub fn throttled(&mut self) {
        self.factor = (self.factor * 0.7).max(MIN_FACTOR);
        self.records = self.records.min(0.0);
    }

    /// A response without throttling: additive increase.
    pub fn succeeded(&mut self) {
        self.factor = (self.factor + 0.02).min(1.0);
    }

    /// The current fraction of the configured rate, in per mille.
    pub fn permille(&self) -> u32 {
        (self.factor * 1000.0).round() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_second_of_records_then_waits() {
        let t0 = Instant::now();
        let mut l = Limiter::new(100, t0);
        for _ in 0..1000 {
            assert!(l.wait(t0).is_none());
            l.take(10);
        }
        let wait = l.wait(t0).expect("empty bucket waits");
        assert!(wait <= Duration::from_millis(2), "{wait:?}");
        assert!(l.wait(t0 + Duration::from_millis(2)).is_none());
    }

    #[test]
    fn bytes_limit_the_rate_too() {
        let t0 = Instant::now();
        let mut l = Limiter::new(100, t0);
        assert!(l.wait(t0).is_none());
        l.take(2 * 1024 * 1024);
        let wait = l.wait(t0).expect("bytes overdrawn");
        assert!(wait >= Duration::from_millis(900), "{wait:?}");
    }

    #[test]
    fn aimd_decreases_per_response_and_recovers() {
        let t0 = Instant::now();
        let mut l = Limiter::new(150, t0);
        l.throttled();
        assert_eq!(l.permille(), 700);
        l.throttled();
        assert_eq!(l.permille(), 490);
        for _ in 0..100 {
            l.throttled();
        }
        assert_eq!(l.permille(), 50, "floor");
        for _ in 0..48 {
            l.succeeded();
        }
        assert_eq!(l.permille(), 1000, "back to the configured rate");
        l.succeeded();
        assert_eq!(l.permille(), 1000);
    }
}
