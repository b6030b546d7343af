//! Key schemas, attribute definitions and index declarations of `CreateTable` and
//! `UpdateTable`.

use super::request::*;
use super::requests::{AttributeDefinition, IndexSpec, KeySchemaElement};
use super::table::{Index, KeyAttr, Projection};
use crate::error::ApiError;
use std::collections::HashMap;

/// A key schema (`HASH` first, then an optional `RANGE`) against attribute definitions.
pub(super) fn key_schema(
    schema: &[KeySchemaElement],
    types: &HashMap<String, String>,
) -> Result<(KeyAttr, Option<KeyAttr>), ApiError> {
    let mut hash = None;
    let mut range = None;
    for (i, k) in schema.iter().enumerate() {
        let n = required(&k.attribute_name, "keySchema.member.attributeName")?;
        let kind = types.get(n).cloned().ok_or_else(|| {
            ApiError::validation(format!("One or more parameter values were invalid: Some index key attributes are not defined in AttributeDefinitions. Keys: [{n}]"))
        })?;
        let attr = KeyAttr {
            name: n.to_owned(),
            kind,
        };
        match (required(&k.key_type, "keySchema.member.keyType")?, i) {
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
pub(super) fn attribute_types(
    defs: &[AttributeDefinition],
) -> Result<HashMap<String, String>, ApiError> {
    let mut types = HashMap::new();
    for d in defs {
        let n = required(
            &d.attribute_name,
            "attributeDefinitions.member.attributeName",
        )?;
        let t = required(
            &d.attribute_type,
            "attributeDefinitions.member.attributeType",
        )?;
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
    spec: &IndexSpec,
    types: &HashMap<String, String>,
    ready_at_ms: u64,
    provisioned: bool,
) -> Result<Index, ApiError> {
    let name = required(&spec.index_name, "globalSecondaryIndexes.member.indexName")?;
    if provisioned && spec.provisioned_throughput.is_none() {
        return Err(ApiError::validation(format!(
            "One or more parameter values were invalid: ProvisionedThroughput must be specified for index: {name}"
        )));
    }
    if !(3..=255).contains(&name.len()) {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{name}' at 'indexName' failed to satisfy constraint: Member must have length between 3 and 255"
        )));
    }
    let schema = spec
        .key_schema
        .as_ref()
        .ok_or_else(|| null_member("globalSecondaryIndexes.member.keySchema"))?;
    let (hash, range) = key_schema(schema, types)?;
    let p = spec.projection.as_ref();
    let projection = match p.and_then(|p| p.projection_type.as_deref()) {
        None | Some("ALL") => Projection::All,
        Some("KEYS_ONLY") => Projection::KeysOnly,
        Some("INCLUDE") => {
            let attrs = p
                .and_then(|p| p.non_key_attributes.clone())
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
