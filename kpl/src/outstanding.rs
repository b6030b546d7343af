//! Which records still lack an outcome, and the flush waiters that wait for them.
//!
//! The core numbers records from 1 in the order they arrive, so "every record accepted before
//! this flush" is "every id up to the last one assigned". Ids are assigned by the core, never
//! by a sending task, so a send that is cancelled or refused takes no id and can never hold a
//! flush back.

use std::collections::{BTreeSet, VecDeque};

/// What a flush saw: the records it covered and how many of them failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlushReport {
    /// Records accepted since the producer was built, up to this flush (all have outcomes).
    pub records: u64,
    /// Of those, the records whose outcome is an error.
    pub failed: u64,
}

/// A ring of flags from the oldest id without an outcome: insert, resolve and "oldest" are
/// O(1) amortised.
#[derive(Debug, Default)]
pub(crate) struct Outstanding {
    base: u64,
    done: VecDeque<bool>,
    count: usize,
    last: u64,
    /// Failures with an id up to the lowest pending flush (or every failure if none).
    failed_counted: u64,
    /// Failures above the lowest pending flush.
    failed_above: BTreeSet<u64>,
    failed_total: u64,
    /// Pending flushes: (last id they cover, waiter), in id order.
    waiters: VecDeque<(u64, tokio::sync::oneshot::Sender<FlushReport>)>,
}

impl Outstanding {
    /// Assigns the next id to a new record.
    pub fn assign(&mut self) -> u64 {
        self.last += 1;
        if self.done.is_empty() {
            self.base = self.last;
        }
        self.done.push_back(false);
        self.count += 1;
        self.last
    }

    /// The last id assigned (0 before the first record).
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Records an outcome for `id` (once; later calls are ignored).
    pub fn resolve(&mut self, id: u64, failed: bool) {
        let Some(i) = id.checked_sub(self.base) else {
            return;
        };
        let Some(flag) = self.done.get_mut(i as usize) else {
            return;
        };
        if *flag {
            return;
        }
        *flag = true;
        self.count -= 1;
        if failed {
            self.failed_total += 1;
            match self.waiters.front() {
                Some((upto, _)) if id > *upto => {
                    self.failed_above.insert(id);
                }
                _ => self.failed_counted += 1,
            }
        }
        while self.done.front() == Some(&true) {
            self.done.pop_front();
            self.base += 1;
        }
    }

    /// The oldest id without an outcome, or `u64::MAX`.
    pub fn first(&self) -> u64 {
        if self.done.is_empty() {
            u64::MAX
        } else {
            self.base
        }
    }

    /// Records without an outcome.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Failed records so far.
    pub fn failed_total(&self) -> u64 {
        self.failed_total
    }

    /// Adds a flush covering every id assigned so far; answers it at once if all have
    /// outcomes. Returns the last id it covers.
    pub fn flush(&mut self, waiter: tokio::sync::oneshot::Sender<FlushReport>) -> u64 {
        let upto = self.last;
        self.waiters.push_back((upto, waiter));
        self.answer();
        upto
    }

    /// Answers every flush whose records all have outcomes.
    pub fn answer(&mut self) {
        let first = self.first();
        while let Some((upto, _)) = self.waiters.front() {
            let upto = *upto;
            if first <= upto {
                break;
            }
            let failed = self.failed_counted + self.failed_above.range(..=upto).count() as u64;
            if let Some((_, tx)) = self.waiters.pop_front() {
                let _ = tx.send(FlushReport {
                    records: upto,
                    failed,
                });
            }
            // Failures up to the next waiter's bound (or all) are now below every waiter.
            let bound = self.waiters.front().map_or(u64::MAX, |(u, _)| *u);
            while let Some(&id) = self.failed_above.first() {
                if id > bound {
                    break;
                }
                self.failed_above.pop_first();
                self.failed_counted += 1;
            }
        }
    }

    /// Whether any flush is waiting.
    pub fn has_waiters(&self) -> bool {
        !self.waiters.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    #[test]
    fn flush_waits_for_every_earlier_id_and_counts_failures() {
        let mut o = Outstanding::default();
        let ids: Vec<u64> = (0..5).map(|_| o.assign()).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5]);
        let (tx, mut rx) = oneshot::channel();
        assert_eq!(o.flush(tx), 5);
        let later = o.assign();
        let (tx2, mut rx2) = oneshot::channel();
        o.flush(tx2);
        o.resolve(2, true);
        o.resolve(later, true); // a failure after the first flush's range
        o.resolve(1, false);
        o.resolve(3, false);
        o.resolve(5, false);
        o.answer();
        assert!(rx.try_recv().is_err(), "record 4 still outstanding");
        o.resolve(4, false);
        o.resolve(4, true); // a second outcome is ignored
        o.answer();
        assert_eq!(
            rx.try_recv().expect("answered"),
            FlushReport {
                records: 5,
                failed: 1
            }
        );
        assert_eq!(
            rx2.try_recv().expect("answered"),
            FlushReport {
                records: 6,
                failed: 2
            }
        );
        assert!(o.is_empty());
        assert_eq!(o.first(), u64::MAX);
    }

    #[test]
    fn flush_with_nothing_outstanding_answers_at_once() {
        let mut o = Outstanding::default();
        let (tx, mut rx) = oneshot::channel();
        o.flush(tx);
        assert_eq!(rx.try_recv().expect("answered").records, 0);
        let id = o.assign();
        o.resolve(id, true);
        let (tx, mut rx) = oneshot::channel();
        o.flush(tx);
        assert_eq!(
            rx.try_recv().expect("answered"),
            FlushReport {
                records: 1,
                failed: 1
            }
        );
    }

    #[test]
    fn ring_memory_follows_the_oldest_outstanding_id() {
        let mut o = Outstanding::default();
        for _ in 0..10_000 {
            let id = o.assign();
            o.resolve(id, false);
        }
        assert!(o.done.is_empty());
        let keep = o.assign();
        for _ in 0..100 {
            let id = o.assign();
            o.resolve(id, false);
        }
        assert_eq!(o.first(), keep);
        assert_eq!(o.len(), 1);
        o.resolve(keep, false);
        assert!(o.done.is_empty());
    }
}
