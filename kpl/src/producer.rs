//! The producer handle, its builder, and its `Sink`.

use crate::config::ProducerConfig;
use crate::engine::{Cmd, Engine, Pending};
use crate::error::{BuildError, PutError, SendError};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::record::{RecordHandle, RecordOutcome, UserRecord};
use crate::shard_map::{ListError, ShardMap};
use aws_config::retry::RetryConfig;
use aws_sdk_kinesis::Client;
use futures::stream::FuturesUnordered;
use futures::{Sink, StreamExt};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

/// A stream, by name or by ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamRef {
    /// The stream's name.
    Name(String),
    /// The stream's ARN.
    Arn(String),
}

impl StreamRef {
    /// A stream reference from text: an ARN if it starts with `arn:`, else a name.
    pub fn parse(text: &str) -> Self {
        if text.starts_with("arn:") {
            StreamRef::Arn(text.to_owned())
        } else {
            StreamRef::Name(text.to_owned())
        }
    }

    pub(crate) fn apply_list(
        &self,
        b: aws_sdk_kinesis::operation::list_shards::builders::ListShardsFluentBuilder,
    ) -> aws_sdk_kinesis::operation::list_shards::builders::ListShardsFluentBuilder {
        match self {
            StreamRef::Name(n) => b.stream_name(n),
            StreamRef::Arn(a) => b.stream_arn(a),
        }
    }

    pub(crate) fn apply_put(
        &self,
        b: aws_sdk_kinesis::operation::put_records::builders::PutRecordsFluentBuilder,
    ) -> aws_sdk_kinesis::operation::put_records::builders::PutRecordsFluentBuilder {
        match self {
            StreamRef::Name(n) => b.stream_name(n),
            StreamRef::Arn(a) => b.stream_arn(a),
        }
    }
}

impl fmt::Display for StreamRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamRef::Name(n) | StreamRef::Arn(n) => f.write_str(n),
        }
    }
}

/// Builds a [`Producer`].
#[derive(Debug)]
pub struct ProducerBuilder {
    client: Client,
    stream: StreamRef,
    config: ProducerConfig,
}

impl ProducerBuilder {
    /// Replaces the configuration (default: [`ProducerConfig::default`]).
    pub fn config(mut self, config: ProducerConfig) -> Self {
        self.config = config;
        self
    }

    /// Validates the configuration, loads the shard map (waiting while the stream is
    /// `CREATING`) and starts the producer. Must be called inside a tokio runtime.
    pub async fn build(self) -> Result<Producer, BuildError> {
        self.config.validate()?;
        // The producer owns the retry policy: the SDK must not retry on its own.
        let client = Client::from_conf(
            self.client
                .config()
                .to_builder()
                .retry_config(RetryConfig::disabled())
                .build(),
        );
        let map = load_map(&client, &self.stream, &self.config).await?;
        let cfg = self.config;
        let (tx, rx) = mpsc::channel(4096);
        let metrics = Arc::new(Metrics::default());
        let inner = Arc::new(Inner {
            tx,
            records: Arc::new(Semaphore::new(cfg.max_outstanding_records)),
            bytes: Arc::new(Semaphore::new(cfg.max_outstanding_bytes)),
            next_id: AtomicU64::new(1),
            record_ttl: cfg.record_ttl,
            max_records: cfg.max_outstanding_records,
            metrics: metrics.clone(),
            stream: self.stream.clone(),
        });
        let engine = Engine::new(cfg, client, self.stream, metrics, map);
        tokio::spawn(engine.run(rx));
        Ok(Producer { inner })
    }
}

