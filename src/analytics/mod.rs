//! Aggregate analytics: answers about many records or parties, never about one.

#[cfg(feature = "fhe")]
pub mod fhe;
