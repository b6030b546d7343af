//! `Query`: the items of one hash key, in range-key order (or reversed), narrowed by a key
//! condition on the range key, then filtered and projected; and `Scan`, of a table or an
//! index, with the same page collector.

use super::api::DynamoCore;
use super::expr::{self, CmpOp, Cond, Operand, Path, PathElem};

use super::legacy;
use super::request::*;
use super::requests::{Attrs, ReadReq};
use super::table::{Index, Key, KeyAttr, KeyPart, Table};
use super::value::{AttrValue, Item, item_from_map};
use crate::error::ApiError;
use serde_json::Value;
use std::hash::{Hash, Hasher};
use std::ops::Bound;

fn invalid_key_condition(why: &str) -> ApiError {
    ApiError::validation(format!("Query condition missed key schema element: {why}"))
}

fn attr_of(op: &Operand) -> Option<&str> {
    match op {
        Operand::Path(p) => match p.as_slice() {
            [PathElem::Attr(a)] => Some(a),
            _ => None,
        },
        _ => None,
    }
}

fn value_of(op: &Operand) -> Option<&AttrValue> {
    match op {
        Operand::Value(v) => Some(v),
        _ => None,
    }
}

/// The hash key value a key condition pins, after checking the condition's shape: `hash =
/// :v`, optionally `AND` one condition on the range key (`=`, `<`, `<=`, `>`, `>=`,
/// `BETWEEN`, `begins_with`).
fn hash_value(
    t: &Table,
    hash_attr: &KeyAttr,
    range_attr: Option<&KeyAttr>,
    cond: &Cond,
) -> Result<KeyPart, ApiError> {
    let hash_name = hash_attr.name.as_str();
    let range_name = range_attr.map(|r| r.name.as_str());
    let is_hash_eq = |c: &Cond| -> Option<AttrValue> {
        if let Cond::Cmp(a, CmpOp::Eq, b) = c {
            if attr_of(a) == Some(hash_name) {
                return value_of(b).cloned();
            }
            if attr_of(b) == Some(hash_name) {
                return value_of(a).cloned();
            }
        }
        None
    };
    let is_range_cond = |c: &Cond| -> bool {
        let Some(range) = range_name else {
            return false;
        };
        match c {
            Cond::Cmp(a, op, b) => {
                *op != CmpOp::Ne
                    && ((attr_of(a) == Some(range) && value_of(b).is_some())
                        || (attr_of(b) == Some(range) && value_of(a).is_some()))
            }
            Cond::Between(a, lo, hi) => {
                attr_of(a) == Some(range) && value_of(lo).is_some() && value_of(hi).is_some()
            }
            Cond::BeginsWith(p, v) => {
                matches!(p.as_slice(), [PathElem::Attr(a)] if a == range) && value_of(v).is_some()
            }
            _ => false,
        }
    };
    let hash = match cond {
        Cond::And(a, b) => match (is_hash_eq(a), is_hash_eq(b)) {
            (Some(h), _) if is_range_cond(b) => h,
            (_, Some(h)) if is_range_cond(a) => h,
            _ => {
                return Err(ApiError::validation(
                    "Invalid KeyConditionExpression: the key condition must be the hash key's equality, and at most one condition on the range key",
                ));
            }
        },
        c => is_hash_eq(c).ok_or_else(|| invalid_key_condition(hash_name))?,
    };
    t.key_part(hash_attr, Some(&hash), false)
}

/// A `Limit` (at least 1; none is no limit).
pub(super) fn limit_of(limit: Option<i64>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(usize::MAX),
        Some(n) if n >= 1 => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        Some(_) => Err(ApiError::validation(
            "1 validation error detected: Value at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1",
        )),
    }
}

