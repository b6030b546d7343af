//! The coordinator's shared state and its three rounds: renewing held leases, taking and
//! balancing, and syncing leases with the shards. Each round carries out what the sans-I/O
//! [`Balancer`] and `discovery` decide.

use crate::balance::Balancer;
use crate::config::CoordinatorConfig;
use crate::discovery;
use crate::error::LeaseError;
use crate::events::{LeaseEvent, LostReason};
use crate::lease::{Lease, LeaseKey};
use crate::lease_table::LeaseTable;
use crate::metrics::{Count, Counters};
use crate::shards::{StreamRef, list_shards};
use futures::future::join_all;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A lease this worker holds, behind a lock that orders its renewals and checkpoints (both
/// are fenced on the counter, so they must not race each other).
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) state: tokio::sync::Mutex<HeldState>,
}

#[derive(Debug)]
pub(crate) struct HeldState {
    pub(crate) lease: Lease,
    /// When the last successful renewal (or other counter move) was sent.
    pub(crate) renewed_at: Instant,
    pub(crate) lost: bool,
    /// The requester a hand-off was announced to, if any.
    pub(crate) announced: Option<String>,
    /// Whether a release was asked for (over `max_leases_per_worker`).
    pub(crate) release_asked: bool,
    /// A hand-off request declined, and since when.
    pub(crate) declined: Option<(String, Instant)>,
}

/// What every round and every handle shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) me: String,
    pub(crate) table: LeaseTable,
    pub(crate) kinesis: aws_sdk_kinesis::Client,
    pub(crate) stream: StreamRef,
    pub(crate) config: CoordinatorConfig,
    pub(crate) held: Mutex<HashMap<LeaseKey, Arc<Held>>>,
    pub(crate) balancer: Mutex<Balancer>,
    pub(crate) events: mpsc::UnboundedSender<LeaseEvent>,
    pub(crate) counters: Arc<Counters>,
    /// Hand-offs announced and not yet done.
    pub(crate) granting: Mutex<HashSet<LeaseKey>>,
    /// Held leases whose checkpoint is `SHARD_END`.
    pub(crate) finished: Mutex<HashSet<LeaseKey>>,
    /// Leases being adopted right now.
    pub(crate) adopting: Mutex<HashSet<LeaseKey>>,
    /// Set by `shutdown`: no round takes anything any more.
    pub(crate) closed: std::sync::atomic::AtomicBool,
}

impl Shared {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn emit(&self, event: LeaseEvent) {
        // No receiver left: nobody to tell.
        let _ = self.events.send(event);
    }

    fn held_list(&self) -> Vec<(LeaseKey, Arc<Held>)> {
        self.held
            .lock()
            .iter()
            .map(|(k, h)| (k.clone(), h.clone()))
            .collect()
    }

    /// Starts holding `lease` (just taken, handed over or adopted).
    pub(crate) fn hold(&self, lease: Lease, at: Instant, how: Count) {
        let key = lease.key.clone();
        self.note_finished(&lease);
        if self.insert_held(lease.clone(), at, Some(how)) {
            tracing::info!(lease = %key, worker = %self.me, ?how, "lease acquired");
            self.emit(LeaseEvent::Acquired(Box::new(lease)));
        }
    }

    /// Holds a lease found owned by this worker at shutdown, only to release it.
    pub(crate) fn hold_quietly(&self, lease: Lease, at: Instant) {
        self.insert_held(lease, at, None);
    }

