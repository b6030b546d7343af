//! The in-memory Kinesis model: streams, shards, records, resharding, iterators, limits and
//! retention. Independent of HTTP; the [`api`](super::api) module maps JSON onto it.

use super::bucket::Bucket;
use crate::clock::Clock;
use crate::config::{EngineConfig, Limits};
use crate::error::ApiError;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use md5::{Digest, Md5};
use parking_lot::{Mutex, RwLock};
use shared_proto::HashKeyRange;
use shared_proto::limits::{MAX_GET_RECORDS_BYTES, MAX_GET_RECORDS_COUNT, shard_id};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use consumers::{ConsumerInfo, ConsumerStatus, MAX_CONSUMERS_PER_STREAM, SubscriptionRead};

const HOUR_MS: u64 = 3_600_000;

/// Sequence-number units per record position (the 24-digit position field holds
/// `pos * SEQ_STRIDE + offset`).
const SEQ_STRIDE: u128 = 64;

/// The sequence-number field of position `pos`: strictly increasing, with irregular gaps
/// (the offset is in `1..=61`, so consecutive numbers differ by 4 to 124).
fn encode_pos(pos: u64) -> u128 {
    let offset = (pos.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) % 61 + 1;
    u128::from(pos) * SEQ_STRIDE + u128::from(offset)
}

/// Lifecycle state of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStatus {
    /// Being created; not yet readable or writable.
    Creating,
    /// Ready.
    Active,
    /// A reshard is in progress; reads and writes go on.
    Updating,
    /// Being deleted.
    Deleting,
}

impl StreamStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamStatus::Creating => "CREATING",
            StreamStatus::Active => "ACTIVE",
            StreamStatus::Updating => "UPDATING",
            StreamStatus::Deleting => "DELETING",
        }
    }
}

/// Capacity mode of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamMode {
    /// Shards are provisioned explicitly.
    Provisioned,
    /// On-demand capacity (starts with 4 shards here).
    OnDemand,
}

impl StreamMode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamMode::Provisioned => "PROVISIONED",
            StreamMode::OnDemand => "ON_DEMAND",
        }
    }
}

/// A stored record: partition key bytes followed by data, in one buffer.
#[derive(Debug, Clone)]
pub struct Record {
    buf: Bytes,
    pk_len: u16,
    arrival_ms: u64,
}

impl Record {
    /// The partition key.
    pub fn partition_key(&self) -> &str {
        // The buffer was built from a `&str` of `pk_len` bytes (see `PutInput::new`).
        std::str::from_utf8(&self.buf[..self.pk_len as usize]).unwrap_or("")
    }

    /// The data.
    pub fn data(&self) -> Bytes {
        self.buf.slice(self.pk_len as usize..)
    }

    /// Arrival time, epoch milliseconds.
    pub fn arrival_ms(&self) -> u64 {
        self.arrival_ms
    }

    fn size(&self) -> usize {
        self.buf.len()
    }
}

/// A record to put, prepared outside the stream lock.
#[derive(Debug, Clone)]
pub struct PutInput {
    /// Hash key deciding the shard.
    pub hash_key: u128,
    buf: Bytes,
    pk_len: u16,
}

impl PutInput {
    /// Builds a put from a buffer holding the partition key (its first `pk_len` bytes, valid
    /// UTF-8) followed by the data.
    pub fn new(hash_key: u128, buf: Bytes, pk_len: u16) -> Self {
        PutInput {
            hash_key,
            buf,
            pk_len,
        }
    }

    /// Data plus partition key length.
    pub fn size(&self) -> usize {
        self.buf.len()
    }
}

/// Result of one record of a put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// Stored at this position of this shard.
    Stored {
        /// Shard number.
        shard: u64,
        /// Position in the shard (part of the sequence number).
        pos: u64,
    },
    /// Throughput exceeded for the shard.
    Throttled {
        /// Shard number.
        shard: u64,
    },
    /// An injected internal failure.
    Failed {
        /// Shard number.
        shard: u64,
    },
}

/// A shard as listed by `ListShards` / `DescribeStream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    /// Shard id.
    pub shard_id: String,
    /// Parent (split source, or the `ShardToMerge` of a merge).
    pub parent_shard_id: Option<String>,
    /// Second parent of a merge.
    pub adjacent_parent_shard_id: Option<String>,
    /// Hash keys owned.
    pub hash_key_range: HashKeyRange,
    /// First sequence number.
    pub starting_sequence_number: String,
    /// Last sequence number, once closed.
    pub ending_sequence_number: Option<String>,
}

/// A child shard as reported by `GetRecords` at the end of a closed shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildShard {
    /// Child shard id.
    pub shard_id: String,
    /// Its parents (one after a split, two after a merge).
    pub parent_shards: Vec<String>,
    /// Hash keys it owns.
    pub hash_key_range: HashKeyRange,
}

/// Which shards `ListShards` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardFilter {
    /// All shards still within retention (the default).
    All,
    /// Open shards only.
    AtLatest,
    /// Shards open at the trim horizon.
    AtTrimHorizon,
    /// All shards from the trim horizon on (same as [`ShardFilter::All`]).
    FromTrimHorizon,
    /// Shards whose number is above this shard's.
    AfterShardId(u64),
    /// Shards open at this time (epoch ms).
    AtTimestamp(u64),
    /// Shards open at or after this time (epoch ms).
    FromTimestamp(u64),
}

