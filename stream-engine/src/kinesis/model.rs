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
}

/// All streams of the engine.
#[derive(Debug)]
pub struct KinesisCore {
    config: Arc<EngineConfig>,
    clock: Arc<Clock>,
    streams: RwLock<BTreeMap<String, Arc<StreamHandle>>>,
    next_id: AtomicU64,
    secret: [u8; 16],
    control: super::control::ControlLimits,
}

fn not_found(name: &str, account: &str) -> ApiError {
    ApiError::not_found(format!("Stream {name} under account {account} not found."))
}

impl KinesisCore {
    /// An engine core with no streams.
    pub fn new(config: Arc<EngineConfig>, clock: Arc<Clock>) -> Self {
        KinesisCore {
            config,
            clock,
            streams: RwLock::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            secret: rand::random(),
            control: super::control::ControlLimits::default(),
        }
    }

    /// Records an accepted `UpdateShardCount` for the rolling-day limit.
    pub(crate) fn scaled(&self, stream: &str) {
        if self.config.limits.enabled {
            self.control.scaled(stream, self.clock.now_ms());
        }
    }

    /// Counts one control-plane call against its documented rate.
    pub(crate) fn control(&self, call: super::control::Control<'_>) -> Result<(), ApiError> {
        self.control
            .check(&self.config.limits, call, self.clock.now_ms())
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The ARN of a stream name.
    pub fn arn_of(&self, name: &str) -> String {
        format!(
            "arn:aws:kinesis:{}:{}:stream/{name}",
            self.config.region, self.config.account_id
        )
    }

    /// The stream name in an ARN of this engine's region and account.
    pub fn name_from_arn(&self, arn: &str) -> Result<String, ApiError> {
        let prefix = format!(
            "arn:aws:kinesis:{}:{}:stream/",
            self.config.region, self.config.account_id
        );
        match arn.strip_prefix(&prefix) {
            Some(name) if !name.is_empty() => Ok(name.to_owned()),
            _ => Err(ApiError::invalid_argument(format!(
                "StreamARN {arn} is not a stream ARN of region {} and account {}",
                self.config.region, self.config.account_id
            ))),
        }
    }

    /// Creates a stream with `shard_count` shards (4 for on-demand when not given).
    pub fn create_stream(
        &self,
        name: &str,
        shard_count: Option<u32>,
        mode: StreamMode,
    ) -> Result<(), ApiError> {
        let count = match (mode, shard_count) {
            (_, Some(n)) => n,
            (StreamMode::OnDemand, None) => 4,
            (StreamMode::Provisioned, None) => {
                return Err(ApiError::invalid_argument(
                    "ShardCount is required for a PROVISIONED stream",
                ));
            }
        };
        if count == 0 {
            return Err(ApiError::validation(
                "1 validation error detected: Value '0' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1",
            ));
        }
        if count as usize > self.config.max_shards_per_stream {
            return Err(ApiError::limit_exceeded(format!(
                "This request would exceed the shard limit for the account {}. Requested {count}, limit {}.",
                self.config.account_id, self.config.max_shards_per_stream
            )));
        }
        let now = self.clock.now_ms();
        let mut streams = self.streams.write();
        if let Some(existing) = streams.get(name)
            && !existing.refresh_is_deleted()
        {
            return Err(ApiError::in_use(format!(
                "Stream {name} under account {} already exists.",
                self.config.account_id
            )));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let shards: Vec<Shard> = HashKeyRange::split_evenly(count)
            .into_iter()
            .enumerate()
            .map(|(i, range)| Shard::new(i as u64, range, now, &self.config.limits))
            .collect();
        let open = (0..shards.len() as u64).collect();
        let mut state = StreamState {
            status: StreamStatus::Creating,
            pending: Some((
                now + self.config.stream_delay.as_millis() as u64,
                Pending::Create,
            )),
            mode,
            retention_hours: shared_proto::limits::DEFAULT_RETENTION_HOURS,
            shards,
            open,
            tags: BTreeMap::new(),
            deleted: false,
        };
        state.refresh(now, &self.config);
        let handle = StreamHandle {
            name: name.to_owned(),
            arn: self.arn_of(name),
            id,
            // 20 digits: 49 then the stream's id, so sequence numbers have 56 digits.
            prefix: 49_000_000_000_000_000_000u128 + u128::from(id),
            created_ms: now,
            state: Mutex::new(state),
            config: self.config.clone(),
            clock: self.clock.clone(),
            secret: self.secret,
        };
        streams.insert(name.to_owned(), Arc::new(handle));
        Ok(())
    }

    /// Looks a stream up (applying any due status transition).
    pub fn stream(&self, name: &str) -> Result<Arc<StreamHandle>, ApiError> {
        let handle = self
            .streams
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| not_found(name, &self.config.account_id))?;
        if handle.refresh_is_deleted() {
            let mut streams = self.streams.write();
            if streams.get(name).is_some_and(|h| Arc::ptr_eq(h, &handle)) {
                streams.remove(name);
            }
            return Err(not_found(name, &self.config.account_id));
        }
        Ok(handle)
    }

    /// Starts deleting a stream.
    pub fn delete_stream(&self, name: &str) -> Result<(), ApiError> {
        let handle = self.stream(name)?;
        let now = self.clock.now_ms();
        let deleted = {
            let mut state = handle.state.lock();
            state.status = StreamStatus::Deleting;
            state.pending = Some((
                now + self.config.stream_delay.as_millis() as u64,
                Pending::Delete,
            ));
            state.refresh(now, &self.config);
            state.deleted
        };
        if deleted {
            let mut streams = self.streams.write();
            if streams.get(name).is_some_and(|h| Arc::ptr_eq(h, &handle)) {
                streams.remove(name);
            }
        }
        Ok(())
    }

    /// Every stream, in name order.
    pub fn list_streams(&self) -> Vec<StreamSummary> {
        let handles: Vec<_> = self.streams.read().values().cloned().collect();
        handles
            .into_iter()
            .filter(|h| !h.refresh_is_deleted())
            .map(|h| h.summary())
            .collect()
    }

    /// Finds the stream of an iterator and checks the iterator.
    pub fn resolve_iterator(
        &self,
        iterator: &str,
    ) -> Result<(Arc<StreamHandle>, u64, u64), ApiError> {
        let parsed = ParsedIterator::decode(iterator, &self.secret)?;
        let handle = self.stream(&parsed.stream_name)?;
        if handle.id != parsed.stream_id {
            return Err(ApiError::invalid_argument(
                "Invalid ShardIterator: it belongs to a stream that no longer exists.",
            ));
        }
        let now = self.clock.now_ms();
        let ttl = self.config.iterator_ttl.as_millis() as u64;
        if now.saturating_sub(parsed.issued_ms) > ttl {
            return Err(ApiError::expired_iterator(format!(
                "Iterator expired. The iterator was created at time {} while right now it is {} which is further in the future than the tolerated delay of {ttl} milliseconds.",
                parsed.issued_ms, now
            )));
        }
        Ok((handle, parsed.shard, parsed.pos))
    }

    /// Removes records and closed shards older than each stream's retention period.
    pub fn enforce_retention(&self) {
        let now = self.clock.now_ms();
        let handles: Vec<_> = self.streams.read().values().cloned().collect();
        for handle in handles {
            handle.state.lock().enforce_retention(now);
        }
    }
}

struct ParsedIterator {
    stream_name: String,
    stream_id: u64,
    shard: u64,
    pos: u64,
    issued_ms: u64,
}

fn mac(secret: &[u8; 16], text: &str) -> String {
    let mut h = Md5::new();
    h.update(secret);
    h.update(text.as_bytes());
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl ParsedIterator {
    fn encode(&self, secret: &[u8; 16]) -> String {
        let body = format!(
            "{}|{}|{}|{}|{}",
            self.stream_id, self.shard, self.pos, self.issued_ms, self.stream_name
        );
        let mac = mac(secret, &body);
        URL_SAFE_NO_PAD.encode(format!("{mac}|{body}"))
    }

    fn decode(text: &str, secret: &[u8; 16]) -> Result<Self, ApiError> {
        let bad = || {
            ApiError::invalid_argument(format!(
                "Invalid ShardIterator: {}",
                text.chars().take(64).collect::<String>()
            ))
        };
        let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let (given_mac, body) = raw.split_once('|').ok_or_else(bad)?;
        if mac(secret, body) != given_mac {
            return Err(bad());
        }
        let mut parts = body.splitn(5, '|');
        let mut num = || -> Result<u64, ApiError> {
            parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)
        };
        let stream_id = num()?;
        let shard = num()?;
        let pos = num()?;
        let issued_ms = num()?;
        let stream_name = parts.next().ok_or_else(bad)?.to_owned();
        Ok(ParsedIterator {
            stream_name,
            stream_id,
            shard,
            pos,
            issued_ms,
        })
    }
}

impl StreamHandle {
    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stream's ARN.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// Creation time, epoch ms.
    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }

