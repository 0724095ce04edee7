//! The browser console end to end, in a real browser: headless Chromium
//! (Debian's, through chromedriver and Selenium) signs in with a link from
//! `eic console-url`, lists instances, opens an SSH terminal to a real
//! sshd through eic's own SSH client, resizes it, opens a serial console
//! (socat's shell) through the gateway, signs out, and plays the SSH
//! session's recording back (tests/clients/console_browser.py). Then the
//! recording is read with `eic recordings`, and the pushes and sign-ins
//! with the audit log. Screenshots land in the test's output directory.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use std::ffi::OsStr;
use std::path::Path;

use common::serial::{console_backend, Killed};
use common::sshd::{start_sshd, write_agent_config, RootDir, Sshd};
use common::{run_python_with, wait_until, Server};

const INSTANCE: &str = "i-0c0500000000000a1";
/// dev.toml's instance whose serial console is a TCP backend.
const SERIAL_INSTANCE: &str = "i-0123456789abcdef0";
const ADMIN: &str = "arn:aws:iam::111122223333:user/admin";

fn console_url(server: &Server, principal: &str, scheme: &str) -> String {
    let (code, out, err) = server.admin(&["console-url", "--principal", principal, "--ttl", "5m"]);
    assert_eq!(code, 0, "{err}");
    let url = out.trim().to_owned();
    assert!(
        url.starts_with(&format!("{scheme}://{}/signin?token=", server.console)),
        "{url}"
    );
    url
}

/// A real sshd for [`INSTANCE`] (its agent config written once the server
/// runs), the socat serial console, and the server with `console` replacing
/// dev.toml's `[console]` header.
fn start(tag: &str, console: &str) -> (Server, RootDir, Sshd, Killed) {
    let dir = RootDir::new(tag);
    let agent = dir.0.join("agent.toml");
    let (sshd, port) = start_sshd(&dir.0, &agent);
    let host_key = std::fs::read_to_string(dir.0.join("host_ed25519.pub")).unwrap();
    let instances = format!(
        r#"
[[instances]]
id = "{INSTANCE}"
private_ip_address = "127.0.0.1"
ssh_port = {port}
host_keys = ["{host_key}"]
account = "111122223333"
state = "running"
availability_zone = "us-west-2a"
instance_type = "t3.micro"
tags = {{ Name = "console-web", Team = "web" }}
"#,
        host_key = host_key.trim()
    );
    let (socat, serial) = console_backend();
    let server = Server::start_through(
        &[],
        &[("127.0.0.1:7000", &serial), ("[console]\n", console)],
        &instances,
    );
    write_agent_config(&server, INSTANCE, &agent);
    (server, dir, sshd, socat)
}

