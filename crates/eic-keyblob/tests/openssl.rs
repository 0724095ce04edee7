//! Cross-checks against the tools the official scripts run: OpenSSL 3's
//! `verify`, `dgst` and `ocsp`, GNU `base64` and `ssh-keygen`. Each test
//! works in its own temporary directory and uses the real clock, because
//! `openssl ocsp` checks staple times against it.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use eic_keyblob::{
    issue_signer, ocsp_response, render_blob, sha1_fingerprint_upper, verify_blob,
    verify_signer_chain, BlobEntry, BlobRejection, BlobVerdict, CertificateAuthority, ChainError,
    OcspStaples, SignerCertificate, SignerKey, StapleStatus, VerifyParams,
};

const CN: &str = "managed-ssh-signer.us-east-1.amazonaws.com";
const INSTANCE: &str = "i-abcd1234";
const DAY: u64 = 86_400;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Runs a bash script in `dir`; returns stdout, or panics with stderr.
fn sh(dir: &Path, script: &str) -> String {
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .output()
        .expect("bash");
    assert!(
        output.status.success(),
        "script failed: {script}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

/// Runs a bash script in `dir` that may fail; returns (success, stdout).
fn sh_status(dir: &Path, script: &str) -> (bool, String) {
    let output = Command::new("bash")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .expect("bash");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

struct OurPki {
    dir: tempfile::TempDir,
    ca: CertificateAuthority,
    signer: SignerCertificate,
}

/// Our PKI, written out as `root.pem`, `leaf.pem` and `chain.pem`.
fn our_pki() -> OurPki {
    let now = now();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca =
        CertificateAuthority::generate("eic test root", now - DAY, now + 3650 * DAY).expect("root");
    let signer =
        issue_signer(&ca, "us-east-1", "amazonaws.com", now - 3600, now + DAY).expect("signer");
    fs::write(dir.path().join("root.pem"), ca.cert_pem()).expect("write");
    fs::write(dir.path().join("leaf.pem"), signer.cert_pem()).expect("write");
    fs::write(dir.path().join("chain.pem"), signer.chain_pem(&ca)).expect("write");
    OurPki { dir, ca, signer }
}

fn entry(key_line: &str, expires_at_unix: u64) -> BlobEntry {
    BlobEntry {
        expires_at_unix,
        instance_id: INSTANCE.into(),
        caller_arn: "arn:aws:iam::123412341234:role/myrole".into(),
        request_id: "1234abcd-1234-abcd-1234abcd1234".into(),
        key_line: key_line.into(),
    }
}

fn params(key: &SignerKey) -> VerifyParams<'_> {
    VerifyParams {
        instance_id: INSTANCE,
        now_unix: now(),
        expected_fingerprint: None,
        signer_key: key,
    }
}

/// Two fresh user keys from `ssh-keygen`, with the fingerprints it prints.
fn user_keys(dir: &Path) -> Vec<(String, String)> {
    sh(
        dir,
        "ssh-keygen -q -t rsa -b 2048 -N '' -C alice@laptop -f rsa && \
         ssh-keygen -q -t ed25519 -N '' -C bob@desk -f ed25519",
    );
    ["rsa", "ed25519"]
        .iter()
        .map(|name| {
            let line = fs::read_to_string(dir.join(format!("{name}.pub"))).expect("pub");
            let fingerprint = sh(dir, &format!("ssh-keygen -lf {name}.pub | cut -d ' ' -f 2"));
            (
                line.trim_end().to_owned(),
                fingerprint.trim_end().to_owned(),
            )
        })
        .collect()
}

#[test]
fn openssl_verify_x509_strict_accepts_our_chain() {
    let pki = our_pki();
    let out = sh(
        pki.dir.path(),
        "openssl verify -x509_strict -CAfile root.pem -untrusted chain.pem leaf.pem",
    );
    assert_eq!(out, "leaf.pem: OK\n");
    // The official parser's own invocation: cert1 plus the bundle as CAfile.
    let out = sh(
        pki.dir.path(),
        "cp leaf.pem cert.pem && cat root.pem root.pem > ca-trust.pem && \
         openssl verify -x509_strict -CAfile ca-trust.pem cert.pem",
    );
    assert_eq!(out, "cert.pem: OK\n");
    let subject = sh(pki.dir.path(), "openssl x509 -noout -subject -in leaf.pem");
    assert_eq!(subject.trim_end(), format!("subject=CN = {CN}"));
}

#[test]
fn openssl_ocsp_says_good_for_our_staples() {
    let pki = our_pki();
    let now = now();
    for next_update in [Some(now + DAY), None] {
        let staple =
            ocsp_response(pki.signer.cert_der(), &pki.ca, now - 60, next_update).expect("staple");
        fs::write(pki.dir.path().join("staple.der"), &staple).expect("write");
        let (ok, out) = sh_status(
            pki.dir.path(),
            "openssl ocsp -no_nonce -issuer root.pem -cert leaf.pem -VAfile root.pem -respin staple.der 2>/dev/null",
        );
        assert!(
            ok && out.starts_with("leaf.pem: good"),
            "{next_update:?}: {out}"
        );
        let staples = OcspStaples::from([(sha1_fingerprint_upper(pki.signer.cert_der()), staple)]);
        verify_signer_chain(
            &pki.signer.chain_pem(&pki.ca),
            &[pki.ca.cert_der().to_vec()],
            CN,
            now,
            &staples,
            true,
        )
        .expect("trusted");
    }
    // A stale staple: OpenSSL warns before the status, so the script's
    // prefix test fails, and we call it stale.
    let staple = ocsp_response(
        pki.signer.cert_der(),
        &pki.ca,
        now - 2 * DAY,
        Some(now - 3600),
    )
    .expect("staple");
    fs::write(pki.dir.path().join("stale.der"), &staple).expect("write");
    let (_, out) = sh_status(
        pki.dir.path(),
        "openssl ocsp -no_nonce -issuer root.pem -cert leaf.pem -VAfile root.pem -respin stale.der 2>&1",
    );
    assert!(out.contains("WARNING: Status times invalid."), "{out}");
    assert!(!out.starts_with("leaf.pem: good"), "{out}");
    let staples = OcspStaples::from([(sha1_fingerprint_upper(pki.signer.cert_der()), staple)]);
    let result = verify_signer_chain(
        &pki.signer.chain_pem(&pki.ca),
        &[pki.ca.cert_der().to_vec()],
        CN,
        now,
        &staples,
        true,
    );
    assert_eq!(result, Err(ChainError::OcspStale { cn: CN.into() }));
}

#[test]
fn staple_names_match_openssl_sha1_fingerprints() {
    let pki = our_pki();
    let out = sh(
        pki.dir.path(),
        "openssl x509 -noout -fingerprint -sha1 -in leaf.pem | sed 's/.*=//' | tr -d ':'",
    );
    assert_eq!(
        out.trim_end(),
        sha1_fingerprint_upper(pki.signer.cert_der())
    );
}

#[test]
fn openssl_dgst_verifies_our_block_signatures() {
    let pki = our_pki();
    let dir = pki.dir.path();
    let keys = user_keys(dir);
    let entries: Vec<BlobEntry> = keys
        .iter()
        .map(|(line, _)| entry(line, now() + 60))
        .collect();
    let blob = render_blob(&entries, pki.signer.blob_signer()).expect("render");
    sh(dir, "openssl x509 -pubkey -noout -in leaf.pem > pubkey");
    for (i, block) in blob.split("\n\n").enumerate() {
        let lines: Vec<&str> = block.lines().collect();
        let signed: String = lines[..5].iter().map(|l| format!("{l}\n")).collect();
        let signature: String = lines[5..].iter().map(|l| format!("{l}\n")).collect();
        fs::write(dir.join(format!("{i}-signedData")), signed).expect("write");
        fs::write(dir.join(format!("{i}-sig")), signature).expect("write");
        let out = sh(
            dir,
            &format!(
                "base64 --decode {i}-sig > {i}-decoded && \
                 openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 \
                 -verify pubkey -signature {i}-decoded {i}-signedData"
            ),
        );
        assert_eq!(out, "Verified OK\n");
    }
    let key = pki.signer.blob_signer().signer_key();
    let verdict = verify_blob(&blob, &params(&key));
    let fingerprints: Vec<&str> = verdict
        .accepted_keys()
        .iter()
        .map(|k| k.fingerprint.as_str())
        .collect();
    let expected: Vec<&str> = keys.iter().map(|(_, fp)| fp.as_str()).collect();
    assert_eq!(
        fingerprints, expected,
        "fingerprints as ssh-keygen -lf prints them"
    );
}

/// A three-level PKI made by OpenSSL alone, the way the official unit tests
/// make theirs (with the -x509_strict fixes of upstream PR #57).
const OPENSSL_PKI: &str = r#"
cat > ca.ext <<'X'
basicConstraints = critical, CA:TRUE
keyUsage = critical, digitalSignature, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
X
cat > leaf.ext <<'X'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
X
openssl req -x509 -newkey rsa:2048 -nodes -keyout root.key -out root.pem -days 2 \
  -subj "/CN=managedssh.amazonaws.com" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,digitalSignature,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout inter.key -out inter.csr \
  -subj "/CN=intermediate.managedssh.amazonaws.com" 2>/dev/null
openssl x509 -req -in inter.csr -CA root.pem -CAkey root.key -CAcreateserial \
  -out inter.pem -days 1 -extfile ca.ext 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr \
  -subj "/CN=managed-ssh-signer.us-east-1.amazonaws.com" 2>/dev/null
openssl x509 -req -in leaf.csr -CA inter.pem -CAkey inter.key -CAcreateserial \
  -out leaf.pem -days 1 -extfile leaf.ext 2>/dev/null
cat leaf.pem inter.pem root.pem > chain.pem
# OCSP index lines: status, expiry, revocation time, serial, file, subject.
entry() {
  printf '%s\t%s\t%s\t%s\tunknown\t/CN=x\n' "$1" "$(date -u -d "+1 day" +%y%m%d%H%M%SZ)" "$2" \
    "$(openssl x509 -noout -serial -in "$3" | cut -d= -f2)"
}
staple() { # cert issuer index out [extra]
  openssl ocsp -index "$3" -rsigner "$2.pem" -rkey "$2.key" -CA "$2.pem" -issuer "$2.pem" \
    -cert "$1.pem" -respout "$4" -ndays 1 ${5:-} >/dev/null 2>&1
}
entry V "" leaf.pem > leaf.idx
entry V "" inter.pem > inter.idx
entry R "$(date -u -d "-1 hour" +%y%m%d%H%M%SZ)" leaf.pem > revoked.idx
: > empty.idx
staple leaf inter leaf.idx leaf-good.der -resp_key_id
staple inter root inter.idx inter-good.der
staple leaf inter revoked.idx leaf-revoked.der
staple leaf inter empty.idx leaf-unknown.der
"#;

fn anchor_der(dir: &Path, pem: &str) -> Vec<u8> {
    sh(
        dir,
        &format!("openssl x509 -in {pem} -outform DER -out anchor.der"),
    );
    fs::read(dir.join("anchor.der")).expect("anchor")
}

fn fingerprint_of(dir: &Path, pem: &str) -> String {
    sh(
        dir,
        &format!("openssl x509 -noout -fingerprint -sha1 -in {pem} | sed 's/.*=//' | tr -d ':'"),
    )
    .trim_end()
    .to_owned()
}

#[test]
fn openssl_made_chain_staples_and_signatures_verify_here() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    sh(dir, OPENSSL_PKI);
    let chain = fs::read_to_string(dir.join("chain.pem")).expect("chain");
    let anchors = vec![anchor_der(dir, "root.pem")];
    let leaf_name = fingerprint_of(dir, "leaf.pem");
    let inter_name = fingerprint_of(dir, "inter.pem");
    let read = |name: &str| fs::read(dir.join(name)).expect("staple");
    let staples = |leaf_staple: &str| {
        OcspStaples::from([
            (leaf_name.clone(), read(leaf_staple)),
            (inter_name.clone(), read("inter-good.der")),
        ])
    };
    let now = now();

    let (ok, out) = sh_status(
        dir,
        "openssl ocsp -no_nonce -issuer inter.pem -cert leaf.pem -VAfile inter.pem -respin leaf-good.der 2>/dev/null",
    );
    assert!(ok && out.starts_with("leaf.pem: good"), "{out}");
    let key = verify_signer_chain(&chain, &anchors, CN, now, &staples("leaf-good.der"), true)
        .expect("trusted");

    // Blocks signed by `openssl dgst -sign`, the official test helper's way,
    // with the signature wrapped by GNU base64 or on one line.
    let keys = user_keys(dir);
    let (rsa_line, rsa_fp) = &keys[0];
    let data = format!(
        "#Timestamp={}\n#Instance={INSTANCE}\n#Caller=arn:aws:iam::1:role/r\n#Request=r-1\n{rsa_line}\n",
        now + 60
    );
    fs::write(dir.join("data"), &data).expect("write");
    let sign = |salt: &str, wrap: &str| {
        let signature = sh(
            dir,
            &format!(
                "openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:{salt} \
                 -sign leaf.key data | base64 {wrap}"
            ),
        );
        format!("{data}{}\n", signature.trim_end())
    };
    for wrap in ["", "-w0"] {
        let verdict = verify_blob(&sign("32", wrap), &params(&key));
        assert_eq!(
            verdict.accepted_keys().len(),
            1,
            "wrap {wrap:?}: {verdict:?}"
        );
        assert_eq!(&verdict.accepted_keys()[0].fingerprint, rsa_fp);
        assert_eq!(&verdict.accepted_keys()[0].key_line, rsa_line);
    }
    let verdict = verify_blob(&sign("max", ""), &params(&key));
    assert!(
        matches!(
            verdict,
            BlobVerdict::Rejected(BlobRejection::BadSignature { .. })
        ),
        "{verdict:?}"
    );

    // Revoked and unknown, as OpenSSL reports them and as we do.
    for (file, openssl_word, status) in [
        ("leaf-revoked.der", "revoked", StapleStatus::Revoked),
        ("leaf-unknown.der", "unknown", StapleStatus::Unknown),
    ] {
        let (_, out) = sh_status(
            dir,
            &format!("openssl ocsp -no_nonce -issuer inter.pem -cert leaf.pem -VAfile inter.pem -respin {file} 2>/dev/null"),
        );
        assert!(
            out.starts_with(&format!("leaf.pem: {openssl_word}")),
            "{out}"
        );
        let result = verify_signer_chain(&chain, &anchors, CN, now, &staples(file), true);
        assert_eq!(
            result,
            Err(ChainError::OcspNotGood {
                cn: CN.into(),
                status
            })
        );
    }

    let mut no_intermediate_staple = staples("leaf-good.der");
    no_intermediate_staple.remove(&inter_name);
    assert_eq!(
        verify_signer_chain(&chain, &anchors, CN, now, &no_intermediate_staple, true),
        Err(ChainError::OcspMissing {
            cn: "intermediate.managedssh.amazonaws.com".into()
        })
    );
    // The leaf's staple presented for the intermediate names another cert.
    let mut swapped = staples("leaf-good.der");
    swapped.insert(inter_name.clone(), read("leaf-good.der"));
    assert!(verify_signer_chain(&chain, &anchors, CN, now, &swapped, true).is_err());
}
