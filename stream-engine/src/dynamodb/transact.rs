//! `TransactWriteItems` (up to 100 puts, updates, deletes and condition checks, all or
//! nothing) and `TransactGetItems` (a consistent read of up to 100 items). The tables
//! involved are locked in name order, so transactions never deadlock each other.

use super::api::DynamoCore;
use super::expr::{self, Cond, Path, Update};
use super::request::*;
use super::table::{Key, Table};
use super::value::{Item, item_to_json};
use crate::error::ApiError;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// Most actions in one transaction.
const MAX_TRANSACT_ITEMS: usize = 100;

enum Kind {
    Put(Item),
    Update(Option<Update>, Item),
    Delete,
    Check,
}

struct Action {
    table: Arc<Table>,
    key: Key,
    kind: Kind,
    cond: Option<Cond>,
    all_old: bool,
}

fn transact_items(v: &Map<String, Value>) -> Result<&Vec<Value>, ApiError> {
    let items = v.get("TransactItems").and_then(Value::as_array).ok_or_else(|| {
        ApiError::validation(
            "1 validation error detected: Value null at 'transactItems' failed to satisfy constraint: Member must not be null",
        )
    })?;
    if items.is_empty() || items.len() > MAX_TRANSACT_ITEMS {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value at 'transactItems' failed to satisfy constraint: Member must have length less than or equal to {MAX_TRANSACT_ITEMS} and greater than or equal to 1"
        )));
    }
    Ok(items)
}

/// The one member of a transact item (`Put`, `Update`, …), with its name.
fn only_member<'a>(
    item: &'a Value,
    allowed: &[&'static str],
) -> Result<(&'static str, &'a Map<String, Value>), ApiError> {
    let obj = item
        .as_object()
        .ok_or_else(|| ApiError::serialization("a transact item must be an object"))?;
    let present: Vec<&'static str> = allowed
        .iter()
        .copied()
        .filter(|k| obj.get(*k).is_some_and(|x| !x.is_null()))
        .collect();
    match present.as_slice() {
        [one] => {
            let member = obj
                .get(*one)
                .and_then(Value::as_object)
                .ok_or_else(|| ApiError::serialization(format!("{one} must be an object")))?;
            Ok((one, member))
        }
        _ => Err(ApiError::validation(format!(
            "TransactItems can only contain one of {}",
            allowed.join(", ")
        ))),
    }
}

