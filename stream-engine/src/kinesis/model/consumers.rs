//! Registered stream consumers (enhanced fan-out) and the reads of their subscriptions.

use super::*;
use std::time::Instant;

/// Most consumers registered to one stream.
pub const MAX_CONSUMERS_PER_STREAM: usize = 20;

/// A consumer's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerStatus {
    /// Registered, not yet usable.
    Creating,
    /// Ready for `SubscribeToShard`.
    Active,
}

impl ConsumerStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerStatus::Creating => "CREATING",
            ConsumerStatus::Active => "ACTIVE",
        }
    }
}

/// What `DescribeStreamConsumer` and `ListStreamConsumers` show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerInfo {
    /// The consumer's name.
    pub name: String,
    /// `arn:aws:kinesis:<region>:<account>:stream/<stream>/consumer/<name>:<epoch secs>`.
    pub arn: String,
    /// Its status now.
    pub status: ConsumerStatus,
    /// Registration time, epoch ms.
    pub created_ms: u64,
}

#[derive(Debug)]
pub(super) struct Consumer {
    name: String,
    arn: String,
    created_ms: u64,
    ready_ms: u64,
    /// Per shard: when the last subscription started (real time) and its number.
    subscriptions: BTreeMap<u64, (Instant, u64)>,
}

/// Subscription numbers, unique in the process (a re-registered consumer's new subscriptions
/// never look like an old one's).
static NEXT_SUBSCRIPTION: AtomicU64 = AtomicU64::new(1);

/// One read of a subscription.
#[derive(Debug)]
pub struct SubscriptionRead {
    /// Positions and records read.
    pub records: Vec<(u64, Record)>,
    /// Where the next read starts.
    pub next_pos: u64,
    /// How far the read is behind the newest record, in ms.
    pub millis_behind_latest: u64,
    /// `Some` once a closed shard was read to its end.
    pub child_shards: Option<Vec<ChildShard>>,
}

fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

impl StreamHandle {
    fn consumer_info(&self, c: &Consumer) -> ConsumerInfo {
        ConsumerInfo {
            name: c.name.clone(),
            arn: c.arn.clone(),
            status: if self.clock.now_ms() >= c.ready_ms {
                ConsumerStatus::Active
            } else {
                ConsumerStatus::Creating
            },
            created_ms: c.created_ms,
        }
    }

    fn consumer_not_found(&self, what: &str) -> ApiError {
        ApiError::not_found(format!(
            "Consumer {what} under stream {} under account {} not found.",
            self.name, self.config.account_id
        ))
    }

