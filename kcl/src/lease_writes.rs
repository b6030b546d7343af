//! The fenced writes on one lease: renew, take, checkpoint, release, hand-off and its
//! request, children. Each is one conditional `UpdateItem` returning the new item.

use crate::error::LeaseError;
use crate::lease::{ExtendedCheckpoint, Lease, LeaseKey};
use crate::lease_item::{from_item, n};
use crate::lease_table::{LeaseTable, Written, key_of, s, used_names};
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::time::Instant;

/// What a write leaves on the item besides the counter, to recognise an attempt that was
/// applied although its answer was lost.
#[derive(Clone, Copy, Default)]
struct After<'a> {
    owner: Option<&'a str>,
    checkpoint: Option<&'a ExtendedCheckpoint>,
    pending: Option<&'a ExtendedCheckpoint>,
}

impl<'a> After<'a> {
    fn owner(owner: Option<&'a str>) -> Self {
        After {
            owner,
            ..After::default()
        }
    }

    fn matches(&self, lease: &Lease, counter: u64) -> bool {
        lease.owner.as_deref() == self.owner
            && lease.counter == counter
            && self.checkpoint.is_none_or(|c| lease.checkpoint == *c)
            && self
                .pending
                .is_none_or(|p| lease.pending_checkpoint.as_ref() == Some(p))
    }
}

