//! Every instance the server knows, behind one lookup: the static
//! `[[instances]]` of the configuration ([`Registry`]) and the machines
//! that enrolled themselves ([`Fleet`]). The API pipeline, DescribeInstances
//! and the instance-facing API all ask here, so an enrolled instance's
//! state, liveness, zone and tags feed IAM conditions and EC2's answers
//! exactly as a static one's do.
//!
//! Liveness is decided on every lookup against the clock: a running
//! instance whose last heartbeat is older than `[fleet]
//! unavailable_after_secs` is connection-lost (unavailable), so no sweeper
//! has to run for a push to be refused.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eic_store::fleet::{Enrolled, FleetState};
use eic_store::{unix_millis, Fleet, StoreError};

use crate::config::{Availability, ConfigError, InstanceState};
use crate::registry::{Instance, Registry};

/// The fleet's half; the configuration's half is the [`Registry`] each
/// lookup is given, the one snapshot its request works with (a reload
/// swaps it, server/reload.rs).
pub struct Instances {
    fleet: Arc<dyn Fleet>,
    unavailable_after: Duration,
}

/// What `eic instances` and the liveness audit say of an enrolled
/// instance: its stored state, and connection-lost when a running one's
/// heartbeats stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Running,
    ConnectionLost,
    Stopped,
    Terminated,
}

impl Liveness {
    pub fn of(enrolled: &Enrolled, now: SystemTime, unavailable_after: Duration) -> Liveness {
        match enrolled.enrollment.state {
            FleetState::Running => {
                let silent_ms = unix_millis(now).saturating_sub(enrolled.last_seen_ms());
                if silent_ms >= unavailable_after.as_millis() as u64 {
                    Liveness::ConnectionLost
                } else {
                    Liveness::Running
                }
            }
            FleetState::Stopped => Liveness::Stopped,
            FleetState::Terminated => Liveness::Terminated,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Liveness::Running => "running",
            Liveness::ConnectionLost => "connection-lost",
            Liveness::Stopped => "stopped",
            Liveness::Terminated => "terminated",
        }
    }
}

impl Instances {
    /// Fails when an id is both static and enrolled: which one a push
    /// reaches must never be a guess.
    pub fn new(
        registry: &Registry,
        fleet: Arc<dyn Fleet>,
        unavailable_after: Duration,
    ) -> Result<Instances, ConfigError> {
        let instances = Instances {
            fleet,
            unavailable_after,
        };
        instances.check_disjoint(registry)?;
        Ok(instances)
    }

