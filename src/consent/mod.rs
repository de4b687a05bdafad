//! The consent registry: what each data subject has allowed whom to do, for which purposes,
//! until when.
//!
//! A record's status is computed from its times, never stored: a consent expires at its
//! `expires_at` with no job to run, and is revoked from the moment the revocation commits.

use serde::Serialize;

/// Open Banking-style permission codes a consent can grant; policy maps them to field
/// classes.
pub const PERMISSIONS: &[&str] = &[
    "ReadAccountsBasic",
    "ReadAccountsDetail",
    "ReadBalances",
    "ReadBeneficiariesDetail",
    "ReadParty",
    "ReadPAN",
    "ReadTransactionsBasic",
    "ReadTransactionsCredits",
    "ReadTransactionsDebits",
    "ReadTransactionsDetail",
];

/// A consent as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentRecord {
    /// Consent id.
    pub id: String,
    /// The data subject (customer id).
    pub subject: String,
    /// Who may act on it: a client id or an organisation.
    pub grantee: String,
    /// Purposes of use it covers (e.g. `account_information`, `marketing`).
    pub purposes: Vec<String>,
    /// Permission codes from [`PERMISSIONS`].
    pub permissions: Vec<String>,
    /// When it was granted, Unix ms.
    pub granted_at: i64,
    /// When it stops, Unix ms; never if absent.
    pub expires_at: Option<i64>,
    /// When it was revoked, Unix ms.
    pub revoked_at: Option<i64>,
}

/// The status of a consent at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ConsentStatus {
    /// In force.
    Authorised,
    /// Withdrawn by the subject (or an operator on their behalf).
    Revoked,
    /// Past its expiry.
    Expired,
}

impl ConsentRecord {
    /// The status at `now_ms`. Revocation wins over expiry.
    pub fn status(&self, now_ms: i64) -> ConsentStatus {
        if self.revoked_at.is_some_and(|t| t <= now_ms) {
            ConsentStatus::Revoked
        } else if self.expires_at.is_some_and(|t| t <= now_ms) {
            ConsentStatus::Expired
        } else {
            ConsentStatus::Authorised
        }
    }

    /// Whether this consent lets its grantee act for `purpose` at `now_ms`.
    pub fn covers(&self, purpose: &str, now_ms: i64) -> bool {
        self.status(now_ms) == ConsentStatus::Authorised
            && self.purposes.iter().any(|p| p == purpose)
    }
}

/// A consent to be granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConsent {
    /// The data subject.
    pub subject: String,
    /// Who may act on it.
    pub grantee: String,
    /// Purposes of use.
    pub purposes: Vec<String>,
    /// Permission codes.
    pub permissions: Vec<String>,
    /// Expiry, Unix ms.
    pub expires_at: Option<i64>,
}

/// Why a consent cannot be granted as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsentError {
    /// A field is empty, too long or has characters outside the allowed set.
    #[error("{field}: {problem}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// Longest subject, grantee or purpose accepted.
const MAX_ID_LEN: usize = 128;

