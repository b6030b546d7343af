//! The async shell around the [`Core`]: receives commands from producer handles, runs the
//! calls the core asks for (each with a timeout) and feeds their results back, and sleeps
//! until the core's next wake-up.

use crate::classify::CallError;
use crate::core::{Action, Core, EntryResult, ShutdownReport};
use crate::outstanding::FlushReport;
use crate::queue::{Pending, WireEntry};
use crate::shard_map::ShardMap;
use crate::stream::StreamRef;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;

/// Commands from producer handles.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // records dominate; boxing each would cost an allocation
pub(crate) enum Cmd {
    Record(Pending),
    Flush(oneshot::Sender<FlushReport>),
    Shutdown(Instant),
}

enum Event {
    Put {
        request: u64,
        result: Result<Vec<EntryResult>, CallError>,
    },
    Map(Result<Option<ShardMap>, CallError>),
}

/// Lists every shard of the stream (all pages), each call limited to `timeout`.
pub(crate) async fn list_shards(
    client: &Client,
    stream: &StreamRef,
    timeout: Duration,
) -> Result<Option<ShardMap>, CallError> {
    let mut map = ShardMap::default();
    let mut token: Option<String> = None;
    loop {
        let req = match &token {
            Some(t) => client.list_shards().next_token(t),
            None => stream.apply_list(client.list_shards()),
        };
        let resp = match tokio::time::timeout(timeout, req.send()).await {
            Err(_) => return Err(CallError::timeout("ListShards", timeout)),
            Ok(Err(e)) => return Err(CallError::from_sdk(&e)),
            Ok(Ok(resp)) => resp,
        };
        for s in resp.shards() {
            let Some(r) = s.hash_key_range() else {
                continue;
            };
            let closed = s
                .sequence_number_range()
                .is_some_and(|q| q.ending_sequence_number().is_some());
            map.add(
                s.shard_id(),
                r.starting_hash_key(),
                r.ending_hash_key(),
                closed,
            );
        }
        token = resp.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    Ok(map.finish())
}

/// The running pipeline.
pub(crate) struct Driver {
    core: Core,
    client: Client,
    stream: StreamRef,
    timeout: Duration,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
    done: watch::Sender<Option<ShutdownReport>>,
}

impl Driver {
    pub fn new(
        core: Core,
        client: Client,
        stream: StreamRef,
        timeout: Duration,
        done: watch::Sender<Option<ShutdownReport>>,
    ) -> Self {
        // Unbounded, yet bounded in practice: one event per call in flight (at most
        // `max_connections` requests and one listing).
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Driver {
            core,
            client,
            stream,
            timeout,
            events_tx,
            events_rx,
            done,
        }
    }

    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Cmd>) {
        let mut actions = Vec::new();
        let mut open = true;
        let mut drained = false;
        loop {
            let now = Instant::now();
            self.core.poll(now, &mut actions);
            for action in actions.drain(..) {
                self.execute(action);
            }
            if self.core.finished() {
                if drained {
                    break;
                }
                // Stop taking commands, then handle those that raced with the end: records
                // already accepted are processed like any other (sends from now on fail
                // with `SendError::Closed`), flushes are answered.
                commands.close();
                while let Ok(cmd) = commands.try_recv() {
                    self.command(cmd, Instant::now());
                }
                drained = true;
                open = false;
                continue;
            }
            let wake = self.core.next_wake(now);
            tokio::select! {
                cmd = commands.recv(), if open => match cmd {
                    Some(cmd) => {
                        let now = Instant::now();
                        self.command(cmd, now);
                        // Take whatever else is waiting before the next poll.
                        for _ in 0..4096 {
                            match commands.try_recv() {
                                Ok(cmd) => self.command(cmd, now),
                                Err(_) => break,
                            }
                        }
                    }
                    None => {
                        open = false;
                        self.core.close();
                    }
                },
                Some(event) = self.events_rx.recv() => {
                    let now = Instant::now();
                    match event {
                        Event::Put { request, result } => self.core.put_done(request, result, now),
                        Event::Map(result) => self.core.map_loaded(result, now),
                    }
                }
                _ = sleep_until(wake) => {}
            }
        }
        let report = self.core.report();
        self.done.send_replace(Some(report));
        tracing::debug!(target: "kpl", ?report, "producer pipeline stopped");
    }

    fn command(&mut self, cmd: Cmd, now: Instant) {
        match cmd {
            Cmd::Record(p) => self.core.record(p, now),
            Cmd::Flush(waiter) => self.core.flush(waiter),
            Cmd::Shutdown(deadline) => self.core.shutdown(deadline),
        }
    }

    fn execute(&self, action: Action) {
        let events = self.events_tx.clone();
        let timeout = self.timeout;
        match action {
            Action::ListShards => {
                let client = self.client.clone();
                let stream = self.stream.clone();
                tokio::spawn(async move {
                    let guard = Guard::new(events, None);
                    let result = list_shards(&client, &stream, timeout).await;
                    guard.send(Event::Map(result));
                });
            }
            Action::Put { request, entries } => {
                let span = tracing::debug_span!(target: "kpl", "put_records", request, records = entries.len());
                let entries = match sdk_entries(entries) {
                    Ok(entries) => entries,
                    Err(err) => {
                        let _ = events.send(Event::Put {
                            request,
                            result: Err(err),
                        });
                        return;
                    }
                };
                let req = self
                    .stream
                    .apply_put(self.client.put_records())
                    .set_records(Some(entries));
                tokio::spawn(
                    async move {
                        let guard = Guard::new(events, Some(request));
                        let result = match tokio::time::timeout(timeout, req.send()).await {
                            Err(_) => Err(CallError::timeout("PutRecords", timeout)),
                            Ok(Err(err)) => Err(CallError::from_sdk(&err)),
                            Ok(Ok(out)) => Ok(out
                                .records()
                                .iter()
                                .map(|r| match (r.shard_id(), r.sequence_number(), r.error_code()) {
                                    (Some(shard), Some(seq), None) => {
                                        Ok((shard.to_owned(), seq.to_owned()))
                                    }
                                    (_, _, code) => Err(CallError::new(
                                        code.unwrap_or("InternalFailure"),
                                        r.error_message().unwrap_or(""),
                                    )),
                                })
                                .collect()),
                        };
                        if let Err(ref e) = result {
                            tracing::debug!(target: "kpl", code = %e.code, message = %e.message, "PutRecords failed");
                        }
                        guard.send(Event::Put { request, result });
                    }
                    .instrument(span),
                );
            }
        }
    }
}

