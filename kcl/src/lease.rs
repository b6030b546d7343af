//! What a lease is: its key, its checkpoint, and the state the lease table holds for it.

use aws_sdk_dynamodb::types::AttributeValue;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;

/// The key of a lease: a shard id, or `account:stream:creationEpoch:shardId` for a worker that
/// consumes several streams (the Java KCL's multi-stream form).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseKey(String);

impl LeaseKey {
    /// The key of a shard of the one stream a worker consumes.
    pub fn shard(shard_id: impl Into<String>) -> Self {
        LeaseKey(shard_id.into())
    }

    /// The key of a shard of one of several streams: `account:stream:creationEpoch:shardId`.
    pub fn multi_stream(account: &str, stream: &str, creation_epoch: u64, shard_id: &str) -> Self {
        LeaseKey(format!("{account}:{stream}:{creation_epoch}:{shard_id}"))
    }

    /// Reads a key as stored in the `leaseKey` attribute.
    pub fn from_stored(key: impl Into<String>) -> Self {
        LeaseKey(key.into())
    }

    /// The key as stored in the `leaseKey` attribute.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shard id (the part after the last `:`).
    pub fn shard_id(&self) -> &str {
        self.0.rsplit(':').next().unwrap_or(&self.0)
    }

    /// The stream identifier (`account:stream:creationEpoch`) of a multi-stream key.
    pub fn stream_identifier(&self) -> Option<&str> {
        self.0.rfind(':').map(|i| &self.0[..i])
    }

    /// The key of another shard of the same stream (a parent or a child).
    pub fn sibling(&self, shard_id: &str) -> LeaseKey {
        match self.stream_identifier() {
            Some(stream) => LeaseKey(format!("{stream}:{shard_id}")),
            None => LeaseKey(shard_id.to_owned()),
        }
    }
}

impl fmt::Display for LeaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where processing of a shard stands: a sequence number, or one of the sentinels the Java
/// KCL stores in the `checkpoint` attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Checkpoint {
    /// Not started; begin at the oldest record.
    TrimHorizon,
    /// Not started; begin after the newest record.
    Latest,
    /// Not started; begin at the configured timestamp.
    AtTimestamp,
    /// The shard was read to its end and processed.
    ShardEnd,
    /// Processed up to and including this sequence number (decimal digits).
    Sequence(String),
}

impl Checkpoint {
    /// The stored form.
    pub fn as_str(&self) -> &str {
        match self {
            Checkpoint::TrimHorizon => "TRIM_HORIZON",
            Checkpoint::Latest => "LATEST",
            Checkpoint::AtTimestamp => "AT_TIMESTAMP",
            Checkpoint::ShardEnd => "SHARD_END",
            Checkpoint::Sequence(s) => s,
        }
    }

