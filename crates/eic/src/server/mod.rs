//! `eic server`: binds the listeners, serves until SIGTERM or Ctrl-C, then
//! drains in-flight requests and closes the store so that every push that
//! was answered 200 is on disk.
//!
//! `run` is a few named steps: the config with its overrides, the
//! registry and policies, `Sockets::bind` (before anything is written),
//! the descriptor budget, `DataDir::for_server`, `open_state` (the
//! store, and Redis when shared), the audit log, then each role built from
//! `Shared`: `Shared::instance_api` (with `Shared::instance_api_tls`),
//! `Shared::serial_gateway` and `Shared::api`, each served on its socket.
//!
//! The roles: [`api`] (the pipeline every push goes through) with [`authz`];
//! [`instance_api`] (instances fetch their signed keys); [`serial`] (the
//! serial console gateway's wiring). Beside them: [`listen`] (listeners,
//! HTTP serving, the API listener's hyper adapter), [`tls`],
//! [`http_errors`] (hyper's own refusals in AWS's shape) and
//! [`descriptors`] (connection caps against RLIMIT_NOFILE).

pub mod api;
pub mod authz;
pub mod console;
pub mod descriptors;
pub mod diagnostics;
pub mod ec2;
pub mod fleet;
pub mod http_errors;
pub mod instance_api;
pub mod listen;
pub mod reload;
pub mod serial;
pub mod tls;
pub mod tunnel;
pub mod websocket;

#[cfg(test)]
mod agent_http_tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use eic_serial::{Gateway, GatewayConfig};
use eic_store::{Clock, EmbeddedStore, Fleet, LocalSessionLocks, SessionLocks, Store, SystemClock};

use crate::audit::AuditLog;
use crate::config::{Config, InstanceApiTls, StoreKind};
use crate::credentials::TemporaryCredentials;
use crate::data_dir::{DataDir, RunningServer};
use crate::instance_credentials::InstanceCredentials;
use crate::instances::Instances;
use crate::metrics::{Metrics, TimedStore};
use crate::settings::{self, SerialConsoleAccess, INSTANCE_CREDENTIALS, SERIAL_CONSOLE_ACCESS};
use crate::signing::Signing;
use crate::tls_ca::{self, AutoCertificate};
use api::{Api, ApiParts, SerialState};
use diagnostics::{Diagnostics, DIAGNOSTICS_CONNECTIONS};
use instance_api::InstanceApi;
use listen::{announce, bind, handle_api, serve_http, HttpListener};
use reload::{Catalog, LiveCatalog, Reloader};
use serial::{AuditedSessions, StoreSerialKeys};
use tls::Tls;
use tunnel::{TunnelRole, TunnelSettings};

/// Command-line settings that take precedence over the config file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `redis://…` or `redis-cluster://…`: the store every node shares.
    pub store_url: Option<String>,
    pub api_listen: Option<SocketAddr>,
    pub instance_api_listen: Option<SocketAddr>,
    pub serial_listen: Option<SocketAddr>,
    pub tunnel_listen: Option<SocketAddr>,
    pub diagnostics_listen: Option<SocketAddr>,
    pub console_listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

/// `eic server`: loads the config, and serves on a multi-threaded runtime
/// until SIGTERM or Ctrl-C.
pub fn main(config_path: &Path, overrides: Overrides) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    crate::init_logging_as(config.log.format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(config_path, config, overrides, shutdown_signal()))
}

