//! `eic credentials issue`: temporary credentials for a principal of the
//! configuration, printed in the shape of STS's `Credentials`.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::Subcommand;

use crate::config::Config;
use crate::credentials::{TemporaryCredentials, MAX_TTL};
use crate::data_dir::DataDir;
use crate::registry::Registry;

#[derive(Subcommand)]
pub enum CredentialsCommand {
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
        ttl: Duration,
    },
}

pub fn run(command: CredentialsCommand) -> anyhow::Result<()> {
    let CredentialsCommand::Issue {
        config: config_path,
        data_dir,
        principal,
        ttl,
    } = command;
    let config = Config::load_with_data_dir(&config_path, data_dir.as_deref())?;
    let registry = Registry::from_config(&config)?;
    if registry.principal(&principal).is_none() {
        anyhow::bail!("no principal {principal} in {}", config_path.display());
    }
    let data_dir = DataDir::for_command(&config.data_dir)?;
    let issued = TemporaryCredentials::load(&data_dir)?.issue(&principal, ttl, SystemTime::now());
    let out = serde_json::json!({
        "AccessKeyId": issued.access_key_id,
        "SecretAccessKey": issued.secret_access_key.expose(),
        "SessionToken": issued.session_token,
        "Expiration": crate::audit::format_iso8601(issued.expiration),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn parse_ttl(text: &str) -> Result<Duration, String> {
    let ttl = super::parse_duration(text)?;
    if ttl > MAX_TTL {
        return Err("the validity must be between 1s and 12h".into());
    }
    Ok(ttl)
}