#[test]
fn sign_in_list_a_terminal_sign_out_and_play_back_in_chromium() {
    let (server, _dir, _sshd, _socat) = start("console", "[console]\n");

    // Only a principal the configuration knows gets a link.
    let (code, _, err) = server.admin(&[
        "console-url",
        "--principal",
        "arn:aws:iam::111122223333:user/nobody",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("no principal"), "{err}");
    let (code, _, err) = server.admin(&["console-url", "--principal", ADMIN, "--ttl", "2h"]);
    assert_ne!(code, 0);
    assert!(err.contains("at most") || err.contains("1s to 1h"), "{err}");

    let first = console_url(&server, ADMIN, "http");
    let second = console_url(&server, ADMIN, "http");
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    run_python_with(
        "console_browser.py",
        &server,
        &[
            ("EIC_SIGNIN_URL", OsStr::new(&first)),
            ("EIC_SIGNIN_URL_2", OsStr::new(&second)),
            ("EIC_INSTANCE", OsStr::new(INSTANCE)),
            ("EIC_SERIAL_INSTANCE", OsStr::new(SERIAL_INSTANCE)),
            ("EIC_OS_USER", OsStr::new("root")),
            ("EIC_SHOTS", shots.as_os_str()),
        ],
    );

    // The diagnostics listener counted the sign-ins and the terminals.
    assert_eq!(server.metric("eic_console_sign_ins_total"), 2.0);
    assert_eq!(server.metric("eic_console_terminals_open"), 0.0);
    let from = r#"eic_console_terminal_bytes_total{direction="from_instance"}"#;
    assert!(server.metric(from) > 0.0);

    // The terminal's session was recorded: listed with who, where and as
    // whom, and exported as asciicast v2 holding what the page showed.
    let (code, list, err) = server.admin(&["recordings", "list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
    let recording = list
        .iter()
        .find(|r| r["instanceId"] == INSTANCE)
        .unwrap_or_else(|| panic!("no recording of {INSTANCE} in {list:?}"));
    assert_eq!(recording["principalArn"], ADMIN);
    assert_eq!(recording["osUser"], "root");
    assert_eq!(recording["source"], "console");
    assert!(recording["endedAt"].is_string(), "{recording}");
    assert!(recording["bytesOut"].as_u64().unwrap() > 0);
    let id = recording["id"].as_str().unwrap();
    let (code, cast, err) = server.admin(&["recordings", "export", id]);
    assert_eq!(code, 0, "{err}");
    let mut lines = cast.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    let events: Vec<serde_json::Value> = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    let output: String = events
        .iter()
        .filter(|e| e[1] == "o")
        .map(|e| e[2].as_str().unwrap().to_owned())
        .collect();
    assert!(output.contains("\r42\r\n"), "{output}");
    assert!(output.contains("héllo €"), "{output}");
    // The page's resizes are in it; input is not, unless [recordings]
    // record_input says so.
    assert!(events.iter().any(|e| e[1] == "r"), "{cast}");
    assert!(!events.iter().any(|e| e[1] == "i"), "{cast}");
    // The serial terminal was recorded by the gateway it went through.
    let serial = list
        .iter()
        .find(|r| r["instanceId"] == SERIAL_INSTANCE)
        .unwrap_or_else(|| panic!("no serial recording in {list:?}"));
    assert!(
        serial["kind"] == "serial"
            && serial["source"] == "serial-gateway"
            && serial["serialPort"] == 0
            && serial["principalArn"] == ADMIN,
        "{serial}"
    );
    // At the page's terminal size, which the gateway learnt from the
    // console's pty request and window changes (not a fixed 80 x 24).
    let (code, cast, err) = server.admin(&["recordings", "export", serial["id"].as_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let mut lines = cast.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let resized = lines.any(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()[1] == "r");
    assert!(
        resized || (header["width"].as_u64(), header["height"].as_u64()) != (Some(80), Some(24)),
        "{cast}"
    );
    let (code, _, err) = server.admin(&["recordings", "export", "../../etc/passwd"]);
    assert_ne!(code, 0);
    assert!(err.contains("not a recording id"), "{err}");

    // The terminal's key went through the pipeline as the principal, and
    // the sign-ins, the refused second use aside, are on record.
    let audit = std::fs::read_to_string(server.data_dir.join("audit.log")).unwrap();
    let events: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let pushes: Vec<_> = events
        .iter()
        .filter(|e| {
            e["eventName"] == "SendSSHPublicKey" && e["requestParameters"]["instanceId"] == INSTANCE
        })
        .collect();
    assert!(!pushes.is_empty());
    assert!(pushes.iter().all(|e| e["userIdentity"]["arn"] == ADMIN));
    assert!(pushes[0]["userAgent"]
        .as_str()
        .is_some_and(|ua| ua.starts_with("eic-console")));
    let count = |name: &str| events.iter().filter(|e| e["eventName"] == name).count();
    assert_eq!(count("CreateConsoleSignInLink"), 2);
    assert_eq!(count("ConsoleSignIn"), 2);
    assert_eq!(count("ConsoleSignOut"), 1);
}

#[test]
fn a_terminal_over_tls_pauses_its_output_and_closes_when_idle() {
    let (server, _dir, _sshd, _socat) = start(
        "console-tls",
        "[console]\ntls = \"auto\"\nidle_timeout_secs = 3\n",
    );
    let link = console_url(&server, ADMIN, "https");
    let ca = server.data_dir.join("pki/tls-ca.pem");
    run_python_with(
        "console_terminal.py",
        &server,
        &[
            ("EIC_SIGNIN_URL", OsStr::new(&link)),
            ("EIC_CA", ca.as_os_str()),
            ("EIC_INSTANCE", OsStr::new(INSTANCE)),
            ("EIC_OS_USER", OsStr::new("root")),
            ("EIC_IDLE_SECS", OsStr::new("3")),
        ],
    );
    // Both terminals end; the idle one is on record with its reason.
    wait_until(10, "the terminals to end", || {
        server.metric("eic_console_terminals_open") == 0.0
    });
    wait_until(10, "the idle session's recording to end", || {
        let (code, list, err) = server.admin(&["recordings", "list", "--json"]);
        assert_eq!(code, 0, "{err}");
        let list: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
        list.iter().any(|r| {
            r["endReason"]
                .as_str()
                .is_some_and(|why| why.contains("without input or output"))
        })
    });
}

/// A recording's two files as the server writes them, ended at `ended`.
fn write_recording(dir: &Path, id: &str, ended: &str) {
    let meta = serde_json::json!({
        "id": id, "kind": "ssh", "source": "console",
        "principalArn": ADMIN, "instanceId": INSTANCE, "osUser": "root", "serialPort": null,
        "startedAt": ended, "endedAt": ended, "width": 80, "height": 24,
        "bytesOut": 5, "bytesIn": 0, "inputRecorded": false, "truncated": false,
        "endReason": "The shell exited."
    });
    std::fs::write(dir.join(format!("{id}.json")), meta.to_string()).unwrap();
    let cast = "{\"version\":2,\"width\":80,\"height\":24}\n[0.1,\"o\",\"hello\"]\n";
    std::fs::write(dir.join(format!("{id}.cast")), cast).unwrap();
}

#[test]
fn recordings_past_their_retention_are_removed_by_the_running_server() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("recordings");
    std::fs::create_dir_all(&dir).unwrap();
    let old = "0123456789abcdef0123456789abcdef";
    let recent = "fedcba9876543210fedcba9876543210";
    let yesterday = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let yesterday = yesterday
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    write_recording(&dir, old, "2020-01-01T00:00:00Z");
    write_recording(&dir, recent, &yesterday);
    let server = Server::start_in(data.path(), "[recordings]\nretention_days = 30\n");
    wait_until(30, "the sweep at start to remove the old recording", || {
        !dir.join(format!("{old}.json")).exists()
    });
    assert!(!dir.join(format!("{old}.cast")).exists());
    let (code, list, err) = server.admin(&["recordings", "list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
    let ids: Vec<&str> = list.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [recent]);
}
