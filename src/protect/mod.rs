//! Protecting PII fields inside JSON bodies.
//!
//! [`transform`] turns ONE JSON value (given as its exact JSON text) into what replaces it
//! (ciphertext, token, FPE output, mask, redaction, pseudonym, generalization, shifted date)
//! and back where the transform is reversible; it takes keys as
//! [`DataKey`](crate::keys::DataKey)s and never fetches them. [`guard`] scans a whole body
//! for personal data that no field rule covers. Finding fields by JSONPath and splicing
//! the replacements into the body live beside these.

pub mod guard;
pub mod transform;
