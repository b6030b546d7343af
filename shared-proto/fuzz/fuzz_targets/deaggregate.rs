//! Feeds arbitrary bytes to the deaggregator, raw and behind the aggregation magic.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = shared_proto::deaggregate(&Bytes::copy_from_slice(data));
    let mut framed = shared_proto::AGGREGATION_MAGIC.to_vec();
    framed.extend_from_slice(data);
    let _ = shared_proto::deaggregate(&Bytes::from(framed));
});
