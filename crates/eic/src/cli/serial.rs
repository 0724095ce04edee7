//! `eic serial-console-access` (EC2's Enable/Disable/GetSerialConsoleAccess
//! in eic's own admin surface) and `eic serial-host-key`.

use clap::{Args, Subcommand};

use crate::config::ServerConfigArgs;
use crate::settings::{self, SerialConsoleAccess, SERIAL_CONSOLE_ACCESS};

#[derive(Args)]
pub struct AccountArgs {
    #[command(flatten)]
    server: ServerConfigArgs,
    /// The 12-digit account id.
    #[arg(long)]
    account: String,
}

#[derive(Subcommand)]
pub enum AccessCommand {
    /// Allow the account's principals to open serial console sessions (EC2's EnableSerialConsoleAccess).
    Enable(AccountArgs),
    /// Refuse serial console pushes for the account (EC2's DisableSerialConsoleAccess).
    Disable(AccountArgs),
    /// Print whether the account has serial console access (EC2's GetSerialConsoleAccessStatus).
    Status(AccountArgs),
}

pub fn access(command: AccessCommand) -> anyhow::Result<()> {
    let (args, change) = match command {
        AccessCommand::Enable(a) => (a, Some(true)),
        AccessCommand::Disable(a) => (a, Some(false)),
        AccessCommand::Status(a) => (a, None),
    };
    let config = args.server.load()?;
    let Some(account) = config.accounts.iter().find(|a| a.id == args.account) else {
        anyhow::bail!(
            "no account {} in {}",
            args.account,
            args.server.config.display()
        );
    };
    let enabled = settings::block_on(async {
        let access =
            SerialConsoleAccess::new(settings::for_command(&config, SERIAL_CONSOLE_ACCESS).await?);
        if let Some(enabled) = change {
            access.set(&args.account, enabled).await?;
        }
        Ok(access.enabled(&args.account, account.serial_console_access)?)
    })?;
    // The shape of EC2's GetSerialConsoleAccessStatus.
    println!(
        "{}",
        serde_json::json!({"SerialConsoleAccessEnabled": enabled, "ManagedBy": "account"})
    );
    Ok(())
}

pub fn host_key(args: super::ServerFiles) -> anyhow::Result<()> {
    let (_, data_dir) = args.open()?;
    let path = data_dir.path().join("serial-host-key");
    if !path.exists() {
        anyhow::bail!(
            "{} has no serial console host key: the server makes it when it starts with a [serial_console] section",
            data_dir.path().display()
        );
    }
    let key = eic_serial::load_or_create_host_key(&path)?;
    println!("{}", eic_serial::host_key_fingerprint(&key));
    Ok(())
}