    /// Whether no id of `registry`'s static instances is enrolled too: at
    /// start, and for a reloaded configuration before it is taken.
    pub fn check_disjoint(&self, registry: &Registry) -> Result<(), ConfigError> {
        // A shared fleet may not be readable yet (a node starts while Redis
        // is down); then the check waits for the next start, and a lookup
        // finds the static instance first meanwhile.
        let enrolled = self.fleet.all_enrolled().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "fleet not readable; ids in both the config and the fleet are not checked");
            Vec::new()
        });
        if let Some(both) = enrolled
            .iter()
            .find(|e| registry.instance(&e.enrollment.instance_id).is_some())
        {
            return Err(ConfigError::Invalid(format!(
                "instance {} is both in [[instances]] and enrolled; remove one (`eic instances remove` or the config block)",
                both.enrollment.instance_id
            )));
        }
        Ok(())
    }

    pub fn fleet(&self) -> &Arc<dyn Fleet> {
        &self.fleet
    }

    pub fn unavailable_after(&self) -> Duration {
        self.unavailable_after
    }

    /// The instance `id`, static (in `registry`) or enrolled, as it is at
    /// `now`.
    pub fn get(
        &self,
        registry: &Registry,
        id: &str,
        now: SystemTime,
    ) -> Result<Option<Arc<Instance>>, StoreError> {
        if let Some(instance) = registry.instance(id) {
            return Ok(Some(instance.clone()));
        }
        Ok(self
            .fleet
            .enrolled(id)?
            .map(|e| Arc::new(self.instance_of(&e, now))))
    }

    /// The instance, if it exists in `account`. An instance of another
    /// account is indistinguishable from one that does not exist.
    pub fn in_account(
        &self,
        registry: &Registry,
        id: &str,
        account: &str,
        now: SystemTime,
    ) -> Result<Option<Arc<Instance>>, StoreError> {
        Ok(self
            .get(registry, id, now)?
            .filter(|i| i.account == account))
    }

    /// The instance of `vpc_id` in `account` whose private address (or
    /// IPv6 address) is `address`, preferring a running one, then the
    /// smallest id (a configuration may give two instances one address;
    /// EC2 cannot): what an endpoint's tunnel may reach. Enrolled instances
    /// are in a VPC when their token placed them there. One pass over the
    /// account's instances.
    pub fn by_address(
        &self,
        registry: &Registry,
        account: &str,
        vpc_id: &str,
        address: std::net::IpAddr,
        now: SystemTime,
    ) -> Result<Option<Arc<Instance>>, StoreError> {
        let has_address = |i: &Instance| match address {
            std::net::IpAddr::V4(v4) => i.private_ip_address == Some(v4),
            std::net::IpAddr::V6(v6) => i.ipv6_address == Some(v6),
        };
        let mut found: Option<Arc<Instance>> = None;
        let mut offer = |instance: Arc<Instance>| {
            let running = |i: &Instance| i.state == InstanceState::Running;
            let better = |f: &Instance| (!running(&instance), &instance.id) < (!running(f), &f.id);
            if found.as_deref().is_none_or(better) {
                found = Some(instance);
            }
        };
        for instance in registry.instances_in_account(account) {
            if instance.vpc_id.as_deref() == Some(vpc_id) && has_address(instance) {
                offer(instance.clone());
            }
        }
        for enrolled in self.fleet.all_enrolled()? {
            let e = &enrolled.enrollment;
            let placed =
                e.account == account && e.network.as_ref().is_some_and(|n| n.vpc_id == vpc_id);
            let addresses = &e.facts.addresses;
            let at = match address {
                std::net::IpAddr::V4(v4) => addresses.private_ipv4 == Some(v4),
                std::net::IpAddr::V6(v6) => addresses.ipv6 == Some(v6),
            };
            if placed && at {
                offer(Arc::new(self.instance_of(&enrolled, now)));
            }
        }
        Ok(found)
    }

    /// An enrolled instance in the shape every role reads.
    fn instance_of(&self, enrolled: &Enrolled, now: SystemTime) -> Instance {
        let e = &enrolled.enrollment;
        let (state, availability) = match Liveness::of(enrolled, now, self.unavailable_after) {
            Liveness::Running => (InstanceState::Running, Availability::Available),
            Liveness::ConnectionLost => (InstanceState::Running, Availability::Unavailable),
            Liveness::Stopped => (InstanceState::Stopped, Availability::Available),
            Liveness::Terminated => (InstanceState::Terminated, Availability::Available),
        };
        Instance {
            id: e.instance_id.clone(),
            account: e.account.clone(),
            state,
            availability_zone: e.availability_zone.clone(),
            instance_type: e.instance_type.clone(),
            tags: e.tags.to_map(),
            availability,
            serial_console: None,
            private_ip_address: e.facts.addresses.private_ipv4,
            public_ip_address: e.facts.addresses.public_ipv4,
            ipv6_address: e.facts.addresses.ipv6,
            vpc_id: e.network.as_ref().map(|n| n.vpc_id.clone()),
            subnet_id: e.network.as_ref().map(|n| n.subnet_id.clone()),
            launch_time: Some(UNIX_EPOCH + Duration::from_millis(e.enrolled_at_ms)),
            ssh_port: e.facts.addresses.ssh_port,
            host_keys: e.facts.host_keys.clone(),
        }
    }
}

/// Tags as `K=V` arguments parse: one `=`, the key non-empty; EC2's limits
/// (128-character keys, 256-character values, no `aws:` prefix).
pub fn parse_tags<'a>(
    pairs: impl IntoIterator<Item = &'a str>,
) -> Result<BTreeMap<String, String>, String> {
    let mut tags = BTreeMap::new();
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("tag '{pair}' is not KEY=VALUE"))?;
        check_tag_key(key)?;
        if value.chars().count() > 256 {
            return Err(format!("the value of tag '{key}' is over 256 characters"));
        }
        tags.insert(key.to_owned(), value.to_owned());
    }
    if tags.len() > 50 {
        return Err("at most 50 tags".into());
    }
    Ok(tags)
}

