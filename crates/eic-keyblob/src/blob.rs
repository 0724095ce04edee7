//! The `managed-ssh-keys/active-keys/<user>/` blob: rendering, parsing and
//! verification, mirroring the official `eic_parse_authorized_keys`.
//!
//! # Reading rules (what [`parse_blob`] copies from the shell loop)
//!
//! - Lines are read with `read -r`: leading and trailing spaces and tabs are
//!   trimmed (that trimmed text is what is signed), `\r` is kept, and a last
//!   line without `\n` is lost, because `read` fails on it and every caller
//!   treats that as the end of input.
//! - A block starts with any line. Lines starting with `#` are headers; the
//!   first other line must start with `ssh` to be a key line. The lines after
//!   a key line, up to an empty line or the end, are the signature.
//! - A first line that does not start with `ssh` makes the script skip to the
//!   next empty line; a stray empty line between blocks does nothing and
//!   yields no block. A block whose headers run into the end of the text makes
//!   `read` fail under `set -e`: the script prints nothing and exits 1.
//! - A header's value is the text after `#Name=`; the last occurrence wins.
//!   Unknown headers are kept, and signed, in order.
//!
//! # Checks (what [`verify_blob`] copies, in the script's order)
//!
//! 1. The key line starts with `ssh` (else skipped).
//! 2. The block is checked only if `#Instance` is non-empty and `#Timestamp`
//!    is a non-zero number.
//! 3. The key's `SHA256:` fingerprint equals the expected one, when given.
//! 4. `#Instance` equals the instance id.
//! 5. `#Timestamp` is strictly greater than now.
//! 6. The signature decodes as base64 (else skipped).
//! 7. The RSASSA-PSS signature verifies; if not, the whole blob is rejected.
//!
//! Step 7 is the script's real behaviour, not its README's: `openssl dgst
//! -verify` runs bare under `set -e`, so one bad signature ends the run with
//! exit 1 and no output, even after good blocks. We keep that fail-closed
//! rule. It also covers a key line with no signature lines: `base64 -d` of
//! nothing succeeds and the empty signature fails to verify.

use std::fmt;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use ssh_key::public::KeyData;
use ssh_key::{HashAlg, PublicKey};

use crate::signer::{BlobSigner, SignerKey};

/// GNU `base64` wraps at 76 columns; the official test signer uses it.
const SIGNATURE_COLUMNS: usize = 76;

/// `ssh-keygen` refuses RSA keys below this size, so the script does too.
const MIN_SSH_RSA_BITS: u32 = 1024;

/// GNU `base64 -d` requires padding but ignores non-zero trailing bits.
const SIGNATURE_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// One key to serve: rendered as one signed block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobEntry {
    /// `#Timestamp`: the key is valid while this is greater than now.
    pub expires_at_unix: u64,
    /// `#Instance`: must equal the instance's id for the key to be used.
    pub instance_id: String,
    /// `#Caller`: the IAM principal, logged by the instance.
    pub caller_arn: String,
    /// `#Request`: the API request id, logged by the instance.
    pub request_id: String,
    /// The OpenSSH public key line, printed verbatim to sshd.
    pub key_line: String,
}

/// Why a [`BlobEntry`] cannot be rendered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenderError {
    /// The value would not survive `read -r` unchanged, or would break the
    /// line structure.
    InvalidField {
        field: &'static str,
        problem: &'static str,
    },
    /// Zero means "unchecked" to the script, and it compares with `dash`'s
    /// signed 64-bit arithmetic.
    InvalidExpiry(u64),
    /// Not an `ssh-rsa` or `ssh-ed25519` key that [`verify_blob`] accepts.
    UnsupportedKey,
    /// aws-lc-rs failed to sign.
    Signing,
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidField { field, problem } => write!(f, "{field}: {problem}"),
            Self::InvalidExpiry(t) => write!(f, "expiry {t} is zero or above i64::MAX"),
            Self::UnsupportedKey => {
                f.write_str("key line is not a usable ssh-rsa or ssh-ed25519 key")
            }
            Self::Signing => f.write_str("signing failed"),
        }
    }
}

impl std::error::Error for RenderError {}

