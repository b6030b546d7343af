//! The books of a pipeline run, without I/O: which records the producer had acknowledged,
//! which the consumers saw and in what order, and the verdict.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// What the books say about one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The first delivery of this record, in order for its key.
    InOrder,
    /// Delivered before (at-least-once: a redelivery after a moved lease or a re-sent
    /// aggregate).
    Duplicate,
    /// The first delivery of this record, after a later record of the same key.
    OutOfOrder,
    /// Not a record this run wrote.
    Foreign,
}

#[derive(Debug, Default)]
struct Key {
    /// Per record number: acknowledged by the producer.
    acked: Vec<bool>,
    /// Per record number: delivered to a processor at least once.
    seen: Vec<bool>,
    max_seen: Option<u64>,
}

/// Record numbers per key the books keep; a larger one is not a record of this run.
const MAX_PER_KEY: u64 = 1 << 24;

fn set(v: &mut Vec<bool>, i: usize) -> bool {
    if v.len() <= i {
        v.resize(i + 1, false);
    }
    std::mem::replace(&mut v[i], true)
}

/// Producer acknowledgements and consumer deliveries, per partition key.
#[derive(Debug, Default)]
pub struct Ledger {
    keys: Vec<Key>,
    acked: u64,
    failed: u64,
    deliveries: u64,
    unique: u64,
    unique_acked: u64,
    duplicates: u64,
    out_of_order: u64,
    foreign: u64,
    shard_order_violations: u64,
    per_shard: BTreeMap<String, u64>,
    /// (seconds since the run's start, end-to-end latency in ms) of each first delivery.
    samples: Vec<(f64, f64)>,
}

impl Ledger {
    /// An empty ledger for `keys` partition keys.
    pub fn new(keys: usize) -> Self {
        Ledger {
            keys: (0..keys).map(|_| Key::default()).collect(),
            ..Ledger::default()
        }
    }

    /// The producer acknowledged record `n` of `key`.
    pub fn acked(&mut self, key: u32, n: u64) {
        let Some(k) = self.keys.get_mut(key as usize).filter(|_| n < MAX_PER_KEY) else {
            return;
        };
        if !set(&mut k.acked, n as usize) {
            self.acked += 1;
            if k.seen.get(n as usize).copied().unwrap_or(false) {
                self.unique_acked += 1;
            }
        }
    }

    /// A processor saw its shard's records out of sequence order.
    pub fn shard_order_violation(&mut self) {
        self.shard_order_violations += 1;
    }

    /// The producer gave up on record `n` of `key` (it may still have landed).
    pub fn failed(&mut self, _key: u32, _n: u64) {
        self.failed += 1;
    }

    /// A processor of `shard` received record `n` of `key`, `at` seconds into the run and
    /// `latency` after it was sent.
    pub fn seen(&mut self, shard: &str, key: u32, n: u64, at: f64, latency: Duration) -> Seen {
        self.deliveries += 1;
        let Some(k) = self.keys.get_mut(key as usize).filter(|_| n < MAX_PER_KEY) else {
            self.foreign += 1;
            return Seen::Foreign;
        };
        if set(&mut k.seen, n as usize) {
            self.duplicates += 1;
            return Seen::Duplicate;
        }
        self.unique += 1;
        if k.acked.get(n as usize).copied().unwrap_or(false) {
            self.unique_acked += 1;
        }
        *self.per_shard.entry(shard.to_owned()).or_default() += 1;
        self.samples.push((at, latency.as_secs_f64() * 1000.0));
        let in_order = k.max_seen.is_none_or(|m| n > m);
        k.max_seen = Some(k.max_seen.map_or(n, |m| m.max(n)));
        if in_order {
            Seen::InOrder
        } else {
            self.out_of_order += 1;
            Seen::OutOfOrder
        }
    }

    /// The number of partition keys.
    pub fn keys(&self) -> u32 {
        self.keys.len() as u32
    }

    /// Whether every acknowledged record was delivered.
    pub fn complete(&self) -> bool {
        self.unique_acked >= self.acked
    }

    /// Records delivered at least once.
    pub fn unique(&self) -> u64 {
        self.unique
    }

    /// Records the producer acknowledged.
    pub fn acked_count(&self) -> u64 {
        self.acked
    }

    /// Redeliveries so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// First deliveries after a later record of their key.
    pub fn out_of_order(&self) -> u64 {
        self.out_of_order
    }

    /// (seconds into the run, latency ms) of each first delivery, in delivery order.
    pub fn samples(&self) -> &[(f64, f64)] {
        &self.samples
    }

