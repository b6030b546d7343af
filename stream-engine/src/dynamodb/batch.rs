//! `BatchWriteItem` (25 puts/deletes) and `BatchGetItem` (100 keys). A table-scoped
//! throttle rule (`Faults::throttle_shard_next("BatchWriteItem", table, n)`) leaves that
//! table's requests unprocessed, as DynamoDB does under throttling.

use super::api::DynamoCore;
use super::expr;
use super::request::*;
use super::value::{Item, item_from_json, item_to_json};
use crate::error::ApiError;
use crate::faults::{FaultKind, Faults};
use serde_json::{Map, Value, json};
use std::collections::HashSet;

/// Most requests in one `BatchWriteItem`.
const MAX_BATCH_WRITE: usize = 25;
/// Most keys in one `BatchGetItem`.
const MAX_BATCH_GET: usize = 100;

fn request_items(v: &Map<String, Value>) -> Result<&Map<String, Value>, ApiError> {
    let items = v.get("RequestItems").and_then(Value::as_object).ok_or_else(|| {
        ApiError::validation(
            "1 validation error detected: Value null at 'requestItems' failed to satisfy constraint: Member must not be null",
        )
    })?;
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
        v: &Map<String, Value>,
        faults: &Faults,
    ) -> Result<Value, ApiError> {
        let items = request_items(v)?;
        // Validate everything before writing anything.
        let mut plan = Vec::new();
        let mut count = 0;
        for (table, requests) in items {
            let t = self.active_named(table)?;
            let requests = requests.as_array().ok_or_else(|| {
                ApiError::serialization("RequestItems values must be lists of write requests")
            })?;
            let mut keys = HashSet::new();
            let mut writes = Vec::with_capacity(requests.len());
            for r in requests {
                count += 1;
                let r = r
                    .as_object()
                    .ok_or_else(|| ApiError::serialization("a write request must be an object"))?;
                let write = match (r.get("PutRequest"), r.get("DeleteRequest")) {
                    (Some(p), None) => {
                        let p = p.as_object().ok_or_else(|| {
                            ApiError::serialization("PutRequest must be an object")
                        })?;
                        let item = required_item(p, "Item", "item")?;
                        check_size(&item)?;
                        t.check_index_keys(&item)?;
                        Write::Put(item)
                    }
                    (None, Some(d)) => {
                        let d = d.as_object().ok_or_else(|| {
                            ApiError::serialization("DeleteRequest must be an object")
                        })?;
                        Write::Delete(required_item(d, "Key", "key")?)
                    }
                    _ => {
                        return Err(ApiError::validation(
                            "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes",
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
                writes.push((key, write, r.clone()));
            }
            plan.push((table.as_str(), t, writes));
        }
        if count > MAX_BATCH_WRITE {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Map value must satisfy constraint: [Member must have length less than or equal to {MAX_BATCH_WRITE}, Member must have length greater than or equal to 1]"
            )));
        }
        let names: Vec<&str> = plan.iter().map(|(n, _, _)| *n).collect();
        let throttled = throttled_tables(faults, "BatchWriteItem", &names);
        let mut unprocessed = Map::new();
        for (name, t, writes) in plan {
            if throttled.contains(name) {
                let raw: Vec<Value> = writes
                    .into_iter()
                    .map(|(_, _, r)| Value::Object(r))
                    .collect();
                unprocessed.insert(name.to_owned(), Value::from(raw));
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
        v: &Map<String, Value>,
        faults: &Faults,
    ) -> Result<Value, ApiError> {
        let items = request_items(v)?;
        let mut plan = Vec::new();
        let mut count = 0;
        for (table, spec) in items {
            let t = self.active_named(table)?;
            let spec = spec
                .as_object()
                .ok_or_else(|| ApiError::serialization("RequestItems values must be objects"))?;
            let keys = spec.get("Keys").and_then(Value::as_array).ok_or_else(|| {
                ApiError::validation(
                    "1 validation error detected: Value null at 'keys' failed to satisfy constraint: Member must not be null",
                )
            })?;
            let legacy = super::legacy::uses_legacy(spec, &["AttributesToGet"])?;
            let mut ctx = context(spec)?;
            let projection = if legacy {
                super::legacy::attributes_to_get(spec)?
            } else {
                opt_str(spec, "ProjectionExpression")?
                    .map(|p| expr::parse_projection(p, &mut ctx))
                    .transpose()?
            };
            ctx.check_all_used()?;
            let mut seen = HashSet::new();
            let mut parsed = Vec::with_capacity(keys.len());
            for k in keys {
                count += 1;
                let key_item = item_from_json(k)?;
                let key = t.key_from_key(&key_item)?;
                if !seen.insert(key.clone()) {
                    return Err(ApiError::validation(
                        "Provided list of item keys contains duplicates",
                    ));
                }
                parsed.push((key, k.clone()));
            }
            plan.push((table.as_str(), t, parsed, projection, spec.clone()));
        }
        if count > MAX_BATCH_GET {
            return Err(ApiError::validation(format!(
                "Too many items requested for the BatchGetItem call: at most {MAX_BATCH_GET}"
            )));
        }
        let names: Vec<&str> = plan.iter().map(|(n, ..)| *n).collect();
        let throttled = throttled_tables(faults, "BatchGetItem", &names);
        let mut responses = Map::new();
        let mut unprocessed = Map::new();
        for (name, t, keys, projection, mut spec) in plan {
            if throttled.contains(name) {
                spec.insert(
                    "Keys".into(),
                    Value::from(keys.into_iter().map(|(_, k)| k).collect::<Vec<_>>()),
                );
                unprocessed.insert(name.to_owned(), Value::Object(spec));
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
            responses.insert(name.to_owned(), Value::from(found));
        }
        Ok(json!({ "Responses": responses, "UnprocessedKeys": unprocessed }))
    }
}
