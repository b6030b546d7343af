//! The lease coordinator of one worker: its builder, its handle, and the tasks running its
//! rounds.

use crate::balance::Balancer;
use crate::config::{CoordinatorConfig, default_worker_id, validate_table_name};
use crate::discovery::{self, ShardInfo};
use crate::error::{ConfigError, LeaseError, StartError};
use crate::events::{LeaseEvents, LostReason};
use crate::lease::{ExtendedCheckpoint, Lease, LeaseKey};
use crate::lease_table::{CallPolicy, LeaseTable};
use crate::metrics::{Count, Counters, MetricsSnapshot};
use crate::rounds::{Held, Shared};
use crate::shards::StreamRef;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

/// Builds a [`Coordinator`].
#[derive(Debug)]
pub struct CoordinatorBuilder {
    dynamodb: aws_sdk_dynamodb::Client,
    kinesis: aws_sdk_kinesis::Client,
    table: String,
    stream: StreamRef,
    worker_id: Option<String>,
    config: CoordinatorConfig,
}

impl CoordinatorBuilder {
    /// The worker id. Default: the host name and a random suffix.
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }

    /// The configuration. Default: [`CoordinatorConfig::default`].
    pub fn config(mut self, config: CoordinatorConfig) -> Self {
        self.config = config;
        self
    }

    /// Makes the lease table ready (creating it if allowed), creates the leases of an empty
    /// table, and runs the first take round at once, so unowned leases are held when this
    /// returns. Then renewals, take rounds and shard syncs run in the background until
    /// [`Coordinator::shutdown`] (or until every handle is dropped, which stops them without
    /// releasing, like a crash).
    pub async fn start(self) -> Result<(Coordinator, LeaseEvents), StartError> {
        validate_table_name(&self.table)?;
        self.config.validate()?;
        let me = self.worker_id.unwrap_or_else(default_worker_id);
        if me.is_empty() {
            return Err(ConfigError::EmptyWorkerId.into());
        }
        let counters = Arc::new(Counters::default());
        let policy = CallPolicy {
            timeout: self.config.call_timeout,
            attempts: self.config.call_attempts,
            min_backoff: self.config.retry_backoff,
        };
        let table = LeaseTable::with_policy(self.dynamodb, self.table, policy, counters.clone());
        if self.config.create_table {
            table.ensure(self.config.table_ready_timeout).await?;
        } else if let Err(e) = table.list().await {
            return Err(match e {
                LeaseError::Service { code, .. }
                    if code.as_deref() == Some("ResourceNotFoundException") =>
                {
                    LeaseError::TableNotFound {
                        table: table.name().to_owned(),
                    }
                }
                other => other,
            }
            .into());
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            balancer: Mutex::new(Balancer::new(
                me.clone(),
                self.config.failover_time,
                self.config.max_leases_per_worker,
            )),
            me,
            table,
            kinesis: self.kinesis,
            stream: self.stream,
            config: self.config,
            held: Mutex::new(HashMap::new()),
            events: tx,
            counters,
            granting: Mutex::new(HashSet::new()),
            finished: Mutex::new(HashSet::new()),
            adopting: Mutex::new(HashSet::new()),
            closed: std::sync::atomic::AtomicBool::new(false),
        });
        let span = tracing::info_span!("kcl_coordinator", worker = %shared.me, table = %shared.table.name());
        shared.take_round().instrument(span.clone()).await?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let renew = shared.config.effective_renew_interval();
        let take = shared.config.effective_take_interval();
        let sync = shared.config.shard_sync_interval;
        let tasks = vec![
            spawn_every(
                stop_rx.clone(),
                renew,
                shared.clone(),
                span.clone(),
                |_| None,
                |s| async move {
                    s.renew_round().await;
                },
            ),
            spawn_every(
                stop_rx.clone(),
                take,
                shared.clone(),
                span.clone(),
                // Only where the take interval is within the failover time: a longer take
                // interval is the user's choice of fewer scans.
                |s| {
                    (s.config.effective_take_interval() <= s.config.failover_time)
                        .then(|| s.balancer.lock().next_deadline(Instant::now()))
                        .flatten()
                },
                |s| async move {
                    if let Err(e) = s.take_round().await {
                        tracing::warn!(error = %e, "take round failed");
                    }
                },
            ),
            spawn_every(
                stop_rx.clone(),
                renew,
                shared.clone(),
                span.clone(),
                |_| None,
                |s| async move {
                    s.check_requests().await;
                },
            ),
            spawn_every(
                stop_rx,
                sync,
                shared.clone(),
                span,
                |_| None,
                |s| async move {
                    if let Err(e) = s.sync_round().await {
                        tracing::warn!(error = %e, "shard sync failed");
                    }
                },
            ),
        ];
        let handle = Arc::new(Tasks {
            stop: stop_tx,
            tasks: Mutex::new(tasks),
        });
        Ok((
            Coordinator {
                shared,
                tasks: handle,
            },
            LeaseEvents { rx },
        ))
    }
}

