//! The official one-step clients against eic, unchanged: `mssh` and `msftp`
//! (PyPI ec2instanceconnectcli 1.0.3, which scripts/test.sh installs) and
//! what the AWS CLI v2's `aws ec2-instance-connect ssh --connection-type
//! direct` sends and runs (tests/clients/cli_v2_ssh.py). Each looks the
//! instance up with DescribeInstances, pushes its own fresh key and logs in
//! to a real sshd whose AuthorizedKeysCommand is `eic authorized-keys`, with
//! the host key checked strictly against a known_hosts file.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::sshd::{start_sshd, write_agent_config, write_known_hosts, RootDir, Sshd};
use common::{eic, Server, ADMIN, REGION};

/// Has a public address, 127.0.0.1, where the test's sshd listens; its
/// private address is a loopback address where nothing listens, so a
/// client that picked the private one would fail to connect.
const PUBLIC: &str = "i-0c1e00000000000a1";
/// Has only a private address, 127.0.0.1.
const PRIVATE_ONLY: &str = "i-0c1e00000000000b2";

const INSTANCES: &str = r#"
[[instances]]
id = "i-0c1e00000000000a1"
public_ip_address = "127.0.0.1"
private_ip_address = "127.0.10.21"
account = "111122223333"
state = "running"
availability_zone = "us-west-2c"
instance_type = "t3.micro"

[[instances]]
id = "i-0c1e00000000000b2"
private_ip_address = "127.0.0.1"
account = "111122223333"
state = "running"
availability_zone = "us-west-2b"
instance_type = "t3.micro"
"#;

/// A server and one instance played by a real sshd on a loopback port.
struct Rig {
    server: Server,
    // Dropped in this order: sshd stops before its directory goes.
    _sshd: Sshd,
    port: u16,
    agent: PathBuf,
    known_hosts: PathBuf,
    _dir: RootDir,
}

impl Rig {
    /// `tag` names the sshd's directory, which must differ between the
    /// tests of this binary (they share a pid).
    fn start(tag: &str, instance: &str) -> Rig {
        let server = Server::start(INSTANCES);
        let dir = RootDir::new(tag);
        let agent = dir.0.join("agent.toml");
        write_agent_config(&server, instance, &agent);
        let (sshd, port) = start_sshd(&dir.0, &agent);
        let known_hosts = dir.0.join("known_hosts");
        write_known_hosts(&dir.0, port, &known_hosts);
        Rig {
            server,
            _sshd: sshd,
            port,
            agent,
            known_hosts,
            _dir: dir,
        }
    }

    /// The ssh options mssh forwards (it passes every `-X value` pair
    /// before the target to ssh): the port and strict host key checking.
    fn ssh_flags(&self) -> Vec<String> {
        let mut flags = vec!["-p".to_owned(), self.port.to_string()];
        flags.extend(self.host_key_options());
        flags
    }

    fn host_key_options(&self) -> Vec<String> {
        [
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "StrictHostKeyChecking=yes".to_owned(),
            "BatchMode=yes".to_owned(),
            "ConnectTimeout=10".to_owned(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_owned(), o])
        .collect()
    }

    fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    /// A shell command that prints `tag` and the port the session came in
    /// on (from sshd's SSH_CONNECTION): output only a login here gives.
    fn remote(&self, tag: &str) -> (String, String) {
        (
            format!("set -- $SSH_CONNECTION; echo {tag}-$4"),
            format!("{tag}-{}", self.port),
        )
    }

    /// As [`Rig::remote`], quoted for mssh: it joins its arguments into
    /// one line that `sh -c` runs locally, so the remote command is quoted
    /// once more.
    fn remote_for_mssh(&self, tag: &str, exit: u8) -> (String, String) {
        let (command, expected) = self.remote(tag);
        (format!("'{command}; exit {exit}'"), expected)
    }
}

/// `program` from PATH; a missing client fails the test, since
/// scripts/test.sh installs it.
fn installed(program: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{program} is not on PATH: scripts/test.sh installs ec2instanceconnectcli==1.0.3"
            )
        })
}

/// A client command with none of the host's AWS settings: only what the
/// test sets, and never AWS's instance metadata (a non-loopback address).
fn client(program: impl Into<OsString>) -> Command {
    let mut command = Command::new(program.into());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    command
}

