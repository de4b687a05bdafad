//! Route field rules (`policies/routes.toml`): which members of a route's request and
//! response bodies hold which field class, and whose data they are.
//!
//! ```toml
//! [[route.customers.response]]
//! each = "$.customers[*]"          # optional: one scope per matched element
//! subject = "@.id"                 # optional: the data subject's id, inside the scope
//! fields = { "@.email" = "email", "@.accounts[*].iban" = "iban" }
//! ```
//!
//! Selectors are RFC 9535 JSONPath, compiled once at load. Without `each`, selectors start at
//! the body root (`$`); with it, at each element (`@`). A scope's subject selector must find
//! exactly one string or integer; per-subject protection and per-subject views need it.
//!
//! Selectors match member names exactly, but many upstream binders do not: Go's
//! `encoding/json`, ASP.NET and Jackson (case-insensitive options) match names whatever
//! their case, and snake/camel alias generators take `nationalId` for `national_id`. So a
//! body holding a member whose name is another spelling of a name the rules bind (equal
//! after Unicode case folding and dropping `_`, `-` and `.`, anywhere in the body) is refused
//! ([`RouteRules::bind`]): otherwise `{"National_Id": ...}` would reach the upstream in
//! clear, read there as the member the rules protect.

use super::document::{path_of, value_at, Document, DocumentError, Kind, Node, Path, Step};
use crate::decision::FieldClasses;
use serde::Deserialize;
use serde_json_path::JsonPath;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// `routes.toml` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoutesFile {
    #[serde(default)]
    pub route: BTreeMap<String, RouteRulesSpec>,
}

/// One route's rules as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteRulesSpec {
    #[serde(default)]
    pub request: Vec<ScopeSpec>,
    #[serde(default)]
    pub response: Vec<ScopeSpec>,
    pub guard: Option<super::guard::GuardSpec>,
}

/// One scope as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScopeSpec {
    pub each: Option<String>,
    pub subject: Option<String>,
    pub fields: BTreeMap<String, String>,
}

/// A compiled scope: where its elements are, whose they are, which members are which class.
#[derive(Debug)]
pub struct Scope {
    each: Option<Selector>,
    subject: Option<Selector>,
    /// Each selector with its class, shared with every value it locates.
    fields: Vec<(Selector, Arc<str>)>,
    /// Every member name its selectors spell out (see [`member_names`]).
    names: Vec<String>,
}

/// Which body of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodySide {
    /// The request, client to upstream.
    Request,
    /// The response, upstream to client.
    Response,
}

/// A route's compiled rules, both bodies.
#[derive(Debug)]
pub struct RouteRules {
    request: Vec<Scope>,
    response: Vec<Scope>,
    request_classes: FieldClasses,
    response_classes: FieldClasses,
    request_spellings: Spellings,
    response_spellings: Spellings,
}

/// The member names one body's rules bind: a body member whose name folds onto one of
/// theirs but is not spelled as one of them is another spelling of a bound name.
#[derive(Debug, Default)]
struct Spellings {
    /// The bound names as the rules spell them: a body's name spelled exactly so (the
    /// usual case for the names the rules read) misspells none and is not folded.
    exact: foldhash::HashSet<String>,
    /// The bound names folded.
    folds: foldhash::HashSet<String>,
    /// The shapes of the folded names that are ASCII: for each first byte, the set of
    /// lengths (bit `n`: length `n`, lengths from 63 on sharing bit 63). Most of a body's
    /// names are ASCII and shaped like no bound name: they are passed over unfolded.
    shapes: Shapes,
}

#[derive(Debug)]
struct Shapes([u64; 128]);

impl Default for Shapes {
    fn default() -> Self {
        Self([0; 128])
    }
}

impl Shapes {
    fn bit(length: usize) -> u64 {
        1 << length.min(63)
    }

    /// The first byte and length of an ASCII name's fold (`None` for a name that is not
    /// ASCII or folds to nothing).
    fn of_ascii_fold(name: &str) -> Option<(u8, usize)> {
        let (mut first, mut length) = (None, 0);
        for b in name.bytes() {
            if !b.is_ascii() {
                return None;
            }
            if !matches!(b, b'_' | b'-' | b'.') {
                first.get_or_insert(b.to_ascii_lowercase());
                length += 1;
            }
        }
        first.map(|first| (first, length))
    }
}

impl Spellings {
    fn of(scopes: &[Scope]) -> Self {
        Self::from_names(scopes.iter().flat_map(|s| &s.names))
    }