    fn refresh_is_deleted(&self) -> bool {
        let mut state = self.state.lock();
        state.refresh(self.clock.now_ms(), &self.config);
        state.deleted
    }

    /// The 56-digit sequence number of position `pos` of shard `shard`. Like AWS's, they are
    /// not dense: consecutive records differ by an irregular step of at least 2, so client
    /// code can never assume `seq + 1`.
    pub fn sequence_number(&self, shard: u64, pos: u64) -> String {
        format!("{:020}{shard:012}{:024}", self.prefix, encode_pos(pos))
    }

    /// The position of the first record at (`after`: after) sequence number `text`.
    fn position_of(&self, text: &str, shard: u64, after: bool) -> Result<u64, ApiError> {
        let n = self.parse_sequence_number(text, shard)?;
        let p = u64::try_from(n / SEQ_STRIDE).unwrap_or(u64::MAX);
        let here = encode_pos(p);
        Ok(if here > n || (here == n && !after) {
            p
        } else {
            p.saturating_add(1)
        })
    }

    fn parse_sequence_number(&self, text: &str, shard: u64) -> Result<u128, ApiError> {
        let invalid = || {
            ApiError::invalid_argument(format!(
                "StartingSequenceNumber {text} used in GetShardIterator on shard {} in stream {} under account {} is invalid because it did not come from this stream.",
                shard_id(shard),
                self.name,
                self.config.account_id
            ))
        };
        if text.len() != 56 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let prefix: u128 = text[..20].parse().map_err(|_| invalid())?;
        let in_shard: u64 = text[20..32].parse().map_err(|_| invalid())?;
        let pos: u128 = text[32..].parse().map_err(|_| invalid())?;
        if prefix != self.prefix || in_shard != shard {
            return Err(invalid());
        }
        Ok(pos)
    }

