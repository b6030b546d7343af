//! The stream's shards, from `ListShards`: which open shard owns a hash key, and the range of
//! any shard (open or closed) a record may have landed on. Plain data: the listing itself is
//! done by the driver.

use shared_proto::HashKeyRange;
use std::collections::HashMap;
use std::sync::Arc;

/// A snapshot of the stream's shards.
#[derive(Debug, Clone, Default)]
pub(crate) struct ShardMap {
    /// Open shards sorted by range start.
    open: Vec<(HashKeyRange, Arc<str>)>,
    /// Every listed shard's range.
    ranges: HashMap<Arc<str>, HashKeyRange>,
}

impl ShardMap {
    /// Adds a listed shard; `closed` when it has an ending sequence number. Shards whose hash
    /// range does not parse are skipped (they cannot be routed to).
    pub fn add(&mut self, shard_id: &str, start: &str, end: &str, closed: bool) {
        let Ok(range) = HashKeyRange::parse(start, end) else {
            tracing::warn!(target: "kpl", shard_id, start, end, "shard with an unreadable hash range ignored");
            return;
        };
        let id: Arc<str> = shard_id.into();
        self.ranges.insert(id.clone(), range);
        if !closed {
            self.open.push((range, id));
        }
    }

    /// Sorts the open shards; `None` when there is none.
    pub fn finish(mut self) -> Option<ShardMap> {
        self.open.sort_by_key(|(r, _)| r.start());
        (!self.open.is_empty()).then_some(self)
    }

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
    pub fn open_shards(&self) -> impl Iterator<Item = (&HashKeyRange, &Arc<str>)> {
        self.open.iter().map(|(r, id)| (r, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_open_ranges_and_remembers_closed_ones() {
        let mut m = ShardMap::default();
        let half = u128::MAX / 2;
        m.add("shardId-000000000000", "0", &u128::MAX.to_string(), true);
        m.add(
            "shardId-000000000002",
            &(half + 1).to_string(),
            &u128::MAX.to_string(),
            false,
        );
        m.add("shardId-000000000001", "0", &half.to_string(), false);
        m.add("shardId-000000000009", "x", "y", false);
        let m = m.finish().expect("open shards");
        assert_eq!(m.route(0), Some(0));
        assert_eq!(m.route(u128::MAX), Some(1));
        assert!(m.range("shardId-000000000000").is_some());
        assert!(m.range("shardId-000000000009").is_none());
        assert!(ShardMap::default().finish().is_none());
    }
}
