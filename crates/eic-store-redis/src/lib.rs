//! The Redis backend: pushed keys, throttling buckets, serial session
//! locks, runtime settings and the fleet shared by several eic server
//! nodes, on standalone Redis, a Redis Cluster, or the master a set of
//! Sentinels names (followed across failovers). It implements
//! `eic-store`'s traits ([`eic_store::Store`], [`eic_store::SessionLocks`],
//! [`eic_store::Settings`], [`eic_store::Fleet`]) and depends on nothing
//! above them.
//!
//! Every key of one instance carries the instance id as its hash tag
//! (`eic:{i-abc}:…`), so a multi-key operation on one instance stays in one
//! cluster slot; the fleet (enrolled machines, join tokens) is under the
//! one tag `{fleet}` (see [`RedisFleet`]). Every Redis error and every
//! answer slower than the operation timeout becomes [`StoreError::Backend`]
//! (the API answers `ServiceException`); the connection reconnects on its
//! own, so service returns when Redis does.
//!
//! What an acknowledged push survives is Redis's own durability: see
//! [`RedisStore`].

mod console_sessions;
mod fleet;
mod leases;
mod locks;
mod settings;
mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use eic_store::StoreError;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, IntoConnectionInfo, Pipeline, RedisFuture, RedisResult,
    ServerErrorKind, Value,
};

pub use console_sessions::RedisConsoleSessions;
pub use fleet::{RedisFleet, CHANGES_KEPT, FLEET_REFRESH, FLEET_STALENESS};
pub use locks::RedisSessionLocks;
pub use settings::{RedisSettings, SETTINGS_REFRESH, SETTINGS_STALENESS};
pub use store::RedisStore;

/// How long one Redis operation may take before it counts as unavailable.
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(2);

/// A shared, self-reconnecting handle on standalone Redis, a cluster, or
/// the master a set of Sentinels names; cheap to clone.
#[derive(Clone)]
pub struct RedisConnection {
    inner: Inner,
    op_timeout: Duration,
}

#[derive(Clone)]
enum Inner {
    /// Reconnects by itself after an I/O error.
    Standalone(ConnectionManager),
    /// Connected on first use (so a node can start while Redis is down);
    /// then the cluster connection follows slots and reconnects by itself.
    Cluster(Arc<LazyCluster>),
    Sentinel(Arc<SentinelMaster>),
}

struct LazyCluster {
    client: ClusterClient,
    connection: tokio::sync::OnceCell<ClusterConnection>,
}

impl LazyCluster {
    async fn connection(&self) -> RedisResult<ClusterConnection> {
        self.connection
            .get_or_try_init(|| self.client.get_async_connection())
            .await
            .cloned()
    }
}

/// The current master of a Sentinel-monitored group: asked of the Sentinels
/// on first use and again after any error that suggests it moved (the
/// connection broke, or the node answers as a read-only replica).
struct SentinelMaster {
    sentinels: tokio::sync::Mutex<SentinelClient>,
    current: std::sync::Mutex<Option<MultiplexedConnection>>,
    config: AsyncConnectionConfig,
}

impl SentinelMaster {
    async fn connection(&self) -> RedisResult<MultiplexedConnection> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let mut sentinels = self.sentinels.lock().await;
        // Another caller may have connected while this one waited.
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let client = sentinels.async_get_client().await?;
        let connection = client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(connection.clone());
        Ok(connection)
    }

    fn cached(&self) -> Option<MultiplexedConnection> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn check<T>(&self, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(e) = &result {
            let moved = e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_timeout()
                || matches!(
                    e.kind(),
                    ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
                );
            if moved {
                *self.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
            }
        }
        result
    }
}

