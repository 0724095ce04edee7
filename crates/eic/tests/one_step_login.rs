//! One-step login end to end: `eic ssh` and plain ssh, scp and rsync
//! through `eic ssh-config`, against a running eic and a real sshd whose
//! AuthorizedKeysCommand is `eic authorized-keys`. The host is verified
//! from the host keys the instance registered (DescribeInstanceHostKeys),
//! with no known_hosts of the user's.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::serial::console_backend;
use common::sshd::{start_sshd, write_agent_config, write_known_hosts, RootDir, Sshd};
use common::{ssh_keygen, Server, ADMIN, ALICE, REGION};

/// Registered its sshd's real host key; Name tag `onestep-web`.
const PINNED: &str = "i-0e1c00000000000a1";
/// Registered a host key its sshd does not have.
const WRONG_KEY: &str = "i-0e1c00000000000b2";
/// Registered no host keys.
const NO_KEYS: &str = "i-0e1c00000000000c3";
/// Its agent has stopped reporting.
const UNAVAILABLE: &str = "i-0e1c00000000000d4";

/// A server, and a real sshd on a loopback port serving `instance`.
struct Rig {
    server: Server,
    _sshd: Sshd,
    port: u16,
    dir: RootDir,
    /// `$XDG_RUNTIME_DIR` of the `eic ssh` runs: where session keys live.
    runtime: tempfile::TempDir,
}

impl Rig {
    fn start(tag: &str, instance: &str) -> Rig {
        let dir = RootDir::new(tag);
        let agent = dir.0.join("agent.toml");
        let (sshd, port) = start_sshd(&dir.0, &agent);
        let host_key = std::fs::read_to_string(dir.0.join("host_ed25519.pub")).unwrap();
        let other = ssh_keygen(&dir.0, "not-the-host");
        let other_key = std::fs::read_to_string(other.with_extension("pub")).unwrap();
        let instances = format!(
            r#"
[[instances]]
id = "{PINNED}"
public_ip_address = "127.0.0.1"
ssh_port = {port}
host_keys = ["{host_key}"]
account = "111122223333"
state = "running"
availability_zone = "us-west-2a"
instance_type = "t3.micro"
tags = {{ Name = "onestep-web", Role = "web" }}

[[instances]]
id = "{WRONG_KEY}"
public_ip_address = "127.0.0.1"
ssh_port = {port}
host_keys = ["{other_key}"]
account = "111122223333"
state = "running"
availability_zone = "us-west-2a"
instance_type = "t3.micro"
tags = {{ Role = "web" }}

[[instances]]
id = "{UNAVAILABLE}"
private_ip_address = "127.0.0.1"
availability = "unavailable"
account = "111122223333"
state = "running"
availability_zone = "us-west-2a"
instance_type = "t3.micro"

[[instances]]
id = "{NO_KEYS}"
private_ip_address = "127.0.0.1"
ssh_port = {port}
account = "111122223333"
state = "running"
availability_zone = "us-west-2b"
instance_type = "t3.micro"
"#,
            host_key = host_key.trim(),
            other_key = other_key.trim(),
        );
        let server = Server::start(&instances);
        write_agent_config(&server, instance, &agent);
        Rig {
            server,
            _sshd: sshd,
            port,
            dir,
            runtime: tempfile::tempdir().unwrap(),
        }
    }

    /// `eic ARGS` as a user runs it: the AWS configuration only from the
    /// environment given here, nothing of the machine's.
    fn user_command(&self, credentials: (&str, &str), args: &[&str]) -> Command {
        let mut command = as_user(
            env!("CARGO_BIN_EXE_eic"),
            &self.dir.0,
            self.runtime.path(),
            credentials,
        );
        command
            .args(args)
            .env("AWS_REGION", REGION)
            .env("AWS_ENDPOINT_URL", self.server.endpoint());
        command
    }