fn check_field(field: &'static str, value: &str, may_be_empty: bool) -> Result<(), RenderError> {
    let problem = if value.is_empty() && !may_be_empty {
        Some("is empty")
    } else if value.chars().any(char::is_control) {
        Some("contains a control character")
    } else if value.starts_with(' ') || value.ends_with(' ') {
        Some("has leading or trailing spaces, which `read -r` strips")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(RenderError::InvalidField { field, problem }),
        None => Ok(()),
    }
}

/// Renders one signed block, ending with `\n` (no separating empty line).
pub fn render_block(entry: &BlobEntry, signer: &BlobSigner) -> Result<String, RenderError> {
    if entry.expires_at_unix == 0 || i64::try_from(entry.expires_at_unix).is_err() {
        return Err(RenderError::InvalidExpiry(entry.expires_at_unix));
    }
    check_field("instance_id", &entry.instance_id, false)?;
    check_field("caller_arn", &entry.caller_arn, true)?;
    check_field("request_id", &entry.request_id, true)?;
    check_field("key_line", &entry.key_line, false)?;
    if supported_key_fingerprint(&entry.key_line).is_none() {
        return Err(RenderError::UnsupportedKey);
    }

    let mut block = format!(
        "#Timestamp={}\n#Instance={}\n#Caller={}\n#Request={}\n{}\n",
        entry.expires_at_unix,
        entry.instance_id,
        entry.caller_arn,
        entry.request_id,
        entry.key_line
    );
    let signature = signer
        .sign(block.as_bytes())
        .map_err(|_| RenderError::Signing)?;
    let encoded = SIGNATURE_BASE64.encode(signature);
    for (i, c) in encoded.chars().enumerate() {
        if i > 0 && i % SIGNATURE_COLUMNS == 0 {
            block.push('\n');
        }
        block.push(c);
    }
    block.push('\n');
    Ok(block)
}

/// Renders a whole blob: blocks separated by one empty line, ending with
/// `\n`. No entries render as the empty string.
pub fn render_blob(entries: &[BlobEntry], signer: &BlobSigner) -> Result<String, RenderError> {
    let blocks = entries
        .iter()
        .map(|entry| render_block(entry, signer))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(blocks.join("\n"))
}

/// One block as the official read loop sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedBlock {
    /// The `#` lines, trimmed like `read -r`, in blob order.
    pub headers: Vec<String>,
    pub body: BlockBody,
}

/// What followed a block's headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockBody {
    /// A line starting with `ssh`, and the signature lines after it joined
    /// without separators (as `base64 -d` ignores newlines).
    Key { key_line: String, signature: String },
    /// The first non-`#` line, which does not start with `ssh`; the lines
    /// after it up to an empty line were skipped.
    NotKey { line: String },
    /// The text ended while reading headers.
    Truncated,
}

impl ParsedBlock {
    /// The value of the last `#<name>=` header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().rev().find_map(|line| {
            line.strip_prefix('#')
                .and_then(|rest| rest.strip_prefix(name))
                .and_then(|rest| rest.strip_prefix('='))
        })
    }

    /// The signed bytes: every header and the key line, each ending in `\n`.
    fn signed_data(&self, key_line: &str) -> String {
        let mut data = String::new();
        for line in self.headers.iter().map(String::as_str).chain([key_line]) {
            data.push_str(line);
            data.push('\n');
        }
        data
    }
}

/// Complete lines as `read -r` returns them.
fn read_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive('\n')
        .filter_map(|line| line.strip_suffix('\n'))
        .map(|line| line.trim_matches([' ', '\t']))
}

/// Splits a blob into blocks with the official parser's reading rules.
pub fn parse_blob(text: &str) -> Vec<ParsedBlock> {
    let mut lines = read_lines(text);
    let mut blocks = Vec::new();
    while let Some(first) = lines.next() {
        let mut headers = Vec::new();
        let mut line = Some(first);
        while let Some(header) = line.filter(|l| l.starts_with('#')) {
            headers.push(header.to_owned());
            line = lines.next();
        }
        let body = match line {
            None => BlockBody::Truncated,
            Some(key_line) if key_line.starts_with("ssh") => BlockBody::Key {
                key_line: key_line.to_owned(),
                signature: lines.by_ref().take_while(|l| !l.is_empty()).collect(),
            },
            Some(other) => {
                if !other.is_empty() {
                    lines.by_ref().take_while(|l| !l.is_empty()).for_each(drop);
                } else if headers.is_empty() {
                    // A stray empty line: the script's loop body does nothing.
                    continue;
                }
                BlockBody::NotKey {
                    line: other.to_owned(),
                }
            }
        };
        blocks.push(ParsedBlock { headers, body });
    }
    blocks
}

