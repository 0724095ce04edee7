//! The fleet end to end, with the real binary on both sides: `eic
//! join-token create`, `eic agent join` over HTTPS pinned to the token's CA,
//! a login through a real sshd with a key pushed by boto3 to the enrolled
//! instance, `eic agent run` heartbeats (stopped with SIGSTOP: pushes turn
//! into EC2InstanceUnavailableException, and back on SIGCONT; SIGTERM
//! reports stopped), `eic instances`, and every way a token is refused.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::sshd::{ssh, start_sshd, RootDir};
use common::{
    eic, push_with_boto3, run_python_with, ssh_keygen, try_push_with_boto3, wait_until, Server,
};

const FAST_FLEET: &str = "[fleet]\nheartbeat_secs = 1\nunavailable_after_secs = 6\n";
const TLS_AUTO: (&str, &str) = ("[instance_api]\n", "[instance_api]\ntls = \"auto\"\n");

fn create_token(server: &Server, extra: &[&str]) -> String {
    let mut args = vec!["join-token", "create", "--account", "111122223333"];
    args.extend_from_slice(extra);
    let (code, out, err) = server.admin(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    out.trim().to_owned()
}

/// A machine: a directory with sshd-style host keys and its agent config.
struct Machine {
    dir: tempfile::TempDir,
}

impl Machine {
    fn new() -> Machine {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("ssh");
        std::fs::create_dir(&keys).unwrap();
        assert!(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(keys.join("ssh_host_ed25519_key"))
            .status()
            .unwrap()
            .success());
        Machine { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("agent.toml")
    }

    fn host_key(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("ssh/ssh_host_ed25519_key.pub")).unwrap();
        let mut fields = text.split_whitespace();
        format!("{} {}", fields.next().unwrap(), fields.next().unwrap())
    }

    fn join(&self, url: &str, token: &str, extra: &[&str]) -> (i32, String, String) {
        let config = self.config();
        let keys = self.dir.path().join("ssh");
        let mut args = vec![
            "agent",
            "join",
            "--server",
            url,
            "--token",
            token,
            "--config-out",
            config.to_str().unwrap(),
            "--private-ip",
            "127.0.0.1",
            "--ssh-host-key-dir",
            keys.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        eic(&args)
    }

    /// `eic agent run`, told of systemd's notify socket as its unit would be.
    fn run(&self) -> Agent {
        let path = self.dir.path().join("notify");
        let _ = std::fs::remove_file(&path);
        let notify = UnixDatagram::bind(&path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_eic"))
            .args(["agent", "run", "--config"])
            .arg(self.config())
            .env("NOTIFY_SOCKET", &path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Agent(child, notify)
    }
}

struct Agent(Child, UnixDatagram);

impl Agent {
    /// The agent's next notification to systemd.
    fn notified(&self) -> String {
        self.1
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let mut buffer = [0u8; 4096];
        let n = self.1.recv(&mut buffer).expect("a notification");
        String::from_utf8_lossy(&buffer[..n]).into_owned()
    }

    fn signal(&self, name: &str) {
        assert!(Command::new("kill")
            .args([&format!("-{name}"), &self.0.id().to_string()])
            .status()
            .unwrap()
            .success());
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn https(server: &Server) -> String {
    format!("https://{}", server.instance_api)
}

fn show(server: &Server, id: &str) -> serde_json::Value {
    let (code, out, err) = server.admin(&["instances", "show", id]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

fn push(server: &Server, id: &str, key: &Path) -> Result<String, String> {
    try_push_with_boto3(server, id, "root", &key.with_extension("pub"))
}

#[test]
fn machines_join_heartbeat_log_in_and_stop() {
    let server = Server::start_through(&[], &[TLS_AUTO], FAST_FLEET);
    let token = create_token(&server, &["--uses", "2", "--tag", "env=test"]);
    let (a, b) = (Machine::new(), Machine::new());

    let (code, id_a, err) = a.join(&https(&server), &token, &["--instance-type", "m5.large"]);
    assert_eq!(code, 0, "{err}");
    let id_a = id_a.trim().to_owned();
    assert!(
        id_a.len() == 19
            && id_a.starts_with("i-")
            && id_a[2..]
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{id_a}"
    );
    let mode = std::fs::metadata(a.config()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let (code, id_b, err) = b.join(&https(&server), &token, &[]);
    assert_eq!(code, 0, "{err}");
    let id_b = id_b.trim().to_owned();
    assert_ne!(id_a, id_b);

    // Two uses, spent: a third machine is refused and gets no config.
    let c = Machine::new();
    let (code, _, err) = c.join(&https(&server), &token, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("no uses left"), "{err}");
    assert!(!c.config().exists());

    let shown = show(&server, &id_a);
    assert_eq!(shown["source"], "enrolled");
    assert_eq!(shown["state"], "running");
    assert_eq!(shown["instanceType"], "m5.large");
    assert_eq!(shown["tags"]["env"], "test");
    assert_eq!(shown["privateIpAddress"], "127.0.0.1");
    assert_eq!(shown["hostKeys"][0], a.host_key());

    // The machines' agents heartbeat from here on, as on a real machine: an
    // instance silent for unavailable_after_secs (6 s here: six heartbeats,
    // slack for a loaded machine) is unavailable.
    let agent = a.run();
    let _other = b.run();
    // Up for systemd after its first heartbeat (Type=notify).
    assert_eq!(agent.notified(), "READY=1\nSTATUS=heartbeating\n");

    // A login with a pushed key through a real sshd on the enrolled instance.
    let root = RootDir::new("fleet");
    let agent_config = root.0.join("agent.toml");
    std::fs::copy(a.config(), &agent_config).unwrap();
    std::fs::set_permissions(&agent_config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_sshd, port) = start_sshd(&root.0, &agent_config);
    let keys = tempfile::tempdir().unwrap();
    let key = ssh_keygen(keys.path(), "user");
    assert_eq!(ssh(port, &key, "root").0, 255);
    push_with_boto3(&server, &id_a, "root", &key.with_extension("pub"));
    let (code, out) = ssh(port, &key, "root");
    assert_eq!((code, out.trim()), (0, "logged-in-as-root"));

    // Heartbeats keep it available; a stopped agent makes it
    // connection-lost within the bound, and back when it resumes.
    assert!(push(&server, &id_a, &key).is_ok());
    agent.signal("STOP");
    wait_until(20, "connection-lost", || {
        push(&server, &id_a, &key) == Err("EC2InstanceUnavailableException".into())
    });
    // Commands see liveness through the server's snapshot, a moment late.
    wait_until(10, "the command to see it", || {
        show(&server, &id_a)["state"] == "connection-lost"
    });
    // The other machine still heartbeats.
    assert!(push(&server, &id_b, &key).is_ok());
    // The diagnostics listener counts them by state.
    for (state, count) in [("running", 1.0), ("connection-lost", 1.0), ("stopped", 0.0)] {
        let series = format!(r#"eic_fleet_instances{{state="{state}"}}"#);
        assert_eq!(server.metric(&series), count, "{series}");
    }
    agent.signal("CONT");
    wait_until(20, "available again", || push(&server, &id_a, &key).is_ok());

    // A clean shutdown reports stopped.
    agent.signal("TERM");
    assert_eq!(agent.notified(), "STOPPING=1\nSTATUS=draining\n");
    wait_until(20, "stopped", || {
        push(&server, &id_a, &key) == Err("EC2InstanceStateInvalidException".into())
    });
    assert_eq!(show(&server, &id_a)["state"], "stopped");

    // Joining again (with a new token: a join always spends a use) keeps
    // the id, since the config holds its credential, and it runs again.
    let again = create_token(&server, &[]);
    let (code, id_again, err) = a.join(&https(&server), &again, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(id_again.trim(), id_a);
    assert!(push(&server, &id_a, &key).is_ok());

    // boto3 finds it as on EC2; its tags feed IAM conditions as a
    // configured instance's do.
    let expect = |outcome: &str| {
        run_python_with(
            "fleet_boto3.py",
            &server,
            &[
                ("EIC_INSTANCE", std::ffi::OsStr::new(&id_a)),
                ("EIC_EXPECT_ALICE", std::ffi::OsStr::new(outcome)),
            ],
        )
    };
    expect("denied");
    let (code, _, err) = server.admin(&["instances", "tag", &id_a, "Team=dev"]);
    assert_eq!(code, 0, "{err}");
    expect("allowed");

    // Tags an operator sets feed DescribeInstances and IAM alike.
    let (code, _, err) = server.admin(&["instances", "tag", &id_b, "team=blue"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(show(&server, &id_b)["tags"]["team"], "blue");
    let (code, _, err) = server.admin(&["instances", "untag", &id_b, "env"]);
    assert_eq!(code, 0, "{err}");
    assert!(show(&server, &id_b)["tags"].get("env").is_none());

    // Removed: pushes refused, and its credential no longer fetches keys.
    let (code, _, err) = server.admin(&["instances", "remove", &id_b]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(show(&server, &id_b)["state"], "terminated");
    assert_eq!(
        push(&server, &id_b, &key),
        Err("EC2InstanceStateInvalidException".into())
    );
    let (code, out, _) = eic(&[
        "authorized-keys",
        "--config",
        b.config().to_str().unwrap(),
        "root",
    ]);
    assert_ne!(code, 0);
    assert_eq!(out, "");

    let (code, list, err) = server.admin(&["instances", "list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
    assert!(list
        .iter()
        .any(|i| i["instanceId"] == "i-abcd1234" && i["source"] == "config"));
    assert!(list.iter().any(|i| i["instanceId"] == id_a.as_str()));

    // Creation and every use are on record.
    let audit = std::fs::read_to_string(server.data_dir.join("audit.log")).unwrap();
    for event in [
        "CreateJoinToken",
        "JoinInstance",
        "InstanceStateChange",
        "TagInstance",
        "RemoveInstance",
    ] {
        assert!(
            audit.contains(&format!("\"eventName\":\"{event}\"")),
            "{event}"
        );
    }
    assert!(
        !audit.contains(token.split('.').nth(2).unwrap()),
        "the secret is never logged"
    );
}

#[test]
fn tokens_are_refused_when_forged_revoked_expired_or_for_another_ca() {
    let server = Server::start_through(&[], &[TLS_AUTO], FAST_FLEET);
    let machine = Machine::new();
    let refused = |token: &str, why: &str| {
        let (code, out, err) = machine.join(&https(&server), token, &[]);
        assert_ne!(code, 0, "{token}");
        assert_eq!(out, "");
        assert!(err.contains(why), "{why}: {err}");
        assert!(!machine.config().exists());
    };

    // The secret changed: not a token the server knows.
    let token = create_token(&server, &[]);
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[2] = "A".repeat(43);
    refused(&parts.join("."), "not valid");

    let revoked = create_token(&server, &[]);
    let id = revoked.split('.').nth(1).unwrap();
    let (code, _, err) = server.admin(&["join-token", "revoke", id]);
    assert_eq!(code, 0, "{err}");
    refused(&revoked, "revoked");

    let expired = create_token(&server, &["--ttl", "1s"]);
    wait_until(10, "the token to expire", || {
        let (_, out, _) = server.admin(&["join-token", "list", "--json"]);
        let list: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        list.iter()
            .any(|t| t["id"] == expired.split('.').nth(1).unwrap() && t["state"] == "expired")
    });
    refused(&expired, "expired");

    // A token naming another CA: the server's certificate does not chain
    // to it, so the agent never sends the token.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[3] = "0".repeat(64);
    refused(&parts.join("."), "certificate");

    // A server whose listener has another CA (another data dir) is refused
    // with a good token of the first.
    let other = Server::start_through(&[], &[TLS_AUTO], FAST_FLEET);
    let (code, _, err) = machine.join(&https(&other), &token, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("certificate"), "{err}");

    // Plain http needs an explicit --insecure-http.
    let (code, _, err) = machine.join(&format!("http://{}", server.instance_api), &token, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("insecure-http"), "{err}");

    // The token still works: nothing above spent it.
    let (code, id, err) = machine.join(&https(&server), &token, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(id.starts_with("i-"));

    let (code, list, _) = server.admin(&["join-token", "list", "--json"]);
    assert_eq!(code, 0);
    assert!(!list.contains("secret"), "{list}");
}
