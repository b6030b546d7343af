//! User records, their outcomes, and the handle that resolves to an outcome.

use crate::error::PutError;
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::oneshot;

/// A record as the application sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Partition key: 1 to 256 characters; decides the shard unless an explicit hash key is set.
    pub partition_key: String,
    /// Optional explicit hash key: a decimal in `0 ..= 2^128 - 1`.
    pub explicit_hash_key: Option<String>,
    /// The payload; data plus partition key must not exceed 1 MiB.
    pub data: Bytes,
}

impl UserRecord {
    /// A record with this partition key and data.
    pub fn new(partition_key: impl Into<String>, data: impl Into<Bytes>) -> Self {
        UserRecord {
            partition_key: partition_key.into(),
            explicit_hash_key: None,
            data: data.into(),
        }
    }

    /// The same record routed by an explicit hash key.
    pub fn with_explicit_hash_key(mut self, hash_key: impl Into<String>) -> Self {
        self.explicit_hash_key = Some(hash_key.into());
        self
    }
}

/// One try to put a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// How long the record waited before this attempt (buffering, backoff, rate limit).
    pub delay: Duration,
    /// How long the request took.
    pub duration: Duration,
    /// The error code, if the attempt failed (`ProvisionedThroughputExceededException`,
    /// `InternalFailure`, `Timeout`, `Dispatch`, …).
    pub error_code: Option<String>,
    /// The error message, if the attempt failed.
    pub error_message: Option<String>,
}

impl Attempt {
    /// Whether the attempt succeeded.
    pub fn succeeded(&self) -> bool {
        self.error_code.is_none()
    }
}

/// Where a record was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOutcome {
    /// The shard that stored it (shared by every user record of an aggregate).
    pub shard_id: Arc<str>,
    /// The sequence number of the Kinesis record that holds it (shared likewise).
    pub sequence_number: Arc<str>,
    /// Its position inside the aggregate (0 when sent on its own).
    pub sub_sequence_number: u64,
    /// Whether it was sent inside an aggregate of several user records.
    pub aggregated: bool,
    /// Every attempt, the last one successful.
    pub attempts: Vec<Attempt>,
}

/// Resolves to the outcome of a sent record.
#[derive(Debug)]
pub struct RecordHandle {
    pub(crate) rx: oneshot::Receiver<Result<RecordOutcome, PutError>>,
}

impl RecordHandle {
    /// The outcome if it is already there, without waiting. Unlike polling the handle (or
    /// `now_or_never`), this is not subject to tokio's cooperative budget, so it is exact
    /// right after [`Producer::flush`](crate::Producer::flush) returns. `None` if the outcome
    /// is not there yet, or was already taken.
    pub fn try_outcome(&mut self) -> Option<Result<RecordOutcome, PutError>> {
        match self.rx.try_recv() {
            Ok(outcome) => Some(outcome),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(PutError::Dropped)),
        }
    }
}

impl Future for RecordHandle {
    type Output = Result<RecordOutcome, PutError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Ok(outcome)) => Poll::Ready(outcome),
            Poll::Ready(Err(_)) => Poll::Ready(Err(PutError::Dropped)),
            Poll::Pending => Poll::Pending,
        }
    }
}
