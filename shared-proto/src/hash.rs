//! Hash-key math: how Kinesis maps a partition key to a shard.
//!
//! A record's hash key is its explicit hash key when given, otherwise the MD5 digest of the
//! partition key's UTF-8 bytes read as a big-endian unsigned 128-bit integer. Shards own
//! inclusive ranges of hash keys, written as decimal strings on the wire.

use md5::{Digest, Md5};
use std::fmt;
use std::str::FromStr;

/// Errors of parsing a decimal hash key or building a hash-key range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashKeyError {
    /// The text was empty.
    #[error("hash key is empty")]
    Empty,
    /// The text held something other than the digits 0-9.
    #[error("hash key {0:?} is not a decimal number")]
    NotDecimal(String),
    /// The number is larger than 2^128 - 1.
    #[error("hash key {0:?} is out of range 0..=340282366920938463463374607431768211455")]
    OutOfRange(String),
    /// A range whose start is above its end.
    #[error("hash-key range start {start} is above its end {end}")]
    InvertedRange {
        /// Start of the rejected range.
        start: u128,
        /// End of the rejected range.
        end: u128,
    },
}

/// The hash key of a partition key: MD5 of its UTF-8 bytes as a big-endian `u128`.
pub fn partition_key_hash(partition_key: &str) -> u128 {
    let digest = Md5::digest(partition_key.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest);
    u128::from_be_bytes(bytes)
}

/// Parses a decimal hash key in `0 ..= 2^128 - 1` (digits only; no sign, no spaces).
pub fn parse_hash_key(text: &str) -> Result<u128, HashKeyError> {
    if text.is_empty() {
        return Err(HashKeyError::Empty);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HashKeyError::NotDecimal(truncate(text)));
    }
    // Only digits remain, so the one way `parse` can fail is overflow.
    text.parse::<u128>()
        .map_err(|_| HashKeyError::OutOfRange(truncate(text)))
}

fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

/// An inclusive range of hash keys owned by a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HashKeyRange {
    start: u128,
    end: u128,
}

impl HashKeyRange {
    /// The whole key space `0 ..= 2^128 - 1`.
    pub const FULL: HashKeyRange = HashKeyRange {
        start: 0,
        end: u128::MAX,
    };

    /// A range `start ..= end`; fails when `start > end`.
    pub fn new(start: u128, end: u128) -> Result<Self, HashKeyError> {
        if start > end {
            return Err(HashKeyError::InvertedRange { start, end });
        }
        Ok(HashKeyRange { start, end })
    }

    /// Parses the decimal strings that Kinesis uses for `StartingHashKey`/`EndingHashKey`.
    pub fn parse(start: &str, end: &str) -> Result<Self, HashKeyError> {
        Self::new(parse_hash_key(start)?, parse_hash_key(end)?)
    }

    /// First hash key of the range.
    pub fn start(&self) -> u128 {
        self.start
    }

    /// Last hash key of the range (inclusive).
    pub fn end(&self) -> u128 {
        self.end
    }

    /// Whether `hash_key` lies in the range.
    pub fn contains(&self, hash_key: u128) -> bool {
        self.start <= hash_key && hash_key <= self.end
    }

    /// Whether `other` starts right after this range ends (the two can be merged).
    pub fn is_adjacent_before(&self, other: &HashKeyRange) -> bool {
        self.end.checked_add(1) == Some(other.start)
    }

    /// Splits the whole key space into `count` contiguous ranges the way Kinesis does for a
    /// new stream: every range but the last holds `floor(2^128 / count)` keys, the last one
    /// ends at `2^128 - 1`. Returns an empty list for `count == 0`.
    pub fn split_evenly(count: u32) -> Vec<HashKeyRange> {
        Self::FULL.split_into(count)
    }

    /// Splits this range into `count` contiguous parts of equal size (the last takes the rest);
    /// fewer parts when the range holds fewer than `count` keys.
    pub fn split_into(&self, count: u32) -> Vec<HashKeyRange> {
        if count == 0 {
            return Vec::new();
        }
        let width_minus_one = self.end - self.start; // number of keys - 1
        if count == 1 {
            return vec![*self];
        }
        // Never more parts than keys, so that no part is empty.
        let n = u128::from(count).min(width_minus_one.saturating_add(1));
        if n == 1 {
            return vec![*self];
        }
        // floor((width_minus_one + 1) / n) without overflowing when the range is FULL.
        let step = width_minus_one / n + u128::from(width_minus_one % n == n - 1);
        (0..n)
            .map(|i| {
                let start = self.start + i * step;
                let end = if i == n - 1 {
                    self.end
                } else {
                    start + step - 1
                };
                HashKeyRange { start, end }
            })
            .collect()
    }
}

impl fmt::Display for HashKeyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..={}", self.start, self.end)
    }
}

impl FromStr for HashKeyRange {
    type Err = HashKeyError;

    /// Parses `START..=END` as printed by [`Display`](fmt::Display).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (start, end) = s
            .split_once("..=")
            .ok_or_else(|| HashKeyError::NotDecimal(truncate(s)))?;
        Self::parse(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_matches_kinesis_boundaries() {
        let four = HashKeyRange::split_evenly(4);
        assert_eq!(four[0].end(), 85070591730234615865843651857942052863);
        assert_eq!(four[3].end(), u128::MAX);
        let three = HashKeyRange::split_evenly(3);
        assert_eq!(three[0].end(), 113427455640312821154458202477256070484);
        assert_eq!(three[1].start(), 113427455640312821154458202477256070485);
        for parts in [1u32, 2, 3, 7, 64, 1000] {
            let r = HashKeyRange::split_evenly(parts);
            assert_eq!(r.len(), parts as usize);
            assert_eq!(r[0].start(), 0);
            assert_eq!(r.last().map(|r| r.end()), Some(u128::MAX));
            for w in r.windows(2) {
                assert!(w[0].is_adjacent_before(&w[1]));
            }
        }
    }

    #[test]
    fn parse_rejects_bad_text() {
        assert_eq!(parse_hash_key(""), Err(HashKeyError::Empty));
        assert!(matches!(
            parse_hash_key("-1"),
            Err(HashKeyError::NotDecimal(_))
        ));
        assert!(matches!(
            parse_hash_key("1 "),
            Err(HashKeyError::NotDecimal(_))
        ));
        assert!(matches!(
            parse_hash_key("340282366920938463463374607431768211456"),
            Err(HashKeyError::OutOfRange(_))
        ));
        assert_eq!(
            parse_hash_key("340282366920938463463374607431768211455"),
            Ok(u128::MAX)
        );
        assert!(HashKeyRange::new(2, 1).is_err());
        let r: HashKeyRange = "5..=10".parse().expect("valid");
        assert!(r.contains(5) && r.contains(10) && !r.contains(11) && !r.contains(4));
    }
}
