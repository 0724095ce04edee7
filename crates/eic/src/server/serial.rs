//! The serial console role: wires the `eic-serial` gateway to the key
//! store (the keys it admits) and the audit log (the sessions it opens and
//! ends). The API consults runtime serial console access through
//! [`crate::settings::SerialConsoleAccess`].

use std::sync::Arc;
use std::time::SystemTime;

use eic_serial::{SerialKey, SerialKeys, SessionEnd, SessionEvents, SessionRecord};
use eic_store::{Clock, KeyTarget, Store, StoreError};
use serde_json::json;

use crate::audit::{format_iso8601, Admission, AuditLog, EVENT_SOURCE};

/// Serial keys come from the shared store, as SendSerialConsoleSSHPublicKey put them.
pub struct StoreSerialKeys {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
}

#[async_trait::async_trait]
impl SerialKeys for StoreSerialKeys {
    async fn live_keys(&self, instance_id: &str, port: u8) -> Result<Vec<SerialKey>, StoreError> {
        let keys = self
            .store
            .live_keys(instance_id, &KeyTarget::SerialPort(port), self.clock.now())
            .await?;
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
    pub metrics: Arc<crate::metrics::Metrics>,
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
        if let Err(e) = self.audit.record(&event, Admission::Outcome) {
            tracing::error!(error = %e, event = name, "audit log write failed for a serial session");
        }
    }
}

impl SessionEvents for AuditedSessions {
    fn session_started(&self, s: &SessionRecord) {
        self.metrics.serial_session_started();
        self.record(
            "StartSerialConsoleSession",
            s,
            json!({"startTime": format_iso8601(s.started_at)}),
        );
    }

    fn session_ended(&self, s: &SessionRecord, end: &SessionEnd) {
        self.metrics
            .serial_session_ended(end.bytes_to_console, end.bytes_from_console);
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
