//! Counters of the lease layer, published through the `metrics` facade and as a snapshot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The counters behind [`MetricsSnapshot`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    held: AtomicU64,
    taken: AtomicU64,
    received: AtomicU64,
    handed_off: AtomicU64,
    stolen: AtomicU64,
    lost: AtomicU64,
    released: AtomicU64,
    renewals: AtomicU64,
    renewal_latency_us_total: AtomicU64,
    renewal_latency_us_max: AtomicU64,
    dynamodb_errors: AtomicU64,
    throttles: AtomicU64,
    created: AtomicU64,
    deleted: AtomicU64,
    bad_items: AtomicU64,
}

/// A counted event.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Count {
    Taken,
    Received,
    HandedOff,
    Stolen,
    Lost,
    Released,
    DynamoError,
    Throttle,
    Created,
    Deleted,
    BadItem,
}

impl Counters {
    pub(crate) fn add(&self, what: Count) {
        let (cell, name) = match what {
            Count::Taken => (&self.taken, "kcl_leases_taken"),
            Count::Received => (&self.received, "kcl_leases_received"),
            Count::HandedOff => (&self.handed_off, "kcl_leases_handed_off"),
            Count::Stolen => (&self.stolen, "kcl_leases_stolen"),
            Count::Lost => (&self.lost, "kcl_leases_lost"),
            Count::Released => (&self.released, "kcl_leases_released"),
            Count::DynamoError => (&self.dynamodb_errors, "kcl_dynamodb_errors"),
            Count::Throttle => (&self.throttles, "kcl_dynamodb_throttles"),
            Count::Created => (&self.created, "kcl_leases_created"),
            Count::Deleted => (&self.deleted, "kcl_leases_deleted"),
            Count::BadItem => (&self.bad_items, "kcl_bad_lease_items"),
        };
        cell.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(name).increment(1);
    }

    pub(crate) fn set_held(&self, held: usize) {
        self.held.store(held as u64, Ordering::Relaxed);
        metrics::gauge!("kcl_leases_held").set(held as f64);
    }

    pub(crate) fn renewed(&self, latency: Duration) {
        let us = latency.as_micros().min(u64::MAX as u128) as u64;
        self.renewals.fetch_add(1, Ordering::Relaxed);
        self.renewal_latency_us_total
            .fetch_add(us, Ordering::Relaxed);
        self.renewal_latency_us_max.fetch_max(us, Ordering::Relaxed);
        metrics::histogram!("kcl_lease_renewal_seconds").record(latency.as_secs_f64());
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let renewals = get(&self.renewals);
        MetricsSnapshot {
            leases_held: get(&self.held),
            leases_taken: get(&self.taken),
            leases_received: get(&self.received),
            leases_handed_off: get(&self.handed_off),
            leases_stolen: get(&self.stolen),
            leases_lost: get(&self.lost),
            leases_released: get(&self.released),
            renewals,
            renewal_latency_mean: Duration::from_micros(
                get(&self.renewal_latency_us_total)
                    .checked_div(renewals)
                    .unwrap_or(0),
            ),
            renewal_latency_max: Duration::from_micros(get(&self.renewal_latency_us_max)),
            dynamodb_errors: get(&self.dynamodb_errors),
            dynamodb_throttles: get(&self.throttles),
            leases_created: get(&self.created),
            leases_deleted: get(&self.deleted),
            bad_lease_items: get(&self.bad_items),
        }
    }
}

/// What a coordinator has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Leases held now.
    pub leases_held: u64,
    /// Leases taken: unowned, expired, or from an owner that did not hand off in time.
    pub leases_taken: u64,
    /// Leases another worker handed to this one.
    pub leases_received: u64,
    /// Leases this worker handed to another on request.
    pub leases_handed_off: u64,
    /// Of the leases taken, those taken from a live owner that ignored a hand-off request.
    pub leases_stolen: u64,
    /// Leases lost: taken by another worker, or not renewed within the failover time.
    pub leases_lost: u64,
    /// Leases released (owner removed), e.g. at shutdown.
    pub leases_released: u64,
    /// Successful renewals.
    pub renewals: u64,
    /// Mean latency of a successful renewal.
    pub renewal_latency_mean: Duration,
    /// Slowest successful renewal.
    pub renewal_latency_max: Duration,
    /// DynamoDB calls that failed (each attempt).
    pub dynamodb_errors: u64,
    /// Of those, throttled ones.
    pub dynamodb_throttles: u64,
    /// Lease items this worker created.
    pub leases_created: u64,
    /// Finished lease items this worker deleted.
    pub leases_deleted: u64,
    /// Lease items skipped because they were out of shape.
    pub bad_lease_items: u64,
}
