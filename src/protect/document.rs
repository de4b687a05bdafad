//! A JSON body as its exact text plus the byte span of every value, so that protection
//! replaces or removes exactly the members the rules touch and every other byte reaches the
//! other side as it came (`1.10` stays `1.10`, integers beyond 2^53 stay exact, key order
//! and white space are kept).
//!
//! Parsing is one pass of jiter's pull parser (the JSON reader behind pydantic), which
//! reports the byte position before and after every value: those are the spans, and the
//! same pass builds the one tree everything reads: the rules' selectors, the spelling
//! check and the PII guard walk its [`Node`]s, whose strings borrow the body unless they
//! hold escapes and whose numbers are the text the body writes. It accepts what serde_json
//! accepts (the same grammar, escapes, surrogate rules, number range and nesting limit; a
//! test and the `body_reveal` fuzz target compare the two) and refuses duplicate object
//! keys, which serde_json's own `Value` would silently resolve to the last one: a body where
//! the gateway and the upstream could disagree on which `"pan"` counts is never passed on.
//!
//! A `serde_json::Value` of the body is built only when asked for ([`Document::value`]):
//! for a JSONPath query the selectors' own walk does not cover (filters, descendants,
//! slices). Building it was most of the cost of parsing, and the usual rules never need it.

use jiter::{Jiter, JiterError, Peek};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// An object member. Shared: a rule's member names are in the path of every value it
    /// locates, on every request, and a clone of the path copies no name.
    Key(Arc<str>),
    /// An array element.
    Index(usize),
}

/// A path from the root to one value.
pub type Path = Vec<Step>;

/// A [`Step`] borrowed from wherever its member name lives (a walk over the value names
/// its steps without copying them). Ordered as [`Step`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StepRef<'s> {
    /// An object member.
    Key(&'s str),
    /// An array element.
    Index(usize),
}

impl StepRef<'_> {
    /// The step, owned.
    pub fn to_step(self) -> Step {
        match self {
            StepRef::Key(key) => Step::Key(key.into()),
            StepRef::Index(index) => Step::Index(index),
        }
    }
}

impl Step {
    /// The step, borrowed.
    pub fn as_ref(&self) -> StepRef<'_> {
        match self {
            Step::Key(key) => StepRef::Key(key),
            Step::Index(index) => StepRef::Index(*index),
        }
    }
}

/// Converts a JSONPath result location into a [`Path`].
pub fn path_of(located: &serde_json_path::NormalizedPath<'_>) -> Path {
    located
        .iter()
        .map(|element| match element {
            serde_json_path::PathElement::Name(name) => Step::Key((*name).into()),
            serde_json_path::PathElement::Index(index) => Step::Index(*index),
        })
        .collect()
}

/// The value at `path` in `value`.
pub fn value_at<'v>(value: &'v Value, path: &[Step]) -> Option<&'v Value> {
    path.iter().try_fold(value, |value, step| match step {
        Step::Key(name) => value.get(&**name),
        Step::Index(index) => value.get(*index),
    })
}

/// Why a body is not a document the gateway will rewrite. Never carries body content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// Not JSON (or not UTF-8).
    #[error("body is not valid JSON")]
    Invalid,
    /// An object has the same key twice.
    #[error("body has a duplicate object key")]
    DuplicateKey,
    /// Two edits overlap in a way that has no single meaning (a rules bug).
    #[error("overlapping edits")]
    OverlappingEdits,
    /// An edit names a path the document does not have, or removes the root.
    #[error("edit path not in the document")]
    NoSuchPath,
}

/// What to do with the value at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Put this JSON text in place of the value.
    Replace(String),
    /// Remove the member (or array element) holding the value.
    Remove,
}

/// A parsed body: its text and the tree of its values, each with its span.
#[derive(Debug)]
pub struct Document<'a> {
    text: &'a str,
    root: Node<'a>,
    /// The body as a `serde_json::Value`, built on first use (`None`: serde_json refused
    /// what the reader accepted, which the tests and a fuzz target say never happens).
    value: std::sync::OnceLock<Option<Value>>,
}

