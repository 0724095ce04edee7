//! `eic`: one binary for every role. The command line and its dispatch
//! only; what each command does is in the library (`lib.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use eic::{agent, cli, client, server};

#[derive(Parser)]
#[command(
    name = "eic",
    version,
    about = "Self-hosted, wire-compatible AWS EC2 Instance Connect"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: the EC2 Instance Connect API and the roles the config enables.
    Server {
        /// The server's TOML configuration.
        #[arg(long)]
        config: PathBuf,
        /// Listen address for the API (overrides [api] listen; port 0 picks a free port).
        #[arg(long, value_name = "ADDR")]
        api_listen: Option<SocketAddr>,
        /// Listen address for the instance-facing API (overrides [instance_api] listen).
        #[arg(long, value_name = "ADDR")]
        instance_api_listen: Option<SocketAddr>,
        /// Listen address for the serial console gateway (overrides [serial_console] listen).
        #[arg(long, value_name = "ADDR")]
        serial_listen: Option<SocketAddr>,
        /// Listen address for the Instance Connect Endpoint's tunnels (overrides [tunnel] listen).
        #[arg(long, value_name = "ADDR")]
        tunnel_listen: Option<SocketAddr>,
        /// Listen address for /metrics, /healthz and /readyz (overrides [diagnostics] listen).
        #[arg(long, value_name = "ADDR")]
        diagnostics_listen: Option<SocketAddr>,
        /// Listen address for the browser console (overrides [console] listen).
        #[arg(long, value_name = "ADDR")]
        console_listen: Option<SocketAddr>,
        /// The store all nodes share: redis://HOST:PORT, redis-cluster://HOST:PORT[,HOST:PORT…] or redis-sentinel://HOST:PORT[,HOST:PORT…]/MASTER (overrides [store]).
        #[arg(long, value_name = "URL")]
        store_url: Option<String>,
        /// Directory for durable state (overrides data_dir).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Make the running server read its configuration again (principals, keys, policies, accounts, instances, endpoints, throttling) and report whether it took it.
    Reload(cli::reload::ReloadArgs),
    /// Issue short-lived credentials (access key, secret, session token) for a principal.
    Credentials {
        #[command(subcommand)]
        command: cli::credentials::CredentialsCommand,
    },
    /// Read and filter the audit log.
    Audit(cli::audit::AuditArgs),
    /// sshd's AuthorizedKeysCommand: print the valid keys pushed for USER on this instance.
    AuthorizedKeys(agent::AuthorizedKeysArgs),
    /// Install or remove eic as sshd's AuthorizedKeysCommand (an sshd_config.d drop-in).
    Agent {
        #[command(subcommand)]
        command: agent::install::AgentCommand,
    },
    /// Print the agent configuration for one instance.
    AgentConfig(cli::agent::AgentConfigArgs),
    /// Rotate or revoke an instance's credential.
    InstanceCredential {
        #[command(subcommand)]
        command: cli::agent::InstanceCredentialCommand,
    },
    /// Enable, disable or show serial console access for an account (takes effect on a running server).
    SerialConsoleAccess {
        #[command(subcommand)]
        command: cli::serial::AccessCommand,
    },
    /// Print the serial console gateway's host key fingerprint, to pin it in known_hosts.
    SerialHostKey(cli::ServerFiles),
    /// Print eic's TLS CA (PEM), which issues the certificates of listeners with tls = "auto": trust it through SSL_CERT_FILE or the system store.
    CaCertificate(cli::ServerFiles),
    /// Create, list and revoke the tokens machines join the fleet with.
    JoinToken {
        #[command(subcommand)]
        command: cli::fleet::JoinTokenCommand,
    },
    /// List, show, tag, untag and remove instances (enrolled and configured).
    Instances {
        #[command(subcommand)]
        command: cli::fleet::InstancesCommand,
    },
    /// Log in to an instance: look it up, push a fresh key, and run ssh with the instance's registered host keys.
    Ssh(client::ssh::SshArgs),
    /// ssh's ProxyCommand (see ssh-config): push the key ssh offers, and connect to the instance.
    Proxy(client::proxy::ProxyArgs),
    /// Open a tunnel through an Instance Connect Endpoint on stdin and stdout, as `aws ec2-instance-connect open-tunnel` does.
    OpenTunnel(client::tunnel::OpenTunnelArgs),
    /// Print known_hosts lines from the host keys instances registered (ssh's KnownHostsCommand).
    KnownHosts(client::proxy::KnownHostsArgs),
    /// Print (or --install) the ssh_config block that lets plain ssh, scp, sftp and rsync reach instances by id.
    SshConfig(client::ssh_config::SshConfigArgs),
    /// Print a one-time sign-in link to the browser console for a principal.
    ConsoleUrl(cli::console::ConsoleUrlArgs),
    /// List, show and export console and serial gateway session recordings.
    Recordings {
        #[command(subcommand)]
        command: cli::recordings::RecordingsCommand,
    },
    /// Inspect the keys in an embedded store's data directory.
    Keys {
        #[command(subcommand)]
        command: cli::keys::KeysCommand,
    },
}

