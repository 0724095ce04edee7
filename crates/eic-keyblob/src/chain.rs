//! The signer certificate chain (`managed-ssh-keys/signer-cert/`) and its OCSP
//! staples (`managed-ssh-keys/signer-ocsp/<SHA1>`), checked like the official
//! parser's steps A–E.
//!
//! 1. The chain is PEM, leaf first. The script needs at least two
//!    certificates (it copies `cert1.pem` under `set -e`), and so do we.
//! 2. The leaf's Subject CN must equal the expected name exactly. The script
//!    takes the text after the last `CN = ` of `openssl x509 -subject`, so the
//!    CN must be the last RDN, alone in it.
//! 3. The chain must validate up to a trust anchor at `now`. The script runs
//!    `openssl verify -x509_strict`; we use webpki with
//!    `KeyUsage::required_if_present(serverAuth)`: the real signer is issued
//!    by a public web PKI CA whose certificates carry `serverAuth`, while a
//!    certificate without an EKU extension (like ours) stays acceptable, as it
//!    is to `openssl verify` without `-purpose`.
//! 4. Every certificate except the last needs a staple named by its uppercase
//!    SHA-1 fingerprint, checked like `openssl ocsp -no_nonce -issuer
//!    cert[i+1] -VAfile cert[i+1]`: a successful basic response whose
//!    responder is the issuer and whose signature verifies with the issuer's
//!    key, a SHA-1 `CertID` for the certificate with status `good`, and
//!    `thisUpdate`/`nextUpdate` within OpenSSL's five minutes of leeway.
//!    When staples are optional, a missing one is skipped but a present one
//!    is still checked: a revoked signer must never pass.
//! 5. The leaf key must be RSA (2048 to 8192 bits, what the PSS verifier
//!    takes); it becomes the [`SignerKey`].
//!
//! The script checks the CN before the chain and OCSP after it; errors come
//! out in the same order.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use aws_lc_rs::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY};
use der::asn1::{
    AnyRef, Ia5StringRef, ObjectIdentifier, OctetString, PrintableStringRef, Utf8StringRef,
};
use der::{Decode, Encode, Reader, SliceReader, Tag, Tagged};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use webpki::{EndEntityCert, KeyUsage};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::Certificate;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspResponse, OcspResponseStatus, ResponderId,
};

use crate::signer::SignerKey;

/// Staples by the uppercase hex SHA-1 fingerprint of the certificate they
/// are about, each a DER `OCSPResponse` (already base64-decoded).
pub type OcspStaples = BTreeMap<String, Vec<u8>>;

/// `openssl ocsp` accepts status times this far off (`-validity_period`
/// default, `MAX_VALIDITY_PERIOD` in apps/ocsp.c).
const OCSP_LEEWAY_SECS: u64 = 300;

/// DER value of id-kp-serverAuth (1.3.6.1.5.5.7.3.1).
const EKU_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];

const OID_CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");

const MIN_SIGNER_RSA_BITS: usize = 2048;
const MAX_SIGNER_RSA_BITS: usize = 8192;

/// What an OCSP staple said instead of `good`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StapleStatus {
    Revoked,
    Unknown,
    /// No `SingleResponse` carries this certificate's SHA-1 `CertID`
    /// (OpenSSL: "No Status found").
    NoStatusForCertificate,
    /// The responder answered with an error status instead of a response.
    Unsuccessful(&'static str),
}

impl fmt::Display for StapleStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Revoked => f.write_str("revoked"),
            Self::Unknown => f.write_str("unknown"),
            Self::NoStatusForCertificate => f.write_str("no status for this certificate"),
            Self::Unsuccessful(status) => write!(f, "responder status {status}"),
        }
    }
}

