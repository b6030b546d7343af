//! User records as processors see them, and how Kinesis records become user records:
//! deaggregation, the hash-range check per sub-record, and skipping what a checkpoint covers.
//! No I/O.

use crate::lease::{Checkpoint, ExtendedCheckpoint, compare_sequence};
use bytes::Bytes;
use shared_proto::{HashKeyRange, deaggregate, is_aggregate};
use std::cmp::Ordering;
use std::time::SystemTime;

/// One user record: a plain Kinesis record, or one sub-record of a KPL aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The payload.
    pub data: Bytes,
    /// The partition key (the sub-record's own, for an aggregate).
    pub partition_key: String,
    /// The explicit hash key, if the producer gave one.
    pub explicit_hash_key: Option<String>,
    /// The Kinesis sequence number (shared by the sub-records of one aggregate).
    pub sequence_number: String,
    /// The position inside the aggregate (0 for a plain record).
    pub sub_sequence_number: u64,
    /// When Kinesis received the record.
    pub approximate_arrival_timestamp: Option<SystemTime>,
    /// Whether it came out of a KPL aggregate.
    pub aggregated: bool,
}

impl Record {
    /// The (sequence, sub-sequence) position of the record.
    pub fn position(&self) -> ExtendedCheckpoint {
        ExtendedCheckpoint {
            checkpoint: Checkpoint::Sequence(self.sequence_number.clone()),
            sub_sequence: self.sub_sequence_number,
        }
    }
}

/// Orders two positions: by sequence number (numerically), then sub-sequence number.
pub(crate) fn compare_position(a: (&str, u64), b: (&str, u64)) -> Ordering {
    compare_sequence(a.0, b.0).then(a.1.cmp(&b.1))
}

/// A Kinesis record as fetched.
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    pub data: Bytes,
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub sequence_number: String,
    pub arrival: Option<SystemTime>,
}

/// What deaggregation dropped or passed through.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unpacked {
    /// Sub-records whose hash key lies outside the shard's range (dropped one by one).
    pub out_of_range: u64,
    /// Records that looked like an aggregate but were not one (delivered as plain).
    pub invalid_aggregates: u64,
    /// Records at or below the checkpoint (skipped).
    pub skipped: u64,
}

