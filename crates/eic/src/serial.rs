//! The serial console role: wires the `eic-serial` gateway to the key
//! store, the audit log and the runtime serial console access settings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use eic_serial::{SerialKey, SerialKeys, SessionEnd, SessionEvents, SessionRecord};
use eic_store::{Clock, KeyTarget, Store};
use serde_json::json;

use crate::audit::{format_iso8601, AuditLog, EVENT_SOURCE};

/// Serial keys come from the shared store, as SendSerialConsoleSSHPublicKey put them.
pub struct StoreSerialKeys {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
}

#[async_trait::async_trait]
impl SerialKeys for StoreSerialKeys {
    async fn live_keys(&self, instance_id: &str, port: u8) -> Result<Vec<SerialKey>, String> {
        let keys = self
            .store
            .live_keys(instance_id, &KeyTarget::SerialPort(port), self.clock.now())
            .await
            .map_err(|e| e.to_string())?;
        Ok(keys
            .into_iter()
            .map(|k| SerialKey {
                public_key: k.public_key,
                request_id: k.request_id,
                caller_arn: k.caller_arn,
            })
            .collect())
    }
}

/// Session start and end go to the audit log, in the same event shape.
pub struct AuditedSessions {
    pub audit: Arc<AuditLog>,
    pub region: String,
}

impl AuditedSessions {
    fn record(&self, name: &str, s: &SessionRecord, extra: serde_json::Value) {
        let mut event = json!({
            "eventVersion": "1.08",
            "userIdentity": {"type": "IAMUser", "arn": s.caller_arn},
            "eventTime": format_iso8601(SystemTime::now()),
            "eventSource": EVENT_SOURCE,
            "eventName": name,
            "awsRegion": self.region,
            "sourceIPAddress": s.client.ip().to_string(),
            "requestParameters": {
                "instanceId": s.instance_id,
                "serialPort": s.port,
                "sshPublicKeyFingerprint": s.key_fingerprint,
                "pushRequestId": s.request_id,
            },
            "eventID": uuid::Uuid::new_v4().to_string(),
            "readOnly": false,
            "eventType": "AwsServiceEvent",
        });
        event["responseElements"] = extra;
        if let Err(e) = self.audit.record(&event) {
            tracing::error!(error = %e, event = name, "audit log write failed for a serial session");
        }
    }
}

impl SessionEvents for AuditedSessions {
    fn session_started(&self, s: &SessionRecord) {
        self.record(
            "StartSerialConsoleSession",
            s,
            json!({"startTime": format_iso8601(s.started_at)}),
        );
    }

    fn session_ended(&self, s: &SessionRecord, end: &SessionEnd) {
        self.record(
            "EndSerialConsoleSession",
            s,
            json!({
                "startTime": format_iso8601(s.started_at),
                "durationSeconds": end.duration.as_secs_f64(),
                "bytesToConsole": end.bytes_to_console,
                "bytesFromConsole": end.bytes_from_console,
                "reason": format!("{:?}", end.reason),
            }),
        );
    }
}

/// Serial console access per account, changed at runtime by `eic
/// serial-console-access` and kept in the data dir; the configuration's
/// `serial_console_access` is the value until it is first changed. The
/// server rereads the file when it changes.
pub struct SerialConsoleAccess {
    path: PathBuf,
    cache: Mutex<(Option<SystemTime>, BTreeMap<String, bool>)>,
}

impl SerialConsoleAccess {
    pub fn new(data_dir: &Path) -> SerialConsoleAccess {
        SerialConsoleAccess {
            path: data_dir.join("serial-console-access.json"),
            cache: Mutex::new((None, BTreeMap::new())),
        }
    }

    /// The account's setting, or `default` when never changed. A file that
    /// cannot be read denies: access is off when in doubt.
    pub fn enabled(&self, account: &str, default: bool) -> bool {
        let modified = match std::fs::metadata(&self.path) {
            Ok(m) => m.modified().ok(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return default,
            Err(_) => return false,
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.0.is_none() || cache.0 != modified {
            match self.read() {
                Ok(map) => *cache = (modified, map),
                Err(e) => {
                    tracing::error!(error = %e, "serial console access settings unreadable; denying");
                    return false;
                }
            }
        }
        cache.1.get(account).copied().unwrap_or(default)
    }

    pub fn set(&self, account: &str, enabled: bool) -> std::io::Result<()> {
        let mut map = self.read()?;
        map.insert(account.to_owned(), enabled);
        let temp = self.path.with_extension("json.tmp");
        std::fs::write(
            &temp,
            serde_json::to_vec_pretty(&map).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&temp, &self.path)
    }

    fn read(&self) -> std::io::Result<BTreeMap<String, bool>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(e),
        }
    }
}