/// Serves `config` (read from `config_path`, which SIGHUP reads again) with
/// `overrides` until `shutdown` resolves, then drains.
pub async fn run(
    config_path: &Path,
    config: Config,
    overrides: Overrides,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let config = overrides.clone().apply(config)?;
    let catalog = Catalog::from_config(&config)?;
    // Bound before anything is written: a server whose port is taken
    // leaves no CA, store or keys behind in a data dir.
    let sockets = Sockets::bind(&config).await?;
    let caps = descriptors::fit(&config)?;
    let data_dir = DataDir::for_server(&config.data_dir)?;
    let _running =
        RunningServer::register(data_dir.path(), config.store.kind == StoreKind::Embedded)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut state = open_state(&config, &data_dir, clock.clone())?;
    let instances = Arc::new(Instances::new(
        &catalog.registry,
        state.fleet.clone(),
        config.fleet.unavailable_after(),
    )?);
    let audit = Arc::new(AuditLog::open(
        &config.audit_path(),
        &config.region,
        config.audit.limits(),
    )?);
    tokio::spawn(summarize_suppressed(audit.clone()));
    tokio::spawn(fleet::sweep_liveness(
        instances.clone(),
        audit.clone(),
        Duration::from_secs(1),
    ));
    if state.redis.is_none() {
        let every = Duration::from_secs((config.fleet.heartbeat_secs / 3).clamp(1, 10));
        tokio::spawn(snapshot_seen(
            config.data_dir.clone(),
            state.fleet.clone(),
            every,
        ));
    }

    let (metrics, catalog) = if config.diagnostics.is_some() {
        let metrics = Metrics::new(&error_codes(), Some(instances.clone()));
        state.store = Arc::new(TimedStore {
            store: state.store.clone(),
            backend: match config.store.kind {
                StoreKind::Embedded => "embedded",
                StoreKind::Redis => "redis",
            },
            metrics: metrics.clone(),
        });
        let catalog = catalog.counted(&metrics);
        (metrics, catalog)
    } else {
        (Metrics::uncounted(&error_codes()), catalog)
    };
    let catalog = LiveCatalog::new(catalog);
    let shared = Shared {
        metrics: metrics.clone(),
        config: &config,
        data_dir: &data_dir,
        catalog: catalog.clone(),
        instances: instances.clone(),
        state: &state,
        audit: audit.clone(),
        clock,
    };
    let instance_api = match sockets.instance_api {
        Some(listener) => Some(Bound {
            listener,
            role: (shared.instance_api()?, shared.instance_api_tls()?),
        }),
        None => None,
    };
    let serial = match sockets.serial {
        Some(listener) => Some(Bound {
            listener,
            role: shared.serial_gateway(caps.serial)?,
        }),
        None => None,
    };
    let tunnel = match sockets.tunnel {
        Some(listener) => Some(Bound {
            listener,
            role: shared.tunnel_tls()?,
        }),
        None => None,
    };
    let console = match sockets.console {
        Some(listener) => Some(Bound {
            listener,
            role: shared.console_tls()?,
        }),
        None => None,
    };
    let tls = config.api.tls.as_ref().map(Tls::load).transpose()?;
    let reloadable = [
        tls.clone(),
        instance_api.as_ref().and_then(|bound| bound.role.1.clone()),
        tunnel.as_ref().map(|bound| bound.role.clone()),
        console.as_ref().and_then(|bound| bound.role.clone()),
    ];
    let reloader = Reloader {
        path: config_path.to_owned(),
        overrides,
        running: config.clone(),
        catalog,
        instances,
        metrics: metrics.clone(),
        audit: audit.clone(),
        data_dir: data_dir.path().to_owned(),
        generation: 0,
    };
    reloader.started();
    tokio::spawn(reload_on_sighup(
        audit,
        reloadable
            .into_iter()
            .flatten()
            .filter(Tls::has_files)
            .collect(),
        reloader,
    ));
    let api = Arc::new(shared.api(serial.as_ref())?);
    // Console terminals and serial gateway sessions are recorded.
    tokio::spawn(console::recording::sweep_periodically(
        config.recordings_dir(),
        eic_recording::Retention {
            max_age: Duration::from_secs(config.recordings.retention_days.saturating_mul(86_400)),
            max_total_bytes: config.recordings.max_total_bytes,
        },
    ));
    let serial_gateway = match &serial {
        Some(bound) => {
            let mut address = bound.listener.local_addr()?;
            // The console dials the gateway from this host.
            if address.ip().is_unspecified() {
                address.set_ip(match address {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            Some(console::SerialGateway {
                address,
                host_key: bound.role.public_key.clone(),
            })
        }
        None => None,
    };

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
        move |peer, request| handle_api(api_for_listener.clone(), peer, request, secure),
        stop_rx.clone(),
    ))];
    announce("api", api_addr);
    if let Some(Bound {
        listener,
        role: (instance_api, instance_tls),
    }) = instance_api
    {
        let addr = listener.local_addr()?;
        tasks.push(tokio::spawn(serve_http(
            HttpListener {
                tcp: listener,
                tls: instance_tls,
                max_connections: caps.instance_api,
                aws_errors: false,
            },
            move |peer, request| instance_api.clone().handle(peer, request),
            stop_rx.clone(),
        )));
        announce("instance-api", addr);
    }
    if let Some(Bound {
        listener,
        role: gateway,
    }) = serial
    {
        let addr = listener.local_addr()?;
        tasks.push(tokio::spawn(
            gateway.gateway.serve(listener, stop_rx.clone()),
        ));
        announce("serial-console", addr);
        listen::print_line(&format!("serial-console host key {}", gateway.fingerprint));
    }
    let mut tunnels = None;
    if let Some(Bound {
        listener,
        role: tunnel_tls,
    }) = tunnel
    {
        let addr = listener.local_addr()?;
        let settings = config.tunnel.as_ref().expect("bound only when configured");
        let role = Arc::new(TunnelRole::new(
            api.clone(),
            TunnelSettings::from_config(settings, caps.tunnel),
            stop_rx.clone(),
        ));
        let handler = role.clone();
        tasks.push(tokio::spawn(serve_http(
            HttpListener {
                tcp: listener,
                tls: Some(tunnel_tls),
                max_connections: caps.tunnel,
                aws_errors: false,
            },
            move |peer, request| handler.clone().handle(peer, request),
            stop_rx.clone(),
        )));
        announce("tunnel", addr);
        tunnels = Some(role);
    }

    if let Some(Bound {
        listener,
        role: console_tls,
    }) = console
    {
        let addr = listener.local_addr()?;
        let settings = config.console.as_ref().expect("bound only when configured");
        console::signin::write_base_url(data_dir.path(), &settings.base_url_at(addr))?;

        // Shared by every node on Redis, so a session holds on each.
        let console_sessions: Arc<dyn eic_store::ConsoleSessions> = match &state.redis {
            Some(connection) => Arc::new(eic_store_redis::RedisConsoleSessions::new(
                connection.clone(),
            )),
            None => Arc::new(eic_store::MemoryConsoleSessions::new(settings.max_sessions)),
        };
        // A terminal through an endpoint checks the endpoint's listener as
        // the CLI does, and also trusts eic's own TLS CA.
        let own_ca: Vec<_> = tls_ca::own_ca(&data_dir)?.into_iter().collect();
        let endpoint_tls = match crate::tunnel::dial::client_tls(&own_ca) {
            Ok(tls) => Some(tls),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "the console cannot check endpoints' certificates");
                None
            }
        };
        let role = Arc::new(console::ConsoleRole::new(
            api.clone(),
            settings,
            console::ConsoleSettings::from_config(
                settings,
                console::recording_settings(&config),
                config.store.kind == StoreKind::Embedded,
                serial_gateway,
                endpoint_tls,
            ),
            console_sessions,
            data_dir.path(),
            stop_rx.clone(),
        )?);
        tasks.push(tokio::spawn(serve_http(
            HttpListener {
                tcp: listener,
                tls: console_tls,
                max_connections: caps.console,
                aws_errors: false,
            },
            move |peer, request| role.clone().handle(peer, request),
            stop_rx.clone(),
        )));
        announce("console", addr);
    }
    if let Some(listener) = sockets.diagnostics {
        let addr = listener.local_addr()?;
        let diagnostics = Arc::new(Diagnostics {
            api: api.clone(),
            metrics,
        });
        tasks.push(tokio::spawn(serve_http(
            HttpListener {
                tcp: listener,
                tls: None,
                max_connections: DIAGNOSTICS_CONNECTIONS,
                aws_errors: false,
            },
            move |_, request| diagnostics.clone().handle(request),
            stop_rx.clone(),
        )));
        announce("diagnostics", addr);
    }
    crate::systemd::ready("serving");
    let watchdog = tokio::spawn(crate::systemd::watchdog());
    shutdown.await;
    crate::systemd::stopping();
    watchdog.abort();
    tracing::info!("shutting down: draining in-flight requests");
    let _ = stop_tx.send(true);
    for task in tasks {
        task.await?;
    }
    // Told to stop, each tunnel closes with 1001 and audits its end.
    if let Some(tunnels) = tunnels {
        tunnels.drained(listen::DRAIN_TIMEOUT).await;
    }
    // The store closes when its last handle drops; its log syncer finishes
    // every written record first.
    drop(api);
    drop(state);
    tracing::info!("stopped");
    Ok(())
}

