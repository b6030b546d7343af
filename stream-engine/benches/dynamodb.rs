//! Conditional `UpdateItem` (a lease renewal) per second from 4 concurrent clients.
//!
//! `cargo bench -p stream-engine --bench dynamodb`. A lease table of 1 000 shards renewed every
//! 3 s needs about 330 renewals/s.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use std::time::Instant;
use stream_engine::{Engine, EngineConfig};

const CLIENTS: usize = 4;
const LEASES_PER_CLIENT: usize = 250;
const ROUNDS: usize = 20;

fn main() {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let engine = server_rt
        .block_on(Engine::start(EngineConfig::default(), "127.0.0.1:0"))
        .expect("engine");
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let d = engine.dynamodb_client_without_retries();
    client_rt.block_on(async {
        d.create_table()
            .table_name("bench-leases")
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("leaseKey")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("def"),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("leaseKey")
                    .key_type(KeyType::Hash)
                    .build()
                    .expect("key"),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .expect("table");
        for i in 0..CLIENTS * LEASES_PER_CLIENT {
            d.put_item()
                .table_name("bench-leases")
                .item("leaseKey", AttributeValue::S(format!("shardId-{i:012}")))
                .item(
                    "leaseOwner",
                    AttributeValue::S(format!("worker-{}", i % CLIENTS)),
                )
                .item("leaseCounter", AttributeValue::N("0".into()))
                .send()
                .await
                .expect("lease");
        }
        let start = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let d = d.clone();
            tasks.push(tokio::spawn(async move {
                for round in 0..ROUNDS {
                    for l in 0..LEASES_PER_CLIENT {
                        let i = l * CLIENTS + c;
                        d.update_item()
                            .table_name("bench-leases")
                            .key("leaseKey", AttributeValue::S(format!("shardId-{i:012}")))
                            .update_expression("SET leaseCounter = leaseCounter + :one")
                            .condition_expression("leaseCounter = :counter AND leaseOwner = :owner")
                            .expression_attribute_values(":one", AttributeValue::N("1".into()))
                            .expression_attribute_values(
                                ":counter",
                                AttributeValue::N(round.to_string()),
                            )
                            .expression_attribute_values(
                                ":owner",
                                AttributeValue::S(format!("worker-{c}")),
                            )
                            .send()
                            .await
                            .expect("renew");
                    }
                }
            }));
        }
        for t in tasks {
            t.await.expect("client");
        }
        let ops = CLIENTS * LEASES_PER_CLIENT * ROUNDS;
        println!(
            "conditional UpdateItem, {CLIENTS} clients: {:.0} ops/s ({ops} renewals)",
            ops as f64 / start.elapsed().as_secs_f64()
        );
    });
    drop(engine);
}
