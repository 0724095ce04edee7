//! The server's TOML configuration: listeners, data dir, store, and the
//! registry of accounts, principals and instances.
//!
//! Unknown fields are errors (`deny_unknown_fields`): a misspelt setting
//! that silently did nothing would be a security bug in an access system.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use eic_serial::ConsoleBackend;
use eic_store::{BucketRate, Durability};
use serde::Deserialize;

use crate::audit::AuditLimits;
use crate::secret::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The region this server answers for; clients sign with it.
    pub region: String,
    /// Further regions accepted in credential scopes, if any.
    #[serde(default)]
    pub extra_regions: Vec<String>,
    /// Where durable state lives (relative paths are relative to the config
    /// file).
    pub data_dir: PathBuf,
    pub api: ApiConfig,
    /// The instance-facing listener; absent, instances cannot fetch keys.
    pub instance_api: Option<InstanceApiConfig>,
    /// The serial console SSH gateway; absent, no serial sessions.
    pub serial_console: Option<SerialConsoleConfig>,
    /// The Instance Connect Endpoint's listener (`/openTunnel`); absent,
    /// endpoints are listed but no tunnel opens.
    pub tunnel: Option<TunnelConfig>,
    /// `/metrics`, `/healthz` and `/readyz`, off the API's port; absent,
    /// none of them.
    pub diagnostics: Option<DiagnosticsConfig>,
    /// The browser console (sign-in links, instance pages, terminals and
    /// recordings); absent, no web surface at all.
    pub console: Option<ConsoleConfig>,
    /// How console and serial gateway sessions are recorded.
    #[serde(default)]
    pub recordings: RecordingsConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub throttling: ThrottlingConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub fleet: FleetConfig,
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
    #[serde(default)]
    pub principals: Vec<PrincipalConfig>,
    #[serde(default)]
    pub instances: Vec<InstanceConfig>,
    #[serde(default)]
    pub instance_connect_endpoints: Vec<EndpointConfig>,
}

/// `[log]`: how the server writes its log to stderr (the level is
/// `RUST_LOG`'s, default `info`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for people; coloured only at a terminal.
    #[default]
    Text,
    /// One JSON object a line, for journald's or a collector's parsers.
    Json,
}

/// `[diagnostics]`: for Prometheus and health checks. Unauthenticated, so
/// listen where only the monitoring reaches (loopback, a management
/// network).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagnosticsConfig {
    pub listen: SocketAddr,
}

/// `[console]`: the browser console's listener. HTTPS with `tls`; without
/// it plain http, which is refused anywhere but loopback (the session
/// cookie would cross the network in the clear).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    pub listen: SocketAddr,
    /// `"auto"` (a certificate for `tls_names` from eic's TLS CA) or the
    /// operator's `{ certificate, private_key }`; absent, plain http.
    pub tls: Option<InstanceApiTls>,
    /// With `tls = "auto"`: the names the certificate holds.
    #[serde(default = "ConsoleConfig::default_tls_names")]
    pub tls_names: Vec<String>,
    /// Where sign-in links point (`https://console.example.org`); default
    /// the listen address.
    pub public_url: Option<String>,
    /// A signed-in session's lifetime (AWS's federation default: 1 hour).
    #[serde(default = "ConsoleConfig::default_session_ttl")]
    pub session_ttl_secs: u64,
    /// A terminal silent both ways this long is closed.
    #[serde(default = "ConsoleConfig::default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Terminals open at once per principal, on this node.
    #[serde(default = "ConsoleConfig::default_terminals_per_principal")]
    pub max_terminals_per_principal: usize,
    /// Signed-in sessions at once, on this node.
    #[serde(default = "ConsoleConfig::default_max_sessions")]
    pub max_sessions: usize,
    /// How long the SSH connection to an instance may take to set up.
    #[serde(default = "ConsoleConfig::default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// How a terminal reaches an instance's sshd.
    #[serde(default)]
    pub route: ConsoleRoute,
}

/// `[console] route`: how a terminal reaches an instance's sshd.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleRoute {
    /// Through the Instance Connect Endpoint of the instance's VPC when it
    /// has one that allows the instance's SSH port, else directly.
    #[default]
    Auto,
    /// From this node to the instance's private (else public) address.
    Direct,
    /// Only through an endpoint; an instance no endpoint reaches is refused.
    Endpoint,
}

impl ConsoleConfig {
    fn default_tls_names() -> Vec<String> {
        vec!["localhost".to_owned()]
    }

    fn default_session_ttl() -> u64 {
        3600
    }

