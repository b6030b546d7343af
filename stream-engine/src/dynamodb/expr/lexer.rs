//! Tokens of an expression.

use super::*;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
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

pub(super) fn syntax(kind: &str, text: &str, at: usize, token: &str) -> ApiError {
    let near: String = text.chars().skip(at.saturating_sub(10)).take(30).collect();
    ApiError::validation(format!(
        "Invalid {kind}Expression: Syntax error; token: \"{token}\", near: \"{near}\" (at position {at})"
    ))
}

pub(super) fn tokenize(kind: &str, text: &str) -> Result<Vec<(Tok, usize)>, ApiError> {
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
