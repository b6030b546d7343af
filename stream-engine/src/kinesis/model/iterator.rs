//! Shard iterators: signed, expiring tokens naming a stream, a shard and a position.

use super::*;

pub(super) struct ParsedIterator {
    pub(super) stream_name: String,
    pub(super) stream_id: u64,
    pub(super) shard: u64,
    pub(super) pos: u64,
    pub(super) issued_ms: u64,
}

pub(super) fn mac(secret: &[u8; 16], text: &str) -> String {
    let mut h = Md5::new();
    h.update(secret);
    h.update(text.as_bytes());
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl ParsedIterator {
    pub(super) fn encode(&self, secret: &[u8; 16]) -> String {
        let body = format!(
            "{}|{}|{}|{}|{}",
            self.stream_id, self.shard, self.pos, self.issued_ms, self.stream_name
        );
        let mac = mac(secret, &body);
        URL_SAFE_NO_PAD.encode(format!("{mac}|{body}"))
    }

    pub(super) fn decode(text: &str, secret: &[u8; 16]) -> Result<Self, ApiError> {
        let bad = || {
            ApiError::invalid_argument(format!(
                "Invalid ShardIterator: {}",
                text.chars().take(64).collect::<String>()
            ))
        };
        let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let (given_mac, body) = raw.split_once('|').ok_or_else(bad)?;
        if mac(secret, body) != given_mac {
            return Err(bad());
        }
        let mut parts = body.splitn(5, '|');
        let mut num = || -> Result<u64, ApiError> {
            parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)
        };
        let stream_id = num()?;
        let shard = num()?;
        let pos = num()?;
        let issued_ms = num()?;
        let stream_name = parts.next().ok_or_else(bad)?.to_owned();
        Ok(ParsedIterator {
            stream_name,
            stream_id,
            shard,
            pos,
            issued_ms,
        })
    }
}