    fn default_idle_timeout() -> u64 {
        900
    }

    fn default_terminals_per_principal() -> usize {
        16
    }

    fn default_max_sessions() -> usize {
        10_000
    }

    fn default_connect_timeout() -> u64 {
        10
    }

    /// The base of sign-in links for a console listening on `listen`:
    /// `public_url`, else the address itself.
    pub fn base_url_at(&self, listen: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let scheme = if self.tls.is_some() { "https" } else { "http" };
                format!("{scheme}://{listen}")
            }
        }
    }
}

/// `[recordings]`: every console terminal and serial gateway session is
/// recorded (asciicast v2) under `dir`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingsConfig {
    /// Default `<data_dir>/recordings`.
    pub dir: Option<PathBuf>,
    /// Keystrokes too (passwords typed at a prompt among them): off.
    #[serde(default)]
    pub record_input: bool,
    /// Finished recordings older than this are removed.
    #[serde(default = "RecordingsConfig::default_retention_days")]
    pub retention_days: u64,
    /// One recording's size; past it, output is no longer written.
    #[serde(default = "RecordingsConfig::default_max_bytes_per_session")]
    pub max_bytes_per_session: u64,
    /// All recordings' size; past it, the oldest finished are removed.
    #[serde(default = "RecordingsConfig::default_max_total_bytes")]
    pub max_total_bytes: u64,
}

impl Default for RecordingsConfig {
    fn default() -> Self {
        RecordingsConfig {
            dir: None,
            record_input: false,
            retention_days: Self::default_retention_days(),
            max_bytes_per_session: Self::default_max_bytes_per_session(),
            max_total_bytes: Self::default_max_total_bytes(),
        }
    }
}

impl RecordingsConfig {
    fn default_retention_days() -> u64 {
        90
    }

    fn default_max_bytes_per_session() -> u64 {
        64 << 20
    }

    fn default_max_total_bytes() -> u64 {
        10 << 30
    }
}

impl Config {
    /// Where recordings are written, after `--data-dir` overrides.
    pub fn recordings_dir(&self) -> PathBuf {
        self.recordings
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("recordings"))
    }
}

/// `[tunnel]`: the listener every endpoint's `dns_name` resolves to. HTTPS
/// only: the CLI v2 dials port 443 with TLS and trusts the system store or
/// `SSL_CERT_FILE`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelConfig {
    pub listen: SocketAddr,
    /// `"auto"` (a certificate for every endpoint's DNS name from eic's TLS
    /// CA, `pki/tls-ca.pem`) or the operator's `{ certificate, private_key }`.
    pub tls: InstanceApiTls,
    /// Tunnels open at once on this node (each holds two descriptors).
    /// Default 10,000, lowered at start to fit RLIMIT_NOFILE; a value set
    /// here must fit.
    pub max_connections: Option<usize>,
    /// Open tunnels per principal, on this node.
    #[serde(default = "TunnelConfig::default_per_principal")]
    pub max_tunnels_per_principal: usize,
    /// Open tunnels per endpoint, on this node.
    #[serde(default = "TunnelConfig::default_per_endpoint")]
    pub max_tunnels_per_endpoint: usize,
    /// A tunnel silent both ways this long is closed (AWS: 1 hour).
    #[serde(default = "TunnelConfig::default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// How long the connection to the instance may take.
    #[serde(default = "TunnelConfig::default_connect_timeout")]
    pub connect_timeout_secs: u64,
}

impl TunnelConfig {
    fn default_per_principal() -> usize {
        64
    }

    fn default_per_endpoint() -> usize {
        1_000
    }

    fn default_idle_timeout() -> u64 {
        3600
    }

    fn default_connect_timeout() -> u64 {
        10
    }
}

/// `[[instance_connect_endpoints]]`: an EC2 Instance Connect Endpoint. It
/// reaches the running instances of its VPC in its account, at their
/// private addresses, on `allowed_ports`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// `eice-` and 17 hex digits.
    pub id: String,
    pub account: String,
    pub vpc_id: String,
    pub subnet_id: String,
    pub availability_zone: String,
    /// The name clients dial (port 443) and sign for; it must resolve to
    /// the `[tunnel]` listener.
    pub dns_name: String,
    /// What DescribeInstanceConnectEndpoints reports as `fipsDnsName`.
    pub fips_dns_name: Option<String>,
    #[serde(default = "EndpointConfig::default_ports")]
    pub allowed_ports: Vec<u16>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl EndpointConfig {
    fn default_ports() -> Vec<u16> {
        vec![22]
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// Serve HTTPS instead of HTTP.
    pub tls: Option<TlsConfig>,
    /// Connections served at once; beyond this the listener stops accepting
    /// (they wait in the kernel's backlog) until one closes. Default 10,000,
    /// lowered at start to fit RLIMIT_NOFILE; a value set here must fit.
    pub max_connections: Option<usize>,
}

/// A certificate chain and its private key, PEM files. SIGHUP reloads both,
/// so a renewed certificate needs no restart.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The leaf first, then any intermediates.
    pub certificate: PathBuf,
    /// PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub private_key: PathBuf,
}

