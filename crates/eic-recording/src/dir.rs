//! The recordings directory: listing, lookup and retention.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

use crate::meta::{metadata_path, read_metadata};
use crate::{Metadata, RecordingId};

/// How long past [`Retention::max_age`] a recording without `endedAt` is
/// taken for a running one. Sessions are bounded far below this, so one
/// still unfinished after it was cut by a crash and can go.
pub const CRASH_GRACE: Duration = Duration::from_secs(24 * 60 * 60);

/// How much the directory keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Recordings that ended longer ago than this are removed.
    pub max_age: Duration,
    /// Above this total of `.cast` sizes, the oldest finished recordings are
    /// removed.
    pub max_total_bytes: u64,
}

/// What [`sweep`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Recordings removed (both files).
    pub removed: usize,
    /// Bytes of the files removed.
    pub freed_bytes: u64,
}

/// Where a recording's asciicast file is.
pub fn cast_path(dir: &Path, id: &RecordingId) -> PathBuf {
    dir.join(format!("{id}.cast"))
}

/// The metadata of one recording; `NotFound` when there is none,
/// `InvalidData` when its file is not valid metadata of that id.
pub fn metadata(dir: &Path, id: &RecordingId) -> io::Result<Metadata> {
    read_metadata(dir, id)
}

/// The recordings in `dir`, newest (latest `startedAt`) first; none when
/// the directory does not exist yet.
///
/// Only regular files named `<32 hex>.json` are read. One that cannot be read as
/// metadata of its id (cut short, edited, not ours) is left out silently:
/// one bad file must not hide the others, and [`metadata`] reports what is
/// wrong with it.
pub fn list(dir: &Path) -> io::Result<Vec<Metadata>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut recordings = Vec::new();
    for entry in entries {
        let entry = entry?;
        // Not following links: only what was written here is ours.
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|name| name.strip_suffix(".json"))
            .and_then(|stem| RecordingId::parse(stem).ok())
        else {
            continue;
        };
        match read_metadata(dir, &id) {
            Ok(meta) => recordings.push(meta),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {}
            // Removed since the directory was read.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    recordings.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
    Ok(recordings)
}

/// Applies `retention` at `now`.
///
/// First by age: a finished recording goes when it ended more than
/// `max_age` ago; one without `endedAt` only when it started more than
/// `max_age` + [`CRASH_GRACE`] ago (it crashed). Then by size: while the
/// `.cast` files left total more than `max_total_bytes`, the finished
/// recording that ended first goes. A recording without `endedAt` inside
/// the grace period may still be being written and is never removed, even
/// if that leaves the total over the limit.
///
/// Files that cannot be read as metadata are left alone (see [`list`]).
pub fn sweep(dir: &Path, retention: Retention, now: SystemTime) -> io::Result<SweepReport> {
    let mut report = SweepReport::default();
    let crash_age = retention.max_age.saturating_add(CRASH_GRACE);
    let mut kept = Vec::new();
    for meta in list(dir)? {
        let expired = match meta.ended_at {
            Some(ended) => age(now, ended) > retention.max_age,
            None => age(now, meta.started_at) > crash_age,
        };
        if expired {
            remove(dir, &meta.id, &mut report)?;
        } else {
            let size = file_len(&cast_path(dir, &meta.id))?;
            kept.push((meta, size));
        }
    }

    let mut total = kept
        .iter()
        .fold(0u64, |sum, (_, size)| sum.saturating_add(*size));
    if total > retention.max_total_bytes {
        let mut finished: Vec<_> = kept
            .into_iter()
            .filter_map(|(meta, size)| Some((meta.ended_at?, meta.id, size)))
            .collect();
        finished.sort();
        for (_, id, size) in finished {
            if total <= retention.max_total_bytes {
                break;
            }
            remove(dir, &id, &mut report)?;
            total = total.saturating_sub(size);
        }
    }
    Ok(report)
}

