//! The instance side end to end: keys pushed with boto3 let `ssh` into a
//! real OpenSSH sshd whose AuthorizedKeysCommand is `eic authorized-keys`,
//! for that user on that instance only, for 60 seconds.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{eic, push_with_boto3, ssh_keygen, Server};

/// A directory sshd accepts for the AuthorizedKeysCommand: sshd refuses a
/// command whose path has a group- or world-writable component, so not
/// under /tmp; /run is root's and 0755.
struct RootDir(PathBuf);

impl RootDir {
    fn new(tag: &str) -> RootDir {
        let path = PathBuf::from(format!("/run/eic-test-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        RootDir(path)
    }
}

impl Drop for RootDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Sshd(Child);

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_sshd(dir: &Path, agent_config: &Path) -> (Sshd, u16) {
    std::fs::create_dir_all("/run/sshd").unwrap();
    let eic_copy = dir.join("eic");
    std::fs::copy(env!("CARGO_BIN_EXE_eic"), &eic_copy).unwrap();
    std::fs::set_permissions(&eic_copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let host_key = dir.join("host_ed25519");
    assert!(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&host_key)
        .status()
        .unwrap()
        .success());
    let port = free_port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nPidFile {dir}/sshd.pid\n\
             AuthorizedKeysFile none\n\
             AuthorizedKeysCommand {eic} authorized-keys --config {agent} %u %f\n\
             AuthorizedKeysCommandUser nobody\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             PermitRootLogin prohibit-password\nLogLevel VERBOSE\n",
            host = host_key.display(),
            dir = dir.display(),
            eic = eic_copy.display(),
            agent = agent_config.display(),
        ),
    )
    .unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stderr(Stdio::null())
        .spawn()
        .expect("start sshd");
    let sshd = Sshd(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "sshd did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    (sshd, port)
}

/// `ssh … root@127.0.0.1 echo`, returning (exit code, stdout).
fn ssh(port: u16, key: &Path, user: &str) -> (i32, String) {
    let out = Command::new("ssh")
        .args(["-p", &port.to_string(), "-i"])
        .arg(key)
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
            &format!("{user}@127.0.0.1"),
            "echo logged-in-as-$(id -un)",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn pushed_keys_log_in_through_real_sshd_for_sixty_seconds() {
    let server = Server::start("");
    let dir = RootDir::new("sshd");
    let data = server.data_dir.to_str().unwrap().to_owned();
    let config = server.config.to_str().unwrap().to_owned();
    let endpoint = format!("http://{}", server.instance_api);
    let (code, agent_toml, err) = eic(&[
        "agent-config",
        "--config",
        &config,
        "--data-dir",
        &data,
        "--instance-id",
        "i-abcd1234",
        "--endpoint",
        &endpoint,
    ]);
    assert_eq!(code, 0, "{err}");
    let agent = dir.0.join("agent.toml");
    std::fs::write(&agent, &agent_toml).unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_sshd, port) = start_sshd(&dir.0, &agent);

    let keys = tempfile::tempdir().unwrap();
    let mine = ssh_keygen(keys.path(), "mine");
    let other_user = ssh_keygen(keys.path(), "other-user");
    let other_instance = ssh_keygen(keys.path(), "other-instance");
    let never = ssh_keygen(keys.path(), "never-pushed");

    // Nothing pushed yet: refused, and a clean exit 0 with no output.
    assert_eq!(ssh(port, &mine, "root").0, 255);
    let (code, out, _) = eic(&[
        "authorized-keys",
        "--config",
        agent.to_str().unwrap(),
        "root",
    ]);
    assert_eq!((code, out.as_str()), (0, ""));

    let pushed_at = Instant::now();
    push_with_boto3(&server, "i-abcd1234", "root", &mine.with_extension("pub"));
    push_with_boto3(
        &server,
        "i-abcd1234",
        "ec2-user",
        &other_user.with_extension("pub"),
    );
    push_with_boto3(
        &server,
        "i-0123456789abcdef0",
        "root",
        &other_instance.with_extension("pub"),
    );

    let (code, out) = ssh(port, &mine, "root");
    assert_eq!((code, out.trim()), (0, "logged-in-as-root"));
    // Pushed for another user, another instance, or never: refused.
    assert_eq!(ssh(port, &other_user, "root").0, 255);
    assert_eq!(ssh(port, &other_instance, "root").0, 255);
    assert_eq!(ssh(port, &never, "root").0, 255);

    // The agent's own checks, without sshd in between.
    let (code, out, _) = eic(&[
        "authorized-keys",
        "--config",
        agent.to_str().unwrap(),
        "root",
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        std::fs::read_to_string(mine.with_extension("pub")).unwrap()
    );
    // A wrong CN, a CA other than the server's (another server's), or a
    // revoked credential: nothing printed.
    let anchor = |toml_text: &str| -> String {
        let value: toml::Value = toml::from_str(toml_text).unwrap();
        value["trust_anchor"].as_str().unwrap().to_owned()
    };
    let other = Server::start("");
    let (_, other_toml, _) = eic(&[
        "agent-config",
        "--config",
        other.config.to_str().unwrap(),
        "--data-dir",
        other.data_dir.to_str().unwrap(),
        "--instance-id",
        "i-abcd1234",
        "--endpoint",
        &endpoint,
    ]);
    let wrong_cn = agent_toml.replace(
        "managed-ssh-signer.us-west-2.eic.internal",
        "managed-ssh-signer.us-east-1.eic.internal",
    );
    let wrong_ca = agent_toml.replace(&anchor(&agent_toml), &anchor(&other_toml));
    assert_ne!(wrong_ca, agent_toml);
    for (name, text) in [("wrong-cn", wrong_cn), ("wrong-ca", wrong_ca)] {
        let path = dir.0.join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        let (code, out, _) = eic(&[
            "authorized-keys",
            "--config",
            path.to_str().unwrap(),
            "root",
        ]);
        assert_eq!((code, out.as_str()), (1, ""), "{name}");
    }

    // The IMDS-shaped paths, fed to the official parser's flags: the blob
    // verifies as served, and one changed byte refuses all of it.
    let credential = toml::from_str::<toml::Value>(&agent_toml).unwrap()["credential"]
        .as_str()
        .unwrap()
        .to_owned();
    let get = |path: &str| -> String {
        ureq::get(&format!("{endpoint}/latest/meta-data/{path}"))
            .header("X-aws-ec2-metadata-token", &credential)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    };
    let blob = get("managed-ssh-keys/active-keys/root/");
    let chain = get("managed-ssh-keys/signer-cert/");
    let staples = dir.0.join("ocsp");
    std::fs::create_dir_all(&staples).unwrap();
    for name in get("managed-ssh-keys/signer-ocsp/").split_whitespace() {
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD
            .decode(get(&format!("managed-ssh-keys/signer-ocsp/{name}")).trim())
            .unwrap();
        std::fs::write(staples.join(name), der).unwrap();
    }
    let ca = dir.0.join("ca.pem");
    std::fs::write(&ca, anchor(&agent_toml)).unwrap();
    let parse = |blob_text: &str| {
        let file = dir.0.join("blob");
        std::fs::write(&file, blob_text).unwrap();
        eic(&[
            "authorized-keys",
            "-x",
            "false",
            "-p",
            file.to_str().unwrap(),
            "-o",
            "openssl",
            "-d",
            "/nonexistent",
            "-s",
            &chain,
            "-i",
            "i-abcd1234",
            "-c",
            "managed-ssh-signer.us-west-2.eic.internal",
            "-a",
            ca.to_str().unwrap(),
            "-v",
            staples.to_str().unwrap(),
        ])
    };
    let (code, out, _) = parse(&blob);
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            std::fs::read_to_string(mine.with_extension("pub"))
                .unwrap()
                .as_str()
        )
    );
    let tampered = blob.replace(" mine", " mind");
    assert_ne!(tampered, blob);
    let (code, out, _) = parse(&tampered);
    assert_eq!((code, out.as_str()), (1, ""));

