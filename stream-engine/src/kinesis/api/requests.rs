//! Request bodies, as serde types.

use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct StreamReq {
    pub(super) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(super) stream_arn: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CreateStreamReq {
    pub(super) stream_name: Option<String>,
    pub(super) shard_count: Option<i64>,
    pub(super) stream_mode_details: Option<StreamModeDetails>,
    pub(super) tags: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct StreamModeDetails {
    pub(super) stream_mode: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DescribeStreamReq {
    pub(super) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(super) stream_arn: Option<String>,
    pub(super) limit: Option<i64>,
    pub(super) exclusive_start_shard_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListStreamsReq {
    pub(super) limit: Option<i64>,
    pub(super) exclusive_start_stream_name: Option<String>,
    pub(super) next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListShardsReq {
    pub(super) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(super) stream_arn: Option<String>,
    pub(super) next_token: Option<String>,
    pub(super) exclusive_start_shard_id: Option<String>,
    pub(super) max_results: Option<i64>,
    pub(super) shard_filter: Option<ShardFilterReq>,
}

#[derive(Deserialize, serde::Serialize, Clone)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ShardFilterReq {
    #[serde(rename = "Type")]
    pub(super) kind: String,
    pub(super) shard_id: Option<String>,
    pub(super) timestamp: Option<f64>,
}

#[derive(Deserialize, serde::Serialize)]
pub(super) struct ListShardsToken {
    pub(super) stream: String,
    pub(super) created_ms: u64,
    pub(super) after: Option<u64>,
    pub(super) filter: Option<ShardFilterReq>,
    pub(super) issued_ms: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct PutRecordReq<'a> {
    pub(super) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(super) stream_arn: Option<String>,
    #[serde(borrow)]
    pub(super) data: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) partition_key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) explicit_hash_key: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct PutRecordsReq<'a> {
    pub(super) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(super) stream_arn: Option<String>,
    #[serde(borrow, default)]
    pub(super) records: Vec<PutRecordsEntry<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct PutRecordsEntry<'a> {
    #[serde(borrow)]
    pub(super) data: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) partition_key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) explicit_hash_key: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GetShardIteratorReq {
    pub(super) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(super) stream_arn: Option<String>,
    pub(super) shard_id: Option<String>,
    pub(super) shard_iterator_type: Option<String>,
    pub(super) starting_sequence_number: Option<String>,
    pub(super) timestamp: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GetRecordsReq {
    pub(super) shard_iterator: Option<String>,
    pub(super) limit: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SplitShardReq {
    pub(super) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(super) stream_arn: Option<String>,
    pub(super) shard_to_split: Option<String>,
    pub(super) new_starting_hash_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct MergeShardsReq {
    pub(super) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(super) stream_arn: Option<String>,
    pub(super) shard_to_merge: Option<String>,
    pub(super) adjacent_shard_to_merge: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct UpdateShardCountReq {
    pub(super) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(super) stream_arn: Option<String>,
    pub(super) target_shard_count: Option<i64>,
    pub(super) scaling_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RetentionReq {
    pub(super) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(super) stream_arn: Option<String>,
    pub(super) retention_period_hours: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct AddTagsReq {
    pub(super) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(super) stream_arn: Option<String>,
    #[serde(default)]
    pub(super) tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RemoveTagsReq {
    pub(super) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(super) stream_arn: Option<String>,
    #[serde(default)]
    pub(super) tag_keys: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListTagsReq {
    pub(super) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(super) stream_arn: Option<String>,
    pub(super) exclusive_start_tag_key: Option<String>,
    pub(super) limit: Option<i64>,
}
