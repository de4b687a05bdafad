//! A route's data subject: where its id is, and the one spelling the id may take.
//!
//! The contract: every subject id the gateway uses on a route (for the policy decision, the
//! consent lookup, per-subject keys and the audit record) passed [`SubjectForm::accepts`]
//! first, so one customer has exactly one id and `who-saw`, consent and shredding find all
//! of their records. Configuration that cannot name the subject this way is refused here,
//! so `privgate check`, start and reload agree.

use super::{
    BodyMode, Direction, Problems, RouteConfig, SubjectConfig, SubjectFrom, SubjectIdKind,
};
use regex::Regex;
use serde_json_path::JsonPath;
use std::sync::Arc;

/// The longest subject id accepted in any form: ids are keys, not documents.
pub(crate) const MAX_SUBJECT_ID_BYTES: usize = 128;

/// Methods a route may answer before its subject is known: they change nothing upstream.
const SAFE_METHODS: [&str; 2] = ["GET", "HEAD"];

/// A compiled canonical form.
#[derive(Debug, Clone)]
pub enum SubjectForm {
    /// Decimal digits without sign or leading zero, within `u64`.
    Integer,
    /// Lower-case hyphenated UUID.
    Uuid,
    /// The whole id matches (anchored).
    Pattern(Arc<Regex>),
}

impl SubjectForm {
    /// Compiles the form a route declares.
    pub fn compile(config: &SubjectConfig) -> Result<Self, String> {
        match (config.id, &config.pattern) {
            (SubjectIdKind::Integer, None) => Ok(Self::Integer),
            (SubjectIdKind::Uuid, None) => Ok(Self::Uuid),
            (SubjectIdKind::Pattern, Some(p)) => {
                let anchored = Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                    format!("subject pattern `{p}` is not a regular expression: {e}")
                })?;
                if anchored.is_match("") {
                    return Err(format!("subject pattern `{p}` matches the empty id"));
                }
                Ok(Self::Pattern(Arc::new(anchored)))
            }
            (SubjectIdKind::Pattern, None) => {
                Err("subject id = \"pattern\" needs `pattern` (a regular expression)".into())
            }
            (_, Some(_)) => Err("subject `pattern` goes with id = \"pattern\" only".into()),
        }
    }

    /// Whether `id` is in this form (the only spelling of its subject on this route).
    pub fn accepts(&self, id: &str) -> bool {
        if id.is_empty() || id.len() > MAX_SUBJECT_ID_BYTES {
            return false;
        }
        match self {
            Self::Integer => {
                id.bytes().all(|b| b.is_ascii_digit())
                    && (id == "0" || !id.starts_with('0'))
                    && id.parse::<u64>().is_ok()
            }
            Self::Uuid => uuid::Uuid::try_parse(id).is_ok_and(|u| u.hyphenated().to_string() == id),
            Self::Pattern(re) => re.is_match(id),
        }
    }
}

/// The spellings a configuration's routes give subject ids, for what names a subject
/// outside a request (`keys shred`, `audit who-saw`). An id no route accepts is no
/// customer's as the gateway knows them: a shred of `042` would report keys destroyed
/// while customer 42 stays readable, and a who-saw of it would list nobody. With no route
/// declaring subjects there is no spelling to hold an id to, and any is accepted.
#[derive(Debug, Clone, Default)]
pub(crate) struct SubjectIds(Vec<SubjectForm>);

impl SubjectIds {
    /// The forms `routes` declare (a form that does not compile is validation's to refuse,
    /// and holds no id here).
    pub(crate) fn of(routes: &[RouteConfig]) -> Self {
        let forms = routes.iter().filter_map(|r| r.subject.as_ref());
        Self(forms.filter_map(|s| SubjectForm::compile(s).ok()).collect())
    }

    /// Whether `id` is spelled as some route spells its subjects' ids.
    pub(crate) fn accepts(&self, id: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|form| form.accepts(id))
    }
}

/// A route's compiled subject: source, selector and form.
#[derive(Debug, Clone)]
pub struct RouteSubject {
    /// Where the id is; `None`: only the field rules name subjects.
    pub from: Option<SubjectFrom>,
    /// The selector for body sources.
    pub selector: Option<Arc<JsonPath>>,
    /// The one accepted spelling.
    pub form: SubjectForm,
}

impl RouteSubject {
    /// Compiles a (validated) subject declaration.
    pub fn compile(config: &SubjectConfig) -> Result<Self, String> {
        let selector = match &config.selector {
            Some(s) => Some(Arc::new(
                crate::jsonpath::parse(s).map_err(|e| format!("subject selector `{s}`: {e}"))?,
            )),
            None => None,
        };
        Ok(Self {
            from: config.from,
            selector,
            form: SubjectForm::compile(config)?,
        })
    }
}

