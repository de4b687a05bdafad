//! How a security team declares, per field class in `policies/fields.toml`, the ingress
//! transform (`protect = { transform = "...", ... }`) and the masked view (`mask = {...}`).
//!
//! Types are plain serde with `deny_unknown_fields`; [`ProtectSpec::validate`] refuses
//! what would be unsafe at load time, naming the class, so a running gateway only ever
//! holds specs that passed it:
//!
//! - FPE whose encrypted part can be smaller than the 10^6 domain NIST SP 800-38G (rev. 1)
//!   requires, for the shortest input the class accepts (`min_length`, required for fpe);
//! - deterministic transforms (`tokenize`, `fpe`, `hash`) on low-entropy classes unless
//!   `allow_low_entropy = true`: anyone who can submit values and see the outputs can
//!   tabulate a small domain (36,500 dates of birth in a century) and so invert every
//!   output. A class is low-entropy when its name is in [`KNOWN_LOW_ENTROPY_CLASSES`] or
//!   the caller declares it so ([`ProtectSpec::validate_declared`]).

use super::fpe::domain_is_large_enough;
use crate::keys::KeyKind;
use serde::Deserialize;

/// Class names treated as low-entropy without being declared so: values a submitter can
/// enumerate (dates of birth, ages, genders, postcodes, countries).
pub const KNOWN_LOW_ENTROPY_CLASSES: &[&str] = &[
    "dob",
    "date_of_birth",
    "birth_date",
    "birthdate",
    "age",
    "gender",
    "sex",
    "postcode",
    "postal_code",
    "zip",
    "country",
    "nationality",
    "marital_status",
];

/// The ingress transform of a field class: `protect = { transform = "...", ... }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "transform", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProtectSpec {
    /// Randomized AES-256-GCM (`pgv1`).
    Encrypt {
        /// Key name; defaults to the class name.
        #[serde(default)]
        key: Option<String>,
    },
    /// Deterministic AES-256-SIV token (`pgt1`).
    Tokenize {
        /// Key name; defaults to the class name.
        #[serde(default)]
        key: Option<String>,
        /// Accept a low-entropy class (its tokens can be tabulated).
        #[serde(default)]
        allow_low_entropy: bool,
    },
    /// FF1 format-preserving encryption.
    Fpe(FpeSpec),
    /// One-way mask at ingress.
    Mask(MaskSpec),
    /// Remove, null or replace with a constant.
    Redact(RedactSpec),
    /// Keyed HMAC-SHA256 pseudonym (`pgh1`).
    Hash {
        /// Key name; defaults to the class name.
        #[serde(default)]
        key: Option<String>,
        /// Accept a low-entropy class (its pseudonyms can be tabulated).
        #[serde(default)]
        allow_low_entropy: bool,
    },
    /// Numeric bucket, date truncation or postcode prefix.
    Generalize(GeneralizeSpec),
    /// Per-subject consistent date shift.
    DateShift(DateShiftSpec),
}

/// FF1 options: `{ transform = "fpe", alphabet = "digits", keep_prefix = 6, keep_suffix = 4,
/// luhn = true, min_length = 15 }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FpeSpec {
    /// Key name; defaults to the class name.
    #[serde(default)]
    pub key: Option<String>,
    /// Which characters are encrypted.
    pub alphabet: Alphabet,
    /// Alphabet characters left in clear at the start (a PAN's issuer number: 6).
    #[serde(default)]
    pub keep_prefix: usize,
    /// Alphabet characters left in clear at the end (a PAN's last 4).
    #[serde(default)]
    pub keep_suffix: usize,
    /// Keep Luhn validity (digits only): a valid PAN encrypts to a valid PAN.
    #[serde(default)]
    pub luhn: bool,
    /// The fewest alphabet characters a value of this class has; shorter values are
    /// refused at runtime, and the domain check at load uses it.
    pub min_length: usize,
    /// Accept a low-entropy class.
    #[serde(default)]
    pub allow_low_entropy: bool,
    /// The key version used, fixed: FPE output carries no version, so rotating means
    /// re-encrypting stored values and then raising this (default 1).
    #[serde(default = "first_version")]
    pub key_version: u32,
}

fn first_version() -> u32 {
    1
}

/// The characters FF1 encrypts; others in [`fpe::SEPARATORS`](super::fpe::SEPARATORS)
/// stay in place, anything else is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Alphabet {
    /// `0-9`, radix 10.
    Digits,
    /// `0-9A-Z`, radix 36; case-insensitive: input letters are upper-cased, so outputs and
    /// decrypted values are upper-case.
    Alphanumeric,
}

impl Alphabet {
    /// The FF1 radix.
    pub const fn radix(self) -> u32 {
        match self {
            Alphabet::Digits => 10,
            Alphabet::Alphanumeric => 36,
        }
    }

    /// The numeral of `c`, if `c` is in the alphabet.
    pub(crate) fn numeral(self, c: char) -> Option<u16> {
        let value = c.to_ascii_uppercase().to_digit(self.radix())?;
        u16::try_from(value).ok()
    }