/// Turns fetched Kinesis records into user records: aggregates are split (sub-records outside
/// `range` dropped alone), a record that is not a valid aggregate is delivered as a plain
/// record, and records at or below `after` (a checkpoint) are skipped.
pub(crate) fn unpack(
    fetched: Vec<Fetched>,
    range: Option<&HashKeyRange>,
    after: Option<(&str, u64)>,
    stats: &mut Unpacked,
) -> Vec<Record> {
    let mut out = Vec::with_capacity(fetched.len());
    let covered = |seq: &str, sub: u64| {
        after.is_some_and(|a| compare_position((seq, sub), a) != Ordering::Greater)
    };
    for f in fetched {
        let plain = |f: Fetched| Record {
            data: f.data,
            partition_key: f.partition_key,
            explicit_hash_key: f.explicit_hash_key,
            sequence_number: f.sequence_number,
            sub_sequence_number: 0,
            approximate_arrival_timestamp: f.arrival,
            aggregated: false,
        };
        if !is_aggregate(&f.data) {
            if covered(&f.sequence_number, 0) {
                stats.skipped += 1;
            } else {
                out.push(plain(f));
            }
            continue;
        }
        match deaggregate(&f.data) {
            Ok(subs) => {
                for sub in subs {
                    if covered(&f.sequence_number, sub.sub_sequence_number) {
                        stats.skipped += 1;
                        continue;
                    }
                    let in_range = match (range, sub.hash_key()) {
                        (Some(r), Ok(h)) => r.contains(h),
                        (None, _) => true,
                        (Some(_), Err(_)) => false,
                    };
                    if !in_range {
                        stats.out_of_range += 1;
                        tracing::debug!(
                            sequence = %f.sequence_number,
                            sub = sub.sub_sequence_number,
                            "sub-record outside the shard's hash key range dropped"
                        );
                        continue;
                    }
                    out.push(Record {
                        data: sub.data,
                        partition_key: sub.partition_key,
                        explicit_hash_key: sub.explicit_hash_key,
                        sequence_number: f.sequence_number.clone(),
                        sub_sequence_number: sub.sub_sequence_number,
                        approximate_arrival_timestamp: f.arrival,
                        aggregated: true,
                    });
                }
            }
            Err(why) => {
                stats.invalid_aggregates += 1;
                tracing::debug!(sequence = %f.sequence_number, %why, "not a valid aggregate: delivered as a plain record");
                if covered(&f.sequence_number, 0) {
                    stats.skipped += 1;
                } else {
                    out.push(plain(f));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared_proto::{Aggregator, partition_key_hash};

    fn fetched(seq: &str, data: Bytes) -> Fetched {
        Fetched {
            data,
            partition_key: "outer".into(),
            explicit_hash_key: None,
            sequence_number: seq.into(),
            arrival: None,
        }
    }

    fn aggregate(keys: &[&str]) -> Bytes {
        let mut agg = Aggregator::new();
        for k in keys {
            agg.add(k, None, format!("data-{k}").as_bytes())
                .expect("add");
        }
        agg.finish()
    }

    #[test]
    fn aggregates_are_split_and_numbered() {
        let mut stats = Unpacked::default();
        let out = unpack(
            vec![
                fetched("10", aggregate(&["a", "b", "c"])),
                fetched("20", Bytes::from_static(b"plain")),
            ],
            None,
            None,
            &mut stats,
        );
        let got: Vec<(String, u64, bool)> = out
            .iter()
            .map(|r| {
                (
                    r.sequence_number.clone(),
                    r.sub_sequence_number,
                    r.aggregated,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("10".into(), 0, true),
                ("10".into(), 1, true),
                ("10".into(), 2, true),
                ("20".into(), 0, false)
            ]
        );
        assert_eq!(out[1].partition_key, "b");
        assert_eq!(out[1].data.as_ref(), b"data-b");
    }

    #[test]
    fn a_sub_record_outside_the_range_is_dropped_alone() {
        let keys = ["a", "b", "c", "d", "e", "f"];
        let full = HashKeyRange::split_evenly(1)[0];
        let half = HashKeyRange::split_evenly(2)[0];
        let inside = keys
            .iter()
            .filter(|k| half.contains(partition_key_hash(k)))
            .count();
        assert!(
            inside > 0 && inside < keys.len(),
            "the keys straddle the halves"
        );
        let mut stats = Unpacked::default();
        let out = unpack(
            vec![fetched("1", aggregate(&keys))],
            Some(&half),
            None,
            &mut stats,
        );
        assert_eq!(out.len(), inside);
        assert_eq!(stats.out_of_range as usize, keys.len() - inside);
        let out = unpack(
            vec![fetched("1", aggregate(&keys))],
            Some(&full),
            None,
            &mut stats,
        );
        assert_eq!(out.len(), keys.len());
    }

    #[test]
    fn a_corrupt_aggregate_is_a_plain_record() {
        let mut bad = aggregate(&["a", "b"]).to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let mut stats = Unpacked::default();
        let out = unpack(
            vec![fetched("5", Bytes::from(bad.clone()))],
            None,
            None,
            &mut stats,
        );
        assert_eq!(out.len(), 1);
        assert!(!out[0].aggregated);
        assert_eq!(out[0].data.as_ref(), &bad[..]);
        assert_eq!(stats.invalid_aggregates, 1);
    }

    #[test]
    fn records_covered_by_the_checkpoint_are_skipped_down_to_the_sub_record() {
        let mut stats = Unpacked::default();
        let out = unpack(
            vec![
                fetched("10", aggregate(&["a", "b", "c"])),
                fetched("11", Bytes::from_static(b"x")),
            ],
            None,
            Some(("10", 1)),
            &mut stats,
        );
        let got: Vec<(String, u64)> = out
            .iter()
            .map(|r| (r.sequence_number.clone(), r.sub_sequence_number))
            .collect();
        assert_eq!(got, [("10".into(), 2), ("11".into(), 0)]);
        assert_eq!(stats.skipped, 2);
    }
}
