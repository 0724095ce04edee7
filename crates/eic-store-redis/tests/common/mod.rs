//! Real redis-server processes on loopback, started and stopped by tests.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use eic_store::{unix_millis, KeyTarget, PushedKey};

/// A loopback port that is free now, with its cluster bus port (+10000)
/// free too.
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("addr").port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(free_port(), Vec::new())
    }

    pub fn start_with(port: u16, extra: Vec<String>) -> Self {
        let mut server = RedisServer {
            port,
            dir: tempfile::tempdir().expect("tempdir"),
            extra,
            child: None,
        };
        server.spawn();
        server
    }

    pub fn spawn(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--dir"])
            .arg(self.dir.path())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while cli(self.port, &["PING"]) != "PONG" {
            assert!(
                Instant::now() < deadline,
                "redis-server on {} never answered",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Three masters, no replicas.
pub struct Cluster {
    pub nodes: Vec<RedisServer>,
}

impl Cluster {
    pub fn start() -> Self {
        Self::start_on([free_port(), free_port(), free_port()])
    }

    pub fn start_on(ports: [u16; 3]) -> Self {
        let nodes: Vec<RedisServer> = ports
            .into_iter()
            .map(|port| {
                RedisServer::start_with(
                    port,
                    vec![
                        "--cluster-enabled".into(),
                        "yes".into(),
                        "--cluster-config-file".into(),
                        format!("nodes-{port}.conf"),
                    ],
                )
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while !nodes
            .iter()
            .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        {
            assert!(Instant::now() < deadline, "cluster never became ok");
            std::thread::sleep(Duration::from_millis(50));
        }
        Cluster { nodes }
    }

    pub fn url(&self) -> String {
        cluster_url(&self.nodes.iter().map(|n| n.port).collect::<Vec<_>>())
    }
}

/// `redis-cluster://` with these nodes as seeds.
pub fn cluster_url(ports: &[u16]) -> String {
    let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    format!("redis-cluster://{}", nodes.join(","))
}

/// A primary, one replica, and three Sentinels watching them under the
/// name [`SentinelGroup::MASTER`], failing over one second after the
/// primary stops answering.
pub struct SentinelGroup {
    pub primary: RedisServer,
    pub replica: RedisServer,
    sentinels: Vec<(u16, Child)>,
    _dir: tempfile::TempDir,
}

impl SentinelGroup {
    pub const MASTER: &'static str = "eic";

    pub fn start() -> Self {
        let primary = RedisServer::start();
        let replica = RedisServer::start_with(
            free_port(),
            vec![
                "--replicaof".into(),
                "127.0.0.1".into(),
                primary.port.to_string(),
            ],
        );
        wait_for(20, "the replica to sync", || {
            replica
                .cli(&["INFO", "replication"])
                .contains("master_link_status:up")
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let sentinels = (0..3)
            .map(|n| {
                let port = free_port();
                // Sentinel rewrites its config file, so each has its own.
                let config = dir.path().join(format!("sentinel-{n}.conf"));
                std::fs::write(
                    &config,
                    format!(
                        "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                         sentinel monitor {master} 127.0.0.1 {primary} 2\n\
                         sentinel down-after-milliseconds {master} 1000\n\
                         sentinel failover-timeout {master} 10000\n",
                        dir = dir.path().display(),
                        master = Self::MASTER,
                        primary = primary.port,
                    ),
                )
                .expect("write sentinel config");
                let child = Command::new("redis-server")
                    .arg(&config)
                    .arg("--sentinel")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start redis-server --sentinel");
                (port, child)
            })
            .collect();
        let group = SentinelGroup {
            primary,
            replica,
            sentinels,
            _dir: dir,
        };
        // Every Sentinel sees the others and the replica: a failover can
        // be authorized.
        wait_for(30, "the Sentinels to reach a quorum", || {
            group.sentinels.iter().all(|(port, _)| {
                cli(*port, &["SENTINEL", "CKQUORUM", Self::MASTER]).starts_with("OK 3 usable")
                    && cli(*port, &["SENTINEL", "REPLICAS", Self::MASTER])
                        .contains(&group.replica.port.to_string())
            })
        });
        group
    }

    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .sentinels
            .iter()
            .map(|(port, _)| format!("127.0.0.1:{port}"))
            .collect();
        format!("redis-sentinel://{}/{}", nodes.join(","), Self::MASTER)
    }

    /// The master's port, as the first Sentinel names it.
    pub fn master_port(&self) -> String {
        let answer = cli(
            self.sentinels[0].0,
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", Self::MASTER],
        );
        answer.lines().nth(1).unwrap_or_default().to_string()
    }
}

impl Drop for SentinelGroup {
    fn drop(&mut self) {
        for (_, child) in &mut self.sentinels {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `condition` (blocking) until true or `seconds` pass.
fn wait_for(seconds: u64, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn key(
    n: u32,
    instance: &str,
    target: KeyTarget,
    pushed: SystemTime,
    ttl: Duration,
) -> PushedKey {
    let pushed_at_ms = unix_millis(pushed);
    PushedKey {
        request_id: format!("req-{n}"),
        instance_id: instance.into(),
        target,
        public_key: format!("ssh-ed25519 AAAA{n}"),
        fingerprint: format!("SHA256:{n}"),
        caller_arn: "arn:aws:iam::111122223333:user/admin".into(),
        pushed_at_ms,
        expires_at_ms: pushed_at_ms + ttl.as_millis() as u64,
    }
}

pub fn user(name: &str) -> KeyTarget {
    KeyTarget::OsUser(name.into())
}

/// Polls `condition` until true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
