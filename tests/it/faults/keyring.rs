//! The keyring's key-encryption key becomes unavailable: a gateway does not start without
//! it (fail closed: nothing protected could be served), a running one keeps the KEK it
//! opened at start (a reload does not reopen the keyring), and a start after the file is
//! back works.

use super::bank::{onboard_expecting, Bank};
use crate::harness::*;
use nix::sys::signal::Signal;

#[tokio::test]
async fn without_its_kek_the_gateway_does_not_start_and_a_running_one_keeps_its_own() {
    let ws = Workspace::new();
    let db = ws.path("privgate.db");
    let bank = Bank::new(ws, &format!("sqlite://{}", db.display())).await;
    let kek = bank.ws.path("kek.hex");
    let hidden = bank.ws.path("kek.hex.away");

    std::fs::rename(&kek, &hidden).unwrap();
    let said = serve_refused(&bank.config);
    assert!(said.contains("kek.hex"), "{said}");
    assert!(!said.contains(&"6e".repeat(32)), "the KEK leaked: {said}");

    std::fs::rename(&hidden, &kek).unwrap();
    let gw = Gateway::start(&bank.config);
    onboard_expecting(&bank, &gw, "c-1", true).await;

    // Gone while running: a reload succeeds without it; requests go on with the KEK already
    // held, new subject keys included.
    std::fs::rename(&kek, &hidden).unwrap();
    gw.signal(Signal::SIGHUP);
    gw.wait_for_log("configuration reloaded");
    onboard_expecting(&bank, &gw, "c-2", true).await;
    std::fs::rename(&hidden, &kek).unwrap();
    onboard_expecting(&bank, &gw, "c-3", true).await;
}
