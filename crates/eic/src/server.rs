//! `eic server`: binds the listeners, serves until SIGTERM or Ctrl-C, then
//! drains in-flight requests and closes the store so that every push that
//! was answered 200 is on disk.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use eic_store::{Clock, Durability, EmbeddedStore, Store, SystemClock};
use eic_wire::{ApiError, ErrorCode, CONTENT_TYPE, MAX_BODY_BYTES};

use crate::api::{Api, ApiParts, ApiRequest, ApiResponse, SerialState};
use crate::audit::AuditLog;
use crate::authz::Authorizer;
use crate::config::{Config, DurabilityConfig, StoreKind};
use crate::credentials::TemporaryCredentials;
use crate::data_dir::DataDir;
use crate::descriptors;
use crate::http_errors::AwsShapedErrors;
use crate::instance_api::InstanceApi;
use crate::instance_credentials::InstanceCredentials;
use crate::registry::Registry;
use crate::serial::{AuditedSessions, SerialConsoleAccess, StoreSerialKeys};
use crate::settings::{self, INSTANCE_CREDENTIALS, SERIAL_CONSOLE_ACCESS};
use crate::signing::Signing;
use crate::tls::Tls;
use eic_serial::{Gateway, GatewayConfig};
use eic_store::{LocalSessionLocks, SessionLocks};

/// Command-line settings that take precedence over the config file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `redis://…` or `redis-cluster://…`: the store every node shares.
    pub store_url: Option<String>,
    pub api_listen: Option<SocketAddr>,
    pub instance_api_listen: Option<SocketAddr>,
    pub serial_listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

/// A slow client may take this long to send its headers, and as long again
/// for its body; then the connection is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a drain waits for in-flight requests before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
/// Bounds the request line and headers together.
const MAX_HEADER_BYTES: usize = 16 * 1024;

pub async fn run(
    config: Config,
    overrides: Overrides,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let config = overrides.apply(config)?;
    let registry = Arc::new(Registry::from_config(&config)?);
    let authorizer = Authorizer::from_config(&config, &registry)?;
    // Bound before anything is written: a server whose port is taken
    // leaves no CA, store or keys behind in a data dir.
    let sockets = Sockets::bind(&config).await?;
    let caps = descriptors::fit(&config)?;
    let data_dir = DataDir::for_server(&config.data_dir)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let state = open_state(&config, &data_dir, clock.clone())?;
    let audit = Arc::new(AuditLog::open(
        &config.audit_path(),
        &config.region,
        config.audit.limits(),
    )?);
    tokio::spawn(summarize_suppressed(audit.clone()));

    let shared = Shared {
        config: &config,
        data_dir: &data_dir,
        registry: registry.clone(),
        state: &state,
        audit: audit.clone(),
        clock: clock.clone(),
    };
    let instance_api = match sockets.instance_api {
        Some(listener) => Some((listener, shared.instance_api()?)),
        None => None,
    };
    let serial = match sockets.serial {
        Some(listener) => Some((listener, shared.serial_gateway(caps.serial)?)),
        None => None,
    };
    let serial_state = SerialState {
        access: SerialConsoleAccess::new(settings::for_server(
            &config.data_dir,
            state.redis.as_ref(),
            SERIAL_CONSOLE_ACCESS,
        )),
        locks: serial.as_ref().map(|(_, gateway)| gateway.locks.clone()),
    };
    let tls = config.api.tls.as_ref().map(Tls::load).transpose()?;
    tokio::spawn(reload_on_sighup(audit.clone(), tls.clone()));
    let api = Arc::new(Api::new(ApiParts {
        registry,
        authorizer,
        temporary: TemporaryCredentials::load(&data_dir)?,
        throttling: config.throttling.clone(),
        store: state.store.clone(),
        audit,
        clock,
        serial: serial_state,
    }));

    let (stop_tx, stop_rx) = watch::channel(false);
    let api_addr = sockets.api.local_addr()?;
    let api_for_listener = api.clone();
    let secure = tls.is_some();
    let mut tasks = vec![tokio::spawn(serve_http(
        HttpListener {
            tcp: sockets.api,
            tls,
            max_connections: caps.api,
            aws_errors: true,
        },
        move |peer, request| handle(api_for_listener.clone(), peer, request, secure),
        stop_rx.clone(),
    ))];
    announce("api", api_addr);
    if let Some((listener, instance_api)) = instance_api {
        let addr = listener.local_addr()?;
        tasks.push(tokio::spawn(serve_http(
            HttpListener {
                tcp: listener,
                tls: None,
                max_connections: caps.instance_api,
                aws_errors: false,
            },
            move |peer, request| instance_api.clone().handle(peer, request),
            stop_rx.clone(),
        )));
        announce("instance-api", addr);
    }
    if let Some((listener, gateway)) = serial {
        let addr = listener.local_addr()?;
        tasks.push(tokio::spawn(
            gateway.gateway.serve(listener, stop_rx.clone()),
        ));
        announce("serial-console", addr);
        println!("serial-console host key {}", gateway.fingerprint);
    }

    shutdown.await;
    tracing::info!("shutting down: draining in-flight requests");
    let _ = stop_tx.send(true);
    for task in tasks {
        task.await?;
    }
    // The store closes when its last handle drops; its log syncer finishes
    // every written record first.
    drop(api);
    drop(state);
    tracing::info!("stopped");
    Ok(())
}

