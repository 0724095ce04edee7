//! AWS's published SigV4 vectors, verified as a server receives them.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

use std::path::Path;
use std::time::{Duration, SystemTime};

use eic_sigv4::{
    canonical_request, hex_sha256, parse_authorization, Credential, PresignLifetime, RequestParts,
    SigV4ErrorKind, Verifier,
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

/// `kind` is `header` or `query`: the two forms each vector is signed in.
fn load(dir: &Path, kind: &str) -> Vector {
    let ctx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("context.json")).unwrap()).unwrap();
    let raw = std::fs::read_to_string(dir.join(format!("{kind}-signed-request.txt"))).unwrap();
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
        canonical: std::fs::read_to_string(dir.join(format!("{kind}-canonical-request.txt")))
            .unwrap(),
    }
}

fn vectors() -> Vec<Vector> {
    vectors_signed("header")
}

/// Every vector of the suite in one form (`header` or `query`), by name.
fn vectors_signed(kind: &str) -> Vec<Vector> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/aws-signing-test-suite/v4");
    let mut dirs: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    let vectors: Vec<Vector> = dirs.iter().map(|d| load(d, kind)).collect();
    assert!(vectors.len() >= 25, "the suite is missing");
    vectors
}

fn verifier(v: &Vector) -> Verifier {
    Verifier::new(
        v.service.clone(),
        vec![v.region.clone()],
        Duration::from_secs(900),
    )
}

fn parts(v: &Vector) -> RequestParts<'_> {
    RequestParts {
        method: &v.method,
        path: &v.path,
        query: &v.query,
        headers: &v.headers,
        body: &v.body,
    }
}

/// The suite's one access key, with `secret`.
fn lookup(
    secret: &str,
) -> impl FnOnce(&str, Option<&str>) -> Result<Credential<()>, eic_sigv4::SigV4Error> + '_ {
    move |akid, _token| {
        (akid == "AKIDEXAMPLE")
            .then(|| Credential {
                secret: secret.to_owned(),
                principal: (),
            })
            .ok_or_else(eic_sigv4::SigV4Error::unrecognized_client)
    }
}

fn verify(v: &Vector, secret: &str, now: SystemTime) -> Result<(), eic_sigv4::SigV4Error> {
    verifier(v)
        .verify(&parts(v), now, lookup(secret))
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

/// The same vectors signed in the query (presigned URLs), as a server
/// receives them.
fn presigned_vectors() -> Vec<Vector> {
    vectors_signed("query")
}

fn vanilla_presigned() -> Vector {
    presigned_vectors()
        .into_iter()
        .find(|v| v.name == "get-vanilla")
        .unwrap()
}

const LIFETIME: PresignLifetime = PresignLifetime {
    default: Duration::from_secs(300),
    max: Duration::from_secs(3600),
};

fn verify_presigned(
    v: &Vector,
    secret: &str,
    now: SystemTime,
    lifetime: PresignLifetime,
) -> Result<(), eic_sigv4::SigV4Error> {
    verifier(v)
        .verify_presigned(&parts(v), now, lifetime, lookup(secret))
        .map(|_| ())
}

#[test]
fn every_presigned_vector_verifies() {
    for v in presigned_vectors() {
        let result = verify_presigned(&v, &v.secret, v.now, LIFETIME);
        if v.name == TOKEN_ADDED_AFTER_SIGNING {
            // Its token was appended to the URL after signing: the token
            // picks the credential, so it must be under the signature.
            let e = result.unwrap_err();
            assert_eq!(e.kind, SigV4ErrorKind::InvalidSignature);
        } else {
            result.unwrap_or_else(|e| panic!("{}: {e}", v.name));
        }
    }
}

#[test]
fn presigned_vectors_fail_with_a_wrong_secret_or_a_changed_query() {
    for v in presigned_vectors() {
        let e = verify_presigned(
            &v,
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ",
            v.now,
            LIFETIME,
        )
        .unwrap_err();
        assert_eq!(e.kind, SigV4ErrorKind::InvalidSignature, "{}", v.name);
        let mut changed = v;
        changed.query.push_str("&extra=1");
        let e = verify_presigned(&changed, &changed.secret, changed.now, LIFETIME).unwrap_err();
        assert_eq!(e.kind, SigV4ErrorKind::InvalidSignature, "{}", changed.name);
    }
}

#[test]
fn a_presigned_url_lives_as_long_as_it_says_within_the_cap() {
    let v = vanilla_presigned();
    // X-Amz-Expires=3600: good at its last second, expired after.
    let hour = Duration::from_secs(3600);
    verify_presigned(&v, &v.secret, v.now + hour, LIFETIME).unwrap();
    let e = verify_presigned(
        &v,
        &v.secret,
        v.now + hour + Duration::from_secs(1),
        LIFETIME,
    )
    .unwrap_err();
    assert_eq!(e.message, "Request has expired");
    // The server's cap shortens it.
    let capped = PresignLifetime {
        default: Duration::from_secs(60),
        max: Duration::from_secs(60),
    };
    verify_presigned(&v, &v.secret, v.now + Duration::from_secs(60), capped).unwrap();
    let e = verify_presigned(&v, &v.secret, v.now + Duration::from_secs(61), capped).unwrap_err();
    assert_eq!(e.message, "Request has expired");
    // Signed in the future beyond the skew window.
    let e =
        verify_presigned(&v, &v.secret, v.now - Duration::from_secs(901), LIFETIME).unwrap_err();
    assert!(
        e.message.starts_with("Signature not yet current"),
        "{}",
        e.message
    );
}

#[test]
fn presigned_parameters_are_each_given_once_and_all_there() {
    let v = vanilla_presigned();
    let mut twice = Vector {
        ..vanilla_presigned()
    };
    twice.query.push_str("&X-Amz-Date=20150830T123600Z");
    let e = verify_presigned(&twice, &twice.secret, twice.now, LIFETIME).unwrap_err();
    assert_eq!(e.kind, SigV4ErrorKind::IncompleteSignature);
    assert_eq!(e.message, "X-Amz-Date is given more than once.");
    for name in ["X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature"] {
        let mut without = vanilla_presigned();
        without.query = v
            .query
            .split('&')
            .filter(|p| !p.starts_with(&format!("{name}=")))
            .collect::<Vec<_>>()
            .join("&");
        let e = verify_presigned(&without, &without.secret, without.now, LIFETIME).unwrap_err();
        assert_eq!(e.kind, SigV4ErrorKind::IncompleteSignature, "{name}");
    }
    // No credential at all: not a signed request.
    let mut bare = vanilla_presigned();
    bare.query = String::new();
    let e = verify_presigned(&bare, &bare.secret, bare.now, LIFETIME).unwrap_err();
    assert_eq!(e.kind, SigV4ErrorKind::MissingAuthenticationToken);
}
