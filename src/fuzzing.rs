//! Entry points for the fuzz targets (`fuzz/`), compiled only with the `fuzzing` feature,
//! so none of it is in the shipped binary.
//!
//! Each item reaches one parser the public surface does not: the identity phase's token and
//! key-set readers, the analytics planner, the admin API's bodies, the field rules compiled
//! from text. They call the same code the gateway runs; nothing here re-implements a check.
//! The one stand-in is for signatures: [`TokenGate`] holds the HS256 secret of its one issuer
//! and [`TokenGate::sign`] signs whatever header and claims the fuzzer wrote, so the fuzzer
//! gets past the (real) signature check to the claim validation and mapping behind it.
//!
//! Fixtures own a runtime and a scratch directory under the system temporary directory,
//! named after the process (a fuzzing process is long-lived; its files are small).

use crate::analytics::dp::pushdown::{self, Pushdown};
use crate::analytics::dp::query::{self, Query};
use crate::config::{BodyMode, DatasetConfig, RouteConfig};
use crate::decision::{Decision, FieldView};
use crate::keys::kek::KekMaterial;
use crate::keys::{maintenance, Keyring, KeyringSettings};
use crate::protect::document::Document;
use crate::protect::rules::{self, BodySide, Located, RoutesFile};
use crate::protect::{ProtectError, Protection};
use crate::store::Store;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

pub use crate::identity::fuzzing::{
    jwks_algorithms, JwksListing, TokenGate, TokenOutcome, AUDIENCE, FORWARDED, ISSUER, LEEWAY_S,
};

/// The process's one [`TokenGate`].
pub fn token_gate() -> &'static TokenGate {
    static GATE: OnceLock<TokenGate> = OnceLock::new();
    GATE.get_or_init(|| TokenGate::open(&scratch_dir("identity")))
}

/// The routes `policies/routes.toml` names, as a configuration would declare them.
const SHIPPED_ROUTES: [(&str, &str); 4] = [
    ("customers", "customers:read"),
    ("fraud-review", "customers:read"),
    ("customer_create", "customers:create"),
    ("card_authorization", "payments:authorize"),
];

/// A directory of this process's own under the system temporary directory, emptied.
pub fn scratch_dir(purpose: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("privgate-fuzz-{purpose}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// The policy directory shipped with the source (`policies/`).
pub fn shipped_policies() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
}

/// A single-threaded runtime for the fixtures' async calls.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The shipped field rules over a real keyring in SQLite.
pub struct ShippedRules {
    rt: tokio::runtime::Runtime,
    keyring: Keyring,
    protection: Protection,
    classes: Vec<String>,
}

impl ShippedRules {
    /// The process's one instance (opening a keyring costs milliseconds).
    pub fn get() -> &'static Self {
        static RULES: OnceLock<ShippedRules> = OnceLock::new();
        RULES.get_or_init(Self::open)
    }

    fn open() -> Self {
        let rt = runtime();
        let dir = scratch_dir("rules");
        let url = format!("sqlite://{}/keys.db", dir.display());
        let keyring = rt.block_on(async {
            let store = Store::open(&url).await.expect("store");
            let material = KekMaterial::Raw(zeroize::Zeroizing::new([0x3c; 32]));
            maintenance::init(&store, &material, Default::default())
                .await
                .expect("keyring init");
            Keyring::open(store, &material, KeyringSettings::default())
                .await
                .expect("keyring")
        });
        let routes: Vec<RouteConfig> = SHIPPED_ROUTES
            .iter()
            .map(|(name, action)| RouteConfig {
                body: BodyMode::Buffered,
                action: Some((*action).into()),
                ..RouteConfig::new(name, "/", "u")
            })
            .collect();
        let protection = Protection::load(&shipped_policies(), &routes).expect("shipped rules");
        let fields = std::fs::read_to_string(shipped_policies().join("fields.toml"))
            .expect("shipped fields.toml");
        let classes = toml::from_str::<crate::protect::classes::FieldsFile>(&fields)
            .expect("shipped fields.toml")
            .class
            .into_keys()
            .collect();
        Self {
            rt,
            keyring,
            protection,
            classes,
        }
    }

    /// The route names the shipped rules cover.
    pub fn routes() -> impl Iterator<Item = &'static str> {
        SHIPPED_ROUTES.iter().map(|(name, _)| *name)
    }

    /// Protects `body` as the gateway does on `side` of `route` (`None`: left as it is).
    pub fn protect(
        &self,
        route: &str,
        side: BodySide,
        body: &[u8],
        route_subject: Option<&str>,
    ) -> Result<Option<Vec<u8>>, ProtectError> {
        self.rt.block_on(
            self.protection
                .protect(route, side, body, route_subject, &self.keyring),
        )
    }

    /// Reveals a response `body` of `route` with every class in `view`, as the gateway does
    /// for a caller whose decision grants that view.
    pub fn reveal(
        &self,
        route: &str,
        body: &[u8],
        route_subject: Option<&str>,
        view: FieldView,
    ) -> Result<String, ProtectError> {
        let doc = Document::parse(body).map_err(ProtectError::Body)?;
        let located = self.protection.locate(route, BodySide::Response, &doc)?;
        let decision = Decision {
            refusal: None,
            policy_ids: vec![],
            views: std::sync::Arc::new(self.classes.iter().map(|c| (c.clone(), view)).collect()),
            subject_views: BTreeMap::new(),
            view_policy_ids: Default::default(),
            policy_set_hash: String::new(),
        };
        self.rt.block_on(self.protection.reveal(
            route,
            &doc,
            &located,
            route_subject,
            &decision,
            &self.keyring,
        ))
    }
}

