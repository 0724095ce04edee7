//! Reloading the configuration while the server runs: on SIGHUP, which
//! `eic reload` sends (cli/reload.rs), as does systemd's `ExecReload`.
//!
//! What a reload may change is the [`Catalog`]: accounts, principals with
//! their access keys, tags and policies, static instances, Instance Connect
//! Endpoints and throttling. It is built whole from the new file and taken
//! in one atomic store ([`LiveCatalog`]): every request loads it once and
//! works with that snapshot to its end, so a request sees the old catalog
//! or the new one, never a mix, and one in flight is not disturbed.
//!
//! Everything else is read once at start (listeners and their TLS
//! settings, the store, the data dir, the region, `[fleet]`, `[audit]`,
//! `[log]`, the tunnel's and the serial console's limits). A new file that
//! changes any of it is refused whole, naming what would need a restart;
//! so is one that does not load. The running catalog then stays, and the
//! refusal is logged, audited, counted (`eic_config_reloads_total`) and
//! written to `servers/<pid>.json` in the data dir for `eic reload` to
//! report.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::authz::Authorizer;
use super::Overrides;
use crate::audit::{format_iso8601, Admission, AuditLog};
use crate::config::{Config, ConfigError, InstanceApiTls, ThrottlingConfig};
use crate::instances::Instances;
use crate::metrics::Metrics;
use crate::registry::Registry;

/// The part of the configuration a reload swaps whole.
pub struct Catalog {
    pub registry: Registry,
    pub authorizer: Authorizer,
    pub throttling: ThrottlingConfig,
}

impl Catalog {
    pub fn from_config(config: &Config) -> Result<Catalog, ConfigError> {
        let registry = Registry::from_config(config)?;
        let authorizer = Authorizer::from_config(config, &registry)?;
        Ok(Catalog {
            registry,
            authorizer,
            throttling: config.throttling.clone(),
        })
    }

    /// The catalog whose policy decisions `metrics` counts (when it
    /// counts at all).
    pub fn counted(mut self, metrics: &Arc<Metrics>) -> Catalog {
        if metrics.counting() {
            self.authorizer = self.authorizer.counted(metrics.clone());
        }
        self
    }
}

/// The catalog every role reads: one atomic pointer, loaded once per
/// request without a lock.
pub struct LiveCatalog(ArcSwap<Catalog>);

impl LiveCatalog {
    pub fn new(catalog: Catalog) -> Arc<LiveCatalog> {
        Arc::new(LiveCatalog(ArcSwap::from_pointee(catalog)))
    }

    /// The catalog as it is now; a request keeps this one to its end.
    pub fn current(&self) -> Arc<Catalog> {
        self.0.load_full()
    }

    fn replace(&self, catalog: Catalog) {
        self.0.store(Arc::new(catalog));
    }
}

/// The serial gateway asks for an instance's console at each connection,
/// so a reloaded `serial_console` backend serves the next session.
impl eic_serial::Backends for LiveCatalog {
    fn backend(&self, instance_id: &str) -> Option<eic_serial::ConsoleBackend> {
        eic_serial::Backends::backend(&self.0.load().registry, instance_id)
    }
}

/// The sections read only at start that differ between `running` and
/// `new`, as the configuration names them.
pub fn restart_only_changes(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut differs = |name: &'static str, same: bool| {
        if !same {
            changed.push(name);
        }
    };
    differs("region", running.region == new.region);
    differs("extra_regions", running.extra_regions == new.extra_regions);
    differs("data_dir", running.data_dir == new.data_dir);
    differs("[api]", running.api == new.api);
    differs("[instance_api]", running.instance_api == new.instance_api);
    differs(
        "[serial_console]",
        running.serial_console == new.serial_console,
    );
    differs("[tunnel]", running.tunnel == new.tunnel);
    differs("[diagnostics]", running.diagnostics == new.diagnostics);
    differs("[console]", running.console == new.console);
    differs("[recordings]", running.recordings == new.recordings);
    differs("[log]", running.log == new.log);
    differs("[store]", running.store == new.store);
    differs("[audit]", running.audit == new.audit);
    differs("[fleet]", running.fleet == new.fleet);
    // The tunnel's certificate from eic's CA names the endpoints' DNS
    // names as they were at start.
    let auto_tunnel_tls = running
        .tunnel
        .as_ref()
        .is_some_and(|t| t.tls == InstanceApiTls::Auto);
    if auto_tunnel_tls && dns_names(running) != dns_names(new) {
        changed.push("[[instance_connect_endpoints]] dns_name (the tunnel's tls = \"auto\" certificate names them)");
    }
    changed
}

