//! Helpers shared by the coordinator's tests: an engine, streams, workers that only hold
//! leases, and waiting on conditions with a timeout.
#![allow(dead_code)]

use aws_sdk_dynamodb::types::AttributeValue;
use kcl::{
    Checkpoint, Coordinator, CoordinatorConfig, ExtendedCheckpoint, LeaseEvent, LeaseEvents,
    LeaseKey,
};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
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
            let mut n: u64 = 1000;
            while let Some(event) = events.recv().await {
                l.lock().await.events.push(event.clone());
                if let LeaseEvent::HandoffRequested { key, .. } = event
                    && answer_handoffs
                {
                    n += 1;
                    let seq = format!("{n}{:04}", key.shard_id().len());
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
            .await
            .expect("scan");
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