    /// Whether the lease was not held before. The count moves under the same lock as the
    /// held set, so a reader never sees one without the other.
    fn insert_held(&self, lease: Lease, at: Instant, how: Option<Count>) -> bool {
        let key = lease.key.clone();
        let held = Arc::new(Held {
            state: tokio::sync::Mutex::new(HeldState {
                lease,
                renewed_at: at,
                lost: false,
                announced: None,
                release_asked: false,
                declined: None,
            }),
        });
        let mut all = self.held.lock();
        let fresh = match all.entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(held);
                if let Some(how) = how {
                    self.counters.add(how);
                }
                true
            }
        };
        self.counters.set_held(all.len());
        fresh
    }

    /// Stops holding a lease that is lost, and says so.
    pub(crate) fn lose(&self, state: &mut HeldState, reason: LostReason) {
        state.lost = true;
        let key = state.lease.key.clone();
        self.forget_held(&key, Count::Lost);
        tracing::warn!(lease = %key, worker = %self.me, ?reason, "lease lost");
        self.emit(LeaseEvent::Lost { key, reason });
    }

    /// Stops holding a lease given away (released or handed off).
    pub(crate) fn let_go(&self, state: &mut HeldState, how: Count) {
        state.lost = true;
        let key = state.lease.key.clone();
        self.forget_held(&key, how);
        tracing::info!(lease = %key, worker = %self.me, ?how, "lease let go");
    }

    /// Removes a lease from the held set and counts why, under the held lock.
    fn forget_held(&self, key: &LeaseKey, how: Count) {
        {
            let mut all = self.held.lock();
            if all.remove(key).is_some() {
                self.counters.add(how);
            }
            self.counters.set_held(all.len());
        }
        self.granting.lock().remove(key);
        self.finished.lock().remove(key);
    }

    /// Renews every held lease once, all at the same time.
    pub(crate) async fn renew_round(&self) {
        let held = self.held_list();
        join_all(held.iter().map(|(_, h)| self.renew_one(h))).await;
    }

    async fn renew_one(&self, held: &Held) {
        // A checkpoint, hand-off or release in flight moves the counter itself: wait behind
        // it at most one renew interval, then leave this lease to the next round.
        let wait = self.config.effective_renew_interval();
        let Ok(mut state) = tokio::time::timeout(wait, held.state.lock()).await else {
            return;
        };
        if state.lost {
            return;
        }
        let deadline = state.renewed_at + self.config.failover_time;
        let sent = Instant::now();
        if sent >= deadline {
            self.lose(&mut state, LostReason::NotRenewed);
            return;
        }
        match self
            .table
            .renew(&state.lease, &self.me, Some(deadline))
            .await
        {
            Ok(new) => {
                self.counters.renewed(sent.elapsed());
                state.lease = new;
                state.renewed_at = sent;
                if let Some(stale) = self.consider_handoff(&mut state) {
                    // A request declined for the failover time (its requester may be gone).
                    let key = state.lease.key.clone();
                    if self.table.cancel_handoff(&key, &stale).await.is_ok() {
                        state.lease.handoff_to = None;
                        state.declined = None;
                    }
                }
            }
            Err(LeaseError::LeaseLost { .. }) => self.lose(&mut state, LostReason::TakenByOther),
            Err(e) => {
                if Instant::now() >= deadline {
                    self.lose(&mut state, LostReason::NotRenewed);
                } else {
                    tracing::warn!(lease = %state.lease.key, error = %e, "renewal failed; retrying next round");
                }
            }
        }
    }

    /// Announces a hand-off request seen on renewal, if granting it keeps this worker at or
    /// above its target. Returns a requester whose request was declined for the failover
    /// time, to be cleared.
    fn consider_handoff(&self, state: &mut HeldState) -> Option<String> {
        let key = state.lease.key.clone();
        let Some(to) = state.lease.handoff_to.clone() else {
            if state.announced.take().is_some() {
                self.granting.lock().remove(&key);
            }
            state.declined = None;
            return None;
        };
        if to == self.me || state.announced.as_deref() == Some(to.as_str()) {
            return None;
        }
        if state.lease.is_finished() {
            return None;
        }
        let held_unfinished = self.held_unfinished();
        let mut granting = self.granting.lock();
        granting.remove(&key);
        let ok = self
            .balancer
            .lock()
            .may_hand_off(held_unfinished, granting.len(), &to);
        if ok {
            granting.insert(key.clone());
            state.announced = Some(to.clone());
            state.declined = None;
            tracing::info!(lease = %key, to = %to, "hand-off requested");
            self.emit(LeaseEvent::HandoffRequested { key, to });
            return None;
        }
        tracing::debug!(lease = %key, to = %to, "hand-off request declined: at target");
        let now = Instant::now();
        match &state.declined {
            Some((who, since)) if *who == to => {
                (now.duration_since(*since) >= self.config.failover_time).then_some(to)
            }
            _ => {
                state.declined = Some((to, now));
                None
            }
        }
    }

    /// A requester's side (every renew interval, in its own task): leases handed to this
    /// worker are held at once.
    pub(crate) async fn check_requests(&self) {
        let keys = self.balancer.lock().outstanding_requests();
        for key in keys {
            let deadline = Instant::now() + self.config.effective_renew_interval();
            match self.table.get_until(&key, deadline).await {
                Ok(Some(lease)) if lease.owner.as_deref() == Some(self.me.as_str()) => {
                    self.balancer.lock().forget_request(&key);
                    self.adopt(lease, Count::Received).await;
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(lease = %key, error = %e, "hand-off check failed"),
            }
        }
    }

    /// Holds a lease the table says this worker owns, once a fenced renewal proves it still
    /// does (a scan may be stale: the lease may have been handed off or taken since).
    async fn adopt(&self, observed: Lease, how: Count) {
        if self.is_closed() || self.held.lock().contains_key(&observed.key) {
            return;
        }
        // One adoption of a lease at a time (the take round and the request check race).
        if !self.adopting.lock().insert(observed.key.clone()) {
            return;
        }
        let sent = Instant::now();
        let deadline = sent + self.config.failover_time;
        match self.table.renew(&observed, &self.me, Some(deadline)).await {
            Ok(new) => self.hold(new, sent, how),
            Err(e) => tracing::debug!(lease = %observed.key, error = %e, "not adopted"),
        }
        self.adopting.lock().remove(&observed.key);
    }

    /// How many held leases are not finished.
    fn held_unfinished(&self) -> usize {
        let held = self.held.lock();
        let finished = self.finished.lock();
        held.keys().filter(|k| !finished.contains(*k)).count()
    }

    /// Notes whether a held lease is finished (its checkpoint is `SHARD_END`).
    pub(crate) fn note_finished(&self, lease: &Lease) {
        let mut finished = self.finished.lock();
        if lease.is_finished() {
            finished.insert(lease.key.clone());
        } else {
            finished.remove(&lease.key);
        }
    }

    /// Creates the leases an empty table needs; whether any lease existed or was created.
    pub(crate) async fn bootstrap(&self) -> Result<(), LeaseError> {
        let shards = list_shards(
            &self.kinesis,
            &self.stream,
            Some(self.config.initial_position),
            self.config.call_attempts,
            self.config.call_timeout,
        )
        .await?;
        let leases = discovery::initial_leases(&shards, self.config.initial_position);
        tracing::info!(
            count = leases.len(),
            "creating the leases of an empty table"
        );
        self.create_all(&leases).await
    }

    async fn create_all(&self, leases: &[Lease]) -> Result<(), LeaseError> {
        let results = join_all(leases.iter().map(|l| self.table.create_if_absent(l))).await;
        results.into_iter().try_for_each(|r| r.map(|_| ()))
    }

    /// One take round: scan, plan, then take, adopt, ask, steal and withdraw.
    pub(crate) async fn take_round(&self) -> Result<(), LeaseError> {
        if self.is_closed() {
            return Err(LeaseError::ShutDown);
        }
        // Taken before the scan: a lease let go during the scan is not adopted back from it.
        let held: HashSet<LeaseKey> = self.held.lock().keys().cloned().collect();
        let (mut leases, bad) = self.table.list().await?;
        if leases.is_empty() && bad.is_empty() {
            self.bootstrap().await?;
            leases = self.table.list().await?.0;
        }
        let now = Instant::now();
        let plan = {
            let mut b = self.balancer.lock();
            b.observe(&leases, now);
            b.plan(&leases, &held, now)
        };
        if !plan.take.is_empty() || !plan.request.is_empty() || !plan.steal.is_empty() {
            tracing::debug!(
                worker = %self.me,
                target = plan.target,
                take = plan.take.len(),
                request = plan.request.len(),
                steal = plan.steal.len(),
                "take round"
            );
        }
        for lease in plan.adopt {
            self.balancer.lock().forget_request(&lease.key);
            self.adopt(lease, Count::Received).await;
        }
        if self.is_closed() {
            return Err(LeaseError::ShutDown);
        }
        let taken = join_all(plan.take.iter().map(|l| async move {
            let sent = Instant::now();
            (sent, self.table.take(l, &self.me).await)
        }))
        .await;
        for (observed, (sent, result)) in plan.take.iter().zip(taken) {
            match result {
                Ok(new) => self.hold(new, sent, Count::Taken),
                Err(LeaseError::LeaseLost { .. }) => {
                    tracing::debug!(lease = %observed.key, "another worker took it first");
                }
                Err(e) => tracing::warn!(lease = %observed.key, error = %e, "take failed"),
            }
        }
        for (key, owner) in plan.steal {
            self.steal(&key, &owner).await;
        }
        for (key, owner) in plan.request {
            match self.table.request_handoff(&key, &owner, &self.me).await {
                Ok(true) => self.balancer.lock().requested(key, owner, now),
                Ok(false) => {}
                Err(e) => tracing::warn!(lease = %key, error = %e, "hand-off request failed"),
            }
        }
        for key in plan.cancel {
            if let Err(e) = self.table.cancel_handoff(&key, &self.me).await {
                tracing::debug!(lease = %key, error = %e, "withdrawing a request failed");
            }
        }
        self.ask_release_over_max().await;
        Ok(())
    }

    /// Takes a lease whose owner did not hand it over within the failover time.
    async fn steal(&self, key: &LeaseKey, owner: &str) {
        let fresh = match self.table.get(key).await {
            Ok(Some(l))
                if l.owner.as_deref() == Some(owner)
                    && l.handoff_to.as_deref() == Some(self.me.as_str())
                    && !l.is_finished() =>
            {
                l
            }
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(lease = %key, error = %e, "reading a lease to take failed");
                return;
            }
        };
        let sent = Instant::now();
        match self.table.take(&fresh, &self.me).await {
            Ok(new) => {
                tracing::info!(lease = %key, from = ?fresh.owner, "hand-off not answered in time; lease taken");
                self.counters.add(Count::Stolen);
                self.hold(new, sent, Count::Taken);
            }
            Err(e) => {
                tracing::debug!(lease = %key, error = %e, "taking an unanswered lease failed")
            }
        }
    }

    async fn ask_release_over_max(&self) {
        let max = self.config.max_leases_per_worker;
        let mut held = self.held_list();
        if held.len() <= max {
            return;
        }
        held.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, h) in held.into_iter().skip(max) {
            let mut state = h.state.lock().await;
            if !state.release_asked && !state.lost {
                state.release_asked = true;
                self.emit(LeaseEvent::ReleaseRequested { key });
            }
        }
    }

    /// One shard sync: leases for shards that have none, and finished leases deleted once
    /// their children have started.
    pub(crate) async fn sync_round(&self) -> Result<(), LeaseError> {
        if self.is_closed() {
            return Err(LeaseError::ShutDown);
        }
        let shards = list_shards(
            &self.kinesis,
            &self.stream,
            None,
            self.config.call_attempts,
            self.config.call_timeout,
        )
        .await?;
        let (leases, _) = self.table.list().await?;
        if leases.is_empty() {
            return self.bootstrap().await;
        }
        let missing = discovery::missing_leases(&shards, &leases);
        if !missing.is_empty() {
            tracing::info!(count = missing.len(), "creating missing leases");
        }
        self.create_all(&missing).await?;
        for key in discovery::finished_to_delete(&shards, &leases) {
            if self.table.delete_finished(&key).await? {
                tracing::info!(lease = %key, "finished lease deleted: its children have started");
            }
        }
        Ok(())
    }
}
