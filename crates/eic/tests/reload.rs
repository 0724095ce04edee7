//! Reloading the configuration of a running server (SIGHUP and `eic
//! reload`) against the AWS SDK for Rust: a principal added to the file
//! pushes without a restart while pushes already under way all succeed; a
//! removed one is refused; a file that does not load, or that changes what
//! needs a restart, is refused, said so, audited and counted, and the old
//! configuration keeps serving.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{eic, sdk_client, Server, ADMIN, ALICE, ED25519_KEY, NO_THROTTLING};

const CAROL: (&str, &str) = (
    "AKIDCAROLEXAMPLE",
    "carolSecretKey/EXAMPLE000000000000000000",
);

const CAROL_BLOCK: &str = r#"
[[principals]]
arn = "arn:aws:iam::111122223333:user/carol"
access_keys = [{ id = "AKIDCAROLEXAMPLE", secret = "carolSecretKey/EXAMPLE000000000000000000" }]
policies = ['''
{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2-instance-connect:SendSSHPublicKey", "Resource": "arn:aws:ec2:*:111122223333:instance/*"}]}
''']
"#;

/// The error code of a push by `creds`, or `None` when it succeeded.
async fn push(client: &aws_sdk_ec2instanceconnect::Client) -> Option<String> {
    match client
        .send_ssh_public_key()
        .instance_id("i-abcd1234")
        .instance_os_user("ec2-user")
        .ssh_public_key(ED25519_KEY)
        .send()
        .await
    {
        Ok(out) => {
            assert!(out.success);
            None
        }
        Err(e) => Some(
            e.into_service_error()
                .meta()
                .code()
                .unwrap_or("no code")
                .to_owned(),
        ),
    }
}

fn reload(server: &Server) -> (i32, String, String) {
    eic(&[
        "reload",
        "--config",
        server.config.to_str().unwrap(),
        "--data-dir",
        server.data_dir.to_str().unwrap(),
    ])
}

fn metrics(server: &Server) -> String {
    let mut stream = std::net::TcpStream::connect(server.diagnostics).unwrap();
    let request = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (status, _, body) = common::http_exchange(&mut stream, request.as_bytes()).unwrap();
    assert_eq!(status, 200);
    String::from_utf8(body).unwrap()
}

