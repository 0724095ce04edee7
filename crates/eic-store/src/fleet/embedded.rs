//! The embedded fleet: one node's enrolled instances and join tokens, kept
//! in `fleet.log` in the server's data dir.
//!
//! Not redb, as a key-value state would suggest: commands (`eic join-token
//! create`, `eic instances tag`) run as separate processes while the server
//! runs and must change the same state, and redb holds an exclusive lock on
//! its file for as long as one process has it open. So the fleet is a log
//! that several processes append to under `flock`, each keeping its own
//! view of it in memory.
//!
//! # Format
//!
//! JSON lines, one record per line, each line at most 64 KiB with its
//! newline:
//!
//! - `{"enroll":{"enrollment":{…Enrollment…},"at":ms}}`: inserts or
//!   replaces the instance `enrollment.instance_id`.
//! - `{"report":{"id":"i-…","state":"stopped","facts":{…},"at":ms}}`: a
//!   heartbeat that changed the stored state or facts; `facts` only when
//!   they changed.
//! - `{"change":{"id":"i-…","change":{"tag":{"k":"v"}},"at":ms}}`: an
//!   operator's change (`{"tag":{…}}`, `{"untag":[…]}` or `"terminate"`).
//! - `{"token":{…JoinToken…}}`: a new join token.
//! - `{"redeem":{"id":"…","at":ms}}`: one use of a token.
//! - `{"revoke":{"id":"…"}}`.
//!
//! A record naming an instance or token the log never created changes
//! nothing (it cannot remove or resurrect anything).
//!
//! # Writing
//!
//! Every durable write takes `flock(LOCK_EX)` on the file; if the path now
//! holds another file (a process compacted), it reopens that one and
//! reloads the whole view; it catches up on what other processes appended;
//! decides (a token's checks happen here, on the whole log, so two
//! processes redeeming a one-use token cannot both succeed); appends one
//! line with one write; `fdatasync`s; updates the view; unlocks.
//!
//! # Reading
//!
//! Reads come from the view, never from the file. A refresher thread,
//! started by [`EmbeddedFleet::open`] and ending with the fleet, catches up
//! every 250 ms with the complete lines others appended (without the lock:
//! a line still being written is left for the next look). A view not known
//! to hold the whole log for 2 s makes reads fail instead of answering, so
//! an instance a command terminated is never served from an old view.
//!
//! # Last-seen
//!
//! Heartbeats that change nothing stored only move an in-memory last-seen
//! time; it is not in the log. On open every instance starts as seen at the
//! open time, so a server restart does not turn the whole fleet
//! connection-lost; an instance that appears by catching up with another
//! process's record starts as seen at that record's time.
//!
//! # Damage and compaction
//!
//! A torn last line (a writer died mid-write; never acknowledged) is cut by
//! the next process that holds the lock. Any other line that does not parse
//! or is too long is an error naming the file and line: the server refuses
//! to start rather than forget an enrollment or a spent token.
//!
//! On open, a log holding more than [`COMPACT_MIN_RECORDS`] records and
//! more than twice the records its state needs (one per instance and per
//! token) is rewritten to those, aside, and renamed over `fleet.log`; other
//! processes notice by the inode.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{
    Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError, Weak,
};
use std::time::{Duration, Instant, SystemTime};

use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::{
    Enrolled, Enrollment, Fleet, FleetState, HeartbeatOutcome, InstanceChange, JoinToken,
    MachineFacts, TokenRefusal,
};
use crate::clock::unix_millis;
use crate::StoreError;

const LOG_FILE: &str = "fleet.log";
const COMPACTING_FILE: &str = "fleet.log.tmp";
/// A line's limit, newline included: far above any real enrollment (a few
/// KiB), low enough that a damaged length cannot make a reader allocate
/// without bound.
const MAX_LINE_BYTES: usize = 64 * 1024;
const REFRESH_EVERY: Duration = Duration::from_millis(250);
/// A view older than this is not answered from.
const STALE_AFTER_MS: u64 = 2_000;
/// Below this many records a log is not worth rewriting.
const COMPACT_MIN_RECORDS: u64 = 1_000;

