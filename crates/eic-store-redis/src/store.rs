//! Pushed keys and token buckets in Redis.

use std::sync::{Arc, LazyLock};
use std::time::{SystemTime, UNIX_EPOCH};

use eic_store::{unix_millis, BucketRate, KeyTarget, PushedKey, Store, StoreError};
use redis::Script;

use crate::leases::{Leases, Take};
use crate::{instance_tag, RedisConnection, DEFAULT_OP_TIMEOUT};

/// How long past its expiry (by the pushing node's clock) a key set is kept
/// in Redis, to absorb clock skew between nodes and Redis. Reads re-check
/// expiry, so this never serves a key late.
const GRACE_MS: u64 = 30_000;

/// KEYS[1] the instance's key set; ARGV[1] member, ARGV[2] its expiry ms,
/// ARGV[3] the set's TTL ms (relative, so Redis's clock does not matter),
/// ARGV[4] members expiring before this ms are dropped.
static PUSH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4])
local ttl = tonumber(ARGV[3])
local current = redis.call('PTTL', KEYS[1])
if current ~= -2 and current < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
",
    )
});

/// KEYS[1] the bucket hash; ARGV[1] rate per second, ARGV[2] burst,
/// ARGV[3] the caller's now in ms, ARGV[4] how many tokens are wanted.
/// Returns how many were taken: as many as wanted while there are, else
/// all the whole ones left.
static TAKE_TOKEN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 't', 'ms')
local tokens = tonumber(state[1])
local last = tonumber(state[2])
if tokens == nil or last == nil then
  tokens = burst
  last = now
end
if now > last then
  tokens = math.min(burst, tokens + (now - last) / 1000 * rate)
  last = now
end
local taken = math.max(0, math.min(tonumber(ARGV[4]), math.floor(tokens)))
tokens = tokens - taken
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'ms', string.format('%.0f', last))
local refill_ms = 86400000
if rate > 0 then
  refill_ms = math.ceil((burst - tokens) / rate * 1000) + 1000
end
redis.call('PEXPIRE', KEYS[1], refill_ms)
return taken
",
    )
});

/// [`Store`] on Redis.
///
/// Layout: the keys for one target of one instance are a sorted set
/// `eic:{<instance>}:keys:<target>` scored by expiry ms, each member the
/// JSON of a [`PushedKey`] (unique by its request id). A push is one Lua
/// script (add, trim what expired long ago, extend the set's TTL) and
/// returns once Redis has answered it. A bucket is a hash
/// `eic:{bucket:<name>}` expiring when it would be full again; a busy one
/// is taken several tokens at a time (see [`crate::leases`]).
///
/// Durability of a 200: the key is in the memory of the Redis primary that
/// owns its slot. It survives a Redis restart only with AOF
/// (`appendonly yes`): with `appendfsync always` every acknowledged push
/// is on disk; with `everysec` (the default) about the last second of
/// pushes can be lost if the Redis machine or process crashes. Replication
/// is asynchronous, so a failover to a replica can lose pushes the old
/// primary acknowledged but had not yet replicated.
pub struct RedisStore {
    connection: RedisConnection,
    leases: Arc<Leases>,
}

impl RedisStore {
    /// `redis://host:port` (standalone; reconnects by itself),
    /// `redis-cluster://h1:p1,h2:p2` or several `redis://` URLs (cluster
    /// seed nodes), or `redis-sentinel://h1:p1,h2:p2/MASTER` (the master
    /// those Sentinels name, followed across failovers). Fails when Redis
    /// does not answer a PING within [`DEFAULT_OP_TIMEOUT`].
    pub async fn connect(urls: &[String]) -> Result<RedisStore, StoreError> {
        Ok(Self::with_connection(
            RedisConnection::connect(urls, DEFAULT_OP_TIMEOUT).await?,
        ))
    }

    pub fn with_connection(connection: RedisConnection) -> Self {
        Self {
            connection,
            leases: Arc::default(),
        }
    }

    /// The connection, to share with [`crate::RedisSessionLocks`].
    pub fn connection(&self) -> &RedisConnection {
        &self.connection
    }
}

fn target_part(target: &KeyTarget) -> String {
    match target {
        KeyTarget::OsUser(user) => format!("user:{user}"),
        KeyTarget::SerialPort(port) => format!("serial:{port}"),
    }
}

fn keys_key(instance_id: &str, target: &KeyTarget) -> String {
    format!("{}:keys:{}", instance_tag(instance_id), target_part(target))
}

