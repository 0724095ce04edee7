//! Concurrent serial console sessions through the gateway.
//!
//! `cargo run --release -p eic-serial --example sessions_bench -- --sessions N`
//!
//! The process started by hand runs the gateway alone: N instances
//! `i-<hex>`, each with a TCP console backend and one ed25519 key pushed for
//! its port 0. It spawns itself with `--client` as a child process, which
//! runs the TCP echo server every backend points at and opens the N sessions
//! with the russh client (connect, authenticate as `<instance>.port0`, open a
//! session channel, pty-req, shell, write a 16-byte token, read it back
//! through the echo backend), at most `--concurrency` setups in flight while
//! every established session stays open. Setup latency is connect → token
//! echoed back. The gateway's RSS (VmRSS of its own process, so neither the
//! client nor the echo server counts) is read before the first session and
//! once all sessions are open.
//!
//! Prints one result line and exits 0 when every session opened, 1
//! otherwise. Everything is bounded: each setup by `--session-timeout`, the
//! whole run by `--deadline`.
//!
//! Parent ⇄ child protocol, one line each, on the child's stdin/stdout:
//! child `HELLO <echo address> <public key line>`, parent `GO <port>`, child
//! `RESULT …`, parent `CLOSE`, child `CLOSED`.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use eic_serial::{
    ConsoleBackend, Gateway, GatewayConfig, SerialKey, SerialKeys, SessionEnd, SessionEvents,
    SessionRecord,
};
use eic_store::{LocalSessionLocks, StoreError};
use russh::client;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpListener;
use tokio::process::{ChildStdin, ChildStdout, Command};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::timeout;

#[derive(Clone, Debug)]
struct Args {
    sessions: usize,
    concurrency: usize,
    session_timeout: Duration,
    deadline: Duration,
    client: bool,
    /// Raise the hard RLIMIT_NOFILE to this first (needs CAP_SYS_RESOURCE).
    nofile: Option<u64>,
}

fn parse_args() -> Args {
    let mut a = Args {
        sessions: 100,
        concurrency: 64,
        session_timeout: Duration::from_secs(30),
        deadline: Duration::from_secs(600),
        client: false,
        nofile: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> u64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| die(&format!("{name} needs a number")))
        };
        match arg.as_str() {
            "--sessions" => a.sessions = value("--sessions") as usize,
            "--concurrency" => a.concurrency = value("--concurrency").max(1) as usize,
            "--session-timeout" => {
                a.session_timeout = Duration::from_secs(value("--session-timeout"))
            }
            "--deadline" => a.deadline = Duration::from_secs(value("--deadline")),
            "--client" => a.client = true,
            "--nofile" => a.nofile = Some(value("--nofile")),
            other => die(&format!(
                "unknown argument {other}; usage: sessions_bench --sessions N \
                 [--concurrency 64] [--session-timeout 30] [--deadline 600] [--nofile LIMIT]"
            )),
        }
    }
    a
}

fn die(msg: &str) -> ! {
    eprintln!("sessions_bench: {msg}");
    std::process::exit(2)
}

/// Raises the soft RLIMIT_NOFILE to the hard limit, after raising the hard
/// limit to `want` if given (ignored when not permitted); returns (soft, hard).
fn raise_nofile(want: Option<u64>) -> (u64, u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let hard = getrlimit(Resource::Nofile).maximum;
    if let Some(want) = want.filter(|w| hard.is_some_and(|h| *w > h)) {
        let raised = Rlimit {
            current: Some(want),
            maximum: Some(want),
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            eprintln!("sessions_bench: cannot raise the hard RLIMIT_NOFILE to {want}: {e}");
        }
    }
    let hard = getrlimit(Resource::Nofile).maximum;
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: hard,
            maximum: hard,
        },
    );
    let now = getrlimit(Resource::Nofile);
    (
        now.current.unwrap_or(u64::MAX),
        now.maximum.unwrap_or(u64::MAX),
    )
}

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn instance(i: usize) -> String {
    format!("i-{i:017x}")
}

fn new_ed25519() -> PrivateKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("random seed");
    PrivateKey::from(Ed25519Keypair::from_seed(&seed))
}

fn main() {
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = if args.client {
        rt.block_on(client_main(args))
    } else {
        rt.block_on(gateway_main(args))
    };
    // Do not wait for tasks still parked on sockets.
    rt.shutdown_timeout(Duration::from_secs(2));
    std::process::exit(code);
}

// ------------------------------------------------------------------ gateway

/// The same key is pushed for port 0 of every known instance.
struct MemoryKeys(HashMap<String, Vec<SerialKey>>);

