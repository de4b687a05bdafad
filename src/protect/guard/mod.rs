//! The PII guard: finds personal data in a JSON body that no field rule covers.
//!
//! [`Guard::scan`] walks a [`serde_json::Value`] and runs the configured detectors
//! ([`detectors`](self::detectors): card numbers, IBANs, emails, phone numbers, named
//! custom regexes) over every string, free text included, and over integer numbers (card
//! numbers only). Locations the caller says are covered (normalized paths as
//! `serde_json_path` prints them, `$['customer']['iban']`, `$['items'][0]`; a covered
//! location covers its whole subtree) are skipped: their values are the field rules'
//! business, and FPE outputs there look exactly like real card numbers. The gateway's own
//! outputs (whole strings or words that parse as `pgv1.`/`pgt1.`/`pgh1.` values) are never
//! flagged.
//!
//! A [`Finding`] carries the normalized path and the detector's name, NEVER the matched
//! value. [`Guard::mask`] masks the detected spans in place (letters and digits become `*`,
//! separators stay); what to do with findings is the caller's, per [`GuardAction`].
//!
//! Not scanned: object keys (a map keyed by email address is not flagged), floats.

mod detectors;
#[cfg(test)]
mod tests;

use crate::protect::transform::mask::mask_text;
use crate::protect::transform::{Ciphertext, MaskSpec};
use regex::{Regex, RegexBuilder};
use serde::Deserialize;
use serde_json::Value;
use std::ops::Range;

/// Compiled size limit of one custom pattern: large enough for any sane detector, small
/// enough that a typo like `(a+)+{1000}` cannot blow up memory at config load.
pub const CUSTOM_PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// Per-route guard configuration:
/// `guard = { action = "mask", detectors = ["card", "iban"], custom = [{ name = "ssn",
/// pattern = '\b\d{3}-\d{2}-\d{4}\b' }] }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardSpec {
    /// What the caller does with findings (default `block`: fail closed).
    #[serde(default)]
    pub action: GuardAction,
    /// Built-in detectors to run (default: all of them).
    #[serde(default = "all_builtins")]
    pub detectors: Vec<Builtin>,
    /// Named regex detectors.
    #[serde(default)]
    pub custom: Vec<CustomDetector>,
}

impl Default for GuardSpec {
    fn default() -> Self {
        Self {
            action: GuardAction::default(),
            detectors: all_builtins(),
            custom: Vec::new(),
        }
    }
}

fn all_builtins() -> Vec<Builtin> {
    vec![Builtin::Card, Builtin::Iban, Builtin::Email, Builtin::Phone]
}

/// What happens to a body with findings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardAction {
    /// Refuse the body.
    #[default]
    Block,
    /// Mask the detected spans and let it through.
    Mask,
    /// Let it through unchanged; record the findings.
    Report,
}

/// A built-in detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Builtin {
    /// Luhn-valid card numbers.
    Card,
    /// IBANs with valid check digits.
    Iban,
    /// Email addresses.
    Email,
    /// International (`+`) phone numbers.
    Phone,
}

impl Builtin {
    /// The detector's name in findings.
    pub const fn name(self) -> &'static str {
        match self {
            Builtin::Card => "card",
            Builtin::Iban => "iban",
            Builtin::Email => "email",
            Builtin::Phone => "phone",
        }
    }
}

/// A named regex detector.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomDetector {
    /// Name reported in findings.
    pub name: String,
    /// Regex (`regex` crate syntax).
    pub pattern: String,
}

/// A guard config that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// A custom pattern is not a valid regex (or exceeds the size limit).
    #[error("guard detector {name}: invalid pattern: {reason}")]
    Pattern {
        /// Detector name.
        name: String,
        /// The regex crate's message.
        reason: String,
    },
    /// A custom detector name is empty, repeated or a built-in name.
    #[error("guard detector name {name:?} is empty, repeated or a built-in name")]
    Name {
        /// Detector name.
        name: String,
    },
}

/// Personal data found where no field rule covers it: where, and which detector. Never
/// the value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// Normalized path of the value (`$['notes']`).
    pub path: String,
    /// Detector name (`card`, `iban`, `email`, `phone`, or a custom name).
    pub detector: String,
}