/// How long after a lease's expiry deadline the early take round runs.
const EARLY_MARGIN: Duration = Duration::from_millis(20);

/// Runs `round` every `every` until `stop` turns true, and also just after the deadlines
/// `early` gives (an early round stands for the next regular one).
fn spawn_every<F, Fut, E>(
    mut stop: watch::Receiver<bool>,
    every: Duration,
    shared: Arc<Shared>,
    span: tracing::Span,
    early: E,
    round: F,
) -> JoinHandle<()>
where
    F: Fn(Arc<Shared>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
    E: Fn(&Shared) -> Option<Instant> + Send + 'static,
{
    tokio::spawn(
        async move {
            let mut next = Instant::now() + every;
            loop {
                // A deadline before the next round brings one round forward (just after it).
                let at = early(&shared)
                    .map(|d| d + EARLY_MARGIN)
                    .filter(|d| *d < next)
                    .map_or(next, |d| d.max(Instant::now()));
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                round(shared.clone()).await;
                next = if at >= next {
                    (next + every).max(Instant::now())
                } else {
                    // The early round stands for the regular one.
                    Instant::now() + every
                };
            }
        }
        .instrument(span),
    )
}

/// The background tasks; stopped (without releasing) when the last handle goes.
#[derive(Debug)]
struct Tasks {
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }
}

/// What [`Coordinator::shutdown`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Leases released.
    pub released: usize,
    /// Leases that could not be released (lost meanwhile, or DynamoDB failed); they expire
    /// after the failover time.
    pub not_released: usize,
}

/// Metrics and held keys of a coordinator, without keeping its rounds alive.
#[derive(Debug, Clone)]
pub(crate) struct CoordinatorView {
    shared: Arc<Shared>,
}

impl CoordinatorView {
    pub(crate) fn metrics(&self) -> MetricsSnapshot {
        self.shared.counters.snapshot()
    }

    pub(crate) fn held_keys(&self) -> Vec<LeaseKey> {
        let mut keys: Vec<LeaseKey> = self.shared.held.lock().keys().cloned().collect();
        keys.sort();
        keys
    }
}

/// The lease coordinator of one worker. Cheap to clone; every clone is the same worker.
#[derive(Debug, Clone)]
pub struct Coordinator {
    shared: Arc<Shared>,
    tasks: Arc<Tasks>,
}

impl Coordinator {
    /// A builder: DynamoDB and Kinesis clients, the lease table name and the stream.
    pub fn builder(
        dynamodb: aws_sdk_dynamodb::Client,
        kinesis: aws_sdk_kinesis::Client,
        lease_table: impl Into<String>,
        stream: impl Into<StreamRef>,
    ) -> CoordinatorBuilder {
        CoordinatorBuilder {
            dynamodb,
            kinesis,
            table: lease_table.into(),
            stream: stream.into(),
            worker_id: None,
            config: CoordinatorConfig::default(),
        }
    }

    /// A view for metrics and held keys that does not keep the coordinator running.
    pub(crate) fn view(&self) -> CoordinatorView {
        CoordinatorView {
            shared: self.shared.clone(),
        }
    }

    /// This worker's id.
    pub fn worker_id(&self) -> &str {
        &self.shared.me
    }

    /// The lease table.
    pub fn lease_table(&self) -> &LeaseTable {
        &self.shared.table
    }

