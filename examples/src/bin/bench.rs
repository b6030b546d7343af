//! The benchmarks behind one command:
//! `cargo run --release -p examples --bin bench -- <producer|consumer|e2e|engine> [--json]`.
//! Each prints a table of figures, or with `--json` one JSON object per figure.
//!
//! - `producer`: user records/s from one sending task and from 16 tasks sharing one producer,
//!   producer CPU seconds per million records, p50/p99/max latency at a moderate fixed rate
//!   measured from each record's scheduled send time, and peak RSS, against the bundled engine
//!   running in its own process with limits off.
//! - `consumer`: see `examples::consumer_bench`.
//! - `e2e`: see `examples::e2e_bench`; `--plot FILE.svg` draws latency and throughput over time.
//! - `engine`: see `examples::engine_bench`.

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
    /// One JSON object per figure instead of a table.
    #[arg(long, global = true)]
    json: bool,
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
    /// Producer and consumer together at a fixed rate: end-to-end latency p50/p99/max.
    E2e {
        /// Records per second from the producer.
        #[arg(long, default_value_t = 1_000.0)]
        rate: f64,
        /// Seconds the producer sends, in each mode.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Shards of the stream.
        #[arg(long, default_value_t = 4)]
        shards: i32,
        /// Write latency-over-time and throughput-over-time to this SVG file.
        #[arg(long)]
        plot: Option<std::path::PathBuf>,
    },
    /// The engine alone: PutRecords, GetRecords, memory per record, lease renewals.
    Engine,
    /// Runs an engine with limits off and prints its URL (used by the other benchmarks).
    #[command(hide = true)]
    Serve,
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
    let mut figures = examples::figures::Figures::new(match &args.command {
        Cmd::Producer { .. } => "producer",
        Cmd::Consumer { .. } => "consumer",
        Cmd::E2e { .. } => "e2e",
        Cmd::Engine | Cmd::Serve => "engine",
    });
    match args.command {
        Cmd::Serve => {
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
            producer_bench(
                &endpoint,
                (records, keys, shards, size, latency_rate),
                &mut figures,
            )
            .await;
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
            examples::consumer_bench::run(&endpoint, records, shards, cpu_seconds, &mut figures)
                .await;
            drop(child);
        }
        Cmd::E2e {
            rate,
            seconds,
            shards,
            plot,
        } => {
            let opts = examples::e2e_bench::E2eOptions {
                rate,
                seconds,
                shards,
                keys: 1_000,
                plot,
            };
            if let Err(e) = examples::e2e_bench::run(&opts, &mut figures).await {
                eprintln!("e2e: {e}");
                std::process::exit(1);
            }
        }
        Cmd::Engine => {
            let (endpoint, child) = engine_process().await;
            let pid = child.id().unwrap_or(0);
            let result = examples::engine_bench::run(&endpoint, pid, &mut figures).await;
            drop(child);
            if let Err(e) = result {
                eprintln!("engine: {e}");
                std::process::exit(1);
            }
        }
    }
    print!("{}", figures.render(args.json));
}

/// Starts `bench engine` in its own process; its URL and the child.
async fn engine_process() -> (String, tokio::process::Child) {
    let mut c = tokio::process::Command::new(std::env::current_exe().expect("exe"))
        .arg("serve")
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
    (records, keys, shards, size, latency_rate): (usize, usize, i32, usize, usize),
    figures: &mut examples::figures::Figures,
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

    eprintln!(
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
        figures.add(
            format!("{tasks} sending task(s): user records/s"),
            records as f64 / elapsed,
            "records/s",
        );
        figures.add(
            format!("{tasks} sending task(s): producer CPU per million records"),
            cpu / (records as f64 / 1e6),
            "s",
        );
        figures.add(
            format!("{tasks} sending task(s): Kinesis records per request"),
            (m.kinesis_records_sent - m0.kinesis_records_sent) as f64
                / (m.requests - m0.requests).max(1) as f64,
            "records",
        );
    }

    let n = latency_rate * 3;
    let lat = latency(&producer, n, keys, size, latency_rate).await;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let at = format!("latency at {latency_rate}/s from the scheduled send (buffering 100 ms)");
    figures.add(format!("{at}: p50"), ms(percentile(&lat, 0.5)), "ms");
    figures.add(format!("{at}: p99"), ms(percentile(&lat, 0.99)), "ms");
    figures.add(
        format!("{at}: max"),
        ms(lat.last().copied().unwrap_or_default()),
        "ms",
    );
    figures.add(
        "peak RSS (max_outstanding_records 100 000)",
        peak_rss_mb(),
        "MB",
    );
    producer.shutdown(Duration::from_secs(10)).await;
}
