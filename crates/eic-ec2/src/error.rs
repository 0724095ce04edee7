//! Errors as EC2's Query protocol puts them on the wire.
//!
//! botocore's `EC2QueryParser` reads `Response/Errors/Error/{Code,Message}`
//! and `Response/RequestID` (capital `ID`, unlike `requestId` in a success
//! body); the AWS SDK for Rust reads the same elements. Both take the code
//! from the body whatever the status, so the status only has to be EC2's for
//! retries: botocore retries `RequestLimitExceeded` and every 500/503.
//!
//! Messages are EC2's where they are known (from EC2 answers quoted in
//! client issues); the few without a known EC2 wording say so on their
//! constructor.

use std::fmt;

use crate::xml::Xml;

/// Every code this crate or the server in front of it answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidInstanceIdNotFound,
    InvalidInstanceIdMalformed,
    InvalidInstanceConnectEndpointIdNotFound,
    InvalidInstanceConnectEndpointIdMalformed,
    InvalidParameterValue,
    InvalidParameterCombination,
    MissingParameter,
    MissingAction,
    InvalidAction,
    UnknownParameter,
    FilterLimitExceeded,
    MalformedQueryString,
    NoSuchVersion,
    UnauthorizedOperation,
    AuthFailure,
    MissingAuthenticationToken,
    IncompleteSignature,
    RequestExpired,
    DryRunOperation,
    RequestLimitExceeded,
    InternalError,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 21] = [
        ErrorCode::InvalidInstanceIdNotFound,
        ErrorCode::InvalidInstanceIdMalformed,
        ErrorCode::InvalidInstanceConnectEndpointIdNotFound,
        ErrorCode::InvalidInstanceConnectEndpointIdMalformed,
        ErrorCode::InvalidParameterValue,
        ErrorCode::InvalidParameterCombination,
        ErrorCode::MissingParameter,
        ErrorCode::MissingAction,
        ErrorCode::InvalidAction,
        ErrorCode::UnknownParameter,
        ErrorCode::FilterLimitExceeded,
        ErrorCode::MalformedQueryString,
        ErrorCode::NoSuchVersion,
        ErrorCode::UnauthorizedOperation,
        ErrorCode::AuthFailure,
        ErrorCode::MissingAuthenticationToken,
        ErrorCode::IncompleteSignature,
        ErrorCode::RequestExpired,
        ErrorCode::DryRunOperation,
        ErrorCode::RequestLimitExceeded,
        ErrorCode::InternalError,
    ];

    /// The code as it appears in `<Code>`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInstanceIdNotFound => "InvalidInstanceID.NotFound",
            ErrorCode::InvalidInstanceIdMalformed => "InvalidInstanceID.Malformed",
            // `Id`, not `ID`: EC2's spelling for this resource.
            ErrorCode::InvalidInstanceConnectEndpointIdNotFound => {
                "InvalidInstanceConnectEndpointId.NotFound"
            }
            ErrorCode::InvalidInstanceConnectEndpointIdMalformed => {
                "InvalidInstanceConnectEndpointId.Malformed"
            }
            ErrorCode::InvalidParameterValue => "InvalidParameterValue",
            ErrorCode::InvalidParameterCombination => "InvalidParameterCombination",
            ErrorCode::MissingParameter => "MissingParameter",
            ErrorCode::MissingAction => "MissingAction",
            ErrorCode::InvalidAction => "InvalidAction",
            ErrorCode::UnknownParameter => "UnknownParameter",
            ErrorCode::FilterLimitExceeded => "FilterLimitExceeded",
            ErrorCode::MalformedQueryString => "MalformedQueryString",
            ErrorCode::NoSuchVersion => "NoSuchVersion",
            ErrorCode::UnauthorizedOperation => "UnauthorizedOperation",
            ErrorCode::AuthFailure => "AuthFailure",
            ErrorCode::MissingAuthenticationToken => "MissingAuthenticationToken",
            ErrorCode::IncompleteSignature => "IncompleteSignature",
            ErrorCode::RequestExpired => "RequestExpired",
            ErrorCode::DryRunOperation => "DryRunOperation",
            ErrorCode::RequestLimitExceeded => "RequestLimitExceeded",
            ErrorCode::InternalError => "InternalError",
        }
    }

    /// EC2's HTTP status for the code: 400 for every client error except
    /// the ones below.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::AuthFailure | ErrorCode::MissingAuthenticationToken => 401,
            ErrorCode::UnauthorizedOperation => 403,
            ErrorCode::DryRunOperation => 412,
            ErrorCode::InternalError => 500,
            ErrorCode::RequestLimitExceeded => 503,
            _ => 400,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An EC2 error: a code and its message. Client text a message quotes is
