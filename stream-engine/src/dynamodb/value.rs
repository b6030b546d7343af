//! DynamoDB attribute values, with numbers kept as exact decimals.

use crate::error::ApiError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

/// An item: attribute name → value.
pub type Item = BTreeMap<String, AttrValue>;

/// A DynamoDB number: an exact decimal of at most 38 significant digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decimal {
    /// Significand without trailing zeros (0 for zero).
    mantissa: i128,
    /// Power of ten the significand is multiplied by (0 for zero).
    exponent: i32,
}

const MAX_DIGITS: usize = 38;

fn digits_of(m: i128) -> usize {
    let mut n = m.unsigned_abs();
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

impl Decimal {
    fn normalized(mut mantissa: i128, mut exponent: i32) -> Self {
        if mantissa == 0 {
            return Decimal {
                mantissa: 0,
                exponent: 0,
            };
        }
        while mantissa % 10 == 0 {
            mantissa /= 10;
            exponent += 1;
        }
        Decimal { mantissa, exponent }
    }

    /// An integer.
    pub fn from_int(value: i128) -> Self {
        Decimal::normalized(value, 0)
    }

    /// Parses DynamoDB number text (`-12.5`, `1e10`, `+3`).
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        let (negative, t) = match t.as_bytes().first()? {
            b'-' => (true, &t[1..]),
            b'+' => (false, &t[1..]),
            _ => (false, t),
        };
        let (number, exp) = match t.find(['e', 'E']) {
            Some(i) => (&t[..i], t[i + 1..].parse::<i32>().ok()?),
            None => (t, 0),
        };
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let all = format!("{int}{frac}");
        let trimmed = all.trim_start_matches('0');
        let significant = trimmed.trim_end_matches('0');
        let trailing = trimmed.len() - significant.len();
        if significant.is_empty() {
            return Some(Decimal {
                mantissa: 0,
                exponent: 0,
            });
        }
        if significant.len() > MAX_DIGITS {
            return None;
        }
        let mut mantissa: i128 = significant.parse().ok()?;
        if negative {
            mantissa = -mantissa;
        }
        let exponent = exp
            .checked_sub(frac.len() as i32)?
            .checked_add(trailing as i32)?;
        Decimal::normalized(mantissa, exponent).in_range()
    }

    /// Itself if its magnitude is in DynamoDB's range (1e-130 ..< 1e126), else `None`.
    fn in_range(self) -> Option<Decimal> {
        if self.mantissa == 0 {
            return Some(self);
        }
        let leading = self.exponent as i64 + digits_of(self.mantissa) as i64 - 1;
        (-130..=125).contains(&leading).then_some(self)
    }

    /// Sum, or `None` past 38 significant digits.
    pub fn checked_add(self, other: Decimal) -> Option<Decimal> {
        if self.mantissa == 0 {
            return Some(other);
        }
        if other.mantissa == 0 {
            return Some(self);
        }
        let (hi, lo) = if self.exponent >= other.exponent {
            (self, other)
        } else {
            (other, self)
        };
        let shift = u32::try_from(hi.exponent - lo.exponent).ok()?;
        let scaled = hi.mantissa.checked_mul(pow10(shift)?)?;
        let sum = scaled.checked_add(lo.mantissa)?;
        let d = Decimal::normalized(sum, lo.exponent);
        // The result must fit the number type as a stored number would: 38 digits, in range.
        (d.mantissa == 0 || digits_of(d.mantissa) <= MAX_DIGITS)
            .then_some(d)?
            .in_range()
    }

    /// Negation.
    pub fn negated(self) -> Decimal {
        Decimal {
            mantissa: -self.mantissa,
            exponent: self.exponent,
        }
    }

    /// Whether this is zero.
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    fn size(&self) -> usize {
        digits_of(self.mantissa).div_ceil(2) + 1
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        let sign = |m: i128| m.signum();
        match sign(self.mantissa).cmp(&sign(other.mantissa)) {
            Ordering::Equal => {}
            o => return o,
        }
        if self.mantissa == 0 {
            return Ordering::Equal;
        }
        // Same sign: compare magnitudes by adjusted exponent, then by digits.
        let adj = |d: &Decimal| d.exponent + digits_of(d.mantissa) as i32;
        let magnitude = adj(self).cmp(&adj(other)).then_with(|| {
            let a = self.mantissa.unsigned_abs().to_string();
            let b = other.mantissa.unsigned_abs().to_string();
            let width = a.len().max(b.len());
            format!("{a:0<width$}").cmp(&format!("{b:0<width$}"))
        });
        if self.mantissa < 0 {
            magnitude.reverse()
        } else {
            magnitude
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mantissa == 0 {
            return f.write_str("0");
        }
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let digits = self.mantissa.unsigned_abs().to_string();
        if self.exponent >= 0 {
            if self.exponent > 40 {
                return write!(
                    f,
                    "{sign}{}{}E+{}",
                    &digits[..1],
                    dot_rest(&digits),
                    self.exponent + digits.len() as i32 - 1
                );
            }
            return write!(f, "{sign}{digits}{}", "0".repeat(self.exponent as usize));
        }
        let frac = (-self.exponent) as usize;
        if frac > 60 {
            return write!(
                f,
                "{sign}{}{}E{}",
                &digits[..1],
                dot_rest(&digits),
                self.exponent + digits.len() as i32 - 1
            );
        }
        if digits.len() > frac {
            let (i, d) = digits.split_at(digits.len() - frac);
            write!(f, "{sign}{i}.{d}")
        } else {
            write!(f, "{sign}0.{}{digits}", "0".repeat(frac - digits.len()))
        }
    }
}

fn dot_rest(digits: &str) -> String {
    if digits.len() > 1 {
        format!(".{}", &digits[1..])
    } else {
        String::new()
    }
}

/// A DynamoDB attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// String.
    S(String),
    /// Number.
    N(Decimal),
    /// Binary.
    B(Bytes),
    /// String set (no duplicates, not empty).
    Ss(Vec<String>),
    /// Number set.
    Ns(Vec<Decimal>),
    /// Binary set.
    Bs(Vec<Bytes>),
    /// Map.
    M(Item),
    /// List.
    L(Vec<AttrValue>),
    /// Null.
    Null,
    /// Boolean.
    Bool(bool),
}

