//! The trust anchor of eic's instance-facing listener as an instance holds
//! it: one CA certificate and its fingerprint (the pin a join token
//! carries). The server's side, the CA that issues the listener's leaf, is
//! eic's `tls_ca`, which re-exports these.

use sha2::{Digest, Sha256};

/// The CA instances trust for the instance-facing listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAnchor {
    /// One PEM `CERTIFICATE` block.
    pub pem: String,
    /// [`fingerprint`] of its DER.
    pub fingerprint: String,
}

/// `sha256:` and the lowercase hex SHA-256 of a certificate's DER, the form
/// of kubeadm's `--discovery-token-ca-cert-hash`.
pub fn fingerprint(cert_der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(cert_der)))
}

/// One PEM `CERTIFICATE` block.
pub fn pem_certificate(der: &[u8]) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}
