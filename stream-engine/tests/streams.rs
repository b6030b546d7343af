//! Streams, records, routing, iterators and listing, through `aws-sdk-kinesis` over HTTP.

mod common;

use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{
    PutRecordsRequestEntry, ShardFilter, ShardFilterType, ShardIteratorType, StreamMode,
    StreamModeDetails, StreamStatus,
};
use common::*;
use shared_proto::{HashKeyRange, partition_key_hash};
use std::collections::HashMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_lifecycle_and_descriptions() {
    let engine = engine().await;
    let k = engine.kinesis_client();
    create(&k, "alpha", 3).await;
    k.create_stream()
        .stream_name("beta")
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .expect("mode"),
        )
        .send()
        .await
        .expect("on-demand stream");

    let desc = k
        .describe_stream()
        .stream_name("alpha")
        .send()
        .await
        .expect("describe");
    let d = desc.stream_description().expect("description");
    assert_eq!(d.stream_status(), &StreamStatus::Active);
    assert_eq!(d.shards().len(), 3);
    assert_eq!(d.retention_period_hours(), 24);
    assert_eq!(
        d.stream_arn(),
        "arn:aws:kinesis:us-east-1:000000000000:stream/alpha"
    );
    let ranges = HashKeyRange::split_evenly(3);
    for (i, s) in d.shards().iter().enumerate() {
        assert_eq!(s.shard_id(), format!("shardId-{i:012}"));
        let r = s.hash_key_range().expect("range");
        assert_eq!(r.starting_hash_key(), ranges[i].start().to_string());
        assert_eq!(r.ending_hash_key(), ranges[i].end().to_string());
        let seq = s.sequence_number_range().expect("seq range");
        assert_eq!(seq.starting_sequence_number().len(), 56);
        assert!(seq.ending_sequence_number().is_none());
    }
    // DescribeStream paging with Limit and ExclusiveStartShardId.
    let page = k
        .describe_stream()
        .stream_name("alpha")
        .limit(2)
        .send()
        .await
        .expect("page");
    let p = page.stream_description().expect("description");
    assert!(p.has_more_shards());
    assert_eq!(p.shards().len(), 2);
    let rest = k
        .describe_stream()
        .stream_name("alpha")
        .exclusive_start_shard_id("shardId-000000000001")
        .send()
        .await
        .expect("rest");
    let r = rest.stream_description().expect("description");
    assert!(!r.has_more_shards());
    assert_eq!(r.shards().len(), 1);
    assert_eq!(r.shards()[0].shard_id(), "shardId-000000000002");

    let summary = k
        .describe_stream_summary()
        .stream_name("beta")
        .send()
        .await
        .expect("summary");
    let s = summary.stream_description_summary().expect("summary");
    assert_eq!(
        s.open_shard_count(),
        4,
        "on-demand streams start with 4 shards"
    );
    assert_eq!(
        s.stream_mode_details().map(|m| m.stream_mode().clone()),
        Some(StreamMode::OnDemand)
    );

    // Addressing by ARN.
    let by_arn = k
        .describe_stream_summary()
        .stream_arn("arn:aws:kinesis:us-east-1:000000000000:stream/alpha")
        .send()
        .await
        .expect("by arn");
    assert_eq!(
        by_arn
            .stream_description_summary()
            .expect("s")
            .stream_name(),
        "alpha"
    );

    let list = k.list_streams().send().await.expect("list");
    assert_eq!(list.stream_names(), ["alpha", "beta"]);
    assert_eq!(list.stream_summaries().len(), 2);
    let paged = k.list_streams().limit(1).send().await.expect("list page");
    assert!(paged.has_more_streams());
    let next = k
        .list_streams()
        .next_token(paged.next_token().expect("token"))
        .send()
        .await
        .expect("next page");
    assert_eq!(next.stream_names(), ["beta"]);

    // Tags.
    k.add_tags_to_stream()
        .stream_name("alpha")
        .tags("team", "data")
        .tags("env", "test")
        .send()
        .await
        .expect("tags");
    let tags = k
        .list_tags_for_stream()
        .stream_name("alpha")
        .send()
        .await
        .expect("list tags");
    let tags: HashMap<_, _> = tags
        .tags()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().map(str::to_owned)))
        .collect();
    assert_eq!(tags.get("team"), Some(&Some("data".to_owned())));
    assert_eq!(tags.len(), 2);

    // Retention changes.
    k.increase_stream_retention_period()
        .stream_name("alpha")
        .retention_period_hours(48)
        .send()
        .await
        .expect("increase");
    let err = k
        .decrease_stream_retention_period()
        .stream_name("alpha")
        .retention_period_hours(72)
        .send()
        .await
        .expect_err("longer");
    assert_eq!(code(&err), "InvalidArgumentException");
    let err = k
        .increase_stream_retention_period()
        .stream_name("alpha")
        .retention_period_hours(9000)
        .send()
        .await
        .expect_err("too long");
    assert_eq!(code(&err), "InvalidArgumentException");
    k.decrease_stream_retention_period()
        .stream_name("alpha")
        .retention_period_hours(24)
        .send()
        .await
        .expect("decrease");

    // Duplicate and delete.
    let err = k
        .create_stream()
        .stream_name("alpha")
        .shard_count(1)
        .send()
        .await
        .expect_err("exists");
    assert_eq!(code(&err), "ResourceInUseException");
    k.delete_stream()
        .stream_name("beta")
        .send()
        .await
        .expect("delete");
    let err = k
        .describe_stream()
        .stream_name("beta")
        .send()
        .await
        .expect_err("gone");
    assert_eq!(code(&err), "ResourceNotFoundException");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_transitions_follow_the_configured_delay() {
    let engine = engine_with(|c| c.stream_delay = Duration::from_millis(300)).await;
    let k = engine.kinesis_client_without_retries();
    create(&k, "slow", 2).await;
    let status = |k: aws_sdk_kinesis::Client| async move {
        k.describe_stream_summary()
            .stream_name("slow")
            .send()
            .await
            .expect("summary")
            .stream_description_summary()
            .expect("s")
            .stream_status()
            .clone()
    };
    assert_eq!(status(k.clone()).await, StreamStatus::Creating);
    let err = k
        .put_record()
        .stream_name("slow")
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await
        .expect_err("creating");
    assert_eq!(code(&err), "ResourceNotFoundException");
    let err = k
        .list_shards()
        .stream_name("slow")
        .send()
        .await
        .expect_err("creating");
    assert_eq!(code(&err), "ResourceInUseException");
    engine.advance_clock(Duration::from_millis(300));
    assert_eq!(status(k.clone()).await, StreamStatus::Active);

    k.update_shard_count()
        .stream_name("slow")
        .target_shard_count(4)
        .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
        .send()
        .await
        .expect("scale");
    assert_eq!(status(k.clone()).await, StreamStatus::Updating);
    // Reads and writes go on while UPDATING; a second reshard is refused.
    put(&k, "slow", "k", b"during update").await;
    let err = k
        .split_shard()
        .stream_name("slow")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("1000")
        .send()
        .await
        .expect_err("second reshard");
    assert_eq!(code(&err), "ResourceInUseException");
    engine.advance_clock(Duration::from_millis(300));
    assert_eq!(status(k.clone()).await, StreamStatus::Active);
    let open = k
        .list_shards()
        .stream_name("slow")
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AtLatest)
                .build()
                .expect("filter"),
        )
        .send()
        .await
        .expect("open shards");
    assert_eq!(open.shards().len(), 4);

    k.delete_stream()
        .stream_name("slow")
        .send()
        .await
        .expect("delete");
    assert_eq!(status(k.clone()).await, StreamStatus::Deleting);
    engine.advance_clock(Duration::from_millis(300));
    let err = k
        .describe_stream_summary()
        .stream_name("slow")
        .send()
        .await
        .expect_err("deleted");
    assert_eq!(code(&err), "ResourceNotFoundException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_route_by_hash_key_with_increasing_sequence_numbers() {
    let engine = engine().await;
    let k = engine.kinesis_client();
    create(&k, "s", 4).await;
    let ranges = HashKeyRange::split_evenly(4);
    let mut last: HashMap<String, String> = HashMap::new();
    for i in 0..200 {
        let key = format!("key-{i}");
        let (shard, seq) = put(&k, "s", &key, format!("v{i}").as_bytes()).await;
        assert_eq!(seq.len(), 56, "{seq}");
        let expected = ranges
            .iter()
            .position(|r| r.contains(partition_key_hash(&key)))
            .expect("a shard");
        assert_eq!(shard, format!("shardId-{expected:012}"));
        if let Some(prev) = last.get(&shard) {
            assert_eq!(seq_cmp(prev, &seq), std::cmp::Ordering::Less);
        }
        last.insert(shard, seq);
    }
    // Explicit hash keys override the partition key.
    let out = k
        .put_records()
        .stream_name("s")
        .records(
            PutRecordsRequestEntry::builder()
                .partition_key("a")
                .explicit_hash_key("0")
                .data(Blob::new("low"))
                .build()
                .expect("entry"),
        )
        .records(
            PutRecordsRequestEntry::builder()
                .partition_key("a")
                .explicit_hash_key(u128::MAX.to_string())
                .data(Blob::new("high"))
                .build()
                .expect("entry"),
        )
        .send()
        .await
        .expect("put records");
    assert_eq!(out.failed_record_count(), Some(0));
    assert_eq!(out.records()[0].shard_id(), Some("shardId-000000000000"));
    assert_eq!(out.records()[1].shard_id(), Some("shardId-000000000003"));

    // Read back: every record once, in order, with data, key and arrival time.
    let mut total = 0;
    for shard in shards(&k, "s").await {
        let read = read_shard(&k, "s", shard.shard_id()).await;
        assert!(read.children.is_none());
        for w in read.records.windows(2) {
            assert_eq!(
                seq_cmp(w[0].sequence_number(), w[1].sequence_number()),
                std::cmp::Ordering::Less
            );
        }
        for r in &read.records {
            assert!(r.approximate_arrival_timestamp().is_some());
            let data = std::str::from_utf8(r.data().as_ref()).expect("utf8");
            let key = r.partition_key().expect("partition key");
            if key != "a" {
                assert_eq!(format!("v{}", &key[4..]), data);
            }
        }
        total += read.records.len();
    }
    assert_eq!(total, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_iterator_type_starts_where_it_should() {
    let engine = engine().await;
    let k = engine.kinesis_client();
    create(&k, "it", 1).await;
    let mut seqs = Vec::new();
    for i in 0..5 {
        seqs.push(put(&k, "it", "k", format!("r{i}").as_bytes()).await.1);
    }
    engine.advance_clock(Duration::from_secs(10));
    let later = DateTime::from_millis(engine.kinesis().clock().now_ms() as i64);
    for i in 5..8 {
        seqs.push(put(&k, "it", "k", format!("r{i}").as_bytes()).await.1);
    }
    let engine = &engine;
    let first = |kind: ShardIteratorType, seq: Option<&str>, ts: Option<DateTime>| {
        let k = k.clone();
        let seq = seq.map(str::to_owned);
        async move {
            // A second per read: the shard allows 5 GetRecords calls per second.
            engine.advance_clock(Duration::from_secs(1));
            let it = k
                .get_shard_iterator()
                .stream_name("it")
                .shard_id("shardId-000000000000")
                .shard_iterator_type(kind)
                .set_starting_sequence_number(seq)
                .set_timestamp(ts)
                .send()
                .await
                .expect("iterator")
                .shard_iterator
                .expect("iterator");
            let out = k
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .expect("records");
            out.records()
                .iter()
                .map(|r| String::from_utf8(r.data().as_ref().to_vec()).expect("utf8"))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        first(ShardIteratorType::TrimHorizon, None, None)
            .await
            .len(),
        8
    );
    assert!(
        first(ShardIteratorType::Latest, None, None)
            .await
            .is_empty()
    );
    assert_eq!(
        first(ShardIteratorType::AtSequenceNumber, Some(&seqs[3]), None).await[0],
        "r3"
    );
    assert_eq!(
        first(ShardIteratorType::AfterSequenceNumber, Some(&seqs[3]), None).await[0],
        "r4"
    );
    assert_eq!(
        first(ShardIteratorType::AtTimestamp, None, Some(later)).await,
        ["r5", "r6", "r7"]
    );

    // LATEST sees records put after it was issued; Limit and MillisBehindLatest.
    let latest = k
        .get_shard_iterator()
        .stream_name("it")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::Latest)
        .send()
        .await
        .expect("latest")
        .shard_iterator
        .expect("it");
    put(&k, "it", "k", b"new").await;
    put(&k, "it", "k", b"newer").await;
    engine.advance_clock(Duration::from_secs(1));
    let page = k
        .get_records()
        .shard_iterator(&latest)
        .limit(1)
        .send()
        .await
        .expect("page");
    assert_eq!(page.records().len(), 1);
    assert_eq!(page.records()[0].data().as_ref(), b"new");
    let next = k
        .get_records()
        .shard_iterator(page.next_shard_iterator().expect("next"))
        .send()
        .await
        .expect("next");
    assert_eq!(next.records()[0].data().as_ref(), b"newer");
    assert_eq!(next.millis_behind_latest(), Some(0));

    // A sequence number of another shard or stream is rejected.
    create(&k, "other", 1).await;
    let err = k
        .get_shard_iterator()
        .stream_name("other")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(&seqs[0])
        .send()
        .await
        .expect_err("foreign sequence number");
    assert_eq!(code(&err), "InvalidArgumentException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iterators_expire_after_their_ttl() {
    let engine = engine_with(|c| c.iterator_ttl = Duration::from_secs(300)).await;
    let k = engine.kinesis_client_without_retries();
    create(&k, "exp", 1).await;
    put(&k, "exp", "k", b"x").await;
    let it = k
        .get_shard_iterator()
        .stream_name("exp")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("iterator")
        .shard_iterator
        .expect("it");
    let page = k
        .get_records()
        .shard_iterator(&it)
        .send()
        .await
        .expect("fresh iterator works");
    let next = page.next_shard_iterator().expect("next").to_owned();
    engine.advance_clock(Duration::from_secs(301));
    let err = k
        .get_records()
        .shard_iterator(&it)
        .send()
        .await
        .expect_err("expired");
    assert_eq!(code(&err), "ExpiredIteratorException");
    let err = k
        .get_records()
        .shard_iterator(&next)
        .send()
        .await
        .expect_err("expired too");
    assert_eq!(code(&err), "ExpiredIteratorException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_caps_are_those_aws_documents() {
    let engine = engine().await;
    let k = engine.kinesis_client();
    create(&k, "wide", 1200).await;
    let page = k
        .list_shards()
        .stream_name("wide")
        .max_results(5000)
        .send()
        .await
        .expect("accepted above 1000");
    assert_eq!(page.shards().len(), 1000, "at most 1000 per call");
    let rest = k
        .list_shards()
        .next_token(page.next_token().expect("more"))
        .send()
        .await
        .expect("rest");
    assert_eq!(rest.shards().len(), 200);
    let d = k
        .describe_stream()
        .stream_name("wide")
        .limit(5000)
        .send()
        .await
        .expect("describe");
    let desc = d.stream_description().expect("desc");
    assert_eq!(
        desc.shards().len(),
        100,
        "DescribeStream returns at most 100"
    );
    assert!(desc.has_more_shards());
    for i in 0..120 {
        create(&k, &format!("s{i:03}"), 1).await;
    }
    let streams = k.list_streams().limit(5000).send().await.expect("list");
    assert_eq!(
        streams.stream_names().len(),
        100,
        "ListStreams returns at most 100"
    );
    assert!(streams.has_more_streams());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shards_pages_and_filters() {
    let engine = engine().await;
    let k = engine.kinesis_client();
    create(&k, "ls", 5).await;
    let t0 = DateTime::from_millis(engine.kinesis().clock().now_ms() as i64);
    engine.advance_clock(Duration::from_secs(5));
    k.split_shard()
        .stream_name("ls")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("1000")
        .send()
        .await
        .expect("split");
    engine.advance_clock(Duration::from_secs(5));
    let t1 = DateTime::from_millis(engine.kinesis().clock().now_ms() as i64);

    let first = k
        .list_shards()
        .stream_name("ls")
        .max_results(3)
        .send()
        .await
        .expect("page 1");
    assert_eq!(first.shards().len(), 3);
    let token = first.next_token().expect("more pages").to_owned();
    let err = k
        .list_shards()
        .stream_name("ls")
        .next_token(&token)
        .send()
        .await
        .expect_err("token with name");
    assert_eq!(code(&err), "InvalidArgumentException");
    for bad in [
        k.list_shards()
            .next_token(&token)
            .exclusive_start_shard_id("shardId-000000000001"),
        k.list_shards().next_token(&token).shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AtLatest)
                .build()
                .expect("f"),
        ),
        k.list_shards()
            .next_token(&token)
            .stream_arn("arn:aws:kinesis:us-east-1:000000000000:stream/ls"),
    ] {
        let err = bad.send().await.expect_err("token with another parameter");
        assert_eq!(code(&err), "InvalidArgumentException");
    }
    // Each call stands on its own: its own MaxResults, else the default (1000).
    let second = k
        .list_shards()
        .next_token(&token)
        .max_results(2)
        .send()
        .await
        .expect("page 2");
    assert_eq!(second.shards().len(), 2);
    let third = k
        .list_shards()
        .next_token(second.next_token().expect("page 3"))
        .send()
        .await
        .expect("page 3");
    assert_eq!(third.shards().len(), 2, "not the first call's MaxResults");
    assert!(third.next_token().is_none());
    assert_eq!(shards(&k, "ls").await.len(), 7);

    let ids = |f: ShardFilter| {
        let k = k.clone();
        async move {
            k.list_shards()
                .stream_name("ls")
                .shard_filter(f)
                .send()
                .await
                .expect("filtered")
                .shards()
                .iter()
                .map(|s| s.shard_id()[8..].parse::<u32>().expect("number"))
                .collect::<Vec<_>>()
        }
    };
    let filter = |t: ShardFilterType| ShardFilter::builder().r#type(t);
    assert_eq!(
        ids(filter(ShardFilterType::AtLatest).build().expect("f")).await,
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(
        ids(filter(ShardFilterType::AtTrimHorizon).build().expect("f")).await,
        [0, 1, 2, 3, 4]
    );
    assert_eq!(
        ids(filter(ShardFilterType::FromTrimHorizon).build().expect("f")).await,
        [0, 1, 2, 3, 4, 5, 6]
    );
    assert_eq!(
        ids(filter(ShardFilterType::AfterShardId)
            .shard_id("shardId-000000000003")
            .build()
            .expect("f"))
        .await,
        [4, 5, 6]
    );
    assert_eq!(
        ids(filter(ShardFilterType::AtTimestamp)
            .timestamp(t0)
            .build()
            .expect("f"))
        .await,
        [0, 1, 2, 3, 4]
    );
    assert_eq!(
        ids(filter(ShardFilterType::AtTimestamp)
            .timestamp(t1)
            .build()
            .expect("f"))
        .await,
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(
        ids(filter(ShardFilterType::FromTimestamp)
            .timestamp(t1)
            .build()
            .expect("f"))
        .await,
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(
        ids(filter(ShardFilterType::FromTimestamp)
            .timestamp(t0)
            .build()
            .expect("f"))
        .await,
        [0, 1, 2, 3, 4, 5, 6]
    );
    let err = k
        .list_shards()
        .stream_name("ls")
        .shard_filter(filter(ShardFilterType::AfterShardId).build().expect("f"))
        .send()
        .await
        .expect_err("missing shard id");
    assert_eq!(code(&err), "InvalidArgumentException");
    // ExclusiveStartShardId.
    let after = k
        .list_shards()
        .stream_name("ls")
        .exclusive_start_shard_id("shardId-000000000004")
        .send()
        .await
        .expect("after");
    assert_eq!(after.shards().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_numbers_increase_with_gaps_and_iterators_handle_them() {
    let engine = engine().await;
    let k = engine.kinesis_client();
    create(&k, "gaps", 1).await;
    let mut seqs = Vec::new();
    for i in 0..50 {
        let r = k
            .put_record()
            .stream_name("gaps")
            .partition_key("k")
            .data(Blob::new(format!("{i}")))
            .send()
            .await
            .expect("put");
        seqs.push(r.sequence_number().to_owned());
    }
    let tail = |s: &str| -> u128 { s[32..].parse().expect("digits") };
    for w in seqs.windows(2) {
        assert_eq!(w[0].len(), 56);
        assert_eq!(w[0][..32], w[1][..32], "same stream and shard");
        assert!(
            tail(&w[1]) > tail(&w[0]) + 1,
            "not dense: {} then {}",
            w[0],
            w[1]
        );
    }
    let first_data = |it: ShardIteratorType, seq: String| {
        let k = k.clone();
        async move {
            let it = k
                .get_shard_iterator()
                .stream_name("gaps")
                .shard_id("shardId-000000000000")
                .shard_iterator_type(it)
                .starting_sequence_number(seq)
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
            String::from_utf8(r.records()[0].data().as_ref().to_vec()).expect("utf8")
        }
    };
    assert_eq!(
        first_data(ShardIteratorType::AtSequenceNumber, seqs[10].clone()).await,
        "10"
    );
    assert_eq!(
        first_data(ShardIteratorType::AfterSequenceNumber, seqs[10].clone()).await,
        "11"
    );
    // A number in the gap between two records: AT and AFTER both start at the next one.
    let gap = format!("{}{:024}", &seqs[10][..32], tail(&seqs[10]) + 1);
    assert!(tail(&gap) < tail(&seqs[11]));
    assert_eq!(
        first_data(ShardIteratorType::AtSequenceNumber, gap.clone()).await,
        "11"
    );
    assert_eq!(
        first_data(ShardIteratorType::AfterSequenceNumber, gap).await,
        "11"
    );
}
