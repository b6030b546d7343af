//! The rig of the end-to-end tests: an engine in this process with the Kinesis limits on (real
//! clock), a stream, a producer writing booked records, and consumer workers checking every
//! key's order (see `examples::pipeline`). Each test in `tests/` is one scenario.

use examples::pipeline::{self, Books, ProduceOptions, Summary, Worker};
use kcl::{CoordinatorConfig, SchedulerConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use stream_engine::{Engine, EngineConfig};

/// Short timings, so that a failover takes seconds, not tens of seconds.
pub fn quick() -> SchedulerConfig {
    SchedulerConfig::default()
        .coordinator(
            CoordinatorConfig::default()
                .failover_time(Duration::from_secs(3))
                .take_interval(Duration::from_millis(500))
                .call_timeout(Duration::from_secs(1))
                .retry_backoff(Duration::from_millis(20))
                .shard_sync_interval(Duration::from_secs(1)),
        )
        .idle_time_between_reads(Duration::from_millis(100))
        .parent_poll_interval(Duration::from_millis(50))
        .retry_backoff(Duration::from_millis(20))
        .read_timeout(Duration::from_secs(2))
}

/// One scenario's engine, stream and books.
pub struct Rig {
    /// The engine (for faults and resharding).
    pub engine: Engine,
    /// A Kinesis client of the engine.
    pub kinesis: aws_sdk_kinesis::Client,
    /// A DynamoDB client of the engine.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// The run's books.
    pub books: Arc<Books>,
    stream: String,
    produced: Arc<AtomicBool>,
}

impl Rig {
    /// An engine with `config`, a stream of `shards` shards, books over `keys` keys.
    pub async fn new(config: EngineConfig, stream: &str, shards: i32, keys: u32) -> Rig {
        let engine = Engine::start(config, "127.0.0.1:0")
            .await
            .expect("engine starts");
        let kinesis = engine.kinesis_client();
        let dynamodb = engine.dynamodb_client();
        examples::ensure_stream(&kinesis, stream, shards)
            .await
            .expect("stream");
        pipeline::wait_active(&kinesis, stream)
            .await
            .expect("stream active");
        Rig {
            engine,
            kinesis,
            dynamodb,
            books: Books::new(keys),
            stream: stream.to_owned(),
            produced: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The stream's name.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Starts consumer worker `id` (application `{stream}-app`) with [`quick`] timings.
    pub fn worker(&self, id: &str, slow: Duration) -> Worker {
        self.worker_with(id, quick(), slow)
    }

    /// Starts consumer worker `id` with `config`.
    pub fn worker_with(&self, id: &str, config: SchedulerConfig, slow: Duration) -> Worker {
        let app = format!("{}-app", self.stream);
        pipeline::start_worker(
            (&self.kinesis, &self.dynamodb),
            (&app, &self.stream),
            id,
            config,
            &self.books,
            slow,
        )
        .expect("worker starts")
    }

    /// Sends `records` over the keys at `rate` records/s (or as fast as it goes) in the
    /// background; the producer is shut down at the end. Returns the producer's metrics.
    pub async fn produce(
        &self,
        config: kpl::ProducerConfig,
        records: u64,
        rate: Option<f64>,
        size: usize,
    ) -> tokio::task::JoinHandle<kpl::MetricsSnapshot> {
        let producer =
            kpl::Producer::builder(self.engine.kinesis_client_without_retries(), &self.stream)
                .config(config)
                .build()
                .await
                .expect("producer");
        let keys = self.books.with(|l| l.keys());
        let opts = ProduceOptions {
            records,
            keys,
            rate,
            size,
        };
        let (books, produced) = (self.books.clone(), self.produced.clone());
        tokio::spawn(async move {
            pipeline::produce(&producer, &books, &opts)
                .await
                .expect("every record accepted");
            let report = producer.shutdown(Duration::from_secs(30)).await;
            assert!(report.is_clean(), "producer shutdown: {report:?}");
            produced.store(true, Ordering::Release);
            producer.metrics()
        })
    }

    /// Waits until `n` records were handed to the producer.
    pub async fn sent(&self, n: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while self.books.sent() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{n} records not sent in time"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits (at most `limit`) until the producer is done and every acknowledged record was
    /// delivered; then checks the books: nothing lost, every key in order, and at most
    /// `max_duplicates` redeliveries. Returns the summary.
    pub async fn finish(&self, limit: Duration, max_duplicates: u64) -> Summary {
        let produced = self.produced.clone();
        let complete = self
            .books
            .wait_complete(limit, || produced.load(Ordering::Acquire))
            .await;
        let summary = self.books.with(|l| l.summary());
        println!("{}\n{}", self.stream, summary.table());
        assert!(complete, "not every record arrived: {summary:?}");
        assert_eq!(summary.lost, 0, "lost records");
        assert_eq!(summary.out_of_order, 0, "order violations");
        assert_eq!(summary.failed, 0, "records the producer gave up");
        assert!(summary.ok(), "{summary:?}");
        assert!(
            summary.duplicates <= max_duplicates,
            "{} duplicates, more than {max_duplicates}",
            summary.duplicates
        );
        summary
    }
}