/// Locks the item maps of `tables` in name order and runs `f` with them. Two tables of one
/// name (one deleted and created again) cannot both be here: callers check
/// [`DynamoCore::still_registered`] under the locks.
fn with_locked<T>(
    tables: &[Arc<Table>],
    f: impl FnOnce(&mut BTreeMap<String, parking_lot::MutexGuard<'_, BTreeMap<Key, Item>>>) -> T,
) -> T {
    let mut unique: BTreeMap<String, &Arc<Table>> = BTreeMap::new();
    for t in tables {
        unique.insert(t.name.clone(), t);
    }
    let mut guards = BTreeMap::new();
    for (name, t) in unique {
        guards.insert(name, t.items.lock());
    }
    f(&mut guards)
}

impl DynamoCore {
    fn transact_action(&self, item: &Value) -> Result<Action, ApiError> {
        let (kind, m) = only_member(item, &["Put", "Update", "Delete", "ConditionCheck"])?;
        super::legacy::uses_legacy(m, &[])?;
        let table = self.active_named(table_name(m)?)?;
        let all_old = on_failure_all_old(m)?;
        let mut ctx = context(m)?;
        let (key, kind) = match kind {
            "Put" => {
                let item = required_item(m, "Item", "item")?;
                check_size(&item)?;
                table.check_index_keys(&item)?;
                (table.key_from_item(&item)?, Kind::Put(item))
            }
            "Update" => {
                let key_item = required_item(m, "Key", "key")?;
                let update = opt_str(m, "UpdateExpression")?
                    .map(|u| expr::parse_update(u, &mut ctx))
                    .transpose()?;
                if update.is_none() {
                    return Err(ApiError::validation(
                        "1 validation error detected: Value null at 'transactItems.member.update.updateExpression' failed to satisfy constraint: Member must not be null",
                    ));
                }
                (
                    table.key_from_key(&key_item)?,
                    Kind::Update(update, key_item),
                )
            }
            "Delete" => {
                let key_item = required_item(m, "Key", "key")?;
                (table.key_from_key(&key_item)?, Kind::Delete)
            }
            _ => {
                let key_item = required_item(m, "Key", "key")?;
                if opt_str(m, "ConditionExpression")?.is_none() {
                    return Err(ApiError::validation(
                        "1 validation error detected: Value null at 'conditionExpression' failed to satisfy constraint: Member must not be null",
                    ));
                }
                (table.key_from_key(&key_item)?, Kind::Check)
            }
        };
        let cond = condition(m, &mut ctx)?;
        ctx.check_all_used()?;
        Ok(Action {
            table,
            key,
            kind,
            cond,
            all_old,
        })
    }

    pub(super) fn transact_write_items(&self, v: &Map<String, Value>) -> Result<Value, ApiError> {
        let items = transact_items(v)?;
        let actions: Vec<Action> = items
            .iter()
            .map(|i| self.transact_action(i))
            .collect::<Result<_, _>>()?;
        let mut seen = HashSet::new();
        for a in &actions {
            if !seen.insert((a.table.name.clone(), a.key.clone())) {
                return Err(ApiError::validation(
                    "Transaction request cannot include multiple operations on one item",
                ));
            }
        }
        let tables: Vec<Arc<Table>> = actions.iter().map(|a| a.table.clone()).collect();
        with_locked(&tables, |guards| {
            // A table deleted (or deleted and created again) since the actions were read is
            // not written to: the whole transaction fails instead.
            for t in &tables {
                self.still_registered(t)?;
            }
            // Every condition first, against the items as they are.
            let mut reasons = Vec::with_capacity(actions.len());
            let mut failed = false;
            let mut news: Vec<Option<Item>> = Vec::with_capacity(actions.len());
            for a in &actions {
                let items = guards
                    .get(&a.table.name)
                    .ok_or_else(|| ApiError::internal("table not locked"))?;
                let old = items.get(&a.key);
                let holds = match &a.cond {
                    Some(c) => expr::evaluate(c, old.unwrap_or(&Item::new()))?,
                    None => true,
                };
                if holds {
                    reasons.push(json!({ "Code": "None" }));
                } else {
                    failed = true;
                    let mut r = json!({
                        "Code": "ConditionalCheckFailed",
                        "Message": "The conditional request failed",
                    });
                    if a.all_old
                        && let Some(old) = old
                    {
                        r["Item"] = item_to_json(old);
                    }
                    reasons.push(r);
                }
                let new = match &a.kind {
                    Kind::Put(item) => Ok(Some(item.clone())),
                    Kind::Update(update, key_item) => {
                        let mut new = old.cloned().unwrap_or_else(|| a.table.key_item(key_item));
                        let applied = match update {
                            Some(u) => {
                                expr::apply_update(&mut new, u, &a.table.key_names()).map(|_| ())
                            }
                            None => Ok(()),
                        };
                        applied
                            .and_then(|()| check_size(&new))
                            .and_then(|()| a.table.check_index_keys(&new))
                            .map(|()| Some(new))
                    }
                    Kind::Delete | Kind::Check => Ok(None),
                };
                match new {
                    Ok(new) => news.push(new),
                    Err(e) => {
                        // An update that cannot apply cancels the transaction with its reason.
                        failed = true;
                        if holds && let Some(last) = reasons.last_mut() {
                            *last = json!({ "Code": "ValidationError", "Message": e.message });
                        }
                        news.push(None);
                    }
                }
            }
            if failed {
                let codes: Vec<&str> = reasons
                    .iter()
                    .map(|r| r["Code"].as_str().unwrap_or("None"))
                    .collect();
                let mut err = ApiError::new(
                    "TransactionCanceledException",
                    format!(
                        "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
                        codes.join(", ")
                    ),
                );
                let mut extra = Map::new();
                extra.insert("CancellationReasons".into(), Value::from(reasons));
                err.extra = Some(extra);
                return Err(err);
            }
            // All hold: apply every action.
            for (a, new) in actions.iter().zip(news) {
                let Some(items) = guards.get_mut(&a.table.name) else {
                    continue;
                };
                match (&a.kind, new) {
                    (Kind::Put(_) | Kind::Update(..), Some(item)) => {
                        items.insert(a.key.clone(), item);
                    }
                    (Kind::Delete, _) => {
                        items.remove(&a.key);
                    }
                    _ => {}
                }
            }
            Ok(json!({}))
        })
    }

    pub(super) fn transact_get_items(&self, v: &Map<String, Value>) -> Result<Value, ApiError> {
        let items = transact_items(v)?;
        let mut gets: Vec<(Arc<Table>, Key, Option<Vec<Path>>)> = Vec::with_capacity(items.len());
        for item in items {
            let (_, m) = only_member(item, &["Get"])?;
            let table = self.active_named(table_name(m)?)?;
            let key = table.key_from_key(&required_item(m, "Key", "key")?)?;
            let mut ctx = context(m)?;
            let projection = opt_str(m, "ProjectionExpression")?
                .map(|p| expr::parse_projection(p, &mut ctx))
                .transpose()?;
            ctx.check_all_used()?;
            gets.push((table, key, projection));
        }
        let tables: Vec<Arc<Table>> = gets.iter().map(|g| g.0.clone()).collect();
        with_locked(&tables, |guards| {
            let responses: Vec<Value> = gets
                .iter()
                .map(|(t, key, projection)| {
                    match guards.get(&t.name).and_then(|items| items.get(key)) {
                        Some(item) => {
                            let item = match projection {
                                Some(paths) => expr::project(item, paths),
                                None => item.clone(),
                            };
                            json!({ "Item": item_to_json(&item) })
                        }
                        None => json!({}),
                    }
                })
                .collect();
            Ok(json!({ "Responses": responses }))
        })
    }
}
