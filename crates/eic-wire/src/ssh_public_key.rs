//! Which SSH public keys a push may carry, and the one line eic stores for it.
//!
//! The pushed text ends up, verbatim, in what sshd reads as authorized_keys.
//! So the stored line is rebuilt from the parsed key (type, canonical base64,
//! a sanitized comment) and never copied from the request: a newline or an
//! options prefix smuggled into the request can never reach sshd.

use ssh_key::public::KeyData;
use ssh_key::{Algorithm, HashAlg, PublicKey};

/// RSA moduli below this are refused, as EC2 refuses them.
pub const MIN_RSA_BITS: usize = 2048;
/// Keys above this are refused: OpenSSH itself caps RSA at 16384 bits.
pub const MAX_RSA_BITS: usize = 16384;
const MAX_COMMENT_BYTES: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa { bits: usize },
    Ed25519,
}

/// A pushed key that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshPublicKey {
    pub kind: KeyKind,
    /// `ssh-rsa AAAA… comment`, one line, rebuilt from the parsed key.
    pub line: String,
    /// `SHA256:…`, as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
}

/// Parses the `SSHPublicKey` member: `<type> <base64> [comment]`, tolerating
/// surrounding whitespace and line breaks (the AWS CLI's `file://` keeps the
/// trailing newline). Returns the reason as a sentence on refusal.
pub fn parse_ssh_public_key(text: &str) -> Result<SshPublicKey, String> {
    let mut fields = text.split_ascii_whitespace();
    let (Some(kind), Some(body)) = (fields.next(), fields.next()) else {
        return Err(
            "SSHPublicKey must be in OpenSSH format: '<type> <base64 key> [comment]'".into(),
        );
    };
    match kind {
        "ssh-rsa" | "ssh-ed25519" => {}
        "ssh-dss" => return Err("DSA keys are not supported; use ssh-ed25519 or ssh-rsa of at least 2048 bits".into()),
        k if k.starts_with("ecdsa-sha2-") => {
            return Err(format!("{k} keys are not supported; use ssh-ed25519 or ssh-rsa of at least 2048 bits"))
        }
        k if k.starts_with("sk-") => {
            return Err(format!("security keys ({k}) are not supported; use ssh-ed25519 or ssh-rsa of at least 2048 bits"))
        }
        k if k.contains("-cert-v01@openssh.com") => {
            return Err("certificates are not supported; push a plain public key".into())
        }
        _ => return Err("SSHPublicKey must begin with the key type 'ssh-ed25519' or 'ssh-rsa'".into()),
    }
    let comment = fields.collect::<Vec<_>>().join(" ");
    if comment.len() > MAX_COMMENT_BYTES || comment.chars().any(char::is_control) {
        return Err("the key's comment is too long or contains control characters".into());
    }
    let key_data = KeyData::from(
        PublicKey::from_openssh(&format!("{kind} {body}"))
            .map_err(|_| format!("the {kind} key body is not valid base64 SSH key data"))?,
    );
    // The blob names its own type; it must be the one the line claims.
    if key_data.algorithm().as_str() != kind {
        return Err(format!(
            "the key body is a {} key, not {kind}",
            key_data.algorithm().as_str()
        ));
    }
    let kind = match &key_data {
        KeyData::Rsa(rsa) => {
            let bits = rsa.key_size() as usize;
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                return Err(format!(
                    "RSA keys must be {MIN_RSA_BITS} to {MAX_RSA_BITS} bits; this one has {bits}"
                ));
            }
            KeyKind::Rsa { bits }
        }
        KeyData::Ed25519(_) => KeyKind::Ed25519,
        _ => unreachable!("the type was checked to be ssh-rsa or ssh-ed25519"),
    };
    let mut key = PublicKey::from(key_data);
    key.set_comment(comment);
    let line = key
        .to_openssh()
        .map_err(|_| "the key could not be re-encoded".to_string())?;
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    debug_assert!(matches!(
        key.algorithm(),
        Algorithm::Rsa { .. } | Algorithm::Ed25519
    ));
    Ok(SshPublicKey {
        kind,
        line,
        fingerprint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The seed document's example key (RSA 2048).
    pub const SEED_RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC3FlHqj2eqCdrGHuA6dRjfZXQ4HX5lXEIRHaNbxEwE5Te7xNF7StwhrDtiV7IdT5fDqbRyGw/szPj3xGkNTVoElCZ2dDFb2qYZ1WLIpZwj/UhO9l2mgfjR56UojjQut5Jvn2KZ1OcyrNO0J83kCaJCV7JoVbXY79FBMUccYNY45zmv9+1FMCfY6i2jdIhwR6+yLk8oubL8lIPyq7X+6b9S0yKCkB7Peml1DvghlybpAIUrC9vofHt6XP4V1i0bImw1IlljQS+DUmULRFSccATDscCX9ajnj7Crhm0HAZC0tBPXpFdHkPwL3yzYo546SCS9LKEwz62ymxxbL9k7h09t";
    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEz1IfFgVwd94PL4XD1ju7YfyPsL9Z7CdrE/Ace+v3k5";
    // 1024-bit RSA, generated with ssh-keygen.
    const RSA_1024: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC43OO8nEsDLG3+vP6qfmsw3ivPfEsyunsHlIxc5IqYxyo6y89L+1pnLx5/kYnIigJ62CZTqsWMjMpEnPqTIV5NbRG8ZxHENHWrJgPx5CH9hdiQCfj5HjcF+/jRoPtBkF809e6g6ZSQn1SQM9dKu0uh9oWpYMplT1BsZSjmfnWEYw==";
    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBF9Ut6z9yOCWBbzHsEMN9c5Cq20EaPr/OFHhpOAgLPhfEf0SEtF8jx9+ekPii9K0EHIqZwvGGOzOgqGMo2H+2/c=";

    #[test]
    fn accepts_the_seed_rsa_key() {
        let key = parse_ssh_public_key(SEED_RSA).unwrap();
        assert_eq!(key.kind, KeyKind::Rsa { bits: 2048 });
        assert_eq!(key.line, SEED_RSA);
        assert!(key.fingerprint.starts_with("SHA256:"));
        // As `ssh-keygen -lf` printed it for this key.
        let ed = parse_ssh_public_key(ED25519).unwrap();
        assert_eq!(
            ed.fingerprint,
            "SHA256:wG1KS6m8Vj32lw/yU1Vj3JfVddVAP84oImuc0o85Yf4"
        );
    }

    #[test]
    fn accepts_ed25519_with_comment_and_surrounding_whitespace() {
        let key = parse_ssh_public_key(&format!("  {ED25519}   me@host  \n")).unwrap();
        assert_eq!(key.kind, KeyKind::Ed25519);
        assert_eq!(key.line, format!("{ED25519} me@host"));
    }

    #[test]
    fn multi_line_input_becomes_one_line() {
        let (kind, body) = ED25519.split_once(' ').unwrap();
        let key = parse_ssh_public_key(&format!("{kind}\n{body}\nexample\n")).unwrap();
        assert_eq!(key.line, format!("{ED25519} example"));
        assert!(!key.line.contains('\n'));
    }

    #[test]
    fn refuses_what_ec2_refuses() {
        assert!(parse_ssh_public_key(RSA_1024).unwrap_err().contains("1024"));
        assert!(parse_ssh_public_key(ECDSA).unwrap_err().contains("ecdsa"));
        assert!(parse_ssh_public_key("ssh-dss AAAAB3NzaC1kc3MAAACB")
            .unwrap_err()
            .contains("DSA"));
        assert!(parse_ssh_public_key("sk-ssh-ed25519@openssh.com AAAA")
            .unwrap_err()
            .contains("security keys"));
        assert!(parse_ssh_public_key("ssh-rsa not!base64").is_err());
        assert!(parse_ssh_public_key("garbage").is_err());
        // An authorized_keys options prefix is not a key type.
        assert!(parse_ssh_public_key(&format!("command=\"/bin/sh\" {ED25519}")).is_err());
    }

    #[test]
    fn refuses_a_body_whose_type_does_not_match_its_name() {
        let (_, body) = ED25519.split_once(' ').unwrap();
        let err = parse_ssh_public_key(&format!("ssh-rsa {body}")).unwrap_err();
        assert!(
            err.contains("not ssh-rsa") || err.contains("not valid"),
            "{err}"
        );
    }

    #[test]
    fn refuses_control_characters_in_the_comment() {
        assert!(parse_ssh_public_key(&format!("{ED25519} a\u{7}b")).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(text in ".{0,600}") {
            let _ = parse_ssh_public_key(&text);
        }

        #[test]
        fn never_panics_on_key_shaped_input(kind in "ssh-(rsa|ed25519)", body in "[A-Za-z0-9+/=]{0,700}", comment in ".{0,40}") {
            if let Ok(key) = parse_ssh_public_key(&format!("{kind} {body} {comment}")) {
                prop_assert!(!key.line.contains('\n'));
            }
        }

        #[test]
        fn accepted_lines_are_stable(comment in "[a-zA-Z0-9@._ -]{0,40}") {
            let first = parse_ssh_public_key(&format!("{ED25519} {comment}")).unwrap();
            let again = parse_ssh_public_key(&first.line).unwrap();
            prop_assert_eq!(first, again);
        }
    }
}
