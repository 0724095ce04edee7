//! The SSH listener: accepts connections up to its caps, bounds how long
//! each may stay without a session, and ends everything at shutdown.

use std::collections::HashMap;
use std::future::pending;
use std::net::{IpAddr, Ipv6Addr, Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::server::run_stream;
use russh::{kex, Disconnect, MethodKind, MethodSet, Preferred, SshId};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, timeout, timeout_at, Instant};
use tracing::{debug, info, warn};

use crate::backend::Backends;
use crate::events::SessionEvents;
use crate::handler::Connection;
use crate::keys::SerialKeys;
use eic_store::SessionLocks;

/// How long a client gets to close the connection after its session ended
/// (or after being told to go) before the gateway drops it. Closing from the
/// client side lets OpenSSH exit with the session's exit status, not 255.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The same for a client that never authenticated: it has no exit status to
/// wait for, only the disconnect message to receive, so its slot is free
/// again soon after `auth_timeout`.
const UNAUTHENTICATED_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// File descriptors one connection holds at most while its session is open:
/// the client socket, the duplicate kept to cut it off, and the console (a
/// socket; for a command, its pty and the child's pidfd). Starting a command
/// briefly takes a few more. A descriptor budget is `max_connections` times
/// this.
pub const FDS_PER_CONNECTION: usize = 4;

/// Key exchanges offered: the elliptic-curve ones, a millisecond of CPU or
/// less each. russh's finite-field Diffie-Hellman takes hundreds of
/// milliseconds up to a second for group 18 (8,192 bits), on a runtime
/// thread, and an unauthenticated client can ask for it on every connection
/// without doing the work itself. The NIST curves serve FIPS-mode clients,
/// which lack X25519.
const KEX: &[kex::Name] = &[
    kex::MLKEM768X25519_SHA256,
    kex::CURVE25519,
    kex::CURVE25519_PRE_RFC_8731,
    kex::ECDH_SHA2_NISTP256,
    kex::ECDH_SHA2_NISTP384,
    kex::ECDH_SHA2_NISTP521,
    kex::EXTENSION_SUPPORT_AS_SERVER,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
];

/// What the gateway needs; [`GatewayConfig::new`] fills in AWS's limits.
pub struct GatewayConfig {
    pub host_key: PrivateKey,
    pub backends: Arc<dyn Backends>,
    pub keys: Arc<dyn SerialKeys>,
    pub locks: Arc<dyn SessionLocks>,
    pub events: Arc<dyn SessionEvents>,
    /// A session ends after this long (AWS: about 1 h).
    pub max_session: Duration,
    /// Time from TCP connect to successful authentication, and again from
    /// authentication to the shell request. A connection that does not
    /// authenticate holds its slot for about this long.
    pub auth_timeout: Duration,
    /// Rejected authentication requests allowed per connection (key offers
    /// included; an offer of a live key is not a rejection); each after the
    /// first costs a second, within `auth_timeout`. Also bounds key store
    /// lookups, to two per attempt (offer and signature).
    pub max_auth_attempts: usize,
    /// Time allowed to connect to the console when a session opens.
    pub backend_timeout: Duration,
    /// Connections served at once. At the limit the gateway stops
    /// accepting: further connections wait in the kernel's backlog and cost
    /// no descriptors here (see [`FDS_PER_CONNECTION`]).
    pub max_connections: usize,
    /// Connections served at once from one source (an IPv4 address, or an
    /// IPv6 /64, which one host often has whole). One more is closed as soon
    /// as it is accepted.
    pub max_connections_per_source: usize,
}

impl GatewayConfig {
    pub fn new(
        host_key: PrivateKey,
        backends: Arc<dyn Backends>,
        keys: Arc<dyn SerialKeys>,
        locks: Arc<dyn SessionLocks>,
        events: Arc<dyn SessionEvents>,
    ) -> Self {
        Self {
            host_key,
            backends,
            keys,
            locks,
            events,
            max_session: Duration::from_secs(3600),
            auth_timeout: Duration::from_secs(30),
            max_auth_attempts: 6,
            backend_timeout: Duration::from_secs(5),
            // Well above the sessions one node serves (one per instance
            // port), at 4,000 descriptors (FDS_PER_CONNECTION). Memory at
            // the cap: ~60 MiB of sessions (61 KiB each, BENCHMARKS.md),
            // and at most ~0.25 GiB more if every connection sends russh's
            // largest (256 KiB) packets.
            max_connections: 1_000,
            // A bastion or NAT address may front several operators, each
            // with a session or two; an attacker needs 32 addresses (or
            // /64s) to take every slot.
            max_connections_per_source: 32,
        }
    }
}

/// Where a connection stands; the handler and the bridge advance it and the
/// connection's supervisor applies the matching time limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Authenticating,
    Authenticated,
    Bridging,
    Ended,
}

/// The serial console SSH gateway.
pub struct Gateway {
    pub(crate) config: GatewayConfig,
    ssh: Arc<russh::server::Config>,
}

