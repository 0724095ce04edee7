//! `eic agent run`: the agent's long-running part. It heartbeats at the
//! interval the server answers with, reporting the machine's current
//! addresses and host keys, and on SIGTERM or SIGINT (a clean shutdown)
//! reports `stopped` once before it exits, so pushes to a machine that is
//! going down answer EC2InstanceStateInvalidException rather than a
//! timeout. A heartbeat that fails is retried sooner, never faster than
//! once a second; the server's answer that the instance was removed ends
//! the agent with an error.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::http::{Client, Trust};
use super::join::collect_facts;
use super::AgentConfig;
use crate::enrollment::{self, ErrorBody, HeartbeatRequest, HeartbeatResponse, ReportedState};

/// One heartbeat's bound.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);
/// Until the server has answered once.
const FIRST_INTERVAL: Duration = Duration::from_secs(30);
const MIN_RETRY: Duration = Duration::from_secs(1);

#[derive(Args)]
pub struct RunArgs {
    /// The agent config `eic agent join` wrote.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

enum Beat {
    /// Answered: next one after this.
    Next(Duration),
    /// The server will never take this instance's heartbeat again.
    Refused(String),
    Failed(String),
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read {}", args.config.display()))?;
    let config: AgentConfig =
        toml::from_str(&text).with_context(|| format!("{}", args.config.display()))?;
    let client = match &config.tls_ca {
        Some(pem) => Client::new(
            Trust::Anchors(pem.clone()),
            config.insecure_http,
            HEARTBEAT_TIMEOUT,
        )?,
        None if config.insecure_http => Client::plain_http(HEARTBEAT_TIMEOUT),
        None => anyhow::bail!(
            "{} has no tls_ca and was not joined with --insecure-http; join again",
            args.config.display()
        ),
    };
    let agent = Arc::new((client, config));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut interval = FIRST_INTERVAL;
        let mut retry = MIN_RETRY;
        let mut first = true;
        loop {
            let beat = beat(agent.clone(), ReportedState::Running).await;
            if std::mem::take(&mut first) {
                // Up, whether or not the server answered: it retries.
                crate::systemd::ready("heartbeating");
            }
            let wait = match beat {
                Beat::Next(next) => {
                    interval = next;
                    retry = MIN_RETRY;
                    next
                }
                Beat::Refused(message) => anyhow::bail!("{message}"),
                Beat::Failed(message) => {
                    eprintln!("eic agent: heartbeat failed: {message}");
                    let wait = retry.min(interval);
                    retry = (retry * 2).min(interval);
                    wait
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = term.recv() => break,
                _ = interrupt.recv() => break,
            }
        }
        crate::systemd::stopping();
        match beat(agent, ReportedState::Stopped).await {
            Beat::Next(_) => eprintln!("eic agent: reported stopped"),
            Beat::Refused(m) | Beat::Failed(m) => {
                eprintln!("eic agent: could not report stopped: {m}")
            }
        }
        Ok(())
    })
}

async fn beat(agent: Arc<(Client, AgentConfig)>, state: ReportedState) -> Beat {
    let sent = tokio::task::spawn_blocking(move || {
        let (client, config) = &*agent;
        let machine = config.machine.clone().unwrap_or_default();
        let facts = collect_facts(&machine, &config.endpoint)?;
        let body = serde_json::to_vec(&HeartbeatRequest { state, facts })?;
        let request =
            http::Request::post(format!("{}{}", config.endpoint, enrollment::HEARTBEAT_PATH))
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(
                    http::header::AUTHORIZATION,
                    format!("Bearer {}", config.credential.expose()),
                )
                .body(body)?;
        client.send(request)
    })
    .await;
    let reply = match sent {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => return Beat::Failed(format!("{e:#}")),
        Err(e) => return Beat::Failed(e.to_string()),
    };
    let status = reply.response.status();
    let body = reply.response.body();
    if status.is_success() {
        return match serde_json::from_slice::<HeartbeatResponse>(body) {
            Ok(answer) => Beat::Next(Duration::from_secs(answer.heartbeat_secs.max(1))),
            Err(e) => Beat::Failed(format!("unexpected answer: {e}")),
        };
    }
    let message = serde_json::from_slice::<ErrorBody>(body)
        .map(|e| e.message)
        .unwrap_or_else(|_| status.to_string());
    match status.as_u16() {
        401 | 404 => Beat::Refused(format!(
            "the server no longer takes this instance's heartbeats ({status}): {message}"
        )),
        _ => Beat::Failed(format!("{status}: {message}")),
    }
}