impl DynamoCore {
    pub(super) fn query(&self, v: ReadReq) -> Result<Value, ApiError> {
        let legacy = legacy::uses_legacy(
            &v.legacy,
            &v.exprs,
            &[
                "KeyConditions",
                "QueryFilter",
                "ConditionalOperator",
                "AttributesToGet",
            ],
        )?;
        let t = self.active_named(table_name(&v.table_name)?)?;
        let index = match v.index_name.as_deref() {
            None => None,
            Some(name) => {
                let index = t.readable_index(name, self.now_ms())?;
                if v.consistent_read == Some(true) {
                    return Err(ApiError::validation(
                        "Consistent reads are not supported on global secondary indexes",
                    ));
                }
                Some(index)
            }
        };
        let limit = limit_of(v.limit)?;
        let forward = v.scan_index_forward.unwrap_or(true);
        let count_only = match v.select.as_deref() {
            None | Some("ALL_ATTRIBUTES") | Some("SPECIFIC_ATTRIBUTES") => false,
            Some("ALL_PROJECTED_ATTRIBUTES") if index.is_some() => false,
            Some("ALL_PROJECTED_ATTRIBUTES") => {
                return Err(ApiError::validation(
                    "ALL_PROJECTED_ATTRIBUTES can be used only when Querying using an IndexName",
                ));
            }
            Some("COUNT") => true,
            Some(other) => {
                return Err(ApiError::validation(format!(
                    "1 validation error detected: Value '{other}' at 'select' failed to satisfy constraint: Member must satisfy enum value set: [SPECIFIC_ATTRIBUTES, COUNT, ALL_ATTRIBUTES, ALL_PROJECTED_ATTRIBUTES]"
                )));
            }
        };
        let mut ctx = context(&v.exprs)?;
        let (key_cond, filter, projection): (Cond, Option<Cond>, Option<Vec<Path>>) = if legacy {
            // Key conditions are always joined with AND.
            let key = legacy::filter(v.legacy.key_conditions.as_ref(), None)?.ok_or_else(|| {
                ApiError::validation("Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.")
            })?;
            (
                key,
                legacy::filter(
                    v.legacy.query_filter.as_ref(),
                    v.legacy.conditional_operator.as_deref(),
                )?,
                legacy::attributes_to_get(&v.legacy)?,
            )
        } else {
            let key = v.exprs.key_condition_expression.as_deref().ok_or_else(|| {
                ApiError::validation("Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.")
            })?;
            (
                expr::parse_condition("KeyCondition", key, &mut ctx)?,
                filter(&v.exprs, &mut ctx)?,
                projection(&v.exprs, &mut ctx)?,
            )
        };
        ctx.check_all_used()?;
        if let Some(index) = &index {
            reject_key_filter(filter.as_ref(), &[&index.hash], [&index.range, &None])?;
            let page = Page {
                limit,
                forward,
                key_cond: Some(&key_cond),
                filter: filter.as_ref(),
                projection: projection.as_deref(),
                count_only,
            };
            return query_index(&t, index, v.exclusive_start_key.as_ref(), page);
        }
        reject_key_filter(filter.as_ref(), &[&t.hash], [&t.range, &None])?;
        let hash = hash_value(&t, &t.hash, t.range.as_ref(), &key_cond)?;
        let start: Option<Key> = match &v.exclusive_start_key {
            None => None,
            Some(k) => {
                let key = t.key_from_key(&item_from_map(k)?)?;
                if key.0 != hash {
                    return Err(ApiError::validation(
                        "The provided starting key does not match the range key predicate",
                    ));
                }
                Some(key)
            }
        };
        let items = t.items.lock();
        let lower = (hash.clone(), None);
        let same_hash = |k: &&Key| k.0 == hash;
        let range: Box<dyn Iterator<Item = (&Key, &Item)>> = match (&start, forward) {
            (None, true) => Box::new(items.range(lower..).take_while(|(k, _)| same_hash(k))),
            (Some(s), true) => Box::new(
                items
                    .range((Bound::Excluded(s.clone()), Bound::Unbounded))
                    .take_while(|(k, _)| same_hash(k)),
            ),
            (None, false) => Box::new(
                items
                    .range(lower..)
                    .take_while(|(k, _)| same_hash(k))
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev(),
            ),
            (Some(s), false) => Box::new(
                items
                    .range(lower..(s.clone()))
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev(),
            ),
        };
        let page = collect_page(
            range.map(|(_, item)| item),
            limit,
            Some(&key_cond),
            filter.as_ref(),
            projection.as_deref(),
            std::borrow::Cow::Borrowed,
        )?;
        Ok(page_reply(page, count_only, |last| t.key_item(last)))
    }

