//! Which instance the user means, and where it is: EC2 DescribeInstances
//! through the SDK, by id, or by a tag (`Name` by default) that must match
//! exactly one instance that is not terminated.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::anyhow;
use aws_sdk_ec2::types::{Filter, Instance};

use super::{api_error, Aws};

/// Pages read when a tag matches many instances, to list them.
const MAX_TAG_PAGES: usize = 5;

/// How the user named the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceRef {
    Id(String),
    /// `KEY=VALUE`, or a bare name for `Name=…`.
    Tag {
        key: String,
        value: String,
    },
}

impl InstanceRef {
    pub fn parse(text: &str) -> InstanceRef {
        if eic_ec2::is_well_formed_instance_id(text) {
            return InstanceRef::Id(text.to_owned());
        }
        match text.split_once('=') {
            Some((key, value)) if !key.is_empty() => InstanceRef::Tag {
                key: key.to_owned(),
                value: value.to_owned(),
            },
            _ => InstanceRef::Tag {
                key: "Name".to_owned(),
                value: text.to_owned(),
            },
        }
    }
}

impl std::fmt::Display for InstanceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InstanceRef::Id(id) => f.write_str(id),
            InstanceRef::Tag { key, value } => write!(f, "{key}={value}"),
        }
    }
}

/// Which of an instance's addresses to connect to.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressChoice {
    /// The public IPv4 address, else the private one, else the IPv6 one.
    #[default]
    Auto,
    Public,
    Private,
    Ipv6,
}

/// The instance found, with what logging in needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub instance_id: String,
    pub availability_zone: Option<String>,
    pub state: Option<String>,
    pub public_ip: Option<Ipv4Addr>,
    pub private_ip: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    /// Where an Instance Connect Endpoint would reach it.
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
}

impl Target {
    fn of(instance: &Instance) -> Option<Target> {
        Some(Target {
            instance_id: instance.instance_id()?.to_owned(),
            availability_zone: instance
                .placement()
                .and_then(|p| p.availability_zone())
                .map(str::to_owned),
            state: instance
                .state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_owned()),
            public_ip: instance.public_ip_address().and_then(|a| a.parse().ok()),
            private_ip: instance.private_ip_address().and_then(|a| a.parse().ok()),
            ipv6: instance.ipv6_address().and_then(|a| a.parse().ok()),
            vpc_id: instance.vpc_id().map(str::to_owned),
            subnet_id: instance.subnet_id().map(str::to_owned),
        })
    }

    pub fn address(&self, choice: AddressChoice) -> anyhow::Result<IpAddr> {
        let found = match choice {
            AddressChoice::Auto => self
                .public_ip
                .map(IpAddr::V4)
                .or(self.private_ip.map(IpAddr::V4))
                .or(self.ipv6.map(IpAddr::V6)),
            AddressChoice::Public => self.public_ip.map(IpAddr::V4),
            AddressChoice::Private => self.private_ip.map(IpAddr::V4),
            AddressChoice::Ipv6 => self.ipv6.map(IpAddr::V6),
        };
        found.ok_or_else(|| {
            let which = match choice {
                AddressChoice::Auto => "no address",
                AddressChoice::Public => "no public IPv4 address",
                AddressChoice::Private => "no private IPv4 address",
                AddressChoice::Ipv6 => "no IPv6 address",
            };
            anyhow!("{} has {which}", self.instance_id)
        })
    }
}

/// Finds the one instance `what` names.
pub async fn resolve(aws: &Aws, what: &InstanceRef) -> anyhow::Result<Target> {
    match what {
        InstanceRef::Id(id) => by_ids(aws, &[id.as_str()])
            .await?
            .pop()
            .ok_or_else(|| anyhow!("looking up {id}: no such instance")),
        InstanceRef::Tag { key, value } => by_tag(aws, what, key, value).await,
    }
}