    /// A shard iterator for `pos` of `shard`, issued now.
    pub fn iterator(&self, shard: u64, pos: u64) -> String {
        ParsedIterator {
            stream_name: self.name.clone(),
            stream_id: self.id,
            shard,
            pos,
            issued_ms: self.clock.now_ms(),
        }
        .encode(&self.secret)
    }

    /// Summary (status, mode, retention, open shards).
    pub fn summary(&self) -> StreamSummary {
        let state = self.state.lock();
        StreamSummary {
            name: self.name.clone(),
            arn: self.arn.clone(),
            status: state.status,
            mode: state.mode,
            created_ms: self.created_ms,
            retention_hours: state.retention_hours,
            open_shard_count: state.open.len(),
        }
    }

    fn require_readable(&self, state: &StreamState) -> Result<(), ApiError> {
        match state.status {
            StreamStatus::Active | StreamStatus::Updating => Ok(()),
            _ => Err(not_found(&self.name, &self.config.account_id)),
        }
    }

    fn require_active_for_update(&self, state: &StreamState) -> Result<(), ApiError> {
        if state.status != StreamStatus::Active {
            return Err(ApiError::in_use(format!(
                "Stream {} under account {} not ACTIVE, instead in state {}",
                self.name,
                self.config.account_id,
                state.status.as_str()
            )));
        }
        Ok(())
    }

    fn shard_not_found(&self, shard: &str) -> ApiError {
        ApiError::not_found(format!(
            "Shard {shard} in stream {} under account {} does not exist",
            self.name, self.config.account_id
        ))
    }

