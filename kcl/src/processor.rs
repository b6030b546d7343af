//! What users implement: a processor per shard, made by a factory, and optionally a
//! dead-letter handler for records that keep failing.

use crate::checkpointer::Checkpointer;
use crate::lease::ExtendedCheckpoint;
use crate::records::Record;
use async_trait::async_trait;
use std::sync::Arc;

/// The error a processor returns; anything that can be boxed.
pub type ProcessorError = Box<dyn std::error::Error + Send + Sync>;

/// What a processor learns when its shard starts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InitializeInput {
    /// The shard.
    pub shard_id: String,
    /// Where processing resumes: records at or below it are not delivered again.
    pub checkpoint: ExtendedCheckpoint,
    /// A two-phase checkpoint prepared by the previous owner and never committed: its side
    /// effects may or may not have happened.
    pub pending_checkpoint: Option<ExtendedCheckpoint>,
}

/// One batch of user records of one shard.
#[derive(Debug)]
#[non_exhaustive]
pub struct ProcessRecordsInput {
    /// The records, in shard order (aggregates split into their sub-records).
    pub records: Vec<Record>,
    /// How far behind the newest record of the shard this batch is, if Kinesis said.
    pub millis_behind_latest: Option<i64>,
}

/// The processor of one shard. Its methods are called one at a time, in this order:
/// `initialize`, any number of `process_records`, then one of `lease_lost`, `shard_ended`
/// or `shutdown_requested`.
#[async_trait]
pub trait ShardRecordProcessor: Send {
    /// The shard starts (after every parent shard was processed to its end).
    async fn initialize(&mut self, input: InitializeInput) -> Result<(), ProcessorError>;

    /// A batch to process. An error redelivers or routes the batch as the scheduler's
    /// [`OnError`](crate::OnError) policy says; it is never skipped silently.
    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError>;

    /// Another worker holds the lease now: stop, without checkpointing (it would fail).
    async fn lease_lost(&mut self) {}

    /// The shard was read to its end. Checkpoint here (`checkpointer.checkpoint_shard_end()`);
    /// if this returns `Ok` without doing so, the scheduler checkpoints `SHARD_END` itself so
    /// the children can start.
    async fn shard_ended(&mut self, checkpointer: &mut Checkpointer) -> Result<(), ProcessorError>;

    /// The worker shuts down, or hands the lease to another worker: checkpoint what was
    /// processed. The new owner starts right after that checkpoint.
    async fn shutdown_requested(
        &mut self,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError>;
}

/// Makes one processor per shard.
pub trait ShardRecordProcessorFactory: Send + Sync {
    /// A processor for `shard_id`.
    fn create(&self, shard_id: &str) -> Box<dyn ShardRecordProcessor>;
}

impl<F> ShardRecordProcessorFactory for F
where
    F: Fn(&str) -> Box<dyn ShardRecordProcessor> + Send + Sync,
{
    fn create(&self, shard_id: &str) -> Box<dyn ShardRecordProcessor> {
        self(shard_id)
    }
}

/// Receives records that kept failing (with [`OnError::Bisect`](crate::OnError::Bisect)),
/// before the shard moves on past them.
#[async_trait]
pub trait DeadLetterHandler: Send + Sync {
    /// Takes the records and the last error. An error here keeps the records (it is retried)
    /// so nothing is lost.
    async fn handle(
        &self,
        shard_id: &str,
        records: Vec<Record>,
        error: &ProcessorError,
    ) -> Result<(), ProcessorError>;
}

/// What to do when `process_records` fails.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum OnError {
    /// Redeliver the same batch after a jittered backoff, forever (the default).
    #[default]
    Retry,
    /// Redeliver up to this many attempts in all, then stop the shard and release its lease
    /// (another worker retries it later).
    RetryThenRelease {
        /// Attempts in all, the first included.
        max_attempts: u32,
    },
    /// Split a failing batch in halves and redeliver each, down to single records; a single
    /// record that fails `attempts_per_record` times goes to the dead-letter handler, then the
    /// shard moves on.
    Bisect {
        /// Attempts of a single record before it is dead-lettered.
        attempts_per_record: u32,
        /// Where poison records go.
        dead_letter: Arc<dyn DeadLetterHandler>,
    },
    /// Skip a failing batch (each record counted and logged). Only by explicit choice.
    Skip,
}

impl std::fmt::Debug for OnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OnError::Retry => f.write_str("Retry"),
            OnError::RetryThenRelease { max_attempts } => f
                .debug_struct("RetryThenRelease")
                .field("max_attempts", max_attempts)
                .finish(),
            OnError::Bisect {
                attempts_per_record,
                ..
            } => f
                .debug_struct("Bisect")
                .field("attempts_per_record", attempts_per_record)
                .finish_non_exhaustive(),
            OnError::Skip => f.write_str("Skip"),
        }
    }
}
