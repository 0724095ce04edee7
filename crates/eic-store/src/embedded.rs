//! The embedded default store: an in-memory index in front of the durable
//! append log ([`crate::log`]). In the shape of mini-redis's `Db`: a shared
//! handle around one mutex-guarded state, and a background task that purges
//! expired keys by walking an expiry-ordered map, so a purge costs time in
//! proportion to what expired, not to what is stored.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, UNIX_EPOCH};

use tokio::sync::Notify;

use crate::clock::{unix_millis, Clock};
use crate::log::Log;
use crate::{BucketRate, KeyTarget, PushedKey, Store, StoreError, TokenBuckets};

/// What an acknowledged push survives.
///
/// In the configuration it is named (`durability = "fsync"`, `"interval"`
/// or `"process-crash"`); a named `"interval"` is the default interval,
/// which the configuration's `sync_interval_ms` then sets
/// ([`Durability::with_sync_interval`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum Durability {
    /// Group-committed `fdatasync` before the acknowledgement: survives the
    /// process being killed and the machine losing power.
    Fsync,
    /// Written to the kernel before the acknowledgement, `fdatasync`ed in
    /// the background at most this long after: survives kill -9; a power
    /// loss or kernel crash can take back at most the last interval of
    /// acknowledged pushes.
    Interval(std::time::Duration),
    /// Written to the kernel before the acknowledgement, never synced by
    /// eic: survives kill -9, not a power loss or kernel crash.
    ProcessCrash,
}

/// The interval of [`Durability::default`].
pub const DEFAULT_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

impl Default for Durability {
    fn default() -> Self {
        Durability::Interval(DEFAULT_SYNC_INTERVAL)
    }
}

impl Durability {
    /// The same durability, syncing every `interval` (at least 1 ms) if it
    /// is [`Durability::Interval`].
    pub fn with_sync_interval(self, interval: std::time::Duration) -> Durability {
        match self {
            Durability::Interval(_) => {
                Durability::Interval(interval.max(std::time::Duration::from_millis(1)))
            }
            other => other,
        }
    }
}

impl TryFrom<String> for Durability {
    type Error = String;

    fn try_from(name: String) -> Result<Durability, String> {
        match name.as_str() {
            "fsync" => Ok(Durability::Fsync),
            "interval" => Ok(Durability::default()),
            "process-crash" => Ok(Durability::ProcessCrash),
            other => Err(format!(
                "unknown variant `{other}`, expected one of `fsync`, `interval`, `process-crash`"
            )),
        }
    }
}

/// The embedded store; cheap to share behind an `Arc`.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    log: Log,
    durability: Durability,
    /// Not durable: a restart refilling every bucket is harmless.
    buckets: TokenBuckets,
}

struct Shared {
    index: Mutex<Index>,
    clock: Arc<dyn Clock>,
    /// Wakes the purge task when a key expires sooner than any before it.
    purge_wakeup: Arc<Notify>,
}

#[derive(Default)]
struct Index {
    /// instance → target → live keys by push sequence. Nested so that a
    /// lookup by `&str` needs no allocation. A B-tree rather than a ring
    /// buffer: a buffer grows by copying every key it holds under the lock
    /// (hundreds of megabytes at a million keys on one target), the tree a
    /// node at a time; and the purge removes a key by its sequence even when
    /// concurrent pushes reached the index out of expiry order.
    by_instance: HashMap<String, HashMap<KeyTarget, BTreeMap<u64, PushedKey>>>,
    /// (expiry ms, sequence) → where the key is, for the purge.
    expirations: BTreeMap<(u64, u64), (String, KeyTarget)>,
    next_seq: u64,
}

impl Index {
    /// Returns true when this key is now the next to expire.
    fn insert(&mut self, key: PushedKey) -> bool {
        let seq = self.next_seq;
        self.next_seq += 1;
        let expiry = key.expires_at_ms;
        let earliest = self
            .expirations
            .keys()
            .next()
            .is_none_or(|(first, _)| expiry < *first);
        self.expirations
            .insert((expiry, seq), (key.instance_id.clone(), key.target.clone()));
        self.by_instance
            .entry(key.instance_id.clone())
            .or_default()
            .entry(key.target.clone())
            .or_default()
            .insert(seq, key);
        earliest
    }

