//! The keys that may open a serial console session, and how an offered key
//! is matched against them.

use async_trait::async_trait;
use eic_store::StoreError;
use russh::keys::{HashAlg, PublicKey};
use tracing::warn;

/// A key pushed by `SendSerialConsoleSSHPublicKey` and still live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SerialKey {
    /// The OpenSSH public key line as pushed (`ssh-ed25519 AAAA… comment`);
    /// only the algorithm and key data take part in matching.
    pub public_key: String,
    /// Request id of the push, recorded with the session.
    pub request_id: String,
    /// ARN of the caller who pushed the key, recorded with the session.
    pub caller_arn: String,
}

/// Source of the live keys, asked at authentication time.
#[async_trait]
pub trait SerialKeys: Send + Sync {
    /// The keys pushed for `instance_id` and `port` that have not expired.
    async fn live_keys(&self, instance_id: &str, port: u8) -> Result<Vec<SerialKey>, StoreError>;
}

/// The first live key with the same algorithm and key data as `offered`.
pub(crate) fn find_match<'a>(keys: &'a [SerialKey], offered: &PublicKey) -> Option<&'a SerialKey> {
    keys.iter().find(|k| match parse_key_line(&k.public_key) {
        Some(key) => key.key_data() == offered.key_data(),
        None => {
            // The API validates keys on push, so this is a store problem;
            // the request id identifies the push without printing the key.
            warn!(request_id = %k.request_id, "ignoring a stored serial console key that does not parse");
            false
        }
    })
}

/// Parses an OpenSSH public key line, tolerating the extra whitespace and
/// line breaks that `SSHPublicKey` may carry.
fn parse_key_line(line: &str) -> Option<PublicKey> {
    let mut words = line.split_whitespace();
    let (algorithm, data) = (words.next()?, words.next()?);
    PublicKey::from_openssh(&format!("{algorithm} {data}")).ok()
}

/// `SHA256:…`, as `ssh-keygen -l` prints it; the only form in which keys are
/// ever logged or recorded.
pub(crate) fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFMBVoMdgT2vQmbqB5rPfyiWtLEbkRkyqZpxkJVwQ57Q";
    const OTHER: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAcNgWHAo2CIzQXcy2QqmYQtlTn0C28TzTBIN9a5tk1H";

    fn key(line: &str, request: &str) -> SerialKey {
        SerialKey {
            public_key: line.to_string(),
            request_id: request.to_string(),
            caller_arn: "arn:aws:iam::111122223333:user/a".to_string(),
        }
    }

    #[test]
    fn matches_on_key_data_not_comment_or_layout() {
        let offered = PublicKey::from_openssh(&format!("{ED} laptop")).expect("test key");
        let keys = [
            key("garbage", "r0"),
            key(OTHER, "r1"),
            key(
                &format!("\n{}\n  other-comment\n", ED.replace(' ', "\n")),
                "r2",
            ),
        ];
        assert_eq!(
            find_match(&keys, &offered).map(|k| k.request_id.as_str()),
            Some("r2")
        );
        assert!(find_match(&keys[..2], &offered).is_none());
    }

    #[test]
    fn fingerprint_is_sha256() {
        let offered = PublicKey::from_openssh(ED).expect("test key");
        assert!(fingerprint(&offered).starts_with("SHA256:"));
    }
}