/// Enrolled machines: how often they heartbeat, when they count as
/// connection-lost, and how fast one address may try join tokens.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// The interval the server tells agents to heartbeat at.
    #[serde(default = "FleetConfig::default_heartbeat_secs")]
    pub heartbeat_secs: u64,
    /// No heartbeat for this long: the instance is connection-lost and
    /// pushes to it answer EC2InstanceUnavailableException.
    #[serde(default = "FleetConfig::default_unavailable_after_secs")]
    pub unavailable_after_secs: u64,
    /// Join attempts per source address (a token is 256 random bits; this
    /// bounds the work and the audit lines a stranger can cause).
    #[serde(default = "FleetConfig::default_joins")]
    pub joins: BucketRate,
}

impl FleetConfig {
    fn default_heartbeat_secs() -> u64 {
        30
    }

    fn default_unavailable_after_secs() -> u64 {
        90
    }

    fn default_joins() -> BucketRate {
        BucketRate {
            rate: 5.0,
            burst: 50.0,
        }
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs)
    }

    pub fn unavailable_after(&self) -> Duration {
        Duration::from_secs(self.unavailable_after_secs)
    }
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            heartbeat_secs: Self::default_heartbeat_secs(),
            unavailable_after_secs: Self::default_unavailable_after_secs(),
            joins: Self::default_joins(),
        }
    }
}

/// Token buckets: one per principal, one per instance. A flood from one
/// principal empties only its own bucket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottlingConfig {
    #[serde(default = "ThrottlingConfig::default_principal")]
    pub principal: BucketRate,
    #[serde(default = "ThrottlingConfig::default_instance")]
    pub instance: BucketRate,
}

impl ThrottlingConfig {
    fn default_principal() -> BucketRate {
        BucketRate {
            rate: 50.0,
            burst: 100.0,
        }
    }

    fn default_instance() -> BucketRate {
        BucketRate {
            rate: 20.0,
            burst: 40.0,
        }
    }
}