    /// The leases held now, as last written or read.
    pub async fn held_leases(&self) -> Vec<Lease> {
        let held: Vec<Arc<Held>> = self.shared.held.lock().values().cloned().collect();
        let mut out = Vec::with_capacity(held.len());
        for h in held {
            out.push(h.state.lock().await.lease.clone());
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// One held lease, as last written or read.
    pub async fn held_lease(&self, key: &LeaseKey) -> Option<Lease> {
        let held = self.shared.held.lock().get(key).cloned()?;
        let state = held.state.lock().await;
        (!state.lost).then(|| state.lease.clone())
    }

    /// The keys of the leases held now.
    pub fn held_keys(&self) -> Vec<LeaseKey> {
        let mut keys: Vec<LeaseKey> = self.shared.held.lock().keys().cloned().collect();
        keys.sort();
        keys
    }

    /// What this coordinator has done so far.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.counters.snapshot()
    }

    fn held(&self, key: &LeaseKey) -> Result<Arc<Held>, LeaseError> {
        self.shared
            .held
            .lock()
            .get(key)
            .cloned()
            .ok_or_else(|| LeaseError::LeaseLost { key: key.clone() })
    }

    /// Runs one fenced write on a held lease, at most until the lease would expire; a failed
    /// fence loses the lease. `let_go`: the lease is no longer held
    /// once written.
    async fn fenced<F, Fut>(
        &self,
        key: &LeaseKey,
        let_go: Option<Count>,
        write: F,
    ) -> Result<Lease, LeaseError>
    where
        F: FnOnce(Lease, Instant) -> Fut,
        Fut: Future<Output = Result<Lease, LeaseError>>,
    {
        let held = self.held(key)?;
        let mut state = held.state.lock().await;
        if state.lost {
            return Err(LeaseError::LeaseLost { key: key.clone() });
        }
        let sent = Instant::now();
        let deadline = state.renewed_at + self.shared.config.failover_time;
        if sent >= deadline {
            self.shared.lose(&mut state, LostReason::NotRenewed);
            return Err(LeaseError::LeaseLost { key: key.clone() });
        }
        match write(state.lease.clone(), deadline).await {
            Ok(new) => {
                match let_go {
                    Some(how) => self.shared.let_go(&mut state, how),
                    None => {
                        self.shared.note_finished(&new);
                        state.lease = new.clone();
                        state.renewed_at = sent;
                    }
                }
                Ok(new)
            }
            Err(e @ LeaseError::LeaseLost { .. }) => {
                self.shared.lose(&mut state, LostReason::TakenByOther);
                Err(e)
            }
            Err(e) => {
                if Instant::now() >= deadline {
                    self.shared.lose(&mut state, LostReason::NotRenewed);
                }
                Err(e)
            }
        }
    }

    /// Stores a checkpoint in a held lease, fenced on its counter and owner. A lease another
    /// worker took gives [`LeaseError::LeaseLost`] and nothing is written.
    pub async fn checkpoint(
        &self,
        key: &LeaseKey,
        checkpoint: ExtendedCheckpoint,
    ) -> Result<Lease, LeaseError> {
        let (table, me) = (&self.shared.table, self.shared.me.as_str());
        self.fenced(key, None, |lease, deadline| async move {
            table
                .checkpoint(&lease, me, &checkpoint, Some(deadline))
                .await
        })
        .await
    }

    /// Stores a pending (prepared) checkpoint in a held lease, fenced like
    /// [`Coordinator::checkpoint`].
    pub async fn prepare_checkpoint(
        &self,
        key: &LeaseKey,
        pending: ExtendedCheckpoint,
    ) -> Result<Lease, LeaseError> {
        let (table, me) = (&self.shared.table, self.shared.me.as_str());
        self.fenced(key, None, |lease, deadline| async move {
            table
                .prepare_checkpoint(&lease, me, &pending, Some(deadline))
                .await
        })
        .await
    }

    /// Completes a requested hand-off (after
    /// [`LeaseEvent::HandoffRequested`](crate::LeaseEvent::HandoffRequested) and the
    /// processor's checkpoint): the lease goes to the requester. `Ok(false)` when no request
    /// is on the lease any more (the lease is still held).
    pub async fn hand_off(&self, key: &LeaseKey) -> Result<bool, LeaseError> {
        let result = self.try_hand_off(key).await;
        if !matches!(result, Ok(true)) {
            // Announce again if a request is still (or again) there.
            self.shared.granting.lock().remove(key);
            if let Ok(h) = self.held(key) {
                h.state.lock().await.announced = None;
            }
        }
        result
    }

    async fn try_hand_off(&self, key: &LeaseKey) -> Result<bool, LeaseError> {
        let held = self.held(key)?;
        // The whole hand-off, a re-read after a refused write included, under the lease's
        // lock: no renewal moves the counter meanwhile.
        let mut state = held.state.lock().await;
        if state.lost {
            return Err(LeaseError::LeaseLost { key: key.clone() });
        }
        let me = self.shared.me.as_str();
        let Some(to) = state.lease.handoff_to.clone().filter(|t| t != me) else {
            return Ok(false);
        };
        let deadline = state.renewed_at + self.shared.config.failover_time;
        if Instant::now() >= deadline {
            self.shared.lose(&mut state, LostReason::NotRenewed);
            return Err(LeaseError::LeaseLost { key: key.clone() });
        }
        match self
            .shared
            .table
            .hand_off(&state.lease, me, &to, Some(deadline))
            .await
        {
            Ok(_) => {
                tracing::info!(lease = %key, to = %to, "lease handed off");
                self.shared.let_go(&mut state, Count::HandedOff);
                Ok(true)
            }
            Err(LeaseError::LeaseLost { .. }) => {
                // Another worker took it, or the request was withdrawn or replaced.
                match self.shared.table.get(key).await? {
                    Some(fresh)
                        if fresh.owner.as_deref() == Some(me)
                            && fresh.counter == state.lease.counter =>
                    {
                        state.lease = fresh;
                        Ok(false)
                    }
                    _ => {
                        self.shared.lose(&mut state, LostReason::TakenByOther);
                        Err(LeaseError::LeaseLost { key: key.clone() })
                    }
                }
            }
            Err(e) => {
                if Instant::now() >= deadline {
                    self.shared.lose(&mut state, LostReason::NotRenewed);
                }
                Err(e)
            }
        }
    }

    /// Releases a held lease (owner removed), so another worker takes it on its next take
    /// round.
    pub async fn release(&self, key: &LeaseKey) -> Result<(), LeaseError> {
        let (table, me) = (&self.shared.table, self.shared.me.as_str());
        self.fenced(key, Some(Count::Released), |lease, deadline| async move {
            table.release(&lease, me, Some(deadline)).await
        })
        .await
        .map(|_| ())
    }

    /// Whether the lease may start: no parent lease exists whose checkpoint is not
    /// `SHARD_END`.
    pub async fn may_start(&self, key: &LeaseKey) -> Result<bool, LeaseError> {
        let lease = match self.held(key) {
            Ok(h) => h.state.lock().await.lease.clone(),
            Err(_) => match self.shared.table.get(key).await? {
                Some(l) => l,
                None => return Ok(false),
            },
        };
        let mut parents = Vec::new();
        for p in lease.parent_keys() {
            parents.push(self.shared.table.get(&p).await?);
        }
        Ok(discovery::may_start(&parents))
    }

    /// At the end of a shard: creates the child leases (checkpoint `TRIM_HORIZON`, parents
    /// set) and records them in the parent's `childShardIds`. Repeating it changes nothing.
    pub async fn shard_ended(
        &self,
        key: &LeaseKey,
        children: &[ShardInfo],
    ) -> Result<(), LeaseError> {
        for mut child in discovery::child_leases(children) {
            child.key = key.sibling(child.key.shard_id());
            self.shared.table.create_if_absent(&child).await?;
        }
        let ids: Vec<String> = children.iter().map(|c| c.id.clone()).collect();
        self.shared.table.add_children(key, &ids).await
    }

    /// Lists the shards now and creates missing leases (and deletes finished ones whose
    /// children have started), as the periodic sync does.
    pub async fn sync_shards(&self) -> Result<(), LeaseError> {
        self.shared.sync_round().await
    }

    /// Runs a take round now, as the periodic one does.
    pub async fn take_now(&self) -> Result<(), LeaseError> {
        self.shared.take_round().await
    }

    async fn release_all(&self, report: &mut ShutdownReport) {
        for key in self.held_keys() {
            match self.release(&key).await {
                Ok(()) => report.released += 1,
                Err(e) => {
                    tracing::warn!(lease = %key, error = %e, "not released at shutdown");
                    report.not_released += 1;
                }
            }
        }
    }

    /// Stops the rounds, then releases every held lease, so other workers take them on their
    /// next take round instead of waiting out the failover time. Stop the shard consumers
    /// (and let them checkpoint) first. Calling it again releases nothing more.
    pub async fn shutdown(&self) -> ShutdownReport {
        self.shared
            .closed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.tasks.stop.send_replace(true);
        let tasks: Vec<JoinHandle<()>> = self.tasks.tasks.lock().drain(..).collect();
        for t in tasks {
            let _ = t.await;
        }
        // Held leases first, while their renewals are fresh.
        let mut report = ShutdownReport::default();
        self.release_all(&mut report).await;
        // Then this worker's hand-off requests are withdrawn (those the table shows too,
        // whose write timed out), and leases handed to it at the last moment released.
        let deadline = Instant::now() + self.shared.config.failover_time;
        let mut requests: HashSet<LeaseKey> = self
            .shared
            .balancer
            .lock()
            .outstanding_requests()
            .into_iter()
            .collect();
        let me = self.shared.me.clone();
        match tokio::time::timeout_at(deadline, self.shared.table.list()).await {
            Ok(Ok((leases, _))) => {
                for lease in leases {
                    if lease.handoff_to.as_deref() == Some(me.as_str()) {
                        requests.insert(lease.key.clone());
                    }
                    if lease.owner.as_deref() == Some(me.as_str())
                        && !self.shared.held.lock().contains_key(&lease.key)
                    {
                        self.shared.hold_quietly(lease, Instant::now());
                    }
                }
            }
            _ => tracing::warn!("listing leases at shutdown failed"),
        }
        for key in requests {
            let cancel = self.shared.table.cancel_handoff(&key, &me);
            if !matches!(tokio::time::timeout_at(deadline, cancel).await, Ok(Ok(()))) {
                tracing::debug!(lease = %key, "withdrawing a request failed");
            }
        }
        self.release_all(&mut report).await;
        tracing::info!(worker = %self.shared.me, released = report.released, "coordinator shut down");
        report
    }
}
