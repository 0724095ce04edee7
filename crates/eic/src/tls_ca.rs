//! `tls_ca`: the TLS trust of the instance-facing listener (`[instance_api]
//! tls`): with `"auto"`, a CA of its own in the data dir's pki dir and the
//! server leaf it issues; for commands, the trust anchor instances are given
//! ([`instance_api_trust`]) and its fingerprint ([`fingerprint`]).
//!
//! The TLS CA is not the blob signing CA (`pki/ca.pem`): signing key blobs
//! and authenticating the listener are different purposes, so a key that
//! leaks for one does not grant the other. The server creates it on its
//! first start with `tls = "auto"`; commands only read it.
//!
//! The leaf lives [`LEAF_LIFETIME`] and the server issues a new one when
//! half of that has passed ([`renewal_due`]), without a restart.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use eic_keyblob::{issue_tls_server, CertificateAuthority};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

use crate::config::{Config, InstanceApiConfig, InstanceApiTls};
use crate::data_dir::{write_new_private, DataDir};
// The trust anchor and its fingerprint are what instances are given and
// check, so they live with the agent (eic-agent) and are re-exported here.
pub use eic_agent::trust::{fingerprint, pem_certificate, TrustAnchor};

/// In the data dir's pki dir, beside the signing CA's `ca.pem`.
pub const CERT_FILE: &str = "tls-ca.pem";
pub const KEY_FILE: &str = "tls-ca.key";
pub const COMMON_NAME: &str = "eic instance-api TLS CA";
/// How long a server leaf lives; it is replaced after half of it.
pub const LEAF_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Tolerates instances whose clocks run a little behind.
const BACKDATE_SECS: u64 = 300;

/// The trust anchor of the instance-facing listener, as a command sees it
/// (nothing is created): with `tls = "auto"` the TLS CA, with the
/// operator's files the last certificate of the chain file, with no TLS (or
/// no `[instance_api]`) `None`.
pub fn instance_api_trust(
    config: &Config,
    data_dir: &DataDir,
) -> anyhow::Result<Option<TrustAnchor>> {
    let Some(tls) = config.instance_api.as_ref().and_then(|i| i.tls.as_ref()) else {
        return Ok(None);
    };
    match tls {
        InstanceApiTls::Auto => auto_trust(data_dir).map(Some),
        InstanceApiTls::Files(files) => last_certificate(&files.certificate, "").map(Some),
    }
}

/// The TLS CA itself, as a command sees it (nothing is created).
pub fn auto_trust(data_dir: &DataDir) -> anyhow::Result<TrustAnchor> {
    last_certificate(
        &data_dir.path().join("pki").join(CERT_FILE),
        " (the server creates it on its first start with tls = \"auto\")",
    )
}

/// The TLS CA's certificate when the data dir has one: what eic's own
/// listeners under `tls = "auto"` chain to (the endpoints' among them),
/// which the browser console trusts when it dials an endpoint.
pub fn own_ca(data_dir: &DataDir) -> anyhow::Result<Option<CertificateDer<'static>>> {
    if !data_dir.path().join("pki").join(CERT_FILE).exists() {
        return Ok(None);
    }
    let anchor = auto_trust(data_dir)?;
    let der = CertificateDer::from_pem_slice(anchor.pem.as_bytes())
        .context("the TLS CA's certificate is not PEM")?;
    Ok(Some(der))
}

/// The last certificate of a PEM file: a chain's CA.
fn last_certificate(path: &Path, hint: &str) -> anyhow::Result<TrustAnchor> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {}{hint}", path.display()))?;
    let last = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not PEM", path.display()))?
        .pop()
        .with_context(|| format!("{} holds no certificate", path.display()))?;
    Ok(TrustAnchor {
        pem: pem_certificate(&last),
        fingerprint: fingerprint(&last),
    })
}