    fn throttle_message(&self, shard: u64) -> String {
        format!(
            "Rate exceeded for shard {} in stream {} under account {}.",
            shard_id(shard),
            self.name,
            self.config.account_id
        )
    }

    /// The shard number of a shard id of this stream (visible shards only).
    pub fn shard_index(&self, id: &str) -> Result<u64, ApiError> {
        let state = self.state.lock();
        shared_proto::limits::parse_shard_id(id)
            .filter(|&i| state.shards.get(i as usize).is_some_and(|s| !s.expired))
            .ok_or_else(|| self.shard_not_found(id))
    }

    /// Puts records. `faults` lists shards whose records fail with the given outcome
    /// (`true`: throttled, `false`: internal failure). Returns one outcome per input.
    pub fn put(
        &self,
        inputs: Vec<PutInput>,
        faults: &[(u64, bool)],
    ) -> Result<Vec<PutOutcome>, ApiError> {
        let now = self.clock.now_ms();
        let mut state = self.state.lock();
        state.refresh(now, &self.config);
        self.require_readable(&state)?;
        let limits = &self.config.limits;
        let mut out = Vec::with_capacity(inputs.len());
        for input in inputs {
            let Some(index) = state.route(input.hash_key) else {
                return Err(ApiError::internal("no open shard owns the hash key"));
            };
            if let Some(&(_, throttle)) = faults.iter().find(|(s, _)| *s == index) {
                out.push(if throttle {
                    PutOutcome::Throttled { shard: index }
                } else {
                    PutOutcome::Failed { shard: index }
                });
                continue;
            }
            let shard = &mut state.shards[index as usize];
            if limits.enabled {
                let size = input.size() as u64;
                if !shard.write_records.try_take(1, now) {
                    out.push(PutOutcome::Throttled { shard: index });
                    continue;
                }
                if !shard.write_bytes.try_take(size, now) {
                    // The record was not written: give its record token back.
                    shard.write_records.refund(1);
                    out.push(PutOutcome::Throttled { shard: index });
                    continue;
                }
            }
            let arrival_ms = now.max(shard.last_arrival_ms);
            shard.last_arrival_ms = arrival_ms;
            let pos = shard.next_pos();
            shard.records.push_back(Record {
                buf: input.buf,
                pk_len: input.pk_len,
                arrival_ms,
            });
            out.push(PutOutcome::Stored { shard: index, pos });
        }
        Ok(out)
    }

    /// The message for a throttled put of this shard.
    pub fn put_throttled_message(&self, shard: u64) -> String {
        self.throttle_message(shard)
    }

    /// The position an iterator of this kind starts at.
    pub fn iterator_position(
        &self,
        shard_id_text: &str,
        start: &IteratorStart,
    ) -> Result<(u64, u64), ApiError> {
        let index = self.shard_index(shard_id_text)?;
        let mut state = self.state.lock();
        self.require_readable(&state)?;
        state.trim_shard(index as usize, self.clock.now_ms());
        let shard = &state.shards[index as usize];
        let pos = match start {
            IteratorStart::TrimHorizon => shard.trimmed,
            IteratorStart::Latest => shard.next_pos(),
            IteratorStart::AtSequenceNumber(seq) => self.position_of(seq, index, false)?,
            IteratorStart::AfterSequenceNumber(seq) => self.position_of(seq, index, true)?,
            IteratorStart::AtTimestamp(ts) => {
                shard.trimmed + shard.records.partition_point(|r| r.arrival_ms < *ts) as u64
            }
        };
        let pos = pos.clamp(shard.trimmed, shard.next_pos());
        Ok((index, pos))
    }

