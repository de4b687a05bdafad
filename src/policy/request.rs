//! What the policy phase decides about: the caller, the route action, the data subject and
//! the request's context. The same shape is the input of `policies/tests/*.json` cases.

use serde::{Deserialize, Serialize};

/// Whether the caller is a person or a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallerKind {
    /// A person (token with a user subject).
    User,
    /// A machine client (mTLS certificate or API key).
    Service,
}

/// Who is calling, as the identity phase established it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Caller {
    /// User or Service.
    pub kind: CallerKind,
    /// Principal id.
    pub id: String,
    /// Roles (Cedar `Role` entities the principal is in).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Organisation (consent grantee and Cedar `Organisation` parent).
    #[serde(default)]
    pub organisation: Option<String>,
    /// Purposes the caller is registered for.
    #[serde(default)]
    pub purposes: Vec<String>,
}

impl Caller {
    /// Who consents are granted to: the organisation, or the principal itself.
    pub fn grantee(&self) -> &str {
        self.organisation.as_deref().unwrap_or(&self.id)
    }
}

/// The consent the decision may rely on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentGrant {
    /// Consent id (audited).
    pub id: String,
    /// Its permission codes.
    pub permissions: Vec<String>,
}

/// One question for the policy set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// Who calls.
    pub caller: Caller,
    /// The route's action, e.g. `customers:read`.
    pub action: String,
    /// The data subject.
    pub customer: String,
    /// The purpose of use asked for.
    pub purpose: String,
    /// Authentication methods (RFC 8176 amr).
    #[serde(default)]
    pub amr: Vec<String>,
    /// Seconds since authentication.
    #[serde(default)]
    pub auth_age_seconds: i64,
    /// Whether the token is certificate-bound.
    #[serde(default)]
    pub certificate_bound: bool,
    /// Amount in minor units (payment routes).
    #[serde(default)]
    pub amount: Option<i64>,
    /// The subject's Authorised consent for this caller and purpose, if any.
    #[serde(default)]
    pub consent: Option<ConsentGrant>,
    /// Field classes the route's rules bind (views are decided for these).
    #[serde(default)]
    pub field_classes: Vec<String>,
    /// What an encrypted-sum aggregate action concerns (`context.aggregate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<AggregateFacts>,
}

/// Facts about an FHE aggregate a policy may weigh (never values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateFacts {
    /// Distinct organisations the aggregate requires for a release.
    pub min_organisations: i64,
    /// Distinct organisations that have contributed.
    pub organisations: i64,
    /// Contributors so far.
    pub contributors: i64,
    /// `exact` or `dp`.
    pub release_mode: String,
}
