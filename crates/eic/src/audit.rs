//! The audit log: one JSON object per line in CloudTrail's event shape, for
//! every API call (allowed or refused), every key fetch by an instance and
//! every serial console session.
//!
//! A line is written (handed to the kernel) before the caller's answer is
//! sent, so a crash loses nothing already answered. Each event is one
//! `write` on a file opened with O_APPEND, which the kernel appends whole
//! and never interleaves with another: writers share the file without a
//! mutex (waiting on one, with a syscall held inside it, put request
//! threads to sleep under load). SIGHUP reopens the file for log rotation.
//!
//! The disk is bounded for callers who did no work (ARCHITECTURE.md, "The
//! audit log's disk"): a refusal's line is written only while its caller
//! (one bucket per principal, one for everybody unauthenticated) has
//! tokens and the filesystem has more than the reserve free; the others
//! are counted into one summary event per interval. A push's success
//! event is written only while room for its outcome line is preallocated
//! past the end of the file, so the pair always holds.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eic_store::{unix_millis, BucketRate, TokenBuckets};
use serde::Serialize;
use serde_json::{json, Value};

pub const EVENT_SOURCE: &str = "ec2instanceconnect.amazonaws.com";
/// CloudTrail's `eventSource` for EC2's own API (DescribeInstances).
pub const EC2_EVENT_SOURCE: &str = "ec2.amazonaws.com";

/// Room kept preallocated past the end of the file for the lines that
/// admitted work still owes (a push's outcome after its success event);
/// on a disk too small for it, [`MIN_ROOM`].
const OUTCOME_ROOM: u64 = 1024 * 1024;
const MIN_ROOM: u64 = 64 * 1024;
/// The most one event line takes: every caller-sent field is bounded
/// ([`MAX_FIELD_BYTES`]), the rest is fixed-size.
const MAX_LINE_BYTES: u64 = 6 * 1024;
/// How often the free space of the audit filesystem is looked at.
const FREE_SPACE_CHECK: Duration = Duration::from_millis(100);
/// Attacker-controlled text copied into an event is cut to this many bytes.
pub const MAX_FIELD_BYTES: usize = 1024;
/// Source addresses named one by one in a summary event; the rest are
/// counted together.
const MAX_SUMMARY_SOURCES: usize = 32;
/// A summary of suppressed refusals is written at most this often.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

/// How the log protects its disk (`[audit]` in the config).
#[derive(Debug, Clone, Copy)]
pub struct AuditLimits {
    /// Refusals stop being written line by line below this much free space.
    pub reserve_bytes: u64,
    /// Refusal lines per caller: sustained rate and burst.
    pub refusals: BucketRate,
}

impl Default for AuditLimits {
    fn default() -> Self {
        AuditLimits {
            reserve_bytes: 64 * 1024 * 1024,
            refusals: BucketRate {
                rate: 20.0,
                burst: 200.0,
            },
        }
    }
}

/// What an event is, which decides when it may use the disk. Work (a
/// push's success event, a key fetch) is written with
/// [`AuditLog::record_work`] instead.
#[derive(Debug, Clone, Copy)]
pub enum Admission<'a> {
    /// The outcome of admitted work, a session's start or end: always
    /// written, into the preallocated room if the disk is full.
    Outcome,
    /// A refused call: written while its caller's bucket has tokens and the
    /// disk has more than the reserve free, otherwise counted in the next
    /// summary. `principal` is `None` for a caller who did not authenticate.
    Refusal {
        principal: Option<&'a str>,
        source_ip: IpAddr,
        code: &'a str,
    },
}

/// The work could not be admitted: the log cannot promise its outcome line.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("no room is left in the audit log for the outcome of more work")]
    NoRoom,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub struct AuditLog {
    path: PathBuf,
    /// Written through shared (read) guards; only a reopen takes it whole.
    file: RwLock<File>,
    /// A write was cut short (a full disk): the file ends inside a line, so
    /// the next line starts with a newline of its own.
    torn: AtomicBool,
    /// Preallocated bytes left past the end of the file (an estimate from
    /// what was written since the last preallocation).
    room: AtomicU64,
    /// Of `room`, what admitted work may still need for its outcome line.
    owed: AtomicU64,
    /// The filesystem cannot preallocate (`fallocate` unsupported): work is
    /// admitted on free space alone, without the outcome guarantee.
    no_prealloc: AtomicBool,
    limits: AuditLimits,
    buckets: TokenBuckets,
    free: FreeSpace,
    suppressed: Mutex<Suppressed>,
    region: String,
}