/// One line of the log.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Record {
    Enroll {
        enrollment: Enrollment,
        at: u64,
    },
    Report {
        id: String,
        state: FleetState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        facts: Option<MachineFacts>,
        at: u64,
    },
    Change {
        id: String,
        change: InstanceChange,
        at: u64,
    },
    Token(JoinToken),
    Redeem {
        id: String,
        at: u64,
    },
    Revoke {
        id: String,
    },
}

/// The records compaction writes: the [`Record`]s of the same names,
/// serialized from the view without copying it.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
enum LiveRecord<'a> {
    Enroll { enrollment: &'a Enrollment, at: u64 },
    Token(&'a JoinToken),
}

/// What a process knows of the log.
#[derive(Default)]
struct View {
    instances: HashMap<String, Arc<Enrolled>>,
    /// By id, as [`Fleet::tokens`] lists them.
    tokens: BTreeMap<String, JoinToken>,
}

impl View {
    /// How many records a compacted log of this view holds.
    fn live_records(&self) -> u64 {
        (self.instances.len() + self.tokens.len()) as u64
    }

    fn apply(&mut self, record: Record) {
        match record {
            Record::Enroll { enrollment, at } => {
                let id = enrollment.instance_id.clone();
                let enrolled = Enrolled::new(enrollment, at);
                if let Some(previous) = self.instances.get(&id) {
                    enrolled.seen(previous.last_seen_ms());
                }
                self.instances.insert(id, enrolled);
            }
            Record::Report {
                id,
                state,
                facts,
                at,
            } => self.replace(&id, |e| reported(e, state, facts.as_ref(), at)),
            Record::Change { id, change, at } => self.replace(&id, |e| change.applied_to(e, at)),
            Record::Token(token) => {
                self.tokens.insert(token.id.clone(), token);
            }
            Record::Redeem { id, .. } => match self.tokens.get_mut(&id) {
                Some(token) => token.used = token.used.saturating_add(1),
                None => {
                    tracing::warn!(token_id = %id, "a fleet record redeems a token the log never created; ignored")
                }
            },
            Record::Revoke { id } => match self.tokens.get_mut(&id) {
                Some(token) => token.revoked = true,
                None => {
                    tracing::warn!(token_id = %id, "a fleet record revokes a token the log never created; ignored")
                }
            },
        }
    }

    /// Replaces instance `id` by what `new` makes of it, carrying its
    /// last-seen time over.
    fn replace(&mut self, id: &str, new: impl FnOnce(&Enrollment) -> Enrollment) {
        match self.instances.get_mut(id) {
            Some(slot) => *slot = Enrolled::new(new(&slot.enrollment), slot.last_seen_ms()),
            None => {
                tracing::warn!(instance_id = %id, "a fleet record names an instance the log never enrolled; ignored")
            }
        }
    }
}

/// `enrollment` after a heartbeat reported `state` and, if they changed,
/// `facts`.
fn reported(
    enrollment: &Enrollment,
    state: FleetState,
    facts: Option<&MachineFacts>,
    at: u64,
) -> Enrollment {
    let mut after = enrollment.clone();
    after.state = state;
    if let Some(facts) = facts {
        after.facts = facts.clone();
    }
    after.updated_at_ms = at;
    after
}

/// `record` as a line, refused when it is over the limit.
fn encode(record: &impl Serialize) -> Result<Vec<u8>, StoreError> {
    let mut line = serde_json::to_vec(record)
        .map_err(|e| StoreError::backend("cannot encode a fleet record", e))?;
    line.push(b'\n');
    if line.len() > MAX_LINE_BYTES {
        return Err(StoreError::Unavailable(format!(
            "a fleet record of {} bytes is over the limit of {MAX_LINE_BYTES} bytes a line",
            line.len()
        )));
    }
    Ok(line)
}

/// Refuses a change that would make the instance's enrollment too long for
/// the one line compaction writes it as.
fn check_fits(enrollment: &Enrollment) -> Result<(), StoreError> {
    encode(&LiveRecord::Enroll {
        enrollment,
        at: enrollment.updated_at_ms,
    })
    .map(|_| ())
}

/// A file by identity: whether the path still names the file a handle has
/// open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(metadata: &std::fs::Metadata) -> FileId {
        FileId {
            dev: metadata.dev(),
            ino: metadata.ino(),
        }
    }
}

