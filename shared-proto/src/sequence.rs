//! Kinesis sequence numbers: decimal strings of up to 56 digits (wider than `u128`), compared
//! numerically.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Why a text is not a sequence number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SequenceNumberError {
    /// The text was empty.
    #[error("sequence number is empty")]
    Empty,
    /// The text held something other than the digits 0-9.
    #[error("sequence number {0:?} is not a decimal number")]
    NotDecimal(String),
}

/// A Kinesis sequence number: a non-negative decimal integer of any length.
///
/// Ordering is numeric (shorter canonical text first, then by digits), never by `u128` or by
/// plain string comparison. Leading zeros are removed when parsing, so equal numbers compare
/// and hash equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SequenceNumber(String);

impl SequenceNumber {
    /// Parses a decimal sequence number.
    pub fn parse(text: &str) -> Result<Self, SequenceNumberError> {
        if text.is_empty() {
            return Err(SequenceNumberError::Empty);
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SequenceNumberError::NotDecimal(
                text.chars().take(80).collect(),
            ));
        }
        let trimmed = text.trim_start_matches('0');
        Ok(SequenceNumber(if trimmed.is_empty() {
            "0".to_owned()
        } else {
            trimmed.to_owned()
        }))
    }

    /// The canonical decimal text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The canonical decimal text, by value.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl From<u128> for SequenceNumber {
    fn from(value: u128) -> Self {
        SequenceNumber(value.to_string())
    }
}

impl FromStr for SequenceNumber {
    type Err = SequenceNumberError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.as_bytes().cmp(other.0.as_bytes()))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_order_beyond_u128() {
        let a = SequenceNumber::parse("49590338271490256608559692538361571095921575989136588898")
            .expect("valid");
        let b = SequenceNumber::parse("49590338271490256608559692538361571095921575989136588899")
            .expect("valid");
        let short = SequenceNumber::parse("9").expect("valid");
        assert!(a < b);
        assert!(
            short < a,
            "9 < a 56-digit number even though '9' > '4' as text"
        );
        assert_eq!(SequenceNumber::parse("007"), SequenceNumber::parse("7"));
        assert_eq!(
            SequenceNumber::parse("000").map(|s| s.into_string()),
            Ok("0".into())
        );
        assert!(SequenceNumber::parse("").is_err());
        assert!(SequenceNumber::parse("12a").is_err());
        assert!(SequenceNumber::parse("-1").is_err());
        assert_eq!(SequenceNumber::from(42u128).as_str(), "42");
    }
}
