//! The scheduler: a worker's coordinator plus one shard consumer (an async task) per held
//! lease, started, signalled and stopped on the coordinator's events.

use crate::config::{CoordinatorConfig, InitialPosition};
use crate::consumer_metrics::{ProcessingCounters, ProcessingSnapshot};
use crate::coordinator::{Coordinator, CoordinatorView};
use crate::error::StartError;
use crate::events::LeaseEvent;
use crate::fanout::RetrievalMode;
use crate::lease::LeaseKey;
use crate::metrics::MetricsSnapshot;
use crate::processor::{OnError, ShardRecordProcessorFactory};
use crate::retrieval::FetchConfig;
use crate::shard_consumer::{ConsumerContext, Ended, ShardConsumer, Signal};
use crate::shards::StreamRef;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How a scheduler processes. Build from `default()` and the setters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SchedulerConfig {
    /// The lease coordination (failover time, take interval, initial position, …).
    pub coordinator: CoordinatorConfig,
    /// Most records per `GetRecords`. Default 10 000.
    pub max_records: i32,
    /// Wait between reads of a shard that is caught up (no wait while behind). Default 1 s.
    pub idle_time_between_reads: Duration,
    /// How often a child checks whether its parents are done. Default 1 s.
    pub parent_poll_interval: Duration,
    /// What a failed `process_records` leads to. Default [`OnError::Retry`].
    pub on_error: OnError,
    /// First retry delay of a failed batch or read (doubling, jittered). Default 100 ms.
    pub retry_backoff: Duration,
    /// Longest wait for one `GetRecords` or `GetShardIterator`. Default 10 s.
    pub read_timeout: Duration,
    /// How long shard consumers get to finish and checkpoint at shutdown. Default 30 s.
    pub shutdown_timeout: Duration,
    /// Polling (default) or enhanced fan-out through a registered consumer.
    pub retrieval: RetrievalMode,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            coordinator: CoordinatorConfig::default(),
            max_records: 10_000,
            idle_time_between_reads: Duration::from_secs(1),
            parent_poll_interval: Duration::from_secs(1),
            on_error: OnError::Retry,
            retry_backoff: Duration::from_millis(100),
            read_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(30),
            retrieval: RetrievalMode::Polling,
        }
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: $ty) -> Self {
                self.$name = value;
                self
            }
        )*
    };
}

impl SchedulerConfig {
    setters! {
        /// Sets [`SchedulerConfig::coordinator`].
        coordinator: CoordinatorConfig,
        /// Sets [`SchedulerConfig::max_records`].
        max_records: i32,
        /// Sets [`SchedulerConfig::idle_time_between_reads`].
        idle_time_between_reads: Duration,
        /// Sets [`SchedulerConfig::parent_poll_interval`].
        parent_poll_interval: Duration,
        /// Sets [`SchedulerConfig::on_error`].
        on_error: OnError,
        /// Sets [`SchedulerConfig::retry_backoff`].
        retry_backoff: Duration,
        /// Sets [`SchedulerConfig::read_timeout`].
        read_timeout: Duration,
        /// Sets [`SchedulerConfig::shutdown_timeout`].
        shutdown_timeout: Duration,
        /// Sets [`SchedulerConfig::retrieval`].
        retrieval: RetrievalMode,
    }
}

/// Why a scheduler could not be built or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchedulerError {
    /// A required part was not given.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A value is out of range.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// The coordinator could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The enhanced fan-out consumer could not be registered or did not become `ACTIVE`.
    #[error("enhanced fan-out consumer: {0}")]
    FanOut(String),
}

/// Builds a [`Scheduler`].
pub struct SchedulerBuilder {
    application: String,
    stream: StreamRef,
    lease_table: Option<String>,
    kinesis: Option<aws_sdk_kinesis::Client>,
    dynamodb: Option<aws_sdk_dynamodb::Client>,
    factory: Option<Arc<dyn ShardRecordProcessorFactory>>,
    worker_id: Option<String>,
    initial_position: Option<InitialPosition>,
    config: SchedulerConfig,
}

impl SchedulerBuilder {
    /// The lease table name. Default: the application name.
    pub fn lease_table(mut self, name: impl Into<String>) -> Self {
        self.lease_table = Some(name.into());
        self
    }

