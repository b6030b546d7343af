//! One shard consumer per held lease: wait for the parents, initialize, fetch and process,
//! then end at the shard end, a lost lease, a hand-off, a release or a shutdown.

use crate::checkpointer::Checkpointer;
use crate::config::InitialPosition;
use crate::consumer_metrics::ProcessingCounters;
use crate::coordinator::Coordinator;
use crate::lease::{Checkpoint, ExtendedCheckpoint, Lease, LeaseKey};
use crate::processor::{
    InitializeInput, OnError, ProcessRecordsInput, ProcessorError, ShardRecordProcessor,
};
use crate::records::{Record, Unpacked, unpack};
use crate::retrieval::{Batch, FetchConfig, StartAt, spawn_fetcher};
use crate::shards::StreamRef;
use shared_proto::HashKeyRange;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::time::Instant;

/// What the scheduler asks of a running consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    Run,
    /// Stop at once, without checkpointing.
    LeaseLost,
    /// Finish the batch, let the processor checkpoint, hand the lease over.
    HandOff,
    /// Finish the batch, let the processor checkpoint, release the lease.
    Release,
    /// Finish the batch, let the processor checkpoint, stop (the coordinator releases).
    Shutdown,
}

/// How a consumer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    ShardEnd,
    LeaseLost,
    HandedOff,
    Released,
    Shutdown,
    /// The processor panicked.
    Panicked,
}

/// What every consumer of a scheduler shares.
#[derive(Clone)]
pub(crate) struct ConsumerContext {
    pub coordinator: Coordinator,
    pub kinesis: aws_sdk_kinesis::Client,
    pub stream: StreamRef,
    pub fetch: FetchConfig,
    pub counters: Arc<ProcessingCounters>,
    pub on_error: OnError,
    pub parent_poll: Duration,
    pub retry_backoff: Duration,
    pub initial_position: InitialPosition,
}

pub(crate) struct ShardConsumer {
    ctx: ConsumerContext,
    key: LeaseKey,
    lease: Lease,
    signal: watch::Receiver<Signal>,
    processor: Box<dyn ShardRecordProcessor>,
    checkpointer: Checkpointer,
    /// The last record that was processed (or dead-lettered, or skipped by choice).
    done_up_to: Option<(String, u64)>,
}

/// Why delivery stopped.
enum Interrupted {
    Signal(Signal),
    GaveUp,
}

impl ShardConsumer {
    pub(crate) fn new(
        ctx: ConsumerContext,
        lease: Lease,
        signal: watch::Receiver<Signal>,
        processor: Box<dyn ShardRecordProcessor>,
    ) -> Self {
        let checkpointer = Checkpointer::new(
            ctx.coordinator.clone(),
            lease.key.clone(),
            lease.checkpoint.clone(),
            ctx.counters.clone(),
        );
        ShardConsumer {
            key: lease.key.clone(),
            ctx,
            lease,
            signal,
            processor,
            checkpointer,
            done_up_to: None,
        }
    }

    /// The signal in force; a checkpoint refused for a lost lease counts as its loss.
    fn current(&self) -> Signal {
        if self.checkpointer.saw_lease_lost() {
            return Signal::LeaseLost;
        }
        *self.signal.borrow()
    }

    /// Sleeps `d`, or less if a signal arrives; the signal in force after.
    async fn pause(&mut self, d: Duration) -> Signal {
        if self.current() == Signal::Run {
            let _ = tokio::time::timeout(d, self.signal.changed()).await;
        }
        self.current()
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .ctx
            .retry_backoff
            .saturating_mul(1u32 << attempt.min(8))
            .min(Duration::from_secs(10));
        exp.mul_f64(0.5 + rand::random::<f64>() / 2.0)
    }

