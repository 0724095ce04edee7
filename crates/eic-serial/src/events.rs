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
    /// The client's terminal when the session started.
    pub size: TerminalSize,
}

/// A terminal's columns and rows, each 1 to [`TerminalSize::MAX`];
/// 80 × 24 until a client says otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TerminalSize {
    pub cols: u16,
    pub rows: u16,
}

impl TerminalSize {
    /// More than any screen shows; a larger claim is clamped to it.
    pub const MAX: u16 = 1000;

    /// The size a client sent, `None` for 0 (unknown).
    pub fn of(cols: u32, rows: u32) -> Option<TerminalSize> {
        let clamp = |n: u32| {
            u16::try_from(n.min(u32::from(Self::MAX)))
                .ok()
                .filter(|n| *n > 0)
        };
        Some(TerminalSize {
            cols: clamp(cols)?,
            rows: clamp(rows)?,
        })
    }
}

impl Default for TerminalSize {
    fn default() -> Self {
        TerminalSize { cols: 80, rows: 24 }
    }
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

    /// What sees the session's bytes as they pass (a recording), if
    /// anything; an error refuses the session, so a session that must be
    /// recorded and cannot be is never opened.
    fn tap(&self, _session: &SessionRecord) -> Result<Option<Box<dyn SessionTap>>, String> {
        Ok(None)
    }
}

/// A session's bytes, each direction as it passes, from the session's
/// task: implementations buffer rather than block.
pub trait SessionTap: Send {
    /// What the client typed, as written to the console.
    fn typed(&mut self, bytes: &[u8]);
    /// What the console printed, as sent to the client.
    fn printed(&mut self, bytes: &[u8]);
    /// The client's terminal changed size.
    fn resized(&mut self, size: TerminalSize);
    /// About once a second while the session runs (a recording flushes).
    fn tick(&mut self);
    /// The session is over; called off the runtime's workers, so it may
    /// sync to disk.
    fn ended(self: Box<Self>, end: &SessionEnd);
}

#[cfg(test)]
mod tests {
    use super::TerminalSize;

    #[test]
    fn a_terminal_size_is_clamped_and_zero_is_unknown() {
        assert_eq!(
            TerminalSize::of(120, 40),
            Some(TerminalSize {
                cols: 120,
                rows: 40
            })
        );
        assert_eq!(TerminalSize::of(0, 40), None);
        assert_eq!(TerminalSize::of(120, 0), None);
        assert_eq!(
            TerminalSize::of(u32::MAX, 5_000),
            Some(TerminalSize {
                cols: 1000,
                rows: 1000
            })
        );
        assert_eq!(TerminalSize::default(), TerminalSize { cols: 80, rows: 24 });
    }
}
