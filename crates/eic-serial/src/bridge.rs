//! A console session: the SSH channel joined to the console until one side
//! leaves, the maximum duration passes or the gateway shuts down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use russh::server::Msg;
use russh::{Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};
use tracing::{info, warn};

use crate::backend::{self, Console, ConsoleBackend};
use crate::events::{EndReason, SessionEnd, SessionRecord, SessionTap, TerminalSize};
use crate::gateway::{Gateway, Phase};
use eic_store::SessionLease;

/// SSH extended data type 1: the client's stderr (RFC 4254 §5.2).
const STDERR: u32 = 1;

pub(crate) struct Bridge {
    pub gateway: Arc<Gateway>,
    pub channel: Channel<Msg>,
    pub lease: SessionLease,
    pub record: SessionRecord,
    pub backend: ConsoleBackend,
    pub shutdown: watch::Receiver<bool>,
    pub phase: Arc<watch::Sender<Phase>>,
    /// The client's terminal size as it changes.
    pub size: watch::Receiver<TerminalSize>,
}

#[derive(Default)]
struct Counts {
    to_console: AtomicU64,
    from_console: AtomicU64,
}

impl Bridge {
    pub(crate) async fn run(self) {
        let Bridge {
            gateway,
            channel,
            lease,
            record,
            backend,
            mut shutdown,
            phase,
            mut size,
        } = self;
        let config = &gateway.config;
        let started = Instant::now();
        config.events.session_started(&record);
        info!(instance = %record.instance_id, port = record.port, client = %record.client,
            fingerprint = %record.key_fingerprint, request_id = %record.request_id, "serial console session started");

        let (mut from_client, to_client) = channel.split();
        let counts = Counts::default();
        let tap = config.events.tap(&record);
        let opened = match &tap {
            Ok(_) => backend::open(&backend, config.backend_timeout).await,
            Err(e) => Err(format!("the session cannot be recorded: {e}")),
        };
        let tap = std::sync::Mutex::new(tap.ok().flatten());
        let reason = match opened {
            Ok(console) => {
                let deadline = started + config.max_session;
                pump(
                    console,
                    Sides {
                        from_client: &mut from_client,
                        to_client: &to_client,
                    },
                    &counts,
                    &tap,
                    deadline,
                    Watched {
                        shutdown: &mut shutdown,
                        size: &mut size,
                    },
                )
                .await
            }
            Err(e) => {
                warn!(instance = %record.instance_id, port = record.port, ?backend, error = %e, "serial console unreachable");
                EndReason::BackendUnavailable(e)
            }
        };

        let target = format!("{} port {}", record.instance_id, record.port);
        let (status, notice) = match &reason {
            EndReason::ClientDisconnected => (0, None),
            EndReason::BackendClosed => (
                0,
                Some(format!(
                    "the serial console of {target} closed the connection"
                )),
            ),
            EndReason::BackendUnavailable(e) => (
                1,
                Some(format!(
                    "cannot connect to the serial console of {target}: {e}"
                )),
            ),
            EndReason::MaxDuration => (
                0,
                Some(format!(
                    "serial console session ended: the maximum session duration ({} s) was reached",
                    config.max_session.as_secs()
                )),
            ),
            EndReason::GatewayShutdown => (
                0,
                Some("serial console session ended: the gateway is shutting down".to_string()),
            ),
        };
        finish(&to_client, status, notice.as_deref()).await;
        drop(lease);

        let end = SessionEnd {
            duration: started.elapsed(),
            bytes_to_console: counts.to_console.load(Ordering::Relaxed),
            bytes_from_console: counts.from_console.load(Ordering::Relaxed),
            reason,
        };
        info!(instance = %record.instance_id, port = record.port, client = %record.client,
            reason = ?end.reason, seconds = end.duration.as_secs(), bytes_in = end.bytes_to_console,
            bytes_out = end.bytes_from_console, "serial console session ended");
        let tap = tap.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Some(tap) = tap {
            let ended = end.clone();
            let _ = tokio::task::spawn_blocking(move || tap.ended(&ended)).await;
        }
        config.events.session_ended(&record, &end);
        phase.send_replace(Phase::Ended);
    }
}

