//! Starts the real `eic` binary on loopback for a test and stops it after.
#![allow(dead_code)] // each test binary uses a different part of the harness

/// Real redis-server processes (standalone, cluster), the same helpers as
/// eic-store-redis's tests.
#[path = "../../../eic-store-redis/tests/common/mod.rs"]
pub mod redis;
pub mod serial;
pub mod sshd;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const REGION: &str = "us-west-2";
pub const ADMIN: (&str, &str) = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
pub const ALICE: (&str, &str) = (
    "AKIDALICEEXAMPLE",
    "aliceSecretKey/EXAMPLE0000000000000000000",
);
pub const BOB: (&str, &str) = (
    "AKIDBOBEXAMPLE",
    "bobSecretKey/EXAMPLE00000000000000000000000",
);

/// The seed document's example key.
pub const SEED_KEY: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC3FlHqj2eqCdrGHuA6dRjfZXQ4HX5lXEIRHaNbxEwE5Te7xNF7StwhrDtiV7IdT5fDqbRyGw/szPj3xGkNTVoElCZ2dDFb2qYZ1WLIpZwj/UhO9l2mgfjR56UojjQut5Jvn2KZ1OcyrNO0J83kCaJCV7JoVbXY79FBMUccYNY45zmv9+1FMCfY6i2jdIhwR6+yLk8oubL8lIPyq7X+6b9S0yKCkB7Peml1DvghlybpAIUrC9vofHt6XP4V1i0bImw1IlljQS+DUmULRFSccATDscCX9ajnj7Crhm0HAZC0tBPXpFdHkPwL3yzYo546SCS9LKEwz62ymxxbL9k7h09t";
pub const ED25519_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEz1IfFgVwd94PL4XD1ju7YfyPsL9Z7CdrE/Ace+v3k5 test@eic";

/// Throttling out of the way, for tests that push in bulk.
pub const NO_THROTTLING: &str = r#"
[throttling]
principal = { rate = 100000.0, burst = 100000.0 }
instance = { rate = 100000.0, burst = 100000.0 }
"#;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `eic server` flags that put every listener but the tunnel's on a free
/// loopback port.
pub const FREE_PORTS: &[&str] = &[
    "--api-listen",
    "127.0.0.1:0",
    "--instance-api-listen",
    "127.0.0.1:0",
    "--serial-listen",
    "127.0.0.1:0",
    "--diagnostics-listen",
    "127.0.0.1:0",
    "--console-listen",
    "127.0.0.1:0",
];
/// The tunnel's listener on a free port (a test that needs 443 names its
/// own address instead).
pub const FREE_TUNNEL_PORT: &[&str] = &["--tunnel-listen", "127.0.0.1:0"];

/// The listeners examples/dev.toml enables, in the order they announce.
pub const ROLES: &[&str] = &[
    "api",
    "instance-api",
    "serial-console",
    "tunnel",
    "console",
    "diagnostics",
];

pub struct Server {
    child: Child,
    pub api: SocketAddr,
    pub instance_api: SocketAddr,
    pub serial: SocketAddr,
    pub tunnel: SocketAddr,
    pub diagnostics: SocketAddr,
    /// The browser console's listener (plain http on loopback).
    pub console: SocketAddr,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    _config_dir: tempfile::TempDir,
    _owned_data: Option<tempfile::TempDir>,
}

impl Server {
    /// `eic ARGS --config <its config> --data-dir <its data dir>`, as an
    /// operator runs a command against this server: (exit code, stdout,
    /// stderr).
    pub fn admin(&self, args: &[&str]) -> (i32, String, String) {
        let mut all = args.to_vec();
        all.extend([
            "--config",
            self.config.to_str().unwrap(),
            "--data-dir",
            self.data_dir.to_str().unwrap(),
        ]);
        eic(&all)
    }

