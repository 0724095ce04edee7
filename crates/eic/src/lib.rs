//! eic: a self-hosted, wire-compatible AWS EC2 Instance Connect. The `eic`
//! binary (`main.rs`) parses the command line and calls into this library;
//! see README.md for what each command is for and ARCHITECTURE.md for how
//! the pieces fit.
//!
//! By role:
//! - [`server`]: `eic server`, its listeners and the roles it serves (the
//!   API pipeline, authorization, the instance-facing API, the serial
//!   console gateway's wiring);
//! - [`agent`]: the instance side, `eic authorized-keys` in its three modes
//!   and `eic agent join|run|install|uninstall`: the eic-agent crate,
//!   re-exported (it is also the `eic-agent` binary);
//! - [`cli`]: the admin commands;
//! - [`client`]: the user side, `eic ssh`, `eic proxy`, `eic known-hosts`
//!   and `eic ssh-config`;
//! - [`tunnel`]: the Instance Connect Endpoint's `/openTunnel` request and
//!   relay (its listener is `server::tunnel`).
//!
//! The shared core, used by several roles: [`config`] (the TOML schema),
//! [`registry`] (accounts, principals, instances), [`audit`] (the audit
//! log), [`credentials`] (temporary credentials), [`instance_credentials`],
//! [`data_dir`], [`settings`] (runtime settings), [`signing`] (the CA and
//! signer of key blobs), [`tls_ca`] (the instance-facing listener's TLS CA
//! and trust anchor), [`secret`], [`os`] (the libc calls) and [`systemd`]
//! (the notify protocol); the last three, [`join_token`] and the wire half
//! of [`enrollment`] are eic-agent's, re-exported, since instances use them
//! too.

pub mod audit;
pub mod cli;
pub mod client;
pub mod config;
pub mod credentials;
pub mod data_dir;
pub mod enrollment;
pub mod fleet;
pub mod instance_credentials;
pub mod instances;
pub mod metrics;
pub mod registry;
pub mod server;
pub mod settings;
pub mod signing;
pub mod tls_ca;
pub mod tunnel;

pub use eic_agent as agent;
pub use eic_agent::{join_token, os, secret, systemd};

/// Logs to stderr at `RUST_LOG` (default `info`) as text, coloured only
/// for a person at a terminal, not for journald or a file.
pub fn init_logging() {
    init_logging_as(config::LogFormat::Text);
}

/// As [`init_logging`], in `format`: text, or one JSON object a line (the
/// current span's fields, such as a request's `request_id`, under `span`).
pub fn init_logging_as(format: config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        config::LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        config::LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}
