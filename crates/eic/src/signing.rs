//! The signer of key blobs: a CA kept in the data dir (created on first
//! start, or supplied by the operator) and a short-lived signer leaf under
//! it, rotated by the server on its own.
//!
//! Revocation is by expiry: a leaf lives `LEAF_LIFETIME` and is replaced
//! when half of that has passed, so a leaf that leaked stops verifying
//! within a day. Every leaf the CA issued verifies until its own expiry, so
//! during a rotation blobs signed by the old and by the new leaf both verify.
//! Blobs are signed when first fetched and cached until their keys change or
//! the leaf does: signing never sits on the push path.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use eic_keyblob::{
    issue_signer, ocsp_response, render_block, sha1_fingerprint_upper, BlobEntry,
    CertificateAuthority, SignerCertificate,
};
use eic_store::PushedKey;

use crate::data_dir::write_new_private;

/// How long a signer leaf lives; it is replaced after half of it.
pub const LEAF_LIFETIME: Duration = Duration::from_secs(24 * 3600);
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Cached blobs kept at most; past it the cache starts over.
const MAX_CACHED_BLOBS: usize = 65_536;

/// One signer leaf and what is served with it.
pub struct Leaf {
    pub serial: u64,
    pub certificate: SignerCertificate,
    /// Leaf then CA, as `managed-ssh-keys/signer-cert/` serves it.
    pub chain_pem: String,
    /// Uppercase SHA-1 of each certificate but the last → base64 DER staple.
    pub staples: BTreeMap<String, String>,
    pub not_after: u64,
}

pub struct Signing {
    ca: CertificateAuthority,
    region: String,
    domain: String,
    leaf: RwLock<Arc<Leaf>>,
    blobs: Mutex<HashMap<(String, String), CachedBlob>>,
}

/// A signed blob, valid while its leaf and its keys' request ids are the
/// same as when it was signed; and each key's signed block, by request id,
/// so that a new push signs only its own block, not every live key's again
/// (a user who logs in with a fresh key each time has one live key per
/// login of the last 60 s).
struct CachedBlob {
    leaf_serial: u64,
    request_ids: Vec<String>,
    blob: Arc<str>,
    blocks: HashMap<String, Arc<str>>,
}

impl Signing {
    /// Loads the CA from `pki_dir` (or creates it there) and issues a leaf.
    pub fn load_or_create(
        pki_dir: &Path,
        region: &str,
        domain: &str,
        now: SystemTime,
    ) -> anyhow::Result<Signing> {
        let cert_path = pki_dir.join("ca.pem");
        let key_path = pki_dir.join("ca.key");
        let ca = if cert_path.exists() {
            CertificateAuthority::from_pem(
                &std::fs::read_to_string(&cert_path)?,
                &std::fs::read_to_string(&key_path)?,
            )
            .map_err(|e| anyhow::anyhow!("{}: {e}", cert_path.display()))?
        } else {
            let now_s = unix(now);
            let ca = CertificateAuthority::generate(
                "eic managed-ssh-keys CA",
                now_s.saturating_sub(300),
                now_s + CA_LIFETIME.as_secs(),
            )
            .map_err(|e| anyhow::anyhow!("cannot create the signing CA: {e}"))?;
            write_new_private(&key_path, ca.key_pem().as_bytes())?;
            write_new_private(&cert_path, ca.cert_pem().as_bytes())?;
            tracing::info!(path = %cert_path.display(), "created the signing CA");
            ca
        };
        let leaf = issue_leaf(&ca, region, domain, now, 1)?;
        Ok(Signing {
            ca,
            region: region.to_owned(),
            domain: domain.to_owned(),
            leaf: RwLock::new(Arc::new(leaf)),
            blobs: Mutex::new(HashMap::new()),
        })
    }

    /// The CA's certificate, which instances trust blobs under.
    pub fn ca_pem(&self) -> String {
        self.ca.cert_pem()
    }

    /// The CN instances require of the signer, as `eic agent-config` writes it.
    pub fn signer_cn(&self) -> String {
        format!("managed-ssh-signer.{}.{}", self.region, self.domain)
    }

