//! `BatchWriteItem`, `BatchGetItem`, `Query`, `TransactWriteItems` and `TransactGetItems`
//! through `aws-sdk-dynamodb`.

mod common;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as AV, BillingMode, ConditionCheck, Delete, DeleteRequest,
    Get, KeySchemaElement, KeyType, KeysAndAttributes, Put, PutRequest,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, Select, TransactGetItem,
    TransactWriteItem, Update, WriteRequest,
};
use common::{code, engine};
use std::collections::HashMap;

fn s(v: &str) -> AV {
    AV::S(v.to_owned())
}

fn n(v: &str) -> AV {
    AV::N(v.to_owned())
}

async fn table(d: &Client, name: &str, range: Option<(&str, ScalarAttributeType)>) {
    let mut req = d
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("def"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .expect("key"),
        )
        .billing_mode(BillingMode::PayPerRequest);
    if let Some((r, kind)) = range {
        req = req
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(r)
                    .attribute_type(kind)
                    .build()
                    .expect("def"),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(r)
                    .key_type(KeyType::Range)
                    .build()
                    .expect("key"),
            );
    }
    req.send().await.expect("create table");
}

fn put_req(pk: &str, v: &str) -> WriteRequest {
    WriteRequest::builder()
        .put_request(
            PutRequest::builder()
                .item("pk", s(pk))
                .item("v", s(v))
                .build()
                .expect("put"),
        )
        .build()
}