/// The SDK's entries; if one cannot be built (it cannot: key and data are always set), the
/// whole request fails rather than shifting the per-record results.
fn sdk_entries(entries: Vec<WireEntry>) -> Result<Vec<PutRecordsRequestEntry>, CallError> {
    entries
        .into_iter()
        .map(|e| {
            PutRecordsRequestEntry::builder()
                .partition_key(e.pk)
                .set_explicit_hash_key(e.ehk)
                .data(Blob::new(e.data.to_vec()))
                .build()
                .map_err(|err| CallError::new("ClientError", err.to_string()))
        })
        .collect()
}

/// Reports a call's end even if its task panics or is aborted: the core never waits for a
/// request that will not answer.
struct Guard {
    events: mpsc::UnboundedSender<Event>,
    request: Option<u64>,
    sent: bool,
}

impl Guard {
    fn new(events: mpsc::UnboundedSender<Event>, request: Option<u64>) -> Self {
        Guard {
            events,
            request,
            sent: false,
        }
    }

    fn send(mut self, event: Event) {
        self.sent = true;
        let _ = self.events.send(event);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.sent {
            return;
        }
        let err = CallError::new("InternalFailure", "the call's task ended without an answer");
        let event = match self.request {
            Some(request) => Event::Put {
                request,
                result: Err(err),
            },
            None => Event::Map(Err(err)),
        };
        let _ = self.events.send(event);
    }
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
