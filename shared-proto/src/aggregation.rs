//! The KPL aggregated-record format.
//!
//! An aggregated Kinesis record is `F3 89 9A C2` ‖ protobuf `AggregatedRecord` ‖ MD5 of the
//! protobuf bytes. Partition keys and explicit hash keys are stored once each in tables (in
//! order of first appearance) and referenced by index from every user record. A user record's
//! position in the aggregate is its *sub-sequence number*.

use crate::hash::{HashKeyError, parse_hash_key, partition_key_hash};
use crate::limits::{RecordError, validate_record};
use crate::pb;
use bytes::{BufMut, Bytes, BytesMut};
use md5::{Digest, Md5};
use prost::Message;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A fast multiplicative hasher for the per-aggregate key tables. The tables live for one
/// aggregate (bounded by its size), so hash flooding cannot grow them without limit.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Passes an already computed hash through.
#[derive(Default, Clone, Copy)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn fx_hash(bytes: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write(bytes);
    h.finish()
}

/// Deduplicates the strings of one table without copying them: each entry points at its
/// bytes inside the encoded table, and entries with the same hash are chained.
#[derive(Debug, Default, Clone)]
struct KeyTable {
    /// Hash → most recent entry with that hash.
    heads: HashMap<u64, usize, BuildHasherDefault<IdentityHasher>>,
    /// (start, length) of the string in the encoded table, next entry with the same hash.
    entries: Vec<(usize, usize, Option<usize>)>,
}

impl KeyTable {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn get(&self, table: &[u8], value: &str) -> Option<u64> {
        let mut next = self.heads.get(&fx_hash(value.as_bytes())).copied();
        while let Some(i) = next {
            let (start, len, chained) = self.entries[i];
            if table.get(start..start + len) == Some(value.as_bytes()) {
                return Some(i as u64);
            }
            next = chained;
        }
        None
    }

    fn insert(&mut self, start: usize, value: &str) -> u64 {
        let i = self.entries.len();
        let hash = fx_hash(value.as_bytes());
        let previous = self.heads.insert(hash, i);
        self.entries.push((start, value.len(), previous));
        i as u64
    }

    fn clear(&mut self) {
        self.heads.clear();
        self.entries.clear();
    }
}

/// The four bytes every aggregated record starts with.
pub const AGGREGATION_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
/// Length of the MD5 digest that ends an aggregated record.
pub const DIGEST_LEN: usize = 16;
/// Bytes an aggregate adds around its protobuf body (magic and digest).
pub const FRAMING_LEN: usize = AGGREGATION_MAGIC.len() + DIGEST_LEN;

// Protobuf field keys (field number << 3 | wire type).
const KEY_PARTITION_KEY_TABLE: u8 = (1 << 3) | 2;
const KEY_EXPLICIT_HASH_KEY_TABLE: u8 = (2 << 3) | 2;
const KEY_RECORDS: u8 = (3 << 3) | 2;
const KEY_PARTITION_KEY_INDEX: u8 = 1 << 3;
const KEY_EXPLICIT_HASH_KEY_INDEX: u8 = 2 << 3;
const KEY_DATA: u8 = (3 << 3) | 2;

