//! The producer's sans-I/O core: a state machine that takes records, flush and shutdown
//! commands, request results, shard maps and `now`, and returns actions (send this
//! `PutRecords`, list the shards) plus the time it next wants to be woken. It resolves record
//! handles itself (a oneshot send needs no runtime). The async driver does the calls.
//!
//! Path of a record: routed to its predicted shard's FIFO queue → taken (aggregated with
//! records of the same shard) into a request when due (buffered time, a full aggregate, a
//! flush, a retry) and when the shard's rate limiter and backoff allow → outcome, or back to
//! the front of its queue for a retry.

use crate::classify::{CallError, ErrorClass};
use crate::config::{Ordering, ProducerConfig};
use crate::error::PutError;
use crate::limiter::Limiter;
use crate::metrics::Metrics;
use crate::outstanding::{FlushReport, Outstanding};
use crate::queue::{BatchLimits, Carried, Pending, ShardState, WireEntry};
use crate::record::RecordOutcome;
use crate::shard_map::ShardMap;
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// What the driver must do.
#[derive(Debug)]
pub(crate) enum Action {
    /// Send these Kinesis records in one `PutRecords`; report with [`Core::put_done`].
    Put {
        request: u64,
        entries: Vec<WireEntry>,
    },
    /// List the stream's shards; report with [`Core::map_loaded`].
    ListShards,
}

/// Per Kinesis record of a request: `(shard id, sequence number)` or an error.
pub(crate) type EntryResult = Result<(String, String), CallError>;

/// What a shutdown saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Records accepted over the producer's life.
    pub records: u64,
    /// Records stored.
    pub succeeded: u64,
    /// Records whose outcome is an error (expired, rejected, timed out, …).
    pub failed: u64,
    /// Of the failed, those that reached the shutdown deadline without an outcome.
    pub timed_out: u64,
    /// Of the failed, those whose TTL ran out.
    pub expired: u64,
}

impl ShutdownReport {
    /// Whether every record was stored.
    pub fn is_clean(&self) -> bool {
        self.failed == 0 && self.succeeded == self.records
    }
}

/// An aggregate that landed on a shard other than predicted, waiting for a fresh shard map to
/// tell whether the landing shard owns every sub-record.
#[derive(Debug)]
struct Unverified {
    shard: Arc<str>,
    sequence: Arc<str>,
    records: Vec<Pending>,
}

#[derive(Debug, Default)]
struct Refresh {
    wanted: bool,
    running: bool,
    not_before: Option<Instant>,
    backoff: Option<ExponentialBackoff>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    succeeded: u64,
    timed_out: u64,
    expired: u64,
}

/// Room one record may need in the outstanding-bytes limit (data + key).
const MAX_RECORD_ROOM: usize = shared_proto::limits::MAX_RECORD_SIZE + 256;

/// A far-future instant for durations that would overflow (`Duration::MAX`, a huge TTL).
pub(crate) fn later(now: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 86_400);
    now.checked_add(d.min(FAR))
        .or_else(|| now.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(now)
}

fn backoff_builder(cfg: &ProducerConfig) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(cfg.retry_min_backoff)
        .with_max_delay(cfg.retry_max_backoff)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
}

/// The state machine.
#[derive(Debug)]
pub(crate) struct Core {
    cfg: ProducerConfig,
    stream: String,
    metrics: Arc<Metrics>,
    map: ShardMap,
    shards: Vec<ShardState>,
    rr: usize,
    unrouted: VecDeque<Pending>,
    requests: HashMap<u64, Vec<Carried>>,
    next_request: u64,
    refresh: Refresh,
    pending_map: Option<ShardMap>,
    unverified: Vec<Unverified>,
    outstanding: Outstanding,
    flush_upto: u64,
    shutdown: Option<Instant>,
    closed: bool,
    totals: Totals,
    /// Bytes (data + keys) of the records without an outcome.
    outstanding_bytes: usize,
}

impl Core {
    pub fn new(
        cfg: ProducerConfig,
        stream: String,
        metrics: Arc<Metrics>,
        map: ShardMap,
        now: Instant,
    ) -> Self {
        let mut core = Core {
            cfg,
            stream,
            metrics,
            map: ShardMap::default(),
            shards: Vec::new(),
            rr: 0,
            unrouted: VecDeque::new(),
            requests: HashMap::new(),
            next_request: 0,
            refresh: Refresh::default(),
            pending_map: None,
            unverified: Vec::new(),
            outstanding: Outstanding::default(),
            flush_upto: 0,
            shutdown: None,
            closed: false,
            totals: Totals::default(),
            outstanding_bytes: 0,
        };
        core.apply_map(map, now);
        core
    }