/// already bounded by the parser's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2Error {
    pub code: ErrorCode,
    pub message: String,
}

impl Ec2Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Ec2Error {
        Ec2Error {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The error body: `<?xml …?>\n<Response><Errors><Error><Code>…`
    /// `</Code><Message>…</Message></Error></Errors><RequestID>…</RequestID></Response>`.
    pub fn render(&self, request_id: &str) -> String {
        let mut x = Xml::with_capacity(160 + self.message.len());
        x.raw(crate::xml::PROLOG);
        x.raw("<Response><Errors><Error>");
        x.text_element("Code", self.code.as_str());
        x.text_element("Message", &self.message);
        x.raw("</Error></Errors>");
        x.text_element("RequestID", request_id);
        x.raw("</Response>");
        x.finish()
    }

    // --- Constructors, one per situation, with EC2's wording. ---

    /// `The instance ID 'i-…' does not exist`, or for several, `The instance
    /// IDs 'i-a, i-b' do not exist`. `ids` must not be empty.
    pub fn instance_not_found<S: AsRef<str>>(ids: &[S]) -> Ec2Error {
        Ec2Error::not_found(ErrorCode::InvalidInstanceIdNotFound, "instance", ids)
    }

    /// `The instanceConnectEndpoint ID 'eice-…' does not exist`, or for
    /// several, `The instanceConnectEndpoint IDs 'eice-a, eice-b' do not
    /// exist`: EC2's form for a missing resource, with the resource type
    /// as EC2 writes it in such messages (camelCase); this one's exact
    /// wording is not known. `ids` must not be empty.
    pub fn endpoint_not_found<S: AsRef<str>>(ids: &[S]) -> Ec2Error {
        Ec2Error::not_found(
            ErrorCode::InvalidInstanceConnectEndpointIdNotFound,
            "instanceConnectEndpoint",
            ids,
        )
    }

    fn not_found<S: AsRef<str>>(code: ErrorCode, resource: &str, ids: &[S]) -> Ec2Error {
        let list = ids.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(", ");
        let message = if ids.len() == 1 {
            format!("The {resource} ID '{list}' does not exist")
        } else {
            format!("The {resource} IDs '{list}' do not exist")
        };
        Ec2Error::new(code, message)
    }

    /// `Invalid id: "…"`.
    pub fn malformed_instance_id(id: &str) -> Ec2Error {
        Ec2Error::new(
            ErrorCode::InvalidInstanceIdMalformed,
            format!("Invalid id: \"{id}\""),
        )
    }

    /// `Invalid id: "…"`, as for an instance id (EC2's wording for endpoint
    /// ids is not known).
    pub fn malformed_endpoint_id(id: &str) -> Ec2Error {
        Ec2Error::new(
            ErrorCode::InvalidInstanceConnectEndpointIdMalformed,
            format!("Invalid id: \"{id}\""),
        )
    }

    /// `The filter 'x' is invalid`.
    pub fn invalid_filter(name: &str) -> Ec2Error {
        Ec2Error::new(
            ErrorCode::InvalidParameterValue,
            format!("The filter '{name}' is invalid"),
        )
    }

    /// `The request must contain the parameter X`.
    pub fn missing_parameter(name: &str) -> Ec2Error {
        Ec2Error::new(
            ErrorCode::MissingParameter,
            format!("The request must contain the parameter {name}"),
        )
    }

    /// No `Action` at all (eic's wording; EC2's is not known).
    pub fn missing_action() -> Ec2Error {
        Ec2Error::new(
            ErrorCode::MissingAction,
            "The request must contain the parameter Action",
        )
    }

    /// `The action X is not valid for this web service.`
    pub fn invalid_action(action: &str) -> Ec2Error {
        Ec2Error::new(
            ErrorCode::InvalidAction,
            format!("The action {action} is not valid for this web service."),
        )
    }

    /// `The parameter X is not recognized`.
    pub fn unknown_parameter(name: &str) -> Ec2Error {
        Ec2Error::new(
            ErrorCode::UnknownParameter,
            format!("The parameter {name} is not recognized"),
        )
    }

    /// `The requested version (V) of service AmazonEC2 does not exist`.
    pub fn no_such_version(version: &str) -> Ec2Error {
        Ec2Error::new(
            ErrorCode::NoSuchVersion,
            format!("The requested version ({version}) of service AmazonEC2 does not exist"),
        )
    }

    /// The body is not a form eic can decode (not UTF-8 once
    /// percent-decoded). eic's wording.
    pub fn malformed_query_string() -> Ec2Error {
        Ec2Error::new(
            ErrorCode::MalformedQueryString,
            "The query string contains a syntax error.",
        )
    }

    /// A parameter value that is not acceptable, in eic's own wording where
    /// EC2's is not known.
    pub fn invalid_parameter_value(message: impl Into<String>) -> Ec2Error {
        Ec2Error::new(ErrorCode::InvalidParameterValue, message)
    }

    /// `The parameter instancesSet cannot be used with the parameter
    /// maxResults`.
    pub fn instance_ids_with_max_results() -> Ec2Error {
        Ec2Error::new(
            ErrorCode::InvalidParameterCombination,
            "The parameter instancesSet cannot be used with the parameter maxResults",
        )
    }

    /// `Value ( tok ) for parameter NextToken is invalid. The token is invalid.`
    pub fn invalid_next_token(token: &str) -> Ec2Error {
        Ec2Error::invalid_parameter_value(format!(
            "Value ( {token} ) for parameter NextToken is invalid. The token is invalid."
        ))
    }

    /// `FilterLimitExceeded` with the limit's own message.
    pub fn filter_limit(message: impl Into<String>) -> Ec2Error {
        Ec2Error::new(ErrorCode::FilterLimitExceeded, message)
    }

    /// `You are not authorized to perform this operation. User: ARN is not
    /// authorized to perform: ACTION REASON`, where `reason` is IAM's, e.g.
    /// `because no identity-based policy allows the ec2:DescribeInstances
    /// action` or `with an explicit deny in an identity-based policy`.
    /// (DescribeInstances has no resource-level permissions, so EC2 names no
    /// resource.)
    pub fn unauthorized_operation(principal_arn: &str, action: &str, reason: &str) -> Ec2Error {
        Ec2Error::new(
            ErrorCode::UnauthorizedOperation,
            format!(
                "You are not authorized to perform this operation. User: {principal_arn} \
                 is not authorized to perform: {action} {reason}"
            ),
        )
    }

    /// Unknown access key, bad signature, inactive key:
    /// `AWS was not able to validate the provided access credentials`.
    pub fn auth_failure() -> Ec2Error {
        Ec2Error::new(
            ErrorCode::AuthFailure,
            "AWS was not able to validate the provided access credentials",
        )
    }

    /// No `Authorization` at all (eic's wording).
    pub fn missing_authentication_token() -> Ec2Error {
        Ec2Error::new(
            ErrorCode::MissingAuthenticationToken,
            "The request must contain either a valid (registered) AWS access key ID or X.509 certificate.",
        )
    }

    /// An `Authorization` header that does not parse, with the verifier's
    /// (AWS's) description of what is wrong.
    pub fn incomplete_signature(message: impl Into<String>) -> Ec2Error {
        Ec2Error::new(ErrorCode::IncompleteSignature, message)
    }

    /// The signature's date is outside the allowed window: `Request has
    /// expired.`
    pub fn request_expired() -> Ec2Error {
        Ec2Error::new(ErrorCode::RequestExpired, "Request has expired.")
    }

    /// `Request would have succeeded, but DryRun flag is set.` (412)
    pub fn dry_run_operation() -> Ec2Error {
        Ec2Error::new(
            ErrorCode::DryRunOperation,
            "Request would have succeeded, but DryRun flag is set.",
        )
    }

    /// `Request limit exceeded.` (503, retried by the SDKs)
    pub fn request_limit_exceeded() -> Ec2Error {
        Ec2Error::new(ErrorCode::RequestLimitExceeded, "Request limit exceeded.")
    }

    /// `An internal error has occurred` (500, retried by the SDKs).
    pub fn internal_error() -> Ec2Error {
        Ec2Error::new(ErrorCode::InternalError, "An internal error has occurred")
    }
}

impl fmt::Display for Ec2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Ec2Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_ec2s() {
        for code in ErrorCode::ALL {
            let want = match code.as_str() {
                "AuthFailure" | "MissingAuthenticationToken" => 401,
                "UnauthorizedOperation" => 403,
                "DryRunOperation" => 412,
                "InternalError" => 500,
                "RequestLimitExceeded" => 503,
                _ => 400,
            };
            assert_eq!(code.status(), want, "{code}");
        }
    }

