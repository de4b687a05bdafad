//! Protecting a body: every value a rule binds to a class with at-rest protection is
//! replaced by its protected form; nothing else changes. On an inbound route this is the
//! request on its way upstream; on an outbound route, the external party's response on its
//! way back in. Any failure refuses the whole body: it goes on fully protected or not at all.
//! A value of a shredded data subject is refused (`KeyUnavailable::Shredded`), whatever its
//! class's key: a forgotten subject gets no new protected data. A bound value must be one
//! every view of its class can show (a string, a number or null).

use super::document::{Document, Edit, Step};
use super::keys::{class_key, KeySource, KeyUnavailable, SubjectKeys};
use super::rules::BodySide;
use super::transform::{self, Binding};
use super::{ProtectError, Protection};
use crate::keys::aead::Nonces;
use std::borrow::Cow;

impl Protection {
    /// The protected `side` body of `route`, or `None` when that body has no rules and no
    /// guard (it goes as it came). `route_subject` is the subject the route's path names,
    /// used for per-subject keys when a scope names none of its own.
    pub async fn protect(
        &self,
        route: &str,
        side: BodySide,
        body: &[u8],
        route_subject: Option<&str>,
        keys: &impl KeySource,
    ) -> Result<Option<Vec<u8>>, ProtectError> {
        let scopes = self.routes.get(route).map_or(&[][..], |r| r.scopes(side));
        if body.is_empty() || (scopes.is_empty() && !self.guards.contains_key(route)) {
            return Ok(None);
        }
        let doc = Document::parse(body).map_err(ProtectError::Body)?;
        let located = self.locate(route, side, &doc)?;
        // Paths borrowed from `located`; the guard's (rarely any) are its own.
        let mut edits: Vec<(Cow<'_, [Step]>, Edit)> = Vec::with_capacity(located.len());
        let mut subjects = SubjectKeys::new(keys);
        let mut nonces = Nonces::expecting(located.len());
        for found in &located {
            let class = self.class(&found.class)?;
            let Some(spec) = &class.protect else { continue };
            let text = doc.text_at(&found.path).ok_or(ProtectError::Internal)?;
            if text == "null" {
                continue;
            }
            let subject = found.subject.as_deref().or(route_subject);
            // Nothing new is protected for a shredded subject, under any key.
            if subjects.erased(subject).await? {
                return Err(KeyUnavailable::Shredded.into());
            }
            let binding = Binding {
                class: &class.name,
                subject: subject.filter(|_| class.per_subject),
            };
            // Every view must be able to show what is stored: a value the masked view
            // cannot render (an object, an array, a boolean) is refused here, as the
            // client's error, instead of being stored to fail every later read.
            transform::mask::check(&class.mask, &binding, text)
                .map_err(|e| ProtectError::Transform(class.name.clone(), e))?;
            let key = match (spec.key_kind(), class.per_subject) {
                (None, _) => None,
                (Some(kind), true) => {
                    let subject = subject.ok_or(ProtectError::SubjectRequired)?;
                    Some(subjects.key(subject, kind).await?)
                }
                (Some(kind), false) => Some(class_key(keys, spec, &class.name, kind).await?),
            };
            let edit = transform::protect(spec, key.as_deref(), &binding, text, &mut nonces)
                .map_err(|e| ProtectError::Transform(class.name.clone(), e))?;
            edits.push((Cow::Borrowed(&found.path), edit));
        }
        let guarded = self.guard(route, &doc, &located, keys).await?;
        edits.extend(
            guarded
                .into_iter()
                .map(|(path, edit)| (Cow::Owned(path), edit)),
        );
        let rewritten = doc.rewrite(&edits).map_err(|_| ProtectError::Internal)?;
        Ok(Some(rewritten.into_bytes()))
    }
}