    /// Registers consumer `name` (`CREATING` for the engine's consumer delay, then `ACTIVE`).
    pub fn register_consumer(&self, name: &str) -> Result<ConsumerInfo, ApiError> {
        if !valid_name(name) {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{name}' at 'consumerName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and have length between 1 and 128"
            )));
        }
        {
            let state = self.state.lock();
            self.require_readable(&state)?;
        }
        let mut consumers = self.consumers.lock();
        if consumers.iter().any(|c| c.name == name) {
            return Err(ApiError::in_use(format!(
                "Consumer {name} under stream {} under account {} already exists.",
                self.name, self.config.account_id
            )));
        }
        if consumers.len() >= MAX_CONSUMERS_PER_STREAM {
            return Err(ApiError::limit_exceeded(format!(
                "Stream {} under account {} has reached its limit of {MAX_CONSUMERS_PER_STREAM} consumers.",
                self.name, self.config.account_id
            )));
        }
        let now = self.clock.now_ms();
        let consumer = Consumer {
            name: name.to_owned(),
            arn: format!("{}/consumer/{name}:{}", self.arn, now / 1000),
            created_ms: now,
            ready_ms: now + self.config.consumer_delay.as_millis() as u64,
            subscriptions: BTreeMap::new(),
        };
        let info = self.consumer_info(&consumer);
        consumers.push(consumer);
        Ok(info)
    }

    /// The consumer with this name, or with this ARN.
    pub fn describe_consumer(
        &self,
        name: Option<&str>,
        arn: Option<&str>,
    ) -> Result<ConsumerInfo, ApiError> {
        let consumers = self.consumers.lock();
        consumers
            .iter()
            .find(|c| name.is_none_or(|n| c.name == n) && arn.is_none_or(|a| c.arn == a))
            .map(|c| self.consumer_info(c))
            .ok_or_else(|| self.consumer_not_found(name.or(arn).unwrap_or("")))
    }

    /// Every registered consumer, in registration order.
    pub fn list_consumers(&self) -> Vec<ConsumerInfo> {
        let consumers = self.consumers.lock();
        consumers.iter().map(|c| self.consumer_info(c)).collect()
    }

    /// Deregisters a consumer; its subscriptions end.
    pub fn deregister_consumer(
        &self,
        name: Option<&str>,
        arn: Option<&str>,
    ) -> Result<(), ApiError> {
        let mut consumers = self.consumers.lock();
        let before = consumers.len();
        consumers.retain(|c| !(name.is_none_or(|n| c.name == n) && arn.is_none_or(|a| c.arn == a)));
        if consumers.len() == before {
            return Err(self.consumer_not_found(name.or(arn).unwrap_or("")));
        }
        drop(consumers);
        self.appended.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Starts a subscription of consumer `arn` to `shard`: refused with
    /// `ResourceInUseException` while the consumer is not `ACTIVE`, or within `window` of the
    /// last subscription to the same shard. Returns the subscription's number; an older
    /// subscription of the pair ends (see [`subscription_ended`](Self::subscription_ended)).
    pub fn begin_subscription(
        &self,
        arn: &str,
        shard: u64,
        window: std::time::Duration,
    ) -> Result<u64, ApiError> {
        let now = self.clock.now_ms();
        let mut consumers = self.consumers.lock();
        let c = consumers
            .iter_mut()
            .find(|c| c.arn == arn)
            .ok_or_else(|| self.consumer_not_found(arn))?;
        if now < c.ready_ms {
            return Err(ApiError::in_use(format!(
                "Consumer {arn} is not ACTIVE, instead in state CREATING."
            )));
        }
        if let Some((at, _)) = c.subscriptions.get(&shard)
            && at.elapsed() < window
        {
            return Err(ApiError::in_use(format!(
                "Another active subscription exists for consumer {arn} and shard {} (or one started less than {} s ago).",
                shard_id(shard),
                window.as_secs()
            )));
        }
        let n = NEXT_SUBSCRIPTION.fetch_add(1, Ordering::Relaxed);
        c.subscriptions.insert(shard, (Instant::now(), n));
        drop(consumers);
        // Wakes the older subscription of the pair so it ends.
        self.appended.send_modify(|x| *x += 1);
        Ok(n)
    }

    /// Why subscription `n` of consumer `arn` to `shard` must end, if it must: a later
    /// subscription replaced it (`ResourceInUseException`) or the consumer is gone
    /// (`ResourceNotFoundException`).
    pub fn subscription_ended(&self, arn: &str, shard: u64, n: u64) -> Option<ApiError> {
        let consumers = self.consumers.lock();
        match consumers.iter().find(|c| c.arn == arn) {
            None => Some(self.consumer_not_found(arn)),
            Some(c) if c.subscriptions.get(&shard).is_some_and(|(_, m)| *m == n) => None,
            Some(_) => Some(ApiError::in_use(format!(
                "Another subscription of consumer {arn} to shard {} replaced this one.",
                shard_id(shard)
            ))),
        }
    }

    /// A receiver that changes whenever records are appended or consumers change.
    pub fn appended(&self) -> tokio::sync::watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// The sequence number to continue after, for a subscription now at `pos`: the record
    /// before `pos`, or (at position 0) a number below every record's.
    pub fn continuation(&self, shard: u64, pos: u64) -> String {
        match pos.checked_sub(1) {
            Some(p) => self.sequence_number(shard, p),
            None => format!("{:020}{shard:012}{:024}", self.prefix, 0),
        }
    }

    /// Reads at most `max_bytes` (at least one record) of `shard` from `pos` for a
    /// subscription: no `GetRecords` call or read limit applies (a consumer has its own
    /// throughput).
    pub fn read_for_subscription(
        &self,
        shard: u64,
        pos: u64,
        max_bytes: usize,
    ) -> Result<SubscriptionRead, ApiError> {
        let now = self.clock.now_ms();
        let mut state = self.state.lock();
        state.refresh(now, &self.config);
        self.require_readable(&state)?;
        state.trim_shard(shard as usize, now);
        let Some(s) = state.shards.get(shard as usize).filter(|s| !s.expired) else {
            return Err(self.shard_not_found(&shard_id(shard)));
        };
        let start = pos.max(s.trimmed);
        let mut bytes = 0usize;
        let mut records = Vec::new();
        for (i, r) in s
            .records
            .iter()
            .enumerate()
            .skip((start - s.trimmed) as usize)
        {
            if records.len() >= MAX_GET_RECORDS_COUNT
                || (bytes + r.size() > max_bytes && !records.is_empty())
            {
                break;
            }
            bytes += r.size();
            records.push((s.trimmed + i as u64, r.clone()));
        }
        let next_pos = start + records.len() as u64;
        let millis_behind_latest = s
            .records
            .get((next_pos - s.trimmed) as usize)
            .map_or(0, |r| now.saturating_sub(r.arrival_ms));
        let end_reached = !s.is_open() && next_pos >= s.next_pos();
        let child_shards = end_reached.then(|| state.children_of(shard));
        Ok(SubscriptionRead {
            records,
            next_pos,
            millis_behind_latest,
            child_shards,
        })
    }
}
