//! Enhanced fan-out retrieval: the registered stream consumer, and a task per shard that reads
//! `SubscribeToShard` event streams, one after the other. Each stream ends after at most 5
//! minutes (or breaks); the next one starts after the last continuation sequence number, so
//! nothing is lost or delivered twice. Like polling, the task stays at most one batch ahead
//! of the processor, and a closed shard's end comes with its children.

use crate::error::is_transient_code;
use crate::fetching::{Batch, FetchConfig, StartAt, end_children, fetched};
use crate::records::Fetched;
use crate::shards::StreamRef;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::types::{
    ConsumerStatus, ShardIteratorType, StartingPosition, SubscribeToShardEventStream,
};
use aws_smithy_types::DateTime;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How a scheduler reads its shards.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RetrievalMode {
    /// `GetRecords` polling (the default): at most 5 reads a second per shard, shared with
    /// every other application reading the stream.
    #[default]
    Polling,
    /// Enhanced fan-out: records pushed over `SubscribeToShard` to a registered consumer with
    /// its own 2 MiB/s per shard. The consumer is registered if it is missing.
    FanOut {
        /// The registered consumer's name (one per application, usually).
        consumer_name: String,
    },
}

/// Why the fan-out consumer could not be made ready.
fn failed(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

fn sdk_error<E, R>(e: &aws_sdk_kinesis::error::SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    e.code()
        .map(str::to_owned)
        .unwrap_or_else(|| aws_smithy_types::error::display::DisplayErrorContext(e).to_string())
}

/// The ARN of consumer `name` of `stream`, registered now if it is missing, once `ACTIVE`
/// (at most `ready_timeout`).
pub(crate) async fn ensure_consumer(
    client: &Client,
    stream: &StreamRef,
    name: &str,
    ready_timeout: Duration,
    call_timeout: Duration,
) -> Result<String, String> {
    let deadline = Instant::now() + ready_timeout;
    let mut attempt = 0u32;
    loop {
        match ready_consumer(client, stream, name, call_timeout).await {
            Ok(Some(arn)) => return Ok(arn),
            Ok(None) => {}
            Err(Fatal(why)) => return Err(why),
            Err(Transient(why)) => {
                tracing::warn!(consumer = name, %why, "stream consumer not ready; retrying");
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "consumer {name} not ACTIVE after {ready_timeout:?}"
            ));
        }
        attempt = attempt.saturating_add(1);
        let wait = Duration::from_millis(50)
            .saturating_mul(1u32 << attempt.min(5))
            .mul_f64(0.5 + rand::random::<f64>() / 2.0);
        tokio::time::sleep(wait.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

enum Problem {
    /// Retried until the deadline (throttling, timeouts, 5xx).
    Transient(String),
    /// Given up at once (access denied, no such stream, bad name).
    Fatal(String),
}
use Problem::{Fatal, Transient};

fn problem<E, R>(what: &str, e: &aws_sdk_kinesis::error::SdkError<E, R>) -> Problem
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let why = failed(what, sdk_error(e));
    match e.code() {
        Some(c) if !is_transient_code(c) && !c.contains("LimitExceeded") => Fatal(why),
        _ => Transient(why),
    }
}

async fn timed<T>(
    what: &str,
    limit: Duration,
    call: impl std::future::Future<Output = T>,
) -> Result<T, Problem> {
    tokio::time::timeout(limit, call)
        .await
        .map_err(|_| Transient(format!("{what} timed out")))
}

/// One attempt: the consumer's ARN once it is `ACTIVE`, `None` while it is `CREATING`.
async fn ready_consumer(
    client: &Client,
    stream: &StreamRef,
    name: &str,
    call_timeout: Duration,
) -> Result<Option<String>, Problem> {
    let stream_arn = match stream {
        StreamRef::Arn(arn) => arn.clone(),
        StreamRef::Name(n) => timed(
            "DescribeStreamSummary",
            call_timeout,
            client.describe_stream_summary().stream_name(n).send(),
        )
        .await?
        .map_err(|e| problem("DescribeStreamSummary", &e))?
        .stream_description_summary
        .map(|d| d.stream_arn)
        .ok_or_else(|| Fatal("DescribeStreamSummary without a description".into()))?,
    };
    let described = timed(
        "DescribeStreamConsumer",
        call_timeout,
        client
            .describe_stream_consumer()
            .stream_arn(&stream_arn)
            .consumer_name(name)
            .send(),
    )
    .await?;
    let description = match described {
        Ok(out) => out.consumer_description,
        Err(e) if e.code() == Some("ResourceNotFoundException") => {
            match timed(
                "RegisterStreamConsumer",
                call_timeout,
                client
                    .register_stream_consumer()
                    .stream_arn(&stream_arn)
                    .consumer_name(name)
                    .send(),
            )
            .await?
            {
                Ok(_) => tracing::info!(consumer = name, "registered the stream consumer"),
                // Another worker registered it first.
                Err(e) if e.code() == Some("ResourceInUseException") => {}
                Err(e) => return Err(problem("RegisterStreamConsumer", &e)),
            }
            return Ok(None);
        }
        Err(e) => return Err(problem("DescribeStreamConsumer", &e)),
    };
    Ok(description
        .filter(|d| d.consumer_status == ConsumerStatus::Active)
        .map(|d| d.consumer_arn))
}

fn position(start: &StartAt) -> Result<StartingPosition, String> {
    let b = StartingPosition::builder();
    let b = match start {
        StartAt::TrimHorizon => b.r#type(ShardIteratorType::TrimHorizon),
        StartAt::Latest => b.r#type(ShardIteratorType::Latest),
        StartAt::AtTimestamp(t) => b
            .r#type(ShardIteratorType::AtTimestamp)
            .timestamp(DateTime::from(*t)),
        StartAt::AtSequence(s) => b
            .r#type(ShardIteratorType::AtSequenceNumber)
            .sequence_number(s),
        StartAt::AfterSequence(s) => b
            .r#type(ShardIteratorType::AfterSequenceNumber)
            .sequence_number(s),
    };
    b.build().map_err(|e| e.to_string())
}

/// Reads `shard_id` through subscriptions of `consumer_arn`, sending batches into `tx`.
pub(crate) struct Subscriber {
    pub client: Client,
    pub stream: StreamRef,
    pub shard_id: String,
    pub consumer_arn: String,
    pub config: FetchConfig,
    pub processing: Arc<crate::consumer_metrics::ProcessingCounters>,
}

enum Ended {
    /// The stream ended or broke: subscribe again.
    Again,
    /// The shard's end was sent, or the receiver is gone.
    Done,
}

impl Subscriber {
    fn backoff(&self, failures: u32) -> Duration {
        self.config
            .min_backoff
            .saturating_mul(1u32 << failures.min(10))
            .min(self.config.max_backoff)
            .mul_f64(0.5 + rand::random::<f64>() / 2.0)
    }

    pub(crate) async fn run(self, start: StartAt, tx: mpsc::Sender<Batch>) {
        // After the last continuation once there is one.
        let mut from = start;
        let mut failures = 0u32;
        loop {
            let asked = SystemTime::now();
            let result = self.subscription(&mut from, &tx).await;
            if from == StartAt::Latest {
                // No event came: a second LATEST would skip what arrived meanwhile. From a
                // second before the first attempt instead (a few older records at most).
                from = StartAt::AtTimestamp(
                    asked.checked_sub(Duration::from_secs(1)).unwrap_or(asked),
                );
            }
            match result {
                Ok(Ended::Done) => return,
                Ok(Ended::Again) => failures = 0,
                Err(why) => {
                    self.processing.read_error();
                    tracing::warn!(shard = %self.shard_id, %why, "subscription failed; subscribing again");
                    failures = failures.saturating_add(1);
                    tokio::time::sleep(self.backoff(failures)).await;
                }
            }
            if tx.is_closed() {
                return;
            }
        }
    }

    /// One subscription, from `from`, which follows its continuation numbers.
    async fn subscription(
        &self,
        from: &mut StartAt,
        tx: &mpsc::Sender<Batch>,
    ) -> Result<Ended, String> {
        let call = self
            .client
            .subscribe_to_shard()
            .consumer_arn(&self.consumer_arn)
            .shard_id(&self.shard_id)
            .starting_position(position(from)?)
            .send();
        let out = match tokio::time::timeout(self.config.call_timeout, call).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => {
                let code = sdk_error(&e);
                if code.contains("Throughput") || code.contains("LimitExceeded") {
                    self.processing.read_throttle();
                }
                // ResourceInUseException: the previous subscription started under 5 s ago.
                return Err(failed("SubscribeToShard", code));
            }
            Err(_) => return Err("SubscribeToShard timed out".into()),
        };
        let mut events = out.event_stream;
        loop {
            // Room for the batch first: at most one batch waits while one is processed.
            let Ok(permit) = tx.reserve().await else {
                return Ok(Ended::Done);
            };
            // Events come at least every few seconds (records or none); silence is a break.
            let next = tokio::time::timeout(
                self.config.call_timeout.max(Duration::from_secs(10)),
                events.recv(),
            )
            .await;
            let event = match next {
                Err(_) => return Err("no event in time".into()),
                Ok(Err(e)) => {
                    let code = e.code().map(str::to_owned).unwrap_or_else(|| {
                        aws_smithy_types::error::display::DisplayErrorContext(&e).to_string()
                    });
                    if !is_transient_code(&code) {
                        tracing::debug!(shard = %self.shard_id, %code, "subscription error");
                    }
                    return Err(code);
                }
                Ok(Ok(None)) => return Ok(Ended::Again),
                Ok(Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(e)))) => e,
                Ok(Ok(Some(_))) => continue,
            };
            let millis_behind = Some(event.millis_behind_latest);
            self.processing.behind(&self.shard_id, millis_behind);
            let records: Vec<Fetched> = event.records.into_iter().map(fetched).collect();
            // A closed shard's last event has its children and no continuation (the SDK
            // shows it as ""). No continuation without children is not an end: subscribe
            // again after what was received, as the Java KCL does.
            let children_given = event.child_shards.as_ref().is_some_and(|c| !c.is_empty());
            if event.continuation_sequence_number.is_empty() && !children_given {
                return Err("an event without a continuation or children".into());
            }
            match (!children_given).then_some(event.continuation_sequence_number) {
                Some(c) => {
                    *from = StartAt::AfterSequence(c);
                    if !records.is_empty() {
                        permit.send(Batch {
                            records,
                            millis_behind,
                            end: None,
                        });
                    }
                }
                None => {
                    // The shard's end.
                    let children = end_children(
                        &self.client,
                        &self.stream,
                        &self.shard_id,
                        event.child_shards,
                        self.config.call_timeout,
                    )
                    .await;
                    self.processing.behind(&self.shard_id, Some(0));
                    permit.send(Batch {
                        records,
                        millis_behind,
                        end: Some(children),
                    });
                    return Ok(Ended::Done);
                }
            }
        }
    }
}