impl Default for ThrottlingConfig {
    fn default() -> Self {
        ThrottlingConfig {
            principal: ThrottlingConfig::default_principal(),
            instance: ThrottlingConfig::default_instance(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Where the audit log is written; default `<data_dir>/audit.log`.
    pub path: Option<PathBuf>,
    /// Below this much free space on the audit log's filesystem, refused
    /// calls are only counted (in one summary event every 10 s), keeping
    /// the rest for pushes, key fetches and their events. Default 64 MiB.
    #[serde(default = "AuditConfig::default_reserve_bytes")]
    pub disk_reserve_bytes: u64,
    /// Refused calls written line by line per caller (each principal, and
    /// all unauthenticated callers together); beyond, they are counted.
    #[serde(default = "AuditConfig::default_refusals")]
    pub refusals: BucketRate,
}

impl AuditConfig {
    fn default_reserve_bytes() -> u64 {
        AuditLimits::default().reserve_bytes
    }

    fn default_refusals() -> BucketRate {
        AuditLimits::default().refusals
    }

    pub fn limits(&self) -> AuditLimits {
        AuditLimits {
            reserve_bytes: self.disk_reserve_bytes,
            refusals: self.refusals,
        }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            path: None,
            disk_reserve_bytes: AuditConfig::default_reserve_bytes(),
            refusals: AuditConfig::default_refusals(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceApiConfig {
    pub listen: SocketAddr,
    /// The URL instances reach this listener at, written into agent
    /// configs (default `http://<listen>`).
    pub public_url: Option<String>,
    /// The signer is `managed-ssh-signer.<region>.<domain>`.
    #[serde(default = "InstanceApiConfig::default_domain")]
    pub domain: String,
    /// As `[api] max_connections`.
    pub max_connections: Option<usize>,
    /// Serve HTTPS: `"auto"` (a certificate from eic's own TLS CA, see
    /// [`crate::tls_ca`]) or the operator's `{ certificate, private_key }`.
    pub tls: Option<InstanceApiTls>,
    /// With `tls = "auto"`: further DNS names or IP addresses for the
    /// certificate, beside the listen IP and `public_url`'s host.
    #[serde(default)]
    pub tls_names: Vec<String>,
}

impl InstanceApiConfig {
    fn default_domain() -> String {
        "eic.internal".into()
    }

    /// What agent configs point at: `public_url`, else the listen address
    /// with the scheme the listener serves.
    pub fn url(&self) -> String {
        match &self.public_url {
            Some(url) => url.clone(),
            None if self.tls.is_some() => format!("https://{}", self.listen),
            None => format!("http://{}", self.listen),
        }
    }
}

/// `[instance_api] tls`.
#[derive(Debug, Clone, PartialEq)]
pub enum InstanceApiTls {
    /// A certificate eic issues itself, from its TLS CA in the data dir.
    Auto,
    /// The operator's files, reloaded on SIGHUP; the chain file must end
    /// with the CA instances are to trust.
    Files(TlsConfig),
}

impl<'de> Deserialize<'de> for InstanceApiTls {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = InstanceApiTls;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#""auto" or { certificate = PATH, private_key = PATH }"#)
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "auto" => Ok(InstanceApiTls::Auto),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                TlsConfig::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(InstanceApiTls::Files)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialConsoleConfig {
    pub listen: SocketAddr,
    /// A session ends after this long (AWS: 1 hour).
    #[serde(default = "SerialConsoleConfig::default_max_session")]
    pub max_session_secs: u64,
    /// After a session ends, the port stays taken this long (AWS: 30 s).
    #[serde(default = "SerialConsoleConfig::default_teardown")]
    pub teardown_secs: u64,
    /// On Redis, a session's lock is a lease its node renews every third of
    /// this: if the node dies, the port is free again after at most this
    /// long (1 to 300; default 15).
    #[serde(default = "SerialConsoleConfig::default_session_lease")]
    pub session_lease_secs: u64,
    /// Connections served at once (each holds about four descriptors);
    /// beyond, they wait in the kernel's backlog. Default 1,000, lowered at
    /// start to fit RLIMIT_NOFILE; a value set here must fit.
    pub max_connections: Option<usize>,
    /// Connections at once from one IPv4 address or IPv6 /64; more are
    /// closed at accept.
    #[serde(default = "SerialConsoleConfig::default_max_connections_per_source")]
    pub max_connections_per_source: usize,
}

impl SerialConsoleConfig {
    fn default_max_session() -> u64 {
        3600
    }

    fn default_teardown() -> u64 {
        30
    }

    fn default_session_lease() -> u64 {
        15
    }

    fn default_max_connections_per_source() -> usize {
        32
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(default)]
    pub kind: StoreKind,
    /// `"fsync"`, `"interval"` (default) or `"process-crash"`; after
    /// [`Config::load`], an interval is `sync_interval_ms`.
    #[serde(default)]
    pub durability: Durability,
    /// With `durability = "interval"`: the most acknowledged pushes a power
    /// loss can take back, in milliseconds.
    #[serde(default = "StoreConfig::default_sync_interval_ms")]
    pub sync_interval_ms: u64,
    /// With `kind = "redis"`.
    #[serde(default)]
    pub urls: Vec<String>,
}

impl StoreConfig {
    fn default_sync_interval_ms() -> u64 {
        eic_store::DEFAULT_SYNC_INTERVAL.as_millis() as u64
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: StoreKind::default(),
            durability: Durability::default(),
            sync_interval_ms: StoreConfig::default_sync_interval_ms(),
            urls: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreKind {
    #[default]
    Embedded,
    /// Shared by several nodes: `urls` (one `redis://` for standalone,
    /// `redis-cluster://h:p,h:p` or several `redis://` for a cluster,
    /// `redis-sentinel://h:p,h:p/MASTER` for a Sentinel-monitored master).
    Redis,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    pub id: String,
    #[serde(default)]
    pub serial_console_access: bool,
    /// IAM policy documents (JSON text) bounding every principal of the
    /// account: a push must also be allowed here, so these can only deny.
    #[serde(default)]
    pub boundary_policies: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalConfig {
    /// `arn:aws:iam::<account>:user/<name>` (or `…:role/<name>`).
    pub arn: String,
    #[serde(default)]
    pub access_keys: Vec<AccessKeyConfig>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// IAM policy documents (JSON text) attached to the principal.
    #[serde(default)]
    pub policies: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKeyConfig {
    pub id: String,
    pub secret: Secret<String>,
    #[serde(default)]
    pub status: AccessKeyStatus,
}

/// As in IAM: an inactive key still identifies its holder, but every call
/// made with it is refused (AuthException), which lets operators retire a
/// key and see who still uses it before deleting it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessKeyStatus {
    #[default]
    Active,
    Inactive,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceConfig {
    pub id: String,
    pub account: String,
    pub state: InstanceState,
    pub availability_zone: String,
    pub instance_type: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Whether eic can currently reach the instance. `unavailable` answers
    /// pushes with EC2InstanceUnavailableException.
    #[serde(default)]
    pub availability: Availability,
    /// The instance's serial console, for the serial console gateway.
    pub serial_console: Option<ConsoleBackend>,
    /// What DescribeInstances reports: addresses, VPC and subnet.
    #[serde(default)]
    pub private_ip_address: Option<std::net::Ipv4Addr>,
    #[serde(default)]
    pub public_ip_address: Option<std::net::Ipv4Addr>,
    #[serde(default)]
    pub ipv6_address: Option<std::net::Ipv6Addr>,
    #[serde(default)]
    pub vpc_id: Option<String>,
    #[serde(default)]
    pub subnet_id: Option<String>,
    /// The port the instance's sshd listens on, which DescribeInstanceHostKeys
    /// reports (`eic ssh` connects there). 1 to 65535.
    #[serde(default = "InstanceConfig::default_ssh_port")]
    pub ssh_port: u16,
    /// sshd's host public keys (`/etc/ssh/ssh_host_*_key.pub` lines), which
    /// DescribeInstanceHostKeys reports so clients verify the host without a
    /// prompt. Checked as an enrolling machine's are; after [`Config::load`]
    /// each is `type base64`, without its comment.
    #[serde(default)]
    pub host_keys: Vec<String>,
}

impl InstanceConfig {
    fn default_ssh_port() -> u16 {
        22
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    Pending,
    Running,
    Stopping,
    Stopped,
    ShuttingDown,
    Terminated,
}

impl InstanceState {
    pub fn name(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Availability {
    #[default]
    Available,
    Unavailable,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Loads the server's config as a command sees it: with the `--data-dir`
    /// the server was started with, if any.
    pub fn load_with_data_dir(path: &Path, data_dir: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = Config::load(path)?;
        if let Some(dir) = data_dir {
            config.data_dir = dir.to_owned();
        }
        Ok(config)
    }

    /// `--store-url`: Redis (`redis://…`, `redis-cluster://…`,
    /// `redis-sentinel://…`) instead of the configured store.
    pub fn with_store_url(mut self, url: Option<String>) -> Config {
        if let Some(url) = url {
            self.store.kind = StoreKind::Redis;
            self.store.urls = vec![url];
        }
        self
    }

    /// The audit log's path, after `--data-dir` overrides are applied.
    pub fn audit_path(&self) -> PathBuf {
        self.audit
            .path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit.log"))
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        if config.data_dir.is_relative() {
            config.data_dir = base.join(&config.data_dir);
        }
        if let Some(audit) = config.audit.path.as_mut().filter(|p| p.is_relative()) {
            *audit = base.join(&*audit);
        }
        config.store.durability = config
            .store
            .durability
            .with_sync_interval(Duration::from_millis(config.store.sync_interval_ms));
        for (name, r) in [
            ("[throttling] principal", config.throttling.principal),
            ("[throttling] instance", config.throttling.instance),
            ("[fleet] joins", config.fleet.joins),
        ] {
            if !(r.rate > 0.0 && r.rate.is_finite() && r.burst >= 1.0 && r.burst.is_finite()) {
                return Err(ConfigError::Invalid(format!(
                    "{name}: rate must be positive and burst at least 1"
                )));
            }
        }
        let fleet = &config.fleet;
        // A heartbeat must be able to arrive at least twice within the
        // bound, or one late packet makes a healthy machine connection-lost.
        if !(1..=3600).contains(&fleet.heartbeat_secs)
            || fleet.unavailable_after_secs < 2 * fleet.heartbeat_secs
        {
            return Err(ConfigError::Invalid(format!(
                "[fleet] heartbeat_secs must be 1 to 3600 and unavailable_after_secs at least twice it (they are {} and {})",
                fleet.heartbeat_secs, fleet.unavailable_after_secs
            )));
        }
        if let Some(dir) = config.recordings.dir.as_mut().filter(|p| p.is_relative()) {
            *dir = base.join(&*dir);
        }
        if let Some(console) = &config.console {
            if console.tls.is_none() && !console.listen.ip().is_loopback() {
                return Err(ConfigError::Invalid(format!(
                    "[console] listens on {} without tls: plain http is allowed on loopback only",
                    console.listen
                )));
            }
            if console.session_ttl_secs == 0 || console.session_ttl_secs > 12 * 3600 {
                return Err(ConfigError::Invalid(
                    "[console] session_ttl_secs must be 1 to 43200 (12 hours)".into(),
                ));
            }
            if console.idle_timeout_secs == 0
                || console.connect_timeout_secs == 0
                || console.max_terminals_per_principal == 0
                || console.max_sessions == 0
            {
                return Err(ConfigError::Invalid(
                    "[console] idle_timeout_secs, connect_timeout_secs, max_terminals_per_principal and max_sessions must each be at least 1".into(),
                ));
            }
            if let Some(url) = &console.public_url {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(ConfigError::Invalid(format!(
                        "[console] public_url {url:?} is not an http(s) URL"
                    )));
                }
            }
        }
        if let Some(serial) = &config.serial_console {
            // Renewal every third of it must not be busy-looping, nor a
            // dead node's hold last for ages.
            if !(1..=300).contains(&serial.session_lease_secs) {
                return Err(ConfigError::Invalid(
                    "[serial_console] session_lease_secs must be between 1 and 300".into(),
                ));
            }
            if serial.max_connections_per_source == 0 {
                return Err(ConfigError::Invalid(
                    "[serial_console] max_connections_per_source must be at least 1".into(),
                ));
            }
        }
        if let Some(instance_api) = &config.instance_api {
            check_tls_names(instance_api)?;
        }
        for instance in &mut config.instances {
            check_ssh(instance)?;
        }
        if let Some(tunnel) = &config.tunnel {
            if tunnel.max_tunnels_per_principal == 0
                || tunnel.max_tunnels_per_endpoint == 0
                || tunnel.idle_timeout_secs == 0
                || tunnel.connect_timeout_secs == 0
            {
                return Err(ConfigError::Invalid(
                    "[tunnel] caps and timeouts must be at least 1".into(),
                ));
            }
        }
        let caps = [
            ("[api]", config.api.max_connections),
            (
                "[instance_api]",
                config.instance_api.as_ref().and_then(|c| c.max_connections),
            ),
            (
                "[serial_console]",
                config
                    .serial_console
                    .as_ref()
                    .and_then(|c| c.max_connections),
            ),
            (
                "[tunnel]",
                config.tunnel.as_ref().and_then(|c| c.max_connections),
            ),
        ];
        if let Some((section, _)) = caps.iter().find(|(_, cap)| *cap == Some(0)) {
            return Err(ConfigError::Invalid(format!(
                "{section} max_connections must be at least 1"
            )));
        }
        Ok(config)
    }
}

/// An instance's `ssh_port` is a port, and its `host_keys` are sshd host
/// keys (normalised in place, as an enrollment's are).
fn check_ssh(instance: &mut InstanceConfig) -> Result<(), ConfigError> {
    if instance.ssh_port == 0 {
        return Err(ConfigError::Invalid(format!(
            "instance {}: ssh_port must be 1 to 65535",
            instance.id
        )));
    }
    instance.host_keys = crate::enrollment::host_key_lines(&instance.host_keys)
        .map_err(|e| ConfigError::Invalid(format!("instance {}: host_keys: {e}", instance.id)))?;
    Ok(())
}

/// `tls_names` only mean something with `tls = "auto"`, and each must be
/// a name a client can check a certificate against.
fn check_tls_names(instance_api: &InstanceApiConfig) -> Result<(), ConfigError> {
    if !instance_api.tls_names.is_empty() && !matches!(instance_api.tls, Some(InstanceApiTls::Auto))
    {
        return Err(ConfigError::Invalid(
            "[instance_api] tls_names needs tls = \"auto\"".into(),
        ));
    }
    for name in &instance_api.tls_names {
        if rustls::pki_types::ServerName::try_from(name.as_str()).is_err() {
            return Err(ConfigError::Invalid(format!(
                "[instance_api] tls_names: {name:?} is neither a DNS name nor an IP address"
            )));
        }
    }
    Ok(())
}

/// The flags every command that reads or changes a running service's state
/// shares: the servers' config, and the overrides they were started with.
#[derive(clap::Args)]
pub struct ServerConfigArgs {
    /// The server's TOML configuration.
    #[arg(long)]
    pub config: PathBuf,
    /// The server's data directory, if overridden at its start.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The servers' --store-url, if they were started with one.
    #[arg(long, value_name = "URL")]
    pub store_url: Option<String>,
}

impl ServerConfigArgs {
    pub fn load(&self) -> Result<Config, ConfigError> {
        Ok(
            Config::load_with_data_dir(&self.config, self.data_dir.as_deref())?
                .with_store_url(self.store_url.clone()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(extra: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eic.toml");
        let text = format!(
            "region = \"us-west-2\"\ndata_dir = \"data\"\n[api]\nlisten = \"127.0.0.1:0\"\n{extra}"
        );
        std::fs::write(&path, text).unwrap();
        Config::load(&path)
    }

    #[test]
    fn durability_is_named_and_interval_takes_sync_interval_ms() {
        let durability = |extra: &str| load(extra).unwrap().store.durability;
        assert_eq!(
            durability(""),
            Durability::Interval(Duration::from_millis(10))
        );
        assert_eq!(
            durability("[store]\nsync_interval_ms = 25\n"),
            Durability::Interval(Duration::from_millis(25))
        );
        assert_eq!(
            durability("[store]\ndurability = \"interval\"\nsync_interval_ms = 0\n"),
            Durability::Interval(Duration::from_millis(1))
        );
        assert_eq!(
            durability("[store]\ndurability = \"fsync\"\nsync_interval_ms = 25\n"),
            Durability::Fsync
        );
        assert_eq!(
            durability("[store]\ndurability = \"process-crash\"\n"),
            Durability::ProcessCrash
        );
        let e = load("[store]\ndurability = \"sometimes\"\n").unwrap_err();
        assert!(e.to_string().contains("unknown variant `sometimes`"), "{e}");
    }

    #[test]
    fn rates_and_consoles_are_the_library_types_with_unknown_fields_refused() {
        let config = load(
            "[throttling]\nprincipal = { rate = 2.0, burst = 3.0 }\n\
             [[accounts]]\nid = \"111122223333\"\n\
             [[instances]]\nid = \"i-0123456789abcdef0\"\naccount = \"111122223333\"\n\
             state = \"running\"\navailability_zone = \"us-west-2a\"\ninstance_type = \"m5.large\"\n\
             serial_console = { kind = \"command\", program = \"virsh\" }\n",
        )
        .unwrap();
        assert_eq!(
            config.throttling.principal,
            BucketRate {
                rate: 2.0,
                burst: 3.0
            }
        );
        assert_eq!(
            config.instances[0].serial_console,
            Some(ConsoleBackend::Command {
                program: "virsh".into(),
                args: Vec::new()
            })
        );
        for bad in [
            "[throttling]\nprincipal = { rate = 2.0, burst = 3.0, brust = 1.0 }\n",
            "[audit]\nrefusals = { rate = 2.0, burst = 3.0, typo = 1 }\n",
            "[[accounts]]\nid = \"111122223333\"\n[[instances]]\nid = \"i-0123456789abcdef0\"\n\
             account = \"111122223333\"\nstate = \"running\"\navailability_zone = \"us-west-2a\"\n\
             instance_type = \"m5.large\"\nserial_console = { kind = \"tcp\", adress = \"h:1\" }\n",
        ] {
            assert!(matches!(load(bad), Err(ConfigError::Parse { .. })), "{bad}");
        }
    }

    const INSTANCE: &str = "[[accounts]]\nid = \"111122223333\"\n\
        [[instances]]\nid = \"i-0123456789abcdef0\"\naccount = \"111122223333\"\n\
        state = \"running\"\navailability_zone = \"us-west-2a\"\ninstance_type = \"m5.large\"\n";
    const ED25519: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIEz1IfFgVwd94PL4XD1ju7YfyPsL9Z7CdrE/Ace+v3k5";

    #[test]
    fn ssh_port_defaults_to_22_and_host_keys_are_normalised() {
        let config = load(INSTANCE).unwrap();
        assert_eq!(config.instances[0].ssh_port, 22);
        assert!(config.instances[0].host_keys.is_empty());

        let config = load(&format!(
            "{INSTANCE}ssh_port = 2200\nhost_keys = [\"ssh-ed25519 {ED25519} root@web-1\", \"  ssh-ed25519\t{ED25519}  \"]\n"
        ))
        .unwrap();
        assert_eq!(config.instances[0].ssh_port, 2200);
        assert_eq!(
            config.instances[0].host_keys,
            [
                format!("ssh-ed25519 {ED25519}"),
                format!("ssh-ed25519 {ED25519}")
            ]
        );
    }

    #[test]
    fn a_bad_ssh_port_or_host_key_refuses_the_load_naming_the_instance() {
        for (extra, message) in [
            ("ssh_port = 0\n", "instance i-0123456789abcdef0: ssh_port must be 1 to 65535"),
            (
                "host_keys = [\"ssh-dss AAAA\"]\n",
                "instance i-0123456789abcdef0: host_keys: host key type 'ssh-dss' is not one sshd serves",
            ),
            (
                &format!("host_keys = [\"ssh-rsa {ED25519}\"]\n"),
                "instance i-0123456789abcdef0: host_keys: the ssh-rsa host key's data is not a ssh-rsa key",
            ),
            (
                "host_keys = [\"ssh-ed25519\"]\n",
                "instance i-0123456789abcdef0: host_keys: a host key must be 'type base64'",
            ),
            (
                &format!("host_keys = [{}]\n", vec![format!("\"ssh-ed25519 {ED25519}\""); 17].join(", ")),
                "instance i-0123456789abcdef0: host_keys: at most 16 host keys",
            ),
        ] {
            let e = load(&format!("{INSTANCE}{extra}")).unwrap_err();
            assert!(matches!(e, ConfigError::Invalid(_)), "{extra}: {e:?}");
            assert_eq!(e.to_string(), message, "{extra}");
        }
        for bad in [
            "ssh_port = 65536\n",
            "ssh_port = -1\n",
            "ssh_prot = 22\n",
            "host_key = []\n",
        ] {
            let e = load(&format!("{INSTANCE}{bad}")).unwrap_err();
            assert!(matches!(e, ConfigError::Parse { .. }), "{bad}: {e:?}");
        }
    }

    #[test]
    fn a_console_that_could_never_serve_refuses_the_load() {
        for setting in [
            "idle_timeout_secs = 0",
            "connect_timeout_secs = 0",
            "max_terminals_per_principal = 0",
            "max_sessions = 0",
        ] {
            let e = load(&format!("[console]\nlisten = \"127.0.0.1:0\"\n{setting}\n")).unwrap_err();
            assert!(
                e.to_string().contains("must each be at least 1"),
                "{setting}: {e}"
            );
        }
        let e = load("[console]\nlisten = \"0.0.0.0:443\"\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("plain http is allowed on loopback only"),
            "{e}"
        );
        assert!(load("[console]\nlisten = \"0.0.0.0:443\"\ntls = \"auto\"\n").is_ok());
    }

    #[test]
    fn the_example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/dev.toml");
        let config = Config::load(&path).unwrap();
        assert!(!config.instances.is_empty());
        assert!(config.instances.iter().all(|i| i.ssh_port == 22));
    }

    #[test]
    fn instance_api_tls_is_auto_or_the_files_table() {
        let section = |tls: &str| {
            load(&format!(
                "[instance_api]\nlisten = \"127.0.0.1:8081\"\n{tls}"
            ))
        };
        let config = section("").unwrap();
        let instance_api = config.instance_api.unwrap();
        assert!(instance_api.tls.is_none());
        assert_eq!(instance_api.url(), "http://127.0.0.1:8081");

        let config =
            section("tls = \"auto\"\ntls_names = [\"eic.example\", \"10.0.0.1\"]\n").unwrap();
        let instance_api = config.instance_api.unwrap();
        assert!(matches!(instance_api.tls, Some(InstanceApiTls::Auto)));
        assert_eq!(instance_api.tls_names, ["eic.example", "10.0.0.1"]);
        assert_eq!(instance_api.url(), "https://127.0.0.1:8081");

        let config =
            section("tls = { certificate = \"c.pem\", private_key = \"k.pem\" }\n").unwrap();
        let Some(InstanceApiTls::Files(files)) = config.instance_api.unwrap().tls else {
            panic!("files expected");
        };
        assert_eq!(files.certificate, PathBuf::from("c.pem"));

        for (bad, message) in [
            ("tls = \"on\"\n", "expected \"auto\" or { certificate"),
            ("tls = true\n", "expected \"auto\" or { certificate"),
            (
                "tls = { certificate = \"c.pem\", private_key = \"k.pem\", key = \"x\" }\n",
                "unknown field `key`",
            ),
            (
                "tls_names = [\"a.example\"]\n",
                "tls_names needs tls = \"auto\"",
            ),
            (
                "tls = \"auto\"\ntls_names = [\"not a name\"]\n",
                "neither a DNS name nor an IP address",
            ),
        ] {
            let e = section(bad).unwrap_err();
            assert!(e.to_string().contains(message), "{bad}: {e}");
        }
    }
}
