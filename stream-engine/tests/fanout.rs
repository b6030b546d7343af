//! Enhanced fan-out through the SDK: registered consumers and `SubscribeToShard` event
//! streams (initial response, live records, continuation, lifetime, shard end, faults).

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    ConsumerStatus, ShardIteratorType, StartingPosition, SubscribeToShardEvent,
    SubscribeToShardEventStream,
};
use std::time::Duration;
use stream_engine::{Engine, EngineConfig, Limits};

async fn engine(config: EngineConfig) -> Engine {
    Engine::start(
        EngineConfig {
            retention_check_interval: None,
            limits: Limits::disabled(),
            ..config
        },
        "127.0.0.1:0",
    )
    .await
    .expect("engine")
}

async fn stream(k: &Client, name: &str, shards: i32) -> String {
    k.create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .expect("create");
    k.describe_stream_summary()
        .stream_name(name)
        .send()
        .await
        .expect("summary")
        .stream_description_summary
        .expect("description")
        .stream_arn
}

async fn register(k: &Client, stream_arn: &str, name: &str) -> String {
    k.register_stream_consumer()
        .stream_arn(stream_arn)
        .consumer_name(name)
        .send()
        .await
        .expect("register")
        .consumer
        .expect("consumer")
        .consumer_arn
}

async fn put(k: &Client, stream: &str, from: usize, n: usize) {
    for i in from..from + n {
        k.put_record()
            .stream_name(stream)
            .partition_key("one-key")
            .data(Blob::new(format!("r{i}")))
            .send()
            .await
            .expect("put");
    }
}

fn position(kind: ShardIteratorType, seq: Option<&str>) -> StartingPosition {
    StartingPosition::builder()
        .r#type(kind)
        .set_sequence_number(seq.map(str::to_owned))
        .build()
        .expect("position")
}

type Receiver = aws_sdk_kinesis::primitives::event_stream::EventReceiver<
    SubscribeToShardEventStream,
    aws_sdk_kinesis::types::error::SubscribeToShardEventStreamError,
>;

async fn subscribe(k: &Client, arn: &str, shard: &str, start: StartingPosition) -> Receiver {
    k.subscribe_to_shard()
        .consumer_arn(arn)
        .shard_id(shard)
        .starting_position(start)
        .send()
        .await
        .expect("subscribe")
        .event_stream
}

/// The next event, at most 10 s away; `None` when the stream ended.
async fn next(rx: &mut Receiver) -> Option<SubscribeToShardEvent> {
    let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event in time")
        .expect("no stream error");
    match got {
        Some(SubscribeToShardEventStream::SubscribeToShardEvent(e)) => Some(e),
        Some(other) => panic!("unexpected {other:?}"),
        None => None,
    }
}

fn data(e: &SubscribeToShardEvent) -> Vec<String> {
    e.records()
        .iter()
        .map(|r| String::from_utf8_lossy(r.data().as_ref()).into_owned())
        .collect()
}

#[tokio::test]
async fn consumers_register_become_active_and_are_limited_to_twenty() {
    let e = engine(EngineConfig {
        manual_clock: true,
        consumer_delay: Duration::from_secs(5),
        ..EngineConfig::default()
    })
    .await;
    let k = e.kinesis_client();
    let arn = stream(&k, "regs", 1).await;
    let consumer = register(&k, &arn, "app-1").await;
    assert!(
        consumer.starts_with(&format!("{arn}/consumer/app-1:")),
        "{consumer}"
    );
    let status = |k: Client, c: String| async move {
        k.describe_stream_consumer()
            .consumer_arn(c)
            .send()
            .await
            .expect("describe")
            .consumer_description
            .expect("description")
            .consumer_status
    };
    assert_eq!(
        status(k.clone(), consumer.clone()).await,
        ConsumerStatus::Creating
    );
    // Not ACTIVE yet: no subscription.
    let refused = k
        .subscribe_to_shard()
        .consumer_arn(&consumer)
        .shard_id("shardId-000000000000")
        .starting_position(position(ShardIteratorType::TrimHorizon, None))
        .send()
        .await
        .expect_err("creating");
    assert!(refused.into_service_error().is_resource_in_use_exception());
    e.advance_clock(Duration::from_secs(5));
    assert_eq!(
        status(k.clone(), consumer.clone()).await,
        ConsumerStatus::Active
    );
    let again = k
        .register_stream_consumer()
        .stream_arn(&arn)
        .consumer_name("app-1")
        .send()
        .await
        .expect_err("duplicate");
    assert!(again.into_service_error().is_resource_in_use_exception());
    for i in 2..=20 {
        register(&k, &arn, &format!("app-{i}")).await;
    }
    let over = k
        .register_stream_consumer()
        .stream_arn(&arn)
        .consumer_name("app-21")
        .send()
        .await
        .expect_err("limit");
    assert!(over.into_service_error().is_limit_exceeded_exception());
    let listed = k
        .list_stream_consumers()
        .stream_arn(&arn)
        .send()
        .await
        .expect("list");
    assert_eq!(listed.consumers().len(), 20);
    k.deregister_stream_consumer()
        .consumer_arn(&consumer)
        .send()
        .await
        .expect("deregister");
    let gone = k
        .describe_stream_consumer()
        .consumer_arn(&consumer)
        .send()
        .await
        .expect_err("gone");
    assert!(gone.into_service_error().is_resource_not_found_exception());
}

