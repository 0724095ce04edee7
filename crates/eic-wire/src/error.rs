//! Errors as AWS JSON 1.1 services put them on the wire.
//!
//! botocore reads the code only from the body's `__type` and the Rust SDK
//! prefers the `x-amzn-ErrorType` header, so callers must send both (the
//! server does); this module owns the body and the status code.

use std::fmt;

/// Every error code this service can answer with: the modeled errors of the
/// two operations, and the protocol-level ones every AWS JSON service shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    // Modeled by the service (status codes from the Smithy model).
    AuthException,
    InvalidArgsException,
    ServiceException,
    ThrottlingException,
    EC2InstanceNotFoundException,
    EC2InstanceStateInvalidException,
    EC2InstanceUnavailableException,
    EC2InstanceTypeInvalidException,
    SerialConsoleAccessDisabledException,
    SerialConsoleSessionLimitExceededException,
    SerialConsoleSessionUnavailableException,
    SerialConsoleSessionUnsupportedException,
    // Protocol level, shared by all AWS JSON services.
    UnknownOperationException,
    SerializationException,
    MissingAuthenticationTokenException,
    IncompleteSignatureException,
    InvalidSignatureException,
    UnrecognizedClientException,
    ExpiredTokenException,
    AccessDeniedException,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 20] = [
        ErrorCode::AuthException,
        ErrorCode::InvalidArgsException,
        ErrorCode::ServiceException,
        ErrorCode::ThrottlingException,
        ErrorCode::EC2InstanceNotFoundException,
        ErrorCode::EC2InstanceStateInvalidException,
        ErrorCode::EC2InstanceUnavailableException,
        ErrorCode::EC2InstanceTypeInvalidException,
        ErrorCode::SerialConsoleAccessDisabledException,
        ErrorCode::SerialConsoleSessionLimitExceededException,
        ErrorCode::SerialConsoleSessionUnavailableException,
        ErrorCode::SerialConsoleSessionUnsupportedException,
        ErrorCode::UnknownOperationException,
        ErrorCode::SerializationException,
        ErrorCode::MissingAuthenticationTokenException,
        ErrorCode::IncompleteSignatureException,
        ErrorCode::InvalidSignatureException,
        ErrorCode::UnrecognizedClientException,
        ErrorCode::ExpiredTokenException,
        ErrorCode::AccessDeniedException,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::AuthException => "AuthException",
            ErrorCode::InvalidArgsException => "InvalidArgsException",
            ErrorCode::ServiceException => "ServiceException",
            ErrorCode::ThrottlingException => "ThrottlingException",
            ErrorCode::EC2InstanceNotFoundException => "EC2InstanceNotFoundException",
            ErrorCode::EC2InstanceStateInvalidException => "EC2InstanceStateInvalidException",
            ErrorCode::EC2InstanceUnavailableException => "EC2InstanceUnavailableException",
            ErrorCode::EC2InstanceTypeInvalidException => "EC2InstanceTypeInvalidException",
            ErrorCode::SerialConsoleAccessDisabledException => {
                "SerialConsoleAccessDisabledException"
            }
            ErrorCode::SerialConsoleSessionLimitExceededException => {
                "SerialConsoleSessionLimitExceededException"
            }
            ErrorCode::SerialConsoleSessionUnavailableException => {
                "SerialConsoleSessionUnavailableException"
            }
            ErrorCode::SerialConsoleSessionUnsupportedException => {
                "SerialConsoleSessionUnsupportedException"
            }
            ErrorCode::UnknownOperationException => "UnknownOperationException",
            ErrorCode::SerializationException => "SerializationException",
            ErrorCode::MissingAuthenticationTokenException => "MissingAuthenticationTokenException",
            ErrorCode::IncompleteSignatureException => "IncompleteSignatureException",
            ErrorCode::InvalidSignatureException => "InvalidSignatureException",
            ErrorCode::UnrecognizedClientException => "UnrecognizedClientException",
            ErrorCode::ExpiredTokenException => "ExpiredTokenException",
            ErrorCode::AccessDeniedException => "AccessDeniedException",
        }
    }

    /// HTTP status: the Smithy `httpError` trait for modeled errors (the only
    /// source for them: botocore's JSON has none), 400 for protocol errors as
    /// AWS JSON services such as DynamoDB answer them.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::AuthException | ErrorCode::SerialConsoleAccessDisabledException => 403,
            ErrorCode::EC2InstanceNotFoundException => 404,
            ErrorCode::ThrottlingException => 429,
            ErrorCode::ServiceException | ErrorCode::SerialConsoleSessionUnavailableException => {
                500
            }
            ErrorCode::EC2InstanceUnavailableException => 503,
            _ => 400,
        }
    }

    /// The model's documentation text, used when nothing more specific is known.
    pub fn default_message(self) -> &'static str {
        match self {
            ErrorCode::AuthException => "Either your AWS credentials are not valid or you do not have access to the EC2 instance.",
            ErrorCode::InvalidArgsException => "One of the parameters is not valid.",
            ErrorCode::ServiceException => "The service encountered an error. Follow the instructions in the error message and try again.",
            ErrorCode::ThrottlingException => "The requests were made too frequently and have been throttled. Wait a while and try again. To increase the limit on your request frequency, contact AWS Support.",
            ErrorCode::EC2InstanceNotFoundException => "The specified instance was not found.",
            ErrorCode::EC2InstanceStateInvalidException => "Unable to connect because the instance is not in a valid state. Connecting to a stopped or terminated instance is not supported. If the instance is stopped, start your instance, and try to connect again.",
            ErrorCode::EC2InstanceUnavailableException => "The instance is currently unavailable. Wait a few minutes and try again.",
            ErrorCode::EC2InstanceTypeInvalidException => "The instance type is not supported for connecting via the serial console. Only Nitro instance types are currently supported.",
            ErrorCode::SerialConsoleAccessDisabledException => "Your account is not authorized to use the EC2 Serial Console. To authorize your account, run the EnableSerialConsoleAccess API. For more information, see EnableSerialConsoleAccess in the Amazon EC2 API Reference.",
            ErrorCode::SerialConsoleSessionLimitExceededException => "The instance currently has 1 active serial console session. Only 1 session is supported at a time.",
            ErrorCode::SerialConsoleSessionUnavailableException => "Unable to start a serial console session. Please try again.",
            ErrorCode::SerialConsoleSessionUnsupportedException => "Your instance's BIOS version is unsupported for serial console connection. Reboot your instance to update its BIOS, and then try again to connect.",
            ErrorCode::UnknownOperationException => "Unknown operation.",
            ErrorCode::SerializationException => "Could not parse the request body.",
            ErrorCode::MissingAuthenticationTokenException => "Missing Authentication Token",
            ErrorCode::IncompleteSignatureException => "The request signature does not conform to AWS standards.",
            ErrorCode::InvalidSignatureException => "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
            ErrorCode::UnrecognizedClientException => "The security token included in the request is invalid.",
            ErrorCode::ExpiredTokenException => "The security token included in the request is expired",
            ErrorCode::AccessDeniedException => "Access denied.",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One error answer: its code and a message for a human.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// The error with the model's documentation text as its message.
    pub fn plain(code: ErrorCode) -> Self {
        ApiError::new(code, code.default_message())
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// `{"__type":"…","Message":"…"}`: `__type` is what botocore reads.
    pub fn to_body(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "__type": self.code.as_str(),
            "Message": self.message,
        }))
        .expect("a JSON object of two strings always serializes")
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_carries_type_and_message() {
        let err = ApiError::new(
            ErrorCode::EC2InstanceNotFoundException,
            "no \"such\" instance",
        );
        let v: serde_json::Value = serde_json::from_slice(&err.to_body()).unwrap();
        assert_eq!(v["__type"], "EC2InstanceNotFoundException");
        assert_eq!(v["Message"], "no \"such\" instance");
        assert_eq!(err.status(), 404);
    }

    #[test]
    fn status_codes_follow_the_smithy_model() {
        let expect = [
            (ErrorCode::AuthException, 403),
            (ErrorCode::InvalidArgsException, 400),
            (ErrorCode::EC2InstanceNotFoundException, 404),
            (ErrorCode::EC2InstanceStateInvalidException, 400),
            (ErrorCode::EC2InstanceTypeInvalidException, 400),
            (ErrorCode::EC2InstanceUnavailableException, 503),
            (ErrorCode::SerialConsoleAccessDisabledException, 403),
            (ErrorCode::SerialConsoleSessionLimitExceededException, 400),
            (ErrorCode::SerialConsoleSessionUnavailableException, 500),
            (ErrorCode::SerialConsoleSessionUnsupportedException, 400),
            (ErrorCode::ServiceException, 500),
            (ErrorCode::ThrottlingException, 429),
        ];
        for (code, status) in expect {
            assert_eq!(code.status(), status, "{code}");
        }
    }

    #[test]
    fn names_are_the_wire_names() {
        for code in ErrorCode::ALL {
            assert_eq!(format!("{code:?}"), code.as_str());
        }
    }
}
