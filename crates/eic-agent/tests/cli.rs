//! The `eic-agent` binary's command line: the instance side's commands,
//! each with `eic`'s flags (crates/eic/tests/packages.rs compares the two
//! binaries' help texts).
#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use std::process::Command;

fn eic_agent(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_eic-agent"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn it_offers_the_instance_side_commands() {
    let help = eic_agent(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8(help.stdout).unwrap();
    for command in ["authorized-keys", "join", "run", "install", "uninstall"] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "{command} missing from:\n{text}"
        );
    }
    let version = eic_agent(&["--version"]);
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8(version.stdout).unwrap().trim(),
        format!("eic-agent {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn authorized_keys_without_a_user_fails_closed() {
    let out = eic_agent(&["authorized-keys", "-x", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.starts_with(b"usage: eic authorized-keys"));
}

#[test]
fn join_refuses_plain_http_before_any_connection() {
    let dir = tempfile::tempdir().unwrap();
    let out = eic_agent(&[
        "join",
        "--server",
        "http://127.0.0.1:9",
        "--token",
        "not-a-token",
        "--config-out",
        dir.path().join("agent.toml").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("eic-agent: "), "{stderr}");
    assert!(!dir.path().join("agent.toml").exists());
}
