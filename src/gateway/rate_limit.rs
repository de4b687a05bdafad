//! Token-bucket rate limits (GCRA, `governor`) per client IP address and per principal.
//!
//! Each route has its limits (`[route.rate_limit]`, each key falling back to the global
//! `[rate_limit]`); the TOTP endpoints use the global ones. Addresses are checked right after
//! routing, before the caller is identified, so guessing credentials costs an address its
//! budget; principals are checked once identified. Buckets live in this generation: a
//! reload starts them afresh. Idle buckets are dropped when a limiter holds many, so a
//! stream of new addresses cannot grow memory without bound.

use super::error::GatewayError;
use crate::config::{Rate, RateLimitConfig};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;

/// Buckets kept per limiter before idle ones are dropped.
const RETAIN_ABOVE: usize = 10_000;

/// One route's limiters.
#[derive(Default)]
pub(crate) struct RouteLimits {
    per_principal: Option<DefaultKeyedRateLimiter<String>>,
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

fn limiter<K: Hash + Eq + Clone>(
    rate: Option<Rate>,
    burst: Option<u32>,
) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = rate?;
    let burst = NonZeroU32::new(burst.unwrap_or(rate.count)).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(rate.period / rate.count)?.allow_burst(burst);
    Some(DefaultKeyedRateLimiter::keyed(quota))
}

fn check<K: Hash + Eq + Clone>(
    limiter: Option<&DefaultKeyedRateLimiter<K>>,
    key: &K,
    scope: &'static str,
) -> Result<(), GatewayError> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    if limiter.len() > RETAIN_ABOVE {
        limiter.retain_recent();
    }
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        GatewayError::RateLimited {
            scope,
            // Whole seconds (Retry-After's unit), rounded up: never "retry now".
            retry_after_s: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        }
    })
}

impl RouteLimits {
    fn new(config: &RateLimitConfig) -> Self {
        Self {
            per_principal: limiter(config.per_principal, config.burst),
            per_address: limiter(config.per_address, config.burst),
        }
    }

    /// Takes one token from the client address's bucket.
    pub(crate) fn check_address(&self, address: IpAddr) -> Result<(), GatewayError> {
        check(self.per_address.as_ref(), &address, "per_address")
    }

    /// Takes one token from the principal's bucket, keyed by the caller's
    /// [`Caller::principal`](crate::policy::Caller::principal) (the request record's, worked
    /// out once when the caller was identified): callers of different kinds or credentials
    /// with the same id have separate buckets.
    pub(crate) fn check_principal(&self, principal: &str) -> Result<(), GatewayError> {
        let Some(limiter) = self.per_principal.as_ref() else {
            return Ok(());
        };
        check(Some(limiter), &principal.to_owned(), "per_principal")
    }
}

/// Every route's limiters, and the global ones for gateway-served endpoints.
#[derive(Default)]
pub(crate) struct RateLimits {
    routes: HashMap<String, RouteLimits>,
    global: RouteLimits,
}

impl RateLimits {
    /// Builds limiters from (validated) configuration.
    pub(crate) fn new(global: &RateLimitConfig, routes: &[crate::config::RouteConfig]) -> Self {
        Self {
            routes: routes
                .iter()
                .map(|r| {
                    let config = r
                        .rate_limit
                        .as_ref()
                        .map_or_else(|| global.clone(), |l| l.or(global));
                    (r.name.clone(), RouteLimits::new(&config))
                })
                .collect(),
            global: RouteLimits::new(global),
        }
    }

    /// The limits of `route` (the global ones for a name no route has).
    pub(crate) fn route(&self, route: &str) -> &RouteLimits {
        self.routes.get(route).unwrap_or(&self.global)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Caller, CallerKind, Credential};

    #[test]
    fn burst_then_refused_with_a_retry_after() {
        let config: RateLimitConfig =
            toml::from_str("per_address = \"1/m\"\nper_principal = \"2/h\"\nburst = 2").unwrap();
        let limits = RouteLimits::new(&config);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        limits.check_address(ip).unwrap();
        limits.check_address(ip).unwrap();
        match limits.check_address(ip) {
            Err(GatewayError::RateLimited {
                scope: "per_address",
                retry_after_s,
            }) => {
                assert!((1..=60).contains(&retry_after_s), "{retry_after_s}")
            }
            other => panic!("{other:?}"),
        }
        // Another address and the principal buckets are separate.
        limits.check_address("192.0.2.2".parse().unwrap()).unwrap();
        let caller = |kind, id: &str| Caller {
            kind,
            credential: Credential::Token,
            id: id.to_owned(),
            roles: Vec::new(),
            organisation: None,
            purposes: Vec::new(),
        };
        let alice = caller(CallerKind::User, "alice");
        limits.check_principal(&alice.principal()).unwrap();
        limits.check_principal(&alice.principal()).unwrap();
        assert!(matches!(
            limits.check_principal(&alice.principal()),
            Err(GatewayError::RateLimited { scope: "per_principal", retry_after_s }) if retry_after_s > 60
        ));
        limits
            .check_principal(&caller(CallerKind::User, "bob").principal())
            .unwrap();
        limits
            .check_principal(&caller(CallerKind::Service, "alice").principal())
            .unwrap();
        for credential in [Credential::ClientCertificate, Credential::ApiKey] {
            let service = Caller {
                credential,
                ..caller(CallerKind::Service, "alice")
            };
            limits.check_principal(&service.principal()).unwrap();
        }
        // No limits configured: everything passes.
        RouteLimits::default().check_address(ip).unwrap();
    }
}
