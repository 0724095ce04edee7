//! The EC2 Instance Connect Endpoint's tunnel against what the AWS CLI v2's
//! `aws ec2-instance-connect open-tunnel` does (tests/clients/
//! eice_open_tunnel.py: botocore's presigning and awscrt's WebSocket, as
//! the CLI drives them) through the TLS listener on port 443 of a loopback
//! address, trusting eic's CA through SSL_CERT_FILE, to a real sshd: ssh
//! logs in through it as a ProxyCommand, and each refusal reaches the user
//! the way the CLI shows it.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rustls::pki_types::pem::PemObject;

use common::sshd::{start_sshd, write_agent_config, write_known_hosts, RootDir, Sshd};
use common::{eic, push_with_boto3, ssh_keygen, Server, ADMIN};

const ENDPOINT: &str = "eice-0de00000000000001";
const INSTANCE: &str = "i-abcd1234";

/// A principal whose OpenTunnel is held to the three condition keys.
const CAROL: (&str, &str) = (
    "AKIDCAROLEXAMPLE",
    "carolSecretKey/EXAMPLE00000000000000000",
);

/// The endpoint of examples/dev.toml, on its own loopback address (the CLI
/// dials port 443 of the DNS name; each test needs its own), allowing
/// the test sshd's port and one more.
struct Rig {
    server: Server,
    _sshd: Sshd,
    sshd_port: u16,
    address: String,
    ca: PathBuf,
    key: PathBuf,
    known_hosts: PathBuf,
    dir: RootDir,
}

impl Rig {
    fn start(tag: &str, address: &str) -> Rig {
        let dir = RootDir::new(tag);
        // sshd first: its port goes into the endpoint's allowed ports.
        let agent = dir.0.join("agent.toml");
        std::fs::write(&agent, "").unwrap();
        let (sshd, sshd_port) = start_sshd(&dir.0, &agent);
        let carol = format!(
            r#"
[[principals]]
arn = "arn:aws:iam::111122223333:user/carol"
access_keys = [{{ id = "{}", secret = "{}" }}]
policies = ['''
{{"Version": "2012-10-17", "Statement": [{{
  "Effect": "Allow",
  "Action": "ec2-instance-connect:OpenTunnel",
  "Resource": "arn:aws:ec2:us-west-2:111122223333:instance-connect-endpoint/{ENDPOINT}",
  "Condition": {{
    "NumericEquals": {{"ec2-instance-connect:remotePort": "{sshd_port}"}},
    "IpAddress": {{"ec2-instance-connect:privateIpAddress": "127.0.0.1/32"}},
    "NumericLessThanEquals": {{"ec2-instance-connect:maxTunnelDuration": "600"}}
  }}
}}]}}
''']

# In the endpoint's VPC, stopped.
[[instances]]
id = "i-0f5e0000000000031"
private_ip_address = "127.0.10.31"
vpc_id = "vpc-0de00000000000001"
subnet_id = "subnet-0de00000000000001"
account = "111122223333"
state = "stopped"
availability_zone = "us-west-2a"
instance_type = "t3.micro"
"#,
            CAROL.0, CAROL.1
        );
        let data = dir.0.join("data");
        let server = Server::start_full(
            &data,
            &[(
                "dns_name = \"localhost\"",
                &format!("dns_name = \"{address}\"\nallowed_ports = [{sshd_port}, 2]"),
            )],
            &carol,
            &["--tunnel-listen", &format!("{address}:443")],
        );
        assert_eq!(server.tunnel.to_string(), format!("{address}:443"));
        write_agent_config(&server, INSTANCE, &agent);
        let known_hosts = dir.0.join("known_hosts");
        write_known_hosts(&dir.0, sshd_port, &known_hosts);
        let (code, pem, err) = eic(&[
            "ca-certificate",
            "--config",
            server.config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        let ca = dir.0.join("ca.pem");
        std::fs::write(&ca, pem).unwrap();
        let key = ssh_keygen(&dir.0, "id_ed25519");
        Rig {
            server,
            _sshd: sshd,
            sshd_port,
            address: address.to_owned(),
            ca,
            key,
            known_hosts,
            dir,
        }
    }

    /// The CLI's `open-tunnel` to `ip:port`, with `extra` arguments, as
    /// `creds`; the environment is what the CLI reads and nothing of the
    /// host's.
    fn open_tunnel(&self, creds: (&str, &str), ip: &str, port: u16, extra: &[&str]) -> Command {
        let mut command = Command::new("python3");
        command
            .arg(clients().join("eice_open_tunnel.py"))
            .args([
                "--region",
                "us-west-2",
                "--instance-connect-endpoint-id",
                ENDPOINT,
            ])
            .args(["--instance-connect-endpoint-dns-name", &self.address])
            .args([
                "--private-ip-address",
                ip,
                "--remote-port",
                &port.to_string(),
            ])
            .args(extra);
        self.cli_environment(&mut command, creds);
        command
    }

    fn cli_environment(&self, command: &mut Command, creds: (&str, &str)) {
        command
            .env("AWS_ACCESS_KEY_ID", creds.0)
            .env("AWS_SECRET_ACCESS_KEY", creds.1)
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_ENDPOINT_URL_EC2", self.server.endpoint())
            .env("SSL_CERT_FILE", &self.ca)
            .env_remove("SSL_CERT_DIR");
    }

    /// `ssh` through the tunnel as ProxyCommand, running `remote`.
    fn ssh_through_tunnel(&self, remote: &str) -> Output {
        let tunnel = self.open_tunnel(ADMIN, "127.0.0.1", self.sshd_port, &[]);
        let proxy = std::iter::once(tunnel.get_program())
            .chain(tunnel.get_args())
            .map(|a| a.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let mut ssh = Command::new("ssh");
        ssh.args(["-o", &format!("ProxyCommand={proxy}")])
            .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i"])
            .arg(&self.key)
            .args(["-o", "StrictHostKeyChecking=yes", "-o"])
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .args([
                "-o",
                &format!("HostKeyAlias=[127.0.0.1]:{}", self.sshd_port),
            ])
            .args(["-o", "ConnectTimeout=20", "root@i-abcd1234", remote])
            .stdin(Stdio::null());
        self.cli_environment(&mut ssh, ADMIN);
        ssh.output().unwrap()
    }

    fn audit_events(&self, name: &str) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.server.data_dir.join("audit.log")).unwrap();
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e["eventName"] == name)
            .collect()
    }
}

