//! The gateway against the real OpenSSH client and real console backends
//! (socat on a shell, a Unix socket server, a command on a pty).
//!
//! Nothing here sleeps to synchronise: every wait is on output or a
//! condition, bounded by a deadline.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use eic_serial::{
    host_key_fingerprint, host_public_key_line, load_or_create_host_key, ConsoleBackend, EndReason,
    Gateway, GatewayConfig, SerialKey, SerialKeys, SessionEnd, SessionEvents, SessionRecord,
};
use eic_store::{LocalSessionLocks, PortState, SessionLocks, StoreError};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UnixListener};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);
const INSTANCE: &str = "i-0123456789abcdef0";

// ---------------------------------------------------------------- fakes

/// In-memory key source standing in for eic's key store.
#[derive(Default)]
struct MemoryKeys(Mutex<HashMap<(String, u8), Vec<SerialKey>>>);

impl MemoryKeys {
    fn push(&self, instance: &str, port: u8, public_key: &str, request_id: &str) {
        let key = SerialKey {
            public_key: public_key.to_string(),
            request_id: request_id.to_string(),
            caller_arn: "arn:aws:iam::111122223333:user/tester".to_string(),
        };
        self.0
            .lock()
            .unwrap()
            .entry((instance.to_string(), port))
            .or_default()
            .push(key);
    }

    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

#[async_trait]
impl SerialKeys for MemoryKeys {
    async fn live_keys(&self, instance_id: &str, port: u8) -> Result<Vec<SerialKey>, StoreError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .get(&(instance_id.to_string(), port))
            .cloned()
            .unwrap_or_default())
    }
}

type Ended = Vec<(SessionRecord, SessionEnd)>;

/// Records session events and lets a test wait for them.
struct Events {
    started: watch::Sender<Vec<SessionRecord>>,
    ended: watch::Sender<Ended>,
}

impl Events {
    fn new() -> Self {
        Self {
            started: watch::channel(Vec::new()).0,
            ended: watch::channel(Vec::new()).0,
        }
    }

    async fn wait_started(&self, n: usize) -> Vec<SessionRecord> {
        let mut rx = self.started.subscribe();
        let seen = timeout(WAIT, rx.wait_for(|v| v.len() >= n)).await;
        // Clone inside, so no borrow of `rx` outlives it.
        let seen = seen.map(|r| r.map(|v| v.clone()));
        seen.expect("session start within deadline")
            .expect("events alive")
    }

    async fn wait_ended(&self, n: usize) -> Ended {
        let mut rx = self.ended.subscribe();
        let seen = timeout(WAIT, rx.wait_for(|v| v.len() >= n)).await;
        // Clone inside, so no borrow of `rx` outlives it.
        let seen = seen.map(|r| r.map(|v| v.clone()));
        seen.expect("session end within deadline")
            .expect("events alive")
    }
}

impl SessionEvents for Events {
    fn session_started(&self, s: &SessionRecord) {
        self.started.send_modify(|v| v.push(s.clone()));
    }
    fn session_ended(&self, s: &SessionRecord, end: &SessionEnd) {
        self.ended.send_modify(|v| v.push((s.clone(), end.clone())));
    }
}

// ---------------------------------------------------------------- harness

struct Harness {
    dir: tempfile::TempDir,
    port: u16,
    keys: Arc<MemoryKeys>,
    locks: Arc<LocalSessionLocks>,
    events: Arc<Events>,
    shutdown: watch::Sender<bool>,
    served: JoinHandle<()>,
    /// Private key file of a key pushed for INSTANCE port 0.
    key: PathBuf,
    host_fingerprint: String,
}

