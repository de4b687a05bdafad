use super::*;

fn classes(text: &str) -> RiskClasses {
    let set: PolicySet = text.parse().unwrap();
    RiskClasses::of(&set)
}

#[test]
fn comparisons_with_literals_give_classes_and_anything_else_exact_values() {
    let compare = r#"permit (principal, action, resource) when {
        context has risk && context.risk.principal has last_1h &&
        context.risk.principal.last_1h.distinct_subjects > 200 &&
        20 <= context.risk.principal.last_1h.refusals };"#;
    let RiskClasses::Literals(literals) = classes(compare) else {
        panic!("comparisons with literals are classes");
    };
    assert_eq!(literals["distinct_subjects"], BTreeSet::from([200]));
    assert_eq!(literals["refusals"], BTreeSet::from([20]));
    // Each way an indicator could be read otherwise.
    for unsafe_use in [
        "context.risk.principal.last_1h.distinct_subjects + 1 > 200",
        "context.risk.principal.last_1h.distinct_subjects > context.risk.principal.last_5m.distinct_subjects",
        "context.risk.principal.last_1h == {requests: 1}",
        "context.risk == {principal: {}}",
        "context == {purpose: \"x\"}",
        "context.risk.principal.last_1h.distinct_subjects > context.amount",
    ] {
        let text = format!("permit (principal, action, resource) when {{ {unsafe_use} }};");
        assert_eq!(classes(&text), RiskClasses::Exact, "{unsafe_use}");
    }
    // Other context attributes are no concern.
    let other = r#"permit (principal, action, resource) when {
        context.purpose == "x" && context.authentication.age_seconds <= 300 };"#;
    assert_eq!(classes(other), RiskClasses::Literals(BTreeMap::new()));
}

#[test]
fn a_class_stands_for_every_value_on_the_same_side_of_every_literal() {
    let literals = BTreeSet::from([20, 21, 200]);
    let cases = [
        (0, 19),
        (19, 19),
        (20, 20),
        (21, 21),
        (22, 22),
        (150, 22),
        (199, 22),
        (200, 200),
        (201, 201),
        (5000, 201),
    ];
    for (value, class) in cases {
        assert_eq!(representative(&literals, value), class, "{value}");
    }
    assert_eq!(representative(&BTreeSet::new(), 7), 0);
}