/// How far a view has read: the end of its last complete line.
#[derive(Debug, Clone, Copy, Default)]
struct Position {
    offset: u64,
    lines: u64,
}

/// This process's handle on the log.
struct LogFile {
    file: Arc<File>,
    id: FileId,
    read: Position,
}

/// `flock(LOCK_EX)` on a log file, released when dropped. flock locks are
/// per open file description: they exclude other processes and other
/// handles, not threads sharing this one (the log's mutex does that).
struct Flock(Arc<File>);

impl Flock {
    fn exclusive(file: Arc<File>) -> io::Result<Flock> {
        loop {
            match rustix::fs::flock(&*file, FlockOperation::LockExclusive) {
                Ok(()) => return Ok(Flock(file)),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Drop for Flock {
    fn drop(&mut self) {
        // Closing the last descriptor of the file releases it anyway.
        let _ = rustix::fs::flock(&*self.0, FlockOperation::Unlock);
    }
}

/// Opens the log at `path` (created 0600 only by `open`: anyone else
/// finding it gone must not start an empty fleet).
fn open_log(path: &Path, create: bool) -> io::Result<(Arc<File>, FileId)> {
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(create)
        .mode(0o600)
        .open(path)?;
    let id = FileId::of(&file.metadata()?);
    Ok((Arc::new(file), id))
}

/// Locks the file that is at `path` now, starting from `file`: a process
/// that compacted renamed a new file there while this one waited.
fn lock_current(
    path: &Path,
    mut file: Arc<File>,
    mut id: FileId,
) -> io::Result<(Flock, Arc<File>, FileId)> {
    loop {
        let lock = Flock::exclusive(file.clone())?;
        if FileId::of(&std::fs::metadata(path)?) == id {
            return Ok((lock, file, id));
        }
        drop(lock);
        (file, id) = open_log(path, false)?;
    }
}

fn damaged(path: &Path, line: u64, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{} line {line}: {what}", path.display()),
    )
}

/// Reads the complete lines of `file` after `from`, handing each record to
/// `each`. Returns where they end and whether bytes follow them: a line
/// still being written, or one torn by a crash.
fn read_records(
    file: &File,
    path: &Path,
    from: Position,
    mut each: impl FnMut(Record),
) -> io::Result<(Position, bool)> {
    let mut reader = BufReader::with_capacity(MAX_LINE_BYTES, file);
    reader.seek(SeekFrom::Start(from.offset))?;
    let mut at = from;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES as u64)
            .read_until(b'\n', &mut line)?;
        let Some((&b'\n', record)) = line.split_last() else {
            if n == MAX_LINE_BYTES {
                return Err(damaged(
                    path,
                    at.lines + 1,
                    format_args!("longer than {MAX_LINE_BYTES} bytes"),
                ));
            }
            return Ok((at, n > 0));
        };
        let record = serde_json::from_slice(record).map_err(|e| damaged(path, at.lines + 1, e))?;
        each(record);
        at.offset += n as u64;
        at.lines += 1;
    }
}

/// Cuts the torn line after `at`; only with the lock held, when no writer
/// can be midway through it.
fn cut_torn_tail(file: &File, path: &Path, at: Position) -> io::Result<()> {
    let len = file.metadata()?.len();
    tracing::warn!(path = %path.display(), line = at.lines + 1, bytes = len.saturating_sub(at.offset), "the fleet log ends in a torn line, a write a crash cut short; cutting it");
    file.set_len(at.offset)?;
    file.sync_data()
}

/// The view of the whole log in `file`; with the lock held (`cut`), a torn
/// last line is cut.
fn replay(file: &File, path: &Path, cut: bool) -> io::Result<(View, Position)> {
    let mut view = View::default();
    let (at, torn) = read_records(file, path, Position::default(), |r| view.apply(r))?;
    if torn && cut {
        cut_torn_tail(file, path, at)?;
    }
    Ok((view, at))
}

/// Rewrites the log as `view`'s live records, under the lock of the
/// current one. Returns the new file, locked: it is locked before it is
/// renamed into place, so a process that opens it there waits for this one.
fn compact(dir: &Path, path: &Path, view: &View) -> io::Result<(Flock, LogFile)> {
    let temp_path = dir.join(COMPACTING_FILE);
    // Left by a compaction that crashed; only a lock holder writes it.
    match std::fs::remove_file(&temp_path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let file = Arc::new(
        OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp_path)?,
    );
    let lock = Flock::exclusive(file.clone())?;
    let mut instances: Vec<&Enrollment> = view.instances.values().map(|e| &e.enrollment).collect();
    instances.sort_unstable_by(|a, b| a.instance_id.cmp(&b.instance_id));
    let records = instances
        .into_iter()
        .map(|enrollment| LiveRecord::Enroll {
            enrollment,
            at: enrollment.updated_at_ms,
        })
        .chain(view.tokens.values().map(LiveRecord::Token));
    let mut read = Position::default();
    let mut writer = BufWriter::with_capacity(MAX_LINE_BYTES, &*file);
    for record in records {
        serde_json::to_writer(&mut writer, &record)?;
        writer.write_all(b"\n")?;
        read.lines += 1;
    }
    writer.flush()?;
    drop(writer);
    file.sync_data()?;
    std::fs::rename(&temp_path, path)?;
    // The rename must survive a power loss too.
    File::open(dir)?.sync_all()?;
    let metadata = file.metadata()?;
    read.offset = metadata.len();
    let id = FileId::of(&metadata);
    Ok((lock, LogFile { file, id, read }))
}

/// The embedded fleet, shared behind the `Arc` [`EmbeddedFleet::open`]
/// returns.
pub struct EmbeddedFleet {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    view: RwLock<View>,
    /// Held by whoever reads or writes the file in this process.
    log: Mutex<LogFile>,
    /// The origin of `current_at_ms`.
    started: Instant,
    /// When (ms after `started`) the view was last known to hold the
    /// whole log.
    current_at_ms: AtomicU64,
    /// Catching up fails; logged when it starts and when it ends.
    failing: AtomicBool,
}

impl EmbeddedFleet {
    /// Opens (or creates) the fleet in `dir` (the data dir, created
    /// owner-only), replaying the log, cutting a torn last line and
    /// compacting it if it is mostly dead records; starts the refresher.
    /// Fails on a damaged log, naming the file and line.
    pub fn open(dir: &Path) -> io::Result<Arc<EmbeddedFleet>> {
        let opening = Instant::now();
        crate::disk::create_private_dir(dir)?;
        let path = dir.join(LOG_FILE);
        let (file, id) = open_log(&path, true)?;
        let (lock, file, id) = lock_current(&path, file, id)?;
        let (view, read) = replay(&file, &path, true)?;
        let uncompacted = LogFile { file, id, read };
        let (lock, log) = if read.lines > COMPACT_MIN_RECORDS
            && read.lines > 2 * view.live_records()
        {
            match compact(dir, &path, &view) {
                Ok((new_lock, log)) => {
                    tracing::info!(path = %path.display(), before = read.lines, after = log.read.lines, "fleet log compacted");
                    (new_lock, log)
                }
                // Only an optimisation: the server still starts (a full
                // disk is when it fails). Had the rename happened, the
                // file's new inode makes the next write or look reload.
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "cannot compact the fleet log; keeping it as it is");
                    let _ = std::fs::remove_file(dir.join(COMPACTING_FILE));
                    (lock, uncompacted)
                }
            }
        } else {
            (lock, uncompacted)
        };
        drop(lock);
        let now_ms = unix_millis(SystemTime::now());
        for enrolled in view.instances.values() {
            enrolled.seen(now_ms);
        }
        tracing::info!(path = %path.display(), instances = view.instances.len(), tokens = view.tokens.len(), ms = opening.elapsed().as_millis() as u64, "embedded fleet open");
        let shared = Arc::new(Shared {
            path,
            view: RwLock::new(view),
            log: Mutex::new(log),
            started: Instant::now(),
            current_at_ms: AtomicU64::new(0),
            failing: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("eic-fleet-refresh".into())
            .spawn(move || refresher(weak))?;
        Ok(Arc::new(EmbeddedFleet { shared }))
    }

    /// Catches up now with what other processes appended; the refresher
    /// does this every 250 ms.
    pub fn refresh(&self) -> Result<(), StoreError> {
        self.shared.refresh()
    }

    /// Runs `work` off the async runtime: it may wait for the lock and for
    /// `fdatasync`.
    async fn blocking<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Shared) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || work(&shared))
            .await
            .map_err(|e| StoreError::backend("fleet log task", e))?
    }
}

