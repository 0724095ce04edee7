//! `eic proxy`, ssh's ProxyCommand, and `eic known-hosts`, its
//! KnownHostsCommand: what lets plain ssh, scp, sftp, rsync and git reach
//! an instance by its id (see [`super::ssh_config`]).
//!
//! The proxy pushes the public half of the key ssh is about to offer, then
//! joins its stdin and stdout to the instance's sshd. The key is pushed
//! when the connection is made, so it is offered well inside its 60 s.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Args;

use super::host_keys::{self, HostKeys};
use super::known_hosts::{self, host_pattern};
use super::lookup::{self, AddressChoice, InstanceRef, Target};
use super::ssh::DEFAULT_USER;
use super::ssh_config::default_key;
use super::tunnel::{self, Route};
use super::{api_error, Aws, AwsArgs};

/// How long the TCP connection to sshd may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A public key file is one line; anything longer is not one.
const MAX_PUBLIC_KEY_BYTES: u64 = 16 * 1024;

#[derive(Args, Debug)]
pub struct ProxyArgs {
    #[command(flatten)]
    pub aws: AwsArgs,
    /// The OS user ssh logs in as (ssh's %r).
    #[arg(long, default_value = DEFAULT_USER)]
    pub user: String,
    /// The public half of the key ssh offers (default: the one `eic ssh-config` made).
    #[arg(long, value_name = "FILE")]
    pub public_key: Option<PathBuf>,
    /// Which of the instance's addresses to connect to.
    #[arg(long, value_enum, default_value_t)]
    pub address: AddressChoice,
    /// Go through the Instance Connect Endpoint of the instance's VPC (without it: when the instance has no public address and its VPC has one).
    #[arg(long)]
    pub tunnel: bool,
    /// The instance (ssh's %h): an id, a Name tag's value, or KEY=VALUE.
    pub instance: String,
    /// The port ssh asked for (%p); 22, ssh's default, means the port the instance registered.
    #[arg(default_value_t = 22)]
    pub port: u16,
}

#[derive(Args, Debug)]
pub struct KnownHostsArgs {
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Also name each instance by its addresses, for clients that connect by address (mssh, the AWS CLI).
    #[arg(long)]
    pub addresses: bool,
    /// Instance ids, or ssh's %H (i-… or [i-…]:PORT).
    #[arg(required = true, value_name = "INSTANCE")]
    pub instances: Vec<String>,
}

pub fn proxy(args: ProxyArgs) -> ExitCode {
    // A tunnel is relayed on the runtime that opened it; a direct
    // connection by plain threads, after it.
    let connected = super::block_on(async {
        match connect(&args).await? {
            Connection::Direct(stream) => Ok(Some(stream)),
            Connection::Tunnel(tunnel) => tunnel::relay_stdio(*tunnel).await.map(|()| None),
        }
    });
    let stream = match connected {
        Ok(Some(stream)) => stream,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eic proxy: {e:#}");
            return ExitCode::from(255);
        }
    };
    match relay(stream) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eic proxy: {e:#}");
            ExitCode::from(255)
        }
    }
}

/// The instance's sshd, directly or through its VPC's endpoint.
enum Connection {
    Direct(TcpStream),
    Tunnel(Box<tunnel::Tunnel>),
}

async fn connect(args: &ProxyArgs) -> anyhow::Result<Connection> {
    let path = match &args.public_key {
        Some(path) => path.clone(),
        None => default_key()?.with_extension("pub"),
    };
    let public_key = read_public_key(&path)?;
    let aws = Aws::load(&args.aws).await?;
    let target = lookup::resolve(&aws, &InstanceRef::parse(&args.instance)).await?;
    let id = target.instance_id.as_str();
    let send = aws
        .instance_connect
        .send_ssh_public_key()
        .instance_id(id)
        .instance_os_user(&args.user)
        .ssh_public_key(&public_key)
        .set_availability_zone(target.availability_zone.clone())
        .send();
    let ids = [id];
    let (pushed, keys) = tokio::join!(send, host_keys::describe(&aws, &ids));
    pushed.map_err(|e| {
        api_error(
            format!("pushing {} for {} to {id}", path.display(), args.user),
            e,
        )
    })?;
    let registered_port = keys?
        .as_ref()
        .and_then(|k| k.instance(id))
        .map(|r| r.ssh_port);
    let port = match args.port {
        22 => registered_port.unwrap_or(22),
        asked => asked,
    };
    match tunnel::route(&aws, &target, args.address, args.tunnel).await? {
        Route::Direct(address) => {
            let address = SocketAddr::new(address, port);
            TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)
                .map(Connection::Direct)
                .with_context(|| format!("cannot connect to {id}'s sshd at {address}"))
        }
        Route::Tunnel { endpoint, address } => tunnel::open(&aws, &endpoint, address, port)
            .await
            .map(|tunnel| Connection::Tunnel(Box::new(tunnel))),
    }
}