/// The admin fixture's static credentials and region, from the environment.
fn static_credentials(command: &mut Command) -> &mut Command {
    command
        .env("AWS_ACCESS_KEY_ID", ADMIN.0)
        .env("AWS_SECRET_ACCESS_KEY", ADMIN.1)
        .env("AWS_DEFAULT_REGION", REGION)
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn report(&self) -> String {
        format!(
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `command` with `stdin`, within 60 s; on the deadline its whole
/// process group (mssh runs ssh through a shell) is killed.
fn run(mut command: Command, stdin: &[u8]) -> Ran {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // A client that never reads its stdin closes it: not an error.
        let _ = input.write_all(&stdin);
    });
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            pipe.read_to_end(&mut text).unwrap();
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = reader(Box::new(child.stdout.take().unwrap()));
    let stderr = reader(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            panic!("{command:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    writer.join().unwrap();
    Ran {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// The audit log's events named `name` that succeeded, oldest first.
fn succeeded(server: &Server, name: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(server.data_dir.join("audit.log"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["eventName"] == name && e.get("errorCode").is_none())
        .collect()
}

/// The one push recorded, checked to be for `instance` as root.
fn only_push(server: &Server, instance: &str) -> serde_json::Value {
    let pushes = succeeded(server, "SendSSHPublicKey");
    assert_eq!(pushes.len(), 1, "{pushes:#?}");
    let push = pushes.into_iter().next().unwrap();
    assert_eq!(push["requestParameters"]["instanceId"], instance);
    assert_eq!(push["requestParameters"]["osUser"], "root");
    push
}

/// The type and size of the key with `fingerprint` among those the
/// instance is served for `user` (what sshd saw), as `ssh-keygen -l`
/// reports them: ("RSA", 2048), ("ED25519", 256).
fn served_key(agent: &Path, user: &str, fingerprint: &str) -> (String, u32) {
    let (code, lines, err) = eic(&["authorized-keys", "--config", agent.to_str().unwrap(), user]);
    assert_eq!(code, 0, "{err}");
    for line in lines.lines() {
        let mut keygen = Command::new("ssh-keygen")
            .args(["-l", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        keygen
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
        let out = keygen.wait_with_output().unwrap();
        assert!(out.status.success(), "ssh-keygen -l refused {line}");
        // "2048 SHA256:… comment (RSA)"
        let text = String::from_utf8(out.stdout).unwrap();
        let words: Vec<&str> = text.split_whitespace().collect();
        if words[1] == fingerprint {
            let kind = words.last().unwrap().trim_matches(['(', ')']).to_owned();
            return (kind, words[0].parse().unwrap());
        }
    }
    panic!("no key {fingerprint} served for {user}:\n{lines}");
}

/// The client's push as eic recorded it: its zone, if any, and the key
/// the instance served for it.
fn pushed(rig: &Rig, instance: &str) -> (Option<String>, (String, u32), serde_json::Value) {
    let push = only_push(&rig.server, instance);
    let parameters = &push["requestParameters"];
    let zone = parameters["availabilityZone"].as_str().map(str::to_owned);
    let fingerprint = parameters["sshPublicKeyFingerprint"].as_str().unwrap();
    let key = served_key(&rig.agent, "root", fingerprint);
    (zone, key, push)
}

/// mssh to `root@instance` running `command`, with static credentials and
/// the two service endpoint variables.
fn mssh_with_endpoint_variables(rig: &Rig, instance: &str, command: String) -> Command {
    let mut mssh = client(installed("mssh"));
    static_credentials(&mut mssh)
        .env("AWS_ENDPOINT_URL_EC2", rig.endpoint())
        .env("AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT", rig.endpoint())
        .args(rig.ssh_flags())
        .args([format!("root@{instance}"), command]);
    mssh
}

#[test]
fn mssh_with_service_endpoint_variables_runs_a_remote_command() {
    let rig = Rig::start("oc-mssh", PUBLIC);
    let (command, expected) = rig.remote_for_mssh("mssh-ok", 7);
    let ran = run(mssh_with_endpoint_variables(&rig, PUBLIC, command), b"");
    // The remote command's output, and its status as mssh's.
    assert_eq!(
        (ran.code, ran.stdout.trim()),
        (7, expected.as_str()),
        "{}",
        ran.report()
    );

    let (zone, key, push) = pushed(&rig, PUBLIC);
    assert_eq!(zone.as_deref(), Some("us-west-2c"));
    assert_eq!(key, ("RSA".to_owned(), 2048));
    // It asked EC2 where the instance is rather than being told; mssh made
    // both calls.
    let lookups = succeeded(&rig.server, "DescribeInstances");
    assert_eq!(lookups.len(), 1, "{lookups:#?}");
    for call in [&push, &lookups[0]] {
        assert!(
            call["userAgent"]
                .as_str()
                .unwrap()
                .starts_with("aws-ec2-instance-connect-cli/1.0.3 "),
            "{call}"
        );
    }

    // The host key is checked, not accepted: with another key on file for
    // that address, ssh refuses before authenticating.
    let other = tempfile::tempdir().unwrap();
    let other_key = common::ssh_keygen(other.path(), "other-host");
    std::fs::write(
        &rig.known_hosts,
        format!(
            "[127.0.0.1]:{} {}",
            rig.port,
            std::fs::read_to_string(other_key.with_extension("pub")).unwrap()
        ),
    )
    .unwrap();
    let (command, _) = rig.remote_for_mssh("never", 0);
    let refused = run(mssh_with_endpoint_variables(&rig, PUBLIC, command), b"");
    assert_eq!(refused.code, 255, "{}", refused.report());
    assert!(
        refused.stderr.contains("Host key verification failed"),
        "{}",
        refused.report()
    );
    assert_eq!(refused.stdout, "");
}

#[test]
fn mssh_with_the_global_endpoint_variable_reaches_a_private_address() {
    let rig = Rig::start("oc-mssh-global", PRIVATE_ONLY);
    let (command, expected) = rig.remote_for_mssh("private-ok", 0);
    let mut mssh = client(installed("mssh"));
    static_credentials(&mut mssh)
        .env("AWS_ENDPOINT_URL", rig.endpoint())
        .args(rig.ssh_flags())
        .args([format!("root@{PRIVATE_ONLY}"), command]);
    let ran = run(mssh, b"");
    assert_eq!(
        (ran.code, ran.stdout.trim()),
        (0, expected.as_str()),
        "{}",
        ran.report()
    );
    let (zone, key, _) = pushed(&rig, PRIVATE_ONLY);
    assert_eq!(zone.as_deref(), Some("us-west-2b"));
    assert_eq!(key, ("RSA".to_owned(), 2048));
}

#[test]
fn msftp_uploads_and_downloads_a_file() {
    let rig = Rig::start("oc-msftp", PUBLIC);
    let files = tempfile::tempdir().unwrap();
    let remote = tempfile::tempdir().unwrap();
    // Bytes no line-ending or text conversion would leave alone.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let bytes: Vec<u8> = (0..300_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let up = files.path().join("up.bin");
    let down = files.path().join("down.bin");
    let there = remote.path().join("there.bin");
    std::fs::write(&up, &bytes).unwrap();
    let batch = files.path().join("batch");
    std::fs::write(
        &batch,
        format!(
            "put {} {}\nget {} {}\n",
            up.display(),
            there.display(),
            there.display(),
            down.display()
        ),
    )
    .unwrap();

    let mut msftp = client(installed("msftp"));
    static_credentials(&mut msftp)
        .env("AWS_ENDPOINT_URL_EC2", rig.endpoint())
        .env("AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT", rig.endpoint())
        .args(["-P", &rig.port.to_string(), "-b"])
        .arg(&batch)
        .args(rig.host_key_options())
        .arg(format!("root@{PUBLIC}"));
    let ran = run(msftp, b"");
    assert_eq!(ran.code, 0, "{}", ran.report());
    assert!(std::fs::read(&there).unwrap() == bytes, "upload differs");
    assert!(std::fs::read(&down).unwrap() == bytes, "download differs");
    let (zone, key, _) = pushed(&rig, PUBLIC);
    assert_eq!(zone.as_deref(), Some("us-west-2c"));
    assert_eq!(key, ("RSA".to_owned(), 2048));
}

#[test]
fn mssh_with_a_named_profile_from_shared_files() {
    let rig = Rig::start("oc-mssh-profile", PUBLIC);
    let aws = tempfile::tempdir().unwrap();
    let credentials = aws.path().join("credentials");
    let config = aws.path().join("config");
    // The default profile would be refused (an unknown key, another
    // region): only the named profile logs in.
    std::fs::write(
        &credentials,
        format!(
            "[default]\naws_access_key_id = AKIDNOSUCHKEYEXAMPLE\n\
             aws_secret_access_key = notTheSecret/EXAMPLE000000000000000000\n\n\
             [eic-admin]\naws_access_key_id = {0}\naws_secret_access_key = {1}\n\n\
             [eic-local]\naws_access_key_id = {0}\naws_secret_access_key = {1}\n",
            ADMIN.0, ADMIN.1
        ),
    )
    .unwrap();
    std::fs::write(
        &config,
        format!(
            "[default]\nregion = us-east-1\n\n\
             [profile eic-admin]\nregion = {REGION}\n\n\
             [profile eic-local]\nregion = {REGION}\nservices = eic\n\n\
             [services eic]\nec2 =\n  endpoint_url = {0}\n\
             ec2_instance_connect =\n  endpoint_url = {0}\n",
            rig.endpoint()
        ),
    )
    .unwrap();
    let mssh = |profile_flag: bool, endpoints_in_env: bool, tag: &str| {
        let (command, expected) = rig.remote_for_mssh(tag, 0);
        let mut mssh = client(installed("mssh"));
        mssh.env("AWS_CONFIG_FILE", &config)
            .env("AWS_SHARED_CREDENTIALS_FILE", &credentials);
        if profile_flag {
            mssh.args(["-u", "eic-admin"]);
        } else {
            mssh.env("AWS_PROFILE", "eic-local");
        }
        if endpoints_in_env {
            mssh.env("AWS_ENDPOINT_URL_EC2", rig.endpoint())
                .env("AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT", rig.endpoint());
        }
        mssh.args(rig.ssh_flags())
            .args([format!("root@{PUBLIC}"), command]);
        (run(mssh, b""), expected)
    };

    // `-u PROFILE`, endpoints from the environment.
    let (ran, expected) = mssh(true, true, "profile-flag-ok");
    assert_eq!(
        (ran.code, ran.stdout.trim()),
        (0, expected.as_str()),
        "{}",
        ran.report()
    );
    let (_, key, push) = pushed(&rig, PUBLIC);
    assert_eq!(key, ("RSA".to_owned(), 2048));
    assert_eq!(push["userIdentity"]["accessKeyId"], ADMIN.0);
    assert_eq!(push["awsRegion"], REGION);

    // AWS_PROFILE, endpoints from the profile's `services` section: nothing
    // but the profile's name in the environment.
    let (ran, expected) = mssh(false, false, "profile-env-ok");
    assert_eq!(
        (ran.code, ran.stdout.trim()),
        (0, expected.as_str()),
        "{}",
        ran.report()
    );
    let pushes = succeeded(&rig.server, "SendSSHPublicKey");
    assert_eq!(pushes.len(), 2, "{pushes:#?}");
    let parameters = &pushes[1]["requestParameters"];
    assert_eq!(pushes[1]["userIdentity"]["accessKeyId"], ADMIN.0);
    assert_eq!(parameters["availabilityZone"], "us-west-2c");
    let fingerprint = parameters["sshPublicKeyFingerprint"].as_str().unwrap();
    assert_eq!(
        served_key(&rig.agent, "root", fingerprint),
        ("RSA".to_owned(), 2048)
    );
}

#[test]
fn cli_v2_direct_ssh_logs_in_with_an_ed25519_key_and_no_zone() {
    let rig = Rig::start("oc-cli-v2", PUBLIC);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/cli_v2_ssh.py");
    let mut cli = client("python3");
    // --endpoint-url reaches only the CLI's EC2 client; the push goes
    // where the environment says.
    static_credentials(&mut cli)
        .env("AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT", rig.endpoint())
        .arg(script)
        .args(["--instance-id", PUBLIC, "--os-user", "root"])
        .args(["--ssh-port", &rig.port.to_string()])
        .args(["--connection-type", "direct", "--endpoint-url"])
        .arg(rig.endpoint())
        .arg("--known-hosts")
        .arg(&rig.known_hosts);
    // The CLI takes no remote command: the session reads it from stdin.
    let (command, expected) = rig.remote("cli-v2-ok");
    let ran = run(cli, format!("{command}\nexit 5\n").as_bytes());
    assert_eq!(
        (ran.code, ran.stdout.trim()),
        (5, expected.as_str()),
        "{}",
        ran.report()
    );
    let (zone, key, _) = pushed(&rig, PUBLIC);
    assert_eq!(zone, None);
    assert_eq!(key, ("ED25519".to_owned(), 256));
    assert_eq!(succeeded(&rig.server, "DescribeInstances").len(), 1);
}

#[test]
fn mssh_to_an_unknown_instance_says_so_and_fails() {
    let server = Server::start(INSTANCES);
    let unknown = "i-0fffffffffffffff0";
    let mut mssh = client(installed("mssh"));
    static_credentials(&mut mssh)
        .env("AWS_ENDPOINT_URL_EC2", server.endpoint())
        .env("AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT", server.endpoint())
        .args([&format!("root@{unknown}"), "true"]);
    let ran = run(mssh, b"");
    // What a user sees, in the test's log.
    eprintln!("{}", ran.report());
    let all = format!("{}{}", ran.stdout, ran.stderr);
    assert_ne!(ran.code, 0, "{}", ran.report());
    assert!(
        all.contains("InvalidInstanceID.NotFound") && all.contains(unknown),
        "{}",
        ran.report()
    );
    assert!(!all.contains("Traceback"), "{}", ran.report());
    assert!(succeeded(&server, "SendSSHPublicKey").is_empty());
}
