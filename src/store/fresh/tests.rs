//! The cache validity rule, on a clock the tests move.

use super::*;

const WINDOW: Duration = Duration::from_millis(250);

fn entry(version: i64, read_at: Instant) -> Entry<bool> {
    Entry {
        version,
        read_at,
        value: true,
    }
}

#[test]
fn nothing_is_current_before_a_first_confirmation() {
    let changes = Changes::new(WINDOW);
    assert_eq!(changes.current(Counter::Tokens, Instant::now()), None);
    // A local change advances the version but confirms nothing.
    changes.advanced(Counter::Tokens, 3);
    assert_eq!(changes.current(Counter::Tokens, Instant::now()), None);
}

#[test]
fn a_confirmation_holds_for_exactly_the_window_from_the_start_of_its_read() {
    let changes = Changes::new(WINDOW);
    let read_started = Instant::now();
    changes.confirmed(Counter::Consent, 7, read_started);
    assert_eq!(changes.current(Counter::Consent, read_started), Some(7));
    assert_eq!(
        changes.current(Counter::Consent, read_started + WINDOW),
        Some(7)
    );
    assert_eq!(
        changes.current(
            Counter::Consent,
            read_started + WINDOW + Duration::from_nanos(1)
        ),
        None
    );
    // Counters are independent.
    assert_eq!(changes.current(Counter::Tokens, read_started), None);
}

#[test]
fn versions_and_confirmations_never_go_back() {
    let changes = Changes::new(WINDOW);
    let t0 = Instant::now();
    changes.confirmed(Counter::Tokens, 5, t0 + Duration::from_millis(100));
    // A slower, older read finishing later changes neither.
    changes.confirmed(Counter::Tokens, 4, t0);
    assert_eq!(
        changes.current(Counter::Tokens, t0 + Duration::from_millis(340)),
        Some(5)
    );
    changes.advanced(Counter::Tokens, 2);
    assert_eq!(
        changes.current(Counter::Tokens, t0 + Duration::from_millis(340)),
        Some(5)
    );
}

#[test]
fn an_answer_is_usable_only_under_its_own_confirmed_version_within_the_window() {
    let changes = Changes::new(WINDOW);
    let t0 = Instant::now();
    changes.confirmed(Counter::Tokens, 1, t0);
    let read = entry(1, t0);
    let at = |ms| t0 + Duration::from_millis(ms);
    let usable =
        |e: &Entry<bool>, now| e.usable(changes.current(Counter::Tokens, now), now, WINDOW);
    assert!(usable(&read, at(0)));
    assert!(usable(&read, at(250)));
    // The watcher fell silent: past the window nothing is served from the cache.
    assert!(!usable(&read, at(251)));
    // Confirmed again: still version 1, but the answer itself is older than the window.
    changes.confirmed(Counter::Tokens, 1, at(200));
    assert!(usable(&read, at(250)));
    assert!(!usable(&read, at(251)));
    assert!(usable(&entry(1, at(100)), at(300)));
    // A change committed (here, or seen by a poll): answers read before it are stale.
    changes.advanced(Counter::Tokens, 2);
    assert!(!usable(&entry(1, at(100)), at(300)));
    assert!(usable(&entry(2, at(260)), at(300)));
}

#[test]
fn notification_payloads_name_a_counter_and_its_version() {
    assert_eq!(watch::parse("consent:12"), Some((Counter::Consent, 12)));
    assert_eq!(watch::parse("tokens:1"), Some((Counter::Tokens, 1)));
    assert_eq!(watch::parse("keys:3"), None);
    assert_eq!(watch::parse("tokens"), None);
    assert_eq!(watch::parse("tokens:x"), None);
}
