//! A JSON body as its exact text plus the byte span of every value, so that protection
//! replaces or removes exactly the members the rules touch and every other byte reaches the
//! other side as it came (`1.10` stays `1.10`, integers beyond 2^53 stay exact, key order
//! and white space are kept).
//!
//! Parsing is serde_json's: each container is read as a map or sequence of borrowed
//! `RawValue`s, whose position inside the body gives the span. The same walk refuses
//! duplicate object keys, which serde_json's own `Value` would silently resolve to the last
//! one: a body where the gateway and the upstream could disagree on which `"pan"` counts is
//! never passed on.

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt;
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
    root: Node,
}

#[derive(Debug)]
struct Node {
    span: Range<usize>,
    children: Children,
}

#[derive(Debug)]
enum Children {
    Scalar,
    /// Members in body order: key, byte offset of the key's opening quote, value.
    Object(Vec<(String, usize, Node)>),
    Array(Vec<Node>),
}

impl<'a> Document<'a> {
    /// Parses `bytes`, refusing non-UTF-8, invalid JSON and duplicate keys. Nesting depth is
    /// bounded by the caller's check before this (see `gateway::body`).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DocumentError> {
        let text = std::str::from_utf8(bytes).map_err(|_| DocumentError::Invalid)?;
        let raw: &RawValue = serde_json::from_str(text).map_err(|_| DocumentError::Invalid)?;
        let root = build(text, raw)?;
        let value = serde_json::from_str(text).map_err(|_| DocumentError::Invalid)?;
        Ok(Self { text, value, root })
    }

    /// The document as a value, for selectors.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The exact JSON text of the value at `path`.
    pub fn text_at(&self, path: &[Step]) -> Option<&'a str> {
        self.node(path).map(|n| &self.text[n.span.clone()])
    }

    /// The body with `edits` applied; bytes outside the edited members are unchanged.
    pub fn rewrite(&self, edits: &[(Path, Edit)]) -> Result<String, DocumentError> {
        let mut ranges = Vec::with_capacity(edits.len());
        for (path, edit) in edits {
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

    fn node(&self, path: &[Step]) -> Option<&Node> {
        let mut node = &self.root;
        for step in path {
            node = match (&node.children, step) {
                (Children::Object(members), Step::Key(key)) => {
                    &members.iter().find(|(k, _, _)| k == key)?.2
                }
                (Children::Array(items), Step::Index(i)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The bytes to delete so that the member or element at `path` is gone and the
    /// container stays valid JSON: from its start to the next sibling's start, or, for the
    /// last one, from the end of the last sibling before it that stays.
    fn removal_range(
        &self,
        path: &[Step],
        edits: &[(Path, Edit)],
    ) -> Result<Range<usize>, DocumentError> {
        let (last, parent_path) = path.split_last().ok_or(DocumentError::NoSuchPath)?;
        let parent = self.node(parent_path).ok_or(DocumentError::NoSuchPath)?;
        // (start, value end, step) of every sibling, in body order.
        let siblings: Vec<(usize, usize, Step)> = match &parent.children {
            Children::Object(members) => members
                .iter()
                .map(|(k, start, n)| (*start, n.span.end, Step::Key(k.clone())))
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
                *e == Edit::Remove && p.split_last().map(|(_, pp)| pp) == Some(parent_path)
            })
            .filter_map(|(p, _)| p.last())
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

fn offset_in(base: &str, part: &str) -> usize {
    part.as_ptr() as usize - base.as_ptr() as usize
}

fn build(base: &str, raw: &RawValue) -> Result<Node, DocumentError> {
    let text = raw.get();
    let start = offset_in(base, text);
    let span = start..start + text.len();
    let children = match text.as_bytes().first() {
        Some(b'{') => {
            let RawObject(members) = serde_json::from_str(text).map_err(|e| object_error(&e))?;
            let mut out = Vec::with_capacity(members.len());
            let mut after = start + 1; // just past `{` or the previous value
            for (key, value) in members {
                let value_start = offset_in(base, value.get());
                let key_start = after
                    + base[after..value_start]
                        .find('"')
                        .ok_or(DocumentError::Invalid)?;
                let node = build(base, value)?;
                after = node.span.end;
                out.push((key, key_start, node));
            }
            Children::Object(out)
        }
        Some(b'[') => {
            let items: Vec<&RawValue> =
                serde_json::from_str(text).map_err(|_| DocumentError::Invalid)?;
            Children::Array(
                items
                    .into_iter()
                    .map(|item| build(base, item))
                    .collect::<Result<_, _>>()?,
            )
        }
        _ => Children::Scalar,
    };
    Ok(Node { span, children })
}

const DUPLICATE_KEY: &str = "privgate: duplicate key";

fn object_error(e: &serde_json::Error) -> DocumentError {
    if e.to_string().starts_with(DUPLICATE_KEY) {
        DocumentError::DuplicateKey
    } else {
        DocumentError::Invalid
    }
}

/// An object's members as borrowed raw values, in order, refusing duplicate keys.
struct RawObject<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut seen = std::collections::HashSet::new();
                let mut members = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, &'de RawValue>()? {
                    if !seen.insert(key.clone()) {
                        return Err(serde::de::Error::custom(DUPLICATE_KEY));
                    }
                    members.push((key, value));
                }
                Ok(RawObject(members))
            }
            fn visit_seq<S: SeqAccess<'de>>(self, _: S) -> Result<Self::Value, S::Error> {
                Err(serde::de::Error::custom("expected an object"))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

#[cfg(test)]
mod tests;
