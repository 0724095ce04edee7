//! What DescribeInstances shows of an instance.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::SystemTime;

/// EC2's instance states with their `instanceState/code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InstanceState {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
    Stopping,
    Stopped,
}

impl InstanceState {
    pub const ALL: [InstanceState; 6] = [
        InstanceState::Pending,
        InstanceState::Running,
        InstanceState::ShuttingDown,
        InstanceState::Terminated,
        InstanceState::Stopping,
        InstanceState::Stopped,
    ];

    /// `instanceState/name`, and what `instance-state-name` matches.
    pub fn name(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
        }
    }

    /// `instanceState/code` (the low byte of EC2's 16-bit code; the high
    /// byte is internal to EC2 and always 0 here).
    pub fn code(self) -> u16 {
        match self {
            InstanceState::Pending => 0,
            InstanceState::Running => 16,
            InstanceState::ShuttingDown => 32,
            InstanceState::Terminated => 48,
            InstanceState::Stopping => 64,
            InstanceState::Stopped => 80,
        }
    }
}

/// One instance as DescribeInstances shows it. The server builds these from
/// its registry; nothing here knows where they come from. `None` fields are
/// left out of the response, as EC2 leaves out what an instance lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceView {
    /// `i-` and lowercase hex (see [`crate::is_well_formed_instance_id`]).
    pub instance_id: String,
    /// The owning account (`reservationSet/item/ownerId`).
    pub owner_id: String,
    pub state: InstanceState,
    pub instance_type: String,
    pub availability_zone: String,
    pub image_id: Option<String>,
    pub private_ip: Option<Ipv4Addr>,
    /// `ipAddress` (the SDKs' `PublicIpAddress`).
    pub public_ip: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    pub private_dns_name: Option<String>,
    /// `dnsName` (the SDKs' `PublicDnsName`).
    pub public_dns_name: Option<String>,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub launch_time: SystemTime,
}

impl InstanceView {
    /// A view with the fields every instance has, and nothing else.
    pub fn new(
        instance_id: impl Into<String>,
        owner_id: impl Into<String>,
        state: InstanceState,
        instance_type: impl Into<String>,
        availability_zone: impl Into<String>,
        launch_time: SystemTime,
    ) -> InstanceView {
        InstanceView {
            instance_id: instance_id.into(),
            owner_id: owner_id.into(),
            state,
            instance_type: instance_type.into(),
            availability_zone: availability_zone.into(),
            image_id: None,
            private_ip: None,
            public_ip: None,
            ipv6: None,
            private_dns_name: None,
            public_dns_name: None,
            vpc_id: None,
            subnet_id: None,
            tags: BTreeMap::new(),
            launch_time,
        }
    }

    /// The reservation this instance is shown in: one per instance, named
    /// after it (`i-0abc` → `r-0abc`), so it is stable across calls.
    pub fn reservation_id(&self) -> String {
        let digits = self
            .instance_id
            .strip_prefix("i-")
            .unwrap_or(&self.instance_id);
        format!("r-{digits}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_codes_are_ec2s() {
        let got: Vec<_> = InstanceState::ALL
            .iter()
            .map(|s| (s.name(), s.code()))
            .collect();
        assert_eq!(
            got,
            [
                ("pending", 0),
                ("running", 16),
                ("shutting-down", 32),
                ("terminated", 48),
                ("stopping", 64),
                ("stopped", 80)
            ]
        );
    }

    #[test]
    fn reservation_follows_the_instance() {
        let v = InstanceView::new(
            "i-0123456789abcdef0",
            "111122223333",
            InstanceState::Running,
            "t3.micro",
            "us-west-2a",
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(v.reservation_id(), "r-0123456789abcdef0");
    }
}