    fn from_names<'n>(names: impl Iterator<Item = &'n String>) -> Self {
        // Looked up once per member of every body: foldhash, not SipHash. Only the rules'
        // own names are keys; a body's names are looked up and never inserted, so colliding
        // names cannot lengthen a probe beyond the table's own.
        let mut spellings = Self::default();
        for name in names {
            let folded = fold(name);
            if let Some((first, length)) = Shapes::of_ascii_fold(&folded) {
                spellings.shapes.0[usize::from(first)] |= Shapes::bit(length);
            }
            spellings.folds.insert(folded);
            spellings.exact.insert(name.clone());
        }
        spellings
    }

    /// Whether `name` is another spelling of a bound name (`folded`: a buffer to fold into).
    fn misspells(&self, name: &str, folded: &mut String) -> bool {
        // An ASCII name folds to ASCII (`ascii_names_fold_as_unicode_does`): unless its
        // fold has a bound fold's first byte and length, it folds onto no bound name.
        if let Some((first, length)) = Shapes::of_ascii_fold(name) {
            if self.shapes.0[usize::from(first)] & Shapes::bit(length) == 0 {
                return false;
            }
        }
        if self.exact.contains(name) {
            return false;
        }
        fold_into(name, folded);
        self.folds.contains(folded.as_str())
    }

    /// Whether a member anywhere in `body` misspells a bound name.
    fn first_misspelled(&self, body: &Node<'_>) -> bool {
        // Sized for any usual name once, not grown name by name.
        self.misspelled_in(body, &mut String::with_capacity(64))
    }

    fn misspelled_in(&self, node: &Node<'_>, folded: &mut String) -> bool {
        match node.kind() {
            Kind::Object(members) => members.iter().any(|member| {
                self.misspells(&member.name, folded) || self.misspelled_in(&member.value, folded)
            }),
            Kind::Array(items) => items.iter().any(|item| self.misspelled_in(item, folded)),
            _ => false,
        }
    }
}

/// A member name as lenient binders compare it: Unicode case folded (upper then lower, so
/// `ſ`, `K` (Kelvin) and `ß` meet `s`, `k` and `ss`), `_`, `-` and `.` dropped (snake,
/// kebab and dot-case naming strategies). `İ` (U+0130) is `i`: Go's `encoding/json` and
/// Java's `equalsIgnoreCase` fold it with the simple mapping, where Rust's full lower case
/// adds a combining dot above (U+0307), which is therefore dropped after folding.
pub fn fold(name: &str) -> String {
    let mut folded = String::new();
    fold_into(name, &mut folded);
    folded
}

/// [`fold`] into a buffer the caller reuses (every member name of every body is folded).
fn fold_into(name: &str, out: &mut String) {
    out.clear();
    if name.is_ascii() {
        // Upper then lower case takes an ASCII letter to its ASCII lower case and leaves
        // other ASCII as it is (`ascii_names_fold_as_unicode_does`).
        let kept = name.bytes().filter(|b| !matches!(b, b'_' | b'-' | b'.'));
        out.extend(kept.map(|b| char::from(b.to_ascii_lowercase())));
        return;
    }
    out.extend(
        name.chars()
            .filter(|c| !matches!(c, '_' | '-' | '.'))
            .flat_map(char::to_uppercase)
            .flat_map(char::to_lowercase)
            .filter(|c| *c != '\u{307}'),
    );
}

/// Whether `body` holds, anywhere, a member spelled like a member `selector` names but not
/// exactly as it: the same rule as [`RouteRules::bind`], for the other selectors that read
/// a body (a route's `amount`).
pub fn misspells_selector(selector: &JsonPath, body: &Node<'_>) -> bool {
    let names = member_names(&selector.to_string());
    Spellings::from_names(names.iter()).first_misspelled(body)
}

/// A body member spelled like a bound member but not as it: the body is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a member name is another spelling (case, `_`, `-`) of a member the rules bind")]
pub struct Misspelled;

