//! Request bodies, as serde types.
//!
//! A member of the wrong JSON type fails the whole request with `SerializationException`, as
//! DynamoDB answers it; a missing required member is left `None` here and refused by the
//! operation with DynamoDB's `ValidationException` wording. Attribute values stay JSON
//! ([`Attrs`], [`Value`]) until `value.rs` decodes them, because DynamoDB validates them with
//! messages of their own.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

use crate::error::ApiError;

/// An item-shaped member (`Item`, `Key`, `ExclusiveStartKey`): attribute name to wire value.
pub(super) type Attrs = serde_json::Map<String, Value>;

/// The members of a request object this engine does not read. Having one makes serde read
/// the struct as a map only: a JSON array in its place is a `SerializationException`, as on
/// DynamoDB, not a positional struct.
pub(super) type Rest = BTreeMap<String, serde::de::IgnoredAny>;

/// Reads a whole request body (an empty body is an empty request).
pub(super) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.is_empty() {
        b"{}" as &[u8]
    } else {
        body
    };
    serde_json::from_slice(body).map_err(serialization)
}

fn serialization(e: serde_json::Error) -> ApiError {
    ApiError::serialization(format!("Malformed request body: {e}"))
}

/// The expression members an item or read operation may carry.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Exprs {
    pub(super) condition_expression: Option<String>,
    pub(super) update_expression: Option<String>,
    pub(super) projection_expression: Option<String>,
    pub(super) filter_expression: Option<String>,
    pub(super) key_condition_expression: Option<String>,
    pub(super) expression_attribute_names: Option<HashMap<String, String>>,
    pub(super) expression_attribute_values: Option<Attrs>,
}

impl Exprs {
    /// The expression members present, by wire name.
    pub(super) fn present(&self) -> Vec<&'static str> {
        [
            ("ConditionExpression", self.condition_expression.is_some()),
            ("UpdateExpression", self.update_expression.is_some()),
            ("ProjectionExpression", self.projection_expression.is_some()),
            ("FilterExpression", self.filter_expression.is_some()),
            (
                "KeyConditionExpression",
                self.key_condition_expression.is_some(),
            ),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

/// One `Expected` entry (an `ExpectedAttributeValue`).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ExpectedAttr {
    /// Members this engine does not read (a flattened map also refuses a JSON array).
    #[serde(flatten)]
    pub(super) _rest: Rest,
    pub(super) value: Option<Value>,
    pub(super) exists: Option<bool>,
    pub(super) comparison_operator: Option<String>,
    pub(super) attribute_value_list: Option<Vec<Value>>,
}

/// One `ScanFilter`, `QueryFilter` or `KeyConditions` entry (a `Condition`).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct LegacyCondition {
    /// Members this engine does not read (a flattened map also refuses a JSON array).
    #[serde(flatten)]
    pub(super) _rest: Rest,
    pub(super) comparison_operator: Option<String>,
    pub(super) attribute_value_list: Option<Vec<Value>>,
}

/// One `AttributeUpdates` entry (an `AttributeValueUpdate`).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct AttributeUpdate {
    /// Members this engine does not read (a flattened map also refuses a JSON array).
    #[serde(flatten)]
    pub(super) _rest: Rest,
    pub(super) value: Option<Value>,
    pub(super) action: Option<String>,
}

/// The legacy (pre-expression) members an item or read operation may carry.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Legacy {
    pub(super) expected: Option<BTreeMap<String, ExpectedAttr>>,
    pub(super) attribute_updates: Option<BTreeMap<String, AttributeUpdate>>,
    pub(super) conditional_operator: Option<String>,
    pub(super) scan_filter: Option<BTreeMap<String, LegacyCondition>>,
    pub(super) query_filter: Option<BTreeMap<String, LegacyCondition>>,
    pub(super) attributes_to_get: Option<Vec<String>>,
    pub(super) key_conditions: Option<BTreeMap<String, LegacyCondition>>,
}