#[async_trait]
impl SerialKeys for MemoryKeys {
    async fn live_keys(&self, instance_id: &str, port: u8) -> Result<Vec<SerialKey>, StoreError> {
        Ok(match port {
            0 => self.0.get(instance_id).cloned().unwrap_or_default(),
            _ => Vec::new(),
        })
    }
}

/// Counts sessions started and ended.
struct Events {
    started: AtomicUsize,
    ended: watch::Sender<usize>,
    first_end: std::sync::Mutex<Option<String>>,
}

impl SessionEvents for Events {
    fn session_started(&self, _: &SessionRecord) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }
    fn session_ended(&self, _: &SessionRecord, end: &SessionEnd) {
        let mut first = self.first_end.lock().unwrap();
        if first.is_none() {
            *first = Some(format!("{:?}", end.reason));
        }
        drop(first);
        self.ended.send_modify(|n| *n += 1);
    }
}

struct Child {
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Child {
    async fn line(&mut self, what: &str) -> Result<String, String> {
        match self.lines.next_line().await {
            Ok(Some(l)) => Ok(l),
            Ok(None) => Err(format!("client exited before {what}")),
            Err(e) => Err(format!("reading client ({what}): {e}")),
        }
    }
    async fn send(&mut self, line: &str) -> Result<(), String> {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|e| format!("writing to client: {e}"))?;
        self.stdin.flush().await.map_err(|e| e.to_string())
    }
}

