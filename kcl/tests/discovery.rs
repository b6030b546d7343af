//! Shard discovery: the leases of an empty table after splits and merges, child leases at a
//! shard end, the periodic sync repairing a deleted row, and parent cleanup.

mod common;

use common::*;
use kcl::{
    Checkpoint, ExtendedCheckpoint, InitialPosition, Lease, LeaseEvent, LeaseKey, ShardInfo,
};
use std::collections::HashMap;
use std::time::Duration;
use stream_engine::Engine;

fn shard(i: u32) -> String {
    format!("shardId-{i:012}")
}

/// A stream of 2 shards; shard 0 split into 2 and 3, which are merged into 4. Open: 1 and 4.
async fn resharded(engine: &Engine, name: &str) {
    stream(engine, name, 2).await;
    let k = engine.kinesis_client();
    k.split_shard()
        .stream_name(name)
        .shard_to_split(shard(0))
        .new_starting_hash_key("85070591730234615865843651857942052864")
        .send()
        .await
        .expect("split");
    k.merge_shards()
        .stream_name(name)
        .shard_to_merge(shard(2))
        .adjacent_shard_to_merge(shard(3))
        .send()
        .await
        .expect("merge");
}

async fn leases(engine: &Engine, table: &str) -> HashMap<String, Lease> {
    let table = kcl::LeaseTable::new(engine.dynamodb_client(), table);
    let (all, _) = table.list().await.expect("list");
    all.into_iter().map(|l| (l.key.to_string(), l)).collect()
}

fn parents(l: &Lease) -> Vec<&str> {
    l.parent_shard_ids.iter().map(String::as_str).collect()
}

