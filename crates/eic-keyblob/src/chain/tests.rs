use der::{Decode, Encode};
use rcgen::{CertificateParams, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use x509_cert::serial_number::SerialNumber;
use x509_cert::Certificate;
use x509_ocsp::{CertStatus, OcspResponse, RevokedInfo, SingleResponse};

use super::*;
use crate::blob::{render_block, verify_blob};
use crate::pki::{
    build_staple, issue_signer, ocsp_response, ocsp_time, CertificateAuthority, PkiError,
};
use crate::testutil::*;

fn verify(chain_pem: &str, staples: &OcspStaples, now: u64) -> Result<SignerKey, ChainError> {
    let f = fixture();
    verify_signer_chain(
        chain_pem,
        &[f.ca.cert_der().to_vec()],
        SIGNER_CN,
        now,
        staples,
        true,
    )
}

fn leaf() -> Certificate {
    Certificate::from_der(fixture().signer.cert_der()).expect("leaf")
}

fn leaf_name() -> String {
    sha1_fingerprint_upper(fixture().signer.cert_der())
}

fn ca_cert() -> Certificate {
    Certificate::from_der(fixture().ca.cert_der()).expect("ca")
}

/// The fixture chain with `staple` standing in for the leaf's.
fn verify_with_staple(staple: Vec<u8>, now: u64) -> Result<SignerKey, ChainError> {
    verify(
        &fixture().chain_pem,
        &OcspStaples::from([(leaf_name(), staple)]),
        now,
    )
}

fn single(status: CertStatus, this_update: u64, next_update: Option<u64>) -> SingleResponse {
    let id = sha1_cert_id(&ca_cert(), &leaf().tbs_certificate.serial_number).expect("cert id");
    let single = SingleResponse::new(id, status, ocsp_time(this_update).expect("time"));
    match next_update {
        Some(next) => single.with_next_update(ocsp_time(next).expect("time")),
        None => single,
    }
}

fn not_good(status: StapleStatus) -> Result<SignerKey, ChainError> {
    Err(ChainError::OcspNotGood {
        cn: SIGNER_CN.into(),
        status,
    })
}

#[test]
fn valid_chain_yields_the_signer_key() {
    let f = fixture();
    let key = verify(&f.chain_pem, &f.staples, NOW).expect("trusted");
    assert_eq!(key, signer_key());
    let block =
        render_block(&entry(ED25519_KEY, NOW + 60), f.signer.blob_signer()).expect("render");
    assert_eq!(
        verify_blob(&block, &params(&key, None))
            .accepted_keys()
            .len(),
        1
    );
}

#[test]
fn fingerprint_names_are_uppercase_sha1() {
    let name = leaf_name();
    assert_eq!(name.len(), 40);
    assert!(name
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
}

#[test]
fn ca_round_trips_through_pem() {
    let f = fixture();
    let loaded = CertificateAuthority::from_pem(&f.ca.cert_pem(), &f.ca.key_pem()).expect("load");
    assert_eq!(loaded.cert_der(), f.ca.cert_der());
    let signer =
        issue_signer(&loaded, "us-east-1", "amazonaws.com", NOW - DAY, NOW + DAY).expect("issue");
    let staple = ocsp_response(signer.cert_der(), &loaded, NOW, Some(NOW + DAY)).expect("staple");
    let staples = OcspStaples::from([(sha1_fingerprint_upper(signer.cert_der()), staple)]);
    assert_eq!(
        verify(&signer.chain_pem(&f.ca), &staples, NOW),
        Ok(signer.blob_signer().signer_key())
    );
    assert!(matches!(
        CertificateAuthority::from_pem(&f.ca.cert_pem(), &f.other_ca.key_pem()),
        Err(PkiError::InvalidCa(_))
    ));
    assert!(matches!(
        CertificateAuthority::from_pem(&f.signer.cert_pem(), &f.ca.key_pem()),
        Err(PkiError::InvalidCa(_))
    ));
    let key =
        KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).expect("key");
    let not_a_ca = CertificateParams::default()
        .self_signed(&key)
        .expect("cert");
    assert_eq!(
        CertificateAuthority::from_pem(&not_a_ca.pem(), &key.serialize_pem()).map(|_| ()),
        Err(PkiError::InvalidCa("certificate is not a CA".into()))
    );
}

#[test]
fn issue_signer_refuses_odd_names() {
    let ca = &fixture().ca;
    for (region, domain) in [
        ("us east", "amazonaws.com"),
        ("us.east-1", "amazonaws.com"),
        ("us-east-1", "amazonaws.com."),
        ("us-east-1", "Amazonaws.com"),
        ("", "x"),
    ] {
        assert!(matches!(
            issue_signer(ca, region, domain, NOW, NOW + DAY),
            Err(PkiError::InvalidName(_))
        ));
    }
}

#[test]
fn cn_mismatch() {
    let f = fixture();
    let result = verify_signer_chain(
        &f.chain_pem,
        &[f.ca.cert_der().to_vec()],
        "managed-ssh-signer.us-west-2.amazonaws.com",
        NOW,
        &f.staples,
        true,
    );
    assert_eq!(
        result,
        Err(ChainError::CnMismatch {
            expected: "managed-ssh-signer.us-west-2.amazonaws.com".into(),
            found: SIGNER_CN.into(),
        })
    );
}

#[test]
fn cn_must_be_the_last_rdn() {
    let f = fixture();
    let key =
        KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).expect("key");
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, SIGNER_CN);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Example");
    let cert = params.signed_by(&key, &f.ca.issuer()).expect("cert");
    let chain = cert.pem() + &f.ca.cert_pem();
    assert_eq!(
        verify(&chain, &f.staples, NOW),
        Err(ChainError::CnMismatch {
            expected: SIGNER_CN.into(),
            found: String::new()
        })
    );
}