/// mimalloc rather than glibc's allocator: a server holding a million live
/// keys frees them in bulk as they expire, and afterwards glibc's allocator
/// stalled requests for half a second at a time (p99 494 ms) where mimalloc
/// stays at 2 ms (BENCHMARKS.md, API throughput).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn user_side(run: impl FnOnce() -> ExitCode) -> ExitCode {
    if std::env::var_os("RUST_LOG").is_some() {
        eic::init_logging();
    }
    run()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The AuthorizedKeysCommand is started per offered key: it sets up no
    // tracing and no runtime, and owns its exit codes.
    // The user side owns its exit codes too (ssh's, for `eic ssh`), and logs
    // only when RUST_LOG asks: its stderr is the user's terminal.
    let command = match cli.command {
        Command::AuthorizedKeys(args) => return agent::authorized_keys(args),
        Command::Ssh(args) => return user_side(|| client::ssh::run(args)),
        Command::Proxy(args) => return user_side(|| client::proxy::proxy(args)),
        Command::KnownHosts(args) => return user_side(|| client::proxy::known_hosts(args)),
        Command::OpenTunnel(args) => return user_side(|| client::tunnel::open_tunnel(args)),
        Command::SshConfig(args) => return user_side(|| client::ssh_config::run(args)),
        command => command,
    };
    // The server logs as its config says, once it has read it.
    if !matches!(command, Command::Server { .. }) {
        eic::init_logging();
    }
    let result = match command {
        Command::Server {
            config,
            api_listen,
            instance_api_listen,
            serial_listen,
            tunnel_listen,
            diagnostics_listen,
            console_listen,
            store_url,
            data_dir,
        } => server::main(
            &config,
            server::Overrides {
                store_url,
                api_listen,
                instance_api_listen,
                serial_listen,
                tunnel_listen,
                diagnostics_listen,
                console_listen,
                data_dir,
            },
        ),
        Command::Keys { command } => cli::keys::run(command),
        Command::Reload(args) => cli::reload::run(args),
        Command::JoinToken { command } => cli::fleet::join_token(command),
        Command::Instances { command } => cli::fleet::instances(command),
        Command::AuthorizedKeys(_)
        | Command::Ssh(_)
        | Command::Proxy(_)
        | Command::KnownHosts(_)
        | Command::OpenTunnel(_)
        | Command::SshConfig(_) => unreachable!("handled before logging is set up"),
        Command::AgentConfig(args) => cli::agent::agent_config(args),
        Command::Agent { command } => agent::install::run(command),
        Command::SerialConsoleAccess { command } => cli::serial::access(command),
        Command::SerialHostKey(args) => cli::serial::host_key(args),
        Command::CaCertificate(args) => cli::tls::ca_certificate(args),
        Command::InstanceCredential { command } => cli::agent::instance_credential(command),
        Command::Audit(args) => cli::audit::run(args),
        Command::Credentials { command } => cli::credentials::run(command),
        Command::ConsoleUrl(args) => cli::console::console_url(args),
        Command::Recordings { command } => cli::recordings::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eic: {e:#}");
            ExitCode::FAILURE
        }
    }
}