/// Length of `value` as a protobuf varint.
fn varint_len(value: u64) -> usize {
    // 1 byte per 7 bits, at least one byte.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// Encoded length of a length-delimited field with a one-byte key.
fn field_len(payload_len: usize) -> usize {
    1 + varint_len(payload_len as u64) + payload_len
}

/// Builds one aggregated record incrementally.
///
/// The exact encoded size is known at every step ([`encoded_len`](Self::encoded_len)), and
/// the size after a prospective add can be asked before adding
/// ([`encoded_len_with`](Self::encoded_len_with)), so a producer can respect a size limit
/// without encoding trial aggregates. The output is byte-identical to the AWS KPL's.
#[derive(Debug, Default, Clone)]
pub struct Aggregator {
    partition_keys: KeyTable,
    explicit_hash_keys: KeyTable,
    partition_key_table: Vec<u8>,
    explicit_hash_key_table: Vec<u8>,
    records: Vec<u8>,
    count: usize,
}

impl Aggregator {
    /// An empty aggregator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of user records added since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no user record was added since the last [`finish`](Self::finish).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Exact length of the bytes [`finish`](Self::finish) would return now (magic, protobuf
    /// body and digest).
    pub fn encoded_len(&self) -> usize {
        FRAMING_LEN + self.body_len()
    }

    fn body_len(&self) -> usize {
        self.partition_key_table.len() + self.explicit_hash_key_table.len() + self.records.len()
    }

    /// Exact encoded length after adding a record with this partition key, explicit hash key
    /// and data length, without adding it.
    pub fn encoded_len_with(
        &self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data_len: usize,
    ) -> usize {
        self.encoded_len() + self.growth(partition_key, explicit_hash_key, data_len)
    }

    /// How many bytes adding this record would add to the encoding.
    fn growth(
        &self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data_len: usize,
    ) -> usize {
        let mut growth = 0;
        let pk_index = match self
            .partition_keys
            .get(&self.partition_key_table, partition_key)
        {
            Some(index) => index,
            None => {
                growth += field_len(partition_key.len());
                self.partition_keys.len() as u64
            }
        };
        let mut record_len = 1 + varint_len(pk_index) + field_len(data_len);
        if let Some(ehk) = explicit_hash_key {
            let ehk_index = match self
                .explicit_hash_keys
                .get(&self.explicit_hash_key_table, ehk)
            {
                Some(index) => index,
                None => {
                    growth += field_len(ehk.len());
                    self.explicit_hash_keys.len() as u64
                }
            };
            record_len += 1 + varint_len(ehk_index);
        }
        growth + field_len(record_len)
    }

    /// Adds a user record after validating it against the service limits (partition key of
    /// 1–256 characters, data + key ≤ 1 MiB, explicit hash key a decimal in range). Returns the
    /// new encoded length. On error the aggregator is unchanged.
    pub fn add(
        &mut self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data: &[u8],
    ) -> Result<usize, RecordError> {
        validate_record(partition_key, explicit_hash_key, data.len())?;
        self.add_unchecked(partition_key, explicit_hash_key, data);
        Ok(self.encoded_len())
    }

    /// Adds a user record that the caller has already validated with
    /// [`validate_record`](crate::validate_record).
    pub fn add_unchecked(
        &mut self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data: &[u8],
    ) {
        let pk_index = intern(
            &mut self.partition_keys,
            &mut self.partition_key_table,
            KEY_PARTITION_KEY_TABLE,
            partition_key,
        );
        let ehk_index = explicit_hash_key.map(|ehk| {
            intern(
                &mut self.explicit_hash_keys,
                &mut self.explicit_hash_key_table,
                KEY_EXPLICIT_HASH_KEY_TABLE,
                ehk,
            )
        });
        let mut record_len = 1 + varint_len(pk_index) + field_len(data.len());
        if let Some(index) = ehk_index {
            record_len += 1 + varint_len(index);
        }
        let out = &mut self.records;
        out.reserve(field_len(record_len));
        out.push(KEY_RECORDS);
        put_varint(out, record_len as u64);
        out.push(KEY_PARTITION_KEY_INDEX);
        put_varint(out, pk_index);
        if let Some(index) = ehk_index {
            out.push(KEY_EXPLICIT_HASH_KEY_INDEX);
            put_varint(out, index);
        }
        out.push(KEY_DATA);
        put_varint(out, data.len() as u64);
        out.extend_from_slice(data);
        self.count += 1;
    }

    /// Produces the aggregated record (magic ‖ protobuf ‖ MD5) and empties the aggregator for
    /// reuse.
    pub fn finish(&mut self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        out.put_slice(&AGGREGATION_MAGIC);
        let mut md5 = Md5::new();
        for part in [
            &self.partition_key_table,
            &self.explicit_hash_key_table,
            &self.records,
        ] {
            md5.update(part);
            out.put_slice(part);
        }
        out.put_slice(&md5.finalize());
        self.clear();
        out.freeze()
    }

    /// Discards every added record.
    pub fn clear(&mut self) {
        self.partition_keys.clear();
        self.explicit_hash_keys.clear();
        self.partition_key_table.clear();
        self.explicit_hash_key_table.clear();
        self.records.clear();
        self.count = 0;
    }
}

fn intern(index: &mut KeyTable, table: &mut Vec<u8>, key: u8, value: &str) -> u64 {
    if let Some(i) = index.get(table, value) {
        return i;
    }
    table.push(key);
    put_varint(table, value.len() as u64);
    let start = table.len();
    table.extend_from_slice(value.as_bytes());
    index.insert(start, value)
}

/// One user record taken out of an aggregated record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeaggregatedRecord {
    /// The user record's partition key.
    pub partition_key: String,
    /// The user record's explicit hash key, if it had one.
    pub explicit_hash_key: Option<String>,
    /// The user record's data (a slice of the aggregate, not a copy).
    pub data: Bytes,
    /// Position of the user record in the aggregate, from 0.
    pub sub_sequence_number: u64,
}

impl DeaggregatedRecord {
    /// The record's hash key: its explicit hash key if it has one, else the MD5 of its
    /// partition key. Fails when the explicit hash key is not a decimal in range.
    pub fn hash_key(&self) -> Result<u128, HashKeyError> {
        match &self.explicit_hash_key {
            Some(text) => parse_hash_key(text),
            None => Ok(partition_key_hash(&self.partition_key)),
        }
    }
}

