//! Kinesis Data Streams: the in-memory [`model`] and its JSON [`api`].

pub mod api;
mod bucket;
pub(crate) mod control;
pub mod model;
pub(crate) mod subscription;
