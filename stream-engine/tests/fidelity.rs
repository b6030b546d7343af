//! Places where code that works on the engine would otherwise break on AWS: timestamps of
//! reshards, shard filters at the boundary, the shard limit, on-demand streams, retention on
//! read, and fault rules used exactly as often as asked. All on the manual clock.

mod common;

use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{
    ScalingType, ShardFilter, ShardFilterType, ShardIteratorType, StreamMode, StreamModeDetails,
};
use common::*;
use std::time::Duration;

fn now(engine: &stream_engine::Engine) -> u64 {
    engine.kinesis().clock().now_ms()
}

async fn from_timestamp(k: &aws_sdk_kinesis::Client, stream: &str, ms: u64) -> Vec<String> {
    k.list_shards()
        .stream_name(stream)
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::FromTimestamp)
                .timestamp(DateTime::from_millis(ms as i64))
                .build()
                .expect("filter"),
        )
        .send()
        .await
        .expect("list")
        .shards()
        .iter()
        .map(|s| s.shard_id().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reshard_happens_at_its_scheduled_time_and_from_timestamp_includes_that_instant() {
    let engine = engine_with(|c| c.stream_delay = Duration::from_secs(10)).await;
    let k = engine.kinesis_client();
    k.create_stream()
        .stream_name("sched")
        .shard_count(1)
        .send()
        .await
        .expect("create");
    engine.advance_clock(Duration::from_secs(10));
    let t0 = now(&engine);
    k.split_shard()
        .stream_name("sched")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((u128::MAX / 2).to_string())
        .send()
        .await
        .expect("split");
    // Nobody asks for a minute; the split still happened 10 s after it was requested.
    engine.advance_clock(Duration::from_secs(60));
    let closed_at = t0 + 10_000;
    let at = from_timestamp(&k, "sched", closed_at).await;
    assert!(
        at.contains(&"shardId-000000000000".to_owned()),
        "closed exactly at the timestamp: included ({at:?})"
    );
    let after = from_timestamp(&k, "sched", closed_at + 1).await;
    assert!(
        !after.contains(&"shardId-000000000000".to_owned()),
        "closed before: excluded, so the parent closed at its scheduled time ({after:?})"
    );
    assert_eq!(after.len(), 2);
    // AT_TIMESTAMP: open at the instant, so a shard closed exactly then is included.
    let at_ts = k
        .list_shards()
        .stream_name("sched")
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AtTimestamp)
                .timestamp(DateTime::from_millis(closed_at as i64))
                .build()
                .expect("filter"),
        )
        .send()
        .await
        .expect("list");
    let ids: Vec<&str> = at_ts.shards().iter().map(|s| s.shard_id()).collect();
    assert!(ids.contains(&"shardId-000000000000"), "{ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shard_limit_counts_open_shards_only() {
    let engine = engine_with(|c| c.max_shards_per_stream = 3).await;
    let k = engine.kinesis_client();
    create(&k, "lim", 2).await;
    let split = |shard: &'static str, at: u128| {
        let k = k.clone();
        async move {
            k.split_shard()
                .stream_name("lim")
                .shard_to_split(shard)
                .new_starting_hash_key(at.to_string())
                .send()
                .await
        }
    };
    split("shardId-000000000000", u128::MAX / 4)
        .await
        .expect("3 open");
    let err = split("shardId-000000000001", u128::MAX / 4 * 3)
        .await
        .expect_err("4 open");
    assert_eq!(code(&err), "LimitExceededException");
    k.merge_shards()
        .stream_name("lim")
        .shard_to_merge("shardId-000000000002")
        .adjacent_shard_to_merge("shardId-000000000003")
        .send()
        .await
        .expect("merge: 2 open, 5 in all");
    // SplitShard and MergeShards share 5 calls per second per account (the refused split
    // above was tried 3 times by the SDK).
    engine.advance_clock(Duration::from_secs(1));
    split("shardId-000000000004", u128::MAX / 8)
        .await
        .expect("3 open of 7: closed shards do not count");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_shard_count_is_refused_on_an_on_demand_stream() {
    let engine = engine().await;
    let k = engine.kinesis_client();
    k.create_stream()
        .stream_name("od")
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .expect("mode"),
        )
        .send()
        .await
        .expect("create");
    let err = k
        .update_shard_count()
        .stream_name("od")
        .target_shard_count(8)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .expect_err("on-demand");
    assert_eq!(code(&err), "ValidationException");
    let err = k
        .split_shard()
        .stream_name("od")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("1000")
        .send()
        .await
        .expect_err("on-demand streams scale themselves");
    assert_eq!(code(&err), "ValidationException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_past_retention_is_never_returned_even_before_the_sweep() {
    let engine = engine().await;
    let k = engine.kinesis_client();
    create(&k, "ret", 1).await;
    k.put_record()
        .stream_name("ret")
        .partition_key("k")
        .data(Blob::new("old"))
        .send()
        .await
        .expect("put");
    engine.advance_clock(Duration::from_secs(23 * 3600));
    k.put_record()
        .stream_name("ret")
        .partition_key("k")
        .data(Blob::new("new"))
        .send()
        .await
        .expect("put");
    engine.advance_clock(Duration::from_secs(2 * 3600));
    // No sweep has run (the engine's background check is off in tests).
    let it = k
        .get_shard_iterator()
        .stream_name("ret")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("iterator")
        .shard_iterator
        .expect("it");
    let r = k
        .get_records()
        .shard_iterator(it)
        .send()
        .await
        .expect("get");
    let data: Vec<&[u8]> = r.records().iter().map(|r| r.data().as_ref()).collect();
    assert_eq!(
        data,
        vec![b"new".as_ref()],
        "the 25-hour-old record is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_rules_are_used_exactly_as_often_as_asked() {
    let engine = engine().await;
    let k = engine.kinesis_client_without_retries();
    create(&k, "fr", 1).await;
    // A latency rule first does not hide the throttle rule behind it.
    engine
        .faults()
        .add_latency("PutRecord", Duration::from_millis(1), Some(1));
    engine.faults().throttle_next("PutRecord", 1);
    let err = k
        .put_record()
        .stream_name("fr")
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await
        .expect_err("throttled after the delay");
    assert_eq!(code(&err), "ProvisionedThroughputExceededException");
    // A count = 1 shard rule throttles one of many concurrent calls, never two.
    engine
        .faults()
        .throttle_shard_next("PutRecord", "shardId-000000000000", 1);
    let calls = (0..16).map(|i| {
        let k = k.clone();
        async move {
            k.put_record()
                .stream_name("fr")
                .partition_key(format!("k{i}"))
                .data(Blob::new("x"))
                .send()
                .await
        }
    });
    let results = futures::future::join_all(calls).await;
    let throttled = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(throttled, 1, "{results:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_calls_are_limited_at_their_documented_rates() {
    let engine = engine().await;
    let k = engine.kinesis_client_without_retries();
    create(&k, "cp", 2).await;
    // DescribeStream: 10 per second for the account.
    for _ in 0..10 {
        k.describe_stream()
            .stream_name("cp")
            .send()
            .await
            .expect("within the rate");
    }
    let err = k
        .describe_stream()
        .stream_name("cp")
        .send()
        .await
        .expect_err("11th in the same second");
    assert_eq!(code(&err), "LimitExceededException");
    // DescribeStreamSummary has its own budget of 20.
    for _ in 0..20 {
        k.describe_stream_summary()
            .stream_name("cp")
            .send()
            .await
            .expect("within the rate");
    }
    assert!(
        k.describe_stream_summary()
            .stream_name("cp")
            .send()
            .await
            .is_err()
    );
    // GetShardIterator: 5 per second per shard; another shard has its own.
    let iterator = |shard: &'static str| {
        k.get_shard_iterator()
            .stream_name("cp")
            .shard_id(shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
    };
    for _ in 0..5 {
        iterator("shardId-000000000000")
            .await
            .expect("within the rate");
    }
    let err = iterator("shardId-000000000000").await.expect_err("6th");
    assert_eq!(code(&err), "LimitExceededException");
    iterator("shardId-000000000001").await.expect("other shard");
    // A second later, all budgets are back.
    engine.advance_clock(Duration::from_secs(1));
    iterator("shardId-000000000000").await.expect("refilled");
    k.describe_stream()
        .stream_name("cp")
        .send()
        .await
        .expect("refilled");
    // UpdateShardCount: 10 scalings per stream in a rolling day.
    for i in 0..10 {
        let target = if i % 2 == 0 { 4 } else { 2 };
        k.update_shard_count()
            .stream_name("cp")
            .target_shard_count(target)
            .scaling_type(ScalingType::UniformScaling)
            .send()
            .await
            .expect("scaling within the day's budget");
        engine.advance_clock(Duration::from_secs(1));
    }
    let err = k
        .update_shard_count()
        .stream_name("cp")
        .target_shard_count(4)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .expect_err("11th in a day");
    assert_eq!(code(&err), "LimitExceededException");
    engine.advance_clock(Duration::from_secs(24 * 3600));
    k.update_shard_count()
        .stream_name("cp")
        .target_shard_count(4)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .expect("a day later");
}
