//! Errors of the producer.

use crate::record::Attempt;

/// Why `send` did not accept a record. The producer keeps working.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The record breaks a service limit (partition key, size, explicit hash key).
    #[error(transparent)]
    Invalid(#[from] shared_proto::RecordError),
    /// `try_send` only: the outstanding records or bytes limit is reached.
    #[error("the producer is full: outstanding records or bytes at their limit")]
    Full,
    /// The producer was shut down.
    #[error("the producer is shut down")]
    Closed,
}

/// Why a record that was accepted has no successful outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PutError {
    /// The record's TTL ran out before it was stored; every attempt is listed.
    #[error("record expired after {} attempt(s)", attempts.len())]
    Expired {
        /// The attempts made.
        attempts: Vec<Attempt>,
    },
    /// The stream does not exist.
    #[error("stream {stream} not found")]
    StreamNotFound {
        /// The stream name or ARN.
        stream: String,
        /// The attempts made.
        attempts: Vec<Attempt>,
    },
    /// The service rejected the record with an error that retrying cannot fix
    /// (access denied, validation, KMS configuration, …).
    #[error("rejected by the service: {code}: {message}")]
    Rejected {
        /// The AWS error code.
        code: String,
        /// The service's message.
        message: String,
        /// The attempts made.
        attempts: Vec<Attempt>,
    },
    /// `shutdown` reached its deadline first. The record may or may not have been stored.
    #[error("producer shut down before the record had an outcome")]
    ShutdownTimeout {
        /// The attempts made.
        attempts: Vec<Attempt>,
    },
    /// Every producer handle was dropped without `shutdown` before the record was sent.
    #[error("producer dropped before the record was sent")]
    Dropped,
}

impl PutError {
    /// The attempts made for the record.
    pub fn attempts(&self) -> &[Attempt] {
        match self {
            PutError::Expired { attempts }
            | PutError::StreamNotFound { attempts, .. }
            | PutError::Rejected { attempts, .. }
            | PutError::ShutdownTimeout { attempts } => attempts,
            PutError::Dropped => &[],
        }
    }
}

/// Why a producer could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A configuration value is out of range.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The stream does not exist.
    #[error("stream {0} not found")]
    StreamNotFound(String),
    /// The stream did not become `ACTIVE` within `stream_ready_timeout`.
    #[error("stream {0} did not become ACTIVE in time")]
    StreamNotReady(String),
    /// Listing the stream's shards failed with an error that retrying cannot fix.
    #[error("listing the shards of {stream} failed: {code}: {message}")]
    ListShards {
        /// The stream.
        stream: String,
        /// The AWS error code (or the kind of transport failure).
        code: String,
        /// The message.
        message: String,
    },
}