impl Overrides {
    /// The config with the command line's settings in place of the file's.
    fn apply(self, mut config: Config) -> anyhow::Result<Config> {
        if let Some(addr) = self.api_listen {
            config.api.listen = addr;
        }
        if let Some(dir) = self.data_dir {
            config.data_dir = dir;
        }
        if let Some(addr) = self.serial_listen {
            match config.serial_console.as_mut() {
                Some(serial) => serial.listen = addr,
                None => {
                    anyhow::bail!("--serial-listen needs a [serial_console] section in the config")
                }
            }
        }
        if let Some(addr) = self.instance_api_listen {
            match config.instance_api.as_mut() {
                Some(instance_api) => instance_api.listen = addr,
                None => {
                    anyhow::bail!(
                        "--instance-api-listen needs an [instance_api] section in the config"
                    )
                }
            }
        }
        Ok(config.with_store_url(self.store_url))
    }
}

/// Every listening socket the config asks for, bound.
struct Sockets {
    api: TcpListener,
    instance_api: Option<TcpListener>,
    serial: Option<TcpListener>,
}

impl Sockets {
    async fn bind(config: &Config) -> anyhow::Result<Sockets> {
        let api = bind("api", config.api.listen).await?;
        let instance_api = match &config.instance_api {
            Some(settings) => Some(bind("instance-api", settings.listen).await?),
            None => None,
        };
        let serial = match &config.serial_console {
            Some(settings) => Some(bind("serial-console", settings.listen).await?),
            None => None,
        };
        Ok(Sockets {
            api,
            instance_api,
            serial,
        })
    }
}

/// What every role shares: the store, and the Redis connection when the
/// store is Redis (runtime settings and session leases use it too).
struct State {
    store: Arc<dyn Store>,
    redis: Option<eic_store_redis::RedisConnection>,
}

fn open_state(config: &Config, data_dir: &DataDir, clock: Arc<dyn Clock>) -> anyhow::Result<State> {
    Ok(match config.store.kind {
        StoreKind::Redis => {
            if config.store.urls.is_empty() {
                anyhow::bail!("[store] kind = \"redis\" needs urls");
            }
            // Not reached yet: the node starts while Redis is down and is
            // unready (503, ServiceException) until it is up.
            let store = eic_store_redis::RedisStore::with_connection(
                eic_store_redis::RedisConnection::open(
                    &config.store.urls,
                    eic_store_redis::DEFAULT_OP_TIMEOUT,
                )?,
            );
            State {
                redis: Some(store.connection().clone()),
                store: Arc::new(store),
            }
        }
        StoreKind::Embedded => {
            let durability = match config.store.durability {
                DurabilityConfig::Fsync => Durability::Fsync,
                DurabilityConfig::Interval => Durability::Interval(Duration::from_millis(
                    config.store.sync_interval_ms.max(1),
                )),
                DurabilityConfig::ProcessCrash => Durability::ProcessCrash,
            };
            State {
                store: Arc::new(EmbeddedStore::open(
                    &data_dir.path().join("keys"),
                    durability,
                    clock,
                )?),
                redis: None,
            }
        }
    })
}

/// What the roles are built from.
struct Shared<'a> {
    config: &'a Config,
    data_dir: &'a DataDir,
    registry: Arc<Registry>,
    state: &'a State,
    audit: Arc<AuditLog>,
    clock: Arc<dyn Clock>,
}

