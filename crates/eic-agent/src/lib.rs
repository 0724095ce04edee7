//! eic-agent: the instance side of eic, a library and the `eic-agent`
//! binary (`main.rs`), without the server's dependencies (no AWS SDK, no
//! store, no Redis, no metrics): what a machine that only serves ssh logins
//! needs. The `eic` binary dispatches `eic authorized-keys` and
//! `eic agent join|run|install|uninstall` here too.
//!
//! `authorized-keys` (sshd's AuthorizedKeysCommand, this module) has three
//! modes, each in its own module: `eic` (keys from eic's instance-facing
//! listener), `parser` (AWS's `eic_parse_authorized_keys` flags) and `aws`
//! (keys from AWS's instance metadata); [`http`], the client of eic's
//! instance-facing listener (TLS trust, pinning for a join); [`install`],
//! `agent install|uninstall` and the [`install::AgentCommand`] the binaries
//! share; [`join`] and [`heartbeat`], enrollment and `agent run`. What they
//! share is here: the agent configuration, the official parser's checks and
//! output (`verify_and_print`), and the log.
//!
//! The pieces the server uses too live here and eic re-exports them:
//! [`enrollment`] (the join and heartbeat bodies), [`join_token`],
//! [`secret`], [`os`] (the libc calls), [`systemd`] (the notify protocol),
//! [`trust`] (the instance-facing listener's trust anchor) and
//! [`private_file`].
//!
//! `authorized-keys` runs once per key a client offers, as an unprivileged
//! user, so it is one short process: one HTTP request, verification in
//! process (chain, OCSP staple, RSA-PSS), nothing spawned, bounded to five
//! seconds in all. It fails closed: on any doubt stdout stays empty.
//! Exit codes are the official parser's: 0 when keys were printed, 255 when
//! a blob held none valid, 1 when the chain or blob is refused; "no keys for
//! this user" is a quiet 0 with no output and no log line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use eic_keyblob::{verify_blob, verify_signer_chain, BlobVerdict, OcspStaples, VerifyParams};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

mod aws;
mod eic;
pub mod enrollment;
pub mod heartbeat;
pub mod http;
pub mod install;
pub mod join;
pub mod join_token;
pub mod os;
mod parser;
pub mod private_file;
pub mod secret;
pub mod systemd;
pub mod trust;

/// The whole run, as the official `timeout 5s` wrapper bounds it.
pub(crate) const TOTAL_BUDGET: Duration = Duration::from_secs(5);
/// One request, as the official `curl -m 1`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// A key blob for one user is a few kilobytes; more is refused.
pub const MAX_RESPONSE_BYTES: u64 = 1024 * 1024;

/// What an instance needs: printed by `eic agent-config`, read by
/// `eic authorized-keys --config`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The server's instance-facing URL.
    pub endpoint: String,
    pub instance_id: String,
    /// This instance's credential (keep the file readable only by the
    /// AuthorizedKeysCommandUser).
    pub credential: Secret<String>,
    /// The CN the signer certificate must carry.
    pub signer_cn: String,
    /// PEM of the CA that signs signer certificates.
    pub trust_anchor: String,
    /// PEM of the CA the instance-facing listener's TLS certificate chains
    /// to: the only one an https `endpoint` is trusted under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<String>,
    /// The machine joined over plain http (`eic agent join
    /// --insecure-http`), so its heartbeats may go over http too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_http: bool,
    /// How `eic agent run` finds what it reports (an enrolled instance's
    /// config only; `eic agent join` writes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<join::MachineArgs>,
}

#[derive(Args)]
pub struct AuthorizedKeysArgs {
    /// Agent configuration (from `eic agent-config`); without it, keys come
    /// from AWS's instance metadata, as on a real EC2 instance.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The OS user sshd asks about (`%u`).
    user: Option<String>,
    /// The offered key's fingerprint (`%f`); only that key is printed.
    fingerprint: Option<String>,
    /// Parser mode (AWS's eic_parse_authorized_keys flags): debug, `true` prints failures to stdout.
    #[arg(short = 'x', value_name = "true|false")]
    debug: Option<String>,
    /// Parser mode: the key blob file.
    #[arg(short = 'p', value_name = "FILE")]
    blob_file: Option<PathBuf>,
    /// Parser mode: the openssl binary (accepted and ignored: nothing is spawned).
    #[arg(short = 'o', value_name = "OPENSSL")]
    openssl: Option<String>,
    /// Parser mode: a temporary directory (accepted and ignored: nothing is written).
    #[arg(short = 'd', value_name = "DIR")]
    tmpdir: Option<PathBuf>,
    /// Parser mode: the signer chain, as PEM text.
    #[arg(short = 's', value_name = "PEM", allow_hyphen_values = true)]
    chain: Option<String>,
    /// Parser mode: this instance's id.
    #[arg(short = 'i', value_name = "ID")]
    instance_id: Option<String>,
    /// Parser mode: the expected signer CN.
    #[arg(short = 'c', value_name = "CN")]
    signer_cn: Option<String>,
    /// Parser mode: trusted CAs, a directory of PEM files or one bundle file.
    #[arg(short = 'a', value_name = "CA")]
    ca: Option<PathBuf>,
    /// Parser mode: the directory of OCSP staples (DER, named by uppercase SHA-1).
    #[arg(short = 'v', value_name = "DIR")]
    ocsp_dir: Option<PathBuf>,
    /// Parser mode: the expected fingerprint.
    #[arg(short = 'f', value_name = "FINGERPRINT")]
    flag_fingerprint: Option<String>,
}

