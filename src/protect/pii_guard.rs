//! Applying a route's PII guard to a body: personal data found in members no rule binds
//! (values, member names, numbers in any form) is blocked (the body is refused), masked in
//! place, or reported (metric and log), as the route's guard says. Bound members are the
//! rules' business, so FPE outputs (which look like real card numbers) are not flagged.
//!
//! A string shaped like the gateway's own ciphertext or token is skipped only once it has
//! authenticated under the gateway's keys; a lookalike (`pgt1.pan.1.<card number>`) is
//! scanned like any text. Authentication runs only when the scan found something, so a
//! clean body costs no key lookups.

use super::document::{Document, Edit, Path};
use super::guard::{not_authentic, Covered, GuardAction, Known};
use super::keys::KeySource;
use super::rules::Located;
use super::transform::{self, tokenize, Binding, Ciphertext, ProtectSpec, Scheme};
use super::{ProtectError, Protection};
use std::collections::HashSet;

/// At most this many lookalike strings of one body are authenticated; the rest stay
/// unauthenticated (scanned as text: fail closed). A body of a protected route carries a
/// handful of the gateway's outputs outside bound members, not hundreds.
const MAX_AUTHENTICATED: usize = 64;

impl Protection {
    /// Edits that mask what the route's guard finds outside `located`; an error when it
    /// blocks, or when it masks and a finding is in a member name (a name cannot be masked
    /// in place). No guard, or nothing found: no edits.
    pub(super) async fn guard(
        &self,
        route: &str,
        doc: &Document<'_>,
        located: &[Located],
        keys: &impl KeySource,
    ) -> Result<Vec<(Path, Edit)>, ProtectError> {
        let Some(guard) = self.guards.get(route) else {
            return Ok(Vec::new());
        };
        let covered = Covered::of(located.iter().map(|l| &l.path));
        // `Known` holds a `dyn` reference, so it is built per scan and never held across the
        // await below (the request future must stay `Send`).
        let scan = |authentic: &dyn Fn(&str) -> bool| {
            let known = Known {
                covered: &covered,
                authentic,
            };
            guard.scan_known(doc.root(), &known)
        };
        let mut findings = scan(&not_authentic);
        let authentic = match findings.is_empty() {
            true => HashSet::new(),
            false => {
                self.authentic(guard.envelopes(doc.root(), &covered), keys)
                    .await
            }
        };
        let is_authentic = |s: &str| authentic.contains(s);
        if !authentic.is_empty() {
            findings = scan(&is_authentic);
        }
        if findings.is_empty() {
            return Ok(Vec::new());
        }
        let action = match guard.action() {
            GuardAction::Block => "block",
            GuardAction::Mask => "mask",
            GuardAction::Report => "report",
        };
        for (finding, _) in &findings {
            crate::telemetry::metrics::pii_guard_finding(route, &finding.detector, action);
            tracing::warn!(
                route,
                detector = %finding.detector,
                path = %finding.path,
                in_name = finding.in_name,
                action = ?guard.action(),
                "personal data outside protected fields"
            );
        }
        let blocking = match guard.action() {
            GuardAction::Block => findings.first(),
            GuardAction::Mask => findings.iter().find(|(f, _)| f.in_name),
            GuardAction::Report => None,
        };
        if let Some((finding, _)) = blocking {
            return Err(ProtectError::PiiDetected {
                detector: finding.detector.clone(),
                path: finding.path.clone(),
            });
        }
        if guard.action() == GuardAction::Report {
            return Ok(Vec::new());
        }
        guard
            .mask_edits(doc, &findings, &is_authentic)
            .map_err(|_| ProtectError::Internal)
    }

    /// Which of `candidates` authenticate as the gateway's own class-keyed ciphertexts or
    /// tokens (at-rest keys of `encrypt` and `tokenize` classes, and token-view keys).
    /// Per-subject ciphertexts are not tried: their key is the data subject's, and asking
    /// for it could create one; they are scanned as text.
    async fn authentic(&self, candidates: Vec<String>, keys: &impl KeySource) -> HashSet<String> {
        let mut authentic = HashSet::new();
        for candidate in candidates.into_iter().take(MAX_AUTHENTICATED) {
            if self.authenticates(&candidate, keys).await {
                authentic.insert(candidate);
            }
        }
        authentic
    }

    async fn authenticates(&self, text: &str, keys: &impl KeySource) -> bool {
        let Ok(sealed) = Ciphertext::parse_str(text) else {
            return false;
        };
        let json = transform::to_json_string(text);
        for class in self.classes.values().filter(|c| !c.per_subject) {
            let binding = Binding::class(&class.name);
            let at_rest = class.protect.as_ref().filter(|spec| {
                let scheme = match spec {
                    ProtectSpec::Encrypt { .. } => Scheme::Encrypt,
                    ProtectSpec::Tokenize { .. } => Scheme::Token,
                    _ => return false,
                };
                sealed.scheme() == scheme
                    && spec.key_name(&class.name).unwrap_or(&class.name) == sealed.key_name()
            });
            let opened = if let Some(spec) = at_rest {
                match keys.version(sealed.key_name(), sealed.version()).await {
                    Ok(key) => transform::reveal(spec, Some(&key), &binding, &json).is_ok(),
                    Err(_) => false,
                }
            } else if sealed.scheme() == Scheme::Token
                && class.token_key_name() == sealed.key_name()
            {
                match keys.version(sealed.key_name(), sealed.version()).await {
                    Ok(key) => tokenize::detokenize(&key, &binding, &sealed).is_ok(),
                    Err(_) => false,
                }
            } else {
                false
            };
            if opened {
                return true;
            }
        }
        false
    }
}
