use super::*;
use crate::testutil::*;

/// Signs `lines` (headers and key line) the way the service does, with the
/// signature on one line or wrapped at 76 columns.
fn signed(lines: &[&str], wrapped: bool) -> String {
    let mut data = String::new();
    for line in lines {
        data.push_str(line);
        data.push('\n');
    }
    let signature = fixture()
        .signer
        .blob_signer()
        .sign(data.as_bytes())
        .expect("sign");
    let encoded = SIGNATURE_BASE64.encode(signature);
    let mut block = data;
    if wrapped {
        for chunk in encoded.as_bytes().chunks(SIGNATURE_COLUMNS) {
            block.push_str(std::str::from_utf8(chunk).expect("ascii"));
            block.push('\n');
        }
    } else {
        block.push_str(&encoded);
        block.push('\n');
    }
    block
}

fn standard(timestamp: &str, instance: &str, key_line: &str) -> String {
    signed(
        &[
            &format!("#Timestamp={timestamp}"),
            &format!("#Instance={instance}"),
            "#Caller=arn:aws:iam::123412341234:role/myrole",
            "#Request=1234abcd-1234-abcd-1234abcd1234",
            key_line,
        ],
        true,
    )
}

fn valid(key_line: &str) -> String {
    standard(&(NOW + 60).to_string(), INSTANCE, key_line)
}

fn verify(text: &str, fingerprint: Option<&str>) -> BlobVerdict {
    verify_blob(text, &params(&signer_key(), fingerprint))
}

fn accepted_lines(verdict: &BlobVerdict) -> Vec<&str> {
    verdict
        .accepted_keys()
        .iter()
        .map(|k| k.key_line.as_str())
        .collect()
}

fn skip_reasons(verdict: &BlobVerdict) -> Vec<SkipReason> {
    match verdict {
        BlobVerdict::Keys { skipped, .. } => skipped.iter().map(|s| s.reason.clone()).collect(),
        BlobVerdict::Rejected(r) => panic!("rejected: {r}"),
    }
}

#[test]
fn round_trip_rsa_and_ed25519() {
    let signer = fixture().signer.blob_signer();
    let blob = render_blob(
        &[entry(RSA_KEY, NOW + 60), entry(ED25519_KEY, NOW + 60)],
        signer,
    )
    .expect("render");
    let verdict = verify(&blob, None);
    assert_eq!(accepted_lines(&verdict), [RSA_KEY, ED25519_KEY]);
    let keys = verdict.accepted_keys();
    assert_eq!(keys[0].fingerprint, RSA_FINGERPRINT);
    assert_eq!(keys[1].fingerprint, ED25519_FINGERPRINT);
    assert_eq!(keys[1].block, 1);
    assert_eq!(keys[1].expires_at_unix, NOW + 60);
    assert_eq!(
        keys[0].log_message(),
        format!(
            "Providing ssh key from EC2 Instance Connect with fingerprint: {RSA_FINGERPRINT}, \
             request-id: 1234abcd-1234-abcd-1234abcd1234, \
             for IAM principal: arn:aws:iam::123412341234:role/myrole"
        )
    );
}

#[test]
fn rendered_layout_matches_the_format() {
    let signer = fixture().signer.blob_signer();
    let blob = render_blob(
        &[entry(ED25519_KEY, NOW + 60), entry(RSA_KEY, NOW + 61)],
        signer,
    )
    .expect("render");
    let lines: Vec<&str> = blob.split('\n').collect();
    assert_eq!(lines[0], format!("#Timestamp={}", NOW + 60));
    assert_eq!(lines[1], "#Instance=i-abcd1234");
    assert_eq!(lines[2], "#Caller=arn:aws:iam::123412341234:role/myrole");
    assert_eq!(lines[3], "#Request=1234abcd-1234-abcd-1234abcd1234");
    assert_eq!(lines[4], ED25519_KEY);
    // A 2048-bit signature is 344 base64 characters: 4 lines of 76 and 40.
    assert_eq!(
        lines[5..10].iter().map(|l| l.len()).collect::<Vec<_>>(),
        [76, 76, 76, 76, 40]
    );
    assert_eq!(lines[10], "");
    assert_eq!(lines[11], format!("#Timestamp={}", NOW + 61));
    assert!(blob.ends_with("\n") && !blob.ends_with("\n\n"));
    assert_eq!(render_blob(&[], signer).expect("empty"), "");
    let blocks = parse_blob(&blob);
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[1].header("Timestamp"), Some("1800000061"));
}