impl ConnectionLike for Inner {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Inner::Standalone(c) => c.req_packed_command(cmd),
            Inner::Cluster(lazy) => Box::pin(async move {
                let mut c = lazy.connection().await?;
                c.req_packed_command(cmd).await
            }),
            Inner::Sentinel(master) => Box::pin(async move {
                let mut c = master.check(master.connection().await)?;
                master.check(c.req_packed_command(cmd).await)
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Inner::Standalone(c) => c.req_packed_commands(pipeline, offset, count),
            Inner::Cluster(lazy) => Box::pin(async move {
                let mut c = lazy.connection().await?;
                c.req_packed_commands(pipeline, offset, count).await
            }),
            Inner::Sentinel(master) => Box::pin(async move {
                let mut c = master.check(master.connection().await)?;
                master.check(c.req_packed_commands(pipeline, offset, count).await)
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Inner::Standalone(c) => c.get_db(),
            Inner::Cluster(_) | Inner::Sentinel(_) => 0,
        }
    }
}

/// Where the configured URLs point.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Topology {
    Standalone(String),
    Cluster(Vec<String>),
    /// The Sentinels' URLs, the master's name, and the credentials (a
    /// `redis://` URL) for the master.
    Sentinel {
        sentinels: Vec<String>,
        master: String,
        auth: Option<String>,
    },
}

/// One `redis://` URL is standalone; `redis-cluster://h1:p1,h2:p2` or
/// several `redis://` URLs are a cluster's seed nodes;
/// `redis-sentinel://[auth@]h1:p1,h2:p2/master` names Sentinels and the
/// master they watch.
fn parse_urls(urls: &[String]) -> Result<Topology, String> {
    let urls: Vec<&str> = urls
        .iter()
        .map(|u| u.trim())
        .filter(|u| !u.is_empty())
        .collect();
    match urls.as_slice() {
        [] => Err("no Redis URL configured".into()),
        [one] => {
            if let Some(rest) = one.strip_prefix("redis-cluster://") {
                cluster_seeds(rest).map(Topology::Cluster)
            } else if let Some(rest) = one.strip_prefix("redis-sentinel://") {
                sentinel(rest)
            } else {
                Ok(Topology::Standalone((*one).to_string()))
            }
        }
        several => {
            let mut seeds = Vec::new();
            for url in several {
                if url.starts_with("redis-sentinel://") {
                    return Err("a redis-sentinel:// URL lists every Sentinel itself".into());
                }
                match url.strip_prefix("redis-cluster://") {
                    Some(rest) => seeds.extend(cluster_seeds(rest)?),
                    None => seeds.push((*url).to_string()),
                }
            }
            Ok(Topology::Cluster(seeds))
        }
    }
}

/// `[auth@]h1:p1,h2:p2/master`: the Sentinels are asked without
/// credentials; `auth` is for the master.
fn sentinel(rest: &str) -> Result<Topology, String> {
    let (nodes, master) = rest
        .split_once('/')
        .ok_or("redis-sentinel:// URL names no master (…/MASTERNAME)")?;
    let master = master.trim_end_matches('/');
    if master.is_empty() || master.contains('/') {
        return Err("redis-sentinel:// URL names no master (…/MASTERNAME)".into());
    }
    let (auth, nodes) = match nodes.rsplit_once('@') {
        Some((auth, nodes)) => (Some(auth), nodes),
        None => (None, nodes),
    };
    let sentinels: Vec<String> = nodes
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| format!("redis://{n}"))
        .collect();
    if sentinels.is_empty() {
        return Err("redis-sentinel:// URL names no Sentinel".into());
    }
    Ok(Topology::Sentinel {
        auth: auth.map(|a| format!("redis://{a}@{}", &sentinels[0]["redis://".len()..])),
        sentinels,
        master: master.to_string(),
    })
}

/// `[user:pass@]h1:p1,h2:p2` → `redis://[user:pass@]h1:p1`, … (the
/// credentials of the first node apply to all that give none).
fn cluster_seeds(rest: &str) -> Result<Vec<String>, String> {
    let rest = rest.trim_end_matches('/');
    let mut credentials = None;
    let mut seeds = Vec::new();
    for node in rest.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let node = match node.rsplit_once('@') {
            Some((auth, _)) => {
                credentials.get_or_insert_with(|| auth.to_string());
                node.to_string()
            }
            None => match &credentials {
                Some(auth) => format!("{auth}@{node}"),
                None => node.to_string(),
            },
        };
        seeds.push(format!("redis://{node}"));
    }
    if seeds.is_empty() {
        return Err("redis-cluster:// URL names no node".into());
    }
    Ok(seeds)
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

