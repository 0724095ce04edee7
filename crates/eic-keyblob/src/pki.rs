//! The server side of the signer PKI: a root CA kept in the server's data
//! directory, the `managed-ssh-signer.<region>.<domain>` leaf it issues, and
//! the OCSP staple for that leaf.
//!
//! The certificates are shaped for `openssl verify -x509_strict` (the
//! official parser) and webpki alike: the root has a critical
//! `basicConstraints CA:TRUE`, a critical `keyUsage` (keyCertSign, cRLSign,
//! digitalSignature) and a subject key identifier; the leaf has a critical
//! `basicConstraints CA:FALSE`, a critical `keyUsage digitalSignature`, a
//! matching authority key identifier, no EKU, and its name both as the last
//! (only) RDN's CN and as a DNS SAN. The chain to serve is leaf then root,
//! so only the leaf needs a staple.
//!
//! [`issue_tls_server`] issues under such a root too: the TLS server leaf of
//! eic's instance-facing listener, under a CA of its own.

use std::fmt;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use der::asn1::{BitString, ObjectIdentifier};
use der::{DateTime, Decode};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData, RsaKeySize, SigningKey,
    PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
};
use spki::{AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, SignatureBitStringEncoding};
use time::OffsetDateTime;
use x509_cert::ext::pkix::{BasicConstraints as CaConstraints, SubjectKeyIdentifier};
use x509_cert::Certificate;
use x509_ocsp::builder::OcspResponseBuilder;
use x509_ocsp::{CertStatus, OcspGeneralizedTime, SingleResponse};

use crate::chain::sha1_cert_id;
use crate::signer::BlobSigner;

const OID_SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const OID_SUBJECT_KEY_IDENTIFIER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
const OID_BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const OID_COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// Why a PKI object cannot be made or loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PkiError {
    /// rcgen or aws-lc-rs failed to generate, sign or encode.
    Generate(String),
    /// Stored PEM that does not describe a CA this crate made.
    InvalidCa(String),
    /// A region or domain that cannot go into the signer's name.
    InvalidName(String),
    /// A time that cannot be encoded in a certificate or staple.
    InvalidTime(u64),
    /// The certificate to staple cannot be parsed.
    InvalidCertificate(String),
}

impl fmt::Display for PkiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Generate(e) => write!(f, "generation failed: {e}"),
            Self::InvalidCa(e) => write!(f, "invalid CA: {e}"),
            Self::InvalidName(e) => write!(f, "invalid signer name: {e}"),
            Self::InvalidTime(t) => write!(f, "time {t} cannot be encoded"),
            Self::InvalidCertificate(e) => write!(f, "invalid certificate: {e}"),
        }
    }
}

impl std::error::Error for PkiError {}

fn generate_error(e: impl fmt::Display) -> PkiError {
    PkiError::Generate(e.to_string())
}

fn offset_time(unix: u64) -> Result<OffsetDateTime, PkiError> {
    i64::try_from(unix)
        .ok()
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .ok_or(PkiError::InvalidTime(unix))
}

pub(crate) fn ocsp_time(unix: u64) -> Result<OcspGeneralizedTime, PkiError> {
    DateTime::from_unix_duration(std::time::Duration::from_secs(unix))
        .map(OcspGeneralizedTime::from)
        .map_err(|_| PkiError::InvalidTime(unix))
}

