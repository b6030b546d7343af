//! Producer → engine → consumer runs with the Kinesis limits on, each under one of the faults
//! production brings. Every run checks its books: nothing lost, every key's records in the
//! order they were written, and duplicates counted and bounded.

use integration_tests::{Rig, quick};
use kpl::ProducerConfig;
use std::time::Duration;
use stream_engine::{EngineConfig, OutageMode};

const NO_WAIT: Duration = Duration::ZERO;
const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_at_three_times_the_write_capacity_loses_nothing() {
    // 2 shards take 2 MiB/s; the producer offers 6 MiB/s (1 KiB records at 6 000/s) for 2 s.
    let rig = Rig::new(EngineConfig::default(), "overload", 2, 200).await;
    let w = rig.worker("w1", NO_WAIT);
    let sending = rig
        .produce(ProducerConfig::default(), 12_000, Some(6_000.0), 1_024)
        .await;
    let metrics = sending.await.expect("producer");
    let throttles: u64 = metrics.throttles_by_shard.values().sum();
    let slowed = metrics.rate_permille_by_shard.values().any(|p| *p < 1000);
    assert!(
        throttles > 0 || slowed || metrics.retries > 0,
        "the stream pushed back: {metrics:?}"
    );
    rig.finish(LIMIT, 0).await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_and_a_gracefully_stopped_one_lose_nothing() {
    let rig = Rig::new(EngineConfig::default(), "workers", 4, 400).await;
    let w1 = rig.worker("w1", NO_WAIT);
    let w2 = rig.worker("w2", NO_WAIT);
    let w3 = rig.worker("w3", NO_WAIT);
    let _sending = rig
        .produce(ProducerConfig::default(), 8_000, Some(1_000.0), 100)
        .await;
    rig.sent(2_500).await;
    w1.kill().await;
    rig.sent(5_000).await;
    w2.stop().await;
    // A kill redelivers what followed the last checkpoints of its shards: a batch or two.
    rig.finish(LIMIT, 2_000).await;
    w3.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_a_merge_and_a_doubling_under_load_keep_every_key_in_order() {
    let rig = Rig::new(EngineConfig::default(), "reshard", 2, 400).await;
    let w1 = rig.worker("w1", NO_WAIT);
    let w2 = rig.worker("w2", NO_WAIT);
    let _sending = rig
        .produce(ProducerConfig::default(), 12_000, Some(1_500.0), 100)
        .await;
    let k = &rig.kinesis;
    rig.sent(3_000).await;
    examples::pipeline::split_shard(k, rig.stream(), 0)
        .await
        .expect("split");
    rig.sent(6_000).await;
    examples::pipeline::merge_adjacent(k, rig.stream(), 1)
        .await
        .expect("merge");
    rig.sent(8_000).await;
    let open = examples::pipeline::reshard::open_shards(k, rig.stream())
        .await
        .expect("shards")
        .len();
    examples::pipeline::update_shard_count(k, rig.stream(), 2 * open as i32)
        .await
        .expect("update shard count");
    // Aggregates that reach a shard no longer covering their key are re-sent whole.
    let summary = rig.finish(LIMIT, 4_000).await;
    assert!(
        summary.per_shard.len() >= 6,
        "records came from parents and children: {:?}",
        summary.per_shard
    );
    w1.stop().await;
    w2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_of_kinesis_and_dynamodb_loses_nothing() {
    let rig = Rig::new(EngineConfig::default(), "outage", 2, 200).await;
    let w1 = rig.worker("w1", NO_WAIT);
    let w2 = rig.worker("w2", NO_WAIT);
    let _sending = rig
        .produce(ProducerConfig::default(), 6_000, Some(1_000.0), 100)
        .await;
    rig.sent(2_000).await;
    // Every call, Kinesis and DynamoDB alike, hangs for 3 s: longer than the failover time.
    rig.engine
        .faults()
        .pause(Duration::from_secs(3), OutageMode::Hang);
    rig.sent(4_000).await;
    rig.engine
        .faults()
        .pause(Duration::from_secs(2), OutageMode::Refuse);
    rig.finish(LIMIT, 3_000).await;
    w1.stop().await;
    w2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_processor_under_read_throttling_catches_up() {
    let rig = Rig::new(EngineConfig::default(), "slow", 2, 200).await;
    // Batches of at most 100 records, 100 ms each, at most 5 reads/s: about 500 records/s a
    // shard, while 750/s a shard arrive (plain records) for 4 s. The backlog grows, then
    // drains once the producer stops.
    let w = rig.worker_with("w1", quick().max_records(100), Duration::from_millis(100));
    let _sending = rig
        .produce(
            ProducerConfig::default().aggregation_enabled(false),
            6_000,
            Some(1_500.0),
            100,
        )
        .await;
    rig.engine.faults().throttle_next("GetRecords", 5);
    let mut behind = 0;
    let deadline = tokio::time::Instant::now() + LIMIT;
    while rig.books.sent() < 6_000 && tokio::time::Instant::now() < deadline {
        let m = w.handle.processing_metrics();
        behind = behind.max(m.millis_behind_latest.values().copied().max().unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rig.finish(LIMIT, 0).await;
    let m = w.handle.processing_metrics();
    println!("most behind: {behind} ms; {m:?}");
    assert!(behind >= 500, "a backlog built up: {behind} ms");
    assert!(m.read_throttles > 0, "reads were throttled: {m:?}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_every_worker_loses_nothing() {
    let rig = Rig::new(EngineConfig::default(), "rolling", 4, 400).await;
    let mut workers = vec![rig.worker("w1", NO_WAIT), rig.worker("w2", NO_WAIT)];
    let _sending = rig
        .produce(ProducerConfig::default(), 8_000, Some(1_000.0), 100)
        .await;
    for (i, at) in [(0, 2_500), (1, 5_000)] {
        rig.sent(at).await;
        let old = workers.remove(i);
        old.stop().await;
        // The same worker id comes back, as a redeployed instance would.
        workers.insert(i, rig.worker(&format!("w{}", i + 1), NO_WAIT));
    }
    // Each graceful stop checkpoints before letting go: nothing is processed twice.
    rig.finish(LIMIT, 0).await;
    for w in workers {
        w.stop().await;
    }
}

fn fan_out() -> kcl::SchedulerConfig {
    quick().retrieval(kcl::RetrievalMode::FanOut {
        consumer_name: "e2e-efo".into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_fan_out_mode_a_split_and_a_merge_keep_every_key_in_order() {
    let rig = Rig::new(EngineConfig::default(), "efo-reshard", 2, 400).await;
    // Polling would fail: every record comes through the subscriptions.
    rig.engine.faults().fail_next("GetRecords", u32::MAX);
    let w1 = rig.worker_with("w1", fan_out(), NO_WAIT);
    let w2 = rig.worker_with("w2", fan_out(), NO_WAIT);
    let _sending = rig
        .produce(ProducerConfig::default(), 8_000, Some(1_500.0), 100)
        .await;
    let k = &rig.kinesis;
    rig.sent(2_500).await;
    examples::pipeline::split_shard(k, rig.stream(), 0)
        .await
        .expect("split");
    rig.sent(5_000).await;
    examples::pipeline::merge_adjacent(k, rig.stream(), 1)
        .await
        .expect("merge");
    let summary = rig.finish(LIMIT, 4_000).await;
    assert!(
        summary.per_shard.len() >= 4,
        "records came from parents and children: {:?}",
        summary.per_shard
    );
    w1.stop().await;
    w2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_fan_out_mode_a_killed_worker_and_a_stopped_one_lose_nothing() {
    let rig = Rig::new(EngineConfig::default(), "efo-workers", 4, 400).await;
    rig.engine.faults().fail_next("GetRecords", u32::MAX);
    let w1 = rig.worker_with("w1", fan_out(), NO_WAIT);
    let w2 = rig.worker_with("w2", fan_out(), NO_WAIT);
    let w3 = rig.worker_with("w3", fan_out(), NO_WAIT);
    let _sending = rig
        .produce(ProducerConfig::default(), 8_000, Some(1_000.0), 100)
        .await;
    rig.sent(2_500).await;
    w1.kill().await;
    rig.sent(5_000).await;
    w2.stop().await;
    rig.finish(LIMIT, 2_000).await;
    w3.stop().await;
}
