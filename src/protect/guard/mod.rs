//! The PII guard: finds personal data in a JSON body that no field rule covers.
//!
//! [`Guard::scan`] walks a parsed body's tree ([`Node`]) and runs the configured detectors
//! (`detectors`: card numbers, IBANs, emails, phone numbers, named
//! custom regexes) over every string, free text included, every member name (a map keyed
//! by card number or email address), and every number in every form it may be written
//! (integers, floats, exponents, negatives: by its integer part, from the body's exact
//! text). Locations the caller says are [`Covered`] (paths of steps from the
//! root; a covered location covers its whole subtree, though not its own member name) are
//! skipped: their values are the field rules' business, and FPE outputs there look exactly
//! like real card numbers. The gateway's own outputs are skipped only when the caller has
//! authenticated them under the gateway's keys ([`Known::authentic`], from
//! [`Guard::envelopes`]): a string merely shaped like `pgv1.`/`pgt1.`
//! (`pgt1.pan.1.4111111111111111`) is scanned like any other.
//!
//! A [`Finding`] carries the normalized path (as `serde_json_path` prints it,
//! `$['customer']['iban']`, `$['items'][0]`, with what the detectors find in member names
//! masked) and the detector's name, NEVER the matched value. [`Guard::mask_edits`] masks
//! the detected spans in place (letters and digits become `*`, separators stay); what to
//! do with findings is the caller's, per [`GuardAction`].
//!

mod detectors;
#[cfg(test)]
mod tests;

use crate::protect::document::{Document, Edit, Kind, Node, Path, Step, StepRef};
use crate::protect::transform::mask::mask_text;
use crate::protect::transform::{self, Ciphertext, MaskSpec, Scheme};
use regex::{Regex, RegexBuilder};
use serde::Deserialize;
use std::collections::HashSet;
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
/// the value, nor any member name on its path as written where the detectors find
/// something in it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// Normalized path of the value (`$['notes']`), detected spans in member names masked
    /// (`$['cards']['****************']`).
    pub path: String,
    /// Detector name (`card`, `iban`, `email`, `phone`, or a custom name).
    pub detector: String,
    /// Found in the member's name (a map keyed by card number), not in its value: a name
    /// cannot be masked in place, so a route that masks refuses such a body.
    pub in_name: bool,
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

    /// Whether the detector can match a text with `marks` at all (a custom pattern may
    /// match anything). Most member names and values hold none of what the built-ins need:
    /// they are passed over without a search or a list of spans.
    fn may_match(&self, marks: detectors::Marks) -> bool {
        match self {
            Detector::Builtin(builtin) => marks.admit(*builtin),
            Detector::Custom { .. } => true,
        }
    }

    /// Where the detector matches in `text`; `marks` (read once per text for all the
    /// detectors) lets it skip a text without the characters it needs.
    fn spans_marked(&self, text: &str, marks: detectors::Marks) -> Vec<Range<usize>> {
        match self {
            Detector::Builtin(Builtin::Card) => detectors::cards(text, marks),
            Detector::Builtin(Builtin::Iban) => detectors::ibans(text, marks),
            Detector::Builtin(Builtin::Email) => detectors::emails(text, marks),
            Detector::Builtin(Builtin::Phone) => detectors::phones(text, marks),
            Detector::Custom { regex, .. } => detectors::custom(regex, text),
        }
    }
}

