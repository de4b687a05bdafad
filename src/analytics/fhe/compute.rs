//! What server-side computation needs: the public material (to re-read stored lists), the
//! server key, the key that re-randomizes stored totals, and a thread pool whose every
//! thread holds the server key.
//!
//! Why a pool of its own: TFHE-rs keeps the high-level server key in a thread-local
//! `RefCell`. Expanding a compact list borrows that cell for the whole expansion, and
//! TFHE-rs parallelises inside the borrow with rayon. A rayon worker waiting inside such a
//! borrow (in a `join`) runs other queued tasks meanwhile; when one of those called
//! `tfhe::set_server_key`, which replaces the cell's content, the cell was still borrowed
//! further up the same thread's stack and the replacement panicked ("already borrowed").
//! That is why setting the key from each rayon task failed. Here the key is set once per
//! thread, by the pool's start handler, before the thread runs any task; tasks only ever
//! borrow it, and nested shared borrows are fine. Work inside [`FoldKeys::install`] (and
//! TFHE-rs' own parallel loops it starts) runs on this pool.

use super::keyset::PublicMaterial;
use super::{rerand, FheError};
use tfhe::integer::CompactPublicKey;
use tfhe::ServerKey;

/// Keys and threads for folding and adding encrypted totals.
pub struct FoldKeys {
    /// Compact public key and CRS.
    pub public: PublicMaterial,
    /// The server key.
    pub server: ServerKey,
    rerand: CompactPublicKey,
    pool: rayon::ThreadPool,
}

impl FoldKeys {
    /// Checks that the server key can re-randomize and starts the pool (one thread per
    /// core, or `RAYON_NUM_THREADS`).
    pub fn new(public: PublicMaterial, server: ServerKey) -> Result<Self, FheError> {
        let rerand = rerand::derived_key(&server)?;
        let key = server.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("privgate-fhe-{i}"))
            .start_handler(move |_| tfhe::set_server_key(key.clone()))
            .build()
            .map_err(|e| FheError::Internal(format!("FHE thread pool: {e}")))?;
        Ok(Self {
            public,
            server,
            rerand,
            pool,
        })
    }

    /// Runs `f` on the pool (blocking the caller), where every thread holds the server key.
    pub fn install<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.pool.install(f)
    }

    /// The server key's compact public key that re-randomizes stored totals.
    pub fn rerand_key(&self) -> &CompactPublicKey {
        &self.rerand
    }

    /// The integer server key the accumulator computes with.
    pub fn integer(&self) -> &tfhe::integer::ServerKey {
        self.server.as_ref()
    }
}
