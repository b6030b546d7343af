//! The DynamoDB JSON API (awsJson1_0): tables and items for lease tables.

use super::expr;
use super::legacy;
use super::requests::*;
use super::value::{Item, item_to_json};
use crate::clock::Clock;
use crate::config::EngineConfig;
use crate::error::ApiError;
use parking_lot::{Mutex, RwLock};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The `X-Amz-Target` prefix of DynamoDB operations.
pub const TARGET_PREFIX: &str = "DynamoDB_20120810";

pub use super::request::MAX_ITEM_SIZE;
pub use super::request::SCAN_PAGE_BYTES;
use super::request::*;
use super::table::Table;

/// The DynamoDB tables of an engine.
#[derive(Debug)]
pub struct DynamoCore {
    config: Arc<EngineConfig>,
    clock: Arc<Clock>,
    tables: RwLock<BTreeMap<String, Arc<Table>>>,
}

/// Serves one DynamoDB operation (`faults`: table-scoped fault rules for the batch
/// operations).
pub fn handle(
    core: &DynamoCore,
    faults: &crate::faults::Faults,
    operation: &str,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let out = match operation {
        "CreateTable" => core.create_table(parse(body)?)?,
        "DescribeTable" => core.describe_table(parse(body)?)?,
        "DeleteTable" => core.delete_table(parse(body)?)?,
        "ListTables" => core.list_tables(parse(body)?)?,
        "PutItem" => core.put_item(parse(body)?)?,
        "GetItem" => core.get_item(parse(body)?)?,
        "UpdateItem" => core.update_item(parse(body)?)?,
        "DeleteItem" => core.delete_item(parse(body)?)?,
        "Scan" => core.scan(parse(body)?)?,
        "BatchWriteItem" => core.batch_write_item(parse(body)?, faults)?,
        "BatchGetItem" => core.batch_get_item(parse(body)?, faults)?,
        "Query" => core.query(parse(body)?)?,
        "TransactWriteItems" => core.transact_write_items(parse(body)?)?,
        "TransactGetItems" => core.transact_get_items(parse(body)?)?,
        "UpdateTable" => core.update_table(parse(body)?)?,
        other => {
            return Err(ApiError::new(
                "UnknownOperationException",
                format!("Unknown operation DynamoDB_20120810.{other}"),
            ));
        }
    };
    serde_json::to_vec(&out).map_err(|e| ApiError::internal(e.to_string()))
}

impl DynamoCore {
    /// No tables yet.
    pub fn new(config: Arc<EngineConfig>, clock: Arc<Clock>) -> Self {
        DynamoCore {
            config,
            clock,
            tables: RwLock::new(BTreeMap::new()),
        }
    }

    fn not_found(name: &str) -> ApiError {
        ApiError::not_found(format!(
            "Requested resource not found: Table: {name} not found"
        ))
    }