impl Legacy {
    /// The legacy members present, by wire name.
    pub(super) fn present(&self) -> Vec<&'static str> {
        [
            ("Expected", self.expected.is_some()),
            ("AttributeUpdates", self.attribute_updates.is_some()),
            ("ConditionalOperator", self.conditional_operator.is_some()),
            ("ScanFilter", self.scan_filter.is_some()),
            ("QueryFilter", self.query_filter.is_some()),
            ("AttributesToGet", self.attributes_to_get.is_some()),
            ("KeyConditions", self.key_conditions.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

/// `PutItem`, `GetItem`, `UpdateItem`, `DeleteItem`, and each action of a transaction.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ItemReq {
    pub(super) table_name: Option<String>,
    pub(super) item: Option<Attrs>,
    pub(super) key: Option<Attrs>,
    pub(super) return_values: Option<String>,
    pub(super) return_values_on_condition_check_failure: Option<String>,
    /// Only type-checked: every read here is consistent.
    #[serde(rename = "ConsistentRead")]
    pub(super) _consistent_read: Option<bool>,
    #[serde(flatten)]
    pub(super) exprs: Exprs,
    #[serde(flatten)]
    pub(super) legacy: Legacy,
}

/// `Scan` and `Query`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ReadReq {
    pub(super) table_name: Option<String>,
    pub(super) index_name: Option<String>,
    pub(super) limit: Option<i64>,
    pub(super) segment: Option<i64>,
    pub(super) total_segments: Option<i64>,
    pub(super) select: Option<String>,
    pub(super) exclusive_start_key: Option<Attrs>,
    pub(super) scan_index_forward: Option<bool>,
    pub(super) consistent_read: Option<bool>,
    #[serde(flatten)]
    pub(super) exprs: Exprs,
    #[serde(flatten)]
    pub(super) legacy: Legacy,
}

/// `DescribeTable` and `DeleteTable`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TableReq {
    /// Members this engine does not read (a flattened map also refuses a JSON array).
    #[serde(flatten)]
    pub(super) _rest: Rest,
    pub(super) table_name: Option<String>,
}

/// `ListTables`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListTablesReq {
    /// Members this engine does not read (a flattened map also refuses a JSON array).
    #[serde(flatten)]
    pub(super) _rest: Rest,
    pub(super) limit: Option<i64>,
    pub(super) exclusive_start_table_name: Option<String>,
}

/// One `KeySchemaElement`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct KeySchemaElement {
    /// Members this engine does not read (a flattened map also refuses a JSON array).
    #[serde(flatten)]
    pub(super) _rest: Rest,
    pub(super) attribute_name: Option<String>,
    pub(super) key_type: Option<String>,
}

/// One `AttributeDefinition`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct AttributeDefinition {
    /// Members this engine does not read (a flattened map also refuses a JSON array).
    #[serde(flatten)]
    pub(super) _rest: Rest,
    pub(super) attribute_name: Option<String>,
    pub(super) attribute_type: Option<String>,
}

/// `ProvisionedThroughput`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Throughput {
    /// Members this engine does not read (a flattened map also refuses a JSON array).
    #[serde(flatten)]
    pub(super) _rest: Rest,
    pub(super) read_capacity_units: Option<i64>,
    pub(super) write_capacity_units: Option<i64>,
}

/// An index's `Projection`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ProjectionSpec {
    /// Members this engine does not read (a flattened map also refuses a JSON array).
    #[serde(flatten)]
    pub(super) _rest: Rest,
    pub(super) projection_type: Option<String>,
    pub(super) non_key_attributes: Option<Vec<String>>,
}

/// A global secondary index, at `CreateTable` or in an `UpdateTable` `Create`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct IndexSpec {
    /// Members this engine does not read (a flattened map also refuses a JSON array).
    #[serde(flatten)]
    pub(super) _rest: Rest,
    pub(super) index_name: Option<String>,
    pub(super) key_schema: Option<Vec<KeySchemaElement>>,
    pub(super) projection: Option<ProjectionSpec>,
    pub(super) provisioned_throughput: Option<Throughput>,
}

/// `CreateTable`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CreateTableReq {
    /// Members this engine does not read (a flattened map also refuses a JSON array).
    #[serde(flatten)]
    pub(super) _rest: Rest,
    pub(super) table_name: Option<String>,
    pub(super) key_schema: Option<Vec<KeySchemaElement>>,
    pub(super) attribute_definitions: Option<Vec<AttributeDefinition>>,
    pub(super) billing_mode: Option<String>,
    pub(super) provisioned_throughput: Option<Throughput>,
    pub(super) global_secondary_indexes: Option<Vec<IndexSpec>>,
}

