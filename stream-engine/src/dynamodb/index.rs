//! `UpdateTable`: adding and removing global secondary indexes (`CREATING` → `ACTIVE` after
//! the table delay). The index itself is in [`super::table::Index`].

use super::api::DynamoCore;
use super::request::*;
use super::requests::UpdateTableReq;
use super::schema::{attribute_types, parse_index};
use crate::error::ApiError;
use serde_json::{Value, json};

/// Most global secondary indexes on one table.
const MAX_INDEXES: usize = 20;

impl DynamoCore {
    /// `UpdateTable`: `GlobalSecondaryIndexUpdates` (`Create`, `Delete`), new attribute
    /// definitions, billing mode.
    pub(super) fn update_table(&self, v: UpdateTableReq) -> Result<Value, ApiError> {
        let t = self.active_named(table_name(&v.table_name)?)?;
        let mut types = t.attr_types.lock().clone();
        if let Some(defs) = &v.attribute_definitions {
            types.extend(attribute_types(defs)?);
        }
        let now = self.now_ms();
        let ready = now + self.table_delay_ms();
        let mut indexes = t.indexes.lock();
        if let Some(updates) = &v.global_secondary_index_updates {
            for u in updates {
                if let Some(create) = &u.create {
                    let index = parse_index(create, &types, ready, t.billing == "PROVISIONED")?;
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
                } else if let Some(delete) = &u.delete {
                    let name = required(&delete.index_name, "indexName")?;
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
