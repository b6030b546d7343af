//! The DynamoDB JSON API (awsJson1_0): tables and items for lease tables.

use super::expr::{self, Context, Path};
use super::legacy;
use super::value::{AttrValue, Decimal, Item, item_from_json, item_size, item_to_json};
use crate::clock::Clock;
use crate::config::EngineConfig;
use crate::error::ApiError;
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::ops::Bound;
use std::sync::Arc;

/// The `X-Amz-Target` prefix of DynamoDB operations.
pub const TARGET_PREFIX: &str = "DynamoDB_20120810";

/// Largest item, in bytes (400 KB).
pub const MAX_ITEM_SIZE: usize = 400 * 1024;
/// Most data one `Scan` page reads (1 MB).
pub const SCAN_PAGE_BYTES: usize = 1024 * 1024;

/// A key attribute value (the types a key may have), ordered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum KeyPart {
    S(String),
    N(Decimal),
    B(Bytes),
}

type Key = (KeyPart, Option<KeyPart>);

#[derive(Debug, Clone)]
struct KeyAttr {
    name: String,
    kind: String,
}

#[derive(Debug)]
struct Table {
    name: String,
    arn: String,
    id: String,
    created_ms: u64,
    ready_at_ms: u64,
    hash: KeyAttr,
    range: Option<KeyAttr>,
    billing: String,
    provisioned: (i64, i64),
    items: Mutex<BTreeMap<Key, Item>>,
}

/// The DynamoDB tables of an engine.
#[derive(Debug)]
pub struct DynamoCore {
    config: Arc<EngineConfig>,
    clock: Arc<Clock>,
    tables: RwLock<BTreeMap<String, Arc<Table>>>,
}

fn obj(v: &Value) -> Result<&Map<String, Value>, ApiError> {
    v.as_object()
        .ok_or_else(|| ApiError::serialization("The request body must be a JSON object"))
}

fn opt_str<'a>(v: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, ApiError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::serialization(format!("{field} must be a string"))),
    }
}

fn req_str<'a>(v: &'a Map<String, Value>, field: &str) -> Result<&'a str, ApiError> {
    opt_str(v, field)?.ok_or_else(|| {
        ApiError::validation(format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
            lower_first(field)
        ))
    })
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

fn table_name(v: &Map<String, Value>) -> Result<&str, ApiError> {
    let name = req_str(v, "TableName")?;
    let len = name.chars().count();
    if !(3..=255).contains(&len)
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
    {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{name}' at 'tableName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and have length between 3 and 255"
        )));
    }
    Ok(name)
}

fn context(v: &Map<String, Value>) -> Result<Context, ApiError> {
    let names: HashMap<String, String> = match v.get("ExpressionAttributeNames") {
        None | Some(Value::Null) => HashMap::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|s| (k.clone(), s.to_owned()))
                    .ok_or_else(|| {
                        ApiError::serialization("ExpressionAttributeNames values must be strings")
                    })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::serialization(
                "ExpressionAttributeNames must be an object",
            ));
        }
    };
    let values: HashMap<String, AttrValue> = match v.get("ExpressionAttributeValues") {
        None | Some(Value::Null) => HashMap::new(),
        Some(other) => item_from_json(other)?.into_iter().collect(),
    };
    for k in names.keys() {
        if !k.starts_with('#') {
            return Err(ApiError::validation(format!(
                "ExpressionAttributeNames contains invalid key: Syntax error; key: \"{k}\""
            )));
        }
    }
    for k in values.keys() {
        if !k.starts_with(':') {
            return Err(ApiError::validation(format!(
                "ExpressionAttributeValues contains invalid key: Syntax error; key: \"{k}\""
            )));
        }
    }
    Ok(Context::new(names, values))
}