/// The serial console gateway, with what the API asks of it.
struct SerialGateway {
    gateway: Arc<Gateway>,
    locks: Arc<dyn SessionLocks>,
    fingerprint: String,
}

impl Shared<'_> {
    fn instance_api(&self) -> anyhow::Result<Arc<InstanceApi>> {
        let settings = self
            .config
            .instance_api
            .as_ref()
            .expect("bound only when configured");
        let signing = Arc::new(Signing::load_or_create(
            &self.data_dir.path().join("pki"),
            &self.config.region,
            &settings.domain,
            self.clock.now(),
        )?);
        tokio::spawn(rotate_signer(signing.clone(), self.clock.clone()));
        let instance_api = InstanceApi {
            registry: self.registry.clone(),
            store: self.state.store.clone(),
            credentials: InstanceCredentials::load(
                self.data_dir,
                settings::for_server(
                    self.data_dir.path(),
                    self.state.redis.as_ref(),
                    INSTANCE_CREDENTIALS,
                ),
            )?,
            signing,
            audit: self.audit.clone(),
            clock: self.clock.clone(),
            domain: settings.domain.clone(),
        };
        Ok(Arc::new(instance_api))
    }

    fn serial_gateway(&self, max_connections: usize) -> anyhow::Result<SerialGateway> {
        let settings = self
            .config
            .serial_console
            .as_ref()
            .expect("bound only when configured");
        let host_key =
            eic_serial::load_or_create_host_key(&self.data_dir.path().join("serial-host-key"))?;
        let fingerprint = eic_serial::host_key_fingerprint(&host_key);
        let teardown = Duration::from_secs(settings.teardown_secs);
        // On Redis the lock is a lease shared by every node, so one
        // session per instance port holds across the whole service.
        let locks: Arc<dyn SessionLocks> = match &self.state.redis {
            Some(connection) => Arc::new(eic_store_redis::RedisSessionLocks::new(
                connection.clone(),
                teardown,
                Duration::from_secs(settings.session_lease_secs),
            )),
            None => Arc::new(LocalSessionLocks::new(teardown)),
        };
        let mut gateway = GatewayConfig::new(
            host_key,
            self.registry.clone(),
            Arc::new(StoreSerialKeys {
                store: self.state.store.clone(),
                clock: self.clock.clone(),
            }),
            locks.clone(),
            Arc::new(AuditedSessions {
                audit: self.audit.clone(),
                region: self.config.region.clone(),
            }),
        );
        gateway.max_session = Duration::from_secs(settings.max_session_secs);
        gateway.max_connections = max_connections;
        gateway.max_connections_per_source = settings.max_connections_per_source;
        Ok(SerialGateway {
            gateway: Arc::new(Gateway::new(gateway)),
            locks,
            fingerprint,
        })
    }
}

/// Writes the summary of refusals the audit log did not write line by line,
/// so a flood that stops is summarized without waiting for the next one.
async fn summarize_suppressed(audit: Arc<AuditLog>) {
    let mut tick = tokio::time::interval(crate::audit::SUMMARY_INTERVAL);
    loop {
        tick.tick().await;
        audit.summarize_if_due(std::time::SystemTime::now());
    }
}

/// Replaces the signer leaf when it is due; checked every minute.
async fn rotate_signer(signing: Arc<Signing>, clock: Arc<dyn Clock>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        if let Err(e) = signing.rotate_if_due(clock.now()) {
            tracing::error!(error = %e, "signer rotation failed; the current leaf stays until it expires");
        }
    }
}

/// SIGHUP: log rotation (the audit file was moved away: reopen the path)
/// and certificate renewal (read the TLS files again).
async fn reload_on_sighup(audit: Arc<AuditLog>, tls: Option<Tls>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!(
            "cannot listen for SIGHUP; the audit log and certificate will not be reloaded"
        );
        return;
    };
    while hangups.recv().await.is_some() {
        if let Some(tls) = &tls {
            match tls.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "TLS certificate could not be reloaded; still serving the old one"
                    )
                }
            }
        }
        match audit.reopen() {
            Ok(()) => tracing::info!(path = %audit.path().display(), "audit log reopened"),
            Err(e) => {
                tracing::error!(error = %e, "audit log could not be reopened; still writing to the old file")
            }
        }
    }
}

/// Connections the kernel completes and queues for `accept`: above the
/// default of 128, so a burst (or a listener at its connection cap) does
/// not make clients' SYNs drop and retry for seconds.
const LISTEN_BACKLOG: u32 = 4096;