/// The names the auto certificate carries: the listen IP (unless it is the
/// unspecified address, which no client dials), `public_url`'s host, then
/// `tls_names`.
pub fn server_names(settings: &InstanceApiConfig) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    if !settings.listen.ip().is_unspecified() {
        names.push(settings.listen.ip().to_string());
    }
    if let Some(url) = &settings.public_url {
        let uri: http::Uri = url
            .parse()
            .with_context(|| format!("[instance_api] public_url {url:?} is not a URL"))?;
        let host = uri
            .host()
            .with_context(|| format!("[instance_api] public_url {url:?} has no host"))?;
        names.push(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        );
    }
    names.extend(settings.tls_names.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    anyhow::ensure!(
        !names.is_empty(),
        "[instance_api] tls = \"auto\" on {} needs a name: set tls_names or public_url",
        settings.listen
    );
    Ok(names)
}

/// The server's side of `tls = "auto"`: the TLS CA and the names it
/// issues the listener's certificate for.
pub struct AutoCertificate {
    ca: CertificateAuthority,
    names: Vec<String>,
    provider: Arc<CryptoProvider>,
}

/// A server leaf, ready for rustls.
pub struct Issued {
    pub key: Arc<CertifiedKey>,
    pub not_after: u64,
}

impl AutoCertificate {
    /// Loads the TLS CA from `pki_dir`, or creates it there (the server
    /// only).
    pub fn load_or_create(
        pki_dir: &Path,
        names: Vec<String>,
        now: SystemTime,
    ) -> anyhow::Result<AutoCertificate> {
        let cert_path = pki_dir.join(CERT_FILE);
        let key_path = pki_dir.join(KEY_FILE);
        let ca = if cert_path.exists() {
            CertificateAuthority::from_pem(
                &std::fs::read_to_string(&cert_path)
                    .with_context(|| format!("cannot read {}", cert_path.display()))?,
                &std::fs::read_to_string(&key_path)
                    .with_context(|| format!("cannot read {}", key_path.display()))?,
            )
            .map_err(|e| anyhow::anyhow!("{}: {e}", cert_path.display()))?
        } else {
            let now_s = unix(now);
            let ca = CertificateAuthority::generate(
                COMMON_NAME,
                now_s.saturating_sub(BACKDATE_SECS),
                now_s + CA_LIFETIME.as_secs(),
            )
            .map_err(|e| anyhow::anyhow!("cannot create the TLS CA: {e}"))?;
            // The key first: a certificate on disk always has its key.
            write_new_private(&key_path, ca.key_pem().as_bytes())?;
            write_new_private(&cert_path, ca.cert_pem().as_bytes())?;
            tracing::info!(
                path = %cert_path.display(),
                fingerprint = %fingerprint(ca.cert_der()),
                "created the instance-api TLS CA"
            );
            ca
        };
        Ok(AutoCertificate {
            ca,
            names,
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        })
    }

    /// Issues a leaf for the names, valid from a little before `now` for
    /// [`LEAF_LIFETIME`]; served with the CA after it.
    pub fn issue(&self, now: SystemTime) -> anyhow::Result<Issued> {
        let now_s = unix(now);
        let not_after = now_s + LEAF_LIFETIME.as_secs();
        let leaf = issue_tls_server(
            &self.ca,
            &self.names,
            now_s.saturating_sub(BACKDATE_SECS),
            not_after,
        )
        .map_err(|e| anyhow::anyhow!("cannot issue the instance-api TLS certificate: {e}"))?;
        let chain = vec![
            CertificateDer::from(leaf.cert_der().to_vec()),
            CertificateDer::from(self.ca.cert_der().to_vec()),
        ];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_pkcs8_der().to_vec()));
        let key = CertifiedKey::from_der(chain, key, &self.provider)
            .context("the issued TLS key does not fit its certificate")?;
        Ok(Issued {
            key: Arc::new(key),
            not_after,
        })
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(self.ca.cert_der())
    }
}