impl RedisConnection {
    /// A handle on standalone Redis, a cluster or a Sentinel-monitored
    /// master (see the URL forms on [`RedisStore::connect`]), without
    /// reaching it yet: a server starts while Redis is down, and answers
    /// unavailable until Redis is up. Fails only on URLs that make no
    /// sense. Every operation fails as unavailable after `op_timeout`.
    pub fn open(urls: &[String], op_timeout: Duration) -> Result<Self, StoreError> {
        let topology = parse_urls(urls).map_err(StoreError::Unavailable)?;
        let per_attempt = op_timeout.min(Duration::from_secs(1));
        let inner = match &topology {
            Topology::Standalone(url) => {
                let client = redis::Client::open(url.as_str()).map_err(|e| {
                    StoreError::backend(format!("bad Redis URL {}", redact(url)), e)
                })?;
                // Few, short retries per attempt, so a call waiting on a
                // reconnection fails within the operation timeout and the
                // next call starts a fresh attempt.
                let config = ConnectionManagerConfig::new()
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500))
                    .set_connection_timeout(Some(per_attempt))
                    .set_response_timeout(Some(op_timeout));
                let manager = ConnectionManager::new_lazy_with_config(client, config)
                    .map_err(|e| StoreError::backend("redis connection", e))?;
                Inner::Standalone(manager)
            }
            Topology::Cluster(seeds) => {
                let client = ClusterClient::builder(seeds.iter().map(String::as_str))
                    .connection_timeout(per_attempt)
                    .response_timeout(op_timeout)
                    .retries(2)
                    .min_retry_wait(20)
                    .max_retry_wait(300)
                    .build()
                    .map_err(|e| StoreError::backend("bad Redis cluster URLs", e))?;
                Inner::Cluster(Arc::new(LazyCluster {
                    client,
                    connection: tokio::sync::OnceCell::new(),
                }))
            }
            Topology::Sentinel {
                sentinels,
                master,
                auth,
            } => {
                let mut node = SentinelNodeConnectionInfo::default();
                if let Some(auth) = auth {
                    let info = auth
                        .as_str()
                        .into_connection_info()
                        .map_err(|e| StoreError::backend("bad Redis Sentinel credentials", e))?;
                    node = node.set_redis_connection_info(info.redis_settings().clone());
                }
                let client = SentinelClient::build(
                    sentinels.clone(),
                    master.clone(),
                    Some(node),
                    SentinelServerType::Master,
                )
                .map_err(|e| StoreError::backend("bad Redis Sentinel URL", e))?;
                // Answers slower than this count as a lost master (the
                // operation's own timeout would cancel the call unseen).
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(per_attempt))
                    .set_response_timeout(Some(op_timeout.mul_f32(0.75)));
                Inner::Sentinel(Arc::new(SentinelMaster {
                    sentinels: tokio::sync::Mutex::new(client),
                    current: std::sync::Mutex::new(None),
                    config,
                }))
            }
        };
        tracing::info!(
            topology = match &topology {
                Topology::Standalone(_) => "standalone",
                Topology::Cluster(_) => "cluster",
                Topology::Sentinel { .. } => "sentinel",
            },
            "using Redis"
        );
        Ok(RedisConnection { inner, op_timeout })
    }

    /// As [`RedisConnection::open`], and checks that Redis answers (for
    /// commands, which should fail at once when it does not).
    pub async fn connect(urls: &[String], op_timeout: Duration) -> Result<Self, StoreError> {
        let connection = Self::open(urls, op_timeout)?;
        connection.ping().await?;
        Ok(connection)
    }

    /// Whether Redis answers a PING within the operation timeout.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.conn();
        self.run("ping", async move {
            redis::cmd("PING").query_async::<String>(&mut c).await
        })
        .await
        .map(|_| ())
    }

    /// True when connected to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner, Inner::Cluster(_))
    }

    /// How long one operation may take.
    pub fn op_timeout(&self) -> Duration {
        self.op_timeout
    }

    fn conn(&self) -> Inner {
        self.inner.clone()
    }

    /// Runs one operation under the timeout; any failure is
    /// [`StoreError::Backend`] with Redis's error (or the timeout's).
    async fn run<T>(
        &self,
        what: &str,
        operation: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.op_timeout, operation).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(StoreError::backend(format!("redis {what}"), e)),
            Err(elapsed) => Err(StoreError::backend(
                format!("redis {what}: no answer within {:?}", self.op_timeout),
                elapsed,
            )),
        }
    }
}

/// The hash tag that keeps everything of one instance in one slot.
fn instance_tag(instance_id: &str) -> String {
    format!("eic:{{{instance_id}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn url_forms() {
        assert_eq!(
            parse_urls(&s(&["redis://h:1"])).unwrap(),
            Topology::Standalone("redis://h:1".into())
        );
        assert_eq!(
            parse_urls(&s(&["redis-cluster://a:1,b:2"])).unwrap(),
            Topology::Cluster(s(&["redis://a:1", "redis://b:2"]))
        );
        assert_eq!(
            parse_urls(&s(&["redis-cluster://u:p@a:1,b:2/"])).unwrap(),
            Topology::Cluster(s(&["redis://u:p@a:1", "redis://u:p@b:2"]))
        );
        assert_eq!(
            parse_urls(&s(&["redis://a:1", "redis://b:2"])).unwrap(),
            Topology::Cluster(s(&["redis://a:1", "redis://b:2"]))
        );
        assert_eq!(
            parse_urls(&s(&["redis-sentinel://a:1,b:2/mymaster"])).unwrap(),
            Topology::Sentinel {
                sentinels: s(&["redis://a:1", "redis://b:2"]),
                master: "mymaster".into(),
                auth: None,
            }
        );
        assert_eq!(
            parse_urls(&s(&["redis-sentinel://u:p@a:1/m/"])).unwrap(),
            Topology::Sentinel {
                sentinels: s(&["redis://a:1"]),
                master: "m".into(),
                auth: Some("redis://u:p@a:1".into()),
            }
        );
        for bad in [
            "redis-sentinel://a:1",
            "redis-sentinel://a:1/",
            "redis-sentinel:///m",
            "redis-sentinel://a:1/m/x",
        ] {
            assert!(parse_urls(&s(&[bad])).is_err(), "{bad}");
        }
        assert!(parse_urls(&s(&["redis-sentinel://a:1/m", "redis://b:2"])).is_err());
        assert!(parse_urls(&[]).is_err());
        assert!(parse_urls(&s(&["redis-cluster://"])).is_err());
        assert_eq!(redact("redis://u:secret@h:1"), "redis://***@h:1");
    }
}