    /// Removes every key expired at `now_ms`; returns how many, and when the
    /// next one expires.
    fn purge(&mut self, now_ms: u64) -> (usize, Option<u64>) {
        let mut removed = 0;
        while let Some(entry) = self.expirations.first_entry() {
            let (expiry, seq) = *entry.key();
            if expiry > now_ms {
                return (removed, Some(expiry));
            }
            let (instance, target) = entry.remove();
            if let Some(targets) = self.by_instance.get_mut(&instance) {
                if let Some(keys) = targets.get_mut(&target) {
                    keys.remove(&seq);
                    if keys.is_empty() {
                        targets.remove(&target);
                    }
                }
                if targets.is_empty() {
                    self.by_instance.remove(&instance);
                }
            }
            removed += 1;
        }
        (removed, None)
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir`, recovering every key that was
    /// acknowledged and is still live, and starts the purge task. Must be
    /// called within a Tokio runtime.
    pub fn open(
        dir: &Path,
        durability: Durability,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<EmbeddedStore> {
        let (log, recovered) = Log::open(dir, durability, clock.clone())?;
        let mut index = Index::default();
        let recovered_count = recovered.len();
        for key in recovered {
            index.insert(key);
        }
        tracing::info!(dir = %dir.display(), recovered = recovered_count, "embedded key store open");
        let shared = Arc::new(Shared {
            index: Mutex::new(index),
            clock,
            purge_wakeup: Arc::new(Notify::new()),
        });
        tokio::spawn(purge_task(
            Arc::downgrade(&shared),
            shared.purge_wakeup.clone(),
        ));
        Ok(EmbeddedStore {
            shared,
            log,
            durability,
            buckets: TokenBuckets::default(),
        })
    }

    /// Purges what has expired now; the background task does this on its
    /// own, this is for callers that move the clock themselves.
    pub fn purge_expired(&self) -> usize {
        self.shared.purge().0
    }

    /// How many keys the index holds, live or not yet purged.
    pub fn len(&self) -> usize {
        self.shared.lock().expirations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        // A panic while holding the lock cannot leave the index half-edited
        // in a way that serves a wrong key: reads re-check expiry.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn purge(&self) -> (usize, Option<u64>) {
        let now_ms = unix_millis(self.clock.now());
        self.lock().purge(now_ms)
    }
}

/// Holds the state only weakly, so dropping the store ends the task.
async fn purge_task(shared: Weak<Shared>, wakeup_signal: Arc<Notify>) {
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let (_, next) = strong.purge();
        let wakeup = wakeup_signal.notified();
        let wait = next.map(|at_ms| {
            let now_ms = unix_millis(strong.clock.now());
            Duration::from_millis(at_ms.saturating_sub(now_ms).max(1))
        });
        drop(strong);
        match wait {
            Some(wait) => {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = wakeup => {}
                }
            }
            None => wakeup.await,
        }
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.shared.purge_wakeup.notify_one();
    }
}

#[async_trait::async_trait]
impl Store for EmbeddedStore {
    async fn push(&self, key: PushedKey) -> Result<(), StoreError> {
        let payload =
            serde_json::to_vec(&key).map_err(|e| StoreError::backend("cannot encode key", e))?;
        let seq = self
            .log
            .append(&payload, key.expires_at_ms)
            .map_err(|e| StoreError::backend("key log write failed", e))?;
        if self.durability == Durability::Fsync {
            self.log
                .synced(seq)
                .await
                .map_err(|e| StoreError::backend("key log sync failed", e))?;
        }
        // Indexed only once durable: a reader never sees a key a crash
        // could take back.
        if self.shared.lock().insert(key) {
            self.shared.purge_wakeup.notify_one();
        }
        Ok(())
    }

    async fn live_keys(
        &self,
        instance_id: &str,
        target: &KeyTarget,
        now: std::time::SystemTime,
    ) -> Result<Vec<PushedKey>, StoreError> {
        let now_ms = unix_millis(now.max(UNIX_EPOCH));
        let index = self.shared.lock();
        Ok(index
            .by_instance
            .get(instance_id)
            .and_then(|targets| targets.get(target))
            .map(|keys| {
                keys.values()
                    .filter(|k| k.expires_at_ms > now_ms)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn take_token(
        &self,
        name: &str,
        rate: BucketRate,
        now: std::time::SystemTime,
    ) -> Result<bool, StoreError> {
        Ok(self.buckets.take(name, rate, now))
    }

    /// Ready while the log's syncer runs and its disk has room for pushes.
    async fn ready(&self) -> Result<(), StoreError> {
        if !self.log.is_running() {
            return Err(StoreError::Unavailable("key log syncer has stopped".into()));
        }
        let free = self
            .log
            .free_bytes()
            .map_err(|e| StoreError::backend("key log disk unreadable", e))?;
        if free < crate::disk::READY_MIN_FREE_BYTES {
            return Err(StoreError::Unavailable(format!(
                "key log disk full ({free} bytes free)"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;
    use std::time::SystemTime;

    fn key(n: u32, clock: &ManualClock, ttl_s: u64, user: &str) -> PushedKey {
        let now = unix_millis(clock.now());
        PushedKey {
            request_id: format!("req-{n}"),
            instance_id: "i-abcd1234".into(),
            target: KeyTarget::OsUser(user.into()),
            public_key: format!("ssh-ed25519 AAAA{n}"),
            fingerprint: format!("SHA256:{n}"),
            caller_arn: "arn:aws:iam::111122223333:user/admin".into(),
            pushed_at_ms: now,
            expires_at_ms: now + ttl_s * 1000,
        }
    }

    fn start() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(
            UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        ))
    }

    #[tokio::test]
    async fn keys_live_for_their_time_and_not_after() {
        let dir = tempfile::tempdir().unwrap();
        let clock = start();
        let store = EmbeddedStore::open(dir.path(), Durability::Fsync, clock.clone()).unwrap();
        let user = KeyTarget::OsUser("ec2-user".into());
        store.push(key(1, &clock, 60, "ec2-user")).await.unwrap();
        clock.advance(Duration::from_secs(30));
        store.push(key(2, &clock, 60, "ec2-user")).await.unwrap();
        store.push(key(3, &clock, 60, "root")).await.unwrap();
        let live = store
            .live_keys("i-abcd1234", &user, clock.now())
            .await
            .unwrap();
        assert_eq!(
            live.iter()
                .map(|k| k.request_id.as_str())
                .collect::<Vec<_>>(),
            ["req-1", "req-2"]
        );
        clock.advance(Duration::from_secs(30));
        // Exactly at expiry the first key is gone, even before any purge.
        let live = store
            .live_keys("i-abcd1234", &user, clock.now())
            .await
            .unwrap();
        assert_eq!(
            live.iter()
                .map(|k| k.request_id.as_str())
                .collect::<Vec<_>>(),
            ["req-2"]
        );
        assert!(store
            .live_keys("i-other", &user, clock.now())
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn purge_removes_only_what_expired() {
        let dir = tempfile::tempdir().unwrap();
        let clock = start();
        let store =
            EmbeddedStore::open(dir.path(), Durability::ProcessCrash, clock.clone()).unwrap();
        for n in 0..10 {
            store.push(key(n, &clock, 60, "ec2-user")).await.unwrap();
        }
        clock.advance(Duration::from_secs(10));
        for n in 10..15 {
            store.push(key(n, &clock, 60, "ec2-user")).await.unwrap();
        }
        assert_eq!(store.len(), 15);
        clock.advance(Duration::from_secs(50));
        assert_eq!(store.purge_expired(), 10);
        assert_eq!(store.len(), 5);
        clock.advance(Duration::from_secs(10));
        assert_eq!(store.purge_expired(), 5);
        assert!(store.is_empty());
    }

    #[test]
    fn purge_is_cheap_when_pushes_land_out_of_expiry_order() {
        // As under concurrency: a later expiry indexed before an earlier one.
        let mut index = Index::default();
        let clock = start();
        let n = 20_000u64;
        for i in 0..n {
            let mut k = key(i as u32, &clock, 60, "ec2-user");
            k.expires_at_ms += if i % 2 == 0 { 1 } else { 0 };
            index.insert(k);
        }
        let (removed, next) = index.purge(unix_millis(clock.now()) + 60_001);
        assert_eq!((removed, next), (n as usize, None));
        assert!(index.by_instance.is_empty());
    }

    #[tokio::test]
    async fn reopening_recovers_live_keys_only() {
        let dir = tempfile::tempdir().unwrap();
        let clock = start();
        {
            let store = EmbeddedStore::open(dir.path(), Durability::Fsync, clock.clone()).unwrap();
            store.push(key(1, &clock, 60, "ec2-user")).await.unwrap();
            clock.advance(Duration::from_secs(40));
            store.push(key(2, &clock, 60, "ec2-user")).await.unwrap();
        }
        clock.advance(Duration::from_secs(30));
        let store = EmbeddedStore::open(dir.path(), Durability::Fsync, clock.clone()).unwrap();
        let live = store
            .live_keys(
                "i-abcd1234",
                &KeyTarget::OsUser("ec2-user".into()),
                clock.now(),
            )
            .await
            .unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].request_id, "req-2");
    }

    #[tokio::test]
    async fn interval_durability_recovers_what_was_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let clock = start();
        let durability = Durability::Interval(Duration::from_millis(5));
        {
            let store = EmbeddedStore::open(dir.path(), durability, clock.clone()).unwrap();
            for n in 0..20 {
                store.push(key(n, &clock, 60, "ec2-user")).await.unwrap();
            }
            // Acknowledged bytes are in the file before any sync.
            let on_disk = crate::read_live_keys(dir.path(), clock.now()).unwrap();
            assert_eq!(on_disk.len(), 20);
        }
        let store = EmbeddedStore::open(dir.path(), durability, clock.clone()).unwrap();
        assert_eq!(store.len(), 20);
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let clock = start();
        {
            let store = EmbeddedStore::open(dir.path(), Durability::Fsync, clock.clone()).unwrap();
            store.push(key(1, &clock, 60, "ec2-user")).await.unwrap();
            store.push(key(2, &clock, 60, "ec2-user")).await.unwrap();
        }
        let segment = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let full = std::fs::read(&segment).unwrap();
        // As if the process died halfway through writing a third record.
        let mut torn = full.clone();
        torn.extend_from_slice(&full[..full.len() / 3]);
        std::fs::write(&segment, &torn).unwrap();
        let store = EmbeddedStore::open(dir.path(), Durability::Fsync, clock.clone()).unwrap();
        assert_eq!(store.len(), 2);
        assert_eq!(
            std::fs::metadata(&segment).unwrap().len(),
            full.len() as u64
        );
    }

    #[tokio::test]
    async fn expired_segments_are_deleted_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let clock = start();
        {
            let store = EmbeddedStore::open(dir.path(), Durability::Fsync, clock.clone()).unwrap();
            store.push(key(1, &clock, 60, "ec2-user")).await.unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        clock.advance(Duration::from_secs(121));
        let store = EmbeddedStore::open(dir.path(), Durability::Fsync, clock.clone()).unwrap();
        assert!(store.is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn concurrent_pushes_share_commits_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let clock = start();
        let store =
            Arc::new(EmbeddedStore::open(dir.path(), Durability::Fsync, clock.clone()).unwrap());
        let mut tasks = Vec::new();
        for n in 0..200 {
            let (store, clock) = (store.clone(), clock.clone());
            tasks.push(tokio::spawn(async move {
                store.push(key(n, &clock, 60, "u")).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let live = store
            .live_keys(
                "i-abcd1234",
                &KeyTarget::OsUser("u".into()),
                SystemTime::now().min(clock.now()),
            )
            .await
            .unwrap();
        assert_eq!(live.len(), 200);
    }
}
