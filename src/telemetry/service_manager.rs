//! Tells the service manager (systemd's `Type=notify`, or anything speaking the sd_notify
//! protocol) what the gateway is doing: `READY=1` once every listener is bound and the
//! runtime state (audit trail, store, keyring) is open, `RELOADING=1` ... `READY=1` around
//! each reload, `STOPPING=1` when draining starts, and `WATCHDOG=1` at half the interval the
//! unit's `WatchdogSec=` asks for.
//!
//! Without `NOTIFY_SOCKET` in the environment every call does nothing. A notification that
//! cannot be sent is logged and the gateway carries on: serving must not depend on the
//! supervisor's socket.

use sd_notify::NotifyState;
use std::time::Duration;

/// Listeners are bound and the gateway serves.
pub(crate) fn ready() {
    send(&[NotifyState::Ready, NotifyState::Status("serving")]);
}

/// A reload starts; [`ready`] follows whether it was applied or rejected (the previous
/// configuration keeps serving).
pub(crate) fn reloading() {
    // systemd 253+ requires the monotonic time with RELOADING=1 (it matches the reload to
    // the request); older ones ignore it.
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// Draining for shutdown has begun.
pub(crate) fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// Pings the watchdog at half the unit's `WatchdogSec=` from a runtime task, so a wedged
/// runtime gets the process restarted. Does nothing when no watchdog is asked for.
pub(crate) fn spawn_watchdog() {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let period = (interval / 2).max(Duration::from_millis(100));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            send(&[NotifyState::Watchdog]);
        }
    });
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "service manager notification not sent");
    }
}