/// Checks one route's subject declaration; every problem names the route.
pub(super) fn validate(r: &RouteConfig, problems: &mut Problems) {
    let Some(s) = &r.subject else { return };
    let name = &r.name;
    if let Err(e) = SubjectForm::compile(s) {
        problems.add(format!("route `{name}`: {e}"));
    }
    match (s.from, &s.selector) {
        (Some(SubjectFrom::Path) | None, Some(_)) => problems.add(format!(
            "route `{name}`: subject selector is for from = \"request\" or \"response\""
        )),
        (Some(SubjectFrom::Request | SubjectFrom::Response), None) => problems.add(format!(
            "route `{name}`: subject from a body needs `selector` (the JSONPath to the id)"
        )),
        (_, Some(selector)) => {
            if let Err(e) = crate::jsonpath::parse(selector) {
                problems.add(format!(
                    "route `{name}`: subject selector `{selector}` is not a JSONPath: {e}"
                ));
            }
        }
        _ => {}
    }
    let from_body = matches!(s.from, Some(SubjectFrom::Request | SubjectFrom::Response));
    if from_body && r.body != BodyMode::Buffered {
        problems.add(format!(
            "route `{name}`: subject from a body needs body = \"buffered\""
        ));
    }
    if s.from == Some(SubjectFrom::Response) {
        let safe = r.methods.as_ref().is_some_and(|ms| {
            !ms.is_empty() && ms.iter().all(|m| SAFE_METHODS.contains(&m.as_str()))
        });
        if !safe {
            problems.add(format!(
                "route `{name}`: subject from the response is decided after the upstream \
                 answered, so the route must allow only methods that change nothing \
                 (methods = [\"GET\"] or [\"GET\", \"HEAD\"])"
            ));
        }
        if r.direction == Direction::Outbound {
            problems.add(format!(
                "route `{name}`: an outbound route's response is the external party's; take \
                 the subject from the path or the request"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(id: SubjectIdKind, pattern: Option<&str>) -> SubjectForm {
        SubjectForm::compile(&SubjectConfig {
            from: None,
            selector: None,
            id,
            pattern: pattern.map(Into::into),
        })
        .unwrap()
    }

    #[test]
    fn each_form_accepts_exactly_one_spelling() {
        let integer = form(SubjectIdKind::Integer, None);
        let uuid = form(SubjectIdKind::Uuid, None);
        let pattern = form(
            SubjectIdKind::Pattern,
            Some("[1-9][0-9]{0,9}|c-[1-9][0-9]{0,11}"),
        );
        let u = "0f8fad5b-d9cb-469f-a165-70867728950e";
        // (form, id, accepted)
        let cases: &[(&SubjectForm, &str, bool)] = &[
            (&integer, "42", true),
            (&integer, "0", true),
            (&integer, "18446744073709551615", true),
            (&integer, "042", false),
            (&integer, "00", false),
            (&integer, "+42", false),
            (&integer, "-42", false),
            (&integer, " 42", false),
            (&integer, "42 ", false),
            (&integer, "4_2", false),
            (&integer, "42.0", false),
            (&integer, "4e1", false),
            (&integer, "0x2a", false),
            (&integer, "%34%32", false),
            (&integer, "\u{0664}\u{0662}", false), // Arabic-Indic digits
            (&integer, "１２", false),             // full-width digits
            (&integer, "18446744073709551616", false),
            (&integer, "", false),
            (&uuid, u, true),
            (&uuid, &u.to_uppercase(), false),
            (&uuid, &u.replace('-', ""), false),
            (&uuid, &format!("{{{u}}}"), false),
            (&uuid, &format!("urn:uuid:{u}"), false),
            (&uuid, "42", false),
            (&pattern, "42", true),
            (&pattern, "c-100", true),
            (&pattern, "C-100", false),
            (&pattern, "c-0100", false),
            (&pattern, "042", false),
            (&pattern, "c-100/x", false),
            (&pattern, "xc-100", false),
        ];
        for (form, id, accepted) in cases {
            assert_eq!(form.accepts(id), *accepted, "{form:?} {id:?}");
        }
        let long = "1".repeat(MAX_SUBJECT_ID_BYTES + 1);
        let any = form_any();
        assert!(!any.accepts(&long));
        assert!(any.accepts(&long[1..]));
    }

    fn form_any() -> SubjectForm {
        form(SubjectIdKind::Pattern, Some("[0-9]+"))
    }

    #[test]
    fn forms_that_cannot_be_compiled_are_refused() {
        // (id, pattern, fragment of the message)
        let cases = [
            (SubjectIdKind::Pattern, None, "needs `pattern`"),
            (
                SubjectIdKind::Pattern,
                Some("(["),
                "not a regular expression",
            ),
            (
                SubjectIdKind::Pattern,
                Some("[0-9]*"),
                "matches the empty id",
            ),
            (
                SubjectIdKind::Integer,
                Some("[0-9]+"),
                "with id = \"pattern\" only",
            ),
            (SubjectIdKind::Uuid, Some("x"), "with id = \"pattern\" only"),
        ];
        for (id, pattern, fragment) in cases {
            let e = SubjectForm::compile(&SubjectConfig {
                from: None,
                selector: None,
                id,
                pattern: pattern.map(Into::into),
            })
            .unwrap_err();
            assert!(e.contains(fragment), "{id:?} {pattern:?}: {e}");
        }
    }
}
