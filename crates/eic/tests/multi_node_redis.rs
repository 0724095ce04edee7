//! Two `eic server` nodes sharing one real redis-server: a push on node A
//! is served to an instance through node B, throttling buckets are shared,
//! and a Redis outage is a ServiceException and a 503 from `/ready` that
//! end when Redis returns.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

use common::{eic, push_with_boto3, ssh_keygen, try_push_with_boto3, wait_until, Server};

struct Redis(Child);

impl Redis {
    fn start(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let ping = || {
            Command::new("redis-cli")
                .args(["-p", &port.to_string(), "ping"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
        };
        wait_until(20, "redis-server to answer", ping);
        Redis(child)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const SHARED_BUCKETS: &str = r#"
[throttling]
principal = { rate = 0.2, burst = 4.0 }
"#;

#[test]
fn two_nodes_share_keys_buckets_and_outages() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let redis = Redis::start(port);
    let url = format!("redis://127.0.0.1:{port}");
    // The nodes share the data dir's key material (CA, credential keys);
    // their keys, buckets and serial locks live in Redis.
    let data = tempfile::tempdir().unwrap();
    let a = Server::start_full(data.path(), &[], SHARED_BUCKETS, &["--store-url", &url]);
    let b = Server::start_full(data.path(), &[], SHARED_BUCKETS, &["--store-url", &url]);

    let ready = |node: &Server| -> u16 {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        agent
            .get(&format!("{}/ready", node.endpoint()))
            .call()
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    assert_eq!((ready(&a), ready(&b)), (200, 200));

    let keys = tempfile::tempdir().unwrap();
    let key = ssh_keygen(keys.path(), "multi");
    push_with_boto3(&a, "i-abcd1234", "ec2-user", &key.with_extension("pub"));

    // The instance asks node B for what was pushed through node A.
    let (code, agent, err) = eic(&[
        "agent-config",
        "--config",
        b.config.to_str().unwrap(),
        "--data-dir",
        data.path().to_str().unwrap(),
        "--instance-id",
        "i-abcd1234",
        "--endpoint",
        &format!("http://{}", b.instance_api),
    ]);
    assert_eq!(code, 0, "{err}");
    let agent_path = keys.path().join("agent.toml");
    std::fs::write(&agent_path, agent).unwrap();
    let (code, out, err) = eic(&[
        "authorized-keys",
        "--config",
        agent_path.to_str().unwrap(),
        "ec2-user",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        std::fs::read_to_string(key.with_extension("pub")).unwrap()
    );

    // One bucket per principal across nodes: 4 tokens, one already spent.
    for _ in 0..3 {
        push_with_boto3(&a, "i-abcd1234", "ec2-user", &key.with_extension("pub"));
    }
    assert_eq!(
        try_push_with_boto3(&b, "i-abcd1234", "ec2-user", &key.with_extension("pub")),
        Err("ThrottlingException".into())
    );

    // Redis gone: a 500 ServiceException (which SDKs retry), no crash; back
    // by itself when Redis is.
    drop(redis);
    assert_eq!(ready(&a), 503);
    assert_eq!(
        try_push_with_boto3(
            &a,
            "i-0123456789abcdef0",
            "ec2-user",
            &key.with_extension("pub")
        ),
        Err("ServiceException".into())
    );
    let _redis = Redis::start(port);
    wait_until(30, "node B to serve again", || {
        try_push_with_boto3(
            &b,
            "i-0123456789abcdef0",
            "ec2-user",
            &key.with_extension("pub"),
        )
        .is_ok()
    });
}