impl NewConsent {
    /// Checks every field; identifiers are 1..=128 characters of `[A-Za-z0-9._:@-]`,
    /// purposes lower-case `[a-z0-9_]`, permissions from [`PERMISSIONS`], expiry in the
    /// future.
    pub fn validate(&self, now_ms: i64) -> Result<(), ConsentError> {
        let invalid = |field, problem: &str| {
            Err(ConsentError::Invalid {
                field,
                problem: problem.into(),
            })
        };
        for (field, value) in [("subject", &self.subject), ("grantee", &self.grantee)] {
            if !is_identifier(value) {
                return invalid(
                    field,
                    "1 to 128 characters of letters, digits and . _ : @ -",
                );
            }
        }
        if self.purposes.is_empty() {
            return invalid("purposes", "at least one purpose is required");
        }
        // Refusals name the entry by position, never by value: what a caller typed where a
        // code belongs may be personal data (a pasted national id), and refusals reach logs
        // and the console.
        if let Some(at) = self.purposes.iter().position(|p| !is_purpose(p)) {
            return Err(ConsentError::Invalid {
                field: "purposes",
                problem: format!(
                    "entry {} is not a purpose (lower-case letters, digits, _)",
                    at + 1
                ),
            });
        }
        if self.permissions.is_empty() {
            return invalid("permissions", "at least one permission is required");
        }
        if let Some(at) = self
            .permissions
            .iter()
            .position(|p| !PERMISSIONS.contains(&p.as_str()))
        {
            return Err(ConsentError::Invalid {
                field: "permissions",
                problem: format!("entry {} is not one of {}", at + 1, PERMISSIONS.join(", ")),
            });
        }
        if self.expires_at.is_some_and(|t| t <= now_ms) {
            return invalid("expires_at", "must be in the future");
        }
        Ok(())
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:@-".contains(&b))
}

fn is_purpose(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(expires_at: Option<i64>, revoked_at: Option<i64>) -> ConsentRecord {
        ConsentRecord {
            id: "c1".into(),
            subject: "42".into(),
            grantee: "partner-app".into(),
            purposes: vec!["account_information".into()],
            permissions: vec!["ReadAccountsBasic".into()],
            granted_at: 0,
            expires_at,
            revoked_at,
        }
    }

    #[test]
    fn status_follows_time_with_no_job() {
        // (expires_at, revoked_at, now, expected)
        let cases = [
            (None, None, 100, ConsentStatus::Authorised),
            (Some(200), None, 199, ConsentStatus::Authorised),
            (Some(200), None, 200, ConsentStatus::Expired),
            (None, Some(150), 149, ConsentStatus::Authorised),
            (None, Some(150), 150, ConsentStatus::Revoked),
            (Some(200), Some(150), 300, ConsentStatus::Revoked),
        ];
        for (expires, revoked, now, expected) in cases {
            assert_eq!(
                record(expires, revoked).status(now),
                expected,
                "{expires:?} {revoked:?} {now}"
            );
        }
        assert!(record(None, None).covers("account_information", 1));
        assert!(!record(None, None).covers("marketing", 1));
        assert!(!record(Some(5), None).covers("account_information", 5));
    }

    #[test]
    fn new_consents_are_validated() {
        let ok = NewConsent {
            subject: "cust-42".into(),
            grantee: "partner-app".into(),
            purposes: vec!["account_information".into()],
            permissions: vec!["ReadPAN".into()],
            expires_at: Some(2_000),
        };
        assert_eq!(ok.validate(1_000), Ok(()));
        let cases: Vec<(NewConsent, &str)> = vec![
            (
                NewConsent {
                    subject: "".into(),
                    ..ok.clone()
                },
                "subject",
            ),
            (
                NewConsent {
                    grantee: "a b".into(),
                    ..ok.clone()
                },
                "grantee",
            ),
            (
                NewConsent {
                    purposes: vec![],
                    ..ok.clone()
                },
                "purposes",
            ),
            (
                NewConsent {
                    purposes: vec!["Marketing".into()],
                    ..ok.clone()
                },
                "purposes",
            ),
            (
                NewConsent {
                    permissions: vec!["ReadEverything".into()],
                    ..ok.clone()
                },
                "permissions",
            ),
            (
                NewConsent {
                    expires_at: Some(1_000),
                    ..ok.clone()
                },
                "expires_at",
            ),
        ];
        for (consent, field) in cases {
            match consent.validate(1_000) {
                Err(ConsentError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected {field} error, got {other:?}"),
            }
        }
    }

    #[test]
    fn refusals_name_the_entry_not_what_was_sent() {
        let ok = NewConsent {
            subject: "cust-42".into(),
            grantee: "partner-app".into(),
            purposes: vec!["marketing".into()],
            permissions: vec!["ReadPAN".into()],
            expires_at: None,
        };
        // Personal data typed where a code belongs, in several shapes and positions.
        for sent in [
            "900-12-3456",
            "jane@example.com",
            "Jane Example",
            "4111 1111 1111 1111",
        ] {
            let purposes = NewConsent {
                purposes: vec!["marketing".into(), sent.into()],
                ..ok.clone()
            };
            let permissions = NewConsent {
                permissions: vec!["ReadPAN".into(), "ReadParty".into(), sent.into()],
                ..ok.clone()
            };
            for (consent, entry) in [(purposes, "entry 2 "), (permissions, "entry 3 ")] {
                let shown = format!("{}", consent.validate(1_000).unwrap_err());
                assert!(!shown.contains(sent), "{shown}");
                assert!(shown.contains(entry), "{shown}");
            }
        }
    }
}
