//! Parsing the `Authorization` header.

use crate::verify::{SigV4Error, SigV4ErrorKind};
use crate::ALGORITHM;

/// The parts of `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    /// The scope's date, `YYYYMMDD`.
    pub date: String,
    pub region: String,
    pub service: String,
    pub terminator: String,
    /// Lowercase header names, in the client's order.
    pub signed_headers: Vec<String>,
    pub signature: [u8; 32],
}

impl Authorization {
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.date, self.region, self.service, self.terminator
        )
    }
}

const MAX_HEADER_BYTES: usize = 4096;

/// Parses the header value. Every failure is `IncompleteSignatureException`
/// with the wording AWS uses, naming what is missing.
pub fn parse_authorization(value: &str) -> Result<Authorization, SigV4Error> {
    let incomplete = |msg: String| SigV4Error::new(SigV4ErrorKind::IncompleteSignature, msg);
    if value.len() > MAX_HEADER_BYTES {
        return Err(incomplete("Authorization header is too long.".into()));
    }
    let shown = || value.chars().take(200).collect::<String>();
    let Some(params) = value.strip_prefix(ALGORITHM).filter(|r| r.starts_with(' ')) else {
        let algorithm = value.split(' ').next().unwrap_or_default();
        return Err(incomplete(format!(
            "Unsupported AWS 'algorithm': '{}'. The only supported algorithm is {ALGORITHM}.",
            algorithm.chars().take(40).collect::<String>()
        )));
    };
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, val)) = part.split_once('=') else {
            return Err(incomplete(format!(
                "'{}' not a valid key=value pair (missing equal-sign) in Authorization header: '{}'.",
                part.chars().take(80).collect::<String>(),
                shown()
            )));
        };
        let slot = match key.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot.replace(val.trim()).is_some() {
            return Err(incomplete(format!(
                "Authorization header has a duplicate '{}' parameter: '{}'.",
                key.trim(),
                shown()
            )));
        }
    }
    let mut missing = Vec::new();
    for (name, slot) in [
        ("Credential", &credential),
        ("Signature", &signature),
        ("SignedHeaders", &signed_headers),
    ] {
        if slot.is_none() {
            missing.push(format!("Authorization header requires '{name}' parameter."));
        }
    }
    if !missing.is_empty() {
        return Err(incomplete(format!(
            "{} Authorization={}",
            missing.join(" "),
            shown()
        )));
    }
    let (credential, signed_headers, signature) = (
        credential.unwrap_or_default(),
        signed_headers.unwrap_or_default(),
        signature.unwrap_or_default(),
    );

    // The access key id never contains '/', so the scope is the last four.
    let parts: Vec<&str> = credential.split('/').collect();
    if parts.len() != 5 || parts.iter().any(|p| p.is_empty()) {
        return Err(incomplete(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{}'",
            credential.chars().take(200).collect::<String>()
        )));
    }
    let signed: Vec<String> = signed_headers.split(';').map(str::to_owned).collect();
    if signed.iter().any(|h| {
        h.is_empty()
            || !h.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
            })
    }) {
        return Err(incomplete(format!(
            "SignedHeaders must be a ';'-separated list of lowercase header names, got '{}'",
            signed_headers.chars().take(200).collect::<String>()
        )));
    }
    // Signers emit lowercase hex; AWS compares the text, so another spelling
    // of the same bytes is not the signature it computed.
    let mut sig = [0u8; 32];
    if signature.len() != 64
        || !signature
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        || hex::decode_to_slice(signature, &mut sig).is_err()
    {
        return Err(incomplete(
            "Signature must be 64 lowercase hexadecimal characters.".to_string(),
        ));
    }
    Ok(Authorization {
        access_key_id: parts[0].to_owned(),
        date: parts[1].to_owned(),
        region: parts[2].to_owned(),
        service: parts[3].to_owned(),
        terminator: parts[4].to_owned(),
        signed_headers: signed,
        signature: sig,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SIG: &str = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";

    #[test]
    fn parses_botocore_and_sdk_shapes() {
        for sep in [", ", ","] {
            let v = format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ec2-instance-connect/aws4_request{sep}SignedHeaders=content-type;host;x-amz-date{sep}Signature={SIG}");
            let a = parse_authorization(&v).unwrap();
            assert_eq!(a.access_key_id, "AKIDEXAMPLE");
            assert_eq!(
                a.scope(),
                "20150830/us-east-1/ec2-instance-connect/aws4_request"
            );
            assert_eq!(a.signed_headers, ["content-type", "host", "x-amz-date"]);
        }
    }

    #[test]
    fn names_what_is_missing() {
        let e = parse_authorization("AWS4-HMAC-SHA256 Credential=A/20150830/r/s/aws4_request")
            .unwrap_err();
        assert_eq!(e.kind, SigV4ErrorKind::IncompleteSignature);
        assert!(
            e.message.contains("'Signature'") && e.message.contains("'SignedHeaders'"),
            "{}",
            e.message
        );
        let e = parse_authorization("AWS4-HMAC-SHA256 Credential").unwrap_err();
        assert!(e.message.contains("missing equal-sign"), "{}", e.message);
        let e = parse_authorization("AWS3 foo").unwrap_err();
        assert!(e.message.contains("algorithm"), "{}", e.message);
        let e = parse_authorization(&format!(
            "AWS4-HMAC-SHA256 Credential=A/b/c, SignedHeaders=host, Signature={SIG}"
        ))
        .unwrap_err();
        assert!(e.message.contains("5 slash-delimited"), "{}", e.message);
        let e = parse_authorization(&format!(
            "AWS4-HMAC-SHA256 Credential=A/1/r/s/t, SignedHeaders=Host, Signature={SIG}"
        ))
        .unwrap_err();
        assert!(e.message.contains("lowercase"), "{}", e.message);
        let e = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=A/1/r/s/t, SignedHeaders=host, Signature=zz",
        )
        .unwrap_err();
        assert!(
            e.message.contains("64 lowercase hexadecimal"),
            "{}",
            e.message
        );
    }

    #[test]
    fn signature_is_64_lowercase_hex() {
        let header = |sig: &str| {
            format!("AWS4-HMAC-SHA256 Credential=A/1/r/s/t, SignedHeaders=host, Signature={sig}")
        };
        assert!(parse_authorization(&header(SIG)).is_ok());
        for bad in [
            SIG.to_ascii_uppercase(),
            format!("{}F", &SIG[..63]),
            SIG[..62].to_owned(),
            format!("{SIG}00"),
        ] {
            let e = parse_authorization(&header(&bad)).unwrap_err();
            assert_eq!(e.kind, SigV4ErrorKind::IncompleteSignature, "{bad}");
        }
    }

    /// A parse either succeeds or is refused as AWS refuses a malformed
    /// header; no input may panic or surface as any other error.
    fn parses_or_is_incomplete(value: &str) -> Result<(), TestCaseError> {
        if let Err(e) = parse_authorization(value) {
            prop_assert_eq!(e.kind, SigV4ErrorKind::IncompleteSignature, "{}", e.message);
        }
        Ok(())
    }

    /// Text built from the header's own vocabulary, so that the fuzzing
    /// reaches past the algorithm check into the parameter parsing.
    fn header_like() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            Just("AWS4-HMAC-SHA256".to_owned()),
            Just(" ".to_owned()),
            Just(",".to_owned()),
            Just("=".to_owned()),
            Just("/".to_owned()),
            Just(";".to_owned()),
            Just("Credential".to_owned()),
            Just("SignedHeaders".to_owned()),
            Just("Signature".to_owned()),
            Just(SIG.to_owned()),
            "[A-Za-z0-9_-]{1,12}",
            ".{1,4}",
        ];
        prop::collection::vec(token, 0..40).prop_map(|t| t.concat())
    }

    prop_compose! {
        fn well_formed()(
            access_key_id in "[A-Z0-9]{1,20}",
            date in "[0-9]{8}",
            region in "[a-z0-9-]{1,20}",
            service in "[a-z0-9-]{1,30}",
            terminator in "[a-z0-9_]{1,16}",
            signed_headers in prop::collection::vec("[a-z0-9._-]{1,24}", 1..10),
            signature in any::<[u8; 32]>(),
        ) -> Authorization {
            Authorization { access_key_id, date, region, service, terminator, signed_headers, signature }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_text_parses_or_is_incomplete(v in ".{0,300}") {
            parses_or_is_incomplete(&v)?;
        }

        #[test]
        fn header_like_text_parses_or_is_incomplete(v in header_like()) {
            parses_or_is_incomplete(&v)?;
            parses_or_is_incomplete(&format!("AWS4-HMAC-SHA256 {v}"))?;
        }

        #[test]
        fn header_shaped_input_parses_or_is_incomplete(cred in "[A-Za-z0-9/_-]{0,60}", hdrs in "[a-z;-]{0,40}", sig in "[0-9a-fA-F]{0,70}", sep in "[, ]{0,3}") {
            parses_or_is_incomplete(&format!("AWS4-HMAC-SHA256 Credential={cred}{sep}SignedHeaders={hdrs}{sep}Signature={sig}"))?;
        }

        /// What a signer writes parses back to what it signed, whatever the
        /// parameters' order and whether a space follows each comma.
        #[test]
        fn well_formed_headers_round_trip(
            auth in well_formed(),
            order in Just([0usize, 1, 2]).prop_shuffle(),
            sep in prop_oneof![Just(","), Just(", ")],
        ) {
            let params = [
                format!("Credential={}/{}", auth.access_key_id, auth.scope()),
                format!("SignedHeaders={}", auth.signed_headers.join(";")),
                format!("Signature={}", hex::encode(auth.signature)),
            ];
            let header = format!(
                "{ALGORITHM} {}",
                order.iter().map(|&i| params[i].as_str()).collect::<Vec<_>>().join(sep)
            );
            prop_assert_eq!(parse_authorization(&header).unwrap(), auth);
        }
    }
}
