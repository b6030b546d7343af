//! One stream: writes, reads, iterators, descriptions and the reshard requests.

use super::*;

impl StreamHandle {
    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stream's ARN.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// Creation time, epoch ms.
    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }

    pub(super) fn refresh_is_deleted(&self) -> bool {
        let mut state = self.state.lock();
        state.refresh(self.clock.now_ms(), &self.config);
        state.deleted
    }

    /// The 56-digit sequence number of position `pos` of shard `shard`. Like AWS's, they are
    /// not dense: consecutive records differ by an irregular step of at least 2, so client
    /// code can never assume `seq + 1`.
    pub fn sequence_number(&self, shard: u64, pos: u64) -> String {
        format!("{:020}{shard:012}{:024}", self.prefix, encode_pos(pos))
    }

    /// The position of the first record at (`after`: after) sequence number `text`.
    pub(super) fn position_of(&self, text: &str, shard: u64, after: bool) -> Result<u64, ApiError> {
        let n = self.parse_sequence_number(text, shard)?;
        let p = u64::try_from(n / SEQ_STRIDE).unwrap_or(u64::MAX);
        let here = encode_pos(p);
        Ok(if here > n || (here == n && !after) {
            p
        } else {
            p.saturating_add(1)
        })
    }

    pub(super) fn parse_sequence_number(&self, text: &str, shard: u64) -> Result<u128, ApiError> {
        let invalid = || {
            ApiError::invalid_argument(format!(
                "StartingSequenceNumber {text} used in GetShardIterator on shard {} in stream {} under account {} is invalid because it did not come from this stream.",
                shard_id(shard),
                self.name,
                self.config.account_id
            ))
        };
        if text.len() != 56 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let prefix: u128 = text[..20].parse().map_err(|_| invalid())?;
        let in_shard: u64 = text[20..32].parse().map_err(|_| invalid())?;
        let pos: u128 = text[32..].parse().map_err(|_| invalid())?;
        if prefix != self.prefix || in_shard != shard {
            return Err(invalid());
        }
        Ok(pos)
    }

    /// A shard iterator for `pos` of `shard`, issued now.
    pub fn iterator(&self, shard: u64, pos: u64) -> String {
        ParsedIterator {
            stream_name: self.name.clone(),
            stream_id: self.id,
            shard,
            pos,
            issued_ms: self.clock.now_ms(),
        }
        .encode(&self.secret)
    }

    /// Summary (status, mode, retention, open shards).
    pub fn summary(&self) -> StreamSummary {
        let state = self.state.lock();
        StreamSummary {
            name: self.name.clone(),
            arn: self.arn.clone(),
            status: state.status,
            mode: state.mode,
            created_ms: self.created_ms,
            retention_hours: state.retention_hours,
            open_shard_count: state.open.len(),
        }
    }

    pub(super) fn require_readable(&self, state: &StreamState) -> Result<(), ApiError> {
        match state.status {
            StreamStatus::Active | StreamStatus::Updating => Ok(()),
            _ => Err(not_found(&self.name, &self.config.account_id)),
        }
    }

    pub(super) fn require_active_for_update(&self, state: &StreamState) -> Result<(), ApiError> {
        if state.status != StreamStatus::Active {
            return Err(ApiError::in_use(format!(
                "Stream {} under account {} not ACTIVE, instead in state {}",
                self.name,
                self.config.account_id,
                state.status.as_str()
            )));
        }
        Ok(())
    }

    pub(super) fn shard_not_found(&self, shard: &str) -> ApiError {
        ApiError::not_found(format!(
            "Shard {shard} in stream {} under account {} does not exist",
            self.name, self.config.account_id
        ))
    }

    pub(super) fn throttle_message(&self, shard: u64) -> String {
        format!(
            "Rate exceeded for shard {} in stream {} under account {}.",
            shard_id(shard),
            self.name,
            self.config.account_id
        )
    }

    /// The shard number of a shard id of this stream (visible shards only).
    pub fn shard_index(&self, id: &str) -> Result<u64, ApiError> {
        let state = self.state.lock();
        shared_proto::limits::parse_shard_id(id)
            .filter(|&i| state.shards.get(i as usize).is_some_and(|s| !s.expired))
            .ok_or_else(|| self.shard_not_found(id))
    }

    /// Puts records. `faults` lists shards whose records fail with the given outcome
    /// (`true`: throttled, `false`: internal failure). Returns one outcome per input.
    pub fn put(
        &self,
        inputs: Vec<PutInput>,
        faults: &[(u64, bool)],
    ) -> Result<Vec<PutOutcome>, ApiError> {
        let now = self.clock.now_ms();
        let mut state = self.state.lock();
        state.refresh(now, &self.config);
        self.require_readable(&state)?;
        let limits = &self.config.limits;
        let mut out = Vec::with_capacity(inputs.len());
        for input in inputs {
            let Some(index) = state.route(input.hash_key) else {
                return Err(ApiError::internal("no open shard owns the hash key"));
            };
            if let Some(&(_, throttle)) = faults.iter().find(|(s, _)| *s == index) {
                out.push(if throttle {
                    PutOutcome::Throttled { shard: index }
                } else {
                    PutOutcome::Failed { shard: index }
                });
                continue;
            }
            let shard = &mut state.shards[index as usize];
            if limits.enabled {
                let size = input.size() as u64;
                if !shard.write_records.try_take(1, now) {
                    out.push(PutOutcome::Throttled { shard: index });
                    continue;
                }
                if !shard.write_bytes.try_take(size, now) {
                    // The record was not written: give its record token back.
                    shard.write_records.refund(1);
                    out.push(PutOutcome::Throttled { shard: index });
                    continue;
                }
            }
            let arrival_ms = now.max(shard.last_arrival_ms);
            shard.last_arrival_ms = arrival_ms;
            let pos = shard.next_pos();
            shard.records.push_back(Record {
                buf: input.buf,
                pk_len: input.pk_len,
                arrival_ms,
            });
            out.push(PutOutcome::Stored { shard: index, pos });
        }
        drop(state);
        if out.iter().any(|o| matches!(o, PutOutcome::Stored { .. })) {
            self.appended.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(out)
    }

    /// The message for a throttled put of this shard.
    pub fn put_throttled_message(&self, shard: u64) -> String {
        self.throttle_message(shard)
    }

    /// The position an iterator of this kind starts at.
    pub fn iterator_position(
        &self,
        shard_id_text: &str,
        start: &IteratorStart,
    ) -> Result<(u64, u64), ApiError> {
        let index = self.shard_index(shard_id_text)?;
        let mut state = self.state.lock();
        self.require_readable(&state)?;
        state.trim_shard(index as usize, self.clock.now_ms());
        let shard = &state.shards[index as usize];
        let pos = match start {
            IteratorStart::TrimHorizon => shard.trimmed,
            IteratorStart::Latest => shard.next_pos(),
            IteratorStart::AtSequenceNumber(seq) => self.position_of(seq, index, false)?,
            IteratorStart::AfterSequenceNumber(seq) => self.position_of(seq, index, true)?,
            IteratorStart::AtTimestamp(ts) => {
                shard.trimmed + shard.records.partition_point(|r| r.arrival_ms < *ts) as u64
            }
        };
        let pos = pos.clamp(shard.trimmed, shard.next_pos());
        Ok((index, pos))
    }

    /// Reads up to `limit` records of `shard` from `pos`, applying the read limits.
    pub fn get_records(
        &self,
        shard: u64,
        pos: u64,
        limit: usize,
    ) -> Result<GetRecordsOutput, ApiError> {
        let now = self.clock.now_ms();
        let mut state = self.state.lock();
        state.refresh(now, &self.config);
        self.require_readable(&state)?;
        // Retention holds on read too, not only at the next sweep.
        state.trim_shard(shard as usize, now);
        let limits_on = self.config.limits.enabled;
        let (records, next_pos, millis_behind, end_reached) = {
            let Some(s) = state.shards.get_mut(shard as usize).filter(|s| !s.expired) else {
                return Err(self.shard_not_found(&shard_id(shard)));
            };
            if limits_on {
                if !s.read_calls.try_take(1, now) {
                    return Err(ApiError::throughput_exceeded(format!(
                        "Rate exceeded for shard {} in stream {} under account {}: more than {} GetRecords calls per second.",
                        s.id,
                        self.name,
                        self.config.account_id,
                        self.config.limits.shard_read_calls_per_sec
                    )));
                }
                if !s.read_bytes.has_tokens(now) {
                    return Err(ApiError::throughput_exceeded(format!(
                        "Rate exceeded for shard {} in stream {} under account {}: more than {} bytes read per second.",
                        s.id,
                        self.name,
                        self.config.account_id,
                        self.config.limits.shard_read_bytes_per_sec
                    )));
                }
            }
            let start = pos.max(s.trimmed);
            let skip = (start - s.trimmed) as usize;
            let limit = limit.min(MAX_GET_RECORDS_COUNT);
            let mut bytes = 0usize;
            let mut records = Vec::new();
            for (i, r) in s.records.iter().enumerate().skip(skip) {
                if records.len() >= limit
                    || (bytes + r.size() > MAX_GET_RECORDS_BYTES && !records.is_empty())
                {
                    break;
                }
                bytes += r.size();
                records.push((s.trimmed + i as u64, r.clone()));
            }
            if limits_on {
                s.read_bytes.take_debt(bytes as u64, now);
            }
            let next_pos = start + records.len() as u64;
            let millis_behind = s
                .records
                .get((next_pos - s.trimmed) as usize)
                .map_or(0, |r| now.saturating_sub(r.arrival_ms));
            let end_reached = !s.is_open() && next_pos >= s.next_pos();
            (records, next_pos, millis_behind, end_reached)
        };
        let child_shards = end_reached.then(|| state.children_of(shard));
        Ok(GetRecordsOutput {
            shard,
            records,
            next_pos: (!end_reached).then_some(next_pos),
            millis_behind_latest: millis_behind,
            child_shards,
        })
    }

    /// Shards matching `filter`, in shard-number order.
    pub fn list_shards(&self, filter: &ShardFilter) -> Result<Vec<ShardInfo>, ApiError> {
        let now = self.clock.now_ms();
        let mut state = self.state.lock();
        state.refresh(now, &self.config);
        let horizon = now
            .saturating_sub(u64::from(state.retention_hours) * HOUR_MS)
            .max(self.created_ms);
        let infos = state
            .shards
            .iter()
            .filter(|s| !s.expired)
            .filter(|s| match filter {
                ShardFilter::All | ShardFilter::FromTrimHorizon => true,
                ShardFilter::AtLatest => s.is_open(),
                ShardFilter::AtTrimHorizon => s.open_at(horizon),
                ShardFilter::AfterShardId(after) => s.index > *after,
                // Open at the instant: started at or before it, ended at or after it.
                ShardFilter::AtTimestamp(t) => {
                    let t = (*t).max(self.created_ms);
                    s.created_ms <= t && s.closed_ms.is_none_or(|c| c >= t)
                }
                ShardFilter::FromTimestamp(t) => s.closed_ms.is_none_or(|c| c >= *t),
            })
            .map(|s| self.shard_info(s))
            .collect();
        Ok(infos)
    }

    pub(super) fn shard_info(&self, s: &Shard) -> ShardInfo {
        ShardInfo {
            shard_id: s.id.clone(),
            parent_shard_id: s.parent.map(shard_id),
            adjacent_parent_shard_id: s.adjacent_parent.map(shard_id),
            hash_key_range: s.range,
            starting_sequence_number: self.sequence_number(s.index, 0),
            ending_sequence_number: (!s.is_open())
                .then(|| self.sequence_number(s.index, s.next_pos())),
        }
    }

    /// Current status (after applying due transitions).
    pub fn status(&self) -> StreamStatus {
        let mut state = self.state.lock();
        state.refresh(self.clock.now_ms(), &self.config);
        state.status
    }

    pub(super) fn start_update(&self, state: &mut StreamState, op: Pending) {
        let now = self.clock.now_ms();
        state.status = StreamStatus::Updating;
        state.pending = Some((now + self.config.stream_delay.as_millis() as u64, op));
        state.refresh(now, &self.config);
    }

    /// The shard limit counts open shards only, as AWS's does.
    pub(super) fn check_shard_room(
        &self,
        state: &StreamState,
        extra: usize,
    ) -> Result<(), ApiError> {
        if state.open.len() + extra > self.config.max_shards_per_stream {
            return Err(ApiError::limit_exceeded(format!(
                "Stream {} would exceed its limit of {} shards.",
                self.name, self.config.max_shards_per_stream
            )));
        }
        Ok(())
    }

    pub(super) fn open_shard(&self, state: &StreamState, id: &str) -> Result<u64, ApiError> {
        let index = shared_proto::limits::parse_shard_id(id)
            .filter(|&i| state.shards.get(i as usize).is_some_and(|s| !s.expired))
            .ok_or_else(|| self.shard_not_found(id))?;
        if !state.shards[index as usize].is_open() {
            return Err(ApiError::invalid_argument(format!(
                "Shard {id} in stream {} under account {} has already been merged or split, and thus is not eligible for merging or splitting.",
                self.name, self.config.account_id
            )));
        }
        Ok(index)
    }

    /// `SplitShard`.
    pub fn split_shard(&self, shard: &str, new_starting_hash_key: &str) -> Result<(), ApiError> {
        let mut state = self.state.lock();
        state.refresh(self.clock.now_ms(), &self.config);
        self.require_active_for_update(&state)?;
        self.require_provisioned(&state)?;
        let index = self.open_shard(&state, shard)?;
        let at = shared_proto::parse_hash_key(new_starting_hash_key).map_err(|e| {
            ApiError::invalid_argument(format!(
                "NewStartingHashKey {new_starting_hash_key} is invalid: {e}"
            ))
        })?;
        let range = state.shards[index as usize].range;
        if at <= range.start() || at > range.end() {
            return Err(ApiError::invalid_argument(format!(
                "NewStartingHashKey {at} used in SplitShard() on shard {shard} in stream {} under account {} is not both greater than one plus the shard's StartingHashKey {} and less than the shard's EndingHashKey {}.",
                self.name,
                self.config.account_id,
                range.start(),
                range.end()
            )));
        }
        self.check_shard_room(&state, 1)?;
        self.start_update(&mut state, Pending::Split { shard: index, at });
        Ok(())
    }

    /// `MergeShards`.
    pub fn merge_shards(&self, shard: &str, adjacent: &str) -> Result<(), ApiError> {
        let mut state = self.state.lock();
        state.refresh(self.clock.now_ms(), &self.config);
        self.require_active_for_update(&state)?;
        self.require_provisioned(&state)?;
        let a = self.open_shard(&state, shard)?;
        let b = self.open_shard(&state, adjacent)?;
        let (ra, rb) = (
            state.shards[a as usize].range,
            state.shards[b as usize].range,
        );
        if a == b || !(ra.is_adjacent_before(&rb) || rb.is_adjacent_before(&ra)) {
            return Err(ApiError::invalid_argument(format!(
                "Shards {shard} and {adjacent} in stream {} under account {} are not an adjacent pair of shards eligible for merging",
                self.name, self.config.account_id
            )));
        }
        self.check_shard_room(&state, 0)?;
        self.start_update(
            &mut state,
            Pending::Merge {
                shard: a,
                adjacent: b,
            },
        );
        Ok(())
    }

    /// Resharding is for provisioned streams only; on-demand streams scale themselves.
    pub(super) fn require_provisioned(&self, state: &StreamState) -> Result<(), ApiError> {
        if state.mode == StreamMode::OnDemand {
            return Err(ApiError::validation(format!(
                "Resharding is not supported for stream {} under account {}: it is in ON_DEMAND mode.",
                self.name, self.config.account_id
            )));
        }
        Ok(())
    }

    /// `UpdateShardCount` with uniform scaling.
    pub fn update_shard_count(&self, target: u32) -> Result<u32, ApiError> {
        let mut state = self.state.lock();
        state.refresh(self.clock.now_ms(), &self.config);
        self.require_active_for_update(&state)?;
        self.require_provisioned(&state)?;
        let current = state.open.len() as u32;
        if target == 0 || target > current.saturating_mul(2) || target < current.div_ceil(2) {
            return Err(ApiError::limit_exceeded(format!(
                "UpdateShardCount on stream {} under account {}: target {target} must be between half and double the current {current} open shards.",
                self.name, self.config.account_id
            )));
        }
        self.check_shard_room(&state, target.saturating_sub(current) as usize)?;
        if target != current {
            self.start_update(&mut state, Pending::Scale { target });
        }
        Ok(current)
    }

    /// Sets the retention period (`increase`: must not shrink; else must not grow).
    pub fn set_retention(&self, hours: u32, increase: bool) -> Result<(), ApiError> {
        use shared_proto::limits::{MAX_RETENTION_HOURS, MIN_RETENTION_HOURS};
        let mut state = self.state.lock();
        state.refresh(self.clock.now_ms(), &self.config);
        self.require_active_for_update(&state)?;
        if !(MIN_RETENTION_HOURS..=MAX_RETENTION_HOURS).contains(&hours) {
            return Err(ApiError::invalid_argument(format!(
                "Retention period {hours} hours is outside {MIN_RETENTION_HOURS}..={MAX_RETENTION_HOURS} hours."
            )));
        }
        if increase && hours < state.retention_hours {
            return Err(ApiError::invalid_argument(format!(
                "Requested retention period ({hours} hours) for stream {} can not be shorter than existing retention period ({} hours). Use DecreaseRetentionPeriod API.",
                self.name, state.retention_hours
            )));
        }
        if !increase && hours > state.retention_hours {
            return Err(ApiError::invalid_argument(format!(
                "Requested retention period ({hours} hours) for stream {} can not be longer than existing retention period ({} hours). Use IncreaseRetentionPeriod API.",
                self.name, state.retention_hours
            )));
        }
        state.retention_hours = hours;
        Ok(())
    }

    /// Adds or replaces tags (at most 50 per stream).
    pub fn add_tags(&self, tags: BTreeMap<String, String>) -> Result<(), ApiError> {
        let mut state = self.state.lock();
        let mut merged = state.tags.clone();
        merged.extend(tags);
        if merged.len() > 50 {
            return Err(ApiError::limit_exceeded(format!(
                "Stream {} would have {} tags; at most 50 are allowed.",
                self.name,
                merged.len()
            )));
        }
        state.tags = merged;
        Ok(())
    }

    /// Removes tags.
    pub fn remove_tags(&self, keys: &[String]) {
        let mut state = self.state.lock();
        for k in keys {
            state.tags.remove(k);
        }
    }

    /// All tags, by key.
    pub fn tags(&self) -> BTreeMap<String, String> {
        self.state.lock().tags.clone()
    }

    /// Stored records and stored payload bytes (data + partition keys) over all shards.
    pub fn stored(&self) -> (usize, usize) {
        let state = self.state.lock();
        state.shards.iter().fold((0, 0), |(n, b), s| {
            (
                n + s.records.len(),
                b + s.records.iter().map(Record::size).sum::<usize>(),
            )
        })
    }
}
