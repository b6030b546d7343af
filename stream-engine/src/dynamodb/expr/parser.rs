//! The parser: conditions, updates and projections into their structures.

use super::*;

pub(super) struct Parser<'c> {
    kind: &'static str,
    text: String,
    toks: Vec<(Tok, usize)>,
    pos: usize,
    ctx: &'c mut Context,
    depth: usize,
}

/// Longest expression DynamoDB accepts (4 KB).
const MAX_EXPRESSION_BYTES: usize = 4096;
/// Deepest nesting of parentheses and `NOT`s the parser follows: far more than any real
/// expression, far less than what would exhaust a thread's stack.
const MAX_DEPTH: usize = 64;

impl<'c> Parser<'c> {
    pub(super) fn new(
        kind: &'static str,
        text: &str,
        ctx: &'c mut Context,
    ) -> Result<Self, ApiError> {
        if text.trim().is_empty() {
            return Err(ApiError::validation(format!(
                "Invalid {kind}Expression: The expression can not be empty;"
            )));
        }
        if text.len() > MAX_EXPRESSION_BYTES {
            return Err(ApiError::validation(format!(
                "Invalid {kind}Expression: Expression size has exceeded the maximum allowed size; expression size: {}",
                text.len()
            )));
        }
        Ok(Parser {
            kind,
            text: text.to_owned(),
            toks: tokenize(kind, text)?,
            pos: 0,
            ctx,
            depth: 0,
        })
    }

    pub(super) fn peek(&self) -> &Tok {
        &self.toks[self.pos.min(self.toks.len() - 1)].0
    }

    pub(super) fn peek2(&self) -> &Tok {
        &self.toks[(self.pos + 1).min(self.toks.len() - 1)].0
    }

    pub(super) fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    pub(super) fn error(&self) -> ApiError {
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

    pub(super) fn expect(&mut self, tok: Tok) -> Result<(), ApiError> {
        if *self.peek() == tok {
            self.next();
            Ok(())
        } else {
            Err(self.error())
        }
    }

    pub(super) fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(w) if w.eq_ignore_ascii_case(kw))
    }

    pub(super) fn finish(&mut self) -> Result<(), ApiError> {
        if *self.peek() == Tok::End {
            Ok(())
        } else {
            Err(self.error())
        }
    }

    pub(super) fn value(&mut self, name: &str) -> Result<AttrValue, ApiError> {
        let v = self.ctx.values.get(name).cloned().ok_or_else(|| {
            ApiError::validation(format!(
                "Invalid {}Expression: An expression attribute value used in expression is not defined; attribute value: {name}",
                self.kind
            ))
        })?;
        self.ctx.used_values.insert(name.to_owned());
        Ok(v)
    }

    pub(super) fn name_part(&mut self) -> Result<String, ApiError> {
        match self.next() {
            Tok::Ident(w) if crate::dynamodb::reserved::is_reserved(&w) => {
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

    pub(super) fn path(&mut self) -> Result<Path, ApiError> {
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

    pub(super) fn operand(&mut self) -> Result<Operand, ApiError> {
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

    pub(super) fn condition(&mut self) -> Result<Cond, ApiError> {
        let mut left = self.and()?;
        while self.is_kw("OR") {
            self.next();
            let right = self.and()?;
            left = Cond::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    pub(super) fn and(&mut self) -> Result<Cond, ApiError> {
        let mut left = self.not()?;
        while self.is_kw("AND") {
            self.next();
            let right = self.not()?;
            left = Cond::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    pub(super) fn not(&mut self) -> Result<Cond, ApiError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ApiError::validation(format!(
                "Invalid {}Expression: The expression is nested too deeply",
                self.kind
            )));
        }
        let c = if self.is_kw("NOT") {
            self.next();
            self.not().map(|c| Cond::Not(Box::new(c)))
        } else {
            self.primary()
        };
        self.depth -= 1;
        c
    }

    pub(super) fn primary(&mut self) -> Result<Cond, ApiError> {
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

    pub(super) fn set_operand(&mut self) -> Result<SetOperand, ApiError> {
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

    pub(super) fn update(&mut self) -> Result<Update, ApiError> {
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

pub(super) fn path_text(p: &Path) -> String {
    let parts: Vec<String> = p
        .iter()
        .map(|e| match e {
            PathElem::Attr(a) => a.clone(),
            PathElem::Index(i) => format!("[{i}]"),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

pub(super) fn check_overlaps<'a>(
    kind: &str,
    paths: impl Iterator<Item = &'a Path>,
) -> Result<(), ApiError> {
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
