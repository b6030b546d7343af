//! Helpers for the producer's tests.
#![allow(dead_code)]

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::types::ShardIteratorType;
use bytes::Bytes;
use shared_proto::{HashKeyRange, deaggregate, partition_key_hash};
use std::time::Duration;
use stream_engine::{Engine, EngineConfig, Limits};

pub async fn engine(limits: bool) -> Engine {
    Engine::start(
        EngineConfig {
            limits: if limits {
                Limits::default()
            } else {
                Limits::disabled()
            },
            retention_check_interval: None,
            ..EngineConfig::default()
        },
        "127.0.0.1:0",
    )
    .await
    .expect("engine")
}

pub async fn create(client: &Client, name: &str, shards: i32) {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .expect("create");
}

/// A user record read back from the stream.
#[derive(Debug, Clone)]
pub struct ReadRecord {
    pub shard: String,
    pub sequence: String,
    pub sub: u64,
    pub partition_key: String,
    pub data: Bytes,
    /// Inside an aggregate whose shard does not own its hash key (every KCL drops it).
    pub out_of_range: bool,
    /// Inside an aggregate with at least one out-of-range sub-record (the Java KCL and the
    /// other KCL ports drop such an aggregate whole).
    pub misplaced_aggregate: bool,
    pub aggregated: bool,
}

/// Reads every shard (parents before children: shard number order is creation order) and
/// deaggregates like a KCL.
pub async fn read_all(client: &Client, stream: &str) -> Vec<ReadRecord> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let req = match &token {
            Some(t) => client.list_shards().next_token(t),
            None => client.list_shards().stream_name(stream),
        };
        let resp = req.send().await.expect("list shards");
        shards.extend(resp.shards().iter().cloned());
        token = resp.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let mut out = Vec::new();
    for s in shards {
        let r = s.hash_key_range().expect("range");
        let range = HashKeyRange::parse(r.starting_hash_key(), r.ending_hash_key()).expect("range");
        let mut it = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(s.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("iterator")
            .shard_iterator
            .expect("it");
        loop {
            let resp = client
                .get_records()
                .shard_iterator(&it)
                .send()
                .await
                .expect("get records");
            for rec in resp.records() {
                let data = Bytes::copy_from_slice(rec.data().as_ref());
                match deaggregate(&data) {
                    Ok(users) => {
                        let misplaced = users
                            .iter()
                            .any(|u| !range.contains(u.hash_key().expect("hash")));
                        for u in users {
                            let hash = u.hash_key().expect("hash");
                            out.push(ReadRecord {
                                misplaced_aggregate: misplaced,
                                shard: s.shard_id().to_owned(),
                                sequence: rec.sequence_number().to_owned(),
                                sub: u.sub_sequence_number,
                                partition_key: u.partition_key.clone(),
                                data: u.data.clone(),
                                out_of_range: !range.contains(hash),
                                aggregated: true,
                            });
                        }
                    }
                    Err(_) => out.push(ReadRecord {
                        misplaced_aggregate: false,
                        shard: s.shard_id().to_owned(),
                        sequence: rec.sequence_number().to_owned(),
                        sub: 0,
                        partition_key: rec.partition_key().unwrap_or("").to_owned(),
                        data,
                        out_of_range: !range
                            .contains(partition_key_hash(rec.partition_key().unwrap_or(""))),
                        aggregated: false,
                    }),
                }
            }
            match resp.next_shard_iterator() {
                Some(next)
                    if !(resp.records().is_empty() && resp.millis_behind_latest() == Some(0)) =>
                {
                    it = next.to_owned()
                }
                _ => break,
            }
        }
    }
    out
}

/// Waits for a condition, polling every 5 ms, up to `limit`.
pub async fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = tokio::time::Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}

/// Checks exactly-once delivery and per-key order of `key -> [0, 1, 2, …]` payloads
/// `"{key}:{n}"` as a KCL that drops misplaced aggregates whole (the Java KCL) sees them.
pub fn check_whole_drop_delivery(
    read: &[ReadRecord],
    expected_per_key: &std::collections::HashMap<String, usize>,
) {
    use std::collections::HashMap;
    let mut next: HashMap<String, usize> = HashMap::new();
    let mut delivered = 0;
    // Parents are read before children (shard order), matching a KCL's processing order.
    for r in read
        .iter()
        .filter(|r| !r.out_of_range && !r.misplaced_aggregate)
    {
        let (key, n) = key_and_number(r);
        let want = next.entry(key.clone()).or_insert(0);
        assert_eq!(
            n, *want,
            "key {key}: expected record {want}, found {n} (loss, order or duplicate)"
        );
        *want += 1;
        delivered += 1;
    }
    assert_eq!(next.len(), expected_per_key.len(), "every key delivered");
    for (k, &count) in expected_per_key {
        assert_eq!(next.get(k).copied(), Some(count), "all records of {k}");
    }
    assert_eq!(delivered, expected_per_key.values().sum::<usize>());
}

/// Checks at-least-once delivery, first occurrences in per-key order, as a consumer that
/// drops out-of-range sub-records one by one sees them; returns the duplicates.
pub fn check_per_record_delivery(
    read: &[ReadRecord],
    expected_per_key: &std::collections::HashMap<String, usize>,
) -> usize {
    use std::collections::HashMap;
    let mut next: HashMap<String, usize> = HashMap::new();
    let mut duplicates = 0;
    for r in read.iter().filter(|r| !r.out_of_range) {
        let (key, n) = key_and_number(r);
        let want = next.entry(key.clone()).or_insert(0);
        if n < *want {
            duplicates += 1;
            continue;
        }
        assert_eq!(n, *want, "key {key}: expected record {want}, found {n}");
        *want += 1;
    }
    for (k, &count) in expected_per_key {
        assert_eq!(next.get(k).copied(), Some(count), "all records of {k}");
    }
    duplicates
}

fn key_and_number(r: &ReadRecord) -> (String, usize) {
    let text = std::str::from_utf8(&r.data).expect("utf8");
    let (key, n) = text.rsplit_once(':').expect("key:n");
    assert_eq!(key, r.partition_key);
    (key.to_owned(), n.parse().expect("n"))
}