    /// One series' value from the diagnostics listener's `/metrics`, e.g.
    /// `eic_key_fetches_total{outcome="ok"}`.
    pub fn metric(&self, series: &str) -> f64 {
        let mut stream = std::net::TcpStream::connect(self.diagnostics).unwrap();
        let request = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let (status, _, body) = http_exchange(&mut stream, request.as_bytes()).unwrap();
        assert_eq!(status, 200);
        let text = String::from_utf8(body).unwrap();
        let prefix = format!("{series} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .parse()
            .unwrap()
    }

    /// examples/dev.toml plus `extra` TOML, on a fresh data dir.
    pub fn start(extra: &str) -> Server {
        let data = tempfile::tempdir().unwrap();
        let mut server = Server::start_in(data.path(), extra);
        server._owned_data = Some(data);
        server
    }

    /// As [`Server::start`], on `data_dir` (which outlives the server).
    pub fn start_in(data_dir: &Path, extra: &str) -> Server {
        Server::start_with(data_dir, &[], extra)
    }

    /// examples/dev.toml with each `(from, to)` replaced (serial console
    /// backends the test starts), plus `extra`.
    pub fn start_with(data_dir: &Path, replace: &[(&str, &str)], extra: &str) -> Server {
        Server::start_full(data_dir, replace, extra, &[])
    }

    /// As [`Server::start_with`], with more command-line arguments.
    pub fn start_full(
        data_dir: &Path,
        replace: &[(&str, &str)],
        extra: &str,
        args: &[&str],
    ) -> Server {
        Server::start_launched(&[], data_dir, replace, extra, args)
    }

    /// As [`Server::start`], run through `launcher` (a command that runs
    /// its arguments, such as `prlimit --nofile=1024`).
    pub fn start_through(launcher: &[&str], replace: &[(&str, &str)], extra: &str) -> Server {
        let data = tempfile::tempdir().unwrap();
        let mut server = Server::start_launched(launcher, data.path(), replace, extra, &[]);
        server._owned_data = Some(data);
        server
    }

    fn start_launched(
        launcher: &[&str],
        data_dir: &Path,
        replace: &[(&str, &str)],
        extra: &str,
        args: &[&str],
    ) -> Server {
        let config_dir = tempfile::tempdir().unwrap();
        let mut dev = std::fs::read_to_string(repo_root().join("examples/dev.toml")).unwrap();
        for (from, to) in replace {
            assert!(dev.contains(from), "{from} is not in dev.toml");
            dev = dev.replace(from, to);
        }
        let config = config_dir.path().join("eic.toml");
        std::fs::write(&config, format!("{dev}\n{extra}\n")).unwrap();
        let mut command = match launcher.split_first() {
            None => Command::new(env!("CARGO_BIN_EXE_eic")),
            Some((program, launcher_args)) => {
                let mut command = Command::new(program);
                command.args(launcher_args).arg(env!("CARGO_BIN_EXE_eic"));
                command
            }
        };
        command
            .args(["server", "--config"])
            .arg(&config)
            .args(FREE_PORTS)
            .arg("--data-dir")
            .arg(data_dir)
            .args(args);
        // A test that needs the tunnel on port 443 names its own address.
        if !args.contains(&"--tunnel-listen") {
            command.args(FREE_TUNNEL_PORT);
        }
        let mut child = command
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start eic server");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("listening ") {
                    let (role, addr) = rest.split_once(' ').unwrap();
                    let _ = tx.send((role.to_owned(), addr.parse::<SocketAddr>().unwrap()));
                }
            }
        });
        let mut listeners = std::collections::HashMap::new();
        while !ROLES.iter().all(|r| listeners.contains_key(*r)) {
            let (role, addr) = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("server announced its listeners");
            listeners.insert(role, addr);
        }
        Server {
            child,
            api: listeners["api"],
            instance_api: listeners["instance-api"],
            serial: listeners["serial-console"],
            tunnel: listeners["tunnel"],
            diagnostics: listeners["diagnostics"],
            console: listeners["console"],
            data_dir: data_dir.to_owned(),
            config,
            _config_dir: config_dir,
            _owned_data: None,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.api)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no drain, no flush, nothing.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then wait for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tmpfs of a few pages, mounted for a test and unmounted after.
pub struct TinyFs(pub tempfile::TempDir);

impl TinyFs {
    pub fn mount(bytes: usize) -> TinyFs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "this test mounts a tmpfs and needs root");
        TinyFs(dir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// Writes `path` until the filesystem is full.
pub fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = [0u8; 1024];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
}

