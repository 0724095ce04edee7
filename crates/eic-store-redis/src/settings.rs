//! Runtime settings shared through Redis.
//!
//! A map is the hash `eic:{settings}:<map>` (JSON values by key) beside a
//! version token `eic:{settings}:<map>:version` that every change replaces
//! with a fresh random value, in the same script. Each node keeps a copy
//! and confirms it every [`SETTINGS_REFRESH`] with one script that returns the token
//! and, only when it differs from the copy's, the whole hash; so an idle map
//! costs one small round trip per node and interval, and reads cost none.
//!
//! A node answers from its copy only while the copy was confirmed by a
//! request sent less than [`SETTINGS_STALENESS`] ago; past that (Redis unreachable
//! or slow) reads fail, and the caller refuses the request. So a change is
//! in effect on every node at most [`SETTINGS_STALENESS`] after Redis acknowledged
//! it, or that node answers ServiceException.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock, Weak};
use std::time::{Duration, Instant};

use eic_store::{Settings, StoreError};
use redis::Script;
use serde_json::Value;

use crate::RedisConnection;

/// How often a node confirms its copy.
pub const SETTINGS_REFRESH: Duration = Duration::from_millis(250);
/// The oldest confirmation a node answers from.
pub const SETTINGS_STALENESS: Duration = Duration::from_secs(1);

/// KEYS[1] the hash, KEYS[2] the version; ARGV[1] the copy's version.
/// Returns `{version, '='}` when unchanged, else `{version, '*', k, v, …}`.
static LOAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local version = redis.call('GET', KEYS[2]) or ''
if version == ARGV[1] then
  return {version, '='}
end
local reply = {version, '*'}
for _, item in ipairs(redis.call('HGETALL', KEYS[1])) do
  reply[#reply + 1] = item
end
return reply
",
    )
});

/// KEYS[1] the hash, KEYS[2] the version; ARGV[1] key, ARGV[2] JSON value,
/// ARGV[3] the new version.
static SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
return 1
",
    )
});

/// KEYS[1] the hash, KEYS[2] the version; ARGV[1] key, ARGV[2] the new
/// version. Returns the incremented value.
static INCREMENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local value = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('SET', KEYS[2], ARGV[2])
return value
",
    )
});

/// One map of [`Settings`] in Redis, read from a local copy.
pub struct RedisSettings {
    connection: RedisConnection,
    hash: String,
    version: String,
    copy: RwLock<Copy>,
}

#[derive(Default)]
struct Copy {
    version: Option<String>,
    values: HashMap<String, String>,
    confirmed: Option<Instant>,
}

impl RedisSettings {
    /// The map `name`, with an empty, unconfirmed copy: reads fail until a
    /// [`RedisSettings::refresh`] succeeds.
    pub fn new(connection: RedisConnection, name: &str) -> Self {
        let hash = format!("eic:{{settings}}:{name}");
        RedisSettings {
            connection,
            version: format!("{hash}:version"),
            hash,
            copy: RwLock::new(Copy::default()),
        }
    }

    /// As [`RedisSettings::new`], with a task that refreshes the copy every
    /// [`SETTINGS_REFRESH`] for as long as the settings live.
    pub fn watched(connection: RedisConnection, name: &str) -> Arc<Self> {
        let settings = Arc::new(Self::new(connection, name));
        tokio::spawn(refresh_while_alive(Arc::downgrade(&settings)));
        settings
    }

    /// Confirms the copy against Redis, fetching the map if it changed.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let sent = Instant::now();
        let known = self
            .read_copy()
            .version
            .clone()
            // Never a version: a random token is never empty.
            .unwrap_or_else(|| "?".into());
        let mut invocation = LOAD.prepare_invoke();
        invocation.key(&self.hash).key(&self.version).arg(&known);
        let mut c = self.connection.conn();
        let reply: Vec<String> = self
            .connection
            .run("load settings", async move {
                invocation.invoke_async(&mut c).await
            })
            .await?;
        let mut items = reply.into_iter();
        let (Some(version), Some(marker)) = (items.next(), items.next()) else {
            return Err(StoreError::Unavailable(
                "redis load settings: short reply".into(),
            ));
        };
        let mut copy = self.copy.write().unwrap_or_else(|p| p.into_inner());
        if marker == "*" {
            let mut values = HashMap::new();
            while let (Some(key), Some(value)) = (items.next(), items.next()) {
                values.insert(key, value);
            }
            copy.values = values;
        }
        copy.version = Some(version);
        // The request's start: the copy is at least this fresh.
        if copy.confirmed.is_none_or(|at| at < sent) {
            copy.confirmed = Some(sent);
        }
        Ok(())
    }

    fn read_copy(&self) -> std::sync::RwLockReadGuard<'_, Copy> {
        self.copy.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads its own writes at once; the copy's version stays the old one,
    /// so the next refresh fetches the whole map again.
    fn remember(&self, key: &str, value: String) {
        let mut copy = self.copy.write().unwrap_or_else(|p| p.into_inner());
        copy.values.insert(key.to_owned(), value);
    }

    fn new_version() -> String {
        uuid::Uuid::new_v4().to_string()
    }
}

async fn refresh_while_alive(settings: Weak<RedisSettings>) {
    let mut tick = tokio::time::interval(SETTINGS_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let Some(settings) = settings.upgrade() else {
            return;
        };
        match settings.refresh().await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(map = %settings.hash, "runtime settings readable again");
            }
            Ok(()) => {}
            // Once per outage, not every interval.
            Err(e) if !failing => {
                failing = true;
                tracing::error!(map = %settings.hash, error = &e as &dyn std::error::Error, "runtime settings unreadable; refusing what needs them");
            }
            Err(_) => {}
        }
    }
}

#[async_trait::async_trait]
impl Settings for RedisSettings {
    fn get(&self, key: &str) -> Result<Option<Value>, StoreError> {
        let copy = self.read_copy();
        match copy.confirmed {
            Some(at) if at.elapsed() < SETTINGS_STALENESS => {}
            _ => {
                return Err(StoreError::Unavailable(format!(
                    "runtime settings {} not confirmed within {SETTINGS_STALENESS:?}",
                    self.hash
                )))
            }
        }
        copy.values
            .get(key)
            .map(|text| {
                serde_json::from_str(text)
                    .map_err(|e| StoreError::backend(format!("{} {key} is not JSON", self.hash), e))
            })
            .transpose()
    }

    async fn set(&self, key: &str, value: Value) -> Result<(), StoreError> {
        let mut invocation = SET.prepare_invoke();
        invocation
            .key(&self.hash)
            .key(&self.version)
            .arg(key)
            .arg(value.to_string())
            .arg(Self::new_version());
        let mut c = self.connection.conn();
        self.connection
            .run("set setting", async move {
                invocation.invoke_async::<i64>(&mut c).await
            })
            .await?;
        self.remember(key, value.to_string());
        Ok(())
    }

    async fn increment(&self, key: &str) -> Result<u64, StoreError> {
        let mut invocation = INCREMENT.prepare_invoke();
        invocation
            .key(&self.hash)
            .key(&self.version)
            .arg(key)
            .arg(Self::new_version());
        let mut c = self.connection.conn();
        let value: i64 = self
            .connection
            .run("increment setting", async move {
                invocation.invoke_async(&mut c).await
            })
            .await?;
        self.remember(key, value.to_string());
        u64::try_from(value)
            .map_err(|_| StoreError::Unavailable(format!("{} {key} is negative", self.hash)))
    }
}