impl Gateway {
    pub fn new(config: GatewayConfig) -> Self {
        let ssh = russh::server::Config {
            server_id: SshId::Standard(
                format!("SSH-2.0-eic-serial_{}", env!("CARGO_PKG_VERSION")).into(),
            ),
            methods: MethodSet::from(&[MethodKind::PublicKey][..]),
            keys: vec![config.host_key.clone()],
            preferred: Preferred {
                kex: KEX.into(),
                ..Preferred::DEFAULT
            },
            // Rejections take a constant second so timing does not tell which
            // keys are live; the first "none" probe reveals nothing and is
            // answered at once.
            auth_rejection_time: Duration::from_secs(1),
            auth_rejection_time_initial: Some(Duration::ZERO),
            max_auth_attempts: config.max_auth_attempts,
            // A console can be silent for hours; keepalives find dead
            // clients instead of an inactivity timeout.
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_max: 3,
            nodelay: true,
            ..Default::default()
        };
        Self {
            config,
            ssh: Arc::new(ssh),
        }
    }

    /// Serves SSH on `listener` until `shutdown` becomes true (or its sender
    /// is dropped), then ends open sessions, telling their clients why, and
    /// returns once every connection is gone.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let slots = Arc::new(Semaphore::new(
            self.config.max_connections.min(Semaphore::MAX_PERMITS),
        ));
        let sources = Arc::new(Sources {
            limit: self.config.max_connections_per_source,
            open: Mutex::new(HashMap::new()),
        });
        let mut connections = JoinSet::new();
        // A slot is taken before accepting: at the limit, connections wait
        // in the kernel's backlog rather than each costing descriptors here.
        let mut slot = None;
        loop {
            tokio::select! {
                _ = stopped(&mut shutdown) => break,
                permit = Arc::clone(&slots).acquire_owned(), if slot.is_none() => {
                    slot = Some(permit.expect("the semaphore is never closed"));
                }
                accepted = listener.accept(), if slot.is_some() => match accepted {
                    Ok((stream, peer)) => {
                        let permit = slot.take().expect("accepting only with a slot");
                        match sources.take(peer.ip(), permit) {
                            Ok(held) => {
                                connections.spawn(Arc::clone(&self).connection(stream, peer, shutdown.clone(), held));
                            }
                            Err(permit) => {
                                // Dropping the stream closes it; the slot
                                // serves the next connection.
                                slot = Some(permit);
                                debug!(%peer, limit = sources.limit, "closing a connection over the per-source cap");
                            }
                        }
                    }
                    Err(e) => {
                        // Usually out of file descriptors: pause instead of spinning.
                        warn!(error = %e, "serial console gateway could not accept a connection");
                        sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(listener);
        info!(
            open = connections.len(),
            "serial console gateway shutting down"
        );
        while connections.join_next().await.is_some() {}
    }

    /// Runs one connection and supervises its time limits; `_held` is its
    /// place under the caps, given back when this returns.
    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        mut shutdown: watch::Receiver<bool>,
        _held: Held,
    ) {
        // russh applies its `nodelay` setting only in its own accept loop;
        // without it, Nagle and delayed ACKs add ~40 ms to handshake steps
        // and to interactive keystrokes.
        let _ = stream.set_nodelay(true);
        // russh owns the stream and offers no way to abort its task, so a
        // duplicate of the socket lets the gateway cut a client that ignores
        // the SSH disconnect.
        let socket = match stream.as_fd().try_clone_to_owned() {
            Ok(fd) => std::net::TcpStream::from(fd),
            Err(e) => {
                warn!(%peer, error = %e, "cannot take the SSH connection");
                return;
            }
        };
        let (phase_tx, mut phase) = watch::channel(Phase::Authenticating);
        let handler = Connection::new(
            Arc::clone(&self),
            peer,
            Arc::new(phase_tx),
            shutdown.clone(),
        );
        let mut deadline = Instant::now() + self.config.auth_timeout;
        // run_stream waits for the client's identification line, so it is
        // bounded by the authentication deadline too.
        let session =
            match timeout_at(deadline, run_stream(Arc::clone(&self.ssh), stream, handler)).await {
                Ok(Ok(session)) => session,
                Ok(Err(e)) => {
                    debug!(%peer, error = %e, "SSH connection failed before key exchange");
                    return;
                }
                Err(_) => {
                    info!(%peer, "client sent no SSH identification in time");
                    return;
                }
            };
        let handle = session.handle();
        tokio::pin!(session);

        // Set once the gateway has asked the client to go: then only the
        // grace period is left.
        let mut closing: Option<Instant> = None;
        let mut phase_open = true;
        let mut seen = Phase::Authenticating;
        loop {
            let now_phase = *phase.borrow_and_update();
            if now_phase != seen {
                seen = now_phase;
                match now_phase {
                    Phase::Authenticated => deadline = Instant::now() + self.config.auth_timeout,
                    Phase::Ended => deadline = Instant::now() + CLOSE_GRACE,
                    Phase::Authenticating | Phase::Bridging => {}
                }
            }
            let limit = match (closing, now_phase) {
                (Some(until), _) => Some(until),
                // The bridge enforces the session's own limits.
                (None, Phase::Bridging) => None,
                (None, _) => Some(deadline),
            };
            // A session being bridged ends itself at shutdown with a notice
            // to the client; one that has ended is already on its way out.
            let watch_shutdown = closing.is_none()
                && matches!(now_phase, Phase::Authenticating | Phase::Authenticated);
            let grace = match now_phase {
                Phase::Authenticating => UNAUTHENTICATED_CLOSE_GRACE,
                Phase::Authenticated | Phase::Bridging | Phase::Ended => CLOSE_GRACE,
            };
            tokio::select! {
                result = &mut session => {
                    if let Err(e) = result {
                        debug!(%peer, error = %e, "SSH connection ended with an error");
                    }
                    break;
                }
                changed = phase.changed(), if phase_open => {
                    // The handler is gone once every sender is: the session
                    // future is about to finish.
                    phase_open = changed.is_ok();
                }
                _ = sleep_until_some(limit) => {
                    if closing.is_some() {
                        debug!(%peer, "client did not close in time; cutting the connection");
                        // Errors mean the socket is already closed.
                        let _ = socket.shutdown(Shutdown::Both);
                        let _ = timeout(CLOSE_GRACE, &mut session).await;
                        break;
                    }
                    let why = match now_phase {
                        Phase::Authenticating => "authentication timed out",
                        Phase::Authenticated => "no serial console session was requested in time",
                        Phase::Bridging | Phase::Ended => "serial console session ended",
                    };
                    info!(%peer, reason = why, "disconnecting SSH client");
                    disconnect(&handle, why).await;
                    closing = Some(Instant::now() + grace);
                }
                _ = stopped(&mut shutdown), if watch_shutdown => {
                    disconnect(&handle, "gateway shutting down").await;
                    closing = Some(Instant::now() + grace);
                }
            }
        }
        // The bridge may still be finishing (closing the console, reporting
        // the end); serve() returns only after it has.
        let _ = phase.wait_for(|p| *p != Phase::Bridging).await;
    }
}

/// Open connections per source, so that one client cannot take every slot.
struct Sources {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl Sources {
    /// Counts a connection from `ip` under its global `slot`, or gives the
    /// slot back if the source is at its cap.
    fn take(
        self: &Arc<Self>,
        ip: IpAddr,
        slot: OwnedSemaphorePermit,
    ) -> Result<Held, OwnedSemaphorePermit> {
        let source = source_of(ip);
        let mut open = self.open.lock().expect("source counts lock");
        let count = open.get(&source).copied().unwrap_or(0);
        if count >= self.limit {
            return Err(slot);
        }
        open.insert(source, count + 1);
        Ok(Held {
            sources: Arc::clone(self),
            source,
            _slot: slot,
        })
    }
}

/// The address a per-source cap counts: IPv4 as is (also when it arrives
/// mapped into IPv6), IPv6 by its /64.
fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

/// A connection's place under both caps.
struct Held {
    sources: Arc<Sources>,
    source: IpAddr,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Held {
    fn drop(&mut self) {
        // Runs before the slot is released, so the connection that slot
        // admits next already sees this source's count lowered.
        let mut open = self.sources.open.lock().expect("source counts lock");
        if let Some(count) = open.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.source);
            }
        }
    }
}

