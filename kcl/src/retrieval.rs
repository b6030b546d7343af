//! Polling retrieval: `GetShardIterator`, then `GetRecords` in a task that stays one batch
//! ahead of the processor (enhanced fan-out, the other mode, is `fanout.rs`). Throttling backs off with jitter, an expired iterator restarts
//! after the last record fetched, transient errors are retried.

use crate::error::is_transient_code;
pub(crate) use crate::fetching::{Batch, FetchConfig, StartAt};
use crate::fetching::{end_children, fetched};
use crate::records::Fetched;
use crate::shards::StreamRef;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_smithy_types::DateTime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

struct Fetcher {
    processing: std::sync::Arc<crate::consumer_metrics::ProcessingCounters>,
    client: Client,
    stream: StreamRef,
    shard_id: String,
    config: FetchConfig,
    failures: u32,
}

/// Starts fetching `shard_id` from `start`; batches arrive on the receiver, at most one
/// ahead of the one being processed.
pub(crate) fn spawn_fetcher(
    client: Client,
    stream: StreamRef,
    shard_id: String,
    start: StartAt,
    config: FetchConfig,
    processing: std::sync::Arc<crate::consumer_metrics::ProcessingCounters>,
) -> (mpsc::Receiver<Batch>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(1);
    if let Some(consumer_arn) = config.consumer_arn.clone() {
        let subscriber = crate::fanout::Subscriber {
            client,
            stream,
            shard_id,
            consumer_arn,
            config,
            processing,
        };
        return (rx, tokio::spawn(subscriber.run(start, tx)));
    }
    let fetcher = Fetcher {
        processing,
        client,
        stream,
        shard_id,
        config,
        failures: 0,
    };
    let task = tokio::spawn(fetcher.run(start, tx));
    (rx, task)
}

enum Failure {
    Throttled,
    Expired,
    Other(String),
}

impl Fetcher {
    async fn backoff(&mut self) {
        self.failures = self.failures.saturating_add(1);
        let exp = self
            .config
            .min_backoff
            .saturating_mul(1u32 << self.failures.min(10))
            .min(self.config.max_backoff);
        let jittered = exp.mul_f64(0.5 + rand::random::<f64>() / 2.0);
        tokio::time::sleep(jittered).await;
    }

    async fn iterator(&mut self, start: &StartAt) -> String {
        loop {
            let mut req = self.client.get_shard_iterator().shard_id(&self.shard_id);
            req = match &self.stream {
                StreamRef::Name(n) => req.stream_name(n),
                StreamRef::Arn(a) => req.stream_arn(a),
            };
            req = match start {
                StartAt::TrimHorizon => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
                StartAt::Latest => req.shard_iterator_type(ShardIteratorType::Latest),
                StartAt::AtTimestamp(t) => req
                    .shard_iterator_type(ShardIteratorType::AtTimestamp)
                    .timestamp(DateTime::from(*t)),
                StartAt::AtSequence(s) => req
                    .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                    .starting_sequence_number(s),
                StartAt::AfterSequence(s) => req
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .starting_sequence_number(s),
            };
            match tokio::time::timeout(self.config.call_timeout, req.send()).await {
                Ok(Ok(out)) => {
                    if let Some(it) = out.shard_iterator {
                        self.failures = 0;
                        return it;
                    }
                }
                Ok(Err(e)) => {
                    self.processing.read_error();
                    tracing::warn!(shard = %self.shard_id, code = ?e.code(), "GetShardIterator failed; retrying");
                }
                Err(_) => {
                    self.processing.read_error();
                }
            }
            self.backoff().await;
        }
    }

    async fn get_records(
        &self,
        iterator: &str,
    ) -> Result<aws_sdk_kinesis::operation::get_records::GetRecordsOutput, Failure> {
        let call = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(self.config.max_records)
            .send();
        match tokio::time::timeout(self.config.call_timeout, call).await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => match e.code() {
                Some("ExpiredIteratorException") => Err(Failure::Expired),
                Some(c)
                    if c.contains("Throughput")
                        || c.contains("Throttl")
                        || c.contains("LimitExceeded") =>
                {
                    Err(Failure::Throttled)
                }
                Some(c) if is_transient_code(c) => Err(Failure::Other(c.to_owned())),
                code => Err(Failure::Other(code.map(str::to_owned).unwrap_or_else(
                    || aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
                ))),
            },
            Err(_) => Err(Failure::Other("GetRecords timed out".into())),
        }
    }

    async fn run(mut self, start: StartAt, tx: mpsc::Sender<Batch>) {
        let mut iterator = self.iterator(&start).await;
        let mut last: Option<String> = None;
        loop {
            // Room for the batch first: at most one batch waits while one is processed.
            let Ok(permit) = tx.reserve().await else {
                return;
            };
            let out = match self.get_records(&iterator).await {
                Ok(out) => {
                    self.failures = 0;
                    out
                }
                Err(Failure::Expired) => {
                    self.processing.expired_iterator();
                    let restart = match &last {
                        Some(seq) => StartAt::AfterSequence(seq.clone()),
                        None => start.clone(),
                    };
                    iterator = self.iterator(&restart).await;
                    continue;
                }
                Err(Failure::Throttled) => {
                    self.processing.read_throttle();
                    self.backoff().await;
                    continue;
                }
                Err(Failure::Other(why)) => {
                    self.processing.read_error();
                    tracing::warn!(shard = %self.shard_id, %why, "GetRecords failed; retrying");
                    self.backoff().await;
                    if why.contains("InvalidArgument") {
                        // A bad iterator: a new one after the last record fetched.
                        let restart = match &last {
                            Some(seq) => StartAt::AfterSequence(seq.clone()),
                            None => start.clone(),
                        };
                        iterator = self.iterator(&restart).await;
                    }
                    continue;
                }
            };
            let millis_behind = out.millis_behind_latest;
            self.processing.behind(&self.shard_id, millis_behind);
            let records: Vec<Fetched> = out.records.into_iter().map(fetched).collect();
            if let Some(r) = records.last() {
                last = Some(r.sequence_number.clone());
            }
            let Some(next) = out.next_shard_iterator else {
                let children = end_children(
                    &self.client,
                    &self.stream,
                    &self.shard_id,
                    out.child_shards,
                    self.config.call_timeout,
                )
                .await;
                self.processing.behind(&self.shard_id, Some(0));
                permit.send(Batch {
                    records,
                    millis_behind,
                    end: Some(children),
                });
                return;
            };
            // Caught up: at the tip, and the batch was not cut short by `max_records`. A
            // batch found at the tip waits too, so a shard is read at most once per idle time.
            let full = records.len() >= usize::try_from(self.config.max_records).unwrap_or(0);
            let caught_up = millis_behind.unwrap_or(0) == 0 && !full;
            if !records.is_empty() {
                permit.send(Batch {
                    records,
                    millis_behind,
                    end: None,
                });
            }
            iterator = next;
            if caught_up {
                tokio::time::sleep(self.config.idle_time).await;
            }
        }
    }
}