/// Why a Kinesis record's data is not a KPL aggregate (it is then a plain user record).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotAggregate {
    /// Shorter than magic plus digest.
    #[error("too short to be an aggregate ({0} bytes)")]
    TooShort(usize),
    /// Does not start with `F3 89 9A C2`.
    #[error("no aggregation magic")]
    NoMagic,
    /// The trailing MD5 does not match the protobuf bytes.
    #[error("MD5 digest mismatch")]
    DigestMismatch,
    /// The protobuf body does not decode as an `AggregatedRecord`.
    #[error("invalid protobuf: {0}")]
    InvalidProtobuf(String),
    /// A record refers to a partition-key or explicit-hash-key table entry that does not exist.
    #[error("record {record} refers to a missing {table} table entry {index}")]
    IndexOutOfRange {
        /// Sub-sequence number of the offending record.
        record: usize,
        /// Which table (`partition key` or `explicit hash key`).
        table: &'static str,
        /// The index it refers to.
        index: u64,
    },
    /// A well-formed aggregate holding no user record.
    #[error("aggregate holds no user record")]
    Empty,
}

/// Whether `data` starts like an aggregate (magic and minimum length); a cheap pre-check that
/// does not verify the digest.
pub fn is_aggregate(data: &[u8]) -> bool {
    data.len() >= FRAMING_LEN && data[..4] == AGGREGATION_MAGIC
}

/// Splits a Kinesis record's data into its user records, or says why it is not an aggregate.
///
/// Verifies the magic, the MD5 digest, the protobuf encoding and every table index. Never
/// panics, whatever the bytes. Payloads are zero-copy slices of `data`.
pub fn deaggregate(data: &Bytes) -> Result<Vec<DeaggregatedRecord>, NotAggregate> {
    if data.len() < FRAMING_LEN {
        return Err(NotAggregate::TooShort(data.len()));
    }
    if data[..4] != AGGREGATION_MAGIC {
        return Err(NotAggregate::NoMagic);
    }
    let body_end = data.len() - DIGEST_LEN;
    let body = data.slice(4..body_end);
    if Md5::digest(&body).as_slice() != &data[body_end..] {
        return Err(NotAggregate::DigestMismatch);
    }
    let message = pb::AggregatedRecord::decode(body)
        .map_err(|e| NotAggregate::InvalidProtobuf(e.to_string()))?;
    if message.records.is_empty() {
        return Err(NotAggregate::Empty);
    }
    let pk_table = &message.partition_key_table;
    let ehk_table = &message.explicit_hash_key_table;
    let mut out = Vec::with_capacity(message.records.len());
    for (i, record) in message.records.into_iter().enumerate() {
        let partition_key = usize::try_from(record.partition_key_index)
            .ok()
            .and_then(|index| pk_table.get(index))
            .ok_or(NotAggregate::IndexOutOfRange {
                record: i,
                table: "partition key",
                index: record.partition_key_index,
            })?;
        let explicit_hash_key = match record.explicit_hash_key_index {
            None => None,
            Some(index) => Some(
                usize::try_from(index)
                    .ok()
                    .and_then(|i| ehk_table.get(i))
                    .ok_or(NotAggregate::IndexOutOfRange {
                        record: i,
                        table: "explicit hash key",
                        index,
                    })?
                    .clone(),
            ),
        };
        out.push(DeaggregatedRecord {
            partition_key: partition_key.clone(),
            explicit_hash_key,
            data: record.data,
            sub_sequence_number: i as u64,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_lengths() {
        for (v, n) in [
            (0u64, 1),
            (127, 1),
            (128, 2),
            (16383, 2),
            (16384, 3),
            (u64::MAX, 10),
        ] {
            assert_eq!(varint_len(v), n, "{v}");
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert_eq!(buf.len(), n);
        }
    }

    #[test]
    fn empty_aggregate_is_not_an_aggregate() {
        let mut agg = Aggregator::new();
        assert_eq!(agg.encoded_len(), FRAMING_LEN);
        let bytes = agg.finish();
        assert_eq!(deaggregate(&bytes), Err(NotAggregate::Empty));
    }

    #[test]
    fn add_rejects_bad_records_and_keeps_state() {
        let mut agg = Aggregator::new();
        agg.add("k", None, b"x").expect("valid");
        let before = agg.encoded_len();
        assert!(agg.add("", None, b"x").is_err());
        assert!(agg.add("k", Some("nope"), b"x").is_err());
        assert_eq!(agg.encoded_len(), before);
        assert_eq!(agg.len(), 1);
    }
}