async fn gateway_main(args: Args) -> i32 {
    let started = Instant::now();
    let (soft, hard) = raise_nofile(args.nofile);
    eprintln!(
        "sessions_bench: gateway pid {} RLIMIT_NOFILE soft={soft} hard={hard}",
        std::process::id()
    );
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .args(["--client", "--sessions", &args.sessions.to_string()])
        .args(["--concurrency", &args.concurrency.to_string()])
        .args([
            "--session-timeout",
            &args.session_timeout.as_secs().to_string(),
        ])
        .args(["--deadline", &args.deadline.as_secs().to_string()])
        .args(
            args.nofile
                .map(|n| vec!["--nofile".to_string(), n.to_string()])
                .unwrap_or_default(),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn client");
    let mut io = Child {
        stdin: child.stdin.take().expect("stdin"),
        lines: BufReader::new(child.stdout.take().expect("stdout")).lines(),
    };

    let run = timeout(args.deadline, run_gateway(&args, &mut io)).await;
    let (code, line) = match run {
        Ok(Ok((code, line))) => (code, line),
        Ok(Err(e)) => (1, format!("sessions={} FAILED: {e}", args.sessions)),
        Err(_) => (
            1,
            format!(
                "sessions={} FAILED: overall deadline of {} s passed",
                args.sessions,
                args.deadline.as_secs()
            ),
        ),
    };
    // The client exits after CLOSE; never wait long for it.
    if timeout(Duration::from_secs(20), child.wait())
        .await
        .is_err()
    {
        eprintln!("sessions_bench: client did not exit; killing it");
        let _ = child.start_kill();
        let _ = timeout(Duration::from_secs(5), child.wait()).await;
    }
    println!("{line} wall_s={:.1}", started.elapsed().as_secs_f64());
    code
}

async fn run_gateway(args: &Args, io: &mut Child) -> Result<(i32, String), String> {
    let n = args.sessions;
    let hello = io.line("HELLO").await?;
    let mut words = hello.splitn(3, ' ');
    let (Some("HELLO"), Some(echo), Some(public_key)) = (words.next(), words.next(), words.next())
    else {
        return Err(format!("unexpected client line {hello:?}"));
    };

    let key = SerialKey {
        public_key: public_key.to_string(),
        request_id: "req-bench".to_string(),
        caller_arn: "arn:aws:iam::111122223333:user/bench".to_string(),
    };
    let mut backends = HashMap::with_capacity(n);
    let mut keys = HashMap::with_capacity(n);
    for i in 0..n {
        backends.insert(
            instance(i),
            ConsoleBackend::Tcp {
                address: echo.to_string(),
            },
        );
        keys.insert(instance(i), vec![key.clone()]);
    }
    let events = Arc::new(Events {
        started: AtomicUsize::new(0),
        ended: watch::channel(0).0,
        first_end: std::sync::Mutex::new(None),
    });
    let mut config = GatewayConfig::new(
        new_ed25519(),
        Arc::new(backends),
        Arc::new(MemoryKeys(keys)),
        Arc::new(LocalSessionLocks::new(Duration::from_secs(1))),
        events.clone(),
    );
    config.auth_timeout = args.session_timeout;
    // Every client is on loopback; the caps are not what is measured.
    config.max_connections = n;
    config.max_connections_per_source = n;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind gateway: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let served = tokio::spawn(Arc::new(Gateway::new(config)).serve(listener, shutdown_rx));

    let base_rss = vm_rss_kib();
    let base_fds = open_fds();
    io.send(&format!("GO {port}")).await?;
    let result = io.line("RESULT").await?;
    let peak_rss = vm_rss_kib();
    let peak_fds = open_fds();
    let bridged = events.started.load(Ordering::Relaxed) - *events.ended.borrow();

    // RESULT ok=.. failed=.. p50_ms=.. p99_ms=.. max_ms=.. setup_s=.. error=..
    let field = |name: &str| -> String {
        result
            .split(' ')
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or("?")
            .to_string()
    };
    let ok: usize = field("ok").parse().unwrap_or(0);
    let error = result
        .split_once(" error=")
        .map(|(_, e)| e.to_string())
        .unwrap_or_default();
    let per_session_kib = if bridged > 0 {
        (peak_rss.saturating_sub(base_rss)) as f64 / bridged as f64
    } else {
        0.0
    };

    io.send("CLOSE").await?;
    let closed = timeout(Duration::from_secs(60), io.line("CLOSED")).await;
    // Every session must end at the gateway too.
    let started_total = events.started.load(Ordering::Relaxed);
    let mut ended_rx = events.ended.subscribe();
    let all_ended = timeout(
        Duration::from_secs(60),
        ended_rx.wait_for(|e| *e >= started_total),
    )
    .await
    .is_ok();
    let ended_total = *events.ended.borrow();
    shutdown.send_replace(true);
    let serve_returned = timeout(Duration::from_secs(30), served).await.is_ok();

    let mut status = if ok == n && bridged == n {
        "ok".to_string()
    } else {
        format!("FAILED ({error})")
    };
    if !matches!(closed, Ok(Ok(_))) || !all_ended || !serve_returned {
        status.push_str(&format!(
            " [cleanup: client_closed={} ended={ended_total}/{started_total} serve_returned={serve_returned}]",
            matches!(closed, Ok(Ok(_)))
        ));
    }
    let line = format!(
        "sessions={n} ok={ok} p50_ms={} p99_ms={} max_ms={} gateway_rss_mib={:.1} \
         rss_per_session_kib={per_session_kib:.1} base_rss_mib={:.1} gateway_fds={base_fds}->{peak_fds} \
         setup_s={} nofile={} status={status}",
        field("p50_ms"),
        field("p99_ms"),
        field("max_ms"),
        peak_rss as f64 / 1024.0,
        base_rss as f64 / 1024.0,
        field("setup_s"),
        raise_nofile(None).0,
    );
    Ok((if status == "ok" { 0 } else { 1 }, line))
}

// ------------------------------------------------------------------ client

struct Trusting;

impl client::Handler for Trusting {
    type Error = russh::Error;
    async fn check_server_key(&mut self, _: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

type Open = (client::Handle<Trusting>, russh::Channel<client::Msg>);

async fn open_session(
    config: Arc<client::Config>,
    port: u16,
    key: Arc<PrivateKey>,
    i: usize,
) -> Result<Open, String> {
    let mut handle = client::connect(config, ("127.0.0.1", port), Trusting)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let auth = handle
        .authenticate_publickey(
            format!("{}.port0", instance(i)),
            PrivateKeyWithHashAlg::new(key, None),
        )
        .await
        .map_err(|e| format!("auth: {e}"))?;
    if !auth.success() {
        return Err("auth: rejected".to_string());
    }
    let mut channel = handle
        .channel_open_session()
        .await
        .map_err(|e| format!("channel: {e}"))?;
    channel
        .request_pty(false, "xterm", 80, 24, 0, 0, &[])
        .await
        .map_err(|e| format!("pty: {e}"))?;
    channel
        .request_shell(false)
        .await
        .map_err(|e| format!("shell: {e}"))?;
    let token = format!("{:016x}", i as u64 ^ 0x5eed_0000_0000_0000);
    channel
        .data(token.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut got = Vec::new();
    while got.len() < token.len() {
        match channel.wait().await {
            Some(ChannelMsg::Data { data }) => got.extend_from_slice(&data),
            Some(ChannelMsg::ExtendedData { data, .. }) => {
                return Err(format!(
                    "gateway says: {}",
                    String::from_utf8_lossy(&data).trim()
                ))
            }
            Some(ChannelMsg::Eof | ChannelMsg::Close) | None => {
                return Err("channel closed before the echo".to_string())
            }
            Some(_) => {}
        }
    }
    if got != token.as_bytes() {
        return Err(format!(
            "echo mismatch: {:?}",
            String::from_utf8_lossy(&got)
        ));
    }
    Ok((handle, channel))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn client_main(args: Args) -> i32 {
    let _ = raise_nofile(args.nofile);
    let key = Arc::new(new_ed25519());
    let public_key = key.public_key().to_openssh().expect("public key line");

    // The console behind every instance: one echo listener.
    let echo = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let echo_addr = echo.local_addr().expect("echo addr");
    let echo_task = tokio::spawn(async move {
        loop {
            match echo.accept().await {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(async move {
                        let (mut r, mut w) = stream.split();
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                    });
                }
                // Out of file descriptors: do not spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });

    // tokio's io-std is not enabled here: a thread forwards stdin lines.
    let (line_tx, mut stdin) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(l) = line else { break };
            if line_tx.send(l).is_err() {
                break;
            }
        }
    });
    println!("HELLO {echo_addr} {public_key}");
    let port: u16 = match stdin.recv().await {
        Some(l) => match l.strip_prefix("GO ").and_then(|p| p.trim().parse().ok()) {
            Some(p) => p,
            None => die(&format!("client: unexpected line {l:?}")),
        },
        _ => return 1,
    };

    let config = Arc::new(client::Config {
        nodelay: true,
        ..Default::default()
    });
    let n = args.sessions;
    let gate = Arc::new(Semaphore::new(args.concurrency));
    let give_up = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let setup_start = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let (config, key, gate) = (config.clone(), key.clone(), gate.clone());
        let (give_up, failures) = (give_up.clone(), failures.clone());
        let per = args.session_timeout;
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore");
            if give_up.load(Ordering::Relaxed) {
                return Err("skipped after earlier failures".to_string());
            }
            let t0 = Instant::now();
            let r = match timeout(per, open_session(config, port, key, i)).await {
                Ok(r) => r,
                Err(_) => Err(format!("timed out after {} s", per.as_secs())),
            };
            if r.is_err() && failures.fetch_add(1, Ordering::Relaxed) + 1 >= 64 {
                // Past this many, the rest would fail the same way.
                give_up.store(true, Ordering::Relaxed);
            }
            r.map(|open| (open, t0.elapsed()))
        });
    }
    let mut open = Vec::with_capacity(n);
    let mut latencies = Vec::with_capacity(n);
    let mut errors: HashMap<String, usize> = HashMap::new();
    let deadline = tokio::time::Instant::now() + args.deadline;
    loop {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(Some(Ok(Ok((session, took))))) => {
                open.push(session);
                latencies.push(took.as_secs_f64() * 1000.0);
            }
            Ok(Some(Ok(Err(e)))) => *errors.entry(e).or_default() += 1,
            Ok(Some(Err(e))) => *errors.entry(format!("task: {e}")).or_default() += 1,
            Ok(None) => break,
            Err(_) => {
                tasks.abort_all();
                *errors.entry("client deadline".to_string()).or_default() += 1;
                break;
            }
        }
    }
    let setup_s = setup_start.elapsed().as_secs_f64();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let mut errs: Vec<_> = errors.into_iter().collect();
    errs.sort_by_key(|e| std::cmp::Reverse(e.1));
    let error = errs
        .iter()
        .take(3)
        .map(|(e, c)| format!("{c}x {e}"))
        .collect::<Vec<_>>()
        .join("; ");
    println!(
        "RESULT ok={} failed={} p50_ms={:.1} p99_ms={:.1} max_ms={:.1} setup_s={setup_s:.1} client_fds={} error={error}",
        open.len(),
        n - open.len(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(f64::NAN),
        open_fds(),
    );

    // Keep every session open until the gateway has measured.
    let _ = timeout(args.deadline, stdin.recv()).await;
    let mut closing = JoinSet::new();
    for (handle, channel) in open {
        closing.spawn(async move {
            let _ = channel.close().await;
            let _ = handle
                .disconnect(Disconnect::ByApplication, "bench done", "")
                .await;
            // Give the disconnect a moment to leave before the socket drops.
            let _ = timeout(Duration::from_secs(5), handle).await;
        });
    }
    let _ = timeout(Duration::from_secs(30), async {
        while closing.join_next().await.is_some() {}
    })
    .await;
    closing.abort_all();
    echo_task.abort();
    println!("CLOSED");
    0
}
