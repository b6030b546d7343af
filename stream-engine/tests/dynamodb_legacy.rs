//! DynamoDB's legacy parameters, as every released KCL writes its lease table with them:
//! `Expected`, `ConditionalOperator`, `AttributeUpdates`, `ScanFilter`, `AttributesToGet`.

mod common;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeAction, AttributeDefinition, AttributeValue as AV, AttributeValueUpdate, BillingMode,
    ComparisonOperator, Condition, ConditionalOperator, ExpectedAttributeValue, KeySchemaElement,
    KeyType, ReturnValue, ScalarAttributeType,
};
use common::{code, engine};
use std::collections::HashMap;

fn s(v: &str) -> AV {
    AV::S(v.to_owned())
}

fn n(v: &str) -> AV {
    AV::N(v.to_owned())
}

fn value(v: AV) -> ExpectedAttributeValue {
    ExpectedAttributeValue::builder().value(v).build()
}

fn absent() -> ExpectedAttributeValue {
    ExpectedAttributeValue::builder().exists(false).build()
}

fn put(v: AV) -> AttributeValueUpdate {
    AttributeValueUpdate::builder()
        .action(AttributeAction::Put)
        .value(v)
        .build()
}

fn add(v: AV) -> AttributeValueUpdate {
    AttributeValueUpdate::builder()
        .action(AttributeAction::Add)
        .value(v)
        .build()
}

fn delete() -> AttributeValueUpdate {
    AttributeValueUpdate::builder()
        .action(AttributeAction::Delete)
        .build()
}

async fn lease_table(d: &Client, name: &str) {
    d.create_table()
        .table_name(name)
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
        .expect("create table");
}

async fn lease(d: &Client, t: &str, key: &str) -> HashMap<String, AV> {
    d.get_item()
        .table_name(t)
        .key("leaseKey", s(key))
        .consistent_read(true)
        .send()
        .await
        .expect("get")
        .item
        .expect("lease exists")
}

