//! Fault injection (throttles, failures, latency, outages), the admin route, and the binary
//! in a second process.

mod common;

use aws_sdk_kinesis::error::SdkError;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use common::*;
use std::time::{Duration, Instant};
use stream_engine::{FaultKind, FaultRule, OutageMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_and_fail_the_next_calls() {
    let engine = engine().await;
    let k = engine.kinesis_client_without_retries();
    create(&k, "f", 2).await;
    engine.faults().throttle_next("PutRecord", 2);
    for _ in 0..2 {
        let err = k
            .put_record()
            .stream_name("f")
            .partition_key("k")
            .data(Blob::new("x"))
            .send()
            .await
            .expect_err("throttled");
        assert_eq!(code(&err), "ProvisionedThroughputExceededException");
    }
    put(&k, "f", "k", b"x").await;

    engine.faults().fail_next("Kinesis.ListShards", 1);
    let err = k
        .list_shards()
        .stream_name("f")
        .send()
        .await
        .expect_err("500");
    assert_eq!(code(&err), "InternalFailure");
    match &err {
        SdkError::ServiceError(e) => assert_eq!(e.raw().status().as_u16(), 500),
        other => panic!("expected a service error, got {other:?}"),
    }
    k.list_shards()
        .stream_name("f")
        .send()
        .await
        .expect("only one failure");

    engine
        .faults()
        .error_next("DescribeStreamSummary", "AccessDeniedException", 1);
    let err = k
        .describe_stream_summary()
        .stream_name("f")
        .send()
        .await
        .expect_err("denied");
    assert_eq!(code(&err), "AccessDeniedException");

    // The SDK's own retries absorb a single throttle with the standard client.
    engine.faults().throttle_next("PutRecord", 1);
    let retrying = engine.kinesis_client();
    retrying
        .put_record()
        .stream_name("f")
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await
        .expect("retried by the SDK");
    assert!(engine.faults().injected_count() >= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_scoped_faults_fail_only_that_shards_records() {
    let engine = engine().await;
    let k = engine.kinesis_client_without_retries();
    create(&k, "sf", 2).await;
    engine
        .faults()
        .throttle_shard_next("PutRecords", "shardId-000000000001", 1);
    engine.faults().inject(FaultRule {
        operation: "PutRecords".into(),
        shard_id: Some("shardId-000000000000".into()),
        kind: FaultKind::InternalError,
        count: Some(1),
    });
    let recs = vec![
        PutRecordsRequestEntry::builder()
            .partition_key("a")
            .explicit_hash_key("0")
            .data(Blob::new("0"))
            .build()
            .expect("e"),
        PutRecordsRequestEntry::builder()
            .partition_key("b")
            .explicit_hash_key(u128::MAX.to_string())
            .data(Blob::new("1"))
            .build()
            .expect("e"),
    ];
    let out = k
        .put_records()
        .stream_name("sf")
        .set_records(Some(recs.clone()))
        .send()
        .await
        .expect("call succeeds");
    assert_eq!(out.failed_record_count(), Some(2));
    assert_eq!(out.records()[0].error_code(), Some("InternalFailure"));
    assert_eq!(
        out.records()[1].error_code(),
        Some("ProvisionedThroughputExceededException")
    );
    let out = k
        .put_records()
        .stream_name("sf")
        .set_records(Some(recs))
        .send()
        .await
        .expect("call succeeds");
    assert_eq!(
        out.failed_record_count(),
        Some(0),
        "each rule affected one call"
    );

    // Reads of one shard.
    engine
        .faults()
        .throttle_shard_next("GetShardIterator", "shardId-000000000001", 1);
    let it = |shard: &'static str| {
        let k = k.clone();
        async move {
            k.get_shard_iterator()
                .stream_name("sf")
                .shard_id(shard)
                .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
                .send()
                .await
        }
    };
    it("shardId-000000000000")
        .await
        .expect("other shard unaffected");
    let err = it("shardId-000000000001").await.expect_err("throttled");
    assert_eq!(code(&err), "ProvisionedThroughputExceededException");
    let iterator = it("shardId-000000000001")
        .await
        .expect("once")
        .shard_iterator
        .expect("it");
    engine.faults().fail_next("GetRecords", 1);
    let err = k
        .get_records()
        .shard_iterator(&iterator)
        .send()
        .await
        .expect_err("failed");
    assert_eq!(code(&err), "InternalFailure");
    assert_eq!(
        k.get_records()
            .shard_iterator(&iterator)
            .send()
            .await
            .expect("ok")
            .records()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_and_outages() {
    let engine = engine().await;
    let k = engine.kinesis_client_without_retries();
    create(&k, "o", 1).await;
    engine
        .faults()
        .add_latency("ListShards", Duration::from_millis(200), Some(1));
    let start = Instant::now();
    k.list_shards()
        .stream_name("o")
        .send()
        .await
        .expect("slow but fine");
    assert!(start.elapsed() >= Duration::from_millis(200));

    // Hang: a call made during the outage completes once it ends.
    engine
        .faults()
        .pause(Duration::from_millis(300), OutageMode::Hang);
    let start = Instant::now();
    put(&k, "o", "k", b"after outage").await;
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );

    // Refuse: the connection is closed without an answer.
    engine
        .faults()
        .pause(Duration::from_secs(30), OutageMode::Refuse);
    let err = k
        .put_record()
        .stream_name("o")
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        ),
        "{err:?}"
    );
    engine.faults().resume();
    put(&k, "o", "k", b"back").await;

    // An outage ended by resume() releases hanging calls at once.
    engine
        .faults()
        .pause(Duration::from_secs(60), OutageMode::Hang);
    let waiting = tokio::spawn({
        let k = k.clone();
        async move {
            k.list_shards()
                .stream_name("o")
                .send()
                .await
                .map(|r| r.shards().len())
        }
    });
    let held = async {
        while engine.faults().held_requests() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .expect("the call is held by the outage");
    assert!(!waiting.is_finished());
    engine.faults().resume();
    let shards = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("released")
        .expect("task");
    assert_eq!(shards.expect("answered"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_inject_faults() {
    let engine = engine().await;
    let k = engine.kinesis_client_without_retries();
    create(&k, "adm", 1).await;
    let addr = engine.local_addr();
    let (status, _, _) = raw_post(
        addr,
        "/_engine/faults",
        None,
        br#"{"operation":"PutRecord","kind":"throttle","count":1}"#,
    )
    .await;
    assert_eq!(status, 200);
    let err = k
        .put_record()
        .stream_name("adm")
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await
        .expect_err("throttled");
    assert_eq!(code(&err), "ProvisionedThroughputExceededException");
    let (status, _, _) = raw_post(
        addr,
        "/_engine/faults",
        None,
        br#"{"operation":"*","kind":{"error":{"code":"ThrottlingException"}}}"#,
    )
    .await;
    assert_eq!(status, 200);
    let err = k.list_streams().send().await.expect_err("every call");
    assert_eq!(code(&err), "ThrottlingException");
    let (status, _, _) = raw_post(addr, "/_engine/reset", None, b"").await;
    assert_eq!(status, 200);
    k.list_streams().send().await.expect("reset");
    let (status, _, body) = raw_post(addr, "/_engine/faults", None, b"{\"bad\":1}").await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_a_second_process() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_stream-engine"))
        .args([
            "--port",
            "0",
            "--create-stream",
            "bin-stream:3",
            "--no-limits",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the binary");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("ready in time")
        .expect("read")
        .expect("a line");
    let url = line
        .strip_prefix("listening on ")
        .expect("ready line")
        .to_owned();
    let config = stream_engine::sdk_config(
        &url,
        "us-east-1",
        aws_config::retry::RetryConfig::disabled(),
    );
    let k = aws_sdk_kinesis::Client::new(&config);
    assert_eq!(shards(&k, "bin-stream").await.len(), 3);
    let (shard, _) = put(&k, "bin-stream", "k", b"from another process").await;
    let read = read_shard(&k, "bin-stream", &shard).await;
    assert_eq!(read.records[0].data().as_ref(), b"from another process");
    // SIGTERM stops it cleanly.
    let pid = child.id().expect("pid");
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits")
        .expect("status");
    assert!(exit.success(), "{exit:?}");
}
