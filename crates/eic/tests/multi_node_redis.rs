//! Two `eic server` nodes sharing real redis-server processes (standalone,
//! a three-master cluster): a push on one node is served through the other,
//! to `eic authorized-keys` and to a real sshd; throttling buckets, serial
//! session locks and runtime settings are shared; Redis outages, restarts
//! and a node's death behave as ARCHITECTURE.md states.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::redis::{cluster_url, free_port, Cluster, RedisServer, SentinelGroup};
use common::serial::{console_backend, ssh_serial};
use common::sshd::{ssh, start_sshd, RootDir};
use common::{eic, push_with_boto3, ssh_keygen, try_push_with_boto3, wait_until, Server};

const SHARED_BUCKETS: &str = r#"
[throttling]
principal = { rate = 0.05, burst = 4.0 }
"#;

/// A node on the store at `url`. Nodes share the data dir's key material
/// (CA, credential keys); keys, buckets, locks and settings live in Redis.
fn node(data: &Path, url: &str, replace: &[(&str, &str)], extra: &str) -> Server {
    Server::start_full(data, replace, extra, &["--store-url", url])
}

/// `GET /ready`'s status, 0 when nothing answers.
fn ready(node: &Server) -> u16 {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    agent
        .get(&format!("{}/ready", node.endpoint()))
        .call()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// `eic <args> --config <node's> --data-dir <node's> --store-url <url>`,
/// as an operator runs a command against a multi-node service.
fn command(node: &Server, url: &str, args: &[&str]) -> (i32, String, String) {
    let mut all: Vec<&str> = args.to_vec();
    all.extend([
        "--config",
        node.config.to_str().unwrap(),
        "--data-dir",
        node.data_dir.to_str().unwrap(),
        "--store-url",
        url,
    ]);
    eic(&all)
}

/// An agent config for `instance` that fetches through `node`, written to
/// `dir/agent.toml` (readable by sshd's AuthorizedKeysCommandUser).
fn agent_config(
    node: &Server,
    url: &str,
    instance: &str,
    dir: &Path,
) -> (std::path::PathBuf, String) {
    let endpoint = format!("http://{}", node.instance_api);
    let (code, agent, err) = command(
        node,
        url,
        &[
            "agent-config",
            "--instance-id",
            instance,
            "--endpoint",
            &endpoint,
        ],
    );
    assert_eq!(code, 0, "{err}");
    let path = dir.join("agent.toml");
    std::fs::write(&path, &agent).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    (path, agent)
}

fn authorized_keys(agent: &Path, user: &str) -> (i32, String) {
    let (code, out, _) = eic(&["authorized-keys", "--config", agent.to_str().unwrap(), user]);
    (code, out)
}

#[test]
fn two_nodes_share_keys_buckets_and_outages() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let data = tempfile::tempdir().unwrap();
    let a = node(data.path(), &url, &[], SHARED_BUCKETS);
    let b = node(data.path(), &url, &[], SHARED_BUCKETS);
    assert_eq!((ready(&a), ready(&b)), (200, 200));

    let keys = tempfile::tempdir().unwrap();
    let key = ssh_keygen(keys.path(), "multi");
    let public = key.with_extension("pub");
    push_with_boto3(&a, "i-abcd1234", "ec2-user", &public);

    // The instance asks node B for what was pushed through node A.
    let (agent, _) = agent_config(&b, &url, "i-abcd1234", keys.path());
    assert_eq!(
        authorized_keys(&agent, "ec2-user"),
        (0, std::fs::read_to_string(&public).unwrap())
    );

    // One bucket per principal across nodes: 4 tokens, one already spent.
    for _ in 0..3 {
        push_with_boto3(&a, "i-abcd1234", "ec2-user", &public);
    }
    assert_eq!(
        try_push_with_boto3(&b, "i-abcd1234", "ec2-user", &public),
        Err("ThrottlingException".into())
    );

    // Redis gone: a 500 ServiceException (which SDKs retry), no crash; back
    // by itself when Redis is.
    redis.stop();
    assert_eq!(ready(&a), 503);
    assert_eq!(
        try_push_with_boto3(&a, "i-0123456789abcdef0", "ec2-user", &public),
        Err("ServiceException".into())
    );
    redis.spawn();
    // Within the 20 s the emptied bucket takes to give a token back.
    wait_until(60, "node B to serve again", || {
        try_push_with_boto3(&b, "i-0123456789abcdef0", "ec2-user", &public).is_ok()
    });
}