/// Holds the fleet only weakly, so dropping it ends the thread.
fn refresher(shared: Weak<Shared>) {
    loop {
        std::thread::sleep(REFRESH_EVERY);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let log = match shared.log.try_lock() {
            Ok(log) => log,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            // A writer has the log and catches up itself.
            Err(TryLockError::WouldBlock) => continue,
        };
        // A failure is logged and bounds the view's age; nothing else to do.
        let _ = shared.refresh_locked(log);
    }
}

impl Shared {
    fn lock_log(&self) -> MutexGuard<'_, LogFile> {
        // The position moves only after what it covers is applied.
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read_view(&self) -> RwLockReadGuard<'_, View> {
        // Every edit of the view is a single insert or replace.
        self.view.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_view(&self) -> RwLockWriteGuard<'_, View> {
        self.view.write().unwrap_or_else(|p| p.into_inner())
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The view, if it is fresh enough to answer from.
    fn current_view(&self) -> Result<RwLockReadGuard<'_, View>, StoreError> {
        let age_ms = self
            .elapsed_ms()
            .saturating_sub(self.current_at_ms.load(Ordering::Relaxed));
        if age_ms > STALE_AFTER_MS {
            return Err(StoreError::Unavailable(format!(
                "the fleet view has not caught up with {} for {age_ms} ms",
                self.path.display()
            )));
        }
        Ok(self.read_view())
    }

    /// Records how catching up that began at `began_ms` went.
    fn caught_up(&self, failure: Option<&io::Error>, began_ms: u64) {
        match failure {
            None => {
                self.current_at_ms.fetch_max(began_ms, Ordering::Relaxed);
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(path = %self.path.display(), "the fleet view caught up with its log again");
                }
            }
            Some(error) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(path = %self.path.display(), %error, "cannot catch up with the fleet log; reads fail once the view is {STALE_AFTER_MS} ms old");
                }
            }
        }
    }

    fn log_error(&self, what: &str, e: io::Error) -> StoreError {
        StoreError::backend(format!("{what} {}", self.path.display()), e)
    }

    fn refresh(&self) -> Result<(), StoreError> {
        self.refresh_locked(self.lock_log())
    }

    fn refresh_locked(&self, mut log: MutexGuard<'_, LogFile>) -> Result<(), StoreError> {
        let began_ms = self.elapsed_ms();
        let result = self.follow(&mut log);
        self.caught_up(result.as_ref().err(), began_ms);
        result.map_err(|e| self.log_error("catching up with", e))
    }

    /// Catches up without the lock: reloads from the file at the path if
    /// it is a new one, else reads what was appended.
    fn follow(&self, log: &mut LogFile) -> io::Result<()> {
        if FileId::of(&std::fs::metadata(&self.path)?) == log.id {
            return self.catch_up(log, false);
        }
        let (file, id) = open_log(&self.path, false)?;
        self.reload(log, file, id, false)
    }

    /// Replaces the view by the whole of `file`, carrying last-seen times
    /// over; on failure nothing changes, so the next look tries again.
    fn reload(&self, log: &mut LogFile, file: Arc<File>, id: FileId, cut: bool) -> io::Result<()> {
        let (view, read) = replay(&file, &self.path, cut)?;
        let mut current = self.write_view();
        for (instance_id, enrolled) in &view.instances {
            if let Some(previous) = current.instances.get(instance_id) {
                enrolled.seen(previous.last_seen_ms());
            }
        }
        *current = view;
        *log = LogFile { file, id, read };
        Ok(())
    }

    /// Applies the complete lines appended after what `log` has read; with
    /// the lock held (`cut`), a torn last line is cut.
    fn catch_up(&self, log: &mut LogFile, cut: bool) -> io::Result<()> {
        if log.file.metadata()?.len() < log.read.offset {
            return Err(io::Error::other(
                "the file is shorter than what was read from it: it was cut by hand",
            ));
        }
        let mut records = Vec::new();
        let (read, torn) = read_records(&log.file, &self.path, log.read, |r| records.push(r))?;
        if !records.is_empty() {
            let mut view = self.write_view();
            for record in records {
                view.apply(record);
            }
        }
        log.read = read;
        if torn && cut {
            cut_torn_tail(&log.file, &self.path, read)?;
        }
        Ok(())
    }

    /// Takes the lock and brings the view up to the whole log.
    fn lock_and_catch_up(&self, log: &mut LogFile) -> io::Result<Flock> {
        let (lock, file, id) = lock_current(&self.path, log.file.clone(), log.id)?;
        if id == log.id {
            self.catch_up(log, true)?;
        } else {
            self.reload(log, file, id, true)?;
        }
        Ok(lock)
    }

    /// The one way the log is written: under the lock, on the whole log,
    /// `decide` returns the record to append (if any) and the answer.
    fn commit<R>(
        &self,
        decide: impl FnOnce(&View) -> Result<(Option<Record>, R), StoreError>,
    ) -> Result<R, StoreError> {
        let mut log = self.lock_log();
        let began_ms = self.elapsed_ms();
        let locked = self.lock_and_catch_up(&mut log);
        self.caught_up(locked.as_ref().err(), began_ms);
        let _lock = locked.map_err(|e| self.log_error("catching up with", e))?;
        let (record, answer) = decide(&self.read_view())?;
        let Some(record) = record else {
            return Ok(answer);
        };
        let line = encode(&record)?;
        if let Err(e) = (&*log.file).write_all(&line) {
            // Not a complete line, so no reader has taken it: cut, so the
            // next record starts a line of its own.
            let _ = log.file.set_len(log.read.offset);
            return Err(self.log_error("writing", e));
        }
        log.read.offset += line.len() as u64;
        log.read.lines += 1;
        let synced = log.file.sync_data();
        // Even unsynced the line is in the file, where other processes may
        // have read it already: this view follows the file, and the caller
        // learns that the change may not survive a power loss.
        self.write_view().apply(record);
        synced.map_err(|e| self.log_error("fdatasync of", e))?;
        Ok(answer)
    }
}

