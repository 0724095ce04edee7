//! The embedded store's durable append log, with group commit.
//!
//! Written by hand rather than on an embedded database: every record dies
//! 60 seconds after it is written, so the whole job is "append, make durable,
//! forget in bulk". Records go to time-windowed segment files; a segment is
//! deleted as one file once its window has passed, so expiry costs nothing
//! per record on disk, and there is no compaction to run or tune.
//!
//! A push writes its record itself, with one `write` under the log's mutex,
//! before it is acknowledged: once `write` returns the bytes are the
//! kernel's, so kill -9 cannot take them back. Handing each record to a
//! writer thread instead cost two cross-thread wake-ups per push, more than
//! the write itself (BENCHMARKS.md). Making records survive power loss is
//! the syncer thread's job: it `fdatasync`s whatever was written since its
//! last sync, outside the mutex, so writers never wait for the disk. With
//! `Durability::Fsync` a push then waits for the sync that covers its record;
//! every push written while one sync runs shares the next (group commit).
//!
//! Record format: `len: u32 LE | crc32: u32 LE | payload (JSON)`. A torn or
//! corrupt record ends its segment on recovery; it can only be one that was
//! never acknowledged, since acknowledgement follows the write.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::clock::{unix_millis, Clock};
use crate::embedded::Durability;
use crate::PushedKey;

/// How long a segment accepts records, counted from the first record's
/// expiry. The segment is deleted once its window end has passed.
const SEGMENT_WINDOW_MS: u64 = 60_000;
/// No valid record is anywhere near this; a larger length is corruption.
const MAX_RECORD_BYTES: usize = 256 * 1024;
/// How often an idle syncer looks for segments to delete.
const IDLE_TICK: Duration = Duration::from_secs(1);
const SEGMENT_SUFFIX: &str = ".seg";

/// Records are numbered in write order across segments; a sync covers every
/// record up to the number it publishes.
#[derive(Clone, Copy, Default, Debug)]
struct Progress {
    /// Every record up to this one is on stable storage.
    synced: u64,
    /// Every record after `synced` and up to this one was cut from its
    /// segment after a failed sync: refused, never to be recovered.
    failed: u64,
}

pub(crate) struct Log {
    shared: Arc<Shared>,
    syncer: Option<JoinHandle<()>>,
}

struct Shared {
    dir: PathBuf,
    durability: Durability,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    /// Wakes an idle syncer: there is something to sync, or it must stop.
    wake_syncer: Condvar,
    progress: watch::Sender<Progress>,
}

struct State {
    current: Option<Segment>,
    closed: Vec<(u64, PathBuf)>,
    /// The number of the last record written.
    written: u64,
    /// Records were written after the last sync, since this instant.
    unsynced_since: Option<Instant>,
    /// The syncer waits for work; a writer must wake it.
    syncer_idle: bool,
    stopping: bool,
}

struct Segment {
    /// Shared with the syncer, which syncs it without holding the mutex.
    file: Arc<File>,
    /// Bytes written and kept so far: where a failed write is cut back to.
    len: u64,
    /// Bytes known to be on stable storage: where a failed sync cuts back to.
    synced_len: u64,
    window_end_ms: u64,
    path: PathBuf,
}

impl Log {
    /// Opens the log in `dir`, returning it with every record that is still
    /// live. Segments whose window has passed are deleted unread.
    pub fn open(
        dir: &Path,
        durability: Durability,
        clock: Arc<dyn Clock>,
    ) -> io::Result<(Log, Vec<PushedKey>)> {
        // Keys and who pushed them: owner-only, like the rest of the data dir.
        crate::disk::create_private_dir(dir)?;
        let now_ms = unix_millis(clock.now());
        let mut closed = Vec::new();
        let mut live = Vec::new();
        for (window_end, path) in list_segments(dir)? {
            if window_end <= now_ms {
                fs::remove_file(&path)?;
                continue;
            }
            recover_segment(&path, now_ms, &mut live, true)?;
            closed.push((window_end, path));
        }
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            durability,
            clock,
            state: Mutex::new(State {
                current: None,
                closed,
                written: 0,
                unsynced_since: None,
                syncer_idle: false,
                stopping: false,
            }),
            wake_syncer: Condvar::new(),
            progress: watch::Sender::new(Progress::default()),
        });
        let syncer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("eic-store-sync".into())
                .spawn(move || shared.run_syncer())?
        };
        Ok((
            Log {
                shared,
                syncer: Some(syncer),
            },
            live,
        ))
    }

    /// Free bytes on the log's filesystem.
    pub fn free_bytes(&self) -> io::Result<u64> {
        crate::disk::free_bytes(File::open(&self.shared.dir)?)
    }

    pub fn is_running(&self) -> bool {
        self.syncer.as_ref().is_some_and(|s| !s.is_finished())
    }

    /// Writes one record and returns its number. When this returns `Ok` the
    /// record survives the process being killed; a record that could not be
    /// written completely has been cut back out of its segment.
    pub fn append(&self, payload: &[u8], expires_at_ms: u64) -> io::Result<u64> {
        let mut record = Vec::with_capacity(8 + payload.len());
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        record.extend_from_slice(payload);
        let shared = &*self.shared;
        let mut state = shared.lock();
        if state.stopping {
            return Err(io::Error::other("the key log is closing"));
        }
        if state
            .current
            .as_ref()
            .is_none_or(|s| expires_at_ms > s.window_end_ms)
        {
            shared.rotate(&mut state, expires_at_ms)?;
        }
        let segment = state.current.as_mut().expect("rotate opened a segment");
        if let Err(e) = (&*segment.file).write_all(&record) {
            let _ = segment.file.set_len(segment.len);
            tracing::error!(error = %e, path = %segment.path.display(), "key log write failed; push refused");
            shared.leave_current(&mut state);
            return Err(e);
        }
        segment.len += record.len() as u64;
        state.written += 1;
        let seq = state.written;
        if shared.durability != Durability::ProcessCrash {
            state.unsynced_since.get_or_insert_with(Instant::now);
            if state.syncer_idle {
                state.syncer_idle = false;
                shared.wake_syncer.notify_one();
            }
        }
        Ok(seq)
    }

    /// Waits until record `seq` is on stable storage (`Durability::Fsync`).
    pub async fn synced(&self, seq: u64) -> io::Result<()> {
        let mut progress = self.shared.progress.subscribe();
        let reached = progress
            .wait_for(|p| p.synced >= seq || p.failed >= seq)
            .await
            .map(|p| *p)
            .map_err(|_| io::Error::other("the key log syncer has stopped"))?;
        if reached.synced >= seq {
            Ok(())
        } else {
            Err(io::Error::other("fdatasync of the key log failed"))
        }
    }
}

