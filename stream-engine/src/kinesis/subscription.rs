//! The event stream of one `SubscribeToShard` call: an `initial-response` at once, then a
//! `SubscribeToShardEvent` whenever records arrive (and at least every heartbeat), until the
//! subscription's lifetime ends, a later subscription replaces it, the client goes away, or
//! the shard's end has been sent with its `ChildShards`.
//!
//! Faults: a call-level rule on the pseudo-operation `SubscribeToShardEvent` applies to the
//! next event: `InternalError` drops the connection mid-stream, `Error { code }` (and
//! `Throttle`, as `LimitExceededException`) sends an exception message and ends the stream,
//! `Latency` delays the event.

use super::api::fanout::{Subscription, event_json};
use crate::State;
use crate::eventstream;
use crate::faults::FaultKind;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Bytes of records in one event at most.
const EVENT_BYTES: usize = 1024 * 1024;

/// One frame of the response body, or the error that aborts the connection.
pub(crate) type Chunk = Result<Bytes, std::io::Error>;

/// Sends the subscription's frames into `tx` until it ends.
pub(crate) async fn run(state: Arc<State>, sub: Subscription, tx: mpsc::Sender<Chunk>) {
    let config = state.config.clone();
    let initial = eventstream::event("initial-response", b"{}");
    if tx.send(Ok(Bytes::from(initial))).await.is_err() {
        return;
    }
    let ends = Instant::now()
        .checked_add(config.subscription_lifetime)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
    let heartbeat = config.subscription_heartbeat.max(Duration::from_millis(10));
    let limits_on = config.limits.enabled;
    let rate = config.limits.consumer_read_bytes_per_sec.max(1) as f64;
    let mut pos = sub.pos;
    let mut changes = sub.handle.appended();
    let mut last_event: Option<Instant> = None;
    loop {
        if Instant::now() >= ends {
            return;
        }
        if let Some(why) = sub
            .handle
            .subscription_ended(&sub.consumer_arn, sub.shard, sub.number)
        {
            // Replaced by a newer subscription, or the consumer is gone: as AWS, say so.
            let frame = eventstream::exception(why.code, &why.message);
            let _ = tx.send(Ok(Bytes::from(frame))).await;
            return;
        }
        changes.borrow_and_update();
        let read = match sub
            .handle
            .read_for_subscription(sub.shard, pos, EVENT_BYTES)
        {
            Ok(r) => r,
            Err(e) => {
                let frame = eventstream::exception(e.code, &e.message);
                let _ = tx.send(Ok(Bytes::from(frame))).await;
                return;
            }
        };
        let heartbeat_due = last_event.is_none_or(|t| t.elapsed() >= heartbeat);
        if read.records.is_empty() && read.child_shards.is_none() && !heartbeat_due {
            let wake = last_event.map_or(ends, |t| t + heartbeat).min(ends);
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(wake) => {}
                _ = tx.closed() => return,
            }
            continue;
        }
        let faults = state.faults.take_call("Kinesis", "SubscribeToShardEvent");
        if let Some(ms) = faults.latency_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        match faults.error {
            Some(FaultKind::InternalError) => {
                let _ = tx
                    .send(Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "subscription dropped (fault)",
                    )))
                    .await;
                return;
            }
            Some(FaultKind::Error { code }) => {
                let frame = eventstream::exception(&code, "Injected fault");
                let _ = tx.send(Ok(Bytes::from(frame))).await;
                return;
            }
            Some(FaultKind::Throttle) => {
                let frame = eventstream::exception("LimitExceededException", "Rate exceeded");
                let _ = tx.send(Ok(Bytes::from(frame))).await;
                return;
            }
            Some(FaultKind::Latency { ms }) | Some(FaultKind::ResponseDelay { ms }) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            None => {}
        }
        let bytes: usize = read.records.iter().map(|(_, r)| r.data().len()).sum();
        let payload = event_json(&sub.handle, sub.shard, pos, &read);
        let frame = eventstream::event("SubscribeToShardEvent", &payload);
        if tx.send(Ok(Bytes::from(frame))).await.is_err() {
            return;
        }
        last_event = Some(Instant::now());
        pos = read.next_pos;
        if read.child_shards.is_some() {
            return;
        }
        if limits_on && bytes > 0 {
            // The consumer's own 2 MiB/s for this shard.
            tokio::time::sleep(Duration::from_secs_f64(bytes as f64 / rate)).await;
        }
    }
}
