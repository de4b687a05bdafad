//! A JSON body as its exact text plus the byte span of every value, so that protection
//! replaces or removes exactly the members the rules touch and every other byte reaches the
//! other side as it came (`1.10` stays `1.10`, integers beyond 2^53 stay exact, key order
//! and white space are kept).
//!
//! Parsing is one pass of jiter's pull parser (the JSON reader behind pydantic), which
//! reports the byte position before and after every value: those are the spans, and the
//! same pass builds the `serde_json::Value` the selectors query. It accepts what
//! serde_json accepts (the same grammar, escapes, surrogate rules and nesting limit; a test
//! and the `body_reveal` fuzz target compare the two) and refuses duplicate object keys,
//! which serde_json's own `Value` would silently resolve to the last one: a body where the
//! gateway and the upstream could disagree on which `"pan"` counts is never passed on.

use jiter::{Jiter, JiterError, Peek};
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::ops::Range;

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// An object member.
    Key(String),
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
            StepRef::Key(key) => Step::Key(key.to_owned()),
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
            serde_json_path::PathElement::Name(name) => Step::Key((*name).to_owned()),
            serde_json_path::PathElement::Index(index) => Step::Index(*index),
        })
        .collect()
}

/// The value at `path` in `value`.
pub fn value_at<'v>(value: &'v Value, path: &[Step]) -> Option<&'v Value> {
    path.iter().try_fold(value, |value, step| match step {
        Step::Key(name) => value.get(name.as_str()),
        Step::Index(index) => value.get(*index),
    })
}

/// The value at `path` in `value`, to change it in place.
pub fn value_at_mut<'v>(value: &'v mut Value, path: &[Step]) -> Option<&'v mut Value> {
    path.iter().try_fold(value, |value, step| match step {
        Step::Key(name) => value.get_mut(name.as_str()),
        Step::Index(index) => value.get_mut(*index),
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

/// A parsed body: its text, its value (for JSONPath queries) and the spans of its values.
#[derive(Debug)]
pub struct Document<'a> {
    text: &'a str,
    value: Value,
    root: Node<'a>,
}

#[derive(Debug)]
struct Node<'a> {
    span: Range<usize>,
    children: Children<'a>,
}

#[derive(Debug)]
enum Children<'a> {
    Scalar,
    /// Members in body order: key (borrowed from the body unless it has escapes), byte
    /// offset of the key's opening quote, value.
    Object(Vec<(Cow<'a, str>, usize, Node<'a>)>),
    Array(Vec<Node<'a>>),
}

impl<'a> Document<'a> {
    /// Parses `bytes`, refusing non-UTF-8, invalid JSON and duplicate keys. Nesting depth is
    /// bounded by the caller's check before this (see `gateway::body`).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DocumentError> {
        let text = std::str::from_utf8(bytes).map_err(|_| DocumentError::Invalid)?;
        let (root, value) = Reader::document(text)?;
        Ok(Self { text, value, root })
    }

    /// The document as a value, for selectors.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The exact JSON text of the value at `path`.
    pub fn text_at(&self, path: &[Step]) -> Option<&'a str> {
        self.text_at_steps(path.iter().map(Step::as_ref))
    }

    /// [`text_at`](Self::text_at) for a path of borrowed steps.
    pub fn text_at_steps<'s>(
        &self,
        path: impl IntoIterator<Item = StepRef<'s>>,
    ) -> Option<&'a str> {
        self.node_at(path).map(|n| &self.text[n.span.clone()])
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
        self.node_at(path.iter().map(Step::as_ref))
    }

    fn node_at<'s>(&self, path: impl IntoIterator<Item = StepRef<'s>>) -> Option<&Node<'a>> {
        let mut node = &self.root;
        for step in path {
            node = match (&node.children, step) {
                (Children::Object(members), StepRef::Key(key)) => {
                    &members.iter().find(|(k, _, _)| k == key)?.2
                }
                (Children::Array(items), StepRef::Index(i)) => items.get(i)?,
                _ => return None,
            };
        }
        Some(node)
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
        let siblings: Vec<(usize, usize, Step)> = match &parent.children {
            Children::Object(members) => members
                .iter()
                .map(|(k, start, n)| (*start, n.span.end, Step::Key(k.to_string())))
                .collect(),
            Children::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, n)| (n.span.start, n.span.end, Step::Index(i)))
                .collect(),
            Children::Scalar => return Err(DocumentError::NoSuchPath),
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
    fn spans(doc: &Document<'_>, path: &mut Path, value: &Value) -> Result<(), String> {
        let text = doc.text_at(path).ok_or("a value without a span")?;
        if serde_json::from_str::<Value>(text).ok().as_ref() != Some(value) {
            return Err(format!("the span at {path:?} does not hold its value"));
        }
        let children: Vec<(Step, &Value)> = match value {
            Value::Object(members) => members
                .iter()
                .map(|(k, v)| (Step::Key(k.clone()), v))
                .collect(),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (Step::Index(i), v))
                .collect(),
            _ => Vec::new(),
        };
        for (step, child) in children {
            path.push(step);
            spans(doc, path, child)?;
            path.pop();
        }
        Ok(())
    }
    match (
        Document::parse(body),
        serde_json::from_slice::<Value>(body).ok(),
    ) {
        (Ok(doc), Some(value)) if doc.value() == &value => {
            spans(&doc, &mut Vec::new(), &value).map(|()| true)
        }
        (Ok(_), Some(_)) => Err("a value other than serde_json's".into()),
        (Err(DocumentError::DuplicateKey), Some(_)) | (Err(_), None) => Ok(false),
        (Ok(_), None) => Err("accepted what serde_json refuses".into()),
        (Err(e), Some(_)) => Err(format!("refused ({e}) what serde_json accepts")),
    }
}

