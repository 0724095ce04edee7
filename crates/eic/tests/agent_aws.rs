//! AWS mode of `eic authorized-keys` (no `--config`): a fake IMDS on
//! loopback, serving what the real `eic server` signed, stands in for EC2
//! through the test-only `EIC_IMDS_ENDPOINT`, `EIC_SYS_ROOT` and
//! `EIC_TRUST_DIR`.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::{eic, push_with_boto3, ssh_keygen, Server};

const TOKEN: &str = "fake-imds-token";

/// IMDSv2 as the scripts use it: a token from `PUT /latest/api/token`,
/// then `/latest/meta-data/<path>` answered from `paths` (404 otherwise),
/// one request per connection.
struct FakeImds {
    url: String,
    paths: Arc<Mutex<HashMap<String, String>>>,
}

impl FakeImds {
    fn start(paths: HashMap<String, String>) -> FakeImds {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let paths = Arc::new(Mutex::new(paths));
        let served = Arc::clone(&paths);
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                answer(stream, &served.lock().unwrap());
            }
        });
        FakeImds { url, paths }
    }

    fn set(&self, path: &str, body: &str) {
        self.paths
            .lock()
            .unwrap()
            .insert(path.to_owned(), body.to_owned());
    }

    fn remove(&self, path: &str) {
        self.paths.lock().unwrap().remove(path);
    }
}

fn answer(mut stream: TcpStream, paths: &HashMap<String, String>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65536 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let request = String::from_utf8_lossy(&request);
    let mut lines = request.lines();
    let mut start = lines.next().unwrap_or("").split(' ');
    let (method, target) = (start.next().unwrap_or(""), start.next().unwrap_or(""));
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let (status, body) = if method == "PUT" && target == "/latest/api/token" {
        match headers.get("x-aws-ec2-metadata-token-ttl-seconds") {
            Some(_) => (200, TOKEN.to_owned()),
            None => (400, String::new()),
        }
    } else if headers.get("x-aws-ec2-metadata-token").map(String::as_str) != Some(TOKEN) {
        (401, String::new())
    } else {
        match target
            .strip_prefix("/latest/meta-data/")
            .and_then(|p| paths.get(p))
        {
            Some(body) => (200, body.clone()),
            None => (404, String::new()),
        }
    };
    let mut response = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        response.push_str(&body);
    }
    let _ = stream.write_all(response.as_bytes());
}

/// `eic authorized-keys <args>` in AWS mode; returns (code, stdout, stderr).
fn aws_mode(
    imds: &FakeImds,
    sys: &Path,
    trust: Option<&Path>,
    args: &[&str],
) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eic"));
    cmd.arg("authorized-keys")
        .args(args)
        .env("EIC_IMDS_ENDPOINT", &imds.url)
        .env("EIC_SYS_ROOT", sys);
    match trust {
        Some(dir) => cmd.env("EIC_TRUST_DIR", dir),
        None => cmd.env_remove("EIC_TRUST_DIR"),
    };
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fake /sys: Xen's hypervisor uuid, Nitro's board asset tag, or neither.
fn sys_root(dir: &Path, name: &str, uuid: Option<&str>, asset_tag: Option<&str>) -> PathBuf {
    let root = dir.join(name);
    std::fs::create_dir_all(&root).unwrap();
    if let Some(uuid) = uuid {
        std::fs::create_dir_all(root.join("hypervisor")).unwrap();
        std::fs::write(root.join("hypervisor/uuid"), uuid).unwrap();
    }
    if let Some(tag) = asset_tag {
        let dmi = root.join("devices/virtual/dmi/id");
        std::fs::create_dir_all(&dmi).unwrap();
        std::fs::write(dmi.join("board_asset_tag"), tag).unwrap();
    }
    root
}

