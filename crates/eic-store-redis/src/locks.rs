//! Serial session locks shared by gateway nodes through Redis.
//!
//! `eic:{<instance>}:serial:<port>` holds the lease holder's unique token
//! (`lease:<uuid>`) with a short TTL (the lease), renewed by a task while
//! the [`SessionLease`] lives. Dropping the lease replaces the token by a
//! teardown marker (`teardown:lease:<uuid>`) that expires after the
//! teardown period, so the port stays taken for it; the value tells the two
//! apart ([`PortState`]). A node that dies stops renewing and its lock lapses
//! after one lease. Every change is compare-and-set on the token, so a
//! lease that lapsed and was taken by another node is never touched.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use eic_store::{PortState, SessionLease, SessionLocks, StoreError};
use redis::Script;
use tokio::sync::oneshot;

use crate::{instance_tag, RedisConnection};

/// KEYS[1] lock; ARGV[1] token, ARGV[2] lease ms. 1 when still ours.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
",
    )
});

/// KEYS[1] lock; ARGV[1] token, ARGV[2] teardown marker, ARGV[3] teardown
/// ms. 1 when it was ours.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if tonumber(ARGV[3]) > 0 then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  else
    redis.call('DEL', KEYS[1])
  end
  return 1
end
return 0
",
    )
});

/// [`SessionLocks`] shared through Redis.
#[derive(Clone)]
pub struct RedisSessionLocks {
    connection: RedisConnection,
    teardown: Duration,
    lease: Duration,
}

impl RedisSessionLocks {
    /// Ports stay busy for `teardown` after a session closes; a lock not
    /// renewed (its node died) lapses after `lease` (at least 3 ms).
    pub fn new(connection: RedisConnection, teardown: Duration, lease: Duration) -> Self {
        Self {
            connection,
            teardown,
            lease: lease.max(Duration::from_millis(3)),
        }
    }
}

/// The lock's value while a session holds it: `lease:<uuid>`.
const LEASE_PREFIX: &str = "lease:";
/// The lock's value during the teardown: `teardown:` and the lease token.
const TEARDOWN_PREFIX: &str = "teardown:";

fn lock_key(instance_id: &str, port: u8) -> String {
    format!("{}:serial:{port}", instance_tag(instance_id))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl SessionLocks for RedisSessionLocks {
    async fn try_acquire(
        &self,
        instance_id: &str,
        port: u8,
    ) -> Result<Option<SessionLease>, StoreError> {
        let key = lock_key(instance_id, port);
        let token = format!("{LEASE_PREFIX}{}", uuid::Uuid::new_v4());
        let mut command = redis::cmd("SET");
        command
            .arg(&key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(millis(self.lease));
        let mut c = self.connection.conn();
        let set: Option<String> = self
            .connection
            .run("lock", async move { command.query_async(&mut c).await })
            .await?;
        if set.is_none() {
            return Ok(None);
        }
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(hold(self.clone(), key, token, stopped));
        Ok(Some(SessionLease::new(move || {
            // Whether sent or dropped unsent, the task sees it and releases.
            let _ = stop.send(());
        })))
    }

    async fn port_state(&self, instance_id: &str, port: u8) -> Result<PortState, StoreError> {
        let mut command = redis::cmd("GET");
        command.arg(lock_key(instance_id, port));
        let mut c = self.connection.conn();
        let value: Option<String> = self
            .connection
            .run(
                "port_state",
                async move { command.query_async(&mut c).await },
            )
            .await?;
        Ok(match value {
            None => PortState::Free,
            Some(v) if v.starts_with(TEARDOWN_PREFIX) => PortState::TearingDown,
            // A lease token; anything else there also keeps SET NX from
            // taking the port, so it counts as a session.
            Some(_) => PortState::InSession,
        })
    }

    fn teardown(&self) -> Duration {
        self.teardown
    }
}

/// Renews the lock every third of the lease until the lease is dropped,
/// then starts the teardown.
async fn hold(
    locks: RedisSessionLocks,
    key: String,
    token: String,
    mut stopped: oneshot::Receiver<()>,
) {
    let every = locks.lease / 3;
    let lease_ms = millis(locks.lease);
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            _ = tokio::time::sleep(every) => {}
        }
        let mut invocation = RENEW.prepare_invoke();
        invocation.key(&key).arg(&token).arg(lease_ms);
        let mut c = locks.connection.conn();
        match locks
            .connection
            .run("renew lock", async move {
                invocation.invoke_async::<i64>(&mut c).await
            })
            .await
        {
            Ok(1) => {}
            Ok(_) => {
                // Lapsed (Redis unreachable for a whole lease, or flushed):
                // another node may hold it now; nothing more to do.
                tracing::warn!(key, "serial session lock lost; not renewing");
                return;
            }
            Err(e) => tracing::warn!(
                key,
                error = &e as &dyn std::error::Error,
                "cannot renew serial session lock"
            ),
        }
    }
    let teardown_ms = millis(locks.teardown);
    let marker = format!("{TEARDOWN_PREFIX}{token}");
    // One retry: if Redis stays away, the lock lapses after its lease.
    for attempt in 0..2 {
        let mut invocation = RELEASE.prepare_invoke();
        invocation
            .key(&key)
            .arg(&token)
            .arg(&marker)
            .arg(teardown_ms);
        let mut c = locks.connection.conn();
        match locks
            .connection
            .run("release lock", async move {
                invocation.invoke_async::<i64>(&mut c).await
            })
            .await
        {
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(
                    key,
                    attempt,
                    error = &e as &dyn std::error::Error,
                    "cannot start serial session teardown"
                )
            }
        }
    }
}
