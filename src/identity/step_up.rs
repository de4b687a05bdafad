//! What a route asks of its callers' authentication, and the RFC 9470 step-up challenge
//! when a caller falls short.
//!
//! A route's `[route.step_up]` is met when the token's `acr` is one of `acr_values` (if
//! any), at least one of `amr_any` is among its `amr` (if any), and its `auth_time` is at
//! most `max_age` ago (if set; a token without `auth_time`, or with one more than a minute
//! in the future, is then never fresh enough).
//! Policies can ask for step-up too (a forbid with `@reason("step_up_required")`); both
//! answer with the same challenge, carrying the route's `acr_values` and `max_age`.

use super::Identity;
use crate::config::{RouteConfig, StepUpConfig};
use std::time::Duration;

/// A route's identity requirements, compiled from its configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteRequirements {
    /// The caller must be identified (token or registered client).
    pub authenticate: bool,
    /// Only certificate-bound tokens are accepted.
    pub require_bound_token: bool,
    /// The authentication level asked for.
    pub step_up: Option<StepUp>,
}

/// Required authentication level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepUp {
    acr_values: Vec<String>,
    amr_any: Vec<String>,
    max_age: Option<Duration>,
}

/// What an RFC 9470 challenge tells the client to get.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepUpChallenge {
    acr_values: Vec<String>,
    max_age: Option<Duration>,
}

impl RouteRequirements {
    /// From a (validated) route configuration.
    pub fn from_config(route: &RouteConfig) -> Self {
        Self {
            authenticate: route.authenticate
                || route.action.is_some()
                || route.serve.is_some()
                || route.require_bound_token
                || route.step_up.is_some(),
            require_bound_token: route.require_bound_token,
            step_up: route.step_up.as_ref().map(StepUp::from_config),
        }
    }

    /// An identified caller meeting `step_up` (what TOTP enrollment asks, for example).
    pub fn with_step_up(step_up: &StepUpConfig) -> Self {
        Self {
            authenticate: true,
            require_bound_token: false,
            step_up: Some(StepUp::from_config(step_up)),
        }
    }

    /// The challenge this route answers with when authentication is insufficient.
    pub fn challenge(&self) -> StepUpChallenge {
        match &self.step_up {
            Some(s) => StepUpChallenge {
                acr_values: s.acr_values.clone(),
                max_age: s.max_age,
            },
            None => StepUpChallenge::default(),
        }
    }

    /// Whether `identity` authenticated strongly and recently enough for this route.
    pub fn step_up_met(&self, identity: &Identity, now_s: i64) -> bool {
        let Some(s) = &self.step_up else { return true };
        let acr_ok = s.acr_values.is_empty()
            || identity
                .acr
                .as_ref()
                .is_some_and(|acr| s.acr_values.contains(acr));
        let amr_ok = s.amr_any.is_empty() || identity.amr.iter().any(|m| s.amr_any.contains(m));
        let fresh = match s.max_age {
            None => true,
            Some(max) => identity.auth_age_seconds(now_s) <= max.as_secs() as i64,
        };
        acr_ok && amr_ok && fresh
    }
}

impl StepUp {
    fn from_config(c: &StepUpConfig) -> Self {
        Self {
            acr_values: c.acr_values.clone(),
            amr_any: c.amr_any.clone(),
            max_age: c.max_age,
        }
    }
}

impl StepUpChallenge {
    /// The authentication context classes the caller should come back with (`acr_values`).
    pub fn acr_values(&self) -> &[String] {
        &self.acr_values
    }

    /// How recent the caller's authentication must be (`max_age`).
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age
    }

    /// A challenge as a route's step-up requirement would make it.
    #[cfg(test)]
    pub(crate) fn new(acr_values: Vec<String>, max_age: Option<Duration>) -> Self {
        Self {
            acr_values,
            max_age,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Caller, CallerKind};

    fn identity(acr: Option<&str>, amr: &[&str], auth_time: Option<i64>) -> Identity {
        Identity {
            caller: Caller {
                kind: CallerKind::User,
                credential: crate::policy::Credential::Token,
                id: "u".into(),
                roles: vec![],
                organisation: None,
                purposes: vec![],
            }
            .into(),
            acr: acr.map(Into::into),
            amr: amr.iter().map(|m| (*m).to_owned()).collect(),
            auth_time,
            certificate_bound: false,
            token: None,
            api_key: false,
        }
    }

    #[test]
    fn step_up_needs_acr_amr_and_freshness() {
        let route = RouteRequirements {
            authenticate: true,
            require_bound_token: false,
            step_up: Some(StepUp {
                acr_values: vec!["urn:mace:incommon:iap:silver".into()],
                amr_any: vec!["otp".into(), "hwk".into()],
                max_age: Some(Duration::from_secs(300)),
            }),
        };
        let now = 10_000;
        let silver = Some("urn:mace:incommon:iap:silver");
        let cases = [
            (silver, &["pwd", "otp"][..], Some(now - 10), true),
            (silver, &["pwd"][..], Some(now - 10), false),
            (Some("bronze"), &["otp"][..], Some(now - 10), false),
            (None, &["otp"][..], Some(now - 10), false),
            (silver, &["hwk"][..], Some(now - 301), false),
            (silver, &["hwk"][..], None, false),
            (silver, &["hwk"][..], Some(now - 300), true),
            // A sign-in in the future proves no recent one (beyond clock skew).
            (silver, &["hwk"][..], Some(now + 60), true),
            (silver, &["hwk"][..], Some(now + 61), false),
            (silver, &["hwk"][..], Some(now + 86_400 * 365), false),
            (silver, &["hwk"][..], Some(i64::MAX), false),
            (silver, &["hwk"][..], Some(i64::MIN), false),
        ];
        for (acr, amr, auth_time, met) in cases {
            let id = identity(acr, amr, auth_time);
            assert_eq!(
                route.step_up_met(&id, now),
                met,
                "{acr:?} {amr:?} {auth_time:?}"
            );
        }
        assert!(RouteRequirements::default().step_up_met(&identity(None, &[], None), now));
        // Policies read the same age: a future sign-in is never fresh there either.
        let ages = [
            (Some(now + 61), i64::MAX),
            (Some(now + 60), 0),
            (Some(now - 5), 5),
        ];
        for (auth_time, age) in ages {
            let id = identity(silver, &["hwk"], auth_time);
            assert_eq!(id.auth_age_seconds(now), age, "{auth_time:?}");
        }
    }
}