async fn load_map(
    client: &Client,
    stream: &StreamRef,
    cfg: &ProducerConfig,
) -> Result<ShardMap, BuildError> {
    let give_up = Instant::now() + cfg.stream_ready_timeout;
    let mut delay = Duration::from_millis(50);
    loop {
        match ShardMap::load(client, stream).await {
            Ok(map) => return Ok(map),
            Err(ListError::NotFound) => return Err(BuildError::StreamNotFound(stream.to_string())),
            Err(ListError::Fatal(code, message)) => {
                return Err(BuildError::ListShards {
                    stream: stream.to_string(),
                    code,
                    message,
                });
            }
            Err(ListError::NotReady) | Err(ListError::Transient(..))
                if Instant::now() + delay < give_up =>
            {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(ListError::NotReady) => return Err(BuildError::StreamNotReady(stream.to_string())),
            Err(ListError::Transient(code, message)) => {
                return Err(BuildError::ListShards {
                    stream: stream.to_string(),
                    code,
                    message,
                });
            }
        }
    }
}

#[derive(Debug)]
struct Inner {
    tx: mpsc::Sender<Cmd>,
    records: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    next_id: AtomicU64,
    record_ttl: Duration,
    max_records: usize,
    metrics: Arc<Metrics>,
    stream: StreamRef,
}

/// An in-process Kinesis producer. Cheap to clone; every clone feeds the same pipeline.
///
/// Dropping every clone without [`Producer::shutdown`] never hangs: records not yet sent
/// resolve with [`PutError::Dropped`] (and a warning is logged); requests in flight finish.
#[derive(Debug, Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

impl Producer {
    /// A builder for a producer writing to `stream` (a name, or an ARN starting with `arn:`)
    /// through `client`.
    pub fn builder(client: Client, stream: impl AsRef<str>) -> ProducerBuilder {
        ProducerBuilder {
            client,
            stream: StreamRef::parse(stream.as_ref()),
            config: ProducerConfig::default(),
        }
    }

    /// The stream this producer writes to.
    pub fn stream(&self) -> &StreamRef {
        &self.inner.stream
    }

    fn prepare(&self, record: &UserRecord) -> Result<u128, SendError> {
        if self.inner.tx.is_closed() {
            return Err(SendError::Closed);
        }
        Ok(shared_proto::validate_record(
            &record.partition_key,
            record.explicit_hash_key.as_deref(),
            record.data.len(),
        )?)
    }

    /// Sends a record, waiting only while the outstanding records or bytes are at their
    /// limit (backpressure). The handle resolves to the record's outcome.
    pub async fn send(&self, record: UserRecord) -> Result<RecordHandle, SendError> {
        let hash = self.prepare(&record)?;
        let size = (record.partition_key.len() + record.data.len()) as u32;
        let r = self
            .inner
            .records
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| SendError::Closed)?;
        let b = self
            .inner
            .bytes
            .clone()
            .acquire_many_owned(size)
            .await
            .map_err(|_| SendError::Closed)?;
        self.submit(record, hash, (r, b)).await
    }

    /// Sends a record if there is room now, else fails with [`SendError::Full`].
    pub fn try_send(&self, record: UserRecord) -> Result<RecordHandle, SendError> {
        let hash = self.prepare(&record)?;
        let size = (record.partition_key.len() + record.data.len()) as u32;
        let r = self
            .inner
            .records
            .clone()
            .try_acquire_owned()
            .map_err(|_| SendError::Full)?;
        let b = self
            .inner
            .bytes
            .clone()
            .try_acquire_many_owned(size)
            .map_err(|_| SendError::Full)?;
        let (pending, rx) = self.pending(record, hash, (r, b));
        match self.inner.tx.try_send(Cmd::Record(pending)) {
            Ok(()) => {
                self.inner.metrics.put();
                Ok(RecordHandle { rx })
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(SendError::Full),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::Closed),
        }
    }

    /// Sends a record and waits for its outcome.
    pub async fn send_and_wait(&self, record: UserRecord) -> Result<RecordOutcome, PutError> {
        match self.send(record).await {
            Ok(handle) => handle.await,
            Err(SendError::Invalid(e)) => Err(PutError::Rejected {
                code: "InvalidRecord".into(),
                message: e.to_string(),
                attempts: Vec::new(),
            }),
            Err(_) => Err(PutError::Dropped),
        }
    }

    fn pending(
        &self,
        record: UserRecord,
        hash: u128,
        permits: (
            tokio::sync::OwnedSemaphorePermit,
            tokio::sync::OwnedSemaphorePermit,
        ),
    ) -> (Pending, oneshot::Receiver<Result<RecordOutcome, PutError>>) {
        let now = Instant::now();
        let (reply, rx) = oneshot::channel();
        let pending = Pending {
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
            pk: record.partition_key,
            ehk: record.explicit_hash_key,
            hash,
            data: record.data,
            reply,
            enqueued: now,
            deadline: now + self.inner.record_ttl,
            last_event: now,
            attempt_started: now,
            attempts: Vec::new(),
            permits,
        };
        (pending, rx)
    }

    async fn submit(
        &self,
        record: UserRecord,
        hash: u128,
        permits: (
            tokio::sync::OwnedSemaphorePermit,
            tokio::sync::OwnedSemaphorePermit,
        ),
    ) -> Result<RecordHandle, SendError> {
        let (pending, rx) = self.pending(record, hash, permits);
        self.inner
            .tx
            .send(Cmd::Record(pending))
            .await
            .map_err(|_| SendError::Closed)?;
        self.inner.metrics.put();
        Ok(RecordHandle { rx })
    }

    /// Waits until every record sent before this call has an outcome.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.tx.send(Cmd::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Flushes, then stops the producer. Records without an outcome at `deadline` fail with
    /// [`PutError::ShutdownTimeout`] (requests already in flight finish and report their real
    /// outcome). Later sends fail with [`SendError::Closed`].
    pub async fn shutdown(&self, deadline: Duration) {
        let (tx, rx) = oneshot::channel();
        let deadline = Instant::now() + deadline;
        if self
            .inner
            .tx
            .send(Cmd::Shutdown { deadline, done: tx })
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
        self.inner.records.close();
        self.inner.bytes.close();
    }

    /// A snapshot of the producer's metrics (also published through the `metrics` crate).
    pub fn metrics(&self) -> MetricsSnapshot {
        let outstanding = self.inner.max_records
            - self
                .inner
                .records
                .available_permits()
                .min(self.inner.max_records);
        self.inner.metrics.snapshot(outstanding as u64)
    }

    /// A `futures::Sink` of records feeding this producer; see [`ProducerSink`].
    pub fn sink(&self) -> ProducerSink {
        ProducerSink {
            producer: self.clone(),
            reserve: None,
            outcomes: FuturesUnordered::new(),
            succeeded: 0,
            failures: Vec::new(),
        }
    }
}

