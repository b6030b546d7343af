//! The errors of the lease layer.

use crate::lease::LeaseKey;

/// A lease item that is not in the shape the lease table schema gives it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lease item {key}: attribute {attribute}: {reason}")]
pub struct BadLeaseItem {
    /// The item's `leaseKey`, or `<no leaseKey>`.
    pub key: String,
    /// The attribute at fault.
    pub attribute: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// Why a lease operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// This worker no longer holds the lease: another worker took it, or it could not be
    /// renewed in time. Nothing was written.
    #[error("lease {key} is lost: another worker owns it or it was not renewed in time")]
    LeaseLost {
        /// The lease.
        key: LeaseKey,
    },
    /// The lease table does not exist and may not be created.
    #[error("lease table {table} does not exist")]
    TableNotFound {
        /// The table name.
        table: String,
    },
    /// The table exists but cannot be a lease table (wrong key schema), or never became
    /// `ACTIVE`.
    #[error("table {table} cannot serve as a lease table: {reason}")]
    InvalidTable {
        /// The table name.
        table: String,
        /// What is wrong with it.
        reason: String,
    },
    /// DynamoDB kept throttling after every retry.
    #[error("DynamoDB {operation} was throttled on every attempt")]
    Throttled {
        /// The operation.
        operation: &'static str,
    },
    /// A call did not answer in time on every attempt.
    #[error("DynamoDB {operation} timed out")]
    Timeout {
        /// The operation.
        operation: &'static str,
    },
    /// Any other DynamoDB or Kinesis failure.
    #[error("{operation} failed: {message}")]
    Service {
        /// The operation.
        operation: &'static str,
        /// The error code, if the service gave one.
        code: Option<String>,
        /// What the service or the connection said.
        message: String,
    },
    /// A lease item could not be read.
    #[error(transparent)]
    BadItem(#[from] BadLeaseItem),
    /// The coordinator is shut down.
    #[error("the lease coordinator is shut down")]
    ShutDown,
}

impl LeaseError {
    /// Whether retrying the same call may succeed (throttling, timeouts, 5xx, connections).
    pub fn is_transient(&self) -> bool {
        match self {
            LeaseError::Throttled { .. } | LeaseError::Timeout { .. } => true,
            LeaseError::Service { code, .. } => code.as_deref().is_none_or(is_transient_code),
            _ => false,
        }
    }
}

/// Error codes worth retrying.
pub(crate) fn is_transient_code(code: &str) -> bool {
    is_throttle_code(code)
        || matches!(
            code,
            "InternalServerError"
                | "InternalFailure"
                | "ServiceUnavailable"
                | "TransactionConflictException"
        )
}

/// Whether an error code means throttling.
pub(crate) fn is_throttle_code(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "LimitExceededException"
    )
}

/// Invalid coordinator configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The application (lease table) name is empty or not a valid table name.
    #[error("invalid application or lease table name {0:?}: 3 to 255 of a-z A-Z 0-9 _ . -")]
    InvalidName(String),
    /// The failover time must be longer than the renew interval.
    #[error("failover time {failover_ms} ms must be greater than the renew interval {renew_ms} ms")]
    FailoverNotAboveRenew {
        /// The failover time.
        failover_ms: u128,
        /// The renew interval.
        renew_ms: u128,
    },
    /// A limit or interval is zero.
    #[error("{0} must not be zero")]
    Zero(&'static str),
    /// An interval or timeout is longer than a year.
    #[error("{0} must not be longer than a year")]
    TooLong(&'static str),
    /// The worker id is empty.
    #[error("the worker id must not be empty")]
    EmptyWorkerId,
}

/// Why a coordinator could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The lease table could not be made ready, or the first round failed.
    #[error(transparent)]
    Lease(#[from] LeaseError),
}
