//! Taking and balancing: first round, several workers, crash and graceful failover, hand-off
//! to a newcomer, a stuck owner, and many workers starting at once on an empty table.

mod common;

use common::*;
use futures::future::join_all;
use kcl::{LeaseEvent, LeaseKey};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use stream_engine::Engine;

/// Watches a table until stopped: every `(lease, counter)` seen must have one owner, and a
/// lease never changes owner without its counter moving.
fn watch_ownership(
    engine: &Engine,
    table: &str,
) -> (Arc<AtomicBool>, tokio::task::JoinHandle<usize>) {
    let stop = Arc::new(AtomicBool::new(false));
    let d = engine.dynamodb_client();
    let table = table.to_owned();
    let flag = stop.clone();
    let task = tokio::spawn(async move {
        let mut seen: HashMap<(String, u64), Option<String>> = HashMap::new();
        let mut scans = 0;
        while !flag.load(Ordering::Relaxed) {
            // The table may not exist yet.
            let Ok(page) = d
                .scan()
                .table_name(&table)
                .consistent_read(true)
                .send()
                .await
            else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            scans += 1;
            for item in page.items() {
                let key = item["leaseKey"].as_s().expect("key").clone();
                let counter: u64 = item["leaseCounter"]
                    .as_n()
                    .expect("n")
                    .parse()
                    .expect("u64");
                let owner = item.get("leaseOwner").and_then(|o| o.as_s().ok()).cloned();
                if let Some(before) = seen.insert((key.clone(), counter), owner.clone()) {
                    assert_eq!(before, owner, "two owners of {key} at counter {counter}");
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        scans
    });
    (stop, task)
}

fn sorted_counts(counts: &HashMap<String, usize>) -> Vec<usize> {
    let mut v: Vec<usize> = counts.values().copied().collect();
    v.sort_unstable();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_takes_every_lease_in_its_first_round() {
    let engine = engine().await;
    stream(&engine, "one", 8).await;
    let (c, mut events) = start(&engine, "one-app", "one", "w1", fast()).await;
    // No waiting: start() returned after the first take round.
    assert_eq!(c.held_keys().len(), 8);
    assert_eq!(c.metrics().leases_taken, 8);
    let mut acquired = 0;
    while let Some(e) = events.try_recv() {
        assert!(matches!(e, LeaseEvent::Acquired(_)), "{e:?}");
        acquired += 1;
    }
    assert_eq!(acquired, 8);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_balance_by_hand_off_without_two_owners_at_once() {
    let engine = engine().await;
    stream(&engine, "three", 8).await;
    let (stop, watcher) = watch_ownership(&engine, "three-app");
    let (c1, e1) = start(&engine, "three-app", "three", "w1", fast()).await;
    let w1 = Holder::new(c1, e1, true);
    assert_eq!(w1.held(), 8);
    let (c2, e2) = start(&engine, "three-app", "three", "w2", fast()).await;
    let w2 = Holder::new(c2, e2, true);
    let (c3, e3) = start(&engine, "three-app", "three", "w3", fast()).await;
    let w3 = Holder::new(c3, e3, true);
    let (stop_held, held_watch) = watch_held(vec![
        w1.coordinator.clone(),
        w2.coordinator.clone(),
        w3.coordinator.clone(),
    ]);
    let took = wait_until(Duration::from_secs(20), "3/3/2", || async {
        sorted_counts(&counts(&engine, "three-app").await) == [2, 3, 3]
    })
    .await;
    println!("balanced 3/3/2 in {took:?}");
    // The workers' own views agree with the table.
    wait_until(Duration::from_secs(5), "views settle", || async {
        let mut all = Vec::new();
        for w in [&w1, &w2, &w3] {
            all.extend(w.coordinator.held_keys());
        }
        let unique: HashSet<&LeaseKey> = all.iter().collect();
        all.len() == 8 && unique.len() == 8
    })
    .await;
    // Every move was a hand-off after a checkpoint, none a steal.
    let stolen: u64 = [&w1, &w2, &w3]
        .iter()
        .map(|w| w.coordinator.metrics().leases_stolen)
        .sum();
    assert_eq!(stolen, 0);
    let handed: usize = [&w1, &w2, &w3]
        .iter()
        .map(|w| w.coordinator.metrics().leases_handed_off as usize)
        .sum();
    assert!(
        handed >= 5,
        "8 leases started on w1, at least 5 moved: {handed}"
    );
    let taken: u64 = [&w1, &w2, &w3]
        .iter()
        .map(|w| w.coordinator.metrics().leases_taken)
        .sum();
    assert_eq!(
        taken, 8,
        "only w1's first round took; every later move was a hand-off"
    );
    stop.store(true, Ordering::Relaxed);
    assert!(watcher.await.expect("watcher") > 1);
    stop_held.store(true, Ordering::Relaxed);
    assert!(held_watch.await.expect("no lease held twice") > 1);
    for w in [&w1, &w2, &w3] {
        w.coordinator.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_gets_leases_by_hand_off_each_after_the_owners_checkpoint() {
    let engine = engine().await;
    stream(&engine, "join", 6).await;
    let (c1, e1) = start(&engine, "join-app", "join", "w1", fast()).await;
    let w1 = Holder::new(c1, e1, true);
    let (c2, e2) = start(&engine, "join-app", "join", "w2", fast()).await;
    let w2 = Holder::new(c2, e2, true);
    wait_until(Duration::from_secs(20), "3/3", || async {
        sorted_counts(&counts(&engine, "join-app").await) == [3, 3]
    })
    .await;
    // Watch that neither owner drops below the target of 2 while the newcomer joins.
    let floor = Arc::new(AtomicBool::new(true));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (engine_d, floor, stop) = (engine.dynamodb_client(), floor.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let page = engine_d
                    .scan()
                    .table_name("join-app")
                    .consistent_read(true)
                    .send()
                    .await
                    .expect("scan");
                let mut c: HashMap<String, usize> = HashMap::new();
                for item in page.items() {
                    if let Some(o) = item.get("leaseOwner").and_then(|o| o.as_s().ok()) {
                        *c.entry(o.clone()).or_default() += 1;
                    }
                }
                if ["w1", "w2"]
                    .iter()
                    .any(|w| c.get(*w).copied().unwrap_or(0) < 2)
                {
                    floor.store(false, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let (c3, e3) = start(&engine, "join-app", "join", "w3", fast()).await;
    let w3 = Holder::new(c3, e3, true);
    let (stop_held, held_watch) = watch_held(vec![
        w1.coordinator.clone(),
        w2.coordinator.clone(),
        w3.coordinator.clone(),
    ]);
    // Balanced within 3 take rounds (500 ms each), with as much again for a loaded machine.
    let took = wait_until(Duration::from_secs(5), "2/2/2", || async {
        sorted_counts(&counts(&engine, "join-app").await) == [2, 2, 2]
    })
    .await;
    println!("newcomer at its share after {took:?}");
    wait_until(
        Duration::from_secs(5),
        "w3 holds what it was given",
        || async { w3.held() == 2 },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    watcher.await.expect("watcher");
    assert!(
        floor.load(Ordering::Relaxed),
        "an owner went below the target"
    );
    stop_held.store(true, Ordering::Relaxed);
    assert!(held_watch.await.expect("no lease held twice") > 1);

    let m3 = w3.coordinator.metrics();
    assert_eq!(m3.leases_received, 2);
    assert_eq!(m3.leases_stolen, 0);
    assert_eq!(m3.leases_taken, 0);
    // Each lease the newcomer holds starts at the checkpoint its owner wrote before letting go.
    let mut handed = Vec::new();
    for w in [&w1, &w2] {
        handed.extend(w.log.lock().await.handed_off.clone());
    }
    for lease in w3.coordinator.held_leases().await {
        let (_, seq) = handed
            .iter()
            .rev()
            .find(|(k, _)| *k == lease.key)
            .expect("every lease of w3 was handed off");
        assert_eq!(lease.checkpoint.checkpoint.as_str(), seq);
    }
    for w in [&w1, &w2, &w3] {
        w.coordinator.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_that_ignores_hand_off_loses_the_lease_after_the_failover_time() {
    let engine = engine().await;
    stream(&engine, "stuck", 4).await;
    let (c1, e1) = start(&engine, "stuck-app", "stuck", "w1", fast()).await;
    // w1 keeps renewing but never answers a hand-off request.
    let w1 = Holder::new(c1, e1, false);
    let (c2, e2) = start(&engine, "stuck-app", "stuck", "w2", fast()).await;
    let w2 = Holder::new(c2, e2, true);
    let took = wait_until(Duration::from_secs(15), "2/2", || async {
        sorted_counts(&counts(&engine, "stuck-app").await) == [2, 2]
    })
    .await;
    println!("stuck owner relieved after {took:?}");
    // The table changes before the worker counts what it did.
    wait_until(Duration::from_secs(5), "w2 holds its two", || async {
        w2.held() == 2
    })
    .await;
    let m2 = w2.coordinator.metrics();
    assert_eq!(m2.leases_stolen, 2);
    assert_eq!(m2.leases_received, 0);
    let log = w1.log.lock().await;
    let requested = log
        .events
        .iter()
        .filter(|e| matches!(e, LeaseEvent::HandoffRequested { .. }))
        .count();
    assert!(requested >= 2, "w1 was asked first: {:?}", log.events);
    drop(log);
    wait_until(Duration::from_secs(5), "w1 notices", || async {
        w1.coordinator.held_keys().len() == 2
    })
    .await;
    for w in [&w1, &w2] {
        w.coordinator.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_workers_leases_are_taken_after_the_failover_time() {
    let engine = engine().await;
    stream(&engine, "crash", 4).await;
    let (c1, e1) = start(&engine, "crash-app", "crash", "w1", fast()).await;
    let w1 = Holder::new(c1, e1, true);
    let (c2, e2) = start(&engine, "crash-app", "crash", "w2", fast()).await;
    let w2 = Holder::new(c2, e2, true);
    wait_until(Duration::from_secs(15), "2/2", || async {
        sorted_counts(&counts(&engine, "crash-app").await) == [2, 2]
    })
    .await;
    let taken_before = w1.coordinator.metrics().leases_taken;
    // A crash: the coordinator and its tasks go without releasing anything.
    drop(w2);
    // Failover (1 s) + one take round (0.5 s), with room for a loaded machine.
    let took = wait_until(Duration::from_secs(5), "w1 holds all", || async {
        w1.held() == 4
    })
    .await;
    println!("crashed worker's leases taken after {took:?} (failover 1 s, take every 500 ms)");
    assert_eq!(w1.coordinator.metrics().leases_taken, taken_before + 2);
    w1.coordinator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_releases_so_others_take_at_once() {
    let engine = engine().await;
    stream(&engine, "graceful", 4).await;
    // A long failover time: the leases can only move this fast because they are released.
    // Renewals (which carry hand-off requests) stay quick.
    let slow = fast()
        .failover_time(Duration::from_secs(30))
        .renew_interval(Duration::from_millis(300))
        .take_interval(Duration::from_millis(300));
    let (c1, e1) = start(&engine, "graceful-app", "graceful", "w1", slow.clone()).await;
    let w1 = Holder::new(c1, e1, true);
    let (c2, e2) = start(&engine, "graceful-app", "graceful", "w2", slow.clone()).await;
    let w2 = Holder::new(c2, e2, true);
    wait_until(Duration::from_secs(15), "2/2", || async {
        sorted_counts(&counts(&engine, "graceful-app").await) == [2, 2]
    })
    .await;
    let report = w2.coordinator.shutdown().await;
    assert_eq!(report.released, 2);
    // Released: no owner, or already w1 (its take round may come first).
    let owners = owners(&engine, "graceful-app").await;
    assert!(
        owners.values().all(|o| o.as_deref() != Some("w2")),
        "released leases have no owner: {owners:?}"
    );
    // Within 10 s, a third of the failover time: taken because released, not expired.
    let took = wait_until(Duration::from_secs(10), "w1 holds all", || async {
        w1.held() == 4
    })
    .await;
    println!("released leases taken after {took:?} (failover 30 s)");
    assert_eq!(w2.coordinator.shutdown().await.released, 0, "idempotent");
    w1.coordinator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_workers_starting_at_once_create_each_lease_exactly_once() {
    let engine = engine().await;
    stream(&engine, "herd", 10).await;
    let starts = (0..5).map(|i| {
        let engine = &engine;
        async move { start(engine, "herd-app", "herd", &format!("w{i}"), fast()).await }
    });
    let workers: Vec<Holder> = join_all(starts)
        .await
        .into_iter()
        .map(|(c, e)| Holder::new(c, e, true))
        .collect();
    let items = raw_items(&engine, "herd-app").await;
    assert_eq!(items.len(), 10);
    let created: u64 = workers
        .iter()
        .map(|w| w.coordinator.metrics().leases_created)
        .sum();
    assert_eq!(created, 10, "each lease written once");
    let took = wait_until(Duration::from_secs(20), "2 each", || async {
        sorted_counts(&counts(&engine, "herd-app").await) == [2, 2, 2, 2, 2]
    })
    .await;
    println!("5 workers balanced after {took:?}");
    for w in &workers {
        w.coordinator.shutdown().await;
    }
}
