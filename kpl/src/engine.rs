//! The producer's pipeline: one task that owns every queue, so ordering and accounting need
//! no locks. Records arrive over a channel; requests run as separate tasks and report back.
//!
//! Path of a record: routed to its predicted shard's FIFO queue → taken (aggregated with
//! records of the same shard) into a `PutRecords` request when due (buffered time, a full
//! aggregate, a flush) and when the shard's rate limiter and backoff allow → outcome, or back
//! to the front of its queue for a retry.

use crate::config::{Ordering, ProducerConfig};
use crate::error::PutError;
use crate::metrics::Metrics;
use crate::producer::StreamRef;
use crate::record::{Attempt, RecordOutcome};
use crate::shard_map::{ListError, ShardMap};
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use bytes::Bytes;
use shared_proto::{Aggregator, HashKeyRange};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::time::Instant;
use tracing::Instrument;

/// Partition key of an aggregate (its explicit hash key does the routing).
const AGGREGATE_PARTITION_KEY: &str = "a";

pub(crate) type Reply = oneshot::Sender<Result<RecordOutcome, PutError>>;

/// A user record inside the producer.
pub(crate) struct Pending {
    pub id: u64,
    pub pk: String,
    pub ehk: Option<String>,
    pub hash: u128,
    pub data: Bytes,
    pub reply: Reply,
    pub enqueued: Instant,
    pub deadline: Instant,
    /// When the record last became ready to send (enqueued, or its last attempt failed).
    pub last_event: Instant,
    pub attempt_started: Instant,
    pub attempts: Vec<Attempt>,
    pub permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

impl Pending {
    fn size(&self) -> usize {
        self.pk.len() + self.data.len()
    }
}

/// Commands from producer handles.
#[allow(clippy::large_enum_variant)] // records dominate; boxing each would cost an allocation
pub(crate) enum Cmd {
    Record(Pending),
    Flush(oneshot::Sender<()>),
    Shutdown {
        deadline: Instant,
        done: oneshot::Sender<()>,
    },
}

/// One Kinesis record of a request.
struct Entry {
    shard: usize,
    records: Vec<Pending>,
    aggregated: bool,
    pk: String,
    ehk: Option<String>,
    data: Bytes,
}

impl Entry {
    fn size(&self) -> usize {
        self.pk.len() + self.data.len()
    }
}

/// Per Kinesis record of a request: `(shard id, sequence number)` or `(error code, message)`.
type EntryResults = Vec<Result<(String, String), (String, String)>>;

/// How a whole request failed.
struct CallError {
    code: String,
    message: String,
}

enum Event {
    Done {
        entries: Vec<Entry>,
        result: Result<EntryResults, CallError>,
        finished: Instant,
    },
    MapLoaded(Result<ShardMap, ListError>),
}

/// Which record ids (assigned in order, from 1) still lack an outcome: a ring of flags from
/// the oldest outstanding id, so insert, remove and "oldest" are O(1) amortised.
#[derive(Default)]
struct Outstanding {
    base: u64,
    done: VecDeque<bool>,
    count: usize,
}

impl Outstanding {
    fn insert(&mut self, id: u64) {
        if self.done.is_empty() {
            self.base = id;
        }
        // Ids arrive in increasing order; fill any gap (ids of records never enqueued).
        while self.base + (self.done.len() as u64) < id {
            self.done.push_back(true);
        }
        self.done.push_back(false);
        self.count += 1;
        self.trim();
    }

    fn remove(&mut self, id: u64) {
        let Some(i) = id.checked_sub(self.base) else {
            return;
        };
        if let Some(flag) = self.done.get_mut(i as usize)
            && !*flag
        {
            *flag = true;
            self.count -= 1;
            self.trim();
        }
    }

    fn trim(&mut self) {
        while self.done.front() == Some(&true) {
            self.done.pop_front();
            self.base += 1;
        }
    }

    /// The oldest id without an outcome, or `u64::MAX`.
    fn first(&self) -> u64 {
        if self.done.is_empty() {
            u64::MAX
        } else {
            self.base
        }
    }

    fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn len(&self) -> usize {
        self.count
    }
}

/// Token buckets for one shard's records and bytes, with AIMD on throttling.
struct Limiter {
    records: f64,
    bytes: f64,
    factor: f64,
    last: Instant,
    base_records: f64,
    base_bytes: f64,
}

impl Limiter {
    fn new(percent: u32, now: Instant) -> Self {
        let p = f64::from(percent) / 100.0;
        let base_records = shared_proto::limits::SHARD_WRITE_RECORDS_PER_SEC as f64 * p;
        let base_bytes = shared_proto::limits::SHARD_WRITE_BYTES_PER_SEC as f64 * p;
        Limiter {
            records: base_records,
            bytes: base_bytes,
            factor: 1.0,
            last: now,
            base_records,
            base_bytes,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        let (r, b) = (
            self.base_records * self.factor,
            self.base_bytes * self.factor,
        );
        self.records = (self.records + dt * r).min(r);
        self.bytes = (self.bytes + dt * b).min(b);
    }

    /// `None` when a record may go now, else how long until it may.
    fn wait(&mut self, now: Instant) -> Option<Duration> {
        self.refill(now);
        if self.records >= 1.0 && self.bytes > 0.0 {
            return None;
        }
        let r = self.base_records * self.factor;
        let b = self.base_bytes * self.factor;
        let need_r = if self.records >= 1.0 {
            0.0
        } else {
            (1.0 - self.records) / r
        };
        let need_b = if self.bytes > 0.0 {
            0.0
        } else {
            (1.0 - self.bytes) / b
        };
        Some(Duration::from_secs_f64(need_r.max(need_b).max(0.001)))
    }

    fn take(&mut self, size: usize) {
        self.records -= 1.0;
        self.bytes -= size as f64;
    }

    fn throttled(&mut self) {
        self.factor = (self.factor * 0.7).max(0.05);
        self.records = self.records.min(0.0);
    }

    fn succeeded(&mut self) {
        self.factor = (self.factor + 0.02).min(1.0);
    }
}

struct ShardState {
    id: String,
    range: HashKeyRange,
    queue: VecDeque<Pending>,
    queued_bytes: usize,
    in_flight: usize,
    not_before: Instant,
    limited_until: Instant,
    backoff: Option<ExponentialBackoff>,
    limiter: Limiter,
}

pub(crate) struct Engine {
    cfg: ProducerConfig,
    client: Client,
    stream: StreamRef,
    metrics: Arc<Metrics>,
    map: ShardMap,
    shards: Vec<ShardState>,
    rr: usize,
    unrouted: VecDeque<Pending>,
    in_flight: usize,
    events_tx: mpsc::Sender<Event>,
    events_rx: mpsc::Receiver<Event>,
    refreshing: bool,
    refresh_wanted: bool,
    refresh_backoff: Option<ExponentialBackoff>,
    refresh_not_before: Instant,
    pending_map: Option<ShardMap>,
    /// Aggregates that landed on a shard other than predicted: (shard, sequence, records),
    /// resolved against the next shard map.
    unverified: Vec<(Arc<str>, Arc<str>, Vec<Pending>)>,
    outstanding: Outstanding,
    flush_waiters: Vec<(u64, oneshot::Sender<()>)>,
    flush_upto: u64,
    last_id: u64,
    shutdown: Option<(Instant, Option<oneshot::Sender<()>>)>,
    closed: bool,
}

fn backoff_builder(cfg: &ProducerConfig) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(cfg.retry_min_backoff)
        .with_max_delay(cfg.retry_max_backoff)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
}

fn is_throttle(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "KMSThrottlingException"
            | "LimitExceededException"
    )
}

/// Errors that retrying cannot fix.
fn is_final(code: &str) -> bool {
    matches!(
        code,
        "ResourceNotFoundException"
            | "AccessDeniedException"
            | "ValidationException"
            | "InvalidArgumentException"
            | "KMSDisabledException"
            | "KMSInvalidStateException"
            | "KMSAccessDeniedException"
            | "KMSNotFoundException"
            | "KMSOptInRequired"
            | "UnrecognizedClientException"
            | "MissingAuthenticationTokenException"
            | "IncompleteSignatureException"
            | "ClientError"
    )
}