    /// Reads up to `limit` records of `shard` from `pos`, applying the read limits.
    pub fn get_records(
        &self,
        shard: u64,
        pos: u64,
        limit: usize,
    ) -> Result<GetRecordsOutput, ApiError> {
        let now = self.clock.now_ms();
        let mut state = self.state.lock();
        state.refresh(now, &self.config);
        self.require_readable(&state)?;
        // Retention holds on read too, not only at the next sweep.
        state.trim_shard(shard as usize, now);
        let limits_on = self.config.limits.enabled;
        let (records, next_pos, millis_behind, end_reached, children) = {
            let Some(s) = state.shards.get_mut(shard as usize).filter(|s| !s.expired) else {
                return Err(self.shard_not_found(&shard_id(shard)));
            };
            if limits_on {
                if !s.read_calls.try_take(1, now) {
                    return Err(ApiError::throughput_exceeded(format!(
                        "Rate exceeded for shard {} in stream {} under account {}: more than {} GetRecords calls per second.",
                        s.id,
                        self.name,
                        self.config.account_id,
                        self.config.limits.shard_read_calls_per_sec
                    )));
                }
                if !s.read_bytes.has_tokens(now) {
                    return Err(ApiError::throughput_exceeded(format!(
                        "Rate exceeded for shard {} in stream {} under account {}: more than {} bytes read per second.",
                        s.id,
                        self.name,
                        self.config.account_id,
                        self.config.limits.shard_read_bytes_per_sec
                    )));
                }
            }
            let start = pos.max(s.trimmed);
            let skip = (start - s.trimmed) as usize;
            let limit = limit.min(MAX_GET_RECORDS_COUNT);
            let mut bytes = 0usize;
            let mut records = Vec::new();
            for (i, r) in s.records.iter().enumerate().skip(skip) {
                if records.len() >= limit
                    || (bytes + r.size() > MAX_GET_RECORDS_BYTES && !records.is_empty())
                {
                    break;
                }
                bytes += r.size();
                records.push((s.trimmed + i as u64, r.clone()));
            }
            if limits_on {
                s.read_bytes.take_debt(bytes as u64, now);
            }
            let next_pos = start + records.len() as u64;
            let millis_behind = s
                .records
                .get((next_pos - s.trimmed) as usize)
                .map_or(0, |r| now.saturating_sub(r.arrival_ms));
            let end_reached = !s.is_open() && next_pos >= s.next_pos();
            (
                records,
                next_pos,
                millis_behind,
                end_reached,
                s.children.clone(),
            )
        };
        let child_shards = end_reached.then(|| {
            children
                .iter()
                .filter_map(|&c| state.shards.get(c as usize))
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
        });
        Ok(GetRecordsOutput {
            shard,
            records,
            next_pos: (!end_reached).then_some(next_pos),
            millis_behind_latest: millis_behind,
            child_shards,
        })
    }

    /// Shards matching `filter`, in shard-number order.
    pub fn list_shards(&self, filter: &ShardFilter) -> Result<Vec<ShardInfo>, ApiError> {
        let now = self.clock.now_ms();
        let mut state = self.state.lock();
        state.refresh(now, &self.config);
        let horizon = now
            .saturating_sub(u64::from(state.retention_hours) * HOUR_MS)
            .max(self.created_ms);
        let infos = state
            .shards
            .iter()
            .filter(|s| !s.expired)
            .filter(|s| match filter {
                ShardFilter::All | ShardFilter::FromTrimHorizon => true,
                ShardFilter::AtLatest => s.is_open(),
                ShardFilter::AtTrimHorizon => s.open_at(horizon),
                ShardFilter::AfterShardId(after) => s.index > *after,
                ShardFilter::AtTimestamp(t) => s.open_at((*t).max(self.created_ms)),
                ShardFilter::FromTimestamp(t) => s.closed_ms.is_none_or(|c| c >= *t),
            })
            .map(|s| self.shard_info(s))
            .collect();
        Ok(infos)
    }

    fn shard_info(&self, s: &Shard) -> ShardInfo {
        ShardInfo {
            shard_id: s.id.clone(),
            parent_shard_id: s.parent.map(shard_id),
            adjacent_parent_shard_id: s.adjacent_parent.map(shard_id),
            hash_key_range: s.range,
            starting_sequence_number: self.sequence_number(s.index, 0),
            ending_sequence_number: (!s.is_open())
                .then(|| self.sequence_number(s.index, s.next_pos())),
        }
    }

    /// Current status (after applying due transitions).
    pub fn status(&self) -> StreamStatus {
        let mut state = self.state.lock();
        state.refresh(self.clock.now_ms(), &self.config);
        state.status
    }