/// Copies both ways until something ends the session, and says what did.
/// The client's side of a session.
struct Sides<'a> {
    from_client: &'a mut ChannelReadHalf,
    to_client: &'a ChannelWriteHalf<Msg>,
}

type Tap = std::sync::Mutex<Option<Box<dyn SessionTap>>>;

/// What the session watches besides its two sides.
struct Watched<'a> {
    shutdown: &'a mut watch::Receiver<bool>,
    size: &'a mut watch::Receiver<TerminalSize>,
}

/// Hands `bytes` to the tap, if there is one; the lock is held only for
/// the call (both directions run in this one task).
fn tapped(tap: &Tap, see: impl FnOnce(&mut dyn SessionTap)) {
    if let Some(tap) = tap.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        see(tap.as_mut());
    }
}

async fn pump(
    console: Console,
    sides: Sides<'_>,
    counts: &Counts,
    tap: &Tap,
    deadline: Instant,
    watched: Watched<'_>,
) -> EndReason {
    let Watched { shutdown, size } = watched;
    let Sides {
        from_client,
        to_client,
    } = sides;
    // The process (for a command backend) lives until this returns.
    let Console {
        mut reader,
        mut writer,
        _process,
    } = console;
    let input = async {
        loop {
            match from_client.wait().await {
                Some(ChannelMsg::Data { data }) => {
                    if writer.write_all(&data).await.is_err() || writer.flush().await.is_err() {
                        return EndReason::BackendClosed;
                    }
                    counts
                        .to_console
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                    tapped(tap, |t| t.typed(&data));
                }
                Some(ChannelMsg::Close) | None => return EndReason::ClientDisconnected,
                // EOF included: a serial line has no end of input, so the
                // client keeps seeing the console until it closes.
                Some(_) => {}
            }
        }
    };
    let output = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match reader.read(&mut buf).await {
                // A pty reports EIO once the command has exited.
                Ok(0) | Err(_) => return EndReason::BackendClosed,
                Ok(n) => n,
            };
            if to_client.data_bytes(buf[..n].to_vec()).await.is_err() {
                return EndReason::ClientDisconnected;
            }
            counts.from_console.fetch_add(n as u64, Ordering::Relaxed);
            tapped(tap, |t| t.printed(&buf[..n]));
        }
    };
    let ticks = async {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut resizes_open = true;
        loop {
            tokio::select! {
                _ = every.tick() => tapped(tap, |t| t.tick()),
                changed = size.changed(), if resizes_open => match changed {
                    Ok(()) => {
                        let now = *size.borrow_and_update();
                        tapped(tap, |t| t.resized(now));
                    }
                    // The connection's handler is gone; the session ends soon.
                    Err(_) => resizes_open = false,
                },
            }
        }
    };
    tokio::select! {
        reason = input => reason,
        reason = output => reason,
        never = ticks => never,
        _ = sleep_until(deadline) => EndReason::MaxDuration,
        _ = crate::gateway::stopped(shutdown) => EndReason::GatewayShutdown,
    }
}

/// Ends a channel so that OpenSSH prints `message` on stderr and exits with
/// `status` by itself: without exit-status, EOF and close it exits 255.
/// Errors mean the client is already gone, which is the wanted outcome.
pub(crate) async fn finish(to_client: &ChannelWriteHalf<Msg>, status: u32, message: Option<&str>) {
    if let Some(message) = message {
        // Leading CR LF: the client's terminal is usually in raw mode, maybe
        // mid-line of console output.
        let _ = to_client
            .extended_data_bytes(STDERR, format!("\r\n{message}\r\n").into_bytes())
            .await;
    }
    let _ = to_client.exit_status(status).await;
    let _ = to_client.eof().await;
    let _ = to_client.close().await;
}
