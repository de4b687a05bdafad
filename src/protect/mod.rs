//! Field protection: what happens to personal data inside JSON bodies on the way to and
//! from upstream services.
//!
//! A [`Protection`] is built from the security team's `fields.toml` (how each field class is
//! protected at rest and masked) and `routes.toml` (which body members hold which class, per
//! route) and swapped with the rest of a configuration generation. It only executes: the
//! views come from a [`Decision`](crate::decision::Decision) and keys from a [`KeySource`];
//! it never looks at who the caller is.

pub(crate) mod classes;
pub mod document;
mod egress;
pub mod guard;
mod ingress;
pub(crate) mod keys;
mod pii_guard;
pub mod rules;
pub mod transform;

pub use egress::ERASED;
pub use keys::{KeySource, KeyUnavailable};

use crate::config::{BodyMode, ConfigError, Problem, RouteConfig};
use classes::{FieldClass, FieldsFile};
use document::DocumentError;
use rules::{RouteRules, RoutesFile};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Why a body could not be protected or revealed. Never carries a value.
#[derive(Debug, thiserror::Error)]
pub enum ProtectError {
    /// The body is not a document the gateway will rewrite.
    #[error("body: {0}")]
    Body(#[source] DocumentError),
    /// A member name is another spelling of a member the rules bind (`National_Id` where
    /// `national_id` is bound): the upstream might read it as that member.
    #[error("{0}")]
    Misspelled(#[from] rules::Misspelled),
    /// A per-subject class, and no data subject in the scope or the route; or a scope that
    /// names its subject bound a value where it found no single id.
    #[error("a protected field and no data subject to key, decide or shred-check it")]
    SubjectRequired,
    /// The PII guard found personal data where no rule covers it, and the route blocks.
    #[error("personal data outside protected fields ({detector} at {path})")]
    PiiDetected {
        /// Which detector matched (never the value).
        detector: String,
        /// Where, as a normalized path.
        path: String,
    },
    /// A key could not be had.
    #[error("{0}")]
    Key(#[from] KeyUnavailable),
    /// A transform failed on a value of this class.
    #[error("class {0}: {1}")]
    Transform(String, #[source] transform::TransformError),
    /// The rules name something the generation lacks (a bug: load checks this).
    #[error("field protection rules are inconsistent")]
    Internal,
}

impl ProtectError {
    /// Whether the gateway failed (keys unavailable or unknown, rules inconsistent) rather
    /// than the body it was given.
    pub fn is_gateway_fault(&self) -> bool {
        matches!(
            self,
            Self::Key(KeyUnavailable::Unavailable(_) | KeyUnavailable::Unknown(_)) | Self::Internal
        )
    }
}

impl From<rules::BindError> for ProtectError {
    fn from(e: rules::BindError) -> Self {
        match e {
            rules::BindError::Misspelled(m) => Self::Misspelled(m),
            rules::BindError::SubjectNotFound(_) => Self::SubjectRequired,
            rules::BindError::Body(e) => Self::Body(e),
        }
    }
}

/// The field rules of one generation.
#[derive(Debug, Default)]
pub struct Protection {
    classes: BTreeMap<String, FieldClass>,
    routes: HashMap<String, RouteRules>,
    guards: HashMap<String, guard::Guard>,
}

/// What a shred makes unreadable, by field class (see [`Protection::shred_reach`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ShredReach {
    /// Encrypted under the subject's own keys: nobody can decrypt them any more.
    pub keys_destroyed: Vec<String>,
    /// Reversible under a shared class key (with the transform): shown as erased by the
    /// gateway, still reversible by whoever holds the class key outside it.
    pub shared_key: Vec<String>,
    /// Stored one-way or not protected: shown as erased by the gateway; what the upstream
    /// stores (a mask, a hash, the clear value) is as it was.
    pub gateway_only: Vec<String>,
}

impl std::fmt::Display for ShredReach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join(", ")
            }
        };
        write!(
            f,
            "undecryptable by anyone (the subject's keys are destroyed): {}
             shown as \"[erased]\" by the gateway, still reversible with the shared class key outside it: {}
             shown as \"[erased]\" by the gateway, stored one-way or in clear upstream: {}",
            list(&self.keys_destroyed),
            list(&self.shared_key),
            list(&self.gateway_only)
        )
    }
}

/// `routes.toml`, beside `fields.toml` in the policy directory.
pub const ROUTES_FILE: &str = "routes.toml";

