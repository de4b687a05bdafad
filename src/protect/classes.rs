//! Field classes (`policies/fields.toml`) as field protection reads them: how each class is
//! protected at rest, how its masked view renders, whether its keys are per data subject.
//!
//! ```toml
//! [class.pan]
//! permission = "ReadPAN"      # the consent permission covering it (read by policy/)
//! protect = { transform = "fpe", alphabet = "digits", keep_prefix = 6, keep_suffix = 4, luhn = true, min_length = 15 }
//! mask = { keep_last = 4 }
//! per_subject = false         # true: encrypted under the data subject's own key (shreddable)
//! low_entropy = false         # true: refuse deterministic transforms unless allowed
//! ```

use super::transform::{MaskSpec, ProtectSpec};
use crate::keys::KeyKind;
use serde::Deserialize;
use std::collections::BTreeMap;

/// `fields.toml` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FieldsFile {
    pub class: BTreeMap<String, FieldClassSpec>,
}

/// One class as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FieldClassSpec {
    #[allow(dead_code)] // read by policy/ (the consent permission); listed so typos are caught
    pub permission: String,
    pub protect: Option<ProtectSpec>,
    pub mask: Option<MaskSpec>,
    #[serde(default)]
    pub per_subject: bool,
    #[serde(default)]
    pub low_entropy: bool,
}

/// A field class as field protection executes it.
#[derive(Debug, Clone)]
pub struct FieldClass {
    /// The class name.
    pub name: String,
    /// At-rest protection applied on the way upstream; `None` leaves values as they are.
    pub protect: Option<ProtectSpec>,
    /// How the `masked` view renders a value.
    pub mask: MaskSpec,
    /// Whether values are encrypted under the data subject's own key.
    pub per_subject: bool,
}

/// Key name suffix for a class's token-view key (deterministic tokens shown to callers
/// whose view is `token` when the class is stored otherwise).
const TOKEN_KEY_SUFFIX: &str = "-token";

impl FieldClass {
    /// Checks a class as written; problems name the class.
    pub(crate) fn compile(name: &str, spec: FieldClassSpec) -> Result<Self, String> {
        if let Some(protect) = &spec.protect {
            protect.validate_declared(name, spec.low_entropy)?;
            if spec.per_subject && protect.key_kind() != Some(KeyKind::Aead) {
                return Err(format!(
                    "class {name}: per_subject keys need transform = \"encrypt\" (only \
                     randomized encryption can be shredded per subject without leaving \
                     equal-value links)"
                ));
            }
        } else if spec.per_subject {
            return Err(format!(
                "class {name}: per_subject needs a `protect` transform"
            ));
        }
        let mask = spec.mask.unwrap_or_default();
        mask.validate(name)?;
        Ok(Self {
            name: name.to_owned(),
            protect: spec.protect,
            mask,
            per_subject: spec.per_subject,
        })
    }

    /// The key the `token` view uses: the at-rest key when the class is tokenized at rest
    /// (the stored token is shown as it is), else the class's own token key.
    pub fn token_key_name(&self) -> String {
        format!("{}{TOKEN_KEY_SUFFIX}", self.name)
    }

    /// Whether the class is tokenized at rest (its stored value is already the token).
    pub fn stored_as_token(&self) -> bool {
        matches!(self.protect, Some(ProtectSpec::Tokenize { .. }))
    }
}
