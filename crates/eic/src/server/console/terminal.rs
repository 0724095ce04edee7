//! One browser terminal: eic is the SSH client (russh), the browser holds
//! one WebSocket. Raw bytes travel as binary frames both ways; control
//! messages (resize, pause and resume from the page; ready, exit and error
//! to it) as JSON text frames.
//!
//! Back-pressure both ways without buffering here: a frame from the page
//! is written to the channel before the next is read (russh waits for the
//! SSH window), and the instance's output is read only while the page has
//! not said `pause` (xterm.js says it when its write queue grows), so a
//! busy instance waits on its SSH window instead of filling eic's memory.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use russh::client::{self, Handle};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect};
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::recording::SessionRecording;

/// The largest frame or message the page may send: keystrokes and pastes.
const MAX_INCOMING_BYTES: usize = 64 * 1024;
/// The most columns or rows a resize may ask for.
const MAX_DIMENSION: u16 = 1000;

pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(Some(MAX_INCOMING_BYTES))
        .max_frame_size(Some(MAX_INCOMING_BYTES))
}

/// A text frame from the page.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Control {
    Resize { cols: u16, rows: u16 },
    // Braces, not unit variants: serde's deny_unknown_fields skips a unit
    // variant of an internally tagged enum.
    Pause {},
    Resume {},
}

impl Control {
    pub fn parse(text: &str) -> Result<Control, String> {
        let control: Control =
            serde_json::from_str(text).map_err(|e| format!("not a control message: {e}"))?;
        if let Control::Resize { cols, rows } = control {
            if !(1..=MAX_DIMENSION).contains(&cols) || !(1..=MAX_DIMENSION).contains(&rows) {
                return Err(format!(
                    "a terminal is 1 to {MAX_DIMENSION} columns and rows, not {cols}x{rows}"
                ));
            }
        }
        Ok(control)
    }
}

/// The text frame that ends a session, with its reason for the page.
pub fn exit_message(status: Option<u32>, reason: &str) -> Message {
    Message::text(json!({"type": "exit", "status": status, "reason": reason}).to_string())
}

pub fn error_message(message: &str) -> Message {
    Message::text(json!({"type": "error", "message": message}).to_string())
}

/// The instance's host key check: the key it presents must be one of the
/// keys registered for it (`host_keys` in the config, or reported at
/// enrollment); an instance with none registered is not connected to.
pub struct HostKeyCheck {
    pub expected: Vec<String>,
    /// What was presented, for the refusal's message.
    pub presented: Arc<std::sync::Mutex<Option<String>>>,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        presented: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // Instances register plain host keys; a certificate is not one.
        let PublicKeyOrCertificate::PublicKey { key, .. } = presented else {
            return Ok(false);
        };
        let presented = key.to_openssh().unwrap_or_default();
        let presented: String = presented.split(' ').take(2).collect::<Vec<_>>().join(" ");
        let known = self.expected.iter().any(|line| {
            let expected: String = line
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            expected == presented
        });
        if let Ok(mut slot) = self.presented.lock() {
            *slot = Some(presented);
        }
        Ok(known)
    }
}

/// What a terminal connects as.
pub struct Login<'a> {
    /// Where the stream goes, as the page names it (`10.0.0.5:22`, or
    /// with the endpoint it goes through).
    pub destination: &'a str,
    pub host_keys: Vec<String>,
    pub user: &'a str,
    pub key: PrivateKey,
    pub cols: u16,
    pub rows: u16,
}

/// An SSH session with a shell on a pty, ready to bridge.
pub struct Shell {
    handle: Handle<HostKeyCheck>,
    channel: russh::Channel<client::Msg>,
}

