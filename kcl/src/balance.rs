//! The lease-taking decisions, without I/O: given the leases observed in the table, the leases
//! this worker holds and `now`, which leases to take, adopt, ask for, take from an owner that
//! did not hand off, or stop asking for.
//!
//! Expiry is judged on this worker's own monotonic clock: a lease owned by another worker is
//! expired when its counter (or owner) has not changed for `failover` since this worker first
//! saw it that way. No wall-clock time from other machines is compared.

use crate::lease::{Lease, LeaseKey};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone)]
struct Seen {
    counter: u64,
    owner: Option<String>,
    since: Instant,
}

#[derive(Debug, Clone)]
struct Request {
    owner: String,
    since: Instant,
}

/// What one take round should do.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Plan {
    /// Unowned or expired leases to take, as observed.
    pub take: Vec<Lease>,
    /// Leases the table says this worker owns but it does not hold (handed to it, or held by
    /// an earlier run with the same worker id): held from now on, without a write.
    pub adopt: Vec<Lease>,
    /// `(lease, owner)`: ask the owner to hand the lease over.
    pub request: Vec<(LeaseKey, String)>,
    /// `(lease, owner)`: the owner did not hand off within the failover time: take the lease
    /// from it (if it still owns it and the request is still this worker's).
    pub steal: Vec<(LeaseKey, String)>,
    /// Hand-off requests this worker no longer needs: withdraw them.
    pub cancel: Vec<LeaseKey>,
    /// The number of unfinished leases this worker should hold.
    pub target: usize,
}

/// The take-round state of one worker.
#[derive(Debug)]
pub(crate) struct Balancer {
    me: String,
    failover: Duration,
    max_leases: usize,
    seen: HashMap<LeaseKey, Seen>,
    requests: HashMap<LeaseKey, Request>,
    /// Unfinished leases and live workers (owners of unexpired leases and this worker) of the
    /// last plan, for hand-off decisions between take rounds.
    unfinished: usize,
    live: HashSet<String>,
}

impl Balancer {
    pub(crate) fn new(me: impl Into<String>, failover: Duration, max_leases: usize) -> Self {
        Balancer {
            me: me.into(),
            failover,
            max_leases,
            seen: HashMap::new(),
            requests: HashMap::new(),
            unfinished: 0,
            live: HashSet::new(),
        }
    }

    /// Records the leases of a table scan: a lease whose counter or owner changed is fresh.
    pub(crate) fn observe(&mut self, leases: &[Lease], now: Instant) {
        let present: HashSet<&LeaseKey> = leases.iter().map(|l| &l.key).collect();
        self.seen.retain(|k, _| present.contains(k));
        for l in leases {
            match self.seen.get_mut(&l.key) {
                Some(s) if s.counter == l.counter && s.owner == l.owner => {}
                Some(s) => {
                    *s = Seen {
                        counter: l.counter,
                        owner: l.owner.clone(),
                        since: now,
                    }
                }
                None => {
                    self.seen.insert(
                        l.key.clone(),
                        Seen {
                            counter: l.counter,
                            owner: l.owner.clone(),
                            since: now,
                        },
                    );
                }
            }
        }
    }

    /// Whether another worker's lease has not moved for the failover time.
    pub(crate) fn is_expired(&self, lease: &Lease, now: Instant) -> bool {
        match self.seen.get(&lease.key) {
            Some(s) => s.counter == lease.counter && now.duration_since(s.since) >= self.failover,
            None => false,
        }
    }

