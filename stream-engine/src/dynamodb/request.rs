//! Reading request members: names, values, conditions, return values, and the errors
//! DynamoDB gives for them.

use super::expr::{self, Context};
use super::value::{AttrValue, Item, item_from_json, item_size, item_to_json};
use crate::error::ApiError;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Largest item, in bytes (400 KB).
pub const MAX_ITEM_SIZE: usize = 400 * 1024;

pub(super) fn obj(v: &Value) -> Result<&Map<String, Value>, ApiError> {
    v.as_object()
        .ok_or_else(|| ApiError::serialization("The request body must be a JSON object"))
}

pub(super) fn opt_str<'a>(
    v: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, ApiError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::serialization(format!("{field} must be a string"))),
    }
}

pub(super) fn req_str<'a>(v: &'a Map<String, Value>, field: &str) -> Result<&'a str, ApiError> {
    opt_str(v, field)?.ok_or_else(|| {
        ApiError::validation(format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
            lower_first(field)
        ))
    })
}

pub(super) fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

pub(super) fn table_name(v: &Map<String, Value>) -> Result<&str, ApiError> {
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

pub(super) fn context(v: &Map<String, Value>) -> Result<Context, ApiError> {
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

pub(super) fn return_values(v: &Map<String, Value>, allowed: &[&str]) -> Result<String, ApiError> {
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

pub(super) fn on_failure_all_old(v: &Map<String, Value>) -> Result<bool, ApiError> {
    match opt_str(v, "ReturnValuesOnConditionCheckFailure")? {
        None | Some("NONE") => Ok(false),
        Some("ALL_OLD") => Ok(true),
        Some(other) => Err(ApiError::validation(format!(
            "1 validation error detected: Value '{other}' at 'returnValuesOnConditionCheckFailure' failed to satisfy constraint: Member must satisfy enum value set: [ALL_OLD, NONE]"
        ))),
    }
}

pub(super) fn condition_failed(old: Option<&Item>, all_old: bool) -> ApiError {
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
pub(super) fn required_item(
    v: &Map<String, Value>,
    field: &str,
    member: &str,
) -> Result<Item, ApiError> {
    item_from_json(v.get(field).ok_or_else(|| {
        ApiError::validation(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
        ))
    })?)
}

/// The request's `ConditionExpression`, parsed against its names and values.
pub(super) fn condition(
    v: &Map<String, Value>,
    ctx: &mut Context,
) -> Result<Option<expr::Cond>, ApiError> {
    opt_str(v, "ConditionExpression")?
        .map(|c| expr::parse_condition("Condition", c, ctx))
        .transpose()
}

/// Fails with `ConditionalCheckFailedException` when `cond` does not hold for `old` (an absent
/// item counts as an empty one).
pub(super) fn check_condition(
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

pub(super) fn check_size(item: &Item) -> Result<(), ApiError> {
    if item_size(item) > MAX_ITEM_SIZE {
        return Err(ApiError::validation(
            "Item size has exceeded the maximum allowed size",
        ));
    }
    Ok(())
}

pub(super) fn epoch_secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// One page of a `Scan` or `Query`: the items kept, how many were read, and the last item
/// read when the page ends before the items do (or at the `Limit`, which DynamoDB also
/// answers with a `LastEvaluatedKey`).
pub(super) struct Collected<'a> {
    pub(super) items: Vec<Item>,
    pub(super) scanned: usize,
    pub(super) last_if_more: Option<&'a Item>,
}

/// Reads `items` in order into a page: those failing `key_cond` are not read at all; at most
/// `limit` items or 1 MB are read; `hold` is what the table or index holds of an item;
/// `filter` and `projection` apply to that.
pub(super) fn collect_page<'a>(
    items: impl Iterator<Item = &'a Item>,
    limit: usize,
    key_cond: Option<&expr::Cond>,
    filter: Option<&expr::Cond>,
    projection: Option<&[expr::Path]>,
    hold: impl Fn(&'a Item) -> std::borrow::Cow<'a, Item>,
) -> Result<Collected<'a>, ApiError> {
    let mut out = Vec::new();
    let mut scanned = 0usize;
    let mut bytes = 0usize;
    let mut last: Option<&Item> = None;
    let mut more = false;
    for item in items {
        if let Some(c) = key_cond
            && !expr::evaluate(c, item)?
        {
            continue;
        }
        if scanned >= limit || bytes >= super::api::SCAN_PAGE_BYTES {
            more = true;
            break;
        }
        scanned += 1;
        bytes += item_size(item);
        last = Some(item);
        let held = hold(item);
        if let Some(f) = filter
            && !expr::evaluate(f, &held)?
        {
            continue;
        }
        out.push(match projection {
            Some(paths) => expr::project(&held, paths),
            None => held.into_owned(),
        });
    }
    let more = more || scanned >= limit;
    Ok(Collected {
        items: out,
        scanned,
        last_if_more: if more { last } else { None },
    })
}

/// The reply of a page: `Count`, `ScannedCount`, `Items` (unless `count_only`) and
/// `LastEvaluatedKey` (the key `last_key` gives of the page's last item, if more remain).
pub(super) fn page_reply(
    page: Collected<'_>,
    count_only: bool,
    last_key: impl Fn(&Item) -> Item,
) -> Value {
    let mut resp = serde_json::json!({ "Count": page.items.len(), "ScannedCount": page.scanned });
    if !count_only {
        resp["Items"] = Value::from(page.items.iter().map(item_to_json).collect::<Vec<_>>());
    }
    if let Some(last) = page.last_if_more {
        resp["LastEvaluatedKey"] = item_to_json(&last_key(last));
    }
    resp
}
