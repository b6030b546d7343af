//! Applying updates and projections to an item.

use super::*;

pub(super) fn set_operand_value(item: &Item, op: &SetOperand) -> Result<AttrValue, ApiError> {
    match op {
        SetOperand::Path(p) => resolve(item, p).cloned().ok_or_else(missing_operand),
        SetOperand::Value(v) => Ok(v.clone()),
        SetOperand::IfNotExists(p, fallback) => match resolve(item, p) {
            Some(v) => Ok(v.clone()),
            None => set_operand_value(item, fallback),
        },
        SetOperand::ListAppend(a, b) => {
            match (set_operand_value(item, a)?, set_operand_value(item, b)?) {
                (AttrValue::L(mut x), AttrValue::L(y)) => {
                    x.extend(y);
                    Ok(AttrValue::L(x))
                }
                _ => Err(wrong_type()),
            }
        }
    }
}

pub(super) fn arithmetic(a: AttrValue, b: AttrValue, minus: bool) -> Result<AttrValue, ApiError> {
    match (a, b) {
        (AttrValue::N(x), AttrValue::N(y)) => {
            let y = if minus { y.negated() } else { y };
            x.checked_add(y).map(AttrValue::N).ok_or_else(|| {
                ApiError::validation(
                    "Number overflow. Attempting to store a number with magnitude larger than supported range",
                )
            })
        }
        _ => Err(wrong_type()),
    }
}

pub(super) fn invalid_path() -> ApiError {
    ApiError::validation(
        "The document path provided in the update expression is invalid for update",
    )
}

pub(super) fn container<'a>(
    item: &'a mut Item,
    parent: &[PathElem],
) -> Result<Option<&'a mut AttrValue>, ApiError> {
    let Some((first, rest)) = parent.split_first() else {
        return Ok(None);
    };
    let PathElem::Attr(name) = first else {
        return Err(invalid_path());
    };
    let mut cur = item.get_mut(name).ok_or_else(invalid_path)?;
    for e in rest {
        cur = match (e, cur) {
            (PathElem::Attr(a), AttrValue::M(m)) => m.get_mut(a).ok_or_else(invalid_path)?,
            (PathElem::Index(i), AttrValue::L(l)) => l.get_mut(*i).ok_or_else(invalid_path)?,
            _ => return Err(invalid_path()),
        };
    }
    Ok(Some(cur))
}

pub(super) fn set_path(item: &mut Item, path: &Path, value: AttrValue) -> Result<(), ApiError> {
    let Some((last, parent)) = path.split_last() else {
        return Err(invalid_path());
    };
    match (container(item, parent)?, last) {
        (None, PathElem::Attr(name)) => {
            item.insert(name.clone(), value);
        }
        (Some(AttrValue::M(m)), PathElem::Attr(name)) => {
            m.insert(name.clone(), value);
        }
        (Some(AttrValue::L(l)), PathElem::Index(i)) => {
            if *i < l.len() {
                l[*i] = value;
            } else {
                l.push(value);
            }
        }
        _ => return Err(invalid_path()),
    }
    Ok(())
}

pub(super) fn remove_path(item: &mut Item, path: &Path) -> Result<(), ApiError> {
    let Some((last, parent)) = path.split_last() else {
        return Err(invalid_path());
    };
    let parent = match container(item, parent) {
        Ok(p) => p,
        Err(_) => return Ok(()), // removing below a missing parent is a no-op
    };
    match (parent, last) {
        (None, PathElem::Attr(name)) => {
            item.remove(name);
        }
        (Some(AttrValue::M(m)), PathElem::Attr(name)) => {
            m.remove(name);
        }
        (Some(AttrValue::L(l)), PathElem::Index(i)) => {
            if *i < l.len() {
                l.remove(*i);
            }
        }
        _ => return Err(invalid_path()),
    }
    Ok(())
}

pub(super) fn union<T: PartialEq + Clone>(mut a: Vec<T>, b: &[T]) -> Vec<T> {
    for x in b {
        if !a.contains(x) {
            a.push(x.clone());
        }
    }
    a
}

pub(super) fn minus<T: PartialEq + Clone>(a: &[T], b: &[T]) -> Vec<T> {
    a.iter().filter(|x| !b.contains(x)).cloned().collect()
}

