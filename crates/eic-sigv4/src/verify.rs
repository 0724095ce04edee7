//! The verifier: scope, time window, then the signature itself.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::authorization::{parse_authorization, Authorization};
use crate::canonical::{canonical_request, hex_sha256};
use crate::ALGORITHM;

type HmacSha256 = Hmac<Sha256>;

/// Which AWS error a failure is; the server maps these to wire codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigV4ErrorKind {
    MissingAuthenticationToken,
    IncompleteSignature,
    InvalidSignature,
    UnrecognizedClient,
    ExpiredToken,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigV4Error {
    pub kind: SigV4ErrorKind,
    pub message: String,
}

impl SigV4Error {
    /// An access key or session token this server does not know.
    pub fn unrecognized_client() -> Self {
        SigV4Error::new(
            SigV4ErrorKind::UnrecognizedClient,
            "The security token included in the request is invalid.",
        )
    }

    pub fn new(kind: SigV4ErrorKind, message: impl Into<String>) -> Self {
        SigV4Error {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for SigV4Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for SigV4Error {}

/// What the server knows about an access key: its secret, and whatever the
/// caller wants back on success (the principal).
pub struct Credential<T> {
    pub secret: String,
    pub principal: T,
}

/// A request verified to come from the holder of `access_key_id`'s secret.
#[derive(Debug)]
pub struct Verified<T> {
    pub principal: T,
    pub access_key_id: String,
    pub region: String,
    pub request_time: SystemTime,
}

/// The request as received: the raw path and query, every header, the body.
pub struct RequestParts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Verifies requests for one service in a set of regions.
pub struct Verifier {
    service: String,
    regions: Vec<String>,
    max_skew: Duration,
    signing_keys: Mutex<HashMap<[u8; 32], [u8; 32]>>,
}

/// Entries are 64 bytes; a day's worth for every key and region fits easily.
/// When full the cache is simply dropped and refilled.
const SIGNING_KEY_CACHE_ENTRIES: usize = 16_384;

pub(crate) const AMZ_DATE: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

impl Verifier {
    /// `regions` lists the regions this server answers for; a credential
    /// scoped to any other region is refused as AWS refuses it.
    pub fn new(service: impl Into<String>, regions: Vec<String>, max_skew: Duration) -> Self {
        Verifier {
            service: service.into(),
            regions,
            max_skew,
            signing_keys: Mutex::new(HashMap::new()),
        }
    }

    /// Verifies `request` at time `now`. `lookup` resolves an access key id
    /// (and the session token, when the request carries one) to a credential,
    /// or says why it cannot (`UnrecognizedClient`, `ExpiredToken`).
    ///
    /// Checks run in the order AWS's front ends apply them: header syntax,
    /// credential scope, request time, the access key, then the signature, so
    /// a malformed request is reported as such before any secret is touched.
    pub fn verify<T>(
        &self,
        request: &RequestParts<'_>,
        now: SystemTime,
        lookup: impl FnOnce(&str, Option<&str>) -> Result<Credential<T>, SigV4Error>,
    ) -> Result<Verified<T>, SigV4Error> {
        let invalid = |m: String| SigV4Error::new(SigV4ErrorKind::InvalidSignature, m);
        let incomplete = |m: String| SigV4Error::new(SigV4ErrorKind::IncompleteSignature, m);

        let header = match single(request.headers, "authorization") {
            Err(Repeated) => return Err(repeated_authorization(request.headers)),
            Ok(None) => {
                return Err(SigV4Error::new(
                    SigV4ErrorKind::MissingAuthenticationToken,
                    "Missing Authentication Token",
                ))
            }
            Ok(Some(v)) => v.to_str().map_err(|_| {
                incomplete(
                    "Authorization header contains characters that are not visible ASCII.".into(),
                )
            })?,
        };
        let auth = parse_authorization(header)?;

        self.check_scope(&auth, request.headers)?;

        let (amz_date, request_time) = request_time(request.headers)?;
        check_scope_date(&auth, &amz_date)?;
        self.check_skew(&amz_date, request_time, now)?;

        let token = match single(request.headers, "x-amz-security-token") {
            Err(Repeated) => return Err(SigV4Error::unrecognized_client()),
            Ok(None) => None,
            Ok(Some(v)) => Some(v.to_str().map_err(|_| SigV4Error::unrecognized_client())?),
        };
        let credential = lookup(&auth.access_key_id, token)?;

        // Region after the key, as AWS does: an unknown key learns nothing
        // about which regions this server serves.
        self.check_region(&auth)?;

        let body_hash = hex_sha256(request.body);
        let claimed_hash_matches = match single(request.headers, "x-amz-content-sha256") {
            Ok(None) => true,
            Ok(Some(claimed)) => claimed.as_bytes() == body_hash.as_bytes(),
            Err(Repeated) => false,
        };
        if !claimed_hash_matches {
            return Err(invalid(
                "The provided 'x-amz-content-sha256' header does not match what was computed."
                    .into(),
            ));
        }
        self.check_signature(
            &auth,
            request,
            request.query,
            &amz_date,
            &credential.secret,
            &body_hash,
        )?;
        Ok(Verified {
            principal: credential.principal,
            access_key_id: auth.access_key_id,
            region: auth.region,
            request_time,
        })
    }

    pub(crate) fn check_skew(
        &self,
        amz_date: &str,
        at: SystemTime,
        now: SystemTime,
    ) -> Result<(), SigV4Error> {
        let minutes = self.max_skew.as_secs() / 60;
        if at + self.max_skew < now {
            return Err(SigV4Error::new(
                SigV4ErrorKind::InvalidSignature,
                format!(
                    "Signature expired: {amz_date} is now earlier than {} ({} - {minutes} min.)",
                    format_amz(now - self.max_skew),
                    format_amz(now)
                ),
            ));
        }
        if at > now + self.max_skew {
            return Err(SigV4Error::new(
                SigV4ErrorKind::InvalidSignature,
                format!(
                    "Signature not yet current: {amz_date} is still later than {} ({} + {minutes} min.)",
                    format_amz(now + self.max_skew),
                    format_amz(now)
                ),
            ));
        }
        Ok(())
    }

    /// The scope's service and terminator, and the signed headers: `host`
    /// and every `x-amz-*` header present.
    pub(crate) fn check_scope(
        &self,
        auth: &Authorization,
        headers: &HeaderMap,
    ) -> Result<(), SigV4Error> {
        let invalid = |m: String| SigV4Error::new(SigV4ErrorKind::InvalidSignature, m);
        if auth.service != self.service {
            return Err(invalid(format!(
                "Credential should be scoped to correct service: '{}'. ",
                self.service
            )));
        }
        if auth.terminator != "aws4_request" {
            return Err(invalid(format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'. ",
                auth.terminator
            )));
        }
        if !auth.signed_headers.iter().any(|h| h == "host") {
            return Err(invalid(
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into(),
            ));
        }
        // Every x-amz-* header present must be signed (S3's rule, and
        // garage's): these headers steer the request (X-Amz-Target picks the
        // operation, X-Amz-Security-Token the credential), and one outside
        // the signature can be added or changed by whoever relays it. S3
        // refuses with an XML AccessDenied, "There were headers present in
        // the request which were not signed"; AWS's JSON front ends report a
        // header they require signed as they report `host` above, with
        // InvalidSignatureException, and this does the same.
        let mut unsigned: Vec<&str> = headers
            .keys()
            .map(|name| name.as_str())
            .filter(|name| {
                name.starts_with("x-amz-") && !auth.signed_headers.iter().any(|h| h == name)
            })
            .collect();
        if !unsigned.is_empty() {
            unsigned.sort_unstable();
            return Err(invalid(
                unsigned
                    .iter()
                    .map(|name| {
                        format!("'{name}' must be a 'SignedHeader' in the AWS Authorization.")
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
            ));
        }
        Ok(())
    }

    pub(crate) fn check_region(&self, auth: &Authorization) -> Result<(), SigV4Error> {
        if self.regions.contains(&auth.region) {
            return Ok(());
        }
        Err(SigV4Error::new(
            SigV4ErrorKind::InvalidSignature,
            format!(
                "Credential should be scoped to a valid region, not '{}'. ",
                auth.region
            ),
        ))
    }

    /// Recomputes the signature over `query` (the received one, or a
    /// presigned URL's without its signature) and compares in constant time.
    pub(crate) fn check_signature(
        &self,
        auth: &Authorization,
        request: &RequestParts<'_>,
        query: &str,
        amz_date: &str,
        secret: &str,
        body_hash: &str,
    ) -> Result<(), SigV4Error> {
        let canonical = canonical_request(
            request.method,
            request.path,
            query,
            request.headers,
            &auth.signed_headers,
            body_hash,
        );
        let string_to_sign = format!(
            "{ALGORITHM}\n{amz_date}\n{}\n{}",
            auth.scope(),
            hex_sha256(&canonical)
        );
        let key = self.signing_key(secret, &auth.date, &auth.region);
        let expected = hmac(&key, string_to_sign.as_bytes());
        if bool::from(expected.ct_eq(&auth.signature)) {
            return Ok(());
        }
        Err(SigV4Error::new(
            SigV4ErrorKind::InvalidSignature,
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        ))
    }

    /// The derived key for (secret, date, region), from the cache when it is
    /// there. The cache is keyed by a hash of all three so that a rotated
    /// secret never reuses the old key, and no secret is kept as a map key.
    fn signing_key(&self, secret: &str, date: &str, region: &str) -> [u8; 32] {
        let mut id = Sha256::new();
        for part in [secret, date, region] {
            id.update((part.len() as u64).to_le_bytes());
            id.update(part.as_bytes());
        }
        let id: [u8; 32] = id.finalize().into();
        let mut cache = self.signing_keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = cache.get(&id) {
            return *key;
        }
        let key = derive_signing_key(secret, date, region, &self.service);
        if cache.len() >= SIGNING_KEY_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(id, key);
        key
    }
}

/// The credential scope's date must be the request time's.
pub(crate) fn check_scope_date(auth: &Authorization, amz_date: &str) -> Result<(), SigV4Error> {
    if amz_date.get(..8) == Some(auth.date.as_str()) {
        return Ok(());
    }
    Err(SigV4Error::new(
        SigV4ErrorKind::InvalidSignature,
        format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
            auth.date,
            amz_date.get(..8).unwrap_or_default(),
            amz_date
        ),
    ))
}

/// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request")`.
pub fn derive_signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The request time from `X-Amz-Date`, or from `Date` as SigV4 allows.
fn request_time(headers: &HeaderMap) -> Result<(String, SystemTime), SigV4Error> {
    let incomplete = |m: &str| SigV4Error::new(SigV4ErrorKind::IncompleteSignature, m);
    let bad_amz_date =
        || incomplete("X-Amz-Date must be in the ISO-8601 basic format YYYYMMDD'T'HHMMSS'Z'.");
    let bad_date = || incomplete("Date must be an HTTP date (RFC 7231).");
    if let Some(v) = single(headers, "x-amz-date").map_err(|Repeated| bad_amz_date())? {
        let text = v
            .to_str()
            .map_err(|_| incomplete("X-Amz-Date must be ASCII."))?;
        let at = PrimitiveDateTime::parse(text, AMZ_DATE)
            .map_err(|_| bad_amz_date())?
            .assume_utc();
        return Ok((text.to_owned(), at.into()));
    }
    if let Some(v) = single(headers, "date").map_err(|Repeated| bad_date())? {
        let at = v
            .to_str()
            .ok()
            .and_then(|t| httpdate::parse_http_date(t).ok())
            .ok_or_else(bad_date)?;
        return Ok((format_amz(at), at));
    }
    Err(incomplete(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
    ))
}

/// A header that occurs more than once.
struct Repeated;

/// The value of a header the verifier acts on. The canonical request joins
/// repeated values with ',', so acting on any one of them would act on a
/// value the client never signed alone: callers refuse a repeat as AWS
/// refuses the joined value, which is no valid date, token or hash.
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h HeaderValue>, Repeated> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (value, None) => Ok(value),
        _ => Err(Repeated),
    }
}

/// AWS joins repeated Authorization headers with ',' and then fails on the
/// second one's algorithm word, which has no '=' (envoyproxy/envoy#23702,
/// from Lambda); the message is that one.
fn repeated_authorization(headers: &HeaderMap) -> SigV4Error {
    let values: Vec<String> = headers
        .get_all("authorization")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let word = values
        .get(1)
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or_default();
    SigV4Error::new(
        SigV4ErrorKind::IncompleteSignature,
        format!(
            "'{}' not a valid key=value pair (missing equal-sign) in Authorization header: '{}'.",
            word.chars().take(80).collect::<String>(),
            values.join(",").chars().take(200).collect::<String>()
        ),
    )
}

fn format_amz(t: SystemTime) -> String {
    OffsetDateTime::from(t)
        .format(AMZ_DATE)
        .unwrap_or_else(|_| "invalid-time".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const SCOPE: &str = "20150830/us-east-1/ec2-instance-connect/aws4_request";
    const NOW: &str = "20150830T123600Z";
    const BODY: &[u8] = br#"{"InstanceId": "i-0123456789abcdef0", "InstanceOSUser": "ec2-user"}"#;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    /// What boto3 sends with temporary credentials, unsigned (api-spec §1,
    /// captured), and the headers it signs.
    fn boto3() -> (HeaderMap, Vec<&'static str>) {
        let request = headers(&[
            ("host", "127.0.0.1:8765"),
            (
                "x-amz-target",
                "AWSEC2InstanceConnectService.SendSSHPublicKey",
            ),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-date", NOW),
            ("x-amz-security-token", "TOKENEXAMPLE"),
            (
                "amz-sdk-invocation-id",
                "0b9c8a3e-36c8-4a47-9f2c-1b6d1c0e7f55",
            ),
            ("amz-sdk-request", "attempt=1; max=2"),
            ("user-agent", "Boto3/1.44.5 md/Botocore#1.44.5"),
            ("accept-encoding", "identity"),
            ("content-length", "69"),
        ]);
        let signed = vec![
            "content-type",
            "host",
            "x-amz-date",
            "x-amz-security-token",
            "x-amz-target",
        ];
        (request, signed)
    }

    /// The same for the AWS SDK for Rust, which also signs content-length
    /// and its x-amz-user-agent.
    fn rust_sdk() -> (HeaderMap, Vec<&'static str>) {
        let agent =
            "aws-sdk-rust/1.7.0 ua/2.1 api/ec2instanceconnect/1.120.0 os/linux lang/rust/1.95.0";
        let request = headers(&[
            ("content-type", "application/x-amz-json-1.1"),
            (
                "x-amz-target",
                "AWSEC2InstanceConnectService.SendSSHPublicKey",
            ),
            ("content-length", "69"),
            ("user-agent", agent),
            ("x-amz-user-agent", agent),
            ("x-amz-date", NOW),
            ("x-amz-security-token", "TOKENEXAMPLE"),
            ("amz-sdk-request", "attempt=1; max=3"),
            (
                "amz-sdk-invocation-id",
                "0b9c8a3e-36c8-4a47-9f2c-1b6d1c0e7f55",
            ),
            ("host", "127.0.0.1:8765"),
        ]);
        let signed = vec![
            "content-length",
            "content-type",
            "host",
            "x-amz-date",
            "x-amz-security-token",
            "x-amz-target",
            "x-amz-user-agent",
        ];
        (request, signed)
    }

    /// Signs the request over `signed` as a client does, at `NOW`.
    fn sign(request: &mut HeaderMap, signed: &[&str]) {
        let signed: Vec<String> = signed.iter().map(|h| h.to_string()).collect();
        let canonical = canonical_request("POST", "/", "", request, &signed, &hex_sha256(BODY));
        let string_to_sign = format!("{ALGORITHM}\n{NOW}\n{SCOPE}\n{}", hex_sha256(&canonical));
        let key = derive_signing_key(SECRET, "20150830", "us-east-1", "ec2-instance-connect");
        let authorization = format!(
            "{ALGORITHM} Credential=AKIDEXAMPLE/{SCOPE}, SignedHeaders={}, Signature={}",
            signed.join(";"),
            hex::encode(hmac(&key, string_to_sign.as_bytes()))
        );
        request.append(
            "authorization",
            HeaderValue::from_str(&authorization).unwrap(),
        );
    }

    /// Verifies at `NOW`; the principal is the session token the lookup saw.
    fn verify(request: &HeaderMap) -> Result<Option<String>, SigV4Error> {
        let parts = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: request,
            body: BODY,
        };
        let now = PrimitiveDateTime::parse(NOW, AMZ_DATE)
            .unwrap()
            .assume_utc();
        Verifier::new(
            "ec2-instance-connect",
            vec!["us-east-1".into()],
            Duration::from_secs(900),
        )
        .verify(&parts, now.into(), |access_key_id, token| {
            assert_eq!(access_key_id, "AKIDEXAMPLE");
            Ok(Credential {
                secret: SECRET.into(),
                principal: token.map(str::to_owned),
            })
        })
        .map(|verified| verified.principal)
    }

    #[test]
    fn boto3_and_rust_sdk_requests_verify() {
        for (mut request, signed) in [boto3(), rust_sdk()] {
            sign(&mut request, &signed);
            assert_eq!(verify(&request).unwrap().as_deref(), Some("TOKENEXAMPLE"));
        }
    }

    #[test]
    fn host_must_be_signed() {
        let (mut request, signed) = boto3();
        sign(&mut request, &signed[..1]);
        let e = verify(&request).unwrap_err();
        assert_eq!(e.kind, SigV4ErrorKind::InvalidSignature);
        assert_eq!(
            e.message,
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
        );
    }

    #[test]
    fn every_x_amz_header_must_be_signed() {
        for (client, name) in [
            (boto3 as fn() -> _, "x-amz-target"),
            (boto3, "x-amz-security-token"),
            (boto3, "x-amz-date"),
            (boto3, "x-amz-content-sha256"),
            (rust_sdk, "x-amz-target"),
            (rust_sdk, "x-amz-user-agent"),
        ] {
            let (mut request, mut signed) = client();
            let hash = HeaderValue::from_str(&hex_sha256(BODY)).unwrap();
            request.insert("x-amz-content-sha256", hash);
            signed.push("x-amz-content-sha256");
            signed.sort_unstable();
            let mut all_signed = request.clone();
            sign(&mut all_signed, &signed);
            assert!(verify(&all_signed).is_ok(), "{name}");

            signed.retain(|h| *h != name);
            sign(&mut request, &signed);
            let e = verify(&request).unwrap_err();
            assert_eq!(e.kind, SigV4ErrorKind::InvalidSignature, "{name}");
            assert_eq!(
                e.message,
                format!("'{name}' must be a 'SignedHeader' in the AWS Authorization."),
            );
        }
    }

    #[test]
    fn x_amz_headers_added_after_signing_are_all_named() {
        let (mut request, signed) = boto3();
        sign(&mut request, &signed);
        request.insert("x-amz-meta-b", HeaderValue::from_static("1"));
        request.insert("x-amz-a", HeaderValue::from_static("1"));
        let e = verify(&request).unwrap_err();
        assert_eq!(e.kind, SigV4ErrorKind::InvalidSignature);
        assert_eq!(
            e.message,
            "'x-amz-a' must be a 'SignedHeader' in the AWS Authorization. \
             'x-amz-meta-b' must be a 'SignedHeader' in the AWS Authorization."
        );
    }

    /// Headers that signers leave unsigned by design: botocore and the Rust
    /// SDK skip user-agent and X-Ray's x-amzn-trace-id (not an x-amz-*).
    #[test]
    fn other_unsigned_headers_are_allowed() {
        let (mut request, signed) = rust_sdk();
        request.insert(
            "x-amzn-trace-id",
            HeaderValue::from_static("Root=1-5759e988-bd862e3fe1be46a994272793"),
        );
        sign(&mut request, &signed);
        request.insert("x-forwarded-for", HeaderValue::from_static("192.0.2.1"));
        assert!(verify(&request).is_ok());
    }

    #[test]
    fn a_repeated_authorization_header_is_refused() {
        let (mut request, signed) = boto3();
        sign(&mut request, &signed);
        let first = request["authorization"].clone();
        for second in [first, HeaderValue::from_static("Bearer abc")] {
            let mut request = request.clone();
            request.append("authorization", second.clone());
            let e = verify(&request).unwrap_err();
            assert_eq!(e.kind, SigV4ErrorKind::IncompleteSignature);
            let word = second.to_str().unwrap().split(' ').next().unwrap();
            assert!(
                e.message.starts_with(&format!(
                    "'{word}' not a valid key=value pair (missing equal-sign) in Authorization header: 'AWS4-HMAC-SHA256 Credential="
                )),
                "{}",
                e.message
            );
        }
    }

    /// A client could sign both values of a repeated header; the verifier
    /// must still not pick one of them to act on.
    #[test]
    fn repeated_values_the_verifier_reads_are_refused() {
        let hash = hex_sha256(BODY);
        for (name, first, second, kind) in [
            ("x-amz-date", NOW, NOW, SigV4ErrorKind::IncompleteSignature),
            (
                "x-amz-security-token",
                "TOKENEXAMPLE",
                "OTHERTOKEN",
                SigV4ErrorKind::UnrecognizedClient,
            ),
            (
                "x-amz-content-sha256",
                &hash,
                &hash,
                SigV4ErrorKind::InvalidSignature,
            ),
        ] {
            let (mut request, mut signed) = boto3();
            request.insert(name, HeaderValue::from_str(first).unwrap());
            if !signed.contains(&name) {
                signed.push(name);
                signed.sort_unstable();
            }
            let mut once = request.clone();
            sign(&mut once, &signed);
            assert!(verify(&once).is_ok(), "{name}");
            request.append(name, HeaderValue::from_str(second).unwrap());
            sign(&mut request, &signed);
            assert_eq!(verify(&request).unwrap_err().kind, kind, "{name}");
        }
    }

    #[test]
    fn a_repeated_date_header_is_refused() {
        let (mut request, _) = boto3();
        request.remove("x-amz-date");
        request.insert(
            "date",
            HeaderValue::from_static("Sun, 30 Aug 2015 12:36:00 GMT"),
        );
        let signed = [
            "content-type",
            "date",
            "host",
            "x-amz-security-token",
            "x-amz-target",
        ];
        let mut once = request.clone();
        sign(&mut once, &signed);
        assert!(verify(&once).is_ok());
        request.append(
            "date",
            HeaderValue::from_static("Sun, 30 Aug 2015 12:36:00 GMT"),
        );
        sign(&mut request, &signed);
        let e = verify(&request).unwrap_err();
        assert_eq!(e.kind, SigV4ErrorKind::IncompleteSignature);
        assert_eq!(e.message, "Date must be an HTTP date (RFC 7231).");
    }
}