async fn bind(role: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let listen = || -> std::io::Result<TcpListener> {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().map_err(|e| anyhow::anyhow!("cannot listen on {addr} for {role}: {e}"))
}

/// The line scripts and tests wait for: `listening <role> <address>`.
fn announce(role: &str, addr: SocketAddr) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening {role} {addr}");
    let _ = out.flush();
    tracing::info!(role, %addr, "listening");
}

/// A bound socket and how to serve it.
pub struct HttpListener {
    pub tcp: TcpListener,
    pub tls: Option<Tls>,
    pub max_connections: usize,
    /// hyper's own refusals (unparsable requests) in AWS's error shape.
    pub aws_errors: bool,
}

/// Serves HTTP/1.1 (over TLS when given) on `listener` with `handler` until
/// `stop`, then drains. Every role's listener shares these bounds and
/// timeouts.
pub async fn serve_http<H, F>(listener: HttpListener, handler: H, mut stop: watch::Receiver<bool>)
where
    H: Fn(SocketAddr, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let HttpListener {
        tcp: listener,
        tls,
        max_connections,
        aws_errors,
    } = listener;
    let slots = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    loop {
        // A slot first: at the limit, connections wait in the kernel's
        // backlog rather than each costing a task and buffers here.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = stop.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors or similar: back off briefly
                    // rather than spin; the listener itself stays up.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let service = service_fn(move |request| handler(peer, request));
        let http = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(READ_TIMEOUT)
            .max_buf_size(MAX_HEADER_BYTES.max(8192))
            // A client that shuts down its write side after its request
            // (`shutdown(SHUT_WR)`, `nc -N`) still gets its answer.
            .half_close(true)
            .clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let served = match tls {
                None => {
                    let io = TokioIo::new(AwsShapedErrors::new(stream, aws_errors));
                    watcher.watch(http.serve_connection(io, service)).await
                }
                Some(tls) => match tls.accept(stream).await {
                    Ok(stream) => {
                        let io = TokioIo::new(AwsShapedErrors::new(stream, aws_errors));
                        watcher.watch(http.serve_connection(io, service)).await
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                },
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain timed out; closing remaining connections");
    }
}

async fn handle(
    api: Arc<Api>,
    peer: SocketAddr,
    request: Request<Incoming>,
    secure_transport: bool,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    // For load balancers: 200 when this node can take pushes, 503 when its
    // store cannot (Redis unreachable), so traffic moves to other nodes.
    if parts.method == http::Method::GET && parts.uri.path() == "/ready" {
        let (status, text) = match api.ready().await {
            Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
            Err(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {e:#}\n"),
            ),
        };
        let mut reply = Response::new(Full::new(Bytes::from(text)));
        *reply.status_mut() = status;
        if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
            reply.headers_mut().insert("x-amzn-requestid", id);
        }
        return Ok(reply);
    }
    let too_large = || {
        ApiError::new(
            ErrorCode::SerializationException,
            format!("The request body exceeds {MAX_BODY_BYTES} bytes."),
        )
    };
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Ok(reply(refusal(&too_large(), 413)));
    }
    let body = match tokio::time::timeout(
        READ_TIMEOUT,
        Limited::new(body, MAX_BODY_BYTES).collect(),
    )
    .await
    {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Ok(reply(refusal(&too_large(), 413)))
        }
        Ok(Err(_)) | Err(_) => {
            let error = ApiError::new(
                ErrorCode::SerializationException,
                "The request body could not be read completely.",
            );
            return Ok(reply(refusal(&error, 400)));
        }
    };
    let response = api
        .handle(ApiRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            headers: &parts.headers,
            secure_transport,
            body: &body,
            source_ip: peer.ip(),
        })
        .await;
    Ok(reply(response))
}

fn refusal(error: &ApiError, status: u16) -> ApiResponse {
    let mut response = ApiResponse::error(uuid::Uuid::new_v4().to_string(), error);
    response.status = status;
    response
}

fn reply(response: ApiResponse) -> Response<Full<Bytes>> {
    let mut reply = Response::new(Full::new(Bytes::from(response.body)));
    *reply.status_mut() =
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = reply.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE),
    );
    if let Ok(id) = HeaderValue::from_str(&response.request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    if let Some(code) = response.error {
        headers.insert("x-amzn-errortype", HeaderValue::from_static(code.as_str()));
    }
    reply
}