impl Protection {
    /// Loads `fields.toml` and `routes.toml` from the policy directory and checks them
    /// against the configured routes; every problem names its file.
    pub fn load(dir: &Path, config_routes: &[RouteConfig]) -> Result<Self, ConfigError> {
        let read = |name: &str| std::fs::read_to_string(dir.join(name));
        let fields = read("fields.toml").map_err(|e| format!("cannot read: {e}"));
        let routes = match read(ROUTES_FILE) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            read => Some(read.map_err(|e| format!("cannot read: {e}"))),
        };
        Self::from_texts(
            dir,
            fields.as_deref().map_err(Clone::clone),
            routes.as_ref().map(|r| r.as_deref().map_err(Clone::clone)),
            config_routes,
        )
    }

    /// [`load`](Self::load) from texts already read (a policy set read once, whose
    /// signature covers exactly these bytes): `fields.toml`, and `routes.toml` if present.
    pub fn from_texts(
        dir: &Path,
        fields: Result<&str, String>,
        routes: Option<Result<&str, String>>,
        config_routes: &[RouteConfig],
    ) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let fields_path = dir.join("fields.toml");
        let routes_path = dir.join(ROUTES_FILE);
        let mut problem = |file: &Path, message: String| {
            problems.push(Problem {
                file: file.to_path_buf(),
                at: None,
                message,
            })
        };
        let mut classes = BTreeMap::new();
        match fields.and_then(parse_toml::<FieldsFile>) {
            Ok(file) => {
                for (name, spec) in file.class {
                    match FieldClass::compile(&name, spec) {
                        Ok(class) => {
                            classes.insert(name, class);
                        }
                        Err(e) => problem(&fields_path, e),
                    }
                }
            }
            Err(e) => problem(&fields_path, e),
        }
        let routes_file = match routes.map(|r| r.and_then(parse_toml::<RoutesFile>)) {
            Some(Ok(file)) => file,
            Some(Err(e)) => {
                problem(&routes_path, e);
                RoutesFile::default()
            }
            None => RoutesFile::default(),
        };
        for name in routes_file.route.keys() {
            match config_routes.iter().find(|r| &r.name == name) {
                // One policy set may serve gateways with different routes: rules for a route
                // this configuration lacks protect nothing here, and say so.
                None => tracing::warn!(
                    route = %name,
                    file = %routes_path.display(),
                    "field rules for a route this configuration does not have"
                ),
                Some(r) if r.body != BodyMode::Buffered => problem(
                    &routes_path,
                    format!(
                        "route `{name}` has field rules, so it needs body = \"buffered\" \
                         (a streamed body cannot be protected)"
                    ),
                ),
                Some(r) if r.action.is_none() => problem(
                    &routes_path,
                    format!(
                        "route `{name}` has field rules, so it needs an `action`: views come \
                         from policy decisions"
                    ),
                ),
                Some(_) => {}
            }
        }
        let known = |c: &str| classes.contains_key(c);
        let (routes, guard_specs) = match rules::compile_routes(routes_file, &known) {
            Ok(compiled) => compiled,
            Err(errors) => {
                for e in errors {
                    problem(&routes_path, e);
                }
                Default::default()
            }
        };
        let mut guards = HashMap::new();
        for (route, spec) in guard_specs {
            match guard::Guard::new(&spec) {
                Ok(g) => {
                    guards.insert(route, g);
                }
                Err(e) => problem(&routes_path, format!("route `{route}` guard: {e}")),
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        Ok(Self {
            classes,
            routes,
            guards,
        })
    }

    /// Whether `route` has any field rules or a guard (its bodies are then rewritten).
    pub fn covers(&self, route: &str) -> bool {
        self.routes.contains_key(route) || self.guards.contains_key(route)
    }

    /// Whether `route`'s rules for the `side` body name data subjects of their own
    /// (`subject` selectors): their ids must then be checked before use.
    pub fn names_subjects(&self, route: &str, side: rules::BodySide) -> bool {
        self.routes
            .get(route)
            .is_some_and(|r| r.scopes(side).iter().any(|s| s.has_subject()))
    }

    /// Every field class with at-rest protection, with the key it needs (for the keyring to
    /// create at start rather than on a first request).
    pub fn keyed_classes(&self) -> impl Iterator<Item = &FieldClass> {
        self.classes.values().filter(|c| c.protect.is_some())
    }

    /// What a crypto-shred reaches in this generation's classes, for the operator's
    /// message: which classes die with the subject's keys, and which only through the
    /// gateway's shred check (their shared key still reverses them outside it).
    pub fn shred_reach(&self) -> ShredReach {
        let mut reach = ShredReach::default();
        for class in self.classes.values() {
            match &class.protect {
                Some(_) if class.per_subject => reach.keys_destroyed.push(class.name.clone()),
                Some(spec) if spec.is_reversible() => {
                    reach
                        .shared_key
                        .push(format!("{} ({})", class.name, spec.name()))
                }
                _ => reach.gateway_only.push(class.name.clone()),
            }
        }
        reach
    }

    fn class(&self, name: &str) -> Result<&FieldClass, ProtectError> {
        self.classes.get(name).ok_or(ProtectError::Internal)
    }
}

fn parse_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    toml::from_str(text).map_err(|e| format!("invalid: {}", e.to_string().trim()))
}

#[cfg(test)]
mod tests;