#[tokio::test]
async fn a_subscription_pushes_live_records_and_refuses_a_second_one() {
    // No heartbeat within the test: every event after the first is a push.
    let e = engine(EngineConfig {
        subscription_heartbeat: Duration::from_secs(600),
        ..EngineConfig::default()
    })
    .await;
    let k = e.kinesis_client();
    let arn = stream(&k, "live", 1).await;
    let consumer = register(&k, &arn, "app").await;
    put(&k, "live", 0, 3).await;
    let mut rx = subscribe(
        &k,
        &consumer,
        "shardId-000000000000",
        position(ShardIteratorType::TrimHorizon, None),
    )
    .await;
    let first = next(&mut rx).await.expect("an event");
    assert_eq!(data(&first), ["r0", "r1", "r2"]);
    assert_eq!(
        Some(first.continuation_sequence_number()),
        first.records().last().map(|r| r.sequence_number())
    );
    // Records written now are pushed at once, in order.
    let started = std::time::Instant::now();
    put(&k, "live", 3, 2).await;
    let mut got = Vec::new();
    while got.len() < 2 {
        got.extend(data(&next(&mut rx).await.expect("an event")));
    }
    println!("pushed within {:?}", started.elapsed());
    assert_eq!(got, ["r3", "r4"]);
    let second = k
        .subscribe_to_shard()
        .consumer_arn(&consumer)
        .shard_id("shardId-000000000000")
        .starting_position(position(ShardIteratorType::Latest, None))
        .send()
        .await
        .expect_err("in use");
    assert!(second.into_service_error().is_resource_in_use_exception());
    // Another consumer gets everything too.
    let other = register(&k, &arn, "other").await;
    let mut rx2 = subscribe(
        &k,
        &other,
        "shardId-000000000000",
        position(ShardIteratorType::TrimHorizon, None),
    )
    .await;
    let mut all = Vec::new();
    while all.len() < 5 {
        all.extend(data(&next(&mut rx2).await.expect("an event")));
    }
    assert_eq!(all, ["r0", "r1", "r2", "r3", "r4"]);
}