    /// Reads the stored form; `None` for text that is neither a sentinel nor digits.
    pub fn parse(text: &str) -> Option<Checkpoint> {
        Some(match text {
            "TRIM_HORIZON" => Checkpoint::TrimHorizon,
            "LATEST" => Checkpoint::Latest,
            "AT_TIMESTAMP" => Checkpoint::AtTimestamp,
            "SHARD_END" => Checkpoint::ShardEnd,
            s if !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_digit()) => {
                Checkpoint::Sequence(s.to_owned())
            }
            _ => return None,
        })
    }

    /// Whether processing has moved past the start (a sequence number or the end).
    pub fn is_started(&self) -> bool {
        matches!(self, Checkpoint::Sequence(_) | Checkpoint::ShardEnd)
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compares two decimal sequence numbers numerically (length, then text), never as integers:
/// they can be wider than `u128`.
pub fn compare_sequence(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// A checkpoint with the sub-sequence number inside an aggregated record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendedCheckpoint {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The sub-sequence number (0 for a plain record or a sentinel).
    pub sub_sequence: u64,
}

impl ExtendedCheckpoint {
    /// A checkpoint with sub-sequence 0.
    pub fn new(checkpoint: Checkpoint) -> Self {
        ExtendedCheckpoint {
            checkpoint,
            sub_sequence: 0,
        }
    }
}

/// One lease as the lease table holds it. Attribute names and types are those of the Java
/// KCL 2.x (see the crate docs); attributes this crate does not know are kept in `other`
/// and never removed by its writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// `leaseKey` (S).
    pub key: LeaseKey,
    /// `leaseOwner` (S): the worker holding the lease, if any.
    pub owner: Option<String>,
    /// `leaseCounter` (N): moves on every renew, take, checkpoint and release.
    pub counter: u64,
    /// `checkpoint` (S) and `checkpointSubSequenceNumber` (N).
    pub checkpoint: ExtendedCheckpoint,
    /// `pendingCheckpoint` (S) and `pendingCheckpointSubSequenceNumber` (N), if a two-phase
    /// checkpoint is prepared.
    pub pending_checkpoint: Option<ExtendedCheckpoint>,
    /// `ownerSwitchesSinceCheckpoint` (N).
    pub owner_switches_since_checkpoint: u64,
    /// `parentShardId` (SS): one parent after a split, two after a merge.
    pub parent_shard_ids: Vec<String>,
    /// `childShardIds` (SS), once the shard has ended.
    pub child_shard_ids: Vec<String>,
    /// `startingHashKey` and `endingHashKey` (S), decimal.
    pub hash_range: Option<(String, String)>,
    /// `handoffTo` (S): a worker asking for this lease (our cooperative hand-off; the Java KCL
    /// ignores it).
    pub handoff_to: Option<String>,
    /// Every other attribute of the item, as it was read.
    pub other: HashMap<String, AttributeValue>,
}

impl Lease {
    /// A new, unowned lease for a shard, starting at `checkpoint`.
    pub fn new(key: LeaseKey, checkpoint: Checkpoint) -> Self {
        Lease {
            key,
            owner: None,
            counter: 0,
            checkpoint: ExtendedCheckpoint::new(checkpoint),
            pending_checkpoint: None,
            owner_switches_since_checkpoint: 0,
            parent_shard_ids: Vec::new(),
            child_shard_ids: Vec::new(),
            hash_range: None,
            handoff_to: None,
            other: HashMap::new(),
        }
    }

    /// Whether the shard was processed to its end.
    pub fn is_finished(&self) -> bool {
        self.checkpoint.checkpoint == Checkpoint::ShardEnd
    }

    /// The keys of the parent leases.
    pub fn parent_keys(&self) -> Vec<LeaseKey> {
        self.parent_shard_ids
            .iter()
            .map(|p| self.key.sibling(p))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_an_optional_stream() {
        let k = LeaseKey::shard("shardId-000000000001");
        assert_eq!(k.shard_id(), "shardId-000000000001");
        assert_eq!(k.stream_identifier(), None);
        let m =
            LeaseKey::multi_stream("123456789012", "orders", 1700000000, "shardId-000000000002");
        assert_eq!(
            m.as_str(),
            "123456789012:orders:1700000000:shardId-000000000002"
        );
        assert_eq!(m.shard_id(), "shardId-000000000002");
        assert_eq!(
            m.stream_identifier(),
            Some("123456789012:orders:1700000000")
        );
        assert_eq!(
            m.sibling("shardId-000000000009").as_str(),
            "123456789012:orders:1700000000:shardId-000000000009"
        );
    }

    #[test]
    fn checkpoints_round_trip_and_reject_garbage() {
        for c in [
            "TRIM_HORIZON",
            "LATEST",
            "AT_TIMESTAMP",
            "SHARD_END",
            "4959",
        ] {
            assert_eq!(Checkpoint::parse(c).map(|c| c.to_string()), Some(c.into()));
        }
        assert_eq!(Checkpoint::parse(""), None);
        assert_eq!(Checkpoint::parse("12a"), None);
        assert_eq!(Checkpoint::parse("shard_end"), None);
    }

    #[test]
    fn sequence_numbers_compare_numerically() {
        assert_eq!(compare_sequence("9", "10"), Ordering::Less);
        assert_eq!(
            compare_sequence(&"9".repeat(56), &"1".repeat(55)),
            Ordering::Greater
        );
        assert_eq!(compare_sequence("007", "7"), Ordering::Equal);
    }
}