#[test]
fn ssh_login_through_the_other_node_and_revocation_from_any_node() {
    let redis = RedisServer::start();
    let url = redis.url();
    let data = tempfile::tempdir().unwrap();
    let a = node(data.path(), &url, &[], "");
    let b = node(data.path(), &url, &[], "");
    let dir = RootDir::new("multi-node-sshd");
    // sshd's AuthorizedKeysCommand fetches through node B.
    let (agent, agent_toml) = agent_config(&b, &url, "i-abcd1234", &dir.0);
    let (_sshd, port) = start_sshd(&dir.0, &agent);

    let keys = tempfile::tempdir().unwrap();
    let key = ssh_keygen(keys.path(), "login");
    push_with_boto3(&a, "i-abcd1234", "root", &key.with_extension("pub"));
    let (code, out) = ssh(port, &key, "root");
    assert_eq!((code, out.trim()), (0, "logged-in-as-root"));

    // Revoked through node A's configuration: node B refuses the
    // instance's credential (within a second of Redis acknowledging it).
    let (code, _, err) = command(
        &a,
        &url,
        &[
            "instance-credential",
            "revoke",
            "--instance-id",
            "i-abcd1234",
        ],
    );
    assert_eq!(code, 0, "{err}");
    wait_until(10, "node B to refuse the revoked credential", || {
        authorized_keys(&agent, "root") == (1, String::new())
    });
    assert_eq!(ssh(port, &key, "root").0, 255);

    // Rotated: the new credential works through B, and agent-config (which
    // reads the generation from Redis too) prints that same credential.
    let (code, rotated, err) = command(
        &a,
        &url,
        &[
            "instance-credential",
            "rotate",
            "--instance-id",
            "i-abcd1234",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (_, reissued) = agent_config(&b, &url, "i-abcd1234", keys.path());
    assert!(reissued.contains(rotated.trim()), "{reissued}");
    let old = toml::from_str::<toml::Value>(&agent_toml).unwrap()["credential"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(&agent, agent_toml.replace(&old, rotated.trim())).unwrap();
    wait_until(10, "node B to accept the rotated credential", || {
        authorized_keys(&agent, "root").0 == 0
    });
    let (code, out) = ssh(port, &key, "root");
    assert_eq!((code, out.trim()), (0, "logged-in-as-root"));
}

#[test]
fn serial_session_on_one_node_holds_the_port_on_all_until_that_node_dies() {
    const LEASE: Duration = Duration::from_secs(2);
    let (_socat, console) = console_backend();
    let redis = RedisServer::start();
    let url = redis.url();
    let data = tempfile::tempdir().unwrap();
    let replace = [
        ("127.0.0.1:7000", console.as_str()),
        (
            "teardown_secs = 30",
            "teardown_secs = 30\nsession_lease_secs = 2",
        ),
    ];
    let a = node(data.path(), &url, &replace, "");
    let b = node(data.path(), &url, &replace, "");
    let keys = tempfile::tempdir().unwrap();
    let key = ssh_keygen(keys.path(), "serial");
    let public = key.with_extension("pub");
    let ops = "i-0123456789abcdef0";

    // Serial console access, turned off and on again through node A's
    // configuration, holds on node B.
    let access = |verb: &str| {
        command(
            &a,
            &url,
            &["serial-console-access", verb, "--account", "111122223333"],
        )
    };
    let (code, out, err) = access("disable");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("\"SerialConsoleAccessEnabled\":false"),
        "{out}"
    );
    wait_until(10, "node B to refuse serial pushes", || {
        try_push_with_boto3(&b, ops, "--serial", &public)
            == Err("SerialConsoleAccessDisabledException".into())
    });
    assert!(access("status").1.contains("false"));
    assert!(access("enable").1.contains("true"));
    wait_until(10, "node B to take serial pushes", || {
        try_push_with_boto3(&b, ops, "--serial", &public).is_ok()
    });

    // A session through node A's gateway…
    let mut session = ssh_serial(&a, &key, ops);
    session.stdin.write_all(b"echo serial-$((6*7))\n").unwrap();
    assert!(session.expect("serial-42"), "no answer from the console");
    // …holds the port for the whole service.
    assert_eq!(
        try_push_with_boto3(&b, ops, "--serial", &public),
        Err("SerialConsoleSessionLimitExceededException".into())
    );
    let second = ssh_serial(&b, &key, ops);
    assert!(second.expect("already has an active serial console session"));

    // Node A dies mid-session: nobody renews its lease, so the port frees
    // within the lease (no teardown: nobody ended the session).
    a.kill9();
    let died = Instant::now();
    // Well under the default 15 s lease: the configured lease frees it.
    wait_until(
        LEASE.as_secs() + 5,
        "the dead node's lease to lapse",
        || try_push_with_boto3(&b, ops, "--serial", &public).is_ok(),
    );
    eprintln!("port free {:?} after the node died", died.elapsed());
    drop(session);
    let mut again = ssh_serial(&b, &key, ops);
    again.stdin.write_all(b"echo again-$((6*7))\n").unwrap();
    assert!(again.expect("again-42"), "no session through node B");
}

#[test]
fn two_nodes_on_a_three_master_cluster() {
    let cluster = Cluster::start();
    let url = cluster.url();
    let data = tempfile::tempdir().unwrap();
    let a = node(data.path(), &url, &[], "");
    let b = node(data.path(), &url, &[], "");
    let keys = tempfile::tempdir().unwrap();
    let key = ssh_keygen(keys.path(), "cluster");
    let public = key.with_extension("pub");
    push_with_boto3(&a, "i-abcd1234", "ec2-user", &public);
    let (agent, _) = agent_config(&b, &url, "i-abcd1234", keys.path());
    assert_eq!(
        authorized_keys(&agent, "ec2-user"),
        (0, std::fs::read_to_string(&public).unwrap())
    );
    // Runtime settings through the cluster too.
    let (code, _, err) = command(
        &a,
        &url,
        &[
            "serial-console-access",
            "disable",
            "--account",
            "111122223333",
        ],
    );
    assert_eq!(code, 0, "{err}");
    wait_until(10, "node B to refuse serial pushes", || {
        try_push_with_boto3(&b, "i-0123456789abcdef0", "--serial", &public)
            == Err("SerialConsoleAccessDisabledException".into())
    });
}

#[test]
fn acknowledged_pushes_survive_redis_kill9_with_appendfsync_always() {
    let mut redis = RedisServer::start_with(
        free_port(),
        ["--appendonly", "yes", "--appendfsync", "always"]
            .map(String::from)
            .to_vec(),
    );
    let url = redis.url();
    let data = tempfile::tempdir().unwrap();
    let a = node(data.path(), &url, &[], "");
    let keys = tempfile::tempdir().unwrap();
    let mut expected = String::new();
    for n in 0..3 {
        let key = ssh_keygen(keys.path(), &format!("aof-{n}"));
        push_with_boto3(&a, "i-abcd1234", "ec2-user", &key.with_extension("pub"));
        expected += &std::fs::read_to_string(key.with_extension("pub")).unwrap();
    }
    // SIGKILL right after the last 200: nothing gets to flush on its way
    // out; Redis restarts on the same dir and replays its AOF.
    redis.stop();
    redis.spawn();
    wait_until(30, "the node to be ready again", || ready(&a) == 200);
    let (agent, _) = agent_config(&a, &url, "i-abcd1234", keys.path());
    assert_eq!(authorized_keys(&agent, "ec2-user"), (0, expected));
}

#[test]
fn nodes_started_while_redis_is_down_serve_once_it_is_up() {
    let port = free_port();
    let cluster_ports = [free_port(), free_port(), free_port()];
    let data = tempfile::tempdir().unwrap();
    let standalone = node(data.path(), &format!("redis://127.0.0.1:{port}"), &[], "");
    let clustered = node(data.path(), &cluster_url(&cluster_ports), &[], "");
    let keys = tempfile::tempdir().unwrap();
    let public = ssh_keygen(keys.path(), "early").with_extension("pub");
    for node in [&standalone, &clustered] {
        assert_eq!(ready(node), 503);
        assert_eq!(
            try_push_with_boto3(node, "i-abcd1234", "ec2-user", &public),
            Err("ServiceException".into())
        );
    }
    let _redis = RedisServer::start_with(port, Vec::new());
    let _cluster = Cluster::start_on(cluster_ports);
    for node in [&standalone, &clustered] {
        wait_until(30, "the node to become ready", || ready(node) == 200);
        push_with_boto3(node, "i-abcd1234", "ec2-user", &public);
    }
}

#[test]
fn nodes_on_sentinel_follow_a_failover() {
    let mut group = SentinelGroup::start();
    let url = group.url();
    let data = tempfile::tempdir().unwrap();
    let a = node(data.path(), &url, &[], "");
    let b = node(data.path(), &url, &[], "");
    let keys = tempfile::tempdir().unwrap();
    let before = ssh_keygen(keys.path(), "before").with_extension("pub");
    let after = ssh_keygen(keys.path(), "after").with_extension("pub");
    push_with_boto3(&a, "i-abcd1234", "ec2-user", &before);
    // Known to be on the replica when the primary dies (eic itself does not
    // wait for replication: ARCHITECTURE.md).
    assert_eq!(group.primary.cli(&["WAIT", "1", "5000"]), "1");
    let replica = group.replica.port.to_string();
    group.primary.stop();
    wait_until(60, "node B to take pushes after the failover", || {
        try_push_with_boto3(&b, "i-abcd1234", "ec2-user", &after).is_ok()
    });
    assert_eq!(group.master_port(), replica);
    let (agent, _) = agent_config(&a, &url, "i-abcd1234", keys.path());
    let expected =
        std::fs::read_to_string(&before).unwrap() + &std::fs::read_to_string(&after).unwrap();
    // Node A reconnects on its own schedule (its next call after the
    // failover finds the new master).
    let t = Instant::now();
    wait_until(30, "node A to serve both keys", || {
        authorized_keys(&agent, "ec2-user") == (0, expected.clone())
    });
    eprintln!("node A served again {:?} after node B", t.elapsed());
}

#[test]
fn a_machine_joins_through_node_b_and_is_seen_by_node_a() {
    const FLEET: &str = "[fleet]\nheartbeat_secs = 1\nunavailable_after_secs = 3\n";
    const TLS_AUTO: (&str, &str) = ("[instance_api]\n", "[instance_api]\ntls = \"auto\"\n");
    let redis = RedisServer::start();
    let url = redis.url();
    let data = tempfile::tempdir().unwrap();
    let a = node(data.path(), &url, &[TLS_AUTO], FLEET);
    let b = node(data.path(), &url, &[TLS_AUTO], FLEET);

    let (code, token, err) = command(
        &a,
        &url,
        &[
            "join-token",
            "create",
            "--account",
            "111122223333",
            "--tag",
            "site=lab",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let machine = tempfile::tempdir().unwrap();
    let host_keys = machine.path().join("ssh");
    std::fs::create_dir(&host_keys).unwrap();
    assert!(std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(host_keys.join("ssh_host_ed25519_key"))
        .status()
        .unwrap()
        .success());
    let config = machine.path().join("agent.toml");
    let (code, id, err) = eic(&[
        "agent",
        "join",
        "--server",
        &format!("https://{}", b.instance_api),
        "--token",
        token.trim(),
        "--config-out",
        config.to_str().unwrap(),
        "--private-ip",
        "127.0.0.1",
        "--ssh-host-key-dir",
        host_keys.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let id = id.trim().to_owned();

    // Pushed through node A, served through node B to the joined machine.
    let keys = tempfile::tempdir().unwrap();
    let key = ssh_keygen(keys.path(), "joined");
    let public = key.with_extension("pub");
    wait_until(10, "node A to see the enrollment", || {
        try_push_with_boto3(&a, &id, "ec2-user", &public).is_ok()
    });
    assert_eq!(
        authorized_keys(&config, "ec2-user"),
        (0, std::fs::read_to_string(&public).unwrap())
    );

    // Heartbeats to node B keep it available on node A; stopped, node A
    // turns it connection-lost, and back when they resume.
    let agent = std::process::Command::new(env!("CARGO_BIN_EXE_eic"))
        .args(["agent", "run", "--config"])
        .arg(&config)
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let agent = Kill(agent);
    let signal = |name: &str| {
        assert!(std::process::Command::new("kill")
            .args([&format!("-{name}"), &agent.0.id().to_string()])
            .status()
            .unwrap()
            .success());
    };
    signal("STOP");
    wait_until(20, "node A to see it connection-lost", || {
        try_push_with_boto3(&a, &id, "ec2-user", &public)
            == Err("EC2InstanceUnavailableException".into())
    });
    let (code, shown, err) = command(&a, &url, &["instances", "show", &id]);
    assert_eq!(code, 0, "{err}");
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["state"], "connection-lost");
    assert_eq!(shown["tags"]["site"], "lab");
    signal("CONT");
    wait_until(20, "available again on node A", || {
        try_push_with_boto3(&a, &id, "ec2-user", &public).is_ok()
    });

    // Removed through node B's command: node A refuses pushes at once.
    let (code, _, err) = command(&b, &url, &["instances", "remove", &id]);
    assert_eq!(code, 0, "{err}");
    wait_until(10, "node A to see the removal", || {
        try_push_with_boto3(&a, &id, "ec2-user", &public)
            == Err("EC2InstanceStateInvalidException".into())
    });
    assert_ne!(authorized_keys(&config, "ec2-user").0, 0);
}

#[test]
fn a_console_session_signed_in_on_one_node_holds_and_ends_on_the_other() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let data = tempfile::tempdir().unwrap();
    let a = node(data.path(), &url, &[], "");
    let b = node(data.path(), &url, &[], "");
    let token = console_link(&a, "arn:aws:iam::111122223333:user/admin");
    let agent = console_agent();
    let origin = |n: &Server| format!("http://{}", n.console);

    let signed_in = redeem(&a, &token);
    assert_eq!(signed_in.status().as_u16(), 303);
    // The link's one use was spent for every node.
    let mut again = redeem(&b, &token);
    assert_eq!(again.status().as_u16(), 403);
    assert!(again
        .body_mut()
        .read_to_string()
        .unwrap()
        .contains("used already"));
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = |n: &Server| {
        agent
            .get(&format!("{}/", origin(n)))
            .header("Cookie", &cookie)
            .call()
            .unwrap()
    };

    // Node B knows the session node A signed in.
    let mut list = page(&b);
    assert_eq!(list.status().as_u16(), 200);
    let html = list.body_mut().read_to_string().unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();

    // Signed out on B, the session is gone on A too.
    let signed_out = agent
        .post(&format!("{}/signout", origin(&b)))
        .header("Origin", &origin(&b))
        .header("Cookie", &cookie)
        .content_type("application/x-www-form-urlencoded")
        .send(format!("csrf={csrf}"))
        .unwrap();
    assert_eq!(signed_out.status().as_u16(), 303);
    assert_eq!(page(&a).status().as_u16(), 401);
    assert_eq!(page(&b).status().as_u16(), 401);

    // Redis holds the session under its cookie's digest, never the cookie.
    let keys = redis.cli(&["KEYS", "eic:{console-session:*"]);
    assert!(!keys.contains(cookie.split_once('=').unwrap().1), "{keys}");

    // With Redis down, a page is refused (503), not served without a session.
    redis.stop();
    assert_eq!(page(&a).status().as_u16(), 503);
}

/// The token of a sign-in link for `principal`.
fn console_link(node: &Server, principal: &str) -> String {
    let (code, link, err) = node.admin(&["console-url", "--principal", principal]);
    assert_eq!(code, 0, "{err}");
    link.trim().split_once("token=").unwrap().1.to_owned()
}

/// An HTTP client that shows the console's statuses and redirects as they are.
fn console_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .new_agent()
}

/// The sign-in button's POST of `token` on `node`, from its own origin.
fn redeem(node: &Server, token: &str) -> ureq::http::Response<ureq::Body> {
    let origin = format!("http://{}", node.console);
    console_agent()
        .post(&format!("{origin}/signin"))
        .header("Origin", &origin)
        .content_type("application/x-www-form-urlencoded")
        .send(format!("token={token}"))
        .unwrap()
}

/// Signs `principal` in on `node`'s console: the session cookie and the
/// CSRF token of its pages.
fn console_session(node: &Server, principal: &str) -> (String, String) {
    let signed_in = redeem(node, &console_link(node, principal));
    assert_eq!(signed_in.status().as_u16(), 303);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let html = console_page(node, &cookie);
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    (cookie, csrf)
}

/// The console's instance list, as the signed-in principal sees it.
fn console_page(node: &Server, cookie: &str) -> String {
    let mut page = ureq::get(&format!("http://{}/", node.console))
        .header("Cookie", cookie)
        .call()
        .unwrap();
    page.body_mut().read_to_string().unwrap()
}

type Terminal = tokio_tungstenite::tungstenite::WebSocket<std::net::TcpStream>;

/// A terminal's WebSocket on `node`'s console, as the page opens it.
fn console_terminal(
    node: &Server,
    session: &(String, String),
    instance: &str,
    user: &str,
) -> Terminal {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let (cookie, csrf) = session;
    let url = format!(
        "ws://{}/ws/ssh/{instance}?user={user}&csrf={csrf}",
        node.console
    );
    let mut request = url.into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("Cookie", cookie.parse().unwrap());
    headers.insert(
        "Origin",
        format!("http://{}", node.console).parse().unwrap(),
    );
    let stream = std::net::TcpStream::connect(node.console).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    tokio_tungstenite::tungstenite::client::client(request, stream)
        .unwrap()
        .0
}

/// The terminal's next control message (a JSON text frame), skipping output.
fn console_control(terminal: &mut Terminal) -> serde_json::Value {
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match terminal.read().unwrap() {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(frame) => panic!("closed before a control message: {frame:?}"),
            _ => {}
        }
    }
}

/// The instance has no way from node A but node B's Instance Connect
/// Endpoint (its VPC has one, so the console's `route = "auto"` takes it):
/// the terminal on A reaches sshd through B's tunnel listener, which
/// authorizes and audits OpenTunnel as the signed-in principal. A principal
/// without OpenTunnel is told why on the list, and refused by B.
#[test]
fn a_console_terminal_goes_through_the_other_nodes_endpoint() {
    use tokio_tungstenite::tungstenite::Message;
    const INSTANCE: &str = "i-0c05000000000e1c1";
    const ENDPOINT: &str = "eice-0de00000000000001";
    const ENDPOINT_IP: &str = "127.0.61.1";
    let redis = RedisServer::start();
    let url = redis.url();
    let data = tempfile::tempdir().unwrap();
    let dir = RootDir::new("console-through-endpoint");
    let agent = dir.0.join("agent.toml");
    let (_sshd, port) = start_sshd(&dir.0, &agent);
    let host_key = std::fs::read_to_string(dir.0.join("host_ed25519.pub")).unwrap();
    // Tagged so that alice may push to it as ec2-user, but she has no
    // OpenTunnel.
    let instance = format!(
        r#"
[[instances]]
id = "{INSTANCE}"
private_ip_address = "127.0.0.1"
ssh_port = {port}
host_keys = ["{host_key}"]
vpc_id = "vpc-0de00000000000001"
subnet_id = "subnet-0de00000000000001"
account = "111122223333"
state = "running"
availability_zone = "us-west-2a"
instance_type = "t3.micro"
tags = {{ Team = "dev" }}
"#,
        host_key = host_key.trim()
    );
    let endpoint = format!("dns_name = \"{ENDPOINT_IP}\"\nallowed_ports = [{port}]");
    let replace = [("dns_name = \"localhost\"", endpoint.as_str())];
    let a = node(data.path(), &url, &replace, &instance);
    let b = Server::start_full(
        data.path(),
        &replace,
        &instance,
        &[
            "--store-url",
            &url,
            "--tunnel-listen",
            &format!("{ENDPOINT_IP}:443"),
        ],
    );
    assert_ne!(a.tunnel.ip().to_string(), ENDPOINT_IP);
    agent_config(&a, &url, INSTANCE, &dir.0);

    let admin = console_session(&a, "arn:aws:iam::111122223333:user/admin");
    let mut terminal = console_terminal(&a, &admin, INSTANCE, "root");
    let ready = console_control(&mut terminal);
    assert_eq!(ready["type"], "ready", "{ready}");
    terminal
        .send(Message::binary(&b"stty -echo; echo through-$((6*7))\r"[..]))
        .unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("through-42") {
        match terminal.read().unwrap() {
            Message::Binary(data) => seen.extend_from_slice(&data),
            other => panic!("before the output: {other:?}"),
        }
    }
    terminal.close(None).unwrap();
    while terminal.read().is_ok() {}

    // Node B opened the tunnel, as admin with a credential of the
    // console's, and closed it with the session's bytes.
    let events = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(data.path().join("audit.log"))
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    wait_until(10, "the tunnel's closing event", || {
        events().iter().any(|e| e["eventName"] == "CloseTunnel")
    });
    let all = events();
    let opened: Vec<_> = all
        .iter()
        .filter(|e| e["eventName"] == "OpenTunnel")
        .collect();
    assert_eq!(opened.len(), 1, "{opened:?}");
    let open = opened[0];
    assert_eq!(
        open["userIdentity"]["arn"],
        "arn:aws:iam::111122223333:user/admin"
    );
    assert!(open["userIdentity"]["accessKeyId"]
        .as_str()
        .unwrap()
        .starts_with("ASIA"));
    assert!(
        open["userAgent"]
            .as_str()
            .unwrap()
            .starts_with("eic-console"),
        "{open}"
    );
    assert_eq!(
        open["requestParameters"]["instanceConnectEndpointId"],
        ENDPOINT
    );
    assert_eq!(open["requestParameters"]["privateIpAddress"], "127.0.0.1");
    assert!(open.get("errorCode").is_none(), "{open}");
    // The push before it was node A's, as admin.
    assert!(all.iter().any(|e| e["eventName"] == "SendSSHPublicKey"
        && e["userIdentity"]["arn"] == "arn:aws:iam::111122223333:user/admin"
        && e.get("errorCode").is_none()));
    assert_eq!(b.metric("eic_tunnels_open"), 0.0);

    // Alice may push as ec2-user but not open tunnels: the list says why,
    // and node B refuses the tunnel the console asks for in her name.
    let alice = console_session(&a, "arn:aws:iam::111122223333:user/alice");
    let page = console_page(&a, &alice.0);
    assert!(page.contains(&format!("through {ENDPOINT}")), "{page}");
    let mut refused = console_terminal(&a, &alice, INSTANCE, "ec2-user");
    let error = console_control(&mut refused);
    assert_eq!(error["type"], "error", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{ENDPOINT} refused the tunnel")),
        "{message}"
    );
    assert!(message.contains("not authorized"), "{message}");
}