#[test]
fn aws_mode_follows_the_official_scripts() {
    // AWS mode trusts only allowlisted domains under the system store: a
    // server signing as amazonaws.com, its CA standing in for the store.
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        &[("domain = \"eic.internal\"", "domain = \"amazonaws.com\"")],
        "",
    );
    let (code, agent_toml, err) = eic(&[
        "agent-config",
        "--config",
        server.config.to_str().unwrap(),
        "--data-dir",
        server.data_dir.to_str().unwrap(),
        "--instance-id",
        "i-abcd1234",
        "--endpoint",
        &format!("http://{}", server.instance_api),
    ]);
    assert_eq!(code, 0, "{err}");
    let agent: toml::Value = toml::from_str(&agent_toml).unwrap();
    let credential = agent["credential"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let trust = dir.path().join("certs");
    std::fs::create_dir(&trust).unwrap();
    std::fs::write(
        trust.join("eic-ca.pem"),
        agent["trust_anchor"].as_str().unwrap(),
    )
    .unwrap();

    let key = ssh_keygen(dir.path(), "mine");
    push_with_boto3(&server, "i-abcd1234", "root", &key.with_extension("pub"));
    let key_line = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let fingerprint = String::from_utf8(
        Command::new("ssh-keygen")
            .arg("-lf")
            .arg(key.with_extension("pub"))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .split_whitespace()
    .nth(1)
    .unwrap()
    .to_owned();

    // What IMDS would serve, taken from the server's IMDS-shaped paths.
    let get = |path: &str| -> String {
        ureq::get(&format!(
            "http://{}/latest/meta-data/{path}",
            server.instance_api
        ))
        .header("X-aws-ec2-metadata-token", &credential)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
    };
    let mut paths = HashMap::from([
        ("instance-id/".to_owned(), "i-abcd1234".to_owned()),
        (
            "placement/availability-zone/".to_owned(),
            "us-west-2a".to_owned(),
        ),
        ("services/domain/".to_owned(), "amazonaws.com".to_owned()),
    ]);
    for path in [
        "managed-ssh-keys/signer-cert/",
        "managed-ssh-keys/signer-ocsp/",
        "managed-ssh-keys/active-keys/root/",
    ] {
        paths.insert(path.to_owned(), get(path));
    }
    let names = paths["managed-ssh-keys/signer-ocsp/"].clone();
    assert!(!names.trim().is_empty());
    for name in names.split_whitespace() {
        let path = format!("managed-ssh-keys/signer-ocsp/{name}");
        paths.insert(path.clone(), get(&path));
    }
    let imds = FakeImds::start(paths);
    let xen = sys_root(
        dir.path(),
        "xen",
        Some("ec2e1916-9099-7caf-fd21-012345abcdef"),
        None,
    );
    let nitro = sys_root(dir.path(), "nitro", None, Some("i-abcd1234"));
    let elsewhere = sys_root(
        dir.path(),
        "elsewhere",
        Some("4c4c4544-0000-1234"),
        Some("i-abcd1234"),
    );
    let bare = sys_root(dir.path(), "bare", None, None);
    let quiet = (0, String::new(), String::new());

    // The happy path, on Xen and on Nitro, with and without %f.
    for sys in [&xen, &nitro] {
        let (code, out, err) = aws_mode(&imds, sys, Some(&trust), &["root"]);
        assert_eq!((code, out.as_str()), (0, key_line.as_str()), "{err}");
        let (code, out, err) = aws_mode(&imds, sys, Some(&trust), &["root", &fingerprint]);
        assert_eq!((code, out.as_str()), (0, key_line.as_str()), "{err}");
    }
    // Another key's fingerprint: no key, the parser's 255.
    let other = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let (code, out, _) = aws_mode(&imds, &xen, Some(&trust), &["root", other]);
    assert_eq!((code, out.as_str()), (255, ""));
    // The system store (the default) does not know our CA: refused.
    let (code, out, _) = aws_mode(&imds, &xen, None, &["root"]);
    assert_eq!((code, out.as_str()), (1, ""));

    // Not EC2 (no uuid and no asset tag, a uuid that is not Xen's on EC2
    // even with a matching tag): exit 0, nothing printed.
    for sys in [&bare, &elsewhere] {
        let (code, out, _) = aws_mode(&imds, sys, Some(&trust), &["root"]);
        assert_eq!((code, out.as_str()), (0, ""));
    }
    // No such user, or a name no user can have: quiet.
    for user in ["no-such-user-eic", "../root", "root/x"] {
        assert_eq!(
            aws_mode(&imds, &xen, Some(&trust), &[user]),
            quiet,
            "{user}"
        );
    }

    // A domain off the allowlist: refused with the script's 255.
    imds.set("services/domain/", "eic.internal");
    let (code, out, _) = aws_mode(&imds, &xen, Some(&trust), &["root"]);
    assert_eq!((code, out.as_str()), (255, ""));
    imds.set("services/domain/", "amazonaws.com");
    // A Local Zone fails the script's zone pattern: 255.
    imds.set("placement/availability-zone/", "us-west-2-lax-1a");
    let (code, out, _) = aws_mode(&imds, &xen, Some(&trust), &["root"]);
    assert_eq!((code, out.as_str()), (255, ""));
    imds.set("placement/availability-zone/", "us-west-2a");

    // No keys (the HEAD answers 404): exit 0, no output, nothing logged.
    imds.remove("managed-ssh-keys/active-keys/root/");
    assert_eq!(aws_mode(&imds, &xen, Some(&trust), &["root"]), quiet);

    // An IMDS that accepts but never answers: each request gives up after
    // a second, and nothing is printed.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let hung = FakeImds {
        url: format!("http://{}", silent.local_addr().unwrap()),
        paths: Arc::default(),
    };
    let started = std::time::Instant::now();
    let (code, out, _) = aws_mode(&hung, &xen, Some(&trust), &["root"]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(started.elapsed() < std::time::Duration::from_secs(3));

    // An instance id outside ^i-[0-9a-f]{8,32}$: quiet.
    for id in ["i-xyz", "i-ABCD1234", ""] {
        imds.set("instance-id/", id);
        assert_eq!(
            aws_mode(&imds, &xen, Some(&trust), &["root"]),
            quiet,
            "{id}"
        );
    }
}