    fn start_update(&self, state: &mut StreamState, op: Pending) {
        let now = self.clock.now_ms();
        state.status = StreamStatus::Updating;
        state.pending = Some((now + self.config.stream_delay.as_millis() as u64, op));
        state.refresh(now, &self.config);
    }

    /// The shard limit counts open shards only, as AWS's does.
    fn check_shard_room(&self, state: &StreamState, extra: usize) -> Result<(), ApiError> {
        if state.open.len() + extra > self.config.max_shards_per_stream {
            return Err(ApiError::limit_exceeded(format!(
                "Stream {} would exceed its limit of {} shards.",
                self.name, self.config.max_shards_per_stream
            )));
        }
        Ok(())
    }

    fn open_shard(&self, state: &StreamState, id: &str) -> Result<u64, ApiError> {
        let index = shared_proto::limits::parse_shard_id(id)
            .filter(|&i| state.shards.get(i as usize).is_some_and(|s| !s.expired))
            .ok_or_else(|| self.shard_not_found(id))?;
        if !state.shards[index as usize].is_open() {
            return Err(ApiError::invalid_argument(format!(
                "Shard {id} in stream {} under account {} has already been merged or split, and thus is not eligible for merging or splitting.",
                self.name, self.config.account_id
            )));
        }
        Ok(index)
    }

    /// `SplitShard`.
    pub fn split_shard(&self, shard: &str, new_starting_hash_key: &str) -> Result<(), ApiError> {
        let mut state = self.state.lock();
        state.refresh(self.clock.now_ms(), &self.config);
        self.require_active_for_update(&state)?;
        let index = self.open_shard(&state, shard)?;
        let at = shared_proto::parse_hash_key(new_starting_hash_key).map_err(|e| {
            ApiError::invalid_argument(format!(
                "NewStartingHashKey {new_starting_hash_key} is invalid: {e}"
            ))
        })?;
        let range = state.shards[index as usize].range;
        if at <= range.start() || at > range.end() {
            return Err(ApiError::invalid_argument(format!(
                "NewStartingHashKey {at} used in SplitShard() on shard {shard} in stream {} under account {} is not both greater than one plus the shard's StartingHashKey {} and less than the shard's EndingHashKey {}.",
                self.name,
                self.config.account_id,
                range.start(),
                range.end()
            )));
        }
        self.check_shard_room(&state, 1)?;
        self.start_update(&mut state, Pending::Split { shard: index, at });
        Ok(())
    }

    /// `MergeShards`.
    pub fn merge_shards(&self, shard: &str, adjacent: &str) -> Result<(), ApiError> {
        let mut state = self.state.lock();
        state.refresh(self.clock.now_ms(), &self.config);
        self.require_active_for_update(&state)?;
        let a = self.open_shard(&state, shard)?;
        let b = self.open_shard(&state, adjacent)?;
        let (ra, rb) = (
            state.shards[a as usize].range,
            state.shards[b as usize].range,
        );
        if a == b || !(ra.is_adjacent_before(&rb) || rb.is_adjacent_before(&ra)) {
            return Err(ApiError::invalid_argument(format!(
                "Shards {shard} and {adjacent} in stream {} under account {} are not an adjacent pair of shards eligible for merging",
                self.name, self.config.account_id
            )));
        }
        self.check_shard_room(&state, 0)?;
        self.start_update(
            &mut state,
            Pending::Merge {
                shard: a,
                adjacent: b,
            },
        );
        Ok(())
    }

    /// `UpdateShardCount` with uniform scaling.
    pub fn update_shard_count(&self, target: u32) -> Result<u32, ApiError> {
        let mut state = self.state.lock();
        state.refresh(self.clock.now_ms(), &self.config);
        self.require_active_for_update(&state)?;
        if state.mode == StreamMode::OnDemand {
            return Err(ApiError::validation(format!(
                "UpdateShardCount is not supported for stream {} under account {}: it is in ON_DEMAND mode.",
                self.name, self.config.account_id
            )));
        }
        let current = state.open.len() as u32;
        if target == 0 || target > current.saturating_mul(2) || target < current.div_ceil(2) {
            return Err(ApiError::limit_exceeded(format!(
                "UpdateShardCount on stream {} under account {}: target {target} must be between half and double the current {current} open shards.",
                self.name, self.config.account_id
            )));
        }
        self.check_shard_room(&state, target.saturating_sub(current) as usize)?;
        if target != current {
            self.start_update(&mut state, Pending::Scale { target });
        }
        Ok(current)
    }

