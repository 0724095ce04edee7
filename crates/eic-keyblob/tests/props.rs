//! Property tests: parsing and verification never panic, whatever IMDS (or
//! an attacker in its place) serves.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

use std::sync::OnceLock;

use base64::Engine as _;
use eic_keyblob::{
    issue_signer, ocsp_response, parse_blob, render_blob, sha1_fingerprint_upper, verify_blob,
    verify_signer_chain, BlobEntry, BlobVerdict, CertificateAuthority, OcspStaples,
    SignerCertificate, VerifyParams,
};
use proptest::prelude::*;

const NOW: u64 = 1_800_000_000;
const CN: &str = "managed-ssh-signer.eu-west-1.amazonaws.com";
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDJbqKieRzA1vzLKjJ56zHXfQ7aLVHbWlOqxG6tjVcAt bob@desk";

struct Pki {
    ca: CertificateAuthority,
    signer: SignerCertificate,
    blob: String,
    staple: Vec<u8>,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca =
            CertificateAuthority::generate("prop root", NOW - 86_400, NOW + 86_400).expect("root");
        let signer =
            issue_signer(&ca, "eu-west-1", "amazonaws.com", NOW - 60, NOW + 3600).expect("signer");
        let entry = BlobEntry {
            expires_at_unix: NOW + 60,
            instance_id: "i-0123456789abcdef0".into(),
            caller_arn: "arn:aws:iam::1:user/u".into(),
            request_id: "r".into(),
            key_line: KEY.into(),
        };
        let blob = render_blob(&[entry.clone(), entry], signer.blob_signer()).expect("blob");
        let staple = ocsp_response(signer.cert_der(), &ca, NOW, Some(NOW + 60)).expect("staple");
        Pki {
            ca,
            signer,
            blob,
            staple,
        }
    })
}

fn verify(text: &str) -> BlobVerdict {
    let key = pki().signer.blob_signer().signer_key();
    verify_blob(
        text,
        &VerifyParams {
            instance_id: "i-0123456789abcdef0",
            now_unix: NOW,
            expected_fingerprint: None,
            signer_key: &key,
        },
    )
}

/// Lines that look like blob content, so blocks actually get checked.
fn blob_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(format!("#Timestamp={}", NOW + 60)),
        Just("#Instance=i-0123456789abcdef0".to_owned()),
        Just("#Timestamp=0".to_owned()),
        Just(KEY.to_owned()),
        "[A-Za-z0-9+/=]{0,100}",
        "#[A-Za-z]{0,8}=[ -~]{0,20}",
        "ssh[ -~]{0,60}",
        any::<String>(),
    ]
}

fn pem_block(der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")
}

fn check_chain(chain: &str, staples: &OcspStaples) {
    let pki = pki();
    // Only "no panic" is asserted; a mutated chain may even stay valid.
    let _ = verify_signer_chain(chain, &[pki.ca.cert_der().to_vec()], CN, NOW, staples, true);
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = parse_blob(&text);
        prop_assert!(verify(&text).accepted_keys().is_empty());
    }

    #[test]
    fn blob_like_text_never_panics(lines in prop::collection::vec(blob_line(), 0..24), final_newline: bool) {
        let mut text = lines.join("\n");
        if final_newline {
            text.push('\n');
        }
        let _ = parse_blob(&text);
        let _ = verify(&text);
    }

    #[test]
    fn mutated_blobs_never_panic_nor_yield_other_keys(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<char>()), 1..6),
    ) {
        let mut chars: Vec<char> = pki().blob.chars().collect();
        for (index, c) in edits {
            let i = index.index(chars.len());
            chars[i] = c;
        }
        let text: String = chars.into_iter().collect();
        let _ = parse_blob(&text);
        // Whatever survives, it is exactly the key that was signed.
        prop_assert!(verify(&text).accepted_keys().iter().all(|k| k.key_line == KEY));
    }

    #[test]
    fn arbitrary_pem_never_panics(text in any::<String>(), der in prop::collection::vec(any::<u8>(), 0..600)) {
        let staples = OcspStaples::new();
        check_chain(&text, &staples);
        check_chain(&(pem_block(&der) + &pem_block(&der)), &staples);
        check_chain(&format!("-----BEGIN CERTIFICATE-----\n{text}\n-----END CERTIFICATE-----\n"), &staples);
    }

    #[test]
    fn mutated_chains_and_staples_never_panic(
        cert_edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        staple_edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        truncate in any::<prop::sample::Index>(),
    ) {
        let pki = pki();
        let mut leaf = pki.signer.cert_der().to_vec();
        for (index, byte) in cert_edits {
            let i = index.index(leaf.len());
            leaf[i] = byte;
        }
        let mut staple = pki.staple.clone();
        for (index, byte) in staple_edits {
            let i = index.index(staple.len());
            staple[i] = byte;
        }
        let name = sha1_fingerprint_upper(&leaf);
        let chain = pem_block(&leaf) + &pki.ca.cert_pem();
        check_chain(&chain, &OcspStaples::from([(name.clone(), staple.clone())]));
        staple.truncate(truncate.index(staple.len() + 1));
        check_chain(&chain, &OcspStaples::from([(name, staple)]));
    }
}