fn bucket_key(name: &str) -> String {
    format!("eic:{{bucket:{name}}}")
}

/// Takes up to `wanted` tokens of bucket `name` in one round trip.
async fn take_tokens(
    connection: &RedisConnection,
    name: &str,
    rate: BucketRate,
    now_ms: u64,
    wanted: u32,
) -> Result<u32, StoreError> {
    let mut invocation = TAKE_TOKEN.prepare_invoke();
    invocation
        .key(bucket_key(name))
        .arg(rate.rate)
        .arg(rate.burst)
        .arg(now_ms)
        .arg(wanted);
    let mut c = connection.conn();
    let taken = connection
        .run("take_token", async move {
            invocation.invoke_async::<i64>(&mut c).await
        })
        .await?;
    Ok(u32::try_from(taken).unwrap_or(0).min(wanted))
}

#[async_trait::async_trait]
impl Store for RedisStore {
    async fn ready(&self) -> Result<(), StoreError> {
        self.connection.ping().await
    }

    async fn push(&self, key: PushedKey) -> Result<(), StoreError> {
        let member =
            serde_json::to_string(&key).map_err(|e| StoreError::backend("cannot encode key", e))?;
        let ttl_ms = key.expires_at_ms.saturating_sub(key.pushed_at_ms) + GRACE_MS;
        let trim_below = key.pushed_at_ms.saturating_sub(GRACE_MS);
        let mut invocation = PUSH.prepare_invoke();
        invocation
            .key(keys_key(&key.instance_id, &key.target))
            .arg(member)
            .arg(key.expires_at_ms)
            .arg(ttl_ms)
            .arg(trim_below);
        let mut c = self.connection.conn();
        self.connection
            .run("push", async move {
                invocation.invoke_async::<i64>(&mut c).await
            })
            .await?;
        Ok(())
    }

    async fn live_keys(
        &self,
        instance_id: &str,
        target: &KeyTarget,
        now: SystemTime,
    ) -> Result<Vec<PushedKey>, StoreError> {
        let now_ms = unix_millis(now.max(UNIX_EPOCH));
        let mut command = redis::cmd("ZRANGEBYSCORE");
        command
            .arg(keys_key(instance_id, target))
            .arg(format!("({now_ms}"))
            .arg("+inf");
        let mut c = self.connection.conn();
        let members: Vec<String> = self
            .connection
            .run(
                "live_keys",
                async move { command.query_async(&mut c).await },
            )
            .await?;
        let mut keys: Vec<PushedKey> = members
            .iter()
            .filter_map(|m| match serde_json::from_str::<PushedKey>(m) {
                Ok(k) => Some(k),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping undecodable key in Redis");
                    None
                }
            })
            // Checked again here: the score is only an index.
            .filter(|k| {
                k.expires_at_ms > now_ms && k.instance_id == instance_id && &k.target == target
            })
            .collect();
        keys.sort_by_key(|k| (k.pushed_at_ms, k.expires_at_ms));
        Ok(keys)
    }

    async fn take_token(
        &self,
        name: &str,
        rate: BucketRate,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let now_ms = unix_millis(now.max(UNIX_EPOCH));
        let wanted = match self.leases.take(name, rate, now_ms) {
            Take::Spent => return Ok(true),
            Take::SpentAndRefill(wanted) => {
                let (connection, leases, name) = (
                    self.connection.clone(),
                    self.leases.clone(),
                    name.to_owned(),
                );
                tokio::spawn(async move {
                    // A refill that fails leaves the lease to run out; the
                    // next request then asks, and reports the error.
                    let taken = take_tokens(&connection, &name, rate, now_ms, wanted)
                        .await
                        .unwrap_or(0);
                    leases.refilled(&name, taken, now_ms);
                });
                return Ok(true);
            }
            Take::Ask(wanted) => wanted,
        };
        let taken = take_tokens(&self.connection, name, rate, now_ms, wanted).await?;
        self.leases.granted(name, taken, now_ms);
        Ok(taken >= 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_instance_one_slot() {
        let a = keys_key("i-abc", &KeyTarget::OsUser("ec2-user".into()));
        let b = keys_key("i-abc", &KeyTarget::SerialPort(0));
        assert_eq!(a, "eic:{i-abc}:keys:user:ec2-user");
        assert_eq!(b, "eic:{i-abc}:keys:serial:0");
        assert_eq!(bucket_key("rl:x"), "eic:{bucket:rl:x}");
    }
}
