//! User records and their outcomes.

use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// A record as the application sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Partition key: 1 to 256 characters; decides the shard unless an explicit hash key is set.
    pub partition_key: String,
    /// Optional explicit hash key: a decimal in `0 ..= 2^128 - 1`.
    pub explicit_hash_key: Option<String>,
    /// The payload; data plus partition key must not exceed 1 MiB.
    pub data: Bytes,
}

impl UserRecord {
    /// A record with this partition key and data.
    pub fn new(partition_key: impl Into<String>, data: impl Into<Bytes>) -> Self {
        UserRecord {
            partition_key: partition_key.into(),
            explicit_hash_key: None,
            data: data.into(),
        }
    }

    /// The same record routed by an explicit hash key.
    pub fn with_explicit_hash_key(mut self, hash_key: impl Into<String>) -> Self {
        self.explicit_hash_key = Some(hash_key.into());
        self
    }
}

/// One try to put a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// How long the record waited before this attempt (buffering, backoff, rate limit).
    pub delay: Duration,
    /// How long the request took.
    pub duration: Duration,
    /// The error code, if the attempt failed (`ProvisionedThroughputExceededException`,
    /// `InternalFailure`, `Timeout`, `Dispatch`, …).
    pub error_code: Option<String>,
    /// The error message, if the attempt failed.
    pub error_message: Option<String>,
}

impl Attempt {
    /// Whether the attempt succeeded.
    pub fn succeeded(&self) -> bool {
        self.error_code.is_none()
    }
}

/// Where a record was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOutcome {
    /// The shard that stored it (shared by every user record of an aggregate).
    pub shard_id: Arc<str>,
    /// The sequence number of the Kinesis record that holds it (shared likewise).
    pub sequence_number: Arc<str>,
    /// Its position inside the aggregate (0 when sent on its own).
    pub sub_sequence_number: u64,
    /// Whether it was sent inside an aggregate of several user records.
    pub aggregated: bool,
    /// Every attempt, the last one successful.
    pub attempts: Vec<Attempt>,
}
