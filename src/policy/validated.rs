//! Requests whose shape the schema accepted. Cedar checks a question against the schema
//! (the principal's and the resource's entity types the action applies to, and the action's
//! context type) before it answers, and the entities a request adds (its principal with its
//! parents, and the resource) when they are added; in a first decision those checks were
//! about a fifth of the time (README, Performance). The schema can only tell requests apart
//! by their shape: the action, the entity types, which optional attributes and parents are
//! present (with the names of the risk windows). Every value the evaluation writes has one
//! type per attribute (strings, longs, booleans, sets of strings and records of those; no
//! extension values, no entity references), so two requests of one shape type-check alike,
//! and a shape accepted once is not checked again. A refused shape is not remembered: it is
//! checked, and refused, each time.
//!
//! The remembered shapes belong to one policy set (and so to one schema): a reload starts
//! with none.

use super::{Caller, CallerKind, DecisionRequest, RiskFacts};
use cedar_policy::{EntityTypeName, EntityUid};
use std::collections::HashSet;
use std::sync::Mutex;

/// Shapes remembered at most: far more than a policy set's actions times its callers'
/// kinds times the optional attributes' combinations; past it, questions are checked.
const MAX_SHAPES: usize = 4096;

/// What a request's context has beyond the attributes every context has.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(super) struct ContextShape {
    amount: bool,
    aggregate: bool,
    /// The window names of `context.risk.principal` and, if present, `.organisation`.
    risk: Option<(Vec<String>, Option<Vec<String>>)>,
}

impl ContextShape {
    /// The shape of the context [`super::evaluate`] builds for `req`. Every field of the
    /// request is named here, so a new one must be placed: in the shape, or with the
    /// values the schema cannot tell apart.
    pub(super) fn of(req: &DecisionRequest) -> Self {
        let DecisionRequest {
            // Entities, not context: their types are in the question's shape.
            caller: _,
            action: _,
            customer: _,
            field_classes: _,
            // Always present, each of one type.
            purpose: _,
            amr: _,
            auth_age_seconds: _,
            certificate_bound: _,
            consent: _,
            amount,
            aggregate,
            risk,
        } = req;
        let names = |windows: &std::collections::BTreeMap<String, _>| {
            windows.keys().cloned().collect::<Vec<_>>()
        };
        Self {
            amount: amount.is_some(),
            aggregate: aggregate.is_some(),
            risk: risk.as_ref().map(
                |RiskFacts {
                     principal,
                     organisation,
                 }| (names(principal), organisation.as_ref().map(names)),
            ),
        }
    }
}

/// A shape the schema checks: of one question, or of the entities one request adds.
// The variants' sizes differ, and nothing here holds many shapes but the bounded set.
#[allow(clippy::large_enum_variant)]
#[derive(PartialEq, Eq, Hash)]
pub(super) enum Shape {
    Question {
        action: EntityUid,
        principal: EntityTypeName,
        resource: EntityTypeName,
        context: ContextShape,
    },
    /// The principal's kind (its entity type), whether its `purposes` set has members and
    /// whether it has parents of each type (roles, an organisation), and the resource's
    /// entity type.
    Entities {
        principal: CallerKind,
        purposes: bool,
        roles: bool,
        organisation: bool,
        resource: EntityTypeName,
    },
}

impl Shape {
    /// One question: `action` asked of `principal` on `resource` in a context of `context`'s
    /// shape.
    pub(super) fn question(
        action: &EntityUid,
        principal: &EntityUid,
        resource: &EntityUid,
        context: &ContextShape,
    ) -> Self {
        Self::Question {
            action: action.clone(),
            principal: principal.type_name().clone(),
            resource: resource.type_name().clone(),
            context: context.clone(),
        }
    }

    /// The entities a request of `caller` on `resource` adds. Every field of the caller
    /// is named here, so a new one must be placed.
    pub(super) fn entities(caller: &Caller, resource: &EntityUid) -> Self {
        let Caller {
            kind,
            // In the principal's id only.
            credential: _,
            id: _,
            roles,
            organisation,
            purposes,
        } = caller;
        Self::Entities {
            principal: *kind,
            purposes: !purposes.is_empty(),
            roles: !roles.is_empty(),
            organisation: organisation.is_some(),
            resource: resource.type_name().clone(),
        }
    }
}

/// The shapes this policy set's schema accepted.
#[derive(Default)]
pub(super) struct Validated(Mutex<HashSet<Shape>>);

impl Validated {
    fn shapes(&self) -> std::sync::MutexGuard<'_, HashSet<Shape>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the schema accepted this shape before.
    pub(super) fn accepted(&self, shape: &Shape) -> bool {
        self.shapes().contains(shape)
    }

    /// The schema accepted this shape.
    pub(super) fn accept(&self, shape: Shape) {
        let mut shapes = self.shapes();
        if shapes.len() < MAX_SHAPES {
            shapes.insert(shape);
        }
    }

    /// Forgets every shape: each is checked again (tests compare with that).
    #[cfg(test)]
    pub(super) fn forget(&self) {
        self.shapes().clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shapes().len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{arbitrary_request, shipped};
    use super::super::{read_cases, AggregateFacts, PolicyEngine, PolicyError};
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn engine() -> PolicyEngine {
        PolicyEngine::load(&shipped()).unwrap()
    }

    /// The shipped set's first case: a request the schema accepts, with field classes.
    fn accepted_request() -> super::DecisionRequest {
        let mut req = read_cases(&shipped().join("tests"))
            .unwrap()
            .remove(0)
            .1
            .request;
        req.field_classes = ["name".into(), "email".into(), "iban".into()].into();
        req
    }

    #[test]
    fn a_shape_is_checked_once_and_a_refused_shape_every_time() {
        let engine = engine();
        let mut req = accepted_request();
        let first = engine.evaluate(&req).unwrap();
        let remembered = engine.validated.len();
        assert!(remembered >= 3, "entities, the route, a view: {remembered}");

        // Other values, the same shape: nothing new to check.
        req.auth_age_seconds += 1;
        req.amr = ["pwd".into(), "otp".into(), "hwk".into()].into();
        req.customer = "c-2".into();
        std::sync::Arc::make_mut(&mut req.caller).id = format!("{}-2", req.caller.id);
        engine.evaluate(&req).unwrap();
        assert_eq!(engine.validated.len(), remembered);

        // Aggregate facts do not type-check for this action: refused, each time, and not
        // remembered; the accepted shape still decides as before.
        let mut ill_typed = accepted_request();
        ill_typed.aggregate = Some(AggregateFacts {
            min_organisations: 1,
            organisations: 1,
            contributors: 1,
            release_mode: "exact".into(),
        });
        for _ in 0..2 {
            assert!(matches!(
                engine.evaluate(&ill_typed),
                Err(PolicyError::Invalid(_))
            ));
        }
        assert_eq!(engine.validated.len(), remembered);
        assert_eq!(engine.evaluate(&accepted_request()), Ok(first));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever shapes an engine remembers (it is shared across cases), it decides, and
        /// refuses ill-typed requests, as an engine that checks every question does.
        #[test]
        fn remembered_shapes_decide_as_checking_every_question(
            requests in proptest::collection::vec(arbitrary_request(), 1..8),
        ) {
            static ENGINES: OnceLock<(PolicyEngine, PolicyEngine)> = OnceLock::new();
            let (remembering, checking) = ENGINES.get_or_init(|| (engine(), engine()));
            for request in &requests {
                checking.validated.forget();
                prop_assert_eq!(remembering.evaluate(request), checking.evaluate(request));
            }
        }
    }
}