    // ----- commands -------------------------------------------------------------------

    /// A record arrives: it gets the next id, its TTL starts.
    pub fn record(&mut self, mut p: Pending, now: Instant) {
        p.id = self.outstanding.assign();
        self.outstanding_bytes += p.size();
        p.enqueued = now;
        p.last_event = now;
        p.attempt_started = now;
        p.deadline = later(now, self.cfg.record_ttl);
        if self.closed || self.shutdown.is_some_and(|d| now >= d) {
            let attempts = Vec::new();
            self.finish(p, Err(PutError::ShutdownTimeout { attempts }));
            return;
        }
        self.route(p, false);
    }

    /// A flush: answered once every record that arrived before it has an outcome.
    pub fn flush(&mut self, waiter: oneshot::Sender<FlushReport>) {
        // Everything up to here is due now, even if nobody waits for the answer (the Sink).
        let upto = self.outstanding.flush(waiter);
        self.flush_upto = self.flush_upto.max(upto);
    }

    /// A shutdown: everything queued is due now; what has no outcome at `deadline` fails with
    /// [`PutError::ShutdownTimeout`]. A second shutdown may only bring the deadline closer.
    pub fn shutdown(&mut self, deadline: Instant) {
        self.flush_upto = u64::MAX;
        self.shutdown = Some(self.shutdown.map_or(deadline, |d| d.min(deadline)));
    }

    /// Every producer handle is gone without a shutdown: what is not in flight fails with
    /// [`PutError::Dropped`].
    pub fn close(&mut self) {
        self.closed = true;
        if self.shutdown.is_none() && !self.outstanding.is_empty() {
            tracing::warn!(target: "kpl", outstanding = self.outstanding.len(), "producer dropped without shutdown: records not yet sent fail with PutError::Dropped");
            self.fail_queued(|_| PutError::Dropped);
        }
    }

    // ----- results ----------------------------------------------------------------------

    /// A `PutRecords` answered (or failed as a whole).
    pub fn put_done(
        &mut self,
        request: u64,
        result: Result<Vec<EntryResult>, CallError>,
        now: Instant,
    ) {
        let Some(carried) = self.requests.remove(&request) else {
            return;
        };
        let mut touched: Vec<usize> = carried.iter().map(|c| c.shard).collect();
        touched.sort_unstable();
        touched.dedup();
        for &i in &touched {
            if let Some(s) = self.shards.get_mut(i) {
                s.in_flight = s.in_flight.saturating_sub(1);
            }
        }
        let mut retry: Vec<Pending> = Vec::new();
        let mut failed_shards: HashSet<usize> = HashSet::new();
        let mut throttled: HashMap<usize, u64> = HashMap::new();
        let mut results = result.map(Vec::into_iter);
        for c in carried {
            let r = match &mut results {
                Err(call) => Err(call.clone()),
                Ok(it) => it.next().unwrap_or_else(|| {
                    Err(CallError::new(
                        "InternalFailure",
                        "no result for the record",
                    ))
                }),
            };
            match r {
                Ok((landed, seq)) => self.stored(c, landed, seq, now),
                Err(err) => {
                    failed_shards.insert(c.shard);
                    let class = err.class();
                    match class {
                        ErrorClass::Throttled => *throttled.entry(c.shard).or_default() += 1,
                        ErrorClass::NotFound => self.refresh.wanted = true,
                        _ => {}
                    }
                    for mut p in c.records {
                        p.failed_attempt(now, &err.code, &err.message);
                        if class == ErrorClass::Final {
                            let attempts = p.attempts.clone();
                            let e = PutError::Rejected {
                                code: err.code.clone(),
                                message: err.message.clone(),
                                attempts,
                            };
                            self.finish(p, Err(e));
                        } else {
                            retry.push(p);
                        }
                    }
                }
            }
        }
        for &i in &touched {
            let Some(s) = self.shards.get_mut(i) else {
                continue;
            };
            if let Some(&n) = throttled.get(&i) {
                // Once per response, however many of its records were throttled.
                s.limiter.throttled();
                self.metrics.throttled(&s.id, n, s.limiter.permille());
            }
            if failed_shards.contains(&i) {
                let builder = backoff_builder(&self.cfg);
                let delay = s
                    .backoff
                    .get_or_insert_with(|| builder.build())
                    .next()
                    .unwrap_or(self.cfg.retry_max_backoff);
                s.not_before = s.not_before.max(later(now, delay));
            } else {
                s.backoff = None;
                let before = s.limiter.permille();
                s.limiter.succeeded();
                if s.limiter.permille() != before {
                    self.metrics.rate(&s.id, s.limiter.permille());
                }
            }
        }
        // Back to the front of their queues, in their original order.
        for p in retry.into_iter().rev() {
            self.requeue(p, now);
        }
        self.outstanding.answer();
    }

