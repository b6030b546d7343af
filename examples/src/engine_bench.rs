//! `bench engine`: the bundled engine's own speed, in its own process with limits off:
//! `PutRecords` (500 × 100-byte records per call) from 1 and 8 concurrent clients, the
//! `GetRecords` read-back, memory per stored record, and conditional `UpdateItem` (a lease
//! renewal) per second from 4 clients.

use crate::figures::Figures;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use std::time::Instant;

const SHARDS: i32 = 8;
const PER_CALL: usize = 500;
const STREAM: &str = "engine-bench";
const TABLE: &str = "engine-bench-leases";

/// Resident memory of process `pid`, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn batch(client: usize, call: usize) -> Vec<PutRecordsRequestEntry> {
    (0..PER_CALL)
        .filter_map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("c{client}-k{}", (call * PER_CALL + i) % 10_000))
                .data(Blob::new(vec![b'x'; 100]))
                .build()
                .ok()
        })
        .collect()
}

async fn put_phase(
    k: &aws_sdk_kinesis::Client,
    clients: usize,
    calls_each: usize,
) -> Result<f64, String> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            for call in 0..calls_each {
                let out = k
                    .put_records()
                    .stream_name(STREAM)
                    .set_records(Some(batch(c, call)))
                    .send()
                    .await
                    .map_err(|e| format!("PutRecords: {e:?}"))?;
                if out.failed_record_count() != Some(0) {
                    return Err("PutRecords failed records with limits off".to_owned());
                }
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok((clients * calls_each * PER_CALL) as f64 / start.elapsed().as_secs_f64())
}

async fn read_back(k: &aws_sdk_kinesis::Client) -> Result<(usize, f64), String> {
    let start = Instant::now();
    let mut read = 0usize;
    for s in 0..SHARDS {
        let mut it = k
            .get_shard_iterator()
            .stream_name(STREAM)
            .shard_id(format!("shardId-{s:012}"))
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .map_err(|e| format!("GetShardIterator: {e:?}"))?
            .shard_iterator
            .ok_or("no iterator")?;
        loop {
            let out = k
                .get_records()
                .shard_iterator(&it)
                .send()
                .await
                .map_err(|e| format!("GetRecords: {e:?}"))?;
            read += out.records().len();
            if out.records().is_empty() {
                break;
            }
            it = out
                .next_shard_iterator()
                .ok_or("open shard ended")?
                .to_owned();
        }
    }
    Ok((read, read as f64 / start.elapsed().as_secs_f64()))
}

async fn renewals(d: &aws_sdk_dynamodb::Client) -> Result<f64, String> {
    const CLIENTS: usize = 4;
    const LEASES_PER_CLIENT: usize = 250;
    const ROUNDS: usize = 20;
    let key = |name: &str, t| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(t)
            .build()
            .map_err(|e| e.to_string())
    };
    d.create_table()
        .table_name(TABLE)
        .attribute_definitions(key("leaseKey", ScalarAttributeType::S)?)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("leaseKey")
                .key_type(KeyType::Hash)
                .build()
                .map_err(|e| e.to_string())?,
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .map_err(|e| format!("CreateTable: {e:?}"))?;
    for i in 0..CLIENTS * LEASES_PER_CLIENT {
        d.put_item()
            .table_name(TABLE)
            .item("leaseKey", AttributeValue::S(format!("shardId-{i:012}")))
            .item(
                "leaseOwner",
                AttributeValue::S(format!("worker-{}", i % CLIENTS)),
            )
            .item("leaseCounter", AttributeValue::N("0".into()))
            .send()
            .await
            .map_err(|e| format!("PutItem: {e:?}"))?;
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..ROUNDS {
                for l in 0..LEASES_PER_CLIENT {
                    let i = l * CLIENTS + c;
                    d.update_item()
                        .table_name(TABLE)
                        .key("leaseKey", AttributeValue::S(format!("shardId-{i:012}")))
                        .update_expression("SET leaseCounter = leaseCounter + :one")
                        .condition_expression("leaseCounter = :counter AND leaseOwner = :owner")
                        .expression_attribute_values(":one", AttributeValue::N("1".into()))
                        .expression_attribute_values(
                            ":counter",
                            AttributeValue::N(round.to_string()),
                        )
                        .expression_attribute_values(
                            ":owner",
                            AttributeValue::S(format!("worker-{c}")),
                        )
                        .send()
                        .await
                        .map_err(|e| format!("UpdateItem: {e:?}"))?;
                }
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok((CLIENTS * LEASES_PER_CLIENT * ROUNDS) as f64 / start.elapsed().as_secs_f64())
}

/// Runs the engine benchmark against the engine process `pid` listening on `endpoint`.
pub async fn run(endpoint: &str, pid: u32, figures: &mut Figures) -> Result<(), String> {
    let sdk = crate::sdk_config(Some(endpoint), None).await;
    let k = aws_sdk_kinesis::Client::new(&sdk);
    crate::ensure_stream(&k, STREAM, SHARDS).await?;
    crate::pipeline::wait_active(&k, STREAM).await?;
    // Warm-up: connections, allocator.
    put_phase(&k, 8, 5).await?;
    let rss_before = rss_bytes(pid);
    let one = put_phase(&k, 1, 200).await?;
    figures.add("PutRecords, 1 client", one, "records/s");
    let eight = put_phase(&k, 8, 100).await?;
    figures.add("PutRecords, 8 clients", eight, "records/s");
    let grown = rss_bytes(pid).saturating_sub(rss_before) as f64;
    let stored = (200 + 8 * 100) * PER_CALL;
    figures.add(
        "memory per stored record beyond its 100 bytes",
        (grown / stored as f64 - 100.0).max(0.0),
        "bytes",
    );
    let (read, rate) = read_back(&k).await?;
    figures.add("GetRecords read-back", rate, "records/s");
    if read != stored + 8 * 5 * PER_CALL {
        return Err(format!(
            "read back {read} records, wrote {}",
            stored + 8 * 5 * PER_CALL
        ));
    }
    let d = aws_sdk_dynamodb::Client::new(&sdk);
    figures.add(
        "conditional UpdateItem (lease renewal), 4 clients",
        renewals(&d).await?,
        "ops/s",
    );
    Ok(())
}
