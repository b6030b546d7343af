//! Compiles `proto/aggregation.proto` with the pure-Rust `protox` front end, so no system
//! `protoc` is needed on a fresh machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/aggregation.proto");
    let fds = protox::compile(["aggregation.proto"], ["proto"])?;
    let mut config = prost_build::Config::new();
    // Payloads decode as `Bytes` slices of the input: no copy per user record.
    config.bytes(["."]);
    config.compile_fds(fds)?;
    Ok(())
}
