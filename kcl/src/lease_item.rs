//! A lease as a DynamoDB item, in the Java KCL 2.x schema, and back.

use crate::error::BadLeaseItem;
use crate::lease::{Checkpoint, ExtendedCheckpoint, Lease, LeaseKey};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// Attribute names of the lease table (Java KCL 2.x), plus our `handoffTo`.
pub(crate) mod attr {
    pub const KEY: &str = "leaseKey";
    pub const OWNER: &str = "leaseOwner";
    pub const COUNTER: &str = "leaseCounter";
    pub const CHECKPOINT: &str = "checkpoint";
    pub const CHECKPOINT_SUB: &str = "checkpointSubSequenceNumber";
    pub const PENDING: &str = "pendingCheckpoint";
    pub const PENDING_SUB: &str = "pendingCheckpointSubSequenceNumber";
    pub const OWNER_SWITCHES: &str = "ownerSwitchesSinceCheckpoint";
    pub const PARENTS: &str = "parentShardId";
    pub const CHILDREN: &str = "childShardIds";
    pub const STARTING_HASH: &str = "startingHashKey";
    pub const ENDING_HASH: &str = "endingHashKey";
    pub const HANDOFF_TO: &str = "handoffTo";
    /// The Java KCL's serialized pending-checkpoint state (B), cleared with the pending
    /// checkpoint.
    pub const PENDING_STATE: &str = "pendingCheckpointState";
}

const KNOWN: [&str; 13] = [
    attr::KEY,
    attr::OWNER,
    attr::COUNTER,
    attr::CHECKPOINT,
    attr::CHECKPOINT_SUB,
    attr::PENDING,
    attr::PENDING_SUB,
    attr::OWNER_SWITCHES,
    attr::PARENTS,
    attr::CHILDREN,
    attr::STARTING_HASH,
    attr::ENDING_HASH,
    attr::HANDOFF_TO,
];

type Item = HashMap<String, AttributeValue>;

struct Reader<'a> {
    item: &'a Item,
    key: String,
}

impl Reader<'_> {
    fn bad(&self, attribute: &'static str, reason: impl Into<String>) -> BadLeaseItem {
        BadLeaseItem {
            key: self.key.clone(),
            attribute,
            reason: reason.into(),
        }
    }

    fn string(&self, name: &'static str) -> Result<Option<String>, BadLeaseItem> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.bad(name, format!("expected a string (S), found {other:?}"))),
        }
    }

    fn number(&self, name: &'static str) -> Result<Option<u64>, BadLeaseItem> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(n)) => n
                .parse::<u64>()
                .map(Some)
                .map_err(|_| self.bad(name, format!("expected a whole number >= 0, found {n}"))),
            Some(other) => Err(self.bad(name, format!("expected a number (N), found {other:?}"))),
        }
    }

    fn string_set(&self, name: &'static str) -> Result<Vec<String>, BadLeaseItem> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(Vec::new()),
            Some(AttributeValue::Ss(list)) => {
                let mut list = list.clone();
                list.sort();
                Ok(list)
            }
            Some(other) => {
                Err(self.bad(name, format!("expected a string set (SS), found {other:?}")))
            }
        }
    }

    fn checkpoint(
        &self,
        name: &'static str,
        sub: &'static str,
    ) -> Result<Option<ExtendedCheckpoint>, BadLeaseItem> {
        let Some(text) = self.string(name)? else {
            return Ok(None);
        };
        let checkpoint = Checkpoint::parse(&text).ok_or_else(|| {
            self.bad(
                name,
                format!("{text:?} is neither a sequence number nor a sentinel"),
            )
        })?;
        Ok(Some(ExtendedCheckpoint {
            checkpoint,
            sub_sequence: self.number(sub)?.unwrap_or(0),
        }))
    }
}

