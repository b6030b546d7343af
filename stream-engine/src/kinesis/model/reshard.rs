//! A stream's shard set: pending status changes, routing, splits, merges, scaling and
//! retention.

use super::*;

impl StreamState {
    /// Applies a due transition.
    pub(super) fn refresh(&mut self, now: u64, config: &EngineConfig) {
        let Some((ready_at, _)) = &self.pending else {
            return;
        };
        if now < *ready_at {
            return;
        }
        let Some((at_ms, op)) = self.pending.take() else {
            return;
        };
        // The change happens at its scheduled time, whenever the next request observes it:
        // closed parents end and children begin at `at_ms`.
        let now = at_ms.min(now);
        match op {
            Pending::Create => self.status = StreamStatus::Active,
            Pending::Delete => self.deleted = true,
            Pending::Split { shard, at } => {
                self.split(shard, at, now, &config.limits);
                self.status = StreamStatus::Active;
            }
            Pending::Merge { shard, adjacent } => {
                self.merge(shard, adjacent, now, &config.limits);
                self.status = StreamStatus::Active;
            }
            Pending::Scale { target } => {
                self.scale(target, now, &config.limits);
                self.status = StreamStatus::Active;
            }
        }
    }

    pub(super) fn route(&self, hash_key: u128) -> Option<u64> {
        let i = self
            .open
            .partition_point(|&s| self.shards[s as usize].range.start() <= hash_key);
        let candidate = *self.open.get(i.checked_sub(1)?)?;
        self.shards[candidate as usize]
            .range
            .contains(hash_key)
            .then_some(candidate)
    }

    pub(super) fn rebuild_open(&mut self) {
        let mut open: Vec<u64> = self
            .shards
            .iter()
            .filter(|s| s.is_open())
            .map(|s| s.index)
            .collect();
        open.sort_by_key(|&i| self.shards[i as usize].range.start());
        self.open = open;
    }

    pub(super) fn add_child(
        &mut self,
        range: HashKeyRange,
        parent: u64,
        adjacent: Option<u64>,
        now: u64,
        limits: &Limits,
    ) -> u64 {
        let index = self.shards.len() as u64;
        let mut child = Shard::new(index, range, now, limits);
        child.parent = Some(parent);
        child.adjacent_parent = adjacent;
        self.shards.push(child);
        index
    }

    pub(super) fn close(&mut self, index: u64, children: &[u64], now: u64) {
        let s = &mut self.shards[index as usize];
        s.closed_ms = Some(now);
        s.children.extend_from_slice(children);
    }

    pub(super) fn split(&mut self, index: u64, at: u128, now: u64, limits: &Limits) {
        let range = self.shards[index as usize].range;
        // `at` was checked to lie in (start, end], so both halves are non-empty.
        let (Ok(low), Ok(high)) = (
            HashKeyRange::new(range.start(), at - 1),
            HashKeyRange::new(at, range.end()),
        ) else {
            return;
        };
        let a = self.add_child(low, index, None, now, limits);
        let b = self.add_child(high, index, None, now, limits);
        self.close(index, &[a, b], now);
        self.rebuild_open();
    }

    pub(super) fn merge(&mut self, shard: u64, adjacent: u64, now: u64, limits: &Limits) -> u64 {
        let (ra, rb) = (
            self.shards[shard as usize].range,
            self.shards[adjacent as usize].range,
        );
        let range =
            HashKeyRange::new(ra.start().min(rb.start()), ra.end().max(rb.end())).unwrap_or(ra);
        let child = self.add_child(range, shard, Some(adjacent), now, limits);
        self.close(shard, &[child], now);
        self.close(adjacent, &[child], now);
        self.rebuild_open();
        child
    }

    /// Uniform scaling through splits and merges, so every shard keeps at most two parents.
    pub(super) fn scale(&mut self, target: u32, now: u64, limits: &Limits) {
        let targets = HashKeyRange::split_evenly(target);
        // Split every open shard at each target boundary strictly inside it.
        loop {
            let cut = self.open.iter().find_map(|&s| {
                let r = self.shards[s as usize].range;
                targets
                    .iter()
                    .map(|t| t.start())
                    .find(|&b| b > r.start() && b <= r.end())
                    .map(|b| (s, b))
            });
            match cut {
                Some((s, b)) => self.split(s, b, now, limits),
                None => break,
            }
        }
        // Merge neighbours that lie in the same target range.
        for t in &targets {
            loop {
                let inside: Vec<u64> = self
                    .open
                    .iter()
                    .copied()
                    .filter(|&s| {
                        let r = self.shards[s as usize].range;
                        t.contains(r.start()) && t.contains(r.end())
                    })
                    .collect();
                if inside.len() < 2 {
                    break;
                }
                self.merge(inside[0], inside[1], now, limits);
            }
        }
    }

    pub(super) fn enforce_retention(&mut self, now: u64) {
        for i in 0..self.shards.len() {
            self.trim_shard(i, now);
        }
    }

    /// Drops one shard's records older than retention (and the shard itself once it closed
    /// before the cutoff).
    pub(super) fn trim_shard(&mut self, index: usize, now: u64) {
        let cutoff = now.saturating_sub(u64::from(self.retention_hours) * HOUR_MS);
        let Some(s) = self.shards.get_mut(index) else {
            return;
        };
        while s.records.front().is_some_and(|r| r.arrival_ms < cutoff) {
            s.records.pop_front();
            s.trimmed += 1;
        }
        if s.closed_ms.is_some_and(|c| c < cutoff) {
            s.expired = true;
            s.records.clear();
            s.records.shrink_to_fit();
        }
    }
}
