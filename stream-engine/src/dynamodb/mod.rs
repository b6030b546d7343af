//! DynamoDB (the lease-table subset).

pub mod api;
