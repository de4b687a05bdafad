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

use crate::harness::{privgate, Gateway};
use std::time::Duration;

/// Kills the gateway with SIGKILL after `delay`, then waits for the clients' tasks (each
/// ends once its connection fails).
pub(crate) async fn kill_after(
    gw: Gateway,
    delay: Duration,
    load: Vec<tokio::task::JoinHandle<()>>,
) {
    tokio::time::sleep(delay).await;
    gw.signal(nix::sys::signal::Signal::SIGKILL);
    drop(gw);
    for task in load {
        task.await.unwrap();
    }
}

/// `privgate audit verify` passes on the chain a killed gateway left.
pub(crate) fn chain_verifies(config: &std::path::Path, point: usize, delay: Duration) {
    let verify = privgate(["audit", "verify", "--config", config.to_str().unwrap()]);
    assert!(
        verify.ok,
        "kill point {point} ({delay:?}): {}",
        verify.all()
    );
}

/// The store's database opened directly (one connection), read once the gateway is dead.
pub(crate) async fn store_pool(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap()
}
