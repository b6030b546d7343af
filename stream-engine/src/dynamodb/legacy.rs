//! DynamoDB's legacy (pre-expression) parameters, which every released KCL still writes its
//! lease table with: `Expected` + `ConditionalOperator` on `PutItem`/`UpdateItem`/
//! `DeleteItem`, `AttributeUpdates` on `UpdateItem`, `ScanFilter`/`QueryFilter`, and
//! `AttributesToGet`. Each is translated into the same condition, update and projection
//! structures the expressions parse into, so both forms share one evaluator.

use super::expr::{CmpOp, Cond, Operand, Path, PathElem, SetOperand, SetValue, Update};
use super::requests::{Exprs, Legacy, LegacyCondition};
use super::value::AttrValue;
use crate::error::ApiError;
use serde_json::Value;
use std::collections::BTreeMap;

/// Whether the request uses legacy parameters; fails when it mixes them with expression
/// parameters, or names legacy parameters this operation does not take, as DynamoDB does.
pub(super) fn uses_legacy(
    legacy: &Legacy,
    exprs: &Exprs,
    allowed: &[&str],
) -> Result<bool, ApiError> {
    let present = legacy.present();
    if present.is_empty() {
        return Ok(false);
    }
    let expressions = exprs.present();
    if !expressions.is_empty() {
        return Err(ApiError::validation(format!(
            "Can not use both expression and non-expression parameters in the same request: Non-expression parameters: {{{}}} Expression parameters: {{{}}}",
            present.join(", "),
            expressions.join(", ")
        )));
    }
    if let Some(bad) = present.iter().find(|l| !allowed.contains(l)) {
        return Err(ApiError::validation(format!(
            "The parameter {bad} is not supported by this operation"
        )));
    }
    for (attrs, set) in [
        (
            "ExpressionAttributeNames",
            exprs.expression_attribute_names.is_some(),
        ),
        (
            "ExpressionAttributeValues",
            exprs.expression_attribute_values.is_some(),
        ),
    ] {
        if set {
            return Err(ApiError::validation(format!(
                "{attrs} can only be specified when using expressions"
            )));
        }
    }
    Ok(true)
}

fn attr(name: &str) -> Path {
    vec![PathElem::Attr(name.to_owned())]
}

fn value_list(list: Option<&Vec<Value>>) -> Result<Vec<AttrValue>, ApiError> {
    list.map_or(Ok(Vec::new()), |l| {
        l.iter().map(AttrValue::from_json).collect()
    })
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::validation(format!(
        "One or more parameter values were invalid: {}",
        message.into()
    ))
}

fn is_scalar(v: &AttrValue) -> bool {
    matches!(v, AttrValue::S(_) | AttrValue::N(_) | AttrValue::B(_))
}