/// The audit filesystem's free bytes, looked at no more than every
/// [`FREE_SPACE_CHECK`].
#[derive(Default)]
struct FreeSpace {
    bytes: AtomicU64,
    checked_ms: AtomicU64,
}

/// Refusals not written line by line since the last summary.
#[derive(Default)]
struct Suppressed {
    count: u64,
    first: Option<SystemTime>,
    last_summary: Option<SystemTime>,
    by_rate: u64,
    by_disk: u64,
    codes: BTreeMap<String, u64>,
    sources: BTreeMap<IpAddr, u64>,
    other_sources: u64,
}

impl AuditLog {
    pub fn open(path: &Path, region: &str, limits: AuditLimits) -> std::io::Result<AuditLog> {
        let log = AuditLog {
            path: path.to_owned(),
            file: RwLock::new(open_append(path)?),
            torn: AtomicBool::new(false),
            room: AtomicU64::new(0),
            owed: AtomicU64::new(0),
            no_prealloc: AtomicBool::new(false),
            limits,
            buckets: TokenBuckets::default(),
            free: FreeSpace::default(),
            suppressed: Mutex::new(Suppressed::default()),
            region: region.to_owned(),
        };
        log.preallocate(
            &log.file.read().unwrap_or_else(|p| p.into_inner()),
            OUTCOME_ROOM,
        );
        Ok(log)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reopens the file at the same path (after a rotation moved it away).
    pub fn reopen(&self) -> std::io::Result<()> {
        let file = open_append(&self.path)?;
        self.room.store(0, Ordering::Relaxed);
        // What admitted work still owes is written to the new file.
        let owed = self.owed.load(Ordering::Relaxed);
        self.preallocate(&file, owed.saturating_add(OUTCOME_ROOM));
        *self.file.write().unwrap_or_else(|p| p.into_inner()) = file;
        self.torn.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// Whether new work can be admitted now (the readiness endpoint).
    pub fn ready(&self) -> Result<(), AuditError> {
        let file = self.file.read().unwrap_or_else(|p| p.into_inner());
        if self.has_room(&file, 2 * MAX_LINE_BYTES) {
            Ok(())
        } else {
            Err(AuditError::NoRoom)
        }
    }

    /// Reserves room past the end of the file ([`OUTCOME_ROOM`], or
    /// [`MIN_ROOM`] on a small disk): appends fill those blocks first, so
    /// the lines owed to admitted work fit even when something else has
    /// filled the disk.
    fn preallocate(&self, file: &File, wanted: u64) -> bool {
        use rustix::fs::{fallocate, FallocateFlags};
        let Ok(end) = file.metadata().map(|m| m.len()) else {
            return false;
        };
        for size in [wanted.max(OUTCOME_ROOM), MIN_ROOM] {
            match fallocate(file, FallocateFlags::KEEP_SIZE, end, size) {
                Ok(()) => {
                    self.room.store(size, Ordering::Relaxed);
                    return true;
                }
                Err(rustix::io::Errno::OPNOTSUPP) | Err(rustix::io::Errno::NOSYS) => {
                    if !self.no_prealloc.swap(true, Ordering::Relaxed) {
                        tracing::warn!(path = %self.path.display(), "the audit log's filesystem cannot preallocate; on a full disk a push's outcome line may be lost");
                    }
                    return false;
                }
                Err(_) => {}
            }
        }
        false
    }

    /// Whether `needed` more bytes fit beside what admitted work is owed,
    /// preallocating more when the room runs low.
    fn has_room(&self, file: &File, needed: u64) -> bool {
        if self.no_prealloc.load(Ordering::Relaxed) {
            return self.free_bytes(file) >= needed + MIN_ROOM;
        }
        let fits = || {
            self.room.load(Ordering::Relaxed)
                >= self.owed.load(Ordering::Relaxed).saturating_add(needed)
        };
        if self.room.load(Ordering::Relaxed) < OUTCOME_ROOM / 2 || !fits() {
            // As much as is owed (work that lasts, such as open tunnels,
            // holds its room for long) and half the usual window beyond.
            let owed = self.owed.load(Ordering::Relaxed);
            self.preallocate(file, owed.saturating_add(needed + OUTCOME_ROOM / 2));
        }
        fits()
    }

    /// Writes the event of admitted work (a push's success event before the
    /// store, an instance's key fetch) if room for its outcome line is kept
    /// too; the room is held until the returned [`Admitted`] is dropped,
    /// after the outcome line, if any, was written. `Err`: the work must
    /// not be done.
    pub fn record_work(&self, event: &impl Serialize) -> Result<Admitted<'_>, AuditError> {
        let file = self.file.read().unwrap_or_else(|p| p.into_inner());
        if !self.has_room(&file, 2 * MAX_LINE_BYTES) {
            return Err(AuditError::NoRoom);
        }
        self.owed.fetch_add(MAX_LINE_BYTES, Ordering::Relaxed);
        let admitted = Admitted { log: self };
        self.write_line(&file, event)?;
        Ok(admitted)
    }

    fn free_bytes(&self, file: &File) -> u64 {
        let now_ms = unix_millis(SystemTime::now());
        let checked = self.free.checked_ms.load(Ordering::Relaxed);
        let due = now_ms.saturating_sub(checked) >= FREE_SPACE_CHECK.as_millis() as u64;
        if due
            && self
                .free
                .checked_ms
                .compare_exchange(checked, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let free = eic_store::disk::free_bytes(file).unwrap_or(0);
            self.free.bytes.store(free, Ordering::Relaxed);
        }
        self.free.bytes.load(Ordering::Relaxed)
    }

    /// Whether a refusal's line may be written; if not, it is counted.
    fn admit_refusal(
        &self,
        file: &File,
        principal: Option<&str>,
        source_ip: IpAddr,
        code: &str,
        now: SystemTime,
    ) -> bool {
        let bucket = match principal {
            Some(arn) => format!("refusals:{arn}"),
            None => "refusals:unauthenticated".to_owned(),
        };
        let low_disk = self.free_bytes(file) < self.limits.reserve_bytes;
        if !low_disk && self.buckets.take(&bucket, self.limits.refusals, now) {
            return true;
        }
        let mut s = self.suppressed.lock().unwrap_or_else(|p| p.into_inner());
        s.count += 1;
        s.first.get_or_insert(now);
        if low_disk {
            s.by_disk += 1;
        } else {
            s.by_rate += 1;
        }
        *s.codes.entry(bounded(code, 64).into_owned()).or_default() += 1;
        if s.sources.contains_key(&source_ip) || s.sources.len() < MAX_SUMMARY_SOURCES {
            *s.sources.entry(source_ip).or_default() += 1;
        } else {
            s.other_sources += 1;
        }
        false
    }

    /// Appends one event as `admission` allows; the line is complete in the
    /// file when this returns `Ok(true)`. `Ok(false)`: a refusal counted
    /// for the next summary instead of written.
    pub fn record(
        &self,
        event: &impl Serialize,
        admission: Admission<'_>,
    ) -> Result<bool, AuditError> {
        let file = self.file.read().unwrap_or_else(|p| p.into_inner());
        match admission {
            Admission::Outcome => {}
            Admission::Refusal {
                principal,
                source_ip,
                code,
            } => {
                let now = SystemTime::now();
                if !self.admit_refusal(&file, principal, source_ip, code, now) {
                    drop(file);
                    self.summarize_if_due(now);
                    return Ok(false);
                }
            }
        }
        self.write_line(&file, event)?;
        Ok(true)
    }

    /// Writes the summary of suppressed refusals if one is due; the server
    /// calls this every [`SUMMARY_INTERVAL`] too, so a flood that stops is
    /// still summarized.
    pub fn summarize_if_due(&self, now: SystemTime) {
        let summary = {
            let mut s = self.suppressed.lock().unwrap_or_else(|p| p.into_inner());
            let due = s
                .last_summary
                .is_none_or(|t| now.duration_since(t).unwrap_or_default() >= SUMMARY_INTERVAL);
            if s.count == 0 || !due {
                return;
            }
            let summary = std::mem::take(&mut *s);
            s.last_summary = Some(now);
            summary
        };
        let mut sources: Vec<Value> = summary
            .sources
            .iter()
            .map(|(ip, n)| json!({"sourceIPAddress": ip, "count": n}))
            .collect();
        if summary.other_sources > 0 {
            sources.push(json!({"sourceIPAddress": "other", "count": summary.other_sources}));
        }
        let event = json!({
            "eventVersion": "1.08",
            "userIdentity": {"type": "AWSService", "invokedBy": EVENT_SOURCE},
            "eventTime": format_iso8601(now),
            "eventSource": EVENT_SOURCE,
            "eventName": "AuditEventsSuppressed",
            "awsRegion": self.region,
            "eventID": uuid::Uuid::new_v4().to_string(),
            "readOnly": true,
            "eventType": "AwsServiceEvent",
            "managementEvent": true,
            "eventCategory": "Management",
            "serviceEventDetails": {
                "suppressedEvents": summary.count,
                "firstSuppressedAt": summary.first.map(format_iso8601),
                "overRateLimit": summary.by_rate,
                "belowDiskReserve": summary.by_disk,
                "errorCodes": summary.codes,
                "sources": sources,
            },
        });
        let file = self.file.read().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = self.write_line(&file, &event) {
            tracing::error!(error = %e, suppressed = summary.count, "audit summary of suppressed refusals could not be written");
        }
    }

    fn write_line(&self, file: &File, event: &impl Serialize) -> std::io::Result<()> {
        let mut line = Vec::with_capacity(1024);
        let torn = self.torn.load(Ordering::Relaxed);
        if torn {
            line.push(b'\n');
        }
        serde_json::to_writer(&mut line, event).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // One `write` call: the rest of a short write (a full disk) is not
        // retried, since it could land after another writer's line.
        let written = (&*file).write(&line);
        if let Ok(n) = written {
            let _ = self
                .room
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
                    Some(r.saturating_sub(n as u64))
                });
        }
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

/// Room held for the outcome line of admitted work; released on drop.
pub struct Admitted<'a> {
    log: &'a AuditLog,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.log.release_room();
    }
}