impl AttrValue {
    /// The type descriptor (`S`, `N`, `B`, `SS`, `NS`, `BS`, `M`, `L`, `NULL`, `BOOL`).
    pub fn type_name(&self) -> &'static str {
        match self {
            AttrValue::S(_) => "S",
            AttrValue::N(_) => "N",
            AttrValue::B(_) => "B",
            AttrValue::Ss(_) => "SS",
            AttrValue::Ns(_) => "NS",
            AttrValue::Bs(_) => "BS",
            AttrValue::M(_) => "M",
            AttrValue::L(_) => "L",
            AttrValue::Null => "NULL",
            AttrValue::Bool(_) => "BOOL",
        }
    }

    /// Approximate stored size in bytes, as DynamoDB counts it.
    pub fn size(&self) -> usize {
        match self {
            AttrValue::S(s) => s.len(),
            AttrValue::N(n) => n.size(),
            AttrValue::B(b) => b.len(),
            AttrValue::Ss(v) => v.iter().map(String::len).sum(),
            AttrValue::Ns(v) => v.iter().map(Decimal::size).sum(),
            AttrValue::Bs(v) => v.iter().map(Bytes::len).sum(),
            AttrValue::M(m) => 3 + m.iter().map(|(k, v)| k.len() + v.size() + 1).sum::<usize>(),
            AttrValue::L(l) => 3 + l.iter().map(|v| v.size() + 1).sum::<usize>(),
            AttrValue::Null | AttrValue::Bool(_) => 1,
        }
    }

    /// Parses the wire form: an object with exactly one type key.
    pub fn from_json(value: &Value) -> Result<AttrValue, ApiError> {
        let obj = value
            .as_object()
            .ok_or_else(|| ApiError::serialization("An AttributeValue must be an object"))?;
        if obj.len() != 1 {
            return Err(ApiError::validation(format!(
                "Supplied AttributeValue has {} types; exactly one of S, N, B, SS, NS, BS, M, L, NULL, BOOL is required",
                obj.len()
            )));
        }
        let Some((kind, v)) = obj.iter().next() else {
            return Err(ApiError::validation("Supplied AttributeValue is empty"));
        };
        let bad =
            || ApiError::serialization(format!("Invalid value for AttributeValue type {kind}"));
        let str_of = |v: &Value| v.as_str().map(str::to_owned).ok_or_else(bad);
        let num_of = |v: &Value| -> Result<Decimal, ApiError> {
            let s = v.as_str().ok_or_else(bad)?;
            Decimal::parse(s).ok_or_else(|| {
                ApiError::validation(format!(
                    "The parameter cannot be converted to a numeric value: {s}"
                ))
            })
        };
        let bin_of = |v: &Value| -> Result<Bytes, ApiError> {
            let s = v.as_str().ok_or_else(bad)?;
            STANDARD.decode(s).map(Bytes::from).map_err(|_| bad())
        };
        let list = |v: &Value| v.as_array().cloned().ok_or_else(bad);
        let set_check = |len: usize, dedup: usize, name: &str| -> Result<(), ApiError> {
            if len == 0 {
                return Err(ApiError::validation(format!(
                    "One or more parameter values were invalid: An {name} set  may not be empty"
                )));
            }
            if dedup != len {
                return Err(ApiError::validation(
                    "One or more parameter values were invalid: Input collection contains duplicates",
                ));
            }
            Ok(())
        };
        Ok(match kind.as_str() {
            "S" => AttrValue::S(str_of(v)?),
            "N" => AttrValue::N(num_of(v)?),
            "B" => AttrValue::B(bin_of(v)?),
            "SS" => {
                let items: Vec<String> = list(v)?.iter().map(str_of).collect::<Result<_, _>>()?;
                let mut d = items.clone();
                d.sort();
                d.dedup();
                set_check(items.len(), d.len(), "string")?;
                AttrValue::Ss(items)
            }
            "NS" => {
                let items: Vec<Decimal> = list(v)?.iter().map(num_of).collect::<Result<_, _>>()?;
                let mut d = items.clone();
                d.sort();
                d.dedup();
                set_check(items.len(), d.len(), "number")?;
                AttrValue::Ns(items)
            }
            "BS" => {
                let items: Vec<Bytes> = list(v)?.iter().map(bin_of).collect::<Result<_, _>>()?;
                let mut d = items.clone();
                d.sort();
                d.dedup();
                set_check(items.len(), d.len(), "binary")?;
                AttrValue::Bs(items)
            }
            "M" => AttrValue::M(item_from_json(v)?),
            "L" => AttrValue::L(
                list(v)?
                    .iter()
                    .map(AttrValue::from_json)
                    .collect::<Result<_, _>>()?,
            ),
            "NULL" => match v.as_bool() {
                Some(true) => AttrValue::Null,
                _ => {
                    return Err(ApiError::validation(
                        "One or more parameter values were invalid: Null attribute value types must have the value of true",
                    ));
                }
            },
            "BOOL" => AttrValue::Bool(v.as_bool().ok_or_else(bad)?),
            other => {
                return Err(ApiError::serialization(format!(
                    "Unknown AttributeValue type {other}"
                )));
            }
        })
    }

    /// The wire form.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        let (k, v) = match self {
            AttrValue::S(s) => ("S", Value::from(s.as_str())),
            AttrValue::N(n) => ("N", Value::from(n.to_string())),
            AttrValue::B(b) => ("B", Value::from(STANDARD.encode(b))),
            AttrValue::Ss(v) => ("SS", Value::from(v.clone())),
            AttrValue::Ns(v) => (
                "NS",
                Value::from(v.iter().map(|n| n.to_string()).collect::<Vec<_>>()),
            ),
            AttrValue::Bs(v) => (
                "BS",
                Value::from(v.iter().map(|b| STANDARD.encode(b)).collect::<Vec<_>>()),
            ),
            AttrValue::M(item) => ("M", item_to_json(item)),
            AttrValue::L(l) => (
                "L",
                Value::from(l.iter().map(AttrValue::to_json).collect::<Vec<_>>()),
            ),
            AttrValue::Null => ("NULL", Value::from(true)),
            AttrValue::Bool(b) => ("BOOL", Value::from(*b)),
        };
        m.insert(k.to_owned(), v);
        Value::Object(m)
    }
}

