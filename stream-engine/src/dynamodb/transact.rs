//! `TransactWriteItems` (up to 100 puts, updates, deletes and condition checks, all or
//! nothing) and `TransactGetItems` (a consistent read of up to 100 items). The tables
//! involved are locked in name order, so transactions never deadlock each other.

use super::api::DynamoCore;
use super::expr::{self, Cond, Path, Update};
use super::request::*;
use super::requests::{ItemReq, TransactItem, TransactReq};
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

fn transact_items(v: TransactReq) -> Result<Vec<TransactItem>, ApiError> {
    let items = v
        .transact_items
        .ok_or_else(|| null_member("transactItems"))?;
    if items.is_empty() || items.len() > MAX_TRANSACT_ITEMS {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value at 'transactItems' failed to satisfy constraint: Member must have length less than or equal to {MAX_TRANSACT_ITEMS} and greater than or equal to 1"
        )));
    }
    Ok(items)
}

/// The one action of a write transaction's item.
fn write_action(item: TransactItem) -> Result<(&'static str, ItemReq), ApiError> {
    let only = |what: &'static str, member| Ok((what, member));
    match (
        item.put,
        item.update,
        item.delete,
        item.condition_check,
        item.get,
    ) {
        (Some(m), None, None, None, None) => only("Put", m),
        (None, Some(m), None, None, None) => only("Update", m),
        (None, None, Some(m), None, None) => only("Delete", m),
        (None, None, None, Some(m), None) => only("ConditionCheck", m),
        _ => Err(ApiError::validation(
            "TransactItems can only contain one of Put, Update, Delete, ConditionCheck",
        )),
    }
}

/// The `Get` of a read transaction's item.
fn get_action(item: TransactItem) -> Result<ItemReq, ApiError> {
    match item {
        TransactItem {
            get: Some(m),
            put: None,
            update: None,
            delete: None,
            condition_check: None,
            ..
        } => Ok(m),
        _ => Err(ApiError::validation(
            "TransactItems can only contain one of Get",
        )),
    }
}

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
    fn transact_action(&self, item: TransactItem) -> Result<Action, ApiError> {
        let (kind, m) = write_action(item)?;
        super::legacy::uses_legacy(&m.legacy, &m.exprs, &[])?;
        let table = self.active_named(table_name(&m.table_name)?)?;
        let all_old = on_failure_all_old(&m.return_values_on_condition_check_failure)?;
        let mut ctx = context(&m.exprs)?;
        let (key, kind) = match kind {
            "Put" => {
                let item = required_item(&m.item, "item")?;
                check_size(&item)?;
                table.check_index_keys(&item)?;
                (table.key_from_item(&item)?, Kind::Put(item))
            }
            "Update" => {
                let key_item = required_item(&m.key, "key")?;
                let update = m
                    .exprs
                    .update_expression
                    .as_deref()
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
                let key_item = required_item(&m.key, "key")?;
                (table.key_from_key(&key_item)?, Kind::Delete)
            }
            _ => {
                let key_item = required_item(&m.key, "key")?;
                if m.exprs.condition_expression.is_none() {
                    return Err(ApiError::validation(
                        "1 validation error detected: Value null at 'conditionExpression' failed to satisfy constraint: Member must not be null",
                    ));
                }
                (table.key_from_key(&key_item)?, Kind::Check)
            }
        };
        let cond = condition(&m.exprs, &mut ctx)?;
        ctx.check_all_used()?;
        Ok(Action {
            table,
            key,
            kind,
            cond,
            all_old,
        })
    }

    pub(super) fn transact_write_items(&self, v: TransactReq) -> Result<Value, ApiError> {
        let items = transact_items(v)?;
        let actions: Vec<Action> = items
            .into_iter()
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

    pub(super) fn transact_get_items(&self, v: TransactReq) -> Result<Value, ApiError> {
        let items = transact_items(v)?;
        let mut gets: Vec<(Arc<Table>, Key, Option<Vec<Path>>)> = Vec::with_capacity(items.len());
        for item in items {
            let m = get_action(item)?;
            let table = self.active_named(table_name(&m.table_name)?)?;
            let key = table.key_from_key(&required_item(&m.key, "key")?)?;
            let mut ctx = context(&m.exprs)?;
            let projection = projection(&m.exprs, &mut ctx)?;
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
