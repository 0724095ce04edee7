//! What an unauthenticated or careless caller must not be able to do to a
//! node: fill its disk, keep it "ready" while it refuses every push, get an
//! unshaped answer, or lose an answer by half-closing; and what commands
//! must not do to a data dir that is not a server's.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    fill, http_exchange, read_response, repo_root, sdk_client, Server, TinyFs, ADMIN, ED25519_KEY,
};

async fn push(server: &Server) -> Result<(), String> {
    sdk_client(server, ADMIN)
        .send_ssh_public_key()
        .instance_id("i-abcd1234")
        .instance_os_user("ec2-user")
        .ssh_public_key(ED25519_KEY)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{:?}", e.into_service_error()))
}

fn ready_status(server: &Server) -> u16 {
    let mut stream = TcpStream::connect(server.api).unwrap();
    let request = format!("GET /ready HTTP/1.1\r\nHost: {}\r\n\r\n", server.api);
    http_exchange(&mut stream, request.as_bytes()).unwrap().0
}

fn audit_events(data_dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(data_dir.join("audit.log"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The adversarial run's case: unauthenticated requests with a 15,000-byte
/// User-Agent on one keep-alive connection filled a 64 MB data dir in
/// 0.2 s, after which no push or key fetch worked anywhere.
#[tokio::test]
async fn unauthenticated_flood_cannot_fill_the_disk() {
    let fs = TinyFs::mount(16 * 1024 * 1024);
    let data = fs.path().join("data");
    let server = Server::start_in(&data, "[audit]\ndisk_reserve_bytes = 4194304\n");
    let user_agent = "A".repeat(15_000);
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nUser-Agent: {user_agent}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: 2\r\n\r\n{{}}",
        server.api
    );
    let mut stream = TcpStream::connect(server.api).unwrap();
    let started = Instant::now();
    let mut sent = 0;
    // 4,000 of them would write 62 MB without the bounds: four times the disk.
    while sent < 4_000 && started.elapsed() < Duration::from_secs(60) {
        let (status, headers, _) = http_exchange(&mut stream, request.as_bytes()).unwrap();
        assert_eq!(status, 400);
        assert_eq!(
            headers["x-amzn-errortype"],
            "MissingAuthenticationTokenException"
        );
        sent += 1;
    }
    assert_eq!(sent, 4_000, "the loop ran out of time");

    push(&server).await.expect("a push after the flood");
    assert_eq!(ready_status(&server), 200);
    let log = std::fs::metadata(data.join("audit.log")).unwrap().len();
    assert!(
        log < 2 * 1024 * 1024,
        "the flood wrote {log} bytes of audit log"
    );
    let events = audit_events(&data);
    assert!(events
        .iter()
        .all(|e| e["userAgent"].as_str().is_none_or(|ua| ua.len() <= 1024)));
    let suppressed: u64 = events
        .iter()
        .filter(|e| e["eventName"] == "AuditEventsSuppressed")
        .map(|e| {
            e["serviceEventDetails"]["suppressedEvents"]
                .as_u64()
                .unwrap()
        })
        .sum();
    let written = events
        .iter()
        .filter(|e| e["errorCode"] == "MissingAuthenticationTokenException")
        .count() as u64;
    // Every refusal is accounted for, line by line or in a summary (the
    // last summary may still be pending when the loop ends).
    assert!(written < 1_000, "{written} refusals written line by line");
    assert!(suppressed >= 1, "no summary of the suppressed refusals");
    assert!(written + suppressed <= sent);
}

#[tokio::test]
async fn a_full_disk_makes_the_node_unready() {
    let fs = TinyFs::mount(8 * 1024 * 1024);
    let data = fs.path().join("data");
    let server = Server::start_in(&data, "");
    assert_eq!(ready_status(&server), 200);
    let filler = fs.path().join("filler");
    fill(&filler);
    assert_eq!(ready_status(&server), 503);
    assert!(push(&server)
        .await
        .unwrap_err()
        .contains("ServiceException"));
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(ready_status(&server), 200);
    push(&server)
        .await
        .expect("a push once there is room again");
}

#[test]
fn requests_hyper_refuses_come_back_in_aws_shape() {
    let server = Server::start("");
    let host = server.api.to_string();
    let many_headers: String = (0..200).map(|n| format!("X-H{n}: v\r\n")).collect();
    let cases: Vec<(&str, String)> = vec![
        (
            "bad content-length",
            format!("POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: abc\r\n\r\n"),
        ),
        (
            "two content-lengths",
            format!("POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{{}}"),
        ),
        (
            "obs-fold",
            format!("POST / HTTP/1.1\r\nHost: {host}\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n"),
        ),
        (
            "bad header name",
            format!("POST / HTTP/1.1\r\nHost: {host}\r\nBad\u{1}Name: v\r\nContent-Length: 0\r\n\r\n"),
        ),
        ("HTTP/2.0 line", format!("POST / HTTP/2.0\r\nHost: {host}\r\n\r\n")),
        ("HTTP/1.2 line", format!("POST / HTTP/1.2\r\nHost: {host}\r\n\r\n")),
        (
            "64 KiB URI",
            format!("GET /{} HTTP/1.1\r\nHost: {host}\r\n\r\n", "a".repeat(64 * 1024)),
        ),
        (
            "200 headers",
            format!("POST / HTTP/1.1\r\nHost: {host}\r\n{many_headers}Content-Length: 0\r\n\r\n"),
        ),
    ];
    for (what, request) in cases {
        let mut stream = TcpStream::connect(server.api).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // A refused request is answered before hyper reads all of it; the
        // write of the rest may then fail, which is fine.
        let _ = stream.write_all(request.as_bytes());
        let (status, headers, body) =
            read_response(&mut stream).unwrap_or_else(|e| panic!("{what}: no answer ({e})"));
        assert!([400, 414, 431].contains(&status), "{what}: status {status}");
        assert!(
            headers.contains_key("x-amzn-requestid"),
            "{what}: {headers:?}"
        );
        assert_eq!(
            headers["x-amzn-errortype"], "SerializationException",
            "{what}"
        );
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["__type"], "SerializationException", "{what}");
    }
}

/// A client that shuts down its write side right after its request (as
/// `nc -N` and some proxies do) still gets the answer.
#[test]
fn half_closed_requests_are_answered() {
    let server = Server::start("");
    for n in 0..200 {
        let mut stream = TcpStream::connect(server.api).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let request = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Length: 2\r\n\r\n{{}}",
            server.api
        );
        stream.write_all(request.as_bytes()).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        assert!(
            answer.starts_with(b"HTTP/1.1 400"),
            "request {n} got {:?}",
            String::from_utf8_lossy(&answer)
        );
    }
}

