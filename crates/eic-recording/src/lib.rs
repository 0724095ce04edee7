//! Session recordings for the eic browser console and serial gateway.
//!
//! A recording is two files in one directory, both named by a
//! [`RecordingId`] (32 lowercase hex characters, so no caller-supplied name
//! can point outside the directory):
//!
//! - `<id>.cast`, the terminal stream in [asciicast v2]: a JSON header object
//!   on the first line, then one JSON array per line,
//!   `[seconds, code, data]`, where `seconds` counts from the start with
//!   microsecond precision and `code` is `"o"` (output), `"i"` (input),
//!   `"r"` (resize, data `"COLSxROWS"`) or `"m"` (marker). `asciinema play`
//!   replays it as is.
//! - `<id>.json`, the [`Metadata`]: who, which instance, when, byte counts
//!   and how it ended. It is written at start and again at the end, each
//!   time to a temporary file renamed over the old one, so a reader sees one
//!   whole version or the other.
//!
//! Both files are 0600 and the directory is created 0700: a recording holds
//! whatever crossed the terminal, passwords typed at a prompt included (which
//! is also why input is recorded only when asked for).
//!
//! Durability: [`Recorder`] buffers events and hands them to the OS at least
//! once a second (on any write once a second has passed, and on the caller's
//! idle timer through [`Recorder::flush`]), so a crash of the process loses
//! at most the last second; [`Recorder::finish`] fsyncs. A recording whose
//! metadata has no `endedAt` is either still running or was cut by a crash;
//! [`read_cast`] therefore skips an unterminated last line instead of failing.
//!
//! Size: the `.cast` file stops growing at [`RecorderOptions::max_bytes`]; the
//! recorder then writes one marker event saying so, sets
//! [`Metadata::truncated`], and from then on only counts bytes (later
//! resizes and markers are dropped too, so nothing can grow the file).
//! [`sweep`] bounds the directory by age and total size.
//!
//! Terminal bytes are not always UTF-8 and a read may end inside a
//! multi-byte character, while asciicast data are JSON strings: the recorder
//! keeps an incomplete character for the next chunk and writes invalid bytes
//! as U+FFFD, so the recorded text equals a lossy decoding of the whole
//! stream.
//!
//! [asciicast v2]: https://docs.asciinema.org/manual/asciicast/v2/

mod cast;
mod dir;
mod id;
mod meta;
mod writer;

pub use cast::{read_cast, Cast, CastError, Event, EventKind, Header, MAX_EVENTS, MAX_LINE_BYTES};
pub use dir::{cast_path, list, metadata, sweep, Retention, SweepReport, CRASH_GRACE};
pub use id::{InvalidRecordingId, RecordingId};
pub use meta::{Kind, Metadata, Source};
pub use writer::{Recorder, RecorderOptions, DEFAULT_MAX_BYTES, MAX_EVENT_DATA};

#[cfg(test)]
mod testutil {
    use crate::{Kind, Metadata, RecordingId, Source};
    use time::macros::datetime;

    /// An SSH console recording's metadata at its start.
    pub(crate) fn sample(id: RecordingId) -> Metadata {
        Metadata {
            id,
            kind: Kind::Ssh,
            source: Source::Console,
            principal_arn: "arn:aws:iam::123456789012:user/alice".into(),
            instance_id: "i-0123456789abcdef0".into(),
            os_user: Some("ec2-user".into()),
            serial_port: None,
            started_at: datetime!(2026-03-01 12:00:00 UTC),
            ended_at: None,
            width: 80,
            height: 24,
            bytes_out: 0,
            bytes_in: 0,
            input_recorded: false,
            truncated: false,
            end_reason: None,
        }
    }
}
