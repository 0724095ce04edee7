//! `eic audit`: reads the audit log and prints the events that match.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::audit::parse_time;

#[derive(Args)]
pub struct AuditArgs {
    /// The audit log (default: the one the server's config names).
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    file: Option<PathBuf>,
    /// The server's configuration, to find its audit log.
    #[arg(long)]
    config: Option<PathBuf>,
    /// With --config: the server's data directory, if overridden at its start.
    #[arg(long, value_name = "DIR", requires = "config")]
    data_dir: Option<PathBuf>,
    /// Only events about this instance.
    #[arg(long)]
    instance: Option<String>,
    /// Only events by this principal (ARN).
    #[arg(long)]
    principal: Option<String>,
    /// Only events at or after this time (RFC 3339 UTC `2026-11-28T12:00:00Z`, or Unix seconds).
    #[arg(long, value_parser = time_arg)]
    since: Option<std::time::SystemTime>,
    /// Only events before this time.
    #[arg(long, value_parser = time_arg)]
    until: Option<std::time::SystemTime>,
    /// Only allowed (no error) or refused (with an error code) events.
    #[arg(long, value_enum)]
    outcome: Option<Outcome>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Outcome {
    Allowed,
    Refused,
}

fn time_arg(text: &str) -> Result<std::time::SystemTime, String> {
    parse_time(text).ok_or_else(|| format!("'{text}' is not YYYY-MM-DDTHH:MM:SSZ or Unix seconds"))
}

pub fn run(args: AuditArgs) -> anyhow::Result<()> {
    let path = match (&args.file, &args.config) {
        (Some(file), _) => file.clone(),
        (None, Some(config)) => {
            crate::config::Config::load_with_data_dir(config, args.data_dir.as_deref())?
                .audit_path()
        }
        (None, None) => anyhow::bail!("give --file or --config"),
    };
    let file = std::fs::File::open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line?;
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            eprintln!(
                "eic: {}:{}: not a JSON event, skipped",
                path.display(),
                n + 1
            );
            continue;
        };
        if matches(&args, &event) {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

fn matches(args: &AuditArgs, event: &serde_json::Value) -> bool {
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    if let Some(instance) = &args.instance {
        if text(&event["requestParameters"]["instanceId"]).as_ref() != Some(instance) {
            return false;
        }
    }
    if let Some(principal) = &args.principal {
        if text(&event["userIdentity"]["arn"]).as_ref() != Some(principal) {
            return false;
        }
    }
    let time = event["eventTime"].as_str().and_then(parse_time);
    if args
        .since
        .is_some_and(|since| time.is_none_or(|t| t < since))
    {
        return false;
    }
    if args
        .until
        .is_some_and(|until| time.is_none_or(|t| t >= until))
    {
        return false;
    }
    let refused = event.get("errorCode").is_some_and(|c| !c.is_null());
    match args.outcome {
        Some(Outcome::Allowed) => !refused,
        Some(Outcome::Refused) => refused,
        None => true,
    }
}
