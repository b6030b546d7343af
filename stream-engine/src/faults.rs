//! Fault injection: throttle or fail the next N calls of an operation (optionally for one
//! shard), add latency, or pause the whole engine (an outage).

use crate::error::ApiError;
use parking_lot::Mutex;
use serde::Deserialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// What an injected fault does to a matching call.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FaultKind {
    /// Answer `ProvisionedThroughputExceededException` (per record for `PutRecords` when the
    /// rule names a shard).
    Throttle,
    /// Answer a 500 `InternalFailure` (per record `InternalFailure` for `PutRecords` when the
    /// rule names a shard).
    InternalError,
    /// Answer this error code with HTTP 400 (e.g. `ThrottlingException`).
    Error {
        /// The AWS error code to return.
        code: String,
    },
    /// Delay the call, then serve it normally.
    Latency {
        /// The added delay in milliseconds.
        ms: u64,
    },
    /// Serve the call at once, then hold its response: a client that times out meanwhile
    /// never learns that its write was applied.
    ResponseDelay {
        /// The delay of the response in milliseconds.
        ms: u64,
    },
}

impl FaultKind {
    /// The error a call-level fault of this kind answers with (`None` for latency).
    pub fn to_error(&self, operation: &str) -> Option<ApiError> {
        match self {
            FaultKind::Throttle => Some(ApiError::throughput_exceeded(format!(
                "Rate exceeded for {operation} (injected fault)"
            ))),
            FaultKind::InternalError => Some(ApiError::internal(format!(
                "Internal service failure in {operation} (injected fault)"
            ))),
            FaultKind::Error { code } => {
                // Codes are few and static in practice; leak-free by matching known ones.
                let code: &'static str = match code.as_str() {
                    "ThrottlingException" => "ThrottlingException",
                    "ProvisionedThroughputExceededException" => {
                        "ProvisionedThroughputExceededException"
                    }
                    "RequestLimitExceeded" => "RequestLimitExceeded",
                    "LimitExceededException" => "LimitExceededException",
                    "AccessDeniedException" => "AccessDeniedException",
                    "KMSThrottlingException" => "KMSThrottlingException",
                    "KMSAccessDeniedException" => "KMSAccessDeniedException",
                    "ServiceUnavailable" => "ServiceUnavailable",
                    "ResourceNotFoundException" => "ResourceNotFoundException",
                    "ValidationException" => "ValidationException",
                    _ => "InternalFailure",
                };
                Some(ApiError::new(
                    code,
                    format!("{code} in {operation} (injected fault)"),
                ))
            }
            FaultKind::Latency { .. } | FaultKind::ResponseDelay { .. } => None,
        }
    }
}

/// One fault-injection rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FaultRule {
    /// Operation name as in `X-Amz-Target` (`PutRecords`, `GetRecords`, `UpdateItem`, …),
    /// optionally qualified (`Kinesis.PutRecords`, `DynamoDB.PutItem`), or `*` for all.
    pub operation: String,
    /// Only calls (or, for `PutRecords`, records) of this shard; `None`: every call.
    #[serde(default)]
    pub shard_id: Option<String>,
    /// What the fault does.
    pub kind: FaultKind,
    /// How many matching calls it affects; `None`: until cleared.
    #[serde(default)]
    pub count: Option<u32>,
}

impl FaultRule {
    fn matches(&self, service: &str, operation: &str, shard: Option<&str>) -> bool {
        let op_ok = self.operation == "*"
            || self.operation == operation
            || self
                .operation
                .split_once('.')
                .is_some_and(|(s, o)| s == service && o == operation);
        op_ok && self.shard_id.as_deref() == shard
    }
}

/// How the engine behaves during an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OutageMode {
    /// Requests are accepted but not answered until the outage ends (default).
    #[default]
    Hang,
    /// Connections are closed without an answer (the client sees a connection error).
    Refuse,
}

#[derive(Debug)]
struct ActiveRule {
    id: u64,
    rule: FaultRule,
    remaining: Option<u32>,
}

/// The engine's fault registry; reach it through [`crate::Engine::faults`].
#[derive(Debug)]
pub struct Faults {
    rules: Mutex<Vec<ActiveRule>>,
    next_id: AtomicU64,
    outage: watch::Sender<Option<(Instant, OutageMode)>>,
    injected: AtomicU64,
    held: AtomicU64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            rules: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            outage: watch::channel(None).0,
            injected: AtomicU64::new(0),
            held: AtomicU64::new(0),
        }
    }
}

