//! Records inside the producer, one shard's queue, and the building of Kinesis records
//! (aggregates or raw records) from the front of a queue.

use crate::error::PutError;
use crate::limiter::Limiter;
use crate::record::{Attempt, RecordOutcome};
use backon::ExponentialBackoff;
use bytes::Bytes;
use shared_proto::{Aggregator, HashKeyRange};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::time::Instant;

pub(crate) use crate::config::AGGREGATE_PARTITION_KEY;

pub(crate) type Reply = oneshot::Sender<Result<RecordOutcome, PutError>>;

/// The room a record holds in the producer's outstanding limits; given back with its outcome.
#[derive(Debug)]
pub(crate) struct Permits {
    _records: Option<OwnedSemaphorePermit>,
    _bytes: Option<OwnedSemaphorePermit>,
}

impl Permits {
    pub fn new(records: OwnedSemaphorePermit, bytes: OwnedSemaphorePermit) -> Self {
        Permits {
            _records: Some(records),
            _bytes: Some(bytes),
        }
    }

    /// No permits (unit tests of the core).
    #[cfg(test)]
    pub fn none() -> Self {
        Permits {
            _records: None,
            _bytes: None,
        }
    }
}

/// A user record inside the producer.
#[derive(Debug)]
pub(crate) struct Pending {
    /// Assigned by the core on arrival, from 1, in arrival order.
    pub id: u64,
    pub pk: String,
    pub ehk: Option<String>,
    pub hash: u128,
    pub data: Bytes,
    pub reply: Reply,
    pub enqueued: Instant,
    pub deadline: Instant,
    /// When the record last became ready to send (enqueued, or its last attempt failed).
    pub last_event: Instant,
    pub attempt_started: Instant,
    pub attempts: Vec<Attempt>,
    pub permits: Permits,
}

impl Pending {
    /// A record as a sending task hands it to the core (times and id are set on arrival).
    pub fn new(
        pk: String,
        ehk: Option<String>,
        hash: u128,
        data: Bytes,
        reply: Reply,
        permits: Permits,
    ) -> Self {
        let now = Instant::now();
        Pending {
            id: 0,
            pk,
            ehk,
            hash,
            data,
            reply,
            enqueued: now,
            deadline: now,
            last_event: now,
            attempt_started: now,
            attempts: Vec::new(),
            permits,
        }
    }

    pub fn size(&self) -> usize {
        self.pk.len() + self.data.len()
    }

    pub fn failed_attempt(&mut self, finished: Instant, code: &str, message: &str) {
        self.attempts.push(Attempt {
            delay: self
                .attempt_started
                .saturating_duration_since(self.last_event),
            duration: finished.saturating_duration_since(self.attempt_started),
            error_code: Some(code.to_owned()),
            error_message: Some(message.to_owned()),
        });
        self.last_event = finished;
    }

    pub fn succeeded_attempt(&mut self, finished: Instant) {
        self.attempts.push(Attempt {
            delay: self
                .attempt_started
                .saturating_duration_since(self.last_event),
            duration: finished.saturating_duration_since(self.attempt_started),
            error_code: None,
            error_message: None,
        });
    }
}

/// One Kinesis record as it goes on the wire.
#[derive(Debug, Clone)]
pub(crate) struct WireEntry {
    pub pk: String,
    pub ehk: Option<String>,
    pub data: Bytes,
}

impl WireEntry {
    pub fn size(&self) -> usize {
        self.pk.len() + self.data.len()
    }
}

/// The user records behind one Kinesis record of a request in flight.
#[derive(Debug)]
pub(crate) struct Carried {
    pub shard: usize,
    pub records: Vec<Pending>,
    pub aggregated: bool,
}

/// Limits for building Kinesis records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchLimits {
    pub aggregate: bool,
    pub max_size: usize,
    pub max_count: usize,
}

/// One open shard's state.
#[derive(Debug)]
pub(crate) struct ShardState {
    pub id: Arc<str>,
    pub range: HashKeyRange,
    pub queue: VecDeque<Pending>,
    pub queued_bytes: usize,
    pub in_flight: usize,
    pub not_before: Instant,
    pub limited_until: Instant,
    pub backoff: Option<ExponentialBackoff>,
    pub limiter: Limiter,
}

impl ShardState {
    pub fn new(id: Arc<str>, range: HashKeyRange, limiter: Limiter, now: Instant) -> Self {
        ShardState {
            id,
            range,
            queue: VecDeque::new(),
            queued_bytes: 0,
            in_flight: 0,
            not_before: now,
            limited_until: now,
            backoff: None,
            limiter,
        }
    }

    pub fn push(&mut self, p: Pending, front: bool) {
        self.queued_bytes += p.size();
        if front {
            self.queue.push_front(p);
        } else {
            self.queue.push_back(p);
        }
    }

    fn pop(&mut self) -> Option<Pending> {
        let p = self.queue.pop_front()?;
        self.queued_bytes -= p.size();
        Some(p)
    }

    /// Puts records taken by [`ShardState::next_entry`] back at the front, in order.
    pub fn unpop(&mut self, records: Vec<Pending>) {
        for p in records.into_iter().rev() {
            self.push(p, true);
        }
    }