impl Harness {
    async fn start(
        backends: HashMap<String, ConsoleBackend>,
        tune: impl FnOnce(&mut GatewayConfig),
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let host_key = load_or_create_host_key(&dir.path().join("host/ssh_host_ed25519_key"))
            .expect("host key");
        let host_fingerprint = host_key_fingerprint(&host_key);
        let keys = Arc::new(MemoryKeys::default());
        let locks = Arc::new(LocalSessionLocks::new(Duration::from_secs(2)));
        let events = Arc::new(Events::new());
        let mut config = GatewayConfig::new(
            host_key,
            Arc::new(backends),
            keys.clone(),
            locks.clone(),
            events.clone(),
        );
        tune(&mut config);
        let (key, line) = keygen(dir.path(), "user");
        keys.push(INSTANCE, 0, &line, "req-1");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind gateway");
        let port = listener.local_addr().expect("addr").port();
        let (shutdown, rx) = watch::channel(false);
        let served = tokio::spawn(Arc::new(Gateway::new(config)).serve(listener, rx));
        Self {
            dir,
            port,
            keys,
            locks,
            events,
            shutdown,
            served,
            key,
            host_fingerprint,
        }
    }

    fn ssh(&self, key: &Path, user: &str, extra: &[&str]) -> Ssh {
        Ssh::spawn(key, self.port, user, extra)
    }

    async fn busy(&self, instance: &str) -> bool {
        self.locks
            .port_state(instance, 0)
            .await
            .expect("local locks")
            != PortState::Free
    }
}

/// A fresh ed25519 key: (private key path, public key line).
fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    keygen_typed(dir, name, &["-t", "ed25519"])
}

/// A fresh key of the `kind` given as ssh-keygen options.
fn keygen_typed(dir: &Path, name: &str, kind: &[&str]) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = std::process::Command::new("ssh-keygen")
        .args(kind)
        .args(["-q", "-N", "", "-C", &format!("{name}@test"), "-f"])
        .arg(&path)
        .output()
        .expect("ssh-keygen runs");
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = std::fs::read_to_string(path.with_extension("pub")).expect("public key");
    (path, line.trim().to_string())
}

/// A running OpenSSH client whose output is collected as it arrives.
struct Ssh {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: watch::Receiver<Vec<u8>>,
    stderr: watch::Receiver<Vec<u8>>,
}

impl Ssh {
    /// `extra` holds ssh options, then optionally `--` and a remote command.
    fn spawn(key: &Path, port: u16, user: &str, extra: &[&str]) -> Self {
        let split = extra.iter().position(|a| *a == "--").unwrap_or(extra.len());
        let (options, command) = (&extra[..split], extra.get(split + 1..).unwrap_or_default());
        let mut child = Command::new("ssh")
            .args([
                "-F",
                "/dev/null",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
            ])
            .args(["-o", "ConnectTimeout=15", "-i"])
            .arg(key)
            .args(["-p", &port.to_string()])
            .args(options)
            .arg(format!("{user}@127.0.0.1"))
            .args(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("ssh runs");
        let stdin = child.stdin.take();
        let stdout = collect(child.stdout.take().expect("stdout"));
        let stderr = collect(child.stderr.take().expect("stderr"));
        Self {
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).await.expect("write to ssh");
        stdin.flush().await.expect("flush ssh stdin");
    }

    async fn wait_stdout(&self, needle: &str) {
        let mut rx = self.stdout.clone();
        let found = timeout(
            WAIT,
            rx.wait_for(|b| String::from_utf8_lossy(b).contains(needle)),
        )
        .await;
        assert!(
            found.is_ok(),
            "no {needle:?} on ssh stdout; got {:?}; stderr {:?}",
            self.out(),
            self.err()
        );
    }

    fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout.borrow()).into_owned()
    }

    fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr.borrow()).into_owned()
    }

    /// Waits for ssh to exit; returns its exit code and stderr.
    async fn exit(&mut self) -> (i32, String) {
        let status = timeout(WAIT, self.child.wait()).await;
        let status = status.unwrap_or_else(|_| {
            panic!(
                "ssh did not exit; stdout {:?} stderr {:?}",
                self.out(),
                self.err()
            )
        });
        let code = status.expect("wait ssh").code().unwrap_or(-1);
        // Output can trail the exit by a moment: wait for both pipes to close.
        for rx in [&self.stdout, &self.stderr] {
            let mut rx = rx.clone();
            let _ = timeout(WAIT, async { while rx.changed().await.is_ok() {} }).await;
        }
        (code, self.err())
    }
}

