//! Routing by `X-Amz-Target` and the request bodies of the two operations,
//! validated exactly per the service model. Clients cannot be trusted to
//! have validated anything: botocore checks only `required` and `min`, and
//! the Rust SDK does not even enforce `required`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{ApiError, ErrorCode};
use crate::ssh_public_key::{parse_ssh_public_key, SshPublicKey};
use crate::validate::{is_valid_availability_zone, is_valid_instance_id, is_valid_os_user};

/// The largest body accepted. A valid request is at most a few kilobytes,
/// but JSON may escape each of `SSHPublicKey`'s 4096 characters as `\uXXXX`.
pub const MAX_BODY_BYTES: usize = 32 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    SendSSHPublicKey,
    SendSerialConsoleSSHPublicKey,
}

impl Operation {
    /// Resolves `X-Amz-Target`; a missing or unknown one is
    /// `UnknownOperationException`, as the service answers it.
    pub fn from_target(target: Option<&str>) -> Result<Operation, ApiError> {
        let unknown = || ApiError::plain(ErrorCode::UnknownOperationException);
        match target
            .and_then(|t| t.strip_prefix(crate::TARGET_PREFIX))
            .and_then(|t| t.strip_prefix('.'))
            .ok_or_else(unknown)?
        {
            "SendSSHPublicKey" => Ok(Operation::SendSSHPublicKey),
            "SendSerialConsoleSSHPublicKey" => Ok(Operation::SendSerialConsoleSSHPublicKey),
            _ => Err(unknown()),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Operation::SendSSHPublicKey => "SendSSHPublicKey",
            Operation::SendSerialConsoleSSHPublicKey => "SendSerialConsoleSSHPublicKey",
        }
    }

    /// The IAM action this operation is authorized as.
    pub fn iam_action(self) -> &'static str {
        match self {
            Operation::SendSSHPublicKey => "ec2-instance-connect:SendSSHPublicKey",
            Operation::SendSerialConsoleSSHPublicKey => {
                "ec2-instance-connect:SendSerialConsoleSSHPublicKey"
            }
        }
    }
}

/// Whom a pushed key lets in on its instance: what a push names, and what
/// the store keeps keys under (serialized as `{"OsUser":"…"}` or
/// `{"SerialPort":0}` in the embedded log and in Redis).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KeyTarget {
    /// An OS user, through sshd's AuthorizedKeysCommand.
    OsUser(String),
    /// A serial port, through the serial console gateway.
    SerialPort(u8),
}

/// A validated push: every member has passed the model's constraints and the
/// key has been parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRequest {
    pub operation: Operation,
    pub instance_id: String,
    pub target: KeyTarget,
    pub key: SshPublicKey,
    pub availability_zone: Option<String>,
}

/// Parses and validates a request body for `operation`.
///
/// Malformed JSON, a body that is not an object, or a member of the wrong
/// type is `SerializationException`; every constraint violation is
/// `InvalidArgsException`, all of them listed in one message as Coral
/// services do. Unknown members are ignored for forward compatibility.
pub fn parse_request(operation: Operation, body: &[u8]) -> Result<PushRequest, ApiError> {
    let members = parse_object(body)?;
    let mut violations = Violations::default();

    let instance_id = string_member(&members, "InstanceId")?;
    let ssh_public_key = string_member(&members, "SSHPublicKey")?;
    let availability_zone = string_member(&members, "AvailabilityZone")?;

    check_string(
        &mut violations,
        "InstanceId",
        instance_id,
        true,
        10,
        32,
        |v| is_valid_instance_id(v).then_some(()).ok_or("^i-[a-f0-9]+$"),
    );
    let target = match operation {
        Operation::SendSSHPublicKey => {
            let os_user = string_member(&members, "InstanceOSUser")?;
            check_string(
                &mut violations,
                "InstanceOSUser",
                os_user,
                true,
                1,
                32,
                |v| {
                    is_valid_os_user(v).then_some(()).ok_or(
                    r"(^[A-Za-z_][A-Za-z0-9\@\._-]{0,30}[A-Za-z0-9\$_-]?$)|(^(?=.{2,32}$)[0-9]{1,32}[A-Za-z\@\._-][A-Za-z0-9\@\._-]*[A-Za-z0-9\$_-]?$)",
                )
                },
            );
            if let Some(zone) = availability_zone {
                check_string(
                    &mut violations,
                    "AvailabilityZone",
                    Some(zone),
                    false,
                    6,
                    32,
                    |v| {
                        is_valid_availability_zone(v)
                            .then_some(())
                            .ok_or(r"^(\w+-){2,3}\d+\w+$")
                    },
                );
            }
            KeyTarget::OsUser(os_user.unwrap_or_default().to_owned())
        }
        Operation::SendSerialConsoleSSHPublicKey => {
            KeyTarget::SerialPort(serial_port(&members, &mut violations)?)
        }
    };
    let key_length_ok = check_string(
        &mut violations,
        "SSHPublicKey",
        ssh_public_key,
        true,
        80,
        4096,
        |_| Ok(()),
    );
    violations.into_result()?;

    // The key is parsed only once its length is known to be in bounds, so
    // the parser never sees more than 4096 characters.
    debug_assert!(key_length_ok);
    let key = parse_ssh_public_key(ssh_public_key.unwrap_or_default()).map_err(|reason| {
        ApiError::new(
            ErrorCode::InvalidArgsException,
            format!("Invalid SSHPublicKey: {reason}."),
        )
    })?;
    Ok(PushRequest {
        operation,
        instance_id: instance_id.unwrap_or_default().to_owned(),
        target,
        key,
        availability_zone: match operation {
            Operation::SendSSHPublicKey => availability_zone.map(str::to_owned),
            Operation::SendSerialConsoleSSHPublicKey => None,
        },
    })
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    // botocore sends `{}` for a call without members; an empty body means
    // the same and is accepted as such.
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(members)) => Ok(members),
        Ok(_) => Err(ApiError::new(
            ErrorCode::SerializationException,
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(ApiError::new(
            ErrorCode::SerializationException,
            format!("The request body is not valid JSON: {e}."),
        )),
    }
}

