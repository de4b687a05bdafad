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

/// Names and strings written without escapes are the body's own bytes, not copies; escaped
/// ones are decoded copies.
#[test]
fn unescaped_text_is_borrowed_from_the_body() {
    let body = r#"{"plain":"value","p\u0061n":"4\u0031","nested":{"k":["v"]}}"#;
    let doc = Document::parse(body.as_bytes()).unwrap();
    let Kind::Object(members) = doc.root().kind() else {
        panic!("an object")
    };
    fn string<'d, 'a>(n: &'d Node<'a>) -> &'d Cow<'a, str> {
        match n.kind() {
            Kind::String(s) => s,
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(members[0].name, Cow::Borrowed(_)));
    assert!(matches!(string(&members[0].value), Cow::Borrowed(_)));
    assert_eq!(
        (&*members[1].name, &**string(&members[1].value)),
        ("pan", "41")
    );
    assert!(matches!(members[1].name, Cow::Owned(_)));
    assert!(matches!(string(&members[1].value), Cow::Owned(_)));
    let inner = doc.root().get("nested").and_then(|n| n.get("k")).unwrap();
    let Kind::Array(items) = inner.kind() else {
        panic!("an array")
    };
    assert!(matches!(string(&items[0]), Cow::Borrowed(_)));
}

/// The one-pass reader accepts exactly what serde_json accepts (less duplicate keys), builds
/// the value serde_json builds, and every span holds its value: white space, number
/// grammar and range, escapes and surrogates, control characters, structure, nesting limit.
#[test]
fn reads_exactly_what_serde_json_reads() {
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let deep_objects = |n: usize| format!("{}1{}", r#"{"a":"#.repeat(n), "}".repeat(n));
    let mut cases: Vec<Vec<u8>> = [
        " \t\n\r{} \n",
        "\u{feff}{}",
        "\x0c{}",
        "{}\x0c",
        "",
        " ",
        "{}",
        "[]",
        "null",
        "true",
        "false",
        "tru",
        "nulll",
        "\"s\"",
        "0",
        "-0",
        "-0.0",
        "01",
        "-01",
        "-",
        "1.",
        ".5",
        "1e",
        "1e+",
        "1E5",
        "1e-5",
        "-0.0e-7",
        "1e400",
        "-1e400",
        "1e-400",
        "123456789012345678901234567890",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "+1",
        "0x10",
        "Infinity",
        "-Infinity",
        "NaN",
        "1.7976931348623157e308",
        "4.9e-324",
        "[1,]",
        "[,1]",
        r#"{"a":1,}"#,
        "[",
        "]",
        r#"{"a" 1}"#,
        "{1:2}",
        "[1 2]",
        r#"{"a":1}{}"#,
        r#"{"a":1} x"#,
        r#"{"a":1}   "#,
        r#""\ud800""#,
        r#""\ud800\u0041""#,
        r#""\udc00""#,
        r#""\ud83d\ude00""#,
        r#""\ud83d\ud83d""#,
        r#""\ud83d""#,
        r#""\ud83d\""#,
        "\"\u{1}\"",
        "\"a\tb\"",
        "\"\u{7f}\"",
        r#""\x""#,
        r#""\u12""#,
        r#""\u12g4""#,
        r#""\/\b\f\n\r\t\"\\""#,
        r#""\U0041""#,
        "\"unterminated",
        r#"{"a":"b"#,
        r#"{"k\u0000":1}"#,
        r#"{"a":1,"a":2}"#,
        r#"{"a":1,"\u0061":2}"#,
        r#"{"a":{"b":1},"a":2,}"#,
        r#"[{"x":1},{"x":2}]"#,
        r#"{"":1,"":2}"#,
        r#"{"é":1,"e\u0301":2}"#,
        "[true ,false , null]",
        r#"{ "customer" : { "pan" : "4111" , "n" : [ 1.10 , -2e3 , { } , [ ] ] } }"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    cases.extend([
        b"\"\xff\"".to_vec(),
        b"{\"\xc3\xa9\":1}".to_vec(),
        b"\"\xed\xa0\x80\"".to_vec(),
    ]);
    for n in [126, 127, 128, 129] {
        cases.push(deep(n).into_bytes());
        cases.push(deep_objects(n).into_bytes());
    }
    let mut accepted = 0;
    for body in &cases {
        let shown = String::from_utf8_lossy(body);
        match check_against_serde_json(body) {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(e) => panic!("{e}: {shown}"),
        }
    }
    assert!(accepted > 30, "{accepted} accepted");
    for dup in [
        r#"{"a":1,"\u0061":2}"#,
        r#"{"":1,"":2}"#,
        r#"[{"x":1},{"y":1,"y":2}]"#,
    ] {
        assert_eq!(
            Document::parse(dup.as_bytes()).err(),
            Some(DocumentError::DuplicateKey),
            "{dup}"
        );
    }
    // Invalid as well as duplicated: refused as invalid.
    assert_eq!(
        Document::parse(br#"{"a":{"b":1},"a":2,}"#).err(),
        Some(DocumentError::Invalid)
    );
}
