//! Engine throughput: `PutRecords` (500 × 100-byte records per call) from 1 and 8 concurrent
//! clients with limits off, then `GetRecords` read-back, and memory per stored record.
//!
//! `cargo bench -p stream-engine --bench throughput` (release build). The engine runs on its
//! own 2-thread runtime; the SDK clients on another, as if in a second process.

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use std::time::Instant;
use stream_engine::{Engine, EngineConfig, Limits};

const SHARDS: i32 = 8;
const PER_CALL: usize = 500;

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

fn batch(client: usize, call: usize) -> Vec<PutRecordsRequestEntry> {
    (0..PER_CALL)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("c{client}-k{}", (call * PER_CALL + i) % 10_000))
                .data(Blob::new(vec![b'x'; 100]))
                .build()
                .expect("entry")
        })
        .collect()
}

async fn put_phase(k: &aws_sdk_kinesis::Client, clients: usize, calls_each: usize) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            for call in 0..calls_each {
                let out = k
                    .put_records()
                    .stream_name("bench")
                    .set_records(Some(batch(c, call)))
                    .send()
                    .await
                    .expect("put records");
                assert_eq!(out.failed_record_count(), Some(0));
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    (clients * calls_each * PER_CALL) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let engine = server_rt
        .block_on(Engine::start(
            EngineConfig {
                limits: Limits::disabled(),
                retention_check_interval: None,
                ..EngineConfig::default()
            },
            "127.0.0.1:0",
        ))
        .expect("engine");
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let k = engine.kinesis_client_without_retries();
    client_rt.block_on(async {
        k.create_stream().stream_name("bench").shard_count(SHARDS).send().await.expect("create");
        // Warm-up: connections, allocator.
        put_phase(&k, 8, 5).await;
        let rss_before = rss_bytes();
        let (records_before, bytes_before) = engine.kinesis().stream("bench").expect("stream").stored();

        let one = put_phase(&k, 1, 200).await;
        println!("PutRecords, 1 client:  {one:>10.0} records/s");
        let eight = put_phase(&k, 8, 100).await;
        println!("PutRecords, 8 clients: {eight:>10.0} records/s");

        let (records, bytes) = engine.kinesis().stream("bench").expect("stream").stored();
        let rss_after = rss_bytes();
        let new_records = (records - records_before) as f64;
        let payload = (bytes - bytes_before) as f64;
        let overhead = (rss_after.saturating_sub(rss_before) as f64 - payload) / new_records;
        println!(
            "stored {new_records} records, {:.1} MB payload; RSS grew {:.1} MB: {overhead:.0} bytes per record beyond payload",
            payload / 1e6,
            rss_after.saturating_sub(rss_before) as f64 / 1e6
        );

        let start = Instant::now();
        let mut read = 0usize;
        for s in 0..SHARDS {
            let mut it = k
                .get_shard_iterator()
                .stream_name("bench")
                .shard_id(format!("shardId-{s:012}"))
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .expect("iterator")
                .shard_iterator
                .expect("it");
            loop {
                let out = k.get_records().shard_iterator(&it).send().await.expect("get");
                read += out.records().len();
                if out.records().is_empty() {
                    break;
                }
                it = out.next_shard_iterator().expect("open shard").to_owned();
            }
        }
        println!(
            "GetRecords read-back:  {:>10.0} records/s ({read} records)",
            read as f64 / start.elapsed().as_secs_f64()
        );
        assert_eq!(read, records);
    });
    drop(engine);
}
