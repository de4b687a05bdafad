//! The encrypted-sum API the gateway serves itself on routes with `serve = "fhe"`. Paths
//! are relative to the route's prefix (e.g. `/fhe/v1`):
//!
//! ```text
//! GET  /public-key                     any identified caller: compact public key, CRS, hash
//! POST /aggregates                     aggregate:create     (context: the new threshold)
//! GET  /aggregates/{id}                aggregate:read       (status and counts, never values)
//! POST /aggregates/{id}/contributions  aggregate:contribute (one per contributor; replaces)
//! POST /aggregates/{id}/release        aggregate:release    (threshold met; decrypts the total)
//! ```
//!
//! Identify has run before this; each call is then decided by the policy set on its own
//! action with the aggregate as resource and its counts as `context.aggregate`, and the
//! request record carries the action, the policies and the aggregate id, so every call
//! (refused ones too) is audited. A contributor is the authenticated principal; their
//! organisation is what the threshold counts, so a caller without one (an API key, a token
//! without the organisation claim) cannot contribute (403 `organisation_required`).

use super::context::{RequestContext, RequestRecord};
use super::decide;
use super::error::GatewayError;
use super::proxy_body::ProxyBody;
use super::respond;
use super::served::{ServedApi, ServedCall};
use crate::analytics::fhe::service::{NewAggregate, ReleaseMode, Released};
use crate::analytics::fhe::{FheError, FheService};
use crate::policy::{AggregateFacts, DecisionRequest};
use http::{Method, Response};
use hyper::body::Incoming;
use serde::Deserialize;

/// One call, with what every handler needs: the served call and the FHE service.
struct Call<'a> {
    served: ServedCall<'a>,
    service: &'a FheService,
}

impl<'a> std::ops::Deref for Call<'a> {
    type Target = ServedCall<'a>;

    fn deref(&self) -> &ServedCall<'a> {
        &self.served
    }
}

/// The body of `POST /aggregates/{id}/contributions`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContributionBody {
    /// The nonce the proof's metadata names (16 to 64 of `A-Za-z0-9-_`).
    nonce: String,
    /// Base64 of the proven compact ciphertext list (tfhe safe serialization).
    ciphertext: String,
}

/// The encrypted-sum API (`serve = "fhe"`).
pub(crate) struct FheApi;

impl ServedApi for FheApi {
    async fn serve(
        &self,
        ctx: &mut RequestContext<'_>,
        body: Incoming,
    ) -> Result<Response<ProxyBody>, GatewayError> {
        let (served, rec) = ServedCall::split(ctx)?;
        let service =
            served.shared.fhe.as_deref().ok_or_else(|| {
                GatewayError::Internal("the FHE API needs [fhe] keys loaded".into())
            })?;
        let bytes = served.read_body(body).await?;
        let (route, parts) = (served.route, served.parts);
        let call = Call { served, service };
        let segments = route.served_segments(parts.uri.path());
        match (&parts.method, segments.as_slice()) {
            (&Method::GET, ["public-key"]) => public_key(&call),
            (&Method::POST, ["aggregates"]) => create(&call, &bytes, rec).await,
            (&Method::GET, ["aggregates", id]) => status(&call, id, rec).await,
            (&Method::POST, ["aggregates", id, "contributions"]) => {
                contribute(&call, id, &bytes, rec).await
            }
            (&Method::POST, ["aggregates", id, "release"]) => release(&call, id, rec).await,
            (_, ["public-key"] | ["aggregates", _]) => Err(GatewayError::MethodNotAllowed {
                allowed: vec![Method::GET],
            }),
            (_, ["aggregates"] | ["aggregates", _, "contributions" | "release"]) => {
                Err(GatewayError::MethodNotAllowed {
                    allowed: vec![Method::POST],
                })
            }
            _ => Err(GatewayError::NoRoute),
        }
    }
}

fn public_key(call: &Call<'_>) -> Result<Response<ProxyBody>, GatewayError> {
    Ok(respond::ok_encoded(call.service.public_document()))
}

async fn create(
    call: &Call<'_>,
    bytes: &[u8],
    rec: &mut RequestRecord,
) -> Result<Response<ProxyBody>, GatewayError> {
    rec.action = Some("aggregate:create".into());
    let new: NewAggregate = serde_json::from_slice(bytes)
        .map_err(|e| GatewayError::Fhe(FheError::Invalid(e.to_string())))?;
    let id = uuid::Uuid::new_v4().to_string();
    rec.aggregate_id = Some(id.clone());
    let facts = AggregateFacts {
        min_organisations: i64::try_from(new.min_organisations).unwrap_or(i64::MAX),
        organisations: 0,
        contributors: 0,
        release_mode: match new.release {
            ReleaseMode::Exact => "exact".into(),
            ReleaseMode::Dp { .. } => "dp".into(),
        },
    };
    call.authorize("aggregate:create", &id, facts, rec)?;
    let view = call.service.create(&id, &new, &call.principal()).await?;
    respond::created(&view)
}

