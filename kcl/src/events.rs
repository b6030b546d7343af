//! What the coordinator tells the shard consumers.

use crate::lease::{Lease, LeaseKey};
use tokio::sync::mpsc;

/// Why a lease was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LostReason {
    /// A conditional write found another owner or counter: another worker took it.
    TakenByOther,
    /// It could not be renewed within the failover time (throttling, outage).
    NotRenewed,
}

/// An event for the shard consumers of this worker.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LeaseEvent {
    /// This worker now holds the lease: start its shard consumer (once
    /// [`Coordinator::may_start`](crate::Coordinator::may_start) says so).
    Acquired(Box<Lease>),
    /// The lease is no longer held: stop its shard consumer at once, without checkpointing.
    Lost {
        /// The lease.
        key: LeaseKey,
        /// Why.
        reason: LostReason,
    },
    /// Another worker asked for the lease: finish the batch in hand, checkpoint, then call
    /// [`Coordinator::hand_off`](crate::Coordinator::hand_off).
    HandoffRequested {
        /// The lease.
        key: LeaseKey,
        /// The worker asking.
        to: String,
    },
    /// This worker holds more leases than `max_leases_per_worker`: finish, checkpoint, then
    /// call [`Coordinator::release`](crate::Coordinator::release).
    ReleaseRequested {
        /// The lease.
        key: LeaseKey,
    },
}

impl LeaseEvent {
    /// The lease the event is about.
    pub fn key(&self) -> &LeaseKey {
        match self {
            LeaseEvent::Acquired(l) => &l.key,
            LeaseEvent::Lost { key, .. }
            | LeaseEvent::HandoffRequested { key, .. }
            | LeaseEvent::ReleaseRequested { key } => key,
        }
    }
}

/// The events of one coordinator, in the order they happened.
#[derive(Debug)]
pub struct LeaseEvents {
    pub(crate) rx: mpsc::UnboundedReceiver<LeaseEvent>,
}

impl LeaseEvents {
    /// The next event; `None` once the coordinator is shut down or dropped and every event
    /// was read.
    pub async fn recv(&mut self) -> Option<LeaseEvent> {
        self.rx.recv().await
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<LeaseEvent> {
        self.rx.try_recv().ok()
    }
}
