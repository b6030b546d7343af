//! A `futures::Sink` over a [`Producer`].

use crate::driver::Cmd;
use crate::error::{PutError, SendError};
use crate::handle::RecordHandle;
use crate::producer::{Producer, record_size};
use crate::record::UserRecord;
use futures::stream::FuturesUnordered;
use futures::{Sink, StreamExt};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::OwnedSemaphorePermit;

/// Failures kept for [`ProducerSink::failures`]; older ones are only counted.
const KEPT_FAILURES: usize = 100;

/// Room for one record of the largest size, taken in `poll_ready`.
const MAX_RESERVE: u32 = (shared_proto::limits::MAX_RECORD_SIZE + 256) as u32;

type Permits = (OwnedSemaphorePermit, OwnedSemaphorePermit);
type Reserve = Pin<Box<dyn Future<Output = Result<Permits, SendError>> + Send>>;

/// A `Sink<UserRecord>` over a [`Producer`], so a `Stream` can be forwarded into it.
///
/// - `poll_ready` reserves room for one record (the outstanding-records limit and 1 MiB of
///   the bytes limit); `start_send` hands the record to the producer at once, in order, and
///   gives back the reserved bytes it does not need. Records sent through one sink keep
///   their order exactly as with [`Producer::send`] from one task.
/// - `poll_flush` asks the producer to send what it buffers now (no wait for
///   `record_max_buffered_time`), waits until every record sent through the sink has an
///   outcome, and fails with the first failure since the previous flush, if any.
///   `poll_close` is `poll_flush`.
/// - Failures are counted ([`ProducerSink::failed`]); the last 100 are kept
///   ([`ProducerSink::failures`]), so a long-running sink does not grow.
pub struct ProducerSink {
    producer: Producer,
    reserve: Option<Reserve>,
    ready: Option<Permits>,
    outcomes: FuturesUnordered<RecordHandle>,
    flush_asked: bool,
    succeeded: u64,
    failed: u64,
    failures: VecDeque<PutError>,
    unreported: Option<PutError>,
}

impl fmt::Debug for ProducerSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProducerSink")
            .field("succeeded", &self.succeeded)
            .field("failed", &self.failed)
            .field("in_flight", &self.outcomes.len())
            .finish()
    }
}

/// Errors of a [`ProducerSink`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// A record was not accepted.
    #[error(transparent)]
    Send(#[from] SendError),
    /// A record was accepted but failed.
    #[error(transparent)]
    Put(#[from] PutError),
}

impl Producer {
    /// A `futures::Sink` of records feeding this producer; see [`ProducerSink`].
    pub fn sink(&self) -> ProducerSink {
        ProducerSink::new(self.clone())
    }
}

impl ProducerSink {
    fn new(producer: Producer) -> Self {
        ProducerSink {
            producer,
            reserve: None,
            ready: None,
            outcomes: FuturesUnordered::new(),
            flush_asked: false,
            succeeded: 0,
            failed: 0,
            failures: VecDeque::new(),
            unreported: None,
        }
    }

    /// Records stored through this sink so far.
    pub fn succeeded(&self) -> u64 {
        self.succeeded
    }

    /// Records sent through this sink that failed, so far.
    pub fn failed(&self) -> u64 {
        self.failed
    }

    /// The most recent failures (at most 100).
    pub fn failures(&self) -> impl Iterator<Item = &PutError> {
        self.failures.iter()
    }

    /// Makes everything buffered due now (once per batch of sends); the flush's answer is
    /// not needed, the outcomes are.
    fn ask_flush(&mut self) {
        if !self.outcomes.is_empty() && !self.flush_asked {
            let (tx, _rx) = tokio::sync::oneshot::channel();
            let _ = self.producer.inner.tx.send(Cmd::Flush(tx));
            self.flush_asked = true;
        }
    }

    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match self.outcomes.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(_))) => self.succeeded += 1,
                Poll::Ready(Some(Err(e))) => {
                    self.failed += 1;
                    if self.unreported.is_none() {
                        self.unreported = Some(e.clone());
                    }
                    if self.failures.len() == KEPT_FAILURES {
                        self.failures.pop_front();
                    }
                    self.failures.push_back(e);
                }
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Sink<UserRecord> for ProducerSink {
    type Error = SinkError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let _ = self.drain(cx);
        if self.ready.is_some() {
            return Poll::Ready(Ok(()));
        }
        if self.reserve.is_none() {
            let records = self.producer.inner.records.clone();
            let bytes = self.producer.inner.bytes.clone();
            self.reserve = Some(Box::pin(async move {
                let r = records
                    .acquire_owned()
                    .await
                    .map_err(|_| SendError::Closed)?;
                let b = bytes
                    .acquire_many_owned(MAX_RESERVE)
                    .await
                    .map_err(|_| SendError::Closed)?;
                Ok((r, b))
            }));
        }
        let Some(reserve) = self.reserve.as_mut() else {
            return Poll::Pending;
        };
        match reserve.as_mut().poll(cx) {
            Poll::Pending => {
                // Waiting for room that records of this sink may hold: send them now.
                self.ask_flush();
                Poll::Pending
            }
            Poll::Ready(result) => {
                self.reserve = None;
                let permits = result?;
                self.ready = Some(permits);
                Poll::Ready(Ok(()))
            }
        }
    }

    fn start_send(mut self: Pin<&mut Self>, item: UserRecord) -> Result<(), Self::Error> {
        let hash = self.producer.prepare(&item)?;
        let Some((r, mut b)) = self.ready.take() else {
            return Err(SendError::Full.into());
        };
        // Give back what this record does not need of the reserved maximum.
        let size = record_size(&item);
        drop(b.split(MAX_RESERVE.saturating_sub(size) as usize));
        let handle = self.producer.enqueue(item, hash, r, b)?;
        self.outcomes.push(handle);
        self.flush_asked = false;
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.ask_flush();
        if self.drain(cx).is_pending() {
            return Poll::Pending;
        }
        self.flush_asked = false;
        match self.unreported.take() {
            Some(e) => Poll::Ready(Err(e.into())),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_flush(cx)
    }
}
