//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{Record, Shard, ShardIteratorType};
use stream_engine::{Engine, EngineConfig};

/// An engine with default limits, no background retention sweep, on the manual clock.
pub async fn engine() -> Engine {
    engine_with(|_| {}).await
}

/// An engine with a tweaked configuration, on the manual clock: time moves only when a test
/// advances it, so no test depends on the machine's speed.
pub async fn engine_with(tweak: impl FnOnce(&mut EngineConfig)) -> Engine {
    let mut config = EngineConfig {
        retention_check_interval: None,
        manual_clock: true,
        ..EngineConfig::default()
    };
    tweak(&mut config);
    Engine::start(config, "127.0.0.1:0")
        .await
        .expect("engine starts")
}

/// Creates a stream and returns its name.
pub async fn create(client: &Client, name: &str, shards: i32) -> String {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .expect("create stream");
    name.to_owned()
}

/// The error code of an SDK error.
pub fn code<E: ProvideErrorMetadata>(err: &E) -> String {
    err.code().unwrap_or("<none>").to_owned()
}

/// All shards of a stream (ListShards, every page).
pub async fn shards(client: &Client, stream: &str) -> Vec<Shard> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let req = match &token {
            Some(t) => client.list_shards().next_token(t),
            None => client.list_shards().stream_name(stream),
        };
        let resp = req.send().await.expect("list shards");
        out.extend(resp.shards().iter().cloned());
        token = resp.next_token().map(str::to_owned);
        if token.is_none() {
            return out;
        }
    }
}

/// What reading a shard to its current end found.
pub struct ShardRead {
    pub records: Vec<Record>,
    /// Child shard ids, when the shard is closed and was read to its end.
    pub children: Option<Vec<String>>,
}

/// Reads a shard from TRIM_HORIZON until it is exhausted (an open shard: an empty page at the
/// tip; a closed shard: no next iterator).
pub async fn read_shard(client: &Client, stream: &str, shard_id: &str) -> ShardRead {
    let mut iterator = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard_id)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("iterator")
        .shard_iterator
        .expect("an iterator");
    let mut records = Vec::new();
    loop {
        let resp = client
            .get_records()
            .shard_iterator(&iterator)
            .send()
            .await
            .expect("get records");
        let empty = resp.records().is_empty();
        records.extend(resp.records().iter().cloned());
        match resp.next_shard_iterator() {
            None => {
                let children = resp
                    .child_shards()
                    .iter()
                    .map(|c| c.shard_id().to_owned())
                    .collect();
                return ShardRead {
                    records,
                    children: Some(children),
                };
            }
            Some(next) if empty && resp.millis_behind_latest() == Some(0) => {
                let _ = next;
                return ShardRead {
                    records,
                    children: None,
                };
            }
            Some(next) => iterator = next.to_owned(),
        }
    }
}

/// Puts one record and returns (shard id, sequence number).
pub async fn put(client: &Client, stream: &str, key: &str, data: &[u8]) -> (String, String) {
    let out = client
        .put_record()
        .stream_name(stream)
        .partition_key(key)
        .data(Blob::new(data))
        .send()
        .await
        .expect("put record");
    (out.shard_id().to_owned(), out.sequence_number().to_owned())
}

/// Orders sequence numbers numerically.
pub fn seq_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Sends one raw HTTP POST and returns (status, lower-cased head, body).
pub async fn raw_post(
    addr: std::net::SocketAddr,
    path: &str,
    target: Option<&str>,
    body: &[u8],
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    if let Some(t) = target {
        head.push_str(&format!("x-amz-target: {t}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(body).await.expect("write body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_lowercase(), body.to_owned())
}
