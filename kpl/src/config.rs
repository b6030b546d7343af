//! Producer configuration: every field documented with its default, validated at build time.

use std::time::Duration;

/// Partition key of an aggregate (its explicit hash key does the routing).
pub(crate) const AGGREGATE_PARTITION_KEY: &str = "a";

/// How strictly the producer keeps the order of records with the same partition key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ordering {
    /// Records with the same partition key are stored in the order they were sent, even
    /// across retries: at most one request in flight per shard, failed records go out again
    /// before newer ones of their shard, and a request never holds two Kinesis records of one
    /// shard that share a partition key. The default.
    #[default]
    PerPartitionKey,
    /// Several requests per shard may be in flight and a retried record may land after newer
    /// ones: more throughput, no order guarantee.
    Relaxed,
}

/// Producer settings. Start from [`ProducerConfig::default`] and change what you need with
/// the builder-style setters (`ProducerConfig::default().record_ttl(..)`); the producer's
/// builder validates the result. Non-exhaustive, so new settings are not a breaking change.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProducerConfig {
    /// How long a record may wait to be batched before it is sent. Default 100 ms.
    pub record_max_buffered_time: Duration,
    /// How long the producer keeps retrying a record before its outcome is
    /// [`PutError::Expired`](crate::PutError::Expired). Default 30 s.
    pub record_ttl: Duration,
    /// Whether user records are aggregated (KPL format) into Kinesis records. Default `true`.
    pub aggregation_enabled: bool,
    /// Most user records in one aggregate. Default 4 294 967 295 (bounded by the size).
    pub aggregation_max_count: usize,
    /// Largest aggregate in bytes. Default 51 200; at most 1 MiB minus the aggregate's
    /// one-character partition key (1 048 575), so an aggregate always fits in one record.
    pub aggregation_max_size: usize,
    /// Most Kinesis records in one `PutRecords` call. Default 500 (the service maximum).
    pub collection_max_count: usize,
    /// Largest `PutRecords` call in bytes (data + partition keys). Default 5 MiB (the maximum).
    pub collection_max_size: usize,
    /// Per-shard rate limit as a percentage of the shard limits (1 MiB/s, 1000 records/s).
    /// Default 150.
    pub rate_limit_percent: u32,
    /// Most `PutRecords` requests in flight at once. Default 24.
    pub max_connections: usize,
    /// Time limit of one `PutRecords` request. Default 6 s.
    pub request_timeout: Duration,
    /// Most records sent but without an outcome yet; `send` waits beyond it. Default 100 000.
    pub max_outstanding_records: usize,
    /// Most bytes (data + partition keys) sent but without an outcome yet; `send` waits
    /// beyond it. Default 256 MiB; at least 1 MiB + 256 so any valid record fits.
    pub max_outstanding_bytes: usize,
    /// Ordering guarantee. Default [`Ordering::PerPartitionKey`].
    pub ordering: Ordering,
    /// First retry delay (jittered, doubling per attempt). Default 100 ms.
    pub retry_min_backoff: Duration,
    /// Largest retry delay. Default 5 s.
    pub retry_max_backoff: Duration,
    /// How long `build` waits for a `CREATING` stream to become `ACTIVE`. Default 60 s.
    pub stream_ready_timeout: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            record_max_buffered_time: Duration::from_millis(100),
            record_ttl: Duration::from_secs(30),
            aggregation_enabled: true,
            aggregation_max_count: u32::MAX as usize,
            aggregation_max_size: 51_200,
            collection_max_count: 500,
            collection_max_size: 5 * 1024 * 1024,
            rate_limit_percent: 150,
            max_connections: 24,
            request_timeout: Duration::from_secs(6),
            max_outstanding_records: 100_000,
            max_outstanding_bytes: 256 * 1024 * 1024,
            ordering: Ordering::PerPartitionKey,
            retry_min_backoff: Duration::from_millis(100),
            retry_max_backoff: Duration::from_secs(5),
            stream_ready_timeout: Duration::from_secs(60),
        }
    }
}

/// Builder-style setters, one per field (see the field for its meaning and default).
impl ProducerConfig {
    /// Sets [`ProducerConfig::record_max_buffered_time`].
    pub fn record_max_buffered_time(mut self, value: Duration) -> Self {
        self.record_max_buffered_time = value;
        self
    }

    /// Sets [`ProducerConfig::record_ttl`].
    pub fn record_ttl(mut self, value: Duration) -> Self {
        self.record_ttl = value;
        self
    }

    /// Sets [`ProducerConfig::aggregation_enabled`].
    pub fn aggregation_enabled(mut self, value: bool) -> Self {
        self.aggregation_enabled = value;
        self
    }

    /// Sets [`ProducerConfig::aggregation_max_count`].
    pub fn aggregation_max_count(mut self, value: usize) -> Self {
        self.aggregation_max_count = value;
        self
    }

    /// Sets [`ProducerConfig::aggregation_max_size`].
    pub fn aggregation_max_size(mut self, value: usize) -> Self {
        self.aggregation_max_size = value;
        self
    }

    /// Sets [`ProducerConfig::collection_max_count`].
    pub fn collection_max_count(mut self, value: usize) -> Self {
        self.collection_max_count = value;
        self
    }

