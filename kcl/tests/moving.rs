//! Leases that move while records flow: by hand-off (nothing repeats) and by a steal after a
//! missed hand-off (only records after the lease's last checkpoint repeat).

mod common;

use common::collector::*;
use common::*;
use kcl::compare_sequence;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;
use tokio::sync::{Mutex, Semaphore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_that_move_by_hand_off_while_records_flow_repeat_nothing() {
    let engine = engine_unlimited().await;
    stream(&engine, "moving", 6).await;
    let seens: Vec<Arc<Mutex<Seen>>> = (0..3)
        .map(|_| Arc::new(Mutex::new(Seen::default())))
        .collect();
    let start = |i: usize| {
        worker(
            &engine,
            ("moving-app", "moving"),
            &format!("w{i}"),
            quick(),
            seens[i].clone(),
            Arc::new(AtomicU32::new(0)),
            None,
        )
    };
    let w0 = start(0);
    // Records flow while the other two join and take their share by hand-off.
    let writer = {
        let k = engine.kinesis_client();
        tokio::spawn(async move {
            for round in 0..30 {
                let entries = (0..100)
                    .map(|i| {
                        let n = round * 100 + i;
                        aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                            .partition_key(format!("key-{}", n % 300))
                            .data(aws_sdk_kinesis::primitives::Blob::new(format!("m-{n}")))
                            .build()
                            .expect("entry")
                    })
                    .collect();
                k.put_records()
                    .stream_name("moving")
                    .set_records(Some(entries))
                    .send()
                    .await
                    .expect("put");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    wait_until(
        Duration::from_secs(10),
        "w0 processes the first records",
        || async { seens[0].lock().await.count() > 0 },
    )
    .await;
    let w1 = start(1);
    let w2 = start(2);
    writer.await.expect("writer");
    wait_until(Duration::from_secs(30), "3000 records", || async {
        let mut all = std::collections::HashSet::new();
        for s in &seens {
            for r in s.lock().await.records.values().flatten() {
                all.insert(data(r));
            }
        }
        all.len() >= 3000
    })
    .await;
    let moved: u64 = [&w0, &w1, &w2]
        .iter()
        .map(|w| w.handle.lease_metrics().leases_handed_off)
        .sum();
    for w in [&w0, &w1, &w2] {
        w.handle.shutdown().await;
    }
    assert!(moved >= 2, "leases moved while records flowed: {moved}");
    let mut all = Vec::new();
    for s in &seens {
        all.extend(s.lock().await.records.values().flatten().map(data));
    }
    let unique: std::collections::HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), 3000);
    assert_eq!(
        all.len(),
        3000,
        "a hand-off after the owner's checkpoint repeats nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_stolen_after_a_missed_hand_off_repeats_only_what_followed_its_checkpoint() {
    let engine = engine_unlimited().await;
    stream(&engine, "steal", 2).await;
    let seen0 = Arc::new(Mutex::new(Seen::default()));
    let seen1 = Arc::new(Mutex::new(Seen::default()));
    let gate = Arc::new(Semaphore::new(0));
    let w0 = gated_worker(
        &engine,
        ("steal-app", "steal"),
        "w0",
        quick(),
        seen0.clone(),
        Arc::new(AtomicU32::new(0)),
        None,
        Some(gate.clone()),
    );
    put_plain(&engine, "steal", "a", 200, 40).await;
    wait_until(
        Duration::from_secs(20),
        "w0 checkpoints the a- records",
        || async {
            let s = seen0.lock().await;
            s.count() >= 200 && s.checkpointed.len() == 2
        },
    )
    .await;
    // Both of w0's shard consumers now stall inside process_records, after seeing a batch
    // and before checkpointing it: a hand-off request cannot be answered.
    put_plain(&engine, "steal", "stall", 200, 40).await;
    wait_until(
        Duration::from_secs(20),
        "w0 stalls on both shards",
        || async {
            let s = seen0.lock().await;
            s.records
                .values()
                .filter(|r| r.last().is_some_and(|r| r.data.starts_with(b"stall-")))
                .count()
                == 2
        },
    )
    .await;
    let at_steal: BTreeMap<String, String> = seen0.lock().await.checkpointed.clone();
    let w1 = worker(
        &engine,
        ("steal-app", "steal"),
        "w1",
        quick(),
        seen1.clone(),
        Arc::new(AtomicU32::new(0)),
        None,
    );
    let took = wait_until(Duration::from_secs(20), "w1 steals one lease", || async {
        w1.handle.lease_metrics().leases_stolen >= 1 && seen1.lock().await.count() > 0
    })
    .await;
    println!("stolen after an unanswered hand-off in {took:?} (failover 3 s)");
    // w0 wakes up: its checkpoint on the stolen shard is refused, and it is told of the loss.
    gate.close();
    put_plain(&engine, "steal", "c", 200, 40).await;
    let expected: HashSet<String> = ["a", "stall", "c"]
        .iter()
        .flat_map(|p| (0..200).map(move |i| format!("{p}-{i}")))
        .collect();
    wait_until(
        Duration::from_secs(20),
        "every record processed",
        || async {
            let mut all = HashSet::new();
            for s in [&seen0, &seen1] {
                all.extend(s.lock().await.records.values().flatten().map(data));
            }
            all.len() >= expected.len()
        },
    )
    .await;
    w0.handle.shutdown().await;
    w1.handle.shutdown().await;
    let s0 = seen0.lock().await;
    let s1 = seen1.lock().await;
    assert_eq!(
        s0.lost.len(),
        1,
        "w0 is told it lost the stolen lease: {:?}",
        s0.lost
    );
    let stolen = &s0.lost[0];
    let mut all = HashSet::new();
    let mut repeated = 0;
    for (shard, records) in &s1.records {
        let before: HashSet<String> = s0
            .records
            .get(shard)
            .into_iter()
            .flatten()
            .map(data)
            .collect();
        for r in records {
            all.insert(data(r));
            if before.contains(&data(r)) {
                repeated += 1;
                assert_eq!(shard, stolen, "only the stolen shard repeats");
                let checkpoint = &at_steal[shard];
                assert_eq!(
                    compare_sequence(&r.sequence_number, checkpoint),
                    std::cmp::Ordering::Greater,
                    "{} repeated although w0 had checkpointed past it",
                    data(r)
                );
            }
        }
    }
    for records in s0.records.values() {
        all.extend(records.iter().map(data));
    }
    assert_eq!(all, expected, "nothing lost");
    assert!(
        repeated > 0,
        "the stalled batch, never checkpointed, is delivered again"
    );
    assert_ordered(&s0);
    assert_ordered(&s1);
}