/// What [`verify_blob`] checks against.
#[derive(Clone, Copy, Debug)]
pub struct VerifyParams<'a> {
    pub instance_id: &'a str,
    pub now_unix: u64,
    /// sshd's `%f` (`SHA256:...`); `None` or empty means any key, like an
    /// empty `-f`.
    pub expected_fingerprint: Option<&'a str>,
    pub signer_key: &'a SignerKey,
}

/// A key line that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptedKey {
    /// Index into [`parse_blob`]'s output.
    pub block: usize,
    /// Exactly as in the blob (after `read -r` trimming), comment included.
    pub key_line: String,
    pub fingerprint: String,
    pub request_id: String,
    pub caller: String,
    pub expires_at_unix: u64,
}

impl AcceptedKey {
    /// The official syslog line for a provided key.
    pub fn log_message(&self) -> String {
        let mut message = format!(
            "Providing ssh key from EC2 Instance Connect with fingerprint: {}",
            self.fingerprint
        );
        if !self.request_id.is_empty() {
            message.push_str(", request-id: ");
            message.push_str(&self.request_id);
        }
        if !self.caller.is_empty() {
            message.push_str(", for IAM principal: ");
            message.push_str(&self.caller);
        }
        message
    }
}

/// A block that was passed over without condemning the blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedBlock {
    pub block: usize,
    pub reason: SkipReason,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// The first non-`#` line does not start with `ssh`.
    NoKeyLine,
    /// `#Instance` is empty, or `#Timestamp` is missing, zero or not a
    /// decimal number: the script does not look at such blocks.
    Unchecked,
    /// Not an `ssh-rsa` (>= 1024 bits) or `ssh-ed25519` key.
    UnsupportedKey,
    FingerprintMismatch {
        fingerprint: String,
    },
    WrongInstance {
        instance_id: String,
    },
    Expired {
        expires_at_unix: u64,
    },
    /// The signature lines are not valid padded base64.
    BadBase64,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoKeyLine => f.write_str("no line starting with `ssh` after the headers"),
            Self::Unchecked => {
                f.write_str("#Instance empty or #Timestamp missing, zero or not a number")
            }
            Self::UnsupportedKey => f.write_str("not an ssh-rsa or ssh-ed25519 key"),
            Self::FingerprintMismatch { fingerprint } => {
                write!(f, "fingerprint {fingerprint} is not the one asked for")
            }
            Self::WrongInstance { instance_id } => write!(f, "issued for instance {instance_id}"),
            Self::Expired { expires_at_unix } => write!(f, "expired at {expires_at_unix}"),
            Self::BadBase64 => f.write_str("signature is not valid base64"),
        }
    }
}

/// Why nothing in a blob may be trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobRejection {
    /// The blob contains `\r`. The script (exit 255) then reads CRLF headers
    /// as malformed and swallows later blocks into the first signature; we
    /// refuse up front.
    CarriageReturn,
    /// A block's headers ran into the end of the text (script: exit 1).
    TruncatedBlock { block: usize },
    /// A block that passed every other check has a signature that does not
    /// verify (script: exit 1, nothing printed).
    BadSignature {
        block: usize,
        fingerprint: String,
        request_id: String,
    },
}

impl fmt::Display for BlobRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CarriageReturn => f.write_str("blob contains a carriage return"),
            Self::TruncatedBlock { block } => write!(f, "block {block} ends inside its headers"),
            Self::BadSignature {
                block,
                fingerprint,
                request_id,
            } => write!(
                f,
                "block {block} (fingerprint {fingerprint}, request-id {request_id}) has a bad signature"
            ),
        }
    }
}

/// The outcome of [`verify_blob`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobVerdict {
    /// The script's exit 0 (some keys) or 255 (`accepted` empty).
    Keys {
        accepted: Vec<AcceptedKey>,
        skipped: Vec<SkippedBlock>,
    },
    /// The script's exit 1 with no output.
    Rejected(BlobRejection),
}

