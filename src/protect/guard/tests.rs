use super::*;
use crate::protect::document::Document;
use serde_json::{json, Value};

/// `body` as the gateway reads one: its text parsed into a document.
fn parsed(body: &Value) -> String {
    body.to_string()
}

fn scan(g: &Guard, body: &Value, covered: &Covered<'_>) -> Vec<Finding> {
    let text = parsed(body);
    g.scan(Document::parse(text.as_bytes()).unwrap().root(), covered)
}

fn scan_known(g: &Guard, body: &Value, known: &Known<'_>) -> Vec<(Finding, Path)> {
    let text = parsed(body);
    g.scan_known(Document::parse(text.as_bytes()).unwrap().root(), known)
}

fn envelopes(g: &Guard, body: &Value, covered: &Covered<'_>) -> Vec<String> {
    let text = parsed(body);
    g.envelopes(Document::parse(text.as_bytes()).unwrap().root(), covered)
}

/// `body` with what the guard finds masked in place (as a masking route's guard does), and
/// the findings.
fn masked_body(g: &Guard, body: &Value) -> (Value, Vec<Finding>) {
    let text = parsed(body);
    let doc = Document::parse(text.as_bytes()).unwrap();
    let findings = g.scan_known(doc.root(), &Known::nothing(&NOTHING_COVERED));
    let edits = g.mask_edits(&doc, &findings, &not_authentic).unwrap();
    let rewritten = doc.rewrite(&edits).unwrap();
    let findings = findings.into_iter().map(|(f, _)| f).collect();
    (serde_json::from_str(&rewritten).unwrap(), findings)
}

fn guard() -> Guard {
    let spec: GuardSpec = toml::from_str(
        r#"
        action = "mask"
        custom = [{ name = "ssn", pattern = '\b\d{3}-\d{2}-\d{4}\b' }]
        "#,
    )
    .unwrap();
    Guard::new(&spec).unwrap()
}

fn member(name: &str) -> Step {
    Step::Key(name.into())
}

/// The detectors that fire on `text` as a whole body.
fn detect(text: &str) -> Vec<String> {
    let findings = scan(&guard(), &json!({ "notes": text }), &NOTHING_COVERED);
    findings.into_iter().map(|f| f.detector).collect()
}

#[test]
fn detectors_table() {
    for (text, want) in [
        // cards: Luhn, length, first digit
        ("4111 1111 1111 1111", &["card"][..]),
        ("paid with 5555-5555-5555-4444 yesterday", &["card"]),
        ("378282246310005", &["card"]),
        ("4111111111111112", &[]),
        ("411111111111", &[]),
        ("1700000000004", &[]), // Luhn-valid ms timestamp: starts with 1
        ("41111111111111110000", &[]), // 20 digits
        // IBANs: country length and mod-97
        ("DE89 3704 0044 0532 0130 00", &["iban"]),
        ("iban GB82WEST12345698765432.", &["iban"]),
        ("DE89 3704 0044 0532 0130 00 and more", &["iban"]),
        ("DE89370400440532013001", &[]),
        ("XX89370400440532013000", &[]),
        // emails
        ("write to jane.doe+x@mail.example.com today", &["email"]),
        ("a@b", &[]),
        ("user @ example.com", &[]),
        // phones
        ("call +44 20 7946 0958", &["phone"]),
        ("+1 (555) 123-4567", &["phone"]),
        ("order 12345678", &[]),
        ("+12", &[]),
        ("+1234567890123456789", &[]),
        // custom regex
        ("ssn 123-45-6789", &["ssn"]),
        ("123-456-789", &[]),
        // several in one text
        ("4111111111111111 jane@example.com", &["card", "email"]),
    ] {
        assert_eq!(detect(text), want, "{text}");
    }
}

