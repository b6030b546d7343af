//! Shard discovery decisions, without I/O: which leases an empty table needs, which are
//! missing later, which child leases a shard end creates, which finished leases may go, and
//! whether a lease may start.

use crate::config::InitialPosition;
use crate::lease::{Checkpoint, Lease, LeaseKey};
use std::collections::{HashMap, HashSet};

/// A shard as `ListShards` (or `ChildShards`) describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    /// The shard id.
    pub id: String,
    /// Its parent and adjacent parent, if any.
    pub parents: Vec<String>,
    /// Its hash key range, decimal, inclusive.
    pub hash_range: (String, String),
    /// Whether it has an ending sequence number (closed by a reshard).
    pub closed: bool,
}

fn new_lease(shard: &ShardInfo, checkpoint: Checkpoint) -> Lease {
    let mut lease = Lease::new(LeaseKey::shard(&shard.id), checkpoint);
    lease.parent_shard_ids = shard.parents.clone();
    lease.parent_shard_ids.sort();
    // A shard without a hash key range (none given) gets no range attributes, never empty
    // strings.
    if !shard.hash_range.0.is_empty() && !shard.hash_range.1.is_empty() {
        lease.hash_range = Some(shard.hash_range.clone());
    }
    lease
}

/// The leases of an empty table. `TrimHorizon`: every shard listed, closed ancestors too, so
/// parents are processed before children. `Latest`: the open shards. `AtTimestamp`: the
/// shards listed (the caller lists those open at the timestamp).
pub(crate) fn initial_leases(shards: &[ShardInfo], position: InitialPosition) -> Vec<Lease> {
    let (checkpoint, only_open) = match position {
        InitialPosition::TrimHorizon => (Checkpoint::TrimHorizon, false),
        InitialPosition::Latest => (Checkpoint::Latest, true),
        InitialPosition::AtTimestamp(_) => (Checkpoint::AtTimestamp, false),
    };
    shards
        .iter()
        .filter(|s| !only_open || !s.closed)
        .map(|s| new_lease(s, checkpoint.clone()))
        .collect()
}

/// Leases for listed shards that have none (a deleted row, a missed shard end), each starting
/// at `TRIM_HORIZON` so nothing is skipped. A shard without a lease gets one when
/// - a child has a lease at `TRIM_HORIZON` and no child has started: its row went before it
///   finished (a finished parent is only deleted once every child started);
/// - or none of its descendants has a lease, and each listed parent has a lease (or gets one
///   in this pass) or is done (without a lease, with a started child).
///
/// Shards left out on purpose (ancestors of a `LATEST` start, parents cleaned up once their
/// children started) keep no lease.
pub(crate) fn missing_leases(shards: &[ShardInfo], leases: &[Lease]) -> Vec<Lease> {
    let by_shard: HashMap<&str, &Lease> = leases.iter().map(|l| (l.key.shard_id(), l)).collect();
    let listed: HashSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
    let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut children: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (child, ps) in shards.iter().map(|s| (s.id.as_str(), &s.parents)).chain(
        leases
            .iter()
            .map(|l| (l.key.shard_id(), &l.parent_shard_ids)),
    ) {
        for p in ps {
            parents.entry(child).or_default().push(p.as_str());
            children.entry(p.as_str()).or_default().insert(child);
        }
    }
    let started = |c: &str| {
        by_shard
            .get(c)
            .is_some_and(|l| l.checkpoint.checkpoint.is_started())
    };
    let kids = |s: &str| children.get(s).into_iter().flatten().copied();
    // Every ancestor of a leased shard.
    let mut ancestors: HashSet<&str> = HashSet::new();
    let mut stack: Vec<&str> = by_shard
        .keys()
        .flat_map(|id| parents.get(id).into_iter().flatten().copied())
        .collect();
    while let Some(id) = stack.pop() {
        if ancestors.insert(id) {
            stack.extend(parents.get(id).into_iter().flatten().copied());
        }
    }
    let done = |p: &str| kids(p).any(started);
    let mut leased: HashSet<&str> = by_shard.keys().copied().collect();
    let mut out = Vec::new();
    loop {
        let mut added = false;
        for s in shards {
            let id = s.id.as_str();
            if leased.contains(id) {
                continue;
            }
            let deleted_unfinished = kids(id).any(|c| {
                by_shard
                    .get(c)
                    .is_some_and(|l| l.checkpoint.checkpoint == Checkpoint::TrimHorizon)
            }) && !kids(id).any(started);
            let parents_ready = s
                .parents
                .iter()
                .all(|p| !listed.contains(p.as_str()) || leased.contains(p.as_str()) || done(p));
            if deleted_unfinished || (!ancestors.contains(id) && parents_ready) {
                out.push(new_lease(s, Checkpoint::TrimHorizon));
                leased.insert(id);
                added = true;
            }
        }
        if !added {
            return out;
        }
    }
}

