//! The enrollment protocol between `eic agent join|run` and the
//! instance-facing listener, as a pure core: the JSON bodies of
//! `POST /eic/v1/join` and `POST /eic/v1/heartbeat`, and the host key rule
//! both sides apply (the agent to what it reports, the server to what it
//! stores). The server's checks of the other facts, and their stored form
//! (eic-store's fleet types), are eic's `enrollment`: the agent does not
//! depend on the store.

use std::net::{Ipv4Addr, Ipv6Addr};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

pub const JOIN_PATH: &str = "/eic/v1/join";
pub const HEARTBEAT_PATH: &str = "/eic/v1/heartbeat";
/// A join or heartbeat body: a few host keys and names.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
const MAX_HOST_KEYS: usize = 16;
const MAX_HOST_KEY_BYTES: usize = 16 * 1024;

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
            eic_wire::bounded(kind, 64)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ED25519: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIKw8uR2dD3wTbVv0Hk3m2mUqHbQ2oTGxdqT3k0Yb9n1Q";

    #[test]
    fn host_keys_are_re_encoded_without_their_comment() {
        let line = format!("ssh-ed25519 {ED25519} root@web-1");
        assert_eq!(
            host_key_line(&line).unwrap(),
            format!("ssh-ed25519 {ED25519}")
        );
        assert!(host_key_line(&format!("ssh-rsa {ED25519}")).is_err());
        assert!(host_key_lines(&vec![line; 17]).is_err());
    }

    #[test]
    fn the_join_body_round_trips_and_refuses_unknown_fields() {
        let request = JoinRequest {
            token: Secret::new("t".into()),
            facts: ReportedFacts {
                hostname: "web-1.example".into(),
                private_ip_address: Some(Ipv4Addr::LOCALHOST),
                ssh_port: 22,
                ..ReportedFacts::default()
            },
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