fn dns_names(config: &Config) -> BTreeSet<&str> {
    config
        .instance_connect_endpoints
        .iter()
        .flat_map(|e| [Some(e.dns_name.as_str()), e.fips_dns_name.as_deref()])
        .flatten()
        .collect()
}

/// What a server says of its last reload, for `eic reload`: a count that
/// grows with every attempt, and its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadStatus {
    pub generation: u64,
    pub result: ReloadResult,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReloadResult {
    /// The server started with this file; no reload was asked for yet.
    Started,
    Applied,
    Refused,
}

/// Where the server `pid` on `data_dir` writes its [`ReloadStatus`].
fn status_path(data_dir: &Path, pid: u32) -> PathBuf {
    data_dir
        .join(crate::data_dir::SERVERS_DIR)
        .join(format!("{pid}.json"))
}

/// Reloads the configuration file the server started with.
pub(super) struct Reloader {
    pub path: PathBuf,
    pub overrides: Overrides,
    /// The configuration in force: its start-only sections never change.
    pub running: Config,
    pub catalog: Arc<LiveCatalog>,
    pub instances: Arc<Instances>,
    pub metrics: Arc<Metrics>,
    pub audit: Arc<AuditLog>,
    pub data_dir: PathBuf,
    pub generation: u64,
}

impl Reloader {
    /// Writes the status a server starts with.
    pub fn started(&self) {
        self.write_status(
            ReloadResult::Started,
            "serving the configuration it started with",
        );
    }

    /// Reads the file again and takes its catalog, or refuses it and keeps
    /// the running one; logs, audits, counts and reports either.
    pub fn reload(&mut self) {
        self.generation += 1;
        let text = std::fs::read(&self.path).unwrap_or_default();
        let digest = hex::encode(Sha256::digest(&text));
        match self.load() {
            Ok((config, catalog)) => {
                let changes = catalog_changes(&self.running, &config);
                self.catalog.replace(catalog);
                self.running = config;
                self.metrics.reload(true);
                tracing::info!(path = %self.path.display(), sha256 = %digest, "configuration reloaded");
                self.record(&digest, changes, None);
                self.write_status(ReloadResult::Applied, "reloaded");
            }
            Err(refusal) => {
                self.metrics.reload(false);
                tracing::error!(path = %self.path.display(), sha256 = %digest, error = %refusal, "configuration reload refused; the running configuration stays");
                self.record(&digest, Value::Null, Some(&refusal));
                self.write_status(ReloadResult::Refused, &refusal);
            }
        }
    }

    fn load(&self) -> Result<(Config, Catalog), String> {
        let config = Config::load(&self.path)
            .map_err(|e| format!("{e:#}"))
            .and_then(|c| {
                self.overrides
                    .clone()
                    .apply(c)
                    .map_err(|e| format!("{e:#}"))
            })?;
        let restart = restart_only_changes(&self.running, &config);
        if !restart.is_empty() {
            return Err(format!(
                "{} cannot change without a restart; nothing was reloaded",
                restart.join(", ")
            ));
        }
        let catalog = Catalog::from_config(&config)
            .map_err(|e| e.to_string())?
            .counted(&self.metrics);
        self.instances
            .check_disjoint(&catalog.registry)
            .map_err(|e| e.to_string())?;
        Ok((config, catalog))
    }

    fn record(&self, digest: &str, changes: Value, refusal: Option<&str>) {
        let mut event = json!({
            "eventVersion": "1.08",
            "userIdentity": {"type": "AWSService", "invokedBy": "eic"},
            "eventTime": format_iso8601(std::time::SystemTime::now()),
            "eventSource": crate::audit::EVENT_SOURCE,
            "eventName": "ReloadConfiguration",
            "awsRegion": self.running.region,
            "sourceIPAddress": "eic",
            "requestParameters": {"path": self.path.display().to_string(), "sha256": digest},
            "responseElements": changes,
            "eventID": uuid::Uuid::new_v4().to_string(),
            "readOnly": false,
            "eventType": "AwsServiceEvent",
        });
        if let Some(message) = refusal {
            event["errorCode"] = "ConfigurationRefused".into();
            event["errorMessage"] = crate::audit::bounded(message, 1024).into_owned().into();
        }
        if let Err(e) = self.audit.record(&event, Admission::Outcome) {
            tracing::error!(error = %e, "audit log write failed for a configuration reload");
        }
    }

