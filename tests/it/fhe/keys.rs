//! The key set is loaded once, at start: one from before re-randomization (format 1) is
//! refused there, and a reload cannot change `[fhe]`.

use super::{fixture, gateway_config};
use crate::harness::*;
use nix::sys::signal::Signal;
use serde_json::json;

#[test]
fn a_key_set_from_before_re_randomization_is_refused_at_start() {
    let fixture = fixture();
    let ws = Workspace::new();
    // The fixture's key set, relabelled as format 1 (made before re-randomization).
    let old = ws.path("old-keys");
    std::fs::create_dir(&old).unwrap();
    for file in [
        "public_key.bin",
        "crs.bin",
        "server_key.bin",
        "client_key.sealed",
    ] {
        std::os::unix::fs::symlink(fixture.fhe_dir().join(file), old.join(file)).unwrap();
    }
    let manifest = std::fs::read_to_string(fixture.fhe_dir().join("keyset.json")).unwrap();
    let mut manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    manifest["format"] = json!(1);
    std::fs::write(old.join("keyset.json"), manifest.to_string()).unwrap();
    let expected = |text: &str| {
        text.contains("has format 1, made before ciphertext re-randomization")
            && text.contains("run `privgate fhe keygen` again")
    };

    // The gateway does not start on it.
    let config = gateway_config(&ws, 4);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("dir = \"{}\"", fixture.fhe_dir().display()),
        &format!("dir = \"{}\"", old.display()),
    );
    assert!(text.contains(old.to_str().unwrap()));
    std::fs::write(&config, text).unwrap();
    let all = serve_refused(&config);
    assert!(expected(&all), "{all}");

    // Nor does the offline sum.
    let file = super::offline::contribution_file(&ws, "a.json", "offline-3", "Service:a", 5);
    let run = privgate([
        "fhe",
        "sum",
        "--keys",
        old.to_str().unwrap(),
        "--aggregate",
        "offline-3",
        "--bits",
        "8",
        "--max-contributors",
        "4",
        "--out",
        ws.path("total.json").to_str().unwrap(),
        &file,
    ]);
    assert!(!run.ok);
    assert!(expected(&run.all()), "{}", run.all());
}

#[tokio::test]
async fn a_reload_that_changes_fhe_is_rejected() {
    let ws = Workspace::new();
    let path = gateway_config(&ws, 4);
    let gw = Gateway::start(&path);
    // Listeners are bound before the key set loads (seconds on a busy machine); a reload
    // queued meanwhile would run only after it, past `wait_for`'s patience.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let loaded = |gw: &Gateway| {
        let logs = gw.logs.lock().unwrap();
        logs.iter()
            .find(|l| l["message"] == "FHE keys loaded")
            .map(|l| l["seconds"].clone())
    };
    let seconds = loop {
        if let Some(seconds) = loaded(&gw) {
            break seconds;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "FHE keys never loaded"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    eprintln!("FHE keys loaded in {seconds} s");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("batch_size = 4"));
    std::fs::write(&path, text.replace("batch_size = 4", "batch_size = 8")).unwrap();
    gw.signal(Signal::SIGHUP);
    gw.wait_for(|l| {
        l["problems"]
            .as_str()
            .is_some_and(|p| p.contains("[fhe] changes only on restart"))
    });
    super::stop(gw).await;
}

#[test]
fn a_missing_key_set_stops_the_start_and_nothing_is_served_without_it() {
    // Fail closed: without its key set the gateway does not start (no listener answers
    // with an FHE API it cannot serve), and says which directory lacks it. The key set is
    // held in memory once loaded, so files removed later change nothing until a restart.
    let fixture = fixture();
    let ws = Workspace::new();
    let empty = ws.path("no-keys");
    std::fs::create_dir(&empty).unwrap();
    let config = gateway_config(&ws, 4);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("dir = \"{}\"", fixture.fhe_dir().display()),
        &format!("dir = \"{}\"", empty.display()),
    );
    assert!(text.contains(empty.to_str().unwrap()));
    std::fs::write(&config, text).unwrap();
    let all = serve_refused(&config);
    assert!(all.contains("fhe") && all.contains("no-keys"), "{all}");
}