/// A card number in another script's digits is that number to an upstream that parses
/// Unicode digits (Java, .NET, Python): it is found like the ASCII one, and masked.
#[test]
fn card_numbers_in_any_scripts_digits_are_found() {
    let written_in = |zero: u32, number: &str| -> String {
        number
            .chars()
            .map(|c| match c.to_digit(10) {
                Some(d) => char::from_u32(zero + d).unwrap(),
                None => c,
            })
            .collect()
    };
    // Fullwidth, Arabic-Indic, Devanagari, and two runs of the adjoining mathematical
    // digits (bold, the first; monospace, the fifth).
    for zero in [0xFF10, 0x0660, 0x0966, 0x1D7CE, 0x1D7F6] {
        for (number, want) in [
            ("4111 1111 1111 1111", &["card"][..]),
            ("paid with 5555-5555-5555-4444 yesterday", &["card"]),
            ("4111111111111112", &[]),
            ("1700000000004", &[]),
        ] {
            let text = written_in(zero, number);
            assert_eq!(detect(&text), want, "{zero:x}: {text}");
        }
        // Scripts mixed within one number are still that number.
        let mixed = format!("4111{}", written_in(zero, "111111111111"));
        assert_eq!(detect(&mixed), ["card"], "{zero:x}: {mixed}");
        let masked = guard().mask_text(&written_in(zero, "card 4111111111111111"));
        assert_eq!(
            masked,
            format!("{}****************", written_in(zero, "card "))
        );
    }
    for (c, want) in [
        ('a', None),
        ('\u{b9}', None),
        ('\u{2163}', None),
        ('7', Some(7)),
    ] {
        assert_eq!(detectors::decimal_value(c), want, "{c}");
    }
}

/// A string shaped like a gateway output is skipped only when the caller authenticated it;
/// a lookalike carrying personal data in its payload or key name is scanned like any text.
#[test]
fn only_authenticated_outputs_are_skipped() {
    let key = crate::keys::DataKey::new(
        "pan",
        1,
        crate::keys::KeyKind::Aead,
        zeroize::Zeroizing::new(vec![3; 32]),
    )
    .unwrap();
    let sealed = crate::protect::transform::encrypt::seal(
        &key,
        &crate::protect::transform::Binding::class("pan"),
        "\"4111111111111111\"",
    )
    .unwrap();
    let sealed: String = serde_json::from_str(&sealed).unwrap();
    let g = Guard::new(&GuardSpec {
        custom: vec![CustomDetector {
            name: "envelope".into(),
            pattern: r"pg[vt]1\.pan\.".into(),
        }],
        ..GuardSpec::default()
    })
    .unwrap();
    let authentic = |s: &str| s == sealed;
    let scan = |text: &str| {
        let body = json!({ "notes": text });
        let known = Known {
            authentic: &authentic,
            ..Known::nothing(&NOTHING_COVERED)
        };
        let found: Vec<String> = scan_known(&g, &body, &known)
            .into_iter()
            .map(|(f, _)| f.detector)
            .collect();
        found
    };
    assert_eq!(scan(&sealed), Vec::<String>::new());
    assert_eq!(
        scan(&format!("see {sealed} for details")),
        Vec::<String>::new()
    );
    for (text, want) in [
        ("pgt1.pan.1.4111111111111111", &["card", "envelope"][..]),
        ("pgv1.pan.1.4111111111111111", &["card", "envelope"]),
        (
            "see pgt1.pan.1.4111111111111111 for details",
            &["card", "envelope"],
        ),
        ("pgt1.4111111111111111.1.AAAA", &["card"]),
        ("pgh1.customer.2.4111111111111111", &["card"]),
        ("pgx1.pan.1.4111111111111111", &["card"]),
    ] {
        assert_eq!(scan(text), want, "{text}");
    }
    // What the caller is asked to authenticate: envelope-shaped words outside covered
    // locations, pseudonyms (one-way, cannot be authenticated) left out.
    let body = json!({
        "a": sealed, "b": "x pgt1.pan.1.QUFB y", "c": "pgh1.customer.2.QUFB",
        "covered": "pgt1.pan.1.QkJC",
    });
    let mut want = vec![sealed.clone(), "pgt1.pan.1.QUFB".to_owned()];
    want.sort();
    let covered = [vec![member("covered")]];
    assert_eq!(envelopes(&g, &body, &Covered::of(&covered)), want);
}