    /// Sets [`ProducerConfig::collection_max_size`].
    pub fn collection_max_size(mut self, value: usize) -> Self {
        self.collection_max_size = value;
        self
    }

    /// Sets [`ProducerConfig::rate_limit_percent`].
    pub fn rate_limit_percent(mut self, value: u32) -> Self {
        self.rate_limit_percent = value;
        self
    }

    /// Sets [`ProducerConfig::max_connections`].
    pub fn max_connections(mut self, value: usize) -> Self {
        self.max_connections = value;
        self
    }

    /// Sets [`ProducerConfig::request_timeout`].
    pub fn request_timeout(mut self, value: Duration) -> Self {
        self.request_timeout = value;
        self
    }

    /// Sets [`ProducerConfig::max_outstanding_records`].
    pub fn max_outstanding_records(mut self, value: usize) -> Self {
        self.max_outstanding_records = value;
        self
    }

    /// Sets [`ProducerConfig::max_outstanding_bytes`].
    pub fn max_outstanding_bytes(mut self, value: usize) -> Self {
        self.max_outstanding_bytes = value;
        self
    }

    /// Sets [`ProducerConfig::ordering`].
    pub fn ordering(mut self, value: Ordering) -> Self {
        self.ordering = value;
        self
    }

    /// Sets [`ProducerConfig::retry_min_backoff`].
    pub fn retry_min_backoff(mut self, value: Duration) -> Self {
        self.retry_min_backoff = value;
        self
    }

    /// Sets [`ProducerConfig::retry_max_backoff`].
    pub fn retry_max_backoff(mut self, value: Duration) -> Self {
        self.retry_max_backoff = value;
        self
    }

    /// Sets [`ProducerConfig::stream_ready_timeout`].
    pub fn stream_ready_timeout(mut self, value: Duration) -> Self {
        self.stream_ready_timeout = value;
        self
    }
}

/// A configuration value out of its allowed range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid producer configuration: {field} = {value}: {reason}")]
pub struct ConfigError {
    /// The field.
    pub field: &'static str,
    /// Its value, as text.
    pub value: String,
    /// What is allowed.
    pub reason: &'static str,
}

fn check(
    ok: bool,
    field: &'static str,
    value: impl ToString,
    reason: &'static str,
) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError {
            field,
            value: value.to_string(),
            reason,
        })
    }
}

impl ProducerConfig {
    /// Checks every field; the builder calls this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use shared_proto::limits::{MAX_PUT_RECORDS_COUNT, MAX_PUT_RECORDS_SIZE, MAX_RECORD_SIZE};
        check(
            !self.record_ttl.is_zero(),
            "record_ttl",
            format!("{:?}", self.record_ttl),
            "must be positive",
        )?;
        check(
            self.record_max_buffered_time <= self.record_ttl,
            "record_max_buffered_time",
            format!("{:?}", self.record_max_buffered_time),
            "must not exceed record_ttl",
        )?;
        check(
            self.aggregation_max_count >= 1,
            "aggregation_max_count",
            self.aggregation_max_count,
            "must be at least 1",
        )?;
        check(
            (64..=MAX_RECORD_SIZE - AGGREGATE_PARTITION_KEY.len())
                .contains(&self.aggregation_max_size),
            "aggregation_max_size",
            self.aggregation_max_size,
            "must be between 64 and 1048575 (an aggregate and its partition key fit in 1 MiB)",
        )?;
        check(
            (1..=MAX_PUT_RECORDS_COUNT).contains(&self.collection_max_count),
            "collection_max_count",
            self.collection_max_count,
            "must be between 1 and 500",
        )?;
        check(
            (MAX_RECORD_SIZE..=MAX_PUT_RECORDS_SIZE).contains(&self.collection_max_size),
            "collection_max_size",
            self.collection_max_size,
            "must be between 1 MiB and 5 MiB (a request must hold the largest record)",
        )?;
        check(
            (1..=10_000).contains(&self.rate_limit_percent),
            "rate_limit_percent",
            self.rate_limit_percent,
            "must be between 1 and 10000",
        )?;
        check(
            (1..=1024).contains(&self.max_connections),
            "max_connections",
            self.max_connections,
            "must be between 1 and 1024",
        )?;
        check(
            !self.request_timeout.is_zero(),
            "request_timeout",
            format!("{:?}", self.request_timeout),
            "must be positive",
        )?;
        check(
            (1..=(u32::MAX as usize)).contains(&self.max_outstanding_records),
            "max_outstanding_records",
            self.max_outstanding_records,
            "must be between 1 and 4294967295",
        )?;
        check(
            (MAX_RECORD_SIZE + 256..=(u32::MAX as usize)).contains(&self.max_outstanding_bytes),
            "max_outstanding_bytes",
            self.max_outstanding_bytes,
            "must be between 1048832 and 4294967295 (every valid record must fit)",
        )?;
        check(
            !self.retry_min_backoff.is_zero() && self.retry_min_backoff <= self.retry_max_backoff,
            "retry_min_backoff",
            format!("{:?}", self.retry_min_backoff),
            "must be positive and not above retry_max_backoff",
        )?;
        Ok(())
    }
}