/// Why a body's values could not be bound to their classes and subjects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    /// See [`Misspelled`].
    #[error(transparent)]
    Misspelled(#[from] Misspelled),
    /// See [`SubjectNotFound`].
    #[error(transparent)]
    SubjectNotFound(#[from] SubjectNotFound),
    /// The body could not be queried.
    #[error(transparent)]
    Body(#[from] DocumentError),
}

impl RouteRules {
    /// Every value one body's rules bind in `body`, after refusing a body that holds a
    /// member spelled like a bound member but not exactly as it.
    pub fn bind(&self, side: BodySide, body: &Document<'_>) -> Result<Vec<Located>, BindError> {
        let spellings = match side {
            BodySide::Request => &self.request_spellings,
            BodySide::Response => &self.response_spellings,
        };
        if spellings.first_misspelled(body.root()) {
            return Err(BindError::Misspelled(Misspelled));
        }
        locate_all(self.scopes(side), body)
    }

    /// The scopes of one body.
    pub fn scopes(&self, side: BodySide) -> &[Scope] {
        match side {
            BodySide::Request => &self.request,
            BodySide::Response => &self.response,
        }
    }

    /// The classes one body's scopes bind, sorted, once each.
    pub fn classes(&self, side: BodySide) -> &FieldClasses {
        match side {
            BodySide::Request => &self.request_classes,
            BodySide::Response => &self.response_classes,
        }
    }
}

fn classes_of(scopes: &[Scope]) -> FieldClasses {
    let mut classes: Vec<String> = scopes
        .iter()
        .flat_map(|s| s.classes().map(str::to_owned))
        .collect();
    classes.sort();
    classes.dedup();
    classes.into()
}

/// A value a rule binds: where it is, its class and its subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// Path from the body root.
    pub path: Path,
    /// The field class (shared with its rule: a body's values are located on every
    /// request, and a copy of each name was an allocation per value).
    pub class: Arc<str>,
    /// The data subject's id, when the scope names one and it was found (shared by the
    /// values of one element).
    pub subject: Option<Arc<str>>,
}

/// A subject selector that did not find exactly one id: protection that needs the subject
/// must refuse rather than guess.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a scope's subject selector did not find exactly one id")]
pub struct SubjectNotFound;

impl Scope {
    /// Compiles a scope; problems are returned as messages naming the selector.
    pub(crate) fn compile(
        spec: &ScopeSpec,
        classes: &dyn Fn(&str) -> bool,
    ) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let scoped = spec.each.is_some();
        let each = spec
            .each
            .as_deref()
            .and_then(|s| compile_selector(s, '$', &mut problems));
        let root = if scoped { '@' } else { '$' };
        let subject = spec
            .subject
            .as_deref()
            .and_then(|s| compile_selector(s, root, &mut problems));
        let mut fields = Vec::new();
        for (selector, class) in &spec.fields {
            if !classes(class) {
                problems.push(format!(
                    "`{selector}`: field class `{class}` is not in fields.toml"
                ));
            }
            if let Some(path) = compile_selector(selector, root, &mut problems) {
                fields.push((path, Arc::from(class.as_str())));
            }
        }
        if spec.fields.is_empty() {
            problems.push("a scope needs at least one entry in `fields`".into());
        }
        let names = spec
            .each
            .iter()
            .chain(&spec.subject)
            .chain(spec.fields.keys())
            .flat_map(|selector| member_names(selector))
            .collect();
        if problems.is_empty() {
            Ok(Self {
                each,
                subject,
                fields,
                names,
            })
        } else {
            Err(problems)
        }
    }

    /// The classes this scope binds.
    pub fn classes(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(_, c)| &**c)
    }

    /// Every value the scope binds in `body`. A scope that names a subject selector and
    /// binds a value in an element where it finds no single id refuses the body: that value
    /// would otherwise be decided, keyed and shred-checked as nobody's (fail closed).
    pub fn locate(&self, body: &Document<'_>, out: &mut Vec<Located>) -> Result<(), BindError> {
        let mut elements = Vec::new();
        match &self.each {
            None => elements.push(Selected {
                node: body.root(),
                path: Vec::new(),
            }),
            Some(each) => each.select(body, body.root(), &[], &mut elements)?,
        }
        // One buffer for every field's selection (and the subject's) in every element.
        let mut found = Vec::new();
        for element in elements {
            let subject: Option<Arc<str>> = match &self.subject {
                Some(selector) => subject_id(selector, body, &element, &mut found)?.map(Arc::from),
                None => None,
            };
            let missing = self.subject.is_some() && subject.is_none();
            for (selector, class) in &self.fields {
                found.clear();
                selector.select(body, element.node, &element.path, &mut found)?;
                for selected in found.drain(..) {
                    if missing {
                        return Err(SubjectNotFound.into());
                    }
                    // Under the root (no `each`), the selected node's own path is the path.
                    let path = if element.path.is_empty() {
                        selected.path
                    } else {
                        let mut path = element.path.clone();
                        path.extend(selected.path);
                        path
                    };
                    out.push(Located {
                        path,
                        class: class.clone(),
                        subject: subject.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether this scope names a subject selector.
    pub fn has_subject(&self) -> bool {
        self.subject.is_some()
    }
}

/// Every value the scopes bind in `body`, in document order of their paths; a path bound
/// twice keeps its first binding (a rules overlap never transforms one value twice).
pub fn locate_all(scopes: &[Scope], body: &Document<'_>) -> Result<Vec<Located>, BindError> {
    let mut out = Vec::new();
    for scope in scopes {
        scope.locate(body, &mut out)?;
    }
    let first: Vec<bool> = if out.len() <= 32 {
        // A route binds a handful of members: comparing with the earlier ones is cheaper
        // than hashing every path.
        (0..out.len())
            .map(|i| !out[..i].iter().any(|earlier| earlier.path == out[i].path))
            .collect()
    } else {
        let mut seen = std::collections::HashSet::new();
        out.iter().map(|l| seen.insert(&l.path)).collect()
    };
    let mut first = first.into_iter();
    out.retain(|_| first.next().unwrap_or(false));
    Ok(out)
}

/// The string form of the one id `selector` finds in `element` (`None` when it finds no
/// single one): a non-empty string, or an integer as serde_json writes it.
fn subject_id<'d, 'a>(
    selector: &Selector,
    body: &'d Document<'a>,
    element: &Selected<'d, 'a>,
    found: &mut Vec<Selected<'d, 'a>>,
) -> Result<Option<String>, DocumentError> {
    found.clear();
    selector.select(body, element.node, &element.path, found)?;
    if found.len() != 1 {
        return Ok(None);
    }
    let Some(found) = found.pop() else {
        return Ok(None);
    };
    Ok(match found.node.kind() {
        Kind::String(s) if !s.is_empty() => Some(s.to_string()),
        Kind::Number(written) => written
            .parse::<serde_json::Number>()
            .ok()
            .filter(|n| n.is_i64() || n.is_u64())
            .map(|n| n.to_string()),
        _ => None,
    })
}

/// The member names a (valid) RFC 9535 selector spells out: dot names (`.national_id`) and
/// string literals (`['national id']`, also those in filters, which only makes the spelling
/// check stricter). `serde_json_path` keeps its parsed segments private, so the names are
/// read from the text; a name missed here only weakens the spelling check for that name.
fn member_names(selector: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut chars = selector.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                let mut name = String::new();
                while let Some(n) = chars.next() {
                    match n {
                        '\\' => name.extend(chars.next()),
                        n if n == c => break,
                        n => name.push(n),
                    }
                }
                names.push(name);
            }
            '.' if chars
                .peek()
                .is_some_and(|&n| n.is_alphabetic() || n == '_' || !n.is_ascii()) =>
            {
                let mut name = String::new();
                while let Some(&n) = chars.peek() {
                    if !(n.is_alphanumeric() || n == '_' || !n.is_ascii()) {
                        break;
                    }
                    name.push(n);
                    chars.next();
                }
                names.push(name);
            }
            _ => {}
        }
    }
    names
}

/// A compiled selector. One made only of member-name shorthands and wildcards
/// (`$.address.street`, `$.customers[*]`, `@.id`: the usual rules) is walked on the
/// document's own tree, selecting what RFC 9535 says it selects (the member of that name of
/// an object, every element of an array or member value of an object, in body order,
/// nothing of anything else); any other goes through `serde_json_path` on the body's
/// `serde_json::Value`, built for it.
#[derive(Debug)]
pub(crate) struct Selector {
    path: JsonPath,
    /// The walk, for a selector of names and wildcards; `None` for any other.
    walk: Option<Walk>,
}

#[derive(Debug)]
struct Walk {
    steps: Vec<WalkStep>,
    /// What a walk of names alone selects, the same for every body (built once).
    names_path: Option<Path>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum WalkStep {
    /// `.name`: that member of an object.
    Member(Arc<str>),
    /// `[*]` or `.*`: every child.
    Wildcard,
}

impl Walk {
    fn new(steps: Vec<WalkStep>) -> Self {
        let names_path = steps
            .iter()
            .map(|step| match step {
                WalkStep::Member(name) => Some(Step::Key(name.clone())),
                WalkStep::Wildcard => None,
            })
            .collect();
        Self { steps, names_path }
    }
}

/// A node a selector selected, and where it is (from where the selection started).
pub(crate) struct Selected<'d, 'a> {
    pub node: &'d Node<'a>,
    pub path: Path,
}

impl Selector {
    /// Appends to `out` the nodes the selector selects in `element` (the node at `at` in
    /// `body`), in document order, with their paths from `element`. The caller's buffer
    /// serves every field of a scope: a selector of member names selects one node, and a
    /// vector of its own per field was an allocation per bound value.
    pub(crate) fn select<'d, 'a>(
        &self,
        body: &'d Document<'a>,
        element: &'d Node<'a>,
        at: &[Step],
        out: &mut Vec<Selected<'d, 'a>>,
    ) -> Result<(), DocumentError> {
        let Some(walk) = &self.walk else {
            return self.query(body, element, at, out);
        };
        if let Some(path) = &walk.names_path {
            let mut node = element;
            for step in &walk.steps {
                let WalkStep::Member(name) = step else {
                    unreachable!("a walk of names alone")
                };
                match node.get(name) {
                    Some(child) => node = child,
                    None => return Ok(()),
                }
            }
            out.push(Selected {
                node,
                path: path.clone(),
            });
            return Ok(());
        }
        let mut selected = vec![Selected {
            node: element,
            path: Vec::new(),
        }];
        for step in &walk.steps {
            selected = match step {
                WalkStep::Member(name) => selected
                    .into_iter()
                    .filter_map(|mut s| {
                        s.node = s.node.get(name)?;
                        s.path.push(Step::Key(name.clone()));
                        Some(s)
                    })
                    .collect(),
                WalkStep::Wildcard => selected
                    .iter()
                    .flat_map(|s| {
                        s.node.children().map(|(step, node)| {
                            let mut path = Vec::with_capacity(s.path.len() + 1);
                            path.extend_from_slice(&s.path);
                            path.push(step.to_step());
                            Selected { node, path }
                        })
                    })
                    .collect(),
            };
        }
        out.append(&mut selected);
        Ok(())
    }

    /// [`select`](Self::select) by `serde_json_path` on the body's value.
    fn query<'d, 'a>(
        &self,
        body: &'d Document<'a>,
        element: &'d Node<'a>,
        at: &[Step],
        out: &mut Vec<Selected<'d, 'a>>,
    ) -> Result<(), DocumentError> {
        let value = value_at(body.value()?, at).ok_or(DocumentError::NoSuchPath)?;
        for found in self.path.query_located(value) {
            let path = path_of(found.location());
            // The value and the tree are the same document: every path is in both.
            let node = element
                .at(path.iter().map(Step::as_ref))
                .ok_or(DocumentError::NoSuchPath)?;
            out.push(Selected { node, path });
        }
        Ok(())
    }
}

/// The steps of `.a.b[*].c` where each name is an ASCII member-name shorthand (RFC 9535: a
/// letter or `_`, then letters, digits and `_`) and each wildcard is `[*]` or `.*`; `None`
/// for anything else.
fn walk_steps(segments: &str) -> Option<Vec<WalkStep>> {
    let mut steps = Vec::new();
    let mut rest = segments;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("[*]").or_else(|| rest.strip_prefix(".*")) {
            steps.push(WalkStep::Wildcard);
            rest = after;
            continue;
        }
        let after = rest.strip_prefix('.')?;
        let end = after.find(['.', '[']).unwrap_or(after.len());
        let name = &after[..end];
        let mut chars = name.chars();
        let first = chars.next()?;
        let shorthand = (first.is_ascii_alphabetic() || first == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !shorthand {
            return None;
        }
        steps.push(WalkStep::Member(name.into()));
        rest = &after[end..];
    }
    (!steps.is_empty()).then_some(steps)
}

fn compile_selector(selector: &str, root: char, problems: &mut Vec<String>) -> Option<Selector> {
    let Some(rest) = selector.strip_prefix(root) else {
        problems.push(format!(
            "`{selector}`: selectors here start with `{root}` ({})",
            if root == '@' {
                "relative to each element of `each`"
            } else {
                "from the body root"
            }
        ));
        return None;
    };
    match crate::jsonpath::parse(&format!("${rest}")) {
        Ok(path) => Some(Selector {
            path,
            walk: walk_steps(rest).map(Walk::new),
        }),
        Err(crate::jsonpath::JsonPathError::Invalid(e)) => {
            problems.push(format!("`{selector}`: not an RFC 9535 JSONPath: {e}"));
            None
        }
        Err(e) => {
            problems.push(format!("`{selector}`: {e}"));
            None
        }
    }
}

/// Every route's compiled rules, and its guard as written.
pub(crate) type CompiledRoutes = (
    HashMap<String, RouteRules>,
    HashMap<String, super::guard::GuardSpec>,
);

/// Compiles every route's rules; problems name the route and selector.
pub(crate) fn compile_routes(
    file: RoutesFile,
    classes: &dyn Fn(&str) -> bool,
) -> Result<CompiledRoutes, Vec<String>> {
    let mut problems = Vec::new();
    let mut rules = HashMap::new();
    let mut guards = HashMap::new();
    for (route, spec) in file.route {
        let mut compile = |scopes: &[ScopeSpec], direction: &str| -> Vec<Scope> {
            scopes
                .iter()
                .filter_map(|s| match Scope::compile(s, classes) {
                    Ok(scope) => Some(scope),
                    Err(errors) => {
                        problems.extend(
                            errors
                                .into_iter()
                                .map(|e| format!("route `{route}` {direction}: {e}")),
                        );
                        None
                    }
                })
                .collect()
        };
        let request = compile(&spec.request, "request");
        let response = compile(&spec.response, "response");
        if let Some(guard) = spec.guard {
            guards.insert(route.clone(), guard);
        }
        rules.insert(
            route,
            RouteRules {
                request_classes: classes_of(&request),
                response_classes: classes_of(&response),
                request_spellings: Spellings::of(&request),
                response_spellings: Spellings::of(&response),
                request,
                response,
            },
        );
    }
    if problems.is_empty() {
        Ok((rules, guards))
    } else {
        Err(problems)
    }
}

/// The step that names a member, for tests and callers building paths by hand.
pub fn key(name: &str) -> Step {
    Step::Key(name.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// `body` as the gateway reads one: its text parsed into a document.
    fn doc_text(body: &Value) -> String {
        body.to_string()
    }

    fn locate(scopes: &[Scope], body: &Value) -> Result<Vec<Located>, BindError> {
        let text = doc_text(body);
        locate_all(scopes, &Document::parse(text.as_bytes()).unwrap())
    }

    fn scope(toml_text: &str) -> Result<Scope, Vec<String>> {
        let spec: ScopeSpec = toml::from_str(toml_text).unwrap();
        Scope::compile(&spec, &|c| ["iban", "email", "pan"].contains(&c))
    }

    #[test]
    fn element_scopes_find_each_subject_and_its_fields() {
        let scope = scope(
            r#"each = "$.customers[*]"
               subject = "@.id"
               fields = { "@.email" = "email", "@.accounts[*].iban" = "iban" }"#,
        )
        .unwrap();
        let body = json!({"customers": [
            {"id": 7, "email": "a@x", "accounts": [{"iban": "I1"}, {"iban": "I2"}]},
            {"id": "c-8", "email": "b@x"},
            {"segment": "retail"}
        ]});
        let found = locate(std::slice::from_ref(&scope), &body).unwrap();
        let summary: Vec<(String, &str, Option<&str>)> = found
            .iter()
            .map(|l| (format!("{:?}", l.path), &*l.class, l.subject.as_deref()))
            .collect();
        assert_eq!(summary.len(), 4, "{summary:?}");
        assert!(summary.contains(&(
            format!(
                "{:?}",
                vec![
                    key("customers"),
                    Step::Index(0),
                    key("accounts"),
                    Step::Index(1),
                    key("iban")
                ]
            ),
            "iban",
            Some("7")
        )));
        assert!(summary.contains(&(
            format!("{:?}", vec![key("customers"), Step::Index(1), key("email")]),
            "email",
            Some("c-8")
        )));
        // An element that binds a value but names no subject refuses the whole body: its
        // value would be decided, keyed and shred-checked as nobody's.
        for element in [
            json!({"email": "c@x"}),
            json!({"id": 9.0, "email": "c@x"}),
            json!({"id": [9], "accounts": [{"iban": "I3"}]}),
            json!({"id": null, "email": "c@x"}),
            json!({"id": "", "email": "c@x"}),
        ] {
            let body = json!({"customers": [{"id": 7, "email": "a@x"}, element]});
            assert_eq!(
                locate(std::slice::from_ref(&scope), &body),
                Err(BindError::SubjectNotFound(SubjectNotFound)),
                "{body}"
            );
        }
    }

    #[test]
    fn a_subject_must_be_exactly_one_id() {
        let scope = scope(
            r#"subject = "$.ids[*]"
                             fields = { "$.pan" = "pan" }"#,
        )
        .unwrap();
        let found = locate(
            std::slice::from_ref(&scope),
            &json!({"ids": [1], "pan": "x"}),
        );
        assert_eq!(found.unwrap()[0].subject.as_deref(), Some("1"));
        for body in [
            json!({"ids": [1, 2], "pan": "x"}),
            json!({"ids": [], "pan": "x"}),
            json!({"ids": [1.5], "pan": "x"}),
            json!({"ids": [1e3], "pan": "x"}),
            json!({"ids": [""], "pan": "x"}),
            json!({"ids": [true], "pan": "x"}),
            json!({"ids": [{"a": 1}], "pan": "x"}),
            json!({"pan": "x"}),
        ] {
            let found = locate(std::slice::from_ref(&scope), &body);
            assert_eq!(
                found,
                Err(BindError::SubjectNotFound(SubjectNotFound)),
                "{body}"
            );
        }
        // Nothing bound, nothing to decide: no subject needed.
        let found = locate(std::slice::from_ref(&scope), &json!({"other": 1}));
        assert_eq!(found, Ok(Vec::new()));
    }

    #[test]
    fn bad_rules_are_refused_with_the_selector_named() {
        // (scope, a fragment the problem must contain)
        let cases = [
            (r#"fields = { "@.pan" = "pan" }"#, "start with `$`"),
            (
                r#"each = "$.a[*]"
                fields = { "$.pan" = "pan" }"#,
                "start with `@`",
            ),
            (
                r#"fields = { "$.pan[" = "pan" }"#,
                "not an RFC 9535 JSONPath",
            ),
            (
                r#"fields = { "$.x" = "salary" }"#,
                "`salary` is not in fields.toml",
            ),
            (r#"fields = {}"#, "at least one entry"),
            // Nested filters past the bound never reach the (backtracking) parser, in `each`
            // or in a field's selector.
            (
                &format!(r#"fields = {{ "${}.pan" = "pan" }}"#, ".a[?@.b".repeat(12)),
                "nested more than 8 brackets deep",
            ),
            (
                &format!(
                    r#"each = "$.c[?{}@.x{}]"
                    fields = {{ "@.pan" = "pan" }}"#,
                    "(".repeat(9),
                    ")".repeat(9)
                ),
                "nested more than 8 brackets deep",
            ),
        ];
        for (text, fragment) in cases {
            let problems = scope(text).unwrap_err();
            assert!(
                problems.iter().any(|p| p.contains(fragment)),
                "{text}: {problems:?}"
            );
        }
    }

    #[test]
    fn selectors_spell_out_their_member_names() {
        // (selector, names)
        let cases: [(&str, &[&str]); 7] = [
            ("$.national_id", &["national_id"]),
            ("$.address.street", &["address", "street"]),
            ("$['national id'].x", &["national id", "x"]),
            ("$[\"quoted\"]", &["quoted"]),
            (
                "$.customers[*].accounts[0].iban",
                &["customers", "accounts", "iban"],
            ),
            ("$..pan", &["pan"]),
            (
                "$.a[?@.kind == 'it\\'s'].n\u{e9}e",
                &["a", "kind", "it's", "n\u{e9}e"],
            ),
        ];
        for (selector, names) in cases {
            assert_eq!(member_names(selector), names, "{selector}");
        }
    }

    #[test]
    fn other_spellings_of_a_bound_name_are_refused_anywhere() {
        let scope = scope(
            r#"each = "$.customers[*]"
               fields = { "@.email" = "email", "@.card_number" = "pan" }"#,
        )
        .unwrap();
        let rules = RouteRules {
            request_spellings: Spellings::of(std::slice::from_ref(&scope)),
            response_spellings: Spellings::default(),
            request: vec![scope],
            response: vec![],
            request_classes: FieldClasses::default(),
            response_classes: FieldClasses::default(),
        };
        let bind = |body: Value| {
            let text = doc_text(&body);
            let doc = Document::parse(text.as_bytes()).unwrap();
            rules.bind(BodySide::Request, &doc).map(|l| l.len())
        };
        assert_eq!(
            bind(json!({"customers": [{"email": "a@x", "card_number": "1"}]})),
            Ok(2)
        );
        for body in [
            json!({"Customers": [{"email": "a@x"}]}),
            json!({"customers": [{"Email": "a@x"}]}),
            json!({"customers": [{"EMAIL": "a@x"}]}),
            json!({"customers": [{"e-mail": "a@x"}]}),
            json!({"customers": [{"cardNumber": "1"}]}),
            json!({"customers": [{"CARD_NUMBER": "1"}]}),
            json!({"customers": [{"email": "a@x"}], "other": {"Card-Number": "1"}}),
            json!({"customers": [{"card_numbeR": "1", "card_number": "2"}]}),
        ] {
            assert_eq!(
                bind(body.clone()),
                Err(BindError::Misspelled(Misspelled)),
                "{body}"
            );
        }
        // The response side binds nothing: any spelling passes there.
        let other = doc_text(&json!({"Customers": [{"EMAIL": "a@x"}]}));
        let other = Document::parse(other.as_bytes()).unwrap();
        assert!(rules.bind(BodySide::Response, &other).is_ok());
        // Unicode case folding: long s, Kelvin sign, sharp s.
        assert_eq!(fold("\u{17f}treet"), fold("STREET"));
        assert_eq!(fold("\u{212a}ey"), fold("key"));
        assert_eq!(fold("Stra\u{df}e"), fold("STRASSE"));
        assert_eq!(fold("national_id"), fold("NationalId"));
        assert_ne!(fold("national_id"), fold("nationalid2"));
        // The dotted capital I as Go and Java fold it; dot-case names.
        assert_eq!(fold("NAT\u{130}ONAL_ID"), fold("national_id"));
        assert_eq!(fold("nat\u{131}onal_id"), fold("national_id"));
        assert_eq!(fold("national.id"), fold("national_id"));

        for member in ["EMA\u{130}L", "card.number", "Card.Number"] {
            let body = json!({"customers": [{"email": "a@x"}], member: "1"});
            assert_eq!(
                bind(body.clone()),
                Err(BindError::Misspelled(Misspelled)),
                "{body}"
            );
        }
    }

    proptest::proptest! {
        /// Passing names over (by their shape, or spelled exactly as a bound name) never
        /// hides another spelling: a name misspells the bound names exactly when it folds
        /// as one of them does and is spelled as none of them (ASCII names near the bound
        /// ones in case, separators and length, the bound names themselves, and names in
        /// other scripts).
        #[test]
        fn passing_over_never_hides_another_spelling(
            name in proptest::prop_oneof![
                "[nN][aA_][tT.-]{0,2}[iIıİ]?[oO]?[nN]?[aA]?[lL]?[_-]?[iI]?[dD]?",
                "[a-zA-Z_.-]{0,12}",
                "[sSſ][tT][rR][eE][eE][tT]_?",
                ".{0,8}",
                proptest::strategy::Strategy::prop_map(
                    proptest::sample::select(BOUND.to_vec()),
                    String::from
                ),
            ]
        ) {
            let bound = BOUND.map(String::from);
            let spellings = Spellings::from_names(bound.iter());
            let misspells = bound.iter().any(|b| fold(b) == fold(&name))
                && !bound.contains(&name);
            proptest::prop_assert_eq!(
                spellings.misspells(&name, &mut String::new()),
                misspells,
                "{}", name
            );
        }
    }

    /// Bound names for [`passing_over_never_hides_another_spelling`]: two spellings of one
    /// name, a name outside ASCII, a one-letter name.
    const BOUND: [&str; 5] = ["national_id", "street", "NAT\u{130}ONAL_ID", "a", "\u{df}x"];

    #[test]
    fn ascii_names_fold_as_unicode_does() {
        // The ASCII fast path against the Unicode fold it stands for, on every ASCII char
        // (a non-ASCII char after it sends the whole name down the Unicode path).
        for b in 0..=127u8 {
            let c = char::from(b);
            let (mut fast, mut unicode) = (String::new(), String::new());
            fold_into(&format!("{c}x"), &mut fast);
            fold_into(&format!("{c}x\u{e9}"), &mut unicode);
            assert_eq!(format!("{fast}\u{e9}"), unicode, "{b}");
        }
    }

    #[test]
    fn walks_select_what_the_jsonpath_engine_selects() {
        let bodies = [
            json!({"a": {"b": {"c": 1}, "c": [1]}, "x_1": "v", "A": 2}),
            json!({"a": [{"b": 1}, {"c": 2}, 3, {"b": [4, 5]}], "b": null}),
            json!({"a": {"b": null}}),
            json!({"a": {"k": {"b": 1}, "j": {"b": 2}, "i": [{"b": 3}]}}),
            json!([{"a": 1}, {"a": [2]}]),
            json!("a"),
            json!({"a": {"b": {"c": {"d": "deep"}}}}),
            json!({"customers": [{"id": "c-1", "accounts": [{"iban": "I1"}, {"iban": "I2"}]}, {"id": 2}]}),
        ];
        let selectors = [
            "$.a",
            "$.a.b",
            "$.a.b.c",
            "$.a.c",
            "$.x_1",
            "$.A",
            "$.b",
            "$.a.b.c.d",
            "$._a",
            "$.a[*]",
            "$.a[*].b",
            "$.a.*",
            "$.a.*.b",
            "$.a[*][*]",
            "$[*]",
            "$[*].a",
            "$.*",
            "$.customers[*].accounts[*].iban",
            "$.customers[*].id",
        ];
        for selector in selectors {
            let mut problems = Vec::new();
            let fast = compile_selector(selector, '$', &mut problems).unwrap();
            assert!(fast.walk.is_some(), "{selector} is walked");
            let engine = Selector {
                path: JsonPath::parse(selector).unwrap(),
                walk: None,
            };
            for body in &bodies {
                let text = doc_text(body);
                let doc = Document::parse(text.as_bytes()).unwrap();
                let seen = |s: &Selector| -> Vec<(String, Path)> {
                    let mut found = Vec::new();
                    s.select(&doc, doc.root(), &[], &mut found).unwrap();
                    found
                        .into_iter()
                        .map(|n| (doc.text_of(n.node).to_owned(), n.path))
                        .collect()
                };
                assert_eq!(seen(&fast), seen(&engine), "{selector} on {body}");
                // From an element as from the root: each customer as `@`.
                if let Some(Kind::Array(customers)) = doc.root().get("customers").map(Node::kind) {
                    for (i, customer) in customers.iter().enumerate() {
                        let at = [key("customers"), Step::Index(i)];
                        let seen = |s: &Selector| -> Vec<(String, Path)> {
                            let mut found = Vec::new();
                            s.select(&doc, customer, &at, &mut found).unwrap();
                            found
                                .into_iter()
                                .map(|n| (doc.text_of(n.node).to_owned(), n.path))
                                .collect()
                        };
                        assert_eq!(seen(&fast), seen(&engine), "{selector} on customer {i}");
                    }
                }
            }
        }
        // Anything else goes through the engine.
        for other in [
            "$.a[0]",
            "$..a",
            "$['a']",
            "$.a[?@.b]",
            "$.é",
            "$",
            "$.a[0:2]",
            "$.a[*,0]",
        ] {
            let mut problems = Vec::new();
            let compiled = compile_selector(other, '$', &mut problems).unwrap();
            assert!(compiled.walk.is_none(), "{other}");
        }
        for text in [
            ".1a", ".a.", ".a..b", "", ".a-b", ".a b", "[*", ".a[*]x", ".a[**]",
        ] {
            assert_eq!(walk_steps(text), None, "{text}");
        }
    }

    #[test]
    fn a_value_bound_twice_is_located_once() {
        let a = scope(r#"fields = { "$.pan" = "pan" }"#).unwrap();
        let b = scope(r#"fields = { "$..pan" = "pan" }"#).unwrap();
        let found = locate(&[a, b], &json!({"pan": "1", "x": {"pan": "2"}})).unwrap();
        assert_eq!(found.len(), 2);
    }
}
