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

type Parsed = Result<UserRecord, String>;

/// Lines per batch handed from the reader thread to the sender.
const BATCH: usize = 1024;

/// Reads and parses stdin on a plain thread (async stdin reads a line at a time through a
/// blocking pool, far slower), in batches of numbered lines.
fn read_stdin(tx: tokio::sync::mpsc::Sender<Vec<(u64, Parsed)>>) -> std::io::Result<()> {
    use std::io::BufRead;
    let stdin = std::io::stdin();
    let mut input = std::io::BufReader::with_capacity(1 << 20, stdin.lock());
    let mut line = String::new();
    let mut number = 0u64;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        number += 1;
        let text = line.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        batch.push((number, parse_line(text)));
        if batch.len() == BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if tx.blocking_send(full).is_err() {
                return Ok(());
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(batch);
    }
    Ok(())
}

/// Counts outcomes (stored, failed), reporting each failure with its line. Outcomes are
/// awaited in send order: they resolve nearly in that order, and a record still retrying
/// holds back at most the bounded channel behind it.
async fn collect(mut rx: tokio::sync::mpsc::Receiver<(u64, kpl::RecordHandle)>) -> (u64, u64) {
    let (mut succeeded, mut failed) = (0u64, 0u64);
    while let Some((line, handle)) = rx.recv().await {
        match handle.await {
            Ok(_) => succeeded += 1,
            Err(e) => {
                eprintln!("line {line}: {e}");
                failed += 1;
            }
        }
    }
    (succeeded, failed)
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
    let config = ProducerConfig::default()
        .aggregation_enabled(!args.no_aggregation)
        .record_ttl(Duration::from_millis(args.record_ttl_ms))
        .record_max_buffered_time(Duration::from_millis(args.max_buffered_ms))
        .rate_limit_percent(args.rate_limit_percent)
        .max_connections(args.max_connections)
        .max_outstanding_records(args.max_outstanding_records);
    let producer = Producer::builder(client, &args.stream)
        .config(config)
        .build()
        .await
        .map_err(|e| e.to_string())?;
    // A reader thread parses stdin in batches; the async side sends them and a collector
    // counts outcomes as they come. Memory is bounded by the producer's outstanding limits and
    // two small bounded channels, whatever the size of the input.
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::channel::<Vec<(u64, Parsed)>>(16);
    let reader = std::thread::spawn(move || read_stdin(lines_tx));
    let (handles_tx, handles_rx) =
        tokio::sync::mpsc::channel::<(u64, kpl::RecordHandle)>(args.max_outstanding_records);
    let collector = tokio::spawn(collect(handles_rx));
    let (mut sent, mut failed) = (0u64, 0u64);
    while let Some(batch) = lines_rx.recv().await {
        for (number, parsed) in batch {
            sent += 1;
            let record = match parsed {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("line {number}: {e}");
                    failed += 1;
                    continue;
                }
            };
            match producer.send(record).await {
                Ok(handle) => {
                    if handles_tx.send((number, handle)).await.is_err() {
                        return Err("the outcome collector stopped".into());
                    }
                }
                Err(e) => {
                    eprintln!("line {number}: {e}");
                    failed += 1;
                }
            }
        }
    }
    let read = reader
        .join()
        .map_err(|_| "the stdin reader panicked".to_owned())?;
    read.map_err(|e| format!("reading stdin: {e}"))?;
    drop(handles_tx);
    producer.flush().await;
    let (succeeded, failed_outcomes) = collector.await.map_err(|e| format!("collector: {e}"))?;
    failed += failed_outcomes;
    let m = producer.metrics();
    let end = producer.shutdown(Duration::from_secs(30)).await;
    if !end.is_clean() {
        tracing::warn!(?end, "the producer did not store every record");
    }
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