#[test]
fn untrusted_chain() {
    let f = fixture();
    for anchors in [
        vec![f.other_ca.cert_der().to_vec()],
        vec![],
        vec![b"not a certificate".to_vec()],
    ] {
        let result = verify_signer_chain(&f.chain_pem, &anchors, SIGNER_CN, NOW, &f.staples, true);
        assert!(
            matches!(result, Err(ChainError::Untrusted(_))),
            "{result:?}"
        );
    }
    // A chain that claims our root but whose leaf another CA signed.
    let forged = issue_signer(
        &f.other_ca,
        "us-east-1",
        "amazonaws.com",
        NOW - DAY,
        NOW + DAY,
    )
    .expect("issue");
    let result = verify(&forged.chain_pem(&f.ca), &f.staples, NOW);
    assert!(
        matches!(result, Err(ChainError::Untrusted(_))),
        "{result:?}"
    );
}

#[test]
fn leaf_outside_its_validity_is_untrusted() {
    let f = fixture();
    for now in [NOW - 2 * DAY, NOW + 31 * DAY] {
        let result = verify(&f.chain_pem, &f.staples, now);
        assert!(
            matches!(result, Err(ChainError::Untrusted(_))),
            "{result:?}"
        );
    }
}

#[test]
fn malformed_chains() {
    let f = fixture();
    for chain in [
        String::new(),
        "garbage".to_owned(),
        f.signer.cert_pem(),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".repeat(2),
        "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n".to_owned(),
    ] {
        let result = verify(&chain, &f.staples, NOW);
        assert!(
            matches!(result, Err(ChainError::Malformed(_))),
            "{chain:?}: {result:?}"
        );
    }
}

#[test]
fn missing_staple() {
    let f = fixture();
    assert_eq!(
        verify(&f.chain_pem, &OcspStaples::new(), NOW),
        Err(ChainError::OcspMissing {
            cn: SIGNER_CN.into()
        })
    );
    let optional = verify_signer_chain(
        &f.chain_pem,
        &[f.ca.cert_der().to_vec()],
        SIGNER_CN,
        NOW,
        &OcspStaples::new(),
        false,
    );
    assert_eq!(optional, Ok(signer_key()));
}

#[test]
fn staple_times_follow_openssl_leeway() {
    let f = fixture();
    let stale = Err(ChainError::OcspStale {
        cn: SIGNER_CN.into(),
    });
    let cases = [
        (NOW - 60, Some(NOW + DAY), Ok(signer_key())),
        (NOW - 60, None, Ok(signer_key())),
        (NOW + 299, Some(NOW + DAY), Ok(signer_key())),
        (NOW + 301, Some(NOW + DAY), stale.clone()),
        (NOW - DAY, Some(NOW - 299), Ok(signer_key())),
        (NOW - DAY, Some(NOW - 301), stale.clone()),
        (NOW, Some(NOW - 1), stale),
    ];
    for (this_update, next_update, expected) in cases {
        let staple =
            ocsp_response(f.signer.cert_der(), &f.ca, this_update, next_update).expect("staple");
        assert_eq!(
            verify_with_staple(staple, NOW),
            expected,
            "{this_update} {next_update:?}"
        );
    }
}

