//! The serial console role: wires the `eic-serial` gateway to the key
//! store (the keys it admits) and the audit log (the sessions it opens and
//! ends). The API consults runtime serial console access through
//! [`crate::settings::SerialConsoleAccess`].

use std::sync::Arc;
use std::time::SystemTime;

use eic_serial::{
    SerialKey, SerialKeys, SessionEnd, SessionEvents, SessionRecord, SessionTap, TerminalSize,
};
use eic_store::{Clock, KeyTarget, Store, StoreError};
use serde_json::json;

use super::console::recording::{RecordingSettings, SessionRecording, Start};
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

/// Session start and end go to the audit log, in the same event shape;
/// every session is recorded.
pub struct AuditedSessions {
    pub audit: Arc<AuditLog>,
    pub region: String,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub recordings: RecordingSettings,
}

/// A gateway session's bytes into its recording: from the console is the
/// output, to it the input (kept only with `record_input`).
struct Recorded(SessionRecording);

impl SessionTap for Recorded {
    fn typed(&mut self, bytes: &[u8]) {
        self.0.input(bytes);
    }

    fn printed(&mut self, bytes: &[u8]) {
        self.0.output(bytes);
    }

    fn resized(&mut self, size: TerminalSize) {
        self.0.resize(size.cols, size.rows);
    }

    fn tick(&mut self) {
        self.0.flush();
    }

    fn ended(self: Box<Self>, end: &SessionEnd) {
        self.0.finish_now(&format!("{:?}", end.reason));
    }
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

    fn tap(&self, s: &SessionRecord) -> Result<Option<Box<dyn SessionTap>>, String> {
        let recording = SessionRecording::start(
            &self.recordings,
            Start {
                source: eic_recording::Source::SerialGateway,
                principal_arn: &s.caller_arn,
                instance_id: &s.instance_id,
                os_user: None,
                serial_port: Some(s.port),
                cols: s.size.cols,
                rows: s.size.rows,
            },
        )
        .map_err(|e| {
            tracing::error!(error = %e, instance = %s.instance_id, "cannot record a serial session; refused");
            e.to_string()
        })?;
        Ok(Some(Box::new(Recorded(recording))))
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
