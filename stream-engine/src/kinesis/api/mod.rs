//! The Kinesis JSON API (awsJson1_1): request parsing, validation and response bodies.

use super::control::Control;
use crate::error::ApiError;
use crate::faults::{FaultKind, Faults};
use crate::kinesis::model::{
    ChildShard, IteratorStart, KinesisCore, PutInput, PutOutcome, ShardFilter, ShardInfo,
    StreamHandle, StreamMode,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use shared_proto::limits::{
    MAX_LIST_SHARDS_RESULTS, MAX_PARTITION_KEY_CHARS, MAX_PUT_RECORDS_COUNT, MAX_PUT_RECORDS_SIZE,
    MAX_RECORD_SIZE, parse_shard_id,
};
use std::fmt::Write as _;
use std::sync::Arc;

/// The `X-Amz-Target` prefix of Kinesis operations.
pub const TARGET_PREFIX: &str = "Kinesis_20131202";
const SERVICE: &str = "Kinesis";
/// Most shards one `ListShards` call returns, whatever its `MaxResults`.
const LIST_SHARDS_PAGE: usize = 1000;

/// Standard base64 that accepts input with or without padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const BASE64_OUT: GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Serves one Kinesis operation.
pub fn handle(
    core: &KinesisCore,
    faults: &Faults,
    operation: &str,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let api = Api { core, faults };
    match operation {
        "CreateStream" => api.create_stream(parse(body)?),
        "DeleteStream" => api.delete_stream(parse(body)?),
        "DescribeStream" => api.describe_stream(parse(body)?),
        "DescribeStreamSummary" => api.describe_stream_summary(parse(body)?),
        "ListStreams" => api.list_streams(parse(body)?),
        "ListShards" => api.list_shards(parse(body)?),
        "PutRecord" => api.put_record(parse(body)?),
        "PutRecords" => api.put_records(parse(body)?),
        "GetShardIterator" => api.get_shard_iterator(parse(body)?),
        "GetRecords" => api.get_records(parse(body)?),
        "SplitShard" => api.split_shard(parse(body)?),
        "MergeShards" => api.merge_shards(parse(body)?),
        "UpdateShardCount" => api.update_shard_count(parse(body)?),
        "IncreaseStreamRetentionPeriod" => api.retention(parse(body)?, true),
        "DecreaseStreamRetentionPeriod" => api.retention(parse(body)?, false),
        "AddTagsToStream" => api.add_tags(parse(body)?),
        "RemoveTagsFromStream" => api.remove_tags(parse(body)?),
        "ListTagsForStream" => api.list_tags(parse(body)?),
        "DescribeLimits" => api.describe_limits(),
        "RegisterStreamConsumer" => api.register_consumer(parse(body)?),
        "DescribeStreamConsumer" => api.describe_consumer(parse(body)?),
        "ListStreamConsumers" => api.list_consumers(parse(body)?),
        "DeregisterStreamConsumer" => api.deregister_consumer(parse(body)?),
        other => Err(ApiError::new(
            "UnknownOperationException",
            format!("Unknown operation Kinesis_20131202.{other}"),
        )),
    }
}

pub(super) fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    let body = if body.is_empty() {
        b"{}" as &[u8]
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::serialization(format!("Malformed request body: {e}")))
}

pub(super) fn to_body(value: Value) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(&value).map_err(|e| ApiError::internal(e.to_string()))
}

pub(super) fn validation(field: &str, value: &str, constraint: &str) -> ApiError {
    ApiError::validation(format!(
        "1 validation error detected: Value '{}' at '{field}' failed to satisfy constraint: {constraint}",
        value.chars().take(64).collect::<String>()
    ))
}

pub(super) fn check_name(field: &str, value: &str) -> Result<(), ApiError> {
    let len = value.chars().count();
    if !(1..=128).contains(&len) {
        return Err(validation(
            field,
            value,
            "Member must have length between 1 and 128",
        ));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
    {
        return Err(validation(
            field,
            value,
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        ));
    }
    Ok(())
}

pub(super) fn check_range(field: &str, value: i64, min: i64, max: i64) -> Result<(), ApiError> {
    if value < min || value > max {
        return Err(validation(
            field,
            &value.to_string(),
            &format!("Member must have value between {min} and {max}"),
        ));
    }
    Ok(())
}

pub(super) fn epoch_secs(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

pub(super) fn secs_to_ms(secs: f64) -> u64 {
    if secs.is_finite() && secs > 0.0 {
        (secs * 1000.0).round() as u64
    } else {
        0
    }
}

pub(super) fn shard_json(s: &ShardInfo) -> Value {
    let mut v = json!({
        "ShardId": s.shard_id,
        "HashKeyRange": {
            "StartingHashKey": s.hash_key_range.start().to_string(),
            "EndingHashKey": s.hash_key_range.end().to_string(),
        },
        "SequenceNumberRange": { "StartingSequenceNumber": s.starting_sequence_number },
    });
    if let Some(p) = &s.parent_shard_id {
        v["ParentShardId"] = json!(p);
    }
    if let Some(p) = &s.adjacent_parent_shard_id {
        v["AdjacentParentShardId"] = json!(p);
    }
    if let Some(e) = &s.ending_sequence_number {
        v["SequenceNumberRange"]["EndingSequenceNumber"] = json!(e);
    }
    v
}

pub(super) fn child_json(c: &ChildShard) -> Value {
    json!({
        "ShardId": c.shard_id,
        "ParentShards": c.parent_shards,
        "HashKeyRange": {
            "StartingHashKey": c.hash_key_range.start().to_string(),
            "EndingHashKey": c.hash_key_range.end().to_string(),
        },
    })
}

pub(super) fn required<T>(value: Option<T>, field: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| null_member(field))
}

pub(super) fn null_member(field: &str) -> ApiError {
    ApiError::validation(format!(
        "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
    ))
}

pub(super) struct Api<'a> {
    core: &'a KinesisCore,
    faults: &'a Faults,
}

mod data;
pub mod fanout;
mod paging;
mod requests;
mod streams;

use requests::*;
