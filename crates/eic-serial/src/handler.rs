//! One SSH connection: who may log in, and what the session channel may ask.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use russh::keys::PublicKey;
use russh::server::{
    Auth, ChannelOpenHandle, Handler, Msg, PublicKeyOffer, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, MethodKind, MethodSet, Pty, Sig};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::backend::ConsoleBackend;
use crate::bridge::{self, Bridge};
use crate::events::{SessionRecord, TerminalSize};
use crate::gateway::{Gateway, Phase};
use crate::keys::{find_match, fingerprint, SerialKey};

/// The console a user name asks for: `<instance-id>.port<N>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub instance_id: String,
    pub port: u8,
}

/// Parses `<instance-id>.port<N>`, `N` in decimal without leading zeros or
/// sign, so that each port has one spelling: `port00` or `port+0` would be
/// port 0 under a name AWS does not accept. The error says why, for the log.
pub(crate) fn parse_user(user: &str) -> Result<Target, &'static str> {
    let (instance_id, port) = user
        .rsplit_once(".port")
        .ok_or("user name is not <instance-id>.port<N>")?;
    let id_ok = !instance_id.is_empty()
        && instance_id.len() <= 128
        && instance_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !id_ok {
        return Err("user name does not start with an instance id");
    }
    let canonical = !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && (port == "0" || !port.starts_with('0'));
    if !canonical {
        return Err("user name does not end in .port<N>");
    }
    let port = port
        .parse()
        .map_err(|_| "serial port number out of range")?;
    Ok(Target {
        instance_id: instance_id.to_string(),
        port,
    })
}

/// At most this much of a user name, which the client chooses and may make
/// as long as a packet (256 KiB), goes into a log line.
const USER_SHOWN: usize = 160;

fn shown(user: &str) -> &str {
    &user[..user.floor_char_boundary(USER_SHOWN)]
}

/// Who authenticated, and with which pushed key.
struct Authorized {
    target: Target,
    backend: ConsoleBackend,
    key: SerialKey,
    fingerprint: String,
}

pub(crate) struct Connection {
    gateway: Arc<Gateway>,
    peer: SocketAddr,
    phase: Arc<watch::Sender<Phase>>,
    shutdown: watch::Receiver<bool>,
    authorized: Option<Authorized>,
    /// The session channel, until its shell (or exec) request.
    channel: Option<Channel<Msg>>,
    /// A connection carries one console session, so one session channel.
    channel_opened: bool,
    /// Key store queries made for this connection's logins.
    lookups: usize,
    /// The client's terminal size (columns, rows): its pty request, then
    /// its window changes, for the session's recording.
    size: watch::Sender<TerminalSize>,
}

impl Connection {
    pub(crate) fn new(
        gateway: Arc<Gateway>,
        peer: SocketAddr,
        phase: Arc<watch::Sender<Phase>>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            gateway,
            peer,
            phase,
            shutdown,
            authorized: None,
            channel: None,
            channel_opened: false,
            lookups: 0,
            size: watch::Sender::new(TerminalSize::default()),
        }
    }

    /// A size of 0 (unknown, as a client without a terminal sends) keeps
    /// what was known.
    fn resized(&self, cols: u32, rows: u32) {
        if let Some(size) = TerminalSize::of(cols, rows) {
            self.size.send_replace(size);
        }
    }

    /// The console and pushed key that let `user` in with `key`, if any.
    /// Asked twice per login (offer, then signature) so a key that expires
    /// in between is refused.
    async fn authorize(&mut self, user: &str, key: &PublicKey) -> Option<Authorized> {
        let fingerprint = fingerprint(key);
        let peer = self.peer;
        let target = match parse_user(user) {
            Ok(target) => target,
            Err(why) => {
                let user = shown(user);
                info!(%peer, ?user, %fingerprint, "serial console login refused: {why}");
                return None;
            }
        };
        if target.port != 0 {
            info!(%peer, ?user, %fingerprint, "serial console login refused: only port 0 exists");
            return None;
        }
        let config = &self.gateway.config;
        let Some(backend) = config.backends.backend(&target.instance_id) else {
            info!(%peer, instance = %target.instance_id, %fingerprint, "serial console login refused: no console configured for the instance");
            return None;
        };
        // russh does not count an accepted key offer as an attempt, so a
        // client holding a live key could otherwise offer it without end,
        // each offer a key store query. A login needs two: offer, signature.
        if self.lookups >= 2 * config.max_auth_attempts.max(1) {
            info!(%peer, instance = %target.instance_id, %fingerprint, "serial console login refused: too many key offers on one connection");
            return None;
        }
        self.lookups += 1;
        let keys = match config
            .keys
            .live_keys(&target.instance_id, target.port)
            .await
        {
            Ok(keys) => keys,
            Err(e) => {
                warn!(%peer, instance = %target.instance_id, error = &e as &dyn std::error::Error, "serial console login refused: key store unavailable");
                return None;
            }
        };
        let Some(key) = find_match(&keys, key) else {
            info!(%peer, instance = %target.instance_id, port = target.port, %fingerprint, "serial console login refused: key is not live for this console");
            return None;
        };
        Some(Authorized {
            target,
            backend,
            key: key.clone(),
            fingerprint,
        })
    }

    /// Takes the session channel if `id` is it and no request has used it.
    fn take_channel(&mut self, id: ChannelId) -> Option<Channel<Msg>> {
        match &self.channel {
            Some(channel) if channel.id() == id => self.channel.take(),
            _ => None,
        }
    }

    /// Ends the channel with `message` on the client's stderr and exit
    /// status 1, off the connection's task, whose loop must keep running
    /// for the messages to go out.
    fn refuse(&self, channel: Channel<Msg>, message: String) {
        let phase = Arc::clone(&self.phase);
        tokio::spawn(async move {
            bridge::finish(&channel.split().1, 1, Some(&message)).await;
            phase.send_replace(Phase::Ended);
        });
    }
}