/// One `ComparisonOperator` condition on attribute `name`.
fn comparison(name: &str, op: &str, values: Vec<AttrValue>) -> Result<Cond, ApiError> {
    let path = attr(name);
    let count = |n: usize| -> Result<(), ApiError> {
        if values.len() == n {
            Ok(())
        } else {
            Err(invalid(format!(
                "Invalid number of argument(s) for the {op} ComparisonOperator"
            )))
        }
    };
    let typed = |v: &AttrValue, ok: bool| -> Result<(), ApiError> {
        if ok {
            Ok(())
        } else {
            Err(invalid(format!(
                "ComparisonOperator {op} is not valid for {} AttributeValue type",
                v.type_name()
            )))
        }
    };
    let first = || Operand::Value(values[0].clone());
    let cmp = |c: CmpOp| Cond::Cmp(Operand::Path(path.clone()), c, first());
    Ok(match op {
        "EQ" | "NE" => {
            // Supported for every type, lists and maps included.
            count(1)?;
            cmp(if op == "EQ" { CmpOp::Eq } else { CmpOp::Ne })
        }
        "LT" | "LE" | "GT" | "GE" => {
            count(1)?;
            typed(&values[0], is_scalar(&values[0]))?;
            cmp(match op {
                "LT" => CmpOp::Lt,
                "LE" => CmpOp::Le,
                "GT" => CmpOp::Gt,
                _ => CmpOp::Ge,
            })
        }
        "NOT_NULL" => {
            count(0)?;
            Cond::Exists(path)
        }
        "NULL" => {
            count(0)?;
            Cond::NotExists(path)
        }
        "CONTAINS" | "NOT_CONTAINS" => {
            count(1)?;
            typed(&values[0], is_scalar(&values[0]))?;
            let c = Cond::Contains(path, first());
            if op == "CONTAINS" {
                c
            } else {
                Cond::Not(Box::new(c))
            }
        }
        "BEGINS_WITH" => {
            count(1)?;
            typed(
                &values[0],
                matches!(values[0], AttrValue::S(_) | AttrValue::B(_)),
            )?;
            Cond::BeginsWith(path, first())
        }
        "IN" => {
            if values.is_empty() {
                return Err(invalid(
                    "Invalid number of argument(s) for the IN ComparisonOperator",
                ));
            }
            for v in &values {
                typed(v, is_scalar(v))?;
            }
            Cond::In(
                Operand::Path(path),
                values.into_iter().map(Operand::Value).collect(),
            )
        }
        "BETWEEN" => {
            count(2)?;
            typed(&values[0], is_scalar(&values[0]))?;
            typed(&values[1], is_scalar(&values[1]))?;
            if values[0].type_name() != values[1].type_name() {
                return Err(invalid(
                    "AttributeValues inside AttributeValueList must be of same type",
                ));
            }
            Cond::Between(
                Operand::Path(path),
                Operand::Value(values[0].clone()),
                Operand::Value(values[1].clone()),
            )
        }
        other => {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{other}' at 'comparisonOperator' failed to satisfy constraint: Member must satisfy enum value set: [IN, NULL, BETWEEN, LT, NOT_CONTAINS, EQ, GT, NOT_NULL, NE, LE, BEGINS_WITH, GE, CONTAINS]"
            )));
        }
    })
}

fn combine(conds: Vec<Cond>, operator: Option<&str>) -> Result<Option<Cond>, ApiError> {
    let op = operator.unwrap_or("AND");
    if !["AND", "OR"].contains(&op) {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{op}' at 'conditionalOperator' failed to satisfy constraint: Member must satisfy enum value set: [AND, OR]"
        )));
    }
    let mut it = conds.into_iter();
    let Some(first) = it.next() else {
        return Ok(None);
    };
    Ok(Some(it.fold(first, |acc, c| {
        if op == "OR" {
            Cond::Or(Box::new(acc), Box::new(c))
        } else {
            Cond::And(Box::new(acc), Box::new(c))
        }
    })))
}

/// The condition of an `Expected` parameter (with `ConditionalOperator`), if any.
pub(super) fn expected(l: &Legacy) -> Result<Option<Cond>, ApiError> {
    let operator = l.conditional_operator.as_deref();
    let Some(expected) = &l.expected else {
        if operator.is_some() {
            return Err(invalid(
                "ConditionalOperator can only be used when Filter or Expected has two or more elements",
            ));
        }
        return Ok(None);
    };
    if operator.is_some() && expected.len() < 2 {
        return Err(invalid(
            "ConditionalOperator can only be used when Filter or Expected has two or more elements",
        ));
    }
    let mut conds = Vec::with_capacity(expected.len());
    for (name, spec) in expected {
        let value = spec
            .value
            .as_ref()
            .filter(|x| !x.is_null())
            .map(AttrValue::from_json)
            .transpose()?;
        let exists = spec.exists;
        if let Some(op) = &spec.comparison_operator {
            if value.is_some() || exists.is_some() {
                return Err(invalid(format!(
                    "Value or Exists cannot be used with ComparisonOperator for Attribute: {name}"
                )));
            }
            conds.push(comparison(
                name,
                op,
                value_list(spec.attribute_value_list.as_ref())?,
            )?);
            continue;
        }
        if spec.attribute_value_list.is_some() {
            return Err(invalid(format!(
                "AttributeValueList can only be used with a ComparisonOperator for Attribute: {name}"
            )));
        }
        conds.push(match (exists, value) {
            (Some(false), None) => Cond::NotExists(attr(name)),
            (Some(false), Some(_)) => {
                return Err(invalid(format!(
                    "Cannot expect an attribute to have a specified value while expecting it to not exist for Attribute: {name}"
                )));
            }
            (_, Some(value)) => Cond::Cmp(
                Operand::Path(attr(name)),
                CmpOp::Eq,
                Operand::Value(value),
            ),
            (_, None) => {
                return Err(invalid(format!(
                    "Exists is set to TRUE for attribute ({name}), Value must also be set"
                )));
            }
        });
    }
    combine(conds, operator)
}

