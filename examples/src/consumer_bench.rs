//! `bench consumer`: consumer throughput from a pre-filled stream, time to the first record,
//! failover after a graceful shutdown and after a kill, and end-to-end latency.

use async_trait::async_trait;
use kcl::{
    Checkpointer, InitializeInput, ProcessRecordsInput, ProcessorError, Scheduler, SchedulerConfig,
    SchedulerHandle, ShardRecordProcessor,
};
use kpl::{Producer, ProducerConfig, UserRecord};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the benchmark's processors share.
#[derive(Default)]
struct Counts {
    records: AtomicU64,
    first_at: parking_lot::Mutex<Option<Instant>>,
    last_at: parking_lot::Mutex<Option<Instant>>,
    /// End-to-end latencies (µs) of records carrying a send timestamp.
    latencies: parking_lot::Mutex<Vec<u64>>,
}

struct Counter {
    counts: Arc<Counts>,
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[async_trait]
impl ShardRecordProcessor for Counter {
    async fn initialize(&mut self, _input: InitializeInput) -> Result<(), ProcessorError> {
        Ok(())
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        let now = Instant::now();
        self.counts.first_at.lock().get_or_insert(now);
        *self.counts.last_at.lock() = Some(now);
        let mut lat = Vec::new();
        for r in &input.records {
            let sent = r
                .data
                .strip_prefix(b"t=")
                .and_then(|ts| std::str::from_utf8(ts).ok())
                .and_then(|s| s.parse::<u64>().ok());
            if let Some(sent) = sent {
                lat.push(now_micros().saturating_sub(sent));
            }
        }
        if !lat.is_empty() {
            self.counts.latencies.lock().extend(lat);
        }
        self.counts
            .records
            .fetch_add(input.records.len() as u64, Ordering::Relaxed);
        checkpointer.checkpoint().await?;
        Ok(())
    }

    async fn shard_ended(&mut self, c: &mut Checkpointer) -> Result<(), ProcessorError> {
        c.checkpoint_shard_end().await?;
        Ok(())
    }

