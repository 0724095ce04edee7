//! Each instance's own credential for the instance-facing API.
//!
//! A credential is `eici1.<instance-id>.<generation>.<mac>`, the MAC an
//! HMAC-SHA256 under a key in the data dir. Rotating or revoking bumps the
//! instance's generation in `instance-credentials.json`, which invalidates
//! every earlier credential of that instance at once; the server rereads
//! the file when it changes, so `eic instance-credential` takes effect on a
//! running server. An instance's credential names its instance, so it can
//! only ever read that instance's keys.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

const KEY_FILE: &str = "instance-credentials.key";
const GENERATIONS_FILE: &str = "instance-credentials.json";
const PREFIX: &str = "eici1";

pub struct InstanceCredentials {
    key: [u8; 32],
    generations_path: PathBuf,
    /// The generations as last read, and the file's mtime then.
    cache: Mutex<(Option<SystemTime>, BTreeMap<String, u64>)>,
}

impl InstanceCredentials {
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<InstanceCredentials> {
        std::fs::create_dir_all(data_dir)?;
        let key_path = data_dir.join(KEY_FILE);
        let key = match std::fs::read(&key_path) {
            Ok(bytes) => bytes.as_slice().try_into().map_err(|_| {
                std::io::Error::other(format!("{} must hold 32 bytes", key_path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
                write_private(&key_path, &key)?;
                key
            }
            Err(e) => return Err(e),
        };
        Ok(InstanceCredentials {
            key,
            generations_path: data_dir.join(GENERATIONS_FILE),
            cache: Mutex::new((None, BTreeMap::new())),
        })
    }

    /// The current credential of `instance_id`.
    pub fn credential(&self, instance_id: &str) -> std::io::Result<String> {
        let generation = self.generation(instance_id)?;
        Ok(self.credential_at(instance_id, generation))
    }

    /// Invalidates every credential of `instance_id` and returns the new one.
    pub fn rotate(&self, instance_id: &str) -> std::io::Result<String> {
        let mut generations = read_generations(&self.generations_path)?;
        let next = generations.get(instance_id).copied().unwrap_or(0) + 1;
        generations.insert(instance_id.to_owned(), next);
        let json = serde_json::to_vec_pretty(&generations).map_err(std::io::Error::other)?;
        // Written aside and renamed, so a server never reads half a file.
        let temp = self.generations_path.with_extension("json.tmp");
        write_private(&temp, &json)?;
        std::fs::rename(&temp, &self.generations_path)?;
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
        let modified = match std::fs::metadata(&self.generations_path) {
            Ok(m) => Some(m.modified()?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.0 != modified || modified.is_none() {
            *cache = (modified, read_generations(&self.generations_path)?);
        }
        Ok(cache.1.get(instance_id).copied().unwrap_or(0))
    }
}

fn read_generations(path: &Path) -> std::io::Result<BTreeMap<String, u64>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
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
