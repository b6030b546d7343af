//! Coordinator configuration, with the defaults of DESIGN.md section 8.

use crate::error::ConfigError;
use std::time::{Duration, SystemTime};

/// Where processing of a shard without a checkpoint begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum InitialPosition {
    /// At the oldest record kept (leases for closed ancestors too, so parents go first).
    #[default]
    TrimHorizon,
    /// After the newest record (leases for the open shards only).
    Latest,
    /// At a point in time (leases for the shards open at that time).
    AtTimestamp(SystemTime),
}

/// How a worker's lease coordinator behaves. Build from `default()` and the setters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CoordinatorConfig {
    /// A lease whose counter has not moved for this long is expired and may be taken.
    /// Default 10 s.
    pub failover_time: Duration,
    /// How often held leases are renewed. Default `failover_time / 3`.
    pub renew_interval: Option<Duration>,
    /// How often the table is scanned to take and balance leases. Default `failover_time`.
    pub take_interval: Option<Duration>,
    /// Most leases this worker holds. Default unlimited.
    pub max_leases_per_worker: usize,
    /// How often shards are listed to create missing leases and delete finished ones.
    /// Default 60 s.
    pub shard_sync_interval: Duration,
    /// Where shards without a checkpoint begin, for the leases of an empty table. Default
    /// `TrimHorizon`.
    pub initial_position: InitialPosition,
    /// Longest wait for one DynamoDB call. Default 5 s.
    pub call_timeout: Duration,
    /// Attempts per DynamoDB operation on throttling, timeouts and 5xx. Default 5.
    pub call_attempts: usize,
    /// First retry delay (doubling, jittered, at most 1 s). Default 50 ms.
    pub retry_backoff: Duration,
    /// How long to wait for a new lease table to become `ACTIVE`. Default 2 min.
    pub table_ready_timeout: Duration,
    /// Whether the lease table may be created when missing. Default `true`.
    pub create_table: bool,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            failover_time: Duration::from_secs(10),
            renew_interval: None,
            take_interval: None,
            max_leases_per_worker: usize::MAX,
            shard_sync_interval: Duration::from_secs(60),
            initial_position: InitialPosition::TrimHorizon,
            call_timeout: Duration::from_secs(5),
            call_attempts: 5,
            retry_backoff: Duration::from_millis(50),
            table_ready_timeout: Duration::from_secs(120),
            create_table: true,
        }
    }
}

macro_rules! setter {
    ($(#[$doc:meta] $name:ident: $ty:ty),* $(,)?) => {
        $(
            #[$doc]
            pub fn $name(mut self, value: $ty) -> Self {
                self.$name = value;
                self
            }
        )*
    };
}

impl CoordinatorConfig {
    setter! {
        /// Sets [`CoordinatorConfig::failover_time`].
        failover_time: Duration,
        /// Sets [`CoordinatorConfig::max_leases_per_worker`].
        max_leases_per_worker: usize,
        /// Sets [`CoordinatorConfig::shard_sync_interval`].
        shard_sync_interval: Duration,
        /// Sets [`CoordinatorConfig::initial_position`].
        initial_position: InitialPosition,
        /// Sets [`CoordinatorConfig::call_timeout`].
        call_timeout: Duration,
        /// Sets [`CoordinatorConfig::call_attempts`].
        call_attempts: usize,
        /// Sets [`CoordinatorConfig::retry_backoff`].
        retry_backoff: Duration,
        /// Sets [`CoordinatorConfig::table_ready_timeout`].
        table_ready_timeout: Duration,
        /// Sets [`CoordinatorConfig::create_table`].
        create_table: bool,
    }

    /// Sets [`CoordinatorConfig::renew_interval`].
    pub fn renew_interval(mut self, value: Duration) -> Self {
        self.renew_interval = Some(value);
        self
    }

    /// Sets [`CoordinatorConfig::take_interval`].
    pub fn take_interval(mut self, value: Duration) -> Self {
        self.take_interval = Some(value);
        self
    }

    /// The renew interval in force.
    pub fn effective_renew_interval(&self) -> Duration {
        self.renew_interval.unwrap_or(self.failover_time / 3)
    }

    /// The take interval in force.
    pub fn effective_take_interval(&self) -> Duration {
        self.take_interval.unwrap_or(self.failover_time)
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, d) in [
            ("failover_time", self.failover_time),
            ("renew_interval", self.effective_renew_interval()),
            ("take_interval", self.effective_take_interval()),
            ("shard_sync_interval", self.shard_sync_interval),
            ("call_timeout", self.call_timeout),
            ("table_ready_timeout", self.table_ready_timeout),
            ("retry_backoff", self.retry_backoff),
        ] {
            if d.is_zero() {
                return Err(ConfigError::Zero(name));
            }
            if d > MAX_INTERVAL {
                return Err(ConfigError::TooLong(name));
            }
        }
        if self.max_leases_per_worker == 0 {
            return Err(ConfigError::Zero("max_leases_per_worker"));
        }
        if self.call_attempts == 0 {
            return Err(ConfigError::Zero("call_attempts"));
        }
        if self.failover_time <= self.effective_renew_interval() {
            return Err(ConfigError::FailoverNotAboveRenew {
                failover_ms: self.failover_time.as_millis(),
                renew_ms: self.effective_renew_interval().as_millis(),
            });
        }
        Ok(())
    }
}

/// The longest interval or timeout accepted (a year): longer ones could overflow a clock.
pub const MAX_INTERVAL: Duration = Duration::from_secs(365 * 24 * 3600);

/// Checks an application or lease table name as DynamoDB does.
pub(crate) fn validate_table_name(name: &str) -> Result<(), ConfigError> {
    let ok = (3..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::InvalidName(name.to_owned()))
    }
}

/// A worker id: the host name and a random suffix.
pub(crate) fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "worker".to_owned());
    format!("{host}-{:08x}", rand::random::<u32>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_design() {
        let c = CoordinatorConfig::default();
        assert_eq!(c.failover_time, Duration::from_secs(10));
        assert_eq!(c.effective_renew_interval(), Duration::from_secs(10) / 3);
        assert_eq!(c.effective_take_interval(), Duration::from_secs(10));
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn bad_configurations_are_refused() {
        let c = CoordinatorConfig::default()
            .failover_time(Duration::from_secs(1))
            .renew_interval(Duration::from_secs(1));
        assert!(matches!(
            c.validate(),
            Err(ConfigError::FailoverNotAboveRenew { .. })
        ));
        let c = CoordinatorConfig::default().max_leases_per_worker(0);
        assert_eq!(
            c.validate(),
            Err(ConfigError::Zero("max_leases_per_worker"))
        );
        let c = CoordinatorConfig::default().take_interval(Duration::ZERO);
        assert_eq!(c.validate(), Err(ConfigError::Zero("take_interval")));
        let c = CoordinatorConfig::default().shard_sync_interval(Duration::MAX);
        assert_eq!(
            c.validate(),
            Err(ConfigError::TooLong("shard_sync_interval"))
        );
        assert!(validate_table_name("").is_err());
        assert!(validate_table_name("my app").is_err());
        assert!(validate_table_name("orders-consumer").is_ok());
        assert!(default_worker_id().len() > 9);
    }
}
