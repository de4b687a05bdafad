//! Redaction: remove the member, replace it with `null`, or with a constant.
//!
//! Hides: everything about the value, except (with `null` or a constant) that the member
//! existed.

use super::spec::{RedactMode, RedactSpec};

/// What the caller does to the member holding a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite {
    /// Put this JSON text in place of the value.
    Replace(String),
    /// Remove the member (object) or element (array).
    Remove,
}

/// What redaction does to a value; the value itself is not needed.
pub fn redact(spec: &RedactSpec) -> Rewrite {
    match (spec.mode, &spec.constant) {
        (RedactMode::Remove, _) => Rewrite::Remove,
        (RedactMode::Constant, Some(constant)) => Rewrite::Replace(constant.to_string()),
        // A constant without a value is refused at load; null is the safe reading.
        (RedactMode::Null | RedactMode::Constant, _) => Rewrite::Replace("null".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_mode() {
        let spec = |mode, constant| RedactSpec { mode, constant };
        assert_eq!(redact(&spec(RedactMode::Remove, None)), Rewrite::Remove);
        assert_eq!(
            redact(&spec(RedactMode::Null, None)),
            Rewrite::Replace("null".into())
        );
        assert_eq!(
            redact(&spec(RedactMode::Constant, Some(json!({"redacted": true})))),
            Rewrite::Replace(r#"{"redacted":true}"#.into())
        );
    }
}