/// The child leases a shard end creates (checkpoint `TRIM_HORIZON`, parents set).
pub(crate) fn child_leases(children: &[ShardInfo]) -> Vec<Lease> {
    children
        .iter()
        .map(|c| new_lease(c, Checkpoint::TrimHorizon))
        .collect()
}

/// Finished leases that may be deleted: each child (recorded in `childShardIds`, or listed
/// with this parent) has a lease past `TRIM_HORIZON`, or is neither leased nor listed any
/// more (gone with retention).
pub(crate) fn finished_to_delete(shards: &[ShardInfo], leases: &[Lease]) -> Vec<LeaseKey> {
    let by_shard: HashMap<&str, &Lease> = leases.iter().map(|l| (l.key.shard_id(), l)).collect();
    let listed: HashSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
    let mut children: HashMap<&str, HashSet<&str>> = HashMap::new();
    for s in shards {
        for p in &s.parents {
            children
                .entry(p.as_str())
                .or_default()
                .insert(s.id.as_str());
        }
    }
    leases
        .iter()
        .filter(|l| l.is_finished())
        .filter(|l| {
            let mut kids: HashSet<&str> = l.child_shard_ids.iter().map(String::as_str).collect();
            if let Some(more) = children.get(l.key.shard_id()) {
                kids.extend(more);
            }
            !kids.is_empty()
                && kids.iter().all(|c| match by_shard.get(c) {
                    Some(child) => child.checkpoint.checkpoint.is_started(),
                    None => !listed.contains(c),
                })
        })
        .map(|l| l.key.clone())
        .collect()
}

