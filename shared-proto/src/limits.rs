//! Kinesis Data Streams service limits, and validation of a user record against them.

use crate::hash::{HashKeyError, parse_hash_key, partition_key_hash};
use std::time::Duration;

/// Largest record: data plus partition key (UTF-8 bytes), 1 MiB.
pub const MAX_RECORD_SIZE: usize = 1024 * 1024;
/// Longest partition key, in Unicode characters.
pub const MAX_PARTITION_KEY_CHARS: usize = 256;
/// Most records in one `PutRecords` call.
pub const MAX_PUT_RECORDS_COUNT: usize = 500;
/// Largest `PutRecords` call: data plus partition keys of all records, 5 MiB.
pub const MAX_PUT_RECORDS_SIZE: usize = 5 * 1024 * 1024;
/// Write throughput of one shard, bytes per second (1 MiB/s).
pub const SHARD_WRITE_BYTES_PER_SEC: u64 = 1024 * 1024;
/// Write throughput of one shard, records per second (an aggregated record counts as one).
pub const SHARD_WRITE_RECORDS_PER_SEC: u64 = 1000;
/// `GetRecords` calls per second and shard.
pub const SHARD_READ_CALLS_PER_SEC: u64 = 5;
/// Read throughput of one shard, bytes per second (2 MiB/s).
pub const SHARD_READ_BYTES_PER_SEC: u64 = 2 * 1024 * 1024;
/// Most records one `GetRecords` call returns.
pub const MAX_GET_RECORDS_COUNT: usize = 10_000;
/// Most bytes one `GetRecords` call returns (10 MiB).
pub const MAX_GET_RECORDS_BYTES: usize = 10 * 1024 * 1024;
/// How long a shard iterator stays valid after it was issued.
pub const SHARD_ITERATOR_TTL: Duration = Duration::from_secs(300);
/// Default retention period, hours.
pub const DEFAULT_RETENTION_HOURS: u32 = 24;
/// Shortest retention period, hours.
pub const MIN_RETENTION_HOURS: u32 = 24;
/// Longest retention period, hours (365 days).
pub const MAX_RETENTION_HOURS: u32 = 8760;
/// Largest `MaxResults` of `ListShards`.
pub const MAX_LIST_SHARDS_RESULTS: usize = 10_000;
/// Prefix of every shard id; twelve zero-padded digits follow.
pub const SHARD_ID_PREFIX: &str = "shardId-";

/// The shard id of shard number `index`: `shardId-` and 12 zero-padded digits.
pub fn shard_id(index: u64) -> String {
    format!("{SHARD_ID_PREFIX}{index:012}")
}

/// The number in a shard id of the form `shardId-000000000007`, if it has that form.
pub fn parse_shard_id(shard_id: &str) -> Option<u64> {
    let digits = shard_id.strip_prefix(SHARD_ID_PREFIX)?;
    if digits.len() != 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Why a user record cannot be put.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The partition key is the empty string.
    #[error("partition key is empty (1 to 256 characters required)")]
    EmptyPartitionKey,
    /// The partition key has more than 256 Unicode characters.
    #[error("partition key has {chars} characters; at most 256 are allowed")]
    PartitionKeyTooLong {
        /// Number of characters in the rejected key.
        chars: usize,
    },
    /// Data plus partition key exceed 1 MiB.
    #[error("record is {size} bytes (data + partition key); at most 1048576 are allowed")]
    RecordTooLarge {
        /// Data length plus partition-key length in bytes.
        size: usize,
    },
    /// The explicit hash key is not a decimal number in `0 ..= 2^128 - 1`.
    #[error("invalid explicit hash key: {0}")]
    InvalidExplicitHashKey(#[from] HashKeyError),
}

/// Checks a user record against the service limits and returns its hash key (the explicit
/// hash key if given, else the MD5 of the partition key).
pub fn validate_record(
    partition_key: &str,
    explicit_hash_key: Option<&str>,
    data_len: usize,
) -> Result<u128, RecordError> {
    if partition_key.is_empty() {
        return Err(RecordError::EmptyPartitionKey);
    }
    // Cheap byte-length test first: a key of at most 256 bytes has at most 256 characters.
    if partition_key.len() > MAX_PARTITION_KEY_CHARS {
        let chars = partition_key.chars().count();
        if chars > MAX_PARTITION_KEY_CHARS {
            return Err(RecordError::PartitionKeyTooLong { chars });
        }
    }
    let size = data_len.saturating_add(partition_key.len());
    if size > MAX_RECORD_SIZE {
        return Err(RecordError::RecordTooLarge { size });
    }
    match explicit_hash_key {
        Some(text) => Ok(parse_hash_key(text)?),
        None => Ok(partition_key_hash(partition_key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_ids() {
        assert_eq!(shard_id(7), "shardId-000000000007");
        assert_eq!(parse_shard_id("shardId-000000000007"), Some(7));
        assert_eq!(parse_shard_id("shardId-7"), None);
        assert_eq!(parse_shard_id("shard-000000000007"), None);
    }

    #[test]
    fn validation() {
        assert_eq!(
            validate_record("", None, 1),
            Err(RecordError::EmptyPartitionKey)
        );
        let long: String = "é".repeat(257);
        assert_eq!(
            validate_record(&long, None, 1),
            Err(RecordError::PartitionKeyTooLong { chars: 257 })
        );
        // 256 two-byte characters are fine: the limit counts characters, not bytes.
        assert!(validate_record(&"é".repeat(256), None, 1).is_ok());
        assert_eq!(
            validate_record("k", None, MAX_RECORD_SIZE),
            Err(RecordError::RecordTooLarge {
                size: MAX_RECORD_SIZE + 1
            })
        );
        assert!(validate_record("k", None, MAX_RECORD_SIZE - 1).is_ok());
        assert!(matches!(
            validate_record("k", Some("x"), 1),
            Err(RecordError::InvalidExplicitHashKey(_))
        ));
        assert_eq!(validate_record("k", Some("12"), 1), Ok(12));
    }
}