impl Admitted<'_> {
    /// The same room, held by a value that may outlive this borrow: work
    /// that goes on after its call returned (a tunnel).
    pub fn lasting(self, log: &Arc<AuditLog>) -> LastingAdmission {
        debug_assert!(std::ptr::eq(self.log, Arc::as_ptr(log)));
        std::mem::forget(self);
        LastingAdmission { log: log.clone() }
    }
}

/// [`Admitted`] with a handle on the log of its own.
pub struct LastingAdmission {
    log: Arc<AuditLog>,
}

impl Drop for LastingAdmission {
    fn drop(&mut self) {
        self.log.release_room();
    }
}

impl AuditLog {
    fn release_room(&self) {
        let _ = self
            .owed
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |owed| {
                Some(owed.saturating_sub(MAX_LINE_BYTES))
            });
    }
}

// The agent bounds what it echoes the same way, so it is in eic-wire.
pub use eic_wire::bounded;

fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        eic_store::disk::create_private_dir(dir)?;
    }
    // The log names principals and instances: readable by its owner only.
    eic_store::disk::open_private_append(path)
}

/// Who made a call, as CloudTrail's `userIdentity`.
pub struct Identity<'a> {
    pub arn: Option<&'a str>,
    pub account: Option<&'a str>,
    pub user_name: Option<&'a str>,
    pub access_key_id: Option<&'a str>,
    pub temporary: bool,
}

