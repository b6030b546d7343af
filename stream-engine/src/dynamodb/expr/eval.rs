//! Evaluating conditions against an item.

use super::*;

/// The value at `path` in `item`.
pub fn resolve<'a>(item: &'a Item, path: &Path) -> Option<&'a AttrValue> {
    let (first, rest) = path.split_first()?;
    let PathElem::Attr(name) = first else {
        return None;
    };
    let mut cur = item.get(name)?;
    for e in rest {
        cur = match (e, cur) {
            (PathElem::Attr(a), AttrValue::M(m)) => m.get(a)?,
            (PathElem::Index(i), AttrValue::L(l)) => l.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

pub(super) fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// Equality as DynamoDB defines it (sets ignore order).
pub fn values_equal(a: &AttrValue, b: &AttrValue) -> bool {
    match (a, b) {
        (AttrValue::Ss(x), AttrValue::Ss(y)) => sorted(x) == sorted(y),
        (AttrValue::Ns(x), AttrValue::Ns(y)) => sorted(x) == sorted(y),
        (AttrValue::Bs(x), AttrValue::Bs(y)) => sorted(x) == sorted(y),
        (AttrValue::M(x), AttrValue::M(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| values_equal(v, w)))
        }
        (AttrValue::L(x), AttrValue::L(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| values_equal(v, w))
        }
        _ => a == b,
    }
}

pub(super) fn order(a: &AttrValue, b: &AttrValue) -> Option<Ordering> {
    match (a, b) {
        (AttrValue::N(x), AttrValue::N(y)) => Some(x.cmp(y)),
        (AttrValue::S(x), AttrValue::S(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (AttrValue::B(x), AttrValue::B(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

pub(super) fn size_of(v: &AttrValue) -> Option<usize> {
    Some(match v {
        AttrValue::S(s) => s.chars().count(),
        AttrValue::B(b) => b.len(),
        AttrValue::Ss(s) => s.len(),
        AttrValue::Ns(s) => s.len(),
        AttrValue::Bs(s) => s.len(),
        AttrValue::M(m) => m.len(),
        AttrValue::L(l) => l.len(),
        _ => return None,
    })
}

pub(super) fn operand_value(item: &Item, op: &Operand) -> Option<AttrValue> {
    match op {
        Operand::Path(p) => resolve(item, p).cloned(),
        Operand::Value(v) => Some(v.clone()),
        Operand::Size(p) => resolve(item, p)
            .and_then(size_of)
            .map(|n| AttrValue::N(Decimal::from_int(n as i128))),
    }
}

pub(super) fn operand_error(func: &str, v: &AttrValue) -> ApiError {
    ApiError::validation(format!(
        "Invalid ConditionExpression: Incorrect operand type for operator or function; operator or function: {func}, operand type: {}",
        v.type_name()
    ))
}

/// Evaluates a condition against an item (an absent item is an empty one).
pub fn evaluate(cond: &Cond, item: &Item) -> Result<bool, ApiError> {
    Ok(match cond {
        Cond::Cmp(a, op, b) => {
            let (a, b) = (operand_value(item, a), operand_value(item, b));
            match op {
                CmpOp::Eq => matches!((&a, &b), (Some(x), Some(y)) if values_equal(x, y)),
                CmpOp::Ne => !matches!((&a, &b), (Some(x), Some(y)) if values_equal(x, y)),
                _ => match (&a, &b) {
                    (Some(x), Some(y)) => match order(x, y) {
                        Some(o) => match op {
                            CmpOp::Lt => o == Ordering::Less,
                            CmpOp::Le => o != Ordering::Greater,
                            CmpOp::Gt => o == Ordering::Greater,
                            _ => o != Ordering::Less,
                        },
                        None => false,
                    },
                    _ => false,
                },
            }
        }
        Cond::Between(x, lo, hi) => {
            match (
                operand_value(item, x),
                operand_value(item, lo),
                operand_value(item, hi),
            ) {
                (Some(x), Some(lo), Some(hi)) => {
                    if let Some(Ordering::Greater) = order(&lo, &hi) {
                        return Err(ApiError::validation(
                            "Invalid ConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound",
                        ));
                    }
                    matches!(order(&lo, &x), Some(Ordering::Less | Ordering::Equal))
                        && matches!(order(&x, &hi), Some(Ordering::Less | Ordering::Equal))
                }
                _ => false,
            }
        }
        Cond::In(x, list) => match operand_value(item, x) {
            Some(x) => list
                .iter()
                .filter_map(|o| operand_value(item, o))
                .any(|v| values_equal(&x, &v)),
            None => false,
        },
        Cond::Exists(p) => resolve(item, p).is_some(),
        Cond::NotExists(p) => resolve(item, p).is_none(),
        Cond::Type(p, t) => {
            let t = operand_value(item, t);
            let Some(AttrValue::S(t)) = t else {
                return Err(ApiError::validation(
                    "Invalid ConditionExpression: attribute_type requires a string operand",
                ));
            };
            if !["S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"].contains(&t.as_str()) {
                return Err(ApiError::validation(format!(
                    "Invalid ConditionExpression: Invalid attribute type name found; type: {t}, valid types: {{B,NULL,SS,BOOL,L,BS,N,NS,S,M}}"
                )));
            }
            resolve(item, p).is_some_and(|v| v.type_name() == t)
        }
        Cond::BeginsWith(p, arg) => {
            let arg = operand_value(item, arg);
            match (resolve(item, p), arg) {
                (
                    _,
                    Some(
                        v @ (AttrValue::N(_)
                        | AttrValue::Ss(_)
                        | AttrValue::Ns(_)
                        | AttrValue::Bs(_)
                        | AttrValue::M(_)
                        | AttrValue::L(_)
                        | AttrValue::Null
                        | AttrValue::Bool(_)),
                    ),
                ) => {
                    return Err(operand_error("begins_with", &v));
                }
                (Some(AttrValue::S(s)), Some(AttrValue::S(prefix))) => {
                    s.starts_with(prefix.as_str())
                }
                (Some(AttrValue::B(b)), Some(AttrValue::B(prefix))) => b.starts_with(&prefix),
                _ => false,
            }
        }
        Cond::Contains(p, arg) => {
            let Some(arg) = operand_value(item, arg) else {
                return Ok(false);
            };
            match (resolve(item, p), &arg) {
                (Some(AttrValue::S(s)), AttrValue::S(sub)) => s.contains(sub.as_str()),
                (Some(AttrValue::B(b)), AttrValue::B(sub)) => {
                    sub.is_empty() || b.windows(sub.len()).any(|w| w == &sub[..])
                }
                (Some(AttrValue::Ss(set)), AttrValue::S(s)) => set.contains(s),
                (Some(AttrValue::Ns(set)), AttrValue::N(n)) => set.contains(n),
                (Some(AttrValue::Bs(set)), AttrValue::B(b)) => set.contains(b),
                (Some(AttrValue::L(list)), v) => list.iter().any(|e| values_equal(e, v)),
                _ => false,
            }
        }
        Cond::And(a, b) => evaluate(a, item)? && evaluate(b, item)?,
        Cond::Or(a, b) => evaluate(a, item)? || evaluate(b, item)?,
        Cond::Not(a) => !evaluate(a, item)?,
    })
}

pub(super) fn missing_operand() -> ApiError {
    ApiError::validation(
        "The provided expression refers to an attribute that does not exist in the item",
    )
}

pub(super) fn wrong_type() -> ApiError {
    ApiError::validation("An operand in the update expression has an incorrect data type")
}