impl Drop for Log {
    /// The syncer syncs what was written, then stops; joining means nothing
    /// acknowledged is left unsynced.
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.wake_syncer.notify_one();
        if let Some(syncer) = self.syncer.take() {
            let _ = syncer.join();
        }
    }
}

fn close_current(state: &mut State) {
    if let Some(old) = state.current.take() {
        state.closed.push((old.window_end_ms, old.path));
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every edit of the state is complete before anything can panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn run_syncer(&self) {
        // However the syncer ends, a push still waiting for a sync is
        // refused rather than left waiting for one that will never come.
        struct RefuseWaiters<'a>(&'a watch::Sender<Progress>);
        impl Drop for RefuseWaiters<'_> {
            fn drop(&mut self) {
                self.0.send_modify(|p| p.failed = u64::MAX);
            }
        }
        let _refuse_waiters = RefuseWaiters(&self.progress);
        let mut state = self.lock();
        let mut last_cleanup = Instant::now();
        loop {
            if state.stopping {
                state = self.sync_current(state);
                drop(self.delete_expired_segments(state));
                return;
            }
            if last_cleanup.elapsed() >= IDLE_TICK {
                state = self.delete_expired_segments(state);
                last_cleanup = Instant::now();
            }
            let due = match (self.durability, state.unsynced_since) {
                (_, None) | (Durability::ProcessCrash, _) => None,
                (Durability::Fsync, Some(_)) => Some(Duration::ZERO),
                (Durability::Interval(interval), Some(since)) => {
                    Some(interval.saturating_sub(since.elapsed()))
                }
            };
            state = match due {
                Some(Duration::ZERO) => self.sync_current(state),
                Some(wait) => self.wait(state, wait),
                None => {
                    state.syncer_idle = true;
                    self.wait(state, IDLE_TICK)
                }
            };
        }
    }

    fn wait<'a>(&self, state: MutexGuard<'a, State>, timeout: Duration) -> MutexGuard<'a, State> {
        let (mut state, _) = self
            .wake_syncer
            .wait_timeout(state, timeout)
            .unwrap_or_else(|p| p.into_inner());
        state.syncer_idle = false;
        state
    }

    /// Syncs what was written since the last sync, without holding the
    /// mutex while the disk works, and publishes how far it got.
    fn sync_current<'a>(&'a self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        if state.unsynced_since.take().is_none() {
            return state;
        }
        let upto = state.written;
        // Leaving a segment syncs it, so unsynced bytes are always in the
        // current one.
        let Some(segment) = &state.current else {
            return state;
        };
        let (file, len) = (segment.file.clone(), segment.len);
        drop(state);
        let result = file.sync_data();
        let mut state = self.lock();
        let still_current = state
            .current
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(&s.file, &file));
        match result {
            Ok(()) => {
                if let Some(segment) = state.current.as_mut().filter(|_| still_current) {
                    segment.synced_len = segment.synced_len.max(len);
                }
                self.progress.send_modify(|p| p.synced = p.synced.max(upto));
            }
            // Leaving the segment synced it again and published.
            Err(_) if !still_current => {}
            Err(e) => self.sync_failed(&mut state, &e),
        }
        state
    }

    /// A failed `fdatasync` cannot be retried: the kernel may have dropped
    /// the dirty pages. With `Fsync`, nothing unsynced was acknowledged yet,
    /// so it is cut from the segment and refused. Otherwise those pushes
    /// were answered already; the failure is logged loudly. Either way the
    /// next push starts a fresh segment.
    fn sync_failed(&self, state: &mut State, error: &io::Error) {
        if self.durability == Durability::Fsync {
            if let Some(segment) = &state.current {
                let _ = segment.file.set_len(segment.synced_len);
            }
            let written = state.written;
            self.progress.send_modify(|p| p.failed = written);
            tracing::error!(%error, "fdatasync of the key log failed; the pushes waiting on it are refused");
        } else {
            tracing::error!(%error, "background fdatasync of the key log failed; recent pushes may not survive a power loss");
        }
        state.unsynced_since = None;
        close_current(state);
    }

    /// Closes the current segment, syncing its unsynced tail first, so the
    /// syncer only ever has the current segment to look after. Runs under
    /// the mutex: once per segment window, or after a failed write.
    fn leave_current(&self, state: &mut State) {
        if self.durability != Durability::ProcessCrash && state.unsynced_since.is_some() {
            if let Some(segment) = &state.current {
                match segment.file.sync_data() {
                    Ok(()) => {
                        let upto = state.written;
                        state.unsynced_since = None;
                        self.progress.send_modify(|p| p.synced = p.synced.max(upto));
                    }
                    Err(e) => self.sync_failed(state, &e),
                }
            }
        }
        close_current(state);
    }

    /// Makes the current segment one whose window holds `first_expiry_ms`.
    fn rotate(&self, state: &mut State, first_expiry_ms: u64) -> io::Result<()> {
        self.leave_current(state);
        let window_end_ms = first_expiry_ms + SEGMENT_WINDOW_MS;
        let path = self
            .dir
            .join(format!("{window_end_ms:020}{SEGMENT_SUFFIX}"));
        let file = crate::disk::open_private_append(&path)?;
        if self.durability != Durability::ProcessCrash {
            // The new file's directory entry must survive power loss too.
            File::open(&self.dir)?.sync_all()?;
        }
        // Two rotations in the same millisecond reopen the same file; its
        // bytes must stay.
        let len = file.metadata()?.len();
        state.current = Some(Segment {
            file: Arc::new(file),
            len,
            synced_len: len,
            window_end_ms,
            path,
        });
        Ok(())
    }

    /// Deletes the segments whose window has passed. The files are
    /// unlinked without the mutex held: freeing the blocks of a segment of a
    /// gigabyte is filesystem work no push should wait behind.
    fn delete_expired_segments<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
    ) -> MutexGuard<'a, State> {
        let now_ms = unix_millis(self.clock.now());
        if state
            .current
            .as_ref()
            .is_some_and(|s| s.window_end_ms <= now_ms)
            && state.unsynced_since.is_none()
        {
            close_current(&mut state);
        }
        let (expired, kept) = std::mem::take(&mut state.closed)
            .into_iter()
            .partition::<Vec<_>, _>(|(window_end, _)| *window_end <= now_ms);
        state.closed = kept;
        if expired.is_empty() {
            return state;
        }
        drop(state);
        let mut undeleted = Vec::new();
        for (window_end, path) in expired {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "could not delete an expired key segment");
                    undeleted.push((window_end, path));
                }
            }
        }
        let mut state = self.lock();
        state.closed.extend(undeleted);
        state
    }
}

fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let window_end = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(SEGMENT_SUFFIX))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(window_end) = window_end {
            segments.push((window_end, path));
        }
    }
    segments.sort();
    Ok(segments)
}

/// The live keys in `dir` at `now_ms`, read without changing anything, so
/// it is safe while a server writes there.
pub(crate) fn read_live(dir: &Path, now_ms: u64) -> io::Result<Vec<PushedKey>> {
    let mut live = Vec::new();
    for (window_end, path) in list_segments(dir)? {
        if window_end > now_ms {
            recover_segment(&path, now_ms, &mut live, false)?;
        }
    }
    Ok(live)
}

/// Reads every intact record. At the first torn or corrupt one the segment
/// ends; with `repair` it is cut there, since nothing after it was ever
/// acknowledged.
fn recover_segment(
    path: &Path,
    now_ms: u64,
    live: &mut Vec<PushedKey>,
    repair: bool,
) -> io::Result<()> {
    let file = File::open(path)?;
    let mut reader = BufReader::new(file);
    let mut good_end: u64 = 0;
    let mut header = [0u8; 8];
    let mut payload = Vec::new();
    loop {
        match reader.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if len > MAX_RECORD_BYTES {
            break;
        }
        payload.resize(len, 0);
        if reader.read_exact(&mut payload).is_err() || crc32fast::hash(&payload) != crc {
            break;
        }
        match serde_json::from_slice::<PushedKey>(&payload) {
            Ok(key) => {
                if key.expires_at_ms > now_ms {
                    live.push(key);
                }
            }
            Err(_) => break,
        }
        good_end += 8 + len as u64;
    }
    let actual = fs::metadata(path)?.len();
    if repair && good_end < actual {
        tracing::warn!(path = %path.display(), kept = good_end, dropped = actual - good_end, "key segment ends in a torn record; cutting it");
        OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(good_end)?;
    }
    Ok(())
}
