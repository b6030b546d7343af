//! Token buckets for the per-shard throughput limits.

/// A token bucket holding at most one second of `rate`, refilled continuously.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    tokens: f64,
    rate: f64,
    last_ms: u64,
}

impl Bucket {
    pub(crate) fn new(rate_per_sec: u64, now_ms: u64) -> Self {
        Bucket {
            tokens: rate_per_sec as f64,
            rate: rate_per_sec as f64,
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: u64) {
        if now_ms > self.last_ms {
            let elapsed = (now_ms - self.last_ms) as f64 / 1000.0;
            self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
            self.last_ms = now_ms;
        }
    }

    /// Takes `amount` tokens if that many are available.
    pub(crate) fn try_take(&mut self, amount: u64, now_ms: u64) -> bool {
        self.refill(now_ms);
        let amount = amount as f64;
        if self.tokens >= amount {
            self.tokens -= amount;
            true
        } else {
            false
        }
    }

    /// Whether any token is available (for limits that may go into debt, like read bytes).
    pub(crate) fn has_tokens(&mut self, now_ms: u64) -> bool {
        self.refill(now_ms);
        self.tokens > 0.0
    }

    /// Takes `amount` tokens, going into debt if needed.
    pub(crate) fn take_debt(&mut self, amount: u64, now_ms: u64) {
        self.refill(now_ms);
        self.tokens -= amount as f64;
    }

    /// Gives back tokens taken by a call that did not complete.
    pub(crate) fn refund(&mut self, amount: u64) {
        self.tokens = (self.tokens + amount as f64).min(self.rate);
    }
}
