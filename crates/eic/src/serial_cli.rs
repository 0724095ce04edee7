//! `eic serial-console-access` (EC2's Enable/Disable/GetSerialConsoleAccess
//! in eic's own admin surface) and `eic serial-host-key`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::config::Config;
use crate::serial::SerialConsoleAccess;

#[derive(Args)]
pub struct AccountArgs {
    #[arg(long)]
    config: PathBuf,
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The 12-digit account id.
    #[arg(long)]
    account: String,
}

#[derive(Subcommand)]
pub enum AccessCommand {
    Enable(AccountArgs),
    Disable(AccountArgs),
    Status(AccountArgs),
}

#[derive(Args)]
pub struct HostKeyArgs {
    #[arg(long)]
    config: PathBuf,
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

fn load(config: &std::path::Path, data_dir: &Option<PathBuf>) -> anyhow::Result<Config> {
    Ok(Config::load_with_data_dir(config, data_dir.as_deref())?)
}

pub fn access(command: AccessCommand) -> anyhow::Result<()> {
    let (args, change) = match command {
        AccessCommand::Enable(a) => (a, Some(true)),
        AccessCommand::Disable(a) => (a, Some(false)),
        AccessCommand::Status(a) => (a, None),
    };
    let config = load(&args.config, &args.data_dir)?;
    let Some(account) = config.accounts.iter().find(|a| a.id == args.account) else {
        anyhow::bail!("no account {} in {}", args.account, args.config.display());
    };
    let access = SerialConsoleAccess::new(&config.data_dir);
    if let Some(enabled) = change {
        std::fs::create_dir_all(&config.data_dir)?;
        access.set(&args.account, enabled)?;
    }
    let enabled = access.enabled(&args.account, account.serial_console_access);
    // The shape of EC2's GetSerialConsoleAccessStatus.
    println!(
        "{}",
        serde_json::json!({"SerialConsoleAccessEnabled": enabled, "ManagedBy": "account"})
    );
    Ok(())
}

pub fn host_key(args: HostKeyArgs) -> anyhow::Result<()> {
    let config = load(&args.config, &args.data_dir)?;
    let key = eic_serial::load_or_create_host_key(&config.data_dir.join("serial-host-key"))?;
    println!("{}", eic_serial::host_key_fingerprint(&key));
    Ok(())
}