/// Resolves once shutdown is asked for. A dropped sender counts as asking:
/// nobody is left who could stop the gateway otherwise.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // Drops the returned guard here, before any other await.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn sleep_until_some(limit: Option<Instant>) {
    match limit {
        Some(at) => sleep_until(at).await,
        None => pending().await,
    }
}

async fn disconnect(handle: &russh::server::Handle, why: &str) {
    if handle
        .disconnect(Disconnect::ByApplication, why.to_string(), String::new())
        .await
        .is_err()
    {
        debug!("SSH connection already closed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_ipv4_addresses_and_ipv6_prefixes() {
        let source = |ip: &str| source_of(ip.parse().expect("address"));
        assert_eq!(source("192.0.2.1"), source("::ffff:192.0.2.1"));
        assert_ne!(source("192.0.2.1"), source("192.0.2.2"));
        assert_eq!(source("2001:db8::1"), source("2001:db8::ffff:1:2"));
        assert_eq!(source("2001:db8::1"), source("2001:db8::"));
        assert_ne!(source("2001:db8::1"), source("2001:db8:0:1::1"));
    }

    #[test]
    fn a_source_over_its_cap_gets_the_slot_back() {
        let slots = Arc::new(Semaphore::new(3));
        let sources = Arc::new(Sources {
            limit: 1,
            open: Mutex::new(HashMap::new()),
        });
        let slot = || Arc::clone(&slots).try_acquire_owned().expect("a free slot");
        let ip = "192.0.2.1".parse().expect("address");
        let first = sources.take(ip, slot()).expect("under the cap");
        assert!(sources.take(ip, slot()).is_err());
        assert_eq!(slots.available_permits(), 2, "the refused slot is back");
        drop(first);
        assert!(sources.open.lock().expect("lock").is_empty());
        assert_eq!(slots.available_permits(), 3);
        assert!(sources.take(ip, slot()).is_ok());
    }
}
