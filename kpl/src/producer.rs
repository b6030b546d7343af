//! The producer handle and its builder.

use crate::classify::ErrorClass;
use crate::config::ProducerConfig;
use crate::core::{Core, ShutdownReport, later};
use crate::driver::{Cmd, Driver, list_shards};
use crate::error::{BuildError, PutError, SendError};
use crate::handle::RecordHandle;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::outstanding::FlushReport;
use crate::queue::{Pending, Permits};
use crate::record::{RecordOutcome, UserRecord};
use crate::shard_map::ShardMap;
use crate::stream::StreamRef;
use aws_config::retry::RetryConfig;
use aws_sdk_kinesis::Client;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;

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
    /// `CREATING`, each `ListShards` limited to `request_timeout`, all of it to
    /// `stream_ready_timeout`) and starts the producer. Must be called inside a tokio runtime.
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
        let (tx, rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = watch::channel(None);
        let metrics = Arc::new(Metrics::default());
        let inner = Arc::new(Inner {
            tx,
            records: Arc::new(Semaphore::new(cfg.max_outstanding_records)),
            bytes: Arc::new(Semaphore::new(cfg.max_outstanding_bytes)),
            closing: AtomicBool::new(false),
            max_records: cfg.max_outstanding_records,
            metrics: metrics.clone(),
            stream: self.stream.clone(),
            done: done_rx,
        });
        let core = Core::new(
            cfg.clone(),
            self.stream.to_string(),
            metrics,
            map,
            Instant::now(),
        );
        let driver = Driver::new(core, client, self.stream, cfg.request_timeout, done_tx);
        tokio::spawn(driver.run(rx));
        Ok(Producer { inner })
    }
}