#[tokio::test]
async fn batch_writes_and_gets_with_limits_duplicates_and_unprocessed_items() {
    let engine = engine().await;
    let d = engine.dynamodb_client();
    table(&d, "tb1", None).await;
    table(&d, "tb2", None).await;
    let writes: Vec<WriteRequest> = (0..20).map(|i| put_req(&format!("k{i}"), "x")).collect();
    let out = d
        .batch_write_item()
        .request_items("tb1", writes)
        .request_items(
            "tb2",
            (0..5).map(|i| put_req(&format!("k{i}"), "y")).collect(),
        )
        .send()
        .await
        .expect("25 writes");
    assert!(out.unprocessed_items().is_none_or(HashMap::is_empty));
    let too_many = d
        .batch_write_item()
        .request_items(
            "tb1",
            (0..26).map(|i| put_req(&format!("z{i}"), "x")).collect(),
        )
        .send()
        .await
        .expect_err("26");
    assert_eq!(code(&too_many), "ValidationException");
    let dup = d
        .batch_write_item()
        .request_items("tb1", vec![put_req("same", "1"), put_req("same", "2")])
        .send()
        .await
        .expect_err("duplicate keys");
    assert_eq!(code(&dup), "ValidationException");
    // Deletes, and a throttled table's requests come back unprocessed.
    engine
        .faults()
        .throttle_shard_next("BatchWriteItem", "tb2", 1);
    let out = d
        .batch_write_item()
        .request_items(
            "tb1",
            vec![
                WriteRequest::builder()
                    .delete_request(
                        DeleteRequest::builder()
                            .key("pk", s("k0"))
                            .build()
                            .expect("del"),
                    )
                    .build(),
            ],
        )
        .request_items("tb2", vec![put_req("k9", "late")])
        .send()
        .await
        .expect("partly processed");
    let unprocessed = out.unprocessed_items().expect("unprocessed");
    assert_eq!(unprocessed.get("tb2").map(Vec::len), Some(1));
    assert!(!unprocessed.contains_key("tb1"));
    // Sending the unprocessed items again completes them.
    d.batch_write_item()
        .set_request_items(Some(unprocessed.clone()))
        .send()
        .await
        .expect("retry");
    // BatchGetItem across tables, with a projection.
    let keys = |ids: &[&str]| {
        let mut b = KeysAndAttributes::builder();
        for id in ids {
            b = b.keys(HashMap::from([("pk".to_owned(), s(id))]));
        }
        b
    };
    let got = d
        .batch_get_item()
        .request_items("tb1", keys(&["k0", "k1", "k2"]).build().expect("keys"))
        .request_items(
            "tb2",
            keys(&["k9", "k1"])
                .projection_expression("pk")
                .build()
                .expect("keys"),
        )
        .send()
        .await
        .expect("get");
    let r = got.responses().expect("responses");
    assert_eq!(r["tb1"].len(), 2, "k0 was deleted");
    assert_eq!(r["tb2"].len(), 2);
    assert!(r["tb2"].iter().all(|i| i.len() == 1), "projected to pk");
    let many: Vec<String> = (0..101).map(|i| format!("k{i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let err = d
        .batch_get_item()
        .request_items("tb1", keys(&refs).build().expect("keys"))
        .send()
        .await
        .expect_err("101 keys");
    assert_eq!(code(&err), "ValidationException");
    engine
        .faults()
        .throttle_shard_next("BatchGetItem", "tb1", 1);
    let got = d
        .batch_get_item()
        .request_items("tb1", keys(&["k1"]).build().expect("keys"))
        .send()
        .await
        .expect("throttled table");
    assert_eq!(
        got.unprocessed_keys().map(|u| u["tb1"].keys().len()),
        Some(1)
    );
}

#[tokio::test]
async fn query_reads_one_hash_key_in_range_order_with_conditions_and_paging() {
    let engine = engine().await;
    let d = engine.dynamodb_client();
    table(&d, "tq1", Some(("sk", ScalarAttributeType::N))).await;
    for user in ["alice", "bob"] {
        for i in 0..30 {
            d.put_item()
                .table_name("tq1")
                .item("pk", s(user))
                .item("sk", n(&i.to_string()))
                .item("even", AV::Bool(i % 2 == 0))
                .send()
                .await
                .expect("put");
        }
    }
    let sks = |items: &[HashMap<String, AV>]| -> Vec<i64> {
        items
            .iter()
            .map(|i| match &i["sk"] {
                AV::N(v) => v.parse().expect("n"),
                _ => panic!("number"),
            })
            .collect()
    };
    let all = d
        .query()
        .table_name("tq1")
        .key_condition_expression("pk = :u")
        .expression_attribute_values(":u", s("alice"))
        .send()
        .await
        .expect("query");
    assert_eq!(
        sks(all.items()),
        (0..30).collect::<Vec<_>>(),
        "numeric range order"
    );
    let between = d
        .query()
        .table_name("tq1")
        .key_condition_expression("pk = :u AND sk BETWEEN :a AND :b")
        .filter_expression("even = :t")
        .expression_attribute_values(":u", s("bob"))
        .expression_attribute_values(":a", n("10"))
        .expression_attribute_values(":b", n("15"))
        .expression_attribute_values(":t", AV::Bool(true))
        .scan_index_forward(false)
        .send()
        .await
        .expect("query");
    assert_eq!(sks(between.items()), vec![14, 12, 10]);
    assert_eq!(between.scanned_count(), 6);
    // Paging with Limit, backwards.
    let mut seen = Vec::new();
    let mut start = None;
    loop {
        let page = d
            .query()
            .table_name("tq1")
            .key_condition_expression("pk = :u AND sk >= :a")
            .expression_attribute_values(":u", s("alice"))
            .expression_attribute_values(":a", n("20"))
            .scan_index_forward(false)
            .limit(4)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .expect("page");
        seen.extend(sks(page.items()));
        match page.last_evaluated_key() {
            Some(k) => start = Some(k.clone()),
            None => break,
        }
    }
    assert_eq!(seen, (20..30).rev().collect::<Vec<_>>());
    let count = d
        .query()
        .table_name("tq1")
        .key_condition_expression("pk = :u")
        .expression_attribute_values(":u", s("bob"))
        .select(Select::Count)
        .send()
        .await
        .expect("count");
    assert_eq!(count.count(), 30);
    assert!(count.items().is_empty());
    // Key conditions must pin the hash key.
    for bad in ["sk = :a", "pk > :u", "pk = :u OR sk = :a"] {
        let err = d
            .query()
            .table_name("tq1")
            .key_condition_expression(bad)
            .expression_attribute_values(":u", s("bob"))
            .expression_attribute_values(":a", n("1"))
            .send()
            .await
            .expect_err(bad);
        assert_eq!(code(&err), "ValidationException", "{bad}");
    }
    // begins_with on a string range key.
    table(&d, "tqs", Some(("sk", ScalarAttributeType::S))).await;
    for sk in ["2026-01-01", "2026-02-01", "2027-01-01"] {
        d.put_item()
            .table_name("tqs")
            .item("pk", s("p"))
            .item("sk", s(sk))
            .send()
            .await
            .expect("put");
    }
    let y = d
        .query()
        .table_name("tqs")
        .key_condition_expression("pk = :p AND begins_with(sk, :y)")
        .expression_attribute_values(":p", s("p"))
        .expression_attribute_values(":y", s("2026"))
        .send()
        .await
        .expect("query");
    assert_eq!(y.count(), 2);
}

fn txn_put(table: &str, pk: &str, cond: Option<&str>) -> TransactWriteItem {
    let mut p = Put::builder()
        .table_name(table)
        .item("pk", s(pk))
        .item("n", n("1"));
    if let Some(c) = cond {
        p = p.condition_expression(c);
    }
    TransactWriteItem::builder()
        .put(p.build().expect("put"))
        .build()
}

#[tokio::test]
async fn transactions_are_all_or_nothing_with_cancellation_reasons() {
    let engine = engine().await;
    let d = engine.dynamodb_client();
    table(&d, "tx1", None).await;
    table(&d, "tx2", None).await;
    d.transact_write_items()
        .transact_items(txn_put("tx1", "a", None))
        .transact_items(txn_put("tx2", "b", None))
        .send()
        .await
        .expect("two puts");
    // One failing condition cancels everything, and says which.
    let err = d
        .transact_write_items()
        .transact_items(txn_put("tx1", "new", Some("attribute_not_exists(pk)")))
        .transact_items(
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name("tx2")
                        .key("pk", s("b"))
                        .update_expression("SET n = n + :one")
                        .expression_attribute_values(":one", n("1"))
                        .build()
                        .expect("update"),
                )
                .build(),
        )
        .transact_items(
            TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name("tx1")
                        .key("pk", s("a"))
                        .condition_expression("n = :two")
                        .expression_attribute_values(":two", n("2"))
                        .return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .build()
                        .expect("check"),
                )
                .build(),
        )
        .send()
        .await
        .expect_err("cancelled");
    let service = err.into_service_error();
    let aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(cancel) = service else {
        panic!("TransactionCanceledException expected, got {service:?}")
    };
    let codes: Vec<&str> = cancel
        .cancellation_reasons()
        .iter()
        .map(|r| r.code().unwrap_or(""))
        .collect();
    assert_eq!(codes, ["None", "None", "ConditionalCheckFailed"]);
    assert_eq!(
        cancel.cancellation_reasons()[2]
            .item()
            .and_then(|i| i.get("n")),
        Some(&n("1"))
    );
    // Nothing of it was applied.
    let got = d
        .transact_get_items()
        .transact_items(
            TransactGetItem::builder()
                .get(
                    Get::builder()
                        .table_name("tx1")
                        .key("pk", s("new"))
                        .build()
                        .expect("get"),
                )
                .build(),
        )
        .transact_items(
            TransactGetItem::builder()
                .get(
                    Get::builder()
                        .table_name("tx2")
                        .key("pk", s("b"))
                        .build()
                        .expect("get"),
                )
                .build(),
        )
        .send()
        .await
        .expect("get");
    let r = got.responses();
    assert!(r[0].item().is_none(), "the put was rolled back");
    assert_eq!(
        r[1].item().and_then(|i| i.get("n")),
        Some(&n("1")),
        "the update too"
    );
    // An update that cannot apply cancels with a ValidationError reason.
    let err = d
        .transact_write_items()
        .transact_items(
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name("tx2")
                        .key("pk", s("b"))
                        .update_expression("SET n = n + :text")
                        .expression_attribute_values(":text", s("not a number"))
                        .build()
                        .expect("update"),
                )
                .build(),
        )
        .send()
        .await
        .expect_err("cancelled");
    let service = err.into_service_error();
    let aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(cancel) = service else {
        panic!("TransactionCanceledException expected, got {service:?}")
    };
    assert_eq!(
        cancel.cancellation_reasons()[0].code(),
        Some("ValidationError")
    );
    // Two actions on one item are refused.
    let err = d
        .transact_write_items()
        .transact_items(txn_put("tx1", "a", None))
        .transact_items(
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name("tx1")
                        .key("pk", s("a"))
                        .build()
                        .expect("del"),
                )
                .build(),
        )
        .send()
        .await
        .expect_err("same item twice");
    assert_eq!(code(&err), "ValidationException");
    // A successful mix applies all of it.
    d.transact_write_items()
        .transact_items(
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name("tx1")
                        .key("pk", s("a"))
                        .build()
                        .expect("del"),
                )
                .build(),
        )
        .transact_items(txn_put("tx2", "c", Some("attribute_not_exists(pk)")))
        .send()
        .await
        .expect("applied");
    let scan1 = d.scan().table_name("tx1").send().await.expect("scan");
    let scan2 = d.scan().table_name("tx2").send().await.expect("scan");
    assert_eq!((scan1.count(), scan2.count()), (0, 2));
}

