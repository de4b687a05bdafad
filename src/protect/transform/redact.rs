//! Redaction: remove the member, replace it with `null`, or with a constant.
//!
//! Hides: everything about the value, except (with `null` or a constant) that the member
//! existed.

use super::spec::{RedactMode, RedactSpec};
use crate::protect::document::Edit;

/// What redaction does to a value; the value itself is not needed.
pub fn redact(spec: &RedactSpec) -> Edit {
    match (spec.mode, &spec.constant) {
        (RedactMode::Remove, _) => Edit::Remove,
        (RedactMode::Constant, Some(constant)) => Edit::Replace(constant.to_string()),
        // A constant without a value is refused at load; null is the safe reading.
        (RedactMode::Null | RedactMode::Constant, _) => Edit::Replace("null".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_mode() {
        let spec = |mode, constant| RedactSpec { mode, constant };
        assert_eq!(redact(&spec(RedactMode::Remove, None)), Edit::Remove);
        assert_eq!(
            redact(&spec(RedactMode::Null, None)),
            Edit::Replace("null".into())
        );
        assert_eq!(
            redact(&spec(RedactMode::Constant, Some(json!({"redacted": true})))),
            Edit::Replace(r#"{"redacted":true}"#.into())
        );
    }
}
