//! Global secondary indexes: declared at `CreateTable` or added and removed with
//! `UpdateTable` (`CREATING` → `ACTIVE` after the table delay), queried with `IndexName`.
//! An index is computed from the table's items at query time, so it is in step with every
//! write by construction; items without the index's key attributes are not in it (sparse).

use super::api::DynamoCore;
use super::request::*;
use super::table::{KeyAttr, KeyPart, Table};
use super::value::Item;
use crate::error::ApiError;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// Most global secondary indexes on one table.
const MAX_INDEXES: usize = 20;

/// What an index holds of each item.
#[derive(Debug, Clone)]
pub(super) enum Projection {
    All,
    KeysOnly,
    Include(Vec<String>),
}

/// One global secondary index.
#[derive(Debug, Clone)]
pub(super) struct Index {
    pub(super) name: String,
    pub(super) hash: KeyAttr,
    pub(super) range: Option<KeyAttr>,
    pub(super) projection: Projection,
    pub(super) ready_at_ms: u64,
}

/// A key schema (`HASH` first, then an optional `RANGE`) against attribute definitions.
pub(super) fn key_schema(
    schema: &[Value],
    types: &HashMap<String, String>,
) -> Result<(KeyAttr, Option<KeyAttr>), ApiError> {
    let mut hash = None;
    let mut range = None;
    for (i, k) in schema.iter().enumerate() {
        let k = obj(k)?;
        let n = req_str(k, "AttributeName")?;
        let kind = types.get(n).cloned().ok_or_else(|| {
            ApiError::validation(format!("One or more parameter values were invalid: Some index key attributes are not defined in AttributeDefinitions. Keys: [{n}]"))
        })?;
        let attr = KeyAttr {
            name: n.to_owned(),
            kind,
        };
        match (req_str(k, "KeyType")?, i) {
            ("HASH", 0) => hash = Some(attr),
            ("RANGE", 1) => range = Some(attr),
            _ => {
                return Err(ApiError::validation(
                    "Invalid KeySchema: The first KeySchemaElement is not a HASH key type, or a second one is not RANGE",
                ));
            }
        }
    }
    let hash =
        hash.ok_or_else(|| ApiError::validation("Invalid KeySchema: a HASH key is required"))?;
    Ok((hash, range))
}

/// `AttributeDefinitions`: name → type.
pub(super) fn attribute_types(defs: &[Value]) -> Result<HashMap<String, String>, ApiError> {
    let mut types = HashMap::new();
    for d in defs {
        let d = obj(d)?;
        let n = req_str(d, "AttributeName")?;
        let t = req_str(d, "AttributeType")?;
        if !["S", "N", "B"].contains(&t) {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{t}' at 'attributeDefinitions.member.attributeType' failed to satisfy constraint: Member must satisfy enum value set: [B, N, S]"
            )));
        }
        types.insert(n.to_owned(), t.to_owned());
    }
    Ok(types)
}

/// One index of `GlobalSecondaryIndexes` or of an `UpdateTable` `Create`.
pub(super) fn parse_index(
    spec: &Value,
    types: &HashMap<String, String>,
    ready_at_ms: u64,
) -> Result<Index, ApiError> {
    let spec = obj(spec)?;
    let name = req_str(spec, "IndexName")?;
    if !(3..=255).contains(&name.len()) {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{name}' at 'indexName' failed to satisfy constraint: Member must have length between 3 and 255"
        )));
    }
    let schema = spec.get("KeySchema").and_then(Value::as_array).ok_or_else(|| {
        ApiError::validation("1 validation error detected: Value null at 'globalSecondaryIndexes.member.keySchema' failed to satisfy constraint: Member must not be null")
    })?;
    let (hash, range) = key_schema(schema, types)?;
    let p = spec.get("Projection").and_then(Value::as_object);
    let projection = match p
        .and_then(|p| p.get("ProjectionType"))
        .and_then(Value::as_str)
    {
        None | Some("ALL") => Projection::All,
        Some("KEYS_ONLY") => Projection::KeysOnly,
        Some("INCLUDE") => {
            let attrs = p
                .and_then(|p| p.get("NonKeyAttributes"))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            Projection::Include(attrs)
        }
        Some(other) => {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{other}' at 'projection.projectionType' failed to satisfy constraint: Member must satisfy enum value set: [ALL, INCLUDE, KEYS_ONLY]"
            )));
        }
    };
    Ok(Index {
        name: name.to_owned(),
        hash,
        range,
        projection,
        ready_at_ms,
    })
}