    pub(super) fn scan(&self, v: ReadReq) -> Result<Value, ApiError> {
        let legacy = legacy::uses_legacy(
            &v.legacy,
            &v.exprs,
            &["ScanFilter", "ConditionalOperator", "AttributesToGet"],
        )?;
        let t = self.active(&v.table_name)?;
        let limit = limit_of(v.limit)?;
        let segment = match (v.segment, v.total_segments) {
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
        let count_only = match v.select.as_deref() {
            None | Some("ALL_ATTRIBUTES") | Some("SPECIFIC_ATTRIBUTES") => false,
            Some("COUNT") => true,
            Some(other) => {
                return Err(ApiError::validation(format!(
                    "1 validation error detected: Value '{other}' at 'select' failed to satisfy constraint: Member must satisfy enum value set: [SPECIFIC_ATTRIBUTES, COUNT, ALL_ATTRIBUTES]"
                )));
            }
        };
        let mut ctx = context(&v.exprs)?;
        let (filter, projection): (Option<expr::Cond>, Option<Vec<Path>>) = if legacy {
            (
                legacy::filter(
                    v.legacy.scan_filter.as_ref(),
                    v.legacy.conditional_operator.as_deref(),
                )?,
                legacy::attributes_to_get(&v.legacy)?,
            )
        } else {
            (filter(&v.exprs, &mut ctx)?, projection(&v.exprs, &mut ctx)?)
        };
        ctx.check_all_used()?;
        if let Some(name) = v.index_name.as_deref() {
            let index = t.readable_index(name, self.now_ms())?;
            if segment.is_some() {
                return Err(ApiError::validation(
                    "Parallel scans of an index are not supported by this engine",
                ));
            }
            let page = Page {
                limit,
                forward: true,
                key_cond: None,
                filter: filter.as_ref(),
                projection: projection.as_deref(),
                count_only,
            };
            return query_index(&t, &index, v.exclusive_start_key.as_ref(), page);
        }
        let start = match &v.exclusive_start_key {
            None => None,
            Some(k) => Some(t.key_from_key(&item_from_map(k)?)?),
        };
        let items = t.items.lock();
        let range = match &start {
            Some(k) => items.range((Bound::Excluded(k.clone()), Bound::Unbounded)),
            None => items.range::<Key, _>(..),
        };
        let in_segment = |key: &Key| match segment {
            Some((s, n)) => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                key.hash(&mut h);
                h.finish() % n == s
            }
            None => true,
        };
        let page = collect_page(
            range
                .filter(|(key, _)| in_segment(key))
                .map(|(_, item)| item),
            limit,
            None,
            filter.as_ref(),
            projection.as_deref(),
            std::borrow::Cow::Borrowed,
        )?;
        Ok(page_reply(page, count_only, |last| t.key_item(last)))
    }
}

/// How one page of a query is cut and shaped.
pub(super) struct Page<'a> {
    pub(super) limit: usize,
    pub(super) forward: bool,
    /// `None` for a scan of the index.
    pub(super) key_cond: Option<&'a Cond>,
    pub(super) filter: Option<&'a Cond>,
    pub(super) projection: Option<&'a [Path]>,
    pub(super) count_only: bool,
}

