//! Applying a fresh shard map (verifying misplaced aggregates, keeping rate state, re-routing
//! in id order) and expiring records at their TTL.

use super::*;

impl Core {
    pub(super) fn apply_map(&mut self, map: ShardMap, now: Instant) {
        let mut again: Vec<Pending> = Vec::new();
        // Aggregates that landed elsewhere count as stored only if the landing shard owns
        // every sub-record (then every KCL delivers all of them); otherwise the whole
        // aggregate failed and every sub-record goes out again, as the AWS KPL does (a KCL
        // drops a misplaced aggregate whole).
        let mut unknown = Vec::new();
        for u in std::mem::take(&mut self.unverified) {
            let Some(range) = map.range(&u.shard) else {
                // A listing older than the shard: ask again rather than guess.
                unknown.push(u);
                continue;
            };
            let owned = u.records.iter().all(|p| range.contains(p.hash));
            if owned {
                for (n, mut p) in u.records.into_iter().enumerate() {
                    let outcome = RecordOutcome {
                        shard_id: u.shard.clone(),
                        sequence_number: u.sequence.clone(),
                        sub_sequence_number: n as u64,
                        aggregated: true,
                        attempts: std::mem::take(&mut p.attempts),
                    };
                    self.finish(p, Ok(outcome));
                }
            } else {
                self.metrics.misplaced(u.records.len() as u64);
                for mut p in u.records {
                    wrong_shard(
                        &mut p,
                        format!(
                            "the aggregate landed on {} which does not own every sub-record",
                            u.shard
                        ),
                    );
                    p.last_event = now;
                    again.push(p);
                }
            }
        }
        if !unknown.is_empty() {
            self.refresh.wanted = true;
            self.unverified = unknown;
        }
        // Re-routed in id order (arrival order, so per-key order), whatever queue they were in.
        let mut old: HashMap<Arc<str>, ShardState> = HashMap::new();
        for mut s in std::mem::take(&mut self.shards) {
            again.extend(s.queue.drain(..));
            s.queued_bytes = 0;
            old.insert(s.id.clone(), s);
        }
        again.extend(self.unrouted.drain(..));
        let percent = self.cfg.rate_limit_percent;
        self.shards = map
            .open_shards()
            .map(|(range, id)| match old.remove(id) {
                // A shard that still exists keeps its rate and backoff state.
                Some(mut s) => {
                    s.in_flight = 0;
                    s
                }
                None => ShardState::new(id.clone(), *range, Limiter::new(percent, now), now),
            })
            .collect();
        for id in old.keys() {
            self.metrics.forget_shard(id);
        }
        self.map = map;
        self.rr = 0;
        again.sort_by_key(|p| p.id);
        for p in again {
            if p.deadline <= now {
                let attempts = p.attempts.clone();
                self.finish(p, Err(PutError::Expired { attempts }));
            } else {
                self.route(p, false);
            }
        }
        self.outstanding.answer();
    }

    pub(super) fn expire(&mut self, now: Instant) {
        let mut expired = Vec::new();
        for s in &mut self.shards {
            while s.queue.front().is_some_and(|p| p.deadline <= now) {
                if let Some(p) = s.queue.pop_front() {
                    s.queued_bytes -= p.size();
                    expired.push(p);
                }
            }
        }
        while self.unrouted.front().is_some_and(|p| p.deadline <= now) {
            if let Some(p) = self.unrouted.pop_front() {
                expired.push(p);
            }
        }
        // An aggregate that cannot be verified in time expires whole: it may not be
        // delivered by every consumer.
        let mut i = 0;
        while i < self.unverified.len() {
            if self.unverified[i].records.iter().any(|p| p.deadline <= now) {
                let u = self.unverified.swap_remove(i);
                for mut p in u.records {
                    wrong_shard(
                        &mut p,
                        format!(
                            "landed on {}; the shard map could not be refreshed to verify it",
                            u.shard
                        ),
                    );
                    expired.push(p);
                }
            } else {
                i += 1;
            }
        }
        for p in expired {
            let attempts = p.attempts.clone();
            self.finish(p, Err(PutError::Expired { attempts }));
        }
    }
}

/// Marks a record's last attempt (which stored it on a shard that may not deliver it) as
/// failed with `WrongShard`.
fn wrong_shard(p: &mut Pending, message: String) {
    if let Some(last) = p.attempts.last_mut() {
        last.error_code = Some("WrongShard".to_owned());
        last.error_message = Some(message);
    }
}
