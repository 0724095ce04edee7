//! Pure: which way a console terminal reaches an instance's sshd
//! (`[console] route`). Directly from this node, or through the Instance
//! Connect Endpoint of the instance's VPC, which may run on another node
//! that sits where the instance is reachable. An endpoint, when an operator
//! configured one for a VPC, is how that VPC is meant to be reached: so
//! `auto` takes it whenever one reaches the instance, unlike the CLI v2's
//! `auto`, which prefers a public address because it runs outside.

use std::net::{IpAddr, SocketAddr};

use crate::config::ConsoleRoute;
use crate::registry::{Endpoint, Instance};

/// How one terminal reaches its instance.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    Direct(SocketAddr),
    /// Through `endpoint`'s tunnel, to the instance's private `address`.
    Endpoint {
        endpoint: &'a Endpoint,
        address: IpAddr,
        port: u16,
    },
}

/// The route `setting` gives `instance` among its account's `endpoints`,
/// or why there is none (what the page shows).
///
/// An endpoint reaches the instance when it is in the instance's account
/// and VPC and allows its SSH port; one in the instance's subnet is
/// preferred, then the first by id. A tunnel goes to the private address
/// (IPv4, else IPv6), as endpoints only reach those.
pub fn choose<'a>(
    setting: ConsoleRoute,
    instance: &Instance,
    endpoints: impl IntoIterator<Item = &'a Endpoint>,
) -> Result<Route<'a>, String> {
    let private = instance
        .private_ip_address
        .map(IpAddr::V4)
        .or(instance.ipv6_address.map(IpAddr::V6));
    let endpoint = if setting == ConsoleRoute::Direct {
        None
    } else {
        reaching(instance, endpoints)
    };
    match (endpoint, private) {
        (Some(endpoint), Some(address)) => {
            return Ok(Route::Endpoint {
                endpoint,
                address,
                port: instance.ssh_port,
            })
        }
        (Some(endpoint), None) if setting == ConsoleRoute::Endpoint => {
            return Err(format!(
                "Instance {} has no private address for {} to reach.",
                instance.id, endpoint.id
            ))
        }
        (None, _) if setting == ConsoleRoute::Endpoint => {
            return Err(format!(
                "No Instance Connect Endpoint reaches instance {} (in {}, SSH on port {}), and this console connects only through endpoints.",
                instance.id,
                instance.vpc_id.as_deref().unwrap_or("no VPC"),
                instance.ssh_port
            ))
        }
        _ => {}
    }
    let ip = instance
        .private_ip_address
        .or(instance.public_ip_address)
        .map(IpAddr::V4)
        .or(instance.ipv6_address.map(IpAddr::V6))
        .ok_or_else(|| format!("Instance {} has no address to connect to.", instance.id))?;
    Ok(Route::Direct(SocketAddr::new(ip, instance.ssh_port)))
}

