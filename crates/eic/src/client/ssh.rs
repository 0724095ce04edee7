//! `eic ssh`: look the instance up, push a fresh key, and run the system
//! ssh with it and with a known_hosts made from the host keys the instance
//! registered, so the host is verified with no prompt. The exit status is
//! ssh's; eic's own failures exit 255, as ssh's do.
//!
//! The lookups and the push run before ssh starts: the key is pushed at most
//! a few milliseconds before ssh offers it, well inside the 60 s it lives.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use clap::Args;
use tokio::signal::unix::{signal, SignalKind};

use super::host_keys::{self, HostKeys};
use super::known_hosts;
use super::lookup::{self, AddressChoice, InstanceRef, Target};
use super::session_key::{KeyFile, SessionKey};
use super::ssh_config::word;
use super::tunnel::{self, Route};
use super::{api_error, Aws, AwsArgs};

/// How long a pushed key is served.
const KEY_LIFETIME: Duration = Duration::from_secs(60);
/// The user AWS's images log in as.
pub const DEFAULT_USER: &str = "ec2-user";
/// The alias the serial gateway's key is recorded under.
const SERIAL_GATEWAY_ALIAS: &str = "eic-serial-console-gateway";

#[derive(Args, Debug)]
pub struct SshArgs {
    #[command(flatten)]
    pub aws: AwsArgs,
    /// The port sshd listens on (default: the one the instance registered, else 22).
    #[arg(long, value_name = "PORT")]
    pub ssh_port: Option<u16>,
    /// Which of the instance's addresses to connect to.
    #[arg(long, value_enum, default_value_t)]
    pub address: AddressChoice,
    /// Go through the Instance Connect Endpoint of the instance's VPC (without it: when the instance has no public address and its VPC has one).
    #[arg(long, conflicts_with = "serial")]
    pub tunnel: bool,
    /// Reach the instance's serial console through eic's gateway instead of its sshd.
    #[arg(long)]
    pub serial: bool,
    /// The serial console gateway (default: the API endpoint's host and the port the server reports).
    #[arg(long, value_name = "HOST:PORT", env = "EIC_SERIAL_GATEWAY")]
    pub serial_gateway: Option<String>,
    /// [USER@]INSTANCE: an instance id, a Name tag's value, or KEY=VALUE for another tag.
    pub destination: String,
    /// Options for ssh and the command to run, after `--`.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "SSH_ARGS"
    )]
    pub ssh_args: Vec<String>,
}

pub fn run(args: SshArgs) -> ExitCode {
    let login = match super::block_on(prepare(&args)) {
        Ok(login) => login,
        Err(e) => {
            eprintln!("eic: {e:#}");
            return ExitCode::from(255);
        }
    };
    match super::block_on(login.run()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("eic: {e:#}");
            ExitCode::from(255)
        }
    }
}

/// Everything ready for ssh: the command, and the files it reads, which
/// live until it exits.
struct Login {
    command: tokio::process::Command,
    _key: KeyFile,
    pushed_at: Instant,
}

async fn prepare(args: &SshArgs) -> anyhow::Result<Login> {
    let ssh = find_on_path("ssh").ok_or_else(|| {
        anyhow!(
            "ssh is not installed: eic ssh runs OpenSSH's client (apt-get install openssh-client)"
        )
    })?;
    let (user, instance) = match args.destination.rsplit_once('@') {
        Some((user, instance)) if !user.is_empty() => (user, instance),
        _ => (DEFAULT_USER, args.destination.as_str()),
    };
    let aws = Aws::load(&args.aws).await?;
    let target = lookup::resolve(&aws, &InstanceRef::parse(instance)).await?;
    let key = SessionKey::generate()?;
    let (keys, pushed_at) = if args.serial {
        push_serial(&aws, &target, &key).await?
    } else {
        push(&aws, &target, user, &key).await?
    };
    let key_file = key.write_private()?;
    let mut command = tokio::process::Command::new(ssh);
    command
        .arg("-i")
        .arg(key_file.path())
        .args(["-o", "IdentitiesOnly=yes"]);
    let destination = if args.serial {
        serial_destination(args, &aws, &target, keys.as_ref(), &key_file, &mut command)?
    } else {
        let route = tunnel::route(&aws, &target, args.address, args.tunnel).await?;
        let login = InstanceLogin {
            target: &target,
            route: &route,
            user,
            keys: keys.as_ref(),
            key_file: &key_file,
        };
        instance_destination(args, &login, &mut command)?
    };
    command.arg(destination);
    command.args(strip_separator(&args.ssh_args));
    Ok(Login {
        command,
        _key: key_file,
        pushed_at,
    })
}

