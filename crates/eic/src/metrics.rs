//! The service's metrics, for the diagnostics listener's `/metrics`
//! (Prometheus's text format, encoded by `prometheus-client`).
//!
//! Names follow Prometheus's conventions: `eic_` first, base units,
//! `_total` on counters. Labels are closed sets (an operation, an error
//! code, a reason, a direction): never an instance id, a principal or a key,
//! which would make a series per caller.
//!
//! Nothing here takes a lock on the request path: every series is made at
//! start and kept as a handle (an atomic), and the histograms are buckets
//! of atomics ([`Latency`]); a scrape reads the same atomics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};

use crate::instances::{Instances, Liveness};

/// What a request asked for, as the metrics name it.
pub const OPERATIONS: [&str; 6] = [
    "SendSSHPublicKey",
    "SendSerialConsoleSSHPublicKey",
    "DescribeInstances",
    "DescribeInstanceHostKeys",
    "DescribeInstanceConnectEndpoints",
    "OpenTunnel",
];
/// A request whose operation is not known (yet, or at all).
pub const UNKNOWN_OPERATION: &str = "Unknown";
/// The `code` of a request that succeeded.
pub const OK: &str = "OK";
/// Any code not in the known set counts here, so a caller cannot add series.
const OTHER_CODE: &str = "Other";
/// SigV4's refusals, as `eic_sigv4::SigV4ErrorKind` names them.
pub const SIGV4_REASONS: [&str; 5] = [
    "MissingAuthenticationToken",
    "IncompleteSignature",
    "InvalidSignature",
    "UnrecognizedClient",
    "ExpiredToken",
];

/// `eic_policy_decisions_total`'s decisions, in [`Metrics::policy_decision`]'s order.
const POLICY_DECISIONS: [&str; 3] = ["allow", "explicit_deny", "implicit_deny"];
/// A key fetch's HTTP status and its outcome's name; 0 is any other.
const KEY_FETCH_OUTCOMES: [(u16, &str); 7] = [
    (200, "ok"),
    (400, "bad_request"),
    (401, "unauthorized"),
    (404, "not_found"),
    (429, "throttled"),
    (503, "unavailable"),
    (0, "error"),
];
/// The key stores and what is timed of them.
pub const STORE_BACKENDS: [&str; 2] = ["embedded", "redis"];
pub const STORE_OPERATIONS: [&str; 4] = ["push", "live_keys", "take_token", "ready"];

/// Upper bounds of the request-duration buckets, in seconds: 100 µs to
/// 10 s, roughly doubling.
const LATENCY_BOUNDS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

type Labels = [(&'static str, &'static str); 2];

/// Every series, made at start.
pub struct Metrics {
    /// False when no diagnostics listener serves the series: then nothing
    /// reads them, and the request path counts nothing.
    counting: bool,
    registry: Registry,
    requests: HashMap<(&'static str, &'static str), Counter>,
    durations: HashMap<&'static str, Latency>,
    sigv4_failures: HashMap<&'static str, Counter>,
    tunnels_open: Gauge,
    tunnel_bytes_to_instance: Counter,
    tunnel_bytes_to_client: Counter,
    policy_decisions: [Counter; 3],
    key_fetches: HashMap<u16, Counter>,
    serial_sessions_open: Gauge,
    console_sign_ins: Counter,
    console_terminals_open: Gauge,
    console_bytes_to_instance: Counter,
    console_bytes_from_instance: Counter,
    serial_bytes_to_console: Counter,
    serial_bytes_from_console: Counter,
    store_durations: HashMap<(&'static str, &'static str), Latency>,
    reloads_applied: Counter,
    reloads_refused: Counter,
    last_reload_successful: Gauge,
    keys_live: LiveKeys,
}

