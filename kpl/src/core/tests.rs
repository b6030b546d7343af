//! Unit tests of the core: no runtime, no HTTP; time is whatever the test says.

use super::*;
use crate::queue::{Pending, Permits};
use bytes::Bytes;
use shared_proto::{HashKeyRange, partition_key_hash};
use tokio::sync::oneshot::{self, error::TryRecvError};

type Rx = oneshot::Receiver<Result<RecordOutcome, PutError>>;

fn map(shards: &[(&str, HashKeyRange, bool)]) -> ShardMap {
    let mut m = ShardMap::default();
    for (id, r, closed) in shards {
        m.add(id, &r.start().to_string(), &r.end().to_string(), *closed);
    }
    m.finish().expect("open shards")
}

fn two_shards() -> ShardMap {
    let r = HashKeyRange::split_evenly(2);
    map(&[("shard-0", r[0], false), ("shard-1", r[1], false)])
}

fn core(cfg: ProducerConfig, m: ShardMap, now: Instant) -> Core {
    Core::new(cfg, "s".into(), Arc::new(Metrics::default()), m, now)
}

fn record(c: &mut Core, pk: &str, size: usize, now: Instant) -> Rx {
    let (tx, rx) = oneshot::channel();
    let p = Pending::new(
        pk.to_owned(),
        None,
        partition_key_hash(pk),
        Bytes::from(vec![b'x'; size]),
        tx,
        Permits::none(),
    );
    c.record(p, now);
    rx
}

fn puts(actions: Vec<Action>) -> Vec<(u64, Vec<WireEntry>)> {
    actions
        .into_iter()
        .filter_map(|a| match a {
            Action::Put { request, entries } => Some((request, entries)),
            Action::ListShards => None,
        })
        .collect()
}

fn poll(c: &mut Core, now: Instant) -> Vec<Action> {
    let mut out = Vec::new();
    c.poll(now, &mut out);
    out
}

/// A key whose hash is in the range.
fn key_in(range: HashKeyRange, tag: &str) -> String {
    (0..)
        .map(|i| format!("{tag}-{i}"))
        .find(|k| range.contains(partition_key_hash(k)))
        .expect("some key")
}

fn ok_results(c: &Core, request: u64, shard: &str) -> Vec<EntryResult> {
    let n = c.requests.get(&request).map_or(0, Vec::len);
    (0..n)
        .map(|i| Ok((shard.to_owned(), format!("{:056}", i + 1))))
        .collect()
}

#[test]
fn records_wait_for_buffer_time_then_go_out_and_resolve() {
    let t0 = Instant::now();
    let mut c = core(ProducerConfig::default(), two_shards(), t0);
    let r0 = HashKeyRange::split_evenly(2)[0];
    let rxs: Vec<Rx> = (0..5)
        .map(|i| record(&mut c, &key_in(r0, &format!("k{i}")), 10, t0))
        .collect();
    assert!(puts(poll(&mut c, t0)).is_empty(), "not due yet");
    assert_eq!(
        c.next_wake(t0),
        Some(t0 + Duration::from_millis(100)),
        "wakes when the oldest record is due"
    );
    let t1 = t0 + Duration::from_millis(100);
    let sent = puts(poll(&mut c, t1));
    assert_eq!(sent.len(), 1);
    let (req, entries) = &sent[0];
    assert_eq!(entries.len(), 1, "one aggregate");
    let results = ok_results(&c, *req, "shard-0");
    c.put_done(*req, Ok(results), t1);
    for (i, mut rx) in rxs.into_iter().enumerate() {
        let outcome = rx.try_recv().expect("resolved").expect("stored");
        assert_eq!(outcome.sub_sequence_number, i as u64);
        assert!(outcome.aggregated);
    }
    assert_eq!(c.outstanding(), 0);
}

#[test]
fn flush_makes_records_due_and_reports_failures() {
    let t0 = Instant::now();
    let mut c = core(ProducerConfig::default(), two_shards(), t0);
    let mut rx = record(&mut c, "a", 10, t0);
    let (ftx, mut frx) = oneshot::channel();
    c.flush(ftx);
    let sent = puts(poll(&mut c, t0));
    assert_eq!(sent.len(), 1, "a flush sends at once");
    let (req, _) = &sent[0];
    c.put_done(*req, Err(CallError::new("AccessDeniedException", "no")), t0);
    assert!(matches!(rx.try_recv(), Ok(Err(PutError::Rejected { .. }))));
    assert_eq!(
        frx.try_recv().expect("answered"),
        FlushReport {
            records: 1,
            failed: 1
        }
    );
}

