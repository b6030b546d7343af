//! DynamoDB, the subset a lease table needs: tables, items, expressions.

pub mod api;
mod batch;
pub mod expr;
mod index;
mod legacy;
mod query;
mod request;
mod requests;
mod reserved;
mod schema;
mod table;
mod transact;
pub mod value;
