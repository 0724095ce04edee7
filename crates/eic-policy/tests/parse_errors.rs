//! Every way a policy can be rejected, and what the error says.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

use eic_policy::Policy;

/// Wraps statements (a JSON array body) in a 2012-10-17 policy.
fn statements(body: &str) -> String {
    format!(r#"{{"Version": "2012-10-17", "Statement": [{body}]}}"#)
}

const OK: &str = r#"{"Effect": "Allow", "Action": "ec2-instance-connect:*", "Resource": "*"}"#;

struct Expect {
    text: String,
    statement: Option<&'static str>,
    field: &'static str,
    message: &'static str,
}

fn expect(
    text: impl Into<String>,
    statement: Option<&'static str>,
    field: &'static str,
    message: &'static str,
) -> Expect {
    Expect {
        text: text.into(),
        statement,
        field,
        message,
    }
}

/// A statement with `extra` JSON members added to a valid base.
fn with(extra: &str) -> String {
    statements(&format!(
        r#"{OK}, {{"Sid": "Second", "Effect": "Allow", "Action": "ec2-instance-connect:*", "Resource": "*", {extra}}}"#
    ))
}

/// The second statement, without a Sid, with its members given in full.
fn second(members: &str) -> String {
    statements(&format!("{OK}, {{{members}}}"))
}

#[test]
#[rustfmt::skip]
fn rejections_name_statement_and_field() {
    let cases = [
        // The document as a whole.
        expect("{", None, "", "not valid JSON"),
        expect("[]", None, "", "must be a JSON object, not an array"),
        expect(r#"{"Statement": [], "Version": "2012-10-17"}"#, None, "Statement", "empty list"),
        expect(r#"{"Version": "2012-10-17"}"#, None, "Statement", "is missing"),
        expect(r#"{"Version": "2012-10-17", "Statement": "x"}"#, None, "Statement", "must be an object or an array"),
        expect(r#"{"Version": "2012-10-18", "Statement": []}"#, None, "Version", "unknown policy language version \"2012-10-18\""),
        expect(r#"{"Version": 2012, "Statement": []}"#, None, "Version", "must be the string"),
        expect(r#"{"Version": "2012-10-17", "Statment": []}"#, None, "Statment", "unknown top-level field \"Statment\" (did you mean \"Statement\"?)"),
        expect(r#"{"Version": "2012-10-17", "Id": 5, "Statement": []}"#, None, "Id", "must be a string"),
        expect(format!(r#"{{"Version": "2012-10-17", "Version": "2012-10-17", "Statement": [{OK}]}}"#), None, "", "duplicate key \"Version\""),
        // Statement structure.
        expect(statements(&format!("{OK}, 7")), Some("Statement[1]"), "", "a statement must be an object, not a number"),
        expect(second(r#""Action": "ec2:X", "Resource": "*""#), Some("Statement[1]"), "Effect", "is missing"),
        expect(second(r#""Effect": "Allow", "Resource": "*""#), Some("Statement[1]"), "Action", "needs Action or NotAction"),
        expect(second(r#""Effect": "Allow", "Action": "ec2:X""#), Some("Statement[1]"), "Resource", "needs Resource or NotResource"),
        expect(second(r#""Effect": "allow", "Action": "ec2:X", "Resource": "*""#), Some("Statement[1]"), "Effect", "unknown Effect \"allow\""),
        expect(second(r#""Effect": true, "Action": "ec2:X", "Resource": "*""#), Some("Statement[1]"), "Effect", "must be \"Allow\" or \"Deny\", not a boolean"),
        expect(with(r#""NotAction": "ec2:Y""#), Some("statement \"Second\""), "NotAction", "Action or NotAction, not both"),
        expect(with(r#""NotResource": "*""#), Some("statement \"Second\""), "NotResource", "Resource or NotResource, not both"),
        expect(with(r#""Principal": {"AWS": "*"}"#), Some("statement \"Second\""), "Principal", "not allowed in an identity-based policy"),
        expect(with(r#""NotPrincipal": "*""#), Some("statement \"Second\""), "NotPrincipal", "not allowed"),
        expect(with(r#""Conditions": {}"#), Some("statement \"Second\""), "Conditions", "unknown statement field \"Conditions\" (did you mean \"Condition\"?)"),
        expect(with(r#""Effect": "Deny""#), None, "", "duplicate key \"Effect\""),
        expect(second(r#""Sid": "has space", "Effect": "Allow", "Action": "ec2:X", "Resource": "*""#), Some("Statement[1]"), "Sid", "only ASCII letters and digits"),
        expect(second(r#""Sid": 1, "Effect": "Allow", "Action": "ec2:X", "Resource": "*""#), Some("Statement[1]"), "Sid", "must be a string"),
        expect(statements(&format!(r#"{{"Sid": "Dup", "Effect": "Allow", "Action": "a:b", "Resource": "*"}}, {OK}, {{"Sid": "Dup", "Effect": "Deny", "Action": "a:b", "Resource": "*"}}"#)), Some("statement \"Dup\""), "Sid", "repeats the Sid of Statement[0]"),
        // Action and Resource values.
        expect(second(r#""Effect": "Allow", "Action": [], "Resource": "*""#), Some("Statement[1]"), "Action", "empty list"),
        expect(second(r#""Effect": "Allow", "Action": ["ec2:X", "SendSSHPublicKey"], "Resource": "*""#), Some("Statement[1]"), "Action[1]", "must be \"*\" or \"service:ActionName\""),
        expect(second(r#""Effect": "Allow", "Action": "ec2:", "Resource": "*""#), Some("Statement[1]"), "Action", "service:ActionName"),
        expect(second(r#""Effect": "Allow", "Action": ["ec2:X", 3], "Resource": "*""#), Some("Statement[1]"), "Action[1]", "must be a string, not a number"),
        expect(second(r#""Effect": "Allow", "Action": {"a": 1}, "Resource": "*""#), Some("Statement[1]"), "Action", "must be a string or an array of strings"),
        expect(second(r#""Effect": "Allow", "Action": "ec2:X", "Resource": "i-123""#), Some("Statement[1]"), "Resource", "must be \"*\" or an ARN"),
        expect(second(r#""Effect": "Allow", "Action": "ec2:X", "NotResource": ["*", "instance/*"]"#), Some("Statement[1]"), "NotResource[1]", "must be \"*\" or an ARN"),
        expect(second(r#""Effect": "Allow", "Action": "ec2:X", "Resource": "arn:aws:ec2:${aws:region}:1:instance/*""#), Some("Statement[1]"), "Resource", "only allowed in the resource part"),
        expect(second(r#""Effect": "Allow", "Action": "ec2:X", "Resource": "arn:aws:ec2:r:1:instance/${aws:username""#), Some("Statement[1]"), "Resource", "no closing '}'"),
        // Conditions.
        expect(with(r#""Condition": {"StringEqualz": {"ec2:osuser": "x"}}"#), Some("statement \"Second\""), "Condition.StringEqualz", "unknown condition operator \"StringEqualz\" (did you mean \"StringEquals\"?)"),
        expect(with(r#""Condition": {"stringequals": {"ec2:osuser": "x"}}"#), Some("statement \"Second\""), "Condition.stringequals", "(did you mean \"StringEquals\"?)"),
        expect(with(r#""Condition": {"ForSomeValues:StringEquals": {"ec2:osuser": "x"}}"#), Some("statement \"Second\""), "Condition.ForSomeValues:StringEquals", "unknown set qualifier \"ForSomeValues\""),
        expect(with(r#""Condition": {"ForAllValue:StringEquals": {"ec2:osuser": "x"}}"#), Some("statement \"Second\""), "Condition.ForAllValue:StringEquals", "(did you mean \"ForAllValues\"?)"),
        expect(with(r#""Condition": {"NullIfExists": {"ec2:osuser": "true"}}"#), Some("statement \"Second\""), "Condition.NullIfExists", "Null takes no IfExists"),
        expect(with(r#""Condition": {"ForAnyValue:Null": {"ec2:osuser": "true"}}"#), Some("statement \"Second\""), "Condition.ForAnyValue:Null", "Null takes no set qualifier"),
        expect(with(r#""Condition": {"BinaryEquals": {"ec2:osuser": "QQ=="}}"#), Some("statement \"Second\""), "Condition.BinaryEquals", "BinaryEquals is not supported"),
        expect(with(r#""Condition": []"#), Some("statement \"Second\""), "Condition", "must be an object of condition operators"),
        expect(with(r#""Condition": {"StringEquals": "x"}"#), Some("statement \"Second\""), "Condition.StringEquals", "must be an object of condition keys"),
        expect(with(r#""Condition": {"StringEquals": {"osuser": "x"}}"#), Some("statement \"Second\""), "Condition.StringEquals.osuser", "needs a service prefix"),
        expect(with(r#""Condition": {"StringEquals": {"ec2:osuser": []}}"#), Some("statement \"Second\""), "Condition.StringEquals.ec2:osuser", "empty list"),
        expect(with(r#""Condition": {"StringEquals": {"ec2:osuser": null}}"#), Some("statement \"Second\""), "Condition.StringEquals.ec2:osuser", "must be a string, boolean or number, not null"),
        expect(with(r#""Condition": {"StringEquals": {"ec2:osuser": ["a", {"b": 1}]}}"#), Some("statement \"Second\""), "Condition.StringEquals.ec2:osuser[1]", "not an object"),
        expect(with(r#""Condition": {"StringEquals": {"ec2:osuser": "${aws:username"}}"#), Some("statement \"Second\""), "Condition.StringEquals.ec2:osuser", "no closing"),
        expect(with(r#""Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "10.0.0.0/33"]}}"#), Some("statement \"Second\""), "Condition.IpAddress.aws:SourceIp[1]", "\"10.0.0.0/33\" is not an IP address or CIDR range"),
        expect(with(r#""Condition": {"NotIpAddress": {"aws:SourceIp": "corp-network"}}"#), Some("statement \"Second\""), "Condition.NotIpAddress.aws:SourceIp", "is not an IP address"),
        expect(with(r#""Condition": {"DateLessThan": {"aws:CurrentTime": "2020-02-30T00:00:00Z"}}"#), Some("statement \"Second\""), "Condition.DateLessThan.aws:CurrentTime", "is not a date"),
        expect(with(r#""Condition": {"DateGreaterThan": {"aws:CurrentTime": "${aws:EpochTime}"}}"#), Some("statement \"Second\""), "Condition.DateGreaterThan.aws:CurrentTime", "is not a date"),
        expect(with(r#""Condition": {"NumericLessThan": {"ec2-instance-connect:remotePort": "1e3"}}"#), Some("statement \"Second\""), "Condition.NumericLessThan.ec2-instance-connect:remotePort", "is not a number"),
        expect(with(r#""Condition": {"NumericEquals": {"ec2-instance-connect:remotePort": true}}"#), Some("statement \"Second\""), "Condition.NumericEquals.ec2-instance-connect:remotePort", "\"true\" is not a number"),
        expect(with(r#""Condition": {"Bool": {"aws:SecureTransport": "yes"}}"#), Some("statement \"Second\""), "Condition.Bool.aws:SecureTransport", "\"yes\" is not a boolean"),
        expect(with(r#""Condition": {"Null": {"aws:SecureTransport": "maybe"}}"#), Some("statement \"Second\""), "Condition.Null.aws:SecureTransport", "Null takes \"true\""),
        expect(with(r#""Condition": {"StringEquals": {"ec2:osuser": "a", "ec2:osuser": "b"}}"#), None, "", "duplicate key \"ec2:osuser\""),
    ];
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let err = match Policy::parse(&case.text) {
            Ok(_) => {
                failures.push(format!("case {i}: parsed but should not: {}", case.text));
                continue;
            }
            Err(e) => e,
        };
        let shown = err.to_string();
        let statement = err.statement().map(ToString::to_string);
        if statement.as_deref() != case.statement
            || err.field() != case.field
            || !err.message().contains(case.message)
            || !shown.contains(case.message)
        {
            failures.push(format!(
                "case {i}: got statement={statement:?} field={:?} display={shown:?}\n  expected statement={:?} field={:?} message containing {:?}",
                err.field(), case.statement, case.field, case.message
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn display_is_actionable() {
    let err = Policy::parse(&statements(
        r#"{"Sid": "AllowSsh", "Effect": "Allow", "Action": "ec2-instance-connect:SendSSHPublicKey",
            "Resource": "*", "Condition": {"StringEqualz": {"ec2:osuser": "ec2-user"}}}"#,
    ))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid policy: statement \"AllowSsh\", field Condition.StringEqualz: unknown condition \
         operator \"StringEqualz\" (did you mean \"StringEquals\"?)"
    );
    let at = err.statement().unwrap();
    assert_eq!((at.index(), at.sid()), (0, Some("AllowSsh")));

    let err = Policy::parse(&statements(&format!(
        r#"{OK}, {OK}, {{"Effect": "Permit", "Action": "a:b", "Resource": "*"}}"#
    )))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid policy: Statement[2], field Effect: unknown Effect \"Permit\"; use \"Allow\" or \
         \"Deny\" (case-sensitive)"
    );

    let err =
        Policy::parse("{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n}").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid policy: not valid JSON:"),
        "{err}"
    );
    assert!(err.to_string().contains("line 4"), "{err}");
}

#[test]
fn accepted_shapes() {
    // A lone statement object, a 2008 version, an Id, an empty Condition,
    // operator values of every JSON scalar type, and all operator spellings.
    for text in [
        format!(r#"{{"Version": "2012-10-17", "Id": "x", "Statement": {OK}}}"#),
        format!(r#"{{"Version": "2008-10-17", "Statement": [{OK}]}}"#),
        format!(r#"{{"Statement": [{OK}]}}"#),
        statements(
            r#"{"Effect": "Deny", "NotAction": ["a:*"], "NotResource": "arn:aws:ec2:*", "Condition": {}}"#,
        ),
        statements(
            r#"{"Sid": "", "Effect": "Allow", "Action": "a:b", "Resource": "*", "Condition": {"StringEquals": {}}}"#,
        ),
        statements(
            r#"{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {
            "ForAllValues:StringNotLikeIfExists": {"aws:TagKeys": ["a*", 1, true]},
            "ForAnyValue:ArnNotEquals": {"aws:PrincipalArn": "arn:aws:iam::*:role/x"},
            "NumericGreaterThanEquals": {"ec2-instance-connect:maxTunnelDuration": 3600},
            "DateLessThanEquals": {"aws:CurrentTime": ["2030-01-01", 1893456000]},
            "Bool": {"aws:SecureTransport": [true, "FALSE"]},
            "BoolIfExists": {"aws:SecureTransport": "${aws:PrincipalTag/tls}"},
            "IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"]},
            "Null": {"aws:TokenIssueTime": true}}}"#,
        ),
    ] {
        if let Err(e) = Policy::parse(&text) {
            panic!("{e}\n{text}");
        }
    }
}