/// serde_json's default nesting limit, kept so that the one-pass reader accepts exactly the
/// documents serde_json's own parser accepts.
const MAX_DEPTH: usize = 128;

/// One pass over the body with jiter's pull parser: the byte position before and after
/// each value is its span, and the same pass builds the `serde_json` value (numbers read
/// by serde_json from their own text, so they are what serde_json would make of them).
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
    fn document(text: &'a str) -> Result<(Node<'a>, Value), DocumentError> {
        let mut reader = Reader {
            jiter: Jiter::new(text.as_bytes()),
            text,
            depth: 0,
            duplicate: false,
        };
        let peek = reader.jiter.peek().map_err(invalid)?;
        let read = reader.value(peek)?;
        reader.jiter.finish().map_err(invalid)?;
        if reader.duplicate {
            return Err(DocumentError::DuplicateKey);
        }
        Ok(read)
    }

    fn value(&mut self, peek: Peek) -> Result<(Node<'a>, Value), DocumentError> {
        let start = self.jiter.current_index();
        let (children, value) = match peek {
            Peek::Object => self.nested(Self::object)?,
            Peek::Array => self.nested(Self::array)?,
            Peek::String => {
                let s = self.jiter.known_str().map_err(invalid)?;
                (Children::Scalar, Value::String(s.to_owned()))
            }
            Peek::True | Peek::False => {
                let b = self.jiter.known_bool(peek).map_err(invalid)?;
                (Children::Scalar, Value::Bool(b))
            }
            Peek::Null => {
                self.jiter.known_null().map_err(invalid)?;
                (Children::Scalar, Value::Null)
            }
            _ => {
                let bytes = self.jiter.known_number_bytes(peek).map_err(invalid)?;
                let number = std::str::from_utf8(bytes)
                    .ok()
                    .and_then(|n| n.parse::<Number>().ok())
                    .ok_or(DocumentError::Invalid)?;
                (Children::Scalar, Value::Number(number))
            }
        };
        let span = start..self.jiter.current_index();
        Ok((Node { span, children }, value))
    }

    fn nested(
        &mut self,
        read: fn(&mut Self) -> Result<(Children<'a>, Value), DocumentError>,
    ) -> Result<(Children<'a>, Value), DocumentError> {
        self.depth += 1;
        if self.depth >= MAX_DEPTH {
            return Err(DocumentError::Invalid);
        }
        let read = read(self);
        self.depth -= 1;
        read
    }

    fn object(&mut self) -> Result<(Children<'a>, Value), DocumentError> {
        let mut members = Vec::new();
        // The value's members are gathered first and put in a map sized once: a map grown
        // member by member rehashes every key at each doubling.
        let mut entries = Vec::new();
        let mut after = self.jiter.current_index() + 1; // just past `{` or the previous value
        let mut key = self
            .jiter
            .known_object()
            .map_err(invalid)?
            .map(str::to_owned);
        while let Some(name) = key {
            let peek = self.jiter.peek().map_err(invalid)?;
            let value_start = self.jiter.current_index();
            // The key's opening quote: the first after the brace or the previous value
            // (only white space and a comma come between).
            let key_start = after
                + self.text.as_bytes()[after..value_start]
                    .iter()
                    .position(|&b| b == b'"')
                    .ok_or(DocumentError::Invalid)?;
            // The key as the body writes it, when that is the key (no escapes): the node
            // borrows it and only the value's map owns a copy.
            let written = self
                .text
                .get(key_start + 1..key_start + 1 + name.len())
                .filter(|written| *written == name);
            let member_key = match written {
                Some(written) => Cow::Borrowed(written),
                None => Cow::Owned(name.clone()),
            };
            let (node, value) = self.value(peek)?;
            after = node.span.end;
            entries.push((name, value));
            members.push((member_key, key_start, node));
            key = self.jiter.next_key().map_err(invalid)?.map(str::to_owned);
        }
        let mut map = Map::with_capacity(entries.len());
        for (name, value) in entries {
            self.duplicate |= map.insert(name, value).is_some();
        }
        Ok((Children::Object(members), Value::Object(map)))
    }

    fn array(&mut self) -> Result<(Children<'a>, Value), DocumentError> {
        let mut items = Vec::new();
        let mut values = Vec::new();
        let mut next = self.jiter.known_array().map_err(invalid)?;
        while let Some(peek) = next {
            let (node, value) = self.value(peek)?;
            items.push(node);
            values.push(value);
            next = self.jiter.array_step().map_err(invalid)?;
        }
        Ok((Children::Array(items), Value::Array(values)))
    }
}

#[cfg(test)]
mod tests;