impl Index {
    pub(super) fn description(&self, table: &Table, now_ms: u64, items: usize) -> Value {
        let mut key_schema = vec![json!({ "AttributeName": self.hash.name, "KeyType": "HASH" })];
        if let Some(r) = &self.range {
            key_schema.push(json!({ "AttributeName": r.name, "KeyType": "RANGE" }));
        }
        let projection = match &self.projection {
            Projection::All => json!({ "ProjectionType": "ALL" }),
            Projection::KeysOnly => json!({ "ProjectionType": "KEYS_ONLY" }),
            Projection::Include(a) => json!({ "ProjectionType": "INCLUDE", "NonKeyAttributes": a }),
        };
        json!({
            "IndexName": self.name,
            "KeySchema": key_schema,
            "Projection": projection,
            "IndexStatus": if now_ms < self.ready_at_ms { "CREATING" } else { "ACTIVE" },
            "ItemCount": items,
            "IndexSizeBytes": 0,
            "IndexArn": format!("{}/index/{}", table.arn, self.name),
        })
    }

    /// The index's key of an item, or `None` when the item is not in the index.
    pub(super) fn key_of(&self, table: &Table, item: &Item) -> Option<(KeyPart, Option<KeyPart>)> {
        let hash = table
            .key_part(&self.hash, item.get(&self.hash.name), false)
            .ok()?;
        let range = match &self.range {
            Some(r) => Some(table.key_part(r, item.get(&r.name), false).ok()?),
            None => None,
        };
        Some((hash, range))
    }

    /// What the index holds of an item.
    pub(super) fn project(&self, table: &Table, item: &Item) -> Item {
        match &self.projection {
            Projection::All => item.clone(),
            Projection::KeysOnly | Projection::Include(_) => {
                let mut keep: Vec<&str> = table.key_names();
                keep.push(&self.hash.name);
                if let Some(r) = &self.range {
                    keep.push(&r.name);
                }
                if let Projection::Include(extra) = &self.projection {
                    keep.extend(extra.iter().map(String::as_str));
                }
                item.iter()
                    .filter(|(k, _)| keep.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            }
        }
    }
}

impl DynamoCore {
    /// `UpdateTable`: `GlobalSecondaryIndexUpdates` (`Create`, `Delete`), new attribute
    /// definitions, billing mode.
    pub(super) fn update_table(&self, v: &Map<String, Value>) -> Result<Value, ApiError> {
        let t = self.active_named(table_name(v)?)?;
        let mut types = t.attr_types.lock().clone();
        if let Some(defs) = v.get("AttributeDefinitions").and_then(Value::as_array) {
            types.extend(attribute_types(defs)?);
        }
        let now = self.now_ms();
        let ready = now + self.table_delay_ms();
        let mut indexes = t.indexes.lock();
        if let Some(updates) = v
            .get("GlobalSecondaryIndexUpdates")
            .and_then(Value::as_array)
        {
            for u in updates {
                let u = obj(u)?;
                if let Some(create) = u.get("Create") {
                    let index = parse_index(create, &types, ready)?;
                    if indexes.iter().any(|i| i.name == index.name) {
                        return Err(ApiError::validation(format!(
                            "One or more parameter values were invalid: Index {} already exists",
                            index.name
                        )));
                    }
                    if indexes.len() >= MAX_INDEXES {
                        return Err(ApiError::limit_exceeded(format!(
                            "Table {} already has {MAX_INDEXES} global secondary indexes",
                            t.name
                        )));
                    }
                    indexes.push(index);
                } else if let Some(delete) = u.get("Delete") {
                    let name = req_str(obj(delete)?, "IndexName")?;
                    let before = indexes.len();
                    indexes.retain(|i| i.name != name);
                    if indexes.len() == before {
                        return Err(ApiError::not_found(format!(
                            "Requested resource not found: Index {name} of table {} not found",
                            t.name
                        )));
                    }
                } else {
                    return Err(ApiError::validation(
                        "A GlobalSecondaryIndexUpdate needs Create or Delete",
                    ));
                }
            }
        }
        *t.attr_types.lock() = types;
        drop(indexes);
        Ok(json!({ "TableDescription": t.description(self.status(&t), now) }))
    }
}
