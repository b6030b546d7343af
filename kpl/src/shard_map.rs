//! The stream's shards, from `ListShards`: which open shard owns a hash key, and the range of
//! any shard (open or closed) a record may have landed on.

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use shared_proto::HashKeyRange;
use std::collections::HashMap;

/// A snapshot of the stream's shards.
#[derive(Debug, Clone, Default)]
pub(crate) struct ShardMap {
    /// Open shards sorted by range start.
    open: Vec<(HashKeyRange, String)>,
    /// Every listed shard's range.
    ranges: HashMap<String, HashKeyRange>,
}

/// Why the shards could not be listed.
#[derive(Debug, Clone)]
pub(crate) enum ListError {
    /// The stream does not exist.
    NotFound,
    /// The stream is not ACTIVE yet (`ResourceInUseException`).
    NotReady,
    /// Worth retrying (throttling, 5xx, transport).
    Transient(String, String),
    /// Not worth retrying.
    Fatal(String, String),
}

impl ShardMap {
    /// The position (in [`ShardMap::open_shards`] order) of the open shard owning `hash_key`.
    pub fn route(&self, hash_key: u128) -> Option<usize> {
        let i = self
            .open
            .partition_point(|(r, _)| r.start() <= hash_key)
            .checked_sub(1)?;
        let (range, _) = self.open.get(i)?;
        range.contains(hash_key).then_some(i)
    }

    /// The range of a shard, open or closed.
    pub fn range(&self, shard_id: &str) -> Option<HashKeyRange> {
        self.ranges.get(shard_id).copied()
    }

    /// Open shards, by range.
    pub fn open_shards(&self) -> impl Iterator<Item = (&HashKeyRange, &String)> {
        self.open.iter().map(|(r, id)| (r, id))
    }

    /// Lists every shard of the stream (all pages).
    pub async fn load(
        client: &Client,
        stream: &crate::producer::StreamRef,
    ) -> Result<ShardMap, ListError> {
        let mut map = ShardMap::default();
        let mut token: Option<String> = None;
        loop {
            let req = match &token {
                Some(t) => client.list_shards().next_token(t),
                None => stream.apply_list(client.list_shards()),
            };
            let resp = req.send().await.map_err(classify)?;
            for s in resp.shards() {
                let Some(r) = s.hash_key_range() else {
                    continue;
                };
                let Ok(range) = HashKeyRange::parse(r.starting_hash_key(), r.ending_hash_key())
                else {
                    continue;
                };
                let closed = s
                    .sequence_number_range()
                    .is_some_and(|q| q.ending_sequence_number().is_some());
                map.ranges.insert(s.shard_id().to_owned(), range);
                if !closed {
                    map.open.push((range, s.shard_id().to_owned()));
                }
            }
            token = resp.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        map.open.sort_by_key(|(r, _)| r.start());
        if map.open.is_empty() {
            return Err(ListError::Transient(
                "NoOpenShards".into(),
                "the stream lists no open shard".into(),
            ));
        }
        Ok(map)
    }
}

fn classify<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    err: SdkError<E, R>,
) -> ListError {
    let code = err.code().unwrap_or("").to_owned();
    let message = err
        .message()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{err:?}"));
    match code.as_str() {
        "ResourceNotFoundException" => ListError::NotFound,
        "ResourceInUseException" => ListError::NotReady,
        "AccessDeniedException" | "ValidationException" | "InvalidArgumentException" => {
            ListError::Fatal(code, message)
        }
        "" => ListError::Transient("Transport".into(), message),
        _ => ListError::Transient(code, message),
    }
}
