//! Proactive content negotiation (RFC 9110 section 12.5.1) for the APIs the gateway
//! serves itself that answer in more than one format.
//!
//! The `Accept` field (every line of it, as one list) is parsed by the `mediatype` crate.
//! Each format the API offers gets the quality of the most specific media range that
//! matches it (`type/subtype` before `type/*` before `*/*`); the highest non-zero quality
//! wins, ties going to the API's order of preference. No `Accept` field means anything is
//! acceptable. A range that does not parse, or whose `q` is not a valid qvalue, is ignored;
//! if nothing offered is acceptable the call is refused with 406 before any work is done.
//! Media type parameters other than `q` do not narrow a match: each offered format has one
//! fixed form (UTF-8, a header row for CSV).

use super::error::GatewayError;
use http::header::ACCEPT;
use http::HeaderMap;
use mediatype::{MediaType, MediaTypeList, ReadParams};

/// How specific a media range is: a full type beats `type/*`, which beats `*/*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Specificity {
    Any,
    Type,
    Full,
}

/// The first of `offered` (`type/subtype` strings, the API's preference first) with the
/// highest quality under the request's `Accept`; 406 when none is acceptable.
pub(super) fn negotiate<'o>(
    headers: &HeaderMap,
    offered: &[&'o str],
) -> Result<&'o str, GatewayError> {
    let lines: Vec<&str> = headers
        .get_all(ACCEPT)
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .collect();
    if lines.is_empty() {
        return offered.first().copied().ok_or(GatewayError::NotAcceptable);
    }
    let field = lines.join(",");
    let ranges: Vec<(MediaType<'_>, u16)> = MediaTypeList::new(&field)
        .filter_map(Result::ok)
        .filter_map(|range| quality(&range).map(|q| (range, q)))
        .collect();
    let mut best: Option<(&'o str, u16)> = None;
    for candidate in offered {
        let q = ranges
            .iter()
            .filter_map(|(range, q)| specificity(range, candidate).map(|s| (s, *q)))
            .max_by_key(|(s, _)| *s)
            .map_or(0, |(_, q)| q);
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((candidate, q));
        }
    }
    best.map(|(c, _)| c).ok_or(GatewayError::NotAcceptable)
}

/// A range's quality in thousandths (1000 when it has no `q`); `None` for a `q` that is
/// not a qvalue (`0`, `1`, `0.xyz`, `1.000`).
fn quality(range: &MediaType<'_>) -> Option<u16> {
    let Some(q) = range.get_param(mediatype::names::Q) else {
        return Some(1000);
    };
    let text = q.unquoted_str();
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let digits_ok = fraction.len() <= 3 && fraction.bytes().all(|b| b.is_ascii_digit());
    let thousandths = match whole {
        "0" if digits_ok => format!("{fraction:0<3}").parse::<u16>().ok()?,
        "1" if digits_ok && fraction.bytes().all(|b| b == b'0') => 1000,
        _ => return None,
    };
    Some(thousandths)
}

/// How specifically `range` matches `candidate`, or `None` if it does not.
fn specificity(range: &MediaType<'_>, candidate: &str) -> Option<Specificity> {
    let (ty, subty) = candidate.split_once('/')?;
    let range_ty = range.ty.as_str();
    let range_subty = match &range.suffix {
        Some(_) => return None, // none of the offered formats has a structured suffix
        None => range.subty.as_str(),
    };
    match (range_ty, range_subty) {
        ("*", "*") => Some(Specificity::Any),
        (t, "*") if t.eq_ignore_ascii_case(ty) => Some(Specificity::Type),
        (t, s) if t.eq_ignore_ascii_case(ty) && s.eq_ignore_ascii_case(subty) => {
            Some(Specificity::Full)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::negotiate;
    use http::{HeaderMap, HeaderValue};

    const OFFERED: [&str; 2] = ["application/json", "text/csv"];

    fn pick(accept: &[&str]) -> Option<&'static str> {
        let mut headers = HeaderMap::new();
        for line in accept {
            headers.append(http::header::ACCEPT, HeaderValue::from_str(line).unwrap());
        }
        negotiate(&headers, &OFFERED).ok()
    }

    #[test]
    fn the_best_acceptable_format_wins() {
        let json = Some("application/json");
        let csv = Some("text/csv");
        // (Accept lines, expected): one case a line.
        let cases: &[(&[&str], Option<&str>)] = &[
            (&[], json),
            (&["*/*"], json),
            (&["text/csv"], csv),
            (&["TEXT/CSV"], csv),
            (&["text/csv; charset=utf-8"], csv),
            (&["text/*"], csv),
            (&["application/json;q=0.5, text/csv"], csv),
            (&["application/json;q=0.5, text/csv;q=0.4"], json),
            (&["text/csv;q=0.9, */*;q=1"], json),
            (&["*/*;q=0.1, text/csv;q=0"], json),
            (&["text/csv;q=0", "*/*"], json),
            (&["application/json;q=0, text/*;q=0.3"], csv),
            (&["text/html"], None),
            (&["application/json;q=0, text/csv;q=0"], None),
            (&["application/*;q=0.000"], None),
            (&["text/csv;q=1.5"], None),
            (&["text/csv;q=0.12345"], None),
            (&["text/csv;q=abc, application/json"], json),
            (&["not a media type"], None),
            (&["not a media type, text/csv"], csv),
            (&["text/csv;q=\"0.8\", application/json;q=0.7"], csv),
            (&["application/problem+json"], None),
            (&["text/csv;q=1.000"], csv),
            (&["application/json;q=0.001"], json),
        ];
        for (accept, expected) in cases {
            assert_eq!(pick(accept), *expected, "Accept: {accept:?}");
        }
    }
}