#[tokio::test]
async fn a_subscription_ends_after_its_lifetime_and_continues_without_loss_or_repeats() {
    let e = engine(EngineConfig {
        subscription_lifetime: Duration::from_millis(600),
        subscription_window: Duration::from_millis(100),
        subscription_heartbeat: Duration::from_millis(100),
        ..EngineConfig::default()
    })
    .await;
    let k = e.kinesis_client();
    let arn = stream(&k, "life", 1).await;
    let consumer = register(&k, &arn, "app").await;
    let writer = {
        let k = k.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                put(&k, "life", i, 1).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let mut got: Vec<String> = Vec::new();
    let mut start = position(ShardIteratorType::TrimHorizon, None);
    let mut subscriptions = 0;
    while got.len() < 40 {
        let mut rx = subscribe(&k, &consumer, "shardId-000000000000", start.clone()).await;
        subscriptions += 1;
        let mut continuation = None;
        while let Some(ev) = next(&mut rx).await {
            got.extend(data(&ev));
            continuation = Some(ev.continuation_sequence_number().to_owned());
        }
        if let Some(c) = continuation {
            start = position(ShardIteratorType::AfterSequenceNumber, Some(&c));
        }
        assert!(subscriptions < 40, "too many subscriptions");
    }
    writer.await.expect("writer");
    let expected: Vec<String> = (0..40).map(|i| format!("r{i}")).collect();
    assert_eq!(got, expected, "nothing lost, nothing twice");
    assert!(subscriptions >= 2, "the stream ended and was resumed");
}

#[tokio::test]
async fn a_closed_shard_ends_its_subscription_with_the_children() {
    let e = engine(EngineConfig::default()).await;
    let k = e.kinesis_client();
    let arn = stream(&k, "ends", 1).await;
    let consumer = register(&k, &arn, "app").await;
    put(&k, "ends", 0, 2).await;
    k.split_shard()
        .stream_name("ends")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .expect("split");
    let mut rx = subscribe(
        &k,
        &consumer,
        "shardId-000000000000",
        position(ShardIteratorType::TrimHorizon, None),
    )
    .await;
    let mut got = Vec::new();
    let mut last = None;
    while let Some(ev) = next(&mut rx).await {
        got.extend(data(&ev));
        last = Some(ev);
    }
    let last = last.expect("events");
    assert_eq!(got, ["r0", "r1"]);
    // No continuation at the end (the SDK shows the missing member as "").
    assert_eq!(last.continuation_sequence_number(), "");
    let mut children: Vec<&str> = last.child_shards().iter().map(|c| c.shard_id()).collect();
    children.sort_unstable();
    assert_eq!(children, ["shardId-000000000001", "shardId-000000000002"]);
}

/// Reads events (a first empty one, or the record before the fault) until the stream fails;
/// the modeled exception, if the failure is one.
async fn until_error(
    rx: &mut Receiver,
) -> Option<aws_sdk_kinesis::types::error::SubscribeToShardEventStreamError> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("in time")
        {
            Err(aws_sdk_kinesis::error::SdkError::ServiceError(e)) => return Some(e.into_err()),
            Err(_) => return None,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without failing"),
        }
    }
}

#[tokio::test]
async fn injected_faults_break_a_subscription_or_send_an_exception() {
    let e = engine(EngineConfig {
        subscription_window: Duration::ZERO,
        ..EngineConfig::default()
    })
    .await;
    let k = e.kinesis_client();
    let arn = stream(&k, "faulty", 1).await;
    let consumer = register(&k, &arn, "app").await;
    let start = || position(ShardIteratorType::TrimHorizon, None);
    // Each fault is armed once the stream is open; the record that follows meets it.
    let mut rx = subscribe(&k, &consumer, "shardId-000000000000", start()).await;
    e.faults().drop_subscription_events_next(1);
    put(&k, "faulty", 0, 1).await;
    assert!(
        until_error(&mut rx).await.is_none(),
        "a broken connection, not an exception"
    );
    let mut rx = subscribe(&k, &consumer, "shardId-000000000000", start()).await;
    e.faults()
        .error_subscription_events_next("InternalFailureException", 1);
    assert!(
        until_error(&mut rx)
            .await
            .is_some_and(|e| e.is_internal_failure_exception()),
        "the exception arrives typed"
    );
    // Then it works again.
    let mut rx = subscribe(&k, &consumer, "shardId-000000000000", start()).await;
    assert_eq!(data(&next(&mut rx).await.expect("event")), ["r0"]);
}

#[tokio::test]
async fn a_newer_subscription_replaces_the_older_which_is_told() {
    let e = engine(EngineConfig {
        subscription_window: Duration::ZERO,
        ..EngineConfig::default()
    })
    .await;
    let k = e.kinesis_client();
    let arn = stream(&k, "replaced", 1).await;
    let consumer = register(&k, &arn, "app").await;
    let start = || position(ShardIteratorType::Latest, None);
    let mut old = subscribe(&k, &consumer, "shardId-000000000000", start()).await;
    let mut new = subscribe(&k, &consumer, "shardId-000000000000", start()).await;
    assert!(
        until_error(&mut old)
            .await
            .is_some_and(|e| e.is_resource_in_use_exception()),
        "the older subscription ends with ResourceInUseException"
    );
    put(&k, "replaced", 0, 1).await;
    let mut got = Vec::new();
    while got.is_empty() {
        got.extend(data(&next(&mut new).await.expect("an event")));
    }
    assert_eq!(got, ["r0"]);
    k.deregister_stream_consumer()
        .consumer_arn(&consumer)
        .send()
        .await
        .expect("deregister");
    assert!(
        until_error(&mut new)
            .await
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "a deregistered consumer's subscription ends with ResourceNotFoundException"
    );
}
