//! What the policy phase decides about: the caller, the route action, the data subject and
//! the request's context. The same shape is the input of `policies/tests/*.json` cases.

use crate::decision::FieldClasses;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Whether the caller is a person or a machine (the Cedar entity type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CallerKind {
    /// A person (token with a user subject).
    User,
    /// A machine client (mTLS certificate, API key, or a client-credentials token).
    Service,
}

/// The credential that established the caller. Each credential is its own principal
/// namespace: a `[[client]]` id, an API key's service name and a token's `sub` are chosen by
/// different parties (the operator's configuration, whoever runs `privgate apikey create`,
/// the identity provider), so equal strings from two of them are two different principals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    /// A verified access token (`sub`).
    #[default]
    Token,
    /// A pinned mutual-TLS certificate registered as a `[[client]]` (its `id`).
    ClientCertificate,
    /// A service API key (its service name).
    ApiKey,
}

/// Who is calling, as the identity phase established it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Caller {
    /// User or Service.
    pub kind: CallerKind,
    /// How the caller authenticated: the namespace `id` belongs to.
    #[serde(default)]
    pub credential: Credential,
    /// The id within its credential's namespace (token `sub`, client id, service name).
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
    /// The id of the caller's Cedar entity. Users only ever come from tokens, so a user is
    /// `PrivGate::User::"<sub>"`; a service's id is prefixed with its credential's namespace:
    /// `PrivGate::Service::"client:<[[client]] id>"`, `"apikey:<service>"` or
    /// `"oauth:<sub>"` (a client-credentials token), so none can pose as another.
    pub fn cedar_id(&self) -> std::borrow::Cow<'_, str> {
        let namespace = match (self.kind, self.credential) {
            (CallerKind::User, Credential::Token) => return self.id.as_str().into(),
            (CallerKind::User, Credential::ClientCertificate) => "user-client",
            (CallerKind::User, Credential::ApiKey) => "user-apikey",
            (CallerKind::Service, Credential::Token) => "oauth",
            (CallerKind::Service, Credential::ClientCertificate) => "client",
            (CallerKind::Service, Credential::ApiKey) => "apikey",
        };
        format!("{namespace}:{}", self.id).into()
    }

    /// The principal as one string, its Cedar type and id (`User:alice`,
    /// `Service:client:fintech-app`, `Service:apikey:batch`, `Service:oauth:mobile-app`): the
    /// one key audit records, rate limits, approvals and contributions name a caller by.
    pub fn principal(&self) -> String {
        format!("{:?}:{}", self.kind, self.cedar_id())
    }

    /// Who consents are granted to: the organisation, or (without one) the principal
    /// itself, named as [`Self::principal`] so that a bare id can never match an
    /// organisation's name.
    pub fn grantee(&self) -> std::borrow::Cow<'_, str> {
        match &self.organisation {
            Some(org) => org.as_str().into(),
            None => self.principal().into(),
        }
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
    /// Who calls (the identity's own, shared).
    pub caller: Arc<Caller>,
    /// The route's action, e.g. `customers:read`.
    pub action: String,
    /// The data subject.
    pub customer: String,
    /// The purpose of use asked for.
    pub purpose: String,
    /// Authentication methods (RFC 8176 amr).
    #[serde(default)]
    pub amr: Arc<[String]>,
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
    pub field_classes: FieldClasses,
    /// What an encrypted-sum aggregate action concerns (`context.aggregate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<AggregateFacts>,
    /// The caller's risk indicators (`context.risk`), when risk tracking is on and the
    /// policy set reads them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskFacts>,
}

/// Risk indicators a policy may weigh (`context.risk`): the caller's, and its
/// organisation's when it has one, per configured window (`last_5m`, `last_1h`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskFacts {
    /// The principal's indicators by window name.
    pub principal: std::collections::BTreeMap<String, RiskWindowFacts>,
    /// Its organisation's, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation: Option<std::collections::BTreeMap<String, RiskWindowFacts>>,
}

/// One window's indicators, as whole numbers (Cedar compares `Long`s).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskWindowFacts {
    /// Requests made.
    pub requests: i64,
    /// Distinct data subjects accessed (estimated, see `risk`).
    pub distinct_subjects: i64,
    /// Field values revealed in clear, every class together.
    pub clear_reveals: i64,
    /// Requests refused, every reason together.
    pub refusals: i64,
    /// Requests outside the configured usual hours.
    pub off_hours: i64,
    /// Differential-privacy epsilon spent, in thousandths.
    pub dp_epsilon_milli: i64,
    /// Encrypted-sum totals released.
    pub fhe_releases: i64,
}

/// Facts about an FHE aggregate a policy may weigh (never values).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
