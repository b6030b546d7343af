//! Kinesis over CBOR (`application/x-amz-cbor-1.1`), the Java SDK v2's default for Kinesis
//! (and so the Java KPL/KCL's): requests are decoded into the JSON the API serves, replies
//! encoded back. Blobs are CBOR byte strings (base64 text in JSON) and timestamps are CBOR
//! tag 1 holding epoch **milliseconds** (as the AWS SDKs' CBOR protocol writes and reads them;
//! JSON carries epoch seconds), both ways.

use crate::error::ApiError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ciborium::Value as Cbor;
use serde_json::{Map, Number, Value};

/// The content type of Kinesis over CBOR.
pub const CONTENT_TYPE: &str = "application/x-amz-cbor-1.1";

/// Reply members that are blobs.
const BLOB_FIELDS: &[&str] = &["Data"];
/// Reply members that are timestamps.
const TIMESTAMP_FIELDS: &[&str] = &[
    "ApproximateArrivalTimestamp",
    "StreamCreationTimestamp",
    "ConsumerCreationTimestamp",
];

/// Whether a request's content type is CBOR.
pub fn is_cbor(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(CONTENT_TYPE))
}

/// A CBOR request body as the JSON body the API reads.
pub fn request_to_json(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    if body.is_empty() {
        return Ok(b"{}".to_vec());
    }
    let value: Cbor = ciborium::from_reader(body)
        .map_err(|e| ApiError::serialization(format!("Malformed CBOR request body: {e}")))?;
    let json = to_json(value)?;
    serde_json::to_vec(&json).map_err(|e| ApiError::internal(e.to_string()))
}

/// A JSON reply (or error) body as CBOR.
pub fn reply_to_cbor(json: &[u8]) -> Result<Vec<u8>, ApiError> {
    let value: Value = if json.is_empty() {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(json).map_err(|e| ApiError::internal(e.to_string()))?
    };
    let mut out = Vec::new();
    ciborium::into_writer(&to_cbor(None, &value), &mut out)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(out)
}

fn to_json(value: Cbor) -> Result<Value, ApiError> {
    Ok(match value {
        Cbor::Null => Value::Null,
        Cbor::Bool(b) => Value::Bool(b),
        Cbor::Integer(i) => {
            let i = i128::from(i);
            match i64::try_from(i) {
                Ok(n) => Value::from(n),
                Err(_) => Value::from(i as f64),
            }
        }
        Cbor::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Cbor::Bytes(b) => Value::String(STANDARD.encode(b)),
        Cbor::Text(t) => Value::String(t),
        Cbor::Array(items) => {
            Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?)
        }
        Cbor::Map(entries) => {
            let mut m = Map::new();
            for (k, v) in entries {
                let Cbor::Text(k) = k else {
                    return Err(ApiError::serialization("CBOR map keys must be text"));
                };
                m.insert(k, to_json(v)?);
            }
            Value::Object(m)
        }
        // Tag 1: epoch milliseconds, as the seconds the JSON API takes.
        Cbor::Tag(1, inner) => {
            let ms = match *inner {
                Cbor::Integer(i) => i128::from(i) as f64,
                Cbor::Float(f) => f,
                _ => return Err(ApiError::serialization("a timestamp must be a number")),
            };
            Number::from_f64(ms / 1000.0).map_or(Value::Null, Value::Number)
        }
        Cbor::Tag(_, inner) => to_json(*inner)?,
        _ => return Err(ApiError::serialization("unsupported CBOR value")),
    })
}

fn to_cbor(key: Option<&str>, value: &Value) -> Cbor {
    match value {
        Value::Null => Cbor::Null,
        Value::Bool(b) => Cbor::Bool(*b),
        Value::String(s) if key.is_some_and(|k| BLOB_FIELDS.contains(&k)) => {
            match STANDARD.decode(s) {
                Ok(bytes) => Cbor::Bytes(bytes),
                Err(_) => Cbor::Text(s.clone()),
            }
        }
        Value::Number(n) if key.is_some_and(|k| TIMESTAMP_FIELDS.contains(&k)) => {
            let ms = (n.as_f64().unwrap_or(0.0) * 1000.0).round() as i64;
            Cbor::Tag(1, Box::new(Cbor::Integer(ms.into())))
        }
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Cbor::Integer(i.into()),
            (None, Some(u)) => Cbor::Integer(u.into()),
            _ => Cbor::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Cbor::Text(s.clone()),
        Value::Array(items) => Cbor::Array(items.iter().map(|v| to_cbor(key, v)).collect()),
        Value::Object(m) => Cbor::Map(
            m.iter()
                .map(|(k, v)| (Cbor::Text(k.clone()), to_cbor(Some(k), v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_and_timestamps_cross_both_ways() {
        let req = Cbor::Map(vec![
            (Cbor::Text("StreamName".into()), Cbor::Text("s".into())),
            (Cbor::Text("Data".into()), Cbor::Bytes(vec![0, 1, 2])),
            (
                Cbor::Text("Timestamp".into()),
                Cbor::Tag(1, Box::new(Cbor::Integer(1500.into()))),
            ),
        ]);
        let mut bytes = Vec::new();
        ciborium::into_writer(&req, &mut bytes).expect("encode");
        let json: Value =
            serde_json::from_slice(&request_to_json(&bytes).expect("decode")).expect("json");
        assert_eq!(json["Data"], "AAEC");
        assert_eq!(json["Timestamp"], 1.5);
        let reply = br#"{"Records":[{"Data":"AAEC","ApproximateArrivalTimestamp":1.25,"SequenceNumber":"1"}],"MillisBehindLatest":0}"#;
        let cbor: Cbor =
            ciborium::from_reader(&reply_to_cbor(reply).expect("encode")[..]).expect("decode");
        let Cbor::Map(top) = cbor else { panic!("map") };
        let records = &top
            .iter()
            .find(|(k, _)| k == &Cbor::Text("Records".into()))
            .expect("records")
            .1;
        let Cbor::Array(records) = records else {
            panic!("array")
        };
        let Cbor::Map(r) = &records[0] else {
            panic!("map")
        };
        let get = |name: &str| {
            &r.iter()
                .find(|(k, _)| k == &Cbor::Text(name.into()))
                .expect(name)
                .1
        };
        assert_eq!(get("Data"), &Cbor::Bytes(vec![0, 1, 2]));
        assert_eq!(
            get("ApproximateArrivalTimestamp"),
            &Cbor::Tag(1, Box::new(Cbor::Integer(1250.into())))
        );
        assert_eq!(get("SequenceNumber"), &Cbor::Text("1".into()));
        assert!(
            request_to_json(b"\xff\x00").is_err(),
            "malformed CBOR is an error, not a panic"
        );
    }
}
