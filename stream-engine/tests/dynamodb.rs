//! The DynamoDB subset, through `aws-sdk-dynamodb` over HTTP.

mod common;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as AV, BillingMode, KeySchemaElement, KeyType,
    ProvisionedThroughput, ReturnValue, ReturnValuesOnConditionCheckFailure, ScalarAttributeType,
    Select, TableStatus,
};
use common::engine_with;
use std::collections::HashMap;
use std::time::Duration;

fn s(v: &str) -> AV {
    AV::S(v.to_owned())
}

fn n(v: &str) -> AV {
    AV::N(v.to_owned())
}

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("<none>").to_owned()
}

async fn table(d: &Client, name: &str) {
    d.create_table()
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
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create table");
}

async fn get(d: &Client, t: &str, pk: &str) -> Option<HashMap<String, AV>> {
    d.get_item()
        .table_name(t)
        .key("pk", s(pk))
        .consistent_read(true)
        .send()
        .await
        .expect("get")
        .item
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_are_created_described_listed_and_deleted() {
    let engine = engine_with(|c| c.table_delay = Duration::from_millis(500)).await;
    let d = engine.dynamodb_client_without_retries();
    table(&d, "leases").await;
    let desc = d
        .describe_table()
        .table_name("leases")
        .send()
        .await
        .expect("describe");
    let t = desc.table().expect("table");
    assert_eq!(t.table_status(), Some(&TableStatus::Creating));
    let err = d
        .get_item()
        .table_name("leases")
        .key("pk", s("a"))
        .send()
        .await
        .expect_err("creating");
    assert_eq!(code(&err), "ResourceNotFoundException");
    engine.advance_clock(Duration::from_millis(500));
    let desc = d
        .describe_table()
        .table_name("leases")
        .send()
        .await
        .expect("describe");
    let t = desc.table().expect("table");
    assert_eq!(t.table_status(), Some(&TableStatus::Active));
    assert_eq!(t.key_schema()[0].attribute_name(), "pk");
    assert_eq!(
        t.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );
    assert!(t.table_arn().expect("arn").ends_with(":table/leases"));

    // Provisioned, with a range key.
    d.create_table()
        .table_name("ranged")
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("h")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("def"),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("r")
                .attribute_type(ScalarAttributeType::N)
                .build()
                .expect("def"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("h")
                .key_type(KeyType::Hash)
                .build()
                .expect("key"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("r")
                .key_type(KeyType::Range)
                .build()
                .expect("key"),
        )
        .provisioned_throughput(
            ProvisionedThroughput::builder()
                .read_capacity_units(5)
                .write_capacity_units(5)
                .build()
                .expect("pt"),
        )
        .send()
        .await
        .expect("provisioned");
    let err = d
        .create_table()
        .table_name("broken")
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("x")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("def"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("y")
                .key_type(KeyType::Hash)
                .build()
                .expect("key"),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect_err("undefined key attribute");
    assert_eq!(code(&err), "ValidationException");
    let err = d
        .create_table()
        .table_name("no-throughput")
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("x")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("def"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("x")
                .key_type(KeyType::Hash)
                .build()
                .expect("key"),
        )
        .send()
        .await
        .expect_err("provisioned without throughput");
    assert_eq!(code(&err), "ValidationException");

    let err = d
        .create_table()
        .table_name("leases")
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
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect_err("exists");
    assert_eq!(code(&err), "ResourceInUseException");

    let list = d.list_tables().send().await.expect("list");
    assert_eq!(list.table_names(), ["leases", "ranged"]);
    let page = d.list_tables().limit(1).send().await.expect("page");
    assert_eq!(page.last_evaluated_table_name(), Some("leases"));
    let next = d
        .list_tables()
        .exclusive_start_table_name("leases")
        .send()
        .await
        .expect("next");
    assert_eq!(next.table_names(), ["ranged"]);

    d.delete_table()
        .table_name("ranged")
        .send()
        .await
        .expect("delete");
    let err = d
        .describe_table()
        .table_name("ranged")
        .send()
        .await
        .expect_err("gone");
    assert_eq!(code(&err), "ResourceNotFoundException");
    let err = d
        .put_item()
        .table_name("nope")
        .item("pk", s("x"))
        .send()
        .await
        .expect_err("no table");
    assert_eq!(code(&err), "ResourceNotFoundException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attribute_type_round_trips_exactly() {
    let engine = engine_with(|_| {}).await;
    let d = engine.dynamodb_client();
    table(&d, "types").await;
    let nested = HashMap::from([(
        "nested".to_owned(),
        AV::L(vec![n("1"), s("two"), AV::Bool(true)]),
    )]);
    let item = HashMap::from([
        ("pk".to_owned(), s("all")),
        ("s".to_owned(), s("ключ 🔑")),
        ("n".to_owned(), n("123456789012345678901234567890.12345678")),
        ("neg".to_owned(), n("-0.000001")),
        ("b".to_owned(), AV::B(Blob::new(vec![0u8, 1, 255]))),
        ("ss".to_owned(), AV::Ss(vec!["a".into(), "b".into()])),
        ("ns".to_owned(), AV::Ns(vec!["1".into(), "2.5".into()])),
        (
            "bs".to_owned(),
            AV::Bs(vec![Blob::new(vec![1u8]), Blob::new(vec![2u8])]),
        ),
        ("m".to_owned(), AV::M(nested)),
        ("l".to_owned(), AV::L(vec![AV::Null(true), n("3")])),
        ("null".to_owned(), AV::Null(true)),
        ("bool".to_owned(), AV::Bool(false)),
    ]);
    d.put_item()
        .table_name("types")
        .set_item(Some(item.clone()))
        .send()
        .await
        .expect("put");
    let got = get(&d, "types", "all").await.expect("item");
    assert_eq!(got.len(), item.len());
    for (k, v) in &item {
        let g = &got[k];
        match (v, g) {
            (AV::Ss(a), AV::Ss(b)) | (AV::Ns(a), AV::Ns(b)) => {
                let (mut a, mut b) = (a.clone(), b.clone());
                a.sort();
                b.sort();
                assert_eq!(a, b, "{k}");
            }
            _ => assert_eq!(v, g, "{k}"),
        }
    }
    // Projection with names and a nested path.
    let p = d
        .get_item()
        .table_name("types")
        .key("pk", s("all"))
        .projection_expression("#s, m.nested[1], bool")
        .expression_attribute_names("#s", "s")
        .send()
        .await
        .expect("projection")
        .item
        .expect("item");
    assert_eq!(p.len(), 3);
    assert_eq!(
        p["m"],
        AV::M(HashMap::from([(
            "nested".to_owned(),
            AV::L(vec![s("two")])
        )]))
    );
    assert!(get(&d, "types", "missing").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_cover_every_operator_and_function() {
    let engine = engine_with(|_| {}).await;
    let d = engine.dynamodb_client_without_retries();
    table(&d, "conds").await;
    d.put_item()
        .table_name("conds")
        .item("pk", s("x"))
        .item("n", n("10"))
        .item("name", s("lease-7"))
        .item("tags", AV::Ss(vec!["red".into(), "blue".into()]))
        .item("items_l", AV::L(vec![s("a"), s("b")]))
        .item(
            "doc",
            AV::M(HashMap::from([
                ("holder".to_owned(), s("w1")),
                ("levels".to_owned(), AV::L(vec![n("5")])),
            ])),
        )
        .send()
        .await
        .expect("put");
    let check = |cond: &'static str, values: Vec<(&'static str, AV)>| {
        let d = d.clone();
        async move {
            let mut req = d
                .update_item()
                .table_name("conds")
                .key("pk", s("x"))
                .update_expression("SET touched = :t")
                .expression_attribute_values(":t", AV::Bool(true))
                .condition_expression(cond);
            if cond.contains("#n") {
                req = req.expression_attribute_names("#n", "name");
            }
            for (k, v) in values {
                req = req.expression_attribute_values(k, v);
            }
            match req.send().await {
                Ok(_) => Ok(true),
                Err(e) if code(&e) == "ConditionalCheckFailedException" => Ok(false),
                Err(e) => Err(code(&e)),
            }
        }
    };
    type Case = (&'static str, Vec<(&'static str, AV)>, bool);
    let cases: Vec<Case> = vec![
        ("n = :v", vec![(":v", n("10"))], true),
        ("n = :v", vec![(":v", n("10.0"))], true),
        ("n <> :v", vec![(":v", n("10"))], false),
        ("n < :v", vec![(":v", n("11"))], true),
        ("n <= :v", vec![(":v", n("10"))], true),
        ("n > :v", vec![(":v", n("10"))], false),
        ("n >= :v", vec![(":v", n("10"))], true),
        (
            "n BETWEEN :a AND :b",
            vec![(":a", n("1")), (":b", n("10"))],
            true,
        ),
        ("n IN (:a, :b)", vec![(":a", n("1")), (":b", n("10"))], true),
        ("#n IN (:a)", vec![(":a", s("nope"))], false),
        ("attribute_exists(doc.holder)", vec![], true),
        ("attribute_not_exists(doc.absent)", vec![], true),
        ("attribute_type(tags, :t)", vec![(":t", s("SS"))], true),
        ("begins_with(#n, :p)", vec![(":p", s("lease-"))], true),
        ("contains(tags, :c)", vec![(":c", s("red"))], true),
        ("contains(items_l, :c)", vec![(":c", s("z"))], false),
        ("contains(#n, :c)", vec![(":c", s("se-7"))], true),
        ("size(items_l) = :two", vec![(":two", n("2"))], true),
        ("size(#n) > :two", vec![(":two", n("2"))], true),
        ("doc.levels[0] = :five", vec![(":five", n("5"))], true),
        (
            "doc.holder = :w AND NOT n < :v",
            vec![(":w", s("w1")), (":v", n("5"))],
            true,
        ),
        (
            "n = :v OR doc.holder = :w AND n = :v",
            vec![(":v", n("1")), (":w", s("w1"))],
            false,
        ),
        (
            "(n = :v OR doc.holder = :w) AND n = :v2",
            vec![(":v", n("1")), (":w", s("w1")), (":v2", n("10"))],
            true,
        ),
        ("absent_attr = :v", vec![(":v", n("1"))], false),
        ("absent_attr <> :v", vec![(":v", n("1"))], true),
        ("n = :v", vec![(":v", s("10"))], false),
    ];
    for (cond, values, expected) in cases {
        assert_eq!(check(cond, values).await, Ok(expected), "{cond}");
    }
    // Errors: syntax (with position), undefined and unused values/names, bad operand types.
    let err = check("n = = :v", vec![(":v", n("1"))])
        .await
        .expect_err("syntax");
    assert_eq!(err, "ValidationException");
    let e = d
        .put_item()
        .table_name("conds")
        .item("pk", s("y"))
        .condition_expression("attribute_not_exists(pk) AND")
        .send()
        .await
        .expect_err("syntax");
    assert!(
        e.meta().message().unwrap_or("").contains("position"),
        "{:?}",
        e.meta().message()
    );
    assert_eq!(
        check("n = :undefined", vec![]).await,
        Err("ValidationException".into())
    );
    assert_eq!(
        check("n = :v", vec![(":v", n("1")), (":unused", n("2"))]).await,
        Err("ValidationException".into())
    );
    let e = d
        .put_item()
        .table_name("conds")
        .item("pk", s("y"))
        .condition_expression("attribute_not_exists(pk)")
        .expression_attribute_names("#unused", "x")
        .send()
        .await
        .expect_err("unused name");
    assert_eq!(code(&e), "ValidationException");
    assert_eq!(
        check("begins_with(#n, :p)", vec![(":p", n("1"))]).await,
        Err("ValidationException".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_and_return_values() {
    let engine = engine_with(|_| {}).await;
    let d = engine.dynamodb_client_without_retries();
    table(&d, "updates").await;
    // Upsert with SET, if_not_exists, list_append; ALL_NEW.
    let out = d
        .update_item()
        .table_name("updates")
        .key("pk", s("k"))
        .update_expression("SET c = if_not_exists(c, :zero) + :one, l = list_append(if_not_exists(l, :empty), :items), m = :m")
        .expression_attribute_values(":zero", n("0"))
        .expression_attribute_values(":one", n("1"))
        .expression_attribute_values(":empty", AV::L(vec![]))
        .expression_attribute_values(":items", AV::L(vec![s("a")]))
        .expression_attribute_values(":m", AV::M(HashMap::from([("x".to_owned(), n("1"))])))
        .return_values(ReturnValue::AllNew)
        .send()
        .await
        .expect("upsert");
    let a = out.attributes().expect("attributes");
    assert_eq!(a["c"], n("1"));
    assert_eq!(a["l"], AV::L(vec![s("a")]));
    assert_eq!(a["pk"], s("k"));
    // Arithmetic, nested SET, REMOVE, ADD (number and set), DELETE; UPDATED_OLD / UPDATED_NEW.
    let out = d
        .update_item()
        .table_name("updates")
        .key("pk", s("k"))
        .update_expression("SET c = c - :half, m.y = :y, l[5] = :b REMOVE m.x ADD hits :one, tags :t DELETE missingset :t")
        .expression_attribute_values(":half", n("0.5"))
        .expression_attribute_values(":y", s("why"))
        .expression_attribute_values(":b", s("b"))
        .expression_attribute_values(":one", n("1"))
        .expression_attribute_values(":t", AV::Ss(vec!["x".into(), "y".into()]))
        .return_values(ReturnValue::UpdatedNew)
        .send()
        .await
        .expect("update");
    let a = out.attributes().expect("attributes");
    assert_eq!(a["c"], n("0.5"));
    assert_eq!(a["hits"], n("1"));
    assert_eq!(a["m"], AV::M(HashMap::from([("y".to_owned(), s("why"))])));
    assert_eq!(a["l"], AV::L(vec![s("a"), s("b")]));
    assert!(!a.contains_key("pk"));
    let out = d
        .update_item()
        .table_name("updates")
        .key("pk", s("k"))
        .update_expression("ADD tags :more SET c = :ten")
        .expression_attribute_values(":more", AV::Ss(vec!["z".into()]))
        .expression_attribute_values(":ten", n("10"))
        .return_values(ReturnValue::UpdatedOld)
        .send()
        .await
        .expect("update");
    let a = out.attributes().expect("attributes");
    assert_eq!(a["c"], n("0.5"));
    let e = d
        .update_item()
        .table_name("updates")
        .key("pk", s("k"))
        .update_expression("ADD tags :x DELETE tags :x")
        .expression_attribute_values(":x", AV::Ss(vec!["x".into()]))
        .send()
        .await
        .expect_err("overlapping paths");
    assert_eq!(code(&e), "ValidationException");
    d.update_item()
        .table_name("updates")
        .key("pk", s("k"))
        .update_expression("DELETE tags :x")
        .expression_attribute_values(":x", AV::Ss(vec!["x".into()]))
        .send()
        .await
        .expect("delete from set");
    let item = get(&d, "updates", "k").await.expect("item");
    let AV::Ss(mut tags) = item["tags"].clone() else {
        panic!("tags")
    };
    tags.sort();
    assert_eq!(tags, ["y", "z"]);
    // DELETE of every element removes the attribute.
    d.update_item()
        .table_name("updates")
        .key("pk", s("k"))
        .update_expression("DELETE tags :all")
        .expression_attribute_values(":all", AV::Ss(vec!["y".into(), "z".into()]))
        .send()
        .await
        .expect("delete all");
    assert!(
        !get(&d, "updates", "k")
            .await
            .expect("item")
            .contains_key("tags")
    );
    // ALL_OLD on put and delete.
    let out = d
        .put_item()
        .table_name("updates")
        .item("pk", s("k"))
        .item("v", n("2"))
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .expect("put");
    assert_eq!(out.attributes().expect("old")["c"], n("10"));
    let out = d
        .delete_item()
        .table_name("updates")
        .key("pk", s("k"))
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .expect("delete");
    assert_eq!(out.attributes().expect("old")["v"], n("2"));
    assert!(get(&d, "updates", "k").await.is_none());

    // Errors of updates.
    let upd = |expr: &'static str| {
        d.update_item()
            .table_name("updates")
            .key("pk", s("e"))
            .update_expression(expr)
    };
    let e = upd("SET pk = :v")
        .expression_attribute_values(":v", s("x"))
        .send()
        .await
        .expect_err("key update");
    assert_eq!(code(&e), "ValidationException");
    let e = upd("SET a = b + :v")
        .expression_attribute_values(":v", n("1"))
        .send()
        .await
        .expect_err("missing operand");
    assert_eq!(code(&e), "ValidationException");
    let e = upd("SET a = :s + :v")
        .expression_attribute_values(":s", s("x"))
        .expression_attribute_values(":v", n("1"))
        .send()
        .await
        .expect_err("type");
    assert_eq!(code(&e), "ValidationException");
    let e = upd("ADD a :s")
        .expression_attribute_values(":s", s("x"))
        .send()
        .await
        .expect_err("ADD string");
    assert_eq!(code(&e), "ValidationException");
    let e = upd("SET a.b.c = :v")
        .expression_attribute_values(":v", n("1"))
        .send()
        .await
        .expect_err("no parent");
    assert_eq!(code(&e), "ValidationException");
    let e = upd("SET a = :v")
        .expression_attribute_values(":v", AV::Ss(vec![]))
        .send()
        .await
        .expect_err("empty set");
    assert_eq!(code(&e), "ValidationException");
    let e = d
        .put_item()
        .table_name("updates")
        .item("pk", s("big"))
        .item("blob", AV::B(Blob::new(vec![0u8; 410 * 1024])))
        .send()
        .await
        .expect_err("too big");
    assert_eq!(code(&e), "ValidationException");
    let e = d
        .put_item()
        .table_name("updates")
        .item("other", s("x"))
        .send()
        .await
        .expect_err("missing key");
    assert_eq!(code(&e), "ValidationException");
    let e = d
        .put_item()
        .table_name("updates")
        .item("pk", n("1"))
        .send()
        .await
        .expect_err("key type");
    assert_eq!(code(&e), "ValidationException");
    let e = d
        .get_item()
        .table_name("updates")
        .key("pk", s("a"))
        .key("extra", s("b"))
        .send()
        .await
        .expect_err("key schema");
    assert_eq!(code(&e), "ValidationException");
    let e = d
        .put_item()
        .table_name("updates")
        .item("pk", s(""))
        .send()
        .await
        .expect_err("empty key");
    assert_eq!(code(&e), "ValidationException");
    let e = d
        .put_item()
        .table_name("updates")
        .item("pk", s("x"))
        .return_values(ReturnValue::AllNew)
        .send()
        .await
        .expect_err("put ALL_NEW");
    assert_eq!(code(&e), "ValidationException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_conditions_change_nothing_and_can_return_the_old_item() {
    let engine = engine_with(|_| {}).await;
    let d = engine.dynamodb_client_without_retries();
    table(&d, "failing").await;
    d.put_item()
        .table_name("failing")
        .item("pk", s("k"))
        .item("holder", s("w1"))
        .item("leaseCounter", n("5"))
        .send()
        .await
        .expect("put");
    let e = d
        .update_item()
        .table_name("failing")
        .key("pk", s("k"))
        .update_expression("SET holder = :me")
        .condition_expression("leaseCounter = :c")
        .expression_attribute_values(":me", s("w2"))
        .expression_attribute_values(":c", n("4"))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await
        .expect_err("stale hits");
    let service = e.into_service_error();
    assert!(service.is_conditional_check_failed_exception());
    let aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(
        ccf,
    ) = service
    else {
        panic!("typed error")
    };
    let old = ccf.item().expect("old item in the error");
    assert_eq!(old["holder"], s("w1"));
    assert_eq!(old["leaseCounter"], n("5"));
    assert_eq!(
        get(&d, "failing", "k").await.expect("item")["holder"],
        s("w1"),
        "nothing changed"
    );
    let e = d
        .delete_item()
        .table_name("failing")
        .key("pk", s("k"))
        .condition_expression("attribute_not_exists(holder)")
        .send()
        .await
        .expect_err("fails");
    assert!(
        e.into_service_error()
            .is_conditional_check_failed_exception()
    );
    assert!(get(&d, "failing", "k").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_lose_no_update() {
    let engine = engine_with(|_| {}).await;
    let d = engine.dynamodb_client_without_retries();
    table(&d, "race").await;
    d.put_item()
        .table_name("race")
        .item("pk", s("hits"))
        .item("v", n("0"))
        .send()
        .await
        .expect("put");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            let (mut wins, mut losses) = (0u64, 0u64);
            for _ in 0..25 {
                let cur = get(&d, "race", "hits").await.expect("item")["v"]
                    .as_n()
                    .expect("n")
                    .clone();
                let next = (cur.parse::<u64>().expect("int") + 1).to_string();
                match d
                    .update_item()
                    .table_name("race")
                    .key("pk", s("hits"))
                    .update_expression("SET v = :next")
                    .condition_expression("v = :cur")
                    .expression_attribute_values(":next", n(&next))
                    .expression_attribute_values(":cur", n(&cur))
                    .send()
                    .await
                {
                    Ok(_) => wins += 1,
                    Err(e) => {
                        assert!(
                            e.into_service_error()
                                .is_conditional_check_failed_exception()
                        );
                        losses += 1;
                    }
                }
            }
            (wins, losses)
        }));
    }
    let mut wins = 0;
    for t in tasks {
        let (w, l) = t.await.expect("task");
        assert_eq!(w + l, 25);
        wins += w;
    }
    let v = get(&d, "race", "hits").await.expect("item")["v"]
        .as_n()
        .expect("n")
        .clone();
    assert_eq!(
        v,
        wins.to_string(),
        "every successful increment counted once"
    );

    // attribute_not_exists: exactly one creator wins.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            d.put_item()
                .table_name("race")
                .item("pk", s("lease"))
                .item("holder", s(&format!("w{i}")))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await
                .map_err(|e| {
                    e.into_service_error()
                        .is_conditional_check_failed_exception()
                })
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => won += 1,
            Err(is_ccf) => assert!(is_ccf),
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_pages_each_item_exactly_once() {
    let engine = engine_with(|_| {}).await;
    let d = engine.dynamodb_client();
    table(&d, "scan").await;
    let mut puts = Vec::new();
    for w in 0..8 {
        let d = d.clone();
        puts.push(tokio::spawn(async move {
            for i in (w..10_000).step_by(8) {
                d.put_item()
                    .table_name("scan")
                    .item("pk", s(&format!("item-{i:05}")))
                    .item("i", n(&i.to_string()))
                    .send()
                    .await
                    .expect("put");
            }
        }));
    }
    for p in puts {
        p.await.expect("writer");
    }
    let mut seen = std::collections::HashSet::new();
    let mut start: Option<HashMap<String, AV>> = None;
    let mut pages = 0;
    loop {
        let out = d
            .scan()
            .table_name("scan")
            .limit(999)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .expect("scan");
        pages += 1;
        assert!(out.count() <= 999);
        for item in out.items() {
            assert!(
                seen.insert(item["pk"].as_s().expect("s").clone()),
                "seen twice"
            );
        }
        match out.last_evaluated_key() {
            Some(k) => start = Some(k.clone()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 10_000);
    assert_eq!(pages, 11);
    // FilterExpression, ProjectionExpression, Select COUNT.
    let out = d
        .scan()
        .table_name("scan")
        .filter_expression("i < :n")
        .expression_attribute_values(":n", n("10"))
        .projection_expression("i")
        .send()
        .await
        .expect("filtered");
    assert_eq!(out.count(), 10);
    assert_eq!(out.scanned_count(), 10_000);
    assert!(
        out.items()
            .iter()
            .all(|i| i.len() == 1 && i.contains_key("i"))
    );
    let out = d
        .scan()
        .table_name("scan")
        .select(Select::Count)
        .send()
        .await
        .expect("count");
    assert_eq!(out.count(), 10_000);
    assert!(out.items().is_empty());
    // The 1 MB page cap.
    table(&d, "wide").await;
    for i in 0..150 {
        d.put_item()
            .table_name("wide")
            .item("pk", s(&format!("w{i:03}")))
            .item("blob", AV::B(Blob::new(vec![7u8; 10_000])))
            .send()
            .await
            .expect("put");
    }
    let first = d.scan().table_name("wide").send().await.expect("page");
    assert!(
        first.count() < 150 && first.count() >= 100,
        "{}",
        first.count()
    );
    assert!(first.last_evaluated_key().is_some());
    let rest = d
        .scan()
        .table_name("wide")
        .set_exclusive_start_key(first.last_evaluated_key().cloned())
        .send()
        .await
        .expect("rest");
    assert_eq!(first.count() + rest.count(), 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_table_writes_of_the_consumer() {
    let engine = engine_with(|_| {}).await;
    let d = engine.dynamodb_client_without_retries();
    d.create_table()
        .table_name("app-leases")
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
        .expect("lease table");
    let lease = |d: Client| async move {
        d.get_item()
            .table_name("app-leases")
            .key("leaseKey", s("shardId-000000000000"))
            .consistent_read(true)
            .send()
            .await
            .expect("get")
            .item
            .expect("lease")
    };
    // Create (only if absent).
    let create = || {
        d.put_item()
            .table_name("app-leases")
            .item("leaseKey", s("shardId-000000000000"))
            .item("leaseCounter", n("0"))
            .item("checkpoint", s("TRIM_HORIZON"))
            .item("checkpointSubSequenceNumber", n("0"))
            .item("ownerSwitchesSinceCheckpoint", n("0"))
            .item("parentShardId", AV::Ss(vec!["shardId-000000000009".into()]))
            .item("startingHashKey", s("0"))
            .item(
                "endingHashKey",
                s("340282366920938463463374607431768211455"),
            )
            .condition_expression("attribute_not_exists(leaseKey)")
    };
    create().send().await.expect("created");
    assert!(
        create()
            .send()
            .await
            .expect_err("exists")
            .into_service_error()
            .is_conditional_check_failed_exception()
    );
    // Take: new owner, hits + 1, owner switches + 1, conditional on the hits.
    let take = |hits: &str, owner: &str| {
        d.update_item()
            .table_name("app-leases")
            .key("leaseKey", s("shardId-000000000000"))
            .update_expression("SET leaseOwner = :owner, leaseCounter = leaseCounter + :one, ownerSwitchesSinceCheckpoint = ownerSwitchesSinceCheckpoint + :one")
            .condition_expression("leaseCounter = :hits")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":one", n("1"))
            .expression_attribute_values(":hits", n(hits))
            .return_values(ReturnValue::AllNew)
    };
    let taken = take("0", "worker-a")
        .send()
        .await
        .expect("take")
        .attributes
        .expect("new");
    assert_eq!(taken["leaseOwner"], s("worker-a"));
    assert_eq!(taken["leaseCounter"], n("1"));
    assert_eq!(taken["ownerSwitchesSinceCheckpoint"], n("1"));
    // Renew: hits + 1, conditional on hits and owner.
    let renew = |hits: &str, owner: &str| {
        d.update_item()
            .table_name("app-leases")
            .key("leaseKey", s("shardId-000000000000"))
            .update_expression("SET leaseCounter = leaseCounter + :one")
            .condition_expression("leaseCounter = :hits AND leaseOwner = :owner")
            .expression_attribute_values(":one", n("1"))
            .expression_attribute_values(":hits", n(hits))
            .expression_attribute_values(":owner", s(owner))
    };
    renew("1", "worker-a").send().await.expect("renew");
    assert!(
        renew("1", "worker-a")
            .send()
            .await
            .expect_err("stale")
            .into_service_error()
            .is_conditional_check_failed_exception()
    );
    assert!(
        renew("2", "worker-b")
            .send()
            .await
            .expect_err("not owner")
            .into_service_error()
            .is_conditional_check_failed_exception()
    );
    // Checkpoint: sequence + sub-sequence, owner switches reset, hits + 1.
    d.update_item()
        .table_name("app-leases")
        .key("leaseKey", s("shardId-000000000000"))
        .update_expression("SET checkpoint = :seq, checkpointSubSequenceNumber = :sub, ownerSwitchesSinceCheckpoint = :zero, leaseCounter = leaseCounter + :one REMOVE pendingCheckpoint, pendingCheckpointSubSequenceNumber")
        .condition_expression("leaseCounter = :hits AND leaseOwner = :owner")
        .expression_attribute_values(":seq", s("49590338271490256608559692538361571095921575989136588898"))
        .expression_attribute_values(":sub", n("3"))
        .expression_attribute_values(":zero", n("0"))
        .expression_attribute_values(":one", n("1"))
        .expression_attribute_values(":hits", n("2"))
        .expression_attribute_values(":owner", s("worker-a"))
        .send()
        .await
        .expect("checkpoint");
    let l = lease(d.clone()).await;
    assert_eq!(
        l["checkpoint"],
        s("49590338271490256608559692538361571095921575989136588898")
    );
    assert_eq!(l["checkpointSubSequenceNumber"], n("3"));
    assert_eq!(l["ownerSwitchesSinceCheckpoint"], n("0"));
    assert_eq!(l["leaseCounter"], n("3"));
    // Release: owner removed, hits bumped.
    d.update_item()
        .table_name("app-leases")
        .key("leaseKey", s("shardId-000000000000"))
        .update_expression("REMOVE leaseOwner SET leaseCounter = leaseCounter + :one")
        .condition_expression("leaseCounter = :hits AND leaseOwner = :owner")
        .expression_attribute_values(":one", n("1"))
        .expression_attribute_values(":hits", n("3"))
        .expression_attribute_values(":owner", s("worker-a"))
        .send()
        .await
        .expect("release");
    let l = lease(d.clone()).await;
    assert!(!l.contains_key("leaseOwner"));
    assert_eq!(l["leaseCounter"], n("4"));
    // Another worker takes the released lease.
    take("4", "worker-b").send().await.expect("take released");
    let l = lease(d.clone()).await;
    assert_eq!(l["leaseOwner"], s("worker-b"));
    assert_eq!(l["ownerSwitchesSinceCheckpoint"], n("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_cover_dynamodb_operations() {
    let engine = engine_with(|_| {}).await;
    let d = engine.dynamodb_client_without_retries();
    table(&d, "faulty").await;
    engine.faults().throttle_next("DynamoDB.PutItem", 1);
    let e = d
        .put_item()
        .table_name("faulty")
        .item("pk", s("a"))
        .send()
        .await
        .expect_err("throttled");
    assert_eq!(code(&e), "ProvisionedThroughputExceededException");
    engine
        .faults()
        .error_next("GetItem", "ThrottlingException", 1);
    let e = d
        .get_item()
        .table_name("faulty")
        .key("pk", s("a"))
        .send()
        .await
        .expect_err("throttled");
    assert_eq!(code(&e), "ThrottlingException");
    engine.faults().fail_next("UpdateItem", 1);
    let e = d
        .update_item()
        .table_name("faulty")
        .key("pk", s("a"))
        .send()
        .await
        .expect_err("500");
    assert_eq!(code(&e), "InternalFailure");
    assert!(
        get(&d, "faulty", "a").await.is_none(),
        "a failed call changes nothing"
    );
    engine
        .faults()
        .add_latency("DynamoDB.GetItem", Duration::from_millis(150), Some(1));
    let start = std::time::Instant::now();
    assert!(get(&d, "faulty", "a").await.is_none());
    assert!(start.elapsed() >= Duration::from_millis(150));
    // The standard client's retries ride out a short outage.
    engine
        .faults()
        .pause(Duration::from_millis(200), stream_engine::OutageMode::Hang);
    engine
        .dynamodb_client()
        .put_item()
        .table_name("faulty")
        .item("pk", s("b"))
        .send()
        .await
        .expect("after outage");
    assert!(get(&d, "faulty", "b").await.is_some());
}