impl Engine {
    pub(crate) fn new(
        cfg: ProducerConfig,
        client: Client,
        stream: StreamRef,
        metrics: Arc<Metrics>,
        map: ShardMap,
    ) -> Self {
        let (events_tx, events_rx) = mpsc::channel(cfg.max_connections * 2 + 8);
        let now = Instant::now();
        let mut engine = Engine {
            cfg,
            client,
            stream,
            metrics,
            map: ShardMap::default(),
            shards: Vec::new(),
            rr: 0,
            unrouted: VecDeque::new(),
            in_flight: 0,
            events_tx,
            events_rx,
            refreshing: false,
            refresh_wanted: false,
            refresh_backoff: None,
            refresh_not_before: now,
            pending_map: None,
            unverified: Vec::new(),
            outstanding: Outstanding::default(),
            flush_waiters: Vec::new(),
            flush_upto: 0,
            last_id: 0,
            shutdown: None,
            closed: false,
        };
        engine.apply_map(map, now);
        engine
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Cmd>) {
        loop {
            let now = Instant::now();
            self.pump(now);
            if self.finished() {
                break;
            }
            let wake = self.next_wake(now);
            tokio::select! {
                cmd = commands.recv(), if !self.closed => {
                    match cmd {
                        Some(cmd) => {
                            self.command(cmd);
                            // Take whatever else is waiting before the next pump.
                            for _ in 0..4096 {
                                match commands.try_recv() {
                                    Ok(cmd) => self.command(cmd),
                                    Err(_) => break,
                                }
                            }
                        }
                        None => self.on_closed(),
                    }
                }
                Some(event) = self.events_rx.recv() => self.event(event),
                _ = sleep_until(wake) => {}
            }
        }
        if let Some((_, Some(done))) = self.shutdown.take() {
            let _ = done.send(());
        }
        tracing::debug!(target: "kpl", "producer pipeline stopped");
    }

    fn finished(&mut self) -> bool {
        if let Some((deadline, _)) = &self.shutdown
            && Instant::now() >= *deadline
        {
            self.fail_queued(|attempts| PutError::ShutdownTimeout { attempts });
            if let Some((_, done)) = self.shutdown.as_mut()
                && let Some(done) = done.take()
            {
                let _ = done.send(());
            }
        }
        let stopping = self.closed || self.shutdown.is_some();
        stopping && self.in_flight == 0 && (self.outstanding.is_empty() || self.queued_is_empty())
    }

