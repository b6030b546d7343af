//! `consume`: consumes a stream with the kcl `Scheduler` and prints one JSON line per user
//! record to stdout, checkpointing after each batch. Several processes with the same
//! `--application` share the shards.

use async_trait::async_trait;
use base64::Engine as _;
use clap::{Parser, ValueEnum};
use kcl::{
    Checkpointer, InitialPosition, InitializeInput, ProcessRecordsInput, ProcessorError, Scheduler,
    SchedulerConfig, ShardRecordProcessor,
};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};
use tokio::sync::Notify;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Position {
    TrimHorizon,
    Latest,
}

/// Consume a Kinesis stream and print its records as JSON lines.
#[derive(Debug, Parser)]
#[command(name = "consume")]
struct Args {
    /// Stream name or ARN.
    #[arg(long)]
    stream: String,
    /// Application name (also the lease table's).
    #[arg(long)]
    application: String,
    /// Endpoint URL for both services (e.g. the bundled engine); absent: AWS.
    #[arg(long)]
    endpoint: Option<String>,
    /// Kinesis endpoint, overriding `--endpoint`.
    #[arg(long)]
    kinesis_endpoint: Option<String>,
    /// DynamoDB endpoint, overriding `--endpoint`.
    #[arg(long)]
    dynamodb_endpoint: Option<String>,
    /// Region (default `us-east-1` with an endpoint).
    #[arg(long)]
    region: Option<String>,
    /// Where shards without a checkpoint begin.
    #[arg(long, value_enum, default_value = "trim-horizon")]
    initial_position: Position,
    /// Worker id (default: host name and a random suffix).
    #[arg(long)]
    worker_id: Option<String>,
    /// Exit 0 after this many records, checkpointed.
    #[arg(long)]
    max_records: Option<u64>,
    /// Exit 0 once every held shard is caught up and nothing arrived for this many seconds.
    #[arg(long)]
    exit_after_idle: Option<f64>,
    /// Lease failover time in milliseconds (renewals every third of it, take rounds every
    /// failover time).
    #[arg(long, default_value_t = 10_000)]
    failover_time_ms: u64,
    /// Read with enhanced fan-out through this registered consumer (registered if missing)
    /// instead of polling.
    #[arg(long, value_name = "CONSUMER_NAME")]
    fan_out: Option<String>,
}

struct Shared {
    printed: AtomicU64,
    max: Option<u64>,
    done: Notify,
    last_record: parking_lot::Mutex<Instant>,
}

struct Printer {
    shard: String,
    shared: Arc<Shared>,
    /// The last record printed by this processor (what a checkpoint may cover).
    last: Option<(String, u64)>,
}

fn line(shard: &str, r: &kcl::Record) -> String {
    let ts = r
        .approximate_arrival_timestamp
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64());
    serde_json::json!({
        "shard_id": shard,
        "sequence_number": r.sequence_number,
        "sub_sequence_number": r.sub_sequence_number,
        "partition_key": r.partition_key,
        "explicit_hash_key": r.explicit_hash_key,
        "data": base64::engine::general_purpose::STANDARD.encode(&r.data),
        "approximate_arrival_timestamp": ts,
        "aggregated": r.aggregated,
    })
    .to_string()
}

impl Printer {
    fn limit_reached(&self) -> bool {
        self.shared
            .max
            .is_some_and(|max| self.shared.printed.load(Ordering::SeqCst) >= max)
    }
}

#[async_trait]
impl ShardRecordProcessor for Printer {
    async fn initialize(&mut self, _input: InitializeInput) -> Result<(), ProcessorError> {
        Ok(())
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        let mut out = String::new();
        let mut newest = None;
        let mut truncated = false;
        for r in &input.records {
            if let Some(max) = self.shared.max {
                // Claim a slot; past the limit nothing more is printed.
                if self.shared.printed.fetch_add(1, Ordering::SeqCst) >= max {
                    self.shared.printed.fetch_sub(1, Ordering::SeqCst);
                    truncated = true;
                    break;
                }
            } else {
                self.shared.printed.fetch_add(1, Ordering::SeqCst);
            }
            out.push_str(&line(&self.shard, r));
            out.push('\n');
            newest = Some((r.sequence_number.clone(), r.sub_sequence_number));
        }
        if let Some((seq, sub)) = newest {
            {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(out.as_bytes())?;
                stdout.flush()?;
            }
            *self.shared.last_record.lock() = Instant::now();
            checkpointer.checkpoint_at(&seq, sub).await?;
            self.last = Some((seq, sub));
        }
        if self.limit_reached() {
            self.shared.done.notify_one();
        }
        if truncated {
            // The rest of the batch is not printed: keep it (not acknowledged) for the next
            // run; the checkpoint covers the printed part only.
            return Err("--max-records reached".into());
        }
        Ok(())
    }

