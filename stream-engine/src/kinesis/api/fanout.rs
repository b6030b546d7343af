//! Enhanced fan-out: registered stream consumers and the start of `SubscribeToShard` (the
//! event stream itself is `kinesis::subscription`).

use super::data::{iterator_start, write_records};
use super::*;
use crate::kinesis::model::{ConsumerInfo, SubscriptionRead};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ConsumerReq {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    consumer_name: Option<String>,
    #[serde(rename = "ConsumerARN")]
    consumer_arn: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SubscribeReq {
    #[serde(rename = "ConsumerARN")]
    consumer_arn: Option<String>,
    shard_id: Option<String>,
    starting_position: Option<StartingPosition>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StartingPosition {
    r#type: Option<String>,
    sequence_number: Option<String>,
    timestamp: Option<f64>,
}

/// A subscription the engine accepted: what the event stream reads.
#[derive(Debug)]
pub struct Subscription {
    /// The stream.
    pub handle: Arc<StreamHandle>,
    /// The shard number.
    pub shard: u64,
    /// The first position to send.
    pub pos: u64,
    /// The consumer's ARN.
    pub consumer_arn: String,
    /// The subscription's number (a later one of the same consumer and shard replaces it).
    pub number: u64,
}

/// A request's stream, and its consumer by name or by ARN.
type ConsumerTarget = (Arc<StreamHandle>, Option<String>, Option<String>);

fn consumer_json(c: &ConsumerInfo) -> Value {
    json!({
        "ConsumerName": c.name,
        "ConsumerARN": c.arn,
        "ConsumerStatus": c.status.as_str(),
        "ConsumerCreationTimestamp": c.created_ms as f64 / 1000.0,
    })
}

impl Api<'_> {
    /// The stream of a consumer ARN (`<stream ARN>/consumer/<name>:<time>`).
    fn stream_of_consumer(&self, arn: &str) -> Result<Arc<StreamHandle>, ApiError> {
        let stream_arn = arn
            .split_once("/consumer/")
            .map(|(s, _)| s)
            .ok_or_else(|| {
                ApiError::invalid_argument(format!("ConsumerARN {arn} is not a consumer ARN"))
            })?;
        self.core.stream(&self.core.name_from_arn(stream_arn)?)
    }

    /// The stream and the consumer named by a request (ARN, or stream ARN and name).
    fn consumer_target(&self, req: &ConsumerReq) -> Result<ConsumerTarget, ApiError> {
        match (&req.consumer_arn, &req.stream_arn, &req.consumer_name) {
            (Some(arn), _, _) => Ok((self.stream_of_consumer(arn)?, None, Some(arn.clone()))),
            (None, Some(stream), Some(name)) => Ok((
                self.stream(&None, &Some(stream.clone()))?,
                Some(name.clone()),
                None,
            )),
            _ => Err(ApiError::invalid_argument(
                "Either ConsumerARN or both StreamARN and ConsumerName should be provided.",
            )),
        }
    }

    pub(super) fn register_consumer(&self, req: ConsumerReq) -> Result<Vec<u8>, ApiError> {
        let stream_arn = required(req.stream_arn, "streamARN")?;
        let name = required(req.consumer_name, "consumerName")?;
        let handle = self.stream(&None, &Some(stream_arn))?;
        let info = handle.register_consumer(&name)?;
        to_body(json!({ "Consumer": consumer_json(&info) }))
    }

    pub(super) fn describe_consumer(&self, req: ConsumerReq) -> Result<Vec<u8>, ApiError> {
        let (handle, name, arn) = self.consumer_target(&req)?;
        let info = handle.describe_consumer(name.as_deref(), arn.as_deref())?;
        let mut description = consumer_json(&info);
        description["StreamARN"] = Value::from(handle.arn());
        to_body(json!({ "ConsumerDescription": description }))
    }

    pub(super) fn list_consumers(&self, req: ConsumerReq) -> Result<Vec<u8>, ApiError> {
        let stream_arn = required(req.stream_arn, "streamARN")?;
        if let Some(max) = req.max_results {
            check_range("maxResults", max, 1, 10_000)?;
        }
        let handle = self.stream(&None, &Some(stream_arn))?;
        // At most 20 consumers: one page holds them all; a token starts after that many.
        let skip: usize = match &req.next_token {
            Some(t) => t
                .parse()
                .map_err(|_| ApiError::invalid_argument(format!("Invalid NextToken {t}")))?,
            None => 0,
        };
        let all = handle.list_consumers();
        let max = req.max_results.map_or(all.len(), |m| m as usize);
        let page: Vec<Value> = all.iter().skip(skip).take(max).map(consumer_json).collect();
        let mut out = json!({ "Consumers": page });
        if skip + max < all.len() {
            out["NextToken"] = Value::from((skip + max).to_string());
        }
        to_body(out)
    }

    pub(super) fn deregister_consumer(&self, req: ConsumerReq) -> Result<Vec<u8>, ApiError> {
        let (handle, name, arn) = self.consumer_target(&req)?;
        handle.deregister_consumer(name.as_deref(), arn.as_deref())?;
        to_body(json!({}))
    }

    /// Validates a `SubscribeToShard` request and starts the subscription.
    pub(super) fn subscribe(&self, req: SubscribeReq) -> Result<Subscription, ApiError> {
        let arn = required(req.consumer_arn, "consumerARN")?;
        let shard_id = required(req.shard_id, "shardId")?;
        check_name("shardId", &shard_id)?;
        let position = required(req.starting_position, "startingPosition")?;
        let kind = required(position.r#type, "startingPosition.type")?;
        let start = iterator_start(&kind, position.sequence_number, position.timestamp)?;
        let handle = self.stream_of_consumer(&arn)?;
        handle.describe_consumer(None, Some(&arn))?;
        self.shard_fault("SubscribeToShard", &shard_id)?;
        let (shard, pos) = handle.iterator_position(&shard_id, &start)?;
        let number =
            handle.begin_subscription(&arn, shard, self.core.config().subscription_window)?;
        Ok(Subscription {
            handle,
            shard,
            pos,
            consumer_arn: arn,
            number,
        })
    }
}

/// Validates a `SubscribeToShard` request and starts the subscription.
pub fn subscribe(
    core: &KinesisCore,
    faults: &Faults,
    body: &[u8],
) -> Result<Subscription, ApiError> {
    Api { core, faults }.subscribe(parse(body)?)
}

/// The JSON payload of one `SubscribeToShardEvent`.
pub fn event_json(handle: &StreamHandle, shard: u64, pos: u64, read: &SubscriptionRead) -> Vec<u8> {
    let mut body = String::with_capacity(
        128 + read
            .records
            .iter()
            .map(|(_, r)| r.data().len() * 4 / 3 + 160)
            .sum::<usize>(),
    );
    body.push_str("{\"Records\":");
    write_records(&mut body, handle, shard, &read.records);
    let _ = write!(
        body,
        ",\"MillisBehindLatest\":{}",
        read.millis_behind_latest
    );
    match &read.child_shards {
        Some(children) => {
            let children: Vec<Value> = children.iter().map(child_json).collect();
            let _ = write!(body, ",\"ChildShards\":{}", Value::from(children));
        }
        None => {
            let last = read.records.last().map_or(pos, |(p, _)| p + 1);
            let _ = write!(
                body,
                ",\"ContinuationSequenceNumber\":\"{}\"",
                handle.continuation(shard, last)
            );
        }
    }
    body.push('}');
    body.into_bytes()
}
