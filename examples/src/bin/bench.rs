//! Benchmarks. `bench producer`: user records/s from one sending task and from 16 tasks
//! sharing one producer, producer CPU seconds per million records, p50/p99/max latency at a
//! moderate fixed rate measured from each record's scheduled send time, and peak RSS, against
//! the bundled engine running in its own process with limits off.
//!
//! `cargo run --release -p examples --bin bench -- producer [--records N] [--keys N]
//! [--shards N] [--size BYTES] [--endpoint URL]`
//!
//! `bench consumer`: see `examples::consumer_bench`.

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
    /// Consumer throughput, time to first record, failover and end-to-end latency.
    Consumer {
        /// User records pre-filled (aggregated, 100 bytes each).
        #[arg(long, default_value_t = 1_000_000)]
        records: usize,
        /// Shards of the stream.
        #[arg(long, default_value_t = 8)]
        shards: i32,
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
                    let (e, c) = engine_process().await;
                    child = Some(c);
                    e
                }
            };
            producer_bench(&endpoint, records, keys, shards, size, latency_rate).await;
            drop(child);
        }
        Cmd::Consumer {
            records,
            shards,
            endpoint,
        } => {
            let (endpoint, child) = match endpoint {
                Some(e) => (e, None),
                None => {
                    let (e, c) = engine_process().await;
                    (e, Some(c))
                }
            };
            examples::consumer_bench::run(&endpoint, records, shards, cpu_seconds).await;
            drop(child);
        }
    }
}

/// Starts `bench engine` in its own process; its URL and the child.
async fn engine_process() -> (String, tokio::process::Child) {
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
    (line.trim_start_matches("listening on ").to_owned(), c)
}

/// Sends `count` records from `tasks` tasks sharing the producer, as fast as `send` allows.
async fn throughput(producer: &Producer, count: usize, keys: usize, size: usize, tasks: usize) {
    let payload = bytes::Bytes::from(vec![b'x'; size]);
    let key_names: std::sync::Arc<Vec<String>> =
        std::sync::Arc::new((0..keys).map(|k| format!("partition-key-{k}")).collect());
    let per_task = count / tasks;
    let joins: Vec<_> = (0..tasks)
        .map(|t| {
            let producer = producer.clone();
            let payload = payload.clone();
            let key_names = key_names.clone();
            tokio::spawn(async move {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<kpl::RecordHandle>(65_536);
                let drain = tokio::spawn(async move {
                    while let Some(h) = rx.recv().await {
                        h.await.expect("record stored");
                    }
                });
                for i in 0..per_task {
                    let key = key_names[(t * per_task + i) % key_names.len()].clone();
                    let h = producer
                        .send(UserRecord::new(key, payload.clone()))
                        .await
                        .expect("accepted");
                    let _ = tx.send(h).await;
                }
                drop(tx);
                drain.await.expect("drain");
            })
        })
        .collect();
    for j in joins {
        j.await.expect("task");
    }
    producer.flush().await;
}

/// Sends `count` records at `rate` per second on a fixed schedule and returns each record's
/// latency from its *scheduled* send time to its outcome, so a stall delays the schedule's
/// later records and shows in the figures (no coordinated omission).
async fn latency(
    producer: &Producer,
    count: usize,
    keys: usize,
    size: usize,
    rate: usize,
) -> Vec<Duration> {
    let payload = bytes::Bytes::from(vec![b'x'; size]);
    let key_names: Vec<String> = (0..keys).map(|k| format!("partition-key-{k}")).collect();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, kpl::RecordHandle)>(65_536);
    let drain = tokio::spawn(async move {
        let mut pending = FuturesUnordered::new();
        let mut latencies = Vec::with_capacity(count);
        let mut open = true;
        while open || !pending.is_empty() {
            tokio::select! {
                next = rx.recv(), if open => match next {
                    Some((scheduled, h)) => pending.push(async move {
                        let outcome = h.await;
                        (outcome, scheduled.elapsed())
                    }),
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
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    for i in 0..count {
        let scheduled = start + interval.mul_f64(i as f64);
        if scheduled > Instant::now() {
            tokio::time::sleep_until(scheduled.into()).await;
        }
        let record = UserRecord::new(key_names[i % keys].clone(), payload.clone());
        let h = producer.send(record).await.expect("accepted");
        let _ = tx.send((scheduled, h)).await;
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
        .config(ProducerConfig::default().rate_limit_percent(10_000))
        .build()
        .await
        .expect("producer");
    // Warm-up.
    throughput(&producer, 20_000, keys, size, 1).await;

    println!(
        "producer: {records} records of {size} bytes over {keys} keys into {shards} shards (engine limits off, own process)"
    );
    for tasks in [1, 16] {
        let m0 = producer.metrics();
        let cpu0 = cpu_seconds();
        let t0 = Instant::now();
        throughput(&producer, records, keys, size, tasks).await;
        let elapsed = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu0;
        let m = producer.metrics();
        println!(
            "  {tasks:>2} sending task(s): {:>10.0} user records/s ({elapsed:.2} s), producer CPU {:.2} s per million records, {} Kinesis records in {} requests",
            records as f64 / elapsed,
            cpu / (records as f64 / 1e6),
            m.kinesis_records_sent - m0.kinesis_records_sent,
            m.requests - m0.requests
        );
    }

    let n = latency_rate * 3;
    let lat = latency(&producer, n, keys, size, latency_rate).await;
    println!(
        "  latency at {latency_rate}/s from the scheduled send time: p50 {:?}  p99 {:?}  max {:?}  (RecordMaxBufferedTime 100 ms)",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or_default()
    );
    println!(
        "  peak RSS:          {:>10.1} MB (max_outstanding_records 100000)",
        peak_rss_mb()
    );
    producer.shutdown(Duration::from_secs(10)).await;
}
