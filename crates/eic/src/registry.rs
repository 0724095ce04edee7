//! The runtime view of the configuration: who may sign requests, which
//! accounts exist, and which instances each account owns. Built once from
//! [`Config`], checked for consistency, and then read without locks.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::config::{AccessKeyStatus, Availability, Config, ConfigError, InstanceState};
use crate::secret::Secret;

#[derive(Debug)]
pub struct Account {
    pub serial_console_access: bool,
}

#[derive(Debug)]
pub struct Principal {
    pub arn: String,
    pub account: String,
    /// The name after `user/` or `role/`, for `aws:username`.
    pub name: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug)]
pub struct Instance {
    pub id: String,
    pub account: String,
    pub state: InstanceState,
    pub availability_zone: String,
    pub instance_type: String,
    pub tags: BTreeMap<String, String>,
    pub availability: Availability,
    pub serial_console: Option<eic_serial::ConsoleBackend>,
    pub private_ip_address: Option<std::net::Ipv4Addr>,
    pub public_ip_address: Option<std::net::Ipv4Addr>,
    pub ipv6_address: Option<std::net::Ipv6Addr>,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    /// When it first enrolled; `None` for a static instance, which shows
    /// the server's start.
    pub launch_time: Option<std::time::SystemTime>,
    /// Where its sshd listens, and its host keys (`type base64`), for
    /// DescribeInstanceHostKeys.
    pub ssh_port: u16,
    pub host_keys: Vec<String>,
}

pub struct AccessKey {
    pub secret: Secret<String>,
    pub principal: Arc<Principal>,
    pub active: bool,
}

pub struct Registry {
    pub region: String,
    pub regions: Vec<String>,
    accounts: HashMap<String, Account>,
    access_keys: HashMap<String, AccessKey>,
    principals: HashMap<String, Arc<Principal>>,
    instances: HashMap<String, Arc<Instance>>,
    endpoints: BTreeMap<String, Arc<Endpoint>>,
}

/// An EC2 Instance Connect Endpoint: it reaches the running instances of
/// its VPC in its account, on its allowed ports.
#[derive(Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub id: String,
    pub account: String,
    /// `arn:aws:ec2:<region>:<account>:instance-connect-endpoint/<id>`,
    /// what OpenTunnel is authorized on.
    pub arn: String,
    pub vpc_id: String,
    pub subnet_id: String,
    pub availability_zone: String,
    pub dns_name: String,
    pub fips_dns_name: Option<String>,
    pub allowed_ports: Vec<u16>,
    pub tags: BTreeMap<String, String>,
}

/// The gateway finds each instance's console here.
impl eic_serial::Backends for Registry {
    fn backend(&self, instance_id: &str) -> Option<eic_serial::ConsoleBackend> {
        self.instances.get(instance_id)?.serial_console.clone()
    }
}

impl Registry {
    pub fn from_config(config: &Config) -> Result<Registry, ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let mut regions = vec![config.region.clone()];
        regions.extend(config.extra_regions.iter().cloned());

        let mut accounts = HashMap::new();
        for a in &config.accounts {
            if a.id.len() != 12 || !a.id.bytes().all(|b| b.is_ascii_digit()) {
                return invalid(format!("account id '{}' must be 12 digits", a.id));
            }
            let account = Account {
                serial_console_access: a.serial_console_access,
            };
            if accounts.insert(a.id.clone(), account).is_some() {
                return invalid(format!("account {} is defined twice", a.id));
            }
        }