/// Compiles a `routes.toml` text against the shipped field classes, as loading does (guards
/// included), and binds `body` with every route's rules on both sides.
pub fn bind_routes(
    routes_toml: &str,
    body: &crate::protect::document::Document<'_>,
) -> Result<Vec<Located>, String> {
    let file: RoutesFile = toml::from_str(routes_toml).map_err(|e| e.to_string())?;
    let classes = &ShippedRules::get().classes;
    let known = |c: &str| classes.iter().any(|k| k == c);
    let (compiled, guards) = rules::compile_routes(file, &known).map_err(|e| e.join("; "))?;
    for spec in guards.values() {
        crate::protect::guard::Guard::new(spec).map_err(|e| e.to_string())?;
    }
    let mut found = Vec::new();
    for rules in compiled.values() {
        for side in [BodySide::Request, BodySide::Response] {
            // A refusal (misspelling, no subject) is an answer too; what is bound must exist.
            if let Ok(located) = rules.bind(side, body) {
                found.extend(located);
            }
        }
    }
    Ok(found)
}

/// The demo's `[[dataset]]` tables (the analytics configuration the project ships).
pub fn demo_datasets() -> &'static [DatasetConfig] {
    static DATASETS: OnceLock<Vec<DatasetConfig>> = OnceLock::new();
    DATASETS.get_or_init(|| {
        #[derive(serde::Deserialize)]
        struct Demo {
            dataset: Vec<DatasetConfig>,
        }
        let demo: Demo = toml::from_str(crate::demo::analytics::CONFIG).expect("demo datasets");
        demo.dataset
    })
}

/// What the analytics engine makes of one analyst's query before any data is read.
pub struct Planned {
    /// The checked query.
    pub query: Query,
    /// Total epsilon the plan spends (`None` for keyed queries, planned by the threshold
    /// mechanism, or when planning refused).
    pub epsilon: Option<f64>,
    /// The statement the source database would run.
    pub tally: Pushdown,
}

/// Parses `sql` on `dataset`, plans it at `epsilon` and builds its pushdown statement.
pub fn plan_query(
    sql: &str,
    dataset: &DatasetConfig,
    epsilon: f64,
) -> Result<Planned, query::QueryError> {
    let query = query::parse(sql, dataset)?;
    let epsilon = match query.keyed {
        true => None,
        false => crate::analytics::dp::mechanism::plan(
            dataset,
            &query,
            crate::analytics::dp::mechanism::Privacy::Epsilon(epsilon),
        )
        .ok()
        .map(|p| p.epsilon),
    };
    let tally = pushdown::tally_sql(dataset, &query, None);
    Ok(Planned {
        query,
        epsilon,
        tally,
    })
}

/// The admin API's bodies, parsed and checked as its handlers do before any store call:
/// `consent` is `POST /consents`, anything else `POST /operations`. The error is the
/// message a client would read.
pub fn admin_body(consent: bool, bytes: &[u8]) -> Result<(), String> {
    let result = match consent {
        true => crate::gateway::admin_api_fuzzing::grant_body(bytes),
        false => crate::gateway::admin_api_fuzzing::operation_body(bytes),
    };
    result.map_err(|e| e.to_string())
}

/// Public FHE material as the gateway serves it (compact public key and CRS, through
/// [`crate::analytics::fhe::keyset::public_from_bytes`]), generated once per process
/// without the server key, which the parsers do not need (it takes minutes).
#[cfg(feature = "fhe")]
pub fn fhe_public() -> &'static crate::analytics::fhe::PublicMaterial {
    use crate::analytics::fhe::{keyset, params, PublicMaterial};
    static PUBLIC: OnceLock<PublicMaterial> = OnceLock::new();
    PUBLIC.get_or_init(|| {
        let config = params::config();
        let client = tfhe::ClientKey::generate(config);
        let public_key = tfhe::CompactPublicKey::try_new(&client).expect("public key");
        let crs = tfhe::zk::CompactPkeCrs::from_config(config, params::CRS_MAX_BITS).expect("CRS");
        keyset::public_from_bytes(
            keyset::serialize(&public_key, keyset::PUBLIC_KEY_LIMIT).expect("serialize"),
            keyset::serialize(&crs, keyset::CRS_LIMIT).expect("serialize"),
        )
        .expect("conformant public material")
    })
}