/// How long before `now` `t` was; zero if it is later.
fn age(now: SystemTime, t: OffsetDateTime) -> Duration {
    now.duration_since(SystemTime::from(t))
        .unwrap_or(Duration::ZERO)
}

fn file_len(path: &Path) -> io::Result<u64> {
    match fs::metadata(path) {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Removes the `.cast` before the `.json`: cut in between, the recording
/// stays listed and the next sweep finishes the job, where the other order
/// would leave a `.cast` nothing points to.
fn remove(dir: &Path, id: &RecordingId, report: &mut SweepReport) -> io::Result<()> {
    for path in [cast_path(dir, id), metadata_path(dir, id)] {
        let size = file_len(&path)?;
        match fs::remove_file(&path) {
            Ok(()) => report.freed_bytes = report.freed_bytes.saturating_add(size),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    report.removed += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::write_metadata;
    use crate::testutil::sample;
    use std::collections::BTreeSet;
    use time::macros::datetime;

    const DAY: Duration = Duration::from_secs(24 * 60 * 60);

    fn id(n: u8) -> RecordingId {
        RecordingId::parse(&format!("{n:02x}{}", "0".repeat(30))).unwrap()
    }

    /// A recording started at `started`, ended at `ended`, with a `.cast`
    /// of `size` bytes.
    fn put(dir: &Path, n: u8, started: OffsetDateTime, ended: Option<OffsetDateTime>, size: usize) {
        let mut meta = sample(id(n));
        meta.started_at = started;
        meta.ended_at = ended;
        write_metadata(dir, &meta).unwrap();
        fs::write(cast_path(dir, &id(n)), vec![b'x'; size]).unwrap();
    }

    fn ids(dir: &Path) -> BTreeSet<u8> {
        list(dir)
            .unwrap()
            .iter()
            .map(|m| m.id.to_string()[..2].parse::<u8>().unwrap())
            .collect()
    }

    fn at(t: OffsetDateTime) -> SystemTime {
        SystemTime::from(t)
    }

    #[test]
    fn list_is_newest_first_and_ignores_other_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        put(dir, 1, datetime!(2026-03-01 10:00 UTC), None, 1);
        put(
            dir,
            2,
            datetime!(2026-03-03 10:00 UTC),
            Some(datetime!(2026-03-03 11:00 UTC)),
            1,
        );
        put(
            dir,
            3,
            datetime!(2026-03-02 10:00 UTC),
            Some(datetime!(2026-03-02 11:00 UTC)),
            1,
        );
        // Not recordings, or not readable ones.
        fs::write(dir.join("notes.json"), "{}").unwrap();
        fs::write(dir.join(format!("{}.json", "A".repeat(32))), "{}").unwrap();
        fs::write(dir.join(format!(".{}.json.tmp", id(4))), "{").unwrap();
        fs::write(dir.join(format!("{}.json", id(5))), "{\"id\": ").unwrap();
        fs::copy(
            dir.join(format!("{}.json", id(1))),
            dir.join(format!("{}.json", id(6))),
        )
        .unwrap();
        fs::create_dir(dir.join(format!("{}.json", id(7)))).unwrap();
        std::os::unix::fs::symlink(
            dir.join(format!("{}.json", id(1))),
            dir.join(format!("{}.json", id(10))),
        )
        .unwrap();
        fs::write(dir.join(format!("{}.json", id(8))), vec![b' '; 70 * 1024]).unwrap();

        let listed: Vec<RecordingId> = list(dir).unwrap().into_iter().map(|m| m.id).collect();
        assert_eq!(listed, [id(2), id(3), id(1)]);
        assert_eq!(
            metadata(dir, &id(3)).unwrap().started_at,
            datetime!(2026-03-02 10:00 UTC)
        );
        assert_eq!(
            metadata(dir, &id(5)).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert_eq!(
            metadata(dir, &id(6)).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert_eq!(
            metadata(dir, &id(8)).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert_eq!(
            metadata(dir, &id(9)).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(cast_path(dir, &id(1)), dir.join(format!("{}.cast", id(1))));

        assert!(list(&dir.join("missing")).unwrap().is_empty());
    }

    #[test]
    fn sweep_by_age_spares_running_recordings() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let now = datetime!(2026-03-31 12:00 UTC);
        let retention = Retention {
            max_age: 30 * DAY,
            max_total_bytes: u64::MAX,
        };
        // Ended 31 days ago: goes.
        put(dir, 1, now - 32 * DAY, Some(now - 31 * DAY), 100);
        // Ended 29 days ago (started 40 days ago): stays.
        put(dir, 2, now - 40 * DAY, Some(now - 29 * DAY), 100);
        // No end, started 30.5 days ago: may still be running, stays.
        put(dir, 3, now - 30 * DAY - DAY / 2, None, 100);
        // No end, started 31.5 days ago: crashed, goes.
        put(dir, 4, now - 31 * DAY - DAY / 2, None, 100);
        // Started just now.
        put(dir, 5, now, None, 100);
        // Ended in the future of `now` (clock change): stays.
        put(dir, 6, now, Some(now + DAY), 100);

        let json = fs::metadata(dir.join(format!("{}.json", id(1))))
            .unwrap()
            .len();
        let json4 = fs::metadata(dir.join(format!("{}.json", id(4))))
            .unwrap()
            .len();
        let report = sweep(dir, retention, at(now)).unwrap();
        assert_eq!(report.removed, 2);
        assert_eq!(report.freed_bytes, 200 + json + json4);
        assert_eq!(ids(dir), BTreeSet::from([2, 3, 5, 6]));
        for gone in [1, 4] {
            assert!(!cast_path(dir, &id(gone)).exists());
        }

        // Nothing more to do.
        assert_eq!(
            sweep(dir, retention, at(now)).unwrap(),
            SweepReport::default()
        );
    }

    #[test]
    fn sweep_by_size_removes_the_oldest_finished_first() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let now = datetime!(2026-03-31 12:00 UTC);
        let retention = Retention {
            max_age: 30 * DAY,
            max_total_bytes: 1000,
        };
        // Running, the oldest and the largest: never removed.
        put(dir, 1, now - 10 * DAY, None, 600);
        put(dir, 2, now - 5 * DAY, Some(now - 4 * DAY), 200);
        // Started later than 2 but ended first.
        put(
            dir,
            3,
            now - 4 * DAY - DAY / 2,
            Some(now - 4 * DAY - DAY / 4),
            200,
        );
        put(dir, 4, now - 3 * DAY, Some(now - 2 * DAY), 200);
        put(dir, 5, now - DAY, Some(now - DAY / 2), 200);

        // 1400 bytes: 3, then 2 go (1000 left, not over).
        let report = sweep(dir, retention, at(now)).unwrap();
        assert_eq!(report.removed, 2);
        assert!(report.freed_bytes > 400);
        assert_eq!(ids(dir), BTreeSet::from([1, 4, 5]));

        // A limit the running one alone exceeds: the finished ones go, it stays.
        let tight = Retention {
            max_total_bytes: 100,
            ..retention
        };
        assert_eq!(sweep(dir, tight, at(now)).unwrap().removed, 2);
        assert_eq!(ids(dir), BTreeSet::from([1]));
        assert!(cast_path(dir, &id(1)).exists());
    }

    #[test]
    fn sweep_finishes_a_half_removed_recording() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let now = datetime!(2026-03-31 12:00 UTC);
        put(dir, 1, now - 40 * DAY, Some(now - 40 * DAY), 10);
        fs::remove_file(cast_path(dir, &id(1))).unwrap();
        let retention = Retention {
            max_age: 30 * DAY,
            max_total_bytes: 0,
        };
        assert_eq!(sweep(dir, retention, at(now)).unwrap().removed, 1);
        assert!(fs::read_dir(dir).unwrap().next().is_none());
        assert_eq!(
            sweep(&dir.join("missing"), retention, at(now)).unwrap(),
            SweepReport::default()
        );
    }
}
