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
//!     .config(ProducerConfig { record_ttl: Duration::from_secs(60), ..Default::default() })
//!     .build()
//!     .await?;
//! let handle = producer.send(UserRecord::new("customer-42", "order placed")).await?;
//! let outcome = handle.await?;
//! println!("stored in {} at {}/{}", outcome.shard_id, outcome.sequence_number, outcome.sub_sequence_number);
//! producer.flush().await;
//! producer.shutdown(Duration::from_secs(10)).await;
//! # Ok(()) }
//! ```

mod config;
mod engine;
mod error;
mod metrics;
mod producer;
mod record;
mod shard_map;

pub use config::{ConfigError, Ordering, ProducerConfig};
pub use error::{BuildError, PutError, SendError};
pub use metrics::MetricsSnapshot;
pub use producer::{Producer, ProducerBuilder, ProducerSink, SinkError, StreamRef};
pub use record::{Attempt, RecordHandle, RecordOutcome, UserRecord};