/// What call-level rules do to one call.
#[derive(Debug, Default, Clone)]
pub(crate) struct CallFaults {
    /// Delay the call by this many milliseconds.
    pub latency_ms: Option<u64>,
    /// Then answer with this fault instead (if it is an error kind), or hold the response
    /// ([`FaultKind::ResponseDelay`]).
    pub error: Option<FaultKind>,
}

/// A shard-scoped rule seen by an operation; see [`Faults::with_shard_rules`].
#[derive(Debug, Clone)]
pub(crate) struct ShardFault {
    pub id: u64,
    pub shard_id: String,
    pub kind: FaultKind,
}

impl Faults {
    /// Adds a rule.
    pub fn inject(&self, rule: FaultRule) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let remaining = rule.count;
        self.rules.lock().push(ActiveRule {
            id,
            rule,
            remaining,
        });
    }

    /// Throttles the next `count` calls of `operation`.
    pub fn throttle_next(&self, operation: &str, count: u32) {
        self.inject(FaultRule {
            operation: operation.into(),
            shard_id: None,
            kind: FaultKind::Throttle,
            count: Some(count),
        });
    }

    /// Throttles the next `count` calls of `operation` that concern `shard_id` (for
    /// `PutRecords`: the records routed to that shard, per record).
    pub fn throttle_shard_next(&self, operation: &str, shard_id: &str, count: u32) {
        self.inject(FaultRule {
            operation: operation.into(),
            shard_id: Some(shard_id.into()),
            kind: FaultKind::Throttle,
            count: Some(count),
        });
    }

    /// Fails the next `count` calls of `operation` with a 500 `InternalFailure`.
    pub fn fail_next(&self, operation: &str, count: u32) {
        self.inject(FaultRule {
            operation: operation.into(),
            shard_id: None,
            kind: FaultKind::InternalError,
            count: Some(count),
        });
    }

    /// Answers the next `count` calls of `operation` with the error `code` (HTTP 400).
    pub fn error_next(&self, operation: &str, code: &str, count: u32) {
        self.inject(FaultRule {
            operation: operation.into(),
            shard_id: None,
            kind: FaultKind::Error { code: code.into() },
            count: Some(count),
        });
    }

    /// Drops the connection of the next `count` subscription events (of any
    /// `SubscribeToShard` stream) instead of sending them: the client sees the stream break.
    pub fn drop_subscription_events_next(&self, count: u32) {
        self.fail_next("SubscribeToShardEvent", count);
    }

    /// Sends an exception message with `code` instead of the next `count` subscription
    /// events; each stream that gets one ends.
    pub fn error_subscription_events_next(&self, code: &str, count: u32) {
        self.error_next("SubscribeToShardEvent", code, count);
    }

    /// Serves the next `count` calls of `operation`, then holds each response for `delay`:
    /// a client whose timeout is shorter sees a failure although the call took effect.
    pub fn delay_response_next(&self, operation: &str, delay: Duration, count: u32) {
        self.inject(FaultRule {
            operation: operation.into(),
            shard_id: None,
            kind: FaultKind::ResponseDelay {
                ms: delay.as_millis() as u64,
            },
            count: Some(count),
        });
    }

    /// Delays calls of `operation` (`*` for all) by `latency`, for the next `count` calls or
    /// until cleared.
    pub fn add_latency(&self, operation: &str, latency: Duration, count: Option<u32>) {
        self.inject(FaultRule {
            operation: operation.into(),
            shard_id: None,
            kind: FaultKind::Latency {
                ms: latency.as_millis() as u64,
            },
            count,
        });
    }

    /// Starts an outage of `duration`: every call hangs (or its connection is closed) until it
    /// ends.
    pub fn pause(&self, duration: Duration, mode: OutageMode) {
        self.outage
            .send_replace(Some((Instant::now() + duration, mode)));
    }

    /// Ends an outage at once.
    pub fn resume(&self) {
        self.outage.send_replace(None);
    }

    /// Removes every rule and ends any outage.
    pub fn clear(&self) {
        self.rules.lock().clear();
        self.resume();
    }

    /// How many faults (errors, latencies, per-record failures) have been injected so far.
    pub fn injected_count(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// How many requests an outage is holding right now (in [`OutageMode::Hang`]).
    pub fn held_requests(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// The outage in force, if any: its mode.
    pub(crate) fn outage_mode(&self) -> Option<OutageMode> {
        let current = *self.outage.borrow();
        match current {
            Some((until, mode)) if Instant::now() < until => Some(mode),
            _ => None,
        }
    }

    /// Waits until no outage is in force.
    pub(crate) async fn wait_outage_over(&self) {
        struct Held<'a>(&'a AtomicU64);
        impl Drop for Held<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.held.fetch_add(1, Ordering::Relaxed);
        let _held = Held(&self.held);
        self.wait_inner().await;
    }

    async fn wait_inner(&self) {
        let mut rx = self.outage.subscribe();
        loop {
            let current = *rx.borrow_and_update();
            match current {
                Some((until, _)) if Instant::now() < until => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => {}
                        changed = rx.changed() => { if changed.is_err() { return; } }
                    }
                }
                _ => return,
            }
        }
    }

    /// Takes, in one step, the first latency rule and the first other rule matching this
    /// call (consuming one use of each), so a latency rule never hides a throttle or error
    /// rule injected after it, and two concurrent calls never both use a `count = 1` rule.
    pub(crate) fn take_call(&self, service: &str, operation: &str) -> CallFaults {
        let mut rules = self.rules.lock();
        let mut out = CallFaults::default();
        if rules.is_empty() {
            return out;
        }
        let latency = rules.iter().position(|r| {
            matches!(r.rule.kind, FaultKind::Latency { .. })
                && r.rule.matches(service, operation, None)
        });
        if let Some(pos) = latency {
            if let FaultKind::Latency { ms } = rules[pos].rule.kind {
                out.latency_ms = Some(ms);
            }
            Self::use_once(&mut rules, pos);
            self.injected.fetch_add(1, Ordering::Relaxed);
        }
        let other = rules.iter().position(|r| {
            !matches!(r.rule.kind, FaultKind::Latency { .. })
                && r.rule.matches(service, operation, None)
        });
        if let Some(pos) = other {
            out.error = Some(rules[pos].rule.kind.clone());
            Self::use_once(&mut rules, pos);
            self.injected.fetch_add(1, Ordering::Relaxed);
        }
        out
    }

    /// Runs `f` with the shard-scoped rules for `operation` and consumes one use of each rule
    /// `f` reports as hit, all under one lock: two concurrent calls never both use a
    /// `count = 1` rule. Without any rule, `f` runs without the lock.
    pub(crate) fn with_shard_rules<T>(
        &self,
        service: &str,
        operation: &str,
        f: impl FnOnce(&[ShardFault]) -> (T, Vec<u64>),
    ) -> T {
        let mut rules = self.rules.lock();
        let faults: Vec<ShardFault> = rules
            .iter()
            .filter_map(|r| {
                let shard = r.rule.shard_id.as_deref()?;
                r.rule
                    .matches(service, operation, Some(shard))
                    .then(|| ShardFault {
                        id: r.id,
                        shard_id: shard.to_owned(),
                        kind: r.rule.kind.clone(),
                    })
            })
            .collect();
        if faults.is_empty() {
            drop(rules);
            return f(&[]).0;
        }
        let (out, hit) = f(&faults);
        for id in hit {
            if let Some(pos) = rules.iter().position(|r| r.id == id) {
                Self::use_once(&mut rules, pos);
            }
            self.injected.fetch_add(1, Ordering::Relaxed);
        }
        out
    }

    /// Takes the first rule matching this call of this shard.
    pub(crate) fn take_scoped(
        &self,
        service: &str,
        operation: &str,
        shard: Option<&str>,
    ) -> Option<FaultKind> {
        let mut rules = self.rules.lock();
        if rules.is_empty() {
            return None;
        }
        let pos = rules
            .iter()
            .position(|r| r.rule.matches(service, operation, shard))?;
        let kind = rules[pos].rule.kind.clone();
        Self::use_once(&mut rules, pos);
        self.injected.fetch_add(1, Ordering::Relaxed);
        Some(kind)
    }

    fn use_once(rules: &mut Vec<ActiveRule>, pos: usize) {
        if let Some(remaining) = rules[pos].remaining.as_mut() {
            *remaining = remaining.saturating_sub(1);
            if *remaining == 0 {
                rules.remove(pos);
            }
        }
    }
}