    pub fn current(&self) -> Arc<Leaf> {
        self.leaf.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Issues a new leaf once the current one is past half its life.
    pub fn rotate_if_due(&self, now: SystemTime) -> anyhow::Result<bool> {
        let current = self.current();
        let half_life = LEAF_LIFETIME.as_secs() / 2;
        if unix(now) + half_life < current.not_after {
            return Ok(false);
        }
        let leaf = issue_leaf(
            &self.ca,
            &self.region,
            &self.domain,
            now,
            current.serial + 1,
        )?;
        tracing::info!(serial = leaf.serial, "rotated the blob signer certificate");
        *self.leaf.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(leaf);
        Ok(true)
    }

    /// The signed blob for these keys (all of one instance and user),
    /// from the cache when the keys and the leaf are unchanged.
    pub fn blob(
        &self,
        instance_id: &str,
        user: &str,
        keys: &[PushedKey],
    ) -> anyhow::Result<(Arc<Leaf>, Arc<str>)> {
        let leaf = self.current();
        let ids: Vec<String> = keys.iter().map(|k| k.request_id.clone()).collect();
        let cache_key = (instance_id.to_owned(), user.to_owned());
        let signed_before = {
            let cache = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
            match cache.get(&cache_key) {
                Some(cached) if cached.leaf_serial == leaf.serial => {
                    if cached.request_ids == ids {
                        return Ok((leaf, cached.blob.clone()));
                    }
                    cached.blocks.clone()
                }
                _ => HashMap::new(),
            }
        };
        let mut blocks = HashMap::with_capacity(keys.len());
        let mut rendered = Vec::with_capacity(keys.len());
        for k in keys {
            let block = match signed_before.get(&k.request_id) {
                Some(block) => block.clone(),
                None => {
                    let entry = BlobEntry {
                        // AWS's #Timestamp is in seconds; rounding down keeps a
                        // key from being offered past its expiry.
                        expires_at_unix: k.expires_at_ms / 1000,
                        instance_id: k.instance_id.clone(),
                        caller_arn: k.caller_arn.clone(),
                        request_id: k.request_id.clone(),
                        key_line: k.public_key.clone(),
                    };
                    let block: Arc<str> = render_block(&entry, leaf.certificate.blob_signer())
                        .map_err(|e| anyhow::anyhow!("cannot render a key blob: {e:?}"))?
                        .into();
                    block
                }
            };
            rendered.push(block.clone());
            blocks.insert(k.request_id.clone(), block);
        }
        // Blocks separated by one empty line, as render_blob joins them.
        let blob: Arc<str> = rendered
            .iter()
            .map(|b| &**b)
            .collect::<Vec<&str>>()
            .join("\n")
            .into();
        let mut cache = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED_BLOBS {
            cache.clear();
        }
        cache.insert(
            cache_key,
            CachedBlob {
                leaf_serial: leaf.serial,
                request_ids: ids,
                blob: blob.clone(),
                blocks,
            },
        );
        Ok((leaf, blob))
    }
}

fn issue_leaf(
    ca: &CertificateAuthority,
    region: &str,
    domain: &str,
    now: SystemTime,
    serial: u64,
) -> anyhow::Result<Leaf> {
    let now_s = unix(now);
    // A little backdating tolerates instances whose clocks run behind.
    let not_before = now_s.saturating_sub(300);
    let not_after = now_s + LEAF_LIFETIME.as_secs();
    let certificate = issue_signer(ca, region, domain, not_before, not_after)
        .map_err(|e| anyhow::anyhow!("cannot issue the signer certificate: {e}"))?;
    let staple = ocsp_response(certificate.cert_der(), ca, not_before, Some(not_after))
        .map_err(|e| anyhow::anyhow!("cannot staple the signer certificate: {e}"))?;
    let mut staples = BTreeMap::new();
    staples.insert(
        sha1_fingerprint_upper(certificate.cert_der()),
        STANDARD.encode(staple),
    );
    Ok(Leaf {
        serial,
        chain_pem: certificate.chain_pem(ca),
        certificate,
        staples,
        not_after,
    })
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use eic_keyblob::{parse_blob, render_blob};
    use eic_store::KeyTarget;

    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBc0R9bPT6r4ZK1xxO6Rw8rQmL5EwMv5d9uYu0D8mD4n";

    fn key(n: u64) -> PushedKey {
        PushedKey {
            request_id: format!("00000000-0000-4000-8000-{n:012}"),
            instance_id: "i-0123456789abcdef0".into(),
            target: KeyTarget::OsUser("ec2-user".into()),
            public_key: ED.into(),
            fingerprint: "SHA256:x".into(),
            caller_arn: "arn:aws:iam::111122223333:user/admin".into(),
            pushed_at_ms: 1_800_000_000_000,
            expires_at_ms: 1_800_000_060_000 + n,
        }
    }

    #[test]
    fn a_blob_keeps_earlier_blocks_and_adds_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let signing =
            Signing::load_or_create(dir.path(), "us-west-2", "amazonaws.com", SystemTime::now())
                .unwrap();
        let id = "i-0123456789abcdef0";
        let (_, first) = signing.blob(id, "ec2-user", &[key(1), key(2)]).unwrap();
        let (leaf, second) = signing
            .blob(id, "ec2-user", &[key(1), key(2), key(3)])
            .unwrap();
        // The earlier blocks are the very same text (not signed again), and
        // the blob has the shape render_blob gives.
        assert!(second.starts_with(&*first), "{second}");
        let blocks = parse_blob(&second);
        assert_eq!(blocks.len(), 3);
        let fresh = render_blob(
            &[BlobEntry {
                expires_at_unix: key(3).expires_at_ms / 1000,
                instance_id: id.into(),
                caller_arn: key(3).caller_arn,
                request_id: key(3).request_id,
                key_line: ED.into(),
            }],
            leaf.certificate.blob_signer(),
        )
        .unwrap();
        assert_eq!(parse_blob(&fresh)[0].headers, blocks[2].headers);
        // An expired key drops out; the others stay as they were.
        let (_, third) = signing.blob(id, "ec2-user", &[key(2), key(3)]).unwrap();
        assert_eq!(parse_blob(&third), blocks[1..].to_vec());
        // Unchanged keys: the same blob.
        let (_, again) = signing.blob(id, "ec2-user", &[key(2), key(3)]).unwrap();
        assert!(Arc::ptr_eq(&third, &again));
    }
}