fn reaching<'a>(
    instance: &Instance,
    endpoints: impl IntoIterator<Item = &'a Endpoint>,
) -> Option<&'a Endpoint> {
    let vpc_id = instance.vpc_id.as_deref()?;
    let mut reach: Vec<&Endpoint> = endpoints
        .into_iter()
        .filter(|e| {
            e.account == instance.account
                && e.vpc_id == vpc_id
                && e.allowed_ports.contains(&instance.ssh_port)
        })
        .collect();
    reach.sort_by_key(|e| (instance.subnet_id.as_deref() != Some(&e.subnet_id), &e.id));
    reach.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Availability, InstanceState};
    use std::collections::BTreeMap;

    fn instance() -> Instance {
        Instance {
            id: "i-0123456789abcdef0".into(),
            account: "111122223333".into(),
            state: InstanceState::Running,
            availability_zone: "us-west-2a".into(),
            instance_type: "t3.micro".into(),
            tags: BTreeMap::new(),
            availability: Availability::Available,
            serial_console: None,
            private_ip_address: Some("127.0.10.1".parse().unwrap()),
            public_ip_address: Some("127.0.20.1".parse().unwrap()),
            ipv6_address: None,
            vpc_id: Some("vpc-1".into()),
            subnet_id: Some("subnet-b".into()),
            launch_time: None,
            ssh_port: 22,
            host_keys: vec![],
        }
    }

    fn endpoint(id: &str, vpc: &str, subnet: &str) -> Endpoint {
        Endpoint {
            id: id.into(),
            account: "111122223333".into(),
            arn: format!("arn:aws:ec2:us-west-2:111122223333:instance-connect-endpoint/{id}"),
            vpc_id: vpc.into(),
            subnet_id: subnet.into(),
            availability_zone: "us-west-2a".into(),
            dns_name: format!("{id}.example.com"),
            fips_dns_name: None,
            allowed_ports: vec![22],
            tags: BTreeMap::new(),
        }
    }

    fn direct(address: &str) -> Result<Route<'static>, String> {
        Ok(Route::Direct(address.parse().unwrap()))
    }

    #[test]
    fn auto_takes_the_vpcs_endpoint_preferring_the_instances_subnet() {
        let endpoints = [
            endpoint("eice-a", "vpc-1", "subnet-a"),
            endpoint("eice-b", "vpc-1", "subnet-b"),
            endpoint("eice-c", "vpc-2", "subnet-b"),
        ];
        let route = choose(ConsoleRoute::Auto, &instance(), &endpoints).unwrap();
        assert_eq!(
            route,
            Route::Endpoint {
                endpoint: &endpoints[1],
                address: "127.0.10.1".parse().unwrap(),
                port: 22
            }
        );
        let mut other_subnet = instance();
        other_subnet.subnet_id = Some("subnet-z".into());
        let Ok(Route::Endpoint { endpoint, .. }) =
            choose(ConsoleRoute::Auto, &other_subnet, &endpoints)
        else {
            panic!("no endpoint route")
        };
        assert_eq!(endpoint.id, "eice-a");
    }

    #[test]
    fn an_endpoint_of_another_vpc_account_or_port_does_not_reach() {
        let mut foreign = endpoint("eice-f", "vpc-1", "subnet-b");
        foreign.account = "444455556666".into();
        let mut ports = endpoint("eice-p", "vpc-1", "subnet-b");
        ports.allowed_ports = vec![2222];
        let endpoints = [endpoint("eice-o", "vpc-2", "subnet-b"), foreign, ports];
        assert_eq!(
            choose(ConsoleRoute::Auto, &instance(), &endpoints),
            direct("127.0.10.1:22")
        );
        let refused = choose(ConsoleRoute::Endpoint, &instance(), &endpoints).unwrap_err();
        assert!(
            refused.contains("No Instance Connect Endpoint reaches"),
            "{refused}"
        );
        let mut no_vpc = instance();
        no_vpc.vpc_id = None;
        assert!(choose(ConsoleRoute::Endpoint, &no_vpc, &endpoints)
            .unwrap_err()
            .contains("no VPC"));
    }

    #[test]
    fn direct_never_takes_an_endpoint_and_falls_back_to_the_public_address() {
        let endpoints = [endpoint("eice-b", "vpc-1", "subnet-b")];
        assert_eq!(
            choose(ConsoleRoute::Direct, &instance(), &endpoints),
            direct("127.0.10.1:22")
        );
        let mut public_only = instance();
        public_only.private_ip_address = None;
        assert_eq!(
            choose(ConsoleRoute::Direct, &public_only, &endpoints),
            direct("127.0.20.1:22")
        );
        // An endpoint reaches private addresses only: auto goes direct.
        assert_eq!(
            choose(ConsoleRoute::Auto, &public_only, &endpoints),
            direct("127.0.20.1:22")
        );
        let refused = choose(ConsoleRoute::Endpoint, &public_only, &endpoints).unwrap_err();
        assert!(refused.contains("no private address"), "{refused}");
        public_only.public_ip_address = None;
        assert!(choose(ConsoleRoute::Auto, &public_only, &endpoints)
            .unwrap_err()
            .contains("no address"));
    }

    #[test]
    fn an_ipv6_only_instance_is_tunnelled_to_its_ipv6_address() {
        let mut v6 = instance();
        v6.private_ip_address = None;
        v6.public_ip_address = None;
        v6.ipv6_address = Some("::1".parse().unwrap());
        let endpoints = [endpoint("eice-b", "vpc-1", "subnet-b")];
        assert_eq!(
            choose(ConsoleRoute::Auto, &v6, &endpoints),
            Ok(Route::Endpoint {
                endpoint: &endpoints[0],
                address: "::1".parse().unwrap(),
                port: 22
            })
        );
        assert_eq!(
            choose(ConsoleRoute::Auto, &v6, std::iter::empty()),
            direct("[::1]:22")
        );
    }
}