fn collect(
    mut pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> watch::Receiver<Vec<u8>> {
    let (tx, rx) = watch::channel(Vec::new());
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut buf).await {
            tx.send_modify(|v| v.extend_from_slice(&buf[..n]));
        }
    });
    rx
}

/// A TCP echo server accepting any number of connections.
async fn tcp_echo() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let address = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    address
}

/// socat serving an interactive shell on a pty, like ser2net in front of a
/// serial line. Returns once socat listens.
async fn socat_shell() -> (Child, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut socat = Command::new("socat")
        .args(["-d", "-d"])
        .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr"))
        .arg("EXEC:/bin/sh -i,pty,stderr,setsid,sigint,sane")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("socat runs");
    let mut lines = BufReader::new(socat.stderr.take().expect("socat stderr")).lines();
    let listening = timeout(WAIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("listening on") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(listening, Ok(true), "socat did not start listening");
    // Keep draining socat's log so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (socat, format!("127.0.0.1:{port}"))
}

fn backends(list: &[(&str, ConsoleBackend)]) -> HashMap<String, ConsoleBackend> {
    list.iter()
        .map(|(id, b)| (id.to_string(), b.clone()))
        .collect()
}

/// A plain TCP connection to the gateway from the loopback address `from`.
async fn connect_from(from: &str, port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("address"))
        .expect("bind the client");
    socket
        .connect(([127, 0, 0, 1], port).into())
        .await
        .expect("connect")
}

/// The first line the gateway sends, or what came before the connection
/// closed.
async fn banner(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    let read = timeout(WAIT, async {
        while !seen.ends_with(b"\n") {
            match stream.read(&mut byte).await {
                Ok(1) => seen.push(byte[0]),
                _ => break,
            }
        }
    })
    .await;
    assert!(read.is_ok(), "nothing from the gateway within the deadline");
    String::from_utf8_lossy(&seen).into_owned()
}

fn served(banner: &str) -> bool {
    banner.starts_with("SSH-2.0-eic-serial_")
}