    /// The character of numeral `n` (upper-case letters).
    pub(crate) fn character(self, n: u16) -> char {
        char::from_digit(u32::from(n), self.radix())
            .map(|c| c.to_ascii_uppercase())
            .unwrap_or('?')
    }
}

/// How a value is masked (`mask = { keep_first = 1, keep_last = 4 }`), at ingress or for the
/// `masked` view.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskSpec {
    /// Maskable characters kept at the start.
    #[serde(default)]
    pub keep_first: usize,
    /// Maskable characters kept at the end.
    #[serde(default)]
    pub keep_last: usize,
    /// The character that replaces the others.
    #[serde(default = "default_mask_char")]
    pub mask_char: char,
    /// Keep separators (every character that is not a letter or digit: space, `-`, `.`,
    /// `@`, ...) in place and unmasked; when false every character is masked.
    #[serde(default = "default_true")]
    pub keep_separators: bool,
}

fn default_mask_char() -> char {
    '*'
}

fn default_true() -> bool {
    true
}

impl Default for MaskSpec {
    fn default() -> Self {
        Self {
            keep_first: 0,
            keep_last: 0,
            mask_char: default_mask_char(),
            keep_separators: true,
        }
    }
}

impl MaskSpec {
    /// Refuses a mask character that could be read as data.
    pub fn validate(&self, class: &str) -> Result<(), String> {
        if self.mask_char.is_alphanumeric() {
            return Err(format!(
                "class {class}: mask_char must not be a letter or digit"
            ));
        }
        Ok(())
    }
}

/// `{ transform = "redact", mode = "remove" | "null" | "constant", constant = ... }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactSpec {
    /// What replaces the value (default `null`: the member stays, so consumers that expect
    /// it keep working).
    #[serde(default)]
    pub mode: RedactMode,
    /// The replacement for `mode = "constant"`, any JSON (TOML) value.
    #[serde(default)]
    pub constant: Option<serde_json::Value>,
}

/// What redaction puts in place of a value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedactMode {
    /// Remove the member (or array element).
    Remove,
    /// Replace with `null`.
    #[default]
    Null,
    /// Replace with `constant`.
    Constant,
}

/// Exactly one of: `bucket = 1000`, `date = "year" | "month"`, `prefix = 3`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneralizeSpec {
    /// Numeric bucket width.
    #[serde(default)]
    pub bucket: Option<u64>,
    /// Truncate a `YYYY-MM-DD` date.
    #[serde(default)]
    pub date: Option<DatePrecision>,
    /// Keep this many leading characters (postcodes).
    #[serde(default)]
    pub prefix: Option<usize>,
}

/// What a generalized date keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatePrecision {
    /// `YYYY`.
    Year,
    /// `YYYY-MM`.
    Month,
}

/// `{ transform = "date_shift", max_days = 180 }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateShiftSpec {
    /// Key name; defaults to the class name.
    #[serde(default)]
    pub key: Option<String>,
    /// Shifts are within ±max_days, never 0.
    pub max_days: u32,
    /// The key version used, fixed: shifted dates carry no version (default 1).
    #[serde(default = "first_version")]
    pub key_version: u32,
}

/// The widest date shift accepted: ten years keeps shifted dates in a plausible range.
pub const MAX_SHIFT_DAYS: u32 = 3653;

