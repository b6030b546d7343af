//! Kinesis over CBOR, as the Java SDK v2 (and with it the Java KPL/KCL) speaks it.

mod common;

use ciborium::Value as Cbor;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One CBOR call over plain HTTP/1.1: (status, error type header, decoded body).
async fn call(addr: std::net::SocketAddr, op: &str, body: Cbor) -> (u16, Option<String>, Cbor) {
    let mut payload = Vec::new();
    ciborium::into_writer(&body, &mut payload).expect("encode");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-cbor-1.1\r\nX-Amz-Target: Kinesis_20131202.{op}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        payload.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(&payload).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers end");
    let headers = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let status: u16 = headers[9..12].parse().expect("status");
    assert!(
        headers.contains("content-type: application/x-amz-cbor-1.1"),
        "{headers}"
    );
    let error_type = headers
        .lines()
        .find_map(|l| l.strip_prefix("x-amzn-errortype: "))
        .map(str::to_owned);
    let mut body = &raw[split + 4..];
    // The engine answers with a length, not chunks, for these small bodies.
    let decoded: Cbor = ciborium::from_reader(&mut body).expect("CBOR reply");
    (status, error_type, decoded)
}

fn map(entries: &[(&str, Cbor)]) -> Cbor {
    Cbor::Map(
        entries
            .iter()
            .map(|(k, v)| (Cbor::Text((*k).into()), v.clone()))
            .collect(),
    )
}

fn get<'a>(m: &'a Cbor, key: &str) -> &'a Cbor {
    let Cbor::Map(entries) = m else {
        panic!("a map: {m:?}")
    };
    &entries
        .iter()
        .find(|(k, _)| k == &Cbor::Text(key.into()))
        .unwrap_or_else(|| panic!("{key} in {m:?}"))
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_and_get_records_over_cbor() {
    let engine = engine().await;
    create(&engine.kinesis_client(), "cbor", 1).await;
    let addr = engine.local_addr();
    let payload = vec![0u8, 159, 255, 7];
    let (status, _, put) = call(
        addr,
        "PutRecord",
        map(&[
            ("StreamName", Cbor::Text("cbor".into())),
            ("PartitionKey", Cbor::Text("k".into())),
            ("Data", Cbor::Bytes(payload.clone())),
        ]),
    )
    .await;
    assert_eq!(status, 200, "{put:?}");
    let Cbor::Text(seq) = get(&put, "SequenceNumber") else {
        panic!("sequence number")
    };
    let (_, _, it) = call(
        addr,
        "GetShardIterator",
        map(&[
            ("StreamName", Cbor::Text("cbor".into())),
            ("ShardId", Cbor::Text("shardId-000000000000".into())),
            ("ShardIteratorType", Cbor::Text("AT_SEQUENCE_NUMBER".into())),
            ("StartingSequenceNumber", Cbor::Text(seq.clone())),
        ]),
    )
    .await;
    let iterator = get(&it, "ShardIterator").clone();
    let (status, _, records) = call(addr, "GetRecords", map(&[("ShardIterator", iterator)])).await;
    assert_eq!(status, 200);
    let Cbor::Array(list) = get(&records, "Records") else {
        panic!("records")
    };
    assert_eq!(list.len(), 1);
    assert_eq!(
        get(&list[0], "Data"),
        &Cbor::Bytes(payload),
        "a blob is a byte string"
    );
    assert!(
        matches!(
            get(&list[0], "ApproximateArrivalTimestamp"),
            Cbor::Tag(1, _)
        ),
        "a timestamp is tag 1"
    );
    // An error is a CBOR body with its type, and the header.
    let (status, error_type, err) = call(
        addr,
        "DescribeStreamSummary",
        map(&[("StreamName", Cbor::Text("missing".into()))]),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(error_type.as_deref(), Some("resourcenotfoundexception"));
    assert_eq!(
        get(&err, "__type"),
        &Cbor::Text("ResourceNotFoundException".into())
    );
}
