//! AWS's published SigV4 vectors, verified as a server receives them.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

use std::path::Path;
use std::time::{Duration, SystemTime};

use eic_sigv4::{
    canonical_request, hex_sha256, parse_authorization, Credential, RequestParts, SigV4ErrorKind,
    Verifier,
};
use http::{HeaderMap, HeaderName, HeaderValue};

struct Vector {
    name: String,
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
    secret: String,
    region: String,
    service: String,
    now: SystemTime,
    canonical: String,
}

fn load(dir: &Path) -> Vector {
    let ctx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("context.json")).unwrap()).unwrap();
    let raw = std::fs::read_to_string(dir.join("header-signed-request.txt")).unwrap();
    let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let request_line = lines.next().unwrap();
    let (method, rest) = request_line.split_once(' ').unwrap();
    let target = rest.rsplit_once(' ').unwrap().0;
    // What a client puts on the wire: the suite writes some paths unescaped.
    let target: String = target
        .bytes()
        .map(|b| {
            if b == b' ' || b >= 0x80 {
                format!("%{b:02X}")
            } else {
                (b as char).to_string()
            }
        })
        .collect();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        headers.append(
            HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let timestamp = ctx["timestamp"].as_str().unwrap();
    let now =
        time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
            .unwrap();
    Vector {
        name: dir.file_name().unwrap().to_string_lossy().into(),
        method: method.into(),
        path: path.into(),
        query: query.into(),
        headers,
        body: body.as_bytes().to_vec(),
        secret: ctx["credentials"]["secret_access_key"]
            .as_str()
            .unwrap()
            .into(),
        region: ctx["region"].as_str().unwrap().into(),
        service: ctx["service"].as_str().unwrap().into(),
        now: now.into(),
        canonical: std::fs::read_to_string(dir.join("header-canonical-request.txt")).unwrap(),
    }
}

fn vectors() -> Vec<Vector> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/aws-signing-test-suite/v4");
    let mut dirs: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    let vectors: Vec<Vector> = dirs.iter().map(|d| load(d)).collect();
    assert!(vectors.len() >= 25, "the suite is missing");
    vectors
}

fn verify(v: &Vector, secret: &str, now: SystemTime) -> Result<(), eic_sigv4::SigV4Error> {
    let verifier = Verifier::new(
        v.service.clone(),
        vec![v.region.clone()],
        Duration::from_secs(900),
    );
    let parts = RequestParts {
        method: &v.method,
        path: &v.path,
        query: &v.query,
        headers: &v.headers,
        body: &v.body,
    };
    verifier
        .verify(&parts, now, |akid, _token| {
            (akid == "AKIDEXAMPLE")
                .then(|| Credential {
                    secret: secret.to_owned(),
                    principal: (),
                })
                .ok_or_else(eic_sigv4::SigV4Error::unrecognized_client)
        })
        .map(|_| ())
}

#[test]
fn canonical_requests_match_the_suite() {
    for v in vectors() {
        let auth = parse_authorization(v.headers["authorization"].to_str().unwrap()).unwrap();
        let canonical = canonical_request(
            &v.method,
            &v.path,
            &v.query,
            &v.headers,
            &auth.signed_headers,
            &hex_sha256(&v.body),
        );
        assert_eq!(
            String::from_utf8(canonical).unwrap(),
            v.canonical,
            "{}",
            v.name
        );
    }
}

/// `post-sts-header-after` adds X-Amz-Security-Token after signing, which
/// some AWS services tolerate. This verifier requires every x-amz-* header to
/// be signed, so that vector must be refused, and verifies once the unsigned
/// token is gone.
const TOKEN_ADDED_AFTER_SIGNING: &str = "post-sts-header-after";

/// The vectors whose every x-amz-* header is signed, as this verifier asks.
fn signed_vectors() -> Vec<Vector> {
    let mut vectors = vectors();
    for v in &mut vectors {
        if v.name == TOKEN_ADDED_AFTER_SIGNING {
            v.headers.remove("x-amz-security-token");
        }
    }
    vectors
}

#[test]
fn every_vector_verifies() {
    for v in signed_vectors() {
        verify(&v, &v.secret, v.now).unwrap_or_else(|e| panic!("{}: {e}", v.name));
    }
}