/// Reads a lease item. A lease without a checkpoint is read as `TRIM_HORIZON`, as the Java KCL
/// treats it; anything else out of shape is an error naming the item and the attribute.
pub(crate) fn from_item(item: &Item) -> Result<Lease, BadLeaseItem> {
    let key = match item.get(attr::KEY) {
        Some(AttributeValue::S(s)) if !s.is_empty() => s.clone(),
        _ => {
            return Err(BadLeaseItem {
                key: "<no leaseKey>".into(),
                attribute: attr::KEY,
                reason: "missing or not a non-empty string".into(),
            });
        }
    };
    let r = Reader { item, key };
    let hash_range = match (r.string(attr::STARTING_HASH)?, r.string(attr::ENDING_HASH)?) {
        (Some(start), Some(end)) => Some((start, end)),
        _ => None,
    };
    Ok(Lease {
        key: LeaseKey::from_stored(r.key.clone()),
        owner: r.string(attr::OWNER)?,
        counter: r
            .number(attr::COUNTER)?
            .ok_or_else(|| r.bad(attr::COUNTER, "missing"))?,
        checkpoint: r
            .checkpoint(attr::CHECKPOINT, attr::CHECKPOINT_SUB)?
            .unwrap_or_else(|| ExtendedCheckpoint::new(Checkpoint::TrimHorizon)),
        pending_checkpoint: r.checkpoint(attr::PENDING, attr::PENDING_SUB)?,
        owner_switches_since_checkpoint: r.number(attr::OWNER_SWITCHES)?.unwrap_or(0),
        parent_shard_ids: r.string_set(attr::PARENTS)?,
        child_shard_ids: r.string_set(attr::CHILDREN)?,
        hash_range,
        handoff_to: r.string(attr::HANDOFF_TO)?,
        other: item
            .iter()
            .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    })
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

/// A number attribute.
pub(crate) fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The item of a new lease, in the Java KCL 2.x shape (an empty set is left out: DynamoDB
/// has none). Unknown attributes in `other` are written too.
pub(crate) fn to_item(lease: &Lease) -> Item {
    let mut item: Item = lease
        .other
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    item.insert(attr::KEY.into(), s(lease.key.as_str()));
    if let Some(owner) = &lease.owner {
        item.insert(attr::OWNER.into(), s(owner));
    }
    item.insert(attr::COUNTER.into(), n(lease.counter));
    item.insert(
        attr::CHECKPOINT.into(),
        s(lease.checkpoint.checkpoint.as_str()),
    );
    item.insert(
        attr::CHECKPOINT_SUB.into(),
        n(lease.checkpoint.sub_sequence),
    );
    if let Some(p) = &lease.pending_checkpoint {
        item.insert(attr::PENDING.into(), s(p.checkpoint.as_str()));
        item.insert(attr::PENDING_SUB.into(), n(p.sub_sequence));
    }
    item.insert(
        attr::OWNER_SWITCHES.into(),
        n(lease.owner_switches_since_checkpoint),
    );
    if !lease.parent_shard_ids.is_empty() {
        item.insert(
            attr::PARENTS.into(),
            AttributeValue::Ss(lease.parent_shard_ids.clone()),
        );
    }
    if !lease.child_shard_ids.is_empty() {
        item.insert(
            attr::CHILDREN.into(),
            AttributeValue::Ss(lease.child_shard_ids.clone()),
        );
    }
    if let Some((start, end)) = &lease.hash_range {
        item.insert(attr::STARTING_HASH.into(), s(start));
        item.insert(attr::ENDING_HASH.into(), s(end));
    }
    if let Some(to) = &lease.handoff_to {
        item.insert(attr::HANDOFF_TO.into(), s(to));
    }
    item
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_round_trips_with_unknown_attributes() {
        let mut lease = Lease::new(
            LeaseKey::shard("shardId-000000000003"),
            Checkpoint::TrimHorizon,
        );
        lease.owner = Some("w1".into());
        lease.counter = 7;
        lease.parent_shard_ids = vec!["shardId-000000000000".into(), "shardId-000000000001".into()];
        lease.hash_range = Some(("0".into(), "170141183460469231731687303715884105727".into()));
        lease.pending_checkpoint = Some(ExtendedCheckpoint {
            checkpoint: Checkpoint::Sequence("49590".into()),
            sub_sequence: 2,
        });
        lease
            .other
            .insert("throughputKBps".into(), AttributeValue::N("12.5".into()));
        let item = to_item(&lease);
        assert_eq!(
            item.get("leaseCounter"),
            Some(&AttributeValue::N("7".into()))
        );
        assert!(matches!(
            item.get("parentShardId"),
            Some(AttributeValue::Ss(_))
        ));
        assert!(!item.contains_key("childShardIds"));
        assert_eq!(from_item(&item), Ok(lease));
    }

    #[test]
    fn bad_items_name_the_item_and_the_attribute() {
        let mut item = Item::new();
        assert_eq!(from_item(&item).map_err(|e| e.attribute), Err("leaseKey"));
        item.insert("leaseKey".into(), s("shardId-000000000001"));
        assert_eq!(
            from_item(&item).map_err(|e| e.attribute),
            Err("leaseCounter")
        );
        item.insert("leaseCounter".into(), s("seven"));
        let err = from_item(&item).expect_err("counter is a string");
        assert_eq!(err.key, "shardId-000000000001");
        assert_eq!(err.attribute, "leaseCounter");
        item.insert("leaseCounter".into(), n(1));
        item.insert("checkpoint".into(), s("somewhere"));
        let err = from_item(&item).expect_err("bad checkpoint");
        assert_eq!(err.attribute, "checkpoint");
        item.remove("checkpoint");
        let lease = from_item(&item).expect("a lease without checkpoint");
        assert_eq!(lease.checkpoint.checkpoint, Checkpoint::TrimHorizon);
    }
}
