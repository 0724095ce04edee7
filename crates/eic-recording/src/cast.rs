//! The asciicast v2 format: its header, its events, and a reader that holds
//! up against any input (a recording may be cut by a crash, or not be ours).

use std::collections::BTreeMap;
use std::io::{self, BufRead};

use serde::{Deserialize, Deserializer, Serialize};

/// Longest line [`read_cast`] accepts, newline excluded. The recorder splits
/// its events well below this ([`crate::MAX_EVENT_DATA`]).
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Most events [`read_cast`] accepts, so that memory stays bounded whatever
/// the file.
pub const MAX_EVENTS: usize = 10_000_000;

/// The first line of an asciicast v2 file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Always 2.
    pub version: u32,
    pub width: u16,
    pub height: u16,
    /// Unix seconds of the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// Environment of the recorded terminal (`TERM`); null values, which
    /// asciinema writes for unset variables, are dropped.
    #[serde(
        default,
        deserialize_with = "env_without_nulls",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

fn env_without_nulls<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let env = Option::<BTreeMap<String, Option<String>>>::deserialize(d)?;
    Ok(env
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect())
}

/// What an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `"o"`: bytes the terminal printed.
    Output,
    /// `"i"`: bytes typed.
    Input,
    /// `"r"`: the terminal was resized to `data` (`"COLSxROWS"`).
    Resize,
    /// `"m"`: a marker, `data` its label.
    Marker,
}

impl EventKind {
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::Output => "o",
            Self::Input => "i",
            Self::Resize => "r",
            Self::Marker => "m",
        }
    }
}

/// One event line.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Seconds since the start of the recording.
    pub time: f64,
    pub kind: EventKind,
    pub data: String,
}

/// A whole recording read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Cast {
    pub header: Header,
    pub events: Vec<Event>,
}

/// Why a recording could not be read. Line numbers count from 1 (the header).
#[derive(Debug, thiserror::Error)]
pub enum CastError {
    #[error("reading line {line}: {source}")]
    Io { line: u64, source: io::Error },
    #[error("empty recording: no header line")]
    Empty,
    #[error("line {line}: longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong { line: u64 },
    #[error("line {line}: more than {MAX_EVENTS} events")]
    TooManyEvents { line: u64 },
    #[error("line {line}: {reason}")]
    Invalid { line: u64, reason: String },
}

/// Reads an asciicast v2 recording.
///
/// Blank lines are skipped. A last line without its newline that does not
/// parse is dropped: it is what a crash in the middle of a write leaves (a
/// complete last line without newline is kept). Every other malformed line
/// is an error naming it.
pub fn read_cast(mut reader: impl BufRead) -> Result<Cast, CastError> {
    let mut buf = Vec::new();
    let mut line = 1;
    if read_line(&mut reader, &mut buf, line)?.is_none() {
        return Err(CastError::Empty);
    }
    let header = parse_header(&buf).map_err(|reason| CastError::Invalid { line, reason })?;
    let mut events = Vec::new();
    loop {
        line += 1;
        let Some(terminated) = read_line(&mut reader, &mut buf, line)? else {
            break;
        };
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_event(&buf) {
            Ok(event) => {
                if events.len() >= MAX_EVENTS {
                    return Err(CastError::TooManyEvents { line });
                }
                events.push(event);
            }
            Err(_) if !terminated => break,
            Err(reason) => return Err(CastError::Invalid { line, reason }),
        }
    }
    Ok(Cast { header, events })
}

/// Reads the next line into `buf` without its `\n` (or `\r\n`), never
/// holding more than [`MAX_LINE_BYTES`]. Returns whether it ended with a
/// newline, or None at the end of the input.
fn read_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    line: u64,
) -> Result<Option<bool>, CastError> {
    buf.clear();
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(CastError::Io { line, source }),
        };
        if available.is_empty() {
            return Ok((!buf.is_empty()).then_some(false));
        }
        let newline = available.iter().position(|&b| b == b'\n');
        let content = newline.unwrap_or(available.len());
        if buf.len() + content > MAX_LINE_BYTES {
            return Err(CastError::LineTooLong { line });
        }
        buf.extend_from_slice(&available[..content]);
        reader.consume(newline.map_or(content, |n| n + 1));
        if newline.is_some() {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Some(true));
        }
    }
}

fn parse_header(line: &[u8]) -> Result<Header, String> {
    let header: Header = serde_json::from_slice(line).map_err(|e| format!("header: {e}"))?;
    if header.version != 2 {
        return Err(format!(
            "asciicast version {} (only version 2 is read)",
            header.version
        ));
    }
    Ok(header)
}

fn parse_event(line: &[u8]) -> Result<Event, String> {
    let (time, code, data): (f64, String, String) =
        serde_json::from_slice(line).map_err(|e| format!("event: {e}"))?;
    if !(time.is_finite() && time >= 0.0) {
        return Err(format!(
            "event time {time} is not a non-negative number of seconds"
        ));
    }
    let kind = match code.as_str() {
        "o" => EventKind::Output,
        "i" => EventKind::Input,
        "r" => EventKind::Resize,
        "m" => EventKind::Marker,
        // Quoted only when short: the code comes from the file.
        other if other.len() <= 8 => return Err(format!("unknown event type {other:?}")),
        _ => return Err("unknown event type".into()),
    };
    if kind == EventKind::Resize && !is_size(&data) {
        return Err("resize event data is not \"COLSxROWS\"".into());
    }
    Ok(Event { time, kind, data })
}

