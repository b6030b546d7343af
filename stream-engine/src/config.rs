//! Engine configuration.

use std::time::Duration;

/// Throughput limits: per shard for data, per account, stream or shard for control-plane
/// calls (Kinesis defaults; see DESIGN.md section 4). Over a limit, data calls get
/// `ProvisionedThroughputExceededException` and control-plane calls `LimitExceededException`.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Whether throughput limits are enforced at all (default `true`; off for raw-speed
    /// benchmarks). Size and count limits of requests always hold.
    pub enabled: bool,
    /// Write bytes per second and shard (default 1 MiB).
    pub shard_write_bytes_per_sec: u64,
    /// Written records per second and shard (default 1000).
    pub shard_write_records_per_sec: u64,
    /// `GetRecords` calls per second and shard (default 5).
    pub shard_read_calls_per_sec: u64,
    /// Read bytes per second and shard (default 2 MiB).
    pub shard_read_bytes_per_sec: u64,
    /// `DescribeStream` calls per second for the account (default 10).
    pub describe_stream_per_sec: u64,
    /// `DescribeStreamSummary` calls per second for the account (default 20).
    pub describe_stream_summary_per_sec: u64,
    /// `ListShards` calls per second and stream (default 1000).
    pub list_shards_per_stream_per_sec: u64,
    /// `GetShardIterator` calls per second and shard (default 5).
    pub get_shard_iterator_per_shard_per_sec: u64,
    /// `SplitShard` and `MergeShards` calls per second for the account (default 5).
    pub reshard_per_sec: u64,
    /// `UpdateShardCount` calls per stream in a rolling 24 hours (default 10).
    pub update_shard_count_per_day: u64,
    /// Bytes per second one registered consumer's subscription to a shard receives (default
    /// 2 MiB, enhanced fan-out's dedicated throughput).
    pub consumer_read_bytes_per_sec: u64,
}

impl Default for Limits {
    fn default() -> Self {
        use shared_proto::limits::*;
        Limits {
            enabled: true,
            shard_write_bytes_per_sec: SHARD_WRITE_BYTES_PER_SEC,
            shard_write_records_per_sec: SHARD_WRITE_RECORDS_PER_SEC,
            shard_read_calls_per_sec: SHARD_READ_CALLS_PER_SEC,
            shard_read_bytes_per_sec: SHARD_READ_BYTES_PER_SEC,
            describe_stream_per_sec: 10,
            describe_stream_summary_per_sec: 20,
            list_shards_per_stream_per_sec: 1000,
            get_shard_iterator_per_shard_per_sec: 5,
            reshard_per_sec: 5,
            update_shard_count_per_day: 10,
            consumer_read_bytes_per_sec: 2 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// No throughput limits.
    pub fn disabled() -> Self {
        Limits {
            enabled: false,
            ..Self::default()
        }
    }
}

/// Configuration of an engine; every field has a documented default.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Throughput limits (default: the Kinesis limits, enforced).
    pub limits: Limits,
    /// How long a shard iterator stays valid (default 300 s).
    pub iterator_ttl: Duration,
    /// How long a stream stays `CREATING`, `UPDATING` or `DELETING` (default 0: at once).
    pub stream_delay: Duration,
    /// How long a DynamoDB table stays `CREATING` (default 0: at once).
    pub table_delay: Duration,
    /// How often records and closed shards older than the retention period are removed
    /// (default 60 s; `None`: only when [`crate::Engine::enforce_retention`] is called).
    pub retention_check_interval: Option<Duration>,
    /// Region in ARNs and in the ready-made SDK clients (default `us-east-1`).
    pub region: String,
    /// Account id in ARNs and error messages (default `000000000000`).
    pub account_id: String,
    /// Most open shards one stream may have (default 10 000); closed shards do not count.
    pub max_shards_per_stream: usize,
    /// Largest request body accepted, in bytes (default 16 MiB).
    pub max_request_bytes: usize,
    /// A manual clock (default `false`): time stands still except when
    /// [`crate::Engine::advance_clock`] moves it, so throughput limits, status delays, iterator
    /// and retention expiry behave the same on a slow machine and a fast one. For tests.
    pub manual_clock: bool,
    /// How long a registered consumer stays `CREATING` (default 0: at once).
    pub consumer_delay: Duration,
    /// How long one `SubscribeToShard` stream lasts before the engine ends it (default 5 min,
    /// as on AWS).
    pub subscription_lifetime: Duration,
    /// A second subscription of one consumer to one shard within this time of the last is
    /// refused with `ResourceInUseException` (default 5 s, as on AWS).
    pub subscription_window: Duration,
    /// Most time between two events of a subscription, records or none (default 1 s).
    pub subscription_heartbeat: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            limits: Limits::default(),
            iterator_ttl: shared_proto::limits::SHARD_ITERATOR_TTL,
            stream_delay: Duration::ZERO,
            table_delay: Duration::ZERO,
            retention_check_interval: Some(Duration::from_secs(60)),
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            max_shards_per_stream: 10_000,
            max_request_bytes: 16 * 1024 * 1024,
            manual_clock: false,
            consumer_delay: Duration::ZERO,
            subscription_lifetime: Duration::from_secs(300),
            subscription_window: Duration::from_secs(5),
            subscription_heartbeat: Duration::from_secs(1),
        }
    }
}
