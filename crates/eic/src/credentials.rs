//! Short-lived credentials (`eic credentials issue`), used by boto3 and
//! the SDKs as temporary credentials with `X-Amz-Security-Token`.
//!
//! Stateless: the session token carries the access key id, principal ARN
//! and expiry, authenticated by an HMAC under a key kept in the data dir;
//! the secret is derived from the access key id under the same key. Any
//! server holding that key can check a token without a lookup, and nothing
//! grows with the number of credentials issued.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::data_dir::DataDir;
use crate::secret::Secret;

const TOKEN_PREFIX: &str = "EIC1.";
pub const KEY_FILE: &str = "credentials.key";
/// Longest validity `issue` accepts, as STS caps sessions at 12 hours.
pub const MAX_TTL: Duration = Duration::from_secs(12 * 3600);

pub struct TemporaryCredentials {
    key: Secret<[u8; 32]>,
}

/// What `issue` hands out.
pub struct Issued {
    pub access_key_id: String,
    pub secret_access_key: Secret<String>,
    pub session_token: String,
    pub expiration: SystemTime,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token this server issued, or not for this access key.
    Invalid,
    Expired,
}

impl TemporaryCredentials {
    /// The token key from the data dir (a server creates it on first use).
    pub fn load(data_dir: &DataDir) -> std::io::Result<TemporaryCredentials> {
        Ok(TemporaryCredentials {
            key: Secret::new(data_dir.key(KEY_FILE)?),
        })
    }

    pub fn issue(&self, principal_arn: &str, ttl: Duration, now: SystemTime) -> Issued {
        let mut id = [0u8; 10];
        getrandom::fill(&mut id).expect("the OS random source is available");
        let access_key_id = format!("ASIA{}", base32(&id));
        let expiration = now + ttl;
        let expires = expiration
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let payload = format!("{access_key_id}\n{expires}\n{principal_arn}");
        let mac = self.mac(b"token", payload.as_bytes());
        Issued {
            secret_access_key: Secret::new(self.secret_for(&access_key_id)),
            session_token: format!(
                "{TOKEN_PREFIX}{}.{}",
                URL_SAFE_NO_PAD.encode(&payload),
                URL_SAFE_NO_PAD.encode(mac)
            ),
            access_key_id,
            expiration,
        }
    }

    /// The principal ARN and secret behind a token presented with
    /// `access_key_id`, if the token is this server's and unexpired.
    pub fn resolve(
        &self,
        access_key_id: &str,
        token: &str,
        now: SystemTime,
    ) -> Result<(String, String), TokenError> {
        let rest = token
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(TokenError::Invalid)?;
        let (payload, mac) = rest.split_once('.').ok_or(TokenError::Invalid)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Invalid)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| TokenError::Invalid)?;
        if !bool::from(self.mac(b"token", &payload).as_slice().ct_eq(&mac)) {
            return Err(TokenError::Invalid);
        }
        let payload = String::from_utf8(payload).map_err(|_| TokenError::Invalid)?;
        let mut fields = payload.splitn(3, '\n');
        let (Some(id), Some(expires), Some(arn)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(TokenError::Invalid);
        };
        if id != access_key_id {
            return Err(TokenError::Invalid);
        }
        let expires: u64 = expires.parse().map_err(|_| TokenError::Invalid)?;
        if now >= UNIX_EPOCH + Duration::from_secs(expires) {
            return Err(TokenError::Expired);
        }
        Ok((arn.to_owned(), self.secret_for(id)))
    }

    fn secret_for(&self, access_key_id: &str) -> String {
        STANDARD.encode(self.mac(b"secret", access_key_id.as_bytes()))[..40].to_owned()
    }

    fn mac(&self, purpose: &[u8], data: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.expose()).expect("any key length");
        mac.update(purpose);
        mac.update(b"\0");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }
}

/// RFC 4648 base32 without padding: access key ids are uppercase
/// alphanumerics, as AWS's are.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_resolve_expire() {
        let dir = tempfile::tempdir().unwrap();
        let creds = TemporaryCredentials::load(&DataDir::for_server(dir.path()).unwrap()).unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let issued = creds.issue(
            "arn:aws:iam::111122223333:user/alice",
            Duration::from_secs(3600),
            now,
        );
        assert!(issued.access_key_id.starts_with("ASIA") && issued.access_key_id.len() == 20);
        let (arn, secret) = creds
            .resolve(&issued.access_key_id, &issued.session_token, now)
            .unwrap();
        assert_eq!(arn, "arn:aws:iam::111122223333:user/alice");
        assert_eq!(&secret, issued.secret_access_key.expose());
        assert_eq!(
            creds.resolve(
                &issued.access_key_id,
                &issued.session_token,
                now + Duration::from_secs(3600)
            ),
            Err(TokenError::Expired)
        );
        assert_eq!(
            creds.resolve("ASIAOTHER", &issued.session_token, now),
            Err(TokenError::Invalid)
        );
        // The same key after a restart; another data dir's key refuses it.
        let again = TemporaryCredentials::load(&DataDir::for_server(dir.path()).unwrap()).unwrap();
        assert!(again
            .resolve(&issued.access_key_id, &issued.session_token, now)
            .is_ok());
        let elsewhere = tempfile::tempdir().unwrap();
        let other =
            TemporaryCredentials::load(&DataDir::for_server(elsewhere.path()).unwrap()).unwrap();
        assert_eq!(
            other.resolve(&issued.access_key_id, &issued.session_token, now),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn tampered_tokens_are_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let creds = TemporaryCredentials::load(&DataDir::for_server(dir.path()).unwrap()).unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let issued = creds.issue(
            "arn:aws:iam::111122223333:user/alice",
            Duration::from_secs(60),
            now,
        );
        let (_, rest) = issued.session_token.split_once('.').unwrap();
        let (_, mac) = rest.split_once('.').unwrap();
        let forged_payload = format!(
            "{}\n9999999999\narn:aws:iam::111122223333:user/admin",
            issued.access_key_id
        );
        let forged = format!("EIC1.{}.{mac}", URL_SAFE_NO_PAD.encode(forged_payload));
        assert_eq!(
            creds.resolve(&issued.access_key_id, &forged, now),
            Err(TokenError::Invalid)
        );
        for junk in ["", "EIC1.", "EIC1.a.b", "x.y.z"] {
            assert_eq!(
                creds.resolve(&issued.access_key_id, junk, now),
                Err(TokenError::Invalid)
            );
        }
    }
}