#[test]
fn single_line_and_wrapped_signatures_both_verify() {
    let lines = [
        &format!("#Timestamp={}", NOW + 60) as &str,
        "#Instance=i-abcd1234",
        RSA_KEY,
    ];
    for wrapped in [false, true] {
        let verdict = verify(&signed(&lines, wrapped), None);
        assert_eq!(accepted_lines(&verdict), [RSA_KEY], "wrapped={wrapped}");
    }
}

#[test]
fn render_refuses_fields_the_format_cannot_carry() {
    let signer = fixture().signer.blob_signer();
    let cases: Vec<(BlobEntry, &str)> = vec![
        (
            BlobEntry {
                instance_id: "i-1\n#Instance=i-2".into(),
                ..entry(RSA_KEY, NOW)
            },
            "instance_id",
        ),
        (
            BlobEntry {
                caller_arn: "arn\r".into(),
                ..entry(RSA_KEY, NOW)
            },
            "caller_arn",
        ),
        (
            BlobEntry {
                request_id: "a\tb".into(),
                ..entry(RSA_KEY, NOW)
            },
            "request_id",
        ),
        (
            BlobEntry {
                request_id: "a\u{7f}".into(),
                ..entry(RSA_KEY, NOW)
            },
            "request_id",
        ),
        (
            BlobEntry {
                instance_id: String::new(),
                ..entry(RSA_KEY, NOW)
            },
            "instance_id",
        ),
        (
            BlobEntry {
                caller_arn: "arn ".into(),
                ..entry(RSA_KEY, NOW)
            },
            "caller_arn",
        ),
        (entry(&format!("{RSA_KEY}\n"), NOW), "key_line"),
        (entry(&format!(" {RSA_KEY}"), NOW), "key_line"),
    ];
    for (bad, field) in cases {
        match render_block(&bad, signer) {
            Err(RenderError::InvalidField { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    assert_eq!(
        render_block(&entry(RSA_KEY, 0), signer),
        Err(RenderError::InvalidExpiry(0))
    );
    assert_eq!(
        render_block(&entry(RSA_KEY, u64::MAX), signer),
        Err(RenderError::InvalidExpiry(u64::MAX))
    );
    for key in [ECDSA_KEY, "ssh-rsa AAAAnotakey", "ssh-ed25519"] {
        assert_eq!(
            render_block(&entry(key, NOW + 1), signer),
            Err(RenderError::UnsupportedKey)
        );
    }
    let empty_caller = BlobEntry {
        caller_arn: String::new(),
        request_id: String::new(),
        ..entry(ED25519_KEY, NOW + 1)
    };
    let verdict = verify(&render_block(&empty_caller, signer).expect("render"), None);
    assert_eq!(
        verdict.accepted_keys()[0].log_message(),
        format!(
            "Providing ssh key from EC2 Instance Connect with fingerprint: {ED25519_FINGERPRINT}"
        )
    );
}

// The official unit-test suite's eight cases (instance-side.md §5), all run
// with `-f` set to the key's fingerprint.

#[test]
fn official_empty() {
    assert_eq!(
        verify("", Some(RSA_FINGERPRINT)),
        BlobVerdict::Keys {
            accepted: vec![],
            skipped: vec![]
        }
    );
}

#[test]
fn official_invalid_signature() {
    let blob = format!(
        "#Timestamp={}\n#Instance={INSTANCE}\n#Caller=c\n#Request=r\n{RSA_KEY}\nthis is not a valid signature\n",
        NOW + 60
    );
    let verdict = verify(&blob, Some(RSA_FINGERPRINT));
    assert_eq!(skip_reasons(&verdict), [SkipReason::BadBase64]);
}

#[test]
fn official_different_fingerprint() {
    let verdict = verify(&valid(ED25519_KEY), Some(RSA_FINGERPRINT));
    assert_eq!(
        skip_reasons(&verdict),
        [SkipReason::FingerprintMismatch {
            fingerprint: ED25519_FINGERPRINT.into()
        }]
    );
}

#[test]
fn official_expired_timestamp() {
    let verdict = verify(
        &standard("0000000000", INSTANCE, RSA_KEY),
        Some(RSA_FINGERPRINT),
    );
    assert_eq!(skip_reasons(&verdict), [SkipReason::Unchecked]);
}

#[test]
fn official_invalid_instance() {
    let verdict = verify(
        &standard(&(NOW + 60).to_string(), "i-mismatch", RSA_KEY),
        Some(RSA_FINGERPRINT),
    );
    assert_eq!(
        skip_reasons(&verdict),
        [SkipReason::WrongInstance {
            instance_id: "i-mismatch".into()
        }]
    );
}

#[test]
fn official_missing_data() {
    let ts = format!("#Timestamp={}", NOW + 60);
    let blob = [
        signed(
            &["#Instance=i-abcd1234", "#Caller=c", "#Request=r", RSA_KEY],
            true,
        ),
        signed(&[&ts, "#Caller=c", "#Request=r", RSA_KEY], true),
        signed(&[&ts, "#Instance=i-abcd1234", RSA_KEY], true),
        format!("{ts}\n#Instance=i-abcd1234\n#Caller=c\n#Request=r\n\n"),
    ]
    .join("\n");
    let verdict = verify(&blob, Some(RSA_FINGERPRINT));
    assert_eq!(accepted_lines(&verdict), [RSA_KEY]);
    assert_eq!(verdict.accepted_keys()[0].block, 2);
    assert_eq!(
        skip_reasons(&verdict),
        [
            SkipReason::Unchecked,
            SkipReason::Unchecked,
            SkipReason::NoKeyLine
        ]
    );
}

#[test]
fn official_mixed() {
    let future = (NOW + 60).to_string();
    let commented = format!("{RSA_KEY} with a comment");
    let blob = [
        standard("0000000000", INSTANCE, RSA_KEY),
        standard(&future, INSTANCE, RSA_KEY),
        standard(&future, "i-mismatch", RSA_KEY),
        standard(&future, INSTANCE, ED25519_KEY),
        standard(&future, INSTANCE, RSA_KEY),
        signed(&["#Caller=c", "#Request=r", &commented], true),
        standard(&future, INSTANCE, RSA_KEY),
    ]
    .join("\n");
    let verdict = verify(&blob, Some(RSA_FINGERPRINT));
    assert_eq!(accepted_lines(&verdict), [RSA_KEY; 3]);
    assert_eq!(skip_reasons(&verdict).len(), 4);
}

#[test]
fn official_valid_key() {
    let verdict = verify(&valid(RSA_KEY), Some(RSA_FINGERPRINT));
    assert_eq!(accepted_lines(&verdict), [RSA_KEY]);
}

#[test]
fn timestamp_must_be_strictly_in_the_future() {
    let blob = [
        standard(&NOW.to_string(), INSTANCE, RSA_KEY),
        standard(&(NOW + 1).to_string(), INSTANCE, ED25519_KEY),
    ]
    .join("\n");
    let verdict = verify(&blob, None);
    assert_eq!(accepted_lines(&verdict), [ED25519_KEY]);
    assert_eq!(
        skip_reasons(&verdict),
        [SkipReason::Expired {
            expires_at_unix: NOW
        }]
    );
}

#[test]
fn expired_block_among_good_ones_is_skipped() {
    let blob = [
        valid(RSA_KEY),
        standard(&(NOW - 3600).to_string(), INSTANCE, ED25519_KEY),
        valid(ED25519_KEY),
    ]
    .join("\n");
    let verdict = verify(&blob, None);
    assert_eq!(accepted_lines(&verdict), [RSA_KEY, ED25519_KEY]);
    assert_eq!(
        verdict,
        BlobVerdict::Keys {
            accepted: verdict.accepted_keys().to_vec(),
            skipped: vec![SkippedBlock {
                block: 1,
                reason: SkipReason::Expired {
                    expires_at_unix: NOW - 3600
                }
            }],
        }
    );
}

#[test]
fn timestamps_the_shell_would_not_read_as_plain_numbers_are_unchecked() {
    for ts in [
        "+1900000000",
        " 1900000000x",
        "99999999999999999999",
        "0x10",
        "",
        "-5",
    ] {
        let verdict = verify(&standard(ts, INSTANCE, RSA_KEY), None);
        assert_eq!(skip_reasons(&verdict), [SkipReason::Unchecked], "{ts:?}");
    }
    let padded = verify(&standard("01900000000", INSTANCE, RSA_KEY), None);
    assert_eq!(padded.accepted_keys()[0].expires_at_unix, 1_900_000_000);
}

/// Flips one character of the block's first signature line.
fn corrupt_signature(block: &str) -> String {
    let lines: Vec<&str> = block.lines().collect();
    let key_index = lines
        .iter()
        .position(|l| l.starts_with("ssh"))
        .expect("key line");
    let sig = lines[key_index + 1];
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    block.replacen(sig, &format!("{flipped}{}", &sig[1..]), 1)
}

#[test]
fn one_bad_signature_among_good_blocks_rejects_the_blob() {
    let bad = corrupt_signature(&valid(ED25519_KEY));
    for (blob, bad_block) in [
        ([valid(RSA_KEY), bad.clone(), valid(RSA_KEY)].join("\n"), 1),
        ([bad.clone(), valid(RSA_KEY)].join("\n"), 0),
        ([valid(RSA_KEY), valid(RSA_KEY), bad.clone()].join("\n"), 2),
    ] {
        assert_eq!(
            verify(&blob, None),
            BlobVerdict::Rejected(BlobRejection::BadSignature {
                block: bad_block,
                fingerprint: ED25519_FINGERPRINT.into(),
                request_id: "1234abcd-1234-abcd-1234abcd1234".into(),
            })
        );
    }
    // Asked only for the RSA key, the script never verifies the bad block.
    let blob = [valid(RSA_KEY), bad].join("\n");
    assert_eq!(
        accepted_lines(&verify(&blob, Some(RSA_FINGERPRINT))),
        [RSA_KEY]
    );
}

#[test]
fn tampered_instance_rejects_the_blob() {
    let blob = [
        valid(RSA_KEY),
        valid(ED25519_KEY).replace(INSTANCE, "i-0000beef"),
    ]
    .join("\n");
    let verdict = verify_blob(
        &blob,
        &VerifyParams {
            instance_id: "i-0000beef",
            ..params(&signer_key(), None)
        },
    );
    assert!(matches!(
        verdict,
        BlobVerdict::Rejected(BlobRejection::BadSignature { block: 1, .. })
    ));
}

#[test]
fn tampered_key_line_rejects_the_blob() {
    let blob = [
        valid(ED25519_KEY),
        valid(RSA_KEY).replace("alice@laptop", "mallory@laptop"),
    ]
    .join("\n");
    let verdict = verify(&blob, None);
    assert!(matches!(
        verdict,
        BlobVerdict::Rejected(BlobRejection::BadSignature { block: 1, .. })
    ));
    assert!(verdict.accepted_keys().is_empty());
}

#[test]
fn tampered_instance_for_another_host_is_only_skipped() {
    // The script never verifies a block for another instance.
    let blob = [
        valid(RSA_KEY).replace(INSTANCE, "i-0000beef"),
        valid(ED25519_KEY),
    ]
    .join("\n");
    let verdict = verify(&blob, None);
    assert_eq!(accepted_lines(&verdict), [ED25519_KEY]);
}

#[test]
fn a_bad_signature_on_a_skipped_block_does_not_matter() {
    let expired_and_tampered =
        standard(&(NOW - 1).to_string(), INSTANCE, RSA_KEY).replace("alice", "eve");
    let blob = [expired_and_tampered, valid(ED25519_KEY)].join("\n");
    assert_eq!(accepted_lines(&verify(&blob, None)), [ED25519_KEY]);
}

#[test]
fn missing_signature_rejects_the_blob() {
    let blob = format!(
        "{}\n#Timestamp={}\n#Instance={INSTANCE}\n{RSA_KEY}\n",
        valid(ED25519_KEY),
        NOW + 60
    );
    assert!(matches!(
        verify(&blob, None),
        BlobVerdict::Rejected(BlobRejection::BadSignature { block: 1, .. })
    ));
}

#[test]
fn headers_running_into_the_end_reject_the_blob() {
    let blob = format!("{}\n#Timestamp=5\n", valid(ED25519_KEY));
    assert_eq!(
        verify(&blob, None),
        BlobVerdict::Rejected(BlobRejection::TruncatedBlock { block: 1 })
    );
    // Without the final newline the last line is never read at all.
    let lines = [
        &format!("#Timestamp={}", NOW + 60) as &str,
        "#Instance=i-abcd1234",
        RSA_KEY,
    ];
    let one_line = signed(&lines, false);
    let cut = one_line.strip_suffix('\n').expect("newline");
    assert!(matches!(
        verify(cut, None),
        BlobVerdict::Rejected(BlobRejection::BadSignature { .. })
    ));
}

#[test]
fn crlf_rejects_the_blob() {
    let blob = valid(RSA_KEY).replace('\n', "\r\n");
    assert_eq!(
        verify(&blob, None),
        BlobVerdict::Rejected(BlobRejection::CarriageReturn)
    );
}

#[test]
fn only_ssh_rsa_and_ssh_ed25519_are_accepted() {
    let future = (NOW + 60).to_string();
    let blob = [
        standard(&future, INSTANCE, ECDSA_KEY),
        standard(
            &future,
            INSTANCE,
            "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t",
        ),
        standard(&future, INSTANCE, "ssh-dss AAAAB3NzaC1kc3MAAACBAP"),
        standard(&future, INSTANCE, "sshfoo"),
    ]
    .join("\n");
    assert_eq!(
        skip_reasons(&verify(&blob, None)),
        [
            SkipReason::NoKeyLine,
            SkipReason::NoKeyLine,
            SkipReason::UnsupportedKey,
            SkipReason::UnsupportedKey
        ]
    );
}

#[test]
fn fingerprint_filtering() {
    let blob = [valid(RSA_KEY), valid(ED25519_KEY)].join("\n");
    assert_eq!(
        accepted_lines(&verify(&blob, Some(ED25519_FINGERPRINT))),
        [ED25519_KEY]
    );
    assert_eq!(
        accepted_lines(&verify(&blob, Some(RSA_FINGERPRINT))),
        [RSA_KEY]
    );
    assert_eq!(
        accepted_lines(&verify(&blob, Some(""))),
        [RSA_KEY, ED25519_KEY]
    );
    assert_eq!(accepted_lines(&verify(&blob, None)), [RSA_KEY, ED25519_KEY]);
    assert!(verify(&blob, Some("SHA256:nope"))
        .accepted_keys()
        .is_empty());
}

#[test]
fn unknown_headers_are_signed_in_order() {
    let ts = format!("#Timestamp={}", NOW + 60);
    let blob = signed(
        &[
            &ts,
            "#Foo=bar",
            "#Instance=i-abcd1234",
            "#Region=x",
            ED25519_KEY,
        ],
        true,
    );
    assert_eq!(accepted_lines(&verify(&blob, None)), [ED25519_KEY]);
    let reordered = blob.replace(
        "#Foo=bar\n#Instance=i-abcd1234",
        "#Instance=i-abcd1234\n#Foo=bar",
    );
    assert!(matches!(verify(&reordered, None), BlobVerdict::Rejected(_)));
}

#[test]
fn read_r_trimming_is_applied_before_verifying() {
    let blob = valid(ED25519_KEY)
        .replace("#Instance", "  #Instance")
        .replace("bob@desk\n", "bob@desk \t\n");
    assert_eq!(accepted_lines(&verify(&blob, None)), [ED25519_KEY]);
}

#[test]
fn parse_follows_the_read_loop() {
    let text = "\n  \n#A=1\nnot a key\nskipped\n\nssh-x\nsig1\n sig2 \n\n\n#B=2\n#B=3\nssh-y\n";
    let blocks = parse_blob(text);
    assert_eq!(
        blocks,
        [
            ParsedBlock {
                headers: vec!["#A=1".into()],
                body: BlockBody::NotKey {
                    line: "not a key".into()
                }
            },
            ParsedBlock {
                headers: vec![],
                body: BlockBody::Key {
                    key_line: "ssh-x".into(),
                    signature: "sig1sig2".into()
                }
            },
            ParsedBlock {
                headers: vec!["#B=2".into(), "#B=3".into()],
                body: BlockBody::Key {
                    key_line: "ssh-y".into(),
                    signature: String::new()
                }
            },
        ]
    );
    assert_eq!(blocks[2].header("B"), Some("3"));
    assert_eq!(blocks[2].header("C"), None);
    assert_eq!(
        parse_blob("#A=1\n\nssh-z\n"),
        [
            ParsedBlock {
                headers: vec!["#A=1".into()],
                body: BlockBody::NotKey {
                    line: String::new()
                }
            },
            ParsedBlock {
                headers: vec![],
                body: BlockBody::Key {
                    key_line: "ssh-z".into(),
                    signature: String::new()
                }
            },
        ]
    );
    assert_eq!(parse_blob("#A=1"), []);
    assert_eq!(
        parse_blob("#A=1\n#B"),
        [ParsedBlock {
            headers: vec!["#A=1".into()],
            body: BlockBody::Truncated
        }]
    );
}

#[test]
fn non_canonical_trailing_bits_decode_like_gnu_base64() {
    let lines = [
        &format!("#Timestamp={}", NOW + 60) as &str,
        "#Instance=i-abcd1234",
        RSA_KEY,
    ];
    let block = signed(&lines, false);
    // 256 bytes end in "==" after a character carrying 2 real bits; set a
    // spare bit in that character.
    let sig_line = block.lines().nth(3).expect("signature");
    let pos = sig_line.len() - 3;
    let last = sig_line.as_bytes()[pos] as char;
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let index = alphabet.find(last).expect("base64 char");
    let bumped = alphabet.as_bytes()[index | 1] as char;
    let mut changed = sig_line.to_owned();
    changed.replace_range(pos..pos + 1, &bumped.to_string());
    let blob = block.replace(sig_line, &changed);
    assert_eq!(accepted_lines(&verify(&blob, None)), [RSA_KEY]);
}