impl<'a> Identity<'a> {
    /// The caller as far as authentication got: the principal once the
    /// signature verified, the access key id it presented in any case.
    pub fn of(
        principal: Option<&'a crate::registry::Principal>,
        access_key_id: Option<&'a str>,
        temporary: bool,
    ) -> Identity<'a> {
        Identity {
            arn: principal.map(|p| p.arn.as_str()),
            account: principal.map(|p| p.account.as_str()),
            user_name: principal.map(|p| p.name.as_str()),
            access_key_id,
            temporary,
        }
    }
}

/// The request's User-Agent, as events record it.
pub fn user_agent(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
}

/// The parts of an API call's event that vary.
pub struct ApiCall<'a> {
    pub time: SystemTime,
    /// [`EVENT_SOURCE`], or [`EC2_EVENT_SOURCE`] for the EC2 Query API.
    pub event_source: &'static str,
    /// CloudTrail's `readOnly`: true for Describe calls.
    pub read_only: bool,
    pub region: &'a str,
    pub event_name: Option<&'a str>,
    pub identity: Identity<'a>,
    pub source_ip: IpAddr,
    pub user_agent: Option<&'a str>,
    pub request_parameters: Option<CallParameters<'a>>,
    pub request_id: &'a str,
    pub error: Option<(&'a str, &'a str)>,
}

