//! The `application/vnd.amazon.eventstream` message framing of `SubscribeToShard` answers:
//! a prelude (total length, headers length, CRC32 of both), string headers, the payload and a
//! CRC32 of everything before it. All integers big-endian.

const STRING: u8 = 7;

/// One message with string headers.
pub(crate) fn message(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        // Header names are at most 255 bytes and values at most 32 767: ours are constants.
        h.push(name.len().min(255) as u8);
        h.extend_from_slice(&name.as_bytes()[..name.len().min(255)]);
        h.push(STRING);
        let v = &value.as_bytes()[..value.len().min(32_767)];
        h.extend_from_slice(&(v.len() as u16).to_be_bytes());
        h.extend_from_slice(v);
    }
    let total = 12 + h.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// An event of type `event_type` with a JSON payload.
pub(crate) fn event(event_type: &str, json: &[u8]) -> Vec<u8> {
    message(
        &[
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        json,
    )
}

/// An exception message (`:exception-type` = the error code) with `{"message": ..}`.
pub(crate) fn exception(code: &str, message_text: &str) -> Vec<u8> {
    let payload = serde_json::json!({ "message": message_text }).to_string();
    message(
        &[
            (":exception-type", code),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        payload.as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_has_its_lengths_and_checksums() {
        let m = event("SubscribeToShardEvent", b"{}");
        let total = u32::from_be_bytes(m[0..4].try_into().unwrap()) as usize;
        let headers = u32::from_be_bytes(m[4..8].try_into().unwrap()) as usize;
        assert_eq!(total, m.len());
        assert_eq!(
            u32::from_be_bytes(m[8..12].try_into().unwrap()),
            crc32fast::hash(&m[..8])
        );
        assert_eq!(&m[12 + headers..total - 4], b"{}");
        assert_eq!(
            u32::from_be_bytes(m[total - 4..].try_into().unwrap()),
            crc32fast::hash(&m[..total - 4])
        );
        // The first header: name length, name, type 7 (string), value length, value.
        assert_eq!(m[12] as usize, ":event-type".len());
        assert_eq!(&m[13..24], b":event-type");
        assert_eq!(m[24], 7);
    }
}