async fn wait_free(h: &Harness, instance: &str) {
    let deadline = Instant::now() + WAIT;
    while h.busy(instance).await {
        assert!(Instant::now() < deadline, "{instance} stayed busy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_backend_shell_through_socat() {
    let (_socat, address) = socat_shell().await;
    let h = Harness::start(
        backends(&[(INSTANCE, ConsoleBackend::Tcp { address })]),
        |_| {},
    )
    .await;
    let mut ssh = h.ssh(&h.key, &format!("{INSTANCE}.port0"), &[]);
    let started = h.events.wait_started(1).await;
    // The 60 s bound only the opening: the session outlives its key.
    h.keys.clear();
    let typed_1 = b"echo hello-$((6*7))\n";
    ssh.send(typed_1).await;
    ssh.wait_stdout("hello-42").await;
    let typed_2 = b"exit\n";
    ssh.send(typed_2).await;
    let (code, stderr) = ssh.exit().await;
    assert_eq!(code, 0, "stderr: {stderr}");
    assert!(stderr.contains("closed the connection"), "stderr: {stderr}");

    let ended = h.events.wait_ended(1).await;
    let (record, end) = &ended[0];
    assert_eq!(record, &started[0]);
    assert_eq!(record.instance_id, INSTANCE);
    assert_eq!(record.port, 0);
    assert_eq!(record.request_id, "req-1");
    assert_eq!(record.caller_arn, "arn:aws:iam::111122223333:user/tester");
    assert!(record.key_fingerprint.starts_with("SHA256:"));
    assert!(record.client.ip().is_loopback());
    assert_eq!(end.reason, EndReason::BackendClosed);
    assert_eq!(end.bytes_to_console, (typed_1.len() + typed_2.len()) as u64);
    assert!(end.bytes_from_console >= "hello-42".len() as u64);
    assert_eq!(
        end.bytes_from_console,
        ssh.out().len() as u64,
        "every console byte reached stdout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_backend_is_byte_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ttyS0.sock");
    let listener = UnixListener::bind(&path).expect("bind unix console");
    let sent: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let total = sent.len();
    // Echoes exactly `total` bytes, then hangs up like a console going away.
    let console = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut got = vec![0u8; total];
        stream.read_exact(&mut got).await.expect("read all");
        stream.write_all(&got).await.expect("echo");
        got
    });
    let h = Harness::start(
        backends(&[(INSTANCE, ConsoleBackend::Unix { path })]),
        |_| {},
    )
    .await;
    let mut ssh = h.ssh(&h.key, &format!("{INSTANCE}.port0"), &[]);
    h.events.wait_started(1).await;
    ssh.send(&sent).await;
    let (code, stderr) = ssh.exit().await;
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(
        timeout(WAIT, console)
            .await
            .expect("console done")
            .expect("console task"),
        sent
    );
    assert_eq!(
        ssh.stdout.borrow().as_slice(),
        sent.as_slice(),
        "bytes changed on the way back"
    );
    let ended = h.events.wait_ended(1).await;
    let end = &ended[0].1;
    assert_eq!(
        (end.bytes_to_console, end.bytes_from_console),
        (total as u64, total as u64)
    );
    assert_eq!(end.reason, EndReason::BackendClosed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_backend_runs_on_a_pty() {
    let sh = ConsoleBackend::Command {
        program: "/bin/sh".into(),
        args: vec![],
    };
    let h = Harness::start(backends(&[(INSTANCE, sh)]), |_| {}).await;
    let mut ssh = h.ssh(&h.key, &format!("{INSTANCE}.port0"), &[]);
    ssh.send(b"echo pty-$((6*7)); tty\n").await;
    ssh.wait_stdout("pty-42").await;
    ssh.wait_stdout("/dev/pts/").await;
    ssh.send(b"exit\n").await;
    let (code, stderr) = ssh.exit().await;
    assert_eq!(code, 0, "stderr: {stderr}");
    let ended = h.events.wait_ended(1).await;
    assert_eq!(ended[0].1.reason, EndReason::BackendClosed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_escape_disconnects_and_releases_the_port() {
    let h = Harness::start(
        backends(&[(
            INSTANCE,
            ConsoleBackend::Tcp {
                address: tcp_echo().await,
            },
        )]),
        |_| {},
    )
    .await;
    let mut ssh = h.ssh(&h.key, &format!("{INSTANCE}.port0"), &["-tt"]);
    ssh.send(b"ping\r").await;
    ssh.wait_stdout("ping").await;
    assert!(h.busy(INSTANCE).await);
    // OpenSSH's "~." escape, at the start of a line, as a user types it.
    ssh.send(b"\r~.").await;
    let (code, stderr) = ssh.exit().await;
    assert_eq!(code, 255, "~. makes ssh exit 255; stderr: {stderr}");
    let ended = h.events.wait_ended(1).await;
    assert_eq!(ended[0].1.reason, EndReason::ClientDisconnected);
    assert!(
        h.busy(INSTANCE).await,
        "the port tears down after the session"
    );
    wait_free(&h, INSTANCE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_logins() {
    let echo = ConsoleBackend::Tcp {
        address: tcp_echo().await,
    };
    let h = Harness::start(
        backends(&[(INSTANCE, echo.clone()), ("i-other", echo)]),
        |_| {},
    )
    .await;
    let (stranger, _) = keygen(h.dir.path(), "stranger");
    let (other, other_line) = keygen(h.dir.path(), "other");
    h.keys.push("i-other", 0, &other_line, "req-other");
    h.keys.push(
        INSTANCE,
        1,
        &std::fs::read_to_string(h.key.with_extension("pub")).expect("pub"),
        "req-p1",
    );
    let user = format!("{INSTANCE}.port0");

    let cases = [
        (stranger.as_path(), user.clone(), "a key never pushed"),
        (
            other.as_path(),
            user.clone(),
            "a key pushed for another instance",
        ),
        (h.key.as_path(), format!("{INSTANCE}.port1"), "port 1"),
        (
            h.key.as_path(),
            "i-unknown.port0".to_string(),
            "an instance without a console",
        ),
        (
            h.key.as_path(),
            INSTANCE.to_string(),
            "a user name without .portN",
        ),
    ];
    for (key, user, what) in cases {
        let mut ssh = h.ssh(key, &user, &[]);
        let (code, stderr) = ssh.exit().await;
        assert_eq!(code, 255, "{what}: stderr {stderr}");
        assert!(
            stderr.contains("Permission denied (publickey)"),
            "{what}: stderr {stderr}"
        );
    }
    assert!(h.events.started.borrow().is_empty());
    assert!(!h.busy(INSTANCE).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_port0_names_the_console() {
    let h = Harness::start(
        backends(&[(
            INSTANCE,
            ConsoleBackend::Tcp {
                address: tcp_echo().await,
            },
        )]),
        |_| {},
    )
    .await;
    let line = std::fs::read_to_string(h.key.with_extension("pub")).expect("pub");
    h.keys.push(INSTANCE, 1, line.trim(), "req-p1");
    // A key is live for ports 0 and 1, so only the spelling is refused, as
    // any refusal: "Permission denied". Run at once: each takes a second.
    let mut refused: Vec<_> = [
        "port00", "port01", "port+0", "port-0", "port 0", "port", "port1", "PORT0", "port0x",
    ]
    .iter()
    .map(|suffix| {
        let user = format!("{INSTANCE}.{suffix}");
        let ssh = h.ssh(&h.key, &user, &[]);
        (user, ssh)
    })
    .collect();
    for (user, ssh) in &mut refused {
        let (code, stderr) = ssh.exit().await;
        assert_eq!(code, 255, "{user:?}: stderr {stderr}");
        assert!(
            stderr.contains("Permission denied (publickey)"),
            "{user:?}: stderr {stderr}"
        );
    }
    assert!(h.events.started.borrow().is_empty());
    let mut ssh = h.ssh(&h.key, &format!("{INSTANCE}.port0"), &[]);
    ssh.send(b"port zero\n").await;
    ssh.wait_stdout("port zero").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_in_the_backlog() {
    let h = Harness::start(backends(&[]), |c| c.max_connections = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect_from("127.0.0.1", h.port).await;
        let seen = banner(&mut stream).await;
        assert!(served(&seen), "{seen:?}");
        held.push(stream);
    }
    // The kernel completes the handshake; the gateway does not accept.
    let mut waiting = connect_from("127.0.0.1", h.port).await;
    let mut byte = [0u8; 1];
    assert!(
        timeout(Duration::from_secs(1), waiting.read(&mut byte))
            .await
            .is_err(),
        "a fourth connection was served with three held"
    );
    drop(held.remove(0));
    let seen = banner(&mut waiting).await;
    assert!(served(&seen), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_source_cap_are_closed_at_once() {
    let h = Harness::start(backends(&[]), |c| {
        c.max_connections = 3;
        c.max_connections_per_source = 2;
    })
    .await;
    let mut first = connect_from("127.0.0.1", h.port).await;
    let mut second = connect_from("127.0.0.1", h.port).await;
    for stream in [&mut first, &mut second] {
        let seen = banner(stream).await;
        assert!(served(&seen), "{seen:?}");
    }
    let mut third = connect_from("127.0.0.1", h.port).await;
    let mut seen = Vec::new();
    let read = timeout(WAIT, third.read_to_end(&mut seen)).await;
    assert!(
        matches!(read, Ok(Ok(0))),
        "the third from one source is closed unserved: {read:?} {seen:?}"
    );
    let mut other = connect_from("127.0.0.2", h.port).await;
    let seen = banner(&mut other).await;
    assert!(served(&seen), "another source is served: {seen:?}");
    // Both caps are reached now: this one waits in the backlog, and is
    // served once `first` goes, its source's count lowered by then.
    let mut fourth = connect_from("127.0.0.1", h.port).await;
    drop(first);
    let seen = banner(&mut fourth).await;
    assert!(served(&seen), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_connection_frees_its_slot_soon_after_the_timeout() {
    let h = Harness::start(backends(&[]), |c| {
        c.max_connections = 1;
        c.auth_timeout = Duration::from_secs(1);
    })
    .await;
    let start = Instant::now();
    // Identifies itself, then stays silent and never closes.
    let mut silent = connect_from("127.0.0.1", h.port).await;
    silent
        .write_all(b"SSH-2.0-OpenSSH_9.2\r\n")
        .await
        .expect("send hello");
    let mut next = connect_from("127.0.0.1", h.port).await;
    let seen = banner(&mut next).await;
    assert!(served(&seen), "{seen:?}");
    // The timeout and a second to deliver the disconnect; not the five
    // seconds a session's client gets to close.
    let waited = start.elapsed();
    assert!(waited < Duration::from_secs(4), "slot held {waited:?}");
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_elliptic_curve_key_exchanges_are_offered() {
    let h = Harness::start(
        backends(&[(
            INSTANCE,
            ConsoleBackend::Tcp {
                address: tcp_echo().await,
            },
        )]),
        |_| {},
    )
    .await;
    // The server's KEXINIT comes in the clear right after the banners:
    // length, padding length, message 20, a 16-byte cookie, then the key
    // exchange name-list.
    let mut stream = connect_from("127.0.0.1", h.port).await;
    assert!(served(&banner(&mut stream).await));
    stream
        .write_all(b"SSH-2.0-OpenSSH_9.2\r\n")
        .await
        .expect("send hello");
    let mut head = [0u8; 4 + 1 + 1 + 16 + 4];
    timeout(WAIT, stream.read_exact(&mut head))
        .await
        .expect("KEXINIT within deadline")
        .expect("read KEXINIT");
    assert_eq!(head[5], 20, "KEXINIT");
    let len = u32::from_be_bytes(head[22..26].try_into().expect("4 bytes")) as usize;
    let mut names = vec![0u8; len];
    timeout(WAIT, stream.read_exact(&mut names))
        .await
        .expect("name-list within deadline")
        .expect("read name-list");
    let offered = String::from_utf8(names).expect("ASCII names");
    // Finite-field groups cost the gateway up to a second each.
    assert!(!offered.contains("diffie-hellman"), "{offered}");
    assert!(offered.contains("curve25519-sha256"), "{offered}");

    // A command is refused after login without taking the port: proof
    // enough that the handshake and authentication went through.
    let user = format!("{INSTANCE}.port0");
    for kex in [
        "curve25519-sha256",
        "ecdh-sha2-nistp256",
        "ecdh-sha2-nistp521",
    ] {
        let option = format!("-oKexAlgorithms={kex}");
        let (code, stderr) = h.ssh(&h.key, &user, &[&option, "--", "true"]).exit().await;
        assert_eq!(code, 1, "{kex}: stderr {stderr}");
        assert!(
            stderr.contains("a serial console runs no commands"),
            "{kex}: stderr {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_key_opens_a_session() {
    let echo = ConsoleBackend::Tcp {
        address: tcp_echo().await,
    };
    let h = Harness::start(backends(&[(INSTANCE, echo)]), |_| {}).await;
    let (rsa, line) = keygen_typed(h.dir.path(), "rsa", &["-t", "rsa", "-b", "2048"]);
    h.keys.push(INSTANCE, 0, &line, "req-rsa");
    let mut ssh = h.ssh(&rsa, &format!("{INSTANCE}.port0"), &[]);
    ssh.send(b"rsa works\n").await;
    ssh.wait_stdout("rsa works").await;
    let started = h.events.wait_started(1).await;
    assert_eq!(started[0].request_id, "req-rsa");
    ssh.child.start_kill().expect("kill ssh");
    let ended = h.events.wait_ended(1).await;
    assert_eq!(ended[0].1.reason, EndReason::ClientDisconnected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_is_rejected_with_a_message() {
    let h = Harness::start(
        backends(&[(
            INSTANCE,
            ConsoleBackend::Tcp {
                address: tcp_echo().await,
            },
        )]),
        |_| {},
    )
    .await;
    let mut ssh = h.ssh(&h.key, &format!("{INSTANCE}.port0"), &["--", "uname", "-a"]);
    let (code, stderr) = ssh.exit().await;
    assert_eq!(code, 1, "stderr: {stderr}");
    assert!(
        stderr.contains("a serial console runs no commands"),
        "stderr: {stderr}"
    );
    assert!(
        !h.busy(INSTANCE).await,
        "a refused command does not take the port"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_session_refused_until_teardown_ends() {
    let h = Harness::start(
        backends(&[(
            INSTANCE,
            ConsoleBackend::Tcp {
                address: tcp_echo().await,
            },
        )]),
        |_| {},
    )
    .await;
    let user = format!("{INSTANCE}.port0");
    let mut first = h.ssh(&h.key, &user, &[]);
    first.send(b"first\n").await;
    first.wait_stdout("first").await;
    assert!(h.busy(INSTANCE).await);

    let mut second = h.ssh(&h.key, &user, &[]);
    let (code, stderr) = second.exit().await;
    assert_eq!(code, 1, "stderr: {stderr}");
    assert!(
        stderr.contains(&format!(
            "{INSTANCE} port 0 already has an active serial console session"
        )),
        "stderr: {stderr}"
    );
    first.send(b"still here\n").await;
    first.wait_stdout("still here").await;

    first.child.start_kill().expect("kill first ssh");
    let ended = h.events.wait_ended(1).await;
    assert_eq!(ended[0].1.reason, EndReason::ClientDisconnected);
    assert_eq!(
        ended[0].1.bytes_to_console,
        ("first\n".len() + "still here\n".len()) as u64
    );
    assert!(h.busy(INSTANCE).await, "busy during teardown");
    wait_free(&h, INSTANCE).await;

    let mut third = h.ssh(&h.key, &user, &[]);
    third.send(b"third\n").await;
    third.wait_stdout("third").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_backend_tells_the_client() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr")
        .to_string();
    let h = Harness::start(
        backends(&[(INSTANCE, ConsoleBackend::Tcp { address: closed })]),
        |_| {},
    )
    .await;
    let mut ssh = h.ssh(&h.key, &format!("{INSTANCE}.port0"), &[]);
    let (code, stderr) = ssh.exit().await;
    assert_eq!(code, 1, "stderr: {stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot connect to the serial console of {INSTANCE} port 0"
        )),
        "stderr: {stderr}"
    );
    let ended = h.events.wait_ended(1).await;
    assert!(matches!(
        ended[0].1.reason,
        EndReason::BackendUnavailable(_)
    ));
    assert_eq!(
        (ended[0].1.bytes_to_console, ended[0].1.bytes_from_console),
        (0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maximum_duration_ends_the_session() {
    let h = Harness::start(
        backends(&[(
            INSTANCE,
            ConsoleBackend::Tcp {
                address: tcp_echo().await,
            },
        )]),
        |c| {
            c.max_session = Duration::from_secs(2);
        },
    )
    .await;
    let mut ssh = h.ssh(&h.key, &format!("{INSTANCE}.port0"), &[]);
    ssh.send(b"hi\n").await;
    ssh.wait_stdout("hi").await;
    let (code, stderr) = ssh.exit().await;
    assert_eq!(code, 0, "stderr: {stderr}");
    assert!(
        stderr.contains("maximum session duration (2 s)"),
        "stderr: {stderr}"
    );
    let ended = h.events.wait_ended(1).await;
    assert_eq!(ended[0].1.reason, EndReason::MaxDuration);
    assert!(ended[0].1.duration >= Duration::from_secs(2));
    assert_eq!(
        (ended[0].1.bytes_to_console, ended[0].1.bytes_from_console),
        (3, 3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_sessions_and_serve_returns() {
    let h = Harness::start(
        backends(&[(
            INSTANCE,
            ConsoleBackend::Tcp {
                address: tcp_echo().await,
            },
        )]),
        |_| {},
    )
    .await;
    let mut ssh = h.ssh(&h.key, &format!("{INSTANCE}.port0"), &[]);
    ssh.send(b"up\n").await;
    ssh.wait_stdout("up").await;
    h.shutdown.send_replace(true);
    let (code, stderr) = ssh.exit().await;
    assert_eq!(code, 0, "stderr: {stderr}");
    assert!(
        stderr.contains("the gateway is shutting down"),
        "stderr: {stderr}"
    );
    timeout(WAIT, h.served)
        .await
        .expect("serve returned")
        .expect("serve task");
    let ended = h.events.ended.borrow().clone();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].1.reason, EndReason::GatewayShutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_dropped() {
    let echo = ConsoleBackend::Tcp {
        address: tcp_echo().await,
    };
    let h = Harness::start(backends(&[(INSTANCE, echo)]), |c| {
        c.auth_timeout = Duration::from_secs(1)
    })
    .await;
    // Silent before identification, and silent after it.
    for hello in [&b""[..], b"SSH-2.0-OpenSSH_9.2\r\n"] {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", h.port))
            .await
            .expect("connect");
        stream.write_all(hello).await.expect("send hello");
        let mut seen = Vec::new();
        let read = timeout(WAIT, stream.read_to_end(&mut seen)).await;
        assert!(
            read.is_ok(),
            "connection still open after the authentication timeout"
        );
        assert!(
            seen.starts_with(b"SSH-2.0-eic-serial_"),
            "{:?}",
            String::from_utf8_lossy(&seen)
        );
    }
    // Authenticated but never asking for the console (ssh -N).
    let mut ssh = h.ssh(&h.key, &format!("{INSTANCE}.port0"), &["-N"]);
    let (code, stderr) = ssh.exit().await;
    assert_eq!(code, 255, "stderr: {stderr}");
    assert!(
        !h.busy(INSTANCE).await,
        "a connection without a session does not take the port"
    );
    assert!(h.events.started.borrow().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_key_is_created_once_and_matches_ssh_keygen() {
    let h = Harness::start(backends(&[]), |_| {}).await;
    let path = h.dir.path().join("host/ssh_host_ed25519_key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&path).expect("key file").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let again = load_or_create_host_key(&path).expect("reload");
    assert_eq!(host_key_fingerprint(&again), h.host_fingerprint);
    let out = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&path)
        .output()
        .expect("ssh-keygen -lf");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(&h.host_fingerprint),
        "ssh-keygen says {printed}, we say {}",
        h.host_fingerprint
    );
    assert!(printed.contains("ED25519"), "{printed}");

    // The public line is ssh-keygen's, without the comment.
    let out = std::process::Command::new("ssh-keygen")
        .arg("-yf")
        .arg(&path)
        .output()
        .expect("ssh-keygen -yf");
    let printed = String::from_utf8_lossy(&out.stdout);
    let want: Vec<&str> = printed.split_whitespace().take(2).collect();
    assert_eq!(
        host_public_key_line(&again).expect("public line"),
        want.join(" ")
    );
}
