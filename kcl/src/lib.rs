//! A Kinesis consumer in the spirit of the AWS Kinesis Client Library: the workers of an
//! application share a stream's shards through a DynamoDB lease table, process each shard's
//! records in order with a [`ShardRecordProcessor`], checkpoint, and process parent shards
//! before their children after splits and merges.
//!
//! ```no_run
//! # async fn demo(sdk: aws_config::SdkConfig) -> Result<(), Box<dyn std::error::Error>> {
//! use async_trait::async_trait;
//! use kcl::{Checkpointer, InitializeInput, ProcessRecordsInput, ProcessorError, Scheduler,
//!           ShardRecordProcessor};
//!
//! struct Count(u64);
//!
//! #[async_trait]
//! impl ShardRecordProcessor for Count {
//!     async fn initialize(&mut self, _: InitializeInput) -> Result<(), ProcessorError> { Ok(()) }
//!     async fn process_records(&mut self, input: ProcessRecordsInput, cp: &mut Checkpointer)
//!         -> Result<(), ProcessorError> {
//!         self.0 += input.records.len() as u64;
//!         cp.checkpoint().await?;
//!         Ok(())
//!     }
//!     async fn shard_ended(&mut self, cp: &mut Checkpointer) -> Result<(), ProcessorError> {
//!         cp.checkpoint_shard_end().await?;
//!         Ok(())
//!     }
//!     async fn shutdown_requested(&mut self, cp: &mut Checkpointer) -> Result<(), ProcessorError> {
//!         cp.checkpoint().await?;
//!         Ok(())
//!     }
//! }
//!
//! let scheduler = Scheduler::builder("orders-app", "orders")
//!     .sdk_config(&sdk)
//!     .processor_factory(|_: &str| -> Box<dyn ShardRecordProcessor> { Box::new(Count(0)) })
//!     .build()?;
//! let handle = scheduler.handle();
//! tokio::spawn(async move {
//!     let _ = tokio::signal::ctrl_c().await;
//!     handle.shutdown().await; // processors checkpoint, leases are released
//! });
//! scheduler.run().await?;
//! # Ok(()) }
//! ```
//!
//! # The lease model
//!
//! Each shard has one **lease**, an item of the lease table (hash key `leaseKey`, on-demand
//! billing), written in the Java KCL 2.x schema so a fleet can move between the two:
//!
//! | attribute | type | meaning |
//! |---|---|---|
//! | `leaseKey` | S | the shard id (or `account:stream:creationEpoch:shardId`) |
//! | `leaseOwner` | S | the worker holding it; absent when released |
//! | `leaseCounter` | N | +1 on every renew, take, checkpoint, release, hand-off |
//! | `checkpoint` | S | a sequence number, or `TRIM_HORIZON` / `LATEST` / `AT_TIMESTAMP` / `SHARD_END` |
//! | `checkpointSubSequenceNumber` | N | the position inside an aggregated record |
//! | `pendingCheckpoint`, `pendingCheckpointSubSequenceNumber` | S, N | a prepared two-phase checkpoint |
//! | `ownerSwitchesSinceCheckpoint` | N | owner changes since the last checkpoint |
//! | `parentShardId` | SS | one parent after a split, two after a merge |
//! | `childShardIds` | SS | the children, once the shard ended |
//! | `startingHashKey`, `endingHashKey` | S | the shard's hash key range |
//! | `handoffTo` | S | ours: a worker asking for the lease (the Java KCL ignores it) |
//!
//! Attributes the crate does not know are kept: every write is an `UpdateItem` of named
//! attributes, and a new lease is only ever written where none exists.
//!
//! Every write that depends on ownership is **conditional on `leaseCounter` and
//! `leaseOwner`**, so a worker that lost a lease can never checkpoint it. A worker renews its
//! leases every `failover_time / 3`; another worker judges a lease **expired** when its
//! counter has not moved for `failover_time` on its own monotonic clock (clocks of different
//! machines are never compared).
//!
//! Each **take round** (at start, then every `take_interval`) scans the table and computes a
//! target, `ceil(unfinished leases / live workers)`; the worker takes unowned and expired
//! leases up to it. When none are left it **asks for a hand-off** instead of stealing: it sets
//! `handoffTo` on leases of the most-loaded worker (only one above the target, never below it).
//! The owner sees the request on its next renewal and tells its shard consumer
//! ([`LeaseEvent::HandoffRequested`]), which finishes its batch, checkpoints and calls
//! [`Coordinator::hand_off`]: the lease changes owner in one fenced write, and the new owner
//! starts exactly at that checkpoint. An owner that does not answer within `failover_time`
//! loses the lease the way the Java KCL takes it. At shutdown,
//! [`Coordinator::shutdown`] releases every lease (owner removed), so others take them on their
//! next round instead of waiting out the failover time.
//!
//! **Shard discovery**: on an empty table the coordinator lists the shards and creates leases
//! for the tree the initial position needs (for `TRIM_HORIZON` the closed ancestors too, with
//! their parents, so parents are processed before children); a periodic sync creates leases
//! that are missing (a deleted row, a missed shard end) and deletes finished leases once all
//! their children have started. At a shard end the consumer calls
//! [`Coordinator::shard_ended`] with the child shards; a child lease
//! [may start](Coordinator::may_start) only when no parent lease exists that is not at
//! `SHARD_END`.
//!
//! The coordinator can also be used on its own, by code that runs its own consumers:
//!
//! ```no_run
//! # async fn demo(dynamodb: aws_sdk_dynamodb::Client, kinesis: aws_sdk_kinesis::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use kcl::{Coordinator, CoordinatorConfig, LeaseEvent};
//! use std::time::Duration;
//!
//! let (coordinator, mut events) = Coordinator::builder(dynamodb, kinesis, "orders-app", "orders")
//!     .config(CoordinatorConfig::default().failover_time(Duration::from_secs(10)))
//!     .start()
//!     .await?;
//! while let Some(event) = events.recv().await {
//!     match event {
//!         LeaseEvent::Acquired(lease) => println!("processing {}", lease.key),
//!         LeaseEvent::HandoffRequested { key, .. } => {
//!             coordinator.hand_off(&key).await?;
//!         }
//!         other => println!("{other:?}"),
//!     }
//! #   break;
//! }
//! coordinator.shutdown().await;
//! # Ok(()) }
//! ```