impl BlobVerdict {
    /// The keys to hand to sshd: none when the blob is rejected.
    pub fn accepted_keys(&self) -> &[AcceptedKey] {
        match self {
            Self::Keys { accepted, .. } => accepted,
            Self::Rejected(_) => &[],
        }
    }
}

/// The `SHA256:` fingerprint of a key line we accept, as `ssh-keygen -lf`
/// prints it.
fn supported_key_fingerprint(key_line: &str) -> Option<String> {
    let key = PublicKey::from_openssh(key_line).ok()?;
    let supported = match key.key_data() {
        KeyData::Ed25519(_) => true,
        KeyData::Rsa(rsa) => rsa.key_size() >= MIN_SSH_RSA_BITS,
        _ => false,
    };
    supported.then(|| key.fingerprint(HashAlg::Sha256).to_string())
}

/// `dash`'s `[ "$timestamp" -ne 0 ]` guard, restricted to plain digits.
fn checked_timestamp(block: &ParsedBlock) -> Option<u64> {
    let raw = block.header("Timestamp")?;
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Beyond i64 `dash` reports "Illegal number" and the block is skipped.
    let value = raw.parse::<i64>().ok()?;
    u64::try_from(value).ok().filter(|&t| t != 0)
}

enum BlockOutcome {
    Accepted(AcceptedKey),
    Skipped(SkipReason),
    Fatal(BlobRejection),
}

fn check_block(index: usize, block: &ParsedBlock, params: &VerifyParams<'_>) -> BlockOutcome {
    let (key_line, signature) = match &block.body {
        BlockBody::Truncated => {
            return BlockOutcome::Fatal(BlobRejection::TruncatedBlock { block: index })
        }
        BlockBody::NotKey { .. } => return BlockOutcome::Skipped(SkipReason::NoKeyLine),
        BlockBody::Key {
            key_line,
            signature,
        } => (key_line, signature),
    };
    let instance_id = block.header("Instance").unwrap_or_default();
    let expires_at_unix = match checked_timestamp(block) {
        Some(t) if !instance_id.is_empty() => t,
        _ => return BlockOutcome::Skipped(SkipReason::Unchecked),
    };
    let Some(fingerprint) = supported_key_fingerprint(key_line) else {
        return BlockOutcome::Skipped(SkipReason::UnsupportedKey);
    };
    if let Some(expected) = params.expected_fingerprint.filter(|f| !f.is_empty()) {
        if fingerprint != expected {
            return BlockOutcome::Skipped(SkipReason::FingerprintMismatch { fingerprint });
        }
    }
    if instance_id != params.instance_id {
        return BlockOutcome::Skipped(SkipReason::WrongInstance {
            instance_id: instance_id.to_owned(),
        });
    }
    if expires_at_unix <= params.now_unix {
        return BlockOutcome::Skipped(SkipReason::Expired { expires_at_unix });
    }
    let Ok(signature) = SIGNATURE_BASE64.decode(signature) else {
        return BlockOutcome::Skipped(SkipReason::BadBase64);
    };
    let request_id = block.header("Request").unwrap_or_default().to_owned();
    if !params
        .signer_key
        .verify(block.signed_data(key_line).as_bytes(), &signature)
    {
        return BlockOutcome::Fatal(BlobRejection::BadSignature {
            block: index,
            fingerprint,
            request_id,
        });
    }
    BlockOutcome::Accepted(AcceptedKey {
        block: index,
        key_line: key_line.clone(),
        fingerprint,
        request_id,
        caller: block.header("Caller").unwrap_or_default().to_owned(),
        expires_at_unix,
    })
}

/// Applies the official checks to every block, in order.
pub fn verify_blob(text: &str, params: &VerifyParams<'_>) -> BlobVerdict {
    if text.contains('\r') {
        return BlobVerdict::Rejected(BlobRejection::CarriageReturn);
    }
    let mut accepted = Vec::new();
    let mut skipped = Vec::new();
    for (index, block) in parse_blob(text).iter().enumerate() {
        match check_block(index, block, params) {
            BlockOutcome::Accepted(key) => accepted.push(key),
            BlockOutcome::Skipped(reason) => skipped.push(SkippedBlock {
                block: index,
                reason,
            }),
            BlockOutcome::Fatal(rejection) => return BlobVerdict::Rejected(rejection),
        }
    }
    BlobVerdict::Keys { accepted, skipped }
}

#[cfg(test)]
mod tests;