#[tokio::test]
async fn a_lease_table_written_the_java_kcl_way_reads_back_with_expressions() {
    let engine = engine().await;
    let d = engine.dynamodb_client();
    lease_table(&d, "kcl-app").await;
    let shard = "shardId-000000000000";
    // createLeaseIfNotExists: PutItem with Expected leaseKey Exists=false.
    let create = || {
        d.put_item()
            .table_name("kcl-app")
            .item("leaseKey", s(shard))
            .item("leaseCounter", n("0"))
            .item("checkpoint", s("TRIM_HORIZON"))
            .item("checkpointSubSequenceNumber", n("0"))
            .item("ownerSwitchesSinceCheckpoint", n("0"))
            .expected("leaseKey", absent())
    };
    create().send().await.expect("created");
    let again = create().send().await.expect_err("exists");
    assert_eq!(code(&again), "ConditionalCheckFailedException");
    // takeLease: Expected leaseCounter, PUT owner, ADD counter and owner switches.
    d.update_item()
        .table_name("kcl-app")
        .key("leaseKey", s(shard))
        .expected("leaseCounter", value(n("0")))
        .attribute_updates("leaseOwner", put(s("worker-a")))
        .attribute_updates("leaseCounter", add(n("1")))
        .attribute_updates("ownerSwitchesSinceCheckpoint", add(n("1")))
        .send()
        .await
        .expect("taken");
    // renewLease with a stale counter fails; with the right one succeeds.
    let stale = d
        .update_item()
        .table_name("kcl-app")
        .key("leaseKey", s(shard))
        .expected("leaseCounter", value(n("0")))
        .attribute_updates("leaseCounter", add(n("1")))
        .send()
        .await
        .expect_err("stale counter");
    assert_eq!(code(&stale), "ConditionalCheckFailedException");
    let renewed = d
        .update_item()
        .table_name("kcl-app")
        .key("leaseKey", s(shard))
        .expected("leaseCounter", value(n("1")))
        .expected("leaseOwner", value(s("worker-a")))
        .conditional_operator(ConditionalOperator::And)
        .attribute_updates("leaseCounter", add(n("1")))
        .return_values(ReturnValue::UpdatedNew)
        .send()
        .await
        .expect("renewed");
    assert_eq!(
        renewed.attributes().and_then(|a| a.get("leaseCounter")),
        Some(&n("2"))
    );
    // updateLease (checkpoint), fenced on counter and owner; pendingCheckpoint deleted.
    d.update_item()
        .table_name("kcl-app")
        .key("leaseKey", s(shard))
        .expected("leaseCounter", value(n("2")))
        .expected("leaseOwner", value(s("worker-a")))
        .attribute_updates(
            "checkpoint",
            put(s(
                "49590338271490256608559692538361571095921575989136588898",
            )),
        )
        .attribute_updates("checkpointSubSequenceNumber", put(n("3")))
        .attribute_updates("ownerSwitchesSinceCheckpoint", put(n("0")))
        .attribute_updates("pendingCheckpoint", delete())
        .attribute_updates("leaseCounter", add(n("1")))
        .attribute_updates(
            "parentShardId",
            add(AV::Ss(vec!["shardId-000000000009".into()])),
        )
        .send()
        .await
        .expect("checkpointed");
    // Read back with expressions: the same item an expression-writing consumer expects.
    let got = d
        .get_item()
        .table_name("kcl-app")
        .key("leaseKey", s(shard))
        .projection_expression(
            "#o, leaseCounter, checkpoint, checkpointSubSequenceNumber, parentShardId",
        )
        .expression_attribute_names("#o", "leaseOwner")
        .consistent_read(true)
        .send()
        .await
        .expect("get")
        .item
        .expect("item");
    assert_eq!(got["leaseOwner"], s("worker-a"));
    assert_eq!(got["leaseCounter"], n("3"));
    assert_eq!(got["checkpointSubSequenceNumber"], n("3"));
    assert_eq!(
        got["parentShardId"],
        AV::Ss(vec!["shardId-000000000009".into()])
    );
    assert!(
        !got.contains_key("ownerSwitchesSinceCheckpoint"),
        "projected away"
    );
    // An expression-writer continues the lease (renew by condition expression).
    d.update_item()
        .table_name("kcl-app")
        .key("leaseKey", s(shard))
        .update_expression("ADD leaseCounter :one")
        .condition_expression("leaseCounter = :c AND leaseOwner = :o")
        .expression_attribute_values(":one", n("1"))
        .expression_attribute_values(":c", n("3"))
        .expression_attribute_values(":o", s("worker-a"))
        .send()
        .await
        .expect("renewed by expression");
    // evictLease the Java KCL way: Expected owner, DELETE owner, ADD counter.
    d.update_item()
        .table_name("kcl-app")
        .key("leaseKey", s(shard))
        .expected("leaseOwner", value(s("worker-a")))
        .attribute_updates("leaseOwner", delete())
        .attribute_updates("leaseCounter", add(n("1")))
        .send()
        .await
        .expect("evicted");
    let l = lease(&d, "kcl-app", shard).await;
    assert!(!l.contains_key("leaseOwner"));
    assert_eq!(l["leaseCounter"], n("5"));
    // Read back with expressions: unowned leases.
    let unowned = d
        .scan()
        .table_name("kcl-app")
        .filter_expression("attribute_not_exists(leaseOwner)")
        .send()
        .await
        .expect("scan");
    assert_eq!(unowned.count(), 1);
    // deleteLease, fenced on the (absent) owner with a comparison operator.
    let wrong = d
        .delete_item()
        .table_name("kcl-app")
        .key("leaseKey", s(shard))
        .expected("leaseOwner", value(s("worker-b")))
        .send()
        .await
        .expect_err("not the owner");
    assert_eq!(code(&wrong), "ConditionalCheckFailedException");
    d.delete_item()
        .table_name("kcl-app")
        .key("leaseKey", s(shard))
        .expected(
            "leaseOwner",
            ExpectedAttributeValue::builder()
                .comparison_operator(ComparisonOperator::Null)
                .build(),
        )
        .send()
        .await
        .expect("deleted");
}