    /// The Kinesis client.
    pub fn kinesis(mut self, client: aws_sdk_kinesis::Client) -> Self {
        self.kinesis = Some(client);
        self
    }

    /// The DynamoDB client.
    pub fn dynamodb(mut self, client: aws_sdk_dynamodb::Client) -> Self {
        self.dynamodb = Some(client);
        self
    }

    /// Both clients from one SDK configuration.
    pub fn sdk_config(mut self, config: &aws_config::SdkConfig) -> Self {
        self.kinesis = Some(aws_sdk_kinesis::Client::new(config));
        self.dynamodb = Some(aws_sdk_dynamodb::Client::new(config));
        self
    }

    /// The processor factory (one processor per shard).
    pub fn processor_factory(
        mut self,
        factory: impl ShardRecordProcessorFactory + 'static,
    ) -> Self {
        self.factory = Some(Arc::new(factory));
        self
    }

    /// Where shards without a checkpoint begin. Default `TrimHorizon` (or the one in the
    /// configuration's coordinator); this wins over the configuration in either order.
    pub fn initial_position(mut self, position: InitialPosition) -> Self {
        self.initial_position = Some(position);
        self
    }

    /// The worker id. Default: the host name and a random suffix.
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }

    /// The configuration. Default: [`SchedulerConfig::default`].
    pub fn config(mut self, config: SchedulerConfig) -> Self {
        self.config = config;
        self
    }

    /// Builds the scheduler to hand out a [`BatchStream`](crate::BatchStream) of per-shard
    /// batches instead of calling a processor (any factory given is replaced). Run the
    /// scheduler and read the stream; each shard's next batch comes once its current one is
    /// acked or failed, and at shutdown each shard yields a `ShutdownRequested` batch that
    /// must be finished too.
    pub fn build_stream(
        mut self,
    ) -> Result<(Scheduler, crate::batch_stream::BatchStream), SchedulerError> {
        let (forwarders, stream) = crate::batch_stream::channel(64);
        self.factory = Some(Arc::new(forwarders));
        Ok((self.build()?, stream))
    }

    /// Checks the parts and builds the scheduler (nothing runs until [`Scheduler::run`]).
    pub fn build(mut self) -> Result<Scheduler, SchedulerError> {
        if let Some(p) = self.initial_position {
            self.config.coordinator.initial_position = p;
        }
        let kinesis = self
            .kinesis
            .ok_or(SchedulerError::Missing("Kinesis client"))?;
        let dynamodb = self
            .dynamodb
            .ok_or(SchedulerError::Missing("DynamoDB client"))?;
        let factory = self
            .factory
            .ok_or(SchedulerError::Missing("processor factory"))?;
        if !(1..=10_000).contains(&self.config.max_records) {
            return Err(SchedulerError::Invalid("max_records (1 to 10 000)"));
        }
        for (name, d) in [
            ("parent_poll_interval", self.config.parent_poll_interval),
            ("retry_backoff", self.config.retry_backoff),
            ("read_timeout", self.config.read_timeout),
        ] {
            if d.is_zero() || d > crate::config::MAX_INTERVAL {
                return Err(SchedulerError::Invalid(name));
            }
        }
        let (stop, _) = watch::channel(false);
        let (done, _) = watch::channel(false);
        let handle = SchedulerHandle {
            inner: Arc::new(HandleInner {
                stop,
                done,
                coordinator: OnceLock::new(),
                counters: Arc::new(ProcessingCounters::default()),
            }),
        };
        Ok(Scheduler {
            lease_table: self.lease_table.unwrap_or_else(|| self.application.clone()),
            stream: self.stream,
            kinesis,
            dynamodb,
            factory,
            worker_id: self.worker_id,
            config: self.config,
            handle,
        })
    }
}

struct HandleInner {
    stop: watch::Sender<bool>,
    done: watch::Sender<bool>,
    coordinator: OnceLock<CoordinatorView>,
    counters: Arc<ProcessingCounters>,
}

/// Controls a running scheduler: graceful shutdown and metrics. Cheap to clone.
#[derive(Clone)]
pub struct SchedulerHandle {
    inner: Arc<HandleInner>,
}

impl std::fmt::Debug for SchedulerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerHandle").finish_non_exhaustive()
    }
}

