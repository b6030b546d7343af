//! The producer's promises when many tasks share it: flush and shutdown are exact, sends can
//! be cancelled or refused without holding anything back, the Sink keeps order and flushes.

mod common;

use common::*;
use futures::{FutureExt, SinkExt};
use kpl::{Producer, ProducerConfig, PutError, SendError, UserRecord};
use std::collections::HashMap;
use std::time::Duration;
use stream_engine::OutageMode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_covers_every_record_sent_by_every_task() {
    let engine = engine(false).await;
    let k = engine.kinesis_client();
    create(&k, "shared", 4).await;
    let producer = Producer::builder(k.clone(), "shared")
        .build()
        .await
        .expect("producer");
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let producer = producer.clone();
            tokio::spawn(async move {
                let mut handles = Vec::with_capacity(500);
                for i in 0..500 {
                    let r = UserRecord::new(format!("t{t}-k{}", i % 20), format!("{i}"));
                    handles.push(producer.send(r).await.expect("accepted"));
                }
                handles
            })
        })
        .collect();
    let mut handles = Vec::new();
    for t in tasks {
        handles.extend(t.await.expect("task"));
    }
    let report = producer.flush().await;
    assert_eq!(report.records, 8000);
    assert_eq!(report.failed, 0);
    // try_outcome, not now_or_never: polling 8000 tokio oneshots in one task runs out of
    // tokio's cooperative budget after 128 and reports ready handles as pending.
    let unresolved = handles
        .iter_mut()
        .map(|h| h.try_outcome())
        .filter(|o| !matches!(o, Some(Ok(_))))
        .count();
    assert_eq!(unresolved, 0, "flush returned with handles unresolved");
    assert_eq!(producer.metrics().outstanding_records, 0);
    let end = producer.shutdown(Duration::from_secs(5)).await;
    assert_eq!((end.records, end.succeeded, end.failed), (8000, 8000, 0));
    assert!(end.is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_are_resolved_when_flush_returns_while_tasks_keep_sending() {
    let engine = engine(false).await;
    let k = engine.kinesis_client();
    create(&k, "busy", 4).await;
    let producer = Producer::builder(k.clone(), "busy")
        .config(ProducerConfig::default().max_outstanding_records(2000))
        .build()
        .await
        .expect("producer");
    let mut joins = Vec::new();
    for t in 0..16 {
        let producer = producer.clone();
        joins.push(tokio::spawn(async move {
            let mut handles = Vec::new();
            let mut full = 0;
            for i in 0..500 {
                let r = UserRecord::new(format!("t{t}-{}", i % 7), format!("{i}"));
                if i % 5 == 0 {
                    // try_send refused when full: the record is simply not accepted.
                    match producer.try_send(r) {
                        Ok(h) => handles.push(h),
                        Err(SendError::Full) => full += 1,
                        Err(e) => panic!("{e:?}"),
                    }
                } else if i % 7 == 0 {
                    // A send cancelled while it may be waiting for room.
                    let _ = producer.send(r).now_or_never();
                } else {
                    handles.push(producer.send(r).await.expect("accepted"));
                }
            }
            (handles, full)
        }));
    }
    let mut all = Vec::new();
    for j in joins {
        let (handles, _full) = j.await.expect("task");
        all.extend(handles);
    }
    // Every handle taken before the flush must be resolved when it returns.
    let report = tokio::time::timeout(Duration::from_secs(30), producer.flush())
        .await
        .expect("flush returns");
    assert_eq!(report.failed, 0);
    // Outside tokio's cooperative budget, polling each handle once tells whether it is ready.
    let unresolved = tokio::task::unconstrained(async move {
        let mut unresolved = 0;
        for h in all {
            match h.now_or_never() {
                Some(outcome) => {
                    outcome.expect("stored");
                }
                None => unresolved += 1,
            }
        }
        unresolved
    })
    .await;
    assert_eq!(unresolved, 0, "flush returned before every outcome");
    // With nothing outstanding, flush returns at once, again and again.
    for _ in 0..3 {
        tokio::time::timeout(Duration::from_secs(5), producer.flush())
            .await
            .expect("no hang");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_shutdowns_wait_for_the_same_end_and_report_losses() {
    let engine = engine(false).await;
    let k = engine.kinesis_client();
    create(&k, "stop", 2).await;
    let producer = Producer::builder(k.clone(), "stop")
        .config(ProducerConfig::default().request_timeout(Duration::from_millis(300)))
        .build()
        .await
        .expect("producer");
    for i in 0..50 {
        producer
            .send_and_wait(UserRecord::new(format!("k{i}"), "before"))
            .await
            .expect("stored");
    }
    engine
        .faults()
        .pause(Duration::from_secs(60), OutageMode::Refuse);
    let mut handles = Vec::new();
    for i in 0..30 {
        handles.push(
            producer
                .send(UserRecord::new(format!("k{i}"), "during"))
                .await
                .expect("accepted"),
        );
    }
    let stops: Vec<_> = (0..4)
        .map(|_| {
            let p = producer.clone();
            tokio::spawn(async move { p.shutdown(Duration::from_millis(500)).await })
        })
        .collect();
    let mut reports = Vec::new();
    for s in stops {
        reports.push(
            tokio::time::timeout(Duration::from_secs(10), s)
                .await
                .expect("shutdown ends")
                .expect("task"),
        );
    }
    assert!(reports.windows(2).all(|w| w[0] == w[1]), "{reports:?}");
    let r = reports[0];
    assert_eq!((r.records, r.succeeded, r.failed), (80, 50, 30), "{r:?}");
    assert_eq!(r.timed_out, 30);
    assert!(!r.is_clean());
    for h in handles {
        assert!(matches!(h.await, Err(PutError::ShutdownTimeout { .. })));
    }
    // A later call returns the same report at once; flush too, and sends are refused.
    assert_eq!(producer.shutdown(Duration::MAX).await, r);
    assert_eq!(producer.flush().await.records, 80);
    assert!(matches!(
        producer.send(UserRecord::new("k", "late")).await,
        Err(SendError::Closed)
    ));
    engine.faults().resume();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_keeps_order_and_flushes_without_waiting_for_the_buffer_time() {
    let engine = engine(false).await;
    let k = engine.kinesis_client();
    create(&k, "sink", 2).await;
    let producer = Producer::builder(k.clone(), "sink")
        .config(
            ProducerConfig::default()
                .record_max_buffered_time(Duration::from_secs(600))
                .record_ttl(Duration::from_secs(900))
                // A small outstanding limit: poll_ready waits for room often.
                .max_outstanding_records(64)
                .max_outstanding_bytes(8 * 1024 * 1024),
        )
        .build()
        .await
        .expect("producer");
    let mut sink = producer.sink();
    let mut per_key: HashMap<String, usize> = HashMap::new();
    let mut records = Vec::new();
    for i in 0..3000usize {
        let key = format!("key-{}", i % 5);
        let n = per_key.entry(key.clone()).or_insert(0);
        records.push(Ok(UserRecord::new(key.clone(), format!("{key}:{n}"))));
        *n += 1;
    }
    // With a 600 s buffer time, only flushing makes this finish in time.
    tokio::time::timeout(
        Duration::from_secs(60),
        sink.send_all(&mut futures::stream::iter(records)),
    )
    .await
    .expect("flushed, not waiting 600 s")
    .expect("all stored");
    assert_eq!(sink.succeeded(), 3000);
    assert_eq!(sink.failed(), 0);
    check_whole_drop_delivery(&read_all(&k, "sink").await, &per_key);
    // One more record, then flush alone.
    sink.feed(UserRecord::new("last", "last:0"))
        .await
        .expect("fed");
    tokio::time::timeout(Duration::from_secs(30), sink.flush())
        .await
        .expect("no wait for the buffer time")
        .expect("stored");
    assert_eq!(sink.succeeded(), 3001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_failures_are_reported_and_bounded() {
    let engine = engine(false).await;
    let k = engine.kinesis_client();
    create(&k, "sinkfail", 1).await;
    let producer = Producer::builder(k.clone(), "sinkfail")
        .config(ProducerConfig::default().record_ttl(Duration::from_millis(300)))
        .build()
        .await
        .expect("producer");
    engine
        .faults()
        .pause(Duration::from_secs(60), OutageMode::Refuse);
    let mut sink = producer.sink();
    let records = (0..150).map(|i| Ok(UserRecord::new(format!("k{i}"), "x")));
    let err = sink
        .send_all(&mut futures::stream::iter(records))
        .await
        .expect_err("expired");
    assert!(
        matches!(err, kpl::SinkError::Put(PutError::Expired { .. })),
        "{err:?}"
    );
    assert_eq!(sink.failed(), 150);
    assert_eq!(sink.failures().count(), 100, "only the last 100 are kept");
    // Reported once: the next flush is clean.
    sink.flush().await.expect("nothing new failed");
    engine.faults().resume();
}
