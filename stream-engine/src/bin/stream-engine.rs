//! The `stream-engine` binary: a local Kinesis + DynamoDB endpoint for any AWS SDK or the AWS
//! CLI (`--endpoint-url http://127.0.0.1:4567`).

use clap::Parser;
use std::time::Duration;
use stream_engine::{Engine, EngineConfig, Limits};

/// A local Kinesis Data Streams + DynamoDB (lease-table subset) engine.
#[derive(Debug, Parser)]
#[command(name = "stream-engine", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 4567)]
    port: u16,
    /// Turn the per-shard throughput limits off (for speed benchmarks).
    #[arg(long)]
    no_limits: bool,
    /// Create a stream at start, as NAME:SHARDS (repeatable).
    #[arg(long = "create-stream", value_name = "NAME:SHARDS")]
    create_stream: Vec<String>,
    /// How long a shard iterator stays valid, seconds.
    #[arg(long, default_value_t = 300)]
    iterator_ttl_secs: u64,
    /// How long a stream stays CREATING/UPDATING/DELETING, milliseconds.
    #[arg(long, default_value_t = 0)]
    stream_delay_ms: u64,
    /// How long a DynamoDB table stays CREATING, milliseconds.
    #[arg(long, default_value_t = 0)]
    table_delay_ms: u64,
    /// How often expired records and shards are removed, seconds (0: never).
    #[arg(long, default_value_t = 60)]
    retention_check_secs: u64,
    /// Region used in ARNs.
    #[arg(long, default_value = "us-east-1")]
    region: String,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Err(e) = run(args).await {
        eprintln!("stream-engine: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut streams = Vec::new();
    for spec in &args.create_stream {
        let (name, shards) = spec
            .rsplit_once(':')
            .ok_or_else(|| format!("--create-stream {spec:?}: expected NAME:SHARDS"))?;
        let shards: u32 = shards
            .parse()
            .map_err(|_| format!("--create-stream {spec:?}: SHARDS must be a number"))?;
        streams.push((name.to_owned(), shards));
    }
    let config = EngineConfig {
        limits: if args.no_limits {
            Limits::disabled()
        } else {
            Limits::default()
        },
        iterator_ttl: Duration::from_secs(args.iterator_ttl_secs),
        stream_delay: Duration::from_millis(args.stream_delay_ms),
        table_delay: Duration::from_millis(args.table_delay_ms),
        retention_check_interval: (args.retention_check_secs > 0)
            .then(|| Duration::from_secs(args.retention_check_secs)),
        region: args.region.clone(),
        ..EngineConfig::default()
    };
    let engine = Engine::start(config, (args.host.as_str(), args.port)).await?;
    for (name, shards) in streams {
        engine.kinesis().create_stream(
            &name,
            Some(shards),
            stream_engine::kinesis::model::StreamMode::Provisioned,
        )?;
    }
    println!("listening on {}", engine.endpoint_url());
    wait_for_signal().await;
    eprintln!("stream-engine: shutting down");
    engine.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
