//! A session's recording (asciicast v2, `eic-recording`): a console
//! terminal's, or a serial gateway session's (`server::serial`), written
//! as the session runs. Writes go to the page cache through the
//! recorder's buffer, flushed every second by the bridge's timer, so a
//! crash loses at most the last second; the final fsync runs off the
//! runtime's workers.

use std::path::PathBuf;

use eic_recording::{Kind, Metadata, Recorder, RecorderOptions, RecordingId, Source};

use super::terminal::Ended;

/// Where recordings go and how big one may grow (`[recordings]`).
#[derive(Debug, Clone)]
pub struct RecordingSettings {
    pub dir: PathBuf,
    pub record_input: bool,
    pub max_bytes: u64,
}

/// Removes recordings past `[recordings]` retention (age, then total
/// size), at start and then hourly, off the runtime's workers.
pub async fn sweep_periodically(dir: PathBuf, retention: eic_recording::Retention) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let dir = dir.clone();
        let swept = tokio::task::spawn_blocking(move || {
            eic_recording::sweep(&dir, retention, std::time::SystemTime::now())
        })
        .await;
        match swept {
            Ok(Ok(report)) if report.removed > 0 => tracing::info!(
                removed = report.removed,
                freed_bytes = report.freed_bytes,
                "old recordings removed"
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "recordings sweep failed"),
            Err(e) => tracing::warn!(error = %e, "recordings sweep failed"),
        }
    }
}

/// Who and what a recording is of.
pub struct Start<'a> {
    pub source: Source,
    pub principal_arn: &'a str,
    pub instance_id: &'a str,
    pub os_user: Option<&'a str>,
    pub serial_port: Option<u8>,
    pub cols: u16,
    pub rows: u16,
}

pub struct SessionRecording {
    recorder: Recorder,
    /// Set after the first failed write: the session goes on, and the
    /// failure is logged once, not per frame.
    failed: bool,
}

impl SessionRecording {
    pub fn start(
        settings: &RecordingSettings,
        start: Start<'_>,
    ) -> std::io::Result<SessionRecording> {
        let meta = Metadata {
            id: RecordingId::random()?,
            kind: if start.serial_port.is_some() {
                Kind::Serial
            } else {
                Kind::Ssh
            },
            source: start.source,
            principal_arn: start.principal_arn.to_owned(),
            instance_id: start.instance_id.to_owned(),
            os_user: start.os_user.map(str::to_owned),
            serial_port: start.serial_port,
            started_at: time::OffsetDateTime::now_utc(),
            ended_at: None,
            width: start.cols,
            height: start.rows,
            bytes_out: 0,
            bytes_in: 0,
            input_recorded: settings.record_input,
            truncated: false,
            end_reason: None,
        };
        let recorder = Recorder::create(
            &settings.dir,
            meta,
            RecorderOptions {
                record_input: settings.record_input,
                max_bytes: settings.max_bytes,
            },
        )?;
        Ok(SessionRecording {
            recorder,
            failed: false,
        })
    }

    fn check(&mut self, written: std::io::Result<()>) {
        if let Err(e) = written {
            if !std::mem::replace(&mut self.failed, true) {
                tracing::error!(error = %e, "recording write failed; the session goes on unrecorded from here");
            }
        }
    }

    pub fn output(&mut self, bytes: &[u8]) {
        let written = self.recorder.output(bytes);
        self.check(written);
    }

    pub fn input(&mut self, bytes: &[u8]) {
        let written = self.recorder.input(bytes);
        self.check(written);
    }

    pub fn resize(&mut self, cols: u16, rows: u16) {
        let written = self.recorder.resize(cols, rows);
        self.check(written);
    }

    pub fn flush(&mut self) {
        let written = self.recorder.flush();
        self.check(written);
    }

    pub async fn finish(self, ended: &Ended) {
        let reason = ended.reason.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || self.finish_now(&reason)).await {
            tracing::error!(error = %e, "recording not finished");
        }
    }

    /// Flushes, syncs and writes the final metadata: blocking.
    pub fn finish_now(self, reason: &str) {
        if let Err(e) = self.recorder.finish(reason) {
            tracing::error!(error = %e, "recording not finished");
        }
    }
}