    /// `eic ssh-config` for this rig's server, with `key` and `more`.
    fn ssh_config(&self, key: &Path, more: &[&str]) -> Output {
        let endpoint = self.server.endpoint();
        let mut args = vec![
            "ssh-config",
            "--endpoint-url",
            &endpoint,
            "--region",
            REGION,
            "--key",
            key.to_str().unwrap(),
        ];
        args.extend_from_slice(more);
        self.user_command(ADMIN, &args).output().unwrap()
    }

    fn eic_ssh(&self, credentials: (&str, &str), args: &[&str]) -> Output {
        let mut all = vec!["ssh"];
        all.extend_from_slice(args);
        self.user_command(credentials, &all).output().unwrap()
    }

    /// No session key is left behind.
    fn assert_no_keys_left(&self) {
        let left: Vec<_> = std::fs::read_dir(self.runtime.path()).unwrap().collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

/// `program` with only the environment a user's AWS setup gives: these
/// credentials, a HOME and shared config files under `files` (none exist),
/// session keys under `runtime`, no instance metadata service.
fn as_user(program: &str, files: &Path, runtime: &Path, credentials: (&str, &str)) -> Command {
    let mut command = Command::new(program);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("HOME", files.join("home"))
        .env("XDG_RUNTIME_DIR", runtime)
        .env("AWS_ACCESS_KEY_ID", credentials.0)
        .env("AWS_SECRET_ACCESS_KEY", credentials.1)
        .env("AWS_CONFIG_FILE", files.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            files.join("no-aws-credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null());
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What a user must never see: a traceback or a raw API body.
fn assert_readable(stderr: &str) {
    for raw in ["Traceback", "<Response", "<?xml", "panicked"] {
        assert!(!stderr.contains(raw), "{stderr}");
    }
}

#[test]
fn eic_ssh_logs_in_verifying_the_registered_host_key_and_returns_ssh_status() {
    let rig = Rig::start("onestep-login", PINNED);
    // SSH_CONNECTION's last field is the port sshd serves on: only a real
    // session on the test's sshd prints it.
    let out = rig.eic_ssh(
        ADMIN,
        &[&format!("root@{PINNED}"), "--", "echo", "$SSH_CONNECTION"],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        text(&out.stdout)
            .trim()
            .ends_with(&format!(" {}", rig.port)),
        "{}",
        text(&out.stdout)
    );
    // Verified, not learned: nothing was added to any known_hosts.
    assert!(!stderr.contains("Permanently added"), "{stderr}");
    rig.assert_no_keys_left();

    // ssh's exit status is eic's.
    let out = rig.eic_ssh(ADMIN, &[&format!("root@{PINNED}"), "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    rig.assert_no_keys_left();

    // By its Name tag, and by another tag that names exactly one.
    let out = rig.eic_ssh(ADMIN, &["root@onestep-web", "echo by-name"]);
    assert_eq!(text(&out.stdout).trim(), "by-name", "{}", text(&out.stderr));
    // A tag several instances have: listed, and refused.
    let out = rig.eic_ssh(ADMIN, &["root@Role=web", "true"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(255));
    assert!(
        stderr.contains("2 instances have the tag Role=web"),
        "{stderr}"
    );
    assert!(
        stderr.contains(PINNED) && stderr.contains(WRONG_KEY),
        "{stderr}"
    );
}

#[test]
fn eic_ssh_refuses_a_host_without_the_registered_key() {
    let rig = Rig::start("onestep-wrong", WRONG_KEY);
    let out = rig.eic_ssh(
        ADMIN,
        &[&format!("root@{WRONG_KEY}"), "echo", "should-not-run"],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{stderr}");
    assert!(!text(&out.stdout).contains("should-not-run"));
    assert!(
        stderr.contains("Host key verification failed")
            || stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{stderr}"
    );
    rig.assert_no_keys_left();
}

#[test]
fn eic_ssh_without_registered_keys_says_so_and_uses_the_users_known_hosts() {
    let rig = Rig::start("onestep-nokeys", NO_KEYS);
    let known_hosts = rig.dir.0.join("users_known_hosts");
    write_known_hosts(&rig.dir.0, rig.port, &known_hosts);
    let user_known_hosts = format!("UserKnownHostsFile={}", known_hosts.display());
    let out = rig.eic_ssh(
        ADMIN,
        &[
            &format!("root@{NO_KEYS}"),
            "--",
            "-o",
            &user_known_hosts,
            "-o",
            "StrictHostKeyChecking=yes",
            "echo",
            "fallback",
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(text(&out.stdout).trim(), "fallback");
    assert!(
        stderr.contains(&format!("{NO_KEYS} registered no host keys")),
        "{stderr}"
    );
}

#[test]
fn eic_ssh_errors_say_what_went_wrong() {
    let rig = Rig::start("onestep-errors", PINNED);
    let unavailable = format!("root@{UNAVAILABLE}");
    let cases: [(&[&str], (&str, &str), &str); 6] = [
        (
            &[&unavailable, "true"],
            ADMIN,
            "the instance is unavailable",
        ),
        (
            &["root@i-0fffffffffffffff0", "true"],
            ADMIN,
            "looking up i-0fffffffffffffff0: no such instance",
        ),
        // alice may push only as ec2-user, to Team=dev instances.
        (
            &[&format!("root@{PINNED}"), "true"],
            ALICE,
            "not authorized: User: arn:aws:iam::111122223333:user/alice is not authorized",
        ),
        (
            &["root@no-such-name", "true"],
            ADMIN,
            "no instance that is not terminated has the tag Name=no-such-name",
        ),
        (
            &["root@i-0aaaaaaaaaaaaaaa1", "true"],
            ADMIN,
            "pushing a key for root to i-0aaaaaaaaaaaaaaa1: the instance is not running",
        ),
        (
            &["--address", "ipv6", &format!("root@{PINNED}"), "true"],
            ADMIN,
            "has no IPv6 address",
        ),
    ];
    for (args, credentials, expected) in cases {
        let out = rig.eic_ssh(credentials, args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_readable(&stderr);
    }
    // The API not running: said in a line, not a trace.
    let out = rig
        .user_command(
            ADMIN,
            &["ssh", "--endpoint-url", "http://127.0.0.1:9", PINNED],
        )
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(255));
    assert!(stderr.contains("cannot reach the API"), "{stderr}");
    assert_readable(&stderr);
    // ssh not installed.
    let out = rig
        .user_command(ADMIN, &["ssh", PINNED])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert!(text(&out.stderr).contains("ssh is not installed"));
}

#[test]
fn eic_ssh_with_a_named_profile_from_the_shared_files() {
    let rig = Rig::start("onestep-profile", PINNED);
    let config = rig.dir.0.join("aws-config");
    let credentials = rig.dir.0.join("aws-credentials");
    // The default profile is wrong in every way: only the named one works.
    std::fs::write(
        &config,
        format!(
            "[default]\nregion = eu-north-1\n\n[profile eic-dev]\nregion = {REGION}\nendpoint_url = {}\n",
            rig.server.endpoint()
        ),
    )
    .unwrap();
    std::fs::write(
        &credentials,
        format!(
            "[default]\naws_access_key_id = AKIDNOBODY\naws_secret_access_key = nobody\n\n[eic-dev]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            ADMIN.0, ADMIN.1
        ),
    )
    .unwrap();
    let out = rig
        .user_command(
            ("unused", "unused"),
            &[
                "ssh",
                "--profile",
                "eic-dev",
                &format!("root@{PINNED}"),
                "echo from-profile",
            ],
        )
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_REGION")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "from-profile");
}

#[test]
fn eic_ssh_serial_reaches_the_console_through_the_pinned_gateway() {
    let (_socat, console) = console_backend();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), &[("127.0.0.1:7000", &console)], "");
    let runtime = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let mut child = as_user(
        env!("CARGO_BIN_EXE_eic"),
        files.path(),
        runtime.path(),
        ADMIN,
    )
    .args(["ssh", "--serial", "i-0123456789abcdef0"])
    .env("AWS_REGION", REGION)
    .env("AWS_ENDPOINT_URL", server.endpoint())
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    // The console is a shell: what it prints comes back through the
    // gateway, whose host key was pinned from DescribeInstanceHostKeys.
    stdin.write_all(b"echo serial-$((40+2))\n").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let found = loop {
        let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else {
            break false;
        };
        match lines.recv_timeout(left) {
            Ok(line) if line.contains("serial-42") => break true,
            Ok(line) => seen.push(line),
            Err(_) => break false,
        }
    };
    // A SIGTERM to eic ends the session and removes the key.
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        found,
        "no echo from the console: {seen:?} {}",
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains("registered no host keys"));
    let left: Vec<_> = std::fs::read_dir(runtime.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn plain_ssh_scp_and_rsync_through_eic_ssh_config() {
    let rig = Rig::start("onestep-config", PINNED);
    let key = rig.dir.0.join("eic-key").join("id_ed25519");
    let out = rig.ssh_config(&key, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let block = text(&out.stdout);
    assert!(block.contains("ProxyCommand ") && block.contains("KnownHostsCommand "));
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let ssh_config = rig.dir.0.join("ssh_config");
    std::fs::write(&ssh_config, &block).unwrap();
    let config = ssh_config.to_str().unwrap().to_owned();
    // The environment ssh passes on to eic proxy and eic known-hosts: the
    // credentials only (endpoint and region are in the block).
    let run = |program: &str, args: &[&str]| -> Output {
        as_user(program, &rig.dir.0, rig.runtime.path(), ADMIN)
            .args(args)
            .output()
            .unwrap()
    };
    let batch = "BatchMode=yes";

    // ssh: the host key comes from KnownHostsCommand, strictly checked.
    let out = run(
        "ssh",
        &[
            "-F",
            &config,
            "-o",
            batch,
            &format!("root@{PINNED}"),
            "echo",
            "via-proxy",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "via-proxy");
    assert!(!text(&out.stderr).contains("Permanently added"));

    // scp both ways.
    let files = tempfile::tempdir().unwrap();
    let here = files.path().join("here.bin");
    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&here, &content).unwrap();
    let there = files.path().join("there.bin");
    let back = files.path().join("back.bin");
    let remote = |p: &Path| format!("root@{PINNED}:{}", p.display());
    let out = run(
        "scp",
        &[
            "-F",
            &config,
            "-o",
            batch,
            here.to_str().unwrap(),
            &remote(&there),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run(
        "scp",
        &[
            "-F",
            &config,
            "-o",
            batch,
            &remote(&there),
            back.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&back).unwrap(), content);

    // rsync over ssh both ways.
    let rsh = format!("ssh -F {config} -o {batch}");
    let synced = files.path().join("synced.bin");
    let synced_back = files.path().join("synced-back.bin");
    let out = run(
        "rsync",
        &["-e", &rsh, here.to_str().unwrap(), &remote(&synced)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run(
        "rsync",
        &["-e", &rsh, &remote(&synced), synced_back.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&synced_back).unwrap(), content);

    // --install puts the block first and keeps what was there.
    let installed = rig.dir.0.join("installed_config");
    std::fs::write(&installed, "Host *\n    ServerAliveInterval 30\n").unwrap();
    let out = rig.ssh_config(
        &key,
        &["--install", "--ssh-config", installed.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&installed).unwrap(),
        format!("{block}\nHost *\n    ServerAliveInterval 30\n")
    );
}

/// `eic known-hosts --addresses`: lines for clients that connect by
/// address (mssh, the AWS CLI v2), which pin nothing themselves.
#[test]
fn known_hosts_lines_for_clients_that_connect_by_address() {
    let rig = Rig::start("onestep-knownhosts", PINNED);
    let out = rig
        .user_command(
            ADMIN,
            &[
                "known-hosts",
                "--addresses",
                PINNED,
                NO_KEYS,
                "not-an-instance",
            ],
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let host_key = std::fs::read_to_string(rig.dir.0.join("host_ed25519.pub")).unwrap();
    let host_key: Vec<&str> = host_key.split_whitespace().take(2).collect();
    assert_eq!(
        text(&out.stdout),
        format!("{PINNED},[127.0.0.1]:{} {}\n", rig.port, host_key.join(" "))
    );
}
