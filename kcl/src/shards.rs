//! Listing a stream's shards (`ListShards`, every page), retried on throttling.

use crate::config::InitialPosition;
use crate::discovery::ShardInfo;
use crate::error::{LeaseError, is_transient_code};
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::types::{ChildShard, HashKeyRange, Shard, ShardFilter, ShardFilterType};
use aws_smithy_types::DateTime;
use backon::{BackoffBuilder, ExponentialBuilder};
use std::time::Duration;

/// The stream a coordinator works for: a name or an ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamRef {
    /// By name.
    Name(String),
    /// By ARN.
    Arn(String),
}

impl StreamRef {
    /// A stream by name, or by ARN when `s` starts with `arn:`.
    pub fn parse(s: impl Into<String>) -> Self {
        let s = s.into();
        if s.starts_with("arn:") {
            StreamRef::Arn(s)
        } else {
            StreamRef::Name(s)
        }
    }
}

impl From<&str> for StreamRef {
    fn from(s: &str) -> Self {
        StreamRef::parse(s)
    }
}

impl From<String> for StreamRef {
    fn from(s: String) -> Self {
        StreamRef::parse(s)
    }
}

fn range_of(r: Option<&HashKeyRange>) -> (String, String) {
    r.map(|r| {
        (
            r.starting_hash_key().to_owned(),
            r.ending_hash_key().to_owned(),
        )
    })
    .unwrap_or_default()
}

fn info(s: &Shard) -> ShardInfo {
    let mut parents: Vec<String> = s.parent_shard_id().into_iter().map(str::to_owned).collect();
    parents.extend(s.adjacent_parent_shard_id().map(str::to_owned));
    let range = range_of(s.hash_key_range());
    ShardInfo {
        id: s.shard_id().to_owned(),
        parents,
        hash_range: range,
        closed: s
            .sequence_number_range()
            .is_some_and(|r| r.ending_sequence_number().is_some()),
    }
}

/// A child shard as `GetRecords` or `SubscribeToShard` reports it at a shard end.
pub fn child_info(c: &ChildShard) -> ShardInfo {
    let range = range_of(c.hash_key_range());
    ShardInfo {
        id: c.shard_id().to_owned(),
        parents: c.parent_shards().to_vec(),
        hash_range: range,
        closed: false,
    }
}

/// Every shard of the stream (for `AtTimestamp`: those open at the timestamp and after).
pub(crate) async fn list_shards(
    client: &Client,
    stream: &StreamRef,
    position: Option<InitialPosition>,
    attempts: usize,
    call_timeout: Duration,
) -> Result<Vec<ShardInfo>, LeaseError> {
    let filter = match position {
        Some(InitialPosition::AtTimestamp(t)) => Some(
            ShardFilter::builder()
                .r#type(ShardFilterType::FromTimestamp)
                .timestamp(DateTime::from(t))
                .build()
                .map_err(|e| LeaseError::Service {
                    operation: "ListShards",
                    code: None,
                    message: e.to_string(),
                })?,
        ),
        _ => None,
    };
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(1))
            .with_jitter()
            .with_max_times(attempts.saturating_sub(1))
            .build();
        let page = loop {
            let mut req = client.list_shards();
            req = match &token {
                Some(t) => req.next_token(t),
                None => {
                    let req = match stream {
                        StreamRef::Name(n) => req.stream_name(n),
                        StreamRef::Arn(a) => req.stream_arn(a),
                    };
                    req.set_shard_filter(filter.clone())
                }
            };
            let sent = match tokio::time::timeout(call_timeout, req.send()).await {
                Ok(r) => r,
                Err(_) => match delays.next() {
                    Some(delay) => {
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    None => {
                        return Err(LeaseError::Timeout {
                            operation: "ListShards",
                        });
                    }
                },
            };
            match sent {
                Ok(page) => break page,
                Err(e) => {
                    let code = e.code().map(str::to_owned);
                    let transient = code.as_deref().is_none_or(is_transient_code);
                    match delays.next() {
                        Some(delay) if transient => tokio::time::sleep(delay).await,
                        _ => {
                            return Err(LeaseError::Service {
                                operation: "ListShards",
                                code,
                                message: e.message().map(str::to_owned).unwrap_or_else(|| {
                                    aws_smithy_types::error::display::DisplayErrorContext(&e)
                                        .to_string()
                                }),
                            });
                        }
                    }
                }
            }
        };
        out.extend(page.shards().iter().map(info));
        match page.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => return Ok(out),
        }
    }
}
