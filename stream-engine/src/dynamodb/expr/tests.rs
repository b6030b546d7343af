//! Unit tests of the expression language.
use super::*;

fn ctx(names: &[(&str, &str)], values: &[(&str, AttrValue)]) -> Context {
    Context::new(
        names
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        values
            .iter()
            .map(|(a, b)| (a.to_string(), b.clone()))
            .collect(),
    )
}

fn n(s: &str) -> AttrValue {
    AttrValue::N(Decimal::parse(s).expect("number"))
}

#[test]
fn precedence_and_functions() {
    let mut c = ctx(
        &[("#o", "owner")],
        &[(":a", AttrValue::S("w1".into())), (":n", n("3"))],
    );
    let cond = parse_condition(
        "Condition",
        "attribute_not_exists(k) OR #o = :a AND NOT leaseCounter > :n",
        &mut c,
    )
    .expect("parses");
    c.check_all_used().expect("all used");
    let mut item = Item::new();
    item.insert("k".into(), AttrValue::S("x".into()));
    item.insert("owner".into(), AttrValue::S("w1".into()));
    item.insert("leaseCounter".into(), n("3"));
    assert!(evaluate(&cond, &item).expect("eval"));
    item.insert("leaseCounter".into(), n("4"));
    assert!(!evaluate(&cond, &item).expect("eval"));
}

#[test]
fn reserved_words_must_go_through_names() {
    let mut c = ctx(&[("#s", "status")], &[(":v", n("1"))]);
    let err = parse_condition("Condition", "status = :v", &mut c).expect_err("reserved");
    assert!(
        err.message.contains("reserved keyword: status"),
        "{}",
        err.message
    );
    let mut c = ctx(&[("#s", "status")], &[(":v", n("1"))]);
    parse_condition("Condition", "#s = :v", &mut c).expect("through a name");
}

#[test]
fn remove_uses_the_indexes_from_before_the_update_and_projections_must_not_overlap() {
    let mut c = ctx(&[], &[]);
    let u = parse_update("REMOVE l[0], l[2]", &mut c).expect("parses");
    let mut item = Item::new();
    item.insert(
        "l".into(),
        AttrValue::L(vec![n("0"), n("1"), n("2"), n("3")]),
    );
    apply_update(&mut item, &u, &[]).expect("applies");
    let AttrValue::L(rest) = &item["l"] else {
        panic!("list")
    };
    assert_eq!(rest, &vec![n("1"), n("3")]);
    let mut c = ctx(&[], &[]);
    let err = parse_projection("a, a.b", &mut c).expect_err("overlap");
    assert!(
        err.message
            .contains("Invalid ProjectionExpression: Two document paths overlap")
    );
    let mut c = ctx(&[], &[]);
    assert!(
        parse_projection("a, a", &mut c).is_err(),
        "a duplicate overlaps"
    );
}

#[test]
fn arithmetic_results_stay_in_the_number_range() {
    let mut c = ctx(
        &[],
        &[(":big", n("9.9999999999999999999999999999999999999e125"))],
    );
    let u = parse_update("SET x = x + :big", &mut c).expect("parses");
    let mut item = Item::new();
    item.insert("x".into(), n("9.9999999999999999999999999999999999999e125"));
    assert!(apply_update(&mut item, &u, &[]).is_err(), "past 1e126");
    let mut c = ctx(&[], &[(":big", n("9e125"))]);
    let u = parse_update("SET x = x + :big", &mut c).expect("parses");
    let mut item = Item::new();
    item.insert("x".into(), n("9e125"));
    assert!(
        apply_update(&mut item, &u, &[]).is_err(),
        "1.8e126 has few digits but is out of range"
    );
    assert!(Decimal::parse("1e126").is_none());
    assert!(Decimal::parse("12345e122").is_none(), "1.2345e126");
    assert!(Decimal::parse("1e-130").is_some());
    assert!(Decimal::parse("1e-131").is_none());
}

#[test]
fn deep_or_long_expressions_are_refused_not_a_stack_overflow() {
    let deep = format!("{}a = :v{}", "(".repeat(2000), ")".repeat(2000));
    let mut c = ctx(&[], &[(":v", n("1"))]);
    assert!(parse_condition("Condition", &deep, &mut c).is_err());
    let nots = format!("{}a = :v", "NOT ".repeat(1000));
    let mut c = ctx(&[], &[(":v", n("1"))]);
    assert!(parse_condition("Condition", &nots, &mut c).is_err());
    let long = vec!["a = :v"; 1000].join(" AND ");
    let mut c = ctx(&[], &[(":v", n("1"))]);
    let err = parse_condition("Condition", &long, &mut c).expect_err("over 4 KB");
    assert!(
        err.message.contains("maximum allowed size"),
        "{}",
        err.message
    );
}

#[test]
fn syntax_errors_name_the_position() {
    let mut c = ctx(&[], &[]);
    let err = parse_condition("Condition", "a = = b", &mut c).expect_err("syntax");
    assert!(err.message.contains("position 4"), "{}", err.message);
    let err = parse_update("SET a = :v", &mut c).expect_err("undefined value");
    assert!(err.message.contains(":v"));
    let err = parse_update("SET a = b SET c = d", &mut c).expect_err("twice");
    assert!(err.message.contains("only be used once"));
    let err = parse_update("SET a = b, a.c = d", &mut c).expect_err("overlap");
    assert!(err.message.contains("overlap"));
}
