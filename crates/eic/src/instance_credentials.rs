//! Each instance's own credential for the instance-facing API.
//!
//! A credential is `eici1.<instance-id>.<generation>.<mac>`, the MAC an
//! HMAC-SHA256 under a key in the data dir. Rotating or revoking bumps the
//! instance's generation in `instance-credentials.json`, which invalidates
//! every earlier credential of that instance at once; the server rereads
//! the file when it changes, so `eic instance-credential` takes effect on a
//! running server. An instance's credential names its instance, so it can
//! only ever read that instance's keys.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::data_dir::{load_or_create_key, SettingsFile};

const KEY_FILE: &str = "instance-credentials.key";
const GENERATIONS_FILE: &str = "instance-credentials.json";
const PREFIX: &str = "eici1";

pub struct InstanceCredentials {
    key: [u8; 32],
    generations: SettingsFile<u64>,
}

impl InstanceCredentials {
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<InstanceCredentials> {
        Ok(InstanceCredentials {
            key: load_or_create_key(&data_dir.join(KEY_FILE))?,
            generations: SettingsFile::new(data_dir.join(GENERATIONS_FILE)),
        })
    }

    /// The current credential of `instance_id`.
    pub fn credential(&self, instance_id: &str) -> std::io::Result<String> {
        let generation = self.generation(instance_id)?;
        Ok(self.credential_at(instance_id, generation))
    }

    /// Invalidates every credential of `instance_id` and returns the new one.
    pub fn rotate(&self, instance_id: &str) -> std::io::Result<String> {
        let next = self
            .generations
            .update(instance_id, |current| current.unwrap_or(0) + 1)?;
        Ok(self.credential_at(instance_id, next))
    }

    /// The instance a presented credential belongs to, if it is current.
    pub fn verify(&self, credential: &str) -> Option<String> {
        let mut parts = credential.split('.');
        let (Some(PREFIX), Some(instance), Some(generation), Some(_), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let generation: u64 = generation.parse().ok()?;
        let expected = self.credential_at(instance, generation);
        if !bool::from(expected.as_bytes().ct_eq(credential.as_bytes())) {
            return None;
        }
        (self.generation(instance).ok()? == generation).then(|| instance.to_owned())
    }

    fn credential_at(&self, instance_id: &str, generation: u64) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(format!("{instance_id}\n{generation}").as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{PREFIX}.{instance_id}.{generation}.{tag}")
    }

    fn generation(&self, instance_id: &str) -> std::io::Result<u64> {
        Ok(self.generations.get(instance_id)?.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_verify_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let creds = InstanceCredentials::load_or_create(dir.path()).unwrap();
        let first = creds.credential("i-abcd1234").unwrap();
        assert_eq!(creds.verify(&first).as_deref(), Some("i-abcd1234"));
        // Another process (the CLI) rotates; this one sees it.
        let cli = InstanceCredentials::load_or_create(dir.path()).unwrap();
        let second = cli.rotate("i-abcd1234").unwrap();
        assert_eq!(creds.verify(&first), None);
        assert_eq!(creds.verify(&second).as_deref(), Some("i-abcd1234"));
        // Forged or foreign credentials.
        let forged = second.replace("i-abcd1234", "i-0123456789abcdef0");
        assert_eq!(creds.verify(&forged), None);
        assert_eq!(creds.verify("eici1.i-abcd1234.1.AAAA"), None);
        assert_eq!(creds.verify(""), None);
        let other =
            InstanceCredentials::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        assert_eq!(other.verify(&second), None);
    }
}
