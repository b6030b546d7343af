//! Record processing through the Scheduler: delivery of aggregated and plain records, order,
//! restart inside an aggregate, failure policies, graceful shutdown and resharding.

mod common;

use async_trait::async_trait;
use common::collector::*;
use common::*;
use kcl::{
    Checkpointer, DeadLetterHandler, InitializeInput, OnError, ProcessRecordsInput, ProcessorError,
    Record, Scheduler, ShardRecordProcessor,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;
use tokio::sync::Mutex;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_gets_every_aggregated_and_plain_record_once_in_order() {
    let engine = engine_unlimited().await;
    stream(&engine, "deliver", 4).await;
    put_aggregated(&engine, "deliver", "agg", 45_000, 500).await;
    put_plain(&engine, "deliver", "plain", 5_000, 500).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let w = worker(
        &engine,
        ("deliver-app", "deliver"),
        "w1",
        quick(),
        seen.clone(),
        Arc::new(AtomicU32::new(0)),
        None,
    );
    wait_until(Duration::from_secs(60), "50 000 records", || async {
        seen.lock().await.count() >= 50_000
    })
    .await;
    w.handle.shutdown().await;
    w.run.await.expect("task").expect("run");
    let seen = seen.lock().await;
    assert_eq!(seen.count(), 50_000);
    let mut unique = std::collections::HashSet::new();
    for r in seen.records.values().flatten() {
        assert!(unique.insert(data(r)), "duplicate {}", data(r));
    }
    assert_ordered(&seen);
    let aggregated = seen
        .records
        .values()
        .flatten()
        .filter(|r| r.aggregated)
        .count();
    assert_eq!(aggregated, 45_000);
    // Sub-sequence numbers count up inside each aggregate from 0.
    let mut by_seq: HashMap<&str, Vec<u64>> = HashMap::new();
    for r in seen.records.values().flatten().filter(|r| r.aggregated) {
        by_seq
            .entry(&r.sequence_number)
            .or_default()
            .push(r.sub_sequence_number);
    }
    for subs in by_seq.values() {
        assert_eq!(*subs, (0..subs.len() as u64).collect::<Vec<_>>());
    }
    assert!(
        by_seq.values().any(|s| s.len() > 1),
        "aggregates with several records"
    );
    assert_eq!(w.handle.processing_metrics().records_processed, 50_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_batch_is_redelivered_and_nothing_skipped() {
    let engine = engine_unlimited().await;
    stream(&engine, "retry", 1).await;
    put_plain(&engine, "retry", "r", 300, 10).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let w = worker(
        &engine,
        ("retry-app", "retry"),
        "w1",
        quick(),
        seen.clone(),
        Arc::new(AtomicU32::new(2)),
        None,
    );
    wait_until(Duration::from_secs(20), "300 records", || async {
        seen.lock().await.count() >= 300
    })
    .await;
    w.handle.shutdown().await;
    let seen = seen.lock().await;
    assert_eq!(seen.count(), 300);
    let got: Vec<String> = seen.records.values().flatten().map(data).collect();
    let want: Vec<String> = (0..300).map(|i| format!("r-{i}")).collect();
    assert_eq!(got, want);
    assert_eq!(w.handle.processing_metrics().retries, 2);
}

struct Dlq {
    got: Mutex<Vec<Record>>,
}

#[async_trait]
impl DeadLetterHandler for Dlq {
    async fn handle(
        &self,
        _shard: &str,
        records: Vec<Record>,
        _error: &ProcessorError,
    ) -> Result<(), ProcessorError> {
        self.got.lock().await.extend(records);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bisect_on_error_sends_the_poison_record_to_the_dead_letter_handler() {
    let engine = engine_unlimited().await;
    stream(&engine, "poison", 1).await;
    put_plain(&engine, "poison", "p", 100, 7).await;
    let dlq = Arc::new(Dlq {
        got: Mutex::new(Vec::new()),
    });
    let config = quick().on_error(OnError::Bisect {
        attempts_per_record: 2,
        dead_letter: dlq.clone(),
    });
    let seen = Arc::new(Mutex::new(Seen::default()));
    let w = worker(
        &engine,
        ("poison-app", "poison"),
        "w1",
        config,
        seen.clone(),
        Arc::new(AtomicU32::new(0)),
        Some(b"p-42"),
    );
    wait_until(
        Duration::from_secs(20),
        "99 records and the poison one",
        || async { seen.lock().await.count() >= 99 && !dlq.got.lock().await.is_empty() },
    )
    .await;
    // More records after the poison one: the shard moved on.
    put_plain(&engine, "poison", "q", 10, 7).await;
    wait_until(Duration::from_secs(20), "the shard moves on", || async {
        seen.lock().await.count() >= 109
    })
    .await;
    w.handle.shutdown().await;
    let seen = seen.lock().await;
    let got: Vec<String> = seen.records.values().flatten().map(data).collect();
    let mut want: Vec<String> = (0..100)
        .filter(|i| *i != 42)
        .map(|i| format!("p-{i}"))
        .collect();
    want.extend((0..10).map(|i| format!("q-{i}")));
    assert_eq!(got, want);
    let dead: Vec<String> = dlq.got.lock().await.iter().map(data).collect();
    assert_eq!(dead, ["p-42"]);
    assert_eq!(w.handle.processing_metrics().dead_lettered, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_checkpoints_and_another_worker_continues_at_once() {
    let engine = engine_unlimited().await;
    stream(&engine, "handover", 2).await;
    put_plain(&engine, "handover", "a", 200, 20).await;
    // A long failover time: the other worker can only continue this soon after a release.
    let config = quick().coordinator(
        fast()
            .failover_time(Duration::from_secs(30))
            .renew_interval(Duration::from_millis(300))
            .take_interval(Duration::from_millis(300)),
    );
    let seen1 = Arc::new(Mutex::new(Seen::default()));
    let w1 = worker(
        &engine,
        ("handover-app", "handover"),
        "w1",
        config.clone(),
        seen1.clone(),
        Arc::new(AtomicU32::new(0)),
        None,
    );
    wait_until(Duration::from_secs(20), "first records", || async {
        seen1.lock().await.count() >= 200
    })
    .await;
    w1.handle.shutdown().await;
    {
        let s = seen1.lock().await;
        assert_eq!(s.shutdown_requested.len(), 2, "{:?}", s.shutdown_requested);
    }
    put_plain(&engine, "handover", "b", 100, 20).await;
    let seen2 = Arc::new(Mutex::new(Seen::default()));
    let w2 = worker(
        &engine,
        ("handover-app", "handover"),
        "w2",
        config,
        seen2.clone(),
        Arc::new(AtomicU32::new(0)),
        None,
    );
    let took = wait_until(Duration::from_secs(10), "w2 continues", || async {
        seen2.lock().await.count() >= 100
    })
    .await;
    println!("continued on another worker after {took:?} (failover 30 s)");
    w2.handle.shutdown().await;
    let s2 = seen2.lock().await;
    // w2 starts exactly after w1's checkpoints: only the new records.
    let got: Vec<String> = s2.records.values().flatten().map(data).collect();
    assert_eq!(got.len(), 100, "{got:?}");
    assert!(got.iter().all(|d| d.starts_with("b-")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_keep_their_order_per_key_across_a_split_and_a_merge() {
    let engine = engine_unlimited().await;
    stream(&engine, "reshard", 2).await;
    // Everything is written before the worker starts: children have records from the
    // start, so only the parent-first rule keeps each key in order.
    put_plain(&engine, "reshard", "one", 400, 40).await;
    let k = engine.kinesis_client();
    k.split_shard()
        .stream_name("reshard")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("85070591730234615865843651857942052864")
        .send()
        .await
        .expect("split");
    put_plain(&engine, "reshard", "two", 400, 40).await;
    k.merge_shards()
        .stream_name("reshard")
        .shard_to_merge("shardId-000000000002")
        .adjacent_shard_to_merge("shardId-000000000003")
        .send()
        .await
        .expect("merge");
    put_plain(&engine, "reshard", "three", 400, 40).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let w = worker(
        &engine,
        ("reshard-app", "reshard"),
        "w1",
        quick(),
        seen.clone(),
        Arc::new(AtomicU32::new(0)),
        None,
    );
    wait_until(Duration::from_secs(30), "1 200 records", || async {
        seen.lock().await.count() >= 1200
    })
    .await;
    w.handle.shutdown().await;
    let seen = seen.lock().await;
    assert_eq!(seen.count(), 1200);
    // Per key, the order of writing: phase one, two, three, and numbers increasing.
    let mut by_key: HashMap<String, Vec<(u32, usize)>> = HashMap::new();
    let phase = |d: &str| match d.split('-').next() {
        Some("one") => 1,
        Some("two") => 2,
        _ => 3,
    };
    // In delivery order across all shards: parents before children, so each key's records
    // come in the order they were written.
    for r in &seen.order {
        let d = data(r);
        let n: usize = d
            .rsplit('-')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("number");
        by_key
            .entry(r.partition_key.clone())
            .or_default()
            .push((phase(&d), n));
    }
    for (key, list) in &by_key {
        let mut sorted = list.clone();
        sorted.sort();
        assert_eq!(list, &sorted, "{key} out of order");
    }
    let at = |what: String| {
        seen.timeline
            .iter()
            .position(|e| *e == what)
            .unwrap_or_else(|| panic!("{what} missing: {:?}", seen.timeline))
    };
    let sid = |i: u32| format!("shardId-{i:012}");
    for (child, parents) in [(2, vec![0]), (3, vec![0]), (4, vec![2, 3])] {
        for p in parents {
            assert!(
                at(format!("end {}", sid(p))) < at(format!("init {}", sid(child))),
                "{} started before its parent {} ended: {:?}",
                sid(child),
                sid(p),
                seen.timeline
            );
        }
    }
    let ended: std::collections::HashSet<&str> = seen.ended.iter().map(String::as_str).collect();
    for parent in [
        "shardId-000000000000",
        "shardId-000000000002",
        "shardId-000000000003",
    ] {
        assert!(ended.contains(parent), "{parent} did not end: {ended:?}");
    }
    let table = kcl::LeaseTable::new(engine.dynamodb_client(), "reshard-app");
    let (leases, _) = table.list().await.expect("list");
    let by: HashMap<&str, &kcl::Lease> = leases.iter().map(|l| (l.key.shard_id(), l)).collect();
    assert_eq!(
        by["shardId-000000000004"].parent_shard_ids,
        ["shardId-000000000002", "shardId-000000000003"]
    );
    for parent in [
        "shardId-000000000000",
        "shardId-000000000002",
        "shardId-000000000003",
    ] {
        if let Some(l) = by.get(parent) {
            assert!(l.is_finished(), "{parent} not at SHARD_END");
        }
    }
}

/// Checkpoints once, at the fifth record, and never again.
struct CheckpointAtFifth {
    seen: Arc<Mutex<Vec<Record>>>,
}

#[async_trait]
impl ShardRecordProcessor for CheckpointAtFifth {
    async fn initialize(&mut self, _input: InitializeInput) -> Result<(), ProcessorError> {
        Ok(())
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        let mut seen = self.seen.lock().await;
        let before = seen.len();
        seen.extend(input.records.iter().cloned());
        if before < 5 && seen.len() >= 5 {
            let fifth = seen[4].clone();
            checkpointer.checkpoint_record(&fifth).await?;
        }
        Ok(())
    }

    async fn shard_ended(&mut self, _c: &mut Checkpointer) -> Result<(), ProcessorError> {
        Ok(())
    }

    async fn shutdown_requested(&mut self, _c: &mut Checkpointer) -> Result<(), ProcessorError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_a_checkpoint_inside_an_aggregate_resumes_at_the_next_sub_record() {
    let engine = engine_unlimited().await;
    stream(&engine, "mid", 1).await;
    let mut agg = shared_proto::Aggregator::new();
    for i in 0..10 {
        agg.add(&format!("key-{i}"), None, format!("sub-{i}").as_bytes())
            .expect("add");
    }
    engine
        .kinesis_client()
        .put_record()
        .stream_name("mid")
        .partition_key("outer")
        .data(aws_sdk_kinesis::primitives::Blob::new(
            agg.finish().to_vec(),
        ))
        .send()
        .await
        .expect("put");
    let first = Arc::new(Mutex::new(Vec::new()));
    let f = first.clone();
    let w1 = scheduler_with(
        &engine,
        "mid-app",
        "mid",
        "w1",
        move |_: &str| -> Box<dyn ShardRecordProcessor> {
            Box::new(CheckpointAtFifth { seen: f.clone() })
        },
    );
    wait_until(Duration::from_secs(20), "all ten sub-records", || async {
        first.lock().await.len() >= 10
    })
    .await;
    w1.handle.shutdown().await;
    let second = Arc::new(Mutex::new(Seen::default()));
    let w2 = worker(
        &engine,
        ("mid-app", "mid"),
        "w2",
        quick(),
        second.clone(),
        Arc::new(AtomicU32::new(0)),
        None,
    );
    wait_until(Duration::from_secs(20), "the rest", || async {
        second.lock().await.count() >= 5
    })
    .await;
    w2.handle.shutdown().await;
    let got: Vec<(u64, String)> = second
        .lock()
        .await
        .records
        .values()
        .flatten()
        .map(|r| (r.sub_sequence_number, data(r)))
        .collect();
    let want: Vec<(u64, String)> = (5..10).map(|i| (i, format!("sub-{i}"))).collect();
    assert_eq!(got, want, "resumed after sub-record 4, nothing repeated");
    let init = &second.lock().await.initialized[0];
    assert_eq!(init.checkpoint.sub_sequence, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_throttling_and_expired_iterators_lose_nothing() {
    let engine = engine_unlimited().await;
    stream(&engine, "flaky", 2).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let w = worker(
        &engine,
        ("flaky-app", "flaky"),
        "w1",
        quick(),
        seen.clone(),
        Arc::new(AtomicU32::new(0)),
        None,
    );
    put_plain(&engine, "flaky", "a", 300, 30).await;
    wait_until(Duration::from_secs(20), "first 300", || async {
        seen.lock().await.count() >= 300
    })
    .await;
    let injected = engine.faults().injected_count();
    engine.faults().throttle_next("GetRecords", 4);
    // Every iterator the consumers hold expires (5 minutes on the engine's clock).
    engine.advance_clock(Duration::from_secs(301));
    put_plain(&engine, "flaky", "b", 300, 30).await;
    wait_until(Duration::from_secs(20), "the next 300", || async {
        seen.lock().await.count() >= 600
    })
    .await;
    w.handle.shutdown().await;
    assert!(
        engine.faults().injected_count() >= injected + 4,
        "throttled"
    );
    let seen = seen.lock().await;
    assert_eq!(seen.count(), 600, "nothing lost, nothing twice");
    assert_ordered(&seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_shards_resume_elsewhere_from_the_last_checkpoint() {
    let engine = engine_unlimited().await;
    stream(&engine, "kill", 2).await;
    put_plain(&engine, "kill", "a", 200, 20).await;
    let seen1 = Arc::new(Mutex::new(Seen::default()));
    let w1 = worker(
        &engine,
        ("kill-app", "kill"),
        "w1",
        quick(),
        seen1.clone(),
        Arc::new(AtomicU32::new(0)),
        None,
    );
    wait_until(Duration::from_secs(20), "w1 read everything", || async {
        seen1.lock().await.count() >= 200
    })
    .await;
    // ... and checkpointed it (a record is seen just before its batch's checkpoint).
    let table = kcl::LeaseTable::new(engine.dynamodb_client(), "kill-app");
    wait_until(
        Duration::from_secs(20),
        "w1 checkpointed everything",
        || async {
            let seen = seen1.lock().await;
            let Ok((leases, _)) = table.list().await else {
                return false;
            };
            leases.iter().all(|l| {
                let last = seen.records.get(l.key.shard_id()).and_then(|r| r.last());
                last.is_some_and(|r| l.checkpoint.checkpoint.as_str() == r.sequence_number)
            })
        },
    )
    .await;
    // A crash: the run future is dropped with everything it started; nothing is released.
    w1.run.abort();
    let _ = w1.run.await;
    put_plain(&engine, "kill", "b", 100, 20).await;
    let seen2 = Arc::new(Mutex::new(Seen::default()));
    let w2 = worker(
        &engine,
        ("kill-app", "kill"),
        "w2",
        quick(),
        seen2.clone(),
        Arc::new(AtomicU32::new(0)),
        None,
    );
    let took = wait_until(Duration::from_secs(10), "w2 continues", || async {
        seen2.lock().await.count() >= 100
    })
    .await;
    println!("resumed after a kill in {took:?} (failover 1 s)");
    w2.handle.shutdown().await;
    let s2 = seen2.lock().await;
    // w1 checkpointed after every batch: w2 starts after it, with only the new records.
    let got: Vec<String> = s2.records.values().flatten().map(data).collect();
    assert_eq!(got.len(), 100, "{got:?}");
    assert!(got.iter().all(|d| d.starts_with("b-")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pull_style_stream_delivers_in_order_and_redelivers_a_failed_batch() {
    use futures::StreamExt;
    let engine = engine_unlimited().await;
    stream(&engine, "pull", 2).await;
    put_plain(&engine, "pull", "s", 400, 20).await;
    let (scheduler, mut batches) = Scheduler::builder("pull-app", "pull")
        .kinesis(engine.kinesis_client())
        .dynamodb(engine.dynamodb_client())
        .worker_id("w1")
        .config(quick())
        .build_stream()
        .expect("scheduler");
    let handle = scheduler.handle();
    let run = tokio::spawn(scheduler.run());
    let mut got: HashMap<String, Vec<String>> = HashMap::new();
    let mut failed_once = false;
    let mut redelivered = None;
    let mut total = 0;
    while total < 400 {
        let batch = tokio::time::timeout(Duration::from_secs(20), batches.next())
            .await
            .expect("a batch")
            .expect("stream open");
        assert_eq!(batch.kind(), kcl::BatchKind::Records);
        let first = data(&batch.records()[0]);
        if !failed_once {
            failed_once = true;
            redelivered = Some(first);
            batch.fail("not now");
            continue;
        }
        if redelivered.as_deref() == Some(first.as_str()) {
            redelivered = None;
        }
        total += batch.records().len();
        got.entry(batch.shard_id().to_owned())
            .or_default()
            .extend(batch.records().iter().map(data));
        batch.checkpoint().await.expect("checkpoint");
        batch.ack();
    }
    assert!(redelivered.is_none(), "the failed batch came again");
    // Shutdown: every shard hands out a ShutdownRequested batch, finished here.
    let stopping = tokio::spawn({
        let handle = handle.clone();
        async move { handle.shutdown().await }
    });
    let mut asked = 0;
    while asked < 2 {
        let batch = tokio::time::timeout(Duration::from_secs(20), batches.next())
            .await
            .expect("a shutdown batch")
            .expect("open");
        if batch.kind() == kcl::BatchKind::ShutdownRequested {
            asked += 1;
        }
        batch.ack();
    }
    stopping.await.expect("shutdown");
    run.await.expect("task").expect("run");
    let all: Vec<&String> = got.values().flatten().collect();
    assert_eq!(all.len(), 400);
    let unique: std::collections::HashSet<&&String> = all.iter().collect();
    assert_eq!(unique.len(), 400, "nothing twice");
    for list in got.values() {
        let nums: Vec<usize> = list
            .iter()
            .map(|d| d.trim_start_matches("s-").parse().expect("n"))
            .collect();
        let mut sorted = nums.clone();
        sorted.sort_unstable();
        assert_eq!(nums, sorted, "shard order kept");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_range_sub_record_is_dropped_alone_and_a_corrupt_aggregate_is_plain() {
    use shared_proto::{HashKeyRange, partition_key_hash};
    let engine = engine_unlimited().await;
    stream(&engine, "range", 2).await;
    let first_half = HashKeyRange::split_evenly(2)[0];
    let inside: Vec<String> = (0..)
        .map(|i| format!("in-{i}"))
        .filter(|k| first_half.contains(partition_key_hash(k)))
        .take(5)
        .collect();
    let outside = (0..)
        .map(|i| format!("out-{i}"))
        .find(|k| !first_half.contains(partition_key_hash(k)))
        .expect("a key of the second shard");
    let mut agg = shared_proto::Aggregator::new();
    for k in inside.iter().take(3) {
        agg.add(k, None, k.as_bytes()).expect("add");
    }
    agg.add(&outside, None, outside.as_bytes()).expect("add");
    for k in inside.iter().skip(3) {
        agg.add(k, None, k.as_bytes()).expect("add");
    }
    let k = engine.kinesis_client();
    // Routed to shard 0 by its explicit hash key, although one sub-record belongs to shard 1.
    k.put_record()
        .stream_name("range")
        .partition_key("outer")
        .explicit_hash_key("0")
        .data(aws_sdk_kinesis::primitives::Blob::new(
            agg.finish().to_vec(),
        ))
        .send()
        .await
        .expect("put");
    let mut corrupt = shared_proto::Aggregator::new();
    corrupt.add("c", None, b"c").expect("add");
    let mut corrupt = corrupt.finish().to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    k.put_record()
        .stream_name("range")
        .partition_key("outer")
        .explicit_hash_key("0")
        .data(aws_sdk_kinesis::primitives::Blob::new(corrupt.clone()))
        .send()
        .await
        .expect("put");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let w = worker(
        &engine,
        ("range-app", "range"),
        "w1",
        quick(),
        seen.clone(),
        Arc::new(AtomicU32::new(0)),
        None,
    );
    wait_until(Duration::from_secs(20), "6 records", || async {
        seen.lock().await.count() >= 6
    })
    .await;
    w.handle.shutdown().await;
    let seen = seen.lock().await;
    let got: Vec<Vec<u8>> = seen
        .records
        .values()
        .flatten()
        .map(|r| r.data.to_vec())
        .collect();
    let mut want: Vec<Vec<u8>> = inside.iter().map(|k| k.as_bytes().to_vec()).collect();
    want.push(corrupt);
    assert_eq!(
        got, want,
        "the out-of-range sub-record alone dropped; the corrupt one plain"
    );
    let subs: Vec<u64> = seen
        .records
        .values()
        .flatten()
        .map(|r| r.sub_sequence_number)
        .collect();
    assert_eq!(subs, [0, 1, 2, 4, 5, 0]);
    let m = w.handle.processing_metrics();
    assert_eq!(m.out_of_range_sub_records, 1);
    assert_eq!(m.invalid_aggregates, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_share_the_shards_and_process_every_record_once() {
    let engine = engine_unlimited().await;
    stream(&engine, "three", 6).await;
    let seens: Vec<Arc<Mutex<Seen>>> = (0..3)
        .map(|_| Arc::new(Mutex::new(Seen::default())))
        .collect();
    let workers: Vec<Worker> = (0..3)
        .map(|i| {
            worker(
                &engine,
                ("three-app", "three"),
                &format!("w{i}"),
                quick(),
                seens[i].clone(),
                Arc::new(AtomicU32::new(0)),
                None,
            )
        })
        .collect();
    wait_until(Duration::from_secs(20), "2/2/2", || async {
        let mut c: Vec<usize> = counts(&engine, "three-app").await.into_values().collect();
        c.sort_unstable();
        c == [2, 2, 2]
    })
    .await;
    put_plain(&engine, "three", "t", 3000, 300).await;
    wait_until(Duration::from_secs(30), "3000 records", || async {
        let mut n = 0;
        for s in &seens {
            n += s.lock().await.count();
        }
        n >= 3000
    })
    .await;
    for w in &workers {
        w.handle.shutdown().await;
    }
    let mut all = Vec::new();
    for s in &seens {
        let s = s.lock().await;
        assert!(s.count() > 0, "every worker processed some");
        all.extend(s.records.values().flatten().map(data));
    }
    assert_eq!(
        all.len(),
        3000,
        "no lease moved after the records came: nothing twice"
    );
    let unique: std::collections::HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), 3000);
}