fn clients() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn ssh_logs_in_through_the_tunnel_and_both_ends_are_audited() {
    let rig = Rig::start("tunnel-login", "127.0.0.21");
    push_with_boto3(
        &rig.server,
        INSTANCE,
        "root",
        &rig.key.with_extension("pub"),
    );
    // 200 KB back from the instance: several frames through the relay.
    let out = rig.ssh_through_tunnel("echo in-through-eice; head -c 200000 /dev/zero | tr '\\0' x");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("in-through-eice\n"), "{stdout}");
    assert_eq!(stdout.matches('x').count(), 200_000);

    let opened = rig.audit_events("OpenTunnel");
    assert_eq!(opened.len(), 1, "{opened:?}");
    let open = &opened[0];
    assert_eq!(open["eventSource"], "ec2-instance-connect.amazonaws.com");
    assert_eq!(
        open["userIdentity"]["arn"],
        "arn:aws:iam::111122223333:user/admin"
    );
    assert_eq!(
        open["requestParameters"]["instanceConnectEndpointId"],
        ENDPOINT
    );
    assert_eq!(open["requestParameters"]["remotePort"], rig.sshd_port);
    assert_eq!(open["requestParameters"]["privateIpAddress"], "127.0.0.1");
    assert_eq!(open["requestParameters"]["maxTunnelDuration"], 3600);
    assert!(open["userAgent"]
        .as_str()
        .unwrap()
        .contains("ec2-instance-connect.open-tunnel"));
    assert!(open.get("errorCode").is_none(), "{open}");
    // The end is written when the relay finishes, which may be just after
    // ssh exits.
    common::wait_until(10, "the tunnel's closing event", || {
        !rig.audit_events("CloseTunnel").is_empty()
    });
    let close = &rig.audit_events("CloseTunnel")[0];
    assert_eq!(close["requestID"], open["requestID"]);
    let details = &close["serviceEventDetails"];
    // Both of the VPC's instances at 127.0.0.1 are the address; the
    // smaller id is recorded.
    assert_eq!(details["instanceId"], "i-0123456789abcdef0");
    assert!(
        details["bytesToClient"].as_u64().unwrap() > 200_000,
        "{details}"
    );
    assert!(
        details["bytesToInstance"].as_u64().unwrap() > 1_000,
        "{details}"
    );
    assert!(
        ["InstanceClosed", "ClientClosed", "ClientDisconnected"]
            .contains(&details["ending"].as_str().unwrap()),
        "{details}"
    );
}

