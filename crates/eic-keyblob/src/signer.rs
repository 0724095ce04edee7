//! The two halves of the blob signature: the server's private key and the
//! public key an instance takes from the verified leaf certificate.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    KeyPair, RsaKeyPair, UnparsedPublicKey, RSA_PSS_2048_8192_SHA256, RSA_PSS_SHA256,
};

/// Signs blob blocks with the signer certificate's RSA key: RSASSA-PSS,
/// SHA-256, MGF1-SHA-256, salt length 32 (aws-lc-rs uses the digest length).
pub struct BlobSigner {
    key: RsaKeyPair,
}

impl BlobSigner {
    pub(crate) fn from_pkcs8(der: &[u8]) -> Result<Self, aws_lc_rs::error::KeyRejected> {
        RsaKeyPair::from_pkcs8(der).map(|key| Self { key })
    }

    /// The public half, as an instance would extract it from the leaf.
    pub fn signer_key(&self) -> SignerKey {
        SignerKey {
            rsa_public_key: self.key.public_key().as_ref().to_vec(),
        }
    }

    pub(crate) fn sign(&self, data: &[u8]) -> Result<Vec<u8>, aws_lc_rs::error::Unspecified> {
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(&RSA_PSS_SHA256, &SystemRandom::new(), data, &mut signature)?;
        Ok(signature)
    }
}

impl fmt::Debug for BlobSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobSigner").finish_non_exhaustive()
    }
}

/// The leaf certificate's RSA public key, which verifies blob signatures.
#[derive(Clone, PartialEq, Eq)]
pub struct SignerKey {
    /// PKCS#1 `RSAPublicKey` DER, the form aws-lc-rs verifies with.
    rsa_public_key: Vec<u8>,
}

impl SignerKey {
    pub(crate) fn from_rsa_public_key(der: &[u8]) -> Self {
        Self {
            rsa_public_key: der.to_vec(),
        }
    }

    /// Only PSS with a 32-byte salt verifies: aws-lc-rs pins the salt to the
    /// digest length, which is what rejects `rsa_pss_saltlen:max` signatures.
    pub(crate) fn verify(&self, data: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, &self.rsa_public_key)
            .verify(data, signature)
            .is_ok()
    }
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignerKey")
            .field("rsa_public_key_len", &self.rsa_public_key.len())
            .finish()
    }
}