/// Every error code a request can end with, for the metrics' closed set.
fn error_codes() -> Vec<&'static str> {
    let mut codes: Vec<&'static str> = eic_wire::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    codes.extend(eic_ec2::ErrorCode::ALL.iter().map(|c| c.as_str()));
    codes.extend(tunnel::REFUSAL_CODES);
    codes
}

/// A role and the socket it serves on.
struct Bound<T> {
    listener: TcpListener,
    role: T,
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
        if let Some(addr) = self.diagnostics_listen {
            match config.diagnostics.as_mut() {
                Some(diagnostics) => diagnostics.listen = addr,
                None => anyhow::bail!(
                    "--diagnostics-listen needs a [diagnostics] section in the config"
                ),
            }
        }
        if let Some(addr) = self.console_listen {
            match config.console.as_mut() {
                Some(console) => console.listen = addr,
                None => anyhow::bail!("--console-listen needs a [console] section in the config"),
            }
        }
        if let Some(addr) = self.tunnel_listen {
            match config.tunnel.as_mut() {
                Some(tunnel) => tunnel.listen = addr,
                None => anyhow::bail!("--tunnel-listen needs a [tunnel] section in the config"),
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
    tunnel: Option<TcpListener>,
    diagnostics: Option<TcpListener>,
    console: Option<TcpListener>,
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
        let tunnel = match &config.tunnel {
            Some(settings) => Some(bind("tunnel", settings.listen).await?),
            None => None,
        };
        let diagnostics = match &config.diagnostics {
            Some(settings) => Some(bind("diagnostics", settings.listen).await?),
            None => None,
        };
        let console = match &config.console {
            Some(settings) => Some(bind("console", settings.listen).await?),
            None => None,
        };
        Ok(Sockets {
            api,
            instance_api,
            serial,
            tunnel,
            diagnostics,
            console,
        })
    }
}

/// What every role shares: the store, and the Redis connection when the
/// store is Redis (runtime settings and session leases use it too).
struct State {
    store: Arc<dyn Store>,
    fleet: Arc<dyn Fleet>,
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
                fleet: crate::fleet::open_redis(store.connection()),
                redis: Some(store.connection().clone()),
                store: Arc::new(store),
            }
        }
        StoreKind::Embedded => State {
            store: Arc::new(EmbeddedStore::open(
                &data_dir.path().join("keys"),
                config.store.durability,
                clock,
            )?),
            fleet: crate::fleet::open_embedded(data_dir)?,
            redis: None,
        },
    })
}

