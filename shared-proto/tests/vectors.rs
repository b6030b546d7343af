//! The shared test vectors of `../shared/vectors` (copied into `tests/vectors/` so a clone of
//! the repository is self-contained).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::Deserialize;
use shared_proto::{Aggregator, deaggregate, parse_hash_key, partition_key_hash};

#[derive(Deserialize)]
struct AggregationFile {
    cases: Vec<AggregationCase>,
}

#[derive(Deserialize)]
struct AggregationCase {
    name: String,
    user_records: Option<Vec<UserRecord>>,
    aggregated_base64: String,
    is_aggregate: bool,
}

#[derive(Deserialize)]
struct UserRecord {
    partition_key: String,
    explicit_hash_key: Option<String>,
    data: String,
}

#[derive(Deserialize)]
struct HashKeyFile {
    cases: Vec<HashKeyCase>,
}

#[derive(Deserialize)]
struct HashKeyCase {
    partition_key: String,
    hash_key: String,
}

fn aggregation_cases() -> Vec<AggregationCase> {
    let text = include_str!("vectors/aggregation.json");
    serde_json::from_str::<AggregationFile>(text)
        .expect("vector file parses")
        .cases
}

#[test]
fn decoding_matches_every_vector() {
    let cases = aggregation_cases();
    assert_eq!(cases.len(), 8);
    for case in cases {
        let bytes = Bytes::from(STANDARD.decode(&case.aggregated_base64).expect("base64"));
        let result = deaggregate(&bytes);
        if !case.is_aggregate {
            assert!(result.is_err(), "{}: must not be an aggregate", case.name);
            continue;
        }
        let decoded = result.unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let expected = case.user_records.expect("user records of a positive case");
        assert_eq!(decoded.len(), expected.len(), "{}", case.name);
        for (i, (got, want)) in decoded.iter().zip(&expected).enumerate() {
            assert_eq!(got.partition_key, want.partition_key, "{} #{i}", case.name);
            assert_eq!(
                got.explicit_hash_key, want.explicit_hash_key,
                "{} #{i}",
                case.name
            );
            assert_eq!(
                got.data.as_ref(),
                STANDARD.decode(&want.data).expect("base64").as_slice(),
                "{} #{i}",
                case.name
            );
            assert_eq!(got.sub_sequence_number, i as u64);
        }
    }
}

#[test]
fn encoding_is_byte_identical_to_every_vector() {
    let mut positive = 0;
    for case in aggregation_cases().into_iter().filter(|c| c.is_aggregate) {
        let mut agg = Aggregator::new();
        for record in case.user_records.as_deref().unwrap_or_default() {
            let data = STANDARD.decode(&record.data).expect("base64");
            let predicted = agg.encoded_len_with(
                &record.partition_key,
                record.explicit_hash_key.as_deref(),
                data.len(),
            );
            let after = agg
                .add(
                    &record.partition_key,
                    record.explicit_hash_key.as_deref(),
                    &data,
                )
                .expect("valid record");
            assert_eq!(predicted, after, "{}", case.name);
        }
        let predicted = agg.encoded_len();
        let bytes = agg.finish();
        assert_eq!(bytes.len(), predicted, "{}", case.name);
        assert_eq!(
            STANDARD.encode(&bytes),
            case.aggregated_base64,
            "{}",
            case.name
        );
        positive += 1;
    }
    assert_eq!(positive, 4);
}

#[test]
fn hash_keys_match_every_vector() {
    let file: HashKeyFile =
        serde_json::from_str(include_str!("vectors/hash_keys.json")).expect("vector file parses");
    assert_eq!(file.cases.len(), 7);
    for case in file.cases {
        let expected = parse_hash_key(&case.hash_key).expect("decimal");
        assert_eq!(
            partition_key_hash(&case.partition_key),
            expected,
            "{}",
            case.partition_key
        );
        assert_eq!(expected.to_string(), case.hash_key);
    }
}