/// Parses an item (a JSON object of attribute values).
pub fn item_from_json(value: &Value) -> Result<Item, ApiError> {
    item_from_map(
        value
            .as_object()
            .ok_or_else(|| ApiError::serialization("An item must be an object"))?,
    )
}

/// Parses an item from its attributes' wire values.
pub fn item_from_map(attrs: &serde_json::Map<String, Value>) -> Result<Item, ApiError> {
    attrs
        .iter()
        .map(|(k, v)| Ok((k.clone(), AttrValue::from_json(v)?)))
        .collect()
}

/// The wire form of an item.
pub fn item_to_json(item: &Item) -> Value {
    Value::Object(item.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
}

/// Stored size of an item.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + v.size()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).expect(s)
    }

    #[test]
    fn decimals_are_exact() {
        assert_eq!(d("1.50").to_string(), "1.5");
        assert_eq!(d("-0.001").to_string(), "-0.001");
        assert_eq!(d("1e3").to_string(), "1000");
        assert_eq!(
            d("0.1").checked_add(d("0.2")).map(|x| x.to_string()),
            Some("0.3".into())
        );
        assert_eq!(
            d("99999999999999999999999999999999999999").checked_add(d("0.1")),
            None,
            "39 significant digits is too many"
        );
        assert_eq!(
            d("99999999999999999999999999999999999999")
                .checked_add(d("1"))
                .map(|x| x.to_string()),
            Some("100000000000000000000000000000000000000".into()),
            "10^38 has one significant digit"
        );
        assert!(d("10") > d("9"));
        assert!(d("-10") < d("-9"));
        assert!(d("0.5") < d("1"));
        assert!(d("-0.5") > d("-1"));
        assert_eq!(d("100"), d("1e2"));
        assert!(Decimal::parse("1.2.3").is_none());
        assert!(Decimal::parse("abc").is_none());
        assert!(Decimal::parse("").is_none());
        let big = "123456789012345678901234567890.12345678";
        assert_eq!(d(big).to_string(), big);
    }
}
