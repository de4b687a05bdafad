//! Applying a route's PII guard to a body: personal data found in members no rule binds is
//! blocked (the body is refused), masked in place, or reported (metric and log), as the
//! route's guard says. The gateway's own ciphertexts and tokens are never flagged, and
//! bound members are the rules' business, so FPE outputs (which look like real card
//! numbers) are not flagged either.

use super::document::{path_of, Document, Edit, Path};
use super::guard::GuardAction;
use super::rules::Located;
use super::{ProtectError, Protection};
use serde_json::Value;
use serde_json_path::JsonPath;
use std::collections::HashSet;

impl Protection {
    /// Edits that mask what the route's guard finds outside `located`; an error when it
    /// blocks. No guard, or nothing found: no edits.
    pub(super) fn guard(
        &self,
        route: &str,
        doc: &Document<'_>,
        located: &[Located],
    ) -> Result<Vec<(Path, Edit)>, ProtectError> {
        let Some(guard) = self.guards.get(route) else {
            return Ok(Vec::new());
        };
        let covered: HashSet<&str> = located.iter().map(|l| l.normalized.as_str()).collect();
        let findings = guard.scan(doc.value(), &|path| covered.contains(path));
        if findings.is_empty() {
            return Ok(Vec::new());
        }
        for finding in &findings {
            tracing::warn!(
                route,
                detector = %finding.detector,
                path = %finding.path,
                action = ?guard.action(),
                "personal data outside protected fields"
            );
        }
        match guard.action() {
            GuardAction::Block => Err(ProtectError::PiiDetected {
                detector: findings[0].detector.clone(),
                path: findings[0].path.clone(),
            }),
            GuardAction::Report => Ok(Vec::new()),
            GuardAction::Mask => {
                let mut edits = Vec::new();
                let mut seen = HashSet::new();
                for finding in findings {
                    if !seen.insert(finding.path.clone()) {
                        continue;
                    }
                    // A finding's path is a normalized path, itself a JSONPath query.
                    let query =
                        JsonPath::parse(&finding.path).map_err(|_| ProtectError::Internal)?;
                    let node = query
                        .query_located(doc.value())
                        .exactly_one()
                        .map_err(|_| ProtectError::Internal)?;
                    let masked = match node.node() {
                        Value::String(s) => guard.mask_text(s),
                        other => guard.mask_text(&other.to_string()),
                    };
                    edits.push((
                        path_of(node.location()),
                        Edit::Replace(Value::from(masked).to_string()),
                    ));
                }
                Ok(edits)
            }
        }
    }
}
