//! What the gateway reports about each session, for the server's audit log.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

/// Who opened which console, with which pushed key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub instance_id: String,
    pub port: u8,
    /// `SHA256:…` fingerprint of the key that authenticated.
    pub key_fingerprint: String,
    /// Request id of the push that made the key live.
    pub request_id: String,
    /// Caller ARN of that push.
    pub caller_arn: String,
    pub client: SocketAddr,
    pub started_at: SystemTime,
}

/// How a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionEnd {
    pub duration: Duration,
    /// Bytes the client typed that were written to the console.
    pub bytes_to_console: u64,
    /// Bytes the console produced that were sent to the client.
    pub bytes_from_console: u64,
    pub reason: EndReason,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// The client closed the channel or the connection (OpenSSH `~.`).
    ClientDisconnected,
    /// The console side closed (the pty command exited, the socket closed).
    BackendClosed,
    /// The console could not be reached when the session opened.
    BackendUnavailable(String),
    /// The session reached the gateway's maximum duration.
    MaxDuration,
    /// The gateway is shutting down.
    GatewayShutdown,
}

/// Receives session start and end; called from the session's task, so
/// implementations should not block for long.
pub trait SessionEvents: Send + Sync {
    fn session_started(&self, session: &SessionRecord);
    fn session_ended(&self, session: &SessionRecord, end: &SessionEnd);
}