/// Member names are scanned like values (a map keyed by card number or email), including
/// a covered member's own name; names inside a covered subtree are the rules' business.
#[test]
fn member_names_are_scanned() {
    let body = json!({
        "by_card": { "4111 1111 1111 1111": { "limit": 5 } },
        "jane@example.com": "owner",
        "pans": { "5555555555554444": "covered value, uncovered name" },
        "covered": { "+44 20 7946 0958": 1 },
    });
    let covered = [
        vec![member("pans"), member("5555555555554444")],
        vec![member("covered")],
    ];
    let findings = scan(&guard(), &body, &Covered::of(&covered));
    let got: Vec<(&str, &str, bool)> = findings
        .iter()
        .map(|f| (f.path.as_str(), f.detector.as_str(), f.in_name))
        .collect();
    assert_eq!(
        got,
        [
            ("$['by_card']['**** **** **** ****']", "card", true),
            ("$['****@*******.***']", "email", true),
            ("$['pans']['****************']", "card", true),
        ]
    );
}

/// A finding's path is reported (logs, errors): a member name on it that holds what the
/// detectors find, the finding's own or an ancestor's, is masked there, and the rest of the
/// path is kept to say where.
#[test]
fn reported_paths_never_show_detected_names() {
    let body = json!({
        "jane@example.com": { "note": "card 4111 1111 1111 1111", "plain": [ "+44 20 7946 0958" ] },
        "ids": { "ref 5555555555554444 x": { "ok": 1 } },
    });
    let findings = scan(&guard(), &body, &NOTHING_COVERED);
    let paths: Vec<&str> = findings.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "$['****@*******.***']",
            "$['****@*******.***']['note']",
            "$['****@*******.***']['plain'][0]",
            "$['ids']['ref **************** x']",
        ]
    );
    let shown = format!("{findings:?}");
    for value in ["jane", "4111", "5555", "7946"] {
        assert!(!shown.contains(value), "{shown}");
    }
}

/// Every number form an upstream may read as a card number is scanned by its integer
/// part, from the body's exact text when the caller has it; fractions are not.
#[test]
fn numbers_are_scanned_in_every_form() {
    // A 19-digit card: beyond f64, so only the exact text shows it.
    let digits: Vec<u8> = "455555555555555555".bytes().map(|b| b - b'0').collect();
    let check = (0..10u8)
        .find(|d| {
            let mut all = digits.clone();
            all.push(*d);
            crate::protect::transform::luhn::is_valid(&all)
        })
        .unwrap();
    let long_card = format!("455555555555555555{check}.0");
    let cases = [
        ("4111111111111111", true),
        ("4111111111111111.0", true),
        ("4111111111111111.75", true),
        ("4.111111111111111e15", true),
        ("4.111111111111111E+15", true),
        ("41111111111111110e-1", true),
        ("0.4111111111111111e16", true),
        ("-4111111111111111", true),
        ("-4.111111111111111e15", true),
        (long_card.as_str(), true),
        ("51.50735123456789", false),
        ("0.4111111111111111", false),
        ("1700000000004.0", false),
        ("4111111111111112.0", false),
        ("1e400", false),
        ("12.5", false),
    ];
    for (text, card) in cases {
        // Scanned from the body's own text: the digits of a number beyond f64 included.
        let body = format!("{{\"n\":{text}}}");
        let found = match Document::parse(body.as_bytes()) {
            Ok(doc) => guard().scan(doc.root(), &NOTHING_COVERED),
            // Out of f64's range: not a body the gateway passes on at all.
            Err(_) => Vec::new(),
        };
        assert_eq!(!found.is_empty(), card, "{text}: {found:?}");
    }
    assert!(Document::parse(b"{\"n\":1e400}").is_err());
    assert_eq!(
        integer_digits("4.111111111111111e15").as_deref(),
        Some("4111111111111111")
    );
    assert_eq!(integer_digits("-0.5").as_deref(), Some("0"));
    assert_eq!(integer_digits("12e3").as_deref(), Some("12000"));
    assert_eq!(integer_digits("1e99").as_deref(), None);
    for (text, integer) in [
        ("100", "100"),
        ("-0", "0"),
        ("0.0", "0"),
        ("007", "7"),
        ("1.5e1", "15"),
        ("12.345e1", "123"),
        ("0.0012e3", "1"),
        ("5e-3", "0"),
        ("4111111111111111e0", "4111111111111111"),
    ] {
        assert_eq!(integer_digits(text).as_deref(), Some(integer), "{text}");
    }
}

