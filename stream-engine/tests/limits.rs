//! Throughput limits, concurrent writers and retention.

mod common;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use common::*;
use std::collections::HashMap;
use std::time::Duration;
use stream_engine::Limits;

fn entries(prefix: &str, n: usize, size: usize) -> Vec<PutRecordsRequestEntry> {
    (0..n)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("{prefix}-{i}"))
                .explicit_hash_key("1") // every record to shard 0
                .data(Blob::new(vec![b'x'; size]))
                .build()
                .expect("entry")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_throttled_per_record_at_the_shard_limits() {
    // Lower rates than Kinesis so one request exceeds them: the check does not depend on timing.
    let engine = engine_with(|c| {
        c.limits.shard_write_records_per_sec = 100;
        c.limits.shard_write_bytes_per_sec = 102_400;
    })
    .await;
    let k = engine.kinesis_client_without_retries();
    create(&k, "w", 2).await;
    let out = k
        .put_records()
        .stream_name("w")
        .set_records(Some(entries("b", 300, 10)))
        .send()
        .await
        .expect("put records");
    let mut ok = 0;
    for r in out.records() {
        match r.error_code() {
            None => ok += 1,
            Some("ProvisionedThroughputExceededException") => {
                assert!(
                    r.error_message()
                        .expect("message")
                        .contains("shardId-000000000000")
                );
                assert!(r.sequence_number().is_none());
            }
            Some(other) => panic!("unexpected {other}"),
        }
    }
    assert!((100..=101).contains(&ok), "records limit: {ok} accepted");
    assert_eq!(out.failed_record_count(), Some(300 - ok));

    // Bytes: 10 records of 20 005 bytes (data + key) against 102 400 bytes/s: 5 fit.
    let big: Vec<_> = (0..10)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("big-{i}"))
                .explicit_hash_key(u128::MAX.to_string())
                .data(Blob::new(vec![0u8; 20_000]))
                .build()
                .expect("entry")
        })
        .collect();
    let out = k
        .put_records()
        .stream_name("w")
        .set_records(Some(big))
        .send()
        .await
        .expect("put");
    let accepted: Vec<bool> = out
        .records()
        .iter()
        .map(|r| r.error_code().is_none())
        .collect();
    assert_eq!(
        accepted,
        [
            true, true, true, true, true, false, false, false, false, false
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_record_is_throttled_as_a_whole_call() {
    let engine = engine_with(|c| c.limits.shard_write_records_per_sec = 2).await;
    let k = engine.kinesis_client_without_retries();
    create(&k, "one", 1).await;
    let mut results = Vec::new();
    for _ in 0..3 {
        results.push(
            match k
                .put_record()
                .stream_name("one")
                .partition_key("p")
                .data(Blob::new("x"))
                .send()
                .await
            {
                Ok(_) => "ok".to_owned(),
                Err(e) => code(&e),
            },
        );
    }
    assert_eq!(
        results,
        ["ok", "ok", "ProvisionedThroughputExceededException"]
    );
    // Refilled after a (simulated) second.
    engine.advance_clock(Duration::from_secs(1));
    put(&k, "one", "p", b"x").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_throttled_with_limits_off() {
    let engine = engine_with(|c| c.limits = Limits::disabled()).await;
    let k = engine.kinesis_client_without_retries();
    create(&k, "free", 1).await;
    for batch in 0..10 {
        let out = k
            .put_records()
            .stream_name("free")
            .set_records(Some(entries(&format!("b{batch}"), 500, 100)))
            .send()
            .await
            .expect("put");
        assert_eq!(out.failed_record_count(), Some(0));
    }
    let it = k
        .get_shard_iterator()
        .stream_name("free")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("it")
        .shard_iterator
        .expect("it");
    for _ in 0..20 {
        let out = k
            .get_records()
            .shard_iterator(&it)
            .limit(10)
            .send()
            .await
            .expect("no read limit");
        assert_eq!(out.records().len(), 10);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_throttled_by_calls_and_by_bytes() {
    let engine = engine_with(|c| {
        // Fast writes so the read-byte limit can be reached quickly.
        c.limits.shard_write_bytes_per_sec = 1 << 30;
        c.limits.shard_write_records_per_sec = 1 << 20;
    })
    .await;
    let k = engine.kinesis_client_without_retries();
    create(&k, "r", 1).await;
    let it = || {
        let k = k.clone();
        async move {
            k.get_shard_iterator()
                .stream_name("r")
                .shard_id("shardId-000000000000")
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .expect("it")
                .shard_iterator
                .expect("it")
        }
    };
    // 5 calls per second: the sixth quick call is throttled.
    let iterator = it().await;
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(
            match k.get_records().shard_iterator(&iterator).send().await {
                Ok(_) => "ok".to_owned(),
                Err(e) => code(&e),
            },
        );
    }
    assert_eq!(codes[..5], ["ok", "ok", "ok", "ok", "ok"]);
    assert_eq!(codes[5], "ProvisionedThroughputExceededException");

    // 2 MiB/s: one 4 MiB read is allowed, then the shard is throttled until the debt is paid.
    for i in 0..8 {
        let recs = (0..4)
            .map(|j| {
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("k{i}-{j}"))
                    .data(Blob::new(vec![1u8; 128 * 1024]))
                    .build()
                    .expect("entry")
            })
            .collect();
        let out = k
            .put_records()
            .stream_name("r")
            .set_records(Some(recs))
            .send()
            .await
            .expect("put");
        assert_eq!(out.failed_record_count(), Some(0));
    }
    engine.advance_clock(Duration::from_secs(2));
    let iterator = it().await;
    let big = k
        .get_records()
        .shard_iterator(&iterator)
        .send()
        .await
        .expect("big read");
    assert_eq!(big.records().len(), 32);
    let err = k
        .get_records()
        .shard_iterator(big.next_shard_iterator().expect("next"))
        .send()
        .await
        .expect_err("byte limit");
    assert_eq!(code(&err), "ProvisionedThroughputExceededException");
    engine.advance_clock(Duration::from_secs(2));
    k.get_records()
        .shard_iterator(big.next_shard_iterator().expect("next"))
        .send()
        .await
        .expect("debt paid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_writers_lose_nothing() {
    let engine = engine_with(|c| c.limits = Limits::disabled()).await;
    let k = engine.kinesis_client();
    create(&k, "conc", 1).await;
    const WRITERS: usize = 8;
    const BATCHES: usize = 10;
    const PER_BATCH: usize = 250;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            for b in 0..BATCHES {
                let recs = (0..PER_BATCH)
                    .map(|i| {
                        PutRecordsRequestEntry::builder()
                            .partition_key(format!("writer-{w}"))
                            .data(Blob::new(format!("{w}:{}", b * PER_BATCH + i)))
                            .build()
                            .expect("entry")
                    })
                    .collect();
                let out = k
                    .put_records()
                    .stream_name("conc")
                    .set_records(Some(recs))
                    .send()
                    .await
                    .expect("put");
                assert_eq!(out.failed_record_count(), Some(0));
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let read = read_shard(&k, "conc", "shardId-000000000000").await;
    assert_eq!(read.records.len(), WRITERS * BATCHES * PER_BATCH);
    for w in read.records.windows(2) {
        assert_eq!(
            seq_cmp(w[0].sequence_number(), w[1].sequence_number()),
            std::cmp::Ordering::Less
        );
    }
    let mut next: HashMap<usize, usize> = HashMap::new();
    for r in &read.records {
        let text = std::str::from_utf8(r.data().as_ref()).expect("utf8");
        let (w, i) = text.split_once(':').expect("w:i");
        let (w, i): (usize, usize) = (w.parse().expect("w"), i.parse().expect("i"));
        let expected = next.entry(w).or_insert(0);
        assert_eq!(i, *expected, "writer {w} order");
        *expected += 1;
    }
    assert!(next.values().all(|&n| n == BATCHES * PER_BATCH));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_trims_old_records_and_closed_shards() {
    let engine = engine().await;
    let k = engine.kinesis_client();
    create(&k, "ret", 1).await;
    put(&k, "ret", "k", b"old").await;
    k.split_shard()
        .stream_name("ret")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((u128::MAX / 2).to_string())
        .send()
        .await
        .expect("split");
    engine.advance_clock(Duration::from_secs(20 * 3600));
    put(&k, "ret", "k", b"young").await;
    engine.advance_clock(Duration::from_secs(5 * 3600));
    engine.enforce_retention();
    // The parent closed 25 h ago: gone, with its record.
    let ids: Vec<String> = shards(&k, "ret")
        .await
        .iter()
        .map(|s| s.shard_id().to_owned())
        .collect();
    assert_eq!(ids, ["shardId-000000000001", "shardId-000000000002"]);
    let err = k
        .get_shard_iterator()
        .stream_name("ret")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect_err("expired shard");
    assert_eq!(code(&err), "ResourceNotFoundException");
    let mut young = 0;
    for id in &ids {
        young += read_shard(&k, "ret", id).await.records.len();
    }
    assert_eq!(young, 1);
    // 20 more hours: the young record is 25 h old and trimmed too.
    engine.advance_clock(Duration::from_secs(20 * 3600));
    engine.enforce_retention();
    let mut left = 0;
    for id in &ids {
        left += read_shard(&k, "ret", id).await.records.len();
    }
    assert_eq!(left, 0);
}
