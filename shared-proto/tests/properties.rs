//! Property tests of the aggregation codec.

use bytes::Bytes;
use proptest::prelude::*;
use shared_proto::{Aggregator, deaggregate, validate_record};

fn partition_key() -> impl Strategy<Value = String> {
    // 1..=256 characters, including multi-byte ones.
    proptest::string::string_regex("[a-zA-Z0-9_\\-éключ🔑]{1,256}").expect("regex")
}

fn explicit_hash_key() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(any::<u128>().prop_map(|v| v.to_string()))
}

fn user_record() -> impl Strategy<Value = (String, Option<String>, Vec<u8>)> {
    (
        // A small pool of keys so that table deduplication is exercised.
        prop_oneof![partition_key(), (0u8..4).prop_map(|i| format!("key-{i}"))],
        explicit_hash_key(),
        proptest::collection::vec(any::<u8>(), 0..600),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trip_and_exact_size(records in proptest::collection::vec(user_record(), 1..60)) {
        let mut agg = Aggregator::new();
        for (pk, ehk, data) in &records {
            let predicted = agg.encoded_len_with(pk, ehk.as_deref(), data.len());
            let after = agg.add(pk, ehk.as_deref(), data).expect("valid record");
            prop_assert_eq!(predicted, after);
        }
        let predicted = agg.encoded_len();
        let bytes = agg.finish();
        prop_assert_eq!(bytes.len(), predicted);
        prop_assert!(agg.is_empty());
        let decoded = deaggregate(&bytes).expect("round trip");
        prop_assert_eq!(decoded.len(), records.len());
        for (i, (got, (pk, ehk, data))) in decoded.iter().zip(&records).enumerate() {
            prop_assert_eq!(&got.partition_key, pk);
            prop_assert_eq!(&got.explicit_hash_key, ehk);
            prop_assert_eq!(got.data.as_ref(), data.as_slice());
            prop_assert_eq!(got.sub_sequence_number, i as u64);
            let expected_hash = validate_record(pk, ehk.as_deref(), data.len()).expect("valid");
            prop_assert_eq!(got.hash_key().expect("valid"), expected_hash);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = deaggregate(&Bytes::from(bytes));
    }

    #[test]
    fn arbitrary_bytes_after_magic_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut data = shared_proto::AGGREGATION_MAGIC.to_vec();
        data.extend_from_slice(&bytes);
        let _ = deaggregate(&Bytes::from(data));
    }

    #[test]
    fn mutated_aggregates_never_panic(
        records in proptest::collection::vec(user_record(), 1..10),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut agg = Aggregator::new();
        for (pk, ehk, data) in &records {
            agg.add(pk, ehk.as_deref(), data).expect("valid record");
        }
        let mut bytes = agg.finish().to_vec();
        for (index, value) in flips {
            let i = index.index(bytes.len());
            bytes[i] ^= value | 1;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        // A flipped byte almost always breaks the digest; whatever happens, no panic, and a
        // success must still be internally consistent.
        if let Ok(decoded) = deaggregate(&Bytes::from(bytes)) {
            prop_assert!(!decoded.is_empty());
        }
    }

    /// Re-signing mutated protobuf bodies with a correct MD5 reaches the protobuf and index
    /// checks instead of stopping at the digest.
    #[test]
    fn mutated_bodies_with_valid_digest_never_panic(
        records in proptest::collection::vec(user_record(), 1..10),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        use md5::{Digest, Md5};
        let mut agg = Aggregator::new();
        for (pk, ehk, data) in &records {
            agg.add(pk, ehk.as_deref(), data).expect("valid record");
        }
        let bytes = agg.finish();
        let mut body = bytes[4..bytes.len() - 16].to_vec();
        for (index, value) in flips {
            let i = index.index(body.len());
            body[i] ^= value | 1;
        }
        let mut data = shared_proto::AGGREGATION_MAGIC.to_vec();
        data.extend_from_slice(&body);
        data.extend_from_slice(&Md5::digest(&body));
        let _ = deaggregate(&Bytes::from(data));
    }
}
