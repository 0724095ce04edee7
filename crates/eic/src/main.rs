//! `eic`: one binary for every role. See README.md for what each command is
//! for and ARCHITECTURE.md for how the pieces fit.

mod agent;
mod agent_aws;
mod agent_install;
mod api;
mod audit;
mod audit_cli;
mod authz;
mod config;
mod credentials;
mod data_dir;
mod descriptors;
mod http_errors;
mod instance_api;
mod instance_credentials;
mod keys_cli;
mod os;
mod registry;
mod secret;
mod serial;
mod serial_cli;
mod server;
mod settings;
mod signing;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
        /// The store all nodes share: redis://HOST:PORT, redis-cluster://HOST:PORT[,HOST:PORT…] or redis-sentinel://HOST:PORT[,HOST:PORT…]/MASTER (overrides [store]).
        #[arg(long, value_name = "URL")]
        store_url: Option<String>,
        /// Directory for durable state (overrides data_dir).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Issue short-lived credentials (access key, secret, session token) for a principal.
    Credentials {
        #[command(subcommand)]
        command: CredentialsCommand,
    },
    /// Read and filter the audit log.
    Audit(audit_cli::AuditArgs),
    /// sshd's AuthorizedKeysCommand: print the valid keys pushed for USER on this instance.
    AuthorizedKeys(agent::AuthorizedKeysArgs),
    /// Install or remove eic as sshd's AuthorizedKeysCommand (an sshd_config.d drop-in).
    Agent {
        #[command(subcommand)]
        command: agent_install::AgentCommand,
    },
    /// Print the agent configuration for one instance.
    AgentConfig(agent::AgentConfigArgs),
    /// Rotate or revoke an instance's credential.
    InstanceCredential {
        #[command(subcommand)]
        command: agent::InstanceCredentialCommand,
    },
    /// Enable, disable or show serial console access for an account (takes effect on a running server).
    SerialConsoleAccess {
        #[command(subcommand)]
        command: serial_cli::AccessCommand,
    },
    /// Print the serial console gateway's host key fingerprint, to pin it in known_hosts.
    SerialHostKey(serial_cli::HostKeyArgs),
    /// Inspect the keys in an embedded store's data directory.
    Keys {
        #[command(subcommand)]
        command: keys_cli::KeysCommand,
    },
}

#[derive(Subcommand)]
enum CredentialsCommand {
    /// Print temporary credentials as JSON (the shape of STS's Credentials).
    Issue {
        /// The server's TOML configuration.
        #[arg(long)]
        config: PathBuf,
        /// The server's data directory, if overridden at its start.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// The principal's ARN, as in the configuration.
        #[arg(long)]
        principal: String,
        /// Validity, e.g. 900s, 30m, 1h (at most 12h).
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: std::time::Duration,
    },
}

fn parse_ttl(text: &str) -> Result<std::time::Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 30m"))?;
    let secs = match unit {
        "" | "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        _ => return Err(format!("unknown unit '{unit}' (use s, m or h)")),
    };
    let ttl = std::time::Duration::from_secs(secs);
    if ttl.is_zero() || ttl > credentials::MAX_TTL {
        return Err("the validity must be between 1s and 12h".into());
    }
    Ok(ttl)
}

/// mimalloc rather than glibc's allocator: a server holding a million live
/// keys frees them in bulk as they expire, and afterwards glibc's allocator
/// stalled requests for half a second at a time (p99 494 ms) where mimalloc
/// stays at 2 ms (BENCHMARKS.md, API throughput).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The AuthorizedKeysCommand is started per offered key: it sets up no
    // tracing and no runtime, and owns its exit codes.
    if let Command::AuthorizedKeys(args) = cli.command {
        return agent::authorized_keys(args);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not for journald or a file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Server {
            config,
            api_listen,
            instance_api_listen,
            serial_listen,
            store_url,
            data_dir,
        } => run_server(
            config,
            server::Overrides {
                store_url,
                api_listen,
                instance_api_listen,
                serial_listen,
                data_dir,
            },
        ),
        Command::Keys { command } => keys_cli::run(command),
        Command::AuthorizedKeys(_) => unreachable!("handled before logging is set up"),
        Command::AgentConfig(args) => agent::agent_config(args),
        Command::Agent { command } => agent_install::run(command),
        Command::SerialConsoleAccess { command } => serial_cli::access(command),
        Command::SerialHostKey(args) => serial_cli::host_key(args),
        Command::InstanceCredential { command } => agent::instance_credential(command),
        Command::Audit(args) => audit_cli::run(args),
        Command::Credentials {
            command:
                CredentialsCommand::Issue {
                    config,
                    data_dir,
                    principal,
                    ttl,
                },
        } => issue_credentials(config, data_dir, &principal, ttl),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eic: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_server(config_path: PathBuf, overrides: server::Overrides) -> anyhow::Result<()> {
    let config = config::Config::load(&config_path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(server::run(config, overrides, shutdown_signal()))
}

fn issue_credentials(
    config_path: PathBuf,
    data_dir: Option<PathBuf>,
    principal: &str,
    ttl: std::time::Duration,
) -> anyhow::Result<()> {
    let config = config::Config::load_with_data_dir(&config_path, data_dir.as_deref())?;
    let registry = registry::Registry::from_config(&config)?;
    if registry.principal(principal).is_none() {
        anyhow::bail!("no principal {principal} in {}", config_path.display());
    }
    let data_dir = data_dir::DataDir::for_command(&config.data_dir)?;
    let issued = credentials::TemporaryCredentials::load(&data_dir)?.issue(
        principal,
        ttl,
        std::time::SystemTime::now(),
    );
    let out = serde_json::json!({
        "AccessKeyId": issued.access_key_id,
        "SecretAccessKey": issued.secret_access_key.expose(),
        "SessionToken": issued.session_token,
        "Expiration": audit::format_iso8601(issued.expiration),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; stopping only on Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
