//! DynamoDB expressions: conditions (and filters), updates and projections, with
//! `ExpressionAttributeNames` / `ExpressionAttributeValues`.

use super::value::{AttrValue, Decimal, Item};
use crate::error::ApiError;
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

/// One step of a document path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathElem {
    /// A map key / attribute name.
    Attr(String),
    /// A list index.
    Index(usize),
}

/// A document path such as `a.b[0]`.
pub type Path = Vec<PathElem>;

/// An operand of a condition.
#[derive(Debug, Clone)]
pub enum Operand {
    /// An attribute of the item.
    Path(Path),
    /// An expression attribute value.
    Value(AttrValue),
    /// `size(path)`.
    Size(Path),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A condition (or filter) expression.
#[derive(Debug, Clone)]
pub enum Cond {
    /// `a op b`
    Cmp(Operand, CmpOp, Operand),
    /// `a BETWEEN b AND c`
    Between(Operand, Operand, Operand),
    /// `a IN (b, c, …)`
    In(Operand, Vec<Operand>),
    /// `attribute_exists(path)`
    Exists(Path),
    /// `attribute_not_exists(path)`
    NotExists(Path),
    /// `attribute_type(path, :t)`
    Type(Path, Operand),
    /// `begins_with(path, operand)`
    BeginsWith(Path, Operand),
    /// `contains(path, operand)`
    Contains(Path, Operand),
    /// `a AND b`
    And(Box<Cond>, Box<Cond>),
    /// `a OR b`
    Or(Box<Cond>, Box<Cond>),
    /// `NOT a`
    Not(Box<Cond>),
}

/// An operand of a `SET` action.
#[derive(Debug, Clone)]
pub enum SetOperand {
    /// An attribute of the item (before the update).
    Path(Path),
    /// An expression attribute value.
    Value(AttrValue),
    /// `if_not_exists(path, operand)`
    IfNotExists(Path, Box<SetOperand>),
    /// `list_append(a, b)`
    ListAppend(Box<SetOperand>, Box<SetOperand>),
}

/// The right-hand side of a `SET` action.
#[derive(Debug, Clone)]
pub enum SetValue {
    /// A single operand.
    Operand(SetOperand),
    /// `a + b`
    Plus(SetOperand, SetOperand),
    /// `a - b`
    Minus(SetOperand, SetOperand),
}

/// A parsed update expression.
#[derive(Debug, Clone, Default)]
pub struct Update {
    /// `SET path = value` actions.
    pub set: Vec<(Path, SetValue)>,
    /// `REMOVE path` actions.
    pub remove: Vec<Path>,
    /// `ADD path :v` actions.
    pub add: Vec<(Path, AttrValue)>,
    /// `DELETE path :v` actions.
    pub delete: Vec<(Path, AttrValue)>,
}

/// Names and values of a request, tracking which ones the expressions use.
#[derive(Debug)]
pub struct Context {
    pub(super) names: HashMap<String, String>,
    pub(super) values: HashMap<String, AttrValue>,
    pub(super) used_names: BTreeSet<String>,
    pub(super) used_values: BTreeSet<String>,
}

impl Context {
    /// A context for these `ExpressionAttributeNames` and `ExpressionAttributeValues`.
    pub fn new(names: HashMap<String, String>, values: HashMap<String, AttrValue>) -> Self {
        Context {
            names,
            values,
            used_names: BTreeSet::new(),
            used_values: BTreeSet::new(),
        }
    }

    /// Fails when a name or value was supplied but no expression used it.
    pub fn check_all_used(&self) -> Result<(), ApiError> {
        let unused_values: Vec<&String> = self
            .values
            .keys()
            .filter(|k| !self.used_values.contains(*k))
            .collect();
        if !unused_values.is_empty() {
            let mut v: Vec<_> = unused_values.into_iter().cloned().collect();
            v.sort();
            return Err(ApiError::validation(format!(
                "Value provided in ExpressionAttributeValues unused in expressions: keys: {{{}}}",
                v.join(", ")
            )));
        }
        let unused_names: Vec<&String> = self
            .names
            .keys()
            .filter(|k| !self.used_names.contains(*k))
            .collect();
        if !unused_names.is_empty() {
            let mut v: Vec<_> = unused_names.into_iter().cloned().collect();
            v.sort();
            return Err(ApiError::validation(format!(
                "Value provided in ExpressionAttributeNames unused in expressions: keys: {{{}}}",
                v.join(", ")
            )));
        }
        Ok(())
    }
}

mod eval;
mod lexer;
mod parser;
mod update;

use eval::*;
pub use eval::{evaluate, resolve, values_equal};
use lexer::*;
pub use parser::{parse_condition, parse_projection, parse_update};
pub use update::{apply_update, project};

#[cfg(test)]
mod tests;
