//! Finding the bearer token in a request (RFC 6750 section 2, as FAPI 2.0 narrows it).
//!
//! Only the `Authorization: Bearer` header carries a token. A token in the query string
//! (`access_token=`) is refused: URLs end up in logs, histories and `Referer` headers.
//! A token in more than one place, or more than one `Authorization` header, is a malformed
//! request (400 `invalid_request`). Other authorization schemes are not bearer credentials
//! and are left alone. Form-encoded body tokens are never read (the body is not looked at
//! before the caller is identified).

use super::error::IdentityError;
use http::header::{HeaderMap, AUTHORIZATION};

/// Refuses a request with an RFC 6750 `access_token` query parameter, on every route, not
/// only those that read tokens: forwarded, it would reach the upstream and its access logs,
/// and tokens are never forwarded.
pub(crate) fn refuse_token_in_query(query: Option<&str>) -> Result<(), IdentityError> {
    match token_in_query(query) {
        true => Err(IdentityError::InvalidRequest("token in the query string")),
        false => Ok(()),
    }
}

fn token_in_query(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        form_urlencoded::parse(q.as_bytes()).any(|(name, _)| name == "access_token")
    })
}

/// The bearer token the request carries, if any.
pub(super) fn bearer_token<'a>(
    headers: &'a HeaderMap,
    query: Option<&str>,
) -> Result<Option<&'a str>, IdentityError> {
    let in_query = token_in_query(query);
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(IdentityError::InvalidRequest(
            "more than one Authorization header",
        ));
    }
    let in_header = match first {
        None => None,
        Some(value) => {
            let value = value
                .to_str()
                .map_err(|_| IdentityError::InvalidRequest("Authorization header is not ASCII"))?;
            bearer_credential(value)?
        }
    };
    match (in_header, in_query) {
        (Some(_), true) => Err(IdentityError::InvalidRequest(
            "token in more than one place",
        )),
        (None, true) => Err(IdentityError::InvalidRequest("token in the query string")),
        (token, false) => Ok(token),
    }
}

/// `Bearer <b64token>` (scheme case-insensitive, RFC 9110 section 11.1); `None` for other
/// schemes.
fn bearer_credential(value: &str) -> Result<Option<&str>, IdentityError> {
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = rest.trim_matches(' ');
    if !is_b64token(token) {
        return Err(IdentityError::InvalidToken("malformed bearer credential"));
    }
    Ok(Some(token))
}

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty() && body.bytes().all(|b| B64TOKEN[usize::from(b)])
}

/// The characters of a `b64token` before its padding, by byte: every request's token is
/// checked (a JWT is several hundred bytes), one table load per byte.
static B64TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] =
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn only_one_well_formed_header_token_is_accepted() {
        type Expected = Result<Option<&'static str>, IdentityError>;
        let invalid_request = |m| Err(IdentityError::InvalidRequest(m));
        let cases: [(&[&str], Option<&str>, Expected); 10] = [
            (&[], None, Ok(None)),
            (&["Bearer abc.def.ghi"], None, Ok(Some("abc.def.ghi"))),
            (
                &["bearer abc.def.ghi"],
                Some("page=2"),
                Ok(Some("abc.def.ghi")),
            ),
            (&["Basic dXNlcjpwYXNz"], None, Ok(None)),
            (
                &["Bearer "],
                None,
                Err(IdentityError::InvalidToken("malformed bearer credential")),
            ),
            (
                &["Bearer a b"],
                None,
                Err(IdentityError::InvalidToken("malformed bearer credential")),
            ),
            (
                &[],
                Some("access_token=abc"),
                invalid_request("token in the query string"),
            ),
            (
                &["Bearer abc"],
                Some("x=1&access_token=abc"),
                invalid_request("token in more than one place"),
            ),
            (
                &["Bearer abc", "Bearer def"],
                None,
                invalid_request("more than one Authorization header"),
            ),
            (&["Bearer abc=="], None, Ok(Some("abc=="))),
        ];
        for (values, query, expected) in cases {
            let mut headers = HeaderMap::new();
            for v in values {
                headers.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            }
            assert_eq!(
                bearer_token(&headers, query),
                expected,
                "{values:?} {query:?}"
            );
        }
    }

    /// Every byte, alone and inside a token, against RFC 6750's grammar spelled out: the
    /// 68 token characters pass, padding only at the end, nothing else anywhere.
    #[test]
    fn b64token_takes_exactly_its_grammar() {
        let grammar = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
        let mut passing = 0;
        for b in 0..=255u8 {
            let Ok(text) = std::str::from_utf8(std::slice::from_ref(&b)) else {
                assert!(!B64TOKEN[usize::from(b)], "byte {b:#04x}");
                continue;
            };
            let middle = format!("ab{text}cd");
            assert_eq!(is_b64token(text), grammar(b), "{text:?}");
            assert_eq!(is_b64token(&middle), grammar(b), "{middle:?}");
            passing += usize::from(grammar(b));
        }
        assert_eq!(passing, 68);
        assert!(is_b64token("ab=="));
        assert!(!is_b64token("a=b"));
        assert!(!is_b64token("=="));
        assert!(!is_b64token("jwt.\u{e9}.x"));
    }
}
