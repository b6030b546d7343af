//! The one-command demo: `cargo run --release -p examples --bin quickstart`.
//!
//! Starts the bundled engine in this process with the Kinesis limits on, creates a 4-shard
//! stream, sends 200 000 records over 2 000 keys through the producer (20 000/s) while 2 consumer
//! workers check each key's order, splits one shard and merges two others midway, and ends
//! with a summary. Exits 0 only if nothing was lost and no key's order was broken.

use clap::Parser;
use examples::pipeline::{self, Books, ProduceOptions};
use kcl::SchedulerConfig;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use stream_engine::{Engine, EngineConfig};

#[derive(Debug, Parser)]
#[command(
    name = "quickstart",
    about = "Producer, engine and two consumer workers, with a reshard midway"
)]
struct Args {
    /// User records to send.
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    /// Distinct partition keys.
    #[arg(long, default_value_t = 2_000)]
    keys: u32,
    /// Shards of the stream at the start.
    #[arg(long, default_value_t = 4)]
    shards: i32,
    /// Bytes of data per record.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Records per second from the producer, about half the stream's write capacity (0: as
    /// fast as the stream takes them, which builds a backlog and shows in the latency).
    #[arg(long, default_value_t = 20_000.0)]
    rate: f64,
    /// Give up waiting for the consumers after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

const STREAM: &str = "quickstart";
const APP: &str = "quickstart-app";

fn fail(why: impl std::fmt::Display) -> ExitCode {
    eprintln!("quickstart: {why}");
    ExitCode::FAILURE
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(why) => fail(why),
    }
}

async fn run(args: Args) -> Result<bool, String> {
    let engine = Engine::start(EngineConfig::default(), "127.0.0.1:0")
        .await
        .map_err(|e| format!("starting the engine: {e}"))?;
    println!(
        "engine on {} (Kinesis limits on); stream {STREAM} with {} shards",
        engine.endpoint_url(),
        args.shards
    );
    let kinesis = engine.kinesis_client();
    let dynamodb = engine.dynamodb_client();
    examples::ensure_stream(&kinesis, STREAM, args.shards).await?;
    pipeline::wait_active(&kinesis, STREAM).await?;

    let books = Books::new(args.keys);
    // A read every 200 ms per shard when caught up (the default, 1 s, leaves room for other
    // applications reading the same stream).
    let config = SchedulerConfig::default()
        .idle_time_between_reads(Duration::from_millis(200))
        .parent_poll_interval(Duration::from_millis(200));
    let workers = (1..=2)
        .map(|i| {
            pipeline::start_worker(
                (&kinesis, &dynamodb),
                (APP, STREAM),
                &format!("worker-{i}"),
                config.clone(),
                &books,
                Duration::ZERO,
            )
            .map_err(|e| format!("starting worker {i}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let producer = kpl::Producer::builder(engine.kinesis_client_without_retries(), STREAM)
        .build()
        .await
        .map_err(|e| format!("starting the producer: {e}"))?;
    let opts = ProduceOptions {
        records: args.records,
        keys: args.keys,
        rate: (args.rate > 0.0).then_some(args.rate),
        size: args.size,
    };
    let produced = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let sending = {
        let (books, produced) = (books.clone(), produced.clone());
        tokio::spawn(async move {
            let r = pipeline::produce(&producer, &books, &opts).await;
            produced.store(true, Ordering::Release);
            let took = started.elapsed();
            let _ = producer.shutdown(Duration::from_secs(10)).await;
            r.map(|()| took)
        })
    };
    let resharding = {
        let (books, kinesis, total) = (books.clone(), kinesis.clone(), args.records);
        tokio::spawn(async move { reshard(&books, &kinesis, total).await })
    };
    let progress = {
        let (books, produced) = (books.clone(), produced.clone());
        tokio::spawn(async move { show_progress(&books, &produced, args.records).await })
    };

    let complete = books
        .wait_complete(Duration::from_secs(args.timeout), || {
            produced.load(Ordering::Acquire)
        })
        .await;
    let consumed_in = started.elapsed();
    progress.abort();
    // The producer's records all have outcomes once the books are complete; if they are
    // not, its shutdown (10 s) bounds the wait.
    let produce_time = tokio::time::timeout(Duration::from_secs(30), sending)
        .await
        .map_err(|_| "the producer did not finish".to_owned())?
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("sending: {e}"))?;
    let reshards = tokio::time::timeout(Duration::from_secs(30), resharding)
        .await
        .map_err(|_| "the reshards did not finish".to_owned())?
        .map_err(|e| e.to_string())??;
    for w in workers {
        w.stop().await;
    }
    engine.shutdown().await;

    let summary = books.with(|l| l.summary());
    println!();
    println!("{reshards}");
    println!("summary");
    print!("{}", summary.table());
    println!(
        "  {:<28} {:>12}",
        "producer throughput",
        format!(
            "{:.0} rec/s",
            summary.produced as f64 / produce_time.as_secs_f64()
        )
    );
    println!(
        "  {:<28} {:>12}",
        "consumer throughput",
        format!(
            "{:.0} rec/s",
            summary.consumed as f64 / consumed_in.as_secs_f64()
        )
    );
    println!("  {:<28} {:>12.1} s", "run time", consumed_in.as_secs_f64());
    if !complete {
        println!("not every record arrived within {} s", args.timeout);
    }
    let ok = complete && summary.ok();
    println!(
        "{}",
        if ok {
            "OK: nothing lost, every key in order"
        } else {
            "FAILED"
        }
    );
    Ok(ok)
}

/// A split of the first shard a third of the way in, a merge of the last two at two thirds.
async fn reshard(
    books: &Books,
    kinesis: &aws_sdk_kinesis::Client,
    total: u64,
) -> Result<String, String> {
    wait_sent(books, total / 3).await;
    let split = pipeline::split_shard(kinesis, STREAM, 0).await?;
    wait_sent(books, total * 2 / 3).await;
    let open = pipeline::reshard::open_shards(kinesis, STREAM).await?;
    let (a, b) = pipeline::merge_adjacent(kinesis, STREAM, open.len().saturating_sub(2)).await?;
    Ok(format!(
        "resharded while running: split {split}, merged {a} and {b}"
    ))
}

async fn wait_sent(books: &Books, n: u64) {
    while books.sent() < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn show_progress(books: &Books, produced: &AtomicBool, total: u64) {
    let live = std::io::stdout().is_terminal();
    let every = if live {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(2)
    };
    loop {
        tokio::time::sleep(every).await;
        let (acked, unique, dups, bad) = books.with(|l| {
            (
                l.acked_count(),
                l.unique(),
                l.duplicates(),
                l.out_of_order(),
            )
        });
        let line = format!(
            "{:5.1} s  sent {:>7}/{total}  acknowledged {acked:>7}  consumed {unique:>7}  duplicates {dups}  order violations {bad}{}",
            books.elapsed(),
            books.sent(),
            if produced.load(Ordering::Acquire) {
                "  (producer done)"
            } else {
                ""
            }
        );
        if live {
            print!("\r{line}\x1b[K");
            let _ = std::io::stdout().flush();
        } else {
            println!("{line}");
        }
    }
}
