//! The pure core of EC2 Instance Connect "managed-ssh-keys": the signed key
//! blob served on the instance metadata service, the signer certificate chain
//! with its OCSP staples, and the small PKI our own server uses to produce
//! both in AWS's exact wire format.
//!
//! Nothing here touches the network, the file system or the clock: every
//! check takes "now" as a parameter, so the `AuthorizedKeysCommand` and the
//! key server decide where time comes from.
//!
//! # The blob (see [`blob`])
//!
//! ```text
//! #Timestamp=<expiry, Unix seconds>
//! #Instance=i-...
//! #Caller=arn:aws:...
//! #Request=<request id>
//! ssh-ed25519 AAAA... [comment]
//! <base64 RSASSA-PSS signature, 76-column lines>
//!
//! #Timestamp=...            <- next block, after one empty line
//! ```
//!
//! The signature is RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt,
//! over every `#` line and the key line, each followed by `\n`, made with the
//! key of the leaf certificate whose Subject CN is
//! `managed-ssh-signer.<region>.<domain>`.
//!
//! # The signer chain (see [`chain`])
//!
//! A PEM chain, leaf first, validated strictly up to a trust anchor, and for
//! every certificate but the last an OCSP response from its issuer (the next
//! certificate), named by the certificate's uppercase SHA-1 fingerprint.
//!
//! # Deliberate deviations from the official scripts
//!
//! The official `eic_parse_authorized_keys` is the reference; where we differ
//! we are stricter, never looser:
//! - only `ssh-rsa` (at least 1024 bits, like `ssh-keygen`) and `ssh-ed25519`
//!   key lines are accepted; the script accepts anything `ssh-keygen` reads;
//! - `#Timestamp` must be plain decimal digits (`dash` also takes `+5`, ` 5`);
//! - any `\r` rejects the whole blob (on CRLF text the script ends up
//!   accepting nothing, exit 255);
//! - the signer key must be RSA of 2048 to 8192 bits;
//! - OCSP responses must be signed by the issuer itself (no delegated
//!   responder) with an algorithm webpki accepts for certificates (no SHA-1);
//! - the chain is validated by webpki rather than `openssl verify
//!   -x509_strict`, which also means an anchor's own validity period is not
//!   checked and the EKU, when present, must include `serverAuth`.
//!
//! Where the script fails closed harder than its README says, we copy it: one
//! block whose signature does not verify, a signature that is missing, or a
//! header that runs into the end of the text rejects the whole blob.

pub mod blob;
pub mod chain;
pub mod pki;
mod signer;
#[cfg(test)]
mod testutil;

pub use blob::{
    parse_blob, render_blob, render_block, verify_blob, AcceptedKey, BlobEntry, BlobRejection,
    BlobVerdict, BlockBody, ParsedBlock, RenderError, SkipReason, SkippedBlock, VerifyParams,
};
pub use chain::{
    sha1_fingerprint_upper, verify_signer_chain, ChainError, OcspStaples, StapleStatus,
};
pub use pki::{
    issue_signer, issue_tls_server, ocsp_response, CertificateAuthority, PkiError,
    SignerCertificate, TlsServerCertificate,
};
pub use signer::{BlobSigner, SignerKey};