    /// Builds the next Kinesis record from the front of the queue: an aggregate of the
    /// records that fit (a single record goes raw, under its own key), or a raw record when
    /// aggregation is off. With `keys` (per-key ordering), a record whose partition key is in
    /// `keys` (an earlier Kinesis record of this request) is not taken: the request would
    /// otherwise hold two Kinesis records of one key, which can fail independently.
    /// Records outside the shard's range (left over from an older map) go to `misrouted`.
    pub fn next_entry(
        &mut self,
        limits: BatchLimits,
        keys: Option<&HashSet<String>>,
        misrouted: &mut Vec<Pending>,
    ) -> Option<(WireEntry, Vec<Pending>, bool)> {
        let blocked = |pk: &str| keys.is_some_and(|k| !k.is_empty() && k.contains(pk));
        if !limits.aggregate {
            let front = self.queue.front()?;
            if blocked(&front.pk) {
                return None;
            }
            let p = self.pop()?;
            let wire = WireEntry {
                pk: p.pk.clone(),
                ehk: p.ehk.clone(),
                data: p.data.clone(),
            };
            return Some((wire, vec![p], false));
        }
        let mut agg = Aggregator::new();
        let mut records: Vec<Pending> = Vec::new();
        while let Some(front) = self.queue.front() {
            if !self.range.contains(front.hash) {
                if let Some(p) = self.pop() {
                    misrouted.push(p);
                }
                continue;
            }
            if blocked(&front.pk) {
                break;
            }
            let next_len = agg.encoded_len_with(&front.pk, front.ehk.as_deref(), front.data.len());
            if !records.is_empty()
                && (next_len > limits.max_size || records.len() >= limits.max_count)
            {
                break;
            }
            let Some(p) = self.pop() else { break };
            agg.add_unchecked(&p.pk, p.ehk.as_deref(), &p.data);
            records.push(p);
            if next_len > limits.max_size || records.len() >= limits.max_count {
                break; // a record larger than an aggregate goes on its own
            }
        }
        match records.len() {
            0 => None,
            1 => {
                let p = &records[0];
                let wire = WireEntry {
                    pk: p.pk.clone(),
                    ehk: p.ehk.clone(),
                    data: p.data.clone(),
                };
                Some((wire, records, false))
            }
            _ => {
                let wire = WireEntry {
                    pk: AGGREGATE_PARTITION_KEY.to_owned(),
                    ehk: Some(records[0].hash.to_string()),
                    data: agg.finish(),
                };
                Some((wire, records, true))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn pending(pk: &str, size: usize) -> Pending {
        let (tx, _rx) = oneshot::channel();
        Pending::new(
            pk.to_owned(),
            None,
            shared_proto::partition_key_hash(pk),
            Bytes::from(vec![b'x'; size]),
            tx,
            Permits::none(),
        )
    }

    fn shard() -> ShardState {
        let now = Instant::now();
        ShardState::new(
            "shardId-000000000000".into(),
            HashKeyRange::split_evenly(1)[0],
            Limiter::new(150, now),
            now,
        )
    }

    const AGG: BatchLimits = BatchLimits {
        aggregate: true,
        max_size: 51_200,
        max_count: usize::MAX,
    };

    #[test]
    fn small_records_aggregate_and_a_single_one_goes_raw() {
        let mut s = shard();
        for i in 0..10 {
            s.push(pending(&format!("k{i}"), 100), false);
        }
        let mut mis = Vec::new();
        let (wire, recs, aggregated) = s.next_entry(AGG, None, &mut mis).expect("entry");
        assert!(aggregated);
        assert_eq!(recs.len(), 10);
        assert_eq!(wire.pk, AGGREGATE_PARTITION_KEY);
        assert_eq!(
            shared_proto::deaggregate(&wire.data)
                .expect("aggregate")
                .len(),
            10
        );
        s.push(pending("solo", 100), false);
        let (wire, recs, aggregated) = s.next_entry(AGG, None, &mut mis).expect("entry");
        assert!(!aggregated);
        assert_eq!((wire.pk.as_str(), recs.len()), ("solo", 1));
        assert_eq!(s.queued_bytes, 0);
    }

    #[test]
    fn large_records_go_raw_and_keys_block_a_second_entry() {
        let mut s = shard();
        for _ in 0..3 {
            s.push(pending("same", 30_000), false);
        }
        let mut mis = Vec::new();
        let mut keys = HashSet::new();
        let (wire, recs, aggregated) = s.next_entry(AGG, Some(&keys), &mut mis).expect("entry");
        assert!(!aggregated, "30 KB is more than half an aggregate");
        assert_eq!(recs.len(), 1);
        keys.insert(wire.pk);
        assert!(
            s.next_entry(AGG, Some(&keys), &mut mis).is_none(),
            "a second Kinesis record of the same key is not taken"
        );
        assert_eq!(s.queue.len(), 2);
    }

    #[test]
    fn an_aggregate_stops_before_a_key_already_in_the_request() {
        let mut s = shard();
        s.push(pending("a1", 10), false);
        s.push(pending("a2", 10), false);
        s.push(pending("taken", 10), false);
        s.push(pending("a3", 10), false);
        let keys: HashSet<String> = ["taken".to_owned()].into();
        let mut mis = Vec::new();
        let (_, recs, aggregated) = s.next_entry(AGG, Some(&keys), &mut mis).expect("entry");
        assert!(aggregated);
        assert_eq!(recs.len(), 2);
        assert_eq!(s.queue.front().map(|p| p.pk.as_str()), Some("taken"));
    }

    #[test]
    fn max_count_one_sends_every_record_raw() {
        let mut s = shard();
        s.push(pending("k", 10), false);
        s.push(pending("k", 10), false);
        let limits = BatchLimits {
            max_count: 1,
            ..AGG
        };
        let mut mis = Vec::new();
        let (_, recs, aggregated) = s.next_entry(limits, None, &mut mis).expect("entry");
        assert!(!aggregated);
        assert_eq!(recs.len(), 1);
    }
}