        let mut access_keys = HashMap::new();
        let mut principals = HashMap::new();
        for p in &config.principals {
            let (account, name) = parse_principal_arn(&p.arn).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "principal '{}' is not an IAM user or role ARN (arn:aws:iam::<account>:user/<name>)",
                    p.arn
                ))
            })?;
            if !accounts.contains_key(&account) {
                return invalid(format!(
                    "principal {} names account {account}, which is not defined",
                    p.arn
                ));
            }
            let principal = Arc::new(Principal {
                arn: p.arn.clone(),
                account,
                name,
                tags: p.tags.clone(),
            });
            if principals
                .insert(p.arn.clone(), principal.clone())
                .is_some()
            {
                return invalid(format!("principal {} is defined twice", p.arn));
            }
            for key in &p.access_keys {
                if key.id.is_empty()
                    || key.id.len() > 128
                    || !key.id.bytes().all(|b| b.is_ascii_alphanumeric())
                {
                    return invalid(format!(
                        "access key id '{}' of {}: must be 1 to 128 letters and digits",
                        key.id, p.arn
                    ));
                }
                if key.secret.expose().len() < 16 {
                    return invalid(format!(
                        "access key {} of {}: the secret must be at least 16 characters",
                        key.id, p.arn
                    ));
                }
                let entry = AccessKey {
                    secret: key.secret.clone(),
                    principal: principal.clone(),
                    active: key.status == AccessKeyStatus::Active,
                };
                if access_keys.insert(key.id.clone(), entry).is_some() {
                    return invalid(format!("access key {} is defined twice", key.id));
                }
            }
        }

        let mut instances = HashMap::new();
        for i in &config.instances {
            if !eic_wire::is_valid_instance_id(&i.id) {
                return invalid(format!(
                    "instance id '{}' does not match ^i-[a-f0-9]+$ (10 to 32 characters)",
                    i.id
                ));
            }
            if !accounts.contains_key(&i.account) {
                return invalid(format!(
                    "instance {} names account {}, which is not defined",
                    i.id, i.account
                ));
            }
            if !eic_wire::is_valid_availability_zone(&i.availability_zone) {
                return invalid(format!(
                    "instance {}: '{}' is not an availability zone name",
                    i.id, i.availability_zone
                ));
            }
            for (field, value, prefix) in [
                ("vpc_id", &i.vpc_id, "vpc-"),
                ("subnet_id", &i.subnet_id, "subnet-"),
            ] {
                if let Some(value) = value {
                    if !is_resource_id(value, prefix) {
                        return invalid(format!(
                            "instance {}: {field} '{value}' does not match ^{prefix}[a-f0-9]+$ (8 to 17 hex digits)",
                            i.id
                        ));
                    }
                }
            }
            if i.subnet_id.is_some() && i.vpc_id.is_none() {
                return invalid(format!(
                    "instance {}: a subnet_id needs the vpc_id it is in",
                    i.id
                ));
            }
            let instance = Arc::new(Instance {
                id: i.id.clone(),
                account: i.account.clone(),
                state: i.state,
                availability_zone: i.availability_zone.clone(),
                instance_type: i.instance_type.clone(),
                tags: i.tags.clone(),
                availability: i.availability,
                serial_console: i.serial_console.clone(),
                private_ip_address: i.private_ip_address,
                public_ip_address: i.public_ip_address,
                ipv6_address: i.ipv6_address,
                vpc_id: i.vpc_id.clone(),
                subnet_id: i.subnet_id.clone(),
                launch_time: None,
                ssh_port: i.ssh_port,
                host_keys: i.host_keys.clone(),
            });
            if instances.insert(i.id.clone(), instance).is_some() {
                return invalid(format!("instance {} is defined twice", i.id));
            }
        }

        let mut endpoints = BTreeMap::new();
        for e in &config.instance_connect_endpoints {
            let endpoint = endpoint_from_config(e, &config.region, &accounts)?;
            if endpoints.insert(e.id.clone(), Arc::new(endpoint)).is_some() {
                return invalid(format!(
                    "instance connect endpoint {} is defined twice",
                    e.id
                ));
            }
        }

        Ok(Registry {
            region: config.region.clone(),
            regions,
            accounts,
            access_keys,
            principals,
            instances,
            endpoints,
        })
    }

    pub fn access_key(&self, id: &str) -> Option<&AccessKey> {
        self.access_keys.get(id)
    }

    pub fn principal(&self, arn: &str) -> Option<&Arc<Principal>> {
        self.principals.get(arn)
    }

    pub fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.get(id)
    }

    pub fn instance(&self, id: &str) -> Option<&Arc<Instance>> {
        self.instances.get(id)
    }

    /// The endpoint `id`, of whichever account.
    pub fn endpoint(&self, id: &str) -> Option<&Arc<Endpoint>> {
        self.endpoints.get(id)
    }

    /// The account's endpoints in id order, for
    /// DescribeInstanceConnectEndpoints.
    pub fn endpoints_in_account<'a>(
        &'a self,
        account: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Endpoint>> + 'a {
        self.endpoints
            .values()
            .filter(move |e| e.account == account)
    }

    /// Every endpoint's DNS names, for the tunnel listener's certificate.
    pub fn endpoint_dns_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .endpoints
            .values()
            .flat_map(|e| std::iter::once(e.dns_name.clone()).chain(e.fips_dns_name.clone()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The instance, if it exists in `account`. An instance of another
    /// account is indistinguishable from one that does not exist.
    /// The account's instances, for DescribeInstances.
    pub fn instances_in_account<'a>(
        &'a self,
        account: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Instance>> + 'a {
        self.instances
            .values()
            .filter(move |i| i.account == account)
    }

    pub fn instance_in_account(&self, id: &str, account: &str) -> Option<&Arc<Instance>> {
        self.instances.get(id).filter(|i| i.account == account)
    }
}

