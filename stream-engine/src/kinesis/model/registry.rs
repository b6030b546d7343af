//! The registry of streams: create, find, list, delete.

use super::*;

impl KinesisCore {
    /// An engine core with no streams.
    pub fn new(config: Arc<EngineConfig>, clock: Arc<Clock>) -> Self {
        KinesisCore {
            config,
            clock,
            streams: RwLock::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            secret: rand::random(),
            control: crate::kinesis::control::ControlLimits::default(),
        }
    }

    /// Gives back the rolling-day slot of an `UpdateShardCount` that changed nothing.
    pub(crate) fn unscaled(&self, stream: &str) {
        if self.config.limits.enabled {
            self.control.unscaled(stream);
        }
    }

    /// Counts one control-plane call against its documented rate.
    pub(crate) fn control(
        &self,
        call: crate::kinesis::control::Control<'_>,
    ) -> Result<(), ApiError> {
        self.control
            .check(&self.config.limits, call, self.clock.now_ms())
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The ARN of a stream name.
    pub fn arn_of(&self, name: &str) -> String {
        format!(
            "arn:aws:kinesis:{}:{}:stream/{name}",
            self.config.region, self.config.account_id
        )
    }

    /// The stream name in an ARN of this engine's region and account.
    pub fn name_from_arn(&self, arn: &str) -> Result<String, ApiError> {
        let prefix = format!(
            "arn:aws:kinesis:{}:{}:stream/",
            self.config.region, self.config.account_id
        );
        match arn.strip_prefix(&prefix) {
            Some(name) if !name.is_empty() => Ok(name.to_owned()),
            _ => Err(ApiError::invalid_argument(format!(
                "StreamARN {arn} is not a stream ARN of region {} and account {}",
                self.config.region, self.config.account_id
            ))),
        }
    }

    /// Creates a stream with `shard_count` shards (4 for on-demand when not given).
    pub fn create_stream(
        &self,
        name: &str,
        shard_count: Option<u32>,
        mode: StreamMode,
    ) -> Result<(), ApiError> {
        let count = match (mode, shard_count) {
            (_, Some(n)) => n,
            (StreamMode::OnDemand, None) => 4,
            (StreamMode::Provisioned, None) => {
                return Err(ApiError::invalid_argument(
                    "ShardCount is required for a PROVISIONED stream",
                ));
            }
        };
        if count == 0 {
            return Err(ApiError::validation(
                "1 validation error detected: Value '0' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1",
            ));
        }
        if count as usize > self.config.max_shards_per_stream {
            return Err(ApiError::limit_exceeded(format!(
                "This request would exceed the shard limit for the account {}. Requested {count}, limit {}.",
                self.config.account_id, self.config.max_shards_per_stream
            )));
        }
        let now = self.clock.now_ms();
        let mut streams = self.streams.write();
        if let Some(existing) = streams.get(name)
            && !existing.refresh_is_deleted()
        {
            return Err(ApiError::in_use(format!(
                "Stream {name} under account {} already exists.",
                self.config.account_id
            )));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let shards: Vec<Shard> = HashKeyRange::split_evenly(count)
            .into_iter()
            .enumerate()
            .map(|(i, range)| Shard::new(i as u64, range, now, &self.config.limits))
            .collect();
        let open = (0..shards.len() as u64).collect();
        let mut state = StreamState {
            status: StreamStatus::Creating,
            pending: Some((
                now + self.config.stream_delay.as_millis() as u64,
                Pending::Create,
            )),
            mode,
            retention_hours: shared_proto::limits::DEFAULT_RETENTION_HOURS,
            shards,
            open,
            tags: BTreeMap::new(),
            deleted: false,
        };
        state.refresh(now, &self.config);
        let handle = StreamHandle {
            name: name.to_owned(),
            arn: self.arn_of(name),
            id,
            // 20 digits: 49 then the stream's id, so sequence numbers have 56 digits.
            prefix: 49_000_000_000_000_000_000u128 + u128::from(id),
            created_ms: now,
            state: Mutex::new(state),
            config: self.config.clone(),
            clock: self.clock.clone(),
            secret: self.secret,
            consumers: Mutex::new(Vec::new()),
            appended: tokio::sync::watch::channel(0).0,
        };
        streams.insert(name.to_owned(), Arc::new(handle));
        Ok(())
    }

    /// Looks a stream up (applying any due status transition).
    pub fn stream(&self, name: &str) -> Result<Arc<StreamHandle>, ApiError> {
        let handle = self
            .streams
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| not_found(name, &self.config.account_id))?;
        if handle.refresh_is_deleted() {
            let mut streams = self.streams.write();
            if streams.get(name).is_some_and(|h| Arc::ptr_eq(h, &handle)) {
                streams.remove(name);
            }
            return Err(not_found(name, &self.config.account_id));
        }
        Ok(handle)
    }

    /// Starts deleting a stream.
    pub fn delete_stream(&self, name: &str) -> Result<(), ApiError> {
        let handle = self.stream(name)?;
        let now = self.clock.now_ms();
        let deleted = {
            let mut state = handle.state.lock();
            state.status = StreamStatus::Deleting;
            state.pending = Some((
                now + self.config.stream_delay.as_millis() as u64,
                Pending::Delete,
            ));
            state.refresh(now, &self.config);
            state.deleted
        };
        if deleted {
            let mut streams = self.streams.write();
            if streams.get(name).is_some_and(|h| Arc::ptr_eq(h, &handle)) {
                streams.remove(name);
            }
        }
        Ok(())
    }

    /// Every stream, in name order.
    pub fn list_streams(&self) -> Vec<StreamSummary> {
        let handles: Vec<_> = self.streams.read().values().cloned().collect();
        handles
            .into_iter()
            .filter(|h| !h.refresh_is_deleted())
            .map(|h| h.summary())
            .collect()
    }

    /// Finds the stream of an iterator and checks the iterator.
    pub fn resolve_iterator(
        &self,
        iterator: &str,
    ) -> Result<(Arc<StreamHandle>, u64, u64), ApiError> {
        let parsed = ParsedIterator::decode(iterator, &self.secret)?;
        let handle = self.stream(&parsed.stream_name)?;
        if handle.id != parsed.stream_id {
            return Err(ApiError::invalid_argument(
                "Invalid ShardIterator: it belongs to a stream that no longer exists.",
            ));
        }
        let now = self.clock.now_ms();
        let ttl = self.config.iterator_ttl.as_millis() as u64;
        if now.saturating_sub(parsed.issued_ms) > ttl {
            return Err(ApiError::expired_iterator(format!(
                "Iterator expired. The iterator was created at time {} while right now it is {} which is further in the future than the tolerated delay of {ttl} milliseconds.",
                parsed.issued_ms, now
            )));
        }
        Ok((handle, parsed.shard, parsed.pos))
    }

    /// Removes records and closed shards older than each stream's retention period.
    pub fn enforce_retention(&self) {
        let now = self.clock.now_ms();
        let handles: Vec<_> = self.streams.read().values().cloned().collect();
        for handle in handles {
            handle.state.lock().enforce_retention(now);
        }
    }
}
