//! The lease table: its schema, items in the Java KCL 2.x shape, fencing, bad items, and
//! configuration errors.

mod common;

use aws_sdk_dynamodb::types::{AttributeValue, BillingMode, KeyType, ScalarAttributeType};
use common::*;
use kcl::{
    Checkpoint, ConfigError, Coordinator, CoordinatorConfig, ExtendedCheckpoint, LeaseError,
    LeaseEvent, LeaseKey, LostReason, StartError,
};
use std::collections::HashMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_and_its_items_have_the_documented_schema() {
    let engine = engine().await;
    stream(&engine, "schema", 2).await;
    let (c, _events) = start(&engine, "schema-app", "schema", "w1", fast()).await;
    assert_eq!(
        c.held_keys().len(),
        2,
        "both leases taken in the first round"
    );

    let table = engine
        .dynamodb_client()
        .describe_table()
        .table_name("schema-app")
        .send()
        .await
        .expect("describe")
        .table
        .expect("table");
    let keys = table.key_schema();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].attribute_name(), "leaseKey");
    assert_eq!(keys[0].key_type(), &KeyType::Hash);
    assert_eq!(
        table.attribute_definitions()[0].attribute_type(),
        &ScalarAttributeType::S
    );
    assert_eq!(
        table.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );

    let items = raw_items(&engine, "schema-app").await;
    assert_eq!(items.len(), 2);
    for item in &items {
        assert!(
            item["leaseKey"]
                .as_s()
                .is_ok_and(|k| k.starts_with("shardId-"))
        );
        assert_eq!(
            item["leaseOwner"].as_s().ok().map(String::as_str),
            Some("w1")
        );
        assert!(
            item["leaseCounter"]
                .as_n()
                .is_ok_and(|n| n.parse::<u64>().is_ok())
        );
        assert_eq!(
            item["checkpoint"].as_s().ok().map(String::as_str),
            Some("TRIM_HORIZON")
        );
        assert_eq!(
            item["checkpointSubSequenceNumber"]
                .as_n()
                .ok()
                .map(String::as_str),
            Some("0")
        );
        assert_eq!(
            item["ownerSwitchesSinceCheckpoint"]
                .as_n()
                .ok()
                .map(String::as_str),
            Some("0")
        );
        assert!(item["startingHashKey"].as_s().is_ok());
        assert!(item["endingHashKey"].as_s().is_ok());
        assert!(
            !item.contains_key("parentShardId"),
            "no parents on a new stream"
        );
    }
    c.shutdown().await;
}

