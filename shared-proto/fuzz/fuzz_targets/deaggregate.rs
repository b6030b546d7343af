//! Feeds arbitrary bytes to the deaggregator three ways: raw, behind the aggregation magic, and
//! as a protobuf body framed with the magic and a correct MD5 (so the fuzzer reaches the
//! protobuf and table-index checks instead of stopping at the digest).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use md5::{Digest, Md5};

fuzz_target!(|data: &[u8]| {
    let _ = shared_proto::deaggregate(&Bytes::copy_from_slice(data));
    let mut framed = shared_proto::AGGREGATION_MAGIC.to_vec();
    framed.extend_from_slice(data);
    let _ = shared_proto::deaggregate(&Bytes::from(framed.clone()));
    framed.extend_from_slice(&Md5::digest(data));
    if let Ok(records) = shared_proto::deaggregate(&Bytes::from(framed)) {
        assert!(!records.is_empty());
    }
});