    #[test]
    fn codes_are_distinct() {
        let mut names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
    }

    #[test]
    fn not_found_names_one_or_several() {
        assert_eq!(
            Ec2Error::instance_not_found(&["i-0123456789abcdef0"]).message,
            "The instance ID 'i-0123456789abcdef0' does not exist"
        );
        assert_eq!(
            Ec2Error::instance_not_found(&["i-0a", "i-0b"]).message,
            "The instance IDs 'i-0a, i-0b' do not exist"
        );
        assert_eq!(
            Ec2Error::endpoint_not_found(&["eice-0123456789abcdef0"]).message,
            "The instanceConnectEndpoint ID 'eice-0123456789abcdef0' does not exist"
        );
        assert_eq!(
            Ec2Error::endpoint_not_found(&["eice-0a", "eice-0b"]).message,
            "The instanceConnectEndpoint IDs 'eice-0a, eice-0b' do not exist"
        );
    }

    #[test]
    fn render_is_ec2s_shape_and_escapes() {
        let e = Ec2Error::malformed_instance_id("i-<&>");
        assert_eq!(
            e.render("req-1"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>\
             <Code>InvalidInstanceID.Malformed</Code>\
             <Message>Invalid id: &quot;i-&lt;&amp;&gt;&quot;</Message>\
             </Error></Errors><RequestID>req-1</RequestID></Response>"
        );
    }

    #[test]
    fn messages() {
        assert_eq!(
            Ec2Error::dry_run_operation().message,
            "Request would have succeeded, but DryRun flag is set."
        );
        assert_eq!(Ec2Error::dry_run_operation().status(), 412);
        assert_eq!(
            Ec2Error::request_limit_exceeded().message,
            "Request limit exceeded."
        );
        assert_eq!(
            Ec2Error::unauthorized_operation(
                "arn:aws:iam::111122223333:user/alice",
                "ec2:DescribeInstances",
                "because no identity-based policy allows the ec2:DescribeInstances action"
            )
            .message,
            "You are not authorized to perform this operation. User: \
             arn:aws:iam::111122223333:user/alice is not authorized to perform: \
             ec2:DescribeInstances because no identity-based policy allows the \
             ec2:DescribeInstances action"
        );
        assert_eq!(
            Ec2Error::invalid_action("RunInstances").message,
            "The action RunInstances is not valid for this web service."
        );
        assert_eq!(
            Ec2Error::invalid_filter("x").message,
            "The filter 'x' is invalid"
        );
    }
}
