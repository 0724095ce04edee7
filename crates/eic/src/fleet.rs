//! Where the fleet (enrolled instances and join tokens) lives: the data
//! dir's log on the embedded store, Redis when nodes share it; for the
//! server and for the commands that change it while servers run.
//!
//! On the embedded store last-seen times live only in the server's memory
//! (heartbeats are not written), so the server also writes them to
//! `fleet-seen` every few seconds, aside and renamed into place, for
//! commands to read: `eic instances list` then shows connection-lost as the
//! server decides it, a snapshot's age late at most. A server does not read
//! it at start: every instance then counts as seen at the start, so a
//! restart does not turn the fleet connection-lost.

use std::sync::Arc;

use eic_store::{EmbeddedFleet, Fleet};
use eic_store_redis::{RedisConnection, RedisFleet, DEFAULT_OP_TIMEOUT};

use crate::config::{Config, StoreKind};
use crate::data_dir::DataDir;

/// For a server on the embedded store: `<data_dir>/fleet.log`.
pub fn open_embedded(data_dir: &DataDir) -> anyhow::Result<Arc<dyn Fleet>> {
    let fleet: Arc<dyn Fleet> = EmbeddedFleet::open(data_dir.path()).map_err(|e| {
        anyhow::anyhow!(
            "cannot open the fleet in {}: {e}",
            data_dir.path().display()
        )
    })?;
    Ok(fleet)
}

/// For a server on Redis: the shared fleet, its local view kept fresh in
/// the background.
pub fn open_redis(connection: &RedisConnection) -> Arc<dyn Fleet> {
    RedisFleet::start(connection.clone())
}

/// For a command: the same fleet as the servers of `config` use.
pub async fn for_command(config: &Config) -> anyhow::Result<Arc<dyn Fleet>> {
    match config.store.kind {
        StoreKind::Redis => {
            let connection =
                RedisConnection::connect(&config.store.urls, DEFAULT_OP_TIMEOUT).await?;
            // Read once: a command lives shorter than the view's bound.
            let fleet = RedisFleet::new(connection);
            fleet.refresh().await?;
            Ok(Arc::new(fleet))
        }
        StoreKind::Embedded => {
            let data_dir = DataDir::for_command(&config.data_dir)?;
            let fleet = open_embedded(&data_dir)?;
            restore_seen(&data_dir, fleet.as_ref())?;
            Ok(fleet)
        }
    }
}

const SEEN_FILE: &str = "fleet-seen";

/// Writes every enrolled instance's last-seen time to the snapshot, as
/// lines of `<instance id> <unix ms>`. Losing it costs nothing but a
/// command's view of liveness, so it is not synced.
pub fn write_seen(data_dir: &DataDir, fleet: &dyn Fleet) -> anyhow::Result<()> {
    let all = fleet.all_enrolled()?;
    let mut text = String::with_capacity(all.len() * 34);
    for enrolled in &all {
        text.push_str(&enrolled.enrollment.instance_id);
        text.push(' ');
        text.push_str(&enrolled.last_seen_ms().to_string());
        text.push('\n');
    }
    crate::data_dir::replace_private(&data_dir.path().join(SEEN_FILE), text.as_bytes())?;
    Ok(())
}

/// Applies the server's snapshot to a command's view; a missing snapshot
/// (no server has run) leaves the open time.
fn restore_seen(data_dir: &DataDir, fleet: &dyn Fleet) -> anyhow::Result<()> {
    let text = match std::fs::read_to_string(data_dir.path().join(SEEN_FILE)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for line in text.lines() {
        let Some((id, ms)) = line.split_once(' ') else {
            continue;
        };
        if let (Some(enrolled), Ok(ms)) = (fleet.enrolled(id)?, ms.parse::<u64>()) {
            enrolled.restore_last_seen(ms);
        }
    }
    Ok(())
}
