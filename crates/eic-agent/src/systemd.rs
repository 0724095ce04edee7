//! systemd's notify protocol, for `Type=notify` units (packaging/systemd):
//! READY once the process serves, WATCHDOG while its runtime still runs
//! tasks, STOPPING when it drains. Outside systemd (no `NOTIFY_SOCKET`)
//! each is nothing.

use std::time::Duration;

use sd_notify::NotifyState;

/// The service is up; `status` is what `systemctl status` shows.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// The service reads its configuration again (`Type=notify-reload` waits
/// for the READY that follows).
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    states.extend(NotifyState::monotonic_usec_now().ok());
    send(&states);
}

/// The service is draining before it exits.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// Pings the watchdog at half its period, when the unit has one
/// (`WatchdogSec=`). It runs as a task: a runtime that stops running tasks
/// stops the pings, and systemd restarts the service.
pub async fn watchdog() {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut tick = tokio::time::interval((period / 2).max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        send(&[NotifyState::Watchdog]);
    }
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        // The server logs through its subscriber; the agent binary has
        // none, and says what it has to say on stderr (the journal).
        if tracing::dispatcher::has_been_set() {
            tracing::warn!(error = %e, "cannot notify systemd");
        } else {
            eprintln!("eic agent: cannot notify systemd: {e}");
        }
    }
}