fn reload_events(server: &Server) -> Vec<serde_json::Value> {
    std::fs::read_to_string(server.data_dir.join("audit.log"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["eventName"] == "ReloadConfiguration")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_added_to_the_file_pushes_after_a_reload_and_pushes_under_way_succeed() {
    let server = Server::start(NO_THROTTLING);
    let carol = sdk_client(&server, CAROL);
    let alice = sdk_client(&server, ALICE);
    assert_eq!(
        push(&carol).await.as_deref(),
        Some("UnrecognizedClientException")
    );
    assert_eq!(push(&alice).await, None);

    // Four callers push as admin, a bounded number each, across the reload.
    const EACH: usize = 150;
    let done = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..4 {
        let client = sdk_client(&server, ADMIN);
        let done = done.clone();
        load.push(tokio::spawn(async move {
            let mut refused = Vec::new();
            for _ in 0..EACH {
                if let Some(code) = push(&client).await {
                    refused.push(code);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            refused
        }));
    }
    while done.load(Ordering::Relaxed) < 40 {
        tokio::task::yield_now().await;
    }

    // Carol in, alice out (her block is cut from the file).
    let text = std::fs::read_to_string(&server.config).unwrap();
    let start = text
        .find("[[principals]]\narn = \"arn:aws:iam::111122223333:user/alice\"")
        .unwrap();
    let end = start + text[start..].find("\n[[principals]]").unwrap();
    let edited = format!("{}{}\n{CAROL_BLOCK}", &text[..start], &text[end + 1..]);
    std::fs::write(&server.config, edited).unwrap();
    let at_reload = done.load(Ordering::Relaxed);
    let (code, out, err) = tokio::task::spawn_blocking({
        let config = server.config.clone();
        let data_dir = server.data_dir.clone();
        move || {
            eic(&[
                "reload",
                "--config",
                config.to_str().unwrap(),
                "--data-dir",
                data_dir.to_str().unwrap(),
            ])
        }
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("reloaded"), "{out}");
    let after_reload = done.load(Ordering::Relaxed);

    assert_eq!(push(&carol).await, None);
    assert_eq!(
        push(&alice).await.as_deref(),
        Some("UnrecognizedClientException")
    );
    for task in load {
        assert_eq!(task.await.unwrap(), Vec::<String>::new());
    }
    assert!(
        at_reload < 4 * EACH && after_reload < 4 * EACH,
        "the reload did not happen while pushes were under way ({at_reload}, {after_reload})"
    );

    let metrics = metrics(&server);
    assert!(
        metrics.contains("eic_config_reloads_total{result=\"applied\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("eic_config_last_reload_successful 1"));
    let events = reload_events(&server);
    assert_eq!(events.len(), 1, "{events:?}");
    let changes = &events[0]["responseElements"];
    assert_eq!(
        changes["principals"]["added"],
        serde_json::json!(["arn:aws:iam::111122223333:user/carol"])
    );
    assert_eq!(
        changes["principals"]["removed"],
        serde_json::json!(["arn:aws:iam::111122223333:user/alice"])
    );
    assert!(events[0].get("errorCode").is_none());
    assert!(!events[0].to_string().contains(CAROL.1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_does_not_load_or_needs_a_restart_is_refused_and_the_old_one_serves() {
    let server = Server::start("");
    let admin = sdk_client(&server, ADMIN);
    let original = std::fs::read_to_string(&server.config).unwrap();

    // Not TOML: `eic reload` says so and sends nothing.
    std::fs::write(&server.config, format!("{original}\n[[principals]\n")).unwrap();
    let (code, out, err) = reload(&server);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("nothing was sent"), "{err}");

    // The same file through a bare SIGHUP (as systemd's ExecReload sends
    // it): the server refuses it and keeps serving.
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = server
        .data_dir
        .join(format!("servers/{}.json", server.pid()));
    common::wait_until(10, "the server's answer to SIGHUP", || {
        std::fs::read_to_string(&status).is_ok_and(|s| s.contains("\"refused\""))
    });
    assert_eq!(push(&admin).await, None);
    let metrics_text = metrics(&server);
    assert!(
        metrics_text.contains("eic_config_reloads_total{result=\"refused\"} 1"),
        "{metrics_text}"
    );
    assert!(metrics_text.contains("eic_config_last_reload_successful 0"));

    // A new principal beside a changed [fleet]: refused whole, naming the
    // section, so the new principal is not taken either.
    std::fs::write(
        &server.config,
        format!("{original}\n{CAROL_BLOCK}\n[fleet]\nheartbeat_secs = 10\n"),
    )
    .unwrap();
    let (code, out, err) = reload(&server);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("[fleet] cannot change without a restart"),
        "{err}"
    );
    let carol = sdk_client(&server, CAROL);
    assert_eq!(
        push(&carol).await.as_deref(),
        Some("UnrecognizedClientException")
    );
    assert_eq!(push(&admin).await, None);

    let events = reload_events(&server);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events
        .iter()
        .all(|e| e["errorCode"] == "ConfigurationRefused"));

    // And without the restart-only change, it is taken.
    std::fs::write(&server.config, format!("{original}\n{CAROL_BLOCK}")).unwrap();
    let (code, out, err) = reload(&server);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(push(&carol).await, None);
    assert!(metrics(&server).contains("eic_config_last_reload_successful 1"));
}

/// One data dir serves one server: a second on it is refused, and once
/// none runs `eic reload` says so instead of signalling a stale pid.
#[test]
fn a_data_dir_holds_one_server_and_reload_needs_a_running_one() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_in(data.path(), "");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eic"))
        .args(["server", "--config"])
        .arg(&server.config)
        .args(common::FREE_PORTS)
        .args(common::FREE_TUNNEL_PORT)
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "running eic server (pid {}) with an embedded store",
            server.pid()
        )),
        "{err}"
    );
    let config = server.config.clone();
    let copy = data.path().join("eic.toml");
    std::fs::copy(&config, &copy).unwrap();
    assert_eq!(server.terminate().code(), Some(0));
    let (code, _, err) = eic(&[
        "reload",
        "--config",
        copy.to_str().unwrap(),
        "--data-dir",
        data.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("no eic server is running"), "{err}");
}

/// Two nodes on one Redis sharing a data dir: `eic reload` reaches both,
/// and the principal it adds pushes through either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eic_reload_reaches_every_node_on_the_data_dir() {
    use common::redis::RedisServer;
    let redis = RedisServer::start();
    let data = tempfile::tempdir().unwrap();
    let args = ["--store-url", &redis.url()];
    let a = Server::start_full(data.path(), &[], "", &args);
    let b = Server::start_full(data.path(), &[], "", &args);
    for node in [&a, &b] {
        let text = std::fs::read_to_string(&node.config).unwrap();
        std::fs::write(&node.config, format!("{text}\n{CAROL_BLOCK}")).unwrap();
    }
    let (code, out, err) = reload(&a);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches("reloaded: server pid").count(), 2, "{out}");
    assert!(out.contains(&format!("pid {}", a.pid())) && out.contains(&format!("pid {}", b.pid())));
    for node in [&a, &b] {
        assert_eq!(push(&sdk_client(node, CAROL)).await, None);
    }
}
