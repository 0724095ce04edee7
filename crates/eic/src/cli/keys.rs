//! `eic keys list`: what an embedded store holds, read without modifying
//! it, so it is safe while the server runs.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Subcommand;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Print the live keys, one JSON object per line (fingerprints, never key material).
    List {
        /// The server's data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// Only keys for this instance.
        #[arg(long)]
        instance_id: Option<String>,
        /// Evaluate liveness at this Unix time (seconds) instead of now.
        #[arg(long, value_name = "UNIX_SECONDS")]
        at: Option<u64>,
    },
}

pub fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::List {
            data_dir,
            instance_id,
            at,
        } => {
            let now = at.map_or_else(SystemTime::now, |s| UNIX_EPOCH + Duration::from_secs(s));
            let data_dir = crate::data_dir::DataDir::for_command(&data_dir)?;
            let keys = eic_store::read_live_keys(&data_dir.path().join("keys"), now)?;
            for key in keys
                .iter()
                .filter(|k| instance_id.as_ref().is_none_or(|id| *id == k.instance_id))
            {
                let line = serde_json::json!({
                    "request_id": key.request_id,
                    "instance_id": key.instance_id,
                    "target": key.target,
                    "fingerprint": key.fingerprint,
                    "caller": key.caller_arn,
                    "pushed_at_ms": key.pushed_at_ms,
                    "expires_at_ms": key.expires_at_ms,
                });
                println!("{line}");
            }
            Ok(())
        }
    }
}
