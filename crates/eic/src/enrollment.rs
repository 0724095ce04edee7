//! The enrollment protocol between `eic agent join|run` and the
//! instance-facing listener, as a pure core: the JSON bodies of
//! `POST /eic/v1/join` and `POST /eic/v1/heartbeat` (eic-agent's
//! `enrollment`, re-exported here), and the checks every fact a machine
//! reports passes before it is stored. A machine is not
//! trusted to describe itself sensibly: every field is bounded, host keys
//! are parsed and re-encoded, and anything else is refused whole.

use eic_store::fleet::{Addresses, FleetState, MachineFacts};

pub use eic_agent::enrollment::*;

const MAX_TEXT_CHARS: usize = 256;
/// The instance type an enrolled machine shows when it names none.
pub const DEFAULT_INSTANCE_TYPE: &str = "eic.machine";

/// A reported state as the fleet stores it.
pub fn stored(state: ReportedState) -> FleetState {
    match state {
        ReportedState::Running => FleetState::Running,
        ReportedState::Stopped => FleetState::Stopped,
    }
}

/// A machine's reported facts as stored, or why they are refused.
pub fn validate(facts: &ReportedFacts) -> Result<MachineFacts, String> {
    let hostname = &facts.hostname;
    if hostname.is_empty()
        || hostname.len() > 253
        || !hostname
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    {
        return Err("hostname must be 1 to 253 letters, digits, '-', '.' or '_'".into());
    }
    if facts.ssh_port == 0 {
        return Err("sshPort must be 1 to 65535".into());
    }
    let host_keys = host_key_lines(&facts.host_keys)?;
    Ok(MachineFacts {
        hostname: hostname.clone(),
        addresses: Addresses {
            private_ipv4: facts.private_ip_address,
            public_ipv4: facts.public_ip_address,
            ipv6: facts.ipv6_address,
            ssh_port: facts.ssh_port,
        },
        host_keys,
        os: bounded_text("os", &facts.os)?,
        kernel: bounded_text("kernel", &facts.kernel)?,
    })
}

fn bounded_text(field: &str, text: &str) -> Result<String, String> {
    if text.chars().count() > MAX_TEXT_CHARS || text.chars().any(char::is_control) {
        return Err(format!(
            "{field} must be at most {MAX_TEXT_CHARS} characters without control characters"
        ));
    }
    Ok(text.to_owned())
}

/// The zone a joining machine is placed in: the token's, which the machine
/// may repeat but not change; else the machine's; else the region's first.
pub fn placement(
    token_zone: Option<&str>,
    asked: Option<&str>,
    region: &str,
) -> Result<String, String> {
    match (token_zone, asked) {
        (Some(token), Some(asked)) if token != asked => Err(format!(
            "the join token places machines in {token}, not {asked}"
        )),
        (Some(zone), _) | (None, Some(zone)) => {
            if eic_wire::is_valid_availability_zone(zone) {
                Ok(zone.to_owned())
            } else {
                Err(format!(
                    "'{}' is not an availability zone name",
                    crate::audit::bounded(zone, 64)
                ))
            }
        }
        (None, None) => Ok(format!("{region}a")),
    }
}

/// EC2's instance type shape (`t3.micro`), bounded.
pub fn instance_type(asked: Option<&str>) -> Result<String, String> {
    let Some(kind) = asked else {
        return Ok(DEFAULT_INSTANCE_TYPE.into());
    };
    let ok = kind.len() <= 64
        && kind.split_once('.').is_some_and(|(family, size)| {
            let part = |p: &str| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            };
            part(family) && part(size)
        });
    if ok {
        Ok(kind.to_owned())
    } else {
        Err(format!(
            "'{}' is not an instance type (family.size)",
            crate::audit::bounded(kind, 64)
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const ED25519: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIKw8uR2dD3wTbVv0Hk3m2mUqHbQ2oTGxdqT3k0Yb9n1Q";

    fn facts() -> ReportedFacts {
        ReportedFacts {
            hostname: "web-1.example".into(),
            private_ip_address: Some(Ipv4Addr::LOCALHOST),
            ssh_port: 22,
            host_keys: vec![format!("ssh-ed25519 {ED25519} root@web-1")],
            os: "Debian GNU/Linux 13 (trixie)".into(),
            kernel: "6.12.0-1-amd64".into(),
            ..ReportedFacts::default()
        }
    }

    #[test]
    fn facts_are_checked_and_normalized() {
        let stored = validate(&facts()).unwrap();
        assert_eq!(stored.host_keys, [format!("ssh-ed25519 {ED25519}")]);
        assert_eq!(stored.addresses.ssh_port, 22);
        for (change, why) in [
            (
                Box::new(|f: &mut ReportedFacts| f.hostname = "a b".into())
                    as Box<dyn Fn(&mut ReportedFacts)>,
                "hostname",
            ),
            (Box::new(|f| f.hostname = String::new()), "hostname"),
            (Box::new(|f| f.ssh_port = 0), "sshPort"),
            (Box::new(|f| f.os = "x\ny".into()), "os"),
            (Box::new(|f| f.kernel = "k".repeat(257)), "kernel"),
            (
                Box::new(|f| f.host_keys = vec![format!("ssh-dss {ED25519}")]),
                "type",
            ),
            (
                Box::new(|f| f.host_keys = vec![format!("ssh-rsa {ED25519}")]),
                "not a ssh-rsa key",
            ),
            (
                Box::new(|f| f.host_keys = vec!["ssh-ed25519 !!!".into()]),
                "base64",
            ),
            (
                Box::new(|f| f.host_keys = vec![format!("ssh-ed25519 {ED25519}"); 17]),
                "at most",
            ),
        ] {
            let mut f = facts();
            change(&mut f);
            let err = validate(&f).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn placement_follows_the_token() {
        assert_eq!(placement(None, None, "us-east-1").unwrap(), "us-east-1a");
        assert_eq!(
            placement(Some("us-east-1b"), None, "us-east-1").unwrap(),
            "us-east-1b"
        );
        assert_eq!(
            placement(Some("us-east-1b"), Some("us-east-1b"), "us-east-1").unwrap(),
            "us-east-1b"
        );
        assert!(placement(Some("us-east-1b"), Some("us-east-1c"), "us-east-1").is_err());
        assert_eq!(
            placement(None, Some("us-east-1c"), "us-east-1").unwrap(),
            "us-east-1c"
        );
        assert!(placement(None, Some("<zone>"), "us-east-1").is_err());
    }

    #[test]
    fn instance_types() {
        assert_eq!(instance_type(None).unwrap(), DEFAULT_INSTANCE_TYPE);
        assert_eq!(instance_type(Some("t3.micro")).unwrap(), "t3.micro");
        assert_eq!(instance_type(Some("u-6tb1.metal")).unwrap(), "u-6tb1.metal");
        for bad in ["t3", "T3.micro", ".micro", "t3.", "t3 .micro"] {
            assert!(instance_type(Some(bad)).is_err(), "{bad}");
        }
    }
}