fn return_values(v: &Map<String, Value>, allowed: &[&str]) -> Result<String, ApiError> {
    let rv = opt_str(v, "ReturnValues")?.unwrap_or("NONE");
    if !["NONE", "ALL_OLD", "ALL_NEW", "UPDATED_OLD", "UPDATED_NEW"].contains(&rv) {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{rv}' at 'returnValues' failed to satisfy constraint: Member must satisfy enum value set: [ALL_NEW, UPDATED_OLD, ALL_OLD, NONE, UPDATED_NEW]"
        )));
    }
    if !allowed.contains(&rv) {
        return Err(ApiError::validation(format!(
            "ReturnValues can only be {} on this operation",
            allowed.join(" or ")
        )));
    }
    Ok(rv.to_owned())
}

fn on_failure_all_old(v: &Map<String, Value>) -> Result<bool, ApiError> {
    match opt_str(v, "ReturnValuesOnConditionCheckFailure")? {
        None | Some("NONE") => Ok(false),
        Some("ALL_OLD") => Ok(true),
        Some(other) => Err(ApiError::validation(format!(
            "1 validation error detected: Value '{other}' at 'returnValuesOnConditionCheckFailure' failed to satisfy constraint: Member must satisfy enum value set: [ALL_OLD, NONE]"
        ))),
    }
}

fn condition_failed(old: Option<&Item>, all_old: bool) -> ApiError {
    let mut err = ApiError::new(
        "ConditionalCheckFailedException",
        "The conditional request failed",
    );
    if all_old && let Some(item) = old {
        let mut extra = Map::new();
        extra.insert("Item".into(), item_to_json(item));
        err.extra = Some(extra);
    }
    err
}

/// A required item-shaped member (`Item`, `Key`), named `member` in messages.
fn required_item(v: &Map<String, Value>, field: &str, member: &str) -> Result<Item, ApiError> {
    item_from_json(v.get(field).ok_or_else(|| {
        ApiError::validation(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
        ))
    })?)
}

/// The request's `ConditionExpression`, parsed against its names and values.
fn condition(v: &Map<String, Value>, ctx: &mut Context) -> Result<Option<expr::Cond>, ApiError> {
    opt_str(v, "ConditionExpression")?
        .map(|c| expr::parse_condition("Condition", c, ctx))
        .transpose()
}

/// Fails with `ConditionalCheckFailedException` when `cond` does not hold for `old` (an absent
/// item counts as an empty one).
fn check_condition(
    cond: Option<&expr::Cond>,
    old: Option<&Item>,
    all_old: bool,
) -> Result<(), ApiError> {
    if let Some(cond) = cond
        && !expr::evaluate(cond, old.unwrap_or(&Item::new()))?
    {
        return Err(condition_failed(old, all_old));
    }
    Ok(())
}

fn check_size(item: &Item) -> Result<(), ApiError> {
    if item_size(item) > MAX_ITEM_SIZE {
        return Err(ApiError::validation(
            "Item size has exceeded the maximum allowed size",
        ));
    }
    Ok(())
}

fn epoch_secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

impl Table {
    fn key_names(&self) -> Vec<&str> {
        let mut k = vec![self.hash.name.as_str()];
        if let Some(r) = &self.range {
            k.push(r.name.as_str());
        }
        k
    }

