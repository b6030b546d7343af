//! Benchmarks. `bench producer`: user records/s, producer CPU seconds per million records,
//! p50/p99 latency from `send` to outcome (saturated, and at a moderate fixed rate), and peak
//! RSS, against the bundled engine running in its own process with limits off.
//!
//! `cargo run --release -p examples --bin bench -- producer [--records N] [--keys N]
//! [--shards N] [--size BYTES] [--endpoint URL]`

use clap::{Parser, Subcommand};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use kpl::{Producer, ProducerConfig, UserRecord};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Producer throughput, CPU, latency and memory.
    Producer {
        /// User records to send in the throughput run.
        #[arg(long, default_value_t = 1_000_000)]
        records: usize,
        /// Distinct partition keys.
        #[arg(long, default_value_t = 10_000)]
        keys: usize,
        /// Shards of the stream.
        #[arg(long, default_value_t = 8)]
        shards: i32,
        /// Bytes of data per record.
        #[arg(long, default_value_t = 100)]
        size: usize,
        /// Records per second in the latency run.
        #[arg(long, default_value_t = 20_000)]
        latency_rate: usize,
        /// Use this endpoint instead of starting an engine process.
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Runs an engine with limits off and prints its URL (used by `producer`).
    #[command(hide = true)]
    Engine,
}

fn cpu_seconds() -> f64 {
    // utime and stime, fields 14 and 15 of /proc/self/stat, in clock ticks (100 per second).
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(0.0)
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    match args.command {
        Cmd::Engine => {
            let engine = stream_engine::Engine::start(
                stream_engine::EngineConfig {
                    limits: stream_engine::Limits::disabled(),
                    retention_check_interval: None,
                    ..Default::default()
                },
                "127.0.0.1:0",
            )
            .await
            .expect("engine");
            println!("listening on {}", engine.endpoint_url());
            let _ = tokio::signal::ctrl_c().await;
        }
        Cmd::Producer {
            records,
            keys,
            shards,
            size,
            latency_rate,
            endpoint,
        } => {
            let mut child = None;
            let endpoint = match endpoint {
                Some(e) => e,
                None => {
                    let mut c = tokio::process::Command::new(std::env::current_exe().expect("exe"))
                        .arg("engine")
                        .stdout(std::process::Stdio::piped())
                        .kill_on_drop(true)
                        .spawn()
                        .expect("engine process");
                    let out = c.stdout.take().expect("stdout");
                    let line = tokio::io::BufReader::new(out)
                        .lines()
                        .next_line()
                        .await
                        .expect("read")
                        .expect("line");
                    child = Some(c);
                    line.trim_start_matches("listening on ").to_owned()
                }
            };
            producer_bench(&endpoint, records, keys, shards, size, latency_rate).await;
            drop(child);
        }
    }
}

/// Sends `count` records (at `rate` per second if given) and returns the send-to-outcome
/// latencies.
async fn run(
    producer: &Producer,
    count: usize,
    keys: usize,
    size: usize,
    rate: Option<usize>,
) -> Vec<Duration> {
    let payload = bytes::Bytes::from(vec![b'x'; size]);
    let key_names: Vec<String> = (0..keys).map(|k| format!("partition-key-{k}")).collect();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, kpl::RecordHandle)>(65_536);
    let measure = rate.is_some();
    let drain = tokio::spawn(async move {
        if !measure {
            // Throughput run: await outcomes in order, without per-record timing machinery.
            while let Some((_, h)) = rx.recv().await {
                h.await.expect("record stored");
            }
            return Vec::new();
        }
        let mut pending = FuturesUnordered::new();
        let mut latencies = Vec::with_capacity(count);
        let mut open = true;
        while open || !pending.is_empty() {
            tokio::select! {
                next = rx.recv(), if open => match next {
                    Some((t0, h)) => pending.push(async move { (h.await, t0.elapsed()) }),
                    None => open = false,
                },
                Some((outcome, latency)) = pending.next(), if !pending.is_empty() => {
                    outcome.expect("record stored");
                    latencies.push(latency);
                }
            }
        }
        latencies
    });
    let mut tick = rate.map(|_| tokio::time::interval(Duration::from_millis(1)));
    let per_tick = rate.map_or(usize::MAX, |r| (r / 1000).max(1));
    let mut i = 0;
    while i < count {
        if let Some(t) = tick.as_mut() {
            t.tick().await;
        }
        for _ in 0..per_tick.min(count - i) {
            let record = UserRecord::new(key_names[i % keys].clone(), payload.clone());
            let t0 = Instant::now();
            let h = producer.send(record).await.expect("accepted");
            let _ = tx.send((t0, h)).await;
            i += 1;
        }
    }
    drop(tx);
    producer.flush().await;
    let mut latencies = drain.await.expect("drain");
    latencies.sort_unstable();
    latencies
}

async fn producer_bench(
    endpoint: &str,
    records: usize,
    keys: usize,
    shards: i32,
    size: usize,
    latency_rate: usize,
) {
    let sdk = examples::sdk_config(Some(endpoint), None).await;
    let client = aws_sdk_kinesis::Client::new(&sdk);
    let stream = format!("bench-{}", std::process::id());
    examples::ensure_stream(&client, &stream, shards)
        .await
        .expect("stream");
    let producer = Producer::builder(client, &stream)
        .config(ProducerConfig {
            rate_limit_percent: 10_000,
            ..ProducerConfig::default()
        })
        .build()
        .await
        .expect("producer");
    // Warm-up.
    run(&producer, 20_000, keys, size, None).await;

    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let lat = run(&producer, records, keys, size, None).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let m = producer.metrics();
    println!(
        "producer: {records} records of {size} bytes over {keys} keys into {shards} shards (engine limits off, own process)"
    );
    println!(
        "  throughput:        {:>10.0} user records/s ({elapsed:.2} s)",
        records as f64 / elapsed
    );
    println!(
        "  producer CPU:      {:>10.2} s per million records",
        cpu / (records as f64 / 1e6)
    );
    let _ = lat;
    println!(
        "  Kinesis records:   {:>10} in {} requests",
        m.kinesis_records_sent, m.requests
    );

    let n = latency_rate * 3;
    let lat = run(&producer, n, keys, size, Some(latency_rate)).await;
    println!(
        "  latency at {latency_rate}/s: p50 {:?}  p99 {:?}  (RecordMaxBufferedTime 100 ms)",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    println!(
        "  peak RSS:          {:>10.1} MB (max_outstanding_records 100000)",
        peak_rss_mb()
    );
    producer.shutdown(Duration::from_secs(10)).await;
}