/// A lease written the way the Java KCL 2.x writes it, with an attribute this crate does not
/// know, is taken once expired, checkpointed, released, and keeps that attribute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_java_kcl_lease_is_continued_and_keeps_unknown_attributes() {
    let engine = engine().await;
    stream(&engine, "java", 1).await;
    let d = engine.dynamodb_client();
    let key_schema = aws_sdk_dynamodb::types::KeySchemaElement::builder()
        .attribute_name("leaseKey")
        .key_type(KeyType::Hash)
        .build()
        .expect("key");
    let def = aws_sdk_dynamodb::types::AttributeDefinition::builder()
        .attribute_name("leaseKey")
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("def");
    d.create_table()
        .table_name("java-app")
        .key_schema(key_schema)
        .attribute_definitions(def)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create");
    let java: HashMap<String, AttributeValue> = [
        ("leaseKey", s("shardId-000000000000")),
        ("leaseOwner", s("java-worker-1")),
        ("leaseCounter", n(42)),
        (
            "checkpoint",
            s("49590338271490256608559692538361571095921575989136588898"),
        ),
        ("checkpointSubSequenceNumber", n(3)),
        ("ownerSwitchesSinceCheckpoint", n(0)),
        ("startingHashKey", s("0")),
        (
            "endingHashKey",
            s("340282366920938463463374607431768211455"),
        ),
        ("javaOnlyAttribute", s("keep me")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    d.put_item()
        .table_name("java-app")
        .set_item(Some(java))
        .condition_expression("attribute_not_exists(leaseKey)")
        .send()
        .await
        .expect("java put");

    let (c, mut events) = start(&engine, "java-app", "java", "rust-1", fast()).await;
    assert!(
        c.held_keys().is_empty(),
        "the Java worker's lease is not expired yet"
    );
    let acquired = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("taken after the failover time")
        .expect("event");
    let LeaseEvent::Acquired(lease) = acquired else {
        panic!("expected Acquired, got {acquired:?}");
    };
    assert_eq!(lease.counter, 43);
    assert_eq!(lease.owner_switches_since_checkpoint, 1);
    assert_eq!(lease.checkpoint.sub_sequence, 3);
    assert_eq!(
        lease.other.get("javaOnlyAttribute"),
        Some(&s("keep me")),
        "read back"
    );
    let key = LeaseKey::shard("shardId-000000000000");
    let later = "49590338271490256608559692538361571095921575989136588999";
    c.checkpoint(
        &key,
        ExtendedCheckpoint {
            checkpoint: Checkpoint::Sequence(later.into()),
            sub_sequence: 0,
        },
    )
    .await
    .expect("checkpoint");
    assert_eq!(c.shutdown().await.released, 1);

    let item = d
        .get_item()
        .table_name("java-app")
        .key("leaseKey", s("shardId-000000000000"))
        .consistent_read(true)
        .send()
        .await
        .expect("get")
        .item
        .expect("item");
    assert_eq!(item["checkpoint"], s(later));
    assert_eq!(item["checkpointSubSequenceNumber"], n(0));
    assert_eq!(item["ownerSwitchesSinceCheckpoint"], n(0));
    assert!(!item.contains_key("leaseOwner"), "released");
    let counter: u64 = item["leaseCounter"]
        .as_n()
        .expect("N")
        .parse()
        .expect("u64");
    assert!(
        counter >= 45,
        "take, checkpoint and release each move it: {counter}"
    );
    assert_eq!(item["javaOnlyAttribute"], s("keep me"));
}

/// Another worker takes a lease behind this one's back: a checkpoint fails with LeaseLost
/// and the loss is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_taken_by_another_worker_is_lost_and_cannot_be_checkpointed() {
    let engine = engine().await;
    stream(&engine, "lost", 2).await;
    let (c, mut events) = start(&engine, "lost-app", "lost", "w1", fast()).await;
    while events.try_recv().is_some() {}
    let key = LeaseKey::shard("shardId-000000000001");
    // Only the counter moves, the owner stays w1: the counter alone fences the checkpoint.
    intrude(&engine, "lost-app", key.as_str(), None).await;
    let err = c
        .checkpoint(
            &key,
            ExtendedCheckpoint::new(Checkpoint::Sequence("5".into())),
        )
        .await
        .expect_err("fenced");
    assert!(matches!(err, LeaseError::LeaseLost { .. }), "{err:?}");
    let lost = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("loss reported")
        .expect("event");
    assert_eq!(
        lost,
        LeaseEvent::Lost {
            key: key.clone(),
            reason: LostReason::TakenByOther
        }
    );
    // (The table still names w1, so a later take round may hold it again, at the new
    // counter, after a fenced renewal.)
    let items = raw_items(&engine, "lost-app").await;
    let lost_item = items
        .iter()
        .find(|i| i["leaseKey"] == s(key.as_str()))
        .expect("item");
    assert_eq!(
        lost_item["checkpoint"],
        s("TRIM_HORIZON"),
        "nothing written"
    );

    // The other lease: the intruder again, noticed this time by the renewal.
    let other = LeaseKey::shard("shardId-000000000000");
    intrude(&engine, "lost-app", other.as_str(), Some("intruder")).await;
    // (A take round may re-adopt the first lease meanwhile: its Acquired comes first.)
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("renewal notices")
            .expect("event");
        if let LeaseEvent::Lost { key, reason } = event
            && key == other
        {
            assert_eq!(reason, LostReason::TakenByOther);
            break;
        }
    }
    assert!(!c.held_keys().contains(&other));
    assert!(c.metrics().leases_lost >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_lease_item_is_skipped_and_the_others_are_taken() {
    let engine = engine().await;
    stream(&engine, "bad", 3).await;
    let (c, _e) = start(&engine, "bad-app", "bad", "w1", fast()).await;
    c.shutdown().await;
    engine
        .dynamodb_client()
        .update_item()
        .table_name("bad-app")
        .key("leaseKey", s("shardId-000000000002"))
        .update_expression("SET leaseCounter = :bad")
        .expression_attribute_values(":bad", s("not a number"))
        .send()
        .await
        .expect("corrupt one lease");
    let (c, _e) = start(&engine, "bad-app", "bad", "w2", fast()).await;
    assert_eq!(
        c.held_keys(),
        vec![
            LeaseKey::shard("shardId-000000000000"),
            LeaseKey::shard("shardId-000000000001")
        ]
    );
    assert!(c.metrics().bad_lease_items >= 1);
    let err = c
        .lease_table()
        .get(&LeaseKey::shard("shardId-000000000002"))
        .await
        .expect_err("bad item");
    let text = err.to_string();
    assert!(
        text.contains("shardId-000000000002") && text.contains("leaseCounter"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configuration_and_tables_are_refused() {
    let engine = engine().await;
    stream(&engine, "cfg", 1).await;
    let build = |table: &str, config: CoordinatorConfig| {
        Coordinator::builder(
            engine.dynamodb_client(),
            engine.kinesis_client(),
            table,
            "cfg",
        )
        .config(config)
        .start()
    };
    let err = build("", fast()).await.expect_err("empty name");
    assert!(
        matches!(err, StartError::Config(ConfigError::InvalidName(_))),
        "{err:?}"
    );
    let err = build("cfg-app", fast().renew_interval(Duration::from_secs(2)))
        .await
        .expect_err("renew above failover");
    assert!(matches!(
        err,
        StartError::Config(ConfigError::FailoverNotAboveRenew { .. })
    ));
    let err = build("cfg-app", fast().max_leases_per_worker(0))
        .await
        .expect_err("zero");
    assert!(matches!(err, StartError::Config(ConfigError::Zero(_))));
    let err = build("missing-app", fast().create_table(false))
        .await
        .expect_err("no table");
    assert!(
        matches!(err, StartError::Lease(LeaseError::TableNotFound { .. })),
        "{err:?}"
    );

    // A table with another key schema is not a lease table.
    let key = aws_sdk_dynamodb::types::KeySchemaElement::builder()
        .attribute_name("id")
        .key_type(KeyType::Hash)
        .build()
        .expect("key");
    let def = aws_sdk_dynamodb::types::AttributeDefinition::builder()
        .attribute_name("id")
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("def");
    engine
        .dynamodb_client()
        .create_table()
        .table_name("other-table")
        .key_schema(key)
        .attribute_definitions(def)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create");
    let err = build("other-table", fast())
        .await
        .expect_err("wrong schema");
    assert!(
        matches!(err, StartError::Lease(LeaseError::InvalidTable { .. })),
        "{err:?}"
    );
}

/// A new lease table is `CREATING` for the engine's table delay: `start` waits for `ACTIVE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_waits_for_a_new_table_to_become_active() {
    let engine = stream_engine::Engine::start(
        stream_engine::EngineConfig {
            retention_check_interval: None,
            manual_clock: true,
            table_delay: Duration::from_secs(5),
            ..stream_engine::EngineConfig::default()
        },
        "127.0.0.1:0",
    )
    .await
    .expect("engine");
    stream(&engine, "slow", 1).await;
    let (d, k) = (engine.dynamodb_client(), engine.kinesis_client());
    let starting = tokio::spawn(async move {
        Coordinator::builder(d, k, "slow-app", "slow")
            .worker_id("w1")
            .config(fast())
            .start()
            .await
    });
    // The table exists but is CREATING until the engine's clock passes the delay.
    wait_until(Duration::from_secs(10), "table created", || async {
        engine
            .dynamodb_client()
            .describe_table()
            .table_name("slow-app")
            .send()
            .await
            .is_ok()
    })
    .await;
    assert!(
        !starting.is_finished(),
        "start returned before the table was ACTIVE"
    );
    engine.advance_clock(Duration::from_secs(5));
    let (c, _e) = tokio::time::timeout(Duration::from_secs(10), starting)
        .await
        .expect("start finishes once ACTIVE")
        .expect("task")
        .expect("started");
    assert_eq!(c.held_keys().len(), 1);
    c.shutdown().await;
}