    fn key_part(
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
    fn key_from_key(&self, key: &Item) -> Result<Key, ApiError> {
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
    fn key_from_item(&self, item: &Item) -> Result<Key, ApiError> {
        let hash = self.key_part(&self.hash, item.get(&self.hash.name), true)?;
        let range = match &self.range {
            Some(r) => Some(self.key_part(r, item.get(&r.name), true)?),
            None => None,
        };
        Ok((hash, range))
    }

    fn key_item(&self, item: &Item) -> Item {
        self.key_names()
            .into_iter()
            .filter_map(|k| item.get(k).map(|v| (k.to_owned(), v.clone())))
            .collect()
    }

    fn description(&self, status: &str) -> Value {
        let items = self.items.lock();
        let size: usize = items.values().map(item_size).sum();
        let mut key_schema = vec![json!({ "AttributeName": self.hash.name, "KeyType": "HASH" })];
        let mut defs =
            vec![json!({ "AttributeName": self.hash.name, "AttributeType": self.hash.kind })];
        if let Some(r) = &self.range {
            key_schema.push(json!({ "AttributeName": r.name, "KeyType": "RANGE" }));
            defs.push(json!({ "AttributeName": r.name, "AttributeType": r.kind }));
        }
        json!({
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
        })
    }
}

/// Serves one DynamoDB operation.
pub fn handle(core: &DynamoCore, operation: &str, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let body = if body.is_empty() {
        b"{}" as &[u8]
    } else {
        body
    };
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::serialization(format!("Malformed request body: {e}")))?;
    let v = obj(&value)?;
    let out = match operation {
        "CreateTable" => core.create_table(v)?,
        "DescribeTable" => core.describe_table(v)?,
        "DeleteTable" => core.delete_table(v)?,
        "ListTables" => core.list_tables(v)?,
        "PutItem" => core.put_item(v)?,
        "GetItem" => core.get_item(v)?,
        "UpdateItem" => core.update_item(v)?,
        "DeleteItem" => core.delete_item(v)?,
        "Scan" => core.scan(v)?,
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

    fn status(&self, t: &Table) -> &'static str {
        if self.clock.now_ms() < t.ready_at_ms {
            "CREATING"
        } else {
            "ACTIVE"
        }
    }

    /// A table ready for item operations.
    fn active(&self, v: &Map<String, Value>) -> Result<Arc<Table>, ApiError> {
        let name = table_name(v)?;
        let t = self.table(name)?;
        if self.status(&t) != "ACTIVE" {
            return Err(ApiError::not_found(format!(
                "Requested resource not found: Table: {name} is being created"
            )));
        }
        Ok(t)
    }

    fn create_table(&self, v: &Map<String, Value>) -> Result<Value, ApiError> {
        let name = table_name(v)?;
        let schema = v.get("KeySchema").and_then(Value::as_array).ok_or_else(|| {
            ApiError::validation("1 validation error detected: Value null at 'keySchema' failed to satisfy constraint: Member must not be null")
        })?;
        let defs = v.get("AttributeDefinitions").and_then(Value::as_array).ok_or_else(|| {
            ApiError::validation("1 validation error detected: Value null at 'attributeDefinitions' failed to satisfy constraint: Member must not be null")
        })?;
        let mut types: HashMap<String, String> = HashMap::new();
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
        let mut hash = None;
        let mut range = None;
        for (i, k) in schema.iter().enumerate() {
            let k = obj(k)?;
            let n = req_str(k, "AttributeName")?;
            let kind = types.get(n).cloned().ok_or_else(|| {
                ApiError::validation("One or more parameter values were invalid: Some index key attributes are not defined in AttributeDefinitions. Keys: [".to_owned() + n + "]")
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
        if schema.len() != types.len() {
            return Err(ApiError::validation(
                "One or more parameter values were invalid: Number of attributes in KeySchema does not exactly match number of attributes defined in AttributeDefinitions",
            ));
        }
        let billing = opt_str(v, "BillingMode")?
            .unwrap_or("PROVISIONED")
            .to_owned();
        let provisioned = match billing.as_str() {
            "PAY_PER_REQUEST" => (0, 0),
            "PROVISIONED" => {
                let p = v.get("ProvisionedThroughput").and_then(Value::as_object);
                let units = |f: &str| {
                    p.and_then(|p| p.get(f))
                        .and_then(Value::as_i64)
                        .filter(|n| *n >= 1)
                };
                match (units("ReadCapacityUnits"), units("WriteCapacityUnits")) {
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
        let now = self.clock.now_ms();
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
            ready_at_ms: now + self.config.table_delay.as_millis() as u64,
            hash,
            range,
            billing,
            provisioned,
            items: Mutex::new(BTreeMap::new()),
        });
        let desc = table.description(self.status(&table));
        tables.insert(name.to_owned(), table);
        Ok(json!({ "TableDescription": desc }))
    }

    fn describe_table(&self, v: &Map<String, Value>) -> Result<Value, ApiError> {
        let t = self.table(table_name(v)?)?;
        Ok(json!({ "Table": t.description(self.status(&t)) }))
    }

    fn delete_table(&self, v: &Map<String, Value>) -> Result<Value, ApiError> {
        let name = table_name(v)?;
        let t = self
            .tables
            .write()
            .remove(name)
            .ok_or_else(|| Self::not_found(name))?;
        Ok(json!({ "TableDescription": t.description("DELETING") }))
    }

    fn list_tables(&self, v: &Map<String, Value>) -> Result<Value, ApiError> {
        let limit = v.get("Limit").and_then(Value::as_i64).unwrap_or(100);
        if !(1..=100).contains(&limit) {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value between 1 and 100"
            )));
        }
        let start = opt_str(v, "ExclusiveStartTableName")?;
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

    fn put_item(&self, v: &Map<String, Value>) -> Result<Value, ApiError> {
        let legacy = legacy::uses_legacy(v, &["Expected", "ConditionalOperator"])?;
        let t = self.active(v)?;
        let item = required_item(v, "Item", "item")?;
        let rv = return_values(v, &["NONE", "ALL_OLD"])?;
        let all_old = on_failure_all_old(v)?;
        let mut ctx = context(v)?;
        let cond = if legacy {
            legacy::expected(v)?
        } else {
            condition(v, &mut ctx)?
        };
        ctx.check_all_used()?;
        let key = t.key_from_item(&item)?;
        check_size(&item)?;
        let mut items = t.items.lock();
        let old = items.get(&key);
        check_condition(cond.as_ref(), old, all_old)?;
        let old = items.insert(key, item);
        Ok(match (rv.as_str(), old) {
            ("ALL_OLD", Some(old)) => json!({ "Attributes": item_to_json(&old) }),
            _ => json!({}),
        })
    }

    fn get_item(&self, v: &Map<String, Value>) -> Result<Value, ApiError> {
        let legacy = legacy::uses_legacy(v, &["AttributesToGet"])?;
        let t = self.active(v)?;
        let key = required_item(v, "Key", "key")?;
        if let Some(c) = v.get("ConsistentRead")
            && !c.is_boolean()
            && !c.is_null()
        {
            return Err(ApiError::serialization("ConsistentRead must be a boolean"));
        }
        let mut ctx = context(v)?;
        let projection = if legacy {
            legacy::attributes_to_get(v)?
        } else {
            opt_str(v, "ProjectionExpression")?
                .map(|p| expr::parse_projection(p, &mut ctx))
                .transpose()?
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

    fn update_item(&self, v: &Map<String, Value>) -> Result<Value, ApiError> {
        let legacy =
            legacy::uses_legacy(v, &["Expected", "ConditionalOperator", "AttributeUpdates"])?;
        let t = self.active(v)?;
        let key_item = required_item(v, "Key", "key")?;
        let rv = return_values(
            v,
            &["NONE", "ALL_OLD", "ALL_NEW", "UPDATED_OLD", "UPDATED_NEW"],
        )?;
        let all_old = on_failure_all_old(v)?;
        let mut ctx = context(v)?;
        let (update, cond) = if legacy {
            (legacy::attribute_updates(v)?, legacy::expected(v)?)
        } else {
            let update = opt_str(v, "UpdateExpression")?
                .map(|u| expr::parse_update(u, &mut ctx))
                .transpose()?;
            (update, condition(v, &mut ctx)?)
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

    fn delete_item(&self, v: &Map<String, Value>) -> Result<Value, ApiError> {
        let legacy = legacy::uses_legacy(v, &["Expected", "ConditionalOperator"])?;
        let t = self.active(v)?;
        let key_item = required_item(v, "Key", "key")?;
        let rv = return_values(v, &["NONE", "ALL_OLD"])?;
        let all_old = on_failure_all_old(v)?;
        let mut ctx = context(v)?;
        let cond = if legacy {
            legacy::expected(v)?
        } else {
            condition(v, &mut ctx)?
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

    fn scan(&self, v: &Map<String, Value>) -> Result<Value, ApiError> {
        let legacy =
            legacy::uses_legacy(v, &["ScanFilter", "ConditionalOperator", "AttributesToGet"])?;
        let t = self.active(v)?;
        let limit = match v.get("Limit") {
            None | Some(Value::Null) => usize::MAX,
            Some(l) => match l.as_i64() {
                Some(n) if n >= 1 => n as usize,
                _ => {
                    return Err(ApiError::validation(
                        "1 validation error detected: Value at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1",
                    ));
                }
            },
        };
        let segment = match (
            v.get("Segment").and_then(Value::as_i64),
            v.get("TotalSegments").and_then(Value::as_i64),
        ) {
            (None, None) => None,
            (Some(s), Some(n)) if (1..=1_000_000).contains(&n) && (0..n).contains(&s) => {
                Some((s as u64, n as u64))
            }
            _ => {
                return Err(ApiError::validation(
                    "The Segment parameter must be in 0..TotalSegments, and both must be given together",
                ));
            }
        };
        let count_only = match opt_str(v, "Select")? {
            None | Some("ALL_ATTRIBUTES") | Some("SPECIFIC_ATTRIBUTES") => false,
            Some("COUNT") => true,
            Some(other) => {
                return Err(ApiError::validation(format!(
                    "1 validation error detected: Value '{other}' at 'select' failed to satisfy constraint: Member must satisfy enum value set: [SPECIFIC_ATTRIBUTES, COUNT, ALL_ATTRIBUTES]"
                )));
            }
        };
        let mut ctx = context(v)?;
        let (filter, projection): (Option<expr::Cond>, Option<Vec<Path>>) = if legacy {
            (
                legacy::filter(v, "ScanFilter")?,
                legacy::attributes_to_get(v)?,
            )
        } else {
            (
                opt_str(v, "FilterExpression")?
                    .map(|f| expr::parse_condition("Filter", f, &mut ctx))
                    .transpose()?,
                opt_str(v, "ProjectionExpression")?
                    .map(|p| expr::parse_projection(p, &mut ctx))
                    .transpose()?,
            )
        };
        ctx.check_all_used()?;
        let start = match v.get("ExclusiveStartKey") {
            None | Some(Value::Null) => None,
            Some(k) => Some(t.key_from_key(&item_from_json(k)?)?),
        };
        let items = t.items.lock();
        let range = match &start {
            Some(k) => items.range((Bound::Excluded(k.clone()), Bound::Unbounded)),
            None => items.range::<Key, _>(..),
        };
        let mut out = Vec::new();
        let mut scanned = 0usize;
        let mut bytes = 0usize;
        let mut last: Option<&Item> = None;
        let mut more = false;
        for (key, item) in range {
            if let Some((s, n)) = segment {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                key.hash(&mut h);
                if h.finish() % n != s {
                    continue;
                }
            }
            if scanned >= limit || bytes >= SCAN_PAGE_BYTES {
                more = true;
                break;
            }
            scanned += 1;
            bytes += item_size(item);
            last = Some(item);
            if let Some(f) = &filter
                && !expr::evaluate(f, item)?
            {
                continue;
            }
            out.push(match &projection {
                Some(paths) => expr::project(item, paths),
                None => item.clone(),
            });
        }
        let mut resp = json!({ "Count": out.len(), "ScannedCount": scanned });
        if !count_only {
            resp["Items"] = Value::from(out.iter().map(item_to_json).collect::<Vec<_>>());
        }
        if more && let Some(last) = last {
            resp["LastEvaluatedKey"] = item_to_json(&t.key_item(last));
        }
        Ok(resp)
    }
}
