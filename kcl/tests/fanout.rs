//! Enhanced fan-out retrieval through the Scheduler: the consumer is registered, records are
//! pushed, subscriptions that end or break are resumed after their last continuation without
//! loss or repeats, and two applications each get everything.

mod common;

use common::collector::*;
use common::*;
use kcl::{RetrievalMode, SchedulerConfig};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;
use stream_engine::{Engine, EngineConfig, Limits};
use tokio::sync::Mutex;

fn fan_out(name: &str) -> SchedulerConfig {
    quick().retrieval(RetrievalMode::FanOut {
        consumer_name: name.to_owned(),
    })
}

/// An engine whose subscriptions last `lifetime`.
async fn engine_with(lifetime: Duration) -> Engine {
    Engine::start(
        EngineConfig {
            retention_check_interval: None,
            limits: Limits::disabled(),
            subscription_lifetime: lifetime,
            subscription_window: Duration::from_millis(100),
            subscription_heartbeat: Duration::from_millis(200),
            ..EngineConfig::default()
        },
        "127.0.0.1:0",
    )
    .await
    .expect("engine")
}

fn fan_out_worker(engine: &Engine, app: &str, stream: &str, seen: &Arc<Mutex<Seen>>) -> Worker {
    worker(
        engine,
        (app, stream),
        "w1",
        fan_out(&format!("{app}-efo")),
        seen.clone(),
        Arc::new(AtomicU32::new(0)),
        None,
    )
}

async fn all_data(seen: &Arc<Mutex<Seen>>) -> Vec<String> {
    seen.lock()
        .await
        .records
        .values()
        .flatten()
        .map(data)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_delivers_aggregated_and_plain_records_once_in_order() {
    let engine = engine_with(Duration::from_secs(300)).await;
    stream(&engine, "efo", 4).await;
    // Polling would fail: every record must come through the subscriptions.
    engine.faults().fail_next("GetRecords", u32::MAX);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let w = fan_out_worker(&engine, "efo-app", "efo", &seen);
    put_aggregated(&engine, "efo", "a", 3000, 100).await;
    put_plain(&engine, "efo", "p", 1000, 100).await;
    wait_until(Duration::from_secs(20), "4000 records", || async {
        seen.lock().await.count() >= 4000
    })
    .await;
    w.handle.shutdown().await;
    let consumers = engine
        .kinesis_client()
        .list_stream_consumers()
        .stream_arn("arn:aws:kinesis:us-east-1:000000000000:stream/efo")
        .send()
        .await
        .expect("list");
    assert_eq!(consumers.consumers().len(), 1, "registered once");
    let s = seen.lock().await;
    assert_eq!(s.count(), 4000, "nothing twice");
    assert_ordered(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_and_broken_subscriptions_resume_without_loss_or_repeats() {
    // Every subscription ends after 400 ms; records keep coming for about 2 s.
    let engine = engine_with(Duration::from_millis(400)).await;
    stream(&engine, "resub", 2).await;
    engine.faults().fail_next("GetRecords", u32::MAX);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let w = fan_out_worker(&engine, "resub-app", "resub", &seen);
    for round in 0..10 {
        if round == 3 {
            engine.faults().drop_subscription_events_next(2);
        }
        if round == 6 {
            engine
                .faults()
                .error_subscription_events_next("InternalFailureException", 1);
        }
        put_plain(&engine, "resub", &format!("r{round}"), 100, 20).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_until(Duration::from_secs(20), "1000 records", || async {
        seen.lock().await.count() >= 1000
    })
    .await;
    // A moment for anything repeated to arrive too.
    put_plain(&engine, "resub", "last", 10, 10).await;
    wait_until(Duration::from_secs(20), "the last records", || async {
        seen.lock().await.count() >= 1010
    })
    .await;
    w.handle.shutdown().await;
    let got = all_data(&seen).await;
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), 1010, "nothing lost");
    assert_eq!(got.len(), 1010, "nothing repeated");
    assert_ordered(&*seen.lock().await);
    assert!(
        w.handle.processing_metrics().read_errors >= 2,
        "the broken streams were seen and resumed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_registered_consumers_each_receive_everything() {
    let engine = engine_with(Duration::from_secs(300)).await;
    stream(&engine, "two", 2).await;
    engine.faults().fail_next("GetRecords", u32::MAX);
    let a = Arc::new(Mutex::new(Seen::default()));
    let b = Arc::new(Mutex::new(Seen::default()));
    let wa = fan_out_worker(&engine, "two-a", "two", &a);
    let wb = fan_out_worker(&engine, "two-b", "two", &b);
    put_plain(&engine, "two", "x", 500, 50).await;
    wait_until(Duration::from_secs(20), "both have 500", || async {
        a.lock().await.count() >= 500 && b.lock().await.count() >= 500
    })
    .await;
    wa.handle.shutdown().await;
    wb.handle.shutdown().await;
    let (mut da, mut db) = (all_data(&a).await, all_data(&b).await);
    da.sort();
    db.sort();
    assert_eq!(da.len(), 500);
    assert_eq!(da, db, "each application got every record");
}