/// A string member; JSON `null` counts as absent, as in AWS JSON 1.1.
fn string_member<'a>(
    members: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, ApiError> {
    match members.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong_type(name, "a string", other)),
    }
}

fn serial_port(members: &Map<String, Value>, violations: &mut Violations) -> Result<u8, ApiError> {
    let port = match members.get("SerialPort") {
        // The model's default: botocore and the Rust SDK omit it when unset.
        None | Some(Value::Null) => return Ok(0),
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|v| i32::try_from(*v).is_ok())
            .ok_or_else(|| {
                wrong_type("SerialPort", "a 32-bit integer", &Value::Number(n.clone()))
            })?,
        Some(other) => return Err(wrong_type("SerialPort", "a 32-bit integer", other)),
    };
    if port != 0 {
        violations.push(format!(
            "Value '{port}' at 'SerialPort' failed to satisfy constraint: Member must have value less than or equal to 0 and greater than or equal to 0 (only serial port 0 is supported)"
        ));
    }
    Ok(0)
}

fn wrong_type(name: &str, expected: &str, found: &Value) -> ApiError {
    let found = match found {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    ApiError::new(
        ErrorCode::SerializationException,
        format!("Member '{name}' must be {expected}, but the request has {found}."),
    )
}

/// Checks presence, length (in characters, as the model counts) and pattern;
/// records a violation and returns false when any fails.
fn check_string(
    violations: &mut Violations,
    name: &str,
    value: Option<&str>,
    required: bool,
    min: usize,
    max: usize,
    pattern: impl Fn(&str) -> Result<(), &'static str>,
) -> bool {
    let Some(value) = value else {
        if required {
            violations.push(format!(
                "Value null at '{name}' failed to satisfy constraint: Member must not be null"
            ));
        }
        return !required;
    };
    let shown = shown_value(name, value);
    let len = value.chars().count();
    if len < min || len > max {
        let bound = if len < min {
            format!("greater than or equal to {min}")
        } else {
            format!("less than or equal to {max}")
        };
        violations.push(format!(
            "Value {shown} at '{name}' failed to satisfy constraint: Member must have length {bound}"
        ));
        return false;
    }
    if let Err(regex) = pattern(value) {
        violations.push(format!(
            "Value {shown} at '{name}' failed to satisfy constraint: Member must satisfy regular expression pattern: {regex}"
        ));
        return false;
    }
    true
}

/// The value as quoted in a message: keys are never echoed, other values
/// are bounded and escaped so a message stays one readable line.
fn shown_value(name: &str, value: &str) -> String {
    if name == "SSHPublicKey" {
        return format!("of {} characters", value.chars().count());
    }
    let mut shown: String = value
        .chars()
        .take(64)
        .flat_map(char::escape_default)
        .collect();
    if value.chars().count() > 64 {
        shown.push_str("...");
    }
    format!("'{shown}'")
}

#[derive(Default)]
struct Violations(Vec<String>);

impl Violations {
    fn push(&mut self, v: String) {
        self.0.push(v);
    }

    fn into_result(self) -> Result<(), ApiError> {
        match self.0.len() {
            0 => Ok(()),
            n => Err(ApiError::new(
                ErrorCode::InvalidArgsException,
                format!(
                    "{n} validation error{} detected: {}",
                    if n == 1 { "" } else { "s" },
                    self.0.join("; ")
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEED_KEY: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC3FlHqj2eqCdrGHuA6dRjfZXQ4HX5lXEIRHaNbxEwE5Te7xNF7StwhrDtiV7IdT5fDqbRyGw/szPj3xGkNTVoElCZ2dDFb2qYZ1WLIpZwj/UhO9l2mgfjR56UojjQut5Jvn2KZ1OcyrNO0J83kCaJCV7JoVbXY79FBMUccYNY45zmv9+1FMCfY6i2jdIhwR6+yLk8oubL8lIPyq7X+6b9S0yKCkB7Peml1DvghlybpAIUrC9vofHt6XP4V1i0bImw1IlljQS+DUmULRFSccATDscCX9ajnj7Crhm0HAZC0tBPXpFdHkPwL3yzYo546SCS9LKEwz62ymxxbL9k7h09t";

    fn ssh(body: serde_json::Value) -> Result<PushRequest, ApiError> {
        parse_request(Operation::SendSSHPublicKey, body.to_string().as_bytes())
    }

    fn serial(body: serde_json::Value) -> Result<PushRequest, ApiError> {
        parse_request(
            Operation::SendSerialConsoleSSHPublicKey,
            body.to_string().as_bytes(),
        )
    }

    fn err_code(r: Result<PushRequest, ApiError>) -> (ErrorCode, String) {
        let e = r.unwrap_err();
        (e.code, e.message)
    }

    #[test]
    fn routes_by_target() {
        assert_eq!(
            Operation::from_target(Some("AWSEC2InstanceConnectService.SendSSHPublicKey")).unwrap(),
            Operation::SendSSHPublicKey
        );
        assert_eq!(
            Operation::from_target(Some(
                "AWSEC2InstanceConnectService.SendSerialConsoleSSHPublicKey"
            ))
            .unwrap(),
            Operation::SendSerialConsoleSSHPublicKey
        );
        for bad in [
            None,
            Some(""),
            Some("SendSSHPublicKey"),
            Some("AWSEC2InstanceConnectService.Other"),
            Some("DynamoDB_20120810.SendSSHPublicKey"),
        ] {
            assert_eq!(
                Operation::from_target(bad).unwrap_err().code,
                ErrorCode::UnknownOperationException
            );
        }
    }

    #[test]
    fn the_seed_example_is_valid() {
        let req = ssh(serde_json::json!({
            "AvailabilityZone": "us-west-2a", "InstanceId": "i-abcd1234",
            "InstanceOSUser": "ec2-user", "SSHPublicKey": SEED_KEY,
        }))
        .unwrap();
        assert_eq!(req.instance_id, "i-abcd1234");
        assert_eq!(req.target, KeyTarget::OsUser("ec2-user".into()));
        assert_eq!(req.availability_zone.as_deref(), Some("us-west-2a"));
    }

    #[test]
    fn missing_members_are_named() {
        let (code, msg) = err_code(ssh(serde_json::json!({"InstanceId": "i-abcd1234"})));
        assert_eq!(code, ErrorCode::InvalidArgsException);
        assert!(msg.starts_with("2 validation errors detected"), "{msg}");
        assert!(
            msg.contains("'InstanceOSUser'") && msg.contains("'SSHPublicKey'"),
            "{msg}"
        );
    }

    #[test]
    fn constraint_violations_are_invalid_args() {
        let base = serde_json::json!({"InstanceId": "i-abcd1234", "InstanceOSUser": "ec2-user", "SSHPublicKey": SEED_KEY});
        let with = |k: &str, v: serde_json::Value| {
            let mut b = base.clone();
            b[k] = v;
            err_code(ssh(b))
        };
        let (code, msg) = with("InstanceId", "i-ABCD1234".into());
        assert_eq!(code, ErrorCode::InvalidArgsException);
        assert!(
            msg.contains("'InstanceId'") && msg.contains("regular expression"),
            "{msg}"
        );
        let (_, msg) = with("InstanceOSUser", "123".into());
        assert!(msg.contains("'InstanceOSUser'"), "{msg}");
        let (_, msg) = with("InstanceOSUser", "a".repeat(33).into());
        assert!(msg.contains("less than or equal to 32"), "{msg}");
        let (_, msg) = with("AvailabilityZone", "use1-az1".into());
        assert!(msg.contains("'AvailabilityZone'"), "{msg}");
        let (_, msg) = with("SSHPublicKey", "ssh-ed25519 short".into());
        assert!(
            msg.contains("'SSHPublicKey'") && msg.contains("greater than or equal to 80"),
            "{msg}"
        );
        let (_, msg) = with("SSHPublicKey", "x".repeat(4097).into());
        assert!(
            msg.contains("less than or equal to 4096") && !msg.contains("xxxx"),
            "{msg}"
        );
        let (code, msg) = with(
            "SSHPublicKey",
            format!("ssh-rsa {}", "A".repeat(100)).into(),
        );
        assert_eq!(code, ErrorCode::InvalidArgsException);
        assert!(msg.starts_with("Invalid SSHPublicKey"), "{msg}");
    }

    #[test]
    fn wrong_types_and_bad_json_are_serialization_errors() {
        let (code, msg) = err_code(ssh(serde_json::json!({"InstanceId": 5})));
        assert_eq!(code, ErrorCode::SerializationException);
        assert!(msg.contains("'InstanceId'"), "{msg}");
        for body in [&b"{"[..], b"[]", b"\"x\"", b"{\"a\":}", b"\xff\xfe"] {
            let e = parse_request(Operation::SendSSHPublicKey, body).unwrap_err();
            assert_eq!(e.code, ErrorCode::SerializationException, "{body:?}");
        }
        let (code, _) = err_code(serial(
            serde_json::json!({"InstanceId": "i-abcd1234", "SerialPort": "0", "SSHPublicKey": SEED_KEY}),
        ));
        assert_eq!(code, ErrorCode::SerializationException);
        let (code, _) = err_code(serial(
            serde_json::json!({"InstanceId": "i-abcd1234", "SerialPort": 1.5, "SSHPublicKey": SEED_KEY}),
        ));
        assert_eq!(code, ErrorCode::SerializationException);
    }

    #[test]
    fn serial_port_defaults_to_zero_and_only_zero_is_valid() {
        let req = serial(serde_json::json!({"InstanceId": "i-abcd1234", "SSHPublicKey": SEED_KEY}))
            .unwrap();
        assert_eq!(req.target, KeyTarget::SerialPort(0));
        let req = serial(serde_json::json!({"InstanceId": "i-abcd1234", "SerialPort": 0, "SSHPublicKey": SEED_KEY})).unwrap();
        assert_eq!(req.target, KeyTarget::SerialPort(0));
        let (code, msg) = err_code(serial(
            serde_json::json!({"InstanceId": "i-abcd1234", "SerialPort": 1, "SSHPublicKey": SEED_KEY}),
        ));
        assert_eq!(code, ErrorCode::InvalidArgsException);
        assert!(msg.contains("'SerialPort'"), "{msg}");
    }

    #[test]
    fn unknown_members_and_nulls_are_tolerated() {
        let req = ssh(serde_json::json!({
            "InstanceId": "i-abcd1234", "InstanceOSUser": "ec2-user", "SSHPublicKey": SEED_KEY,
            "AvailabilityZone": null, "FutureMember": {"x": 1},
        }))
        .unwrap();
        assert_eq!(req.availability_zone, None);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_request(Operation::SendSSHPublicKey, &body);
            let _ = parse_request(Operation::SendSerialConsoleSSHPublicKey, &body);
        }

        #[test]
        fn arbitrary_members_never_panic(
            id in proptest::option::of(".{0,40}"),
            user in proptest::option::of(".{0,40}"),
            zone in proptest::option::of(".{0,40}"),
            key in proptest::option::of(".{0,200}"),
            port in proptest::option::of(any::<i64>()),
        ) {
            let body = serde_json::json!({"InstanceId": id, "InstanceOSUser": user, "AvailabilityZone": zone, "SSHPublicKey": key, "SerialPort": port});
            for op in [Operation::SendSSHPublicKey, Operation::SendSerialConsoleSSHPublicKey] {
                if let Err(e) = parse_request(op, body.to_string().as_bytes()) {
                    prop_assert!(matches!(e.code, ErrorCode::InvalidArgsException | ErrorCode::SerializationException));
                }
            }
        }
    }
}
