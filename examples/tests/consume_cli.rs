//! The `consume` CLI end to end: two processes with one application share a stream, and
//! between them print every record.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;
use stream_engine::{Engine, EngineConfig, Limits};
use tokio::io::AsyncReadExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consume_processes_share_a_stream_and_print_every_record() {
    let engine = Engine::start(
        EngineConfig {
            limits: Limits::disabled(),
            retention_check_interval: None,
            ..EngineConfig::default()
        },
        "127.0.0.1:0",
    )
    .await
    .expect("engine");
    let k = engine.kinesis_client();
    k.create_stream()
        .stream_name("cli")
        .shard_count(4)
        .send()
        .await
        .expect("create");
    let spawn = |id: &str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_consume"))
            .args([
                "--stream",
                "cli",
                "--application",
                "cli-app",
                "--endpoint",
                &engine.endpoint_url(),
                "--worker-id",
                id,
                "--exit-after-idle",
                "5",
                "--failover-time-ms",
                "2000",
            ])
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("consume starts")
    };
    let mut a = spawn("cli-a");
    let mut b = spawn("cli-b");
    // Both hold leases (the second got its share by hand-off), then the records come.
    let table = kcl::LeaseTable::new(engine.dynamodb_client(), "cli-app");
    let start = std::time::Instant::now();
    loop {
        let owners: Vec<String> = match table.list().await {
            Ok((leases, _)) => leases.into_iter().filter_map(|l| l.owner).collect(),
            Err(_) => Vec::new(),
        };
        let count = |id: &str| owners.iter().filter(|o| *o == id).count();
        if count("cli-a") == 2 && count("cli-b") == 2 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not balanced: {owners:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Aggregated and plain records.
    let producer = kpl::Producer::builder(engine.kinesis_client_without_retries(), "cli")
        .build()
        .await
        .expect("producer");
    for i in 0..2000 {
        producer
            .send(kpl::UserRecord::new(
                format!("key-{}", i % 50),
                format!("agg-{i}"),
            ))
            .await
            .expect("send");
    }
    assert!(producer.shutdown(Duration::from_secs(30)).await.is_clean());
    for i in 0..200 {
        k.put_record()
            .stream_name("cli")
            .partition_key(format!("key-{}", i % 50))
            .data(aws_sdk_kinesis::primitives::Blob::new(format!("plain-{i}")))
            .send()
            .await
            .expect("put");
    }

    let read = |child: &mut tokio::process::Child| {
        let mut out = child.stdout.take().expect("stdout");
        async move {
            let mut s = String::new();
            out.read_to_string(&mut s).await.expect("read");
            s
        }
    };
    let (out_a, out_b) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(read(&mut a), read(&mut b))
    })
    .await
    .expect("both finish printing");
    let status_a = tokio::time::timeout(Duration::from_secs(60), a.wait())
        .await
        .expect("a exits")
        .expect("a");
    let status_b = tokio::time::timeout(Duration::from_secs(60), b.wait())
        .await
        .expect("b exits")
        .expect("b");
    assert!(
        status_a.success() && status_b.success(),
        "{status_a:?} {status_b:?}"
    );
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut per_process = [0usize; 2];
    for (i, out) in [&out_a, &out_b].into_iter().enumerate() {
        for line in out.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            for field in [
                "shard_id",
                "sequence_number",
                "sub_sequence_number",
                "partition_key",
                "explicit_hash_key",
                "data",
                "approximate_arrival_timestamp",
                "aggregated",
            ] {
                assert!(v.get(field).is_some(), "{field} missing: {line}");
            }
            use base64::Engine as _;
            let data = base64::engine::general_purpose::STANDARD
                .decode(v["data"].as_str().expect("data"))
                .expect("base64");
            *seen
                .entry(String::from_utf8(data).expect("utf8"))
                .or_default() += 1;
            per_process[i] += 1;
        }
    }
    for i in 0..2000 {
        assert!(seen.contains_key(&format!("agg-{i}")), "agg-{i} missing");
    }
    for i in 0..200 {
        assert!(
            seen.contains_key(&format!("plain-{i}")),
            "plain-{i} missing"
        );
    }
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    println!("printed {per_process:?}, {duplicates} duplicates");
    assert!(
        per_process.iter().all(|n| *n > 0),
        "both printed: {per_process:?}"
    );
    assert_eq!(
        duplicates, 0,
        "no lease moved after the records were written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_with_fan_out_registers_its_consumer_and_prints_every_record() {
    let engine = Engine::start(
        EngineConfig {
            limits: Limits::disabled(),
            retention_check_interval: None,
            ..EngineConfig::default()
        },
        "127.0.0.1:0",
    )
    .await
    .expect("engine");
    let k = engine.kinesis_client();
    k.create_stream()
        .stream_name("efo-cli")
        .shard_count(2)
        .send()
        .await
        .expect("create");
    for i in 0..100 {
        k.put_record()
            .stream_name("efo-cli")
            .partition_key(format!("key-{i}"))
            .data(aws_sdk_kinesis::primitives::Blob::new(format!("r{i}")))
            .send()
            .await
            .expect("put");
    }
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_consume"))
        .args([
            "--stream",
            "efo-cli",
            "--application",
            "efo-cli-app",
            "--endpoint",
            &engine.endpoint_url(),
            "--fan-out",
            "efo-cli-consumer",
            "--max-records",
            "100",
        ])
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("exits in time")
        .expect("runs");
    assert!(out.status.success(), "{:?}", out.status);
    let lines = String::from_utf8_lossy(&out.stdout);
    let mut seen: Vec<String> = lines
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            v["partition_key"].as_str().unwrap_or("").to_owned()
        })
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 100, "every record once");
    let consumers = k
        .list_stream_consumers()
        .stream_arn("arn:aws:kinesis:us-east-1:000000000000:stream/efo-cli")
        .send()
        .await
        .expect("list");
    assert_eq!(consumers.consumers()[0].consumer_name(), "efo-cli-consumer");
}
