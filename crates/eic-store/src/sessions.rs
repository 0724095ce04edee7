//! One serial console session per instance port.
//!
//! A port is taken while a session holds its lease and for a teardown
//! period after the lease is dropped, as at AWS (30 s). The gateway takes
//! the lease when a session opens; the API asks [`SessionLocks::port_state`]
//! to answer `SerialConsoleSessionLimitExceededException`, so the teardown
//! belongs to the lock, not to the gateway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::StoreError;

/// The teardown period AWS applies after a session closes.
pub const AWS_TEARDOWN: Duration = Duration::from_secs(30);

/// What holds an instance port now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortState {
    /// Nothing: a session may open.
    Free,
    /// A session holds the lease.
    InSession,
    /// A session ended less than the teardown period ago.
    TearingDown,
}

/// Exclusive sessions per (instance, port).
///
/// Methods are async and fallible so that an implementation shared between
/// gateway nodes (Redis) fits; an error is reported to the client as the
/// console being unavailable, never as taken or free.
#[async_trait]
pub trait SessionLocks: Send + Sync {
    /// Takes the port if it is [`PortState::Free`].
    async fn try_acquire(
        &self,
        instance_id: &str,
        port: u8,
    ) -> Result<Option<SessionLease>, StoreError>;

    /// Whether a session holds the port, is tearing down, or neither.
    async fn port_state(&self, instance_id: &str, port: u8) -> Result<PortState, StoreError>;

    /// How long a port stays taken after its session ends.
    fn teardown(&self) -> Duration;
}

/// Proof of holding a port; dropping it starts the teardown period.
pub struct SessionLease {
    release: Option<Box<dyn FnOnce() + Send>>,
}

impl SessionLease {
    /// A lease that runs `release` once when dropped. A distributed
    /// implementation spawns its asynchronous release from there.
    pub fn new(release: impl FnOnce() + Send + 'static) -> Self {
        Self {
            release: Some(Box::new(release)),
        }
    }
}

impl Drop for SessionLease {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

impl std::fmt::Debug for SessionLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionLease")
    }
}

/// In-memory [`SessionLocks`] for a single node.
#[derive(Clone)]
pub struct LocalSessionLocks {
    teardown: Duration,
    slots: Arc<Mutex<HashMap<(String, u8), Slot>>>,
}

#[derive(Clone, Copy)]
enum Slot {
    /// Held by a live lease.
    Open,
    TearingDown(Instant),
}

impl LocalSessionLocks {
    /// Locks whose ports stay taken for `teardown` after a session closes.
    pub fn new(teardown: Duration) -> Self {
        Self {
            teardown,
            slots: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(String, u8), Slot>> {
        lock(&self.slots)
    }
}

impl Default for LocalSessionLocks {
    fn default() -> Self {
        Self::new(AWS_TEARDOWN)
    }
}

// A panic while holding the map cannot leave it inconsistent (every update
// is a single insert or remove), so a poisoned lock is still usable.
fn lock(slots: &Mutex<HashMap<(String, u8), Slot>>) -> MutexGuard<'_, HashMap<(String, u8), Slot>> {
    slots
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Forgets finished teardowns, so the map only holds taken ports.
fn expire(slots: &mut HashMap<(String, u8), Slot>, now: Instant) {
    slots.retain(|_, slot| !matches!(slot, Slot::TearingDown(until) if *until <= now));
}

#[async_trait]
impl SessionLocks for LocalSessionLocks {
    async fn try_acquire(
        &self,
        instance_id: &str,
        port: u8,
    ) -> Result<Option<SessionLease>, StoreError> {
        let mut slots = self.lock();
        expire(&mut slots, Instant::now());
        let key = (instance_id.to_string(), port);
        if slots.contains_key(&key) {
            return Ok(None);
        }
        slots.insert(key.clone(), Slot::Open);
        let shared = Arc::clone(&self.slots);
        let teardown = self.teardown;
        // Only this lease can hold the slot until its teardown expires, so
        // the release needs no check of who holds it.
        Ok(Some(SessionLease::new(move || {
            lock(&shared).insert(key, Slot::TearingDown(Instant::now() + teardown));
        })))
    }

    async fn port_state(&self, instance_id: &str, port: u8) -> Result<PortState, StoreError> {
        let mut slots = self.lock();
        expire(&mut slots, Instant::now());
        Ok(match slots.get(&(instance_id.to_string(), port)) {
            None => PortState::Free,
            Some(Slot::Open) => PortState::InSession,
            Some(Slot::TearingDown(_)) => PortState::TearingDown,
        })
    }

    fn teardown(&self) -> Duration {
        self.teardown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_lease_per_port_then_teardown() {
        let locks = LocalSessionLocks::new(Duration::from_millis(200));
        let state = || locks.port_state("i-1", 0);
        assert_eq!(state().await.expect("local"), PortState::Free);
        let lease = locks
            .try_acquire("i-1", 0)
            .await
            .expect("local")
            .expect("free");
        assert!(locks.try_acquire("i-1", 0).await.expect("local").is_none());
        assert!(locks.try_acquire("i-2", 0).await.expect("local").is_some());
        assert_eq!(state().await.expect("local"), PortState::InSession);
        drop(lease);
        assert_eq!(state().await.expect("local"), PortState::TearingDown);
        assert!(locks.try_acquire("i-1", 0).await.expect("local").is_none());
        let deadline = Instant::now() + Duration::from_secs(5);
        while state().await.expect("local") != PortState::Free {
            assert!(Instant::now() < deadline, "teardown never ended");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(locks.try_acquire("i-1", 0).await.expect("local").is_some());
        assert_eq!(locks.teardown(), Duration::from_millis(200));
    }
}
