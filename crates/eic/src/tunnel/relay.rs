//! The relay of one tunnel: binary WebSocket frames from the client to the
//! instance's TCP connection, and the instance's bytes back as binary
//! frames, until one side ends, the tunnel's duration or idle time runs
//! out, or the server stops.
//!
//! Each direction waits for its write to complete before it reads again,
//! so a slow reader on either side stalls its writer instead of making eic
//! buffer: a tunnel holds at most one frame in each direction, plus the
//! WebSocket's own bounded buffers ([`websocket_config`]). Nothing is read
//! from the instance into memory before it is readable, so an idle tunnel
//! holds no relay buffer at all.
//!
//! How it ends decides the close frame the client gets: 1000 when the
//! instance closed its side (the CLI exits 0), otherwise a code and a
//! reason the CLI prints (`Websocket Closure Reason: …`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The largest frame sent to the client: the CLI's own frame size, so
/// both directions move the same units.
pub const MAX_FRAME_BYTES: usize = 65_000;
/// The largest frame or message accepted from a client: the CLI sends at
/// most 65,000 bytes and Teleport one `Write` (32 KiB) per message; four
/// times the CLI's leaves room for other clients and bounds memory.
const MAX_INCOMING_BYTES: usize = 256 * 1024;
/// How long the close handshake may take before the connection is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The WebSocket's buffers: a small read buffer (it is allocated for every
/// tunnel, idle or not), no write batching (each frame is flushed, as the
/// relay waits for it anyway), and bounded incoming frames and messages.
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(2 * MAX_INCOMING_BYTES)
        .max_message_size(Some(MAX_INCOMING_BYTES))
        .max_frame_size(Some(MAX_INCOMING_BYTES))
}

/// How long a tunnel may last and stay silent.
#[derive(Debug, Clone, Copy)]
pub struct RelayLimits {
    pub max_duration: Duration,
    pub idle_timeout: Duration,
}

/// Why a tunnel ended.
#[derive(Debug)]
pub enum Ending {
    /// The instance closed its side of the connection.
    InstanceClosed,
    /// The client sent a close frame.
    ClientClosed,
    /// The client's connection ended without a close frame, or broke.
    ClientGone(String),
    /// The instance's connection failed.
    InstanceFailed(std::io::Error),
    /// The client sent a text frame: the tunnel carries bytes only.
    TextFrame,
    /// The tunnel's maximum duration ran out.
    DurationReached,
    /// Neither side sent anything for the idle timeout.
    Idle,
    /// The server is stopping.
    Shutdown,
}

impl Ending {
    /// The close frame the client gets, if it can still get one.
    fn close_frame(&self) -> Option<(CloseCode, &'static str)> {
        Some(match self {
            Ending::InstanceClosed => (CloseCode::Normal, ""),
            Ending::ClientClosed | Ending::ClientGone(_) => return None,
            Ending::InstanceFailed(_) => (CloseCode::Error, "Connection to the instance failed"),
            Ending::TextFrame => (CloseCode::Unsupported, "Text frames are not supported"),
            Ending::DurationReached => (CloseCode::Policy, "Max tunnel duration reached"),
            Ending::Idle => (CloseCode::Policy, "Idle timeout reached"),
            Ending::Shutdown => (CloseCode::Away, "Server shutting down"),
        })
    }

    /// How the audit log names it.
    pub fn name(&self) -> &'static str {
        match self {
            Ending::InstanceClosed => "InstanceClosed",
            Ending::ClientClosed => "ClientClosed",
            Ending::ClientGone(_) => "ClientDisconnected",
            Ending::InstanceFailed(_) => "InstanceConnectionFailed",
            Ending::TextFrame => "ProtocolError",
            Ending::DurationReached => "MaxTunnelDurationReached",
            Ending::Idle => "IdleTimeout",
            Ending::Shutdown => "ServerShutdown",
        }
    }

    /// The close code sent, if any (for the audit log).
    pub fn close_code(&self) -> Option<u16> {
        self.close_frame().map(|(code, _)| code.into())
    }
}

/// What a tunnel did.
#[derive(Debug)]
pub struct Outcome {
    pub ending: Ending,
    pub bytes_to_instance: u64,
    pub bytes_to_client: u64,
    pub duration: Duration,
}