    fn write_status(&self, result: ReloadResult, message: &str) {
        let status = ReloadStatus {
            generation: self.generation,
            result,
            message: message.to_owned(),
        };
        let written = serde_json::to_vec(&status)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                crate::data_dir::replace_private(
                    &status_path(&self.data_dir, std::process::id()),
                    &bytes,
                )
            });
        if let Err(e) = written {
            tracing::warn!(error = %e, "cannot write the reload status; `eic reload` will not see it");
        }
    }
}

/// Which principals, access keys, accounts, instances and endpoints a
/// reload adds and removes (names only, at most 20 of each, and counts):
/// what an auditor asks of a change of who may do what.
fn catalog_changes(old: &Config, new: &Config) -> Value {
    fn ids<'a>(items: impl Iterator<Item = &'a str>) -> BTreeSet<&'a str> {
        items.collect()
    }
    let pairs = [
        (
            "principals",
            ids(old.principals.iter().map(|p| p.arn.as_str())),
            ids(new.principals.iter().map(|p| p.arn.as_str())),
        ),
        (
            "accessKeys",
            ids(old
                .principals
                .iter()
                .flat_map(|p| p.access_keys.iter().map(|k| k.id.as_str()))),
            ids(new
                .principals
                .iter()
                .flat_map(|p| p.access_keys.iter().map(|k| k.id.as_str()))),
        ),
        (
            "accounts",
            ids(old.accounts.iter().map(|a| a.id.as_str())),
            ids(new.accounts.iter().map(|a| a.id.as_str())),
        ),
        (
            "instances",
            ids(old.instances.iter().map(|i| i.id.as_str())),
            ids(new.instances.iter().map(|i| i.id.as_str())),
        ),
        (
            "instanceConnectEndpoints",
            ids(old.instance_connect_endpoints.iter().map(|e| e.id.as_str())),
            ids(new.instance_connect_endpoints.iter().map(|e| e.id.as_str())),
        ),
    ];
    let mut changes = serde_json::Map::new();
    for (name, before, after) in pairs {
        let added: Vec<&str> = after.difference(&before).copied().collect();
        let removed: Vec<&str> = before.difference(&after).copied().collect();
        changes.insert(
            name.into(),
            json!({
                "count": after.len(),
                "added": &added[..added.len().min(20)],
                "addedCount": added.len(),
                "removed": &removed[..removed.len().min(20)],
                "removedCount": removed.len(),
            }),
        );
    }
    Value::Object(changes)
}

/// The last reload status of the server `pid` on `data_dir`.
pub fn read_status(data_dir: &Path, pid: u32) -> std::io::Result<Option<ReloadStatus>> {
    match std::fs::read(status_path(data_dir, pid)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eic.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path).unwrap()
    }

    const BASE: &str = r#"
region = "us-west-2"
data_dir = "/nonexistent/eic-data"
[api]
listen = "127.0.0.1:0"
[[accounts]]
id = "111122223333"
[[principals]]
arn = "arn:aws:iam::111122223333:user/alice"
access_keys = [{ id = "AKIAALICE", secret = "alice-secret" }]
"#;

    #[test]
    fn principals_and_throttling_may_change_but_listeners_and_the_store_may_not() {
        let running = config(BASE);
        let more = format!(
            "{BASE}\n[[principals]]\narn = \"arn:aws:iam::111122223333:user/bob\"\n[throttling]\nprincipal = {{ rate = 1.0, burst = 2.0 }}\n"
        );
        assert!(restart_only_changes(&running, &config(&more)).is_empty());

        let moved = BASE.replace("127.0.0.1:0", "127.0.0.1:8443");
        assert_eq!(restart_only_changes(&running, &config(&moved)), ["[api]"]);
        let redis =
            format!("{BASE}\n[store]\nkind = \"redis\"\nurls = [\"redis://127.0.0.1:1\"]\n");
        assert_eq!(restart_only_changes(&running, &config(&redis)), ["[store]"]);
        let region = BASE.replace("us-west-2", "eu-west-1");
        assert_eq!(restart_only_changes(&running, &config(&region)), ["region"]);
    }

    #[test]
    fn the_audited_changes_name_added_and_removed_principals_but_no_secret() {
        let old = config(BASE);
        let new = config(&BASE.replace("alice", "carol").replace("ALICE", "CAROL"));
        let changes = catalog_changes(&old, &new);
        assert_eq!(
            changes["principals"]["added"],
            json!(["arn:aws:iam::111122223333:user/carol"])
        );
        assert_eq!(
            changes["principals"]["removed"],
            json!(["arn:aws:iam::111122223333:user/alice"])
        );
        assert_eq!(changes["accessKeys"]["added"], json!(["AKIACAROL"]));
        assert_eq!(changes["accounts"]["addedCount"], 0);
        assert!(!changes.to_string().contains("secret"), "{changes}");
    }
}
