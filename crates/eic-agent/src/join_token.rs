//! The text of a join token, a pure format: what `eic join-token create`
//! prints once and `eic agent join --token` reads.
//!
//! `eicjoin1.<id>.<secret>.<ca>`: the id (16 lowercase hex digits) names
//! the token in `list` and `revoke` and is not secret; the secret is 32
//! random bytes in unpadded base64url, of which the store keeps only the
//! SHA-256; `<ca>` is the lowercase hex SHA-256 of the DER of the CA the
//! instance-facing listener's certificate chains to, or `insecure` when
//! that listener serves plain http. Carrying the CA's hash (as kubeadm's
//! `--discovery-token-ca-cert-hash` does, but in the one string an operator
//! copies) lets the joining machine trust that CA and nothing else, so
//! whoever intercepts the join can neither pose as the server nor learn a
//! token it could replay.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::secret::Secret;

const PREFIX: &str = "eicjoin1";
const INSECURE: &str = "insecure";

/// A parsed token. Debug shows the id only.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinTokenText {
    pub id: String,
    pub secret: Secret<String>,
    /// Hex SHA-256 of the trusted CA's DER; `None`: plain http.
    pub ca_sha256: Option<String>,
}

impl std::fmt::Debug for JoinTokenText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinTokenText")
            .field("id", &self.id)
            .field("ca_sha256", &self.ca_sha256)
            .finish_non_exhaustive()
    }
}

impl JoinTokenText {
    /// A new token from the OS random source, for a listener whose CA has
    /// `ca_sha256` (hex), if it serves TLS.
    pub fn generate(ca_sha256: Option<String>) -> std::io::Result<JoinTokenText> {
        let mut id = [0u8; 8];
        let mut secret = [0u8; 32];
        getrandom::fill(&mut id).map_err(|e| std::io::Error::other(e.to_string()))?;
        getrandom::fill(&mut secret).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(JoinTokenText {
            id: hex::encode(id),
            secret: Secret::new(URL_SAFE_NO_PAD.encode(secret)),
            ca_sha256,
        })
    }

    /// The one line an operator hands to `eic agent join --token`.
    pub fn render(&self) -> Secret<String> {
        Secret::new(format!(
            "{PREFIX}.{}.{}.{}",
            self.id,
            self.secret.expose(),
            self.ca_sha256.as_deref().unwrap_or(INSECURE)
        ))
    }

    /// Parses a token exactly; anything else is `None` (and is answered as
    /// an unknown token: the format says nothing about which ids exist).
    pub fn parse(text: &str) -> Option<JoinTokenText> {
        let mut parts = text.trim().split('.');
        let (Some(PREFIX), Some(id), Some(secret), Some(ca), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let decoded = URL_SAFE_NO_PAD.decode(secret).ok()?;
        let ca_sha256 = match ca {
            INSECURE => None,
            hash if is_lower_hex(hash, 64) => Some(hash.to_owned()),
            _ => return None,
        };
        (is_lower_hex(id, 16) && decoded.len() == 32).then(|| JoinTokenText {
            id: id.to_owned(),
            secret: Secret::new(secret.to_owned()),
            ca_sha256,
        })
    }

    /// What the store keeps of the secret: hex SHA-256. The secret is 256
    /// random bits, so no slow hash is needed to resist guessing.
    pub fn secret_sha256(&self) -> String {
        hex::encode(Sha256::digest(self.secret.expose().as_bytes()))
    }
}

fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_and_hides_the_secret() {
        let ca = "ab".repeat(32);
        let token = JoinTokenText::generate(Some(ca.clone())).unwrap();
        let text = token.render();
        assert!(text.expose().starts_with("eicjoin1."));
        assert!(text.expose().ends_with(&ca));
        let parsed = JoinTokenText::parse(text.expose()).unwrap();
        assert_eq!(parsed, token);
        assert_eq!(parsed.secret_sha256(), token.secret_sha256());
        assert!(!format!("{parsed:?}").contains(token.secret.expose()));
        let insecure = JoinTokenText::generate(None).unwrap();
        assert!(insecure.render().expose().ends_with(".insecure"));
        assert_eq!(
            JoinTokenText::parse(insecure.render().expose())
                .unwrap()
                .ca_sha256,
            None
        );
    }

    #[test]
    fn refuses_anything_else() {
        let good = JoinTokenText::generate(Some("0".repeat(64))).unwrap();
        let text = good.render().expose().clone();
        let secret = good.secret.expose();
        for bad in [
            String::new(),
            text.replace("eicjoin1", "eicjoin2"),
            format!("{text}.x"),
            text.replace(&good.id, "0123456789ABCDEF"),
            text.replace(&good.id, "0123"),
            text.replace(secret, "short"),
            text.replace(&"0".repeat(64), &"0".repeat(63)),
            text.replace(&"0".repeat(64), &"A".repeat(64)),
        ] {
            assert_eq!(JoinTokenText::parse(&bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in "\\PC{0,200}") {
            let _ = JoinTokenText::parse(&text);
        }

        #[test]
        fn parse_is_exact(id in "[0-9a-f]{16}", secret in proptest::array::uniform32(any::<u8>())) {
            let text = format!("eicjoin1.{id}.{}.insecure", URL_SAFE_NO_PAD.encode(secret));
            let parsed = JoinTokenText::parse(&text).unwrap();
            let rendered = parsed.render();
            prop_assert_eq!(rendered.expose(), &text);
        }
    }
}