/// The CLI as ssh runs it: stdin, stdout and stderr pipes.
fn spawn_piped(command: &mut Command) -> std::process::Child {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// sshd speaks first: its identification line comes through the tunnel.
fn assert_sshd_answers(child: &mut std::process::Child) {
    let mut banner = [0u8; 8];
    child
        .stdout
        .take()
        .unwrap()
        .read_exact(&mut banner)
        .unwrap();
    assert_eq!(&banner, b"SSH-2.0-");
}

/// What the CLI printed and its exit status, for a tunnel that is refused
/// before (or closed after) its upgrade; stdin stays open and empty.
fn refused(mut tunnel: Command) -> (Option<i32>, String) {
    let mut child = spawn_piped(&mut tunnel);
    let _stdin = child.stdin.take();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (child.wait().unwrap().code(), stderr)
}

#[test]
fn each_refusal_reaches_the_user_as_the_cli_shows_it() {
    let rig = Rig::start("tunnel-refusals", "127.0.0.22");
    let port = rig.sshd_port;
    let api_port = rig.server.api.port();
    let api_port_refused = format!("does not allow port {api_port}");
    let cases: Vec<(&str, Command, &str)> = vec![
        (
            "a bad signature",
            rig.open_tunnel(ADMIN, "127.0.0.1", port, &["--tamper-signature"]),
            "The request signature we calculated does not match",
        ),
        (
            "an expired presign",
            rig.open_tunnel(ADMIN, "127.0.0.1", port, &["--expires-in", "1", "--clock-skew", "-10"]),
            "expired",
        ),
        (
            "an unknown access key",
            rig.open_tunnel(("AKIDNOBODY", "nothing"), "127.0.0.1", port, &[]),
            "The security token included in the request is invalid",
        ),
        (
            "a policy that holds remotePort to the sshd's port",
            rig.open_tunnel(CAROL, "127.0.0.1", 2, &[]),
            "is not authorized to perform: ec2-instance-connect:OpenTunnel on resource: arn:aws:ec2:us-west-2:111122223333:instance-connect-endpoint/eice-0de00000000000001",
        ),
        (
            "a policy that holds privateIpAddress to 127.0.0.1",
            rig.open_tunnel(CAROL, "127.0.0.2", port, &[]),
            "is not authorized to perform: ec2-instance-connect:OpenTunnel",
        ),
        (
            "a policy that holds maxTunnelDuration to 600 s",
            rig.open_tunnel(CAROL, "127.0.0.1", port, &["--max-tunnel-duration", "601"]),
            "is not authorized to perform: ec2-instance-connect:OpenTunnel",
        ),
        (
            "an address that is no instance of the endpoint's VPC",
            rig.open_tunnel(ADMIN, "127.0.0.9", port, &[]),
            "127.0.0.9 is not the address of an instance in vpc-0de00000000000001",
        ),
        (
            "a stopped instance's address",
            rig.open_tunnel(ADMIN, "127.0.10.31", port, &[]),
            "is not running",
        ),
        (
            "the server's own API port on the instance's address",
            rig.open_tunnel(ADMIN, "127.0.0.1", api_port, &[]),
            &api_port_refused,
        ),
        (
            "an endpoint of another account",
            rig.open_tunnel(common::BOB, "127.0.0.1", port, &[]),
            "The instance connect endpoint 'eice-0de00000000000001' does not exist",
        ),
    ];
    for (what, tunnel, message) in cases {
        let (code, stderr) = refused(tunnel);
        assert_eq!(code, Some(255), "{what}: {stderr}");
        assert!(stderr.contains(message), "{what}: {stderr}");
        assert!(
            stderr.contains("AWS_ERROR_HTTP_WEBSOCKET_UPGRADE_FAILURE"),
            "{what}: {stderr}"
        );
    }
    // carol within her conditions gets through.
    let (code, stderr) =
        refused(rig.open_tunnel(CAROL, "127.0.0.1", port, &["--max-tunnel-duration", "1"]));
    assert_eq!(code, Some(255));
    assert!(
        stderr.contains("Websocket Closure Reason: Max tunnel duration reached"),
        "{stderr}"
    );
    let refusals = rig.audit_events("OpenTunnel");
    assert!(
        refusals
            .iter()
            .any(|e| e["errorCode"] == "AccessDeniedException"),
        "{refusals:?}"
    );
    assert!(
        refusals
            .iter()
            .any(|e| e["errorCode"] == "SignatureDoesNotMatch"),
        "{refusals:?}"
    );
}

#[test]
fn the_duration_running_out_closes_the_tunnel_with_the_clis_message() {
    let rig = Rig::start("tunnel-duration", "127.0.0.23");
    let mut tunnel = rig.open_tunnel(
        ADMIN,
        "127.0.0.1",
        rig.sshd_port,
        &["--max-tunnel-duration", "2"],
    );
    let mut child = spawn_piped(&mut tunnel);
    let _stdin = child.stdin.take();
    assert_sshd_answers(&mut child);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(255));
    assert_eq!(
        stderr,
        "\naws: [ERROR]: Websocket Closure Reason: Max tunnel duration reached\n"
    );
    common::wait_until(10, "the tunnel's closing event", || {
        !rig.audit_events("CloseTunnel").is_empty()
    });
    let close = &rig.audit_events("CloseTunnel")[0];
    assert_eq!(
        close["serviceEventDetails"]["ending"],
        "MaxTunnelDurationReached"
    );
    assert_eq!(close["serviceEventDetails"]["closeCode"], 1008);
}