/// One value of a document, and where its text is.
#[derive(Debug)]
pub struct Node<'a> {
    span: Range<usize>,
    kind: Kind<'a>,
}

/// What a value is.
#[derive(Debug)]
pub enum Kind<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as the body writes it (`1.10` stays `1.10`).
    Number(&'a str),
    /// A string's content, unescaped (borrowed from the body when it has no escapes).
    String(Cow<'a, str>),
    /// An array's elements.
    Array(Vec<Node<'a>>),
    /// An object's members, in body order.
    Object(Vec<Member<'a>>),
}

/// One member of an object.
#[derive(Debug)]
pub struct Member<'a> {
    /// The member's name, unescaped (borrowed from the body when it has no escapes).
    pub name: Cow<'a, str>,
    /// Byte offset of the name's opening quote.
    key_start: usize,
    /// The member's value.
    pub value: Node<'a>,
}

impl<'a> Node<'a> {
    /// What the value is.
    pub fn kind(&self) -> &Kind<'a> {
        &self.kind
    }

    /// The member `name` of an object (`None` for anything else).
    pub fn get(&self, name: &str) -> Option<&Node<'a>> {
        match &self.kind {
            Kind::Object(members) => members.iter().find(|m| m.name == name).map(|m| &m.value),
            _ => None,
        }
    }

    /// The children of an array or an object, each with its step, in body order (none for
    /// anything else).
    pub fn children(&self) -> impl Iterator<Item = (StepRef<'_>, &Node<'a>)> {
        let (items, members) = match &self.kind {
            Kind::Array(items) => (&items[..], &[][..]),
            Kind::Object(members) => (&[][..], &members[..]),
            _ => (&[][..], &[][..]),
        };
        let items = items
            .iter()
            .enumerate()
            .map(|(i, n)| (StepRef::Index(i), n));
        let members = members.iter().map(|m| (StepRef::Key(&m.name), &m.value));
        items.chain(members)
    }

    /// The value at `path` below this one.
    pub fn at<'s>(&self, path: impl IntoIterator<Item = StepRef<'s>>) -> Option<&Node<'a>> {
        let mut node = self;
        for step in path {
            node = match (&node.kind, step) {
                (Kind::Object(_), StepRef::Key(key)) => node.get(key)?,
                (Kind::Array(items), StepRef::Index(i)) => items.get(i)?,
                _ => return None,
            };
        }
        Some(node)
    }
}