/// `arn:aws:iam::123456789012:user/path/name` → (account, name).
fn parse_principal_arn(arn: &str) -> Option<(String, String)> {
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let path = resource
        .strip_prefix("user/")
        .or_else(|| resource.strip_prefix("role/"))?;
    let name = path.rsplit('/').next()?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty())
        .then(|| (account.to_owned(), name.to_owned()))
}

/// Instance types whose serial console EC2 does not support: every type
/// that is not on the Nitro system, plus the bare-metal exceptions AWS
/// lists. Kept as data so it is easy to audit against AWS's pages.
const NON_NITRO_FAMILIES: &[&str] = &[
    "a1.metal",
    "c1",
    "c3",
    "c4",
    "cc2",
    "cg1",
    "cr1",
    "d2",
    "g2",
    "g3",
    "g3s",
    "h1",
    "hi1",
    "hs1",
    "i2",
    "i3",
    "m1",
    "m2",
    "m3",
    "m4",
    "p2",
    "p3",
    "r3",
    "r4",
    "t1",
    "t2",
    "x1",
    "x1e",
    "mac1.metal",
    "mac2.metal",
    "g5g.metal",
];

/// Whether the serial console is available on `instance_type` (e.g.
/// `t3.micro`). Families match exactly, so Nitro families that share a
/// prefix with a Xen one (`i3en`, `p3dn`) are unaffected; `i3.metal` is the
/// one Nitro type inside a Xen family.
pub fn supports_serial_console(instance_type: &str) -> bool {
    let family = instance_type.split('.').next().unwrap_or_default();
    if instance_type == "i3.metal" {
        return true;
    }
    // u-*tb1.metal: the high-memory bare-metal generation 1.
    if family.starts_with("u-") && family.ends_with("tb1") && instance_type.ends_with(".metal") {
        return false;
    }
    !NON_NITRO_FAMILIES
        .iter()
        .any(|f| *f == family || *f == instance_type)
}

