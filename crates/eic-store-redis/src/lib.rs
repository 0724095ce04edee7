//! The Redis backend: pushed keys, throttling buckets, serial session
//! locks and runtime settings shared by several eic server nodes, on standalone Redis or Redis
//! Cluster.
//!
//! Every key of one instance carries the instance id as its hash tag
//! (`eic:{i-abc}:…`), so a multi-key operation on one instance stays in one
//! cluster slot. Every Redis error and every answer slower than the
//! operation timeout becomes [`StoreError::Unavailable`] (the API answers
//! `ServiceException`); the connection reconnects on its own, so service
//! returns when Redis does.
//!
//! What an acknowledged push survives is Redis's own durability: see
//! [`RedisStore`].

mod locks;
mod settings;
mod store;

use std::future::Future;
use std::time::Duration;

use eic_store::StoreError;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

pub use locks::RedisSessionLocks;
pub use settings::{RedisSettings, SETTINGS_REFRESH, SETTINGS_STALENESS};
pub use store::RedisStore;

/// How long one Redis operation may take before it counts as unavailable.
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(2);

/// A shared, self-reconnecting handle on standalone Redis or a cluster;
/// cheap to clone.
#[derive(Clone)]
pub struct RedisConnection {
    inner: Inner,
    op_timeout: Duration,
}

#[derive(Clone)]
enum Inner {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Inner {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Inner::Standalone(c) => c.req_packed_command(cmd),
            Inner::Cluster(c) => c.req_packed_command(cmd),
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
            Inner::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Inner::Standalone(c) => c.get_db(),
            Inner::Cluster(c) => c.get_db(),
        }
    }
}

/// Where the configured URLs point.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Topology {
    Standalone(String),
    Cluster(Vec<String>),
}

/// One `redis://` URL is standalone; `redis-cluster://h1:p1,h2:p2` or
/// several `redis://` URLs are a cluster's seed nodes.
fn parse_urls(urls: &[String]) -> Result<Topology, String> {
    let urls: Vec<&str> = urls
        .iter()
        .map(|u| u.trim())
        .filter(|u| !u.is_empty())
        .collect();
    match urls.as_slice() {
        [] => Err("no Redis URL configured".into()),
        [one] => match one.strip_prefix("redis-cluster://") {
            Some(rest) => cluster_seeds(rest).map(Topology::Cluster),
            None => Ok(Topology::Standalone((*one).to_string())),
        },
        several => {
            let mut seeds = Vec::new();
            for url in several {
                match url.strip_prefix("redis-cluster://") {
                    Some(rest) => seeds.extend(cluster_seeds(rest)?),
                    None => seeds.push((*url).to_string()),
                }
            }
            Ok(Topology::Cluster(seeds))
        }
    }
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
    /// Connects to standalone Redis or a cluster (see the URL forms on
    /// [`RedisStore::connect`]) and checks it answers; every later
    /// operation fails as unavailable after `op_timeout`.
    pub async fn connect(urls: &[String], op_timeout: Duration) -> Result<Self, StoreError> {
        let topology = parse_urls(urls).map_err(StoreError::Unavailable)?;
        let per_attempt = op_timeout.min(Duration::from_secs(1));
        let inner = match &topology {
            Topology::Standalone(url) => {
                let client = redis::Client::open(url.as_str()).map_err(|e| {
                    StoreError::Unavailable(format!("bad Redis URL {}: {e}", redact(url)))
                })?;
                // Reconnects in the background after an I/O error; few,
                // short retries per attempt so a call waiting on a
                // reconnection fails within the operation timeout and the
                // next call starts a fresh attempt.
                let config = ConnectionManagerConfig::new()
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500))
                    .set_connection_timeout(Some(per_attempt))
                    .set_response_timeout(Some(op_timeout));
                let manager = ConnectionManager::new_lazy_with_config(client, config)
                    .map_err(|e| StoreError::Unavailable(format!("redis: {e}")))?;
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
                    .map_err(|e| StoreError::Unavailable(format!("bad Redis cluster URLs: {e}")))?;
                let connecting = client.get_async_connection();
                match tokio::time::timeout(op_timeout, connecting).await {
                    Ok(Ok(connection)) => Inner::Cluster(connection),
                    Ok(Err(e)) => {
                        return Err(StoreError::Unavailable(format!("redis cluster: {e}")))
                    }
                    Err(_) => {
                        return Err(StoreError::Unavailable(format!(
                            "redis cluster: no answer within {op_timeout:?}"
                        )))
                    }
                }
            }
        };
        let connection = RedisConnection { inner, op_timeout };
        let mut c = connection.conn();
        connection
            .run("PING", async move {
                redis::cmd("PING").query_async::<String>(&mut c).await
            })
            .await
            .map_err(StoreError::Unavailable)?;
        tracing::info!(
            topology = match &topology {
                Topology::Standalone(_) => "standalone",
                Topology::Cluster(_) => "cluster",
            },
            "connected to Redis"
        );
        Ok(connection)
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

    /// Runs one operation under the timeout; any failure is a message.
    async fn run<T>(
        &self,
        what: &str,
        operation: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(self.op_timeout, operation).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(format!("redis {what}: {e}")),
            Err(_) => Err(format!(
                "redis {what}: no answer within {:?}",
                self.op_timeout
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
        assert!(parse_urls(&[]).is_err());
        assert!(parse_urls(&s(&["redis-cluster://"])).is_err());
        assert_eq!(redact("redis://u:secret@h:1"), "redis://***@h:1");
    }
}
