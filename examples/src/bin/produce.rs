//! `produce`: reads JSON lines from stdin and sends them with the producer.
//!
//! Each line: `{"partition_key": "...", "data": "<base64>"}` or
//! `{"partition_key": "...", "text": "..."}`, with an optional `"explicit_hash_key"`. Prints one
//! JSON summary line at the end and exits non-zero if any record failed. A malformed line is
//! reported on stderr with its number, skipped, and counted as failed.

use base64::Engine as _;
use clap::Parser;
use kpl::{Producer, ProducerConfig, UserRecord};
use serde::Deserialize;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Send JSON lines from stdin to a Kinesis stream.
#[derive(Debug, Parser)]
#[command(name = "produce")]
struct Args {
    /// Stream name or ARN.
    #[arg(long)]
    stream: String,
    /// Endpoint URL (e.g. the bundled engine); absent: AWS through the default chain.
    #[arg(long)]
    endpoint: Option<String>,
    /// Region (default `us-east-1` when an endpoint is given).
    #[arg(long)]
    region: Option<String>,
    /// Create the stream with this many shards if it does not exist.
    #[arg(long)]
    create_shards: Option<i32>,
    /// Send every record on its own (no KPL aggregation).
    #[arg(long)]
    no_aggregation: bool,
    /// Record TTL in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    record_ttl_ms: u64,
    /// Most time a record waits to be batched, in milliseconds.
    #[arg(long, default_value_t = 100)]
    max_buffered_ms: u64,
    /// Per-shard rate limit, percent of the shard limits.
    #[arg(long, default_value_t = 150)]
    rate_limit_percent: u32,
    /// Most PutRecords requests in flight.
    #[arg(long, default_value_t = 24)]
    max_connections: usize,
    /// Most records without an outcome yet.
    #[arg(long, default_value_t = 100_000)]
    max_outstanding_records: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    partition_key: String,
    data: Option<String>,
    text: Option<String>,
    explicit_hash_key: Option<String>,
}

fn parse_line(line: &str) -> Result<UserRecord, String> {
    let l: Line = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let data = match (l.data, l.text) {
        (Some(b64), None) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("data is not base64: {e}"))?,
        (None, Some(text)) => text.into_bytes(),
        _ => return Err("exactly one of \"data\" and \"text\" is required".into()),
    };
    let mut record = UserRecord::new(l.partition_key, data);
    record.explicit_hash_key = l.explicit_hash_key;
    Ok(record)
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("produce: {e}");
            std::process::exit(2);
        }
    }
}

async fn run(args: Args) -> Result<bool, String> {
    let start = Instant::now();
    let sdk = examples::sdk_config(args.endpoint.as_deref(), args.region.as_deref()).await;
    let client = aws_sdk_kinesis::Client::new(&sdk);
    if let Some(shards) = args.create_shards {
        examples::ensure_stream(&client, &args.stream, shards).await?;
    }
    let config = ProducerConfig {
        aggregation_enabled: !args.no_aggregation,
        record_ttl: Duration::from_millis(args.record_ttl_ms),
        record_max_buffered_time: Duration::from_millis(args.max_buffered_ms),
        rate_limit_percent: args.rate_limit_percent,
        max_connections: args.max_connections,
        max_outstanding_records: args.max_outstanding_records,
        ..ProducerConfig::default()
    };
    let producer = Producer::builder(client, &args.stream)
        .config(config)
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let (mut sent, mut failed) = (0u64, 0u64);
    let (outcomes_tx, mut outcomes_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut number = 0u64;
    while let Some(line) = lines
        .next_line()
        .await
        .map_err(|e| format!("reading stdin: {e}"))?
    {
        number += 1;
        if line.trim().is_empty() {
            continue;
        }
        sent += 1;
        let record = match parse_line(&line) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("line {number}: {e}");
                failed += 1;
                continue;
            }
        };
        match producer.send(record).await {
            Ok(handle) => {
                let tx = outcomes_tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send((number, handle.await));
                });
            }
            Err(e) => {
                eprintln!("line {number}: {e}");
                failed += 1;
            }
        }
    }
    drop(outcomes_tx);
    producer.flush().await;
    let mut succeeded = 0u64;
    while let Some((line, outcome)) = outcomes_rx.recv().await {
        match outcome {
            Ok(_) => succeeded += 1,
            Err(e) => {
                eprintln!("line {line}: {e}");
                failed += 1;
            }
        }
    }
    let m = producer.metrics();
    producer.shutdown(Duration::from_secs(30)).await;
    // Written by hand to keep the documented key order.
    let summary = format!(
        "{{\"sent\":{sent},\"succeeded\":{succeeded},\"failed\":{failed},\"kinesis_records\":{},\"retries\":{},\"elapsed_s\":{}}}",
        m.kinesis_records_sent,
        m.retries,
        start.elapsed().as_secs_f64()
    );
    println!("{summary}");
    Ok(failed == 0)
}
