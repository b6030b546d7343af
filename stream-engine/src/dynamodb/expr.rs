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
    names: HashMap<String, String>,
    values: HashMap<String, AttrValue>,
    used_names: BTreeSet<String>,
    used_values: BTreeSet<String>,
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

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Name(String),
    Value(String),
    Number(usize),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Dot,
    Comma,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    End,
}

struct Parser<'c> {
    kind: &'static str,
    text: String,
    toks: Vec<(Tok, usize)>,
    pos: usize,
    ctx: &'c mut Context,
}

fn syntax(kind: &str, text: &str, at: usize, token: &str) -> ApiError {
    let near: String = text.chars().skip(at.saturating_sub(10)).take(30).collect();
    ApiError::validation(format!(
        "Invalid {kind}Expression: Syntax error; token: \"{token}\", near: \"{near}\" (at position {at})"
    ))
}

fn tokenize(kind: &str, text: &str) -> Result<Vec<(Tok, usize)>, ApiError> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        let start = i;
        let word = |i: &mut usize| {
            let s = *i;
            while *i < b.len() && (b[*i].is_ascii_alphanumeric() || b[*i] == b'_') {
                *i += 1;
            }
            text[s..*i].to_owned()
        };
        let tok = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => {
                i += 1;
                Tok::LParen
            }
            b')' => {
                i += 1;
                Tok::RParen
            }
            b'[' => {
                i += 1;
                Tok::LBracket
            }
            b']' => {
                i += 1;
                Tok::RBracket
            }
            b'.' => {
                i += 1;
                Tok::Dot
            }
            b',' => {
                i += 1;
                Tok::Comma
            }
            b'+' => {
                i += 1;
                Tok::Plus
            }
            b'-' => {
                i += 1;
                Tok::Minus
            }
            b'=' => {
                i += 1;
                Tok::Eq
            }
            b'<' => {
                i += 1;
                match b.get(i) {
                    Some(b'>') => {
                        i += 1;
                        Tok::Ne
                    }
                    Some(b'=') => {
                        i += 1;
                        Tok::Le
                    }
                    _ => Tok::Lt,
                }
            }
            b'>' => {
                i += 1;
                if b.get(i) == Some(&b'=') {
                    i += 1;
                    Tok::Ge
                } else {
                    Tok::Gt
                }
            }
            b'#' | b':' => {
                i += 1;
                let w = word(&mut i);
                if w.is_empty() {
                    return Err(syntax(kind, text, start, &text[start..start + 1]));
                }
                let full = format!("{}{w}", c as char);
                if c == b'#' {
                    Tok::Name(full)
                } else {
                    Tok::Value(full)
                }
            }
            c if c.is_ascii_digit() => {
                let w = word(&mut i);
                match w.parse() {
                    Ok(n) if w.bytes().all(|b| b.is_ascii_digit()) => Tok::Number(n),
                    _ => return Err(syntax(kind, text, start, &w)),
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => Tok::Ident(word(&mut i)),
            _ => {
                let ch: String = text[start..].chars().take(1).collect();
                return Err(syntax(kind, text, start, &ch));
            }
        };
        out.push((tok, start));
    }
    out.push((Tok::End, text.len()));
    Ok(out)
}

impl<'c> Parser<'c> {
    fn new(kind: &'static str, text: &str, ctx: &'c mut Context) -> Result<Self, ApiError> {
        if text.trim().is_empty() {
            return Err(ApiError::validation(format!(
                "Invalid {kind}Expression: The expression can not be empty;"
            )));
        }
        Ok(Parser {
            kind,
            text: text.to_owned(),
            toks: tokenize(kind, text)?,
            pos: 0,
            ctx,
        })
    }

    fn peek(&self) -> &Tok {
        &self.toks[self.pos.min(self.toks.len() - 1)].0
    }

    fn peek2(&self) -> &Tok {
        &self.toks[(self.pos + 1).min(self.toks.len() - 1)].0
    }

    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn error(&self) -> ApiError {
        let (tok, at) = &self.toks[self.pos.min(self.toks.len() - 1)];
        let token = match tok {
            Tok::End => "<EOF>".to_owned(),
            _ => {
                let rest = &self.text[*at..];
                rest.split(|c: char| c.is_whitespace())
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(20)
                    .collect()
            }
        };
        syntax(self.kind, &self.text, *at, &token)
    }