/// Where an iterator starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IteratorStart {
    /// Oldest record within retention.
    TrimHorizon,
    /// After the newest record.
    Latest,
    /// At this sequence number.
    AtSequenceNumber(String),
    /// Right after this sequence number.
    AfterSequenceNumber(String),
    /// At the first record arrived at or after this time (epoch ms).
    AtTimestamp(u64),
}

/// Output of [`StreamHandle::get_records`], before JSON formatting.
#[derive(Debug)]
pub struct GetRecordsOutput {
    /// Shard number read.
    pub shard: u64,
    /// Records with their positions.
    pub records: Vec<(u64, Record)>,
    /// Position to continue from; `None` at the end of a closed shard.
    pub next_pos: Option<u64>,
    /// How far the response is behind the newest record.
    pub millis_behind_latest: u64,
    /// Children, at the end of a closed shard.
    pub child_shards: Option<Vec<ChildShard>>,
}

/// Summary of a stream.
#[derive(Debug, Clone)]
pub struct StreamSummary {
    /// Name.
    pub name: String,
    /// ARN.
    pub arn: String,
    /// Status.
    pub status: StreamStatus,
    /// Capacity mode.
    pub mode: StreamMode,
    /// Creation time, epoch ms.
    pub created_ms: u64,
    /// Retention period, hours.
    pub retention_hours: u32,
    /// Number of open shards.
    pub open_shard_count: usize,
}

#[derive(Debug)]
struct Shard {
    index: u64,
    id: String,
    parent: Option<u64>,
    adjacent_parent: Option<u64>,
    range: HashKeyRange,
    created_ms: u64,
    closed_ms: Option<u64>,
    children: Vec<u64>,
    records: VecDeque<Record>,
    /// Position of `records[0]`.
    trimmed: u64,
    last_arrival_ms: u64,
    expired: bool,
    write_records: Bucket,
    write_bytes: Bucket,
    read_calls: Bucket,
    read_bytes: Bucket,
}

impl Shard {
    fn new(index: u64, range: HashKeyRange, now_ms: u64, limits: &Limits) -> Self {
        Shard {
            index,
            id: shard_id(index),
            parent: None,
            adjacent_parent: None,
            range,
            created_ms: now_ms,
            closed_ms: None,
            children: Vec::new(),
            records: VecDeque::new(),
            trimmed: 0,
            last_arrival_ms: 0,
            expired: false,
            write_records: Bucket::new(limits.shard_write_records_per_sec, now_ms),
            write_bytes: Bucket::new(limits.shard_write_bytes_per_sec, now_ms),
            read_calls: Bucket::new(limits.shard_read_calls_per_sec, now_ms),
            read_bytes: Bucket::new(limits.shard_read_bytes_per_sec, now_ms),
        }
    }

    fn next_pos(&self) -> u64 {
        self.trimmed + self.records.len() as u64
    }

    fn is_open(&self) -> bool {
        self.closed_ms.is_none()
    }

    fn open_at(&self, t: u64) -> bool {
        self.created_ms <= t && self.closed_ms.is_none_or(|c| c > t)
    }
}

#[derive(Debug, Clone)]
enum Pending {
    Create,
    Delete,
    Split { shard: u64, at: u128 },
    Merge { shard: u64, adjacent: u64 },
    Scale { target: u32 },
}

/// Mutable state of a stream, behind the handle's lock.
#[derive(Debug)]
struct StreamState {
    status: StreamStatus,
    pending: Option<(u64, Pending)>,
    mode: StreamMode,
    retention_hours: u32,
    shards: Vec<Shard>,
    /// Open shards' numbers, sorted by the start of their hash-key range.
    open: Vec<u64>,
    tags: BTreeMap<String, String>,
    deleted: bool,
}

impl StreamState {
    /// The children of `shard`, as `ChildShards` shows them.
    fn children_of(&self, shard: u64) -> Vec<ChildShard> {
        let Some(s) = self.shards.get(shard as usize) else {
            return Vec::new();
        };
        s.children
            .iter()
            .filter_map(|&c| self.shards.get(c as usize))
            .map(|c| ChildShard {
                shard_id: c.id.clone(),
                parent_shards: [c.parent, c.adjacent_parent]
                    .into_iter()
                    .flatten()
                    .map(shard_id)
                    .collect(),
                hash_key_range: c.range,
            })
            .collect()
    }
}

/// A stream: immutable identity plus locked state.
#[derive(Debug)]
pub struct StreamHandle {
    name: String,
    arn: String,
    id: u64,
    prefix: u128,
    created_ms: u64,
    state: Mutex<StreamState>,
    config: Arc<EngineConfig>,
    clock: Arc<Clock>,
    secret: [u8; 16],
    /// Registered consumers (enhanced fan-out).
    consumers: Mutex<Vec<consumers::Consumer>>,
    /// Bumped on every append and consumer change: subscriptions wait on it.
    appended: tokio::sync::watch::Sender<u64>,
}

/// All streams of the engine.
#[derive(Debug)]
pub struct KinesisCore {
    config: Arc<EngineConfig>,
    clock: Arc<Clock>,
    streams: RwLock<BTreeMap<String, Arc<StreamHandle>>>,
    next_id: AtomicU64,
    secret: [u8; 16],
    control: crate::kinesis::control::ControlLimits,
}

fn not_found(name: &str, account: &str) -> ApiError {
    ApiError::not_found(format!("Stream {name} under account {account} not found."))
}

mod consumers;
mod iterator;
mod registry;
mod reshard;
mod stream;

use iterator::*;