/// An `UpdateTable` `Delete` of an index.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct IndexDelete {
    /// Members this engine does not read (a flattened map also refuses a JSON array).
    #[serde(flatten)]
    pub(super) _rest: Rest,
    pub(super) index_name: Option<String>,
}

/// One `GlobalSecondaryIndexUpdates` entry.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct IndexUpdate {
    /// Members this engine does not read (a flattened map also refuses a JSON array).
    #[serde(flatten)]
    pub(super) _rest: Rest,
    pub(super) create: Option<IndexSpec>,
    pub(super) delete: Option<IndexDelete>,
}

/// `UpdateTable`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct UpdateTableReq {
    /// Members this engine does not read (a flattened map also refuses a JSON array).
    #[serde(flatten)]
    pub(super) _rest: Rest,
    pub(super) table_name: Option<String>,
    pub(super) attribute_definitions: Option<Vec<AttributeDefinition>>,
    pub(super) global_secondary_index_updates: Option<Vec<IndexUpdate>>,
}

/// A request member read as `T`, kept also as it came, so that an unprocessed batch request
/// goes back unchanged.
pub(super) struct Echoed<T> {
    pub(super) raw: Value,
    pub(super) parsed: T,
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Echoed<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Value::deserialize(d)?;
        let parsed = T::deserialize(&raw).map_err(serde::de::Error::custom)?;
        Ok(Echoed { raw, parsed })
    }
}

/// `BatchWriteItem`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct BatchWriteReq {
    /// Members this engine does not read (a flattened map also refuses a JSON array).
    #[serde(flatten)]
    pub(super) _rest: Rest,
    pub(super) request_items: Option<BTreeMap<String, Vec<Echoed<WriteRequest>>>>,
}

/// `BatchGetItem`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct BatchGetReq {
    /// Members this engine does not read (a flattened map also refuses a JSON array).
    #[serde(flatten)]
    pub(super) _rest: Rest,
    pub(super) request_items: Option<BTreeMap<String, Echoed<KeysAndAttributes>>>,
}

/// The `Item` of a `PutRequest`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct PutRequest {
    /// Members this engine does not read (a flattened map also refuses a JSON array).
    #[serde(flatten)]
    pub(super) _rest: Rest,
    pub(super) item: Option<Attrs>,
}

/// The `Key` of a `DeleteRequest`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DeleteRequest {
    /// Members this engine does not read (a flattened map also refuses a JSON array).
    #[serde(flatten)]
    pub(super) _rest: Rest,
    pub(super) key: Option<Attrs>,
}

/// One `BatchWriteItem` request.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct WriteRequest {
    /// Members this engine does not read (a flattened map also refuses a JSON array).
    #[serde(flatten)]
    pub(super) _rest: Rest,
    pub(super) put_request: Option<PutRequest>,
    pub(super) delete_request: Option<DeleteRequest>,
}

/// One table of a `BatchGetItem`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct KeysAndAttributes {
    pub(super) keys: Option<Vec<Attrs>>,
    /// Only type-checked: every read here is consistent.
    #[serde(rename = "ConsistentRead")]
    pub(super) _consistent_read: Option<bool>,
    #[serde(flatten)]
    pub(super) exprs: Exprs,
    #[serde(flatten)]
    pub(super) legacy: Legacy,
}

/// One `TransactItems` entry: exactly one member is set.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TransactItem {
    /// Members this engine does not read (a flattened map also refuses a JSON array).
    #[serde(flatten)]
    pub(super) _rest: Rest,
    pub(super) put: Option<ItemReq>,
    pub(super) update: Option<ItemReq>,
    pub(super) delete: Option<ItemReq>,
    pub(super) condition_check: Option<ItemReq>,
    pub(super) get: Option<ItemReq>,
}

/// `TransactWriteItems` and `TransactGetItems`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TransactReq {
    /// Members this engine does not read (a flattened map also refuses a JSON array).
    #[serde(flatten)]
    pub(super) _rest: Rest,
    pub(super) transact_items: Option<Vec<TransactItem>>,
}