fn is_size(data: &str) -> bool {
    let dimension = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u16>().is_ok()
    };
    data.split_once('x')
        .is_some_and(|(cols, rows)| dimension(cols) && dimension(rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEADER: &str = r#"{"version":2,"width":80,"height":24,"timestamp":1772366400,"env":{"TERM":"xterm-256color","SHELL":null},"title":"t"}"#;

    fn read(text: &str) -> Result<Cast, CastError> {
        read_cast(text.as_bytes())
    }

    fn invalid_line(err: CastError) -> (u64, String) {
        match err {
            CastError::Invalid { line, reason } => (line, reason),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn reads_header_and_every_event_kind() {
        let cast = read(&format!(
            "{HEADER}\n[0.5, \"o\", \"hi\\r\\n\"]\n\n[1.000001, \"i\", \"x\"]\r\n[2, \"r\", \"100x40\"]\n[3.25, \"m\", \"mark\"]"
        ))
        .unwrap();
        assert_eq!(cast.header.version, 2);
        assert_eq!((cast.header.width, cast.header.height), (80, 24));
        assert_eq!(cast.header.timestamp, Some(1_772_366_400));
        assert_eq!(cast.header.env.len(), 1);
        assert_eq!(cast.header.env["TERM"], "xterm-256color");
        assert_eq!(cast.header.title.as_deref(), Some("t"));
        let kinds: Vec<_> = cast
            .events
            .iter()
            .map(|e| (e.time, e.kind, e.data.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (0.5, EventKind::Output, "hi\r\n"),
                (1.000001, EventKind::Input, "x"),
                (2.0, EventKind::Resize, "100x40"),
                (3.25, EventKind::Marker, "mark"),
            ]
        );
    }

    #[test]
    fn an_unterminated_broken_last_line_is_skipped() {
        let cast = read(&format!("{HEADER}\n[0.5, \"o\", \"a\"]\n[0.6, \"o\", \"b")).unwrap();
        assert_eq!(cast.events.len(), 1);
        // Cut inside a multi-byte character too.
        let mut bytes = format!("{HEADER}\n[0.5, \"o\", \"a\"]\n[0.6, \"o\", \"").into_bytes();
        bytes.push(0xe2);
        assert_eq!(read_cast(&bytes[..]).unwrap().events.len(), 1);
        // Complete but unterminated: kept.
        let cast = read(&format!("{HEADER}\n[0.5, \"o\", \"a\"]")).unwrap();
        assert_eq!(cast.events.len(), 1);
    }

    #[test]
    fn errors_name_the_line() {
        let (line, reason) = invalid_line(
            read(&format!(
                "{HEADER}\n[0.5, \"o\", \"a\"]\n[0.6, \"o\"\n[1, \"o\", \"b\"]\n"
            ))
            .unwrap_err(),
        );
        assert_eq!(line, 3);
        assert!(reason.starts_with("event: "), "{reason}");
        for (bad, expect) in [
            ("[0.6, \"x\", \"b\"]", "unknown event type \"x\""),
            ("[-1, \"o\", \"b\"]", "not a non-negative"),
            ("[1, \"r\", \"80 by 24\"]", "COLSxROWS"),
            ("[1, \"r\", \"80x99999\"]", "COLSxROWS"),
            ("[1, \"o\", \"b\", 4]", "event: "),
            ("{\"a\": 1}", "event: "),
            ("[1e999, \"o\", \"b\"]", "event: "),
        ] {
            let (line, reason) = invalid_line(read(&format!("{HEADER}\n{bad}\n")).unwrap_err());
            assert_eq!(line, 2, "{bad}");
            assert!(reason.contains(expect), "{bad}: {reason}");
        }
        let (line, reason) =
            invalid_line(read("{\"version\":1,\"width\":80,\"height\":24}\n").unwrap_err());
        assert_eq!(line, 1);
        assert!(reason.contains("version 1"), "{reason}");
        let (line, reason) = invalid_line(read("[0.5, \"o\", \"a\"]\n").unwrap_err());
        assert_eq!(line, 1);
        assert!(reason.starts_with("header: "), "{reason}");
        assert!(matches!(read(""), Err(CastError::Empty)));
        let mut bytes = format!("{HEADER}\n[1, \"o\", \"").into_bytes();
        bytes.extend_from_slice(&[0xff, b'"', b']', b'\n']);
        assert_eq!(invalid_line(read_cast(&bytes[..]).unwrap_err()).0, 2);
    }

    #[test]
    fn long_lines_are_refused_without_reading_them_whole() {
        let long = format!("[1, \"o\", \"{}\"]\n", "a".repeat(MAX_LINE_BYTES));
        let err = read(&format!("{HEADER}\n{long}")).unwrap_err();
        assert!(matches!(err, CastError::LineTooLong { line: 2 }), "{err:?}");
        assert!(err.to_string().starts_with("line 2: longer than"));
        // Exactly at the limit is fine.
        let data = "a".repeat(MAX_LINE_BYTES - "[1, \"o\", \"\"]".len());
        let cast = read(&format!("{HEADER}\n[1, \"o\", \"{data}\"]\n")).unwrap();
        assert_eq!(cast.events[0].data.len(), data.len());
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = read_cast(&bytes[..]);
        }

        #[test]
        fn never_panics_after_a_valid_header(
            lines in proptest::collection::vec(
                prop_oneof![
                    "[0-9.e+-]{0,8}".prop_map(|t| format!("[{t}, \"o\", \"x\"]")),
                    "\\[[0-9., \"oirm\\\\ux-]{0,24}\\]?",
                    any::<String>(),
                ],
                0..16,
            ),
        ) {
            let text = format!("{HEADER}\n{}", lines.join("\n"));
            let _ = read_cast(text.as_bytes());
        }
    }
}