    pub(crate) async fn run(mut self) -> Ended {
        let shard = self.key.shard_id().to_owned();
        // Parents first.
        loop {
            match self.current() {
                Signal::Run => {}
                other => return self.finish_early(other).await,
            }
            match self.ctx.coordinator.may_start(&self.key).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::debug!(shard = %shard, error = %e, "parent check failed"),
            }
            self.pause(self.ctx.parent_poll).await;
        }
        if self.lease.is_finished() {
            tracing::debug!(shard = %shard, "lease already at SHARD_END");
            return Ended::ShardEnd;
        }
        // Initialize, retried until it succeeds.
        let mut attempt = 0;
        loop {
            let input = InitializeInput {
                shard_id: shard.clone(),
                checkpoint: self.lease.checkpoint.clone(),
                pending_checkpoint: self.lease.pending_checkpoint.clone(),
            };
            match self.processor.initialize(input).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(shard = %shard, error = %e, "initialize failed; retrying");
                    let s = self.pause(self.backoff(attempt)).await;
                    if s != Signal::Run {
                        return self.finish_early(s).await;
                    }
                    attempt += 1;
                }
            }
        }
        let (start, after) = match &self.lease.checkpoint.checkpoint {
            Checkpoint::TrimHorizon => (StartAt::TrimHorizon, None),
            Checkpoint::Latest => (StartAt::Latest, None),
            Checkpoint::AtTimestamp => match self.ctx.initial_position {
                InitialPosition::AtTimestamp(t) => (StartAt::AtTimestamp(t), None),
                _ => (StartAt::AtTimestamp(SystemTime::UNIX_EPOCH), None),
            },
            Checkpoint::Sequence(s) => (
                StartAt::AtSequence(s.clone()),
                Some((s.clone(), self.lease.checkpoint.sub_sequence)),
            ),
            Checkpoint::ShardEnd => return Ended::ShardEnd,
        };
        let range = self
            .lease
            .hash_range
            .as_ref()
            .and_then(|(a, b)| HashKeyRange::parse(a, b).ok());
        let (mut batches, fetcher) = spawn_fetcher(
            self.ctx.kinesis.clone(),
            self.ctx.stream.clone(),
            shard.clone(),
            start,
            self.ctx.fetch.clone(),
            self.ctx.counters.clone(),
        );
        let _abort = AbortOnDrop(fetcher);
        let mut skip_after = after;
        loop {
            let batch: Batch = tokio::select! {
                b = batches.recv() => match b {
                    Some(b) => b,
                    None => {
                        let s = match self.current() {
                            Signal::Run => Signal::Shutdown,
                            other => other,
                        };
                        return self.stop(s).await;
                    }
                },
                _ = self.signal.changed() => {
                    let s = self.current();
                    if s == Signal::Run { continue; }
                    return self.stop(s).await;
                }
            };
            let now = self.current();
            if now != Signal::Run {
                // The batch in hand is not started: it goes to the next owner.
                return self.stop(now).await;
            }
            let mut stats = Unpacked::default();
            let records = unpack(
                batch.records,
                range.as_ref(),
                skip_after.as_ref().map(|(s, n)| (s.as_str(), *n)),
                &mut stats,
            );
            self.count_unpacked(&stats);
            if !records.is_empty() {
                // Past the checkpoint: nothing more to skip.
                skip_after = None;
            }
            if !records.is_empty()
                && let Err(why) = self.deliver(records, batch.millis_behind).await
            {
                return match why {
                    Interrupted::Signal(s) => self.stop(s).await,
                    Interrupted::GaveUp => self.stop(Signal::Release).await,
                };
            }
            if self.checkpointer.saw_lease_lost() {
                // The processor swallowed the refusal: stop before anything else is read.
                return self.stop(Signal::LeaseLost).await;
            }
            if let Some(children) = batch.end {
                return self.shard_end(children).await;
            }
        }
    }

    fn count_unpacked(&self, stats: &Unpacked) {
        let c = &self.ctx.counters;
        if stats.out_of_range > 0 {
            c.add(
                &c.out_of_range,
                "kcl_sub_records_out_of_range",
                stats.out_of_range,
            );
        }
        if stats.invalid_aggregates > 0 {
            c.add(
                &c.invalid_aggregates,
                "kcl_invalid_aggregates",
                stats.invalid_aggregates,
            );
        }
    }

    /// One call of `process_records` with `records` (the checkpointer may go up to the last).
    async fn call(
        &mut self,
        records: &[Record],
        millis: Option<i64>,
    ) -> Result<(), ProcessorError> {
        let Some(last) = records.last() else {
            return Ok(());
        };
        self.checkpointer.delivered(last);
        let input = ProcessRecordsInput {
            records: records.to_vec(),
            millis_behind_latest: millis,
        };
        let started = Instant::now();
        let result = self
            .processor
            .process_records(input, &mut self.checkpointer)
            .await;
        match &result {
            Ok(()) => {
                let bytes = records.iter().map(|r| r.data.len() as u64).sum();
                self.ctx
                    .counters
                    .processed(records.len() as u64, bytes, started.elapsed());
                self.done_up_to = Some((last.sequence_number.clone(), last.sub_sequence_number));
            }
            Err(_) => {
                // A later checkpoint() must not pass what failed.
                self.checkpointer.reset_delivered(self.done_up_to.clone());
            }
        }
        result
    }

    /// Delivers `records` under the failure policy: every record is processed, dead-lettered
    /// or (by explicit choice) skipped before this returns `Ok`.
    async fn deliver(
        &mut self,
        records: Vec<Record>,
        millis: Option<i64>,
    ) -> Result<(), Interrupted> {
        let shard = self.key.shard_id().to_owned();
        match self.ctx.on_error.clone() {
            OnError::Retry | OnError::RetryThenRelease { .. } => {
                let max = match self.ctx.on_error {
                    OnError::RetryThenRelease { max_attempts } => max_attempts.max(1),
                    _ => u32::MAX,
                };
                let mut attempt = 0u32;
                loop {
                    match self.call(&records, millis).await {
                        Ok(()) => return Ok(()),
                        Err(_) if self.checkpointer.saw_lease_lost() => {
                            return Err(Interrupted::Signal(Signal::LeaseLost));
                        }
                        Err(e) => {
                            attempt += 1;
                            tracing::warn!(shard = %shard, attempt, error = %e, "process_records failed");
                            if attempt >= max {
                                tracing::error!(shard = %shard, "giving the shard up after {attempt} attempts");
                                return Err(Interrupted::GaveUp);
                            }
                            self.retried();
                            let s = self.pause(self.backoff(attempt)).await;
                            if s != Signal::Run {
                                return Err(Interrupted::Signal(s));
                            }
                        }
                    }
                }
            }
            OnError::Skip => {
                if let Err(e) = self.call(&records, millis).await {
                    if self.checkpointer.saw_lease_lost() {
                        // Not skipped: the next owner delivers the batch again.
                        return Err(Interrupted::Signal(Signal::LeaseLost));
                    }
                    let c = &self.ctx.counters;
                    c.add(&c.skipped, "kcl_records_skipped", records.len() as u64);
                    tracing::warn!(shard = %shard, records = records.len(), error = %e, "batch skipped by the Skip policy");
                    if let Some(last) = records.last() {
                        self.done_up_to =
                            Some((last.sequence_number.clone(), last.sub_sequence_number));
                        self.checkpointer.reset_delivered(self.done_up_to.clone());
                    }
                }
                Ok(())
            }
            OnError::Bisect {
                attempts_per_record,
                dead_letter,
            } => {
                let mut queue: VecDeque<(Vec<Record>, u32)> = VecDeque::from([(records, 0)]);
                while let Some((chunk, attempts)) = queue.pop_front() {
                    let now = self.current();
                    if now != Signal::Run {
                        return Err(Interrupted::Signal(now));
                    }
                    let error = match self.call(&chunk, millis).await {
                        Ok(()) => continue,
                        // Not a poison record: the lease is gone, the next owner redelivers.
                        Err(_) if self.checkpointer.saw_lease_lost() => {
                            return Err(Interrupted::Signal(Signal::LeaseLost));
                        }
                        Err(e) => e,
                    };
                    self.retried();
                    if chunk.len() > 1 {
                        let mut left = chunk;
                        let right = left.split_off(left.len() / 2);
                        queue.push_front((right, 0));
                        queue.push_front((left, 0));
                        continue;
                    }
                    if attempts + 1 < attempts_per_record.max(1) {
                        queue.push_front((chunk, attempts + 1));
                        let s = self.pause(self.backoff(attempts)).await;
                        if s != Signal::Run {
                            return Err(Interrupted::Signal(s));
                        }
                        continue;
                    }
                    // A poison record: to the dead-letter handler, retried until it takes it.
                    let mut dl_attempt = 0;
                    loop {
                        match dead_letter.handle(&shard, chunk.clone(), &error).await {
                            Ok(()) => break,
                            Err(e) => {
                                tracing::warn!(shard = %shard, error = %e, "dead-letter handler failed; retrying");
                                let s = self.pause(self.backoff(dl_attempt)).await;
                                if s != Signal::Run {
                                    return Err(Interrupted::Signal(s));
                                }
                                dl_attempt += 1;
                            }
                        }
                    }
                    let c = &self.ctx.counters;
                    c.add(
                        &c.dead_lettered,
                        "kcl_records_dead_lettered",
                        chunk.len() as u64,
                    );
                    if let Some(last) = chunk.last() {
                        self.done_up_to =
                            Some((last.sequence_number.clone(), last.sub_sequence_number));
                        self.checkpointer.reset_delivered(self.done_up_to.clone());
                    }
                }
                Ok(())
            }
        }
    }

    fn retried(&self) {
        let c = &self.ctx.counters;
        c.add(&c.retries, "kcl_process_retries", 1);
    }

    /// The shard was read to its end: child leases, `shard_ended`, and `SHARD_END` stored.
    async fn shard_end(mut self, children: Vec<crate::discovery::ShardInfo>) -> Ended {
        let shard = self.key.shard_id().to_owned();
        let mut attempt = 0;
        while let Err(e) = self.ctx.coordinator.shard_ended(&self.key, &children).await {
            tracing::warn!(shard = %shard, error = %e, "creating child leases failed; retrying");
            let s = self.pause(self.backoff(attempt)).await;
            if s != Signal::Run {
                return self.stop(s).await;
            }
            attempt += 1;
        }
        self.checkpointer.set_at_shard_end();
        let mut attempt = 0;
        loop {
            match self.processor.shard_ended(&mut self.checkpointer).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(shard = %shard, error = %e, "shard_ended failed; retrying");
                    let s = self.pause(self.backoff(attempt)).await;
                    match s {
                        Signal::Run => {}
                        Signal::LeaseLost => {
                            self.processor.lease_lost().await;
                            return Ended::LeaseLost;
                        }
                        // No SHARD_END written: the next owner reads the end again.
                        other => return self.finish_early(other).await,
                    }
                    attempt += 1;
                }
            }
        }
        if self.checkpointer.last_checkpoint().checkpoint != Checkpoint::ShardEnd {
            tracing::info!(shard = %shard, "the processor did not checkpoint SHARD_END; the scheduler does");
            let mut attempt = 0;
            loop {
                match self
                    .ctx
                    .coordinator
                    .checkpoint(&self.key, ExtendedCheckpoint::new(Checkpoint::ShardEnd))
                    .await
                {
                    Ok(_) => {
                        let c = &self.ctx.counters;
                        c.add(
                            &c.shard_end_checkpoints_by_scheduler,
                            "kcl_shard_end_by_scheduler",
                            1,
                        );
                        c.add(&c.checkpoints, "kcl_checkpoints", 1);
                        break;
                    }
                    Err(crate::LeaseError::LeaseLost { .. }) => {
                        self.processor.lease_lost().await;
                        return Ended::LeaseLost;
                    }
                    Err(e) => {
                        tracing::warn!(shard = %shard, error = %e, "SHARD_END checkpoint failed; retrying");
                        let s = self.pause(self.backoff(attempt)).await;
                        if s != Signal::Run {
                            return self.finish_early(s).await;
                        }
                        attempt += 1;
                    }
                }
            }
        }
        Ended::ShardEnd
    }

    /// Before processing started: nothing to checkpoint.
    async fn finish_early(self, signal: Signal) -> Ended {
        let coordinator = self.ctx.coordinator.clone();
        match signal {
            Signal::LeaseLost | Signal::Run => Ended::LeaseLost,
            Signal::HandOff => match coordinator.hand_off(&self.key).await {
                Ok(true) => Ended::HandedOff,
                _ => Ended::Shutdown,
            },
            Signal::Release => {
                let _ = coordinator.release(&self.key).await;
                Ended::Released
            }
            Signal::Shutdown => Ended::Shutdown,
        }
    }

    /// Stops processing: the processor is told, and may checkpoint unless the lease is lost.
    async fn stop(mut self, signal: Signal) -> Ended {
        let shard = self.key.shard_id().to_owned();
        if signal == Signal::LeaseLost || signal == Signal::Run {
            self.processor.lease_lost().await;
            return Ended::LeaseLost;
        }
        if let Err(e) = self
            .processor
            .shutdown_requested(&mut self.checkpointer)
            .await
        {
            tracing::warn!(shard = %shard, error = %e, "shutdown_requested failed");
        }
        if self.checkpointer.saw_lease_lost() {
            // Its checkpoint was refused: nothing to hand over or release.
            self.processor.lease_lost().await;
            return Ended::LeaseLost;
        }
        match signal {
            Signal::HandOff => match self.ctx.coordinator.hand_off(&self.key).await {
                Ok(true) => Ended::HandedOff,
                Ok(false) => Ended::Shutdown,
                Err(e @ crate::LeaseError::LeaseLost { .. }) => {
                    tracing::warn!(shard = %shard, error = %e, "hand-off failed: the lease is lost");
                    self.processor.lease_lost().await;
                    Ended::LeaseLost
                }
                Err(e) => {
                    // Maybe still ours: the scheduler starts a consumer again if it is.
                    tracing::warn!(shard = %shard, error = %e, "hand-off failed");
                    Ended::LeaseLost
                }
            },
            Signal::Release => {
                if let Err(e) = self.ctx.coordinator.release(&self.key).await {
                    tracing::warn!(shard = %shard, error = %e, "release failed");
                }
                Ended::Released
            }
            _ => Ended::Shutdown,
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
