//! `<id>.json`: what a recording is of, and how it ended.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::RecordingId;

/// A metadata file larger than this is not ours: refused rather than read
/// whole (real ones are a few hundred bytes).
const MAX_METADATA_BYTES: u64 = 64 * 1024;

/// What was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An SSH session to an instance.
    Ssh,
    /// An instance's serial console.
    Serial,
}

/// Which eic component recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The browser console.
    Console,
    /// The serial console gateway.
    SerialGateway,
}

/// A recording's metadata, stored as camelCase JSON in `<id>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub id: RecordingId,
    pub kind: Kind,
    pub source: Source,
    /// The IAM principal that opened the session.
    pub principal_arn: String,
    pub instance_id: String,
    /// The OS user of an SSH session.
    pub os_user: Option<String>,
    /// The serial port of a serial console session.
    pub serial_port: Option<u8>,
    #[serde(with = "rfc3339")]
    pub started_at: OffsetDateTime,
    /// None while the session runs, and forever after a crash.
    #[serde(with = "rfc3339_option")]
    pub ended_at: Option<OffsetDateTime>,
    /// Terminal size at the start (later sizes are `"r"` events).
    pub width: u16,
    pub height: u16,
    /// Output bytes seen, recorded or not (after truncation too).
    pub bytes_out: u64,
    /// Input bytes seen, recorded or not.
    pub bytes_in: u64,
    pub input_recorded: bool,
    /// The `.cast` file reached its size limit and later events are missing.
    pub truncated: bool,
    pub end_reason: Option<String>,
}

impl Metadata {
    /// Who the session was with: the OS user, or `serial port N`.
    pub fn target(&self) -> Option<String> {
        match (&self.os_user, self.serial_port) {
            (Some(user), _) => Some(user.clone()),
            (None, Some(port)) => Some(format!("serial port {port}")),
            (None, None) => None,
        }
    }

    /// The start, in RFC 3339 (as in the metadata file).
    pub fn started_rfc3339(&self) -> String {
        format_rfc3339(self.started_at)
    }

    /// The end, in RFC 3339; None while running or after a crash.
    pub fn ended_rfc3339(&self) -> Option<String> {
        self.ended_at.map(format_rfc3339)
    }
}

fn format_rfc3339(t: OffsetDateTime) -> String {
    // Only years outside 0..=9999 fail, which no session's clock reaches.
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

mod rfc3339 {
    use serde::{de, ser, Deserialize, Deserializer, Serializer};
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.format(&Rfc3339).map_err(ser::Error::custom)?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let s = String::deserialize(d)?;
        OffsetDateTime::parse(&s, &Rfc3339).map_err(de::Error::custom)
    }
}

mod rfc3339_option {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::rfc3339::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::rfc3339")] OffsetDateTime);
        Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(t)| t))
    }
}

pub(crate) fn metadata_path(dir: &Path, id: &RecordingId) -> PathBuf {
    dir.join(format!("{id}.json"))
}

/// Creates the recordings directory, 0700, if it is missing.
pub(crate) fn ensure_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Replaces `<id>.json` atomically: a temporary file in the same directory,
/// fsynced, renamed over the old one, then the directory fsynced so the
/// rename itself survives a power cut.
pub(crate) fn write_metadata(dir: &Path, meta: &Metadata) -> io::Result<()> {
    let mut json = serde_json::to_vec_pretty(meta)?;
    json.push(b'\n');
    // Not `<32hex>.json`, so listings never see a half-written one.
    let tmp = dir.join(format!(".{}.json.tmp", meta.id));
    // A temporary file left by a crash may have been made by anyone with
    // access to the directory: start afresh so the mode below applies.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        fs::rename(&tmp, metadata_path(dir, &meta.id))?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads one metadata file; anything but a metadata object of this id is
/// `InvalidData`.
pub(crate) fn read_metadata(dir: &Path, id: &RecordingId) -> io::Result<Metadata> {
    let mut json = Vec::new();
    File::open(metadata_path(dir, id))?
        .take(MAX_METADATA_BYTES + 1)
        .read_to_end(&mut json)?;
    if json.len() as u64 > MAX_METADATA_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("recording {id}: metadata over {MAX_METADATA_BYTES} bytes"),
        ));
    }
    let meta: Metadata = serde_json::from_slice(&json).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("recording {id}: metadata: {e}"),
        )
    })?;
    if meta.id != *id {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("recording {id}: metadata names recording {}", meta.id),
        ));
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::sample;
    use time::macros::datetime;

    #[test]
    fn target_and_times_as_listings_show_them() {
        let id = RecordingId::parse("00112233445566778899aabbccddeeff").unwrap();
        let mut meta = sample(id);
        assert_eq!(meta.target().as_deref(), Some("ec2-user"));
        assert_eq!(meta.started_rfc3339(), "2026-03-01T12:00:00Z");
        assert_eq!(meta.ended_rfc3339(), None);
        meta.os_user = None;
        meta.serial_port = Some(0);
        meta.ended_at = Some(datetime!(2026-03-01 12:30:00.5 UTC));
        assert_eq!(meta.target().as_deref(), Some("serial port 0"));
        assert_eq!(
            meta.ended_rfc3339().as_deref(),
            Some("2026-03-01T12:30:00.5Z")
        );
        meta.serial_port = None;
        assert_eq!(meta.target(), None);
    }

    #[test]
    fn json_is_camel_case_with_rfc3339_times() {
        let id = RecordingId::parse("00112233445566778899aabbccddeeff").unwrap();
        let mut meta = sample(id);
        meta.ended_at = Some(datetime!(2026-03-01 12:30:00.5 UTC));
        meta.end_reason = Some("client closed".into());
        let v: serde_json::Value = serde_json::to_value(&meta).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "id": "00112233445566778899aabbccddeeff",
                "kind": "ssh",
                "source": "console",
                "principalArn": "arn:aws:iam::123456789012:user/alice",
                "instanceId": "i-0123456789abcdef0",
                "osUser": "ec2-user",
                "serialPort": null,
                "startedAt": "2026-03-01T12:00:00Z",
                "endedAt": "2026-03-01T12:30:00.5Z",
                "width": 80,
                "height": 24,
                "bytesOut": 0,
                "bytesIn": 0,
                "inputRecorded": false,
                "truncated": false,
                "endReason": "client closed",
            })
        );
        assert_eq!(serde_json::from_value::<Metadata>(v).unwrap(), meta);

        let mut serial = sample(id);
        serial.kind = Kind::Serial;
        serial.source = Source::SerialGateway;
        serial.os_user = None;
        serial.serial_port = Some(0);
        let v = serde_json::to_value(&serial).unwrap();
        assert_eq!(v["kind"], "serial");
        assert_eq!(v["source"], "serial-gateway");
        assert_eq!(v["serialPort"], 0);
        assert_eq!(v["endedAt"], serde_json::Value::Null);
        assert_eq!(serde_json::from_value::<Metadata>(v).unwrap(), serial);
    }

    #[test]
    fn write_is_0600_and_read_checks_the_id() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("rec");
        ensure_dir(&dir).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let id = RecordingId::random().unwrap();
        write_metadata(&dir, &sample(id)).unwrap();
        let path = metadata_path(&dir, &id);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(read_metadata(&dir, &id).unwrap(), sample(id));
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file left"
        );

        let other = RecordingId::random().unwrap();
        fs::copy(&path, metadata_path(&dir, &other)).unwrap();
        let err = read_metadata(&dir, &other).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