/// Relays between the client's WebSocket and the instance until the
/// tunnel ends, then closes both.
pub async fn relay<S>(
    websocket: WebSocketStream<S>,
    instance: TcpStream,
    limits: RelayLimits,
    mut stop: watch::Receiver<bool>,
) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let deadline = started + limits.max_duration;
    let (mut to_client, mut from_client) = websocket.split();
    let (from_instance, mut to_instance) = instance.into_split();
    let to_instance_bytes = AtomicU64::new(0);
    let to_client_bytes = AtomicU64::new(0);
    // Milliseconds since `started` of the last frame either way.
    let last_activity = AtomicU64::new(0);
    let touch = || last_activity.store(elapsed_ms(started), Ordering::Relaxed);

    let ending = {
        let upstream = async {
            loop {
                match from_client.next().await {
                    None => return Ending::ClientGone("closed without a close frame".into()),
                    Some(Err(e)) => return Ending::ClientGone(e.to_string()),
                    // The CLI sends an empty frame each time it polls a
                    // closed stdin, thousands a second: nothing to
                    // relay, and no sign of life.
                    Some(Ok(Message::Binary(data))) if data.is_empty() => {}
                    Some(Ok(Message::Binary(data))) => {
                        touch();
                        to_instance_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                        if let Err(e) = to_instance.write_all(&data).await {
                            return Ending::InstanceFailed(e);
                        }
                    }
                    Some(Ok(Message::Close(_))) => return Ending::ClientClosed,
                    Some(Ok(Message::Text(_))) => return Ending::TextFrame,
                    // Pings are answered by tungstenite itself.
                    Some(Ok(_)) => touch(),
                }
            }
        };
        let downstream = async {
            loop {
                if let Err(e) = from_instance.readable().await {
                    return Ending::InstanceFailed(e);
                }
                let mut frame = vec![0; MAX_FRAME_BYTES];
                match from_instance.try_read(&mut frame) {
                    Ok(0) => return Ending::InstanceClosed,
                    Ok(n) => {
                        frame.truncate(n);
                        touch();
                        to_client_bytes.fetch_add(n as u64, Ordering::Relaxed);
                        if let Err(e) = to_client.send(Message::Binary(Bytes::from(frame))).await {
                            return Ending::ClientGone(e.to_string());
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Ending::InstanceFailed(e),
                }
            }
        };
        let idle = async {
            loop {
                let last = Duration::from_millis(last_activity.load(Ordering::Relaxed));
                let due = started + last + limits.idle_timeout;
                if Instant::now() >= due {
                    return Ending::Idle;
                }
                tokio::time::sleep_until(due).await;
            }
        };
        tokio::select! {
            ending = upstream => ending,
            ending = downstream => ending,
            ending = idle => ending,
            _ = tokio::time::sleep_until(deadline) => Ending::DurationReached,
            _ = crate::server::listen::stopped(&mut stop) => Ending::Shutdown,
        }
    };

    let _ = to_instance.shutdown().await;
    drop(to_instance);
    drop(from_instance);
    let websocket = to_client
        .reunite(from_client)
        .expect("both halves come from the same split");
    close_client(websocket, &ending).await;
    Outcome {
        ending,
        bytes_to_instance: to_instance_bytes.into_inner(),
        bytes_to_client: to_client_bytes.into_inner(),
        duration: started.elapsed(),
    }
}

/// Sends the close frame the ending calls for and waits, briefly, for the
/// client's; after a client's close frame, completes the handshake.
async fn close_client<S>(mut websocket: WebSocketStream<S>, ending: &Ending)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let closing = async {
        match (ending, ending.close_frame()) {
            (Ending::ClientClosed, _) => {
                // tungstenite queued the reply to the client's close frame.
                let _ = websocket.flush().await;
            }
            (_, Some((code, reason))) => {
                let frame = CloseFrame {
                    code,
                    reason: reason.into(),
                };
                if websocket.close(Some(frame)).await.is_ok() {
                    while let Some(Ok(_)) = websocket.next().await {}
                }
            }
            (_, None) => {}
        }
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, closing).await;
}

