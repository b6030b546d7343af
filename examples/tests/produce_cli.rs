//! The `produce` CLI end to end against the engine.

use aws_sdk_kinesis::types::ShardIteratorType;
use std::io::Write;
use std::process::{Command, Stdio};
use stream_engine::{Engine, EngineConfig};

fn run_produce(endpoint: &str, input: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_produce"))
        .args([
            "--stream",
            "cli",
            "--endpoint",
            endpoint,
            "--create-shards",
            "2",
            "--max-buffered-ms",
            "20",
        ])
        .args(extra)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn produce");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let summary: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("summary {stdout:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        summary,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_sends_json_lines_and_reports_a_summary() {
    let engine = Engine::start(EngineConfig::default(), "127.0.0.1:0")
        .await
        .expect("engine");
    let url = engine.endpoint_url();
    let mut input = String::new();
    for i in 0..50 {
        input.push_str(&format!(
            "{{\"partition_key\":\"k{i}\",\"text\":\"hello {i}\"}}\n"
        ));
    }
    input.push_str("{\"partition_key\":\"b\",\"data\":\"AAEC\",\"explicit_hash_key\":\"0\"}\n");
    input.push_str("this is not json\n");
    let (code, summary, stderr) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || run_produce(&url, &input, &[])
    })
    .await
    .expect("cli");
    assert_eq!(summary["sent"], 52, "{summary}");
    assert_eq!(summary["succeeded"], 51);
    assert_eq!(summary["failed"], 1);
    assert!(summary["elapsed_s"].as_f64().is_some());
    assert!(summary["kinesis_records"].as_u64().is_some_and(|n| n >= 1));
    assert_ne!(code, 0, "a failed line makes the exit code non-zero");
    assert!(stderr.contains("line 52"), "{stderr}");

    // Every valid line is in the stream (deaggregated).
    let k = engine.kinesis_client();
    let mut texts = Vec::new();
    for shard in ["shardId-000000000000", "shardId-000000000001"] {
        let it = k
            .get_shard_iterator()
            .stream_name("cli")
            .shard_id(shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("it")
            .shard_iterator
            .expect("it");
        let out = k
            .get_records()
            .shard_iterator(it)
            .send()
            .await
            .expect("records");
        for r in out.records() {
            let data = bytes::Bytes::copy_from_slice(r.data().as_ref());
            match shared_proto::deaggregate(&data) {
                Ok(users) => texts.extend(users.into_iter().map(|u| u.data)),
                Err(_) => texts.push(data),
            }
        }
    }
    assert_eq!(texts.len(), 51);
    assert!(texts.iter().any(|t| t.as_ref() == b"hello 7"));
    assert!(texts.iter().any(|t| t.as_ref() == [0u8, 1, 2]));

    // All valid, without aggregation: exit 0.
    let url1 = url.clone();
    let (code, summary, _) = tokio::task::spawn_blocking(move || {
        run_produce(
            &url1,
            "{\"partition_key\":\"x\",\"text\":\"y\"}\n",
            &["--no-aggregation"],
        )
    })
    .await
    .expect("cli");
    assert_eq!(code, 0);
    assert_eq!(summary["succeeded"], 1);
    assert_eq!(summary["failed"], 0);

    // More lines than the outstanding limit: read, sent and counted in batches, every one
    // stored, with a malformed line in the middle reported by its number.
    let mut many = String::new();
    for i in 0..30_000 {
        if i == 12_345 {
            many.push_str("not json\n");
        } else {
            many.push_str(&format!(
                "{{\"partition_key\":\"k{}\",\"text\":\"v{i}\"}}\n",
                i % 300
            ));
        }
    }
    let url2 = url.clone();
    let (code, summary, stderr) = tokio::task::spawn_blocking(move || {
        run_produce(&url2, &many, &["--max-outstanding-records", "1000"])
    })
    .await
    .expect("cli");
    assert_eq!(summary["sent"], 30_000, "{summary}");
    assert_eq!(summary["succeeded"], 29_999);
    assert_eq!(summary["failed"], 1);
    assert_ne!(code, 0);
    assert!(stderr.contains("line 12346"), "{stderr}");
}
