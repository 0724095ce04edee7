//! The audit log: one JSON object per line in CloudTrail's event shape, for
//! every API call (allowed or refused), and later for key fetches by
//! instances and serial console sessions.
//!
//! A line is written (handed to the kernel) before the caller's answer is
//! sent, so a crash loses nothing already answered. Each event is one
//! `write` on a file opened with O_APPEND, which the kernel appends whole
//! and never interleaves with another: writers share the file without a
//! mutex (waiting on one, with a syscall held inside it, put request
//! threads to sleep under load). SIGHUP reopens the file for log rotation.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use std::net::IpAddr;

use serde::Serialize;
use serde_json::{json, Value};

pub const EVENT_SOURCE: &str = "ec2instanceconnect.amazonaws.com";

pub struct AuditLog {
    path: PathBuf,
    /// Written through shared (read) guards; only a reopen takes it whole.
    file: RwLock<File>,
    /// A write was cut short (a full disk): the file ends inside a line, so
    /// the next line starts with a newline of its own.
    torn: AtomicBool,
}

impl AuditLog {
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        Ok(AuditLog {
            path: path.to_owned(),
            file: RwLock::new(open_append(path)?),
            torn: AtomicBool::new(false),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reopens the file at the same path (after a rotation moved it away).
    pub fn reopen(&self) -> std::io::Result<()> {
        let file = open_append(&self.path)?;
        *self.file.write().unwrap_or_else(|p| p.into_inner()) = file;
        self.torn.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// Appends one event; the line is complete in the file when this returns.
    pub fn record(&self, event: &impl Serialize) -> std::io::Result<()> {
        let mut line = Vec::with_capacity(1024);
        let torn = self.torn.load(Ordering::Relaxed);
        if torn {
            line.push(b'\n');
        }
        serde_json::to_writer(&mut line, event).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let file = self.file.read().unwrap_or_else(|p| p.into_inner());
        // One `write` call: the rest of a short write (a full disk) is not
        // retried, since it could land after another writer's line.
        let written = (&*file).write(&line);
        let complete = matches!(written, Ok(n) if n == line.len());
        if complete && torn {
            self.torn.store(false, Ordering::Relaxed);
        }
        if matches!(written, Ok(n) if n > 0 && n < line.len()) {
            self.torn.store(true, Ordering::Relaxed);
        }
        let written = written?;
        if complete {
            Ok(())
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                format!(
                    "audit line cut short after {written} of {} bytes",
                    line.len()
                ),
            ))
        }
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
    pub source_ip: IpAddr,
    pub user_agent: Option<&'a str>,
    pub request_parameters: Option<RequestParameters<'a>>,
    pub request_id: &'a str,
    pub error: Option<(&'a str, &'a str)>,
}

/// What the call asked for; the key itself is never logged, only its
/// fingerprint.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestParameters<'a> {
    pub instance_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial_port: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<&'a str>,
    pub ssh_public_key_fingerprint: &'a str,
}

/// CloudTrail's event record, as a struct rather than a `json!` tree: an
/// event is written for every API call, and building a map of owned
/// strings for each one was a measurable share of a push's cost.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiCallEvent<'a> {
    event_version: &'static str,
    user_identity: UserIdentity<'a>,
    event_time: String,
    event_source: &'static str,
    event_name: &'a str,
    aws_region: &'a str,
    #[serde(rename = "sourceIPAddress")]
    source_ip_address: IpAddr,
    user_agent: Option<&'a str>,
    request_parameters: &'a Option<RequestParameters<'a>>,
    response_elements: Option<ResponseElements<'a>>,
    #[serde(rename = "requestID")]
    request_id: &'a str,
    #[serde(rename = "eventID")]
    event_id: &'a str,
    read_only: bool,
    event_type: &'static str,
    management_event: bool,
    recipient_account_id: Option<&'a str>,
    event_category: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserIdentity<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    arn: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_key_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_context: Option<Value>,
}

#[derive(Serialize)]
struct ResponseElements<'a> {
    #[serde(rename = "requestId")]
    request_id: &'a str,
    success: bool,
}

impl AuditLog {
    /// Appends the CloudTrail-shaped event for an API call.
    pub fn record_api_call(&self, call: &ApiCall<'_>) -> std::io::Result<()> {
        let identity = &call.identity;
        let mut event_id = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let event = ApiCallEvent {
            event_version: "1.08",
            user_identity: UserIdentity {
                kind: match identity.arn {
                    None => "Unknown",
                    Some(arn) if arn.contains(":role/") => "AssumedRole",
                    Some(_) => "IAMUser",
                },
                arn: identity.arn,
                account_id: identity.account,
                user_name: identity.user_name,
                access_key_id: identity.access_key_id,
                session_context: identity.temporary.then(|| {
                    json!({"attributes": {"creationDate": null, "mfaAuthenticated": "false"}, "sessionCredentialFromConsole": false})
                }),
            },
            event_time: format_iso8601(call.time),
            event_source: EVENT_SOURCE,
            event_name: call.event_name.unwrap_or("Unknown"),
            aws_region: call.region,
            source_ip_address: call.source_ip,
            user_agent: call.user_agent,
            request_parameters: &call.request_parameters,
            response_elements: call.error.is_none().then_some(ResponseElements {
                request_id: call.request_id,
                success: true,
            }),
            request_id: call.request_id,
            event_id: uuid::Uuid::new_v4()
                .hyphenated()
                .encode_lower(&mut event_id),
            read_only: false,
            event_type: "AwsApiCall",
            management_event: true,
            recipient_account_id: identity.account,
            event_category: "Management",
            error_code: call.error.map(|(code, _)| code),
            error_message: call.error.map(|(_, message)| message),
        };
        self.record(&event)
    }
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