/// Pushes `key` for `user`, and meanwhile asks for the host keys.
async fn push(
    aws: &Aws,
    target: &Target,
    user: &str,
    key: &SessionKey,
) -> anyhow::Result<(Option<HostKeys>, Instant)> {
    let id = target.instance_id.as_str();
    let send = aws
        .instance_connect
        .send_ssh_public_key()
        .instance_id(id)
        .instance_os_user(user)
        .ssh_public_key(&key.public_openssh)
        .set_availability_zone(target.availability_zone.clone())
        .send();
    let ids = [id];
    let (pushed, keys) = tokio::join!(send, host_keys::describe(aws, &ids));
    pushed.map_err(|e| api_error(format!("pushing a key for {user} to {id}"), e))?;
    Ok((keys?, Instant::now()))
}

async fn push_serial(
    aws: &Aws,
    target: &Target,
    key: &SessionKey,
) -> anyhow::Result<(Option<HostKeys>, Instant)> {
    let id = target.instance_id.as_str();
    let send = aws
        .instance_connect
        .send_serial_console_ssh_public_key()
        .instance_id(id)
        .serial_port(0)
        .ssh_public_key(&key.public_openssh)
        .send();
    let ids = [id];
    let (pushed, keys) = tokio::join!(send, host_keys::describe(aws, &ids));
    pushed.map_err(|e| api_error(format!("pushing a serial console key to {id}"), e))?;
    Ok((keys?, Instant::now()))
}

/// `USER@ADDRESS`, with the port and the registered host keys as options.
/// What logging in to an instance's sshd is decided on.
struct InstanceLogin<'a> {
    target: &'a Target,
    route: &'a Route,
    user: &'a str,
    keys: Option<&'a HostKeys>,
    key_file: &'a KeyFile,
}

/// `USER@ADDRESS -p PORT`, pinned to the instance's registered host keys;
/// through its endpoint, `USER@ID` with `eic open-tunnel` as ProxyCommand.
fn instance_destination(
    args: &SshArgs,
    login: &InstanceLogin<'_>,
    command: &mut tokio::process::Command,
) -> anyhow::Result<String> {
    let id = &login.target.instance_id;
    let registered = login.keys.and_then(|k| k.instance(id));
    let port = args
        .ssh_port
        .or(registered.map(|r| r.ssh_port))
        .unwrap_or(22);
    command.args(["-p", &port.to_string()]);
    let host_keys = registered.map(|r| r.host_keys.as_slice()).unwrap_or(&[]);
    pin_host_keys(command, login.key_file, id, host_keys)?;
    let user = login.user;
    match login.route {
        // IPv6 without brackets, as ssh takes it in USER@HOST.
        Route::Direct(address) => Ok(format!("{user}@{address}")),
        Route::Tunnel { endpoint, address } => {
            let eic = std::env::current_exe().context("cannot tell where this eic is")?;
            let mut proxy = vec![eic.display().to_string(), "open-tunnel".into()];
            proxy.extend(args.aws.to_flags());
            proxy.extend([
                "--instance-connect-endpoint-id".into(),
                endpoint.id.clone(),
                "--instance-connect-endpoint-dns-name".into(),
                endpoint.dns_name.clone(),
                "--private-ip-address".into(),
                address.to_string(),
                "--remote-port".into(),
                "%p".into(),
            ]);
            let words = proxy
                .iter()
                .map(|w| if w == "%p" { Ok(w.clone()) } else { word(w) })
                .collect::<anyhow::Result<Vec<_>>>()?;
            command
                .arg("-o")
                .arg(format!("ProxyCommand={}", words.join(" ")));
            Ok(format!("{user}@{id}"))
        }
    }
}

/// `INSTANCE.port0@GATEWAY`, pinned to the gateway's key.
fn serial_destination(
    args: &SshArgs,
    aws: &Aws,
    target: &Target,
    keys: Option<&HostKeys>,
    key_file: &KeyFile,
    command: &mut tokio::process::Command,
) -> anyhow::Result<String> {
    let console = keys.and_then(|k| k.serial_console.as_ref());
    let (host, port) = match &args.serial_gateway {
        Some(gateway) => split_host_port(gateway, console.map(|c| c.port))?,
        None => {
            let console = console.ok_or_else(|| {
                anyhow!(
                    "the server reports no serial console gateway; give --serial-gateway HOST:PORT"
                )
            })?;
            (endpoint_host(&aws.ec2_endpoint)?, console.port)
        }
    };
    command.args(["-p", &port.to_string()]);
    let host_keys = console.map(|c| c.host_keys.as_slice()).unwrap_or(&[]);
    pin_host_keys(command, key_file, SERIAL_GATEWAY_ALIAS, host_keys)?;
    Ok(format!("{}.port0@{host}", target.instance_id))
}