    fn table(&self, name: &str) -> Result<Arc<Table>, ApiError> {
        self.tables
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Self::not_found(name))
    }

    /// The engine clock's now.
    pub(super) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// How long a new table or index stays `CREATING`.
    pub(super) fn table_delay_ms(&self) -> u64 {
        self.config.table_delay.as_millis() as u64
    }

    pub(super) fn status(&self, t: &Table) -> &'static str {
        if self.clock.now_ms() < t.ready_at_ms {
            "CREATING"
        } else {
            "ACTIVE"
        }
    }

    /// A table ready for item operations.
    pub(super) fn active(&self, name: &Option<String>) -> Result<Arc<Table>, ApiError> {
        self.active_named(table_name(name)?)
    }

    /// Fails unless `t` is still the table registered under its name.
    pub(super) fn still_registered(&self, t: &Arc<Table>) -> Result<(), ApiError> {
        match self.tables.read().get(&t.name) {
            Some(current) if Arc::ptr_eq(current, t) => Ok(()),
            _ => Err(Self::not_found(&t.name)),
        }
    }

    /// A table ready for item operations, by name.
    pub(super) fn active_named(&self, name: &str) -> Result<Arc<Table>, ApiError> {
        let t = self.table(name)?;
        if self.status(&t) != "ACTIVE" {
            return Err(ApiError::not_found(format!(
                "Requested resource not found: Table: {name} is being created"
            )));
        }
        Ok(t)
    }

    fn create_table(&self, v: CreateTableReq) -> Result<Value, ApiError> {
        let name = table_name(&v.table_name)?;
        let schema = v
            .key_schema
            .as_ref()
            .ok_or_else(|| null_member("keySchema"))?;
        let defs = v
            .attribute_definitions
            .as_ref()
            .ok_or_else(|| null_member("attributeDefinitions"))?;
        let types = super::schema::attribute_types(defs)?;
        let (hash, range) = super::schema::key_schema(schema, &types)?;
        let now = self.clock.now_ms();
        let ready_at_ms = now + self.config.table_delay.as_millis() as u64;
        let billing = v
            .billing_mode
            .clone()
            .unwrap_or_else(|| "PROVISIONED".to_owned());
        let indexes = v
            .global_secondary_indexes
            .iter()
            .flatten()
            .map(|i| super::schema::parse_index(i, &types, ready_at_ms, billing == "PROVISIONED"))
            .collect::<Result<Vec<_>, _>>()?;
        // Every defined attribute must be a key of the table or of an index.
        let mut used: Vec<&str> = vec![hash.name.as_str()];
        used.extend(range.as_ref().map(|r| r.name.as_str()));
        for i in &indexes {
            used.push(i.hash.name.as_str());
            used.extend(i.range.as_ref().map(|r| r.name.as_str()));
        }
        if types.keys().any(|k| !used.contains(&k.as_str())) {
            return Err(ApiError::validation(
                "One or more parameter values were invalid: Number of attributes in KeySchema does not exactly match number of attributes defined in AttributeDefinitions",
            ));
        }
        let provisioned = match billing.as_str() {
            "PAY_PER_REQUEST" => (0, 0),
            "PROVISIONED" => {
                let p = v.provisioned_throughput.as_ref();
                let units = |f: fn(&Throughput) -> Option<i64>| p.and_then(f).filter(|n| *n >= 1);
                match (
                    units(|p| p.read_capacity_units),
                    units(|p| p.write_capacity_units),
                ) {
                    (Some(r), Some(w)) => (r, w),
                    _ => {
                        return Err(ApiError::validation(
                            "One or more parameter values were invalid: ReadCapacityUnits and WriteCapacityUnits must both be specified when BillingMode is PROVISIONED",
                        ));
                    }
                }
            }
            other => {
                return Err(ApiError::validation(format!(
                    "1 validation error detected: Value '{other}' at 'billingMode' failed to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, PAY_PER_REQUEST]"
                )));
            }
        };
        let mut tables = self.tables.write();
        if tables.contains_key(name) {
            return Err(ApiError::in_use(format!("Table already exists: {name}")));
        }
        let table = Arc::new(Table {
            name: name.to_owned(),
            arn: format!(
                "arn:aws:dynamodb:{}:{}:table/{name}",
                self.config.region, self.config.account_id
            ),
            id: format!("{:032x}", rand::random::<u128>()),
            created_ms: now,
            ready_at_ms,
            hash,
            range,
            billing,
            provisioned,
            items: Mutex::new(BTreeMap::new()),
            attr_types: Mutex::new(types),
            indexes: Mutex::new(indexes),
        });
        let desc = table.description(self.status(&table), now);
        tables.insert(name.to_owned(), table);
        Ok(json!({ "TableDescription": desc }))
    }

    fn describe_table(&self, v: TableReq) -> Result<Value, ApiError> {
        let t = self.table(table_name(&v.table_name)?)?;
        Ok(json!({ "Table": t.description(self.status(&t), self.clock.now_ms()) }))
    }

    fn delete_table(&self, v: TableReq) -> Result<Value, ApiError> {
        let name = table_name(&v.table_name)?;
        let t = self
            .tables
            .write()
            .remove(name)
            .ok_or_else(|| Self::not_found(name))?;
        Ok(json!({ "TableDescription": t.description("DELETING", self.clock.now_ms()) }))
    }

    fn list_tables(&self, v: ListTablesReq) -> Result<Value, ApiError> {
        let limit = v.limit.unwrap_or(100);
        if !(1..=100).contains(&limit) {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value between 1 and 100"
            )));
        }
        let start = v.exclusive_start_table_name.as_deref();
        let tables = self.tables.read();
        let mut names: Vec<&String> = tables
            .keys()
            .filter(|n| start.is_none_or(|s| n.as_str() > s))
            .collect();
        let more = names.len() > limit as usize;
        names.truncate(limit as usize);
        let mut out = json!({ "TableNames": names });
        if more && let Some(last) = names.last() {
            out["LastEvaluatedTableName"] = json!(last);
        }
        Ok(out)
    }

    fn put_item(&self, v: ItemReq) -> Result<Value, ApiError> {
        let legacy =
            legacy::uses_legacy(&v.legacy, &v.exprs, &["Expected", "ConditionalOperator"])?;
        let t = self.active(&v.table_name)?;
        let item = required_item(&v.item, "item")?;
        let rv = return_values(&v.return_values, &["NONE", "ALL_OLD"])?;
        let all_old = on_failure_all_old(&v.return_values_on_condition_check_failure)?;
        let mut ctx = context(&v.exprs)?;
        let cond = if legacy {
            legacy::expected(&v.legacy)?
        } else {
            condition(&v.exprs, &mut ctx)?
        };
        ctx.check_all_used()?;
        let key = t.key_from_item(&item)?;
        check_size(&item)?;
        t.check_index_keys(&item)?;
        let mut items = t.items.lock();
        let old = items.get(&key);
        check_condition(cond.as_ref(), old, all_old)?;
        let old = items.insert(key, item);
        Ok(match (rv.as_str(), old) {
            ("ALL_OLD", Some(old)) => json!({ "Attributes": item_to_json(&old) }),
            _ => json!({}),
        })
    }

    fn get_item(&self, v: ItemReq) -> Result<Value, ApiError> {
        let legacy = legacy::uses_legacy(&v.legacy, &v.exprs, &["AttributesToGet"])?;
        let t = self.active(&v.table_name)?;
        let key = required_item(&v.key, "key")?;
        let mut ctx = context(&v.exprs)?;
        let projection = if legacy {
            legacy::attributes_to_get(&v.legacy)?
        } else {
            projection(&v.exprs, &mut ctx)?
        };
        ctx.check_all_used()?;
        let key = t.key_from_key(&key)?;
        let items = t.items.lock();
        Ok(match items.get(&key) {
            Some(item) => {
                let item = match &projection {
                    Some(paths) => expr::project(item, paths),
                    None => item.clone(),
                };
                json!({ "Item": item_to_json(&item) })
            }
            None => json!({}),
        })
    }

    fn update_item(&self, v: ItemReq) -> Result<Value, ApiError> {
        let legacy = legacy::uses_legacy(
            &v.legacy,
            &v.exprs,
            &["Expected", "ConditionalOperator", "AttributeUpdates"],
        )?;
        let t = self.active(&v.table_name)?;
        let key_item = required_item(&v.key, "key")?;
        let rv = return_values(
            &v.return_values,
            &["NONE", "ALL_OLD", "ALL_NEW", "UPDATED_OLD", "UPDATED_NEW"],
        )?;
        let all_old = on_failure_all_old(&v.return_values_on_condition_check_failure)?;
        let mut ctx = context(&v.exprs)?;
        let (update, cond) = if legacy {
            (
                legacy::attribute_updates(&v.legacy)?,
                legacy::expected(&v.legacy)?,
            )
        } else {
            let update = v
                .exprs
                .update_expression
                .as_deref()
                .map(|u| expr::parse_update(u, &mut ctx))
                .transpose()?;
            (update, condition(&v.exprs, &mut ctx)?)
        };
        ctx.check_all_used()?;
        let key = t.key_from_key(&key_item)?;
        let mut items = t.items.lock();
        let old = items.get(&key);
        check_condition(cond.as_ref(), old, all_old)?;
        let old = old.cloned();
        let mut new = old.clone().unwrap_or_else(|| t.key_item(&key_item));
        let touched = match &update {
            Some(u) => expr::apply_update(&mut new, u, &t.key_names())?,
            None => Vec::new(),
        };
        check_size(&new)?;
        t.check_index_keys(&new)?;
        items.insert(key, new.clone());
        let pick = |item: &Item| -> Item {
            touched
                .iter()
                .filter_map(|k| item.get(k).map(|v| (k.clone(), v.clone())))
                .collect()
        };
        let attrs = match rv.as_str() {
            "ALL_OLD" => old,
            "ALL_NEW" => Some(new),
            "UPDATED_OLD" => old.as_ref().map(pick),
            "UPDATED_NEW" => Some(pick(&new)),
            _ => None,
        };
        Ok(match attrs {
            Some(a) if !a.is_empty() => json!({ "Attributes": item_to_json(&a) }),
            _ => json!({}),
        })
    }

    fn delete_item(&self, v: ItemReq) -> Result<Value, ApiError> {
        let legacy =
            legacy::uses_legacy(&v.legacy, &v.exprs, &["Expected", "ConditionalOperator"])?;
        let t = self.active(&v.table_name)?;
        let key_item = required_item(&v.key, "key")?;
        let rv = return_values(&v.return_values, &["NONE", "ALL_OLD"])?;
        let all_old = on_failure_all_old(&v.return_values_on_condition_check_failure)?;
        let mut ctx = context(&v.exprs)?;
        let cond = if legacy {
            legacy::expected(&v.legacy)?
        } else {
            condition(&v.exprs, &mut ctx)?
        };
        ctx.check_all_used()?;
        let key = t.key_from_key(&key_item)?;
        let mut items = t.items.lock();
        let old = items.get(&key);
        check_condition(cond.as_ref(), old, all_old)?;
        let old = items.remove(&key);
        Ok(match (rv.as_str(), old) {
            ("ALL_OLD", Some(old)) => json!({ "Attributes": item_to_json(&old) }),
            _ => json!({}),
        })
    }
}