/// A random positive 128-bit serial; rcgen's default (a hash of the key)
/// would repeat if a key were ever reused.
fn random_serial() -> Result<rcgen::SerialNumber, PkiError> {
    let mut serial = [0u8; 16];
    SystemRandom::new()
        .fill(&mut serial)
        .map_err(generate_error)?;
    serial[0] &= 0x7f;
    serial[0] |= 0x40;
    Ok(rcgen::SerialNumber::from_slice(&serial))
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

/// The root that signs signer certificates and their staples.
pub struct CertificateAuthority {
    cert_der: Vec<u8>,
    cert: Certificate,
    key: KeyPair,
    /// Enough of the CA's parameters for rcgen to issue under it.
    params: CertificateParams,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("subject", &self.cert.tbs_certificate.subject.to_string())
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// A self-signed RSA 3072 root named `CN=<common_name>`.
    pub fn generate(common_name: &str, not_before: u64, not_after: u64) -> Result<Self, PkiError> {
        let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_3072)
            .map_err(generate_error)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = offset_time(not_before)?;
        params.not_after = offset_time(not_after)?;
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key).map_err(generate_error)?;
        Self::from_parts(cert.der().to_vec(), key)
    }

    /// Loads what [`cert_pem`](Self::cert_pem) and
    /// [`key_pem`](Self::key_pem) saved.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        use rustls_pki_types::pem::PemObject;
        let cert_der = rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| PkiError::InvalidCa(format!("certificate PEM: {e:?}")))?;
        let key =
            KeyPair::from_pem(key_pem).map_err(|e| PkiError::InvalidCa(format!("key PEM: {e}")))?;
        Self::from_parts(cert_der.to_vec(), key)
    }

    /// Checks that the certificate is one we can issue under with this key,
    /// and rebuilds the issuer parameters from it.
    fn from_parts(cert_der: Vec<u8>, key: KeyPair) -> Result<Self, PkiError> {
        let invalid = |what: &str| PkiError::InvalidCa(what.to_owned());
        if key.algorithm() != &PKCS_RSA_SHA256 {
            return Err(invalid("key is not an RSA key"));
        }
        let cert =
            Certificate::from_der(&cert_der).map_err(|e| PkiError::InvalidCa(e.to_string()))?;
        let tbs = &cert.tbs_certificate;
        let spki = der::Encode::to_der(&tbs.subject_public_key_info).map_err(generate_error)?;
        if spki != key.subject_public_key_info() {
            return Err(invalid("key does not match the certificate"));
        }
        let extension = |oid| {
            tbs.extensions
                .iter()
                .flatten()
                .find(move |ext| ext.extn_id == oid)
                .map(|ext| ext.extn_value.as_bytes())
        };
        let is_ca = extension(OID_BASIC_CONSTRAINTS)
            .and_then(|der| CaConstraints::from_der(der).ok())
            .is_some_and(|constraints| constraints.ca);
        if !is_ca {
            return Err(invalid("certificate is not a CA"));
        }
        let ski = extension(OID_SUBJECT_KEY_IDENTIFIER)
            .and_then(|der| SubjectKeyIdentifier::from_der(der).ok())
            .ok_or_else(|| invalid("no subject key identifier"))?;
        // rcgen writes the issuer name from parameters, so only a lone
        // UTF8String CN (what `generate` makes) is reproduced byte for byte.
        let [rdn] = tbs.subject.0.as_slice() else {
            return Err(invalid("subject is not a single CN"));
        };
        let [attribute] = rdn.0.as_slice() else {
            return Err(invalid("subject is not a single CN"));
        };
        if attribute.oid != OID_COMMON_NAME {
            return Err(invalid("subject is not a single CN"));
        }
        let common_name = der::asn1::Utf8StringRef::try_from(&attribute.value)
            .map_err(|_| invalid("subject CN is not a UTF8String"))?;

        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(common_name.as_str());
        params.key_identifier_method = KeyIdMethod::PreSpecified(ski.0.as_bytes().to_vec());
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        Ok(Self {
            cert_der,
            cert,
            key,
            params,
        })
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    pub fn cert_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.cert_der)
    }

    /// The private key as unencrypted PKCS#8 PEM; keep it private.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    pub(crate) fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for (i, c) in encoded.chars().enumerate() {
        if i > 0 && i % 64 == 0 {
            out.push('\n');
        }
        out.push(c);
    }
    out.push_str(&format!("\n-----END {label}-----\n"));
    out
}

/// A leaf certificate and the key that signs blobs under it.
#[derive(Debug)]
pub struct SignerCertificate {
    cert_der: Vec<u8>,
    signer: BlobSigner,
}

impl SignerCertificate {
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    pub fn cert_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.cert_der)
    }

    /// What `managed-ssh-keys/signer-cert/` serves: this leaf, then the CA.
    pub fn chain_pem(&self, ca: &CertificateAuthority) -> String {
        self.cert_pem() + &ca.cert_pem()
    }

    pub fn blob_signer(&self) -> &BlobSigner {
        &self.signer
    }
}

/// AWS region ids and DNS domains: lowercase labels, digits and hyphens.
fn check_name_part(what: &str, value: &str, dots_allowed: bool) -> Result<(), PkiError> {
    let labels_ok = value.split('.').all(|label| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    if value.is_empty() || !labels_ok || (!dots_allowed && value.contains('.')) {
        return Err(PkiError::InvalidName(format!("{what} {value:?}")));
    }
    Ok(())
}

/// Issues an RSA 2048 leaf named `managed-ssh-signer.<region>.<domain>`,
/// the CN the official script expects.
pub fn issue_signer(
    ca: &CertificateAuthority,
    region: &str,
    domain: &str,
    not_before: u64,
    not_after: u64,
) -> Result<SignerCertificate, PkiError> {
    check_name_part("region", region, false)?;
    check_name_part("domain", domain, true)?;
    let name = format!("managed-ssh-signer.{region}.{domain}");

    let key =
        KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).map_err(generate_error)?;
    let mut params = CertificateParams::new(vec![name.clone()]).map_err(generate_error)?;
    params.distinguished_name = distinguished_name(&name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params.not_before = offset_time(not_before)?;
    params.not_after = offset_time(not_after)?;
    params.serial_number = Some(random_serial()?);
    let cert = params
        .signed_by(&key, &ca.issuer())
        .map_err(generate_error)?;
    let signer = BlobSigner::from_pkcs8(key.serialized_der()).map_err(generate_error)?;
    Ok(SignerCertificate {
        cert_der: cert.der().to_vec(),
        signer,
    })
}

/// A TLS server certificate and its private key.
pub struct TlsServerCertificate {
    cert_der: Vec<u8>,
    key_pkcs8_der: Vec<u8>,
}

impl fmt::Debug for TlsServerCertificate {
    /// Never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServerCertificate")
            .finish_non_exhaustive()
    }
}