    let (code, _, _) = eic(&[
        "instance-credential",
        "revoke",
        "--config",
        &config,
        "--data-dir",
        &data,
        "--instance-id",
        "i-abcd1234",
    ]);
    assert_eq!(code, 0);
    assert_eq!(ssh(port, &mine, "root").0, 255);
    let (code, out, _) = eic(&[
        "authorized-keys",
        "--config",
        agent.to_str().unwrap(),
        "root",
    ]);
    assert_eq!((code, out.as_str()), (1, ""));
    let (code, rotated, _) = eic(&[
        "instance-credential",
        "rotate",
        "--config",
        &config,
        "--data-dir",
        &data,
        "--instance-id",
        "i-abcd1234",
    ]);
    assert_eq!(code, 0);
    std::fs::write(&agent, agent_toml.replace(&credential, rotated.trim())).unwrap();
    assert_eq!(ssh(port, &mine, "root").0, 0);

    // Past its 60 seconds the key no longer logs in: one real wait.
    let expiry = pushed_at + Duration::from_secs(61);
    std::thread::sleep(expiry.saturating_duration_since(Instant::now()));
    assert_eq!(ssh(port, &mine, "root").0, 255);
    let (code, out, _) = eic(&[
        "authorized-keys",
        "--config",
        agent.to_str().unwrap(),
        "root",
    ]);
    assert_eq!((code, out.as_str()), (0, ""));
}
