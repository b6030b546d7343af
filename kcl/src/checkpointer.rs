//! Checkpointing from a processor: validated against what was delivered, fenced on the
//! lease.

use crate::consumer_metrics::ProcessingCounters;
use crate::coordinator::Coordinator;
use crate::error::LeaseError;
use crate::lease::{Checkpoint, ExtendedCheckpoint, LeaseKey};
use crate::records::{Record, compare_position};
use std::cmp::Ordering;
use std::sync::Arc;

/// Why a checkpoint was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Nothing was delivered yet, so there is nothing to checkpoint.
    #[error("nothing was delivered yet")]
    NothingDelivered,
    /// Not a decimal sequence number.
    #[error("invalid sequence number {0:?}: decimal digits only")]
    InvalidSequence(String),
    /// Below the last checkpoint.
    #[error("checkpoint {sequence}/{sub} is below the last checkpoint {last}")]
    BelowLast {
        /// The sequence number asked for.
        sequence: String,
        /// Its sub-sequence number.
        sub: u64,
        /// The last checkpoint.
        last: String,
    },
    /// Above the largest record delivered.
    #[error("checkpoint {sequence}/{sub} is above the largest record delivered")]
    AboveDelivered {
        /// The sequence number asked for.
        sequence: String,
        /// Its sub-sequence number.
        sub: u64,
    },
    /// `SHARD_END` before the shard ended.
    #[error("SHARD_END may only be checkpointed once the shard has ended")]
    NotAtShardEnd,
    /// A prepared checkpoint committed after `SHARD_END` was stored.
    #[error("the shard's checkpoint is SHARD_END already")]
    AfterShardEnd,
    /// A prepared checkpoint committed through another shard's checkpointer.
    #[error(
        "checkpoint prepared for {prepared} committed through the checkpointer of {checkpointer}"
    )]
    OtherShard {
        /// The lease it was prepared on.
        prepared: String,
        /// The lease of the checkpointer it was given.
        checkpointer: String,
    },
    /// The lease is held by another worker now; nothing was written.
    #[error("lease {key} is lost")]
    LeaseLost {
        /// The lease.
        key: LeaseKey,
    },
    /// The lease table failed (after retries).
    #[error(transparent)]
    Lease(LeaseError),
}

impl From<LeaseError> for CheckpointError {
    fn from(e: LeaseError) -> Self {
        match e {
            LeaseError::LeaseLost { key } => CheckpointError::LeaseLost { key },
            other => CheckpointError::Lease(other),
        }
    }
}

/// Checkpoints one shard. Handed to the processor's callbacks.
#[derive(Debug)]
pub struct Checkpointer {
    coordinator: Coordinator,
    counters: Arc<ProcessingCounters>,
    key: LeaseKey,
    last: ExtendedCheckpoint,
    /// The largest (sequence, sub-sequence) delivered to the processor so far.
    largest: Option<(String, u64)>,
    at_shard_end: bool,
    /// A write was refused because the lease is no longer ours.
    lost: bool,
}

/// A prepared (two-phase) checkpoint: stored as `pendingCheckpoint`; [`commit`](Self::commit)
/// moves it to the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a prepared checkpoint does nothing until committed"]
pub struct PreparedCheckpoint {
    key: LeaseKey,
    position: ExtendedCheckpoint,
}

impl PreparedCheckpoint {
    /// The prepared position.
    pub fn position(&self) -> &ExtendedCheckpoint {
        &self.position
    }

    /// Stores the prepared position as the checkpoint. Refused with
    /// [`CheckpointError::BelowLast`] if a later checkpoint was stored since the prepare.
    pub async fn commit(self, checkpointer: &mut Checkpointer) -> Result<(), CheckpointError> {
        if self.key != checkpointer.key {
            return Err(CheckpointError::OtherShard {
                prepared: self.key.to_string(),
                checkpointer: checkpointer.key.to_string(),
            });
        }
        if checkpointer.last.checkpoint == Checkpoint::ShardEnd {
            return Err(CheckpointError::AfterShardEnd);
        }
        if let (Checkpoint::Sequence(seq), Checkpoint::Sequence(last)) =
            (&self.position.checkpoint, &checkpointer.last.checkpoint)
            && compare_position(
                (seq, self.position.sub_sequence),
                (last, checkpointer.last.sub_sequence),
            ) == Ordering::Less
        {
            return Err(CheckpointError::BelowLast {
                sequence: seq.clone(),
                sub: self.position.sub_sequence,
                last: format!("{last}/{}", checkpointer.last.sub_sequence),
            });
        }
        checkpointer.write(self.position).await
    }
}

impl Checkpointer {
    pub(crate) fn new(
        coordinator: Coordinator,
        key: LeaseKey,
        last: ExtendedCheckpoint,
        counters: Arc<ProcessingCounters>,
    ) -> Self {
        Checkpointer {
            coordinator,
            counters,
            key,
            last,
            largest: None,
            at_shard_end: false,
            lost: false,
        }
    }