/// A compiled [`GuardSpec`].
pub struct Guard {
    action: GuardAction,
    detectors: Vec<Detector>,
    /// Whether any detector is a custom pattern (which may match any text).
    custom: bool,
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
            custom: detectors
                .iter()
                .any(|d| matches!(d, Detector::Custom { .. })),
            detectors,
        })
    }

    /// What the route's config says to do with findings.
    pub fn action(&self) -> GuardAction {
        self.action
    }

    /// Findings in `body` outside `covered` locations, with nothing known beyond the value
    /// (see [`scan_known`](Self::scan_known)).
    pub fn scan(&self, body: &Node<'_>, covered: &Covered<'_>) -> Vec<Finding> {
        self.scan_known(body, &Known::nothing(covered))
            .into_iter()
            .map(|(f, _)| f)
            .collect()
    }

    /// Findings in `body` outside covered locations, each with the path of its value (to
    /// edit it in place), using what the caller knows: which strings are authentic gateway
    /// outputs.
    pub fn scan_known(&self, body: &Node<'_>, known: &Known<'_>) -> Vec<(Finding, Path)> {
        let mut found = Vec::new();
        walk(
            body,
            &mut Location::root(),
            known.covered,
            &mut |at, scanned| {
                let (detected, in_name) = match scanned {
                    Scanned::Value(value) => (self.detected(value, known), false),
                    Scanned::Name(name) => (self.detected_in_text(name, known.authentic), true),
                };
                for detector in detected {
                    // The path is reported (logs, errors), and a member name on it can
                    // be the personal data itself (a map keyed by card number): what the
                    // detectors find in names is masked there.
                    let finding = Finding {
                        path: at.normalized(|name| self.mask_text_known(name, known.authentic)),
                        detector: detector.to_owned(),
                        in_name,
                    };
                    found.push((finding, at.path()));
                }
            },
        );
        found
    }

    /// The edits that mask what `findings` (of [`scan_known`](Self::scan_known) on `body`)
    /// found in values, in place: each detected span of a string (authentic gateway outputs
    /// left as they are), a number whole (a masked string in its place: its written form,
    /// `4.111111111111111e15`, need not show the detected digits). Findings in member names
    /// get no edit (a name cannot be masked in place: the caller refuses the body). A
    /// finding whose value is not in `body` (a caller's bug) fails the whole masking, so
    /// nothing detected leaves unmasked.
    pub fn mask_edits(
        &self,
        body: &Document<'_>,
        findings: &[(Finding, Path)],
        authentic: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<(Path, Edit)>, crate::protect::document::DocumentError> {
        let mut edits = Vec::new();
        let mut seen = HashSet::new();
        for (finding, path) in findings {
            if finding.in_name || !seen.insert(path) {
                continue;
            }
            let node = body
                .root()
                .at(path.iter().map(Step::as_ref))
                .ok_or(crate::protect::document::DocumentError::NoSuchPath)?;
            let masked = match node.kind() {
                Kind::String(s) => self.mask_text_known(s, authentic),
                _ => mask_text(&MaskSpec::default(), body.text_of(node)),
            };
            edits.push((
                path.clone(),
                Edit::Replace(transform::to_json_string(&masked)),
            ));
        }
        Ok(edits)
    }

    /// Every string (value, member name or whitespace-separated word of one) outside
    /// covered locations shaped like a gateway ciphertext or token (`pgv1.`, `pgt1.`):
    /// what the caller may authenticate and then pass as [`Known::authentic`].
    pub fn envelopes(&self, body: &Node<'_>, covered: &Covered<'_>) -> Vec<String> {
        let mut found = Vec::new();
        walk(body, &mut Location::root(), covered, &mut |_, scanned| {
            let text = match scanned {
                Scanned::Value(node) => match node.kind() {
                    Kind::String(s) => s,
                    _ => return,
                },
                Scanned::Name(s) => s,
            };
            found.extend(
                text.split_whitespace()
                    .filter(|word| is_envelope(word))
                    .map(str::to_owned),
            );
        });
        found.sort();
        found.dedup();
        found
    }

    /// `text` with every detected span masked (letters and digits to `*`).
    pub fn mask_text(&self, text: &str) -> String {
        self.mask_text_known(text, &not_authentic)
    }

    /// [`mask_text`](Self::mask_text), leaving authentic gateway outputs as they are.
    pub fn mask_text_known(&self, text: &str, authentic: &dyn Fn(&str) -> bool) -> String {
        let marks = detectors::Marks::of(text);
        let mut spans: Vec<Range<usize>> = self
            .detectors
            .iter()
            .flat_map(|d| authentic_removed(text, d.spans_marked(text, marks), authentic))
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

    /// Whether any detector can match a text with `marks`: the walk visits every member
    /// name and leaf outside covered locations, and most (`"status"`, `"retail"`, `12`)
    /// admit none, so they are passed over before the list of names is built.
    fn may_match(&self, marks: detectors::Marks) -> bool {
        if !self.custom && marks.admit_no_builtin() {
            return false;
        }
        self.detectors.iter().any(|d| d.may_match(marks))
    }

    /// Names of the detectors that fire on one value. A number is scanned as the digits of
    /// its integer part, whatever its form (`4111111111111111`, `4111111111111111.0`,
    /// `4.111111111111111e15` and `-4111111111111111` are all that card number to an
    /// upstream that reads them); its fraction is not (high-precision decimals would
    /// otherwise read as digit runs).
    fn detected(&self, value: &Node<'_>, known: &Known<'_>) -> Vec<&str> {
        match value.kind() {
            Kind::String(s) => self.detected_in_text(s, known.authentic),
            Kind::Number(written) => {
                let Some(digits) = integer_digits(written) else {
                    return Vec::new();
                };
                let marks = detectors::Marks::of(&digits);
                if !self.may_match(marks) {
                    return Vec::new();
                }
                self.detectors
                    .iter()
                    .filter(|d| d.may_match(marks) && !d.spans_marked(&digits, marks).is_empty())
                    .map(Detector::name)
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// Names of the detectors that fire on a text, outside authentic gateway outputs.
    fn detected_in_text(&self, text: &str, authentic: &dyn Fn(&str) -> bool) -> Vec<&str> {
        let marks = detectors::Marks::of(text);
        if !self.may_match(marks) {
            return Vec::new();
        }
        self.detectors
            .iter()
            .filter(|d| d.may_match(marks))
            .filter(|d| !authentic_removed(text, d.spans_marked(text, marks), authentic).is_empty())
            .map(Detector::name)
            .collect()
    }
}

/// What the caller knows about a body besides its text.
#[derive(Clone, Copy)]
pub struct Known<'a> {
    /// The locations field rules cover (their subtrees are skipped; a covered member's
    /// own name is still scanned).
    pub covered: &'a Covered<'a>,
    /// Whether a string is a gateway ciphertext or token that authenticated under the
    /// gateway's keys. Only such strings are skipped; a lookalike is scanned like any text.
    pub authentic: &'a dyn Fn(&str) -> bool,
}

impl<'a> Known<'a> {
    /// Covered locations only.
    pub fn nothing(covered: &'a Covered<'a>) -> Self {
        Self {
            covered,
            authentic: &not_authentic,
        }
    }
}

/// No string is known to be authentic (the default: every lookalike is scanned).
pub fn not_authentic(_: &str) -> bool {
    false
}

/// Whether a string has the shape of a gateway ciphertext or token (it may still be
/// forged: only authentication tells). Pseudonyms (`pgh1.`) are one-way and cannot be
/// authenticated; they are scanned like any text (a base64url HMAC practically never holds
/// a detector's match).
fn is_envelope(s: &str) -> bool {
    Ciphertext::parse_str(s).is_ok_and(|c| matches!(c.scheme(), Scheme::Encrypt | Scheme::Token))
}

/// The decimal digits of a JSON number's integer part, sign dropped, from its text:
/// `4.111111111111111e15`, `41111111111111110e-1` and `4111111111111111.9` all give
/// `4111111111111111`. `None` past 64 digits (no detector looks for those).
fn integer_digits(text: &str) -> Option<String> {
    let unsigned = text.trim_start_matches('-');
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let point = i64::try_from(whole.len())
        .ok()?
        .checked_add(exponent)?
        .max(0);
    let point = usize::try_from(point).ok().filter(|&p| p <= 64)?;
    // The mantissa's digits cut at the point, zeros past its end, leading zeros dropped.
    // A JSON number's text is ASCII, so its digits are sliced as bytes.
    let (whole, fraction) = (whole.as_bytes(), fraction.as_bytes());
    let from_whole = &whole[..point.min(whole.len())];
    let from_fraction = &fraction[..(point - from_whole.len()).min(fraction.len())];
    let zeros = point - from_whole.len() - from_fraction.len();
    let mut integer = Vec::with_capacity(point.max(1));
    integer.extend_from_slice(from_whole);
    integer.extend_from_slice(from_fraction);
    integer.resize(integer.len() + zeros, b'0');
    let leading = integer.iter().take_while(|&&b| b == b'0').count();
    integer.drain(..leading);
    if integer.is_empty() {
        integer.push(b'0');
    }
    String::from_utf8(integer).ok()
}

/// `spans` less those inside a word of `text` that is an authentic gateway output (a
/// base64url payload can hold a digit run or an `@`-free lookalike).
fn authentic_removed(
    text: &str,
    spans: Vec<Range<usize>>,
    authentic: &dyn Fn(&str) -> bool,
) -> Vec<Range<usize>> {
    if spans.is_empty() || !text.contains("pg") {
        return spans;
    }
    let own: Vec<Range<usize>> = text
        .split_whitespace()
        .filter(|word| is_envelope(word) && authentic(word))
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

/// What the walk visits: a leaf value, or the name of an object member.
enum Scanned<'v, 'a> {
    Value(&'v Node<'a>),
    Name(&'v str),
}

/// Where the walk is: the steps from the root, borrowed from the body (the walk allocates
/// nothing per member; a path or a normalized path is made only where something is found).
struct Location<'v> {
    steps: Vec<StepRef<'v>>,
}

impl<'v> Location<'v> {
    fn root() -> Self {
        Self { steps: Vec::new() }
    }

    /// The location as `serde_json_path`'s `NormalizedPath` prints it (names in `['...']`,
    /// indices in `[...]`), each member name as `name` writes it.
    fn normalized(&self, name: impl Fn(&str) -> String) -> String {
        use std::fmt::Write;
        let mut path = String::from("$");
        for step in &self.steps {
            // Writing to a String cannot fail.
            let _ = match step {
                StepRef::Key(key) => write!(path, "['{}']", name(key)),
                StepRef::Index(index) => write!(path, "[{index}]"),
            };
        }
        path
    }

    /// The location as an owned path, for editing in place.
    fn path(&self) -> Path {
        self.steps.iter().map(|step| step.to_step()).collect()
    }
}

/// The locations the field rules cover, as a tree of steps from the root: a covered
/// location covers its whole subtree (though not its own member name). The walk descends
/// it alongside the body, so a member outside every covered subtree costs one search among
/// its covered siblings, and nothing below it costs any.
#[derive(Debug, Default)]
pub struct Covered<'p> {
    whole: bool,
    /// Sorted by step, searched by halves. The steps come from the body (a wildcard
    /// selector binds the members it names), so nothing is hashed that an attacker could
    /// make collide.
    below: Vec<(StepRef<'p>, Covered<'p>)>,
}

/// Steps ordered with member names by length first: most of a body's names differ in
/// length from the covered names they are searched among, and are passed without
/// comparing their bytes.
fn by_length(a: StepRef<'_>, b: StepRef<'_>) -> std::cmp::Ordering {
    match (a, b) {
        (StepRef::Key(a), StepRef::Key(b)) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
        (a, b) => a.cmp(&b),
    }
}

/// Nothing covered (what the walk descends into outside every covered subtree).
static NOTHING_COVERED: Covered<'static> = Covered {
    whole: false,
    below: Vec::new(),
};

impl<'p> Covered<'p> {
    /// The locations at `paths` (in any order, repeats allowed).
    pub fn of<P: AsRef<[Step]> + 'p>(paths: impl IntoIterator<Item = &'p P>) -> Self {
        let mut paths: Vec<&'p [Step]> = paths.into_iter().map(AsRef::as_ref).collect();
        paths.sort_unstable();
        Self::sorted(&paths, 0)
    }

    /// The tree below the first `depth` steps of `paths`, which share those steps and are
    /// sorted: those that share their next step are neighbours.
    fn sorted(paths: &[&'p [Step]], depth: usize) -> Self {
        let mut covered = Self::default();
        let mut rest = paths;
        while let Some(first) = rest.first() {
            let Some(step) = first.get(depth) else {
                covered.whole = true;
                rest = &rest[1..];
                continue;
            };
            let same = rest
                .iter()
                .take_while(|p| p.get(depth) == Some(step))
                .count();
            let below = Self::sorted(&rest[..same], depth + 1);
            covered.below.push((step.as_ref(), below));
            rest = &rest[same..];
        }
        covered
            .below
            .sort_unstable_by(|(a, _), (b, _)| by_length(*a, *b));
        covered
    }

    /// What is covered below `step`.
    fn below(&self, step: StepRef<'_>) -> &Covered<'p> {
        match self.below.binary_search_by(|(s, _)| by_length(*s, step)) {
            Ok(at) => &self.below[at].1,
            Err(_) => &NOTHING_COVERED,
        }
    }
}

/// Depth-first walk calling `visit` on every member name and every leaf outside covered
/// locations (a covered member's own name is still visited: rules bind values, and a name
/// is data when a selector matches every member). `covered` is what is covered at `at`.
fn walk<'v, 'a>(
    value: &'v Node<'a>,
    at: &mut Location<'v>,
    covered: &Covered<'_>,
    visit: &mut dyn FnMut(&Location<'v>, Scanned<'v, 'a>),
) {
    if covered.whole {
        return;
    }
    match value.kind() {
        Kind::Object(_) | Kind::Array(_) => {
            for (step, child) in value.children() {
                at.steps.push(step);
                if let StepRef::Key(name) = step {
                    visit(at, Scanned::Name(name));
                }
                walk(child, at, covered.below(step), visit);
                at.steps.pop();
            }
        }
        _ => visit(at, Scanned::Value(value)),
    }
}