type Reserve = Pin<
    Box<
        dyn Future<
                Output = Result<
                    (
                        tokio::sync::OwnedSemaphorePermit,
                        tokio::sync::OwnedSemaphorePermit,
                    ),
                    SendError,
                >,
            > + Send,
    >,
>;

/// A `Sink<UserRecord>` over a [`Producer`], so a `Stream` can be forwarded into it.
///
/// `poll_ready` waits for room (one record of up to 1 MiB); `poll_flush` and `poll_close`
/// wait until every record sent through the sink has an outcome, and fail with the first
/// failure, if any (all failures stay available through [`ProducerSink::failures`]).
pub struct ProducerSink {
    producer: Producer,
    reserve: Option<Reserve>,
    outcomes: FuturesUnordered<RecordHandle>,
    succeeded: u64,
    failures: Vec<PutError>,
}

impl fmt::Debug for ProducerSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProducerSink")
            .field("succeeded", &self.succeeded)
            .field("failures", &self.failures.len())
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

impl ProducerSink {
    /// Records stored through this sink so far.
    pub fn succeeded(&self) -> u64 {
        self.succeeded
    }

    /// Failed outcomes seen so far.
    pub fn failures(&self) -> &[PutError] {
        &self.failures
    }

    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match self.outcomes.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(_))) => self.succeeded += 1,
                Poll::Ready(Some(Err(e))) => self.failures.push(e),
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

const MAX_RESERVE: u32 = (shared_proto::limits::MAX_RECORD_SIZE + 256) as u32;

impl Sink<UserRecord> for ProducerSink {
    type Error = SinkError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let _ = self.drain(cx);
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
        match self.reserve.as_mut().map(|f| f.as_mut().poll(cx)) {
            Some(Poll::Ready(Err(e))) => {
                self.reserve = None;
                Poll::Ready(Err(e.into()))
            }
            Some(Poll::Ready(Ok(permits))) => {
                self.reserve = Some(Box::pin(std::future::ready(Ok(permits))));
                Poll::Ready(Ok(()))
            }
            _ => Poll::Pending,
        }
    }

    fn start_send(mut self: Pin<&mut Self>, item: UserRecord) -> Result<(), Self::Error> {
        let hash = self.producer.prepare(&item)?;
        let Some(mut reserve) = self.reserve.take() else {
            return Err(SendError::Full.into());
        };
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let Poll::Ready(Ok((r, mut b))) = reserve.as_mut().poll(&mut cx) else {
            return Err(SendError::Full.into());
        };
        // Give back what this record does not need of the reserved maximum.
        let size = (item.partition_key.len() + item.data.len()) as u32;
        let spare = b.split(MAX_RESERVE.saturating_sub(size) as usize);
        drop(spare);
        let (pending, rx) = self.producer.pending(item, hash, (r, b));
        match self.producer.inner.tx.try_send(Cmd::Record(pending)) {
            Ok(()) => {
                self.producer.inner.metrics.put();
                self.outcomes.push(RecordHandle { rx });
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(Cmd::Record(pending))) => {
                // The command channel is momentarily full: hand the record over from a task.
                let tx = self.producer.inner.tx.clone();
                let metrics = self.producer.inner.metrics.clone();
                tokio::spawn(async move {
                    if tx.send(Cmd::Record(pending)).await.is_ok() {
                        metrics.put();
                    }
                });
                self.outcomes.push(RecordHandle { rx });
                Ok(())
            }
            Err(_) => Err(SendError::Closed.into()),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.drain(cx).is_pending() {
            return Poll::Pending;
        }
        match self.failures.first() {
            Some(e) => Poll::Ready(Err(e.clone().into())),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_flush(cx)
    }
}
