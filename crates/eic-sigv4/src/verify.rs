//! The verifier: scope, time window, then the signature itself.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
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

const AMZ_DATE: &[time::format_description::BorrowedFormatItem<'static>] =
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

        let header = match request.headers.get(http::header::AUTHORIZATION) {
            None => {
                return Err(SigV4Error::new(
                    SigV4ErrorKind::MissingAuthenticationToken,
                    "Missing Authentication Token",
                ))
            }
            Some(v) => v.to_str().map_err(|_| {
                incomplete(
                    "Authorization header contains characters that are not visible ASCII.".into(),
                )
            })?,
        };
        let auth = parse_authorization(header)?;

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

        let (amz_date, request_time) = request_time(request.headers)?;
        if amz_date.get(..8) != Some(auth.date.as_str()) {
            return Err(invalid(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
                auth.date,
                amz_date.get(..8).unwrap_or_default(),
                amz_date
            )));
        }
        self.check_skew(&amz_date, request_time, now)?;

        let token = match request.headers.get("x-amz-security-token") {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| SigV4Error::unrecognized_client())?),
        };
        let credential = lookup(&auth.access_key_id, token)?;

        // Region after the key, as AWS does: an unknown key learns nothing
        // about which regions this server serves.
        if !self.regions.contains(&auth.region) {
            return Err(invalid(format!(
                "Credential should be scoped to a valid region, not '{}'. ",
                auth.region
            )));
        }

        let body_hash = hex_sha256(request.body);
        if let Some(claimed) = request.headers.get("x-amz-content-sha256") {
            if claimed.as_bytes() != body_hash.as_bytes() {
                return Err(invalid(
                    "The provided 'x-amz-content-sha256' header does not match what was computed."
                        .into(),
                ));
            }
        }
        let expected = self.signature(&auth, request, &amz_date, &credential.secret, &body_hash);
        if !bool::from(expected.ct_eq(&auth.signature)) {
            return Err(invalid(
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
                    .into(),
            ));
        }
        Ok(Verified {
            principal: credential.principal,
            access_key_id: auth.access_key_id,
            region: auth.region,
            request_time,
        })
    }

    fn check_skew(
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

    fn signature(
        &self,
        auth: &Authorization,
        request: &RequestParts<'_>,
        amz_date: &str,
        secret: &str,
        body_hash: &str,
    ) -> [u8; 32] {
        let canonical = canonical_request(
            request.method,
            request.path,
            request.query,
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
        hmac(&key, string_to_sign.as_bytes())
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
    if let Some(v) = headers.get("x-amz-date") {
        let text = v
            .to_str()
            .map_err(|_| incomplete("X-Amz-Date must be ASCII."))?;
        let at = PrimitiveDateTime::parse(text, AMZ_DATE)
            .map_err(|_| {
                incomplete("X-Amz-Date must be in the ISO-8601 basic format YYYYMMDD'T'HHMMSS'Z'.")
            })?
            .assume_utc();
        return Ok((text.to_owned(), at.into()));
    }
    if let Some(v) = headers.get(http::header::DATE) {
        let at = v
            .to_str()
            .ok()
            .and_then(|t| httpdate::parse_http_date(t).ok())
            .ok_or_else(|| incomplete("Date must be an HTTP date (RFC 7231)."))?;
        return Ok((format_amz(at), at));
    }
    Err(incomplete(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
    ))
}

fn format_amz(t: SystemTime) -> String {
    OffsetDateTime::from(t)
        .format(AMZ_DATE)
        .unwrap_or_else(|_| "invalid-time".into())
}
