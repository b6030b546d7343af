//! Helpers shared by the coordinator's tests: an engine, streams, workers that only hold
//! leases, and waiting on conditions with a timeout.
#![allow(dead_code)]

pub mod collector;

use aws_sdk_dynamodb::types::AttributeValue;
use kcl::{
    Checkpoint, Coordinator, CoordinatorConfig, ExtendedCheckpoint, LeaseEvent, LeaseEvents,
    LeaseKey,
};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use stream_engine::{Engine, EngineConfig};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// An engine on the manual clock (the coordinator's timing is its own monotonic clock).
pub async fn engine() -> Engine {
    Engine::start(
        EngineConfig {
            retention_check_interval: None,
            manual_clock: true,
            ..EngineConfig::default()
        },
        "127.0.0.1:0",
    )
    .await
    .expect("engine starts")
}

/// An engine on the manual clock without throughput limits (time would never refill them).
pub async fn engine_unlimited() -> Engine {
    Engine::start(
        EngineConfig {
            retention_check_interval: None,
            manual_clock: true,
            limits: stream_engine::Limits::disabled(),
            ..EngineConfig::default()
        },
        "127.0.0.1:0",
    )
    .await
    .expect("engine starts")
}

/// Creates a stream of `shards` shards.
pub async fn stream(engine: &Engine, name: &str, shards: i32) {
    engine
        .kinesis_client()
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .expect("create stream");
}

/// Short timings: failover 1 s (renew every 333 ms), take rounds every 500 ms.
pub fn fast() -> CoordinatorConfig {
    CoordinatorConfig::default()
        .failover_time(Duration::from_secs(1))
        .take_interval(Duration::from_millis(500))
        .call_timeout(Duration::from_millis(300))
        .retry_backoff(Duration::from_millis(10))
        .table_ready_timeout(Duration::from_secs(10))
}

/// Starts a coordinator for worker `id`.
pub async fn start(
    engine: &Engine,
    table: &str,
    stream: &str,
    id: &str,
    config: CoordinatorConfig,
) -> (Coordinator, LeaseEvents) {
    Coordinator::builder(
        engine.dynamodb_client(),
        engine.kinesis_client(),
        table,
        stream,
    )
    .worker_id(id)
    .config(config)
    .start()
    .await
    .expect("coordinator starts")
}

static NEXT_SEQUENCE: AtomicU64 = AtomicU64::new(1_000_000);

/// What a holder saw and did.
#[derive(Debug, Default)]
pub struct Log {
    pub events: Vec<LeaseEvent>,
    /// `(lease, checkpoint written before the hand-off)`.
    pub handed_off: Vec<(LeaseKey, String)>,
}

/// A worker that only holds leases: on a hand-off request it checkpoints (a sequence number
/// unique to this worker and lease) and hands the lease over, unless `answer_handoffs` is off.
pub struct Holder {
    pub coordinator: Coordinator,
    pub log: Arc<Mutex<Log>>,
    task: JoinHandle<()>,
}

impl Holder {
    pub fn new(coordinator: Coordinator, mut events: LeaseEvents, answer_handoffs: bool) -> Self {
        let log = Arc::new(Mutex::new(Log::default()));
        let c = coordinator.clone();
        let l = log.clone();
        let task = tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                l.lock().await.events.push(event.clone());
                if let LeaseEvent::HandoffRequested { key, .. } = event
                    && answer_handoffs
                {
                    // Unique across holders, so a checkpoint tells who wrote it.
                    let seq = NEXT_SEQUENCE.fetch_add(1, Ordering::Relaxed).to_string();
                    let cp = ExtendedCheckpoint::new(Checkpoint::Sequence(seq.clone()));
                    if c.checkpoint(&key, cp).await.is_ok()
                        && matches!(c.hand_off(&key).await, Ok(true))
                    {
                        l.lock().await.handed_off.push((key, seq));
                    }
                }
            }
        });
        Holder {
            coordinator,
            log,
            task,
        }
    }

    pub fn held(&self) -> usize {
        self.coordinator.held_keys().len()
    }

    /// Stops reacting to events (the coordinator goes on).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits until `check` holds, polling every 20 ms, at most `timeout`; panics with `what`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The raw items of a table (Scan through the SDK).
pub async fn raw_items(engine: &Engine, table: &str) -> Vec<HashMap<String, AttributeValue>> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = engine
            .dynamodb_client()
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await;
        let page = match page {
            Ok(page) => page,
            // The workers have not created the table yet: nothing in it.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return out;
            }
            Err(e) => panic!("scan: {e:?}"),
        };
        out.extend(page.items().iter().cloned());
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return out,
        }
    }
}

/// `leaseKey` → `leaseOwner` of a table.
pub async fn owners(engine: &Engine, table: &str) -> HashMap<String, Option<String>> {
    raw_items(engine, table)
        .await
        .into_iter()
        .filter_map(|item| {
            let key = item.get("leaseKey")?.as_s().ok()?.clone();
            let owner = item.get("leaseOwner").and_then(|o| o.as_s().ok()).cloned();
            Some((key, owner))
        })
        .collect()
}

/// How many leases each worker owns in the table.
pub async fn counts(engine: &Engine, table: &str) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for owner in owners(engine, table).await.into_values().flatten() {
        *out.entry(owner).or_default() += 1;
    }
    out
}

pub fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

pub fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Another client's write on a lease, as the Java KCL takes one: counter + 1, and the owner
/// set to `owner` (or left as it is), conditional on the counter just read; retried when a
/// renewal moves the counter in between.
pub async fn intrude(engine: &Engine, table: &str, key: &str, owner: Option<&str>) {
    let d = engine.dynamodb_client();
    for _ in 0..50 {
        let item = d
            .get_item()
            .table_name(table)
            .key("leaseKey", s(key))
            .consistent_read(true)
            .send()
            .await
            .expect("get")
            .item
            .expect("item");
        let counter: u64 = item["leaseCounter"]
            .as_n()
            .expect("n")
            .parse()
            .expect("u64");
        let mut update = d
            .update_item()
            .table_name(table)
            .key("leaseKey", s(key))
            .condition_expression("leaseCounter = :c")
            .expression_attribute_values(":c", n(counter))
            .expression_attribute_values(":next", n(counter + 1));
        update = match owner {
            Some(o) => update
                .update_expression("SET leaseOwner = :o, leaseCounter = :next")
                .expression_attribute_values(":o", s(o)),
            None => update.update_expression("SET leaseCounter = :next"),
        };
        if update.send().await.is_ok() {
            return;
        }
    }
    panic!("could not write {key} behind the worker's back");
}

/// Samples the workers' own held leases until stopped: no lease is held by two workers at
/// the same counter (a worker that lost a lease may hold it at an older counter until its
/// next renewal tells it, as with every KCL; its writes are fenced).
pub fn watch_held(
    workers: Vec<Coordinator>,
) -> (Arc<std::sync::atomic::AtomicBool>, JoinHandle<usize>) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let task = tokio::spawn(async move {
        let mut samples = 0;
        while !flag.load(Ordering::Relaxed) {
            let mut seen: HashMap<(LeaseKey, u64), String> = HashMap::new();
            for w in &workers {
                for lease in w.held_leases().await {
                    let at = (lease.key.clone(), lease.counter);
                    if let Some(other) = seen.insert(at, w.worker_id().to_owned()) {
                        panic!(
                            "{} held by {other} and {} at counter {}",
                            lease.key,
                            w.worker_id(),
                            lease.counter
                        );
                    }
                }
            }
            samples += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        samples
    });
    (stop, task)
}
