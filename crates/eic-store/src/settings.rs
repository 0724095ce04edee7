//! Runtime settings: small maps that commands change while servers run
//! (an account's serial console access, an instance's credential
//! generation) and that every server node reads on its request path.

use crate::StoreError;

/// One map of runtime settings: JSON values by key.
///
/// Reads are synchronous and do no round trip to a shared backend: an
/// implementation answers from a local view and states how stale that view
/// may be. When it has no view within that bound it fails, so callers
/// refuse the request instead of guessing (a revocation is never
/// forgotten by answering from an old copy).
#[async_trait::async_trait]
pub trait Settings: Send + Sync + 'static {
    /// The value under `key`, `None` when never set.
    fn get(&self, key: &str) -> Result<Option<serde_json::Value>, StoreError>;

    /// Sets `key` to `value` for every reader.
    async fn set(&self, key: &str, value: serde_json::Value) -> Result<(), StoreError>;

    /// Adds one to the integer under `key` (0 when never set) and returns
    /// the new value; concurrent increments are never lost.
    async fn increment(&self, key: &str) -> Result<u64, StoreError>;
}