impl<'a> Document<'a> {
    /// Parses `bytes`, refusing non-UTF-8, invalid JSON and duplicate keys. Nesting depth is
    /// bounded by the caller's check before this (see `gateway::body`).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DocumentError> {
        let text = std::str::from_utf8(bytes).map_err(|_| DocumentError::Invalid)?;
        let root = Reader::document(text)?;
        Ok(Self {
            text,
            root,
            value: std::sync::OnceLock::new(),
        })
    }

    /// The root value.
    pub fn root(&self) -> &Node<'a> {
        &self.root
    }

    /// The document as a `serde_json::Value`, for JSONPath queries the tree's own walk does
    /// not answer; built from the text on first use. Should serde_json ever refuse a text
    /// the reader accepted, the body is refused as invalid (a query must not quietly select
    /// nothing).
    pub fn value(&self) -> Result<&Value, DocumentError> {
        self.value
            .get_or_init(|| serde_json::from_str(self.text).ok())
            .as_ref()
            .ok_or(DocumentError::Invalid)
    }

    /// The exact JSON text of the value at `path`.
    pub fn text_at(&self, path: &[Step]) -> Option<&'a str> {
        self.node(path).map(|n| self.text_of(n))
    }

    /// The exact JSON text of `node`, a value of this document.
    pub fn text_of(&self, node: &Node<'a>) -> &'a str {
        &self.text[node.span.clone()]
    }

    /// The body with `edits` applied; bytes outside the edited members are unchanged. A
    /// path may be borrowed (from the located members) or owned.
    pub fn rewrite<P: AsRef<[Step]>>(&self, edits: &[(P, Edit)]) -> Result<String, DocumentError> {
        let mut ranges = Vec::with_capacity(edits.len());
        for (path, edit) in edits {
            let path = path.as_ref();
            let range = match edit {
                Edit::Replace(_) => (self.node(path).ok_or(DocumentError::NoSuchPath)?)
                    .span
                    .clone(),
                Edit::Remove => self.removal_range(path, edits)?,
            };
            let replacement = match edit {
                Edit::Replace(text) => text.as_str(),
                Edit::Remove => "",
            };
            ranges.push((range, replacement));
        }
        ranges.sort_by_key(|(r, _)| (r.start, std::cmp::Reverse(r.end)));
        let mut out = String::with_capacity(self.text.len());
        let mut at = 0;
        for (range, replacement) in ranges {
            if range.end <= at && range.start < at {
                continue; // inside a range already replaced or removed
            }
            if range.start < at {
                return Err(DocumentError::OverlappingEdits);
            }
            out.push_str(&self.text[at..range.start]);
            out.push_str(replacement);
            at = range.end;
        }
        out.push_str(&self.text[at..]);
        Ok(out)
    }

    fn node(&self, path: &[Step]) -> Option<&Node<'a>> {
        self.root.at(path.iter().map(Step::as_ref))
    }

    /// The bytes to delete so that the member or element at `path` is gone and the
    /// container stays valid JSON: from its start to the next sibling's start, or, for the
    /// last one, from the end of the last sibling before it that stays.
    fn removal_range<P: AsRef<[Step]>>(
        &self,
        path: &[Step],
        edits: &[(P, Edit)],
    ) -> Result<Range<usize>, DocumentError> {
        let (last, parent_path) = path.split_last().ok_or(DocumentError::NoSuchPath)?;
        let parent = self.node(parent_path).ok_or(DocumentError::NoSuchPath)?;
        // (start, value end, step) of every sibling, in body order.
        let siblings: Vec<(usize, usize, Step)> = match &parent.kind {
            Kind::Object(members) => members
                .iter()
                .map(|m| {
                    (
                        m.key_start,
                        m.value.span.end,
                        Step::Key(m.name.as_ref().into()),
                    )
                })
                .collect(),
            Kind::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, n)| (n.span.start, n.span.end, Step::Index(i)))
                .collect(),
            _ => return Err(DocumentError::NoSuchPath),
        };
        let i = siblings
            .iter()
            .position(|(_, _, s)| s == last)
            .ok_or(DocumentError::NoSuchPath)?;
        if let Some(next) = siblings.get(i + 1) {
            return Ok(siblings[i].0..next.0);
        }
        let removed: BTreeSet<&Step> = edits
            .iter()
            .filter(|(p, e)| {
                *e == Edit::Remove && p.as_ref().split_last().map(|(_, pp)| pp) == Some(parent_path)
            })
            .filter_map(|(p, _)| p.as_ref().last())
            .collect();
        let kept_before = siblings[..i]
            .iter()
            .rev()
            .find(|(_, _, s)| !removed.contains(s));
        Ok(match kept_before {
            Some((_, end, _)) => *end..siblings[i].1,
            None => siblings[i].0..siblings[i].1,
        })
    }
}