async fn load_map(
    client: &Client,
    stream: &StreamRef,
    cfg: &ProducerConfig,
) -> Result<ShardMap, BuildError> {
    let give_up = later(Instant::now(), cfg.stream_ready_timeout);
    let mut delay = Duration::from_millis(50);
    loop {
        let err = match list_shards(client, stream, cfg.request_timeout).await {
            Ok(Some(map)) => return Ok(map),
            Ok(None) => {
                crate::classify::CallError::new("NoOpenShards", "the stream lists no open shard")
            }
            Err(e) => e,
        };
        let class = err.class();
        let list_error = || BuildError::ListShards {
            stream: stream.to_string(),
            code: err.code.clone(),
            message: err.message.clone(),
        };
        match class {
            ErrorClass::NotFound => return Err(BuildError::StreamNotFound(stream.to_string())),
            ErrorClass::Final => return Err(list_error()),
            _ if Instant::now() + delay < give_up => {
                tracing::debug!(target: "kpl", code = %err.code, "listing shards at build: retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            ErrorClass::NotReady => return Err(BuildError::StreamNotReady(stream.to_string())),
            _ => return Err(list_error()),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub tx: mpsc::UnboundedSender<Cmd>,
    pub records: Arc<Semaphore>,
    pub bytes: Arc<Semaphore>,
    closing: AtomicBool,
    max_records: usize,
    pub metrics: Arc<Metrics>,
    stream: StreamRef,
    done: watch::Receiver<Option<ShutdownReport>>,
}

/// An in-process Kinesis producer. Cheap to clone; every clone feeds the same pipeline.
///
/// Dropping every clone without [`Producer::shutdown`] never hangs: records not yet sent
/// resolve with [`PutError::Dropped`] (and a warning is logged); requests in flight finish.
#[derive(Debug, Clone)]
pub struct Producer {
    pub(crate) inner: Arc<Inner>,
}

/// The size a record counts for in the outstanding-bytes limit.
pub(crate) fn record_size(record: &UserRecord) -> u32 {
    // Validated records are at most 1 MiB (+ a 256-character key), far below u32::MAX.
    u32::try_from(record.partition_key.len() + record.data.len()).unwrap_or(u32::MAX)
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

    pub(crate) fn prepare(&self, record: &UserRecord) -> Result<u128, SendError> {
        if self.inner.closing.load(Ordering::Acquire) || self.inner.tx.is_closed() {
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
    ///
    /// Cancellation-safe: if this future is dropped before it returns, the record was not
    /// accepted and holds nothing (no room, no place in a later flush).
    pub async fn send(&self, record: UserRecord) -> Result<RecordHandle, SendError> {
        let hash = self.prepare(&record)?;
        let size = record_size(&record);
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
        self.enqueue(record, hash, r, b)
    }

    /// Sends a record if there is room now, else fails with [`SendError::Full`] (and the
    /// record is not accepted).
    pub fn try_send(&self, record: UserRecord) -> Result<RecordHandle, SendError> {
        let hash = self.prepare(&record)?;
        let size = record_size(&record);
        let r = self
            .inner
            .records
            .clone()
            .try_acquire_owned()
            .map_err(|e| match e {
                tokio::sync::TryAcquireError::Closed => SendError::Closed,
                tokio::sync::TryAcquireError::NoPermits => SendError::Full,
            })?;
        let b = self
            .inner
            .bytes
            .clone()
            .try_acquire_many_owned(size)
            .map_err(|e| match e {
                tokio::sync::TryAcquireError::Closed => SendError::Closed,
                tokio::sync::TryAcquireError::NoPermits => SendError::Full,
            })?;
        self.enqueue(record, hash, r, b)
    }

    /// Hands an accepted record to the pipeline. Never waits, so nothing between taking the
    /// room and enqueuing can be cancelled.
    pub(crate) fn enqueue(
        &self,
        record: UserRecord,
        hash: u128,
        records: OwnedSemaphorePermit,
        bytes: OwnedSemaphorePermit,
    ) -> Result<RecordHandle, SendError> {
        let (reply, rx) = oneshot::channel();
        let pending = Pending::new(
            record.partition_key,
            record.explicit_hash_key,
            hash,
            record.data,
            reply,
            Permits::new(records, bytes),
        );
        self.inner
            .tx
            .send(Cmd::Record(pending))
            .map_err(|_| SendError::Closed)?;
        self.inner.metrics.put();
        Ok(RecordHandle { rx })
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

    /// Sends every buffered record now and waits until every record accepted before this
    /// call (by any clone, any task) has its outcome. Returns how many records that covers
    /// and how many of them failed (both counted since the producer was built). Returns at
    /// once when nothing is outstanding, and also after the producer has stopped.
    pub async fn flush(&self) -> FlushReport {
        let (tx, rx) = oneshot::channel();
        if self.inner.tx.send(Cmd::Flush(tx)).is_ok()
            && let Ok(report) = rx.await
        {
            return report;
        }
        let report = self.final_report().await;
        FlushReport {
            records: report.records,
            failed: report.failed,
        }
    }

    /// Flushes, then stops the producer; returns what happened over its life. Records
    /// without an outcome when `deadline` has passed fail with [`PutError::ShutdownTimeout`]
    /// (requests already in flight finish, within `request_timeout`, and report their real
    /// outcome). Sends after this call fail with [`SendError::Closed`]. Concurrent and later
    /// callers all wait for the same end and get the same report; a shorter deadline of a
    /// later caller moves the end closer.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        self.inner.closing.store(true, Ordering::Release);
        let deadline = later(Instant::now(), deadline);
        let _ = self.inner.tx.send(Cmd::Shutdown(deadline));
        let report = self.final_report().await;
        self.inner.records.close();
        self.inner.bytes.close();
        report
    }

    async fn final_report(&self) -> ShutdownReport {
        let mut done = self.inner.done.clone();
        match done.wait_for(Option::is_some).await {
            Ok(report) => report.unwrap_or_default(),
            // The pipeline is gone without a report (it cannot be: it always sends one).
            Err(_) => {
                let m = self.metrics();
                ShutdownReport {
                    records: m.user_records_put,
                    succeeded: m.user_records_succeeded,
                    failed: m.user_records_failed,
                    expired: m.user_records_expired,
                    ..ShutdownReport::default()
                }
            }
        }
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
}