/// A query on a global secondary index: the items whose index hash key matches, ordered by
/// the index range key (then the table key), projected as the index projects them.
pub(super) fn query_index(
    t: &Table,
    index: &Index,
    exclusive_start_key: Option<&Attrs>,
    page: Page<'_>,
) -> Result<Value, ApiError> {
    let hash = page
        .key_cond
        .map(|c| hash_value(t, &index.hash, index.range.as_ref(), c))
        .transpose()?;
    let items = t.items.lock();
    type Order = (KeyPart, Option<KeyPart>, Key);
    let mut found: Vec<(Order, &Item)> = items
        .iter()
        .filter_map(|(key, item)| {
            let (h, r) = index.key_of(t, item)?;
            hash.as_ref()
                .is_none_or(|want| *want == h)
                .then(|| ((h, r, key.clone()), item))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    if !page.forward {
        found.reverse();
    }
    let start: Option<Order> = match exclusive_start_key {
        None => None,
        Some(k) => {
            let item = item_from_map(k)?;
            let key = t.key_from_key(&t.key_item(&item))?;
            let hash = t.key_part(&index.hash, item.get(&index.hash.name), false)?;
            let range = match &index.range {
                Some(r) => Some(t.key_part(r, item.get(&r.name), false)?),
                None => None,
            };
            Some((hash, range, key))
        }
    };
    // Resume after the start key's place in the order, even if that item is gone or moved.
    let skip = match &start {
        None => 0,
        Some(s) => found
            .iter()
            .position(|(o, _)| if page.forward { o > s } else { o < s })
            .unwrap_or(found.len()),
    };
    let page_out = collect_page(
        found.into_iter().skip(skip).map(|(_, item)| item),
        page.limit,
        page.key_cond,
        page.filter,
        page.projection,
        |item| std::borrow::Cow::Owned(index.project(t, item)),
    )?;
    Ok(page_reply(page_out, page.count_only, |last| {
        let mut key = t.key_item(last);
        for attr in std::iter::once(&index.hash).chain(index.range.as_ref()) {
            if let Some(v) = last.get(&attr.name) {
                key.insert(attr.name.clone(), v.clone());
            }
        }
        key
    }))
}

/// The top-level attribute names a condition reads.
fn cond_attrs<'a>(c: &'a Cond, out: &mut Vec<&'a str>) {
    let mut path = |p: &'a Path| {
        if let Some(PathElem::Attr(a)) = p.first() {
            out.push(a.as_str());
        }
    };
    let operand = |o: &'a Operand, path: &mut dyn FnMut(&'a Path)| match o {
        Operand::Path(p) | Operand::Size(p) => path(p),
        Operand::Value(_) => {}
    };
    match c {
        Cond::Cmp(a, _, b) => {
            operand(a, &mut path);
            operand(b, &mut path);
        }
        Cond::Between(a, b, c) => {
            operand(a, &mut path);
            operand(b, &mut path);
            operand(c, &mut path);
        }
        Cond::In(a, list) => {
            operand(a, &mut path);
            for o in list {
                operand(o, &mut path);
            }
        }
        Cond::Exists(p) | Cond::NotExists(p) => path(p),
        Cond::Type(p, o) | Cond::BeginsWith(p, o) | Cond::Contains(p, o) => {
            path(p);
            operand(o, &mut path);
        }
        Cond::And(a, b) | Cond::Or(a, b) => {
            cond_attrs(a, out);
            cond_attrs(b, out);
        }
        Cond::Not(a) => cond_attrs(a, out),
    }
}

/// A query's filter may not read the key attributes it queries by, as on DynamoDB.
fn reject_key_filter(
    filter: Option<&Cond>,
    hashes: &[&KeyAttr],
    ranges: [&Option<KeyAttr>; 2],
) -> Result<(), ApiError> {
    let Some(filter) = filter else {
        return Ok(());
    };
    let mut read = Vec::new();
    cond_attrs(filter, &mut read);
    let keys = hashes.iter().map(|k| k.name.as_str()).chain(
        ranges
            .iter()
            .filter_map(|r| r.as_ref().map(|r| r.name.as_str())),
    );
    for key in keys {
        if read.contains(&key) {
            return Err(ApiError::validation(format!(
                "Filter Expression can only contain non-primary key attributes: Primary key attribute: {key}"
            )));
        }
    }
    Ok(())
}