/// Whether [`Document::parse`] reads `body` as serde_json does: it accepts exactly what
/// serde_json accepts, less bodies with a duplicate key; it builds the value serde_json
/// builds; every value's span holds text serde_json reads as that value. `Ok(accepted)`,
/// or what differs (at most a path of member names, never a value). For the tests and the
/// `body_reveal` fuzz target.
#[cfg(any(test, feature = "fuzzing"))]
pub fn check_against_serde_json(body: &[u8]) -> Result<bool, String> {
    /// Whether `node` (at `path`) is `value`, and every span holds text serde_json reads
    /// as its value.
    fn same(
        doc: &Document<'_>,
        node: &Node<'_>,
        path: &mut Path,
        value: &Value,
    ) -> Result<(), String> {
        let text = doc.text_of(node);
        if serde_json::from_str::<Value>(text).ok().as_ref() != Some(value) {
            return Err(format!("the span at {path:?} does not hold its value"));
        }
        let differs = || format!("the tree differs from serde_json's value at {path:?}");
        match (&node.kind, value) {
            (Kind::Null, Value::Null) => {}
            (Kind::Bool(a), Value::Bool(b)) if a == b => {}
            (Kind::Number(a), Value::Number(b))
                if a.parse::<serde_json::Number>().ok().as_ref() == Some(b) => {}
            (Kind::String(a), Value::String(b)) if a == b => {}
            (Kind::Array(items), Value::Array(values)) if items.len() == values.len() => {
                for (i, (item, value)) in items.iter().zip(values).enumerate() {
                    path.push(Step::Index(i));
                    same(doc, item, path, value)?;
                    path.pop();
                }
            }
            (Kind::Object(members), Value::Object(map))
                if members.len() == map.len()
                    && members.iter().zip(map.keys()).all(|(m, k)| m.name == *k) =>
            {
                for (member, value) in members.iter().zip(map.values()) {
                    // The name's opening quote is where the member starts.
                    if doc.text.as_bytes().get(member.key_start) != Some(&b'"') {
                        return Err(format!("a member name misplaced at {path:?}"));
                    }
                    path.push(Step::Key(member.name.as_ref().into()));
                    same(doc, &member.value, path, value)?;
                    path.pop();
                }
            }
            _ => return Err(differs()),
        }
        Ok(())
    }
    match (
        Document::parse(body),
        serde_json::from_slice::<Value>(body).ok(),
    ) {
        (Ok(doc), Some(value)) => same(&doc, doc.root(), &mut Vec::new(), &value).map(|()| true),
        (Err(DocumentError::DuplicateKey), Some(_)) | (Err(_), None) => Ok(false),
        (Ok(_), None) => Err("accepted what serde_json refuses".into()),
        (Err(e), Some(_)) => Err(format!("refused ({e}) what serde_json accepts")),
    }
}

/// serde_json's default nesting limit, kept so that the one-pass reader accepts exactly the
/// documents serde_json's own parser accepts.
const MAX_DEPTH: usize = 128;

/// One pass over the body with jiter's pull parser: the byte position before and after
/// each value is its span. Numbers are checked as serde_json reads them (it refuses one out
/// of `f64`'s range) and kept as written.
struct Reader<'a> {
    jiter: Jiter<'a>,
    text: &'a str,
    depth: usize,
    /// Whether an object had a key twice: refused, after the whole body proved valid JSON
    /// (an invalid body is refused as invalid, whatever else it has).
    duplicate: bool,
}

fn invalid(_: JiterError) -> DocumentError {
    DocumentError::Invalid
}

impl<'a> Reader<'a> {
    fn document(text: &'a str) -> Result<Node<'a>, DocumentError> {
        let mut reader = Reader {
            jiter: Jiter::new(text.as_bytes()),
            text,
            depth: 0,
            duplicate: false,
        };
        let peek = reader.jiter.peek().map_err(invalid)?;
        let root = reader.value(peek)?;
        reader.jiter.finish().map_err(invalid)?;
        if reader.duplicate {
            return Err(DocumentError::DuplicateKey);
        }
        Ok(root)
    }

    fn value(&mut self, peek: Peek) -> Result<Node<'a>, DocumentError> {
        let start = self.jiter.current_index();
        let kind = match peek {
            Peek::Object => self.nested(Self::object)?,
            Peek::Array => self.nested(Self::array)?,
            Peek::String => {
                let decoded = self.jiter.known_str().map_err(invalid)?;
                Kind::String(in_body(self.text, decoded))
            }
            Peek::True | Peek::False => Kind::Bool(self.jiter.known_bool(peek).map_err(invalid)?),
            Peek::Null => {
                self.jiter.known_null().map_err(invalid)?;
                Kind::Null
            }
            _ => {
                let bytes = self.jiter.known_number_bytes(peek).map_err(invalid)?;
                let len = bytes.len();
                std::str::from_utf8(bytes)
                    .ok()
                    .and_then(|n| n.parse::<serde_json::Number>().ok())
                    .ok_or(DocumentError::Invalid)?;
                Kind::Number(&self.text[start..start + len])
            }
        };
        let span = start..self.jiter.current_index();
        Ok(Node { span, kind })
    }

