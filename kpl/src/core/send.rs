//! Building requests: when a shard's records are due, and how they are taken into one
//! `PutRecords` while the request, the aggregate, the ordering rule and the rate allow.

use super::*;

impl Core {
    pub(super) fn due(&self, s: &ShardState, now: Instant) -> bool {
        let Some(front) = s.queue.front() else {
            return false;
        };
        later(front.enqueued, self.cfg.record_max_buffered_time) <= now
            || front.id <= self.flush_upto
            // Senders are (or may soon be) waiting for room: buffering longer only adds
            // latency.
            || self.outstanding.len() >= self.cfg.max_outstanding_records
            || self.outstanding_bytes + MAX_RECORD_ROOM > self.cfg.max_outstanding_bytes
            || !front.attempts.is_empty()
            || if self.cfg.aggregation_enabled {
                s.queued_bytes >= self.cfg.aggregation_max_size
            } else {
                s.queue.len() >= self.cfg.collection_max_count
            }
    }

    pub(super) fn sendable(&self, s: &ShardState, now: Instant) -> bool {
        !s.queue.is_empty()
            && now >= s.not_before
            && now >= s.limited_until
            && (self.cfg.ordering == Ordering::Relaxed || s.in_flight == 0)
            && self.due(s, now)
    }

    pub(super) fn build_request(&mut self, now: Instant) -> Option<Action> {
        let mut wire: Vec<WireEntry> = Vec::new();
        let mut carried: Vec<Carried> = Vec::new();
        let mut bytes = 0usize;
        let n = self.shards.len();
        for k in 0..n {
            let i = (self.rr + k) % n;
            if !self.sendable(&self.shards[i], now) {
                continue;
            }
            self.take(i, now, &mut wire, &mut carried, &mut bytes);
            if wire.len() >= self.cfg.collection_max_count {
                break;
            }
        }
        if n > 0 {
            self.rr = (self.rr + 1) % n;
        }
        if wire.is_empty() {
            return None;
        }
        let mut touched: Vec<usize> = carried.iter().map(|c| c.shard).collect();
        touched.sort_unstable();
        touched.dedup();
        for &i in &touched {
            self.shards[i].in_flight += 1;
        }
        for c in &mut carried {
            for p in &mut c.records {
                if p.attempts.is_empty() {
                    self.metrics
                        .buffered(now.saturating_duration_since(p.enqueued));
                } else {
                    self.metrics.retries(1);
                }
                p.attempt_started = now;
            }
        }
        self.metrics.request(wire.len() as u64, bytes as u64);
        self.next_request += 1;
        let request = self.next_request;
        self.requests.insert(request, carried);
        Some(Action::Put {
            request,
            entries: wire,
        })
    }

    /// Moves records of shard `i` into the request while the request, the aggregate and the
    /// rate limiter allow.
    pub(super) fn take(
        &mut self,
        i: usize,
        now: Instant,
        wire: &mut Vec<WireEntry>,
        carried: &mut Vec<Carried>,
        bytes: &mut usize,
    ) {
        let strict = self.cfg.ordering == Ordering::PerPartitionKey;
        let limits = BatchLimits {
            aggregate: self.cfg.aggregation_enabled,
            max_size: self.cfg.aggregation_max_size,
            max_count: self.cfg.aggregation_max_count,
        };
        let mut keys: HashSet<String> = HashSet::new();
        let mut misrouted = Vec::new();
        loop {
            if wire.len() >= self.cfg.collection_max_count {
                break;
            }
            let s = &mut self.shards[i];
            if let Some(wait) = s.limiter.wait(now) {
                s.limited_until = later(now, wait);
                break;
            }
            let Some((entry, records, aggregated)) =
                s.next_entry(limits, strict.then_some(&keys), &mut misrouted)
            else {
                break;
            };
            let size = entry.size();
            if *bytes + size > self.cfg.collection_max_size {
                s.unpop(records);
                break;
            }
            *bytes += size;
            s.limiter.take(size);
            if strict && !aggregated {
                keys.insert(entry.pk.clone());
            }
            wire.push(entry);
            carried.push(Carried {
                shard: i,
                records,
                aggregated,
            });
            if strict && aggregated {
                // One aggregate per shard and request: it holds many keys, and two Kinesis
                // records of one key in a request can fail independently.
                break;
            }
        }
        for p in misrouted.into_iter().rev() {
            tracing::warn!(target: "kpl", shard = %self.shards[i].id, "record outside its shard's range; routing it again");
            self.route(p, true);
        }
    }
}
