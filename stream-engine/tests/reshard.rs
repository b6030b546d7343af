//! Splits, merges and uniform scaling: the full parent/child picture through ListShards,
//! DescribeStream and GetRecords (`ChildShards`).

mod common;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ScalingType, Shard};
use common::*;
use shared_proto::{HashKeyRange, partition_key_hash};
use std::collections::HashMap;
use std::time::Duration;

fn range_of(s: &Shard) -> HashKeyRange {
    let r = s.hash_key_range().expect("range");
    HashKeyRange::parse(r.starting_hash_key(), r.ending_hash_key()).expect("decimal range")
}

async fn put_many(
    k: &aws_sdk_kinesis::Client,
    stream: &str,
    prefix: &str,
    n: usize,
) -> Vec<(String, String)> {
    let mut entries = Vec::new();
    for i in 0..n {
        entries.push(
            PutRecordsRequestEntry::builder()
                .partition_key(format!("{prefix}-{i}"))
                .data(Blob::new(format!("{prefix}-{i}")))
                .build()
                .expect("entry"),
        );
    }
    let out = k
        .put_records()
        .stream_name(stream)
        .set_records(Some(entries))
        .send()
        .await
        .expect("put");
    assert_eq!(out.failed_record_count(), Some(0));
    out.records()
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                format!("{prefix}-{i}"),
                r.shard_id().expect("shard").to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_then_merge_shows_the_full_parent_child_picture() {
    let engine = engine().await;
    let k = engine.kinesis_client();
    create(&k, "rs", 2).await;
    let before = put_many(&k, "rs", "before", 100).await;

    // Split shard 0 in the middle of its range.
    let parent = &shards(&k, "rs").await[0];
    let pr = range_of(parent);
    let mid = pr.start() + (pr.end() - pr.start()) / 2;
    k.split_shard()
        .stream_name("rs")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key(mid.to_string())
        .send()
        .await
        .expect("split");
    let all = shards(&k, "rs").await;
    assert_eq!(all.len(), 4);
    let by_id: HashMap<&str, &Shard> = all.iter().map(|s| (s.shard_id(), s)).collect();
    let s0 = by_id["shardId-000000000000"];
    assert!(
        s0.sequence_number_range()
            .expect("seq")
            .ending_sequence_number()
            .is_some(),
        "parent is closed"
    );
    let c2 = by_id["shardId-000000000002"];
    let c3 = by_id["shardId-000000000003"];
    for c in [c2, c3] {
        assert_eq!(c.parent_shard_id(), Some("shardId-000000000000"));
        assert_eq!(c.adjacent_parent_shard_id(), None);
        assert!(
            c.sequence_number_range()
                .expect("seq")
                .ending_sequence_number()
                .is_none()
        );
    }
    assert_eq!(
        range_of(c2),
        HashKeyRange::new(pr.start(), mid - 1).expect("range")
    );
    assert_eq!(
        range_of(c3),
        HashKeyRange::new(mid, pr.end()).expect("range")
    );

    // Records written after the split land only on open shards (the children or shard 1).
    let after = put_many(&k, "rs", "after", 300).await;
    assert!(after.iter().all(|(_, s)| s != "shardId-000000000000"));
    assert!(after.iter().any(|(_, s)| s == "shardId-000000000002"));
    for (key, shard) in &after {
        assert!(range_of(by_id[shard.as_str()]).contains(partition_key_hash(key)));
    }

    // Reading the parent to its end yields its records, no next iterator, and ChildShards.
    let parent_read = read_shard(&k, "rs", "shardId-000000000000").await;
    let expected_in_parent = before
        .iter()
        .filter(|(_, s)| s == "shardId-000000000000")
        .count();
    assert_eq!(parent_read.records.len(), expected_in_parent);
    let mut children = parent_read
        .children
        .expect("closed shard ends with children");
    children.sort();
    assert_eq!(children, ["shardId-000000000002", "shardId-000000000003"]);

    // DescribeStream shows the same picture.
    let desc = k
        .describe_stream()
        .stream_name("rs")
        .send()
        .await
        .expect("describe");
    assert_eq!(desc.stream_description().expect("d").shards().len(), 4);

    // Merge the two children back: one child with both parents.
    k.merge_shards()
        .stream_name("rs")
        .shard_to_merge("shardId-000000000002")
        .adjacent_shard_to_merge("shardId-000000000003")
        .send()
        .await
        .expect("merge");
    let all = shards(&k, "rs").await;
    assert_eq!(all.len(), 5);
    let merged = all
        .iter()
        .find(|s| s.shard_id() == "shardId-000000000004")
        .expect("merged child");
    assert_eq!(merged.parent_shard_id(), Some("shardId-000000000002"));
    assert_eq!(
        merged.adjacent_parent_shard_id(),
        Some("shardId-000000000003")
    );
    assert_eq!(range_of(merged), pr);
    let read = read_shard(&k, "rs", "shardId-000000000003").await;
    assert_eq!(read.children, Some(vec!["shardId-000000000004".to_owned()]));
    let latest = put_many(&k, "rs", "latest", 200).await;
    assert!(
        latest
            .iter()
            .all(|(_, s)| s == "shardId-000000000004" || s == "shardId-000000000001")
    );

    // GetRecords ChildShards carry both parents of a merge.
    let it = k
        .get_shard_iterator()
        .stream_name("rs")
        .shard_id("shardId-000000000002")
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::Latest)
        .send()
        .await
        .expect("it")
        .shard_iterator
        .expect("it");
    let end = k
        .get_records()
        .shard_iterator(it)
        .send()
        .await
        .expect("end");
    assert!(end.next_shard_iterator().is_none());
    let child = &end.child_shards()[0];
    assert_eq!(child.shard_id(), "shardId-000000000004");
    let mut parents = child.parent_shards().to_vec();
    parents.sort();
    assert_eq!(parents, ["shardId-000000000002", "shardId-000000000003"]);

    // Invalid reshards.
    let err = k
        .split_shard()
        .stream_name("rs")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("5")
        .send()
        .await
        .expect_err("closed");
    assert_eq!(code(&err), "InvalidArgumentException");
    let err = k
        .split_shard()
        .stream_name("rs")
        .shard_to_split("shardId-000000000001")
        .new_starting_hash_key("5")
        .send()
        .await
        .expect_err("outside");
    assert_eq!(code(&err), "InvalidArgumentException");
    let err = k
        .split_shard()
        .stream_name("rs")
        .shard_to_split("shardId-000000000099")
        .new_starting_hash_key("5")
        .send()
        .await
        .expect_err("unknown");
    assert_eq!(code(&err), "ResourceNotFoundException");
    create(&k, "three", 3).await;
    // SplitShard and MergeShards share 5 calls per second per account, refused ones included.
    engine.advance_clock(Duration::from_secs(1));
    let err = k
        .merge_shards()
        .stream_name("three")
        .shard_to_merge("shardId-000000000000")
        .adjacent_shard_to_merge("shardId-000000000002")
        .send()
        .await
        .expect_err("not adjacent");
    assert_eq!(code(&err), "InvalidArgumentException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uniform_scaling_reaches_even_ranges_with_at_most_two_parents() {
    let engine = engine().await;
    let k = engine.kinesis_client();
    for (from, to) in [(2, 3), (4, 2), (3, 5), (5, 3)] {
        let name = format!("scale-{from}-{to}");
        create(&k, &name, from).await;
        put_many(&k, &name, "x", 50).await;
        let out = k
            .update_shard_count()
            .stream_name(&name)
            .target_shard_count(to)
            .scaling_type(ScalingType::UniformScaling)
            .send()
            .await
            .expect("scale");
        assert_eq!(out.current_shard_count(), Some(from));
        assert_eq!(out.target_shard_count(), Some(to));
        let all = shards(&k, &name).await;
        let mut open: Vec<HashKeyRange> = all
            .iter()
            .filter(|s| {
                s.sequence_number_range()
                    .expect("seq")
                    .ending_sequence_number()
                    .is_none()
            })
            .map(range_of)
            .collect();
        open.sort();
        assert_eq!(
            open,
            HashKeyRange::split_evenly(to as u32),
            "{from} -> {to}"
        );
        // Every closed shard's children exist and the graph is consistent.
        let ids: Vec<&str> = all.iter().map(|s| s.shard_id()).collect();
        for s in &all {
            for p in [s.parent_shard_id(), s.adjacent_parent_shard_id()]
                .into_iter()
                .flatten()
            {
                assert!(ids.contains(&p));
            }
        }
        // Nothing lost: all 50 records are still readable from the original shards.
        let mut total = 0;
        for i in 0..from {
            total += read_shard(&k, &name, &format!("shardId-{i:012}"))
                .await
                .records
                .len();
        }
        assert_eq!(total, 50);
    }
    create(&k, "limits", 2).await;
    let err = k
        .update_shard_count()
        .stream_name("limits")
        .target_shard_count(5)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .expect_err("more than double");
    assert_eq!(code(&err), "LimitExceededException");
}
