//! Per-subject date shifting: every date of one data subject moves by the same number of
//! days, so intervals between a subject's dates (age at account opening, days between
//! transactions) survive while the dates themselves do not.
//!
//! The offset is HMAC-SHA256 under the key over the associated data of label `pgd1` (key
//! name, version, class, subject), read as a u64 and mapped onto ±1..=max_days (never 0:
//! no subject keeps its true dates; the modulo bias is below 2^-50). Reversible given the
//! key and the subject. Input: a `YYYY-MM-DD` string, or a date-time whose first ten
//! characters are that date followed by `T` or a space (the time part is kept as is).
//!
//! Hides: the exact dates. Does NOT hide: intervals between one subject's dates (and so
//! which of them fall on the same weekday), the approximate period (±max_days). The output carries no
//! key version: rotating the key changes every offset, so a rotated date-shift key needs
//! the old version kept to unshift stored dates.

use super::envelope::associated_data;
use super::spec::DateShiftSpec;
use super::{input_type, json_string, require_kind, to_json_string, Binding, TransformError};
use crate::keys::{DataKey, KeyKind};
use ring::hmac;
use time::{Date, Duration, Month};

/// Shifts the date in one JSON string by the subject's offset.
pub fn shift(
    key: &DataKey,
    binding: &Binding,
    spec: &DateShiftSpec,
    json: &str,
) -> Result<String, TransformError> {
    let offset = offset_days(key, binding, spec.max_days)?;
    move_date(binding, json, offset)
}

/// Reverses [`shift`].
pub fn unshift(
    key: &DataKey,
    binding: &Binding,
    spec: &DateShiftSpec,
    json: &str,
) -> Result<String, TransformError> {
    let offset = offset_days(key, binding, spec.max_days)?;
    move_date(binding, json, -offset)
}

/// The subject's offset in days: in -max_days..=-1 or 1..=max_days.
pub fn offset_days(key: &DataKey, binding: &Binding, max_days: u32) -> Result<i64, TransformError> {
    require_kind(key, KeyKind::Hmac)?;
    if binding.subject.is_none() {
        return Err(TransformError::MissingSubject {
            transform: "date_shift",
            class: binding.class.to_owned(),
        });
    }
    let max = i64::from(max_days.max(1));
    let message = associated_data("pgd1", key.name(), key.version(), binding);
    let tag = hmac::sign(key.hmac(), &message);
    let mut first = [0u8; 8];
    first.copy_from_slice(&tag.as_ref()[..8]);
    let r = (u64::from_be_bytes(first) % (2 * max as u64)) as i64;
    Ok(if r < max { r - max } else { r - max + 1 })
}

fn move_date(binding: &Binding, json: &str, days: i64) -> Result<String, TransformError> {
    let not_a_date = || input_type("date_shift", binding, "YYYY-MM-DD date strings");
    let text = json_string(json, "date_shift", binding)?;
    let (date, rest) = split_date(&text).ok_or_else(not_a_date)?;
    let moved = date
        .checked_add(Duration::days(days))
        .filter(|d| (0..=9999).contains(&d.year()))
        .ok_or_else(not_a_date)?;
    Ok(to_json_string(&format!("{}{rest}", format_date(moved))))
}

/// The date at the start of `text` and what follows it (empty, or a time part).
fn split_date(text: &str) -> Option<(Date, &str)> {
    let (head, rest) = (text.get(..10)?, &text[10..]);
    if !(rest.is_empty() || rest.starts_with('T') || rest.starts_with(' ')) {
        return None;
    }
    Some((parse_date(head)?, rest))
}

/// A strict `YYYY-MM-DD` calendar date (the `time` crate checks it exists).
pub(super) fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())?
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| s[r].parse::<u16>().ok())?
    };
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    Date::from_calendar_date(i32::from(year), month, u8::try_from(day).ok()?).ok()
}

pub(super) fn format_date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    fn key() -> DataKey {
        DataKey::new("dob", 1, KeyKind::Hmac, Zeroizing::new(vec![9; 32])).unwrap()
    }

    #[test]
    fn parses_strict_dates_only() {
        assert_eq!(format_date(parse_date("2024-02-29").unwrap()), "2024-02-29");
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-1-01",
            "24-01-01",
            "2024/01/01",
            "+024-01-01",
        ] {
            assert!(parse_date(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn same_subject_same_offset_and_reversible() {
        let spec = DateShiftSpec {
            key: None,
            max_days: 30,
            key_version: 1,
        };
        let alice = Binding {
            class: "dob",
            subject: Some("alice"),
        };
        let a1 = offset_days(&key(), &alice, 30).unwrap();
        assert_eq!(a1, offset_days(&key(), &alice, 30).unwrap());
        assert!(a1 != 0 && a1.abs() <= 30);
        let shifted = shift(&key(), &alice, &spec, r#""1990-06-15T08:30:00Z""#).unwrap();
        assert!(shifted.ends_with("T08:30:00Z\""), "{shifted}");
        let back = unshift(&key(), &alice, &spec, &shifted).unwrap();
        assert_eq!(back, r#""1990-06-15T08:30:00Z""#);
        let offsets: std::collections::HashSet<i64> = (0..200)
            .map(|i| {
                let s = format!("s{i}");
                let b = Binding {
                    class: "dob",
                    subject: Some(&s),
                };
                offset_days(&key(), &b, 30).unwrap()
            })
            .collect();
        assert!(offsets.len() > 40 && !offsets.contains(&0), "{offsets:?}");
        let none = Binding::class("dob");
        assert!(matches!(
            shift(&key(), &none, &spec, r#""1990-06-15""#),
            Err(TransformError::MissingSubject { .. })
        ));
        for bad in [r#""15/06/1990""#, "19900615", r#""1990-06-15x""#] {
            assert!(shift(&key(), &alice, &spec, bad).is_err(), "{bad}");
        }
    }
}
