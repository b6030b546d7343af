//! HTTP-level faults: malformed bodies and HTML 5xx pages (wiremock, which the engine cannot
//! produce) and dropped connections (the engine's refusing outage).

mod common;

use common::*;
use kpl::{Producer, ProducerConfig, UserRecord};
use std::time::Duration;
use stream_engine::OutageMode;
use wiremock::matchers::{header, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn config() -> ProducerConfig {
    ProducerConfig::default()
        .aggregation_enabled(false)
        .retry_min_backoff(Duration::from_millis(10))
        .retry_max_backoff(Duration::from_millis(50))
        .request_timeout(Duration::from_secs(5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_responses_are_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("x-amz-target", "Kinesis_20131202.ListShards"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"Shards":[{"ShardId":"shardId-000000000000","HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"340282366920938463463374607431768211455"},"SequenceNumberRange":{"StartingSequenceNumber":"1"}}]}"#,
            "application/x-amz-json-1.1",
        ))
        .mount(&server)
        .await;
    let put =
        || Mock::given(method("POST")).and(header("x-amz-target", "Kinesis_20131202.PutRecords"));
    put()
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw("{\"Records\": [trunc", "application/x-amz-json-1.1"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    put()
        .respond_with(
            ResponseTemplate::new(502).set_body_raw("<html>Bad Gateway</html>", "text/html"),
        )
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    put()
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"FailedRecordCount":0,"Records":[{"ShardId":"shardId-000000000000","SequenceNumber":"49590338271490256608559692538361571095921575989136588898"}]}"#,
            "application/x-amz-json-1.1",
        ))
        .with_priority(3)
        .mount(&server)
        .await;
    let sdk = stream_engine::sdk_config(
        &server.uri(),
        "us-east-1",
        aws_config::retry::RetryConfig::standard(),
    );
    let client = aws_sdk_kinesis::Client::new(&sdk);
    let producer = Producer::builder(client, "mocked")
        .config(config())
        .build()
        .await
        .expect("producer");
    let outcome = producer
        .send_and_wait(UserRecord::new("k", "v"))
        .await
        .expect("stored on the third attempt");
    assert_eq!(outcome.attempts.len(), 3, "{:?}", outcome.attempts);
    assert!(outcome.attempts[0].error_code.is_some());
    assert!(outcome.attempts[1].error_code.is_some());
    assert!(outcome.attempts[2].succeeded());
    assert_eq!(
        &*outcome.sequence_number,
        "49590338271490256608559692538361571095921575989136588898"
    );
    assert_eq!(producer.metrics().retries, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_retried() {
    let engine = engine(false).await;
    let k = engine.kinesis_client();
    create(&k, "resets", 1).await;
    let producer = Producer::builder(k.clone(), "resets")
        .config(config())
        .build()
        .await
        .expect("producer");
    engine
        .faults()
        .pause(Duration::from_millis(400), OutageMode::Refuse);
    let outcome = producer
        .send_and_wait(UserRecord::new("k", "v"))
        .await
        .expect("stored after the resets");
    assert!(outcome.attempts.len() >= 2, "{:?}", outcome.attempts);
    assert!(outcome.attempts[0].error_code.is_some());
}