#[tokio::test]
async fn the_data_dir_is_private() {
    let server = Server::start("");
    push(&server).await.unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let data = &server.data_dir;
    assert_eq!(mode(data), 0o700);
    assert_eq!(mode(&data.join("keys")), 0o700);
    let segments: Vec<_> = std::fs::read_dir(data.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!segments.is_empty());
    for path in segments
        .iter()
        .chain([data.join("audit.log"), data.join("credentials.key")].iter())
    {
        assert_eq!(mode(path), 0o600, "{}", path.display());
    }
}

fn eic(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_eic"))
        .args(args)
        .output()
        .unwrap()
}

/// A command pointed at a directory no server initialised refuses it and
/// creates nothing there (it used to make a new host key or credentials
/// key, whose fingerprint or tokens the running server did not know).
#[test]
fn commands_refuse_a_data_dir_no_server_initialised() {
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().to_str().unwrap();
    let config = repo_root().join("examples/dev.toml");
    let config = config.to_str().unwrap();
    let commands: Vec<Vec<&str>> = vec![
        vec!["serial-host-key", "--config", config, "--data-dir", dir],
        vec![
            "credentials",
            "issue",
            "--config",
            config,
            "--data-dir",
            dir,
            "--principal",
            "arn:aws:iam::111122223333:user/admin",
        ],
        vec![
            "agent-config",
            "--config",
            config,
            "--data-dir",
            dir,
            "--instance-id",
            "i-abcd1234",
        ],
        vec![
            "instance-credential",
            "rotate",
            "--config",
            config,
            "--data-dir",
            dir,
            "--instance-id",
            "i-abcd1234",
        ],
        vec![
            "serial-console-access",
            "disable",
            "--config",
            config,
            "--data-dir",
            dir,
            "--account",
            "111122223333",
        ],
        vec!["keys", "list", "--data-dir", dir],
    ];
    for args in &commands {
        let out = eic(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr.contains(dir) && stderr.contains("--data-dir"),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", out.stdout);
        assert_eq!(
            std::fs::read_dir(empty.path()).unwrap().count(),
            0,
            "{args:?} created state"
        );
    }
    // With the server's own data dir, the same commands work.
    let server = Server::start("");
    let data = server.data_dir.to_str().unwrap();
    let out = eic(&["serial-host-key", "--config", config, "--data-dir", data]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("SHA256:"));
}

/// A server whose port is taken fails before writing anything.
#[test]
fn a_server_that_cannot_bind_leaves_no_state() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let config = repo_root().join("examples/dev.toml");
    let out = eic(&[
        "server",
        "--config",
        config.to_str().unwrap(),
        "--api-listen",
        &port,
        "--instance-api-listen",
        "127.0.0.1:0",
        "--serial-listen",
        "127.0.0.1:0",
        "--tunnel-listen",
        "127.0.0.1:0",
        "--diagnostics-listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&port), "{stderr}");
    assert!(!data.exists(), "the data dir was created");
}

#[test]
fn a_missing_config_is_named() {
    let out = eic(&["server", "--config", "/nonexistent/eic.toml"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/eic.toml"), "{stderr}");
    assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");
}

/// The adversarial run's case: 600 plain TCP connections to the serial
/// gateway under a 1,024-descriptor limit made pushes and key fetches fail
/// with "Too many open files". Now the gateway's cap (lowered at start to
/// fit the limit) keeps the rest in the kernel's backlog.
#[tokio::test]
async fn serial_connections_cannot_starve_the_other_listeners() {
    let server = Server::start_through(
        &["prlimit", "--nofile=1024:1024"],
        &[(
            "teardown_secs = 30",
            "teardown_secs = 30\nmax_connections_per_source = 1000",
        )],
        "",
    );
    let held: Vec<TcpStream> = (0..600)
        .map(|_| TcpStream::connect(server.serial).unwrap())
        .collect();
    // The first ones are served (after the client's identification line,
    // the gateway's arrives) and hold their descriptors; the last waits in
    // the backlog.
    let banner = |stream: &TcpStream, wait: Duration| {
        (&*stream).write_all(b"SSH-2.0-flood\r\n").unwrap();
        stream.set_read_timeout(Some(wait)).unwrap();
        let mut banner = [0u8; 4];
        (&*stream).read_exact(&mut banner).is_ok() && &banner == b"SSH-"
    };
    for stream in &held[..16] {
        assert!(banner(stream, Duration::from_secs(10)));
    }
    assert!(
        !banner(&held[599], Duration::from_millis(500)),
        "all 600 connections were served at once"
    );
    push(&server)
        .await
        .expect("a push while the gateway is flooded");
    let mut stream = TcpStream::connect(server.instance_api).unwrap();
    let request = format!(
        "GET /eic/v1/authorized-keys/ec2-user HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.instance_api
    );
    // No credential: refused with 401, but answered.
    assert_eq!(
        http_exchange(&mut stream, request.as_bytes()).unwrap().0,
        401
    );
    drop(held);
}

#[test]
fn caps_that_cannot_fit_the_descriptor_limit_refuse_the_start() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("eic.toml");
    let dev = std::fs::read_to_string(repo_root().join("examples/dev.toml")).unwrap();
    std::fs::write(
        &config,
        dev.replace("[api]\n", "[api]\nmax_connections = 5000\n"),
    )
    .unwrap();
    let out = Command::new("prlimit")
        .args([
            "--nofile=1024:1024",
            env!("CARGO_BIN_EXE_eic"),
            "server",
            "--config",
        ])
        .arg(&config)
        .args(common::FREE_PORTS)
        .args(common::FREE_TUNNEL_PORT)
        .arg("--data-dir")
        .arg(root.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("RLIMIT_NOFILE allows 1024"), "{stderr}");
}