    fn stored(&mut self, c: Carried, landed: String, seq: String, now: Instant) {
        let predicted = self.shards.get(c.shard).map(|s| s.id.clone());
        let (landed, seq): (Arc<str>, Arc<str>) = (landed.into(), seq.into());
        let expected = predicted.as_deref() == Some(&*landed);
        if !expected {
            tracing::debug!(target: "kpl", predicted = ?predicted, %landed, "record landed on an unexpected shard; refreshing the shard map");
            self.refresh.wanted = true;
        }
        let mut records = c.records;
        for p in &mut records {
            p.succeeded_attempt(now);
        }
        if c.aggregated && !expected {
            if self.closed && self.shutdown.is_none() {
                for p in records {
                    self.finish(p, Err(PutError::Dropped));
                }
                return;
            }
            self.unverified.push(Unverified {
                shard: landed,
                sequence: seq,
                records,
            });
            return;
        }
        for (n, mut p) in records.into_iter().enumerate() {
            let outcome = RecordOutcome {
                shard_id: landed.clone(),
                sequence_number: seq.clone(),
                sub_sequence_number: n as u64,
                aggregated: c.aggregated,
                attempts: std::mem::take(&mut p.attempts),
            };
            self.finish(p, Ok(outcome));
        }
    }

    fn requeue(&mut self, p: Pending, now: Instant) {
        if self.closed && self.shutdown.is_none() {
            self.finish(p, Err(PutError::Dropped));
        } else if self.shutdown.is_some_and(|d| now >= d) {
            let attempts = p.attempts.clone();
            self.finish(p, Err(PutError::ShutdownTimeout { attempts }));
        } else if p.deadline <= now {
            let attempts = p.attempts.clone();
            self.finish(p, Err(PutError::Expired { attempts }));
        } else {
            self.route(p, true);
        }
    }

    /// A `ListShards` finished: `Ok(None)` when the stream lists no open shard.
    pub fn map_loaded(&mut self, result: Result<Option<ShardMap>, CallError>, now: Instant) {
        self.refresh.running = false;
        let err = match result {
            Ok(Some(map)) => {
                self.metrics.refreshed();
                self.pending_map = Some(map);
                return;
            }
            Ok(None) => CallError::new("NoOpenShards", "the stream lists no open shard"),
            Err(e) => e,
        };
        if err.class() == ErrorClass::NotFound {
            let stream = self.stream.clone();
            self.fail_queued(|attempts| PutError::StreamNotFound {
                stream: stream.clone(),
                attempts,
            });
        }
        tracing::warn!(target: "kpl", code = %err.code, message = %err.message, "refreshing the shard map failed; retrying");
        self.refresh.wanted = true;
        self.schedule_refresh(now);
        self.outstanding.answer();
    }

    fn schedule_refresh(&mut self, now: Instant) {
        let builder = backoff_builder(&self.cfg);
        let delay = self
            .refresh
            .backoff
            .get_or_insert_with(|| builder.build())
            .next()
            .unwrap_or(self.cfg.retry_max_backoff);
        self.refresh.not_before = Some(later(now, delay));
    }

    // ----- the pump ---------------------------------------------------------------------

