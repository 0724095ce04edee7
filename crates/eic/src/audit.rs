//! The audit log: one JSON object per line in CloudTrail's event shape, for
//! every API call (allowed or refused), and later for key fetches by
//! instances and serial console sessions.
//!
//! A line is written (handed to the kernel) before the caller's answer is
//! sent. Writes go straight to the file under a mutex, one `write` per
//! event, so a line is never interleaved with another and a crash loses
//! nothing already answered. SIGHUP reopens the file for log rotation.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

pub const EVENT_SOURCE: &str = "ec2instanceconnect.amazonaws.com";

pub struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl AuditLog {
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        Ok(AuditLog {
            path: path.to_owned(),
            file: Mutex::new(open_append(path)?),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reopens the file at the same path (after a rotation moved it away).
    pub fn reopen(&self) -> std::io::Result<()> {
        let file = open_append(&self.path)?;
        *self.file.lock().unwrap_or_else(|p| p.into_inner()) = file;
        Ok(())
    }

    /// Appends one event; the line is complete in the file when this returns.
    pub fn record(&self, event: &Value) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write_all(&line)
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // The log names principals and instances: readable by its owner only.
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Who made a call, as CloudTrail's `userIdentity`.
pub struct Identity<'a> {
    pub arn: Option<&'a str>,
    pub account: Option<&'a str>,
    pub user_name: Option<&'a str>,
    pub access_key_id: Option<&'a str>,
    pub temporary: bool,
}

/// The parts of an API call's event that vary.
pub struct ApiCall<'a> {
    pub time: SystemTime,
    pub region: &'a str,
    pub event_name: Option<&'a str>,
    pub identity: Identity<'a>,
    pub source_ip: String,
    pub user_agent: Option<&'a str>,
    pub request_parameters: Option<Value>,
    pub request_id: &'a str,
    pub error: Option<(&'a str, &'a str)>,
}

/// The CloudTrail-shaped event for an API call.
pub fn api_call_event(call: &ApiCall<'_>) -> Value {
    let mut identity = Map::new();
    let kind = match call.identity.arn {
        None => "Unknown",
        Some(arn) if arn.contains(":role/") => "AssumedRole",
        Some(_) => "IAMUser",
    };
    identity.insert("type".into(), kind.into());
    if let Some(arn) = call.identity.arn {
        identity.insert("arn".into(), arn.into());
    }
    if let Some(account) = call.identity.account {
        identity.insert("accountId".into(), account.into());
    }
    if let Some(name) = call.identity.user_name {
        identity.insert("userName".into(), name.into());
    }
    if let Some(key) = call.identity.access_key_id {
        identity.insert("accessKeyId".into(), key.into());
    }
    if call.identity.temporary {
        identity.insert(
            "sessionContext".into(),
            json!({"attributes": {"creationDate": null, "mfaAuthenticated": "false"}, "sessionCredentialFromConsole": false}),
        );
    }
    let mut event = json!({
        "eventVersion": "1.08",
        "userIdentity": identity,
        "eventTime": format_iso8601(call.time),
        "eventSource": EVENT_SOURCE,
        "eventName": call.event_name.unwrap_or("Unknown"),
        "awsRegion": call.region,
        "sourceIPAddress": call.source_ip,
        "userAgent": call.user_agent,
        "requestParameters": call.request_parameters,
        "responseElements": null,
        "requestID": call.request_id,
        "eventID": uuid::Uuid::new_v4().to_string(),
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": call.identity.account,
        "eventCategory": "Management",
    });
    match call.error {
        None => {
            event["responseElements"] = json!({"requestId": call.request_id, "success": true});
        }
        Some((code, message)) => {
            event["errorCode"] = code.into();
            event["errorMessage"] = message.into();
        }
    }
    event
}

/// `YYYY-MM-DDTHH:MM:SSZ`, CloudTrail's `eventTime` and `aws:CurrentTime`.
pub fn format_iso8601(time: SystemTime) -> String {
    let unix_secs = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let days = (unix_secs / 86_400) as i64;
    let secs = unix_secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm); a
    // date library for one format string is not worth the dependency.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Parses what `format_iso8601` writes, for `eic audit --since/--until`.
pub fn parse_time(text: &str) -> Option<SystemTime> {
    if let Ok(secs) = text.parse::<u64>() {
        return Some(UNIX_EPOCH + std::time::Duration::from_secs(secs));
    }
    let b = text.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (the inverse of the algorithm above).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs)
        .ok()
        .map(|s| UNIX_EPOCH + std::time::Duration::from_secs(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn iso8601_round_trips() {
        for secs in [0u64, 951_782_400, 1_795_865_148, 4_102_444_799] {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(parse_time(&format_iso8601(t)), Some(t));
        }
        assert_eq!(
            format_iso8601(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            parse_time("1795865148"),
            Some(UNIX_EPOCH + Duration::from_secs(1_795_865_148))
        );
        assert_eq!(parse_time("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn lines_are_appended_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path).unwrap();
        log.record(&json!({"n": 1})).unwrap();
        std::fs::rename(&path, dir.path().join("audit.log.1")).unwrap();
        log.record(&json!({"n": 2})).unwrap();
        log.reopen().unwrap();
        log.record(&json!({"n": 3})).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("audit.log.1")).unwrap(),
            "{\"n\":1}\n{\"n\":2}\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"n\":3}\n");
    }
}