#[test]
fn covered_paths_and_subtrees_are_skipped() {
    let body = json!({
        "customer": { "iban": "DE89370400440532013000", "email": "jane@example.com" },
        "notes": "card 4111 1111 1111 1111",
        "pan": 4111111111111111u64,
    });
    let covered = [
        vec![member("customer"), member("iban")],
        vec![member("pan")],
    ];
    let findings = scan(&guard(), &body, &Covered::of(&covered));
    let got: Vec<(&str, &str)> = findings
        .iter()
        .map(|f| (f.path.as_str(), f.detector.as_str()))
        .collect();
    assert_eq!(
        got,
        [("$['customer']['email']", "email"), ("$['notes']", "card")]
    );
    let customer = [vec![member("customer")]];
    let subtree = scan(&guard(), &body, &Covered::of(&customer));
    assert_eq!(subtree.len(), 2, "{subtree:?}");
    assert!(subtree
        .iter()
        .any(|f| f.path == "$['pan']" && f.detector == "card"));
}

#[test]
fn nested_values_have_normalized_paths_and_no_value() {
    let body = json!({
        "a": [{ "b": ["x", "jane@example.com"] }, 5555555555554444u64],
        "it's": { "k/e~y": "+44 20 7946 0958" },
    });
    let findings = scan(&guard(), &body, &NOTHING_COVERED);
    let paths: Vec<&str> = findings.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        ["$['a'][0]['b'][1]", "$['a'][1]", "$['it's']['k/e~y']"]
    );
    let shown = format!("{findings:?}");
    for value in ["jane", "5555", "7946"] {
        assert!(!shown.contains(value), "{shown}");
    }
}

/// Our paths are the strings serde_json_path's `query_located` gives for the same nodes,
/// which is what the caller's covered set holds.
#[test]
fn paths_match_serde_json_path() {
    let body = json!({
        "customers": [{ "iban": "x", "tags": ["a", { "q'uote": 1 }] }],
        "sp ace": null, "u\u{e9}": true, "": "empty"
    });
    let text = parsed(&body);
    let doc = Document::parse(text.as_bytes()).unwrap();
    let mut ours = Vec::new();
    walk(
        doc.root(),
        &mut Location::root(),
        &NOTHING_COVERED,
        &mut |at, scanned| {
            if matches!(scanned, Scanned::Value(_)) {
                ours.push(at.normalized(str::to_owned))
            }
        },
    );
    let query = serde_json_path::JsonPath::parse("$..*").unwrap();
    let mut theirs: Vec<String> = query
        .query_located(&body)
        .into_iter()
        .filter(|node| !node.node().is_object() && !node.node().is_array())
        .map(|node| node.location().to_string())
        .collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs);
}

#[test]
fn mask_mode_masks_spans_in_place() {
    let g = guard();
    assert_eq!(
        g.mask_text("card 4111 1111 1111 1111, mail jane@example.com."),
        "card **** **** **** ****, mail ****@*******.***."
    );
    let body = json!({ "notes": "iban DE89 3704 0044 0532 0130 00 ok", "pan": 4111111111111111u64, "n": 7 });
    let (body, findings) = masked_body(&g, &body);
    assert_eq!(findings.len(), 2);
    assert_eq!(
        body,
        json!({ "notes": "iban **** **** **** **** **** ** ok", "pan": "****************", "n": 7 })
    );
    assert_eq!(g.action(), GuardAction::Mask);
}

