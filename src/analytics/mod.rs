//! Analytics the gateway answers itself: aggregate questions over customer data
//! (differential privacy) and encrypted sums over parties' contributions (FHE); answers
//! about many records or parties, never about one.

pub mod dp;
#[cfg(feature = "fhe")]
pub mod fhe;