/// The first line of a public key file as `TYPE BASE64`.
fn read_public_key(path: &std::path::Path) -> anyhow::Result<String> {
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PUBLIC_KEY_BYTES).read_to_string(&mut text))
        .with_context(|| {
            format!(
                "cannot read the public key {} (run eic ssh-config to make it)",
                path.display()
            )
        })?;
    let mut fields = text.lines().next().unwrap_or("").split_whitespace();
    match (fields.next(), fields.next()) {
        (Some(kind), Some(data)) => Ok(format!("{kind} {data}")),
        _ => Err(anyhow!("{} is not an OpenSSH public key", path.display())),
    }
}

/// Copies stdin to the instance and the instance to stdout until the
/// instance closes; ssh then closes stdin. Plain reads and writes on the
/// raw descriptors: std's stdout would hold SSH's binary packets until a
/// newline, and `io::copy` splices, which on Linux sends with MSG_MORE and
/// leaves a key exchange packet corked in the socket. Plain threads: a
/// blocking read of stdin cannot be cancelled, and the process exits past
/// it.
fn relay(stream: TcpStream) -> anyhow::Result<()> {
    let from_ssh = std::fs::File::from(
        std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .context("cannot take stdin")?,
    );
    let to_ssh = std::fs::File::from(
        std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .context("cannot take stdout")?,
    );
    stream.set_nodelay(true).context("cannot set TCP_NODELAY")?;
    let upstream = stream.try_clone().context("cannot share the connection")?;
    std::thread::spawn(move || {
        let _ = pump(from_ssh, &upstream);
        let _ = upstream.shutdown(Shutdown::Write);
    });
    pump(stream, to_ssh).context("the connection to sshd broke")
}

/// Everything `from` gives, written to `to` as it comes, until EOF.
fn pump(mut from: impl Read, mut to: impl Write) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => to.write_all(&buffer[..n])?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

pub fn known_hosts(args: KnownHostsArgs) -> ExitCode {
    match super::block_on(print_known_hosts(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eic known-hosts: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn print_known_hosts(args: &KnownHostsArgs) -> anyhow::Result<()> {
    // ssh asks for every host in the block's pattern; names that are not
    // instance ids have nothing to add.
    let asked: Vec<(&str, &str)> = args
        .instances
        .iter()
        .map(|name| (name.as_str(), known_hosts::instance_of_known_host(name)))
        .filter(|(_, id)| eic_ec2::is_well_formed_instance_id(id))
        .collect();
    if asked.is_empty() {
        return Ok(());
    }
    let aws = Aws::load(&args.aws).await?;
    let ids: Vec<&str> = asked.iter().map(|(_, id)| *id).collect();
    let Some(keys) = host_keys::describe(&aws, &ids).await? else {
        anyhow::bail!(
            "{} does not serve registered host keys (not eic?)",
            aws.ec2_endpoint
        );
    };
    let targets = if args.addresses {
        lookup::by_ids(&aws, &ids).await?
    } else {
        Vec::new()
    };
    let mut out = String::new();
    for (name, id) in &asked {
        let target = targets.iter().find(|t| t.instance_id == *id);
        out.push_str(&lines_for(&keys, target, name, id));
    }
    std::io::stdout()
        .write_all(out.as_bytes())
        .context("cannot write to stdout")
}

/// The known_hosts lines of `id` as ssh asked for it (`name`), and under
/// `target`'s addresses when given.
fn lines_for(keys: &HostKeys, target: Option<&Target>, name: &str, id: &str) -> String {
    let Some(registered) = keys.instance(id) else {
        return String::new();
    };
    let mut names = vec![id.to_owned()];
    if name != id {
        names.push(name.to_owned());
    }
    if let Some(target) = target {
        let ips = [
            target.public_ip.map(std::net::IpAddr::V4),
            target.private_ip.map(std::net::IpAddr::V4),
            target.ipv6.map(std::net::IpAddr::V6),
        ];
        names.extend(
            ips.into_iter()
                .flatten()
                .map(|ip| host_pattern(&ip.to_string(), registered.ssh_port)),
        );
    }
    known_hosts::lines(&names, &registered.host_keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_key_file_gives_type_and_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pub");
        std::fs::write(&path, "ssh-ed25519 AAAAC3Nz me@laptop\n").unwrap();
        assert_eq!(read_public_key(&path).unwrap(), "ssh-ed25519 AAAAC3Nz");
        std::fs::write(&path, "\n").unwrap();
        assert!(read_public_key(&path).is_err());
        assert!(read_public_key(&dir.path().join("missing.pub"))
            .unwrap_err()
            .to_string()
            .contains("eic ssh-config"));
    }
}
