//! A bundled Kinesis Data Streams engine (plus the DynamoDB subset a lease table needs) that
//! speaks the AWS JSON wire protocols, so the unchanged `aws-sdk-kinesis` and
//! `aws-sdk-dynamodb` clients work against it.
//!
//! It is faithful where popular local engines are not: 56-digit sequence numbers, hash-key
//! routing, closed parents with `EndingSequenceNumber` after splits and merges, `ChildShards`
//! at the end of a closed shard, per-shard throughput limits, iterator expiry and retention.
//!
//! The ready-made SDK clients (`Engine::kinesis_client` and friends) come with the default
//! `sdk` feature; without it, the engine builds without the AWS SDK crates.
//!
//! ```no_run
//! # #[cfg(feature = "sdk")]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use stream_engine::{Engine, EngineConfig};
//!
//! let engine = Engine::start(EngineConfig::default(), "127.0.0.1:0").await?;
//! let kinesis = engine.kinesis_client();
//! kinesis.create_stream().stream_name("orders").shard_count(2).send().await?;
//! let put = kinesis
//!     .put_record()
//!     .stream_name("orders")
//!     .partition_key("user-1")
//!     .data(aws_sdk_kinesis::primitives::Blob::new("hello"))
//!     .send()
//!     .await?;
//! assert_eq!(put.sequence_number().len(), 56);
//! engine.faults().throttle_next("PutRecord", 1); // the next PutRecord is throttled
//! engine.shutdown().await;
//! # Ok(()) }
//! ```

pub mod cbor;
pub mod clock;
pub mod config;
pub mod dynamodb;
pub mod error;
mod eventstream;
pub mod faults;
mod http;
pub mod kinesis;
#[cfg(feature = "sdk")]
mod sdk;

pub use clock::Clock;
pub use config::{EngineConfig, Limits};
pub use error::ApiError;
pub use faults::{FaultKind, FaultRule, Faults, OutageMode};
#[cfg(feature = "sdk")]
pub use sdk::sdk_config;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Shared state of a running engine.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: Arc<EngineConfig>,
    pub(crate) clock: Arc<Clock>,
    pub(crate) kinesis: kinesis::model::KinesisCore,
    pub(crate) dynamodb: dynamodb::api::DynamoCore,
    pub(crate) faults: Faults,
}

/// A running engine serving HTTP on a local address. Dropping it stops the server.
#[derive(Debug)]
pub struct Engine {
    state: Arc<State>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
}

impl Engine {
    /// Starts an engine on `addr` (use `127.0.0.1:0` for a free port).
    pub async fn start(config: EngineConfig, addr: impl ToSocketAddrs) -> std::io::Result<Engine> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let config = Arc::new(config);
        let clock = Arc::new(if config.manual_clock {
            Clock::manual()
        } else {
            Clock::new()
        });
        let state = Arc::new(State {
            kinesis: kinesis::model::KinesisCore::new(config.clone(), clock.clone()),
            dynamodb: dynamodb::api::DynamoCore::new(config.clone(), clock.clone()),
            faults: Faults::default(),
            config: config.clone(),
            clock,
        });
        let (shutdown, rx) = watch::channel(false);
        let server = tokio::spawn(http::serve(listener, state.clone(), rx.clone()));
        if let Some(every) = config.retention_check_interval {
            let state = state.clone();
            let mut rx = rx;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
                tick.tick().await;
                loop {
                    tokio::select! {
                        _ = tick.tick() => state.kinesis.enforce_retention(),
                        _ = http::stopped(&mut rx) => break,
                    }
                }
            });
        }
        tracing::info!(target: "stream_engine", %addr, "engine listening");
        Ok(Engine {
            state,
            addr,
            shutdown,
            server: Some(server),
        })
    }

    /// Starts an engine with the default configuration on `127.0.0.1:0`.
    pub async fn start_default() -> std::io::Result<Engine> {
        Self::start(EngineConfig::default(), "127.0.0.1:0").await
    }

    /// The address the engine listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint URL for SDK clients, e.g. `http://127.0.0.1:4567`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.state.config
    }

    /// Fault injection.
    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    /// The Kinesis model, for direct inspection in tests.
    pub fn kinesis(&self) -> &kinesis::model::KinesisCore {
        &self.state.kinesis
    }

    /// Moves the engine's clock forward (expires iterators, ages records) without waiting.
    pub fn advance_clock(&self, by: Duration) {
        self.state.clock.advance(by);
    }

    /// Removes records and closed shards older than their stream's retention period now.
    pub fn enforce_retention(&self) {
        self.state.kinesis.enforce_retention();
    }

    /// Stops accepting connections, lets open requests finish (ending any outage first) and
    /// waits for the server to stop.
    pub async fn shutdown(mut self) {
        self.state.faults.resume();
        let _ = self.shutdown.send(true);
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.state.faults.resume();
        let _ = self.shutdown.send(true);
    }
}
