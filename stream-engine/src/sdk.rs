//! Ready-made SDK clients for an engine (the default `sdk` feature).

use crate::Engine;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;

impl Engine {
    /// An SDK configuration for this engine: its endpoint, region, static test credentials,
    /// and the SDK's standard retry policy (3 attempts).
    pub fn sdk_config(&self) -> SdkConfig {
        sdk_config(
            &self.endpoint_url(),
            &self.state.config.region,
            RetryConfig::standard(),
        )
    }

    /// Like [`Engine::sdk_config`] but with the SDK's own retries disabled, for code that owns
    /// its retry policy.
    pub fn sdk_config_without_retries(&self) -> SdkConfig {
        sdk_config(
            &self.endpoint_url(),
            &self.state.config.region,
            RetryConfig::disabled(),
        )
    }

    /// A Kinesis client for this engine (standard retries).
    pub fn kinesis_client(&self) -> aws_sdk_kinesis::Client {
        aws_sdk_kinesis::Client::new(&self.sdk_config())
    }

    /// A Kinesis client for this engine with retries disabled.
    pub fn kinesis_client_without_retries(&self) -> aws_sdk_kinesis::Client {
        aws_sdk_kinesis::Client::new(&self.sdk_config_without_retries())
    }

    /// A DynamoDB client for this engine (standard retries).
    pub fn dynamodb_client(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk_config())
    }

    /// A DynamoDB client for this engine with retries disabled.
    pub fn dynamodb_client_without_retries(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk_config_without_retries())
    }
}

/// An SDK configuration pointing at `endpoint` with static test credentials.
pub fn sdk_config(endpoint: &str, region: &str, retry: RetryConfig) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDSTREAMENGINE",
            "stream-engine-secret",
            None,
            None,
            "stream-engine",
        )))
        .retry_config(retry)
        .build()
}
