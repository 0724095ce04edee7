//! `eic-agent`: the instance side on its own, the same commands and flags
//! as `eic authorized-keys` and `eic agent join|run|install|uninstall`, in a
//! binary without the server's dependencies. The command line only; what
//! each command does is in the library (`lib.rs`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use eic_agent::install::AgentCommand;
use eic_agent::AuthorizedKeysArgs;

#[derive(Parser)]
#[command(
    name = "eic-agent",
    version,
    about = "The instance side of eic (self-hosted EC2 Instance Connect)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// sshd's AuthorizedKeysCommand: print the valid keys pushed for USER on this instance.
    AuthorizedKeys(AuthorizedKeysArgs),
    #[command(flatten)]
    Agent(AgentCommand),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        // Started per offered key: it owns its exit codes.
        Command::AuthorizedKeys(args) => eic_agent::authorized_keys(args),
        Command::Agent(command) => match eic_agent::install::run(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("eic-agent: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}
