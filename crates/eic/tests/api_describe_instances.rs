//! EC2 DescribeInstances on the API listener, through boto3's `ec2` client
//! (tests/clients/describe_instances_boto3.py), and eic's extension
//! DescribeInstanceHostKeys signed by botocore's own SigV4
//! (tests/clients/describe_host_keys_botocore.py).
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use common::{eic, run_python, run_python_with, Server};

/// A principal of account 111122223333 that may push but not describe.
const EXTRA: &str = r#"
[[principals]]
arn = "arn:aws:iam::111122223333:user/pusher"
access_keys = [{ id = "AKIDPUSHEREXAMPLE", secret = "pusherSecret/EXAMPLE00000000000000000" }]
policies = ['''
{
  "Version": "2012-10-17",
  "Statement": [{
    "Effect": "Allow",
    "Action": "ec2-instance-connect:SendSSHPublicKey",
    "Resource": "*"
  }]
}
''']

[[principals]]
arn = "arn:aws:iam::111122223333:user/retired"
access_keys = [{ id = "AKIDINACTIVEEXAMPLE", secret = "inactiveSecret/EXAMPLE000000000000000", status = "inactive" }]
"#;

#[test]
fn describe_instances_with_boto3() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_in(data.path(), EXTRA);
    run_python("describe_instances_boto3.py", &server);
}

/// The principal's bucket (shared with pushes, DescribeInstances and
/// DescribeInstanceHostKeys) refuses with EC2's RequestLimitExceeded.
#[test]
fn describe_instances_throttled() {
    let server = Server::start(
        r#"
[throttling]
principal = { rate = 0.001, burst = 3.0 }
"#,
    );
    run_python("describe_throttled_boto3.py", &server);
}

/// sshd-style host keys made by ssh-keygen in `dir` (ecdsa and ed25519,
/// commented `comment`); returns their `.pub` lines in file name order, as
/// sshd's directory lists them.
fn host_keys(dir: &Path, comment: &str) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    for kind in ["ecdsa", "ed25519"] {
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", "", "-C", comment, "-f"])
            .arg(dir.join(format!("ssh_host_{kind}_key")))
            .status()
            .unwrap();
        assert!(status.success());
    }
    ["ecdsa", "ed25519"]
        .iter()
        .map(|kind| {
            let path = dir.join(format!("ssh_host_{kind}_key.pub"));
            std::fs::read_to_string(path).unwrap().trim().to_owned()
        })
        .collect()
}

/// `type base64`: a key line without its comment.
fn served(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn admin(server: &Server, args: &[&str]) -> String {
    let (code, out, err) = server.admin(args);
    assert_eq!(code, 0, "{args:?}: {err}");
    out.trim().to_owned()
}

/// DescribeInstanceHostKeys for configured instances (i-abcd1234 with
/// `ssh_port` and `host_keys`, i-0123456789abcdef0 with neither, the
/// terminated one with keys it must not show), an instance that enrolled
/// with `eic agent join --ssh-port`, and the serial console gateway's key
/// as `eic serial-host-key` prints it.
#[test]
fn describe_instance_host_keys_with_botocore_signing() {
    let keys = tempfile::tempdir().unwrap();
    let configured = host_keys(&keys.path().join("static"), "root@static");
    let toml_list = |lines: &[String]| {
        lines
            .iter()
            .map(|l| format!("\"{l}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let dev = format!(
        "tags = {{ Team = \"dev\" }}\nssh_port = 2200\nhost_keys = [{}]\n",
        toml_list(&configured)
    );
    let terminated = format!(
        "state = \"terminated\"\nssh_port = 2022\nhost_keys = [{}]\n",
        toml_list(&configured)
    );
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        &[
            ("tags = { Team = \"dev\" }\n", &dev),
            ("state = \"terminated\"\n", &terminated),
            // A join pins the listener's CA, which "auto" TLS gives it.
            ("[instance_api]\n", "[instance_api]\ntls = \"auto\"\n"),
        ],
        EXTRA,
    );

    let machine = keys.path().join("machine");
    let reported = host_keys(&machine, "root@machine");
    let token = admin(
        &server,
        &["join-token", "create", "--account", "111122223333"],
    );
    let instance_api = format!("https://{}", server.instance_api);
    let agent_config = keys.path().join("agent.toml");
    let (code, enrolled, err) = eic(&[
        "agent",
        "join",
        "--server",
        &instance_api,
        "--token",
        &token,
        "--config-out",
        agent_config.to_str().unwrap(),
        "--private-ip",
        "127.0.0.1",
        "--ssh-port",
        "2201",
        "--ssh-host-key-dir",
        machine.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");

    let fingerprint = admin(&server, &["serial-host-key"]);
    let json = |lines: &[String]| {
        serde_json::to_string(&lines.iter().map(|l| served(l)).collect::<Vec<_>>()).unwrap()
    };
    let (static_keys, enrolled_keys) = (json(&configured), json(&reported));
    let serial_port = server.serial.port().to_string();
    run_python_with(
        "describe_host_keys_botocore.py",
        &server,
        &[
            ("EIC_STATIC_KEYS", OsStr::new(&static_keys)),
            ("EIC_ENROLLED", OsStr::new(enrolled.trim())),
            ("EIC_ENROLLED_PORT", OsStr::new("2201")),
            ("EIC_ENROLLED_KEYS", OsStr::new(&enrolled_keys)),
            ("EIC_SERIAL_PORT", OsStr::new(&serial_port)),
            ("EIC_SERIAL_FINGERPRINT", OsStr::new(&fingerprint)),
        ],
    );
}
