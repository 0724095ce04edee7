//! The key `eic ssh` logs in with: ed25519, made in memory for one login,
//! handed to ssh as a file in a directory only this user can enter, and
//! removed when ssh exits ([`KeyFile`] is removed when dropped).

use std::fs::{OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use ssh_key::private::{Ed25519Keypair, KeypairData};
use ssh_key::{LineEnding, PrivateKey};

pub struct SessionKey {
    private: PrivateKey,
    /// `ssh-ed25519 BASE64`, what is pushed.
    pub public_openssh: String,
}

impl std::fmt::Debug for SessionKey {
    /// The public half only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKey")
            .field("public", &self.public_openssh)
            .finish_non_exhaustive()
    }
}

impl SessionKey {
    pub fn generate() -> anyhow::Result<SessionKey> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| anyhow::anyhow!("no randomness for the session key: {e}"))?;
        let keypair = Ed25519Keypair::from_seed(&seed);
        seed.fill(0);
        let private = PrivateKey::new(KeypairData::Ed25519(keypair), "eic ssh")
            .context("cannot make the session key")?;
        let public_openssh = private
            .public_key()
            .to_openssh()
            .context("cannot encode the session key")?;
        // The comment stays local: what is pushed is TYPE BASE64.
        let public_openssh = public_openssh
            .split(' ')
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        Ok(SessionKey {
            private,
            public_openssh,
        })
    }

    /// The private half, for an SSH client in this process (the console's).
    pub fn private_key(&self) -> &PrivateKey {
        &self.private
    }

    /// Writes the private key (OpenSSH format, mode 0600) into a fresh
    /// directory (mode 0700) under `$XDG_RUNTIME_DIR`, or the temporary
    /// directory when there is none.
    pub fn write_private(&self) -> anyhow::Result<KeyFile> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("eic-ssh.")
            .permissions(Permissions::from_mode(0o700))
            .tempdir_in(&base)
            .with_context(|| format!("cannot make a private directory in {}", base.display()))?;
        let path = dir.path().join("id_ed25519");
        self.write_private_file(&path)?;
        Ok(KeyFile { dir, path })
    }

    /// Writes the private key to `path` (mode 0600, never over an existing
    /// file) and the public one to `path.pub`: the key `eic ssh-config`
    /// makes once for plain ssh.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        self.write_private_file(path)?;
        let public = path.with_extension("pub");
        std::fs::write(&public, format!("{} eic-ssh-config\n", self.public_openssh))
            .with_context(|| format!("cannot write {}", public.display()))
    }

    fn write_private_file(&self, path: &Path) -> anyhow::Result<()> {
        let text = self
            .private
            .to_openssh(LineEnding::LF)
            .context("cannot encode the key")?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.write_all(text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

/// The private key on disk and its directory, both removed on drop.
pub struct KeyFile {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl KeyFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The private directory, for other per-login files (known_hosts).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_fresh_key_is_private_and_gone_after_the_login() {
        let key = SessionKey::generate().unwrap();
        assert!(key
            .public_openssh
            .starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"));
        assert_eq!(key.public_openssh.split(' ').count(), 2);
        assert!(!format!("{key:?}").contains("PRIVATE"));
        let file = key.write_private().unwrap();
        assert_eq!(std::fs::metadata(file.dir()).unwrap().mode() & 0o777, 0o700);
        assert_eq!(
            std::fs::metadata(file.path()).unwrap().mode() & 0o777,
            0o600
        );
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert!(text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        // The file is the private half of what is pushed.
        let parsed = PrivateKey::from_openssh(&text).unwrap();
        assert!(parsed
            .public_key()
            .to_openssh()
            .unwrap()
            .starts_with(&key.public_openssh));
        let dir = file.dir().to_owned();
        drop(file);
        assert!(!dir.exists());
    }

    #[test]
    fn every_login_gets_its_own_key() {
        let a = SessionKey::generate().unwrap();
        let b = SessionKey::generate().unwrap();
        assert_ne!(a.public_openssh, b.public_openssh);
    }
}