fn elapsed_ms(since: Instant) -> u64 {
    since.elapsed().as_millis().try_into().unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, DuplexStream};
    use tokio::net::{TcpListener, TcpSocket};
    use tokio_tungstenite::tungstenite::protocol::Role;

    const LIMITS: RelayLimits = RelayLimits {
        max_duration: Duration::from_secs(3600),
        idle_timeout: Duration::from_secs(600),
    };

    /// A client's WebSocket, the relay's task and the instance's side of
    /// its connection. Socket buffers are small and fixed (no autotuning),
    /// so what the kernel holds is bounded and a stall shows.
    struct Tunnel {
        client: WebSocketStream<DuplexStream>,
        instance: TcpStream,
        relay: tokio::task::JoinHandle<Outcome>,
        stop: watch::Sender<bool>,
    }

    async fn open(limits: RelayLimits) -> Tunnel {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_send_buffer_size(64 * 1024).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener: TcpListener = socket.listen(8).unwrap();
        let relay_side = TcpSocket::new_v4().unwrap();
        relay_side.set_recv_buffer_size(64 * 1024).unwrap();
        let (relay_side, accepted) = tokio::join!(
            relay_side.connect(listener.local_addr().unwrap()),
            listener.accept()
        );
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let server =
            WebSocketStream::from_raw_socket(ours, Role::Server, Some(websocket_config())).await;
        let client = WebSocketStream::from_raw_socket(theirs, Role::Client, None).await;
        let (stop, stopped) = watch::channel(false);
        let relay = tokio::spawn(relay(server, relay_side.unwrap(), limits, stopped));
        Tunnel {
            client,
            instance: accepted.unwrap().0,
            relay,
            stop,
        }
    }

    async fn next_close(client: &mut WebSocketStream<DuplexStream>) -> Option<CloseFrame> {
        loop {
            match client.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("no close frame: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn bytes_go_both_ways_and_the_instance_closing_is_1000() {
        let mut t = open(LIMITS).await;
        t.client
            .send(Message::binary(vec![7u8; 65_000]))
            .await
            .unwrap();
        t.client
            .send(Message::binary(b"tail".to_vec()))
            .await
            .unwrap();
        let mut got = vec![0; 65_004];
        t.instance.read_exact(&mut got).await.unwrap();
        assert!(got[..65_000].iter().all(|b| *b == 7) && &got[65_000..] == b"tail");

        let reply = vec![9u8; 200_000];
        t.instance.write_all(&reply).await.unwrap();
        t.instance.shutdown().await.unwrap();
        let mut received = Vec::new();
        let close = loop {
            match t.client.next().await.unwrap().unwrap() {
                Message::Binary(data) => {
                    assert!(data.len() <= MAX_FRAME_BYTES);
                    received.extend_from_slice(&data);
                }
                Message::Close(frame) => break frame,
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(received, reply);
        assert_eq!(close.unwrap().code, CloseCode::Normal);
        let outcome = t.relay.await.unwrap();
        assert!(matches!(outcome.ending, Ending::InstanceClosed));
        assert_eq!(
            (outcome.bytes_to_instance, outcome.bytes_to_client),
            (65_004, 200_000)
        );
    }

    #[tokio::test]
    async fn the_clients_close_frame_closes_the_instances_connection() {
        let mut t = open(LIMITS).await;
        t.client.close(None).await.unwrap();
        let mut rest = Vec::new();
        assert_eq!(t.instance.read_to_end(&mut rest).await.unwrap(), 0);
        assert!(matches!(
            t.relay.await.unwrap().ending,
            Ending::ClientClosed
        ));
    }

    #[tokio::test]
    async fn the_duration_running_out_is_1008_with_the_reason_the_cli_prints() {
        let limits = RelayLimits {
            max_duration: Duration::from_millis(300),
            ..LIMITS
        };
        let mut t = open(limits).await;
        let frame = next_close(&mut t.client).await.unwrap();
        assert_eq!(
            (u16::from(frame.code), frame.reason.as_str()),
            (1008, "Max tunnel duration reached")
        );
        let outcome = t.relay.await.unwrap();
        assert!(matches!(outcome.ending, Ending::DurationReached));
        assert!(outcome.duration >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn silence_past_the_idle_timeout_ends_the_tunnel_and_traffic_defers_it() {
        let limits = RelayLimits {
            idle_timeout: Duration::from_millis(600),
            ..LIMITS
        };
        let mut t = open(limits).await;
        // Silence, shorter than the timeout; then one byte.
        tokio::time::sleep(Duration::from_millis(400)).await;
        t.client.send(Message::binary(b"x".to_vec())).await.unwrap();
        let mut one = [0u8; 1];
        t.instance.read_exact(&mut one).await.unwrap();
        let frame = next_close(&mut t.client).await.unwrap();
        assert_eq!(frame.reason.as_str(), "Idle timeout reached");
        let outcome = t.relay.await.unwrap();
        assert!(matches!(outcome.ending, Ending::Idle));
        // 400 ms of silence, the byte, then the whole timeout again.
        assert!(
            outcome.duration >= Duration::from_millis(1000),
            "{:?}",
            outcome.duration
        );
    }

    #[tokio::test]
    async fn a_text_frame_is_refused_with_1003() {
        let mut t = open(LIMITS).await;
        t.client.send(Message::text("ls")).await.unwrap();
        let frame = next_close(&mut t.client).await.unwrap();
        assert_eq!(frame.code, CloseCode::Unsupported);
        assert!(matches!(t.relay.await.unwrap().ending, Ending::TextFrame));
    }

    #[tokio::test]
    async fn stopping_the_server_is_1001() {
        let mut t = open(LIMITS).await;
        t.stop.send(true).unwrap();
        let frame = next_close(&mut t.client).await.unwrap();
        assert_eq!(
            (frame.code, frame.reason.as_str()),
            (CloseCode::Away, "Server shutting down")
        );
        assert!(matches!(t.relay.await.unwrap().ending, Ending::Shutdown));
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_stalls_the_instance_instead_of_filling_memory() {
        let t = open(LIMITS).await;
        let mut instance = t.instance;
        let chunk = vec![1u8; 64 * 1024];
        let mut written = 0usize;
        // Loopback moves 64 MiB in well under a second; two seconds of no
        // progress is a stall.
        let stuck = tokio::time::timeout(Duration::from_secs(2), async {
            while written < 64 << 20 {
                instance.write_all(&chunk).await.unwrap();
                written += chunk.len();
            }
        })
        .await;
        assert!(stuck.is_err(), "64 MiB went into a tunnel nobody reads");
        // Kernel buffers (fixed at 64 KiB each side), the duplex, one frame.
        assert!(written < 2 << 20, "{written} bytes taken before the stall");
        drop(t.client);
    }
}
