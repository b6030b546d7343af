//! Encode/decode throughput of the aggregation codec against plain MD5 over the same bytes
//! (the floor: every aggregate is hashed once on either side).
//!
//! `cargo bench -p shared-proto`; throughput is per user-data byte, and each benchmark also
//! prints its records/s.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use md5::{Digest, Md5};
use shared_proto::{Aggregator, deaggregate};
use std::hint::black_box;

/// The KPL default AggregationMaxSize.
const AGGREGATE_LIMIT: usize = 51_200;

fn records(size: usize) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut agg = Aggregator::new();
    let mut i = 0usize;
    loop {
        let key = format!("partition-key-{}", i % 100);
        let data = vec![(i % 251) as u8; size];
        if agg.encoded_len_with(&key, None, size) > AGGREGATE_LIMIT {
            return out;
        }
        agg.add_unchecked(&key, None, &data);
        out.push((key, data));
        i += 1;
    }
}

fn bench(c: &mut Criterion) {
    for (label, size) in [("100B", 100usize), ("1KiB", 1024)] {
        let input = records(size);
        let user_bytes: u64 = input.iter().map(|(_, d)| d.len() as u64).sum();
        let mut agg = Aggregator::new();
        for (k, d) in &input {
            agg.add_unchecked(k, None, d);
        }
        let encoded = agg.finish();
        let mut group = c.benchmark_group(format!("aggregate_{label}"));
        group.throughput(Throughput::Bytes(user_bytes));
        eprintln!(
            "{label}: {} user records ({user_bytes} data bytes) per {}-byte aggregate",
            input.len(),
            encoded.len()
        );
        group.bench_function("encode", |b| {
            let mut agg = Aggregator::new();
            b.iter(|| {
                for (k, d) in &input {
                    agg.add_unchecked(k, None, d);
                }
                black_box(agg.finish())
            })
        });
        group.bench_function("decode", |b| {
            b.iter(|| black_box(deaggregate(black_box(&encoded)).map(|r| r.len())))
        });
        group.bench_function("md5_only", |b| {
            b.iter(|| black_box(Md5::digest(black_box(&encoded[..]))))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
