use super::*;

fn key(k: &str) -> Step {
    Step::Key(k.into())
}

fn rewrite(body: &str, edits: &[(Path, Edit)]) -> Result<String, DocumentError> {
    Document::parse(body.as_bytes())?.rewrite(edits)
}

#[test]
fn untouched_bytes_stay_exactly_as_they_came() {
    let body = "{ \"amount\" : 1.10,\n  \"big\": 123456789012345678901234567890,\
                \"pan\":\"4111111111111111\" , \"e\": -0.0e-7, \"u\": \"\\u00e9\" }";
    let out = rewrite(body, &[(vec![key("pan")], Edit::Replace("\"X\"".into()))]).unwrap();
    assert_eq!(out, body.replace("\"4111111111111111\"", "\"X\""));
}

#[test]
fn removal_keeps_the_container_valid() {
    // (body, members to remove, expected)
    let cases: &[(&str, &[&str], &str)] = &[
        (r#"{"a":1,"b":2,"c":3}"#, &["a"], r#"{"b":2,"c":3}"#),
        (r#"{"a":1,"b":2,"c":3}"#, &["b"], r#"{"a":1,"c":3}"#),
        (r#"{"a":1,"b":2,"c":3}"#, &["c"], r#"{"a":1,"b":2}"#),
        (r#"{"a":1,"b":2,"c":3}"#, &["b", "c"], r#"{"a":1}"#),
        (r#"{"a":1,"b":2,"c":3}"#, &["a", "c"], r#"{"b":2}"#),
        (r#"{"a":1,"b":2,"c":3}"#, &["a", "b", "c"], r#"{}"#),
        (r#"{ "a" : 1 , "b" : 2 }"#, &["a"], r#"{ "b" : 2 }"#),
        (r#"{ "a" : 1 , "b" : 2 }"#, &["b"], r#"{ "a" : 1 }"#),
        (r#"{"a":{"x":[1,2]}}"#, &["a"], r#"{}"#),
    ];
    for (body, remove, expected) in cases {
        let edits: Vec<_> = remove
            .iter()
            .map(|k| (vec![key(k)], Edit::Remove))
            .collect();
        let out = rewrite(body, &edits).unwrap();
        assert_eq!(&out, expected, "{body} without {remove:?}");
        serde_json::from_str::<Value>(&out).expect("still JSON");
    }
}

#[test]
fn array_elements_and_nested_paths() {
    let body =
        r#"{"customers":[{"id":1,"iban":"GB82WEST12345698765432"},{"id":2,"iban":"DE89"}],"n":2}"#;
    let iban = |i| vec![key("customers"), Step::Index(i), key("iban")];
    let out = rewrite(
        body,
        &[
            (iban(0), Edit::Replace("\"A\"".into())),
            (iban(1), Edit::Remove),
        ],
    )
    .unwrap();
    assert_eq!(out, r#"{"customers":[{"id":1,"iban":"A"},{"id":2}],"n":2}"#);
    let out = rewrite(
        body,
        &[(vec![key("customers"), Step::Index(0)], Edit::Remove)],
    )
    .unwrap();
    assert_eq!(out, r#"{"customers":[{"id":2,"iban":"DE89"}],"n":2}"#);
}

#[test]
fn an_edit_inside_a_removed_member_is_moot() {
    let body = r#"{"a":{"b":1},"c":2}"#;
    let out = rewrite(
        body,
        &[
            (vec![key("a"), key("b")], Edit::Replace("9".into())),
            (vec![key("a")], Edit::Remove),
        ],
    )
    .unwrap();
    assert_eq!(out, r#"{"c":2}"#);
}

#[test]
fn refuses_what_it_cannot_rewrite_faithfully() {
    // (body, expected error)
    let cases: &[(&[u8], DocumentError)] = &[
        (br#"{"pan":"1","pan":"2"}"#, DocumentError::DuplicateKey),
        (
            br#"{"a":{"pan":"1","pan":"2"}}"#,
            DocumentError::DuplicateKey,
        ),
        (br#"[{"x":1},{"y":1,"y":2}]"#, DocumentError::DuplicateKey),
        (br#"{"a":1"#, DocumentError::Invalid),
        (b"{\"a\":\"\xff\"}", DocumentError::Invalid),
        (br#"{"a":1} x"#, DocumentError::Invalid),
        (b"", DocumentError::Invalid),
        // Beyond f64: valid JSON, but no selector could be evaluated on it faithfully.
        (br#"{"e":1e400}"#, DocumentError::Invalid),
    ];
    for (body, expected) in cases {
        let got = Document::parse(body).err();
        assert_eq!(
            got.as_ref(),
            Some(expected),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let doc = Document::parse(br#"{"a":1}"#).unwrap();
    assert_eq!(
        doc.rewrite(&[(vec![], Edit::Remove)]),
        Err(DocumentError::NoSuchPath)
    );
    assert_eq!(
        doc.rewrite(&[(vec![key("b")], Edit::Replace("1".into()))]),
        Err(DocumentError::NoSuchPath)
    );
}

#[test]
fn text_at_gives_exact_value_text() {
    let doc = Document::parse(br#"{"n": 1.10, "s": "a\"b", "o": {"k": [1, 2]}}"#).unwrap();
    assert_eq!(doc.text_at(&[key("n")]), Some("1.10"));
    assert_eq!(doc.text_at(&[key("s")]), Some(r#""a\"b""#));
    assert_eq!(doc.text_at(&[key("o")]), Some(r#"{"k": [1, 2]}"#));
    assert_eq!(
        doc.text_at(&[key("o"), key("k"), Step::Index(1)]),
        Some("2")
    );
    assert_eq!(doc.text_at(&[key("zz")]), None);
}

#[test]
fn keys_with_escapes_are_found() {
    let body = r#"{"p\u0061n":"1","x":"\"pan\":"}"#;
    let out = rewrite(body, &[(vec![key("pan")], Edit::Replace("\"T\"".into()))]).unwrap();
    assert_eq!(out, r#"{"p\u0061n":"T","x":"\"pan\":"}"#);
}