/// One HTTP/1.1 exchange on `stream`: writes `request` as given, reads one
/// response (status, lowercased headers, body).
pub fn http_exchange(
    stream: &mut std::net::TcpStream,
    request: &[u8],
) -> std::io::Result<(u16, std::collections::HashMap<String, String>, Vec<u8>)> {
    use std::io::Write;
    stream.write_all(request)?;
    read_response(stream)
}

/// Reads one HTTP/1.1 response with a Content-Length body.
pub fn read_response(
    stream: &mut impl std::io::Read,
) -> std::io::Result<(u16, std::collections::HashMap<String, String>, Vec<u8>)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {head:?}")))?;
    let headers: std::collections::HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    Ok((status, headers, body))
}

/// Pushes `key_file`'s key with boto3 (to an OS user, or `--serial`);
/// returns the request id.
pub fn push_with_boto3(server: &Server, instance: &str, target: &str, key_file: &Path) -> String {
    try_push_with_boto3(server, instance, target, key_file)
        .unwrap_or_else(|code| panic!("push refused: {code}"))
}

/// As [`push_with_boto3`]; `Err` carries the error code AWS's client parsed.
pub fn try_push_with_boto3(
    server: &Server,
    instance: &str,
    target: &str,
    key_file: &Path,
) -> Result<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/push_key.py");
    let out = Command::new("python3")
        .arg(script)
        .args([instance, target])
        .arg(key_file)
        .env("EIC_ENDPOINT", server.endpoint())
        .output()
        .unwrap();
    let printed = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    match out.status.code() {
        Some(0) => Ok(printed),
        Some(3) => Err(printed),
        _ => panic!("push failed: {}", String::from_utf8_lossy(&out.stderr)),
    }
}

/// Polls `condition` until it holds, for conditions that time makes true;
/// panics after `seconds`.
pub fn wait_until(seconds: u64, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An ed25519 key pair made by ssh-keygen; returns the private key's path.
pub fn ssh_keygen(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    path
}

/// Runs the `eic` binary; returns (exit code, stdout, stderr).
pub fn eic(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_eic"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The live keys in a data dir, as `eic keys list` reports them.
pub fn live_keys(data_dir: &Path, at_unix_secs: Option<u64>) -> Vec<serde_json::Value> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eic"));
    cmd.args(["keys", "list", "--data-dir"]).arg(data_dir);
    if let Some(at) = at_unix_secs {
        cmd.args(["--at", &at.to_string()]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs a Python client script from tests/clients against `server`,
/// failing the test with the script's output if it fails.
pub fn run_python(script: &str, server: &Server) {
    run_python_with(script, server, &[]);
}

/// As [`run_python`], with more environment (later entries win, so
/// `EIC_ENDPOINT` can be replaced). The host's CA bundle settings are
/// removed: a script that trusts a CA says so itself.
pub fn run_python_with(script: &str, server: &Server, env: &[(&str, &std::ffi::OsStr)]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let out = Command::new("python3")
        .arg(&path)
        .env("EIC_ENDPOINT", server.endpoint())
        .env("EIC_DATA_DIR", &server.data_dir)
        .env("EIC_CONFIG", &server.config)
        .env("EIC_BIN", env!("CARGO_BIN_EXE_eic"))
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("REQUESTS_CA_BUNDLE")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .envs(env.iter().copied())
        .output()
        .expect("python3 runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script} failed:\n{report}");
    eprintln!("{report}");
}

/// The AWS SDK for Rust's client for `server`, signing as `creds`, without
/// retries (a test sees each answer as it was).
pub fn sdk_client(server: &Server, creds: (&str, &str)) -> aws_sdk_ec2instanceconnect::Client {
    use aws_sdk_ec2instanceconnect as eic;
    let conf = eic::Config::builder()
        .behavior_version(eic::config::BehaviorVersion::latest())
        .region(eic::config::Region::new(REGION))
        .credentials_provider(eic::config::Credentials::new(
            creds.0, creds.1, None, None, "test",
        ))
        .endpoint_url(server.endpoint())
        .retry_config(eic::config::retry::RetryConfig::disabled())
        .build();
    eic::Client::from_conf(conf)
}