    /// The next moment after `now` at which a lease observed as another worker's would expire,
    /// or an outstanding hand-off request would become a steal, if nothing moves before: a
    /// take round then, rather than up to a take interval later, keeps failover within the
    /// failover time plus one take interval.
    pub(crate) fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let expiries = self
            .seen
            .values()
            .filter(|s| s.owner.as_ref().is_some_and(|o| *o != self.me))
            .map(|s| s.since + self.failover);
        let steals = self.requests.values().map(|r| r.since + self.failover);
        expiries.chain(steals).filter(|t| *t > now).min()
    }

    /// Notes that a hand-off request was recorded on the lease item.
    pub(crate) fn requested(&mut self, key: LeaseKey, owner: String, now: Instant) {
        self.requests.insert(key, Request { owner, since: now });
    }

    /// Forgets a hand-off request (granted, withdrawn or overtaken).
    pub(crate) fn forget_request(&mut self, key: &LeaseKey) {
        self.requests.remove(key);
    }

    /// The hand-off requests outstanding.
    pub(crate) fn outstanding_requests(&self) -> Vec<LeaseKey> {
        self.requests.keys().cloned().collect()
    }

    /// Whether to grant a hand-off request from `requester`: the target is that of the last
    /// scan with the requester counted as live (it may hold nothing yet), and this worker
    /// must stay above it after every grant in progress.
    pub(crate) fn may_hand_off(
        &self,
        held_unfinished: usize,
        granting: usize,
        requester: &str,
    ) -> bool {
        let live = self.live.len().max(1) + usize::from(!self.live.contains(requester));
        let target = self.unfinished.div_ceil(live).min(self.max_leases);
        held_unfinished.saturating_sub(granting) > target
    }

    /// Plans a take round over `leases` (just observed), with `held` the unfinished and
    /// finished leases this worker holds.
    pub(crate) fn plan(
        &mut self,
        leases: &[Lease],
        held: &HashSet<LeaseKey>,
        now: Instant,
    ) -> Plan {
        let mut plan = Plan::default();
        let unfinished: Vec<&Lease> = leases.iter().filter(|l| !l.is_finished()).collect();
        let mut live: HashSet<&str> = HashSet::from([self.me.as_str()]);
        let mut by_owner: BTreeMap<&str, Vec<&Lease>> = BTreeMap::new();
        let mut takeable: Vec<(bool, &Lease)> = Vec::new();
        let mut mine = 0usize;
        for l in &unfinished {
            if held.contains(&l.key) {
                mine += 1;
                continue;
            }
            match l.owner.as_deref() {
                Some(o) if o == self.me => plan.adopt.push((*l).clone()),
                None => takeable.push((false, l)),
                Some(_) if self.is_expired(l, now) => takeable.push((true, l)),
                Some(o) => {
                    live.insert(o);
                    by_owner.entry(o).or_default().push(l);
                }
            }
        }
        mine += plan.adopt.len();
        let target = unfinished.len().div_ceil(live.len()).min(self.max_leases);
        self.unfinished = unfinished.len();
        self.live = live.iter().map(|w| (*w).to_owned()).collect();
        plan.target = target;
        let mut need = target.saturating_sub(mine);

        // Unowned before expired, then by key.
        takeable.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.key.cmp(&b.1.key)));
        for (_, l) in takeable.into_iter().take(need) {
            plan.take.push(l.clone());
        }
        need -= plan.take.len();

        // Requests already made: granted, overtaken, timed out, or still pending. A request on
        // the table this worker has no record of (its write timed out but landed) counts too.
        let by_key: HashMap<&LeaseKey, &Lease> = leases.iter().map(|l| (&l.key, l)).collect();
        for l in &unfinished {
            if l.handoff_to.as_deref() == Some(self.me.as_str())
                && !self.requests.contains_key(&l.key)
                && let Some(owner) = l.owner.as_deref().filter(|o| *o != self.me)
            {
                self.requests.insert(
                    l.key.clone(),
                    Request {
                        owner: owner.to_owned(),
                        since: now,
                    },
                );
            }
        }
        let mut keys: Vec<LeaseKey> = self.requests.keys().cloned().collect();
        keys.sort();
        for key in keys {
            let Some(req) = self.requests.get(&key).cloned() else {
                continue;
            };
            let still_owned = by_key
                .get(&key)
                .filter(|l| !l.is_finished() && l.owner.as_deref() == Some(req.owner.as_str()))
                .filter(|l| !plan.take.iter().any(|t| t.key == l.key));
            let Some(lease) = still_owned else {
                // Granted, taken, finished or gone. A write of ours that changed the owner
                // cleared the request; one by another client (a Java KCL take) may not have.
                self.requests.remove(&key);
                if let Some(l) = by_key.get(&key)
                    && l.handoff_to.as_deref() == Some(self.me.as_str())
                    && l.owner.as_deref() != Some(self.me.as_str())
                {
                    plan.cancel.push(key.clone());
                }
                continue;
            };
            let owner_load = by_owner.get(req.owner.as_str()).map_or(0, Vec::len);
            let wanted = need > 0 && owner_load > target;
            if !wanted || lease.handoff_to.as_deref() != Some(self.me.as_str()) {
                plan.cancel.push(key.clone());
                self.requests.remove(&key);
            } else if now.duration_since(req.since) >= self.failover {
                plan.steal.push((key.clone(), req.owner.clone()));
                self.requests.remove(&key);
                need -= 1;
                if let Some(list) = by_owner.get_mut(req.owner.as_str()) {
                    list.retain(|l| l.key != key);
                }
            } else {
                need -= 1;
            }
        }

        // New requests, most-loaded owner first, never taking an owner below the target.
        let mut owners: Vec<(&str, &Vec<&Lease>)> = by_owner.iter().map(|(o, l)| (*o, l)).collect();
        owners.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(b.0)));
        for (owner, owned) in owners {
            if need == 0 {
                break;
            }
            // Leases already asked for, by any worker, are not spare.
            let asked = owned.iter().filter(|l| l.handoff_to.is_some()).count();
            let spare = owned.len().saturating_sub(target).saturating_sub(asked);
            let candidates = owned
                .iter()
                .filter(|l| l.handoff_to.is_none() && !self.requests.contains_key(&l.key))
                .take(spare.min(need));
            for l in candidates {
                plan.request.push((l.key.clone(), owner.to_owned()));
                need -= 1;
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::Checkpoint;

    fn lease(i: usize, owner: Option<&str>, counter: u64) -> Lease {
        let mut l = Lease::new(
            LeaseKey::shard(format!("shardId-{i:012}")),
            Checkpoint::TrimHorizon,
        );
        l.owner = owner.map(str::to_owned);
        l.counter = counter;
        l
    }

    fn keys(leases: &[Lease]) -> Vec<String> {
        leases.iter().map(|l| l.key.to_string()).collect()
    }

    #[test]
    fn the_first_round_takes_every_unowned_lease() {
        let now = Instant::now();
        let mut b = Balancer::new("w1", Duration::from_secs(10), usize::MAX);
        let leases: Vec<Lease> = (0..8).map(|i| lease(i, None, 0)).collect();
        b.observe(&leases, now);
        let plan = b.plan(&leases, &HashSet::new(), now);
        assert_eq!(plan.target, 8);
        assert_eq!(plan.take.len(), 8);
        assert!(plan.request.is_empty());
    }

    #[test]
    fn the_next_deadline_is_the_first_expiry_still_ahead() {
        let t0 = Instant::now();
        let failover = Duration::from_secs(10);
        let mut b = Balancer::new("w1", failover, usize::MAX);
        let first = vec![lease(0, Some("w2"), 1), lease(1, Some("w1"), 1)];
        b.observe(&first, t0);
        let t1 = t0 + Duration::from_secs(4);
        b.observe(
            &[
                lease(0, Some("w2"), 1),
                lease(1, Some("w1"), 2),
                lease(2, None, 0),
            ],
            t1,
        );
        // Only the other worker's lease counts (ours is renewed, an unowned one is takeable).
        assert_eq!(b.next_deadline(t1), Some(t0 + failover));
        // Once past, it is no deadline any more (a round ran at it): nothing is left.
        assert_eq!(b.next_deadline(t0 + failover), None);
        b.requested(LeaseKey::shard("shardId-000000000000"), "w2".into(), t1);
        assert_eq!(b.next_deadline(t0 + failover), Some(t1 + failover));
    }

    #[test]
    fn max_leases_caps_the_target() {
        let now = Instant::now();
        let mut b = Balancer::new("w1", Duration::from_secs(10), 3);
        let leases: Vec<Lease> = (0..8).map(|i| lease(i, None, 0)).collect();
        b.observe(&leases, now);
        assert_eq!(b.plan(&leases, &HashSet::new(), now).take.len(), 3);
    }

    #[test]
    fn another_workers_lease_expires_only_after_failover_without_change() {
        let t0 = Instant::now();
        let failover = Duration::from_secs(10);
        let mut b = Balancer::new("w1", failover, usize::MAX);
        let mut leases = vec![lease(0, Some("w2"), 5)];
        b.observe(&leases, t0);
        assert!(!b.is_expired(&leases[0], t0 + failover - Duration::from_millis(1)));
        // The counter moved: fresh again.
        leases[0].counter = 6;
        b.observe(&leases, t0 + Duration::from_secs(9));
        assert!(!b.is_expired(&leases[0], t0 + Duration::from_secs(18)));
        assert!(b.is_expired(&leases[0], t0 + Duration::from_secs(19)));
        let plan = b.plan(&leases, &HashSet::new(), t0 + Duration::from_secs(19));
        assert_eq!(keys(&plan.take), ["shardId-000000000000"]);
    }

    #[test]
    fn finished_leases_do_not_count_toward_the_target() {
        let now = Instant::now();
        let mut b = Balancer::new("w1", Duration::from_secs(10), usize::MAX);
        let mut leases: Vec<Lease> = (0..4).map(|i| lease(i, Some("w2"), 1)).collect();
        for l in &mut leases[..2] {
            l.checkpoint.checkpoint = Checkpoint::ShardEnd;
        }
        b.observe(&leases, now);
        let plan = b.plan(&leases, &HashSet::new(), now);
        // 2 unfinished leases, 2 live workers.
        assert_eq!(plan.target, 1);
        assert_eq!(plan.request.len(), 1);
    }

    #[test]
    fn a_newcomer_asks_the_most_loaded_owners_without_driving_them_below_target() {
        let now = Instant::now();
        let mut b = Balancer::new("w3", Duration::from_secs(10), usize::MAX);
        let mut leases: Vec<Lease> = (0..5).map(|i| lease(i, Some("w1"), 1)).collect();
        leases.extend((5..9).map(|i| lease(i, Some("w2"), 1)));
        b.observe(&leases, now);
        let plan = b.plan(&leases, &HashSet::new(), now);
        // 9 leases over 3 workers: 3 each; w1 gives 2, w2 gives 1.
        assert_eq!(plan.target, 3);
        let mut from: HashMap<String, usize> = HashMap::new();
        for (_, owner) in &plan.request {
            *from.entry(owner.clone()).or_default() += 1;
        }
        assert_eq!(from.get("w1"), Some(&2));
        assert_eq!(from.get("w2"), Some(&1));
        for (k, o) in &plan.request {
            b.requested(k.clone(), o.clone(), now);
        }
        // The next round asks nothing more while the requests are pending.
        for l in &mut leases {
            if plan.request.iter().any(|(k, _)| *k == l.key) {
                l.handoff_to = Some("w3".into());
            }
        }
        let again = b.plan(&leases, &HashSet::new(), now + Duration::from_secs(1));
        assert!(
            again.request.is_empty() && again.steal.is_empty(),
            "{again:?}"
        );
        // The owners keep renewing, but do not answer within the failover time.
        for l in &mut leases {
            l.counter += 1;
        }
        b.observe(&leases, now + Duration::from_secs(9));
        let late = b.plan(&leases, &HashSet::new(), now + Duration::from_secs(10));
        assert!(late.take.is_empty(), "{late:?}");
        assert_eq!(late.steal.len(), 3);
    }

    #[test]
    fn granted_requests_are_adopted_and_forgotten() {
        let now = Instant::now();
        let mut b = Balancer::new("w2", Duration::from_secs(10), usize::MAX);
        let mut leases: Vec<Lease> = (0..2).map(|i| lease(i, Some("w1"), 1)).collect();
        b.observe(&leases, now);
        let plan = b.plan(&leases, &HashSet::new(), now);
        assert_eq!(plan.request.len(), 1);
        let (key, owner) = plan.request[0].clone();
        b.requested(key.clone(), owner, now);
        let granted = leases.iter_mut().find(|l| l.key == key).expect("requested");
        granted.owner = Some("w2".into());
        granted.counter = 2;
        b.observe(&leases, now);
        let plan = b.plan(&leases, &HashSet::new(), now);
        assert_eq!(keys(&plan.adopt), [key.to_string()]);
        assert!(b.outstanding_requests().is_empty());
        assert!(plan.request.is_empty());
    }

    #[test]
    fn a_request_no_longer_needed_is_withdrawn() {
        let now = Instant::now();
        let mut b = Balancer::new("w2", Duration::from_secs(10), usize::MAX);
        let mut leases: Vec<Lease> = (0..2).map(|i| lease(i, Some("w1"), 1)).collect();
        b.observe(&leases, now);
        let plan = b.plan(&leases, &HashSet::new(), now);
        let (key, owner) = plan.request[0].clone();
        b.requested(key.clone(), owner, now);
        for l in &mut leases {
            if l.key == key {
                l.handoff_to = Some("w2".into());
            }
        }
        // w2 got another lease meanwhile and is at target.
        leases.push(lease(9, Some("w2"), 1));
        let held = HashSet::from([leases[2].key.clone()]);
        b.observe(&leases, now);
        let plan = b.plan(&leases, &held, now);
        assert_eq!(plan.cancel, vec![key]);
    }

    #[test]
    fn leases_another_worker_asked_for_are_not_asked_again() {
        let now = Instant::now();
        let mut b = Balancer::new("w3", Duration::from_secs(10), usize::MAX);
        let mut leases: Vec<Lease> = (0..4).map(|i| lease(i, Some("w1"), 1)).collect();
        leases.push(lease(4, Some("w2"), 1));
        leases.push(lease(5, Some("w2"), 1));
        // w2 already asked w1 for one lease: w1 (4, target 2) has one more to spare.
        leases[0].handoff_to = Some("w2".into());
        b.observe(&leases, now);
        let plan = b.plan(&leases, &HashSet::new(), now);
        assert_eq!(plan.target, 2);
        assert_eq!(plan.request.len(), 1, "{plan:?}");
        assert_eq!(plan.request[0].1, "w1");
        assert_ne!(plan.request[0].0, leases[0].key);
    }

    #[test]
    fn a_request_found_on_the_table_but_not_remembered_is_followed_up() {
        let now = Instant::now();
        let mut b = Balancer::new("w2", Duration::from_secs(10), usize::MAX);
        let mut leases: Vec<Lease> = (0..4).map(|i| lease(i, Some("w1"), 1)).collect();
        // Our request's write timed out but landed.
        leases[0].handoff_to = Some("w2".into());
        b.observe(&leases, now);
        let plan = b.plan(&leases, &HashSet::new(), now);
        assert_eq!(b.outstanding_requests(), vec![leases[0].key.clone()]);
        assert_eq!(plan.request.len(), 1, "one more, not two: {plan:?}");
        // A Java worker takes it without clearing the request: withdrawn.
        leases[0].owner = Some("java".into());
        leases[0].counter = 2;
        b.observe(&leases, now);
        let plan = b.plan(&leases, &HashSet::new(), now);
        assert!(plan.cancel.contains(&leases[0].key), "{plan:?}");
    }

    #[test]
    fn hand_off_is_granted_only_above_target() {
        let now = Instant::now();
        let mut b = Balancer::new("w1", Duration::from_secs(10), usize::MAX);
        let mut leases: Vec<Lease> = (0..4).map(|i| lease(i, Some("w1"), 1)).collect();
        leases[0].handoff_to = Some("w2".into());
        let held: HashSet<LeaseKey> = leases.iter().map(|l| l.key.clone()).collect();
        b.observe(&leases, now);
        let plan = b.plan(&leases, &held, now);
        // Alone in the table, w1's own target is 4; counting the requester it is 2.
        assert_eq!(plan.target, 4);
        assert!(b.may_hand_off(4, 0, "w2"));
        assert!(b.may_hand_off(4, 1, "w2"));
        assert!(!b.may_hand_off(4, 2, "w2"));
        // A stale request does not lower anyone's target for taking.
        assert_eq!(b.plan(&leases, &held, now).target, 4);
    }
}