    /// Does what is due at `now` and appends the calls to make to `out`.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<Action>) {
        if let Some(deadline) = self.shutdown
            && now >= deadline
        {
            self.fail_queued(|attempts| PutError::ShutdownTimeout { attempts });
        }
        if self.requests.is_empty()
            && let Some(map) = self.pending_map.take()
        {
            self.apply_map(map, now);
            if self.refresh.wanted {
                // The new map still leaves records unroutable or unverified: ask again, but
                // not at once.
                self.schedule_refresh(now);
            } else {
                self.refresh.backoff = None;
                self.refresh.not_before = None;
            }
        }
        if self.refresh.wanted
            && !self.refresh.running
            && self.refresh.not_before.is_none_or(|t| now >= t)
            && !self.outstanding.is_empty()
        {
            self.refresh.running = true;
            self.refresh.wanted = false;
            out.push(Action::ListShards);
        }
        self.expire(now);
        // While the shard map is known to be stale, send nothing new; after the shutdown
        // deadline, nothing at all.
        if !self.map_is_current() || self.shutdown.is_some_and(|d| now >= d) {
            self.outstanding.answer();
            return;
        }
        while self.requests.len() < self.cfg.max_connections {
            let Some(action) = self.build_request(now) else {
                break;
            };
            out.push(action);
        }
        self.outstanding.answer();
    }

    fn map_is_current(&self) -> bool {
        !(self.refresh.running || self.pending_map.is_some() || self.refresh.wanted)
    }

    /// Whether the pipeline is done: stopping, and nothing outstanding or in flight.
    pub fn finished(&self) -> bool {
        (self.closed || self.shutdown.is_some())
            && self.outstanding.is_empty()
            && self.requests.is_empty()
    }

    /// Totals over the producer's life.
    pub fn report(&self) -> ShutdownReport {
        ShutdownReport {
            records: self.outstanding.last(),
            succeeded: self.totals.succeeded,
            failed: self.outstanding.failed_total(),
            timed_out: self.totals.timed_out,
            expired: self.totals.expired,
        }
    }

    /// Records without an outcome.
    #[cfg(test)]
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// When the core next has something to do, if nothing else happens first.
    pub fn next_wake(&self, now: Instant) -> Option<Instant> {
        let mut wake: Option<Instant> = None;
        let mut at = |t: Instant| wake = Some(wake.map_or(t, |w: Instant| w.min(t)));
        if let Some(deadline) = self.shutdown
            && now < deadline
        {
            at(deadline);
        }
        if self.refresh.wanted && !self.refresh.running && !self.outstanding.is_empty() {
            at(self.refresh.not_before.unwrap_or(now));
        }
        if let Some(p) = self.unrouted.front() {
            at(p.deadline);
        }
        for u in &self.unverified {
            if let Some(p) = u.records.iter().min_by_key(|p| p.deadline) {
                at(p.deadline);
            }
        }
        let current = self.map_is_current();
        for s in &self.shards {
            let Some(front) = s.queue.front() else {
                continue;
            };
            at(front.deadline);
            if !current
                || (self.cfg.ordering == Ordering::PerPartitionKey && s.in_flight > 0)
                || self.requests.len() >= self.cfg.max_connections
            {
                continue;
            }
            let ready = if self.due(s, now) {
                now
            } else {
                later(front.enqueued, self.cfg.record_max_buffered_time)
            };
            at(ready.max(s.not_before).max(s.limited_until));
        }
        wake
    }

    // ----- internals --------------------------------------------------------------------

    fn finish(&mut self, p: Pending, result: Result<RecordOutcome, PutError>) {
        self.outstanding.resolve(p.id, result.is_err());
        self.outstanding_bytes = self.outstanding_bytes.saturating_sub(p.size());
        match &result {
            Ok(_) => {
                self.totals.succeeded += 1;
                self.metrics.succeeded(1);
            }
            Err(e) => {
                let expired = matches!(e, PutError::Expired { .. });
                if expired {
                    self.totals.expired += 1;
                }
                if matches!(e, PutError::ShutdownTimeout { .. }) {
                    self.totals.timed_out += 1;
                }
                self.metrics.failed(1, expired);
            }
        }
        // The caller may have dropped its handle; the outcome is still counted.
        let _ = p.reply.send(result);
        drop(p.permits);
    }

    fn fail_queued(&mut self, err: impl Fn(Vec<crate::record::Attempt>) -> PutError) {
        let mut all: Vec<Pending> = self.unrouted.drain(..).collect();
        for s in &mut self.shards {
            all.extend(s.queue.drain(..));
            s.queued_bytes = 0;
        }
        for u in self.unverified.drain(..) {
            all.extend(u.records);
        }
        for p in all {
            let e = err(p.attempts.clone());
            self.finish(p, Err(e));
        }
        self.outstanding.answer();
    }

    /// Puts a record into its shard's queue (at the back, or the front for a retry).
    fn route(&mut self, p: Pending, front: bool) {
        match self.map.route(p.hash).filter(|&i| i < self.shards.len()) {
            Some(i) => self.shards[i].push(p, front),
            None => {
                self.refresh.wanted = true;
                if front {
                    self.unrouted.push_front(p);
                } else {
                    self.unrouted.push_back(p);
                }
            }
        }
    }
}

mod map;
mod send;

#[cfg(test)]
mod tests;
