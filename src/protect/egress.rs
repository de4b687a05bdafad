//! Revealing a body as the Decision says: on an inbound route the upstream's response on
//! its way to the caller; on an outbound route the request on its way out to the external
//! party. Each value a rule binds is shown in the view of its class (for its data subject):
//! clear (decrypted), masked, the deterministic token, or removed; every value of a shredded
//! subject reads as erased, in every view and whatever its class's key. Anything that cannot be revealed as decided refuses the body: no
//! value ever leaves in a view more revealing than decided, and no body leaves half-rewritten.

use super::classes::FieldClass;
use super::document::{Document, Edit, Step};
use super::keys::{class_key, KeySource, KeyUnavailable, SubjectKeys};
use super::rules::{BodySide, Located};
use super::transform::{self, fpe, mask, tokenize, Binding, Ciphertext, ProtectSpec, Scheme};
use super::{ProtectError, Protection};
use crate::decision::{Decision, FieldClasses, FieldView};
use crate::keys::KeyKind;
use std::borrow::Cow;

/// What a value of a shredded data subject is shown as, in every view.
pub const ERASED: &str = "\"[erased]\"";

impl Protection {
    /// The values `route`'s rules for the `side` body bind in it; a body with a member
    /// spelled like a bound member but not exactly as it is refused.
    pub fn locate(
        &self,
        route: &str,
        side: BodySide,
        doc: &Document<'_>,
    ) -> Result<Vec<Located>, ProtectError> {
        match self.routes.get(route) {
            Some(rules) => Ok(rules.bind(side, doc)?),
            None => Ok(Vec::new()),
        }
    }

    /// The field classes `route`'s rules for the `side` body bind (what a Decision must
    /// give views for when that body is revealed).
    pub fn classes(&self, route: &str, side: BodySide) -> FieldClasses {
        self.routes
            .get(route)
            .map(|r| r.classes(side).clone())
            .unwrap_or_default()
    }

    /// The body with every located value in the caller's view, and the route's PII guard
    /// applied to the rest. `route_subject` (the subject the route's path names) keys and
    /// decides values whose scope names no subject of its own.
    pub async fn reveal(
        &self,
        route: &str,
        doc: &Document<'_>,
        located: &[Located],
        route_subject: Option<&str>,
        decision: &Decision,
        keys: &impl KeySource,
    ) -> Result<String, ProtectError> {
        // Paths borrowed from `located`; the guard's (rarely any) are its own.
        let mut edits: Vec<(Cow<'_, [Step]>, Edit)> = Vec::with_capacity(located.len());
        let mut subjects = SubjectKeys::new(keys);
        for found in located {
            let class = self.class(&found.class)?;
            let subject = found.subject.as_deref().or(route_subject);
            let view = decision.view(subject, &class.name);
            let text = doc.text_at(&found.path).ok_or(ProtectError::Internal)?;
            let edit = if view != FieldView::Removed
                && text != "null"
                && subjects.erased(subject).await?
            {
                // Before any view is worked out: a shredded subject's values read as erased
                // in every view, whether or not their class's key died with their keys.
                Some(Edit::Replace(ERASED.to_owned()))
            } else {
                reveal_one(class, text, subject, view, &mut subjects).await?
            };
            if let Some(edit) = edit {
                edits.push((Cow::Borrowed(&found.path), edit));
            }
        }
        let guarded = self.guard(route, doc, located, keys).await?;
        edits.extend(
            guarded
                .into_iter()
                .map(|(path, edit)| (Cow::Owned(path), edit)),
        );
        doc.rewrite(&edits).map_err(|_| ProtectError::Internal)
    }
}

async fn reveal_one<'a, K: KeySource>(
    class: &'a FieldClass,
    text: &str,
    subject: Option<&'a str>,
    view: FieldView,
    subjects: &mut SubjectKeys<'a, K>,
) -> Result<Option<Edit>, ProtectError> {
    let keys = subjects.source();
    if view == FieldView::Removed {
        return Ok(Some(Edit::Remove));
    }
    if text == "null" {
        return Ok(None);
    }
    let binding = Binding {
        class: &class.name,
        subject: subject.filter(|_| class.per_subject),
    };
    if let (FieldView::Masked, Some(spec @ ProtectSpec::Fpe(fpe_spec))) = (view, &class.protect) {
        // The mask of the decryption, without decrypting when the mask shows only what FPE
        // keeps in clear (`fpe::masked_view`).
        let key = match class_key(keys, spec, &class.name, sealed_kind(spec)).await {
            Ok(key) => key,
            Err(KeyUnavailable::Shredded) => return Ok(Some(Edit::Replace(ERASED.to_owned()))),
            Err(e) => return Err(e.into()),
        };
        let shown = fpe::masked_view(&key, &binding, fpe_spec, &class.mask, text)
            .map_err(|e| ProtectError::Transform(class.name.clone(), e))?;
        return Ok((shown != text).then_some(Edit::Replace(shown)));
    }
    // Shredded here too: the subject's keys may be destroyed between the check and the use.
    let clear = match clear_text(class, text, &binding, subjects).await {
        Ok(clear) => clear,
        Err(ProtectError::Key(KeyUnavailable::Shredded)) => {
            return Ok(Some(Edit::Replace(ERASED.to_owned())))
        }
        Err(e) => return Err(e),
    };
    let failed = |e| ProtectError::Transform(class.name.clone(), e);
    let shown = match view {
        FieldView::Clear => clear,
        FieldView::Masked => mask::mask(&class.mask, &binding, &clear).map_err(failed)?,
        FieldView::Token if class.stored_as_token() && clear != text => text.to_owned(),
        FieldView::Token => {
            // Tokens are per class, never per subject: their point is equality across subjects.
            let key = keys.current(&class.token_key_name(), KeyKind::Siv).await?;
            tokenize::tokenize(&key, &Binding::class(&class.name), &clear).map_err(failed)?
        }
        FieldView::Removed => unreachable!("handled above"),
    };
    Ok((shown != text).then_some(Edit::Replace(shown)))
}

