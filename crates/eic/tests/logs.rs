//! `[log] format = "json"`: every line the server writes to stderr is one
//! JSON object, and a line about a request carries its request id, the one
//! the caller got in `x-amzn-RequestId`. Nothing secret reaches the log.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{repo_root, ADMIN};

#[test]
fn json_logs_are_one_object_a_line_with_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("eic.toml");
    let dev = std::fs::read_to_string(repo_root().join("examples/dev.toml")).unwrap();
    std::fs::write(&config, format!("{dev}\n[log]\nformat = \"json\"\n")).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_eic"))
        .args(["server", "--config"])
        .arg(&config)
        .args(common::FREE_PORTS)
        .args(common::FREE_TUNNEL_PORT)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "info,eic=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(server.stdout.take().unwrap()).lines();
    let api = stdout
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("listening api ").map(str::to_owned))
        .unwrap();

    // A push to an instance that does not exist: refused, and logged at
    // debug inside the request's span.
    let script = format!(
        r#"
import boto3
from botocore.exceptions import ClientError
c = boto3.client("ec2-instance-connect", region_name="us-west-2", endpoint_url="http://{api}",
                 aws_access_key_id="{}", aws_secret_access_key="{}")
try:
    c.send_ssh_public_key(InstanceId="i-0fffffffffffffff0", InstanceOSUser="ec2-user", SSHPublicKey="{}")
except ClientError as e:
    print(e.response["ResponseMetadata"]["RequestId"])
"#,
        ADMIN.0,
        ADMIN.1,
        common::ED25519_KEY
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let request_id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(!request_id.is_empty());

    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let stderr = BufReader::new(server.stderr.take().unwrap());
    let lines: Vec<String> = stderr.lines().map_while(Result::ok).collect();
    server.wait().unwrap();
    let events: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    assert!(
        events.iter().any(|e| e["fields"]["message"] == "listening"),
        "{lines:?}"
    );
    let refused = events
        .iter()
        .find(|e| e["fields"]["message"] == "request refused")
        .unwrap_or_else(|| panic!("no refusal line in {lines:?}"));
    assert_eq!(
        refused["span"]["request_id"],
        request_id.as_str(),
        "{refused}"
    );
    assert_eq!(refused["fields"]["code"], "EC2InstanceNotFoundException");
    assert!(events
        .iter()
        .all(|e| e["level"].is_string() && e["timestamp"].is_string()));
    let text = lines.join("\n");
    assert!(!text.contains(ADMIN.1) && !text.contains("AAAAC3NzaC1lZDI1NTE5AAAAIEz1"));
}