#[test]
fn a_misplaced_aggregate_is_sent_again_whole() {
    let t0 = Instant::now();
    let halves = HashKeyRange::split_evenly(2);
    let old = map(&[("shard-0", halves[0], false), ("shard-1", halves[1], false)]);
    let mut c = core(ProducerConfig::default(), old, t0);
    // shard-0 was split at its middle; the aggregate lands on the lower child.
    let quarters = HashKeyRange::split_evenly(4);
    let low = key_in(quarters[0], "low");
    let high = key_in(quarters[1], "high");
    let mut rx_low = record(&mut c, &low, 10, t0);
    let mut rx_high = record(&mut c, &high, 10, t0);
    let (ftx, _frx) = oneshot::channel();
    c.flush(ftx);
    let sent = puts(poll(&mut c, t0));
    let (req, entries) = &sent[0];
    assert_eq!(entries.len(), 1);
    c.put_done(*req, Ok(ok_results(&c, *req, "shard-2")), t0);
    assert_eq!(
        rx_low.try_recv(),
        Err(TryRecvError::Empty),
        "not yet verified"
    );
    assert_eq!(rx_high.try_recv(), Err(TryRecvError::Empty));
    let actions = poll(&mut c, t0);
    assert!(
        actions.iter().any(|a| matches!(a, Action::ListShards)),
        "refresh asked"
    );
    assert!(
        puts(actions).is_empty(),
        "nothing new goes out with a stale map"
    );
    let new = map(&[
        ("shard-0", halves[0], true),
        ("shard-1", halves[1], false),
        ("shard-2", quarters[0], false),
        ("shard-3", quarters[1], false),
    ]);
    c.map_loaded(Ok(Some(new)), t0);
    let sent = puts(poll(&mut c, t0));
    // Both records went out again (to their own shards), not only the out-of-range one.
    let again: usize = sent.iter().map(|(_, e)| e.len()).sum();
    assert_eq!(again, 2, "{sent:?}");
    assert_eq!(rx_low.try_recv(), Err(TryRecvError::Empty));
    for (req, _) in &sent {
        // Each record lands on the shard it was routed to.
        let results = c.requests[req]
            .iter()
            .enumerate()
            .map(|(i, e)| Ok((c.shards[e.shard].id.to_string(), format!("{:056}", i + 1))))
            .collect();
        c.put_done(*req, Ok(results), t0);
    }
    let low_outcome = rx_low.try_recv().expect("resolved").expect("stored");
    let high_outcome = rx_high.try_recv().expect("resolved").expect("stored");
    assert_eq!(&*low_outcome.shard_id, "shard-2");
    assert_eq!(&*high_outcome.shard_id, "shard-3");
    assert_eq!(low_outcome.attempts.len(), 2);
    assert_eq!(
        low_outcome.attempts[0].error_code.as_deref(),
        Some("WrongShard")
    );
    assert_eq!(c.metrics.snapshot(0).misplaced_records_resent, 2);
}

#[test]
fn an_aggregate_on_a_shard_owning_all_of_it_counts_as_stored() {
    let t0 = Instant::now();
    let halves = HashKeyRange::split_evenly(2);
    let old = map(&[("shard-0", halves[0], false), ("shard-1", halves[1], false)]);
    let mut c = core(ProducerConfig::default(), old, t0);
    let quarters = HashKeyRange::split_evenly(4);
    let mut rxs: Vec<Rx> = (0..3)
        .map(|i| record(&mut c, &key_in(quarters[0], &format!("k{i}")), 10, t0))
        .collect();
    let (ftx, _frx) = oneshot::channel();
    c.flush(ftx);
    let (req, _) = puts(poll(&mut c, t0)).remove(0);
    c.put_done(req, Ok(ok_results(&c, req, "shard-2")), t0);
    let _ = poll(&mut c, t0);
    let new = map(&[
        ("shard-0", halves[0], true),
        ("shard-1", halves[1], false),
        ("shard-2", quarters[0], false),
        ("shard-3", quarters[1], false),
    ]);
    c.map_loaded(Ok(Some(new)), t0);
    assert!(puts(poll(&mut c, t0)).is_empty(), "nothing sent again");
    for rx in &mut rxs {
        let o = rx.try_recv().expect("resolved").expect("stored");
        assert_eq!(&*o.shard_id, "shard-2");
    }
}