    fn queued_is_empty(&self) -> bool {
        self.unrouted.is_empty()
            && self.unverified.is_empty()
            && self.shards.iter().all(|s| s.queue.is_empty())
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Record(p) => {
                self.last_id = p.id;
                self.outstanding.insert(p.id);
                self.route(p, false);
            }
            Cmd::Flush(done) => {
                self.flush_upto = self.flush_upto.max(self.last_id);
                self.flush_waiters.push((self.last_id, done));
                self.check_flush_waiters();
            }
            Cmd::Shutdown { deadline, done } => {
                self.flush_upto = u64::MAX;
                self.shutdown = Some((deadline, Some(done)));
            }
        }
    }

    fn on_closed(&mut self) {
        self.closed = true;
        let queued = self.outstanding.len();
        if queued > 0 && self.shutdown.is_none() {
            tracing::warn!(target: "kpl", outstanding = queued, "producer dropped without shutdown: records not yet sent fail with PutError::Dropped");
            self.fail_queued(|_| PutError::Dropped);
        }
    }

    fn fail_queued(&mut self, err: impl Fn(Vec<Attempt>) -> PutError) {
        let mut all: Vec<Pending> = self.unrouted.drain(..).collect();
        for s in &mut self.shards {
            all.extend(s.queue.drain(..));
            s.queued_bytes = 0;
        }
        for (_, _, recs) in self.unverified.drain(..) {
            all.extend(recs);
        }
        for p in all {
            let e = err(p.attempts.clone());
            self.finish(p, Err(e));
        }
    }

    /// Puts a record into its shard's queue (at the back, or the front for a retry).
    fn route(&mut self, p: Pending, front: bool) {
        match self.map.route(p.hash).filter(|&i| i < self.shards.len()) {
            Some(i) => {
                let s = &mut self.shards[i];
                s.queued_bytes += p.size();
                if front {
                    s.queue.push_front(p);
                } else {
                    s.queue.push_back(p);
                }
            }
            None => {
                self.refresh_wanted = true;
                if front {
                    self.unrouted.push_front(p);
                } else {
                    self.unrouted.push_back(p);
                }
            }
        }
    }

    fn finish(&mut self, p: Pending, result: Result<RecordOutcome, PutError>) {
        self.outstanding.remove(p.id);
        match &result {
            Ok(_) => self.metrics.succeeded(1),
            Err(e) => self
                .metrics
                .failed(1, matches!(e, PutError::Expired { .. })),
        }
        // The caller may have dropped its handle; the outcome is still counted.
        let _ = p.reply.send(result);
        drop(p.permits);
    }

    fn check_flush_waiters(&mut self) {
        let min = self.outstanding.first();
        let mut i = 0;
        while i < self.flush_waiters.len() {
            if min > self.flush_waiters[i].0 {
                let (_, tx) = self.flush_waiters.swap_remove(i);
                let _ = tx.send(());
            } else {
                i += 1;
            }
        }
    }

    fn apply_map(&mut self, map: ShardMap, now: Instant) {
        let mut old_queues: Vec<Pending> = Vec::new();
        // Aggregates that landed elsewhere: keep the sub-records the landing shard owns,
        // send the others again (a consumer drops them from that aggregate).
        for (shard, seq, recs) in std::mem::take(&mut self.unverified) {
            let range = map.range(&shard[..]);
            for (i, p) in recs.into_iter().enumerate() {
                if range.is_some_and(|r| r.contains(p.hash)) {
                    let outcome = RecordOutcome {
                        shard_id: shard.clone(),
                        sequence_number: seq.clone(),
                        sub_sequence_number: i as u64,
                        aggregated: true,
                        attempts: p.attempts.clone(),
                    };
                    self.finish(p, Ok(outcome));
                } else {
                    old_queues.push(p);
                }
            }
        }
        for s in &mut self.shards {
            old_queues.extend(s.queue.drain(..));
        }
        old_queues.extend(self.unrouted.drain(..));
        self.shards = map
            .open_shards()
            .map(|(range, id)| ShardState {
                id: id.clone(),
                range: *range,
                queue: VecDeque::new(),
                queued_bytes: 0,
                in_flight: 0,
                not_before: now,
                limited_until: now,
                backoff: None,
                limiter: Limiter::new(self.cfg.rate_limit_percent, now),
            })
            .collect();
        self.map = map;
        self.rr = 0;
        for p in old_queues {
            self.route(p, false);
        }
    }

    fn pump(&mut self, now: Instant) {
        if self.in_flight == 0
            && let Some(map) = self.pending_map.take()
        {
            self.apply_map(map, now);
            self.check_flush_waiters();
        }
        if self.refresh_wanted && !self.refreshing && now >= self.refresh_not_before {
            self.start_refresh();
        }
        self.expire(now);
        // While the shard map is known to be stale, send nothing new; after the shutdown
        // deadline, nothing at all.
        if self.refreshing || self.pending_map.is_some() || self.refresh_wanted {
            return;
        }
        if self.shutdown.as_ref().is_some_and(|(d, _)| now >= *d) {
            return;
        }
        while self.in_flight < self.cfg.max_connections {
            let entries = self.build_request(now);
            if entries.is_empty() {
                break;
            }
            self.send(entries, now);
        }
        self.check_flush_waiters();
    }

    fn expire(&mut self, now: Instant) {
        let mut expired = Vec::new();
        for s in &mut self.shards {
            while s.queue.front().is_some_and(|p| p.deadline <= now) {
                if let Some(p) = s.queue.pop_front() {
                    s.queued_bytes -= p.size();
                    expired.push(p);
                }
            }
        }
        while self.unrouted.front().is_some_and(|p| p.deadline <= now) {
            if let Some(p) = self.unrouted.pop_front() {
                expired.push(p);
            }
        }
        for p in expired {
            let attempts = p.attempts.clone();
            self.finish(p, Err(PutError::Expired { attempts }));
        }
    }

    fn due(&self, s: &ShardState, now: Instant) -> bool {
        let Some(front) = s.queue.front() else {
            return false;
        };
        front.enqueued + self.cfg.record_max_buffered_time <= now
            || front.id <= self.flush_upto
            || !front.attempts.is_empty()
            || if self.cfg.aggregation_enabled {
                s.queued_bytes >= self.cfg.aggregation_max_size
            } else {
                s.queue.len() >= self.cfg.collection_max_count
            }
    }

    fn sendable(&self, s: &ShardState, now: Instant) -> bool {
        !s.queue.is_empty()
            && now >= s.not_before
            && now >= s.limited_until
            && (self.cfg.ordering == Ordering::Relaxed || s.in_flight == 0)
            && self.due(s, now)
    }

    fn build_request(&mut self, now: Instant) -> Vec<Entry> {
        let mut entries: Vec<Entry> = Vec::new();
        let mut bytes = 0usize;
        let n = self.shards.len();
        for k in 0..n {
            let i = (self.rr + k) % n;
            if !self.sendable(&self.shards[i], now) {
                continue;
            }
            self.take(i, now, &mut entries, &mut bytes);
            if entries.len() >= self.cfg.collection_max_count {
                break;
            }
        }
        if n > 0 {
            self.rr = (self.rr + 1) % n;
        }
        entries
    }

    /// Moves records of shard `i` into `entries` while the request, the aggregate and the
    /// rate limiter allow.
    fn take(&mut self, i: usize, now: Instant, entries: &mut Vec<Entry>, bytes: &mut usize) {
        let strict = self.cfg.ordering == Ordering::PerPartitionKey;
        let mut keys_in_request: HashSet<String> = HashSet::new();
        loop {
            if entries.len() >= self.cfg.collection_max_count {
                return;
            }
            if let Some(wait) = self.shards[i].limiter.wait(now) {
                self.shards[i].limited_until = now + wait;
                return;
            }
            let Some(entry) = self.next_entry(i, strict, &mut keys_in_request) else {
                return;
            };
            let size = entry.size();
            if *bytes + size > self.cfg.collection_max_size {
                self.unpop(i, entry.records);
                return;
            }
            *bytes += size;
            self.shards[i].limiter.take(size);
            let aggregated = entry.aggregated;
            entries.push(entry);
            if strict && aggregated {
                return;
            }
        }
    }

    fn unpop(&mut self, i: usize, records: Vec<Pending>) {
        let s = &mut self.shards[i];
        for p in records.into_iter().rev() {
            s.queued_bytes += p.size();
            s.queue.push_front(p);
        }
    }

    /// Builds the next Kinesis record of shard `i` from the front of its queue.
    fn next_entry(&mut self, i: usize, strict: bool, keys: &mut HashSet<String>) -> Option<Entry> {
        let max_size = self.cfg.aggregation_max_size;
        let max_count = self.cfg.aggregation_max_count;
        let aggregate = self.cfg.aggregation_enabled;
        let s = &mut self.shards[i];
        if !aggregate {
            let front = s.queue.front()?;
            if strict && keys.contains(&front.pk) {
                return None;
            }
            let p = s.queue.pop_front()?;
            s.queued_bytes -= p.size();
            if strict {
                keys.insert(p.pk.clone());
            }
            return Some(Entry {
                shard: i,
                pk: p.pk.clone(),
                ehk: p.ehk.clone(),
                data: p.data.clone(),
                records: vec![p],
                aggregated: false,
            });
        }
        let mut agg = Aggregator::new();
        let mut records: Vec<Pending> = Vec::new();
        let mut misrouted: Vec<Pending> = Vec::new();
        while let Some(front) = s.queue.front() {
            // Every sub-record must belong to the target shard's current range (a consumer
            // drops those that do not). Queues are routed by the same map, so this only
            // catches records left over from an older map: they are routed again.
            if !s.range.contains(front.hash) {
                if let Some(p) = s.queue.pop_front() {
                    s.queued_bytes -= p.size();
                    misrouted.push(p);
                }
                continue;
            }
            let next_len = agg.encoded_len_with(&front.pk, front.ehk.as_deref(), front.data.len());
            if !records.is_empty() && (next_len > max_size || records.len() >= max_count) {
                break;
            }
            let Some(p) = s.queue.pop_front() else { break };
            s.queued_bytes -= p.size();
            agg.add_unchecked(&p.pk, p.ehk.as_deref(), &p.data);
            records.push(p);
            if next_len > max_size {
                break; // a single record larger than an aggregate goes on its own
            }
        }
        for p in misrouted {
            tracing::warn!(target: "kpl", shard = %self.shards[i].id, "record outside its shard's range; routing it again");
            self.route(p, true);
        }
        match records.len() {
            0 => None,
            1 => {
                let p = &records[0];
                Some(Entry {
                    shard: i,
                    pk: p.pk.clone(),
                    ehk: p.ehk.clone(),
                    data: p.data.clone(),
                    records,
                    aggregated: false,
                })
            }
            _ => Some(Entry {
                shard: i,
                pk: AGGREGATE_PARTITION_KEY.to_owned(),
                ehk: Some(records[0].hash.to_string()),
                data: agg.finish(),
                records,
                aggregated: true,
            }),
        }
    }

    fn send(&mut self, mut entries: Vec<Entry>, now: Instant) {
        let mut shards: Vec<usize> = entries.iter().map(|e| e.shard).collect();
        shards.sort_unstable();
        shards.dedup();
        for &i in &shards {
            self.shards[i].in_flight += 1;
        }
        self.in_flight += 1;
        let mut bytes = 0u64;
        let mut sdk_entries = Vec::with_capacity(entries.len());
        for e in &mut entries {
            bytes += e.size() as u64;
            for p in &mut e.records {
                if p.attempts.is_empty() {
                    self.metrics
                        .buffered(now.saturating_duration_since(p.enqueued));
                } else {
                    self.metrics.retries(1);
                }
                p.attempt_started = now;
            }
            let entry = PutRecordsRequestEntry::builder()
                .partition_key(e.pk.clone())
                .set_explicit_hash_key(e.ehk.clone())
                .data(Blob::new(e.data.to_vec()))
                .build();
            match entry {
                Ok(entry) => sdk_entries.push(entry),
                // Partition key and data are always set above, so the builder cannot fail.
                Err(err) => {
                    tracing::error!(target: "kpl", %err, "building a PutRecords entry failed")
                }
            }
        }
        self.metrics.request(entries.len() as u64, bytes);
        let req = self
            .stream
            .apply_put(self.client.put_records())
            .set_records(Some(sdk_entries));
        let timeout = self.cfg.request_timeout;
        let events = self.events_tx.clone();
        let span = tracing::debug_span!(target: "kpl", "put_records", records = entries.len(), bytes, shards = shards.len());
        tokio::spawn(
            async move {
                let result = match tokio::time::timeout(timeout, req.send()).await {
                    Err(_) => Err(CallError {
                        code: "Timeout".into(),
                        message: format!("PutRecords took longer than {timeout:?}"),
                    }),
                    Ok(Err(err)) => Err(call_error(err)),
                    Ok(Ok(out)) => Ok(out
                        .records()
                        .iter()
                        .map(|r| match (r.shard_id(), r.sequence_number(), r.error_code()) {
                            (Some(shard), Some(seq), None) => Ok((shard.to_owned(), seq.to_owned())),
                            (_, _, code) => Err((
                                code.unwrap_or("InternalFailure").to_owned(),
                                r.error_message().unwrap_or("").to_owned(),
                            )),
                        })
                        .collect()),
                };
                if let Err(ref e) = result {
                    tracing::debug!(target: "kpl", code = %e.code, message = %e.message, "PutRecords failed");
                }
                let _ = events
                    .send(Event::Done {
                        entries,
                        result,
                        finished: Instant::now(),
                    })
                    .await;
            }
            .instrument(span),
        );
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Done {
                entries,
                result,
                finished,
            } => self.on_done(entries, result, finished),
            Event::MapLoaded(result) => self.on_map(result),
        }
    }

    fn failed_attempt(p: &mut Pending, finished: Instant, code: &str, message: &str) {
        p.attempts.push(Attempt {
            delay: p.attempt_started.saturating_duration_since(p.last_event),
            duration: finished.saturating_duration_since(p.attempt_started),
            error_code: Some(code.to_owned()),
            error_message: Some(message.to_owned()),
        });
        p.last_event = finished;
    }

    fn succeeded_attempt(p: &mut Pending, finished: Instant) {
        p.attempts.push(Attempt {
            delay: p.attempt_started.saturating_duration_since(p.last_event),
            duration: finished.saturating_duration_since(p.attempt_started),
            error_code: None,
            error_message: None,
        });
    }

    fn backoff(&mut self, i: usize, now: Instant) {
        let builder = backoff_builder(&self.cfg);
        let s = &mut self.shards[i];
        let delay = s
            .backoff
            .get_or_insert_with(|| builder.build())
            .next()
            .unwrap_or(self.cfg.retry_max_backoff);
        s.not_before = s.not_before.max(now + delay);
    }

    fn on_done(
        &mut self,
        entries: Vec<Entry>,
        result: Result<EntryResults, CallError>,
        finished: Instant,
    ) {
        self.in_flight -= 1;
        let mut shards: Vec<usize> = entries.iter().map(|e| e.shard).collect();
        shards.sort_unstable();
        shards.dedup();
        for &i in &shards {
            if let Some(s) = self.shards.get_mut(i) {
                s.in_flight = s.in_flight.saturating_sub(1);
            }
        }
        let stopping_hard = self.closed && self.shutdown.is_none();
        let past_deadline = self.shutdown.as_ref().is_some_and(|(d, _)| finished >= *d);
        // Records to send again, per shard, in request order.
        let mut retry: Vec<(usize, Pending)> = Vec::new();
        let mut failed_shards: HashSet<usize> = HashSet::new();
        match result {
            Err(call) => {
                let final_error = is_final(&call.code);
                for e in entries {
                    if is_throttle(&call.code) {
                        self.metrics.throttled(&self.shards[e.shard].id, 1);
                        self.shards[e.shard].limiter.throttled();
                    }
                    failed_shards.insert(e.shard);
                    for mut p in e.records {
                        Self::failed_attempt(&mut p, finished, &call.code, &call.message);
                        if final_error {
                            let attempts = p.attempts.clone();
                            let err = if call.code == "ResourceNotFoundException" {
                                PutError::StreamNotFound {
                                    stream: self.stream.to_string(),
                                    attempts,
                                }
                            } else {
                                PutError::Rejected {
                                    code: call.code.clone(),
                                    message: call.message.clone(),
                                    attempts,
                                }
                            };
                            self.finish(p, Err(err));
                        } else {
                            retry.push((e.shard, p));
                        }
                    }
                }
            }
            Ok(results) => {
                let mut results = results.into_iter();
                for e in entries {
                    let shard_id = self.shards[e.shard].id.clone();
                    match results.next() {
                        Some(Ok((landed, seq))) => {
                            let (landed, seq): (Arc<str>, Arc<str>) = (landed.into(), seq.into());
                            if *landed != *shard_id {
                                tracing::debug!(target: "kpl", predicted = %shard_id, %landed, "record landed on an unexpected shard; refreshing the shard map");
                                self.refresh_wanted = true;
                            }
                            if e.aggregated && *landed != *shard_id {
                                let mut recs = e.records;
                                for p in &mut recs {
                                    Self::succeeded_attempt(p, finished);
                                }
                                self.unverified.push((landed, seq, recs));
                                continue;
                            }
                            for (n, mut p) in e.records.into_iter().enumerate() {
                                Self::succeeded_attempt(&mut p, finished);
                                let outcome = RecordOutcome {
                                    shard_id: landed.clone(),
                                    sequence_number: seq.clone(),
                                    sub_sequence_number: n as u64,
                                    aggregated: e.aggregated,
                                    attempts: std::mem::take(&mut p.attempts),
                                };
                                self.finish(p, Ok(outcome));
                            }
                        }
                        failure => {
                            let (code, message) = match failure {
                                Some(Err(cm)) => cm,
                                _ => (
                                    "InternalFailure".to_owned(),
                                    "no result for the record".to_owned(),
                                ),
                            };
                            if is_throttle(&code) {
                                self.metrics.throttled(&shard_id, 1);
                                self.shards[e.shard].limiter.throttled();
                            }
                            failed_shards.insert(e.shard);
                            for mut p in e.records {
                                Self::failed_attempt(&mut p, finished, &code, &message);
                                retry.push((e.shard, p));
                            }
                        }
                    }
                }
            }
        }
        for &i in &shards {
            if failed_shards.contains(&i) {
                self.backoff(i, finished);
            } else if let Some(s) = self.shards.get_mut(i) {
                s.backoff = None;
                s.limiter.succeeded();
            }
        }
        // Back to the front of their queues, in their original order.
        for (_, p) in retry.into_iter().rev() {
            if stopping_hard {
                self.finish(p, Err(PutError::Dropped));
            } else if past_deadline {
                let attempts = p.attempts.clone();
                self.finish(p, Err(PutError::ShutdownTimeout { attempts }));
            } else if p.deadline <= finished {
                let attempts = p.attempts.clone();
                self.finish(p, Err(PutError::Expired { attempts }));
            } else {
                self.route(p, true);
            }
        }
        self.check_flush_waiters();
    }

    fn start_refresh(&mut self) {
        self.refreshing = true;
        self.refresh_wanted = false;
        let client = self.client.clone();
        let stream = self.stream.clone();
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let result = ShardMap::load(&client, &stream).await;
            let _ = events.send(Event::MapLoaded(result)).await;
        });
    }

    fn on_map(&mut self, result: Result<ShardMap, ListError>) {
        self.refreshing = false;
        let now = Instant::now();
        match result {
            Ok(map) => {
                self.metrics.refreshed();
                self.refresh_backoff = None;
                self.pending_map = Some(map);
            }
            Err(ListError::NotFound) => {
                let stream = self.stream.to_string();
                self.fail_queued(|attempts| PutError::StreamNotFound {
                    stream: stream.clone(),
                    attempts,
                });
            }
            Err(err) => {
                tracing::warn!(target: "kpl", ?err, "refreshing the shard map failed; retrying");
                let builder = backoff_builder(&self.cfg);
                let delay = self
                    .refresh_backoff
                    .get_or_insert_with(|| builder.build())
                    .next()
                    .unwrap_or(self.cfg.retry_max_backoff);
                self.refresh_wanted = true;
                self.refresh_not_before = now + delay;
            }
        }
    }

    fn next_wake(&self, now: Instant) -> Option<Instant> {
        let mut wake: Option<Instant> = None;
        let mut at = |t: Instant| {
            wake = Some(wake.map_or(t, |w: Instant| w.min(t)));
        };
        if let Some((deadline, _)) = &self.shutdown {
            at(*deadline);
        }
        if self.refresh_wanted && !self.refreshing {
            at(self.refresh_not_before);
        }
        if let Some(p) = self.unrouted.front() {
            at(p.deadline);
        }
        let blocked = self.refreshing || self.pending_map.is_some() || self.refresh_wanted;
        for s in &self.shards {
            let Some(front) = s.queue.front() else {
                continue;
            };
            at(front.deadline);
            if blocked || (self.cfg.ordering == Ordering::PerPartitionKey && s.in_flight > 0) {
                continue;
            }
            if self.in_flight >= self.cfg.max_connections {
                continue;
            }
            let ready = if self.due(s, now) {
                now
            } else {
                front.enqueued + self.cfg.record_max_buffered_time
            };
            at(ready.max(s.not_before).max(s.limited_until));
        }
        wake
    }
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn call_error<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    err: SdkError<E, R>,
) -> CallError {
    match &err {
        SdkError::ServiceError(_) => CallError {
            code: err.code().unwrap_or("InternalFailure").to_owned(),
            message: err.message().unwrap_or("").to_owned(),
        },
        SdkError::TimeoutError(_) => CallError {
            code: "Timeout".into(),
            message: format!("{err:?}"),
        },
        SdkError::DispatchFailure(_) => CallError {
            code: "Dispatch".into(),
            message: format!("{err:?}"),
        },
        SdkError::ResponseError(_) => CallError {
            code: "ResponseError".into(),
            message: format!("{err:?}"),
        },
        _ => CallError {
            code: err.code().unwrap_or("ClientError").to_owned(),
            message: format!("{err:?}"),
        },
    }
}
