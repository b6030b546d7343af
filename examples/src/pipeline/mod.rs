//! A producer → stream → consumer run that keeps books: every record carries its partition
//! key's number, its number within the key and its send time, so the consumers can check that
//! nothing was lost, that each key's records came in the order they were written, and how
//! long each took. Used by the quickstart, the end-to-end benchmark and the integration tests.

mod ledger;
pub mod reshard;
mod worker;

pub use ledger::{Ledger, Seen, Summary};
pub use reshard::{merge_adjacent, split_shard, update_shard_count, wait_active};
pub use worker::{CheckingProcessor, Worker, start_worker};

use kpl::{Producer, SendError, UserRecord};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The shared books of one run.
#[derive(Debug)]
pub struct Books {
    ledger: parking_lot::Mutex<Ledger>,
    start: Instant,
    sent: AtomicU64,
}

impl Books {
    /// Books for a run over `keys` partition keys, starting now.
    pub fn new(keys: u32) -> Arc<Self> {
        Arc::new(Books {
            ledger: parking_lot::Mutex::new(Ledger::new(keys as usize)),
            start: Instant::now(),
            sent: AtomicU64::new(0),
        })
    }

    /// Runs `f` on the ledger.
    pub fn with<T>(&self, f: impl FnOnce(&mut Ledger) -> T) -> T {
        f(&mut self.ledger.lock())
    }

    /// Records handed to the producer so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Seconds since the run started.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Books a delivered record (its data as [`Payload::encode`] wrote it).
    pub fn deliver(&self, shard: &str, data: &[u8]) -> Seen {
        let now = SystemTime::now();
        let at = self.elapsed();
        let mut ledger = self.ledger.lock();
        match Payload::decode(data) {
            Some(p) => {
                let latency = now
                    .duration_since(UNIX_EPOCH + Duration::from_micros(p.sent_micros))
                    .unwrap_or_default();
                ledger.seen(shard, p.key, p.n, at, latency)
            }
            None => ledger.seen(shard, u32::MAX, 0, at, Duration::ZERO),
        }
    }

    /// Waits until every acknowledged record was delivered and `done` holds, at most `limit`.
    /// Returns whether that happened.
    pub async fn wait_complete(&self, limit: Duration, done: impl Fn() -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if done() && self.with(|l| l.complete()) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The data of one record: `key:n:send-time-µs|` and padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload {
    /// The partition key's number (`key-{key}`).
    pub key: u32,
    /// The record's number within its key, from 0.
    pub n: u64,
    /// When it was sent, in µs since the Unix epoch.
    pub sent_micros: u64,
}

impl Payload {
    /// The record's data, padded with `x` to `size` bytes.
    pub fn encode(&self, size: usize) -> Vec<u8> {
        let mut v = format!("{}:{}:{}|", self.key, self.n, self.sent_micros).into_bytes();
        if v.len() < size {
            v.resize(size, b'x');
        }
        v
    }

    /// Reads what [`encode`](Self::encode) wrote; `None` for anything else.
    pub fn decode(data: &[u8]) -> Option<Payload> {
        let end = data.iter().position(|b| *b == b'|')?;
        let text = std::str::from_utf8(&data[..end]).ok()?;
        let mut parts = text.split(':');
        let p = Payload {
            key: parts.next()?.parse().ok()?,
            n: parts.next()?.parse().ok()?,
            sent_micros: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(p)
    }

    /// The partition key of key number `key`.
    pub fn partition_key(key: u32) -> String {
        format!("key-{key}")
    }
}

/// What [`produce`] sends.
#[derive(Debug, Clone)]
pub struct ProduceOptions {
    /// User records in all.
    pub records: u64,
    /// Distinct partition keys; record `i` goes to key `i % keys`.
    pub keys: u32,
    /// Records per second, or as fast as the producer takes them.
    pub rate: Option<f64>,
    /// Bytes of data per record (at least the header).
    pub size: usize,
}

/// Sends the records through `producer`, booking each acknowledgement; returns once every
/// record has an outcome (after a flush).
pub async fn produce(
    producer: &Producer,
    books: &Arc<Books>,
    opts: &ProduceOptions,
) -> Result<(), SendError> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u32, u64, kpl::RecordHandle)>();
    let acker = {
        let books = books.clone();
        tokio::spawn(async move {
            while let Some((key, n, handle)) = rx.recv().await {
                match handle.await {
                    Ok(_) => books.with(|l| l.acked(key, n)),
                    Err(e) => {
                        tracing::warn!(key, n, error = %e, "record given up");
                        books.with(|l| l.failed(key, n));
                    }
                }
            }
        })
    };
    let start = tokio::time::Instant::now();
    let keys = opts.keys.max(1);
    for i in 0..opts.records {
        if let Some(rate) = opts.rate.filter(|r| *r > 0.0 && r.is_finite()) {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            if due > tokio::time::Instant::now() + Duration::from_millis(1) {
                tokio::time::sleep_until(due).await;
            }
        }
        let key = (i % u64::from(keys)) as u32;
        let n = i / u64::from(keys);
        let sent_micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let data = Payload {
            key,
            n,
            sent_micros,
        }
        .encode(opts.size);
        let handle = producer
            .send(UserRecord::new(Payload::partition_key(key), data))
            .await?;
        books.sent.fetch_add(1, Ordering::Relaxed);
        let _ = tx.send((key, n, handle));
    }
    drop(tx);
    producer.flush().await;
    let _ = acker.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_strangers_are_refused() {
        let p = Payload {
            key: 7,
            n: 42,
            sent_micros: 1_700_000_000_000_000,
        };
        let data = p.encode(100);
        assert_eq!(data.len(), 100);
        assert_eq!(Payload::decode(&data), Some(p));
        assert_eq!(Payload::decode(b"hello"), None);
        assert_eq!(Payload::decode(b"1:2|"), None);
        assert_eq!(Payload::decode(b"1:2:3:4|"), None);
    }
}