/// Whether a lease may start: no parent lease exists whose checkpoint is not `SHARD_END`.
pub(crate) fn may_start(parents: &[Option<Lease>]) -> bool {
    parents.iter().flatten().all(Lease::is_finished)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: u32, parents: &[u32], closed: bool) -> ShardInfo {
        ShardInfo {
            id: format!("shardId-{id:012}"),
            parents: parents.iter().map(|p| format!("shardId-{p:012}")).collect(),
            hash_range: ("0".into(), "1".into()),
            closed,
        }
    }

    /// 0 split into 1 and 2; 1 and 2 merged into 3; 4 an unrelated open shard.
    fn history() -> Vec<ShardInfo> {
        vec![
            shard(0, &[], true),
            shard(1, &[0], true),
            shard(2, &[0], true),
            shard(3, &[1, 2], false),
            shard(4, &[], false),
        ]
    }

    fn ids(leases: &[Lease]) -> Vec<&str> {
        leases.iter().map(|l| l.key.shard_id()).collect()
    }

    #[test]
    fn trim_horizon_leases_the_whole_tree_with_parents() {
        let leases = initial_leases(&history(), InitialPosition::TrimHorizon);
        assert_eq!(leases.len(), 5);
        let merged = &leases[3];
        assert_eq!(
            merged.parent_shard_ids,
            ["shardId-000000000001", "shardId-000000000002"]
        );
        assert!(
            leases
                .iter()
                .all(|l| l.checkpoint.checkpoint == Checkpoint::TrimHorizon)
        );
    }

    #[test]
    fn latest_leases_the_open_shards_only() {
        let leases = initial_leases(&history(), InitialPosition::Latest);
        assert_eq!(
            ids(&leases),
            ["shardId-000000000003", "shardId-000000000004"]
        );
        assert!(
            leases
                .iter()
                .all(|l| l.checkpoint.checkpoint == Checkpoint::Latest)
        );
        // The ancestors left out stay without leases.
        assert!(missing_leases(&history(), &leases).is_empty());
    }

    #[test]
    fn a_deleted_row_is_recreated_and_a_missed_child_too() {
        let mut leases = initial_leases(&history(), InitialPosition::TrimHorizon);
        leases.retain(|l| l.key.shard_id() != "shardId-000000000004");
        let missing = missing_leases(&history(), &leases);
        assert_eq!(ids(&missing), ["shardId-000000000004"]);
        // A split child whose lease was never created, the parents still leased.
        leases.retain(|l| l.key.shard_id() != "shardId-000000000003");
        let missing = missing_leases(&history(), &leases);
        assert_eq!(
            ids(&missing),
            ["shardId-000000000003", "shardId-000000000004"]
        );
        assert_eq!(missing[0].checkpoint.checkpoint, Checkpoint::TrimHorizon);
        // A table that lost the whole tree gets it all back, parents first.
        let all = missing_leases(&history(), &[]);
        assert_eq!(all.len(), 5);
    }

    #[test]
    fn a_parent_deleted_before_it_finished_comes_back_but_a_cleaned_one_does_not() {
        let mut leases = initial_leases(&history(), InitialPosition::TrimHorizon);
        // Shard 0 finished and was cleaned up once 1 and 2 started; 1 finished too.
        leases.retain(|l| l.key.shard_id() != "shardId-000000000000");
        leases[0].checkpoint.checkpoint = Checkpoint::ShardEnd;
        leases[1].checkpoint.checkpoint = Checkpoint::Sequence("9".into());
        assert!(missing_leases(&history(), &leases).is_empty());
        // The row of 1 is deleted: 0 is done (2 started), so 1 comes back.
        let without_1: Vec<Lease> = leases
            .iter()
            .filter(|l| l.key.shard_id() != "shardId-000000000001")
            .cloned()
            .collect();
        assert_eq!(
            ids(&missing_leases(&history(), &without_1)),
            ["shardId-000000000001"]
        );
        // A split parent deleted while unfinished, its children not started: it comes back.
        let mut fresh = initial_leases(&history(), InitialPosition::TrimHorizon);
        fresh.retain(|l| l.key.shard_id() != "shardId-000000000000");
        assert_eq!(
            ids(&missing_leases(&history(), &fresh)),
            ["shardId-000000000000"]
        );
    }

    #[test]
    fn a_finished_parent_goes_only_after_every_child_started() {
        let mut leases = initial_leases(&history(), InitialPosition::TrimHorizon);
        leases[0].checkpoint.checkpoint = Checkpoint::ShardEnd;
        leases[0].child_shard_ids =
            vec!["shardId-000000000001".into(), "shardId-000000000002".into()];
        assert!(finished_to_delete(&history(), &leases).is_empty());
        leases[1].checkpoint.checkpoint = Checkpoint::Sequence("5".into());
        assert!(finished_to_delete(&history(), &leases).is_empty());
        leases[2].checkpoint.checkpoint = Checkpoint::ShardEnd;
        let keys = finished_to_delete(&history(), &leases);
        assert_eq!(keys, vec![LeaseKey::shard("shardId-000000000000")]);
    }

    #[test]
    fn a_child_waits_for_every_parent() {
        let mut p1 = Lease::new(LeaseKey::shard("a"), Checkpoint::ShardEnd);
        let p2 = Lease::new(LeaseKey::shard("b"), Checkpoint::Sequence("7".into()));
        assert!(!may_start(&[Some(p1.clone()), Some(p2.clone())]));
        assert!(may_start(&[Some(p1.clone()), None]));
        p1.checkpoint.checkpoint = Checkpoint::TrimHorizon;
        assert!(!may_start(&[Some(p1), None]));
        assert!(may_start(&[]));
    }
}
