//! Producer metrics: a snapshot API, mirrored to the `metrics` facade.

use parking_lot_free::ThrottleMap;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

mod parking_lot_free {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// Per-shard figures (throttles, rate); a std mutex, touched only on throttling and
    /// while a shard's rate recovers.
    #[derive(Debug, Default)]
    pub struct ThrottleMap(Mutex<(BTreeMap<String, u64>, BTreeMap<String, u32>)>);

    impl ThrottleMap {
        pub fn add(&self, shard: &str, n: u64) {
            if let Ok(mut m) = self.0.lock() {
                *m.0.entry(shard.to_owned()).or_default() += n;
            }
        }

        pub fn rate(&self, shard: &str, permille: u32) {
            if let Ok(mut m) = self.0.lock() {
                if permille >= 1000 {
                    m.1.remove(shard);
                } else {
                    m.1.insert(shard.to_owned(), permille);
                }
            }
        }

        pub fn forget(&self, shard: &str) {
            if let Ok(mut m) = self.0.lock() {
                m.1.remove(shard);
            }
        }

        pub fn snapshot(&self) -> (BTreeMap<String, u64>, BTreeMap<String, u32>) {
            self.0.lock().map(|m| m.clone()).unwrap_or_default()
        }
    }
}

/// A point-in-time copy of the producer's counters. Non-exhaustive: new figures are not a
/// breaking change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// User records accepted by `send`.
    pub user_records_put: u64,
    /// User records stored.
    pub user_records_succeeded: u64,
    /// User records that ended with an error.
    pub user_records_failed: u64,
    /// Of the failed, those that expired.
    pub user_records_expired: u64,
    /// Kinesis records sent (an aggregate counts once), including retries.
    pub kinesis_records_sent: u64,
    /// Bytes of Kinesis records sent (data + partition keys), including retries.
    pub bytes_sent: u64,
    /// `PutRecords` requests sent.
    pub requests: u64,
    /// User-record retries (a record sent again after a failed attempt).
    pub retries: u64,
    /// Throttled Kinesis records, by shard.
    pub throttles_by_shard: BTreeMap<String, u64>,
    /// Shards whose send rate is below the configured one after throttling (AIMD), in per
    /// mille of the configured rate; a shard back at its full rate is not listed.
    pub rate_permille_by_shard: BTreeMap<String, u32>,
    /// User records of aggregates that landed on a shard not owning all of them, sent again.
    pub misplaced_records_resent: u64,
    /// Shard-map refreshes after the first load.
    pub shard_map_refreshes: u64,
    /// Mean time from `send` to the first attempt.
    pub mean_buffered_time: Duration,
    /// Records accepted but without an outcome yet.
    pub outstanding_records: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub put: AtomicU64,
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    pub expired: AtomicU64,
    pub kinesis_records: AtomicU64,
    pub bytes: AtomicU64,
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub refreshes: AtomicU64,
    pub buffered_us: AtomicU64,
    pub buffered_n: AtomicU64,
    pub misplaced: AtomicU64,
    throttles: ThrottleMap,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    pub fn put(&self) {
        bump(&self.put, 1);
        metrics::counter!("kpl_user_records_put").increment(1);
    }

    pub fn succeeded(&self, n: u64) {
        bump(&self.succeeded, n);
        metrics::counter!("kpl_user_records_succeeded").increment(n);
    }

    pub fn failed(&self, n: u64, expired: bool) {
        bump(&self.failed, n);
        metrics::counter!("kpl_user_records_failed").increment(n);
        if expired {
            bump(&self.expired, n);
            metrics::counter!("kpl_user_records_expired").increment(n);
        }
    }

    pub fn request(&self, records: u64, bytes: u64) {
        bump(&self.requests, 1);
        bump(&self.kinesis_records, records);
        bump(&self.bytes, bytes);
        metrics::counter!("kpl_requests").increment(1);
        metrics::counter!("kpl_kinesis_records_sent").increment(records);
        metrics::counter!("kpl_bytes_sent").increment(bytes);
    }

    pub fn retries(&self, n: u64) {
        bump(&self.retries, n);
        metrics::counter!("kpl_retries").increment(n);
    }

    pub fn throttled(&self, shard: &str, n: u64, permille: u32) {
        self.throttles.add(shard, n);
        self.throttles.rate(shard, permille);
        metrics::counter!("kpl_throttles", "shard" => shard.to_owned()).increment(n);
    }

    pub fn rate(&self, shard: &str, permille: u32) {
        self.throttles.rate(shard, permille);
    }

    pub fn forget_shard(&self, shard: &str) {
        self.throttles.forget(shard);
    }

    pub fn misplaced(&self, n: u64) {
        bump(&self.misplaced, n);
        metrics::counter!("kpl_misplaced_records_resent").increment(n);
    }

    pub fn refreshed(&self) {
        bump(&self.refreshes, 1);
        metrics::counter!("kpl_shard_map_refreshes").increment(1);
    }

    pub fn buffered(&self, d: Duration) {
        bump(&self.buffered_us, d.as_micros() as u64);
        bump(&self.buffered_n, 1);
        metrics::histogram!("kpl_buffered_time_seconds").record(d.as_secs_f64());
    }

    pub fn snapshot(&self, outstanding: u64) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let n = get(&self.buffered_n);
        metrics::gauge!("kpl_outstanding_records").set(outstanding as f64);
        let (throttles, rates) = self.throttles.snapshot();
        MetricsSnapshot {
            user_records_put: get(&self.put),
            user_records_succeeded: get(&self.succeeded),
            user_records_failed: get(&self.failed),
            user_records_expired: get(&self.expired),
            kinesis_records_sent: get(&self.kinesis_records),
            bytes_sent: get(&self.bytes),
            requests: get(&self.requests),
            retries: get(&self.retries),
            throttles_by_shard: throttles,
            rate_permille_by_shard: rates,
            misplaced_records_resent: get(&self.misplaced),
            shard_map_refreshes: get(&self.refreshes),
            mean_buffered_time: Duration::from_micros(
                get(&self.buffered_us).checked_div(n).unwrap_or(0),
            ),
            outstanding_records: outstanding,
        }
    }
}
