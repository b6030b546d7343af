//! Bad input gets the error AWS gives: never a 500 or a hang.

mod common;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use common::*;

fn entry(key: &str, data: Vec<u8>) -> PutRecordsRequestEntry {
    PutRecordsRequestEntry::builder()
        .partition_key(key)
        .data(Blob::new(data))
        .build()
        .expect("entry")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_validation_case_gets_its_aws_error() {
    let engine = engine().await;
    let k = engine.kinesis_client_without_retries();
    create(&k, "v", 2).await;

    let put_code = |key: String, ehk: Option<String>, data: Vec<u8>| {
        let k = k.clone();
        async move {
            let err = k
                .put_record()
                .stream_name("v")
                .partition_key(key)
                .set_explicit_hash_key(ehk)
                .data(Blob::new(data))
                .send()
                .await
                .expect_err("rejected");
            code(&err)
        }
    };
    // Unknown stream.
    let err = k
        .put_record()
        .stream_name("nope")
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await
        .expect_err("unknown");
    assert_eq!(code(&err), "ResourceNotFoundException");
    let err = k
        .describe_stream()
        .stream_name("nope")
        .send()
        .await
        .expect_err("unknown");
    assert_eq!(code(&err), "ResourceNotFoundException");
    let err = k
        .describe_stream()
        .stream_name("bad name!")
        .send()
        .await
        .expect_err("pattern");
    assert_eq!(code(&err), "ValidationException");
    // Partition keys.
    assert_eq!(
        put_code(String::new(), None, b"x".to_vec()).await,
        "ValidationException"
    );
    assert_eq!(
        put_code("k".repeat(257), None, b"x".to_vec()).await,
        "ValidationException"
    );
    // Hash keys.
    assert_eq!(
        put_code(
            "k".into(),
            Some((u128::MAX).to_string() + "0"),
            b"x".to_vec()
        )
        .await,
        "ValidationException"
    );
    assert_eq!(
        put_code(
            "k".into(),
            Some("340282366920938463463374607431768211456".into()),
            b"x".to_vec()
        )
        .await,
        "InvalidArgumentException"
    );
    assert_eq!(
        put_code("k".into(), Some("-1".into()), b"x".to_vec()).await,
        "ValidationException"
    );
    // Record over 1 MiB (data alone, and data + key).
    assert_eq!(
        put_code("k".into(), None, vec![0; 1024 * 1024 + 1]).await,
        "ValidationException"
    );
    assert_eq!(
        put_code("kk".into(), None, vec![0; 1024 * 1024 - 1]).await,
        "InvalidArgumentException"
    );
    // PutRecords: over 500 records, over 5 MiB, none.
    let many: Vec<_> = (0..501).map(|i| entry(&format!("k{i}"), vec![1])).collect();
    let err = k
        .put_records()
        .stream_name("v")
        .set_records(Some(many))
        .send()
        .await
        .expect_err("501");
    assert_eq!(code(&err), "ValidationException");
    let heavy: Vec<_> = (0..6)
        .map(|i| entry(&format!("k{i}"), vec![1; 1000 * 1000]))
        .collect();
    let err = k
        .put_records()
        .stream_name("v")
        .set_records(Some(heavy))
        .send()
        .await
        .expect_err("6 MB");
    assert_eq!(code(&err), "InvalidArgumentException");
    let err = k
        .put_records()
        .stream_name("v")
        .set_records(Some(vec![]))
        .send()
        .await
        .expect_err("empty");
    assert_eq!(code(&err), "ValidationException");
    // A bad record rejects the whole PutRecords call and stores nothing.
    let err = k
        .put_records()
        .stream_name("v")
        .records(entry("fine", vec![1]))
        .records(entry("", vec![1]))
        .send()
        .await
        .expect_err("bad member");
    assert_eq!(code(&err), "ValidationException");
    let message = err
        .into_service_error()
        .meta()
        .message()
        .unwrap_or("")
        .to_owned();
    assert!(
        message.contains("records.2.member.partitionKey"),
        "{message}"
    );
    for s in shards(&k, "v").await {
        assert!(read_shard(&k, "v", s.shard_id()).await.records.is_empty());
    }

    // Shard ids.
    let it_code = |shard: &str, kind: ShardIteratorType, seq: Option<&str>| {
        let k = k.clone();
        let shard = shard.to_owned();
        let seq = seq.map(str::to_owned);
        async move {
            let err = k
                .get_shard_iterator()
                .stream_name("v")
                .shard_id(shard)
                .shard_iterator_type(kind)
                .set_starting_sequence_number(seq)
                .send()
                .await
                .expect_err("rejected");
            code(&err)
        }
    };
    assert_eq!(
        it_code("shardId-000000000009", ShardIteratorType::TrimHorizon, None).await,
        "ResourceNotFoundException"
    );
    assert_eq!(
        it_code("not a shard!", ShardIteratorType::TrimHorizon, None).await,
        "ValidationException"
    );
    assert_eq!(
        it_code(
            "shardId-000000000000",
            ShardIteratorType::AtSequenceNumber,
            None
        )
        .await,
        "InvalidArgumentException"
    );
    assert_eq!(
        it_code(
            "shardId-000000000000",
            ShardIteratorType::AtSequenceNumber,
            Some("12x")
        )
        .await,
        "InvalidArgumentException"
    );
    assert_eq!(
        it_code("shardId-000000000000", ShardIteratorType::AtTimestamp, None).await,
        "InvalidArgumentException"
    );

    // Iterators: malformed, tampered.
    let err = k
        .get_records()
        .shard_iterator("garbage")
        .send()
        .await
        .expect_err("garbage");
    assert_eq!(code(&err), "InvalidArgumentException");
    let good = k
        .get_shard_iterator()
        .stream_name("v")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("it")
        .shard_iterator
        .expect("it");
    let mut tampered = good.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let err = k
        .get_records()
        .shard_iterator(String::from_utf8(tampered).expect("ascii"))
        .send()
        .await
        .expect_err("tampered");
    assert_eq!(code(&err), "InvalidArgumentException");
    let err = k
        .get_records()
        .shard_iterator(&good)
        .limit(10_001)
        .send()
        .await
        .expect_err("limit");
    assert_eq!(code(&err), "ValidationException");
    // An iterator of a deleted and re-created stream.
    k.delete_stream()
        .stream_name("v")
        .send()
        .await
        .expect("delete");
    let err = k
        .get_records()
        .shard_iterator(&good)
        .send()
        .await
        .expect_err("stream gone");
    assert_eq!(code(&err), "ResourceNotFoundException");
    create(&k, "v", 2).await;
    let err = k
        .get_records()
        .shard_iterator(&good)
        .send()
        .await
        .expect_err("old stream");
    assert_eq!(code(&err), "InvalidArgumentException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_protocol_errors() {
    let engine = engine().await;
    let addr = engine.local_addr();
    let (status, head, body) = raw_post(
        addr,
        "/",
        Some("Kinesis_20131202.ListStreams"),
        b"{not json",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        head.contains("x-amzn-errortype: serializationexception"),
        "{head}"
    );
    let v: serde_json::Value = serde_json::from_str(&body).expect("json error body");
    assert_eq!(v["__type"], "SerializationException");
    assert!(v["message"].as_str().is_some());

    let (status, head, _) = raw_post(addr, "/", Some("Kinesis_20131202.FlyToTheMoon"), b"{}").await;
    assert_eq!(status, 400);
    assert!(
        head.contains("x-amzn-errortype: unknownoperationexception"),
        "{head}"
    );
    let (status, head, _) = raw_post(addr, "/", None, b"{}").await;
    assert_eq!(status, 400);
    assert!(head.contains("unknownoperationexception"), "{head}");
    let (status, head, _) = raw_post(
        addr,
        "/",
        Some("Kinesis_20131202.PutRecords"),
        br#"{"StreamName":"x","Records":"nope"}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(head.contains("serializationexception"), "{head}");
    let (status, _, body) = raw_post(addr, "/", Some("Kinesis_20131202.ListStreams"), b"").await;
    assert_eq!(status, 200, "an empty body is an empty request: {body}");
    let (status, head, _) = raw_post(
        addr,
        "/",
        Some("Kinesis_20131202.PutRecord"),
        br#"{"StreamName":"x","PartitionKey":"k","Data":"!!!"}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        head.contains("resourcenotfoundexception") || head.contains("serializationexception"),
        "{head}"
    );
}

/// DynamoDB request members are typed: a member of the wrong JSON type is a
/// `SerializationException`, a missing required one a `ValidationException` naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_members_of_the_wrong_type_are_serialization_errors() {
    let engine = engine().await;
    let addr = engine.local_addr();
    let call = |op: &'static str, body: &'static str| async move {
        let target = format!("DynamoDB_20120810.{op}");
        let (status, _, body) = raw_post(addr, "/", Some(&target), body.as_bytes()).await;
        let v: serde_json::Value = serde_json::from_str(&body).expect("json error body");
        (status, v)
    };
    let wrong_type = [
        ("PutItem", r#"{"TableName":"leases","Item":"x"}"#),
        (
            "GetItem",
            r#"{"TableName":"leases","Key":{},"ConsistentRead":"yes"}"#,
        ),
        ("Query", r#"{"TableName":"leases","Limit":"ten"}"#),
        ("Scan", r#"{"TableName":"leases","ScanFilter":[]}"#),
        (
            "UpdateItem",
            r#"{"TableName":"leases","Key":{},"Expected":{"a":{"Exists":"no"}}}"#,
        ),
        ("BatchWriteItem", r#"{"RequestItems":{"leases":{}}}"#),
        ("TransactWriteItems", r#"{"TransactItems":[{"Put":5}]}"#),
        ("CreateTable", r#"{"TableName":"leases","KeySchema":{}}"#),
        ("PutItem", "[1, 2]"),
        ("DescribeTable", r#"["leases"]"#),
        (
            "CreateTable",
            r#"{"TableName":"leases","KeySchema":[["leaseKey","HASH"]]}"#,
        ),
    ];
    for (op, body) in wrong_type {
        let (status, v) = call(op, body).await;
        assert_eq!(status, 400, "{op} {body}");
        assert_eq!(v["__type"], "SerializationException", "{op} {body}: {v}");
    }
    let missing = [
        ("PutItem", r#"{"Item":{}}"#, "tableName"),
        ("DescribeTable", "{}", "tableName"),
        ("BatchGetItem", "{}", "requestItems"),
        ("TransactGetItems", "{}", "transactItems"),
        ("CreateTable", r#"{"TableName":"leases"}"#, "keySchema"),
    ];
    for (op, body, member) in missing {
        let (status, v) = call(op, body).await;
        assert_eq!(status, 400, "{op} {body}");
        assert_eq!(v["__type"], "ValidationException", "{op} {body}: {v}");
        let message = v["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("Value null at '{member}'")),
            "{op}: {message}"
        );
    }
}
