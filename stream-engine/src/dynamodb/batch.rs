//! `BatchWriteItem` (25 puts/deletes) and `BatchGetItem` (100 keys). A table-scoped
//! throttle rule (`Faults::throttle_shard_next("BatchWriteItem", table, n)`) leaves that
//! table's requests unprocessed, as DynamoDB does under throttling.

use super::api::DynamoCore;
use super::expr;
use super::request::*;
use super::requests::{BatchGetReq, BatchWriteReq, Echoed};
use super::value::{Item, item_from_map, item_to_json};
use crate::error::ApiError;
use crate::faults::{FaultKind, Faults};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashSet};

/// Most requests in one `BatchWriteItem`.
const MAX_BATCH_WRITE: usize = 25;
/// Most keys in one `BatchGetItem`.
const MAX_BATCH_GET: usize = 100;

fn request_items<T>(items: Option<BTreeMap<String, T>>) -> Result<BTreeMap<String, T>, ApiError> {
    let items = items.ok_or_else(|| null_member("requestItems"))?;
    if items.is_empty() {
        return Err(ApiError::validation(
            "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ));
    }
    Ok(items)
}

/// Tables with a throttle rule for `operation`, each rule consumed once.
fn throttled_tables(faults: &Faults, operation: &str, tables: &[&str]) -> HashSet<String> {
    faults.with_shard_rules("DynamoDB", operation, |rules| {
        let hit: Vec<(u64, String)> = rules
            .iter()
            .filter(|r| {
                matches!(r.kind, FaultKind::Throttle) && tables.contains(&r.shard_id.as_str())
            })
            .map(|r| (r.id, r.shard_id.clone()))
            .collect();
        let names = hit.iter().map(|(_, t)| t.clone()).collect();
        (names, hit.into_iter().map(|(id, _)| id).collect())
    })
}

enum Write {
    Put(Item),
    Delete(Item),
}

impl DynamoCore {
    pub(super) fn batch_write_item(
        &self,
        v: BatchWriteReq,
        faults: &Faults,
    ) -> Result<Value, ApiError> {
        let items = request_items(v.request_items)?;
        // Validate everything before writing anything.
        let mut plan = Vec::new();
        let mut count = 0;
        for (table, requests) in items {
            let t = self.active_named(&table)?;
            let mut keys = HashSet::new();
            let mut writes = Vec::with_capacity(requests.len());
            for r in requests {
                count += 1;
                let Echoed { raw, parsed } = r;
                let write = match (parsed.put_request, parsed.delete_request) {
                    (Some(p), None) => {
                        let item = required_item(&p.item, "item")?;
                        check_size(&item)?;
                        t.check_index_keys(&item)?;
                        Write::Put(item)
                    }
                    (None, Some(d)) => Write::Delete(required_item(&d.key, "key")?),
                    _ => {
                        return Err(ApiError::validation(
                            "A write request must contain exactly one of PutRequest and DeleteRequest",
                        ));
                    }
                };
                let key = match &write {
                    Write::Put(item) => t.key_from_item(item)?,
                    Write::Delete(key) => t.key_from_key(key)?,
                };
                if !keys.insert(key.clone()) {
                    return Err(ApiError::validation(
                        "Provided list of item keys contains duplicates",
                    ));
                }
                writes.push((key, write, raw));
            }
            plan.push((table, t, writes));
        }
        if count > MAX_BATCH_WRITE {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Map value must satisfy constraint: [Member must have length less than or equal to {MAX_BATCH_WRITE}, Member must have length greater than or equal to 1]"
            )));
        }
        let names: Vec<&str> = plan.iter().map(|(n, _, _)| n.as_str()).collect();
        let throttled = throttled_tables(faults, "BatchWriteItem", &names);
        let mut unprocessed = Map::new();
        for (name, t, writes) in plan {
            if throttled.contains(&name) {
                let raw: Vec<Value> = writes.into_iter().map(|(_, _, r)| r).collect();
                unprocessed.insert(name.clone(), Value::from(raw));
                continue;
            }
            let mut items = t.items.lock();
            for (key, write, _) in writes {
                match write {
                    Write::Put(item) => {
                        items.insert(key, item);
                    }
                    Write::Delete(_) => {
                        items.remove(&key);
                    }
                }
            }
        }
        Ok(json!({ "UnprocessedItems": unprocessed }))
    }

    pub(super) fn batch_get_item(
        &self,
        v: BatchGetReq,
        faults: &Faults,
    ) -> Result<Value, ApiError> {
        let items = request_items(v.request_items)?;
        let mut plan = Vec::new();
        let mut count = 0;
        for (table, spec) in items {
            let t = self.active_named(&table)?;
            let Echoed {
                raw,
                parsed: request,
            } = spec;
            let keys = request.keys.as_ref().ok_or_else(|| null_member("keys"))?;
            let legacy =
                super::legacy::uses_legacy(&request.legacy, &request.exprs, &["AttributesToGet"])?;
            let mut ctx = context(&request.exprs)?;
            let projection = if legacy {
                super::legacy::attributes_to_get(&request.legacy)?
            } else {
                projection(&request.exprs, &mut ctx)?
            };
            ctx.check_all_used()?;
            let mut seen = HashSet::new();
            let mut parsed = Vec::with_capacity(keys.len());
            for k in keys {
                count += 1;
                let key_item = item_from_map(k)?;
                let key = t.key_from_key(&key_item)?;
                if !seen.insert(key.clone()) {
                    return Err(ApiError::validation(
                        "Provided list of item keys contains duplicates",
                    ));
                }
                parsed.push((key, Value::Object(k.clone())));
            }
            plan.push((table, t, parsed, projection, raw));
        }
        if count > MAX_BATCH_GET {
            return Err(ApiError::validation(format!(
                "Too many items requested for the BatchGetItem call: at most {MAX_BATCH_GET}"
            )));
        }
        let names: Vec<&str> = plan.iter().map(|(n, ..)| n.as_str()).collect();
        let throttled = throttled_tables(faults, "BatchGetItem", &names);
        let mut responses = Map::new();
        let mut unprocessed = Map::new();
        for (name, t, keys, projection, mut spec) in plan {
            if throttled.contains(&name) {
                if let Value::Object(spec) = &mut spec {
                    spec.insert(
                        "Keys".into(),
                        Value::from(keys.into_iter().map(|(_, k)| k).collect::<Vec<_>>()),
                    );
                }
                unprocessed.insert(name.clone(), spec);
                continue;
            }
            let items = t.items.lock();
            let found: Vec<Value> = keys
                .iter()
                .filter_map(|(key, _)| items.get(key))
                .map(|item| match &projection {
                    Some(paths) => item_to_json(&expr::project(item, paths)),
                    None => item_to_json(item),
                })
                .collect();
            responses.insert(name, Value::from(found));
        }
        Ok(json!({ "Responses": responses, "UnprocessedKeys": unprocessed }))
    }
}
