//! The systemd side of running eic: the server and the agent speak the
//! notify protocol their `Type=notify` units expect (READY, WATCHDOG,
//! STOPPING, to a real datagram socket as systemd's), and the units in
//! packaging/systemd pass `systemd-analyze verify` and `systemd-analyze
//! security` at an exposure of at most 2.0.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::repo_root;

/// The next notification, or `None` after `wait`.
fn next(socket: &UnixDatagram, wait: Duration) -> Option<String> {
    socket.set_read_timeout(Some(wait)).unwrap();
    let mut buffer = [0u8; 4096];
    let n = socket.recv(&mut buffer).ok()?;
    Some(String::from_utf8_lossy(&buffer[..n]).into_owned())
}

#[test]
fn the_server_is_ready_after_its_listeners_pings_the_watchdog_and_says_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_eic"))
        .args(["server", "--config"])
        .arg(repo_root().join("examples/dev.toml"))
        .args(common::FREE_PORTS)
        .args(common::FREE_TUNNEL_PORT)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let ready = next(&socket, Duration::from_secs(60)).expect("READY");
    assert_eq!(ready, "READY=1\nSTATUS=serving\n");
    // Every listener was announced before READY.
    let stdout = BufReader::new(server.stdout.take().unwrap());
    let mut announced = Vec::new();
    for line in stdout.lines().map_while(Result::ok) {
        if let Some(rest) = line.strip_prefix("listening ") {
            announced.push(rest.split(' ').next().unwrap().to_owned());
        }
        if announced.len() == common::ROLES.len() {
            break;
        }
    }
    assert_eq!(announced, common::ROLES);
    // At half the watchdog period: two pings well within a second.
    for _ in 0..2 {
        assert_eq!(
            next(&socket, Duration::from_secs(1)).as_deref(),
            Some("WATCHDOG=1\n")
        );
    }
    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let stopping = std::iter::from_fn(|| next(&socket, Duration::from_secs(10)))
        .find(|m| m != "WATCHDOG=1\n")
        .expect("STOPPING");
    assert_eq!(stopping, "STOPPING=1\nSTATUS=draining\n");
    assert!(server.wait().unwrap().success());
}

/// Each unit as installed, pointed at the binary under test (and at files
/// this machine has).
fn installable(unit: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo_root().join("packaging/systemd").join(unit)).unwrap();
    // eic-agent's binary is another package's, not built for these tests;
    // `verify` only needs an executable there, and eic answers the same
    // commands (`eic agent run`).
    let text = text
        .replace("/usr/bin/eic-agent", env!("CARGO_BIN_EXE_eic"))
        .replace("/usr/bin/eic", env!("CARGO_BIN_EXE_eic"))
        .replace("/etc/eic/agent.toml", "/etc/hostname");
    let path = dir.join(unit);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_units_verify_and_expose_little() {
    let dir = tempfile::tempdir().unwrap();
    for unit in ["eic.service", "eic-agent.service"] {
        let path = installable(unit, dir.path());
        let verify = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        let complaints = String::from_utf8_lossy(&verify.stderr);
        assert!(verify.status.success(), "{unit}: {complaints}");
        assert!(complaints.trim().is_empty(), "{unit}: {complaints}");
        // The threshold is in tenths: 20 is an exposure of 2.0 ("OK").
        let security = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=20"])
            .arg(&path)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&security.stdout);
        assert!(security.status.success(), "{unit}:\n{report}");
        assert!(report.contains("Overall exposure level"), "{report}");
    }
}
