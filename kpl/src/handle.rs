//! The handle that resolves to a sent record's outcome.

use crate::error::PutError;
use crate::record::RecordOutcome;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::oneshot;

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
