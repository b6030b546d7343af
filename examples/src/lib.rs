//! Shared pieces of the example programs: building SDK clients for an endpoint or for AWS.

pub mod consumer_bench;
pub mod e2e_bench;
pub mod engine_bench;
pub mod figures;
pub mod pipeline;
pub mod svg;

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;

/// An SDK configuration: the default AWS chain when `endpoint` is `None`, else that endpoint
/// with `region` (default `us-east-1`) and, when the environment has no credentials, static
/// test credentials (the bundled engine does not check signatures).
pub async fn sdk_config(endpoint: Option<&str>, region: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(endpoint) = endpoint {
        loader = loader
            .endpoint_url(endpoint)
            .region(Region::new(region.unwrap_or("us-east-1").to_owned()));
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader
                .credentials_provider(Credentials::new("test", "test", None, None, "examples"));
        }
    } else if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    loader.load().await
}

/// Creates `stream` with `shards` shards unless it exists.
pub async fn ensure_stream(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    shards: i32,
) -> Result<(), String> {
    match client
        .create_stream()
        .stream_name(stream)
        .shard_count(shards)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            use aws_sdk_kinesis::error::ProvideErrorMetadata;
            if e.code() == Some("ResourceInUseException") {
                Ok(())
            } else {
                Err(format!(
                    "creating stream {stream}: {}",
                    e.message().unwrap_or(&format!("{e:?}"))
                ))
            }
        }
    }
}

/// The README's code blocks, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