/// Over `stream` (a TCP connection, or a tunnel through an endpoint):
/// verifies the host key, logs in with the pushed key and opens a shell on
/// a pty; the error is what the page shows. The caller bounds the time.
pub async fn open_shell<S>(stream: S, login: Login<'_>) -> Result<Shell, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if login.host_keys.is_empty() {
        return Err("This instance has no registered host key, so the console cannot verify it and does not connect.".into());
    }
    let config = Arc::new(client::Config {
        inactivity_timeout: None,
        ..Default::default()
    });
    let presented = Arc::new(std::sync::Mutex::new(None));
    let check = HostKeyCheck {
        expected: login.host_keys,
        presented: presented.clone(),
    };
    let destination = login.destination;
    let mut handle = client::connect_stream(config, stream, check)
        .await
        .map_err(|e| match presented.lock().ok().and_then(|p| p.clone()) {
            Some(key) if matches!(e, russh::Error::UnknownKey) => format!(
                "The instance at {destination} presented host key {key}, which is not its registered key; not connected."
            ),
            _ => format!("Could not connect to {destination}: {e}."),
        })?;
    let auth = handle
        .authenticate_publickey(
            login.user,
            PrivateKeyWithHashAlg::new(Arc::new(login.key), None),
        )
        .await
        .map_err(|e| format!("SSH authentication failed: {e}."))?;
    if !auth.success() {
        return Err(format!(
            "The instance refused the pushed key for {}. Is its sshd set up with eic's AuthorizedKeysCommand?",
            login.user
        ));
    }
    let channel = handle
        .channel_open_session()
        .await
        .map_err(|e| format!("Could not open a session: {e}."))?;
    channel
        .request_pty(
            false,
            "xterm-256color",
            u32::from(login.cols),
            u32::from(login.rows),
            0,
            0,
            &[],
        )
        .await
        .map_err(|e| format!("Could not get a terminal: {e}."))?;
    channel
        .request_shell(false)
        .await
        .map_err(|e| format!("Could not start a shell: {e}."))?;
    Ok(Shell { handle, channel })
}

/// What the page is told when a terminal was silent too long.
fn idle_reason(timeout: Duration) -> String {
    let secs = timeout.as_secs();
    let span = if secs.is_multiple_of(60) && secs >= 60 {
        let minutes = secs / 60;
        format!("{minutes} minute{}", if minutes == 1 { "" } else { "s" })
    } else {
        format!("{secs} second{}", if secs == 1 { "" } else { "s" })
    };
    format!("Closed after {span} without input or output.")
}

/// How a terminal ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    pub reason: String,
    pub exit_status: Option<u32>,
    pub bytes_to_instance: u64,
    pub bytes_from_instance: u64,
}