/// The filter of a `ScanFilter` or `QueryFilter` parameter (with `ConditionalOperator`).
pub(super) fn filter(
    filter: Option<&BTreeMap<String, LegacyCondition>>,
    operator: Option<&str>,
) -> Result<Option<Cond>, ApiError> {
    let Some(filter) = filter else {
        return Ok(None);
    };
    if operator.is_some() && filter.len() < 2 {
        return Err(invalid(
            "ConditionalOperator can only be used when Filter or Expected has two or more elements",
        ));
    }
    let mut conds = Vec::with_capacity(filter.len());
    for (name, spec) in filter {
        let op = spec.comparison_operator.as_deref().ok_or_else(|| {
            ApiError::validation(
                "1 validation error detected: Value null at 'comparisonOperator' failed to satisfy constraint: Member must not be null",
            )
        })?;
        conds.push(comparison(
            name,
            op,
            value_list(spec.attribute_value_list.as_ref())?,
        )?);
    }
    combine(conds, operator)
}

/// The update of an `AttributeUpdates` parameter.
pub(super) fn attribute_updates(l: &Legacy) -> Result<Option<Update>, ApiError> {
    let Some(updates) = &l.attribute_updates else {
        return Ok(None);
    };
    let mut u = Update::default();
    for (name, spec) in updates {
        let value = spec
            .value
            .as_ref()
            .filter(|x| !x.is_null())
            .map(AttrValue::from_json)
            .transpose()?;
        let action = spec.action.as_deref().unwrap_or("PUT");
        match (action, value) {
            ("PUT", Some(value)) => u
                .set
                .push((attr(name), SetValue::Operand(SetOperand::Value(value)))),
            ("PUT", None) => {
                return Err(invalid(format!(
                    "Only DELETE action is allowed when no attribute value is specified: {name}"
                )));
            }
            ("DELETE", None) => u.remove.push(attr(name)),
            ("DELETE", Some(value)) => {
                if !matches!(
                    value,
                    AttrValue::Ss(_) | AttrValue::Ns(_) | AttrValue::Bs(_)
                ) {
                    return Err(invalid(format!(
                        "DELETE action with value is not supported for the type {}",
                        value.type_name()
                    )));
                }
                u.delete.push((attr(name), value));
            }
            ("ADD", Some(value)) => match value {
                AttrValue::N(_) | AttrValue::Ss(_) | AttrValue::Ns(_) | AttrValue::Bs(_) => {
                    u.add.push((attr(name), value));
                }
                AttrValue::L(list) => {
                    // ADD with a list appends to the existing list (or creates it).
                    let old = SetOperand::IfNotExists(
                        attr(name),
                        Box::new(SetOperand::Value(AttrValue::L(Vec::new()))),
                    );
                    u.set.push((
                        attr(name),
                        SetValue::Operand(SetOperand::ListAppend(
                            Box::new(old),
                            Box::new(SetOperand::Value(AttrValue::L(list))),
                        )),
                    ));
                }
                other => {
                    return Err(invalid(format!(
                        "ADD action is not supported for the type {}",
                        other.type_name()
                    )));
                }
            },
            ("ADD", None) => {
                return Err(invalid(format!(
                    "ADD action requires a value for attribute: {name}"
                )));
            }
            (other, _) => {
                return Err(ApiError::validation(format!(
                    "1 validation error detected: Value '{other}' at 'attributeUpdates.{name}.member.action' failed to satisfy constraint: Member must satisfy enum value set: [ADD, PUT, DELETE]"
                )));
            }
        }
    }
    Ok(Some(u))
}

/// The projection of an `AttributesToGet` parameter (top-level attribute names).
pub(super) fn attributes_to_get(l: &Legacy) -> Result<Option<Vec<Path>>, ApiError> {
    let Some(names) = &l.attributes_to_get else {
        return Ok(None);
    };
    if names.is_empty() {
        return Err(ApiError::validation(
            "1 validation error detected: Value '[]' at 'attributesToGet' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ));
    }
    let mut paths = Vec::with_capacity(names.len());
    for n in names {
        let p = attr(n);
        if paths.contains(&p) {
            return Err(invalid(format!("Duplicate value in attribute name: {n}")));
        }
        paths.push(p);
    }
    Ok(Some(paths))
}