    fn expect(&mut self, tok: Tok) -> Result<(), ApiError> {
        if *self.peek() == tok {
            self.next();
            Ok(())
        } else {
            Err(self.error())
        }
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(w) if w.eq_ignore_ascii_case(kw))
    }

    fn finish(&mut self) -> Result<(), ApiError> {
        if *self.peek() == Tok::End {
            Ok(())
        } else {
            Err(self.error())
        }
    }

    fn value(&mut self, name: &str) -> Result<AttrValue, ApiError> {
        let v = self.ctx.values.get(name).cloned().ok_or_else(|| {
            ApiError::validation(format!(
                "Invalid {}Expression: An expression attribute value used in expression is not defined; attribute value: {name}",
                self.kind
            ))
        })?;
        self.ctx.used_values.insert(name.to_owned());
        Ok(v)
    }

    fn name_part(&mut self) -> Result<String, ApiError> {
        match self.next() {
            Tok::Ident(w) if super::reserved::is_reserved(&w) => {
                Err(ApiError::validation(format!(
                    "Invalid {}Expression: Attribute name is a reserved keyword; reserved keyword: {w}",
                    self.kind
                )))
            }
            Tok::Ident(w) => Ok(w),
            Tok::Name(n) => {
                let v = self.ctx.names.get(&n).cloned().ok_or_else(|| {
                    ApiError::validation(format!(
                        "Invalid {}Expression: An expression attribute name used in the document path is not defined; attribute name: {n}",
                        self.kind
                    ))
                })?;
                self.ctx.used_names.insert(n);
                Ok(v)
            }
            _ => {
                self.pos = self.pos.saturating_sub(1);
                Err(self.error())
            }
        }
    }

    fn path(&mut self) -> Result<Path, ApiError> {
        let mut path = vec![PathElem::Attr(self.name_part()?)];
        loop {
            match self.peek() {
                Tok::Dot => {
                    self.next();
                    path.push(PathElem::Attr(self.name_part()?));
                }
                Tok::LBracket => {
                    self.next();
                    match self.next() {
                        Tok::Number(n) => path.push(PathElem::Index(n)),
                        _ => {
                            self.pos = self.pos.saturating_sub(1);
                            return Err(self.error());
                        }
                    }
                    self.expect(Tok::RBracket)?;
                }
                _ => return Ok(path),
            }
        }
    }

    fn operand(&mut self) -> Result<Operand, ApiError> {
        match self.peek().clone() {
            Tok::Value(v) => {
                self.next();
                Ok(Operand::Value(self.value(&v)?))
            }
            Tok::Ident(w) if w == "size" && *self.peek2() == Tok::LParen => {
                self.next();
                self.next();
                let p = self.path()?;
                self.expect(Tok::RParen)?;
                Ok(Operand::Size(p))
            }
            Tok::Ident(_) | Tok::Name(_) => Ok(Operand::Path(self.path()?)),
            _ => Err(self.error()),
        }
    }

    fn condition(&mut self) -> Result<Cond, ApiError> {
        let mut left = self.and()?;
        while self.is_kw("OR") {
            self.next();
            let right = self.and()?;
            left = Cond::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Cond, ApiError> {
        let mut left = self.not()?;
        while self.is_kw("AND") {
            self.next();
            let right = self.not()?;
            left = Cond::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Cond, ApiError> {
        if self.is_kw("NOT") {
            self.next();
            return Ok(Cond::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Cond, ApiError> {
        if *self.peek() == Tok::LParen {
            self.next();
            let c = self.condition()?;
            self.expect(Tok::RParen)?;
            return Ok(c);
        }
        if let Tok::Ident(f) = self.peek().clone()
            && *self.peek2() == Tok::LParen
        {
            let func = match f.as_str() {
                "attribute_exists"
                | "attribute_not_exists"
                | "attribute_type"
                | "begins_with"
                | "contains" => Some(f),
                _ => None,
            };
            if let Some(f) = func {
                self.next();
                self.next();
                let path = self.path()?;
                let cond = match f.as_str() {
                    "attribute_exists" => Cond::Exists(path),
                    "attribute_not_exists" => Cond::NotExists(path),
                    other => {
                        self.expect(Tok::Comma)?;
                        let arg = self.operand()?;
                        match other {
                            "attribute_type" => Cond::Type(path, arg),
                            "begins_with" => Cond::BeginsWith(path, arg),
                            _ => Cond::Contains(path, arg),
                        }
                    }
                };
                self.expect(Tok::RParen)?;
                return Ok(cond);
            }
        }
        let left = self.operand()?;
        if self.is_kw("BETWEEN") {
            self.next();
            let lo = self.operand()?;
            if !self.is_kw("AND") {
                return Err(self.error());
            }
            self.next();
            let hi = self.operand()?;
            return Ok(Cond::Between(left, lo, hi));
        }
        if self.is_kw("IN") {
            self.next();
            self.expect(Tok::LParen)?;
            let mut list = vec![self.operand()?];
            while *self.peek() == Tok::Comma {
                self.next();
                list.push(self.operand()?);
            }
            self.expect(Tok::RParen)?;
            return Ok(Cond::In(left, list));
        }
        let op = match self.peek() {
            Tok::Eq => CmpOp::Eq,
            Tok::Ne => CmpOp::Ne,
            Tok::Lt => CmpOp::Lt,
            Tok::Le => CmpOp::Le,
            Tok::Gt => CmpOp::Gt,
            Tok::Ge => CmpOp::Ge,
            _ => return Err(self.error()),
        };
        self.next();
        let right = self.operand()?;
        Ok(Cond::Cmp(left, op, right))
    }

    fn set_operand(&mut self) -> Result<SetOperand, ApiError> {
        match self.peek().clone() {
            Tok::Value(v) => {
                self.next();
                Ok(SetOperand::Value(self.value(&v)?))
            }
            Tok::Ident(f) if *self.peek2() == Tok::LParen && f == "if_not_exists" => {
                self.next();
                self.next();
                let p = self.path()?;
                self.expect(Tok::Comma)?;
                let v = self.set_operand()?;
                self.expect(Tok::RParen)?;
                Ok(SetOperand::IfNotExists(p, Box::new(v)))
            }
            Tok::Ident(f) if *self.peek2() == Tok::LParen && f == "list_append" => {
                self.next();
                self.next();
                let a = self.set_operand()?;
                self.expect(Tok::Comma)?;
                let b = self.set_operand()?;
                self.expect(Tok::RParen)?;
                Ok(SetOperand::ListAppend(Box::new(a), Box::new(b)))
            }
            Tok::Ident(_) | Tok::Name(_) => Ok(SetOperand::Path(self.path()?)),
            _ => Err(self.error()),
        }
    }

    fn update(&mut self) -> Result<Update, ApiError> {
        let mut u = Update::default();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        while *self.peek() != Tok::End {
            let Tok::Ident(kw) = self.peek().clone() else {
                return Err(self.error());
            };
            let kw = kw.to_ascii_uppercase();
            if !matches!(kw.as_str(), "SET" | "REMOVE" | "ADD" | "DELETE") {
                return Err(self.error());
            }
            if !seen.insert(kw.clone()) {
                return Err(ApiError::validation(format!(
                    "Invalid UpdateExpression: The \"{kw}\" section can only be used once in an update expression;"
                )));
            }
            self.next();
            loop {
                match kw.as_str() {
                    "SET" => {
                        let p = self.path()?;
                        self.expect(Tok::Eq)?;
                        let a = self.set_operand()?;
                        let v = match self.peek() {
                            Tok::Plus => {
                                self.next();
                                SetValue::Plus(a, self.set_operand()?)
                            }
                            Tok::Minus => {
                                self.next();
                                SetValue::Minus(a, self.set_operand()?)
                            }
                            _ => SetValue::Operand(a),
                        };
                        u.set.push((p, v));
                    }
                    "REMOVE" => u.remove.push(self.path()?),
                    _ => {
                        let p = self.path()?;
                        let v = match self.next() {
                            Tok::Value(v) => self.value(&v)?,
                            _ => {
                                self.pos = self.pos.saturating_sub(1);
                                return Err(self.error());
                            }
                        };
                        if kw == "ADD" {
                            u.add.push((p, v))
                        } else {
                            u.delete.push((p, v))
                        }
                    }
                }
                if *self.peek() == Tok::Comma {
                    self.next();
                } else {
                    break;
                }
            }
        }
        Ok(u)
    }
}

/// Parses a condition (`kind` is `Condition` or `Filter`, for messages).
pub fn parse_condition(
    kind: &'static str,
    text: &str,
    ctx: &mut Context,
) -> Result<Cond, ApiError> {
    let mut p = Parser::new(kind, text, ctx)?;
    let c = p.condition()?;
    p.finish()?;
    Ok(c)
}

/// Parses an update expression.
pub fn parse_update(text: &str, ctx: &mut Context) -> Result<Update, ApiError> {
    let mut p = Parser::new("Update", text, ctx)?;
    let u = p.update()?;
    p.finish()?;
    check_overlaps(
        "Update",
        u.set
            .iter()
            .map(|(p, _)| p)
            .chain(u.remove.iter())
            .chain(u.add.iter().map(|(p, _)| p))
            .chain(u.delete.iter().map(|(p, _)| p)),
    )?;
    Ok(u)
}

/// Parses a projection expression (comma-separated paths).
pub fn parse_projection(text: &str, ctx: &mut Context) -> Result<Vec<Path>, ApiError> {
    let mut p = Parser::new("Projection", text, ctx)?;
    let mut paths = vec![p.path()?];
    while *p.peek() == Tok::Comma {
        p.next();
        paths.push(p.path()?);
    }
    p.finish()?;
    check_overlaps("Projection", paths.iter())?;
    Ok(paths)
}

fn path_text(p: &Path) -> String {
    let parts: Vec<String> = p
        .iter()
        .map(|e| match e {
            PathElem::Attr(a) => a.clone(),
            PathElem::Index(i) => format!("[{i}]"),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

fn check_overlaps<'a>(kind: &str, paths: impl Iterator<Item = &'a Path>) -> Result<(), ApiError> {
    let paths: Vec<&Path> = paths.collect();
    for (i, a) in paths.iter().enumerate() {
        for b in &paths[i + 1..] {
            let n = a.len().min(b.len());
            if a[..n] == b[..n] {
                return Err(ApiError::validation(format!(
                    "Invalid {kind}Expression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: {}, path two: {}",
                    path_text(a),
                    path_text(b)
                )));
            }
        }
    }
    Ok(())
}

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

fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
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

fn order(a: &AttrValue, b: &AttrValue) -> Option<Ordering> {
    match (a, b) {
        (AttrValue::N(x), AttrValue::N(y)) => Some(x.cmp(y)),
        (AttrValue::S(x), AttrValue::S(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (AttrValue::B(x), AttrValue::B(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn size_of(v: &AttrValue) -> Option<usize> {
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

fn operand_value(item: &Item, op: &Operand) -> Option<AttrValue> {
    match op {
        Operand::Path(p) => resolve(item, p).cloned(),
        Operand::Value(v) => Some(v.clone()),
        Operand::Size(p) => resolve(item, p)
            .and_then(size_of)
            .map(|n| AttrValue::N(Decimal::from_int(n as i128))),
    }
}

fn operand_error(func: &str, v: &AttrValue) -> ApiError {
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

fn missing_operand() -> ApiError {
    ApiError::validation(
        "The provided expression refers to an attribute that does not exist in the item",
    )
}

fn wrong_type() -> ApiError {
    ApiError::validation("An operand in the update expression has an incorrect data type")
}

fn set_operand_value(item: &Item, op: &SetOperand) -> Result<AttrValue, ApiError> {
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

fn arithmetic(a: AttrValue, b: AttrValue, minus: bool) -> Result<AttrValue, ApiError> {
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

fn invalid_path() -> ApiError {
    ApiError::validation(
        "The document path provided in the update expression is invalid for update",
    )
}

fn container<'a>(
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

fn set_path(item: &mut Item, path: &Path, value: AttrValue) -> Result<(), ApiError> {
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

fn remove_path(item: &mut Item, path: &Path) -> Result<(), ApiError> {
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

fn union<T: PartialEq + Clone>(mut a: Vec<T>, b: &[T]) -> Vec<T> {
    for x in b {
        if !a.contains(x) {
            a.push(x.clone());
        }
    }
    a
}

fn minus<T: PartialEq + Clone>(a: &[T], b: &[T]) -> Vec<T> {
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

fn insert_projected(out: &mut Item, path: &Path, value: AttrValue) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(names: &[(&str, &str)], values: &[(&str, AttrValue)]) -> Context {
        Context::new(
            names
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            values
                .iter()
                .map(|(a, b)| (a.to_string(), b.clone()))
                .collect(),
        )
    }

    fn n(s: &str) -> AttrValue {
        AttrValue::N(Decimal::parse(s).expect("number"))
    }

    #[test]
    fn precedence_and_functions() {
        let mut c = ctx(
            &[("#o", "owner")],
            &[(":a", AttrValue::S("w1".into())), (":n", n("3"))],
        );
        let cond = parse_condition(
            "Condition",
            "attribute_not_exists(k) OR #o = :a AND NOT leaseCounter > :n",
            &mut c,
        )
        .expect("parses");
        c.check_all_used().expect("all used");
        let mut item = Item::new();
        item.insert("k".into(), AttrValue::S("x".into()));
        item.insert("owner".into(), AttrValue::S("w1".into()));
        item.insert("leaseCounter".into(), n("3"));
        assert!(evaluate(&cond, &item).expect("eval"));
        item.insert("leaseCounter".into(), n("4"));
        assert!(!evaluate(&cond, &item).expect("eval"));
    }

    #[test]
    fn reserved_words_must_go_through_names() {
        let mut c = ctx(&[("#s", "status")], &[(":v", n("1"))]);
        let err = parse_condition("Condition", "status = :v", &mut c).expect_err("reserved");
        assert!(
            err.message.contains("reserved keyword: status"),
            "{}",
            err.message
        );
        let mut c = ctx(&[("#s", "status")], &[(":v", n("1"))]);
        parse_condition("Condition", "#s = :v", &mut c).expect("through a name");
    }

    #[test]
    fn remove_uses_the_indexes_from_before_the_update_and_projections_must_not_overlap() {
        let mut c = ctx(&[], &[]);
        let u = parse_update("REMOVE l[0], l[2]", &mut c).expect("parses");
        let mut item = Item::new();
        item.insert(
            "l".into(),
            AttrValue::L(vec![n("0"), n("1"), n("2"), n("3")]),
        );
        apply_update(&mut item, &u, &[]).expect("applies");
        let AttrValue::L(rest) = &item["l"] else {
            panic!("list")
        };
        assert_eq!(rest, &vec![n("1"), n("3")]);
        let mut c = ctx(&[], &[]);
        let err = parse_projection("a, a.b", &mut c).expect_err("overlap");
        assert!(
            err.message
                .contains("Invalid ProjectionExpression: Two document paths overlap")
        );
        let mut c = ctx(&[], &[]);
        assert!(
            parse_projection("a, a", &mut c).is_err(),
            "a duplicate overlaps"
        );
    }

    #[test]
    fn arithmetic_results_stay_in_the_number_range() {
        let mut c = ctx(
            &[],
            &[(":big", n("9.9999999999999999999999999999999999999e125"))],
        );
        let u = parse_update("SET x = x + :big", &mut c).expect("parses");
        let mut item = Item::new();
        item.insert("x".into(), n("9.9999999999999999999999999999999999999e125"));
        assert!(apply_update(&mut item, &u, &[]).is_err(), "past 1e126");
        assert!(Decimal::parse("1e126").is_none());
        assert!(Decimal::parse("12345e122").is_none(), "1.2345e126");
        assert!(Decimal::parse("1e-130").is_some());
        assert!(Decimal::parse("1e-131").is_none());
    }

    #[test]
    fn syntax_errors_name_the_position() {
        let mut c = ctx(&[], &[]);
        let err = parse_condition("Condition", "a = = b", &mut c).expect_err("syntax");
        assert!(err.message.contains("position 4"), "{}", err.message);
        let err = parse_update("SET a = :v", &mut c).expect_err("undefined value");
        assert!(err.message.contains(":v"));
        let err = parse_update("SET a = b SET c = d", &mut c).expect_err("twice");
        assert!(err.message.contains("only be used once"));
        let err = parse_update("SET a = b, a.c = d", &mut c).expect_err("overlap");
        assert!(err.message.contains("overlap"));
    }
}