impl Handler for Connection {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey][..])),
            partial_success: false,
        })
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(match self.authorize(user, offer.public_key).await {
            Some(_) => Auth::Accept,
            None => Auth::reject(),
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        self.authorized = self.authorize(user, key.public_key).await;
        Ok(if self.authorized.is_some() {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn auth_succeeded(&mut self, _session: &mut Session) -> Result<(), Self::Error> {
        if let Some(a) = &self.authorized {
            info!(peer = %self.peer, instance = %a.target.instance_id, port = a.target.port,
                fingerprint = %a.fingerprint, request_id = %a.key.request_id, "serial console login accepted");
        }
        self.phase.send_replace(Phase::Authenticated);
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Dropping `reply` refuses the channel.
        if self.authorized.is_none() || self.channel_opened {
            debug!(peer = %self.peer, "refusing an extra session channel");
            return Ok(());
        }
        self.channel_opened = true;
        reply.accept().await;
        self.channel = Some(channel);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The console has its own terminal settings; the client's pty only
        // matters to the client (raw mode, escape characters) and to the
        // recording, which replays at its size.
        self.resized(col_width, row_height);
        session.channel_success(channel)
    }

    async fn window_change_request(
        &mut self,
        _channel: ChannelId,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // A serial line has no window size to pass on; a recording does.
        self.resized(col_width, row_height);
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel_id: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(channel), Some(auth)) = (self.take_channel(channel_id), self.authorized.as_ref())
        else {
            return session.channel_failure(channel_id);
        };
        session.channel_success(channel_id)?;
        let target = &auth.target;
        // The port is taken here, not at authentication, so a connection
        // that never asks for the console (ssh -N, a mistaken command) does
        // not start a teardown period.
        let lease = match self
            .gateway
            .config
            .locks
            .try_acquire(&target.instance_id, target.port)
            .await
        {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                info!(peer = %self.peer, instance = %target.instance_id, port = target.port, "serial console busy");
                let message = format!(
                    "{} port {} already has an active serial console session",
                    target.instance_id, target.port
                );
                self.refuse(channel, message);
                return Ok(());
            }
            Err(e) => {
                warn!(instance = %target.instance_id, port = target.port, error = &e as &dyn std::error::Error, "session locks unavailable");
                let message = format!(
                    "the serial console of {} port {} is unavailable; try again later",
                    target.instance_id, target.port
                );
                self.refuse(channel, message);
                return Ok(());
            }
        };
        let record = SessionRecord {
            instance_id: target.instance_id.clone(),
            port: target.port,
            key_fingerprint: auth.fingerprint.clone(),
            request_id: auth.key.request_id.clone(),
            caller_arn: auth.key.caller_arn.clone(),
            client: self.peer,
            started_at: SystemTime::now(),
            size: *self.size.borrow(),
        };
        self.phase.send_replace(Phase::Bridging);
        let bridge = Bridge {
            gateway: Arc::clone(&self.gateway),
            channel,
            lease,
            record,
            backend: auth.backend.clone(),
            shutdown: self.shutdown.clone(),
            phase: Arc::clone(&self.phase),
            size: self.size.subscribe(),
        };
        tokio::spawn(bridge.run());
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel_id: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(channel) = self.take_channel(channel_id) else {
            return session.channel_failure(channel_id);
        };
        // Accepting the request lets OpenSSH print the reason and exit with
        // status 1; a failure reply would only say "exec request failed".
        session.channel_success(channel_id)?;
        let message = "a serial console runs no commands; connect without one to reach the console"
            .to_string();
        self.refuse(channel, message);
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _variable_name: &str,
        _variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn signal(
        &mut self,
        _channel: ChannelId,
        signal: Sig,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        debug!(peer = %self.peer, ?signal, "ignoring a signal: a serial console has no process to signal");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use russh::keys::ssh_key::private::Ed25519Keypair;
    use russh::keys::PrivateKey;

    use super::*;
    use crate::backend::ConsoleBackend;
    use crate::events::{SessionEnd, SessionEvents};
    use crate::gateway::GatewayConfig;
    use crate::keys::SerialKeys;
    use eic_store::{LocalSessionLocks, StoreError};

    /// Every key offered is live; counts the queries.
    struct CountingKeys {
        line: String,
        queries: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl SerialKeys for CountingKeys {
        async fn live_keys(&self, _: &str, _: u8) -> Result<Vec<SerialKey>, StoreError> {
            self.queries.fetch_add(1, Ordering::Relaxed);
            Ok(vec![SerialKey {
                public_key: self.line.clone(),
                request_id: "req".into(),
                caller_arn: "arn:aws:iam::111122223333:user/tester".into(),
            }])
        }
    }

    struct NoEvents;

    impl SessionEvents for NoEvents {
        fn session_started(&self, _: &SessionRecord) {}
        fn session_ended(&self, _: &SessionRecord, _: &SessionEnd) {}
    }

    #[tokio::test]
    async fn key_store_lookups_are_bounded_per_connection() {
        let key = PrivateKey::from(Ed25519Keypair::from_seed(&[7; 32]));
        let public = key.public_key().clone();
        let keys = Arc::new(CountingKeys {
            line: public.to_openssh().expect("public key line"),
            queries: AtomicUsize::new(0),
        });
        let backends = HashMap::from([(
            "i-x".to_string(),
            ConsoleBackend::Unix {
                path: "/nonexistent".into(),
            },
        )]);
        let config = GatewayConfig::new(
            key,
            Arc::new(backends),
            keys.clone(),
            Arc::new(LocalSessionLocks::new(Duration::ZERO)),
            Arc::new(NoEvents),
        );
        let limit = 2 * config.max_auth_attempts;
        let (phase, _) = watch::channel(Phase::Authenticating);
        let (_stop, shutdown) = watch::channel(false);
        let mut connection = Connection::new(
            Arc::new(Gateway::new(config)),
            "192.0.2.1:50000".parse().expect("address"),
            Arc::new(phase),
            shutdown,
        );
        // Accepted offers, as a client holding a live key could repeat them.
        for n in 0..limit + 3 {
            let allowed = connection.authorize("i-x.port0", &public).await;
            assert_eq!(allowed.is_some(), n < limit, "offer {n}");
        }
        assert_eq!(keys.queries.load(Ordering::Relaxed), limit);
    }

    #[test]
    fn user_names() {
        let t = |id: &str, port| {
            Ok(Target {
                instance_id: id.to_string(),
                port,
            })
        };
        assert_eq!(
            parse_user("i-0123456789abcdef0.port0"),
            t("i-0123456789abcdef0", 0)
        );
        assert_eq!(parse_user("i-x.port1"), t("i-x", 1));
        assert_eq!(parse_user("my.vm.port0"), t("my.vm", 0));
        for bad in [
            "i-x",
            "i-x.port",
            "i-x.port256",
            "i-x.port+1",
            "i-x.port00",
            "i-x.port01",
            "i-x.port+0",
            "i-x.port-0",
            "i-x.port 0",
            "i-x.port0 ",
            "i-x.port０",
            ".port0",
            "i x.port0",
            "i-x.portA",
        ] {
            assert!(parse_user(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn long_user_names_are_cut_for_the_log() {
        assert_eq!(shown("i-x.port0"), "i-x.port0");
        let long = "é".repeat(USER_SHOWN);
        let cut = shown(&long);
        assert!(cut.len() <= USER_SHOWN && cut.len() >= USER_SHOWN - 1);
        assert!(long.starts_with(cut));
    }
}
