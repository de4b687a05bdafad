//! Running privgate as a service: systemd readiness/reload/stop notifications over a real
//! unix datagram socket, `PRIVGATE_CONFIG`, `$CREDENTIALS_DIRECTORY` paths, and the shell
//! completions and man page generated from the command line's definition.

use crate::harness::*;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

/// Datagrams received on `socket` until one contains `wanted` (or 20 s pass).
fn until(socket: &UnixDatagram, wanted: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = message.lines().any(|l| l == wanted);
            seen.push(message);
            if done {
                return seen;
            }
        }
    }
    panic!("no `{wanted}` notification; received {seen:?}");
}

#[test]
fn service_manager_hears_ready_reload_watchdog_and_stop() {
    let ws = Workspace::new();
    // A port chosen now, so the listener can be tried the moment READY=1 arrives.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = config(&ws, "127.0.0.1:9".parse().unwrap(), "", "").replacen(
        "127.0.0.1:0",
        &format!("127.0.0.1:{port}"),
        1,
    );
    let path = ws.write("privgate.toml", &text);
    let socket_path = ws.path("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let gateway = Gateway::start_with_env(
        &path,
        &[
            ("NOTIFY_SOCKET", socket_path.as_os_str()),
            ("WATCHDOG_USEC", "400000".as_ref()),
        ],
    );

    let ready = until(&socket, "READY=1");
    // Ready means bound: the listener accepts at once.
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("listener bound at READY=1");
    assert!(ready.iter().all(|m| !m.contains("STOPPING=1")), "{ready:?}");

    // The watchdog (WatchdogSec=0.4s) is pinged every 0.2 s.
    until(&socket, "WATCHDOG=1");

    // A reload is bracketed: RELOADING=1 with the monotonic time systemd 253+ requires,
    // then READY=1 again.
    gateway.signal(nix::sys::signal::Signal::SIGHUP);
    let reloading = until(&socket, "RELOADING=1");
    let message = reloading.last().unwrap();
    assert!(message.contains("MONOTONIC_USEC="), "{message}");
    until(&socket, "READY=1");
    gateway.wait_for_log("configuration reloaded");

    gateway.signal(nix::sys::signal::Signal::SIGTERM);
    until(&socket, "STOPPING=1");
}

#[test]
fn privgate_config_names_the_config_and_the_flag_wins() {
    let ws = Workspace::new();
    let good = ws.write(
        "privgate.toml",
        &config(&ws, "127.0.0.1:9".parse().unwrap(), "", ""),
    );
    let run = |args: &[&str]| {
        let run = cli_run(
            Command::new(BIN)
                .args(args)
                .env("PRIVGATE_CONFIG", &good)
                .current_dir(ws.dir.path().join("certs")),
        );
        (run.ok, run.all())
    };
    let (ok, out) = run(&["check"]);
    assert!(
        ok && out.contains(&format!("{}: ok", good.display())),
        "{out}"
    );
    let (ok, out) = run(&["check", "--config", "/nonexistent/privgate.toml"]);
    assert!(
        !ok && out.contains("/nonexistent/privgate.toml: cannot read"),
        "{out}"
    );
}

#[test]
fn secrets_can_be_read_from_the_credentials_directory() {
    let ws = Workspace::new();
    let dir = ws.dir.path().display().to_string();
    let text = config(&ws, "127.0.0.1:9".parse().unwrap(), "", "").replace(
        &format!("{dir}/certs/server.key.pem"),
        "$CREDENTIALS_DIRECTORY/server.key.pem",
    );
    let path = ws.write("privgate.toml", &text);
    let check = |credentials: Option<&str>| {
        let mut command = Command::new(BIN);
        command.args(["check", "--config"]).arg(&path);
        match credentials {
            Some(dir) => command.env("CREDENTIALS_DIRECTORY", dir),
            None => command.env_remove("CREDENTIALS_DIRECTORY"),
        };
        let run = cli_run(&mut command);
        (run.ok, run.stderr)
    };
    let (ok, err) = check(Some(&format!("{dir}/certs")));
    assert!(ok, "{err}");
    // Another directory: that key does not match the certificate.
    let (ok, err) = check(Some(&format!("{dir}/other")));
    assert!(!ok && err.contains("does not match the key"), "{err}");
    let (ok, err) = check(None);
    assert!(
        !ok && err.contains("CREDENTIALS_DIRECTORY, which is not set"),
        "{err}"
    );
}

#[test]
fn man_page_and_completions_cover_every_command() {
    let help = privgate(["--help"]);
    assert!(help.ok, "{}", help.all());
    // `Commands:` lines of the help: two spaces, the name, spaces, the summary.
    let commands: Vec<&str> = help
        .stdout
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(
        commands.contains(&"serve") && commands.contains(&"man"),
        "{commands:?}"
    );

    let man = privgate(["man"]);
    assert!(man.ok, "{}", man.all());
    assert!(
        man.stdout.starts_with(".ie"),
        "not roff: {}",
        &man.stdout[..80]
    );
    assert!(
        man.stdout.contains(".TH privgate 1"),
        "{}",
        &man.stdout[..200]
    );
    for shell in ["bash", "zsh", "fish"] {
        let script = privgate(["completions", shell]);
        assert!(script.ok, "{}", script.all());
        for command in &commands {
            assert!(man.stdout.contains(command), "man page lacks {command}");
            assert!(
                script.stdout.contains(command),
                "{shell} completions lack {command}"
            );
        }
    }
    assert!(!privgate(["completions", "tcsh"]).ok);

    // A page per command, for the SEE ALSO-style references privgate(1) makes.
    let dir = tempfile::tempdir().unwrap();
    let pages = privgate(["man".as_ref(), "--out".as_ref(), dir.path().as_os_str()]);
    assert!(pages.ok, "{}", pages.all());
    for command in &commands {
        let page = dir.path().join(format!("privgate-{command}.1"));
        let text = std::fs::read_to_string(&page).unwrap_or_default();
        assert!(text.contains(".TH privgate-"), "{}", page.display());
        assert!(
            man.stdout.contains(&format!("privgate\\-{command}(1)")),
            "{command}"
        );
    }
    let keys_rotate = std::fs::read_to_string(dir.path().join("privgate-keys-rotate.1")).unwrap();
    assert!(keys_rotate.contains("rotate"), "{keys_rotate}");
}
