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

/// Most ids the ring spans before its oldest outstanding ids move to the straggler set.
const RING_SPAN: usize = 1 << 18;

/// The ids without an outcome, and the pending flushes, each counting the failures among the
/// ids it covers. Recent ids live in a ring of flags (O(1) per record); an id still without
/// outcome when the ring would span more than `RING_SPAN` ids moves to a small ordered set,
/// so one record retried for a very long time costs one entry, not one per later record.
#[derive(Debug, Default)]
pub(crate) struct Outstanding {
    /// Id of the ring's first slot.
    base: u64,
    /// `true` once the id has its outcome.
    done: VecDeque<bool>,
    /// Outstanding ids older than `base`.
    stragglers: BTreeSet<u64>,
    count: usize,
    last: u64,
    failed_total: u64,
    /// Pending flushes, in id order: (last id covered, failures among ids ≤ it, waiter).
    waiters: VecDeque<(u64, u64, tokio::sync::oneshot::Sender<FlushReport>)>,
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
        while self.done.len() > RING_SPAN {
            if let Some(flag) = self.done.pop_front() {
                if !flag {
                    self.stragglers.insert(self.base);
                }
                self.base += 1;
            }
        }
        self.last
    }

    /// The last id assigned (0 before the first record).
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Records an outcome for `id` (once; later calls are ignored).
    pub fn resolve(&mut self, id: u64, failed: bool) {
        let found = if id < self.base {
            self.stragglers.remove(&id)
        } else {
            match self.done.get_mut((id - self.base) as usize) {
                Some(flag) if !*flag => {
                    *flag = true;
                    true
                }
                _ => false,
            }
        };
        if !found {
            return;
        }
        self.count -= 1;
        while self.done.front() == Some(&true) {
            self.done.pop_front();
            self.base += 1;
        }
        if failed {
            self.failed_total += 1;
            // Waiters are in id order: those covering `id` are a suffix.
            for (upto, count, _) in self.waiters.iter_mut().rev() {
                if *upto < id {
                    break;
                }
                *count += 1;
            }
        }
    }

    /// The oldest id without an outcome, or `u64::MAX`.
    pub fn first(&self) -> u64 {
        match self.stragglers.first() {
            Some(&id) => id,
            None if self.done.is_empty() => u64::MAX,
            None => self.base,
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
        // Every failure so far has an id ≤ upto.
        self.waiters.push_back((upto, self.failed_total, waiter));
        self.answer();
        upto
    }

    /// Answers every flush whose records all have outcomes, and forgets flushes nobody
    /// waits for any more.
    pub fn answer(&mut self) {
        let first = self.first();
        while let Some((upto, _, _)) = self.waiters.front() {
            if first <= *upto {
                break;
            }
            if let Some((upto, failed, tx)) = self.waiters.pop_front() {
                let _ = tx.send(FlushReport {
                    records: upto,
                    failed,
                });
            }
        }
        self.waiters.retain(|(_, _, tx)| !tx.is_closed());
    }

    /// Whether any flush is waiting.
    #[cfg(test)]
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
    fn memory_follows_the_records_without_outcome_not_the_oldest_one() {
        let mut o = Outstanding::default();
        let stuck = o.assign();
        for _ in 0..(RING_SPAN * 3) {
            let id = o.assign();
            o.resolve(id, false);
        }
        assert_eq!(o.first(), stuck);
        assert!(
            o.done.len() <= RING_SPAN,
            "the ring does not grow past its span"
        );
        assert_eq!(o.stragglers.len(), 1, "one entry for one stuck record");
        let (tx, mut rx) = oneshot::channel();
        o.flush(tx);
        o.resolve(stuck, true);
        o.answer();
        assert_eq!(rx.try_recv().expect("answered").failed, 1);
        assert!(o.is_empty());
        assert!(o.stragglers.is_empty());
        assert_eq!(o.first(), u64::MAX);
    }

    #[test]
    fn abandoned_flushes_are_forgotten() {
        let mut o = Outstanding::default();
        let _id = o.assign();
        for _ in 0..100 {
            let (tx, rx) = oneshot::channel();
            o.flush(tx);
            drop(rx);
        }
        o.answer();
        assert!(!o.has_waiters());
    }
}
