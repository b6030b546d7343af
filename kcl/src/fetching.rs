//! What both retrieval modes share: where reading starts, the batches they hand the shard
//! consumer, their settings, and the records and children of their answers.

use crate::discovery::ShardInfo;
use crate::records::Fetched;
use crate::shards::{StreamRef, child_info, list_shards};
use aws_sdk_kinesis::Client;
use std::time::{Duration, SystemTime};

/// Where reading a shard begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StartAt {
    TrimHorizon,
    Latest,
    AtTimestamp(SystemTime),
    /// At this sequence number (records up to the checkpoint are skipped by the consumer).
    AtSequence(String),
    AfterSequence(String),
}

/// One `GetRecords` answer that carried records, or the end of the shard.
#[derive(Debug)]
pub(crate) struct Batch {
    pub records: Vec<Fetched>,
    pub millis_behind: Option<i64>,
    /// `Some` at the end of the shard: its children.
    pub end: Option<Vec<ShardInfo>>,
}

/// How the fetcher reads.
#[derive(Debug, Clone)]
pub(crate) struct FetchConfig {
    pub max_records: i32,
    pub idle_time: Duration,
    pub call_timeout: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Enhanced fan-out through this registered consumer instead of polling.
    pub consumer_arn: Option<String>,
}

/// A record as `GetRecords` or a subscription event gives it.
pub(crate) fn fetched(r: aws_sdk_kinesis::types::Record) -> Fetched {
    Fetched {
        data: bytes::Bytes::from(r.data.into_inner()),
        partition_key: r.partition_key.unwrap_or_default(),
        explicit_hash_key: None,
        sequence_number: r.sequence_number,
        arrival: r
            .approximate_arrival_timestamp
            .and_then(|t| SystemTime::try_from(t).ok()),
    }
}

/// The children of `shard_id` at its end: the `ChildShards` given, or looked up with
/// `ListShards` for an engine that gives none.
pub(crate) async fn end_children(
    client: &Client,
    stream: &StreamRef,
    shard_id: &str,
    given: Option<Vec<aws_sdk_kinesis::types::ChildShard>>,
    timeout: Duration,
) -> Vec<ShardInfo> {
    let given: Vec<ShardInfo> = given.unwrap_or_default().iter().map(child_info).collect();
    if !given.is_empty() {
        return given;
    }
    match list_shards(client, stream, None, 5, timeout).await {
        Ok(all) => all
            .into_iter()
            .filter(|s| s.parents.iter().any(|p| p == shard_id))
            .collect(),
        Err(e) => {
            tracing::warn!(shard = %shard_id, error = %e, "child shards not found");
            Vec::new()
        }
    }
}