/// Whether a leaf valid until `not_after` is past half its life at `now`.
pub fn renewal_due(not_after: u64, now: SystemTime) -> bool {
    unix(now) + LEAF_LIFETIME.as_secs() / 2 >= not_after
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_sha256_of_the_der_in_lowercase_hex() {
        // SHA-256 of the empty string and of "abc", the FIPS 180-2 vectors.
        assert_eq!(
            fingerprint(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            fingerprint(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn pem_round_trips_the_der() {
        let der: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let pem = pem_certificate(&der);
        let back = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(back.as_ref(), der.as_slice());
        assert!(pem.lines().all(|l| l.len() <= 64));
    }

    #[test]
    fn renewal_is_due_after_half_the_leaf_lifetime() {
        let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let not_after = unix(start) + LEAF_LIFETIME.as_secs();
        assert!(!renewal_due(not_after, start));
        assert!(!renewal_due(
            not_after,
            start + LEAF_LIFETIME / 2 - Duration::from_secs(1)
        ));
        assert!(renewal_due(not_after, start + LEAF_LIFETIME / 2));
    }

    #[test]
    fn the_ca_is_created_once_and_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let now = SystemTime::now();
        let first = AutoCertificate::load_or_create(&pki, vec!["127.0.0.1".into()], now).unwrap();
        let again = AutoCertificate::load_or_create(&pki, vec!["127.0.0.1".into()], now).unwrap();
        assert_eq!(first.fingerprint(), again.fingerprint());
        use std::os::unix::fs::PermissionsExt;
        for file in [CERT_FILE, KEY_FILE] {
            let mode = std::fs::metadata(pki.join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        let issued = first.issue(now).unwrap();
        assert_eq!(issued.key.cert.len(), 2);
        assert_eq!(issued.key.cert[1].as_ref(), first.ca.cert_der());
    }

    fn config(dir: &Path, instance_api: &str) -> Config {
        let path = dir.join("eic.toml");
        std::fs::write(
            &path,
            format!(
                "region = \"us-west-2\"\ndata_dir = \"data\"\n[api]\nlisten = \"127.0.0.1:0\"\n\
                 [instance_api]\nlisten = \"127.0.0.1:8081\"\n{instance_api}"
            ),
        )
        .unwrap();
        Config::load(&path).unwrap()
    }

    #[test]
    fn the_trust_anchor_is_the_tls_ca_the_chain_files_last_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = DataDir::for_server(&dir.path().join("data")).unwrap();
        assert_eq!(
            instance_api_trust(&config(dir.path(), ""), &data_dir).unwrap(),
            None
        );

        let auto = config(dir.path(), "tls = \"auto\"\n");
        let e = instance_api_trust(&auto, &data_dir).unwrap_err();
        assert!(format!("{e:#}").contains("first start"), "{e:#}");
        let created = AutoCertificate::load_or_create(
            &data_dir.path().join("pki"),
            vec!["127.0.0.1".into()],
            SystemTime::now(),
        )
        .unwrap();
        let anchor = instance_api_trust(&auto, &data_dir).unwrap().unwrap();
        assert_eq!(anchor.fingerprint, created.fingerprint());
        assert_eq!(anchor.pem, created.ca.cert_pem());

        let chain = dir.path().join("chain.pem");
        std::fs::write(&chain, pem_certificate(b"leaf") + &pem_certificate(b"root")).unwrap();
        let files = config(
            dir.path(),
            &format!(
                "tls = {{ certificate = \"{}\", private_key = \"key.pem\" }}\n",
                chain.display()
            ),
        );
        let anchor = instance_api_trust(&files, &data_dir).unwrap().unwrap();
        assert_eq!(anchor.pem, pem_certificate(b"root"));
        assert_eq!(anchor.fingerprint, fingerprint(b"root"));
    }

    #[test]
    fn server_names_are_the_listen_ip_the_public_host_and_tls_names() {
        let dir = tempfile::tempdir().unwrap();
        let names =
            |extra: &str| server_names(config(dir.path(), extra).instance_api.as_ref().unwrap());
        assert_eq!(
            names("tls = \"auto\"\npublic_url = \"https://[::1]:8443\"\ntls_names = [\"eic.example\", \"127.0.0.1\"]\n")
                .unwrap(),
            ["127.0.0.1", "::1", "eic.example"]
        );
    }
}
