//! Shared building blocks of the Kinesis producer (`kpl`), consumer (`kcl`) and the bundled
//! stream engine:
//!
//! - [`aggregation`]: the KPL aggregated-record format (magic ‖ protobuf ‖ MD5), an incremental
//!   [`Aggregator`] that knows its exact encoded size before each add, and a never-panicking
//!   [`deaggregate`] function;
//! - [`hash`]: partition key → 128-bit hash key, decimal hash-key parsing and [`HashKeyRange`];
//! - [`sequence`]: [`SequenceNumber`], decimal strings of any length ordered numerically;
//! - [`limits`]: the Kinesis Data Streams service limits as named constants, and
//!   [`validate_record`] which checks a user record against them.
//!
//! ```
//! use bytes::Bytes;
//! use shared_proto::{Aggregator, deaggregate};
//!
//! let mut agg = Aggregator::new();
//! let predicted = agg.encoded_len_with("user-1", None, 5);
//! agg.add("user-1", None, b"hello")?;
//! agg.add("user-2", None, b"world")?;
//! assert!(predicted < agg.encoded_len());
//! let bytes: Bytes = agg.finish();
//! let records = deaggregate(&bytes).expect("an aggregate");
//! assert_eq!(records.len(), 2);
//! assert_eq!(records[1].partition_key, "user-2");
//! assert_eq!(records[1].sub_sequence_number, 1);
//! # Ok::<(), shared_proto::RecordError>(())
//! ```

pub mod aggregation;
pub mod hash;
pub mod limits;
pub mod sequence;

/// Messages generated from `proto/aggregation.proto` (proto2, package `kpl_aggregation`).
#[allow(missing_docs, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/kpl_aggregation.rs"));
}

pub use aggregation::{
    AGGREGATION_MAGIC, Aggregator, DeaggregatedRecord, NotAggregate, deaggregate, is_aggregate,
};
pub use hash::{HashKeyError, HashKeyRange, parse_hash_key, partition_key_hash};
pub use limits::{RecordError, validate_record};
pub use sequence::{SequenceNumber, SequenceNumberError};
