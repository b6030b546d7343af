//! The recording processor and the workers the processing tests run.

use async_trait::async_trait;
use kcl::{
    Checkpointer, InitializeInput, ProcessRecordsInput, ProcessorError, Record, Scheduler,
    SchedulerConfig, SchedulerHandle, ShardRecordProcessor,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use stream_engine::Engine;
use tokio::sync::{Mutex, Semaphore};

use super::fast;

/// Everything the processors of a test saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// shard → records in delivery order.
    pub records: BTreeMap<String, Vec<Record>>,
    /// Every record, in delivery order across shards.
    pub order: Vec<Record>,
    pub initialized: Vec<InitializeInput>,
    pub shutdown_requested: Vec<String>,
    pub ended: Vec<String>,
    pub lost: Vec<String>,
    /// "init <shard>" and "end <shard>", in the order they happened.
    pub timeline: Vec<String>,
    /// shard → the sequence number of the last checkpoint this processor stored.
    pub checkpointed: BTreeMap<String, String>,
}

impl Seen {
    pub fn count(&self) -> usize {
        self.records.values().map(Vec::len).sum()
    }
}

/// A processor that records what it sees and checkpoints after each batch.
pub struct Collector {
    pub shard: String,
    pub seen: Arc<Mutex<Seen>>,
    /// Fail the first N calls.
    pub fail_first: Arc<AtomicU32>,
    /// Fail every batch holding a record with this data.
    pub poison: Option<&'static [u8]>,
    /// Checkpoint after each batch (and when asked to shut down).
    pub checkpoint_each_batch: bool,
    /// While this gate is shut, a batch holding a record whose data starts with `stall-` is
    /// recorded as seen and then waits here before its checkpoint (closing the gate opens it).
    pub gate: Option<Arc<Semaphore>>,
}

#[async_trait]
impl ShardRecordProcessor for Collector {
    async fn initialize(&mut self, input: InitializeInput) -> Result<(), ProcessorError> {
        let mut seen = self.seen.lock().await;
        seen.timeline.push(format!("init {}", input.shard_id));
        seen.initialized.push(input);
        Ok(())
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        if self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err("failing on purpose".into());
        }
        if let Some(p) = self.poison
            && input.records.iter().any(|r| r.data.as_ref() == p)
        {
            return Err("poison".into());
        }
        let stalls = input.records.iter().any(|r| r.data.starts_with(b"stall-"));
        let last = input.records.last().map(|r| r.sequence_number.clone());
        let mut seen = self.seen.lock().await;
        seen.order.extend(input.records.iter().cloned());
        seen.records
            .entry(self.shard.clone())
            .or_default()
            .extend(input.records);
        drop(seen);
        if let Some(gate) = &self.gate
            && stalls
        {
            let _ = gate.acquire().await;
        }
        if self.checkpoint_each_batch {
            checkpointer.checkpoint().await?;
            if let Some(last) = last {
                self.seen
                    .lock()
                    .await
                    .checkpointed
                    .insert(self.shard.clone(), last);
            }
        }
        Ok(())
    }

    async fn lease_lost(&mut self) {
        self.seen.lock().await.lost.push(self.shard.clone());
    }

    async fn shard_ended(&mut self, checkpointer: &mut Checkpointer) -> Result<(), ProcessorError> {
        {
            let mut seen = self.seen.lock().await;
            seen.ended.push(self.shard.clone());
            seen.timeline.push(format!("end {}", self.shard));
        }
        checkpointer.checkpoint_shard_end().await?;
        Ok(())
    }

    async fn shutdown_requested(
        &mut self,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        self.seen
            .lock()
            .await
            .shutdown_requested
            .push(self.shard.clone());
        if self.checkpoint_each_batch {
            let _ = checkpointer.checkpoint().await;
        }
        Ok(())
    }
}

/// Short timings, with a failover time (3 s) no loaded machine misses by accident.
pub fn quick() -> SchedulerConfig {
    SchedulerConfig::default()
        .coordinator(fast().failover_time(Duration::from_secs(3)))
        .idle_time_between_reads(Duration::from_millis(50))
        .parent_poll_interval(Duration::from_millis(50))
        .retry_backoff(Duration::from_millis(10))
        .read_timeout(Duration::from_secs(2))
}

pub struct Worker {
    pub handle: SchedulerHandle,
    pub run: tokio::task::JoinHandle<Result<(), kcl::SchedulerError>>,
}

