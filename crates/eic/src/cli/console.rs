//! `eic console-url`: a one-time sign-in link to the browser console for
//! one principal, signed with the console's key in the data dir
//! (`server::console::signin`). Issuing one is audited.

use std::time::{Duration, SystemTime};

use clap::Args;
use serde_json::json;

use super::ServerFiles;
use crate::audit::{format_iso8601, Admission, AuditLog};
use crate::registry::Registry;
use crate::server::console::signin::{read_base_url, SigninKey, DEFAULT_LINK_TTL, MAX_LINK_TTL};

#[derive(Args)]
pub struct ConsoleUrlArgs {
    #[command(flatten)]
    server: ServerFiles,
    /// The principal the link signs in, e.g. arn:aws:iam::111122223333:user/alice.
    #[arg(long, value_name = "ARN")]
    principal: String,
    /// How long the link can be used (once): 90s, 5m, at most 1h.
    #[arg(long, value_parser = super::parse_duration)]
    ttl: Option<Duration>,
}

pub fn console_url(args: ConsoleUrlArgs) -> anyhow::Result<()> {
    let (config, data_dir) = args.server.open()?;
    let Some(console) = &config.console else {
        anyhow::bail!(
            "{} has no [console] section: the browser console is off",
            args.server.config.display()
        );
    };
    let registry = Registry::from_config(&config)?;
    let Some(principal) = registry.principal(&args.principal) else {
        anyhow::bail!(
            "no principal {} in {}",
            args.principal,
            args.server.config.display()
        );
    };
    let ttl = args.ttl.unwrap_or(DEFAULT_LINK_TTL);
    if ttl.is_zero() || ttl > MAX_LINK_TTL {
        anyhow::bail!("--ttl is 1s to 1h: a sign-in link is for using now");
    }
    let key = SigninKey::load_or_create(data_dir.path())?;
    let now = SystemTime::now();
    let token = key.issue(&principal.arn, now, ttl)?;
    let audit = AuditLog::open(&config.audit_path(), &config.region, config.audit.limits())?;
    let uid = rustix::process::getuid().as_raw();
    let event = json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "Operator", "uid": uid},
        "eventTime": format_iso8601(now),
        "eventSource": "console.eic.local",
        "eventName": "CreateConsoleSignInLink",
        "awsRegion": config.region,
        "requestParameters": {
            "principalArn": principal.arn,
            "expiresAt": format_iso8601(now + ttl),
        },
        "eventID": uuid::Uuid::new_v4().to_string(),
        "readOnly": false,
        "eventType": "AwsServiceEvent",
    });
    audit
        .record(&event, Admission::Outcome)
        .map_err(|e| anyhow::anyhow!("cannot write the audit log, so no link is issued: {e}"))?;
    // The running server's own word, when it left one: it knows the
    // address it bound.
    let base = match &console.public_url {
        Some(_) => console.base_url_at(console.listen),
        None => {
            read_base_url(data_dir.path()).unwrap_or_else(|| console.base_url_at(console.listen))
        }
    };
    println!("{base}/signin?token={token}");
    Ok(())
}
