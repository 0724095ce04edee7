//! `eic reload`: asks the servers running on a data dir to read their
//! configuration again (SIGHUP), waits for each one's answer in the data
//! dir and reports it: exit 0 when every one serves the new configuration,
//! 1 with a server's reason when it refused and still serves the old one.

use std::time::{Duration, Instant};

use anyhow::Context;

use super::ServerFiles;
use crate::data_dir::RunningServer;
use crate::server::reload::{read_status, Catalog, ReloadResult, ReloadStatus};

#[derive(clap::Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    server: ServerFiles,
    /// How long to wait for the servers' answers.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    timeout_secs: u64,
}

pub fn run(args: ReloadArgs) -> anyhow::Result<()> {
    // The file is checked here first, so a typo is reported to whoever
    // made it; what only a running server can judge (sections that need a
    // restart, ids enrolled meanwhile) it judges itself.
    const NOT_SENT: &str = "the configuration does not load; nothing was sent";
    let (config, data_dir) = args.server.open().context(NOT_SENT)?;
    Catalog::from_config(&config).context(NOT_SENT)?;
    let dir = data_dir.path();
    let pids = RunningServer::running(dir)?;
    if pids.is_empty() {
        anyhow::bail!("no eic server is running on data dir {}", dir.display());
    }
    let mut asked = Vec::with_capacity(pids.len());
    for pid in pids {
        let generation = read_status(dir, pid)?.map_or(0, |s| s.generation);
        let target = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .context("a server entry holds no process id")?;
        rustix::process::kill_process(target, rustix::process::Signal::HUP)
            .with_context(|| format!("cannot signal the server (pid {pid})"))?;
        asked.push((pid, generation));
    }

    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let mut refusals = Vec::new();
    for (pid, generation) in asked {
        match answer(dir, pid, generation, deadline)? {
            Some(status) if status.result == ReloadResult::Applied => {
                println!("reloaded: server pid {pid} serves the new configuration");
            }
            Some(status) => refusals.push(format!(
                "refused by the server (pid {pid}), which still serves the old configuration: {}",
                status.message
            )),
            None => refusals.push(format!(
                "the server (pid {pid}) was signalled but did not answer within {} s; see its log",
                args.timeout_secs
            )),
        }
    }
    if refusals.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", refusals.join("\n"))
    }
}

/// The server's status once its generation passes `generation`, or `None`
/// at the deadline.
fn answer(
    dir: &std::path::Path,
    pid: u32,
    generation: u64,
    deadline: Instant,
) -> anyhow::Result<Option<ReloadStatus>> {
    loop {
        if let Some(status) = read_status(dir, pid)? {
            if status.generation > generation {
                return Ok(Some(status));
            }
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        // A server answers within milliseconds; polling its one small file
        // is simpler than any channel to it.
        std::thread::sleep(Duration::from_millis(20));
    }
}
