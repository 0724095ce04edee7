//! The server's data dir: where it is for every command ([`DataDir`]),
//! its secret keys (created once by a server, owner-only), and small JSON settings that commands change while a server
//! runs (`instance-credentials.json`, `serial-console-access.json`).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use eic_store::{Settings, StoreError};
use serde_json::Value;

/// Written by a server into every data dir it initialises: a command finds
/// it there or refuses the directory, so a command pointed at the wrong
/// place never makes a new CA, host key or credentials key of its own.
pub const MARKER: &str = "eic-data-dir";

/// A server's data dir, opened by the server (which creates what is
/// missing) or by a command (which only finds what a server made).
pub struct DataDir {
    path: PathBuf,
    creates: bool,
}

impl DataDir {
    /// For `eic server`: the directory (0700) with its marker.
    pub fn for_server(path: &Path) -> std::io::Result<DataDir> {
        eic_store::disk::create_private_dir(path)?;
        let marker = path.join(MARKER);
        if !marker.exists() {
            write_new_private(&marker, b"eic data dir, format 1\n")?;
        }
        Ok(DataDir {
            path: path.to_owned(),
            creates: true,
        })
    }

    /// For a command acting on a running server's state: refuses a
    /// directory no server has initialised, naming it and the way to the
    /// right one.
    pub fn for_command(path: &Path) -> anyhow::Result<DataDir> {
        // Data dirs of servers from before the marker have this key, which
        // every server start creates.
        let initialised =
            path.join(MARKER).exists() || path.join(crate::credentials::KEY_FILE).exists();
        if !initialised {
            anyhow::bail!(
                "{} is not the data dir of an eic server (no {MARKER} file in it); pass the server's own with --data-dir DIR (the --data-dir it was started with, or the config's data_dir), or start the server once on this one",
                path.display()
            );
        }
        Ok(DataDir {
            path: path.to_owned(),
            creates: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The 32-byte secret key `name`: created from the OS random source
    /// (mode 0600) by a server on first use, only read by a command.
    pub fn key(&self, name: &str) -> std::io::Result<[u8; 32]> {
        let path = self.path.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => bytes.as_slice().try_into().map_err(|_| {
                std::io::Error::other(format!("{} must hold 32 bytes", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.creates => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
                write_new_private(&path, &key)?;
                Ok(key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(std::io::Error::other(format!(
                    "{} does not exist: the server creates it when it starts with this data dir",
                    path.display()
                )))
            }
            Err(e) => Err(std::io::Error::other(format!("{}: {e}", path.display()))),
        }
    }
}

/// Creates `path` (mode 0600) with `bytes`, synced; fails if it exists, so
/// two processes starting together never overwrite each other's secret.
pub fn write_new_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        eic_store::disk::create_private_dir(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

pub use eic_agent::private_file::replace_private;

/// Where running servers register in their data dir: `servers/<pid>.pid`,
/// each under an exclusive `flock` its server holds while it runs, beside
/// the server's reload status (`servers/<pid>.json`, server/reload.rs).
/// `eic reload` signals exactly the servers whose lock is held, so it never
/// signals a process that merely reused a crashed server's id. Several
/// nodes on one Redis may share a data dir (its key material); an embedded
/// store's log has one writer, so with it a server also holds
/// [`EMBEDDED_LOCK`], and a second server on the same data dir is refused.
pub const SERVERS_DIR: &str = "servers";
pub const EMBEDDED_LOCK: &str = "embedded-store.lock";

/// A running server's registration; dropped (and its file removed) when
/// the server stops.
pub struct RunningServer {
    entry: PathBuf,
    _entry_lock: std::fs::File,
    _embedded_lock: Option<std::fs::File>,
}

impl RunningServer {
    pub fn register(dir: &Path, embedded: bool) -> anyhow::Result<RunningServer> {
        let pid = std::process::id();
        let embedded_lock = if embedded {
            let path = dir.join(EMBEDDED_LOCK);
            let file = lock_file(&path)?.ok_or_else(|| {
                anyhow::anyhow!(
                    "{} is the data dir of a running eic server (pid {}) with an embedded store; each such server needs a data dir of its own",
                    dir.display(),
                    std::fs::read_to_string(&path).unwrap_or_default().trim()
                )
            })?;
            file.set_len(0)?;
            writeln!(&file, "{pid}")?;
            Some(file)
        } else {
            None
        };
        let servers = dir.join(SERVERS_DIR);
        eic_store::disk::create_private_dir(&servers)?;
        let entry = servers.join(format!("{pid}.pid"));
        let entry_lock = lock_file(&entry)?
            .ok_or_else(|| anyhow::anyhow!("{} is locked by another process", entry.display()))?;
        Ok(RunningServer {
            entry,
            _entry_lock: entry_lock,
            _embedded_lock: embedded_lock,
        })
    }

    /// The process ids of the servers running on `dir` now. Entries that
    /// crashed servers left behind are removed on the way.
    pub fn running(dir: &Path) -> anyhow::Result<Vec<u32>> {
        use rustix::fs::{flock, FlockOperation};
        let servers = dir.join(SERVERS_DIR);
        let entries = match std::fs::read_dir(&servers) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut pids = Vec::new();
        for entry in entries {
            let path = entry?.path();
            let Some(pid) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".pid"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let file = std::fs::File::open(&path)?;
            match flock(&file, FlockOperation::NonBlockingLockShared) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&path);
                    let _ = std::fs::remove_file(path.with_extension("json"));
                }
                Err(rustix::io::Errno::WOULDBLOCK) => pids.push(pid),
                Err(e) => return Err(std::io::Error::from(e).into()),
            }
        }
        pids.sort_unstable();
        Ok(pids)
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.entry);
    }
}

/// `path` (created 0600) under an exclusive lock, or `None` when another
/// open file holds it.
fn lock_file(path: &Path) -> anyhow::Result<Option<std::fs::File>> {
    use rustix::fs::{flock, FlockOperation};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(file)),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(std::io::Error::from(e).into()),
    }
}

/// A JSON map in the data dir (`<name>.json`), the runtime settings of a
/// single node: changed by commands, reread by a running server when the
/// file's modification time changes.
pub struct SettingsFile {
    path: PathBuf,
    cache: Mutex<(Option<SystemTime>, BTreeMap<String, Value>)>,
}

impl SettingsFile {
    pub fn new(path: PathBuf) -> Self {
        SettingsFile {
            path,
            cache: Mutex::new((None, BTreeMap::new())),
        }
    }

