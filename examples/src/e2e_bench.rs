//! `bench e2e`: the producer at a fixed rate and a consumer worker together, against an engine
//! in this process with the Kinesis limits on, once polling and once with enhanced fan-out;
//! end-to-end latency (send to `process_records`) p50/p99/max of each, and with `--plot` a
//! chart of latency and throughput over both runs.

use crate::figures::Figures;
use crate::pipeline::{self, Books, ProduceOptions, Summary};
use crate::svg::{Panel, Series, chart};
use kcl::{RetrievalMode, SchedulerConfig};
use std::time::Duration;
use stream_engine::{Engine, EngineConfig};

/// What `bench e2e` runs.
#[derive(Debug, Clone)]
pub struct E2eOptions {
    /// Records per second from the producer.
    pub rate: f64,
    /// How long the producer sends.
    pub seconds: u64,
    /// Shards of the stream.
    pub shards: i32,
    /// Distinct partition keys.
    pub keys: u32,
    /// Write the chart here (SVG).
    pub plot: Option<std::path::PathBuf>,
}

/// Per whole second of the run: (second, p50, p99, max latency ms, records).
fn per_second(samples: &[(f64, f64)]) -> Vec<(f64, f64, f64, f64, f64)> {
    let mut buckets: Vec<Vec<f64>> = Vec::new();
    for (at, lat) in samples {
        let i = *at as usize;
        if buckets.len() <= i {
            buckets.resize(i + 1, Vec::new());
        }
        buckets[i].push(*lat);
    }
    buckets
        .into_iter()
        .enumerate()
        .filter(|(_, b)| !b.is_empty())
        .map(|(i, mut b)| {
            b.sort_by(f64::total_cmp);
            let pct = |p: f64| b[((b.len() as f64 * p).ceil() as usize).clamp(1, b.len()) - 1];
            (
                i as f64 + 0.5,
                pct(0.5),
                pct(0.99),
                pct(1.0),
                b.len() as f64,
            )
        })
        .collect()
}

/// One pass: a fresh stream, one worker in `mode`, the producer at the rate.
async fn pass(
    engine: &Engine,
    name: &str,
    mode: RetrievalMode,
    opts: &E2eOptions,
) -> Result<(Summary, Vec<(f64, f64)>), String> {
    let (kinesis, dynamodb) = (engine.kinesis_client(), engine.dynamodb_client());
    crate::ensure_stream(&kinesis, name, opts.shards).await?;
    pipeline::wait_active(&kinesis, name).await?;
    let books = Books::new(opts.keys);
    let config = SchedulerConfig::default()
        .idle_time_between_reads(Duration::from_millis(200))
        .retrieval(mode);
    let app = format!("{name}-app");
    let worker = pipeline::start_worker(
        (&kinesis, &dynamodb),
        (&app, name),
        "w1",
        config,
        &books,
        Duration::ZERO,
    )
    .map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while worker.handle.held_shards().len() < opts.shards as usize {
        if tokio::time::Instant::now() > deadline {
            return Err("the worker did not take its shards".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let producer = kpl::Producer::builder(engine.kinesis_client_without_retries(), name)
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let records = (opts.rate * opts.seconds as f64) as u64;
    eprintln!(
        "e2e {name}: {records} records at {}/s into {} shards, one consumer worker (producer buffering 100 ms)",
        opts.rate, opts.shards
    );
    let produce = ProduceOptions {
        records,
        keys: opts.keys,
        rate: Some(opts.rate),
        size: 100,
    };
    pipeline::produce(&producer, &books, &produce)
        .await
        .map_err(|e| e.to_string())?;
    let complete = books.wait_complete(Duration::from_secs(30), || true).await;
    let _ = producer.shutdown(Duration::from_secs(10)).await;
    worker.stop().await;
    let s = books.with(|l| l.summary());
    if !complete || !s.ok() {
        return Err(format!("{name}: records lost or out of order: {s:?}"));
    }
    Ok((s, books.with(|l| l.samples().to_vec())))
}

/// Runs the end-to-end benchmark, polling then enhanced fan-out, adding their figures.
pub async fn run(opts: &E2eOptions, figures: &mut Figures) -> Result<(), String> {
    let engine = Engine::start(EngineConfig::default(), "127.0.0.1:0")
        .await
        .map_err(|e| format!("engine: {e}"))?;
    let modes = [
        ("polling", RetrievalMode::Polling),
        (
            "fan-out",
            RetrievalMode::FanOut {
                consumer_name: "e2e-bench".into(),
            },
        ),
    ];
    let mut runs = Vec::new();
    for (label, mode) in modes {
        let (s, samples) = pass(&engine, &format!("e2e-{label}"), mode, opts).await?;
        figures.add(format!("{label}: records"), s.consumed as f64, "records");
        figures.add(format!("{label}: latency p50"), s.latency_p50_ms, "ms");
        figures.add(format!("{label}: latency p99"), s.latency_p99_ms, "ms");
        figures.add(format!("{label}: latency max"), s.latency_max_ms, "ms");
        figures.add(
            format!("{label}: duplicates"),
            s.duplicates as f64,
            "records",
        );
        runs.push((label, samples));
    }
    engine.shutdown().await;
    if let Some(path) = &opts.plot {
        let colours = [("#1f77b4", "#aec7e8"), ("#d62728", "#ff9896")];
        let mut latency = Vec::new();
        let mut throughput = Vec::new();
        for ((label, samples), (dark, light)) in runs.iter().zip(colours) {
            let rows = per_second(samples);
            let line = |what: &str, colour, f: fn(&(f64, f64, f64, f64, f64)) -> f64| Series {
                label: format!("{label} {what}"),
                colour,
                points: rows.iter().map(|r| (r.0, f(r))).collect(),
            };
            latency.push(line("p50", light, |r| r.1));
            latency.push(line("p99", dark, |r| r.2));
            throughput.push(line("consumed", dark, |r| r.4));
        }
        let svg = chart(
            &format!(
                "end to end at {}/s, {} shards: polling (200 ms between reads) and fan-out",
                opts.rate, opts.shards
            ),
            &[
                Panel {
                    title: "latency per second of the run".into(),
                    unit: "ms".into(),
                    series: latency,
                },
                Panel {
                    title: "records consumed per second".into(),
                    unit: "records/s".into(),
                    series: throughput,
                },
            ],
        );
        std::fs::write(path, svg).map_err(|e| format!("writing {}: {e}", path.display()))?;
        eprintln!("chart written to {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_fall_into_whole_seconds() {
        let rows = per_second(&[(0.2, 10.0), (0.7, 30.0), (2.1, 5.0)]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0], (0.5, 10.0, 30.0, 30.0, 2.0));
        assert_eq!(rows[1].0, 2.5);
    }
}