#[test]
fn unverified_records_expire_when_the_map_cannot_be_loaded() {
    let t0 = Instant::now();
    let cfg = ProducerConfig::default().record_ttl(Duration::from_secs(2));
    let mut c = core(cfg, two_shards(), t0);
    let r0 = HashKeyRange::split_evenly(2)[0];
    let mut a = record(&mut c, &key_in(r0, "a"), 10, t0);
    let mut b = record(&mut c, &key_in(r0, "b"), 10, t0);
    let (ftx, mut frx) = oneshot::channel();
    c.flush(ftx);
    let (req, _) = puts(poll(&mut c, t0)).remove(0);
    c.put_done(req, Ok(ok_results(&c, req, "shard-9")), t0);
    let _ = poll(&mut c, t0); // asks for the map; the call never answers
    let wake = c.next_wake(t0).expect("a wake-up");
    assert!(wake <= t0 + Duration::from_secs(2));
    let t2 = t0 + Duration::from_secs(2);
    let _ = poll(&mut c, t2);
    assert!(matches!(a.try_recv(), Ok(Err(PutError::Expired { .. }))));
    assert!(matches!(b.try_recv(), Ok(Err(PutError::Expired { .. }))));
    assert_eq!(frx.try_recv().expect("flush answered").failed, 2);
}

#[test]
fn records_expire_while_the_shard_map_cannot_be_refreshed() {
    let t0 = Instant::now();
    let cfg = ProducerConfig::default().record_ttl(Duration::from_secs(1));
    let mut c = core(cfg, two_shards(), t0);
    let mut rx = record(&mut c, "k", 10, t0);
    let (ftx, _f) = oneshot::channel();
    c.flush(ftx);
    let (req, _) = puts(poll(&mut c, t0)).remove(0);
    c.put_done(
        req,
        Err(CallError::new("ResourceNotFoundException", "shard gone?")),
        t0,
    );
    let actions = poll(&mut c, t0);
    assert!(actions.iter().any(|a| matches!(a, Action::ListShards)));
    c.map_loaded(Err(CallError::new("Timeout", "ListShards hung")), t0);
    let t1 = t0 + Duration::from_secs(1);
    let _ = poll(&mut c, t1);
    assert!(matches!(rx.try_recv(), Ok(Err(PutError::Expired { .. }))));
    assert_eq!(c.outstanding(), 0);
}

#[test]
fn a_refresh_that_does_not_find_the_stream_fails_records() {
    let t0 = Instant::now();
    let mut c = core(ProducerConfig::default(), two_shards(), t0);
    let mut rx = record(&mut c, "k", 10, t0);
    let (ftx, _f) = oneshot::channel();
    c.flush(ftx);
    let (req, _) = puts(poll(&mut c, t0)).remove(0);
    c.put_done(
        req,
        Err(CallError::new("ResourceNotFoundException", "")),
        t0,
    );
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "a refresh decides");
    let _ = poll(&mut c, t0);
    c.map_loaded(Err(CallError::new("ResourceNotFoundException", "")), t0);
    assert!(matches!(
        rx.try_recv(),
        Ok(Err(PutError::StreamNotFound { .. }))
    ));
}