/// Why the signer chain is not trusted. `cn` names the certificate whose
/// staple failed, as the script's message does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainError {
    /// The PEM, a certificate or a staple cannot be decoded.
    Malformed(String),
    /// `found` is empty when the last RDN is not a lone CN.
    CnMismatch {
        expected: String,
        found: String,
    },
    /// webpki's reason for refusing the path.
    Untrusted(String),
    OcspMissing {
        cn: String,
    },
    /// `thisUpdate` is in the future or `nextUpdate` in the past, beyond the
    /// leeway, or `nextUpdate` precedes `thisUpdate`.
    OcspStale {
        cn: String,
    },
    /// Not signed by the issuer's key, or not by the issuer as responder.
    OcspBadSignature {
        cn: String,
    },
    OcspNotGood {
        cn: String,
        status: StapleStatus,
    },
    NotRsa,
    /// The leaf's RSA key is outside what RSASSA-PSS verification accepts.
    SignerKeySize {
        bits: usize,
    },
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(what) => write!(f, "malformed signer chain: {what}"),
            Self::CnMismatch { expected, found } => {
                write!(f, "signer CN is {found:?}, expected {expected:?}")
            }
            Self::Untrusted(reason) => write!(f, "signer chain not trusted: {reason}"),
            Self::OcspMissing { cn } => write!(f, "no OCSP staple for {cn}"),
            Self::OcspStale { cn } => write!(f, "OCSP staple for {cn} is out of its validity"),
            Self::OcspBadSignature { cn } => {
                write!(f, "OCSP staple for {cn} is not signed by its issuer")
            }
            Self::OcspNotGood { cn, status } => write!(f, "OCSP status of {cn}: {status}"),
            Self::NotRsa => f.write_str("signer key is not RSA"),
            Self::SignerKeySize { bits } => write!(f, "signer RSA key has {bits} bits"),
        }
    }
}

impl std::error::Error for ChainError {}