/// Applies an update to `item` (`key` names the key attributes, which cannot change).
/// Returns the top-level attributes it touched.
pub fn apply_update(
    item: &mut Item,
    update: &Update,
    key: &[&str],
) -> Result<Vec<String>, ApiError> {
    let all_paths = update
        .set
        .iter()
        .map(|(p, _)| p)
        .chain(&update.remove)
        .chain(update.add.iter().map(|(p, _)| p))
        .chain(update.delete.iter().map(|(p, _)| p));
    let mut touched = Vec::new();
    for p in all_paths {
        if let Some(PathElem::Attr(top)) = p.first() {
            if key.contains(&top.as_str()) {
                return Err(ApiError::validation(format!(
                    "One or more parameter values were invalid: Cannot update attribute {top}. This attribute is part of the key"
                )));
            }
            if !touched.contains(top) {
                touched.push(top.clone());
            }
        }
    }
    // Every SET operand reads the item as it was before the update.
    let old = item.clone();
    let mut sets = Vec::with_capacity(update.set.len());
    for (path, value) in &update.set {
        let v = match value {
            SetValue::Operand(o) => set_operand_value(&old, o)?,
            SetValue::Plus(a, b) => arithmetic(
                set_operand_value(&old, a)?,
                set_operand_value(&old, b)?,
                false,
            )?,
            SetValue::Minus(a, b) => arithmetic(
                set_operand_value(&old, a)?,
                set_operand_value(&old, b)?,
                true,
            )?,
        };
        sets.push((path, v));
    }
    for (path, v) in sets {
        set_path(item, path, v)?;
    }
    // List indexes refer to the list as it was before the update: remove the highest index
    // of a list first, so `REMOVE l[0], l[1]` removes the first two elements.
    let mut removes: Vec<&Path> = update.remove.iter().collect();
    removes.sort_by(|a, b| b.cmp(a));
    for path in removes {
        remove_path(item, path)?;
    }
    for (path, v) in &update.add {
        let new = match (resolve(item, path), v) {
            (None, AttrValue::N(_) | AttrValue::Ss(_) | AttrValue::Ns(_) | AttrValue::Bs(_)) => {
                v.clone()
            }
            (Some(AttrValue::N(x)), AttrValue::N(y)) => {
                arithmetic(AttrValue::N(*x), AttrValue::N(*y), false)?
            }
            (Some(AttrValue::Ss(x)), AttrValue::Ss(y)) => AttrValue::Ss(union(x.clone(), y)),
            (Some(AttrValue::Ns(x)), AttrValue::Ns(y)) => AttrValue::Ns(union(x.clone(), y)),
            (Some(AttrValue::Bs(x)), AttrValue::Bs(y)) => AttrValue::Bs(union(x.clone(), y)),
            (_, v) => {
                return Err(ApiError::validation(format!(
                    "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: ADD, operand type: {}",
                    v.type_name()
                )));
            }
        };
        set_path(item, path, new)?;
    }
    for (path, v) in &update.delete {
        let new = match (resolve(item, path), v) {
            (None, AttrValue::Ss(_) | AttrValue::Ns(_) | AttrValue::Bs(_)) => continue,
            (Some(AttrValue::Ss(x)), AttrValue::Ss(y)) => AttrValue::Ss(minus(x, y)),
            (Some(AttrValue::Ns(x)), AttrValue::Ns(y)) => AttrValue::Ns(minus(x, y)),
            (Some(AttrValue::Bs(x)), AttrValue::Bs(y)) => AttrValue::Bs(minus(x, y)),
            (_, v) => {
                return Err(ApiError::validation(format!(
                    "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: DELETE, operand type: {}",
                    v.type_name()
                )));
            }
        };
        let empty = matches!(&new, AttrValue::Ss(s) if s.is_empty())
            || matches!(&new, AttrValue::Ns(s) if s.is_empty())
            || matches!(&new, AttrValue::Bs(s) if s.is_empty());
        if empty {
            remove_path(item, path)?;
        } else {
            set_path(item, path, new)?;
        }
    }
    Ok(touched)
}

/// The parts of `item` named by `paths`.
pub fn project(item: &Item, paths: &[Path]) -> Item {
    let mut out = Item::new();
    for path in paths {
        let Some(value) = resolve(item, path) else {
            continue;
        };
        insert_projected(&mut out, path, value.clone());
    }
    out
}

pub(super) fn insert_projected(out: &mut Item, path: &Path, value: AttrValue) {
    let Some((PathElem::Attr(first), rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        out.insert(first.clone(), value);
        return;
    }
    let mut cur = out.entry(first.clone()).or_insert_with(|| match rest[0] {
        PathElem::Attr(_) => AttrValue::M(Item::new()),
        PathElem::Index(_) => AttrValue::L(Vec::new()),
    });
    for (i, e) in rest.iter().enumerate() {
        let last = i == rest.len() - 1;
        let fresh = || match rest.get(i + 1) {
            Some(PathElem::Index(_)) => AttrValue::L(Vec::new()),
            _ => AttrValue::M(Item::new()),
        };
        cur = match (e, cur) {
            (PathElem::Attr(a), AttrValue::M(m)) => {
                if last {
                    m.insert(a.clone(), value);
                    return;
                }
                m.entry(a.clone()).or_insert_with(fresh)
            }
            (PathElem::Index(_), AttrValue::L(l)) => {
                if last {
                    l.push(value);
                    return;
                }
                l.push(fresh());
                let n = l.len() - 1;
                &mut l[n]
            }
            _ => return,
        };
    }
}