#[tokio::test]
async fn global_secondary_indexes_are_created_kept_in_step_and_queried() {
    use aws_sdk_dynamodb::types::{
        CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex, GlobalSecondaryIndexUpdate,
        IndexStatus, Projection, ProjectionType,
    };
    use std::time::Duration;
    let engine = common::engine_with(|c| c.table_delay = Duration::from_secs(5)).await;
    let d = engine.dynamodb_client();
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("key")
    };
    let def = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("def")
    };
    // Declared at CreateTable.
    d.create_table()
        .table_name("orders")
        .attribute_definitions(def("pk"))
        .attribute_definitions(def("customer"))
        .key_schema(key("pk", KeyType::Hash))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("byCustomer")
                .key_schema(key("customer", KeyType::Hash))
                .key_schema(key("pk", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .expect("gsi"),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create");
    engine.advance_clock(Duration::from_secs(5));
    for (pk, customer) in [("o1", "c1"), ("o2", "c2"), ("o3", "c1")] {
        d.put_item()
            .table_name("orders")
            .item("pk", s(pk))
            .item("customer", s(customer))
            .send()
            .await
            .expect("put");
    }
    d.put_item()
        .table_name("orders")
        .item("pk", s("o4"))
        .send()
        .await
        .expect("an item without the index key");
    let by = |c: &'static str| {
        let d = d.clone();
        async move {
            d.query()
                .table_name("orders")
                .index_name("byCustomer")
                .key_condition_expression("customer = :c")
                .expression_attribute_values(":c", s(c))
                .send()
                .await
                .expect("query index")
        }
    };
    let c1 = by("c1").await;
    assert_eq!(c1.count(), 2);
    // In step with writes: a delete and an update show at once.
    d.delete_item()
        .table_name("orders")
        .key("pk", s("o1"))
        .send()
        .await
        .expect("delete");
    d.update_item()
        .table_name("orders")
        .key("pk", s("o2"))
        .update_expression("SET customer = :c")
        .expression_attribute_values(":c", s("c1"))
        .send()
        .await
        .expect("update");
    let pks: Vec<AV> = by("c1")
        .await
        .items()
        .iter()
        .map(|i| i["pk"].clone())
        .collect();
    assert_eq!(pks, vec![s("o2"), s("o3")], "range-key order");
    // The Java KCL 3.x adds LeaseOwnerToLeaseKeyIndex to its lease table with UpdateTable.
    table(&d, "leases3", None).await;
    engine.advance_clock(Duration::from_secs(5));
    for (lease, owner) in [
        ("shard-1", Some("w1")),
        ("shard-2", Some("w2")),
        ("shard-3", Some("w1")),
        ("shard-4", None),
    ] {
        let mut p = d.put_item().table_name("leases3").item("pk", s(lease));
        if let Some(o) = owner {
            p = p
                .item("leaseOwner", s(o))
                .item("checkpoint", s("TRIM_HORIZON"));
        }
        p.send().await.expect("lease");
    }
    d.update_table()
        .table_name("leases3")
        .attribute_definitions(def("leaseOwner"))
        .global_secondary_index_updates(
            GlobalSecondaryIndexUpdate::builder()
                .create(
                    CreateGlobalSecondaryIndexAction::builder()
                        .index_name("LeaseOwnerToLeaseKeyIndex")
                        .key_schema(key("leaseOwner", KeyType::Hash))
                        .key_schema(key("pk", KeyType::Range))
                        .projection(
                            Projection::builder()
                                .projection_type(ProjectionType::KeysOnly)
                                .build(),
                        )
                        .build()
                        .expect("create index"),
                )
                .build(),
        )
        .send()
        .await
        .expect("update table");
    let status = |d: Client| async move {
        d.describe_table()
            .table_name("leases3")
            .send()
            .await
            .expect("describe")
            .table()
            .and_then(|t| t.global_secondary_indexes().first().cloned())
            .and_then(|i| i.index_status().cloned())
    };
    assert_eq!(status(d.clone()).await, Some(IndexStatus::Creating));
    let early = d
        .query()
        .table_name("leases3")
        .index_name("LeaseOwnerToLeaseKeyIndex")
        .key_condition_expression("leaseOwner = :o")
        .expression_attribute_values(":o", s("w1"))
        .send()
        .await
        .expect_err("still backfilling");
    assert_eq!(code(&early), "ValidationException");
    engine.advance_clock(Duration::from_secs(5));
    assert_eq!(status(d.clone()).await, Some(IndexStatus::Active));
    let w1 = d
        .query()
        .table_name("leases3")
        .index_name("LeaseOwnerToLeaseKeyIndex")
        .key_condition_expression("leaseOwner = :o")
        .expression_attribute_values(":o", s("w1"))
        .send()
        .await
        .expect("query");
    assert_eq!(w1.count(), 2);
    assert!(
        w1.items()
            .iter()
            .all(|i| i.len() == 2 && !i.contains_key("checkpoint")),
        "keys only: {:?}",
        w1.items()
    );
    let err = d
        .query()
        .table_name("leases3")
        .index_name("LeaseOwnerToLeaseKeyIndex")
        .key_condition_expression("leaseOwner = :o")
        .expression_attribute_values(":o", s("w1"))
        .consistent_read(true)
        .send()
        .await
        .expect_err("no consistent reads on a GSI");
    assert_eq!(code(&err), "ValidationException");
    // A write with an index key of the wrong type is refused; without it, it is just not
    // indexed.
    let err = d
        .put_item()
        .table_name("leases3")
        .item("pk", s("shard-9"))
        .item("leaseOwner", n("7"))
        .send()
        .await
        .expect_err("index key type");
    assert_eq!(code(&err), "ValidationException");
    // ALL_PROJECTED_ATTRIBUTES is for indexes; a Limit reached exactly still gives a key.
    let projected = d
        .query()
        .table_name("leases3")
        .index_name("LeaseOwnerToLeaseKeyIndex")
        .key_condition_expression("leaseOwner = :o")
        .expression_attribute_values(":o", s("w2"))
        .select(Select::AllProjectedAttributes)
        .limit(1)
        .send()
        .await
        .expect("projected");
    assert_eq!(projected.count(), 1);
    assert!(
        projected.last_evaluated_key().is_some(),
        "the Limit was reached: DynamoDB gives a LastEvaluatedKey"
    );
    // Scan an index: only the items it holds, as it projects them.
    let scanned = d
        .scan()
        .table_name("leases3")
        .index_name("LeaseOwnerToLeaseKeyIndex")
        .send()
        .await
        .expect("scan index");
    assert_eq!(scanned.count(), 3, "shard-4 has no owner: not in the index");
    // A query may not filter on the keys it queries by.
    let err = d
        .query()
        .table_name("leases3")
        .index_name("LeaseOwnerToLeaseKeyIndex")
        .key_condition_expression("leaseOwner = :o")
        .filter_expression("leaseOwner = :o")
        .expression_attribute_values(":o", s("w1"))
        .send()
        .await
        .expect_err("filter on a key");
    assert_eq!(code(&err), "ValidationException");
    // A PROVISIONED table's index needs its own throughput.
    let err = d
        .create_table()
        .table_name("prov")
        .attribute_definitions(def("pk"))
        .attribute_definitions(def("other"))
        .key_schema(key("pk", KeyType::Hash))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("byOther")
                .key_schema(key("other", KeyType::Hash))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .expect("gsi"),
        )
        .provisioned_throughput(
            aws_sdk_dynamodb::types::ProvisionedThroughput::builder()
                .read_capacity_units(5)
                .write_capacity_units(5)
                .build()
                .expect("throughput"),
        )
        .send()
        .await
        .expect_err("index without throughput");
    assert_eq!(code(&err), "ValidationException");
    let missing = d
        .query()
        .table_name("leases3")
        .index_name("nope")
        .key_condition_expression("leaseOwner = :o")
        .expression_attribute_values(":o", s("w1"))
        .send()
        .await
        .expect_err("no such index");
    assert_eq!(code(&missing), "ValidationException");
}
