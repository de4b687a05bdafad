//! Analytics the gateway answers itself: aggregate questions over customer data.

pub mod dp;
