//! A real OpenSSH sshd whose AuthorizedKeysCommand is `eic authorized-keys`,
//! and the `ssh` client that logs in to it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A directory sshd accepts for the AuthorizedKeysCommand: sshd refuses a
/// command whose path has a group- or world-writable component, so not
/// under /tmp; /run is root's and 0755.
pub struct RootDir(pub PathBuf);

impl RootDir {
    pub fn new(tag: &str) -> RootDir {
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

pub struct Sshd(Child);

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

/// sshd on a free loopback port, its AuthorizedKeysCommand `eic
/// authorized-keys` (a copy in `dir`) with `agent_config`; it serves sftp
/// (sshd's own, no server binary to find).
pub fn start_sshd(dir: &Path, agent_config: &Path) -> (Sshd, u16) {
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
             PermitRootLogin prohibit-password\nLogLevel VERBOSE\n\
             Subsystem sftp internal-sftp\n",
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
pub fn ssh(port: u16, key: &Path, user: &str) -> (i32, String) {
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

/// Writes `path` as the agent config of `instance` on `server`, readable
/// by the AuthorizedKeysCommandUser (nobody).
pub fn write_agent_config(server: &super::Server, instance: &str, path: &Path) {
    let (code, agent_toml, err) = super::eic(&[
        "agent-config",
        "--config",
        server.config.to_str().unwrap(),
        "--data-dir",
        server.data_dir.to_str().unwrap(),
        "--instance-id",
        instance,
        "--endpoint",
        &format!("http://{}", server.instance_api),
    ]);
    assert_eq!(code, 0, "{err}");
    std::fs::write(path, agent_toml).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// Writes `path` as a known_hosts file naming only the host key of the sshd
/// that [`start_sshd`] started in `dir` on `port`, so a client that checks
/// host keys strictly accepts that sshd and nothing else.
pub fn write_known_hosts(dir: &Path, port: u16, path: &Path) {
    let key = std::fs::read_to_string(dir.join("host_ed25519.pub")).unwrap();
    std::fs::write(path, format!("[127.0.0.1]:{port} {key}")).unwrap();
}