/// Verify the host against `host_keys` only, under `alias`; with none
/// registered, say so and leave the user's known_hosts to decide.
fn pin_host_keys(
    command: &mut tokio::process::Command,
    key_file: &KeyFile,
    alias: &str,
    host_keys: &[String],
) -> anyhow::Result<()> {
    let lines = known_hosts::lines(&[alias.to_owned()], host_keys);
    if lines.is_empty() {
        eprintln!("eic: {alias} registered no host keys; ssh checks it against your known_hosts");
        return Ok(());
    }
    let path = key_file.dir().join("known_hosts");
    std::fs::write(&path, lines).with_context(|| format!("cannot write {}", path.display()))?;
    command
        .arg("-o")
        .arg(format!("HostKeyAlias={alias}"))
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", path.display()))
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "CheckHostIP=no",
        ]);
    Ok(())
}

impl Login {
    /// Runs ssh to its end. Interrupts from the terminal reach ssh itself;
    /// eic outlives them to remove the key. A SIGTERM or SIGHUP to eic is
    /// passed on to ssh.
    async fn run(mut self) -> anyhow::Result<ExitCode> {
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut quit = signal(SignalKind::quit())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut hangup = signal(SignalKind::hangup())?;
        let mut child = self.command.spawn().context("cannot run ssh")?;
        let pid = child
            .id()
            .and_then(|id| rustix::process::Pid::from_raw(id as i32));
        let status = loop {
            tokio::select! {
                status = child.wait() => break status.context("ssh did not finish")?,
                _ = interrupt.recv() => {}
                _ = quit.recv() => {}
                _ = terminate.recv() => forward(pid, rustix::process::Signal::TERM),
                _ = hangup.recv() => forward(pid, rustix::process::Signal::HUP),
            }
        };
        let code = match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(code), _) => code,
            (None, Some(signal)) => 128 + signal,
            (None, None) => 255,
        };
        if code == 255 && self.pushed_at.elapsed() > KEY_LIFETIME {
            eprintln!(
                "eic: the pushed key was valid for {} s and ssh ran longer before it failed; run eic ssh again",
                KEY_LIFETIME.as_secs()
            );
        }
        Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
    }
}

fn forward(pid: Option<rustix::process::Pid>, signal: rustix::process::Signal) {
    if let Some(pid) = pid {
        // ssh may have exited already; its status is read next.
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// The SSH_ARGS as given, without the `--` that introduced them.
fn strip_separator(args: &[String]) -> &[String] {
    match args.first() {
        Some(first) if first == "--" => &args[1..],
        _ => args,
    }
}

/// `HOST:PORT`, `[V6]:PORT`, or a bare host with `default_port`.
fn split_host_port(text: &str, default_port: Option<u16>) -> anyhow::Result<(String, u16)> {
    let bad = || anyhow!("{text:?} is not HOST:PORT");
    if let Some(rest) = text.strip_prefix('[') {
        let (host, port) = rest.split_once("]:").ok_or_else(bad)?;
        return Ok((host.to_owned(), port.parse().map_err(|_| bad())?));
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && !host.is_empty() => {
            Ok((host.to_owned(), port.parse().map_err(|_| bad())?))
        }
        _ if !text.is_empty() && !text.contains(':') => {
            Ok((text.to_owned(), default_port.ok_or_else(bad)?))
        }
        _ => Err(bad()),
    }
}

/// The host of the API endpoint URL.
fn endpoint_host(endpoint: &str) -> anyhow::Result<String> {
    let uri: http::Uri = endpoint
        .parse()
        .with_context(|| format!("{endpoint} is not a URL"))?;
    let host = uri
        .host()
        .ok_or_else(|| anyhow!("{endpoint} has no host"))?;
    Ok(host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned())
}

/// `name` in `$PATH`, as the shell would find it.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateways_with_and_without_ports() {
        assert_eq!(
            split_host_port("127.0.0.1:2222", None).unwrap(),
            ("127.0.0.1".into(), 2222)
        );
        assert_eq!(
            split_host_port("[::1]:2222", None).unwrap(),
            ("::1".into(), 2222)
        );
        assert_eq!(
            split_host_port("localhost", Some(2200)).unwrap(),
            ("localhost".into(), 2200)
        );
        for bad in ["", "localhost", "::1", "h:port", "[::1]"] {
            assert!(split_host_port(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_endpoint_host_is_the_gateway_default() {
        assert_eq!(endpoint_host("http://127.0.0.1:8080").unwrap(), "127.0.0.1");
        assert_eq!(endpoint_host("https://[::1]:8443/").unwrap(), "::1");
    }

    #[test]
    fn only_a_leading_separator_is_dropped() {
        let args: Vec<String> = ["--", "-v", "uptime", "--"].map(String::from).to_vec();
        assert_eq!(strip_separator(&args), &args[1..]);
        assert_eq!(strip_separator(&args[1..]), &args[1..]);
    }

    #[test]
    fn programs_are_found_on_path_only() {
        assert!(find_on_path("sh").is_some());
        assert!(find_on_path("surely-no-such-program-eic").is_none());
    }
}