impl ProtectSpec {
    /// The transform's name as written in `fields.toml`.
    pub fn name(&self) -> &'static str {
        match self {
            ProtectSpec::Encrypt { .. } => "encrypt",
            ProtectSpec::Tokenize { .. } => "tokenize",
            ProtectSpec::Fpe(_) => "fpe",
            ProtectSpec::Mask(_) => "mask",
            ProtectSpec::Redact(_) => "redact",
            ProtectSpec::Hash { .. } => "hash",
            ProtectSpec::Generalize(_) => "generalize",
            ProtectSpec::DateShift(_) => "date_shift",
        }
    }

    /// The kind of data key the class needs, if any (for the keyring).
    pub fn key_kind(&self) -> Option<KeyKind> {
        match self {
            ProtectSpec::Encrypt { .. } => Some(KeyKind::Aead),
            ProtectSpec::Tokenize { .. } => Some(KeyKind::Siv),
            ProtectSpec::Fpe(_) => Some(KeyKind::Ff1),
            ProtectSpec::Hash { .. } | ProtectSpec::DateShift(_) => Some(KeyKind::Hmac),
            ProtectSpec::Mask(_) | ProtectSpec::Redact(_) | ProtectSpec::Generalize(_) => None,
        }
    }

    /// The name of the data key the class uses: the declared `key`, or the class name;
    /// `None` for keyless transforms.
    pub fn key_name<'a>(&'a self, class: &'a str) -> Option<&'a str> {
        let declared = match self {
            ProtectSpec::Encrypt { key }
            | ProtectSpec::Tokenize { key, .. }
            | ProtectSpec::Hash { key, .. }
            | ProtectSpec::Fpe(FpeSpec { key, .. })
            | ProtectSpec::DateShift(DateShiftSpec { key, .. }) => key.as_deref(),
            _ => return None,
        };
        Some(declared.unwrap_or(class))
    }

    /// The key version a class must use when its outputs carry no version (fpe, date
    /// shift); `None` when outputs name their version or the transform has no key.
    pub fn fixed_key_version(&self) -> Option<u32> {
        match self {
            ProtectSpec::Fpe(FpeSpec { key_version, .. })
            | ProtectSpec::DateShift(DateShiftSpec { key_version, .. }) => Some(*key_version),
            _ => None,
        }
    }

    /// Whether [`reveal`](super::reveal) can give the original back (with the key).
    pub fn is_reversible(&self) -> bool {
        matches!(
            self,
            ProtectSpec::Encrypt { .. }
                | ProtectSpec::Tokenize { .. }
                | ProtectSpec::Fpe(_)
                | ProtectSpec::DateShift(_)
        )
    }

    /// Whether equal inputs give equal outputs (so outputs reveal equality).
    pub fn is_deterministic(&self) -> bool {
        matches!(
            self,
            ProtectSpec::Tokenize { .. } | ProtectSpec::Fpe(_) | ProtectSpec::Hash { .. }
        )
    }

    fn allows_low_entropy(&self) -> bool {
        match self {
            ProtectSpec::Tokenize {
                allow_low_entropy, ..
            }
            | ProtectSpec::Hash {
                allow_low_entropy, ..
            }
            | ProtectSpec::Fpe(FpeSpec {
                allow_low_entropy, ..
            }) => *allow_low_entropy,
            _ => true,
        }
    }

    /// Validates the spec of `class`, which is low-entropy if its name is in
    /// [`KNOWN_LOW_ENTROPY_CLASSES`].
    pub fn validate(&self, class: &str) -> Result<(), String> {
        self.validate_declared(class, false)
    }

    /// Validates the spec of `class`; `low_entropy` declares the class low-entropy (in
    /// addition to [`KNOWN_LOW_ENTROPY_CLASSES`]).
    pub fn validate_declared(&self, class: &str, low_entropy: bool) -> Result<(), String> {
        let low_entropy = low_entropy || KNOWN_LOW_ENTROPY_CLASSES.contains(&class);
        if low_entropy && self.is_deterministic() && !self.allows_low_entropy() {
            return Err(format!(
                "class {class}: {} is deterministic and the class is low-entropy: anyone who \
                 can submit values and see the outputs can tabulate every value; use encrypt, \
                 or set allow_low_entropy = true to accept that",
                self.name()
            ));
        }
        match self {
            ProtectSpec::Fpe(fpe) => fpe.validate(class),
            ProtectSpec::Mask(mask) => mask.validate(class),
            ProtectSpec::Redact(redact) => redact.validate(class),
            ProtectSpec::Generalize(g) => g.validate(class),
            ProtectSpec::DateShift(d) if d.max_days == 0 || d.max_days > MAX_SHIFT_DAYS => Err(
                format!("class {class}: date_shift max_days must be 1..={MAX_SHIFT_DAYS}"),
            ),
            _ => Ok(()),
        }
    }
}

impl FpeSpec {
    /// Refuses an encrypted part whose domain can fall below 10^6, and `luhn` off digits.
    pub fn validate(&self, class: &str) -> Result<(), String> {
        if self.luhn && self.alphabet != Alphabet::Digits {
            return Err(format!(
                "class {class}: luhn = true needs alphabet = \"digits\""
            ));
        }
        let kept = self.keep_prefix + self.keep_suffix;
        let encrypted = self.min_length.saturating_sub(kept);
        if self.min_length < kept || !domain_is_large_enough(self.alphabet.radix(), encrypted) {
            return Err(format!(
                "class {class}: fpe encrypts only {encrypted} characters of the shortest value \
                 (min_length {} minus keep_prefix {} and keep_suffix {}); radix {} to that \
                 power is below the 10^6 domain NIST SP 800-38G requires: keep fewer \
                 characters or use encrypt/tokenize",
                self.min_length,
                self.keep_prefix,
                self.keep_suffix,
                self.alphabet.radix()
            ));
        }
        Ok(())
    }
}

impl RedactSpec {
    fn validate(&self, class: &str) -> Result<(), String> {
        match (self.mode, &self.constant) {
            (RedactMode::Constant, None) => Err(format!(
                "class {class}: redact mode = \"constant\" needs a constant"
            )),
            (RedactMode::Remove | RedactMode::Null, Some(_)) => Err(format!(
                "class {class}: redact constant is only used with mode = \"constant\""
            )),
            _ => Ok(()),
        }
    }
}

impl GeneralizeSpec {
    fn validate(&self, class: &str) -> Result<(), String> {
        let set = [
            self.bucket.is_some(),
            self.date.is_some(),
            self.prefix.is_some(),
        ];
        if set.iter().filter(|s| **s).count() != 1 {
            return Err(format!(
                "class {class}: generalize needs exactly one of bucket, date, prefix"
            ));
        }
        if self.bucket == Some(0) {
            return Err(format!(
                "class {class}: generalize bucket must be at least 1"
            ));
        }
        if self.prefix == Some(0) {
            return Err(format!(
                "class {class}: generalize prefix 0 keeps nothing; use redact"
            ));
        }
        Ok(())
    }
}