/// What a heartbeat answers when it changes nothing stored; `None` when
/// its state or facts must be written.
fn unwritten_heartbeat(
    enrolled: &Enrolled,
    state: FleetState,
    facts: &MachineFacts,
    now_ms: u64,
) -> Option<HeartbeatOutcome> {
    let stored = &enrolled.enrollment;
    if stored.state == FleetState::Terminated {
        return Some(HeartbeatOutcome::Terminated);
    }
    if stored.state != state || stored.facts != *facts {
        return None;
    }
    Some(HeartbeatOutcome::Recorded {
        previous: state,
        last_seen_ms: enrolled.heartbeat(now_ms),
    })
}

#[async_trait::async_trait]
impl Fleet for EmbeddedFleet {
    async fn create_token(&self, token: JoinToken) -> Result<(), StoreError> {
        self.blocking(move |fleet| {
            fleet.commit(|view| {
                if view.tokens.contains_key(&token.id) {
                    return Err(StoreError::Unavailable(format!(
                        "a join token with id {} exists already",
                        token.id
                    )));
                }
                Ok((Some(Record::Token(token)), ()))
            })
        })
        .await
    }

    async fn tokens(&self) -> Result<Vec<JoinToken>, StoreError> {
        // Caught up first: a command lists the server's redemptions.
        self.blocking(|fleet| {
            fleet.refresh()?;
            Ok(fleet.read_view().tokens.values().cloned().collect())
        })
        .await
    }

