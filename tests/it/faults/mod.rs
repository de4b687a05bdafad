//! Faults (issue 16, item 4): each fault the gateway's dependencies can have, with the
//! behaviour SECURITY.md documents ("Faults and recovery"), and recovery without a restart
//! once the cause clears.

mod audit_disk;
mod bank;
mod crash;
#[cfg(feature = "fhe")]
mod crash_fhe;
mod crash_otp;
mod disk;
mod keyring;
mod store;
mod upstream;
