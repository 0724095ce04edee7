//! Where the browser console's signed-in sessions live: this node's memory
//! on the embedded store, Redis when nodes share one (so a session signed
//! in on one node is valid, and signed out, on every node). A session is
//! found by a digest of its cookie, never by the cookie itself, and its
//! record is opaque here (the console encodes it).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::StoreError;

/// The SHA-256 of a session's cookie value.
pub type SessionDigest = [u8; 32];

#[async_trait]
pub trait ConsoleSessions: Send + Sync {
    /// Keeps `record` under `digest` for `ttl`; false when there is no
    /// room (the memory table is full of live sessions).
    async fn put(
        &self,
        digest: &SessionDigest,
        record: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// The record, while its lifetime lasts.
    async fn get(&self, digest: &SessionDigest) -> Result<Option<Vec<u8>>, StoreError>;

    /// Ends the session; true if there was one.
    async fn remove(&self, digest: &SessionDigest) -> Result<bool, StoreError>;
}

/// [`ConsoleSessions`] in this process's memory, at most `max` at once
/// (expired ones are swept before a new one is refused).
pub struct MemoryConsoleSessions {
    table: Mutex<HashMap<SessionDigest, (Vec<u8>, Instant)>>,
    max: usize,
}

impl MemoryConsoleSessions {
    pub fn new(max: usize) -> Self {
        MemoryConsoleSessions {
            table: Mutex::default(),
            max,
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<SessionDigest, (Vec<u8>, Instant)>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ConsoleSessions for MemoryConsoleSessions {
    async fn put(
        &self,
        digest: &SessionDigest,
        record: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut table = self.table();
        if table.len() >= self.max && !table.contains_key(digest) {
            table.retain(|_, (_, expires)| *expires > now);
            if table.len() >= self.max {
                return Ok(false);
            }
        }
        table.insert(*digest, (record, now + ttl));
        Ok(true)
    }

    async fn get(&self, digest: &SessionDigest) -> Result<Option<Vec<u8>>, StoreError> {
        let mut table = self.table();
        match table.get(digest) {
            Some((record, expires)) if *expires > Instant::now() => Ok(Some(record.clone())),
            Some(_) => {
                table.remove(digest);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn remove(&self, digest: &SessionDigest) -> Result<bool, StoreError> {
        Ok(self.table().remove(digest).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_session_lives_until_removed_or_expired_and_the_table_is_bounded() {
        let sessions = MemoryConsoleSessions::new(2);
        let hour = Duration::from_secs(3600);
        assert!(sessions.put(&[1; 32], b"one".to_vec(), hour).await.unwrap());
        assert!(sessions
            .put(&[2; 32], b"two".to_vec(), Duration::ZERO)
            .await
            .unwrap());
        assert_eq!(
            sessions.get(&[1; 32]).await.unwrap().as_deref(),
            Some(&b"one"[..])
        );
        assert_eq!(sessions.get(&[2; 32]).await.unwrap(), None, "expired");
        assert!(sessions.put(&[2; 32], b"two".to_vec(), hour).await.unwrap());
        // Full of live sessions: refused, until one ends.
        assert!(!sessions
            .put(&[3; 32], b"three".to_vec(), hour)
            .await
            .unwrap());
        assert!(sessions.remove(&[2; 32]).await.unwrap());
        assert!(!sessions.remove(&[2; 32]).await.unwrap());
        assert!(sessions
            .put(&[3; 32], b"three".to_vec(), hour)
            .await
            .unwrap());
        assert_eq!(sessions.get(&[2; 32]).await.unwrap(), None);
    }
}