/// A client that is not a WebSocket, or signs nothing, is refused before
/// any work, in the shape the CLI reads.
#[test]
fn requests_that_are_no_tunnel_are_refused_before_any_work() {
    let rig = Rig::start("tunnel-raw", "127.0.0.24");
    let connector = {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(&rig.ca).unwrap();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        std::sync::Arc::new(config)
    };
    let exchange = |request: String| -> (u16, String) {
        let name = rustls::pki_types::ServerName::try_from(rig.address.clone()).unwrap();
        let mut tls = rustls::ClientConnection::new(connector.clone(), name).unwrap();
        let mut tcp = std::net::TcpStream::connect(rig.server.tunnel).unwrap();
        let mut stream = rustls::Stream::new(&mut tls, &mut tcp);
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let response = text(&response);
        let status = response.split(' ').nth(1).unwrap().parse().unwrap();
        (status, response)
    };
    let host = &rig.address;
    let (status, body) = exchange(format!(
        "GET /openTunnel?instanceConnectEndpointId={ENDPOINT}&remotePort=22&privateIpAddress=127.0.0.1 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(status, 426, "{body}");
    let (status, body) = exchange(format!(
        "GET /openTunnel?instanceConnectEndpointId={ENDPOINT}&remotePort=22&privateIpAddress=127.0.0.1 HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    ));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains(r#""Message""#), "{body}");
    let (status, _) = exchange(format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(status, 404);
    // Nothing reached the instance, and no tunnel was audited as opened.
    assert!(rig.audit_events("CloseTunnel").is_empty());
    let _ = &rig.dir;
}

/// `eic` as a user runs it: the test's credentials and endpoints only,
/// eic's CA through SSL_CERT_FILE.
fn eic_as_user(rig: &Rig, creds: (&str, &str)) -> Command {
    let home = rig.dir.0.join("home");
    let runtime = rig.dir.0.join("run");
    for dir in [&home, &runtime] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::set_permissions(
        &runtime,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_eic"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("HOME", &home)
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("AWS_ACCESS_KEY_ID", creds.0)
        .env("AWS_SECRET_ACCESS_KEY", creds.1)
        .env("AWS_REGION", "us-west-2")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", rig.server.endpoint())
        .env("SSL_CERT_FILE", &rig.ca)
        .stdin(Stdio::null());
    command
}

/// `eic ssh` to an instance without a public address, in a VPC with an
/// endpoint, goes through it without being told (as the CLI v2's
/// `--connection-type auto`), looking the endpoint up with the AWS SDK's
/// DescribeInstanceConnectEndpoints; `--tunnel` says so outright.
#[test]
fn eic_ssh_goes_through_the_endpoint_of_the_instances_vpc() {
    let rig = Rig::start("tunnel-eic-ssh", "127.0.0.25");
    let port = rig.sshd_port.to_string();
    for forced in [false, true] {
        let mut command = eic_as_user(&rig, ADMIN);
        command.arg("ssh").args(["--ssh-port", &port]);
        if forced {
            command.arg("--tunnel");
        }
        let out = command
            .args([
                "root@i-abcd1234",
                "--",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
            ])
            .arg(format!("UserKnownHostsFile={}", rig.known_hosts.display()))
            .args(["-o", &format!("HostKeyAlias=[127.0.0.1]:{port}")])
            .args(["echo", "through-$SSH_CONNECTION"])
            .output()
            .unwrap();
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(stdout.contains("through-127.0.0.1 "), "{stdout}");
    }
    let opened = rig.audit_events("OpenTunnel");
    assert_eq!(opened.len(), 2, "{opened:?}");
    assert!(
        opened.iter().all(|e| e.get("errorCode").is_none()),
        "{opened:?}"
    );
    let described = rig.audit_events("DescribeInstanceConnectEndpoints");
    assert!(!described.is_empty());
    assert_eq!(described[0]["eventSource"], "ec2.amazonaws.com");
}

/// `eic open-tunnel` refused by the endpoint says why, in one line.
#[test]
fn eic_open_tunnel_reports_the_endpoints_refusal() {
    let rig = Rig::start("tunnel-eic-refused", "127.0.0.26");
    let out = eic_as_user(&rig, CAROL)
        .arg("open-tunnel")
        .args(["--instance-connect-endpoint-id", ENDPOINT])
        .args(["--instance-connect-endpoint-dns-name", &rig.address])
        .args(["--private-ip-address", "127.0.0.1", "--remote-port", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("eic open-tunnel: eice-0de00000000000001 refused the tunnel (403 Forbidden): User: arn:aws:iam::111122223333:user/carol is not authorized"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// The CLI's own lookups: with only `--instance-id`, open-tunnel asks
/// DescribeInstances for the private address and VPC and
/// DescribeInstanceConnectEndpoints for the endpoint and its DNS name.
#[test]
fn the_clis_open_tunnel_finds_address_and_endpoint_by_itself() {
    let rig = Rig::start("tunnel-cli-lookup", "127.0.0.27");
    let mut command = Command::new("python3");
    command
        .arg(clients().join("eice_open_tunnel.py"))
        .args(["--region", "us-west-2", "--instance-id", INSTANCE])
        .args(["--remote-port", &rig.sshd_port.to_string()]);
    rig.cli_environment(&mut command, ADMIN);
    let mut child = spawn_piped(&mut command);
    assert_sshd_answers(&mut child);
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
    let described = rig.audit_events("DescribeInstanceConnectEndpoints");
    assert_eq!(described.len(), 1, "{described:?}");
    assert!(
        described[0].get("errorCode").is_none(),
        "{:?}",
        described[0]
    );
}