/// An endpoint's settings checked: its id, account, VPC, subnet, zone,
/// DNS names (what the CLI accepts: `^[0-9a-zA-Z.-]+$`) and ports.
fn endpoint_from_config(
    e: &crate::config::EndpointConfig,
    region: &str,
    accounts: &HashMap<String, Account>,
) -> Result<Endpoint, ConfigError> {
    let invalid = |m: String| {
        Err(ConfigError::Invalid(format!(
            "instance connect endpoint {}: {m}",
            e.id
        )))
    };
    if !eic_ec2::is_well_formed_endpoint_id(&e.id) {
        return invalid("the id is not eice- and 17 (or 8) lowercase hex digits".into());
    }
    if !accounts.contains_key(&e.account) {
        return invalid(format!("account {} is not defined", e.account));
    }
    for (field, value, prefix) in [
        ("vpc_id", &e.vpc_id, "vpc-"),
        ("subnet_id", &e.subnet_id, "subnet-"),
    ] {
        if !is_resource_id(value, prefix) {
            return invalid(format!(
                "{field} '{value}' does not match ^{prefix}[a-f0-9]+$ (8 to 17 hex digits)"
            ));
        }
    }
    if !eic_wire::is_valid_availability_zone(&e.availability_zone) {
        return invalid(format!(
            "'{}' is not an availability zone name",
            e.availability_zone
        ));
    }
    for name in std::iter::once(&e.dns_name).chain(&e.fips_dns_name) {
        let plain = !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !plain || rustls::pki_types::ServerName::try_from(name.as_str()).is_err() {
            return invalid(format!("{name:?} is not a DNS name"));
        }
    }
    if e.allowed_ports.is_empty() || e.allowed_ports.contains(&0) {
        return invalid("allowed_ports must list ports from 1 to 65535".into());
    }
    Ok(Endpoint {
        id: e.id.clone(),
        account: e.account.clone(),
        arn: format!(
            "arn:aws:ec2:{region}:{}:instance-connect-endpoint/{}",
            e.account, e.id
        ),
        vpc_id: e.vpc_id.clone(),
        subnet_id: e.subnet_id.clone(),
        availability_zone: e.availability_zone.clone(),
        dns_name: e.dns_name.clone(),
        fips_dns_name: e.fips_dns_name.clone(),
        allowed_ports: e.allowed_ports.clone(),
        tags: e.tags.clone(),
    })
}

/// An EC2 resource id such as `vpc-0de00000000000001`: the prefix, then 8
/// or 17 lowercase hex digits (anything from 8 to 17 is accepted).
pub fn is_resource_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|hex| {
        (8..=17).contains(&hex.len())
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nitro_families() {
        for ok in [
            "t3.micro",
            "m5.large",
            "c5n.18xlarge",
            "i3en.large",
            "i3.metal",
            "p3dn.24xlarge",
            "m5.metal",
            "a1.large",
            "t4g.nano",
        ] {
            assert!(supports_serial_console(ok), "{ok}");
        }
        for bad in [
            "t2.micro",
            "m4.large",
            "c4.xlarge",
            "i3.large",
            "a1.metal",
            "mac1.metal",
            "u-6tb1.metal",
            "x1e.xlarge",
            "p3.2xlarge",
        ] {
            assert!(!supports_serial_console(bad), "{bad}");
        }
    }

    #[test]
    fn resource_ids() {
        assert!(super::is_resource_id("vpc-0de00000000000001", "vpc-"));
        assert!(super::is_resource_id("subnet-0de00000000000001", "subnet-"));
        assert!(super::is_resource_id("vpc-12345678", "vpc-"));
        assert!(!super::is_resource_id("vpc-1234567", "vpc-"));
        assert!(!super::is_resource_id("vpc-0DE00000000000001", "vpc-"));
        assert!(!super::is_resource_id("subnet-0de00000000000001", "vpc-"));
        assert!(!super::is_resource_id("vpc-0de000000000000001", "vpc-"));
    }

    #[test]
    fn principal_arns() {
        assert_eq!(
            parse_principal_arn("arn:aws:iam::111122223333:user/alice"),
            Some(("111122223333".into(), "alice".into()))
        );
        assert_eq!(
            parse_principal_arn("arn:aws:iam::111122223333:role/ops/deployer"),
            Some(("111122223333".into(), "deployer".into()))
        );
        assert_eq!(parse_principal_arn("arn:aws:iam::1:user/x"), None);
        assert_eq!(parse_principal_arn("arn:aws:s3:::bucket"), None);
    }
}