impl Metrics {
    /// The series for `codes`: every error code a request can end with
    /// (others count as `Other`); with `fleet`, its instances by state,
    /// counted at each scrape.
    pub fn new(codes: &[&'static str], fleet: Option<Arc<Instances>>) -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("eic");
        if let Some(instances) = fleet {
            registry.register_collector(Box::new(FleetByState(instances)));
        }
        let mut all_codes: Vec<&'static str> = codes.to_vec();
        all_codes.extend([OK, OTHER_CODE]);
        all_codes.sort_unstable();
        all_codes.dedup();
        let operations = OPERATIONS.iter().chain([&UNKNOWN_OPERATION]);

        let family = Family::<Labels, Counter>::default();
        let mut requests = HashMap::new();
        for &operation in operations.clone() {
            for &code in &all_codes {
                let labels = [("operation", operation), ("code", code)];
                requests.insert((operation, code), family.get_or_create_owned(&labels));
            }
        }
        registry.register(
            "requests",
            "Requests answered, by operation and outcome (an error code, or OK)",
            family,
        );

        let family = Family::<[(&'static str, &'static str); 1], Latency>::default();
        let mut durations = HashMap::new();
        for &operation in operations {
            durations.insert(
                operation,
                family.get_or_create_owned(&[("operation", operation)]),
            );
        }
        registry.register_with_unit(
            "request_duration",
            "Time from a request's arrival to its answer, by operation",
            Unit::Seconds,
            family,
        );

        let family = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let sigv4_failures = SIGV4_REASONS
            .iter()
            .map(|&reason| (reason, family.get_or_create_owned(&[("reason", reason)])))
            .collect();
        registry.register(
            "sigv4_failures",
            "Requests whose SigV4 signature was refused, by reason",
            family,
        );

        let tunnels_open = Gauge::default();
        registry.register(
            "tunnels_open",
            "Instance Connect Endpoint tunnels open on this node",
            tunnels_open.clone(),
        );
        let bytes = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let tunnel_bytes_to_instance = bytes.get_or_create_owned(&[("direction", "to_instance")]);
        let tunnel_bytes_to_client = bytes.get_or_create_owned(&[("direction", "to_client")]);
        registry.register_with_unit(
            "tunnel",
            "Bytes relayed by closed tunnels, by direction",
            Unit::Bytes,
            bytes,
        );

        let decisions = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let policy_decisions = POLICY_DECISIONS
            .map(|decision| decisions.get_or_create_owned(&[("decision", decision)]));
        registry.register(
            "policy_decisions",
            "IAM policy evaluations, by decision (allow, explicit_deny, implicit_deny)",
            decisions,
        );

        let fetches = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let key_fetches = KEY_FETCH_OUTCOMES
            .iter()
            .map(|&(status, name)| (status, fetches.get_or_create_owned(&[("outcome", name)])))
            .collect();
        registry.register(
            "key_fetches",
            "Instance-API key fetches (authorized-keys, the AWS scripts), by outcome",
            fetches,
        );

        let serial_sessions_open = Gauge::default();
        registry.register(
            "serial_sessions_open",
            "Serial console sessions open on this node's gateway",
            serial_sessions_open.clone(),
        );
        let bytes = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let serial_bytes_to_console = bytes.get_or_create_owned(&[("direction", "to_console")]);
        let serial_bytes_from_console = bytes.get_or_create_owned(&[("direction", "from_console")]);
        registry.register_with_unit(
            "serial",
            "Bytes relayed by ended serial console sessions, by direction",
            Unit::Bytes,
            bytes,
        );

        let console_sign_ins = Counter::default();
        registry.register(
            "console_sign_ins",
            "Sign-ins to the browser console (one-time links redeemed)",
            console_sign_ins.clone(),
        );
        let console_terminals_open = Gauge::default();
        registry.register(
            "console_terminals_open",
            "Browser console terminals open on this node",
            console_terminals_open.clone(),
        );
        let bytes = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let console_bytes_to_instance = bytes.get_or_create_owned(&[("direction", "to_instance")]);
        let console_bytes_from_instance =
            bytes.get_or_create_owned(&[("direction", "from_instance")]);
        registry.register_with_unit(
            "console_terminal",
            "Bytes relayed by ended browser console terminals, by direction",
            Unit::Bytes,
            bytes,
        );

        let family = Family::<Labels, Latency>::default();
        let mut store_durations = HashMap::new();
        for backend in STORE_BACKENDS {
            for operation in STORE_OPERATIONS {
                let labels = [("backend", backend), ("operation", operation)];
                store_durations.insert((backend, operation), family.get_or_create_owned(&labels));
            }
        }
        registry.register_with_unit(
            "store_operation_duration",
            "Time the key store took, by backend and operation",
            Unit::Seconds,
            family,
        );

        let reloads = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let reloads_applied = reloads.get_or_create_owned(&[("result", "applied")]);
        let reloads_refused = reloads.get_or_create_owned(&[("result", "refused")]);
        registry.register(
            "config_reloads",
            "Configuration reloads (SIGHUP, eic reload), by result",
            reloads,
        );
        let last_reload_successful = Gauge::default();
        last_reload_successful.set(1);
        registry.register(
            "config_last_reload_successful",
            "Whether the last configuration reload was applied (1; also before any) or refused (0)",
            last_reload_successful.clone(),
        );

        let keys_live = LiveKeys::default();
        registry.register(
            "keys_live",
            "Keys this server stored that have not expired yet (sum over the nodes sharing a store)",
            keys_live.clone(),
        );

        let build = Family::<[(&'static str, &'static str); 1], Gauge>::default();
        build
            .get_or_create(&[("version", env!("CARGO_PKG_VERSION"))])
            .set(1);
        registry.register("build_info", "The running build (always 1)", build);

        Arc::new(Metrics {
            counting: true,
            registry,
            requests,
            durations,
            sigv4_failures,
            tunnels_open,
            tunnel_bytes_to_instance,
            tunnel_bytes_to_client,
            policy_decisions,
            key_fetches,
            serial_sessions_open,
            console_sign_ins,
            console_terminals_open,
            console_bytes_to_instance,
            console_bytes_from_instance,
            serial_bytes_to_console,
            serial_bytes_from_console,
            store_durations,
            reloads_applied,
            reloads_refused,
            last_reload_successful,
            keys_live,
        })
    }

    /// For a server without a diagnostics listener: the series exist (a
    /// reload still reports through them) but requests count nothing.
    pub fn uncounted(codes: &[&'static str]) -> Arc<Metrics> {
        let mut metrics = Metrics::new(codes, None);
        if let Some(m) = Arc::get_mut(&mut metrics) {
            m.counting = false;
        }
        metrics
    }

    pub fn counting(&self) -> bool {
        self.counting
    }

    /// One answered request: its operation (one of [`OPERATIONS`], else
    /// unknown), its outcome (an error code or [`OK`]) and how long it took.
    pub fn request(&self, operation: &str, code: &str, took: Duration) {
        if !self.counting {
            return;
        }
        let operation = OPERATIONS
            .iter()
            .copied()
            .find(|o| *o == operation)
            .unwrap_or(UNKNOWN_OPERATION);
        let counter = self
            .requests
            .get(&(operation, code))
            .or_else(|| self.requests.get(&(operation, OTHER_CODE)));
        if let Some(counter) = counter {
            counter.inc();
        }
        if let Some(latency) = self.durations.get(operation) {
            latency.observe(took);
        }
    }

    /// A refused signature, by [`SIGV4_REASONS`] name.
    pub fn sigv4_failure(&self, reason: &str) {
        if !self.counting {
            return;
        }
        if let Some(counter) = self.sigv4_failures.get(reason) {
            counter.inc();
        }
    }

    pub fn tunnel_opened(&self) {
        if !self.counting {
            return;
        }
        self.tunnels_open.inc();
    }

    pub fn tunnel_closed(&self, bytes_to_instance: u64, bytes_to_client: u64) {
        if !self.counting {
            return;
        }
        self.tunnels_open.dec();
        self.tunnel_bytes_to_instance.inc_by(bytes_to_instance);
        self.tunnel_bytes_to_client.inc_by(bytes_to_client);
    }

    /// One IAM policy evaluation.
    pub fn policy_decision(&self, decision: eic_policy::Decision) {
        if !self.counting {
            return;
        }
        let index = match decision {
            eic_policy::Decision::Allow => 0,
            eic_policy::Decision::ExplicitDeny(_) => 1,
            eic_policy::Decision::ImplicitDeny(_) => 2,
        };
        self.policy_decisions[index].inc();
    }

    /// A key fetch on the instance API, by the status it was answered with.
    pub fn key_fetch(&self, status: u16) {
        if !self.counting {
            return;
        }
        let counter = self
            .key_fetches
            .get(&status)
            .or_else(|| self.key_fetches.get(&0));
        if let Some(counter) = counter {
            counter.inc();
        }
    }

    pub fn console_signed_in(&self) {
        if self.counting {
            self.console_sign_ins.inc();
        }
    }

    pub fn console_terminal_opened(&self) {
        if self.counting {
            self.console_terminals_open.inc();
        }
    }

    pub fn console_terminal_closed(&self, bytes_to_instance: u64, bytes_from_instance: u64) {
        if !self.counting {
            return;
        }
        self.console_terminals_open.dec();
        self.console_bytes_to_instance.inc_by(bytes_to_instance);
        self.console_bytes_from_instance.inc_by(bytes_from_instance);
    }

    pub fn serial_session_started(&self) {
        if !self.counting {
            return;
        }
        self.serial_sessions_open.inc();
    }

    pub fn serial_session_ended(&self, bytes_to_console: u64, bytes_from_console: u64) {
        if !self.counting {
            return;
        }
        self.serial_sessions_open.dec();
        self.serial_bytes_to_console.inc_by(bytes_to_console);
        self.serial_bytes_from_console.inc_by(bytes_from_console);
    }

    /// How long one store operation took (both in [`STORE_BACKENDS`] and
    /// [`STORE_OPERATIONS`]).
    pub fn store_operation(&self, backend: &'static str, operation: &'static str, took: Duration) {
        if !self.counting {
            return;
        }
        if let Some(latency) = self.store_durations.get(&(backend, operation)) {
            latency.observe(took);
        }
    }

    /// A configuration reload, applied or refused.
    pub fn reload(&self, applied: bool) {
        if applied {
            self.reloads_applied.inc();
        } else {
            self.reloads_refused.inc();
        }
        self.last_reload_successful.set(i64::from(applied));
    }

    /// A key stored, live until `expires_at_ms`.
    pub fn key_stored(&self, expires_at_ms: u64) {
        if self.counting {
            self.keys_live.add(expires_at_ms / 1000);
        }
    }

    /// The text exposition format, for a scrape.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// `eic_fleet_instances{state}`: enrolled instances by liveness, from the
/// fleet's local view at scrape time (nothing when the view is too old to
/// answer, rather than a wrong count).
struct FleetByState(Arc<Instances>);

impl std::fmt::Debug for FleetByState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FleetByState")
    }
}

impl Collector for FleetByState {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(all) = self.0.fleet().all_enrolled() else {
            return Ok(());
        };
        let now = std::time::SystemTime::now();
        let states = [
            Liveness::Running,
            Liveness::ConnectionLost,
            Liveness::Stopped,
            Liveness::Terminated,
        ];
        let mut counts = [0i64; 4];
        for enrolled in &all {
            let liveness = Liveness::of(enrolled, now, self.0.unavailable_after());
            if let Some(i) = states.iter().position(|s| *s == liveness) {
                counts[i] += 1;
            }
        }
        let mut metric = encoder.encode_descriptor(
            "fleet_instances",
            "Enrolled instances, by state",
            None,
            MetricType::Gauge,
        )?;
        for (state, count) in states.iter().zip(counts) {
            let labels = [("state", state.name())];
            metric.encode_family(&labels)?.encode_gauge(&count)?;
        }
        Ok(())
    }
}

