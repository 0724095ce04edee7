//! `eic`: one binary for every role. See README.md for what each command is
//! for and ARCHITECTURE.md for how the pieces fit.

mod api;
mod authz;
mod config;
mod keys_cli;
mod registry;
mod server;

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
        /// Directory for durable state (overrides data_dir).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Inspect the keys in an embedded store's data directory.
    Keys {
        #[command(subcommand)]
        command: keys_cli::KeysCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Server {
            config,
            api_listen,
            data_dir,
        } => run_server(
            config,
            server::Overrides {
                api_listen,
                data_dir,
            },
        ),
        Command::Keys { command } => keys_cli::run(command),
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
