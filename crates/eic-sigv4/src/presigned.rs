//! SigV4 query presigning: the signature in the URL (`X-Amz-Algorithm`,
//! `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`, `X-Amz-SignedHeaders`,
//! `X-Amz-Signature`, optionally `X-Amz-Security-Token`), as botocore's
//! `generate_presigned_url` and the CLI v2's `open-tunnel` send it.
//!
//! The same rules as the header form, plus the URL's own: each of those
//! parameters exactly once; the canonical query is the received one without
//! `X-Amz-Signature`; the lifetime is the client's `X-Amz-Expires`, capped
//! by the server, or the server's default when the client gives none.

use std::time::{Duration, SystemTime};

use time::PrimitiveDateTime;

use crate::authorization::parse_authorization;
use crate::canonical::{hex_sha256, percent_decode};
use crate::verify::{
    check_scope_date, Credential, RequestParts, SigV4Error, SigV4ErrorKind, Verified, Verifier,
    AMZ_DATE,
};
use crate::ALGORITHM;

/// How long a presigned URL may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresignLifetime {
    /// When the URL has no `X-Amz-Expires`.
    pub default: Duration,
    /// The most honoured; a longer `X-Amz-Expires` counts as this.
    pub max: Duration,
}

/// The presigning parameters, each read once.
const PARAMETERS: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

impl Verifier {
    /// Verifies a request signed in its query at time `now`. `lookup` is as
    /// for [`Verifier::verify`].
    pub fn verify_presigned<T>(
        &self,
        request: &RequestParts<'_>,
        now: SystemTime,
        lifetime: PresignLifetime,
        lookup: impl FnOnce(&str, Option<&str>) -> Result<Credential<T>, SigV4Error>,
    ) -> Result<Verified<T>, SigV4Error> {
        let invalid = |m: String| SigV4Error::new(SigV4ErrorKind::InvalidSignature, m);
        let incomplete = |m: String| SigV4Error::new(SigV4ErrorKind::IncompleteSignature, m);

        let mut found: [Option<String>; PARAMETERS.len()] = Default::default();
        let mut unsigned_query = Vec::new();
        for pair in request.query.split('&').filter(|p| !p.is_empty()) {
            let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = String::from_utf8_lossy(&percent_decode(raw_name)).into_owned();
            if let Some(i) = PARAMETERS.iter().position(|p| *p == name) {
                if found[i].is_some() {
                    return Err(incomplete(format!("{name} is given more than once.")));
                }
                let value = String::from_utf8(percent_decode(raw_value))
                    .map_err(|_| incomplete(format!("{name} is not UTF-8.")))?;
                found[i] = Some(value);
            }
            if name != "X-Amz-Signature" {
                unsigned_query.push(pair);
            }
        }
        let [algorithm, credential, date, expires, signed_headers, signature, token] = found;
        let Some(credential) = credential else {
            return Err(SigV4Error::new(
                SigV4ErrorKind::MissingAuthenticationToken,
                "Missing Authentication Token",
            ));
        };
        let missing = |name: &str| {
            incomplete(format!(
                "Query-string authentication requires the {name} parameter."
            ))
        };
        if algorithm.as_deref() != Some(ALGORITHM) {
            return Err(incomplete(format!("X-Amz-Algorithm must be {ALGORITHM}.")));
        }
        let date = date.ok_or_else(|| missing("X-Amz-Date"))?;
        let signed_headers = signed_headers.ok_or_else(|| missing("X-Amz-SignedHeaders"))?;
        let signature = signature.ok_or_else(|| missing("X-Amz-Signature"))?;
        // The header form's parser checks the credential, the header list
        // and the signature's syntax with AWS's wording.
        let auth = parse_authorization(&format!(
            "{ALGORITHM} Credential={credential}, SignedHeaders={signed_headers}, Signature={signature}"
        ))?;
        self.check_scope(&auth, request.headers)?;
        let signed_at: SystemTime = PrimitiveDateTime::parse(&date, AMZ_DATE)
            .map_err(|_| {
                incomplete(
                    "X-Amz-Date must be in the ISO-8601 basic format YYYYMMDD'T'HHMMSS'Z'.".into(),
                )
            })?
            .assume_utc()
            .into();
        check_scope_date(&auth, &date)?;
        let lives = match expires {
            None => lifetime.default,
            Some(text) => {
                let secs: u64 = text.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    incomplete("X-Amz-Expires must be a positive number of seconds.".into())
                })?;
                Duration::from_secs(secs).min(lifetime.max)
            }
        };
        // Not signed in the future (the skew window), and not past its life.
        if signed_at > now {
            self.check_skew(&date, signed_at, now)?;
        }
        if signed_at + lives < now {
            return Err(invalid("Request has expired".into()));
        }

        let credential = lookup(&auth.access_key_id, token.as_deref())?;
        self.check_region(&auth)?;
        self.check_signature(
            &auth,
            request,
            &unsigned_query.join("&"),
            &date,
            &credential.secret,
            &hex_sha256(request.body),
        )?;
        Ok(Verified {
            principal: credential.principal,
            access_key_id: auth.access_key_id,
            region: auth.region,
            request_time: signed_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use proptest::prelude::*;

    proptest! {
        /// Any query: an answer, never a panic, and never a success
        /// without the secret.
        #[test]
        fn any_query_is_refused_without_panicking(
            query in proptest::collection::vec(
                prop_oneof![
                    Just("X-Amz-Algorithm=AWS4-HMAC-SHA256".to_owned()),
                    Just("X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request".to_owned()),
                    Just("X-Amz-Date=20150830T123600Z".to_owned()),
                    Just("X-Amz-SignedHeaders=host".to_owned()),
                    "X-Amz-Expires=[0-9]{0,25}",
                    "X-Amz-Signature=[0-9a-f]{0,70}",
                    "[A-Za-z%=&+.-]{0,20}",
                ],
                0..9,
            ),
        ) {
            let query = query.join("&");
            let mut headers = HeaderMap::new();
            headers.insert("host", "example.amazonaws.com".parse().unwrap());
            let verifier = Verifier::new("service", vec!["us-east-1".into()], Duration::from_secs(900));
            let request = RequestParts { method: "GET", path: "/", query: &query, headers: &headers, body: b"" };
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160);
            let lifetime = PresignLifetime { default: Duration::from_secs(60), max: Duration::from_secs(3600) };
            let result = verifier.verify_presigned(&request, now, lifetime, |_, _| {
                Ok(Credential { secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned(), principal: () })
            });
            prop_assert!(result.is_err());
        }
    }
}
