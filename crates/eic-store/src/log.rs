//! The embedded store's durable append log, with group commit.
//!
//! Written by hand rather than on an embedded database: every record dies
//! 60 seconds after it is written, so the whole job is "append, make durable,
//! forget in bulk". Records go to time-windowed segment files; a segment is
//! deleted as one file once its window has passed, so expiry costs nothing
//! per record on disk, and there is no compaction to run or tune.
//!
//! One writer thread drains every append that is waiting, writes them with
//! one `write`, makes them durable with one `fdatasync` (group commit), and
//! only then acknowledges them. Under load many pushes share one sync; alone,
//! a push pays for one.
//!
//! Record format: `len: u32 LE | crc32: u32 LE | payload (JSON)`. A torn or
//! corrupt record ends its segment on recovery; it can only be one that was
//! never acknowledged, since acknowledgement follows the write.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::clock::{unix_millis, Clock};
use crate::embedded::Durability;
use crate::PushedKey;

/// How long a segment accepts records, counted from the first record's
/// expiry. The segment is deleted once its window end has passed.
const SEGMENT_WINDOW_MS: u64 = 60_000;
/// No valid record is anywhere near this; a larger length is corruption.
const MAX_RECORD_BYTES: usize = 256 * 1024;
/// Bounds one group commit, so acknowledgements keep flowing under load.
const MAX_BATCH: usize = 4096;
const SEGMENT_SUFFIX: &str = ".seg";

pub(crate) struct Append {
    pub payload: Vec<u8>,
    pub expires_at_ms: u64,
    pub done: oneshot::Sender<io::Result<()>>,
}

pub(crate) struct Log {
    sender: Option<mpsc::Sender<Append>>,
    writer: Option<JoinHandle<()>>,
}

impl Log {
    /// Opens the log in `dir`, returning it with every record that is still
    /// live. Segments whose window has passed are deleted unread.
    pub fn open(
        dir: &Path,
        durability: Durability,
        clock: Arc<dyn Clock>,
    ) -> io::Result<(Log, Vec<PushedKey>)> {
        fs::create_dir_all(dir)?;
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
        let (sender, receiver) = mpsc::channel();
        let writer = Writer {
            dir: dir.to_owned(),
            durability,
            clock,
            current: None,
            closed,
            unsynced_since: None,
        };
        let writer = std::thread::Builder::new()
            .name("eic-store-log".into())
            .spawn(move || writer.run(receiver))?;
        Ok((
            Log {
                sender: Some(sender),
                writer: Some(writer),
            },
            live,
        ))
    }

    pub fn is_running(&self) -> bool {
        self.writer.as_ref().is_some_and(|w| !w.is_finished())
    }

    pub fn append(&self, append: Append) -> Result<(), Append> {
        match &self.sender {
            Some(s) => s.send(append).map_err(|e| e.0),
            None => Err(append),
        }
    }
}