/// Relays between the page and the shell until one side ends, the idle
/// timeout passes or the server stops; tells the page why it ended.
pub async fn bridge<S>(
    mut ws: WebSocketStream<S>,
    shell: Shell,
    idle_timeout: Duration,
    mut recording: Option<SessionRecording>,
    mut stop: watch::Receiver<bool>,
) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Shell {
        handle,
        mut channel,
    } = shell;
    let mut ended = Ended {
        reason: String::new(),
        exit_status: None,
        bytes_to_instance: 0,
        bytes_from_instance: 0,
    };
    let mut paused = false;
    let idle = tokio::time::sleep(idle_timeout);
    tokio::pin!(idle);
    let mut flush = tokio::time::interval(Duration::from_secs(1));
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let _ = ws
        .send(Message::text(json!({"type": "ready"}).to_string()))
        .await;
    let reason = loop {
        tokio::select! {
            from_page = ws.next() => {
                idle.as_mut().reset(Instant::now() + idle_timeout);
                match from_page {
                    Some(Ok(Message::Binary(data))) => {
                        ended.bytes_to_instance += data.len() as u64;
                        if let Some(r) = recording.as_mut() {
                            r.input(&data);
                        }
                        if let Err(e) = channel.data_bytes(data).await {
                            break format!("The connection to the instance failed: {e}.");
                        }
                    }
                    Some(Ok(Message::Text(text))) => match Control::parse(&text) {
                        Ok(Control::Resize { cols, rows }) => {
                            if let Some(r) = recording.as_mut() {
                                r.resize(cols, rows);
                            }
                            let _ = channel.window_change(u32::from(cols), u32::from(rows), 0, 0).await;
                        }
                        Ok(Control::Pause {}) => paused = true,
                        Ok(Control::Resume {}) => paused = false,
                        Err(e) => {
                            let _ = ws.send(error_message(&e)).await;
                            break e;
                        }
                    },
                    Some(Ok(Message::Close(_))) | None => break "The page closed the terminal.".to_owned(),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break format!("The page's connection failed: {e}."),
                }
            }
            from_instance = channel.wait(), if !paused => {
                match from_instance {
                    Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => {
                        idle.as_mut().reset(Instant::now() + idle_timeout);
                        ended.bytes_from_instance += data.len() as u64;
                        if let Some(r) = recording.as_mut() {
                            r.output(&data);
                        }
                        if let Err(e) = ws.send(Message::Binary(Bytes::copy_from_slice(&data))).await {
                            break format!("The page's connection failed: {e}.");
                        }
                    }
                    Some(ChannelMsg::ExitStatus { exit_status }) => ended.exit_status = Some(exit_status),
                    // sshd sends EOF before the exit status: the session
                    // ends at the close that follows both.
                    Some(ChannelMsg::Close) | None => {
                        break match ended.exit_status {
                            // The page adds the status from the exit message.
                            Some(_) => "The shell exited.".to_owned(),
                            None => "The instance closed the session.".to_owned(),
                        };
                    }
                    Some(_) => {}
                }
            }
            _ = flush.tick() => {
                if let Some(r) = recording.as_mut() {
                    r.flush();
                }
            }
            () = &mut idle => break idle_reason(idle_timeout),
            _ = stop.changed() => break "The console is restarting; connect again in a moment.".to_owned(),
        }
    };
    ended.reason = reason;
    let _ = ws
        .send(exit_message(ended.exit_status, &ended.reason))
        .await;
    let _ = ws
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        }))
        .await;
    let _ = channel.close().await;
    let _ = handle.disconnect(Disconnect::ByApplication, "", "en").await;
    if let Some(r) = recording {
        r.finish(&ended).await;
    }
    ended
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages_parse_strictly() {
        assert_eq!(
            Control::parse(r#"{"type":"resize","cols":120,"rows":40}"#),
            Ok(Control::Resize {
                cols: 120,
                rows: 40
            })
        );
        assert_eq!(Control::parse(r#"{"type":"pause"}"#), Ok(Control::Pause {}));
        assert_eq!(
            Control::parse(r#"{"type":"resume"}"#),
            Ok(Control::Resume {})
        );
        for bad in [
            r#"{"type":"resize","cols":0,"rows":40}"#,
            r#"{"type":"resize","cols":5000,"rows":40}"#,
            r#"{"type":"resize","cols":-1,"rows":40}"#,
            r#"{"type":"exec","command":"rm"}"#,
            r#"{"type":"pause","extra":1}"#,
            "not json",
        ] {
            assert!(Control::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_idle_close_names_its_timeout_as_people_say_it() {
        assert_eq!(
            idle_reason(Duration::from_secs(900)),
            "Closed after 15 minutes without input or output."
        );
        assert_eq!(
            idle_reason(Duration::from_secs(60)),
            "Closed after 1 minute without input or output."
        );
        assert_eq!(
            idle_reason(Duration::from_secs(90)),
            "Closed after 90 seconds without input or output."
        );
    }

    #[test]
    fn the_page_is_told_why_a_session_ended() {
        let Message::Text(text) = exit_message(Some(0), "The shell exited with status 0.") else {
            panic!("a text frame");
        };
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["type"], "exit");
        assert_eq!(value["status"], 0);
    }
}
