//! Where a node's runtime settings live: a file in the data dir on the
//! embedded store (one node), a Redis hash when nodes share Redis, so a
//! command run against any node's configuration changes them for all; and
//! [`SerialConsoleAccess`], the typed view of one of them (the other,
//! credential generations, is read by [`crate::instance_credentials`]).

use std::path::Path;
use std::sync::Arc;

use eic_store::{Settings, StoreError};
use eic_store_redis::{RedisConnection, RedisSettings, DEFAULT_OP_TIMEOUT};

use crate::config::{Config, StoreKind};
use crate::data_dir::{DataDir, SettingsFile};

/// Serial console access by account.
pub const SERIAL_CONSOLE_ACCESS: &str = "serial-console-access";
/// Instance credential generations by instance.
pub const INSTANCE_CREDENTIALS: &str = "instance-credentials";

/// For a server: the Redis map kept fresh in the background when the server
/// runs on Redis, else `<data_dir>/<name>.json`.
pub fn for_server(
    data_dir: &Path,
    redis: Option<&RedisConnection>,
    name: &str,
) -> Arc<dyn Settings> {
    match redis {
        Some(connection) => RedisSettings::watched(connection.clone(), name),
        None => Arc::new(SettingsFile::new(data_dir.join(format!("{name}.json")))),
    }
}

/// For a command: the same map as the servers of `config` use, read once
/// (Redis must answer).
pub async fn for_command(config: &Config, name: &str) -> anyhow::Result<Arc<dyn Settings>> {
    match config.store.kind {
        StoreKind::Redis => {
            let connection =
                RedisConnection::connect(&config.store.urls, DEFAULT_OP_TIMEOUT).await?;
            let settings = RedisSettings::new(connection, name);
            settings.refresh().await?;
            Ok(Arc::new(settings))
        }
        StoreKind::Embedded => {
            let data_dir = DataDir::for_command(&config.data_dir)?;
            Ok(Arc::new(SettingsFile::new(
                data_dir.path().join(format!("{name}.json")),
            )))
        }
    }
}

/// Runs a command's asynchronous part (Redis) to completion.
pub fn block_on<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(work)
}

/// Serial console access per account, changed at runtime by `eic
/// serial-console-access` (see [`for_server`] and [`for_command`] for where it is kept);
/// the configuration's `serial_console_access` is the value until it is
/// first changed.
pub struct SerialConsoleAccess {
    settings: Arc<dyn Settings>,
}

impl SerialConsoleAccess {
    pub fn new(settings: Arc<dyn Settings>) -> SerialConsoleAccess {
        SerialConsoleAccess { settings }
    }

    /// The account's setting, or `default` when never changed. Settings that
    /// cannot be read, or hold something else than a boolean, are an error:
    /// the caller refuses rather than guesses.
    pub fn enabled(&self, account: &str, default: bool) -> Result<bool, StoreError> {
        match self.settings.get(account)? {
            None => Ok(default),
            Some(value) => value.as_bool().ok_or_else(|| {
                StoreError::Unavailable(format!(
                    "serial console access of {account} is not a boolean"
                ))
            }),
        }
    }

    pub async fn set(&self, account: &str, enabled: bool) -> Result<(), StoreError> {
        self.settings.set(account, enabled.into()).await
    }
}