    async fn shutdown_requested(&mut self, c: &mut Checkpointer) -> Result<(), ProcessorError> {
        let _ = c.checkpoint().await;
        Ok(())
    }
}

struct Running {
    handle: SchedulerHandle,
    task: tokio::task::JoinHandle<Result<(), kcl::SchedulerError>>,
}

fn start(
    sdk: &aws_config::SdkConfig,
    app: &str,
    stream: &str,
    id: &str,
    counts: Arc<Counts>,
) -> Running {
    let scheduler = Scheduler::builder(app, stream)
        .sdk_config(sdk)
        .worker_id(id)
        .config(SchedulerConfig::default().idle_time_between_reads(Duration::from_millis(200)))
        .processor_factory(move |_: &str| -> Box<dyn ShardRecordProcessor> {
            Box::new(Counter {
                counts: counts.clone(),
            })
        })
        .build()
        .expect("scheduler");
    let handle = scheduler.handle();
    Running {
        handle,
        task: tokio::spawn(scheduler.run()),
    }
}

async fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        if start.elapsed() > limit {
            eprintln!("  (gave up waiting for {what} after {limit:?})");
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

/// Runs the consumer benchmark against `endpoint` (an engine with limits off).
pub async fn run(
    endpoint: &str,
    records: usize,
    shards: i32,
    cpu_seconds: fn() -> f64,
    figures: &mut crate::figures::Figures,
) {
    let sdk = crate::sdk_config(Some(endpoint), None).await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let tag = format!("{:x}", now_micros());
    let stream = format!("consumer-bench-{tag}");
    crate::ensure_stream(&kinesis, &stream, shards)
        .await
        .expect("stream");
    let producer = Producer::builder(kinesis.clone(), &stream)
        .config(ProducerConfig::default().rate_limit_percent(10_000))
        .build()
        .await
        .expect("producer");
    let payload = vec![b'x'; 100];
    let filled = Instant::now();
    for i in 0..records {
        producer
            .send(UserRecord::new(
                format!("key-{}", i % 10_000),
                payload.clone(),
            ))
            .await
            .expect("send");
    }
    producer.flush().await;
    eprintln!(
        "pre-filled {records} aggregated records of 100 bytes into {shards} shards in {:.1} s",
        filled.elapsed().as_secs_f64()
    );

    // Throughput, and the time from run() on an empty lease table to the first record.
    let counts = Arc::new(Counts::default());
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let w1 = start(
        &sdk,
        &format!("bench-app-{tag}"),
        &stream,
        "w1",
        counts.clone(),
    );
    wait_for("all records", Duration::from_secs(600), || {
        counts.records.load(Ordering::Relaxed) >= records as u64
    })
    .await;
    let first = counts.first_at.lock().map(|f| f - t0).unwrap_or_default();
    let last = counts.last_at.lock().map(|l| l - t0).unwrap_or_default();
    let cpu = cpu_seconds() - cpu0;
    figures.add(
        "first record after Scheduler::run on an empty lease table",
        first.as_secs_f64() * 1e3,
        "ms",
    );
    figures.add(
        format!("{records} aggregated 100-byte user records, from the first"),
        records as f64 / (last - first).as_secs_f64().max(1e-9),
        "records/s",
    );
    figures.add(
        "the same, counted from Scheduler::run",
        records as f64 / last.as_secs_f64(),
        "records/s",
    );
    figures.add(
        "consumer CPU per million records",
        cpu / (records as f64 / 1e6),
        "s",
    );

    // Failover: a second worker joins (hand-off), then leaves gracefully; then is killed.
    let w2 = start(
        &sdk,
        &format!("bench-app-{tag}"),
        &stream,
        "w2",
        counts.clone(),
    );
    let half = shards as usize / 2;
    let took = wait_for("balance", Duration::from_secs(120), || {
        w2.handle.held_shards().len() == half
    })
    .await;
    figures.add(
        format!(
            "a joining worker holds its {half} shards (hand-off; failover 10 s, take every 10 s)"
        ),
        took.as_secs_f64(),
        "s",
    );
    let stop = Instant::now();
    w2.handle.shutdown().await;
    let _ = w2.task.await;
    let took = wait_for("graceful failover", Duration::from_secs(120), || {
        w1.handle.held_shards().len() == shards as usize
    })
    .await;
    figures.add(
        "graceful shutdown: the shutdown itself",
        stop.elapsed().as_secs_f64() - took.as_secs_f64(),
        "s",
    );
    figures.add(
        "graceful shutdown: the other worker holds every shard (take interval 10 s)",
        took.as_secs_f64(),
        "s",
    );
    let w3 = start(
        &sdk,
        &format!("bench-app-{tag}"),
        &stream,
        "w3",
        counts.clone(),
    );
    wait_for("balance again", Duration::from_secs(120), || {
        w3.handle.held_shards().len() == half
    })
    .await;
    w3.task.abort();
    let _ = w3.task.await;
    let took = wait_for("failover after a kill", Duration::from_secs(120), || {
        w1.handle.held_shards().len() == shards as usize
    })
    .await;
    figures.add(
        "kill: the other worker holds every shard (failover 10 s + take interval 10 s)",
        took.as_secs_f64(),
        "s",
    );

    // End-to-end latency with the producer at 1 000 records/s, default buffering.
    let latency_producer = Producer::builder(kinesis.clone(), &stream)
        .build()
        .await
        .expect("producer");
    counts.latencies.lock().clear();
    let start_at = Instant::now();
    for i in 0..10_000u64 {
        let due = start_at + Duration::from_millis(i);
        tokio::time::sleep_until(due.into()).await;
        let data = format!("t={}", now_micros());
        let _ = latency_producer
            .send(UserRecord::new(format!("lat-{}", i % 100), data))
            .await;
    }
    latency_producer.flush().await;
    wait_for("latency records", Duration::from_secs(30), || {
        counts.latencies.lock().len() >= 10_000
    })
    .await;
    let mut lat = counts.latencies.lock().clone();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len().max(1) - 1) as f64 * p) as usize)
            .copied()
            .unwrap_or(0) as f64
            / 1e3
    };
    let e2e = "end to end at 1 000 records/s (buffering 100 ms, idle 200 ms)";
    figures.add(format!("{e2e}: p50"), pct(0.5), "ms");
    figures.add(format!("{e2e}: p99"), pct(0.99), "ms");
    figures.add(format!("{e2e}: max"), pct(1.0), "ms");
    w1.handle.shutdown().await;
}