impl LeaseTable {
    /// One conditional `UpdateItem` returning the new item. `landed` is the owner and counter
    /// the item has once this write is applied, and `sets` the checkpoint or pending
    /// checkpoint it writes: when a retry finds the condition failed because an earlier
    /// attempt timed out but was applied, the write counts as done.
    async fn update(
        &self,
        key: &LeaseKey,
        update: &str,
        condition: &str,
        values: HashMap<String, AttributeValue>,
        deadline: Option<Instant>,
        landed: Option<(After<'_>, u64)>,
    ) -> Result<Written<Lease>, LeaseError> {
        let names = used_names(&[update, condition]);
        let attempts = AtomicUsize::new(0);
        let out = self
            .retried("UpdateItem", deadline, || async {
                let attempt = attempts.fetch_add(1, Ordering::Relaxed);
                match self
                    .client
                    .update_item()
                    .table_name(&self.name)
                    .set_key(Some(key_of(key)))
                    .update_expression(update)
                    .condition_expression(condition)
                    .set_expression_attribute_names(Some(names.clone()))
                    .set_expression_attribute_values(Some(values.clone()))
                    .return_values(ReturnValue::AllNew)
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    )
                    .send()
                    .await
                {
                    Ok(out) => Ok(Some(out.attributes.unwrap_or_default())),
                    Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                        let old = match e.as_service_error() {
                            Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                                c.item().cloned()
                            }
                            _ => None,
                        };
                        Ok(old.filter(|_| attempt > 0).and_then(|old| {
                            let (after, counter) = landed?;
                            let lease = from_item(&old).ok()?;
                            after.matches(&lease, counter).then_some(old)
                        }))
                    }
                    Err(e) => Err(self.service_error("UpdateItem", e)),
                }
            })
            .await?;
        match out {
            Some(item) => Ok(Written::Done(from_item(&item)?)),
            None => Ok(Written::ConditionFailed),
        }
    }

    fn owned(lease: &Lease, owner: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (":c".to_owned(), n(lease.counter)),
            (":next".to_owned(), n(lease.counter.saturating_add(1))),
            (":me".to_owned(), s(owner)),
        ])
    }

    /// A write on a held lease, fenced on its counter and owner: `update` with `:c`, `:next`,
    /// `:me` and `extra`; afterwards the owner is `owner_after`.
    async fn fenced_write(
        &self,
        lease: &Lease,
        owner: &str,
        update: &str,
        extra: Vec<(&str, AttributeValue)>,
        deadline: Option<Instant>,
        after: After<'_>,
    ) -> Result<Lease, LeaseError> {
        let mut values = Self::owned(lease, owner);
        values.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v)));
        let written = self
            .update(
                &lease.key,
                update,
                "#c = :c AND #o = :me",
                values,
                deadline,
                Some((after, lease.counter.saturating_add(1))),
            )
            .await?;
        lost_unless_done(written, &lease.key)
    }

    /// Renews a held lease (counter + 1), fenced on its counter and owner, trying until
    /// `deadline`. A failed condition is [`LeaseError::LeaseLost`].
    pub async fn renew(
        &self,
        lease: &Lease,
        owner: &str,
        deadline: Option<Instant>,
    ) -> Result<Lease, LeaseError> {
        self.fenced_write(
            lease,
            owner,
            "SET #c = :next",
            Vec::new(),
            deadline,
            After::owner(Some(owner)),
        )
        .await
    }

    /// Takes a lease as observed (counter and owner unchanged since): owner set to `new_owner`,
    /// any hand-off request cleared, and `ownerSwitchesSinceCheckpoint` + 1 when it had
    /// another owner (as the Java KCL counts).
    pub async fn take(&self, observed: &Lease, new_owner: &str) -> Result<Lease, LeaseError> {
        let mut values = Self::owned(observed, new_owner);
        let (condition, update) = match &observed.owner {
            Some(old) => {
                values.insert(":old".into(), s(old));
                values.insert(":one".into(), n(1));
                values.insert(":zero".into(), n(0));
                (
                    "#c = :c AND #o = :old",
                    "SET #o = :me, #c = :next, #sw = if_not_exists(#sw, :zero) + :one REMOVE #h",
                )
            }
            None => (
                "#c = :c AND attribute_not_exists(#o)",
                "SET #o = :me, #c = :next REMOVE #h",
            ),
        };
        let written = self
            .update(
                &observed.key,
                update,
                condition,
                values,
                None,
                Some((
                    After::owner(Some(new_owner)),
                    observed.counter.saturating_add(1),
                )),
            )
            .await?;
        lost_unless_done(written, &observed.key)
    }

    /// Stores a checkpoint in a held lease (fenced on counter and owner), clearing any pending
    /// one and `ownerSwitchesSinceCheckpoint`.
    pub async fn checkpoint(
        &self,
        lease: &Lease,
        owner: &str,
        checkpoint: &ExtendedCheckpoint,
        deadline: Option<Instant>,
    ) -> Result<Lease, LeaseError> {
        let extra = vec![
            (":cp", s(checkpoint.checkpoint.as_str())),
            (":cps", n(checkpoint.sub_sequence)),
            (":zero", n(0)),
        ];
        self.fenced_write(
            lease,
            owner,
            "SET #cp = :cp, #cps = :cps, #c = :next, #sw = :zero REMOVE #p, #ps, #pst",
            extra,
            deadline,
            After {
                owner: Some(owner),
                checkpoint: Some(checkpoint),
                pending: None,
            },
        )
        .await
    }

    /// Stores a pending (prepared) checkpoint in a held lease, fenced on counter and owner.
    pub async fn prepare_checkpoint(
        &self,
        lease: &Lease,
        owner: &str,
        pending: &ExtendedCheckpoint,
        deadline: Option<Instant>,
    ) -> Result<Lease, LeaseError> {
        let extra = vec![
            (":p", s(pending.checkpoint.as_str())),
            (":ps", n(pending.sub_sequence)),
        ];
        self.fenced_write(
            lease,
            owner,
            "SET #p = :p, #ps = :ps, #c = :next",
            extra,
            deadline,
            After {
                owner: Some(owner),
                checkpoint: None,
                pending: Some(pending),
            },
        )
        .await
    }

    /// Releases a held lease: owner and hand-off request removed, counter + 1.
    pub async fn release(
        &self,
        lease: &Lease,
        owner: &str,
        deadline: Option<Instant>,
    ) -> Result<Lease, LeaseError> {
        self.fenced_write(
            lease,
            owner,
            "SET #c = :next REMOVE #o, #h",
            Vec::new(),
            deadline,
            After::owner(None),
        )
        .await
    }

    /// Hands a held lease to the worker that asked for it (`handoffTo`), fenced on counter and
    /// owner.
    pub async fn hand_off(
        &self,
        lease: &Lease,
        owner: &str,
        to: &str,
        deadline: Option<Instant>,
    ) -> Result<Lease, LeaseError> {
        let mut values = Self::owned(lease, owner);
        values.insert(":to".into(), s(to));
        values.insert(":one".into(), n(1));
        values.insert(":zero".into(), n(0));
        let written = self
            .update(
                &lease.key,
                "SET #o = :to, #c = :next, #sw = if_not_exists(#sw, :zero) + :one REMOVE #h",
                "#c = :c AND #o = :me AND #h = :to",
                values,
                deadline,
                Some((After::owner(Some(to)), lease.counter.saturating_add(1))),
            )
            .await?;
        lost_unless_done(written, &lease.key)
    }

    /// Asks `owner` to hand the lease to `requester` (sets `handoffTo`, leaves the counter, so
    /// the owner's renewals go on). Whether the request was recorded.
    pub async fn request_handoff(
        &self,
        key: &LeaseKey,
        owner: &str,
        requester: &str,
    ) -> Result<bool, LeaseError> {
        let values = HashMap::from([
            (":owner".to_owned(), s(owner)),
            (":me".to_owned(), s(requester)),
        ]);
        let written = self
            .update(
                key,
                "SET #h = :me",
                "#o = :owner AND (attribute_not_exists(#h) OR #h = :me)",
                values,
                None,
                None,
            )
            .await?;
        Ok(matches!(written, Written::Done(_)))
    }

    /// Withdraws this requester's hand-off request, if it is still there.
    pub async fn cancel_handoff(&self, key: &LeaseKey, requester: &str) -> Result<(), LeaseError> {
        let values = HashMap::from([(":me".to_owned(), s(requester))]);
        self.update(key, "REMOVE #h", "#h = :me", values, None, None)
            .await
            .map(|_| ())
    }

    /// Adds `children` to the lease's `childShardIds` (a set: repeating it changes nothing).
    pub async fn add_children(
        &self,
        key: &LeaseKey,
        children: &[String],
    ) -> Result<(), LeaseError> {
        if children.is_empty() {
            return Ok(());
        }
        let values = HashMap::from([(":ch".to_owned(), AttributeValue::Ss(children.to_vec()))]);
        self.update(
            key,
            "ADD #ch :ch",
            "attribute_exists(#k)",
            values,
            None,
            None,
        )
        .await
        .map(|_| ())
    }
}

fn lost_unless_done(written: Written<Lease>, key: &LeaseKey) -> Result<Lease, LeaseError> {
    match written {
        Written::Done(l) => Ok(l),
        Written::ConditionFailed => Err(LeaseError::LeaseLost { key: key.clone() }),
    }
}
