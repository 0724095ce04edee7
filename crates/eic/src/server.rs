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

use crate::api::{Api, ApiRequest, ApiResponse, SerialState};
use crate::audit::AuditLog;
use crate::authz::Authorizer;
use crate::config::{Config, DurabilityConfig, StoreKind};
use crate::credentials::TemporaryCredentials;
use crate::instance_api::InstanceApi;
use crate::instance_credentials::InstanceCredentials;
use crate::registry::Registry;
use crate::serial::{AuditedSessions, SerialConsoleAccess, StoreSerialKeys};
use crate::settings::{self, INSTANCE_CREDENTIALS, SERIAL_CONSOLE_ACCESS};
use crate::signing::Signing;
use crate::tls::Tls;
use eic_serial::{Gateway, GatewayConfig, LocalSessionLocks, SessionLocks};

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
    mut config: Config,
    overrides: Overrides,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    if let Some(addr) = overrides.api_listen {
        config.api.listen = addr;
    }
    if let Some(dir) = overrides.data_dir {
        config.data_dir = dir;
    }
    if let Some(addr) = overrides.serial_listen {
        match config.serial_console.as_mut() {
            Some(serial) => serial.listen = addr,
            None => anyhow::bail!("--serial-listen needs a [serial_console] section in the config"),
        }
    }
    if let Some(addr) = overrides.instance_api_listen {
        match config.instance_api.as_mut() {
            Some(instance_api) => instance_api.listen = addr,
            None => {
                anyhow::bail!("--instance-api-listen needs an [instance_api] section in the config")
            }
        }
    }
    let config = config.with_store_url(overrides.store_url);
    let registry = Arc::new(Registry::from_config(&config)?);
    let authorizer = Authorizer::from_config(&config, &registry)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    std::fs::create_dir_all(&config.data_dir)?;
    let mut redis = None;
    let store: Arc<dyn Store> = match config.store.kind {
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
            redis = Some(store.connection().clone());
            Arc::new(store)
        }
        StoreKind::Embedded => {
            let durability = match config.store.durability {
                DurabilityConfig::Fsync => Durability::Fsync,
                DurabilityConfig::Interval => Durability::Interval(Duration::from_millis(
                    config.store.sync_interval_ms.max(1),
                )),
                DurabilityConfig::ProcessCrash => Durability::ProcessCrash,
            };
            Arc::new(EmbeddedStore::open(
                &config.data_dir.join("keys"),
                durability,
                clock.clone(),
            )?)
        }
    };
    let temporary = TemporaryCredentials::load_or_create(&config.data_dir)?;
    let audit = Arc::new(AuditLog::open(&config.audit_path())?);
    let instance_api = match &config.instance_api {
        None => None,
        Some(settings) => {
            let signing = Arc::new(Signing::load_or_create(
                &config.data_dir.join("pki"),
                &config.region,
                &settings.domain,
                clock.now(),
            )?);
            tokio::spawn(rotate_signer(signing.clone(), clock.clone()));
            let listener = bind("instance-api", settings.listen).await?;
            let state = Arc::new(InstanceApi {
                registry: registry.clone(),
                store: store.clone(),
                credentials: InstanceCredentials::load_or_create(
                    &config.data_dir,
                    settings::for_server(&config.data_dir, redis.as_ref(), INSTANCE_CREDENTIALS),
                )?,
                signing,
                audit: audit.clone(),
                clock: clock.clone(),
                domain: settings.domain.clone(),
            });
            Some((listener, state, settings.max_connections))
        }
    };
    let serial_gateway = match &config.serial_console {
        None => None,
        Some(settings) => {
            let host_key =
                eic_serial::load_or_create_host_key(&config.data_dir.join("serial-host-key"))?;
            let fingerprint = eic_serial::host_key_fingerprint(&host_key);
            let teardown = Duration::from_secs(settings.teardown_secs);
            // On Redis the lock is a lease shared by every node, so one
            // session per instance port holds across the whole service.
            let locks: Arc<dyn SessionLocks> = match &redis {
                Some(connection) => Arc::new(eic_store_redis::RedisSessionLocks::new(
                    connection.clone(),
                    teardown,
                    Duration::from_secs(settings.session_lease_secs),
                )),
                None => Arc::new(LocalSessionLocks::new(teardown)),
            };
            let mut gateway = GatewayConfig::new(
                host_key,
                registry.clone(),
                Arc::new(StoreSerialKeys {
                    store: store.clone(),
                    clock: clock.clone(),
                }),
                locks.clone(),
                Arc::new(AuditedSessions {
                    audit: audit.clone(),
                    region: config.region.clone(),
                }),
            );
            gateway.max_session = Duration::from_secs(settings.max_session_secs);
            let listener = TcpListener::bind(settings.listen).await?;
            Some((
                listener,
                Arc::new(Gateway::new(gateway)),
                locks,
                fingerprint,
            ))
        }
    };
    let serial_state = SerialState {
        access: SerialConsoleAccess::new(settings::for_server(
            &config.data_dir,
            redis.as_ref(),
            SERIAL_CONSOLE_ACCESS,
        )),
        locks: serial_gateway
            .as_ref()
            .map(|(_, _, locks, _)| locks.clone()),
    };
    let tls = config.api.tls.as_ref().map(Tls::load).transpose()?;
    tokio::spawn(reload_on_sighup(audit.clone(), tls.clone()));
    let api = Arc::new(Api::new(
        registry.clone(),
        authorizer,
        temporary,
        config.throttling.clone(),
        store.clone(),
        audit,
        clock.clone(),
        serial_state,
    ));

    let listener = bind("api", config.api.listen).await?;
    let api_addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let api_for_listener = api.clone();
    let secure = tls.is_some();
    let api_task = tokio::spawn(serve_http(
        HttpListener {
            tcp: listener,
            tls: tls.clone(),
            max_connections: config.api.max_connections,
        },
        move |peer, request| handle(api_for_listener.clone(), peer, request, secure),
        stop_rx.clone(),
    ));
    announce("api", api_addr);
    let mut tasks = vec![api_task];
    if let Some((listener, state, max_connections)) = instance_api {
        let addr = listener.local_addr()?;
        tasks.push(tokio::spawn(serve_http(
            HttpListener {
                tcp: listener,
                tls: None,
                max_connections,
            },
            move |peer, request| state.clone().handle(peer, request),
            stop_rx.clone(),
        )));
        announce("instance-api", addr);
    }
    if let Some((listener, gateway, _, fingerprint)) = serial_gateway {
        let addr = listener.local_addr()?;
        tasks.push(tokio::spawn(gateway.serve(listener, stop_rx.clone())));
        announce("serial-console", addr);
        println!("serial-console host key {fingerprint}");
    }

    shutdown.await;
    tracing::info!("shutting down: draining in-flight requests");
    let _ = stop_tx.send(true);
    for task in tasks {
        task.await?;
    }
    // The store closes when its last handle drops; its log writer finishes
    // every queued append first.
    drop(api);
    drop(store);
    tracing::info!("stopped");
    Ok(())
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

async fn bind(role: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for {role}: {e}"))
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
            .clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let served = match tls {
                None => {
                    watcher
                        .watch(http.serve_connection(TokioIo::new(stream), service))
                        .await
                }
                Some(tls) => match tls.accept(stream).await {
                    Ok(stream) => {
                        watcher
                            .watch(http.serve_connection(TokioIo::new(stream), service))
                            .await
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
        let (status, text) = match api.store().ready().await {
            Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
            Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")),
        };
        let mut reply = Response::new(Full::new(Bytes::from(text)));
        *reply.status_mut() = status;
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