enum Detector {
    Builtin(Builtin),
    Custom { name: String, regex: Regex },
}

impl Detector {
    fn name(&self) -> &str {
        match self {
            Detector::Builtin(b) => b.name(),
            Detector::Custom { name, .. } => name,
        }
    }

    fn spans(&self, text: &str) -> Vec<Range<usize>> {
        match self {
            Detector::Builtin(Builtin::Card) => detectors::cards(text),
            Detector::Builtin(Builtin::Iban) => detectors::ibans(text),
            Detector::Builtin(Builtin::Email) => detectors::emails(text),
            Detector::Builtin(Builtin::Phone) => detectors::phones(text),
            Detector::Custom { regex, .. } => detectors::custom(regex, text),
        }
    }
}

/// What [`Guard::apply`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The body may go on (masked in place under `mask`); the findings, if any.
    Pass(Vec<Finding>),
    /// The body must be refused (`block` with findings).
    Blocked(Vec<Finding>),
}

/// A compiled [`GuardSpec`].
pub struct Guard {
    action: GuardAction,
    detectors: Vec<Detector>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let detectors: Vec<&str> = self.detectors.iter().map(Detector::name).collect();
        f.debug_struct("Guard")
            .field("action", &self.action)
            .field("detectors", &detectors)
            .finish()
    }
}

impl Guard {
    /// Compiles the spec's detectors.
    pub fn new(spec: &GuardSpec) -> Result<Self, GuardError> {
        let mut detectors: Vec<Detector> = Vec::new();
        for builtin in &spec.detectors {
            if !detectors.iter().any(|d| d.name() == builtin.name()) {
                detectors.push(Detector::Builtin(*builtin));
            }
        }
        for custom in &spec.custom {
            let taken = all_builtins().iter().any(|b| b.name() == custom.name)
                || detectors.iter().any(|d| d.name() == custom.name);
            if custom.name.is_empty() || taken {
                return Err(GuardError::Name {
                    name: custom.name.clone(),
                });
            }
            let regex = RegexBuilder::new(&custom.pattern)
                .size_limit(CUSTOM_PATTERN_SIZE_LIMIT)
                .build()
                .map_err(|e| GuardError::Pattern {
                    name: custom.name.clone(),
                    reason: e.to_string(),
                })?;
            detectors.push(Detector::Custom {
                name: custom.name.clone(),
                regex,
            });
        }
        Ok(Self {
            action: spec.action,
            detectors,
        })
    }

    /// What the route's config says to do with findings.
    pub fn action(&self) -> GuardAction {
        self.action
    }

    /// Runs the guard as its action says: `block` refuses a body with findings, `mask`
    /// masks them in place and lets it through, `report` lets it through unchanged. The
    /// findings are for the audit record either way.
    pub fn apply(&self, body: &mut Value, covered: &dyn Fn(&str) -> bool) -> Verdict {
        let findings = match self.action {
            GuardAction::Mask => self.mask(body, covered),
            GuardAction::Block | GuardAction::Report => self.scan(body, covered),
        };
        match self.action {
            GuardAction::Block if !findings.is_empty() => Verdict::Blocked(findings),
            _ => Verdict::Pass(findings),
        }
    }

    /// Findings in `body` outside the locations for which `covered` is true.
    pub fn scan(&self, body: &Value, covered: &dyn Fn(&str) -> bool) -> Vec<Finding> {
        self.located(body, covered)
            .into_iter()
            .map(|(f, _)| f)
            .collect()
    }

    /// Like [`scan`](Self::scan), and masks every detected span in place (a card number
    /// held as a JSON number becomes a masked string).
    pub fn mask(&self, body: &mut Value, covered: &dyn Fn(&str) -> bool) -> Vec<Finding> {
        let located = self.located(body, covered);
        for (_, pointer) in &located {
            if let Some(value) = body.pointer_mut(pointer) {
                *value = Value::String(match &*value {
                    Value::String(s) => self.mask_text(s),
                    other => mask_text(&MaskSpec::default(), &other.to_string()),
                });
            }
        }
        located.into_iter().map(|(f, _)| f).collect()
    }