#[test]
fn throttling_lowers_the_rate_once_per_response_and_survives_a_refresh() {
    let t0 = Instant::now();
    let cfg = ProducerConfig::default().aggregation_enabled(false);
    let mut c = core(cfg, two_shards(), t0);
    let r0 = HashKeyRange::split_evenly(2)[0];
    for i in 0..10 {
        drop(record(&mut c, &key_in(r0, &format!("k{i}")), 10, t0));
    }
    let (ftx, _f) = oneshot::channel();
    c.flush(ftx);
    let (req, entries) = puts(poll(&mut c, t0)).remove(0);
    assert_eq!(entries.len(), 10);
    let results = (0..10)
        .map(|_| {
            Err(CallError::new(
                "ProvisionedThroughputExceededException",
                "slow down",
            ))
        })
        .collect();
    c.put_done(req, Ok(results), t0);
    assert_eq!(
        c.shards[0].limiter.permille(),
        700,
        "one decrease for 10 throttles"
    );
    let m = c.metrics.snapshot(0);
    assert_eq!(m.throttles_by_shard.get("shard-0"), Some(&10));
    assert_eq!(m.rate_permille_by_shard.get("shard-0"), Some(&700));
    // A refresh keeps the rate of a shard that still exists.
    c.pending_map = Some(two_shards());
    let _ = poll(&mut c, t0);
    assert_eq!(c.shards[0].limiter.permille(), 700);
}

#[test]
fn large_records_of_one_key_never_share_a_request() {
    let t0 = Instant::now();
    let mut c = core(ProducerConfig::default(), two_shards(), t0);
    for _ in 0..4 {
        drop(record(&mut c, "hot", 30_000, t0));
    }
    let (ftx, _f) = oneshot::channel();
    c.flush(ftx);
    let sent = puts(poll(&mut c, t0));
    assert_eq!(sent.len(), 1, "one request in flight per shard");
    assert_eq!(
        sent[0].1.len(),
        1,
        "one Kinesis record of the key per request"
    );
    // The first is throttled: it goes out again before the others.
    let (req, _) = &sent[0];
    c.put_done(
        *req,
        Ok(vec![Err(CallError::new(
            "ProvisionedThroughputExceededException",
            "",
        ))]),
        t0,
    );
    let later = t0 + Duration::from_secs(10);
    let sent = puts(poll(&mut c, later));
    let front = &c.requests[&sent[0].0][0].records[0];
    assert_eq!(front.id, 1, "the throttled record is first again");
    assert_eq!(front.attempts.len(), 1);
}

#[test]
fn relaxed_ordering_puts_several_records_of_a_key_in_one_request() {
    let t0 = Instant::now();
    let cfg = ProducerConfig::default().ordering(Ordering::Relaxed);
    let mut c = core(cfg, two_shards(), t0);
    for _ in 0..4 {
        drop(record(&mut c, "hot", 30_000, t0));
    }
    let (ftx, _f) = oneshot::channel();
    c.flush(ftx);
    let sent = puts(poll(&mut c, t0));
    assert_eq!(sent[0].1.len(), 4);
}

#[test]
fn shutdown_fails_what_is_left_at_the_deadline_and_reports_it() {
    let t0 = Instant::now();
    let mut c = core(ProducerConfig::default(), two_shards(), t0);
    let mut rx = record(&mut c, "k", 10, t0);
    c.shutdown(t0 + Duration::from_secs(1));
    let (req, _) = puts(poll(&mut c, t0)).remove(0);
    // The request fails and would be retried, but the deadline passes first.
    let t1 = t0 + Duration::from_secs(1);
    c.put_done(req, Err(CallError::new("InternalFailure", "")), t1);
    let _ = poll(&mut c, t1);
    assert!(matches!(
        rx.try_recv(),
        Ok(Err(PutError::ShutdownTimeout { .. }))
    ));
    assert!(c.finished());
    let report = c.report();
    assert_eq!((report.records, report.failed, report.timed_out), (1, 1, 1));
    assert!(!report.is_clean());
}

#[test]
fn dropping_every_handle_fails_queued_records_and_finishes() {
    let t0 = Instant::now();
    let mut c = core(ProducerConfig::default(), two_shards(), t0);
    let mut rx = record(&mut c, "k", 10, t0);
    c.close();
    assert!(matches!(rx.try_recv(), Ok(Err(PutError::Dropped))));
    assert!(c.finished());
}

