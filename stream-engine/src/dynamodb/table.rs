//! A table: its key schema, its items, the keys of items and requests, and its global
//! secondary indexes. An index is computed from the table's items at query time, so it is in
//! step with every write by construction; items without the index's key attributes are not in
//! it (sparse).

use super::request::epoch_secs;
use super::value::{AttrValue, Decimal, Item, item_size};
use crate::error::ApiError;
use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

/// A key attribute value (the types a key may have), ordered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum KeyPart {
    S(String),
    N(Decimal),
    B(Bytes),
}

pub(super) type Key = (KeyPart, Option<KeyPart>);

#[derive(Debug, Clone)]
pub(super) struct KeyAttr {
    pub(super) name: String,
    pub(super) kind: String,
}

#[derive(Debug)]
pub(super) struct Table {
    pub(super) name: String,
    pub(super) arn: String,
    pub(super) id: String,
    pub(super) created_ms: u64,
    pub(super) ready_at_ms: u64,
    pub(super) hash: KeyAttr,
    pub(super) range: Option<KeyAttr>,
    pub(super) billing: String,
    pub(super) provisioned: (i64, i64),
    pub(super) items: Mutex<BTreeMap<Key, Item>>,
    /// Attribute definitions (table and index keys): name → type.
    pub(super) attr_types: Mutex<HashMap<String, String>>,
    /// Global secondary indexes.
    pub(super) indexes: Mutex<Vec<Index>>,
}

impl Table {
    pub(super) fn key_names(&self) -> Vec<&str> {
        let mut k = vec![self.hash.name.as_str()];
        if let Some(r) = &self.range {
            k.push(r.name.as_str());
        }
        k
    }

    pub(super) fn key_part(
        &self,
        attr: &KeyAttr,
        value: Option<&AttrValue>,
        in_item: bool,
    ) -> Result<KeyPart, ApiError> {
        let mismatch =
            || ApiError::validation("The provided key element does not match the schema");
        let part = match (value, attr.kind.as_str()) {
            (None, _) if in_item => {
                return Err(ApiError::validation(format!(
                    "One or more parameter values were invalid: Missing the key {} in the item",
                    attr.name
                )));
            }
            (None, _) => return Err(mismatch()),
            (Some(AttrValue::S(s)), "S") => KeyPart::S(s.clone()),
            (Some(AttrValue::N(n)), "N") => KeyPart::N(*n),
            (Some(AttrValue::B(b)), "B") => KeyPart::B(b.clone()),
            (Some(other), expected) if in_item => {
                return Err(ApiError::validation(format!(
                    "One or more parameter values were invalid: Type mismatch for key {} expected: {expected} actual: {}",
                    attr.name,
                    other.type_name()
                )));
            }
            _ => return Err(mismatch()),
        };
        let empty = matches!(&part, KeyPart::S(s) if s.is_empty())
            || matches!(&part, KeyPart::B(b) if b.is_empty());
        if empty {
            return Err(ApiError::validation(format!(
                "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: {}",
                attr.name
            )));
        }
        Ok(part)
    }

    /// The key of a `Key` parameter: exactly the key attributes.
    pub(super) fn key_from_key(&self, key: &Item) -> Result<Key, ApiError> {
        if key.len() != self.key_names().len() {
            return Err(ApiError::validation(
                "The provided key element does not match the schema",
            ));
        }
        let hash = self.key_part(&self.hash, key.get(&self.hash.name), false)?;
        let range = match &self.range {
            Some(r) => Some(self.key_part(r, key.get(&r.name), false)?),
            None => None,
        };
        Ok((hash, range))
    }

    /// The key of a whole item.
    pub(super) fn key_from_item(&self, item: &Item) -> Result<Key, ApiError> {
        let hash = self.key_part(&self.hash, item.get(&self.hash.name), true)?;
        let range = match &self.range {
            Some(r) => Some(self.key_part(r, item.get(&r.name), true)?),
            None => None,
        };
        Ok((hash, range))
    }

    pub(super) fn key_item(&self, item: &Item) -> Item {
        self.key_names()
            .into_iter()
            .filter_map(|k| item.get(k).map(|v| (k.to_owned(), v.clone())))
            .collect()
    }

    pub(super) fn description(&self, status: &str, now_ms: u64) -> Value {
        let items = self.items.lock();
        let size: usize = items.values().map(item_size).sum();
        let mut key_schema = vec![json!({ "AttributeName": self.hash.name, "KeyType": "HASH" })];
        if let Some(r) = &self.range {
            key_schema.push(json!({ "AttributeName": r.name, "KeyType": "RANGE" }));
        }
        let mut types: Vec<(String, String)> = self
            .attr_types
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        types.sort();
        let defs: Vec<Value> = types
            .iter()
            .map(|(n, t)| json!({ "AttributeName": n, "AttributeType": t }))
            .collect();
        let indexes: Vec<Value> = self
            .indexes
            .lock()
            .iter()
            .map(|i| {
                let count = items
                    .values()
                    .filter(|it| i.key_of(self, it).is_some())
                    .count();
                i.description(self, now_ms, count)
            })
            .collect();
        let mut desc = json!({
            "TableName": self.name,
            "TableArn": self.arn,
            "TableId": self.id,
            "TableStatus": status,
            "KeySchema": key_schema,
            "AttributeDefinitions": defs,
            "CreationDateTime": epoch_secs(self.created_ms),
            "ItemCount": items.len(),
            "TableSizeBytes": size,
            "BillingModeSummary": { "BillingMode": self.billing },
            "ProvisionedThroughput": {
                "ReadCapacityUnits": self.provisioned.0,
                "WriteCapacityUnits": self.provisioned.1,
                "NumberOfDecreasesToday": 0,
            },
            "DeletionProtectionEnabled": false,
        });
        if !indexes.is_empty() {
            desc["GlobalSecondaryIndexes"] = Value::from(indexes);
        }
        desc
    }
}

/// What a global secondary index holds of each item.
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

impl Table {
    /// The index `name`, ready to read at `now_ms`: a `ValidationException` if the table has
    /// no such index or it is still backfilling, as on DynamoDB.
    pub(super) fn readable_index(&self, name: &str, now_ms: u64) -> Result<Index, ApiError> {
        let found = self.indexes.lock().iter().find(|i| i.name == name).cloned();
        let index = found.ok_or_else(|| {
            ApiError::validation(format!(
                "The table does not have the specified index: {name}"
            ))
        })?;
        if now_ms < index.ready_at_ms {
            return Err(ApiError::validation(format!(
                "Cannot read from backfilling global secondary index: {name}"
            )));
        }
        Ok(index)
    }

    /// Fails when `item` holds an index key attribute of the wrong type or empty, as
    /// DynamoDB refuses such a write (an item without the attribute is simply not indexed).
    pub(super) fn check_index_keys(&self, item: &Item) -> Result<(), ApiError> {
        for index in self.indexes.lock().iter() {
            for attr in std::iter::once(&index.hash).chain(index.range.as_ref()) {
                let Some(value) = item.get(&attr.name) else {
                    continue;
                };
                if self.key_part(attr, Some(value), false).is_err() {
                    return Err(ApiError::validation(format!(
                        "One or more parameter values were invalid: Type mismatch for Index Key {} Expected: {} Actual: {} IndexName: {}",
                        attr.name,
                        attr.kind,
                        value.type_name(),
                        index.name
                    )));
                }
            }
        }
        Ok(())
    }
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
