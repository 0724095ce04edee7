//! The enrollment protocol between `eic agent join|run` and the
//! instance-facing listener, as a pure core: the JSON bodies of
//! `POST /eic/v1/join` and `POST /eic/v1/heartbeat`, and the checks every
//! fact a machine reports passes before it is stored. A machine is not
//! trusted to describe itself sensibly: every field is bounded, host keys
//! are parsed and re-encoded, and anything else is refused whole.

use std::net::{Ipv4Addr, Ipv6Addr};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use eic_store::fleet::{Addresses, FleetState, MachineFacts};
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

pub const JOIN_PATH: &str = "/eic/v1/join";
pub const HEARTBEAT_PATH: &str = "/eic/v1/heartbeat";
/// A join or heartbeat body: a few host keys and names.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
const MAX_HOST_KEYS: usize = 16;
const MAX_HOST_KEY_BYTES: usize = 16 * 1024;
const MAX_TEXT_CHARS: usize = 256;
/// The instance type an enrolled machine shows when it names none.
pub const DEFAULT_INSTANCE_TYPE: &str = "eic.machine";

/// What a machine reports of itself, on the wire.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportedFacts {
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip_address: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip_address: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<Ipv6Addr>,
    pub ssh_port: u16,
    #[serde(default)]
    pub host_keys: Vec<String>,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub kernel: String,
}

/// `POST /eic/v1/join`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinRequest {
    pub token: Secret<String>,
    pub facts: ReportedFacts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// The credential an earlier join of this machine gave it: joining
    /// again with it updates that instance instead of making another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<Secret<String>>,
}

/// The answer to a join: everything the agent config holds.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinResponse {
    pub instance_id: String,
    pub account: String,
    pub availability_zone: String,
    pub credential: Secret<String>,
    pub signer_cn: String,
    /// PEM of the CA key blobs are signed under.
    pub trust_anchor: String,
    pub heartbeat_secs: u64,
}

/// `POST /eic/v1/heartbeat`, with the instance's credential.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeartbeatRequest {
    pub state: ReportedState,
    pub facts: ReportedFacts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportedState {
    Running,
    /// The machine is shutting down cleanly.
    Stopped,
}

impl ReportedState {
    pub fn stored(self) -> FleetState {
        match self {
            ReportedState::Running => FleetState::Running,
            ReportedState::Stopped => FleetState::Stopped,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatResponse {
    pub heartbeat_secs: u64,
}

/// A refusal's body: the agent prints `message`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
}

impl ReportedFacts {
    /// The facts as stored, or why they are refused.
    pub fn validate(&self) -> Result<MachineFacts, String> {
        let hostname = &self.hostname;
        if hostname.is_empty()
            || hostname.len() > 253
            || !hostname
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        {
            return Err("hostname must be 1 to 253 letters, digits, '-', '.' or '_'".into());
        }
        if self.ssh_port == 0 {
            return Err("sshPort must be 1 to 65535".into());
        }
        let host_keys = host_key_lines(&self.host_keys)?;
        Ok(MachineFacts {
            hostname: hostname.clone(),
            addresses: Addresses {
                private_ipv4: self.private_ip_address,
                public_ipv4: self.public_ip_address,
                ipv6: self.ipv6_address,
                ssh_port: self.ssh_port,
            },
            host_keys,
            os: bounded_text("os", &self.os)?,
            kernel: bounded_text("kernel", &self.kernel)?,
        })
    }
}

fn bounded_text(field: &str, text: &str) -> Result<String, String> {
    if text.chars().count() > MAX_TEXT_CHARS || text.chars().any(char::is_control) {
        return Err(format!(
            "{field} must be at most {MAX_TEXT_CHARS} characters without control characters"
        ));
    }
    Ok(text.to_owned())
}

/// The host key types sshd offers.
const HOST_KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
];

/// An instance's host keys as stored and served: at most 16, each through
/// [`host_key_line`]. A joining machine's report and a configured
/// instance's `host_keys` both pass here, so both are held to one rule.
pub fn host_key_lines(keys: &[String]) -> Result<Vec<String>, String> {
    if keys.len() > MAX_HOST_KEYS {
        return Err(format!("at most {MAX_HOST_KEYS} host keys"));
    }
    keys.iter().map(|k| host_key_line(k)).collect()
}

/// A host public key as `type base64`: the type known, the base64 valid and
/// naming the same type inside; the comment (usually `root@host`) dropped.
pub fn host_key_line(line: &str) -> Result<String, String> {
    if line.len() > MAX_HOST_KEY_BYTES {
        return Err("a host key is over 16 KiB".into());
    }
    let mut fields = line.split_ascii_whitespace();
    let (Some(kind), Some(data)) = (fields.next(), fields.next()) else {
        return Err("a host key must be 'type base64'".into());
    };
    if !HOST_KEY_TYPES.contains(&kind) {
        return Err(format!(
            "host key type '{}' is not one sshd serves",
            crate::audit::bounded(kind, 64)
        ));
    }
    let blob = STANDARD
        .decode(data)
        .map_err(|_| format!("the {kind} host key is not base64"))?;
    let inner = blob
        .get(..4)
        .map(|n| u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize)
        .and_then(|n| blob.get(4..4 + n));
    if inner != Some(kind.as_bytes()) {
        return Err(format!("the {kind} host key's data is not a {kind} key"));
    }
    Ok(format!("{kind} {}", STANDARD.encode(&blob)))
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
    use super::*;
    use proptest::prelude::*;

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
        let stored = facts().validate().unwrap();
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
            let err = f.validate().unwrap_err();
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

    #[test]
    fn the_join_body_round_trips_and_refuses_unknown_fields() {
        let request = JoinRequest {
            token: Secret::new("t".into()),
            facts: facts(),
            instance_type: None,
            availability_zone: Some("us-east-1a".into()),
            credential: None,
        };
        let json = serde_json::to_string(&request).unwrap();
        assert!(
            json.contains("\"privateIpAddress\":\"127.0.0.1\""),
            "{json}"
        );
        let back: JoinRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(back.facts.hostname, "web-1.example");
        let extra = json.replace("{\"token\"", "{\"bogus\":1,\"token\"");
        assert!(serde_json::from_str::<JoinRequest>(&extra).is_err());
    }

    proptest! {
        #[test]
        fn host_key_parsing_never_panics(line in "\\PC{0,300}") {
            let _ = host_key_line(&line);
        }
    }
}
