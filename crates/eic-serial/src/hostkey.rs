//! The gateway's own SSH host key: AWS publishes one fingerprint per Region,
//! and a self-hosted gateway must present a stable key of its own so that
//! clients can pin it.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::LineEnding;
use russh::keys::{HashAlg, PrivateKey};
use tracing::{info, warn};

/// Loads the host key kept at `path`, or creates an ed25519 key there (mode
/// 0600) on first start.
///
/// Creation is atomic: the key is written to a private temporary file and
/// hard-linked into place, so two gateways starting together never see a
/// half-written key, and the loser of that race loads the winner's key.
pub fn load_or_create_host_key(path: &Path) -> io::Result<PrivateKey> {
    match fs::read_to_string(path) {
        Ok(pem) => return parse(path, &pem),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }

    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| io::Error::other(e.to_string()))?;
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    seed.fill(0);
    key.set_comment("eic-serial host key");
    let pem = key.to_openssh(LineEnding::LF).map_err(invalid)?;

    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| invalid("host key path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    // A file left by a crashed start with the same pid would block create_new.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(pem.as_bytes())?;
        file.sync_all()?;
    }
    let linked = fs::hard_link(&tmp, path);
    if let Err(e) = fs::remove_file(&tmp) {
        warn!(path = %tmp.display(), error = %e, "could not remove temporary host key file");
    }
    match linked {
        Ok(()) => {
            info!(path = %path.display(), fingerprint = %host_key_fingerprint(&key), "created serial console host key");
            Ok(key)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            parse(path, &fs::read_to_string(path)?)
        }
        Err(e) => Err(e),
    }
}

/// The host key's fingerprint as `ssh-keygen -lf` prints it (`SHA256:…`),
/// which operators publish for their users to check.
pub fn host_key_fingerprint(key: &PrivateKey) -> String {
    key.public_key().fingerprint(HashAlg::Sha256).to_string()
}

/// The host key's public half as `type base64`, without the comment: the
/// line a client puts in known_hosts to pin the gateway.
pub fn host_public_key_line(key: &PrivateKey) -> io::Result<String> {
    let mut public = key.public_key().clone();
    public.set_comment("");
    public.to_openssh().map_err(invalid)
}

fn parse(path: &Path, pem: &str) -> io::Result<PrivateKey> {
    let key = PrivateKey::from_openssh(pem).map_err(invalid)?;
    if key.is_encrypted() {
        return Err(invalid(
            "the host key is passphrase-protected; the gateway needs it in clear",
        ));
    }
    if fs::metadata(path)?.permissions().mode() & 0o077 != 0 {
        warn!(path = %path.display(), "host key file is readable by other users; chmod 600 it");
    }
    Ok(key)
}

fn invalid(e: impl ToString) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}