impl TlsServerCertificate {
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The private key, PKCS#8 DER; keep it private.
    pub fn key_pkcs8_der(&self) -> &[u8] {
        &self.key_pkcs8_der
    }
}

/// Issues an ECDSA P-256 TLS server leaf (serverAuth) for `names`, each a
/// DNS name or an IP address, the first also its CN. ECDSA keeps the
/// handshake cheap; the issuing CA may be any [`CertificateAuthority`].
pub fn issue_tls_server(
    ca: &CertificateAuthority,
    names: &[String],
    not_before: u64,
    not_after: u64,
) -> Result<TlsServerCertificate, PkiError> {
    let first = names
        .first()
        .ok_or_else(|| PkiError::InvalidName("a TLS certificate needs a name".into()))?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate_error)?;
    // IP strings become IP SANs, the rest DNS SANs.
    let mut params = CertificateParams::new(names.to_vec()).map_err(generate_error)?;
    params.distinguished_name = distinguished_name(first);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = offset_time(not_before)?;
    params.not_after = offset_time(not_after)?;
    params.serial_number = Some(random_serial()?);
    let cert = params
        .signed_by(&key, &ca.issuer())
        .map_err(generate_error)?;
    Ok(TlsServerCertificate {
        cert_der: cert.der().to_vec(),
        key_pkcs8_der: key.serialize_der(),
    })
}

/// rcgen's RSA key as an x509-ocsp signer: PKCS#1 v1.5 with SHA-256, the
/// algorithm of `PKCS_RSA_SHA256` keys.
struct StapleSigner<'a>(&'a KeyPair);

struct StapleSignature(Vec<u8>);

impl SignatureBitStringEncoding for StapleSignature {
    fn to_bitstring(&self) -> der::Result<BitString> {
        BitString::from_bytes(&self.0)
    }
}

impl signature::Signer<StapleSignature> for StapleSigner<'_> {
    fn try_sign(&self, msg: &[u8]) -> Result<StapleSignature, signature::Error> {
        self.0
            .sign(msg)
            .map(StapleSignature)
            .map_err(|_| signature::Error::new())
    }
}

impl DynSignatureAlgorithmIdentifier for StapleSigner<'_> {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        Ok(AlgorithmIdentifierOwned {
            oid: OID_SHA256_WITH_RSA,
            parameters: Some(der::asn1::Null.into()),
        })
    }
}

/// A DER `OCSPResponse` saying `cert_der` is good, signed by `issuer` as
/// its own responder (`producedAt` = `this_update`). Serve it base64-encoded
/// under the certificate's [`sha1_fingerprint_upper`](crate::sha1_fingerprint_upper).
pub fn ocsp_response(
    cert_der: &[u8],
    issuer: &CertificateAuthority,
    this_update: u64,
    next_update: Option<u64>,
) -> Result<Vec<u8>, PkiError> {
    let cert =
        Certificate::from_der(cert_der).map_err(|e| PkiError::InvalidCertificate(e.to_string()))?;
    let cert_id =
        sha1_cert_id(&issuer.cert, &cert.tbs_certificate.serial_number).map_err(generate_error)?;
    let mut single = SingleResponse::new(cert_id, CertStatus::good(), ocsp_time(this_update)?);
    if let Some(next) = next_update {
        single = single.with_next_update(ocsp_time(next)?);
    }
    build_staple(single, issuer, issuer, this_update)
}

/// Signs one `SingleResponse` with `signing_key`'s key, naming `responder`
/// by its subject.
pub(crate) fn build_staple(
    single: SingleResponse,
    responder: &CertificateAuthority,
    signing_key: &CertificateAuthority,
    produced_at: u64,
) -> Result<Vec<u8>, PkiError> {
    let response = OcspResponseBuilder::new(responder.cert.tbs_certificate.subject.clone())
        .with_single_response(single)
        .sign(
            &mut StapleSigner(&signing_key.key),
            None,
            ocsp_time(produced_at)?,
        )
        .map_err(generate_error)?;
    der::Encode::to_der(&response).map_err(generate_error)
}