    async fn shard_ended(&mut self, checkpointer: &mut Checkpointer) -> Result<(), ProcessorError> {
        if self.limit_reached() {
            return Err("--max-records reached: the shard end is left for the next run".into());
        }
        checkpointer.checkpoint_shard_end().await?;
        Ok(())
    }

    async fn shutdown_requested(
        &mut self,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        // Only what was printed (and it was checkpointed after each batch already).
        if let Some((seq, sub)) = &self.last
            && checkpointer.last_checkpoint().checkpoint.as_str() != seq
        {
            checkpointer.checkpoint_at(seq, *sub).await?;
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if args.max_records == Some(0) {
        return;
    }
    let kinesis_endpoint = args
        .kinesis_endpoint
        .as_deref()
        .or(args.endpoint.as_deref());
    let dynamodb_endpoint = args
        .dynamodb_endpoint
        .as_deref()
        .or(args.endpoint.as_deref());
    let region = args.region.as_deref();
    let kinesis =
        aws_sdk_kinesis::Client::new(&examples::sdk_config(kinesis_endpoint, region).await);
    let dynamodb =
        aws_sdk_dynamodb::Client::new(&examples::sdk_config(dynamodb_endpoint, region).await);
    let shared = Arc::new(Shared {
        printed: AtomicU64::new(0),
        max: args.max_records,
        done: Notify::new(),
        last_record: parking_lot::Mutex::new(Instant::now()),
    });
    let factory_shared = shared.clone();
    let position = match args.initial_position {
        Position::TrimHorizon => InitialPosition::TrimHorizon,
        Position::Latest => InitialPosition::Latest,
    };
    let mut builder = Scheduler::builder(args.application.clone(), args.stream.clone())
        .kinesis(kinesis)
        .dynamodb(dynamodb)
        .config(
            SchedulerConfig::default()
                .idle_time_between_reads(Duration::from_millis(200))
                .retrieval(match &args.fan_out {
                    Some(name) => kcl::RetrievalMode::FanOut {
                        consumer_name: name.clone(),
                    },
                    None => kcl::RetrievalMode::Polling,
                })
                .coordinator(
                    kcl::CoordinatorConfig::default()
                        .failover_time(Duration::from_millis(args.failover_time_ms)),
                ),
        )
        // After the config, which would replace it.
        .initial_position(position)
        .processor_factory(move |shard: &str| -> Box<dyn ShardRecordProcessor> {
            Box::new(Printer {
                shard: shard.to_owned(),
                shared: factory_shared.clone(),
                last: None,
            })
        });
    if let Some(id) = &args.worker_id {
        builder = builder.worker_id(id.clone());
    }
    let scheduler = match builder.build() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("consume: {e}");
            std::process::exit(2);
        }
    };
    let handle = scheduler.handle();
    let run = tokio::spawn(scheduler.run());
    let idle = args.exit_after_idle.map(Duration::from_secs_f64);
    let watcher = {
        let handle = handle.clone();
        let shared = shared.clone();
        async move {
            let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
            // Idle time counts from the moment every held shard is caught up.
            let mut caught_up_since: Option<Instant> = None;
            loop {
                tokio::select! {
                    _ = shared.done.notified() => return,
                    _ = &mut ctrl_c => return,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
                if let Some(idle) = idle {
                    let held = handle.held_shards();
                    let behind = handle.processing_metrics().millis_behind_latest;
                    let caught_up = !held.is_empty()
                        && held
                            .iter()
                            .all(|s| behind.get(s).is_some_and(|ms| *ms == 0));
                    if !caught_up {
                        caught_up_since = None;
                        continue;
                    }
                    let since = *caught_up_since.get_or_insert_with(Instant::now);
                    let last = (*shared.last_record.lock()).max(since);
                    if last.elapsed() >= idle {
                        return;
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = watcher => {}
        finished = run => {
            match finished {
                Ok(Ok(())) => std::process::exit(0),
                Ok(Err(e)) => {
                    eprintln!("consume: {e}");
                    std::process::exit(1);
                }
                Err(e) => {
                    eprintln!("consume: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
    handle.shutdown().await;
    let printed = shared.printed.load(Ordering::SeqCst);
    eprintln!("consume: {printed} records");
}
