//! Control-plane call rates, as AWS documents them: per account, per stream or per shard.
//! A consumer that hammers `DescribeStream` or `GetShardIterator` on AWS gets
//! `LimitExceededException`; here it does too, so the mistake shows before production.

use super::bucket::Bucket;
use crate::config::Limits;
use crate::error::ApiError;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};

/// One day in milliseconds (the window of the `UpdateShardCount` limit).
const DAY_MS: u64 = 24 * 3600 * 1000;

/// The control-plane operations with a rate limit, and what the limit is counted over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control<'a> {
    /// Per account.
    DescribeStream,
    /// Per account.
    DescribeStreamSummary,
    /// Per stream.
    ListShards(&'a str),
    /// Per shard (stream, shard id).
    GetShardIterator(&'a str, &'a str),
    /// `SplitShard` and `MergeShards` together, per account.
    Reshard,
    /// Per stream, over a rolling day.
    UpdateShardCount(&'a str),
}

/// Buckets for every limited operation and scope.
#[derive(Debug, Default)]
pub(crate) struct ControlLimits {
    buckets: Mutex<HashMap<String, Bucket>>,
    scalings: Mutex<HashMap<String, VecDeque<u64>>>,
}

impl ControlLimits {
    /// Counts one call; fails with `LimitExceededException` when it is over its rate.
    pub fn check(&self, limits: &Limits, call: Control<'_>, now_ms: u64) -> Result<(), ApiError> {
        if !limits.enabled {
            return Ok(());
        }
        let (key, rate, what) = match call {
            Control::DescribeStream => (
                "DescribeStream".to_owned(),
                limits.describe_stream_per_sec,
                "DescribeStream calls per second for the account".to_owned(),
            ),
            Control::DescribeStreamSummary => (
                "DescribeStreamSummary".to_owned(),
                limits.describe_stream_summary_per_sec,
                "DescribeStreamSummary calls per second for the account".to_owned(),
            ),
            Control::ListShards(stream) => (
                format!("ListShards/{stream}"),
                limits.list_shards_per_stream_per_sec,
                format!("ListShards calls per second for stream {stream}"),
            ),
            Control::GetShardIterator(stream, shard) => (
                format!("GetShardIterator/{stream}/{shard}"),
                limits.get_shard_iterator_per_shard_per_sec,
                format!("GetShardIterator calls per second for shard {shard} of stream {stream}"),
            ),
            Control::Reshard => (
                "Reshard".to_owned(),
                limits.reshard_per_sec,
                "SplitShard and MergeShards calls per second for the account".to_owned(),
            ),
            Control::UpdateShardCount(stream) => {
                return self.check_scaling(limits, stream, now_ms);
            }
        };
        let mut buckets = self.buckets.lock();
        let bucket = buckets
            .entry(key)
            .or_insert_with(|| Bucket::new(rate, now_ms));
        if bucket.try_take(1, now_ms) {
            Ok(())
        } else {
            Err(ApiError::limit_exceeded(format!(
                "Rate exceeded: more than {rate} {what}."
            )))
        }
    }

    fn check_scaling(&self, limits: &Limits, stream: &str, now_ms: u64) -> Result<(), ApiError> {
        let mut scalings = self.scalings.lock();
        let times = scalings.entry(stream.to_owned()).or_default();
        while times.front().is_some_and(|&t| t + DAY_MS <= now_ms) {
            times.pop_front();
        }
        if times.len() as u64 >= limits.update_shard_count_per_day {
            return Err(ApiError::limit_exceeded(format!(
                "UpdateShardCount on stream {stream}: more than {} scaling operations in a rolling 24-hour period.",
                limits.update_shard_count_per_day
            )));
        }
        // Counted at once, under the same lock, so two concurrent calls cannot both pass the
        // last slot; `unscaled` gives it back when the scaling is refused or changes nothing.
        times.push_back(now_ms);
        Ok(())
    }

    /// Gives back the slot of a scaling that did not happen.
    pub fn unscaled(&self, stream: &str) {
        if let Some(times) = self.scalings.lock().get_mut(stream) {
            times.pop_back();
        }
    }
}
