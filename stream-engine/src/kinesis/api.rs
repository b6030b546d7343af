//! The Kinesis JSON API (awsJson1_1): request parsing, validation and response bodies.

use super::control::Control;
use super::model::{
    ChildShard, IteratorStart, KinesisCore, PutInput, PutOutcome, ShardFilter, ShardInfo,
    StreamHandle, StreamMode,
};
use crate::error::ApiError;
use crate::faults::{FaultKind, Faults};
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
use std::borrow::Cow;
use std::collections::BTreeMap;
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
        other => Err(ApiError::new(
            "UnknownOperationException",
            format!("Unknown operation Kinesis_20131202.{other}"),
        )),
    }
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    let body = if body.is_empty() {
        b"{}" as &[u8]
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::serialization(format!("Malformed request body: {e}")))
}

fn to_body(value: Value) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(&value).map_err(|e| ApiError::internal(e.to_string()))
}

fn validation(field: &str, value: &str, constraint: &str) -> ApiError {
    ApiError::validation(format!(
        "1 validation error detected: Value '{}' at '{field}' failed to satisfy constraint: {constraint}",
        value.chars().take(64).collect::<String>()
    ))
}

fn check_name(field: &str, value: &str) -> Result<(), ApiError> {
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

fn check_range(field: &str, value: i64, min: i64, max: i64) -> Result<(), ApiError> {
    if value < min || value > max {
        return Err(validation(
            field,
            &value.to_string(),
            &format!("Member must have value between {min} and {max}"),
        ));
    }
    Ok(())
}

fn epoch_secs(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

fn secs_to_ms(secs: f64) -> u64 {
    if secs.is_finite() && secs > 0.0 {
        (secs * 1000.0).round() as u64
    } else {
        0
    }
}

fn shard_json(s: &ShardInfo) -> Value {
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

fn child_json(c: &ChildShard) -> Value {
    json!({
        "ShardId": c.shard_id,
        "ParentShards": c.parent_shards,
        "HashKeyRange": {
            "StartingHashKey": c.hash_key_range.start().to_string(),
            "EndingHashKey": c.hash_key_range.end().to_string(),
        },
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StreamReq {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateStreamReq {
    stream_name: Option<String>,
    shard_count: Option<i64>,
    stream_mode_details: Option<StreamModeDetails>,
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StreamModeDetails {
    stream_mode: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeStreamReq {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    limit: Option<i64>,
    exclusive_start_shard_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListStreamsReq {
    limit: Option<i64>,
    exclusive_start_stream_name: Option<String>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListShardsReq {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    next_token: Option<String>,
    exclusive_start_shard_id: Option<String>,
    max_results: Option<i64>,
    shard_filter: Option<ShardFilterReq>,
}

#[derive(Deserialize, serde::Serialize, Clone)]
#[serde(rename_all = "PascalCase")]
struct ShardFilterReq {
    #[serde(rename = "Type")]
    kind: String,
    shard_id: Option<String>,
    timestamp: Option<f64>,
}

#[derive(Deserialize, serde::Serialize)]
struct ListShardsToken {
    stream: String,
    created_ms: u64,
    after: Option<u64>,
    filter: Option<ShardFilterReq>,
    issued_ms: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordReq<'a> {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    #[serde(borrow)]
    data: Option<Cow<'a, str>>,
    #[serde(borrow)]
    partition_key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    explicit_hash_key: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsReq<'a> {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    #[serde(borrow, default)]
    records: Vec<PutRecordsEntry<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsEntry<'a> {
    #[serde(borrow)]
    data: Option<Cow<'a, str>>,
    #[serde(borrow)]
    partition_key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    explicit_hash_key: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetShardIteratorReq {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_id: Option<String>,
    shard_iterator_type: Option<String>,
    starting_sequence_number: Option<String>,
    timestamp: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetRecordsReq {
    shard_iterator: Option<String>,
    limit: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SplitShardReq {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_to_split: Option<String>,
    new_starting_hash_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MergeShardsReq {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_to_merge: Option<String>,
    adjacent_shard_to_merge: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateShardCountReq {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    target_shard_count: Option<i64>,
    scaling_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RetentionReq {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    retention_period_hours: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AddTagsReq {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RemoveTagsReq {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    #[serde(default)]
    tag_keys: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListTagsReq {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    exclusive_start_tag_key: Option<String>,
    limit: Option<i64>,
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| null_member(field))
}

fn null_member(field: &str) -> ApiError {
    ApiError::validation(format!(
        "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
    ))
}

struct Api<'a> {
    core: &'a KinesisCore,
    faults: &'a Faults,
}

impl Api<'_> {
    fn stream(
        &self,
        name: &Option<String>,
        arn: &Option<String>,
    ) -> Result<Arc<StreamHandle>, ApiError> {
        let name = match (name, arn) {
            (Some(name), arn) => {
                check_name("streamName", name)?;
                if let Some(arn) = arn
                    && self.core.name_from_arn(arn)? != *name
                {
                    return Err(ApiError::invalid_argument(
                        "StreamName and StreamARN name different streams",
                    ));
                }
                name.clone()
            }
            (None, Some(arn)) => self.core.name_from_arn(arn)?,
            (None, None) => {
                return Err(ApiError::invalid_argument(
                    "Either StreamName or StreamARN should be provided.",
                ));
            }
        };
        self.core.stream(&name)
    }

    fn create_stream(&self, req: CreateStreamReq) -> Result<Vec<u8>, ApiError> {
        let name = required(req.stream_name, "streamName")?;
        check_name("streamName", &name)?;
        let mode = match req
            .stream_mode_details
            .as_ref()
            .map(|m| m.stream_mode.as_str())
        {
            None | Some("PROVISIONED") => StreamMode::Provisioned,
            Some("ON_DEMAND") => StreamMode::OnDemand,
            Some(other) => {
                return Err(validation(
                    "streamModeDetails.streamMode",
                    other,
                    "Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]",
                ));
            }
        };
        let count = match req.shard_count {
            Some(n) => {
                check_range("shardCount", n, 1, i64::from(u32::MAX))?;
                Some(n as u32)
            }
            None => None,
        };
        self.core.create_stream(&name, count, mode)?;
        if let Some(tags) = req.tags {
            self.core.stream(&name)?.add_tags(tags)?;
        }
        Ok(b"{}".to_vec())
    }

    fn delete_stream(&self, req: StreamReq) -> Result<Vec<u8>, ApiError> {
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        self.core.delete_stream(handle.name())?;
        Ok(b"{}".to_vec())
    }

    fn describe_stream(&self, req: DescribeStreamReq) -> Result<Vec<u8>, ApiError> {
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        self.core.control(Control::DescribeStream)?;
        let limit = req.limit.unwrap_or(100);
        check_range("limit", limit, 1, 10_000)?;
        // Values above 100 are accepted, and at most 100 shards come back.
        let limit = limit.min(100);
        let after = match &req.exclusive_start_shard_id {
            Some(id) => Some(parse_shard_id(id).ok_or_else(|| {
                ApiError::not_found(format!(
                    "Shard {id} in stream {} does not exist",
                    handle.name()
                ))
            })?),
            None => None,
        };
        let summary = handle.summary();
        let all = handle.list_shards(&ShardFilter::All)?;
        let mut shards: Vec<&ShardInfo> = all
            .iter()
            .filter(|s| after.is_none_or(|a| parse_shard_id(&s.shard_id).is_some_and(|i| i > a)))
            .collect();
        let has_more = shards.len() > limit as usize;
        shards.truncate(limit as usize);
        to_body(json!({
            "StreamDescription": {
                "StreamName": summary.name,
                "StreamARN": summary.arn,
                "StreamStatus": summary.status.as_str(),
                "StreamModeDetails": { "StreamMode": summary.mode.as_str() },
                "Shards": shards.iter().map(|s| shard_json(s)).collect::<Vec<_>>(),
                "HasMoreShards": has_more,
                "RetentionPeriodHours": summary.retention_hours,
                "StreamCreationTimestamp": summary.created_ms as f64 / 1000.0,
                "EnhancedMonitoring": [{ "ShardLevelMetrics": [] }],
                "EncryptionType": "NONE",
            }
        }))
    }

    fn describe_stream_summary(&self, req: StreamReq) -> Result<Vec<u8>, ApiError> {
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        self.core.control(Control::DescribeStreamSummary)?;
        let s = handle.summary();
        to_body(json!({
            "StreamDescriptionSummary": {
                "StreamName": s.name,
                "StreamARN": s.arn,
                "StreamStatus": s.status.as_str(),
                "StreamModeDetails": { "StreamMode": s.mode.as_str() },
                "RetentionPeriodHours": s.retention_hours,
                "StreamCreationTimestamp": s.created_ms as f64 / 1000.0,
                "EnhancedMonitoring": [{ "ShardLevelMetrics": [] }],
                "EncryptionType": "NONE",
                "OpenShardCount": s.open_shard_count,
                "ConsumerCount": 0,
            }
        }))
    }

    fn list_streams(&self, req: ListStreamsReq) -> Result<Vec<u8>, ApiError> {
        let limit = req.limit.unwrap_or(100);
        check_range("limit", limit, 1, 10_000)?;
        // Values above 100 are accepted, and at most 100 streams come back.
        let limit = limit.min(100);
        let after = match &req.next_token {
            Some(token) => Some(
                URL_SAFE_NO_PAD
                    .decode(token)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| ApiError::invalid_argument("Invalid NextToken."))?,
            ),
            None => req.exclusive_start_stream_name.clone(),
        };
        let all = self.core.list_streams();
        let mut page: Vec<_> = all
            .into_iter()
            .filter(|s| after.as_ref().is_none_or(|a| s.name.as_str() > a.as_str()))
            .collect();
        let has_more = page.len() > limit as usize;
        page.truncate(limit as usize);
        let mut out = json!({
            "StreamNames": page.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
            "HasMoreStreams": has_more,
            "StreamSummaries": page.iter().map(|s| json!({
                "StreamName": s.name,
                "StreamARN": s.arn,
                "StreamStatus": s.status.as_str(),
                "StreamModeDetails": { "StreamMode": s.mode.as_str() },
                "StreamCreationTimestamp": s.created_ms as f64 / 1000.0,
            })).collect::<Vec<_>>(),
        });
        if has_more && let Some(last) = page.last() {
            out["NextToken"] = json!(URL_SAFE_NO_PAD.encode(&last.name));
        }
        to_body(out)
    }

    fn list_shards(&self, req: ListShardsReq) -> Result<Vec<u8>, ApiError> {
        let now = self.core.clock().now_ms();
        let (handle, after, filter_req, max) = if let Some(token) = &req.next_token {
            for (given, name) in [
                (req.stream_name.is_some(), "StreamName"),
                (req.stream_arn.is_some(), "StreamARN"),
                (
                    req.exclusive_start_shard_id.is_some(),
                    "ExclusiveStartShardId",
                ),
                (req.shard_filter.is_some(), "ShardFilter"),
            ] {
                if given {
                    return Err(ApiError::invalid_argument(format!(
                        "NextToken and {name} cannot be provided together."
                    )));
                }
            }
            let token: ListShardsToken = URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| ApiError::invalid_argument("Invalid NextToken."))?;
            if now.saturating_sub(token.issued_ms) > 300_000 {
                return Err(ApiError::new(
                    "ExpiredNextTokenException",
                    "The NextToken has expired.",
                ));
            }
            let handle = self.core.stream(&token.stream)?;
            if handle.created_ms() != token.created_ms {
                return Err(ApiError::invalid_argument(
                    "NextToken belongs to a stream that no longer exists.",
                ));
            }
            // Each call stands on its own: its own MaxResults, not the first call's.
            (handle, token.after, token.filter, req.max_results)
        } else {
            let handle = self.stream(&req.stream_name, &req.stream_arn)?;
            let after = match &req.exclusive_start_shard_id {
                Some(id) => Some(parse_shard_id(id).ok_or_else(|| {
                    validation("exclusiveStartShardId", id, "Member must be a shard id")
                })?),
                None => None,
            };
            (handle, after, req.shard_filter.clone(), req.max_results)
        };
        self.core.control(Control::ListShards(handle.name()))?;
        let max = max.unwrap_or(LIST_SHARDS_PAGE as i64);
        check_range("maxResults", max, 1, MAX_LIST_SHARDS_RESULTS as i64)?;
        // Values above 1000 are accepted, and at most 1000 shards come back.
        let max = max.min(LIST_SHARDS_PAGE as i64);
        if handle.status() == super::model::StreamStatus::Creating {
            return Err(ApiError::in_use(format!(
                "Stream {} under account {} is in CREATING state.",
                handle.name(),
                self.core.config().account_id
            )));
        }
        let filter = match &filter_req {
            None => ShardFilter::All,
            Some(f) => match f.kind.as_str() {
                "AT_LATEST" => ShardFilter::AtLatest,
                "AT_TRIM_HORIZON" => ShardFilter::AtTrimHorizon,
                "FROM_TRIM_HORIZON" => ShardFilter::FromTrimHorizon,
                "AFTER_SHARD_ID" => {
                    let id = f.shard_id.as_deref().ok_or_else(|| {
                        ApiError::invalid_argument(
                            "ShardFilter type AFTER_SHARD_ID requires ShardId",
                        )
                    })?;
                    ShardFilter::AfterShardId(parse_shard_id(id).ok_or_else(|| {
                        ApiError::invalid_argument(format!("Invalid ShardId {id} in ShardFilter"))
                    })?)
                }
                "AT_TIMESTAMP" | "FROM_TIMESTAMP" => {
                    let ts = f.timestamp.ok_or_else(|| {
                        ApiError::invalid_argument(format!(
                            "ShardFilter type {} requires Timestamp",
                            f.kind
                        ))
                    })?;
                    if f.kind == "AT_TIMESTAMP" {
                        ShardFilter::AtTimestamp(secs_to_ms(ts))
                    } else {
                        ShardFilter::FromTimestamp(secs_to_ms(ts))
                    }
                }
                other => {
                    return Err(validation(
                        "shardFilter.type",
                        other,
                        "Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]",
                    ));
                }
            },
        };
        let all = handle.list_shards(&filter)?;
        let mut page: Vec<&ShardInfo> = all
            .iter()
            .filter(|s| after.is_none_or(|a| parse_shard_id(&s.shard_id).is_some_and(|i| i > a)))
            .collect();
        let has_more = page.len() > max as usize;
        page.truncate(max as usize);
        let mut out = json!({ "Shards": page.iter().map(|s| shard_json(s)).collect::<Vec<_>>() });
        if has_more {
            let token = ListShardsToken {
                stream: handle.name().to_owned(),
                created_ms: handle.created_ms(),
                after: page.last().and_then(|s| parse_shard_id(&s.shard_id)),
                filter: filter_req,
                issued_ms: now,
            };
            let token =
                serde_json::to_vec(&token).map_err(|e| ApiError::internal(e.to_string()))?;
            out["NextToken"] = json!(URL_SAFE_NO_PAD.encode(token));
        }
        to_body(out)
    }

    /// Validates one record and appends its partition key and decoded data to `buf`.
    /// `index` is the record's position in a `PutRecords` call (for error messages only).
    fn prepare(
        &self,
        index: Option<usize>,
        data: Option<&str>,
        partition_key: Option<&str>,
        explicit_hash_key: Option<&str>,
        buf: &mut Vec<u8>,
    ) -> Result<(u128, usize), ApiError> {
        // Built only when an error needs it: this runs for every record.
        let field = |name: &str| match index {
            Some(i) => format!("records.{}.member.{name}", i + 1),
            None => name.to_owned(),
        };
        let data = data.ok_or_else(|| null_member(&field("data")))?;
        let pk = partition_key.ok_or_else(|| null_member(&field("partitionKey")))?;
        let chars = pk.chars().count();
        if !(1..=MAX_PARTITION_KEY_CHARS).contains(&chars) {
            return Err(validation(
                &field("partitionKey"),
                pk,
                "Member must have length between 1 and 256",
            ));
        }
        let hash_key = match explicit_hash_key {
            Some(ehk) => {
                let digits_ok = !ehk.is_empty()
                    && ehk.len() <= 39
                    && ehk.bytes().all(|b| b.is_ascii_digit())
                    && (ehk == "0" || !ehk.starts_with('0'));
                if !digits_ok {
                    return Err(validation(
                        &field("explicitHashKey"),
                        ehk,
                        "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})",
                    ));
                }
                shared_proto::parse_hash_key(ehk).map_err(|_| {
                    ApiError::invalid_argument(format!(
                        "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {ehk}"
                    ))
                })?
            }
            None => shared_proto::partition_key_hash(pk),
        };
        let start = buf.len();
        buf.extend_from_slice(pk.as_bytes());
        BASE64.decode_vec(data, buf).map_err(|e| {
            ApiError::serialization(format!("Invalid base64 in {}: {e}", field("data")))
        })?;
        let data_len = buf.len() - start - pk.len();
        if data_len > MAX_RECORD_SIZE {
            return Err(validation(
                &field("data"),
                "<blob>",
                "Member must have length less than or equal to 1048576",
            ));
        }
        if data_len + pk.len() > MAX_RECORD_SIZE {
            return Err(ApiError::invalid_argument(format!(
                "Record size {} (data + partition key) exceeds the limit of 1 MiB.",
                data_len + pk.len()
            )));
        }
        Ok((hash_key, pk.len()))
    }

    fn put(
        &self,
        handle: &StreamHandle,
        op: &str,
        inputs: Vec<PutInput>,
    ) -> Result<Vec<PutOutcome>, ApiError> {
        self.faults.with_shard_rules(SERVICE, op, |rules| {
            // (shard, throttle?, rule id) of the rules that concern this stream's shards.
            let faults: Vec<(u64, bool, u64)> = rules
                .iter()
                .filter_map(|f| {
                    let index = handle.shard_index(&f.shard_id).ok()?;
                    match f.kind {
                        FaultKind::Throttle => Some((index, true, f.id)),
                        FaultKind::InternalError | FaultKind::Error { .. } => {
                            Some((index, false, f.id))
                        }
                        _ => None,
                    }
                })
                .collect();
            let applied: Vec<(u64, bool)> = faults.iter().map(|&(s, t, _)| (s, t)).collect();
            let outcomes = match handle.put(inputs, &applied) {
                Ok(o) => o,
                Err(e) => return (Err(e), Vec::new()),
            };
            let hit = faults
                .iter()
                .filter(|(shard, _, _)| {
                    outcomes.iter().any(|o| {
                        matches!(o, PutOutcome::Throttled { shard: s } | PutOutcome::Failed { shard: s } if s == shard)
                    })
                })
                .map(|&(_, _, id)| id)
                .collect();
            (Ok(outcomes), hit)
        })
    }

    fn put_record(&self, req: PutRecordReq<'_>) -> Result<Vec<u8>, ApiError> {
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        let mut buf = Vec::new();
        let (hash_key, pk_len) = self.prepare(
            None,
            req.data.as_deref(),
            req.partition_key.as_deref(),
            req.explicit_hash_key.as_deref(),
            &mut buf,
        )?;
        let input = PutInput::new(hash_key, Bytes::from(buf), pk_len as u16);
        let outcome = self.put(&handle, "PutRecord", vec![input])?;
        match outcome.first() {
            Some(PutOutcome::Stored { shard, pos }) => to_body(json!({
                "ShardId": shared_proto::limits::shard_id(*shard),
                "SequenceNumber": handle.sequence_number(*shard, *pos),
                "EncryptionType": "NONE",
            })),
            Some(PutOutcome::Throttled { shard }) => Err(ApiError::throughput_exceeded(
                handle.put_throttled_message(*shard),
            )),
            _ => Err(ApiError::internal("Internal service failure.")),
        }
    }

    fn put_records(&self, req: PutRecordsReq<'_>) -> Result<Vec<u8>, ApiError> {
        let count = req.records.len();
        if count == 0 || count > MAX_PUT_RECORDS_COUNT {
            return Err(validation(
                "records",
                &format!("{count} records"),
                "Member must have length less than or equal to 500 and greater than or equal to 1",
            ));
        }
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        let mut buf = Vec::with_capacity(
            req.records
                .iter()
                .map(|r| r.data.as_ref().map_or(0, |d| d.len() * 3 / 4) + 32)
                .sum(),
        );
        let mut spans = Vec::with_capacity(count);
        for (i, r) in req.records.iter().enumerate() {
            let start = buf.len();
            let (hash_key, pk_len) = self.prepare(
                Some(i),
                r.data.as_deref(),
                r.partition_key.as_deref(),
                r.explicit_hash_key.as_deref(),
                &mut buf,
            )?;
            spans.push((hash_key, start, buf.len(), pk_len));
        }
        if buf.len() > MAX_PUT_RECORDS_SIZE {
            return Err(ApiError::invalid_argument(format!(
                "Records size {} exceeds the 5 MiB limit of a PutRecords request.",
                buf.len()
            )));
        }
        let buf = Bytes::from(buf);
        let inputs = spans
            .into_iter()
            .map(|(h, s, e, pk)| PutInput::new(h, buf.slice(s..e), pk as u16))
            .collect();
        let outcomes = self.put(&handle, "PutRecords", inputs)?;
        let failed = outcomes
            .iter()
            .filter(|o| !matches!(o, PutOutcome::Stored { .. }))
            .count();
        let mut out = String::with_capacity(40 + outcomes.len() * 110);
        let _ = write!(
            out,
            "{{\"FailedRecordCount\":{failed},\"EncryptionType\":\"NONE\",\"Records\":["
        );
        for (i, o) in outcomes.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match o {
                PutOutcome::Stored { shard, pos } => {
                    let _ = write!(
                        out,
                        "{{\"ShardId\":\"{}\",\"SequenceNumber\":\"{}\"}}",
                        shared_proto::limits::shard_id(*shard),
                        handle.sequence_number(*shard, *pos)
                    );
                }
                PutOutcome::Throttled { shard } => {
                    let _ = write!(
                        out,
                        "{{\"ErrorCode\":\"ProvisionedThroughputExceededException\",\"ErrorMessage\":{}}}",
                        Value::from(handle.put_throttled_message(*shard))
                    );
                }
                PutOutcome::Failed { .. } => {
                    out.push_str("{\"ErrorCode\":\"InternalFailure\",\"ErrorMessage\":\"Internal service failure.\"}");
                }
            }
        }
        out.push_str("]}");
        Ok(out.into_bytes())
    }

    fn get_shard_iterator(&self, req: GetShardIteratorReq) -> Result<Vec<u8>, ApiError> {
        let shard_id = required(req.shard_id, "shardId")?;
        check_name("shardId", &shard_id)?;
        let kind = required(req.shard_iterator_type, "shardIteratorType")?;
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        let start = match kind.as_str() {
            "TRIM_HORIZON" => IteratorStart::TrimHorizon,
            "LATEST" => IteratorStart::Latest,
            "AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER" => {
                let seq = req.starting_sequence_number.ok_or_else(|| {
                    ApiError::invalid_argument(format!(
                        "StartingSequenceNumber is required for ShardIteratorType {kind}"
                    ))
                })?;
                if kind == "AT_SEQUENCE_NUMBER" {
                    IteratorStart::AtSequenceNumber(seq)
                } else {
                    IteratorStart::AfterSequenceNumber(seq)
                }
            }
            "AT_TIMESTAMP" => {
                IteratorStart::AtTimestamp(secs_to_ms(req.timestamp.ok_or_else(|| {
                    ApiError::invalid_argument(
                        "Timestamp is required for ShardIteratorType AT_TIMESTAMP",
                    )
                })?))
            }
            other => {
                return Err(validation(
                    "shardIteratorType",
                    other,
                    "Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, AT_SEQUENCE_NUMBER, TRIM_HORIZON, LATEST, AT_TIMESTAMP]",
                ));
            }
        };
        self.shard_fault("GetShardIterator", &shard_id)?;
        self.core
            .control(Control::GetShardIterator(handle.name(), &shard_id))?;
        let (shard, pos) = handle.iterator_position(&shard_id, &start)?;
        to_body(json!({ "ShardIterator": handle.iterator(shard, pos) }))
    }

    fn shard_fault(&self, op: &str, shard_id: &str) -> Result<(), ApiError> {
        if let Some(kind) = self.faults.take_scoped(SERVICE, op, Some(shard_id))
            && let Some(err) = kind.to_error(op)
        {
            return Err(err);
        }
        Ok(())
    }

    fn get_records(&self, req: GetRecordsReq) -> Result<Vec<u8>, ApiError> {
        let iterator = required(req.shard_iterator, "shardIterator")?;
        if iterator.is_empty() || iterator.len() > 512 {
            return Err(validation(
                "shardIterator",
                &iterator,
                "Member must have length between 1 and 512",
            ));
        }
        let limit = req.limit.unwrap_or(10_000);
        check_range("limit", limit, 1, 10_000)?;
        let (handle, shard, pos) = self.core.resolve_iterator(&iterator)?;
        self.shard_fault("GetRecords", &shared_proto::limits::shard_id(shard))?;
        let out = handle.get_records(shard, pos, limit as usize)?;
        let mut body = String::with_capacity(
            128 + out
                .records
                .iter()
                .map(|(_, r)| r.data().len() * 4 / 3 + 160)
                .sum::<usize>(),
        );
        body.push_str("{\"Records\":[");
        for (i, (pos, r)) in out.records.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            let _ = write!(
                body,
                "{{\"SequenceNumber\":\"{}\",\"ApproximateArrivalTimestamp\":{},\"PartitionKey\":{},\"Data\":\"",
                handle.sequence_number(out.shard, *pos),
                epoch_secs(r.arrival_ms()),
                Value::from(r.partition_key())
            );
            BASE64_OUT.encode_string(r.data(), &mut body);
            body.push_str("\"}");
        }
        let _ = write!(
            body,
            "],\"MillisBehindLatest\":{}",
            out.millis_behind_latest
        );
        if let Some(next) = out.next_pos {
            let _ = write!(
                body,
                ",\"NextShardIterator\":\"{}\"",
                handle.iterator(out.shard, next)
            );
        }
        if let Some(children) = &out.child_shards {
            let children: Vec<Value> = children.iter().map(child_json).collect();
            let _ = write!(body, ",\"ChildShards\":{}", Value::from(children));
        }
        body.push('}');
        Ok(body.into_bytes())
    }

    fn split_shard(&self, req: SplitShardReq) -> Result<Vec<u8>, ApiError> {
        let shard = required(req.shard_to_split, "shardToSplit")?;
        let key = required(req.new_starting_hash_key, "newStartingHashKey")?;
        check_name("shardToSplit", &shard)?;
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        self.core.control(Control::Reshard)?;
        handle.split_shard(&shard, &key)?;
        Ok(b"{}".to_vec())
    }

    fn merge_shards(&self, req: MergeShardsReq) -> Result<Vec<u8>, ApiError> {
        let a = required(req.shard_to_merge, "shardToMerge")?;
        let b = required(req.adjacent_shard_to_merge, "adjacentShardToMerge")?;
        check_name("shardToMerge", &a)?;
        check_name("adjacentShardToMerge", &b)?;
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        self.core.control(Control::Reshard)?;
        handle.merge_shards(&a, &b)?;
        Ok(b"{}".to_vec())
    }

    fn update_shard_count(&self, req: UpdateShardCountReq) -> Result<Vec<u8>, ApiError> {
        let target = required(req.target_shard_count, "targetShardCount")?;
        check_range("targetShardCount", target, 1, 100_000)?;
        let scaling = required(req.scaling_type, "scalingType")?;
        if scaling != "UNIFORM_SCALING" {
            return Err(validation(
                "scalingType",
                &scaling,
                "Member must satisfy enum value set: [UNIFORM_SCALING]",
            ));
        }
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        self.core
            .control(Control::UpdateShardCount(handle.name()))?;
        let current = handle.update_shard_count(target as u32)?;
        if current != target as u32 {
            self.core.scaled(handle.name());
        }
        to_body(json!({
            "StreamName": handle.name(),
            "StreamARN": handle.arn(),
            "CurrentShardCount": current,
            "TargetShardCount": target,
        }))
    }

    fn retention(&self, req: RetentionReq, increase: bool) -> Result<Vec<u8>, ApiError> {
        let hours = required(req.retention_period_hours, "retentionPeriodHours")?;
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        let hours = u32::try_from(hours).map_err(|_| {
            ApiError::invalid_argument(format!("Retention period {hours} hours is out of range."))
        })?;
        handle.set_retention(hours, increase)?;
        Ok(b"{}".to_vec())
    }

    fn add_tags(&self, req: AddTagsReq) -> Result<Vec<u8>, ApiError> {
        if req.tags.is_empty() || req.tags.len() > 10 {
            return Err(validation(
                "tags",
                &format!("{} tags", req.tags.len()),
                "Member must have length between 1 and 10",
            ));
        }
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        handle.add_tags(req.tags)?;
        Ok(b"{}".to_vec())
    }

    fn remove_tags(&self, req: RemoveTagsReq) -> Result<Vec<u8>, ApiError> {
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        handle.remove_tags(&req.tag_keys);
        Ok(b"{}".to_vec())
    }

    fn list_tags(&self, req: ListTagsReq) -> Result<Vec<u8>, ApiError> {
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        let limit = req.limit.unwrap_or(50);
        check_range("limit", limit, 1, 50)?;
        let tags = handle.tags();
        let mut page: Vec<_> = tags
            .iter()
            .filter(|(k, _)| {
                req.exclusive_start_tag_key
                    .as_ref()
                    .is_none_or(|s| k.as_str() > s.as_str())
            })
            .collect();
        let has_more = page.len() > limit as usize;
        page.truncate(limit as usize);
        to_body(json!({
            "Tags": page.iter().map(|(k, v)| json!({ "Key": k, "Value": v })).collect::<Vec<_>>(),
            "HasMoreTags": has_more,
        }))
    }

    fn describe_limits(&self) -> Result<Vec<u8>, ApiError> {
        let open: usize = self
            .core
            .list_streams()
            .iter()
            .map(|s| s.open_shard_count)
            .sum();
        to_body(json!({
            "ShardLimit": self.core.config().max_shards_per_stream,
            "OpenShardCount": open,
            "OnDemandStreamCount": 0,
            "OnDemandStreamCountLimit": 50,
        }))
    }
}