    async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.blocking(move |fleet| {
            fleet.commit(|view| match view.tokens.get(&id) {
                None => Ok((None, false)),
                Some(token) if token.revoked => Ok((None, true)),
                Some(_) => Ok((Some(Record::Revoke { id }), true)),
            })
        })
        .await
    }

    async fn redeem_token(
        &self,
        id: &str,
        secret_sha256: &str,
        now_ms: u64,
    ) -> Result<Result<JoinToken, TokenRefusal>, StoreError> {
        let (id, secret_sha256) = (id.to_owned(), secret_sha256.to_owned());
        self.blocking(move |fleet| {
            fleet.commit(|view| {
                let refused = |refusal| Ok((None, Err(refusal)));
                let Some(token) = view.tokens.get(&id) else {
                    return refused(TokenRefusal::Unknown);
                };
                // The secret first: without it a caller learns nothing of
                // the token's state.
                let secret_matches = token
                    .secret_sha256
                    .as_bytes()
                    .ct_eq(secret_sha256.as_bytes());
                if !bool::from(secret_matches) {
                    return refused(TokenRefusal::Unknown);
                }
                if token.revoked {
                    return refused(TokenRefusal::Revoked);
                }
                if now_ms >= token.expires_at_ms {
                    return refused(TokenRefusal::Expired);
                }
                if token.used >= token.uses {
                    return refused(TokenRefusal::UsedUp);
                }
                let mut after = token.clone();
                after.used += 1;
                Ok((Some(Record::Redeem { id, at: now_ms }), Ok(after)))
            })
        })
        .await
    }

    async fn enroll(&self, enrollment: Enrollment, now_ms: u64) -> Result<(), StoreError> {
        self.blocking(move |fleet| {
            fleet.commit(|_| {
                Ok((
                    Some(Record::Enroll {
                        enrollment,
                        at: now_ms,
                    }),
                    (),
                ))
            })
        })
        .await
    }

    async fn heartbeat(
        &self,
        instance_id: &str,
        state: FleetState,
        facts: &MachineFacts,
        now_ms: u64,
    ) -> Result<HeartbeatOutcome, StoreError> {
        if state == FleetState::Terminated {
            return Err(StoreError::Unavailable(
                "a heartbeat reports running or stopped; only an operator terminates".into(),
            ));
        }
        {
            // The read lock is held while last-seen moves, so a durable
            // change replacing the instance carries this heartbeat over.
            let view = self.shared.current_view()?;
            let Some(enrolled) = view.instances.get(instance_id) else {
                return Ok(HeartbeatOutcome::Unknown);
            };
            if let Some(outcome) = unwritten_heartbeat(enrolled, state, facts, now_ms) {
                return Ok(outcome);
            }
        }
        let (id, facts) = (instance_id.to_owned(), facts.clone());
        self.blocking(move |fleet| {
            fleet.commit(|view| {
                // Decided again on the whole log: a command may have
                // terminated it meanwhile.
                let Some(enrolled) = view.instances.get(&id) else {
                    return Ok((None, HeartbeatOutcome::Unknown));
                };
                if let Some(outcome) = unwritten_heartbeat(enrolled, state, &facts, now_ms) {
                    return Ok((None, outcome));
                }
                let stored = &enrolled.enrollment;
                let facts = (stored.facts != facts).then_some(facts);
                check_fits(&reported(stored, state, facts.as_ref(), now_ms))?;
                let outcome = HeartbeatOutcome::Recorded {
                    previous: stored.state,
                    last_seen_ms: enrolled.heartbeat(now_ms),
                };
                let record = Record::Report {
                    id,
                    state,
                    facts,
                    at: now_ms,
                };
                Ok((Some(record), outcome))
            })
        })
        .await
    }

    async fn change(
        &self,
        instance_id: &str,
        change: InstanceChange,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let id = instance_id.to_owned();
        self.blocking(move |fleet| {
            fleet.commit(|view| {
                let Some(enrolled) = view.instances.get(&id) else {
                    return Ok((None, false));
                };
                check_fits(&change.applied_to(&enrolled.enrollment, now_ms))?;
                Ok((
                    Some(Record::Change {
                        id,
                        change,
                        at: now_ms,
                    }),
                    true,
                ))
            })
        })
        .await
    }

    fn enrolled(&self, instance_id: &str) -> Result<Option<Arc<Enrolled>>, StoreError> {
        Ok(self
            .shared
            .current_view()?
            .instances
            .get(instance_id)
            .cloned())
    }

    fn all_enrolled(&self) -> Result<Vec<Arc<Enrolled>>, StoreError> {
        Ok(self
            .shared
            .current_view()?
            .instances
            .values()
            .cloned()
            .collect())
    }

    /// One server serves an embedded store: it is always the one.
    async fn claim_connection_lost(
        &self,
        _instance_id: &str,
        _last_seen_ms: u64,
    ) -> Result<bool, StoreError> {
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