#[test]
fn config_is_checked() {
    let spec: GuardSpec = toml::from_str("").unwrap();
    assert_eq!(spec, GuardSpec::default());
    assert_eq!(spec.action, GuardAction::Block);
    assert!(toml::from_str::<GuardSpec>(r#"detectors = ["ssn"]"#).is_err());
    assert!(toml::from_str::<GuardSpec>(r#"action = "drop""#).is_err());
    let only_iban: GuardSpec = toml::from_str(r#"detectors = ["iban"]"#).unwrap();
    let g = Guard::new(&only_iban).unwrap();
    assert!(scan(&g, &json!("4111111111111111"), &NOTHING_COVERED).is_empty());
    let custom = |name: &str, pattern: &str| GuardSpec {
        custom: vec![CustomDetector {
            name: name.into(),
            pattern: pattern.into(),
        }],
        ..GuardSpec::default()
    };
    assert!(matches!(
        Guard::new(&custom("ssn", "(")),
        Err(GuardError::Pattern { .. })
    ));
    assert!(matches!(
        Guard::new(&custom("card", "x")),
        Err(GuardError::Name { .. })
    ));
    assert!(matches!(
        Guard::new(&custom("", "x")),
        Err(GuardError::Name { .. })
    ));
    assert!(matches!(
        Guard::new(&custom("big", "\\w{5000}{5000}")),
        Err(GuardError::Pattern { .. })
    ));
}

#[test]
fn marks_admit_the_shortest_matches() {
    type Find = fn(&str, detectors::Marks) -> Vec<Range<usize>>;
    for (name, detector, text) in [
        ("card", detectors::cards as Find, "4222222222222"),
        ("card", detectors::cards, "x ４２２２２２２２２２２２２ y"),
        ("iban", detectors::ibans, "NO9386011117947"),
        ("phone", detectors::phones, "+1234567"),
        ("phone", detectors::phones, "+1٢٣٤٥٦٧"),
        ("email", detectors::emails, "a@b.io"),
    ] {
        let found = detector(text, detectors::Marks::of(text));
        assert!(!found.is_empty(), "{name}: {text}");
        assert_eq!(found, detector(text, detectors::Marks::admitting_all()));
    }
}

proptest::proptest! {
    /// A text a detector is skipped for by its marks (too few digits, no `@`, too short for
    /// an IBAN) holds no match of it: each built-in finds the same spans with the marks
    /// read as without them, on texts near every threshold, in ASCII and other scripts.
    #[test]
    fn marks_never_hide_a_match(
        text in proptest::prop_oneof![
            "[0-9 +@a-zA-Z.()-]{0,40}",
            "[0-9４٤ſK +@A-Z.-]{0,30}",
            "(\\+[1-9][0-9 ]{5,8})|([2-6][0-9]{11,13})|([A-Z]{2}[0-9]{2}[A-Z0-9]{9,13})",
            "[a-z.]{1,6}@[a-z]{1,5}\\.[a-z]{2,3}",
        ]
    ) {
        let marks = detectors::Marks::of(&text);
        let all = detectors::Marks::admitting_all();
        for (name, detector) in [
            ("card", detectors::cards as fn(&str, detectors::Marks) -> Vec<Range<usize>>),
            ("iban", detectors::ibans),
            ("email", detectors::emails),
            ("phone", detectors::phones),
        ] {
            proptest::prop_assert_eq!(detector(&text, marks), detector(&text, all), "{}", name);
        }
    }

    /// Scanning and masking any text never panics, and masking keeps its length in
    /// characters (a span is masked character for character).
    #[test]
    fn masking_any_text_keeps_its_shape(
        text in proptest::prop_oneof![
            proptest::prelude::any::<String>(),
            "[0-9 +@a-zA-Z.()-]{0,60}",
        ]
    ) {
        let g = guard();
        let masked = g.mask_text(&text);
        proptest::prop_assert_eq!(masked.chars().count(), text.chars().count());
        let (body, findings) = masked_body(&g, &json!({ "t": text }));
        proptest::prop_assert!(findings.iter().all(|f| f.path == "$['t']"));
        proptest::prop_assert_eq!(body["t"].as_str().unwrap(), masked.as_str());
    }
}

/// Every path of `value` (the root's included), in document order.
fn all_paths(value: &Value) -> Vec<Path> {
    let text = parsed(value);
    let doc = Document::parse(text.as_bytes()).unwrap();
    let mut paths = vec![Vec::new()];
    walk(
        doc.root(),
        &mut Location::root(),
        &NOTHING_COVERED,
        &mut |at, scanned| {
            if let Scanned::Name(_) = scanned {
                paths.push(at.path());
            }
        },
    );
    let mut elements = Vec::new();
    for path in &paths {
        let node = doc.root().at(path.iter().map(Step::as_ref));
        if let Some(Kind::Array(items)) = node.map(Node::kind) {
            elements.extend((0..items.len()).map(|i| [&path[..], &[Step::Index(i)]].concat()));
        }
    }
    paths.extend(elements);
    paths
}

/// A body with personal data in values, member names and array elements at every depth.
fn layered_body() -> Value {
    json!({
        "a": { "4111 1111 1111 1111": { "mail": "jane@example.com" }, "n": 5555555555554444u64 },
        "b": [ "+44 20 7946 0958", { "iban": "DE89370400440532013000", "x": ["a@b.io"] } ],
        "c": "card 4111111111111111",
        "it's": { "k/e~y": "+44 20 7946 0958" },
        "": [ [ "jane@example.com" ] ],
    })
}

/// Covered locations in any order, repeated, nested in one another or the root: the tree
/// holds each once and covers exactly their subtrees.
#[test]
fn covered_tree_from_any_paths() {
    let body = layered_body();
    let all = |covered: &[Path]| scan(&guard(), &body, &Covered::of(covered)).len();
    let none = all(&[]);
    assert_eq!(none, 9, "{:?}", scan(&guard(), &body, &NOTHING_COVERED));
    assert_eq!(all(&[Vec::new()]), 0, "the root covers everything");
    let a = vec![member("a")];
    let a_n = vec![member("a"), member("n")];
    let card_name = vec![member("a"), member("4111 1111 1111 1111")];
    assert_eq!(
        all(&[card_name]),
        none - 1,
        "a covered member's own name is scanned"
    );
    let b1 = vec![member("b"), Step::Index(1)];
    assert_eq!(all(std::slice::from_ref(&a_n)), none - 1);
    assert_eq!(all(&[a_n.clone(), a.clone(), a_n.clone()]), none - 3);
    assert_eq!(all(&[b1.clone(), a.clone(), b1]), none - 5);
    assert_eq!(all(&[vec![member("b"), Step::Index(7)]]), none);
    assert_eq!(
        all(&[vec![Step::Index(0)]]),
        none,
        "an index is not a member"
    );
}

proptest::proptest! {
    /// Against a model: with any set of covered locations, the findings are those of the
    /// whole body less values under a covered location (itself included) and member names
    /// strictly under one (a covered member's own name is still scanned).
    #[test]
    fn covered_locations_skip_exactly_their_subtrees(
        chosen in proptest::sample::subsequence((0..all_paths(&layered_body()).len()).collect::<Vec<_>>(), 0..6)
    ) {
        let body = layered_body();
        let paths = all_paths(&body);
        let covered: Vec<Path> = chosen.iter().map(|&i| paths[i].clone()).collect();
        let g = guard();
        let got = scan_known(&g, &body, &Known::nothing(&Covered::of(&covered)));
        let want: Vec<(Finding, Path)> = scan_known(&g, &body, &Known::nothing(&NOTHING_COVERED))
            .into_iter()
            .filter(|(finding, path)| {
                !covered.iter().any(|c| {
                    path.starts_with(c) && (!finding.in_name || c.len() < path.len())
                })
            })
            .collect();
        proptest::prop_assert_eq!(got, want);
    }
}

proptest::proptest! {
    /// Any integer, written as JSON may write it (plain, with a fraction, an exponent, a
    /// sign, shifted digits, leading zeros in the fraction), reads as its own digits.
    #[test]
    fn integer_digits_read_every_form(n in proptest::prelude::any::<u64>(), fraction in "[0-9]{0,4}") {
        let digits = n.to_string();
        let shifted = format!("{}.{}e{}", &digits[..1], &digits[1..], digits.len() - 1);
        for text in [
            digits.clone(),
            format!("{digits}.{fraction}0"),
            format!("-{digits}e0"),
            format!("{digits}0e-1"),
            format!("0.{digits}e{}", digits.len()),
            shifted,
        ] {
            let read = integer_digits(&text);
            proptest::prop_assert_eq!(read.as_deref(), Some(digits.as_str()), "{}", text);
        }
    }
}

/// Masking never skips a finding it cannot place: the whole masking fails instead (the
/// gateway then refuses the body), so nothing detected leaves unmasked.
#[test]
fn a_finding_outside_the_body_fails_the_masking() {
    let g = guard();
    let doc = Document::parse(br#"{"notes":"card 4111 1111 1111 1111"}"#).unwrap();
    let mut findings = g.scan_known(doc.root(), &Known::nothing(&NOTHING_COVERED));
    assert_eq!(
        g.mask_edits(&doc, &findings, &not_authentic).unwrap().len(),
        1
    );
    findings[0].1 = vec![member("elsewhere")];
    assert!(g.mask_edits(&doc, &findings, &not_authentic).is_err());
}
