//! Ordering with large records, rate limiting, timeouts on calls that never answer, and bad
//! configuration.

mod common;

use aws_sdk_kinesis::types::ShardIteratorType;
use common::*;
use kpl::{BuildError, Producer, ProducerConfig, PutError, UserRecord};
use std::time::Duration;
use stream_engine::OutageMode;

const SHARD0: &str = "shardId-000000000000";

/// Reads shard 0 raw, in order.
async fn read_shard0(k: &aws_sdk_kinesis::Client, stream: &str) -> Vec<bytes::Bytes> {
    let mut it = k
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(SHARD0)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("iterator")
        .shard_iterator
        .expect("it");
    let mut out = Vec::new();
    loop {
        let resp = k
            .get_records()
            .shard_iterator(&it)
            .send()
            .await
            .expect("get");
        out.extend(
            resp.records()
                .iter()
                .map(|r| bytes::Bytes::copy_from_slice(r.data().as_ref())),
        );
        match resp.next_shard_iterator() {
            Some(next) if !resp.records().is_empty() => it = next.to_owned(),
            _ => break,
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_records_of_one_key_keep_their_order_under_per_record_throttling() {
    let engine = engine(false).await;
    let k = engine.kinesis_client();
    create(&k, "large", 1).await;
    let producer = Producer::builder(k.clone(), "large")
        .config(
            ProducerConfig::default()
                .retry_min_backoff(Duration::from_millis(5))
                .retry_max_backoff(Duration::from_millis(20)),
        )
        .build()
        .await
        .expect("producer");
    let mut handles = Vec::new();
    for n in 0..120u32 {
        if n % 10 == 0 {
            // Throttle the next few records of the shard: in a request holding several of
            // them, the first would fail and later ones succeed.
            engine.faults().throttle_shard_next("PutRecords", SHARD0, 2);
        }
        let mut data = format!("{n:08}").into_bytes();
        data.resize(30_000, b'x');
        handles.push(
            producer
                .send(UserRecord::new("hot", data))
                .await
                .expect("accepted"),
        );
    }
    producer.flush().await;
    for h in handles {
        let o = h.await.expect("stored");
        assert!(!o.aggregated, "30 KB is more than half an aggregate: raw");
    }
    let m = producer.metrics();
    assert!(m.retries > 0, "throttling was injected: {m:?}");
    let order: Vec<u32> = read_shard0(&k, "large")
        .await
        .iter()
        .map(|d| {
            std::str::from_utf8(&d[..8])
                .expect("utf8")
                .parse()
                .expect("n")
        })
        .collect();
    assert_eq!(
        order,
        (0..120).collect::<Vec<_>>(),
        "stored in send order, once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_default_rate_throttles_stay_bounded_and_everything_arrives() {
    let engine = engine(true).await;
    let k = engine.kinesis_client();
    create(&k, "rate", 1).await;
    let producer = Producer::builder(k.clone(), "rate")
        .config(
            ProducerConfig::default()
                .aggregation_enabled(false)
                .record_ttl(Duration::from_secs(60)),
        )
        .build()
        .await
        .expect("producer");
    let start = std::time::Instant::now();
    let mut handles = Vec::new();
    for i in 0..3000 {
        handles.push(
            producer
                .send(UserRecord::new(format!("k{}", i % 100), "x"))
                .await
                .expect("accepted"),
        );
    }
    let report = producer.flush().await;
    assert_eq!(report.failed, 0);
    let elapsed = start.elapsed().as_secs_f64();
    let m = producer.metrics();
    let throttled: u64 = m.throttles_by_shard.values().sum();
    eprintln!(
        "3000 records in {elapsed:.2} s ({:.0}/s against a 1000/s shard): {} Kinesis records sent, {throttled} throttled, rate {:?}",
        3000.0 / elapsed,
        m.kinesis_records_sent,
        m.rate_permille_by_shard
    );
    // The limiter at 150 % of the shard limit sends at most 1.5x what the shard takes, and
    // AIMD backs off on throttling: only a bounded share of what is sent is refused.
    assert!(
        throttled * 4 <= m.kinesis_records_sent,
        "{throttled} of {} throttled",
        m.kinesis_records_sent
    );
    assert_eq!(m.kinesis_records_sent, 3000 + throttled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_throttle_burst_the_rate_recovers() {
    let engine = engine(false).await;
    let k = engine.kinesis_client();
    create(&k, "recover", 1).await;
    let producer = Producer::builder(k.clone(), "recover")
        .config(
            ProducerConfig::default()
                .aggregation_enabled(false)
                .retry_min_backoff(Duration::from_millis(5))
                .retry_max_backoff(Duration::from_millis(10)),
        )
        .build()
        .await
        .expect("producer");
    // Four responses with throttled records: 1000 → 700 → 490 → 343 → 240 per mille.
    for _ in 0..4 {
        engine.faults().throttle_shard_next("PutRecords", SHARD0, 5);
        let hs: Vec<_> = futures::future::join_all(
            (0..10).map(|i| producer.send(UserRecord::new(format!("k{i}"), "x"))),
        )
        .await;
        producer.flush().await;
        for h in hs {
            h.expect("accepted").await.expect("stored after retry");
        }
    }
    let low = producer.metrics().rate_permille_by_shard[SHARD0];
    assert!(low < 400, "the rate went down once per response: {low}");
    // Successful responses bring it back up.
    for i in 0..60 {
        producer
            .send_and_wait(UserRecord::new(format!("r{i}"), "x"))
            .await
            .expect("stored");
    }
    let m = producer.metrics();
    assert!(
        !m.rate_permille_by_shard.contains_key(SHARD0),
        "back at the full rate: {:?}",
        m.rate_permille_by_shard
    );
    assert!(m.throttles_by_shard[SHARD0] >= 20, "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_does_not_hang_on_a_list_shards_that_never_answers() {
    let engine = engine(false).await;
    let k = engine.kinesis_client();
    create(&k, "hang", 1).await;
    engine
        .faults()
        .pause(Duration::from_secs(60), OutageMode::Hang);
    let built = tokio::time::timeout(
        Duration::from_secs(20),
        Producer::builder(k.clone(), "hang")
            .config(
                ProducerConfig::default()
                    .request_timeout(Duration::from_millis(200))
                    .stream_ready_timeout(Duration::from_secs(1)),
            )
            .build(),
    )
    .await
    .expect("build returns");
    let err = built.expect_err("no shard map");
    assert!(
        matches!(err, BuildError::ListShards { ref code, .. } if code == "Timeout"),
        "{err:?}"
    );
    engine.faults().resume();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_expire_and_flush_returns_while_the_shard_map_cannot_be_refreshed() {
    let engine = engine(false).await;
    let k = engine.kinesis_client();
    create(&k, "norefresh", 1).await;
    let producer = Producer::builder(k.clone(), "norefresh")
        .config(
            ProducerConfig::default()
                .request_timeout(Duration::from_millis(200))
                .record_ttl(Duration::from_secs(1))
                .retry_max_backoff(Duration::from_millis(100)),
        )
        .build()
        .await
        .expect("producer");
    // PutRecords says the shard is not found: the producer refreshes its map, and every
    // refresh hangs (far longer than the request timeout).
    engine
        .faults()
        .add_latency("ListShards", Duration::from_secs(60), None);
    engine
        .faults()
        .error_next("PutRecords", "ResourceNotFoundException", 1);
    let h = producer
        .send(UserRecord::new("k", "v"))
        .await
        .expect("accepted");
    let report = tokio::time::timeout(Duration::from_secs(20), producer.flush())
        .await
        .expect("flush returns once the record has an outcome");
    assert_eq!(report.failed, 1);
    let err = h.await.expect_err("expired");
    assert!(matches!(err, PutError::Expired { .. }), "{err:?}");
    assert_eq!(
        err.attempts()[0].error_code.as_deref(),
        Some("ResourceNotFoundException")
    );
    // The refresh is retried: once the engine answers again, records go through.
    engine.faults().clear();
    producer
        .send_and_wait(UserRecord::new("k", "after"))
        .await
        .expect("stored after the outage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_arguments_are_typed_errors_or_work() {
    let engine = engine(false).await;
    let k = engine.kinesis_client();
    create(&k, "extreme", 1).await;
    for (config, field) in [
        (
            ProducerConfig::default().aggregation_max_size(1024 * 1024),
            "aggregation_max_size",
        ),
        (
            ProducerConfig::default().collection_max_size(512 * 1024),
            "collection_max_size",
        ),
        (
            ProducerConfig::default().max_outstanding_bytes(1024),
            "max_outstanding_bytes",
        ),
        (
            ProducerConfig::default().record_ttl(Duration::ZERO),
            "record_ttl",
        ),
    ] {
        let err = Producer::builder(k.clone(), "extreme")
            .config(config)
            .build()
            .await
            .expect_err("invalid");
        assert!(
            matches!(err, BuildError::Config(ref c) if c.field == field),
            "{field}: {err:?}"
        );
    }
    // Durations that overflow an Instant work as "practically forever".
    let producer = Producer::builder(k.clone(), "extreme")
        .config(
            ProducerConfig::default()
                .record_ttl(Duration::MAX)
                .retry_max_backoff(Duration::MAX)
                .stream_ready_timeout(Duration::MAX),
        )
        .build()
        .await
        .expect("producer");
    // The largest aggregate the config allows fits in one record with its key.
    let big = Producer::builder(k.clone(), "extreme")
        .config(ProducerConfig::default().aggregation_max_size(1024 * 1024 - 1))
        .build()
        .await
        .expect("largest aggregate size");
    let hs: Vec<_> = futures::future::join_all(
        (0..20).map(|i| big.send(UserRecord::new(format!("k{i}"), vec![b'x'; 60_000]))),
    )
    .await;
    big.flush().await;
    for h in hs {
        assert!(h.expect("accepted").await.expect("stored").aggregated);
    }
    producer
        .send_and_wait(UserRecord::new("k", "forever"))
        .await
        .expect("stored");
    let report = tokio::time::timeout(Duration::from_secs(10), producer.shutdown(Duration::MAX))
        .await
        .expect("shutdown(Duration::MAX) returns once nothing is left");
    assert!(report.is_clean(), "{report:?}");
}
