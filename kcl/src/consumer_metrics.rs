//! Counters of record processing, published through the `metrics` facade and as a snapshot.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The counters behind [`ProcessingSnapshot`].
#[derive(Debug, Default)]
pub(crate) struct ProcessingCounters {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub batches: AtomicU64,
    pub retries: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub skipped: AtomicU64,
    pub out_of_range: AtomicU64,
    pub invalid_aggregates: AtomicU64,
    pub checkpoints: AtomicU64,
    pub shard_end_checkpoints_by_scheduler: AtomicU64,
    pub read_throttles: AtomicU64,
    pub expired_iterators: AtomicU64,
    pub read_errors: AtomicU64,
    pub processing_us_total: AtomicU64,
    pub processing_us_max: AtomicU64,
    pub behind: Mutex<BTreeMap<String, i64>>,
}

impl ProcessingCounters {
    pub(crate) fn add(&self, cell: &AtomicU64, name: &'static str, n: u64) {
        cell.fetch_add(n, Ordering::Relaxed);
        metrics::counter!(name).increment(n);
    }

    pub(crate) fn processed(&self, records: u64, bytes: u64, took: Duration) {
        self.add(&self.records, "kcl_records_processed", records);
        self.add(&self.bytes, "kcl_bytes_processed", bytes);
        self.add(&self.batches, "kcl_batches_processed", 1);
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        self.processing_us_total.fetch_add(us, Ordering::Relaxed);
        self.processing_us_max.fetch_max(us, Ordering::Relaxed);
        metrics::histogram!("kcl_batch_processing_seconds").record(took.as_secs_f64());
    }

    pub(crate) fn read_throttle(&self) {
        self.add(&self.read_throttles, "kcl_read_throttles", 1);
    }

    pub(crate) fn expired_iterator(&self) {
        self.add(&self.expired_iterators, "kcl_expired_iterators", 1);
    }

    pub(crate) fn read_error(&self) {
        self.add(&self.read_errors, "kcl_read_errors", 1);
    }

    pub(crate) fn behind(&self, shard: &str, millis: Option<i64>) {
        if let Some(ms) = millis {
            self.behind.lock().insert(shard.to_owned(), ms);
            metrics::gauge!("kcl_millis_behind_latest", "shard" => shard.to_owned()).set(ms as f64);
        }
    }

    pub(crate) fn snapshot(&self) -> ProcessingSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let batches = get(&self.batches);
        ProcessingSnapshot {
            records_processed: get(&self.records),
            bytes_processed: get(&self.bytes),
            batches_processed: batches,
            retries: get(&self.retries),
            dead_lettered: get(&self.dead_lettered),
            skipped: get(&self.skipped),
            out_of_range_sub_records: get(&self.out_of_range),
            invalid_aggregates: get(&self.invalid_aggregates),
            checkpoints: get(&self.checkpoints),
            shard_end_checkpoints_by_scheduler: get(&self.shard_end_checkpoints_by_scheduler),
            read_throttles: get(&self.read_throttles),
            expired_iterators: get(&self.expired_iterators),
            read_errors: get(&self.read_errors),
            mean_batch_processing: Duration::from_micros(
                get(&self.processing_us_total)
                    .checked_div(batches)
                    .unwrap_or(0),
            ),
            max_batch_processing: Duration::from_micros(get(&self.processing_us_max)),
            millis_behind_latest: self.behind.lock().clone(),
        }
    }
}

/// What the shard consumers of a scheduler have done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessingSnapshot {
    /// User records processed successfully.
    pub records_processed: u64,
    /// Their bytes.
    pub bytes_processed: u64,
    /// Successful `process_records` calls.
    pub batches_processed: u64,
    /// Failed `process_records` calls that were retried.
    pub retries: u64,
    /// Records handed to the dead-letter handler.
    pub dead_lettered: u64,
    /// Records skipped by the `Skip` policy.
    pub skipped: u64,
    /// Sub-records dropped because their hash key is outside their shard's range.
    pub out_of_range_sub_records: u64,
    /// Records that looked like aggregates but were not (delivered as plain records).
    pub invalid_aggregates: u64,
    /// Checkpoints stored by the scheduler or through a checkpointer.
    pub checkpoints: u64,
    /// `SHARD_END` checkpoints the scheduler stored because the processor did not.
    pub shard_end_checkpoints_by_scheduler: u64,
    /// `GetRecords` calls throttled (retried after a backoff).
    pub read_throttles: u64,
    /// Iterators that expired (reading restarted after the last record fetched).
    pub expired_iterators: u64,
    /// Other failed reads (retried).
    pub read_errors: u64,
    /// Mean time of a successful `process_records`.
    pub mean_batch_processing: Duration,
    /// Slowest successful `process_records`.
    pub max_batch_processing: Duration,
    /// The last `MillisBehindLatest` per shard.
    pub millis_behind_latest: BTreeMap<String, i64>,
}