    /// The verdict.
    pub fn summary(&self) -> Summary {
        let mut lat: Vec<f64> = self.samples.iter().map(|s| s.1).collect();
        lat.sort_by(f64::total_cmp);
        let pct = |p: f64| -> f64 {
            if lat.is_empty() {
                return 0.0;
            }
            let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
            lat[i]
        };
        Summary {
            produced: self.acked,
            failed: self.failed,
            consumed: self.unique,
            deliveries: self.deliveries,
            duplicates: self.duplicates,
            out_of_order: self.out_of_order,
            lost: self.acked.saturating_sub(self.unique_acked),
            foreign: self.foreign,
            shard_order_violations: self.shard_order_violations,
            per_shard: self.per_shard.clone(),
            latency_p50_ms: pct(0.50),
            latency_p99_ms: pct(0.99),
            latency_max_ms: lat.last().copied().unwrap_or(0.0),
        }
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Records the producer acknowledged.
    pub produced: u64,
    /// Records the producer gave up on.
    pub failed: u64,
    /// Distinct records delivered.
    pub consumed: u64,
    /// Deliveries, counting redeliveries.
    pub deliveries: u64,
    /// Redeliveries.
    pub duplicates: u64,
    /// First deliveries after a later record of their key (must be 0).
    pub out_of_order: u64,
    /// Acknowledged records never delivered (must be 0).
    pub lost: u64,
    /// Deliveries of records this run did not write.
    pub foreign: u64,
    /// Batches whose records were not in increasing (sequence, sub-sequence) order, or came
    /// before the previous batch's (must be 0).
    pub shard_order_violations: u64,
    /// Shard → distinct records first delivered from it.
    pub per_shard: BTreeMap<String, u64>,
    /// End-to-end latency of first deliveries.
    pub latency_p50_ms: f64,
    /// See `latency_p50_ms`.
    pub latency_p99_ms: f64,
    /// See `latency_p50_ms`.
    pub latency_max_ms: f64,
}

impl Summary {
    /// Nothing lost or given up, nothing out of order, nothing foreign.
    pub fn ok(&self) -> bool {
        self.lost == 0
            && self.failed == 0
            && self.out_of_order == 0
            && self.shard_order_violations == 0
            && self.foreign == 0
    }

    /// The summary as a text table.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let mut row = |k: &str, v: String| {
            let _ = writeln!(t, "  {k:<28} {v:>12}");
        };
        row("records produced", self.produced.to_string());
        row("records consumed", self.consumed.to_string());
        row("duplicates", self.duplicates.to_string());
        row("order violations", self.out_of_order.to_string());
        row("lost", self.lost.to_string());
        if self.failed > 0 {
            row("given up by the producer", self.failed.to_string());
        }
        if self.foreign > 0 {
            row("foreign records", self.foreign.to_string());
        }
        if self.shard_order_violations > 0 {
            row(
                "shard order violations",
                self.shard_order_violations.to_string(),
            );
        }
        row("latency p50", format!("{:.0} ms", self.latency_p50_ms));
        row("latency p99", format!("{:.0} ms", self.latency_p99_ms));
        row("latency max", format!("{:.0} ms", self.latency_max_ms));
        for (shard, n) in &self.per_shard {
            row(&format!("  from {shard}"), n.to_string());
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn order_duplicates_and_losses_are_told_apart() {
        let mut l = Ledger::new(2);
        for n in 0..4 {
            l.acked(0, n);
        }
        assert_eq!(l.seen("s", 0, 0, 0.0, MS), Seen::InOrder);
        assert_eq!(l.seen("s", 0, 2, 0.0, MS), Seen::InOrder);
        assert_eq!(l.seen("s", 0, 0, 0.0, MS), Seen::Duplicate);
        assert_eq!(l.seen("s", 0, 1, 0.0, MS), Seen::OutOfOrder);
        assert_eq!(l.seen("s", 9, 0, 0.0, MS), Seen::Foreign);
        assert_eq!(l.seen("s", 0, u64::MAX, 0.0, MS), Seen::Foreign);
        assert!(!l.complete());
        let s = l.summary();
        assert_eq!((s.produced, s.consumed, s.lost), (4, 3, 1));
        assert_eq!((s.duplicates, s.out_of_order, s.foreign), (1, 1, 2));
        assert!(!s.ok());
    }

    #[test]
    fn a_record_seen_before_its_acknowledgement_counts() {
        let mut l = Ledger::new(1);
        l.seen("s", 0, 0, 0.0, 5 * MS);
        l.acked(0, 0);
        assert!(l.complete());
        let s = l.summary();
        assert!(s.ok(), "{s:?}");
        assert_eq!(s.latency_p99_ms, 5.0);
        assert!(s.table().contains("order violations"));
    }
}
