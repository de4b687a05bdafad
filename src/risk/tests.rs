use super::tally::{Observation, Tally};
use super::window::{Ring, SLICES};
use super::*;
use rusty_fork::rusty_fork_test;

fn subjects(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("cust-{i}")).collect()
}

fn reading<'a>(ids: &'a [String]) -> Observation<'a> {
    Observation {
        subjects: ids.iter().map(String::as_str).collect(),
        ..Observation::default()
    }
}

#[test]
fn distinct_subjects_are_exact_when_few_and_within_the_stated_error_when_many() {
    for (n, tolerance) in [(1_u32, 0.0), (100, 0.0), (10_000, 0.05), (100_000, 0.05)] {
        let ids = subjects(0..n);
        let mut tally = Tally::default();
        tally.observe(&reading(&ids));
        // The same subjects again do not count twice.
        tally.observe(&reading(&ids[..ids.len().min(50)]));
        let estimate = tally.value(Indicator::DistinctSubjects, None);
        let error = (estimate - f64::from(n)).abs() / f64::from(n);
        assert!(
            error <= tolerance,
            "{n}: estimate {estimate}, error {error}"
        );
    }
}

#[test]
fn merged_sketches_count_a_subject_seen_on_two_replicas_once() {
    let (a, b) = (subjects(0..300), subjects(200..500));
    let mut one = Tally::default();
    one.observe(&reading(&a));
    let mut two = Tally::default();
    two.observe(&reading(&b));
    // Through the store's serde form, as another replica reads it.
    let two: Tally = serde_json::from_str(&serde_json::to_string(&two).unwrap()).unwrap();
    one.merge(&two);
    let estimate = one.value(Indicator::DistinctSubjects, None);
    assert!((estimate - 500.0).abs() <= 500.0 * 0.05, "{estimate}");
    assert_eq!(one.value(Indicator::Requests, None), 2.0);
}

