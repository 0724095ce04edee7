//! `eic agent join`: this machine becomes an enrolled instance. It reports
//! what it is (hostname, addresses, sshd's host keys, OS and kernel) to the
//! instance-facing listener with a join token, and writes the agent config
//! the answer makes (mode 0600, written aside and renamed into place, so a
//! refused join leaves nothing and an earlier config whole).
//!
//! Over https the server must present a certificate chained to the CA
//! whose hash the token carries (agent/http.rs pins it); that CA is then
//! written into the config as `tls_ca`, and nothing else is ever trusted.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::{Deserialize, Serialize};

use super::http::{Client, Trust};
use super::AgentConfig;
use crate::enrollment::{self, ErrorBody, JoinRequest, JoinResponse, ReportedFacts};
use crate::join_token::JoinTokenText;
use crate::secret::Secret;

/// A join is one request; the server's store may take a moment.
const JOIN_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Args)]
pub struct JoinArgs {
    /// The instance-facing listener's URL (https://HOST:PORT).
    #[arg(long, value_name = "URL")]
    server: String,
    /// The join token (`eic join-token create`).
    #[arg(long, value_name = "TOKEN")]
    token: String,
    /// Where to write the agent config (mode 0600).
    #[arg(long, value_name = "FILE")]
    config_out: PathBuf,
    /// Allow a plain http:// server: the token and credential cross the network unprotected.
    #[arg(long)]
    insecure_http: bool,
    #[command(flatten)]
    machine: MachineArgs,
    /// The zone this machine is in (the token's, if it names one).
    #[arg(long, value_name = "AZ")]
    availability_zone: Option<String>,
    /// The instance type to show (family.size, e.g. m5.large).
    #[arg(long, value_name = "TYPE")]
    instance_type: Option<String>,
}

/// How the agent finds what it reports; kept in the agent config so `run`
/// reports the same way.
#[derive(Args, Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineArgs {
    /// The private IPv4 address to report (default: the one this machine reaches the server from).
    #[arg(long, value_name = "IP")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<Ipv4Addr>,
    /// A public IPv4 address to report.
    #[arg(long, value_name = "IP")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<Ipv4Addr>,
    /// An IPv6 address to report.
    #[arg(long, value_name = "IP")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
    /// The port sshd listens on.
    #[arg(long, value_name = "PORT", default_value_t = 22)]
    #[serde(default = "default_ssh_port")]
    pub ssh_port: u16,
    /// Where sshd's host public keys are (ssh_host_*_key.pub).
    #[arg(long, value_name = "DIR", default_value = "/etc/ssh")]
    #[serde(default = "default_host_key_dir")]
    pub ssh_host_key_dir: PathBuf,
}

fn default_ssh_port() -> u16 {
    22
}

fn default_host_key_dir() -> PathBuf {
    PathBuf::from("/etc/ssh")
}

pub fn join(args: JoinArgs) -> anyhow::Result<()> {
    let token = JoinTokenText::parse(&args.token)
        .context("--token is not a join token (eicjoin1.…, from `eic join-token create`)")?;
    let client = match &token.ca_sha256 {
        Some(hash) => Client::new(
            Trust::Pinned(format!("sha256:{hash}")),
            args.insecure_http,
            JOIN_TIMEOUT,
        )?,
        None if args.insecure_http => Client::plain_http(JOIN_TIMEOUT),
        None => anyhow::bail!(
            "the token is for a listener without TLS; join over plain http only with --insecure-http (or set [instance_api] tls = \"auto\" and create a new token)"
        ),
    };
    let endpoint = args.server.trim_end_matches('/').to_owned();
    // The same machine joining again presents the credential its last join
    // wrote, and keeps its instance id.
    let earlier = std::fs::read_to_string(&args.config_out)
        .ok()
        .and_then(|text| toml::from_str::<AgentConfig>(&text).ok())
        .filter(|c| c.endpoint == endpoint);
    let request = JoinRequest {
        token: Secret::new(args.token.trim().to_owned()),
        facts: collect_facts(&args.machine, &endpoint)?,
        instance_type: args.instance_type.clone(),
        availability_zone: args.availability_zone.clone(),
        credential: earlier.as_ref().map(|c| c.credential.clone()),
    };
    let body = serde_json::to_vec(&request)?;
    let reply = client.send(
        http::Request::post(format!("{endpoint}{}", enrollment::JOIN_PATH))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)?,
    )?;
    let status = reply.response.status();
    if !status.is_success() {
        let message = serde_json::from_slice::<ErrorBody>(reply.response.body())
            .map(|e| e.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(reply.response.body()).into_owned());
        anyhow::bail!("the server refused the join ({status}): {message}");
    }
    let joined: JoinResponse = serde_json::from_slice(reply.response.body())
        .context("the server's answer to the join is not what eic sends")?;
    let config = AgentConfig {
        endpoint,
        instance_id: joined.instance_id.clone(),
        credential: joined.credential,
        signer_cn: joined.signer_cn,
        trust_anchor: joined.trust_anchor,
        tls_ca: reply.pinned.map(|anchor| anchor.pem),
        insecure_http: args.insecure_http,
        machine: Some(args.machine),
    };
    crate::private_file::replace_private(&args.config_out, toml::to_string(&config)?.as_bytes())
        .with_context(|| format!("cannot write {}", args.config_out.display()))?;
    println!("{}", joined.instance_id);
    Ok(())
}

/// What this machine is now, found the way `args` say.
pub(super) fn collect_facts(args: &MachineArgs, endpoint: &str) -> anyhow::Result<ReportedFacts> {
    let uname = rustix::system::uname();
    Ok(ReportedFacts {
        hostname: uname.nodename().to_string_lossy().into_owned(),
        private_ip_address: match args.private_ip {
            Some(ip) => Some(ip),
            None => source_address(endpoint),
        },
        public_ip_address: args.public_ip,
        ipv6_address: args.ipv6,
        ssh_port: args.ssh_port,
        host_keys: host_keys(&args.ssh_host_key_dir)?,
        os: os_name(),
        kernel: uname.release().to_string_lossy().into_owned(),
    })
}

/// The local IPv4 address packets to the server leave from: a UDP socket
/// "connected" to it picks the route without sending anything.
fn source_address(endpoint: &str) -> Option<Ipv4Addr> {
    let uri: http::Uri = endpoint.parse().ok()?;
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let server = (host, port).to_socket_addrs().ok()?.find(|a| a.is_ipv4())?;
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect(server).ok()?;
    match socket.local_addr().ok()?.ip() {
        IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
        _ => None,
    }
}

/// sshd's host public keys in `dir`, in name order; a file that is not a
/// host key is skipped with a warning (the server would refuse the join).
fn host_keys(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read sshd's host keys in {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("ssh_host_") && n.ends_with("_key.pub"))
        })
        .collect();
    paths.sort();
    let mut keys = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        match enrollment::host_key_line(text.trim()) {
            Ok(line) => keys.push(line),
            Err(why) => eprintln!("eic agent: skipping {}: {why}", path.display()),
        }
    }
    Ok(keys)
}

/// os-release's PRETTY_NAME, as the machine names itself.
fn os_name() -> String {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').chars().take(256).collect())
        .unwrap_or_else(|| "Linux".into())
}