/// An event's `requestParameters`.
#[derive(Serialize)]
#[serde(untagged)]
pub enum CallParameters<'a> {
    /// A push's.
    Push(RequestParameters<'a>),
    /// DescribeInstances' in CloudTrail's shape (`instancesSet`,
    /// `filterSet`, `maxResults`), built and bounded by its caller.
    Describe(Value),
    /// OpenTunnel's (endpoint, port, address, duration), validated before
    /// they are recorded.
    Tunnel(Value),
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
    request_parameters: &'a Option<CallParameters<'a>>,
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

/// How an API call's event is written.
pub enum ApiCallKind<'a> {
    /// A push's success event, before the store: admitted work.
    Work,
    /// Anything else, as `Admission` says.
    Other(Admission<'a>),
}

/// What writing an API call's event gave.
pub enum Recorded<'a> {
    /// The work was admitted and its event written.
    Admitted(Admitted<'a>),
    /// Written, or counted for a summary.
    Other,
}

impl AuditLog {
    /// Appends the CloudTrail-shaped event for an API call.
    /// Caller-sent text (the user agent, an access key id that may not
    /// exist, messages that quote the request) is cut to
    /// [`MAX_FIELD_BYTES`], so no caller controls how large a line is.
    pub fn record_api_call(
        &self,
        call: &ApiCall<'_>,
        kind: ApiCallKind<'_>,
    ) -> Result<Recorded<'_>, AuditError> {
        with_api_call_event(call, |event| match kind {
            ApiCallKind::Work => self.record_work(event).map(Recorded::Admitted),
            ApiCallKind::Other(admission) => self.record(event, admission).map(|_| Recorded::Other),
        })
    }

    /// [`AuditLog::record_api_call`] for admitted work.
    pub fn record_api_work(&self, call: &ApiCall<'_>) -> Result<Admitted<'_>, AuditError> {
        with_api_call_event(call, |event| self.record_work(event))
    }
}

/// Builds the event of `call` and hands it to `write`.
fn with_api_call_event<R>(call: &ApiCall<'_>, write: impl FnOnce(&ApiCallEvent<'_>) -> R) -> R {
    let identity = &call.identity;
    let access_key_id = identity.access_key_id.map(|id| bounded(id, 128));
    let user_agent = call.user_agent.map(|ua| bounded(ua, MAX_FIELD_BYTES));
    let error_message = call
        .error
        .map(|(_, message)| bounded(message, MAX_FIELD_BYTES));
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
                access_key_id: access_key_id.as_deref(),
                session_context: identity.temporary.then(|| {
                    json!({"attributes": {"creationDate": null, "mfaAuthenticated": "false"}, "sessionCredentialFromConsole": false})
                }),
            },
            event_time: format_iso8601(call.time),
            event_source: call.event_source,
            event_name: call.event_name.unwrap_or("Unknown"),
            aws_region: call.region,
            source_ip_address: call.source_ip,
            user_agent: user_agent.as_deref(),
            request_parameters: &call.request_parameters,
            response_elements: call.error.is_none().then_some(ResponseElements {
                request_id: call.request_id,
                success: true,
            }),
            request_id: call.request_id,
            event_id: uuid::Uuid::new_v4()
                .hyphenated()
                .encode_lower(&mut event_id),
            read_only: call.read_only,
            event_type: "AwsApiCall",
            management_event: true,
            recipient_account_id: identity.account,
            event_category: "Management",
            error_code: call.error.map(|(code, _)| code),
            error_message: error_message.as_deref(),
        };
    write(&event)
}

