//! AWS Signature Version 4, verified on the server.
//!
//! The AWS SDK's `aws-sigv4` crate only signs; verification means
//! recomputing the signature from exactly what the client says it signed,
//! so this crate does that with the pitfalls handled where they arise:
//!
//! * the client's `SignedHeaders` list is authoritative (boto3 and the Rust
//!   SDK sign different sets), and `host` and every `x-amz-*` header present
//!   must be in it;
//! * a header the verifier reads a value from (Authorization, the date, the
//!   session token, the content hash) must not be repeated;
//! * the body hash is computed here: botocore does not send
//!   `X-Amz-Content-Sha256` for JSON services;
//! * the request time comes from `X-Amz-Date` (or `Date`), must lie within
//!   the skew window, and must agree with the credential scope's date;
//! * the final comparison is constant-time;
//! * the four-HMAC signing key is cached per (secret, date, region), since it
//!   changes once a day;
//! * a URL signed in its query (presigned) is verified by the same rules,
//!   with its lifetime capped by the server (`Verifier::verify_presigned`).

mod authorization;
mod canonical;
mod presigned;
mod verify;

pub use authorization::{parse_authorization, Authorization};
pub use canonical::{canonical_query, canonical_request, canonical_uri, hex_sha256};
pub use presigned::PresignLifetime;
pub use verify::{
    derive_signing_key, Credential, RequestParts, SigV4Error, SigV4ErrorKind, Verified, Verifier,
};

/// The only algorithm SigV4 defines for the Authorization header.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
