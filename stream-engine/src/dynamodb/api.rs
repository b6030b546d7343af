//! The DynamoDB JSON API (awsJson1_0).

use crate::error::ApiError;

/// The `X-Amz-Target` prefix of DynamoDB operations.
pub const TARGET_PREFIX: &str = "DynamoDB_20120810";

/// The DynamoDB tables of the engine.
#[derive(Debug, Default)]
pub struct DynamoCore {}

/// Serves one DynamoDB operation.
pub fn handle(_core: &DynamoCore, operation: &str, _body: &[u8]) -> Result<Vec<u8>, ApiError> {
    Err(ApiError::new(
        "UnknownOperationException",
        format!("Unknown operation DynamoDB_20120810.{operation}"),
    ))
}
