//! The admin commands: each reads or changes a service's state from its
//! configuration and data dir (or its Redis), and prints the answer.
//!
//! - [`audit`]: `eic audit`, the audit log filtered;
//! - [`keys`]: `eic keys list`, an embedded store's live keys;
//! - [`credentials`]: `eic credentials issue`, temporary credentials;
//! - [`agent`]: `eic agent-config` and `eic instance-credential`;
//! - [`serial`]: `eic serial-console-access` and `eic serial-host-key`;
//! - [`fleet`]: `eic join-token` and `eic instances`, the enrolled fleet;
//! - [`tls`]: `eic ca-certificate`, the TLS CA clients trust;
//! - [`reload`]: `eic reload`, the running server's configuration read again;
//! - [`console`]: `eic console-url`, a one-time sign-in link to the console;
//! - [`recordings`]: `eic recordings`, console and serial session recordings.
//!
//! The server (`eic server`) is [`crate::server`]; the instance side (`eic
//! authorized-keys`, `eic agent install`) is [`crate::agent`].

pub mod agent;
pub mod audit;
pub mod console;
pub mod credentials;
pub mod fleet;
pub mod keys;
pub mod recordings;
pub mod reload;
pub mod serial;
pub mod tls;

/// The server's configuration and data dir, for a command that only reads
/// them.
#[derive(clap::Args)]
pub struct ServerFiles {
    /// The server's TOML configuration.
    #[arg(long)]
    config: std::path::PathBuf,
    /// The server's data directory, if overridden at its start.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<std::path::PathBuf>,
}

impl ServerFiles {
    fn open(&self) -> anyhow::Result<(crate::config::Config, crate::data_dir::DataDir)> {
        let config =
            crate::config::Config::load_with_data_dir(&self.config, self.data_dir.as_deref())?;
        let data_dir = crate::data_dir::DataDir::for_command(&config.data_dir)?;
        Ok((config, data_dir))
    }
}

/// A positive duration as `90`, `90s`, `30m`, `12h` or `7d`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 30m"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit '{unit}' (use s, m, h or d)")),
    };
    let secs = number
        .checked_mul(scale)
        .ok_or_else(|| format!("'{text}' is too long"))?;
    if secs == 0 {
        return Err("a duration must be at least 1s".into());
    }
    Ok(std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(
            super::parse_duration("90").unwrap(),
            Duration::from_secs(90)
        );
        assert_eq!(
            super::parse_duration("30m").unwrap(),
            Duration::from_secs(1800)
        );
        assert_eq!(
            super::parse_duration("7d").unwrap(),
            Duration::from_secs(604_800)
        );
        for bad in ["", "0", "1w", "h", "-1h", "99999999999999999999d"] {
            assert!(super::parse_duration(bad).is_err(), "{bad}");
        }
    }
}
