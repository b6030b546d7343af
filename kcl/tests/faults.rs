//! DynamoDB throttling and engine outages: renewals retry; leases are kept when a renewal
//! succeeds within the failover time and lost when none does.

mod common;

use common::*;
use kcl::{Coordinator, LeaseEvent, LostReason};
use std::time::Duration;
use stream_engine::OutageMode;

async fn start_without_sdk_retries(
    engine: &stream_engine::Engine,
    table: &str,
    stream: &str,
) -> (Coordinator, kcl::LeaseEvents) {
    start_with(engine, table, stream, fast()).await
}

async fn start_with(
    engine: &stream_engine::Engine,
    table: &str,
    stream: &str,
    config: kcl::CoordinatorConfig,
) -> (Coordinator, kcl::LeaseEvents) {
    Coordinator::builder(
        engine.dynamodb_client_without_retries(),
        engine.kinesis_client(),
        table,
        stream,
    )
    .worker_id("w1")
    .config(config)
    .start()
    .await
    .expect("start")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_renewals_are_retried_and_the_leases_kept() {
    let engine = engine().await;
    stream(&engine, "throttle", 2).await;
    let (c, mut events) = start_without_sdk_retries(&engine, "throttle-app", "throttle").await;
    while events.try_recv().is_some() {}
    let before = c.metrics();
    engine.faults().throttle_next("DynamoDB.UpdateItem", 6);
    wait_until(Duration::from_secs(10), "renewals go on", || async {
        c.metrics().renewals >= before.renewals + 6
    })
    .await;
    let after = c.metrics();
    assert!(
        after.dynamodb_throttles >= before.dynamodb_throttles + 6,
        "{after:?}"
    );
    assert_eq!(after.leases_lost, 0);
    assert_eq!(c.held_keys().len(), 2);
    assert!(events.try_recv().is_none(), "no event: nothing lost");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_outage_keeps_the_leases_and_a_long_one_loses_them() {
    let engine = engine().await;
    stream(&engine, "outage", 2).await;
    let (c, mut events) = start_without_sdk_retries(&engine, "outage-app", "outage").await;
    while events.try_recv().is_some() {}

    // Shorter than the failover time (1 s): a renewal gets through in time.
    engine
        .faults()
        .pause(Duration::from_millis(400), OutageMode::Hang);
    let renewals = c.metrics().renewals;
    wait_until(Duration::from_secs(10), "renewals resume", || async {
        c.metrics().renewals >= renewals + 4
    })
    .await;
    assert_eq!(c.metrics().leases_lost, 0);
    assert!(events.try_recv().is_none());

    // Longer than the failover time: both leases are lost, then held again once the
    // engine is back (the table still names this worker).
    engine
        .faults()
        .pause(Duration::from_millis(2500), OutageMode::Hang);
    let mut lost = Vec::new();
    while lost.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("loss reported")
            .expect("event");
        if let LeaseEvent::Lost { key, reason } = event {
            assert_eq!(reason, LostReason::NotRenewed);
            lost.push(key);
        }
    }
    assert_eq!(c.metrics().leases_lost, 2);
    wait_until(Duration::from_secs(10), "held again", || async {
        c.held_keys().len() == 2
    })
    .await;
    c.shutdown().await;
}

/// A write applied whose answer never arrives (the client timed out): the retry finds the
/// condition failed, sees the item already as the write left it, and counts it as done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_landed_but_timed_out_is_not_a_lost_lease() {
    let engine = engine().await;
    stream(&engine, "ambiguous", 1).await;
    // Renewals far apart, so the delayed answer is the checkpoint's.
    let config = fast()
        .failover_time(Duration::from_secs(20))
        .renew_interval(Duration::from_secs(10))
        .take_interval(Duration::from_secs(10));
    let (c, mut events) = start_with(&engine, "ambiguous-app", "ambiguous", config).await;
    while events.try_recv().is_some() {}
    let key = kcl::LeaseKey::shard("shardId-000000000000");
    for i in 0..3u64 {
        let injected = engine.faults().injected_count();
        // Longer than the call timeout (300 ms): the first attempt times out after landing.
        engine
            .faults()
            .delay_response_next("DynamoDB.UpdateItem", Duration::from_millis(600), 1);
        let cp = kcl::ExtendedCheckpoint::new(kcl::Checkpoint::Sequence(format!("{}", 100 + i)));
        let written = c
            .checkpoint(&key, cp)
            .await
            .expect("checkpoint counted as done");
        assert_eq!(
            written.checkpoint.checkpoint.as_str(),
            format!("{}", 100 + i)
        );
        assert!(
            engine.faults().injected_count() > injected,
            "the fault was used"
        );
    }
    assert!(c.metrics().dynamodb_errors >= 3, "the attempts timed out");
    assert_eq!(c.metrics().leases_lost, 0);
    assert!(events.try_recv().is_none(), "nothing lost");
    assert_eq!(c.held_keys(), vec![key]);
    c.shutdown().await;
}