/// CloudTrail's `eventTime` and `aws:CurrentTime`: ISO 8601 in UTC to the
/// second.
const ISO8601: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// `YYYY-MM-DDTHH:MM:SSZ`, CloudTrail's `eventTime` and `aws:CurrentTime`
/// (a time before 1970 is written as 1970-01-01T00:00:00Z).
pub fn format_iso8601(time: SystemTime) -> String {
    time::OffsetDateTime::from(time.max(UNIX_EPOCH))
        .format(ISO8601)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// What `format_iso8601` writes, or Unix seconds, for `eic audit
/// --since/--until`; `None` for anything else, a date that does not exist
/// (2024-02-31) included.
pub fn parse_time(text: &str) -> Option<SystemTime> {
    if let Ok(secs) = text.parse::<u64>() {
        return Some(UNIX_EPOCH + std::time::Duration::from_secs(secs));
    }
    let at = SystemTime::from(
        time::PrimitiveDateTime::parse(text, ISO8601)
            .ok()?
            .assume_utc(),
    );
    // Before 1970 is no time eic wrote, and no Unix seconds either.
    (at >= UNIX_EPOCH).then_some(at)
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
        assert_eq!(
            format_iso8601(UNIX_EPOCH + Duration::from_millis(1_795_865_148_999)),
            "2026-11-28T11:25:48Z",
            "cut to the second"
        );
    }

    #[test]
    fn dates_that_do_not_exist_are_refused() {
        for bad in [
            "2024-02-31T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2026-04-31T12:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:60:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01 00:00:00Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        assert_eq!(
            parse_time("2024-02-29T00:00:00Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_709_164_800))
        );
    }

    fn open(dir: &Path, limits: AuditLimits) -> AuditLog {
        AuditLog::open(&dir.join("audit.log"), "us-west-2", limits).unwrap()
    }

    fn lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn refusal(code: &str) -> Admission<'_> {
        Admission::Refusal {
            principal: None,
            source_ip: "127.0.0.1".parse().unwrap(),
            code,
        }
    }

    /// Work that lasts (open tunnels) holds its room; the preallocation
    /// grows with what is owed instead of refusing past one window.
    #[test]
    fn room_grows_with_the_work_that_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(open(dir.path(), AuditLimits::default()));
        let held: Vec<LastingAdmission> = (0..1_000)
            .map(|n| log.record_work(&json!({ "n": n })).unwrap().lasting(&log))
            .collect();
        assert_eq!(held.len(), 1_000);
        log.reopen().unwrap();
        assert!(log.record_work(&json!({"after": "reopen"})).is_ok());
        drop(held);
        assert_eq!(log.owed.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn lines_are_appended_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = open(dir.path(), AuditLimits::default());
        log.record(&json!({"n": 1}), Admission::Outcome).unwrap();
        std::fs::rename(&path, dir.path().join("audit.log.1")).unwrap();
        drop(log.record_work(&json!({"n": 2})).unwrap());
        log.reopen().unwrap();
        log.record(&json!({"n": 3}), Admission::Outcome).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("audit.log.1")).unwrap(),
            "{\"n\":1}\n{\"n\":2}\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"n\":3}\n");
    }

    #[test]
    fn refusals_past_the_bucket_are_summarized_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let limits = AuditLimits {
            reserve_bytes: 0,
            refusals: BucketRate {
                rate: 0.0,
                burst: 3.0,
            },
        };
        let log = open(dir.path(), limits);
        let written: Vec<bool> = (0..10)
            .map(|n| {
                log.record(&json!({"n": n}), refusal("InvalidSignatureException"))
                    .unwrap()
            })
            .collect();
        assert_eq!(written.iter().filter(|w| **w).count(), 3);
        // Work is never limited by the refusals' bucket.
        drop(log.record_work(&json!({"work": 1})).unwrap());
        let events = lines(&dir.path().join("audit.log"));
        let summary = events
            .iter()
            .find(|e| e["eventName"] == "AuditEventsSuppressed")
            .expect("the first suppressed refusal writes a summary");
        assert_eq!(summary["serviceEventDetails"]["suppressedEvents"], 1);
        // The rest wait for the next interval.
        log.summarize_if_due(SystemTime::now() + SUMMARY_INTERVAL);
        let events = lines(&dir.path().join("audit.log"));
        let last = events.last().unwrap();
        assert_eq!(last["serviceEventDetails"]["suppressedEvents"], 6);
        assert_eq!(
            last["serviceEventDetails"]["errorCodes"]["InvalidSignatureException"],
            6
        );
        assert_eq!(last["serviceEventDetails"]["sources"][0]["count"], 6);
        assert_eq!(events.len(), 3 + 1 + 1 + 1);
    }

    #[test]
    fn below_the_reserve_refusals_are_counted_and_work_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let limits = AuditLimits {
            reserve_bytes: u64::MAX,
            ..AuditLimits::default()
        };
        let log = open(dir.path(), limits);
        assert!(!log
            .record(&json!({"refused": 1}), refusal("AccessDeniedException"))
            .unwrap());
        drop(log.record_work(&json!({"work": 1})).unwrap());
        let events = lines(&dir.path().join("audit.log"));
        assert_eq!(events[0]["serviceEventDetails"]["belowDiskReserve"], 1);
        assert_eq!(events[1]["work"], 1);
    }

    #[test]
    fn caller_text_is_bounded_on_a_character_boundary() {
        assert_eq!(bounded("short", 10), "short");
        let long = "é".repeat(2000);
        let cut = bounded(&long, MAX_FIELD_BYTES);
        assert!(cut.len() <= MAX_FIELD_BYTES);
        assert!(cut.ends_with("...(truncated)"));
    }
}