    fn cached(&self, key: &str) -> std::io::Result<Option<Value>> {
        let modified = match std::fs::metadata(&self.path) {
            Ok(m) => Some(m.modified()?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.0 != modified {
            *cache = (modified, self.read()?);
        }
        Ok(cache.1.get(key).cloned())
    }

    /// Sets `key` to what `change` makes of its current value; written aside
    /// and renamed into place, so a server never reads half a file.
    fn update(
        &self,
        key: &str,
        change: impl FnOnce(Option<Value>) -> Result<Value, String>,
    ) -> std::io::Result<Value> {
        let mut map = self.read()?;
        let value = change(map.remove(key)).map_err(std::io::Error::other)?;
        map.insert(key.to_owned(), value.clone());
        let json = serde_json::to_vec_pretty(&map).map_err(std::io::Error::other)?;
        replace_private(&self.path, &json)?;
        Ok(value)
    }

    fn read(&self) -> std::io::Result<BTreeMap<String, Value>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(e),
        }
    }

    fn error(&self, e: std::io::Error) -> StoreError {
        StoreError::backend(self.path.display().to_string(), e)
    }
}

#[async_trait::async_trait]
impl Settings for SettingsFile {
    fn get(&self, key: &str) -> Result<Option<Value>, StoreError> {
        self.cached(key).map_err(|e| self.error(e))
    }

    async fn set(&self, key: &str, value: Value) -> Result<(), StoreError> {
        self.update(key, |_| Ok(value))
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    async fn increment(&self, key: &str) -> Result<u64, StoreError> {
        let next = self
            .update(key, |current| match current {
                None => Ok(Value::from(1u64)),
                Some(n) => n
                    .as_u64()
                    .and_then(|n| n.checked_add(1))
                    .map(Value::from)
                    .ok_or_else(|| format!("{key} does not hold a counter")),
            })
            .map_err(|e| self.error(e))?;
        next.as_u64()
            .ok_or_else(|| StoreError::Unavailable(format!("{key} does not hold a counter")))
    }
}
