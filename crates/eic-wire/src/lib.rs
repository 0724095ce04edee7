//! The EC2 Instance Connect wire protocol, as a pure core: which operation a
//! request names, what its AWS JSON 1.1 body means once validated exactly per
//! the service model, how SSH public keys are accepted, and how errors are
//! shaped on the wire. Nothing here does I/O, so all of it is tested with data.

mod error;
mod request;
mod ssh_public_key;
mod validate;

pub use error::{ApiError, ErrorCode};
pub use request::{parse_request, KeyTarget, Operation, PushRequest, MAX_BODY_BYTES};
pub use ssh_public_key::{parse_ssh_public_key, KeyKind, SshPublicKey};
pub use validate::{is_valid_availability_zone, is_valid_instance_id, is_valid_os_user};

/// The JSON protocol's content type, sent on every response.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// `X-Amz-Target` prefix of this service (botocore `targetPrefix`).
pub const TARGET_PREFIX: &str = "AWSEC2InstanceConnectService";

/// `text` cut to at most `max` bytes on a character boundary, marked when
/// cut: what a caller sends is copied into events only this far.
pub fn bounded(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    const MARK: &str = "...(truncated)";
    if text.len() <= max {
        return text.into();
    }
    let mut end = max.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &text[..end]).into()
}