impl SchedulerHandle {
    /// Graceful shutdown: stop fetching, let every processor checkpoint
    /// (`shutdown_requested`), release the leases, and wait until `run` has returned.
    pub async fn shutdown(&self) {
        self.inner.stop.send_replace(true);
        let mut done = self.inner.done.subscribe();
        let _ = done.wait_for(|d| *d).await;
    }

    /// What the shard consumers have done so far.
    pub fn processing_metrics(&self) -> ProcessingSnapshot {
        self.inner.counters.snapshot()
    }

    /// What the lease coordinator has done so far (empty before `run` started it).
    pub fn lease_metrics(&self) -> MetricsSnapshot {
        self.inner
            .coordinator
            .get()
            .map(CoordinatorView::metrics)
            .unwrap_or_default()
    }

    /// The shards whose leases this worker holds now.
    pub fn held_shards(&self) -> Vec<String> {
        self.inner
            .coordinator
            .get()
            .map(|c| {
                c.held_keys()
                    .iter()
                    .map(|k| k.shard_id().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A worker: run it with [`Scheduler::run`], stop it with a [`SchedulerHandle`].
pub struct Scheduler {
    lease_table: String,
    stream: StreamRef,
    kinesis: aws_sdk_kinesis::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    factory: Arc<dyn ShardRecordProcessorFactory>,
    worker_id: Option<String>,
    config: SchedulerConfig,
    handle: SchedulerHandle,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("lease_table", &self.lease_table)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// A builder for the application (the lease table is named after it unless given) and the
    /// stream (a name, or an ARN starting with `arn:`).
    pub fn builder(
        application: impl Into<String>,
        stream: impl Into<StreamRef>,
    ) -> SchedulerBuilder {
        SchedulerBuilder {
            application: application.into(),
            stream: stream.into(),
            lease_table: None,
            kinesis: None,
            dynamodb: None,
            factory: None,
            worker_id: None,
            initial_position: None,
            config: SchedulerConfig::default(),
        }
    }

    /// A handle to shut the scheduler down and read its metrics.
    pub fn handle(&self) -> SchedulerHandle {
        self.handle.clone()
    }

    /// Runs until [`SchedulerHandle::shutdown`]: starts the coordinator (the first leases are
    /// taken at once), then one shard consumer per held lease.
    pub async fn run(self) -> Result<(), SchedulerError> {
        let result = self.run_inner().await;
        self.handle.inner.done.send_replace(true);
        result
    }

    async fn run_inner(&self) -> Result<(), SchedulerError> {
        // The registered consumer first, so no shard waits for it.
        let consumer_arn = match &self.config.retrieval {
            RetrievalMode::FanOut { consumer_name } => {
                let ready = crate::fanout::ensure_consumer(
                    &self.kinesis,
                    &self.stream,
                    consumer_name,
                    self.config.coordinator.table_ready_timeout,
                    self.config.coordinator.call_timeout,
                );
                let mut stop = self.handle.inner.stop.subscribe();
                tokio::select! {
                    arn = ready => Some(arn.map_err(SchedulerError::FanOut)?),
                    // Shut down before it was ready: nothing started, nothing to release.
                    _ = stop.wait_for(|s| *s) => return Ok(()),
                }
            }
            _ => None,
        };
        let mut builder = Coordinator::builder(
            self.dynamodb.clone(),
            self.kinesis.clone(),
            self.lease_table.clone(),
            self.stream.clone(),
        )
        .config(self.config.coordinator.clone());
        if let Some(id) = &self.worker_id {
            builder = builder.worker_id(id.clone());
        }
        let (coordinator, mut events) = builder.start().await?;
        let _ = self.handle.inner.coordinator.set(coordinator.view());
        let ctx = ConsumerContext {
            coordinator: coordinator.clone(),
            kinesis: self.kinesis.clone(),
            stream: self.stream.clone(),
            fetch: FetchConfig {
                max_records: self.config.max_records,
                idle_time: self.config.idle_time_between_reads,
                call_timeout: self.config.read_timeout,
                min_backoff: self.config.retry_backoff,
                max_backoff: Duration::from_secs(5),
                consumer_arn,
            },
            counters: self.handle.inner.counters.clone(),
            on_error: self.config.on_error.clone(),
            parent_poll: self.config.parent_poll_interval,
            retry_backoff: self.config.retry_backoff,
            initial_position: self.config.coordinator.initial_position,
        };
        let mut stop = self.handle.inner.stop.subscribe();
        let mut stopped = std::pin::pin!(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
        let mut running: HashMap<LeaseKey, watch::Sender<Signal>> = HashMap::new();
        let mut tasks: JoinSet<(LeaseKey, Ended)> = JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                event = events.recv() => {
                    let Some(event) = event else { break };
                    self.on_event(event, &ctx, &mut running, &mut tasks).await;
                }
                Some(joined) = tasks.join_next() => {
                    let Ok((key, ended)) = joined else { continue };
                    running.remove(&key);
                    tracing::debug!(shard = %key.shard_id(), ?ended, "shard consumer ended");
                    if ended == Ended::ShardEnd {
                        // The children are unowned leases now: take them at once.
                        let c = coordinator.clone();
                        tokio::spawn(async move { let _ = c.take_now().await; });
                    } else if let Some(lease) = coordinator.held_lease(&key).await {
                        // Still held (a hand-off or release that did not happen, a lease
                        // re-taken while its old consumer was ending, a processor that
                        // panicked): consume it again, from its checkpoint.
                        if ended == Ended::Panicked {
                            tokio::time::sleep(self.config.retry_backoff).await;
                        }
                        self.spawn(lease, &ctx, &mut running, &mut tasks);
                    }
                }
            }
        }
        // Graceful: every consumer finishes its batch and may checkpoint (a lost lease stays
        // lost).
        for signal in running.values() {
            signal.send_if_modified(|cur| {
                if *cur == Signal::LeaseLost {
                    return false;
                }
                *cur = Signal::Shutdown;
                true
            });
        }
        let drained = tokio::time::timeout(self.config.shutdown_timeout, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("shard consumers did not finish within the shutdown timeout");
            tasks.abort_all();
        }
        coordinator.shutdown().await;
        Ok(())
    }

    fn spawn(
        &self,
        lease: crate::lease::Lease,
        ctx: &ConsumerContext,
        running: &mut HashMap<LeaseKey, watch::Sender<Signal>>,
        tasks: &mut JoinSet<(LeaseKey, Ended)>,
    ) {
        let key = lease.key.clone();
        if running.contains_key(&key) {
            return;
        }
        let (tx, rx) = watch::channel(Signal::Run);
        let processor = self.factory.create(key.shard_id());
        let consumer = ShardConsumer::new(ctx.clone(), lease, rx, processor);
        running.insert(key.clone(), tx);
        tasks.spawn(async move {
            use futures::FutureExt;
            // A panicking processor must not leave its lease held with no consumer.
            match std::panic::AssertUnwindSafe(consumer.run()).catch_unwind().await {
                Ok(ended) => (key, ended),
                Err(_) => {
                    tracing::error!(shard = %key.shard_id(), "the shard consumer panicked; restarting it from the checkpoint");
                    (key, Ended::Panicked)
                }
            }
        });
    }

    async fn on_event(
        &self,
        event: LeaseEvent,
        ctx: &ConsumerContext,
        running: &mut HashMap<LeaseKey, watch::Sender<Signal>>,
        tasks: &mut JoinSet<(LeaseKey, Ended)>,
    ) {
        let signal =
            |running: &HashMap<LeaseKey, watch::Sender<Signal>>, key: &LeaseKey, s: Signal| {
                match running.get(key) {
                    Some(tx) => {
                        tx.send_if_modified(|cur| {
                            // A lost lease overrides anything; nothing overrides it.
                            if *cur == Signal::LeaseLost
                                || (*cur != Signal::Run && s != Signal::LeaseLost)
                            {
                                return false;
                            }
                            *cur = s;
                            true
                        });
                        true
                    }
                    None => false,
                }
            };
        match event {
            LeaseEvent::Acquired(lease) => self.spawn(*lease, ctx, running, tasks),
            LeaseEvent::Lost { key, .. } => {
                signal(running, &key, Signal::LeaseLost);
            }
            LeaseEvent::HandoffRequested { key, .. } => {
                if !signal(running, &key, Signal::HandOff) {
                    let c = ctx.coordinator.clone();
                    tokio::spawn(async move { c.hand_off(&key).await });
                }
            }
            LeaseEvent::ReleaseRequested { key } => {
                if !signal(running, &key, Signal::Release) {
                    let c = ctx.coordinator.clone();
                    tokio::spawn(async move { c.release(&key).await });
                }
            }
        }
    }
}
