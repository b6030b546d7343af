//! The one classification of service and transport errors, shared by the shard-map load at
//! build time, its refreshes, whole `PutRecords` calls and per-record results.

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};

/// What to do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorClass {
    /// Throttling: retry after backoff, and slow the shard down.
    Throttled,
    /// The stream (or a shard of it) was not found: refresh the shard map; only a refresh
    /// that does not find the stream fails records.
    NotFound,
    /// The stream is not ready (`ResourceInUseException` while `CREATING`/`UPDATING`).
    NotReady,
    /// Retrying cannot fix it (access, validation, KMS configuration, credentials).
    Final,
    /// Anything else, unknown codes included: retry until the record's TTL.
    Retryable,
}

/// Classifies an AWS error code (or one of ours: `Timeout`, `Dispatch`, `ResponseError`).
pub(crate) fn classify(code: &str) -> ErrorClass {
    match code {
        "ProvisionedThroughputExceededException"
        | "ThrottlingException"
        | "KMSThrottlingException"
        | "LimitExceededException"
        | "RequestLimitExceeded" => ErrorClass::Throttled,
        "ResourceNotFoundException" => ErrorClass::NotFound,
        "ResourceInUseException" => ErrorClass::NotReady,
        "AccessDeniedException"
        | "ValidationException"
        | "InvalidArgumentException"
        | "KMSDisabledException"
        | "KMSInvalidStateException"
        | "KMSAccessDeniedException"
        | "KMSNotFoundException"
        | "KMSOptInRequired"
        | "UnrecognizedClientException"
        | "MissingAuthenticationTokenException"
        | "IncompleteSignatureException"
        | "InvalidSignatureException"
        | "ClientError" => ErrorClass::Final,
        _ => ErrorClass::Retryable,
    }
}

/// A failed call: its code (AWS's, or `Timeout`/`Dispatch`/`ResponseError` for transport
/// failures) and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallError {
    pub code: String,
    pub message: String,
}

impl CallError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        CallError {
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn class(&self) -> ErrorClass {
        classify(&self.code)
    }

    /// A call that did not answer within `limit`.
    pub fn timeout(operation: &str, limit: std::time::Duration) -> Self {
        CallError::new("Timeout", format!("{operation} took longer than {limit:?}"))
    }

    /// From an SDK error.
    pub fn from_sdk<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
        err: &SdkError<E, R>,
    ) -> Self {
        match err {
            SdkError::ServiceError(_) => CallError::new(
                err.code().unwrap_or("InternalFailure"),
                err.message().unwrap_or(""),
            ),
            SdkError::TimeoutError(_) => CallError::new("Timeout", format!("{err:?}")),
            SdkError::DispatchFailure(_) => CallError::new("Dispatch", format!("{err:?}")),
            SdkError::ResponseError(_) => CallError::new("ResponseError", format!("{err:?}")),
            _ => CallError::new(err.code().unwrap_or("ClientError"), format!("{err:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_fall_into_one_class_each() {
        assert_eq!(
            classify("ProvisionedThroughputExceededException"),
            ErrorClass::Throttled
        );
        assert_eq!(classify("LimitExceededException"), ErrorClass::Throttled);
        assert_eq!(classify("ResourceNotFoundException"), ErrorClass::NotFound);
        assert_eq!(classify("ResourceInUseException"), ErrorClass::NotReady);
        assert_eq!(classify("AccessDeniedException"), ErrorClass::Final);
        assert_eq!(classify("InternalFailure"), ErrorClass::Retryable);
        assert_eq!(classify("Timeout"), ErrorClass::Retryable);
        assert_eq!(classify("SomethingNewFromAws"), ErrorClass::Retryable);
        assert_eq!(classify(""), ErrorClass::Retryable);
    }
}
