//! The browser console's sessions shared by every node on one Redis:
//! `eic:{console-session:<hex digest>}` holds the record with the
//! session's lifetime as its TTL. Only the digest of a cookie is a key, so
//! what Redis holds cannot be replayed as a cookie.

use std::fmt::Write;
use std::time::Duration;

use async_trait::async_trait;
use eic_store::{ConsoleSessions, SessionDigest, StoreError};

use crate::RedisConnection;

#[derive(Clone)]
pub struct RedisConsoleSessions {
    connection: RedisConnection,
}

impl RedisConsoleSessions {
    pub fn new(connection: RedisConnection) -> Self {
        RedisConsoleSessions { connection }
    }
}

fn session_key(digest: &SessionDigest) -> String {
    let mut key = String::from("eic:{console-session:");
    for byte in digest {
        let _ = write!(key, "{byte:02x}");
    }
    key.push('}');
    key
}

#[async_trait]
impl ConsoleSessions for RedisConsoleSessions {
    async fn put(
        &self,
        digest: &SessionDigest,
        record: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut command = redis::cmd("SET");
        command
            .arg(session_key(digest))
            .arg(record)
            .arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        let mut c = self.connection.conn();
        self.connection
            .run("console session put", async move {
                command.query_async::<()>(&mut c).await
            })
            .await?;
        Ok(true)
    }

    async fn get(&self, digest: &SessionDigest) -> Result<Option<Vec<u8>>, StoreError> {
        let mut command = redis::cmd("GET");
        command.arg(session_key(digest));
        let mut c = self.connection.conn();
        self.connection
            .run("console session get", async move {
                command.query_async::<Option<Vec<u8>>>(&mut c).await
            })
            .await
    }

    async fn remove(&self, digest: &SessionDigest) -> Result<bool, StoreError> {
        let mut command = redis::cmd("DEL");
        command.arg(session_key(digest));
        let mut c = self.connection.conn();
        let removed = self
            .connection
            .run("console session remove", async move {
                command.query_async::<i64>(&mut c).await
            })
            .await?;
        Ok(removed > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_keyed_by_its_digest_in_hex_in_a_slot_of_its_own() {
        let mut digest = [0u8; 32];
        digest[0] = 0xab;
        digest[31] = 0x01;
        let key = session_key(&digest);
        assert_eq!(key.len(), "eic:{console-session:}".len() + 64);
        assert!(key.starts_with("eic:{console-session:ab00"));
        assert!(key.ends_with("0001}"));
    }
}