mod balance;
mod batch_stream;
mod checkpointer;
mod config;
mod consumer_metrics;
mod coordinator;
mod discovery;
mod error;
mod events;
mod fanout;
mod fetching;
mod lease;
mod lease_item;
mod lease_table;
mod lease_writes;
mod metrics;
mod processor;
mod records;
mod retrieval;
mod rounds;
mod scheduler;
mod shard_consumer;
mod shards;

pub use batch_stream::{Batch, BatchKind, BatchStream};
pub use checkpointer::{CheckpointError, Checkpointer, PreparedCheckpoint};
pub use config::{CoordinatorConfig, InitialPosition};
pub use consumer_metrics::ProcessingSnapshot;
pub use coordinator::{Coordinator, CoordinatorBuilder, ShutdownReport};
pub use discovery::ShardInfo;
pub use error::{BadLeaseItem, ConfigError, LeaseError, StartError};
pub use events::{LeaseEvent, LeaseEvents, LostReason};
pub use fanout::RetrievalMode;
pub use lease::{Checkpoint, ExtendedCheckpoint, Lease, LeaseKey, compare_sequence};
pub use lease_table::LeaseTable;
pub use metrics::MetricsSnapshot;
pub use processor::{
    DeadLetterHandler, InitializeInput, OnError, ProcessRecordsInput, ProcessorError,
    ShardRecordProcessor, ShardRecordProcessorFactory,
};
pub use records::Record;
pub use scheduler::{
    Scheduler, SchedulerBuilder, SchedulerConfig, SchedulerError, SchedulerHandle,
};
pub use shards::{StreamRef, child_info};
