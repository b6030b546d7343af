//! An in-process Kinesis producer, in the spirit of the AWS Kinesis Producer Library but
//! without a native daemon.
//!
//! Path of a record: validate → hash key → predicted shard (from a `ListShards` shard map) →
//! per-shard queue → aggregation with records of the same shard (KPL format) → `PutRecords`
//! of ≤ 500 records / 5 MiB → per-shard rate limiter → outcome (shard, sequence number,
//! sub-sequence number, attempts) delivered to the caller's handle. Throttling, internal
//! errors, timeouts and connection failures are retried with jittered exponential backoff
//! until the record's TTL; access, validation and not-found errors fail at once. Memory is
//! bounded: `send` waits when the outstanding records or bytes reach their limit. By default
//! records with the same partition key are stored in the order they were sent, even across
//! retries.
//!
//! ```no_run
//! # async fn demo(client: aws_sdk_kinesis::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use kpl::{Producer, ProducerConfig, UserRecord};
//! use std::time::Duration;
//!
//! let producer = Producer::builder(client, "orders")
//!     .config(ProducerConfig::default().record_ttl(Duration::from_secs(60)))
//!     .build()
//!     .await?;
//! let handle = producer.send(UserRecord::new("customer-42", "order placed")).await?;
//! let outcome = handle.await?;
//! println!("stored in {} at {}/{}", outcome.shard_id, outcome.sequence_number, outcome.sub_sequence_number);
//! let flushed = producer.flush().await; // every record sent before has an outcome
//! assert_eq!(flushed.failed, 0);
//! let report = producer.shutdown(Duration::from_secs(10)).await;
//! assert!(report.is_clean(), "{report:?}");
//! # Ok(()) }
//! ```

mod classify;
mod config;
mod core;
mod driver;
mod error;
mod handle;
mod limiter;
mod metrics;
mod outstanding;
mod producer;
mod queue;
mod record;
mod shard_map;
mod sink;
mod stream;

pub use config::{ConfigError, Ordering, ProducerConfig};
pub use core::ShutdownReport;
pub use error::{BuildError, PutError, SendError};
pub use handle::RecordHandle;
pub use metrics::MetricsSnapshot;
pub use outstanding::FlushReport;
pub use producer::{Producer, ProducerBuilder};
pub use record::{Attempt, RecordOutcome, UserRecord};
pub use sink::{ProducerSink, SinkError};
pub use stream::StreamRef;