    /// Findings with the JSON Pointer of their value.
    fn located(&self, body: &Value, covered: &dyn Fn(&str) -> bool) -> Vec<(Finding, String)> {
        let mut found = Vec::new();
        let mut at = Location {
            path: String::from("$"),
            pointer: String::new(),
        };
        walk(body, &mut at, covered, &mut |at, value| {
            for detector in self.detected(value) {
                let finding = Finding {
                    path: at.path.clone(),
                    detector: detector.to_owned(),
                };
                found.push((finding, at.pointer.clone()));
            }
        });
        found
    }

    /// `text` with every detected span masked (letters and digits to `*`).
    pub fn mask_text(&self, text: &str) -> String {
        let mut spans: Vec<Range<usize>> = self
            .detectors
            .iter()
            .flat_map(|d| own_outputs_removed(text, d.spans(text)))
            .collect();
        spans.sort_by_key(|s| s.start);
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for span in spans {
            let start = span.start.max(at);
            if start >= span.end {
                continue;
            }
            out.push_str(&text[at..start]);
            out.push_str(&mask_text(&MaskSpec::default(), &text[start..span.end]));
            at = span.end;
        }
        out.push_str(&text[at..]);
        out
    }

    /// Names of the detectors that fire on one value.
    fn detected(&self, value: &Value) -> Vec<&str> {
        match value {
            Value::String(s) if !is_own_output(s) => self
                .detectors
                .iter()
                .filter(|d| !own_outputs_removed(s, d.spans(s)).is_empty())
                .map(Detector::name)
                .collect(),
            Value::Number(n) if n.is_u64() && self.has(Builtin::Card) => {
                let text = n.to_string();
                if detectors::is_card_number(text.bytes()) {
                    vec![Builtin::Card.name()]
                } else {
                    Vec::new()
                }
            }
            _ => Vec::new(),
        }
    }

    fn has(&self, builtin: Builtin) -> bool {
        self.detectors
            .iter()
            .any(|d| matches!(d, Detector::Builtin(b) if *b == builtin))
    }
}

/// Whether a whole string is one of the gateway's own protected values.
fn is_own_output(s: &str) -> bool {
    Ciphertext::parse_str(s).is_ok()
}

/// `spans` less those inside a word of `text` that is one of the gateway's own outputs
/// (a base64url payload can hold a digit run or an `@`-free lookalike).
fn own_outputs_removed(text: &str, spans: Vec<Range<usize>>) -> Vec<Range<usize>> {
    if !text.contains("pg") {
        return spans;
    }
    let own: Vec<Range<usize>> = text
        .split_whitespace()
        .filter(|word| is_own_output(word))
        .map(|word| {
            // `word` is a subslice of `text`: its offset is the pointer difference.
            let start = word.as_ptr() as usize - text.as_ptr() as usize;
            start..start + word.len()
        })
        .collect();
    spans
        .into_iter()
        .filter(|s| !own.iter().any(|o| o.start <= s.start && s.end <= o.end))
        .collect()
}

/// Where the walk is: the normalized path for findings and the JSON Pointer for masking.
struct Location {
    path: String,
    pointer: String,
}

/// Depth-first walk calling `visit` on every leaf outside covered locations. Paths are
/// built as `serde_json_path`'s `NormalizedPath` prints them (names in `['...']` as is,
/// indices in `[...]`), so the caller's covered set compares by string.
fn walk(
    value: &Value,
    at: &mut Location,
    covered: &dyn Fn(&str) -> bool,
    visit: &mut dyn FnMut(&Location, &Value),
) {
    if covered(&at.path) {
        return;
    }
    let (path_len, pointer_len) = (at.path.len(), at.pointer.len());
    let descend = |at: &mut Location, child: &Value, visit: &mut dyn FnMut(&Location, &Value)| {
        walk(child, at, covered, visit);
        at.path.truncate(path_len);
        at.pointer.truncate(pointer_len);
    };
    match value {
        Value::Object(members) => {
            for (name, member) in members {
                at.path.push_str(&format!("['{name}']"));
                let escaped = name.replace('~', "~0").replace('/', "~1");
                at.pointer.push_str(&format!("/{escaped}"));
                descend(at, member, visit);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                at.path.push_str(&format!("[{index}]"));
                at.pointer.push_str(&format!("/{index}"));
                descend(at, item, visit);
            }
        }
        leaf => visit(at, leaf),
    }
}