async fn status(
    call: &Call<'_>,
    id: &str,
    rec: &mut RequestRecord,
) -> Result<Response<ProxyBody>, GatewayError> {
    let facts = call.facts("aggregate:read", id, rec).await?;
    call.authorize("aggregate:read", id, facts, rec)?;
    let mut view =
        serde_json::to_value(call.service.status(id).await?).map_err(GatewayError::Encode)?;
    // The principal a contribution from this caller is bound to (its proof must name it).
    view["caller"] = call.principal().into();
    respond::ok(&view)
}

async fn contribute(
    call: &Call<'_>,
    id: &str,
    bytes: &[u8],
    rec: &mut RequestRecord,
) -> Result<Response<ProxyBody>, GatewayError> {
    let facts = call.facts("aggregate:contribute", id, rec).await?;
    call.authorize("aggregate:contribute", id, facts, rec)?;
    let body: ContributionBody = serde_json::from_slice(bytes)
        .map_err(|e| GatewayError::Fhe(FheError::Invalid(e.to_string())))?;
    let contributor = call.principal();
    let (slot, replaced) = call
        .service
        .contribute(
            id,
            &contributor,
            call.identity.caller.organisation.as_deref(),
            &body.nonce,
            &body.ciphertext,
        )
        .await?;
    let answer = serde_json::json!({ "aggregate": id, "slot": slot, "replaced": replaced });
    // A replacement changes the contributor's slot; only a new slot is created.
    match replaced {
        true => respond::ok(&answer),
        false => respond::created(&answer),
    }
}

async fn release(
    call: &Call<'_>,
    id: &str,
    rec: &mut RequestRecord,
) -> Result<Response<ProxyBody>, GatewayError> {
    let released = release_total(call, id, rec).await?;
    respond::ok(&released)
}

/// The one release path (the API's and the console's): the aggregate's counts, the
/// decision on `aggregate:release` with them, then the service's own threshold check and
/// the decryption of the total.
async fn release_total(
    call: &Call<'_>,
    id: &str,
    rec: &mut RequestRecord,
) -> Result<Released, GatewayError> {
    let facts = call.facts("aggregate:release", id, rec).await?;
    call.authorize("aggregate:release", id, facts, rec)?;
    let released = call.service.release(id).await?;
    tracing::info!(aggregate = %id, mode = released.mode, contributors = released.contributors, "aggregate total released");
    Ok(released)
}

/// Releases aggregate `id`'s total for a caller the gateway serves elsewhere (the
/// console), through the API's own release path.
pub(crate) async fn release_for(
    served: ServedCall<'_>,
    service: &FheService,
    id: &str,
    rec: &mut RequestRecord,
) -> Result<Released, GatewayError> {
    release_total(&Call { served, service }, id, rec).await
}

/// Whether the caller may release aggregate `id` now (the decision `release_for` asks,
/// with the aggregate's counts), recording nothing but the purpose and policy set.
pub(crate) async fn may_release(
    served: ServedCall<'_>,
    service: &FheService,
    id: &str,
    rec: &mut RequestRecord,
) -> Result<bool, GatewayError> {
    let call = Call { served, service };
    let action = rec.action.clone();
    let facts = call.facts("aggregate:release", id, rec).await?;
    (rec.action, rec.aggregate_id) = (action, None);
    let engine = call
        .generation
        .policy
        .as_ref()
        .ok_or_else(|| GatewayError::Internal("the FHE API needs a policy set".into()))?;
    let request = DecisionRequest {
        aggregate: Some(facts),
        ..decide::served_request(call.parts, call.identity, "aggregate:release", id, rec)?
    };
    Ok(engine.decide(&request)?.allowed())
}

impl Call<'_> {
    /// The aggregate's counts for the policy context (404 before any decision if none).
    async fn facts(
        &self,
        action: &str,
        id: &str,
        rec: &mut RequestRecord,
    ) -> Result<AggregateFacts, GatewayError> {
        rec.action = Some(action.to_owned());
        rec.aggregate_id = Some(id.to_owned());
        let view = self.service.status(id).await?;
        Ok(AggregateFacts {
            min_organisations: view.min_organisations,
            organisations: view.organisations,
            contributors: view.contributors,
            release_mode: view.release["mode"].as_str().unwrap_or("exact").to_owned(),
        })
    }

    /// Asks the policy set whether the caller may take `action` on aggregate `id`;
    /// records who, why and what.
    fn authorize(
        &self,
        action: &str,
        id: &str,
        facts: AggregateFacts,
        rec: &mut RequestRecord,
    ) -> Result<(), GatewayError> {
        rec.action = Some(action.to_owned());
        let engine = self
            .generation
            .policy
            .as_ref()
            .ok_or_else(|| GatewayError::Internal("the FHE API needs a policy set".into()))?;
        rec.policy_set_hash = Some(engine.hash().to_owned());
        let request = DecisionRequest {
            aggregate: Some(facts),
            ..decide::served_request(self.parts, self.identity, action, id, rec)?
        };
        let decision = engine.decide(&request)?;
        rec.policy_ids.clone_from(&decision.policy_ids);
        match decision.refusal {
            Some(refusal) => Err(decide::refused(refusal.reason, self.route)),
            None => Ok(()),
        }
    }

    /// The caller as a contributor ([`crate::policy::Caller::principal`]): kind and
    /// namespaced id, so callers of different kinds or credentials are different contributors.
    fn principal(&self) -> String {
        self.identity.caller.principal()
    }
}