impl Drop for Log {
    /// Closing the channel lets the writer finish what it was given, then
    /// stop; joining means nothing acknowledged is still in flight.
    fn drop(&mut self) {
        self.sender.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

struct Segment {
    file: File,
    /// Bytes acknowledged so far: where a failed write is cut back to.
    len: u64,
    window_end_ms: u64,
    path: PathBuf,
}

struct Writer {
    dir: PathBuf,
    durability: Durability,
    clock: Arc<dyn Clock>,
    current: Option<Segment>,
    closed: Vec<(u64, PathBuf)>,
    /// With `Durability::Interval`: the current segment holds acknowledged
    /// bytes not yet synced, since this instant.
    unsynced_since: Option<std::time::Instant>,
}

impl Writer {
    fn run(mut self, receiver: mpsc::Receiver<Append>) {
        let mut batch = Vec::with_capacity(64);
        let mut buf = Vec::with_capacity(64 * 1024);
        loop {
            let wait = match (self.durability, self.unsynced_since) {
                (Durability::Interval(interval), Some(since)) => {
                    interval.saturating_sub(since.elapsed())
                }
                _ => Duration::from_secs(1),
            };
            match receiver.recv_timeout(wait) {
                Ok(first) => {
                    batch.push(first);
                    while batch.len() < MAX_BATCH {
                        match receiver.try_recv() {
                            Ok(next) => batch.push(next),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if !batch.is_empty() {
                self.commit(&mut batch, &mut buf);
            }
            if let (Durability::Interval(interval), Some(since)) =
                (self.durability, self.unsynced_since)
            {
                if since.elapsed() >= interval {
                    self.sync_current();
                }
            }
            self.delete_expired_segments();
        }
        self.sync_current();
        self.delete_expired_segments();
    }

    /// The background sync of `Durability::Interval`. A failure cannot be
    /// taken back from callers already answered; it is logged loudly and
    /// the segment is closed so later pushes start on a fresh file.
    fn sync_current(&mut self) {
        if self.unsynced_since.take().is_none() {
            return;
        }
        if let Some(segment) = &self.current {
            if let Err(e) = segment.file.sync_data() {
                tracing::error!(error = %e, path = %segment.path.display(), "background fdatasync failed; recent pushes may not survive a power loss");
                self.close_current();
            }
        }
    }

    /// Writes and syncs the batch, one run per segment, and acknowledges
    /// each run with its own outcome.
    fn commit(&mut self, batch: &mut Vec<Append>, buf: &mut Vec<u8>) {
        let mut pending = batch.drain(..).peekable();
        while let Some(first) = pending.next() {
            let mut result = self.segment_for(first.expires_at_ms);
            let mut run = vec![first];
            if let Some(window_end) = self.current.as_ref().map(|s| s.window_end_ms) {
                if result.is_ok() {
                    while let Some(next) = pending.next_if(|a| a.expires_at_ms <= window_end) {
                        run.push(next);
                    }
                }
            }
            if result.is_ok() {
                buf.clear();
                for append in &run {
                    buf.extend_from_slice(&(append.payload.len() as u32).to_le_bytes());
                    buf.extend_from_slice(&crc32fast::hash(&append.payload).to_le_bytes());
                    buf.extend_from_slice(&append.payload);
                }
                result = self.flush(buf);
            }
            if let Err(e) = &result {
                tracing::error!(error = %e, refused = run.len(), "key log write failed; these pushes are refused");
                self.close_current();
            }
            for append in run {
                let _ = append.done.send(
                    result
                        .as_ref()
                        .map(|_| ())
                        .map_err(|e| io::Error::new(e.kind(), e.to_string())),
                );
            }
        }
    }

    /// Makes the current segment one whose window holds `expires_at_ms`.
    fn segment_for(&mut self, expires_at_ms: u64) -> io::Result<()> {
        if self
            .current
            .as_ref()
            .is_none_or(|s| expires_at_ms > s.window_end_ms)
        {
            self.rotate(expires_at_ms)?;
        }
        Ok(())
    }

    /// Appends `buf` and syncs it. On failure the segment is cut back to its
    /// previous length, so no part of a refused push can be recovered later.
    fn flush(&mut self, buf: &[u8]) -> io::Result<()> {
        let fsync = self.durability == Durability::Fsync;
        let segment = self
            .current
            .as_mut()
            .ok_or_else(|| io::Error::other("no open segment"))?;
        let written = segment.file.write_all(buf).and_then(|()| {
            if fsync {
                segment.file.sync_data()
            } else {
                Ok(())
            }
        });
        match written {
            Ok(()) => {
                segment.len += buf.len() as u64;
                if matches!(self.durability, Durability::Interval(_)) {
                    self.unsynced_since
                        .get_or_insert_with(std::time::Instant::now);
                }
                Ok(())
            }
            Err(e) => {
                let _ = segment.file.set_len(segment.len);
                Err(e)
            }
        }
    }

    fn close_current(&mut self) {
        if let Some(old) = self.current.take() {
            self.closed.push((old.window_end_ms, old.path));
        }
    }

    fn rotate(&mut self, first_expiry_ms: u64) -> io::Result<()> {
        // The old segment's acknowledged tail is synced before it is left.
        self.sync_current();
        self.close_current();
        let window_end_ms = first_expiry_ms + SEGMENT_WINDOW_MS;
        let path = self
            .dir
            .join(format!("{window_end_ms:020}{SEGMENT_SUFFIX}"));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if self.durability != Durability::ProcessCrash {
            // The new file's directory entry must survive power loss too.
            File::open(&self.dir)?.sync_all()?;
        }
        // Two rotations in the same millisecond reopen the same file; its
        // acknowledged bytes must stay.
        let len = file.metadata()?.len();
        self.current = Some(Segment {
            file,
            len,
            window_end_ms,
            path,
        });
        Ok(())
    }

    fn delete_expired_segments(&mut self) {
        let now_ms = unix_millis(self.clock.now());
        if self
            .current
            .as_ref()
            .is_some_and(|s| s.window_end_ms <= now_ms)
        {
            self.close_current();
        }
        self.closed.retain(|(window_end, path)| {
            if *window_end > now_ms {
                return true;
            }
            match fs::remove_file(path) {
                Ok(()) => false,
                Err(e) if e.kind() == io::ErrorKind::NotFound => false,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "could not delete an expired key segment");
                    true
                }
            }
        });
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