#[tokio::test]
async fn a_lease_written_with_expressions_is_continued_with_legacy_writes() {
    let engine = engine().await;
    let d = engine.dynamodb_client();
    lease_table(&d, "rust-app").await;
    d.put_item()
        .table_name("rust-app")
        .item("leaseKey", s("shardId-000000000001"))
        .item("leaseOwner", s("rust-worker"))
        .item("leaseCounter", n("7"))
        .item("checkpoint", s("SHARD_END"))
        .item("childShardIds", AV::Ss(vec!["shardId-000000000003".into()]))
        .item("extra", s("kept"))
        .condition_expression("attribute_not_exists(leaseKey)")
        .send()
        .await
        .expect("created");
    d.update_item()
        .table_name("rust-app")
        .key("leaseKey", s("shardId-000000000001"))
        .expected("leaseCounter", value(n("7")))
        .attribute_updates("leaseOwner", put(s("java-worker")))
        .attribute_updates("leaseCounter", add(n("1")))
        .attribute_updates("ownerSwitchesSinceCheckpoint", add(n("1")))
        .attribute_updates(
            "childShardIds",
            add(AV::Ss(vec!["shardId-000000000004".into()])),
        )
        .send()
        .await
        .expect("taken by a legacy writer");
    let l = lease(&d, "rust-app", "shardId-000000000001").await;
    assert_eq!(l["leaseOwner"], s("java-worker"));
    assert_eq!(l["leaseCounter"], n("8"));
    assert_eq!(
        l["ownerSwitchesSinceCheckpoint"],
        n("1"),
        "ADD on a missing number"
    );
    let AV::Ss(children) = &l["childShardIds"] else {
        panic!("string set")
    };
    assert_eq!(children.len(), 2);
    assert_eq!(l["extra"], s("kept"));
    // Legacy reads: ScanFilter with comparison operators, AttributesToGet.
    let scan = d
        .scan()
        .table_name("rust-app")
        .scan_filter(
            "leaseCounter",
            Condition::builder()
                .comparison_operator(ComparisonOperator::Ge)
                .attribute_value_list(n("8"))
                .build()
                .expect("cond"),
        )
        .scan_filter(
            "checkpoint",
            Condition::builder()
                .comparison_operator(ComparisonOperator::BeginsWith)
                .attribute_value_list(s("SHARD"))
                .build()
                .expect("cond"),
        )
        .conditional_operator(ConditionalOperator::And)
        .attributes_to_get("leaseKey")
        .attributes_to_get("leaseOwner")
        .send()
        .await
        .expect("scan");
    assert_eq!(scan.count(), 1);
    assert_eq!(scan.items()[0].len(), 2, "{:?}", scan.items()[0]);
    let none = d
        .scan()
        .table_name("rust-app")
        .scan_filter(
            "leaseCounter",
            Condition::builder()
                .comparison_operator(ComparisonOperator::Between)
                .attribute_value_list(n("1"))
                .attribute_value_list(n("5"))
                .build()
                .expect("cond"),
        )
        .send()
        .await
        .expect("scan");
    assert_eq!(none.count(), 0);
    let got = d
        .get_item()
        .table_name("rust-app")
        .key("leaseKey", s("shardId-000000000001"))
        .attributes_to_get("checkpoint")
        .send()
        .await
        .expect("get")
        .item
        .expect("item");
    assert_eq!(got.len(), 1);
    // OR of two expectations.
    d.update_item()
        .table_name("rust-app")
        .key("leaseKey", s("shardId-000000000001"))
        .expected("leaseOwner", value(s("nobody")))
        .expected(
            "leaseCounter",
            ExpectedAttributeValue::builder()
                .comparison_operator(ComparisonOperator::In)
                .attribute_value_list(n("8"))
                .attribute_value_list(n("9"))
                .build(),
        )
        .conditional_operator(ConditionalOperator::Or)
        .attribute_updates("leaseCounter", add(n("1")))
        .send()
        .await
        .expect("one of two holds");
}

