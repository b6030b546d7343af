//! The producer against the bundled engine over HTTP.

mod common;

use common::*;
use futures::{SinkExt, StreamExt};
use kpl::{BuildError, Ordering, Producer, ProducerConfig, PutError, SendError, UserRecord};
use std::collections::HashMap;
use std::time::Duration;
use stream_engine::OutageMode;

/// Exactly once and in per-key order, for every kind of KCL.
fn check_delivery(read: &[ReadRecord], expected_per_key: &HashMap<String, usize>) {
    check_whole_drop_delivery(read, expected_per_key);
    assert_eq!(check_per_record_delivery(read, expected_per_key), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_records_arrive_once_in_order_and_in_range() {
    let engine = engine(false).await;
    let k = engine.kinesis_client();
    create(&k, "bulk", 4).await;
    let producer = Producer::builder(k.clone(), "bulk")
        .build()
        .await
        .expect("producer");
    let mut handles = Vec::with_capacity(100_000);
    let mut per_key: HashMap<String, usize> = HashMap::new();
    for i in 0..100_000usize {
        let key = format!("key-{}", i % 1000);
        let n = per_key.entry(key.clone()).or_insert(0);
        let data = format!("{key}:{n}");
        *n += 1;
        handles.push(
            producer
                .send(UserRecord::new(key, data))
                .await
                .expect("accepted"),
        );
    }
    producer.flush().await;
    let mut aggregated = 0;
    for h in handles {
        let outcome = tokio::time::timeout(Duration::from_secs(1), h)
            .await
            .expect("resolved by flush")
            .expect("success");
        assert_eq!(outcome.sequence_number.len(), 56);
        assert!(outcome.shard_id.starts_with("shardId-"));
        assert!(outcome.attempts.last().is_some_and(|a| a.succeeded()));
        aggregated += usize::from(outcome.aggregated);
    }
    assert!(
        aggregated > 90_000,
        "aggregation on by default: {aggregated}"
    );
    let m = producer.metrics();
    assert_eq!(m.user_records_put, 100_000);
    assert_eq!(m.user_records_succeeded, 100_000);
    assert_eq!(m.outstanding_records, 0);
    assert!(
        m.kinesis_records_sent < 10_000,
        "{} Kinesis records",
        m.kinesis_records_sent
    );
    let read = read_all(&k, "bulk").await;
    assert!(
        read.iter().all(|r| !r.out_of_range),
        "every sub-record inside its shard's range"
    );
    check_delivery(&read, &per_key);
    producer.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_at_five_times_capacity_loses_nothing_and_keeps_order() {
    let engine = engine(true).await;
    let k = engine.kinesis_client();
    create(&k, "hot", 1).await;
    let config = ProducerConfig::default()
        .aggregation_enabled(false)
        .record_ttl(Duration::from_secs(60))
        .rate_limit_percent(500)
        .retry_min_backoff(Duration::from_millis(20))
        .retry_max_backoff(Duration::from_millis(500));
    let producer = Producer::builder(k.clone(), "hot")
        .config(config)
        .build()
        .await
        .expect("producer");
    let mut handles = Vec::new();
    let mut per_key: HashMap<String, usize> = HashMap::new();
    // 5000 records at once: five seconds' worth of the shard's 1000 records/s.
    for i in 0..5000usize {
        let key = format!("k{}", i % 50);
        let n = per_key.entry(key.clone()).or_insert(0);
        let data = format!("{key}:{n}");
        *n += 1;
        handles.push(
            producer
                .send(UserRecord::new(key, data))
                .await
                .expect("accepted"),
        );
    }
    producer.flush().await;
    for h in handles {
        let outcome = h.await.expect("stored, not expired");
        assert!(!outcome.aggregated);
    }
    let m = producer.metrics();
    assert!(m.retries > 0, "throttled records were retried: {m:?}");
    assert!(
        m.throttles_by_shard
            .get("shardId-000000000000")
            .copied()
            .unwrap_or(0)
            > 0
    );
    assert_eq!(m.user_records_failed, 0);
    check_delivery(&read_all(&k, "hot").await, &per_key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_and_merge_while_producing_lose_nothing() {
    let engine = engine(false).await;
    let k = engine.kinesis_client();
    create(&k, "reshard", 2).await;
    let producer = Producer::builder(k.clone(), "reshard")
        .build()
        .await
        .expect("producer");
    let mut per_key: HashMap<String, usize> = HashMap::new();
    for round in 0..30 {
        if round == 10 {
            k.split_shard()
                .stream_name("reshard")
                .shard_to_split("shardId-000000000000")
                .new_starting_hash_key((u128::MAX / 4).to_string())
                .send()
                .await
                .expect("split");
        }
        if round == 20 {
            k.merge_shards()
                .stream_name("reshard")
                .shard_to_merge("shardId-000000000002")
                .adjacent_shard_to_merge("shardId-000000000003")
                .send()
                .await
                .expect("merge");
        }
        let mut handles = Vec::new();
        for i in 0..300usize {
            let key = format!("key-{}", i % 60);
            let n = per_key.entry(key.clone()).or_insert(0);
            let data = format!("{key}:{n}");
            *n += 1;
            handles.push(
                producer
                    .send(UserRecord::new(key, data))
                    .await
                    .expect("accepted"),
            );
        }
        producer.flush().await;
        for h in handles {
            h.await.expect("stored");
        }
    }
    let m = producer.metrics();
    assert!(
        m.shard_map_refreshes >= 2,
        "shard map refreshed after each reshard: {m:?}"
    );
    let read = read_all(&k, "reshard").await;
    // Aggregates sent with the stale map (in the round right after a reshard) may hold
    // out-of-range sub-records; each such aggregate was sent again whole, so a KCL that drops
    // it whole (the Java KCL) still gets every record exactly once, and one that filters per
    // sub-record gets every record, some twice.
    let misplaced = read.iter().filter(|r| r.misplaced_aggregate).count();
    let out_of_range = read.iter().filter(|r| r.out_of_range).count();
    eprintln!(
        "misplaced aggregates hold {misplaced} sub-records ({out_of_range} out of range) of {}",
        read.len()
    );
    assert!(
        misplaced <= 1200,
        "{misplaced} sub-records in misplaced aggregates"
    );
    assert_eq!(
        producer.metrics().misplaced_records_resent as usize,
        misplaced,
        "every sub-record of a misplaced aggregate was sent again"
    );
    check_whole_drop_delivery(&read, &per_key);
    let duplicates = check_per_record_delivery(&read, &per_key);
    assert_eq!(duplicates, misplaced - out_of_range);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_ridden_out_and_a_longer_one_expires_records() {
    let engine = engine(false).await;
    let k = engine.kinesis_client();
    create(&k, "outage", 2).await;
    let config = ProducerConfig::default()
        .request_timeout(Duration::from_millis(500))
        .record_ttl(Duration::from_secs(10))
        .retry_max_backoff(Duration::from_millis(300));
    let producer = Producer::builder(k.clone(), "outage")
        .config(config.clone())
        .build()
        .await
        .expect("producer");
    engine
        .faults()
        .pause(Duration::from_secs(3), OutageMode::Hang);
    let mut handles = Vec::new();
    for i in 0..200 {
        handles.push(
            producer
                .send(UserRecord::new(format!("k{i}"), format!("v{i}")))
                .await
                .expect("accepted"),
        );
    }
    for h in handles {
        let outcome = h.await.expect("delivered after the outage");
        assert!(outcome.attempts.len() >= 2, "{:?}", outcome.attempts);
        assert!(outcome.attempts[0].error_code.is_some());
    }
    assert!(producer.metrics().retries > 0);

    // An outage longer than the TTL: Expired with every attempt, nothing hangs.
    let short = Producer::builder(k.clone(), "outage")
        .config(ProducerConfig::default().record_ttl(Duration::from_millis(1500)))
        .build()
        .await
        .expect("producer");
    engine
        .faults()
        .pause(Duration::from_secs(30), OutageMode::Refuse);
    let mut handles = Vec::new();
    for i in 0..20 {
        handles.push(
            short
                .send(UserRecord::new(format!("k{i}"), "x"))
                .await
                .expect("accepted"),
        );
    }
    for h in handles {
        let err = tokio::time::timeout(Duration::from_secs(10), h)
            .await
            .expect("no hang")
            .expect_err("expired");
        let PutError::Expired { attempts } = err else {
            panic!("expected Expired, got {err:?}")
        };
        assert!(!attempts.is_empty());
        assert!(attempts.iter().all(|a| a.error_code.is_some()));
    }
    assert_eq!(short.metrics().user_records_expired, 20);
    engine.faults().resume();
    short
        .send_and_wait(UserRecord::new("after", "outage"))
        .await
        .expect("works again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_streams_fail_fast() {
    let engine = engine(false).await;
    let k = engine.kinesis_client();
    let start = std::time::Instant::now();
    let err = Producer::builder(k.clone(), "missing")
        .build()
        .await
        .expect_err("no stream");
    assert!(
        matches!(err, BuildError::StreamNotFound(ref s) if s == "missing"),
        "{err:?}"
    );
    // A stream deleted under a running producer: final at once, not retried until the TTL.
    create(&k, "doomed", 1).await;
    let producer = Producer::builder(k.clone(), "doomed")
        .build()
        .await
        .expect("producer");
    k.delete_stream()
        .stream_name("doomed")
        .send()
        .await
        .expect("delete");
    let err = producer
        .send_and_wait(UserRecord::new("k", "v"))
        .await
        .expect_err("gone");
    assert!(matches!(err, PutError::StreamNotFound { .. }), "{err:?}");
    assert_eq!(err.attempts().len(), 1);
    assert!(start.elapsed() < Duration::from_secs(10));
    // Bad configuration is a typed error at build time.
    create(&k, "cfg", 1).await;
    let err = Producer::builder(k.clone(), "cfg")
        .config(ProducerConfig::default().collection_max_count(501))
        .build()
        .await
        .expect_err("bad config");
    assert!(
        matches!(err, BuildError::Config(ref c) if c.field == "collection_max_count"),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_typed_errors_and_the_producer_keeps_working() {
    let engine = engine(false).await;
    let k = engine.kinesis_client();
    create(&k, "input", 1).await;
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/input";
    let producer = Producer::builder(k.clone(), arn)
        .build()
        .await
        .expect("producer by ARN");
    let bad = [
        UserRecord::new("", "x"),
        UserRecord::new("k".repeat(257), "x"),
        UserRecord::new("k", vec![0u8; 1024 * 1024]),
        UserRecord::new("k", "x").with_explicit_hash_key("12a"),
        UserRecord::new("k", "x").with_explicit_hash_key("340282366920938463463374607431768211456"),
    ];
    for r in bad {
        let err = producer.send(r).await.expect_err("invalid");
        assert!(matches!(err, SendError::Invalid(_)), "{err:?}");
        let err = producer
            .try_send(UserRecord::new("", "x"))
            .expect_err("invalid");
        assert!(matches!(err, SendError::Invalid(_)));
    }
    let ok = producer
        .send_and_wait(UserRecord::new("k", "fine").with_explicit_hash_key("0"))
        .await
        .expect("still works");
    assert_eq!(&*ok.shard_id, "shardId-000000000000");
    // A stream forwarded into the producer's Sink.
    let mut sink = producer.sink();
    let records = futures::stream::iter(
        (0..500).map(|i| Ok(UserRecord::new(format!("s{}", i % 7), format!("{i}")))),
    );
    sink.send_all(&mut records.boxed())
        .await
        .expect("forwarded");
    sink.close().await.expect("all stored");
    assert_eq!(sink.succeeded(), 500);
    assert_eq!(producer.metrics().user_records_succeeded, 501);
    // After shutdown, sends are refused.
    producer.shutdown(Duration::from_secs(5)).await;
    assert!(matches!(
        producer.send(UserRecord::new("k", "late")).await,
        Err(SendError::Closed)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_bounds_outstanding_records() {
    let engine = engine(false).await;
    let k = engine.kinesis_client();
    create(&k, "bp", 2).await;
    let config = ProducerConfig::default()
        .max_outstanding_records(1000)
        .request_timeout(Duration::from_secs(30));
    let producer = Producer::builder(k.clone(), "bp")
        .config(config)
        .build()
        .await
        .expect("producer");
    engine
        .faults()
        .pause(Duration::from_secs(60), OutageMode::Hang);
    let mut handles = Vec::new();
    for i in 0..1000 {
        handles.push(
            producer
                .send(UserRecord::new(format!("k{i}"), "x"))
                .await
                .expect("room"),
        );
    }
    assert_eq!(producer.metrics().outstanding_records, 1000);
    assert!(matches!(
        producer.try_send(UserRecord::new("k", "x")),
        Err(SendError::Full)
    ));
    let blocked = tokio::spawn({
        let producer = producer.clone();
        async move {
            producer
                .send(UserRecord::new("waiting", "x"))
                .await
                .map(|_| ())
        }
    });
    // The held requests prove the pipeline is stuck on the outage, and the send waits.
    assert!(
        wait_for(Duration::from_secs(10), || engine.faults().held_requests()
            > 0)
        .await
    );
    assert!(!blocked.is_finished());
    assert_eq!(producer.metrics().outstanding_records, 1000);
    engine.faults().resume();
    blocked
        .await
        .expect("task")
        .expect("sent once there was room");
    for h in handles {
        h.await.expect("completed after the outage");
    }
    producer.flush().await;
    assert_eq!(producer.metrics().user_records_succeeded, 1001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relaxed_ordering_and_no_aggregation_deliver_everything() {
    let engine = engine(false).await;
    let k = engine.kinesis_client();
    create(&k, "relaxed", 3).await;
    let config = ProducerConfig::default()
        .ordering(Ordering::Relaxed)
        .aggregation_enabled(false);
    let producer = Producer::builder(k.clone(), "relaxed")
        .config(config)
        .build()
        .await
        .expect("producer");
    let mut handles = Vec::new();
    for i in 0..3000 {
        handles.push(
            producer
                .send(UserRecord::new(format!("k{}", i % 10), format!("{i}")))
                .await
                .expect("accepted"),
        );
    }
    producer.flush().await;
    for h in handles {
        assert!(!h.await.expect("stored").aggregated);
    }
    let read = read_all(&k, "relaxed").await;
    assert_eq!(read.len(), 3000);
    assert!(read.iter().all(|r| !r.aggregated));
    // Dropping every handle without shutdown never hangs.
    drop(producer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_producer_resolves_every_handle() {
    let engine = engine(false).await;
    let k = engine.kinesis_client();
    create(&k, "dropped", 2).await;
    let config = ProducerConfig::default().request_timeout(Duration::from_millis(300));
    let producer = Producer::builder(k.clone(), "dropped")
        .config(config)
        .build()
        .await
        .expect("producer");
    engine
        .faults()
        .pause(Duration::from_secs(60), OutageMode::Hang);
    let mut handles = Vec::new();
    for i in 0..100 {
        handles.push(
            producer
                .send(UserRecord::new(format!("k{i}"), "x"))
                .await
                .expect("accepted"),
        );
    }
    assert!(
        wait_for(Duration::from_secs(10), || engine.faults().held_requests()
            > 0)
        .await
    );
    drop(producer);
    for h in handles {
        let err = tokio::time::timeout(Duration::from_secs(10), h)
            .await
            .expect("no hang")
            .expect_err("not stored");
        assert_eq!(err, PutError::Dropped);
    }
}
