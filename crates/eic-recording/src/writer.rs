//! The recorder: writes a session's events as they happen.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::cast::{EventKind, Header};
use crate::meta::{ensure_dir, write_metadata};
use crate::{cast_path, Kind, Metadata};

/// Most UTF-8 bytes of data in one event; longer chunks become several
/// events at the same time. Even escaped six-fold (`\u0000`), an event stays
/// far below [`crate::MAX_LINE_BYTES`], so every recording can be read back.
pub const MAX_EVENT_DATA: usize = 64 * 1024;

/// [`RecorderOptions::max_bytes`] by default.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Buffered events reach the OS at least this often.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

const TRUNCATED_MARKER: &str = "recording truncated: size limit reached";

/// How a session is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecorderOptions {
    /// Record what is typed too (off by default: it includes passwords typed
    /// at prompts that do not echo them). Input bytes are counted either way.
    pub record_input: bool,
    /// Size at which the `.cast` file stops growing: an output or input
    /// event that would pass it is replaced by the truncation marker, the
    /// only line written past it.
    pub max_bytes: u64,
}

impl Default for RecorderOptions {
    fn default() -> Self {
        Self {
            record_input: false,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// Writes one recording: `<id>.cast` as events arrive, `<id>.json` at the
/// start and at [`Recorder::finish`].
///
/// Dropped without `finish`, the buffered events still reach the file but
/// the metadata keeps `endedAt` null, as after a crash.
#[derive(Debug)]
pub struct Recorder {
    dir: PathBuf,
    meta: Metadata,
    options: RecorderOptions,
    cast: BufWriter<File>,
    /// Bytes handed to `cast`, header included.
    written: u64,
    start: Instant,
    last_flush: Instant,
    output_text: Utf8Stream,
    input_text: Utf8Stream,
}

impl Recorder {
    /// Starts a recording of `meta.id` in `dir` (created 0700 if missing):
    /// writes the asciicast header and the metadata. Event times count from
    /// this call; the header's timestamp is `meta.started_at`. Whatever
    /// `meta` says about the end, the counters, truncation and input
    /// recording is reset to a start's values. An id already recorded is
    /// refused (`AlreadyExists`).
    pub fn create(dir: &Path, meta: Metadata, options: RecorderOptions) -> io::Result<Recorder> {
        ensure_dir(dir)?;
        let meta = Metadata {
            ended_at: None,
            bytes_out: 0,
            bytes_in: 0,
            input_recorded: options.record_input,
            truncated: false,
            end_reason: None,
            ..meta
        };
        let path = cast_path(dir, &meta.id);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        let mut header = serde_json::to_vec(&Header {
            version: 2,
            width: meta.width,
            height: meta.height,
            timestamp: Some(meta.started_at.unix_timestamp()),
            env: BTreeMap::from([("TERM".to_owned(), "xterm-256color".to_owned())]),
            title: Some(title(&meta)),
        })?;
        header.push(b'\n');
        let mut cast = BufWriter::new(file);
        let started = cast
            .write_all(&header)
            .and_then(|()| cast.flush())
            .and_then(|()| write_metadata(dir, &meta));
        if let Err(e) = started {
            drop(cast);
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        let now = Instant::now();
        Ok(Recorder {
            dir: dir.to_owned(),
            meta,
            options,
            cast,
            written: header.len() as u64,
            start: now,
            last_flush: now,
            output_text: Utf8Stream::default(),
            input_text: Utf8Stream::default(),
        })
    }

    /// The metadata as it will be written at the end, counters so far.
    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// Records bytes the terminal printed.
    pub fn output(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.meta.bytes_out = self.meta.bytes_out.saturating_add(bytes.len() as u64);
        if !self.meta.truncated {
            let text = self.output_text.push(bytes);
            self.stream_event(EventKind::Output, &text)?;
        }
        self.flush_if_due()
    }

    /// Counts bytes typed, and records them if the options say so.
    pub fn input(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.meta.bytes_in = self.meta.bytes_in.saturating_add(bytes.len() as u64);
        if self.options.record_input && !self.meta.truncated {
            let text = self.input_text.push(bytes);
            self.stream_event(EventKind::Input, &text)?;
        }
        self.flush_if_due()
    }

    /// Records a terminal size change.
    pub fn resize(&mut self, cols: u16, rows: u16) -> io::Result<()> {
        if !self.meta.truncated {
            let time = self.start.elapsed();
            self.write_event(time, EventKind::Resize, &format!("{cols}x{rows}"))?;
        }
        self.flush_if_due()
    }

    /// Records a marker, cut to [`MAX_EVENT_DATA`] bytes.
    pub fn marker(&mut self, label: &str) -> io::Result<()> {
        if !self.meta.truncated {
            let time = self.start.elapsed();
            let label = pieces(label).next().unwrap_or_default();
            self.write_event(time, EventKind::Marker, label)?;
        }
        self.flush_if_due()
    }

    /// Hands buffered events to the OS; the caller calls it once a second
    /// while the session is idle (a write does it itself when due).
    pub fn flush(&mut self) -> io::Result<()> {
        self.cast.flush()?;
        self.last_flush = Instant::now();
        Ok(())
    }

    /// Ends the recording: writes any incomplete character left at the end
    /// of a stream (as U+FFFD), fsyncs the `.cast` file and writes the final
    /// metadata, which it returns.
    pub fn finish(mut self, end_reason: &str) -> io::Result<Metadata> {
        if !self.meta.truncated {
            let output = self.output_text.finish();
            self.stream_event(EventKind::Output, &output)?;
        }
        if !self.meta.truncated {
            let input = self.input_text.finish();
            self.stream_event(EventKind::Input, &input)?;
        }
        self.cast.flush()?;
        self.cast.get_ref().sync_all()?;
        self.meta.ended_at = Some(OffsetDateTime::now_utc());
        self.meta.end_reason = Some(end_reason.to_owned());
        write_metadata(&self.dir, &self.meta)?;
        Ok(self.meta)
    }

    /// Writes decoded output or input, in as many events as it takes, unless
    /// that would take the file over its limit: then the file ends with the
    /// truncation marker instead.
    fn stream_event(&mut self, kind: EventKind, text: &str) -> io::Result<()> {
        let time = self.start.elapsed();
        for piece in pieces(text) {
            let line = event_line(time, kind, piece)?;
            if self.written.saturating_add(line.len() as u64) > self.options.max_bytes {
                self.write_event(time, EventKind::Marker, TRUNCATED_MARKER)?;
                self.meta.truncated = true;
                return Ok(());
            }
            self.write_line(&line)?;
        }
        Ok(())
    }

    fn write_event(&mut self, time: Duration, kind: EventKind, data: &str) -> io::Result<()> {
        let line = event_line(time, kind, data)?;
        self.write_line(&line)
    }

    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.cast.write_all(line)?;
        self.written = self.written.saturating_add(line.len() as u64);
        Ok(())
    }

    fn flush_if_due(&mut self) -> io::Result<()> {
        if self.last_flush.elapsed() >= FLUSH_INTERVAL {
            self.flush()?;
        }
        Ok(())
    }
}

fn title(meta: &Metadata) -> String {
    match (meta.kind, &meta.os_user, meta.serial_port) {
        (Kind::Ssh, Some(user), _) => format!("{user}@{}", meta.instance_id),
        (Kind::Serial, _, Some(port)) => format!("{} serial port {port}", meta.instance_id),
        _ => meta.instance_id.clone(),
    }
}

/// `[1.234567, "o", "data"]\n`: seconds with microseconds, as asciinema
/// writes them.
fn event_line(time: Duration, kind: EventKind, data: &str) -> io::Result<Vec<u8>> {
    let mut line = Vec::with_capacity(data.len() + 32);
    write!(
        line,
        "[{}.{:06}, \"{}\", ",
        time.as_secs(),
        time.subsec_micros(),
        kind.code()
    )?;
    serde_json::to_writer(&mut line, data)?;
    line.extend_from_slice(b"]\n");
    Ok(line)
}

/// `text` in pieces of at most [`MAX_EVENT_DATA`] bytes, cut between
/// characters; nothing for an empty text.
fn pieces(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = rest.len().min(MAX_EVENT_DATA);
        // A character is at most 4 bytes, so this stops above 0.
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (piece, after) = rest.split_at(end);
        rest = after;
        Some(piece)
    })
}

/// Decodes a byte stream arriving in chunks as `String::from_utf8_lossy`
/// would decode it whole: a character split between chunks waits for its
/// end (at most 3 bytes wait).
#[derive(Debug, Default)]
struct Utf8Stream {
    tail: Vec<u8>,
}

impl Utf8Stream {
    /// The text complete after `bytes`.
    fn push(&mut self, bytes: &[u8]) -> String {
        let joined;
        let mut rest = if self.tail.is_empty() {
            bytes
        } else {
            self.tail.extend_from_slice(bytes);
            joined = std::mem::take(&mut self.tail);
            &joined[..]
        };
        let mut text = String::with_capacity(rest.len());
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    text.push_str(valid);
                    return text;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    text.push_str(&String::from_utf8_lossy(valid));
                    match e.error_len() {
                        Some(invalid) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[invalid..];
                        }
                        // The start of a character that may end in the
                        // next chunk.
                        None => {
                            self.tail = after.to_vec();
                            return text;
                        }
                    }
                }
            }
        }
    }

    /// What is left at the end of the stream: an incomplete character is
    /// one U+FFFD, as in a lossy decoding of the whole.
    fn finish(&mut self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut self.tail)).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::sample;
    use crate::{read_cast, Cast, Event, RecordingId, Source};
    use proptest::prelude::*;
    use serde_json::{json, Value};
    use std::os::unix::fs::PermissionsExt;

    struct Recorded {
        meta: Metadata,
        text: String,
        cast: Cast,
    }

    fn record(options: RecorderOptions, session: impl FnOnce(&mut Recorder)) -> Recorded {
        let tmp = tempfile::tempdir().unwrap();
        let id = RecordingId::random().unwrap();
        let mut recorder = Recorder::create(tmp.path(), sample(id), options).unwrap();
        session(&mut recorder);
        let meta = recorder.finish("client closed").unwrap();
        let text = fs::read_to_string(cast_path(tmp.path(), &id)).unwrap();
        let cast = read_cast(text.as_bytes()).unwrap();
        Recorded { meta, text, cast }
    }

    fn events(cast: &Cast) -> Vec<(EventKind, &str)> {
        cast.events
            .iter()
            .map(|e| (e.kind, e.data.as_str()))
            .collect()
    }

    fn output(cast: &Cast) -> String {
        cast.events
            .iter()
            .filter(|e| e.kind == EventKind::Output)
            .map(|e| e.data.as_str())
            .collect()
    }

    #[test]
    fn header_and_event_lines_are_asciicast_v2() {
        let r = record(RecorderOptions::default(), |rec| {
            rec.output(b"hello\r\n\x1b[1m\"q\"\x00").unwrap();
            rec.resize(120, 40).unwrap();
            rec.marker("reconnected").unwrap();
        });
        let lines: Vec<&str> = r.text.lines().collect();
        assert_eq!(lines.len(), 4, "{}", r.text);
        let header: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(
            header,
            json!({
                "version": 2,
                "width": 80,
                "height": 24,
                "timestamp": 1_772_366_400,
                "env": {"TERM": "xterm-256color"},
                "title": "ec2-user@i-0123456789abcdef0",
            })
        );
        // Keys in the order the spec lists them.
        assert!(lines[0].starts_with(r#"{"version":2,"width":80,"height":24,"timestamp":"#));
        for (line, (code, data)) in lines[1..].iter().zip([
            ("o", "hello\r\n\u{1b}[1m\"q\"\u{0}"),
            ("r", "120x40"),
            ("m", "reconnected"),
        ]) {
            let event: Value = serde_json::from_str(line).unwrap();
            let event = event.as_array().unwrap();
            assert_eq!(event.len(), 3);
            assert!(event[0].as_f64().unwrap() >= 0.0);
            assert_eq!(event[1], code);
            assert_eq!(event[2], data);
            // Seconds with exactly six decimals.
            let time = line.strip_prefix('[').unwrap().split(',').next().unwrap();
            let (secs, micros) = time.split_once('.').unwrap();
            assert!(
                !secs.is_empty() && secs.bytes().all(|b| b.is_ascii_digit()),
                "{line}"
            );
            assert!(
                micros.len() == 6 && micros.bytes().all(|b| b.is_ascii_digit()),
                "{line}"
            );
        }
        assert_eq!(
            events(&r.cast),
            [
                (EventKind::Output, "hello\r\n\u{1b}[1m\"q\"\u{0}"),
                (EventKind::Resize, "120x40"),
                (EventKind::Marker, "reconnected"),
            ]
        );
    }

    #[test]
    fn event_lines_have_microseconds() {
        let line = event_line(Duration::new(3, 4_567_891), EventKind::Output, "a").unwrap();
        assert_eq!(line, b"[3.004567, \"o\", \"a\"]\n");
        let line = event_line(Duration::ZERO, EventKind::Input, "").unwrap();
        assert_eq!(line, b"[0.000000, \"i\", \"\"]\n");
    }

    #[test]
    fn serial_title() {
        let tmp = tempfile::tempdir().unwrap();
        let id = RecordingId::random().unwrap();
        let mut meta = sample(id);
        meta.kind = Kind::Serial;
        meta.source = Source::SerialGateway;
        meta.os_user = None;
        meta.serial_port = Some(0);
        Recorder::create(tmp.path(), meta, RecorderOptions::default()).unwrap();
        let cast = read_cast(fs::read(cast_path(tmp.path(), &id)).unwrap().as_slice()).unwrap();
        assert_eq!(
            cast.header.title.as_deref(),
            Some("i-0123456789abcdef0 serial port 0")
        );
    }

    #[test]
    fn input_is_counted_but_written_only_when_asked() {
        let r = record(RecorderOptions::default(), |rec| {
            rec.input(b"secret\r").unwrap();
            rec.output(b"ok").unwrap();
        });
        assert_eq!(events(&r.cast), [(EventKind::Output, "ok")]);
        assert_eq!((r.meta.bytes_in, r.meta.bytes_out), (7, 2));
        assert!(!r.meta.input_recorded);

        let options = RecorderOptions {
            record_input: true,
            ..RecorderOptions::default()
        };
        let r = record(options, |rec| {
            rec.input(b"ls\r").unwrap();
            rec.output(b"file").unwrap();
        });
        assert_eq!(
            events(&r.cast),
            [(EventKind::Input, "ls\r"), (EventKind::Output, "file")]
        );
        assert!(r.meta.input_recorded);
        assert_eq!((r.meta.bytes_in, r.meta.bytes_out), (3, 4));
    }

    #[test]
    fn characters_split_between_chunks_are_reassembled() {
        let text = "aé€😀z";
        let bytes = text.as_bytes();
        // Split in two at every byte boundary.
        for at in 0..=bytes.len() {
            let r = record(RecorderOptions::default(), |rec| {
                rec.output(&bytes[..at]).unwrap();
                rec.output(&bytes[at..]).unwrap();
            });
            assert_eq!(output(&r.cast), text, "split at {at}");
            assert!(r.cast.events.iter().all(|e| !e.data.is_empty()));
        }
        // One byte at a time, in both directions at once.
        let options = RecorderOptions {
            record_input: true,
            ..RecorderOptions::default()
        };
        let r = record(options, |rec| {
            for b in bytes {
                rec.output(&[*b]).unwrap();
                rec.input(&[*b]).unwrap();
            }
        });
        assert_eq!(output(&r.cast), text);
        let input: String = r
            .cast
            .events
            .iter()
            .filter(|e| e.kind == EventKind::Input)
            .map(|e| e.data.as_str())
            .collect();
        assert_eq!(input, text);
        assert_eq!(r.meta.bytes_out, bytes.len() as u64);
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let r = record(RecorderOptions::default(), |rec| {
            rec.output(b"a\xffb\xc3").unwrap(); // \xc3 waits for its end...
            rec.output(b"(c\xed\xa0\x80").unwrap(); // ...which never comes; a surrogate
            rec.output(b"\xf0\x9f").unwrap(); // cut by the end of the session
        });
        assert_eq!(
            output(&r.cast),
            "a\u{fffd}b\u{fffd}(c\u{fffd}\u{fffd}\u{fffd}\u{fffd}"
        );
        assert_eq!(
            output(&r.cast),
            String::from_utf8_lossy(b"a\xffb\xc3(c\xed\xa0\x80\xf0\x9f")
        );
    }

    #[test]
    fn long_chunks_become_several_readable_events() {
        let chunk = vec![0u8; 3 * MAX_EVENT_DATA + 5];
        let r = record(RecorderOptions::default(), |rec| {
            rec.output(&chunk).unwrap()
        });
        assert_eq!(r.cast.events.len(), 4);
        assert!(r.cast.events.iter().all(|e| e.data.len() <= MAX_EVENT_DATA));
        assert_eq!(output(&r.cast).len(), chunk.len());
        assert!(r.text.lines().all(|l| l.len() < crate::MAX_LINE_BYTES));

        // Never cut inside a character.
        let text = "€".repeat(MAX_EVENT_DATA);
        let r = record(RecorderOptions::default(), |rec| {
            rec.output(text.as_bytes()).unwrap()
        });
        assert_eq!(output(&r.cast), text);
    }

    #[test]
    fn the_size_limit_truncates_with_one_marker() {
        let options = RecorderOptions {
            record_input: true,
            max_bytes: 400,
        };
        let tmp = tempfile::tempdir().unwrap();
        let id = RecordingId::random().unwrap();
        let mut rec = Recorder::create(tmp.path(), sample(id), options).unwrap();
        for _ in 0..20 {
            rec.output(&[b'x'; 30]).unwrap();
            rec.input(b"y").unwrap();
            rec.resize(100, 30).unwrap();
            rec.marker("m").unwrap();
        }
        assert!(rec.metadata().truncated);
        rec.output("é".as_bytes()).unwrap();
        let meta = rec.finish("closed").unwrap();
        assert!(meta.truncated);
        assert_eq!(meta.bytes_out, 20 * 30 + 2);
        assert_eq!(meta.bytes_in, 20);

        let text = fs::read_to_string(cast_path(tmp.path(), &id)).unwrap();
        let cast = read_cast(text.as_bytes()).unwrap();
        let last = cast.events.last().unwrap();
        assert_eq!(
            (last.kind, last.data.as_str()),
            (EventKind::Marker, TRUNCATED_MARKER)
        );
        let markers = cast
            .events
            .iter()
            .filter(|e| e.data == TRUNCATED_MARKER)
            .count();
        assert_eq!(markers, 1);
        let last_line = text.lines().last().unwrap().len() as u64 + 1;
        assert!(text.len() as u64 - last_line <= 400, "{} bytes", text.len());
        assert!(output(&cast).len() >= 30);
    }

    #[test]
    fn finish_writes_the_final_metadata() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("recordings");
        let id = RecordingId::random().unwrap();
        let mut start = sample(id);
        // Whatever the caller put there, a recording starts from zero.
        start.bytes_out = 99;
        start.truncated = true;
        start.end_reason = Some("x".into());
        let mut rec = Recorder::create(&dir, start, RecorderOptions::default()).unwrap();

        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        for path in [cast_path(&dir, &id), dir.join(format!("{id}.json"))] {
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let running = crate::metadata(&dir, &id).unwrap();
        assert_eq!(running, sample(id));
        assert_eq!(running.ended_at, None);

        rec.output(b"abc").unwrap();
        rec.input(b"de").unwrap();
        rec.flush().unwrap();
        // Flushed: a reader sees the event while the session runs.
        let cast = read_cast(fs::read(cast_path(&dir, &id)).unwrap().as_slice()).unwrap();
        assert_eq!(events(&cast), [(EventKind::Output, "abc")]);

        let before = OffsetDateTime::now_utc();
        let meta = rec.finish("session closed by client").unwrap();
        assert_eq!(meta.bytes_out, 3);
        assert_eq!(meta.bytes_in, 2);
        assert!(!meta.truncated);
        assert_eq!(meta.end_reason.as_deref(), Some("session closed by client"));
        let ended = meta.ended_at.unwrap();
        assert!(ended >= before && ended <= OffsetDateTime::now_utc());
        assert_eq!(crate::metadata(&dir, &id).unwrap(), meta);
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            2,
            "no temporary file left"
        );
    }

    #[test]
    fn an_id_is_recorded_once() {
        let tmp = tempfile::tempdir().unwrap();
        let id = RecordingId::random().unwrap();
        let rec = Recorder::create(tmp.path(), sample(id), RecorderOptions::default()).unwrap();
        let err = Recorder::create(tmp.path(), sample(id), RecorderOptions::default()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        rec.finish("done").unwrap();
    }

    #[test]
    fn dropped_without_finish_keeps_its_events() {
        let tmp = tempfile::tempdir().unwrap();
        let id = RecordingId::random().unwrap();
        let mut rec = Recorder::create(tmp.path(), sample(id), RecorderOptions::default()).unwrap();
        rec.output(b"partial").unwrap();
        drop(rec);
        let cast = read_cast(fs::read(cast_path(tmp.path(), &id)).unwrap().as_slice()).unwrap();
        assert_eq!(output(&cast), "partial");
        assert_eq!(crate::metadata(tmp.path(), &id).unwrap().ended_at, None);
    }

    #[test]
    fn markers_are_cut_to_the_event_size() {
        let label = "é".repeat(MAX_EVENT_DATA);
        let r = record(RecorderOptions::default(), |rec| {
            rec.marker(&label).unwrap()
        });
        let Event { kind, data, .. } = &r.cast.events[0];
        assert_eq!(*kind, EventKind::Marker);
        assert_eq!(data.len(), MAX_EVENT_DATA);
        assert!(label.starts_with(data.as_str()));
    }

    fn chunked(bytes: Vec<u8>, cuts: Vec<usize>) -> Vec<Vec<u8>> {
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut from = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            chunks.push(bytes[from..cut].to_vec());
            from = cut;
        }
        chunks
    }

    proptest! {
        // Each case creates and finishes a recording, fsyncs included.
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn output_reads_back_as_a_lossy_decoding_of_the_stream(
            chunks in prop_oneof![
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..24), 0..24),
                (any::<String>(), proptest::collection::vec(any::<usize>(), 0..12))
                    .prop_map(|(s, cuts)| chunked(s.into_bytes(), cuts)),
                (
                    proptest::collection::vec(
                        prop_oneof![Just(0xe2u8), Just(0x82), Just(0xac), Just(0xf0), Just(0x9f), Just(0xc3), Just(0xa9), Just(b'a'), Just(0xff)],
                        0..64,
                    ),
                    proptest::collection::vec(any::<usize>(), 0..12),
                )
                    .prop_map(|(bytes, cuts)| chunked(bytes, cuts)),
            ],
        ) {
            let r = record(RecorderOptions { record_input: false, max_bytes: u64::MAX }, |rec| {
                for chunk in &chunks {
                    rec.output(chunk).unwrap();
                }
            });
            let all = chunks.concat();
            prop_assert!(!r.meta.truncated);
            prop_assert_eq!(r.meta.bytes_out, all.len() as u64);
            prop_assert_eq!(output(&r.cast), String::from_utf8_lossy(&all));
        }
    }
}