#[test]
fn revoked_and_unknown_staples() {
    let f = fixture();
    let revoked = CertStatus::revoked(RevokedInfo {
        revocation_time: ocsp_time(NOW - DAY).expect("time"),
        revocation_reason: None,
    });
    for (status, expected) in [
        (revoked, StapleStatus::Revoked),
        (CertStatus::unknown(), StapleStatus::Unknown),
    ] {
        let staple = build_staple(
            single(status, NOW - 60, Some(NOW + DAY)),
            &f.ca,
            &f.ca,
            NOW - 60,
        )
        .expect("staple");
        assert_eq!(
            verify_with_staple(staple.clone(), NOW),
            not_good(expected.clone())
        );
        // A present staple is checked even when staples are optional.
        let result = verify_signer_chain(
            &f.chain_pem,
            &[f.ca.cert_der().to_vec()],
            SIGNER_CN,
            NOW,
            &OcspStaples::from([(leaf_name(), staple)]),
            false,
        );
        assert_eq!(result, not_good(expected));
    }
}

#[test]
fn staple_for_another_certificate() {
    let f = fixture();
    let mut other_serial = single(CertStatus::good(), NOW, None);
    other_serial.cert_id.serial_number = SerialNumber::new(&[0x42]).expect("serial");
    let mut sha256_id = single(CertStatus::good(), NOW, None);
    sha256_id.cert_id.hash_algorithm.oid = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
    for single in [other_serial, sha256_id] {
        let staple = build_staple(single, &f.ca, &f.ca, NOW).expect("staple");
        assert_eq!(
            verify_with_staple(staple, NOW),
            not_good(StapleStatus::NoStatusForCertificate)
        );
    }
}

#[test]
fn staple_not_signed_by_the_issuer() {
    let f = fixture();
    let bad = Err(ChainError::OcspBadSignature {
        cn: SIGNER_CN.into(),
    });
    let wrong_key = build_staple(
        single(CertStatus::good(), NOW, None),
        &f.ca,
        &f.other_ca,
        NOW,
    )
    .expect("staple");
    assert_eq!(verify_with_staple(wrong_key, NOW), bad);
    // Named by a responder that is not the issuer, though signed by its key.
    let stranger =
        CertificateAuthority::generate("another root", NOW - DAY, NOW + DAY).expect("root");
    let wrong_responder =
        build_staple(single(CertStatus::good(), NOW, None), &stranger, &f.ca, NOW).expect("staple");
    assert_eq!(verify_with_staple(wrong_responder, NOW), bad);
    let from_other_ca = ocsp_response(f.signer.cert_der(), &f.other_ca, NOW, None).expect("staple");
    assert_eq!(verify_with_staple(from_other_ca, NOW), bad);
}

#[test]
fn unsuccessful_and_malformed_staples() {
    let try_later = OcspResponse::try_later().to_der().expect("der");
    assert_eq!(
        verify_with_staple(try_later, NOW),
        not_good(StapleStatus::Unsuccessful("tryLater"))
    );
    for garbage in [
        vec![],
        b"not der".to_vec(),
        vec![0x30, 0x03, 0x0a, 0x01, 0x00],
    ] {
        let result = verify_with_staple(garbage, NOW);
        assert!(
            matches!(result, Err(ChainError::Malformed(_))),
            "{result:?}"
        );
    }
}

#[test]
fn leaf_key_must_be_rsa() {
    let f = fixture();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, SIGNER_CN);
    params.not_before =
        time::OffsetDateTime::from_unix_timestamp((NOW - DAY) as i64).expect("time");
    params.not_after = time::OffsetDateTime::from_unix_timestamp((NOW + DAY) as i64).expect("time");
    let cert = params.signed_by(&key, &f.ca.issuer()).expect("cert");
    let staple = ocsp_response(cert.der(), &f.ca, NOW, None).expect("staple");
    let staples = OcspStaples::from([(sha1_fingerprint_upper(cert.der()), staple)]);
    assert_eq!(
        verify(&(cert.pem() + &f.ca.cert_pem()), &staples, NOW),
        Err(ChainError::NotRsa)
    );
}
