//! Resharding a stream while a run goes on: split, merge, `UpdateShardCount`, each waiting
//! until the stream is `ACTIVE` again.

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::types::{ScalingType, Shard, StreamStatus};
use std::time::Duration;

fn describe<E: ProvideErrorMetadata + std::fmt::Debug>(what: &str, e: E) -> String {
    format!("{what}: {}", e.message().unwrap_or(&format!("{e:?}")))
}

/// The open shards of `stream`, in hash-key order.
pub async fn open_shards(client: &Client, stream: &str) -> Result<Vec<Shard>, String> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let req = match &token {
            Some(t) => client.list_shards().next_token(t),
            None => client.list_shards().stream_name(stream),
        };
        let out = req.send().await.map_err(|e| describe("ListShards", e))?;
        shards.extend(out.shards.unwrap_or_default());
        token = out.next_token;
        if token.is_none() {
            break;
        }
    }
    shards.retain(|s| {
        s.sequence_number_range()
            .is_some_and(|r| r.ending_sequence_number().is_none())
    });
    shards.sort_by_key(start_key);
    Ok(shards)
}

fn start_key(s: &Shard) -> u128 {
    s.hash_key_range()
        .and_then(|r| r.starting_hash_key().parse().ok())
        .unwrap_or(0)
}

fn end_key(s: &Shard) -> u128 {
    s.hash_key_range()
        .and_then(|r| r.ending_hash_key().parse().ok())
        .unwrap_or(0)
}

/// Waits until `stream` is `ACTIVE` (at most 30 s).
pub async fn wait_active(client: &Client, stream: &str) -> Result<(), String> {
    for _ in 0..300 {
        let out = client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .map_err(|e| describe("DescribeStreamSummary", e))?;
        if out
            .stream_description_summary()
            .is_some_and(|d| d.stream_status() == &StreamStatus::Active)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("{stream} did not become ACTIVE"))
}

/// Splits the `index`-th open shard (in hash-key order) at the middle of its range.
pub async fn split_shard(client: &Client, stream: &str, index: usize) -> Result<String, String> {
    let shards = open_shards(client, stream).await?;
    let shard = shards.get(index).ok_or("no such shard")?;
    let middle = start_key(shard) + (end_key(shard) - start_key(shard)) / 2 + 1;
    client
        .split_shard()
        .stream_name(stream)
        .shard_to_split(shard.shard_id())
        .new_starting_hash_key(middle.to_string())
        .send()
        .await
        .map_err(|e| describe("SplitShard", e))?;
    wait_active(client, stream).await?;
    Ok(shard.shard_id().to_owned())
}

/// Merges the `index`-th and the next open shard (adjacent in hash-key order).
pub async fn merge_adjacent(
    client: &Client,
    stream: &str,
    index: usize,
) -> Result<(String, String), String> {
    let shards = open_shards(client, stream).await?;
    let (a, b) = match (shards.get(index), shards.get(index + 1)) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err("no such pair of shards".into()),
    };
    client
        .merge_shards()
        .stream_name(stream)
        .shard_to_merge(a.shard_id())
        .adjacent_shard_to_merge(b.shard_id())
        .send()
        .await
        .map_err(|e| describe("MergeShards", e))?;
    wait_active(client, stream).await?;
    Ok((a.shard_id().to_owned(), b.shard_id().to_owned()))
}

/// `UpdateShardCount` to `target` open shards (uniform scaling).
pub async fn update_shard_count(client: &Client, stream: &str, target: i32) -> Result<(), String> {
    client
        .update_shard_count()
        .stream_name(stream)
        .target_shard_count(target)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .map_err(|e| describe("UpdateShardCount", e))?;
    wait_active(client, stream).await
}
