//! Generalization: replace a value by a coarser one. One-way.
//!
//! - `bucket = W`: a number (or a string holding one) becomes the string `"L..U"`, the
//!   inclusive integer range of width W holding its floor: L = floor(x / W) * W, U = L + W - 1
//!   (`1234.5` with W = 1000 gives `"1000..1999"`, `-1` gives `"-1000..-1"`; `..` rather
//!   than `-` keeps negative bounds readable).
//! - `date = "year" | "month"`: a `YYYY-MM-DD` string becomes `"YYYY"` or `"YYYY-MM"`.
//! - `prefix = N`: a string keeps its first N characters (after trimming), and never all of
//!   them: a value of N characters or fewer keeps all but its last (a postcode `SW1A 1AA`
//!   with N = 4 gives `"SW1A"`).
//!
//! Hides: detail below the bucket, day (and month), or suffix. Does NOT hide: the bucket,
//! year or prefix, which with other fields can still single out a person in a small
//! population.

use super::date_shift::parse_date;
use super::spec::{DatePrecision, GeneralizeSpec};
use super::{input_type, json_string, to_json_string, Binding, TransformError};
use serde_json::{Number, Value};

/// Generalizes one JSON value as `spec` says; the output is a JSON string.
pub fn generalize(
    spec: &GeneralizeSpec,
    binding: &Binding,
    json: &str,
) -> Result<String, TransformError> {
    let out = match (spec.bucket, spec.date, spec.prefix) {
        (Some(width), _, _) => bucket(binding, json, width)?,
        (_, Some(precision), _) => {
            let date = parse_date(&json_string(json, "generalize", binding)?)
                .ok_or_else(|| input_type("generalize", binding, "YYYY-MM-DD date strings"))?;
            match precision {
                DatePrecision::Year => format!("{:04}", date.year()),
                DatePrecision::Month => format!("{:04}-{:02}", date.year(), u8::from(date.month())),
            }
        }
        (_, _, Some(keep)) => {
            let text = json_string(json, "generalize", binding)?;
            let text = text.trim();
            let keep = keep.min(text.chars().count().saturating_sub(1));
            text.chars().take(keep).collect()
        }
        // Refused at load (exactly one is set); fail closed if it slips through.
        _ => return Err(input_type("generalize", binding, "a configured rule")),
    };
    Ok(to_json_string(&out))
}

fn bucket(binding: &Binding, json: &str, width: u64) -> Result<String, TransformError> {
    let not_a_number = || input_type("generalize", binding, "numbers");
    let number = match serde_json::from_str::<Value>(json) {
        Ok(Value::Number(n)) => n,
        Ok(Value::String(s)) => {
            serde_json::from_str::<Number>(s.trim()).map_err(|_| not_a_number())?
        }
        _ => return Err(not_a_number()),
    };
    let floor: i128 = if let Some(i) = number.as_i64() {
        i128::from(i)
    } else if let Some(u) = number.as_u64() {
        i128::from(u)
    } else {
        let f = number
            .as_f64()
            .filter(|f| f.is_finite() && f.abs() < 1e30)
            .ok_or_else(not_a_number)?;
        f.floor() as i128
    };
    let width = i128::from(width.max(1));
    let lower = floor.div_euclid(width) * width;
    Ok(format!("{lower}..{}", lower + width - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule() {
        let spec = |bucket, date, prefix| GeneralizeSpec {
            bucket,
            date,
            prefix,
        };
        let class = Binding::class("c");
        for (spec, input, want) in [
            (spec(Some(1000), None, None), "1234", "1000..1999"),
            (spec(Some(1000), None, None), "1999.5", "1000..1999"),
            (spec(Some(1000), None, None), "\"2000\"", "2000..2999"),
            (spec(Some(1000), None, None), "-1", "-1000..-1"),
            (
                spec(Some(10), None, None),
                "18446744073709551615",
                "18446744073709551610..18446744073709551619",
            ),
            (
                spec(None, Some(DatePrecision::Year), None),
                "\"1987-04-12\"",
                "1987",
            ),
            (
                spec(None, Some(DatePrecision::Month), None),
                "\"1987-04-12\"",
                "1987-04",
            ),
            (spec(None, None, Some(4)), "\" SW1A 1AA\"", "SW1A"),
            (spec(None, None, Some(4)), "\"AB1\"", "AB"),
        ] {
            assert_eq!(
                generalize(&spec, &class, input).unwrap(),
                format!("\"{want}\""),
                "{input}"
            );
        }
        for (spec, bad) in [
            (spec(Some(10), None, None), "\"ten\""),
            (spec(Some(10), None, None), "[1]"),
            (
                spec(None, Some(DatePrecision::Year), None),
                "\"1987-02-30\"",
            ),
            (spec(None, None, Some(2)), "12"),
        ] {
            assert!(generalize(&spec, &class, bad).is_err(), "{bad}");
        }
    }
}