#[tokio::test]
async fn legacy_misuse_is_a_validation_error() {
    let engine = engine().await;
    let d = engine.dynamodb_client();
    lease_table(&d, "bad").await;
    let mixed = d
        .put_item()
        .table_name("bad")
        .item("leaseKey", s("k"))
        .expected("leaseKey", absent())
        .condition_expression("attribute_not_exists(leaseKey)")
        .send()
        .await
        .expect_err("mixed");
    assert_eq!(code(&mixed), "ValidationException");
    assert!(
        format!("{mixed:?}").contains("Can not use both expression and non-expression"),
        "{mixed:?}"
    );
    let mixed_update = d
        .update_item()
        .table_name("bad")
        .key("leaseKey", s("k"))
        .attribute_updates("a", put(s("x")))
        .update_expression("SET b = :v")
        .expression_attribute_values(":v", s("y"))
        .send()
        .await
        .expect_err("mixed");
    assert_eq!(code(&mixed_update), "ValidationException");
    let cases: Vec<(&str, ExpectedAttributeValue)> = vec![
        (
            "exists without value",
            ExpectedAttributeValue::builder().exists(true).build(),
        ),
        (
            "value and not exists",
            ExpectedAttributeValue::builder()
                .exists(false)
                .value(s("x"))
                .build(),
        ),
        (
            "value with an operator",
            ExpectedAttributeValue::builder()
                .value(s("x"))
                .comparison_operator(ComparisonOperator::Eq)
                .attribute_value_list(s("x"))
                .build(),
        ),
        (
            "wrong argument count",
            ExpectedAttributeValue::builder()
                .comparison_operator(ComparisonOperator::Between)
                .attribute_value_list(n("1"))
                .build(),
        ),
        (
            "LT on a set",
            ExpectedAttributeValue::builder()
                .comparison_operator(ComparisonOperator::Lt)
                .attribute_value_list(AV::Ss(vec!["a".into()]))
                .build(),
        ),
    ];
    for (what, expected) in cases {
        let err = d
            .put_item()
            .table_name("bad")
            .item("leaseKey", s("k"))
            .expected("a", expected)
            .send()
            .await
            .expect_err(what);
        assert_eq!(code(&err), "ValidationException", "{what}: {err:?}");
    }
    let lonely_operator = d
        .put_item()
        .table_name("bad")
        .item("leaseKey", s("k"))
        .expected("a", absent())
        .conditional_operator(ConditionalOperator::And)
        .send()
        .await
        .expect_err("one expectation");
    assert_eq!(code(&lonely_operator), "ValidationException");
    let put_without_value = d
        .update_item()
        .table_name("bad")
        .key("leaseKey", s("k"))
        .attribute_updates(
            "a",
            AttributeValueUpdate::builder()
                .action(AttributeAction::Put)
                .build(),
        )
        .send()
        .await
        .expect_err("PUT needs a value");
    assert_eq!(code(&put_without_value), "ValidationException");
    let key_update = d
        .update_item()
        .table_name("bad")
        .key("leaseKey", s("k"))
        .attribute_updates("leaseKey", put(s("other")))
        .send()
        .await
        .expect_err("key attribute");
    assert_eq!(code(&key_update), "ValidationException");
    // Nothing was written by the failed calls.
    let scan = d.scan().table_name("bad").send().await.expect("scan");
    assert_eq!(scan.count(), 0);
}
