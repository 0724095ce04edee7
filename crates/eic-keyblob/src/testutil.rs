//! Shared fixtures for the unit tests: one PKI made once, at a fixed time.

use std::sync::OnceLock;

use crate::blob::{BlobEntry, VerifyParams};
use crate::chain::{sha1_fingerprint_upper, OcspStaples};
use crate::pki::{issue_signer, ocsp_response, CertificateAuthority, SignerCertificate};
use crate::signer::SignerKey;

pub(crate) const NOW: u64 = 1_800_000_000;
pub(crate) const DAY: u64 = 86_400;
pub(crate) const INSTANCE: &str = "i-abcd1234";
pub(crate) const SIGNER_CN: &str = "managed-ssh-signer.us-east-1.amazonaws.com";

/// Made with `ssh-keygen`; the fingerprints are what `ssh-keygen -lf` printed.
pub(crate) const RSA_KEY: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC6TlnEnVfSFMPr/cjUZGelGoKtU2otnMEs/MJM1J+NfcnEn8Csk+E3PrK/m9HfohXqljae8B/NF9H3VaIwYQR91YBq3NZotp9vk5w8swfBihuLCVIz2UDuT7T52E+wTfAwbJXb43NLjN00zXIsvyiVv1oxZlAWQtNaudyMfX2sAMSL2BgebSLW16oIBSr9ddVqnGxWN+DmUdKZRtjeAGc+peSF3S4z56Oaje4K09bDAtVzswnl7pr0tEPJc2o33UKbvgOzjbzW0OmMEvAQIVDA19qiQ4agSWls2A++zfTS9UqwijM6eQPFdpDBrKXgiPMRxWduRxh7lroDVEvT8oq7 alice@laptop";
pub(crate) const RSA_FINGERPRINT: &str = "SHA256:RJ7oj2+vZFpmRwgPjhDxNycpigsh+K/4z3Xk3AYPkck";
pub(crate) const ED25519_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDJbqKieRzA1vzLKjJ56zHXfQ7aLVHbWlOqxG6tjVcAt bob@desk";
pub(crate) const ED25519_FINGERPRINT: &str = "SHA256:8Or1m2vslq9O0qcGCoXZXn6E2TF9KGoL7f/4y7OnTI8";
pub(crate) const ECDSA_KEY: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBI2yttP33WjGXMT98ea4F9aA+a6eMNlyce/uSrMEeHc5w3WmYnt/+EhTwvjdpggoiPWttXGM7kaCS8k7h0TGWBY= carol";

pub(crate) struct Fixture {
    pub ca: CertificateAuthority,
    pub other_ca: CertificateAuthority,
    pub signer: SignerCertificate,
    pub chain_pem: String,
    pub staples: OcspStaples,
}

pub(crate) fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let ca = CertificateAuthority::generate("eic test root", NOW - DAY, NOW + 3650 * DAY)
            .expect("root");
        // Same name as the real root: only the key tells them apart.
        let other_ca = CertificateAuthority::generate("eic test root", NOW - DAY, NOW + 3650 * DAY)
            .expect("other root");
        let signer = issue_signer(&ca, "us-east-1", "amazonaws.com", NOW - DAY, NOW + 30 * DAY)
            .expect("signer");
        let chain_pem = signer.chain_pem(&ca);
        let staple =
            ocsp_response(signer.cert_der(), &ca, NOW - 60, Some(NOW + DAY)).expect("staple");
        let staples = OcspStaples::from([(sha1_fingerprint_upper(signer.cert_der()), staple)]);
        Fixture {
            ca,
            other_ca,
            signer,
            chain_pem,
            staples,
        }
    })
}

pub(crate) fn signer_key() -> SignerKey {
    fixture().signer.blob_signer().signer_key()
}

pub(crate) fn entry(key_line: &str, expires_at_unix: u64) -> BlobEntry {
    BlobEntry {
        expires_at_unix,
        instance_id: INSTANCE.into(),
        caller_arn: "arn:aws:iam::123412341234:role/myrole".into(),
        request_id: "1234abcd-1234-abcd-1234abcd1234".into(),
        key_line: key_line.into(),
    }
}

pub(crate) fn params<'a>(
    key: &'a SignerKey,
    expected_fingerprint: Option<&'a str>,
) -> VerifyParams<'a> {
    VerifyParams {
        instance_id: INSTANCE,
        now_unix: NOW,
        expected_fingerprint,
        signer_key: key,
    }
}
