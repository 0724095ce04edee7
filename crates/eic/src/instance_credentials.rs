//! Each instance's own credential for the instance-facing API.
//!
//! A credential is `eici1.<instance-id>.<generation>.<mac>`, the MAC an
//! HMAC-SHA256 under a key in the data dir. Rotating or revoking bumps the
//! instance's generation in the runtime settings (`instance-credentials`,
//! see [`crate::settings`]), which invalidates every earlier credential of
//! that instance at once, on every running node. An instance's credential
//! names its instance, so it can only ever read that instance's keys.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use eic_store::{Settings, StoreError};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::data_dir::DataDir;
use crate::secret::Secret;

const KEY_FILE: &str = "instance-credentials.key";
const PREFIX: &str = "eici1";

pub struct InstanceCredentials {
    key: Secret<[u8; 32]>,
    generations: Arc<dyn Settings>,
}

impl InstanceCredentials {
    /// The key from the data dir, the generations from `generations`.
    pub fn load(
        data_dir: &DataDir,
        generations: Arc<dyn Settings>,
    ) -> std::io::Result<InstanceCredentials> {
        Ok(InstanceCredentials {
            key: Secret::new(data_dir.key(KEY_FILE)?),
            generations,
        })
    }

    /// The current credential of `instance_id`.
    pub fn credential(&self, instance_id: &str) -> Result<Secret<String>, StoreError> {
        let generation = self.generation(instance_id)?;
        Ok(self.credential_at(instance_id, generation))
    }

    /// Invalidates every credential of `instance_id` and returns the new one.
    pub async fn rotate(&self, instance_id: &str) -> Result<Secret<String>, StoreError> {
        let next = self.generations.increment(instance_id).await?;
        Ok(self.credential_at(instance_id, next))
    }

    /// The instance a presented credential belongs to, if it is current;
    /// an error when the current generation cannot be known.
    pub fn verify(&self, credential: &str) -> Result<Option<String>, StoreError> {
        let mut parts = credential.split('.');
        let (Some(PREFIX), Some(instance), Some(generation), Some(_), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Ok(None);
        };
        let Ok(generation) = generation.parse::<u64>() else {
            return Ok(None);
        };
        let expected = self.credential_at(instance, generation);
        if !bool::from(expected.expose().as_bytes().ct_eq(credential.as_bytes())) {
            return Ok(None);
        }
        Ok((self.generation(instance)? == generation).then(|| instance.to_owned()))
    }

    fn credential_at(&self, instance_id: &str, generation: u64) -> Secret<String> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.expose()).expect("any key length");
        mac.update(format!("{instance_id}\n{generation}").as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        Secret::new(format!("{PREFIX}.{instance_id}.{generation}.{tag}"))
    }

    fn generation(&self, instance_id: &str) -> Result<u64, StoreError> {
        match self.generations.get(instance_id)? {
            None => Ok(0),
            Some(value) => value.as_u64().ok_or_else(|| {
                StoreError::Unavailable(format!(
                    "credential generation of {instance_id} is not a counter"
                ))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data_dir::SettingsFile;
    use std::path::Path;

    fn open(dir: &Path) -> InstanceCredentials {
        let generations = Arc::new(SettingsFile::new(dir.join("instance-credentials.json")));
        InstanceCredentials::load(&DataDir::for_server(dir).unwrap(), generations).unwrap()
    }

    #[tokio::test]
    async fn issue_verify_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let creds = open(dir.path());
        let first = creds.credential("i-abcd1234").unwrap();
        let verify = |c: &str| creds.verify(c).unwrap();
        assert_eq!(verify(first.expose()).as_deref(), Some("i-abcd1234"));
        // Another process (the CLI) rotates; this one sees it.
        let second = open(dir.path()).rotate("i-abcd1234").await.unwrap();
        assert_eq!(verify(first.expose()), None);
        assert_eq!(verify(second.expose()).as_deref(), Some("i-abcd1234"));
        // Forged or foreign credentials.
        let forged = second.expose().replace("i-abcd1234", "i-0123456789abcdef0");
        assert_eq!(verify(&forged), None);
        assert_eq!(verify("eici1.i-abcd1234.1.AAAA"), None);
        assert_eq!(verify(""), None);
        let other = open(tempfile::tempdir().unwrap().path());
        assert_eq!(other.verify(second.expose()).unwrap(), None);
    }

    #[test]
    fn unreadable_generations_refuse() {
        let dir = tempfile::tempdir().unwrap();
        let creds = open(dir.path());
        let first = creds.credential("i-abcd1234").unwrap();
        std::fs::write(dir.path().join("instance-credentials.json"), "{").unwrap();
        assert!(creds.verify(first.expose()).is_err());
        std::fs::write(
            dir.path().join("instance-credentials.json"),
            r#"{"i-abcd1234": "zero"}"#,
        )
        .unwrap();
        assert!(creds.verify(first.expose()).is_err());
    }
}