/// The value in clear: decrypted when the class stores it reversibly, as stored when the
/// class stores it one-way (a hash or mask is all there is) or not at all. A string that is
/// not one of our ciphertexts on an encrypted class is taken as stored in clear (data
/// written before protection was turned on).
async fn clear_text<'a, K: KeySource>(
    class: &FieldClass,
    text: &str,
    binding: &Binding<'a>,
    subjects: &mut SubjectKeys<'a, K>,
) -> Result<String, ProtectError> {
    let keys = subjects.source();
    let Some(spec) = &class.protect else {
        return Ok(text.to_owned());
    };
    let failed = |e| ProtectError::Transform(class.name.clone(), e);
    let mut binding = *binding;
    let key = match spec {
        ProtectSpec::Encrypt { .. } | ProtectSpec::Tokenize { .. } => {
            let sealed = match Ciphertext::parse(text) {
                Ok(sealed) => sealed,
                // Ours, but damaged: never shown, in any view.
                Err(e) if looks_sealed(text) => return Err(failed(e)),
                Err(_) => return Ok(text.to_owned()),
            };
            let class_key_name = spec.key_name(&class.name).unwrap_or(&class.name);
            let key = match binding.subject {
                // Sealed under the class's own key before the class became per-subject (as
                // `dob` did): it opens as it was sealed, bound to the class alone. Anything
                // else on a per-subject class must open under the subject's key.
                Some(_) if sealed.key_name() == class_key_name => {
                    binding.subject = None;
                    keys.version(sealed.key_name(), sealed.version()).await?
                }
                Some(subject) => subjects.key(subject, sealed_kind(spec)).await?,
                None => keys.version(sealed.key_name(), sealed.version()).await?,
            };
            // Opened from the envelope parsed above (not parsed again from the text).
            return transform::reveal_sealed(spec, &key, &binding, sealed).map_err(failed);
        }
        ProtectSpec::Fpe(_) | ProtectSpec::DateShift(_) => {
            class_key(keys, spec, &class.name, sealed_kind(spec)).await?
        }
        _ => return Ok(text.to_owned()),
    };
    transform::reveal(spec, Some(&key), &binding, text).map_err(failed)
}

/// Whether a JSON value claims to be one of our ciphertexts or tokens.
fn looks_sealed(text: &str) -> bool {
    [Scheme::Encrypt, Scheme::Token]
        .iter()
        .any(|s| text.starts_with(&format!("\"{}.", s.prefix())))
}

fn sealed_kind(spec: &ProtectSpec) -> KeyKind {
    spec.key_kind().unwrap_or(KeyKind::Aead)
}