/// The name IMDS gives a certificate's staple: uppercase hex SHA-1 of its
/// DER, no colons.
pub fn sha1_fingerprint_upper(cert_der: &[u8]) -> String {
    digest(&SHA1_FOR_LEGACY_USE_ONLY, cert_der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

fn sha1(data: &[u8]) -> Vec<u8> {
    digest(&SHA1_FOR_LEGACY_USE_ONLY, data).as_ref().to_vec()
}

/// The Subject CN as the script's `sed 's/^.*CN *= *//'` would leave it, for
/// the names that can match at all: a lone CN in the last RDN.
fn last_rdn_cn(name: &Name) -> Option<String> {
    let rdn = name.0.last()?;
    let [attribute] = rdn.0.as_slice() else {
        return None;
    };
    if attribute.oid != OID_CN {
        return None;
    }
    let value = &attribute.value;
    let text = match value.tag() {
        Tag::Utf8String => Utf8StringRef::try_from(value).ok()?.as_str().to_owned(),
        Tag::PrintableString => PrintableStringRef::try_from(value)
            .ok()?
            .as_str()
            .to_owned(),
        Tag::Ia5String => Ia5StringRef::try_from(value).ok()?.as_str().to_owned(),
        _ => return None,
    };
    Some(text)
}

fn display_cn(cert: &Certificate) -> String {
    last_rdn_cn(&cert.tbs_certificate.subject)
        .unwrap_or_else(|| cert.tbs_certificate.subject.to_string())
}

/// The SHA-1 `CertID` `openssl ocsp -issuer` asks about.
pub(crate) fn sha1_cert_id(issuer: &Certificate, serial: &SerialNumber) -> der::Result<CertId> {
    let issuer_tbs = &issuer.tbs_certificate;
    Ok(CertId {
        hash_algorithm: spki::AlgorithmIdentifierOwned {
            oid: OID_SHA1,
            parameters: Some(der::asn1::Null.into()),
        },
        issuer_name_hash: OctetString::new(sha1(&issuer_tbs.subject.to_der()?))?,
        issuer_key_hash: OctetString::new(sha1(
            issuer_tbs
                .subject_public_key_info
                .subject_public_key
                .raw_bytes(),
        ))?,
        serial_number: serial.clone(),
    })
}

/// Verifies a signed chain from PEM, leaf first, and returns the leaf's key.
///
/// Trust anchors that webpki cannot parse are ignored, so one odd
/// certificate in a system store does not disable the others.
pub fn verify_signer_chain(
    chain_pem: &str,
    trust_anchors_der: &[Vec<u8>],
    expected_cn: &str,
    now_unix: u64,
    ocsp: &OcspStaples,
    ocsp_required: bool,
) -> Result<SignerKey, ChainError> {
    let ders = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ChainError::Malformed(format!("chain PEM: {e:?}")))?;
    if ders.len() < 2 {
        return Err(ChainError::Malformed(format!(
            "chain has {} certificate(s), at least 2 are needed",
            ders.len()
        )));
    }
    let certs = ders
        .iter()
        .enumerate()
        .map(|(i, der)| {
            Certificate::from_der(der)
                .map_err(|e| ChainError::Malformed(format!("certificate {i}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let found = last_rdn_cn(&certs[0].tbs_certificate.subject).unwrap_or_default();
    if found != expected_cn {
        return Err(ChainError::CnMismatch {
            expected: expected_cn.to_owned(),
            found,
        });
    }

    validate_path(&ders, trust_anchors_der, now_unix)?;

    for (i, pair) in certs.windows(2).enumerate() {
        let staple_name = sha1_fingerprint_upper(&ders[i]);
        match ocsp.get(&staple_name) {
            Some(staple) => check_staple(staple, &pair[0], &pair[1], &ders[i + 1], now_unix)?,
            None if ocsp_required => {
                return Err(ChainError::OcspMissing {
                    cn: display_cn(&pair[0]),
                })
            }
            None => {}
        }
    }

    leaf_signer_key(&certs[0])
}

fn validate_path(
    ders: &[CertificateDer<'static>],
    trust_anchors_der: &[Vec<u8>],
    now_unix: u64,
) -> Result<(), ChainError> {
    let anchor_ders: Vec<CertificateDer<'_>> = trust_anchors_der
        .iter()
        .map(|der| CertificateDer::from(der.as_slice()))
        .collect();
    let anchors: Vec<_> = anchor_ders
        .iter()
        .filter_map(|der| webpki::anchor_from_trusted_cert(der).ok())
        .collect();
    let leaf = EndEntityCert::try_from(&ders[0])
        .map_err(|e| ChainError::Malformed(format!("leaf: {e}")))?;
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &ders[1..],
        UnixTime::since_unix_epoch(Duration::from_secs(now_unix)),
        KeyUsage::required_if_present(EKU_SERVER_AUTH),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| ChainError::Untrusted(e.to_string()))
}

/// One `openssl ocsp -no_nonce -issuer I -cert C -VAfile I -respin staple`.
fn check_staple(
    staple: &[u8],
    cert: &Certificate,
    issuer: &Certificate,
    issuer_der: &[u8],
    now_unix: u64,
) -> Result<(), ChainError> {
    let cn = display_cn(cert);
    let malformed = |e: der::Error| ChainError::Malformed(format!("OCSP staple for {cn}: {e}"));
    let response = OcspResponse::from_der(staple).map_err(malformed)?;
    let status_name = match response.response_status {
        OcspResponseStatus::Successful => None,
        OcspResponseStatus::MalformedRequest => Some("malformedRequest"),
        OcspResponseStatus::InternalError => Some("internalError"),
        OcspResponseStatus::TryLater => Some("tryLater"),
        OcspResponseStatus::SigRequired => Some("sigRequired"),
        OcspResponseStatus::Unauthorized => Some("unauthorized"),
    };
    if let Some(name) = status_name {
        return Err(ChainError::OcspNotGood {
            cn,
            status: StapleStatus::Unsuccessful(name),
        });
    }
    let Some(bytes) = response
        .response_bytes
        .filter(|b| b.response_type == OID_OCSP_BASIC)
    else {
        return Err(ChainError::Malformed(format!(
            "OCSP staple for {cn}: not a basic OCSP response"
        )));
    };
    let raw = bytes.response.as_bytes();
    let basic = BasicOcspResponse::from_der(raw).map_err(malformed)?;
    // The signature covers the bytes as received, not a re-encoding.
    let tbs = raw_tbs_response_data(raw).map_err(malformed)?;
    let data = &basic.tbs_response_data;

    if !responder_is_issuer(&data.responder_id, issuer)
        || !signed_by_issuer(&basic, tbs, issuer_der)
    {
        return Err(ChainError::OcspBadSignature { cn });
    }

    let wanted = sha1_cert_id(issuer, &cert.tbs_certificate.serial_number).map_err(malformed)?;
    let Some(single) = data
        .responses
        .iter()
        .find(|r| same_cert_id(&r.cert_id, &wanted))
    else {
        return Err(ChainError::OcspNotGood {
            cn,
            status: StapleStatus::NoStatusForCertificate,
        });
    };

    let this_update = single.this_update.0.to_unix_duration().as_secs();
    let next_update = single.next_update.map(|t| t.0.to_unix_duration().as_secs());
    let fresh = this_update <= now_unix.saturating_add(OCSP_LEEWAY_SECS)
        && next_update.is_none_or(|next| {
            next >= now_unix.saturating_sub(OCSP_LEEWAY_SECS) && next >= this_update
        });
    if !fresh {
        return Err(ChainError::OcspStale { cn });
    }

    match single.cert_status {
        CertStatus::Good(_) => Ok(()),
        CertStatus::Revoked(_) => Err(ChainError::OcspNotGood {
            cn,
            status: StapleStatus::Revoked,
        }),
        CertStatus::Unknown(_) => Err(ChainError::OcspNotGood {
            cn,
            status: StapleStatus::Unknown,
        }),
    }
}

fn raw_tbs_response_data(basic_der: &[u8]) -> der::Result<&[u8]> {
    let outer = AnyRef::from_der(basic_der)?;
    outer.tag().assert_eq(Tag::Sequence)?;
    SliceReader::new(outer.value())?.tlv_bytes()
}

/// OpenSSL finds the signer among the `-VAfile` certificates by responder
/// id; with only the issuer there, the id must name the issuer.
fn responder_is_issuer(responder: &ResponderId, issuer: &Certificate) -> bool {
    let issuer_tbs = &issuer.tbs_certificate;
    match responder {
        ResponderId::ByName(name) => *name == issuer_tbs.subject,
        ResponderId::ByKey(hash) => {
            hash.as_bytes()
                == sha1(
                    issuer_tbs
                        .subject_public_key_info
                        .subject_public_key
                        .raw_bytes(),
                )
        }
    }
}

/// Verifies with webpki's aws-lc-rs algorithm table, so staples obey the same
/// algorithm policy as the certificates themselves.
fn signed_by_issuer(basic: &BasicOcspResponse, tbs: &[u8], issuer_der: &[u8]) -> bool {
    let Some(signature) = basic.signature.as_bytes() else {
        return false;
    };
    let Ok(algorithm_der) = basic.signature_algorithm.to_der() else {
        return false;
    };
    let Ok(algorithm) = AnyRef::from_der(&algorithm_der) else {
        return false;
    };
    let issuer_der = CertificateDer::from(issuer_der);
    let Ok(issuer) = EndEntityCert::try_from(&issuer_der) else {
        return false;
    };
    webpki::ALL_VERIFICATION_ALGS
        .iter()
        .filter(|alg| alg.signature_alg_id().as_ref() == algorithm.value())
        .any(|alg| issuer.verify_signature(*alg, tbs, signature).is_ok())
}

/// OpenSSL's `OCSP_id_cmp`: the hash algorithm's OID, both hashes, serial.
fn same_cert_id(found: &CertId, wanted: &CertId) -> bool {
    found.hash_algorithm.oid == wanted.hash_algorithm.oid
        && found.issuer_name_hash == wanted.issuer_name_hash
        && found.issuer_key_hash == wanted.issuer_key_hash
        && found.serial_number == wanted.serial_number
}

/// PKCS#1 `RSAPublicKey`, read only to size the modulus.
#[derive(der::Sequence)]
struct RsaPublicKey<'a> {
    modulus: der::asn1::UintRef<'a>,
    public_exponent: der::asn1::UintRef<'a>,
}

fn leaf_signer_key(leaf: &Certificate) -> Result<SignerKey, ChainError> {
    let spki = &leaf.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid != OID_RSA_ENCRYPTION {
        return Err(ChainError::NotRsa);
    }
    let der = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| ChainError::Malformed("leaf public key bit string".into()))?;
    let key = RsaPublicKey::from_der(der)
        .map_err(|e| ChainError::Malformed(format!("leaf RSA public key: {e}")))?;
    let modulus = key.modulus.as_bytes();
    let bits = match modulus.first() {
        Some(&top) => modulus.len() * 8 - top.leading_zeros() as usize,
        None => 0,
    };
    if !(MIN_SIGNER_RSA_BITS..=MAX_SIGNER_RSA_BITS).contains(&bits) {
        return Err(ChainError::SignerKeySize { bits });
    }
    Ok(SignerKey::from_rsa_public_key(der))
}

#[cfg(test)]
mod tests;