    /// Sets the retention period (`increase`: must not shrink; else must not grow).
    pub fn set_retention(&self, hours: u32, increase: bool) -> Result<(), ApiError> {
        use shared_proto::limits::{MAX_RETENTION_HOURS, MIN_RETENTION_HOURS};
        let mut state = self.state.lock();
        state.refresh(self.clock.now_ms(), &self.config);
        self.require_active_for_update(&state)?;
        if !(MIN_RETENTION_HOURS..=MAX_RETENTION_HOURS).contains(&hours) {
            return Err(ApiError::invalid_argument(format!(
                "Retention period {hours} hours is outside {MIN_RETENTION_HOURS}..={MAX_RETENTION_HOURS} hours."
            )));
        }
        if increase && hours < state.retention_hours {
            return Err(ApiError::invalid_argument(format!(
                "Requested retention period ({hours} hours) for stream {} can not be shorter than existing retention period ({} hours). Use DecreaseRetentionPeriod API.",
                self.name, state.retention_hours
            )));
        }
        if !increase && hours > state.retention_hours {
            return Err(ApiError::invalid_argument(format!(
                "Requested retention period ({hours} hours) for stream {} can not be longer than existing retention period ({} hours). Use IncreaseRetentionPeriod API.",
                self.name, state.retention_hours
            )));
        }
        state.retention_hours = hours;
        Ok(())
    }

    /// Adds or replaces tags (at most 50 per stream).
    pub fn add_tags(&self, tags: BTreeMap<String, String>) -> Result<(), ApiError> {
        let mut state = self.state.lock();
        let mut merged = state.tags.clone();
        merged.extend(tags);
        if merged.len() > 50 {
            return Err(ApiError::limit_exceeded(format!(
                "Stream {} would have {} tags; at most 50 are allowed.",
                self.name,
                merged.len()
            )));
        }
        state.tags = merged;
        Ok(())
    }

    /// Removes tags.
    pub fn remove_tags(&self, keys: &[String]) {
        let mut state = self.state.lock();
        for k in keys {
            state.tags.remove(k);
        }
    }

    /// All tags, by key.
    pub fn tags(&self) -> BTreeMap<String, String> {
        self.state.lock().tags.clone()
    }

    /// Stored records and stored payload bytes (data + partition keys) over all shards.
    pub fn stored(&self) -> (usize, usize) {
        let state = self.state.lock();
        state.shards.iter().fold((0, 0), |(n, b), s| {
            (
                n + s.records.len(),
                b + s.records.iter().map(Record::size).sum::<usize>(),
            )
        })
    }
}

impl StreamState {
    /// Applies a due transition.
    fn refresh(&mut self, now: u64, config: &EngineConfig) {
        let Some((ready_at, _)) = &self.pending else {
            return;
        };
        if now < *ready_at {
            return;
        }
        let Some((at_ms, op)) = self.pending.take() else {
            return;
        };
        // The change happens at its scheduled time, whenever the next request observes it:
        // closed parents end and children begin at `at_ms`.
        let now = at_ms.min(now);
        match op {
            Pending::Create => self.status = StreamStatus::Active,
            Pending::Delete => self.deleted = true,
            Pending::Split { shard, at } => {
                self.split(shard, at, now, &config.limits);
                self.status = StreamStatus::Active;
            }
            Pending::Merge { shard, adjacent } => {
                self.merge(shard, adjacent, now, &config.limits);
                self.status = StreamStatus::Active;
            }
            Pending::Scale { target } => {
                self.scale(target, now, &config.limits);
                self.status = StreamStatus::Active;
            }
        }
    }

