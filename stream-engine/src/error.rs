//! Errors as the AWS JSON protocols return them: an HTTP status, an error code sent in the
//! `x-amzn-ErrorType` header and the `__type` field, and a message.

use std::fmt;

/// An error answer of the Kinesis or DynamoDB API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status (400 for client errors, 500 for internal failures).
    pub status: u16,
    /// The AWS error code, e.g. `ResourceNotFoundException`.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Extra top-level JSON members of the error body (DynamoDB's `Item` for
    /// `ReturnValuesOnConditionCheckFailure=ALL_OLD`).
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ApiError {
    /// A 400 error with this code and message.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            code,
            message: message.into(),
            extra: None,
        }
    }

    /// `ResourceNotFoundException`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new("ResourceNotFoundException", message)
    }

    /// `ResourceInUseException`.
    pub fn in_use(message: impl Into<String>) -> Self {
        Self::new("ResourceInUseException", message)
    }

    /// `InvalidArgumentException`.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new("InvalidArgumentException", message)
    }

    /// `ValidationException`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new("ValidationException", message)
    }

    /// `LimitExceededException`.
    pub fn limit_exceeded(message: impl Into<String>) -> Self {
        Self::new("LimitExceededException", message)
    }

    /// `ProvisionedThroughputExceededException`.
    pub fn throughput_exceeded(message: impl Into<String>) -> Self {
        Self::new("ProvisionedThroughputExceededException", message)
    }

    /// `ExpiredIteratorException`.
    pub fn expired_iterator(message: impl Into<String>) -> Self {
        Self::new("ExpiredIteratorException", message)
    }

    /// `SerializationException` (malformed JSON or base64).
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new("SerializationException", message)
    }

    /// A 500 `InternalFailure`.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: 500,
            code: "InternalFailure",
            message: message.into(),
            extra: None,
        }
    }

    /// The JSON body of this error.
    pub fn body(&self) -> Vec<u8> {
        let mut body = self.extra.clone().unwrap_or_default();
        body.insert("__type".into(), self.code.into());
        body.insert("message".into(), self.message.clone().into());
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}
