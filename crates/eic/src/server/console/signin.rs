//! One-time sign-in links, the way AWS federation's sign-in URLs work:
//! `eic console-url` signs a short-lived grant for one principal with the
//! console's key (in the data dir, shared with the server), and the console
//! lets it be redeemed once.
//!
//! A link is `<base>/signin?token=<payload>.<mac>`: the payload is
//! base64url JSON (principal ARN, issue and expiry times, a 128-bit nonce)
//! and the mac is HMAC-SHA256 over a domain label and the payload. The
//! nonce is what "once" is counted on (server side, in the store), so the
//! link carries no secret but the mac, and leaks nothing but who it is for.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use eic_store::unix_millis;

/// The longest a link may live: it is for pasting into a browser now.
pub const MAX_LINK_TTL: Duration = Duration::from_secs(3600);
/// `eic console-url`'s default.
pub const DEFAULT_LINK_TTL: Duration = Duration::from_secs(300);
/// A token longer than this is refused before any decoding.
const MAX_TOKEN_LEN: usize = 2048;
const MAC_LABEL: &[u8] = b"eic-console-signin-v1\n";
const KEY_FILE: &str = "console-signin.key";
/// Where the running console says its links point (its public URL, or
/// the address it bound, which `--console-listen` may have chosen).
const BASE_URL_FILE: &str = "console-url";

/// Written by the server at start, for `eic console-url`.
pub fn write_base_url(data_dir: &Path, url: &str) -> anyhow::Result<()> {
    let path = data_dir.join(BASE_URL_FILE);
    let aside = data_dir.join(format!(".{BASE_URL_FILE}.tmp"));
    std::fs::write(&aside, format!("{url}\n"))?;
    std::fs::rename(&aside, &path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// The running console's base URL, if a server wrote one.
pub fn read_base_url(data_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join(BASE_URL_FILE)).ok()?;
    let url = text.trim();
    (url.starts_with("http://") || url.starts_with("https://")).then(|| url.to_owned())
}

/// The console's signing key: 32 random bytes, never printed.
pub struct SigninKey([u8; 32]);

impl std::fmt::Debug for SigninKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigninKey(..)")
    }
}

impl SigninKey {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(KEY_FILE)
    }

    /// The data dir's key, made (mode 0600) on first use by the server or
    /// by `eic console-url`, whichever comes first.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<SigninKey> {
        let path = Self::path(data_dir);
        match std::fs::read(&path) {
            Ok(bytes) => Self::from_bytes(&bytes, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key)
                    .map_err(|e| anyhow::anyhow!("no randomness for the console key: {e}"))?;
                let created = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path);
                match created {
                    Ok(mut file) => {
                        file.write_all(&key)?;
                        file.sync_all()?;
                        Ok(SigninKey(key))
                    }
                    // Another process made it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::from_bytes(&std::fs::read(&path)?, &path)
                    }
                    Err(e) => Err(anyhow::anyhow!("cannot create {}: {e}", path.display())),
                }
            }
            Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        }
    }

    fn from_bytes(bytes: &[u8], path: &Path) -> anyhow::Result<SigninKey> {
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} is not a 32-byte key", path.display()))?;
        Ok(SigninKey(key))
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes a key of any length");
        mac.update(MAC_LABEL);
        mac.update(payload.as_bytes());
        mac
    }

    /// A link's token for `principal_arn`, valid from `now` for `ttl`.
    pub fn issue(
        &self,
        principal_arn: &str,
        now: SystemTime,
        ttl: Duration,
    ) -> anyhow::Result<String> {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let grant = Grant {
            principal_arn: principal_arn.to_owned(),
            issued_at_ms: unix_millis(now),
            expires_at_ms: unix_millis(now + ttl),
            nonce: hex::encode(nonce),
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&grant)?);
        let mac = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes());
        Ok(format!("{payload}.{mac}"))
    }

    /// The grant in `token` if this key signed it and it has not expired
    /// at `now`; whether it was used already is the caller's to check.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Grant, LinkRefusal> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(LinkRefusal::Malformed);
        }
        let (payload, mac) = token.split_once('.').ok_or(LinkRefusal::Malformed)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| LinkRefusal::Malformed)?;
        // verify_slice compares in constant time.
        self.mac(payload)
            .verify_slice(&mac)
            .map_err(|_| LinkRefusal::BadSignature)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| LinkRefusal::Malformed)?;
        let grant: Grant = serde_json::from_slice(&json).map_err(|_| LinkRefusal::Malformed)?;
        let now_ms = unix_millis(now);
        if now_ms >= grant.expires_at_ms {
            return Err(LinkRefusal::Expired);
        }
        if grant.expires_at_ms.saturating_sub(grant.issued_at_ms) > MAX_LINK_TTL.as_millis() as u64
        {
            return Err(LinkRefusal::Malformed);
        }
        Ok(grant)
    }
}