    fn route(&self, hash_key: u128) -> Option<u64> {
        let i = self
            .open
            .partition_point(|&s| self.shards[s as usize].range.start() <= hash_key);
        let candidate = *self.open.get(i.checked_sub(1)?)?;
        self.shards[candidate as usize]
            .range
            .contains(hash_key)
            .then_some(candidate)
    }

    fn rebuild_open(&mut self) {
        let mut open: Vec<u64> = self
            .shards
            .iter()
            .filter(|s| s.is_open())
            .map(|s| s.index)
            .collect();
        open.sort_by_key(|&i| self.shards[i as usize].range.start());
        self.open = open;
    }

    fn add_child(
        &mut self,
        range: HashKeyRange,
        parent: u64,
        adjacent: Option<u64>,
        now: u64,
        limits: &Limits,
    ) -> u64 {
        let index = self.shards.len() as u64;
        let mut child = Shard::new(index, range, now, limits);
        child.parent = Some(parent);
        child.adjacent_parent = adjacent;
        self.shards.push(child);
        index
    }

    fn close(&mut self, index: u64, children: &[u64], now: u64) {
        let s = &mut self.shards[index as usize];
        s.closed_ms = Some(now);
        s.children.extend_from_slice(children);
    }

    fn split(&mut self, index: u64, at: u128, now: u64, limits: &Limits) {
        let range = self.shards[index as usize].range;
        // `at` was checked to lie in (start, end], so both halves are non-empty.
        let (Ok(low), Ok(high)) = (
            HashKeyRange::new(range.start(), at - 1),
            HashKeyRange::new(at, range.end()),
        ) else {
            return;
        };
        let a = self.add_child(low, index, None, now, limits);
        let b = self.add_child(high, index, None, now, limits);
        self.close(index, &[a, b], now);
        self.rebuild_open();
    }

    fn merge(&mut self, shard: u64, adjacent: u64, now: u64, limits: &Limits) -> u64 {
        let (ra, rb) = (
            self.shards[shard as usize].range,
            self.shards[adjacent as usize].range,
        );
        let range =
            HashKeyRange::new(ra.start().min(rb.start()), ra.end().max(rb.end())).unwrap_or(ra);
        let child = self.add_child(range, shard, Some(adjacent), now, limits);
        self.close(shard, &[child], now);
        self.close(adjacent, &[child], now);
        self.rebuild_open();
        child
    }

    /// Uniform scaling through splits and merges, so every shard keeps at most two parents.
    fn scale(&mut self, target: u32, now: u64, limits: &Limits) {
        let targets = HashKeyRange::split_evenly(target);
        // Split every open shard at each target boundary strictly inside it.
        loop {
            let cut = self.open.iter().find_map(|&s| {
                let r = self.shards[s as usize].range;
                targets
                    .iter()
                    .map(|t| t.start())
                    .find(|&b| b > r.start() && b <= r.end())
                    .map(|b| (s, b))
            });
            match cut {
                Some((s, b)) => self.split(s, b, now, limits),
                None => break,
            }
        }
        // Merge neighbours that lie in the same target range.
        for t in &targets {
            loop {
                let inside: Vec<u64> = self
                    .open
                    .iter()
                    .copied()
                    .filter(|&s| {
                        let r = self.shards[s as usize].range;
                        t.contains(r.start()) && t.contains(r.end())
                    })
                    .collect();
                if inside.len() < 2 {
                    break;
                }
                self.merge(inside[0], inside[1], now, limits);
            }
        }
    }

    fn enforce_retention(&mut self, now: u64) {
        for i in 0..self.shards.len() {
            self.trim_shard(i, now);
        }
    }

    /// Drops one shard's records older than retention (and the shard itself once it closed
    /// before the cutoff).
    fn trim_shard(&mut self, index: usize, now: u64) {
        let cutoff = now.saturating_sub(u64::from(self.retention_hours) * HOUR_MS);
        let Some(s) = self.shards.get_mut(index) else {
            return;
        };
        while s.records.front().is_some_and(|r| r.arrival_ms < cutoff) {
            s.records.pop_front();
            s.trimmed += 1;
        }
        if s.closed_ms.is_some_and(|c| c < cutoff) {
            s.expired = true;
            s.records.clear();
            s.records.shrink_to_fit();
        }
    }
}
