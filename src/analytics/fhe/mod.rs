//! Encrypted sums with TFHE-rs: contributors encrypt amounts under the gateway's compact
//! public key with a zero-knowledge proof of their bit width; the gateway (or an untrusted
//! compute node holding only public material) totals them without decrypting any; only
//! the total is ever decrypted, by the holder of the client key.
//!
//! The contract:
//! - every TFHE object read from outside (contributions, stored totals, key files) goes
//!   through tfhe's size-limited, conformance-checked deserialization; bad input is an
//!   [`FheError`] the caller turns into a 400, never a panic;
//! - a contribution counts only if its proof verifies against the published key and CRS
//!   with metadata naming the aggregate, the contributor and a nonce ([`contribution`]);
//! - an aggregate is sized when created so that its total cannot wrap ([`params::Sizing`]);
//! - totals are folded per batch as contributions arrive ([`fold`]); a replaced
//!   contribution refolds only its batch (`service`);
//! - every ciphertext that enters a computation from outside (a contribution, a stored
//!   total) is re-randomized first (`rerand`), as TFHE-rs requires against
//!   decryption-oracle attacks;
//! - the client key exists in clear only in this process, sealed at rest under a keyring
//!   data key ([`keyset`]).

pub mod batches;
pub(crate) mod compute;
pub(crate) mod configured;
pub mod contribution;
pub mod fold;
pub mod keyset;
pub(crate) mod noise;
pub mod params;
pub(crate) mod rerand;
pub(crate) mod service;

pub use keyset::PublicMaterial;
pub use service::FheService;

/// Why an FHE operation failed. Messages never include values or key material.
#[derive(Debug, thiserror::Error)]
pub enum FheError {
    /// The request is malformed or names something invalid.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A ciphertext, key or CRS did not deserialize, was over its size limit or does not
    /// conform to the pinned parameters.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The contribution's proof does not verify for this aggregate, contributor and key.
    #[error("the contribution's proof does not verify")]
    ProofInvalid,
    /// The contribution is wider than the aggregate's bit width.
    #[error("the contribution is wider than the aggregate's {0} bits")]
    TooWide(u32),
    /// No such aggregate.
    #[error("no such aggregate")]
    NotFound,
    /// The aggregate no longer takes contributions or releases (deadline or released).
    #[error("the aggregate is closed")]
    Closed,
    /// The nonce was already used in this aggregate.
    #[error("nonce already used")]
    NonceReused,
    /// The contributor has no organisation: the release threshold counts organisations, so
    /// a contribution that belongs to none could let one party pose as several.
    #[error("the contributor has no organisation")]
    OrganisationRequired,
    /// Too few distinct organisations contributed for a release.
    #[error("{have} distinct organisations contributed; {need} are needed")]
    ThresholdNotMet {
        /// Distinct organisations so far.
        have: u64,
        /// Needed.
        need: u64,
    },
    /// The aggregate's privacy budget cannot pay for this release.
    #[error("the aggregate's privacy budget is spent")]
    BudgetExhausted,
    /// The aggregate is full (its sizing's contributor count).
    #[error("the aggregate has its maximum number of contributors")]
    Full,
    /// Key material is missing or does not open.
    #[error("FHE keys: {0}")]
    Keys(String),
    /// The store failed.
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    /// A bug or a failed computation.
    #[error("internal: {0}")]
    Internal(String),
}

impl FheError {
    /// Whether the caller caused it (its request, ciphertext or the aggregate's state)
    /// rather than the gateway's keys, store or computation.
    pub fn is_client(&self) -> bool {
        !matches!(self, Self::Keys(_) | Self::Store(_) | Self::Internal(_))
    }
}

/// Runs `f` with panics turned into errors: TFHE-rs asserts on some inputs, and a
/// contribution must never take a worker thread (or the gateway) down.
pub(crate) fn guarded<T>(
    what: &'static str,
    f: impl FnOnce() -> Result<T, FheError>,
) -> Result<T, FheError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(_) => Err(FheError::Malformed(what)),
    }
}