#[test]
fn a_malformed_sketch_is_refused_not_used() {
    for bad in [
        r#"{"subjects":[2,[1,2,3,4,5]]}"#,
        r#"{"subjects":[3,[1]]}"#,
        r#"{"subjects":"x"}"#,
    ] {
        assert!(serde_json::from_str::<Tally>(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_window_forgets_what_left_it_slice_by_slice() {
    let window = 60_000; // 1 min: six 10 s slices
    let mut ring = Ring::default();
    let seen = Observation::default();
    for second in 0..60 {
        ring.observe(window, second * 1000, &seen);
    }
    assert_eq!(ring.total(window, 59_999).requests, 60);
    // At 75 s the slices starting at 0 and 10 s have left the window.
    assert_eq!(ring.total(window, 75_000).requests, 60 - 20);
    assert_eq!(ring.total(window, 60_000 * 2).requests, 0);
    assert_eq!(SLICES, 6);
}

#[test]
fn labels_are_counted_per_class_and_reason() {
    let classes = ["pan".to_owned(), "pan".to_owned(), "iban".to_owned()];
    let mut tally = Tally::default();
    tally.observe(&Observation {
        clear_reveals: &classes,
        refusal: Some("consent_required"),
        ..Observation::default()
    });
    assert_eq!(tally.value(Indicator::ClearReveals, Some("pan")), 2.0);
    assert_eq!(tally.value(Indicator::ClearReveals, None), 3.0);
    assert_eq!(
        tally.value(Indicator::Refusals, Some("consent_required")),
        1.0
    );
    assert_eq!(tally.value(Indicator::Refusals, Some("forbidden")), 0.0);
}

/// Epsilon adds up in nano-units (as thresholds read it, and in thousandths for policies);
/// releases and off-hours requests count one each.
#[test]
fn epsilon_releases_and_off_hours_add_up() {
    let mut tally = Tally::default();
    for _ in 0..3 {
        tally.observe(&Observation {
            dp_epsilon_nano: 250_000_000,
            fhe_release: true,
            off_hours: true,
            ..Observation::default()
        });
    }
    tally.observe(&Observation::default());
    assert_eq!(tally.value(Indicator::DpEpsilon, None), 0.75);
    assert_eq!(tally.value(Indicator::FheReleases, None), 3.0);
    assert_eq!(tally.value(Indicator::OffHours, None), 3.0);
    assert_eq!(tally.value(Indicator::Requests, None), 4.0);
    let facts = tally.facts();
    assert_eq!((facts.dp_epsilon_milli, facts.fhe_releases), (750, 3));
}

#[test]
fn usual_hours_wrap_past_midnight() {
    let day = config::UsualHours { from: 7, to: 20 };
    assert!(day.is_off(6) && !day.is_off(7) && !day.is_off(19) && day.is_off(20));
    let night = config::UsualHours { from: 22, to: 6 };
    assert!(!night.is_off(23) && !night.is_off(0) && night.is_off(6) && night.is_off(12));
}

/// A role's own hours decide for callers holding it (outside all of their roles' windows
/// is off-hours); other callers fall back to the global usual hours, and without those
/// nothing is off-hours.
#[test]
fn role_hours_decide_for_their_roles_and_the_usual_hours_for_the_rest() {
    let risk = Risk::new(
        &config(
            "usual_hours = { from = 7, to = 20 }\n\
             [[role_hours]]\nrole = \"night_desk\"\nfrom = 20\nto = 8\n\
             [[role_hours]]\nrole = \"asia_desk\"\nfrom = 0\nto = 9",
        ),
        None,
    )
    .unwrap();
    let at = |hour: i64| hour * 3_600_000 + 1_700_000_000_000 / 86_400_000 * 86_400_000;
    let roles = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    let cases: [(&[&str], i64, bool); 8] = [
        (&["fraud_analyst"], 10, false),
        (&["fraud_analyst"], 22, true),
        (&["night_desk"], 22, false),
        (&["night_desk"], 10, true),
        (&["night_desk", "fraud_analyst"], 10, true),
        (&["night_desk", "asia_desk"], 3, false),
        (&["night_desk", "asia_desk"], 8, false),
        (&["night_desk", "asia_desk"], 12, true),
    ];
    for (names, hour, off) in cases {
        assert_eq!(
            risk.off_hours(&roles(names), at(hour)),
            off,
            "{names:?} at {hour}h"
        );
    }
    let without = Risk::new(&config(""), None).unwrap();
    assert!(!without.off_hours(&roles(&["night_desk"]), at(3)));
}

fn config(toml_text: &str) -> RiskConfig {
    toml::from_str(toml_text).unwrap()
}

#[test]
fn configuration_problems_are_named() {
    let cases = [
        ("windows = []", "at least one window"),
        ("windows = [\"10s\"]", "between 1 minute and 7 days"),
        ("windows = [\"1 h\"]", "written like"),
        (
            "[[threshold]]\nname = \"a\"\nindicator = \"requests\"\nwindow = \"2h\"\nabove = 1.0",
            "not in [risk] windows",
        ),
        (
            "[[threshold]]\nname = \"a\"\nindicator = \"requests\"\nwindow = \"1h\"\nabove = 1.0\nresponse = \"step_up\"",
            "`step_up` goes with",
        ),
        (
            "[[threshold]]\nname = \"a\"\nindicator = \"requests\"\nwindow = \"1h\"\nabove = 1.0\nresponse = \"throttle\"",
            "`throttle` goes with",
        ),
        (
            "[[threshold]]\nname = \"a\"\nindicator = \"off_hours\"\nwindow = \"1h\"\nabove = 1.0",
            "needs [risk] usual_hours",
        ),
        (
            "[[threshold]]\nname = \"a\"\nindicator = \"requests\"\nclass = \"pan\"\nwindow = \"1h\"\nabove = 1.0",
            "`class` applies",
        ),
    ];
    let webhook = |extra: &str| {
        format!("[webhook]\nurl = \"https://siem.example/events\"\nsecret_file = \"s\"\n{extra}")
    };
    let more = [
        (
            "[[role_hours]]\nrole = \"n\"\nfrom = 3\nto = 3".to_owned(),
            "`n`: from 0-23",
        ),
        (
            "[[role_hours]]\nrole = \"n\"\nfrom = 1\nto = 2\n[[role_hours]]\nrole = \"n\"\nfrom = 3\nto = 4"
                .to_owned(),
            "roles must be distinct",
        ),
        (
            webhook("").replace("https://", "http://"),
            "url must be an https:// URL",
        ),
        (webhook("queue = 0"), "queue must be 1 to"),
        (webhook("max_attempts = 0"), "max_attempts must be 1 to"),
        (webhook("timeout = \"0s\""), "timeout must be greater than 0"),
    ];
    let cases = cases.iter().map(|(t, e)| ((*t).to_owned(), *e)).chain(more);
    for (text, expected) in cases {
        let problems = config(&text).problems();
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{text}: {problems:?}"
        );
    }
    assert!(config("").problems().is_empty());
    assert!(config(&webhook("")).problems().is_empty());
    assert!(
        config("[[role_hours]]\nrole = \"n\"\nfrom = 20\nto = 8\n[[threshold]]\nname = \"a\"\nindicator = \"off_hours\"\nwindow = \"1h\"\nabove = 1.0")
            .problems()
            .is_empty()
    );
}

/// Resident memory of this process, bytes (Linux); also measures the subject-key cache.
pub(crate) fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

rusty_fork_test! {
/// 100,000 distinct principals, each reading one customer: the cache's own accounting and
/// the process's resident memory stay within the configured bound, and a smaller bound
/// holds fewer principals instead of more memory. Measured in a process of its own: tests
/// running beside it would move the resident size.
#[test]
fn memory_stays_bounded_at_100_000_principals() {
    let windows = vec![300_000, 3_600_000, 86_400_000];
    let now = 1_700_000_000_000;
    let ids = subjects(0..1);
    // The small budget first: the large one's freed memory would otherwise serve it.
    for (budget_mib, expect_all) in [(8_u64, false), (128, true)] {
        let before = rss();
        let tracker = super::tracker::Tracker::new(windows.clone(), budget_mib << 20, 1000, None);
        for i in 0..100_000 {
            let key = super::tracker::principal_key(&format!("User:analyst-{i}"));
            tracker.observe(&[key], now, &reading(&ids));
        }
        let (entries, bytes) = tracker.held();
        let grown = rss().saturating_sub(before);
        println!(
            "budget {budget_mib} MiB: {entries} principals held, {:.1} MiB accounted, RSS +{:.1} MiB",
            bytes as f64 / 1048576.0,
            grown as f64 / 1048576.0
        );
        assert!(bytes <= budget_mib << 20, "{bytes}");
        assert_eq!(entries == 100_000, expect_all, "{entries}");
        // What the process grew by is within the budget, give or take the allocator's own
        // overhead (measured: see docs/risk.md).
        assert!(
            grown <= (budget_mib << 20) * 3 / 2 + (8 << 20),
            "RSS grew {grown}"
        );
    }
}
}