#[test]
fn a_token_added_after_signing_is_refused() {
    let v = vectors()
        .into_iter()
        .find(|v| v.name == TOKEN_ADDED_AFTER_SIGNING)
        .unwrap();
    let e = verify(&v, &v.secret, v.now).unwrap_err();
    assert_eq!(e.kind, SigV4ErrorKind::InvalidSignature);
    assert_eq!(
        e.message,
        "'x-amz-security-token' must be a 'SignedHeader' in the AWS Authorization."
    );
}

#[test]
fn a_wrong_secret_fails_every_vector() {
    for v in signed_vectors() {
        let err = verify(&v, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ", v.now).unwrap_err();
        assert_eq!(err.kind, SigV4ErrorKind::InvalidSignature, "{}", v.name);
        assert!(
            err.message
                .starts_with("The request signature we calculated"),
            "{}",
            v.name
        );
    }
}

#[test]
fn a_changed_body_or_header_fails() {
    let mut v = vectors()
        .into_iter()
        .find(|v| v.name == "post-x-www-form-urlencoded")
        .unwrap();
    v.body.push(b'x');
    assert_eq!(
        verify(&v, &v.secret.clone(), v.now).unwrap_err().kind,
        SigV4ErrorKind::InvalidSignature
    );
    let mut v = vectors()
        .into_iter()
        .find(|v| v.name == "get-vanilla")
        .unwrap();
    v.headers.insert(
        "host",
        HeaderValue::from_static("example.amazonaws.com:444"),
    );
    assert_eq!(
        verify(&v, &v.secret.clone(), v.now).unwrap_err().kind,
        SigV4ErrorKind::InvalidSignature
    );
}

#[test]
fn the_clock_window_is_fifteen_minutes_each_way() {
    let v = vectors()
        .into_iter()
        .find(|v| v.name == "get-vanilla")
        .unwrap();
    let minute = Duration::from_secs(60);
    verify(&v, &v.secret, v.now + 15 * minute).unwrap();
    verify(&v, &v.secret, v.now - 15 * minute).unwrap();
    let late = verify(&v, &v.secret, v.now + 15 * minute + Duration::from_secs(1)).unwrap_err();
    assert_eq!(late.kind, SigV4ErrorKind::InvalidSignature);
    assert_eq!(
        late.message,
        "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z (20150830T125101Z - 15 min.)"
    );
    let early = verify(&v, &v.secret, v.now - 16 * minute).unwrap_err();
    assert!(
        early
            .message
            .starts_with("Signature not yet current: 20150830T123600Z is still later than"),
        "{}",
        early.message
    );
}

#[test]
fn scope_and_key_errors() {
    let v = vectors()
        .into_iter()
        .find(|v| v.name == "get-vanilla")
        .unwrap();
    let parts = RequestParts {
        method: &v.method,
        path: &v.path,
        query: &v.query,
        headers: &v.headers,
        body: &v.body,
    };
    let lookup = |_: &str, _: Option<&str>| {
        Ok(Credential {
            secret: v.secret.clone(),
            principal: (),
        })
    };
    let other_service = Verifier::new(
        "ec2-instance-connect",
        vec!["us-east-1".into()],
        Duration::from_secs(900),
    );
    let e = other_service.verify(&parts, v.now, lookup).unwrap_err();
    assert_eq!(e.kind, SigV4ErrorKind::InvalidSignature);
    assert!(
        e.message
            .contains("correct service: 'ec2-instance-connect'"),
        "{}",
        e.message
    );
    let other_region = Verifier::new(
        "service",
        vec!["us-west-2".into()],
        Duration::from_secs(900),
    );
    let e = other_region.verify(&parts, v.now, lookup).unwrap_err();
    assert!(
        e.message.contains("valid region, not 'us-east-1'"),
        "{}",
        e.message
    );
    let e = other_region
        .verify(&parts, v.now, |_, _| {
            Err::<Credential<()>, _>(eic_sigv4::SigV4Error::unrecognized_client())
        })
        .unwrap_err();
    assert_eq!(e.kind, SigV4ErrorKind::UnrecognizedClient);
    let mut headers = v.headers.clone();
    headers.remove("authorization");
    let parts = RequestParts {
        headers: &headers,
        ..parts
    };
    assert_eq!(
        other_region.verify(&parts, v.now, lookup).unwrap_err().kind,
        SigV4ErrorKind::MissingAuthenticationToken
    );
}
