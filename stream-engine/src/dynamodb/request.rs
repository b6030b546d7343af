//! Reading request members: names, values, conditions, return values, and the errors
//! DynamoDB gives for them.

use super::expr::{self, Context, Path};
use super::requests::{Attrs, Exprs};
use super::value::{AttrValue, Item, item_from_map, item_size, item_to_json};
use crate::error::ApiError;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Most data one `Scan` page reads (1 MB).
pub const SCAN_PAGE_BYTES: usize = 1024 * 1024;

/// Largest item, in bytes (400 KB).
pub const MAX_ITEM_SIZE: usize = 400 * 1024;

/// A required string member, named `member` in DynamoDB's message when it is missing.
pub(super) fn required<'a>(value: &'a Option<String>, member: &str) -> Result<&'a str, ApiError> {
    value.as_deref().ok_or_else(|| null_member(member))
}

/// DynamoDB's answer to a required member left out (`member` as its messages spell it).
pub(super) fn null_member(member: &str) -> ApiError {
    ApiError::validation(format!(
        "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
    ))
}

pub(super) fn table_name(name: &Option<String>) -> Result<&str, ApiError> {
    let name = required(name, "tableName")?;
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

pub(super) fn context(e: &Exprs) -> Result<Context, ApiError> {
    let names: HashMap<String, String> = e.expression_attribute_names.clone().unwrap_or_default();
    let values: HashMap<String, AttrValue> = match &e.expression_attribute_values {
        None => HashMap::new(),
        Some(m) => item_from_map(m)?.into_iter().collect(),
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

pub(super) fn return_values(rv: &Option<String>, allowed: &[&str]) -> Result<String, ApiError> {
    let rv = rv.as_deref().unwrap_or("NONE");
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

pub(super) fn on_failure_all_old(value: &Option<String>) -> Result<bool, ApiError> {
    match value.as_deref() {
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
pub(super) fn required_item(value: &Option<Attrs>, member: &str) -> Result<Item, ApiError> {
    item_from_map(value.as_ref().ok_or_else(|| null_member(member))?)
}

/// The request's `ConditionExpression`, parsed against its names and values.
pub(super) fn condition(e: &Exprs, ctx: &mut Context) -> Result<Option<expr::Cond>, ApiError> {
    e.condition_expression
        .as_deref()
        .map(|c| expr::parse_condition("Condition", c, ctx))
        .transpose()
}

/// The request's `ProjectionExpression`, parsed against its names.
pub(super) fn projection(e: &Exprs, ctx: &mut Context) -> Result<Option<Vec<Path>>, ApiError> {
    e.projection_expression
        .as_deref()
        .map(|p| expr::parse_projection(p, ctx))
        .transpose()
}

/// The request's `FilterExpression`, parsed against its names and values.
pub(super) fn filter(e: &Exprs, ctx: &mut Context) -> Result<Option<expr::Cond>, ApiError> {
    e.filter_expression
        .as_deref()
        .map(|f| expr::parse_condition("Filter", f, ctx))
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
        if scanned >= limit || bytes >= SCAN_PAGE_BYTES {
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