/// `eic_keys_live`: keys stored through this server whose expiry is still
/// ahead, counted per expiry second in a ring of atomics. A push adds one
/// to its expiry second's slot; a scrape sums the slots still in the
/// future. Neither asks the store (a count of a Redis keyspace is a scan,
/// of the embedded store a lock shared with requests), and a key is never
/// removed before it expires, so the sum is exact for this node.
#[derive(Debug, Clone)]
pub struct LiveKeys(Arc<[AtomicU64; LIVE_KEY_SLOTS]>);

impl Default for LiveKeys {
    fn default() -> Self {
        LiveKeys(Arc::new(std::array::from_fn(|_| AtomicU64::new(0))))
    }
}

/// More seconds than a key lives (60), so a slot is reused only after
/// every key counted in it has expired.
const LIVE_KEY_SLOTS: usize = 128;
/// A slot holds its expiry second in the high bits and its count in the low.
const LIVE_KEY_COUNT_BITS: u32 = 24;
const LIVE_KEY_COUNT_MASK: u64 = (1 << LIVE_KEY_COUNT_BITS) - 1;

impl LiveKeys {
    fn add(&self, expires_at_sec: u64) {
        let slot = &self.0[(expires_at_sec % LIVE_KEY_SLOTS as u64) as usize];
        let mut current = slot.load(Ordering::Relaxed);
        loop {
            let next = if current >> LIVE_KEY_COUNT_BITS == expires_at_sec {
                // Saturates rather than carrying into the second.
                current + u64::from(current & LIVE_KEY_COUNT_MASK < LIVE_KEY_COUNT_MASK)
            } else {
                (expires_at_sec << LIVE_KEY_COUNT_BITS) | 1
            };
            match slot.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    /// Keys whose expiry second is after `now_sec`.
    fn live_at(&self, now_sec: u64) -> u64 {
        self.0
            .iter()
            .map(|slot| slot.load(Ordering::Relaxed))
            .filter(|packed| {
                let second = packed >> LIVE_KEY_COUNT_BITS;
                second > now_sec && second <= now_sec + LIVE_KEY_SLOTS as u64
            })
            .map(|packed| packed & LIVE_KEY_COUNT_MASK)
            .sum()
    }
}

impl TypedMetric for LiveKeys {
    const TYPE: MetricType = MetricType::Gauge;
}

impl EncodeMetric for LiveKeys {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let now_sec = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let live = i64::try_from(self.live_at(now_sec)).unwrap_or(i64::MAX);
        encoder.encode_gauge(&live)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// A histogram of durations whose buckets are atomics: observing takes no
/// lock (prometheus-client's own histogram takes a mutex per observation,
/// shared with every request and the scrape).
#[derive(Debug, Default, Clone)]
pub struct Latency(Arc<LatencyBuckets>);

#[derive(Debug, Default)]
struct LatencyBuckets {
    /// Observations at or below each bound (not cumulative); the last is
    /// the overflow.
    counts: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Latency {
    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let bucket = LATENCY_BOUNDS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.0.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.0.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl TypedMetric for Latency {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let counts: Vec<u64> = self
            .0
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(counts.iter().copied())
            .collect();
        let count = counts.iter().sum();
        let sum = self.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// The key store with each operation's duration observed
/// (`eic_store_operation_duration_seconds{backend,operation}`).
pub struct TimedStore {
    pub store: Arc<dyn eic_store::Store>,
    /// One of [`STORE_BACKENDS`].
    pub backend: &'static str,
    pub metrics: Arc<Metrics>,
}

impl TimedStore {
    async fn timed<T>(
        &self,
        operation: &'static str,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let started = std::time::Instant::now();
        let outcome = work.await;
        self.metrics
            .store_operation(self.backend, operation, started.elapsed());
        outcome
    }
}

#[async_trait::async_trait]
impl eic_store::Store for TimedStore {
    async fn push(&self, key: eic_store::PushedKey) -> Result<(), eic_store::StoreError> {
        let expires_at_ms = key.expires_at_ms;
        self.timed("push", self.store.push(key)).await?;
        self.metrics.key_stored(expires_at_ms);
        Ok(())
    }

    async fn live_keys(
        &self,
        instance_id: &str,
        target: &eic_wire::KeyTarget,
        now: std::time::SystemTime,
    ) -> Result<Vec<eic_store::PushedKey>, eic_store::StoreError> {
        self.timed("live_keys", self.store.live_keys(instance_id, target, now))
            .await
    }

    async fn ready(&self) -> Result<(), eic_store::StoreError> {
        self.timed("ready", self.store.ready()).await
    }

    async fn take_token(
        &self,
        name: &str,
        rate: eic_store::BucketRate,
        now: std::time::SystemTime,
    ) -> Result<bool, eic_store::StoreError> {
        self.timed("take_token", self.store.take_token(name, rate, now))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_count_by_operation_and_code_and_unknown_codes_do_not_add_series() {
        let metrics = Metrics::new(&["AccessDeniedException"], None);
        metrics.request("SendSSHPublicKey", OK, Duration::from_micros(300));
        metrics.request(
            "SendSSHPublicKey",
            "AccessDeniedException",
            Duration::from_millis(2),
        );
        metrics.request("SendSSHPublicKey", "SomethingNew", Duration::from_millis(2));
        metrics.request("NoSuchOperation", OK, Duration::from_secs(20));
        metrics.sigv4_failure("InvalidSignature");
        let text = metrics.encode();
        for line in [
            r#"eic_requests_total{operation="SendSSHPublicKey",code="OK"} 1"#,
            r#"eic_requests_total{operation="SendSSHPublicKey",code="AccessDeniedException"} 1"#,
            r#"eic_requests_total{operation="SendSSHPublicKey",code="Other"} 1"#,
            r#"eic_requests_total{operation="Unknown",code="OK"} 1"#,
            r#"eic_request_duration_seconds_count{operation="SendSSHPublicKey"} 3"#,
            r#"eic_request_duration_seconds_bucket{le="0.0005",operation="SendSSHPublicKey"} 1"#,
            r#"eic_request_duration_seconds_bucket{le="+Inf",operation="Unknown"} 1"#,
            r#"eic_sigv4_failures_total{reason="InvalidSignature"} 1"#,
            r#"eic_build_info{version=""#,
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
        assert!(!text.contains("SomethingNew"));
        assert!(text.contains("eic_keys_live 0\n"), "{text}");
        assert!(!text.contains("NoSuchOperation"));
    }

    #[test]
    fn live_keys_count_until_their_expiry_second_and_slots_are_reused() {
        let keys = LiveKeys::default();
        let now = 1_800_000_000;
        keys.add(now + 60);
        keys.add(now + 60);
        keys.add(now + 1);
        assert_eq!(keys.live_at(now), 3);
        assert_eq!(keys.live_at(now + 1), 2);
        assert_eq!(keys.live_at(now + 60), 0);
        // The same slot a ring later starts again rather than adding to
        // keys long expired.
        keys.add(now + 60 + LIVE_KEY_SLOTS as u64);
        assert_eq!(keys.live_at(now + 61), 1);
        assert_eq!(
            keys.live_at(now),
            1,
            "a slot too far ahead of the clock is not counted yet"
        );
    }
}