/// What a sign-in link grants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    #[serde(rename = "p")]
    pub principal_arn: String,
    #[serde(rename = "iat")]
    pub issued_at_ms: u64,
    #[serde(rename = "exp")]
    pub expires_at_ms: u64,
    /// Hex; what a redemption is counted on.
    #[serde(rename = "n")]
    pub nonce: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefusal {
    #[error("This sign-in link is not one eic made.")]
    Malformed,
    #[error("This sign-in link was not signed by this console.")]
    BadSignature,
    #[error("This sign-in link has expired; ask for a new one.")]
    Expired,
    #[error("This sign-in link was used already; each works once.")]
    Used,
    #[error("This sign-in link is for a principal this console no longer knows.")]
    UnknownPrincipal,
    #[error("This sign-in link was made before the console last started, which does not know whether it was used; ask for a new one.")]
    BeforeStart,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> SigninKey {
        SigninKey([7u8; 32])
    }

    const ARN: &str = "arn:aws:iam::111122223333:user/alice";

    #[test]
    fn a_link_verifies_until_it_expires_and_carries_its_principal() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let token = key().issue(ARN, now, Duration::from_secs(300)).unwrap();
        let grant = key()
            .verify(&token, now + Duration::from_secs(299))
            .unwrap();
        assert_eq!(grant.principal_arn, ARN);
        assert_eq!(grant.nonce.len(), 32);
        assert_eq!(
            key().verify(&token, now + Duration::from_secs(300)),
            Err(LinkRefusal::Expired)
        );
        let other = key().issue(ARN, now, Duration::from_secs(300)).unwrap();
        assert_ne!(token, other, "every link has its own nonce");
    }

    #[test]
    fn another_key_or_a_changed_payload_is_refused() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let token = key().issue(ARN, now, Duration::from_secs(300)).unwrap();
        assert_eq!(
            SigninKey([8u8; 32]).verify(&token, now),
            Err(LinkRefusal::BadSignature)
        );
        let (payload, mac) = token.split_once('.').unwrap();
        let mut grant: Grant =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        grant.principal_arn = "arn:aws:iam::111122223333:user/admin".into();
        let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&grant).unwrap());
        assert_eq!(
            key().verify(&format!("{forged}.{mac}"), now),
            Err(LinkRefusal::BadSignature)
        );
        assert_eq!(key().verify("no-dot", now), Err(LinkRefusal::Malformed));
        assert_eq!(
            key().verify(&"a".repeat(5000), now),
            Err(LinkRefusal::Malformed)
        );
    }

    #[test]
    fn the_key_file_is_made_once_and_read_after() {
        let dir = tempfile::tempdir().unwrap();
        let first = SigninKey::load_or_create(dir.path()).unwrap();
        let again = SigninKey::load_or_create(dir.path()).unwrap();
        assert_eq!(first.0, again.0);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(SigninKey::path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(format!("{first:?}"), "SigninKey(..)");
    }

    proptest! {
        #[test]
        fn any_token_is_refused_or_verified_without_a_panic(token in ".{0,300}") {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
            prop_assert!(key().verify(&token, now).is_err());
        }
    }
}