    /// The shard.
    pub fn shard_id(&self) -> &str {
        self.key.shard_id()
    }

    /// The last checkpoint stored.
    pub fn last_checkpoint(&self) -> &ExtendedCheckpoint {
        &self.last
    }

    pub(crate) fn delivered(&mut self, last: &Record) {
        self.largest = Some((last.sequence_number.clone(), last.sub_sequence_number));
    }

    /// After a failed batch: checkpoints may go no further than what was done.
    pub(crate) fn reset_delivered(&mut self, done: Option<(String, u64)>) {
        self.largest = done;
    }

    pub(crate) fn set_at_shard_end(&mut self) {
        self.at_shard_end = true;
    }

    pub(crate) fn largest_delivered(&self) -> Option<(&str, u64)> {
        self.largest.as_ref().map(|(s, n)| (s.as_str(), *n))
    }

    /// Checkpoints everything delivered so far.
    pub async fn checkpoint(&mut self) -> Result<(), CheckpointError> {
        let (seq, sub) = self
            .largest
            .clone()
            .ok_or(CheckpointError::NothingDelivered)?;
        self.checkpoint_at(&seq, sub).await
    }

    /// Checkpoints up to and including one record.
    pub async fn checkpoint_record(&mut self, record: &Record) -> Result<(), CheckpointError> {
        self.checkpoint_at(&record.sequence_number, record.sub_sequence_number)
            .await
    }

    /// Checkpoints up to and including `(sequence, sub_sequence)`, which must lie between the
    /// last checkpoint and the largest record delivered.
    pub async fn checkpoint_at(
        &mut self,
        sequence: &str,
        sub_sequence: u64,
    ) -> Result<(), CheckpointError> {
        let position = self.validate(sequence, sub_sequence)?;
        self.write(position).await
    }

    /// Checkpoints `SHARD_END`: allowed once the shard has ended (in `shard_ended`).
    pub async fn checkpoint_shard_end(&mut self) -> Result<(), CheckpointError> {
        if !self.at_shard_end {
            return Err(CheckpointError::NotAtShardEnd);
        }
        self.write(ExtendedCheckpoint::new(Checkpoint::ShardEnd))
            .await
    }

    /// Prepares a two-phase checkpoint at `(sequence, sub_sequence)` (validated like
    /// [`checkpoint_at`](Self::checkpoint_at)); a worker that takes the lease over before the
    /// commit is told in `initialize`.
    pub async fn prepare_checkpoint(
        &mut self,
        sequence: &str,
        sub_sequence: u64,
    ) -> Result<PreparedCheckpoint, CheckpointError> {
        let position = self.validate(sequence, sub_sequence)?;
        let stored = self
            .coordinator
            .prepare_checkpoint(&self.key, position.clone())
            .await;
        self.note(stored)?;
        Ok(PreparedCheckpoint {
            key: self.key.clone(),
            position,
        })
    }

    fn validate(&self, sequence: &str, sub: u64) -> Result<ExtendedCheckpoint, CheckpointError> {
        if sequence.is_empty() || !sequence.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CheckpointError::InvalidSequence(sequence.to_owned()));
        }
        if let Checkpoint::Sequence(last) = &self.last.checkpoint
            && compare_position((sequence, sub), (last, self.last.sub_sequence)) == Ordering::Less
        {
            return Err(CheckpointError::BelowLast {
                sequence: sequence.to_owned(),
                sub,
                last: format!("{last}/{}", self.last.sub_sequence),
            });
        }
        match self.largest_delivered() {
            Some(top) if compare_position((sequence, sub), top) != Ordering::Greater => {}
            _ => {
                return Err(CheckpointError::AboveDelivered {
                    sequence: sequence.to_owned(),
                    sub,
                });
            }
        }
        Ok(ExtendedCheckpoint {
            checkpoint: Checkpoint::Sequence(sequence.to_owned()),
            sub_sequence: sub,
        })
    }

    /// Remembers a refusal for a lost lease (the shard consumer stops at once).
    fn note<T>(&mut self, result: Result<T, LeaseError>) -> Result<T, CheckpointError> {
        if let Err(LeaseError::LeaseLost { .. }) = &result {
            self.lost = true;
        }
        Ok(result?)
    }

    /// Whether a checkpoint was refused because the lease is lost.
    pub(crate) fn saw_lease_lost(&self) -> bool {
        self.lost
    }

    async fn write(&mut self, position: ExtendedCheckpoint) -> Result<(), CheckpointError> {
        let stored = self
            .coordinator
            .checkpoint(&self.key, position.clone())
            .await;
        self.note(stored)?;
        self.counters
            .add(&self.counters.checkpoints, "kcl_checkpoints", 1);
        self.last = position;
        Ok(())
    }
}
