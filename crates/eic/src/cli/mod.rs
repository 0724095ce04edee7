//! The admin commands: each reads or changes a service's state from its
//! configuration and data dir (or its Redis), and prints the answer.
//!
//! - [`audit`]: `eic audit`, the audit log filtered;
//! - [`keys`]: `eic keys list`, an embedded store's live keys;
//! - [`credentials`]: `eic credentials issue`, temporary credentials;
//! - [`agent`]: `eic agent-config` and `eic instance-credential`;
//! - [`serial`]: `eic serial-console-access` and `eic serial-host-key`.
//!
//! The server (`eic server`) is [`crate::server`]; the instance side (`eic
//! authorized-keys`, `eic agent install`) is [`crate::agent`].

pub mod agent;
pub mod audit;
pub mod credentials;
pub mod keys;
pub mod serial;