pub fn worker(
    engine: &Engine,
    names: (&str, &str),
    id: &str,
    config: SchedulerConfig,
    seen: Arc<Mutex<Seen>>,
    fail_first: Arc<AtomicU32>,
    poison: Option<&'static [u8]>,
) -> Worker {
    gated_worker(engine, names, id, config, seen, fail_first, poison, None)
}

/// [`worker`] whose processors stall `stall-` batches at `gate` (see [`Collector::gate`]).
#[allow(clippy::too_many_arguments)]
pub fn gated_worker(
    engine: &Engine,
    names: (&str, &str),
    id: &str,
    config: SchedulerConfig,
    seen: Arc<Mutex<Seen>>,
    fail_first: Arc<AtomicU32>,
    poison: Option<&'static [u8]>,
    gate: Option<Arc<Semaphore>>,
) -> Worker {
    let (app, stream) = names;
    spawn_worker(
        engine,
        app,
        stream,
        id,
        config,
        move |shard: &str| -> Box<dyn ShardRecordProcessor> {
            Box::new(Collector {
                shard: shard.to_owned(),
                seen: seen.clone(),
                fail_first: fail_first.clone(),
                poison,
                checkpoint_each_batch: true,
                gate: gate.clone(),
            })
        },
    )
}

/// Puts `n` plain records with keys `key-{i % keys}`; returns nothing (the test reads back).
pub async fn put_plain(engine: &Engine, stream: &str, prefix: &str, n: usize, keys: usize) {
    let k = engine.kinesis_client();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let entries = chunk
            .iter()
            .map(|i| {
                aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                    .partition_key(format!("key-{}", i % keys))
                    .data(aws_sdk_kinesis::primitives::Blob::new(format!(
                        "{prefix}-{i}"
                    )))
                    .build()
                    .expect("entry")
            })
            .collect();
        let out = k
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries))
            .send()
            .await
            .expect("put records");
        assert_eq!(out.failed_record_count(), Some(0));
    }
}

/// Sends `n` records through the producer (aggregated), keys `key-{i % keys}`.
pub async fn put_aggregated(engine: &Engine, stream: &str, prefix: &str, n: usize, keys: usize) {
    let producer = kpl::Producer::builder(engine.kinesis_client_without_retries(), stream)
        .build()
        .await
        .expect("producer");
    for i in 0..n {
        producer
            .send(kpl::UserRecord::new(
                format!("key-{}", i % keys),
                format!("{prefix}-{i}"),
            ))
            .await
            .expect("send");
    }
    let report = producer.shutdown(Duration::from_secs(30)).await;
    assert!(report.is_clean(), "{report:?}");
}

pub fn data(r: &Record) -> String {
    String::from_utf8_lossy(&r.data).into_owned()
}

/// Per shard, positions strictly increase; per key, the records' numbers increase.
pub fn assert_ordered(seen: &Seen) {
    for (shard, records) in &seen.records {
        for w in records.windows(2) {
            let a = (&w[0].sequence_number, w[0].sub_sequence_number);
            let b = (&w[1].sequence_number, w[1].sub_sequence_number);
            let ord = kcl::compare_sequence(a.0, b.0).then(a.1.cmp(&b.1));
            assert_eq!(ord, std::cmp::Ordering::Less, "{shard}: {a:?} then {b:?}");
        }
    }
}

pub fn scheduler_with(
    engine: &Engine,
    app: &str,
    stream: &str,
    id: &str,
    factory: impl kcl::ShardRecordProcessorFactory + 'static,
) -> Worker {
    spawn_worker(engine, app, stream, id, quick(), factory)
}

/// Builds a Scheduler on the engine and runs it in a task.
pub fn spawn_worker(
    engine: &Engine,
    app: &str,
    stream: &str,
    id: &str,
    config: SchedulerConfig,
    factory: impl kcl::ShardRecordProcessorFactory + 'static,
) -> Worker {
    let scheduler = Scheduler::builder(app, stream)
        .kinesis(engine.kinesis_client())
        .dynamodb(engine.dynamodb_client())
        .worker_id(id)
        .config(config)
        .processor_factory(factory)
        .build()
        .expect("scheduler");
    let handle = scheduler.handle();
    let run = tokio::spawn(scheduler.run());
    Worker { handle, run }
}