    fn nested(
        &mut self,
        read: fn(&mut Self) -> Result<Kind<'a>, DocumentError>,
    ) -> Result<Kind<'a>, DocumentError> {
        self.depth += 1;
        if self.depth >= MAX_DEPTH {
            return Err(DocumentError::Invalid);
        }
        let read = read(self);
        self.depth -= 1;
        read
    }

    fn object(&mut self) -> Result<Kind<'a>, DocumentError> {
        let mut members: Vec<Member<'a>> = Vec::new();
        let mut after = self.jiter.current_index() + 1; // just past `{` or the previous value
        let text = self.text;
        let mut key = self
            .jiter
            .known_object()
            .map_err(invalid)?
            .map(|k| member_name(text, after, k));
        while let Some(named) = key {
            let (name, key_start) = named?;
            let peek = self.jiter.peek().map_err(invalid)?;
            let value = self.value(peek)?;
            after = value.span.end;
            members.push(Member {
                name,
                key_start,
                value,
            });
            key = self
                .jiter
                .next_key()
                .map_err(invalid)?
                .map(|k| member_name(text, after, k));
        }
        self.duplicate |= has_duplicate(&members);
        Ok(Kind::Object(members))
    }

    fn array(&mut self) -> Result<Kind<'a>, DocumentError> {
        let mut items = Vec::new();
        let mut next = self.jiter.known_array().map_err(invalid)?;
        while let Some(peek) = next {
            items.push(self.value(peek)?);
            next = self.jiter.array_step().map_err(invalid)?;
        }
        Ok(Kind::Array(items))
    }
}

/// A member name jiter decoded (`decoded`), borrowed from the body when written without
/// escapes ([`in_body`]), and where its opening quote is: the first quote after `after`
/// (only white space and a comma come between the brace or the previous value and the name).
fn member_name<'a>(
    text: &'a str,
    after: usize,
    decoded: &str,
) -> Result<(Cow<'a, str>, usize), DocumentError> {
    let key_start = after
        + text.as_bytes()[after..]
            .iter()
            .position(|&b| b == b'"')
            .ok_or(DocumentError::Invalid)?;
    Ok((in_body(text, decoded), key_start))
}

/// What jiter decoded, borrowed from the body when jiter read it in place (a string without
/// escapes: jiter then hands out a slice of the body itself, told by where it points),
/// else a copy. Nothing is compared: the slice is the same bytes.
fn in_body<'a>(text: &'a str, decoded: &str) -> Cow<'a, str> {
    let offset = (decoded.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
    match text.get(offset..offset.wrapping_add(decoded.len())) {
        Some(slice) if slice.as_ptr() == decoded.as_ptr() => Cow::Borrowed(slice),
        _ => Cow::Owned(decoded.to_owned()),
    }
}

/// Whether two members share a name. A few are compared pairwise; more are sorted by name
/// (no hashing an attacker could make collide, and no quadratic work on a big object).
fn has_duplicate(members: &[Member<'_>]) -> bool {
    if members.len() <= 32 {
        return members
            .iter()
            .enumerate()
            .any(|(i, m)| members[..i].iter().any(|earlier| earlier.name == m.name));
    }
    let mut names: Vec<&str> = members.iter().map(|m| &*m.name).collect();
    names.sort_unstable();
    names.windows(2).any(|pair| pair[0] == pair[1])
}

#[cfg(test)]
mod tests;