/// The instances `ids` name, in one DescribeInstances call (an unknown id
/// fails it, as EC2 fails it).
pub async fn by_ids(aws: &Aws, ids: &[&str]) -> anyhow::Result<Vec<Target>> {
    let out = aws
        .ec2
        .describe_instances()
        .set_instance_ids(Some(ids.iter().map(|id| (*id).to_owned()).collect()))
        .send()
        .await
        .map_err(|e| api_error(format!("looking up {}", ids.join(", ")), e))?;
    Ok(out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(Target::of)
        .collect())
}

async fn by_tag(aws: &Aws, what: &InstanceRef, key: &str, value: &str) -> anyhow::Result<Target> {
    let mut found: Vec<(Target, Option<String>)> = Vec::new();
    let mut next_token = None;
    for _ in 0..MAX_TAG_PAGES {
        let out = aws
            .ec2
            .describe_instances()
            .filters(
                Filter::builder()
                    .name(format!("tag:{key}"))
                    .values(value)
                    .build(),
            )
            .filters(
                Filter::builder()
                    .name("instance-state-name")
                    .set_values(Some(
                        ["pending", "running", "stopping", "stopped"]
                            .map(String::from)
                            .to_vec(),
                    ))
                    .build(),
            )
            .set_next_token(next_token.take())
            .send()
            .await
            .map_err(|e| api_error(format!("looking up {what}"), e))?;
        for instance in out.reservations().iter().flat_map(|r| r.instances()) {
            if let Some(target) = Target::of(instance) {
                let name = instance
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some("Name"))
                    .and_then(|t| t.value())
                    .map(str::to_owned);
                found.push((target, name));
            }
        }
        next_token = out.next_token().map(str::to_owned);
        if next_token.is_none() {
            break;
        }
    }
    match found.len() {
        0 => Err(anyhow!(
            "no instance that is not terminated has the tag {what}"
        )),
        1 => Ok(found.remove(0).0),
        n => {
            let more = if next_token.is_some() { " or more" } else { "" };
            let list: Vec<String> = found
                .iter()
                .map(|(t, name)| {
                    format!(
                        "  {} {} {}",
                        t.instance_id,
                        t.state.as_deref().unwrap_or("-"),
                        name.as_deref().unwrap_or("")
                    )
                })
                .collect();
            Err(anyhow!(
                "{n}{more} instances have the tag {what}; name one by its id:\n{}",
                list.join("\n")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_names_and_tags() {
        assert_eq!(
            InstanceRef::parse("i-0123456789abcdef0"),
            InstanceRef::Id("i-0123456789abcdef0".into())
        );
        assert_eq!(
            InstanceRef::parse("web-1"),
            InstanceRef::Tag {
                key: "Name".into(),
                value: "web-1".into()
            }
        );
        assert_eq!(
            InstanceRef::parse("Team=dev"),
            InstanceRef::Tag {
                key: "Team".into(),
                value: "dev".into()
            }
        );
        // Not an id eic could have issued: a name.
        assert_eq!(
            InstanceRef::parse("i-XYZ"),
            InstanceRef::Tag {
                key: "Name".into(),
                value: "i-XYZ".into()
            }
        );
    }

    #[test]
    fn addresses_in_the_order_the_choice_says() {
        let mut t = Target {
            instance_id: "i-0123456789abcdef0".into(),
            availability_zone: None,
            state: None,
            public_ip: None,
            private_ip: Some(Ipv4Addr::new(127, 0, 0, 2)),
            ipv6: Some(Ipv6Addr::LOCALHOST),
            vpc_id: None,
            subnet_id: None,
        };
        assert_eq!(
            t.address(AddressChoice::Auto).unwrap(),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))
        );
        assert_eq!(
            t.address(AddressChoice::Ipv6).unwrap(),
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        );
        let e = t.address(AddressChoice::Public).unwrap_err();
        assert_eq!(
            e.to_string(),
            "i-0123456789abcdef0 has no public IPv4 address"
        );
        t.public_ip = Some(Ipv4Addr::new(127, 0, 0, 3));
        assert_eq!(
            t.address(AddressChoice::Auto).unwrap(),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3))
        );
    }
}
