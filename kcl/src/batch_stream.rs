//! The pull-style alternative to a processor: a `futures::Stream` of per-shard batches, each
//! with its shard id, checkpointing, and a way to report failure. Under it runs the same
//! scheduler, with the same ordering (a shard's next batch comes only after this one is
//! done), failure policies and shutdown.

use crate::checkpointer::{CheckpointError, Checkpointer};
use crate::processor::{
    InitializeInput, ProcessRecordsInput, ProcessorError, ShardRecordProcessor,
    ShardRecordProcessorFactory,
};
use crate::records::Record;
use async_trait::async_trait;
use futures::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot};

/// What a [`Batch`] asks of the shard consumer behind it.
enum Request {
    Checkpoint {
        at: Option<(String, u64)>,
        reply: oneshot::Sender<Result<(), CheckpointError>>,
    },
    Done(Result<(), ProcessorError>),
}

/// Why a batch is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchKind {
    /// Records to process.
    Records,
    /// The shard ended: checkpoint `SHARD_END` (or just finish: the scheduler does it).
    ShardEnded,
    /// The worker shuts down or hands the shard over: checkpoint what was processed.
    ShutdownRequested,
}

/// One batch of one shard. Finish it with [`ack`](Self::ack) or [`fail`](Self::fail);
/// dropping it unfinished counts as a failure (the batch comes again, as the policy says).
pub struct Batch {
    kind: BatchKind,
    shard_id: String,
    records: Vec<Record>,
    millis_behind_latest: Option<i64>,
    requests: mpsc::UnboundedSender<Request>,
    finished: bool,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("kind", &self.kind)
            .field("shard_id", &self.shard_id)
            .field("records", &self.records.len())
            .finish_non_exhaustive()
    }
}

impl Batch {
    /// Why the batch is here.
    pub fn kind(&self) -> BatchKind {
        self.kind
    }

    /// The shard.
    pub fn shard_id(&self) -> &str {
        &self.shard_id
    }

    /// The records (empty for `ShardEnded` and `ShutdownRequested`).
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// How far behind the newest record of the shard this batch is, if Kinesis said.
    pub fn millis_behind_latest(&self) -> Option<i64> {
        self.millis_behind_latest
    }

    async fn ask(&self, at: Option<(String, u64)>) -> Result<(), CheckpointError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Checkpoint { at, reply })
            .map_err(|_| CheckpointError::NothingDelivered)?;
        answer
            .await
            .map_err(|_| CheckpointError::NothingDelivered)?
    }

    /// Checkpoints everything delivered so far (at a shard end: `SHARD_END`).
    pub async fn checkpoint(&self) -> Result<(), CheckpointError> {
        self.ask(None).await
    }

    /// Checkpoints up to and including one record.
    pub async fn checkpoint_record(&self, record: &Record) -> Result<(), CheckpointError> {
        self.ask(Some((
            record.sequence_number.clone(),
            record.sub_sequence_number,
        )))
        .await
    }

    /// The batch was processed.
    pub fn ack(mut self) {
        self.finished = true;
        let _ = self.requests.send(Request::Done(Ok(())));
    }

    /// The batch failed: it is redelivered (or bisected, dead-lettered, skipped) as the
    /// scheduler's policy says.
    pub fn fail(mut self, error: impl Into<ProcessorError>) {
        self.finished = true;
        let _ = self.requests.send(Request::Done(Err(error.into())));
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self
                .requests
                .send(Request::Done(Err("batch dropped unfinished".into())));
        }
    }
}

/// The batches of every shard this worker holds, in each shard's order.
pub struct BatchStream {
    rx: mpsc::Receiver<Batch>,
}

impl std::fmt::Debug for BatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchStream").finish_non_exhaustive()
    }
}

impl Stream for BatchStream {
    type Item = Batch;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Batch>> {
        self.rx.poll_recv(cx)
    }
}

/// Makes forwarding processors for a scheduler feeding a [`BatchStream`].
pub(crate) struct Forwarders {
    tx: mpsc::Sender<Batch>,
}

pub(crate) fn channel(capacity: usize) -> (Forwarders, BatchStream) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (Forwarders { tx }, BatchStream { rx })
}

impl ShardRecordProcessorFactory for Forwarders {
    fn create(&self, shard_id: &str) -> Box<dyn ShardRecordProcessor> {
        Box::new(Forwarder {
            shard_id: shard_id.to_owned(),
            tx: self.tx.clone(),
        })
    }
}

struct Forwarder {
    shard_id: String,
    tx: mpsc::Sender<Batch>,
}

impl Forwarder {
    /// Hands a batch to the stream and serves its checkpoint requests until it is finished.
    async fn forward(
        &self,
        kind: BatchKind,
        input: Option<ProcessRecordsInput>,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        let (requests, mut incoming) = mpsc::unbounded_channel();
        let (records, millis) = match input {
            Some(i) => (i.records, i.millis_behind_latest),
            None => (Vec::new(), None),
        };
        let batch = Batch {
            kind,
            shard_id: self.shard_id.clone(),
            records,
            millis_behind_latest: millis,
            requests,
            finished: false,
        };
        self.tx
            .send(batch)
            .await
            .map_err(|_| ProcessorError::from("the batch stream was dropped"))?;
        while let Some(request) = incoming.recv().await {
            match request {
                Request::Checkpoint { at, reply } => {
                    let result = match (at, kind) {
                        (Some((seq, sub)), _) => checkpointer.checkpoint_at(&seq, sub).await,
                        (None, BatchKind::ShardEnded) => checkpointer.checkpoint_shard_end().await,
                        (None, _) => checkpointer.checkpoint().await,
                    };
                    let _ = reply.send(result);
                }
                Request::Done(result) => return result,
            }
        }
        Err("batch dropped unfinished".into())
    }
}

#[async_trait]
impl ShardRecordProcessor for Forwarder {
    async fn initialize(&mut self, _input: InitializeInput) -> Result<(), ProcessorError> {
        Ok(())
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        self.forward(BatchKind::Records, Some(input), checkpointer)
            .await
    }

    async fn shard_ended(&mut self, checkpointer: &mut Checkpointer) -> Result<(), ProcessorError> {
        self.forward(BatchKind::ShardEnded, None, checkpointer)
            .await
    }

    async fn shutdown_requested(
        &mut self,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        self.forward(BatchKind::ShutdownRequested, None, checkpointer)
            .await
    }
}
