//! The serial console end to end: a key pushed with boto3 lets the real
//! `ssh` client reach an instance's console (a shell on a pty behind socat)
//! through the gateway; one session per port, a teardown after it, and the
//! API answering the session errors under their real conditions.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::process::Command;

use common::serial::{console_backend, ssh_serial};
use common::{eic, push_with_boto3, ssh_keygen, try_push_with_boto3, wait_until, Server};

#[test]
fn serial_console_sessions_through_the_gateway() {
    let (_socat, console) = console_backend();
    let sockets = tempfile::tempdir().unwrap();
    let unix_console = sockets.path().join("console.sock");
    let unix_listener = UnixListener::bind(&unix_console).unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        &[
            ("127.0.0.1:7000", &console),
            ("/tmp/eic-dev-console.sock", unix_console.to_str().unwrap()),
            ("teardown_secs = 30", "teardown_secs = 2"),
        ],
        "",
    );
    let keys = tempfile::tempdir().unwrap();
    let key = ssh_keygen(keys.path(), "serial");
    let ssh_only = ssh_keygen(keys.path(), "ssh-only");
    let elsewhere = ssh_keygen(keys.path(), "elsewhere");
    let ops = "i-0123456789abcdef0";

    // The host key the gateway presents is the one `eic serial-host-key` prints.
    let (code, printed, _) = eic(&[
        "serial-host-key",
        "--config",
        server.config.to_str().unwrap(),
        "--data-dir",
        data.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let scan = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ssh-keyscan -p {} -t ed25519 127.0.0.1 2>/dev/null | ssh-keygen -lf -",
            server.serial.port()
        ))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&scan.stdout).contains(printed.trim()),
        "{printed}"
    );

    push_with_boto3(&server, ops, "--serial", &key.with_extension("pub"));
    push_with_boto3(&server, ops, "ec2-user", &ssh_only.with_extension("pub"));
    push_with_boto3(
        &server,
        "i-abcd1234",
        "--serial",
        &elsewhere.with_extension("pub"),
    );

    let mut session = ssh_serial(&server, &key, ops);
    writeln!(session.stdin, "echo serial-$((6*7))").unwrap();
    assert!(session.expect("serial-42"), "no answer from the console");
    assert_eq!(server.metric("eic_serial_sessions_open"), 1.0);

    // One session per port: the API and the gateway both refuse a second.
    assert_eq!(
        try_push_with_boto3(&server, ops, "--serial", &key.with_extension("pub")),
        Err("SerialConsoleSessionLimitExceededException".into())
    );
    let second = ssh_serial(&server, &key, ops);
    assert!(second.expect("already has an active serial console session"));
    assert_eq!(second.exit_code(), Some(1));

    // Keys for another purpose or another instance do not open a session.
    for (k, instance) in [(&ssh_only, ops), (&elsewhere, ops)] {
        let refused = ssh_serial(&server, k, instance);
        assert!(refused.expect("Permission denied"));
        assert_eq!(refused.exit_code(), Some(255));
    }

    // The client leaves; the port stays taken for the teardown, then frees.
    drop(session.stdin);
    drop(session.ssh);
    wait_until(20, "the teardown to end", || {
        try_push_with_boto3(&server, ops, "--serial", &key.with_extension("pub")).is_ok()
    });
    assert_eq!(server.metric("eic_serial_sessions_open"), 0.0);
    let to_console = r#"eic_serial_bytes_total{direction="to_console"}"#;
    assert!(server.metric(to_console) >= "echo serial-$((6*7))\n".len() as f64);
    assert!(server.metric(r#"eic_serial_bytes_total{direction="from_console"}"#) >= 9.0);

    // The session was recorded by the gateway, as the pusher's.
    let (code, list, err) = eic(&[
        "recordings",
        "list",
        "--json",
        "--config",
        server.config.to_str().unwrap(),
        "--data-dir",
        data.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
    let recorded = list
        .iter()
        .find(|r| r["instanceId"] == ops && r["source"] == "serial-gateway")
        .unwrap_or_else(|| panic!("no gateway recording in {list:?}"));
    assert_eq!(recorded["kind"], "serial");
    assert_eq!(recorded["serialPort"], 0);
    assert_eq!(
        recorded["principalArn"],
        "arn:aws:iam::111122223333:user/admin"
    );
    assert!(recorded["endedAt"].is_string());
    let (code, cast, err) = eic(&[
        "recordings",
        "export",
        recorded["id"].as_str().unwrap(),
        "--config",
        server.config.to_str().unwrap(),
        "--data-dir",
        data.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(cast.contains("serial-42"), "{cast}");

    // A console nobody listens on: the API knows it.
    drop(unix_listener);
    std::fs::remove_file(&unix_console).unwrap();
    assert_eq!(
        try_push_with_boto3(
            &server,
            "i-abcd1234",
            "--serial",
            &key.with_extension("pub")
        ),
        Err("SerialConsoleSessionUnavailableException".into())
    );

    // Serial console access changes at runtime and persists.
    let access = |verb: &str| {
        eic(&[
            "serial-console-access",
            verb,
            "--config",
            server.config.to_str().unwrap(),
            "--data-dir",
            data.path().to_str().unwrap(),
            "--account",
            "111122223333",
        ])
    };
    assert!(access("disable")
        .1
        .contains("\"SerialConsoleAccessEnabled\":false"));
    assert_eq!(
        try_push_with_boto3(&server, ops, "--serial", &key.with_extension("pub")),
        Err("SerialConsoleAccessDisabledException".into())
    );
    assert!(access("status").1.contains("false"));
    assert!(access("enable").1.contains("true"));
    assert!(try_push_with_boto3(&server, ops, "--serial", &key.with_extension("pub")).is_ok());

    // Both ends of the session are in the audit log.
    let audit = std::fs::read_to_string(data.path().join("audit.log")).unwrap();
    assert!(audit.contains("\"eventName\":\"StartSerialConsoleSession\""));
    let end: serde_json::Value = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["eventName"] == "EndSerialConsoleSession")
        .expect("session end audited");
    assert_eq!(end["requestParameters"]["instanceId"], ops);
    assert!(
        end["responseElements"]["bytesFromConsole"]
            .as_u64()
            .unwrap()
            > 0
    );
}