/// What the roles are built from.
struct Shared<'a> {
    metrics: Arc<Metrics>,
    config: &'a Config,
    data_dir: &'a DataDir,
    catalog: Arc<LiveCatalog>,
    instances: Arc<Instances>,
    state: &'a State,
    audit: Arc<AuditLog>,
    clock: Arc<dyn Clock>,
}

/// The serial console gateway, with what the API asks of it.
struct SerialGateway {
    gateway: Arc<Gateway>,
    locks: Arc<dyn SessionLocks>,
    fingerprint: String,
    /// Its host key as `type base64`, for DescribeInstanceHostKeys.
    public_key: String,
}

impl Shared<'_> {
    /// The API pipeline; `serial` is the serial gateway, when it runs: its
    /// session locks, and its port and host key for
    /// DescribeInstanceHostKeys.
    fn api(&self, serial: Option<&Bound<SerialGateway>>) -> anyhow::Result<Api> {
        let host_keys = match serial {
            Some(bound) => Some(eic_ec2::SerialConsoleHostKeys {
                port: bound.listener.local_addr()?.port(),
                host_keys: vec![bound.role.public_key.clone()],
            }),
            None => None,
        };
        Ok(Api::new(ApiParts {
            catalog: self.catalog.clone(),
            instances: self.instances.clone(),
            temporary: TemporaryCredentials::load(self.data_dir)?,
            store: self.state.store.clone(),
            audit: self.audit.clone(),
            clock: self.clock.clone(),
            serial: SerialState {
                access: SerialConsoleAccess::new(settings::for_server(
                    self.data_dir.path(),
                    self.state.redis.as_ref(),
                    SERIAL_CONSOLE_ACCESS,
                )),
                locks: serial.map(|bound| bound.role.locks.clone()),
                host_keys,
            },
            metrics: self.metrics.clone(),
        }))
    }

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
            catalog: self.catalog.clone(),
            metrics: self.metrics.clone(),
            instances: self.instances.clone(),
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
            region: self.config.region.clone(),
            fleet: self.config.fleet.clone(),
        };
        Ok(Arc::new(instance_api))
    }

    /// The instance-facing listener's TLS, if any; with `tls = "auto"`
    /// the TLS CA (created on the first start) and a leaf renewed while
    /// the server runs.
    fn instance_api_tls(&self) -> anyhow::Result<Option<Tls>> {
        let settings = self
            .config
            .instance_api
            .as_ref()
            .expect("bound only when configured");
        match &settings.tls {
            None => Ok(None),
            Some(InstanceApiTls::Files(files)) => Ok(Some(Tls::load(files)?)),
            Some(InstanceApiTls::Auto) => self
                .auto_tls(tls_ca::server_names(settings)?, "instance-api")
                .map(Some),
        }
    }

    /// The tunnel listener's TLS: the operator's files, or with `tls =
    /// "auto"` a leaf from the TLS CA for every endpoint's DNS names,
    /// renewed while the server runs.
    fn tunnel_tls(&self) -> anyhow::Result<Tls> {
        let settings = self
            .config
            .tunnel
            .as_ref()
            .expect("bound only when configured");
        match &settings.tls {
            InstanceApiTls::Files(files) => Tls::load(files),
            InstanceApiTls::Auto => {
                let names = self.catalog.current().registry.endpoint_dns_names();
                if names.is_empty() {
                    anyhow::bail!("[tunnel] tls = \"auto\" needs an [[instance_connect_endpoints]] dns_name to certify");
                }
                self.auto_tls(names, "tunnel")
            }
        }
    }

    /// The console's TLS: the operator's files, a certificate from eic's
    /// CA for `tls_names`, or none (plain http, loopback only).
    fn console_tls(&self) -> anyhow::Result<Option<Tls>> {
        let settings = self
            .config
            .console
            .as_ref()
            .expect("bound only when configured");
        match &settings.tls {
            None => Ok(None),
            Some(InstanceApiTls::Files(files)) => Tls::load(files).map(Some),
            Some(InstanceApiTls::Auto) => {
                let mut names = settings.tls_names.clone();
                names.push(settings.listen.ip().to_string());
                self.auto_tls(names, "console").map(Some)
            }
        }
    }

    /// A listener's certificate from the TLS CA (created on the first
    /// start) for `names`, and the task that renews it.
    fn auto_tls(&self, names: Vec<String>, role: &'static str) -> anyhow::Result<Tls> {
        let auto = AutoCertificate::load_or_create(
            &self.data_dir.path().join("pki"),
            names,
            self.clock.now(),
        )?;
        let issued = auto.issue(self.clock.now())?;
        let tls = Tls::serving(issued.key)?;
        tracing::info!(role, fingerprint = %auto.fingerprint(), "TLS CA");
        tokio::spawn(renew_auto_certificate(
            auto,
            tls.clone(),
            issued.not_after,
            self.clock.clone(),
            role,
        ));
        Ok(tls)
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
        let public_key = eic_serial::host_public_key_line(&host_key)?;
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
            self.catalog.clone(),
            Arc::new(StoreSerialKeys {
                store: self.state.store.clone(),
                clock: self.clock.clone(),
            }),
            locks.clone(),
            Arc::new(AuditedSessions {
                audit: self.audit.clone(),
                region: self.config.region.clone(),
                metrics: self.metrics.clone(),
                recordings: console::recording_settings(self.config),
            }),
        );
        gateway.max_session = Duration::from_secs(settings.max_session_secs);
        gateway.max_connections = max_connections;
        gateway.max_connections_per_source = settings.max_connections_per_source;
        Ok(SerialGateway {
            gateway: Arc::new(Gateway::new(gateway)),
            locks,
            fingerprint,
            public_key,
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

/// Writes the embedded fleet's last-seen times for commands (crate::fleet).
async fn snapshot_seen(data_dir: PathBuf, fleet: Arc<dyn Fleet>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (dir, fleet) = (data_dir.clone(), fleet.clone());
        let written = tokio::task::spawn_blocking(move || {
            crate::fleet::write_seen(&DataDir::for_command(&dir)?, fleet.as_ref())
        })
        .await;
        if let Ok(Err(e)) = written {
            tracing::warn!(
                error = format!("{e:#}"),
                "cannot write the fleet's last-seen snapshot"
            );
        }
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

/// Replaces a listener's leaf from the TLS CA once past half its life;
/// checked every minute, as the signer leaf.
async fn renew_auto_certificate(
    auto: AutoCertificate,
    tls: Tls,
    mut not_after: u64,
    clock: Arc<dyn Clock>,
    role: &'static str,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let now = clock.now();
        if !tls_ca::renewal_due(not_after, now) {
            continue;
        }
        match auto.issue(now) {
            Ok(issued) => {
                tls.replace(issued.key);
                not_after = issued.not_after;
                tracing::info!(role, "renewed the TLS certificate");
            }
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                role,
                "TLS renewal failed; the current certificate stays until it expires"
            ),
        }
    }
}

/// SIGHUP: log rotation (the audit file was moved away: reopen the path),
/// certificate renewal (read the TLS files again) and the configuration
/// (reload.rs).
async fn reload_on_sighup(audit: Arc<AuditLog>, tls: Vec<Tls>, mut reloader: Reloader) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!(
            "cannot listen for SIGHUP; the audit log and certificate will not be reloaded"
        );
        return;
    };
    while hangups.recv().await.is_some() {
        crate::systemd::reloading();
        for tls in &tls {
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
        reloader.reload();
        crate::systemd::ready("serving");
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; stopping only on Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