fn cp(c: Checkpoint) -> ExtendedCheckpoint {
    ExtendedCheckpoint::new(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trim_horizon_leases_the_whole_tree_and_children_wait_for_parents() {
    let engine = engine().await;
    resharded(&engine, "tree").await;
    let (c, _e) = start(&engine, "tree-app", "tree", "w1", fast()).await;
    let (all, _) = c.lease_table().list().await.expect("list");
    let by: HashMap<String, &Lease> = all.iter().map(|l| (l.key.to_string(), l)).collect();
    assert_eq!(by.len(), 5, "{:?}", by.keys());
    assert!(parents(by[&shard(0)]).is_empty());
    assert_eq!(parents(by[&shard(2)]), [shard(0)]);
    assert_eq!(parents(by[&shard(3)]), [shard(0)]);
    assert_eq!(parents(by[&shard(4)]), [shard(2), shard(3)]);
    assert!(
        all.iter()
            .all(|l| l.checkpoint.checkpoint == Checkpoint::TrimHorizon)
    );
    assert!(all.iter().all(|l| l.hash_range.is_some()));

    let key = |i| LeaseKey::shard(shard(i));
    assert!(c.may_start(&key(0)).await.expect("may start"));
    assert!(!c.may_start(&key(2)).await.expect("may start"));
    c.checkpoint(&key(0), cp(Checkpoint::ShardEnd))
        .await
        .expect("end 0");
    assert!(c.may_start(&key(2)).await.expect("may start"));
    assert!(c.may_start(&key(3)).await.expect("may start"));
    c.checkpoint(&key(2), cp(Checkpoint::ShardEnd))
        .await
        .expect("end 2");
    assert!(
        !c.may_start(&key(4))
            .await
            .expect("merge waits for both parents")
    );
    c.checkpoint(&key(3), cp(Checkpoint::ShardEnd))
        .await
        .expect("end 3");
    assert!(c.may_start(&key(4)).await.expect("may start"));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_leases_the_open_shards_and_shard_end_creates_children_once() {
    let engine = engine().await;
    resharded(&engine, "late").await;
    let config = fast().initial_position(InitialPosition::Latest);
    let (c, _e) = start(&engine, "late-app", "late", "w1", config).await;
    let (all, _) = c.lease_table().list().await.expect("list");
    let keys: Vec<&str> = all.iter().map(|l| l.key.as_str()).collect();
    assert_eq!(keys, [shard(1), shard(4)]);
    assert!(
        all.iter()
            .all(|l| l.checkpoint.checkpoint == Checkpoint::Latest)
    );
    // The closed ancestors stay without leases through a sync.
    c.sync_shards().await.expect("sync");
    assert_eq!(raw_items(&engine, "late-app").await.len(), 2);

    // Shard 4 is split; its consumer reaches the end and reports the children, twice.
    engine
        .kinesis_client()
        .split_shard()
        .stream_name("late")
        .shard_to_split(shard(4))
        .new_starting_hash_key("42535295865117307932921825928971026432")
        .send()
        .await
        .expect("split 4");
    let children = [5, 6].map(|i| ShardInfo {
        id: shard(i),
        parents: vec![shard(4)],
        hash_range: ("0".into(), "1".into()),
        closed: false,
    });
    let parent = LeaseKey::shard(shard(4));
    let created = c.metrics().leases_created;
    c.shard_ended(&parent, &children).await.expect("children");
    c.shard_ended(&parent, &children).await.expect("again");
    assert_eq!(c.metrics().leases_created, created + 2);
    let by = leases(&engine, "late-app").await;
    assert_eq!(by.len(), 4);
    assert_eq!(by[&shard(4)].child_shard_ids, [shard(5), shard(6)]);
    for i in [5, 6] {
        assert_eq!(parents(&by[&shard(i)]), [shard(4)]);
        assert_eq!(by[&shard(i)].checkpoint.checkpoint, Checkpoint::TrimHorizon);
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_sync_recreates_a_deleted_lease_row() {
    let engine = engine().await;
    stream(&engine, "repair", 3).await;
    let config = fast().shard_sync_interval(Duration::from_millis(200));
    let (c, mut events) = start(&engine, "repair-app", "repair", "w1", config).await;
    while events.try_recv().is_some() {}
    engine
        .dynamodb_client()
        .delete_item()
        .table_name("repair-app")
        .key("leaseKey", s(&shard(1)))
        .send()
        .await
        .expect("delete a row");
    wait_until(Duration::from_secs(10), "row recreated", || async {
        owners(&engine, "repair-app").await.contains_key(&shard(1))
    })
    .await;
    let by = leases(&engine, "repair-app").await;
    assert_eq!(by[&shard(1)].checkpoint.checkpoint, Checkpoint::TrimHorizon);
    // The worker lost it (its renewal found no item), then takes the new one.
    let mut seen = Vec::new();
    while !seen.iter().any(|e| matches!(e, LeaseEvent::Acquired(_))) {
        let e = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("events")
            .expect("event");
        seen.push(e);
    }
    assert!(
        matches!(&seen[0], LeaseEvent::Lost { key, .. } if key.shard_id() == shard(1)),
        "{seen:?}"
    );
    assert_eq!(
        seen.last().map(|e| e.key().shard_id().to_owned()),
        Some(shard(1))
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_parent_is_deleted_only_after_its_children_started() {
    let engine = engine().await;
    stream(&engine, "clean", 1).await;
    engine
        .kinesis_client()
        .split_shard()
        .stream_name("clean")
        .shard_to_split(shard(0))
        .new_starting_hash_key("170141183460469231731687303715884105728")
        .send()
        .await
        .expect("split");
    let (c, _e) = start(&engine, "clean-app", "clean", "w1", fast()).await;
    let key = |i| LeaseKey::shard(shard(i));
    assert_eq!(c.held_keys().len(), 3);
    c.checkpoint(&key(0), cp(Checkpoint::ShardEnd))
        .await
        .expect("end");
    c.sync_shards().await.expect("sync");
    assert!(
        owners(&engine, "clean-app").await.contains_key(&shard(0)),
        "children not started"
    );
    c.checkpoint(&key(1), cp(Checkpoint::Sequence("77".into())))
        .await
        .expect("child 1");
    c.sync_shards().await.expect("sync");
    assert!(
        owners(&engine, "clean-app").await.contains_key(&shard(0)),
        "child 2 not started"
    );
    c.checkpoint(&key(2), cp(Checkpoint::Sequence("78".into())))
        .await
        .expect("child 2");
    c.sync_shards().await.expect("sync");
    let left = owners(&engine, "clean-app").await;
    assert!(!left.contains_key(&shard(0)), "{left:?}");
    assert_eq!(left.len(), 2);
    assert_eq!(c.metrics().leases_deleted, 1);
    c.shutdown().await;
}