pub fn authorized_keys(args: AuthorizedKeysArgs) -> ExitCode {
    let log = Log::open(args.debug.as_deref() == Some("true"));
    if args.blob_file.is_some() || args.chain.is_some() {
        return parser::run(&args, &log);
    }
    // No eic configuration and no parser flags (`-x` only sets where
    // failures go): a real EC2 instance, keys from AWS's IMDS.
    let parser_flags = args.openssl.is_some()
        || args.tmpdir.is_some()
        || args.instance_id.is_some()
        || args.signer_cn.is_some()
        || args.ca.is_some()
        || args.ocsp_dir.is_some()
        || args.flag_fingerprint.is_some();
    if let (None, Some(user), false) = (&args.config, &args.user, parser_flags) {
        return aws::run(user, args.fingerprint.as_deref(), &log);
    }
    let (Some(config), Some(user)) = (&args.config, &args.user) else {
        log.failure("usage: eic authorized-keys [--config AGENT.toml] USER [FINGERPRINT]");
        return ExitCode::from(1);
    };
    match eic::run(config, user, args.fingerprint.as_deref(), &log) {
        Ok(code) => code,
        Err(message) => {
            log.failure(&message);
            ExitCode::from(1)
        }
    }
}

/// What the instance got from its key source, in any mode.
pub(crate) struct Fetched<'a> {
    pub chain: &'a str,
    pub staples: &'a OcspStaples,
    pub blob: &'a str,
}

/// The official parser's checks (instance-side.md §3 B–G) and its output,
/// shared by every mode: the signer chain against `anchors` with required
/// staples, then every block, then the valid key lines on stdout.
pub(crate) fn verify_and_print(
    fetched: &Fetched<'_>,
    anchors: &[Vec<u8>],
    signer_cn: &str,
    instance_id: &str,
    fingerprint: Option<&str>,
    log: &Log,
) -> Result<ExitCode, String> {
    let now = unix_now();
    let signer = verify_signer_chain(
        fetched.chain,
        anchors,
        signer_cn,
        now,
        fetched.staples,
        true,
    )
    .map_err(|e| format!("could not verify the signer certificate: {e}"))?;
    if let Some(f) = fingerprint {
        log.info(&format!(
            "Querying EC2 Instance Connect keys for matching fingerprint: {f}"
        ));
    }
    Ok(print_verdict(
        verify_blob(
            fetched.blob,
            &VerifyParams {
                instance_id,
                now_unix: now,
                expected_fingerprint: fingerprint,
                signer_key: &signer,
            },
        ),
        log,
    ))
}

fn print_verdict(verdict: BlobVerdict, log: &Log) -> ExitCode {
    match verdict {
        BlobVerdict::Rejected(reason) => {
            log.failure(&format!("refusing every key of this blob: {reason:?}"));
            ExitCode::from(1)
        }
        BlobVerdict::Keys { accepted, .. } if accepted.is_empty() => ExitCode::from(255),
        BlobVerdict::Keys { accepted, .. } => {
            let mut out = String::new();
            for key in &accepted {
                log.info(&key.log_message());
                out.push_str(&key.key_line);
                out.push('\n');
            }
            let stdout = std::io::stdout();
            let mut stdout = stdout.lock();
            if stdout
                .write_all(out.as_bytes())
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
    }
}

pub(crate) fn trust_anchors(ca: &Path) -> Result<Vec<Vec<u8>>, String> {
    let mut anchors = Vec::new();
    if ca.is_dir() {
        let entries =
            std::fs::read_dir(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
        for entry in entries.flatten() {
            if let Ok(text) = std::fs::read_to_string(entry.path()) {
                anchors.extend(pem_certificates(&text));
            }
        }
    } else {
        let text = std::fs::read_to_string(ca)
            .map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
        anchors.extend(pem_certificates(&text));
    }
    Ok(anchors)
}

/// Every `CERTIFICATE` block of a PEM text, as DER; blocks that do not
/// decode are skipped (a CA directory holds other files too).
pub(crate) fn pem_certificates(text: &str) -> Vec<Vec<u8>> {
    CertificateDer::pem_slice_iter(text.as_bytes())
        .filter_map(Result::ok)
        .map(|der| der.as_ref().to_vec())
        .collect()
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// syslog at authpriv, as the official scripts log, or stdout in debug.
pub(crate) struct Log {
    debug: bool,
}

impl Log {
    fn open(debug: bool) -> Log {
        if !debug {
            crate::os::open_syslog();
        }
        Log { debug }
    }

    pub(crate) fn info(&self, message: &str) {
        if !self.debug {
            crate::os::syslog(libc::LOG_INFO, message);
        }
    }

    pub(crate) fn failure(&self, message: &str) {
        if self.debug {
            println!("{message}");
        } else {
            crate::os::syslog(libc::LOG_WARNING, message);
            eprintln!("eic authorized-keys: {message}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_certificates_are_the_certificate_blocks_that_decode() {
        let text = "\
a comment line
-----BEGIN CERTIFICATE-----
AQID
-----END CERTIFICATE-----
-----BEGIN PRIVATE KEY-----
BAUG
-----END PRIVATE KEY-----
-----BEGIN CERTIFICATE-----
!!!!
-----END CERTIFICATE-----
-----BEGIN CERTIFICATE-----\r
BwgJ\r
-----END CERTIFICATE-----\r
";
        assert_eq!(pem_certificates(text), [vec![1, 2, 3], vec![7, 8, 9]]);
        assert!(pem_certificates("no PEM at all").is_empty());
        assert!(pem_certificates("-----BEGIN CERTIFICATE-----\nAQID\n").is_empty());
    }
}
