//! Serial console gateway for eic, wire-compatible with the EC2 Instance
//! Connect serial console (`ssh -i key <instance-id>.port0@serial-console…`).
//!
//! The gateway is an SSH server. The user name names the console
//! (`<instance-id>.port0`, spelt exactly so: port 0 is the only one); the
//! only authentication method is `publickey`, and the offered key must be
//! one of the keys pushed for that instance and port in the last 60 s
//! ([`SerialKeys`]). The 60 s bound only the opening of a session: an open
//! session outlives the key.
//!
//! After authentication a `shell` request bridges the SSH channel to the
//! instance's console ([`ConsoleBackend`]): a TCP serial server, a Unix
//! socket, or a command run on a pseudo-terminal. Bytes pass unchanged both
//! ways. One session per instance port exists across the gateway
//! ([`eic_store::SessionLocks`], which the stores implement); it ends when the console closes, when the client
//! leaves, at the maximum duration or at gateway shutdown, and every session
//! is reported to [`SessionEvents`] for the audit log.
//!
//! Channel requests: `pty-req` is accepted (it only sets up the client's
//! terminal), `window-change` ignored, `exec` answered with a message and
//! exit status 1 (a console runs no commands, and a mistaken command does
//! not take the port), `subsystem`, `env` and `x11-req` refused. EOF from the
//! client stops nothing: a serial line has no end of input, so the console
//! keeps printing until the client closes the channel.
//!
//! What the client is told when something goes wrong travels on the
//! channel's stderr stream (SSH extended data), followed by an exit status,
//! EOF and close, so OpenSSH prints the message and exits with that status
//! instead of 255.
//!
//! Limitation: russh 0.65.1 answers the RFC 4335 `break` channel request
//! (OpenSSH `~B`) with a failure itself and never calls the handler, so a
//! serial BREAK cannot reach any backend yet.

mod backend;
mod bridge;
mod events;
mod gateway;
mod handler;
mod hostkey;
mod keys;

pub use backend::{probe_backend, Backends, ConsoleBackend};
pub use events::{EndReason, SessionEnd, SessionEvents, SessionRecord, SessionTap, TerminalSize};
pub use gateway::{Gateway, GatewayConfig, FDS_PER_CONNECTION};
pub use hostkey::{host_key_fingerprint, host_public_key_line, load_or_create_host_key};
pub use keys::{SerialKey, SerialKeys};
