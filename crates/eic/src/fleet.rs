//! Where the fleet (enrolled instances and join tokens) lives: the data
//! dir's log on the embedded store, Redis when nodes share it; for the
//! server and for the commands that change it while servers run.

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
        StoreKind::Embedded => open_embedded(&DataDir::for_command(&config.data_dir)?),
    }
}