#[test]
fn huge_durations_do_not_overflow() {
    let t0 = Instant::now();
    let cfg = ProducerConfig::default()
        .record_ttl(Duration::MAX)
        .record_max_buffered_time(Duration::MAX)
        .retry_max_backoff(Duration::MAX);
    let mut c = core(cfg, two_shards(), t0);
    let _rx = record(&mut c, "k", 10, t0);
    assert!(puts(poll(&mut c, t0)).is_empty());
    assert!(c.next_wake(t0).is_some_and(|t| t > t0));
    c.shutdown(later(t0, Duration::MAX));
    assert_eq!(puts(poll(&mut c, t0)).len(), 1, "a shutdown flushes");
}

#[test]
fn after_the_shutdown_deadline_the_core_does_not_ask_to_be_woken_in_the_past() {
    let t0 = Instant::now();
    let mut c = core(ProducerConfig::default(), two_shards(), t0);
    let _rx = record(&mut c, "k", 10, t0);
    c.shutdown(t0 + Duration::from_millis(10));
    let sent = puts(poll(&mut c, t0));
    assert_eq!(sent.len(), 1, "in flight");
    let t1 = t0 + Duration::from_secs(1);
    let _ = poll(&mut c, t1);
    assert!(!c.finished(), "the request in flight has no answer yet");
    assert!(
        c.next_wake(t1).is_none_or(|w| w > t1),
        "a wake-up in the past would spin until the request answers"
    );
}

#[test]
fn a_landing_shard_missing_from_the_new_map_is_checked_again_not_resent() {
    let t0 = Instant::now();
    let halves = HashKeyRange::split_evenly(2);
    let mut c = core(ProducerConfig::default(), two_shards(), t0);
    let quarters = HashKeyRange::split_evenly(4);
    let mut rxs: Vec<Rx> = (0..2)
        .map(|i| record(&mut c, &key_in(quarters[0], &format!("k{i}")), 10, t0))
        .collect();
    let (ftx, _f) = oneshot::channel();
    c.flush(ftx);
    let (req, _) = puts(poll(&mut c, t0)).remove(0);
    c.put_done(req, Ok(ok_results(&c, req, "shard-2")), t0);
    let _ = poll(&mut c, t0);
    // A listing taken before shard-2 existed.
    c.map_loaded(Ok(Some(two_shards())), t0);
    let actions = poll(&mut c, t0);
    assert!(puts(actions).is_empty(), "nothing resent on a guess");
    assert!(rxs.iter_mut().all(|rx| rx.try_recv().is_err()));
    // The refresh is asked again, after a backoff, not at once.
    let wake = c.next_wake(t0).expect("a refresh later");
    assert!(wake > t0);
    let t1 = t0 + Duration::from_secs(10);
    let actions = poll(&mut c, t1);
    assert!(actions.iter().any(|a| matches!(a, Action::ListShards)));
    let new = map(&[
        ("shard-0", halves[0], true),
        ("shard-1", halves[1], false),
        ("shard-2", quarters[0], false),
        ("shard-3", quarters[1], false),
    ]);
    c.map_loaded(Ok(Some(new)), t1);
    assert!(puts(poll(&mut c, t1)).is_empty());
    for rx in &mut rxs {
        assert_eq!(
            &*rx.try_recv().expect("resolved").expect("stored").shard_id,
            "shard-2"
        );
    }
}

#[test]
fn a_request_holds_one_aggregate_per_shard_under_per_key_ordering() {
    let t0 = Instant::now();
    let cfg = ProducerConfig::default().aggregation_max_count(2);
    let mut c = core(cfg, two_shards(), t0);
    for _ in 0..6 {
        drop(record(&mut c, "k", 10, t0));
    }
    let (ftx, _f) = oneshot::channel();
    c.flush(ftx);
    let sent = puts(poll(&mut c, t0));
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].1.len(),
        1,
        "a second aggregate would hold the same key"
    );
}

#[test]
fn near_the_outstanding_bytes_limit_records_are_due_at_once() {
    let t0 = Instant::now();
    let cfg = ProducerConfig::default().max_outstanding_bytes(2 * 1024 * 1024);
    let mut c = core(cfg, two_shards(), t0);
    drop(record(&mut c, "k", 100, t0));
    assert!(
        puts(poll(&mut c, t0)).is_empty(),
        "plenty of room: buffered"
    );
    drop(record(&mut c, "k", 1024 * 1024, t0));
    assert_eq!(
        puts(poll(&mut c, t0)).len(),
        1,
        "senders would wait: sent now"
    );
}
