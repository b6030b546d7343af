//! DynamoDB, the subset a lease table needs: tables, items, expressions.

pub mod api;
pub mod expr;
pub mod legacy;
pub mod value;