pub fn check_tag_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.chars().count() > 128 {
        return Err(format!("tag key '{key}' must be 1 to 128 characters"));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(format!("tag key '{key}': the aws: prefix is reserved"));
    }
    if key.chars().any(char::is_control) {
        return Err("a tag key may not hold control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use eic_store::fleet::{Enrollment, MachineFacts};
    use eic_store::EmbeddedFleet;

    const CONFIG: &str = r#"
region = "us-west-2"
data_dir = "data"
[api]
listen = "127.0.0.1:0"
[[accounts]]
id = "111122223333"
[[instances]]
id = "i-abcd1234"
account = "111122223333"
state = "running"
availability_zone = "us-west-2a"
instance_type = "t3.micro"
private_ip_address = "127.0.0.5"
vpc_id = "vpc-0de00000000000001"
"#;

    fn enrollment(id: &str, state: FleetState) -> Enrollment {
        Enrollment {
            network: None,
            instance_id: id.into(),
            account: "111122223333".into(),
            token_id: "0123456789abcdef".into(),
            availability_zone: "us-west-2b".into(),
            instance_type: "m5.large".into(),
            facts: MachineFacts::default(),
            tags: BTreeMap::from([("env".into(), "test".into())]).into(),
            state,
            enrolled_at_ms: 1_000,
            updated_at_ms: 1_000,
        }
    }

    fn registry(dir: &std::path::Path) -> Registry {
        let path = dir.join("eic.toml");
        std::fs::write(&path, CONFIG).unwrap();
        Registry::from_config(&crate::config::Config::load(&path).unwrap()).unwrap()
    }

    /// A tunnel's target: configured or enrolled, only in the VPC asked
    /// for and the account asked for, a running one first.
    #[tokio::test]
    async fn instances_are_found_by_address_within_a_vpc() {
        use eic_store::fleet::Network;
        let dir = tempfile::tempdir().unwrap();
        let fleet = EmbeddedFleet::open(&dir.path().join("fleet")).unwrap();
        let placed = |id: &str, ip: [u8; 4], state| {
            let mut e = enrollment(id, state);
            e.network = Some(Network {
                vpc_id: "vpc-0de00000000000001".into(),
                subnet_id: "subnet-0de00000000000001".into(),
            });
            e.facts.addresses.private_ipv4 = Some(ip.into());
            e
        };
        fleet
            .enroll(
                placed("i-0000000000000000a", [127, 0, 0, 6], FleetState::Stopped),
                100_000,
            )
            .await
            .unwrap();
        fleet
            .enroll(
                placed("i-0000000000000000b", [127, 0, 0, 6], FleetState::Running),
                100_000,
            )
            .await
            .unwrap();
        let mut elsewhere = placed("i-0000000000000000c", [127, 0, 0, 7], FleetState::Running);
        elsewhere.network = None;
        fleet.enroll(elsewhere, 100_000).await.unwrap();
        let registry = registry(dir.path());
        let instances = Instances::new(&registry, fleet.clone(), Duration::from_secs(90)).unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(100);
        let find = |account: &str, vpc: &str, ip: [u8; 4]| {
            instances
                .by_address(&registry, account, vpc, std::net::IpAddr::from(ip), now)
                .unwrap()
                .map(|i| i.id.clone())
        };
        let vpc = "vpc-0de00000000000001";
        assert_eq!(
            find("111122223333", vpc, [127, 0, 0, 5]).as_deref(),
            Some("i-abcd1234")
        );
        // The running one of the two enrolled at 127.0.0.6.
        assert_eq!(
            find("111122223333", vpc, [127, 0, 0, 6]).as_deref(),
            Some("i-0000000000000000b")
        );
        // No network: no VPC reaches it.
        assert_eq!(find("111122223333", vpc, [127, 0, 0, 7]), None);
        assert_eq!(
            find("111122223333", "vpc-0de00000000000002", [127, 0, 0, 5]),
            None
        );
        assert_eq!(find("444455556666", vpc, [127, 0, 0, 5]), None);
        let enrolled = instances
            .get(&registry, "i-0000000000000000b", now)
            .unwrap()
            .unwrap();
        assert_eq!(enrolled.vpc_id.as_deref(), Some(vpc));
        assert_eq!(
            enrolled.subnet_id.as_deref(),
            Some("subnet-0de00000000000001")
        );
    }

    #[tokio::test]
    async fn enrolled_instances_show_their_liveness_and_an_id_in_both_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = EmbeddedFleet::open(&dir.path().join("fleet")).unwrap();
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        fleet
            .enroll(
                enrollment("i-0000000000000000a", FleetState::Running),
                100_000,
            )
            .await
            .unwrap();
        fleet
            .enroll(
                enrollment("i-0000000000000000b", FleetState::Stopped),
                100_000,
            )
            .await
            .unwrap();
        let registry = registry(dir.path());
        let instances = Instances::new(&registry, fleet.clone(), Duration::from_secs(90)).unwrap();

        let running = instances
            .get(&registry, "i-0000000000000000a", at(189))
            .unwrap()
            .unwrap();
        assert_eq!(
            (running.state, running.availability),
            (InstanceState::Running, Availability::Available)
        );
        assert_eq!(running.tags["env"], "test");
        assert_eq!(running.launch_time, Some(at(1)));
        let silent = instances
            .get(&registry, "i-0000000000000000a", at(190))
            .unwrap()
            .unwrap();
        assert_eq!(
            (silent.state, silent.availability),
            (InstanceState::Running, Availability::Unavailable)
        );
        let stopped = instances
            .get(&registry, "i-0000000000000000b", at(100))
            .unwrap()
            .unwrap();
        assert_eq!(stopped.state, InstanceState::Stopped);
        assert!(instances
            .in_account(&registry, "i-0000000000000000a", "444455556666", at(100))
            .unwrap()
            .is_none());
        assert!(instances
            .in_account(&registry, "i-abcd1234", "111122223333", at(100))
            .unwrap()
            .is_some());

        fleet
            .enroll(enrollment("i-abcd1234", FleetState::Running), 100_000)
            .await
            .unwrap();
        let Err(e) = instances.check_disjoint(&registry) else {
            panic!("an id both configured and enrolled was accepted");
        };
        assert!(e.to_string().contains("i-abcd1234"), "{e}");
        let Err(e) = Instances::new(&registry, fleet, Duration::from_secs(90)) else {
            panic!("an id both configured and enrolled was accepted at start");
        };
        assert!(e.to_string().contains("i-abcd1234"), "{e}");
    }

    #[tokio::test]
    async fn an_enrolled_instance_has_the_port_and_host_keys_it_reported() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = EmbeddedFleet::open(&dir.path().join("fleet")).unwrap();
        let mut e = enrollment("i-0000000000000000a", FleetState::Running);
        e.facts.addresses.ssh_port = 2200;
        e.facts.host_keys = vec![
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEz1IfFgVwd94PL4XD1ju7YfyPsL9Z7CdrE/Ace+v3k5"
                .into(),
        ];
        fleet.enroll(e.clone(), 100_000).await.unwrap();
        let registry = registry(dir.path());
        let instances = Instances::new(&registry, fleet, Duration::from_secs(90)).unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(100);
        let enrolled = instances
            .get(&registry, "i-0000000000000000a", now)
            .unwrap()
            .unwrap();
        assert_eq!(enrolled.ssh_port, 2200);
        assert_eq!(enrolled.host_keys, e.facts.host_keys);
        let configured = instances
            .get(&registry, "i-abcd1234", now)
            .unwrap()
            .unwrap();
        assert_eq!((configured.ssh_port, configured.host_keys.len()), (22, 0));
    }

    #[test]
    fn tags_parse_as_ec2_allows() {
        let tags = parse_tags(["Name=web 1", "env=", "k=v=w"]).unwrap();
        assert_eq!(tags["Name"], "web 1");
        assert_eq!(tags["env"], "");
        assert_eq!(tags["k"], "v=w");
        assert!(parse_tags(["novalue"]).is_err());
        assert!(parse_tags(["=v"]).is_err());
        assert!(parse_tags(["aws:x=v"]).is_err());
        assert!(parse_tags([format!("{}=v", "k".repeat(129)).as_str()]).is_err());
    }
}
