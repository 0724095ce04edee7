//! Where pushed keys live for their 60 seconds.
//!
//! [`Store`] is the state every server role shares: pushed keys (written
//! by the API, read by the instance and serial sides) and throttling token
//! buckets. [`EmbeddedStore`] is the default: an in-memory index in front
//! of a durable append log. A Redis backend implements the same trait for
//! several server nodes.
//!
//! Expiry is decided on every read against the injected [`Clock`], so a key
//! is never served after its time however late the background purge runs;
//! the purge only reclaims memory and disk.
//!
//! [`Settings`] are the runtime settings commands change and every node
//! reads: a file in the data dir for one node, a Redis hash for several.
//!
//! [`Fleet`] holds the enrolled instances and their join tokens:
//! [`EmbeddedFleet`] in a log in the data dir for one node.
//!
//! [`SessionLocks`] hold one serial console session per instance port:
//! [`LocalSessionLocks`] in memory for one node, a Redis lease for several.
//!
//! The traits are here, beside the embedded implementations, so a backend
//! (`eic-store-redis`) implements them without depending on the roles that
//! use them.

mod buckets;
mod clock;
mod console_sessions;
pub mod disk;
mod embedded;
pub mod fleet;
mod log;
mod sessions;
mod settings;

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

pub use buckets::TokenBuckets;
pub use clock::{unix_millis, Clock, ManualClock, SystemClock};
pub use console_sessions::{ConsoleSessions, MemoryConsoleSessions, SessionDigest};
pub use eic_wire::KeyTarget;
pub use embedded::{Durability, EmbeddedStore, DEFAULT_SYNC_INTERVAL};
pub use fleet::{EmbeddedFleet, Fleet};
pub use sessions::{LocalSessionLocks, PortState, SessionLease, SessionLocks, AWS_TEARDOWN};
pub use settings::Settings;

/// One accepted push, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedKey {
    pub request_id: String,
    pub instance_id: String,
    pub target: KeyTarget,
    /// The normalized `type base64 [comment]` line.
    pub public_key: String,
    /// `SHA256:…` of the key.
    pub fingerprint: String,
    /// The ARN of the principal that pushed it.
    pub caller_arn: String,
    pub pushed_at_ms: u64,
    pub expires_at_ms: u64,
}

impl PushedKey {
    pub fn is_live_at(&self, now: SystemTime) -> bool {
        self.expires_at_ms > unix_millis(now)
    }
}

/// The error a backend's operation failed with, kept as it is.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why the store could not do what was asked; nothing was stored. Either
/// way the API answers ServiceException and the readiness endpoint 503.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An operation of the backend failed or did not answer in time:
    /// `what` names the operation, `source` is the backend's own error.
    #[error("key store unavailable: {what}")]
    Backend {
        what: String,
        #[source]
        source: BoxError,
    },
    /// The store cannot answer for a reason of its own: its state is not
    /// fresh enough, it is full or stopped, or it holds a value that is not
    /// what it should be.
    #[error("key store unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// `what` failed with the backend's `source`.
    pub fn backend(what: impl Into<String>, source: impl Into<BoxError>) -> StoreError {
        StoreError::Backend {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// The live keys an embedded store in `dir` holds at `now`, read without
/// modifying anything (safe while a server runs there).
pub fn read_live_keys(dir: &std::path::Path, now: SystemTime) -> std::io::Result<Vec<PushedKey>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    log::read_live(dir, unix_millis(now))
}

/// A token bucket's shape: `rate` tokens per second, at most `burst`; in
/// the configuration, `{ rate = 50.0, burst = 100.0 }`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketRate {
    /// Requests per second, sustained.
    pub rate: f64,
    /// Requests that may arrive at once.
    pub burst: f64,
}

/// The store every server role shares.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores `key`; returns only once it is as durable as the backend
    /// promises (ARCHITECTURE.md), so a 200 is never sent for a key that a
    /// crash could lose.
    async fn push(&self, key: PushedKey) -> Result<(), StoreError>;

    /// The keys for `target` on `instance_id` that are live at `now`, oldest
    /// first.
    async fn live_keys(
        &self,
        instance_id: &str,
        target: &KeyTarget,
        now: SystemTime,
    ) -> Result<Vec<PushedKey>, StoreError>;

    /// Whether the store can take pushes now (the readiness endpoint).
    async fn ready(&self) -> Result<(), StoreError>;

    /// Takes one token from bucket `name` at `now`; false when it is empty.
    async fn take_token(
        &self,
        name: &str,
        rate: BucketRate,
        now: SystemTime,
    ) -> Result<bool, StoreError>;
}
